//! `locktop serve`: the dashboard's pollers and runbook rules without a screen, as Prometheus metrics at
//! `/metrics` and a health check at `/healthz`, with `--on-alert` as on the dashboard.
//!
//! The address is taken first (an address in use is a one-line error before anything connects), then the
//! targets are connected and checked as the dashboard does. Each poll is evaluated once and its page rendered
//! once; a scrape only copies it. SIGINT and SIGTERM end it with status 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use color_eyre::eyre::{Result, eyre};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use super::hooks::{HookCounts, Hooks, follow};
use super::http;
use crate::cli::{Common, Connection, ServeArgs};
use crate::model::exposition;
use crate::model::watcher::{PollStats, Watcher};

/// What a scrape answers with: the latest poll's page, and the poll counters for the health check.
#[derive(Debug, Clone, Default)]
struct Served {
    metrics: String,
    stats: PollStats,
}

/// Runs until SIGINT or SIGTERM; returns the exit status.
pub async fn run(common: &Common, connection: &Connection, args: &ServeArgs) -> Result<i32> {
    let config = super::load_config(common.config.as_deref())?;
    let listener = listen(&args.listen).await?;
    let addr = listener.local_addr()?;
    let targets = super::ask_passwords(super::targets(connection, &config)?, connection)?;
    let target = super::describe(&targets);
    let hooks = Hooks::from_args(&args.hooks, &target);
    let pollers =
        super::watch::start_pollers(&targets, &config, common.interval, connection.no_password)
            .await?;
    let mut tasks = pollers.tasks;

    let counts = hooks.as_ref().map(|h| Arc::clone(&h.counts));
    let changes = hooks.map(|hooks| {
        let (tx, rx) = mpsc::unbounded_channel();
        // The dashboard's notes line is not here: failures are logged and counted.
        let (failed, _) = watch::channel(None);
        tasks.push(tokio::spawn(hooks.run_all(rx, failed)));
        tx
    });
    let (page_tx, page_rx) = watch::channel(Arc::new(Served::default()));
    let top = args.top_profiles;
    tasks.push(tokio::spawn(follow(
        pollers.rx.clone(),
        Watcher::new(config.thresholds.rules()),
        changes,
        move |_, watcher| {
            page_tx.send_replace(Arc::new(Served {
                metrics: exposition::render(watcher, top),
                stats: watcher.stats().clone(),
            }));
            true
        },
    )));
    let stale_after = (common.interval * 3).max(Duration::from_secs(5));
    tasks.push(tokio::spawn(http::answer(
        listener,
        handler(page_rx, counts, stale_after),
    )));
    tracing::info!(%addr, target, "serving /metrics and /healthz");
    eprintln!("locktop serve: http://{addr}/metrics and /healthz for {target}");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping on a signal");
    for task in &tasks {
        task.abort();
    }
    drop(pollers.control);
    Ok(0)
}

/// Takes the address: a clear line for one in use, refused or not an address.
async fn listen(addr: &str) -> Result<TcpListener> {
    let parsed: Option<SocketAddr> = addr.parse().ok();
    let target = parsed.map_or_else(|| addr.to_owned(), |a| a.to_string());
    TcpListener::bind(&target).await.map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                "the address is in use (another locktop serve, or another exporter?); choose another port with --listen"
                    .to_owned()
            }
            std::io::ErrorKind::PermissionDenied => {
                "permission denied (ports below 1024 need privileges); choose a port above 1024 with --listen"
                    .to_owned()
            }
            std::io::ErrorKind::AddrNotAvailable => {
                "no interface of this host has that address; use 127.0.0.1:PORT or 0.0.0.0:PORT with --listen"
                    .to_owned()
            }
            _ if parsed.is_none() => format!(
                "{e}; give --listen as HOST:PORT, like {}",
                crate::cli::DEFAULT_LISTEN
            ),
            _ => format!("{e}; check --listen"),
        };
        eyre!("cannot listen on {addr}: {why}")
    })
}

/// The pages: `/metrics` (with the hooks' counters), `/healthz`, and a short index at `/`.
fn handler(
    page: watch::Receiver<Arc<Served>>,
    counts: Option<Arc<HookCounts>>,
    stale_after: Duration,
) -> http::Handler {
    Arc::new(move |path: String| {
        let served = Arc::clone(&page.borrow());
        let counts = counts.clone();
        Box::pin(async move {
            match path.as_str() {
                "/metrics" => {
                    let mut text = served.metrics.clone();
                    if let Some(c) = counts {
                        text.push_str(&exposition::hook_counters(
                            c.runs.load(Ordering::Relaxed),
                            c.failures.load(Ordering::Relaxed),
                        ));
                    }
                    Some((200, "text/plain; version=0.0.4; charset=utf-8", text))
                }
                "/healthz" => {
                    let (status, body) =
                        match served.stats.health(chrono::Utc::now(), stale_after) {
                            Ok(ok) => (200, ok),
                            Err(why) => (503, why),
                        };
                    Some((status, "text/plain; charset=utf-8", format!("{body}\n")))
                }
                "/" => Some((
                    200,
                    "text/plain; charset=utf-8",
                    "locktop serve: /metrics (Prometheus text), /healthz (200 while polls succeed)\n"
                        .to_owned(),
                )),
                _ => None,
            }
        })
    })
}
