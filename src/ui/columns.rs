//! The profiles table's columns, declared once: title, width, priority, alignment, and what a cell reads. The
//! dashboard lays them out for the terminal's width ([`layout`]): when the columns do not fit, the least
//! important go first (never the status, profile, key or TTL); the space left goes to the text columns up to
//! what their text needs, the owner taking the rest. `snapshot --format table` prints the same columns as plain
//! text, each as wide as its widest cell. A cell's text is the same in both; only the dashboard adds styles.
//!
//! A profile takes one line, for its most urgent held row (expired, then waited on or contended, then the
//! soonest to expire), with how many more it holds after its key (`BTC +3`); expanded, each other held row
//! follows on a line of its own, so that no held key's TTL hides behind a count.

use std::borrow::Cow;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::{Glyphs, text};
use crate::model::History;
use crate::model::rules::{display_value, human_duration};
use crate::model::service::ServiceView;
use crate::model::{ProfileView, RowView, Status};

/// Cells between two columns.
pub const SPACING: usize = 1;

/// A column of the profiles table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// Glyph and word, so that the status reads without colour.
    Status,
    Profile,
    /// The key of the line's row, and after it how many more the profile holds.
    Key,
    /// The row's owner token, cut in the middle so that both ends show.
    Owner,
    /// The backend that holds the row (`prepared` for a prepared transaction).
    Pid,
    /// Time left on the row's lease.
    Ttl,
    /// When the row was taken by its holder (server time).
    Held,
    /// How long the current contention episode has lasted.
    Contended,
    /// Failed acquisitions in the current episode.
    Fails,
    /// The service's failed acquisitions per second (with `--metrics-url`).
    Service,
    /// Contention over the last polls, as a sparkline.
    Trend,
}

/// How wide a column is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// Always this many cells.
    Fixed(usize),
    /// At least `min` cells, more as its text needs and room allows; `share` weighs it when room is short.
    Text { min: usize, share: usize },
}

/// What a column's layout needs to know of it.
pub trait Spec: Copy + PartialEq {
    fn width(self) -> Width;
    /// 0: never dropped; otherwise the higher, the sooner it goes when the columns do not fit.
    fn priority(self) -> u8;
}

/// What a cell needs besides its line: the time, and for the dashboard its history and the service.
#[derive(Debug, Clone, Copy)]
pub struct Cells<'a> {
    pub now: DateTime<Utc>,
    pub glyphs: Glyphs,
    pub history: Option<&'a History>,
    pub service: Option<&'a ServiceView>,
    /// Cells in the sparkline.
    pub spark: usize,
    /// Polls in each of its cells.
    pub per_cell: usize,
}

/// Polls in each cell of a sparkline `spark` cells wide, so that the line spans the escalation limit: a
/// profile's whole way to escalation is in view, and a line takes a new cell every few seconds rather than at
/// every poll (each cell is the worst of its polls, so no spike is lost). At most a minute of polls per cell,
/// and never more than the `history` (polls kept) can fill.
pub fn polls_per_cell(
    escalate_after: chrono::Duration,
    interval: std::time::Duration,
    spark: usize,
    history: usize,
) -> usize {
    let interval_ms = interval.as_millis().max(1);
    let span_ms = u128::try_from(escalate_after.num_milliseconds()).unwrap_or(0);
    let per_cell = span_ms.div_ceil(interval_ms * spark.max(1) as u128);
    // No wider than the history the line is drawn from.
    let most = (history / spark.max(1)).clamp(1, 60);
    usize::try_from(per_cell)
        .unwrap_or(usize::MAX)
        .clamp(1, most)
}

/// How long a sparkline of `spark` cells of `per_cell` polls spans, for its column's title.
pub fn spark_span(
    interval: std::time::Duration,
    spark: usize,
    per_cell: usize,
) -> std::time::Duration {
    interval * u32::try_from(spark * per_cell).unwrap_or(u32::MAX)
}

/// Cells in the sparkline: fewer on narrow terminals, so names keep their room.
pub fn spark_width(table_width: usize) -> usize {
    match table_width {
        0..100 => 8,
        100..180 => 16,
        _ => 24,
    }
}

