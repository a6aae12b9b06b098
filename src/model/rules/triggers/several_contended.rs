//! The runbook: "escalate when several profiles are contended at once". Two or more profiles with a current
//! contention episode, counted across every database watched.

use super::super::view::Alert;
use super::Facts;

/// `ESCALATE: 3 profiles contended at once (hot-1, busy-2, busy-3)`.
pub fn fire(facts: &Facts<'_>) -> Vec<Alert> {
    let contended: Vec<String> = facts
        .profiles
        .iter()
        .filter(|p| p.contended_since.is_some())
        .map(|p| p.profile.to_string())
        .collect();
    if contended.len() < 2 {
        return Vec::new();
    }
    vec![Alert::SeveralContended {
        message: format!(
            "ESCALATE: {} profiles contended at once ({})",
            contended.len(),
            contended.join(", ")
        ),
        profiles: contended,
    }]
}
