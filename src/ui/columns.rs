//! The profiles table's columns, declared once: title, width, alignment, and what a cell reads. The dashboard
//! lays them out with ratatui's `Table` (widths from `Constraint`s: fixed columns, and shares of what is left
//! for the text columns); `snapshot --format table` prints the same columns as plain text. A column's cell
//! text is the same in both; only the dashboard adds styles.

use std::borrow::Cow;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use ratatui::layout::{Constraint, Layout, Rect};

use super::{Glyphs, text};
use crate::model::History;
use crate::model::rules::{display_value, human_duration};
use crate::model::service::ServiceView;
use crate::model::{ProfileView, RowView, Status};

/// A column of the profiles table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// Glyph and word, so that the status reads without colour.
    Status,
    Profile,
    /// The holder that expires first (`owner@key [pid]`), and how many more.
    Holder,
    /// Time left on the first lease to expire.
    Ttl,
    /// How long the longest holder has held it.
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
    Fixed(u16),
    /// A share of the width the fixed columns leave (in the plain table: this many cells).
    Share { parts: u16, plain: usize },
}

/// What a cell needs besides its profile: the time, and for the dashboard its history and the service.
#[derive(Debug, Clone, Copy)]
pub struct Cells<'a> {
    pub now: DateTime<Utc>,
    pub glyphs: Glyphs,
    pub history: Option<&'a History>,
    pub service: Option<&'a ServiceView>,
    /// Polls shown in the sparkline.
    pub spark: usize,
}

/// Polls shown in the sparkline: fewer on narrow terminals, so names keep their room.
pub fn spark_width(table_width: usize) -> usize {
    if table_width < 100 { 8 } else { 16 }
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
    pub const PLAIN: [Self; 7] = [
        Self::Status,
        Self::Profile,
        Self::Holder,
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
            Self::Holder => "HOLDER",
            Self::Ttl => "TTL",
            Self::Held => "HELD",
            Self::Contended => "CONTEND",
            Self::Fails => "FAILS",
            Self::Service => "SVC/s",
            Self::Trend => "TREND",
        }
    }

    /// The column's width; the trend's follows the sparkline's.
    pub fn width(self, spark: usize) -> Width {
        match self {
            Self::Status => Width::Fixed(12),
            Self::Profile => Width::Share {
                parts: 2,
                plain: 24,
            },
            Self::Holder => Width::Share {
                parts: 3,
                plain: 40,
            },
            Self::Ttl | Self::Held | Self::Service => Width::Fixed(7),
            Self::Contended => Width::Fixed(9),
            Self::Fails => Width::Fixed(6),
            Self::Trend => Width::Fixed(u16::try_from(spark + 1).unwrap_or(u16::MAX)),
        }
    }

    /// Numbers and durations line up on the right.
    pub fn right_aligned(self) -> bool {
        matches!(
            self,
            Self::Ttl | Self::Held | Self::Contended | Self::Fails | Self::Service
        )
    }

    /// What the cell of profile `p` reads, as it is (control characters are defused when it is fitted).
    pub fn text<'p>(self, p: &'p ProfileView, cells: &Cells<'_>) -> Cow<'p, str> {
        let now = cells.now;
        Cow::Owned(match self {
            Self::Status => return Cow::Borrowed(status_label(p.status, cells.glyphs)),
            Self::Profile => return Cow::Borrowed(&p.profile),
            Self::Holder => {
                let mut holders = p.holders();
                match (holders.next(), holders.count()) {
                    (None, _) if p.held_count > 1 => format!("{} holders", p.held_count),
                    (None, _) => "-".to_owned(),
                    (Some(one), 0) => holder_text(one),
                    (Some(one), rest) => format!("{} +{rest}", holder_text(one)),
                }
            }
            Self::Ttl => p
                .holders()
                .filter_map(|r| r.ttl_remaining(now))
                .min()
                .map_or_else(|| "-".to_owned(), human_duration),
            Self::Held => p
                .holders()
                .filter_map(|r| r.acquired_at)
                .min()
                .map_or_else(|| "-".to_owned(), |a| human_duration(now - a)),
            Self::Contended => p
                .contended_for(now)
                .map_or_else(|| "-".to_owned(), human_duration),
            Self::Fails => {
                if p.contention_count > 0 {
                    p.contention_count.to_string()
                } else {
                    "-".to_owned()
                }
            }
            Self::Service => service_rate(cells.service, &p.profile),
            Self::Trend => {
                let samples = cells
                    .history
                    .map(|h| h.sparkline(&p.profile, cells.spark))
                    .unwrap_or_default();
                sparkline(&samples, cells.spark, cells.glyphs)
            }
        })
    }

    /// The trend keeps one blank cell before its bars, so they never touch the numbers.
    fn gap(self) -> bool {
        self == Self::Trend
    }

    /// A cell's text defused, cut or padded to `width` cells, aligned as the column is.
    pub fn fit(self, s: &str, width: usize) -> String {
        if self.gap() && width > 0 {
            return format!(" {}", text::fit(s, width - 1));
        }
        fit_aligned(s, width, self.right_aligned())
    }
}

