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
//! From the mirror each poll takes what the dashboard shows in detail (every row of the profiles that matter:
//! a failure within the TTL, a held row past its expiry, a profile in focus) and, now and then, one summary per
//! profile, computed here instead of by the server.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::lease::{Delta, XidMark};
use crate::model::LeaseRow;
use crate::model::snapshot::ProfileSummary;

/// Polls for the sweep to re-read every page once.
pub const SWEEP_POLLS: u64 = 60;

/// One lease row of the mirror (its profile is the map's key).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    /// Interned: a table has few distinct keys (symbols) across many profiles.
    key: Option<Arc<str>>,
    owner: Option<Box<str>>,
    expires_at: Option<DateTime<Utc>>,
    acquired_at: Option<DateTime<Utc>>,
    contention_count: Option<i64>,
    contended_since: Option<DateTime<Utc>>,
    last_contended_at: Option<DateTime<Utc>>,
}

/// What the next incremental read asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Every row (the first read, or after the mirror lost step).
    All,
    /// The rows changed since this mark, and a sweep of pages `(from, to)`.
    Since(XidMark, (u64, u64)),
}

/// The mirror of the lease table.
#[derive(Debug, Default)]
pub struct Mirror {
    profiles: BTreeMap<Option<String>, Vec<Row>>,
    keys: HashSet<Arc<str>>,
    rows: usize,
    mark: Option<XidMark>,
    /// The next page of the sweep, and the table's size in pages at the last read.
    sweep_at: u64,
    pages: u64,
    /// Deleted rows to drop: the next poll reads every row's name.
    drop_deleted: bool,
    /// The mirror lost step: the next poll reads every row.
    reread: bool,
    /// Rows applied since the summaries were last taken.
    changed_since_summaries: bool,
}

impl Mirror {
    /// What the next read asks for.
    pub fn next(&self) -> Next {
        match &self.mark {
            Some(mark) if !self.reread => {
                let step = self.pages.div_ceil(SWEEP_POLLS).max(1);
                Next::Since(mark.clone(), (self.sweep_at, self.sweep_at + step))
            }
            _ => Next::All,
        }
    }

