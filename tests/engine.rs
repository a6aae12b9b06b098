//! The lock data engine against a real PostgreSQL: contention made by real sessions calling the reference
//! functions, row-lock and advisory waits, the runbook's rules, the config mapping, and the monitor's safety.

mod common;

use std::time::Duration;

use common::{connect, connect_as, database, exec, pid, wait_for_lock_waiters};
use locktop::cmd::snapshot::evaluate_once;
use locktop::config::{Config, LeaseMapping};
use locktop::model::rules::{Alert, Rules};
use locktop::model::{AdvisoryKey, Board, Status, Visibility};
use locktop::source::{Monitor, SessionLimits, SourceError, Target};
use sqlx::postgres::PgConnection;

fn limits() -> SessionLimits {
    SessionLimits::for_interval(Duration::from_secs(1))
}

async fn monitor(url: &str, mapping: &LeaseMapping) -> Result<Monitor, SourceError> {
    Monitor::connect(&Target::new(Some(url)).expect("url"), mapping, limits()).await
}

async fn board(url: &str) -> Board {
    let mut m = monitor(url, &LeaseMapping::default())
        .await
        .expect("monitor connects");
    let snapshot = m.poll().await.expect("poll");
    evaluate_once(&snapshot, &Rules::default())
}

async fn try_acquire(conn: &mut PgConnection, profile: &str, symbol: &str, owner: &str) -> bool {
    sqlx::query_scalar("SELECT fn_try_acquire_entry_lock_row($1, $2, $3, interval '30 seconds')")
        .bind(profile)
        .bind(symbol)
        .bind(owner)
        .fetch_one(conn)
        .await
        .expect("acquire")
}

fn profile<'a>(board: &'a Board, name: &str) -> &'a locktop::model::ProfileView {
    board
        .profiles
        .iter()
        .find(|p| *p.profile == *name)
        .unwrap_or_else(|| panic!("profile {name} in {board:#?}"))
}

#[tokio::test]
async fn real_contention_shows_the_contended_profile_its_failures_and_holder_while_others_read_ok()
{
    let url = database("contention").await;
    // The holder's application_name is its owner token, so locktop can link the row to its backend.
    let mut holder = connect_as(&url, "worker-a").await;
    let holder_pid = pid(&mut holder).await;
    let mut rival = connect_as(&url, "worker-b").await;
    let mut calm = connect_as(&url, "worker-c").await;
    assert!(try_acquire(&mut holder, "P1", "AAPL", "worker-a").await);
    assert!(try_acquire(&mut calm, "P2", "MSFT", "worker-c").await);
    for _ in 0..3 {
        assert!(
            !try_acquire(&mut rival, "P1", "AAPL", "worker-b").await,
            "the row is held"
        );
    }
    assert!(
        try_acquire(&mut holder, "P1", "AAPL", "worker-a").await,
        "the owner renews"
    );

    let b = board(&url).await;
    let p1 = profile(&b, "P1");
    assert_eq!(p1.status, Status::Contended, "{p1:#?}");
    assert_eq!(p1.contention_count, 3);
    let held = p1.holders().next().expect("a holder");
    assert_eq!(held.owner.as_deref(), Some("worker-a"));
    assert_eq!(held.pid, Some(holder_pid));
    let ttl = held.ttl_remaining(b.now).expect("ttl").num_seconds();
    assert!((25..=30).contains(&ttl), "ttl {ttl}");
    assert_eq!(profile(&b, "P2").status, Status::Ok);
    assert_eq!(
        &*b.profiles[0].profile, "P1",
        "contended profiles sort first"
    );
    assert!(
        b.alerts.is_empty(),
        "one contended profile raises no alert: {:?}",
        b.alerts
    );
}

#[tokio::test]
async fn racing_sessions_never_give_one_unexpired_row_two_owners() {
    let url = database("race").await;
    let mut admin = connect(&url).await;
    for round in 0..12 {
        if round % 3 == 1 {
            // Expire the current lease: the next race must again have exactly one winner.
            exec(
                &mut admin,
                "UPDATE entry_locks SET expires_at = now() - interval '1 second'",
            )
            .await;
        }
        let mut tasks = Vec::new();
        for w in 0..16 {
            let url = url.to_string();
            tasks.push(tokio::spawn(async move {
                let owner = format!("r{round}-w{w}");
                let mut c = connect_as(&url, &owner).await;
                try_acquire(&mut c, "HOT", "BTC", &owner).await
            }));
        }
        let mut winners = 0;
        for t in tasks {
            winners += usize::from(t.await.expect("task"));
        }
        let expected = usize::from(round == 0 || round % 3 == 1);
        assert_eq!(winners, expected, "round {round}");
        let owners: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM entry_locks WHERE profile_id = 'HOT' AND expires_at > now()",
        )
        .fetch_one(&mut admin)
        .await
        .expect("count");
        assert_eq!(owners, 1);
    }
    // Failures were recorded: 15 in each of the 5 rounds with a winner (0, 1, 4, 7, 10), 16 in the 7 others.
    let failures: i64 =
        sqlx::query_scalar("SELECT contention_count FROM entry_locks WHERE profile_id = 'HOT'")
            .fetch_one(&mut admin)
            .await
            .expect("count");
    assert_eq!(failures, 5 * 15 + 7 * 16);
}

#[tokio::test]
async fn only_the_owner_can_release_and_a_released_row_is_free_but_keeps_its_episode() {
    let url = database("release").await;
    let mut a = connect_as(&url, "a").await;
    let mut b = connect_as(&url, "b").await;
    assert!(try_acquire(&mut a, "P", "S", "a").await);
    assert!(!try_acquire(&mut b, "P", "S", "b").await);
    let released: bool = sqlx::query_scalar("SELECT fn_release_entry_lock_row('P', 'S', 'b')")
        .fetch_one(&mut b)
        .await
        .expect("release");
    assert!(!released, "b does not own it");
    let released: bool = sqlx::query_scalar("SELECT fn_release_entry_lock_row('P', 'S', 'a')")
        .fetch_one(&mut a)
        .await
        .expect("release");
    assert!(released);
    let b_board = board(&url).await;
    let p = profile(&b_board, "P");
    assert_eq!(p.holders().count(), 0, "a released row has no holder");
    assert_eq!(
        p.status,
        Status::Contended,
        "the episode outlives the hand-over"
    );
    assert!(try_acquire(&mut b, "P", "S", "b").await);
}

#[tokio::test]
async fn an_episode_older_than_90_seconds_escalates_and_the_snapshot_exits_2() {
    let url = database("escalate").await;
    let mut admin = connect(&url).await;
    assert_eq!(run_snapshot(&url).0, 0, "an empty table is calm");
    exec(
        &mut admin,
        "INSERT INTO entry_locks VALUES \
           ('P1', 'AAPL', 'w1', now() - interval '5 s', now() + interval '25 s', 40, now() - interval '100 s', now() - interval '1 s'), \
           ('P2', 'MSFT', 'w2', now(), now() + interval '30 s', 0, NULL, NULL)",
    )
    .await;
    let b = board(&url).await;
    let p1 = profile(&b, "P1");
    assert_eq!(p1.status, Status::Escalated);
    assert!(
        p1.reasons[0].contains("contended for 1m40s (over the 1m30s escalation limit)"),
        "{:?}",
        p1.reasons
    );
    assert!(
        matches!(&b.alerts[..], [Alert::ContendedTooLong { profile, .. }] if profile == "P1"),
        "{:?}",
        b.alerts
    );
    let (code, json) = run_snapshot(&url);
    assert_eq!(code, 2);
    let doc: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(doc["profiles"][0]["profile"], "P1");
    assert_eq!(doc["profiles"][0]["status"], "escalated");
    assert_eq!(doc["profiles"][0]["contention_count"], 40);
    assert_eq!(doc["profiles"][0]["holders"][0]["owner"], "w1");
    assert!(
        doc["profiles"][0]["contended_for_s"]
            .as_i64()
            .expect("seconds")
            >= 100
    );
    assert_eq!(doc["profiles"][1]["status"], "ok");
    assert_eq!(doc["alerts"][0]["trigger"], "contended_too_long");
}

