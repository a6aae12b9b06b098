//! The runbook: "escalate when rows show expired timestamps but fail to refresh". A row of an escalated profile
//! that has stayed expired for more than one TTL while contention goes on (judged as of when the rows were
//! read, when this poll could not read them).

use super::super::view::{Alert, Status, display_value, human_duration};
use super::Facts;

/// `ESCALATE: profile dead-1 row MSFT expired 1m00s ago and is not refreshed`.
pub fn fire(facts: &Facts<'_>) -> Vec<Alert> {
    let Facts {
        profiles,
        rules,
        now,
        ..
    } = *facts;
    let mut out = Vec::new();
    for p in profiles.iter().filter(|p| p.status == Status::Escalated) {
        let seen = p.rows_as_of.unwrap_or(now);
        for row in p.rows.iter().filter(|r| r.is_expired(seen)) {
            let expired_for = seen - row.expires_at.unwrap_or(seen);
            if expired_for > rules.ttl {
                let key = display_value(row.key.as_deref()).to_owned();
                out.push(Alert::ExpiredNotRefreshed {
                    message: format!(
                        "ESCALATE: profile {} row {key} expired {} ago and is not refreshed",
                        p.profile,
                        human_duration(expired_for)
                    ),
                    profile: p.profile.to_string(),
                    key,
                    expired_for_s: expired_for.num_seconds(),
                });
            }
        }
    }
    out
}
