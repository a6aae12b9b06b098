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
//!   The dashboard reads the backstop between polls ([`ActivityReader::refresh`]): a wait that goes on is on
//!   screen already, and a poll that also copied the lock table would be one of the slowest.
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

use super::error::SourceError;
use super::read::{self, Batch, Ran, Read, Slot, Statement};
use super::simple::{self, Param};
use super::text::{Lossy, text};
use crate::model::snapshot::{PreparedXact, Recovery, RowName};
use crate::model::{AdvisoryKey, LockWait, Session, Visibility};

/// Longest query text fetched per session: the screen truncates further; 1 MB queries never cross the link.
pub const QUERY_TEXT_LIMIT: i32 = 2048;

/// How long known wait details are trusted before `pg_locks` is read again while anyone waits.
pub const DETAIL_REFRESH: Duration = Duration::from_secs(5);

/// The server's clock and recovery state (one row even when no other session exists), with the sessions of
/// this database. `$1`: the longest query text fetched.
const SESSIONS_SQL: &str = "\
    WITH f AS ( \
      SELECT now() AS server_now, pg_catalog.pg_is_in_recovery() AS in_recovery, \
             CASE WHEN pg_catalog.pg_is_in_recovery() \
                  THEN extract(epoch FROM now() - pg_catalog.pg_last_xact_replay_timestamp())::float8 \
             END AS replay_lag_s, \
             (SELECT d.deadlocks FROM pg_catalog.pg_stat_database d \
              WHERE d.datname = current_database())::int8 AS deadlocks \
    ) \
    SELECT f.server_now, f.in_recovery, f.replay_lag_s, f.deadlocks, s.* FROM f LEFT JOIN LATERAL ( \
      SELECT a.pid, a.application_name::text, a.usename::text, a.client_addr::text, a.state::text, \
             left(a.query, $1::int4) AS query, a.xact_start, a.query_start, a.state_change, a.backend_type::text, \
             a.wait_event_type::text, a.wait_event::text, \
             CASE WHEN a.wait_event_type = 'Lock' THEN pg_catalog.pg_blocking_pids(a.pid) END AS blocked_by, \
             nullif(a.leader_pid, a.pid) AS leader_pid \
      FROM pg_catalog.pg_stat_activity a \
      WHERE a.pid <> pg_catalog.pg_backend_pid() AND a.datname = current_database() \
    ) s ON true \
    ORDER BY s.pid";

/// The waiting locks, with the tuple a `transactionid` waiter holds, and whether the wait is on a row of the
/// lease table: named by that tuple, or (for a waiter that holds no tuple lock, as the upsert's unique check
/// and a conflicting INSERT do) by the waiter's own lock on the lease table. `$1`: whether to compute blockers
/// here (for a role that cannot see wait events in `pg_stat_activity`).
///
/// `{lease}` is the lease table's oid; `{waitstart}` and `{approx}` differ by server version (PostgreSQL 13
/// has no `pg_locks.waitstart`: the waiter's query start stands in, and the figure is marked approximate).
const WAITS_SQL: &str = "\
    WITH lk AS MATERIALIZED ( \
      SELECT l.pid, l.locktype, l.mode, l.granted, l.database, l.relation, l.page, l.tuple, \
             l.classid, l.objid, l.objsubid, l.transactionid, {waitstart} AS waitstart \
      FROM pg_catalog.pg_locks l \
      WHERE (NOT l.granted OR l.locktype = 'tuple' OR (l.locktype = 'relation' AND l.relation = {lease})) \
        AND l.pid <> pg_catalog.pg_backend_pid() \
    ), \
    here AS (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) \
    SELECT w.pid, w.locktype::text, w.mode::text, \
           CASE WHEN coalesce(w.database, tup.database) = (SELECT oid FROM here) \
                THEN coalesce(w.relation, tup.relation)::int8 END AS relation_oid, \
           CASE WHEN coalesce(w.database, tup.database) = (SELECT oid FROM here) \
                THEN coalesce(w.relation, tup.relation)::regclass::text END AS relation, \
           coalesce(w.page, tup.page)::int8 AS page, coalesce(w.tuple, tup.tuple)::int8 AS tuple, \
           w.classid::int8, w.objid::int8, w.objsubid::int2, w.transactionid::text, \
           {waitstart_or_query_start} AS waitstart, {approx} AS waitstart_approx, \
           CASE WHEN w.locktype = 'transactionid' AND tup.relation IS NULL \
                THEN EXISTS (SELECT FROM lk r WHERE r.pid = w.pid AND r.granted AND r.locktype = 'relation' \
                             AND r.relation = {lease} AND r.database = (SELECT oid FROM here)) \
                ELSE coalesce(coalesce(w.relation, tup.relation) = {lease} \
                              AND coalesce(w.database, tup.database) = (SELECT oid FROM here), false) \
           END AS on_lease_table, \
           CASE WHEN $1 THEN pg_catalog.pg_blocking_pids(w.pid) END AS blocked_by \
    FROM lk w \
    LEFT JOIN LATERAL ( \
      SELECT t.database, t.relation, t.page, t.tuple FROM lk t \
      WHERE t.pid = w.pid AND t.granted AND t.locktype = 'tuple' AND w.locktype = 'transactionid' \
      LIMIT 1 \
    ) tup ON true \
    WHERE NOT w.granted \
    ORDER BY w.pid";

