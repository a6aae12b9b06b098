//! The service's own view beside the database's: its Prometheus `/metrics` (contention counters, acquisition
//! latency, lock holders per `profile_id`) and its JSON `/internal/health`. Scraped on a task of its own, each
//! request under a timeout below the interval, so an endpoint that hangs, fails or returns garbage is reported
//! and never holds up a database poll.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::model::service::{Health, ServiceView};

/// The largest response read from an endpoint: a metrics page of a big service, with room to spare.
const BODY_LIMIT: usize = 16 << 20;

/// Metric names the runbook names.
pub const CONTENTION_TOTAL: &str = "entry_lock_contention_total";
pub const LATENCY: &str = "lock_acquisition_latency_seconds";
pub const HOLDER_INFO: &str = "entry_lock_holder_info";

/// Where to scrape.
#[derive(Debug, Clone, Default)]
pub struct ServiceSettings {
    pub metrics: Vec<String>,
    pub health: Vec<String>,
}

impl ServiceSettings {
    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty() && self.health.is_empty()
    }
}

/// Counter values of one metrics endpoint at one scrape.
#[derive(Debug, Clone, Default)]
struct Counters {
    at: Option<Instant>,
    contention: HashMap<String, f64>,
    latency_sum: HashMap<String, f64>,
    latency_count: HashMap<String, f64>,
}

/// Scrapes the endpoints and turns counters into rates.
#[derive(Debug)]
pub struct Scraper {
    client: reqwest::Client,
    settings: ServiceSettings,
    timeout: Duration,
    last: HashMap<String, Counters>,
}

