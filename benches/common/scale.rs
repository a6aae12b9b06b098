//! The large incident scene of issue 17, reproducible: 50,000 profiles × 4 symbols = 200,000 lease rows with
//! 30 s TTLs, a tenth of them renewed every second (about 20,000 row updates a second), 500 dead owners (an
//! expired row nobody renews), 1,000 profiles contended since 3 minutes before the start (a rival fails on
//! each at least once a TTL), 20,000 advisory locks held by one session, and 50 sessions waiting on row locks.
//!
//! The profiles are `p00000` … `p49999`; the dead owners are `p00000`–`p00499` (their `S0` row), the waited-on
//! rows `p00500`–`p00549` (`S0`, held by one open transaction and kept unexpired), the contended profiles
//! `p01000`–`p01999` (`S0`). The monitor logs in as `locktop_monitor` (a member of `pg_monitor`), so that
//! `pg_stat_statements` tells its cost on the server apart from the workload's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::{connect, exec};

pub const PROFILES: usize = 50_000;
pub const ROWS: usize = PROFILES * 4;
/// Profiles renewed per 100 ms tick: 500 × 4 rows × 10 ticks = 20,000 rows a second.
const RENEW_PER_TICK: usize = 500;
const CONTENDED: std::ops::Range<usize> = 1_000..2_000;
const WAITED: std::ops::Range<usize> = 500..550;

/// The server settings the scene needs: room for 20,000 advisory locks in the shared lock table, and
/// `pg_stat_statements` to measure the monitor's own cost.
pub fn settings() -> Vec<(String, String)> {
    vec![
        ("max_locks_per_transaction".into(), "512".into()),
        (
            "shared_preload_libraries".into(),
            "pg_stat_statements".into(),
        ),
        ("pg_stat_statements.track".into(), "top".into()),
    ]
}

fn profile(p: usize) -> String {
    format!("p{p:05}")
}

/// The live workload; dropping it stops its sessions.
#[derive(Debug)]
pub struct Scene {
    pub tasks: tokio::task::JoinSet<()>,
    /// Rows renewed so far (the churn's actual rate is printed by the benches).
    pub renewed: Arc<AtomicU64>,
    /// The monitor's URL (role `locktop_monitor`).
    pub monitor_url: String,
}

/// Loads the 200,000 rows and starts the workload. `url` is a superuser's.
pub async fn start(url: &str) -> Scene {
    let mut admin = connect(url).await;
    load(&mut admin).await;
    let mut tasks = tokio::task::JoinSet::new();
    let renewed = Arc::new(AtomicU64::new(0));
    renew(&mut tasks, url, Arc::clone(&renewed));
    rival(&mut tasks, url);
    advisory(&mut tasks, url);
    waiters(&mut tasks, url).await;
    loop {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
        )
        .fetch_one(&mut admin)
        .await
        .expect("waiters");
        if n >= WAITED.len() as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let monitor_url = url.replacen("postgres://postgres@", "postgres://locktop_monitor@", 1);
    Scene {
        tasks,
        renewed,
        monitor_url,
    }
}

/// The schema, the monitor's role and the 200,000 rows.
async fn load(admin: &mut sqlx::PgConnection) {
    let admin = &mut *admin;
    exec(admin, include_str!("../../sql/reference_schema.sql")).await;
    exec(
        admin,
        &format!(
            "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; \
             DO $$ BEGIN CREATE ROLE locktop_monitor LOGIN IN ROLE pg_monitor; \
             EXCEPTION WHEN duplicate_object THEN NULL; END $$; \
             GRANT SELECT ON entry_locks TO locktop_monitor; \
             TRUNCATE entry_locks; \
             INSERT INTO entry_locks (profile_id, symbol, owner_token, acquired_at, expires_at, \
                                      contention_count, contended_since, last_contended_at) \
             SELECT 'p' || lpad(p::text, 5, '0'), 'S' || s, \
                    CASE WHEN p < 500 AND s = 0 THEN 'dead-' ELSE 'worker-' END || p || '-' || s, \
                    now() - interval '10 min', \
                    CASE WHEN p < 500 AND s = 0 THEN now() - interval '40 s' \
                         WHEN p >= {w0} AND p < {w1} AND s = 0 THEN now() + interval '1 day' \
                         ELSE now() + (random() * 30) * interval '1 s' END, \
                    CASE WHEN p >= {c0} AND p < {c1} AND s = 0 THEN 50 ELSE 0 END, \
                    CASE WHEN p >= {c0} AND p < {c1} AND s = 0 THEN now() - interval '3 min' END, \
                    CASE WHEN p >= {c0} AND p < {c1} AND s = 0 THEN now() END \
             FROM generate_series(0, {last}) p, generate_series(0, 3) s",
            w0 = WAITED.start,
            w1 = WAITED.end,
            c0 = CONTENDED.start,
            c1 = CONTENDED.end,
            last = PROFILES - 1,
        ),
    )
    .await;
    exec(admin, "VACUUM ANALYZE entry_locks").await;
}

