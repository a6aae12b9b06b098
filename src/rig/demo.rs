//! The demo workload: the incidents of the runbook and of the scheduler story, played by real sessions on the
//! demo's own cluster, each a named scenario. Workers set `application_name` to their owner token, as the
//! reference deployment does, so that locktop links holders to backends.
//!
//! Everything here writes (it is the workload, not the monitor); the monitor's own connection stays read-only.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::task::JoinSet;

/// A runbook incident the demo can play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Calm profiles renewed well before their TTL.
    Steady,
    /// Several workers fight over one profile: failures, then escalation after the limit.
    Hot,
    /// A hung owner keeps its row locked in an open transaction: the row expires, others queue behind it.
    DeadOwner,
    /// Several profiles contended at the same time (the global alert).
    Several,
    /// A scheduler pair on advisory locks: one holds, the other waits (both key forms).
    Scheduler,
    /// Contention that clears by itself a TTL after the rival gives up (the runbook's self-recovery).
    SelfRecovery,
}

impl Scenario {
    /// All scenarios, as `demo` plays them by default.
    pub const ALL: [Self; 6] = [
        Self::Steady,
        Self::Hot,
        Self::DeadOwner,
        Self::Several,
        Self::Scheduler,
        Self::SelfRecovery,
    ];

    /// The name shown in the header and taken by `--scenario`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Steady => "steady",
            Self::Hot => "hot",
            Self::DeadOwner => "dead-owner",
            Self::Several => "several",
            Self::Scheduler => "scheduler",
            Self::SelfRecovery => "self-recovery",
        }
    }
}

/// What the workers count as the trading service would, for its `/metrics` and `/internal/health`: every
/// acquisition's outcome and latency per profile, and who took each profile last.
#[derive(Debug)]
pub struct ServiceStats {
    ttl: Duration,
    profiles: Mutex<BTreeMap<String, ProfileStats>>,
}

#[derive(Debug, Default)]
struct ProfileStats {
    failures: u64,
    latency_sum: f64,
    latency_count: u64,
    holder: Option<String>,
    /// The current run of failures: when it started, and the latest failure.
    failing_since: Option<Instant>,
    last_failure: Option<Instant>,
}

impl ServiceStats {
    pub fn new(ttl: Duration) -> Arc<Self> {
        Arc::new(Self {
            ttl,
            profiles: Mutex::default(),
        })
    }

    fn record(&self, profile: &str, owner: &str, took: Duration, acquired: bool) {
        let mut all = self
            .profiles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let p = all.entry(profile.to_owned()).or_default();
        p.latency_sum += took.as_secs_f64();
        p.latency_count += 1;
        let now = Instant::now();
        if acquired {
            p.holder = Some(owner.to_owned());
        } else {
            p.failures += 1;
            // A failure after a quiet TTL starts a new run, as the lease table's bookkeeping does.
            if p.last_failure.is_none_or(|at| now - at > self.ttl) {
                p.failing_since = Some(now);
            }
            p.last_failure = Some(now);
        }
    }

    /// The Prometheus text page.
    pub fn metrics(&self) -> String {
        let all = self
            .profiles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = String::from(
            "# HELP entry_lock_contention_total Failed ENTRY lock acquisitions.\n\
             # TYPE entry_lock_contention_total counter\n",
        );
        for (profile, p) in all.iter() {
            let _ = writeln!(
                out,
                "entry_lock_contention_total{{profile_id=\"{profile}\"}} {}",
                p.failures
            );
        }
        out.push_str(
            "# HELP lock_acquisition_latency_seconds Time to try for an ENTRY lock.\n\
             # TYPE lock_acquisition_latency_seconds summary\n",
        );
        for (profile, p) in all.iter() {
            let _ = writeln!(
                out,
                "lock_acquisition_latency_seconds_sum{{profile_id=\"{profile}\"}} {}\n\
                 lock_acquisition_latency_seconds_count{{profile_id=\"{profile}\"}} {}",
                p.latency_sum, p.latency_count
            );
        }
        out.push_str("# TYPE entry_lock_holder_info gauge\n");
        for (profile, p) in all.iter() {
            if let Some(owner) = &p.holder {
                let _ = writeln!(
                    out,
                    "entry_lock_holder_info{{profile_id=\"{profile}\",owner_token=\"{owner}\"}} 1"
                );
            }
        }
        out
    }

