//! The lease table: checking the configured mapping against the catalog, and reading the rows.
//!
//! The table name is resolved by the server (`to_regclass`) and re-quoted by it (`quote_ident`); column names
//! are checked against `pg_attribute` and quoted here. No SQL is ever built from unquoted user text. Every
//! mapped column is cast in SQL (to text, timestamptz or bigint) so any column type works.
//!
//! The rows come back as one row of parallel arrays with the server's `now()` of the same statement: one
//! message instead of one per lease row, which keeps a poll of 100,000 rows cheap to decode.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnection;
use sqlx::{Row, postgres::PgRow};

use super::connect::SessionLimits;
use super::error::SourceError;
use super::packed::{Optional, PackedRows, Time};
use super::read::{Read, Statement};
use super::simple::{self, Param};
use super::text::{Lossy, text};
use crate::config::LeaseMapping;
use crate::model::LeaseRow;
use crate::model::snapshot::ProfileSummary;

/// The lease table, resolved and checked, with its poll statement.
#[derive(Debug, Clone)]
pub struct LeaseTable {
    /// `schema.table`, quoted by the server.
    pub name: String,
    /// The name as `regclass` prints it (no schema where the search path finds it), as `pg_locks` waits name
    /// their relations.
    pub display: String,
    pub oid: u32,
    /// What the mapping leaves out or assumes, for the screen and the JSON notes.
    pub notes: Vec<String>,
    select: String,
    /// The summary-mode statement: per-profile aggregates plus detail rows of the profiles that matter.
    summary: String,
    /// The same without the aggregates: the clock row and the detail rows only (between aggregate refreshes).
    hot: String,
    /// The statements of incremental polls (see [`ChangesRead`]); `None` for a view, whose rows have no `xmin`.
    changes: Option<Changes>,
    group_expr: String,
    key_expr: String,
    has: Optional,
}

/// The statements of incremental polls: every row, and the rows changed since a snapshot.
#[derive(Debug, Clone)]
struct Changes {
    all: String,
    since: String,
    /// A plain table's windowed read (see [`WindowRead`]); `None` for a partitioned table, whose row
    /// addresses are per partition.
    window: Option<String>,
}

impl Optional {
    /// The signals locktop cannot use because their optional column is not mapped, in words for the screen.
    fn missing_signals(self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.contention_count || !self.last_contended_at {
            out.push("no failure bookkeeping: contention is seen only as lock waits".to_owned());
        }
        if !self.contended_since {
            out.push(
                "no contended_since: episode length counts from when locktop first saw it"
                    .to_owned(),
            );
        }
        out
    }
}

