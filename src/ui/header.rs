//! The header line (target, server time, poll latency, link state) and the escalation banner.

use std::fmt::Write as _;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::columns::sparkline;
use super::{Glyphs, text};
use crate::app::App;
use crate::model::feed::Link;
use crate::model::history::DEADLOCK_MINUTES;
use crate::model::human_duration;
use crate::model::service::ServiceView;
use crate::theme::Theme;

/// A part of the header line, and how much it matters: 0 always stays, and on a narrow terminal the parts
/// with the highest number go first.
struct Piece {
    spans: Vec<Span<'static>>,
    drop_order: u8,
}

impl Piece {
    fn new(drop_order: u8, spans: Vec<Span<'static>>) -> Self {
        Self { spans, drop_order }
    }

    fn width(&self) -> usize {
        self.spans.iter().map(|s| text::width(&s.content)).sum()
    }
}

/// Draws the header line: the link state, a standby's or a down database's alarm, the server clock and the
/// poll latency always; the service's flags, the target and the program's name as room allows (the name goes
/// first, then the target, cut in the middle before it goes).
pub fn draw(frame: &mut Frame, app: &App, theme: &Theme, glyphs: Glyphs, area: Rect) {
    let mut pieces = vec![
        Piece::new(9, vec![Span::styled(" locktop ", theme.title)]),
        Piece::new(0, vec![state_span(app, theme)]),
    ];
    // A standby's locks are its own and its rows lag: said in the alert colour, before anything else.
    if let Some(s) = &app.snapshot {
        for piece in s.pieces() {
            if let Some(r) = piece.recovery {
                let lag = r
                    .replay_lag_s
                    .map(|l| {
                        format!(
                            " lag {}",
                            human_duration(chrono::Duration::seconds(l as i64))
                        )
                    })
                    .unwrap_or_default();
                pieces.push(Piece::new(
                    0,
                    vec![
                        Span::raw(" "),
                        Span::styled(format!(" STANDBY{lag} "), theme.escalated),
                    ],
                ));
            }
        }
    }
    // What is down comes before what is merely informative: several databases' states, then the service's
    // health, then (one database) its name.
    let parts = app.snapshot.as_ref().filter(|s| !s.parts.is_empty());
    if let Some(s) = parts {
        let mut spans = vec![Span::raw("  ")];
        for (i, part) in s.parts.iter().enumerate() {
            if i > 0 {
                spans.push(Span::raw(" · "));
            }
            match &part.down {
                None => spans.push(Span::styled(text::middle(&part.target, 40), theme.header)),
                // Why, in the notes line below.
                Some(_) => spans.push(Span::styled(
                    format!("{} DOWN", text::middle(&part.target, 40)),
                    theme.stale,
                )),
            }
        }
        pieces.push(Piece::new(1, spans));
    }
    if let Some(service) = app.shown_service() {
        let mut spans = Vec::new();
        service_spans(service, theme, &mut spans);
        // An unhealthy loop or a failing endpoint is an alarm; healthy flags are only informative.
        let alarm = !service.errors.is_empty()
            || service.health.iter().any(|h| {
                h.trading_loop_healthy == Some(false)
                    || h.reconciliation_loop_healthy == Some(false)
            });
        pieces.push(Piece::new(if alarm { 1 } else { 3 }, spans));
    }
    let target = parts.is_none().then_some(pieces.len());
    if target.is_some() {
        pieces.push(Piece::new(
            4,
            vec![
                Span::raw("  "),
                Span::styled(app.target.clone(), theme.header),
            ],
        ));
    }
    pieces.extend(deadlocks_piece(app, theme, glyphs));
    if let Some(now) = app.now() {
        pieces.push(Piece::new(
            0,
            vec![Span::raw(format!(
                "  server {}",
                now.format("%H:%M:%S UTC")
            ))],
        ));
    }
    if let Some(s) = &app.snapshot {
        pieces.push(Piece::new(
            0,
            vec![Span::styled(
                format!("  poll {:.1} ms", s.poll_ms),
                theme.dim,
            )],
        ));
        if s.pooled {
            // What it means, in the notes line.
            pieces.push(Piece::new(
                2,
                vec![Span::styled("  via pooler", theme.stale)],
            ));
        }
    }
    fit(&mut pieces, target, area.width as usize);
    let spans: Vec<Span> = pieces.into_iter().flat_map(|p| p.spans).collect();
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// The database's deadlocks: new ones since locktop started are an alarm; the server's total alone is
/// background.
fn deadlocks_piece(app: &App, theme: &Theme, glyphs: Glyphs) -> Option<Piece> {
    let total = app.snapshot.as_ref().and_then(|s| s.deadlocks)?;
    let since = app.deadlocks_at_start.map_or(0, |b| (total - b).max(0));
    Some(if since > 0 {
        let mut spans = vec![Span::styled(
            format!("  deadlocks {total} (+{since} since start)"),
            theme.escalated,
        )];
        // Per minute over the last ten, while any came within them.
        let minutes = app
            .now()
            .map(|now| {
                app.shown_history()
                    .deadlocks_per_minute(now, DEADLOCK_MINUTES)
            })
            .unwrap_or_default();
        if minutes.iter().flatten().any(|&n| n > 0) {
            spans.push(Span::styled(
                format!(" {}/min", sparkline(&minutes, minutes.len(), glyphs)),
                theme.escalated,
            ));
        }
        Piece::new(1, spans)
    } else {
        Piece::new(
            5,
            vec![Span::styled(format!("  deadlocks {total}"), theme.dim)],
        )
    })
}

/// Keeps the parts that matter most while they fit in `width`, in their order on the line; the target (at
/// `target`) is cut in the middle, to no fewer than 16 cells, to fit the room left rather than go.
fn fit(pieces: &mut Vec<Piece>, target: Option<usize>, width: usize) {
    let mut order: Vec<usize> = (0..pieces.len()).collect();
    order.sort_by_key(|&i| (pieces[i].drop_order, i));
    let mut keep = vec![false; pieces.len()];
    let mut used = 0;
    for i in order {
        let w = pieces[i].width();
        if used + w <= width || pieces[i].drop_order == 0 {
            keep[i] = true;
            used += w;
        } else if Some(i) == target {
            let name = &pieces[i].spans[1];
            let room = width.saturating_sub(used + 2);
            if room >= 16 {
                let cut = text::middle(&name.content, room);
                pieces[i].spans[1] = Span::styled(cut, name.style);
                keep[i] = true;
                used += pieces[i].width();
            }
        }
    }
    let mut i = 0;
    pieces.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

/// The service's health flags (`svc trading ✓ recon ✗ contention 12`), or why its endpoints failed.
fn service_spans(service: &ServiceView, theme: &Theme, spans: &mut Vec<Span<'static>>) {
    spans.push(Span::styled("  svc", theme.dim));
    let flag = |name: &str, ok: Option<bool>| match ok {
        Some(true) => Span::styled(format!(" {name} ok"), theme.ok),
        Some(false) => Span::styled(format!(" {name} UNHEALTHY"), theme.escalated),
        None => Span::styled(format!(" {name} ?"), theme.dim),
    };
    for h in &service.health {
        spans.push(flag("trading", h.trading_loop_healthy));
        spans.push(flag("reconciliation", h.reconciliation_loop_healthy));
        if let Some(n) = h.lock_contention_count {
            spans.push(Span::raw(format!(" contention {n}")));
        }
    }
    if !service.errors.is_empty() {
        // Which and why, in the notes line below.
        spans.push(Span::styled(
            format!(
                " {} failing",
                text::count(service.errors.len() as u64, "endpoint")
            ),
            theme.stale,
        ));
    } else if service.health.is_empty() && service.profiles.is_empty() {
        spans.push(Span::styled(" scraping…", theme.dim));
    }
}

fn state_span(app: &App, theme: &Theme) -> Span<'static> {
    if let Some(replay) = &app.replay {
        return Span::styled(format!(" {} ", text::clean(replay, 80)), theme.stale);
    }
    if let Some(frozen) = &app.paused {
        // Frozen: no age runs, so no "stale"; whether the link is down underneath is still said.
        let link = match app.link {
            Link::Connected => "",
            Link::Connecting | Link::Reconnecting { .. } => " · link down",
        };
        return Span::styled(
            format!(
                " PAUSED {}{link} (p resumes) ",
                frozen.now.format("%H:%M:%S")
            ),
            theme.stale,
        );
    }
    match &app.link {
        Link::Connecting => Span::styled(" connecting… ", theme.stale),
        Link::Reconnecting {
            attempt,
            next_at,
            error,
        } => {
            // Rounded up: "next in 0 s" would read as "now" while it is still coming.
            let next = next_at
                .saturating_duration_since(std::time::Instant::now())
                .as_secs_f64()
                .ceil();
            let age = app
                .received_at
                .map(|r| format!("stale {} · ", human_duration(secs(r.elapsed()))));
            Span::styled(
                format!(
                    " {}reconnecting (attempt {attempt}, next in {next} s): {} ",
                    age.unwrap_or_default(),
                    text::clean(error, 60)
                ),
                theme.stale,
            )
        }
        Link::Connected => match (app.staleness(), rows_unread(app)) {
            (Some(age), _) => Span::styled(
                format!(" stale · {} ", human_duration(secs(age))),
                theme.stale,
            ),
            // Polls answer, but the lease rows shown are older than this poll: not live.
            (None, Some(label)) => Span::styled(label, theme.stale),
            (None, None) => Span::styled(" live ", theme.ok),
        },
    }
}

/// ` rows unread · 12s ` when the last poll could not read some lease rows (with the age of the rows shown
/// instead, when there are any).
fn rows_unread(app: &App) -> Option<String> {
    let s = app.snapshot.as_ref()?;
    let unread: Vec<_> = s
        .pieces()
        .into_iter()
        .filter(|p| p.lease_error.is_some())
        .collect();
    if unread.is_empty() {
        return None;
    }
    let age = app
        .now()
        .zip(unread.iter().filter_map(|p| p.leases_as_of).min())
        .map(|(now, at)| {
            format!(
                " · {}",
                human_duration((now - at).max(chrono::Duration::zero()))
            )
        });
    Some(format!(" rows unread{} ", age.unwrap_or_default()))
}

fn secs(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or_default()
}

/// Draws the banner line: the first escalation trigger that fired, and how many more alerts on how many
/// profiles (`a` lists them); with none, that no trigger fired, or that locktop cannot vouch for calm. The line
/// is always there, so that the panes below keep their place.
pub fn draw_banner(frame: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let Some(board) = &app.board else { return };
    let width = area.width as usize;
    let Some(first) = board.alerts.first() else {
        let vouches = app
            .snapshot
            .as_ref()
            .is_some_and(|s| s.incomplete().is_empty())
            && board.doubts.is_empty();
        let (msg, style) = if vouches {
            (" no escalation trigger fired", theme.dim)
        } else {
            (
                " no trigger fired, but not everything could be read: see the notes",
                theme.note,
            )
        };
        frame.render_widget(
            Paragraph::new(Line::styled(text::fit(msg, width), style)),
            area,
        );
        return;
    };
    let more = board.alerts.len() - 1;
    let mut msg = format!(" {}", text::sanitize(first.message()));
    if more > 0 {
        let mut profiles: Vec<&str> = board.alerts.iter().flat_map(|a| a.profiles()).collect();
        profiles.sort_unstable();
        profiles.dedup();
        let _ = write!(
            msg,
            "  (+{more} more; {} on {}: a lists them)",
            text::count(board.alerts.len() as u64, "alert"),
            text::count(profiles.len() as u64, "profile")
        );
    } else {
        msg.push_str("  (a: runbook)");
    }
    let line = text::fit(&msg, width);
    frame.render_widget(Paragraph::new(Line::styled(line, theme.banner)), area);
}
