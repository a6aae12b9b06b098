//! Poll cost and model memory, measured on a throwaway cluster over its Unix socket.
//!
//! `cargo bench --bench poll` prints, for 1,000 / 10,000 / 100,000 lease rows and 100 / 10,000 locks held in
//! `pg_locks` (with one backend waiting, so the `pg_locks` path runs): the client-side time of one whole poll
//! (the first after connecting, which reads everything; then median, p95 and max of the rest, among them one
//! that refreshes the per-profile aggregates, as summary mode does every 5 s) and of the model's evaluation of
//! it; the dashboard's polls of the scale scene (`common/scale.rs`); the mirror's own work on a poll of that
//! scene, without a server (`LOCKTOP_POLL_MIRROR_ONLY=1` runs only that); then the process RSS before and
//! after 3,600 simulated polls of 1,000 profiles through the history and the rules.

#[allow(dead_code)] // each benchmark uses only some of it
mod common;

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use common::{connect, exec};
use locktop::config::LeaseMapping;
use locktop::model::rules::{self, Rules};
use locktop::model::{History, LeaseRow, Snapshot};
use locktop::rig::cluster::{Cluster, ClusterOptions};
use locktop::source::{LeaseDetail, Monitor, SessionLimits, Target};
use sqlx::Connection;

const SCHEMA: &str = include_str!("../sql/reference_schema.sql");

fn main() {
    // `LOCKTOP_POLL_SCENE_ONLY=1`: only the scale scene (the quick loop while working on it).
    if std::env::var_os("LOCKTOP_POLL_SCENE_ONLY").is_some() {
        for incremental in [false, true] {
            common::runtime().block_on(scene_polls(incremental));
        }
        return;
    }
    // `LOCKTOP_POLL_MIRROR_ONLY=1`: only the mirror's work per poll, without a server.
    if std::env::var_os("LOCKTOP_POLL_MIRROR_ONLY").is_some() {
        mirror_work();
        return;
    }
    // `LOCKTOP_POLL_SCENE_INCREMENTAL=1`: only the incremental polls of the scale scene.
    if std::env::var_os("LOCKTOP_POLL_SCENE_INCREMENTAL").is_some() {
        common::runtime().block_on(scene_polls(true));
        return;
    }
    common::runtime().block_on(async {
        let cluster = Cluster::start(&ClusterOptions::default()).expect("cluster");
        poll_costs(&cluster).await;
    });
    for incremental in [false, true] {
        common::runtime().block_on(scene_polls(incremental));
    }
    mirror_work();
    model_memory();
}

