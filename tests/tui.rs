//! The real binary in a pseudo-terminal against the test cluster with real contention: it starts, shows the
//! contended profile, answers keys, quits with status 0 and leaves the terminal restored.

mod common;

use std::time::{Duration, Instant};

use common::pty::Tui;
use common::{connect_as, database};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_contention_answers_keys_and_restores_the_terminal() {
    let url = database("tui").await;
    let _hot = common::acquire(&url, "HOT", "w1").await;
    let _calm = common::acquire(&url, "CALM", "w1").await;
    let mut rival = connect_as(&url, "w2").await;
    let failed: bool =
        sqlx::query_scalar("SELECT fn_try_acquire_entry_lock_row('HOT', 'BTC', 'w2')")
            .fetch_one(&mut rival)
            .await
            .expect("contend");
    assert!(!failed);

    let url2 = url.to_string();
    let screen = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut tui = Tui::start(&["--dsn", &url2, "--interval", "1s"]);
        let first = tui.wait_for("contended");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "within two intervals: {:?}",
            started.elapsed()
        );
        assert!(!tui.cooked(), "raw mode while the dashboard runs");
        assert!(first.contains("HOT") && first.contains("CALM"), "{first}");
        tui.keys("?");
        tui.wait_for("help (? or Esc closes)");
        tui.keys("\x1b");
        tui.keys("/CAL");
        let filtered = tui.wait_for("profiles (1 of 2 match /CAL)");
        tui.keys("\r");
        tui.keys("q");
        assert_eq!(tui.wait_exit(), 0);
        assert!(tui.cooked(), "raw mode is left at exit");
        let raw = tui.raw_output();
        let entered = raw
            .rfind("\x1b[?1049h")
            .expect("entered the alternate screen");
        let left = raw.rfind("\x1b[?1049l").expect("left the alternate screen");
        assert!(left > entered, "the alternate screen is left at exit");
        assert!(
            raw[left..].contains("\x1b[?25h") || raw.rfind("\x1b[?25h") > Some(entered),
            "cursor shown again"
        );
        filtered
    })
    .await
    .expect("pty test");
    assert!(!screen.contains("HOT "), "the filter hides HOT:\n{screen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_dsn_exits_non_zero_with_one_line_before_touching_the_terminal() {
    let result = tokio::task::spawn_blocking(|| {
        let mut tui = Tui::start(&["--dsn", "postgres://nobody:s3cret@127.0.0.1:1/nowhere"]);
        let code = tui.wait_exit();
        (code, tui.raw_output())
    })
    .await
    .expect("pty test");
    let (code, raw) = result;
    assert_eq!(code, 1);
    assert!(
        !raw.contains("\x1b[?1049h"),
        "the terminal was never switched: {raw:?}"
    );
    // The warning that the password on the command line was taken out, then the error's one line.
    let lines: Vec<&str> = raw.trim().lines().collect();
    assert_eq!(lines.len(), 2, "{raw:?}");
    assert!(lines[0].starts_with("locktop: warning: a password on the command line"));
    assert!(
        lines[1].starts_with("locktop: cannot connect to nobody@127.0.0.1:1/nowhere"),
        "{raw:?}"
    );
    assert!(!raw.contains("s3cret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resize_redraws_and_sigterm_exits_cleanly() {
    let url = database("tui_term").await;
    let mut holder = connect_as(&url, "w1").await;
    let ok: bool = sqlx::query_scalar("SELECT fn_try_acquire_entry_lock_row('ONLY', 'BTC', 'w1')")
        .fetch_one(&mut holder)
        .await
        .expect("acquire");
    assert!(ok);
    tokio::task::spawn_blocking(move || {
        let mut tui = Tui::start(&["--dsn", &url, "--interval", "200ms"]);
        tui.wait_for("ONLY");
        let before = tui.output.lock().expect("lock").len();
        tui.resize(20, 70);
        // The narrower layout cuts the footer after "p pause": it is drawn again at the new width.
        let deadline = Instant::now() + Duration::from_secs(10);
        while tui.output.lock().expect("lock").len() == before {
            assert!(Instant::now() < deadline, "no redraw after the resize");
            std::thread::sleep(Duration::from_millis(20));
        }
        tui.resize(10, 40);
        tui.wait_for("terminal too small: 40x10");
        tui.resize(30, 100);
        tui.wait_for("ONLY");
        tui.terminate();
        assert_eq!(tui.wait_exit(), 0, "SIGTERM is a normal way out");
        assert!(tui.cooked(), "raw mode is left after SIGTERM");
        let raw = tui.raw_output();
        assert!(
            raw.rfind("\x1b[?1049l") > raw.rfind("\x1b[?1049h"),
            "the alternate screen is left"
        );
    })
    .await
    .expect("pty test");
}

/// The dashboard's memory goes back to the system: no transparent huge pages (mimalloc asks for them, and
/// they are resident whole: at 50,000 profiles, half of its memory), and no delay before freed pages are
/// given back (the poll each second came within it), unless the operator set one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_gives_memory_back_without_huge_pages_or_a_purge_delay() {
    let url = database("tui_thp").await;
    tokio::task::spawn_blocking(move || {
        for (env, delay) in [(None, "0"), (Some("250"), "250")] {
            let env: Vec<(&str, &str)> = env
                .map(|v| ("MIMALLOC_PURGE_DELAY", v))
                .into_iter()
                .collect();
            let mut tui = Tui::spawn(&["--dsn", &url, "--interval", "200ms"], &env, (40, 120));
            tui.wait_for("profiles (0)");
            let pid = tui.child.process_id().expect("pid");
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
            assert!(
                status
                    .lines()
                    .any(|l| l.split_whitespace().eq(["THP_enabled:", "0"])),
                "{status}"
            );
            // Started again by its own path, it keeps its name (not `exe`).
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).expect("comm");
            assert_eq!(comm.trim(), "locktop");
            let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
            let want = format!("MIMALLOC_PURGE_DELAY={delay}");
            assert!(
                environ.split(|b| *b == 0).any(|v| v == want.as_bytes()),
                "{want} in {}",
                String::from_utf8_lossy(&environ)
            );
            tui.keys("q");
            assert_eq!(tui.wait_exit(), 0);
        }
    })
    .await
    .expect("pty test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_restores_the_terminal_before_its_message_is_printed() {
    let url = database("tui_panic").await;
    let _holder = connect_as(&url, "w1").await;
    tokio::task::spawn_blocking(move || {
        // A debug build panics on purpose once data is on screen when LOCKTOP_TEST_PANIC is set.
        let mut tui = Tui::spawn(
            &["--dsn", &url, "--interval", "200ms"],
            &[("LOCKTOP_TEST_PANIC", "1"), ("RUST_BACKTRACE", "0")],
            (40, 120),
        );
        let code = tui.wait_exit();
        let raw = tui.raw_output();
        assert_ne!(code, 0, "a panic is a failure: {raw:?}");
        assert!(tui.cooked(), "raw mode is left after a panic");
        let entered = raw
            .find("\x1b[?1049h")
            .expect("the dashboard was on screen");
        let left = raw
            .find("\x1b[?1049l")
            .expect("the alternate screen is left");
        let message = raw
            .find("a deliberate panic")
            .expect("the panic message is printed");
        assert!(
            entered < left && left < message,
            "restored first, then the message: {raw:?}"
        );
    })
    .await
    .expect("pty");
}

/// The state letter of a process in /proc (`T` while stopped).
fn process_state(pid: u32) -> char {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after = stat.rsplit_once(')')?.1;
            after.trim_start().chars().next()
        })
        .unwrap_or('?')
}

fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name}");
}

fn wait_until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the alternate screen was left after it was last entered.
fn left_alternate_screen(raw: &str) -> bool {
    raw.rfind("\x1b[?1049l") > raw.rfind("\x1b[?1049h")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigtstp_from_outside_and_ctrl_z_hand_the_terminal_back_and_sigcont_takes_it_again() {
    let url = database("suspend").await;
    let _held = common::acquire(&url, "HOT", "w1").await;
    let url = url.to_string();
    tokio::task::spawn_blocking(move || {
        let mut tui = Tui::start(&["--dsn", &url, "--interval", "1s"]);
        tui.wait_for("HOT");
        let pid = tui.child.process_id().expect("pid");
        for (how, suspend) in [("SIGTSTP", None), ("Ctrl-Z", Some("\x1a"))] {
            match suspend {
                None => signal(pid, "TSTP"),
                Some(key) => tui.keys(key),
            }
            wait_until(&format!("{how}: stopped"), || process_state(pid) == 'T');
            assert!(tui.cooked(), "{how}: the shell gets a cooked terminal back");
            // Written before the stop; the pty's reader may take a moment to pass it on.
            wait_until(
                &format!("{how}: the alternate screen is left while stopped"),
                || left_alternate_screen(&tui.raw_output()),
            );
            let before = tui.raw_output().len();
            signal(pid, "CONT");
            wait_until(&format!("{how}: the screen is taken again"), || {
                !tui.cooked() && tui.raw_output()[before..].contains("\x1b[?1049h")
            });
            tui.wait_for("HOT");
        }
        tui.keys("q");
        assert_eq!(tui.wait_exit(), 0);
        assert!(tui.cooked());
    })
    .await
    .expect("pty test");
}

/// Two contended profiles (the several-contended trigger fires), a calm one, and an advisory lock wait.
async fn busy_scene(url: &str) -> Vec<sqlx::PgConnection> {
    let mut keep = Vec::new();
    for p in ["HOT", "WARM", "CALM"] {
        keep.push(common::acquire(url, p, "w1").await);
    }
    let mut rival = connect_as(url, "w2").await;
    for p in ["HOT", "WARM"] {
        let won: bool = sqlx::query_scalar("SELECT fn_try_acquire_entry_lock_row($1, 'BTC', 'w2')")
            .bind(p)
            .fetch_one(&mut rival)
            .await
            .expect("contend");
        assert!(!won);
    }
    keep.push(rival);
    keep
}

/// The row (0-based) of the first line of a pane (inside its border) holding `what`.
fn row_of(screen: &str, what: &str) -> u16 {
    screen
        .lines()
        .position(|l| l.starts_with('│') && l.contains(what))
        .unwrap_or_else(|| panic!("{what:?} not on screen:\n{screen}")) as u16
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_freezes_the_screen_a_lists_alerts_enter_opens_a_waits_blocker_and_the_mouse_picks() {
    let url = database("tui_keys").await;
    let _scene = busy_scene(&url).await;
    let wait =
        common::AdvisoryWait::start(&url, 77, "scheduler-a", "SELECT pg_advisory_lock(77)").await;
    let url2 = url.to_string();
    tokio::task::spawn_blocking(move || {
        let mut tui = Tui::start(&["--dsn", &url2, "--interval", "300ms"]);
        tui.wait_for("contended at once");
        // a: every alert with its runbook; Esc closes.
        tui.keys("a");
        let list = tui.wait_for("runbook:");
        assert!(list.contains("several_contended: HOT, WARM"), "{list}");
        tui.keys("\x1b");
        tui.wait_screen("the list closed", |s| !s.contains("runbook:"));
        // p: nothing moves (the TTL countdowns tick every second otherwise), polling goes on underneath.
        tui.keys("p");
        let frozen = tui.wait_for("PAUSED");
        assert!(!frozen.contains("stale"), "{frozen}");
        std::thread::sleep(Duration::from_millis(1_500));
        assert_eq!(tui.screen(), frozen, "the paused screen changed");
        tui.keys("p");
        tui.wait_screen("the resumed screen", |s| {
            !s.contains("PAUSED") && s != frozen
        });
        // Enter on the advisory wait (no lease row): its blocker's backend.
        tui.keys("\t\r");
        let backend = tui.wait_for("backend ");
        assert!(
            backend.contains("scheduler-a") && backend.contains("blocks pid"),
            "{backend}"
        );
        tui.keys("\x1b");
        tui.wait_screen("the waits again", |s| !s.contains("backend "));
        // A click on WARM's line selects it; Enter opens its detail. The wheel moves to the next profile.
        let screen = tui.screen();
        let warm = row_of(&screen, "WARM");
        tui.click(20, warm);
        tui.keys("\r");
        tui.wait_for("WARM (Esc closes");
        tui.keys("\x1b");
        let screen = tui.wait_screen("the detail closed", |s| !s.contains("(Esc closes"));
        let next = screen
            .lines()
            .nth(usize::from(row_of(&screen, "WARM") + 1))
            .and_then(|l| ["HOT", "CALM"].into_iter().find(|p| l.contains(p)))
            .expect("a profile below WARM");
        tui.wheel_down(20, row_of(&screen, "WARM"));
        tui.keys("\r");
        tui.wait_for(&format!("{next} (Esc closes"));
        tui.keys("q");
        assert_eq!(tui.wait_exit(), 0);
        let raw = tui.raw_output();
        assert!(raw.contains("\x1b[?1000h"), "mouse capture on");
        assert!(
            raw.rfind("\x1b[?1000l") > raw.rfind("\x1b[?1000h"),
            "mouse capture off at exit"
        );
    })
    .await
    .expect("pty test");
    wait.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_lang_c_and_term_xterm_every_byte_is_ascii_and_colours_are_the_16_classic_ones() {
    let url = database("tui_ascii").await;
    let _scene = busy_scene(&url).await;
    let mut conn = common::connect(&url).await;
    sqlx::query(
        "INSERT INTO entry_locks (profile_id, symbol, owner_token, expires_at) \
         VALUES ($1, $2, $3, now() + interval '1 hour')",
    )
    .bind("利润-\u{202E}evil")
    .bind("🚀")
    .bind("o\u{9b}2J\u{200B}")
    .execute(&mut conn)
    .await
    .expect("insert");
    let url2 = url.to_string();
    let raw = tokio::task::spawn_blocking(move || {
        let mut tui = Tui::spawn(
            &["--dsn", &url2, "--interval", "300ms", "--no-mouse"],
            &[
                ("LANG", "C"),
                ("LC_ALL", ""),
                ("LC_CTYPE", ""),
                ("TERM", "xterm"),
            ],
            (24, 80),
        );
        tui.wait_for("contended at once");
        tui.keys("a");
        tui.wait_for("runbook:");
        tui.keys("\x1b/evil\r\r");
        tui.wait_for("(Esc closes");
        tui.keys("q");
        assert_eq!(tui.wait_exit(), 0);
        tui.output.lock().expect("lock").clone()
    })
    .await
    .expect("pty test");
    let text = String::from_utf8_lossy(&raw);
    assert!(
        raw.is_ascii(),
        "bytes above 0x7f: {:?}",
        raw.iter()
            .filter(|b| **b > 0x7f)
            .take(10)
            .collect::<Vec<_>>()
    );
    assert!(
        !text.contains("38;5;") && !text.contains("48;5;"),
        "256-colour codes under TERM=xterm"
    );
    assert!(
        text.contains("\x1b[3") || text.contains("\x1b[9"),
        "colours are still there"
    );
    assert!(
        !text.contains("\x1b[?1000h"),
        "--no-mouse leaves the mouse to the terminal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboards_on_alert_gets_the_alert_on_stdin_and_its_failure_is_a_note_not_terminal_output()
 {
    let url = database("tui_hook").await;
    let mut admin = common::connect(&url).await;
    common::exec(
        &mut admin,
        "INSERT INTO entry_locks VALUES \
           ('HOOKED', 'AAPL', 'w1', now(), now() + interval '25 s', 40, now() - interval '100 s', now())",
    )
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("alerts.jsonl");
    // The command prints to stdout and stderr too: neither may reach the dashboard's terminal.
    let hook = format!(
        "cat >> '{}'; echo HOOK-STDOUT; echo HOOK-STDERR-SAYS-WHY >&2; exit 4",
        file.display()
    );
    let url2 = url.to_string();
    let screen = tokio::task::spawn_blocking(move || {
        let mut tui = Tui::start(&["--dsn", &url2, "--interval", "300ms", "--on-alert", &hook]);
        let screen = tui.wait_for("--on-alert failed");
        tui.keys("q");
        assert_eq!(tui.wait_exit(), 0);
        let raw = tui.raw_output();
        assert!(
            !raw.contains("HOOK-STDOUT"),
            "the command's stdout reached the terminal"
        );
        screen
    })
    .await
    .expect("pty test");
    assert!(
        screen.contains("exit status: 4: HOOK-STDERR-SAYS-WHY"),
        "{screen}"
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&file)
        .expect("the command ran")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["event"], "start");
    assert_eq!(lines[0]["trigger"], "contended_too_long");
    assert_eq!(lines[0]["profile"], "HOOKED");
    assert_eq!(
        lines[0]["alert"]["contended_for_s"]
            .as_i64()
            .map(|s| s >= 100),
        Some(true)
    );
}
