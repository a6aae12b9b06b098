//! The polling task: one poll every interval on the dedicated connection (a poll that overruns makes the next
//! one late, never two back to back), the latest result published on a watch channel (latest wins), reconnects
//! with capped exponential backoff and jitter, and the dashboard's focus taken from the command channel. A
//! lease table read by windows has its sweep read after each poll is published, so that it lengthens none.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::connect::{SessionLimits, Target};
use super::error::SourceError;
use super::{LeaseDetail, Monitor};
use crate::config::LeaseMapping;
use crate::model::feed::{Control, Feed, Link};

/// Capped exponential backoff with jitter, for reconnects.
#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
    base: Duration,
    cap: Duration,
}

impl Backoff {
    /// Starts at `base`, doubles, never exceeds `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            attempt: 0,
            base,
            cap,
        }
    }

    /// The delay before the next attempt, and that attempt's number (from 1).
    pub fn next_delay(&mut self) -> (u32, Duration) {
        self.attempt += 1;
        let exp = self
            .base
            .saturating_mul(1 << self.attempt.saturating_sub(1).min(16))
            .min(self.cap);
        // ±20 % jitter from the clock's low bits: enough to spread many monitors, no RNG needed.
        let nanos = u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or_default(),
        );
        let factor = 0.8 + (nanos % 1000) as f64 / 2500.0;
        (self.attempt, exp.mul_f64(factor).min(self.cap))
    }

    /// Back to the first delay after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// When the poller tries again after a failed attempt, and that attempt's number: a poll that failed on a
/// connection that is kept (a query timed out, a permission is missing) is simply retried at the next tick;
/// only a lost or refused connection waits out the backoff.
fn retry_after(
    backoff: &mut Backoff,
    connection_kept: bool,
    interval: Duration,
) -> (u32, Duration) {
    let (attempt, delay) = backoff.next_delay();
    (attempt, if connection_kept { interval } else { delay })
}

/// When the pages added since a poll that began at `polled_at` are read: three quarters of the way to the
/// next, so that the next poll reads a quarter of an interval's changes (the read itself, of the rest, comes
/// while nothing else is read).
fn new_pages_due(polled_at: tokio::time::Instant, interval: Duration) -> tokio::time::Instant {
    polled_at + interval.mul_f64(0.75)
}

/// After a read between polls: when it lost the connection, the monitor is closed (the next tick connects
/// anew).
async fn close_if_lost(monitor: &mut Option<Monitor>, read: Result<(), SourceError>) {
    if let Err(e) = read {
        tracing::warn!(error = %e, "a read between polls lost the connection");
        if let Some(m) = monitor.take() {
            m.close().await;
        }
    }
}

/// Sleeps until `at`; forever when there is no `at`.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A control channel that never asks for anything, for a poller nobody steers (tests, benchmarks).
pub fn unsteered() -> watch::Receiver<Control> {
    watch::channel(Control::default()).1
}

/// Settings of the polling task.
#[derive(Debug, Clone)]
pub struct PollerSettings {
    pub target: Target,
    /// The target's label when several databases are watched: its profiles in the dashboard's focus are
    /// named `label:profile`.
    pub label: Option<String>,
    pub mapping: LeaseMapping,
    pub interval: Duration,
    /// The lease TTL: failures within it mark a profile whose rows are fetched in detail.
    pub ttl: Duration,
}

/// A ticker for a task that works every `interval`: work that overruns makes the next tick late, never two
/// rounds back to back.
pub fn every(interval: Duration) -> tokio::time::Interval {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    ticker
}

