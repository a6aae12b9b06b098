//! Long-run memory: the real binary watching a live workload for a long time keeps a bounded RSS.
//!
//! `cargo bench --bench soak` starts a throwaway cluster and the demo's workload with 1,000 calm profiles and
//! every incident scenario (real-time clock: TTL 30 s), runs `locktop` in a pseudo-terminal at 1 s polling, and
//! prints the monitor's RSS and CPU time once a minute for `LOCKTOP_SOAK_MINUTES` (default 30), then the growth
//! after the first five minutes (history rings fill up to 600 polls, i.e. ten minutes at 1 s).

#[allow(dead_code)] // each benchmark uses only some of it
mod common;
#[allow(dead_code)] // the soak uses the pty helper's start, screen and keys only
#[path = "../tests/common/pty.rs"]
mod pty;

use std::time::{Duration, Instant};

fn main() {
    let minutes: u64 = std::env::var("LOCKTOP_SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(30);
    let (cluster, url, _rt, _sessions) = common::demo_scene(1000, 16);

    let mut tui = pty::Tui::start(&["--dsn", &url, "--interval", "1s"]);
    tui.wait_for("profiles (10");
    let pid = tui.child.process_id().expect("pid");
    let started = Instant::now();
    println!("soak: locktop pid {pid}, 1,005 profiles, 1 s polling, {minutes} min");
    let mut samples = Vec::new();
    for minute in 0..=minutes {
        let due = started + Duration::from_secs(60 * minute);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let rss = common::status_kib(&pid.to_string(), "VmRSS:");
        let hwm = common::status_kib(&pid.to_string(), "VmHWM:");
        let cpu = common::cpu_seconds(pid);
        println!("  {minute:>3} min  RSS {rss:>7} KiB  peak {hwm:>7} KiB  CPU {cpu:>7.1} s");
        samples.push(rss);
        // Keep the pty's captured output small: only the latest frames matter.
        tui.output.lock().expect("lock").clear();
    }
    let after_warmup = samples.get(5..).unwrap_or(&samples);
    let (lo, hi) = (
        after_warmup.iter().min().copied().unwrap_or(0),
        after_warmup.iter().max().copied().unwrap_or(0),
    );
    println!(
        "soak: RSS after the first 5 min between {lo} and {hi} KiB (spread {} KiB); first {} KiB, last {} KiB",
        hi - lo,
        samples.first().copied().unwrap_or(0),
        samples.last().copied().unwrap_or(0)
    );
    tui.keys("q");
    let _ = tui.wait_exit();
    drop(cluster);
}
