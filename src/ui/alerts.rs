//! The alerts list (`a`): every escalation trigger that fired, with its profiles, since when, and what the
//! runbook says to do. Enter jumps to the selected alert's profile.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::{Glyphs, border_set, text};
use crate::app::App;
use crate::model::human_duration;
use crate::theme::Theme;

/// Draws the list over most of `area`.
pub fn draw(frame: &mut Frame, app: &App, theme: &Theme, glyphs: Glyphs, area: Rect) {
    let rect = Rect {
        x: area.x + 2.min(area.width),
        y: area.y + 2.min(area.height),
        width: area.width.saturating_sub(4),
        height: area.height.saturating_sub(4),
    };
    let alerts = app
        .board
        .as_ref()
        .map(|b| b.alerts.as_slice())
        .unwrap_or_default();
    let block = Block::default()
        .borders(Borders::ALL)
        .border_set(border_set(glyphs))
        .border_style(theme.title)
        .title(Span::styled(
            format!(
                " {} (Enter: its profile, a or Esc closes) ",
                text::count(alerts.len() as u64, "alert")
            ),
            theme.title,
        ));
    let w = rect.width.saturating_sub(2) as usize;
    let now = app.now();
    let mut lines = Vec::new();
    if alerts.is_empty() {
        lines.push(Line::styled("no escalation trigger fired", theme.dim));
    }
    let mut selected_line = 0;
    for (i, a) in alerts.iter().enumerate() {
        let since = match (a.for_s(), now) {
            (Some(s), Some(now)) => format!(
                "  since {} ({})",
                (now - chrono::Duration::seconds(s)).format("%H:%M:%S"),
                human_duration(chrono::Duration::seconds(s))
            ),
            _ => String::new(),
        };
        let profiles = a.profiles().join(", ");
        let head = format!(
            "{} {}{}{since}",
            if i == app.alert_selected { ">" } else { " " },
            a.trigger(),
            if profiles.is_empty() {
                String::new()
            } else {
                format!(": {profiles}")
            }
        );
        if i == app.alert_selected {
            selected_line = lines.len();
        }
        let style = if i == app.alert_selected {
            theme.selected
        } else {
            theme.escalated
        };
        lines.push(Line::styled(text::fit(&head, w), style));
        for l in text::wrap(&format!("   {}", a.message()), w) {
            lines.push(Line::raw(l));
        }
        for l in wrap_words("   ", &format!("runbook: {}", a.runbook()), w) {
            lines.push(Line::styled(l, theme.dim));
        }
    }
    let skip = selected_line.saturating_sub(rect.height.saturating_sub(4) as usize);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines).scroll((skip as u16, 0)).block(block),
        rect,
    );
}

/// Prose broken at spaces into lines of at most `width` cells, each starting with `indent`, the continued ones
/// indented two more.
fn wrap_words(indent: &str, s: &str, width: usize) -> Vec<String> {
    let mut out = vec![indent.to_owned()];
    for word in s.split(' ').filter(|w| !w.is_empty()) {
        let word = text::sanitize(word);
        let Some(line) = out.last_mut() else { break };
        let fresh = line.trim().is_empty();
        if fresh || text::width(line) + 1 + text::width(&word) <= width {
            if !fresh {
                line.push(' ');
            }
            line.push_str(&word);
        } else {
            out.push(format!("{indent}  {word}"));
        }
    }
    out.into_iter().map(|l| text::clean(&l, width)).collect()
}
