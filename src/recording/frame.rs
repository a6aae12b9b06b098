//! The lease rows and aggregates that a recording's lines carry by delta: the frame a writer diffs against
//! and a reader applies to, and the two encodings of a line's changes — format 3's [`Delta`] (written), and
//! format 2's [`Changes`] (read, by turning it into a `Delta`).
//!
//! A `Delta` is written for size: at 50,000 profiles most of a recording is aggregates whose next expiry and
//! sample row moved. So its times are microseconds from the line's `server_now` (9 digits where a timestamp
//! takes 29 characters), and a changed aggregate carries only the fields that changed ([`Patch`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::de::{Error as _, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::snapshot::ProfileSummary;
use crate::model::{LeaseRow, Snapshot};

/// A (group, key) of a lease row.
pub type RowKey = (Option<Arc<str>>, Option<Arc<str>>);

/// A time on a format 3 line: microseconds after (or before) the line's `server_now`. PostgreSQL keeps times
/// to the microsecond, so nothing it gave is lost.
type Offset = i64;

fn offset(base: DateTime<Utc>, t: Option<DateTime<Utc>>) -> Option<Offset> {
    t.map(|t| t.timestamp_micros() - base.timestamp_micros())
}

fn at(base: DateTime<Utc>, off: Option<Offset>) -> Option<DateTime<Utc>> {
    off.and_then(|o| DateTime::from_timestamp_micros(base.timestamp_micros().checked_add(o)?))
}

/// Format 3: how a line's lease rows and aggregates differ from the previous line's, or, on a keyframe, all of
/// them; the same for each database of several (`parts`, by target).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// The frame starts over from nothing: this line holds every row and aggregate, and a reader can start
    /// here (the first line, then every [`super::KEYFRAME_POLLS`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keyframe: bool,
    /// Rows new, or changed otherwise than by their expiry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    rows: Vec<RowFields>,
    /// Rows whose only change is their expiry: group, key, new expiry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    renewed: Vec<Renewed>,
    /// Rows no longer in the snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    gone: Vec<RowKey>,
    /// Aggregates new or changed (only when they were refreshed), with only their changed fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    summaries: Vec<Patch>,
    /// Profiles whose aggregates are gone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    summaries_gone: Vec<Option<Arc<str>>>,
    /// Each database's own, when several are watched (a database whose rows did not change has none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    parts: BTreeMap<String, Delta>,
}

impl Delta {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A lease row as a JSON array, its times as offsets: group, key, owner, expires, acquired, contention count,
/// contended since, last contended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RowFields(
    Option<Arc<str>>,
    Option<Arc<str>>,
    Option<Arc<str>>,
    Option<Offset>,
    Option<Offset>,
    Option<i64>,
    Option<Offset>,
    Option<Offset>,
);

impl RowFields {
    fn of(r: &LeaseRow, base: DateTime<Utc>) -> Self {
        Self(
            r.group.clone(),
            r.key.clone(),
            r.owner.clone(),
            offset(base, r.expires_at),
            offset(base, r.acquired_at),
            r.contention_count,
            offset(base, r.contended_since),
            offset(base, r.last_contended_at),
        )
    }

    fn row(self, base: DateTime<Utc>) -> LeaseRow {
        LeaseRow {
            group: self.0,
            key: self.1,
            owner: self.2,
            expires_at: at(base, self.3),
            acquired_at: at(base, self.4),
            contention_count: self.5,
            contended_since: at(base, self.6),
            last_contended_at: at(base, self.7),
        }
    }
}

/// The fields of an aggregate that changed (all of them for a profile new to the frame), written as
/// `[profile, mask, field…]`: bit `i` of the mask says that the `i`-th field after the profile follows, in
/// [`ProfileSummary`]'s order (rows, held, sample key, sample owner, sample acquired, next expiry, failures,
/// latest contended since), times as offsets.
#[derive(Debug, Clone, Default, PartialEq)]
#[expect(
    clippy::option_option,
    reason = "a patch's field is left as it was (None), or set, to null (Some(None)) or a value"
)]
struct Patch {
    group: Option<Arc<str>>,
    rows: Option<i64>,
    held: Option<i64>,
    sample_key: Option<Option<Arc<str>>>,
    sample_owner: Option<Option<Arc<str>>>,
    sample_acquired_at: Option<Option<Offset>>,
    next_expiry: Option<Option<Offset>>,
    failure_total: Option<Option<i64>>,
    latest_contended_since: Option<Option<Offset>>,
}

