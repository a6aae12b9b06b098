//! Dashboard costs: render time, bytes sent to the terminal, and the real binary's CPU.
//!
//! `cargo bench --bench render` prints:
//! - the time to draw one 120×40 frame with 10,000 profiles in the model (and to evaluate a snapshot of them);
//! - what a key typed into the filter costs the screen's loop at 50,000 profiles (the filter applied and the
//!   frame), and what a poll costs it while the filter stands (the judge's board taken, filtered, drawn);
//! - bytes written per second in steady state into a counting writer, at 120×40 with 30 countdowns ticking,
//!   and at 180×40 on a quiet screen with four lock waits: through locktop's backend (`cmd::lean`), through
//!   crossterm's (what ratatui offers), and the floor (`lean::Floor`, a lower bound: each changed cell's
//!   bytes, the cheapest move to each run of them from the end of another, and the cheapest SGR sequences
//!   through the colours they need, from the colours the frame before could leave), and the time locktop's
//!   backend takes to encode a frame;
//! - the real binary in a pseudo-terminal against a throwaway cluster at 1 s polling: bytes per second on the
//!   terminal and CPU (utime + stime from /proc) over 20 s of an idle screen.

#[allow(dead_code)] // each benchmark uses only some of it
mod common;
#[allow(dead_code)] // the benchmark uses the pty helper's spawn, keys and exit only
#[path = "../tests/common/pty.rs"]
mod pty;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use locktop::app::{Action, App};
use locktop::cmd::lean::Lean;
use locktop::model::feed::{Feed, Link};
use locktop::model::judgement::Judgement;
use locktop::model::snapshot::ProfileSummary;
use locktop::model::watcher::Watcher;
use locktop::model::{LeaseRow, LockWait, Rules, Snapshot};
use locktop::rig::cluster::{Cluster, ClusterOptions};
use locktop::theme::{ColorDepth, Theme};
use locktop::ui::{self, Glyphs};
use ratatui::Terminal;
use ratatui::backend::{CrosstermBackend, TestBackend};

fn t(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_763_900_000 + s, 0)
        .single()
        .expect("time")
}

fn snapshot(profiles: usize, waits: usize) -> Snapshot {
    Snapshot {
        poll_ms: 1.0,
        leases: (0..profiles)
            .map(|i| LeaseRow {
                group: Some(format!("profile-{i:05}").into()),
                key: Some("BTC".into()),
                owner: Some(format!("worker-{i}").into()),
                expires_at: Some(t(10_000 + i as i64)),
                acquired_at: Some(t(-5)),
                contention_count: Some(if i % 50 == 0 { 3 } else { 0 }),
                contended_since: (i % 50 == 0).then(|| t(-20)),
                last_contended_at: (i % 50 == 0).then(|| t(-1)),
            })
            .collect(),
        waits: (0..waits)
            .map(|i| LockWait {
                pid: 1000 + i as i32,
                blocked_by: vec![999],
                locktype: "advisory".into(),
                mode: "ExclusiveLock".into(),
                relation: None,
                relation_oid: None,
                tuple: None,
                advisory_key: Some(locktop::model::AdvisoryKey::Bigint(i as i64)),
                transactionid: None,
                waitstart: Some(t(-30)),
                lease_row: None,
                waitstart_approx: false,
                on_lease_table: false,
            })
            .collect(),
        ..Snapshot::at(t(0))
    }
}

fn app() -> App {
    App::new(
        "monitor@db:5432/trading".into(),
        Rules::default(),
        Duration::from_secs(1),
        Vec::new(),
    )
}

fn main() {
    let theme = Theme::load("default", ColorDepth::Indexed).expect("theme");
    let glyphs = Glyphs { unicode: true };
    render_time(&theme, glyphs);
    filter_time(&theme, glyphs);
    for (w, h, profiles, waits, what) in [
        (120, 40, 30, 0, "30 countdowns ticking"),
        (180, 40, 3, 4, "quiet screen, four lock waits"),
    ] {
        let lean = bytes_per_second(&theme, glyphs, (w, h), profiles, waits, Backend::Lean);
        let crossterm =
            bytes_per_second(&theme, glyphs, (w, h), profiles, waits, Backend::Crossterm);
        let floor = floor_per_second(&theme, glyphs, (w, h), profiles, waits);
        println!(
            "terminal bytes at {w}x{h}, {what}: locktop's backend: first frame {} B, then {:.0} B/s; \
             crossterm's: {} B, {:.0} B/s; floor {floor:.0} B/s (locktop {:.2}x the floor)",
            lean.0,
            lean.1,
            crossterm.0,
            crossterm.1,
            lean.1 / floor
        );
    }
    encode_time(&theme, glyphs);
    real_binary();
}

