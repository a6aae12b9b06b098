//! `locktop serve` against a real server: its `/metrics` parsed by a Prometheus text parser (and linted by
//! Prometheus' own `promtool check metrics`) on a scene with an escalated profile, `/healthz` going 503 while
//! the network stalls and 200 again after, `--on-alert` seeing each start and clear once, and the address in
//! use refused in one line.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::proxy::Proxy;
use common::{connect, database, exec, tcp_upstream, url_via, wait_until};

/// A running `locktop serve`, killed when dropped.
struct Serve {
    child: Child,
    addr: SocketAddr,
}

impl Serve {
    /// Starts it on a free loopback port with `args`, and waits for it to say where it listens.
    fn start(url: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_locktop"))
            .args(["serve", "--listen", "127.0.0.1:0", "--interval", "200ms"])
            .args(args)
            .env("DATABASE_URL", url)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runs");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        // Log lines may come first.
        while !line.contains("locktop serve: http://") {
            line.clear();
            let n = stderr.read_line(&mut line).expect("a line");
            assert!(n > 0, "it ended before it listened");
        }
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("where it listens: {line:?}"));
        // The rest of stderr (the log) goes to the test's, shown when it fails.
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::stderr()));
        Self { child, addr }
    }

    /// GET `path`: the status and the body.
    fn get(&self, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(self.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("answer");
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head");
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        (status, body.to_owned())
    }

    fn metrics(&self) -> prometheus_parse::Scrape {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200);
        prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))
            .unwrap_or_else(|e| panic!("{e}: {body}"))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Labels of a series, as `(name, value)` pairs.
type Labels<'a> = &'a [(&'a str, &'a str)];

/// The value of `name` with these labels, if exposed.
fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(k).is_some_and(|x| x == *v))
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