impl Patch {
    /// From `old` (none: a new profile, every field) to `new`.
    fn between(old: Option<&ProfileSummary>, new: &ProfileSummary, base: DateTime<Utc>) -> Self {
        fn changed<T: PartialEq + Clone>(old: Option<&T>, new: &T) -> Option<T> {
            (old != Some(new)).then(|| new.clone())
        }
        let time = |t| offset(base, t);
        Self {
            group: new.group.clone(),
            rows: changed(old.map(|o| &o.rows), &new.rows),
            held: changed(old.map(|o| &o.held), &new.held),
            sample_key: changed(old.map(|o| &o.sample_key), &new.sample_key),
            sample_owner: changed(old.map(|o| &o.sample_owner), &new.sample_owner),
            sample_acquired_at: changed(
                old.map(|o| time(o.sample_acquired_at)).as_ref(),
                &time(new.sample_acquired_at),
            ),
            next_expiry: changed(
                old.map(|o| time(o.next_expiry)).as_ref(),
                &time(new.next_expiry),
            ),
            failure_total: changed(old.map(|o| &o.failure_total), &new.failure_total),
            latest_contended_since: changed(
                old.map(|o| time(o.latest_contended_since)).as_ref(),
                &time(new.latest_contended_since),
            ),
        }
    }

    /// `old` (none: a new profile) with this patch's fields.
    fn onto(self, old: Option<&ProfileSummary>, base: DateTime<Utc>) -> ProfileSummary {
        let mut s = old.cloned().unwrap_or_default();
        s.group = self.group;
        s.rows = self.rows.unwrap_or(s.rows);
        s.held = self.held.unwrap_or(s.held);
        s.sample_key = self.sample_key.unwrap_or(s.sample_key);
        s.sample_owner = self.sample_owner.unwrap_or(s.sample_owner);
        if let Some(t) = self.sample_acquired_at {
            s.sample_acquired_at = at(base, t);
        }
        if let Some(t) = self.next_expiry {
            s.next_expiry = at(base, t);
        }
        s.failure_total = self.failure_total.unwrap_or(s.failure_total);
        if let Some(t) = self.latest_contended_since {
            s.latest_contended_since = at(base, t);
        }
        s
    }

    /// Every field: an aggregate of format 2, which carried them all.
    fn whole(s: SummaryFields, base: DateTime<Utc>) -> Self {
        Self::between(None, &s.into(), base)
    }

    fn mask(&self) -> u8 {
        [
            self.rows.is_some(),
            self.held.is_some(),
            self.sample_key.is_some(),
            self.sample_owner.is_some(),
            self.sample_acquired_at.is_some(),
            self.next_expiry.is_some(),
            self.failure_total.is_some(),
            self.latest_contended_since.is_some(),
        ]
        .iter()
        .enumerate()
        .fold(0, |m, (i, set)| m | (u8::from(*set) << i))
    }
}

/// Calls `$m!` with a [`Patch`]'s fields after the profile, in the order of the mask's bits.
macro_rules! patch_fields {
    ($m:ident) => {
        $m!(
            rows,
            held,
            sample_key,
            sample_owner,
            sample_acquired_at,
            next_expiry,
            failure_total,
            latest_contended_since
        )
    };
}

