//! The profiles table: status (glyph and word), profile, the key of its most urgent held row with its owner,
//! pid and TTL countdown, time held, contended for, failures and a sparkline of contention. Columns adapt to
//! the width ([`columns::layout`]); a profile's further held rows follow on lines of their own when expanded.
//! Only the visible lines are built.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};

use super::columns::{self, Cells, Column, Entry, spark_width};
use super::{Glyphs, border_set, text};
use crate::app::{App, KeyLines, Pane};
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

/// Draws the table.
pub fn draw(frame: &mut Frame, app: &mut App, theme: &Theme, glyphs: Glyphs, area: Rect) {
    let focused = app.pane == Pane::Profiles;
    let title = title(app);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_set(border_set(glyphs))
        .border_style(if focused { theme.title } else { theme.border })
        .title(Span::styled(title, theme.title));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    app.hits.profiles_pane = area;
    app.hits.profiles = Rect::default();
    if inner.height < 2 {
        return;
    }
    let width = inner.width as usize;
    let spark = spark_width(width);
    let all = Column::dashboard(app.service.is_some());
    let page = (inner.height - 1) as usize;
    app.page = page.max(1);
    let Some(now) = app.now() else {
        let msg = match &app.link {
            crate::model::feed::Link::Connecting => "waiting for the first poll…",
            _ => "no data yet",
        };
        draw_empty(frame, theme, &all, spark, inner, msg);
        return;
    };
    app.expanded = match app.key_lines {
        KeyLines::Expanded => true,
        KeyLines::Collapsed => false,
        KeyLines::Auto => fits_expanded(app.visible_profiles(), page),
    };
    app.scroll = scroll(app, page);
    // Taken while the page's lines borrow the app; put back below.
    let mut sticky = std::mem::take(&mut app.sticky);
    let (per_cell, history) = (per_cell(app, spark), app.shown_history());
    let cells = Cells {
        now,
        glyphs,
        history: Some(&history),
        service: app.shown_service(),
        spark,
        per_cell,
    };
    let lines = page_lines(app, now, page);
    if lines.is_empty() {
        let msg = if app.filter.is_empty() {
            "no lease rows"
        } else {
            "no profile matches the filter (Esc clears it)"
        };
        drop(lines);
        drop(history);
        app.sticky = sticky;
        draw_empty(frame, theme, &all, spark, inner, msg);
        return;
    }
    let needed: Vec<(Column, usize)> = all
        .iter()
        .map(|&c| {
            let widest = lines
                .iter()
                .map(|(_, e)| text::width(&c.text(e, &cells)))
                .chain([c.title().len()])
                .max()
                .unwrap_or(0);
            (c, sticky.keep(width, c.title(), widest))
        })
        .collect();
    let layout = columns::layout(
        &all,
        width,
        |c| (c == Column::Trend).then_some(spark),
        |c| needed.iter().find(|(n, _)| *n == c).map_or(0, |(_, w)| *w),
    );
    let span = columns::spark_span(app.interval, spark, cells.per_cell);
    let header = header(&layout, span).style(theme.dim);
    let rows: Vec<Row> = lines
        .iter()
        .map(|(i, e)| row(e, (&layout, &cells), theme, *i == app.selected && focused))
        .collect();
    let picks: Vec<usize> = lines.iter().map(|(i, _)| *i).collect();
    drop(lines);
    drop(history);
    app.sticky = sticky;
    app.hits.profiles = Rect {
        y: inner.y + 1,
        height: picks.len() as u16,
        ..inner
    };
    app.hits.profile_lines = picks;
    let constraints: Vec<Constraint> = layout
        .iter()
        .map(|(_, w)| Constraint::Length(*w as u16))
        .collect();
    frame.render_widget(
        Table::new(rows, constraints)
            .header(header)
            .column_spacing(columns::SPACING as u16),
        inner,
    );
}

/// The pane's title: how many profiles (and how many the filter lets through), and the escalation limit.
fn title(app: &App) -> String {
    let total = app.board.as_ref().map_or(0, |b| b.profiles.len());
    if app.filter.is_empty() {
        format!(
            " profiles ({total}) · escalate after {} ",
            human_duration(app.rules().escalate_after)
        )
    } else {
        format!(
            " profiles ({} of {total} match /{}) · escalate after {} ",
            app.visible.len(),
            text::clean(&app.filter, 30),
            human_duration(app.rules().escalate_after)
        )
    }
}

/// Whether every visible profile's every held row fits on one page (the default then shows them all).
fn fits_expanded<'a>(profiles: impl Iterator<Item = &'a ProfileView>, page: usize) -> bool {
    let mut lines = 0;
    for p in profiles {
        lines += columns::lines_expanded(p);
        if lines > page {
            return false;
        }
    }
    true
}

/// Lines the profile takes now.
fn line_count(p: &ProfileView, expanded: bool) -> usize {
    if expanded {
        p.holders().count().max(1)
    } else {
        1
    }
}

