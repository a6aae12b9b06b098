//! The detail pane of the selected profile: status reasons, every lock row with its key and owner whole, TTL
//! and backend, what each holding backend is doing (state and for how long, its transaction's age, what it
//! waits for, its query, client), the sessions waiting on its rows, and what the history window saw.

use std::fmt::Write as _;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};

use super::columns::{self, RowColumn, status_label};
use super::profiles::status_style;
use super::{Glyphs, border_set, text};
use crate::app::App;
use crate::model::rules::display_value;
use crate::model::{ProfileView, Session, human_duration};
use crate::theme::Theme;

/// Draws the pane: the selected profile's, or the backend's that Enter on a lock wait opened.
pub fn draw(frame: &mut Frame, app: &App, theme: &Theme, glyphs: Glyphs, area: Rect) {
    if let (Some(pid), Some(now)) = (app.backend, app.now()) {
        draw_backend(frame, app, (theme, glyphs), area, (pid, now));
        return;
    }
    let (Some(p), Some(now)) = (app.selected_profile(), app.now()) else {
        return;
    };
    let w = area.width.saturating_sub(2) as usize;
    let block = Block::default()
        .borders(Borders::ALL)
        .border_set(border_set(glyphs))
        .border_style(theme.border)
        .title(Span::styled(
            format!(
                " {} (Esc closes, t {} queries) ",
                text::middle(&p.profile, 40),
                if app.show_queries {
                    "shortens"
                } else {
                    "shows whole"
                }
            ),
            theme.title,
        ));
    let mut lines = vec![Line::from(vec![
        Span::styled(
            status_label(p.status, glyphs),
            status_style(p.status, theme),
        ),
        Span::raw(format!(
            "  {}, {} held{}",
            text::count(u64::from(p.row_count), "row"),
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
    let window = app.shown_history().window(&p.profile);
    lines.push(Line::styled(
        text::clean(
            &format!(
                "  last {}: {}, {} with waiters, {}",
                text::count(app.shown_history().polls() as u64, "poll"),
                text::count(window.failures, "failed acquisition"),
                text::count(window.polls_with_waiters, "poll"),
                text::count(window.holder_changes, "holder change")
            ),
            w,
        ),
        theme.dim,
    ));
    let below = below_lines(app, p, now, theme, w);
    // The lines above the rows, the rows' table, the backends and waits below: each as tall as it needs while
    // room lasts.
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let table = indented(inner, 2);
    let (rows, height) = rows_table(p, now, theme, table.width as usize);
    let [above, table, rest] = Layout::vertical([
        Constraint::Length(u16::try_from(lines.len()).unwrap_or(u16::MAX)),
        Constraint::Length(u16::try_from(height).unwrap_or(u16::MAX)),
        Constraint::Fill(1),
    ])
    .areas(table);
    let above = Rect {
        x: inner.x,
        width: inner.width,
        ..above
    };
    let rest = Rect {
        x: inner.x,
        width: inner.width,
        ..rest
    };
    frame.render_widget(Paragraph::new(lines), above);
    frame.render_widget(rows, table);
    frame.render_widget(Paragraph::new(below), rest);
}

/// One backend in detail (a blocker of a wait on no lease row): what it does, its query whole, and who waits
/// on it.
fn draw_backend(
    frame: &mut Frame,
    app: &App,
    (theme, glyphs): (&Theme, Glyphs),
    area: Rect,
    (pid, now): (i32, chrono::DateTime<chrono::Utc>),
) {
    let w = area.width.saturating_sub(2) as usize;
    let block = Block::default()
        .borders(Borders::ALL)
        .border_set(border_set(glyphs))
        .border_style(theme.border)
        .title(Span::styled(
            format!(" backend {pid} (Esc closes) "),
            theme.title,
        ));
    let sessions = sessions(app);
    let mut lines = Vec::new();
    match sessions.iter().find(|s| s.pid == pid) {
        None => lines.push(Line::styled(
            text::clean(
                &format!("  pid {pid} is not among this database's sessions (it may have ended)"),
                w,
            ),
            theme.note,
        )),
        Some(s) => lines.extend(backend_lines(s, now, theme, (w, true))),
    }
    if let Some(board) = &app.board {
        for wv in board
            .waits
            .iter()
            .filter(|wv| wv.wait.blocked_by.contains(&pid))
        {
            lines.push(Line::raw(text::clean(
                &format!(
                    "  blocks pid {} ({}) for {}, {} on {}",
                    wv.wait.pid,
                    wv.application.as_deref().unwrap_or("?"),
                    text::waited(wv, now),
                    wv.wait.mode,
                    wv.wait.relation.as_deref().map_or_else(
                        || wv.wait.locktype.clone(),
                        |r| format!("{} {r}", wv.wait.locktype)
                    )
                ),
                w,
            )));
        }
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// The hint under a backend idle in transaction.
const IDLE_HINT: &str = "    idle in transaction: it keeps its locks until its client commits or rolls back; ask its owner";

/// Every session the shown snapshot read, of every database watched.
fn sessions(app: &App) -> Vec<&Session> {
    app.snapshot
        .as_deref()
        .map(|s| s.pieces().into_iter().flat_map(|x| &x.sessions).collect())
        .unwrap_or_default()
}

/// What each holding backend does, with a hint for one idle in transaction, then the sessions that wait on the
/// profile's rows.
fn below_lines(
    app: &App,
    p: &ProfileView,
    now: chrono::DateTime<chrono::Utc>,
    theme: &Theme,
    w: usize,
) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    let sessions = sessions(app);
    let mut seen = Vec::new();
    for r in p.holders() {
        let Some(pid) = r.pid.filter(|pid| !seen.contains(pid)) else {
            continue;
        };
        seen.push(pid);
        let Some(s) = sessions.iter().find(|s| s.pid == pid) else {
            continue;
        };
        out.extend(backend_lines(s, now, theme, (w, app.show_queries)));
    }
    if let Some(board) = &app.board {
        for wv in board
            .waits
            .iter()
            .filter(|wv| wv.profile.as_deref() == Some(p.profile.as_ref()))
        {
            let by = crate::model::rules::blocker_names(wv);
            out.push(Line::raw(text::clean(
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
    out
}

/// What a backend does (see [`backend_line`]), its query (on one line, or whole when `whole`), and a hint when
/// it is idle in transaction.
fn backend_lines(
    s: &Session,
    now: chrono::DateTime<chrono::Utc>,
    theme: &Theme,
    (w, whole): (usize, bool),
) -> Vec<Line<'static>> {
    let mut out = vec![Line::raw(text::clean(&backend_line(s, now), w))];
    if let Some(q) = s.query.as_deref().filter(|q| !q.is_empty()) {
        let q = format!(
            "    query: {}",
            q.split_whitespace().collect::<Vec<_>>().join(" ")
        );
        if whole {
            out.extend(
                text::wrap(&q, w)
                    .into_iter()
                    .map(|l| Line::styled(l, theme.dim)),
            );
        } else {
            out.push(Line::styled(text::clean(&q, w), theme.dim));
        }
    }
    if s.state.as_deref() == Some("idle in transaction") {
        out.push(Line::styled(text::clean(IDLE_HINT, w), theme.note));
    }
    out
}

/// `pid 123 worker-7 (trader@10.0.0.7): idle in transaction for 12s, transaction 20s, waiting Client:ClientRead`.
fn backend_line(s: &Session, now: chrono::DateTime<chrono::Utc>) -> String {
    let age =
        |t: chrono::DateTime<chrono::Utc>| human_duration((now - t).max(chrono::Duration::zero()));
    let mut line = format!("  pid {}", s.pid);
    if let Some(a) = s.application.as_deref().filter(|a| !a.is_empty()) {
        let _ = write!(line, " {a}");
    }
    let who = match (s.user.as_deref(), s.client_addr.as_deref()) {
        (Some(u), Some(c)) => format!(" ({u}@{c})"),
        (Some(u), None) => format!(" ({u}, local socket)"),
        (None, Some(c)) => format!(" ({c})"),
        (None, None) => String::new(),
    };
    line.push_str(&who);
    line.push_str(": ");
    line.push_str(s.state.as_deref().unwrap_or("state unknown"));
    if let Some(t) = s.state_change {
        let _ = write!(line, " for {}", age(t));
    }
    if let Some(t) = s.xact_start {
        let _ = write!(line, ", transaction {}", age(t));
    }
    if let Some(e) = &s.wait_event {
        let _ = write!(line, ", waiting {e}");
    }
    line
}

/// `area` without its first `by` columns.
fn indented(area: Rect, by: u16) -> Rect {
    Rect {
        x: area.x + by.min(area.width),
        width: area.width.saturating_sub(by),
        ..area
    }
}

/// Every lock row of the profile, its columns declared in [`RowColumn`] and laid out for `width`; keys and
/// owners whole (wrapped when they must); an expired row in the expired style. With its height in lines.
fn rows_table(
    p: &ProfileView,
    now: chrono::DateTime<chrono::Utc>,
    theme: &Theme,
    width: usize,
) -> (Table<'static>, usize) {
    let texts: Vec<Vec<String>> = p
        .rows
        .iter()
        .map(|r| RowColumn::ALL.iter().map(|c| c.text(r, now)).collect())
        .collect();
    let layout = columns::layout(
        &RowColumn::ALL,
        width,
        |_| None,
        |c| {
            let i = RowColumn::ALL.iter().position(|x| *x == c).unwrap_or(0);
            texts
                .iter()
                .map(|t| text::width(&t[i]))
                .chain([c.title().len()])
                .max()
                .unwrap_or(0)
        },
    );
    let header = Row::new(
        layout
            .iter()
            .map(|(c, w)| Cell::from(c.lines(c.title(), *w).concat())),
    )
    .style(theme.dim);
    let mut height = 1;
    let rows: Vec<Row> = p
        .rows
        .iter()
        .zip(&texts)
        .map(|(r, t)| {
            let cells: Vec<Vec<String>> = layout
                .iter()
                .map(|(c, w)| {
                    let i = RowColumn::ALL.iter().position(|x| x == c).unwrap_or(0);
                    c.lines(&t[i], *w)
                })
                .collect();
            let h = cells.iter().map(Vec::len).max().unwrap_or(1);
            height += h;
            let style = if r.is_expired(now) {
                theme.expired
            } else {
                ratatui::style::Style::default()
            };
            Row::new(
                cells
                    .into_iter()
                    .map(|l| Cell::from(l.into_iter().map(Line::raw).collect::<Vec<_>>())),
            )
            .height(u16::try_from(h).unwrap_or(u16::MAX))
            .style(style)
        })
        .collect();
    let constraints: Vec<Constraint> = layout
        .iter()
        .map(|(_, w)| Constraint::Length(*w as u16))
        .collect();
    (
        Table::new(rows, constraints)
            .header(header)
            .column_spacing(columns::SPACING as u16),
        height,
    )
}
