//! The soak of issue 17 on its large scene (see `common/scale.rs`: 200,000 lease rows, 20,000 renewals a second,
//! 500 dead owners, 1,000 contended profiles, 20,000 advisory locks, 50 row waiters).
//!
//! `cargo bench --bench scale` starts a throwaway cluster with the scene, runs the real binary in a 180×40
//! pseudo-terminal at 1 s polling with `--record`, and prints once a minute for `LOCKTOP_SCALE_MINUTES`
//! (default 10): the poll latency the header shows, RSS, CPU, the recording's size and the monitor's own
//! server time (`pg_stat_statements`). Every ~5 s it types a filter and times it to the screen. At the end it
//! prints the figures the issue sets goals for: poll ≤ 50 ms, RSS ≤ 100 MB and growth ≤ 10 % between minute 1
//! and the last, CPU ≤ 30 % of a core, key p90 ≤ 150 ms, recording ≤ 600 KB per poll.
//! `LOCKTOP_SCALE_SCENE_ONLY=1` only plays the scene and prints its URL, for watching it by hand;
//! `LOCKTOP_SCALE_KEEP=PATH` keeps the recording there (to measure its replay); `LOCKTOP_SCALE_LOG=PATH` keeps
//! the monitor's log.

#[allow(dead_code)] // each benchmark uses only some of it
mod common;
#[allow(dead_code)] // the benchmark uses the pty helper's spawn, keys and exit only
#[path = "../tests/common/pty.rs"]
mod pty;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::scale;

