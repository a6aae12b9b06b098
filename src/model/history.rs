//! Contention over time, per profile, in bounded memory.
//!
//! Each poll yields one contention sample per profile: failed acquisitions since the previous poll (from the
//! bookkeeping counter) plus sessions waiting on the profile's rows. Most profiles are calm most of the time, so
//! only non-zero samples are stored, each tagged with its poll number; a global ring remembers which polls
//! failed, so that a missed poll draws as a gap rather than as zero. Everything older than `capacity` polls is
//! dropped, which keeps memory flat however long locktop runs.
//!
//! The history also remembers when it first and last *saw* contention on a profile, for lease tables without
//! bookkeeping columns: then the episode start is what the monitor observed.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hashbrown::HashMap;

use super::snapshot::ProfileSummary;

/// Polls kept by default: ten minutes at the default 1 s interval.
pub const DEFAULT_CAPACITY: usize = 600;

/// Per-profile contention history over the last `capacity` polls.
#[derive(Debug, Clone)]
pub struct History {
    capacity: usize,
    /// Number of the next poll to record (the first is 0).
    next_seq: u64,
    /// One entry per recorded poll, oldest first: whether the poll failed (a gap).
    missed: VecDeque<bool>,
    /// Keyed by name (a `Box<str>`, 8 bytes less than a `String` in each of 50,000 entries).
    profiles: HashMap<Box<str>, ProfileHistory>,
    /// Start and last sighting of the contention episode the monitor observed, per profile: apart from the
    /// rest, since every profile is looked up at every evaluation and few have one (a small map stays in
    /// the cache; the large one did not).
    observed: HashMap<String, (DateTime<Utc>, DateTime<Utc>)>,
    /// The database's deadlock counter as read by recent polls (server time, count), oldest first: as far
    /// back as the deadlock trigger's window.
    deadlocks: VecDeque<(DateTime<Utc>, i64)>,
    /// Deadlocks counted per minute of server time (minute since the epoch, count), oldest first, for the last
    /// [`DEADLOCK_MINUTES`] minutes.
    deadlock_minutes: VecDeque<(i64, u32)>,
    /// The summaries the last poll that fed every profile fed them from (see [`History::carry`]).
    carried: Option<Carried>,
    /// Profiles the latest poll fed.
    fed: usize,
}

/// Summaries that fed every profile, and the polls that had them.
#[derive(Debug, Clone)]
struct Carried {
    /// One list per database.
    summaries: Vec<Arc<Vec<ProfileSummary>>>,
    /// The poll that fed them.
    fed: u64,
    /// The latest poll that had them.
    seen: u64,
}

/// What a poll saw of a profile: everything, or (for a profile known from carried summaries) its waiters.
#[derive(Clone, Copy)]
enum Seen {
    All(ProfileObservation),
    Waiters(u32),
}

/// Minutes of deadlock counts kept for the header's sparkline.
pub const DEADLOCK_MINUTES: usize = 10;

/// What the history keeps of a profile: 48 bytes (it was 88), one for each of 50,000 profiles, calm or not.
#[derive(Debug, Clone, Default)]
struct ProfileHistory {
    /// Non-zero samples, oldest first.
    samples: Ring,
    /// Fingerprint of who held the profile's rows at the previous poll (if `has_holders`).
    last_holders: u64,
    /// Sum of the profile's failure counters at the previous poll (if `has_count`), and the episode start it
    /// belonged to.
    last_count: i64,
    last_start: Option<DateTime<Utc>>,
    last_seen_seq: u64,
    has_holders: bool,
    has_count: bool,
}

/// One poll's non-zero sample of a profile, in 12 bytes (it was 24): a profile contended throughout keeps one
/// a poll for the whole window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    /// The poll's number, its low 32 bits: a sample is never older than the window, far fewer polls than
    /// 2^32 (see [`full_seq`]).
    seq: u32,
    failures: u32,
    /// Sessions waiting (up to 2^31 - 1), and in the top bit whether the holders changed.
    waiters_changed: u32,
}

impl Sample {
    const CHANGED: u32 = 1 << 31;

    fn new(seq: u64, failures: u32, waiters: u32, holder_changed: bool) -> Self {
        let flag = if holder_changed { Self::CHANGED } else { 0 };
        Self {
            seq: low(seq),
            failures,
            waiters_changed: waiters.min(Self::CHANGED - 1) | flag,
        }
    }

