//! The header line (target, server time, poll latency, link state) and the escalation banner.

use std::fmt::Write as _;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::text;
use crate::app::App;
use crate::model::feed::Link;
use crate::model::human_duration;
use crate::model::service::ServiceView;
use crate::theme::Theme;

/// Draws the header line.
pub fn draw(frame: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    // The link state comes first: on a narrow terminal the end of the line is what gets cut.
    let mut spans = vec![
        Span::styled(" locktop ", theme.title),
        state_span(app, theme),
    ];
    if app.paused {
        spans.push(Span::raw(" "));
        spans.push(Span::styled(" PAUSED (p resumes) ", theme.stale));
    }
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
                spans.push(Span::raw(" "));
                spans.push(Span::styled(format!(" STANDBY{lag} "), theme.escalated));
            }
        }
    }
    // What is down comes before what is merely informative: several databases' states, then the service's
    // health, then (one database) its name.
    let parts = app.snapshot.as_ref().filter(|s| !s.parts.is_empty());
    if let Some(s) = parts {
        spans.push(Span::raw("  "));
        for (i, part) in s.parts.iter().enumerate() {
            if i > 0 {
                spans.push(Span::raw(" · "));
            }
            match &part.down {
                None => spans.push(Span::styled(text::clean(&part.target, 40), theme.header)),
                // Why, in the notes line below.
                Some(_) => spans.push(Span::styled(
                    format!("{} DOWN", text::clean(&part.target, 40)),
                    theme.stale,
                )),
            }
        }
    }
    if let Some(service) = &app.service {
        service_spans(service, theme, &mut spans);
    }
    if parts.is_none() {
        spans.push(Span::raw("  "));
        spans.push(Span::styled(app.target.clone(), theme.header));
    }
    if let Some(now) = app.now() {
        spans.push(Span::raw(format!(
            "  server {}",
            now.format("%H:%M:%S UTC")
        )));
    }
    if let Some(s) = &app.snapshot {
        spans.push(Span::styled(
            format!("  poll {:.1} ms", s.poll_ms),
            theme.dim,
        ));
        if s.pooled {
            // What it means, in the notes line.
            spans.push(Span::styled("  via pooler", theme.stale));
        }
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
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

/// Draws the banner naming the escalation trigger that fired (and how many more did).
pub fn draw_banner(frame: &mut Frame, app: &App, theme: &Theme, area: Rect) {
    let Some(board) = &app.board else { return };
    let Some(first) = board.alerts.first() else {
        return;
    };
    let more = board.alerts.len() - 1;
    let mut msg = format!(" {}", first.message());
    if more > 0 {
        let _ = write!(msg, "  (+{more} more: see the profiles marked ESCALATED)");
    }
    let line = text::fit(&msg, area.width as usize);
    frame.render_widget(Paragraph::new(Line::styled(line, theme.banner)), area);
}
