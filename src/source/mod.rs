//! The only code that speaks SQL. One dedicated, read-only `PgConnection` polls the lease rows and the lock
//! waits; a tokio task runs the polls and publishes the latest state on a watch channel (latest wins), so the
//! UI never awaits the database and a slow poll is skipped, never queued.

pub mod connect;
pub mod error;
pub mod fleet;
pub mod lease;
pub mod locks;
pub mod poller;
pub mod service;
pub mod simple;
pub mod text;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnection;

pub use crate::model::feed::{Control, Feed, Link};
pub use connect::{Pooler, SessionLimits, Target};
pub use error::SourceError;
use lease::{LeaseTable, RowAt, RowLookup};
use locks::ActivityReader;
pub use poller::{Backoff, PollerSettings, every, run_poller, unsteered};

use crate::config::LeaseMapping;
use crate::model::{LeaseRow, LockWait, Snapshot, Visibility};

/// What a poll made of the lease table: the rows, or why they are unread; and a note about the read.
type LeaseOutcome = (Option<LeaseRead>, Option<String>, Option<String>);

/// The server clock, the lease rows read in detail, and the per-profile aggregates.
type LeaseRead = (
    chrono::DateTime<chrono::Utc>,
    Vec<LeaseRow>,
    Arc<Vec<crate::model::snapshot::ProfileSummary>>,
);

/// The monitor's connection with its resolved lease table and statements.
#[derive(Debug)]
pub struct Monitor {
    conn: PgConnection,
    lease: LeaseTable,
    activity: ActivityReader,
    visibility: Visibility,
    limits: SessionLimits,
    detail: LeaseDetail,
    /// The last per-profile aggregates (summary mode) and when they were read.
    summaries: Arc<Vec<crate::model::snapshot::ProfileSummary>>,
    summaries_at: Option<Instant>,
    /// Aggregate refreshes in a row that hit the statement timeout: each one doubles the wait before the next.
    slow_aggregates: u32,
    /// The lease table was found locked ACCESS EXCLUSIVE: until that lock is gone, polls ask `pg_locks` instead
    /// of queueing a read behind it.
    table_locked: bool,
    /// Behind a transaction-mode pooler: each poll is one transaction that sets `limits` (see [`simple`]).
    pooled: bool,
    /// Behind a pooler, the rows of row-lock waits are named by the next poll's round trip: what to look up.
    pending_rows: RowLookup,
    /// Behind a pooler, the waiters blocked by a prepared transaction, whose blocker the next poll names.
    pending_prepared: Vec<i32>,
    /// The last lease rows read: shown, marked with their age, while a poll cannot read them.
    last_leases: Option<LeaseRead>,
    /// The last sessions and waits read, kept likewise.
    last_activity: Option<(Vec<crate::model::Session>, Vec<LockWait>)>,
}

/// How long per-profile aggregates are reused in summary mode (at most; a third of the TTL when that is
/// shorter). Profiles that matter (contended, expired, in focus) are read in detail every poll; only the
/// aggregates of the others can be this old.
pub const SUMMARY_REFRESH: Duration = Duration::from_secs(5);

/// How much of the lease table each poll reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseDetail {
    /// Every row (the `snapshot` command: one poll, every holder in the JSON).
    Full,
    /// A summary per profile, and every row of the profiles that matter: a failure within `ttl`, an expired
    /// row, or named in `focus` (what the dashboard shows in detail). Keeps a poll of a large table cheap.
    Summary { ttl: Duration, focus: Vec<String> },
}

