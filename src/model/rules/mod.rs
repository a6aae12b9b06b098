//! The runbook's rules: from a snapshot, the history and the server's `now`, each profile's status and the
//! reasons for it, and the alerts that tell the operator to escalate.
//!
//! - contended: a failed acquisition or a lock wait on the profile's rows within the last TTL;
//! - escalated: the contention episode is older than `escalate_after` (three TTL cycles), or a row has been
//!   expired for longer than one TTL while contention goes on;
//! - expired: a row past its expiry that its owner did not refresh or release (a dead owner);
//! - and, across profiles, an alert when two or more are contended at once.

//!
//! `view` holds what the rules give (statuses, rows, waits, alerts); `board` the board that holds them, with
//! the calm profiles it builds when asked for; `profile` judges one profile; `triggers` holds the runbook's
//! escalation triggers, one file each.

mod board;
mod profile;
pub mod triggers;
mod view;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use hashbrown::{HashMap, HashSet};

use super::history::{History, ProfileObservation, holders_fingerprint};
use super::order::natural_cmp;
use super::snapshot::{LeaseRow, PreparedXact, ProfileSummary, Session, Snapshot};
use board::{Basis, calm_place};
pub use board::{Board, Profiles};
use profile::{Counts, RowWaits, profile_view, row_view, summary_row, wait_view};
pub use view::{
    Alert, Failures, ProfileView, RowView, Status, WaitView, blocker_names, display_value,
    human_duration, sort_profiles,
};

/// The runbook's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Lease TTL: the window in which a failure counts as ongoing contention.
    pub ttl: Duration,
    /// Contention older than this escalates (the runbook's 90 s: three TTL cycles).
    pub escalate_after: Duration,
    /// A prepared transaction older than this that blocks anyone raises an alert.
    pub prepared_after: Duration,
    /// This many deadlocks within `deadlock_window` raise an alert (0: never).
    pub deadlock_burst: u32,
    pub deadlock_window: Duration,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            ttl: Duration::seconds(30),
            escalate_after: Duration::seconds(90),
            prepared_after: Duration::seconds(60),
            deadlock_burst: 3,
            deadlock_window: Duration::minutes(5),
        }
    }
}

/// What one poll contributes to the history, per profile: fed to [`History::record`]. A profile read in
/// detail is seen through its rows, any other through its summary; either way with the sessions waiting on
/// its rows.
pub fn observations(snapshot: &Snapshot) -> Vec<(&str, ProfileObservation)> {
    let (detailed, mut waiters) = apart(snapshot);
    let mut seen = Vec::with_capacity(detailed.len() + snapshot.summaries.len());
    for summary in snapshot.summaries.iter() {
        let name = display_value(summary.group.as_deref());
        if !detailed.contains_key(name) {
            seen.push((
                name,
                ProfileObservation {
                    failure_count: summary.failure_total,
                    episode_start: summary.latest_contended_since,
                    waiters: waiters.remove(name).unwrap_or(0),
                    // Who holds what is known from a summary only for a profile of one row.
                    holders: (summary.rows == 1)
                        .then_some(summary.sample_owner.as_deref())
                        .flatten()
                        .map(|o| holders_fingerprint([o])),
                },
            ));
        }
    }
    seen.extend(detailed);
    // Waits on a profile neither read nor summarised.
    seen.extend(waiters.into_iter().map(|(name, waiters)| {
        (
            name,
            ProfileObservation {
                waiters,
                ..ProfileObservation::default()
            },
        )
    }));
    seen
}

/// What a poll saw of the profiles apart from their summaries: those read in detail (with their waiters),
/// and the waiters on the rows of every other.
fn apart(snapshot: &Snapshot) -> (HashMap<&str, ProfileObservation>, HashMap<&str, u32>) {
    // Only the profiles read in detail and the waits go through maps: the summaries' tens of thousands of
    // profiles are each looked up once, not gathered into a map of their own.
    let mut detailed: HashMap<&str, ProfileObservation> = HashMap::new();
    for row in &snapshot.leases {
        let o = detailed
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
    let mut waiters: HashMap<&str, u32> = HashMap::new();
    for wait in &snapshot.waits {
        if let Some(row) = &wait.lease_row {
            *waiters
                .entry(display_value(row.group.as_deref()))
                .or_default() += 1;
        }
    }
    for (name, o) in &mut detailed {
        o.waiters = waiters.remove(name).unwrap_or(0);
    }
    (detailed, waiters)
}

/// Feeds one snapshot into the history (call once per poll, before [`evaluate`]). While the summaries are
/// those every profile was last fed from (they are taken every few seconds, not every poll), only the
/// profiles seen apart from them are fed: a profile known only from its summary would tell the history what
/// it told it then.
pub fn record(history: &mut History, snapshot: &Snapshot, rules: &Rules) {
    let pieces = snapshot.pieces();
    let summaries: Vec<&Arc<Vec<ProfileSummary>>> = pieces.iter().map(|p| &p.summaries).collect();
    if history.carries(&summaries) {
        let (detailed, waited): (Vec<_>, Vec<_>) = pieces.iter().map(|p| apart(p)).unzip();
        history.record_apart(
            snapshot.server_now,
            rules.ttl,
            detailed.into_iter().flatten(),
            waited.into_iter().flatten(),
        );
    } else {
        // Taken piece by piece as recorded, not gathered first: 50,000 observations are 3 MB a poll.
        history.record(
            snapshot.server_now,
            rules.ttl,
            pieces.iter().flat_map(|p| observations(p)),
        );
        history.carry(summaries.into_iter().cloned().collect());
    }
    history.record_deadlocks(
        snapshot.server_now,
        snapshot.deadlocks,
        rules.deadlock_window,
    );
}

/// Applies the rules to a snapshot at server time `now` (the snapshot's `server_now` plus the monotonic time
/// since it was taken), once: see [`Evaluator`] for poll after poll.
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
    Evaluator::once().evaluate(snapshot, history, rules, now)
}

