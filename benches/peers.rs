//! Bytes to the terminal beside a peer, in one run on one scene: locktop and pg_top (Debian's `pgtop`) each in a
//! 180×40 pseudo-terminal, refreshing every second, watching the same throwaway cluster at the same time.
//!
//! `cargo bench --bench peers` plays the demo's pile-up (its incident scenarios and 20 calm profiles: about 30
//! lease rows with countdowns, contention, and a few lock waits, real-time TTL 30 s), lets both settle for 5 s,
//! then counts what each writes to its terminal over 30 s. Without `pg_top` on the PATH it says so and measures
//! locktop alone. With `LOCKTOP_PEERS_DUMP=DIR`, each tool's raw output is also written to `DIR/NAME.bytes` (and the milliseconds and length of each read to `DIR/NAME.reads`), for
//! a look at where the bytes go. With `LOCKTOP_PEERS_REPLAY=DIR` it plays nothing: it reads `DIR/locktop.bytes`
//! and `.reads` back, takes each frame the terminal showed (reads less than 30 ms apart are one frame), and
//! writes the same frames through locktop's backend as it is now, to weigh a change of the backend on frames
//! that do not differ from run to run.

#[allow(dead_code)] // each benchmark uses only some of it
mod common;

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

/// The pseudo-terminals' size, which the replay's screens must share with the run they replay.
const ROWS: u16 = 40;
const COLS: u16 = 180;

/// A program in a pseudo-terminal of [`COLS`]×[`ROWS`] whose output is counted (and kept, for a look at the end).
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
                rows: ROWS,
                cols: COLS,
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
        let screen = Arc::new(Mutex::new(vt100::Parser::new(ROWS, COLS, 0)));
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
    if let Some(dir) = std::env::var_os("LOCKTOP_PEERS_REPLAY") {
        replay(std::path::Path::new(&dir));
        return;
    }
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
            "{:<8} {COLS}x{ROWS}, 1 s refresh, demo pile-up: {per_s:.0} B/s to the terminal ({lines} lines on screen)",
            tool.name
        );
        let _ = tool.child.kill();
    }
    drop(cluster);
}

/// The frames of a dump (see the module), as the terminal showed them after each, with the second it began in.
fn frames(dir: &std::path::Path) -> Vec<(u64, ratatui::buffer::Buffer)> {
    let bytes = std::fs::read(dir.join("locktop.bytes")).expect("locktop.bytes");
    let reads = std::fs::read_to_string(dir.join("locktop.reads")).expect("locktop.reads");
    let mut parser = vt100::Parser::new(ROWS, COLS, 0);
    let (mut frames, mut offset, mut last): (Vec<(u64, usize)>, usize, Option<u64>) =
        (Vec::new(), 0, None);
    for line in reads.lines() {
        let (ms, n) = line.split_once(' ').expect("ms and length");
        let (ms, n): (u64, usize) = (ms.parse().expect("ms"), n.parse().expect("length"));
        match frames.last_mut() {
            Some((_, end)) if last.is_some_and(|l| ms - l <= 30) => *end = offset + n,
            _ => frames.push((ms, offset + n)),
        }
        offset += n;
        last = Some(ms);
    }
    let mut start = 0;
    frames
        .into_iter()
        .map(|(ms, end)| {
            parser.process(&bytes[start..end]);
            start = end;
            (ms / 1000, buffer_of(parser.screen()))
        })
        .collect()
}

/// What a screen shows, as ratatui's cells.
fn buffer_of(screen: &vt100::Screen) -> ratatui::buffer::Buffer {
    use ratatui::style::{Color, Modifier};
    let color = |c: vt100::Color| match c {
        vt100::Color::Default => Color::Reset,
        vt100::Color::Idx(n) => Color::Indexed(n),
        vt100::Color::Rgb(r, g, b) => Color::Rgb(r, g, b),
    };
    let mut buffer = ratatui::buffer::Buffer::empty(ratatui::layout::Rect::new(0, 0, COLS, ROWS));
    for y in 0..ROWS {
        for x in 0..COLS {
            let Some(cell) = screen.cell(y, x) else {
                continue;
            };
            if cell.is_wide_continuation() {
                continue;
            }
            let mut modifier = Modifier::empty();
            for (on, m) in [
                (cell.bold(), Modifier::BOLD),
                (cell.dim(), Modifier::DIM),
                (cell.italic(), Modifier::ITALIC),
                (cell.underline(), Modifier::UNDERLINED),
                (cell.inverse(), Modifier::REVERSED),
            ] {
                if on {
                    modifier |= m;
                }
            }
            let symbol = if cell.has_contents() {
                cell.contents()
            } else {
                " "
            };
            buffer[(x, y)]
                .set_symbol(symbol)
                .set_fg(color(cell.fgcolor()))
                .set_bg(color(cell.bgcolor()))
                .modifier = modifier;
        }
    }
    buffer
}

/// The dump's frames written again through locktop's backend (see the module): bytes a second over the
/// same window as the run that wrote them, beside what that run wrote and the floor of those frames.
fn replay(dir: &std::path::Path) {
    let frames = frames(dir);
    let counter = common::Counting::default();
    let mut lean = locktop::cmd::lean::Lean::with_size(counter.clone(), COLS, ROWS);
    let mut shown = ratatui::buffer::Buffer::empty(ratatui::layout::Rect::new(0, 0, COLS, ROWS));
    let (mut bytes, mut seconds) = (0, std::collections::BTreeSet::new());
    // The floor of the window's frames, from colours not known at its start.
    let mut floor = locktop::cmd::lean::Floor::default();
    for (second, frame) in &frames {
        let before = counter.0.load(Ordering::Relaxed);
        ratatui::backend::Backend::draw(&mut lean, shown.diff(frame).into_iter()).expect("draw");
        if (5..35).contains(second) {
            bytes += counter.0.load(Ordering::Relaxed) - before;
            floor.frame(&shown, frame);
            seconds.insert(*second);
        }
        shown = frame.clone();
    }
    let per_s = |b: usize| b as f64 / seconds.len().max(1) as f64;
    println!(
        "replayed {} frames of {}: {:.0} B/s through the backend now, over {} s; floor {:.0} B/s ({:.2}x)",
        frames.len(),
        dir.display(),
        per_s(bytes),
        seconds.len(),
        per_s(floor.bytes()),
        per_s(bytes) / per_s(floor.bytes()),
    );
}
