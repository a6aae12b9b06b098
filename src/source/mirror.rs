//! The lease table as the dashboard last read it, kept in step by incremental polls.
//!
//! The first poll reads every row; each later one reads only the rows written since the previous poll's
//! snapshot (their `xmin`, see [`super::lease::ChangesRead`]), so a poll of a large table costs one scan on
//! the server and a transfer proportional to what changed. Three things a change read cannot see are caught
//! otherwise:
//! - deleted rows (and keys changed by an update): the read counts the table's rows; when the mirror holds more
//!   after applying the changes, the next read is of every row's name, and the rows no longer there go;
//! - a write of a subtransaction that began before the previous poll and committed after it (the snapshot
//!   lists running top-level transactions only): each poll also re-reads a slice of the table's pages, a sweep
//!   that covers the whole table every [`SWEEP_POLLS`] polls;
//! - anything else amiss (more rows on the server than here): the next read is of every row.
//!
//! A table too large to scan within the poll's budget (a large table, or one bloated behind a long transaction,
//! whose every scan reads the dead rows too) is read by windows instead ([`Next::Window`], PostgreSQL 14 and
//! later): each poll reads the pages added since the last one, where the new versions of updated rows go once
//! pages are full, and a window of the rest, sized to the budget, which sweeps the whole table in a cycle.
//! The sweep asks each page for the rows written since that page was last read (by the sweep or as a new
//! page), so it sends little more than what changed. A change then shows within a cycle at worst (a note
//! says how long one takes). Deleted rows cannot be seen on a page: a held row past its expiry (a dead owner
//! on screen) is looked up by its profile and key when it first looks expired and once a cycle after, and
//! goes when it is gone; every [`KEYS_CYCLES`] cycles, every row's name is read to drop the others.
//!
//! From the mirror each poll takes what the dashboard shows in detail (every row of the profiles that matter:
//! a failure within the TTL, a held row past its expiry, a profile in focus) and, now and then, one summary per
//! profile, computed here instead of by the server.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::lease::{Delta, RowName, XidMark};
use super::packed::{RowRef, Stamp};
use crate::model::LeaseRow;
use crate::model::snapshot::ProfileSummary;

/// Polls for the sweep to re-read every page once.
pub const SWEEP_POLLS: u64 = 60;

/// Rows a windowed read looks up at most (held rows past their expiry, to learn whether they are gone).
pub const CONFIRM_MAX: usize = 64;

/// Cycles of the sweep between two reads of every row's name, which drop the deleted rows a windowed read
/// cannot see.
pub const KEYS_CYCLES: u32 = 10;

/// The fewest pages a window sweeps, however slow the server.
pub const MIN_WINDOW: u64 = 8;

/// The pages before those added since the last read that a read of the added ones reads again, for the rows
/// written on them since (see `Window::recent`): a page is read while it still has room (the last page of the
/// table, or, from PostgreSQL 16, any of the up to 64 pages a busy table is extended by at once), and a row
/// written on it later was found only by the sweep, a cycle later (minutes, on a large table).
pub const RECENT_PAGES: u64 = 64;

/// Passes of the sweep over the pages a build by windows began with before the copy is shown: the first
/// reads every row there is, the second the rows that moved (an update writes the new version where there is
/// room) onto pages the first had already read.
pub const BUILD_CYCLES: u32 = 2;

/// A tail beyond any table (PostgreSQL's largest block number): a read of the sweep alone.
pub const NO_TAIL: u64 = 0xFFFF_FFFE;

/// One lease row of the mirror (its profile is the map's key): 48 bytes, where its times as
/// `Option<DateTime<Utc>>` and its bookkeeping inline made 96, and its key as a shared name 56 (200,000 rows
/// at 50,000 profiles, four to a profile's list). A profile's bounds ([`Rows`]) keep their times the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    /// By its number among the table's keys ([`Keys`]): a table has few distinct keys (symbols) across many
    /// profiles.
    key: Key,
    /// Shared with the aggregates and the views taken from the row.
    owner: Option<Arc<str>>,
    expires_at: Stamp,
    acquired_at: Stamp,
    /// `None` when the row has none of it (a table without the columns).
    contention: Option<Arc<Contention>>,
}

/// A row's failure bookkeeping. Most rows are calm (a count of 0, no episode) and share the mirror's one
/// calm value; the others have their own.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Contention {
    count: Option<i64>,
    since: Stamp,
    last: Stamp,
}

impl Default for Contention {
    /// The calm value.
    fn default() -> Self {
        Self {
            count: Some(0),
            since: Stamp::NONE,
            last: Stamp::NONE,
        }
    }
}

/// A key's number among the mirror's [`Keys`]; [`Key::NONE`] for a row without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key(u32);

impl Key {
    const NONE: Self = Self(u32::MAX);
}

/// The table's keys, each once, by number: a row holds its key's number, 4 bytes where the shared name took 16.
#[derive(Debug, Default)]
struct Keys {
    names: Vec<Arc<str>>,
    numbers: HashMap<Arc<str>, u32>,
}

impl Keys {
    /// The number of `key`, given one if it is new.
    fn number(&mut self, key: Option<&str>) -> Key {
        let Some(key) = key else {
            return Key::NONE;
        };
        if let Some(&n) = self.numbers.get(key) {
            return Key(n);
        }
        // Fewer distinct keys than 4 billion: the mirror of one row each would not fit in memory. Were there
        // more, the last number would stand for every later key, which is not named again.
        let last = Key::NONE.0 - 1;
        let n = u32::try_from(self.names.len()).map_or(last, |n| n.min(last));
        if n == last && self.names.len() > last as usize {
            return Key(n);
        }
        let name: Arc<str> = Arc::from(key);
        self.names.push(Arc::clone(&name));
        self.numbers.insert(name, n);
        Key(n)
    }

    /// The name of the key numbered `key`.
    fn name(&self, key: Key) -> Option<&Arc<str>> {
        self.names.get(key.0 as usize)
    }

    /// The name of the key numbered `key`, as text.
    fn text(&self, key: Key) -> Option<&str> {
        self.name(key).map(|k| &**k)
    }
}

/// The owner tokens of the mirror's rows, each once: a worker's token is shared by every row it holds (its
/// profile's symbols, or many profiles), one allocation where each row had its own, and the aggregates and
/// views taken from the rows share it too. A token no row holds any more is let go when the tokens have
/// doubled since they were last counted, so tokens that come and go (one for each acquisition) cost at most
/// twice what is held. Where the count finds fewer than three holders for two tokens, the table costs more
/// than it saves (a token for each row, as on the scale bench's scene: 4.4 MB at 200,000 rows), and each row
/// has its own token from then on.
#[derive(Debug, Default)]
struct Owners {
    tokens: HashSet<Arc<str>, foldhash::fast::RandomState>,
    /// The tokens held when last counted.
    counted: usize,
    /// Tokens are not shared: each row has its own.
    apart: bool,
}

impl Owners {
    /// Tokens below which none are counted (they cost less than counting them).
    const KEPT: usize = 1024;

    /// The token `owner`, shared with what holds it already.
    fn token(&mut self, owner: &str) -> Arc<str> {
        if self.apart {
            return Arc::from(owner);
        }
        if let Some(token) = self.tokens.get(owner) {
            return Arc::clone(token);
        }
        if self.tokens.len() >= 2 * self.counted.max(Self::KEPT) {
            // Held by the set alone: by no row, aggregate or view.
            self.tokens.retain(|t| Arc::strong_count(t) > 1);
            let holders: usize = self.tokens.iter().map(|t| Arc::strong_count(t) - 1).sum();
            if 2 * holders < 3 * self.tokens.len() {
                self.apart = true;
                self.tokens = HashSet::default();
            }
            self.counted = self.tokens.len();
        }
        let token: Arc<str> = Arc::from(owner);
        if !self.apart {
            self.tokens.insert(Arc::clone(&token));
        }
        token
    }
}

impl Row {
    fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.expires_at.get()
    }

    fn contention_count(&self) -> Option<i64> {
        self.contention.as_ref().and_then(|c| c.count)
    }

    fn contended_since(&self) -> Option<DateTime<Utc>> {
        self.contention.as_ref().and_then(|c| c.since.get())
    }

    fn last_contended_at(&self) -> Option<DateTime<Utc>> {
        self.contention.as_ref().and_then(|c| c.last.get())
    }

    /// Takes the times and bookkeeping of `row` (read anew: a renewal, or a row changed otherwise); a calm
    /// row shares `calm`.
    fn set_times(&mut self, row: &RowRef<'_>, calm: &Arc<Contention>) {
        self.expires_at = row.expires_at;
        self.acquired_at = row.acquired_at;
        let c = Contention {
            count: row.contention_count,
            since: row.contended_since,
            last: row.last_contended_at,
        };
        if c.count.is_none() && c.since == Stamp::NONE && c.last == Stamp::NONE {
            self.contention = None;
        } else if c == **calm {
            self.contention = Some(Arc::clone(calm));
        } else if self.contention.as_deref() != Some(&c) {
            self.contention = Some(Arc::new(c));
        }
    }
}

