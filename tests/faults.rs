//! Faults produced for real while locktop watches: its backend terminated, the network stalled by a TCP proxy,
//! a slow answer to the `pg_locks` read, a migration holding ACCESS EXCLUSIVE on the lease table. locktop says
//! what happened, keeps the last data marked stale, keeps answering keys, and comes back by itself.
//! (A server restart has its own test binary, `restart.rs`, since it stops the cluster.)

mod common;

use std::time::{Duration, Instant};

use common::proxy::Proxy;
use common::pty::Tui;
use common::{connect, connect_as, database, exec, pid, tcp_upstream, url_via};
use locktop::config::LeaseMapping;
use locktop::source::{SessionLimits, SourceError};

/// A migration's session holding ACCESS EXCLUSIVE on the lease table in an open transaction, and its pid.
async fn lock_table(url: &str) -> (sqlx::PgConnection, i32) {
    let mut migration = connect_as(url, "migration").await;
    let migration_pid = pid(&mut migration).await;
    exec(
        &mut migration,
        "BEGIN; LOCK TABLE entry_locks IN ACCESS EXCLUSIVE MODE",
    )
    .await;
    (migration, migration_pid)
}

/// Waits for the screen to show `what`, and returns how long it took.
fn time_until(tui: &Tui, what: &str) -> Duration {
    let started = Instant::now();
    tui.wait_for(what);
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_backend_shows_reconnecting_keeps_the_data_and_is_back_within_the_backoff() {
    let url = database("terminated").await;
    let _holder = common::acquire(&url, "KEPT", "w1").await;
    let db = url.to_string();
    let mut tui = tokio::task::spawn_blocking(move || {
        let tui = Tui::start(&["--dsn", &db, "--interval", "500ms"]);
        tui.wait_for("KEPT");
        tui
    })
    .await
    .expect("pty");

    let mut admin = connect(&url).await;
    // OFFSET 0 keeps the filter inside: the planner may not run pg_terminate_backend on other rows first.
    let terminated: i64 = sqlx::query_scalar(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM (SELECT pid FROM pg_stat_activity \
         WHERE application_name = 'locktop' AND datname = current_database() OFFSET 0) monitor",
    )
    .fetch_one(&mut admin)
    .await
    .expect("terminate");
    assert_eq!(terminated, 1, "one monitor session, terminated");
    let terminated_at = Instant::now();

    let (screen, back) = tokio::task::spawn_blocking(move || {
        let screen = tui.wait_for("reconnecting (attempt 1, next in");
        let back = time_until(&tui, " live ");
        tui.keys("q");
        assert_eq!(tui.wait_exit(), 0);
        (screen, back)
    })
    .await
    .expect("pty");
    assert!(screen.contains("KEPT"), "the last data stays:\n{screen}");
    assert!(screen.contains("stale"), "and is marked stale:\n{screen}");
    let recovery = terminated_at.elapsed();
    eprintln!(
        "terminated backend: live again {recovery:?} after the kill ({back:?} after reconnecting showed)"
    );
    // First backoff 0.5 s ± 20 %, one interval to notice, one connect: well under the 15 s cap.
    assert!(recovery < Duration::from_secs(5), "{recovery:?}");
    let sessions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'locktop' AND datname = current_database()",
    )
    .fetch_one(&mut admin)
    .await
    .expect("count");
    assert_eq!(sessions, 0, "the monitor's session ends with it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_network_marks_the_data_stale_keys_still_answer_and_locktop_reconnects() {
    let url = database("stalled").await;
    let _holder = common::acquire(&url, "STALLED", "w1").await;
    let proxy = Proxy::start(tcp_upstream(&url)).await;
    let via = url_via(&url, proxy.addr);

    let mut tui = tokio::task::spawn_blocking(move || {
        let tui = Tui::start(&["--dsn", &via, "--interval", "1s"]);
        tui.wait_for("STALLED");
        tui.wait_for(" live ");
        tui
    })
    .await
    .expect("pty");

    proxy.stall();
    let stalled_at = Instant::now();
    let tui_back = tokio::task::spawn_blocking(move || {
        tui.wait_for("stale");
        let stale_after = stalled_at.elapsed();
        // The UI never waits for the database: the help opens at once while the poll hangs.
        let asked = Instant::now();
        tui.keys("?");
        tui.wait_for("help (? or Esc closes)");
        let answered = asked.elapsed();
        tui.keys("\x1b");
        // The hanging poll is abandoned by the client-side timeout (statement timeout 0.8 s + 1 s).
        let screen = tui.wait_for("reconnecting (attempt");
        (tui, stale_after, answered, screen)
    })
    .await
    .expect("pty");
    let (mut tui, stale_after, answered, screen) = tui_back;
    let abandoned_after = stalled_at.elapsed();
    assert!(
        stale_after < Duration::from_millis(2600),
        "stale within two intervals: {stale_after:?}"
    );
    assert!(
        answered < Duration::from_millis(500),
        "a key took {answered:?}"
    );
    assert!(screen.contains("STALLED"), "the last data stays:\n{screen}");
    assert!(
        screen.contains("timed out") || screen.contains("no answer"),
        "says why:\n{screen}"
    );

    // Forwarding resumes: the pending connect completes and the data is live again.
    proxy.resume();
    let resumed_at = Instant::now();
    tui = tokio::task::spawn_blocking(move || {
        tui.wait_for(" live ");
        tui
    })
    .await
    .expect("pty");
    let back_after_resume = resumed_at.elapsed();

    // Stalled again, then the proxy drops the connections (a reset): locktop reconnects.
    proxy.stall();
    tui = tokio::task::spawn_blocking(move || {
        tui.wait_for("stale");
        tui
    })
    .await
    .expect("pty");
    proxy.close_all();
    let reset_at = Instant::now();
    tokio::task::spawn_blocking(move || {
        tui.wait_for(" live ");
        tui.keys("q");
        assert_eq!(tui.wait_exit(), 0);
    })
    .await
    .expect("pty");
    let back_after_reset = reset_at.elapsed();
    eprintln!(
        "stalled network: stale after {stale_after:?}, key answered in {answered:?}, poll abandoned after \
         {abandoned_after:?}; live {back_after_resume:?} after forwarding resumed, {back_after_reset:?} after a reset"
    );
    assert!(
        back_after_resume < Duration::from_secs(16),
        "{back_after_resume:?}"
    );
    assert!(
        back_after_reset < Duration::from_secs(16),
        "{back_after_reset:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pg_locks_answer_that_never_comes_is_cut_by_the_client_timeout() {
    let url = database("slow_locks").await;
    // A lock wait, so that the first poll reads pg_locks.
    let wait = common::AdvisoryWait::start(&url, 99, "holder", "SELECT pg_advisory_lock(99)").await;

    let proxy = Proxy::start(tcp_upstream(&url)).await;
    let limits = SessionLimits::for_interval(Duration::from_millis(500));
    let mut m = common::monitor(&url_via(&url, proxy.addr), &LeaseMapping::default(), limits).await;
    proxy.stall_answers_after("pg_locks");
    let started = Instant::now();
    let result = m.poll().await;
    let took = started.elapsed();
    assert!(
        matches!(result, Err(SourceError::Timeout(_))),
        "{result:?} after {took:?}"
    );
    assert!(
        proxy.answers_stalled(),
        "the stalled read was the pg_locks one"
    );
    assert_eq!(m.pg_locks_reads(), 0, "and it never completed");
    assert!(
        took < limits.client_timeout + Duration::from_millis(500),
        "cut at the client timeout {:?}, took {took:?}",
        limits.client_timeout
    );
    eprintln!(
        "stalled pg_locks answer: poll abandoned after {took:?} (client timeout {:?})",
        limits.client_timeout
    );
    proxy.resume();
    wait.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_exclusive_on_the_lease_table_names_its_holder_and_the_monitor_never_queues() {
    let url = database("access_exclusive").await;
    let _holder = common::acquire(&url, "LOCKED", "w1").await;
    let (mut migration, migration_pid) = lock_table(&url).await;
    // A worker queues behind the migration, as the trading loop would.
    let worker_url = url.to_string();
    let worker = tokio::spawn(async move {
        let mut w = connect_as(&worker_url, "w2").await;
        let _ = sqlx::query("SELECT fn_try_acquire_entry_lock_row('LOCKED', 'BTC', 'w2')")
            .execute(&mut w)
            .await;
    });
    common::wait_for_lock_waiters(&url, 1).await;

    let limits = SessionLimits::for_interval(Duration::from_millis(500));
    // Connecting does not need the table's lock.
    let mut m = common::monitor(&url, &LeaseMapping::default(), limits).await;
    let monitor_pid = pid(m.connection()).await;

    // Watch the monitor's backend from outside while it polls: it must not sit in the lock queue.
    let watch_url = url.to_string();
    let watcher = tokio::spawn(async move {
        let mut probe = connect(&watch_url).await;
        let mut queued_samples = 0_u32;
        let mut samples = 0_u32;
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            let waiting: bool = sqlx::query_scalar(
                "SELECT coalesce(bool_or(wait_event_type = 'Lock'), false) FROM pg_stat_activity WHERE pid = $1",
            )
            .bind(monitor_pid)
            .fetch_one(&mut probe)
            .await
            .expect("probe");
            samples += 1;
            queued_samples += u32::from(waiting);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (queued_samples, samples)
    });

    let mut polls = Vec::new();
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let started = Instant::now();
        let snapshot = m.poll().await.expect("the poll itself succeeds");
        polls.push(started.elapsed());
        let error = snapshot.lease_error.clone().unwrap_or_default();
        assert!(
            error.contains(&format!("pid {migration_pid}"))
                && error.contains("AccessExclusiveLock"),
            "names who locks the table and how: {error:?}"
        );
        assert!(
            snapshot
                .waits
                .iter()
                .any(|w| w.blocked_by.contains(&migration_pid)),
            "the locks pane still shows the worker queued behind the migration: {:?}",
            snapshot.waits
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (queued, samples) = watcher.await.expect("watcher");
    let slowest = polls.iter().max().copied().unwrap_or_default();
    eprintln!(
        "ACCESS EXCLUSIVE: {} polls, slowest {slowest:?}; monitor seen in the lock queue in {queued} of {samples} samples",
        polls.len()
    );
    assert_eq!(queued, 0, "the monitor queued behind the migration");
    assert!(
        slowest < limits.lock_timeout + Duration::from_millis(300),
        "{slowest:?}"
    );

    exec(&mut migration, "COMMIT").await;
    worker.await.expect("worker");
    // The next poll reads the rows again (the lock is gone, so the memo is dropped).
    let snapshot = m.poll().await.expect("poll");
    assert_eq!(snapshot.lease_error, None);
    assert!(!snapshot.leases.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_asks_the_server_for_tcp_keepalives_over_tcp() {
    let url = database("keepalive").await;
    let proxy = Proxy::start(tcp_upstream(&url)).await;
    let mut m = common::monitor(
        &url_via(&url, proxy.addr),
        &LeaseMapping::default(),
        SessionLimits::for_interval(Duration::from_secs(1)),
    )
    .await;
    for (setting, want) in [
        ("tcp_keepalives_idle", "30"),
        ("tcp_keepalives_interval", "10"),
        ("tcp_keepalives_count", "3"),
    ] {
        let value: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SHOW {setting}")))
            .fetch_one(m.connection())
            .await
            .expect("show");
        assert_eq!(value, want, "{setting}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_lock_nobody_queues_for_costs_one_lock_timeout_then_the_monitor_stays_out_of_the_queue()
 {
    let url = database("access_exclusive_alone").await;
    let _holder = common::acquire(&url, "ALONE", "w1").await;
    let (mut migration, migration_pid) = lock_table(&url).await;
    let limits = SessionLimits::for_interval(Duration::from_millis(500));
    let mut m = common::monitor(&url, &LeaseMapping::default(), limits).await;
    let monitor_pid = pid(m.connection()).await;

    // Nobody else queues, so only trying tells: the first read waits lock_timeout and gives up.
    let started = Instant::now();
    let first = m.poll().await.expect("poll");
    let first_took = started.elapsed();
    assert!(first_took >= limits.lock_timeout, "{first_took:?}");
    let error = first.lease_error.unwrap_or_default();
    assert!(
        error.contains(&format!(
            "pid {migration_pid} holds AccessExclusiveLock (migration, idle in transaction)"
        )),
        "{error:?}"
    );

    // From then on the monitor asks pg_locks instead of queueing.
    let mut probe = connect(&url).await;
    for _ in 0..10 {
        let polling = m.poll();
        let watching = async {
            let mut queued = false;
            for _ in 0..20 {
                let waiting: bool = sqlx::query_scalar(
                    "SELECT coalesce(bool_or(wait_event_type = 'Lock'), false) FROM pg_stat_activity WHERE pid = $1",
                )
                .bind(monitor_pid)
                .fetch_one(&mut probe)
                .await
                .expect("probe");
                queued |= waiting;
            }
            queued
        };
        let (snapshot, queued) = tokio::join!(polling, watching);
        assert!(!queued, "the monitor queued behind the migration");
        assert!(
            snapshot
                .expect("poll")
                .lease_error
                .is_some_and(|e| e.contains("AccessExclusiveLock")),
            "still says why the rows are missing"
        );
    }
    eprintln!(
        "ACCESS EXCLUSIVE, nobody queued: first poll {first_took:?} (lock_timeout {:?})",
        limits.lock_timeout
    );
    exec(&mut migration, "COMMIT").await;
    let snapshot = m.poll().await.expect("poll");
    assert_eq!(snapshot.lease_error, None);
    assert_eq!(snapshot.leases.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_without_pg_monitor_sees_a_note_on_screen_not_a_calm_empty_board() {
    let url = database("limited_screen").await;
    let _holder = common::acquire(&url, "SEEN", "w1").await;
    let limited = common::reader_role(&url, "limited_screen").await;
    // Someone else's advisory wait: the limited role still finds it through pg_locks.
    let wait =
        common::AdvisoryWait::start(&url, 31, "scheduler-a", "SELECT pg_advisory_lock(31)").await;

    let screen = tokio::task::spawn_blocking(move || {
        let mut tui = Tui::start(&["--dsn", &limited, "--interval", "500ms"]);
        let screen = tui.wait_for("role lacks pg_monitor");
        let screen = if screen.contains("advisory 31") {
            screen
        } else {
            tui.wait_for("advisory 31")
        };
        tui.keys("q");
        assert_eq!(tui.wait_exit(), 0);
        screen
    })
    .await
    .expect("pty");
    assert!(screen.contains("SEEN"), "{screen}");
    wait.release().await;
}
