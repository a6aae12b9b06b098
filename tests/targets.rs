//! Several databases at once: two real clusters (the shared one and one of this binary's own), one dedicated
//! connection each. One is stopped mid-run: the other keeps updating, the stopped one shows as down, and the
//! "several profiles contended at once" alert counts across both.

mod common;

use common::pty::Tui;
use locktop::rig::cluster::{Cluster, ClusterOptions};

async fn sql(url: &str, statement: &str) {
    let mut conn = common::connect(url).await;
    common::exec(&mut conn, statement).await;
}

/// A profile held for an hour by `w1` that `w2` failed to take: contended on that database.
async fn contend(url: &str, profile: &str) {
    sql(
        url,
        &format!(
            "SELECT fn_try_acquire_entry_lock_row('{profile}', 'BTC', 'w1', interval '1 hour'); \
             SELECT fn_try_acquire_entry_lock_row('{profile}', 'BTC', 'w2', interval '1 hour')"
        ),
    )
    .await;
}

async fn own_cluster() -> (Cluster, String) {
    let cluster = tokio::task::spawn_blocking(|| Cluster::start(&ClusterOptions::default()))
        .await
        .expect("thread")
        .expect("cluster");
    let url = cluster.url("postgres");
    sql(&url, common::REFERENCE_SCHEMA).await;
    (cluster, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_one_stopped_mid_run_the_other_keeps_updating_and_the_alert_counts_across_both()
 {
    let east = common::database("east").await;
    let (west_cluster, west) = own_cluster().await;
    contend(&east, "EAST-1").await;
    contend(&west, "WEST-1").await;

    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[[target]]\nname = \"east\"\ndsn = \"{east}\"\n\n[[target]]\nname = \"west\"\ndsn = \"{west}\"\n"
        ),
    )
    .expect("config");
    let config = config.display().to_string();
    let mut tui = tokio::task::spawn_blocking(move || {
        let tui = Tui::start(&["--config", &config, "--interval", "500ms"]);
        // One contended profile on each database: together they fire the runbook's trigger.
        let screen = tui.wait_for("2 profiles contended at once");
        assert!(screen.contains("east:EAST-1"), "{screen}");
        assert!(screen.contains("west:WEST-1"), "{screen}");
        tui
    })
    .await
    .expect("pty");

    let west_cluster = tokio::task::spawn_blocking(move || {
        west_cluster.stop_server().expect("stop west");
        west_cluster
    })
    .await
    .expect("thread");
    tui = tokio::task::spawn_blocking(move || {
        let screen = tui.wait_for("west is down, its last data kept");
        assert!(screen.contains("west DOWN"), "{screen}");
        assert!(
            screen.contains("west:WEST-1"),
            "west's last data stays:\n{screen}"
        );
        tui
    })
    .await
    .expect("pty");
    // East goes on: a profile taken there now appears while west is down.
    sql(
        &east,
        "SELECT fn_try_acquire_entry_lock_row('EAST-NEW', 'BTC', 'w3', interval '1 hour')",
    )
    .await;
    tokio::task::spawn_blocking(move || {
        let screen = tui.wait_for("east:EAST-NEW");
        assert!(screen.contains("west DOWN"), "{screen}");
        assert!(
            screen.contains(" live "),
            "the dashboard is live on east:\n{screen}"
        );
        tui.keys("q");
        assert_eq!(tui.wait_exit(), 0);
    })
    .await
    .expect("pty");
    drop(west_cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_of_two_databases_names_profiles_by_database_and_reports_one_that_is_down() {
    let first = common::database("snap_a").await;
    let second = common::database("snap_b").await;
    contend(&first, "P-A").await;
    contend(&second, "P-B").await;
    let db = |url: &str| {
        let path = url.split('?').next().unwrap_or_default();
        path.rsplit('/').next().unwrap_or_default().to_owned()
    };
    let run = |dsns: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_locktop"));
        cmd.arg("snapshot").args(["--format", "json"]);
        for d in dsns {
            cmd.args(["--dsn", d]);
        }
        cmd.output().expect("runs")
    };
    let out = run(&[&first, &second]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(2), "escalated across both: {json}");
    let profiles: Vec<&str> = json["profiles"]
        .as_array()
        .expect("profiles")
        .iter()
        .filter_map(|p| p["profile"].as_str())
        .collect();
    assert!(
        profiles.contains(&format!("{}:P-A", db(&first)).as_str()),
        "{profiles:?}"
    );
    assert!(
        profiles.contains(&format!("{}:P-B", db(&second)).as_str()),
        "{profiles:?}"
    );
    assert!(
        json["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .any(|a| a["trigger"] == "several_contended"),
        "{json}"
    );

    // A target that cannot be reached is a note; the other is still read; with a target down, locktop cannot
    // vouch for calm (exit 3).
    let nobody = "postgres://postgres@127.0.0.1:1/nothing";
    let out = run(&[&first, nobody]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(
        out.status.code(),
        Some(3),
        "one contended profile alone fires nothing, but a target is down"
    );
    assert!(json.to_string().contains("nothing is down"), "{json}");
    assert!(json.to_string().contains(":P-A"), "{json}");
}
