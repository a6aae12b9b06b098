//! The board: everything the screen and the report show of a snapshot. Its profiles are in the runbook's
//! order, most of them not built: of 50,000 profiles most are calm and known only from their summaries, and
//! the view of such a profile depends on nothing but its summary, the session its owner links to and the
//! time the summaries were read at. The board holds it as the place of its summary and builds its view the
//! first time it is asked for (a line on the page, a report), then keeps it. A board of 50,000 views built at
//! every refresh of the summaries, while the screen still held the last one, was a third of the dashboard's
//! live heap.

use std::ops::Index;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Duration, Utc};
use hashbrown::HashMap;

use super::super::order::natural_cmp;
use super::super::snapshot::{ProfileSummary, Session};
use super::profile::summary_row;
use super::view::{Alert, ProfileView, RowView, Status, WaitView, display_value};

/// Everything the screen and the JSON report show, computed once per snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Board {
    pub now: DateTime<Utc>,
    /// Most severe first, then longest contended, then by name (digit runs by value); a calm profile known
    /// only from its summary is built when asked for.
    pub profiles: Profiles,
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

/// What a calm summarised profile's view is built from: the summaries, the time the rows were read at, and
/// the pid of the session of each application name (a holder is linked to the session named after its
/// owner).
#[derive(Debug)]
pub(super) struct Basis {
    pub(super) summaries: Arc<Vec<ProfileSummary>>,
    pub(super) as_of: Option<DateTime<Utc>>,
    links: HashMap<Box<str>, i32>,
}

impl Basis {
    pub(super) fn of(
        summaries: &Arc<Vec<ProfileSummary>>,
        as_of: Option<DateTime<Utc>>,
        by_app: &HashMap<&str, &Session>,
    ) -> Self {
        Self {
            summaries: Arc::clone(summaries),
            as_of,
            links: by_app
                .iter()
                .map(|(app, s)| (Box::from(*app), s.pid))
                .collect(),
        }
    }

    /// Whether these are the things it holds (the very summaries, not equal ones).
    pub(super) fn holds(
        &self,
        summaries: &Arc<Vec<ProfileSummary>>,
        as_of: Option<DateTime<Utc>>,
        by_app: &HashMap<&str, &Session>,
    ) -> bool {
        Arc::ptr_eq(&self.summaries, summaries)
            && self.as_of == as_of
            && self.links.len() == by_app.len()
            && by_app
                .iter()
                .all(|(app, s)| self.links.get(*app) == Some(&s.pid))
    }

    /// The name of the profile of the summary at `place`.
    pub(super) fn name(&self, place: usize) -> &str {
        display_value(self.summaries[place].group.as_deref())
    }

    /// The summary at `place`, if its profile holds a row: the row standing for it is its sample (see
    /// [`summary_row`]), read here without making it.
    fn sample(&self, place: usize) -> Option<&ProfileSummary> {
        Some(&self.summaries[place]).filter(|s| s.held != 0)
    }

    /// The row standing for the profile of the summary at `place`, if it holds one.
    fn row(&self, place: usize) -> Option<RowView> {
        let s = &self.summaries[place];
        let linked = s
            .sample_owner
            .as_deref()
            .and_then(|owner| self.links.get_key_value(owner))
            .map(|(app, &pid)| (&**app, pid));
        summary_row(s, linked)
    }

    /// The view of the calm profile of the summary at `place`: what [`profile_view`](super::profile_view)
    /// gives a summarised profile with no waiter and no contention observed within a TTL (a summarised row
    /// never reads as expired, and a summary carries no failures).
    fn calm_view(&self, place: usize) -> ProfileView {
        let s = &self.summaries[place];
        let count = |n: i64| u32::try_from(usize::try_from(n).unwrap_or(0)).unwrap_or(u32::MAX);
        ProfileView {
            profile: s
                .group
                .clone()
                .unwrap_or_else(|| Arc::from(display_value(None))),
            status: Status::Ok,
            reasons: Box::default(),
            contended_since: None,
            contention_count: 0,
            waiters: 0,
            rows: self.row(place).into_iter().collect(),
            row_count: count(s.rows),
            held_count: count(s.held),
            detailed: false,
            rows_as_of: self.as_of,
        }
    }
}

/// The place of an entry judged at evaluation, whose view is built already.
const JUDGED: u32 = u32::MAX;

/// The place of a calm summarised profile in its board, if it can have one (every place short of
/// 4 billion).
pub(super) fn calm_place(place: usize) -> Option<u32> {
    u32::try_from(place).ok().filter(|&p| p != JUDGED)
}

/// A profile of the board: a view judged at evaluation, or a calm summarised profile (the place of its summary
/// in one of the board's [`Basis`]) with its view once built.
#[derive(Debug, Clone)]
struct Entry {
    view: OnceLock<Arc<ProfileView>>,
    place: u32,
    source: u32,
}