/// The mapped columns as SQL: what each read selects, which optional columns exist, and the notes.
struct Mapped {
    select: Vec<String>,
    exprs: Vec<(&'static str, String)>,
    has: Optional,
    group_expr: String,
    key_expr: String,
    notes: Vec<String>,
}

/// Checks every mapped column against the table's `columns` (name, type) and casts it in SQL: any text-like
/// type to text, counts to int8, times to timestamptz (a zone-less time in the zone it was written in). An
/// optional column left at its default name that the table lacks is unmapped, with a note.
async fn map_columns(
    conn: &mut PgConnection,
    pooled: Option<SessionLimits>,
    mapping: &LeaseMapping,
    name: &str,
    columns: &[(String, String)],
) -> Result<Mapped, SourceError> {
    let mut select = Vec::new();
    let mut exprs: Vec<(&'static str, String)> = Vec::new();
    let mut has = Optional::default();
    let mut group_expr = String::new();
    let mut key_expr = String::new();
    let mut notes = Vec::new();
    let mut zone: Option<String> = None;
    for c in mapping.columns() {
        let Some((_, type_name)) = columns.iter().find(|(name, _)| name == c.column) else {
            if !c.required && !c.explicit {
                // Its default name, absent here: locktop works without it, and says so.
                notes.push(format!(
                    "{name} has no column {:?}: [lease] {} is unmapped",
                    c.column, c.key
                ));
                continue;
            }
            return Err(SourceError::ColumnMissing {
                table: name.to_owned(),
                key: c.key,
                column: c.column.to_owned(),
                available: columns
                    .iter()
                    .map(|(c, _)| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                unmap: if c.required {
                    String::new()
                } else {
                    format!(", or unmap it with {} = \"\"", c.key)
                },
            });
        };
        let kind = Kind::of(c.key);
        if !kind.accepts(type_name) {
            return Err(SourceError::ColumnType {
                table: name.to_owned(),
                key: c.key,
                column: c.column.to_owned(),
                found: type_name.clone(),
                expected: kind.expected(),
            });
        }
        let column = quote_ident(c.column);
        let expr = match kind {
            // A zone-less time is read in the zone it was written in: the monitor's session runs in UTC
            // (sqlx sets it), and a plain cast would shift it by the server's offset.
            Kind::Time if !type_name.starts_with("timestamp with time zone") => {
                if zone.is_none() {
                    zone = Some(writers_zone(conn, pooled, mapping).await?);
                }
                let zone = zone.as_deref().unwrap_or("UTC");
                format!(
                    "(t.{column}::timestamp AT TIME ZONE {})",
                    Param::Text(zone.to_owned()).literal()
                )
            }
            _ => format!("t.{column}::{}", kind.cast()),
        };
        match c.key {
            "group" => group_expr.clone_from(&expr),
            "key" => key_expr.clone_from(&expr),
            "acquired_at" => has.acquired_at = true,
            "contention_count" => has.contention_count = true,
            "contended_since" => has.contended_since = true,
            "last_contended_at" => has.last_contended_at = true,
            _ => {}
        }
        select.push(format!("array_agg({expr}) AS {}", quote_ident(c.key)));
        exprs.push((c.key, expr));
    }
    if let Some(zone) = &zone {
        notes.push(format!(
            "times without a zone in {name} are read as {zone} (set [lease] timezone if the application \
             writes another)"
        ));
    }
    notes.extend(has.missing_signals());
    Ok(Mapped {
        select,
        exprs,
        has,
        group_expr,
        key_expr,
        notes,
    })
}

/// The zone the application wrote zone-less times in: `[lease] timezone`, else the database's own
/// `timezone` setting (`ALTER DATABASE … SET timezone`, what its sessions get), else the server's (its
/// `log_timezone`, which initdb sets to the same zone as `timezone` and no client can change).
async fn writers_zone(
    conn: &mut PgConnection,
    pooled: Option<SessionLimits>,
    mapping: &LeaseMapping,
) -> Result<String, SourceError> {
    if !mapping.timezone.trim().is_empty() {
        return Ok(mapping.timezone.trim().to_owned());
    }
    let rows = simple::fetch(
        conn,
        pooled,
        "SELECT coalesce(( \
           SELECT substr(c, length('timezone=') + 1) \
           FROM pg_catalog.pg_db_role_setting s, unnest(s.setconfig) c \
           WHERE s.setrole = 0 AND lower(c) LIKE 'timezone=%' \
             AND s.setdatabase = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) \
           LIMIT 1), current_setting('log_timezone'))",
        &[],
    )
    .await?;
    let found: Vec<(String,)> = simple::decode(&rows)?;
    Ok(found
        .into_iter()
        .next()
        .map_or_else(|| "UTC".to_owned(), |(z,)| z))
}

/// Quotes an identifier for SQL: double quotes, inner quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// What kind of value a mapped column must hold, and how it is cast.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Time,
    Count,
}

impl Kind {
    fn of(key: &str) -> Self {
        match key {
            "expires_at" | "acquired_at" | "contended_since" | "last_contended_at" => Self::Time,
            "contention_count" => Self::Count,
            _ => Self::Text,
        }
    }

    fn cast(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Time => "timestamptz",
            Self::Count => "int8",
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Self::Text => "any type",
            Self::Time => "timestamp, timestamptz or date",
            Self::Count => "an integer or numeric type",
        }
    }

    fn accepts(self, type_name: &str) -> bool {
        match self {
            Self::Text => true,
            Self::Time => type_name.starts_with("timestamp") || type_name == "date",
            Self::Count => {
                matches!(type_name, "smallint" | "integer" | "bigint" | "numeric")
                    || type_name.starts_with("numeric")
            }
        }
    }
}

impl LeaseTable {
    /// Resolves the mapping against the catalog: the table must exist and be readable, every mapped column
    /// must exist with a usable type. The error names what is missing and how to fix it.
    ///
    /// `pooled` carries the limits of a transaction-mode pooler's connection (see [`simple`]).
    pub async fn resolve(
        conn: &mut PgConnection,
        pooled: Option<SessionLimits>,
        mapping: &LeaseMapping,
    ) -> Result<Self, SourceError> {
        let found = simple::fetch(
            conn,
            pooled,
            "SELECT c.oid::int8, quote_ident(n.nspname) || '.' || quote_ident(c.relname), \
                    has_table_privilege(c.oid, 'SELECT'), c.oid::regclass::text, c.relkind::text \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.oid = pg_catalog.to_regclass($1)",
            &[Param::Text(mapping.table.clone())],
        )
        .await
        .map_err(|e| match e {
            // to_regclass raises on malformed names such as "a.b.c.d".
            SourceError::Query(_) => SourceError::TableMissing {
                table: mapping.table.clone(),
            },
            other => other,
        })?;
        let found: Option<(i64, String, bool, String, String)> = simple::decode(&found)?.pop();
        let Some((oid, name, readable, display, relkind)) = found else {
            return Err(SourceError::TableMissing {
                table: mapping.table.clone(),
            });
        };
        if !readable {
            return Err(SourceError::Permission(format!(
                "the monitor's role cannot SELECT from {name}"
            )));
        }
        let oid = u32::try_from(oid).map_err(|_| SourceError::TableMissing {
            table: name.clone(),
        })?;

        let columns: Vec<(String, String)> = simple::decode(
            &simple::fetch(
                conn,
                pooled,
                "SELECT attname::text, format_type(atttypid, NULL) FROM pg_catalog.pg_attribute \
                 WHERE attrelid = $1::int8::oid AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                &[Param::Int(i64::from(oid))],
            )
            .await?,
        )?;

        let Mapped {
            select,
            exprs,
            has,
            group_expr,
            key_expr,
            notes,
        } = map_columns(conn, pooled, mapping, &name, &columns).await?;
        let select = format!(
            "SELECT now() AS server_now, {} FROM {name} AS t",
            select.join(", ")
        );
        let summary = summary_sql(&name, &exprs, has, true);
        let hot = summary_sql(&name, &exprs, has, false);
        // Only a table's rows have an `xmin` to tell what changed (a view's have none).
        let changes = matches!(relkind.as_str(), "r" | "p" | "m").then(|| Changes {
            all: changes_sql(&name, oid, &exprs, false),
            since: changes_sql(&name, oid, &exprs, true),
            window: matches!(relkind.as_str(), "r" | "m")
                .then(|| window_sql(&name, &exprs, &group_expr, &key_expr)),
        });
        Ok(Self {
            name,
            display,
            oid,
            notes,
            select,
            summary,
            hot,
            changes,
            group_expr,
            key_expr,
            has,
        })
    }
}

/// Lease rows as read, with the server's `now()` of the same statement.
#[derive(Debug, Clone, Default)]
pub struct LeaseRows {
    pub server_now: DateTime<Utc>,
    pub rows: Vec<LeaseRow>,
    /// The rows of the mirror's reads ([`ChangesRead`], [`WindowRead`]), left packed for it to put (the
    /// other reads give `rows`).
    pub packed: PackedRows,
    /// In summary mode, one aggregate per profile (empty for a full read, and between aggregate refreshes).
    pub summaries: Vec<ProfileSummary>,
    /// An incremental read's mark and counts (see [`ChangesRead`]).
    pub delta: Option<Delta>,
}

/// Every lease row (the `snapshot` command: one poll, every holder in the JSON). The rows come back as one row
/// of parallel arrays: one message instead of one per lease row, cheap to decode at 100,000 rows.
#[derive(Debug, Clone, Copy)]
pub struct FullRead<'a>(pub &'a LeaseTable);