#[tokio::test]
async fn an_expired_unrefreshed_row_reads_expired_and_escalates_while_contention_goes_on() {
    let url = database("expired").await;
    let mut admin = connect(&url).await;
    exec(
        &mut admin,
        "INSERT INTO entry_locks VALUES \
           ('DEAD', 'AAPL', 'w-dead', now() - interval '60 s', now() - interval '40 s', 12, now() - interval '20 s', now() - interval '2 s'), \
           ('IDLE', 'MSFT', 'w-gone', now() - interval '60 s', now() - interval '5 s', 0, NULL, NULL)",
    )
    .await;
    let b = board(&url).await;
    let dead = profile(&b, "DEAD");
    assert_eq!(dead.status, Status::Escalated, "{dead:#?}");
    assert!(
        dead.reasons
            .iter()
            .any(|r| r.contains("expired 40s ago and not refreshed while contention goes on"))
    );
    assert!(
        b.alerts
            .iter()
            .any(|a| matches!(a, Alert::ExpiredNotRefreshed { key, .. } if key == "AAPL"))
    );
    let idle = profile(&b, "IDLE");
    assert_eq!(idle.status, Status::Expired);
    assert!(
        idle.reasons[0].contains("may be dead"),
        "{:?}",
        idle.reasons
    );
    assert_eq!(run_snapshot(&url).0, 2);
}

#[tokio::test]
async fn two_contended_profiles_raise_the_global_alert() {
    let url = database("several").await;
    let mut holder = connect_as(&url, "h").await;
    let mut rival = connect_as(&url, "r").await;
    for p in ["P1", "P2"] {
        assert!(try_acquire(&mut holder, p, "X", "h").await);
        assert!(!try_acquire(&mut rival, p, "X", "r").await);
    }
    let b = board(&url).await;
    let several = b.alerts.iter().find_map(|a| match a {
        Alert::SeveralContended { profiles, message } => Some((profiles, message)),
        _ => None,
    });
    let (profiles, message) = several.expect("several-contended alert");
    assert_eq!(profiles.len(), 2);
    assert!(
        message.contains("2 profiles contended at once"),
        "{message}"
    );
    assert_eq!(run_snapshot(&url).0, 2);
}

#[tokio::test]
async fn row_lock_waiters_in_a_queue_name_their_blockers_the_lease_table_and_the_row() {
    let url = database("rowwait").await;
    let mut setup = connect(&url).await;
    exec(
        &mut setup,
        "INSERT INTO entry_locks (profile_id, symbol, owner_token, expires_at) VALUES \
           ('P1', 'AAPL', 'w1', now() + interval '30 s'), ('P2', 'MSFT', 'w2', now() + interval '30 s')",
    )
    .await;
    let mut holder = connect_as(&url, "holder").await;
    let holder_pid = pid(&mut holder).await;
    exec(
        &mut holder,
        "BEGIN; SELECT * FROM entry_locks WHERE profile_id = 'P1' FOR UPDATE",
    )
    .await;
    let mut first = connect_as(&url, "first").await;
    let first_pid = pid(&mut first).await;
    let mut second = connect_as(&url, "second").await;
    let second_pid = pid(&mut second).await;
    let w1 = tokio::spawn(async move {
        exec(
            &mut first,
            "UPDATE entry_locks SET expires_at = now() WHERE profile_id = 'P1'",
        )
        .await;
    });
    wait_for_lock_waiters(&url, 1).await;
    let w2 = tokio::spawn(async move {
        exec(
            &mut second,
            "UPDATE entry_locks SET expires_at = now() WHERE profile_id = 'P1'",
        )
        .await;
    });
    wait_for_lock_waiters(&url, 2).await;

    let b = board(&url).await;
    assert_eq!(b.waits.len(), 2, "{:#?}", b.waits);
    let first_wait = b
        .waits
        .iter()
        .find(|w| w.wait.pid == first_pid)
        .expect("first waiter");
    assert_eq!(first_wait.wait.locktype, "transactionid");
    assert_eq!(first_wait.wait.mode, "ShareLock");
    assert_eq!(first_wait.wait.blocked_by, vec![holder_pid]);
    let second_wait = b
        .waits
        .iter()
        .find(|w| w.wait.pid == second_pid)
        .expect("second waiter");
    assert_eq!(second_wait.wait.locktype, "tuple");
    assert_eq!(second_wait.wait.mode, "ExclusiveLock");
    assert_eq!(second_wait.wait.blocked_by, vec![first_pid]);
    for w in [first_wait, second_wait] {
        assert_eq!(w.wait.relation.as_deref(), Some("entry_locks"));
        assert_eq!(w.profile.as_deref(), Some("P1"));
        assert_eq!(w.key.as_deref(), Some("AAPL"));
        assert!(w.wait.waitstart.is_some());
    }
    let p1 = profile(&b, "P1");
    assert_eq!(
        p1.status,
        Status::Contended,
        "waiters on its row contend the profile"
    );
    assert_eq!(p1.waiters, 2);
    assert_eq!(profile(&b, "P2").status, Status::Ok);

    exec(&mut holder, "COMMIT").await;
    w1.await.expect("first finishes");
    w2.await.expect("second finishes");
}

#[tokio::test]
async fn advisory_lock_waits_decode_both_key_forms_and_name_the_holder() {
    let url = database("advisory").await;
    let mut holder = connect_as(&url, "scheduler-a").await;
    let holder_pid = pid(&mut holder).await;
    exec(
        &mut holder,
        "SELECT pg_advisory_lock(123456789012); SELECT pg_advisory_lock(7, -3)",
    )
    .await;
    let mut big = connect_as(&url, "scheduler-b").await;
    let mut pair = connect_as(&url, "scheduler-c").await;
    let big_pid = pid(&mut big).await;
    let pair_pid = pid(&mut pair).await;
    let t1 =
        tokio::spawn(async move { exec(&mut big, "SELECT pg_advisory_lock(123456789012)").await });
    let t2 = tokio::spawn(async move { exec(&mut pair, "SELECT pg_advisory_lock(7, -3)").await });
    wait_for_lock_waiters(&url, 2).await;

    let b = board(&url).await;
    let big_wait = b
        .waits
        .iter()
        .find(|w| w.wait.pid == big_pid)
        .expect("bigint waiter");
    assert_eq!(
        big_wait.wait.advisory_key,
        Some(AdvisoryKey::Bigint(123_456_789_012))
    );
    assert_eq!(big_wait.wait.blocked_by, vec![holder_pid]);
    assert_eq!(big_wait.wait.mode, "ExclusiveLock");
    assert_eq!(big_wait.application.as_deref(), Some("scheduler-b"));
    let pair_wait = b
        .waits
        .iter()
        .find(|w| w.wait.pid == pair_pid)
        .expect("pair waiter");
    assert_eq!(pair_wait.wait.advisory_key, Some(AdvisoryKey::Pair(7, -3)));
    assert_eq!(pair_wait.wait.locktype, "advisory");
    let (_, json) = run_snapshot(&url);
    let doc: serde_json::Value = serde_json::from_str(&json).expect("json");
    let keys: Vec<&serde_json::Value> = doc["waits"]
        .as_array()
        .expect("waits")
        .iter()
        .map(|w| &w["advisory_key"])
        .collect();
    assert!(
        keys.contains(&&serde_json::json!(123_456_789_012_i64)),
        "{keys:?}"
    );
    assert!(keys.contains(&&serde_json::json!([7, -3])), "{keys:?}");

    exec(&mut holder, "SELECT pg_advisory_unlock_all()").await;
    t1.await.expect("big gets it");
    t2.await.expect("pair gets it");
}