/// The time a backend takes to write one frame's changes (two frames a second apart, alternately).
fn encode_time(theme: &Theme, glyphs: Glyphs) {
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).expect("terminal");
    let mut app = app();
    let mut frames = Vec::new();
    for i in 0..2 {
        let mut s = snapshot(30, 0);
        s.server_now = t(i);
        app.show_at(s, t(i));
        terminal
            .draw(|f| ui::draw(f, &mut app, theme, glyphs))
            .expect("draw");
        frames.push(terminal.backend().buffer().clone());
    }
    let time = |draw: &mut dyn FnMut(&ratatui::buffer::Buffer, &ratatui::buffer::Buffer)| {
        let mut times = Vec::new();
        for i in 0..2000 {
            let (a, b) = (&frames[i % 2], &frames[(i + 1) % 2]);
            let start = Instant::now();
            draw(a, b);
            times.push(start.elapsed().as_secs_f64() * 1e6);
        }
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    let mut lean = Lean::with_size(std::io::sink(), 120, 40);
    let lean_us = time(&mut |a, b| {
        ratatui::backend::Backend::draw(&mut lean, a.diff(b).into_iter()).expect("draw");
    });
    let mut crossterm = CrosstermBackend::new(std::io::sink());
    let crossterm_us = time(&mut |a, b| {
        ratatui::backend::Backend::draw(&mut crossterm, a.diff(b).into_iter()).expect("draw");
    });
    println!(
        "encoding one frame's changes at 120x40 (30 countdowns): locktop's backend {lean_us:.1} µs, crossterm's {crossterm_us:.1} µs (median)"
    );
}

fn render_time(theme: &Theme, glyphs: Glyphs) {
    let mut app = app();
    let s = snapshot(10_000, 0);
    let start = Instant::now();
    app.show_at(s, t(0));
    let evaluate = start.elapsed();
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).expect("terminal");
    let mut times = Vec::new();
    for _ in 0..300 {
        let start = Instant::now();
        terminal
            .draw(|f| ui::draw(f, &mut app, theme, glyphs))
            .expect("draw");
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "render 120x40 with 10,000 profiles: median {:.3} ms, p95 {:.3} ms (evaluating the snapshot, once per poll: {:.1} ms)",
        times[times.len() / 2],
        times[times.len() * 95 / 100],
        evaluate.as_secs_f64() * 1000.0
    );
}

