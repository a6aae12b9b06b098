//! The real binary in a pseudo-terminal against the test cluster with real contention: it starts, shows the
//! contended profile, answers keys, quits with status 0 and leaves the terminal restored.

mod common;

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{connect_as, database};
use portable_pty::{CommandBuilder, PtySize, native_pty_system};

struct Tui {
    child: Box<dyn portable_pty::Child + Send + Sync>,
    writer: Box<dyn Write + Send>,
    output: Arc<Mutex<Vec<u8>>>,
    master: Box<dyn portable_pty::MasterPty + Send>,
}

impl Tui {
    fn start(args: &[&str]) -> Self {
        let pty = native_pty_system()
            .openpty(PtySize {
                rows: 40,
                cols: 120,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("pty");
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_locktop"));
        cmd.args(args);
        cmd.env("TERM", "xterm-256color");
        cmd.env("LANG", "C.UTF-8");
        cmd.env_remove("NO_COLOR");
        let child = pty.slave.spawn_command(cmd).expect("spawn");
        drop(pty.slave);
        let mut reader = pty.master.try_clone_reader().expect("reader");
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut buf = [0_u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("lock").extend_from_slice(&buf[..n]);
            }
        });
        let writer = pty.master.take_writer().expect("writer");
        Self {
            child,
            writer,
            output,
            master: pty.master,
        }
    }

    fn screen(&self) -> String {
        let mut parser = vt100::Parser::new(40, 120, 0);
        parser.process(&self.output.lock().expect("lock"));
        parser.screen().contents()
    }

    fn wait_for(&self, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if screen.contains(what) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what:?}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn keys(&mut self, keys: &str) {
        self.writer.write_all(keys.as_bytes()).expect("write");
        self.writer.flush().expect("flush");
    }

    fn wait_exit(&mut self) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.exit_code();
            }
            assert!(Instant::now() < deadline, "locktop did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn resize(&self, rows: u16, cols: u16) {
        self.master
            .resize(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("resize");
    }

    fn terminate(&mut self) {
        let pid = self.child.process_id().expect("pid");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Whether the terminal is in canonical mode with echo (what a shell expects; raw mode turns both off).
    fn cooked(&self) -> bool {
        use nix::sys::termios::LocalFlags;
        let termios = self.master.get_termios().expect("termios");
        termios
            .local_flags
            .contains(LocalFlags::ICANON | LocalFlags::ECHO)
    }

    fn raw_output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().expect("lock")).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_contention_answers_keys_and_restores_the_terminal() {
    let url = database("tui").await;
    let mut holder = connect_as(&url, "w1").await;
    let mut rival = connect_as(&url, "w2").await;
    for profile in ["HOT", "CALM"] {
        let ok: bool = sqlx::query_scalar("SELECT fn_try_acquire_entry_lock_row($1, 'BTC', 'w1')")
            .bind(profile)
            .fetch_one(&mut holder)
            .await
            .expect("acquire");
        assert!(ok);
    }
    let failed: bool =
        sqlx::query_scalar("SELECT fn_try_acquire_entry_lock_row('HOT', 'BTC', 'w2')")
            .fetch_one(&mut rival)
            .await
            .expect("contend");
    assert!(!failed);

    let url2 = url.clone();
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
        std::thread::sleep(Duration::from_millis(100));
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