#[tokio::test]
async fn a_differently_named_lease_table_works_through_the_mapping_and_a_missing_column_is_named() {
    let url = database("mapping").await;
    let mut admin = connect(&url).await;
    exec(
        &mut admin,
        "CREATE SCHEMA sched; \
         CREATE TABLE sched.\"Leases\" (tenant uuid, job bigint, holder text, lease_until timestamp, fails int); \
         INSERT INTO sched.\"Leases\" VALUES \
           ('6f1c2b1e-2f6b-4d3e-9a58-1a2b3c4d5e6f', 42, 'node-1', now() + interval '20 s', 0), \
           (NULL, NULL, NULL, NULL, NULL)",
    )
    .await;
    let config = Config::parse(
        "[lease]\ntable = 'sched.\"Leases\"'\ngroup = 'tenant'\nkey = 'job'\nowner = 'holder'\nexpires_at = 'lease_until'\n\
         acquired_at = ''\ncontention_count = 'fails'\ncontended_since = ''\nlast_contended_at = ''\n",
    )
    .expect("config");
    let mut m = monitor(&url, &config.lease)
        .await
        .expect("mapping resolves");
    assert_eq!(m.lease_table().name, "sched.\"Leases\"");
    let snapshot = m.poll().await.expect("poll");
    assert_eq!(snapshot.leases.len(), 2);
    let b = evaluate_once(&snapshot, &Rules::default());
    let tenant = profile(&b, "6f1c2b1e-2f6b-4d3e-9a58-1a2b3c4d5e6f");
    let row = tenant.holders().next().expect("holder");
    assert_eq!(row.key.as_deref(), Some("42"));
    assert_eq!(row.owner.as_deref(), Some("node-1"));
    assert!(row.ttl_remaining(b.now).expect("ttl") > chrono::Duration::seconds(15));
    assert_eq!(
        profile(&b, "NULL").status,
        Status::Ok,
        "a row of NULLs is shown, not a crash"
    );

    let mut wrong = config.lease.clone();
    wrong.owner = "holdr".into();
    let err = monitor(&url, &wrong).await.expect_err("misspelt column");
    assert!(
        matches!(&err, SourceError::ColumnMissing { column, key: "owner", .. } if column == "holdr"),
        "{err}"
    );
    assert!(
        err.to_string().contains("holder"),
        "the message lists the real columns: {err}"
    );

    let mut missing = config.lease.clone();
    missing.table = "sched.leases".into();
    let err = monitor(&url, &missing)
        .await
        .expect_err("unquoted name folds to lower case");
    assert!(matches!(err, SourceError::TableMissing { .. }), "{err}");

    let mut bad_type = config.lease;
    bad_type.expires_at = "holder".into();
    let err = monitor(&url, &bad_type)
        .await
        .expect_err("text is not a time");
    assert!(err.to_string().contains("expected timestamp"), "{err}");
}

#[tokio::test]
async fn the_monitor_hides_its_own_backend_and_its_session_cannot_write() {
    let url = database("safety").await;
    let mut m = monitor(&url, &LeaseMapping::default())
        .await
        .expect("connects");
    let own: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(m.connection())
        .await
        .expect("pid");
    let snapshot = m.poll().await.expect("poll");
    assert!(
        !snapshot.sessions.iter().any(|s| s.pid == own),
        "own backend listed"
    );

    let settings: (String, String, String, String) = sqlx::query_as(
        "SELECT current_setting('default_transaction_read_only'), current_setting('statement_timeout'), \
                current_setting('lock_timeout'), current_setting('application_name')",
    )
    .fetch_one(m.connection())
    .await
    .expect("settings");
    assert_eq!(settings.0, "on");
    assert_eq!(settings.1, "800ms");
    assert_eq!(settings.2, "200ms");
    assert_eq!(settings.3, "locktop");

    let write = sqlx::raw_sql(
        "INSERT INTO entry_locks (profile_id, symbol, expires_at) VALUES ('x', 'y', now())",
    )
    .execute(m.connection())
    .await
    .expect_err("a read-only session refuses writes");
    let code = write
        .as_database_error()
        .and_then(sqlx::error::DatabaseError::code);
    assert_eq!(code.as_deref(), Some("25006"), "{write}");
}

/// A session named "holder" that holds the advisory locks on `keys`, and its pid.
async fn holder_of_keys(url: &str, keys: &[i64]) -> (PgConnection, i32) {
    let mut holder = connect_as(url, "holder").await;
    let holder_pid = pid(&mut holder).await;
    for key in keys {
        exec(&mut holder, &format!("SELECT pg_advisory_lock({key})")).await;
    }
    (holder, holder_pid)
}

#[tokio::test]
async fn pg_locks_is_read_only_when_a_new_wait_appears() {
    let url = database("gate").await;
    let mut m = monitor(&url, &LeaseMapping::default())
        .await
        .expect("connects");
    for _ in 0..3 {
        assert!(m.poll().await.expect("poll").waits.is_empty());
    }
    assert_eq!(
        m.pg_locks_reads(),
        0,
        "nobody waits: pg_locks is never read"
    );

    let (mut holder, holder_pid) = holder_of_keys(&url, &[1, 2]).await;
    let mut waiter = connect_as(&url, "waiter").await;
    let first = tokio::spawn(async move {
        exec(&mut waiter, "SELECT pg_advisory_lock(1)").await;
        waiter
    });
    wait_for_lock_waiters(&url, 1).await;
    for _ in 0..8 {
        let s = m.poll().await.expect("poll");
        assert_eq!(s.waits.len(), 1);
        assert_eq!(s.waits[0].advisory_key, Some(AdvisoryKey::Bigint(1)));
        assert_eq!(
            s.waits[0].blocked_by,
            vec![holder_pid],
            "blockers are fresh every poll"
        );
    }
    // Once when the wait appears (twice if a race between the two reads hides it the first time), not per poll.
    let reads = m.pg_locks_reads();
    assert!(
        (1..=2).contains(&reads),
        "a wait that goes on is not read again: {reads} reads in 8 polls"
    );

    // The same backend, now waiting on another lock in a new statement: its details are read anew.
    exec(&mut holder, "SELECT pg_advisory_unlock(1)").await;
    let mut waiter = first.await.expect("first wait ends");
    let second = tokio::spawn(async move { exec(&mut waiter, "SELECT pg_advisory_lock(2)").await });
    // The first wait has ended (its task returned), so the one waiter now waits on key 2.
    wait_for_lock_waiters(&url, 1).await;
    let s = m.poll().await.expect("poll");
    assert_eq!(s.waits.len(), 1);
    assert_eq!(s.waits[0].advisory_key, Some(AdvisoryKey::Bigint(2)));
    assert!(m.pg_locks_reads() > reads, "a new wait is read anew");
    exec(&mut holder, "SELECT pg_advisory_unlock_all()").await;
    second.await.expect("second wait ends");
}

