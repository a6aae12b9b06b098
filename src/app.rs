//! UI state and what keys do to it. Keys become [`Action`]s through [`keymap`]; [`App::apply`] changes the
//! state. Nothing here draws or talks to the database; no action can write to it.
//!
//! Data arrives as a [`Feed`]. Live, it comes through the dashboard's judge, which recorded each new snapshot
//! in the shared [`Judgement`] and evaluated it once; the app sorts and filters the board it made, and evaluates
//! again only on the clock's tick. A replay's app records and evaluates on its own. Drawing a frame only reads.

use std::sync::{Arc, RwLockReadGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEventKind};

use crate::model::feed::{Control, Feed, Link};
use crate::model::judgement::Judgement;
use crate::model::order::natural_cmp;
use crate::model::rules::{Profiles, Rules};
use crate::model::{Board, History, ProfileView, Snapshot};

/// Which pane has the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Profiles,
    Locks,
}

/// Order of the profiles table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    /// Most severe first, then longest contended (the runbook's order).
    Severity,
    /// Most failed acquisitions first.
    Failures,
    /// Soonest TTL expiry first.
    Expiry,
    /// By profile name.
    Name,
}

impl SortBy {
    fn next(self) -> Self {
        match self {
            Self::Severity => Self::Failures,
            Self::Failures => Self::Expiry,
            Self::Expiry => Self::Name,
            Self::Name => Self::Severity,
        }
    }

    /// The word in the footer.
    pub fn label(self) -> &'static str {
        match self {
            Self::Severity => "severity",
            Self::Failures => "failures",
            Self::Expiry => "expiry",
            Self::Name => "name",
        }
    }
}

/// Whether a profile's further held rows get lines of their own (`x` cycles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLines {
    /// When every visible profile's every row fits on the page.
    Auto,
    Expanded,
    Collapsed,
}

impl KeyLines {
    fn next(self) -> Self {
        match self {
            Self::Auto => Self::Expanded,
            Self::Expanded => Self::Collapsed,
            Self::Collapsed => Self::Auto,
        }
    }

    /// The word in the footer.
    pub fn label(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Expanded => "all",
            Self::Collapsed => "first",
        }
    }
}

/// The view as it was when the operator paused: its clock, sparklines and service rates stand still.
#[derive(Debug, Clone)]
pub struct Frozen {
    /// Server time when paused (what the header says).
    pub now: DateTime<Utc>,
    pub history: History,
    pub service: Option<crate::model::service::ServiceView>,
}

/// The history a frame shows (see [`App::shown_history`]).
#[derive(Debug)]
pub enum ShownHistory<'a> {
    /// As it was when the screen was paused.
    Frozen(&'a History),
    /// The judgement's, held for reading.
    Live(RwLockReadGuard<'a, History>),
}

impl std::ops::Deref for ShownHistory<'_> {
    type Target = History;

    fn deref(&self) -> &History {
        match self {
            Self::Frozen(history) => history,
            Self::Live(guard) => guard,
        }
    }
}

/// Column widths that only grow, for one table width (see [`App::sticky`]).
#[derive(Debug, Clone, Default)]
pub struct Sticky {
    width: usize,
    by_title: std::collections::HashMap<&'static str, usize>,
}

impl Sticky {
    /// The width a column keeps: the widest it needed since the table was last this wide.
    pub fn keep(&mut self, table_width: usize, title: &'static str, needed: usize) -> usize {
        if self.width != table_width {
            self.width = table_width;
            self.by_title.clear();
        }
        let kept = self.by_title.entry(title).or_insert(0);
        *kept = (*kept).max(needed);
        *kept
    }
}

/// Where the last frame drew what a mouse click can pick, and in which order the lock waits were listed.
#[derive(Debug, Clone, Default)]
pub struct Hits {
    /// The profiles pane, its border included.
    pub profiles_pane: ratatui::layout::Rect,
    /// The profiles table's lines, and for each the profile's place in the visible list.
    pub profiles: ratatui::layout::Rect,
    pub profile_lines: Vec<usize>,
    /// The lower pane (lock waits, or the detail), its border included.
    pub lower: ratatui::layout::Rect,
    /// The lock waits' lines, and for each its place among the waits listed (`None` for a blocker's line).
    pub wait_lines: Vec<Option<usize>>,
    /// How many of the lock waits' lines are scrolled off the top.
    pub wait_skip: usize,
    /// The waits as listed (the locks pane's cursor counts in this order), as indexes into the board's waits.
    pub wait_order: Vec<usize>,
}

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    ToggleHelp,
    StartFilter,
    FilterInput(char),
    FilterBackspace,
    FilterDone,
    FilterCancel,
    CycleSort,
    CycleKeyLines,
    TogglePause,
    Up,
    Down,
    PageUp,
    PageDown,
    Home,
    End,
    ToggleDetail,
    SwitchPane,
    ToggleQueries,
    ToggleAlerts,
    Refresh,
    Back,
}