/// The prepared transactions that hold a lock one of the waiters `$1` waits for. A prepared transaction's
/// locks have no pid; they are found through its own transaction-id lock, whose `virtualtransaction` they
/// share. Read only while some waiter is blocked by pid 0 (what `pg_blocking_pids` says for them).
pub const PREPARED_SQL: &str = "\
    SELECT * FROM ( \
      SELECT p.gid, p.owner::text AS owner, p.database::text AS database, p.prepared AS prepared_at, \
             p.transaction::text AS transaction, \
             ARRAY( \
               SELECT DISTINCT w.pid FROM pg_catalog.pg_locks h \
               JOIN pg_catalog.pg_locks w ON NOT w.granted AND w.pid = ANY ($1::int4[]) \
                    AND w.locktype = h.locktype \
                    AND w.database IS NOT DISTINCT FROM h.database \
                    AND w.relation IS NOT DISTINCT FROM h.relation \
                    AND w.page IS NOT DISTINCT FROM h.page AND w.tuple IS NOT DISTINCT FROM h.tuple \
                    AND w.transactionid IS NOT DISTINCT FROM h.transactionid \
                    AND w.virtualxid IS NOT DISTINCT FROM h.virtualxid \
                    AND w.classid IS NOT DISTINCT FROM h.classid AND w.objid IS NOT DISTINCT FROM h.objid \
                    AND w.objsubid IS NOT DISTINCT FROM h.objsubid \
               WHERE h.pid IS NULL AND h.granted AND h.virtualtransaction = x.virtualtransaction \
               ORDER BY w.pid) AS blocks \
      FROM pg_catalog.pg_prepared_xacts p \
      JOIN pg_catalog.pg_locks x ON x.pid IS NULL AND x.locktype = 'transactionid' \
                                 AND x.transactionid = p.transaction \
    ) found \
    WHERE cardinality(blocks) > 0 \
    ORDER BY prepared_at";

/// The first server version with `pg_locks.waitstart`.
const WAITSTART_SINCE: i32 = 140_000;

/// The waits statement for a server version and a lease table.
fn waits_sql(server_version: i32, lease_oid: u32) -> String {
    let (waitstart, from_activity, approx) = if server_version >= WAITSTART_SINCE {
        ("l.waitstart", "w.waitstart", "false")
    } else {
        (
            "NULL::timestamptz",
            "(SELECT a.query_start FROM pg_catalog.pg_stat_activity a WHERE a.pid = w.pid)",
            "true",
        )
    };
    WAITS_SQL
        .replace("{waitstart_or_query_start}", from_activity)
        .replace("{waitstart}", waitstart)
        .replace("{approx}", approx)
        .replace("{lease}", &format!("{lease_oid}::oid"))
}

