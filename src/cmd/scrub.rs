//! A password given on the command line (`--dsn postgres://u:SECRET@…`, `--dsn "password=SECRET …"`) is readable
//! by every user of the host in `/proc/PID/cmdline` and `ps`. locktop takes it out at once: it re-executes
//! itself without those arguments and hands the DSNs over in its own environment, which only the same user can
//! read (as `PGPASSWORD` would be), with a one-line warning that recommends `PGPASSWORD`, `~/.pgpass` or a
//! service file.
//!
//! Re-executing rather than overwriting `argv` in place (as the mysql client does) needs no `unsafe` code: the
//! process keeps its pid, and its arguments are the scrubbed ones from the moment the new image runs. The
//! password was visible for the few milliseconds before that, as it is for every client that scrubs.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;

use crate::source::conninfo;

/// The variable that carries the DSNs taken off the command line, one per line.
pub const CARRIER: &str = "LOCKTOP_SCRUBBED_DSN";

/// Whether a DSN holds a password (or an `sslpassword`), or cannot be read well enough to tell.
pub fn holds_secret(dsn: &str) -> bool {
    let dsn = dsn.trim();
    let parsed = if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
        conninfo::parse_url(dsn)
    } else {
        conninfo::parse_key_values(dsn)
    };
    match parsed {
        Ok(map) => map.contains_key("password") || map.contains_key("sslpassword"),
        // Malformed: scrub it if it might hold one.
        Err(_) => dsn.contains("password") || dsn.contains('@'),
    }
}

/// The command line without the `--dsn` arguments that hold a secret, and those DSNs; `None` when there is
/// nothing to take out.
pub fn split(args: &[OsString]) -> Option<(Vec<OsString>, Vec<String>)> {
    let mut kept = Vec::with_capacity(args.len());
    let mut taken = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].to_string_lossy();
        if arg == "--" {
            kept.extend(args[i..].iter().cloned());
            break;
        }
        let (value, width) = if arg == "--dsn" {
            (args.get(i + 1).map(|v| v.to_string_lossy().into_owned()), 2)
        } else if let Some(v) = arg.strip_prefix("--dsn=") {
            (Some(v.to_owned()), 1)
        } else {
            (None, 1)
        };
        match value {
            Some(dsn) if holds_secret(&dsn) => taken.push(dsn),
            _ => kept.extend(args[i..(i + width).min(args.len())].iter().cloned()),
        }
        i += width;
    }
    (!taken.is_empty()).then_some((kept, taken))
}

/// Re-executes this program without the secret-holding `--dsn` arguments, passing them in [`CARRIER`].
/// Returns only when there is nothing to scrub, when this process is the scrubbed one already, or when the
/// re-execution failed (then the arguments stay: the program still works, and the warning was given).
pub fn reexec_without_secrets() {
    if std::env::var_os(CARRIER).is_some() {
        return;
    }
    let args: Vec<OsString> = std::env::args_os().collect();
    let Some((kept, taken)) = args.split_first().and_then(|(_, rest)| split(rest)) else {
        return;
    };
    eprintln!(
        "locktop: warning: a password on the command line is visible to every user of this host (ps, /proc); \
         it is taken out of locktop's arguments now, but use PGPASSWORD, ~/.pgpass or a service file instead"
    );
    let error = reexec(kept, (CARRIER, &taken.join("\n")));
    tracing::warn!(error = %error, "could not re-execute without the password");
}

/// Runs this program again in place (the same pid) with `args` after its own name and one variable added to
/// its environment. By its own path, so that the process keeps its name (it takes it from the file it runs:
/// `exe` for `/proc/self/exe`, which is the fallback). Returns only on failure, with the error.
pub fn reexec(
    args: impl IntoIterator<Item = OsString>,
    (name, value): (&str, &str),
) -> std::io::Error {
    let binary = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
    std::process::Command::new(binary)
        .arg0(
            std::env::args_os()
                .next()
                .unwrap_or_else(|| "locktop".into()),
        )
        .args(args)
        .env(name, value)
        .exec()
}

/// The DSNs a scrubbing re-execution handed over.
pub fn handed_over() -> Vec<String> {
    std::env::var(CARRIER)
        .map(|v| v.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn only_dsns_with_a_secret_are_taken_out() {
        let (kept, taken) = split(&os(&[
            "snapshot",
            "--dsn",
            "postgres://u:Tail9Secret@db/x",
            "--dsn=host=a password='p w'",
            "--dsn",
            "postgres://u@db/y",
            "-f",
            "json",
        ]))
        .expect("something to scrub");
        assert_eq!(
            kept,
            os(&["snapshot", "--dsn", "postgres://u@db/y", "-f", "json"])
        );
        assert_eq!(
            taken,
            ["postgres://u:Tail9Secret@db/x", "host=a password='p w'"]
        );
        assert!(split(&os(&["--dsn", "host=db user=mon"])).is_none());
        assert!(holds_secret("postgres://u@h/d?sslpassword=x"));
        assert!(holds_secret("host=db password=unterminated'"));
    }
}
