//! Where to connect and how the monitor's one dedicated session is set up.
//!
//! Where to connect is resolved as libpq resolves it ([`super::conninfo`]); sqlx makes the connection, trying
//! each host in turn. The session is read-only, with timeouts below the poll interval, so that the monitor can
//! neither write, nor queue behind a migration's lock, nor hang, nor hold a transaction open.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::{ConnectOptions, Connection, Row};

use super::conninfo::{ConnInfo, Host, Overrides, Surroundings};
use super::error::SourceError;
pub use crate::config::Pooler;

/// The `application_name` of the monitor's session; the monitor hides its own backend by pid, and others can
/// find it by this name.
pub const APPLICATION_NAME: &str = "locktop";

/// A database to watch: its resolved connection settings and a description safe to show (no password).
#[derive(Debug, Clone)]
pub struct Target {
    info: ConnInfo,
    description: String,
    pooler: Pooler,
}

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
    /// From a DSN (URL or libpq `key=value` form), or from the `PG*` environment, a service file and the
    /// defaults when `None`.
    pub fn new(dsn: Option<&str>) -> Result<Self, SourceError> {
        Self::resolve(dsn, &Overrides::default())
    }

    /// [`Self::new`] with the command line's `-h -p -U -d`, which win over everything else.
    pub fn resolve(dsn: Option<&str>, overrides: &Overrides) -> Result<Self, SourceError> {
        let info = ConnInfo::resolve(dsn, overrides, &Surroundings::current())?;
        Ok(Self {
            description: info.describe(),
            info,
            pooler: Pooler::None,
        })
    }

    /// Whether no password is known for it (none given, none in the password file for its first host).
    pub fn lacks_password(&self) -> bool {
        self.info
            .hosts
            .first()
            .is_none_or(|h| self.info.password_for(h).is_none())
    }

    /// The same database with this password (typed at a prompt).
    #[must_use]
    pub fn with_password(mut self, password: String) -> Self {
        super::conninfo::remember_secret(&password);
        self.info.password = Some(password);
        self
    }

    /// The same database behind a pooler of this kind.
    #[must_use]
    pub fn with_pooler(mut self, pooler: Pooler) -> Self {
        self.pooler = pooler;
        self
    }

    /// The database's name (the user's name when the DSN names none, as libpq does).
    pub fn database(&self) -> &str {
        &self.info.dbname
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
    ///
    /// With several hosts each is tried in turn, within `connect_timeout` each, until one answers and has the
    /// `target_session_attrs` asked for (`prefer-standby`: a standby first, else any).
    pub async fn connect(&self, limits: SessionLimits) -> Result<PgConnection, SourceError> {
        let attrs = self.info.target_session_attrs.as_str();
        let rounds: &[&str] = if attrs == "prefer-standby" {
            &["standby", "any"]
        } else {
            &[attrs]
        };
        let mut failures: Vec<(String, SourceError)> = Vec::new();
        for want in rounds {
            for host in &self.info.hosts {
                match self.connect_host(host, limits).await {
                    Ok(mut conn) => match has_attrs(&mut conn, want).await {
                        Ok(None) => return Ok(conn),
                        Ok(Some(reason)) => {
                            close(conn).await;
                            failures.push((
                                host_label(host),
                                SourceError::Unreachable {
                                    target: host_label(host),
                                    reason: format!("{reason} (target_session_attrs={attrs})"),
                                },
                            ));
                        }
                        Err(e) => {
                            close(conn).await;
                            failures.push((host_label(host), e));
                        }
                    },
                    Err(e @ SourceError::PoolerRefused { .. }) => return Err(e),
                    Err(e) => failures.push((host_label(host), e)),
                }
            }
        }
        let e = if failures.len() == 1 {
            failures.remove(0).1
        } else {
            SourceError::Unreachable {
                target: self.description.clone(),
                reason: failures
                    .iter()
                    .map(|(h, e)| format!("{h}: {e}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            }
        };
        Err(self.with_hint(e))
    }

    /// One host: its options, and a connect within `connect_timeout` (or the session's own limit).
    async fn connect_host(
        &self,
        host: &Host,
        limits: SessionLimits,
    ) -> Result<PgConnection, SourceError> {
        let options = self
            .options_for(host)
            .application_name(APPLICATION_NAME)
            .disable_statement_logging();
        let options = match self.pooler {
            Pooler::Transaction => options.extra_float_digits(None),
            Pooler::None => Self::session_settings(options, limits),
        };
        let wait = self
            .info
            .connect_timeout
            .unwrap_or_else(|| limits.client_timeout.max(Duration::from_secs(5)));
        let label = host_label(host);
        if let Some(ca) = self.info.sslrootcert.as_ref().filter(|ca| {
            !host.is_socket() && self.info.sslmode.starts_with("verify-") && !ca.exists()
        }) {
            // As libpq: verifying the server needs its CA, and a missing file is said as such.
            return Err(SourceError::Tls {
                target: self.description_at(host),
                reason: format!(
                    "root certificate file {} does not exist (sslmode={} verifies the server's certificate)",
                    ca.display(),
                    self.info.sslmode
                ),
            });
        }
        match tokio::time::timeout(wait, PgConnection::connect_with(&options)).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(SourceError::from_connect(&e, &self.description_at(host))),
            Err(_) => Err(SourceError::Unreachable {
                target: label,
                reason: format!("no answer within {}s (connect_timeout)", wait.as_secs()),
            }),
        }
    }

    /// The description, naming the one host when there are several.
    fn description_at(&self, host: &Host) -> String {
        if self.info.hosts.len() == 1 {
            self.description.clone()
        } else {
            format!(
                "{}@{}/{}",
                self.info.user,
                host_label(host),
                self.info.dbname
            )
        }
    }

    /// sqlx's options for one host: every field set from the resolved settings, none left to sqlx's own
    /// reading of the environment.
    fn options_for(&self, host: &Host) -> PgConnectOptions {
        let info = &self.info;
        let mut o = PgConnectOptions::new_without_pgpass()
            .username(&info.user)
            .database(&info.dbname)
            .port(host.port)
            .host(host.addr.as_deref().unwrap_or(&host.name));
        if let Some(p) = info.password_for(host) {
            o = o.password(&p);
        }
        // As libpq: TLS does not apply to a Unix socket.
        let mode = if host.is_socket() {
            PgSslMode::Disable
        } else {
            match info.sslmode.as_str() {
                "disable" => PgSslMode::Disable,
                "allow" => PgSslMode::Allow,
                "require" => PgSslMode::Require,
                "verify-ca" => PgSslMode::VerifyCa,
                "verify-full" => PgSslMode::VerifyFull,
                _ => PgSslMode::Prefer,
            }
        };
        o = o.ssl_mode(mode);
        if !host.is_socket() {
            if let Some(ca) = &info.sslrootcert {
                o = o.ssl_root_cert(ca);
            }
            if let Some(cert) = &info.sslcert {
                o = o.ssl_client_cert(cert);
            }
            if let Some(key) = &info.sslkey {
                o = o.ssl_client_key(key);
            }
        }
        o
    }

    /// A connect failure, with how to give connection settings when none were given (a pooler's refusal is
    /// left as it is: the monitor answers it by connecting as behind a pooler).
    fn with_hint(&self, e: SourceError) -> SourceError {
        match e {
            e @ SourceError::PoolerRefused { .. } => e,
            e if !self.info.configured => SourceError::NoSettings(Box::new(e)),
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

/// `host:port`, or the socket directory.
fn host_label(host: &Host) -> String {
    let name = host.addr.as_deref().unwrap_or(&host.name);
    if host.is_socket() {
        name.to_owned()
    } else {
        format!("{name}:{}", host.port)
    }
}

/// Whether a session's server is what `target_session_attrs` asks for: `None` when it is, else why not.
/// `read-write` and `read-only` are judged by recovery, like `primary` and `standby`: the monitor's own session
/// is read-only by its settings, so `transaction_read_only` would say nothing of the server.
async fn has_attrs(conn: &mut PgConnection, want: &str) -> Result<Option<String>, SourceError> {
    if want == "any" {
        return Ok(None);
    }
    let row = sqlx::raw_sql("SELECT pg_catalog.pg_is_in_recovery()")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| SourceError::from_query(&e))?;
    let standby: bool = row.try_get(0).map_err(|e| SourceError::from_query(&e))?;
    Ok(match (want, standby) {
        ("read-write" | "primary", true) => Some("a standby (in recovery)".into()),
        ("read-only" | "standby", false) => Some("a primary (not in recovery)".into()),
        _ => None,
    })
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
