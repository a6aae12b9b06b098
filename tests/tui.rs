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
    let text = raw.trim();
    assert_eq!(text.lines().count(), 1, "{text:?}");
    assert!(
        text.starts_with("locktop: cannot connect to nobody@127.0.0.1:1/nowhere"),
        "{text:?}"
    );
    assert!(!text.contains("s3cret"));
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
            assert!(
                left_alternate_screen(&tui.raw_output()),
                "{how}: the alternate screen is left while stopped"
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
