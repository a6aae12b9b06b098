//! The profiles table: status (glyph and word), profile, holders, TTL countdown, time held, contended for,
//! failures and a sparkline of contention. Only the visible rows are built.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};

use super::columns::{self, Cells, Column, spark_width};
use super::{Glyphs, border_set, text};
use crate::app::{App, Pane};
use crate::model::{Status, human_duration};
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
    let spark = spark_width(width);
    let columns = Column::dashboard(app.service.is_some());
    let widths = columns::widths(&columns, inner.width, spark);
    let header = Row::new(
        columns
            .iter()
            .zip(&widths)
            .map(|(c, w)| Cell::from(c.fit(c.title(), usize::from(*w)))),
    )
    .style(theme.dim);
    let page = (inner.height - 1) as usize;
    app.page = page.max(1);
    let offset = scroll_offset(app.selected, page, count);
    let Some(now) = app.now() else {
        let msg = match &app.link {
            crate::model::feed::Link::Connecting => "waiting for the first poll…",
            _ => "no data yet",
        };
        draw_empty(frame, theme, (&columns, &widths), inner, msg);
        return;
    };
    let cells = Cells {
        now,
        glyphs,
        history: Some(&app.history),
        service: app.service.as_ref(),
        spark,
    };
    let rows = rows(
        app,
        &columns,
        &widths,
        &cells,
        theme,
        (offset, page, focused),
    );
    if rows.is_empty() {
        let msg = if app.filter.is_empty() {
            "no lease rows"
        } else {
            "no profile matches the filter (Esc clears it)"
        };
        draw_empty(frame, theme, (&columns, &widths), inner, msg);
        return;
    }
    let constraints: Vec<Constraint> = widths.iter().map(|w| Constraint::Length(*w)).collect();
    frame.render_widget(
        Table::new(rows, constraints)
            .header(header)
            .column_spacing(0),
        inner,
    );
}

/// The rows on screen (`page` of them from `offset`), each cell styled by its column.
fn rows<'a>(
    app: &App,
    columns: &[Column],
    widths: &[u16],
    cells: &Cells<'_>,
    theme: &Theme,
    (offset, page, focused): (usize, usize, bool),
) -> Vec<Row<'a>> {
    app.visible_profiles()
        .enumerate()
        .skip(offset)
        .take(page)
        .map(|(i, p)| {
            let base = if i == app.selected && focused {
                theme.selected
            } else {
                Style::default()
            };
            let status = status_style(p.status, theme).patch(base);
            Row::new(columns.iter().zip(widths).map(|(c, w)| {
                let style = match c {
                    Column::Status => status,
                    Column::Contended if p.contended_since.is_some() => status,
                    Column::Trend => theme.sparkline.patch(base),
                    _ => base,
                };
                // A span: one line already, so the cell need not split or copy the text.
                Cell::from(Span::styled(
                    c.fit(&c.text(p, cells), usize::from(*w)),
                    style,
                ))
            }))
        })
        .collect()
}

/// The table's header and, below it, why there are no rows.
fn draw_empty(
    frame: &mut Frame,
    theme: &Theme,
    (columns, widths): (&[Column], &[u16]),
    area: Rect,
    msg: &str,
) {
    let header: String = columns
        .iter()
        .zip(widths)
        .map(|(c, w)| c.fit(c.title(), usize::from(*w)))
        .collect();
    let lines = vec![
        Line::styled(text::fit(&header, area.width as usize), theme.dim),
        Line::styled(msg.to_owned(), theme.dim),
    ];
    frame.render_widget(Paragraph::new(lines), area);
}

fn scroll_offset(selected: usize, page: usize, count: usize) -> usize {
    if page == 0 || count <= page {
        return 0;
    }
    selected.saturating_sub(page - 1).min(count - page)
}
