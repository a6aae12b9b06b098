//! `locktop replay FILE`: the dashboard on a recording, on a clock of its own — 1×, 10× or 60×, paused,
//! stepped poll by poll, or jumped to the next escalation — with the same rules and history as when it was
//! recorded; or, with `--summary`, a text report of the incident for the review, whose exit status follows
//! `snapshot`'s: 2 when a trigger fired at any poll, else 3 when any poll could not vouch for calm (failed,
//! lease rows unread, a standby, a database down, unattributed waits), else 0.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};
use color_eyre::eyre::{Result, WrapErr, eyre};
use crossterm::event::KeyCode;

use crate::app::App;
use crate::cli::{ReplayArgs, SPEEDS};
use crate::model::rules;
use crate::model::{History, Status, human_duration};
use crate::recording::{self, Poll, Recording};
use crate::ui::text;

/// Runs `replay`; returns the exit status.
pub async fn run(args: &ReplayArgs) -> Result<i32> {
    let recording = load(&args.file)?;
    if args.summary {
        let t = tally(&recording);
        let mut out = std::io::stdout().lock();
        // Database text through the one sanitiser, and ASCII only under a locale that is not UTF-8.
        let ascii = !crate::ui::Glyphs::detect().unicode;
        for line in summary(&recording, &t).lines() {
            writeln!(out, "{}", text::ascii_if(&text::sanitize(line), ascii))?;
        }
        out.flush()?;
        return Ok(t.exit_status());
    }
    let display = super::load_config(None)?.display;
    let face =
        super::watch::check_terminal_for(&args.theme, args.no_color, args.no_mouse, &display)?;
    if !recording.polls.iter().any(|p| p.snapshot.is_some()) {
        return Err(eyre!(
            "{} holds no successful poll to replay",
            args.file.display()
        ));
    }
    play(recording, args.speed, &face).await
}

/// Reads the file; an unreadable file or one that is not a recording is a one-line error.
pub fn load(path: &std::path::Path) -> Result<Recording> {
    let file = std::fs::File::open(path)
        .wrap_err_with(|| format!("cannot read the recording {}", path.display()))?;
    recording::read(std::io::BufReader::new(file)).map_err(|e| eyre!("{}: {e}", path.display()))
}

fn clock(at: DateTime<Utc>) -> String {
    at.format("%H:%M:%S").to_string()
}

/// What one profile went through in a recording.
#[derive(Default)]
struct Seen {
    /// Contended, escalated or expired: the incident goes on while a row is expired and not refreshed.
    contended: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    expired: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    escalated: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    holders: BTreeSet<String>,
}

/// The recording run through the rules, poll by poll.
#[derive(Default)]
struct Tally {
    seen: BTreeMap<String, Seen>,
    profiles: BTreeSet<String>,
    /// Most profiles contended at once, when, and which.
    peak: (usize, Option<DateTime<Utc>>, Vec<String>),
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    failed: usize,
    /// Polls at which an escalation trigger fired.
    alerted: usize,
    /// Polls that could not vouch for calm although they answered (rows unread, a standby, …).
    unvouched: usize,
}

impl Tally {
    /// The exit status of `replay --summary`, with `snapshot`'s meaning over the whole recording.
    fn exit_status(&self) -> i32 {
        if self.alerted > 0 {
            super::snapshot::EXIT_ESCALATED
        } else if self.failed > 0 || self.unvouched > 0 {
            super::snapshot::EXIT_INCOMPLETE
        } else {
            0
        }
    }
}

/// Extends the last span when it ended at the previous poll, or opens a new one.
fn extend(
    spans: &mut Vec<(DateTime<Utc>, DateTime<Utc>)>,
    at: DateTime<Utc>,
    prev: Option<DateTime<Utc>>,
) {
    match spans.last_mut() {
        Some(last) if Some(last.1) == prev => last.1 = at,
        _ => spans.push((at, at)),
    }
}

