//! `--on-alert CMD`: a command run each time an escalation trigger starts or clears, beside the dashboard or
//! `serve`, never in their way.
//!
//! A task follows the feed with a [`Watcher`] (the rules, apart from the screen: a paused dashboard still
//! reports), and hands each change to a second task that runs the command, one run at a time in order, each
//! killed (with its process group) after the timeout. The alert goes to the command as JSON on its stdin and as
//! `LOCKTOP_ALERT_*` variables; its stdout and stderr never reach the terminal. A failure is logged, counted,
//! and reported to the dashboard's notes.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use crate::cli::HookArgs;
use crate::model::Alert;
use crate::model::feed::Feed;
use crate::model::watcher::{AlertChange, Event, Watcher};

/// Variables that may hold a password: the command does not inherit them.
const SECRET_VARIABLES: [&str; 3] = ["PGPASSWORD", "DATABASE_URL", "LOCKTOP_SCRUBBED_DSN"];

/// How much of the command's stderr is kept to say why it failed.
const STDERR_KEPT: usize = 4096;

/// The command and what it is told.
#[derive(Debug, Clone)]
pub struct Hooks {
    command: String,
    timeout: Duration,
    /// `user@host:port/db` of what is watched, never a password.
    target: String,
    /// Runs and failures so far, for `serve`'s metrics.
    pub counts: Arc<HookCounts>,
}

/// How many times the command ran, and how many of those failed.
#[derive(Debug, Default)]
pub struct HookCounts {
    pub runs: AtomicU64,
    pub failures: AtomicU64,
}

/// What the command gets on its stdin.
#[derive(Debug, Serialize)]
struct Payload<'a> {
    event: Event,
    trigger: &'static str,
    /// The first profile it names (none for a deadlock burst or a prepared transaction).
    profile: Option<&'a str>,
    profiles: Vec<&'a str>,
    since: chrono::DateTime<chrono::Utc>,
    at: chrono::DateTime<chrono::Utc>,
    message: &'a str,
    runbook: &'static str,
    target: &'a str,
    /// The alert's own fields, as in `snapshot --format json`.
    alert: &'a Alert,
}

impl Hooks {
    /// The hooks the options ask for, if any.
    pub fn from_args(args: &HookArgs, target: &str) -> Option<Self> {
        let command = args.on_alert.clone().filter(|c| !c.trim().is_empty())?;
        Some(Self {
            command,
            timeout: args.on_alert_timeout,
            target: target.to_owned(),
            counts: Arc::default(),
        })
    }

    /// Starts following `feed` and running the command on each change (the tasks join `tasks`); the receiver
    /// says why the latest run failed.
    pub fn start(
        self,
        tasks: &mut Vec<tokio::task::JoinHandle<()>>,
    ) -> (
        mpsc::UnboundedSender<AlertChange>,
        watch::Receiver<Option<String>>,
    ) {
        let (changes_tx, changes_rx) = mpsc::unbounded_channel();
        let (failed_tx, failed_rx) = watch::channel(None);
        tasks.push(tokio::spawn(self.run_all(changes_rx, failed_tx)));
        (changes_tx, failed_rx)
    }

    /// Runs the command for each change, in order, until the sender is gone.
    pub async fn run_all(
        self,
        mut changes: mpsc::UnboundedReceiver<AlertChange>,
        failed: watch::Sender<Option<String>>,
    ) {
        while let Some(change) = changes.recv().await {
            self.counts.runs.fetch_add(1, Ordering::Relaxed);
            let trigger = change.alert.trigger();
            let event = change.event.word();
            match self.run(&change).await {
                Ok(()) => {
                    tracing::info!(trigger, event, "on-alert command ran");
                    failed.send_if_modified(|f| f.take().is_some());
                }
                Err(why) => {
                    self.counts.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(trigger, event, error = %why, "on-alert command failed");
                    let at = change.at.format("%H:%M:%S");
                    failed.send_replace(Some(format!(
                        "--on-alert failed at {at} on the {event} of {trigger}: {why}; see the log file"
                    )));
                }
            }
        }
    }

