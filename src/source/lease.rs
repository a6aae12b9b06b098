//! The lease table: checking the configured mapping against the catalog, and reading the rows.
//!
//! The table name is resolved by the server (`to_regclass`) and re-quoted by it (`quote_ident`); column names
//! are checked against `pg_attribute` and quoted here. No SQL is ever built from unquoted user text. Every
//! mapped column is cast in SQL (to text, timestamptz or bigint) so any column type works.
//!
//! The rows come back as one row of parallel arrays with the server's `now()` of the same statement: one
//! message instead of one per lease row, which keeps a poll of 100,000 rows cheap to decode.

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgConnection;
use sqlx::{Row, postgres::PgRow};

use super::error::SourceError;
use crate::config::LeaseMapping;
use crate::model::LeaseRow;

/// The lease table, resolved and checked, with its poll statement.
#[derive(Debug, Clone)]
pub struct LeaseTable {
    /// `schema.table`, quoted by the server.
    pub name: String,
    pub oid: u32,
    select: String,
    group_expr: String,
    key_expr: String,
    has: Optional,
}

#[derive(Debug, Clone, Copy, Default)]
struct Optional {
    acquired_at: bool,
    contention_count: bool,
    contended_since: bool,
    last_contended_at: bool,
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
    pub async fn resolve(
        conn: &mut PgConnection,
        mapping: &LeaseMapping,
    ) -> Result<Self, SourceError> {
        let found: Option<(i64, String, bool)> = sqlx::query_as(
            "SELECT c.oid::int8, quote_ident(n.nspname) || '.' || quote_ident(c.relname), \
                    has_table_privilege(c.oid, 'SELECT') \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.oid = pg_catalog.to_regclass($1)",
        )
        .bind(&mapping.table)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| match SourceError::from_query(&e) {
            // to_regclass raises on malformed names such as "a.b.c.d".
            SourceError::Query(_) => SourceError::TableMissing {
                table: mapping.table.clone(),
            },
            other => other,
        })?;
        let Some((oid, name, readable)) = found else {
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

        let columns: Vec<(String, String)> = sqlx::query_as(
            "SELECT attname::text, format_type(atttypid, NULL) FROM pg_catalog.pg_attribute \
             WHERE attrelid = $1::int8::oid AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        )
        .bind(i64::from(oid))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| SourceError::from_query(&e))?;

        let mut select = Vec::new();
        let mut has = Optional::default();
        let mut group_expr = String::new();
        let mut key_expr = String::new();
        for (key, column, _) in mapping.columns() {
            let Some((_, type_name)) = columns.iter().find(|(c, _)| c == column) else {
                return Err(SourceError::ColumnMissing {
                    table: name.clone(),
                    key,
                    column: column.to_owned(),
                    available: columns
                        .iter()
                        .map(|(c, _)| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            };
            let kind = Kind::of(key);
            if !kind.accepts(type_name) {
                return Err(SourceError::ColumnType {
                    table: name.clone(),
                    key,
                    column: column.to_owned(),
                    found: type_name.clone(),
                    expected: kind.expected(),
                });
            }
            let expr = format!("t.{}::{}", quote_ident(column), kind.cast());
            match key {
                "group" => group_expr.clone_from(&expr),
                "key" => key_expr.clone_from(&expr),
                "acquired_at" => has.acquired_at = true,
                "contention_count" => has.contention_count = true,
                "contended_since" => has.contended_since = true,
                "last_contended_at" => has.last_contended_at = true,
                _ => {}
            }
            select.push(format!("array_agg({expr}) AS {}", quote_ident(key)));
        }
        let select = format!(
            "SELECT now() AS server_now, {} FROM {name} AS t",
            select.join(", ")
        );
        Ok(Self {
            name,
            oid,
            select,
            group_expr,
            key_expr,
            has,
        })
    }

    /// The poll statement (for tests and the benchmark to inspect).
    pub fn select_sql(&self) -> &str {
        &self.select
    }

    /// Reads every lease row, and the server's `now()` of the same statement.
    pub async fn fetch(
        &self,
        conn: &mut PgConnection,
    ) -> Result<(DateTime<Utc>, Vec<LeaseRow>), SourceError> {
        let row = sqlx::query(AssertSqlSafe(self.select.clone()))
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| SourceError::from_query(&e))?;
        decode(&row, self.has).map_err(|e| SourceError::Query(format!("decoding lease rows: {e}")))
    }

    /// Looks up the (group, key) of rows by physical address, for row-lock waits. Best effort: a row may have
    /// moved since `pg_locks` was read.
    pub async fn rows_at(
        &self,
        conn: &mut PgConnection,
        tids: &[(u32, u16)],
    ) -> Result<Vec<((u32, u16), (Option<String>, Option<String>))>, SourceError> {
        let text: Vec<String> = tids.iter().map(|(p, t)| format!("({p},{t})")).collect();
        let sql = format!(
            "SELECT (t.ctid::text::point)[0]::int8, (t.ctid::text::point)[1]::int8, {}, {} \
             FROM {} AS t WHERE t.ctid = ANY($1::text[]::tid[])",
            self.group_expr, self.key_expr, self.name
        );
        let rows: Vec<(i64, i64, Option<String>, Option<String>)> =
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(text)
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| SourceError::from_query(&e))?;
        Ok(rows
            .into_iter()
            .map(|(p, t, g, k)| ((p as u32, t as u16), (g, k)))
            .collect())
    }
}

fn at<T: Clone>(v: Option<&Vec<Option<T>>>, i: usize) -> Option<T> {
    v.and_then(|v| v.get(i).cloned().flatten())
}

fn decode(row: &PgRow, has: Optional) -> Result<(DateTime<Utc>, Vec<LeaseRow>), sqlx::Error> {
    type Texts = Option<Vec<Option<String>>>;
    type Times = Option<Vec<Option<DateTime<Utc>>>>;
    let server_now: DateTime<Utc> = row.try_get("server_now")?;
    let groups: Texts = row.try_get("group")?;
    let Some(groups) = groups else {
        return Ok((server_now, Vec::new()));
    };
    let keys: Texts = row.try_get("key")?;
    let owners: Texts = row.try_get("owner")?;
    let expires: Times = row.try_get("expires_at")?;
    let optional_times = |present: bool, name: &str| -> Result<Times, sqlx::Error> {
        if present { row.try_get(name) } else { Ok(None) }
    };
    let acquired = optional_times(has.acquired_at, "acquired_at")?;
    let since = optional_times(has.contended_since, "contended_since")?;
    let last = optional_times(has.last_contended_at, "last_contended_at")?;
    let counts: Option<Vec<Option<i64>>> = if has.contention_count {
        row.try_get("contention_count")?
    } else {
        None
    };

    let mut keys = keys.unwrap_or_default().into_iter();
    let mut owners = owners.unwrap_or_default().into_iter();
    let rows = groups
        .into_iter()
        .enumerate()
        .map(|(i, group)| LeaseRow {
            group,
            key: keys.next().flatten(),
            owner: owners.next().flatten(),
            expires_at: at(expires.as_ref(), i),
            acquired_at: at(acquired.as_ref(), i),
            contention_count: at(counts.as_ref(), i),
            contended_since: at(since.as_ref(), i),
            last_contended_at: at(last.as_ref(), i),
        })
        .collect();
    Ok((server_now, rows))
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