    /// Whether the next poll must also read every row's name, to drop deleted rows.
    pub fn needs_keys(&self) -> bool {
        self.drop_deleted
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
    pub fn apply(&mut self, rows: Vec<LeaseRow>, read: Delta) {
        if read.all {
            self.profiles.clear();
            self.rows = 0;
            self.reread = false;
            self.drop_deleted = false;
            self.sweep_at = 0;
        } else {
            let step = self.pages.div_ceil(SWEEP_POLLS).max(1);
            self.sweep_at += step;
            if self.sweep_at >= read.pages {
                self.sweep_at = 0;
            }
        }
        self.changed_since_summaries |= read.all || !rows.is_empty();
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
        self.profiles.retain(|group, list| {
            list.retain(|r| present.contains(&(group.as_deref(), r.key.as_deref())));
            rows += list.len();
            !list.is_empty()
        });
        self.rows = rows;
        self.drop_deleted = false;
        self.changed_since_summaries = true;
    }

    fn intern(&mut self, key: Option<String>) -> Option<Arc<str>> {
        let key = key?;
        if let Some(k) = self.keys.get(key.as_str()) {
            return Some(Arc::clone(k));
        }
        let k: Arc<str> = Arc::from(key);
        self.keys.insert(Arc::clone(&k));
        Some(k)
    }

    fn put(&mut self, row: LeaseRow) {
        let key = self.intern(row.key);
        let new = Row {
            key,
            owner: row.owner.map(String::into_boxed_str),
            expires_at: row.expires_at,
            acquired_at: row.acquired_at,
            contention_count: row.contention_count,
            contended_since: row.contended_since,
            last_contended_at: row.last_contended_at,
        };
        let list = self.profiles.entry(row.group).or_default();
        match list.binary_search_by(|r| r.key.cmp(&new.key)) {
            Ok(i) => list[i] = new,
            Err(i) => {
                list.insert(i, new);
                self.rows += 1;
            }
        }
    }

    /// Every row of the profiles that matter at `now`: a failure within `ttl`, a held row past its expiry, or
    /// named in `focus`.
    pub fn rows_that_matter(
        &self,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
        focus: &[String],
    ) -> Vec<LeaseRow> {
        let recent = now - ttl;
        let mut out = Vec::new();
        for (group, list) in &self.profiles {
            let matters = list.iter().any(|r| {
                r.last_contended_at.is_some_and(|at| at >= recent)
                    || (r.owner.is_some() && r.expires_at.is_some_and(|e| e <= now))
            }) || group.as_ref().is_some_and(|g| focus.contains(g));
            if matters {
                out.extend(list.iter().map(|r| LeaseRow {
                    group: group.clone(),
                    key: r.key.as_deref().map(str::to_owned),
                    owner: r.owner.as_deref().map(str::to_owned),
                    expires_at: r.expires_at,
                    acquired_at: r.acquired_at,
                    contention_count: r.contention_count,
                    contended_since: r.contended_since,
                    last_contended_at: r.last_contended_at,
                }));
            }
        }
        out
    }

    /// One summary per profile, as the server's aggregates gave them; `None` when nothing changed since the
    /// last ones taken (the caller keeps those).
    pub fn summaries(&mut self) -> Option<Vec<ProfileSummary>> {
        if !std::mem::take(&mut self.changed_since_summaries) {
            return None;
        }
        Some(
            self.profiles
                .iter()
                .map(|(group, list)| summary(group.as_ref(), list))
                .collect(),
        )
    }
}

/// A profile's aggregate: its rows, those held, the held row that expires first (by expiry, then key), the
/// sum of failures and the latest episode start.
fn summary(group: Option<&String>, list: &[Row]) -> ProfileSummary {
    let sample = list.iter().filter(|r| r.owner.is_some()).min_by(|a, b| {
        // Ascending expiry with unknown expiries last, as SQL's ORDER BY e sorts NULLs.
        let by_expiry = match (a.expires_at, b.expires_at) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        by_expiry.then_with(|| a.key.cmp(&b.key))
    });
    let counts: Vec<i64> = list.iter().filter_map(|r| r.contention_count).collect();
    ProfileSummary {
        group: group.cloned(),
        rows: list.len() as i64,
        held: list.iter().filter(|r| r.owner.is_some()).count() as i64,
        sample_key: sample.and_then(|r| r.key.as_deref().map(str::to_owned)),
        sample_owner: sample.and_then(|r| r.owner.as_deref().map(str::to_owned)),
        sample_acquired_at: sample.and_then(|r| r.acquired_at),
        next_expiry: list
            .iter()
            .filter(|r| r.owner.is_some())
            .filter_map(|r| r.expires_at)
            .min(),
        failure_total: (!counts.is_empty()).then(|| counts.iter().sum()),
        latest_contended_since: list.iter().filter_map(|r| r.contended_since).max(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

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
        }
    }

    #[test]
    fn changes_replace_rows_by_profile_and_key_and_new_keys_are_added() {
        let mut m = Mirror::default();
        assert_eq!(m.next(), Next::All);
        m.apply(
            vec![
                row("a", "S1", Some("w1"), 30),
                row("a", "S0", Some("w2"), 20),
                row("b", "S0", None, 5),
            ],
            read(3, 100, true),
        );
        assert_eq!(m.len(), 3);
        assert!(matches!(m.next(), Next::Since(ref mark, (0, 2)) if mark.xmax == 100));
        m.apply(
            vec![row("a", "S0", Some("w3"), 40), row("c", "S0", None, 5)],
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
            vec![row("a", "S0", Some("w"), 30), row("b", "S0", Some("w"), 30)],
            read(2, 1, true),
        );
        m.apply(vec![], read(1, 2, false));
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
        m.apply(vec![row("a", "S0", Some("w"), 30)], read(1, 1, true));
        m.apply(vec![], read(2, 2, false));
        assert_eq!(m.next(), Next::All);
    }

    #[test]
    fn the_rows_that_matter_are_every_row_of_a_contended_expired_or_focused_profile() {
        let mut m = Mirror::default();
        let mut contended = row("hot", "S0", Some("w"), 100);
        contended.last_contended_at = Some(at(1));
        m.apply(
            vec![
                contended,
                row("hot", "S1", Some("w"), 100),
                row("dead", "S0", Some("gone"), 5),
                row("released", "S0", None, 5),
                row("calm", "S0", Some("w"), 30),
                row("focus", "S0", Some("w"), 30),
            ],
            read(6, 1, true),
        );
        let rows = m.rows_that_matter(at(10), chrono::Duration::seconds(30), &["focus".into()]);
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

    #[test]
    fn snapshot_text_parses_to_the_low_32_bits_of_its_ids() {
        let m = XidMark::parse("4294967300:4294967310:4294967301,4294967305").expect("parses");
        assert_eq!(m.xmax, 14);
        assert_eq!(m.running, vec![5, 9]);
        assert!(XidMark::parse("10:12:").expect("parses").running.is_empty());
        assert!(XidMark::parse("nonsense").is_none());
    }
}
