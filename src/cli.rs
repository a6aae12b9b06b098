//! The command line: subcommands and options, with the environment variables they fall back to.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Live PostgreSQL lease-lock and pg_locks dashboard for incidents. Read-only: it never writes to the database.
#[derive(Debug, Parser)]
#[command(name = "locktop", version, about, long_about = None, disable_help_flag = true)]
pub struct Cli {
    /// Print help (`-h` is the host, as in psql).
    #[arg(long, short = '?', action = clap::ArgAction::Help, global = true)]
    pub help: Option<bool>,
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub connection: Connection,
    /// The dashboard's options, for `locktop` without a command (`locktop --theme light`).
    #[command(flatten)]
    pub watch: WatchArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options every subcommand takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Config file (TOML): lease table mapping, thresholds, targets, display.
    #[arg(long, short = 'c', env = "LOCKTOP_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Poll interval, like 1s or 500ms (at least 100ms).
    #[arg(long, short = 'i', default_value = "1s", value_parser = parse_interval, global = true)]
    pub interval: Duration,
    /// Write logs to this file (they never go to the terminal).
    #[arg(long, env = "LOCKTOP_LOG_FILE", global = true)]
    pub log_file: Option<PathBuf>,
}

/// Where to connect: the options of the commands that read a database (the dashboard and `snapshot`; `demo`
/// makes its own database and `replay` reads a file).
#[derive(Debug, Clone, Default, Args)]
pub struct Connection {
    /// PostgreSQL URL or key=value DSN; without it the PG* variables and ~/.pgpass are used. Give it more than
    /// once to watch several databases at once (profiles are then named database:profile).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub dsn: Vec<String>,
    /// Host name or socket directory, as psql's -h (wins over the DSN and PGHOST); several as a,b.
    #[arg(short = 'h', long = "host", value_name = "HOST")]
    pub host: Option<String>,
    /// Port, as psql's -p (wins over the DSN and PGPORT).
    #[arg(short = 'p', long = "port", value_name = "PORT")]
    pub port: Option<String>,
    /// User name, as psql's -U (wins over the DSN and PGUSER; by default the OS user).
    #[arg(short = 'U', long = "username", value_name = "USER")]
    pub username: Option<String>,
    /// Database name, as psql's -d (wins over the DSN and PGDATABASE; by default the user name).
    #[arg(short = 'd', long = "dbname", value_name = "DBNAME")]
    pub dbname: Option<String>,
    /// Never prompt for a password, as psql's -w (by default locktop asks only when the server wants one,
    /// none is known, and standard input is a terminal).
    #[arg(short = 'w', long = "no-password", conflicts_with = "password")]
    pub no_password: bool,
    /// Prompt for the password before connecting, as psql's -W.
    #[arg(short = 'W', long = "password")]
    pub password: bool,
    /// What sits in front of the server: `transaction` for a transaction-mode pooler (PgBouncer, Supabase's
    /// port 6543): each poll is then one simple-protocol transaction. A pooler that refuses the startup
    /// parameters of a plain session is detected without it.
    #[arg(long, value_enum, default_value = "none", env = "LOCKTOP_POOLER")]
    pub pooler: crate::config::Pooler,
    /// The service's Prometheus metrics page (repeatable): its contention rate per profile_id is shown beside
    /// the database's view.
    #[arg(long, value_name = "URL")]
    pub metrics_url: Vec<String>,
    /// The service's JSON health document (repeatable): its health flags are shown in the header.
    #[arg(long, value_name = "URL")]
    pub health_url: Vec<String>,
}