/// The backstop re-read of a wait that goes on (a statement that moved to another lock: same backend, statement,
/// transaction and blocker) is the dashboard's between polls: a poll reads `pg_locks` only for a new wait, so
/// that the polls that would copy the whole lock table are not among the slowest, and the new lock shows from
/// the next poll.
#[tokio::test]
async fn the_backstop_reread_of_waits_that_go_on_comes_between_polls_not_in_one() {
    let url = database("backstop").await;
    let mut m = monitor(&url, &LeaseMapping::default())
        .await
        .expect("connects");
    m.read_between_polls();
    // Due at every chance, so that only where it is read is tested.
    m.set_detail_refresh(Duration::ZERO);
    let (mut holder, holder_pid) = holder_of_keys(&url, &[1, 2]).await;
    let mut waiter = connect_as(&url, "waiter").await;
    let both = tokio::spawn(async move {
        exec(
            &mut waiter,
            "SELECT pg_advisory_lock(1), pg_advisory_lock(2)",
        )
        .await;
        waiter
    });
    wait_for_lock_waiters(&url, 1).await;
    let key = |s: &locktop::model::Snapshot| {
        assert_eq!(s.waits.len(), 1, "{:?}", s.waits);
        assert_eq!(s.waits[0].blocked_by, vec![holder_pid]);
        s.waits[0].advisory_key
    };
    assert_eq!(
        key(&m.poll().await.expect("poll")),
        Some(AdvisoryKey::Bigint(1))
    );
    let reads = m.pg_locks_reads();
    for _ in 0..3 {
        assert_eq!(
            key(&m.poll().await.expect("poll")),
            Some(AdvisoryKey::Bigint(1))
        );
    }
    assert_eq!(
        m.pg_locks_reads(),
        reads,
        "a wait that goes on is not read in a poll"
    );

    // The same statement gets key 1 and waits for key 2, blocked by the same holder.
    exec(&mut holder, "SELECT pg_advisory_unlock(1)").await;
    common::wait_until("the waiter waits for key 2", || {
        let url = url.to_string();
        async move {
            let mut probe = connect(&url).await;
            sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT FROM pg_locks WHERE NOT granted AND locktype = 'advisory' AND objid = 2)",
            )
            .fetch_one(&mut probe)
            .await
            .expect("probe")
        }
    })
    .await;
    assert_eq!(
        key(&m.poll().await.expect("poll")),
        Some(AdvisoryKey::Bigint(1)),
        "nothing a poll reads tells the wait moved"
    );
    assert_eq!(m.pg_locks_reads(), reads);
    m.between_polls().await.expect("between polls");
    assert_eq!(
        m.pg_locks_reads(),
        reads + 1,
        "the backstop reads pg_locks between polls"
    );
    assert_eq!(
        key(&m.poll().await.expect("poll")),
        Some(AdvisoryKey::Bigint(2))
    );
    assert_eq!(m.pg_locks_reads(), reads + 1);
    exec(&mut holder, "SELECT pg_advisory_unlock_all()").await;
    both.await.expect("the wait ends");
}

#[tokio::test]
async fn a_role_without_pg_monitor_is_told_what_it_cannot_see_and_still_finds_waits() {
    let url = database("limited").await;
    let limited_url = common::reader_role(&url, "limited_mon").await;
    let mut holder = connect_as(&url, "holder").await;
    let holder_pid = pid(&mut holder).await;
    exec(&mut holder, "SELECT pg_advisory_lock(99)").await;
    let mut waiter = connect_as(&url, "waiter").await;
    let t = tokio::spawn(async move { exec(&mut waiter, "SELECT pg_advisory_lock(99)").await });
    wait_for_lock_waiters(&url, 1).await;

    let mut m = monitor(&limited_url, &LeaseMapping::default())
        .await
        .expect("connects");
    assert_eq!(m.visibility(), Visibility::OwnSessionsOnly);
    assert!(
        Visibility::OwnSessionsOnly
            .note()
            .expect("note")
            .contains("pg_monitor")
    );
    let snapshot = m.poll().await.expect("poll");
    let wait = snapshot
        .waits
        .iter()
        .find(|w| w.advisory_key == Some(AdvisoryKey::Bigint(99)))
        .expect("wait found");
    assert_eq!(wait.blocked_by, vec![holder_pid]);
    assert!(
        snapshot
            .sessions
            .iter()
            .filter(|s| s.pid == holder_pid)
            .all(|s| s.query.is_none())
    );

    exec(&mut holder, "SELECT pg_advisory_unlock_all()").await;
    t.await.expect("waiter done");
}

#[tokio::test]
async fn a_missing_lease_table_and_a_bad_config_exit_1_with_one_line() {
    let url = database("badinput").await;
    let mut admin = connect(&url).await;
    exec(&mut admin, "DROP TABLE entry_locks").await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_locktop"))
        .args(["snapshot", "--dsn", &url])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("lease table public.entry_locks not found"),
        "{err}"
    );

    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[lease]\ntabel = 'x'\n").expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_locktop"))
        .args(["snapshot", "--dsn", &url, "--config"])
        .arg(&config)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("line 2") && err.contains("tabel"), "{err}");
}

fn run_snapshot(url: &str) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_locktop"))
        .args(["snapshot", "--format", "json", "--dsn", url])
        .output()
        .expect("snapshot runs");
    let code = out.status.code().expect("exit code");
    assert!(
        code == 0 || code == 2,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code, String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn summary_mode_fetches_only_rows_that_matter_and_judges_every_profile_as_full_detail_does() {
    let url = database("summary").await;
    let mut admin = connect(&url).await;
    exec(
        &mut admin,
        "INSERT INTO entry_locks \
           SELECT 'calm-' || g, 'S' || s, 'w' || g, now(), now() + interval '25 s', 0, NULL, NULL \
           FROM generate_series(1, 50) g, generate_series(1, 3) s; \
         INSERT INTO entry_locks VALUES \
           ('hot', 'A', 'w-hot', now(), now() + interval '20 s', 7, now() - interval '100 s', now() - interval '1 s'), \
           ('hot', 'B', 'w-hot2', now(), now() + interval '20 s', 0, NULL, NULL), \
           ('dead', 'A', 'w-dead', now() - interval '60 s', now() - interval '10 s', 0, NULL, NULL), \
           ('single', 'A', 'w-single', now(), now() + interval '15 s', 0, NULL, NULL), \
           ('focus', 'A', 'w-f1', now(), now() + interval '15 s', 0, NULL, NULL), \
           ('focus', 'B', 'w-f2', now(), now() + interval '15 s', 0, NULL, NULL)",
    )
    .await;
    let rules = Rules::default();
    let mut m = monitor(&url, &LeaseMapping::default())
        .await
        .expect("connects");
    let full = evaluate_once(&m.poll().await.expect("full poll"), &rules);
    m.set_detail(locktop::source::LeaseDetail::Summary {
        ttl: Duration::from_secs(30),
        focus: vec!["focus".into()],
    });
    let snapshot = m.poll().await.expect("summary poll");
    let mut detailed: Vec<&str> = snapshot
        .leases
        .iter()
        .filter_map(|r| r.group.as_deref())
        .collect();
    detailed.sort_unstable();
    assert_eq!(
        detailed,
        ["dead", "focus", "focus", "hot", "hot"],
        "every row of the profiles that matter"
    );
    assert_eq!(snapshot.summaries.len(), 54);
    let summary = evaluate_once(&snapshot, &rules);

    assert_eq!(full.profiles.len(), summary.profiles.len());
    for p in &full.profiles {
        let s = profile(&summary, &p.profile);
        assert_eq!(
            (s.status, s.contention_count, s.held_count),
            (p.status, p.contention_count, p.held_count),
            "{}",
            p.profile
        );
    }
    assert_eq!(full.alerts, summary.alerts);
    let single = profile(&summary, "single");
    assert!(!single.detailed);
    assert_eq!(
        single.holders().next().and_then(|r| r.owner.as_deref()),
        Some("w-single")
    );
    assert!(profile(&summary, "focus").detailed);
    assert_eq!(profile(&summary, "calm-1").held_count, 3);

    // Within the refresh interval the aggregates are reused, but a profile that becomes contended is read in
    // detail on the very next poll.
    let mut rival = connect_as(&url, "rival").await;
    assert!(
        !try_acquire(&mut rival, "calm-7", "S1", "rival").await,
        "w7 holds it"
    );
    let next = m.poll().await.expect("poll between aggregate refreshes");
    assert!(
        std::sync::Arc::ptr_eq(&next.summaries, &snapshot.summaries),
        "aggregates reused"
    );
    let b = evaluate_once(&next, &rules);
    let calm7 = profile(&b, "calm-7");
    assert!(calm7.detailed);
    assert_eq!(
        (calm7.status, calm7.contention_count),
        (Status::Contended, 1)
    );
    assert_eq!(b.profiles.len(), full.profiles.len());
}

#[tokio::test]
async fn the_poller_publishes_each_interval_and_stops_when_nobody_listens() {
    use locktop::source::{Feed, Link, PollerSettings, run_poller};
    let url = database("poller").await;
    let mut holder = connect_as(&url, "w1").await;
    let mut rival = connect_as(&url, "w2").await;
    assert!(try_acquire(&mut holder, "P", "S", "w1").await);
    assert!(!try_acquire(&mut rival, "P", "S", "w2").await);

    let (tx, mut rx) = tokio::sync::watch::channel(Feed::default());
    let settings = PollerSettings {
        target: Target::new(Some(&url)).expect("url"),
        label: None,
        mapping: LeaseMapping::default(),
        interval: Duration::from_millis(100),
        ttl: Duration::from_secs(30),
    };
    let task = tokio::spawn(run_poller(settings, None, tx, locktop::source::unsteered()));
    let started = std::time::Instant::now();
    let feed = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|f| f.polls >= 5))
        .await
        .expect("five polls within 10 s")
        .expect("poller alive")
        .clone();
    // Five polls at 100 ms take at least 400 ms: the ticker, not a busy loop, paces them.
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(feed.link, Link::Connected);
    let snapshot = feed.snapshot.expect("a snapshot");
    let b = evaluate_once(&snapshot, &Rules::default());
    assert_eq!(profile(&b, "P").status, Status::Contended);
    assert!(
        snapshot.summaries.len() == 1,
        "the dashboard's poller reads in summary mode"
    );

    drop(rx);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the poller ends once its receiver is gone")
        .expect("no panic");
}