impl Serialize for Patch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mask = self.mask();
        let mut seq = serializer.serialize_seq(Some(2 + mask.count_ones() as usize))?;
        seq.serialize_element(&self.group)?;
        seq.serialize_element(&mask)?;
        macro_rules! field {
            ($($f:ident),*) => {$(
                if let Some(v) = &self.$f {
                    seq.serialize_element(v)?;
                }
            )*};
        }
        patch_fields!(field);
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Patch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PatchVisitor;
        impl<'de> Visitor<'de> for PatchVisitor {
            type Value = Patch;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an aggregate's changes: [profile, mask, field…]")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Patch, A::Error> {
                let missing =
                    || A::Error::custom("an aggregate's changes end before its mask says");
                let group = seq.next_element()?.ok_or_else(missing)?;
                let mask: u8 = seq.next_element()?.ok_or_else(missing)?;
                let mut patch = Patch {
                    group,
                    ..Patch::default()
                };
                let mut bit = 0;
                macro_rules! field {
                    ($($f:ident),*) => {$(
                        if mask & (1 << bit) != 0 {
                            patch.$f = Some(seq.next_element()?.ok_or_else(missing)?);
                        }
                        bit += 1;
                    )*};
                }
                patch_fields!(field);
                let _ = bit;
                if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(A::Error::custom(
                        "an aggregate's changes go on past what its mask says",
                    ));
                }
                Ok(patch)
            }
        }
        deserializer.deserialize_seq(PatchVisitor)
    }
}

/// A [`ProfileSummary`] written as a JSON array, in the order of its fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SummaryFields(
    Option<Arc<str>>,
    i64,
    i64,
    Option<Arc<str>>,
    Option<Arc<str>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<i64>,
    Option<DateTime<Utc>>,
);

impl From<SummaryFields> for ProfileSummary {
    fn from(f: SummaryFields) -> Self {
        Self {
            group: f.0,
            rows: f.1,
            held: f.2,
            sample_key: f.3,
            sample_owner: f.4,
            sample_acquired_at: f.5,
            next_expiry: f.6,
            failure_total: f.7,
            latest_contended_since: f.8,
        }
    }
}

/// A renewed row: group, key, new expiry.
type Renewed = (Option<Arc<str>>, Option<Arc<str>>, Option<Offset>);

/// A renewed row of format 2: group, key, new expiry.
type Renewal = (Option<Arc<str>>, Option<Arc<str>>, Option<DateTime<Utc>>);

/// Format 2's changes of a line (read only): times as timestamps, aggregates whole.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Changes {
    #[serde(default)]
    rows: Vec<LeaseRow>,
    #[serde(default)]
    renewed: Vec<Renewal>,
    #[serde(default)]
    gone: Vec<RowKey>,
    #[serde(default)]
    summaries: Vec<SummaryFields>,
    #[serde(default)]
    summaries_gone: Vec<Option<Arc<str>>>,
}

impl Changes {
    /// The same changes as format 3 gives them, for a line at `base`.
    pub fn into_delta(self, base: DateTime<Utc>) -> Delta {
        Delta {
            keyframe: false,
            rows: self.rows.iter().map(|r| RowFields::of(r, base)).collect(),
            renewed: self
                .renewed
                .into_iter()
                .map(|(g, k, t)| (g, k, offset(base, t)))
                .collect(),
            gone: self.gone,
            summaries: self
                .summaries
                .into_iter()
                .map(|s| Patch::whole(s, base))
                .collect(),
            summaries_gone: self.summaries_gone,
            parts: BTreeMap::new(),
        }
    }
}

/// The lease rows and aggregates of the previous line: what the next line's changes are from (writing) or
/// applied to (reading). The aggregates are the very ones the previous snapshot carried (shared, not copied:
/// at 50,000 profiles a copy by name was tens of MB); lines are compared and applied by merging in the
/// order of profile. Several databases have a frame each.
#[derive(Debug, Default)]
pub struct Frame {
    rows: BTreeMap<RowKey, LeaseRow>,
    pub summaries: Arc<Vec<ProfileSummary>>,
    parts: BTreeMap<String, Frame>,
}

/// Aggregates in the order of their profile: as the mirror and the server give them, else sorted here.
fn in_order(summaries: &[ProfileSummary]) -> Vec<&ProfileSummary> {
    let mut refs: Vec<&ProfileSummary> = summaries.iter().collect();
    if !refs.is_sorted_by(|a, b| a.group <= b.group) {
        refs.sort_by(|a, b| a.group.cmp(&b.group));
    }
    refs
}

