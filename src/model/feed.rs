//! What a feed (the live poller, or the replay reader) publishes to the dashboard: the latest snapshot and the
//! state of the link that brings it. Produced by `source`, read by `app` and `ui`: it lives at the lowest layer
//! both need.

use std::sync::Arc;
use std::time::Instant;

use super::rules::Board;
use super::snapshot::Snapshot;

/// The state of the link to the database, for the header.
#[derive(Debug, Clone, PartialEq)]
pub enum Link {
    /// The first connection is being made.
    Connecting,
    /// The last poll succeeded.
    Connected,
    /// The last poll or connect failed; the next attempt is at `next_at`.
    Reconnecting {
        attempt: u32,
        next_at: Instant,
        error: String,
    },
}

/// The `--record` file, as the recorder reports it: where, how large, and why it stopped if it did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordStatus {
    pub path: String,
    pub bytes: u64,
    /// Set when a write failed (disk full, file too large): the recording ends there, the dashboard goes on.
    pub stopped: Option<String>,
}

/// What the poller publishes: the latest good snapshot (kept while reconnecting, shown as stale) and the link.
#[derive(Debug, Clone)]
pub struct Feed {
    pub snapshot: Option<Arc<Snapshot>>,
    /// When the snapshot arrived, on the monotonic clock (for countdowns between polls and staleness).
    pub received_at: Option<Instant>,
    /// Counts every poll attempt, failed ones too, so the model can record gaps.
    pub polls: u64,
    /// Whether the latest poll attempt failed.
    pub last_poll_failed: bool,
    /// Counts the failed poll attempts (of `polls`).
    pub failures: u64,
    pub link: Link,
    /// The board a judge made of `snapshot`, when the feed comes through one (the dashboard's: see
    /// `model::judgement`); a feed straight from the poller or a replay has none.
    pub board: Option<Arc<Board>>,
}

impl Default for Feed {
    fn default() -> Self {
        Self {
            snapshot: None,
            received_at: None,
            polls: 0,
            last_poll_failed: false,
            failures: 0,
            link: Link::Connecting,
            board: None,
        }
    }
}

/// What the dashboard asks of its feed (the command channel UI → feed; latest wins): the profiles it shows in
/// detail, whose every row the next poll reads even when they are calm.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Control {
    /// Profile names as the dashboard shows them (`target:profile` when several databases are watched).
    pub focus: Vec<String>,
    /// How many times the operator asked for a poll now (`r`): each new count is one poll at once.
    pub refreshes: u64,
}

impl Control {
    /// The focus of one target of several (its `label:` prefix taken off), or of the only one (`None`).
    pub fn focus_of(&self, label: Option<&str>) -> Vec<String> {
        match label {
            None => self.focus.clone(),
            Some(label) => self
                .focus
                .iter()
                .filter_map(|p| {
                    p.strip_prefix(label)?
                        .strip_prefix(super::snapshot::TARGET_SEPARATOR)
                        .map(str::to_owned)
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_target_of_several_gets_only_its_own_profiles_in_focus() {
        let c = Control {
            focus: vec!["east:hot-1".into(), "west:hot-1".into(), "eastern:x".into()],
            refreshes: 0,
        };
        assert_eq!(c.focus_of(Some("east")), ["hot-1"]);
        assert_eq!(c.focus_of(None), c.focus);
    }
}