impl Read for FullRead<'_> {
    type Output = LeaseRows;

    fn statement(&self) -> Statement {
        Statement::new(self.0.select.clone(), Vec::new())
    }

    fn decode(&self, rows: &[PgRow]) -> Result<LeaseRows, SourceError> {
        let row = rows
            .first()
            .ok_or_else(|| SourceError::Query("the lease read returned no row".into()))?;
        decode(row, self.0.has).map_err(|e| SourceError::Query(format!("decoding lease rows: {e}")))
    }
}

/// A point in the server's transaction history, from `pg_current_snapshot()`: what had committed when a
/// poll read the table. A row written later has an `xmin` at or past `xmax`, or among `running`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XidMark {
    /// The first transaction id not yet assigned, low 32 bits (the width of `xmin`).
    pub xmax: u32,
    /// Transactions in progress, low 32 bits.
    pub running: Vec<u32>,
}

/// `FrozenTransactionId`: no transaction has it, and its `age` is the largest there is.
const FROZEN_XID: u32 = 2;

impl XidMark {
    /// The mark before every row: a read of the rows written since it is a read of every row (its `xmax`,
    /// `FrozenTransactionId`, is older by `age` than any row's `xmin`). What pages never read are marked with.
    pub fn every() -> Self {
        Self {
            xmax: FROZEN_XID,
            running: Vec::new(),
        }
    }

    /// Whether this is [`XidMark::every`].
    pub fn is_every(&self) -> bool {
        self.xmax == FROZEN_XID
    }

    /// Older first: ids compare modulo 2^32, as the server's do (a difference within half the range); the
    /// mark before every row is the oldest.
    pub fn age_order(&self, other: &Self) -> std::cmp::Ordering {
        match (self.is_every(), other.is_every()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Less,
            (false, true) => std::cmp::Ordering::Greater,
            (false, false) => (self.xmax.wrapping_sub(other.xmax) as i32).cmp(&0),
        }
    }

