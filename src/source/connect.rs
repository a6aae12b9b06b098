//! Where to connect and how the monitor's one dedicated session is set up.
//!
//! Connection settings follow libpq conventions as far as sqlx goes: a URL or `key=value` DSN, else the `PG*`
//! variables and `~/.pgpass`. The session is read-only, with timeouts below the poll interval, so that the
//! monitor can neither write, nor queue behind a migration's lock, nor hang, nor hold a transaction open.

use std::fmt::Write as _;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

use super::error::SourceError;
pub use crate::config::Pooler;

/// The `application_name` of the monitor's session; the monitor hides its own backend by pid, and others can
/// find it by this name.
pub const APPLICATION_NAME: &str = "locktop";

/// A database to watch: connection options and a description safe to show (no password).
#[derive(Debug, Clone)]
pub struct Target {
    options: PgConnectOptions,
    description: String,
    pooler: Pooler,
    /// Made from no settings at all (no DSN, no `PG*` connection variable): a failure to connect then says
    /// how to give them.
    unconfigured: bool,
}

/// The environment variables that say where to connect, as libpq reads them.
const CONNECTION_VARIABLES: [&str; 7] = [
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGSERVICE",
    "PGPASSWORD",
];

/// Timeouts of the monitor's session, derived from the poll interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Server-side cap on each statement: below the poll interval, so a poll never overruns by much.
    pub statement_timeout: Duration,
    /// Server-side cap on waiting for a lock: short, so the monitor never sits in a lock queue.
    pub lock_timeout: Duration,
    /// Client-side cap on every await (connect, query): sqlx has none of its own.
    pub client_timeout: Duration,
}

impl SessionLimits {
    /// Limits for a poll interval.
    pub fn for_interval(interval: Duration) -> Self {
        let statement_timeout =
            (interval * 4 / 5).clamp(Duration::from_millis(100), Duration::from_secs(10));
        Self {
            statement_timeout,
            lock_timeout: (statement_timeout / 4).min(Duration::from_millis(200)),
            client_timeout: statement_timeout + Duration::from_secs(1),
        }
    }
}

impl Target {
    /// From a DSN (URL or libpq `key=value` form), or from the `PG*` environment and `~/.pgpass` when `None`.
    pub fn new(dsn: Option<&str>) -> Result<Self, SourceError> {
        let options = match dsn.map(str::trim) {
            None | Some("") => PgConnectOptions::new(),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                PgConnectOptions::from_str(url).map_err(|e| SourceError::BadDsn(dsn_reason(&e)))?
            }
            Some(kv) => PgConnectOptions::from_str(&key_value_to_url(kv)?)
                .map_err(|e| SourceError::BadDsn(dsn_reason(&e)))?,
        };
        let description = describe(&options);
        let unconfigured = dsn.is_none_or(|d| d.trim().is_empty())
            && CONNECTION_VARIABLES
                .iter()
                .all(|v| std::env::var_os(v).is_none_or(|value| value.is_empty()));
        Ok(Self {
            options,
            description,
            pooler: Pooler::None,
            unconfigured,
        })
    }

    /// The same database behind a pooler of this kind.
    #[must_use]
    pub fn with_pooler(mut self, pooler: Pooler) -> Self {
        self.pooler = pooler;
        self
    }

    /// The database's name (the user's name when the DSN names none, as libpq does).
    pub fn database(&self) -> &str {
        self.options
            .get_database()
            .unwrap_or(self.options.get_username())
    }

    /// The pooler between the monitor and the server.
    pub fn pooler(&self) -> Pooler {
        self.pooler
    }

    /// `user@host:port/dbname`, for the header and for messages; never the password.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Opens the monitor's dedicated session with the read-only settings and the given limits.
    ///
    /// Behind a transaction-mode pooler the session settings would stay on whichever backend the pooler
    /// picked, and the pooler refuses the `options` and `extra_float_digits` startup parameters: none are
    /// sent, and each poll sets its limits with `SET LOCAL` in its own transaction instead.
    pub async fn connect(&self, limits: SessionLimits) -> Result<PgConnection, SourceError> {
        let options = self
            .options
            .clone()
            .application_name(APPLICATION_NAME)
            .disable_statement_logging();
        let options = match self.pooler {
            Pooler::Transaction => options.extra_float_digits(None),
            Pooler::None => Self::session_settings(options, limits),
        };
        let connecting = PgConnection::connect_with(&options);
        match tokio::time::timeout(
            limits.client_timeout.max(Duration::from_secs(5)),
            connecting,
        )
        .await
        {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(self.with_hint(SourceError::from_connect(&e, &self.description))),
            Err(_) => Err(self.with_hint(SourceError::Unreachable {
                target: self.description.clone(),
                reason: "no answer within the connect timeout".into(),
            })),
        }
    }

    /// A connect failure, with how to give connection settings when none were given (a pooler's refusal is
    /// left as it is: the monitor answers it by connecting as behind a pooler).
    fn with_hint(&self, e: SourceError) -> SourceError {
        match e {
            e @ SourceError::PoolerRefused { .. } => e,
            e if self.unconfigured => SourceError::NoSettings(Box::new(e)),
            e => e,
        }
    }

    /// The read-only session with its timeouts, as startup parameters of a direct connection.
    fn session_settings(options: PgConnectOptions, limits: SessionLimits) -> PgConnectOptions {
        let ms = |d: Duration| d.as_millis().to_string();
        options.options([
            ("default_transaction_read_only", "on".to_owned()),
            ("statement_timeout", ms(limits.statement_timeout)),
            ("lock_timeout", ms(limits.lock_timeout)),
            (
                "idle_in_transaction_session_timeout",
                ms(limits.client_timeout * 2),
            ),
            // Reap the session on the server if the bastion vanishes (ignored on Unix sockets).
            ("tcp_keepalives_idle", "30".to_owned()),
            ("tcp_keepalives_interval", "10".to_owned()),
            ("tcp_keepalives_count", "3".to_owned()),
        ])
    }
}

