//! The runbook as Prometheus metrics: the text `locktop serve` answers `/metrics` with, from a [`Watcher`].
//!
//! Names follow Prometheus' conventions: the `locktop_` prefix, units in the name (`_seconds`), `_total` on
//! counters. Per-profile series go to the `top` profiles that are not calm, in the runbook's order (most
//! severe first); the rest are folded into one `profile="_other"` series, so that an incident on thousands of
//! profiles cannot explode the label cardinality.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::rules::{Alert, Board, Status};
use super::watcher::{PollStats, Watcher};

/// The profile label of the series that sums up the profiles past the top N.
pub const OTHER: &str = "_other";

/// What a metric is, for its `# TYPE` line.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Gauge,
    Counter,
}

/// One metric: its name, help and kind, then its samples.
struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
        self
    }
}

fn family<'a>(out: &'a mut String, name: &str, kind: Kind, help: &str) -> Family<'a> {
    let kind = match kind {
        Kind::Gauge => "gauge",
        Kind::Counter => "counter",
    };
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    Family { out }
}

/// A label value in the text format: backslash, double quote and line feed escaped.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A sample value: integers without a fraction, others with up to millisecond precision.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// One profile's per-profile figures.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    contended_s: f64,
    waiters: f64,
    longest_wait_s: f64,
}

/// The `/metrics` page of `watcher`'s state, with per-profile series for at most `top` profiles.
pub fn render(watcher: &Watcher, top: usize) -> String {
    let mut out = String::with_capacity(4096);
    polls(&mut out, watcher.stats());
    // What the database says: only while it can be read (a stale board would report an old calm).
    if let (Some(board), None) = (watcher.board(), watcher.stats().failing.as_ref()) {
        profiles(&mut out, board, top);
        alerts(&mut out, board);
        if let Some(total) = watcher.snapshot().and_then(|s| s.deadlocks) {
            family(
                &mut out,
                "locktop_deadlocks_total",
                Kind::Counter,
                "Deadlocks the database has counted (pg_stat_database.deadlocks, the server's own counter).",
            )
            .sample("locktop_deadlocks_total", &[], total as f64);
        }
    }
    out
}

/// The poller's counters.
fn polls(out: &mut String, stats: &PollStats) {
    family(
        out,
        "locktop_up",
        Kind::Gauge,
        "Whether the latest poll of the database succeeded (1) or failed (0).",
    )
    .sample(
        "locktop_up",
        &[],
        f64::from(u8::from(
            stats.failing.is_none() && stats.last_success.is_some(),
        )),
    );
    family(
        out,
        "locktop_polls_total",
        Kind::Counter,
        "Poll attempts since locktop started.",
    )
    .sample("locktop_polls_total", &[], stats.polls as f64);
    family(
        out,
        "locktop_poll_errors_total",
        Kind::Counter,
        "Poll attempts that failed (timeouts, a lost connection, a refused login).",
    )
    .sample("locktop_poll_errors_total", &[], stats.failures as f64);
    if let Some(ms) = stats.last_poll_ms {
        family(
            out,
            "locktop_poll_duration_seconds",
            Kind::Gauge,
            "How long the latest successful poll took.",
        )
        .sample("locktop_poll_duration_seconds", &[], ms / 1000.0);
    }
    if let Some(at) = stats.last_success {
        family(
            out,
            "locktop_last_successful_poll_timestamp_seconds",
            Kind::Gauge,
            "When the latest successful poll arrived, in Unix time.",
        )
        .sample(
            "locktop_last_successful_poll_timestamp_seconds",
            &[],
            unix_seconds(at),
        );
    }
}