/// Each pid once, in first-seen order: `pg_blocking_pids` names a parallel query's leader once per worker.
fn dedup_pids(pids: Vec<i32>) -> Vec<i32> {
    let mut out: Vec<i32> = Vec::with_capacity(pids.len());
    for pid in pids {
        if !out.contains(&pid) {
            out.push(pid);
        }
    }
    out
}

#[derive(sqlx::FromRow)]
struct PreparedRow {
    gid: Lossy,
    owner: Option<Lossy>,
    database: Option<Lossy>,
    prepared_at: DateTime<Utc>,
    transaction: String,
    blocks: Vec<i32>,
}

/// The prepared transactions that hold a lock one of `waiters` waits for ([`PREPARED_SQL`]).
#[derive(Debug, Clone)]
pub struct PreparedRead {
    pub waiters: Vec<i32>,
}

impl Read for PreparedRead {
    type Output = Vec<PreparedXact>;

    fn statement(&self) -> Statement {
        Statement::new(PREPARED_SQL, vec![Param::Ints(self.waiters.clone())])
    }

    fn decode(&self, rows: &[PgRow]) -> Result<Vec<PreparedXact>, SourceError> {
        Ok(simple::decode::<PreparedRow>(rows)?
            .into_iter()
            .map(|r| PreparedXact {
                gid: r.gid.0,
                owner: text(r.owner),
                database: text(r.database),
                prepared_at: r.prepared_at,
                transaction: r.transaction,
                blocks: r.blocks,
            })
            .collect())
    }
}

/// The waiters that some prepared transaction blocks (`pg_blocking_pids` gives 0 for it).
pub fn blocked_by_prepared(waits: &[LockWait]) -> Vec<i32> {
    waits
        .iter()
        .filter(|w| w.blocked_by.contains(&0))
        .map(|w| w.pid)
        .collect()
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    server_now: DateTime<Utc>,
    in_recovery: bool,
    replay_lag_s: Option<f64>,
    deadlocks: Option<i64>,
    pid: Option<i32>,
    application_name: Option<Lossy>,
    usename: Option<Lossy>,
    client_addr: Option<String>,
    state: Option<Lossy>,
    query: Option<Lossy>,
    xact_start: Option<DateTime<Utc>>,
    query_start: Option<DateTime<Utc>>,
    state_change: Option<DateTime<Utc>>,
    backend_type: Option<String>,
    wait_event_type: Option<String>,
    wait_event: Option<String>,
    blocked_by: Option<Vec<i32>>,
    leader_pid: Option<i32>,
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
    waitstart_approx: bool,
    on_lease_table: bool,
    blocked_by: Option<Vec<i32>>,
}