impl Monitor {
    /// Connects, checks the lease mapping and what the role can see.
    pub async fn connect(
        target: &Target,
        mapping: &LeaseMapping,
        limits: SessionLimits,
    ) -> Result<Self, SourceError> {
        let (mut conn, kind) = match target.connect(limits).await {
            Err(SourceError::PoolerRefused { .. }) if target.pooler() == Pooler::None => {
                // Only a pooler refuses the startup parameters of a plain session: connect as behind one.
                tracing::info!(
                    target = target.description(),
                    "startup parameters refused: polling as through a transaction-mode pooler"
                );
                let target = target.clone().with_pooler(Pooler::Transaction);
                (target.connect(limits).await?, Pooler::Transaction)
            }
            other => (other?, target.pooler()),
        };
        // How the setup statements go: written out in a transaction of their own behind a pooler.
        let pooled = (kind == Pooler::Transaction).then_some(limits);
        let setup = async {
            text::accept_any_bytes(&mut conn, pooled).await?;
            let lease = LeaseTable::resolve(&mut conn, pooled, mapping).await?;
            let (visibility, version) = locks::visibility(&mut conn, pooled).await?;
            Ok::<_, SourceError>((lease, visibility, version))
        };
        let (lease, visibility, version) =
            match tokio::time::timeout(limits.client_timeout, setup).await {
                Ok(Ok(found)) => found,
                Ok(Err(e)) => {
                    connect::close(conn).await;
                    return Err(e);
                }
                Err(_) => return Err(SourceError::Timeout(limits.client_timeout)),
            };
        tracing::info!(
            target = target.description(),
            table = lease.name,
            ?visibility,
            "connected"
        );
        let activity = ActivityReader::new(visibility, version, (lease.oid, lease.display.clone()));
        Ok(Self {
            conn,
            lease,
            activity,
            visibility,
            limits,
            detail: LeaseDetail::Full,
            summaries: Arc::default(),
            summaries_at: None,
            table_locked: false,
            slow_aggregates: 0,
            pooled: pooled.is_some(),
            pending_rows: RowLookup::default(),
            pending_prepared: Vec::new(),
            last_leases: None,
            last_activity: None,
        })
    }

    /// Chooses how much of the lease table the next polls read.
    pub fn set_detail(&mut self, detail: LeaseDetail) {
        if !matches!(
            (&self.detail, &detail),
            (LeaseDetail::Summary { .. }, LeaseDetail::Summary { .. })
        ) {
            self.summaries_at = None;
        }
        self.detail = detail;
    }

    /// What the monitor's role can see of other sessions.
    pub fn visibility(&self) -> Visibility {
        self.visibility
    }

    /// The lease table as the server names it.
    pub fn lease_table(&self) -> &LeaseTable {
        &self.lease
    }

