//! `locktop` / `locktop watch`: the live dashboard.
//!
//! Everything that can fail for a fixable reason (config, theme, DSN, the lease mapping, the terminal) is checked
//! before the terminal is touched, so the error is one plain line. Then the pollers start and the terminal
//! runtime ([`super::terminal`]) runs with the live feed plugged in: the pollers' latest snapshot and the
//! service's scrapes in, the dashboard's focus out.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr, bail, eyre};
use crossterm::terminal;
use tokio::sync::watch;

use super::terminal::{Face, Plug};
use crate::app::App;
use crate::cli::{Common, Connection, WatchArgs};
use crate::config::{Config, DisplayConfig};
use crate::model::feed::RecordStatus;
use crate::model::judgement::Judgement;
use crate::model::service::ServiceView;
use crate::model::watcher::Watcher;
use crate::recording::{self, Recorder};
use crate::source::service::{Scraper, run_service};
use crate::source::{
    Control, Feed, LeaseDetail, PollerSettings, SessionLimits, Target, fleet, run_poller,
};
use crate::theme::{ColorDepth, Theme};
use crate::ui::{self, Glyphs};

/// Whether the user asked for no colour (`NO_COLOR` set and non-empty, or `--no-color`).
pub fn no_color(flag: bool) -> bool {
    flag || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Runs the dashboard until the operator quits; returns the exit status.
pub async fn run(common: &Common, connection: &Connection, args: &WatchArgs) -> Result<i32> {
    let config = super::load_config(common.config.as_deref())?;
    let face = check_terminal(args, &config.display)?;
    let targets = super::ask_passwords(super::targets(connection, &config)?, connection)?;
    let scraper = super::scraper(
        super::service_settings(connection, &config),
        common.interval,
    )?;
    let notes = Vec::new();
    let recorder = open_recorder(args, &super::describe(&targets), &config, common.interval)?;
    let extras = Extras {
        recorder,
        scraper,
        never_ask: connection.no_password,
        hooks: super::hooks::Hooks::from_args(&args.hooks, &super::describe(&targets)),
    };
    dashboard(&targets, &config, common.interval, &face, notes, extras).await
}

/// What a dashboard may run beside its pollers.
#[derive(Debug, Default)]
pub struct Extras {
    /// Writes every poll to a `--record` file.
    pub recorder: Option<Recorder>,
    /// Reads the service's metrics and health.
    pub scraper: Option<Scraper>,
    /// `-w`: never ask for a password.
    pub never_ask: bool,
    /// `--on-alert`: the command run on each alert change.
    pub hooks: Option<super::hooks::Hooks>,
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
    let recorder = Recorder::create(path, &header, args.record_append_other)
        .map(|r| r.with_max_size((args.record_max_size > 0).then_some(args.record_max_size)))
        .wrap_err_with(|| {
            format!(
                "cannot write the recording {}; check --record",
                path.display()
            )
        })?;
    Ok(Some(recorder))
}

/// Who takes the judge's judgement of each poll (see [`judge_polls`]).
#[derive(Debug, Default)]
pub struct Judged {
    /// The screen's feed: each poll as the pollers published it, with the board made of it.
    pub screen: Option<watch::Sender<Feed>>,
    /// The alert hook's changes.
    pub changes: Option<tokio::sync::mpsc::UnboundedSender<crate::model::watcher::AlertChange>>,
    /// The recording, and where it tells its size after each poll, or why it stopped (a failed write ends the
    /// recording, not the dashboard).
    pub recording: Option<(Recorder, watch::Sender<Option<RecordStatus>>)>,
}

/// The dashboard's judge: follows the pollers' feed apart from the UI (which may pause, lag or be busy with
/// keys) and judges each poll once, with `watcher` (whose judgement the screen shares), for whatever needs the
/// judgement: the screen, which shows the board it made; the alert hook; and the recording, which writes every
/// poll with the statuses and alerts of that same judgement.
pub async fn judge_polls(
    rx: tokio::sync::watch::Receiver<Feed>,
    watcher: crate::model::watcher::Watcher,
    judged: Judged,
) {
    let Judged {
        screen,
        changes,
        recording,
    } = judged;
    let mut sink = recording.map(|(recorder, status)| {
        status.send_replace(Some(recorder.status()));
        RecordSink {
            recorder: Some(recorder),
            status,
            seen: 0,
        }
    });
    super::hooks::follow(rx, watcher, changes, |feed, watcher| {
        let screen_open = screen.as_ref().is_some_and(|screen| {
            let board = (!feed.last_poll_failed)
                .then(|| watcher.shared_board())
                .flatten();
            screen.send_replace(Feed {
                board,
                ..feed.clone()
            });
            !screen.is_closed()
        });
        // Once the recording stopped (and without a screen), only the hook (if any) needs the judgement.
        let recording = sink.as_mut().is_some_and(|sink| sink.on(watcher));
        screen_open || recording
    })
    .await;
}

/// The recording's end of [`judge_polls`]: a line per poll, and its status for the UI.
struct RecordSink {
    /// `None` once it stopped.
    recorder: Option<Recorder>,
    status: watch::Sender<Option<RecordStatus>>,
    seen: u64,
}

impl RecordSink {
    /// Writes the poll the watcher judged, if new; false once the recording stopped.
    fn on(&mut self, watcher: &crate::model::watcher::Watcher) -> bool {
        let Some(recorder) = self.recorder.as_mut() else {
            return false;
        };
        let stats = watcher.stats();
        if stats.polls == self.seen {
            return true;
        }
        self.seen = stats.polls;
        let written = match (&stats.failing, watcher.snapshot(), watcher.board()) {
            (Some(error), _, _) => recorder.failed(error),
            (None, Some(snapshot), Some(board)) => recorder.poll_judged(snapshot, board),
            _ => Ok(()),
        };
        let mut now = recorder.status();
        if let Err(e) = written {
            tracing::error!(error = %e, path = %now.path, "recording stopped");
            now.stopped = Some(e.to_string());
            self.recorder = None;
        }
        self.status.send_replace(Some(now));
        self.recorder.is_some()
    }
}

/// The checks made before the terminal is touched: a terminal, large enough, and a usable theme.
pub fn check_terminal(args: &WatchArgs, display: &DisplayConfig) -> Result<Face> {
    check_terminal_for(&args.theme, args.no_color, args.no_mouse, display)
}

/// [`check_terminal`] for a theme name or path, the `--no-color` and `--no-mouse` flags, and the config's
/// `[display]`.
pub fn check_terminal_for(
    theme: &str,
    no_color_flag: bool,
    no_mouse: bool,
    display: &DisplayConfig,
) -> Result<Face> {
    if !std::io::stdout().is_terminal() {
        bail!(
            "stdout is not a terminal: the dashboard needs one; for scripts use `locktop snapshot --format json`"
        );
    }
    let depth = ColorDepth::detect(no_color(no_color_flag), display.colors);
    let theme = Theme::load(theme, depth)?;
    let (width, height) = terminal::size()?;
    if width < ui::MIN_WIDTH || height < ui::MIN_HEIGHT {
        bail!(
            "terminal too small: {width}x{height}, locktop needs at least {}x{}; enlarge the window",
            ui::MIN_WIDTH,
            ui::MIN_HEIGHT
        );
    }
    Ok(Face {
        theme,
        glyphs: Glyphs::detect(),
        mouse: display.mouse && !no_mouse,
        ansi16: depth == ColorDepth::Ansi16,
    })
}

/// Connects (checking the mapping), then shows the dashboard until the operator quits. With several targets,
/// each gets its own poller and connection; one that cannot be reached yet starts as down and keeps trying,
/// but a mistake in any target's DSN, role or mapping stops locktop before the terminal is touched.
pub async fn dashboard(
    targets: &[(String, Target)],
    config: &Config,
    interval: Duration,
    face: &Face,
    notes: Vec<String>,
    extras: Extras,
) -> Result<i32> {
    let Extras {
        recorder,
        scraper,
        never_ask,
        hooks,
    } = extras;
    let Pollers {
        rx,
        control,
        mut tasks,
    } = start_pollers(targets, config, interval, never_ask).await?;
    // Without hooks, a sender kept open so that the feed waits on it forever instead of seeing it closed.
    let (_hook_tx, hook_failed, changes) = if let Some(h) = hooks {
        let (changes, failed) = h.start(&mut tasks);
        (None, failed, Some(changes))
    } else {
        let (tx, rx) = watch::channel(None);
        (Some(tx), rx, None)
    };
    let (record_tx, record_rx) = watch::channel(None);
    let (screen_tx, screen_rx) = watch::channel(Feed::default());
    // One judgement of each poll, apart from the UI, for the screen, the hook and the recording.
    let judgement = Arc::new(Judgement::new(config.thresholds.rules()));
    let finishes = changes.is_some() || recorder.is_some();
    let judge = tokio::spawn(judge_polls(
        rx,
        Watcher::judging(Arc::clone(&judgement)),
        Judged {
            screen: Some(screen_tx),
            changes,
            recording: recorder.map(|r| (r, record_tx)),
        },
    ));
    let (service_tx, service_rx) = watch::channel(None);
    let with_service = scraper.is_some();
    let mut kept_service_tx = None;
    match scraper {
        Some(scraper) => tasks.push(tokio::spawn(run_service(scraper, interval, service_tx))),
        // Kept open, so that the feed waits on it forever instead of seeing it closed.
        None => kept_service_tx = Some(service_tx),
    }

    let mut app = App::new(
        super::describe(targets),
        config.thresholds.rules(),
        interval,
        notes,
    )
    .judged_by(judgement);
    if with_service {
        app.service = Some(ServiceView::default());
    }
    let mut live = Live {
        rx: screen_rx,
        recording: record_rx,
        service: service_rx,
        _service_tx: kept_service_tx,
        hook_failed,
        control,
    };
    let result = super::terminal::run(&mut app, &mut live, face).await;
    for task in &tasks {
        task.abort();
    }
    if finishes {
        // The pollers are gone, so the channel closes and the recorder finishes its last line.
        for task in tasks {
            let _ = task.await;
        }
        let _ = judge.await;
    } else {
        judge.abort();
    }
    result.map(|()| 0)
}

/// The pollers of the targets, on one feed, and the dashboard's steering of them.
#[derive(Debug)]
pub struct Pollers {
    pub rx: watch::Receiver<Feed>,
    pub control: watch::Sender<Control>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Connects to every target (checking the mapping; see [`connect_all`]) and starts a poller on each; with
/// several, a fleet task merges their feeds into one.
pub async fn start_pollers(
    targets: &[(String, Target)],
    config: &Config,
    interval: Duration,
    never_ask: bool,
) -> Result<Pollers> {
    let limits = SessionLimits::for_interval(interval);
    let ttl = config.thresholds.ttl;
    let connected = connect_all(targets, config, limits, never_ask).await?;

    let (tx, rx) = watch::channel(Feed::default());
    let (control, control_rx) = watch::channel(Control::default());
    let mut tasks = Vec::new();
    let mut feeds = Vec::new();
    for ((label, _), (monitor, target)) in targets.iter().zip(connected) {
        let several = targets.len() > 1;
        let settings = PollerSettings {
            target,
            label: several.then(|| label.clone()),
            mapping: config.lease.clone(),
            interval,
            ttl,
        };
        if several {
            let (own_tx, own_rx) = watch::channel(Feed::default());
            tasks.push(tokio::spawn(run_poller(
                settings,
                monitor,
                own_tx,
                control_rx.clone(),
            )));
            feeds.push((label.clone(), own_rx));
        } else {
            tasks.push(tokio::spawn(run_poller(
                settings,
                monitor,
                tx.clone(),
                control_rx.clone(),
            )));
        }
    }
    if !feeds.is_empty() {
        tasks.push(tokio::spawn(fleet::run_fleet(feeds, interval, tx.clone())));
    }
    drop(tx);
    Ok(Pollers { rx, control, tasks })
}

/// The monitor of each target, with the target as it connected (a password typed at the prompt stays for the
/// reconnections). With several targets, one that cannot be reached yet starts as down.
async fn connect_all(
    targets: &[(String, Target)],
    config: &Config,
    limits: SessionLimits,
    never_ask: bool,
) -> Result<Vec<(Option<crate::source::Monitor>, Target)>> {
    let ttl = config.thresholds.ttl;
    let connects = targets.iter().map(|(label, target)| async move {
        match super::connect_asking(target, &config.lease, limits, never_ask).await {
            Ok((mut monitor, target)) => {
                monitor.set_detail(LeaseDetail::Summary {
                    ttl,
                    focus: Vec::new(),
                });
                Ok((Some(monitor), target))
            }
            Err(e) if targets.len() > 1 && e.needs_reconnect() => {
                tracing::warn!(target = label, error = %e, "target down at start");
                Ok((None, target.clone()))
            }
            Err(e) if targets.len() > 1 => Err(eyre!("{label}: {e}")),
            Err(e) => Err(e.into()),
        }
    });
    futures_util::future::join_all(connects)
        .await
        .into_iter()
        .collect()
}

/// The live feed: the pollers' latest snapshot (through the judge) and the service's scrapes in, the
/// dashboard's focus out.
struct Live {
    rx: watch::Receiver<Feed>,
    /// The recorder's reports (the sender is dropped when there is none, or when it stops).
    recording: watch::Receiver<Option<RecordStatus>>,
    service: watch::Receiver<Option<ServiceView>>,
    _service_tx: Option<watch::Sender<Option<ServiceView>>>,
    /// Why the latest `--on-alert` run failed (`None` once one succeeds).
    hook_failed: watch::Receiver<Option<String>>,
    control: watch::Sender<Control>,
}

/// What the live feed brings.
enum News {
    Polled(Feed),
    Recorded(Option<RecordStatus>),
    Scraped(Option<ServiceView>),
    HookFailed(Option<String>),
}

impl Plug for Live {
    type News = News;

    async fn news(&mut self) -> Result<News> {
        tokio::select! {
            changed = self.rx.changed() => {
                if changed.is_err() {
                    bail!("the poller stopped unexpectedly; see the log file");
                }
                Ok(News::Polled(self.rx.borrow_and_update().clone()))
            },
            Ok(()) = self.recording.changed() => {
                Ok(News::Recorded(self.recording.borrow_and_update().clone()))
            },
            // The scraper's task ends only with the dashboard (or never starts without endpoints).
            Ok(()) = self.service.changed() => {
                Ok(News::Scraped(self.service.borrow_and_update().clone()))
            },
            Ok(()) = self.hook_failed.changed() => {
                Ok(News::HookFailed(self.hook_failed.borrow_and_update().clone()))
            },
        }
    }

    fn apply(&mut self, news: News, app: &mut App) -> bool {
        match news {
            News::Polled(feed) => app.on_feed(&feed),
            News::Recorded(status) => {
                let changed = app.recording != status;
                app.recording = status;
                changed
            }
            News::Scraped(view) => {
                app.service = view.or(app.service.take());
                true
            }
            News::HookFailed(why) => {
                let changed = app.hook_failure != why;
                app.hook_failure = why;
                changed
            }
        }
    }

    fn control(&mut self, app: &App) {
        let wanted = app.control();
        // Latest wins; the pollers see it at their next poll.
        self.control.send_if_modified(|c| {
            let changed = *c != wanted;
            *c = wanted;
            changed
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Snapshot;
    use crate::source::Link;

    #[tokio::test]
    async fn the_screen_shows_the_judges_board_of_each_poll_recorded_once_in_one_shared_history() {
        let dir = tempfile::tempdir().expect("dir");
        let header = recording::Header::for_tests(chrono::Utc::now());
        let recorder = Recorder::create(&dir.path().join("r.jsonl"), &header, false).expect("rec");
        let judgement = Arc::new(Judgement::new(*recorder.rules()));
        let (tx, rx) = watch::channel(Feed::default());
        let (screen_tx, mut screen) = watch::channel(Feed::default());
        let (status_tx, status) = watch::channel(None);
        let task = tokio::spawn(judge_polls(
            rx,
            Watcher::judging(Arc::clone(&judgement)),
            Judged {
                screen: Some(screen_tx),
                recording: Some((recorder, status_tx)),
                ..Judged::default()
            },
        ));
        let mut app = App::new(
            "t".into(),
            *judgement.rules(),
            Duration::from_secs(1),
            Vec::new(),
        )
        .judged_by(Arc::clone(&judgement));
        let start = chrono::Utc::now();
        for polls in 1..=6_u64 {
            let now = start + chrono::Duration::seconds(polls.cast_signed());
            let mut s = Snapshot::at(now);
            s.leases = vec![crate::model::LeaseRow {
                group: Some("hot".into()),
                key: Some("SOL".into()),
                owner: Some("w-1".into()),
                expires_at: Some(now + chrono::Duration::seconds(20)),
                acquired_at: Some(start),
                contention_count: Some(polls.cast_signed()),
                contended_since: Some(start),
                last_contended_at: Some(now),
            }];
            let failed = polls == 3;
            tx.send_replace(Feed {
                snapshot: Some(Arc::new(s)),
                received_at: Some(std::time::Instant::now()),
                polls,
                last_poll_failed: failed,
                failures: u64::from(polls >= 3),
                link: Link::Connected,
                ..Feed::default()
            });
            screen.changed().await.expect("the judge forwards the poll");
            let feed = screen.borrow_and_update().clone();
            assert_eq!(feed.polls, polls);
            assert!(app.on_feed(&feed));
            let (Some(shown), Some(judged)) = (&app.board, &feed.board) else {
                assert!(failed, "poll {polls} came without a board");
                continue;
            };
            // The judge's very views, not a second evaluation of the same poll.
            assert!(Arc::ptr_eq(&shown.profiles[0], &judged.profiles[0]));
            assert_eq!(shown.profiles[0].contention_count, polls.cast_signed());
        }
        // Every poll recorded once (the failed one as a gap), not once by the judge and again by the screen.
        assert_eq!(app.shown_history().polls(), 6);
        assert!(status.borrow().as_ref().is_some_and(|s| s.bytes > 0));
        drop(tx);
        assert!(task.await.is_ok());
    }

    /// A judge whose only work is the recording.
    fn judge_recording(
        rx: watch::Receiver<Feed>,
        recorder: Recorder,
        status: watch::Sender<Option<RecordStatus>>,
    ) -> tokio::task::JoinHandle<()> {
        let watcher = Watcher::new(*recorder.rules());
        tokio::spawn(judge_polls(
            rx,
            watcher,
            Judged {
                recording: Some((recorder, status)),
                ..Judged::default()
            },
        ))
    }

    #[tokio::test]
    async fn a_recording_stops_before_it_passes_its_size_limit_and_says_so() {
        for name in ["limited.jsonl", "limited.jsonl.zst"] {
            stops_before_its_size_limit(name).await;
        }
    }

    /// Records polls into `name` with a 2 KiB limit until it stops, and checks what it left.
    async fn stops_before_its_size_limit(name: &str) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(name);
        let header = recording::Header::for_tests(chrono::Utc::now());
        let recorder = Recorder::create(&path, &header, false)
            .expect("recorder")
            .with_max_size(Some(2048));
        let (tx, rx) = watch::channel(Feed::default());
        let (status_tx, mut status) = watch::channel(None);
        let task = judge_recording(rx, recorder, status_tx);
        status.changed().await.expect("first status");
        for polls in 1..=100 {
            tx.send_replace(Feed {
                snapshot: Some(std::sync::Arc::new(Snapshot::at(chrono::Utc::now()))),
                polls,
                link: Link::Connected,
                ..Feed::default()
            });
            status.changed().await.expect("a status");
            if status
                .borrow()
                .as_ref()
                .is_some_and(|s| s.stopped.is_some())
            {
                break;
            }
        }
        let last = status.borrow().clone().expect("a status");
        let why = last.stopped.expect("it stopped");
        assert!(why.contains("--record-max-size (2 KiB)"), "{why}");
        let size = std::fs::metadata(&path).expect("file").len();
        assert!(size <= 2048 && size > 1024, "{size} bytes");
        // What it wrote is a whole recording: the line that did not fit left nothing of itself.
        let file = std::io::BufReader::new(std::fs::File::open(&path).expect("open"));
        let mut text = String::new();
        recording::unpacked(file)
            .expect("unpacked")
            .read_to_string(&mut text)
            .expect("read");
        assert!(text.ends_with('\n'), "{text:?}");
        let back = recording::read(text.as_bytes()).expect("reads back");
        assert!(back.damage.is_none(), "{:?}", back.damage);
        assert_eq!(back.polls.len(), text.lines().count() - 1);
        assert!(task.await.is_ok());
    }

    #[test]
    fn sizes_are_read_with_their_units() {
        assert_eq!(recording::parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(recording::parse_size("2g"), Ok(2 << 30));
        assert_eq!(recording::parse_size("0"), Ok(0));
        assert!(recording::parse_size("lots").is_err());
    }

    #[tokio::test]
    async fn a_recording_whose_writes_fail_says_it_stopped_and_why() {
        let (reader, writer) = std::io::pipe().expect("pipe");
        let path = std::path::PathBuf::from("pipe");
        let header = recording::Header::for_tests(chrono::Utc::now());
        let file = std::fs::File::from(std::os::fd::OwnedFd::from(writer));
        let recorder = Recorder::onto(file, &path, &header).expect("recorder");
        let (tx, rx) = watch::channel(Feed::default());
        let (status_tx, mut status) = watch::channel(None);
        let task = judge_recording(rx, recorder, status_tx);
        status.changed().await.expect("first status");
        assert!(
            status
                .borrow_and_update()
                .as_ref()
                .is_some_and(|s| s.stopped.is_none())
        );
        // Nobody reads any more: the next write fails, as on a full disk.
        drop(reader);
        tx.send_replace(Feed {
            snapshot: Some(std::sync::Arc::new(Snapshot::at(chrono::Utc::now()))),
            polls: 1,
            link: Link::Connected,
            ..Feed::default()
        });
        task.await.expect("the recorder ends");
        let last = status.borrow().clone().expect("a status");
        assert!(
            last.stopped
                .as_deref()
                .is_some_and(|r| r.contains("Broken pipe")),
            "{last:?}"
        );
    }
}