/// Closes a connection politely, without waiting long for a server that may be gone.
pub async fn close(conn: PgConnection) {
    let _ = tokio::time::timeout(Duration::from_millis(500), conn.close()).await;
}

fn describe(o: &PgConnectOptions) -> String {
    let db = o.get_database().unwrap_or(o.get_username());
    match o.get_socket() {
        Some(socket) => format!("{}@{}/{db}", o.get_username(), socket.display()),
        None if o.get_host().starts_with('/') => {
            format!("{}@{}/{db}", o.get_username(), o.get_host())
        }
        None => format!(
            "{}@{}:{}/{db}",
            o.get_username(),
            o.get_host(),
            o.get_port()
        ),
    }
}

/// The reason a DSN was refused, without echoing the DSN (it may hold a password).
fn dsn_reason(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Configuration(c) => c.to_string(),
        other => other.to_string(),
    }
}

/// Turns libpq's `host=db port=5432 dbname=app` form into the URL form sqlx parses (query parameters).
fn key_value_to_url(kv: &str) -> Result<String, SourceError> {
    let mut params = Vec::new();
    let mut rest = kv.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=').ok_or_else(|| {
            SourceError::BadDsn(format!("expected key=value near {:?}", first_word(rest)))
        })?;
        let key = key.trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(SourceError::BadDsn(format!(
                "bad key {:?}",
                first_word(key)
            )));
        }
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('\'') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next().map(|(_, c)| c)),
                    '\'' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            let end =
                end.ok_or_else(|| SourceError::BadDsn(format!("unterminated quote in {key}")))?;
            (value, &quoted[end..])
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            (after[..end].to_owned(), &after[end..])
        };
        params.push(format!(
            "{}={}",
            percent_encode(key),
            percent_encode(&value)
        ));
        rest = remaining.trim_start();
    }
    Ok(format!("postgres:///?{}", params.join("&")))
}

fn first_word(s: &str) -> &str {
    s.split_whitespace().next().unwrap_or_default()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_described_without_its_password() {
        let t =
            Target::new(Some("postgres://mon:s3cret@db.example:6432/trading")).expect("valid url");
        assert_eq!(t.description(), "mon@db.example:6432/trading");
        assert!(!format!("{t:?}").contains("s3cret") || !t.description().contains("s3cret"));
    }

    #[test]
    fn key_value_dsns_are_understood_with_quotes_and_sockets() {
        let t = Target::new(Some(
            "host=/tmp/pg port=5433 user=mon dbname='my db' password='a b\\'c'",
        ))
        .expect("valid key=value");
        assert_eq!(t.description(), "mon@/tmp/pg/my db");
    }

    #[test]
    fn a_malformed_dsn_is_refused_without_echoing_it() {
        let e = Target::new(Some("postgres://mon:hunter2@host:notaport/db")).expect_err("bad port");
        let text = e.to_string();
        assert!(text.starts_with("invalid DSN"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        let e = Target::new(Some("host=db password")).expect_err("no value");
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn session_limits_stay_below_the_interval() {
        let l = SessionLimits::for_interval(Duration::from_secs(1));
        assert!(l.statement_timeout < Duration::from_secs(1));
        assert!(l.lock_timeout < l.statement_timeout);
        assert!(l.client_timeout > l.statement_timeout);
    }
}