impl WaitRow {
    fn into_wait(self) -> LockWait {
        LockWait {
            pid: self.pid,
            blocked_by: dedup_pids(self.blocked_by.unwrap_or_default()),
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
            waitstart_approx: self.waitstart_approx,
            on_lease_table: self.on_lease_table,
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
    pub recovery: Option<Recovery>,
    /// The database's deadlock count since its statistics were reset (`pg_stat_database.deadlocks`).
    pub deadlocks: Option<i64>,
    pub sessions: Vec<Session>,
    pub waits: Vec<LockWait>,
    /// Waits whose details are new this poll (their lease rows still need naming).
    pub new_waits: Vec<i32>,
}

/// Reads sessions and waits, remembering wait details between polls.
#[derive(Debug)]
pub struct ActivityReader {
    visibility: Visibility,
    /// [`WAITS_SQL`] for this server's version and lease table.
    waits_sql: String,
    /// The lease table's oid and name (as `regclass` prints it), for waits on it that name no relation of
    /// their own.
    lease: (u32, String),
    known: HashMap<i32, (WaitIdentity, LockWait)>,
    read_at: Option<Instant>,
    pg_locks_reads: u64,
    /// How long known details are trusted ([`DETAIL_REFRESH`]; tests shorten it).
    detail_refresh: Duration,
    /// The caller reads the backstop between polls ([`ActivityReader::refresh`]), not a poll.
    refresh_apart: bool,
    /// Waits whose details the last [`ActivityReader::refresh`] changed: the next poll names their rows.
    refreshed: Vec<i32>,
}

impl ActivityReader {
    /// A reader for a role with this visibility, on a server of this version (`server_version_num`), for the
    /// lease table of this oid.
    pub fn new(visibility: Visibility, server_version: i32, lease: (u32, String)) -> Self {
        Self {
            visibility,
            waits_sql: waits_sql(server_version, lease.0),
            lease,
            known: HashMap::new(),
            read_at: None,
            pg_locks_reads: 0,
            detail_refresh: DETAIL_REFRESH,
            refresh_apart: false,
            refreshed: Vec::new(),
        }
    }

    /// The caller reads the backstop between polls with [`ActivityReader::refresh`]; polls then read
    /// `pg_locks` only for new waits.
    pub fn refresh_between_polls(&mut self) {
        self.refresh_apart = true;
    }

    /// How long known details are trusted before they are read again (tests shorten it).
    pub fn set_detail_refresh(&mut self, after: Duration) {
        self.detail_refresh = after;
    }

    /// The backstop, between polls: when the known waits' details are due, reads them again. A wait that
    /// moved to another lock within one statement (same backend, statement and transaction: a statement that
    /// takes two advisory locks, say) shows its new lock from the next poll on, which names its row.
    pub async fn refresh(&mut self, conn: &mut PgConnection) -> Result<(), SourceError> {
        if !self.refresh_apart
            || self.visibility != Visibility::Full
            || self.known.is_empty()
            || !self.refresh_due()
        {
            return Ok(());
        }
        // Tried again after the same while, whether it fails or not: a lock table too slow to copy once is
        // not copied every second.
        self.read_at = Some(Instant::now());
        let details = read::run(conn, None, &self.waits_read(false)).await?;
        self.pg_locks_reads += 1;
        for wait in details {
            // A waiter not known yet is the next poll's, with its identity.
            let pid = wait.pid;
            if let Some((identity, _)) = self.known.get(&pid)
                && self.remember(pid, identity.clone(), wait)
            {
                self.refreshed.push(pid);
            }
        }
        Ok(())
    }

    /// Whether known details are older than the backstop allows.
    fn refresh_due(&self) -> bool {
        self.read_at
            .is_none_or(|at| at.elapsed() >= self.detail_refresh)
    }

    /// Keeps a wait's details; whether they name another lock than those known (or none were known), so that
    /// its lease row is named again.
    fn remember(&mut self, pid: i32, identity: WaitIdentity, mut wait: LockWait) -> bool {
        let changed = match self.known.get(&pid) {
            Some((_, old)) if same_lock(old, &wait) => {
                wait.lease_row.clone_from(&old.lease_row);
                false
            }
            _ => true,
        };
        self.known.insert(pid, (identity, wait));
        changed
    }

    /// How many times `pg_locks` was read (for tests and the benchmark).
    pub fn pg_locks_reads(&self) -> u64 {
        self.pg_locks_reads
    }

    /// Names the lease row of a known wait, so it is not looked up again while the wait lasts.
    pub fn remember_lease_row(&mut self, pid: i32, row: RowName) {
        if let Some((_, wait)) = self.known.get_mut(&pid) {
            wait.lease_row = Some(row);
        }
    }

    /// The read of this poll's waits: with their blockers computed in SQL for a role that cannot see wait
    /// events; behind a pooler (`pooled`) guarded so that `pg_locks` is not read while nobody waits.
    pub fn waits_read(&self, pooled: bool) -> WaitsRead<'_> {
        let own = self.visibility == Visibility::OwnSessionsOnly;
        WaitsRead {
            sql: &self.waits_sql,
            lease: &self.lease,
            with_blockers: own,
            only_while_anyone_waits: pooled && !own,
        }
    }

    /// Reads sessions, and waits with their details (from memory where the wait is known), on a direct
    /// connection.
    pub async fn fetch(&mut self, conn: &mut PgConnection) -> Result<Activity, SourceError> {
        let seen = read::run(conn, None, &SessionsRead).await?;
        // Wait events of other roles are hidden: for such a role pg_locks is the only source, every poll.
        let read_details = match self.visibility {
            Visibility::OwnSessionsOnly => true,
            Visibility::Full => self.needs_details(&seen.waiting),
        };
        let details = if read_details {
            Some(read::run(conn, None, &self.waits_read(false)).await?)
        } else {
            None
        };
        let read_pg_locks = details.is_some();
        Ok(self.activity(seen, details, read_pg_locks))
    }

    /// Adds this poll's reads to a pooler's batch, where a poll is one round trip: the sessions, and the waits
    /// whenever anyone in this database waits for a lock (details cannot be taken from memory when the read
    /// that would tell which are new is in the same round trip).
    pub fn add_to(&self, batch: &mut Batch) -> ActivitySlots {
        ActivitySlots {
            sessions: batch.add(&SessionsRead),
            waits: batch.add(&self.waits_read(true)),
        }
    }

    /// The activity from a pooler's batch; `None` when the batch did not get as far (its error says why).
    pub fn from_batch(
        &mut self,
        ran: &Ran,
        slots: ActivitySlots,
    ) -> Option<Result<Activity, SourceError>> {
        let seen = match ran.take(slots.sessions, &SessionsRead)? {
            Ok(seen) => seen,
            Err(e) => return Some(Err(e)),
        };
        let waits = match ran.take(slots.waits, &self.waits_read(true))? {
            Ok(waits) => waits,
            Err(e) => return Some(Err(e)),
        };
        if self.visibility == Visibility::Full {
            // Forgets the waits that ended.
            self.needs_details(&seen.waiting);
        }
        // The guard skips pg_locks while nobody waits: it was read when waits came back.
        let read_pg_locks = !waits.is_empty();
        Some(Ok(self.activity(seen, Some(waits), read_pg_locks)))
    }

    /// This poll's activity from its sessions and, when they were read, its waits' details.
    fn activity(
        &mut self,
        seen: SessionsSeen,
        details: Option<Vec<LockWait>>,
        read_pg_locks: bool,
    ) -> Activity {
        let SessionsSeen {
            activity: mut out,
            waiting,
        } = seen;
        if read_pg_locks {
            self.pg_locks_reads += 1;
            self.read_at = Some(Instant::now());
        }
        match self.visibility {
            Visibility::OwnSessionsOnly => own_waits(details.unwrap_or_default(), &mut out),
            Visibility::Full => self.merge(waiting, details, &mut out),
        }
        out
    }

    /// Forgets waits that ended; whether `pg_locks` must be read for the details of this poll's waiters.
    fn needs_details(&mut self, waiting: &[Waiting]) -> bool {
        self.known.retain(|pid, (identity, _)| {
            waiting
                .iter()
                .any(|w| w.pid == *pid && w.identity == *identity)
        });
        if waiting.is_empty() {
            self.read_at = None;
            return false;
        }
        let unknown = waiting.iter().any(|w| !self.known.contains_key(&w.pid));
        unknown || (!self.refresh_apart && self.refresh_due())
    }

    /// This poll's waits: the known details of each waiter, updated from `details` when they were read.
    fn merge(&mut self, waiting: Vec<Waiting>, details: Option<Vec<LockWait>>, out: &mut Activity) {
        // Those the backstop found on another lock, if they still wait as they did.
        out.new_waits = std::mem::take(&mut self.refreshed);
        out.new_waits.retain(|pid| self.known.contains_key(pid));
        if let Some(details) = details {
            let details: HashMap<i32, LockWait> = details.into_iter().map(|w| (w.pid, w)).collect();
            for w in &waiting {
                if let Some(wait) = details.get(&w.pid).cloned()
                    && self.remember(w.pid, w.identity.clone(), wait)
                    && !out.new_waits.contains(&w.pid)
                {
                    out.new_waits.push(w.pid);
                }
            }
        }
        for w in waiting {
            // A backend that got its lock between the two reads has no details: it no longer waits.
            if let Some((_, wait)) = self.known.get(&w.pid) {
                out.waits.push(LockWait {
                    blocked_by: w.blocked_by,
                    ..wait.clone()
                });
            }
        }
    }
}

/// A backend waiting for a lock, as `pg_stat_activity` shows it.
#[derive(Debug, Clone)]
struct Waiting {
    pid: i32,
    /// What identifies the wait: its details stay while this does.
    identity: WaitIdentity,
    /// `pg_blocking_pids`, each pid once.
    blocked_by: Vec<i32>,
}

/// The server's clock and recovery state, and the sessions of this database ([`SESSIONS_SQL`]).
#[derive(Debug, Clone, Copy)]
pub struct SessionsRead;

/// What [`SessionsRead`] saw: the activity without its waits' details, and who waits.
#[derive(Debug)]
pub struct SessionsSeen {
    activity: Activity,
    waiting: Vec<Waiting>,
}

impl Read for SessionsRead {
    type Output = SessionsSeen;

