//! The service's metrics and health beside the database: endpoints served here over real HTTP on 127.0.0.1,
//! with counters that move, one that hangs and one that returns garbage.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use locktop::cmd::http as serve;
use locktop::source::service::{Scraper, ServiceSettings, request_timeout, run_service};
use locktop::source::{Feed, PollerSettings, Target, run_poller};

/// Endpoints: `/metrics` whose counter for `P-1` grows by 5 on every read, `/health`, `/hang` that never
/// answers and `/garbage` that answers HTML.
async fn endpoints() -> (String, tokio::task::JoinHandle<()>) {
    let reads = Arc::new(AtomicU64::new(0));
    let handler: serve::Handler = Arc::new(move |path: String| {
        let reads = Arc::clone(&reads);
        Box::pin(async move {
            match path.as_str() {
                "/metrics" => {
                    let n = reads.fetch_add(1, Ordering::SeqCst) * 5;
                    Some((
                        200,
                        "text/plain",
                        format!(
                            "# TYPE entry_lock_contention_total counter\n\
                             entry_lock_contention_total{{profile_id=\"P-1\",symbol=\"BTC\"}} {n}\n\
                             entry_lock_contention_total{{profile_id=\"P-1\",symbol=\"ETH\"}} 1\n\
                             entry_lock_holder_info{{profile_id=\"P-1\",owner_token=\"w1\"}} 1\n"
                        ),
                    ))
                }
                "/health" => Some((
                    200,
                    "application/json",
                    r#"{"lockContentionCount": 3, "tradingLoopHealthy": false, "reconciliationLoopHealthy": true}"#
                        .into(),
                )),
                "/hang" => std::future::pending().await,
                "/garbage" => Some((200, "text/html", "<html><body>oops</body></html>".into())),
                _ => None,
            }
        })
    });
    let (addr, task) = serve::start(handler).await.expect("serve");
    (format!("http://{addr}"), task)
}

fn snapshot_json(url: &str, args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_locktop"))
        .args(["snapshot", "--format", "json", "--interval", "500ms"])
        .args(args)
        .env("DATABASE_URL", url)
        .output()
        .expect("runs");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_rate_per_profile_and_its_health_appear_in_the_snapshot_json() {
    let url = common::database("service_rate").await;
    let _holder = common::acquire(&url, "P-1", "w1").await;
    let (base, server) = endpoints().await;
    let metrics = format!("{base}/metrics");
    let health = format!("{base}/health");
    let json = tokio::task::spawn_blocking({
        let url = url.to_string();
        move || snapshot_json(&url, &["--metrics-url", &metrics, "--health-url", &health])
    })
    .await
    .expect("thread");
    let p1 = json["profiles"]
        .as_array()
        .expect("profiles")
        .iter()
        .find(|p| p["profile"] == "P-1")
        .unwrap_or_else(|| panic!("P-1 in {json}"));
    // 5 more failures between two reads half a second (or a little more) apart.
    let rate = p1["service"]["contention_per_s"].as_f64().expect("a rate");
    assert!(rate > 3.0 && rate <= 10.0, "{rate}: {json}");
    assert_eq!(p1["service"]["holders"][0], "w1");
    assert_eq!(json["service"]["health"][0]["trading_loop_healthy"], false);
    assert_eq!(json["service"]["health"][0]["lock_contention_count"], 3);
    assert_eq!(json["service"]["errors"].as_array().map(Vec::len), Some(0));
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_hangs_or_returns_garbage_is_reported_and_never_delays_a_poll() {
    let url = common::database("service_faults").await;
    let _holder = common::acquire(&url, "P-1", "w1").await;
    let (base, server) = endpoints().await;

    // In the snapshot JSON: both failures, each with its reason.
    let json = tokio::task::spawn_blocking({
        let (url, base) = (url.to_string(), base.clone());
        move || {
            snapshot_json(
                &url,
                &[
                    "--metrics-url",
                    &format!("{base}/hang"),
                    "--metrics-url",
                    &format!("{base}/garbage"),
                ],
            )
        }
    })
    .await
    .expect("thread");
    let errors = json["service"]["errors"].to_string();
    assert!(
        errors.contains("/hang: no answer within") || errors.contains("/hang: timed out"),
        "{errors}"
    );
    assert!(
        errors.contains("/garbage: not Prometheus text format"),
        "{errors}"
    );
    assert!(
        json["profiles"].to_string().contains("P-1"),
        "the database view is complete: {json}"
    );

    // Live: the poller and the scraper run side by side; the polls keep their interval.
    let interval = Duration::from_millis(300);
    let (feed_tx, mut feed_rx) = tokio::sync::watch::channel(Feed::default());
    let settings = PollerSettings {
        target: Target::new(Some(&url)).expect("url"),
        label: None,
        mapping: locktop::config::LeaseMapping::default(),
        interval,
        ttl: Duration::from_secs(30),
    };
    let poller = tokio::spawn(run_poller(
        settings,
        None,
        feed_tx,
        locktop::source::unsteered(),
    ));
    let scraper = Scraper::new(
        ServiceSettings {
            metrics: vec![format!("{base}/hang"), format!("{base}/metrics")],
            health: vec![format!("{base}/garbage")],
        },
        request_timeout(interval),
    )
    .expect("scraper");
    let (service_tx, mut service_rx) = tokio::sync::watch::channel(None);
    let scraping = tokio::spawn(run_service(scraper, interval, service_tx));

    let mut arrivals = Vec::new();
    while arrivals.len() < 8 {
        feed_rx.changed().await.expect("poller runs");
        let feed = feed_rx.borrow_and_update().clone();
        assert!(!feed.last_poll_failed, "{:?}", feed.link);
        arrivals.push(Instant::now());
    }
    let view = service_rx
        .borrow_and_update()
        .clone()
        .expect("the scraper published while the polls went on");
    assert!(
        view.errors.iter().any(|e| e.contains("/hang")),
        "{:?}",
        view.errors
    );
    assert!(
        view.errors
            .iter()
            .any(|e| e.contains("health") && e.contains("JSON")),
        "{:?}",
        view.errors
    );
    assert!(
        view.profile("P-1").is_some(),
        "the good endpoint is still read: {view:?}"
    );
    // No poll waited for a scrape: none came more than two intervals after the one before (the point at
    // which the dashboard would call its data stale).
    let gaps: Vec<Duration> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.iter().all(|g| *g < interval * 2), "{gaps:?}");
    poller.abort();
    scraping.abort();
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_endpoint_with_an_untrusted_certificate_is_refused_and_reported() {
    let dir = tempfile::tempdir().expect("dir");
    let made = std::process::Command::new("openssl")
        .current_dir(dir.path())
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .output()
        .expect("openssl");
    assert!(made.status.success(), "{made:?}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut server = std::process::Command::new("openssl")
        .current_dir(dir.path())
        .args([
            "s_server", "-quiet", "-www", "-cert", "cert.pem", "-key", "key.pem",
        ])
        .args(["-accept", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("s_server");
    common::wait_until("s_server listens", || async {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    let mut scraper = Scraper::new(
        ServiceSettings {
            metrics: vec![format!("https://localhost:{port}/metrics")],
            health: Vec::new(),
        },
        Duration::from_secs(2),
    )
    .expect("scraper");
    let view = scraper.scrape().await;
    let _ = server.kill();
    let _ = server.wait();
    let error = view.errors.join("; ");
    eprintln!("https, untrusted certificate: {error}");
    assert!(error.to_lowercase().contains("certificate"), "{error}");
}
