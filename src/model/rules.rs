//! The runbook's rules: from a snapshot, the history and the server's `now`, each profile's status and the
//! reasons for it, and the alerts that tell the operator to escalate.
//!
//! - contended: a failed acquisition or a lock wait on the profile's rows within the last TTL;
//! - escalated: the contention episode is older than `escalate_after` (three TTL cycles), or a row has been
//!   expired for longer than one TTL while contention goes on;
//! - expired: a row past its expiry that its owner did not refresh or release (a dead owner);
//! - and, across profiles, an alert when two or more are contended at once.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::history::{History, ProfileObservation};
use super::snapshot::{LeaseRow, LockWait, Session, Snapshot};

/// The runbook's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Lease TTL: the window in which a failure counts as ongoing contention.
    pub ttl: Duration,
    /// Contention older than this escalates (the runbook's 90 s: three TTL cycles).
    pub escalate_after: Duration,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            ttl: Duration::seconds(30),
            escalate_after: Duration::seconds(90),
        }
    }
}

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
    pub key: Option<String>,
    pub owner: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub acquired_at: Option<DateTime<Utc>>,
    /// The backend that holds it, where it could be linked: owner token equal to an `application_name`, or
    /// the backend that row-lock waiters on this row wait for.
    pub pid: Option<i32>,
    pub application: Option<String>,
    pub contention_count: Option<i64>,
    pub contended_since: Option<DateTime<Utc>>,
    pub last_contended_at: Option<DateTime<Utc>>,
    /// Sessions waiting on this row now.
    pub waiters: u32,
}

impl RowView {
    /// A row with an owner whose expiry has passed: not refreshed, not released.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.owner.is_some() && self.expires_at.is_some_and(|e| e <= now)
    }

    /// Time left on the lease; negative once expired.
    pub fn ttl_remaining(&self, now: DateTime<Utc>) -> Option<Duration> {
        self.expires_at.map(|e| e - now)
    }
}

/// A profile with its rows, status and reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileView {
    pub profile: String,
    pub status: Status,
    pub reasons: Vec<String>,
    /// Start of the current contention episode (bookkeeping, or what the monitor observed).
    pub contended_since: Option<DateTime<Utc>>,
    /// Failed acquisitions in the current episode, summed over the profile's rows.
    pub contention_count: i64,
    pub waiters: u32,
    pub rows: Vec<RowView>,
}

impl ProfileView {
    /// The rows that somebody holds (or held and did not release).
    pub fn holders(&self) -> impl Iterator<Item = &RowView> {
        self.rows.iter().filter(|r| r.owner.is_some())
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
}

impl Alert {
    /// The one-line text for the banner and the logs.
    pub fn message(&self) -> &str {
        match self {
            Self::ContendedTooLong { message, .. }
            | Self::ExpiredNotRefreshed { message, .. }
            | Self::SeveralContended { message, .. } => message,
        }
    }
}

/// Everything the screen and the JSON report show, computed once per snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Board {
    pub now: DateTime<Utc>,
    /// Most severe first, then longest contended, then by name.
    pub profiles: Vec<ProfileView>,
    pub waits: Vec<WaitView>,
    pub alerts: Vec<Alert>,
}

