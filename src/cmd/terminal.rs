//! The one terminal runtime of the dashboard, `demo` and `replay`: raw mode and the alternate screen, restored
//! on every way out (a return, an error, a panic through the hook, SIGINT, SIGTERM, SIGHUP); suspend (Ctrl-Z,
//! or SIGTSTP sent from outside: the terminal is handed back to the shell, and taken again on SIGCONT);
//! resize; the frame clock; and the keys. A frame is drawn only on a key, news from the feed, a resize, the
//! 1 Hz countdown tick (while polls come each second, each poll's frame is the tick) or the moment data turns
//! stale, into a 64 KiB buffer flushed once per frame; news that lands within [`TOGETHER`] of other news (the
//! service's scrape and the poll of the same second) shares its frame.
//!
//! A feed plugs in through [`Plug`]: the live poller ([`super::watch`]) or the replay player
//! ([`super::replay`]). It says when it has news, takes its own keys, and hears what the UI asks of it.

use std::future::Future;
use std::io::{BufWriter, Stdout};
use std::task::Poll;
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

/// How long after news the screen waits for more before it draws: the pollers and the service's scraper tick
/// together, and their news lands a few milliseconds apart; one frame shows both, instead of a frame whose
/// countdowns move and a second that moves them back to what the poll says.
const TOGETHER: Duration = Duration::from_millis(25);

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
                Some(Ok(event)) => {
                    let asked = take_input(event, &mut keys, |e| on_event(&e, app, feed)).await?;
                    suspend_now = asked.suspend;
                    asked.redraw
                }
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
            news = feed.news() => {
                let shown = app.received_at;
                let changed = take_news(news?, feed, app, TOGETHER).await?;
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

/// What input asks of the screen's loop.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Asked {
    redraw: bool,
    suspend: bool,
    quit: bool,
}

impl Asked {
    /// What two inputs ask together.
    fn and(self, other: Self) -> Self {
        Self {
            redraw: self.redraw || other.redraw,
            suspend: self.suspend || other.suspend,
            quit: self.quit || other.quit,
        }
    }
}

/// Applies one input event to the app.
fn on_event(event: &Event, app: &mut App, feed: &mut impl Plug) -> Asked {
    let redraw = match *event {
        Event::Key(key) if key.kind != KeyEventKind::Release => {
            if is_suspend_key(&key) {
                return Asked {
                    suspend: true,
                    ..Asked::default()
                };
            }
            if !app.editing_filter && feed.key(&key, app) {
                true
            } else if let Some(action) = keymap(key, app.editing_filter) {
                app.apply(action);
                true
            } else {
                false
            }
        }
        Event::Mouse(m) => app.mouse(m.kind, m.column, m.row),
        Event::Resize(..) => true,
        _ => false,
    };
    Asked {
        redraw,
        quit: app.quit,
        ..Asked::default()
    }
}

/// Up to how many input events that are already waiting one frame answers.
const INPUT_BATCH: usize = 64;

/// Applies `first` and the input events already waiting behind it (keys typed faster than a frame, a paste,
/// a burst that a slow link delivers at once), for one frame drawn after them all, as htop does: a frame per
/// key would draw screens no one sees, and at 50,000 profiles each keystroke of a filter is a pass over all
/// of them. Stops at a quit or a suspend (what follows is the next loop's), and after [`INPUT_BATCH`] events,
/// so that a flood of input cannot hold the polls' news back.
///
/// Each look is a poll with this task's own waker: crossterm's stream, when nothing is waiting, hands the
/// waker it was polled with to its reader thread once, and wakes only that one when input comes (a look with
/// a waker of its own, such as `now_or_never`'s, would leave the loop unwoken by keys until a tick).
async fn take_input<S>(
    first: Event,
    keys: &mut S,
    mut apply: impl FnMut(Event) -> Asked,
) -> Result<Asked>
where
    S: futures_util::Stream<Item = std::io::Result<Event>> + Unpin,
{
    let mut asked = apply(first);
    for _ in 1..INPUT_BATCH {
        if asked.quit || asked.suspend {
            break;
        }
        let waiting = std::future::poll_fn(|cx| Poll::Ready(keys.poll_next_unpin(cx))).await;
        match waiting {
            Poll::Ready(Some(Ok(event))) => asked = asked.and(apply(event)),
            Poll::Ready(Some(Err(e))) => return Err(e.into()),
            // Nothing waiting (or the end of input, which the loop's next wait finds too).
            Poll::Ready(None) | Poll::Pending => break,
        }
    }
    Ok(asked)
}

