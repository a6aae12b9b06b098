//! The subcommands, each wiring config, source and model for one use.

pub mod demo;
pub mod docs;
pub mod hooks;
pub mod http;
pub mod lean;
pub mod replay;
pub mod scrub;
pub mod serve;
mod sgr16;
pub mod snapshot;
pub mod terminal;
pub mod watch;

use std::path::Path;

use color_eyre::eyre::{Result, WrapErr, bail, eyre};

use crate::config::Config;
use crate::source::{Pooler, Target};

/// The config file given on the command line, else `config.toml` in the user's config directory when there
/// is one, else the system-wide one (`/etc/locktop/config.toml`, for a shared bastion), else the defaults of
/// the reference schema.
pub fn load_config(path: Option<&Path>) -> Result<Config> {
    if let Some(p) = path {
        return Ok(Config::load(p)?);
    }
    let user = crate::config::config_dir().map(|d| d.join("config.toml"));
    let system = std::env::var_os("LOCKTOP_SYSCONFDIR")
        .map_or_else(|| std::path::PathBuf::from("/etc/locktop"), Into::into)
        .join("config.toml");
    match user.into_iter().chain([system]).find(|p| p.is_file()) {
        Some(found) => {
            tracing::info!(path = %found.display(), "config file");
            Ok(Config::load(&found)?)
        }
        None => Ok(Config::default()),
    }
}

/// The databases to watch, with their labels: the `--dsn`s, else the config's `[[target]]`s, else one from the
/// `PG*` environment. Labels are the configured names, else the database names, else `user@host:port/db`
/// when those repeat.
pub fn targets(
    connection: &crate::cli::Connection,
    config: &Config,
) -> Result<Vec<(String, Target)>> {
    let mut found: Vec<(Option<String>, Target)> = Vec::new();
    if connection.dsn.is_empty() && !config.targets.is_empty() {
        for (i, t) in config.targets.iter().enumerate() {
            let pooler = if connection.pooler == Pooler::None {
                t.pooler
            } else {
                connection.pooler
            };
            let target = Target::resolve(Some(&t.dsn), &connection.overrides())
                .map_err(|e| {
                    let which = t
                        .name
                        .clone()
                        .unwrap_or_else(|| format!("number {}", i + 1));
                    eyre!("[[target]] {which}: {e}")
                })?
                .with_pooler(pooler);
            found.push((t.name.clone(), target));
        }
    } else if connection.dsn.is_empty() {
        found.push((
            None,
            Target::resolve(None, &connection.overrides())?.with_pooler(connection.pooler),
        ));
    } else {
        for dsn in &connection.dsn {
            found.push((
                None,
                Target::resolve(Some(dsn), &connection.overrides())?.with_pooler(connection.pooler),
            ));
        }
    }
    let databases: Vec<String> = found.iter().map(|(_, t)| t.database().to_owned()).collect();
    let distinct = databases
        .iter()
        .collect::<std::collections::HashSet<_>>()
        .len()
        == databases.len();
    let labels = found
        .into_iter()
        .zip(databases)
        .map(|((name, target), db)| {
            let label = name.unwrap_or_else(|| {
                if distinct {
                    db
                } else {
                    target.description().to_owned()
                }
            });
            (label, target)
        })
        .collect::<Vec<_>>();
    let mut seen = std::collections::HashSet::new();
    for (label, _) in &labels {
        if !seen.insert(label) {
            bail!(
                "two targets are both {label}; give each [[target]] a name, or watch each database once"
            );
        }
    }
    Ok(labels)
}

/// With `-W`, asks for each target's password before anything connects.
pub fn ask_passwords(
    targets: Vec<(String, Target)>,
    connection: &crate::cli::Connection,
) -> Result<Vec<(String, Target)>> {
    if !connection.password {
        return Ok(targets);
    }
    targets
        .into_iter()
        .map(|(label, target)| {
            let password = read_password(target.description())?;
            Ok((label, target.with_password(password)))
        })
        .collect()
}

/// Connects the monitor; when the server refuses the login, no password is known, `-w` is not given and
/// standard input is a terminal, asks for the password (as psql does) and tries once more. Before the
/// terminal is taken.
///
/// Returns the target as it connected (with the password typed), for the reconnections to come.
pub async fn connect_asking(
    target: &Target,
    mapping: &crate::config::LeaseMapping,
    limits: crate::source::SessionLimits,
    never_ask: bool,
) -> std::result::Result<(crate::source::Monitor, Target), crate::source::SourceError> {
    use std::io::IsTerminal;
    match crate::source::Monitor::connect(target, mapping, limits).await {
        Err(crate::source::SourceError::Auth {
            target: what,
            reason,
        }) if !never_ask && target.lacks_password() && std::io::stdin().is_terminal() => {
            let Ok(password) = read_password(target.description()) else {
                return Err(crate::source::SourceError::Auth {
                    target: what,
                    reason,
                });
            };
            let target = target.clone().with_password(password);
            let monitor = crate::source::Monitor::connect(&target, mapping, limits).await?;
            Ok((monitor, target))
        }
        other => other.map(|m| (m, target.clone())),
    }
}