/// The rules applied poll after poll (and again on the clock's tick), with work in proportion to what
/// changed. A calm profile known only from its summary is not judged into a view at all: the board holds it
/// as the place of its summary, in its place in the board's order, and builds its view when asked (see
/// [`Profiles`]). While the summaries, the sessions their owners link to and the time the rows were read at
/// stay the ones the places were found from (the summaries are taken every few seconds, and the clock's tick
/// and most polls come in between), only the profiles whose judgement could have changed are looked at: those
/// read in detail, waited on or seen contended now, and those that were not calm last time. Of 50,000
/// profiles, most are calm and summarised; the few that are contended, expired, waited on or read in detail
/// are judged anew every time (their reasons count the seconds). When what they were judged from changed,
/// every summary is looked at.
#[derive(Debug, Default)]
pub struct Evaluator {
    /// What the latest evaluation kept, per target (`None` for a single database); `None` for a one-off
    /// evaluation, which keeps nothing.
    kept: Option<HashMap<Option<String>, Kept>>,
    round: u64,
    /// Summaries the latest evaluation looked at.
    judged: usize,
    /// Builds every view at evaluation, calm or not (the tests' reference for the views built when asked).
    eager: bool,
}

/// What an evaluator keeps of one target's latest evaluation.
#[derive(Debug, Default)]
struct Kept {
    /// The calm summarised profiles, as the places of their summaries among `basis`'s, in the board's order:
    /// by name, since each is calm and was never contended.
    order: Vec<u32>,
    /// The other summarised profiles (not calm, or read in detail), with the places of their summaries.
    others: HashMap<Box<str>, usize>,
    /// What they were judged from.
    basis: Option<Arc<Basis>>,
    /// The evaluation that last used them.
    round: u64,
}

impl Evaluator {
    /// An evaluator that keeps the calm profiles' places from one evaluation to the next.
    pub fn new() -> Self {
        Self {
            kept: Some(HashMap::new()),
            ..Self::default()
        }
    }

    /// An evaluator for one evaluation: it keeps nothing.
    fn once() -> Self {
        Self::default()
    }

    /// An evaluator for one evaluation that builds every view as it judges it.
    #[cfg(test)]
    fn eager() -> Self {
        Self {
            eager: true,
            ..Self::default()
        }
    }

    /// The summaries the latest evaluation looked at: every one when what the views are judged from
    /// changed, else the few whose judgement could have (for the benchmarks and the tests).
    pub fn summaries_judged(&self) -> usize {
        self.judged
    }

    /// The board of `snapshot` at `now` (see [`evaluate`]).
    pub fn evaluate(
        &mut self,
        snapshot: &Snapshot,
        history: &History,
        rules: &Rules,
        now: DateTime<Utc>,
    ) -> Board {
        self.round += 1;
        self.judged = 0;
        let judge = Judge {
            history,
            rules,
            now,
            eager: self.eager,
        };
        let board = if snapshot.parts.is_empty() {
            let (board, looked) = evaluate_one(snapshot, &judge, None, self.kept_of(None));
            self.judged += looked;
            board
        } else {
            let (mut profiles, mut waits, mut doubts, mut prepared) =
                (Profiles::default(), Vec::new(), Vec::new(), Vec::new());
            for part in &snapshot.parts {
                let kept = self.kept_of(Some(&part.target));
                let (board, looked) =
                    evaluate_one(&part.snapshot, &judge, Some(&part.target), kept);
                self.judged += looked;
                profiles.append(board.profiles);
                waits.extend(board.waits);
                doubts.extend(
                    board
                        .doubts
                        .into_iter()
                        .map(|d| format!("{}: {d}", part.target)),
                );
                prepared.extend(part.snapshot.prepared.iter().cloned());
            }
            profiles.sort(now);
            Board {
                doubts,
                ..board(profiles, waits, &prepared, &judge)
            }
        };
        // What this evaluation did not use is gone (a target no longer watched).
        let round = self.round;
        if let Some(kept) = &mut self.kept {
            kept.retain(|_, k| k.round == round);
        }
        board
    }

