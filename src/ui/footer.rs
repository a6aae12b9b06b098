//! The footer: the main keys (as many as fit, the most needed first), the recording's state at the right end
//! while `--record` writes, or the filter being typed.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::text;
use crate::app::App;
use crate::theme::Theme;

/// Draws the footer.
pub fn draw(frame: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let width = area.width as usize;
    if app.editing_filter {
        let line = Line::from(vec![
            Span::styled("/", theme.key),
            Span::raw(text::clean(&app.filter, width.saturating_sub(28))),
            Span::styled("▏  Enter keeps, Esc clears", theme.dim),
        ]);
        frame.render_widget(Paragraph::new(line), area);
        return;
    }
    let recording = recording_span(app, theme);
    let room = width.saturating_sub(recording.as_ref().map_or(0, |s| text::width(&s.content)));
    let sort = format!("sort:{}", app.sort.label());
    let key_lines = format!("keys:{}", app.key_lines.label());
    let live: Vec<(&str, &str)> = vec![
        ("q", "quit"),
        ("?", "help"),
        ("a", "alerts"),
        ("p", if app.is_paused() { "resume" } else { "pause" }),
        ("/", "filter"),
        ("Enter", "detail"),
        ("Tab", "pane"),
        ("s", &sort),
        ("x", &key_lines),
        ("t", "queries"),
    ];
    let replay: Vec<(&str, &str)> = vec![
        ("q", "quit"),
        ("p", "pause"),
        ("+/-", "speed"),
        (".", "step"),
        ("e", "next escalation"),
        ("a", "alerts"),
        ("/", "filter"),
        ("Enter", "detail"),
        ("Tab", "pane"),
    ];
    let keys = if app.replay.is_some() { replay } else { live };
    let mut spans = Vec::new();
    let mut used = 0;
    for (k, what) in keys {
        let w = k.len() + what.len() + 3;
        if used + w > room {
            break;
        }
        used += w;
        spans.push(Span::styled(format!(" {k}"), theme.key));
        spans.push(Span::raw(format!(" {what} ")));
    }
    if let Some(r) = recording {
        spans.push(Span::raw(" ".repeat(room - used)));
        spans.push(r);
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// `REC trading.jsonl 1.2 MB`, or `REC STOPPED` (why, in the notes).
fn recording_span(app: &App, theme: &Theme) -> Option<Span<'static>> {
    let r = app.recording.as_ref()?;
    let name = std::path::Path::new(&r.path)
        .file_name()
        .map_or_else(|| r.path.clone(), |n| n.to_string_lossy().into_owned());
    Some(match &r.stopped {
        Some(_) => Span::styled(" REC STOPPED ", theme.escalated),
        None => Span::styled(
            format!(" REC {} {} ", text::middle(&name, 24), size(r.bytes)),
            theme.stale,
        ),
    })
}

/// A size in B, kB, MB or GB.
fn size(bytes: u64) -> String {
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.1} kB", bytes as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", bytes as f64 / 1e6),
        _ => format!("{:.2} GB", bytes as f64 / 1e9),
    }
}