/// The poll latency in the header, in ms.
fn poll_ms(screen: &str) -> Option<f64> {
    let after = screen.split("poll ").nth(1)?;
    after.split(" ms").next()?.trim().parse().ok()
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Newline-terminated records in a recording (decompressed if it is zstd), read in blocks.
fn records(path: &std::path::Path) -> u64 {
    let file = std::io::BufReader::new(std::fs::File::open(path).expect("recording"));
    let mut f = locktop::recording::unpacked(file).expect("unpacked");
    let mut buf = vec![0_u8; 1 << 20];
    let mut n = 0;
    loop {
        let got = f.read(&mut buf).expect("read");
        if got == 0 {
            return n;
        }
        n += buf[..got].split(|b| *b == b'\n').count() as u64 - 1;
    }
}

/// Feeds the pty's new output to the terminal emulator and returns the screen.
fn screen(tui: &pty::Tui, terminal: &mut vt100::Parser) -> String {
    let mut out = tui.output.lock().expect("lock");
    terminal.process(&out);
    out.clear();
    terminal.screen().contents()
}

/// Types a filter that matches one profile, waits for the screen to say so, clears it: the ms it took.
fn key_probe(tui: &mut pty::Tui, terminal: &mut vt100::Parser, probe: usize) -> f64 {
    let needle = format!("p{:05}", 2_000 + probe * 7919 % 40_000);
    let asked = Instant::now();
    tui.keys(&format!("/{needle}"));
    let want = format!("1 of {} match /{needle}", scale::PROFILES);
    loop {
        let s = screen(tui, terminal);
        if s.contains(&want) {
            break;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(20),
            "the filter never showed:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let ms = asked.elapsed().as_secs_f64() * 1000.0;
    tui.keys("\x1b");
    ms
}

/// Waits for the screen to show every profile and an escalation, and says how long that took.
fn wait_first_screen(tui: &pty::Tui, terminal: &mut vt100::Parser) {
    let shown = Instant::now();
    loop {
        let s = screen(tui, terminal);
        if s.contains(&format!("profiles ({})", scale::PROFILES)) && s.contains("ESCALATED") {
            break;
        }
        assert!(
            shown.elapsed() < Duration::from_mins(2),
            "the scene never showed:\n{s}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "  first screen with every profile and an escalation {:.1} s after start",
        shown.elapsed().as_secs_f64()
    );
}

/// The cluster with the scene on it: the cluster, its URL, the runtime of the workload and the workload.
fn start_scene() -> (
    locktop::rig::cluster::Cluster,
    String,
    tokio::runtime::Runtime,
    scale::Scene,
) {
    let cluster = locktop::rig::cluster::Cluster::start(&locktop::rig::cluster::ClusterOptions {
        settings: scale::settings(),
        ..Default::default()
    })
    .expect("cluster");
    let url = cluster.url("postgres");
    let rt = common::runtime();
    let loading = Instant::now();
    let scene = rt.block_on(scale::start(&url));
    println!(
        "scale scene: {} rows loaded and the workload started in {:.1} s",
        scale::ROWS,
        loading.elapsed().as_secs_f64()
    );
    (cluster, url, rt, scene)
}

/// The monitor's arguments: the scene, a 1 s interval, the recording; with `LOCKTOP_SCALE_LOG=PATH`, its log
/// kept there (to find what a slow minute was).
fn monitor_args(url: &str, recording: &str) -> Vec<String> {
    let mut args: Vec<String> = ["--dsn", url, "--interval", "1s", "--record", recording]
        .map(str::to_owned)
        .into();
    if let Ok(log) = std::env::var("LOCKTOP_SCALE_LOG") {
        args.extend(["--log-file".to_owned(), log]);
    }
    args
}

fn main() {
    let minutes: u64 = std::env::var("LOCKTOP_SCALE_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(10);
    let (_cluster, url, rt, scene) = start_scene();
    if std::env::var_os("LOCKTOP_SCALE_SCENE_ONLY").is_some() {
        // Only the scene, for watching it by hand (or under a profiler) for the minutes given.
        println!("scene: locktop --dsn '{}'", scene.monitor_url);
        std::thread::sleep(Duration::from_mins(minutes));
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // `LOCKTOP_SCALE_RECORD=jsonl.zst` records compressed.
    let suffix = std::env::var("LOCKTOP_SCALE_RECORD").unwrap_or_else(|_| "jsonl".into());
    let recording = dir.path().join(format!("scale.{suffix}"));
    let rec = recording.to_str().expect("path").to_owned();
    let args = monitor_args(&scene.monitor_url, &rec);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut tui = pty::Tui::spawn(&args, &[], (40, 180));
    let mut terminal = vt100::Parser::new(40, 180, 0);
    wait_first_screen(&tui, &mut terminal);
    let pid = tui.child.process_id().expect("pid");
    let started = Instant::now();
    let (cpu0, renewed0, server0) = (
        common::cpu_seconds(pid),
        scene.renewed.load(Ordering::Relaxed),
        rt.block_on(scale::monitor_server_ms(&url)),
    );
    let mut polls = Vec::new();
    let mut keys = Vec::new();
    let mut rss_by_minute = Vec::new();
    let mut probe = 0_usize;
    println!(
        "  {:>3}  {:>9}  {:>9}  {:>9}  {:>10}  {:>10}  {:>12}",
        "min", "RSS KiB", "poll p50", "poll max", "CPU %", "rec KB/s", "server ms/s"
    );
    let mut minute_polls: Vec<f64> = Vec::new();
    let mut last = (started, cpu0, 0_u64, server0);
    while started.elapsed() < Duration::from_secs(60 * minutes) {
        keys.push(key_probe(&mut tui, &mut terminal, probe));
        probe += 1;
        // Then five seconds of watching the header once a second.
        for _ in 0..5 {
            std::thread::sleep(Duration::from_secs(1));
            if let Some(ms) = poll_ms(&screen(&tui, &mut terminal)) {
                polls.push(ms);
                minute_polls.push(ms);
            }
        }
        let (t, cpu_t, size_t, server_t) = last;
        if t.elapsed() >= Duration::from_mins(1) {
            let rss = common::status_kib(&pid.to_string(), "VmRSS:");
            let cpu = common::cpu_seconds(pid);
            let size = std::fs::metadata(&recording).map_or(0, |m| m.len());
            let server = rt.block_on(scale::monitor_server_ms(&url));
            let secs = t.elapsed().as_secs_f64();
            let max = minute_polls.iter().copied().fold(f64::NAN, f64::max);
            println!(
                "  {:>3}  {rss:>9}  {:>7.1}ms  {max:>7.1}ms  {:>10.1}  {:>10.1}  {:>12.2}",
                rss_by_minute.len() + 1,
                percentile(&mut minute_polls, 0.5),
                (cpu - cpu_t) / secs * 100.0,
                (size - size_t) as f64 / secs / 1000.0,
                (server - server_t) / secs,
            );
            rss_by_minute.push(rss);
            minute_polls.clear();
            last = (Instant::now(), cpu, size, server);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = (common::cpu_seconds(pid) - cpu0) / secs * 100.0;
    let renewed = (scene.renewed.load(Ordering::Relaxed) - renewed0) as f64 / secs;
    let server = (rt.block_on(scale::monitor_server_ms(&url)) - server0) / secs;
    tui.keys("q");
    let code = tui.wait_exit();
    let size = std::fs::metadata(&recording).map_or(0, |m| m.len());
    let polls_recorded = records(&recording);
    report(&mut Figures {
        minutes,
        polls,
        keys,
        rss_by_minute,
        cpu,
        renewed,
        server,
        size,
        polls_recorded,
    });
    // `LOCKTOP_SCALE_KEEP=PATH` keeps the recording (to measure its replay).
    if let Some(keep) = std::env::var_os("LOCKTOP_SCALE_KEEP") {
        std::fs::copy(&recording, &keep).expect("keep the recording");
    }
    assert_eq!(code, 0, "locktop exits cleanly");
    drop(scene);
}

/// What the soak measured.
struct Figures {
    minutes: u64,
    polls: Vec<f64>,
    keys: Vec<f64>,
    rss_by_minute: Vec<u64>,
    cpu: f64,
    renewed: f64,
    server: f64,
    size: u64,
    polls_recorded: u64,
}

/// Prints the figures the issue sets goals for.
fn report(f: &mut Figures) {
    let first = f.rss_by_minute.first().copied().unwrap_or(0);
    let peak = f.rss_by_minute.iter().copied().max().unwrap_or(0);
    let final_rss = f.rss_by_minute.last().copied().unwrap_or(0);
    println!(
        "scale soak, {} min, renewals {:.0} rows/s:",
        f.minutes, f.renewed
    );
    println!(
        "  poll in the header: p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms (goal ≤ 50 ms)",
        percentile(&mut f.polls, 0.5),
        percentile(&mut f.polls, 0.9),
        percentile(&mut f.polls, 1.0)
    );
    println!(
        "  RSS minute 1 {first} KiB, last {final_rss} KiB, peak {peak} KiB, growth {:+.1} % (goals ≤ 100 MB, ≤ 10 %)",
        (final_rss as f64 - first as f64) / first.max(1) as f64 * 100.0
    );
    println!("  CPU {:.1} % of one core (goal ≤ 30 %)", f.cpu);
    println!(
        "  key to screen: p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms over {} probes (goal p90 ≤ 150 ms)",
        percentile(&mut f.keys, 0.5),
        percentile(&mut f.keys, 0.9),
        percentile(&mut f.keys, 1.0),
        f.keys.len()
    );
    println!(
        "  recording {} bytes, {} records: {:.1} KB per record (goal ≤ 600 KB per poll)",
        f.size,
        f.polls_recorded,
        f.size as f64 / f.polls_recorded.max(1) as f64 / 1000.0
    );
    println!(
        "  the monitor's server time: {:.2} ms per second (pg_stat_statements)",
        f.server
    );
}
