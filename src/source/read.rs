//! A read is a value: its statement (written once, for the server it runs on) and how its rows decode. Two
//! runners take any read:
//! - [`run`], on a direct connection: the statement bound with the extended protocol (prepared once, cached);
//! - [`Batch`], behind a transaction-mode pooler: every read of a poll written out with its parameters as
//!   literals, in one read-only transaction, one round trip (see [`super::simple`]).
//!
//! Adding a read is a struct that implements [`Read`] beside the others of its table or view, its model type,
//! and the place that shows it; neither runner changes.

use sqlx::postgres::{PgConnection, PgRow};

use super::connect::SessionLimits;
use super::error::SourceError;
use super::simple::{self, Outcome, Param};

/// A statement and its parameters (`$1`, `$2`, … in the text).
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: String,
    pub params: Vec<Param>,
}

impl Statement {
    /// A statement with these parameters.
    pub fn new(sql: impl Into<String>, params: Vec<Param>) -> Self {
        Self {
            sql: sql.into(),
            params,
        }
    }
}

/// One read of the monitor.
pub trait Read {
    /// What its rows decode to.
    type Output;

    /// Its statement.
    fn statement(&self) -> Statement;

    /// Its rows, decoded.
    fn decode(&self, rows: &[PgRow]) -> Result<Self::Output, SourceError>;
}

/// Runs one read on a direct connection; with `pooled`, in a read-only transaction of its own (the setup
/// reads behind a pooler).
pub async fn run<R: Read>(
    conn: &mut PgConnection,
    pooled: Option<SessionLimits>,
    read: &R,
) -> Result<R::Output, SourceError> {
    let statement = read.statement();
    let began = std::time::Instant::now();
    let rows = simple::fetch(conn, pooled, &statement.sql, &statement.params).await?;
    let fetched = began.elapsed();
    let decoded = read.decode(&rows);
    // Where a poll's time goes, read by read (`LOCKTOP_LOG=locktop::source=trace`).
    tracing::trace!(
        read = std::any::type_name::<R>(),
        rows = rows.len(),
        fetch_ms = fetched.as_secs_f64() * 1e3,
        decode_ms = began.elapsed().saturating_sub(fetched).as_secs_f64() * 1e3,
        "read"
    );
    decoded
}

/// The reads of one poll behind a transaction-mode pooler, run together in one transaction.
#[derive(Debug, Default)]
pub struct Batch {
    statements: Vec<String>,
}

/// Where a read's rows are in a [`Batch`]'s result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot(usize);

impl Batch {
    /// Adds a read; its rows come back at the slot returned.
    pub fn add(&mut self, read: &impl Read) -> Slot {
        let statement = read.statement();
        self.statements
            .push(simple::inline(&statement.sql, &statement.params));
        Slot(self.statements.len() - 1)
    }

    /// Runs every read in one read-only transaction with the session's limits.
    pub async fn run(self, conn: &mut PgConnection, limits: SessionLimits) -> Ran {
        Ran(simple::transaction(conn, limits, &self.statements).await)
    }
}

/// What a [`Batch`] returned: the rows of each read that completed, and the error that cut the rest short.
#[derive(Debug)]
pub struct Ran(Outcome);

impl Ran {
    /// The decoded rows of the read at `slot`; `None` when it did not complete (it, or one before it, failed).
    pub fn take<R: Read>(&self, slot: Slot, read: &R) -> Option<Result<R::Output, SourceError>> {
        self.0.rows(slot.0).map(|rows| read.decode(rows))
    }

    /// The error that cut the transaction short, and the read it cut (`None`: everything ran).
    pub fn failure(&self) -> Option<(Slot, &SourceError)> {
        self.0
            .error
            .as_ref()
            .map(|e| (Slot(self.0.results.len()), e))
    }

    /// The error, when it is the read at `slot` that failed.
    pub fn failed(&self, slot: Slot) -> Option<&SourceError> {
        self.failure().and_then(|(at, e)| (at == slot).then_some(e))
    }
}
