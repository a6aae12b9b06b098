//! What one poll saw: lease rows, client sessions and lock waits, stamped with the server's own clock.
//!
//! These types are plain data (serde for `--record` and replay); `source/` fills them, the rest of the model
//! reads them. Text from the database is kept as it came: escaping for display is the UI's job.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One poll's view of the database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// `now()` of the server, from the same statement as the lease rows: the clock every duration uses.
    pub server_now: DateTime<Utc>,
    /// Client-side time of the whole poll (all round trips), in milliseconds.
    pub poll_ms: f64,
    /// Lease rows in detail: all of them, or (in summary mode) every row of the profiles that matter —
    /// contended, expired or in focus. Empty (and `lease_error` set) when the lease query failed.
    pub leases: Vec<LeaseRow>,
    /// In summary mode, one line per profile (all profiles); the model uses it for profiles without detail.
    /// Shared, since it is reused between aggregate refreshes.
    #[serde(default, skip_serializing_if = "summaries_empty")]
    pub summaries: Arc<Vec<ProfileSummary>>,
    /// Backends other than the monitor's own, for linking holders and waiters to applications and queries.
    pub sessions: Vec<Session>,
    /// Backends waiting for a heavyweight lock, with whom they wait on.
    pub waits: Vec<LockWait>,
    /// What the monitor's role can see of other sessions.
    pub visibility: Visibility,
    /// Why the lease rows are missing from this snapshot (e.g. the table is locked by a migration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_error: Option<String>,
    /// Read through a transaction-mode pooler: each poll may run on another backend, so a pid and the session
    /// details beside it may come from different moments of different backends' lives.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pooled: bool,
    /// Several databases at once (`--dsn` given more than once, or `[[target]]`s): each one's latest snapshot,
    /// its profiles named `target:profile`. The fields above then hold only the merged clock and latency.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Part>,
    /// Set when the lease rows are those of an earlier poll (this poll could not read them: `lease_error`
    /// says why): the server time they were read at. The rules judge them as of then, never as calm now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leases_as_of: Option<DateTime<Utc>>,
    /// The server is in recovery (a standby, or a primary replaying): its locks are its own and its lease
    /// rows lag the primary's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Recovery>,
    /// The database's deadlocks since its statistics were reset (`pg_stat_database.deadlocks`); with several
    /// databases, their sum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadlocks: Option<i64>,
    /// Prepared (two-phase) transactions that block a waiter of this poll; their locks have no pid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prepared: Vec<PreparedXact>,
    /// Why sessions and lock waits could not be read this poll (those shown are the last ones read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locks_error: Option<String>,
    /// Why a change to a lease row can show later than a TTL after it was made: the table is read by
    /// windows, and a sweep of it takes longer than that. Calm cannot be vouched for then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<String>,
    /// What the source knows it cannot see or had to assume (unmapped optional columns, the zone of
    /// `timestamp` columns), in words for the screen and the JSON notes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// A server in recovery, and how far its replay lags.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Recovery {
    /// `now() - pg_last_xact_replay_timestamp()`, in seconds; `None` before anything was replayed.
    pub replay_lag_s: Option<f64>,
}

impl Recovery {
    /// The note for the screen and the JSON.
    pub fn note(self) -> String {
        let lag = self
            .replay_lag_s
            .map_or_else(|| "unknown".to_owned(), |s| format!("{s:.0}s"));
        format!(
            "STANDBY (in recovery, replay lag {lag}): lock waits shown are the replica's own, and its lease \
             rows lag the primary's; watch the primary"
        )
    }
}

/// A prepared transaction (`PREPARE TRANSACTION`) that blocks sessions: its locks outlive every backend
/// until someone runs `COMMIT PREPARED` or `ROLLBACK PREPARED`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedXact {
    pub gid: String,
    pub owner: Option<String>,
    pub database: Option<String>,
    /// When it was prepared (server time).
    pub prepared_at: DateTime<Utc>,
    /// Its transaction id, as text.
    pub transaction: String,
    /// The waiting backends it blocks.
    pub blocks: Vec<i32>,
}

/// One database's share of a merged snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// The target's label, the prefix of its profiles' names.
    pub target: String,
    /// Its latest good snapshot (kept while it is down, as a single database's is).
    pub snapshot: Snapshot,
    /// Why it is down (its polls fail and it reconnects), or `None` while its polls succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<String>,
    /// Whether it has answered at all since locktop started.
    #[serde(default = "yes")]
    pub seen: bool,
}

fn yes() -> bool {
    true
}

/// The separator between a target's label and a profile's name.
pub const TARGET_SEPARATOR: char = ':';

impl Part {
    /// `snapshot` of the target `label`, with every profile name (lease rows, summaries, the rows of row-lock
    /// waits) prefixed `label:` so that profiles of different databases never merge.
    pub fn new(target: &str, snapshot: &Snapshot, down: Option<String>) -> Self {
        Self::after(target, snapshot, down, None)
    }