impl Connection {
    /// These options, or for each one not given here, `outer`'s (`locktop --dsn X snapshot`).
    #[must_use]
    pub fn or(&self, outer: &Self) -> Self {
        let pick =
            |a: &Vec<String>, b: &Vec<String>| if a.is_empty() { b.clone() } else { a.clone() };
        Self {
            dsn: pick(&self.dsn, &outer.dsn),
            pooler: if self.pooler == crate::config::Pooler::None {
                outer.pooler
            } else {
                self.pooler
            },
            metrics_url: pick(&self.metrics_url, &outer.metrics_url),
            health_url: pick(&self.health_url, &outer.health_url),
            host: self.host.clone().or_else(|| outer.host.clone()),
            port: self.port.clone().or_else(|| outer.port.clone()),
            username: self.username.clone().or_else(|| outer.username.clone()),
            dbname: self.dbname.clone().or_else(|| outer.dbname.clone()),
            no_password: self.no_password || outer.no_password,
            password: self.password || outer.password,
        }
    }

    /// The psql-style flags, as overrides of every other source.
    pub fn overrides(&self) -> crate::source::conninfo::Overrides {
        crate::source::conninfo::Overrides {
            host: self.host.clone(),
            port: self.port.clone(),
            user: self.username.clone(),
            dbname: self.dbname.clone(),
        }
    }
}

/// What to do.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// The live dashboard (the default when no command is given).
    Watch {
        #[command(flatten)]
        connection: Connection,
        #[command(flatten)]
        args: WatchArgs,
    },
    /// A throwaway PostgreSQL with a workload that plays the runbook's incidents, and the dashboard on it.
    Demo(DemoArgs),
    /// Poll once and print the state (for scripts and health checks): exit 0 calm, 2 escalated, 1 error.
    Snapshot(SnapshotArgs),
    /// Headless: the dashboard's polls and runbook rules as Prometheus metrics (`/metrics`) and a health check
    /// (`/healthz`) over HTTP, until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Play a `--record` file back in the dashboard (or `--summary`: a text report of the incident).
    Replay(ReplayArgs),
    /// Print a shell completion script: `locktop completions bash > /etc/bash_completion.d/locktop`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `locktop man > /usr/local/share/man/man1/locktop.1`.
    Man,
}

/// Options of the dashboard.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Theme: default, light, high-contrast, monochrome, or a path to a theme file.
    #[arg(long, env = "LOCKTOP_THEME", default_value = "default")]
    pub theme: String,
    /// No colour (also when NO_COLOR is set): emphasis by bold, reverse and underline only.
    #[arg(long)]
    pub no_color: bool,
    /// Leave the mouse to the terminal (its own text selection) instead of clicks and the wheel.
    #[arg(long)]
    pub no_mouse: bool,
    /// Append every poll to FILE (JSON Lines, mode 0600) for `locktop replay`; a FILE ending in .zst is
    /// compressed with zstd.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Also record query texts (left out by default: they may hold data).
    #[arg(long, requires = "record")]
    pub record_queries: bool,
    /// Append to an existing recording of another target or format (refused by default).
    #[arg(long, requires = "record")]
    pub record_append_other: bool,
    /// Stop recording (with a note on screen) rather than let the file pass SIZE, like 512MiB or 2GiB; 0 for
    /// no limit. An incident must not fill the disk of the host it is watched from.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = crate::recording::parse_size)]
    pub record_max_size: u64,
    #[command(flatten)]
    pub hooks: HookArgs,
}

/// The command run on each alert change (the dashboard and `serve`).
#[derive(Debug, Clone, Default, Args)]
pub struct HookArgs {
    /// Run CMD (with sh -c) each time an escalation trigger starts or clears: the alert as JSON on its stdin
    /// and in LOCKTOP_ALERT_* variables. One run at a time, in order; never blocks the polls or the screen.
    #[arg(long, value_name = "CMD", env = "LOCKTOP_ON_ALERT")]
    pub on_alert: Option<String>,
    /// How long one run of --on-alert may take before it is killed.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_hook_timeout)]
    pub on_alert_timeout: Duration,
}

/// The address `serve` listens on by default: loopback only (the metrics name profiles).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9671";