/// A profile's rows in key order, and what tells whether the profile matters without reading each row: the
/// latest failure of any row and the first expiry of a held row, kept with every change. Finding the profiles
/// that matter then reads one entry of the map per profile (50,000), not every row (200,000, each a line of
/// memory of its own).
#[derive(Debug, Default)]
struct Rows {
    list: Vec<Row>,
    last_contended_at: Stamp,
    first_held_expiry: Stamp,
}

impl Rows {
    /// Takes the bounds again after a change of the rows.
    fn changed(&mut self) {
        // Stamps order as the times they stand for, and none (the least) is no bound.
        self.last_contended_at = self
            .list
            .iter()
            .filter_map(|r| r.contention.as_ref().map(|c| c.last))
            .max()
            .unwrap_or(Stamp::NONE);
        self.first_held_expiry = self
            .list
            .iter()
            .filter(|r| r.owner.is_some() && r.expires_at != Stamp::NONE)
            .map(|r| r.expires_at)
            .min()
            .unwrap_or(Stamp::NONE);
    }

    /// Whether a row failed an acquisition since `recent`, or a held row is past its expiry at `now`. Asked
    /// of every profile each poll: stamps, compared as they are (making a time of each was most of it).
    fn matters(&self, recent: Stamp, now: Stamp) -> bool {
        (self.last_contended_at != Stamp::NONE && self.last_contended_at >= recent)
            || (self.first_held_expiry != Stamp::NONE && self.first_held_expiry <= now)
    }
}

impl std::ops::Deref for Rows {
    type Target = [Row];

    fn deref(&self) -> &[Row] {
        &self.list
    }
}

/// A profile's name borrowed, to look it up among the mirror's own: it hashes as `Option<Arc<str>>` does
/// (`Option<&str>` and `Option<Arc<str>>` hash alike), so a poll's rows need no copy of their names.
#[derive(Debug, Hash)]
struct Group<'a>(Option<&'a str>);

impl indexmap::Equivalent<Option<Arc<str>>> for Group<'_> {
    fn equivalent(&self, key: &Option<Arc<str>>) -> bool {
        self.0 == key.as_deref()
    }
}

/// How a table too large to scan every poll is read: the pages added since the last read, and a window of a
/// sweep over the rest.
#[derive(Debug, Clone)]
struct Window {
    /// Pages the sweep reads each poll.
    pages: u64,
    /// The sweep's next page.
    at: u64,
    /// The table's size in pages at the last read: the next read takes every page from there on.
    tail: u64,
    /// Held rows past their expiry to look up (those not found are gone), each once in the order they were
    /// found, and those that looked so at the last read.
    confirm: indexmap::IndexSet<RowName>,
    expired: BTreeSet<RowName>,
    /// The last read ended a cycle of the sweep.
    cycle_done: bool,
    /// When each page was last read, as the mark of that read: a piece from each key to the next. A row
    /// older than its page's mark was read then; the sweep asks a window for the rows written since the
    /// oldest mark in it.
    read_at: BTreeMap<u64, XidMark>,
    /// Complete cycles of the sweep.
    cycles: u32,
    /// The server's time at the last read, and the seconds between reads (smoothed).
    last_read: Option<DateTime<Utc>>,
    between: f64,
}

impl Window {
    /// A sweep of windows of `pages` (at least [`MIN_WINDOW`]) from the first page, on a table of `tail`
    /// pages read as of `mark`.
    fn new(pages: u64, tail: u64, mark: XidMark) -> Self {
        Self {
            pages: pages.max(MIN_WINDOW),
            at: 0,
            tail,
            confirm: indexmap::IndexSet::new(),
            expired: BTreeSet::new(),
            cycle_done: false,
            read_at: BTreeMap::from([(0, mark)]),
            cycles: 0,
            last_read: None,
            between: 0.0,
        }
    }

    /// The pages `[from, to)` were read as of `mark`.
    fn mark_read(&mut self, from: u64, to: u64, mark: &XidMark) {
        if from >= to {
            return;
        }
        let after = self.mark_at(to);
        let inside: Vec<u64> = self.read_at.range(from..to).map(|(k, _)| *k).collect();
        for k in inside {
            self.read_at.remove(&k);
        }
        // Pieces next to each other with one mark are one piece.
        if from == 0 || self.mark_at(from).as_ref() != Some(mark) {
            self.read_at.insert(from, mark.clone());
        }
        if to != u64::MAX
            && let Some(after) = after.filter(|a| a != mark)
        {
            self.read_at.entry(to).or_insert(after);
        }
    }

    /// The mark of the piece `page` is in.
    fn mark_at(&self, page: u64) -> Option<XidMark> {
        self.read_at
            .range(..=page)
            .next_back()
            .map(|(_, m)| m.clone())
    }

    /// Where a read of the pages added since the last read begins: [`RECENT_PAGES`] before them, as the
    /// pages at the end may have had room at that read, and later rows on them were not read; and the
    /// mark the rows of that read and of the sweep's pages `sweep` are asked for since (the oldest among
    /// them), so that only what was written since comes back from the pages read before.
    fn recent(&self, sweep: (u64, u64)) -> (XidMark, u64) {
        let tail = self.tail_read_from();
        let since = std::iter::once(self.oldest(tail, u64::MAX))
            .chain((sweep.0 < sweep.1).then(|| self.oldest(sweep.0, sweep.1)))
            .min_by(XidMark::age_order)
            .unwrap_or_default();
        (since, tail)
    }

    /// The first page a read of the pages added since the last read reads (see [`Window::recent`]), and so the
    /// first it marks read.
    fn tail_read_from(&self) -> u64 {
        self.tail.saturating_sub(RECENT_PAGES)
    }

    /// The oldest mark among the pages `[from, to)`.
    fn oldest(&self, from: u64, to: u64) -> XidMark {
        let first = self.mark_at(from);
        first
            .into_iter()
            .chain(
                self.read_at
                    .range(from + 1..to.max(from + 1))
                    .map(|(_, m)| m.clone()),
            )
            .min_by(XidMark::age_order)
            .unwrap_or_default()
    }
}

/// What the next incremental read asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Every row (the first read, or after the mirror lost step).
    All,
    /// The rows changed since this mark, and a sweep of pages `(from, to)`.
    Since(XidMark, (u64, u64)),
    /// A windowed read: the pages from `tail` on, the sweep's pages `(from, to)`, and rows to look up.
    Window {
        since: XidMark,
        tail: u64,
        sweep: (u64, u64),
        confirm: Vec<RowName>,
    },
}

/// The mirror of the lease table.
#[derive(Debug, Default)]
pub struct Mirror {
    /// By profile, each profile's rows in key order. Hashed: a poll puts tens of thousands of rows. Its
    /// entries are kept in name order for the summaries (which walk them in order instead of sorting 50,000
    /// names each time), put back in order when a profile came or went (see `in_order`).
    /// The names are shared with the aggregates and the views taken from them.
    profiles: indexmap::IndexMap<Option<Arc<str>>, Rows, foldhash::fast::RandomState>,
    /// Whether a profile came or went out of name order since the entries were last sorted.
    out_of_order: bool,
    keys: Keys,
    owners: Owners,
    /// The bookkeeping of a calm row, shared by all of them.
    calm: Arc<Contention>,
    rows: usize,
    mark: Option<XidMark>,
    /// The next page of the sweep, and the table's size in pages at the last read.
    sweep_at: u64,
    pages: u64,
    /// Deleted rows to drop: the next poll reads every row's name.
    drop_deleted: bool,
    /// The mirror lost step: the next poll reads every row.
    reread: bool,
    /// A windowed table's sweep is read apart from the polls.
    sweep_apart: bool,
    /// Rows applied since the summaries were last taken.
    changed_since_summaries: bool,
    /// Read by windows: the table is too large to scan every poll.
    window: Option<Window>,
    /// Being built by windows from nothing (see [`Mirror::build_by_windows`]), not shown until the sweep has
    /// gone [`BUILD_CYCLES`] times over the pages the build began with: their count, where the sweep's cycles
    /// end meanwhile (the pages added since were read as they came, by the polls' reads of new pages).
    building: Option<u64>,
    /// The build ended and the poller has not been told yet (see [`Mirror::take_built`]).
    just_built: bool,
    /// Built by windows: read by windows for good, as a read of every row did not fit (a sweep of the whole
    /// table within the budget, which sends only what changed, says nothing of a read that sends every row).
    by_windows_only: bool,
}

