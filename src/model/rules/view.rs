//! What the rules give the screen and the report: a profile's status, its rows and reasons, the waits with
//! what is known of the waiter, and the alerts (the board that holds them all is `board`'s).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::super::order::natural_cmp;
use super::super::snapshot::{LockWait, PreparedXact};

/// A profile's status, worst last so that `Ord` sorts by severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Contended,
    Expired,
    Escalated,
}

impl Status {
    /// The word shown on screen and in JSON.
    pub fn word(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Contended => "contended",
            Self::Expired => "expired",
            Self::Escalated => "escalated",
        }
    }
}

/// One lease row of a profile, as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowView {
    /// Shared with the rows and aggregates read (a report builds a view of each of 50,000 profiles).
    pub key: Option<Arc<str>>,
    pub owner: Option<Arc<str>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub acquired_at: Option<DateTime<Utc>>,
    /// The backend that holds it, where it could be linked: owner token equal to an `application_name`, or
    /// the backend that row-lock waiters on this row wait for.
    pub pid: Option<i32>,
    /// Boxed: 8 bytes less each than a `String` (a report builds a view of each of 50,000 profiles).
    pub application: Option<Box<str>>,
    /// The prepared transaction that holds its row lock (it has no pid), by its gid.
    pub prepared: Option<Box<str>>,
    /// Its failed acquisitions, from the table's bookkeeping; none when it keeps none (every summarised row).
    pub failures: Option<Box<Failures>>,
    /// Sessions waiting on this row now.
    pub waiters: u32,
    /// Whether the row stands for a profile known only from its summary: its expiry may be older than a renewal
    /// since, so it never reads as expired (truly expired rows are always read in detail).
    pub summarised: bool,
}

/// A row's bookkeeping of failed acquisitions: boxed in its [`RowView`], which most rows need no room for (a
/// calm profile known from its summary has none, and a report builds a view of each of 50,000).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failures {
    pub count: Option<i64>,
    pub since: Option<DateTime<Utc>>,
    pub last: Option<DateTime<Utc>>,
}

impl Failures {
    /// The bookkeeping read, boxed; none when the row has none.
    pub fn of(
        count: Option<i64>,
        since: Option<DateTime<Utc>>,
        last: Option<DateTime<Utc>>,
    ) -> Option<Box<Self>> {
        (count.is_some() || since.is_some() || last.is_some())
            .then(|| Box::new(Self { count, since, last }))
    }
}

impl RowView {
    /// Failed acquisitions in its current episode, as the table counts them.
    pub fn contention_count(&self) -> Option<i64> {
        self.failures.as_ref().and_then(|f| f.count)
    }

    /// When its current episode of contention began, as the table records it.
    pub fn contended_since(&self) -> Option<DateTime<Utc>> {
        self.failures.as_ref().and_then(|f| f.since)
    }

    /// Its last failed acquisition, as the table records it.
    pub fn last_contended_at(&self) -> Option<DateTime<Utc>> {
        self.failures.as_ref().and_then(|f| f.last)
    }

    /// A row with an owner whose expiry has passed: not refreshed, not released.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        !self.summarised && self.owner.is_some() && self.expires_at.is_some_and(|e| e <= now)
    }

    /// Time left on the lease; negative once expired. Unknown for a summarised row whose expiry passed (it was
    /// renewed since the aggregate was read).
    pub fn ttl_remaining(&self, now: DateTime<Utc>) -> Option<Duration> {
        self.expires_at
            .map(|e| e - now)
            .filter(|d| !self.summarised || *d > Duration::zero())
    }
}

/// A profile with its rows, status and reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileView {
    /// Shared with the rows and aggregates read. This and the boxed lists keep a view small: a report, or an
    /// operator paging through every profile, builds one of each of 50,000.
    pub profile: Arc<str>,
    pub status: Status,
    pub reasons: Box<[String]>,
    /// Start of the current contention episode (bookkeeping, or what the monitor observed).
    pub contended_since: Option<DateTime<Utc>>,
    /// Failed acquisitions in the current episode, summed over the profile's rows.
    pub contention_count: i64,
    pub waiters: u32,
    /// The rows in detail; for a profile known only from its summary, one row standing for its held row that
    /// expires first (`held_count` says how many it holds).
    pub rows: Box<[RowView]>,
    /// Rows of the profile and rows with an owner, whether or not they are in `rows`.
    pub row_count: u32,
    pub held_count: u32,
    /// Whether `rows` holds every row of the profile (false when only its summary was fetched).
    pub detailed: bool,
    /// Set when the rows are from an earlier poll (this one could not read them): when they were read. The
    /// rows are judged as of then; durations still run to now.
    pub rows_as_of: Option<DateTime<Utc>>,
}