/// A password typed at the terminal, not echoed; Esc or Ctrl-C gives up.
fn read_password(what: &str) -> Result<String> {
    use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
    eprint!("Password for {what}: ");
    crossterm::terminal::enable_raw_mode()?;
    let mut password = String::new();
    let typed = loop {
        match event::read() {
            Ok(Event::Key(k)) if k.kind != KeyEventKind::Release => match k.code {
                KeyCode::Enter => break Ok(()),
                KeyCode::Esc => break Err(eyre!("no password typed")),
                KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                    break Err(eyre!("no password typed"));
                }
                KeyCode::Char(c) => password.push(c),
                KeyCode::Backspace => {
                    password.pop();
                }
                _ => {}
            },
            Ok(_) => {}
            Err(e) => break Err(e.into()),
        }
    };
    let _ = crossterm::terminal::disable_raw_mode();
    eprintln!();
    typed.map(|()| password)
}

/// What the header, a recording and `snapshot` call the targets: the one target's `user@host:port/db`, or
/// each label with its own (`east (mon@east:5432/trading), …`).
pub fn describe(targets: &[(String, Target)]) -> String {
    match targets {
        [(_, one)] => one.description().to_owned(),
        many => many
            .iter()
            .map(|(label, t)| format!("{label} ({})", t.description()))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The service endpoints: the config's `[service]` lists and the command line's URLs.
pub fn service_settings(
    connection: &crate::cli::Connection,
    config: &Config,
) -> crate::source::service::ServiceSettings {
    let mut metrics = config.service.metrics.clone();
    metrics.extend(connection.metrics_url.iter().cloned());
    let mut health = config.service.health.clone();
    health.extend(connection.health_url.iter().cloned());
    crate::source::service::ServiceSettings { metrics, health }
}

/// A scraper for the service endpoints, when there are any; a bad URL is a one-line error.
pub fn scraper(
    settings: crate::source::service::ServiceSettings,
    interval: std::time::Duration,
) -> Result<Option<crate::source::service::Scraper>> {
    if settings.is_empty() {
        return Ok(None);
    }
    let timeout = crate::source::service::request_timeout(interval);
    crate::source::service::Scraper::new(settings, timeout)
        .map(Some)
        .map_err(|e| eyre!(e))
}

/// Sends logs to a file when one is given; else, with `to_stderr` (headless `serve`), to stderr; never to the
/// terminal the dashboard draws on.
pub fn init_logging(path: Option<&Path>, to_stderr: bool) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOCKTOP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let Some(path) = path else {
        if to_stderr {
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(false)
                .with_writer(|| SafeLog(std::io::stderr()))
                .init();
        }
        return Ok(());
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .wrap_err_with(|| format!("cannot open log file {}; check --log-file", path.display()))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(SafeLog(file)))
        .init();
    Ok(())
}

/// The log file, written through the screen's sanitiser and the secrets' redaction: database text in a log
/// line (an error naming a profile, a query) cannot carry escape sequences or bidi controls to whoever `cat`s
/// or `tail`s the log, and no password seen while connecting is written. Each event arrives in one write,
/// ending in its newline, which stays.
#[derive(Debug)]
pub struct SafeLog<W>(pub W);

impl<W: std::io::Write> std::io::Write for SafeLog<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = crate::source::conninfo::redact(&String::from_utf8_lossy(buf));
        let safe: Vec<std::borrow::Cow<str>> =
            text.split('\n').map(crate::ui::text::sanitize).collect();
        self.0.write_all(safe.join("\n").as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    #[test]
    fn the_log_shows_database_text_escaped_and_keeps_its_newlines() {
        let mut log = super::SafeLog(Vec::new());
        log.write_all(b"poll failed: profile \x1b]0;pwned\x07 \xe2\x80\xae x\n")
            .expect("write");
        assert_eq!(
            String::from_utf8(log.0).expect("utf8"),
            "poll failed: profile ^[]0;pwned^G <U+202E> x\n"
        );
    }

    #[test]
    fn a_password_seen_while_connecting_never_reaches_the_log() {
        crate::source::conninfo::remember_secret("Zq9LongSecret");
        let mut log = super::SafeLog(Vec::new());
        log.write_all(b"connect failed for postgres://u:Zq9LongSecret@h/db\n")
            .expect("write");
        assert_eq!(
            String::from_utf8(log.0).expect("utf8"),
            "connect failed for postgres://u:****@h/db\n"
        );
    }
}