impl Entry {
    fn judged(view: Arc<ProfileView>) -> Self {
        Self {
            view: OnceLock::from(view),
            place: JUDGED,
            source: 0,
        }
    }

    fn calm(source: u32, place: u32) -> Self {
        Self {
            view: OnceLock::new(),
            place,
            source,
        }
    }
}

/// The board's profiles in the runbook's order: most severe first, then longest contended, then by name (digit
/// runs by value). A calm profile known only from its summary is built when first asked for (see the module's
/// doc); what the screen finds and orders profiles by ([`name`](Self::name),
/// [`any_text`](Self::any_text), [`first_expiry`](Self::first_expiry)) is read without building it.
#[derive(Clone, Default)]
pub struct Profiles {
    entries: Vec<Entry>,
    /// What the calm profiles are built from: one per database watched.
    sources: Vec<Arc<Basis>>,
}

impl Profiles {
    /// `views`, in the board's order, with the calm summarised profiles of `basis` (`calm`: the places of their
    /// summaries, by name) in their places: after every profile that is not calm or was contended, and by name
    /// among the rest.
    pub(super) fn with_calm(
        views: Vec<Arc<ProfileView>>,
        calm: &[u32],
        basis: &Arc<Basis>,
    ) -> Self {
        if calm.is_empty() {
            return views.into();
        }
        let quiet = |p: &ProfileView| p.status == Status::Ok && p.contended_since.is_none();
        let ahead = views.partition_point(|p| !quiet(p));
        let mut entries = Vec::with_capacity(views.len() + calm.len());
        let mut views = views.into_iter();
        entries.extend(views.by_ref().take(ahead).map(Entry::judged));
        let mut rest = calm;
        for p in views {
            let at =
                rest.partition_point(|&q| natural_cmp(basis.name(q as usize), &p.profile).is_lt());
            entries.extend(rest[..at].iter().map(|&place| Entry::calm(0, place)));
            rest = &rest[at..];
            entries.push(Entry::judged(p));
        }
        entries.extend(rest.iter().map(|&place| Entry::calm(0, place)));
        Self {
            entries,
            sources: vec![Arc::clone(basis)],
        }
    }

    /// Adds `other`'s profiles after these (the board of several databases, sorted after).
    pub(super) fn append(&mut self, other: Self) {
        let offset = self.sources.len() as u32;
        self.entries
            .extend(other.entries.into_iter().map(|e| Entry {
                source: e.source + offset,
                ..e
            }));
        self.sources.extend(other.sources);
    }

    /// Puts them in the runbook's order at `now` (see [`sort_profiles`](super::sort_profiles)).
    pub(super) fn sort(&mut self, now: DateTime<Utc>) {
        let key = |e: &Entry| -> (Status, Option<Duration>) {
            e.view
                .get()
                .map_or((Status::Ok, None), |v| (v.status, v.contended_for(now)))
        };
        let mut entries = std::mem::take(&mut self.entries);
        entries.sort_by(|a, b| {
            let (a_status, a_for) = key(a);
            let (b_status, b_for) = key(b);
            b_status
                .cmp(&a_status)
                .then_with(|| b_for.cmp(&a_for))
                .then_with(|| natural_cmp(self.entry_name(a), self.entry_name(b)))
        });
        self.entries = entries;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The view of the profile at `index`, built if it was not.
    pub fn get(&self, index: usize) -> Option<&Arc<ProfileView>> {
        self.entries.get(index).map(|e| self.view(e))
    }

    /// Every view, each built if it was not: for a whole report, not for a screen's page.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Arc<ProfileView>> {
        self.entries.iter().map(|e| self.view(e))
    }

    /// The views judged at evaluation: every profile but the calm summarised ones, in order. What the triggers,
    /// the statuses recorded and the metrics look at (a calm profile raises nothing).
    pub fn judged(&self) -> impl Iterator<Item = &Arc<ProfileView>> {
        self.entries
            .iter()
            .filter(|e| e.place == JUDGED)
            .filter_map(|e| e.view.get())
    }