    /// The health document: the trading loop is unhealthy while a profile has failed for longer than three
    /// TTLs without a quiet TTL between failures (the runbook's escalation limit).
    pub fn health(&self) -> String {
        let all = self
            .profiles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let stuck = all
            .values()
            .any(|p| match (p.failing_since, p.last_failure) {
                (Some(since), Some(last)) => now - last <= self.ttl && now - since > self.ttl * 3,
                _ => false,
            });
        let failures: u64 = all.values().map(|p| p.failures).sum();
        format!(
            "{{\"lockContentionCount\": {failures}, \"tradingLoopHealthy\": {}, \"reconciliationLoopHealthy\": true}}\n",
            !stuck
        )
    }
}

/// How the workload runs.
#[derive(Debug, Clone)]
pub struct Workload {
    /// URL of the demo database.
    pub url: String,
    pub scenarios: Vec<Scenario>,
    pub ttl: Duration,
    /// Calm profiles of the steady scenario.
    pub profiles: usize,
    /// Contending workers, spread over the contended profiles.
    pub workers: usize,
    /// What the workers count for the service's endpoints.
    pub stats: Arc<ServiceStats>,
}

/// A session on the demo database for setting it up.
pub async fn admin(url: &str) -> Result<PgConnection, sqlx::Error> {
    connect(url, "locktop-demo-setup").await
}

async fn connect(url: &str, owner: &str) -> Result<PgConnection, sqlx::Error> {
    url.parse::<PgConnectOptions>()?
        .application_name(owner)
        .disable_statement_logging()
        .connect()
        .await
}

/// One acquisition attempt, counted in the service's stats as the trading service would count it.
async fn try_acquire(
    conn: &mut PgConnection,
    stats: &ServiceStats,
    (profile, key, owner): (&str, &str, &str),
    ttl: Duration,
) -> bool {
    let started = Instant::now();
    let acquired = sqlx::query_scalar(
        "SELECT fn_try_acquire_entry_lock_row($1, $2, $3, make_interval(secs => $4))",
    )
    .bind(profile)
    .bind(key)
    .bind(owner)
    .bind(ttl.as_secs_f64())
    .fetch_one(conn)
    .await
    .unwrap_or(false);
    stats.record(profile, owner, started.elapsed(), acquired);
    acquired
}

/// Starts every scenario's sessions; they run until the set is dropped or aborted.
pub async fn start(w: &Workload) -> Result<JoinSet<()>, sqlx::Error> {
    let mut set = JoinSet::new();
    for scenario in &w.scenarios {
        match scenario {
            Scenario::Steady => steady(w, &mut set).await?,
            Scenario::Hot => contend(w, &mut set, "hot-1", w.workers.max(2) / 2 + 1).await?,
            Scenario::DeadOwner => dead_owner(w, &mut set).await?,
            Scenario::Several => {
                let per = (w.workers / 4).max(2);
                contend(w, &mut set, "busy-2", per).await?;
                contend(w, &mut set, "busy-3", per).await?;
            }
            Scenario::Scheduler => scheduler(w, &mut set).await?,
            Scenario::SelfRecovery => self_recovery(w, &mut set).await?,
        }
    }
    Ok(set)
}

/// Calm profiles, renewed at a third of the TTL by a few fleet connections (one per worker would be thousands).
async fn steady(w: &Workload, set: &mut JoinSet<()>) -> Result<(), sqlx::Error> {
    let fleets = w.profiles.div_ceil(250).clamp(1, 8);
    for fleet in 0..fleets {
        let mut conn = connect(&w.url, &format!("fleet-{fleet}")).await?;
        let profiles: Vec<usize> = (0..w.profiles).filter(|p| p % fleets == fleet).collect();
        let (ttl, stats) = (w.ttl, Arc::clone(&w.stats));
        set.spawn(async move {
            loop {
                for p in &profiles {
                    let owner = format!("worker-{p}");
                    let profile = format!("profile-{p:04}");
                    try_acquire(&mut conn, &stats, (&profile, "BTC", &owner), ttl).await;
                }
                tokio::time::sleep(ttl / 3).await;
            }
        });
    }
    Ok(())
}

