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
use crate::recording::{Damage, Header, Poll, PollHead, Reader};
use crate::ui::text;

/// Runs `replay`; returns the exit status.
pub async fn run(args: &ReplayArgs) -> Result<i32> {
    if args.summary {
        let mut reader = open(&args.file)?;
        let rules = reader.header().rules();
        let t = tally(&rules, reader.by_ref());
        let mut out = std::io::stdout().lock();
        // Database text through the one sanitiser, and ASCII only under a locale that is not UTF-8.
        let ascii = !crate::ui::Glyphs::detect().unicode;
        for line in summary(reader.header(), &t, reader.damage()).lines() {
            writeln!(out, "{}", text::ascii_if(&text::sanitize(line), ascii))?;
        }
        out.flush()?;
        return Ok(t.exit_status());
    }
    let display = super::load_config(None)?.display;
    let face =
        super::watch::check_terminal_for(&args.theme, args.no_color, args.no_mouse, &display)?;
    let scan = Scan::of(open(&args.file)?);
    if scan.first.is_none() {
        return Err(eyre!(
            "{} holds no successful poll to replay",
            args.file.display()
        ));
    }
    play(open(&args.file)?, scan, args.speed, &face).await
}

/// Opens the file for reading poll by poll; an unreadable file or one that is not a recording is a one-line
/// error.
fn open(path: &std::path::Path) -> Result<Reader<'static>> {
    let file = std::fs::File::open(path)
        .wrap_err_with(|| format!("cannot read the recording {}", path.display()))?;
    Reader::new(std::io::BufReader::new(file)).map_err(|e| eyre!("{}: {e}", path.display()))
}

/// What the player needs to know of the whole recording before it starts, found in one pass that holds a
/// poll at a time: how many polls, when they begin and end, and where escalations begin (for `e`).
#[derive(Debug, Default)]
struct Scan {
    polls: usize,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    /// The polls at which an escalation begins: a profile turns escalated, or alerts start.
    onsets: Vec<usize>,
    damage: Option<Damage>,
}

