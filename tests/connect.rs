//! Connecting as psql does, against a real server: a service file, the OS user as the default role, several
//! hosts (the first dead, or silent past `connect_timeout`), socket directories in URLs, the password file's
//! socket lines, `sslmode` ignored on a socket, and errors that name a bad key or value but never a password.
//!
//! This binary has a cluster of its own: a role that logs in with a SCRAM password, on the socket and on TCP.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use locktop::rig::cluster::{Cluster, ClusterOptions};

const PASSWORD: &str = "Tail9Secret-x";

struct Server {
    cluster: Cluster,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let cluster = Cluster::start(&ClusterOptions {
            tcp: true,
            hba: vec![
                "host all pwuser 127.0.0.1/32 scram-sha-256".into(),
                "local all pwuser scram-sha-256".into(),
            ],
            ..ClusterOptions::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let url = cluster.url("postgres");
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let mut conn = common::connect(&url).await;
                common::exec(&mut conn, "CREATE DATABASE connect").await;
                let connect = url.replace("/postgres?", "/connect?");
                let mut conn = common::connect(&connect).await;
                let setup = format!(
                    "{} CREATE ROLE pwuser LOGIN PASSWORD '{PASSWORD}'; GRANT pg_monitor TO pwuser; \
                     GRANT SELECT ON entry_locks TO pwuser;",
                    common::REFERENCE_SCHEMA
                );
                common::exec(&mut conn, &setup).await;
            });
        })
        .join()
        .expect("setup");
        Server { cluster }
    })
}

fn socket_dir() -> String {
    server().cluster.root().display().to_string()
}

fn port() -> u16 {
    server().cluster.port()
}

/// `locktop ARGS` with none of this machine's connection settings: no `PG*` variables, an empty home.
fn locktop(args: &[&str], env: &[(&str, &str)], home: &Path) -> Output {
    locktop_as(None, args, env, home)
}

fn locktop_as(user: Option<&str>, args: &[&str], env: &[(&str, &str)], home: &Path) -> Output {
    let bin = env!("CARGO_BIN_EXE_locktop");
    let mut cmd = match user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--", bin]);
            c
        }
        None => Command::new(bin),
    };
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("PG") || k == "DATABASE_URL" || k.starts_with("LOCKTOP_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run locktop")
}

fn home() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("home");
    // Readable by the OS user the tests switch to.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// The report's target, after a successful snapshot.