impl Mirror {
    /// What the next read asks for.
    pub fn next(&self) -> Next {
        if let Some(w) = self.window.as_ref().filter(|_| !self.reread) {
            // With the sweep read apart (after the poll), the poll's read is the new pages and the lookups.
            let sweep = if self.sweep_apart {
                (w.at, w.at)
            } else {
                (w.at, w.at + w.pages)
            };
            let (since, tail) = w.recent(sweep);
            return Next::Window {
                since,
                tail,
                sweep,
                confirm: w.confirm.iter().take(CONFIRM_MAX).cloned().collect(),
            };
        }
        match &self.mark {
            Some(mark) if !self.reread => {
                let step = self.pages.div_ceil(SWEEP_POLLS).max(1);
                Next::Since(mark.clone(), (self.sweep_at, self.sweep_at + step))
            }
            _ => Next::All,
        }
    }

    /// The read of the sweep's next window on its own, when it is read apart from the polls (see
    /// [`Mirror::set_sweep_apart`]): `None` when the table is not read by windows.
    pub fn next_sweep(&self) -> Option<Next> {
        let w = self
            .window
            .as_ref()
            .filter(|_| self.sweep_apart && !self.reread)?;
        Some(Next::Window {
            since: w.oldest(w.at, w.at + w.pages),
            tail: NO_TAIL,
            sweep: (w.at, w.at + w.pages),
            confirm: Vec::new(),
        })
    }

    /// The read of the pages added since the last read, on their own, between polls (see
    /// [`Mirror::apply_new_pages`]): `None` when the table is not read by windows apart from the polls.
    pub fn next_new_pages(&self) -> Option<Next> {
        let w = self
            .window
            .as_ref()
            .filter(|_| self.sweep_apart && !self.reread)?;
        let (since, tail) = w.recent((w.at, w.at));
        Some(Next::Window {
            since,
            tail,
            sweep: (w.at, w.at),
            confirm: Vec::new(),
        })
    }