    fn statement(&self) -> Statement {
        Statement::new(SESSIONS_SQL, vec![Param::Int(QUERY_TEXT_LIMIT.into())])
    }

    fn decode(&self, rows: &[PgRow]) -> Result<SessionsSeen, SourceError> {
        let rows: Vec<SessionRow> = simple::decode(rows)?;
        let mut out = Activity {
            server_now: rows.first().map(|r| r.server_now),
            deadlocks: rows.first().and_then(|r| r.deadlocks),
            recovery: rows.first().filter(|r| r.in_recovery).map(|r| Recovery {
                replay_lag_s: r.replay_lag_s,
            }),
            ..Activity::default()
        };
        let mut waiting = Vec::new();
        for r in rows {
            // The clock row alone (no other session): no session.
            let Some(pid) = r.pid else { continue };
            let wait_event = match (&r.wait_event_type, &r.wait_event) {
                (Some(t), Some(e)) => Some(format!("{t}:{e}")),
                (Some(t), None) => Some(t.clone()),
                _ => None,
            };
            if r.wait_event_type.as_deref() == Some("Lock") {
                waiting.push(Waiting {
                    pid,
                    identity: WaitIdentity {
                        wait_event: r.wait_event,
                        query_start: r.query_start,
                        xact_start: r.xact_start,
                    },
                    blocked_by: dedup_pids(r.blocked_by.unwrap_or_default()),
                });
            }
            out.sessions.push(Session {
                pid,
                application: text(r.application_name),
                user: text(r.usename),
                client_addr: r.client_addr,
                state: text(r.state),
                // What a role without pg_read_all_stats gets instead of another role's query.
                query: text(r.query).filter(|q| q != "<insufficient privilege>"),
                xact_start: r.xact_start,
                state_change: r.state_change,
                wait_event,
                backend_type: r.backend_type,
                leader_pid: r.leader_pid,
            });
        }
        Ok(SessionsSeen {
            activity: out,
            waiting,
        })
    }
}

/// The waiting locks with their details ([`WAITS_SQL`], written for this server's version and lease table).
#[derive(Debug, Clone, Copy)]
pub struct WaitsRead<'a> {
    sql: &'a str,
    /// The lease table's oid and name, for waits on it that name no relation of their own.
    lease: &'a (u32, String),
    /// Compute the blockers here (a role that cannot see other roles' wait events).
    with_blockers: bool,
    /// Behind a pooler: a one-time filter, so that `pg_locks` is not read at all while nobody waits.
    only_while_anyone_waits: bool,
}