#[tokio::test]
async fn waits_in_another_database_are_not_this_monitors_business() {
    let elsewhere = database("elsewhere").await;
    let here = database("here").await;
    let mut holder = connect_as(&elsewhere, "holder").await;
    exec(&mut holder, "SELECT pg_advisory_lock(77)").await;
    let mut waiter = connect_as(&elsewhere, "waiter").await;
    let waiting = tokio::spawn(async move {
        exec(&mut waiter, "SELECT pg_advisory_lock(77)").await;
        waiter
    });
    wait_for_lock_waiters(&elsewhere, 1).await;

    let mut m = monitor(&here, &LeaseMapping::default())
        .await
        .expect("connects");
    let s = m.poll().await.expect("poll");
    assert!(s.waits.is_empty(), "{:?}", s.waits);
    assert!(
        s.sessions
            .iter()
            .all(|x| x.application.as_deref() != Some("waiter")),
        "only this database's sessions"
    );
    assert_eq!(m.pg_locks_reads(), 0);
    exec(&mut holder, "SELECT pg_advisory_unlock_all()").await;
    drop(waiting.await);
}

#[tokio::test]
async fn the_dashboards_focus_reaches_the_poller_and_the_focused_profile_is_read_in_detail() {
    use locktop::source::{Control, Feed};
    let url = database("focus").await;
    let mut admin = connect(&url).await;
    // A calm profile of several rows: in summary mode only its aggregate is read, until it is in focus.
    exec(
        &mut admin,
        "INSERT INTO entry_locks (profile_id, symbol, owner_token, expires_at) \
           SELECT 'multi', s, 'w-' || s, now() + interval '10 min' FROM unnest(ARRAY['A', 'B', 'C']) s",
    )
    .await;
    let (mut rx, control, task) = steered_poller(&url, Duration::from_millis(100));
    let detail_rows = |f: &Feed| {
        f.snapshot.as_ref().map_or(0, |s| {
            s.leases
                .iter()
                .filter(|r| r.group.as_deref() == Some("multi"))
                .count()
        })
    };
    let first = rx.wait_for(|f| f.polls >= 2).await.expect("polls").clone();
    assert_eq!(
        detail_rows(&first),
        0,
        "calm and out of focus: summary only"
    );

    control.send_replace(Control {
        focus: vec!["multi".into()],
        ..Control::default()
    });
    let focused = tokio::time::timeout(
        Duration::from_secs(10),
        rx.wait_for(|f| detail_rows(f) == 3),
    )
    .await
    .expect("the focused profile's rows are read within a few polls")
    .expect("poller alive")
    .clone();
    let b = evaluate_once(
        focused.snapshot.as_ref().expect("snapshot"),
        &Rules::default(),
    );
    assert_eq!(
        profile(&b, "multi").holders().count(),
        3,
        "every holder shown"
    );
    drop(rx);
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
}

#[tokio::test]
async fn the_operator_can_ask_for_a_poll_now_and_a_new_focus_alone_adds_no_poll() {
    let url = database("refresh").await;
    // Long enough that only the first tick falls inside the test.
    let (mut rx, control, task) = steered_poller(&url, Duration::from_mins(5));
    rx.wait_for(|f| f.polls == 1).await.expect("the first poll");
    // A new focus waits for the next scheduled poll (an absence: only waiting can show it).
    control.send_modify(|c| c.focus = vec!["P".into()]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.borrow().polls, 1, "a focus change alone adds no poll");
    control.send_modify(|c| c.refreshes += 1);
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|f| f.polls == 2))
        .await
        .expect("the poll asked for comes at once")
        .expect("poller alive");
    drop(rx);
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
}

/// A dashboard's poller on `url` (summary mode, polling every `interval`): its feed, the command channel that
/// steers it, and its task.
fn steered_poller(
    url: &str,
    interval: Duration,
) -> (
    tokio::sync::watch::Receiver<locktop::source::Feed>,
    tokio::sync::watch::Sender<locktop::source::Control>,
    tokio::task::JoinHandle<()>,
) {
    use locktop::source::{Control, Feed, PollerSettings, run_poller};
    let (tx, rx) = tokio::sync::watch::channel(Feed::default());
    let (control, control_rx) = tokio::sync::watch::channel(Control::default());
    let settings = PollerSettings {
        target: Target::new(Some(url)).expect("url"),
        label: None,
        mapping: LeaseMapping::default(),
        interval,
        ttl: Duration::from_secs(30),
    };
    let task = tokio::spawn(run_poller(settings, None, tx, control_rx));
    (rx, control, task)
}

