//! The footer: the main keys, or the filter being typed.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::app::App;
use crate::theme::Theme;

/// Draws the footer.
pub fn draw(frame: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    if app.editing_filter {
        let line = Line::from(vec![
            Span::styled("/", theme.key),
            Span::raw(super::text::clean(&app.filter, area.width as usize - 20)),
            Span::styled("▏  Enter keeps, Esc clears", theme.dim),
        ]);
        frame.render_widget(Paragraph::new(line), area);
        return;
    }
    let sort = format!("sort:{}", app.sort.label());
    let live: [(&str, &str); 8] = [
        ("q", "quit"),
        ("?", "help"),
        ("/", "filter"),
        ("s", &sort),
        ("p", if app.is_paused() { "resume" } else { "pause" }),
        ("Enter", "detail"),
        ("Tab", "pane"),
        ("t", "queries"),
    ];
    let replay: [(&str, &str); 8] = [
        ("q", "quit"),
        ("p", "pause"),
        ("+/-", "speed"),
        (".", "step"),
        ("e", "next escalation"),
        ("/", "filter"),
        ("Enter", "detail"),
        ("Tab", "pane"),
    ];
    let keys = if app.replay.is_some() { replay } else { live };
    let mut spans = Vec::new();
    for (k, what) in keys {
        spans.push(Span::styled(format!(" {k}"), theme.key));
        spans.push(Span::raw(format!(" {what} ")));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