/// Turns a key into an action, given whether the filter line is being edited.
pub fn keymap(key: KeyEvent, editing_filter: bool) -> Option<Action> {
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Some(Action::Quit);
    }
    if editing_filter {
        return match key.code {
            KeyCode::Enter => Some(Action::FilterDone),
            KeyCode::Esc => Some(Action::FilterCancel),
            KeyCode::Backspace => Some(Action::FilterBackspace),
            KeyCode::Char(c) if !c.is_control() => Some(Action::FilterInput(c)),
            _ => None,
        };
    }
    Some(match key.code {
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Char('?') | KeyCode::F(1) => Action::ToggleHelp,
        KeyCode::Char('/') => Action::StartFilter,
        KeyCode::Char('s') => Action::CycleSort,
        KeyCode::Char('x') => Action::CycleKeyLines,
        KeyCode::Char('p' | ' ') => Action::TogglePause,
        KeyCode::Char('k') | KeyCode::Up => Action::Up,
        KeyCode::Char('j') | KeyCode::Down => Action::Down,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Home | KeyCode::Char('g') => Action::Home,
        KeyCode::End | KeyCode::Char('G') => Action::End,
        KeyCode::Enter => Action::ToggleDetail,
        KeyCode::Tab | KeyCode::BackTab => Action::SwitchPane,
        KeyCode::Char('t') => Action::ToggleQueries,
        KeyCode::Char('a') => Action::ToggleAlerts,
        KeyCode::Char('r') => Action::Refresh,
        KeyCode::Esc => Action::Back,
        _ => return None,
    })
}

/// Everything the screen shows, and the operator's choices.
#[derive(Debug)]
pub struct App {
    /// `user@host:port/db`, never a password.
    pub target: String,
    /// Notes that hold for the whole session (missing signals of the mapping, a label for the clock).
    pub notes: Vec<String>,
    /// The history and the evaluator: the dashboard's judge's, or the app's own (a replay, the tests).
    judgement: Arc<Judgement>,
    /// Whether the app records each poll in the judgement itself (no judge does it).
    records: bool,
    pub snapshot: Option<std::sync::Arc<Snapshot>>,
    /// When the shown snapshot arrived (monotonic), for countdowns between polls and for staleness.
    pub received_at: Option<Instant>,
    pub board: Option<Arc<Board>>,
    /// Indexes into `board.profiles` that pass the filter, in the chosen order.
    pub visible: Vec<usize>,
    pub link: Link,
    pub interval: Duration,
    pub selected: usize,
    pub pane: Pane,
    pub lock_selected: usize,
    pub detail: bool,
    /// The backend whose detail the lower pane shows instead (Enter on a wait with no profile: its blocker).
    pub backend: Option<i32>,
    pub help: bool,
    /// The list of every active alert (`a`), and its cursor.
    pub alerts_open: bool,
    pub alert_selected: usize,
    pub show_queries: bool,
    /// What the screen froze with, while paused (`p`): polling goes on underneath, into the history and the
    /// latest snapshot, so that resuming is instant and nothing is lost.
    pub paused: Option<Box<Frozen>>,
    /// The latest snapshot that arrived while paused, and when: shown at once on resume.
    pending: Option<(std::sync::Arc<Snapshot>, Option<Instant>)>,
    pub sort: SortBy,
    pub filter: String,
    pub editing_filter: bool,
    pub quit: bool,
    /// How many polls the operator asked for at once (`r`), passed to the feed in [`Self::control`].
    pub refreshes: u64,
    /// Rows in the profiles table at the last draw (for PgUp/PgDn).
    pub page: usize,
    /// The first profile shown in the table (the table scrolls only as the cursor needs).
    pub scroll: usize,
    /// Whether further held rows get lines of their own: the operator's choice, and what the last draw did.
    pub key_lines: KeyLines,
    pub expanded: bool,
    /// Where the last frame drew what the mouse can pick.
    pub hits: Hits,
    /// The widest text each column of the profiles table has needed at this terminal width: columns grow as
    /// longer text comes, and never narrow while the terminal keeps its size, so that they stay in place.
    pub sticky: Sticky,
    polls_seen: u64,
    /// A fixed server time instead of the ticking one (view tests, screenshots).
    fixed_now: Option<DateTime<Utc>>,
    /// Set by `locktop replay`: the player's state line, shown in the header instead of the link state.
    pub replay: Option<String>,
    /// The database's deadlock count when locktop first read it: the header says how many came since.
    pub deadlocks_at_start: Option<i64>,
    /// The `--record` file's state, while recording.
    pub recording: Option<crate::model::feed::RecordStatus>,
    /// Why the latest `--on-alert` run failed, until one succeeds.
    pub hook_failure: Option<String>,
    /// The service's metrics and health, when `--metrics-url`/`--health-url` are given: `Some` from the
    /// start (empty until the first scrape), so the table keeps its column.
    pub service: Option<crate::model::service::ServiceView>,
}