    /// As [`Part::new`], for the snapshot after `last` (the snapshot the target's last part was made of, and
    /// that part): when both share their summaries (taken every few seconds, not every poll), so do the
    /// parts, and an evaluator sees at once that they did not change (see `rules::Evaluator`).
    pub fn after(
        target: &str,
        snapshot: &Snapshot,
        down: Option<String>,
        last: Option<(&Snapshot, &Part)>,
    ) -> Self {
        let prefix =
            |g: Option<&str>| Some(format!("{target}{TARGET_SEPARATOR}{}", g.unwrap_or("NULL")));
        let mut snapshot = snapshot.clone();
        for row in &mut snapshot.leases {
            row.group = prefix(row.group.as_deref()).map(Arc::from);
        }
        if let Some((_, part)) =
            last.filter(|(source, _)| Arc::ptr_eq(&source.summaries, &snapshot.summaries))
        {
            snapshot.summaries = Arc::clone(&part.snapshot.summaries);
        } else if !snapshot.summaries.is_empty() {
            snapshot.summaries = Arc::new(
                snapshot
                    .summaries
                    .iter()
                    .map(|s| ProfileSummary {
                        group: prefix(s.group.as_deref()).map(Arc::from),
                        ..s.clone()
                    })
                    .collect(),
            );
        }
        for w in &mut snapshot.waits {
            if let Some(row) = &mut w.lease_row {
                row.group = prefix(row.group.as_deref());
            }
        }
        Self {
            target: target.to_owned(),
            snapshot,
            down,
            seen: true,
        }
    }

    /// A target that has not answered yet.
    pub fn unseen(target: &str, server_now: DateTime<Utc>, down: Option<String>) -> Self {
        Self {
            target: target.to_owned(),
            snapshot: Snapshot::at(server_now),
            down,
            seen: false,
        }
    }
}

impl Snapshot {
    /// Several targets' parts as one snapshot: the clock is the latest part's, the latency the slowest's.
    pub fn merged(parts: Vec<Part>, server_now: DateTime<Utc>) -> Self {
        let poll_ms = parts
            .iter()
            .filter(|p| p.down.is_none())
            .map(|p| p.snapshot.poll_ms)
            .fold(0.0, f64::max);
        let visibility = if parts
            .iter()
            .all(|p| p.snapshot.visibility == Visibility::Full)
        {
            Visibility::Full
        } else {
            Visibility::OwnSessionsOnly
        };
        let counted: Vec<i64> = parts.iter().filter_map(|p| p.snapshot.deadlocks).collect();
        Self {
            poll_ms,
            visibility,
            pooled: parts.iter().any(|p| p.snapshot.pooled),
            deadlocks: (!counted.is_empty()).then(|| counted.iter().sum()),
            parts,
            ..Self::at(server_now)
        }
    }

    /// What could not be read or is not what it seems, most urgent first: the lease rows or the waits unread, a
    /// standby, each database that is down (named by its target when several are watched). This is why the
    /// snapshot cannot vouch for calm (the `snapshot` command's exit status 3); empty when everything was read.
    pub fn incomplete(&self) -> Vec<String> {
        if self.parts.is_empty() {
            return self
                .lease_error
                .iter()
                .chain(&self.locks_error)
                .chain(&self.lag)
                .cloned()
                .chain(self.recovery.map(Recovery::note))
                .collect();
        }
        let mut out = Vec::new();
        for part in &self.parts {
            out.extend(part.down.as_ref().map(|e| {
                let kept = if part.seen {
                    ", its last data kept"
                } else {
                    ""
                };
                format!("{} is down{kept}: {e}", part.target)
            }));
            out.extend(
                part.snapshot
                    .incomplete()
                    .into_iter()
                    .map(|n| format!("{}: {n}", part.target)),
            );
        }
        out
    }

    /// What the source assumed or could not use (unmapped columns, the zone of zone-less times), each once.
    pub fn source_notes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for piece in self.pieces() {
            for n in &piece.notes {
                if !out.contains(n) {
                    out.push(n.clone());
                }
            }
        }
        out
    }

    /// The snapshots to evaluate: the parts of a merged one, else itself.
    pub fn pieces(&self) -> Vec<&Snapshot> {
        if self.parts.is_empty() {
            vec![self]
        } else {
            self.parts.iter().map(|p| &p.snapshot).collect()
        }
    }
}