    /// Parses `pg_snapshot` text, `xmin:xmax:xip,xip…` (ids 64 bits wide).
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split(':');
        let _xmin: u64 = parts.next()?.parse().ok()?;
        let xmax: u64 = parts.next()?.parse().ok()?;
        let running = match parts.next() {
            None | Some("") => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|x| x.parse::<u64>().ok().map(|x| x as u32))
                .collect::<Option<Vec<u32>>>()?,
        };
        Some(Self {
            xmax: xmax as u32,
            running,
        })
    }
}

/// What an incremental read says besides its rows (which are those written since the mark it was given, or
/// every row when it was given none, and the sweep's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    /// The snapshot of this read: the next poll asks for what was written after it.
    pub mark: XidMark,
    /// The rows in the table now.
    pub total: i64,
    /// The table's size in pages, for the sweep.
    pub pages: u64,
    /// The read was of every row.
    pub all: bool,
    /// The read was a window (see [`WindowRead`]): no count, and no mark to read changes since.
    pub window: bool,
}

/// The lease rows written since `since` (every row without it), with the clock, the snapshot they were read
/// in, how many rows the table holds and its size in pages: an incremental poll. Rows in `sweep` (a range of
/// pages, `(from, to)`) come back too whatever their age, so that every row is read again now and then.
/// One scan of the table, and the changed rows in one message of parallel arrays.
#[derive(Debug, Clone, Copy)]
pub struct ChangesRead<'a> {
    pub table: &'a LeaseTable,
    pub since: Option<&'a XidMark>,
    pub sweep: (u64, u64),
}

impl LeaseTable {
    /// Whether this table can be polled incrementally (it is a table, not a view).
    pub fn incremental(&self) -> bool {
        self.changes.is_some()
    }

    /// Whether this table can be read by windows of pages (a plain table: one range of row addresses).
    pub fn windowable(&self) -> bool {
        self.changes.as_ref().is_some_and(|c| c.window.is_some())
    }
}

impl Read for ChangesRead<'_> {
    type Output = LeaseRows;

    fn statement(&self) -> Statement {
        let Some(changes) = &self.table.changes else {
            return FullRead(self.table).statement();
        };
        match self.since {
            None => Statement::new(changes.all.clone(), Vec::new()),
            Some(mark) => {
                // The running transactions are numbers, written into the text: a constant array is searched
                // by hash (PostgreSQL 14 and later), a parameter once per row for every element.
                let running: Vec<String> = mark.running.iter().map(ToString::to_string).collect();
                Statement::new(
                    changes
                        .since
                        .replace("{running}", &format!("{{{}}}", running.join(","))),
                    vec![
                        Param::Text(mark.xmax.to_string()),
                        Param::Text(format!("({},0)", self.sweep.0)),
                        Param::Text(format!("({},0)", self.sweep.1)),
                    ],
                )
            }
        }
    }

    fn decode(&self, rows: &[PgRow]) -> Result<LeaseRows, SourceError> {
        if self.table.changes.is_none() {
            return FullRead(self.table).decode(rows);
        }
        let (row, mut read, mark) = marked_rows(rows, self.table.has)?;
        let total: i64 = row.try_get("total").map_err(|e| undecodable(&e))?;
        let pages: i64 = row.try_get("pages").map_err(|e| undecodable(&e))?;
        read.delta = Some(Delta {
            mark,
            total,
            pages: pages.max(0) as u64,
            all: self.since.is_none(),
            window: false,
        });
        Ok(read)
    }
}

/// The rows of an incremental read (one, or for a read of every row one per chunk of the table, each with the
/// same clock, mark and counts): its lease rows, and the snapshot (`mark`) they were read in.
fn marked_rows(rows: &[PgRow], has: Optional) -> Result<(&PgRow, LeaseRows, XidMark), SourceError> {
    let row = rows
        .first()
        .ok_or_else(|| SourceError::Query("the lease read returned no row".into()))?;
    let server_now: DateTime<Utc> = row.try_get("server_now").map_err(|e| undecodable(&e))?;
    let mut packed = PackedRows::default();
    for r in rows {
        packed.append(r, has).map_err(|e| undecodable(&e))?;
    }
    let read = LeaseRows {
        server_now,
        packed,
        ..LeaseRows::default()
    };
    let mark: String = row.try_get("mark").map_err(|e| undecodable(&e))?;
    let mark = XidMark::parse(&mark)
        .ok_or_else(|| SourceError::Query(format!("unexpected snapshot {mark:?}")))?;
    Ok((row, read, mark))
}

fn undecodable(e: &sqlx::Error) -> SourceError {
    SourceError::Query(format!("decoding lease rows: {e}"))
}

/// The lease table's size in pages, read before a [`WindowRead`]: the pages a scan that starts after it finds
/// are at least these, so the next read's new pages start no later than the first this one could not see.
#[derive(Debug, Clone, Copy)]
pub struct PagesRead<'a>(pub &'a LeaseTable);