/// A filter typed at 50,000 profiles, a key at a time, as the dashboard's loop does it: what each key costs
/// (the filter applied to every profile, and the frame), and what a poll costs the loop while the filter
/// stands (the judge's board taken and filtered again, and the frame; the judge's own evaluation is not on the
/// loop and is not timed).
fn filter_time(theme: &Theme, glyphs: Glyphs) {
    let judgement = Arc::new(Judgement::new(Rules::default()));
    let mut judge = Watcher::judging(Arc::clone(&judgement));
    let mut app = app().judged_by(judgement);
    let s = scale_snapshot();
    let mut polls_fed = 0;
    // The poller's feed goes through the judge, whose board comes with it to the screen, as on the dashboard.
    let mut feed = |app: &mut App, i: i64| {
        let mut next = s.clone();
        next.server_now = t(i);
        polls_fed += 1;
        let mut feed = Feed {
            snapshot: Some(Arc::new(next)),
            received_at: Some(Instant::now()),
            polls: polls_fed,
            link: Link::Connected,
            ..Feed::default()
        };
        judge.on_feed(&feed, t(i));
        feed.board = judge.shared_board();
        let start = Instant::now();
        app.on_feed(&feed);
        drop(feed);
        start
    };
    feed(&mut app, 0);
    let mut terminal = Terminal::new(TestBackend::new(180, 40)).expect("terminal");
    let mut draw = |app: &mut App| {
        terminal
            .draw(|f| ui::draw(f, app, theme, glyphs))
            .expect("draw");
    };
    draw(&mut app);
    let (mut keys, mut polls) = (Vec::new(), Vec::new());
    for round in 0..20 {
        app.apply(Action::StartFilter);
        for c in format!("PROFILE-{:05}", round * 2_111).chars() {
            let start = Instant::now();
            app.apply(Action::FilterInput(c));
            draw(&mut app);
            keys.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        let start = feed(&mut app, i64::from(round) + 1);
        draw(&mut app);
        polls.push(start.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(
            app.visible_profiles().count(),
            1,
            "the filter names one profile"
        );
        app.apply(Action::FilterCancel);
    }
    for times in [&mut keys, &mut polls] {
        times.sort_by(f64::total_cmp);
    }
    println!(
        "a filter key at 50,000 profiles (180x40): median {:.2} ms, p95 {:.2} ms over {} keys; \
         a poll on the screen's loop while it stands: median {:.1} ms",
        keys[keys.len() / 2],
        keys[keys.len() * 95 / 100],
        keys.len(),
        polls[polls.len() / 2],
    );
}

/// The scale scene as the dashboard sees it: 50,000 profiles of four rows, 1,000 of them contended and read
/// in detail, the others calm and known from their summaries.
fn scale_snapshot() -> Snapshot {
    let name = |i: usize| -> Arc<str> { format!("profile-{i:05}").into() };
    let contended = |i: usize| i.is_multiple_of(50);
    let leases = (0..50_000)
        .filter(|&i| contended(i))
        .flat_map(|i| {
            (0..4).map(move |k| LeaseRow {
                group: Some(format!("profile-{i:05}").into()),
                key: Some(format!("S{k}").into()),
                owner: Some(format!("worker-{i}-{k}").into()),
                expires_at: Some(t(20 + k)),
                acquired_at: Some(t(-5)),
                contention_count: Some(3),
                contended_since: Some(t(-20)),
                last_contended_at: Some(t(-1)),
            })
        })
        .collect();
    let summaries = (0..50_000)
        .map(|i| ProfileSummary {
            group: Some(name(i)),
            rows: 4,
            held: 4,
            sample_key: Some("S0".into()),
            sample_owner: Some(format!("worker-{i}-0").into()),
            sample_acquired_at: Some(t(-5)),
            next_expiry: Some(t(20)),
            failure_total: Some(if contended(i) { 12 } else { 0 }),
            latest_contended_since: contended(i).then(|| t(-20)),
        })
        .collect();
    Snapshot {
        poll_ms: 1.0,
        leases,
        summaries: Arc::new(summaries),
        ..Snapshot::at(t(0))
    }
}

/// One poll and one tick a second: the same data, `i` seconds on.
fn a_second_later(app: &mut App, s: &Snapshot, i: i64) {
    let mut next = s.clone();
    next.server_now = t(i);
    app.show_at(next, t(i));
}

/// Seconds of frames the byte counts cover.
const SECONDS: i64 = 60;

/// Draws the scene's first frame, then one a second for [`SECONDS`]; `each` sees the terminal after every
/// frame with its second (0 for the first), so that the floor and the backends count the same frames.
fn play<B: ratatui::backend::Backend>(
    terminal: &mut Terminal<B>,
    (theme, glyphs): (&Theme, Glyphs),
    profiles: usize,
    waits: usize,
    mut each: impl FnMut(&mut Terminal<B>, i64),
) where
    B::Error: std::fmt::Debug,
{
    let mut app = app();
    let s = snapshot(profiles, waits);
    app.show_at(s.clone(), t(0));
    for i in 0..=SECONDS {
        if i > 0 {
            a_second_later(&mut app, &s, i);
        }
        terminal
            .draw(|f| ui::draw(f, &mut app, theme, glyphs))
            .expect("draw");
        each(terminal, i);
    }
}

#[derive(Debug, Clone, Copy)]
enum Backend {
    Lean,
    Crossterm,
}

fn bytes_per_second(
    theme: &Theme,
    glyphs: Glyphs,
    size: (u16, u16),
    profiles: usize,
    waits: usize,
    backend: Backend,
) -> (usize, f64) {
    let counter = common::Counting::default();
    let out = std::io::BufWriter::with_capacity(64 * 1024, counter.clone());
    match backend {
        Backend::Lean => count_frames(
            Lean::with_size(out, size.0, size.1),
            &counter,
            (theme, glyphs, size),
            profiles,
            waits,
        ),
        Backend::Crossterm => count_frames(
            CrosstermBackend::new(out),
            &counter,
            (theme, glyphs, size),
            profiles,
            waits,
        ),
    }
}

/// The floor's bytes per second over the same frames as [`bytes_per_second`].
fn floor_per_second(
    theme: &Theme,
    glyphs: Glyphs,
    (w, h): (u16, u16),
    profiles: usize,
    waits: usize,
) -> f64 {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    let mut shown: Option<ratatui::buffer::Buffer> = None;
    let mut floor = locktop::cmd::lean::Floor::default();
    play(&mut terminal, (theme, glyphs), profiles, waits, |t, _| {
        let now = t.backend().buffer().clone();
        if let Some(shown) = &shown {
            floor.frame(shown, &now);
        }
        shown = Some(now);
    });
    floor.bytes() as f64 / SECONDS as f64
}

fn count_frames<B: ratatui::backend::Backend>(
    backend: B,
    counter: &common::Counting,
    (theme, glyphs, (w, h)): (&Theme, Glyphs, (u16, u16)),
    profiles: usize,
    waits: usize,
) -> (usize, f64)
where
    B::Error: std::fmt::Debug,
{
    let mut terminal = Terminal::with_options(
        backend,
        ratatui::TerminalOptions {
            viewport: ratatui::Viewport::Fixed(ratatui::layout::Rect::new(0, 0, w, h)),
        },
    )
    .expect("terminal");
    let mut full = 0;
    play(&mut terminal, (theme, glyphs), profiles, waits, |t, i| {
        t.backend_mut().flush().expect("flush");
        // The floor begins from the first frame drawn: so do these.
        if i == 0 {
            full = counter.0.swap(0, Ordering::Relaxed);
        }
    });
    (
        full,
        counter.0.load(Ordering::Relaxed) as f64 / SECONDS as f64,
    )
}

fn real_binary() {
    let cluster = Cluster::start(&ClusterOptions::default()).expect("cluster");
    let url = cluster.url("postgres");
    let psql = locktop::rig::cluster::find_bindir()
        .expect("bindir")
        .join("psql");
    let sql = |statement: &str| {
        let ok = std::process::Command::new(&psql)
            .args([&url, "-q", "-c", statement])
            .status()
            .expect("psql");
        assert!(ok.success(), "{statement}");
    };
    sql(include_str!("../sql/reference_schema.sql"));
    let scenarios: [(u16, u16, &str, usize); 2] = [
        (120, 40, "30 profiles, 30 countdowns", 0),
        (180, 40, "quiet screen: 3 profiles, four lock waits", 4),
    ];
    for (cols, rows, what, waiters) in scenarios {
        sql(&format!(
            "TRUNCATE entry_locks; INSERT INTO entry_locks SELECT 'profile-' || g, 'BTC', 'worker-' || g, now(), \
             now() + interval '1 hour' FROM generate_series(1, {}) g",
            if waiters > 0 { 3 } else { 30 }
        ));
        let mut sessions: Vec<std::process::Child> = Vec::new();
        if waiters > 0 {
            let spawn = |statement: &str| {
                std::process::Command::new(&psql)
                    .args([&url, "-q", "-c", statement])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .expect("psql session")
            };
            sessions.push(spawn("SELECT pg_advisory_lock(7); SELECT pg_sleep(120)"));
            std::thread::sleep(Duration::from_millis(500));
            for _ in 0..waiters {
                sessions.push(spawn("SELECT pg_advisory_lock(7)"));
            }
        }
        let mut tui = pty::Tui::spawn(&["--dsn", &url, "--interval", "1s"], &[], (rows, cols));
        let bytes = || tui.output.lock().expect("lock").len();
        std::thread::sleep(Duration::from_secs(3));
        let pid = tui.child.process_id().expect("pid");
        let (b0, c0) = (bytes(), common::cpu_seconds(pid));
        let window = Duration::from_secs(20);
        std::thread::sleep(window);
        let (b1, c1) = (bytes(), common::cpu_seconds(pid));
        let cpu = (c1 - c0) / window.as_secs_f64() * 100.0;
        println!(
            "real binary {cols}x{rows}, {what}, 1 s polling: {:.0} B/s to the terminal, CPU {cpu:.2} % of one core",
            (b1 - b0) as f64 / window.as_secs_f64()
        );
        tui.keys("q");
        let _ = tui.wait_exit();
        for mut session in sessions {
            let _ = session.kill();
            let _ = session.wait();
        }
    }
}