impl Read for WaitsRead<'_> {
    type Output = Vec<LockWait>;

    fn statement(&self) -> Statement {
        let sql = if self.only_while_anyone_waits {
            format!(
                "SELECT * FROM ({}) w WHERE EXISTS (SELECT FROM pg_catalog.pg_stat_activity a \
                 WHERE a.wait_event_type = 'Lock' AND a.datname = current_database() \
                   AND a.pid <> pg_backend_pid())",
                self.sql
            )
        } else {
            self.sql.to_owned()
        };
        Statement::new(sql, vec![Param::Bool(self.with_blockers)])
    }

    fn decode(&self, rows: &[PgRow]) -> Result<Vec<LockWait>, SourceError> {
        Ok(simple::decode::<WaitRow>(rows)?
            .into_iter()
            .map(|row| {
                let mut wait = row.into_wait();
                // A wait on the lease table that names no relation (its waiter holds no tuple lock).
                if wait.on_lease_table && wait.relation_oid.is_none() {
                    wait.relation_oid = Some(self.lease.0);
                    wait.relation = Some(self.lease.1.clone());
                }
                wait
            })
            .collect())
    }
}

/// The slots of one poll's activity reads in a pooler's batch.
#[derive(Debug, Clone, Copy)]
pub struct ActivitySlots {
    sessions: Slot,
    waits: Slot,
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

/// What the monitor's role may see, and the server's version (`server_version_num`: what each read is written
/// for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerRole {
    pub visibility: Visibility,
    pub version: i32,
    /// Whether the server logs lock waits longer than `deadlock_timeout` (`log_lock_waits`), and that timeout
    /// in milliseconds: what makes an incident diagnosable afterwards from the server log.
    pub log_lock_waits: bool,
    pub deadlock_timeout_ms: i64,
}

