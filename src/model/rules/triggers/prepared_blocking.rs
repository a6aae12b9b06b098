//! Not in the runbook's words, but its cause more than once: a prepared (two-phase) transaction whose owner is
//! gone keeps its locks until someone runs `COMMIT PREPARED` or `ROLLBACK PREPARED`. One older than
//! `prepared_after` that blocks anyone raises an alert that says what it is and whose decision ending it is:
//! locktop never writes.

use super::super::view::{Alert, human_duration};
use super::Facts;

/// `ESCALATE: prepared transaction 'orphan-7' (owner trader, database trading) prepared 5m00s ago blocks 1
/// session; COMMIT PREPARED or ROLLBACK PREPARED is its owner's decision`.
pub fn fire(facts: &Facts<'_>) -> Vec<Alert> {
    let Facts {
        prepared,
        rules,
        now,
        ..
    } = *facts;

    prepared
        .iter()
        .filter(|p| !p.blocks.is_empty() && now - p.prepared_at > rules.prepared_after)
        .map(|p| {
            let age = now - p.prepared_at;
            let who = [
                p.owner.as_deref().map(|o| format!("owner {o}")),
                p.database.as_deref().map(|d| format!("database {d}")),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
            Alert::PreparedBlocking {
                message: format!(
                    "ESCALATE: prepared transaction '{}' ({who}) prepared {} ago blocks {} session{}; \
                     COMMIT PREPARED or ROLLBACK PREPARED is its owner's decision",
                    p.gid,
                    human_duration(age),
                    p.blocks.len(),
                    if p.blocks.len() == 1 { "" } else { "s" },
                ),
                gid: p.gid.clone(),
                owner: p.owner.clone(),
                database: p.database.clone(),
                prepared_for_s: age.num_seconds(),
                blocks: p.blocks.clone(),
            }
        })
        .collect()
}