impl Frame {
    /// Takes a whole snapshot's rows and aggregates (a format 2 keyframe).
    pub fn keyframe(&mut self, snapshot: &Snapshot) {
        self.take_rows(snapshot);
        self.summaries = Arc::clone(&snapshot.summaries);
    }

    /// Takes a whole snapshot's rows (a format 2 keyframe whose aggregates are the previous line's).
    pub fn take_rows(&mut self, snapshot: &Snapshot) {
        self.rows = snapshot
            .leases
            .iter()
            .map(|r| ((r.group.clone(), r.key.clone()), r.clone()))
            .collect();
    }

    /// Makes the frame's rows `snapshot`'s (as [`Self::take_rows`] does), given the keys of the rows `gone`
    /// from it: in place, so that the rows that stayed the same are neither copied nor stored again. A
    /// frame made anew each poll stood beside the last while it was made, and when a whole table of owners
    /// dies at once the rows of every profile are in the snapshot.
    fn move_rows(&mut self, snapshot: &Snapshot, gone: &[RowKey]) {
        for key in gone {
            self.rows.remove(key);
        }
        for row in &snapshot.leases {
            match self.rows.get_mut(&(row.group.clone(), row.key.clone())) {
                Some(kept) if kept == row => {}
                Some(kept) => kept.clone_from(row),
                None => {
                    self.rows
                        .insert((row.group.clone(), row.key.clone()), row.clone());
                }
            }
        }
    }

    /// What changed from this frame to `snapshot` and to each of its databases (`parts`), and moves the frame
    /// there; from nothing when `keyframe`. Aggregates are compared only where the snapshot's are not the very
    /// ones the frame holds (they were refreshed).
    pub fn diff(&mut self, snapshot: &Snapshot, keyframe: bool) -> Delta {
        if keyframe {
            *self = Self::default();
        }
        let mut delta = self.diff_at(snapshot, snapshot.server_now);
        delta.keyframe = keyframe;
        delta
    }

    /// [`Frame::diff`], its times from `base` (the line's clock, also for each database's changes).
    fn diff_at(&mut self, snapshot: &Snapshot, base: DateTime<Utc>) -> Delta {
        let mut delta = Delta::default();
        let mut seen: HashSet<RowKey> = HashSet::with_capacity(snapshot.leases.len());
        for row in &snapshot.leases {
            let key = (row.group.clone(), row.key.clone());
            match self.rows.get(&key) {
                Some(old) if old == row => {}
                Some(old)
                    if row.expires_at.is_some()
                        && LeaseRow {
                            expires_at: row.expires_at,
                            ..old.clone()
                        } == *row =>
                {
                    delta.renewed.push((
                        key.0.clone(),
                        key.1.clone(),
                        offset(base, row.expires_at),
                    ));
                }
                _ => delta.rows.push(RowFields::of(row, base)),
            }
            seen.insert(key);
        }
        delta.gone = self
            .rows
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        self.move_rows(snapshot, &delta.gone);
        if !Arc::ptr_eq(&self.summaries, &snapshot.summaries) {
            delta.summaries_gone = self.diff_summaries(snapshot, base, &mut delta.summaries);
            self.summaries = Arc::clone(&snapshot.summaries);
        }
        self.parts
            .retain(|target, _| snapshot.parts.iter().any(|p| p.target == *target));
        for part in &snapshot.parts {
            let frame = self.parts.entry(part.target.clone()).or_default();
            let d = frame.diff_at(&part.snapshot, base);
            if !d.is_empty() {
                delta.parts.insert(part.target.clone(), d);
            }
        }
        delta
    }

