//! The monitor: one dedicated read-only connection, its lease table resolved, and one poll at a time. A poll
//! runs the same reads (`lease`, `locks`: each declared once, with its SQL for this server and its decoding)
//! through either runner: one statement at a time on a direct connection, or all of them in one transaction
//! behind a transaction-mode pooler (see [`super::read`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnection;

use super::connect::{self, Pooler, SessionLimits, Target};
use super::error::SourceError;
use super::lease::{
    ChangesRead, FullRead, KeysRead, LeaseRows, LeaseTable, LockersRead, PagesRead, RowAt,
    RowLookup, RowsAtRead, SummaryRead, WindowRead,
};
use super::locks::{self, ActivityReader, PreparedRead, RoleRead};
use super::mirror::{MIN_WINDOW, Mirror, Next, SweepTiming};
use super::packed::PackedRows;
use super::read::{self, Batch, Read};
use super::text;
use super::unread::{row_lookup, table_locked_text, unread_text};
use crate::config::LeaseMapping;
use crate::model::snapshot::ProfileSummary;
use crate::model::{LeaseRow, LockWait, Snapshot, Visibility};

/// The lease rows a snapshot shows: the server's clock of their read, the rows read in detail, and the
/// per-profile aggregates (summary mode; shared between aggregate refreshes).
#[derive(Debug, Clone)]
struct LeaseRead {
    server_now: chrono::DateTime<chrono::Utc>,
    rows: Vec<LeaseRow>,
    summaries: Arc<Vec<ProfileSummary>>,
}

/// What a poll made of the lease table: the rows, or why they are unread; and a note about the read (slow
/// aggregates) that does not make the rows unread.
#[derive(Debug, Default)]
struct LeaseOutcome {
    read: Option<LeaseRead>,
    unread: Option<String>,
    note: Option<String>,
}

impl LeaseOutcome {
    fn unread(why: String) -> Self {
        Self {
            unread: Some(why),
            ..Self::default()
        }
    }
}

/// What a poll read besides the lease rows.
#[derive(Debug)]
struct Polled {
    lease: LeaseOutcome,
    activity: locks::Activity,
    prepared: Vec<crate::model::snapshot::PreparedXact>,
    /// Why sessions and waits are unread (those in `activity` are the last ones read).
    locks_error: Option<String>,
}

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
    summaries: Arc<Vec<ProfileSummary>>,
    summaries_at: Option<Instant>,
    /// Aggregate refreshes in a row that hit the statement timeout: each one doubles the wait before the next.
    slow_aggregates: u32,
    /// The lease table was found locked ACCESS EXCLUSIVE: until that lock is gone, polls ask `pg_locks` instead
    /// of queueing a read behind it.
    table_locked: bool,
    /// Behind a transaction-mode pooler: each poll is one transaction that sets `limits` (see [`super::simple`]).
    pooled: bool,
    /// Behind a pooler, the rows of row-lock waits are named by the next poll's round trip: what to look up.
    pending_rows: RowLookup,
    /// Behind a pooler, the waiters blocked by a prepared transaction, whose blocker the next poll names.
    pending_prepared: Vec<i32>,
    /// The last lease rows read: shown, marked with their age, while a poll cannot read them.
    last_leases: Option<LeaseRead>,
    /// The last sessions and waits read, kept likewise.
    last_activity: Option<locks::Activity>,
    /// Summary mode on a table (not a view): the table as last read, kept in step by reading only what
    /// changed; the detail rows and the aggregates come from it. `None` after its first full read was too
    /// slow for the statement timeout: then the server aggregates, as for a view.
    mirror: Option<Mirror>,
    /// Lease rows transferred by this monitor's reads, for tests and the benchmarks.
    lease_rows_read: u64,
    /// What the lease read of a dashboard poll may cost (see [`SCAN_BUDGET`]), and what the last one took.
    scan_budget: Duration,
    lease_took: Duration,
    /// The mirror may read the table by windows: a plain table on PostgreSQL 14 or later (TID range scans),
    /// on a direct connection (where each read's time is known).
    windowable: bool,
    /// The caller reads between polls ([`Monitor::between_polls`]): a windowed table's sweep, the mirror's
    /// summaries, the backstop of the waits' details.
    apart: bool,
    /// The mirror's summaries fell due in the last poll: they are taken between polls.
    summaries_wanted: bool,
    /// When the current poll began: a second lease read starts only if it can end within the poll's time.
    poll_began: Instant,
}

/// Time kept for the reads of a poll after its lease read (row-lock waits' rows, prepared transactions), on
/// a server slow enough for a lease read to time out: half of the second the default limits leave a poll
/// besides one statement.
const AFTER_LEASE_READ: Duration = Duration::from_millis(500);

/// What the lease read of a dashboard poll may cost before the mirror reads the table by windows, and then
/// what the sweep's window may cost: a scan of every page every poll costs the server, and the operator the
/// poll's latency, in proportion to the table's size, dead rows included.
pub const SCAN_BUDGET: Duration = Duration::from_millis(20);