fn tally(recording: &Recording) -> Tally {
    let rules = recording.header.rules();
    let mut history = History::default();
    let mut t = Tally::default();
    let mut prev = None;
    for poll in &recording.polls {
        let Some(snapshot) = &poll.snapshot else {
            history.record_missed();
            t.failed += 1;
            continue;
        };
        let at = snapshot.server_now;
        t.first = t.first.or(Some(at));
        t.last = Some(at);
        rules::record(&mut history, snapshot, &rules);
        let board = rules::evaluate(snapshot, &history, &rules, at);
        t.alerted += usize::from(board.escalated());
        t.unvouched += usize::from(!super::snapshot::vouches_for_calm(snapshot, &board));
        let mut contended_now = Vec::new();
        for p in &board.profiles {
            t.profiles.insert(p.profile.clone());
            if p.status == Status::Ok {
                continue;
            }
            contended_now.push(p.profile.clone());
            let s = t.seen.entry(p.profile.clone()).or_default();
            extend(&mut s.contended, at, prev);
            if p.status == Status::Escalated {
                extend(&mut s.escalated, at, prev);
            }
            if p.holders().any(|r| r.is_expired(at)) {
                extend(&mut s.expired, at, prev);
            }
            s.holders
                .extend(p.holders().filter_map(|r| r.owner.clone()));
        }
        if contended_now.len() > t.peak.0 {
            t.peak = (contended_now.len(), Some(at), contended_now);
        }
        prev = Some(at);
    }
    t
}

/// What a recording says happened: when each profile was contended and escalated, for how long, who held it,
/// and the peak number of profiles contended at once.
fn summary(recording: &Recording, t: &Tally) -> String {
    let header = &recording.header;
    let rules = header.rules();
    let mut out = String::new();
    let span = |(a, b): (DateTime<Utc>, DateTime<Utc>)| {
        format!("{}–{} ({})", clock(a), clock(b), human_duration(b - a))
    };
    let _ = writeln!(
        out,
        "recording of {}: {} – {} UTC, {} polls ({} failed), TTL {}, escalate after {}",
        header.target,
        t.first.map_or_else(
            || "-".into(),
            |at| at.format("%Y-%m-%d %H:%M:%S").to_string()
        ),
        t.last.map_or_else(|| "-".into(), clock),
        recording.polls.len(),
        t.failed,
        human_duration(rules.ttl),
        human_duration(rules.escalate_after),
    );
    if let Some(d) = &recording.damage {
        let _ = writeln!(
            out,
            "damaged: the recording stops at line {}, byte {} ({}); the {} polls before it are replayed",
            d.line,
            d.offset,
            d.reason,
            recording.polls.len()
        );
    }
    match t.peak.1 {
        Some(at) => {
            let _ = writeln!(
                out,
                "peak: {} contended at once, at {} UTC: {}",
                text::count(t.peak.0 as u64, "profile"),
                clock(at),
                t.peak.2.join(", ")
            );
        }
        None => out.push_str("no profile was contended\n"),
    }
    for (profile, s) in &t.seen {
        let contended: Vec<String> = s.contended.iter().map(|&x| span(x)).collect();
        let _ = write!(out, "{profile}: contended {}", contended.join(", "));
        if !s.expired.is_empty() {
            let expired: Vec<String> = s.expired.iter().map(|&x| span(x)).collect();
            let _ = write!(out, "; a row expired {}", expired.join(", "));
        }
        if !s.escalated.is_empty() {
            let escalated: Vec<String> = s.escalated.iter().map(|&x| span(x)).collect();
            let _ = write!(out, "; escalated {}", escalated.join(", "));
        }
        if !s.holders.is_empty() {
            let holders: Vec<&str> = s.holders.iter().map(String::as_str).collect();
            let _ = write!(out, "; held by {}", holders.join(", "));
        }
        out.push('\n');
    }
    let calm = t.profiles.len() - t.seen.len();
    if calm > 0 {
        let _ = writeln!(
            out,
            "{} never contended",
            text::count(calm as u64, "other profile")
        );
    }
    if t.unvouched > 0 {
        let _ = writeln!(
            out,
            "{} could not vouch for calm (lease rows unread, a standby, a database down, or unattributed waits)",
            text::count(t.unvouched as u64, "poll")
        );
    }
    out
}