impl App {
    /// A fresh app watching `target`.
    pub fn new(target: String, rules: Rules, interval: Duration, notes: Vec<String>) -> Self {
        Self {
            target,
            notes,
            judgement: Arc::new(Judgement::new(rules)),
            records: true,
            snapshot: None,
            received_at: None,
            board: None,
            visible: Vec::new(),
            link: Link::Connecting,
            interval,
            selected: 0,
            pane: Pane::Profiles,
            lock_selected: 0,
            detail: false,
            backend: None,
            help: false,
            alerts_open: false,
            alert_selected: 0,
            show_queries: false,
            paused: None,
            pending: None,
            sort: SortBy::Severity,
            filter: String::new(),
            editing_filter: false,
            quit: false,
            refreshes: 0,
            page: 10,
            scroll: 0,
            key_lines: KeyLines::Auto,
            expanded: false,
            hits: Hits::default(),
            sticky: Sticky::default(),
            polls_seen: 0,
            fixed_now: None,
            replay: None,
            deadlocks_at_start: None,
            recording: None,
            hook_failure: None,
            service: None,
        }
    }

    /// The app of a feed that comes through a judge recording into `judgement`: the app records nothing, takes
    /// the board the judge made of each poll, and evaluates with the same judgement only on its clock's tick.
    #[must_use]
    pub fn judged_by(mut self, judgement: Arc<Judgement>) -> Self {
        self.judgement = judgement;
        self.records = false;
        self
    }

    /// The history and the evaluator the app reads.
    pub fn judgement(&self) -> &Judgement {
        &self.judgement
    }

    /// The rules the app judges by: its judgement's (the judge's, on the dashboard).
    pub fn rules(&self) -> &Rules {
        self.judgement.rules()
    }

    /// Shows `snapshot` at a fixed server time `now` (for view tests and screenshots): records it in the
    /// history and evaluates it, as a poll would.
    pub fn show_at(&mut self, snapshot: Snapshot, now: DateTime<Utc>) {
        self.take(snapshot);
        self.set_clock(now);
    }

    /// Records `snapshot` in the history and makes it the shown one, without evaluating it: a replay that
    /// catches up several polls evaluates once, at its clock, with [`Self::set_clock`].
    pub fn take(&mut self, snapshot: Snapshot) {
        self.deadlocks_at_start = self.deadlocks_at_start.or(snapshot.deadlocks);
        let snapshot = std::sync::Arc::new(snapshot);
        self.judgement.record(&snapshot);
        self.snapshot = Some(snapshot);
        self.received_at = Some(Instant::now());
        self.link = Link::Connected;
    }

    /// Moves a fixed clock (a replay's) to `now` and re-applies the rules, without new data.
    pub fn set_clock(&mut self, now: DateTime<Utc>) {
        self.fixed_now = Some(now);
        self.reevaluate();
    }

    /// Server time now: the snapshot's clock advanced by the monotonic time since it arrived. While paused,
    /// the time it was paused at.
    pub fn now(&self) -> Option<DateTime<Utc>> {
        if let Some(frozen) = &self.paused {
            return Some(frozen.now);
        }
        if self.fixed_now.is_some() {
            return self.fixed_now;
        }
        let s = self.snapshot.as_ref()?;
        let elapsed = self.received_at?.elapsed();
        Some(s.server_now + chrono::Duration::from_std(elapsed).unwrap_or_default())
    }

    /// Whether the screen is paused.
    pub fn is_paused(&self) -> bool {
        self.paused.is_some()
    }