    /// The connection, for tests that prove what the session can and cannot do.
    pub fn connection(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// One poll: sessions and waits, then lease rows, then the lease rows that row-lock waiters wait on and the
    /// prepared transactions that block anyone. A lease read that fails for any reason but a lost connection
    /// does not fail the poll: the waits (which name whoever locks the table) are still read, the last rows
    /// read are kept, and the snapshot says why they are old.
    ///
    /// The monitor stays out of the lease table's lock queue: when someone already queues for the table itself
    /// (a relation-lock wait on it), or a read of it hit `lock_timeout`, polls ask `pg_locks` who holds or wants
    /// ACCESS EXCLUSIVE on it and skip the read until that lock is gone.
    pub async fn poll(&mut self) -> Result<Snapshot, SourceError> {
        let started = Instant::now();
        if self.pooled {
            return self.poll_pooled(started).await;
        }
        let client_timeout = self.limits.client_timeout;
        let fut = async {
            let locks_reads = self.activity.pg_locks_reads();
            // Sessions and waits that cannot be read (a timeout, a revoked function) do not hide the rows:
            // the last ones read stay, and the snapshot says why.
            let (mut activity, locks_error) = match self.activity.fetch(&mut self.conn).await {
                Ok(found) => {
                    self.last_activity = Some((found.sessions.clone(), found.waits.clone()));
                    (found, None)
                }
                Err(e) if !e.needs_reconnect() => {
                    let (sessions, waits) = self.last_activity.clone().unwrap_or_default();
                    let kept = locks::Activity {
                        sessions,
                        waits,
                        ..locks::Activity::default()
                    };
                    (kept, Some(format!("sessions and lock waits unread: {e}")))
                }
                Err(e) => return Err(e),
            };
            // Two expensive reads in one poll make one slow poll: the aggregates can wait for the next one.
            let read_pg_locks = self.activity.pg_locks_reads() > locks_reads;
            let mut lockers = Vec::new();
            if self.table_locked || self.queued_for_table(&activity.waits) {
                lockers = self.lease.exclusive_lockers(&mut self.conn).await?;
                self.table_locked = !lockers.is_empty();
            }
            let fetched = if self.table_locked {
                Err(SourceError::LockTimeout)
            } else {
                self.read_leases(read_pg_locks).await
            };
            let (leases, lease_error, note) = match fetched {
                Ok((found, note)) => (Some(found), None, note),
                Err(SourceError::LockTimeout) => {
                    if !self.table_locked {
                        lockers = self.lease.exclusive_lockers(&mut self.conn).await?;
                        self.table_locked = !lockers.is_empty();
                    }
                    let text = table_locked_text(&self.lease.name, &lockers, &activity);
                    (None, Some(text), None)
                }
                // Nothing read at all: that poll failed.
                Err(e) if locks_error.is_some() => return Err(e),
                Err(e) if !e.needs_reconnect() => (None, Some(unread_text(&e)), None),
                Err(e) => return Err(e),
            };
            if !self.table_locked {
                self.attribute_row_waits(&mut activity).await;
            }
            let blocked = locks::blocked_by_prepared(&activity.waits);
            let prepared = if blocked.is_empty() {
                Vec::new()
            } else {
                // Best effort: the waits stand without their blocker's name.
                let rows = simple::fetch(
                    &mut self.conn,
                    None,
                    locks::PREPARED_SQL,
                    &[simple::Param::Ints(blocked)],
                )
                .await;
                rows.and_then(|r| locks::prepared_from(&r))
                    .unwrap_or_else(|e| {
                        tracing::debug!(error = %e, "could not name the prepared transactions");
                        Vec::new()
                    })
            };
            Ok((leases, lease_error, note, activity, prepared, locks_error))
        };
        let (leases, lease_error, note, activity, prepared, locks_error) =
            tokio::time::timeout(client_timeout, fut)
                .await
                .map_err(|_| SourceError::Timeout(client_timeout))??;
        let mut snapshot = self.snapshot(started, leases, lease_error, activity);
        snapshot.notes.extend(note);
        snapshot.prepared = prepared;
        snapshot.locks_error = locks_error;
        Ok(snapshot)
    }

    /// The snapshot of a poll. Without lease rows, its clock is that of the activity read, and the rows are the
    /// last ones read, marked with the time they were read at.
    fn snapshot(
        &mut self,
        started: Instant,
        leases: Option<LeaseRead>,
        lease_error: Option<String>,
        activity: locks::Activity,
    ) -> Snapshot {
        let (server_now, leases, summaries, leases_as_of) = if let Some(found) = leases {
            // Kept for the dashboard's next polls (summary mode: the few rows that matter, the aggregates
            // shared); a full read is `snapshot`'s one poll, which has no next one, and copying every row of a
            // large table would cost it.
            if matches!(self.detail, LeaseDetail::Summary { .. }) {
                self.last_leases = Some(found.clone());
            }
            let (now, rows, summaries) = found;
            (now, rows, summaries, None)
        } else {
            let now = activity.server_now.unwrap_or_else(chrono::Utc::now);
            match &self.last_leases {
                Some((at, rows, summaries)) => {
                    (now, rows.clone(), Arc::clone(summaries), Some(*at))
                }
                None => (now, Vec::new(), Arc::default(), None),
            }
        };
        Snapshot {
            server_now,
            poll_ms: started.elapsed().as_secs_f64() * 1000.0,
            leases,
            summaries,
            sessions: activity.sessions,
            waits: activity.waits,
            visibility: self.visibility,
            lease_error,
            pooled: self.pooled,
            parts: Vec::new(),
            leases_as_of,
            locks_error: None,
            recovery: activity.recovery,
            prepared: Vec::new(),
            notes: self.lease.notes.clone(),
        }
    }

    /// One poll behind a transaction-mode pooler: one round trip, one read-only transaction with the sessions,
    /// the waits, and then either the lease rows or (while the table is known to be locked) who locks it.
    /// What needs a second read in a direct session waits for the next poll: the names of row-lock waits'
    /// rows, the prepared transactions that block, and the lockers' names after a read first hit
    /// `lock_timeout`.
    async fn poll_pooled(&mut self, started: Instant) -> Result<Snapshot, SourceError> {
        let limits = self.limits;
        let mut statements = self.activity.pooled_statements().to_vec();
        let push = |statements: &mut Vec<String>, sql: String| {
            statements.push(sql);
            statements.len() - 1
        };
        let lockers_at = self.table_locked.then(|| {
            let (sql, params) = self.lease.lockers_statement();
            push(&mut statements, simple::inline(sql, &params))
        });
        let mut refresh = false;
        let lease_at = (!self.table_locked).then(|| match &self.detail {
            LeaseDetail::Full => push(&mut statements, self.lease.full_statement().to_owned()),
            LeaseDetail::Summary { ttl, focus } => {
                refresh = self.aggregates_due(*ttl, false);
                let (sql, params) = self.lease.summary_statement(*ttl, focus, refresh);
                push(&mut statements, simple::inline(sql, &params))
            }
        });
        let rows_at = (!self.table_locked && !self.pending_rows.is_empty()).then(|| {
            let (sql, params) = self.lease.rows_at_statement(&self.pending_rows);
            push(&mut statements, simple::inline(&sql, &params))
        });
        let prepared_at = (!self.pending_prepared.is_empty()).then(|| {
            let params = [simple::Param::Ints(self.pending_prepared.clone())];
            push(
                &mut statements,
                simple::inline(locks::PREPARED_SQL, &params),
            )
        });

        let transaction = simple::transaction(&mut self.conn, limits, &statements);
        let outcome = tokio::time::timeout(limits.client_timeout, transaction)
            .await
            .map_err(|_| SourceError::Timeout(limits.client_timeout))?;
        let failed_at = outcome.error.as_ref().map(|_| outcome.results.len());
        let (Some(sessions), Some(waits)) = (outcome.rows(0), outcome.rows(1)) else {
            return Err(outcome.error.unwrap_or_else(|| {
                SourceError::Query("the poll's transaction returned no sessions".into())
            }));
        };
        let mut activity = self.activity.pooled_from(sessions, waits)?;

        let mut lockers = Vec::new();
        if let Some(rows) = lockers_at.and_then(|i| outcome.rows(i)) {
            lockers = simple::decode(rows)?;
            self.table_locked = !lockers.is_empty();
        }
        let (leases, lease_error, note) = match lease_at {
            Some(i) => self.pooled_leases(&outcome, i, refresh, &activity)?,
            None => (
                None,
                Some(table_locked_text(&self.lease.name, &lockers, &activity)),
                None,
            ),
        };
        // A failed lookup (rows or prepared transactions) leaves names out; any other failure fails the poll.
        if let Some(e) = &outcome.error
            && failed_at.is_some_and(|i| {
                Some(i) != lease_at && Some(i) != rows_at && Some(i) != prepared_at
            })
        {
            return Err(e.clone());
        }

        self.name_rows_pooled(rows_at.and_then(|i| outcome.rows(i)), &mut activity)?;
        let prepared = match prepared_at.and_then(|i| outcome.rows(i)) {
            Some(rows) => locks::prepared_from(rows)?,
            None => Vec::new(),
        };
        self.pending_prepared = locks::blocked_by_prepared(&activity.waits);
        let mut snapshot = self.snapshot(started, leases, lease_error, activity);
        snapshot.notes.extend(note);
        snapshot.prepared = prepared;
        Ok(snapshot)
    }

    /// The lease rows of a pooled poll, or why they are missing (the read was statement `i`); and the note
    /// about slow aggregates.
    fn pooled_leases(
        &mut self,
        outcome: &simple::Outcome,
        i: usize,
        refresh: bool,
        activity: &locks::Activity,
    ) -> Result<LeaseOutcome, SourceError> {
        let failed_here = outcome.results.len() == i;
        match (outcome.rows(i), &outcome.error) {
            (Some(rows), _) => {
                let read = match &self.detail {
                    LeaseDetail::Full => {
                        let (now, rows) = self.lease.full_from(rows)?;
                        (now, rows, Arc::default())
                    }
                    LeaseDetail::Summary { .. } => {
                        let (now, rows, fresh) = LeaseTable::summary_from(rows)?;
                        if refresh {
                            self.aggregates_read(fresh);
                        }
                        (now, rows, Arc::clone(&self.summaries))
                    }
                };
                Ok((Some(read), None, self.aggregates_note()))
            }
            (None, Some(SourceError::LockTimeout)) if failed_here => {
                // Who holds the lock is asked by the next poll, instead of the rows.
                self.table_locked = true;
                Ok((
                    None,
                    Some(table_locked_text(&self.lease.name, &[], activity)),
                    None,
                ))
            }
            (None, Some(e)) if failed_here && !e.needs_reconnect() => {
                if refresh && matches!(e, SourceError::StatementTimeout) {
                    self.slow_aggregates += 1;
                    self.summaries_at = Some(Instant::now());
                }
                Ok((None, Some(unread_text(e)), None))
            }
            (None, error) => Err(error
                .clone()
                .unwrap_or_else(|| SourceError::Query("the lease read returned no result".into()))),
        }
    }

    /// Behind a pooler: notes whether someone queues for the table itself (the next poll then asks who locks
    /// it instead of queueing too), names the rows of row-lock waits from this poll's lookup, and keeps what
    /// is still unnamed for the next poll's.
    fn name_rows_pooled(
        &mut self,
        found: Option<&[sqlx::postgres::PgRow]>,
        activity: &mut locks::Activity,
    ) -> Result<(), SourceError> {
        // Someone queues for the table itself: the next poll asks who locks it instead of queueing too.
        if self.queued_for_table(&activity.waits) {
            self.table_locked = true;
        }
        let unnamed = |w: &LockWait| w.on_lease_table && w.lease_row.is_none();
        if let Some(rows) = found {
            self.name_rows(
                &LeaseTable::rows_at_from(rows)?,
                &mut activity.waits,
                unnamed,
            );
        }
        self.pending_rows = row_lookup(&activity.waits, unnamed);
        Ok(())
    }

    /// Whether someone waits for a lock on the lease table itself (a relation lock: a migration's queue).
    fn queued_for_table(&self, waits: &[LockWait]) -> bool {
        let oid = self.lease.oid;
        waits
            .iter()
            .any(|w| w.relation_oid == Some(oid) && w.locktype == "relation")
    }

    /// Names the lease row of each wait that `which` picks, from the rows found: by the address of the tuple
    /// it waits on or holds, else by the transaction it waits for (the one row whose `xmax` it is; a
    /// transaction that holds several rows names none of them). Known waits keep their name.
    fn name_rows(
        &mut self,
        found: &[RowAt],
        waits: &mut [LockWait],
        which: impl Fn(&LockWait) -> bool,
    ) {
        let at_address: HashMap<(u32, u16), &RowAt> = found.iter().map(|r| (r.tid, r)).collect();
        let mut locked_by: HashMap<&str, Vec<&RowAt>> = HashMap::new();
        for r in found {
            locked_by.entry(r.xmax.as_str()).or_default().push(r);
        }
        for w in waits {
            if !which(w) {
                continue;
            }
            let row = match (w.tuple, w.transactionid.as_deref()) {
                (Some(tid), _) => at_address.get(&tid).copied(),
                (None, Some(xid)) => match locked_by.get(xid).map(Vec::as_slice) {
                    Some([one]) => Some(*one),
                    _ => None,
                },
                (None, None) => None,
            };
            if let Some(row) = row {
                let named = (row.group.clone(), row.key.clone());
                self.activity.remember_lease_row(w.pid, named.clone());
                w.lease_row = Some(named);
            }
        }
    }

    /// Whether this poll refreshes the per-profile aggregates: at least every third of a TTL, so a
    /// summarised expiry is never far behind; postponed once when this poll already read pg_locks, never
    /// twice (waits that churn every poll would otherwise starve the aggregates). Slower after refreshes that
    /// timed out.
    fn aggregates_due(&self, ttl: Duration, read_pg_locks: bool) -> bool {
        let every = (SUMMARY_REFRESH.min(ttl / 3) * (1 << self.slow_aggregates.min(4)))
            .min(Duration::from_mins(1));
        let age = self.summaries_at.map(|at| at.elapsed());
        age.is_none_or(|age| age >= every * 2 || (age >= every && !read_pg_locks))
    }

    /// Keeps freshly read aggregates.
    fn aggregates_read(&mut self, fresh: Vec<crate::model::snapshot::ProfileSummary>) {
        self.summaries = Arc::new(fresh);
        self.summaries_at = Some(Instant::now());
        self.slow_aggregates = 0;
    }

    /// The note for the screen while aggregate refreshes are too slow for the statement timeout.
    fn aggregates_note(&self) -> Option<String> {
        (self.slow_aggregates > 0).then(|| {
            format!(
                "per-profile aggregates take longer than the statement timeout ({} ms): calm \
                 profiles are refreshed less often; a longer --interval gives them more time",
                self.limits.statement_timeout.as_millis()
            )
        })
    }

    /// The lease rows as the detail mode asks: every row, or the summary with the rows that matter; and a note
    /// for the screen when the per-profile aggregates are too slow for the statement timeout.
    async fn read_leases(
        &mut self,
        read_pg_locks: bool,
    ) -> Result<(LeaseRead, Option<String>), SourceError> {
        match &self.detail {
            LeaseDetail::Full => self
                .lease
                .fetch(&mut self.conn)
                .await
                .map(|(now, rows)| ((now, rows, Arc::default()), None)),
            LeaseDetail::Summary { ttl, focus } => {
                let refresh = self.aggregates_due(*ttl, read_pg_locks);
                let read = self
                    .lease
                    .fetch_summary(&mut self.conn, *ttl, focus, refresh)
                    .await;
                let (now, rows, fresh) = match read {
                    Err(SourceError::StatementTimeout) if refresh => {
                        // Too slow for this interval: keep the last aggregates, try again later, and read
                        // the rows that matter now (an index lookup of the few hot profiles).
                        self.slow_aggregates += 1;
                        self.summaries_at = Some(Instant::now());
                        let (now, rows, _) = self
                            .lease
                            .fetch_summary(&mut self.conn, *ttl, focus, false)
                            .await?;
                        (now, rows, None)
                    }
                    other => {
                        let (now, rows, fresh) = other?;
                        (now, rows, refresh.then_some(fresh))
                    }
                };
                if let Some(fresh) = fresh {
                    self.aggregates_read(fresh);
                }
                Ok((
                    (now, rows, Arc::clone(&self.summaries)),
                    self.aggregates_note(),
                ))
            }
        }
    }

    /// Names the lease row of each new row-lock wait on the lease table (known waits keep their name). Best
    /// effort: a failure leaves it unnamed.
    async fn attribute_row_waits(&mut self, activity: &mut locks::Activity) {
        let new_waits = &activity.new_waits;
        let new_row_wait = |w: &LockWait| w.on_lease_table && new_waits.contains(&w.pid);
        let lookup = row_lookup(&activity.waits, new_row_wait);
        if !lookup.is_empty() {
            match self.lease.rows_at(&mut self.conn, &lookup).await {
                Ok(found) => self.name_rows(&found, &mut activity.waits, new_row_wait),
                Err(e) => tracing::debug!(error = %e, "could not name the rows of row-lock waits"),
            }
        }
    }

    /// How many times this monitor read `pg_locks` (for tests and the benchmark).
    pub fn pg_locks_reads(&self) -> u64 {
        self.activity.pg_locks_reads()
    }

    /// Closes the connection.
    pub async fn close(self) {
        connect::close(self.conn).await;
    }
}

/// What to look up to name the rows of the waits that `which` picks: the addresses of those that wait on
/// or hold a tuple lock, the transaction ids of the others (each once).
fn row_lookup(waits: &[LockWait], which: impl Fn(&LockWait) -> bool) -> RowLookup {
    let mut lookup = RowLookup::default();
    for w in waits.iter().filter(|w| which(w)) {
        match (w.tuple, &w.transactionid) {
            (Some(tid), _) => lookup.tids.push(tid),
            (None, Some(xid)) => lookup.xids.push(xid.clone()),
            (None, None) => {}
        }
    }
    lookup.tids.sort_unstable();
    lookup.tids.dedup();
    lookup.xids.sort_unstable();
    lookup.xids.dedup();
    lookup
}

/// Why the lease rows are missing after a failed read, for the screen and the JSON notes.
fn unread_text(e: &SourceError) -> String {
    format!("lease rows unread: {e}")
}

/// What the screen says when the lease table is locked: who holds or wants ACCESS EXCLUSIVE on it, and whom
/// a queued request waits behind (the culprit: often an open transaction, not the migration itself).
fn table_locked_text(
    table: &str,
    lockers: &[(Option<i32>, bool)],
    activity: &locks::Activity,
) -> String {
    let about = |pid: i32| {
        activity
            .sessions
            .iter()
            .find(|s| s.pid == pid)
            .map(|s| {
                [s.application.as_deref(), s.state.as_deref()]
                    .into_iter()
                    .flatten()
                    .filter(|t| !t.is_empty())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .filter(|t| !t.is_empty())
            .map(|t| format!(" ({t})"))
            .unwrap_or_default()
    };
    let who: Vec<String> = lockers
        .iter()
        .map(|&(pid, granted)| {
            let verb = if granted { "holds" } else { "waits for" };
            let Some(pid) = pid else {
                return format!("a prepared transaction {verb} AccessExclusiveLock");
            };
            let behind: Vec<String> = activity
                .waits
                .iter()
                .filter(|w| !granted && w.pid == pid)
                .flat_map(|w| &w.blocked_by)
                .map(|&b| {
                    if b == 0 {
                        "a prepared transaction".to_owned()
                    } else {
                        format!("pid {b}{}", about(b))
                    }
                })
                .collect();
            let behind = if behind.is_empty() {
                String::new()
            } else {
                format!(" behind {}", behind.join(", "))
            };
            format!("pid {pid} {verb} AccessExclusiveLock{}{behind}", about(pid))
        })
        .collect();
    // Who and behind whom first: on a narrow screen the end of the line is what gets cut.
    if who.is_empty() {
        format!(
            "lease rows unread: {table} is locked by another session (lock_timeout; see the locks pane)"
        )
    } else {
        format!("lease rows unread: {} on {table}", who.join("; "))
    }
}
