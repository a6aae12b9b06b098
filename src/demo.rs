//! The demo workload: the incidents of the runbook and of the scheduler story, played by real sessions on the
//! demo's own cluster, each a named scenario. Workers set `application_name` to their owner token, as the
//! reference deployment does, so that locktop links holders to backends.
//!
//! Everything here writes (it is the workload, not the monitor); the monitor's own connection stays read-only.

use std::time::Duration;

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

async fn try_acquire(
    conn: &mut PgConnection,
    profile: &str,
    key: &str,
    owner: &str,
    ttl: Duration,
) -> bool {
    sqlx::query_scalar(
        "SELECT fn_try_acquire_entry_lock_row($1, $2, $3, make_interval(secs => $4))",
    )
    .bind(profile)
    .bind(key)
    .bind(owner)
    .bind(ttl.as_secs_f64())
    .fetch_one(conn)
    .await
    .unwrap_or(false)
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
        let ttl = w.ttl;
        set.spawn(async move {
            loop {
                for p in &profiles {
                    let owner = format!("worker-{p}");
                    try_acquire(&mut conn, &format!("profile-{p:04}"), "BTC", &owner, ttl).await;
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
        let (profile, ttl) = (profile.to_owned(), w.ttl);
        set.spawn(async move {
            loop {
                try_acquire(&mut conn, &profile, "AAPL", &owner, ttl).await;
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
    try_acquire(&mut owner, "dead-1", "MSFT", "dead-1-owner", w.ttl).await;
    sqlx::raw_sql("BEGIN; SELECT 1 FROM entry_locks WHERE profile_id = 'dead-1' FOR UPDATE")
        .execute(&mut owner)
        .await?;
    set.spawn(async move {
        // Hung: the transaction stays open as long as the demo runs.
        let _keep = owner;
        std::future::pending::<()>().await;
    });
    for i in 0..2 {
        let name = format!("dead-1-rival{i}");
        let mut conn = connect(&w.url, &name).await?;
        sqlx::raw_sql("SET lock_timeout = '2s'")
            .execute(&mut conn)
            .await?;
        let ttl = w.ttl;
        set.spawn(async move {
            loop {
                try_acquire(&mut conn, "dead-1", "MSFT", &name, ttl).await;
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
    set.spawn(async move {
        loop {
            try_acquire(&mut holder, "blip-1", "ETH", "blip-1-owner", ttl).await;
            tokio::time::sleep(ttl / 3).await;
        }
    });
    set.spawn(async move {
        loop {
            let until = tokio::time::Instant::now() + ttl;
            while tokio::time::Instant::now() < until {
                try_acquire(&mut rival, "blip-1", "ETH", "blip-1-rival", ttl).await;
                tokio::time::sleep(ttl / 10).await;
            }
            tokio::time::sleep(ttl * 3).await;
        }
    });
    Ok(())
}
