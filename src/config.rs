//! The config file (TOML): how the lease table is named and the runbook's thresholds.
//!
//! Every key is optional; the defaults fit the reference schema (`sql/reference_schema.sql`). Unknown keys are
//! refused so that a misspelt key never silently falls back to a default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::model::Rules;

/// A config file that could not be used, with what to fix. One line when displayed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}; check the --config path")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: line {line}: {message}; see \"Configuration\" in the README")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("config: {0}")]
    Invalid(String),
}

/// The whole config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub lease: LeaseMapping,
    pub thresholds: Thresholds,
    /// Databases to watch at once (`[[target]]` tables); `--dsn` on the command line replaces them.
    #[serde(rename = "target")]
    pub targets: Vec<TargetConfig>,
    /// The service's own endpoints, read beside the database.
    pub service: ServiceConfig,
    /// How the dashboard draws.
    pub display: DisplayConfig,
}

/// How the dashboard draws (`[display]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DisplayConfig {
    /// Colour depth: `"auto"` (from `TERM` and `COLORTERM`), `"none"`, `"16"`, `"256"` or `"truecolor"`.
    pub colors: ColorSetting,
    /// Mouse: a click selects a row or focuses a pane, the wheel scrolls. Off keeps the terminal's own text
    /// selection (as `--no-mouse` does).
    pub mouse: bool,
}

impl Default for DisplayConfig {
    fn default() -> Self {
        Self {
            colors: ColorSetting::Auto,
            mouse: true,
        }
    }
}

/// The colour depth the config asks for (`[display] colors`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColorSetting {
    /// From `TERM` and `COLORTERM`.
    #[default]
    Auto,
    None,
    #[serde(rename = "16")]
    Ansi16,
    #[serde(rename = "256")]
    Indexed,
    #[serde(rename = "truecolor")]
    TrueColor,
}

/// One database to watch.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Its label on screen and the prefix of its profiles (`shard-a:profile-7`); by default the database name.
    #[serde(default)]
    pub name: Option<String>,
    /// URL or key=value DSN, as `--dsn`.
    pub dsn: String,
    /// `"transaction"` behind a transaction-mode pooler.
    #[serde(default)]
    pub pooler: Pooler,
}

/// What sits between the monitor and the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Pooler {
    /// The server itself, or a session-mode pooler: one backend for the whole session.
    #[default]
    None,
    /// A transaction-mode pooler (PgBouncer `pool_mode = transaction`, Supabase's port 6543): each
    /// transaction may run on another backend, so every poll is one simple-protocol transaction, with no
    /// prepared statements and no startup parameters.
    Transaction,
}

/// The service's metrics and health endpoints (`--metrics-url` and `--health-url` add to these).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Prometheus text endpoints (`/metrics`).
    pub metrics: Vec<String>,
    /// JSON health documents (`/internal/health`).
    pub health: Vec<String>,
}

/// How the lease table and its columns are named. `table` is SQL syntax (`schema.table`, quoted parts keep
/// their case); column names are exact. An optional column set to `""` is not used.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeaseMapping {
    pub table: String,
    pub group: String,
    pub key: String,
    pub owner: String,
    pub expires_at: String,
    pub acquired_at: String,
    pub contention_count: String,
    pub contended_since: String,
    pub last_contended_at: String,
    /// The zone that `timestamp without time zone` (and `date`) columns were written in; empty: the server's
    /// (the database's `timezone` setting, else the server's).
    pub timezone: String,
    /// The keys the config file names itself: an optional column named there must exist, while one left at
    /// its default name is simply unmapped when the table lacks it.
    #[serde(skip)]
    pub explicit: Vec<String>,
}

/// One mapped column of the lease table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappedColumn<'a> {
    /// Its key in `[lease]`.
    pub key: &'static str,
    /// The column's name in the table.
    pub column: &'a str,
    /// The table must have it (group, key, owner, expires_at).
    pub required: bool,
    /// The config file names it (else it is the default name).
    pub explicit: bool,
}

impl Default for LeaseMapping {
    fn default() -> Self {
        Self {
            table: "public.entry_locks".into(),
            group: "profile_id".into(),
            key: "symbol".into(),
            owner: "owner_token".into(),
            expires_at: "expires_at".into(),
            acquired_at: "acquired_at".into(),
            contention_count: "contention_count".into(),
            contended_since: "contended_since".into(),
            last_contended_at: "last_contended_at".into(),
            timezone: String::new(),
            explicit: Vec::new(),
        }
    }
}

