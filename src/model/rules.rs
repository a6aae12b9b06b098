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

use super::history::{History, ProfileObservation, holders_fingerprint};
use super::order::natural_cmp;
use super::snapshot::{LeaseRow, LockWait, PreparedXact, ProfileSummary, Session, Snapshot};

/// The runbook's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Lease TTL: the window in which a failure counts as ongoing contention.
    pub ttl: Duration,
    /// Contention older than this escalates (the runbook's 90 s: three TTL cycles).
    pub escalate_after: Duration,
    /// A prepared transaction older than this that blocks anyone raises an alert.
    pub prepared_after: Duration,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            ttl: Duration::seconds(30),
            escalate_after: Duration::seconds(90),
            prepared_after: Duration::seconds(60),
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
    /// The prepared transaction that holds its row lock (it has no pid), by its gid.
    pub prepared: Option<String>,
    pub contention_count: Option<i64>,
    pub contended_since: Option<DateTime<Utc>>,
    pub last_contended_at: Option<DateTime<Utc>>,
    /// Sessions waiting on this row now.
    pub waiters: u32,
    /// Whether the row stands for a profile known only from its summary: its expiry may be older than a renewal
    /// since, so it never reads as expired (truly expired rows are always read in detail).
    pub summarised: bool,
}

impl RowView {
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
    pub profile: String,
    pub status: Status,
    pub reasons: Vec<String>,
    /// Start of the current contention episode (bookkeeping, or what the monitor observed).
    pub contended_since: Option<DateTime<Utc>>,
    /// Failed acquisitions in the current episode, summed over the profile's rows.
    pub contention_count: i64,
    pub waiters: u32,
    /// The rows in detail; for a profile known only from its summary, one row standing for its holder (the
    /// one that expires first), or none when several hold rows (then see `held_count`).
    pub rows: Vec<RowView>,
    /// Rows of the profile and rows with an owner, whether or not they are in `rows`.
    pub row_count: usize,
    pub held_count: usize,
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
    /// The one-line text for the banner and the logs.
    pub fn message(&self) -> &str {
        match self {
            Self::ContendedTooLong { message, .. }
            | Self::ExpiredNotRefreshed { message, .. }
            | Self::SeveralContended { message, .. }
            | Self::PreparedBlocking { message, .. } => message,
        }
    }
}

