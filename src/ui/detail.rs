//! The detail pane of the selected profile: status reasons, every lock row with owner, TTL and backend, the
//! sessions waiting on its rows, and what the history window saw.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};

use super::columns::{RowColumn, status_label};
use super::profiles::status_style;
use super::{Glyphs, border_set, text};
use crate::app::App;
use crate::model::rules::display_value;
use crate::theme::Theme;

/// Draws the pane.
pub fn draw(frame: &mut Frame, app: &App, theme: &Theme, glyphs: Glyphs, area: Rect) {
    let (Some(p), Some(now)) = (app.selected_profile(), app.now()) else {
        return;
    };
    let w = area.width.saturating_sub(2) as usize;
    let block = Block::default()
        .borders(Borders::ALL)
        .border_set(border_set(glyphs))
        .border_style(theme.border)
        .title(Span::styled(
            format!(" {} (Esc closes) ", text::clean(&p.profile, 40)),
            theme.title,
        ));
    let mut lines = vec![Line::from(vec![
        Span::styled(
            status_label(p.status, glyphs),
            status_style(p.status, theme),
        ),
        Span::raw(format!(
            "  {}, {} held{}",
            text::count(p.row_count as u64, "row"),
            p.held_count,
            if p.detailed {
                ""
            } else {
                " (summary: its every row is read from the next poll on)"
            }
        )),
    ])];
    for r in &p.reasons {
        lines.push(Line::raw(text::clean(&format!("  {r}"), w)));
    }
    let window = app.history.window(&p.profile);
    lines.push(Line::styled(
        format!(
            "  last {}: {}, {} with waiters, {}",
            text::count(app.history.polls() as u64, "poll"),
            text::count(window.failures, "failed acquisition"),
            text::count(window.polls_with_waiters, "poll"),
            text::count(window.holder_changes, "holder change")
        ),
        theme.dim,
    ));
    let mut waits = Vec::new();
    if let Some(board) = &app.board {
        for wv in board
            .waits
            .iter()
            .filter(|wv| wv.profile.as_deref() == Some(p.profile.as_str()))
        {
            let by = crate::model::rules::blocker_names(wv);
            waits.push(Line::raw(text::fit(
                &format!(
                    "  waiting: pid {} ({}) on {} for {}, {} blocked by {}",
                    wv.wait.pid,
                    wv.application.as_deref().unwrap_or("?"),
                    display_value(wv.key.as_deref()),
                    text::waited(wv, now),
                    wv.wait.mode,
                    by.join(",")
                ),
                w,
            )));
        }
    }
    // The lines above the rows, the rows' table, the waits below: each as tall as it needs while room lasts.
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [above, table, below] = Layout::vertical([
        Constraint::Length(u16::try_from(lines.len()).unwrap_or(u16::MAX)),
        Constraint::Length(u16::try_from(p.rows.len() + 1).unwrap_or(u16::MAX)),
        Constraint::Fill(1),
    ])
    .areas(inner);
    frame.render_widget(Paragraph::new(lines), above);
    let table = indented(table, 2);
    frame.render_widget(rows_table(p, now, theme, table.width), table);
    frame.render_widget(Paragraph::new(waits), below);
}

/// `area` without its first `by` columns.
fn indented(area: Rect, by: u16) -> Rect {
    Rect {
        x: area.x + by.min(area.width),
        width: area.width.saturating_sub(by),
        ..area
    }
}

/// Every lock row of the profile, its columns declared in [`RowColumn`]; an expired row in the expired style.
fn rows_table<'a>(
    p: &crate::model::ProfileView,
    now: chrono::DateTime<chrono::Utc>,
    theme: &Theme,
    width: u16,
) -> Table<'a> {
    const SPACING: u16 = 1;
    let constraints: Vec<Constraint> = RowColumn::ALL.iter().map(|c| c.constraint()).collect();
    // Each cell is fitted to its column's real width, so a cut shows as an ellipsis.
    let widths: Vec<u16> = Layout::horizontal(constraints.clone())
        .spacing(SPACING)
        .split(Rect::new(0, 0, width, 1))
        .iter()
        .map(|r| r.width)
        .collect();
    let cell = |i: usize, s: &str| {
        let c = RowColumn::ALL[i];
        Cell::from(Span::raw(c.fit(s, usize::from(widths[i]))))
    };
    let header = Row::new(
        RowColumn::ALL
            .iter()
            .enumerate()
            .map(|(i, c)| cell(i, c.title())),
    )
    .style(theme.dim);
    let rows = p.rows.iter().map(|r| {
        let style = if r.is_expired(now) {
            theme.expired
        } else {
            ratatui::style::Style::default()
        };
        Row::new(
            RowColumn::ALL
                .iter()
                .enumerate()
                .map(|(i, c)| cell(i, &c.text(r, now))),
        )
        .style(style)
    });
    Table::new(rows, constraints)
        .header(header)
        .column_spacing(SPACING)
}
