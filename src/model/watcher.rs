//! The rules without a screen: a feed's polls in, the board, the poll counters and each alert's start and
//! clear out. `locktop serve` exposes it as metrics; `--on-alert` runs a command on each change it reports.
//!
//! An alert clears only on a poll that read the database and no longer raises it: a failed poll or a lost
//! link changes nothing (a monitor that cannot see must never report calm).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::feed::{Feed, Link};
use super::judgement::Judgement;
use super::rules::{Alert, Board, Rules};
use super::snapshot::Snapshot;

/// Whether an alert started or cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Start,
    Clear,
}

impl Event {
    /// The word for it, as in the JSON.
    pub fn word(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Clear => "clear",
        }
    }
}

/// One alert starting or clearing: what `--on-alert` is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertChange {
    pub event: Event,
    /// The alert as last evaluated (for a clear, as it was on the last poll that raised it).
    pub alert: Alert,
    /// When its condition began (server time): the contention or expiry it reports, else the poll that first
    /// raised it.
    pub since: DateTime<Utc>,
    /// The server time of the poll that saw the change.
    pub at: DateTime<Utc>,
}

/// The poll counters, for the metrics and the health check.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PollStats {
    pub polls: u64,
    pub failures: u64,
    /// The latest poll attempt failed, and why (`None` while it succeeds or before the first).
    pub failing: Option<String>,
    /// When the latest successful poll arrived, on this host's clock (a scraper compares it with its own).
    pub last_success: Option<DateTime<Utc>>,
    /// How long the latest successful poll took.
    pub last_poll_ms: Option<f64>,
}

impl PollStats {
    /// The health check at `now` (this host's clock): Ok while the latest poll succeeded within
    /// `stale_after`, else why not. The reason is redacted of secrets by the caller's error path (it is the
    /// poller's error text, which never holds a password).
    pub fn health(
        &self,
        now: DateTime<Utc>,
        stale_after: std::time::Duration,
    ) -> Result<String, String> {
        let Some(last) = self.last_success else {
            return Err(match &self.failing {
                Some(why) => format!("no successful poll yet: {why}"),
                None => "no successful poll yet: connecting".to_owned(),
            });
        };
        let age = (now - last).to_std().unwrap_or_default();
        if let Some(why) = &self.failing {
            return Err(format!(
                "the latest poll failed: {why} (last success {:.0} s ago)",
                age.as_secs_f64()
            ));
        }
        if age > stale_after {
            return Err(format!(
                "no successful poll for {:.0} s (the database may be hanging)",
                age.as_secs_f64()
            ));
        }
        Ok(format!("ok: last poll {:.1} s ago", age.as_secs_f64()))
    }
}

/// The rules applied to each poll of a feed.
#[derive(Debug)]
pub struct Watcher {
    /// The history and the evaluator, which a dashboard shares with its screen.
    judgement: Arc<Judgement>,
    polls_seen: u64,
    snapshot: Option<Arc<Snapshot>>,
    board: Option<Arc<Board>>,
    /// The board before, kept one poll longer: a screen shows it until it takes the next, and lets go of it
    /// then; freed here when the poll after comes, it is freed off the screen's loop (at 50,000 profiles,
    /// thousands of views and their rows).
    before: Option<Arc<Board>>,
    stats: PollStats,
    /// The database's deadlock count at the first poll that read it.
    deadlocks_at_start: Option<i64>,
    /// Active alerts by (trigger, subject): the latest evaluation and since when.
    active: BTreeMap<(&'static str, String), (Alert, DateTime<Utc>)>,
}

impl Watcher {
    pub fn new(rules: Rules) -> Self {
        Self::judging(Arc::new(Judgement::new(rules)))
    }

    /// A watcher that records and evaluates each poll into `judgement`, which others may read.
    pub fn judging(judgement: Arc<Judgement>) -> Self {
        Self {
            judgement,
            polls_seen: 0,
            snapshot: None,
            board: None,
            before: None,
            stats: PollStats::default(),
            deadlocks_at_start: None,
            active: BTreeMap::new(),
        }
    }