/// `workers` sessions fight over one profile; whoever holds it renews, the others fail and are counted.
async fn contend(
    w: &Workload,
    set: &mut JoinSet<()>,
    profile: &str,
    workers: usize,
) -> Result<(), sqlx::Error> {
    for i in 0..workers {
        let owner = format!("{profile}-w{i}");
        let mut conn = connect(&w.url, &owner).await?;
        let (profile, ttl, stats) = (profile.to_owned(), w.ttl, Arc::clone(&w.stats));
        set.spawn(async move {
            loop {
                try_acquire(&mut conn, &stats, (&profile, "AAPL", &owner), ttl).await;
                tokio::time::sleep(ttl / 10 + Duration::from_millis(37 * i as u64 % 100)).await;
            }
        });
    }
    Ok(())
}

/// The owner takes its row, then hangs inside a transaction holding the row lock: the row expires and is never
/// refreshed, and the rivals queue on the row lock until their lock_timeout, again and again.
async fn dead_owner(w: &Workload, set: &mut JoinSet<()>) -> Result<(), sqlx::Error> {
    let mut owner = connect(&w.url, "dead-1-owner").await?;
    try_acquire(
        &mut owner,
        &w.stats,
        ("dead-1", "MSFT", "dead-1-owner"),
        w.ttl,
    )
    .await;
    sqlx::raw_sql("BEGIN; SELECT 1 FROM entry_locks WHERE profile_id = 'dead-1' FOR UPDATE")
        .execute(&mut owner)
        .await?;
    set.spawn(async move {
        // Hung: the transaction stays open as long as the demo runs.
        let _keep = owner;
        std::future::pending::<()>().await;
    });
    // Two services with lock timeouts of their own. Equal whole-second timeouts would hand the row lock on
    // every 2 s exactly, in step with a 1 s poll started beside them: a monitor would see the same moment of
    // each hand-over (one rival between its timeout and its retry) every other poll, for as long as it ran.
    let timeouts = ["SET lock_timeout = '2s'", "SET lock_timeout = '2300ms'"];
    for (i, timeout) in timeouts.into_iter().enumerate() {
        let name = format!("dead-1-rival{i}");
        let mut conn = connect(&w.url, &name).await?;
        sqlx::raw_sql(timeout).execute(&mut conn).await?;
        let (ttl, stats) = (w.ttl, Arc::clone(&w.stats));
        set.spawn(async move {
            loop {
                try_acquire(&mut conn, &stats, ("dead-1", "MSFT", &name), ttl).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
    Ok(())
}

/// Two schedulers: one holds the nightly job's advisory locks, the other waits for them.
async fn scheduler(w: &Workload, set: &mut JoinSet<()>) -> Result<(), sqlx::Error> {
    let mut leader = connect(&w.url, "scheduler-a").await?;
    sqlx::raw_sql("SELECT pg_advisory_lock(4242); SELECT pg_advisory_lock(7, 1)")
        .execute(&mut leader)
        .await?;
    set.spawn(async move {
        let _keep = leader;
        std::future::pending::<()>().await;
    });
    for (name, sql) in [
        ("scheduler-b", "SELECT pg_advisory_lock(4242)"),
        ("scheduler-c", "SELECT pg_advisory_lock(7, 1)"),
    ] {
        let mut follower = connect(&w.url, name).await?;
        set.spawn(async move {
            let _ = sqlx::raw_sql(sql).execute(&mut follower).await;
            std::future::pending::<()>().await;
        });
    }
    Ok(())
}

/// A rival tries for one TTL, then gives up for three: the episode ends a TTL after its last failure.
async fn self_recovery(w: &Workload, set: &mut JoinSet<()>) -> Result<(), sqlx::Error> {
    let mut holder = connect(&w.url, "blip-1-owner").await?;
    let mut rival = connect(&w.url, "blip-1-rival").await?;
    let ttl = w.ttl;
    let stats = Arc::clone(&w.stats);
    set.spawn(async move {
        loop {
            try_acquire(&mut holder, &stats, ("blip-1", "ETH", "blip-1-owner"), ttl).await;
            tokio::time::sleep(ttl / 3).await;
        }
    });
    let stats = Arc::clone(&w.stats);
    set.spawn(async move {
        loop {
            let until = tokio::time::Instant::now() + ttl;
            while tokio::time::Instant::now() < until {
                try_acquire(&mut rival, &stats, ("blip-1", "ETH", "blip-1-rival"), ttl).await;
                tokio::time::sleep(ttl / 10).await;
            }
            tokio::time::sleep(ttl * 3).await;
        }
    });
    Ok(())
}