impl ProfileView {
    /// The rows that somebody holds (or held and did not release).
    pub fn holders(&self) -> impl Iterator<Item = &RowView> {
        self.rows.iter().filter(|r| r.owner.is_some())
    }

    /// The rows somebody holds, most urgent first: expired, then waited on or contended, then the soonest to
    /// expire (then by key). The first stands for the profile on its line.
    pub fn holders_by_urgency(&self, now: DateTime<Utc>) -> Vec<&RowView> {
        let mut rows: Vec<&RowView> = self.holders().collect();
        rows.sort_by(|a, b| {
            let rank = |r: &RowView| {
                (
                    !r.is_expired(now),
                    !(r.waiters > 0 || r.contended_since().is_some()),
                    r.expires_at.unwrap_or(DateTime::<Utc>::MAX_UTC),
                )
            };
            rank(a).cmp(&rank(b)).then_with(|| {
                natural_cmp(
                    a.key.as_deref().unwrap_or(""),
                    b.key.as_deref().unwrap_or(""),
                )
            })
        });
        rows
    }

    /// How many rows it holds besides the one on its line.
    pub fn more_held(&self) -> usize {
        usize::try_from(self.held_count)
            .unwrap_or(usize::MAX)
            .max(self.holders().count())
            .saturating_sub(1)
    }

    /// How long the current contention episode has lasted; `None` when not contended.
    pub fn contended_for(&self, now: DateTime<Utc>) -> Option<Duration> {
        self.contended_since
            .map(|since| (now - since).max(Duration::zero()))
    }
}

/// A lock wait with what is known of the waiter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitView {
    pub wait: LockWait,
    pub application: Option<String>,
    pub query: Option<String>,
    /// The lease-table row's profile and key, for a row-lock wait on it.
    pub profile: Option<String>,
    pub key: Option<String>,
    /// The target's label when several databases are watched (pids are per server).
    pub target: Option<String>,
    /// For a parallel worker, its leader's pid.
    pub leader: Option<i32>,
    /// The prepared transactions that block it (`blocked_by` says 0 for them).
    pub prepared: Vec<PreparedXact>,
}

impl WaitView {
    /// How long the waiter has waited, from `waitstart`.
    pub fn waiting_for(&self, now: DateTime<Utc>) -> Option<Duration> {
        self.wait.waitstart.map(|s| (now - s).max(Duration::zero()))
    }
}

/// Which runbook trigger fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "trigger")]
pub enum Alert {
    /// Contention persisted beyond `escalate_after`.
    ContendedTooLong {
        profile: String,
        contended_for_s: i64,
        message: String,
    },
    /// A row expired more than one TTL ago and was not refreshed while contention goes on.
    ExpiredNotRefreshed {
        profile: String,
        key: String,
        expired_for_s: i64,
        message: String,
    },
    /// Two or more profiles contended at once.
    SeveralContended {
        profiles: Vec<String>,
        message: String,
    },
    /// The database counted a burst of deadlocks within the window.
    DeadlockBurst {
        deadlocks: i64,
        window_s: i64,
        message: String,
    },
    /// A prepared transaction older than the limit blocks sessions: its locks stay until its owner commits or
    /// rolls it back.
    PreparedBlocking {
        gid: String,
        owner: Option<String>,
        database: Option<String>,
        prepared_for_s: i64,
        blocks: Vec<i32>,
        message: String,
    },
}

impl Alert {
    /// Every trigger's name, in the order of [`Self::trigger`].
    pub const TRIGGERS: [&'static str; 5] = [
        "contended_too_long",
        "expired_not_refreshed",
        "several_contended",
        "prepared_blocking",
        "deadlock_burst",
    ];

    /// What it is about, within its trigger: the same alert keeps its subject from one evaluation to the next
    /// while its figures change (a profile, a profile's key, a prepared transaction; the cross-profile
    /// triggers are one alert each, whichever profiles they name).
    pub fn subject(&self) -> String {
        match self {
            Self::ContendedTooLong { profile, .. } => profile.clone(),
            Self::ExpiredNotRefreshed { profile, key, .. } => format!("{profile} {key}"),
            Self::PreparedBlocking { gid, .. } => gid.clone(),
            Self::SeveralContended { .. } | Self::DeadlockBurst { .. } => String::new(),
        }
    }