    /// Pushes the patches from the frame's aggregates to `snapshot`'s, and gives the profiles gone.
    fn diff_summaries(
        &self,
        snapshot: &Snapshot,
        base: DateTime<Utc>,
        patches: &mut Vec<Patch>,
    ) -> Vec<Option<Arc<str>>> {
        let (old, new) = (in_order(&self.summaries), in_order(&snapshot.summaries));
        let mut gone = Vec::new();
        let (mut i, mut j) = (0, 0);
        loop {
            match (old.get(i), new.get(j)) {
                (Some(o), Some(n)) if o.group < n.group => {
                    gone.push(o.group.clone());
                    i += 1;
                }
                (Some(o), Some(n)) if o.group == n.group => {
                    if o != n {
                        patches.push(Patch::between(Some(o), n, base));
                    }
                    (i, j) = (i + 1, j + 1);
                }
                (_, Some(n)) => {
                    patches.push(Patch::between(None, n, base));
                    j += 1;
                }
                (Some(o), None) => {
                    gone.push(o.group.clone());
                    i += 1;
                }
                (None, None) => break,
            }
        }
        gone
    }

    /// Applies a line's changes (or, on a keyframe, its whole rows and aggregates) and gives its snapshot, and
    /// each of its databases', the rows and aggregates they make.
    pub fn apply(&mut self, delta: Delta, snapshot: &mut Snapshot) {
        if delta.keyframe {
            *self = Self::default();
        }
        let base = snapshot.server_now;
        self.apply_at(delta, snapshot, base);
    }

    /// [`Frame::apply`], its times from `base` (the line's clock, also for each database's changes).
    fn apply_at(&mut self, mut delta: Delta, snapshot: &mut Snapshot, base: DateTime<Utc>) {
        for key in delta.gone {
            self.rows.remove(&key);
        }
        for (group, key, expires) in delta.renewed {
            if let Some(row) = self.rows.get_mut(&(group, key)) {
                row.expires_at = at(base, expires);
            }
        }
        for fields in delta.rows {
            let row = fields.row(base);
            self.rows.insert((row.group.clone(), row.key.clone()), row);
        }
        snapshot.leases = self.rows.values().cloned().collect();
        if !delta.summaries.is_empty() || !delta.summaries_gone.is_empty() {
            self.apply_summaries(delta.summaries, &delta.summaries_gone, base);
        }
        snapshot.summaries = Arc::clone(&self.summaries);
        self.parts
            .retain(|target, _| snapshot.parts.iter().any(|p| p.target == *target));
        for part in &mut snapshot.parts {
            let d = delta.parts.remove(&part.target).unwrap_or_default();
            self.parts.entry(part.target.clone()).or_default().apply_at(
                d,
                &mut part.snapshot,
                base,
            );
        }
    }

    fn apply_summaries(
        &mut self,
        mut patches: Vec<Patch>,
        gone: &[Option<Arc<str>>],
        base: DateTime<Utc>,
    ) {
        patches.sort_by(|a, b| a.group.cmp(&b.group));
        let gone: HashSet<&Option<Arc<str>>> = gone.iter().collect();
        let old = in_order(&self.summaries);
        let mut out = Vec::with_capacity(old.len() + patches.len());
        let mut patches = patches.into_iter().peekable();
        for o in old {
            while let Some(p) = patches.next_if(|p| p.group < o.group) {
                out.push(p.onto(None, base));
            }
            match patches.next_if(|p| p.group == o.group) {
                Some(p) => out.push(p.onto(Some(o), base)),
                None if !gone.contains(&o.group) => out.push(o.clone()),
                None => {}
            }
        }
        out.extend(patches.map(|p| p.onto(None, base)));
        self.summaries = Arc::new(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_796_000_000 + s, 123_456_000).expect("time")
    }

    fn summary(group: &str, key: &str, next_expiry: i64) -> ProfileSummary {
        ProfileSummary {
            group: Some(group.into()),
            rows: 4,
            held: 4,
            sample_key: Some(key.into()),
            sample_owner: Some(format!("worker-{key}").into()),
            sample_acquired_at: Some(t(-600)),
            next_expiry: Some(t(next_expiry)),
            failure_total: Some(0),
            latest_contended_since: None,
        }
    }

    fn at_with(now: i64, summaries: Vec<ProfileSummary>) -> Snapshot {
        let mut s = Snapshot::at(t(now));
        s.summaries = Arc::new(summaries);
        s
    }