impl Read for PagesRead<'_> {
    type Output = u64;

    fn statement(&self) -> Statement {
        Statement::new(
            "SELECT pg_relation_size($1::int8::oid) / current_setting('block_size')::int8",
            vec![Param::Int(i64::from(self.0.oid))],
        )
    }

    fn decode(&self, rows: &[PgRow]) -> Result<u64, SourceError> {
        let found: Vec<(i64,)> = simple::decode(rows)?;
        Ok(found.first().map_or(0, |(pages,)| (*pages).max(0) as u64))
    }
}

/// A lease row's profile and key, as text (what a lookup by name takes).
pub type RowName = (String, String);

/// A windowed read, for a table too large to scan every poll: the rows written since `since` on the pages
/// added since the last read and a few before them (`tail` on) and on a window of the sweep (pages
/// `[from, to)`), and the rows named in `confirm` (by profile and key, to learn which of them are gone). Each
/// part is its own scan (a TID range scan, PostgreSQL 14 and later, or an index lookup where the table has
/// one), so the read costs what its pages cost, not the table.
#[derive(Debug, Clone, Copy)]
pub struct WindowRead<'a> {
    pub table: &'a LeaseTable,
    /// The table's size in pages just before (see [`PagesRead`]).
    pub pages: u64,
    pub since: &'a XidMark,
    pub tail: u64,
    pub sweep: (u64, u64),
    pub confirm: &'a [RowName],
}

impl Read for WindowRead<'_> {
    type Output = LeaseRows;

    fn statement(&self) -> Statement {
        let Some(sql) = self.table.changes.as_ref().and_then(|c| c.window.as_ref()) else {
            return FullRead(self.table).statement();
        };
        let (groups, keys) = self.confirm.iter().cloned().unzip();
        let running: Vec<String> = self.since.running.iter().map(ToString::to_string).collect();
        Statement::new(
            sql.replace("{running}", &format!("{{{}}}", running.join(","))),
            vec![
                Param::Text(format!("({},0)", self.sweep.0)),
                Param::Text(format!("({},0)", self.sweep.1)),
                Param::Text(format!("({},0)", self.tail)),
                Param::Texts(groups),
                Param::Texts(keys),
                Param::Text(self.since.xmax.to_string()),
            ],
        )
    }

    fn decode(&self, rows: &[PgRow]) -> Result<LeaseRows, SourceError> {
        let (_, mut read, mark) = marked_rows(rows, self.table.has)?;
        read.delta = Some(Delta {
            mark,
            pages: self.pages,
            window: true,
            ..Delta::default()
        });
        Ok(read)
    }
}

/// The (group, key) of every lease row: what an incremental poll reads to drop the rows deleted since.
#[derive(Debug, Clone, Copy)]
pub struct KeysRead<'a>(pub &'a LeaseTable);

impl Read for KeysRead<'_> {
    type Output = Vec<(Option<String>, Option<String>)>;

    fn statement(&self) -> Statement {
        Statement::new(
            format!(
                "SELECT array_agg({}) AS \"group\", array_agg({}) AS key FROM {} AS t",
                self.0.group_expr, self.0.key_expr, self.0.name
            ),
            Vec::new(),
        )
    }

    fn decode(&self, rows: &[PgRow]) -> Result<Self::Output, SourceError> {
        type Texts = Option<Vec<Option<Lossy>>>;
        let bad = |e: sqlx::Error| SourceError::Query(format!("decoding lease keys: {e}"));
        let Some(row) = rows.first() else {
            return Ok(Vec::new());
        };
        let groups: Texts = row.try_get("group").map_err(bad)?;
        let keys: Texts = row.try_get("key").map_err(bad)?;
        Ok(groups
            .unwrap_or_default()
            .into_iter()
            .zip(keys.unwrap_or_default())
            .map(|(g, k)| (text(g), text(k)))
            .collect())
    }
}

