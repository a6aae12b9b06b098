//! The runbook: "escalate when contention persists beyond three TTL cycles (90 s)". An escalated profile whose
//! contention episode (from the bookkeeping, the first observation, or its oldest waiter) is older than
//! `escalate_after`.

use super::super::view::{Alert, Status, human_duration};
use super::Facts;

/// `ESCALATE: profile hot-7 contended for 2m05s (limit 1m30s)`.
pub fn fire(facts: &Facts<'_>) -> Vec<Alert> {
    let Facts {
        profiles,
        rules,
        now,
        ..
    } = *facts;
    profiles
        .iter()
        .filter(|p| p.status == Status::Escalated)
        .filter_map(|p| {
            let d = p.contended_for(now).filter(|d| *d > rules.escalate_after)?;
            Some(Alert::ContendedTooLong {
                profile: p.profile.to_string(),
                contended_for_s: d.num_seconds(),
                message: format!(
                    "ESCALATE: profile {} contended for {} (limit {})",
                    p.profile,
                    human_duration(d),
                    human_duration(rules.escalate_after)
                ),
            })
        })
        .collect()
}
