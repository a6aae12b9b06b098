//! Sessions and lock waits of the monitored database (the one the DSN names): other databases' sessions
//! cannot hold its lease rows or its advisory locks, so they are left out.
//!
//! Reading `pg_locks` copies the whole lock table under all 16 lock-manager partition locks (about 12 ms at
//! 10,000 locks here), so it is read as rarely as the truth allows:
//! - every poll reads `pg_stat_activity`, and for backends whose `wait_event_type` is `Lock`, their blockers
//!   with `pg_blocking_pids` (cheap whatever the lock count);
//! - `pg_locks` is read only when a waiter appears that is not known yet — a new (pid, wait event, query start,
//!   transaction start) — and at least every [`DETAIL_REFRESH`] while anyone waits, as a backstop; the details
//!   of a wait (mode, lock type, relation, advisory key, `waitstart`) do not change while it keeps waiting.
//! - A role without `pg_read_all_stats` sees other roles' wait events as NULL, so then `pg_locks WHERE NOT
//!   granted` is read every poll, with `pg_blocking_pids` for its waiters.
//!
//! A row-lock wait shows as a `transactionid` ShareLock wait on the holder's xid; the first waiter also holds a
//! granted `tuple` lock naming relation, page and tuple, and later waiters wait on that `tuple` lock. Both are
//! attributed to the row here.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnection, PgRow};

use super::connect::SessionLimits;
use super::error::SourceError;
use super::simple;
use super::text::{Lossy, text};
use crate::model::{AdvisoryKey, LockWait, Session, Visibility};

/// Longest query text fetched per session: the screen truncates further; 1 MB queries never cross the link.
pub const QUERY_TEXT_LIMIT: i32 = 2048;

/// How long known wait details are trusted before `pg_locks` is read again while anyone waits.
pub const DETAIL_REFRESH: Duration = Duration::from_secs(5);

const SESSIONS_SQL: &str = "\
    SELECT now() AS server_now, a.pid, a.application_name::text, a.usename::text, a.client_addr::text, \
           a.state::text, left(a.query, $1::int4) AS query, a.xact_start, a.query_start, a.backend_type::text, \
           a.wait_event_type::text, a.wait_event::text, \
           CASE WHEN a.wait_event_type = 'Lock' THEN pg_blocking_pids(a.pid) END AS blocked_by \
    FROM pg_catalog.pg_stat_activity a \
    WHERE a.pid <> pg_backend_pid() AND a.datname = current_database() \
    ORDER BY a.pid";

/// The waiting locks, with the tuple a `transactionid` waiter holds. `$1`: whether to compute blockers here
/// (for a role that cannot see wait events in `pg_stat_activity`).
const WAITS_SQL: &str = "\
    WITH lk AS MATERIALIZED ( \
      SELECT l.pid, l.locktype, l.mode, l.granted, l.database, l.relation, l.page, l.tuple, \
             l.classid, l.objid, l.objsubid, l.transactionid, l.waitstart \
      FROM pg_catalog.pg_locks l \
      WHERE (NOT l.granted OR l.locktype = 'tuple') AND l.pid <> pg_backend_pid() \
    ), \
    here AS (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) \
    SELECT w.pid, w.locktype::text, w.mode::text, \
           CASE WHEN coalesce(w.database, tup.database) = (SELECT oid FROM here) \
                THEN coalesce(w.relation, tup.relation)::int8 END AS relation_oid, \
           CASE WHEN coalesce(w.database, tup.database) = (SELECT oid FROM here) \
                THEN coalesce(w.relation, tup.relation)::regclass::text END AS relation, \
           coalesce(w.page, tup.page)::int8 AS page, coalesce(w.tuple, tup.tuple)::int8 AS tuple, \
           w.classid::int8, w.objid::int8, w.objsubid::int2, w.transactionid::text, w.waitstart, \
           CASE WHEN $1 THEN pg_blocking_pids(w.pid) END AS blocked_by \
    FROM lk w \
    LEFT JOIN LATERAL ( \
      SELECT t.database, t.relation, t.page, t.tuple FROM lk t \
      WHERE t.pid = w.pid AND t.granted AND t.locktype = 'tuple' AND w.locktype = 'transactionid' \
      LIMIT 1 \
    ) tup ON true \
    WHERE NOT w.granted \
    ORDER BY w.pid";

#[derive(sqlx::FromRow)]
struct SessionRow {
    server_now: DateTime<Utc>,
    pid: i32,
    application_name: Option<Lossy>,
    usename: Option<Lossy>,
    client_addr: Option<String>,
    state: Option<Lossy>,
    query: Option<Lossy>,
    xact_start: Option<DateTime<Utc>>,
    query_start: Option<DateTime<Utc>>,
    backend_type: Option<String>,
    wait_event_type: Option<String>,
    wait_event: Option<String>,
    blocked_by: Option<Vec<i32>>,
}

#[derive(sqlx::FromRow)]
struct WaitRow {
    pid: i32,
    locktype: String,
    mode: String,
    relation_oid: Option<i64>,
    relation: Option<Lossy>,
    page: Option<i64>,
    tuple: Option<i64>,
    classid: Option<i64>,
    objid: Option<i64>,
    objsubid: Option<i16>,
    transactionid: Option<String>,
    waitstart: Option<DateTime<Utc>>,
    blocked_by: Option<Vec<i32>>,
}