/// The incremental poll's statement: one scan that counts the rows and aggregates those changed. With
/// `since`, a row is changed when its `xmin` is at or past `$1` (by `age`, which counts modulo 2^32 as xids
/// do) or among the transactions that were running at the last read (`{running}`, replaced by the list), or
/// when it lies in the sweep's pages `[$2, $3)`. The parameters are converted once (sub-selects), not once
/// per row, and the `OFFSET 0` keeps the test from being evaluated once per aggregate.
fn changes_sql(table: &str, oid: u32, exprs: &[(&'static str, String)], since: bool) -> String {
    let changed = if since {
        "(age(t.xmin) <= (SELECT age($1::text::xid)) OR t.xmin = ANY('{running}'::xid[]) \
          OR (t.ctid >= (SELECT $2::text::tid) AND t.ctid < (SELECT $3::text::tid)))"
    } else {
        "true"
    };
    let arrays: Vec<String> = exprs
        .iter()
        .map(|(key, expr)| {
            format!(
                "array_agg({expr}) FILTER (WHERE t.locktop_changed) AS {}",
                quote_ident(key)
            )
        })
        .collect();
    let head = format!(
        "SELECT now() AS server_now, pg_current_snapshot()::text AS mark, \
                (pg_relation_size({oid}::oid) / current_setting('block_size')::int8) AS pages"
    );
    if since {
        return format!(
            "{head}, count(*) AS total, {} \
             FROM (SELECT t.*, {changed} AS locktop_changed FROM {table} AS t OFFSET 0) AS t",
            arrays.join(", ")
        );
    }
    // Every row: a row of arrays per chunk of the table, so that no message (and no receive buffer, which
    // the connection keeps at its largest) holds the whole table; an empty table is one row of no arrays.
    let columns: Vec<String> = exprs
        .iter()
        .map(|(key, _)| format!("c.{}", quote_ident(key)))
        .collect();
    format!(
        "{head}, coalesce(c.locktop_total, 0) AS total, {} \
         FROM (SELECT 1) AS one LEFT JOIN \
              (SELECT sum(count(*)) OVER ()::int8 AS locktop_total, {} \
                 FROM (SELECT t.*, {changed} AS locktop_changed, \
                              (row_number() OVER ()) / {CHUNK_ROWS} AS locktop_chunk \
                         FROM {table} AS t) AS t \
                GROUP BY t.locktop_chunk) AS c ON true",
        columns.join(", "),
        arrays.join(", ")
    )
}

/// Rows in each message of a read of every row: about 1 MB at 80 bytes a row.
const CHUNK_ROWS: u32 = 10_000;

/// The windowed read's statement: three scans in one (see [`WindowRead`]). The sweep's pages are `[$1, $2)`,
/// of which only the rows written since a mark come back (`$6` and `{running}`, as in [`changes_sql`]), as do
/// the tail's, `$3` on; the rows to confirm are pairs of `$4` and `$5`. A row in two parts comes back twice
/// (the mirror keeps one). The bounds are converted once (sub-selects) and are what a TID range scan takes.
fn window_sql(
    table: &str,
    exprs: &[(&'static str, String)],
    group_expr: &str,
    key_expr: &str,
) -> String {
    let arrays: Vec<String> = exprs
        .iter()
        .map(|(key, expr)| format!("array_agg({expr}) AS {}", quote_ident(key)))
        .collect();
    format!(
        "SELECT now() AS server_now, pg_current_snapshot()::text AS mark, {} \
         FROM (SELECT t.* FROM {table} AS t \
                WHERE t.ctid >= (SELECT $1::text::tid) AND t.ctid < (SELECT $2::text::tid) \
                  AND (age(t.xmin) <= (SELECT age($6::text::xid)) OR t.xmin = ANY('{{running}}'::xid[])) \
               UNION ALL \
               SELECT t.* FROM {table} AS t WHERE t.ctid >= (SELECT $3::text::tid) \
                  AND (age(t.xmin) <= (SELECT age($6::text::xid)) OR t.xmin = ANY('{{running}}'::xid[])) \
               UNION ALL \
               SELECT t.* FROM {table} AS t \
                WHERE ({group_expr}, {key_expr}) IN (SELECT * FROM unnest($4::text[], $5::text[]))) AS t",
        arrays.join(", ")
    )
}

/// Summary mode (the dashboard): one aggregate row per profile (when `aggregates`), and every row of the
/// profiles that have a failure within the TTL or an expired row, or that are in `focus`. What a large table
/// costs stays proportional to what is in trouble, not to its size.
#[derive(Debug, Clone, Copy)]
pub struct SummaryRead<'a> {
    pub table: &'a LeaseTable,
    pub ttl: std::time::Duration,
    pub focus: &'a [String],
    pub aggregates: bool,
}

impl Read for SummaryRead<'_> {
    type Output = LeaseRows;

    fn statement(&self) -> Statement {
        let sql = if self.aggregates {
            &self.table.summary
        } else {
            &self.table.hot
        };
        Statement::new(
            sql.clone(),
            vec![
                Param::Float(self.ttl.as_secs_f64()),
                Param::Texts(self.focus.to_vec()),
            ],
        )
    }

    fn decode(&self, rows: &[PgRow]) -> Result<LeaseRows, SourceError> {
        let mut server_now = None;
        let mut leases = Vec::new();
        let mut summaries = Vec::new();
        for r in simple::decode::<SummaryRow>(rows)? {
            match r.kind {
                2 => server_now = r.server_now,
                0 => summaries.push(ProfileSummary {
                    group: text(r.group).map(Arc::from),
                    rows: r.n_rows.unwrap_or(0),
                    held: r.n_held.unwrap_or(0),
                    sample_key: text(r.key).map(Arc::from),
                    sample_owner: text(r.owner).map(Arc::from),
                    sample_acquired_at: r.acquired_at.map(|t| t.0),
                    next_expiry: r.expires_at.map(|t| t.0),
                    failure_total: r.contention_count,
                    latest_contended_since: r.contended_since.map(|t| t.0),
                }),
                _ => leases.push(LeaseRow {
                    group: text(r.group).map(Arc::from),
                    key: text(r.key).map(Arc::from),
                    owner: text(r.owner).map(Arc::from),
                    expires_at: r.expires_at.map(|t| t.0),
                    acquired_at: r.acquired_at.map(|t| t.0),
                    contention_count: r.contention_count,
                    contended_since: r.contended_since.map(|t| t.0),
                    last_contended_at: r.last_contended_at.map(|t| t.0),
                }),
            }
        }
        let server_now = server_now
            .ok_or_else(|| SourceError::Query("lease summary returned no clock row".into()))?;
        Ok(LeaseRows {
            server_now,
            rows: leases,
            packed: PackedRows::default(),
            summaries,
            delta: None,
        })
    }
}

/// A session that holds or requests ACCESS EXCLUSIVE on the lease table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Locker {
    /// `None` for a prepared transaction.
    pub pid: Option<i32>,
    pub granted: bool,
}

/// The sessions that hold or request ACCESS EXCLUSIVE on the lease table, the only mode that blocks a plain
/// read, holders first. Reads `pg_locks`, so it runs only while the table is known or suspected to be locked.
#[derive(Debug, Clone, Copy)]
pub struct LockersRead<'a>(pub &'a LeaseTable);