/// One line of the profiles table: a profile's own line, or one more of its held rows.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'p> {
    pub profile: &'p ProfileView,
    /// The row the line shows (none for a profile nobody holds).
    pub row: Option<&'p RowView>,
    /// The profile's own line (status, episode, trend), not one of its further rows.
    pub first: bool,
    /// Rows it holds that have no line of their own (on its first line: `+N` after the key).
    pub more: usize,
}

/// The lines of profile `p`: its own, then (when `expand`) one per other held row it is known to hold.
pub fn entries(p: &ProfileView, now: DateTime<Utc>, expand: bool) -> Vec<Entry<'_>> {
    let rows = p.holders_by_urgency(now);
    let shown = if expand { rows.len().max(1) } else { 1 };
    let more = p.more_held().saturating_sub(shown.saturating_sub(1));
    let mut out = vec![Entry {
        profile: p,
        row: rows.first().copied().or_else(|| p.rows.first()),
        first: true,
        more,
    }];
    out.extend(rows.iter().skip(1).take(shown - 1).map(|r| Entry {
        profile: p,
        row: Some(r),
        first: false,
        more: 0,
    }));
    out
}

/// How many lines profile `p` takes expanded, once its every row is read.
pub fn lines_expanded(p: &ProfileView) -> usize {
    1 + p.more_held()
}

impl Column {
    /// The dashboard's columns, in order: the plain table's, the service's when its metrics are read, and
    /// the trend.
    pub fn dashboard(with_service: bool) -> Vec<Self> {
        let mut columns = Self::PLAIN.to_vec();
        if with_service {
            columns.push(Self::Service);
        }
        columns.push(Self::Trend);
        columns
    }

    /// The plain table's columns (`snapshot --format table`: one poll, no history to draw).
    pub const PLAIN: [Self; 9] = [
        Self::Status,
        Self::Profile,
        Self::Key,
        Self::Owner,
        Self::Pid,
        Self::Ttl,
        Self::Held,
        Self::Contended,
        Self::Fails,
    ];

