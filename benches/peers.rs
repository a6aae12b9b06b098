//! Bytes to the terminal beside a peer, in one run on one scene: locktop and pg_top (Debian's `pgtop`) each in a
//! 180×40 pseudo-terminal, refreshing every second, watching the same throwaway cluster at the same time.
//!
//! `cargo bench --bench peers` plays the demo's pile-up (its incident scenarios and 20 calm profiles: about 30
//! lease rows with countdowns, contention, and a few lock waits, real-time TTL 30 s), lets both settle for 5 s,
//! then counts what each writes to its terminal over 30 s. Without `pg_top` on the PATH it says so and measures
//! locktop alone. With `LOCKTOP_PEERS_DUMP=DIR`, each tool's raw output is also written to `DIR/NAME.bytes` (and the milliseconds and length of each read to `DIR/NAME.reads`), for
//! a look at where the bytes go.

#[allow(dead_code)] // each benchmark uses only some of it
mod common;

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

/// A program in a pseudo-terminal of 180×40 whose output is counted (and kept, for a look at the end).
struct Counted {
    name: &'static str,
    bytes: Arc<AtomicUsize>,
    screen: Arc<Mutex<vt100::Parser>>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
    _master: Box<dyn portable_pty::MasterPty + Send>,
}

impl Counted {
    fn spawn(name: &'static str, program: &str, args: &[&str]) -> Self {
        let pty = native_pty_system()
            .openpty(PtySize {
                rows: 40,
                cols: 180,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("pty");
        let mut cmd = CommandBuilder::new(program);
        cmd.args(args);
        cmd.env("TERM", "xterm-256color");
        cmd.env("LANG", "C.UTF-8");
        let child = pty.slave.spawn_command(cmd).expect("spawn");
        drop(pty.slave);
        let mut reader = pty.master.try_clone_reader().expect("reader");
        let bytes = Arc::new(AtomicUsize::new(0));
        let screen = Arc::new(Mutex::new(vt100::Parser::new(40, 180, 0)));
        let (count, parse) = (Arc::clone(&bytes), Arc::clone(&screen));
        let mut dump = std::env::var_os("LOCKTOP_PEERS_DUMP").map(|dir| {
            let file = |ext: &str| {
                std::fs::File::create(std::path::Path::new(&dir).join(format!("{name}.{ext}")))
                    .expect("dump file")
            };
            (file("bytes"), file("reads"), std::time::Instant::now())
        });
        std::thread::spawn(move || {
            let mut buf = [0_u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                count.fetch_add(n, Ordering::Relaxed);
                if let Some((bytes, reads, start)) = dump.as_mut() {
                    use std::io::Write;
                    let _ = bytes.write_all(&buf[..n]);
                    let _ = writeln!(reads, "{} {n}", start.elapsed().as_millis());
                }
                parse.lock().expect("lock").process(&buf[..n]);
            }
        });
        Self {
            name,
            bytes,
            screen,
            child,
            _master: pty.master,
        }
    }
}

fn main() {
    let (cluster, url, _rt, _sessions) = common::demo_scene(20, 8);
    let mut tools = vec![Counted::spawn(
        "locktop",
        env!("CARGO_BIN_EXE_locktop"),
        &["--dsn", &url, "--interval", "1s"],
    )];
    let has_pg_top = std::process::Command::new("pg_top")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if has_pg_top {
        let port = cluster.port().to_string();
        let host = cluster.root().display().to_string();
        tools.push(Counted::spawn(
            "pg_top",
            "pg_top",
            &[
                "-h", &host, "-p", &port, "-U", "postgres", "-d", "postgres", "-s", "1",
            ],
        ));
    } else {
        println!(
            "pg_top is not installed (Debian: apt-get install pgtop): measuring locktop alone"
        );
    }
    std::thread::sleep(Duration::from_secs(5));
    let start: Vec<usize> = tools
        .iter()
        .map(|t| t.bytes.load(Ordering::Relaxed))
        .collect();
    let window = Duration::from_secs(30);
    std::thread::sleep(window);
    for (tool, before) in tools.iter_mut().zip(start) {
        let per_s = (tool.bytes.load(Ordering::Relaxed) - before) as f64 / window.as_secs_f64();
        let lines = tool
            .screen
            .lock()
            .expect("lock")
            .screen()
            .contents()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count();
        println!(
            "{:<8} 180x40, 1 s refresh, demo pile-up: {per_s:.0} B/s to the terminal ({lines} lines on screen)",
            tool.name
        );
        let _ = tool.child.kill();
    }
    drop(cluster);
}
