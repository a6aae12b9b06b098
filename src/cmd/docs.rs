//! Shell completions and the man page, generated from the clap definitions so they never drift from the
//! options the binary really takes.

use std::io::Write;

use clap::CommandFactory;
use color_eyre::eyre::Result;

use crate::cli::Cli;

/// The completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "locktop", &mut script);
    script
}

/// The man page, in roff: clap's sections, then the keys, the environment, the files, the exit status and
/// examples.
pub fn man() -> Result<Vec<u8>> {
    let mut page = Vec::new();
    let man = clap_mangen::Man::new(Cli::command());
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    man.render_subcommands_section(&mut page)?;
    for (title, items) in SECTIONS {
        writeln!(page, ".SH {title}")?;
        for (term, text) in *items {
            writeln!(page, ".TP\n\\fB{}\\fR\n{}", roff(term), roff(text))?;
        }
    }
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// Text safe in roff: a backslash doubled, a leading dot or quote escaped.
fn roff(text: &str) -> String {
    let text = text.replace('\\', "\\\\").replace('-', "\\-");
    if text.starts_with('.') || text.starts_with('\'') {
        format!("\\&{text}")
    } else {
        text
    }
}

/// The man page's own sections: what the options list does not say.
const SECTIONS: &[(&str, &[(&str, &str)])] = &[
    (
        "KEYS",
        &[
            ("q, Ctrl-C", "quit"),
            ("?, F1", "help"),
            (
                "/",
                "filter by profile, owner or key (Enter keeps, Esc clears)",
            ),
            ("s", "cycle the sort: severity, failures, expiry, name"),
            (
                "p, Space",
                "pause: the whole view freezes; polling goes on underneath",
            ),
            ("j k Up Down PgUp PgDn Home End", "move"),
            (
                "Enter",
                "detail of the selected profile; on a lock wait, its profile or its blocker",
            ),
            ("Tab", "switch between the profiles and the lock waits"),
            (
                "a",
                "every active alert with its runbook; Enter jumps to its profile",
            ),
            (
                "x",
                "a profile's other held keys: when they fit, always, or never",
            ),
            ("t", "show query texts"),
            ("r", "poll now"),
            ("Ctrl-Z", "suspend (fg resumes)"),
            ("Esc", "back"),
            (
                "mouse",
                "a click selects a line or focuses a pane, the wheel moves (--no-mouse: off)",
            ),
        ],
    ),
    (
        "ENVIRONMENT",
        &[
            (
                "PGHOST, PGHOSTADDR, PGPORT, PGDATABASE, PGUSER",
                "where and as whom to connect, as libpq reads them (after -h -p -d -U, the DSN and a service entry)",
            ),
            (
                "PGPASSWORD, PGPASSFILE",
                "the password, or the password file (default ~/.pgpass)",
            ),
            (
                "PGSERVICE, PGSERVICEFILE, PGSYSCONFDIR",
                "a service name; the user's service file (default ~/.pg_service.conf) and the directory of the system's (pg_service.conf)",
            ),
            (
                "PGCONNECT_TIMEOUT, PGSSLMODE, PGSSLROOTCERT, PGSSLCERT, PGSSLKEY, PGTARGETSESSIONATTRS, PGAPPNAME",
                "as the libpq keys connect_timeout, sslmode, sslrootcert, sslcert, sslkey, target_session_attrs, application_name",
            ),
            ("DATABASE_URL", "the DSN when --dsn is not given"),
            (
                "LOCKTOP_CONFIG, LOCKTOP_THEME, LOCKTOP_POOLER, LOCKTOP_LOG_FILE",
                "as --config, --theme, --pooler and --log-file",
            ),
            ("LOCKTOP_LOG", "the log's level filter (default info)"),
            (
                "LOCKTOP_ON_ALERT, LOCKTOP_LISTEN",
                "as --on-alert and serve's --listen",
            ),
            (
                "LOCKTOP_ALERT_EVENT, _TRIGGER, _PROFILE, _PROFILES, _SINCE, _AT, _MESSAGE, _TARGET",
                "set for the --on-alert command (which also gets the alert as JSON on stdin; PGPASSWORD and DATABASE_URL are not passed on)",
            ),
            (
                "LOCKTOP_PG_BINDIR",
                "the PostgreSQL server programs of locktop demo",
            ),
            (
                "MIMALLOC_PURGE_DELAY",
                "milliseconds the allocator keeps freed memory before it gives it back; locktop sets 0 for itself unless it is set",
            ),
            (
                "NO_COLOR, TERM, COLORTERM",
                "no colour; the colour depth (16, 256 or RGB)",
            ),
            (
                "LANG, LC_ALL, LC_CTYPE",
                "a locale that is not UTF-8 gets ASCII only",
            ),
        ],
    ),
    (
        "FILES",
        &[
            (
                "$XDG_CONFIG_HOME/locktop/config.toml, ~/.config/locktop/config.toml",
                "the user's config file",
            ),
            (
                "/etc/locktop/config.toml",
                "the system-wide config file, when the user has none",
            ),
            ("~/.config/locktop/themes/NAME.toml", "the user's themes"),
            (
                "~/.pgpass",
                "passwords, matched as libpq matches them; ignored when others can read it",
            ),
            (
                "~/.pg_service.conf, /etc/postgresql-common/pg_service.conf",
                "connection services",
            ),
            (
                "~/.postgresql/root.crt",
                "the CA for sslmode=verify-ca and verify-full",
            ),
        ],
    ),
    (
        "EXIT STATUS",
        &[
            (
                "0",
                "quit normally (serve: on SIGINT or SIGTERM); for snapshot, everything was read and no trigger fired",
            ),
            (
                "1",
                "an error: bad input, cannot connect (one line on stderr)",
            ),
            ("2", "snapshot: an escalation trigger fired"),
            (
                "3",
                "snapshot: locktop cannot vouch for calm (a standby, rows or locks unread, a database down, unattributed waits)",
            ),
        ],
    ),
    (
        "EXAMPLES",
        &[
            (
                "locktop -h db.internal -U monitor -d trading",
                "the dashboard, connecting as psql would",
            ),
            (
                "PGSERVICE=trading locktop",
                "a service from ~/.pg_service.conf",
            ),
            (
                "locktop --dsn 'host=db1,db2 target_session_attrs=read-write'",
                "the primary among two hosts",
            ),
            (
                "locktop snapshot --format json",
                "one poll as JSON, for scripts (exit 0, 2 or 3)",
            ),
            (
                "locktop serve --listen 127.0.0.1:9671",
                "headless: Prometheus metrics at /metrics, a health check at /healthz",
            ),
            (
                "locktop --on-alert 'logger -t locktop'",
                "run a command on each alert start and clear (the alert as JSON on stdin)",
            ),
            (
                "locktop --record incident.jsonl",
                "record every poll; locktop replay incident.jsonl plays it back",
            ),
            (
                "locktop demo",
                "a throwaway PostgreSQL with a contending workload",
            ),
        ],
    ),
];

/// Prints generated text; a reader that stops early (`| head`) is not an error.
pub fn print(text: &[u8]) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(0),
    }
}