    /// The column's title.
    pub fn title(self) -> &'static str {
        match self {
            Self::Status => "STATUS",
            Self::Profile => "PROFILE",
            Self::Key => "KEY",
            Self::Owner => "OWNER",
            Self::Pid => "PID",
            Self::Ttl => "TTL",
            Self::Held => "SINCE",
            Self::Contended => "CONTEND",
            Self::Fails => "FAILS",
            Self::Service => "SVC/s",
            Self::Trend => "TREND",
        }
    }

    /// Numbers and durations line up on the right.
    pub fn right_aligned(self) -> bool {
        matches!(
            self,
            Self::Pid | Self::Ttl | Self::Held | Self::Contended | Self::Fails | Self::Service
        )
    }

    /// Identifiers are cut in the middle: their ends tell them apart.
    fn cut_in_middle(self) -> bool {
        matches!(self, Self::Profile | Self::Key | Self::Owner)
    }

    /// What the cell of line `e` reads, whole (control characters are made visible when it is fitted).
    pub fn text<'p>(self, e: &Entry<'p>, cells: &Cells<'_>) -> Cow<'p, str> {
        let now = cells.now;
        let p = e.profile;
        let row = e.row;
        let dash = || Cow::Borrowed("-");
        match self {
            Self::Status if e.first => Cow::Borrowed(status_label(p.status, cells.glyphs)),
            Self::Profile if e.first => Cow::Borrowed(&p.profile),
            Self::Profile => Cow::Borrowed(if cells.glyphs.unicode { "  └" } else { "  `" }),
            Self::Key => match (row, e.more) {
                (None, 0) => dash(),
                (None, more) => Cow::Owned(format!("+{more}")),
                (Some(r), 0) => Cow::Borrowed(display_value(r.key.as_deref())),
                (Some(r), more) => {
                    Cow::Owned(format!("{} +{more}", display_value(r.key.as_deref())))
                }
            },
            Self::Owner => row
                .and_then(|r| r.owner.as_deref())
                .map_or_else(dash, Cow::Borrowed),
            Self::Pid => match row {
                Some(RowView { pid: Some(pid), .. }) => Cow::Owned(pid.to_string()),
                Some(RowView {
                    prepared: Some(_), ..
                }) => Cow::Borrowed("prepared"),
                _ => dash(),
            },
            Self::Ttl => row
                .and_then(|r| r.ttl_remaining(now))
                .map_or_else(dash, |d| Cow::Owned(human_duration(d))),
            // When the holder took the row (server time), rather than a duration that would tick on every
            // line every second: the same fact, and the terminal is spared a redraw per row per second.
            Self::Held => row
                .and_then(|r| r.acquired_at)
                .map_or_else(dash, |a| Cow::Owned(since(a, now))),
            Self::Contended if e.first => p
                .contended_for(now)
                .map_or_else(dash, |d| Cow::Owned(human_duration(d))),
            Self::Fails if e.first && p.contention_count > 0 => {
                Cow::Owned(p.contention_count.to_string())
            }
            Self::Fails => match row.and_then(RowView::contention_count).filter(|c| *c > 0) {
                Some(c) if !e.first => Cow::Owned(c.to_string()),
                _ if e.first => dash(),
                _ => Cow::Borrowed(""),
            },
            Self::Service if e.first => Cow::Owned(service_rate(cells.service, &p.profile)),
            Self::Trend if e.first => {
                let samples = cells
                    .history
                    .map(|h| h.sparkline(&p.profile, cells.spark, cells.per_cell))
                    .unwrap_or_default();
                Cow::Owned(sparkline(&samples, cells.spark, cells.glyphs))
            }
            Self::Status | Self::Contended | Self::Service | Self::Trend => Cow::Borrowed(""),
        }
    }

    /// The cell of line `e`, made safe and fitted to `width` cells: identifiers cut in the middle, the key's
    /// `+N` kept whole, numbers on the right.
    pub fn cell(self, e: &Entry<'_>, cells: &Cells<'_>, width: usize) -> String {
        if let (Self::Key, Some(r), 1..) = (self, e.row, e.more) {
            let suffix = format!(" +{}", e.more);
            let room = width.saturating_sub(suffix.len());
            if room >= 2 {
                let key = text::middle(display_value(r.key.as_deref()), room);
                return text::pad(key + &suffix, width);
            }
        }
        self.fit(&self.text(e, cells), width)
    }

    /// Text made safe and fitted to `width` cells as the column aligns and cuts.
    pub fn fit(self, s: &str, width: usize) -> String {
        if self.right_aligned() {
            text::pad_left(&text::clean(s, width), width)
        } else if self.cut_in_middle() {
            text::fit_middle(s, width)
        } else {
            text::fit(s, width)
        }
    }
}

impl Spec for Column {
    fn width(self) -> Width {
        match self {
            Self::Status => Width::Fixed(11),
            Self::Profile => Width::Text { min: 10, share: 2 },
            Self::Key => Width::Text { min: 6, share: 1 },
            Self::Owner => Width::Text { min: 10, share: 3 },
            Self::Pid | Self::Held => Width::Fixed(8),
            Self::Ttl | Self::Service => Width::Fixed(6),
            Self::Contended => Width::Fixed(7),
            Self::Fails => Width::Fixed(5),
            // Set by the layout from the sparkline's width.
            Self::Trend => Width::Fixed(0),
        }
    }

    fn priority(self) -> u8 {
        match self {
            Self::Status | Self::Profile | Self::Key | Self::Ttl => 0,
            Self::Owner => 1,
            Self::Pid => 2,
            Self::Contended => 3,
            Self::Trend => 4,
            Self::Service => 5,
            Self::Fails => 6,
            Self::Held => 7,
        }
    }
}

