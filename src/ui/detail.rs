//! The detail pane of the selected profile: status reasons, every lock row with owner, TTL and backend, the
//! sessions waiting on its rows, and what the history window saw.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::columns::status_label;
use super::profiles::status_style;
use super::{Glyphs, border_set, text};
use crate::app::App;
use crate::model::human_duration;
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
                " (summary: rows are read in detail when the profile is contended or expired)"
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
    lines.push(Line::styled(
        text::fit(
            &format!(
                "  {:<16} {:<24} {:>8} {:>8} {:>7} {}",
                "KEY", "OWNER", "TTL", "HELD", "FAILS", "BACKEND"
            ),
            w,
        ),
        theme.dim,
    ));
    lines.extend(row_lines(p, now, theme, w));
    if let Some(board) = &app.board {
        for wv in board
            .waits
            .iter()
            .filter(|wv| wv.profile.as_deref() == Some(p.profile.as_str()))
        {
            let by = crate::model::rules::blocker_names(wv);
            lines.push(Line::raw(text::fit(
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
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// One line per lock row of the profile.
fn row_lines(
    p: &crate::model::ProfileView,
    now: chrono::DateTime<chrono::Utc>,
    theme: &Theme,
    w: usize,
) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    for r in &p.rows {
        let ttl = r
            .ttl_remaining(now)
            .map_or_else(|| "-".to_owned(), human_duration);
        let held = r
            .acquired_at
            .map_or_else(|| "-".into(), |a| human_duration(now - a));
        let backend = match (r.pid, &r.application, &r.prepared) {
            (Some(pid), Some(app), _) => format!("pid {pid} {app}"),
            (Some(pid), None, _) => format!("pid {pid}"),
            (None, _, Some(gid)) => format!("prepared '{gid}'"),
            _ => String::new(),
        };
        let line = format!(
            "  {:<16} {:<24} {:>8} {:>8} {:>7} {}{}",
            text::clean(display_value(r.key.as_deref()), 16),
            text::clean(r.owner.as_deref().unwrap_or("(released)"), 24),
            ttl,
            held,
            r.contention_count
                .filter(|c| *c > 0)
                .map_or_else(|| "-".into(), |c| c.to_string()),
            text::clean(&backend, 30),
            if r.waiters > 0 {
                format!("  {} waiting", r.waiters)
            } else {
                String::new()
            }
        );
        let style = if r.is_expired(now) {
            theme.expired
        } else {
            ratatui::style::Style::default()
        };
        lines.push(Line::styled(text::fit(&line, w), style));
    }
    lines
}
