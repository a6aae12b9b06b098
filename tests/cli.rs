//! The command line around the dashboard: shell completions and the man page come from the clap definitions,
//! and the config file and themes are found in the user's config directory (XDG) when not given.

mod common;

use std::path::Path;
use std::process::Command;

use common::pty::Tui;

fn locktop(args: &[&str], env: &[(&str, &Path)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_locktop"));
    cmd.args(args)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("LOCKTOP_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run locktop")
}

#[test]
fn completions_for_every_shell_and_the_man_page_come_from_the_cli_definitions() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = locktop(&["completions", shell], &[]);
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = String::from_utf8_lossy(&out.stdout);
        for word in ["snapshot", "demo", "dsn", "interval", "theme"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let bash = locktop(&["completions", "bash"], &[]);
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("locktop.bash");
    std::fs::write(&file, &bash.stdout).expect("write");
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&file)
        .status()
        .expect("bash");
    assert!(syntax.success(), "the bash completion parses");

    let man = locktop(&["man"], &[]);
    assert!(man.status.success());
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(page.contains(".TH locktop 1"), "{page}");
    for word in [
        "snapshot",
        "completions",
        "\\-\\-dsn",
        ".SH KEYS",
        ".SH ENVIRONMENT",
        ".SH FILES",
        ".SH EXIT STATUS",
        ".SH EXAMPLES",
        "F1",
        "PGSERVICEFILE",
        "/etc/locktop/config.toml",
        "~/.pgpass",
    ] {
        assert!(page.contains(word), "the man page lacks {word}");
    }
    let bad = locktop(&["completions", "tcsh"], &[]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("bash"), "names the shells it knows: {err}");
}

#[test]
fn each_commands_help_lists_only_the_options_that_apply_to_it() {
    let help = |args: &[&str]| String::from_utf8_lossy(&locktop(args, &[]).stdout).into_owned();
    let connection = ["--dsn", "--pooler", "--metrics-url", "--health-url"];
    for cmd in ["replay", "demo"] {
        let text = help(&[cmd, "--help"]);
        for option in connection {
            assert!(
                !text.contains(option),
                "`{cmd} --help` lists {option}:\n{text}"
            );
        }
        assert!(
            text.contains("--interval"),
            "{cmd}: the common options stay"
        );
    }
    for args in [
        &["--help"][..],
        &["snapshot", "--help"],
        &["watch", "--help"],
    ] {
        let text = help(args);
        for option in connection {
            assert!(text.contains(option), "{args:?} lacks {option}");
        }
    }
    assert!(help(&["--help"]).contains("--no-mouse"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_file_is_found_in_xdg_config_home_then_in_dot_config_and_an_explicit_one_wins() {
    let url = common::database("xdg").await;
    let xdg = tempfile::tempdir().expect("dir");
    std::fs::create_dir_all(xdg.path().join("locktop")).expect("mkdir");
    std::fs::write(
        xdg.path().join("locktop/config.toml"),
        "[lease]\ntable = \"public.from_xdg\"\n",
    )
    .expect("write");
    let home = tempfile::tempdir().expect("dir");
    std::fs::create_dir_all(home.path().join(".config/locktop")).expect("mkdir");
    std::fs::write(
        home.path().join(".config/locktop/config.toml"),
        "[lease]\ntable = \"public.from_home\"\n",
    )
    .expect("write");
    let explicit = home.path().join("explicit.toml");
    std::fs::write(&explicit, "[lease]\ntable = \"public.entry_locks\"\n").expect("write");

    let snapshot = ["snapshot", "--dsn", &url];
    let out = locktop(
        &snapshot,
        &[("XDG_CONFIG_HOME", xdg.path()), ("HOME", home.path())],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("public.from_xdg"),
        "{out:?}"
    );

    let out = locktop(&snapshot, &[("HOME", home.path())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("public.from_home"),
        "{out:?}"
    );

    // A user without a config file gets the system-wide one (/etc/locktop, here a directory of the test's).
    let system = tempfile::tempdir().expect("dir");
    std::fs::write(
        system.path().join("config.toml"),
        "[lease]\ntable = \"public.from_etc\"\n",
    )
    .expect("write");
    let bare = tempfile::tempdir().expect("dir");
    let out = locktop(
        &snapshot,
        &[("HOME", bare.path()), ("LOCKTOP_SYSCONFDIR", system.path())],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("public.from_etc"),
        "{out:?}"
    );
    let out = locktop(
        &snapshot,
        &[("HOME", home.path()), ("LOCKTOP_SYSCONFDIR", system.path())],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("public.from_home"),
        "the user's file wins: {out:?}"
    );

    let mut with_config = snapshot.to_vec();
    let explicit = explicit.display().to_string();
    with_config.extend(["--config", explicit.as_str()]);
    let out = locktop(
        &with_config,
        &[("XDG_CONFIG_HOME", xdg.path()), ("HOME", home.path())],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn a_theme_name_is_looked_up_in_the_user_config_directory_first() {
    let xdg = tempfile::tempdir().expect("dir");
    std::fs::create_dir_all(xdg.path().join("locktop/themes")).expect("mkdir");
    std::fs::write(
        xdg.path().join("locktop/themes/mine.toml"),
        "[roles]\nok = { fg = \"blurple\" }\n",
    )
    .expect("write");
    let xdg_dir = xdg.path().display().to_string();
    let mut tui = Tui::spawn(
        &[
            "--dsn",
            "postgres://nobody@127.0.0.1:1/x",
            "--theme",
            "mine",
        ],
        &[("XDG_CONFIG_HOME", &xdg_dir)],
        (40, 120),
    );
    assert_eq!(tui.wait_exit(), 1);
    let text = tui.raw_output();
    assert!(
        text.contains("themes/mine.toml") && text.contains("blurple"),
        "the user's theme was read: {text:?}"
    );
}

/// `locktop snapshot | head -1`: the reader goes away; locktop stops quietly, as other Unix tools do, with its
/// own status and no "Broken pipe" error. (The reading end is closed before locktop has even connected, so its
/// write is sure to find nobody.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_whose_reader_goes_away_stops_quietly() {
    let url = common::database("brokenpipe").await;
    let _held = common::acquire(&url, "P", "w").await;
    for format in ["table", "json"] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_locktop"))
            .args(["snapshot", "--format", format, "--dsn", &url])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.is_empty(), "{format}: nothing on stderr: {err}");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{format}: its own status (calm)"
        );
    }
}

/// With no connection settings at all (no --dsn, no PG* variable, no [[target]]) the one-line error says how to
/// give them and names `locktop demo`; with settings given it does not pretend they were missing.
#[test]
fn no_connection_settings_at_all_get_a_getting_started_hint() {
    let home = tempfile::tempdir().expect("dir");
    let run = |extra: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_locktop"));
        cmd.args(["snapshot", "--interval", "200ms"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home.path());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.output().expect("runs")
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    for needle in [
        "no connection settings were given",
        "--dsn",
        "PGHOST",
        "locktop demo",
    ] {
        assert!(err.contains(needle), "{needle:?} in {err}");
    }
    let out = run(&[("PGHOST", "/nonexistent-socket-dir")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("no connection settings"), "{err}");
}