/// The columns that fit in `width` cells and their widths. The least important go first while the minimums do
/// not fit; then each text column grows toward what its text needs (`desired`, in cells), shares weighing who
/// gets what when room is short; room left after that goes to the last text column. `fixed` overrides a fixed
/// column's width (the trend's follows the sparkline).
pub fn layout<C: Spec>(
    columns: &[C],
    width: usize,
    fixed: impl Fn(C) -> Option<usize>,
    desired: impl Fn(C) -> usize,
) -> Vec<(C, usize)> {
    let base = |c: C| match c.width() {
        Width::Fixed(n) => fixed(c).unwrap_or(n),
        Width::Text { min, .. } => min,
    };
    let need = |cols: &[C]| -> usize {
        cols.iter().map(|c| base(*c)).sum::<usize>() + SPACING * cols.len().saturating_sub(1)
    };
    let mut kept: Vec<C> = columns.to_vec();
    while need(&kept) > width {
        let Some(drop) = kept
            .iter()
            .enumerate()
            .filter(|(_, c)| c.priority() > 0)
            .max_by_key(|(i, c)| (c.priority(), *i))
            .map(|(i, _)| i)
        else {
            break;
        };
        kept.remove(drop);
    }
    let mut widths: Vec<usize> = kept.iter().map(|c| base(*c)).collect();
    let mut spare = width.saturating_sub(need(&kept));
    // What each text column lacks of its text, and its share.
    let wants: Vec<(usize, usize)> = kept
        .iter()
        .zip(&widths)
        .map(|(c, w)| match c.width() {
            Width::Text { share, .. } => (desired(*c).saturating_sub(*w), share),
            Width::Fixed(_) => (0, 0),
        })
        .collect();
    let lacking: usize = wants.iter().map(|(n, _)| n).sum();
    if lacking <= spare {
        for (w, (n, _)) in widths.iter_mut().zip(&wants) {
            *w += n;
        }
        spare -= lacking;
    } else {
        // Short of room: by share, each capped at what it lacks, until the room is spent.
        while spare > 0 {
            let open: Vec<usize> = (0..kept.len())
                .filter(|&i| wants[i].0 > 0 && widths[i] < base(kept[i]) + wants[i].0)
                .collect();
            let parts: usize = open.iter().map(|&i| wants[i].1).sum();
            if parts == 0 {
                break;
            }
            let round = spare;
            for &i in &open {
                let give = (round * wants[i].1 / parts)
                    .max(1)
                    .min(base(kept[i]) + wants[i].0 - widths[i])
                    .min(spare);
                widths[i] += give;
                spare -= give;
            }
        }
    }
    if let Some(last) = kept
        .iter()
        .rposition(|c| matches!(c.width(), Width::Text { .. }))
    {
        widths[last] += spare;
    }
    kept.into_iter().zip(widths).collect()
}

/// One line of plain text: each cell fitted to its column's width, [`SPACING`] between, no trailing blanks.
pub fn plain_line<'a, C: Copy>(
    columns: &[(C, usize)],
    cell: impl Fn(C, usize) -> Cow<'a, str>,
) -> String {
    let mut out = String::new();
    for (i, (c, w)) in columns.iter().enumerate() {
        if i > 0 {
            out.push_str(&" ".repeat(SPACING));
        }
        out.push_str(&cell(*c, *w));
    }
    out.trim_end().to_owned()
}

/// Glyph and word, so that the status reads without colour.
pub fn status_label(status: Status, glyphs: Glyphs) -> &'static str {
    match (status, glyphs.unicode) {
        (Status::Ok, true) => "✓ ok",
        (Status::Contended, true) => "▲ contended",
        (Status::Expired, true) => "✗ expired",
        (Status::Escalated, true) => "‼ ESCALATED",
        (Status::Ok, false) => "  ok",
        (Status::Contended, false) => "^ contended",
        (Status::Expired, false) => "x expired",
        (Status::Escalated, false) => "! ESCALATED",
    }
}

/// The service's failed acquisitions per second for a profile: `-` when its metrics do not name it, `?`
/// until two scrapes gave a rate.
fn service_rate(service: Option<&ServiceView>, profile: &str) -> String {
    let Some(service) = service else {
        return String::new();
    };
    match service.profile(profile).map(|p| p.contention_per_s) {
        None => "-".to_owned(),
        Some(None) => "?".to_owned(),
        Some(Some(r)) if r >= 100.0 => format!("{r:.0}"),
        Some(Some(r)) => format!("{r:.1}"),
    }
}