/// The first profile shown: it moves only as far as keeps the selected profile's line on the page, and no
/// further up than fills the page from the end.
/// It looks at the profiles of about a page around it and no others: at 50,000 profiles, most are not built
/// until shown (see [`Profiles`](crate::model::rules::Profiles)).
fn scroll(app: &App, page: usize) -> usize {
    let expanded = app.expanded;
    let count = app.visible.len();
    let lines = |i: usize| {
        app.visible_from(i)
            .next()
            .map_or(1, |p| line_count(p, expanded))
    };
    // The first of the profiles before `end` that fit on the page with `used` lines taken.
    let fit_before = |end: usize, mut used: usize| {
        let mut first = end;
        while let Some(n) = first.checked_sub(1).map(lines).filter(|n| used + n <= page) {
            used += n;
            first -= 1;
        }
        first
    };
    let selected = app.selected.min(count.saturating_sub(1));
    // No further down than still shows the selected profile's line (one line of it), and no empty lines at
    // the bottom while profiles above are hidden.
    let first = app.scroll.min(selected).max(fit_before(selected, 1));
    first.min(fit_before(count, 0))
}

/// The lines on the page from the first profile shown, each with its profile's place in the visible list.
fn page_lines(
    app: &App,
    now: chrono::DateTime<chrono::Utc>,
    page: usize,
) -> Vec<(usize, Entry<'_>)> {
    let mut out = Vec::with_capacity(page);
    for (i, p) in (app.scroll..).zip(app.visible_from(app.scroll)) {
        for e in columns::entries(p, now, app.expanded) {
            if out.len() == page {
                return out;
            }
            out.push((i, e));
        }
    }
    out
}

/// One line of the table, each cell styled by its column.
fn row<'a>(
    e: &Entry<'_>,
    (layout, cells): (&[(Column, usize)], &Cells<'_>),
    theme: &Theme,
    selected: bool,
) -> Row<'a> {
    let p = e.profile;
    let base = if selected && e.first {
        theme.selected
    } else {
        Style::default()
    };
    let status = status_style(p.status, theme).patch(base);
    let expired = e.row.is_some_and(|r| r.is_expired(cells.now));
    Row::new(layout.iter().map(|(c, w)| {
        let style = match c {
            Column::Status => status,
            Column::Contended if p.contended_since.is_some() => status,
            Column::Ttl | Column::Key if expired => theme.expired.patch(base),
            Column::Trend => {
                // Where the history is shorter than the line, the room before it is the line's own: in a
                // selected (reversed) line, blanks in the sparkline's colour would read as a solid bar.
                // Bars are never reversed: a reversed bar shows its empty part in colour, so a line of
                // full blocks would read as empty (a selection by reverse video leaves the bars a window of
                // their own; one by background colour keeps it under them).
                let mut text = c.cell(e, cells, *w);
                let bars = text.split_off(text.len() - text.trim_start_matches(' ').len());
                let bar_style = theme
                    .sparkline
                    .patch(base)
                    .remove_modifier(ratatui::style::Modifier::REVERSED);
                return Cell::from(Line::from(vec![
                    Span::styled(text, base),
                    Span::styled(bars, bar_style),
                ]));
            }
            _ => base,
        };
        // A span: one line already, so the cell need not split or copy the text.
        Cell::from(Span::styled(c.cell(e, cells, *w), style))
    }))
    // The gaps between the cells take the line's style too: a selected line is one bar.
    .style(base)
}

/// Polls in each cell of the trend: its line spans the escalation limit, within the history kept.
fn per_cell(app: &App, spark: usize) -> usize {
    columns::polls_per_cell(
        app.rules().escalate_after,
        app.interval,
        spark,
        app.shown_history().capacity(),
    )
}

/// The table's titles; the trend's says how far back its line goes, when there is room.
fn header(layout: &[(Column, usize)], span: std::time::Duration) -> Row<'static> {
    let trend = chrono::Duration::from_std(span)
        .map(|d| format!("TREND {}", human_duration(d)))
        .unwrap_or_default();
    Row::new(layout.iter().map(|(c, w)| {
        let title = if *c == Column::Trend && text::width(&trend) <= *w {
            trend.as_str()
        } else {
            c.title()
        };
        Cell::from(c.fit(title, *w))
    }))
}

/// The table's header and, below it, why there are no rows.
fn draw_empty(
    frame: &mut Frame,
    theme: &Theme,
    all: &[Column],
    spark: usize,
    area: Rect,
    msg: &str,
) {
    let layout = columns::layout(
        all,
        area.width as usize,
        |c| (c == Column::Trend).then_some(spark),
        |c| c.title().len(),
    );
    let header = columns::plain_line(&layout, |c, w| c.fit(c.title(), w).into());
    let lines = vec![
        Line::styled(text::fit(&header, area.width as usize), theme.dim),
        Line::styled(msg.to_owned(), theme.dim),
    ];
    frame.render_widget(Paragraph::new(lines), area);
}
