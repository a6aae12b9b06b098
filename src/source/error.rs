//! Why talking to the database failed, in the cases the caller must tell apart: retry (connection lost,
//! timeout), give up with advice (bad DSN, auth, missing table or column), or carry on without one part
//! (the lease table locked by a migration). Messages are one line, name the fix, and never hold a password.

use std::time::Duration;

/// A failure of the data source.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    #[error("invalid DSN: {0}; write it as postgres://user@host:port/dbname (or key=value pairs)")]
    BadDsn(String),
    #[error(
        "{0}; no connection settings were given: pass --dsn postgres://USER@HOST:PORT/DBNAME, set PGHOST, PGUSER and PGDATABASE, or add a [[target]] to the config file (`locktop demo` shows locktop on a throwaway database)"
    )]
    NoSettings(Box<SourceError>),
    #[error(
        "cannot connect to {target}: {reason}; check the host and port, and that the server is running"
    )]
    Unreachable { target: String, reason: String },
    #[error(
        "authentication failed for {target}: {reason}; check the user and password (PGPASSWORD or ~/.pgpass)"
    )]
    Auth { target: String, reason: String },
    #[error("database missing on {target}: {reason}; check the database name in the DSN")]
    DatabaseMissing { target: String, reason: String },
    #[error("TLS to {target} failed: {reason}; check sslmode and sslrootcert")]
    Tls { target: String, reason: String },
    #[error(
        "{target} accepts only TLS connections ({reason}); connect with sslmode=require, or sslmode=verify-full with sslrootcert=CA file"
    )]
    TlsRequired { target: String, reason: String },
    #[error(
        "{target} refused a startup parameter ({reason}): a pooler such as PgBouncer; run with --pooler transaction"
    )]
    PoolerRefused { target: String, reason: String },
    #[error("lease table {table} not found; create it or set [lease] table in the config file")]
    TableMissing { table: String },
    #[error(
        "lease table {table} has no column {column:?} (mapped as [lease] {key}); columns are: {available}; fix the mapping in the config file{unmap}"
    )]
    ColumnMissing {
        table: String,
        key: &'static str,
        column: String,
        available: String,
        /// For an optional column: how to unmap it.
        unmap: String,
    },
    #[error(
        "lease table {table}: column {column:?} ({key}) has type {found}, expected {expected}; fix the mapping in the config file"
    )]
    ColumnType {
        table: String,
        key: &'static str,
        column: String,
        found: String,
        expected: &'static str,
    },
    #[error(
        "permission denied: {0}; GRANT SELECT on the lease table (and pg_monitor for full detail) to the monitor's role"
    )]
    Permission(String),
    #[error("timed out after {0:?} waiting for the database")]
    Timeout(Duration),
    #[error("lock_timeout: the lease table is locked by another session")]
    LockTimeout,
    #[error("statement_timeout: the query took longer than allowed")]
    StatementTimeout,
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    #[error("query failed: {0}")]
    Query(String),
}

impl SourceError {
    /// Whether the connection must be dropped and made anew after this error.
    pub fn needs_reconnect(&self) -> bool {
        match self {
            Self::NoSettings(inner) => inner.needs_reconnect(),
            other => matches!(
                other,
                Self::Timeout(_) | Self::ConnectionLost(_) | Self::Unreachable { .. }
            ),
        }
    }

    /// Classifies an error from a query on an open connection.
    pub fn from_query(e: &sqlx::Error) -> Self {
        match e {
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                let message = one_line(db.message());
                match code.as_ref() {
                    "55P03" => Self::LockTimeout,
                    "57014" => Self::StatementTimeout,
                    "42501" => Self::Permission(message),
                    c if c.starts_with("57P") || c.starts_with("08") => {
                        Self::ConnectionLost(message)
                    }
                    _ => Self::Query(message),
                }
            }
            sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_) => {
                Self::ConnectionLost(one_line(&e.to_string()))
            }
            other => Self::Query(one_line(&other.to_string())),
        }
    }

    /// Classifies an error from opening a connection to `target` (described without its password).
    pub fn from_connect(e: &sqlx::Error, target: &str) -> Self {
        let target = target.to_owned();
        match e {
            sqlx::Error::Database(db) => {
                let reason = one_line(db.message());
                if reason.starts_with("unsupported startup parameter") {
                    // PgBouncer's word for `options` and `extra_float_digits`; the server itself takes both.
                    return Self::PoolerRefused { target, reason };
                }
                match db.code().unwrap_or_default().as_ref() {
                    // pg_hba.conf has an entry for this client only with encryption.
                    "28000" if reason.ends_with("no encryption") => {
                        Self::TlsRequired { target, reason }
                    }
                    "28P01" | "28000" => Self::Auth { target, reason },
                    "3D000" => Self::DatabaseMissing { target, reason },
                    "42501" => Self::Permission(reason),
                    _ => Self::Unreachable { target, reason },
                }
            }
            sqlx::Error::Tls(t) => Self::Tls {
                target,
                reason: one_line(&t.to_string()),
            },
            sqlx::Error::Configuration(c) => Self::BadDsn(one_line(&c.to_string())),
            other => {
                let reason = one_line(&other.to_string());
                if reason.contains("TLS")
                    || reason.contains("SSL")
                    || reason.contains("certificate")
                {
                    Self::Tls { target, reason }
                } else {
                    Self::Unreachable { target, reason }
                }
            }
        }
    }
}

/// Folds a server message to one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
