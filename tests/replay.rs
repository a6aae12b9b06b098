//! Record a real session against the test cluster with contention, then replay it: the replayed statuses are
//! the recorded ones, the summary tells the incident, and a file cut in the middle of a line replays up to the
//! cut and says where it stopped.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::pty::Tui;
use locktop::model::rules;
use locktop::model::{History, Status};
use locktop::recording;

fn replay(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_locktop"))
        .arg("replay")
        .args(args)
        .output()
        .expect("replay")
}

/// HOT held by w1 and wanted by w2 every 50 ms; CALM held by w1. Returns the rival's task.
async fn contention(url: &str) -> tokio::task::JoinHandle<()> {
    let mut holder = common::connect_as(url, "w1").await;
    common::exec(
        &mut holder,
        "SELECT fn_try_acquire_entry_lock_row('HOT', 'BTC', 'w1')",
    )
    .await;
    common::exec(
        &mut holder,
        "SELECT fn_try_acquire_entry_lock_row('CALM', 'BTC', 'w1')",
    )
    .await;
    let rival_url = url.to_owned();
    tokio::spawn(async move {
        let _holder = holder;
        let mut rival = common::connect_as(&rival_url, "w2").await;
        loop {
            common::exec(
                &mut rival,
                "SELECT fn_try_acquire_entry_lock_row('HOT', 'BTC', 'w2')",
            )
            .await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

/// Replaying the same inputs through the same rules gives the statuses recorded at the time.
fn assert_replay_gives_the_recorded_statuses(recorded: &recording::Recording) {
    let rules = recorded.header.rules();
    let mut history = History::default();
    let mut contended_polls = 0;
    for poll in &recorded.polls {
        let snapshot = poll.snapshot.as_ref().expect("no failed poll here");
        assert!(
            snapshot.sessions.iter().all(|s| s.query.is_none()),
            "no query text without --record-queries"
        );
        rules::record(&mut history, snapshot, &rules);
        let board = rules::evaluate(snapshot, &history, &rules, snapshot.server_now);
        let replayed: std::collections::BTreeMap<String, String> = board
            .profiles
            .iter()
            .filter(|p| p.status != Status::Ok)
            .map(|p| (p.profile.to_string(), p.status.word().to_owned()))
            .collect();
        assert_eq!(replayed, poll.statuses, "at {}", snapshot.server_now);
        contended_polls += usize::from(poll.statuses.get("HOT").is_some_and(|s| s == "contended"));
    }
    assert!(contended_polls >= 3, "HOT was contended while recorded");
}

/// Cut in the middle of the fourth line: the polls before it are replayed, and the cut is named.
fn assert_a_cut_file_replays_up_to_the_cut(file: &std::path::Path, dir: &std::path::Path) {
    let bytes = std::fs::read(file).expect("read");
    let starts: Vec<usize> = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i + 1)
        .collect();
    let cut = starts[2] + (starts[3] - starts[2]) / 2;
    let damaged = dir.join("cut.jsonl");
    std::fs::File::create(&damaged)
        .and_then(|mut f| f.write_all(&bytes[..cut]))
        .expect("write");
    let out = replay(&[&damaged.display().to_string(), "--summary"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    // Line 4 begins after the third line feed: `tail -c +N` from there shows the damage.
    let damage = format!(
        "damaged: the recording stops at line 4, byte {} (the line is cut short); the 2 polls before it are replayed",
        starts[2]
    );
    assert!(text.contains(&damage), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_session_replays_with_the_same_statuses_and_summarises_the_incident() {
    let url = common::database("record").await;
    let rival = contention(&url).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("incident.jsonl");
    let with_queries = dir.path().join("queries.jsonl");
    let (db, path, path_q) = (
        url.to_string(),
        file.display().to_string(),
        with_queries.display().to_string(),
    );
    tokio::task::spawn_blocking(move || {
        for args in [
            vec!["--dsn", &db, "--interval", "200ms", "--record", &path],
            vec![
                "--dsn",
                &db,
                "--interval",
                "200ms",
                "--record",
                &path_q,
                "--record-queries",
            ],
        ] {
            let mut tui = Tui::start(&args);
            tui.wait_for("HOT");
            std::thread::sleep(Duration::from_millis(1500));
            tui.keys("q");
            assert_eq!(tui.wait_exit(), 0);
        }
    })
    .await
    .expect("pty");
    rival.abort();

    let mode = std::fs::metadata(&file).expect("file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the recording is private");
    let recorded = recording::read(std::io::BufReader::new(
        std::fs::File::open(&file).expect("open"),
    ))
    .expect("a recording");
    assert_eq!(recorded.damage, None);
    assert!(
        recorded.header.target.contains("/t_record_"),
        "{}",
        recorded.header.target
    );
    assert!(recorded.polls.len() >= 5, "{} polls", recorded.polls.len());

    assert_replay_gives_the_recorded_statuses(&recorded);
    let queried = recording::read(std::io::BufReader::new(
        std::fs::File::open(&with_queries).expect("open"),
    ))
    .expect("a recording");
    assert!(
        queried
            .polls
            .iter()
            .filter_map(|p| p.snapshot.as_ref())
            .flat_map(|s| &s.sessions)
            .any(|s| s.query.is_some()),
        "--record-queries keeps them"
    );

    // The summary tells the incident.
    let out = replay(&[&file.display().to_string(), "--summary"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("HOT: contended "), "{text}");
    assert!(text.contains("held by w1"), "{text}");
    assert!(text.contains("peak: 1 profile contended at once"), "{text}");
    assert!(text.contains("1 other profile never contended"), "{text}");

    assert_a_cut_file_replays_up_to_the_cut(&file, dir.path());

    // The dashboard plays it, and says so.
    let path = file.display().to_string();
    tokio::task::spawn_blocking(move || {
        let mut tui = Tui::start(&["replay", &path, "--speed", "10"]);
        let screen = tui.wait_for("REPLAY");
        assert!(screen.contains("HOT"), "{screen}");
        tui.wait_for("end of the recording");
        tui.keys("q");
        assert_eq!(tui.wait_exit(), 0);

        // The replay runs in the same terminal runtime as the dashboard: SIGINT ends it cleanly too.
        let mut tui = Tui::start(&["replay", &path]);
        tui.wait_for("REPLAY");
        let pid = tui.child.process_id().expect("pid");
        let status = std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        assert_eq!(tui.wait_exit(), 0, "SIGINT quits the replay");
        assert!(tui.cooked(), "and restores the terminal");
    })
    .await
    .expect("pty");
}

#[test]
fn a_file_that_is_not_a_recording_is_refused_in_one_line() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, "hello\n").expect("write");
    for args in [
        vec![file.display().to_string(), "--summary".to_owned()],
        vec![
            dir.path().join("missing.jsonl").display().to_string(),
            "--summary".to_owned(),
        ],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = replay(&args);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains("recording"), "{err}");
    }
}
