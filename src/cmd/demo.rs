//! `locktop demo`: a throwaway PostgreSQL, the reference schema, a workload that plays the runbook's incidents,
//! and the dashboard on it. The cluster is stopped and its files removed on every way out (the cluster's
//! watchdog covers panics and kills too), unless `--keep` hands it over to the user.

use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr};

use super::http as serve;
use crate::cli::{Common, DemoArgs};
use crate::config::{Config, Thresholds};
use crate::model::human_duration;
use crate::rig::cluster::{Cluster, ClusterOptions};
use crate::rig::demo::{self, Scenario, ServiceStats, Workload};
use crate::source::Target;
use crate::source::service::ServiceSettings;

/// The reference schema, loaded into the demo's database.
const SCHEMA: &str = include_str!("../../sql/reference_schema.sql");

/// Serves the workers' `/metrics` and `/internal/health` on 127.0.0.1.
async fn serve_stats(
    stats: Arc<ServiceStats>,
) -> Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
    let handler: serve::Handler = Arc::new(move |path: String| {
        let stats = Arc::clone(&stats);
        Box::pin(async move {
            match path.as_str() {
                "/metrics" => Some((200, "text/plain; version=0.0.4", stats.metrics())),
                "/internal/health" => Some((200, "application/json", stats.health())),
                _ => None,
            }
        })
    });
    serve::start(handler)
        .await
        .wrap_err("cannot serve the demo's service endpoints on 127.0.0.1")
}

/// Says where the demo's cluster is, and what becomes of it.
fn announce(cluster: &Cluster, keep: bool) {
    println!(
        "locktop demo: throwaway PostgreSQL in {} (port {}); {}",
        cluster.root().display(),
        cluster.port(),
        if keep {
            "--keep: it is left running when the demo ends, with how to reach and stop it"
        } else {
            "it is stopped and removed when the demo ends"
        }
    );
}

/// Runs the demo; returns the exit status.
pub async fn run(common: &Common, args: &DemoArgs) -> Result<i32> {
    let display = super::load_config(common.config.as_deref())?.display;
    let face = super::watch::check_terminal(&args.watch, &display)?;
    let thresholds = if args.real_time {
        Thresholds::default()
    } else {
        // A compressed clock, so that a newcomer sees every state within about 20 seconds.
        Thresholds {
            ttl: Duration::from_secs(5),
            escalate_after: Duration::from_secs(15),
            prepared_after: Duration::from_secs(20),
            ..Thresholds::default()
        }
    };
    let mut cluster = tokio::task::spawn_blocking(|| Cluster::start(&ClusterOptions::default()))
        .await?
        .wrap_err("cannot start the demo's PostgreSQL")?;
    announce(&cluster, args.keep);
    let url = cluster.url("postgres");
    let mut admin = demo::admin(&url)
        .await
        .wrap_err("cannot reach the demo's PostgreSQL")?;
    sqlx::raw_sql(SCHEMA)
        .execute(&mut admin)
        .await
        .wrap_err("loading the reference schema")?;

    let scenarios = if args.scenario.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenario.clone()
    };
    let stats = ServiceStats::new(thresholds.ttl);
    let workload = Workload {
        url: url.clone(),
        scenarios: scenarios.clone(),
        ttl: thresholds.ttl,
        profiles: args.profiles,
        workers: args.workers,
        stats: Arc::clone(&stats),
    };
    let mut sessions = demo::start(&workload)
        .await
        .wrap_err("starting the demo workload")?;

    // The workers' service endpoints, and the dashboard pointed at them.
    let (service_addr, server) = serve_stats(stats).await?;
    let scraper = super::scraper(
        ServiceSettings {
            metrics: vec![format!("http://{service_addr}/metrics")],
            health: vec![format!("http://{service_addr}/internal/health")],
        },
        common.interval,
    )?;

    let names: Vec<&str> = scenarios.iter().map(|s| s.name()).collect();
    let clock = if args.real_time {
        "real-time clock"
    } else {
        "compressed clock (--real-time for 30s/1m30s)"
    };
    let notes = vec![format!(
        "demo: {} · {clock}: TTL {}, escalate after {} · service endpoints on http://{service_addr}",
        names.join(", "),
        human_duration(chrono::Duration::from_std(thresholds.ttl).unwrap_or_default()),
        human_duration(chrono::Duration::from_std(thresholds.escalate_after).unwrap_or_default()),
    )];
    let config = Config {
        thresholds,
        ..Config::default()
    };
    let target = Target::new(Some(&url))?;
    let result = match super::watch::open_recorder(
        &args.watch,
        target.description(),
        &config,
        common.interval,
    ) {
        Ok(recorder) => {
            let targets = [("demo".to_owned(), target)];
            let extras = super::watch::Extras {
                recorder,
                scraper,
                never_ask: true,
                hooks: super::hooks::Hooks::from_args(
                    &args.watch.hooks,
                    &super::describe(&targets),
                ),
            };
            super::watch::dashboard(&targets, &config, common.interval, &face, notes, extras).await
        }
        Err(e) => Err(e),
    };

    server.abort();
    sessions.abort_all();
    while sessions.join_next().await.is_some() {}
    drop(admin);
    if args.keep {
        let stop = cluster.keep();
        println!("locktop demo: kept the cluster: psql '{url}'\nstop it with: {stop}");
    } else {
        cluster.stop();
    }
    result
}
