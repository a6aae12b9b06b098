//! One profile's judgement: its rows as the operator sees them (linked to the backends that hold them), and its
//! status and reasons under the runbook's rules — contended, escalated past the limit, expired.

use std::sync::Arc;

use hashbrown::HashMap;

use chrono::{DateTime, Utc};

use super::super::history::History;
use super::super::order::natural_cmp;
use super::super::snapshot::{LeaseRow, LockWait, PreparedXact, ProfileSummary, Session};
use super::Rules;
use super::view::{
    Failures, ProfileView, RowView, Status, WaitView, display_value, human_duration,
};

/// The sessions waiting on one lease row, and who holds its row lock (the first blocker of a waiter on the
/// holder's transaction; pid 0 for a prepared transaction).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct RowWaits {
    pub(super) waiters: u32,
    pub(super) holder: Option<i32>,
}

pub(super) fn wait_view(
    w: &LockWait,
    sessions: &HashMap<i32, &Session>,
    prepared: &[PreparedXact],
) -> WaitView {
    let session = sessions.get(&w.pid);
    let (profile, key) = match &w.lease_row {
        Some(row) => (
            Some(display_value(row.group.as_deref()).to_owned()),
            Some(display_value(row.key.as_deref()).to_owned()),
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

pub(super) fn row_view(
    profile: &str,
    r: &LeaseRow,
    row_waits: &HashMap<(&str, &str), RowWaits>,
    by_app: &HashMap<&str, &Session>,
    sessions: &HashMap<i32, &Session>,
    waits: &[WaitView],
) -> RowView {
    let key = display_value(r.key.as_deref());
    let RowWaits {
        waiters,
        holder: row_lock_holder,
    } = row_waits.get(&(profile, key)).copied().unwrap_or_default();
    // pid 0: a prepared transaction holds the row lock; it is named by its gid instead.
    let prepared = (row_lock_holder == Some(0))
        .then(|| {
            waits
                .iter()
                .filter(|w| w.profile.as_deref() == Some(profile) && w.key.as_deref() == Some(key))
                .find_map(|w| w.prepared.first().map(|p| Box::from(p.gid.as_str())))
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
        application: linked.and_then(|s| s.application.as_deref().map(Box::from)),
        prepared,
        failures: Failures::of(r.contention_count, r.contended_since, r.last_contended_at),
        waiters,
        summarised: false,
    }
}

/// Row counts of a profile, known from its detail rows or from its summary.
#[derive(Clone, Copy)]
pub(super) struct Counts {
    pub(super) rows: usize,
    pub(super) held: usize,
    pub(super) waiters: u32,
    /// When the longest wait on its rows began.
    pub(super) waiting_since: Option<DateTime<Utc>>,
    pub(super) detailed: bool,
}

/// The row standing for a summarised profile: its held row that expires first (the summary names its key,
/// owner and acquisition). The screen says how many more it holds; the dashboard reads them all for the
/// profiles it shows expanded.
/// `linked`: the application name and pid of the session whose application name is the owner's.
pub(super) fn summary_row(s: &ProfileSummary, linked: Option<(&str, i32)>) -> Option<RowView> {
    if s.held == 0 {
        return None;
    }
    Some(RowView {
        key: s.sample_key.clone(),
        owner: s.sample_owner.clone(),
        expires_at: s.next_expiry,
        acquired_at: s.sample_acquired_at,
        pid: linked.map(|(_, pid)| pid),
        application: linked.map(|(app, _)| Box::from(app)),
        prepared: None,
        failures: None,
        waiters: 0,
        summarised: true,
    })
}

pub(super) fn profile_view(
    name: Arc<str>,
    mut rows: Vec<RowView>,
    counts: Counts,
    history: &History,
    rules: &Rules,
    (now, rows_as_of): (DateTime<Utc>, Option<DateTime<Utc>>),
) -> ProfileView {
    let profile = &*name;
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
        .filter(|r| recent(r.last_contended_at()))
        .collect();
    let contention_count: i64 = active.iter().filter_map(|r| r.contention_count()).sum();
    let waiters = counts.waiters;
    let observed = history
        .observed_episode(profile)
        .filter(|&(_, last)| now - last <= rules.ttl);

    let contended = !active.is_empty() || waiters > 0 || observed.is_some();
    let mut reasons = Vec::new();
    let mut status = Status::Ok;

    let episode_start = [
        // The bookkeeping knows when the episode started even if the monitor started later.
        active.iter().filter_map(|r| r.contended_since()).min(),
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
        profile: name,
        status,
        reasons: reasons.into(),
        // A contended profile always has an episode start: at the latest, now.
        contended_since: contended.then(|| episode_start.unwrap_or(now)),
        contention_count,
        waiters,
        rows: rows.into(),
        row_count: u32::try_from(counts.rows).unwrap_or(u32::MAX),
        held_count: u32::try_from(counts.held).unwrap_or(u32::MAX),
        detailed: counts.detailed,
        rows_as_of,
    }
}
