//! What a poll says when it cannot read everything, and what it looks up to name the rows that waits are on:
//! the note that names who locks the lease table (and whom a queued migration waits behind), the reason rows
//! are unread, and the lookup of row-lock waits' rows.

use super::error::SourceError;
use super::lease::{Locker, RowLookup};
use super::locks;
use crate::model::LockWait;

/// What to look up to name the rows of the waits that `which` picks: the addresses of those that wait on
/// or hold a tuple lock, the transaction ids of the others (each once).
pub(super) fn row_lookup(waits: &[LockWait], which: impl Fn(&LockWait) -> bool) -> RowLookup {
    let mut lookup = RowLookup::default();
    for w in waits.iter().filter(|w| which(w)) {
        match (w.tuple, &w.transactionid) {
            (Some(tid), _) => lookup.tids.push(tid),
            (None, Some(xid)) => lookup.xids.push(xid.clone()),
            (None, None) => {}
        }
    }
    lookup.tids.sort_unstable();
    lookup.tids.dedup();
    lookup.xids.sort_unstable();
    lookup.xids.dedup();
    lookup
}

/// Why the lease rows are missing after a failed read, for the screen and the JSON notes.
pub(super) fn unread_text(e: &SourceError) -> String {
    format!("lease rows unread: {e}")
}

/// What the screen says when the lease table is locked: who holds or wants ACCESS EXCLUSIVE on it, and whom
/// a queued request waits behind (the culprit: often an open transaction, not the migration itself).
pub(super) fn table_locked_text(
    table: &str,
    lockers: &[Locker],
    activity: &locks::Activity,
) -> String {
    let about = |pid: i32| {
        activity
            .sessions
            .iter()
            .find(|s| s.pid == pid)
            .map(|s| {
                [s.application.as_deref(), s.state.as_deref()]
                    .into_iter()
                    .flatten()
                    .filter(|t| !t.is_empty())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .filter(|t| !t.is_empty())
            .map(|t| format!(" ({t})"))
            .unwrap_or_default()
    };
    let who: Vec<String> = lockers
        .iter()
        .map(|&Locker { pid, granted }| {
            let verb = if granted { "holds" } else { "waits for" };
            let Some(pid) = pid else {
                return format!("a prepared transaction {verb} AccessExclusiveLock");
            };
            let behind: Vec<String> = activity
                .waits
                .iter()
                .filter(|w| !granted && w.pid == pid)
                .flat_map(|w| &w.blocked_by)
                .map(|&b| {
                    if b == 0 {
                        "a prepared transaction".to_owned()
                    } else {
                        format!("pid {b}{}", about(b))
                    }
                })
                .collect();
            let behind = if behind.is_empty() {
                String::new()
            } else {
                format!(" behind {}", behind.join(", "))
            };
            format!("pid {pid} {verb} AccessExclusiveLock{}{behind}", about(pid))
        })
        .collect();
    // Who and behind whom first: on a narrow screen the end of the line is what gets cut.
    if who.is_empty() {
        format!(
            "lease rows unread: {table} is locked by another session (lock_timeout; see the locks pane)"
        )
    } else {
        format!("lease rows unread: {} on {table}", who.join("; "))
    }
}