impl Scraper {
    /// A scraper whose requests each give up after `timeout`.
    pub fn new(settings: ServiceSettings, timeout: Duration) -> Result<Self, String> {
        // reqwest is built without a TLS provider of its own: rustls with ring, as the database link uses.
        let _ = rustls::crypto::ring::default_provider().install_default();
        for url in settings.metrics.iter().chain(&settings.health) {
            let parsed = reqwest::Url::parse(url).map_err(|e| {
                format!(
                    "bad endpoint URL {:?}: {e}; write it as http://host:port/path",
                    shown(url)
                )
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(format!(
                    "bad endpoint URL {:?}: only http and https are read; write it as http://host:port/path",
                    shown(url)
                ));
            }
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("locktop/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(Self {
            client,
            settings,
            timeout,
            last: HashMap::new(),
        })
    }

    /// One scrape of every endpoint, concurrently; never longer than the timeout (plus reading).
    pub async fn scrape(&mut self) -> ServiceView {
        let metrics = futures_util::future::join_all(
            self.settings
                .metrics
                .iter()
                .map(|url| fetch(&self.client, url, self.timeout)),
        );
        let health = futures_util::future::join_all(
            self.settings
                .health
                .iter()
                .map(|url| fetch(&self.client, url, self.timeout)),
        );
        let (metrics, health) = tokio::join!(metrics, health);
        let mut view = ServiceView::default();
        let urls = self.settings.metrics.clone();
        for (url, body) in urls.iter().zip(metrics) {
            match body.and_then(|b| parse_metrics(&b)) {
                Ok(scrape) => self.add_metrics(url, &scrape, &mut view),
                Err(e) => {
                    // A failed scrape breaks the counter series: the next good one starts a new rate.
                    self.last.remove(url);
                    view.errors.push(format!("metrics {}: {e}", shown(url)));
                }
            }
        }
        for (url, body) in self.settings.health.iter().zip(health) {
            match body.and_then(|b| parse_health(url, &b)) {
                Ok(h) => view.health.push(h),
                Err(e) => view.errors.push(format!("health {}: {e}", shown(url))),
            }
        }
        view
    }

    fn add_metrics(
        &mut self,
        url: &str,
        scrape: &prometheus_parse::Scrape,
        view: &mut ServiceView,
    ) {
        let now = Counters {
            at: Some(Instant::now()),
            contention: by_profile(scrape, CONTENTION_TOTAL),
            latency_sum: by_profile(scrape, &format!("{LATENCY}_sum")),
            latency_count: by_profile(scrape, &format!("{LATENCY}_count")),
        };
        for s in scrape.samples.iter().filter(|s| s.metric == HOLDER_INFO) {
            let (Some(profile), Some(owner)) =
                (s.labels.get("profile_id"), s.labels.get("owner_token"))
            else {
                continue;
            };
            if value(&s.value).is_some_and(|v| v > 0.0) {
                let holders = &mut view.profiles.entry(profile.to_owned()).or_default().holders;
                if !holders.iter().any(|h| h == owner) {
                    holders.push(owner.to_owned());
                }
            }
        }
        if let Some(before) = self.last.get(url)
            && let (Some(t0), Some(t1)) = (before.at, now.at)
        {
            let secs = (t1 - t0).as_secs_f64().max(1e-3);
            for (profile, &total) in &now.contention {
                let delta = before.contention.get(profile).map_or(0.0, |b| total - b);
                // A counter that went down was reset (the service restarted): no rate this time.
                if delta >= 0.0 {
                    let p = view.profiles.entry(profile.clone()).or_default();
                    *p.contention_per_s.get_or_insert(0.0) += delta / secs;
                }
            }
            for (profile, &count) in &now.latency_count {
                let dn = count - before.latency_count.get(profile).copied().unwrap_or(0.0);
                let ds = now.latency_sum.get(profile).copied().unwrap_or(0.0)
                    - before.latency_sum.get(profile).copied().unwrap_or(0.0);
                if dn > 0.0 && ds >= 0.0 {
                    view.profiles.entry(profile.clone()).or_default().latency_ms =
                        Some(ds / dn * 1000.0);
                }
            }
        } else {
            for profile in now.contention.keys() {
                view.profiles.entry(profile.clone()).or_default();
            }
        }
        self.last.insert(url.to_owned(), now);
    }
}

/// A sample's value, for the plain kinds.
fn value(v: &prometheus_parse::Value) -> Option<f64> {
    match v {
        prometheus_parse::Value::Counter(x)
        | prometheus_parse::Value::Gauge(x)
        | prometheus_parse::Value::Untyped(x) => Some(*x).filter(|x| x.is_finite()),
        _ => None,
    }
}

/// The metric's values summed per `profile_id` (over its other labels: symbol, instance…).
fn by_profile(scrape: &prometheus_parse::Scrape, metric: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for s in scrape.samples.iter().filter(|s| s.metric == metric) {
        if let (Some(profile), Some(v)) = (s.labels.get("profile_id"), value(&s.value)) {
            *out.entry(profile.to_owned()).or_insert(0.0) += v;
        }
    }
    out
}

/// GETs a URL under the timeout; the body as text, or a one-line reason.
async fn fetch(client: &reqwest::Client, url: &str, timeout: Duration) -> Result<String, String> {
    let read = async {
        let mut response = client.get(url).send().await.map_err(reason)?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(reason)? {
            if body.len() + chunk.len() > BODY_LIMIT {
                return Err(format!("response larger than {} MiB", BODY_LIMIT >> 20));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    };
    // reqwest's own timeout covers the whole request; this one also covers a body that trickles forever.
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} ms", timeout.as_millis())))
}

/// A URL as it may be shown: without a password (`http://user:***@host/…`).
pub fn shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        // Unparsable: nothing of what could be userinfo.
        Err(_) => match url.rsplit_once('@') {
            Some((_, host)) => format!("…@{host}"),
            None => url.to_owned(),
        },
    }
}

fn reason(e: reqwest::Error) -> String {
    // The caller names the URL, without its password; reqwest's own text would include it whole.
    let e = e.without_url();
    if e.is_timeout() {
        return "timed out".into();
    }
    // The innermost cause says what went wrong (refused, a certificate, a reset); reqwest's outer texts only
    // say that a request failed.
    let mut innermost = None;
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        innermost = Some(s.to_string());
        source = s.source();
    }
    let detail = innermost.unwrap_or_else(|| e.to_string());
    let detail = detail.split_whitespace().collect::<Vec<_>>().join(" ");
    if e.is_connect() {
        format!("cannot connect: {detail}")
    } else {
        detail
    }
}

/// Parses Prometheus text. The parser skips lines it does not understand, so a page with text but no sample
/// at all is not a metrics page: that is reported rather than shown as "no contention".
pub fn parse_metrics(body: &str) -> Result<prometheus_parse::Scrape, String> {
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).map_err(|e| e.to_string())?;
    let content = body
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .count();
    if scrape.samples.is_empty() && content > 0 {
        return Err(format!(
            "not Prometheus text format: none of its {content} lines is a sample"
        ));
    }
    Ok(scrape)
}