    /// Applies the read of the pages added since the last read ([`Mirror::next_new_pages`]), made between
    /// two polls: the next poll reads from where it ended, so that it reads the changes of the moments
    /// since, not of a whole interval. The polls' own bookkeeping (the lookups, the time between them, on
    /// which the sweep's windows are sized) does not move.
    pub fn apply_new_pages<'a>(
        &mut self,
        rows: impl ExactSizeIterator<Item = RowRef<'a>>,
        Delta { mark, pages, .. }: Delta,
    ) {
        let Some(mut w) = self.window.take() else {
            return;
        };
        self.changed_since_summaries |= rows.len() > 0;
        for row in rows {
            self.put(row);
        }
        w.mark_read(w.tail_read_from(), u64::MAX, &mark);
        w.tail = pages;
        self.pages = pages;
        self.window = Some(w);
    }

    /// Reads the sweep's windows apart from the polls ([`Mirror::next_sweep`], [`Mirror::apply_sweep`]), in
    /// the time between them: a poll then reads only the pages added since the last one and the lookups, so
    /// that the sweep's share of the table (sized to the budget) does not lengthen every poll.
    pub fn set_sweep_apart(&mut self, apart: bool) {
        self.sweep_apart = apart;
    }

    /// Whether the next poll must also read every row's name, to drop deleted rows.
    pub fn needs_keys(&self) -> bool {
        self.drop_deleted
    }

    /// The read of every row's name did not complete: try again in [`KEYS_CYCLES`] cycles.
    pub fn retain_later(&mut self) {
        self.drop_deleted = false;
    }

    /// Rows in the mirror.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether the mirror holds no row.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Applies a read: every row (then the mirror is replaced) or the changes since the last one.
    pub fn apply<'a>(&mut self, rows: impl ExactSizeIterator<Item = RowRef<'a>>, read: Delta) {
        if read.all {
            self.profiles.clear();
            self.out_of_order = false;
            self.rows = 0;
            self.reread = false;
            self.window = None;
            self.drop_deleted = false;
            self.sweep_at = 0;
        } else {
            let step = self.pages.div_ceil(SWEEP_POLLS).max(1);
            self.sweep_at += step;
            if self.sweep_at >= read.pages {
                self.sweep_at = 0;
            }
        }
        self.changed_since_summaries |= read.all || rows.len() > 0;
        for row in rows {
            self.put(row);
        }
        self.pages = read.pages;
        self.mark = Some(read.mark);
        let total = usize::try_from(read.total).unwrap_or(0);
        if self.rows > total {
            self.drop_deleted = true;
        } else if self.rows < total {
            tracing::warn!(
                mirror = self.rows,
                table = total,
                "the lease mirror lost step; reading every row"
            );
            self.reread = true;
        }
    }

    /// Keeps only the rows named (every row's name, read after a deletion).
    pub fn retain(&mut self, names: &[(Option<String>, Option<String>)]) {
        let mut present: HashSet<(Option<&str>, Option<&str>)> = HashSet::new();
        for (g, k) in names {
            present.insert((g.as_deref(), k.as_deref()));
        }
        let mut rows = 0;
        let keys = &self.keys;
        self.profiles.retain(|group, rows_of| {
            let before = rows_of.len();
            rows_of
                .list
                .retain(|r| present.contains(&(group.as_deref(), keys.text(r.key))));
            if rows_of.len() < before {
                rows_of.changed();
            }
            rows += rows_of.len();
            !rows_of.is_empty()
        });
        self.rows = rows;
        self.drop_deleted = false;
        self.changed_since_summaries = true;
    }

    /// Reads by windows from the next poll on, sweeping `pages` a poll: the last read (of the changes since
    /// the one before, over the whole table) took longer than the budget. The mirror is exact now.
    /// A table of at most twice the smallest window is always scanned whole (a slow moment of the server is
    /// no reason to window a few pages).
    pub fn start_window(&mut self, pages: u64) {
        let Some(mark) = self.mark.clone().filter(|_| !self.reread) else {
            return;
        };
        if self.pages <= 2 * MIN_WINDOW {
            return;
        }
        tracing::info!(
            table_pages = self.pages,
            window = pages,
            "the lease table is too large to scan every poll; reading it by windows"
        );
        self.window = Some(Window::new(pages, self.pages, mark));
        self.drop_deleted = false;
    }

    /// Builds the mirror by windows, from nothing, on a table of `pages` whose first read of every row did
    /// not fit the statement timeout (a large table, or one bloated behind a long transaction): every page
    /// is marked as never read, so the sweep reads all of each page's rows, and the polls read the pages
    /// added from the last [`RECENT_PAGES`] of these on. Until [`Mirror::building`] ends, the dashboard
    /// shows the server's aggregates instead.
    pub fn build_by_windows(&mut self, pages: u64) {
        tracing::info!(
            table_pages = pages,
            "the lease table is too large to read whole in one poll; building its copy by windows"
        );
        *self = Self {
            pages,
            sweep_apart: self.sweep_apart,
            building: Some(pages),
            by_windows_only: true,
            window: Some(Window::new(
                pages.div_ceil(SWEEP_POLLS),
                pages,
                XidMark::every(),
            )),
            ..Self::default()
        };
    }

    /// Whether the mirror is being built by windows and cannot be shown yet; with how much of the build is
    /// done (0 to 1).
    pub fn building(&self) -> Option<f64> {
        let (w, began_with) = self.window.as_ref().zip(self.building)?;
        let cycle = (w.at as f64 / began_with.max(1) as f64).min(1.0);
        Some((f64::from(w.cycles) + cycle) / f64::from(BUILD_CYCLES))
    }

    /// Whether the build by windows ended since the last call: the copy can be shown from now on, and its
    /// aggregates replace the server's.
    pub fn take_built(&mut self) -> bool {
        std::mem::take(&mut self.just_built)
    }

    /// Whether the mirror reads by windows.
    pub fn windowed(&self) -> bool {
        self.window.is_some()
    }

    /// Applies a windowed read: its rows; the rows it looked up and did not find go. The sweep moves on. Held
    /// rows past their expiry are looked up next: those that first look so, and at the end of a cycle all.
    /// `took` is what the read cost: the next window is sized for the sweep alone to cost about `budget` (the
    /// pages added cost what the changes cost, on top), and when the whole table would fit twice, the next
    /// read is of every row again (and the polls scan it whole).
    pub fn apply_window<'a>(
        &mut self,
        rows: impl ExactSizeIterator<Item = RowRef<'a>>,
        Delta { mark, pages, .. }: Delta,
        now: DateTime<Utc>,
        (took, budget): (std::time::Duration, std::time::Duration),
    ) {
        let Some(mut w) = self.window.take() else {
            return;
        };
        let asked: Vec<RowName> = {
            let n = w.confirm.len().min(CONFIRM_MAX);
            w.confirm.drain(..n).collect()
        };
        self.changed_since_summaries |= rows.len() > 0;
        // The rows looked up that came back (most rows read were not looked up: they are checked against the
        // few that were, by reference).
        let mut found = vec![false; asked.len()];
        let mut by_group: HashMap<&str, Vec<(&str, usize)>> = HashMap::new();
        for (i, (g, k)) in asked.iter().enumerate() {
            by_group
                .entry(g.as_str())
                .or_default()
                .push((k.as_str(), i));
        }
        for row in rows {
            if let (Some(g), Some(k)) = (row.group, row.key)
                && let Some(keys) = by_group.get(g)
                && let Some((_, i)) = keys.iter().find(|(key, _)| *key == k)
            {
                found[*i] = true;
            }
            self.put(row);
        }
        for (name, _) in asked.iter().zip(found).filter(|(_, f)| !f) {
            self.remove(name);
        }
        // The pages added since the last read (and those before them read again) are read as of this read's
        // mark now.
        w.mark_read(w.tail_read_from(), u64::MAX, &mark);
        if let Some(last) = w.last_read {
            let secs = (now - last).as_seconds_f64().max(0.0);
            w.between = if w.between == 0.0 {
                secs
            } else {
                0.8 * w.between + 0.2 * secs
            };
        }
        w.last_read = Some(now);
        let added = pages.saturating_sub(w.tail);
        w.tail = pages;
        self.pages = pages;
        if self.sweep_apart {
            self.window = Some(w);
        } else {
            // The sweep's window was read too.
            let swept = w.pages;
            self.swept(w, (swept, swept + added), &mark, (took, budget, 0));
        }
    }

    /// Applies the read of a sweep's window apart from a poll ([`Mirror::next_sweep`]), which took `timing`.
    pub fn apply_sweep<'a>(
        &mut self,
        rows: impl ExactSizeIterator<Item = RowRef<'a>>,
        Delta { mark, .. }: Delta,
        timing: &SweepTiming,
    ) {
        let Some(w) = self.window.take() else {
            return;
        };
        self.changed_since_summaries |= rows.len() > 0;
        for row in rows {
            self.put(row);
        }
        let swept = w.pages;
        // The window a cycle within `cycle` needs, at a read a poll apart, as far as the cap allows.
        let at_least = timing.cycle.filter(|_| w.between > 0.0).map_or(0, |cycle| {
            let needed = self.pages as f64 * w.between / cycle.as_secs_f64().max(1e-3);
            (needed.ceil() as u64).min(fits(swept, timing.took, timing.cap))
        });
        self.swept(
            w,
            (swept, swept),
            &mark,
            (timing.took, timing.budget, at_least),
        );
    }

    /// Moves the sweep past the window a read took (`swept` of its `scanned` pages), as of that read's mark:
    /// the window sized to what fits the budget at the speed it was read, the end of a cycle noted, and back
    /// to whole scans when the whole table fits twice over.
    /// `at_least`: the pages the next window should have whatever the budget (a sweep's, for its cycle).
    fn swept(
        &mut self,
        mut w: Window,
        (swept, scanned): (u64, u64),
        mark: &XidMark,
        (took, budget, at_least): (std::time::Duration, std::time::Duration, u64),
    ) {
        w.mark_read(w.at, w.at + swept, mark);
        let target = fits(scanned, took, budget).max(at_least);
        w.pages = u64::midpoint(w.pages, target).max(MIN_WINDOW);
        w.at += swept;
        // While building, a cycle ends at the pages there were when the build began.
        let end = self
            .building
            .map_or(self.pages, |began_with| began_with.min(self.pages));
        if w.at >= end {
            w.at = 0;
            w.cycles += 1;
            if self.building.is_some() && w.cycles >= BUILD_CYCLES {
                tracing::info!(rows = self.rows, "the lease table's copy is built");
                self.building = None;
                self.just_built = true;
            }
            if w.cycles.is_multiple_of(KEYS_CYCLES) {
                self.drop_deleted = true;
            }
            // Held rows past their expiry are found by the next walk for the rows that matter.
            w.cycle_done = true;
        }
        // A copy built by windows is not dropped for a read of every row: that read did not fit.
        if w.pages >= self.pages.saturating_mul(2) && !self.by_windows_only {
            tracing::info!(
                table_pages = self.pages,
                "the lease table fits the budget again; scanning it whole"
            );
            self.reread = true;
        } else {
            self.window = Some(w);
        }
    }

    /// Seconds a windowed read takes to sweep the whole table: how late a change can show at worst. `None`
    /// when the whole table is read every poll.
    pub fn sweep_seconds(&self) -> Option<f64> {
        let w = self.window.as_ref()?;
        let polls = self.pages.div_ceil(w.pages).max(1);
        Some(polls as f64 * w.between)
    }

    fn remove(&mut self, (group, key): &RowName) {
        let g = Group(Some(group));
        let Some(list) = self.profiles.get_mut(&g) else {
            return;
        };
        let keys = &self.keys;
        if let Ok(i) = list.binary_search_by(|r| keys.text(r.key).cmp(&Some(key.as_str()))) {
            list.list.remove(i);
            list.changed();
            self.rows -= 1;
            self.changed_since_summaries = true;
        }
        if list.is_empty()
            && let Some((i, _, _)) = self.profiles.swap_remove_full(&g)
        {
            // The last entry took its place.
            self.out_of_order |= i < self.profiles.len();
        }
    }

    /// Puts a row read: in place of the one with its profile and key, else as a new one. A row renewed keeps
    /// its key and (when it did not change) its owner as they were: no allocation and no hashing for the
    /// frequent change.
    fn put(&mut self, row: RowRef<'_>) {
        let list = if let Some(list) = self.profiles.get_mut(&Group(row.group)) {
            list
        } else {
            // A new profile goes last: in order only when its name sorts after the last one.
            let name = row.group.map(Arc::from);
            self.out_of_order |= self.profiles.last().is_some_and(|(last, _)| *last > name);
            self.profiles.entry(name).or_default()
        };
        match list.binary_search_by(|r| self.keys.text(r.key).cmp(&row.key)) {
            Ok(i) => {
                let r = &mut list.list[i];
                if r.owner.as_deref() != row.owner {
                    r.owner = row.owner.map(|o| self.owners.token(o));
                }
                r.set_times(&row, &self.calm);
            }
            Err(i) => {
                let mut new = Row {
                    key: self.keys.number(row.key),
                    owner: row.owner.map(|o| self.owners.token(o)),
                    expires_at: Stamp::NONE,
                    acquired_at: Stamp::NONE,
                    contention: None,
                };
                new.set_times(&row, &self.calm);
                list.list.insert(i, new);
                self.rows += 1;
            }
        }
        list.changed();
    }

    /// Every row of the profiles that matter at `now`: a failure within `ttl`, a held row past its expiry, or
    /// named in `focus`. Read by windows, the held rows past their expiry are among them, and this one walk
    /// over every row finds those to look up: those new since the last read, and at the end of a cycle of
    /// the sweep all of them (a page cannot show a row deleted).
    pub fn rows_that_matter(
        &mut self,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
        focus: &[String],
    ) -> Vec<LeaseRow> {
        let (recent, at) = (Stamp::of(Some(now - ttl)), Stamp::of(Some(now)));
        let mut matter: Vec<(&Option<Arc<str>>, &Rows)> = self
            .profiles
            .iter()
            .filter(|(_, rows)| rows.matters(recent, at))
            .collect();
        // Looked up, not compared with each of 50,000 profiles (a page of names: two million comparisons).
        matter.extend(
            focus
                .iter()
                .filter_map(|name| self.profiles.get_key_value(&Group(Some(name)))),
        );
        matter.sort_unstable_by_key(|(group, _)| *group);
        matter.dedup_by_key(|(group, _)| *group);
        let expired = self
            .window
            .is_some()
            .then(|| expired_held(&matter, &self.keys, now));
        let mut out = Vec::new();
        for (group, list) in matter {
            {
                out.extend(list.iter().map(|r| LeaseRow {
                    group: group.clone(),
                    key: self.keys.name(r.key).cloned(),
                    owner: r.owner.clone(),
                    expires_at: r.expires_at(),
                    acquired_at: r.acquired_at.get(),
                    contention_count: r.contention_count(),
                    contended_since: r.contended_since(),
                    last_contended_at: r.last_contended_at(),
                }));
            }
        }
        if let (Some(expired), Some(w)) = (expired, self.window.as_mut()) {
            for name in &expired {
                if w.cycle_done || !w.expired.contains(name) {
                    w.confirm.insert(name.clone());
                }
            }
            w.expired = expired;
            w.cycle_done = false;
        }
        out
    }

    /// One summary per profile, as the server's aggregates gave them; `None` when nothing changed since the
    /// last ones taken (the caller keeps those).
    pub fn summaries(&mut self) -> Option<Vec<ProfileSummary>> {
        if !std::mem::take(&mut self.changed_since_summaries) {
            return None;
        }
        self.in_order();
        Some(
            self.profiles
                .iter()
                .map(|(group, list)| summary(group.as_ref(), list, &self.keys))
                .collect(),
        )
    }

    /// Puts the profiles back in name order after some came or went. The entries were in order before, so
    /// the sort finds long runs already in order (a merge of the new ones, not a sort of every name).
    fn in_order(&mut self) {
        if std::mem::take(&mut self.out_of_order) {
            self.profiles.sort_keys();
        }
    }
}