impl ServerRole {
    /// Said once per session in the notes when the server's log will not explain lock waits afterwards.
    pub fn lock_logging_note(&self) -> Option<String> {
        let mut lacks = Vec::new();
        if !self.log_lock_waits {
            lacks.push("log_lock_waits is off".to_owned());
        }
        if self.deadlock_timeout_ms > 5_000 {
            lacks.push(format!(
                "deadlock_timeout is {} ms (deadlocks are found that late, and waits logged only after it)",
                self.deadlock_timeout_ms
            ));
        }
        (!lacks.is_empty()).then(|| {
            format!(
                "{}: the server log will not show who waited on whom after the incident; ask the DBA to set \
                 log_lock_waits = on and deadlock_timeout = 1s",
                lacks.join(", ")
            )
        })
    }
}

/// Whether the monitor's role sees other sessions' details (superuser or `pg_read_all_stats`, which
/// `pg_monitor` includes), and the server's version.
#[derive(Debug, Clone, Copy)]
pub struct RoleRead;

impl Read for RoleRead {
    type Output = ServerRole;

    fn statement(&self) -> Statement {
        Statement::new(
            "SELECT r.rolsuper OR pg_has_role(current_user, 'pg_read_all_stats', 'USAGE'), \
                    current_setting('server_version_num')::int4, \
                    current_setting('log_lock_waits')::bool, \
                    (extract(epoch FROM current_setting('deadlock_timeout')::interval) * 1000)::int8 \
             FROM pg_catalog.pg_roles r WHERE r.rolname = current_user",
            Vec::new(),
        )
    }

    fn decode(&self, rows: &[PgRow]) -> Result<ServerRole, SourceError> {
        let (full, version, log_lock_waits, deadlock_timeout_ms) =
            simple::decode::<(bool, i32, bool, i64)>(rows)?
                .first()
                .copied()
                .unwrap_or((false, 0, true, 1_000));
        let visibility = if full {
            Visibility::Full
        } else {
            Visibility::OwnSessionsOnly
        };
        Ok(ServerRole {
            visibility,
            version,
            log_lock_waits,
            deadlock_timeout_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notes_say_when_the_server_log_will_not_explain_lock_waits() {
        let role = |log_lock_waits, deadlock_timeout_ms| ServerRole {
            visibility: Visibility::Full,
            version: 150_000,
            log_lock_waits,
            deadlock_timeout_ms,
        };
        assert_eq!(role(true, 1_000).lock_logging_note(), None);
        let off = role(false, 1_000).lock_logging_note().expect("a note");
        assert!(off.starts_with("log_lock_waits is off:"), "{off}");
        let slow = role(true, 30_000).lock_logging_note().expect("a note");
        assert!(slow.contains("deadlock_timeout is 30000 ms"), "{slow}");
    }
}