/// Profiles by status, and the per-profile series of the `top` that are not calm.
fn profiles(out: &mut String, board: &Board, top: usize) {
    // The calm profiles known from their summaries are counted, not built.
    let mut by_status: HashMap<Status, usize> = HashMap::new();
    let mut judged = 0;
    for p in board.profiles.judged() {
        *by_status.entry(p.status).or_default() += 1;
        judged += 1;
    }
    *by_status.entry(Status::Ok).or_default() += board.profiles.len() - judged;
    let mut f = family(
        out,
        "locktop_profiles",
        Kind::Gauge,
        "Profiles by status: ok, contended, expired (a dead owner's row), escalated.",
    );
    for status in [
        Status::Ok,
        Status::Contended,
        Status::Expired,
        Status::Escalated,
    ] {
        f.sample(
            "locktop_profiles",
            &[("status", status.word())],
            by_status.get(&status).copied().unwrap_or(0) as f64,
        );
    }

    let mut longest: HashMap<&str, f64> = HashMap::new();
    for w in &board.waits {
        if let (Some(p), Some(d)) = (&w.profile, w.waiting_for(board.now)) {
            let s = seconds(d);
            let e = longest.entry(p.as_str()).or_default();
            *e = e.max(s);
        }
    }
    let troubled = board.profiles.judged().filter(|p| p.status != Status::Ok);
    let mut listed: Vec<(&str, Figures)> = Vec::new();
    let mut other: Option<Figures> = None;
    let mut unlisted = 0_usize;
    for p in troubled {
        let figures = Figures {
            contended_s: p.contended_for(board.now).map_or(0.0, seconds),
            waiters: f64::from(p.waiters),
            longest_wait_s: longest.get(p.profile.as_ref()).copied().unwrap_or(0.0),
        };
        if listed.len() < top {
            listed.push((&p.profile, figures));
        } else {
            unlisted += 1;
            let o = other.get_or_insert_with(Figures::default);
            o.contended_s = o.contended_s.max(figures.contended_s);
            o.waiters += figures.waiters;
            o.longest_wait_s = o.longest_wait_s.max(figures.longest_wait_s);
        }
    }
    let rows: Vec<(&str, Figures)> = listed
        .into_iter()
        .chain(other.map(|o| (OTHER, o)))
        .collect();
    for (name, help, value) in [
        (
            "locktop_profile_contended_seconds",
            "How long the profile's current contention episode has lasted (the longest, for _other).",
            (|f: &Figures| f.contended_s) as fn(&Figures) -> f64,
        ),
        (
            "locktop_profile_waiters",
            "Sessions waiting on the profile's lease rows now (their sum, for _other).",
            |f: &Figures| f.waiters,
        ),
        (
            "locktop_profile_longest_wait_seconds",
            "How long the longest waiter on the profile's rows has waited (the longest, for _other).",
            |f: &Figures| f.longest_wait_s,
        ),
    ] {
        let mut f = family(out, name, Kind::Gauge, help);
        for (profile, figures) in &rows {
            f.sample(name, &[("profile", profile)], value(figures));
        }
    }
    family(
        out,
        "locktop_profiles_unlisted",
        Kind::Gauge,
        "Profiles not calm beyond the per-profile series' limit (--top-profiles), folded into profile=\"_other\".",
    )
    .sample("locktop_profiles_unlisted", &[], unlisted as f64);
    family(
        out,
        "locktop_lock_waits",
        Kind::Gauge,
        "Sessions waiting on a lock now (lease rows, advisory locks, anything in pg_locks).",
    )
    .sample("locktop_lock_waits", &[], board.waits.len() as f64);
}

/// The escalation triggers active now, every trigger listed.
fn alerts(out: &mut String, board: &Board) {
    let mut active: HashMap<&str, usize> = HashMap::new();
    for a in &board.alerts {
        *active.entry(a.trigger()).or_default() += 1;
    }
    let mut f = family(
        out,
        "locktop_alerts_active",
        Kind::Gauge,
        "Escalation triggers of the runbook active now, by trigger.",
    );
    for trigger in Alert::TRIGGERS {
        f.sample(
            "locktop_alerts_active",
            &[("trigger", trigger)],
            active.get(trigger).copied().unwrap_or(0) as f64,
        );
    }
}

/// The `--on-alert` command's counters (kept by the command's runner, outside the watcher).
pub fn hook_counters(runs: u64, failures: u64) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "locktop_alert_hook_runs_total",
        Kind::Counter,
        "Runs of the --on-alert command (one per alert start or clear).",
    )
    .sample("locktop_alert_hook_runs_total", &[], runs as f64);
    family(
        &mut out,
        "locktop_alert_hook_failures_total",
        Kind::Counter,
        "Runs of the --on-alert command that failed (non-zero exit, timeout, could not start).",
    )
    .sample("locktop_alert_hook_failures_total", &[], failures as f64);
    out
}

fn seconds(d: chrono::Duration) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

fn unix_seconds(at: DateTime<Utc>) -> f64 {
    at.timestamp_millis() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_escape_what_the_text_format_needs() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.250");
    }
}
