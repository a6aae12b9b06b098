//! Deadlocks in a burst: the database counted at least `deadlock_burst` of them within `deadlock_window`
//! (3 in 5 minutes by default). Each deadlock cost one session its transaction; a burst says the
//! application takes locks in conflicting orders under the load of the moment.

use super::super::view::{Alert, human_duration};
use super::Facts;

/// `ESCALATE: 4 deadlocks in the last 5m00s (limit 3)`.
pub fn fire(facts: &Facts<'_>) -> Vec<Alert> {
    let rules = facts.rules;
    let Some(count) = facts.deadlocks_in_window else {
        return Vec::new();
    };
    if rules.deadlock_burst == 0 || count < i64::from(rules.deadlock_burst) {
        return Vec::new();
    }
    vec![Alert::DeadlockBurst {
        deadlocks: count,
        window_s: rules.deadlock_window.num_seconds(),
        message: format!(
            "ESCALATE: {count} deadlocks in the last {} (limit {})",
            human_duration(rules.deadlock_window),
            rules.deadlock_burst
        ),
    }]
}

#[cfg(test)]
mod tests {
    use super::super::super::{Rules, evaluate, record};
    use crate::model::test_clock::t;
    use crate::model::{History, Snapshot};

    fn polled(history: &mut History, rules: &Rules, at: i64, deadlocks: i64) -> Vec<String> {
        let snapshot = Snapshot {
            deadlocks: Some(deadlocks),
            ..Snapshot::at(t(at))
        };
        record(history, &snapshot, rules);
        evaluate(&snapshot, history, rules, t(at))
            .alerts
            .iter()
            .map(|a| a.message().to_owned())
            .collect()
    }

    #[test]
    fn a_burst_of_deadlocks_within_the_window_escalates_and_old_ones_age_out() {
        let rules = Rules::default();
        let mut h = History::default();
        assert!(
            polled(&mut h, &rules, 0, 40).is_empty(),
            "the server's past"
        );
        assert!(polled(&mut h, &rules, 60, 42).is_empty(), "two in a minute");
        let fired = polled(&mut h, &rules, 120, 43);
        assert_eq!(fired, ["ESCALATE: 3 deadlocks in the last 5m00s (limit 3)"]);
        // Six minutes on, the readings of the burst are out of the window.
        assert!(polled(&mut h, &rules, 480, 43).is_empty());
        let off = Rules {
            deadlock_burst: 0,
            ..Rules::default()
        };
        let mut h = History::default();
        polled(&mut h, &off, 0, 0);
        assert!(polled(&mut h, &off, 1, 100).is_empty(), "0 turns it off");
    }
}