/// `s` defused, cut or padded to `width` cells, on the right when `right`.
fn fit_aligned(s: &str, width: usize, right: bool) -> String {
    if right {
        format!("{:>width$}", text::clean(s, width))
    } else {
        text::fit(s, width)
    }
}

/// The widths of `columns` in a table `width` cells wide: fixed columns as declared, the shares of what is
/// left laid out by ratatui.
pub fn widths(columns: &[Column], width: u16, spark: usize) -> Vec<u16> {
    let constraints: Vec<Constraint> = columns
        .iter()
        .map(|c| match c.width(spark) {
            Width::Fixed(n) => Constraint::Length(n),
            Width::Share { parts, .. } => Constraint::Fill(parts),
        })
        .collect();
    Layout::horizontal(constraints)
        .split(Rect::new(0, 0, width, 1))
        .iter()
        .map(|r| r.width)
        .collect()
}

/// One line of the plain table: every column at its plain width, one space between.
pub fn plain_line<'a>(columns: &[Column], cell: impl Fn(Column) -> Cow<'a, str>) -> String {
    let mut out = String::new();
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let width = match c.width(0) {
            Width::Fixed(n) => usize::from(n),
            Width::Share { plain, .. } => plain,
        };
        out.push_str(&c.fit(&cell(*c), width));
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

/// `owner@key [pid]`, or the prepared transaction that holds the row.
fn holder_text(r: &RowView) -> String {
    let mut s = format!(
        "{}@{}",
        display_value(r.owner.as_deref()),
        display_value(r.key.as_deref())
    );
    if let Some(pid) = r.pid {
        let _ = write!(s, " [{pid}]");
    }
    s
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
    Key,
    /// `(released)` for a row nobody holds.
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

    /// The column's width; the backend takes what is left.
    pub fn constraint(self) -> Constraint {
        match self {
            Self::Key => Constraint::Length(16),
            Self::Owner => Constraint::Length(24),
            Self::Ttl | Self::Held => Constraint::Length(8),
            Self::Fails => Constraint::Length(7),
            Self::Backend => Constraint::Fill(1),
        }
    }

    /// Numbers and durations line up on the right.
    pub fn right_aligned(self) -> bool {
        matches!(self, Self::Ttl | Self::Held | Self::Fails)
    }

    /// What the cell of row `r` reads at `now`.
    pub fn text(self, r: &RowView, now: DateTime<Utc>) -> String {
        match self {
            Self::Key => display_value(r.key.as_deref()).to_owned(),
            Self::Owner => r.owner.clone().unwrap_or_else(|| "(released)".to_owned()),
            Self::Ttl => r
                .ttl_remaining(now)
                .map_or_else(|| "-".to_owned(), human_duration),
            Self::Held => r
                .acquired_at
                .map_or_else(|| "-".into(), |a| human_duration(now - a)),
            Self::Fails => r
                .contention_count
                .filter(|c| *c > 0)
                .map_or_else(|| "-".into(), |c| c.to_string()),
            Self::Backend => {
                let backend = match (r.pid, &r.application, &r.prepared) {
                    (Some(pid), Some(app), _) => format!("pid {pid} {app}"),
                    (Some(pid), None, _) => format!("pid {pid}"),
                    (None, _, Some(gid)) => format!("prepared '{gid}'"),
                    _ => String::new(),
                };
                let mut out = text::clean(&backend, 30);
                if r.waiters > 0 {
                    let _ = write!(out, "  {} waiting", r.waiters);
                }
                out
            }
        }
    }

    /// A cell's text defused, cut or padded to `width` cells, aligned as the column is.
    pub fn fit(self, s: &str, width: usize) -> String {
        fit_aligned(s, width, self.right_aligned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_columns_keep_their_width_and_the_text_columns_share_the_rest() {
        let columns = Column::dashboard(false);
        for width in [78_u16, 118, 198] {
            let spark = spark_width(usize::from(width));
            let w = widths(&columns, width, spark);
            assert_eq!(w.iter().sum::<u16>(), width, "{w:?}");
            for (c, got) in columns.iter().zip(&w) {
                if let Width::Fixed(n) = c.width(spark) {
                    assert_eq!(*got, n, "{c:?} at {width}");
                }
            }
            let (profile, holder) = (w[1], w[2]);
            assert!(holder >= profile, "the holder gets the larger share: {w:?}");
        }
        assert!(!Column::dashboard(false).contains(&Column::Service));
        assert!(Column::dashboard(true).contains(&Column::Service));
    }

    #[test]
    fn the_plain_table_aligns_numbers_right_and_defuses_control_characters() {
        let line = plain_line(&[Column::Profile, Column::Ttl], |c| match c {
            Column::Profile => "p\u{1b}[2J".into(),
            _ => "5s".into(),
        });
        assert_eq!(line, format!("{:<24} {:>7}", "p?[2J", "5s"));
    }
}
