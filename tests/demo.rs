//! The demo's scenarios produce their states, seen through the same polls and rules as the dashboard, on a
//! compressed clock (TTL 1 s, escalation after 3 s) so the test stays short.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use locktop::config::LeaseMapping;
use locktop::demo::{self, Scenario, Workload};
use locktop::model::rules::{self, Alert, Rules};
use locktop::model::{AdvisoryKey, History, Status};
use locktop::source::{LeaseDetail, Monitor, SessionLimits, Target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_produces_its_state_and_calm_profiles_stay_ok() {
    let url = common::database("demo").await;
    let ttl = Duration::from_secs(1);
    let rules = Rules {
        ttl: chrono::Duration::seconds(1),
        escalate_after: chrono::Duration::seconds(3),
    };
    let workload = Workload {
        url: url.clone(),
        scenarios: Scenario::ALL.to_vec(),
        ttl,
        profiles: 20,
        workers: 6,
    };
    let mut sessions = demo::start(&workload).await.expect("workload starts");

    let limits = SessionLimits::for_interval(Duration::from_millis(200));
    let mut m = Monitor::connect(
        &Target::new(Some(&url)).expect("url"),
        &LeaseMapping::default(),
        limits,
    )
    .await
    .expect("monitor");
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
