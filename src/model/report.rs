//! The `snapshot --format json` document: the contract scripts and health checks rely on (DESIGN.md).
//!
//! Built from a [`Board`], so the JSON says exactly what the screen says.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::rules::{Alert, Board, ProfileView, RowView, Status, WaitView, display_value};
use super::service::{Health, ServiceProfile, ServiceView};
use super::snapshot::{AdvisoryKey, Visibility};

/// The whole JSON document.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub server_time: DateTime<Utc>,
    /// Where locktop looked (host and database; never a password).
    pub target: &'a str,
    pub visibility: Visibility,
    /// What locktop could not see or observe on this poll, in words.
    pub notes: Vec<String>,
    pub profiles: Vec<ProfileReport<'a>>,
    pub waits: Vec<WaitReport<'a>>,
    pub alerts: &'a [Alert],
    /// The service's health documents and failed endpoints, with `--metrics-url`/`--health-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceReport<'a>>,
    /// The database's own counters (absent when they could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseReport>,
}

/// The database's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DatabaseReport {
    /// `pg_stat_database.deadlocks`: since the server's statistics were last reset.
    pub deadlocks: i64,
    /// Since locktop started watching (0 for a single poll).
    pub deadlocks_since_start: i64,
}

/// What the service's endpoints said (per-profile figures are in each profile's `service`).
#[derive(Debug, Serialize)]
pub struct ServiceReport<'a> {
    pub health: &'a [Health],
    pub errors: &'a [String],
}

/// One profile in the report.
#[derive(Debug, Serialize)]
pub struct ProfileReport<'a> {
    pub profile: &'a str,
    pub status: Status,
    pub reasons: &'a [String],
    pub contended_for_s: Option<i64>,
    pub contention_count: i64,
    pub waiters: u32,
    pub holders: Vec<HolderReport<'a>>,
    /// The service's own figures for the profile (its metrics' `profile_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<&'a ServiceProfile>,
}

/// One held row of a profile.
#[derive(Debug, Serialize)]
pub struct HolderReport<'a> {
    pub key: &'a str,
    pub owner: Option<&'a str>,
    pub expires_at: Option<DateTime<Utc>>,
    pub ttl_remaining_s: Option<i64>,
    pub pid: Option<i32>,
    pub application: Option<&'a str>,
    /// The prepared transaction holding the row's lock (it has no pid), by gid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prepared: Option<&'a str>,
}

/// One waiting backend.
#[derive(Debug, Serialize)]
pub struct WaitReport<'a> {
    pub pid: i32,
    pub blocked_by: &'a [i32],
    pub mode: &'a str,
    pub locktype: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relation: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advisory_key: Option<AdvisoryKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<&'a str>,
    pub waiting_for_s: Option<i64>,
    /// `waiting_for_s` is an upper bound (PostgreSQL 13: from the waiter's query start).
    pub waiting_for_approx: bool,
    pub application: Option<&'a str>,
    /// The target's label when several databases are watched (pids are per server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<&'a str>,
    /// The waiter is a parallel worker of this leader.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_pid: Option<i32>,
    /// The wait is on a row of the lease table that could not be named (`profile` and `key` are absent).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lease_row_unnamed: bool,
    /// Prepared transactions among its blockers (`blocked_by` says 0 for them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocked_by_prepared: Vec<PreparedReport<'a>>,
}

/// A prepared transaction that blocks a waiter.
#[derive(Debug, Serialize)]
pub struct PreparedReport<'a> {
    pub gid: &'a str,
    pub owner: Option<&'a str>,
    pub database: Option<&'a str>,
    pub prepared_at: DateTime<Utc>,
    pub prepared_for_s: i64,
}

impl<'a> Report<'a> {
    /// The report of a board, with the notes the caller knows about (visibility, missing signals, errors).
    pub fn new(
        board: &'a Board,
        target: &'a str,
        visibility: Visibility,
        notes: Vec<String>,
    ) -> Self {
        let now = board.now;
        Self {
            server_time: now,
            target,
            visibility,
            notes,
            profiles: board
                .profiles
                .iter()
                .map(|p| profile_report(p, now))
                .collect(),
            waits: board.waits.iter().map(|w| wait_report(w, now)).collect(),
            alerts: &board.alerts,
            service: None,
            database: None,
        }
    }

    /// Adds the database's deadlock counter, and how many came since `baseline` (the first one seen).
    #[must_use]
    pub fn with_deadlocks(mut self, deadlocks: Option<i64>, baseline: Option<i64>) -> Self {
        self.database = deadlocks.map(|d| DatabaseReport {
            deadlocks: d,
            deadlocks_since_start: baseline.map_or(0, |b| (d - b).max(0)),
        });
        self
    }

    /// Adds what the service's endpoints said.
    #[must_use]
    pub fn with_service(mut self, view: &'a ServiceView) -> Self {
        for p in &mut self.profiles {
            p.service = view.profile(p.profile);
        }
        self.service = Some(ServiceReport {
            health: &view.health,
            errors: &view.errors,
        });
        self
    }
}

fn profile_report(p: &ProfileView, now: DateTime<Utc>) -> ProfileReport<'_> {
    ProfileReport {
        profile: &p.profile,
        status: p.status,
        reasons: &p.reasons,
        contended_for_s: p.contended_for(now).map(|d| d.num_seconds()),
        contention_count: p.contention_count,
        waiters: p.waiters,
        holders: p.holders().map(|r| holder_report(r, now)).collect(),
        service: None,
    }
}

fn holder_report(r: &RowView, now: DateTime<Utc>) -> HolderReport<'_> {
    HolderReport {
        key: display_value(r.key.as_deref()),
        owner: r.owner.as_deref(),
        expires_at: r.expires_at,
        ttl_remaining_s: r.ttl_remaining(now).map(|d| d.num_seconds()),
        pid: r.pid,
        application: r.application.as_deref(),
        prepared: r.prepared.as_deref(),
    }
}

fn wait_report(w: &WaitView, now: DateTime<Utc>) -> WaitReport<'_> {
    WaitReport {
        pid: w.wait.pid,
        blocked_by: &w.wait.blocked_by,
        mode: &w.wait.mode,
        locktype: &w.wait.locktype,
        relation: w.wait.relation.as_deref(),
        advisory_key: w.wait.advisory_key,
        profile: w.profile.as_deref(),
        key: w.key.as_deref(),
        waiting_for_s: w.waiting_for(now).map(|d| d.num_seconds()),
        waiting_for_approx: w.wait.waitstart_approx,
        application: w.application.as_deref(),
        target: w.target.as_deref(),
        leader_pid: w.leader,
        lease_row_unnamed: w.wait.on_lease_table && w.profile.is_none(),
        blocked_by_prepared: w
            .prepared
            .iter()
            .map(|p| PreparedReport {
                gid: &p.gid,
                owner: p.owner.as_deref(),
                database: p.database.as_deref(),
                prepared_at: p.prepared_at,
                prepared_for_s: (now - p.prepared_at).num_seconds(),
            })
            .collect(),
    }
}