/// Options of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// Address to listen on, as HOST:PORT (loopback by default; 0.0.0.0:PORT exposes it to the network).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN, env = "LOCKTOP_LISTEN")]
    pub listen: String,
    /// Per-profile series for at most this many profiles that are not calm (most severe first); the others
    /// are summed up as profile="_other".
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub top_profiles: usize,
    #[command(flatten)]
    pub hooks: HookArgs,
}

/// Options of `demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub watch: WatchArgs,
    /// Play only this scenario (repeatable); all of them by default.
    #[arg(long, value_enum)]
    pub scenario: Vec<crate::rig::demo::Scenario>,
    /// Calm profiles in the steady scenario.
    #[arg(long, default_value_t = 40)]
    pub profiles: usize,
    /// Contending workers, spread over the contended profiles.
    #[arg(long, default_value_t = 8)]
    pub workers: usize,
    /// Use the real thresholds (TTL 30 s, escalation after 90 s) instead of the compressed clock (5 s, 15 s).
    #[arg(long)]
    pub real_time: bool,
    /// Keep the cluster running after the demo, and print how to reach and stop it.
    #[arg(long)]
    pub keep: bool,
}

/// Options of `snapshot`.
#[derive(Debug, Clone, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Json)]
    pub format: Format,
}

/// Output format of `snapshot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Table,
}

fn parse_hook_timeout(text: &str) -> Result<Duration, String> {
    let d = crate::config::parse_duration(text)?;
    if d.is_zero() {
        return Err("the timeout must be more than 0s".to_owned());
    }
    Ok(d)
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let d = crate::config::parse_duration(text)?;
    if d < Duration::from_millis(100) {
        return Err(format!(
            "interval {text} is too short: use at least 100ms (locktop must not add load)"
        ));
    }
    Ok(d)
}

/// Options of `replay`.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// The recording, as written by `--record`.
    pub file: PathBuf,
    /// Print when each profile was contended and escalated, who held it, and the peak, instead of the dashboard.
    #[arg(long)]
    pub summary: bool,
    /// Playback speed (+ and - change it while playing).
    #[arg(long, default_value_t = 1, value_parser = parse_speed)]
    pub speed: u32,
    /// Theme: default, light, high-contrast, monochrome, or a path to a theme file.
    #[arg(long, env = "LOCKTOP_THEME", default_value = "default")]
    pub theme: String,
    /// No colour (also when NO_COLOR is set).
    #[arg(long)]
    pub no_color: bool,
    /// Leave the mouse to the terminal (its own text selection) instead of clicks and the wheel.
    #[arg(long)]
    pub no_mouse: bool,
}

/// The playback speeds `replay` offers.
pub const SPEEDS: [u32; 3] = [1, 10, 60];

fn parse_speed(text: &str) -> Result<u32, String> {
    text.trim_end_matches(['x', '×'])
        .parse()
        .ok()
        .filter(|s| SPEEDS.contains(s))
        .ok_or_else(|| format!("the speed is one of 1, 10 or 60, not {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_options_before_the_command_apply_when_the_command_has_none() {
        let cli = Cli::try_parse_from([
            "locktop",
            "--dsn",
            "postgres://a/x",
            "snapshot",
            "-f",
            "table",
        ])
        .expect("parse");
        let Some(Command::Snapshot(args)) = &cli.command else {
            panic!("snapshot");
        };
        assert_eq!(args.connection.or(&cli.connection).dsn, ["postgres://a/x"]);
        let cli = Cli::try_parse_from([
            "locktop",
            "--dsn",
            "postgres://a/x",
            "snapshot",
            "--dsn",
            "postgres://b/y",
            "--pooler",
            "transaction",
        ])
        .expect("parse");
        let Some(Command::Snapshot(args)) = &cli.command else {
            panic!("snapshot");
        };
        let merged = args.connection.or(&cli.connection);
        assert_eq!(merged.dsn, ["postgres://b/y"], "the command's own win");
        assert_eq!(merged.pooler, crate::config::Pooler::Transaction);
    }
}
