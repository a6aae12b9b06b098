//! The one terminal runtime of the dashboard, `demo` and `replay`: raw mode and the alternate screen, restored
//! on every way out (a return, an error, a panic through the hook, SIGINT, SIGTERM, SIGHUP); suspend (Ctrl-Z,
//! or SIGTSTP sent from outside: the terminal is handed back to the shell, and taken again on SIGCONT);
//! resize; the frame clock; and the keys. A frame is drawn only on a key, news from the feed, a resize, the
//! 1 Hz countdown tick (while polls come each second, each poll's frame is the tick) or the moment data turns
//! stale, into a 64 KiB buffer flushed once per frame.
//!
//! A feed plugs in through [`Plug`]: the live poller ([`super::watch`]) or the replay player
//! ([`super::replay`]). It says when it has news, takes its own keys, and hears what the UI asks of it.

use std::future::Future;
use std::io::{BufWriter, Stdout};
use std::time::Duration;

use color_eyre::eyre::Result;
use crossterm::event::{self, Event, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use crossterm::{cursor, execute, style, terminal};
use futures_util::StreamExt;
use ratatui::Terminal;
use tokio::signal::unix::{SignalKind, signal};

use super::lean::Lean;
use super::sgr16::Sgr16;
use crate::app::{App, keymap};
use crate::theme::Theme;
use crate::ui::{self, Glyphs};

/// How the screen looks and what it takes: the theme, the character set, and whether the mouse is read.
#[derive(Debug, Clone)]
pub struct Face {
    pub theme: Theme,
    pub glyphs: Glyphs,
    /// Mouse capture: clicks and the wheel (off keeps the terminal's own text selection).
    pub mouse: bool,
    /// A 16-colour terminal: colours are written with the classic codes, not 256-colour ones.
    pub ansi16: bool,
}

/// What a feed gives the runtime.
pub trait Plug {
    /// What the feed brings between two frames.
    type News;

    /// Waits for the feed's next news. An error ends the runtime (the feed died).
    fn news(&mut self) -> impl Future<Output = Result<Self::News>>;

    /// Applies news to the app; whether the screen changed.
    fn apply(&mut self, news: Self::News, app: &mut App) -> bool;

    /// A key for the feed itself (the player's keys); whether it took it. Called before the common keymap,
    /// except while the filter line is edited.
    fn key(&mut self, _key: &KeyEvent, _app: &mut App) -> bool {
        false
    }

    /// Hears what the UI now asks of the feed (after every change of the app): the live feed passes the
    /// profiles in focus to its pollers.
    fn control(&mut self, _app: &App) {}

    /// Last touches before each frame (the player's state line).
    fn before_draw(&mut self, _app: &mut App) {}
}

/// Restores the terminal when dropped, and from the panic hook.
#[derive(Debug)]
pub struct TerminalGuard;

/// Whether the screen, once taken, reads the mouse (kept for taking it again after a suspend).
static MOUSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl TerminalGuard {
    /// Raw mode and the alternate screen (and mouse capture when `mouse`), undone on drop and on a panic.
    pub fn enter(mouse: bool) -> Result<Self> {
        MOUSE.store(mouse, std::sync::atomic::Ordering::Relaxed);
        take_screen()?;
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        Ok(Self)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Raw mode, the alternate screen, the cursor hidden, and the mouse read when asked for.
fn take_screen() -> Result<()> {
    // Nothing may write to stderr now: it is the terminal the dashboard draws on.
    crate::source::conninfo::TERMINAL_TAKEN.store(true, std::sync::atomic::Ordering::Relaxed);
    terminal::enable_raw_mode()?;
    execute!(
        std::io::stdout(),
        terminal::EnterAlternateScreen,
        cursor::Hide
    )?;
    if MOUSE.load(std::sync::atomic::Ordering::Relaxed) {
        execute!(std::io::stdout(), event::EnableMouseCapture)?;
    }
    Ok(())
}

/// The terminal as the shell left it (mouse capture off whether or not it was on: harmless either way).
pub fn restore() {
    crate::source::conninfo::TERMINAL_TAKEN.store(false, std::sync::atomic::Ordering::Relaxed);
    let _ = execute!(
        std::io::stdout(),
        // The screen leaves its colours set between frames.
        style::ResetColor,
        style::SetAttribute(style::Attribute::Reset),
        event::DisableMouseCapture,
        terminal::LeaveAlternateScreen,
        cursor::Show
    );
    let _ = terminal::disable_raw_mode();
}

type Screen = Terminal<Lean<Sgr16<BufWriter<Stdout>>>>;

fn screen(ansi16: bool) -> Result<Screen> {
    let out = BufWriter::with_capacity(64 * 1024, std::io::stdout());
    let mut backend = Lean::new(Sgr16::new(out, ansi16));
    // A blank screen to start from, known to the backend (what it may erase or reprint rather than move over).
    ratatui::backend::Backend::clear_region(&mut backend, ratatui::backend::ClearType::All)?;
    Ok(Terminal::new(backend)?)
}

/// Hands the terminal back to the shell and stops this process, as a shell's job control expects of Ctrl-Z or
/// SIGTSTP (the handler that catches SIGTSTP replaced its default stop); on SIGCONT takes the terminal again
/// with a full repaint (a new `Terminal`: its first frame paints everything, and no cursor query is made).
fn suspend(term: &mut Screen, ansi16: bool) -> Result<()> {
    restore();
    nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGSTOP)?;
    // Here again after SIGCONT.
    take_screen()?;
    execute!(std::io::stdout(), terminal::Clear(terminal::ClearType::All))?;
    *term = screen(ansi16)?;
    Ok(())
}

fn is_suspend_key(key: &KeyEvent) -> bool {
    key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('z')
}

/// Runs the screen until the operator quits (or a signal says so); the terminal is restored on every way out.
pub async fn run(app: &mut App, feed: &mut impl Plug, face: &Face) -> Result<()> {
    let guard = TerminalGuard::enter(face.mouse)?;
    let mut term = screen(face.ansi16)?;
    let result = event_loop(&mut term, app, feed, face).await;
    drop(term);
    drop(guard);
    result
}

/// The clock's tick while no poll comes: countdowns, and the stale and reconnecting timers, move each second.
const TICK: Duration = Duration::from_secs(1);

async fn event_loop(
    term: &mut Screen,
    app: &mut App,
    feed: &mut impl Plug,
    face: &Face,
) -> Result<()> {
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut term_signal = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut stop = signal(SignalKind::from_raw(
        nix::sys::signal::Signal::SIGTSTP as i32,
    ))?;
    feed.control(app);
    let mut drawn_fresh = draw(term, app, feed, face)?;
    loop {
        // Data that stops coming is marked stale the moment it is two intervals old, if the last frame drew
        // it fresh: also when that moment has just passed (a tick drew a frame a moment before it).
        let stale_at = app.stale_at().filter(|_| drawn_fresh);
        let mut suspend_now = false;
        let redraw = tokio::select! {
            event = keys.next() => match event {
                Some(Ok(Event::Key(key))) if key.kind != KeyEventKind::Release => {
                    if is_suspend_key(&key) {
                        suspend_now = true;
                        false
                    } else if !app.editing_filter && feed.key(&key, app) {
                        true
                    } else {
                        match keymap(key, app.editing_filter) {
                            Some(action) => { app.apply(action); true }
                            None => false,
                        }
                    }
                }
                Some(Ok(Event::Mouse(m))) => app.mouse(m.kind, m.column, m.row),
                Some(Ok(Event::Resize(..))) => true,
                Some(Ok(_)) => false,
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
            news = feed.news() => {
                let news = news?;
                let shown = app.received_at;
                let changed = feed.apply(news, app);
                if app.received_at != shown {
                    // A poll was just shown, judged at its own time: the tick waits for the next one, and ticks
                    // only if it is late (not in the middle of a poll, and not with a second evaluation of
                    // every profile each second).
                    tick.reset_after(TICK + TICK / 2);
                }
                changed
            },
            _ = tick.tick() => {
                if !app.is_paused() {
                    app.reevaluate();
                }
                // Countdowns and the stale/reconnecting timers move every second.
                true
            },
            () = sleep_until_or_never(stale_at) => true,
            _ = stop.recv() => { suspend_now = true; false },
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
        if suspend_now {
            suspend(term, face.ansi16)?;
        }
        if redraw || suspend_now {
            feed.control(app);
            drawn_fresh = draw(term, app, feed, face)?;
        }
    }
}

/// Draws a frame; whether the data was fresh when it began (so that the frame may show it fresh).
fn draw(term: &mut Screen, app: &mut App, feed: &mut impl Plug, face: &Face) -> Result<bool> {
    let fresh = app.staleness().is_none();
    feed.before_draw(app);
    term.draw(|f| ui::draw(f, app, &face.theme, face.glyphs))?;
    ratatui::backend::Backend::flush(term.backend_mut())?;
    Ok(fresh)
}

async fn sleep_until_or_never(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