/// Renewal: the owners of a rolling tenth of the profiles extend their rows every second.
fn renew(tasks: &mut tokio::task::JoinSet<()>, url: &str, count: Arc<AtomicU64>) {
    let u = url.to_owned();
    tasks.spawn(async move {
        let mut c = connect(&u).await;
        let mut next = 0;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (from, to) = (next, (next + RENEW_PER_TICK).min(PROFILES));
            next = if to == PROFILES { 0 } else { to };
            let done = sqlx::query(
                "UPDATE entry_locks SET expires_at = now() + interval '30 s' \
                 WHERE profile_id >= $1 AND profile_id < $2 AND owner_token LIKE 'worker-%' \
                   AND NOT (profile_id >= $3 AND profile_id < $4 AND symbol = 'S0')",
            )
            .bind(profile(from))
            .bind(profile(to))
            .bind(profile(WAITED.start))
            .bind(profile(WAITED.end))
            .execute(&mut c)
            .await
            .expect("renew");
            count.fetch_add(done.rows_affected(), Ordering::Relaxed);
        }
    });
}

/// The rival: each contended profile's S0 row sees a failed acquisition every 10 s.
fn rival(tasks: &mut tokio::task::JoinSet<()>, url: &str) {
    let u = url.to_owned();
    tasks.spawn(async move {
        let mut c = connect(&u).await;
        let mut next = CONTENDED.start;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let batch: Vec<String> = (next..next + 100).map(profile).collect();
            next = if next + 100 >= CONTENDED.end {
                CONTENDED.start
            } else {
                next + 100
            };
            sqlx::query(
                "SELECT count(*) FILTER (WHERE NOT fn_try_acquire_entry_lock_row(p, 'S0', 'rival')) \
                 FROM unnest($1::text[]) p",
            )
            .bind(batch)
            .execute(&mut c)
            .await
            .expect("rival");
        }
    });
}

/// 20,000 advisory locks held by one session.
fn advisory(tasks: &mut tokio::task::JoinSet<()>, url: &str) {
    let u = url.to_owned();
    tasks.spawn(async move {
        let mut c = connect(&u).await;
        exec(
            &mut c,
            "SELECT count(pg_advisory_lock(k)) FROM generate_series(1, 20000) k",
        )
        .await;
        std::future::pending::<()>().await;
        drop(c);
    });
}

/// 50 row waiters behind one open transaction.
async fn waiters(tasks: &mut tokio::task::JoinSet<()>, url: &str) {
    let mut holder = connect(url).await;
    exec(
        &mut holder,
        &format!(
            "BEGIN; SELECT count(*) FROM (SELECT 1 FROM entry_locks \
             WHERE profile_id >= '{}' AND profile_id < '{}' AND symbol = 'S0' FOR UPDATE) l",
            profile(WAITED.start),
            profile(WAITED.end)
        ),
    )
    .await;
    tasks.spawn(async move {
        std::future::pending::<()>().await;
        drop(holder);
    });
    for p in WAITED {
        let u = url.to_owned();
        tasks.spawn(async move {
            let mut c = connect(&u).await;
            exec(
                &mut c,
                &format!(
                    "UPDATE entry_locks SET last_contended_at = now() \
                     WHERE profile_id = '{}' AND symbol = 'S0'",
                    profile(p)
                ),
            )
            .await;
            std::future::pending::<()>().await;
        });
    }
}

/// The monitor role's total execution time in `pg_stat_statements`, in ms (its cost on the server).
pub async fn monitor_server_ms(url: &str) -> f64 {
    let mut c = connect(url).await;
    let ms: Option<f64> = sqlx::query_scalar(
        "SELECT sum(total_exec_time + total_plan_time) FROM pg_stat_statements s \
         JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = 'locktop_monitor'",
    )
    .fetch_one(&mut c)
    .await
    .expect("pg_stat_statements");
    ms.unwrap_or(0.0)
}

/// The monitor role's statements by total time: calls, mean ms and the statement's first words.
pub async fn monitor_statements(url: &str) -> Vec<(i64, f64, String)> {
    let mut c = connect(url).await;
    sqlx::query_as(
        "SELECT calls, mean_exec_time, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) \
         FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid \
         WHERE r.rolname = 'locktop_monitor' ORDER BY total_exec_time DESC LIMIT 6",
    )
    .fetch_all(&mut c)
    .await
    .expect("pg_stat_statements")
}