    fn waiters(self) -> u32 {
        self.waiters_changed & !Self::CHANGED
    }

    fn holder_changed(self) -> bool {
        self.waiters_changed & Self::CHANGED != 0
    }
}

/// The low 32 bits of a poll number.
fn low(seq: u64) -> u32 {
    u32::try_from(seq & u64::from(u32::MAX)).unwrap_or_default()
}

/// The whole number of the poll a sample's `seq` (its low bits) belongs to, at `next_seq` (the number of
/// the poll to record next): the latest poll before it with those low bits.
fn full_seq(next_seq: u64, seq: u32) -> u64 {
    next_seq - u64::from(low(next_seq).wrapping_sub(seq))
}

/// A profile's samples, oldest first: behind a pointer, allocated only for a profile with any (8 bytes in
/// each of 50,000 entries, where the ring itself took 32), and given back once the last has left the window.
#[derive(Debug, Clone, Default)]
#[expect(
    clippy::box_collection,
    reason = "the pointer is the point: 8 bytes in each calm profile's entry, where an empty ring takes 32"
)]
struct Ring(Option<Box<VecDeque<Sample>>>);

impl Ring {
    /// Adds `sample`; the ring holds at most one a poll of the window and one more until the next prune. It
    /// grows by half, never past that: grown by doubling, the ring of a profile contended throughout a
    /// 600-poll window had room for 1,024 (at 1,000 contended profiles, 10 MB unused).
    fn push(&mut self, sample: Sample, window: usize) {
        let samples = self.0.get_or_insert_default();
        if samples.len() == samples.capacity() {
            let most = (window + 1).saturating_sub(samples.len()).max(1);
            samples.reserve_exact((samples.len() / 2).max(4).min(most));
        }
        samples.push_back(sample);
    }

    /// Drops the samples of polls before `oldest` (`next` is the number of the poll to record next).
    fn prune(&mut self, oldest: u64, next: u64) {
        let Some(samples) = self.0.as_mut() else {
            return;
        };
        while samples
            .front()
            .is_some_and(|s| full_seq(next, s.seq) < oldest)
        {
            samples.pop_front();
        }
        if samples.is_empty() {
            self.0 = None;
        }
    }

    fn iter(&self) -> impl DoubleEndedIterator<Item = &Sample> {
        self.0.iter().flat_map(|s| s.iter())
    }

    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |s| s.len())
    }

    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.0.as_ref().map_or(0, |s| s.capacity())
    }
}

/// What the history window says of one profile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowStats {
    /// Failed acquisitions seen over the window.
    pub failures: u64,
    /// Polls in which someone waited on the profile's rows.
    pub polls_with_waiters: u32,
    /// Polls in which the set of holders changed (hand-overs, takeovers of expired rows).
    pub holder_changes: u32,
}

/// What a poll saw of one profile, as fed into [`History::record`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProfileObservation {
    /// Sum of `contention_count` over the profile's rows, when the table has that column.
    pub failure_count: Option<i64>,
    /// Latest `contended_since` over the rows: a change means a new episode and a reset counter.
    pub episode_start: Option<DateTime<Utc>>,
    /// Sessions waiting on the profile's rows now.
    pub waiters: u32,
    /// Fingerprint of the owners holding the profile's rows (see [`holders_fingerprint`]), when known.
    pub holders: Option<u64>,
}

/// An order-independent fingerprint of a set of owner tokens, so that a holder change is seen whatever order
/// the rows came in.
pub fn holders_fingerprint<'a>(owners: impl IntoIterator<Item = &'a str>) -> u64 {
    use std::hash::BuildHasher;
    // A fixed seed: fingerprints of one poll are compared with the previous poll's.
    let hasher = foldhash::fast::FixedState::with_seed(0);
    owners
        .into_iter()
        .fold(0_u64, |acc, owner| acc ^ hasher.hash_one(owner))
}