    /// The trigger's name, as in the JSON.
    pub fn trigger(&self) -> &'static str {
        match self {
            Self::ContendedTooLong { .. } => "contended_too_long",
            Self::ExpiredNotRefreshed { .. } => "expired_not_refreshed",
            Self::SeveralContended { .. } => "several_contended",
            Self::PreparedBlocking { .. } => "prepared_blocking",
            Self::DeadlockBurst { .. } => "deadlock_burst",
        }
    }

    /// The profiles it is about (none for a prepared transaction).
    pub fn profiles(&self) -> Vec<&str> {
        match self {
            Self::ContendedTooLong { profile, .. } | Self::ExpiredNotRefreshed { profile, .. } => {
                vec![profile]
            }
            Self::SeveralContended { profiles, .. } => {
                profiles.iter().map(String::as_str).collect()
            }
            Self::PreparedBlocking { .. } | Self::DeadlockBurst { .. } => Vec::new(),
        }
    }

    /// How long its condition has held (contended, expired, prepared), when it says.
    pub fn for_s(&self) -> Option<i64> {
        match self {
            Self::ContendedTooLong {
                contended_for_s: s, ..
            }
            | Self::ExpiredNotRefreshed {
                expired_for_s: s, ..
            }
            | Self::PreparedBlocking {
                prepared_for_s: s, ..
            } => Some(*s),
            Self::SeveralContended { .. } | Self::DeadlockBurst { .. } => None,
        }
    }

    /// What the runbook says to do. locktop only observes: it never tells anyone to delete lock rows.
    pub fn runbook(&self) -> &'static str {
        match self {
            Self::ContendedTooLong { .. } => {
                "Find the holder (Enter: its backend, state and query). If it is alive and working, let it \
                 finish; if it is stuck, page the team that owns it. Never delete lock rows by hand."
            }
            Self::ExpiredNotRefreshed { .. } => {
                "Its owner stopped renewing: check whether that worker is alive. The lease lapses by design so \
                 that a waiter can take it; escalate to the owning team. Never delete the row by hand."
            }
            Self::SeveralContended { .. } => {
                "Several profiles at once point at a shared cause (database load, a stuck scheduler, a \
                 deploy): check the database and the service's health, and escalate."
            }
            Self::PreparedBlocking { .. } => {
                "A prepared transaction keeps its locks until COMMIT PREPARED or ROLLBACK PREPARED, which is \
                 its owner's decision: find the transaction manager that prepared it, and escalate."
            }
            Self::DeadlockBurst { .. } => {
                "Each deadlock aborted one session's transaction. Find the statements in the server log \
                 (log_lock_waits, deadlock_timeout), check the lock waits now, and escalate to the team whose \
                 code takes the locks in conflicting orders."
            }
        }
    }

    /// The one-line text for the banner and the logs.
    pub fn message(&self) -> &str {
        match self {
            Self::ContendedTooLong { message, .. }
            | Self::ExpiredNotRefreshed { message, .. }
            | Self::SeveralContended { message, .. }
            | Self::PreparedBlocking { message, .. }
            | Self::DeadlockBurst { message, .. } => message,
        }
    }
}

/// Formats a duration the way the screen does: `45s`, `2m05s`, `1h02m`.
pub fn human_duration(d: Duration) -> String {
    let s = d.num_seconds();
    let (sign, s) = if s < 0 { ("-", -s) } else { ("", s) };
    match s {
        0..60 => format!("{sign}{s}s"),
        60..3600 => format!("{sign}{}m{:02}s", s / 60, s % 60),
        _ => format!("{sign}{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// The display name of a group or key value that may be NULL.
pub fn display_value(v: Option<&str>) -> &str {
    v.unwrap_or("NULL")
}

/// The blockers of a wait in words: pids as numbers, and prepared transactions by their gid (pid 0).
pub fn blocker_names(w: &WaitView) -> Vec<String> {
    w.wait
        .blocked_by
        .iter()
        .flat_map(|&pid| {
            if pid == 0 && !w.prepared.is_empty() {
                w.prepared
                    .iter()
                    .map(|p| format!("prepared '{}'", p.gid))
                    .collect()
            } else if pid == 0 {
                vec!["a prepared transaction".to_owned()]
            } else {
                vec![pid.to_string()]
            }
        })
        .collect()
}

/// Most severe first, then longest contended, then by name (digit runs by value).
pub fn sort_profiles(profiles: &mut [std::sync::Arc<ProfileView>], now: DateTime<Utc>) {
    profiles.sort_by(|a, b| {
        b.status
            .cmp(&a.status)
            .then_with(|| b.contended_for(now).cmp(&a.contended_for(now)))
            .then_with(|| natural_cmp(&a.profile, &b.profile))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report builds a view of each of 50,000 profiles (and a board keeps those built while it is shown): a
    /// calm profile's view (in its `Arc`, two counts ahead of it) and its one row each fit the allocator's
    /// 112-byte class. At 144 and 128 bytes they took the 160-byte class, about 5 MB more for 50,000.
    #[test]
    fn a_calm_views_two_allocations_fit_in_112_bytes_each() {
        let in_arc = std::mem::size_of::<ProfileView>() + 2 * std::mem::size_of::<usize>();
        assert!(in_arc <= 112, "a view in its Arc takes {in_arc} bytes");
        let row = std::mem::size_of::<RowView>();
        assert!(row <= 112, "a row takes {row} bytes");
    }
}