impl Board {
    /// Whether any escalation trigger fired (the `snapshot` command's exit status 2).
    pub fn escalated(&self) -> bool {
        !self.alerts.is_empty()
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

/// What one poll contributes to the history, per profile: fed to [`History::record`].
pub fn observations(snapshot: &Snapshot) -> Vec<(String, ProfileObservation)> {
    let mut by_profile: HashMap<&str, ProfileObservation> = HashMap::new();
    for row in &snapshot.leases {
        let o = by_profile
            .entry(display_value(row.group.as_deref()))
            .or_insert(ProfileObservation {
                failure_count: None,
                episode_start: None,
                waiters: 0,
            });
        if let Some(c) = row.contention_count {
            o.failure_count = Some(o.failure_count.unwrap_or(0) + c);
        }
        o.episode_start = o.episode_start.max(row.contended_since);
    }
    for wait in &snapshot.waits {
        if let Some((group, _)) = &wait.lease_row {
            let o =
                by_profile
                    .entry(display_value(group.as_deref()))
                    .or_insert(ProfileObservation {
                        failure_count: None,
                        episode_start: None,
                        waiters: 0,
                    });
            o.waiters += 1;
        }
    }
    by_profile
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// Feeds one snapshot into the history (call once per poll, before [`evaluate`]).
pub fn record(history: &mut History, snapshot: &Snapshot, rules: &Rules) {
    let seen = observations(snapshot);
    history.record(
        snapshot.server_now,
        rules.ttl,
        seen.iter().map(|(k, v)| (k.as_str(), *v)),
    );
}

/// Applies the rules to a snapshot at server time `now` (the snapshot's `server_now` plus the monotonic time
/// since it was taken).
pub fn evaluate(
    snapshot: &Snapshot,
    history: &History,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Board {
    let sessions: HashMap<i32, &Session> = snapshot.sessions.iter().map(|s| (s.pid, s)).collect();
    let by_app: HashMap<&str, &Session> = snapshot
        .sessions
        .iter()
        .filter_map(|s| Some((s.application.as_deref().filter(|a| !a.is_empty())?, s)))
        .collect();

    let waits: Vec<WaitView> = snapshot
        .waits
        .iter()
        .map(|w| wait_view(w, &sessions))
        .collect();
    // Row-lock waits per (profile, key), and who holds the row lock they wait for.
    let mut row_waits: HashMap<(&str, &str), (u32, Option<i32>)> = HashMap::new();
    for w in &waits {
        if let (Some(p), Some(k)) = (&w.profile, &w.key) {
            let e = row_waits.entry((p.as_str(), k.as_str())).or_default();
            e.0 += 1;
            if w.wait.locktype == "transactionid" {
                e.1 = e.1.or(w.wait.blocked_by.first().copied());
            }
        }
    }

    let mut groups: HashMap<&str, Vec<&LeaseRow>> = HashMap::new();
    for row in &snapshot.leases {
        groups
            .entry(display_value(row.group.as_deref()))
            .or_default()
            .push(row);
    }
    // A profile with waits but no visible rows (e.g. rows hidden by a failed lease query) still shows.
    for (p, _) in row_waits.keys() {
        groups.entry(p).or_default();
    }

    let mut profiles: Vec<ProfileView> = groups
        .into_iter()
        .map(|(profile, rows)| {
            let rows = rows
                .into_iter()
                .map(|r| row_view(profile, r, &row_waits, &by_app, &sessions))
                .collect();
            profile_view(profile, rows, history, rules, now)
        })
        .collect();
    sort_profiles(&mut profiles, now);

    let alerts = alerts(&profiles, rules, now);
    Board {
        now,
        profiles,
        waits,
        alerts,
    }
}

/// Most severe first, then longest contended, then by name.
pub fn sort_profiles(profiles: &mut [ProfileView], now: DateTime<Utc>) {
    profiles.sort_by(|a, b| {
        b.status
            .cmp(&a.status)
            .then_with(|| b.contended_for(now).cmp(&a.contended_for(now)))
            .then_with(|| a.profile.cmp(&b.profile))
    });
}

fn wait_view(w: &LockWait, sessions: &HashMap<i32, &Session>) -> WaitView {
    let session = sessions.get(&w.pid);
    let (profile, key) = match &w.lease_row {
        Some((g, k)) => (
            Some(display_value(g.as_deref()).to_owned()),
            Some(display_value(k.as_deref()).to_owned()),
        ),
        None => (None, None),
    };
    WaitView {
        wait: w.clone(),
        application: session.and_then(|s| s.application.clone()),
        query: session.and_then(|s| s.query.clone()),
        profile,
        key,
    }
}

fn row_view(
    profile: &str,
    r: &LeaseRow,
    row_waits: &HashMap<(&str, &str), (u32, Option<i32>)>,
    by_app: &HashMap<&str, &Session>,
    sessions: &HashMap<i32, &Session>,
) -> RowView {
    let key = display_value(r.key.as_deref());
    let (waiters, row_lock_holder) = row_waits.get(&(profile, key)).copied().unwrap_or_default();
    let linked = r
        .owner
        .as_deref()
        .and_then(|o| by_app.get(o).copied())
        .or_else(|| row_lock_holder.and_then(|pid| sessions.get(&pid).copied()));
    RowView {
        key: r.key.clone(),
        owner: r.owner.clone(),
        expires_at: r.expires_at,
        acquired_at: r.acquired_at,
        pid: linked.map(|s| s.pid).or(row_lock_holder),
        application: linked.and_then(|s| s.application.clone()),
        contention_count: r.contention_count,
        contended_since: r.contended_since,
        last_contended_at: r.last_contended_at,
        waiters,
    }
}

fn profile_view(
    profile: &str,
    mut rows: Vec<RowView>,
    history: &History,
    rules: &Rules,
    now: DateTime<Utc>,
) -> ProfileView {
    rows.sort_by(|a, b| a.key.cmp(&b.key));
    let recent = |t: Option<DateTime<Utc>>| t.is_some_and(|t| now - t <= rules.ttl);

    // Contention from the bookkeeping columns: rows whose last failure is within a TTL.
    let active: Vec<&RowView> = rows
        .iter()
        .filter(|r| recent(r.last_contended_at))
        .collect();
    let contention_count: i64 = active.iter().filter_map(|r| r.contention_count).sum();
    let waiters: u32 = rows.iter().map(|r| r.waiters).sum();
    let observed = history
        .observed_episode(profile)
        .filter(|&(_, last)| now - last <= rules.ttl);

    let contended = !active.is_empty() || waiters > 0 || observed.is_some();
    let mut reasons = Vec::new();
    let mut status = Status::Ok;

    let episode_start = [
        // The bookkeeping knows when the episode started even if the monitor started later.
        active.iter().filter_map(|r| r.contended_since).min(),
        observed.map(|(start, _)| start),
    ]
    .into_iter()
    .flatten()
    .min();

    if contended {
        status = Status::Contended;
        let for_how_long = episode_start.map(|s| now - s);
        let mut what = Vec::new();
        if contention_count > 0 {
            what.push(format!("{contention_count} failed acquisitions"));
        }
        if waiters > 0 {
            what.push(format!("{waiters} waiting on row locks"));
        }
        if what.is_empty() {
            what.push("contention seen".to_owned());
        }
        match for_how_long {
            Some(d) if d > rules.escalate_after => {
                status = Status::Escalated;
                reasons.push(format!(
                    "contended for {} (over the {} escalation limit): {}",
                    human_duration(d),
                    human_duration(rules.escalate_after),
                    what.join(", ")
                ));
            }
            Some(d) => reasons.push(format!(
                "contended for {}: {}",
                human_duration(d),
                what.join(", ")
            )),
            None => reasons.push(format!("contended: {}", what.join(", "))),
        }
    }

    for row in rows.iter().filter(|r| r.is_expired(now)) {
        let expired_for = now - row.expires_at.unwrap_or(now);
        let key = display_value(row.key.as_deref());
        let owner = display_value(row.owner.as_deref());
        if contended && expired_for > rules.ttl {
            status = Status::Escalated;
            reasons.push(format!(
                "{key}: expired {} ago and not refreshed while contention goes on (owner {owner})",
                human_duration(expired_for)
            ));
        } else {
            status = status.max(Status::Expired);
            reasons.push(format!(
                "{key}: expired {} ago, not refreshed or released (owner {owner} may be dead)",
                human_duration(expired_for)
            ));
        }
    }

    ProfileView {
        profile: profile.to_owned(),
        status,
        reasons,
        // A contended profile always has an episode start: at the latest, now.
        contended_since: contended.then(|| episode_start.unwrap_or(now)),
        contention_count,
        waiters,
        rows,
    }
}

fn alerts(profiles: &[ProfileView], rules: &Rules, now: DateTime<Utc>) -> Vec<Alert> {
    let mut out = Vec::new();
    for p in profiles.iter().filter(|p| p.status == Status::Escalated) {
        if let Some(d) = p.contended_for(now).filter(|d| *d > rules.escalate_after) {
            out.push(Alert::ContendedTooLong {
                profile: p.profile.clone(),
                contended_for_s: d.num_seconds(),
                message: format!(
                    "ESCALATE: profile {} contended for {} (limit {})",
                    p.profile,
                    human_duration(d),
                    human_duration(rules.escalate_after)
                ),
            });
        }
        for row in p.rows.iter().filter(|r| r.is_expired(now)) {
            let expired_for = now - row.expires_at.unwrap_or(now);
            if expired_for > rules.ttl {
                let key = display_value(row.key.as_deref()).to_owned();
                out.push(Alert::ExpiredNotRefreshed {
                    message: format!(
                        "ESCALATE: profile {} row {key} expired {} ago and is not refreshed",
                        p.profile,
                        human_duration(expired_for)
                    ),
                    profile: p.profile.clone(),
                    key,
                    expired_for_s: expired_for.num_seconds(),
                });
            }
        }
    }
    let contended: Vec<String> = profiles
        .iter()
        .filter(|p| p.contended_since.is_some())
        .map(|p| p.profile.clone())
        .collect();
    if contended.len() >= 2 {
        out.push(Alert::SeveralContended {
            message: format!(
                "ESCALATE: {} profiles contended at once ({})",
                contended.len(),
                contended.join(", ")
            ),
            profiles: contended,
        });
    }
    out
}
