//! A hot standby made with `pg_basebackup -R` from a primary of its own: locktop says STANDBY with the
//! replay lag, notes that its lock waits are the replica's own and its rows lag, and `snapshot` cannot vouch
//! for calm (exit 3). Needs `pg_basebackup` (Debian's server package has it; npm's server builds do not).

mod common;

use std::time::Duration;

use common::{REFERENCE_SCHEMA, connect, exec, wait_until};
use locktop::config::LeaseMapping;
use locktop::rig::cluster::{Cluster, ClusterOptions};
use locktop::source::{Monitor, SessionLimits, Target};

#[tokio::test]
async fn a_standby_is_said_to_be_one_with_its_lag_and_snapshot_exits_3() {
    let primary = Cluster::start(&ClusterOptions::default()).expect("primary");
    let primary_url = primary.url("postgres");
    let mut admin = connect(&primary_url).await;
    exec(&mut admin, REFERENCE_SCHEMA).await;
    exec(
        &mut admin,
        "SELECT fn_try_acquire_entry_lock_row('P', 'BTC', 'w', interval '10 min')",
    )
    .await;
    let standby = Cluster::standby_of(&primary).expect("standby");
    let url = standby.url("postgres");
    // A commit replayed after the standby started gives it a replay time (and so a lag).
    exec(
        &mut admin,
        "SELECT fn_try_acquire_entry_lock_row('Q', 'BTC', 'w', interval '10 min')",
    )
    .await;
    wait_until("the rows reach the standby", || {
        let url = url.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM entry_locks")
                .fetch_one(&mut connect(&url).await)
                .await
                .is_ok_and(|n| n == 2)
        }
    })
    .await;

    let target = Target::new(Some(&url)).expect("url");
    let limits = SessionLimits::for_interval(Duration::from_secs(1));
    let mut m = Monitor::connect(&target, &LeaseMapping::default(), limits)
        .await
        .expect("the monitor connects to a standby");
    let snapshot = m.poll().await.expect("poll");
    let recovery = snapshot.recovery.expect("in recovery");
    assert!(recovery.replay_lag_s.is_some(), "{recovery:?}");
    assert_eq!(
        snapshot.leases.len(),
        2,
        "the replica's rows are still shown"
    );
    assert!(snapshot.incomplete().iter().any(|n| n.contains("STANDBY")));

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_locktop"))
        .args(["snapshot", "--format", "json", "--dsn", &url])
        .output()
        .expect("snapshot runs");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(out.status.code(), Some(3), "{doc:#}");
    let notes = doc["notes"].to_string();
    assert!(
        notes.contains("STANDBY") && notes.contains("replica's own") && notes.contains("lag"),
        "{notes}"
    );

    // The primary itself is not in recovery: complete and calm.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_locktop"))
        .args(["snapshot", "--format", "json", "--dsn", &primary_url])
        .output()
        .expect("snapshot runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Both servers in one DSN, the standby first: target_session_attrs picks the primary (libpq's multi-host
    // failover), and `standby` the standby.
    let both = |attrs: &str| {
        format!(
            "host={},{} port={},{} user=postgres dbname=postgres target_session_attrs={attrs}",
            standby.root().display(),
            primary.root().display(),
            standby.port(),
            primary.port()
        )
    };
    let run = |dsn: String| {
        std::process::Command::new(env!("CARGO_BIN_EXE_locktop"))
            .args(["snapshot", "--format", "json", "--dsn", &dsn])
            .output()
            .expect("snapshot runs")
    };
    for attrs in ["read-write", "primary"] {
        let out = run(both(attrs));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{attrs}: the primary, not in recovery: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for attrs in ["any", "standby", "prefer-standby"] {
        assert_eq!(
            run(both(attrs)).status.code(),
            Some(3),
            "{attrs}: the standby first"
        );
    }
}