    fn kept_of(&mut self, target: Option<&str>) -> Option<&mut Kept> {
        let round = self.round;
        self.kept.as_mut().map(|kept| {
            let k = kept.entry(target.map(str::to_owned)).or_default();
            k.round = round;
            k
        })
    }
}

/// What every profile is judged against: the history, the thresholds and the time.
#[derive(Clone, Copy)]
struct Judge<'a> {
    history: &'a History,
    rules: &'a Rules,
    now: DateTime<Utc>,
    /// Whether calm summarised profiles are built into views too (see [`Evaluator::eager`]).
    eager: bool,
}

impl Judge<'_> {
    /// The view of `profile` with these rows and counts, its rows read as of `as_of` (see [`profile_view`]);
    /// `read` is its name as read, which the view shares when it is the one shown.
    fn view(
        &self,
        (profile, read): (&str, Option<&Arc<str>>),
        rows: Vec<RowView>,
        counts: Counts,
        as_of: Option<DateTime<Utc>>,
    ) -> Arc<ProfileView> {
        let name = read
            .filter(|r| r.as_ref() == profile)
            .map_or_else(|| Arc::from(profile), Arc::clone);
        Arc::new(profile_view(
            name,
            rows,
            counts,
            self.history,
            self.rules,
            (self.now, as_of),
        ))
    }
}

/// The board of these profiles (in the runbook's order) and waits, with the alerts they and the blocking
/// prepared transactions raise.
fn board(
    profiles: Profiles,
    waits: Vec<WaitView>,
    prepared: &[PreparedXact],
    judge: &Judge<'_>,
) -> Board {
    let now = judge.now;
    // A calm profile raises nothing: the triggers look at the others.
    let judged: Vec<Arc<ProfileView>> = profiles.judged().cloned().collect();
    let alerts = triggers::fire(&triggers::Facts {
        profiles: &judged,
        prepared,
        rules: judge.rules,
        now,
        deadlocks_in_window: judge.history.deadlocks_in_window(),
    });
    Board {
        now,
        profiles,
        waits,
        alerts,
        doubts: Vec::new(),
    }
}

/// The waits on lease rows, by row and by profile.
struct OnRows<'a> {
    /// Row-lock waits per (profile, key), and who holds the row lock they wait for.
    rows: HashMap<(&'a str, &'a str), RowWaits>,
    /// Sessions waiting on a profile's rows.
    waiters: HashMap<&'a str, u32>,
    /// When the longest wait on a profile's rows began. A waiter on a profile's row has contended it since its
    /// wait began, whatever the bookkeeping says (the function that would record the failure is the one that
    /// waits).
    since: HashMap<&'a str, DateTime<Utc>>,
}

impl<'a> OnRows<'a> {
    fn of(waits: &'a [WaitView]) -> Self {
        let mut rows: HashMap<(&str, &str), RowWaits> = HashMap::new();
        let mut since: HashMap<&str, DateTime<Utc>> = HashMap::new();
        for w in waits {
            if let (Some(p), Some(k)) = (&w.profile, &w.key) {
                let e = rows.entry((p.as_str(), k.as_str())).or_default();
                e.waiters += 1;
                if w.wait.locktype == "transactionid" {
                    e.holder = e.holder.or(w.wait.blocked_by.first().copied());
                }
            }
            if let (Some(p), Some(start)) = (&w.profile, w.wait.waitstart) {
                let e = since.entry(p.as_str()).or_insert(start);
                *e = (*e).min(start);
            }
        }
        let mut waiters: HashMap<&str, u32> = HashMap::new();
        for ((p, _), tally) in &rows {
            *waiters.entry(p).or_default() += tally.waiters;
        }
        Self {
            rows,
            waiters,
            since,
        }
    }

    fn counts(&self, profile: &str, rows: usize, held: usize, detailed: bool) -> Counts {
        Counts {
            rows,
            held,
            waiters: self.waiters.get(profile).copied().unwrap_or(0),
            waiting_since: self.since.get(profile).copied(),
            detailed,
        }
    }
}