    /// The history the screen shows: as it was when paused, else the live one. Ask for it once a frame: the
    /// live one is held from the judge's next record for as long as it is kept.
    pub fn shown_history(&self) -> ShownHistory<'_> {
        match &self.paused {
            Some(f) => ShownHistory::Frozen(&f.history),
            None => ShownHistory::Live(self.judgement.history()),
        }
    }

    /// The service's view the screen shows: as it was when paused, else the latest.
    pub fn shown_service(&self) -> Option<&crate::model::service::ServiceView> {
        match &self.paused {
            Some(f) => f.service.as_ref(),
            None => self.service.as_ref(),
        }
    }

    /// How old the shown data is, when older than two intervals (the header then says "stale").
    pub fn staleness(&self) -> Option<Duration> {
        if self.is_paused() {
            return None;
        }
        let age = self.received_at?.elapsed();
        (age > self.interval * 2).then_some(age)
    }

    /// When the shown data turns stale (it may have passed already): a screen last drawn fresh is redrawn at
    /// that moment rather than at the next tick. None while paused.
    pub fn stale_at(&self) -> Option<Instant> {
        if self.is_paused() {
            return None;
        }
        Some(self.received_at? + self.interval * 2 + Duration::from_millis(1))
    }

    /// Takes what the poller published. Returns whether anything visible changed.
    pub fn on_feed(&mut self, feed: &Feed) -> bool {
        let link_changed = self.link != feed.link;
        self.link = feed.link.clone();
        if feed.polls == self.polls_seen {
            return link_changed;
        }
        // Every poll attempt feeds the history, failed ones as gaps, also while paused.
        let new_polls = feed.polls - self.polls_seen;
        self.polls_seen = feed.polls;
        if feed.last_poll_failed && self.records {
            self.judgement.record_missed(new_polls);
        }
        if let Some(snapshot) = feed.snapshot.as_ref().filter(|_| !feed.last_poll_failed) {
            self.deadlocks_at_start = self.deadlocks_at_start.or(snapshot.deadlocks);
            if self.records {
                self.judgement.record(snapshot);
            }
            if self.is_paused() {
                self.pending = Some((std::sync::Arc::clone(snapshot), feed.received_at));
            } else {
                self.snapshot = Some(std::sync::Arc::clone(snapshot));
                self.received_at = feed.received_at;
                // The judge's board of this very poll, if it came through one; else one of the app's own.
                match feed.board.as_ref().filter(|_| !self.records) {
                    Some(board) => self.show(Arc::clone(board)),
                    None => self.reevaluate(),
                }
            }
        }
        true
    }

    /// Re-applies the rules at the current time (called on new data and on the 1 Hz tick, so a countdown that
    /// reaches zero turns the row expired without waiting for the next poll).
    pub fn reevaluate(&mut self) {
        let (Some(snapshot), Some(now)) = (self.snapshot.clone(), self.now()) else {
            return;
        };
        self.show(Arc::new(self.judgement.evaluate(&snapshot, now)));
    }

    /// Makes `board` the shown one, in the chosen order and filter, the cursor kept on its profile.
    fn show(&mut self, board: Arc<Board>) {
        let selected_name = self.selected_profile().map(|p| p.profile.clone());
        self.board = Some(board);
        self.refilter();
        if let Some(name) = selected_name {
            // Keep the cursor on the same profile when the order changes.
            let profiles = self.board.as_ref().map(|b| &b.profiles);
            if let Some(pos) = self
                .visible
                .iter()
                .position(|&i| profiles.and_then(|ps| ps.name(i)) == Some(&*name))
            {
                self.selected = pos;
            }
        }
    }

    fn profile(&self, index: usize) -> Option<&ProfileView> {
        self.board.as_ref()?.profiles.get(index).map(|p| &**p)
    }

    /// What the dashboard asks of its feed: the profile under the cursor in focus, so that its every row is
    /// read even while it is calm (the detail pane shows them).
    /// The profiles on the page are in focus too: every row of what the operator sees is read each poll, so
    /// that each TTL shown is the database's (a calm profile's summary may be seconds old, and a countdown
    /// from it would reach zero while its owner renews), and a profile's every held key can have its line.
    pub fn control(&self) -> Control {
        let mut focus: Vec<String> = self
            .selected_profile()
            .map(|p| vec![p.profile.to_string()])
            .unwrap_or_default();
        let on_page: Vec<String> = self
            .visible_from(self.scroll)
            .take(self.page)
            .filter(|p| !focus.iter().any(|f| **f == *p.profile))
            .map(|p| p.profile.to_string())
            .collect();
        focus.extend(on_page);
        Control {
            focus,
            refreshes: self.refreshes,
        }
    }

    /// The profile under the cursor.
    pub fn selected_profile(&self) -> Option<&ProfileView> {
        self.visible
            .get(self.selected)
            .and_then(|&i| self.profile(i))
    }

    /// The profiles that pass the filter, in order. Each is built as it comes, if it was not (see
    /// [`Profiles`](crate::model::rules::Profiles)): take only what the screen shows.
    pub fn visible_profiles(&self) -> impl Iterator<Item = &ProfileView> {
        self.visible_from(0)
    }

    /// The profiles that pass the filter from the `first`th on, in order (those before are not built).
    pub fn visible_from(&self, first: usize) -> impl Iterator<Item = &ProfileView> {
        self.visible
            .get(first..)
            .unwrap_or_default()
            .iter()
            .filter_map(|&i| self.profile(i))
    }

    fn refilter(&mut self) {
        let Some(board) = &self.board else { return };
        let needle = self.filter.to_lowercase();
        // Read without building the calm profiles' views: a key of the filter asks it of 50,000.
        let ps = &board.profiles;
        let mut visible: Vec<usize> = (0..ps.len())
            .filter(|&i| needle.is_empty() || matches_filter(ps, i, &needle))
            .collect();
        match self.sort {
            SortBy::Severity => {}
            SortBy::Failures => {
                visible.sort_by_key(|&i| std::cmp::Reverse(ps.contention_count(i)));
            }
            SortBy::Expiry => {
                visible.sort_by_key(|&i| ps.first_expiry(i).unwrap_or(DateTime::<Utc>::MAX_UTC));
            }
            SortBy::Name => visible
                .sort_by(|&a, &b| natural_cmp(ps.name(a).unwrap_or(""), ps.name(b).unwrap_or(""))),
        }
        self.visible = visible;
        self.selected = self.selected.min(self.visible.len().saturating_sub(1));
    }

    /// Keeps of the profiles shown those that pass the filter, which only grew (see `Action::FilterInput`).
    fn narrow(&mut self) {
        let Some(board) = &self.board else { return };
        let needle = self.filter.to_lowercase();
        self.visible
            .retain(|&i| matches_filter(&board.profiles, i, &needle));
        self.selected = self.selected.min(self.visible.len().saturating_sub(1));
    }

    /// A mouse event at a cell: a click on a profile's line selects it and focuses the table, a click on the
    /// lower pane focuses the lock waits (and selects the wait clicked); the wheel moves the cursor of the
    /// pane under the pointer. Returns whether anything changed.
    pub fn mouse(&mut self, kind: MouseEventKind, column: u16, row: u16) -> bool {
        let at = ratatui::layout::Position::new(column, row);
        let pane = if self.hits.profiles_pane.contains(at) {
            Pane::Profiles
        } else if self.hits.lower.contains(at) && !self.detail {
            Pane::Locks
        } else {
            return false;
        };
        match kind {
            MouseEventKind::Down(MouseButton::Left) => {
                self.pane = pane;
                if pane == Pane::Profiles {
                    if self.hits.profiles.contains(at) {
                        let line = usize::from(row - self.hits.profiles.y);
                        if let Some(&i) = self.hits.profile_lines.get(line) {
                            self.selected = i;
                        }
                    }
                } else {
                    // The pane's border is its first row.
                    if row > self.hits.lower.y {
                        let line = usize::from(row - self.hits.lower.y - 1) + self.hits.wait_skip;
                        if let Some(Some(i)) = self.hits.wait_lines.get(line) {
                            self.lock_selected = *i;
                        }
                    }
                }
                true
            }
            MouseEventKind::ScrollUp | MouseEventKind::ScrollDown => {
                let before = self.pane;
                self.pane = pane;
                self.apply(if kind == MouseEventKind::ScrollUp {
                    Action::Up
                } else {
                    Action::Down
                });
                self.pane = before;
                true
            }
            _ => false,
        }
    }

    /// The alerts list's keys: moving, Enter to jump to the alert's profile, Esc or `a` to close. Returns
    /// whether the key was the list's.
    fn alerts_key(&mut self, action: Action) -> bool {
        let count = self.board.as_ref().map_or(0, |b| b.alerts.len());
        match action {
            Action::Up => self.alert_selected = self.alert_selected.saturating_sub(1),
            Action::Down => {
                self.alert_selected = (self.alert_selected + 1).min(count.saturating_sub(1));
            }
            Action::Home => self.alert_selected = 0,
            Action::End => self.alert_selected = count.saturating_sub(1),
            Action::Back => self.alerts_open = false,
            Action::ToggleDetail => {
                let profile = self
                    .board
                    .as_ref()
                    .and_then(|b| b.alerts.get(self.alert_selected))
                    .and_then(|a| a.profiles().first().map(|p| (*p).to_owned()));
                self.alerts_open = false;
                if let Some(profile) = profile {
                    self.jump_to(&profile);
                }
            }
            _ => return false,
        }
        true
    }

    /// Enter on the lock waits: the wait's profile in detail when it is on a lease row, else its blocker's
    /// backend.
    fn open_wait(&mut self) {
        let Some(wait) = self
            .hits
            .wait_order
            .get(self.lock_selected)
            .and_then(|&i| self.board.as_ref()?.waits.get(i))
        else {
            return;
        };
        if let Some(profile) = wait.profile.clone() {
            self.jump_to(&profile);
            return;
        }
        let blocker = wait.wait.blocked_by.iter().copied().find(|&pid| pid != 0);
        if let Some(pid) = blocker.or(Some(wait.wait.pid)) {
            self.backend = Some(pid);
            self.detail = true;
        }
    }

    /// Selects `profile` (clearing a filter that hides it) and opens its detail.
    pub fn jump_to(&mut self, profile: &str) {
        let find = |app: &Self| {
            app.visible
                .iter()
                .position(|&i| app.profile(i).is_some_and(|p| *p.profile == *profile))
        };
        let mut at = find(self);
        if at.is_none() && !self.filter.is_empty() {
            self.filter.clear();
            self.refilter();
            at = find(self);
        }
        if let Some(at) = at {
            self.selected = at;
            self.pane = Pane::Profiles;
            self.detail = true;
            self.backend = None;
        }
    }

    /// Freezes the view as it is, or resumes at the latest data.
    fn toggle_pause(&mut self) {
        if self.paused.take().is_some() {
            if let Some((snapshot, at)) = self.pending.take() {
                self.snapshot = Some(snapshot);
                self.received_at = at;
            }
            self.reevaluate();
            return;
        }
        let Some(now) = self.now() else {
            return;
        };
        self.paused = Some(Box::new(Frozen {
            now,
            history: self.judgement.history().clone(),
            service: self.service.clone(),
        }));
    }

    /// Applies an action.
    pub fn apply(&mut self, action: Action) {
        if self.alerts_open && self.alerts_key(action) {
            return;
        }
        let last = self.visible.len().saturating_sub(1);
        let locks_last = self
            .board
            .as_ref()
            .map_or(0, |b| b.waits.len().saturating_sub(1));
        let in_locks = self.pane == Pane::Locks;
        let cursor = if in_locks {
            &mut self.lock_selected
        } else {
            &mut self.selected
        };
        let max = if in_locks { locks_last } else { last };
        match action {
            Action::Quit => self.quit = true,
            Action::ToggleAlerts => {
                self.alerts_open = !self.alerts_open;
                self.alert_selected = 0;
            }
            Action::ToggleHelp => self.help = !self.help,
            Action::StartFilter => {
                self.editing_filter = true;
                self.help = false;
            }
            Action::FilterInput(c) => {
                // What a longer filter passes, the shorter one passed: the profiles shown are looked at again,
                // in their order, not every profile. (Only for ASCII: a lowercase letter can depend on the
                // next, as a Greek final sigma does.)
                let narrows = self.filter.is_ascii() && c.is_ascii();
                self.filter.push(c);
                if narrows {
                    self.narrow();
                } else {
                    self.refilter();
                }
            }
            Action::FilterBackspace => {
                self.filter.pop();
                self.refilter();
            }
            Action::FilterDone => self.editing_filter = false,
            Action::FilterCancel => {
                self.editing_filter = false;
                self.filter.clear();
                self.refilter();
            }
            Action::CycleSort => {
                self.sort = self.sort.next();
                self.refilter();
            }
            Action::CycleKeyLines => self.key_lines = self.key_lines.next(),
            Action::TogglePause => self.toggle_pause(),
            Action::Up => *cursor = cursor.saturating_sub(1),
            Action::Down => *cursor = (*cursor + 1).min(max),
            Action::PageUp => *cursor = cursor.saturating_sub(self.page.max(1)),
            Action::PageDown => *cursor = (*cursor + self.page.max(1)).min(max),
            Action::Home => *cursor = 0,
            Action::End => *cursor = max,
            Action::ToggleDetail if in_locks && !self.detail => self.open_wait(),
            Action::ToggleDetail => {
                self.detail = !self.detail;
                self.backend = None;
            }
            Action::SwitchPane => {
                self.pane = if in_locks {
                    Pane::Profiles
                } else {
                    Pane::Locks
                };
            }
            Action::ToggleQueries => self.show_queries = !self.show_queries,
            Action::Refresh => self.refreshes += 1,
            Action::Back => {
                if self.help {
                    self.help = false;
                } else if self.detail {
                    self.detail = false;
                    self.backend = None;
                } else if !self.filter.is_empty() {
                    self.filter.clear();
                    self.refilter();
                }
            }
        }
    }
}

