//! The profiles table: status (glyph and word), profile, holders, TTL countdown, time held, contended for,
//! failures and a sparkline of contention. Only the visible rows are built.

use std::fmt::Write as _;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::{Glyphs, border_set, text};
use crate::app::{App, Pane};
use crate::model::rules::display_value;
use crate::model::{ProfileView, Status, human_duration};
use crate::theme::Theme;

/// The style of a status.
pub fn status_style(status: Status, theme: &Theme) -> Style {
    match status {
        Status::Ok => theme.ok,
        Status::Contended => theme.contended,
        Status::Expired => theme.expired,
        Status::Escalated => theme.escalated,
    }
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

/// The service's contention rate column (failed acquisitions per second, from its metrics).
const SERVICE_WIDTH: usize = 7;

/// Polls shown in the sparkline: fewer on narrow terminals, so names keep their room.
const SPARK_WIDTH: usize = 16;
const SPARK_NARROW: usize = 8;

fn spark_width(table_width: usize) -> usize {
    if table_width < 100 {
        SPARK_NARROW
    } else {
        SPARK_WIDTH
    }
}

/// Draws the table.
pub fn draw(frame: &mut Frame, app: &mut App, theme: &Theme, glyphs: Glyphs, area: Rect) {
    let focused = app.pane == Pane::Profiles;
    let count = app.visible.len();
    let total = app.board.as_ref().map_or(0, |b| b.profiles.len());
    let title = if app.filter.is_empty() {
        format!(
            " profiles ({total}) · escalate after {} ",
            human_duration(app.rules.escalate_after)
        )
    } else {
        format!(
            " profiles ({count} of {total} match /{}) · escalate after {} ",
            text::clean(&app.filter, 30),
            human_duration(app.rules.escalate_after)
        )
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_set(border_set(glyphs))
        .border_style(if focused { theme.title } else { theme.border })
        .title(Span::styled(title, theme.title));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height < 2 {
        return;
    }
    let width = inner.width as usize;
    // Fixed columns; profile and holder share what is left.
    let spark = spark_width(width);
    let service = if app.service.is_some() {
        SERVICE_WIDTH
    } else {
        0
    };
    let fixed = 12 + 7 + 7 + 9 + 6 + service + spark + 1;
    let flex = width.saturating_sub(fixed);
    let (pw, hw) = (flex * 2 / 5, flex - flex * 2 / 5);
    let header = format!(
        "{}{}{}{:>7}{:>7}{:>9}{:>6}{:>service$} {}",
        text::fit("STATUS", 12),
        text::fit("PROFILE", pw),
        text::fit("HOLDER", hw),
        "TTL",
        "HELD",
        "CONTEND",
        "FAILS",
        if service > 0 { "SVC/s" } else { "" },
        text::fit("TREND", spark)
    );
    frame.render_widget(
        Paragraph::new(Line::styled(text::fit(&header, width), theme.dim)),
        Rect { height: 1, ..inner },
    );
    let rows_area = Rect {
        y: inner.y + 1,
        height: inner.height - 1,
        ..inner
    };
    let page = rows_area.height as usize;
    app.page = page.max(1);
    let offset = scroll_offset(app.selected, page, count);
    let Some(now) = app.now() else {
        let msg = match &app.link {
            crate::model::feed::Link::Connecting => "waiting for the first poll…",
            _ => "no data yet",
        };
        frame.render_widget(Paragraph::new(Line::styled(msg, theme.dim)), rows_area);
        return;
    };
    let mut lines = Vec::with_capacity(page);
    for (i, p) in app.visible_profiles().enumerate().skip(offset).take(page) {
        let selected = i == app.selected;
        lines.push(row_line(
            app,
            p,
            now,
            glyphs,
            theme,
            (pw, hw, spark),
            selected && focused,
        ));
    }
    if lines.is_empty() {
        let msg = if app.filter.is_empty() {
            "no lease rows"
        } else {
            "no profile matches the filter (Esc clears it)"
        };
        lines.push(Line::styled(msg, theme.dim));
    }
    frame.render_widget(Paragraph::new(lines), rows_area);
}

fn scroll_offset(selected: usize, page: usize, count: usize) -> usize {
    if page == 0 || count <= page {
        return 0;
    }
    selected.saturating_sub(page - 1).min(count - page)
}

fn row_line<'a>(
    app: &App,
    p: &ProfileView,
    now: chrono::DateTime<chrono::Utc>,
    glyphs: Glyphs,
    theme: &Theme,
    (pw, hw, spark): (usize, usize, usize),
    selected: bool,
) -> Line<'a> {
    let holders: Vec<&crate::model::RowView> = p.holders().collect();
    let holder = match holders.as_slice() {
        [] if p.held_count > 1 => format!("{} holders", p.held_count),
        [] => "-".to_owned(),
        [one] => holder_text(one),
        [one, rest @ ..] => format!("{} +{}", holder_text(one), rest.len()),
    };
    let ttl = holders
        .iter()
        .filter_map(|r| r.ttl_remaining(now))
        .min()
        .map_or_else(|| "-".to_owned(), human_duration);
    let held = holders
        .iter()
        .filter_map(|r| r.acquired_at)
        .min()
        .map_or_else(|| "-".to_owned(), |a| human_duration(now - a));
    let contended = p
        .contended_for(now)
        .map_or_else(|| "-".to_owned(), human_duration);
    let fails = if p.contention_count > 0 {
        p.contention_count.to_string()
    } else {
        "-".to_owned()
    };
    let base = if selected {
        theme.selected
    } else {
        Style::default()
    };
    let status_style = status_style(p.status, theme).patch(base);
    Line::from(vec![
        Span::styled(text::fit(status_label(p.status, glyphs), 12), status_style),
        Span::styled(text::fit(&p.profile, pw), base),
        Span::styled(text::fit(&holder, hw), base),
        Span::styled(format!("{ttl:>7}"), base),
        Span::styled(format!("{held:>7}"), base),
        Span::styled(
            format!("{contended:>9}"),
            if p.contended_since.is_some() {
                status_style
            } else {
                base
            },
        ),
        Span::styled(format!("{fails:>6}"), base),
        Span::styled(format!("{} ", service_rate(app, &p.profile)), base),
        Span::styled(
            sparkline(&app.history.sparkline(&p.profile, spark), spark, glyphs),
            theme.sparkline.patch(base),
        ),
    ])
}

/// The service's failed acquisitions per second for a profile: `-` when its metrics do not name it, `?`
/// until two scrapes gave a rate; empty without `--metrics-url`.
fn service_rate(app: &App, profile: &str) -> String {
    let Some(service) = &app.service else {
        return String::new();
    };
    let rate = match service.profile(profile).map(|p| p.contention_per_s) {
        None => "-".to_owned(),
        Some(None) => "?".to_owned(),
        Some(Some(r)) if r >= 100.0 => format!("{r:.0}"),
        Some(Some(r)) => format!("{r:.1}"),
    };
    format!("{rate:>SERVICE_WIDTH$}")
}

fn holder_text(r: &crate::model::RowView) -> String {
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
