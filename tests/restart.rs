//! The server restarts while locktop watches: it says so, keeps the last data marked stale, keeps answering
//! keys, and shows fresh data again once the server is back. A binary of its own, with a cluster of its own,
//! since stopping the server would disturb every other test sharing one.

mod common;

use std::time::{Duration, Instant};

use common::pty::Tui;
use locktop::rig::cluster::{Cluster, ClusterOptions};

async fn sql(url: &str, statement: &str) {
    let mut conn = common::connect(url).await;
    common::exec(&mut conn, statement).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_shows_reconnecting_keeps_data_and_keys_and_comes_back() {
    let cluster = tokio::task::spawn_blocking(|| Cluster::start(&ClusterOptions::default()))
        .await
        .expect("thread")
        .expect("cluster");
    let url = cluster.url("postgres");
    sql(&url, common::REFERENCE_SCHEMA).await;
    sql(
        &url,
        "SELECT fn_try_acquire_entry_lock_row('BEFORE', 'BTC', 'w1', interval '1 hour')",
    )
    .await;

    let db = url.clone();
    let mut tui = tokio::task::spawn_blocking(move || {
        let tui = Tui::start(&["--dsn", &db, "--interval", "500ms"]);
        tui.wait_for("BEFORE");
        tui
    })
    .await
    .expect("pty");

    let (cluster, mut tui, down_for) = tokio::task::spawn_blocking(move || {
        cluster.stop_server().expect("stop");
        let stopped_at = Instant::now();
        let screen = tui.wait_for("reconnecting (attempt");
        assert!(screen.contains("BEFORE"), "the last data stays:\n{screen}");
        // Keys answer while the database is away.
        tui.keys("?");
        tui.wait_for("help (? or Esc closes)");
        tui.keys("\x1b");
        let screen = tui.wait_for("reconnecting (attempt 3");
        assert!(screen.contains("stale"), "marked stale:\n{screen}");
        assert!(screen.contains("BEFORE"), "{screen}");
        (cluster, tui, stopped_at.elapsed())
    })
    .await
    .expect("pty");

    let cluster = tokio::task::spawn_blocking(move || {
        cluster.start_server().expect("start again");
        cluster
    })
    .await
    .expect("thread");
    let started_at = Instant::now();
    sql(
        &url,
        "SELECT fn_try_acquire_entry_lock_row('AFTER', 'BTC', 'w2', interval '1 hour')",
    )
    .await;
    let back = tokio::task::spawn_blocking(move || {
        let screen = tui.wait_for("AFTER");
        let back = started_at.elapsed();
        assert!(screen.contains(" live "), "{screen}");
        tui.keys("q");
        assert_eq!(tui.wait_exit(), 0);
        back
    })
    .await
    .expect("pty");
    eprintln!("server restart: down {down_for:?}, fresh data {back:?} after the server was back");
    // The backoff is capped at 15 s; after three attempts the next one is 2-4 s away.
    assert!(back < Duration::from_secs(16), "{back:?}");
    drop(cluster);
}