/// Whether the profile at `index` passes the filter `needle` (lowercase): its name, or a row's owner or key.
fn matches_filter(profiles: &Profiles, index: usize, needle: &str) -> bool {
    profiles.any_text(index, |text| contains_lowercased(text, needle))
}

/// Whether `hay` lowercased contains `needle` (lowercase already). An ASCII `hay` (every name the scale scene
/// has) is looked through as it is, not copied in lowercase: a key typed into the filter asks it of 50,000
/// profiles, and the copies were most of what a key cost.
fn contains_lowercased(hay: &str, needle: &str) -> bool {
    if !hay.is_ascii() {
        return hay.to_lowercase().contains(needle);
    }
    // A needle with a byte beyond ASCII is found in no ASCII text: no window equals it.
    let needle = needle.as_bytes();
    needle.is_empty()
        || hay.as_bytes().windows(needle.len()).any(|w| {
            w.iter()
                .zip(needle)
                .all(|(h, n)| h.to_ascii_lowercase() == *n)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LeaseRow;
    use crate::model::test_clock::t;
    use crossterm::event::KeyEvent;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn app_with(profiles: &[&str]) -> App {
        let mut app = App::new(
            "mon@db:5432/app".into(),
            Rules::default(),
            Duration::from_secs(1),
            Vec::new(),
        );
        let leases = profiles
            .iter()
            .map(|p| LeaseRow {
                group: Some((*p).into()),
                key: Some("SYM".into()),
                owner: Some(format!("owner-{p}").into()),
                expires_at: Some(t(30)),
                acquired_at: Some(t(-1)),
                contention_count: Some(0),
                contended_since: None,
                last_contended_at: None,
            })
            .collect();
        app.show_at(
            Snapshot {
                leases,
                ..Snapshot::at(t(0))
            },
            t(0),
        );
        app
    }

    fn press(app: &mut App, code: KeyCode) {
        if let Some(action) = keymap(key(code), app.editing_filter) {
            app.apply(action);
        }
    }

    #[test]
    fn keys_map_to_the_actions_operators_know() {
        assert_eq!(keymap(key(KeyCode::Char('q')), false), Some(Action::Quit));
        assert_eq!(
            keymap(
                KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL),
                true
            ),
            Some(Action::Quit)
        );
        assert_eq!(keymap(key(KeyCode::Char('j')), false), Some(Action::Down));
        assert_eq!(keymap(key(KeyCode::Up), false), Some(Action::Up));
        assert_eq!(
            keymap(key(KeyCode::Char('?')), false),
            Some(Action::ToggleHelp)
        );
        assert_eq!(
            keymap(key(KeyCode::Char('q')), true),
            Some(Action::FilterInput('q')),
            "q types while filtering"
        );
        assert_eq!(
            keymap(key(KeyCode::Char('x')), false),
            Some(Action::CycleKeyLines)
        );
        assert_eq!(keymap(key(KeyCode::Char('y')), false), None);
    }

    #[test]
    fn moving_stays_within_the_list_and_end_home_jump() {
        let mut app = app_with(&["a", "b", "c"]);
        press(&mut app, KeyCode::Up);
        assert_eq!(app.selected, 0);
        press(&mut app, KeyCode::Char('j'));
        press(&mut app, KeyCode::Char('j'));
        press(&mut app, KeyCode::Char('j'));
        assert_eq!(app.selected, 2);
        press(&mut app, KeyCode::Home);
        assert_eq!(
            app.selected_profile().map(|p| p.profile.as_ref()),
            Some("a")
        );
        press(&mut app, KeyCode::End);
        assert_eq!(
            app.selected_profile().map(|p| p.profile.as_ref()),
            Some("c")
        );
    }

    #[test]
    fn the_filter_narrows_by_profile_or_owner_and_esc_clears_it() {
        let mut app = app_with(&["alpha", "beta", "gamma"]);
        press(&mut app, KeyCode::Char('/'));
        assert!(app.editing_filter);
        for c in "owner-b".chars() {
            press(&mut app, KeyCode::Char(c));
        }
        press(&mut app, KeyCode::Enter);
        assert!(!app.editing_filter);
        let shown: Vec<&str> = app.visible_profiles().map(|p| p.profile.as_ref()).collect();
        assert_eq!(shown, ["beta"]);
        press(&mut app, KeyCode::Esc);
        assert_eq!(app.visible_profiles().count(), 3);
    }

    #[test]
    fn the_filter_finds_what_a_lowercase_copy_would_find() {
        let names = [
            "AAPL",
            "aapl",
            "Profile-07",
            "pro",
            "",
            "ÄPFEL",
            "äpfel",
            "İstanbul",
            "KELVIN",
            "Straße",
            "ΣΑΣ",
            "σας",
            "x",
        ];
        let needles = [
            "", "a", "ap", "aapl", "pfel", "äp", "rofile-0", "i", "i̇s", "k", "kelvin", "ß", "ss",
            "σας", "ας", "x", "xx",
        ];
        for hay in names {
            for needle in needles {
                assert_eq!(
                    contains_lowercased(hay, needle),
                    hay.to_lowercase().contains(needle),
                    "{needle:?} in {hay:?}"
                );
            }
        }
    }

    #[test]
    fn a_filter_typed_key_by_key_shows_what_the_whole_filter_shows_in_every_order() {
        let names = [
            "p-10", "P-2", "p-1", "q-10", "p-100", "Ab", "ab-P", "ÄB", "äb-1", "p-ΣΑΣ", "aσb-1",
        ];
        for typed in ["p-1", "ab", "äb", "P-10", "σ", "p-σας", "aΣb"] {
            for sort in 0..4 {
                let mut app = app_with(&names);
                for _ in 0..sort {
                    press(&mut app, KeyCode::Char('s'));
                }
                press(&mut app, KeyCode::Char('/'));
                for c in typed.chars() {
                    press(&mut app, KeyCode::Char(c));
                }
                let by_keys = app.visible.clone();
                app.refilter();
                assert_eq!(by_keys, app.visible, "{typed:?} in sort {:?}", app.sort);
            }
        }
    }

    #[test]
    fn sort_cycles_and_keeps_the_cursor_on_its_profile() {
        let mut app = app_with(&["c", "a", "b"]);
        press(&mut app, KeyCode::End);
        let chosen = app.selected_profile().map(|p| p.profile.clone());
        press(&mut app, KeyCode::Char('s'));
        assert_eq!(app.sort, SortBy::Failures);
        app.reevaluate();
        assert_eq!(app.selected_profile().map(|p| p.profile.clone()), chosen);
        for _ in 0..3 {
            press(&mut app, KeyCode::Char('s'));
        }
        assert_eq!(app.sort, SortBy::Severity);
    }

    #[test]
    fn the_profiles_on_the_page_are_in_focus_so_their_every_row_is_read() {
        let mut app = app_with(&["a", "b", "c", "d"]);
        app.apply(Action::End);
        app.page = 3;
        app.scroll = 1;
        assert_eq!(
            app.control().focus,
            ["d", "b", "c"],
            "the cursor's, then the page's"
        );
    }

    #[test]
    fn pause_help_detail_and_panes_toggle_and_esc_backs_out() {
        let mut app = app_with(&["a"]);
        press(&mut app, KeyCode::Char('p'));
        assert!(app.is_paused());
        press(&mut app, KeyCode::Char('p'));
        assert!(!app.is_paused());
        press(&mut app, KeyCode::Char('?'));
        assert!(app.help);
        press(&mut app, KeyCode::Esc);
        assert!(!app.help);
        press(&mut app, KeyCode::Enter);
        assert!(app.detail);
        press(&mut app, KeyCode::Esc);
        assert!(!app.detail);
        press(&mut app, KeyCode::Tab);
        assert_eq!(app.pane, Pane::Locks);
        press(&mut app, KeyCode::Char('q'));
        assert!(app.quit);
    }
}
