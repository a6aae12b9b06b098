//! The help overlay (`?`): keys, what the statuses mean, and the runbook's escalation triggers.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::{Glyphs, border_set};
use crate::theme::Theme;

const HELP: &[&str] = &[
    "q / Ctrl-C   quit                       ?        this help",
    "/            filter profile/owner/key   Esc      back, clear filter",
    "s            cycle sort                 p        pause (the view freezes)",
    "j k ↑ ↓      move                       PgUp PgDn Home End",
    "Enter        detail of the profile; on a lock wait, its profile or blocker",
    "Tab          profiles / lock waits      a        alerts and their runbook",
    "x            a profile's other keys: auto (when they fit), all, first only",
    "t            show query texts           Ctrl-Z   suspend (fg resumes)",
    "r            poll now                   mouse    click selects, wheel moves",
    "",
    "ok         held and renewed, nobody failing",
    "contended  a failed acquisition or a lock wait within the last TTL",
    "expired    past its expiry, not refreshed or released: owner may be dead",
    "ESCALATED  contended beyond the limit (3 TTL cycles), or a row expired",
    "           for more than a TTL while contention goes on",
    "Banner: ESCALATE also when several profiles are contended at once.",
    "",
    "Runbook: identify profile and key; check the holder's backend; wait for",
    "the TTL; never delete lock rows by hand; escalate when the banner says so.",
    "locktop only reads: no key writes to the database.",
];

/// The player's keys, shown too during `locktop replay`.
const REPLAY: &str = "replay       p/Space pause  +/- speed 1×/10×/60×  . step  e next escalation";

/// Draws the overlay centred on `area`; `replay` adds the player's keys.
pub fn draw(frame: &mut Frame, theme: &Theme, glyphs: Glyphs, area: Rect, replay: bool) {
    let mut help: Vec<&str> = HELP.to_vec();
    if replay {
        help.insert(9, REPLAY);
    }
    let w = (help
        .iter()
        .map(|l| super::text::width(l))
        .max()
        .unwrap_or(40) as u16
        + 4)
    .min(area.width);
    let h = (help.len() as u16 + 2).min(area.height);
    let rect = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_set(border_set(glyphs))
        .border_style(theme.title)
        .title(Line::styled(" help (? or Esc closes) ", theme.title));
    let lines: Vec<Line> = help.iter().map(|l| Line::raw(*l)).collect();
    frame.render_widget(Clear, rect);
    frame.render_widget(Paragraph::new(lines).block(block), rect);
}
