//! `locktop` / `locktop watch`: the live dashboard.
//!
//! Everything that can fail for a fixable reason (config, theme, DSN, the lease mapping, the terminal) is checked
//! before the terminal is touched, so the error is one plain line. Then the terminal goes raw and alternate;
//! a guard restores it on every way out (return, error, panic via the hook, SIGTERM). A frame is drawn only on a
//! key, new data, a resize or the 1 Hz countdown tick, into a 64 KiB buffer flushed once per frame.

use std::io::{BufWriter, IsTerminal, Write};
use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr, bail, eyre};
use crossterm::event::{Event, EventStream, KeyEventKind};
use crossterm::{cursor, execute, terminal};
use futures_util::StreamExt;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::signal::unix::{SignalKind, signal};

use crate::app::{App, keymap};
use crate::cli::{Common, WatchArgs};
use crate::config::Config;
use crate::model::service::ServiceView;
use crate::recording::{self, Recorder};
use crate::source::service::{Scraper, run_service};
use crate::source::{
    Feed, LeaseDetail, Link, Monitor, PollerSettings, SessionLimits, Target, fleet, run_poller,
};
use crate::theme::{ColorDepth, Theme};
use crate::ui::{self, Glyphs};

/// Restores the terminal when dropped, and from the panic hook.
#[derive(Debug)]
pub struct TerminalGuard;

