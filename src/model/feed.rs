//! What a feed (the live poller, or the replay reader) publishes to the dashboard: the latest snapshot and the
//! state of the link that brings it. Produced by `source`, read by `app` and `ui`: it lives at the lowest layer
//! both need.

use std::sync::Arc;
use std::time::Instant;

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
    pub link: Link,
}

impl Default for Feed {
    fn default() -> Self {
        Self {
            snapshot: None,
            received_at: None,
            polls: 0,
            last_poll_failed: false,
            link: Link::Connecting,
        }
    }
}