impl LeaseMapping {
    /// The mapped columns. Unused optional columns (set to `""`) are left out.
    pub fn columns(&self) -> Vec<MappedColumn<'_>> {
        [
            ("group", self.group.as_str(), true),
            ("key", self.key.as_str(), true),
            ("owner", self.owner.as_str(), true),
            ("expires_at", self.expires_at.as_str(), true),
            ("acquired_at", self.acquired_at.as_str(), false),
            ("contention_count", self.contention_count.as_str(), false),
            ("contended_since", self.contended_since.as_str(), false),
            ("last_contended_at", self.last_contended_at.as_str(), false),
        ]
        .into_iter()
        .filter(|(_, column, required)| *required || !column.is_empty())
        .map(|(key, column, required)| MappedColumn {
            key,
            column,
            required,
            explicit: self.explicit.iter().any(|k| k == key),
        })
        .collect()
    }

    /// The same mapping without the optional column of this key (the table lacks it).
    #[must_use]
    pub fn without(&self, key: &str) -> Self {
        let mut out = self.clone();
        match key {
            "acquired_at" => out.acquired_at.clear(),
            "contention_count" => out.contention_count.clear(),
            "contended_since" => out.contended_since.clear(),
            "last_contended_at" => out.last_contended_at.clear(),
            _ => {}
        }
        out
    }
}

/// The runbook's thresholds, as durations like `30s`, `1m30s`, `500ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    #[serde(deserialize_with = "duration")]
    pub ttl: Duration,
    #[serde(deserialize_with = "duration")]
    pub escalate_after: Duration,
    /// A prepared transaction older than this that blocks anyone raises an alert.
    #[serde(deserialize_with = "duration")]
    pub prepared_after: Duration,
    /// This many deadlocks within `deadlock_window` raise an alert (0: never).
    pub deadlock_burst: u32,
    #[serde(deserialize_with = "duration")]
    pub deadlock_window: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(30),
            escalate_after: Duration::from_secs(90),
            prepared_after: Duration::from_mins(1),
            deadlock_burst: 3,
            deadlock_window: Duration::from_mins(5),
        }
    }
}

impl Thresholds {
    /// The model's rules for these thresholds.
    pub fn rules(&self) -> Rules {
        Rules {
            ttl: chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::MAX),
            escalate_after: chrono::Duration::from_std(self.escalate_after)
                .unwrap_or(chrono::Duration::MAX),
            prepared_after: chrono::Duration::from_std(self.prepared_after)
                .unwrap_or(chrono::Duration::MAX),
            deadlock_burst: self.deadlock_burst,
            deadlock_window: chrono::Duration::from_std(self.deadlock_window)
                .unwrap_or(chrono::Duration::MAX),
        }
    }
}

/// Where the user's config file and themes live: `$XDG_CONFIG_HOME/locktop`, else `~/.config/locktop`.
pub fn config_dir() -> Option<std::path::PathBuf> {
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = xdg.or_else(|| {
        std::env::var_os("HOME")
            .map(std::path::PathBuf::from)
            .filter(|p| p.is_absolute())
            .map(|home| home.join(".config"))
    })?;
    Some(base.join("locktop"))
}

