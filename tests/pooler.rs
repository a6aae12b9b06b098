//! Through a real PgBouncer in transaction mode (Debian's `pgbouncer`, pool of two), as Supabase's port 6543:
//! every poll is one simple-protocol transaction, and no snapshot may carry another client's rows.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::pgbouncer::PgBouncer;
use common::{connect, exec, tcp_upstream, url_via};
use locktop::config::LeaseMapping;
use locktop::source::{LeaseDetail, Monitor, Pooler, SessionLimits, Target};
use sqlx::Connection as _;

fn limits() -> SessionLimits {
    SessionLimits::for_interval(Duration::from_secs(1))
}

/// 20 profiles, each held by its own owner for an hour: what every snapshot must show, exactly.
async fn held_profiles(url: &str) -> Vec<(String, String)> {
    let mut conn = connect(url).await;
    exec(
        &mut conn,
        "INSERT INTO entry_locks (profile_id, symbol, owner_token, acquired_at, expires_at) \
         SELECT 'p-' || i, 'BTC', 'owner-' || i, now(), now() + interval '1 hour' \
         FROM generate_series(1, 20) i",
    )
    .await;
    conn.close().await.ok();
    (1..=20)
        .map(|i| (format!("p-{i}"), format!("owner-{i}")))
        .collect()
}