/// What the sweep's window of a table read by windows may cost when it is read between polls (see
/// [`Monitor::read_between_polls`]): it adds nothing to a poll's latency, but all of it to the server's
/// work. At 10 ms the scale scene's fresh table is swept in 20 s; the cycle grows with the table, to minutes
/// on one bloated behind a held transaction, and past the TTL the window grows up to [`SWEEP_CAP`].
pub const SWEEP_BUDGET: Duration = Duration::from_millis(10);

/// What the sweep's window may cost at most, when the budget's window would not sweep the table within the
/// TTL: up to this, the window grows so that a change to a row shows within a TTL; past it, the cycle is
/// longer and the dashboard says it cannot vouch for calm ([`Snapshot::lag`]).
pub const SWEEP_CAP: Duration = Duration::from_millis(40);

/// The first server version with TID range scans, which a windowed read needs to cost only its pages.
const TID_RANGE_SINCE: i32 = 140_000;

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

/// The lease read of a detail mode: every row, the summary (with the aggregates when `aggregates`), or (in
/// summary mode with a mirror) what changed since the mirror's last read.
#[derive(Debug, Clone, Copy)]
enum LeaseReadOf<'a> {
    Full(FullRead<'a>),
    Summary(SummaryRead<'a>),
    Changes(ChangesRead<'a>),
    Window(WindowRead<'a>),
}

impl<'a> LeaseReadOf<'a> {
    /// `pages`: the table's size read just before, for a windowed read.
    fn new(
        table: &'a LeaseTable,
        detail: &'a LeaseDetail,
        aggregates: bool,
        (mirror, pages): (Option<&'a Next>, u64),
    ) -> Self {
        match (detail, mirror) {
            (LeaseDetail::Full, _) => Self::Full(FullRead(table)),
            (LeaseDetail::Summary { .. }, Some(next)) => Self::Changes(match next {
                Next::All => ChangesRead {
                    table,
                    since: None,
                    sweep: (0, 0),
                },
                Next::Since(mark, sweep) => ChangesRead {
                    table,
                    since: Some(mark),
                    sweep: *sweep,
                },
                Next::Window {
                    since,
                    tail,
                    sweep,
                    confirm,
                } => {
                    return Self::Window(WindowRead {
                        table,
                        pages,
                        since,
                        tail: *tail,
                        sweep: *sweep,
                        confirm,
                    });
                }
            }),
            (LeaseDetail::Summary { ttl, focus }, None) => Self::Summary(SummaryRead {
                table,
                ttl: *ttl,
                focus,
                aggregates,
            }),
        }
    }

    /// Whether this is a mirror's read of every row.
    fn reads_all_for_mirror(&self) -> bool {
        matches!(self, Self::Changes(ChangesRead { since: None, .. }))
    }
}

impl Read for LeaseReadOf<'_> {
    type Output = LeaseRows;

    fn statement(&self) -> read::Statement {
        match self {
            Self::Full(r) => r.statement(),
            Self::Summary(r) => r.statement(),
            Self::Changes(r) => r.statement(),
            Self::Window(r) => r.statement(),
        }
    }

    fn decode(&self, rows: &[sqlx::postgres::PgRow]) -> Result<LeaseRows, SourceError> {
        match self {
            Self::Full(r) => r.decode(rows),
            Self::Summary(r) => r.decode(rows),
            Self::Changes(r) => r.decode(rows),
            Self::Window(r) => r.decode(rows),
        }
    }
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
            let role = read::run(&mut conn, pooled, &RoleRead).await?;
            Ok::<_, SourceError>((lease, role))
        };
        let (mut lease, role) = match tokio::time::timeout(limits.client_timeout, setup).await {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                connect::close(conn).await;
                return Err(e);
            }
            Err(_) => return Err(SourceError::Timeout(limits.client_timeout)),
        };
        let (visibility, version) = (role.visibility, role.version);
        // Among the notes of every poll of this session, the last.
        lease.notes.extend(role.lock_logging_note());
        tracing::info!(
            target = target.description(),
            table = lease.name,
            ?visibility,
            "connected"
        );
        let activity = ActivityReader::new(visibility, version, (lease.oid, lease.display.clone()));
        let mirror = lease.incremental().then(Mirror::default);
        let windowable = pooled.is_none() && version >= TID_RANGE_SINCE && lease.windowable();
        Ok(Self {
            windowable,
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
            mirror,
            lease_rows_read: 0,
            scan_budget: SCAN_BUDGET,
            lease_took: Duration::ZERO,
            apart: false,
            summaries_wanted: false,
            poll_began: Instant::now(),
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
    /// prepared transactions that block anyone. A read that fails for any reason but a lost connection does
    /// not fail the poll: the lease rows or the waits last read are kept, and the snapshot says why they are
    /// old; only a poll that read nothing fails.
    ///
    /// The monitor stays out of the lease table's lock queue: when someone already queues for the table itself
    /// (a relation-lock wait on it), or a read of it hit `lock_timeout`, polls ask `pg_locks` who holds or wants
    /// ACCESS EXCLUSIVE on it and skip the read until that lock is gone.
    pub async fn poll(&mut self) -> Result<Snapshot, SourceError> {
        let started = Instant::now();
        self.poll_began = started;
        let client_timeout = self.limits.client_timeout;
        let polled = if self.pooled {
            tokio::time::timeout(client_timeout, self.poll_pooled()).await
        } else {
            tokio::time::timeout(client_timeout, self.poll_direct()).await
        }
        .map_err(|_| SourceError::Timeout(client_timeout))??;
        Ok(self.snapshot(started, polled))
    }

    /// One poll on a direct connection, one read at a time.
    async fn poll_direct(&mut self) -> Result<Polled, SourceError> {
        let locks_reads = self.activity.pg_locks_reads();
        // Sessions and waits that cannot be read (a timeout, a revoked function) do not hide the rows: the
        // last ones read stay, and the snapshot says why.
        let (mut activity, locks_error) = match self.activity.fetch(&mut self.conn).await {
            Ok(found) => {
                if self.keeps_last_reads() {
                    self.last_activity = Some(found.clone());
                }
                (found, None)
            }
            Err(e) if !e.needs_reconnect() => (
                self.last_kept_activity(),
                Some(format!("sessions and lock waits unread: {e}")),
            ),
            Err(e) => return Err(e),
        };
        // Two expensive reads in one poll make one slow poll: the aggregates can wait for the next one.
        let read_pg_locks = self.activity.pg_locks_reads() > locks_reads;
        let mut lockers = Vec::new();
        if self.table_locked || self.queued_for_table(&activity.waits) {
            lockers = read::run(&mut self.conn, None, &LockersRead(&self.lease)).await?;
            self.table_locked = !lockers.is_empty();
        }
        let fetched = if self.table_locked {
            Err(SourceError::LockTimeout)
        } else {
            self.read_leases(read_pg_locks).await
        };
        let lease = match fetched {
            Ok(lease) => lease,
            Err(SourceError::LockTimeout) => {
                if !self.table_locked {
                    lockers = read::run(&mut self.conn, None, &LockersRead(&self.lease)).await?;
                    self.table_locked = !lockers.is_empty();
                }
                LeaseOutcome::unread(table_locked_text(&self.lease.name, &lockers, &activity))
            }
            // Nothing read at all: that poll failed.
            Err(e) if locks_error.is_some() => return Err(e),
            Err(e) if !e.needs_reconnect() => LeaseOutcome::unread(unread_text(&e)),
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
            let named = read::run(&mut self.conn, None, &PreparedRead { waiters: blocked }).await;
            named.unwrap_or_else(|e| {
                tracing::debug!(error = %e, "could not name the prepared transactions");
                Vec::new()
            })
        };
        Ok(Polled {
            lease,
            activity,
            prepared,
            locks_error,
        })
    }

    /// Whether this monitor keeps what it read for a later poll that cannot read it: the dashboard's polls
    /// (summary mode: the few rows that matter, the aggregates shared). A full read is `snapshot`'s one poll,
    /// which has no later one, and copying every row and session of a large database would cost it.
    fn keeps_last_reads(&self) -> bool {
        matches!(self.detail, LeaseDetail::Summary { .. })
    }

    /// The sessions and waits last read, for a poll that could not read them.
    fn last_kept_activity(&self) -> locks::Activity {
        let last = self.last_activity.clone().unwrap_or_default();
        locks::Activity {
            sessions: last.sessions,
            waits: last.waits,
            ..locks::Activity::default()
        }
    }

    /// The lease rows as the detail mode asks: every row, or the summary with the rows that matter; and a note
    /// for the screen when the per-profile aggregates are too slow for the statement timeout. While the mirror
    /// is being built, the rows shown are the server's, and then, if the poll has time left, the copy takes
    /// its next step.
    async fn read_leases(&mut self, read_pg_locks: bool) -> Result<LeaseOutcome, SourceError> {
        if self.mirror.as_mut().is_some_and(Mirror::take_built) {
            // The copy is shown from now on: its aggregates of every profile are due at once.
            self.slow_aggregates = 0;
            self.summaries_at = None;
        }
        let building = self.mirror.as_ref().and_then(Mirror::building).is_some();
        let outcome = self.read_shown_leases(read_pg_locks, building).await?;
        if building && self.time_for_another_read() {
            self.build_step().await?;
        }
        Ok(outcome)
    }

    /// The lease rows shown (see [`Monitor::read_leases`]): without the mirror while it is being built.
    async fn read_shown_leases(
        &mut self,
        read_pg_locks: bool,
        building: bool,
    ) -> Result<LeaseOutcome, SourceError> {
        let refresh = match &self.detail {
            LeaseDetail::Full => false,
            LeaseDetail::Summary { ttl, .. } => self.aggregates_due(*ttl, read_pg_locks),
        };
        if let Some(mirror) = self.mirror.as_mut()
            && mirror.needs_keys()
        {
            match read::run(&mut self.conn, None, &KeysRead(&self.lease)).await {
                Ok(names) => mirror.retain(&names),
                // A table read by windows may be too large to read every name within the timeout: deleted
                // rows then wait for the next time (held rows past their expiry are looked up meanwhile).
                Err(SourceError::StatementTimeout) if mirror.windowed() => {
                    tracing::warn!(
                        "reading every lease row's name timed out; deleted rows stay for now"
                    );
                    mirror.retain_later();
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(mirror) = self.mirror.as_mut() {
            mirror.set_sweep_apart(self.apart);
        }
        // While the copy is being built, the rows shown are the server's, as without one.
        let next = self.mirror_next().filter(|_| !building);
        let pages = match next {
            Some(Next::Window { .. }) => {
                read::run(&mut self.conn, None, &PagesRead(&self.lease)).await?
            }
            _ => 0,
        };
        if let Some(Next::Window { tail, confirm, .. }) = &next {
            tracing::trace!(
                tail_pages = pages.saturating_sub(*tail),
                confirm = confirm.len(),
                "window"
            );
        }
        let read = LeaseReadOf::new(&self.lease, &self.detail, refresh, (next.as_ref(), pages));
        let began = Instant::now();
        let got = read::run(&mut self.conn, None, &read).await;
        self.lease_took = began.elapsed();
        if read.reads_all_for_mirror() && matches!(got, Err(SourceError::StatementTimeout)) {
            self.too_large_to_read_whole().await?;
            if !self.time_for_another_read() {
                return Ok(self.timed_out_lease_read());
            }
            let summary = LeaseReadOf::new(&self.lease, &self.detail, false, (None, 0));
            let rows = read::run(&mut self.conn, None, &summary).await?;
            return Ok(LeaseOutcome {
                read: Some(self.lease_read(rows, false)),
                unread: None,
                note: self.aggregates_note(),
            });
        }
        let (rows, fresh) = match got {
            Err(SourceError::StatementTimeout) if refresh => {
                // Too slow for this interval: keep the last aggregates, try again later, and read the rows
                // that matter now (an index lookup of the few hot profiles), if it can end in time.
                self.slow_aggregates += 1;
                self.summaries_at = Some(Instant::now());
                if !self.time_for_another_read() {
                    return Ok(self.timed_out_lease_read());
                }
                let hot = LeaseReadOf::new(&self.lease, &self.detail, false, (None, 0));
                (read::run(&mut self.conn, None, &hot).await?, false)
            }
            other => (other?, refresh),
        };
        Ok(LeaseOutcome {
            read: Some(self.lease_read(rows, fresh)),
            unread: None,
            note: self.aggregates_note(),
        })
    }

    /// Whether one more read, up to the statement timeout, ends before the poll's client-side timeout (with
    /// room for the reads after it). After a lease read that took the whole statement timeout, a second one
    /// could not: the client timeout would cut the poll, and the operator would see no sessions or waits,
    /// only "reconnecting", poll after poll, on a table that bloated while locktop was not watching.
    fn time_for_another_read(&self) -> bool {
        self.poll_began.elapsed() + self.limits.statement_timeout + AFTER_LEASE_READ
            <= self.limits.client_timeout
    }

    /// A poll whose lease read took the statement timeout and has no time for another: its sessions and
    /// waits stand, the rows are the last ones read (with their age), and the next poll reads the rows that
    /// matter first.
    fn timed_out_lease_read(&self) -> LeaseOutcome {
        LeaseOutcome {
            read: None,
            unread: Some(unread_text(&SourceError::StatementTimeout)),
            note: self.aggregates_note(),
        }
    }

    /// The mirror's first read of every row did not fit in the statement timeout. Where the table can be read
    /// by windows, the mirror is built so, over the next polls (see [`Mirror::build_by_windows`]), while the
    /// server aggregates it as for a view; elsewhere it is given up.
    async fn too_large_to_read_whole(&mut self) -> Result<(), SourceError> {
        let pages = if self.windowable && self.mirror.is_some() {
            read::run(&mut self.conn, None, &PagesRead(&self.lease)).await?
        } else {
            0
        };
        // A table of a few windows that cannot be read whole in time cannot be read by windows either.
        let Some(mirror) = self.mirror.as_mut().filter(|_| pages > 2 * MIN_WINDOW) else {
            self.give_up_mirror();
            return Ok(());
        };
        mirror.build_by_windows(pages);
        // The aggregates are as slow as that read: they wait, and the note says so.
        self.slow_aggregates += 1;
        self.summaries_at = Some(Instant::now());
        Ok(())
    }

    /// A poll's step in building the mirror by windows: the pages added since the last read (and the sweep's
    /// window, unless it is read between polls) go into the copy, which is not shown yet. A read that times
    /// out is the next poll's to try again.
    async fn build_step(&mut self) -> Result<(), SourceError> {
        let Some(next) = self.mirror_next() else {
            return Ok(());
        };
        let pages = read::run(&mut self.conn, None, &PagesRead(&self.lease)).await?;
        let read = LeaseReadOf::new(&self.lease, &self.detail, false, (Some(&next), pages));
        let began = Instant::now();
        let got = read::run(&mut self.conn, None, &read).await;
        self.lease_took = began.elapsed();
        match got {
            Ok(mut rows) => {
                self.lease_rows_read += rows.packed.len() as u64;
                self.apply_to_mirror(&mut rows);
                Ok(())
            }
            Err(SourceError::StatementTimeout) => {
                tracing::warn!(
                    "a window of the lease table's copy timed out; trying again next poll"
                );
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The mirror's first read of every row did not fit in the statement timeout: the table is too large to
    /// mirror, and the server aggregates it from now on. Those aggregates are as slow, so they wait, and the
    /// note says so.
    fn give_up_mirror(&mut self) {
        tracing::warn!("the lease table is too large to mirror; polling its aggregates instead");
        self.mirror = None;
        self.slow_aggregates += 1;
        self.summaries_at = Some(Instant::now());
    }

    /// What the mirror's next read asks for, in summary mode.
    fn mirror_next(&self) -> Option<Next> {
        match self.detail {
            LeaseDetail::Summary { .. } => self.mirror.as_ref().map(Mirror::next),
            LeaseDetail::Full => None,
        }
    }

    /// The rows read as a snapshot shows them: in summary mode with the aggregates, fresh or kept. An
    /// incremental read goes into the mirror, and the snapshot takes from it the rows that matter and, when
    /// due, fresh aggregates.
    fn lease_read(&mut self, mut rows: LeaseRows, fresh_aggregates: bool) -> LeaseRead {
        self.lease_rows_read += (rows.rows.len() + rows.packed.len()) as u64;
        let began = Instant::now();
        if let (Some(read_rows), Some(mirror), LeaseDetail::Summary { ttl, focus }) = (
            self.apply_to_mirror(&mut rows),
            self.mirror.as_mut(),
            &self.detail,
        ) {
            let after_apply = began.elapsed();
            let ttl_chrono = chrono::Duration::from_std(*ttl).unwrap_or(chrono::Duration::MAX);
            let detail = mirror.rows_that_matter(rows.server_now, ttl_chrono, focus);
            let after_matter = began.elapsed();
            // When due as the server's aggregates would be: not in a poll that read pg_locks too; and
            // once there are some, between polls when the caller reads there.
            if fresh_aggregates {
                if self.apart && !self.summaries.is_empty() {
                    self.summaries_wanted = true;
                } else if let Some(fresh) = mirror.summaries() {
                    self.summaries = Arc::new(fresh);
                }
                self.summaries_at = Some(Instant::now());
            }
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            tracing::trace!(
                rows = read_rows,
                apply_ms = ms(after_apply),
                rows_that_matter_ms = ms(after_matter.saturating_sub(after_apply)),
                summaries_ms = ms(began.elapsed().saturating_sub(after_matter)),
                "mirror"
            );
            return LeaseRead {
                server_now: rows.server_now,
                rows: detail,
                summaries: Arc::clone(&self.summaries),
            };
        }
        let summaries = match self.detail {
            LeaseDetail::Full => Arc::default(),
            LeaseDetail::Summary { .. } => {
                if fresh_aggregates {
                    self.aggregates_read(rows.summaries);
                }
                Arc::clone(&self.summaries)
            }
        };
        LeaseRead {
            server_now: rows.server_now,
            rows: rows.rows,
            summaries,
        }
    }

    /// Puts an incremental read into the mirror (taking its rows and delta), in summary mode; how many rows it
    /// put, or `None` when the read was not the mirror's.
    fn apply_to_mirror(&mut self, rows: &mut LeaseRows) -> Option<usize> {
        let (Some(mirror), LeaseDetail::Summary { .. }) = (self.mirror.as_mut(), &self.detail)
        else {
            return None;
        };
        let delta = rows.delta.take()?;
        // The mirror's reads give their rows packed; a table without the columns for reading changes gives
        // them whole.
        let packed = if rows.packed.is_empty() {
            PackedRows::of(&rows.rows)
        } else {
            std::mem::take(&mut rows.packed)
        };
        if delta.window {
            mirror.apply_window(
                packed.iter(),
                delta,
                rows.server_now,
                (self.lease_took, self.scan_budget),
            );
        } else {
            let (all, pages) = (delta.all, delta.pages);
            mirror.apply(packed.iter(), delta);
            if !all && self.windowable && self.lease_took > self.scan_budget {
                let fits =
                    pages as f64 * self.scan_budget.as_secs_f64() / self.lease_took.as_secs_f64();
                mirror.start_window(fits as u64);
            }
        }
        Some(packed.len())
    }

    /// The snapshot of a poll. Without lease rows, its clock is that of the activity read, and the rows are the
    /// last ones read, marked with the time they were read at.
    fn snapshot(&mut self, started: Instant, polled: Polled) -> Snapshot {
        let Polled {
            lease,
            activity,
            prepared,
            locks_error,
        } = polled;
        let (lease_read, leases_as_of) = if let Some(found) = lease.read {
            if self.keeps_last_reads() {
                self.last_leases = Some(found.clone());
            }
            (found, None)
        } else {
            let now = activity.server_now.unwrap_or_else(chrono::Utc::now);
            match &self.last_leases {
                Some(last) => (
                    LeaseRead {
                        server_now: now,
                        ..last.clone()
                    },
                    Some(last.server_now),
                ),
                None => (
                    LeaseRead {
                        server_now: now,
                        rows: Vec::new(),
                        summaries: Arc::default(),
                    },
                    None,
                ),
            }
        };
        let mut notes = self.lease.notes.clone();
        let mut lag = None;
        let building = self.mirror.as_ref().and_then(Mirror::building);
        if let Some(done) = building {
            // In place of the note on slow aggregates, which this one says too, first: the header has room
            // for few notes.
            notes.insert(
                0,
                format!(
                    "{} is too large to read in one poll: building its copy by windows ({:.0}% done); \
                     until then calm profiles are the server's aggregates, refreshed less often",
                    self.lease.display,
                    done * 100.0
                ),
            );
        } else if let Some(note) = lease.note {
            notes.push(note);
        }
        if let Some(secs) = self.mirror.as_ref().and_then(Mirror::sweep_seconds)
            && secs > 0.0
            && building.is_none()
        {
            let (table, secs) = (&self.lease.display, secs.ceil());
            match &self.detail {
                // Slower than the TTL: contention recorded in place may show only after it is over. Said in
                // few words: the header has one line for it, 180 columns on a bastion's terminal.
                LeaseDetail::Summary { ttl, .. } if secs > ttl.as_secs_f64() => {
                    lag = Some(format!(
                        "{table} is read by windows: a change to a row can take {secs:.0}s to show, over the \
                         {:.0}s TTL (a large or bloated table; a long transaction keeps dead rows)",
                        ttl.as_secs_f64().ceil()
                    ));
                }
                _ => notes.push(format!(
                    "{table} is too large to scan every poll: read by windows, a change to a row shows \
                     within {secs:.0}s"
                )),
            }
        }
        Snapshot {
            server_now: lease_read.server_now,
            poll_ms: started.elapsed().as_secs_f64() * 1000.0,
            leases: lease_read.rows,
            summaries: lease_read.summaries,
            sessions: activity.sessions,
            waits: activity.waits,
            visibility: self.visibility,
            lease_error: lease.unread,
            pooled: self.pooled,
            parts: Vec::new(),
            leases_as_of,
            locks_error,
            lag,
            recovery: activity.recovery,
            deadlocks: activity.deadlocks,
            prepared,
            notes,
        }
    }

    /// One poll behind a transaction-mode pooler: every read in one read-only transaction, one round trip:
    /// the sessions, the waits, and then either the lease rows or (while the table is known to be locked) who
    /// locks it. What needs a second read in a direct session waits for the next poll: the names of row-lock
    /// waits' rows, the prepared transactions that block, and the lockers' names after a read first hit
    /// `lock_timeout`.
    async fn poll_pooled(&mut self) -> Result<Polled, SourceError> {
        let refresh = match &self.detail {
            LeaseDetail::Summary { ttl, .. } if !self.table_locked => {
                self.aggregates_due(*ttl, false)
            }
            _ => false,
        };
        let keys_first = self.mirror.as_ref().is_some_and(Mirror::needs_keys) && !self.table_locked;
        let next = self.mirror_next();
        let lockers_read = LockersRead(&self.lease);
        let keys_read = KeysRead(&self.lease);
        let lease_read = LeaseReadOf::new(&self.lease, &self.detail, refresh, (next.as_ref(), 0));
        let rows_read = RowsAtRead {
            table: &self.lease,
            lookup: &self.pending_rows,
        };
        let prepared_read = PreparedRead {
            waiters: self.pending_prepared.clone(),
        };
        let mut batch = Batch::default();
        let activity_at = self.activity.add_to(&mut batch);
        let lockers_at = self.table_locked.then(|| batch.add(&lockers_read));
        let keys_at = keys_first.then(|| batch.add(&keys_read));
        let lease_at = (!self.table_locked).then(|| batch.add(&lease_read));
        let rows_at =
            (!self.table_locked && !self.pending_rows.is_empty()).then(|| batch.add(&rows_read));
        let prepared_at = (!self.pending_prepared.is_empty()).then(|| batch.add(&prepared_read));
        let ran = batch.run(&mut self.conn, self.limits).await;

        let mut activity = match self.activity.from_batch(&ran, activity_at) {
            Some(activity) => activity?,
            None => {
                return Err(ran.failure().map_or_else(
                    || SourceError::Query("the poll's transaction returned no sessions".into()),
                    |(_, e)| e.clone(),
                ));
            }
        };
        let mut lockers = Vec::new();
        if let Some(found) = lockers_at.and_then(|at| ran.take(at, &lockers_read)) {
            lockers = found?;
            self.table_locked = !lockers.is_empty();
        }
        // A failed lookup (rows or prepared transactions) leaves names out; a failed lease read is said on
        // screen; any other failure fails the poll.
        let lease_taken = lease_at.map(|at| (ran.take(at, &lease_read), ran.failed(at).cloned()));
        let rows_found = rows_at
            .and_then(|at| ran.take(at, &rows_read))
            .transpose()?;
        let prepared = prepared_at
            .and_then(|at| ran.take(at, &prepared_read))
            .transpose()?
            .unwrap_or_default();
        if let Some((at, e)) = ran.failure()
            && ![lease_at, rows_at, prepared_at].contains(&Some(at))
        {
            return Err(e.clone());
        }
        if let (Some(names), Some(mirror)) = (
            keys_at
                .and_then(|at| ran.take(at, &keys_read))
                .transpose()?,
            self.mirror.as_mut(),
        ) {
            mirror.retain(&names);
        }
        if lease_read.reads_all_for_mirror()
            && matches!(
                lease_taken,
                Some((None, Some(SourceError::StatementTimeout)))
            )
        {
            self.give_up_mirror();
        }
        let lease = match lease_taken {
            Some(taken) => self.pooled_leases(taken, refresh, &activity)?,
            None => LeaseOutcome::unread(table_locked_text(&self.lease.name, &lockers, &activity)),
        };
        self.name_rows_pooled(rows_found.as_deref(), &mut activity);
        self.pending_prepared = locks::blocked_by_prepared(&activity.waits);
        Ok(Polled {
            lease,
            activity,
            prepared,
            locks_error: None,
        })
    }

    /// The lease rows of a pooled poll, or why they are missing: what the batch gave for the lease read (its
    /// rows, if it completed; the error, if it is the one that failed).
    fn pooled_leases(
        &mut self,
        (rows, failed): (Option<Result<LeaseRows, SourceError>>, Option<SourceError>),
        refresh: bool,
        activity: &locks::Activity,
    ) -> Result<LeaseOutcome, SourceError> {
        match (rows, failed) {
            (Some(rows), _) => Ok(LeaseOutcome {
                read: Some(self.lease_read(rows?, refresh)),
                unread: None,
                note: self.aggregates_note(),
            }),
            (None, Some(SourceError::LockTimeout)) => {
                // Who holds the lock is asked by the next poll, instead of the rows.
                self.table_locked = true;
                Ok(LeaseOutcome::unread(table_locked_text(
                    &self.lease.name,
                    &[],
                    activity,
                )))
            }
            (None, Some(e)) if !e.needs_reconnect() => {
                if refresh && matches!(e, SourceError::StatementTimeout) {
                    self.slow_aggregates += 1;
                    self.summaries_at = Some(Instant::now());
                }
                Ok(LeaseOutcome::unread(unread_text(&e)))
            }
            (None, Some(e)) => Err(e),
            (None, None) => Err(SourceError::Query(
                "the lease read returned no result".into(),
            )),
        }
    }

    /// Behind a pooler: notes whether someone queues for the table itself (the next poll then asks who locks
    /// it instead of queueing too), names the rows of row-lock waits from this poll's lookup, and keeps what
    /// is still unnamed for the next poll's.
    fn name_rows_pooled(&mut self, found: Option<&[RowAt]>, activity: &mut locks::Activity) {
        // Someone queues for the table itself: the next poll asks who locks it instead of queueing too.
        if self.queued_for_table(&activity.waits) {
            self.table_locked = true;
        }
        let unnamed = |w: &LockWait| w.on_lease_table && w.lease_row.is_none();
        if let Some(found) = found {
            self.name_rows(found, &mut activity.waits, unnamed);
        }
        self.pending_rows = row_lookup(&activity.waits, unnamed);
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
                let named = crate::model::snapshot::RowName {
                    group: row.group.clone(),
                    key: row.key.clone(),
                };
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
    fn aggregates_read(&mut self, fresh: Vec<ProfileSummary>) {
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

    /// Names the lease row of each new row-lock wait on the lease table (known waits keep their name). Best
    /// effort: a failure leaves it unnamed.
    async fn attribute_row_waits(&mut self, activity: &mut locks::Activity) {
        let new_waits = &activity.new_waits;
        let new_row_wait = |w: &LockWait| w.on_lease_table && new_waits.contains(&w.pid);
        let lookup = row_lookup(&activity.waits, new_row_wait);
        if !lookup.is_empty() {
            let rows = RowsAtRead {
                table: &self.lease,
                lookup: &lookup,
            };
            match read::run(&mut self.conn, None, &rows).await {
                Ok(found) => self.name_rows(&found, &mut activity.waits, new_row_wait),
                Err(e) => tracing::debug!(error = %e, "could not name the rows of row-lock waits"),
            }
        }
    }

    /// How many lease rows this monitor's reads transferred (for tests and the benchmarks).
    pub fn lease_rows_read(&self) -> u64 {
        self.lease_rows_read
    }

    /// Chooses whether the dashboard's polls read only what changed (the default for a table) or have the
    /// server aggregate every poll (the way of a view): for the benchmark that compares them.
    pub fn set_incremental(&mut self, on: bool) {
        self.mirror = (on && self.lease.incremental()).then(Mirror::default);
    }

    /// What the lease read of a dashboard poll may cost before the table is read by windows (tests and
    /// benchmarks set it; [`SCAN_BUDGET`] otherwise).
    pub fn set_scan_budget(&mut self, budget: Duration) {
        self.scan_budget = budget;
    }

    /// The caller calls [`Monitor::between_polls`] once each poll is out (the dashboard's poller does; a
    /// monitor used otherwise reads all of it in its polls):
    /// - a table read by windows has its sweep read there, and a poll reads only the pages added since the
    ///   last one and the rows to look up;
    /// - the mirror's per-profile summaries of calm profiles (every [`SUMMARY_REFRESH`] at most) are taken
    ///   there, and show from the next poll (the first poll takes them itself);
    /// - on a direct connection, the backstop re-read of the details of waits that go on (`pg_locks`, every
    ///   [`locks::DETAIL_REFRESH`]) is read there, and a poll reads `pg_locks` only for a new wait. Behind a
    ///   pooler a poll reads the waits whenever anyone waits, so there is no backstop to move.
    pub fn read_between_polls(&mut self) {
        self.apart = true;
        if !self.pooled {
            self.activity.refresh_between_polls();
        }
    }

    /// How long known wait details are trusted before `pg_locks` is read again (tests shorten
    /// [`locks::DETAIL_REFRESH`]).
    pub fn set_detail_refresh(&mut self, after: Duration) {
        self.activity.set_detail_refresh(after);
    }

    /// What is done between polls (see [`Monitor::read_between_polls`]): the mirror's summaries when they
    /// fell due, the sweep's next window, then the waits' details when the backstop is due. All show from the
    /// next poll. A read that fails is tried again later; one that leaves the connection unusable is returned
    /// (the poller reconnects).
    pub async fn between_polls(&mut self) -> Result<(), SourceError> {
        if std::mem::take(&mut self.summaries_wanted)
            && let Some(fresh) = self.mirror.as_mut().and_then(Mirror::summaries)
        {
            let began = Instant::now();
            self.summaries = Arc::new(fresh);
            tracing::trace!(
                summaries_ms = began.elapsed().as_secs_f64() * 1e3,
                "mirror between polls"
            );
        }
        self.sweep().await?;
        let got = tokio::time::timeout(
            self.limits.client_timeout,
            self.activity.refresh(&mut self.conn),
        )
        .await
        .map_err(|_| SourceError::Timeout(self.limits.client_timeout))?;
        match got {
            Err(e) if e.needs_reconnect() => Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "re-reading the waits' details failed; they are read again later");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    /// Reads the next window of the sweep of a table read by windows, when the sweep is read between polls;
    /// its rows go into the mirror for the next poll. A failure leaves the window for the next time; one that
    /// leaves the connection unusable is returned.
    async fn sweep(&mut self) -> Result<(), SourceError> {
        let Some(next) = self.mirror.as_ref().and_then(Mirror::next_sweep) else {
            return Ok(());
        };
        let Some((mut rows, took)) = self.window_between_polls(next, 0, "sweep").await? else {
            return Ok(());
        };
        if let (Some(delta), Some(mirror)) = (rows.delta.take(), self.mirror.as_mut()) {
            // The tests' budget of nothing keeps windows small, as it does in a poll.
            let timing = SweepTiming {
                took,
                budget: self.scan_budget.min(SWEEP_BUDGET),
                cap: self.scan_budget.min(SWEEP_CAP),
                cycle: match &self.detail {
                    LeaseDetail::Summary { ttl, .. } => Some(*ttl),
                    LeaseDetail::Full => None,
                },
            };
            mirror.apply_sweep(rows.packed.iter(), delta, &timing);
        }
        Ok(())
    }

    /// Reads the pages added to a table read by windows since the last read, between two polls (the
    /// dashboard's poller does, some time before the next poll): that poll then reads only the rows written
    /// since, a fraction of an interval's changes, and is as much shorter (at 20,000 renewals a second, most
    /// of a poll's time was reading them). What is read in all stays the same. A failure leaves the pages to
    /// the next poll; one that leaves the connection unusable is returned.
    pub async fn read_new_pages(&mut self) -> Result<(), SourceError> {
        let Some(next) = self.mirror.as_ref().and_then(Mirror::next_new_pages) else {
            return Ok(());
        };
        let pages = tokio::time::timeout(
            self.limits.client_timeout,
            read::run(&mut self.conn, None, &PagesRead(&self.lease)),
        )
        .await
        .map_err(|_| SourceError::Timeout(self.limits.client_timeout))?;
        let pages = match pages {
            Ok(pages) => pages,
            Err(e) if e.needs_reconnect() => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "reading the lease table's size between polls failed; its new pages are read by the next poll");
                return Ok(());
            }
        };
        let Some((mut rows, _)) = self.window_between_polls(next, pages, "new pages").await? else {
            return Ok(());
        };
        if let (Some(delta), Some(mirror)) = (rows.delta.take(), self.mirror.as_mut()) {
            mirror.apply_new_pages(rows.packed.iter(), delta);
        }
        Ok(())
    }

    /// Runs a windowed read between polls (`pages`: the table's size just before), counting its rows: the
    /// rows and what the read took; `None` when it failed in a way the next time may not (said in the log).
    async fn window_between_polls(
        &mut self,
        next: Next,
        pages: u64,
        what: &str,
    ) -> Result<Option<(LeaseRows, Duration)>, SourceError> {
        let Next::Window {
            since,
            tail,
            sweep,
            confirm,
        } = next
        else {
            return Ok(None);
        };
        let read = WindowRead {
            table: &self.lease,
            pages,
            since: &since,
            tail,
            sweep,
            confirm: &confirm,
        };
        let began = Instant::now();
        let got = tokio::time::timeout(
            self.limits.client_timeout,
            read::run(&mut self.conn, None, &read),
        )
        .await
        .map_err(|_| SourceError::Timeout(self.limits.client_timeout))?;
        match got {
            Ok(rows) => {
                self.lease_rows_read += rows.packed.len() as u64;
                Ok(Some((rows, began.elapsed())))
            }
            Err(e) if !e.needs_reconnect() => {
                tracing::warn!(error = %e, "reading the lease table's {what} between polls failed; it is read later");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Whether the lease table is read by windows (see [`super::mirror`]).
    pub fn windowed(&self) -> bool {
        self.mirror.as_ref().is_some_and(Mirror::windowed)
    }

    /// Whether the dashboard's polls read only what changed (see [`super::mirror`]).
    pub fn incremental(&self) -> bool {
        self.mirror.is_some()
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