/// The player: which polls were shown, the replay clock and its speed.
struct Player {
    polls: Vec<Poll>,
    /// The next poll to show.
    next: usize,
    now: DateTime<Utc>,
    speed: u32,
    paused: bool,
    note: Option<String>,
    /// The real-time steps of the player's clock.
    tick: tokio::time::Interval,
}

/// How often the player's clock moves (by this much real time, times the speed).
const STEP: Duration = Duration::from_millis(100);

impl Player {
    /// Shows every poll up to the clock.
    fn catch_up(&mut self, app: &mut App) {
        while let Some(poll) = self.polls.get(self.next) {
            match poll.at() {
                Some(at) if at > self.now => break,
                _ => self.show_next(app),
            }
        }
        if self.next == self.polls.len() {
            self.paused = true;
            self.note = Some("end of the recording".into());
            if let Some(last) = self.polls.iter().rev().find_map(Poll::at) {
                self.now = last;
            }
        }
        app.set_clock(self.now);
    }

    /// Takes the next poll into the history and the screen; the caller evaluates once with `set_clock`.
    fn show_next(&mut self, app: &mut App) {
        let Some(poll) = self.polls.get(self.next) else {
            return;
        };
        match &poll.snapshot {
            Some(snapshot) => {
                self.now = self.now.max(snapshot.server_now);
                app.take(snapshot.clone());
            }
            None => app.history.record_missed(),
        }
        self.next += 1;
    }

    /// Moves to the next poll at which an escalation begins: a profile turns escalated, or alerts start.
    fn next_escalation(&mut self, app: &mut App) {
        fn escalated(p: &Poll) -> BTreeSet<&str> {
            p.statuses
                .iter()
                .filter(|(_, s)| *s == Status::Escalated.word())
                .map(|(k, _)| k.as_str())
                .collect()
        }
        let onset = (self.next..self.polls.len()).find(|&j| {
            let now = &self.polls[j];
            let Some(before) = j.checked_sub(1).map(|i| &self.polls[i]) else {
                return !now.alerts.is_empty();
            };
            (!now.alerts.is_empty() && before.alerts.is_empty())
                || !escalated(now).is_subset(&escalated(before))
        });
        match onset {
            Some(j) => {
                while self.next <= j {
                    self.show_next(app);
                }
                self.note = None;
                app.set_clock(self.now);
            }
            None => self.note = Some("no later escalation".into()),
        }
        self.paused = true;
    }

    fn status(&self) -> String {
        let state = if self.paused {
            "paused".to_owned()
        } else {
            format!("{}×", self.speed)
        };
        let mut line = format!(
            "REPLAY {state} · {} UTC · poll {}/{}",
            self.now.format("%Y-%m-%d %H:%M:%S"),
            self.next,
            self.polls.len(),
        );
        if let Some(note) = &self.note {
            let _ = write!(line, " · {note}");
        }
        line
    }
}