    /// How many views are built: those judged, and the calm ones asked for since.
    pub fn built(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.view.get().is_some())
            .count()
    }

    /// The name of the profile at `index`.
    pub fn name(&self, index: usize) -> Option<&str> {
        self.entries.get(index).map(|e| self.entry_name(e))
    }

    /// Whether `found` holds for the name of the profile at `index`, or for the owner or key of one of its
    /// rows (what the filter looks through).
    pub fn any_text(&self, index: usize, found: impl Fn(&str) -> bool) -> bool {
        let texts = |r: &RowView| {
            r.owner.as_deref().is_some_and(&found) || r.key.as_deref().is_some_and(&found)
        };
        self.entries.get(index).is_some_and(|e| {
            if let Some(v) = e.view.get() {
                return found(&v.profile) || v.rows.iter().any(texts);
            }
            let basis = &self.sources[e.source as usize];
            found(basis.name(e.place as usize))
                || basis.sample(e.place as usize).is_some_and(|s| {
                    s.sample_owner.as_deref().is_some_and(&found)
                        || s.sample_key.as_deref().is_some_and(&found)
                })
        })
    }

    /// The first expiry of the rows the profile at `index` holds.
    pub fn first_expiry(&self, index: usize) -> Option<DateTime<Utc>> {
        let e = self.entries.get(index)?;
        match e.view.get() {
            Some(v) => v.holders().filter_map(|r| r.expires_at).min(),
            None => self.sources[e.source as usize]
                .sample(e.place as usize)
                .filter(|s| s.sample_owner.is_some())
                .and_then(|s| s.next_expiry),
        }
    }

    /// Failed acquisitions in the current episode of the profile at `index` (none for a calm one).
    pub fn contention_count(&self, index: usize) -> i64 {
        self.entries
            .get(index)
            .and_then(|e| e.view.get())
            .map_or(0, |v| v.contention_count)
    }

    fn view<'a>(&'a self, e: &'a Entry) -> &'a Arc<ProfileView> {
        e.view
            .get_or_init(|| Arc::new(self.sources[e.source as usize].calm_view(e.place as usize)))
    }

    fn entry_name<'a>(&'a self, e: &'a Entry) -> &'a str {
        match e.view.get() {
            Some(v) => &v.profile,
            None => self.sources[e.source as usize].name(e.place as usize),
        }
    }
}

impl From<Vec<Arc<ProfileView>>> for Profiles {
    /// Views judged already, in the board's order.
    fn from(views: Vec<Arc<ProfileView>>) -> Self {
        Self {
            entries: views.into_iter().map(Entry::judged).collect(),
            sources: Vec::new(),
        }
    }
}

impl Index<usize> for Profiles {
    type Output = Arc<ProfileView>;

    /// The view of the profile at `index`, built if it was not; panics past the end, as a slice does.
    fn index(&self, index: usize) -> &Self::Output {
        let len = self.len();
        self.get(index)
            .unwrap_or_else(|| panic!("profile {index} of a board of {len}"))
    }
}

impl<'a> IntoIterator for &'a Profiles {
    type Item = &'a Arc<ProfileView>;
    type IntoIter = Box<dyn Iterator<Item = &'a Arc<ProfileView>> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl PartialEq for Profiles {
    /// The same views in the same order, however many were built.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().zip(other.iter()).all(|(a, b)| a == b)
    }
}

impl Eq for Profiles {}

impl std::fmt::Debug for Profiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A board holds an entry for each of 50,000 profiles, two boards while a refresh replaces the last: a calm
    /// profile's takes 24 bytes (its view unbuilt, the place of its summary), where its view and row took two
    /// allocations of 112.
    #[test]
    fn a_calm_profiles_entry_takes_24_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 24);
    }

    /// What the screen finds and orders profiles by reads the same before a calm profile's view is built as
    /// after: its name, its held row's owner and key, and that row's expiry (none when it holds none).
    #[test]
    fn a_calm_profile_is_found_and_ordered_alike_built_or_not() {
        use crate::model::test_clock::t;
        let summaries: Vec<ProfileSummary> = (0..6_i64)
            .map(|i| ProfileSummary {
                group: (i != 5).then(|| format!("p{i}").into()),
                rows: 2,
                held: i64::from(i != 1),
                sample_key: (i != 2).then(|| "SYM".into()),
                sample_owner: (i != 3).then(|| format!("w{i}").into()),
                next_expiry: Some(t(10 + i)),
                ..ProfileSummary::default()
            })
            .collect();
        let session = super::super::tests::session(42, "w0");
        let by_app: HashMap<&str, &Session> = [("w0", &session)].into_iter().collect();
        let basis = Arc::new(Basis::of(&Arc::new(summaries), Some(t(5)), &by_app));
        let profiles = Profiles::with_calm(Vec::new(), &[0, 1, 2, 3, 4, 5], &basis);
        let read = |ps: &Profiles| -> Vec<_> {
            (0..ps.len())
                .map(|i| {
                    let found =
                        ["p", "w", "SYM", "NULL", "x"].map(|n| ps.any_text(i, |t| t.contains(n)));
                    (
                        ps.name(i).map(str::to_owned),
                        found,
                        ps.first_expiry(i),
                        ps.contention_count(i),
                    )
                })
                .collect()
        };
        let unbuilt = read(&profiles);
        assert_eq!(profiles.built(), 0);
        assert_eq!(profiles[0].rows[0].pid, Some(42));
        assert_eq!(profiles[5].profile.as_ref(), "NULL");
        assert!(profiles[1].rows.is_empty());
        for i in 0..profiles.len() {
            assert!(profiles.get(i).is_some());
        }
        assert_eq!(profiles.built(), 6);
        assert_eq!(read(&profiles), unbuilt);
        assert_eq!(unbuilt[1].2, None, "p1 holds no row");
        assert_eq!(unbuilt[3].2, None, "p3's row has no owner");
        assert_eq!(unbuilt[4].2, Some(t(14)));
    }
}
