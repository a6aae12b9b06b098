//! One judgement of a feed's polls, shared by everyone who shows or keeps it: the history, recorded once a
//! poll, and the evaluator that keeps the calm profiles' places between evaluations.
//!
//! The dashboard's judge (the task that also feeds `--record` and `--on-alert`) records and evaluates each poll;
//! the screen takes the board it made and evaluates again only on its clock's tick, with the same history and
//! the same kept places. Without it, two histories and two sets of kept views of 50,000 profiles were built from
//! the same polls, on the cores the poller and the server need.
//!
//! The history sits behind a read-write lock that a writer holds only while it records a poll; evaluations and
//! the screen's frames read it together. The evaluator has a lock of its own: the judge's evaluation of a poll
//! and the screen's of its tick take turns.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};

use chrono::{DateTime, Utc};

use super::history::History;
use super::rules::{self, Board, Evaluator, Rules};
use super::snapshot::Snapshot;

/// The rules, the history they read and the evaluator that applies them (see the module).
#[derive(Debug)]
pub struct Judgement {
    rules: Rules,
    history: RwLock<History>,
    evaluator: Mutex<Evaluator>,
}

impl Judgement {
    pub fn new(rules: Rules) -> Self {
        Self {
            rules,
            history: RwLock::new(History::default()),
            evaluator: Mutex::new(Evaluator::new()),
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Records a successful poll in the history.
    pub fn record(&self, snapshot: &Snapshot) {
        let mut history = self.history.write().unwrap_or_else(PoisonError::into_inner);
        rules::record(&mut history, snapshot, &self.rules);
    }

    /// Records `polls` failed polls as gaps in the history.
    pub fn record_missed(&self, polls: u64) {
        let mut history = self.history.write().unwrap_or_else(PoisonError::into_inner);
        for _ in 0..polls {
            history.record_missed();
        }
    }

    /// The board of `snapshot` at `now`, against the history as recorded so far.
    pub fn evaluate(&self, snapshot: &Snapshot, now: DateTime<Utc>) -> Board {
        let mut evaluator = self.evaluator();
        let history = self.history();
        evaluator.evaluate(snapshot, &history, &self.rules, now)
    }

    /// The history, to read (the screen's sparklines and window figures).
    ///
    /// A reader must not ask for it again while it holds it: a recorder waiting in between would wait on it
    /// for ever.
    pub fn history(&self) -> RwLockReadGuard<'_, History> {
        self.history.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn evaluator(&self) -> MutexGuard<'_, Evaluator> {
        self.evaluator
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::snapshot::LeaseRow;
    use crate::model::test_clock::t;

    fn held(profile: &str, now: DateTime<Utc>) -> Snapshot {
        let mut s = Snapshot::at(now);
        s.leases = vec![LeaseRow {
            group: Some(profile.into()),
            key: Some("SOL".into()),
            owner: Some("w-1".into()),
            expires_at: Some(now + chrono::Duration::seconds(20)),
            acquired_at: Some(now),
            contention_count: Some(3),
            contended_since: Some(now - chrono::Duration::seconds(5)),
            last_contended_at: Some(now),
        }];
        s
    }

    #[test]
    fn its_board_is_the_one_a_history_and_an_evaluator_of_their_own_would_give() {
        let judgement = Judgement::new(Rules::default());
        let mut history = History::default();
        let rules = Rules::default();
        for s in 0..5 {
            let snapshot = held("hot", t(s * 10));
            judgement.record(&snapshot);
            rules::record(&mut history, &snapshot, &rules);
            if s == 2 {
                judgement.record_missed(2);
                history.record_missed();
                history.record_missed();
            }
            let at = t(s * 10 + 3);
            assert_eq!(
                judgement.evaluate(&snapshot, at),
                rules::evaluate(&snapshot, &history, &rules, at)
            );
        }
        assert_eq!(judgement.history().polls(), history.polls());
        assert_eq!(
            judgement.history().sparkline("hot", 10, 1),
            history.sparkline("hot", 10, 1)
        );
    }
}
