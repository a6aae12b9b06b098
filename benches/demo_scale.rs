//! The demo at scale stays smooth: `locktop demo --profiles 1000 --workers 200` in a pseudo-terminal.
//!
//! `cargo bench --bench demo_scale` prints, once every scenario is on screen: the poll latency the header
//! shows, the time from a key to the screen showing its effect (a filter typed and cleared, 10 times), the
//! process's CPU (locktop plus the 200 workers' client side, which the demo runs in the same process) and RSS.

#[allow(dead_code)] // each benchmark uses only some of it
mod common;
#[allow(dead_code)] // the benchmark uses the pty helper's spawn, screen, keys and exit only
#[path = "../tests/common/pty.rs"]
mod pty;

use std::time::{Duration, Instant};

/// The poll latency in the header, in ms.
fn poll_ms(screen: &str) -> Option<f64> {
    let after = screen.split("poll ").nth(1)?;
    after.split(" ms").next()?.trim().parse().ok()
}

fn main() {
    let mut tui = pty::Tui::spawn(
        &["demo", "--profiles", "1000", "--workers", "200"],
        &[],
        (40, 120),
    );
    let started = Instant::now();
    tui.wait_for("profiles (1005)");
    tui.wait_for("‼ ESCALATED");
    println!(
        "demo 1,000 profiles / 200 workers: escalated profile on screen {:.1} s after start",
        started.elapsed().as_secs_f64()
    );
    let pid = tui.child.process_id().expect("pid");

    let mut polls = Vec::new();
    let mut keys = Vec::new();
    let mut terminal = vt100::Parser::new(40, 120, 0);
    let mut consumed = 0;
    let (cpu0, t0) = (common::cpu_seconds(pid), Instant::now());
    for i in 0..10 {
        {
            let out = tui.output.lock().expect("lock");
            terminal.process(&out[consumed..]);
            consumed = out.len();
        }
        if let Some(ms) = poll_ms(&terminal.screen().contents()) {
            polls.push(ms);
        }
        let needle = format!("profile-09{i:02}");
        // Watch the screen at 1 ms resolution, feeding a terminal emulator only the new bytes.
        let asked = Instant::now();
        tui.keys(&format!("/{needle}"));
        let shown = format!("1 of 1005 match /{needle}");
        loop {
            {
                let out = tui.output.lock().expect("lock");
                terminal.process(&out[consumed..]);
                consumed = out.len();
            }
            if terminal.screen().contents().contains(&shown) {
                break;
            }
            assert!(
                asked.elapsed() < Duration::from_secs(10),
                "the filter never showed:\n{}",
                terminal.screen().contents()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        keys.push(asked.elapsed().as_secs_f64() * 1000.0);
        tui.keys("\x1b");
        std::thread::sleep(Duration::from_millis(900));
    }
    let cpu = (common::cpu_seconds(pid) - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
    keys.sort_by(f64::total_cmp);
    polls.sort_by(f64::total_cmp);
    let median = |v: &[f64]| v.get(v.len() / 2).copied().unwrap_or(f64::NAN);
    println!(
        "  key to screen (a filter of 13 keys typed): median {:.0} ms, max {:.0} ms",
        median(&keys),
        keys.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "  poll in the header: median {:.1} ms, max {:.1} ms",
        median(&polls),
        polls.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "  CPU {cpu:.1} % of one core (locktop and the workload's client side), RSS {} KiB",
        common::status_kib(&pid.to_string(), "VmRSS:")
    );
    tui.keys("q");
    let code = tui.wait_exit();
    assert_eq!(code, 0, "the demo exits cleanly");
}