impl Read for LockersRead<'_> {
    type Output = Vec<Locker>;

    fn statement(&self) -> Statement {
        Statement::new(
            "SELECT pid, granted FROM pg_locks \
             WHERE locktype = 'relation' AND relation = $1::int8::oid AND mode = 'AccessExclusiveLock' \
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND pid IS DISTINCT FROM pg_backend_pid() \
             ORDER BY granted DESC, pid",
            vec![Param::Int(i64::from(self.0.oid))],
        )
    }

    fn decode(&self, rows: &[PgRow]) -> Result<Vec<Locker>, SourceError> {
        simple::decode(rows)
    }
}

/// The (group, key) of rows for row-lock waits: by physical address (a waiter's tuple lock), and by the
/// blocker's transaction id against the rows' `xmax` (a waiter that holds no tuple lock, as the upsert's unique
/// check). Best effort: a row may have moved since `pg_locks` was read.
#[derive(Debug, Clone, Copy)]
pub struct RowsAtRead<'a> {
    pub table: &'a LeaseTable,
    pub lookup: &'a RowLookup,
}

impl Read for RowsAtRead<'_> {
    type Output = Vec<RowAt>;

    fn statement(&self) -> Statement {
        let addresses: Vec<String> = self
            .lookup
            .tids
            .iter()
            .map(|(p, t)| format!("({p},{t})"))
            .collect();
        let sql = format!(
            "SELECT (t.ctid::text::point)[0]::int8 AS page, (t.ctid::text::point)[1]::int8 AS tuple, \
                    t.xmax::text AS xmax, {} AS \"group\", {} AS key \
             FROM {} AS t WHERE t.ctid = ANY($1::text[]::tid[]) OR t.xmax = ANY($2::text[]::xid[])",
            self.table.group_expr, self.table.key_expr, self.table.name
        );
        Statement::new(
            sql,
            vec![
                Param::Texts(addresses),
                Param::Texts(self.lookup.xids.clone()),
            ],
        )
    }

    fn decode(&self, rows: &[PgRow]) -> Result<Vec<RowAt>, SourceError> {
        Ok(simple::decode::<RowAtRow>(rows)?
            .into_iter()
            .map(|r| RowAt {
                tid: (r.page as u32, r.tuple as u16),
                xmax: r.xmax,
                group: text(r.group),
                key: text(r.key),
            })
            .collect())
    }
}

/// What to look up in [`RowsAtRead`]: row addresses and transaction ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowLookup {
    pub tids: Vec<(u32, u16)>,
    pub xids: Vec<String>,
}

impl RowLookup {
    /// Whether there is nothing to look up.
    pub fn is_empty(&self) -> bool {
        self.tids.is_empty() && self.xids.is_empty()
    }
}

#[derive(sqlx::FromRow)]
struct RowAtRow {
    page: i64,
    tuple: i64,
    xmax: String,
    group: Option<Lossy>,
    key: Option<Lossy>,
}

/// A lease row found by [`RowsAtRead`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowAt {
    pub tid: (u32, u16),
    /// The row's `xmax`: the transaction that updated, deleted or locked it (0 when none).
    pub xmax: String,
    pub group: Option<String>,
    pub key: Option<String>,
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    kind: i32,
    server_now: Option<DateTime<Utc>>,
    group: Option<Lossy>,
    key: Option<Lossy>,
    owner: Option<Lossy>,
    expires_at: Option<Time>,
    acquired_at: Option<Time>,
    contention_count: Option<i64>,
    contended_since: Option<Time>,
    last_contended_at: Option<Time>,
    n_rows: Option<i64>,
    n_held: Option<i64>,
}