/// The board of one database's snapshot, and how many summaries it looked at.
fn evaluate_one(
    snapshot: &Snapshot,
    judge: &Judge<'_>,
    target: Option<&str>,
    kept: Option<&mut Kept>,
) -> (Board, usize) {
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
    let on_rows = OnRows::of(&waits);

    let mut groups: HashMap<&str, Vec<&LeaseRow>> = HashMap::new();
    for row in &snapshot.leases {
        groups
            .entry(display_value(row.group.as_deref()))
            .or_default()
            .push(row);
    }
    // A profile with waits but no rows read (only summarised, or rows hidden by a failed lease query) still
    // shows: from its summary when there is one, else with no rows.
    if !on_rows.rows.is_empty() {
        let summarised: HashSet<&str> = snapshot
            .summaries
            .iter()
            .map(|s| display_value(s.group.as_deref()))
            .collect();
        for (p, _) in on_rows.rows.keys() {
            if !summarised.contains(p) {
                groups.entry(p).or_default();
            }
        }
    }

    // The profiles read in detail: known only from its summary is every other.
    let detailed: HashSet<&str> = groups.keys().copied().collect();
    let mut profiles: Vec<Arc<ProfileView>> = groups
        .into_iter()
        .map(|(profile, read)| {
            let rows: Vec<RowView> = read
                .iter()
                .map(|r| row_view(profile, r, &on_rows.rows, &by_app, &sessions, &waits))
                .collect();
            let held = rows.iter().filter(|r| r.owner.is_some()).count();
            let counts = on_rows.counts(profile, rows.len(), held, true);
            let name_read = read.first().and_then(|r| r.group.as_ref());
            judge.view((profile, name_read), rows, counts, as_of)
        })
        .collect();
    let calm = Summarised {
        summaries: &snapshot.summaries,
        as_of,
        detailed: &detailed,
        on_rows: &on_rows,
        by_app: &by_app,
        judge,
    }
    .views(kept, &mut profiles);
    // They borrow the waits' names, which move into the board.
    drop((detailed, on_rows));
    let doubts = unattributed(&waits);
    sort_profiles(&mut profiles, judge.now);
    let profiles = Profiles::with_calm(profiles, &calm.places, &calm.basis);
    let board = Board {
        doubts,
        ..board(profiles, waits, &snapshot.prepared, judge)
    };
    (board, calm.looked)
}

/// What the profiles known only from their summaries are judged with: the rest of the poll.
struct Summarised<'a> {
    summaries: &'a Arc<Vec<ProfileSummary>>,
    as_of: Option<DateTime<Utc>>,
    /// The profiles read in detail, which show their rows instead.
    detailed: &'a HashSet<&'a str>,
    on_rows: &'a OnRows<'a>,
    by_app: &'a HashMap<&'a str, &'a Session>,
    judge: &'a Judge<'a>,
}

/// The calm summarised profiles of an evaluation.
struct Calm<'k> {
    /// The places of their summaries, by name.
    places: std::borrow::Cow<'k, [u32]>,
    /// What their views are built from.
    basis: Arc<Basis>,
    /// How many summaries the evaluation looked at.
    looked: usize,
}

/// A summarised profile judged.
enum Judged {
    /// Read in detail: its view is made of its rows.
    Detailed,
    /// Calm: its view is built when asked for, from the summary at this place.
    Calm(u32),
    /// Not calm (or calm, judged by an eager evaluator): its view.
    View(Arc<ProfileView>),
}