async fn play(recording: Recording, speed: u32, face: &super::terminal::Face) -> Result<i32> {
    let header = &recording.header;
    let interval = Duration::from_millis(header.interval_ms.max(1));
    let mut notes = Vec::new();
    if let Some(d) = &recording.damage {
        notes.push(format!(
            "the recording stops at line {}, byte {} ({}): replaying the {} polls before it",
            d.line,
            d.offset,
            d.reason,
            recording.polls.len()
        ));
    }
    let mut app = App::new(header.target.clone(), header.rules(), interval, notes);
    let start = recording
        .polls
        .iter()
        .find_map(Poll::at)
        .unwrap_or_else(Utc::now);
    let mut tick = tokio::time::interval(STEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut player = Player {
        polls: recording.polls,
        next: 0,
        now: start,
        speed,
        paused: false,
        note: None,
        tick,
    };
    player.catch_up(&mut app);
    super::terminal::run(&mut app, &mut player, face).await?;
    Ok(0)
}

impl super::terminal::Plug for Player {
    type News = ();

    /// The player's clock moves in steps of [`STEP`] of real time, times its speed.
    async fn news(&mut self) -> Result<()> {
        self.tick.tick().await;
        Ok(())
    }

    fn apply(&mut self, (): (), app: &mut App) -> bool {
        if self.paused {
            return false;
        }
        let advance = chrono::Duration::from_std(STEP * self.speed).unwrap_or_default();
        self.now += advance;
        self.catch_up(app);
        true
    }

    fn key(&mut self, key: &crossterm::event::KeyEvent, app: &mut App) -> bool {
        player_key(key.code, self, app)
    }

    fn before_draw(&mut self, app: &mut App) {
        app.replay = Some(self.status());
    }
}

/// The player's own keys; returns whether the key was one of them.
fn player_key(code: KeyCode, player: &mut Player, app: &mut App) -> bool {
    match code {
        KeyCode::Char('p' | ' ') => {
            if !player.paused {
                player.paused = true;
            } else if player.next < player.polls.len() {
                // At the end there is nothing to resume.
                player.paused = false;
                player.note = None;
            }
        }
        KeyCode::Char('+' | '=') => {
            player.speed = SPEEDS
                .iter()
                .copied()
                .find(|&s| s > player.speed)
                .unwrap_or(player.speed);
        }
        KeyCode::Char('-') => {
            player.speed = SPEEDS
                .iter()
                .rev()
                .copied()
                .find(|&s| s < player.speed)
                .unwrap_or(player.speed);
        }
        KeyCode::Char('.' | 'n') => {
            player.paused = true;
            player.note = None;
            player.show_next(app);
            app.set_clock(player.now);
        }
        KeyCode::Char('e') => player.next_escalation(app),
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LeaseRow, Snapshot};
    use crate::recording::Header;

    fn recording(polls: Vec<Option<Snapshot>>) -> Recording {
        let now = chrono::Utc::now();
        Recording {
            header: Header::for_tests(now),
            polls: polls
                .into_iter()
                .map(|snapshot| Poll {
                    error: snapshot.is_none().then(|| "lost".to_owned()),
                    snapshot,
                    summaries_unchanged: false,
                    changes: None,
                    statuses: BTreeMap::new(),
                    alerts: Vec::new(),
                })
                .collect(),
            damage: None,
        }
    }

    fn held(now: DateTime<Utc>, contended_for: i64) -> Snapshot {
        let mut s = Snapshot::at(now);
        s.leases.push(LeaseRow {
            group: Some("P".into()),
            key: Some("BTC".into()),
            owner: Some("w".into()),
            expires_at: Some(now + chrono::Duration::seconds(20)),
            acquired_at: Some(now),
            contention_count: Some(3),
            contended_since: Some(now - chrono::Duration::seconds(contended_for)),
            last_contended_at: Some(now),
        });
        s
    }

    #[test]
    fn the_summary_exits_0_calm_3_when_a_poll_could_not_vouch_and_2_when_a_trigger_fired() {
        let now = chrono::Utc::now();
        let status = |polls| tally(&recording(polls)).exit_status();
        assert_eq!(status(vec![Some(held(now, 10))]), 0);
        let mut unread = held(now, 10);
        unread.lease_error = Some("lease rows unread: lock timeout".into());
        assert_eq!(status(vec![Some(held(now, 10)), Some(unread.clone())]), 3);
        assert_eq!(status(vec![Some(held(now, 10)), None]), 3, "a failed poll");
        assert_eq!(
            status(vec![Some(unread), Some(held(now, 200))]),
            2,
            "a trigger wins over an incomplete poll"
        );
    }

    #[test]
    fn an_expired_row_continues_the_episode_instead_of_breaking_it() {
        let now = chrono::Utc::now();
        let mut expired = held(now + chrono::Duration::seconds(1), 11);
        expired.leases[0].expires_at = Some(now - chrono::Duration::seconds(1));
        let r = recording(vec![
            Some(held(now, 10)),
            Some(expired),
            Some(held(now + chrono::Duration::seconds(2), 12)),
        ]);
        let t = tally(&r);
        let seen = &t.seen["P"];
        assert_eq!(
            seen.contended.len(),
            1,
            "one episode, no gap: {:?}",
            seen.contended
        );
        assert_eq!(seen.expired.len(), 1);
        let text = summary(&r, &t);
        assert!(text.contains("(2s); a row expired"), "{text}");
    }
}