/// What a sweep's read of a window took, and what the next may take: its budget, and up to its cap when the
/// budget's window would not sweep the table within `cycle` (the TTL).
#[derive(Debug, Clone, Copy)]
pub struct SweepTiming {
    pub took: std::time::Duration,
    pub budget: std::time::Duration,
    pub cap: std::time::Duration,
    pub cycle: Option<std::time::Duration>,
}

/// The pages a read of `budget` takes, at the speed a read of `scanned` pages in `took` went.
fn fits(scanned: u64, took: std::time::Duration, budget: std::time::Duration) -> u64 {
    let per_ms = scanned as f64 / took.as_secs_f64().max(1e-4) / 1000.0;
    (per_ms * budget.as_secs_f64() * 1000.0) as u64
}

/// The held rows past their expiry at `now` among `profiles`, by profile and key (those a lookup can find:
/// named, and in text that was valid).
fn expired_held(
    profiles: &[(&Option<Arc<str>>, &Rows)],
    keys: &Keys,
    now: DateTime<Utc>,
) -> BTreeSet<RowName> {
    let mut out = BTreeSet::new();
    for (group, list) in profiles {
        let Some(g) = group.as_ref().filter(|g| !g.contains('\u{fffd}')) else {
            continue;
        };
        for r in list.iter() {
            if r.owner.is_some()
                && r.expires_at().is_some_and(|e| e <= now)
                && let Some(k) = keys.text(r.key).filter(|k| !k.contains('\u{fffd}'))
            {
                out.insert((g.to_string(), k.to_owned()));
            }
        }
    }
    out
}