/// Parses a duration with a unit (`30s`, `1m30s`, `500ms`); the error names the value and the expected form.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        format!("bad duration {text:?} ({e}): write a number with a unit, like 30s, 1m30s or 500ms")
    })?;
    if d.is_zero() {
        return Err(format!(
            "bad duration {text:?}: it must be greater than zero"
        ));
    }
    Ok(d)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|(line, message)| ConfigError::Parse {
            path: path.to_owned(),
            line,
            message,
        })
    }

    /// Parses config text; the error is (line, one-line message).
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut config: Self = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| {
                text[..s.start.min(text.len())].lines().count().max(1)
            });
            let line = if e
                .span()
                .is_some_and(|s| text[..s.start.min(text.len())].ends_with('\n'))
            {
                line + 1
            } else {
                line
            };
            (line, e.message().replace('\n', " ").trim().to_owned())
        })?;
        // Which [lease] keys the file names itself (it parsed, so it is a table).
        if let Ok(raw) = text.parse::<toml::Table>()
            && let Some(lease) = raw.get("lease").and_then(toml::Value::as_table)
        {
            config.lease.explicit = lease.keys().cloned().collect();
        }
        config.validate().map_err(|m| (1, m))?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        for c in self.lease.columns() {
            if c.column.trim().is_empty() {
                return Err(format!("[lease] {} must name a column", c.key));
            }
        }
        if self.lease.table.trim().is_empty() {
            return Err("[lease] table must name a table".into());
        }
        let mut names = std::collections::HashSet::new();
        for t in &self.targets {
            if let Some(name) = &t.name {
                if name.is_empty() || name.contains(|c: char| c == ':' || c.is_whitespace()) {
                    return Err(format!(
                        "[[target]] name {name:?} must be a non-empty word without ':' or spaces"
                    ));
                }
                if !names.insert(name) {
                    return Err(format!("[[target]] name {name:?} is used twice"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_read_and_their_names_checked() {
        let c = Config::parse(
            "[[target]]\nname = 'east'\ndsn = 'postgres://a/x'\n[[target]]\ndsn = 'host=b'\npooler = 'transaction'\n",
        )
        .expect("parses");
        assert_eq!(c.targets.len(), 2);
        assert_eq!(c.targets[0].name.as_deref(), Some("east"));
        assert_eq!(c.targets[1].pooler, Pooler::Transaction);
        let twice =
            Config::parse("[[target]]\nname = 'a'\ndsn = 'x'\n[[target]]\nname = 'a'\ndsn = 'y'\n");
        assert!(twice.is_err_and(|(_, m)| m.contains("used twice")));
        let colon = Config::parse("[[target]]\nname = 'a:b'\ndsn = 'x'\n");
        assert!(colon.is_err_and(|(_, m)| m.contains("without ':'")));
        let no_dsn = Config::parse("[[target]]\nname = 'a'\n");
        assert!(no_dsn.is_err_and(|(_, m)| m.contains("dsn")));
        let bad_pooler = Config::parse("[[target]]\ndsn = 'x'\npooler = 'statement'\n");
        assert!(bad_pooler.is_err_and(|(_, m)| m.contains("transaction")));
    }

    #[test]
    fn an_empty_file_maps_the_reference_schema() {
        let c = Config::parse("").expect("empty config parses");
        assert_eq!(c, Config::default());
        assert_eq!(c.thresholds.escalate_after, Duration::from_secs(90));
        assert_eq!(
            (c.thresholds.deadlock_burst, c.thresholds.deadlock_window),
            (3, Duration::from_mins(5)),
            "the defaults"
        );
        let c = Config::parse("[thresholds]\ndeadlock_burst = 2\ndeadlock_window = '1m'\n")
            .expect("parses");
        let rules = c.thresholds.rules();
        assert_eq!(
            (rules.deadlock_burst, rules.deadlock_window),
            (2, chrono::Duration::minutes(1))
        );
    }

    #[test]
    fn a_mapping_and_thresholds_are_read() {
        let c = Config::parse(
            "[lease]\ntable = 'sched.leases'\ngroup = 'tenant'\ncontended_since = ''\n[thresholds]\nttl = '5s'\nescalate_after = '1m30s'\n",
        )
        .expect("parses");
        assert_eq!(c.lease.table, "sched.leases");
        assert_eq!(c.lease.group, "tenant");
        assert!(!c.lease.columns().iter().any(|c| c.key == "contended_since"));
        assert_eq!(c.thresholds.ttl, Duration::from_secs(5));
        assert_eq!(c.thresholds.escalate_after, Duration::from_secs(90));
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_line_and_name() {
        let (line, message) =
            Config::parse("[lease]\ntable = 'x'\ntabel = 'y'\n").expect_err("unknown key");
        assert_eq!(line, 3);
        assert!(message.contains("tabel"), "{message}");
    }

    #[test]
    fn a_syntax_error_is_refused_with_its_line() {
        let (line, _) = Config::parse("[lease]\ntable = \n").expect_err("syntax error");
        assert_eq!(line, 2);
    }

    #[test]
    fn bad_durations_are_refused_with_the_value_and_the_expected_form() {
        let (_, message) = Config::parse("[thresholds]\nttl = '30'\n").expect_err("no unit");
        assert!(
            message.contains("\"30\"") && message.contains("30s"),
            "{message}"
        );
        assert!(parse_duration("0s").is_err());
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    }

    #[test]
    fn a_required_column_cannot_be_blank() {
        let (_, message) = Config::parse("[lease]\nowner = ''\n").expect_err("blank owner");
        assert!(message.contains("owner"), "{message}");
    }
}