fn target_of(out: &Output) -> String {
    assert!(
        out.status.code() == Some(0),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    report["target"].as_str().expect("target").to_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_owned()
}

#[test]
fn a_service_file_names_the_server_and_psql_flags_win_over_it() {
    let home = home();
    let file = home.path().join("services.conf");
    std::fs::write(
        &file,
        format!(
            "# the team's services\n[trading]\nhost={}\nport={}\ndbname=connect\nuser=postgres\n",
            socket_dir(),
            port()
        ),
    )
    .expect("service file");
    let file = file.display().to_string();
    let env = [("PGSERVICEFILE", file.as_str()), ("PGSERVICE", "trading")];
    let out = locktop(&["snapshot"], &env, home.path());
    assert_eq!(
        target_of(&out),
        format!("postgres@{}/connect", socket_dir())
    );
    let out = locktop(
        &["snapshot", "--dsn", "service=trading"],
        &env[..1],
        home.path(),
    );
    assert_eq!(
        target_of(&out),
        format!("postgres@{}/connect", socket_dir())
    );
    // psql's -d wins over the service's dbname.
    let out = locktop(&["snapshot", "-d", "postgres"], &env, home.path());
    assert_eq!(out.status.code(), Some(1), "no lease table in postgres");
    assert!(stderr(&out).contains("lease table"), "{}", stderr(&out));
    // ~/.pg_service.conf is the user's file when PGSERVICEFILE is not set.
    std::fs::copy(&file, home.path().join(".pg_service.conf")).expect("copy");
    let out = locktop(&["snapshot"], &[("PGSERVICE", "trading")], home.path());
    assert_eq!(
        target_of(&out),
        format!("postgres@{}/connect", socket_dir())
    );
    let out = locktop(&["snapshot"], &[("PGSERVICE", "nosuch")], home.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("service \"nosuch\" not found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn without_a_user_the_os_user_is_the_role_as_in_libpq() {
    let home = home();
    let port = port().to_string();
    let dir = socket_dir();
    let env = [
        ("PGHOST", dir.as_str()),
        ("PGPORT", port.as_str()),
        ("PGDATABASE", "connect"),
    ];
    // As root the cluster runs as the postgres OS user and its superuser is that role: run as that user.
    let root = nix::unistd::geteuid().is_root();
    let (user, role) = if root {
        (Some("postgres"), "postgres".to_owned())
    } else {
        (None, std::env::var("USER").expect("USER"))
    };
    let out = locktop_as(user, &["snapshot"], &env, home.path());
    assert_eq!(target_of(&out), format!("{role}@{dir}/connect"));
}

#[test]
fn with_several_hosts_a_dead_first_one_is_passed_over() {
    let home = home();
    let dsn = format!(
        "host=127.0.0.1,{} port=1,{} dbname=connect user=postgres",
        socket_dir(),
        port()
    );
    let out = locktop(&["snapshot", "--dsn", &dsn], &[], home.path());
    assert_eq!(
        target_of(&out),
        format!("postgres@127.0.0.1:1,{}/connect", socket_dir())
    );
    // The same as a URL: hosts with their ports, and when all fail each one is named.
    let dsn = "postgres://postgres@127.0.0.1:1,127.0.0.1:2/connect";
    let out = locktop(&["snapshot", "--dsn", dsn], &[], home.path());
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("127.0.0.1:1:") && e.contains("127.0.0.1:2:"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn a_silent_server_costs_connect_timeout_then_the_next_host_is_tried() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    // Accepts and never answers, keeping the connections open.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().flatten() {
            held.push(s);
        }
    });
    let home = home();
    let started = Instant::now();
    let dsn =
        format!("host=127.0.0.1 port={silent_port} connect_timeout=2 dbname=connect user=postgres");
    let out = locktop(&["snapshot", "--dsn", &dsn], &[], home.path());
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no answer within 2s (connect_timeout)"),
        "{}",
        stderr(&out)
    );
    // The message names the wait (without the parameter it would be 5 s); no upper bound on the time, which
    // a loaded machine stretches.
    assert!(
        took >= Duration::from_secs(2),
        "connect_timeout=2 took {took:?}"
    );
    // PGCONNECT_TIMEOUT, and the next host after the silent one.
    let started = Instant::now();
    let dsn = format!(
        "host=127.0.0.1,{} port={silent_port},{} dbname=connect user=postgres",
        socket_dir(),
        port()
    );
    let out = locktop(
        &["snapshot", "--dsn", &dsn],
        &[("PGCONNECT_TIMEOUT", "2")],
        home.path(),
    );
    assert!(target_of(&out).contains("connect"));
    assert!(
        started.elapsed() < Duration::from_millis(4_500),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn socket_directories_in_urls_and_sslmode_ignored_on_a_socket() {
    let home = home();
    let dir = socket_dir();
    let encoded: String = dir.replace('/', "%2F");
    for url in [
        format!("postgres://postgres@/connect?host={dir}&port={}", port()),
        format!("postgresql://postgres@{encoded}:{}/connect", port()),
        format!(
            "postgres://postgres@/connect?host={dir}&port={}&sslmode=require",
            port()
        ),
    ] {
        let out = locktop(&["snapshot", "--dsn", &url], &[], home.path());
        assert_eq!(target_of(&out), format!("postgres@{dir}/connect"), "{url}");
    }
}

#[test]
fn the_password_file_matches_socket_lines_and_a_wrong_password_is_never_echoed() {
    use std::os::unix::fs::PermissionsExt;
    let home = home();
    let pgpass = home.path().join(".pgpass");
    std::fs::write(
        &pgpass,
        format!(
            "127.0.0.1:*:*:pwuser:not-this-one\n{}:{}:connect:pwuser:{PASSWORD}\n",
            socket_dir().replace(':', "\\:"),
            port()
        ),
    )
    .expect("pgpass");
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let dsn = format!(
        "host={} port={} user=pwuser dbname=connect",
        socket_dir(),
        port()
    );
    let out = locktop(&["snapshot", "--dsn", &dsn], &[], home.path());
    assert!(target_of(&out).starts_with("pwuser@"));
    // The same file named by PGPASSFILE, or by passfile= in the DSN, from another place.
    let moved = home.path().join("elsewhere.pgpass");
    std::fs::rename(&pgpass, &moved).expect("move");
    let moved_arg = moved.display().to_string();
    let out = locktop(
        &["snapshot", "--dsn", &dsn],
        &[("PGPASSFILE", &moved_arg)],
        home.path(),
    );
    assert!(target_of(&out).starts_with("pwuser@"));
    let with_key = format!("{dsn} passfile={moved_arg}");
    let out = locktop(&["snapshot", "--dsn", &with_key], &[], home.path());
    assert!(target_of(&out).starts_with("pwuser@"));
    std::fs::rename(&moved, &pgpass).expect("move back");
    // Others may read it: skipped with a warning, as libpq does; the login then fails.
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = locktop(&["snapshot", "--dsn", &dsn], &[], home.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("group or world access"),
        "{}",
        stderr(&out)
    );
    // A wrong password, in a URL and in PGPASSWORD: the error says what failed, never the password.
    for (dsn, env) in [
        (
            format!(
                "postgres://pwuser:Wrong7Secret@127.0.0.1:{}/connect?sslmode=disable",
                port()
            ),
            vec![],
        ),
        (
            format!("host=127.0.0.1 port={} user=pwuser dbname=connect", port()),
            vec![("PGPASSWORD", "Wrong7Secret")],
        ),
    ] {
        let out = locktop(&["snapshot", "--dsn", &dsn], &env, home.path());
        assert_eq!(out.status.code(), Some(1));
        let e = stderr(&out);
        assert!(
            e.contains("authentication failed for pwuser@127.0.0.1"),
            "{e}"
        );
        assert!(!e.contains("Wrong7Secret") && !e.contains(PASSWORD), "{e}");
    }
}

#[test]
fn a_bad_sslmode_or_an_unknown_key_is_one_line_naming_it() {
    let home = home();
    let out = locktop(
        &[
            "snapshot",
            "--dsn",
            &format!("host={} dbname=connect", socket_dir()),
        ],
        &[("PGSSLMODE", "bogus")],
        home.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let e = stderr(&out);
    assert!(
        e.contains("sslmode \"bogus\"") && e.contains("verify-full"),
        "{e}"
    );
    let out = locktop(
        &["snapshot", "--dsn", "dbnmae=test password=Tail9Secret"],
        &[],
        home.path(),
    );
    let e = stderr(&out);
    assert!(
        e.contains("unknown key \"dbnmae\"") && e.contains("dbname"),
        "{e}"
    );
    assert!(!e.contains("Tail9Secret"), "{e}");
    // The password's warning, then the one line of the error.
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 2, "{e}");
    assert!(
        lines[0].contains("warning: a password on the command line"),
        "{e}"
    );
}

#[test]
fn a_password_on_the_command_line_leaves_the_process_arguments_with_a_warning() {
    let url = format!(
        "postgres://pwuser:{PASSWORD}@127.0.0.1:{}/connect?sslmode=disable",
        port()
    );
    let mut tui = common::pty::Tui::start(&["--dsn", &url, "--interval", "300ms"]);
    tui.wait_for("profiles (0)");
    let pid = tui.child.process_id().expect("pid");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(!cmdline.contains(PASSWORD), "{cmdline}");
    assert!(
        cmdline.contains("--interval 300ms"),
        "the other arguments stay: {cmdline}"
    );
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).expect("comm");
    assert_eq!(comm.trim(), "locktop", "and its name");
    tui.keys("q");
    assert_eq!(tui.wait_exit(), 0);
    let raw = tui.raw_output();
    assert!(
        raw.contains("use PGPASSWORD, ~/.pgpass or a service file"),
        "{raw:?}"
    );
    assert!(!raw.contains(PASSWORD), "the screen never shows it");
}

#[test]
fn files_are_0600_and_record_refuses_a_link_and_another_targets_recording() {
    use std::os::unix::fs::PermissionsExt;
    let home = home();
    let dir = home.path();
    let dsn = format!(
        "host={} port={} user=postgres dbname=connect",
        socket_dir(),
        port()
    );
    // The log file is created 0600.
    let log = dir.join("locktop.log");
    let out = locktop(
        &[
            "snapshot",
            "--dsn",
            &dsn,
            "--log-file",
            &log.display().to_string(),
        ],
        &[],
        dir,
    );
    assert!(target_of(&out).contains("connect"));
    let mode = |p: &Path| std::fs::metadata(p).expect("file").permissions().mode() & 0o777;
    assert_eq!(mode(&log), 0o600);
    // A recording, then a link to it, then another target's recording.
    let record = dir.join("incident.jsonl");
    let record_arg = record.display().to_string();
    let mut tui = common::pty::Tui::start(&["--dsn", &dsn, "--record", &record_arg]);
    tui.wait_for("profiles (0)");
    tui.keys("q");
    assert_eq!(tui.wait_exit(), 0);
    assert_eq!(mode(&record), 0o600);
    let link = dir.join("link.jsonl");
    std::os::unix::fs::symlink(&record, &link).expect("symlink");
    let other = format!(
        "host={} port={} user=postgres dbname=postgres",
        socket_dir(),
        port()
    );
    let refusals = [
        (
            vec![
                "--dsn",
                dsn.as_str(),
                "--record",
                link.to_str().expect("utf8"),
            ],
            "symbolic link",
        ),
        (
            vec!["--dsn", other.as_str(), "--record", record_arg.as_str()],
            "it is a recording of",
        ),
    ];
    for (args, needle) in refusals {
        let mut tui = common::pty::Tui::start(&args);
        assert_eq!(tui.wait_exit(), 1, "{args:?}");
        let raw = tui.raw_output();
        assert!(
            raw.contains(needle) && !raw.contains("\x1b[?1049h"),
            "{args:?}: {raw:?}"
        );
    }
    // Asked to, it appends anyway (the other database has no lease table: that is the error now).
    let mut tui = common::pty::Tui::start(&[
        "--dsn",
        &other,
        "--record",
        &record_arg,
        "--record-append-other",
    ]);
    assert_eq!(tui.wait_exit(), 1);
    assert!(
        tui.raw_output().contains("lease table"),
        "{:?}",
        tui.raw_output()
    );
}

#[test]
fn a_password_is_asked_for_only_when_needed_or_with_w_and_never_with_lowercase_w() {
    let dsn = format!(
        "host=127.0.0.1 port={} user=pwuser dbname=connect sslmode=disable",
        port()
    );
    let home = home();
    let home_env = home.path().display().to_string();
    let env = [("HOME", home_env.as_str()), ("PGPASSFILE", "/nonexistent")];
    for args in [
        vec!["snapshot", "--dsn", dsn.as_str()],
        vec!["snapshot", "-W", "--dsn", dsn.as_str()],
    ] {
        let mut tui = common::pty::Tui::spawn(&args, &env, (24, 80));
        tui.wait_for("Password for pwuser@127.0.0.1");
        tui.keys(&format!("{PASSWORD}\r"));
        assert_eq!(tui.wait_exit(), 0, "{args:?}: {:?}", tui.raw_output());
        assert!(!tui.raw_output().contains(PASSWORD), "not echoed");
    }
    let mut tui = common::pty::Tui::spawn(&["snapshot", "-w", "--dsn", &dsn], &env, (24, 80));
    assert_eq!(tui.wait_exit(), 1);
    let raw = tui.raw_output();
    assert!(
        raw.contains("authentication failed") && !raw.contains("Password for"),
        "{raw:?}"
    );
    // Not a terminal: never asked.
    let out = locktop(
        &["snapshot", "--dsn", &dsn],
        &[("PGPASSFILE", "/nonexistent")],
        home.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("authentication failed"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_password_files_warning_never_lands_on_the_dashboard() {
    use std::os::unix::fs::PermissionsExt;
    let home = home();
    let pgpass = home.path().join(".pgpass");
    std::fs::write(&pgpass, "*:*:*:*:whatever\n").expect("pgpass");
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let good = format!(
        "host={} port={} user=postgres dbname=connect",
        socket_dir(),
        port()
    );
    // A second database that is down: the poller retries it (and reads the password file) while the
    // dashboard is on screen.
    let down = "host=127.0.0.1 port=1 user=postgres dbname=down";
    let home_env = home.path().display().to_string();
    let mut tui = common::pty::Tui::spawn(
        &["--dsn", &good, "--dsn", down, "--interval", "200ms"],
        &[("HOME", home_env.as_str())],
        (40, 120),
    );
    tui.wait_for("DOWN");
    let raw = tui.raw_output();
    let entered = raw.find("\x1b[?1049h").expect("the dashboard is on screen");
    assert!(
        raw[..entered].contains("group or world access"),
        "said once, before: {raw:?}"
    );
    // Several retries later, still not on the dashboard's screen.
    std::thread::sleep(Duration::from_millis(1_500));
    let raw = tui.raw_output();
    assert!(!raw[entered..].contains("group or world access"), "{raw:?}");
    tui.keys("q");
    assert_eq!(tui.wait_exit(), 0);
}