impl WaitRow {
    fn into_wait(self) -> LockWait {
        LockWait {
            pid: self.pid,
            blocked_by: self.blocked_by.unwrap_or_default(),
            advisory_key: (self.locktype == "advisory")
                .then(|| AdvisoryKey::decode(self.classid?, self.objid?, self.objsubid?))
                .flatten(),
            locktype: self.locktype,
            mode: self.mode,
            relation: text(self.relation),
            relation_oid: self.relation_oid.and_then(|o| u32::try_from(o).ok()),
            tuple: self
                .page
                .zip(self.tuple)
                .and_then(|(p, t)| Some((u32::try_from(p).ok()?, u16::try_from(t).ok()?))),
            transactionid: self.transactionid,
            waitstart: self.waitstart,
            lease_row: None,
        }
    }
}

/// What identifies one wait of a backend: while these stay the same, so do the wait's details.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WaitIdentity {
    wait_event: Option<String>,
    query_start: Option<DateTime<Utc>>,
    xact_start: Option<DateTime<Utc>>,
}

/// Sessions and waits of one poll.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    pub server_now: Option<DateTime<Utc>>,
    pub sessions: Vec<Session>,
    pub waits: Vec<LockWait>,
    /// Waits whose details are new this poll (their lease rows still need naming).
    pub new_waits: Vec<i32>,
}

/// Reads sessions and waits, remembering wait details between polls.
#[derive(Debug)]
pub struct ActivityReader {
    visibility: Visibility,
    known: HashMap<i32, (WaitIdentity, LockWait)>,
    read_at: Option<Instant>,
    pg_locks_reads: u64,
}

impl ActivityReader {
    /// A reader for a role with this visibility.
    pub fn new(visibility: Visibility) -> Self {
        Self {
            visibility,
            known: HashMap::new(),
            read_at: None,
            pg_locks_reads: 0,
        }
    }

    /// How many times `pg_locks` was read (for tests and the benchmark).
    pub fn pg_locks_reads(&self) -> u64 {
        self.pg_locks_reads
    }

    /// Names the lease row of a known wait, so it is not looked up again while the wait lasts.
    pub fn remember_lease_row(&mut self, pid: i32, row: (Option<String>, Option<String>)) {
        if let Some((_, wait)) = self.known.get_mut(&pid) {
            wait.lease_row = Some(row);
        }
    }

    /// Reads sessions, and waits with their details (from memory where the wait is known).
    pub async fn fetch(&mut self, conn: &mut PgConnection) -> Result<Activity, SourceError> {
        let rows: Vec<SessionRow> = sqlx::query_as(SESSIONS_SQL)
            .bind(QUERY_TEXT_LIMIT)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| SourceError::from_query(&e))?;
        let (mut out, waiting) = sessions_from(rows);
        match self.visibility {
            Visibility::OwnSessionsOnly => {
                // Wait events of other roles are hidden: pg_locks is the only source, every poll.
                let waits = self.read_waits(conn, true).await?;
                own_waits(waits, &mut out);
            }
            Visibility::Full => {
                let details = if self.needs_details(&waiting) {
                    Some(self.read_waits(conn, false).await?)
                } else {
                    None
                };
                self.merge(waiting, details, &mut out);
            }
        }
        Ok(out)
    }

    /// The statements of one poll's activity behind a transaction-mode pooler, where a poll is one round
    /// trip: the sessions, and the waits whenever anyone in this database waits for a lock (details cannot
    /// be taken from memory when the read that would tell which are new is in the same round trip).
    pub fn pooled_statements(&self) -> [String; 2] {
        let sessions = simple::inline(SESSIONS_SQL, &[simple::Param::Int(QUERY_TEXT_LIMIT.into())]);
        let own = self.visibility == Visibility::OwnSessionsOnly;
        let waits = simple::inline(WAITS_SQL, &[simple::Param::Bool(own)]);
        let waits = if own {
            waits
        } else {
            // A one-time filter: pg_locks is not read at all while nobody waits.
            format!(
                "SELECT * FROM ({waits}) w WHERE EXISTS (SELECT FROM pg_catalog.pg_stat_activity a \
                 WHERE a.wait_event_type = 'Lock' AND a.datname = current_database() \
                   AND a.pid <> pg_backend_pid())"
            )
        };
        [sessions, waits]
    }

    /// The activity from the results of [`Self::pooled_statements`].
    pub fn pooled_from(
        &mut self,
        sessions: &[PgRow],
        waits: &[PgRow],
    ) -> Result<Activity, SourceError> {
        let (mut out, waiting) = sessions_from(simple::decode(sessions)?);
        let waits: Vec<LockWait> = simple::decode::<WaitRow>(waits)?
            .into_iter()
            .map(WaitRow::into_wait)
            .collect();
        if !waits.is_empty() {
            self.pg_locks_reads += 1;
            self.read_at = Some(Instant::now());
        }
        match self.visibility {
            Visibility::OwnSessionsOnly => own_waits(waits, &mut out),
            Visibility::Full => {
                self.needs_details(&waiting);
                self.merge(waiting, Some(waits), &mut out);
            }
        }
        Ok(out)
    }

    /// Forgets waits that ended; whether `pg_locks` must be read for the details of this poll's waiters.
    fn needs_details(&mut self, waiting: &[Waiting]) -> bool {
        self.known
            .retain(|pid, (identity, _)| waiting.iter().any(|(p, i, _)| p == pid && i == identity));
        if waiting.is_empty() {
            self.read_at = None;
            return false;
        }
        let unknown = waiting
            .iter()
            .any(|(pid, _, _)| !self.known.contains_key(pid));
        unknown || self.read_at.is_none_or(|at| at.elapsed() >= DETAIL_REFRESH)
    }

    /// This poll's waits: the known details of each waiter, updated from `details` when they were read.
    fn merge(&mut self, waiting: Vec<Waiting>, details: Option<Vec<LockWait>>, out: &mut Activity) {
        if let Some(details) = details {
            let details: HashMap<i32, LockWait> = details.into_iter().map(|w| (w.pid, w)).collect();
            for (pid, identity, _) in &waiting {
                if let Some(mut wait) = details.get(pid).cloned() {
                    match self.known.get(pid) {
                        Some((_, old)) if same_lock(old, &wait) => {
                            wait.lease_row.clone_from(&old.lease_row);
                        }
                        _ => out.new_waits.push(*pid),
                    }
                    self.known.insert(*pid, (identity.clone(), wait));
                }
            }
        }
        for (pid, _, blocked_by) in waiting {
            // A backend that got its lock between the two reads has no details: it no longer waits.
            if let Some((_, wait)) = self.known.get(&pid) {
                out.waits.push(LockWait {
                    blocked_by,
                    ..wait.clone()
                });
            }
        }
    }

    async fn read_waits(
        &mut self,
        conn: &mut PgConnection,
        with_blockers: bool,
    ) -> Result<Vec<LockWait>, SourceError> {
        let rows: Vec<WaitRow> = sqlx::query_as(WAITS_SQL)
            .bind(with_blockers)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| SourceError::from_query(&e))?;
        self.pg_locks_reads += 1;
        self.read_at = Some(Instant::now());
        Ok(rows.into_iter().map(WaitRow::into_wait).collect())
    }
}