impl Scan {
    fn of(mut reader: Reader<'_>) -> Self {
        fn escalated(p: &PollHead) -> BTreeSet<String> {
            p.statuses
                .iter()
                .filter(|(_, s)| *s == Status::Escalated.word())
                .map(|(k, _)| k.clone())
                .collect()
        }
        let mut scan = Self::default();
        // The previous poll's escalated profiles, and whether it had alerts.
        let mut before: Option<(BTreeSet<String>, bool)> = None;
        for (j, poll) in reader.heads().enumerate() {
            scan.polls = j + 1;
            if let Some(at) = poll.at() {
                scan.first = scan.first.or(Some(at));
                scan.last = Some(at);
            }
            let now = (escalated(&poll), !poll.alerts.is_empty());
            let onset = match &before {
                None => now.1,
                Some((was, alerted)) => (now.1 && !alerted) || !now.0.is_subset(was),
            };
            if onset {
                scan.onsets.push(j);
            }
            before = Some(now);
        }
        scan.damage = reader.damage().cloned();
        scan
    }
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
    polls: usize,
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

/// Runs the rules over every poll, as they stream in.
fn tally(rules: &rules::Rules, polls: impl Iterator<Item = Poll>) -> Tally {
    let mut history = History::default();
    let mut evaluator = rules::Evaluator::new();
    let mut t = Tally::default();
    let mut prev = None;
    for poll in polls {
        t.polls += 1;
        let Some(snapshot) = &poll.snapshot else {
            history.record_missed();
            t.failed += 1;
            continue;
        };
        let at = snapshot.server_now;
        t.first = t.first.or(Some(at));
        t.last = Some(at);
        rules::record(&mut history, snapshot, rules);
        let board = evaluator.evaluate(snapshot, &history, rules, at);
        t.alerted += usize::from(board.escalated());
        t.unvouched += usize::from(!super::snapshot::vouches_for_calm(snapshot, &board));
        let mut contended_now = Vec::new();
        // Every name, without building the calm profiles' views; what is not calm was judged.
        t.profiles.extend(
            (0..board.profiles.len()).filter_map(|i| Some(board.profiles.name(i)?.to_owned())),
        );
        for p in board.profiles.judged() {
            if p.status == Status::Ok {
                continue;
            }
            contended_now.push(p.profile.to_string());
            let s = t.seen.entry(p.profile.to_string()).or_default();
            extend(&mut s.contended, at, prev);
            if p.status == Status::Escalated {
                extend(&mut s.escalated, at, prev);
            }
            if p.holders().any(|r| r.is_expired(at)) {
                extend(&mut s.expired, at, prev);
            }
            s.holders.extend(
                p.holders()
                    .filter_map(|r| r.owner.as_deref().map(str::to_owned)),
            );
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
fn summary(header: &Header, t: &Tally, damage: Option<&Damage>) -> String {
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
        t.polls,
        t.failed,
        human_duration(rules.ttl),
        human_duration(rules.escalate_after),
    );
    if let Some(d) = damage {
        let _ = writeln!(
            out,
            "damaged: the recording stops at line {}, byte {} ({}); the {} polls before it are replayed",
            d.line, d.offset, d.reason, t.polls
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

/// The player: the recording as it streams in, which polls were shown, the replay clock and its speed.
struct Player {
    reader: Reader<'static>,
    /// The next poll, read ahead to see when it was taken.
    ahead: Option<Poll>,
    scan: Scan,
    /// The next poll to show (how many were shown).
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
    /// The next poll to show, read when first wanted.
    fn peek(&mut self) -> Option<&Poll> {
        if self.ahead.is_none() {
            self.ahead = self.reader.next();
        }
        self.ahead.as_ref()
    }

    /// Shows every poll up to the clock.
    fn catch_up(&mut self, app: &mut App) {
        while let Some(poll) = self.peek() {
            match poll.at() {
                Some(at) if at > self.now => break,
                _ => self.show_next(app),
            }
        }
        if self.peek().is_none() {
            self.paused = true;
            // The scan skims each line; a line it read whole but that does not make a poll ends the play here.
            self.note = Some(match self.reader.damage() {
                Some(d) if self.scan.damage.is_none() => format!(
                    "the recording stops at line {}, byte {} ({})",
                    d.line, d.offset, d.reason
                ),
                _ => "end of the recording".into(),
            });
            if let Some(last) = self.scan.last {
                self.now = last;
            }
        }
        app.set_clock(self.now);
    }

    /// Takes the next poll into the history and the screen; the caller evaluates once with `set_clock`.
    fn show_next(&mut self, app: &mut App) {
        self.peek();
        let Some(poll) = self.ahead.take() else {
            return;
        };
        match poll.snapshot {
            Some(snapshot) => {
                self.now = self.now.max(snapshot.server_now);
                app.take(snapshot);
            }
            None => app.judgement().record_missed(1),
        }
        self.next += 1;
    }

    /// Moves to the next poll at which an escalation begins: a profile turns escalated, or alerts start.
    fn next_escalation(&mut self, app: &mut App) {
        let onset = self.scan.onsets.iter().copied().find(|&j| j >= self.next);
        match onset {
            Some(j) => {
                while self.next <= j && self.peek().is_some() {
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
            self.scan.polls,
        );
        if let Some(note) = &self.note {
            let _ = write!(line, " · {note}");
        }
        line
    }
}

async fn play(
    reader: Reader<'static>,
    scan: Scan,
    speed: u32,
    face: &super::terminal::Face,
) -> Result<i32> {
    let header = reader.header();
    let interval = Duration::from_millis(header.interval_ms.max(1));
    let mut notes = Vec::new();
    if let Some(d) = &scan.damage {
        notes.push(format!(
            "the recording stops at line {}, byte {} ({}): replaying the {} polls before it",
            d.line, d.offset, d.reason, scan.polls
        ));
    }
    let mut app = App::new(header.target.clone(), header.rules(), interval, notes);
    let start = scan.first.unwrap_or_else(Utc::now);
    let mut tick = tokio::time::interval(STEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut player = Player {
        reader,
        ahead: None,
        scan,
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
            } else if player.peek().is_some() {
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

    fn recording(polls: Vec<Option<Snapshot>>) -> Vec<Poll> {
        polls
            .into_iter()
            .map(|snapshot| Poll {
                error: snapshot.is_none().then(|| "lost".to_owned()),
                snapshot,
                delta: None,
                summaries_unchanged: false,
                changes: None,
                statuses: BTreeMap::new(),
                alerts: Vec::new(),
            })
            .collect()
    }

    fn tally_of(polls: Vec<Option<Snapshot>>) -> Tally {
        tally(
            &Header::for_tests(chrono::Utc::now()).rules(),
            recording(polls).into_iter(),
        )
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

    /// A player on the recording of `lines` (header first), its clock at `now`, and what its scan found: the
    /// polls, the onsets, and whether the scan saw no damage.
    fn player_on(lines: &[String], now: DateTime<Utc>) -> ((usize, Vec<usize>, bool), App, Player) {
        let text = lines.join("\n").into_bytes();
        let reader = || Reader::new(std::io::Cursor::new(text.clone())).expect("reader");
        let scan = Scan::of(reader());
        let found = (scan.polls, scan.onsets.clone(), scan.damage.is_none());
        let app = App::new(
            "t".into(),
            rules::Rules::default(),
            Duration::from_secs(1),
            vec![],
        );
        let player = Player {
            reader: reader(),
            ahead: None,
            scan,
            next: 0,
            now,
            speed: 1,
            paused: false,
            note: None,
            tick: tokio::time::interval(STEP),
        };
        (found, app, player)
    }

    #[tokio::test]
    async fn the_player_streams_the_recording_and_jumps_to_each_escalation_the_scan_found() {
        let start = chrono::Utc::now();
        // Ten polls: alerts start at poll 3, a second profile escalates at poll 6, alerts stay until the end.
        let mut lines = vec![serde_json::to_string(&Header::for_tests(start)).expect("header")];
        for (i, mut poll) in recording(
            (0..10)
                .map(|i| Some(held(start + chrono::Duration::seconds(i), 10)))
                .collect(),
        )
        .into_iter()
        .enumerate()
        {
            if i >= 3 {
                poll.alerts = vec!["ESCALATE: P".into()];
                poll.statuses
                    .insert("P".into(), Status::Escalated.word().into());
            }
            if i >= 6 {
                poll.statuses
                    .insert("Q".into(), Status::Escalated.word().into());
            }
            lines.push(serde_json::to_string(&poll).expect("poll"));
        }
        let (scan, mut app, mut player) = player_on(&lines, start);
        assert_eq!((scan.0, scan.1.clone()), (10, vec![3, 6]));
        assert_eq!(player.scan.first, Some(start));
        player.catch_up(&mut app);
        assert_eq!(player.next, 1, "the first poll, at the clock");
        assert!(player_key(KeyCode::Char('e'), &mut player, &mut app));
        assert_eq!(
            (player.next, player.paused),
            (4, true),
            "{}",
            player.status()
        );
        assert!(player.status().contains("poll 4/10"), "{}", player.status());
        player_key(KeyCode::Char('e'), &mut player, &mut app);
        assert_eq!(player.next, 7);
        player_key(KeyCode::Char('e'), &mut player, &mut app);
        assert_eq!(player.next, 7, "nothing later: it stays");
        assert_eq!(player.note.as_deref(), Some("no later escalation"));
        // Playing on reads the rest as it comes, then says the end.
        player.now = start + chrono::Duration::seconds(60);
        player.catch_up(&mut app);
        assert_eq!(player.next, 10);
        assert_eq!(player.note.as_deref(), Some("end of the recording"));
        assert_eq!(player.now, start + chrono::Duration::seconds(9));
    }

    #[tokio::test]
    async fn a_line_the_scan_skims_but_that_makes_no_poll_ends_the_play_and_says_where() {
        let start = chrono::Utc::now();
        let mut lines = vec![serde_json::to_string(&Header::for_tests(start)).expect("header")];
        for poll in recording(
            (0..3)
                .map(|i| Some(held(start + chrono::Duration::seconds(i), 10)))
                .collect(),
        ) {
            lines.push(serde_json::to_string(&poll).expect("poll"));
        }
        // Valid JSON with the poll's time, but a snapshot that is not one.
        let bad = format!(
            r#"{{"snapshot":{{"server_now":"{}","poll_ms":"slow"}}}}"#,
            (start + chrono::Duration::seconds(3)).to_rfc3339()
        );
        lines.push(bad);
        let (scan, mut app, mut player) = player_on(&lines, start + chrono::Duration::seconds(60));
        assert_eq!((scan.0, scan.2), (4, true), "the skim reads its time");
        player.catch_up(&mut app);
        assert_eq!(player.next, 3);
        let note = player.note.clone().unwrap_or_default();
        assert!(
            note.starts_with("the recording stops at line 5, byte "),
            "{note}"
        );
    }

    #[test]
    fn the_summary_exits_0_calm_3_when_a_poll_could_not_vouch_and_2_when_a_trigger_fired() {
        let now = chrono::Utc::now();
        let status = |polls| tally_of(polls).exit_status();
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
        let t = tally_of(vec![
            Some(held(now, 10)),
            Some(expired),
            Some(held(now + chrono::Duration::seconds(2), 12)),
        ]);
        let seen = &t.seen["P"];
        assert_eq!(
            seen.contended.len(),
            1,
            "one episode, no gap: {:?}",
            seen.contended
        );
        assert_eq!(seen.expired.len(), 1);
        let text = summary(&Header::for_tests(now), &t, None);
        assert!(text.contains("(2s); a row expired"), "{text}");
    }
}
