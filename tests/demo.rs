//! The demo's scenarios produce their states, seen through the same polls and rules as the dashboard, on a
//! compressed clock (TTL 1 s, escalation after 3 s) so the test stays short; and `locktop demo` itself in a
//! pseudo-terminal, as a newcomer runs it: every state on screen within 20 s, nothing left behind after it.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::pty::Tui;

use locktop::config::LeaseMapping;
use locktop::model::rules::{self, Alert, Rules};
use locktop::model::{AdvisoryKey, History, Status};
use locktop::rig::demo::{self, Scenario, ServiceStats, Workload};
use locktop::source::{LeaseDetail, SessionLimits};

/// The workers' own metrics count their real failures: the hot profile's, none for a calm one; and the page is
/// Prometheus text the scraper reads.
fn assert_service_counts(stats: &ServiceStats) {
    let page = stats.metrics();
    let scrape = locktop::source::service::parse_metrics(&page).expect("metrics parse");
    let failures = |profile: &str| {
        scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == "entry_lock_contention_total"
                    && s.labels.get("profile_id") == Some(profile)
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) => v,
                _ => -1.0,
            })
    };
    assert!(failures("hot-1").is_some_and(|f| f > 10.0), "{page}");
    assert_eq!(failures("profile-0000"), Some(0.0), "{page}");
    assert!(
        stats.health().contains("\"tradingLoopHealthy\": false"),
        "hot-1 failed for over 3 TTLs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_produces_its_state_and_calm_profiles_stay_ok() {
    let url = common::database("demo").await;
    let ttl = Duration::from_secs(1);
    let rules = Rules {
        ttl: chrono::Duration::seconds(1),
        escalate_after: chrono::Duration::seconds(3),
        ..Rules::default()
    };
    let workload = Workload {
        url: url.to_string(),
        scenarios: Scenario::ALL.to_vec(),
        ttl,
        profiles: 20,
        workers: 6,
        stats: ServiceStats::new(ttl),
    };
    let mut sessions = demo::start(&workload).await.expect("workload starts");

    let limits = SessionLimits::for_interval(Duration::from_millis(200));
    let mut m = common::monitor(&url, &LeaseMapping::default(), limits).await;
    m.set_detail(LeaseDetail::Summary {
        ttl,
        focus: Vec::new(),
    });
    let mut history = History::default();
    let mut seen: HashSet<String> = HashSet::new();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(12);
    while Instant::now() < deadline {
        let snapshot = m.poll().await.expect("poll");
        rules::record(&mut history, &snapshot, &rules);
        let board = rules::evaluate(&snapshot, &history, &rules, snapshot.server_now);
        for p in &board.profiles {
            if p.profile.starts_with("profile-") && started.elapsed() > Duration::from_secs(2) {
                assert_eq!(
                    p.status,
                    Status::Ok,
                    "a calm profile read {:?}: {:?}",
                    p.status,
                    p.reasons
                );
            }
            seen.insert(format!("{}={}", p.profile, p.status.word()));
        }
        for a in &board.alerts {
            if matches!(a, Alert::SeveralContended { .. }) {
                seen.insert("alert=several".into());
            }
        }
        for w in &board.waits {
            match w.wait.advisory_key {
                Some(AdvisoryKey::Bigint(4242)) => seen.insert("advisory=4242".into()),
                Some(AdvisoryKey::Pair(7, 1)) => seen.insert("advisory=7,1".into()),
                _ => w
                    .profile
                    .as_ref()
                    .is_some_and(|p| seen.insert(format!("rowwait={p}"))),
            };
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sessions.abort_all();
    assert_service_counts(&workload.stats);
    for expected in [
        "hot-1=contended",
        "hot-1=escalated",
        "busy-2=escalated",
        "dead-1=expired",
        "dead-1=escalated",
        "rowwait=dead-1",
        "alert=several",
        "advisory=4242",
        "advisory=7,1",
        "blip-1=contended",
        "blip-1=ok",
        "profile-0000=ok",
    ] {
        assert!(
            seen.contains(expected),
            "{expected} never seen; seen: {seen:?}"
        );
    }
}

/// Where the demo said its cluster lives (the line it prints before the dashboard opens).
fn cluster_dir(tui: &Tui) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let raw = tui.raw_output();
        if let Some(rest) = raw.split("throwaway PostgreSQL in ").nth(1)
            && let Some((dir, _)) = rest.split_once(" (port ")
        {
            return PathBuf::from(dir);
        }
        assert!(Instant::now() < deadline, "no cluster line: {raw:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The postmaster's pid, from the pid file of the demo's cluster.
fn postmaster_pid(dir: &Path) -> u32 {
    let file = dir.join("data/postmaster.pid");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(pid) = std::fs::read_to_string(&file)
            .ok()
            .and_then(|text| text.lines().next()?.trim().parse().ok())
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "no {}", file.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Processes whose command line names the directory (the postmaster runs with `-D DIR/data`).
fn processes_naming(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&needle) {
                found.push(format!(
                    "{}: {cmdline}",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
    }
    found
}

/// Runs the demo in a pty until `check` is satisfied, ends it with `exit`, and checks that it left nothing.
fn demo_then(
    args: &[&str],
    check: impl FnOnce(&mut Tui),
    exit: impl FnOnce(&mut Tui),
) -> (PathBuf, String) {
    demo_with(args, &[], check, exit, 0)
}

/// [`demo_then`] with extra environment variables and the exit status expected.
fn demo_with(
    args: &[&str],
    env: &[(&str, &str)],
    check: impl FnOnce(&mut Tui),
    exit: impl FnOnce(&mut Tui),
    status: u32,
) -> (PathBuf, String) {
    let mut command = vec!["demo"];
    command.extend_from_slice(args);
    let mut tui = Tui::spawn(&command, env, (40, 120));
    let dir = cluster_dir(&tui);
    let postmaster = postmaster_pid(&dir);
    check(&mut tui);
    exit(&mut tui);
    assert_eq!(tui.wait_exit(), status, "{}", tui.raw_output());
    assert!(tui.cooked(), "the terminal is restored");
    assert!(!dir.exists(), "{} is left behind", dir.display());
    let alive = Path::new(&format!("/proc/{postmaster}")).exists();
    let left = processes_naming(&dir);
    assert!(
        !alive && left.is_empty(),
        "postmaster {postmaster} alive: {alive}; processes: {left:?}"
    );
    (dir, tui.raw_output())
}

#[test]
fn the_demo_shows_every_state_within_20_s_and_q_leaves_nothing_behind() {
    let started = Instant::now();
    demo_then(
        &[],
        |tui| {
            // The status column (glyph and word) and the locks pane; the banner's text is not counted.
            let wanted = [
                ("contended", "▲ contended"),
                ("escalated", "‼ ESCALATED"),
                ("expired", "✗ expired"),
                ("row lock wait", " waits "),
                ("advisory wait", "on advisory 4242"),
                // The workers' own endpoints, scraped beside the database.
                ("service health", "svc trading "),
                ("service rate column", "SVC/s"),
            ];
            let mut seen = HashSet::new();
            while seen.len() < wanted.len() {
                let screen = tui.screen();
                for (what, text) in wanted {
                    if screen.contains(text) {
                        seen.insert(what);
                    }
                }
                let missing: Vec<_> = wanted.iter().filter(|(w, _)| !seen.contains(w)).collect();
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "after 20 s, never seen: {missing:?}; screen:\n{screen}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            eprintln!(
                "every state on screen {:?} after the start",
                started.elapsed()
            );
        },
        |tui| tui.keys("q"),
    );
}

#[test]
fn sigterm_ends_the_demo_and_leaves_nothing_behind() {
    demo_then(
        &["--scenario", "hot"],
        |tui| {
            tui.wait_for("hot-1");
        },
        Tui::terminate,
    );
}

#[test]
fn a_panic_in_the_demo_still_stops_and_removes_its_cluster() {
    // A debug build panics on purpose once the first poll arrived when LOCKTOP_TEST_PANIC is set.
    let (_, raw) = demo_with(
        &["--scenario", "steady"],
        &[("LOCKTOP_TEST_PANIC", "1"), ("RUST_BACKTRACE", "0")],
        |_| {},
        |_| {},
        101,
    );
    assert!(raw.contains("a deliberate panic"), "{raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_leaves_a_cluster_that_psql_and_snapshot_can_use_and_tells_how_to_stop_it() {
    let tui = tokio::task::spawn_blocking(|| {
        let mut tui = Tui::start(&["demo", "--scenario", "dead-owner", "--keep"]);
        tui.wait_for("dead-1");
        tui.keys("\x03"); // Ctrl-C, a key in raw mode: quits like q
        assert_eq!(tui.wait_exit(), 0);
        tui
    })
    .await
    .expect("pty");
    let raw = tui.raw_output();
    assert!(
        !raw.contains("stopped and removed")
            && raw.contains("it is left running when the demo ends"),
        "the first message says what --keep does: {raw:?}"
    );
    let url = raw
        .split("kept the cluster: psql '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("the URL is printed")
        .to_owned();
    let stop = raw
        .split("stop it with: ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .expect("the stop command is printed")
        .trim()
        .to_owned();
    let dir = cluster_dir(&tui);

    // The schema and the scenario's rows outlive the demo, so a user can look at them with psql.
    let mut conn = common::connect(&url).await;
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM entry_locks WHERE profile_id = 'dead-1'")
            .fetch_one(&mut conn)
            .await
            .expect("the lease table is there");
    assert!(rows >= 1);
    drop(conn);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_locktop"))
        .args(["snapshot", "--format", "json", "--dsn", &url])
        .output()
        .expect("snapshot");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let profiles: Vec<&str> = report["profiles"]
        .as_array()
        .expect("profiles")
        .iter()
        .filter_map(|p| p["profile"].as_str())
        .collect();
    assert!(profiles.contains(&"dead-1"), "{report}");

    let stopped = std::process::Command::new("sh")
        .args(["-c", &stop])
        .output()
        .expect("stop");
    assert!(stopped.status.success(), "{stop}: {stopped:?}");
    assert!(!dir.exists(), "the stop command removes {}", dir.display());
    assert!(processes_naming(&dir).is_empty());
}