/// Clients sharing the pooler's two server connections: they fail to take the held rows (moving the
/// contention counters), and run selects shaped like the monitor's (same column names, other rows).
fn other_clients(
    url: &str,
    n: usize,
) -> (
    Arc<AtomicBool>,
    Arc<AtomicU64>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let queries = Arc::new(AtomicU64::new(0));
    let tasks = (0..n)
        .map(|c| {
            let (url, stop, queries) = (url.to_owned(), stop.clone(), queries.clone());
            tokio::spawn(async move {
                let options: sqlx::postgres::PgConnectOptions = url.parse().expect("url");
                let mut conn = sqlx::ConnectOptions::connect(&options.extra_float_digits(None))
                    .await
                    .expect("client connects through the pooler");
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let sql = format!(
                        "SELECT fn_try_acquire_entry_lock_row('p-{}', 'BTC', 'intruder-{c}'); \
                         SELECT 1 AS kind, NULL::timestamptz AS server_now, 'intruder-{c}' AS \"group\", \
                                'k' AS \"key\", 'intruder' AS owner, now() AS expires_at \
                         FROM generate_series(1, 5); \
                         SELECT 424242 AS pid, 'intruder' AS application_name",
                        i % 20 + 1
                    );
                    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut conn)
                        .await
                        .expect("other client's query");
                    queries.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    (stop, queries, tasks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_polls_through_a_transaction_pooler_are_all_correct() {
    let url = common::database("pooler").await;
    let expected = held_profiles(&url).await;
    let bouncer = PgBouncer::start(tcp_upstream(&url), 2);
    let pooled_url = url_via(&url, bouncer.addr);
    let (stop, queries, clients) = other_clients(&pooled_url, 6);

    let target = Target::new(Some(&pooled_url))
        .expect("url")
        .with_pooler(Pooler::Transaction);
    let mut monitor = Monitor::connect(&target, &LeaseMapping::default(), limits())
        .await
        .unwrap_or_else(|e| panic!("connects through the pooler: {e}\n{}", bouncer.log()));
    let mut backends = std::collections::HashSet::new();
    for poll in 0..1000 {
        // Alternate the read modes: full rows, then summaries with and without a profile in focus.
        monitor.set_detail(match poll % 3 {
            0 => LeaseDetail::Full,
            1 => LeaseDetail::Summary {
                ttl: Duration::from_secs(30),
                focus: Vec::new(),
            },
            _ => LeaseDetail::Summary {
                ttl: Duration::from_secs(30),
                focus: vec!["p-7".into()],
            },
        });
        let s = monitor
            .poll()
            .await
            .unwrap_or_else(|e| panic!("poll {poll}: {e}\n{}", bouncer.log()));
        assert!(s.pooled, "the snapshot says it came through a pooler");
        assert_eq!(s.lease_error, None, "poll {poll}");
        let mut seen: Vec<(String, String)> = if poll % 3 == 0 {
            s.leases
                .iter()
                .map(|r| {
                    (
                        r.group.as_deref().unwrap_or_default().to_owned(),
                        r.owner.as_deref().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        } else {
            s.summaries
                .iter()
                .map(|p| {
                    (
                        p.group.as_deref().unwrap_or_default().to_owned(),
                        p.sample_owner.as_deref().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        };
        seen.sort_by(|a, b| locktop::model::order::natural_cmp(&a.0, &b.0));
        assert_eq!(seen, expected, "poll {poll} read exactly the held rows");
        assert!(
            s.leases
                .iter()
                .all(|r| r.group.as_deref() != Some("intruder")
                    && r.owner.as_deref() != Some("intruder")),
            "poll {poll} carries another client's rows"
        );
        assert!(
            s.sessions.iter().all(|x| x.pid != 424_242),
            "poll {poll} carries another client's session rows"
        );
        backends.extend(s.sessions.iter().map(|x| x.pid));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client");
    }
    let others = queries.load(Ordering::Relaxed);
    assert!(
        others >= 200,
        "the other clients ran at the same time ({others} batches)"
    );
    // The contention the intruders made is visible: the rows' counters moved.
    let s = monitor.poll().await.expect("last poll");
    assert!(
        s.summaries.iter().any(|p| p.failure_total.unwrap_or(0) > 0)
            || s.leases.iter().any(|r| r.contention_count.unwrap_or(0) > 0),
        "failed acquisitions are seen"
    );
    monitor.close().await;
    drop(bouncer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flag_a_pooler_is_recognised_by_its_refusal_of_startup_parameters() {
    let url = common::database("detect").await;
    held_profiles(&url).await;
    let bouncer = PgBouncer::start(tcp_upstream(&url), 1);
    let target = Target::new(Some(&url_via(&url, bouncer.addr))).expect("url");
    assert_eq!(target.pooler(), Pooler::None);
    let mut monitor = Monitor::connect(&target, &LeaseMapping::default(), limits())
        .await
        .unwrap_or_else(|e| panic!("connects: {e}\n{}", bouncer.log()));
    let s = monitor.poll().await.expect("poll");
    assert!(s.pooled, "detected as a pooler");
    assert_eq!(s.leases.len(), 20);
    monitor.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_waits_are_named_and_a_migration_lock_is_not_queued_behind_through_the_pooler() {
    let url = common::database("pooled_waits").await;
    let (_bouncer, limits, mut m) = pooled_monitor(&url).await;

    // A row-lock wait: the lease row is named by the poll after the one that first saw the wait.
    let _owner = common::acquire(&url, "ROW", "w1").await;
    let mut holder = connect(&url).await;
    exec(
        &mut holder,
        "BEGIN; SELECT 1 FROM entry_locks WHERE profile_id = 'ROW' FOR UPDATE",
    )
    .await;
    let mut waiter = common::connect_as(&url, "w2").await;
    let waiting = tokio::spawn(async move {
        let _ = sqlx::raw_sql("SELECT fn_try_acquire_entry_lock_row('ROW', 'BTC', 'w2')")
            .execute(&mut waiter)
            .await;
        waiter
    });
    common::wait_for_lock_waiters(&url, 1).await;
    let (poll, w) = poll_until_named(&mut m).await;
    let row = w.lease_row;
    assert_eq!(row, Some((Some("ROW".into()), Some("BTC".into())).into()));
    assert!(poll <= 1, "named on poll {poll}");
    exec(&mut holder, "COMMIT").await;
    drop(waiting.await);

    // A migration holds ACCESS EXCLUSIVE: one poll waits lock_timeout, the next ones name the holder and do
    // not wait at all.
    let mut migration = common::connect_as(&url, "migration").await;
    let migration_pid = common::pid(&mut migration).await;
    exec(
        &mut migration,
        "BEGIN; LOCK TABLE entry_locks IN ACCESS EXCLUSIVE MODE",
    )
    .await;
    let first = m.poll().await.expect("poll");
    assert!(
        first.lease_error.is_some_and(|e| e.contains("locked")),
        "the first poll says the table is locked"
    );
    for _ in 0..5 {
        let started = std::time::Instant::now();
        let s = m.poll().await.expect("poll");
        let took = started.elapsed();
        assert!(took < limits.lock_timeout, "a poll queued: {took:?}");
        let note = s.lease_error.unwrap_or_default();
        assert!(
            note.contains(&format!("pid {migration_pid} holds AccessExclusiveLock")),
            "{note}"
        );
    }
    exec(&mut migration, "COMMIT").await;
    let _ = m.poll().await.expect("poll");
    let s = m.poll().await.expect("poll");
    assert_eq!(s.lease_error, None);
    assert_eq!(s.leases.len(), 1, "the lease rows are back");
    m.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_command_through_the_pooler_reads_the_rows_and_says_so() {
    let url = common::database("pooled_cli").await;
    held_profiles(&url).await;
    let bouncer = PgBouncer::start(tcp_upstream(&url), 1);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_locktop"))
        .args(["snapshot", "--format", "json", "--pooler", "transaction"])
        .env("DATABASE_URL", url_via(&url, bouncer.addr))
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert!(stdout.contains("owner-17"), "{stdout}");
    assert!(
        json.to_string()
            .contains(locktop::model::snapshot::POOLED_NOTE),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_through_the_pooler_shows_the_rows_and_warns_about_pids() {
    let url = common::database("pooled_tui").await;
    held_profiles(&url).await;
    let bouncer = PgBouncer::start(tcp_upstream(&url), 2);
    let pooled = url_via(&url, bouncer.addr);
    tokio::task::spawn_blocking(move || {
        let mut tui = common::pty::Tui::start(&["--dsn", &pooled, "--pooler", "transaction"]);
        let screen = tui.wait_for("owner-17");
        assert!(screen.contains("via pooler: pids"), "{screen}");
        assert!(screen.contains(" live "), "{screen}");
        tui.keys("q");
        assert_eq!(tui.wait_exit(), 0);
        drop(bouncer);
    })
    .await
    .expect("pty");
}

/// Through the pooler too, a lone waiter that holds no tuple lock (the reference function's upsert behind an
/// open renewal) is named by the blocker's transaction id against the rows' `xmax`, by the next poll's batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_upsert_waiter_is_named_through_the_pooler_by_xmax() {
    let url = common::database("pooled_xmax").await;
    let (_bouncer, _, mut m) = pooled_monitor(&url).await;
    let mut holder = common::connect_as(&url, "worker-process").await;
    let take = "SELECT fn_try_acquire_entry_lock_row('UP', 'BTC', 'holder')";
    exec(&mut holder, take).await;
    exec(&mut holder, &format!("BEGIN; {take}")).await;
    let mut waiter = common::connect_as(&url, "rival").await;
    let waiting = tokio::spawn(async move {
        let _ = sqlx::raw_sql("SELECT fn_try_acquire_entry_lock_row('UP', 'BTC', 'rival')")
            .execute(&mut waiter)
            .await;
        waiter
    });
    common::wait_for_lock_waiters(&url, 1).await;
    let (poll, w) = poll_until_named(&mut m).await;
    assert_eq!(w.tuple, None, "no tuple lock names this row: {w:?}");
    let row = w.lease_row;
    assert_eq!(row, Some((Some("UP".into()), Some("BTC".into())).into()));
    assert!(poll <= 1, "named on poll {poll}");
    exec(&mut holder, "ROLLBACK").await;
    drop(waiting.await);
}

/// Polls until a wait's lease row is named (within three polls): which poll, and the wait.
async fn poll_until_named(m: &mut Monitor) -> (usize, locktop::model::LockWait) {
    for poll in 0..3 {
        let s = m.poll().await.expect("poll");
        if let Some(w) = s.waits.into_iter().find(|w| w.lease_row.is_some()) {
            return (poll, w);
        }
    }
    panic!("the waited-on row is named within three polls");
}

/// A PgBouncer in transaction mode (pool of 2) in front of `url`'s server, and a monitor through it polling
/// every 500 ms, with its limits. The bouncer lives as long as the value returned.
async fn pooled_monitor(url: &str) -> (PgBouncer, SessionLimits, Monitor) {
    let bouncer = PgBouncer::start(tcp_upstream(url), 2);
    let target = Target::new(Some(&url_via(url, bouncer.addr)))
        .expect("url")
        .with_pooler(Pooler::Transaction);
    let limits = SessionLimits::for_interval(Duration::from_millis(500));
    let m = Monitor::connect(&target, &LeaseMapping::default(), limits)
        .await
        .expect("connects");
    (bouncer, limits, m)
}