/// Everything the screen and the JSON report show, computed once per snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Board {
    pub now: DateTime<Utc>,
    /// Most severe first, then longest contended, then by name (digit runs by value).
    pub profiles: Vec<ProfileView>,
    pub waits: Vec<WaitView>,
    pub alerts: Vec<Alert>,
    /// What keeps the board from vouching for calm, besides what the snapshot itself could not read: waits on
    /// lease rows that no profile could be named for.
    pub doubts: Vec<String>,
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
            .or_default();
        if let Some(c) = row.contention_count {
            o.failure_count = Some(o.failure_count.unwrap_or(0) + c);
        }
        o.episode_start = o.episode_start.max(row.contended_since);
        if let Some(owner) = row.owner.as_deref() {
            o.holders = Some(o.holders.unwrap_or(0) ^ holders_fingerprint([owner]));
        }
    }
    for summary in snapshot.summaries.iter() {
        let name = display_value(summary.group.as_deref());
        if !by_profile.contains_key(name) {
            by_profile.insert(
                name,
                ProfileObservation {
                    failure_count: summary.failure_total,
                    episode_start: summary.latest_contended_since,
                    waiters: 0,
                    // Who holds what is known from a summary only for a profile of one row.
                    holders: (summary.rows == 1)
                        .then_some(summary.sample_owner.as_deref())
                        .flatten()
                        .map(|o| holders_fingerprint([o])),
                },
            );
        }
    }
    for wait in &snapshot.waits {
        if let Some((group, _)) = &wait.lease_row {
            let o = by_profile
                .entry(display_value(group.as_deref()))
                .or_default();
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
    let seen: Vec<_> = snapshot
        .pieces()
        .into_iter()
        .flat_map(observations)
        .collect();
    history.record(
        snapshot.server_now,
        rules.ttl,
        seen.iter().map(|(k, v)| (k.as_str(), *v)),
    );
}

/// Applies the rules to a snapshot at server time `now` (the snapshot's `server_now` plus the monotonic time
/// since it was taken).
///
/// A merged snapshot (several targets) is evaluated target by target, each against its own sessions and
/// waits (pids and application names mean nothing across servers); the boards are then joined and the
/// alerts drawn over all of them, so "several profiles contended at once" counts across targets.
pub fn evaluate(
    snapshot: &Snapshot,
    history: &History,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Board {
    if snapshot.parts.is_empty() {
        return evaluate_one(snapshot, history, rules, now, None);
    }
    let mut joined = Board {
        now,
        profiles: Vec::new(),
        waits: Vec::new(),
        alerts: Vec::new(),
        doubts: Vec::new(),
    };
    let mut prepared = Vec::new();
    for part in &snapshot.parts {
        let board = evaluate_one(&part.snapshot, history, rules, now, Some(&part.target));
        joined.profiles.extend(board.profiles);
        joined.waits.extend(board.waits);
        joined.doubts.extend(
            board
                .doubts
                .into_iter()
                .map(|d| format!("{}: {d}", part.target)),
        );
        prepared.extend(part.snapshot.prepared.iter().cloned());
    }
    let doubts = std::mem::take(&mut joined.doubts);
    Board {
        doubts,
        ..board(joined.profiles, joined.waits, &prepared, rules, now)
    }
}

/// The board of these profiles and waits: in the runbook's order, with the alerts they and the blocking
/// prepared transactions raise.
fn board(
    mut profiles: Vec<ProfileView>,
    waits: Vec<WaitView>,
    prepared: &[PreparedXact],
    rules: &Rules,
    now: DateTime<Utc>,
) -> Board {
    sort_profiles(&mut profiles, now);
    let mut alerts = alerts(&profiles, rules, now);
    alerts.extend(prepared_alerts(prepared, rules, now));
    Board {
        now,
        profiles,
        waits,
        alerts,
        doubts: Vec::new(),
    }
}

/// A prepared transaction that blocks anyone and is older than the limit: what it is, and whose decision
/// ending it is (locktop never writes).
fn prepared_alerts(prepared: &[PreparedXact], rules: &Rules, now: DateTime<Utc>) -> Vec<Alert> {
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

fn evaluate_one(
    snapshot: &Snapshot,
    history: &History,
    rules: &Rules,
    now: DateTime<Utc>,
    target: Option<&str>,
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
        .map(|w| WaitView {
            target: target.map(str::to_owned),
            ..wait_view(w, &sessions, &snapshot.prepared)
        })
        .collect();
    let as_of = snapshot.leases_as_of;
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
    // A profile with waits but no rows read (only summarised, or rows hidden by a failed lease query) still
    // shows: from its summary when there is one, else with no rows.
    let summarised: std::collections::HashSet<&str> = snapshot
        .summaries
        .iter()
        .map(|s| display_value(s.group.as_deref()))
        .collect();
    for (p, _) in row_waits.keys() {
        if !summarised.contains(p) {
            groups.entry(p).or_default();
        }
    }

    let mut profile_waiters: HashMap<&str, u32> = HashMap::new();
    for ((p, _), (n, _)) in &row_waits {
        *profile_waiters.entry(p).or_default() += n;
    }
    // A waiter on a profile's row has contended it since its wait began, whatever the bookkeeping says (the
    // function that would record the failure is the one that waits).
    let mut waiting_since: HashMap<&str, DateTime<Utc>> = HashMap::new();
    for w in &waits {
        if let (Some(p), Some(start)) = (&w.profile, w.wait.waitstart) {
            let e = waiting_since.entry(p.as_str()).or_insert(start);
            *e = (*e).min(start);
        }
    }

    let mut profiles: Vec<ProfileView> = groups
        .into_iter()
        .map(|(profile, rows)| {
            let rows: Vec<RowView> = rows
                .into_iter()
                .map(|r| row_view(profile, r, &row_waits, &by_app, &sessions, &waits))
                .collect();
            let counts = Counts {
                rows: rows.len(),
                held: rows.iter().filter(|r| r.owner.is_some()).count(),
                waiters: profile_waiters.get(profile).copied().unwrap_or(0),
                waiting_since: waiting_since.get(profile).copied(),
                detailed: true,
            };
            profile_view(profile, rows, counts, history, rules, (now, as_of))
        })
        .collect();
    // Profiles known only from their summary: calm when polled, shown with the holder that expires first.
    let detailed: std::collections::HashSet<String> =
        profiles.iter().map(|p| p.profile.clone()).collect();
    for summary in snapshot.summaries.iter() {
        let profile = display_value(summary.group.as_deref());
        if detailed.contains(profile) {
            continue;
        }
        let counts = Counts {
            rows: usize::try_from(summary.rows).unwrap_or(0),
            held: usize::try_from(summary.held).unwrap_or(0),
            waiters: profile_waiters.get(profile).copied().unwrap_or(0),
            waiting_since: waiting_since.get(profile).copied(),
            detailed: false,
        };
        let rows = summary_row(summary, &by_app).into_iter().collect();
        profiles.push(profile_view(
            profile,
            rows,
            counts,
            history,
            rules,
            (now, as_of),
        ));
    }
    let doubts = unattributed(&waits);
    Board {
        doubts,
        ..board(profiles, waits, &snapshot.prepared, rules, now)
    }
}

/// Waits on lease rows that no profile could be named for (a conflicting INSERT not yet committed leaves no
/// row to see, a transaction holding several rows names none): which table, who blocks. Never calm by
/// omission: the board says so, and `snapshot` cannot vouch for calm.
fn unattributed(waits: &[WaitView]) -> Vec<String> {
    let unnamed: Vec<&WaitView> = waits
        .iter()
        .filter(|w| w.wait.on_lease_table && w.profile.is_none())
        .collect();
    let Some(first) = unnamed.first() else {
        return Vec::new();
    };
    let mut blockers: Vec<String> = unnamed
        .iter()
        .flat_map(|w| blocker_names(w))
        .map(|b| {
            if b.starts_with(|c: char| c.is_ascii_digit()) {
                format!("pid {b}")
            } else {
                b
            }
        })
        .collect();
    blockers.sort();
    blockers.dedup();
    vec![format!(
        "unattributed contention: {} session{} wait{} on an unnamed row of {}, blocked by {} (an \
         uncommitted insert, or a transaction holding several rows: no profile can be named)",
        unnamed.len(),
        if unnamed.len() == 1 { "" } else { "s" },
        if unnamed.len() == 1 { "s" } else { "" },
        first.wait.relation.as_deref().unwrap_or("the lease table"),
        if blockers.is_empty() {
            "unknown".to_owned()
        } else {
            blockers.join(", ")
        },
    )]
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
pub fn sort_profiles(profiles: &mut [ProfileView], now: DateTime<Utc>) {
    profiles.sort_by(|a, b| {
        b.status
            .cmp(&a.status)
            .then_with(|| b.contended_for(now).cmp(&a.contended_for(now)))
            .then_with(|| natural_cmp(&a.profile, &b.profile))
    });
}

fn wait_view(
    w: &LockWait,
    sessions: &HashMap<i32, &Session>,
    prepared: &[PreparedXact],
) -> WaitView {
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
        target: None,
        leader: session.and_then(|s| s.leader_pid),
        prepared: prepared
            .iter()
            .filter(|p| p.blocks.contains(&w.pid))
            .cloned()
            .collect(),
    }
}

fn row_view(
    profile: &str,
    r: &LeaseRow,
    row_waits: &HashMap<(&str, &str), (u32, Option<i32>)>,
    by_app: &HashMap<&str, &Session>,
    sessions: &HashMap<i32, &Session>,
    waits: &[WaitView],
) -> RowView {
    let key = display_value(r.key.as_deref());
    let (waiters, row_lock_holder) = row_waits.get(&(profile, key)).copied().unwrap_or_default();
    // pid 0: a prepared transaction holds the row lock; it is named by its gid instead.
    let prepared = (row_lock_holder == Some(0))
        .then(|| {
            waits
                .iter()
                .filter(|w| w.profile.as_deref() == Some(profile) && w.key.as_deref() == Some(key))
                .find_map(|w| w.prepared.first().map(|p| p.gid.clone()))
        })
        .flatten();
    let row_lock_holder = row_lock_holder.filter(|&pid| pid != 0);
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
        prepared,
        contention_count: r.contention_count,
        contended_since: r.contended_since,
        last_contended_at: r.last_contended_at,
        waiters,
        summarised: false,
    }
}

/// Row counts of a profile, known from its detail rows or from its summary.
#[derive(Clone, Copy)]
struct Counts {
    rows: usize,
    held: usize,
    waiters: u32,
    /// When the longest wait on its rows began.
    waiting_since: Option<DateTime<Utc>>,
    detailed: bool,
}

/// The row standing for a summarised profile of a single held row (with several rows, the aggregate cannot
/// say which owner holds which key; the screen then shows the counts and the first expiry).
fn summary_row(s: &ProfileSummary, by_app: &HashMap<&str, &Session>) -> Option<RowView> {
    if s.held != 1 || s.rows != 1 {
        return None;
    }
    let linked = s
        .sample_owner
        .as_deref()
        .and_then(|o| by_app.get(o).copied());
    Some(RowView {
        key: s.sample_key.clone(),
        owner: s.sample_owner.clone(),
        expires_at: s.next_expiry,
        acquired_at: s.sample_acquired_at,
        pid: linked.map(|l| l.pid),
        application: linked.and_then(|l| l.application.clone()),
        prepared: None,
        contention_count: None,
        contended_since: None,
        last_contended_at: None,
        waiters: 0,
        summarised: true,
    })
}

fn profile_view(
    profile: &str,
    mut rows: Vec<RowView>,
    counts: Counts,
    history: &History,
    rules: &Rules,
    (now, rows_as_of): (DateTime<Utc>, Option<DateTime<Utc>>),
) -> ProfileView {
    rows.sort_by(|a, b| match (&a.key, &b.key) {
        (Some(x), Some(y)) => natural_cmp(x, y),
        (x, y) => x.cmp(y),
    });
    // Rows read by an earlier poll are judged as of then: unread is not calm, and not expired either.
    let seen = rows_as_of.unwrap_or(now);
    let recent = |t: Option<DateTime<Utc>>| t.is_some_and(|t| seen - t <= rules.ttl);

    // Contention from the bookkeeping columns: rows whose last failure is within a TTL.
    let active: Vec<&RowView> = rows
        .iter()
        .filter(|r| recent(r.last_contended_at))
        .collect();
    let contention_count: i64 = active.iter().filter_map(|r| r.contention_count).sum();
    let waiters = counts.waiters;
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
        counts.waiting_since,
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

    for row in rows.iter().filter(|r| r.is_expired(seen)) {
        let expired_for = seen - row.expires_at.unwrap_or(seen);
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
        row_count: counts.rows,
        held_count: counts.held,
        detailed: counts.detailed,
        rows_as_of,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_clock::t;

    fn row(profile: &str, owner: &str, expires: i64) -> LeaseRow {
        LeaseRow {
            group: Some(profile.into()),
            key: Some("SYM".into()),
            owner: Some(owner.into()),
            expires_at: Some(t(expires)),
            acquired_at: Some(t(expires - 30)),
            contention_count: Some(0),
            contended_since: None,
            last_contended_at: None,
        }
    }

    fn contended(mut r: LeaseRow, since: i64, last: i64, count: i64) -> LeaseRow {
        r.contended_since = Some(t(since));
        r.last_contended_at = Some(t(last));
        r.contention_count = Some(count);
        r
    }

    fn snapshot(now: i64, leases: Vec<LeaseRow>) -> Snapshot {
        Snapshot {
            leases,
            ..Snapshot::at(t(now))
        }
    }

    /// A session waiting on the row (P, SYM).
    fn row_wait(pid: i32, blocked_by: i32) -> LockWait {
        LockWait {
            pid,
            blocked_by: vec![blocked_by],
            locktype: "tuple".into(),
            mode: "ExclusiveLock".into(),
            relation: None,
            relation_oid: None,
            tuple: None,
            advisory_key: None,
            transactionid: None,
            waitstart: None,
            lease_row: Some((Some("P".into()), Some("SYM".into()))),
            waitstart_approx: false,
            on_lease_table: false,
        }
    }

    fn board_at(s: &Snapshot, now: i64) -> Board {
        let rules = Rules::default();
        let mut h = History::default();
        record(&mut h, s, &rules);
        evaluate(s, &h, &rules, t(now))
    }

    fn status(b: &Board, profile: &str) -> Status {
        b.profiles
            .iter()
            .find(|p| p.profile == profile)
            .map(|p| p.status)
            .expect("profile")
    }

    #[test]
    fn a_held_row_without_failures_is_ok_and_its_ttl_counts_down_with_now() {
        let s = snapshot(0, vec![row("P", "w", 30)]);
        let b = board_at(&s, 0);
        assert_eq!(status(&b, "P"), Status::Ok);
        assert!(b.alerts.is_empty());
        let r = &b.profiles[0].rows[0];
        assert_eq!(r.ttl_remaining(t(0)), Some(Duration::seconds(30)));
        assert_eq!(r.ttl_remaining(t(12)), Some(Duration::seconds(18)));
    }

    #[test]
    fn a_failure_within_the_ttl_contends_and_one_older_than_the_ttl_does_not() {
        let s = snapshot(0, vec![contended(row("P", "w", 30), -10, -5, 3)]);
        let b = board_at(&s, 0);
        assert_eq!(status(&b, "P"), Status::Contended);
        assert_eq!(b.profiles[0].contention_count, 3);
        assert_eq!(
            b.profiles[0].contended_for(t(0)),
            Some(Duration::seconds(10))
        );
        let s = snapshot(0, vec![contended(row("P", "w", 30), -60, -31, 3)]);
        assert_eq!(
            status(&board_at(&s, 0), "P"),
            Status::Ok,
            "the episode ended a TTL after its last failure"
        );
    }

    #[test]
    fn contention_escalates_only_past_the_90_second_limit() {
        let at_limit = snapshot(0, vec![contended(row("P", "w", 30), -90, -1, 9)]);
        assert_eq!(
            status(&board_at(&at_limit, 0), "P"),
            Status::Contended,
            "90 s is not yet beyond the limit"
        );
        let past = board_at(&at_limit, 1);
        assert_eq!(status(&past, "P"), Status::Escalated);
        assert!(
            past.profiles[0].reasons[0].contains("over the 1m30s escalation limit"),
            "{:?}",
            past.profiles[0].reasons
        );
        assert!(matches!(
            &past.alerts[..],
            [Alert::ContendedTooLong {
                contended_for_s: 91,
                ..
            }]
        ));
    }

    #[test]
    fn an_expired_row_reads_expired_and_escalates_after_a_ttl_of_ongoing_contention() {
        let dead = snapshot(0, vec![row("P", "w", -5)]);
        let b = board_at(&dead, 0);
        assert_eq!(status(&b, "P"), Status::Expired);
        assert!(
            b.alerts.is_empty(),
            "no contention: expired but not an escalation yet"
        );
        let fresh = snapshot(0, vec![contended(row("P", "w", -20), -20, -1, 4)]);
        assert_eq!(
            status(&board_at(&fresh, 0), "P"),
            Status::Expired,
            "expired 20 s: less than one TTL"
        );
        let stale = snapshot(0, vec![contended(row("P", "w", -31), -31, -1, 4)]);
        let b = board_at(&stale, 0);
        assert_eq!(status(&b, "P"), Status::Escalated);
        assert!(b.alerts.iter().any(|a| matches!(
            a,
            Alert::ExpiredNotRefreshed {
                expired_for_s: 31,
                ..
            }
        )));
    }

    #[test]
    fn a_released_row_is_neither_held_nor_expired() {
        let mut released = row("P", "w", -100);
        released.owner = None;
        let b = board_at(&snapshot(0, vec![released]), 0);
        assert_eq!(status(&b, "P"), Status::Ok);
        assert_eq!(b.profiles[0].holders().count(), 0);
    }

    #[test]
    fn two_contended_profiles_raise_the_several_at_once_alert_and_sort_first() {
        let s = snapshot(
            0,
            vec![
                row("calm", "w0", 30),
                contended(row("A", "w1", 30), -5, -1, 1),
                contended(row("B", "w2", 30), -50, -1, 1),
            ],
        );
        let b = board_at(&s, 0);
        let several = b.alerts.iter().find_map(|a| match a {
            Alert::SeveralContended { profiles, .. } => Some(profiles.clone()),
            _ => None,
        });
        assert_eq!(several, Some(vec!["B".to_owned(), "A".to_owned()]));
        let order: Vec<&str> = b.profiles.iter().map(|p| p.profile.as_str()).collect();
        assert_eq!(
            order,
            ["B", "A", "calm"],
            "longest contended first, calm last"
        );
        assert!(b.escalated());
    }

    #[test]
    fn lock_waits_on_a_row_contend_its_profile_and_link_the_row_lock_holder() {
        let mut s = snapshot(0, vec![row("P", "token-x", 30)]);
        s.sessions.push(Session {
            pid: 42,
            application: Some("worker".into()),
            user: None,
            client_addr: None,
            state: Some("idle in transaction".into()),
            query: None,
            xact_start: None,
            backend_type: None,
            leader_pid: None,
        });
        s.waits.push(LockWait {
            pid: 43,
            blocked_by: vec![42],
            locktype: "transactionid".into(),
            mode: "ShareLock".into(),
            relation: Some("entry_locks".into()),
            relation_oid: Some(1),
            tuple: Some((0, 1)),
            advisory_key: None,
            transactionid: Some("777".into()),
            waitstart: Some(t(-3)),
            lease_row: Some((Some("P".into()), Some("SYM".into()))),
            waitstart_approx: false,
            on_lease_table: false,
        });
        let b = board_at(&s, 0);
        let p = &b.profiles[0];
        assert_eq!(p.status, Status::Contended);
        assert_eq!(p.waiters, 1);
        assert_eq!(
            p.rows[0].pid,
            Some(42),
            "the row lock's holder is linked to the row"
        );
        assert_eq!(b.waits[0].waiting_for(t(0)), Some(Duration::seconds(3)));
    }

    #[test]
    fn without_bookkeeping_an_observed_episode_escalates_after_90_seconds_of_waits() {
        let rules = Rules::default();
        let mut h = History::default();
        let waiting = |now: i64| {
            let mut s = snapshot(now, vec![row("P", "w", now + 30)]);
            s.leases[0].contention_count = None;
            s.waits.push(row_wait(2, 1));
            s
        };
        let mut last = Board {
            now: t(0),
            profiles: Vec::new(),
            waits: Vec::new(),
            alerts: Vec::new(),
            doubts: Vec::new(),
        };
        for now in (0..=100).step_by(10) {
            let s = waiting(now);
            record(&mut h, &s, &rules);
            last = evaluate(&s, &h, &rules, t(now));
        }
        assert_eq!(last.profiles[0].status, Status::Escalated);
        assert_eq!(
            last.profiles[0].contended_for(t(100)),
            Some(Duration::seconds(100))
        );
    }

    #[test]
    fn summarised_profiles_show_their_single_holder_and_keep_feeding_the_history() {
        let mut s = snapshot(0, vec![contended(row("hot", "w1", 30), -5, -1, 2)]);
        s.summaries = std::sync::Arc::new(vec![
            ProfileSummary {
                group: Some("calm".into()),
                rows: 1,
                held: 1,
                sample_key: Some("K".into()),
                sample_owner: Some("w9".into()),
                sample_acquired_at: Some(t(-10)),
                next_expiry: Some(t(20)),
                failure_total: Some(5),
                latest_contended_since: None,
            },
            ProfileSummary {
                group: Some("busy".into()),
                rows: 4,
                held: 3,
                sample_key: None,
                sample_owner: None,
                sample_acquired_at: None,
                next_expiry: Some(t(3)),
                failure_total: Some(0),
                latest_contended_since: None,
            },
        ]);
        let b = board_at(&s, 0);
        let calm = b
            .profiles
            .iter()
            .find(|p| p.profile == "calm")
            .expect("calm");
        assert_eq!(
            (calm.status, calm.detailed, calm.held_count),
            (Status::Ok, false, 1)
        );
        assert_eq!(
            calm.holders().next().and_then(|r| r.owner.as_deref()),
            Some("w9")
        );
        let busy = b
            .profiles
            .iter()
            .find(|p| p.profile == "busy")
            .expect("busy");
        assert_eq!(
            (busy.row_count, busy.held_count, busy.rows.len()),
            (4, 3, 0)
        );
        assert_eq!(status(&b, "hot"), Status::Contended);
    }

    #[test]
    fn a_summarised_profile_with_row_waits_keeps_its_holder() {
        let mut s = snapshot(0, Vec::new());
        s.summaries = std::sync::Arc::new(vec![ProfileSummary {
            group: Some("P".into()),
            rows: 1,
            held: 1,
            sample_key: Some("SYM".into()),
            sample_owner: Some("w1".into()),
            sample_acquired_at: Some(t(-5)),
            next_expiry: Some(t(25)),
            failure_total: Some(0),
            latest_contended_since: None,
        }]);
        s.waits.push(row_wait(9, 8));
        let b = board_at(&s, 0);
        assert_eq!(b.profiles.len(), 1);
        let p = &b.profiles[0];
        assert_eq!((p.status, p.waiters), (Status::Contended, 1));
        assert_eq!(
            p.holders().next().and_then(|r| r.owner.as_deref()),
            Some("w1")
        );
    }

    #[test]
    fn a_summarised_expiry_that_passed_means_renewed_not_expired() {
        let mut s = snapshot(0, Vec::new());
        s.summaries = std::sync::Arc::new(vec![ProfileSummary {
            group: Some("calm".into()),
            rows: 1,
            held: 1,
            sample_key: Some("K".into()),
            sample_owner: Some("w".into()),
            sample_acquired_at: Some(t(-40)),
            next_expiry: Some(t(-3)),
            failure_total: Some(0),
            latest_contended_since: None,
        }]);
        let b = board_at(&s, 0);
        assert_eq!(b.profiles[0].status, Status::Ok);
        assert_eq!(
            b.profiles[0].rows[0].ttl_remaining(t(0)),
            None,
            "unknown, not negative"
        );
        assert!(b.alerts.is_empty());
    }

    #[test]
    fn durations_read_like_the_screen() {
        assert_eq!(human_duration(Duration::seconds(45)), "45s");
        assert_eq!(human_duration(Duration::seconds(125)), "2m05s");
        assert_eq!(human_duration(Duration::seconds(3720)), "1h02m");
        assert_eq!(human_duration(Duration::seconds(-4)), "-4s");
    }
}
