//! The runbook's escalation triggers, one file each, with the text the operator reads beside its rule. Each is
//! a plain function of the judged profiles (and the prepared transactions that block anyone); [`TRIGGERS`]
//! lists them in the order their alerts are shown.

mod contended_too_long;
mod deadlock_burst;
mod expired_not_refreshed;
mod prepared_blocking;
mod several_contended;

use chrono::{DateTime, Utc};

use super::super::snapshot::PreparedXact;
use super::Rules;
use super::view::{Alert, ProfileView};

/// What the triggers look at: the judged profiles in the runbook's order, the blocking prepared transactions,
/// the thresholds and the server's time.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub profiles: &'a [std::sync::Arc<ProfileView>],
    pub prepared: &'a [PreparedXact],
    pub rules: &'a Rules,
    pub now: DateTime<Utc>,
    /// Deadlocks the database counted within the rules' deadlock window.
    pub deadlocks_in_window: Option<i64>,
}

/// A trigger: the alerts it raises on these facts (none when it does not fire).
pub type Trigger = fn(&Facts<'_>) -> Vec<Alert>;

/// Every trigger, in the order their alerts are shown (the banner shows the first).
pub const TRIGGERS: [Trigger; 5] = [
    contended_too_long::fire,
    expired_not_refreshed::fire,
    several_contended::fire,
    prepared_blocking::fire,
    deadlock_burst::fire,
];

/// The alerts of every trigger that fires.
pub fn fire(facts: &Facts<'_>) -> Vec<Alert> {
    TRIGGERS.iter().flat_map(|trigger| trigger(facts)).collect()
}
