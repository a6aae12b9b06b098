//! The pure model: snapshots in, statuses, reasons and alerts out. No I/O, no terminal, no clock of its own:
//! `now` is always passed in, so every rule is testable with a fixed time.

pub mod exposition;
pub mod feed;
pub mod history;
pub mod judgement;
pub mod order;
pub mod report;
pub mod rules;
pub mod service;
pub mod snapshot;
pub mod watcher;

pub use history::{History, WindowStats};
pub use rules::{
    Alert, Board, ProfileView, RowView, Rules, Status, WaitView, evaluate, human_duration,
};
pub use snapshot::{AdvisoryKey, LeaseRow, LockWait, Session, Snapshot, Visibility};

/// A fixed clock for the model's unit tests: `t(s)` is `s` seconds after one fixed instant.
#[cfg(test)]
pub(crate) mod test_clock {
    use chrono::{DateTime, TimeZone, Utc};

    pub fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0)
            .single()
            .expect("valid time")
    }
}