    #[test]
    fn an_aggregate_that_changed_is_written_with_only_its_changed_fields_and_offsets() {
        let mut writer = Frame::default();
        let first = at_with(0, vec![summary("p1", "S1", 10), summary("p2", "S1", 10)]);
        let keyframe = serde_json::to_string(&writer.diff(&first, true)).expect("json");
        // A new profile carries every field (mask 255; null is a field too).
        assert!(
            keyframe.contains(r#"["p1",255,4,4,"S1","worker-S1",-600000000,10000000,0,null]"#),
            "{keyframe}"
        );
        // p1's sample row moved to another symbol with a later expiry; p2 only renewed.
        let second = at_with(1, vec![summary("p1", "S2", 25), summary("p2", "S1", 30)]);
        let delta = writer.diff(&second, false);
        let json = serde_json::to_string(&delta).expect("json");
        assert_eq!(
            json,
            r#"{"summaries":[["p1",44,"S2","worker-S2",24000000],["p2",32,29000000]]}"#
        );
        // Read back onto the first line's aggregates, they are the second's.
        let mut reader = Frame::default();
        let mut got = at_with(0, Vec::new());
        reader.apply(serde_json::from_str(&keyframe).expect("parses"), &mut got);
        assert_eq!(got.summaries, first.summaries);
        let mut got = at_with(1, Vec::new());
        reader.apply(serde_json::from_str(&json).expect("parses"), &mut got);
        assert_eq!(got.summaries, second.summaries);
    }

    #[test]
    fn the_writers_frame_holds_each_polls_rows_after_its_line_as_one_taken_whole_would() {
        let row = |group: &str, key: &str, owner: &str, expires: i64| LeaseRow {
            group: Some(group.into()),
            key: Some(key.into()),
            owner: Some(owner.into()),
            expires_at: Some(t(expires)),
            acquired_at: None,
            contention_count: Some(0),
            contended_since: None,
            last_contended_at: None,
        };
        let polls: [Vec<LeaseRow>; 5] = [
            vec![row("a", "S", "w", 30), row("b", "S", "w", 30)],
            // Renewed, and a row joins.
            vec![
                row("a", "S", "w", 31),
                row("b", "S", "w", 30),
                row("c", "S", "x", 5),
            ],
            // An owner changes, a row leaves.
            vec![row("a", "S", "v", 31), row("c", "S", "x", 5)],
            // Twice the same row (a table without a unique key): the last one stands, as taken whole.
            vec![
                row("a", "S", "v", 31),
                row("a", "S", "u", 40),
                row("c", "S", "x", 5),
            ],
            Vec::new(),
        ];
        let mut writer = Frame::default();
        for (i, leases) in polls.into_iter().enumerate() {
            let s = Snapshot {
                leases,
                ..Snapshot::at(t(i as i64))
            };
            writer.diff(&s, i == 0);
            let mut whole = Frame::default();
            whole.take_rows(&s);
            assert_eq!(writer.rows, whole.rows, "poll {i}");
        }
    }

    #[test]
    fn an_aggregate_whose_mask_and_fields_disagree_is_refused() {
        for bad in [
            r#"["p1",3,4]"#,
            r#"["p1",1,4,4]"#,
            r#"["p1"]"#,
            r#"["p1",1,"four"]"#,
        ] {
            assert!(serde_json::from_str::<Patch>(bad).is_err(), "{bad}");
        }
        let ok: Patch = serde_json::from_str(r#"["p1",3,4,2]"#).expect("parses");
        assert_eq!((ok.rows, ok.held, ok.next_expiry), (Some(4), Some(2), None));
    }

    #[test]
    fn times_are_exact_to_the_microsecond_on_either_side_of_the_lines_clock() {
        let base = t(0);
        for s in [t(-86_400), t(-1), t(0), t(31), t(86_400 * 365)] {
            assert_eq!(at(base, offset(base, Some(s))), Some(s));
        }
        assert_eq!(at(base, offset(base, None)), None);
        // An offset past what a time can hold is no time, not a panic.
        assert_eq!(at(base, Some(i64::MAX)), None);
    }
}