/// A moment of server time in 8 cells: the time of day within the last day, else the date.
fn since(at: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> String {
    if now - at < chrono::Duration::days(1) {
        at.format("%H:%M:%S").to_string()
    } else {
        at.format("%b %d").to_string()
    }
}

/// Bars scaled to the window's maximum; a missed poll is a gap (a space), not a zero.
pub fn sparkline(samples: &[Option<u32>], width: usize, glyphs: Glyphs) -> String {
    const BARS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    const ASCII: [char; 9] = [' ', '.', ':', '-', '=', '+', '*', '#', '@'];
    let set = if glyphs.unicode { &BARS } else { &ASCII };
    let max = samples.iter().flatten().copied().max().unwrap_or(0).max(1);
    let pad = width.saturating_sub(samples.len());
    let mut out: String = std::iter::repeat_n(' ', pad).collect();
    for s in samples {
        out.push(match s {
            None => ' ',
            Some(0) => {
                if glyphs.unicode {
                    '·'
                } else {
                    '_'
                }
            }
            Some(v) => set[((u64::from(*v) * 8).div_ceil(u64::from(max))).clamp(1, 8) as usize],
        });
    }
    out
}

/// A column of the detail pane's list of a profile's lock rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowColumn {
    /// Shown whole, wrapped when it must.
    Key,
    /// Shown whole, wrapped when it must; `(released)` for a row nobody holds.
    Owner,
    Ttl,
    Held,
    Fails,
    /// The backend that holds it (`pid 123 app`), or the prepared transaction; and how many wait on it.
    Backend,
}

impl RowColumn {
    /// Every column, in order.
    pub const ALL: [Self; 6] = [
        Self::Key,
        Self::Owner,
        Self::Ttl,
        Self::Held,
        Self::Fails,
        Self::Backend,
    ];

    /// The column's title.
    pub fn title(self) -> &'static str {
        match self {
            Self::Key => "KEY",
            Self::Owner => "OWNER",
            Self::Ttl => "TTL",
            Self::Held => "HELD",
            Self::Fails => "FAILS",
            Self::Backend => "BACKEND",
        }
    }

    /// Numbers and durations line up on the right.
    pub fn right_aligned(self) -> bool {
        matches!(self, Self::Ttl | Self::Held | Self::Fails)
    }

    /// Tokens the operator may need to copy are never cut: they wrap.
    pub fn wraps(self) -> bool {
        matches!(self, Self::Key | Self::Owner)
    }

    /// What the cell of row `r` reads at `now`.
    pub fn text(self, r: &RowView, now: DateTime<Utc>) -> String {
        match self {
            Self::Key => display_value(r.key.as_deref()).to_owned(),
            Self::Owner => r.owner.as_deref().unwrap_or("(released)").to_owned(),
            Self::Ttl => r
                .ttl_remaining(now)
                .map_or_else(|| "-".to_owned(), human_duration),
            Self::Held => r
                .acquired_at
                .map_or_else(|| "-".into(), |a| human_duration(now - a)),
            Self::Fails => r
                .contention_count()
                .filter(|c| *c > 0)
                .map_or_else(|| "-".into(), |c| c.to_string()),
            Self::Backend => {
                let mut out = match (r.pid, &r.application, &r.prepared) {
                    (Some(pid), Some(app), _) => format!("pid {pid} {app}"),
                    (Some(pid), None, _) => format!("pid {pid}"),
                    (None, _, Some(gid)) => format!("prepared '{gid}'"),
                    _ => String::new(),
                };
                if r.waiters > 0 {
                    let _ = write!(out, "  {} waiting", r.waiters);
                }
                out
            }
        }
    }

    /// A cell's text made safe, as lines of at most `width` cells: wrapped for the tokens, cut for the rest.
    pub fn lines(self, s: &str, width: usize) -> Vec<String> {
        if self.wraps() {
            text::wrap(s, width)
                .into_iter()
                .map(|l| text::pad(l, width))
                .collect()
        } else if self.right_aligned() {
            vec![text::pad_left(&text::clean(s, width), width)]
        } else {
            vec![text::fit(s, width)]
        }
    }
}

impl Spec for RowColumn {
    fn width(self) -> Width {
        match self {
            Self::Key => Width::Text { min: 6, share: 1 },
            Self::Owner => Width::Text { min: 12, share: 2 },
            Self::Ttl | Self::Held => Width::Fixed(6),
            Self::Fails => Width::Fixed(5),
            Self::Backend => Width::Text { min: 10, share: 2 },
        }
    }