    /// One run of the command for `change`: Ok when it exits 0 within the timeout.
    async fn run(&self, change: &AlertChange) -> Result<(), String> {
        let profiles = change.alert.profiles();
        let payload = Payload {
            event: change.event,
            trigger: change.alert.trigger(),
            profile: profiles.first().copied(),
            profiles: profiles.clone(),
            since: change.since,
            at: change.at,
            message: change.alert.message(),
            runbook: change.alert.runbook(),
            target: &self.target,
            alert: &change.alert,
        };
        let json = serde_json::to_string(&payload).map_err(|e| e.to_string())?;
        let rfc3339 = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339();
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(&self.command)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env("LOCKTOP_ALERT_EVENT", change.event.word())
            .env("LOCKTOP_ALERT_TRIGGER", payload.trigger)
            .env("LOCKTOP_ALERT_PROFILE", payload.profile.unwrap_or(""))
            .env("LOCKTOP_ALERT_PROFILES", profiles.join(","))
            .env("LOCKTOP_ALERT_SINCE", rfc3339(change.since))
            .env("LOCKTOP_ALERT_AT", rfc3339(change.at))
            .env("LOCKTOP_ALERT_MESSAGE", payload.message)
            .env("LOCKTOP_ALERT_TARGET", &self.target)
            // Its own process group: a timeout kills whatever it started too.
            .process_group(0)
            .kill_on_drop(true);
        for name in SECRET_VARIABLES {
            command.env_remove(name);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start sh -c: {e}"))?;
        let pid = child.id();
        let mut stdin = child.stdin.take();
        let mut stderr = child.stderr.take();
        let finished = tokio::time::timeout(self.timeout, async {
            if let Some(mut input) = stdin.take() {
                // A command that does not read its stdin is no failure.
                let _ = input.write_all(json.as_bytes()).await;
                let _ = input.write_all(b"\n").await;
            }
            // All of stderr is read (a command must never block on it), the start of it kept.
            let mut said = Vec::new();
            if let Some(err) = stderr.as_mut() {
                let mut buf = [0_u8; 1024];
                while let Ok(n) = err.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let room = STDERR_KEPT.saturating_sub(said.len());
                    said.extend_from_slice(&buf[..n.min(room)]);
                }
            }
            (
                child.wait().await,
                String::from_utf8_lossy(&said).into_owned(),
            )
        })
        .await;
        match finished {
            Ok((Ok(status), _)) if status.success() => Ok(()),
            Ok((Ok(status), said)) => Err(match said.lines().find(|l| !l.trim().is_empty()) {
                Some(line) => format!("{status}: {}", crate::ui::text::sanitize(line.trim())),
                None => status.to_string(),
            }),
            Ok((Err(e), _)) => Err(format!("cannot wait for it: {e}")),
            Err(_) => {
                if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                let _ = child.wait().await;
                Err(format!(
                    "killed after {} (--on-alert-timeout)",
                    humantime::format_duration(self.timeout)
                ))
            }
        }
    }
}

/// Follows `feed` with `watcher`: each new poll is evaluated, its alert changes sent to `changes`, then
/// `publish` sees what the feed brought and the watcher's state. Ends when the feed does, or when `publish`
/// says it is done (returns false) and there is no one to send changes to.
pub async fn follow(
    mut feed: watch::Receiver<Feed>,
    mut watcher: Watcher,
    changes: Option<mpsc::UnboundedSender<AlertChange>>,
    mut publish: impl FnMut(&Feed, &Watcher) -> bool,
) {
    while feed.changed().await.is_ok() {
        let latest = feed.borrow_and_update().clone();
        let found = watcher.on_feed(&latest, chrono::Utc::now());
        if let Some(tx) = &changes {
            for change in found {
                let _ = tx.send(change);
            }
        }
        if !publish(&latest, &watcher) && changes.is_none() {
            return;
        }
    }
}