/// A profile's aggregate: its rows, those held, the held row that expires first (by expiry, then key), the
/// sum of failures and the latest episode start. One walk over the rows, comparing their times as stamps (a
/// time made for each row and each comparison was half the cost of 50,000 summaries).
fn summary(group: Option<&Arc<str>>, rows: &Rows, keys: &Keys) -> ProfileSummary {
    // Ascending expiry with unknown expiries last, as SQL's ORDER BY e sorts NULLs; then by key.
    let order = |r: &Row| {
        let e = r.expires_at;
        (e == Stamp::NONE, e.0)
    };
    let (mut held, mut sample, mut failures, mut latest_since) =
        (0, None::<&Row>, None, Stamp::NONE);
    for r in rows.iter() {
        if r.owner.is_some() {
            held += 1;
            if sample.is_none_or(|s| (order(r), keys.text(r.key)) < (order(s), keys.text(s.key))) {
                sample = Some(r);
            }
        }
        if let Some(c) = &r.contention {
            if let Some(n) = c.count {
                failures = Some(failures.unwrap_or(0) + n);
            }
            latest_since = latest_since.max(c.since);
        }
    }
    ProfileSummary {
        group: group.cloned(),
        rows: rows.len() as i64,
        held,
        sample_key: sample.and_then(|r| keys.name(r.key).cloned()),
        sample_owner: sample.and_then(|r| r.owner.clone()),
        sample_acquired_at: sample.and_then(|r| r.acquired_at.get()),
        // Kept with every change: the first expiry of a held row.
        next_expiry: rows.first_held_expiry.get(),
        failure_total: failures,
        latest_contended_since: latest_since.get(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn refs(rows: &[LeaseRow]) -> impl ExactSizeIterator<Item = RowRef<'_>> {
        rows.iter().map(RowRef::from)
    }

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0)
            .single()
            .expect("time")
    }

    fn row(group: &str, key: &str, owner: Option<&str>, expires: i64) -> LeaseRow {
        LeaseRow {
            group: Some(group.into()),
            key: Some(key.into()),
            owner: owner.map(Into::into),
            expires_at: Some(at(expires)),
            acquired_at: Some(at(0)),
            contention_count: Some(0),
            contended_since: None,
            last_contended_at: None,
        }
    }

    fn read(total: i64, xmax: u32, all: bool) -> Delta {
        Delta {
            mark: XidMark {
                xmax,
                running: vec![],
            },
            total,
            pages: 120,
            all,
            window: false,
        }
    }

    /// 200,000 rows at 50,000 profiles, four to a list: a row of 48 bytes (its key by number) makes a list of
    /// 192, where 56 made 224 (and mimalloc's classes are the same sizes): 1.6 MB.
    #[test]
    fn a_row_takes_48_bytes() {
        assert_eq!(std::mem::size_of::<Row>(), 48);
    }

    #[test]
    fn a_key_is_numbered_once_and_named_back() {
        let mut keys = Keys::default();
        let (a, b) = (keys.number(Some("S0")), keys.number(Some("S1")));
        assert_eq!(keys.number(Some("S0")), a);
        assert_ne!(a, b);
        assert_eq!((keys.text(a), keys.text(b)), (Some("S0"), Some("S1")));
        assert_eq!(keys.number(None), Key::NONE);
        assert_eq!(keys.text(Key::NONE), None);
    }

    /// The token each row of `m` holds, by profile and key.
    fn tokens(m: &Mirror) -> Vec<Arc<str>> {
        m.profiles
            .values()
            .flat_map(|rows| rows.list.iter().filter_map(|r| r.owner.clone()))
            .collect()
    }

    #[test]
    fn rows_that_one_owner_holds_share_its_token() {
        let mut m = Mirror::default();
        m.apply(
            refs(&[
                row("a", "S0", Some("worker-1"), 30),
                row("a", "S1", Some("worker-1"), 30),
                row("b", "S0", Some("worker-1"), 30),
                row("b", "S1", Some("worker-2"), 30),
            ]),
            read(4, 100, true),
        );
        // A row taken over by worker-1 later shares the token too.
        m.apply(
            refs(&[row("b", "S1", Some("worker-1"), 40)]),
            read(4, 101, false),
        );
        let tokens = tokens(&m);
        assert_eq!(tokens.len(), 4);
        assert!(
            tokens.iter().all(|t| Arc::ptr_eq(t, &tokens[0])),
            "{tokens:?} are copies"
        );
    }

    #[test]
    fn tokens_no_row_holds_any_more_are_let_go() {
        // Two rows whose owner takes a new token at each acquisition (ten thousand), and one that keeps its own.
        let mut m = Mirror::default();
        for n in 0..10_000_u32 {
            m.apply(
                refs(&[
                    row("a", "S0", Some(&format!("acquired-{n}")), 30),
                    row("a", "S1", Some(&format!("acquired-{n}")), 30),
                    row("b", "S0", Some("worker-2"), 30),
                ]),
                read(3, 100 + n, n == 0),
            );
        }
        assert!(!m.owners.apart, "two rows share each token");
        assert!(
            m.owners.tokens.len() <= 2 * Owners::KEPT,
            "{} tokens kept for 2 held",
            m.owners.tokens.len()
        );
        assert!(m.owners.tokens.contains("worker-2"));
    }

    #[test]
    fn tokens_one_to_a_row_are_each_the_rows_own() {
        // As on the scale scene: each of 4,000 rows has a token no other row has.
        let rows: Vec<LeaseRow> = (0..4_000)
            .map(|n| row(&format!("p{n}"), "S0", Some(&format!("worker-{n}")), 30))
            .collect();
        let mut m = Mirror::default();
        m.apply(refs(&rows), read(4_000, 100, true));
        assert!(m.owners.apart);
        assert!(m.owners.tokens.is_empty(), "the table is let go");
        assert_eq!(tokens(&m).len(), 4_000);
    }

    #[test]
    fn changes_replace_rows_by_profile_and_key_and_new_keys_are_added() {
        let mut m = Mirror::default();
        assert_eq!(m.next(), Next::All);
        m.apply(
            refs(&[
                row("a", "S1", Some("w1"), 30),
                row("a", "S0", Some("w2"), 20),
                row("b", "S0", None, 5),
            ]),
            read(3, 100, true),
        );
        assert_eq!(m.len(), 3);
        assert!(matches!(m.next(), Next::Since(ref mark, (0, 2)) if mark.xmax == 100));
        m.apply(
            refs(&[row("a", "S0", Some("w3"), 40), row("c", "S0", None, 5)]),
            read(4, 107, false),
        );
        assert_eq!(m.len(), 4);
        assert!(!m.needs_keys());
        let s = m.summaries().expect("changed");
        assert_eq!(s.len(), 3);
        assert_eq!(
            s[0].sample_owner.as_deref(),
            Some("w1"),
            "S1 expires first now"
        );
        assert_eq!(s[0].next_expiry, Some(at(30)));
        assert_eq!(s[0].held, 2);
        assert_eq!(s[1].held, 0);
        assert!(m.summaries().is_none(), "nothing changed since");
        // The sweep moves on by a sixtieth of the pages.
        assert!(matches!(m.next(), Next::Since(ref mark, (2, 4)) if mark.xmax == 107));
    }

    #[test]
    fn a_count_below_the_mirror_asks_for_every_name_and_drops_the_deleted_rows() {
        let mut m = Mirror::default();
        m.apply(
            refs(&[row("a", "S0", Some("w"), 30), row("b", "S0", Some("w"), 30)]),
            read(2, 1, true),
        );
        m.apply(refs(&[]), read(1, 2, false));
        assert!(m.needs_keys());
        m.retain(&[(Some("b".into()), Some("S0".into()))]);
        assert!(!m.needs_keys());
        assert_eq!(m.len(), 1);
        let s = m.summaries().expect("changed");
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].group.as_deref(), Some("b"));
    }

    #[test]
    fn a_count_above_the_mirror_rereads_every_row() {
        let mut m = Mirror::default();
        m.apply(refs(&[row("a", "S0", Some("w"), 30)]), read(1, 1, true));
        m.apply(refs(&[]), read(2, 2, false));
        assert_eq!(m.next(), Next::All);
    }

    #[test]
    fn a_row_keeps_its_times_to_the_microsecond_in_56_bytes() {
        let times = [
            None,
            Some(at(0)),
            Some(at(-86_400 * 365 * 40) + chrono::Duration::microseconds(7)),
            Some(DateTime::<Utc>::MIN_UTC),
            // The end of time (`infinity`), and the microsecond before it.
            Some(DateTime::<Utc>::MAX_UTC),
            Some(DateTime::<Utc>::MAX_UTC - chrono::Duration::nanoseconds(1_999)),
        ];
        for t in times {
            assert_eq!(Stamp::of(t).get(), t);
        }
        assert!(
            std::mem::size_of::<Row>() <= 56,
            "{}",
            std::mem::size_of::<Row>()
        );
    }

    #[test]
    fn a_rows_bookkeeping_comes_back_as_it_was_read_and_calm_rows_share_one() {
        let mut m = Mirror::default();
        let kinds = [
            (None, None, None),
            (Some(0), None, None),
            (Some(3), Some(at(-40)), Some(at(-1))),
            (None, Some(at(-5)), None),
            (Some(-2), None, Some(at(-9))),
        ];
        let rows: Vec<LeaseRow> = kinds
            .iter()
            .enumerate()
            .map(|(i, &(count, since, last))| LeaseRow {
                contention_count: count,
                contended_since: since,
                last_contended_at: last,
                ..row(&format!("p{i}"), "S0", Some("w"), -100)
            })
            .chain([row("q", "S0", Some("w"), 100), row("q", "S1", None, 100)])
            .collect();
        m.apply(refs(&rows), read(rows.len() as i64, 1, true));
        let focus: Vec<String> = (0..kinds.len()).map(|i| format!("p{i}")).collect();
        let back = m.rows_that_matter(at(0), chrono::Duration::seconds(30), &focus);
        assert_eq!(back, rows[..kinds.len()].to_vec());
        // Two calm rows (and the calm p1) share the mirror's calm value; a row without bookkeeping has none.
        let q = &m.profiles[&Some(Arc::from("q"))];
        assert!(q.iter().all(|r| {
            r.contention
                .as_ref()
                .is_some_and(|c| Arc::ptr_eq(c, &m.calm))
        }));
        assert!(m.profiles[&Some(Arc::from("p0"))][0].contention.is_none());
    }

    #[test]
    fn the_rows_that_matter_are_every_row_of_a_contended_expired_or_focused_profile() {
        let mut m = Mirror::default();
        let mut contended = row("hot", "S0", Some("w"), 100);
        contended.last_contended_at = Some(at(1));
        m.apply(
            refs(&[
                contended,
                row("hot", "S1", Some("w"), 100),
                row("dead", "S0", Some("gone"), 5),
                row("released", "S0", None, 5),
                row("calm", "S0", Some("w"), 30),
                row("focus", "S0", Some("w"), 30),
            ]),
            read(6, 1, true),
        );
        // In focus: a calm profile, one that matters anyway, one not in the table, and the first again.
        let focus = ["focus", "hot", "nowhere", "focus"].map(String::from);
        let rows = m.rows_that_matter(at(10), chrono::Duration::seconds(30), &focus);
        let names: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| {
                (
                    r.group.as_deref().unwrap_or(""),
                    r.key.as_deref().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![
                ("dead", "S0"),
                ("focus", "S0"),
                ("hot", "S0"),
                ("hot", "S1")
            ]
        );
        // A failure older than the TTL no longer matters.
        let later = m.rows_that_matter(at(40), chrono::Duration::seconds(30), &[]);
        assert!(later.iter().all(|r| r.group.as_deref() != Some("hot")));
    }

    /// A reproducible die (a linear congruential generator): the random walks of the tests below.
    struct Dice(u64);

    impl Dice {
        fn roll(&mut self, sides: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % sides
        }
    }

    /// A read of every row's name of profiles `p0`… (`profiles` of them, keys `S0` to `S3`), with the rows
    /// `kept` says (the others were deleted).
    fn names_read(
        profiles: u64,
        mut kept: impl FnMut(&(u64, u64)) -> bool,
    ) -> Vec<(Option<String>, Option<String>)> {
        (0..profiles)
            .flat_map(|p| (0..4).map(move |k| (p, k)))
            .filter(|name| kept(name))
            .map(|(p, k)| (Some(format!("p{p}")), Some(format!("S{k}"))))
            .collect()
    }

    #[test]
    fn the_bounds_kept_with_each_change_find_what_a_look_at_every_row_finds() {
        // The profiles that matter by a look at each row, as before the bounds were kept.
        let by_rows = |m: &Mirror, recent: DateTime<Utc>, now: DateTime<Utc>| {
            let mut names: Vec<String> = m
                .profiles
                .iter()
                .filter(|(_, rows)| {
                    rows.iter().any(|r| {
                        r.last_contended_at().is_some_and(|at| at >= recent)
                            || (r.owner.is_some() && r.expires_at().is_some_and(|e| e <= now))
                    })
                })
                .map(|(g, _)| g.as_deref().unwrap_or_default().to_owned())
                .collect();
            names.sort();
            names
        };
        let mut m = Mirror::default();
        let mut dice = Dice(7);
        let mut roll = |sides| dice.roll(sides);
        let ttl = chrono::Duration::seconds(10);
        let mut found = 0;
        for step in 0..2_000_i64 {
            let (g, k) = (format!("p{}", roll(30)), format!("S{}", roll(4)));
            match roll(10) {
                // A release, a renewal or a takeover, some with a failed acquisition.
                0..=6 => {
                    let owner = ["w-1", "w-2"].get(usize::try_from(roll(3)).unwrap_or(0));
                    let mut r = row(&g, &k, owner.copied(), step - 5 + roll(20).cast_signed());
                    r.last_contended_at = (roll(3) == 0).then(|| at(step - roll(20).cast_signed()));
                    m.put(RowRef::from(&r));
                }
                7..=8 => m.remove(&(g, k)),
                _ => m.retain(&names_read(30, |_| roll(10) > 0)),
            }
            let now = at(step);
            let mut matter: Vec<String> = m
                .rows_that_matter(now, ttl, &[])
                .into_iter()
                .filter_map(|r| r.group.as_deref().map(str::to_owned))
                .collect();
            matter.dedup();
            assert_eq!(matter, by_rows(&m, now - ttl, now), "step {step}");
            found += matter.len();
        }
        assert!(found > 2_000, "the scene has profiles that matter: {found}");
    }

    #[test]
    fn the_summaries_come_in_name_order_and_agree_with_a_look_at_every_row() {
        // Each profile's aggregate by a look at each row, as the server's query takes it, in name order.
        let by_rows = |m: &Mirror| {
            let mut all: Vec<(&Option<Arc<str>>, &Rows)> = m.profiles.iter().collect();
            all.sort_by_key(|(g, _)| *g);
            all.into_iter()
                .map(|(g, rows)| {
                    let held: Vec<&Row> = rows.iter().filter(|r| r.owner.is_some()).collect();
                    let mut by_expiry = held.clone();
                    by_expiry.sort_by_key(|r| {
                        (r.expires_at().is_none(), r.expires_at(), m.keys.text(r.key))
                    });
                    let sample = by_expiry.first();
                    let counts: Vec<i64> = rows.iter().filter_map(Row::contention_count).collect();
                    ProfileSummary {
                        group: g.clone(),
                        rows: rows.len() as i64,
                        held: held.len() as i64,
                        sample_key: sample.and_then(|r| m.keys.name(r.key).cloned()),
                        sample_owner: sample.and_then(|r| r.owner.clone()),
                        sample_acquired_at: sample.and_then(|r| r.acquired_at.get()),
                        next_expiry: held.iter().filter_map(|r| r.expires_at()).min(),
                        failure_total: (!counts.is_empty()).then(|| counts.iter().sum()),
                        latest_contended_since: rows.iter().filter_map(Row::contended_since).max(),
                    }
                })
                .collect::<Vec<_>>()
        };
        let mut m = Mirror::default();
        let mut dice = Dice(11);
        let mut roll = |sides| dice.roll(sides);
        let mut compared = 0;
        for step in 0..3_000_i64 {
            // Names that sort before and after those already there, and come and go.
            let (g, k) = (format!("p{}", roll(60)), format!("S{}", roll(4)));
            match roll(12) {
                0..=8 => {
                    let owner = ["w-1", "w-2"].get(usize::try_from(roll(3)).unwrap_or(0));
                    let mut r = row(&g, &k, owner.copied(), roll(20).cast_signed());
                    if roll(8) == 0 {
                        r.expires_at = None;
                    }
                    r.contention_count =
                        [None, Some(0), Some(3)][usize::try_from(roll(3)).unwrap_or(0)];
                    r.contended_since = (roll(3) == 0).then(|| at(roll(50).cast_signed()));
                    m.put(RowRef::from(&r));
                }
                9..=10 => m.remove(&(g, k)),
                _ => m.retain(&names_read(60, |_| roll(20) > 0)),
            }
            m.changed_since_summaries = true;
            if step % 7 == 0 {
                let want = by_rows(&m);
                assert_eq!(m.summaries().expect("changed"), want, "step {step}");
                compared += want.len();
            }
        }
        assert!(compared > 10_000, "the scene has profiles: {compared}");
    }

    fn mark(xmax: u32) -> XidMark {
        XidMark {
            xmax,
            running: vec![],
        }
    }

    fn window_read(xmax: u32, pages: u64) -> Delta {
        Delta {
            mark: mark(xmax),
            pages,
            window: true,
            ..Delta::default()
        }
    }

    /// A mirror of `rows` (its table 120 pages, read whole at mark 100 and its changes at 101), read by
    /// windows of `pages` from now on.
    fn windowed(rows: &[LeaseRow], pages: u64) -> Mirror {
        let mut m = Mirror::default();
        let n = rows.len() as i64;
        m.apply(refs(rows), read(n, 100, true));
        m.apply(refs(&[]), read(n, 101, false));
        m.start_window(pages);
        m
    }

    const MS: std::time::Duration = std::time::Duration::from_millis(1);

    type Asked = (XidMark, u64, (u64, u64), Vec<RowName>);

    fn window(m: &Mirror) -> Asked {
        match m.next() {
            Next::Window {
                since,
                tail,
                sweep,
                confirm,
            } => (since, tail, sweep, confirm),
            other => panic!("not a window: {other:?}"),
        }
    }

    #[test]
    fn with_the_sweep_apart_a_poll_reads_the_new_pages_and_the_sweep_moves_on_its_own_reads() {
        let mut m = windowed(&[row("a", "S0", Some("w"), 100)], 40);
        m.set_sweep_apart(true);
        // The poll's read: the pages added since the last read (and the 64 before them again), and no window
        // of the sweep.
        let (_, tail, sweep, _) = window(&m);
        assert_eq!((tail, sweep), (120 - RECENT_PAGES, (0, 0)));
        let Some(Next::Window {
            tail,
            sweep,
            confirm,
            ..
        }) = m.next_sweep()
        else {
            panic!("a sweep to read");
        };
        assert_eq!((tail, sweep, confirm), (NO_TAIL, (0, 40), vec![]));
        // A poll does not move the sweep, nor size its window.
        m.apply_window(refs(&[]), window_read(102, 130), at(1), (100 * MS, MS));
        // The next asks the pages from 64 before the new ones for the rows written since this read.
        let (since, tail, _, _) = window(&m);
        assert_eq!((since, tail), (mark(102), 130 - RECENT_PAGES));
        assert_eq!(
            m.next_sweep().map(|n| match n {
                Next::Window { sweep, .. } => sweep,
                _ => (0, 0),
            }),
            Some((0, 40))
        );
        // The sweep's read moves it past its window, sized from the sweep's own time: 40 pages in 20 ms,
        // with a budget of 10 ms, fit 20; the window moves half way there.
        m.apply_sweep(
            refs(&[row("a", "S0", Some("swept"), 100)]),
            window_read(103, 0),
            &sweep_took(20 * MS, 10 * MS, None),
        );
        let Some(Next::Window { sweep, since, .. }) = m.next_sweep() else {
            panic!("a sweep to read");
        };
        assert_eq!(sweep, (40, 70));
        assert_eq!(
            since,
            mark(101),
            "pages 40 on were last read as of the whole table's read"
        );
        assert_eq!(
            m.rows_that_matter(at(1), chrono::Duration::zero(), &["a".into()])[0]
                .owner
                .as_deref(),
            Some("swept")
        );
        // Without the sweep apart, one read does both, as before.
        m.set_sweep_apart(false);
        assert!(m.next_sweep().is_none());
        assert_eq!(window(&m).2, (40, 70));
    }

    /// A sweep that took `took`, with a budget and a cap of `budget` (then the cycle cannot shorten).
    fn sweep_took(
        took: std::time::Duration,
        budget: std::time::Duration,
        cycle: Option<std::time::Duration>,
    ) -> SweepTiming {
        SweepTiming {
            took,
            budget,
            cap: budget,
            cycle,
        }
    }

    #[test]
    fn a_sweep_whose_cycle_would_outlast_the_ttl_reads_larger_windows_up_to_its_cap() {
        let sweep = |m: &Mirror| match m.next_sweep() {
            Some(Next::Window { sweep, .. }) => sweep.1 - sweep.0,
            other => panic!("not a sweep: {other:?}"),
        };
        let second = std::time::Duration::from_secs(1);
        let mut m = windowed(&[], 40);
        m.set_sweep_apart(true);
        // Polls a second apart; the table has 120 pages.
        m.apply_window(refs(&[]), window_read(102, 120), at(1), (MS, MS));
        m.apply_window(refs(&[]), window_read(103, 120), at(2), (MS, MS));
        // 40 pages in 20 ms; the budget (10 ms) fits 20, a cycle of 3 polls would take 6 s.
        m.apply_sweep(
            refs(&[]),
            window_read(104, 0),
            &sweep_took(20 * MS, 10 * MS, Some(30 * second)),
        );
        assert_eq!(sweep(&m), 30, "within a 30 s TTL the budget's window does");
        // A TTL of 2 s needs 60 pages a read; a cap of 40 ms fits 80.
        m.apply_sweep(
            refs(&[]),
            window_read(105, 0),
            &SweepTiming {
                cap: 40 * MS,
                ..sweep_took(20 * MS, 10 * MS, Some(2 * second))
            },
        );
        assert_eq!(sweep(&m), 45, "half way from 30 to 60 pages");
        // At that speed (3 pages in 2 ms), a cap of 20 ms fits 30 pages: the cycle stays longer than the TTL.
        for _ in 0..8 {
            let took = MS * (sweep(&m) * 2 / 3) as u32;
            m.apply_sweep(
                refs(&[]),
                window_read(106, 0),
                &SweepTiming {
                    cap: 20 * MS,
                    ..sweep_took(took, 10 * MS, Some(2 * second))
                },
            );
        }
        assert!((30..=32).contains(&sweep(&m)), "{}", sweep(&m));
        assert_eq!(m.sweep_seconds(), Some(4.0), "4 polls a second apart");
    }

    #[test]
    fn a_copy_built_by_windows_reads_every_row_of_pages_never_read_and_is_shown_after_two_cycles() {
        let mut m = Mirror::default();
        m.set_sweep_apart(true);
        m.build_by_windows(600);
        assert_eq!(m.building(), Some(0.0));
        // Pages never read are asked for every row: the tail's 64 pages and the sweep's first window (600
        // pages a tenth of a minute's polls).
        let (since, tail, ..) = window(&m);
        assert!(
            since.is_every() && tail == 600 - RECENT_PAGES,
            "{since:?} {tail}"
        );
        let Some(Next::Window { since, sweep, .. }) = m.next_sweep() else {
            panic!("a sweep to read");
        };
        assert!(since.is_every() && sweep == (0, 10), "{since:?} {sweep:?}");
        m.apply_window(
            refs(&[row("a", "S0", Some("tail"), 100)]),
            window_read(200, 600),
            at(1),
            (MS, MS),
        );
        // Pages read are asked for what was written since; the sweep's pages not read yet, for every row.
        assert_eq!(window(&m).0, mark(200));
        let mut cycles = 0;
        let mut xmax = 201;
        while m.building().is_some() {
            let Some(Next::Window { since, sweep, .. }) = m.next_sweep() else {
                panic!("a sweep to read");
            };
            assert_eq!(
                since.is_every(),
                cycles == 0 && sweep.0 < 600 - RECENT_PAGES,
                "cycle {cycles}, pages {sweep:?}"
            );
            m.apply_sweep(
                refs(&[row("b", &format!("S{xmax}"), Some("swept"), 100)]),
                window_read(xmax, 0),
                // Fast pages: the window grows past twice the table.
                &sweep_took(MS, 100 * MS, None),
            );
            xmax += 1;
            if matches!(m.next_sweep(), Some(Next::Window { sweep: (0, _), .. })) {
                cycles += 1;
            }
            // Even a window as large as the table does not go back to a read of every row.
            assert!(m.windowed());
            assert!(cycles <= BUILD_CYCLES, "built after {BUILD_CYCLES} cycles");
        }
        assert_eq!(cycles, BUILD_CYCLES);
        assert!(m.take_built() && !m.take_built(), "said once");
        assert_eq!(m.rows, 1 + (xmax - 201) as usize);
    }

    #[test]
    fn a_copy_built_on_a_table_that_grows_faster_than_the_sweep_is_built_over_the_pages_it_began_with()
     {
        let mut m = Mirror::default();
        m.set_sweep_apart(true);
        m.build_by_windows(600);
        let mut pages = 600;
        for poll in 0..200 {
            // 20 pages added a poll, read by the poll; the sweep reads 10 a poll.
            pages += 20;
            m.apply_window(
                refs(&[]),
                window_read(200 + poll, pages),
                at(poll.into()),
                (MS, MS),
            );
            if m.building().is_none() {
                // Two passes over the 600 pages, 10 at a time.
                assert!((110..=130).contains(&poll), "built at poll {poll}");
                return;
            }
            m.apply_sweep(
                refs(&[]),
                window_read(200 + poll, 0),
                &sweep_took(MS, MS, None),
            );
        }
        panic!("never built: {:?}", m.building());
    }

    #[test]
    fn a_window_asks_each_page_for_the_rows_written_since_that_page_was_last_read() {
        let mut m = windowed(&[row("a", "S0", Some("w"), 100)], 40);
        // The whole table was read as of 101; the pages added since (120 on), and the 64 before them, are
        // asked for the rows written since.
        assert_eq!(window(&m), (mark(101), 56, (0, 40), vec![]));
        // That read took its budget, with the 10 pages the table grew by: the window grows to 45 pages.
        m.apply_window(refs(&[]), window_read(110, 130), at(1), (10 * MS, 10 * MS));
        let (since, tail, sweep, _) = window(&m);
        assert_eq!((tail, sweep), (66, (40, 85)));
        assert_eq!(
            since,
            mark(101),
            "pages 40-85 were last read by the whole scan"
        );
        m.apply_window(refs(&[]), window_read(120, 130), at(2), (10 * MS, 10 * MS));
        // Pages 56 on were read again with the new pages, at 110 and at 120.
        let (since, _, sweep, _) = window(&m);
        assert_eq!((since, sweep), (mark(120), (85, 130)));
        m.apply_window(refs(&[]), window_read(130, 130), at(3), (10 * MS, 10 * MS));
        // The sweep went round: pages 0-40 were read by it at 110, 40-85 at 120.
        let (since, _, sweep, _) = window(&m);
        assert_eq!((since, sweep), (mark(110), (0, 45)));
        m.apply_window(refs(&[]), window_read(140, 130), at(4), (10 * MS, 10 * MS));
        let (since, _, sweep, _) = window(&m);
        assert_eq!((since, sweep), (mark(120), (45, 90)));
        assert_eq!(m.sweep_seconds(), Some(3.0), "3 polls a second apart");
    }

    #[test]
    fn a_window_is_sized_to_the_budget_and_the_table_is_scanned_whole_when_it_fits_twice() {
        let mut m = windowed(&[], 40);
        // Twice the budget: half the pages would fit; the window moves half way there.
        m.apply_window(refs(&[]), window_read(110, 120), at(1), (20 * MS, 10 * MS));
        assert_eq!(window(&m).2, (40, 70));
        // Fast: the whole table fits more than twice over.
        m.apply_window(refs(&[]), window_read(111, 120), at(2), (MS, 100 * MS));
        assert_eq!(m.next(), Next::All);
        assert!(!m.windowed());
    }

    #[test]
    fn a_held_row_past_its_expiry_is_looked_up_when_it_first_looks_so_and_each_cycle_after() {
        let mut m = windowed(
            &[
                row("dead", "S0", Some("gone"), 5),
                row("kept", "S0", Some("gone"), 5),
                row("calm", "S0", Some("w"), 100),
                row("released", "S0", None, 5),
            ],
            60,
        );
        // Each poll: the read, then the walk for the rows that matter, which finds them.
        let ttl = chrono::Duration::seconds(30);
        m.apply_window(refs(&[]), window_read(102, 120), at(10), (MS, MS));
        m.rows_that_matter(at(10), ttl, &[]);
        let names = |v: Vec<RowName>| -> Vec<String> { v.into_iter().map(|(g, _)| g).collect() };
        assert_eq!(
            names(window(&m).3),
            ["dead", "kept"],
            "new past their expiry"
        );
        // The lookup finds one of the two: the other is gone.
        m.apply_window(
            refs(&[row("kept", "S0", Some("gone"), 5)]),
            window_read(103, 120),
            at(11),
            (MS, MS),
        );
        m.rows_that_matter(at(11), ttl, &[]);
        assert_eq!(m.len(), 3);
        let s = m.summaries().expect("changed");
        assert!(s.iter().all(|p| p.group.as_deref() != Some("dead")));
        // The cycle ended (120 pages in two windows of 60): the one still past its expiry is looked up again.
        assert_eq!(names(window(&m).3), ["kept"]);
        m.apply_window(
            refs(&[row("kept", "S0", Some("gone"), 5)]),
            window_read(104, 120),
            at(12),
            (MS, MS),
        );
        m.rows_that_matter(at(12), ttl, &[]);
        assert!(window(&m).3.is_empty(), "not again within the cycle");
    }

    /// When the lookups fall behind (more held rows past their expiry than a cycle of polls looks up, as when
    /// a slow sweep leaves renewals unseen), each row waits in the queue once: the end of each cycle queued
    /// every such row again, and the queue grew by the difference every cycle, without end.
    #[test]
    fn a_row_to_look_up_is_queued_once_however_far_the_lookups_fall_behind() {
        let dead: Vec<LeaseRow> = (0..200)
            .map(|i| row(&format!("p{i}"), "S0", Some("gone"), 5))
            .collect();
        let mut m = windowed(&dead, 60);
        let ttl = chrono::Duration::seconds(30);
        m.apply_window(refs(&[]), window_read(102, 120), at(10), (MS, MS));
        m.rows_that_matter(at(10), ttl, &[]);
        for poll in 0..40_u32 {
            let asked = window(&m).3;
            assert_eq!(asked.len(), CONFIRM_MAX, "poll {poll}");
            // Every row looked up is found, still past its expiry.
            let found: Vec<LeaseRow> = asked
                .iter()
                .map(|(g, k)| row(g, k, Some("gone"), 5))
                .collect();
            let now = at(11 + i64::from(poll));
            m.apply_window(refs(&found), window_read(103 + poll, 120), now, (MS, MS));
            m.rows_that_matter(now, ttl, &[]);
            let queued = m.window.as_ref().map_or(0, |w| w.confirm.len());
            assert!(queued <= dead.len(), "poll {poll}: {queued} queued");
        }
        assert_eq!(m.len(), dead.len());
    }

    #[test]
    fn every_few_cycles_a_windowed_mirror_reads_every_name_to_drop_deleted_rows() {
        let mut m = windowed(&[], 200);
        for i in 0..KEYS_CYCLES {
            assert!(!m.needs_keys(), "cycle {i}");
            // One window covers the 150 pages: a cycle a read (and the budget keeps it at 200).
            m.apply_window(refs(&[]), window_read(102 + i, 150), at(i.into()), (MS, MS));
        }
        assert!(m.needs_keys());
        m.retain_later();
        assert!(!m.needs_keys());
    }

    #[test]
    fn a_table_of_a_few_pages_is_never_read_by_windows() {
        let mut m = Mirror::default();
        let small = |all| Delta {
            pages: 2 * MIN_WINDOW,
            ..read(0, 100, all)
        };
        m.apply(refs(&[]), small(true));
        m.apply(refs(&[]), small(false));
        m.start_window(1);
        assert!(!m.windowed());
        assert!(matches!(m.next(), Next::Since(..)));
    }

    #[test]
    fn marks_compare_by_age_across_the_wrap_of_ids() {
        assert!(mark(u32::MAX - 5).age_order(&mark(3)).is_lt());
        assert!(mark(3).age_order(&mark(u32::MAX - 5)).is_gt());
        assert!(mark(7).age_order(&mark(7)).is_eq());
        for m in [mark(3), mark(u32::MAX - 5), mark((1 << 31) + 10)] {
            assert!(XidMark::every().age_order(&m).is_lt(), "{m:?}");
            assert!(m.age_order(&XidMark::every()).is_gt(), "{m:?}");
        }
    }

    #[test]
    fn snapshot_text_parses_to_the_low_32_bits_of_its_ids() {
        let m = XidMark::parse("4294967300:4294967310:4294967301,4294967305").expect("parses");
        assert_eq!(m.xmax, 14);
        assert_eq!(m.running, vec![5, 9]);
        assert!(XidMark::parse("10:12:").expect("parses").running.is_empty());
        assert!(XidMark::parse("nonsense").is_none());
    }
}