/// Reads the runbook's fields of a health document; other fields are ignored, a missing one is `None`.
pub fn parse_health(url: &str, body: &str) -> Result<Health, String> {
    let doc: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("not a JSON document: {e}"))?;
    if !doc.is_object() {
        return Err("not a JSON object".into());
    }
    Ok(Health {
        url: shown(url),
        lock_contention_count: doc
            .get("lockContentionCount")
            .and_then(serde_json::Value::as_i64),
        trading_loop_healthy: doc
            .get("tradingLoopHealthy")
            .and_then(serde_json::Value::as_bool),
        reconciliation_loop_healthy: doc
            .get("reconciliationLoopHealthy")
            .and_then(serde_json::Value::as_bool),
    })
}

/// Scrapes every `interval` and publishes the latest view, until the receiver side is gone.
pub async fn run_service(
    mut scraper: Scraper,
    interval: Duration,
    tx: watch::Sender<Option<ServiceView>>,
) {
    let mut ticker = super::every(interval);
    loop {
        ticker.tick().await;
        if tx.is_closed() {
            break;
        }
        let view = scraper.scrape().await;
        for e in &view.errors {
            tracing::warn!(error = %e, "service scrape failed");
        }
        tx.send_replace(Some(view));
    }
}

/// The timeout of one request: below the interval, so scrapes never pile up.
pub fn request_timeout(interval: Duration) -> Duration {
    (interval * 4 / 5).clamp(Duration::from_millis(100), Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::service::ServiceProfile;

    #[test]
    fn metrics_pages_are_parsed_and_garbage_is_refused() {
        let page = "# TYPE entry_lock_contention_total counter\n\
                    entry_lock_contention_total{profile_id=\"hot-1\",symbol=\"AAPL\"} 7\n\
                    entry_lock_contention_total{profile_id=\"hot-1\",symbol=\"BTC\"} 3\n";
        let scrape = parse_metrics(page).expect("parses");
        assert_eq!(
            by_profile(&scrape, CONTENTION_TOTAL).get("hot-1"),
            Some(&10.0)
        );
        assert!(
            parse_metrics("").is_ok(),
            "an empty page has no samples, and is no error"
        );
        let e = parse_metrics("<html><body>502 Bad Gateway</body></html>").expect_err("garbage");
        assert!(e.contains("not Prometheus text"), "{e}");
    }

    #[test]
    fn health_documents_are_read_by_the_runbooks_field_names() {
        let h = parse_health(
            "u",
            r#"{"lockContentionCount": 12, "tradingLoopHealthy": false, "extra": [1]}"#,
        )
        .expect("parses");
        assert_eq!(h.lock_contention_count, Some(12));
        assert_eq!(h.trading_loop_healthy, Some(false));
        assert_eq!(h.reconciliation_loop_healthy, None);
        assert!(parse_health("u", "ok").is_err());
        assert!(parse_health("u", "[1]").is_err());
    }

    #[test]
    fn passwords_in_endpoint_urls_are_never_shown() {
        assert_eq!(
            shown("http://mon:s3cret@svc:9100/metrics"),
            "http://mon:***@svc:9100/metrics"
        );
        assert_eq!(shown("http://svc:9100/metrics"), "http://svc:9100/metrics");
        assert!(!shown("http//mon:s3cret@svc").contains("s3cret"));
        let e = Scraper::new(
            ServiceSettings {
                metrics: vec!["ftp://mon:s3cret@svc/metrics".into()],
                health: Vec::new(),
            },
            Duration::from_secs(1),
        )
        .expect_err("ftp is refused");
        assert!(!e.contains("s3cret") && e.contains("only http"), "{e}");
    }

    #[test]
    fn a_profile_is_found_by_its_bare_name_under_a_target_prefix() {
        let mut v = ServiceView::default();
        v.profiles.insert("p-1".into(), ServiceProfile::default());
        assert!(v.profile("p-1").is_some());
        assert!(v.profile("east:p-1").is_some());
        assert!(v.profile("east:p-2").is_none());
    }
}