/// Two sessions that each lock a row the other then wants: one is chosen as the deadlock's victim.
async fn deadlock(url: &str) {
    let mut a = connect(url).await;
    let mut b = connect(url).await;
    for c in [&mut a, &mut b] {
        exec(c, "SET deadlock_timeout = '50ms'").await;
        exec(c, "BEGIN").await;
    }
    exec(&mut a, "UPDATE dl SET v = v + 1 WHERE id = 1").await;
    exec(&mut b, "UPDATE dl SET v = v + 1 WHERE id = 2").await;
    let first = sqlx::raw_sql("UPDATE dl SET v = v + 1 WHERE id = 2").execute(&mut a);
    let second = async {
        // A waits on B's row first; then B asks for A's: a cycle.
        wait_for_lock_waiters(url, 1).await;
        sqlx::raw_sql("UPDATE dl SET v = v + 1 WHERE id = 1")
            .execute(&mut b)
            .await
    };
    let (r1, r2) = tokio::join!(first, second);
    assert!(
        r1.is_err() != r2.is_err(),
        "one of the two is the deadlock's victim: {r1:?} {r2:?}"
    );
    for c in [&mut a, &mut b] {
        exec(c, "ROLLBACK").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlocks_are_counted_in_the_snapshot_and_the_json_and_a_burst_escalates() {
    let url = database("deadlocks").await;
    let mut admin = connect(&url).await;
    exec(
        &mut admin,
        "CREATE TABLE dl (id int PRIMARY KEY, v int); INSERT INTO dl VALUES (1, 0), (2, 0)",
    )
    .await;
    let mut m = monitor(&url, &LeaseMapping::default())
        .await
        .expect("monitor");
    let first = m.poll().await.expect("poll");
    let before = first.deadlocks.expect("counted");
    // The test cluster keeps PostgreSQL's default (log_lock_waits off): said in the notes.
    assert!(
        first
            .notes
            .iter()
            .any(|n| n.contains("log_lock_waits is off") && n.contains("deadlock_timeout = 1s")),
        "{:?}",
        first.notes
    );
    deadlock(&url).await;
    deadlock(&url).await;
    // The statistics reach pg_stat_database when the victims' transactions end.
    common::wait_until("two deadlocks counted", || {
        let url = url.to_string();
        async move {
            let mut m = monitor(&url, &LeaseMapping::default())
                .await
                .expect("monitor");
            m.poll()
                .await
                .ok()
                .and_then(|s| s.deadlocks)
                .is_some_and(|d| d >= before + 2)
        }
    })
    .await;
    // Polls before and after them, in one history: a burst of two, with the limit at two.
    let rules = Rules {
        deadlock_burst: 2,
        ..Rules::default()
    };
    let mut history = locktop::model::History::default();
    let earlier = locktop::model::Snapshot {
        deadlocks: Some(before),
        ..locktop::model::Snapshot::at(chrono::Utc::now())
    };
    locktop::model::rules::record(&mut history, &earlier, &rules);
    let after = m.poll().await.expect("poll");
    locktop::model::rules::record(&mut history, &after, &rules);
    let board = locktop::model::rules::evaluate(&after, &history, &rules, after.server_now);
    assert!(
        board
            .alerts
            .iter()
            .any(|a| matches!(a, Alert::DeadlockBurst { deadlocks, .. } if *deadlocks >= 2)),
        "{:?}",
        board.alerts
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_locktop"))
        .args(["snapshot", "--format", "json", "--dsn", &url])
        .output()
        .expect("snapshot");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        report["database"]["deadlocks"].as_i64() >= Some(2),
        "{}",
        report["database"]
    );
    assert_eq!(
        report["database"]["deadlocks_since_start"].as_i64(),
        Some(0)
    );
}

/// Polls until `check` holds for a snapshot (at most 5 s), and returns it.
async fn poll_until(
    m: &mut Monitor,
    what: &str,
    check: impl Fn(&locktop::model::Snapshot) -> bool,
) -> locktop::model::Snapshot {
    let started = std::time::Instant::now();
    loop {
        let s = m.poll().await.expect("poll");
        if check(&s) {
            return s;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{what}");
    }
}

/// `server_version_num`: what differs by major version is tested on each.
async fn server_version(conn: &mut PgConnection) -> i32 {
    sqlx::query_scalar("SELECT current_setting('server_version_num')::int4")
        .fetch_one(conn)
        .await
        .expect("version")
}

/// Runs `before` (SQL), adds `n` lease rows (`q1`, `q2`, … held for an hour) and connects a monitor.
async fn with_rows(admin: &mut PgConnection, url: &str, before: &str, n: u32) -> Monitor {
    exec(
        admin,
        &format!(
            "{before} INSERT INTO entry_locks (profile_id, symbol, owner_token, expires_at) \
             SELECT 'q' || g, 'S', 'w' || g, now() + interval '1 hour' FROM generate_series(1, {n}) g"
        ),
    )
    .await;
    monitor(url, &LeaseMapping::default())
        .await
        .expect("monitor")
}

fn owner_of(s: &locktop::model::Snapshot, group: &str) -> Option<String> {
    s.leases
        .iter()
        .find(|r| r.group.as_deref() == Some(group))
        .and_then(|r| r.owner.as_deref().map(str::to_owned))
}

#[tokio::test]
async fn incremental_polls_read_only_what_changed_and_stay_in_step_with_every_kind_of_write() {
    let url = database("incremental").await;
    let mut admin = connect(&url).await;
    let mut m = with_rows(&mut admin, &url, "", 2_000).await;
    assert!(m.incremental(), "a table is mirrored");
    // A tiny TTL refreshes the summaries at every poll (a third of it), so each poll can be checked whole.
    m.set_detail(locktop::source::LeaseDetail::Summary {
        ttl: Duration::from_millis(3),
        focus: vec!["q1".into(), "q2".into(), "q3".into()],
    });
    let first = m.poll().await.expect("first poll");
    assert_eq!(first.summaries.len(), 2000);
    assert_eq!(m.lease_rows_read(), 2000, "the first poll reads every row");

    // A transaction that stays open across polls (its xid pins the server's xmin horizon) must not make
    // every later poll read everything written since it began.
    let mut long = connect(&url).await;
    exec(
        &mut long,
        "BEGIN; UPDATE entry_locks SET owner_token = 'late' WHERE profile_id = 'q1'",
    )
    .await;
    m.poll().await.expect("poll");
    exec(
        &mut admin,
        "UPDATE entry_locks SET owner_token = 'renewed' WHERE profile_id IN ('q2', 'q10', 'q11')",
    )
    .await;
    let before = m.lease_rows_read();
    let s = m.poll().await.expect("poll");
    assert_eq!(
        owner_of(&s, "q2").as_deref(),
        Some("renewed"),
        "{:?}",
        s.lease_error
    );
    let read = m.lease_rows_read() - before;
    assert!(
        (3..500).contains(&read),
        "a poll reads the changed rows and a slice of the sweep, not the table: {read} rows"
    );
    assert_eq!(owner_of(&s, "q1").as_deref(), Some("w1"), "uncommitted");
    // It commits after the poll that saw it running: the next poll reads its row.
    exec(&mut long, "COMMIT").await;
    let s = m.poll().await.expect("poll");
    assert_eq!(owner_of(&s, "q1").as_deref(), Some("late"));

    // Deleted rows, and a key changed by an update, leave the mirror; inserted ones join it.
    exec(
        &mut admin,
        "DELETE FROM entry_locks WHERE profile_id IN ('q20', 'q21'); \
         UPDATE entry_locks SET profile_id = 'moved' WHERE profile_id = 'q22'; \
         INSERT INTO entry_locks (profile_id, symbol, owner_token, expires_at) \
         VALUES ('new', 'S', 'w', now() + interval '1 hour')",
    )
    .await;
    let s = poll_until(&mut m, "the deleted rows leave the summaries", |s| {
        let names: Vec<&str> = s
            .summaries
            .iter()
            .filter_map(|p| p.group.as_deref())
            .collect();
        names.len() == 1999
            && names.contains(&"new")
            && names.contains(&"moved")
            && !names.contains(&"q20")
            && !names.contains(&"q22")
    })
    .await;
    assert_eq!(s.lease_error, None);

    // A write in a subtransaction that began before a poll and committed after it, when a later transaction
    // completed before that poll, has an xid below the snapshot's xmax that it does not list as running (it
    // lists top-level transactions only): the sweep of the table's pages reads it again within a round.
    let mut sub = connect(&url).await;
    exec(
        &mut sub,
        "BEGIN; UPDATE entry_locks SET acquired_at = now() WHERE profile_id = 'q1999'; \
         SAVEPOINT s; UPDATE entry_locks SET owner_token = 'from-a-savepoint' WHERE profile_id = 'q3'",
    )
    .await;
    exec(
        &mut admin,
        "UPDATE entry_locks SET owner_token = 'later' WHERE profile_id = 'q4'",
    )
    .await;
    m.poll().await.expect("poll");
    exec(&mut sub, "RELEASE SAVEPOINT s; COMMIT").await;
    poll_until(&mut m, "the sweep reads the subtransaction's row", |s| {
        owner_of(s, "q3").as_deref() == Some("from-a-savepoint")
    })
    .await;
    m.close().await;
}

#[tokio::test]
async fn the_mirrors_summaries_wait_one_poll_when_that_poll_reads_pg_locks() {
    let url = database("apart").await;
    let mut admin = connect(&url).await;
    let mut m = with_rows(&mut admin, &url, "", 200).await;
    let first = summaries_every_second(&mut m).await;

    // A new wait (pg_locks is read for it) in the poll where the summaries fall due.
    let mut holder = connect_as(&url, "holder").await;
    exec(&mut holder, "SELECT pg_advisory_lock(7)").await;
    let mut waiter = connect_as(&url, "waiter").await;
    let waits = tokio::spawn(async move { exec(&mut waiter, "SELECT pg_advisory_lock(7)").await });
    wait_for_lock_waiters(&url, 1).await;
    exec(
        &mut admin,
        "UPDATE entry_locks SET owner_token = 'renewed' WHERE profile_id = 'q7'",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let reads = m.pg_locks_reads();
    let s = m.poll().await.expect("poll");
    assert_eq!(m.pg_locks_reads(), reads + 1, "this poll reads pg_locks");
    assert!(
        std::sync::Arc::ptr_eq(&s.summaries, &first.summaries),
        "the summaries wait for the next poll"
    );
    let s = m.poll().await.expect("poll");
    assert_eq!(
        m.pg_locks_reads(),
        reads + 1,
        "the wait goes on: not read again"
    );
    assert_eq!(summary_owner(&s, "q7").as_deref(), Some("renewed"));
    exec(&mut holder, "SELECT pg_advisory_unlock_all()").await;
    waits.await.expect("the wait ends");
    m.close().await;
}

/// On the dashboard the mirror's summaries (a walk over every profile) are taken between polls, once a poll is
/// on screen, and show from the next poll: a poll never waits for them, but the first one, which has none yet.
#[tokio::test]
async fn the_dashboards_summaries_are_taken_between_polls_and_show_from_the_next() {
    let url = database("summaries_apart").await;
    let mut admin = connect(&url).await;
    let mut m = with_rows(&mut admin, &url, "", 200).await;
    m.read_between_polls();
    // The first poll takes them itself.
    let first = summaries_every_second(&mut m).await;
    exec(
        &mut admin,
        "UPDATE entry_locks SET owner_token = 'renewed' WHERE profile_id = 'q7'",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let due = m.poll().await.expect("poll");
    assert!(
        std::sync::Arc::ptr_eq(&due.summaries, &first.summaries),
        "the poll they fall due in does not take them"
    );
    m.between_polls().await.expect("between polls");
    let next = m.poll().await.expect("poll");
    assert_eq!(summary_owner(&next, "q7").as_deref(), Some("renewed"));
    assert_eq!(next.summaries.len(), 200);
    m.close().await;
}

/// The mirror of [`with_rows`]'s 200 profiles, its summaries due every second (a third of the TTL): the
/// first poll, which took them.
async fn summaries_every_second(m: &mut Monitor) -> locktop::model::Snapshot {
    assert!(m.incremental(), "a table is mirrored");
    m.set_detail(locktop::source::LeaseDetail::Summary {
        ttl: Duration::from_secs(3),
        focus: vec![],
    });
    let first = m.poll().await.expect("first poll");
    assert_eq!(first.summaries.len(), 200);
    first
}

/// The owner a profile's summary shows (the TTL of these tests is too short for a row to stay in detail).
fn summary_owner(s: &locktop::model::Snapshot, group: &str) -> Option<String> {
    s.summaries
        .iter()
        .find(|p| p.group.as_deref() == Some(group))
        .and_then(|p| p.sample_owner.as_deref().map(str::to_owned))
}

#[tokio::test]
async fn a_table_too_slow_to_scan_each_poll_is_read_by_windows_and_stays_in_step() {
    let url = database("windows").await;
    let mut admin = connect(&url).await;
    let version = server_version(&mut admin).await;
    let mut m = with_rows(
        &mut admin,
        &url,
        "INSERT INTO entry_locks (profile_id, symbol, owner_token, expires_at) \
         VALUES ('dead', 'S', 'gone', now() - interval '1 minute');",
        20_000,
    )
    .await;
    // No scan fits a budget of nothing: after the first read of every row, the next one (of the changes,
    // over the whole table) is too slow, and the table is read by windows of the fewest pages.
    m.set_scan_budget(Duration::ZERO);
    m.set_detail(locktop::source::LeaseDetail::Summary {
        ttl: Duration::from_millis(3),
        focus: vec![],
    });
    m.poll().await.expect("first poll");
    m.poll().await.expect("poll");
    if version < 140_000 {
        // Without TID range scans a window would scan the whole table: every poll reads the changes.
        assert!(!m.windowed());
        m.close().await;
        return;
    }
    assert!(m.windowed(), "read by windows");
    // A cycle outlasts the 3 ms TTL: how late a change can show is a reason not to vouch for calm.
    let s = poll_until(
        &mut m,
        "the snapshot says how late a change can show",
        |s| {
            s.lag
                .as_deref()
                .is_some_and(|n| n.contains("read by windows"))
        },
    )
    .await;
    assert!(owner_of(&s, "dead").is_some(), "a dead owner is shown");

    // A change on a page the sweep has passed (an update that stays on its page), and an insert: each
    // shows within a cycle, and a poll reads little more than what changed, not the table.
    exec(
        &mut admin,
        "UPDATE entry_locks SET owner_token = 'renewed', contention_count = 3, \
                last_contended_at = now() WHERE profile_id = 'q2'; \
         INSERT INTO entry_locks (profile_id, symbol, owner_token, expires_at, contention_count, \
                last_contended_at) VALUES ('new', 'S', 'w', now() + interval '1 hour', 1, now())",
    )
    .await;
    let mut most = 0;
    let started = std::time::Instant::now();
    loop {
        let before = m.lease_rows_read();
        let s = m.poll().await.expect("poll");
        most = most.max(m.lease_rows_read() - before);
        if summary_owner(&s, "q2").as_deref() == Some("renewed")
            && summary_owner(&s, "new").is_some()
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the sweep reads the changed row"
        );
    }
    assert!(
        most < 2_000,
        "a windowed poll reads its window's changes, not the table: {most} rows"
    );

    // A dead owner's row deleted: a page cannot show a deletion, so a held row past its expiry is looked
    // up (when it first looks expired, and once each cycle of the sweep after), and goes at the poll after:
    // within a cycle, not at the read of every name every ten cycles.
    exec(
        &mut admin,
        "DELETE FROM entry_locks WHERE profile_id = 'dead'",
    )
    .await;
    let pages: i64 = sqlx::query_scalar(
        "SELECT pg_relation_size('entry_locks') / current_setting('block_size')::int8",
    )
    .fetch_one(&mut admin)
    .await
    .expect("pages");
    // Windows of the fewest pages (nothing fits a budget of nothing).
    let cycle = pages
        .cast_unsigned()
        .div_ceil(locktop::source::mirror::MIN_WINDOW);
    let mut polls = 0;
    loop {
        let s = m.poll().await.expect("poll");
        polls += 1;
        if owner_of(&s, "dead").is_none() {
            break;
        }
        assert!(
            polls <= cycle + 2,
            "the deleted dead owner goes within a cycle of {cycle} polls"
        );
    }
    assert!(m.windowed());

    // A budget the whole table fits again: back to scanning it whole.
    m.set_scan_budget(Duration::from_hours(1));
    poll_until(&mut m, "the table is scanned whole again", |_| true).await;
    let s = poll_until(&mut m, "the table is scanned whole again", |s| {
        !s.notes.iter().any(|n| n.contains("read by windows"))
    })
    .await;
    assert!(!m.windowed());
    assert_eq!(summary_owner(&s, "q2").as_deref(), Some("renewed"));
    m.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_of_every_row_comes_a_chunk_a_message_and_an_empty_table_is_one_row() {
    use locktop::source::lease::ChangesRead;
    use locktop::source::read::Read as _;
    let url = database("chunks").await;
    let mut admin = connect(&url).await;
    let mut m = with_rows(&mut admin, &url, "", 25_000).await;
    let table = m.lease_table().clone();
    let read = ChangesRead {
        table: &table,
        since: None,
        sweep: (0, 0),
    };
    let statement = read.statement();
    // 25,000 rows in messages of 10,000: no message (nor the connection's buffer) holds the whole table.
    let rows =
        locktop::source::simple::fetch(m.connection(), None, &statement.sql, &statement.params)
            .await
            .expect("read");
    assert_eq!(rows.len(), 3);
    let read_back = read.decode(&rows).expect("decodes");
    assert_eq!(read_back.packed.len(), 25_000);
    assert_eq!(read_back.delta.as_ref().map(|d| d.total), Some(25_000));
    let mut names: Vec<&str> = read_back.packed.iter().filter_map(|r| r.group).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 25_000, "every row once");
    // An empty table: one row, with the clock and the mark, and no rows.
    exec(&mut admin, "TRUNCATE entry_locks").await;
    let rows =
        locktop::source::simple::fetch(m.connection(), None, &statement.sql, &statement.params)
            .await
            .expect("read");
    assert_eq!(rows.len(), 1);
    let read_back = read.decode(&rows).expect("decodes");
    assert!(read_back.packed.is_empty());
    assert_eq!(read_back.delta.as_ref().map(|d| d.total), Some(0));
    m.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_sweep_read_between_polls_a_poll_reads_the_new_pages_and_the_sweep_finds_the_rest()
{
    let url = database("sweep_apart").await;
    let mut admin = connect(&url).await;
    let version = server_version(&mut admin).await;
    // Half-full pages: an update stays on its page (a page the tail does not read), where only the sweep
    // finds it.
    let mut m = with_rows(
        &mut admin,
        &url,
        "ALTER TABLE entry_locks SET (fillfactor = 50);",
        20_000,
    )
    .await;
    m.set_scan_budget(Duration::ZERO);
    m.read_between_polls();
    m.set_detail(locktop::source::LeaseDetail::Summary {
        ttl: Duration::from_millis(3),
        focus: vec![],
    });
    m.poll().await.expect("first poll");
    m.poll().await.expect("poll");
    if version < 140_000 {
        assert!(!m.windowed(), "no windows without TID range scans");
        m.between_polls().await.expect("no sweep to read");
        m.close().await;
        return;
    }
    assert!(m.windowed(), "read by windows");
    exec(
        &mut admin,
        "UPDATE entry_locks SET owner_token = 'moved' \
          WHERE profile_id IN (SELECT 'q' || g FROM generate_series(1, 300) g)",
    )
    .await;
    let (mut most_in_a_poll, mut swept) = (0, 0);
    let started = std::time::Instant::now();
    loop {
        let before = m.lease_rows_read();
        let s = m.poll().await.expect("poll");
        most_in_a_poll = most_in_a_poll.max(m.lease_rows_read() - before);
        if ["q1", "q150", "q300"]
            .iter()
            .all(|p| summary_owner(&s, p).as_deref() == Some("moved"))
        {
            break;
        }
        let before = m.lease_rows_read();
        m.between_polls().await.expect("between polls");
        swept += m.lease_rows_read() - before;
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the sweep finds the rows updated on their pages"
        );
    }
    // (An update that found no room on its page went to a new one, which the poll reads.)
    assert!(
        most_in_a_poll < 30,
        "a poll reads the new pages and the lookups, not the sweep: {most_in_a_poll} rows"
    );
    assert!(swept >= 270, "the sweep read the updated rows: {swept}");
    // A cycle of the sweep takes longer than the (3 ms) TTL: a change can show late, which the snapshot says,
    // so that calm is not vouched for.
    let s = m.poll().await.expect("poll");
    let lag = s.lag.as_deref().expect("the lag said");
    assert!(
        lag.contains("read by windows") && lag.contains("s to show, over the 1s TTL"),
        "{lag}"
    );
    // One line of the header's notes at 180 columns, the line's leading space included.
    assert!(lag.chars().count() < 180, "{} characters: {lag}", lag.len());
    assert!(s.incomplete().iter().any(|n| n == lag));
    m.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_added_since_a_poll_are_read_before_the_next_which_reads_only_what_came_after() {
    let url = database("new_pages").await;
    let mut admin = connect(&url).await;
    let version = server_version(&mut admin).await;
    let mut m = polled_by_windows(&mut admin, &url, &["q1", "q5", "q2000"]).await;
    if version < 140_000 {
        // No windows without TID range scans: every poll reads the changes, and there is nothing to read
        // before it.
        assert!(!m.windowed(), "no windows without TID range scans");
        let before = m.lease_rows_read();
        m.read_new_pages().await.expect("nothing to read");
        assert_eq!(m.lease_rows_read(), before);
        m.close().await;
        return;
    }
    assert!(m.windowed(), "read by windows");
    // Renewals of full pages: the new versions go to pages added at the end.
    exec(
        &mut admin,
        "UPDATE entry_locks SET owner_token = 'renewed', expires_at = now() + interval '2 hours' \
          WHERE profile_id IN (SELECT 'q' || g FROM generate_series(1, 2000) g)",
    )
    .await;
    let before = m.lease_rows_read();
    m.read_new_pages().await.expect("new pages");
    let between = m.lease_rows_read() - before;
    assert!(
        between >= 2_000,
        "the renewed rows are read between polls: {between} rows"
    );
    exec(
        &mut admin,
        "UPDATE entry_locks SET owner_token = 'later' WHERE profile_id = 'q5'",
    )
    .await;
    let before = m.lease_rows_read();
    let s = m.poll().await.expect("poll");
    let in_poll = m.lease_rows_read() - before;
    assert!(
        in_poll < 500,
        "the poll reads what came after, not the rows read before it: {in_poll} rows"
    );
    assert_eq!(owner_of(&s, "q1").as_deref(), Some("renewed"));
    assert_eq!(owner_of(&s, "q2000").as_deref(), Some("renewed"));
    assert_eq!(owner_of(&s, "q5").as_deref(), Some("later"));
    // Nothing written since the poll: a read between polls finds nothing new.
    let before = m.lease_rows_read();
    m.read_new_pages().await.expect("new pages");
    assert!(m.lease_rows_read() - before < 100);
    m.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_written_on_a_page_after_a_windowed_poll_read_it_shows_at_the_next_poll() {
    let url = database("last_page").await;
    let mut admin = connect(&url).await;
    let version = server_version(&mut admin).await;
    let mut m = polled_by_windows(&mut admin, &url, &["early", "late"]).await;
    if version < 140_000 {
        assert!(!m.windowed(), "no windows without TID range scans");
        m.close().await;
        return;
    }
    assert!(m.windowed(), "read by windows");
    // Two rows, a poll apart, on the table's last page, which has room for both: each is written on a page
    // the poll before read.
    let first = insert_on_page(&mut admin, "early").await;
    let s = m.poll().await.expect("poll");
    assert!(
        owner_of(&s, "early").is_some(),
        "a row written on the table's last page, which the poll before read, shows at the next poll"
    );
    let second = insert_on_page(&mut admin, "late").await;
    assert_eq!(first, second, "both rows on one page");
    let s = m.poll().await.expect("poll");
    assert!(
        owner_of(&s, "late").is_some(),
        "so is a row written on that page after it was read twice, not a sweep cycle later"
    );
    m.close().await;
}

/// A dashboard's monitor of a table of 20,000 rows, polled twice with a scan budget of nothing (so read by
/// windows from PostgreSQL 14 on, the sweep between polls), the profiles `focus` read in detail.
async fn polled_by_windows(admin: &mut PgConnection, url: &str, focus: &[&str]) -> Monitor {
    let mut m = with_rows(admin, url, "", 20_000).await;
    m.set_scan_budget(Duration::ZERO);
    m.read_between_polls();
    m.set_detail(locktop::source::LeaseDetail::Summary {
        ttl: Duration::from_secs(30),
        focus: focus.iter().map(|p| (*p).to_owned()).collect(),
    });
    m.poll().await.expect("first poll");
    m.poll().await.expect("poll");
    m
}

/// Inserts a held row for `profile`, and says on which page it went.
async fn insert_on_page(admin: &mut PgConnection, profile: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO entry_locks (profile_id, symbol, owner_token, expires_at) \
         VALUES ($1, 'S', 'w', now() + interval '1 hour') RETURNING (ctid::text::point)[0]::int8",
    )
    .bind(profile)
    .fetch_one(admin)
    .await
    .expect("insert")
}