    /// Takes what the feed published, at `wall` (this host's clock). Each new successful poll is evaluated at
    /// its own server time; returns the alerts that started or cleared with it, starts before clears.
    pub fn on_feed(&mut self, feed: &Feed, wall: DateTime<Utc>) -> Vec<AlertChange> {
        if feed.polls == self.polls_seen {
            return Vec::new();
        }
        let new_polls = feed.polls - self.polls_seen;
        self.polls_seen = feed.polls;
        self.stats.polls = feed.polls;
        self.stats.failures = feed.failures;
        if feed.last_poll_failed {
            self.judgement.record_missed(new_polls);
            self.stats.failing = Some(match &feed.link {
                Link::Reconnecting { error, .. } => error.clone(),
                Link::Connecting | Link::Connected => "the poll failed".to_owned(),
            });
            return Vec::new();
        }
        let Some(snapshot) = feed.snapshot.clone() else {
            return Vec::new();
        };
        self.stats.failing = None;
        self.stats.last_success = Some(wall);
        self.stats.last_poll_ms = Some(snapshot.poll_ms);
        self.deadlocks_at_start = self.deadlocks_at_start.or(snapshot.deadlocks);
        // Freed before the next is made, so that no more boards are alive at once than without it.
        drop(self.before.take());
        self.judgement.record(&snapshot);
        let board = self.judgement.evaluate(&snapshot, snapshot.server_now);
        let changes = self.track(&board.alerts, board.now);
        self.before = self.board.replace(Arc::new(board));
        self.snapshot = Some(snapshot);
        changes
    }

    /// The changes between the active alerts and `alerts`, which become the active ones.
    fn track(&mut self, alerts: &[Alert], now: DateTime<Utc>) -> Vec<AlertChange> {
        let mut changes = Vec::new();
        let mut still = BTreeMap::new();
        for alert in alerts {
            let id = (alert.trigger(), alert.subject());
            let since = if let Some((_, since)) = self.active.remove(&id) {
                since
            } else {
                let since = alert
                    .for_s()
                    .map_or(now, |s| now - chrono::Duration::seconds(s));
                changes.push(AlertChange {
                    event: Event::Start,
                    alert: alert.clone(),
                    since,
                    at: now,
                });
                since
            };
            still.insert(id, (alert.clone(), since));
        }
        for (alert, since) in std::mem::replace(&mut self.active, still).into_values() {
            changes.push(AlertChange {
                event: Event::Clear,
                alert,
                since,
                at: now,
            });
        }
        changes
    }

    /// The board of the latest successful poll.
    pub fn board(&self) -> Option<&Board> {
        self.board.as_deref()
    }

    /// The board of the latest successful poll, to hand on.
    pub fn shared_board(&self) -> Option<Arc<Board>> {
        self.board.clone()
    }

    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_deref()
    }

    pub fn stats(&self) -> &PollStats {
        &self.stats
    }

    pub fn deadlocks_at_start(&self) -> Option<i64> {
        self.deadlocks_at_start
    }

