//! Statements for a transaction-mode pooler (PgBouncer `pool_mode = transaction`, Supabase's port 6543).
//!
//! Such a pooler hands each transaction to whichever backend is free. A prepared statement made on one backend
//! is missing on the next (named ones fail; unnamed ones were seen to return another client's rows), so only
//! the simple query protocol is safe: parameters are written into the SQL as quoted literals, and results come
//! back in text format. Session settings do not survive a transaction either, so every poll is one round
//! trip: `BEGIN READ ONLY`, `SET LOCAL` the timeouts, the selects, `COMMIT`.

use futures_util::TryStreamExt as _;
use sqlx::postgres::{PgConnection, PgRow};
use sqlx::{AssertSqlSafe, Either};

use super::connect::SessionLimits;
use super::error::SourceError;

/// A parameter of a statement, bound (extended protocol) or written in as a literal (simple protocol).
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Texts(Vec<String>),
    Ints(Vec<i32>),
}

impl Param {
    /// The value as an SQL literal with its type: strings in `E''` form (quotes and backslashes doubled), so
    /// their meaning does not depend on `standard_conforming_strings`.
    pub fn literal(&self) -> String {
        match self {
            Self::Text(s) => format!("{}::text", quote_literal(s)),
            Self::Int(i) => format!("{i}::int8"),
            // Rust prints finite floats without an exponent; the monitor's floats are durations.
            Self::Float(f) if f.is_finite() => format!("{f}::float8"),
            Self::Float(_) => "NULL::float8".into(),
            Self::Bool(b) => format!("{b}"),
            Self::Texts(items) => format!(
                "ARRAY[{}]::text[]",
                items
                    .iter()
                    .map(|s| quote_literal(s))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Self::Ints(items) => format!(
                "ARRAY[{}]::int4[]",
                items
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
}

/// `E'…'` with quotes and backslashes doubled. PostgreSQL text cannot hold NUL, so it is dropped.
fn quote_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 3);
    out.push_str("E'");
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => {}
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Writes `params` into `sql` in place of `$1`, `$2`, …. The statements are the monitor's own, whose only
/// `$` signs are placeholders; `$12` is never taken for `$1` followed by `2`.
pub fn inline(sql: &str, params: &[Param]) -> String {
    let mut out = String::with_capacity(sql.len() + 32);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        match after[..digits].parse::<usize>() {
            Ok(n) if (1..=params.len()).contains(&n) => {
                out.push('(');
                out.push_str(&params[n - 1].literal());
                out.push(')');
            }
            _ => {
                out.push('$');
                out.push_str(&after[..digits]);
            }
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// The limits of one transaction: the same as a direct session's, set with `SET LOCAL`, and a text format
/// for times that the decoders read (UTC, ISO).
fn set_local(limits: SessionLimits) -> [String; 5] {
    let ms = |d: std::time::Duration| d.as_millis();
    [
        format!(
            "SET LOCAL statement_timeout = {}",
            ms(limits.statement_timeout)
        ),
        format!("SET LOCAL lock_timeout = {}", ms(limits.lock_timeout)),
        format!(
            "SET LOCAL idle_in_transaction_session_timeout = {}",
            ms(limits.client_timeout * 2)
        ),
        "SET LOCAL TimeZone = 'UTC'".into(),
        "SET LOCAL DateStyle = 'ISO'".into(),
    ]
}

/// What a transaction returned: the rows of each statement that completed, in order, and the error that cut
/// it short (the statements after it did not run).
#[derive(Debug, Default)]
pub struct Outcome {
    pub results: Vec<Vec<PgRow>>,
    pub error: Option<SourceError>,
}

impl Outcome {
    /// The rows of statement `i`, when it completed.
    pub fn rows(&self, i: usize) -> Option<&[PgRow]> {
        self.results.get(i).map(Vec::as_slice)
    }
}

/// Runs `statements` in one read-only transaction, in one round trip. After an error the transaction is
/// rolled back (a second round trip, only then), so the pooler's backend is never left in a transaction.
pub async fn transaction(
    conn: &mut PgConnection,
    limits: SessionLimits,
    statements: &[String],
) -> Outcome {
    let prefix = set_local(limits);
    let mut sql = String::from("BEGIN READ ONLY;\n");
    for s in prefix.iter().chain(statements) {
        sql.push_str(s);
        sql.push_str(";\n");
    }
    sql.push_str("COMMIT");
    let skip = 1 + prefix.len();

    let mut outcome = Outcome::default();
    let mut current = Vec::new();
    let mut completed = 0usize;
    let mut stream = sqlx::raw_sql(AssertSqlSafe(sql)).fetch_many(&mut *conn);
    loop {
        match stream.try_next().await {
            Ok(Some(Either::Right(row))) => current.push(row),
            Ok(Some(Either::Left(_))) => {
                if completed >= skip && outcome.results.len() < statements.len() {
                    outcome.results.push(std::mem::take(&mut current));
                }
                current.clear();
                completed += 1;
            }
            Ok(None) => break,
            Err(e) => {
                outcome.error = Some(SourceError::from_query(&e));
                break;
            }
        }
    }
    drop(stream);
    if let Some(error) = &outcome.error
        && !error.needs_reconnect()
        && let Err(e) = sqlx::raw_sql(AssertSqlSafe("ROLLBACK"))
            .execute(&mut *conn)
            .await
    {
        // The connection is then unusable: the caller reconnects.
        outcome.error = Some(SourceError::from_query(&e));
    }
    outcome
}

/// Runs one statement: bound with the extended protocol on a direct connection, or written out and run in
/// its own read-only transaction behind a pooler.
pub async fn fetch(
    conn: &mut PgConnection,
    pooled: Option<SessionLimits>,
    sql: &str,
    params: &[Param],
) -> Result<Vec<PgRow>, SourceError> {
    let Some(limits) = pooled else {
        let mut query = sqlx::query(AssertSqlSafe(sql.to_owned()));
        for p in params {
            query = match p {
                Param::Text(s) => query.bind(s.clone()),
                Param::Int(i) => query.bind(*i),
                Param::Float(f) => query.bind(*f),
                Param::Bool(b) => query.bind(*b),
                Param::Texts(t) => query.bind(t.clone()),
                Param::Ints(t) => query.bind(t.clone()),
            };
        }
        return query
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| SourceError::from_query(&e));
    };
    let mut outcome = transaction(conn, limits, &[inline(sql, params)]).await;
    match outcome.error.take() {
        Some(e) => Err(e),
        None => Ok(outcome.results.pop().unwrap_or_default()),
    }
}

/// Decodes rows into `T`; a row that does not fit fails the read with the column's name.
pub fn decode<T: for<'r> sqlx::FromRow<'r, PgRow>>(rows: &[PgRow]) -> Result<Vec<T>, SourceError> {
    rows.iter()
        .map(T::from_row)
        .collect::<Result<_, _>>()
        .map_err(|e| SourceError::Query(format!("decoding a result: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_cannot_break_out_of_their_quotes() {
        assert_eq!(Param::Text("it's".into()).literal(), "E'it''s'::text");
        assert_eq!(
            Param::Text("a\\'; DROP TABLE t; --".into()).literal(),
            "E'a\\\\''; DROP TABLE t; --'::text"
        );
        assert_eq!(Param::Text("nul\0".into()).literal(), "E'nul'::text");
        assert_eq!(
            Param::Texts(vec!["a".into(), "b'".into()]).literal(),
            "ARRAY[E'a',E'b''']::text[]"
        );
        assert_eq!(Param::Texts(Vec::new()).literal(), "ARRAY[]::text[]");
        assert_eq!(Param::Float(0.1).literal(), "0.1::float8");
        assert_eq!(
            Param::Float(1e21).literal(),
            "1000000000000000000000::float8"
        );
        assert_eq!(Param::Int(-3).literal(), "-3::int8");
    }

    #[test]
    fn placeholders_are_replaced_by_number_not_by_prefix() {
        let params: Vec<Param> = (1..=12).map(Param::Int).collect();
        assert_eq!(
            inline("SELECT $1, $12, $2::text, '$x', $13", &params),
            "SELECT (1::int8), (12::int8), (2::int8)::text, '$x', $13"
        );
    }
}
