//! Drawing only: every function takes the app and a rect, and names theme roles, never colours.
//!
//! ```text
//! ┌ header: target · server time · poll latency · live/stale/reconnecting/paused ───────────┐
//! │ banner: ESCALATE … (only when a runbook trigger fired)                                   │
//! │ notes: what locktop cannot see                                                           │
//! │ profiles table (status word+glyph, holders, TTL countdown, contended for, sparkline)     │
//! │ detail pane (Enter) or locks pane (blocking tree)                                         │
//! └ footer: keys, or the filter being typed ─────────────────────────────────────────────────┘
//! ```

mod alerts;
pub mod columns;
mod detail;
mod footer;
mod header;
mod help;
mod locks;
mod profiles;
pub mod text;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use crate::app::App;
use crate::theme::Theme;

/// The smallest terminal the layout fits.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 14;

/// Glyphs and borders for the terminal's character set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Glyphs {
    pub unicode: bool,
}

impl Glyphs {
    /// UTF-8 when the locale says so (`LC_ALL`, then `LC_CTYPE`, then `LANG`).
    pub fn detect() -> Self {
        let locale = ["LC_ALL", "LC_CTYPE", "LANG"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
            .unwrap_or_default()
            .to_ascii_lowercase();
        Self {
            unicode: locale.contains("utf-8") || locale.contains("utf8"),
        }
    }
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, app: &mut App, theme: &Theme, glyphs: Glyphs) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let msg = format!(
            "terminal too small: {}x{}, locktop needs at least {MIN_WIDTH}x{MIN_HEIGHT}; enlarge it (q quits)",
            area.width, area.height
        );
        let wrapped = Paragraph::new(Line::styled(msg, theme.note))
            .wrap(ratatui::widgets::Wrap { trim: true });
        frame.render_widget(wrapped, area);
        return;
    }
    let notes = notes(app);
    let bottom = if app.detail {
        area.height / 2
    } else {
        locks::height(area.height)
    };
    let [head, ban, note, main, lower, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(u16::try_from(notes.len().min(2)).unwrap_or(0)),
        Constraint::Min(4),
        Constraint::Length(bottom),
        Constraint::Length(1),
    ])
    .areas(area);
    header::draw(frame, app, theme, glyphs, head);
    header::draw_banner(frame, app, theme, ban);
    for (i, n) in notes.iter().take(2).enumerate() {
        let line = Rect {
            y: note.y + i as u16,
            height: 1,
            ..note
        };
        frame.render_widget(
            Paragraph::new(Line::styled(
                text::clean(n, line.width as usize),
                theme.note,
            )),
            line,
        );
    }
    profiles::draw(frame, app, theme, glyphs, main);
    app.hits.lower = lower;
    if app.detail {
        // The lock waits' lines stay as last drawn: Esc shows them again as they were.
        detail::draw(frame, app, theme, glyphs, lower);
    } else {
        let drawn = locks::draw(frame, app, theme, glyphs, lower);
        app.hits.wait_lines = drawn.lines;
        app.hits.wait_skip = drawn.skip;
        app.hits.wait_order = drawn.order;
    }
    footer::draw(frame, app, theme, foot);
    if app.alerts_open {
        alerts::draw(frame, app, theme, glyphs, area);
    }
    if app.help {
        help::draw(frame, theme, glyphs, area, app.replay.is_some());
    }
    if !glyphs.unicode {
        ascii_only(frame.buffer_mut());
    }
}

/// Every cell in ASCII, for a terminal whose locale is not UTF-8: the one place the whole screen passes
/// through, so that no byte above 0x7F is ever written (a stray C1 byte such as 0x9B is CSI to some terminals).
fn ascii_only(buffer: &mut ratatui::buffer::Buffer) {
    for cell in &mut buffer.content {
        let symbol = cell.symbol();
        if !symbol.is_ascii() {
            let c = symbol.chars().next().map_or(' ', text::ascii_char);
            cell.set_char(c);
        }
    }
}

/// The note lines, most urgent first (two are shown): why lease rows or a database are missing, which service
/// endpoints fail, whether `--on-alert` failed, then what the role cannot see and the session's own notes.
fn notes(app: &App) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some(reason) = app.recording.as_ref().and_then(|r| r.stopped.as_deref()) {
        out.push(format!(
            "recording stopped: {reason}; the file ends at the last poll written, the dashboard goes on"
        ));
    }
    if let Some(s) = &app.snapshot {
        out.extend(s.incomplete());
    }
    if let Some(board) = &app.board {
        out.extend(board.doubts.iter().cloned());
    }
    if let Some(service) = &app.service {
        out.extend(service.errors.iter().cloned());
    }
    if let Some(why) = &app.hook_failure {
        out.push(why.clone());
    }
    if let Some(s) = &app.snapshot {
        if s.pooled {
            out.push(crate::model::snapshot::POOLED_NOTE.to_owned());
        }
        out.extend(s.visibility.note().map(str::to_owned));
        out.extend(s.source_notes());
    }
    out.extend(app.notes.iter().cloned());
    out
}

/// The border set for boxes.
fn border_set(glyphs: Glyphs) -> ratatui::symbols::border::Set<'static> {
    if glyphs.unicode {
        ratatui::symbols::border::ROUNDED
    } else {
        ratatui::symbols::border::Set {
            top_left: "+",
            top_right: "+",
            bottom_left: "+",
            bottom_right: "+",
            vertical_left: "|",
            vertical_right: "|",
            horizontal_top: "-",
            horizontal_bottom: "-",
        }
    }
}