/// Prometheus' own linter on the page: the format and the naming conventions (units, `_total`).
fn promtool_check(page: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; .ci/run installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(page.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{page}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The hook's file: one JSON document per line.
fn hook_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn events(lines: &[serde_json::Value], trigger: &str, profile: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l["trigger"] == trigger && l["profile"] == profile)
        .map(|l| l["event"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// The page of the escalated scene: every figure as the scene has it, and Prometheus' linter content.
fn check_escalated_page(serve: &Serve) {
    let (_, page) = serve.get("/metrics");
    promtool_check(&page);
    let m = serve.metrics();
    let p1 = [("profile", "P1")];
    // Exact values: (metric, labels, value); `None` for a series that must not be there.
    let exact: [(&str, Labels, Option<f64>); 12] = [
        ("locktop_up", &[], Some(1.0)),
        ("locktop_profiles", &[("status", "ok")], Some(1.0)),
        ("locktop_profiles", &[("status", "contended")], Some(3.0)),
        ("locktop_profile_waiters", &p1, Some(1.0)),
        // Top 3: P1 and the next most severe; the last contended profile is folded into _other.
        ("locktop_profiles_unlisted", &[], Some(1.0)),
        (
            "locktop_profile_contended_seconds",
            &[("profile", "P3")],
            None,
        ),
        // Calm profiles get no series.
        (
            "locktop_profile_contended_seconds",
            &[("profile", "CALM")],
            None,
        ),
        (
            "locktop_alerts_active",
            &[("trigger", "contended_too_long")],
            Some(1.0),
        ),
        (
            "locktop_alerts_active",
            &[("trigger", "several_contended")],
            Some(1.0),
        ),
        (
            "locktop_alerts_active",
            &[("trigger", "deadlock_burst")],
            Some(0.0),
        ),
        (
            "locktop_alerts_active",
            &[("trigger", "expired_not_refreshed")],
            Some(0.0),
        ),
        ("locktop_alert_hook_failures_total", &[], Some(0.0)),
    ];
    for (name, labels, want) in exact {
        assert_eq!(value(&m, name, labels), want, "{name} {labels:?}\n{page}");
    }
    // At least: (metric, labels, lower bound).
    let at_least: [(&str, Labels, f64); 7] = [
        ("locktop_profile_contended_seconds", &p1, 100.0),
        ("locktop_profile_longest_wait_seconds", &p1, 0.001),
        (
            "locktop_profile_contended_seconds",
            &[("profile", "_other")],
            1.0,
        ),
        ("locktop_deadlocks_total", &[], 0.0),
        ("locktop_polls_total", &[], 1.0),
        ("locktop_poll_duration_seconds", &[], 0.0001),
        ("locktop_last_successful_poll_timestamp_seconds", &[], 1.7e9),
    ];
    for (name, labels, low) in at_least {
        assert!(
            value(&m, name, labels).is_some_and(|v| v >= low),
            "{name} {labels:?} >= {low}\n{page}"
        );
    }
    assert!(
        page.contains(r#"locktop_profile_waiters{profile="we\"ird\\name"} 0"#),
        "{page}"
    );
}

/// P1 contended for 100 s (escalated); three more contended profiles, one with a name the text format must
/// escape; a session waiting on P1's row behind a holder. The admin session, the holder's and the waiter's task.
async fn escalated_scene(
    url: &str,
) -> (
    sqlx::PgConnection,
    sqlx::PgConnection,
    tokio::task::JoinHandle<()>,
) {
    let mut admin = connect(url).await;
    exec(
        &mut admin,
        r#"INSERT INTO entry_locks VALUES
           ('P1', 'AAPL', 'w1', now() - interval '5 s', now() + interval '25 s', 40, now() - interval '100 s', now()),
           ('P2', 'MSFT', 'w2', now(), now() + interval '30 s', 3, now() - interval '10 s', now()),
           ('we"ird\name', 'X', 'w3', now(), now() + interval '30 s', 2, now() - interval '5 s', now()),
           ('P3', 'X', 'w5', now(), now() + interval '30 s', 1, now() - interval '2 s', now()),
           ('CALM', 'BTC', 'w4', now(), now() + interval '30 s', 0, NULL, NULL)"#,
    )
    .await;
    let mut holder = connect(url).await;
    exec(
        &mut holder,
        "BEGIN; SELECT * FROM entry_locks WHERE profile_id = 'P1' FOR UPDATE",
    )
    .await;
    let waiter_url = url.to_owned();
    let waiter = tokio::spawn(async move {
        let mut c = connect(&waiter_url).await;
        let _ = sqlx::raw_sql("UPDATE entry_locks SET owner_token = 'w9' WHERE profile_id = 'P1'")
            .execute(&mut c)
            .await;
    });
    common::wait_for_lock_waiters(url, 1).await;

    (admin, holder, waiter)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exposes_an_escalated_scene_reports_health_and_runs_the_hook_once_per_change() {
    let url = database("serve").await;
    let (mut admin, mut holder, waiter) = escalated_scene(&url).await;

    let proxy = Proxy::start(tcp_upstream(&url)).await;
    let via = url_via(&url, proxy.addr);
    let dir = tempfile::tempdir().expect("dir");
    let hook_file = dir.path().join("alerts.jsonl");
    let hook = format!("cat >> '{}'", hook_file.display());
    let serve = Serve::start(&via, &["--top-profiles", "3", "--on-alert", &hook], &[]);

    wait_until("an escalated profile in /metrics", || async {
        value(
            &serve.metrics(),
            "locktop_profiles",
            &[("status", "escalated")],
        ) == Some(1.0)
    })
    .await;
    check_escalated_page(&serve);
    let (status, body) = serve.get("/healthz");
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("ok"), "{body}");

    // The hook saw the escalation start.
    wait_until("the hook's start", || async {
        events(&hook_lines(&hook_file), "contended_too_long", "P1") == ["start"]
    })
    .await;
    let start = hook_lines(&hook_file)
        .into_iter()
        .find(|l| l["trigger"] == "contended_too_long")
        .expect("start");
    assert!(
        start["message"].as_str().is_some_and(|m| m.contains("P1")),
        "{start}"
    );
    assert!(start["since"].as_str().is_some(), "{start}");
    assert!(
        start["target"].as_str().is_some_and(|t| !t.is_empty()),
        "{start}"
    );

    // The network stalls: health fails with the reason, the database's figures go, nothing clears.
    proxy.stall();
    wait_until("/healthz 503", || async { serve.get("/healthz").0 == 503 }).await;
    let (_, why) = serve.get("/healthz");
    assert!(why.contains("poll"), "{why}");
    let m = serve.metrics();
    assert_eq!(value(&m, "locktop_up", &[]), Some(0.0));
    assert!(value(&m, "locktop_poll_errors_total", &[]).is_some_and(|n| n >= 1.0));
    assert!(
        value(&m, "locktop_profiles", &[("status", "escalated")]).is_none(),
        "no stale figures while the database cannot be read"
    );
    proxy.resume();
    wait_until("/healthz 200 again", || async {
        serve.get("/healthz").0 == 200
    })
    .await;

    // The contention ends: the hook sees the clear, once; the start was not repeated by the stall.
    exec(&mut holder, "ROLLBACK").await;
    waiter.await.expect("waiter");
    exec(
        &mut admin,
        "UPDATE entry_locks SET contention_count = 0, contended_since = NULL, last_contended_at = NULL",
    )
    .await;
    wait_until("the hook's clear", || async {
        events(&hook_lines(&hook_file), "contended_too_long", "P1") == ["start", "clear"]
    })
    .await;
    wait_until("every alert cleared", || async {
        value(
            &serve.metrics(),
            "locktop_alerts_active",
            &[("trigger", "several_contended")],
        ) == Some(0.0)
    })
    .await;
    // The page says the alert cleared as soon as the poll is judged; the hook's run that writes the clear
    // comes after it.
    let several = |lines: &[serde_json::Value]| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l["trigger"] == "several_contended")
            .map(|l| l["event"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    wait_until("the hook's clear of several_contended", || async {
        several(&hook_lines(&hook_file)).last().map(String::as_str) == Some("clear")
    })
    .await;
    let lines = hook_lines(&hook_file);
    assert_eq!(
        events(&lines, "contended_too_long", "P1"),
        ["start", "clear"],
        "one run per change: {lines:?}"
    );
    assert_eq!(several(&lines), ["start", "clear"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_hanging_hook_is_counted_and_never_stops_the_polls_nor_sees_a_secret() {
    let url = database("serve_hook").await;
    let mut admin = connect(&url).await;
    exec(
        &mut admin,
        "INSERT INTO entry_locks VALUES \
           ('P1', 'AAPL', 'w1', now(), now() + interval '25 s', 40, now() - interval '100 s', now())",
    )
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let env_file = dir.path().join("env");
    // The hook writes its environment, then hangs past its timeout.
    // A duration of its own, so that no other run's process is mistaken for this one's.
    let sleep = format!("sleep 30.{}", std::process::id());
    let hook = format!("env > '{}'; {sleep}", env_file.display());
    let serve = Serve::start(
        &url,
        &["--on-alert", &hook, "--on-alert-timeout", "300ms"],
        &[("PGPASSWORD", "s3cret-in-env")],
    );
    wait_until("a failed run", || async {
        value(&serve.metrics(), "locktop_alert_hook_failures_total", &[]) == Some(1.0)
    })
    .await;
    let before = value(&serve.metrics(), "locktop_polls_total", &[]).expect("polls");
    wait_until("polls go on", || async {
        value(&serve.metrics(), "locktop_polls_total", &[]).is_some_and(|n| n > before + 2.0)
    })
    .await;
    let env = std::fs::read_to_string(&env_file).expect("the hook ran");
    assert!(
        env.contains("LOCKTOP_ALERT_TRIGGER=contended_too_long"),
        "{env}"
    );
    assert!(env.contains("LOCKTOP_ALERT_EVENT=start"), "{env}");
    assert!(env.contains("LOCKTOP_ALERT_PROFILE=P1"), "{env}");
    assert!(!env.contains("s3cret-in-env"), "{env}");
    assert!(!env.contains("DATABASE_URL"), "{env}");
    // The hung run was killed with its process group: its `sleep` is gone.
    let left = Command::new("pgrep")
        .args(["-f", &format!("^{sleep}$")])
        .output()
        .expect("pgrep");
    assert!(
        left.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&left.stdout)
    );
    assert_eq!(
        value(&serve.metrics(), "locktop_alert_hook_runs_total", &[]),
        Some(1.0)
    );
}

#[test]
fn an_address_in_use_is_one_clear_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_locktop"))
        .args(["serve", "--listen", &addr])
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(err.contains("in use") && err.contains("--listen"), "{err}");
    let bad = Command::new(env!("CARGO_BIN_EXE_locktop"))
        .args(["serve", "--listen", "nonsense"])
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{err}");
    assert!(err.contains("HOST:PORT"), "{err}");
}