impl Default for History {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl History {
    /// A history that keeps the last `capacity` polls (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            next_seq: 0,
            missed: VecDeque::with_capacity(capacity.max(1)),
            profiles: HashMap::new(),
            observed: HashMap::new(),
            deadlocks: VecDeque::new(),
            deadlock_minutes: VecDeque::with_capacity(DEADLOCK_MINUTES + 1),
            carried: None,
            fed: 0,
        }
    }

    /// Records the database's deadlock counter read at `at`, keeping readings as far back as `window`.
    pub fn record_deadlocks(
        &mut self,
        at: DateTime<Utc>,
        count: Option<i64>,
        window: chrono::Duration,
    ) {
        let Some(count) = count else { return };
        if let Some(&(_, previous)) = self.deadlocks.back() {
            // The counter's rise since the previous reading (a reset counts from zero), in this minute.
            let new = if count >= previous {
                count - previous
            } else {
                count
            };
            let minute = at.timestamp().div_euclid(60);
            match self.deadlock_minutes.back_mut() {
                Some((m, n)) if *m == minute => *n = n.saturating_add(new as u32),
                _ => self.deadlock_minutes.push_back((minute, new as u32)),
            }
            while self
                .deadlock_minutes
                .front()
                .is_some_and(|(m, _)| minute - m >= DEADLOCK_MINUTES as i64)
            {
                self.deadlock_minutes.pop_front();
            }
        }
        self.deadlocks.push_back((at, count));
        while self
            .deadlocks
            .front()
            .is_some_and(|(t, _)| at - *t > window)
        {
            self.deadlocks.pop_front();
        }
    }

    /// Deadlocks counted within the window kept (the counter's rise; a reset counts from zero).
    pub fn deadlocks_in_window(&self) -> Option<i64> {
        let (_, first) = self.deadlocks.front()?;
        let (_, last) = self.deadlocks.back()?;
        Some(if last >= first { last - first } else { *last })
    }

    /// Deadlocks per minute over the last `minutes` minutes up to `now`'s, oldest first: `None` for a minute
    /// with no reading (before locktop started, or while the database could not be read).
    pub fn deadlocks_per_minute(&self, now: DateTime<Utc>, minutes: usize) -> Vec<Option<u32>> {
        let last = now.timestamp().div_euclid(60);
        (0..minutes as i64)
            .rev()
            .map(|back| {
                let minute = last - back;
                self.deadlock_minutes
                    .iter()
                    .find(|(m, _)| *m == minute)
                    .map(|(_, n)| *n)
            })
            .collect()
    }

    /// Polls the window holds when full.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Polls in the window so far, missed ones included: the capacity once the window is full.
    pub fn polls(&self) -> usize {
        self.missed.len()
    }

    /// Records one successful poll at server time `now`. Returns nothing: read samples with [`Self::sparkline`].
    pub fn record<'a>(
        &mut self,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
        observations: impl IntoIterator<Item = (&'a str, ProfileObservation)>,
    ) {
        self.carried = None;
        self.record_seen(
            (now, ttl),
            observations
                .into_iter()
                .map(|(profile, seen)| (profile, Seen::All(seen))),
        );
    }

    /// Remembers that the poll just recorded fed every profile of these summaries (one list per database):
    /// a later poll with the very same ones may feed only the profiles seen apart from them (see
    /// [`Self::record_apart`]).
    pub fn carry(&mut self, summaries: Vec<Arc<Vec<ProfileSummary>>>) {
        let Some(seq) = self.next_seq.checked_sub(1) else {
            return;
        };
        self.carried = summaries.iter().any(|s| !s.is_empty()).then_some(Carried {
            summaries,
            fed: seq,
            seen: seq,
        });
    }

    /// Whether these summaries (one list per database) are the very ones of the last poll that fed every
    /// profile (see [`Self::carry`]).
    pub fn carries(&self, summaries: &[&Arc<Vec<ProfileSummary>>]) -> bool {
        self.carried.as_ref().is_some_and(|c| {
            c.summaries.len() == summaries.len()
                && c.summaries
                    .iter()
                    .zip(summaries)
                    .all(|(a, b)| Arc::ptr_eq(a, b))
        })
    }

    /// Records a poll whose summaries are those carried (see [`Self::carries`]): a profile known only from
    /// them would be fed what it was fed before, and tell nothing new, so only the profiles seen apart are
    /// fed: those read in detail (`detailed`), and those waited on (`waited`, with their waiters; the rest as
    /// last fed). Every profile of the summaries counts as seen at this poll.
    pub fn record_apart<'a>(
        &mut self,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
        detailed: impl IntoIterator<Item = (&'a str, ProfileObservation)>,
        waited: impl IntoIterator<Item = (&'a str, u32)>,
    ) {
        let detailed = detailed
            .into_iter()
            .map(|(profile, seen)| (profile, Seen::All(seen)));
        let waited = waited
            .into_iter()
            .map(|(profile, waiters)| (profile, Seen::Waiters(waiters)));
        self.record_seen((now, ttl), detailed.chain(waited));
    }

    /// Records a poll that saw these profiles; the profiles of the summaries carried, if any, count as seen.
    fn record_seen<'a>(
        &mut self,
        (now, ttl): (DateTime<Utc>, chrono::Duration),
        seen: impl IntoIterator<Item = (&'a str, Seen)>,
    ) {
        let seq = self.push_poll(false);
        self.fed = 0;
        if let Some(c) = &mut self.carried {
            c.seen = seq;
        }
        for (profile, seen) in seen {
            self.feed(seq, (now, ttl), profile, seen);
        }
        self.prune();
    }

    /// Feeds what poll `seq` saw of `profile`.
    fn feed(
        &mut self,
        seq: u64,
        (now, ttl): (DateTime<Utc>, chrono::Duration),
        profile: &str,
        seen: Seen,
    ) {
        self.fed += 1;
        // Found by reference: a name is copied only for a profile not seen before.
        let entry = match self.profiles.get_mut(profile) {
            Some(entry) => entry,
            None => self.profiles.entry(Box::from(profile)).or_default(),
        };
        let seen = match seen {
            Seen::All(seen) => seen,
            Seen::Waiters(waiters) => ProfileObservation {
                failure_count: entry.has_count.then_some(entry.last_count),
                episode_start: entry.last_start,
                waiters,
                holders: entry.has_holders.then_some(entry.last_holders),
            },
        };
        entry.last_seen_seq = seq;
        let last = entry
            .has_count
            .then_some((entry.last_count, entry.last_start));
        let failures = match (seen.failure_count, last) {
            (Some(count), Some((previous, previous_start))) => {
                if seen.episode_start != previous_start || count < previous {
                    // A new episode restarted the counter: everything in it is new.
                    count.max(0)
                } else {
                    count - previous
                }
            }
            // The first poll cannot tell when earlier failures happened.
            _ => 0,
        };
        entry.has_count = seen.failure_count.is_some();
        entry.last_count = seen.failure_count.unwrap_or_default();
        entry.last_start = seen.episode_start.filter(|_| entry.has_count);
        let last_holders = entry.has_holders.then_some(entry.last_holders);
        let holder_changed = matches!((last_holders, seen.holders), (Some(a), Some(b)) if a != b);
        if let Some(holders) = seen.holders {
            entry.last_holders = holders;
            entry.has_holders = true;
        }
        let failures = u32::try_from(failures.max(0)).unwrap_or(u32::MAX);
        if holder_changed && failures == 0 && seen.waiters == 0 {
            entry
                .samples
                .push(Sample::new(seq, failures, 0, holder_changed), self.capacity);
        }
        if failures > 0 || seen.waiters > 0 {
            entry.samples.push(
                Sample::new(seq, failures, seen.waiters, holder_changed),
                self.capacity,
            );
            let episode = match self.observed.get(profile) {
                Some(&(start, last)) if now - last <= ttl => (start, now),
                _ => (now, now),
            };
            self.observed.insert(profile.to_owned(), episode);
        }
    }

    /// Records a poll that failed: every profile gets a gap.
    pub fn record_missed(&mut self) {
        self.push_poll(true);
        self.prune();
    }

    fn push_poll(&mut self, missed: bool) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        if self.missed.len() == self.capacity {
            self.missed.pop_front();
        }
        self.missed.push_back(missed);
        seq
    }

    fn oldest_kept(&self) -> u64 {
        self.next_seq.saturating_sub(self.capacity as u64)
    }

    fn prune(&mut self) {
        let (oldest, next) = (self.oldest_kept(), self.next_seq);
        // Fed from the carried summaries, or apart since: seen at the latest poll that had them.
        let carried = self
            .carried
            .as_ref()
            .filter(|c| c.seen >= oldest)
            .map(|c| c.fed);
        self.profiles.retain(|_, p| {
            p.samples.prune(oldest, next);
            // A profile that vanished from the table is forgotten once it has left the window.
            p.last_seen_seq >= oldest || carried.is_some_and(|fed| p.last_seen_seq >= fed)
        });
        let profiles = &self.profiles;
        self.observed
            .retain(|name, _| profiles.contains_key(name.as_str()));
    }

    /// The last `width` cells of a profile's contention, oldest first, each `per_cell` polls wide (at least
    /// one): the worst sample of the cell's polls (zero when calm), `None` when all of them failed (a gap).
    /// Cells are aligned on the poll count, so every profile's line takes a new cell at the same poll; the
    /// last cell holds the polls so far. Shorter than `width` while fewer polls were recorded.
    pub fn sparkline(&self, profile: &str, width: usize, per_cell: usize) -> Vec<Option<u32>> {
        let per_cell = per_cell.max(1) as u64;
        let Some(newest) = self.next_seq.checked_sub(1) else {
            return Vec::new();
        };
        let oldest = self.next_seq - self.missed.len() as u64;
        let last_cell = newest / per_cell;
        let first_cell = (last_cell + 1)
            .saturating_sub(width as u64)
            .max(oldest / per_cell);
        let first_seq = (first_cell * per_cell).max(oldest);
        let cell = |seq: u64| (seq / per_cell - first_cell) as usize;
        let mut out: Vec<Option<u32>> = vec![None; (last_cell + 1 - first_cell) as usize];
        let skip = (first_seq - oldest) as usize;
        for (seq, &missed) in (first_seq..).zip(self.missed.iter().skip(skip)) {
            if !missed {
                out[cell(seq)].get_or_insert(0);
            }
        }
        if let Some(p) = self.profiles.get(profile) {
            let next = self.next_seq;
            for sample in p
                .samples
                .iter()
                .rev()
                .take_while(|s| full_seq(next, s.seq) >= first_seq)
            {
                let value = sample.failures.saturating_add(sample.waiters());
                let slot = out[cell(full_seq(next, sample.seq))].get_or_insert(0);
                *slot = (*slot).max(value);
            }
        }
        out
    }

    /// Totals over the window for a profile: failures, polls with waiters, holder changes.
    pub fn window(&self, profile: &str) -> WindowStats {
        let mut stats = WindowStats::default();
        for s in self
            .profiles
            .get(profile)
            .into_iter()
            .flat_map(|p| p.samples.iter())
        {
            stats.failures += u64::from(s.failures);
            stats.polls_with_waiters += u32::from(s.waiters() > 0);
            stats.holder_changes += u32::from(s.holder_changed());
        }
        stats
    }

    /// Start and last sighting of the contention episode the monitor itself observed on a profile.
    pub fn observed_episode(&self, profile: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        self.observed.get(profile).copied()
    }

    /// The profiles on which the monitor observed contention within `ttl` before `now`: those whose
    /// [`Self::observed_episode`] makes them contended (few, however many profiles there are).
    pub fn observed_within(
        &self,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> impl Iterator<Item = &str> {
        self.observed
            .iter()
            .filter(move |(_, (_, last))| now - *last <= ttl)
            .map(|(name, _)| name.as_str())
    }

    /// Profiles the latest poll fed: every one, or only those seen apart from carried summaries (for the
    /// benchmarks and tests).
    pub fn profiles_fed(&self) -> usize {
        self.fed
    }

    /// Number of profiles with any state kept (for the memory benchmark and tests).
    pub fn tracked_profiles(&self) -> usize {
        self.profiles.len()
    }

    /// Number of stored non-zero samples over all profiles (for the memory benchmark and tests).
    pub fn stored_samples(&self) -> usize {
        self.profiles.values().map(|p| p.samples.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_clock::t;

    fn seen(count: i64, waiters: u32) -> ProfileObservation {
        ProfileObservation {
            failure_count: Some(count),
            episode_start: Some(t(0)),
            waiters,
            holders: None,
        }
    }

    const TTL: chrono::Duration = chrono::Duration::seconds(30);

    #[test]
    fn deadlocks_are_counted_per_minute_with_gaps_where_nothing_was_read() {
        let mut h = History::default();
        let window = chrono::Duration::minutes(5);
        // t(0) is 20 s into its minute: readings at 0 s, 30 s (+2), 50 s (+1, next minute), then none for
        // two minutes, then one 3 minutes on (+4, its counter having reset to 4).
        let base = t(0) - chrono::Duration::seconds(t(0).timestamp().rem_euclid(60));
        for (s, count) in [(0, 10), (30, 12), (70, 13), (250, 4)] {
            h.record_deadlocks(base + chrono::Duration::seconds(s), Some(count), window);
        }
        assert_eq!(
            h.deadlocks_per_minute(base + chrono::Duration::seconds(250), 5),
            [Some(2), Some(1), None, None, Some(4)]
        );
        // Ten minutes later only what is within the last ten minutes is kept.
        h.record_deadlocks(base + chrono::Duration::seconds(900), Some(4), window);
        assert_eq!(
            h.deadlocks_per_minute(base + chrono::Duration::seconds(900), 12)[..2],
            [None, None]
        );
        assert_eq!(h.deadlock_minutes.len(), 1);
    }

    #[test]
    fn a_profile_contended_throughout_holds_a_window_of_samples_and_gives_the_ring_back_when_calm()
    {
        let window = 600;
        let mut h = History::with_capacity(window);
        for poll in 0..3 * window as i64 {
            h.record(t(poll), TTL, [("p", seen(poll + 1, 1))]);
        }
        let ring = &h.profiles["p"].samples;
        assert_eq!(ring.len(), window);
        assert!(ring.capacity() <= window + 1, "{}", ring.capacity());
        assert_eq!(h.window("p").polls_with_waiters, 600);
        assert_eq!(std::mem::size_of::<Sample>(), 12);
        assert_eq!(std::mem::size_of::<ProfileHistory>(), 48);
        for poll in 3 * window as i64..4 * window as i64 {
            h.record(t(poll), TTL, [("p", seen(3 * window as i64, 0))]);
        }
        assert_eq!(h.profiles["p"].samples.capacity(), 0);
    }

    #[test]
    fn samples_keep_their_polls_across_the_wrap_of_their_low_32_bits() {
        let mut h = History::with_capacity(10);
        h.next_seq = (1 << 32) - 5;
        for poll in 0..20 {
            h.record(t(poll), TTL, [("p", seen(poll + 1, 1))]);
        }
        assert_eq!(h.stored_samples(), 10);
        assert_eq!(h.window("p").polls_with_waiters, 10);
        assert_eq!(h.sparkline("p", 10, 1), vec![Some(2); 10]);
        assert_eq!(h.sparkline("p", 2, 5), vec![Some(2); 2]);
    }

    #[test]
    fn a_sample_keeps_its_waiters_and_holder_change_apart() {
        for (waiters, changed) in [(0, true), (5, false), (5, true), (u32::MAX, false)] {
            let s = Sample::new(1, 2, waiters, changed);
            assert_eq!(s.waiters(), waiters.min((1 << 31) - 1));
            assert_eq!(s.holder_changed(), changed);
        }
    }

    #[test]
    fn samples_are_failures_since_the_previous_poll_plus_waiters() {
        let mut h = History::with_capacity(10);
        h.record(t(0), TTL, [("p", seen(5, 0))]);
        h.record(t(1), TTL, [("p", seen(8, 0))]);
        h.record(t(2), TTL, [("p", seen(8, 2))]);
        h.record(t(3), TTL, [("p", seen(8, 0))]);
        assert_eq!(
            h.sparkline("p", 10, 1),
            vec![Some(0), Some(3), Some(2), Some(0)]
        );
    }

    #[test]
    fn a_new_episode_counts_its_whole_counter_as_new_failures() {
        let mut h = History::with_capacity(10);
        h.record(t(0), TTL, [("p", seen(50, 0))]);
        let restarted = ProfileObservation {
            failure_count: Some(4),
            episode_start: Some(t(100)),
            waiters: 0,
            holders: None,
        };
        h.record(t(100), TTL, [("p", restarted)]);
        assert_eq!(h.sparkline("p", 10, 1), vec![Some(0), Some(4)]);
    }

    #[test]
    fn the_window_counts_failures_waits_and_holder_changes_separately() {
        let mut h = History::with_capacity(10);
        let held_by = |owner: &str, count: i64, waiters: u32| ProfileObservation {
            holders: Some(holders_fingerprint([owner])),
            ..seen(count, waiters)
        };
        h.record(t(0), TTL, [("p", held_by("a", 0, 0))]);
        h.record(t(1), TTL, [("p", held_by("a", 2, 1))]);
        h.record(t(2), TTL, [("p", held_by("b", 2, 0))]);
        h.record(t(3), TTL, [("p", held_by("b", 5, 1))]);
        let w = h.window("p");
        assert_eq!(
            (w.failures, w.polls_with_waiters, w.holder_changes),
            (5, 2, 1)
        );
        assert_eq!(
            h.sparkline("p", 10, 1),
            vec![Some(0), Some(3), Some(0), Some(4)]
        );
        assert_eq!(
            holders_fingerprint(["x", "y"]),
            holders_fingerprint(["y", "x"])
        );
    }

    #[test]
    fn a_missed_poll_is_a_gap_not_a_zero() {
        let mut h = History::with_capacity(10);
        h.record(t(0), TTL, [("p", seen(1, 0))]);
        h.record_missed();
        h.record(t(2), TTL, [("p", seen(3, 0))]);
        assert_eq!(h.sparkline("p", 10, 1), vec![Some(0), None, Some(2)]);
        assert_eq!(h.sparkline("unknown", 2, 1), vec![None, Some(0)]);
    }

    #[test]
    fn a_cell_of_several_polls_holds_their_worst_and_is_a_gap_only_when_all_failed() {
        let mut h = History::with_capacity(100);
        // Polls 0..=9 in cells of 3: [0,1,2] [3,4,5] [6,7,8] [9] (the newest, partly filled).
        let failures = [0, 2, 7, 7, 8, 8, 8, 8, 8, 9];
        for (i, count) in failures.into_iter().enumerate() {
            if i == 6 || i == 7 || i == 8 {
                h.record_missed();
            } else {
                h.record(
                    t(i as i64),
                    TTL,
                    [("p", seen(count, u32::from(i == 4) * 4))],
                );
            }
        }
        // Cell 0: samples 0, 2, 5; cell 1: 0, 1+4 waiters, 0; cell 2: all missed; cell 3: 1 (9 - 8).
        assert_eq!(
            h.sparkline("p", 10, 3),
            vec![Some(5), Some(5), None, Some(1)]
        );
        // The newest cells only, cut on the same boundaries.
        assert_eq!(h.sparkline("p", 2, 3), vec![None, Some(1)]);
        assert_eq!(
            h.sparkline("calm", 10, 3),
            vec![Some(0), Some(0), None, Some(0)]
        );
        // Once the window has let go of a cell's first polls, the cell holds those left.
        let mut small = History::with_capacity(4);
        for i in 0..10 {
            small.record(t(i), TTL, [("p", seen(i * i, 0))]);
        }
        // Kept: polls 6..=9 (samples 11, 13, 15, 17): cells [6,7,8] and [9].
        assert_eq!(small.sparkline("p", 10, 3), vec![Some(15), Some(17)]);
    }

    #[test]
    fn memory_stays_bounded_by_the_capacity() {
        let mut h = History::with_capacity(5);
        for i in 0..1_000 {
            h.record(t(i), TTL, [("p", seen(i, 1))]);
        }
        assert_eq!(h.stored_samples(), 5);
        assert_eq!(h.sparkline("p", 100, 1).len(), 5);
    }

    #[test]
    fn profiles_that_leave_the_table_are_forgotten_after_the_window() {
        let mut h = History::with_capacity(3);
        h.record(t(0), TTL, [("gone", seen(1, 1))]);
        for i in 1..=3 {
            h.record(t(i), TTL, [("stays", seen(0, 0))]);
        }
        assert_eq!(h.tracked_profiles(), 1);
        assert!(h.observed_episode("gone").is_none());
    }

    #[test]
    fn observed_episodes_continue_while_contention_recurs_within_a_ttl() {
        let mut h = History::with_capacity(100);
        let quiet = ProfileObservation {
            failure_count: None,
            episode_start: None,
            waiters: 0,
            holders: None,
        };
        let waiting = ProfileObservation {
            waiters: 1,
            ..quiet
        };
        h.record(t(0), TTL, [("p", waiting)]);
        h.record(t(10), TTL, [("p", quiet)]);
        h.record(t(25), TTL, [("p", waiting)]);
        assert_eq!(h.observed_episode("p"), Some((t(0), t(25))));
        h.record(t(100), TTL, [("p", waiting)]);
        assert_eq!(h.observed_episode("p"), Some((t(100), t(100))));
    }
}