/// Runs polls every `interval` until the receiver side is gone, publishing each result on `tx`.
/// Starts from an already connected monitor when given one (the caller checked the mapping up front).
pub async fn run_poller(
    settings: PollerSettings,
    mut monitor: Option<Monitor>,
    tx: watch::Sender<Feed>,
    mut control: watch::Receiver<Control>,
) {
    let limits = SessionLimits::for_interval(settings.interval);
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(15));
    let mut ticker = every(settings.interval);
    let mut refreshes = control.borrow().refreshes;
    // Until the dashboard that steers this poller is gone.
    let mut steered = true;
    // When the pages added since the poll are read, before the next poll (see `Monitor::read_new_pages`).
    let mut new_pages_at: Option<tokio::time::Instant> = None;
    loop {
        let polled_at = tokio::select! {
            at = ticker.tick() => at,
            () = sleep_until_some(new_pages_at) => {
                new_pages_at = None;
                if let Some(m) = monitor.as_mut() {
                    let read = m.read_new_pages().await;
                    close_if_lost(&mut monitor, read).await;
                }
                continue;
            }
            changed = control.changed(), if steered => {
                if changed.is_err() {
                    steered = false;
                    continue;
                }
                // A new focus waits for the next tick; a refresh asked for is one poll now, and the next
                // scheduled poll an interval after it.
                if control.borrow_and_update().refreshes == refreshes {
                    continue;
                }
                ticker.reset();
                tokio::time::Instant::now()
            }
        };
        new_pages_at = None;
        refreshes = control.borrow().refreshes;
        if tx.is_closed() {
            break;
        }
        // The focus applies from the next scheduled poll: a cursor moving does not add polls.
        let detail = LeaseDetail::Summary {
            ttl: settings.ttl,
            focus: control.borrow().focus_of(settings.label.as_deref()),
        };
        let connected = match monitor.take() {
            Some(m) => Ok(m),
            None => Monitor::connect(&settings.target, &settings.mapping, limits).await,
        };
        let result = match connected {
            Ok(mut m) => {
                m.set_detail(detail);
                m.read_between_polls();
                let result = m.poll().await;
                monitor = Some(m);
                result
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(snapshot) => {
                backoff.reset();
                tx.send_modify(|f| {
                    f.snapshot = Some(Arc::new(snapshot));
                    f.received_at = Some(Instant::now());
                    f.polls += 1;
                    f.last_poll_failed = false;
                    f.link = Link::Connected;
                });
                // The sweep of a table read by windows and the backstop of the waits' details, once the
                // poll is out: they cost the next poll nothing.
                if let Some(m) = monitor.as_mut() {
                    let read = m.between_polls().await;
                    close_if_lost(&mut monitor, read).await;
                }
                new_pages_at = Some(new_pages_due(polled_at, settings.interval));
            }
            Err(e) => {
                tracing::warn!(error = %e, "poll failed");
                if (e.needs_reconnect() || monitor.is_none())
                    && let Some(m) = monitor.take()
                {
                    // A stalled link would make a polite close hang: drop it after a short try.
                    m.close().await;
                }
                let (attempt, delay) =
                    retry_after(&mut backoff, monitor.is_some(), settings.interval);
                let next_at = Instant::now() + delay;
                tx.send_modify(|f| {
                    f.polls += 1;
                    f.failures += 1;
                    f.last_poll_failed = true;
                    f.link = Link::Reconnecting {
                        attempt,
                        next_at,
                        error: e.to_string(),
                    };
                });
                if monitor.is_none() {
                    tokio::time::sleep(delay).await;
                    ticker.reset();
                }
            }
        }
    }
    if let Some(m) = monitor {
        m.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_poll_on_a_kept_connection_is_retried_at_the_next_tick_not_after_the_backoff() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(15));
        let interval = Duration::from_secs(1);
        for _ in 0..6 {
            assert_eq!(retry_after(&mut b, true, interval).1, interval);
        }
        let (attempt, delay) = retry_after(&mut b, false, interval);
        assert_eq!(attempt, 7);
        assert!(delay > Duration::from_secs(10), "{delay:?}");
    }

    #[test]
    fn backoff_grows_with_jitter_and_stays_under_its_cap() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay().1).collect();
        assert!(delays[0] >= Duration::from_millis(400) && delays[0] <= Duration::from_millis(600));
        assert!(delays[3] >= Duration::from_millis(3200));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(10)));
        b.reset();
        assert_eq!(b.next_delay().0, 1);
    }
}