impl Snapshot {
    /// An empty snapshot taken at `server_now` by a role that sees everything (tests, fixtures, replay).
    pub fn at(server_now: DateTime<Utc>) -> Self {
        Self {
            server_now,
            poll_ms: 0.0,
            leases: Vec::new(),
            summaries: Arc::default(),
            sessions: Vec::new(),
            waits: Vec::new(),
            visibility: Visibility::Full,
            lease_error: None,
            pooled: false,
            parts: Vec::new(),
            leases_as_of: None,
            locks_error: None,
            lag: None,
            recovery: None,
            deadlocks: None,
            prepared: Vec::new(),
            notes: Vec::new(),
        }
    }
}

/// What the screen and the snapshot's notes say about a read through a transaction-mode pooler.
pub const POOLED_NOTE: &str =
    "via pooler: pids and session details may come from different backends";

fn summaries_empty(s: &Arc<Vec<ProfileSummary>>) -> bool {
    s.is_empty()
}

/// One lease row, every mapped column cast to text or timestamptz in SQL. Any of them may be NULL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRow {
    /// Shared with the mirror's rows and the views made of them: the rows that matter are copied from the
    /// mirror each poll, and a whole table of them when many owners die at once.
    pub group: Option<Arc<str>>,
    pub key: Option<Arc<str>>,
    pub owner: Option<Arc<str>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub acquired_at: Option<DateTime<Utc>>,
    pub contention_count: Option<i64>,
    pub contended_since: Option<DateTime<Utc>>,
    pub last_contended_at: Option<DateTime<Utc>>,
}

/// A profile's lease rows aggregated in SQL: what a calm profile shows without fetching every row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileSummary {
    /// The names are shared with the mirror's rows they sum up (50,000 summaries are taken every few seconds).
    pub group: Option<Arc<str>>,
    pub rows: i64,
    pub held: i64,
    /// The key, owner and acquisition of its held row that expires first; the first expiry of its held rows.
    pub sample_key: Option<Arc<str>>,
    pub sample_owner: Option<Arc<str>>,
    pub sample_acquired_at: Option<DateTime<Utc>>,
    pub next_expiry: Option<DateTime<Utc>>,
    /// Sum of `contention_count` over all rows, and the latest `contended_since`: what the history needs to
    /// count new failures the same way as from detail rows.
    pub failure_total: Option<i64>,
    pub latest_contended_since: Option<DateTime<Utc>>,
}

/// A backend of the server (not the monitor's own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub pid: i32,
    pub application: Option<String>,
    pub user: Option<String>,
    pub client_addr: Option<String>,
    pub state: Option<String>,
    /// Truncated in SQL; `None` when the role may not see it.
    pub query: Option<String>,
    pub xact_start: Option<DateTime<Utc>>,
    /// When `state` last changed: how long it has been idle in transaction, or running its query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_change: Option<DateTime<Utc>>,
    /// What it waits for now (`Lock:transactionid`, `Client:ClientRead`), as `wait_event_type:wait_event`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_event: Option<String>,
    pub backend_type: Option<String>,
    /// For a parallel worker, its leader's pid (`leader_pid`): the session that holds and waits for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_pid: Option<i32>,
}

/// A backend waiting for a lock, and the backends it waits on (`pg_blocking_pids`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockWait {
    pub pid: i32,
    pub blocked_by: Vec<i32>,
    pub locktype: String,
    pub mode: String,
    /// Relation name (schema-qualified where needed) for relation, tuple and page locks, and for row-lock
    /// (`transactionid`) waits attributed through the waiter's granted tuple lock.
    pub relation: Option<String>,
    pub relation_oid: Option<u32>,
    /// The row's physical address (page, tuple) for row-lock waits, when known.
    pub tuple: Option<(u32, u16)>,
    pub advisory_key: Option<AdvisoryKey>,
    pub transactionid: Option<String>,
    pub waitstart: Option<DateTime<Utc>>,
    /// `waitstart` is a stand-in (PostgreSQL 13 has no `pg_locks.waitstart`: the start of the waiter's query,
    /// so the wait is at most this long).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub waitstart_approx: bool,
    /// For a row-lock wait on the lease table: the row's (group, key), looked up by its address or by the
    /// blocker's transaction id against the rows' `xmax`.
    pub lease_row: Option<RowName>,
    /// The wait is on a row of the lease table, named in `lease_row` or not (a conflicting uncommitted INSERT
    /// leaves no row visible to name).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_lease_table: bool,
}

impl LockWait {
    /// An advisory lock wait of `pid` behind `blocked_by`, nothing else known: for tests to start from.
    #[cfg(test)]
    pub(crate) fn for_tests(pid: i32, blocked_by: Vec<i32>) -> Self {
        Self {
            pid,
            blocked_by,
            locktype: "advisory".into(),
            mode: "ExclusiveLock".into(),
            relation: None,
            relation_oid: None,
            tuple: None,
            advisory_key: None,
            transactionid: None,
            waitstart: None,
            waitstart_approx: false,
            lease_row: None,
            on_lease_table: false,
        }
    }
}