/// A backend waiting for a lock, as `pg_stat_activity` shows it: pid, what identifies the wait, blockers.
type Waiting = (i32, WaitIdentity, Vec<i32>);

/// The sessions of a poll, and which of them wait for a lock.
fn sessions_from(rows: Vec<SessionRow>) -> (Activity, Vec<Waiting>) {
    let mut out = Activity {
        server_now: rows.first().map(|r| r.server_now),
        ..Activity::default()
    };
    let mut waiting: Vec<Waiting> = Vec::new();
    for r in rows {
        if r.wait_event_type.as_deref() == Some("Lock") {
            let identity = WaitIdentity {
                wait_event: r.wait_event,
                query_start: r.query_start,
                xact_start: r.xact_start,
            };
            waiting.push((r.pid, identity, r.blocked_by.unwrap_or_default()));
        }
        out.sessions.push(Session {
            pid: r.pid,
            application: text(r.application_name),
            user: text(r.usename),
            client_addr: r.client_addr,
            state: text(r.state),
            // What a role without pg_read_all_stats gets instead of another role's query.
            query: text(r.query).filter(|q| q != "<insufficient privilege>"),
            xact_start: r.xact_start,
            backend_type: r.backend_type,
        });
    }
    (out, waiting)
}

/// The waits of a role that sees only its own sessions' wait events: every wait read from `pg_locks` is new.
fn own_waits(mut waits: Vec<LockWait>, out: &mut Activity) {
    // pg_locks lists every database's waits; the sessions read are this database's.
    waits.retain(|w| out.sessions.iter().any(|s| s.pid == w.pid));
    out.new_waits = waits.iter().map(|w| w.pid).collect();
    out.waits = waits;
}

fn same_lock(a: &LockWait, b: &LockWait) -> bool {
    a.locktype == b.locktype
        && a.mode == b.mode
        && a.relation_oid == b.relation_oid
        && a.tuple == b.tuple
        && a.advisory_key == b.advisory_key
        && a.transactionid == b.transactionid
}

/// Whether the monitor's role sees other sessions' details (superuser or `pg_read_all_stats`, which
/// `pg_monitor` includes).
pub async fn visibility(
    conn: &mut PgConnection,
    pooled: Option<SessionLimits>,
) -> Result<Visibility, SourceError> {
    let rows = simple::fetch(
        conn,
        pooled,
        "SELECT r.rolsuper OR pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') \
         FROM pg_catalog.pg_roles r WHERE r.rolname = current_user",
        &[],
    )
    .await?;
    let full = simple::decode::<(bool,)>(&rows)?
        .first()
        .is_some_and(|(full,)| *full);
    Ok(if full {
        Visibility::Full
    } else {
        Visibility::OwnSessionsOnly
    })
}