impl TerminalGuard {
    /// Raw mode and the alternate screen, undone on drop and on a panic.
    pub fn enter() -> Result<Self> {
        terminal::enable_raw_mode()?;
        let guard = Self;
        execute!(
            std::io::stdout(),
            terminal::EnterAlternateScreen,
            cursor::Hide
        )?;
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

fn restore() {
    let _ = execute!(
        std::io::stdout(),
        terminal::LeaveAlternateScreen,
        cursor::Show
    );
    let _ = terminal::disable_raw_mode();
}

/// Whether the user asked for no colour (`NO_COLOR` set and non-empty, or `--no-color`).
pub fn no_color(flag: bool) -> bool {
    flag || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Runs the dashboard until the operator quits; returns the exit status.
pub async fn run(common: &Common, args: &WatchArgs) -> Result<i32> {
    let theme = check_terminal(args)?;
    let config = super::load_config(common.config.as_deref())?;
    let targets = super::targets(common, &config)?;
    let scraper = super::scraper(super::service_settings(common, &config), common.interval)?;
    let notes = Vec::new();
    let recorder = open_recorder(args, &super::describe(&targets), &config, common.interval)?;
    let extras = Extras { recorder, scraper };
    dashboard(&targets, &config, common.interval, &theme, notes, extras).await
}

/// What a dashboard may run beside its pollers.
#[derive(Debug, Default)]
pub struct Extras {
    /// Writes every poll to a `--record` file.
    pub recorder: Option<Recorder>,
    /// Reads the service's metrics and health.
    pub scraper: Option<Scraper>,
}

/// The `--record` file, opened before the terminal is touched so that a bad path is a one-line error.
pub fn open_recorder(
    args: &WatchArgs,
    target: &str,
    config: &Config,
    interval: Duration,
) -> Result<Option<Recorder>> {
    let Some(path) = &args.record else {
        return Ok(None);
    };
    let header = recording::Header {
        locktop_recording: recording::FORMAT,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        target: target.to_owned(),
        interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
        ttl_s: config.thresholds.ttl.as_secs_f64(),
        escalate_after_s: config.thresholds.escalate_after.as_secs_f64(),
        prepared_after_s: config.thresholds.prepared_after.as_secs_f64(),
        queries: args.record_queries,
        started_at: chrono::Utc::now(),
    };
    let recorder = Recorder::create(path, &header).wrap_err_with(|| {
        format!(
            "cannot write the recording {}; check --record",
            path.display()
        )
    })?;
    Ok(Some(recorder))
}

/// Writes every poll the poller publishes to the recording, apart from the UI (which may pause or lag).
async fn record_polls(mut rx: tokio::sync::watch::Receiver<Feed>, mut recorder: Recorder) {
    let mut seen = 0;
    while rx.changed().await.is_ok() {
        let feed = rx.borrow_and_update().clone();
        if feed.polls == seen {
            continue;
        }
        seen = feed.polls;
        let written = match (&feed.snapshot, feed.last_poll_failed, &feed.link) {
            (_, true, Link::Reconnecting { error, .. }) => recorder.failed(error),
            (Some(snapshot), false, _) => recorder.poll(snapshot),
            _ => Ok(()),
        };
        if let Err(e) = written {
            tracing::error!(error = %e, "recording stopped");
            return;
        }
    }
}

/// The checks made before the terminal is touched: a terminal, large enough, and a usable theme.
pub fn check_terminal(args: &WatchArgs) -> Result<Theme> {
    check_terminal_for(&args.theme, args.no_color)
}

/// [`check_terminal`] for a theme name or path and the `--no-color` flag.
pub fn check_terminal_for(theme: &str, no_color_flag: bool) -> Result<Theme> {
    if !std::io::stdout().is_terminal() {
        bail!(
            "stdout is not a terminal: the dashboard needs one; for scripts use `locktop snapshot --format json`"
        );
    }
    let theme = Theme::load(theme, ColorDepth::detect(no_color(no_color_flag)))?;
    let (width, height) = terminal::size()?;
    if width < ui::MIN_WIDTH || height < ui::MIN_HEIGHT {
        bail!(
            "terminal too small: {width}x{height}, locktop needs at least {}x{}; enlarge the window",
            ui::MIN_WIDTH,
            ui::MIN_HEIGHT
        );
    }
    Ok(theme)
}

/// Connects (checking the mapping), then shows the dashboard until the operator quits. With several targets,
/// each gets its own poller and connection; one that cannot be reached yet starts as down and keeps trying,
/// but a mistake in any target's DSN, role or mapping stops locktop before the terminal is touched.
pub async fn dashboard(
    targets: &[(String, Target)],
    config: &Config,
    interval: Duration,
    theme: &Theme,
    notes: Vec<String>,
    extras: Extras,
) -> Result<i32> {
    let Extras { recorder, scraper } = extras;
    let limits = SessionLimits::for_interval(interval);
    let ttl = config.thresholds.ttl;
    let connects = targets.iter().map(|(label, target)| async move {
        match Monitor::connect(target, &config.lease, limits).await {
            Ok(mut monitor) => {
                monitor.set_detail(LeaseDetail::Summary {
                    ttl,
                    focus: Vec::new(),
                });
                Ok(Some(monitor))
            }
            Err(e) if targets.len() > 1 && e.needs_reconnect() => {
                tracing::warn!(target = label, error = %e, "target down at start");
                Ok(None)
            }
            Err(e) if targets.len() > 1 => Err(eyre!("{label}: {e}")),
            Err(e) => Err(e.into()),
        }
    });
    let monitors = futures_util::future::join_all(connects)
        .await
        .into_iter()
        .collect::<Result<Vec<_>>>()?;

    let (tx, mut rx) = tokio::sync::watch::channel(Feed::default());
    let mut tasks = Vec::new();
    let mut feeds = Vec::new();
    for ((label, target), monitor) in targets.iter().zip(monitors) {
        let settings = PollerSettings {
            target: target.clone(),
            mapping: config.lease.clone(),
            interval,
            ttl,
        };
        if targets.len() == 1 {
            tasks.push(tokio::spawn(run_poller(settings, monitor, tx.clone())));
        } else {
            let (own_tx, own_rx) = tokio::sync::watch::channel(Feed::default());
            tasks.push(tokio::spawn(run_poller(settings, monitor, own_tx)));
            feeds.push((label.clone(), own_rx));
        }
    }
    if !feeds.is_empty() {
        tasks.push(tokio::spawn(fleet::run_fleet(feeds, interval, tx.clone())));
    }
    drop(tx);
    let recording = recorder.map(|r| tokio::spawn(record_polls(rx.clone(), r)));
    let (service_tx, mut service_rx) = tokio::sync::watch::channel(None);
    let with_service = scraper.is_some();
    if let Some(scraper) = scraper {
        tasks.push(tokio::spawn(run_service(scraper, interval, service_tx)));
    }

    let mut app = App::new(
        super::describe(targets),
        config.thresholds.rules(),
        interval,
        notes,
    );
    if with_service {
        app.service = Some(ServiceView::default());
    }
    let glyphs = Glyphs::detect();
    let guard = TerminalGuard::enter()?;
    let backend = CrosstermBackend::new(BufWriter::with_capacity(64 * 1024, std::io::stdout()));
    let mut term = Terminal::new(backend)?;
    let result = event_loop(&mut term, &mut app, theme, glyphs, &mut rx, &mut service_rx).await;
    drop(term);
    drop(guard);
    for task in &tasks {
        task.abort();
    }
    if let Some(recording) = recording {
        // The pollers are gone, so the channel closes and the recorder finishes its last line.
        for task in tasks {
            let _ = task.await;
        }
        let _ = recording.await;
    }
    result.map(|()| 0)
}

async fn event_loop(
    term: &mut Terminal<CrosstermBackend<BufWriter<std::io::Stdout>>>,
    app: &mut App,
    theme: &Theme,
    glyphs: Glyphs,
    rx: &mut tokio::sync::watch::Receiver<Feed>,
    service: &mut tokio::sync::watch::Receiver<Option<ServiceView>>,
) -> Result<()> {
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut term_signal = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    term.draw(|f| ui::draw(f, app, theme, glyphs))?;
    loop {
        let stale_at = app.stale_at();
        let redraw = tokio::select! {
            event = keys.next() => match event {
                Some(Ok(Event::Key(key))) if key.kind != KeyEventKind::Release => {
                    match keymap(key, app.editing_filter) {
                        Some(action) => { app.apply(action); true }
                        None => false,
                    }
                }
                Some(Ok(Event::Resize(..))) => true,
                Some(Ok(_)) => false,
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
            changed = rx.changed() => {
                if changed.is_err() {
                    bail!("the poller stopped unexpectedly; see the log file");
                }
                let feed = rx.borrow_and_update().clone();
                app.on_feed(&feed)
            },
            // The scraper's task ends only with the dashboard (or never starts without endpoints).
            Ok(()) = service.changed() => {
                app.service = service.borrow_and_update().clone().or(app.service.take());
                true
            },
            _ = tick.tick() => {
                if !app.paused {
                    app.reevaluate();
                }
                // Countdowns and the stale/reconnecting timers move every second.
                true
            },
            // Data that stops coming is marked stale the moment it is two intervals old.
            () = sleep_until_or_never(stale_at) => true,
            _ = term_signal.recv() => { app.quit = true; false },
            _ = hangup.recv() => { app.quit = true; false },
            _ = interrupt.recv() => { app.quit = true; false },
        };
        if app.quit {
            return Ok(());
        }
        // Debug builds only: lets the tests prove that a panic restores the terminal.
        #[cfg(debug_assertions)]
        assert!(
            app.snapshot.is_none() || std::env::var_os("LOCKTOP_TEST_PANIC").is_none(),
            "LOCKTOP_TEST_PANIC: a deliberate panic once the first poll arrived"
        );
        if redraw {
            term.draw(|f| ui::draw(f, app, theme, glyphs))?;
            term.backend_mut().flush()?;
        }
    }
}

async fn sleep_until_or_never(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