    fn priority(self) -> u8 {
        match self {
            Self::Key | Self::Owner | Self::Ttl => 0,
            Self::Backend => 1,
            Self::Held => 2,
            Self::Fails => 3,
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_sparkline_spans_the_escalation_limit_in_whole_polls_per_cell() {
        let s = std::time::Duration::from_secs;
        let secs = chrono::Duration::seconds;
        // The runbook's 90 s at 1 s polls: 16 cells of 6 polls, 96 s.
        assert_eq!(polls_per_cell(secs(90), s(1), 16, 600), 6);
        assert_eq!(spark_span(s(1), 16, 6), s(96));
        assert_eq!(polls_per_cell(secs(90), s(1), 24, 600), 4);
        // A limit shorter than the line: a poll per cell, as before.
        assert_eq!(polls_per_cell(secs(15), s(1), 16, 600), 1);
        assert_eq!(polls_per_cell(secs(0), s(1), 16, 600), 1);
        assert_eq!(
            polls_per_cell(secs(90), std::time::Duration::from_millis(250), 8, 600),
            45
        );
        // Never so coarse that a cell stands for more than a minute of polls.
        assert_eq!(polls_per_cell(secs(86_400), s(1), 8, 600), 60);
        // Polls of 100 ms keep a minute of history (600 polls): 16 cells of 37, not of 57, fill it.
        assert_eq!(
            polls_per_cell(secs(90), std::time::Duration::from_millis(100), 16, 600),
            37
        );
    }
    use super::*;

    fn desired_of(c: Column) -> usize {
        match c {
            Column::Profile => 14,
            Column::Key => 6,
            Column::Owner => 36,
            _ => 0,
        }
    }

    #[test]
    fn narrow_terminals_drop_the_least_important_columns_and_keep_profile_key_ttl_owner_pid() {
        let columns = Column::dashboard(false);
        let at = |w: usize| {
            layout(
                &columns,
                w,
                |c| (c == Column::Trend).then_some(spark_width(w)),
                desired_of,
            )
        };
        let names = |l: &[(Column, usize)]| l.iter().map(|(c, _)| *c).collect::<Vec<_>>();
        let narrow = at(78);
        assert_eq!(
            names(&narrow),
            [
                Column::Status,
                Column::Profile,
                Column::Key,
                Column::Owner,
                Column::Pid,
                Column::Ttl,
                Column::Contended,
                Column::Trend
            ]
        );
        for w in [58, 78, 118, 198] {
            let l = at(w);
            let total: usize = l.iter().map(|(_, n)| n).sum::<usize>() + l.len() - 1;
            assert!(total <= w.max(40), "{w}: {l:?}");
            for must in [Column::Status, Column::Profile, Column::Key, Column::Ttl] {
                assert!(names(&l).contains(&must), "{w}: {must:?} dropped");
            }
        }
        let wide = at(198);
        assert_eq!(names(&wide).len(), columns.len(), "all fit at 200");
        let owner = wide
            .iter()
            .find(|(c, _)| *c == Column::Owner)
            .map(|(_, n)| *n);
        assert!(
            owner >= Some(36),
            "the owner whole and the rest to it: {wide:?}"
        );
        assert_eq!(
            wide.iter().map(|(_, n)| n).sum::<usize>() + wide.len() - 1,
            198,
            "no blank columns at the end"
        );
    }

    #[test]
    fn short_of_room_the_text_columns_share_by_weight_and_never_exceed_their_need() {
        let columns = [Column::Profile, Column::Key, Column::Owner];
        let l = layout(&columns, 40, |_| None, desired_of);
        let w: Vec<usize> = l.iter().map(|(_, n)| *n).collect();
        assert_eq!(w.iter().sum::<usize>() + 2, 40, "{w:?}");
        assert!(w[0] <= 14 && w[1] == 6, "{w:?}");
    }

    #[test]
    fn the_plain_table_aligns_numbers_right_and_shows_control_characters() {
        let line = plain_line(&[(Column::Profile, 10), (Column::Ttl, 6)], |c, w| {
            match c {
                Column::Profile => c.fit("p\u{1b}[2J", w),
                _ => c.fit("5s", w),
            }
            .into()
        });
        assert_eq!(line, format!("{:<10} {:>6}", "p^[[2J", "5s"));
    }
}