impl Summarised<'_> {
    /// The views of the summarised profiles that are not calm, put in `profiles`; and the calm ones (kept in
    /// `kept`, if any).
    fn views<'k>(
        &self,
        kept: Option<&'k mut Kept>,
        profiles: &mut Vec<Arc<ProfileView>>,
    ) -> Calm<'k> {
        let basis = || Arc::new(Basis::of(self.summaries, self.as_of, self.by_app));
        let Some(kept) = kept else {
            let (hot, places) = self.all(&mut HashMap::new());
            profiles.extend(hot);
            return Calm {
                places: std::borrow::Cow::Owned(places),
                basis: basis(),
                looked: self.summaries.len(),
            };
        };
        let held = kept
            .basis
            .as_ref()
            .filter(|b| b.holds(self.summaries, self.as_of, self.by_app));
        let (basis, looked) = if let Some(held) = held.cloned() {
            let (hot, looked) = self.changed(kept);
            profiles.extend(hot);
            (held, looked)
        } else {
            kept.others.clear();
            let (hot, places) = self.all(&mut kept.others);
            profiles.extend(hot);
            kept.order = places;
            let basis = basis();
            kept.basis = Some(Arc::clone(&basis));
            (basis, self.summaries.len())
        };
        Calm {
            places: std::borrow::Cow::Borrowed(kept.order.as_slice()),
            basis,
            looked,
        }
    }

    /// Every summarised profile judged: the views of those not calm, and the places of the calm ones by name.
    /// The places of those not calm (or read in detail) go in `others`.
    fn all(&self, others: &mut HashMap<Box<str>, usize>) -> (Vec<Arc<ProfileView>>, Vec<u32>) {
        let (mut hot, mut calm) = (Vec::new(), Vec::with_capacity(self.summaries.len()));
        for place in 0..self.summaries.len() {
            match self.judged(place) {
                Judged::Calm(place) => calm.push(place),
                Judged::Detailed => {
                    others.insert(Box::from(self.name(place)), place);
                }
                Judged::View(view) => {
                    others.insert(Box::from(self.name(place)), place);
                    hot.push(view);
                }
            }
        }
        // The summaries come in name order, as a rule: the sort finds them so.
        calm.sort_by(|&a, &b| natural_cmp(self.name(a as usize), self.name(b as usize)));
        (hot, calm)
    }

    /// The summarised profiles whose judgement could have changed since `kept`'s evaluation, which judged
    /// the same summaries with the same links (see [`Basis`]): those read in detail, waited on or seen
    /// contended now, and those not calm then. Every other stays calm in its place. The views not calm, and
    /// how many summaries were looked at.
    fn changed(&self, kept: &mut Kept) -> (Vec<Arc<ProfileView>>, usize) {
        let history = self.judge.history;
        let rules = self.judge.rules;
        let others = std::mem::take(&mut kept.others);
        let now_hot: HashSet<&str> = self
            .detailed
            .iter()
            .copied()
            .chain(self.on_rows.waiters.keys().copied())
            .chain(history.observed_within(self.judge.now, rules.ttl))
            .filter(|name| !others.contains_key(*name))
            .collect();
        // Each with where it is among the calm places, if it was calm.
        let places: Vec<(usize, Option<usize>)> = others
            .values()
            .map(|&place| (place, None))
            .chain(now_hot.iter().filter_map(|name| {
                let at = self.place_in(&kept.order, name).ok()?;
                Some((kept.order[at] as usize, Some(at)))
            }))
            .collect();
        let (mut hot, mut gone, mut come) = (Vec::new(), Vec::new(), Vec::new());
        for &(place, calm_at) in &places {
            let judged = self.judged(place);
            if let Some(at) = calm_at.filter(|_| !matches!(judged, Judged::Calm(_))) {
                gone.push(at);
            }
            match judged {
                Judged::Calm(place) => {
                    if calm_at.is_none() {
                        come.push(place);
                    }
                }
                Judged::Detailed => {
                    kept.others.insert(Box::from(self.name(place)), place);
                }
                Judged::View(view) => {
                    kept.others.insert(Box::from(self.name(place)), place);
                    hot.push(view);
                }
            }
        }
        self.reorder(&mut kept.order, gone, come);
        (hot, places.len())
    }

    /// The profile of the summary at `place` judged (with its owner's session and its counts).
    fn judged(&self, place: usize) -> Judged {
        let summary = &self.summaries[place];
        let Judge {
            history,
            rules,
            now,
            eager,
        } = *self.judge;
        let profile = display_value(summary.group.as_deref());
        if self.detailed.contains(profile) {
            return Judged::Detailed;
        }
        let counts = self.on_rows.counts(
            profile,
            usize::try_from(summary.rows).unwrap_or(0),
            usize::try_from(summary.held).unwrap_or(0),
            false,
        );
        // Calm now: no waiter, and no contention the monitor observed within a TTL (a summarised row never
        // reads as expired, and its summary carries no contention).
        let calm_now = counts.waiters == 0
            && history
                .observed_episode(profile)
                .is_none_or(|(_, last)| now - last > rules.ttl);
        if let Some(place) = calm_place(place).filter(|_| calm_now && !eager) {
            return Judged::Calm(place);
        }
        let linked = summary.sample_owner.as_deref().and_then(|owner| {
            self.by_app
                .get_key_value(owner)
                .map(|(app, session)| (*app, session.pid))
        });
        let rows = summary_row(summary, linked).into_iter().collect();
        Judged::View(
            self.judge
                .view((profile, summary.group.as_ref()), rows, counts, self.as_of),
        )
    }

    /// The name of the profile of the summary at `place`.
    fn name(&self, place: usize) -> &str {
        display_value(self.summaries[place].group.as_deref())
    }

    /// Where `name` is (or would go) among `order`, places of summaries by name.
    fn place_in(&self, order: &[u32], name: &str) -> Result<usize, usize> {
        order.binary_search_by(|&p| natural_cmp(self.name(p as usize), name))
    }

    /// Puts the calm places `order` (by name) right after those at `gone` (indexes into it) went and `come`
    /// came.
    fn reorder(&self, order: &mut Vec<u32>, mut gone: Vec<usize>, mut come: Vec<u32>) {
        if gone.is_empty() && come.is_empty() {
            return;
        }
        gone.sort_unstable();
        let mut at = gone.into_iter().peekable();
        let staying: Vec<u32> = std::mem::take(order)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| at.next_if_eq(i).is_none())
            .map(|(_, p)| p)
            .collect();
        come.sort_by(|&a, &b| natural_cmp(self.name(a as usize), self.name(b as usize)));
        let mut merged = Vec::with_capacity(staying.len() + come.len());
        let mut staying = staying.into_iter().peekable();
        for c in come {
            while let Some(s) = staying
                .next_if(|&s| natural_cmp(self.name(s as usize), self.name(c as usize)).is_lt())
            {
                merged.push(s);
            }
            merged.push(c);
        }
        merged.extend(staying);
        *order = merged;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::snapshot::{LockWait, Part, ProfileSummary, Session};
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
            locktype: "tuple".into(),
            lease_row: Some((Some("P".into()), Some("SYM".into())).into()),
            ..LockWait::for_tests(pid, vec![blocked_by])
        }
    }

    fn board_at(s: &Snapshot, now: i64) -> Board {
        let rules = Rules::default();
        let mut h = History::default();
        record(&mut h, s, &rules);
        let board = evaluate(s, &h, &rules, t(now));
        // Its calm profiles, built when asked for, are the views judging them gives.
        assert_eq!(board, eager(s, &h, &rules, t(now)));
        board
    }

    /// The board with every view built as it is judged: the reference for the views built when asked for.
    fn eager(s: &Snapshot, h: &History, rules: &Rules, now: DateTime<Utc>) -> Board {
        Evaluator::eager().evaluate(s, h, rules, now)
    }

    /// A session whose application name is `app`.
    pub(super) fn session(pid: i32, app: &str) -> Session {
        Session {
            pid,
            application: Some(app.into()),
            user: None,
            client_addr: None,
            state: Some("idle".into()),
            query: None,
            xact_start: None,
            state_change: None,
            wait_event: None,
            backend_type: None,
            leader_pid: None,
        }
    }

    fn summary(profile: &str, owner: Option<&str>, expires: i64) -> ProfileSummary {
        ProfileSummary {
            group: Some(profile.into()),
            rows: 2,
            held: i64::from(owner.is_some()),
            sample_key: Some("SYM".into()),
            sample_owner: owner.map(Arc::from),
            sample_acquired_at: Some(t(expires - 30)),
            next_expiry: Some(t(expires)),
            failure_total: Some(0),
            latest_contended_since: None,
        }
    }

    /// A tiny deterministic generator (xorshift), so that the sequence below is the same every run.
    struct Dice(u64);

    impl Dice {
        fn roll(&mut self, sides: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % sides
        }
    }

    /// Changes some of the summaries, as a refresh after a few polls of renewals and hand-overs does.
    fn refresh(dice: &mut Dice, at: i64, summaries: &mut [ProfileSummary]) {
        let owners = ["w1", "w2", "w3"];
        for s in summaries.iter_mut() {
            match dice.roll(24) {
                0 => *s = summary(s.group.as_deref().unwrap_or(""), None, at),
                1 => {
                    let owner = owners[dice.roll(3) as usize];
                    *s = summary(s.group.as_deref().unwrap_or(""), Some(owner), at + 30);
                }
                2 => s.next_expiry = Some(t(at + dice.roll(40) as i64 - 5)),
                3 => s.rows = 1 + dice.roll(3) as i64,
                // Another of its rows is taken, or another owner takes the row that expires first.
                4 if s.held > 0 => s.held = (1 + dice.roll(2) as i64).min(s.rows),
                5 if s.held > 0 => s.sample_owner = Some(owners[dice.roll(3) as usize].into()),
                _ => {}
            }
        }
    }

    /// One poll of a changing scene: calm summarised profiles, some read in detail, owners whose sessions come
    /// and go, waits on summarised profiles, contention observed, rows from an earlier poll. The summaries are
    /// taken anew one poll in four, as the mirror does between refreshes; the other polls share the last ones.
    fn changing(dice: &mut Dice, at: i64, summaries: &mut Arc<Vec<ProfileSummary>>) -> Snapshot {
        let owners = ["w1", "w2", "w3"];
        if dice.roll(4) == 0 {
            refresh(dice, at, Arc::make_mut(summaries).as_mut_slice());
        }
        let mut s = snapshot(at, Vec::new());
        s.summaries = Arc::clone(summaries);
        for (i, p) in summaries.iter().enumerate() {
            let name = p.group.as_deref().unwrap_or("");
            match dice.roll(160) {
                // Read in detail this poll: calm, or contended.
                0..=5 => s.leases.push(row(name, owners[i % 3], at + 10)),
                6 => s
                    .leases
                    .push(contended(row(name, "w1", at + 5), at - 20, at, 3)),
                // A session waits on its row (a summarised profile with a waiter).
                7 => s.waits.push(LockWait {
                    locktype: "tuple".into(),
                    waitstart: Some(t(at - 2)),
                    lease_row: Some((Some(name.into()), Some("SYM".into())).into()),
                    ..LockWait::for_tests(100 + i as i32, vec![7])
                }),
                _ => {}
            }
        }
        // Each owner's session comes and goes, and comes back as another backend.
        for (n, owner) in (0..).zip(owners) {
            if (at / 20 + i64::from(n)) % 3 > 0 {
                s.sessions
                    .push(session(10 + n + 3 * (at as i32 / 60), owner));
            }
        }
        if dice.roll(40) == 0 {
            s.leases_as_of = Some(t(at - 3));
        }
        s
    }

    #[test]
    fn an_evaluator_that_keeps_calm_places_gives_the_board_judging_every_view_gives() {
        let rules = Rules::default();
        let mut dice = Dice(0x9e37_79b9_7f4a_7c15);
        let summaries = |owner| -> Vec<ProfileSummary> {
            (0..16)
                .map(|i| summary(&format!("p{i}"), Some(owner), 40))
                .collect()
        };
        let (mut a, mut b) = (Arc::new(summaries("w1")), Arc::new(summaries("w2")));
        let (mut one, mut several) = (Evaluator::new(), Evaluator::new());
        let mut history = History::default();
        // Calm profiles the boards held unbuilt, with one database and with two; evaluations that looked at
        // only some of the summaries (the ones whose judgement could have changed).
        let (mut unbuilt, mut some) = ([0, 0], [0, 0]);
        for at in 10..400 {
            let two = at >= 300;
            let mut s = changing(&mut dice, at, &mut a);
            if two {
                // Two databases, with the same profile names: each has its own kept places.
                let other = changing(&mut dice, at, &mut b);
                s.parts = [("a", s.clone()), ("b", other)]
                    .map(|(target, snapshot)| Part {
                        target: target.into(),
                        snapshot,
                        down: None,
                        seen: true,
                    })
                    .into();
            }
            record(&mut history, &s, &rules);
            // The poll, then the clock's tick half a second later.
            for now in [t(at), t(at) + Duration::milliseconds(500)] {
                let evaluator = if two { &mut several } else { &mut one };
                let board = evaluator.evaluate(&s, &history, &rules, now);
                unbuilt[usize::from(two)] += board.profiles.len() - board.profiles.judged().count();
                assert_eq!(board, eager(&s, &history, &rules, now), "at {at}");
                let all = if two { 32 } else { 16 };
                some[usize::from(two)] += usize::from(evaluator.summaries_judged() < all);
            }
        }
        assert!(
            unbuilt[0] > 4_000 && unbuilt[1] > 1_600,
            "unbuilt: {unbuilt:?}"
        );
        assert!(some[0] > 400 && some[1] > 150, "looked at some: {some:?}");
    }

    #[test]
    fn between_refreshes_of_the_summaries_only_the_profiles_that_changed_are_looked_at() {
        let rules = Rules::default();
        let mut history = History::default();
        let mut e = Evaluator::new();
        let mut s = snapshot(10, Vec::new());
        s.summaries = Arc::new(
            (0..10_000)
                .map(|i| summary(&format!("p{i}"), Some("w1"), 40))
                .collect(),
        );
        s.sessions.push(session(42, "w1"));
        let judged = |e: &mut Evaluator, s: &Snapshot, h: &History, now| {
            let board = e.evaluate(s, h, &rules, t(now));
            assert_eq!(board, eager(s, h, &rules, t(now)), "at {now}");
            (e.summaries_judged(), board)
        };
        assert_eq!(judged(&mut e, &s, &history, 10).0, 10_000);
        // The clock's tick: nothing to look at.
        assert_eq!(judged(&mut e, &s, &history, 11).0, 0);
        // A session waits on p7's row: p7 is looked at, and again once it no longer waits.
        s.waits.push(LockWait {
            locktype: "tuple".into(),
            waitstart: Some(t(11)),
            lease_row: Some((Some("p7".into()), Some("SYM".into())).into()),
            ..LockWait::for_tests(43, vec![42])
        });
        record(&mut history, &s, &rules);
        let (n, waited) = judged(&mut e, &s, &history, 12);
        assert_eq!((n, waited.profiles[0].profile.as_ref()), (1, "p7"));
        assert_eq!(waited.profiles[0].status, Status::Contended);
        s.waits.clear();
        record(&mut history, &s, &rules);
        // Still contended while the contention it saw is within a TTL; calm again after.
        assert_eq!(judged(&mut e, &s, &history, 13).0, 1);
        let (n, calm) = judged(&mut e, &s, &history, 50);
        assert_eq!(n, 1);
        assert!(calm.profiles.iter().all(|p| p.status == Status::Ok));
        assert_eq!(judged(&mut e, &s, &history, 51).0, 0);
        // p9 is read in detail, then no longer.
        s.leases.push(row("p9", "w1", 60));
        assert_eq!(judged(&mut e, &s, &history, 52).0, 1);
        s.leases.clear();
        assert_eq!(judged(&mut e, &s, &history, 53).0, 1);
        assert_eq!(judged(&mut e, &s, &history, 54).0, 0);
        // The owner's session is another backend now, or the summaries are taken anew: every one.
        s.sessions[0].pid = 44;
        assert_eq!(judged(&mut e, &s, &history, 55).0, 10_000);
        s.summaries = Arc::new(s.summaries.to_vec());
        assert_eq!(judged(&mut e, &s, &history, 56).0, 10_000);
    }

    #[test]
    fn a_poll_with_the_summaries_of_the_last_feeds_the_history_only_the_profiles_seen_apart() {
        let rules = Rules::default();
        let mut history = History::with_capacity(5);
        let mut s = snapshot(10, Vec::new());
        s.summaries = Arc::new(
            (0..1_000)
                .map(|i| summary(&format!("p{i}"), Some("w1"), 40))
                .collect(),
        );
        record(&mut history, &s, &rules);
        assert_eq!(history.profiles_fed(), 1_000);
        // Polls with the same summaries: p3 read in detail, a session waiting on p7's row.
        s.leases.push(contended(row("p3", "w2", 50), 5, 11, 4));
        s.waits.push(LockWait {
            locktype: "tuple".into(),
            waitstart: Some(t(11)),
            lease_row: Some((Some("p7".into()), Some("SYM".into())).into()),
            ..LockWait::for_tests(43, vec![42])
        });
        for poll in 11..30 {
            s.server_now = t(poll);
            record(&mut history, &s, &rules);
            assert_eq!(history.profiles_fed(), 2, "poll {poll}");
        }
        // Every profile is still known, long after the window of five polls; p7's waiter is in its line.
        assert_eq!(history.tracked_profiles(), 1_000);
        assert_eq!(history.sparkline("p7", 3, 1), [Some(1); 3]);
        assert_eq!(history.sparkline("p1", 3, 1), [Some(0); 3]);
        assert!(history.observed_episode("p7").is_some());
        // Summaries taken anew, without p999: every profile is fed, and p999 is forgotten after the window.
        s.summaries = Arc::new(s.summaries[..999].to_vec());
        record(&mut history, &s, &rules);
        assert_eq!(history.profiles_fed(), 999);
        for poll in 31..37 {
            s.server_now = t(poll);
            record(&mut history, &s, &rules);
        }
        assert_eq!(history.tracked_profiles(), 999);
    }

    #[test]
    fn a_calm_summarised_profile_is_built_when_asked_for_with_its_summary_and_its_owners_session() {
        let rules = Rules::default();
        let history = History::default();
        let mut e = Evaluator::new();
        let mut s = snapshot(10, Vec::new());
        s.summaries = Arc::new(vec![summary("calm", Some("w1"), 40)]);
        let first = e.evaluate(&s, &history, &rules, t(10));
        // Judged calm, not built: its name, owner and expiry are read from the summary.
        assert_eq!(first.profiles.judged().count(), 0);
        assert_eq!(first.profiles.name(0), Some("calm"));
        assert!(first.profiles.any_text(0, |t| t == "w1"));
        assert_eq!(first.profiles.first_expiry(0), Some(t(40)));
        // Built when asked for, once.
        assert!(Arc::ptr_eq(&first.profiles[0], &first.profiles[0]));
        assert_eq!(first.profiles[0].rows[0].pid, None);
        // Its owner's session appears: the view links it.
        s.sessions.push(session(42, "w1"));
        let linked = e.evaluate(&s, &history, &rules, t(12));
        assert_eq!(linked.profiles[0].rows[0].pid, Some(42));
        // The renewal moves its expiry.
        s.summaries = Arc::new(vec![summary("calm", Some("w1"), 45)]);
        let renewed = e.evaluate(&s, &history, &rules, t(13));
        assert_eq!(renewed.profiles[0].rows[0].expires_at, Some(t(45)));
        // A waiter makes it contended, judged anew at every evaluation (its reason counts the seconds).
        s.waits.push(LockWait {
            locktype: "tuple".into(),
            waitstart: Some(t(12)),
            lease_row: Some((Some("calm".into()), Some("SYM".into())).into()),
            ..LockWait::for_tests(43, vec![42])
        });
        let waited = e.evaluate(&s, &history, &rules, t(14));
        assert_eq!(waited.profiles[0].status, Status::Contended);
        let later = e.evaluate(&s, &history, &rules, t(15));
        assert_eq!(later.profiles.judged().count(), 1);
        assert_eq!(
            &*later.profiles[0].reasons,
            ["contended for 3s: 1 waiting on row locks"]
        );
    }

    fn status(b: &Board, profile: &str) -> Status {
        b.profiles
            .iter()
            .find(|p| *p.profile == *profile)
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
        let order: Vec<&str> = b.profiles.iter().map(|p| p.profile.as_ref()).collect();
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
            state: Some("idle in transaction".into()),
            ..session(42, "worker")
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
            lease_row: Some((Some("P".into()), Some("SYM".into())).into()),
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
            profiles: Profiles::default(),
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
    fn summarised_profiles_show_the_holder_that_expires_first_and_keep_feeding_the_history() {
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
                sample_key: Some("ETH".into()),
                sample_owner: Some("w7".into()),
                sample_acquired_at: Some(t(-27)),
                next_expiry: Some(t(3)),
                failure_total: Some(0),
                latest_contended_since: None,
            },
        ]);
        let b = board_at(&s, 0);
        let calm = b
            .profiles
            .iter()
            .find(|p| &*p.profile == "calm")
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
            .find(|p| &*p.profile == "busy")
            .expect("busy");
        assert_eq!(
            (busy.row_count, busy.held_count, busy.rows.len()),
            (4, 3, 1),
            "the held row that expires first stands for the profile"
        );
        let first = busy.holders().next().expect("a holder");
        assert_eq!(
            (
                first.key.as_deref(),
                first.owner.as_deref(),
                first.expires_at
            ),
            (Some("ETH"), Some("w7"), Some(t(3)))
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
