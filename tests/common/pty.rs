//! The real binary in a pseudo-terminal: a helper that starts it, reads the screen as a terminal would show it,
//! sends keys and signals, and checks the terminal modes it leaves behind.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

pub struct Tui {
    pub child: Box<dyn portable_pty::Child + Send + Sync>,
    writer: Box<dyn Write + Send>,
    pub output: Arc<Mutex<Vec<u8>>>,
    master: Box<dyn portable_pty::MasterPty + Send>,
    /// Set when the reader has seen the end of the output (the program and its terminal are gone).
    drained: Arc<std::sync::atomic::AtomicBool>,
}

impl Tui {
    /// The binary with `args` on a 120×40 terminal.
    pub fn start(args: &[&str]) -> Self {
        Self::spawn(args, &[], (40, 120))
    }

    /// The binary with `args`, extra environment variables, on a terminal of `(rows, cols)`.
    pub fn spawn(args: &[&str], env: &[(&str, &str)], (rows, cols): (u16, u16)) -> Self {
        let pty = native_pty_system()
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("pty");
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_locktop"));
        cmd.args(args);
        cmd.env("TERM", "xterm-256color");
        cmd.env("LANG", "C.UTF-8");
        cmd.env_remove("NO_COLOR");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = pty.slave.spawn_command(cmd).expect("spawn");
        drop(pty.slave);
        let mut reader = pty.master.try_clone_reader().expect("reader");
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&output);
        let drained = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = Arc::clone(&drained);
        std::thread::spawn(move || {
            let mut buf = [0_u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("lock").extend_from_slice(&buf[..n]);
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        let writer = pty.master.take_writer().expect("writer");
        Self {
            child,
            writer,
            output,
            master: pty.master,
            drained,
        }
    }

    pub fn screen(&self) -> String {
        let size = self.master.get_size().expect("size");
        let mut parser = vt100::Parser::new(size.rows, size.cols, 0);
        parser.process(&self.output.lock().expect("lock"));
        parser.screen().contents()
    }

    pub fn wait_for(&self, what: &str) -> String {
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

    /// Waits until the screen satisfies `check`; returns it.
    pub fn wait_screen(&self, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if check(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A left click at a cell (0-based column and row), as a terminal reports it with SGR mouse reporting.
    pub fn click(&mut self, column: u16, row: u16) {
        self.keys(&format!(
            "\x1b[<0;{};{}M\x1b[<0;{};{}m",
            column + 1,
            row + 1,
            column + 1,
            row + 1
        ));
    }

    /// One notch of the wheel down at a cell.
    pub fn wheel_down(&mut self, column: u16, row: u16) {
        self.keys(&format!("\x1b[<65;{};{}M", column + 1, row + 1));
    }

    pub fn keys(&mut self, keys: &str) {
        self.writer.write_all(keys.as_bytes()).expect("write");
        self.writer.flush().expect("flush");
    }

    /// Waits for the program to exit and for its last output to be read; returns the exit status.
    pub fn wait_exit(&mut self) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(10);
        let code = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status.exit_code();
            }
            assert!(Instant::now() < deadline, "locktop did not exit");
            std::thread::sleep(Duration::from_millis(20));
        };
        // The last bytes (leaving the alternate screen) may still be in the pty when the process is reaped.
        let drained = Instant::now() + Duration::from_secs(2);
        while !self.drained.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < drained {
            std::thread::sleep(Duration::from_millis(10));
        }
        code
    }

    pub fn resize(&self, rows: u16, cols: u16) {
        self.master
            .resize(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("resize");
    }

    pub fn terminate(&mut self) {
        let pid = self.child.process_id().expect("pid");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Whether the terminal is in canonical mode with echo (what a shell expects; raw mode turns both off).
    pub fn cooked(&self) -> bool {
        use nix::sys::termios::LocalFlags;
        let termios = self.master.get_termios().expect("termios");
        termios
            .local_flags
            .contains(LocalFlags::ICANON | LocalFlags::ECHO)
    }

    pub fn raw_output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().expect("lock")).into_owned()
    }
}