/// The dashboard's polls (summary mode) of the scale scene, on a fresh cluster: 200,000 rows, 20,000 renewals
/// a second; incrementally (the mirror), or as before it (the server aggregates every 5 s, and finds the rows
/// that matter every poll). A poll's time and rows are its own; a windowed table's sweep, read after it as the
/// dashboard's poller does, counts in the server's time.
async fn scene_polls(incremental: bool) {
    let cluster = Cluster::start(&ClusterOptions {
        settings: common::scale::settings(),
        ..ClusterOptions::default()
    })
    .expect("cluster");
    let url = cluster.url("postgres");
    let scene = common::scale::start(&url).await;
    let target = Target::new(Some(&scene.monitor_url)).expect("target");
    let mut monitor = common::dashboard_monitor(&target).await;
    monitor.set_incremental(incremental);
    // As the dashboard's poller does: a windowed table's sweep and the backstop of the waits' details are
    // read after each poll.
    monitor.read_between_polls();
    let rules = Rules::default();
    let mut history = History::default();
    let rss_before = common::status_kib("self", "VmRSS:");
    let start = Instant::now();
    let first_snapshot = monitor.poll().await.expect("first poll");
    let first = start.elapsed().as_secs_f64() * 1000.0;
    let rss_mirror = common::status_kib("self", "VmRSS:");
    rules::record(&mut history, &first_snapshot, &rules);
    let board = rules::evaluate(&first_snapshot, &history, &rules, first_snapshot.server_now);
    let rss_board = common::status_kib("self", "VmRSS:");
    println!(
        "\nscale scene memory (RSS): {rss_before} KiB connected; {rss_mirror} KiB after the first poll (the mirror \
         and a snapshot of {} rows and {} aggregates); {rss_board} KiB with the history and one board of {} profiles",
        first_snapshot.leases.len(),
        first_snapshot.summaries.len(),
        board.profiles.len()
    );
    drop((board, first_snapshot));
    let (mut polls, mut evals, mut rows) = (Vec::new(), Vec::new(), Vec::new());
    let mut last_notes = Vec::new();
    let server0 = common::scale::monitor_server_ms(&url).await;
    let t0 = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    // `LOCKTOP_POLL_SCENE_POLLS`: how many polls to time (30 by default; more for a steadier tail).
    let polls_wanted: usize = std::env::var("LOCKTOP_POLL_SCENE_POLLS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(30);
    for _ in 0..polls_wanted {
        tick.tick().await;
        let before = monitor.lease_rows_read();
        let start = Instant::now();
        let snapshot = monitor.poll().await.expect("poll");
        polls.push(start.elapsed().as_secs_f64() * 1000.0);
        rows.push((monitor.lease_rows_read() - before) as f64);
        monitor.between_polls().await.expect("between polls");
        let start = Instant::now();
        rules::record(&mut history, &snapshot, &rules);
        let board = rules::evaluate(&snapshot, &history, &rules, snapshot.server_now);
        evals.push(start.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(board);
        last_notes = snapshot.notes;
    }
    for note in last_notes.iter().filter(|n| n.contains("windows")) {
        println!("  note: {note}");
    }
    let server =
        (common::scale::monitor_server_ms(&url).await - server0) / t0.elapsed().as_secs_f64();
    polls.sort_by(f64::total_cmp);
    evals.sort_by(f64::total_cmp);
    rows.sort_by(f64::total_cmp);
    println!(
        "\nscale scene, 200,000 rows, {} renewals/s, 1 s polls ({} mode): first {first:.1} ms; then median {:.1} ms, \
         p90 {:.1} ms, p95 {:.1} ms, max {:.1} ms; lease rows read per poll median {:.0}; pg_locks read {} times; \
         evaluation median {:.1} ms, max {:.1} ms; the monitor's server time {server:.1} ms/s",
        scene.renewed.load(std::sync::atomic::Ordering::Relaxed) as f64
            / t0.elapsed().as_secs_f64(),
        if monitor.windowed() {
            "incremental, by windows"
        } else if monitor.incremental() {
            "incremental"
        } else {
            "aggregates"
        },
        percentile(&polls, 0.5),
        percentile(&polls, 0.9),
        percentile(&polls, 0.95),
        percentile(&polls, 1.0),
        percentile(&rows, 0.5),
        monitor.pg_locks_reads(),
        percentile(&evals, 0.5),
        percentile(&evals, 1.0),
    );
    for (calls, mean, query) in common::scale::monitor_statements(&url).await {
        println!("  {calls:>5} × {mean:>7.2} ms  {query}");
    }
    monitor.close().await;
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn poll_costs(cluster: &Cluster) {
    let url = cluster.url("postgres");
    let mut admin = connect(&url).await;
    exec(&mut admin, SCHEMA).await;
    println!("poll (client side, Unix socket, one backend waiting)");
    println!(
        "{:>8} {:>7} {:>8} | {:>9} {:>9} {:>9} {:>9} | {:>10} | {:>14}",
        "rows", "locks", "mode", "first", "median", "p95", "max", "evaluate", "pg_locks reads"
    );
    for rows in [1_000_i64, 10_000, 100_000] {
        for locks in [100_i64, 10_000] {
            // Ten symbols per profile; one profile in twenty in a contention episode, one in a hundred with an
            // expired row: an incident on a large table, not a table on fire.
            exec(&mut admin, "TRUNCATE entry_locks").await;
            exec(
                &mut admin,
                &format!(
                    "INSERT INTO entry_locks \
                     SELECT 'profile-' || (g / 10), 'SYM' || (g % 10), 'worker-' || g, now() - interval '5 s', \
                            now() + CASE WHEN g % 1000 = 0 THEN interval '-40 s' ELSE interval '25 s' END, \
                            CASE WHEN (g / 10) % 20 = 0 THEN g % 50 ELSE 0 END, \
                            CASE WHEN (g / 10) % 20 = 0 THEN now() - interval '60 s' END, \
                            CASE WHEN (g / 10) % 20 = 0 THEN now() - interval '1 s' END \
                     FROM generate_series(1, {rows}) g; ANALYZE entry_locks"
                ),
            )
            .await;
            let mut holder = connect(&url).await;
            exec(&mut holder, &format!("BEGIN; SELECT count(pg_advisory_xact_lock(g)) FROM generate_series(1, {locks}) g")).await;
            let mut waiter = connect(&url).await;
            let waiting = tokio::spawn(async move {
                exec(&mut waiter, "SELECT pg_advisory_lock(1)").await;
                waiter
            });
            loop {
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_locks WHERE NOT granted")
                    .fetch_one(&mut admin)
                    .await
                    .expect("count");
                if n > 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }

            for summary in [false, true] {
                measure(&url, rows, locks, summary).await;
            }
            exec(&mut holder, "COMMIT").await;
            let mut waiter = waiting.await.expect("waiter");
            exec(&mut waiter, "SELECT pg_advisory_unlock_all()").await;
            waiter.close().await.ok();
            holder.close().await.ok();
        }
    }
}

/// Polls one configuration and prints its line.
async fn measure(url: &str, rows: i64, locks: i64, summary: bool) {
    let target = Target::new(Some(url)).expect("target");
    let limits = SessionLimits::for_interval(Duration::from_secs(1));
    let mut monitor = Monitor::connect(&target, &LeaseMapping::default(), limits)
        .await
        .expect("monitor");
    if summary {
        monitor.set_detail(LeaseDetail::Summary {
            ttl: Duration::from_secs(30),
            focus: Vec::new(),
        });
    }
    let mut polls = Vec::new();
    let mut evals = Vec::new();
    let iterations = if rows >= 100_000 { 30 } else { 100 };
    let rules = Rules::default();
    // The first poll after connecting reads everything (aggregates and pg_locks): reported apart.
    let start = Instant::now();
    monitor.poll().await.expect("first poll");
    let first = start.elapsed().as_secs_f64() * 1000.0;
    for i in 0..iterations {
        if i == iterations / 2 {
            // Let the aggregates age, so that one measured poll refreshes them.
            tokio::time::sleep(locktop::source::SUMMARY_REFRESH).await;
        }
        let start = Instant::now();
        let snapshot = monitor.poll().await.expect("poll");
        polls.push(start.elapsed().as_secs_f64() * 1000.0);
        if !summary {
            assert_eq!(snapshot.leases.len() as i64, rows);
        }
        assert!(!snapshot.waits.is_empty());
        let start = Instant::now();
        let mut history = History::default();
        rules::record(&mut history, &snapshot, &rules);
        let board = rules::evaluate(&snapshot, &history, &rules, snapshot.server_now);
        evals.push(start.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(board);
    }
    polls.sort_by(f64::total_cmp);
    evals.sort_by(f64::total_cmp);
    println!(
        "{rows:>8} {locks:>7} {:>8} | {first:>7.2}ms {:>7.2}ms {:>7.2}ms {:>7.2}ms | {:>8.2}ms | {:>6} of {iterations}",
        if summary { "summary" } else { "full" },
        percentile(&polls, 0.5),
        percentile(&polls, 0.95),
        percentile(&polls, 1.0),
        percentile(&evals, 0.5),
        monitor.pg_locks_reads() - 1
    );
    monitor.close().await;
}

/// The client's work of a windowed poll of the scale scene, without a server: a mirror of 50,000 profiles ×
/// 4 keys, each poll putting 20,000 renewed rows (a tenth of the table, scattered), then taking the rows that
/// matter (1,000 contended profiles, 500 dead owners) and, every fifth poll, the per-profile summaries.
fn mirror_work() {
    use locktop::source::lease::{Delta, XidMark};
    use locktop::source::mirror::Mirror;
    use locktop::source::packed::PackedRows;
    let t0 = Utc.timestamp_opt(1_700_000_000, 0).single().expect("time");
    let contended = |p: usize| (500..1_500).contains(&p);
    let row = |p: usize, k: usize, at: chrono::DateTime<Utc>| LeaseRow {
        group: Some(format!("p{p:05}").into()),
        key: Some(format!("S{k}").into()),
        owner: Some(format!("worker-{}", p % 97).into()),
        expires_at: Some(if p < 500 && k == 0 {
            t0 - chrono::Duration::seconds(60)
        } else {
            at + chrono::Duration::seconds(30)
        }),
        acquired_at: Some(t0),
        contention_count: Some(i64::from(contended(p))),
        contended_since: contended(p).then_some(t0),
        last_contended_at: contended(p).then_some(at),
    };
    let delta = |xmax: u32, all: bool, window: bool| Delta {
        mark: XidMark {
            xmax,
            running: vec![],
        },
        total: 200_000,
        pages: 20_000,
        all,
        window,
    };
    let mut m = Mirror::default();
    let all: Vec<LeaseRow> = (0..50_000)
        .flat_map(|p| (0..4).map(move |k| (p, k)))
        .map(|(p, k)| row(p, k, t0))
        .collect();
    m.apply(PackedRows::of(&all).iter(), delta(100, true, false));
    m.apply(PackedRows::default().iter(), delta(101, false, false));
    m.start_window(2_000);
    let (mut applies, mut matters, mut summaries) = (Vec::new(), Vec::new(), Vec::new());
    let mut last = Vec::new();
    let ttl = chrono::Duration::seconds(30);
    // What the dashboard asks for: the profile under the cursor and the rest of its page, calm ones.
    let focus: Vec<String> = (20_000..20_039).map(|p| format!("p{p:05}")).collect();
    for poll in 1..=30_usize {
        let at = t0 + chrono::Duration::seconds(poll as i64);
        let renewed: Vec<LeaseRow> = (0..20_000)
            .map(|i| (i * 7_919 + poll * 104_729) % 200_000)
            .map(|n| row(n / 4, n % 4, at))
            .collect();
        // As a read gives them: packed (the decoding is the poll's, measured with the scene above).
        let renewed = PackedRows::of(&renewed);
        let start = Instant::now();
        m.apply_window(
            renewed.iter(),
            delta(101 + poll as u32, false, true),
            at,
            (Duration::from_millis(20), Duration::from_millis(20)),
        );
        applies.push(start.elapsed().as_secs_f64() * 1000.0);
        let start = Instant::now();
        std::hint::black_box(m.rows_that_matter(at, ttl, &focus));
        matters.push(start.elapsed().as_secs_f64() * 1000.0);
        if poll % 5 == 0 {
            let start = Instant::now();
            if let Some(s) = m.summaries() {
                last = s;
            }
            summaries.push(start.elapsed().as_secs_f64() * 1000.0);
        }
    }
    // The rules' evaluation of such a poll: 50,000 profiles from their summaries, the ones that matter in
    // detail.
    let at = t0 + chrono::Duration::seconds(31);
    let mut snapshot = Snapshot::at(at);
    snapshot.leases = m.rows_that_matter(at, ttl, &focus);
    snapshot.summaries = std::sync::Arc::new(last);
    evaluation_work(&snapshot, at);
    for v in [&mut applies, &mut matters, &mut summaries] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "mirror of 200,000 rows, 20,000 renewed a poll: put median {:.2} ms (max {:.2}); rows that matter (a page \
         of 39 in focus) median {:.2} ms; summaries of 50,000 profiles median {:.2} ms",
        percentile(&applies, 0.5),
        percentile(&applies, 1.0),
        percentile(&matters, 0.5),
        percentile(&summaries, 0.5),
    );
}

/// The history's record and the rules' evaluation of a poll of `snapshot` at `at`: from nothing; by an
/// evaluator that kept the calm profiles' places of its last evaluation, of the same summaries (the clock's
/// tick, and the polls between two refreshes of the summaries) and of summaries taken anew (every summary
/// looked at again; the calm profiles' views are built by no evaluation, only when asked for).
fn evaluation_work(snapshot: &Snapshot, at: chrono::DateTime<Utc>) {
    let rules = Rules::default();
    let mut history = History::default();
    let mut evaluator = rules::Evaluator::new();
    let (mut records, mut firsts, mut same, mut anew) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut refreshed = snapshot.clone();
    let mut judged = (0, 0);
    let (mut carried, mut fed) = (Vec::new(), 0);
    for round in 0..10 {
        // The history's record of a poll with summaries taken anew (every profile fed), then of one with the
        // same summaries (only the profiles read in detail or waited on).
        let mut fresh = snapshot.clone();
        fresh.summaries = std::sync::Arc::new(snapshot.summaries.to_vec());
        let start = Instant::now();
        rules::record(&mut history, &fresh, &rules);
        records.push(start.elapsed().as_secs_f64() * 1000.0);
        let start = Instant::now();
        rules::record(&mut history, &fresh, &rules);
        carried.push(start.elapsed().as_secs_f64() * 1000.0);
        fed = history.profiles_fed();
        let start = Instant::now();
        std::hint::black_box(rules::evaluate(snapshot, &history, &rules, at));
        firsts.push(start.elapsed().as_secs_f64() * 1000.0);
        // The summaries taken anew (the first round fills the evaluator), then a tick of the same ones.
        refreshed.summaries = std::sync::Arc::new(snapshot.summaries.to_vec());
        let start = Instant::now();
        std::hint::black_box(evaluator.evaluate(&refreshed, &history, &rules, at));
        let after_refresh = start.elapsed().as_secs_f64() * 1000.0;
        judged.0 = evaluator.summaries_judged();
        let start = Instant::now();
        std::hint::black_box(evaluator.evaluate(&refreshed, &history, &rules, at));
        let between = start.elapsed().as_secs_f64() * 1000.0;
        judged.1 = evaluator.summaries_judged();
        if round > 0 {
            anew.push(after_refresh);
            same.push(between);
        }
    }
    for v in [
        &mut records,
        &mut carried,
        &mut firsts,
        &mut same,
        &mut anew,
    ] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "evaluation of {} profiles ({} rows in detail): the history's record median {:.2} ms, of a poll with \
         the same summaries {:.2} ms ({fed} profiles fed); evaluation from nothing median {:.2} ms; by an evaluator that kept the calm places, after the summaries were taken anew \
         median {:.2} ms ({} summaries looked at), between two refreshes median {:.2} ms ({} looked at)",
        snapshot.summaries.len(),
        snapshot.leases.len(),
        percentile(&records, 0.5),
        percentile(&carried, 0.5),
        percentile(&firsts, 0.5),
        percentile(&anew, 0.5),
        judged.0,
        percentile(&same, 0.5),
        judged.1,
    );
}

/// 3,600 polls (an hour at 1 s) of 1,000 profiles, with contention moving between profiles.
fn model_memory() {
    let rules = Rules::default();
    let mut history = History::default();
    let start = Utc.timestamp_opt(1_700_000_000, 0).single().expect("time");
    let snapshot_at = |i: i64| {
        let now = start + chrono::Duration::seconds(i);
        Snapshot {
            poll_ms: 1.0,
            leases: (0..1_000)
                .map(|p| {
                    let hot = (p + i) % 50 == 0;
                    LeaseRow {
                        group: Some(format!("profile-{p}").into()),
                        key: Some("SYM".into()),
                        owner: Some(format!("worker-{}", (p * 7 + i / 30) % 200).into()),
                        expires_at: Some(now + chrono::Duration::seconds(20)),
                        acquired_at: Some(now - chrono::Duration::seconds(10)),
                        contention_count: Some(if hot { i } else { 0 }),
                        contended_since: hot.then_some(start),
                        last_contended_at: hot.then_some(now),
                    }
                })
                .collect(),
            ..Snapshot::at(now)
        }
    };
    // Warm up: the first snapshot's allocations are not growth.
    let first = snapshot_at(0);
    rules::record(&mut history, &first, &rules);
    std::hint::black_box(rules::evaluate(&first, &history, &rules, first.server_now));
    drop(first);
    let before = common::status_kib("self", "VmRSS:");
    let mut mid = 0;
    for i in 1..=3_600 {
        let s = snapshot_at(i);
        rules::record(&mut history, &s, &rules);
        std::hint::black_box(rules::evaluate(&s, &history, &rules, s.server_now));
        if i == 600 {
            mid = common::status_kib("self", "VmRSS:");
        }
    }
    let after = common::status_kib("self", "VmRSS:");
    println!(
        "\nmodel memory, 1,000 profiles: RSS {before} KiB after 1 poll, {mid} KiB after 600, {after} KiB after 3,600 polls; \
         history keeps {} samples for {} profiles",
        history.stored_samples(),
        history.tracked_profiles()
    );
}