/// The summary-mode statements. `$1` is the TTL in seconds, `$2` the profiles in focus. Kind 2 is the clock
/// row (always one), kind 0 a profile's aggregate, kind 1 a detail row. Without `aggregates`, only the clock
/// and the detail rows: one filtered scan finds the profiles that matter, the group's index fetches their rows.
fn summary_sql(
    table: &str,
    exprs: &[(&'static str, String)],
    has: Optional,
    aggregates: bool,
) -> String {
    let col = |key: &str, cast: &str| {
        exprs
            .iter()
            .find(|(k, _)| *k == key)
            .map_or_else(|| format!("NULL::{cast}"), |(_, e)| e.clone())
    };
    // Plain `now()` (stable within the statement), not an InitPlan subquery: the planner then estimates the
    // predicate and can use indexes on the columns when the table's owners have made them.
    let interesting = if has.last_contended_at {
        "(lc >= now() - make_interval(secs => $1::float8) OR (o IS NOT NULL AND e <= now()))"
    } else {
        "(o IS NOT NULL AND e <= now())"
    };
    let columns = format!(
        "SELECT {g} AS g, {k} AS k, {o} AS o, {e} AS e, {a} AS a, {cc} AS cc, {cs} AS cs, {lc} AS lc \
         FROM {table} AS t",
        g = col("group", "text"),
        k = col("key", "text"),
        o = col("owner", "text"),
        e = col("expires_at", "timestamptz"),
        a = col("acquired_at", "timestamptz"),
        cc = col("contention_count", "int8"),
        cs = col("contended_since", "timestamptz"),
        lc = col("last_contended_at", "timestamptz"),
    );
    let clock = "SELECT 2 AS kind, now() AS server_now, NULL::text AS \"group\", NULL::text AS \"key\", \
                 NULL::text AS owner, NULL::timestamptz AS expires_at, NULL::timestamptz AS acquired_at, \
                 NULL::int8 AS contention_count, NULL::timestamptz AS contended_since, \
                 NULL::timestamptz AS last_contended_at, NULL::int8 AS n_rows, NULL::int8 AS n_held";
    if !aggregates {
        return format!(
            "WITH t AS NOT MATERIALIZED ({columns}) \
             {clock} \
             UNION ALL \
             SELECT 1, NULL, g, k, o, e, a, cc, cs, lc, NULL, NULL FROM t \
             WHERE g = ANY (ARRAY(SELECT DISTINCT g FROM t WHERE {interesting}) || $2::text[])"
        );
    }
    format!(
        "WITH t AS NOT MATERIALIZED ({columns}), \
         agg AS MATERIALIZED ( \
           SELECT g, count(*) AS n, count(o) AS held, min(e) FILTER (WHERE o IS NOT NULL) AS e, \
                  sum(cc::float8)::int8 AS cc, max(cs) AS cs, \
                  (array_agg(k ORDER BY e, k COLLATE \"C\") FILTER (WHERE o IS NOT NULL))[1] AS k, \
                  (array_agg(o ORDER BY e, k COLLATE \"C\") FILTER (WHERE o IS NOT NULL))[1] AS o, \
                  (array_agg(a ORDER BY e, k COLLATE \"C\") FILTER (WHERE o IS NOT NULL))[1] AS a, \
                  bool_or({interesting}) OR g = ANY($2::text[]) AS hot \
           FROM t GROUP BY g) \
         {clock} \
         UNION ALL \
         SELECT 0, NULL, g, k, o, e, a, cc, cs, NULL, n, held FROM agg \
         UNION ALL \
         SELECT 1, NULL, g, k, o, e, a, cc, cs, lc, NULL, NULL FROM t \
         WHERE g = ANY (ARRAY(SELECT g FROM agg WHERE hot))"
    )
}

fn decode(row: &PgRow, has: Optional) -> Result<LeaseRows, sqlx::Error> {
    let server_now: DateTime<Utc> = row.try_get("server_now")?;
    let packed = PackedRows::decode(row, has)?;
    Ok(LeaseRows {
        server_now,
        rows: packed.iter().map(|r| r.to_row()).collect(),
        ..LeaseRows::default()
    })
}

#[cfg(test)]
mod tests {
    use super::quote_ident;

    #[test]
    fn identifiers_are_quoted_with_inner_quotes_doubled() {
        assert_eq!(quote_ident("owner_token"), "\"owner_token\"");
        assert_eq!(
            quote_ident("x\"; DROP TABLE t; --"),
            "\"x\"\"; DROP TABLE t; --\""
        );
    }
}