/// A lease row by its (group, key): what a row-lock wait is on. Recorded as the pair `[group, key]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    from = "(Option<String>, Option<String>)",
    into = "(Option<String>, Option<String>)"
)]
pub struct RowName {
    pub group: Option<String>,
    pub key: Option<String>,
}

impl From<(Option<String>, Option<String>)> for RowName {
    fn from((group, key): (Option<String>, Option<String>)) -> Self {
        Self { group, key }
    }
}

impl From<RowName> for (Option<String>, Option<String>) {
    fn from(r: RowName) -> Self {
        (r.group, r.key)
    }
}

/// An advisory lock key, decoded from `pg_locks` (classid, objid, objsubid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AdvisoryKey {
    /// `pg_advisory_lock(bigint)`: objsubid 1.
    Bigint(i64),
    /// `pg_advisory_lock(int4, int4)`: objsubid 2.
    Pair(i32, i32),
}

impl AdvisoryKey {
    /// Decodes the key from `pg_locks`: a bigint key is split over classid (high half) and objid (low half);
    /// a two-int4 key puts one in each. Both oids arrive as their unsigned 32-bit values.
    pub fn decode(classid: i64, objid: i64, objsubid: i16) -> Option<Self> {
        let high = u32::try_from(classid).ok()?;
        let low = u32::try_from(objid).ok()?;
        match objsubid {
            1 => Some(Self::Bigint(
                ((u64::from(high) << 32) | u64::from(low)) as i64,
            )),
            2 => Some(Self::Pair(high as i32, low as i32)),
            _ => None,
        }
    }
}

impl std::fmt::Display for AdvisoryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bigint(k) => write!(f, "{k}"),
            Self::Pair(a, b) => write!(f, "({a},{b})"),
        }
    }
}

/// What the monitor's role can see of other sessions: without `pg_read_all_stats` (part of `pg_monitor`),
/// other roles' queries, states, wait events and client addresses read as NULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    Full,
    OwnSessionsOnly,
}

impl Visibility {
    /// The on-screen note for a limited role; `None` when it sees everything.
    pub fn note(self) -> Option<&'static str> {
        match self {
            Self::Full => None,
            Self::OwnSessionsOnly => Some(
                "role lacks pg_monitor/pg_read_all_stats: other roles' queries, states and client addresses are hidden",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_shares_its_summaries_with_the_last_while_the_targets_summaries_are_the_same() {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let mut s = Snapshot::at(now);
        s.summaries = Arc::new(vec![ProfileSummary {
            group: Some("p1".into()),
            rows: 1,
            ..ProfileSummary::default()
        }]);
        let first = Part::new("east", &s, None);
        assert_eq!(
            first.snapshot.summaries[0].group.as_deref(),
            Some("east:p1")
        );
        // The next poll: the same summaries, other waits.
        let mut next = s.clone();
        next.server_now = now + chrono::Duration::seconds(1);
        let second = Part::after("east", &next, None, Some((&s, &first)));
        assert!(Arc::ptr_eq(
            &first.snapshot.summaries,
            &second.snapshot.summaries
        ));
        assert_eq!(second.snapshot.server_now, next.server_now);
        // Summaries taken anew: prefixed anew.
        next.summaries = Arc::new(s.summaries.to_vec());
        let third = Part::after("east", &next, None, Some((&s, &first)));
        assert!(!Arc::ptr_eq(
            &first.snapshot.summaries,
            &third.snapshot.summaries
        ));
        assert_eq!(third.snapshot.summaries, first.snapshot.summaries);
    }

    #[test]
    fn bigint_advisory_keys_decode_from_both_halves_including_negative_keys() {
        assert_eq!(AdvisoryKey::decode(0, 42, 1), Some(AdvisoryKey::Bigint(42)));
        assert_eq!(
            AdvisoryKey::decode(1, 0, 1),
            Some(AdvisoryKey::Bigint(1 << 32))
        );
        let minus_one = i64::from(u32::MAX);
        assert_eq!(
            AdvisoryKey::decode(minus_one, minus_one, 1),
            Some(AdvisoryKey::Bigint(-1))
        );
    }

    #[test]
    fn two_int4_advisory_keys_decode_each_half_with_its_sign() {
        assert_eq!(AdvisoryKey::decode(7, 9, 2), Some(AdvisoryKey::Pair(7, 9)));
        assert_eq!(
            AdvisoryKey::decode(i64::from(u32::MAX), 5, 2),
            Some(AdvisoryKey::Pair(-1, 5))
        );
    }

    #[test]
    fn unknown_advisory_forms_and_out_of_range_oids_decode_to_none() {
        assert_eq!(AdvisoryKey::decode(1, 2, 3), None);
        assert_eq!(AdvisoryKey::decode(-1, 2, 1), None);
    }
}
