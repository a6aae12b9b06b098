//! Sessions and lock waits: `pg_stat_activity` joined with the *waiting* entries of `pg_locks`.
//!
//! Reading `pg_locks` copies the whole lock table under all 16 partition locks, so it is skipped when no backend
//! waits: with full visibility a one-time filter on `pg_stat_activity.wait_event_type = 'Lock'` gates it (a role
//! without `pg_read_all_stats` sees other roles' wait events as NULL, so then `pg_locks WHERE NOT granted` is
//! read every time). `pg_blocking_pids` — which also takes every partition lock — runs only for waiters.
//!
//! A row-lock wait shows as a `transactionid` ShareLock wait on the holder's xid; the first waiter also holds a
//! granted `tuple` lock naming relation, page and tuple, and later waiters wait on that `tuple` lock. Both are
//! attributed to the row here.

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgConnection;

use super::error::SourceError;
use crate::model::{AdvisoryKey, LockWait, Session, Visibility};

/// Longest query text fetched per session: the screen truncates further; 1 MB queries never cross the link.
pub const QUERY_TEXT_LIMIT: i32 = 2048;

/// The statement, with the gate for roles that see wait events.
fn activity_sql(visibility: Visibility) -> String {
    let gate = match visibility {
        Visibility::Full => {
            "AND EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity s \
                          WHERE s.wait_event_type = 'Lock' AND s.pid <> pg_backend_pid())"
        }
        Visibility::OwnSessionsOnly => "",
    };
    format!(
        "WITH lk AS MATERIALIZED ( \
           SELECT l.pid, l.locktype, l.mode, l.granted, l.database, l.relation, l.page, l.tuple, \
                  l.classid, l.objid, l.objsubid, l.transactionid, l.waitstart \
           FROM pg_catalog.pg_locks l \
           WHERE (NOT l.granted OR l.locktype = 'tuple') AND l.pid <> pg_backend_pid() {gate} \
         ), \
         w AS (SELECT * FROM lk WHERE NOT granted), \
         here AS (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) \
         SELECT now() AS server_now, a.pid, a.application_name::text, a.usename::text, a.client_addr::text, \
                a.state::text, left(a.query, $1) AS query, a.xact_start, a.backend_type::text, \
                w.locktype::text, w.mode::text, \
                CASE WHEN coalesce(w.database, tup.database) = (SELECT oid FROM here) \
                     THEN coalesce(w.relation, tup.relation)::int8 END AS relation_oid, \
                CASE WHEN coalesce(w.database, tup.database) = (SELECT oid FROM here) \
                     THEN coalesce(w.relation, tup.relation)::regclass::text END AS relation, \
                coalesce(w.page, tup.page)::int8 AS page, coalesce(w.tuple, tup.tuple)::int8 AS tuple, \
                w.classid::int8, w.objid::int8, w.objsubid::int2, w.transactionid::text, w.waitstart, \
                CASE WHEN w.pid IS NOT NULL THEN pg_blocking_pids(a.pid) END AS blocked_by \
         FROM pg_catalog.pg_stat_activity a \
         LEFT JOIN w ON w.pid = a.pid \
         LEFT JOIN LATERAL ( \
           SELECT t.database, t.relation, t.page, t.tuple FROM lk t \
           WHERE t.pid = a.pid AND t.granted AND t.locktype = 'tuple' AND w.locktype = 'transactionid' \
           LIMIT 1 \
         ) tup ON true \
         WHERE a.pid <> pg_backend_pid() \
         ORDER BY a.pid"
    )
}

#[derive(sqlx::FromRow)]
struct ActivityRow {
    server_now: DateTime<Utc>,
    pid: i32,
    application_name: Option<String>,
    usename: Option<String>,
    client_addr: Option<String>,
    state: Option<String>,
    query: Option<String>,
    xact_start: Option<DateTime<Utc>>,
    backend_type: Option<String>,
    locktype: Option<String>,
    mode: Option<String>,
    relation_oid: Option<i64>,
    relation: Option<String>,
    page: Option<i64>,
    tuple: Option<i64>,
    classid: Option<i64>,
    objid: Option<i64>,
    objsubid: Option<i16>,
    transactionid: Option<String>,
    waitstart: Option<DateTime<Utc>>,
    blocked_by: Option<Vec<i32>>,
}

/// What the activity statement returns: server time, sessions and waits.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    pub server_now: Option<DateTime<Utc>>,
    pub sessions: Vec<Session>,
    pub waits: Vec<LockWait>,
}

/// The activity statement, prepared once per connection by sqlx's statement cache.
#[derive(Debug, Clone)]
pub struct ActivityQuery {
    sql: String,
}

impl ActivityQuery {
    /// The statement for a role with this visibility.
    pub fn new(visibility: Visibility) -> Self {
        Self {
            sql: activity_sql(visibility),
        }
    }

    /// The SQL text (for tests and the benchmark to `EXPLAIN`).
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Reads sessions and waits in one round trip.
    pub async fn fetch(&self, conn: &mut PgConnection) -> Result<Activity, SourceError> {
        let rows: Vec<ActivityRow> = sqlx::query_as(AssertSqlSafe(self.sql.clone()))
            .bind(QUERY_TEXT_LIMIT)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| SourceError::from_query(&e))?;
        let mut out = Activity {
            server_now: rows.first().map(|r| r.server_now),
            ..Activity::default()
        };
        for r in rows {
            if let (Some(locktype), Some(mode)) = (r.locktype, r.mode) {
                out.waits.push(LockWait {
                    pid: r.pid,
                    blocked_by: r.blocked_by.unwrap_or_default(),
                    advisory_key: (locktype == "advisory")
                        .then(|| AdvisoryKey::decode(r.classid?, r.objid?, r.objsubid?))
                        .flatten(),
                    locktype,
                    mode,
                    relation: r.relation,
                    relation_oid: r.relation_oid.and_then(|o| u32::try_from(o).ok()),
                    tuple: r
                        .page
                        .zip(r.tuple)
                        .and_then(|(p, t)| Some((u32::try_from(p).ok()?, u16::try_from(t).ok()?))),
                    transactionid: r.transactionid,
                    waitstart: r.waitstart,
                    lease_row: None,
                });
            }
            out.sessions.push(Session {
                pid: r.pid,
                application: r.application_name,
                user: r.usename,
                client_addr: r.client_addr,
                state: r.state,
                // What a role without pg_read_all_stats gets instead of another role's query.
                query: r.query.filter(|q| q != "<insufficient privilege>"),
                xact_start: r.xact_start,
                backend_type: r.backend_type,
            });
        }
        Ok(out)
    }
}

/// Whether the monitor's role sees other sessions' details (superuser or `pg_read_all_stats`, which
/// `pg_monitor` includes).
pub async fn visibility(conn: &mut PgConnection) -> Result<Visibility, SourceError> {
    let full: bool = sqlx::query_scalar(
        "SELECT r.rolsuper OR pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') \
         FROM pg_catalog.pg_roles r WHERE r.rolname = current_user",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| SourceError::from_query(&e))?;
    Ok(if full {
        Visibility::Full
    } else {
        Visibility::OwnSessionsOnly
    })
}