    pub fn rules(&self) -> &Rules {
        self.judgement.rules()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::snapshot::LeaseRow;
    use crate::model::test_clock::t;

    fn contended(profile: &str, since: DateTime<Utc>, now: DateTime<Utc>) -> LeaseRow {
        LeaseRow {
            group: Some(profile.into()),
            key: Some("SOL".into()),
            owner: Some("w-1".into()),
            expires_at: Some(now + chrono::Duration::seconds(20)),
            acquired_at: Some(since),
            contention_count: Some(5),
            contended_since: Some(since),
            last_contended_at: Some(now),
        }
    }

    fn poll(feed: &mut Feed, rows: Vec<LeaseRow>, now: DateTime<Utc>) {
        let mut s = Snapshot::at(now);
        s.leases = rows;
        feed.snapshot = Some(Arc::new(s));
        feed.polls += 1;
        feed.last_poll_failed = false;
        feed.link = Link::Connected;
    }

    fn events(changes: &[AlertChange]) -> Vec<(Event, &'static str, String)> {
        changes
            .iter()
            .map(|c| (c.event, c.alert.trigger(), c.alert.subject()))
            .collect()
    }

    #[test]
    fn an_alert_starts_once_stays_while_its_figures_change_and_clears_once() {
        let mut w = Watcher::new(Rules::default());
        let mut feed = Feed::default();
        poll(&mut feed, vec![contended("hot", t(0), t(100))], t(100));
        let started = w.on_feed(&feed, t(100));
        assert_eq!(
            events(&started),
            [(Event::Start, "contended_too_long", "hot".to_owned())]
        );
        assert_eq!(started[0].since, t(0), "since the episode began");
        // The same feed again is no new poll; a new poll with a longer episode is the same alert.
        assert!(w.on_feed(&feed, t(100)).is_empty());
        poll(&mut feed, vec![contended("hot", t(0), t(101))], t(101));
        assert!(w.on_feed(&feed, t(101)).is_empty());
        // A failed poll clears nothing.
        feed.polls += 1;
        feed.failures += 1;
        feed.last_poll_failed = true;
        assert!(w.on_feed(&feed, t(102)).is_empty());
        assert_eq!(w.stats().failures, 1);
        assert!(w.stats().failing.is_some());
        poll(&mut feed, Vec::new(), t(103));
        let cleared = w.on_feed(&feed, t(103));
        assert_eq!(
            events(&cleared),
            [(Event::Clear, "contended_too_long", "hot".to_owned())]
        );
        assert_eq!(cleared[0].since, t(0));
        assert!(w.stats().failing.is_none());
    }

    /// A screen lets go of a board when it takes the next; the judge keeps it until the poll after, so that it
    /// is freed by the judge, not on the screen's loop, and frees it before making another.
    #[test]
    fn the_judge_keeps_the_board_before_until_the_next_poll_so_the_screen_never_frees_one() {
        let mut w = Watcher::new(Rules::default());
        let mut feed = Feed::default();
        let mut boards = Vec::new();
        for now in 100..104 {
            poll(&mut feed, vec![contended("hot", t(0), t(now))], t(now));
            w.on_feed(&feed, t(now));
            // The screen takes the new board and lets go of the one it showed.
            let shown = w.shared_board().expect("a board");
            boards.push(Arc::downgrade(&shown));
        }
        let alive: Vec<bool> = boards.iter().map(|b| b.strong_count() > 0).collect();
        assert_eq!(
            alive,
            [false, false, true, true],
            "the latest and the one before"
        );
    }

    #[test]
    fn health_is_ok_only_while_polls_succeed_and_are_recent() {
        let limit = std::time::Duration::from_secs(5);
        let mut s = PollStats::default();
        assert!(
            s.health(t(0), limit)
                .is_err_and(|e| e.contains("connecting"))
        );
        s.last_success = Some(t(10));
        assert!(s.health(t(12), limit).is_ok());
        assert!(
            s.health(t(16), limit)
                .is_err_and(|e| e.contains("no successful poll for 6 s"))
        );
        s.failing = Some("connection refused".into());
        assert!(
            s.health(t(12), limit)
                .is_err_and(|e| e.contains("connection refused"))
        );
    }

    #[test]
    fn profiles_joining_a_cross_profile_alert_do_not_restart_it() {
        let mut w = Watcher::new(Rules::default());
        let mut feed = Feed::default();
        let recent = |p: &str, now| contended(p, now - chrono::Duration::seconds(5), now);
        poll(
            &mut feed,
            vec![recent("a", t(10)), recent("b", t(10))],
            t(10),
        );
        assert_eq!(
            events(&w.on_feed(&feed, t(10))),
            [(Event::Start, "several_contended", String::new())]
        );
        poll(
            &mut feed,
            vec![recent("a", t(11)), recent("b", t(11)), recent("c", t(11))],
            t(11),
        );
        assert!(w.on_feed(&feed, t(11)).is_empty());
    }
}