/// Applies `first` and whatever news follows it within `within` of it, for one frame; whether the screen
/// changed. Keys typed meanwhile wait for at most `within`.
async fn take_news<P: Plug>(
    first: P::News,
    feed: &mut P,
    app: &mut App,
    within: Duration,
) -> Result<bool> {
    let until = tokio::time::Instant::now() + within;
    let mut changed = feed.apply(first, app);
    while let Ok(news) = tokio::time::timeout_at(until, feed.news()).await {
        changed |= feed.apply(news?, app);
    }
    Ok(changed)
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

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Waker};

    use super::*;

    fn key(c: char) -> Event {
        Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
    }

    /// What a run of `take_input` over `waiting` applied, and what it left waiting.
    async fn taken(first: char, waiting: &str, quit_on: char) -> (Asked, String, String) {
        let mut keys = futures_util::stream::iter(waiting.chars().map(|c| Ok(key(c))));
        let mut applied = String::new();
        let asked = take_input(key(first), &mut keys, |e| {
            let Event::Key(KeyEvent {
                code: KeyCode::Char(c),
                ..
            }) = e
            else {
                unreachable!("keys only");
            };
            applied.push(c);
            Asked {
                redraw: true,
                quit: c == quit_on,
                ..Asked::default()
            }
        })
        .await
        .expect("no input error");
        let left: String =
            std::iter::from_fn(|| futures_util::FutureExt::now_or_never(keys.next()).flatten())
                .map(|e| match e {
                    Ok(Event::Key(KeyEvent {
                        code: KeyCode::Char(c),
                        ..
                    })) => c,
                    _ => unreachable!("keys only"),
                })
                .collect();
        (asked, applied, left)
    }

    /// A feed whose news are numbers sent on a channel; applying one notes it.
    struct Numbers {
        rx: tokio::sync::mpsc::UnboundedReceiver<u32>,
        applied: Vec<u32>,
    }

    impl Plug for Numbers {
        type News = u32;

        async fn news(&mut self) -> Result<u32> {
            Ok(self.rx.recv().await.expect("sender kept"))
        }

        fn apply(&mut self, news: u32, _app: &mut App) -> bool {
            self.applied.push(news);
            true
        }
    }

    #[tokio::test(start_paused = true)]
    async fn news_that_lands_just_after_other_news_is_shown_in_the_same_frame() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut feed = Numbers {
            rx,
            applied: Vec::new(),
        };
        let mut app = App::new(
            "t".into(),
            crate::model::rules::Rules::default(),
            TICK,
            Vec::new(),
        );
        tokio::spawn(async move {
            // The scrape, then the poll a few milliseconds later, then the next second's poll.
            tokio::time::sleep(Duration::from_millis(4)).await;
            tx.send(2).expect("open");
            tokio::time::sleep(Duration::from_millis(6)).await;
            tx.send(3).expect("open");
            tokio::time::sleep(TICK).await;
            tx.send(4).expect("open");
            std::future::pending::<()>().await;
        });
        let changed = take_news(1, &mut feed, &mut app, TOGETHER)
            .await
            .expect("news");
        assert!(changed);
        assert_eq!(feed.applied, [1, 2, 3], "one frame for news a few ms apart");
        let next = Plug::news(&mut feed).await.expect("news");
        assert_eq!(next, 4, "the next second's news is the next frame's");
    }

    #[tokio::test]
    async fn keys_already_waiting_are_applied_together_for_one_frame() {
        let (asked, applied, left) = taken('/', "p01234", '\0').await;
        assert_eq!(applied, "/p01234", "every waiting key, in order");
        assert!(left.is_empty());
        assert!(asked.redraw && !asked.quit && !asked.suspend);
    }

    /// Input as crossterm's stream gives it: when nothing is waiting, the first waker it is polled with is
    /// handed to its reader thread, which wakes that one once input comes (later polls' wakers are not kept).
    #[derive(Default, Clone)]
    struct Tty {
        waiting: Arc<Mutex<VecDeque<char>>>,
        waker: Arc<Mutex<Option<Waker>>>,
    }

    impl Tty {
        fn type_key(&self, c: char) {
            self.waiting.lock().expect("lock").push_back(c);
            if let Some(w) = self.waker.lock().expect("lock").take() {
                w.wake();
            }
        }
    }

    impl futures_util::Stream for Tty {
        type Item = std::io::Result<Event>;

        fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            if let Some(c) = self.waiting.lock().expect("lock").pop_front() {
                return Poll::Ready(Some(Ok(key(c))));
            }
            self.waker
                .lock()
                .expect("lock")
                .get_or_insert_with(|| cx.waker().clone());
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_key_that_comes_after_a_batch_wakes_the_loop() {
        let tty = Tty::default();
        tty.type_key('a');
        let mut keys = tty.clone();
        let screen_loop = tokio::spawn(async move {
            let first = keys.next().await.expect("a key").expect("no error");
            let asked = take_input(first, &mut keys, |_| Asked {
                redraw: true,
                ..Asked::default()
            })
            .await
            .expect("no input error");
            assert!(asked.redraw);
            // The loop's next wait for input.
            keys.next().await.is_some()
        });
        // Once the loop looked for more and found none, the next key comes.
        while tty.waker.lock().expect("lock").is_none() {
            tokio::task::yield_now().await;
        }
        tty.type_key('b');
        let woken = tokio::time::timeout(Duration::from_secs(20), screen_loop).await;
        assert!(
            woken.is_ok_and(|got| got.is_ok_and(|some| some)),
            "the next key never woke the loop"
        );
    }

    #[tokio::test]
    async fn a_quit_ends_the_batch_and_a_flood_is_answered_in_batches() {
        let (asked, applied, left) = taken('a', "bqcd", 'q').await;
        assert_eq!((applied.as_str(), left.as_str()), ("abq", "cd"));
        assert!(asked.quit);
        let flood = "x".repeat(200);
        let (_, applied, left) = taken('x', &flood, '\0').await;
        assert_eq!(
            (applied.len(), left.len()),
            (INPUT_BATCH, 201 - INPUT_BATCH)
        );
    }
}
