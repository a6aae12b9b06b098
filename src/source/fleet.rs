//! Several databases at once: each target has its own poller and dedicated connection (so a target that is
//! down or slow never holds up the others); this task joins their latest snapshots, once per interval, into
//! one merged snapshot for the dashboard, the recorder and the rules.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{Feed, Link};
use crate::model::Snapshot;
use crate::model::snapshot::Part;

/// A target's feed and the last part made of it (the prefixing is redone only for a new snapshot).
struct Member {
    label: String,
    rx: watch::Receiver<Feed>,
    made: Option<(Arc<Snapshot>, Part)>,
}

/// What one target contributes at one tick.
struct Share {
    label: String,
    link: Link,
    /// Why it is down, while it is.
    down: Option<String>,
    /// Its part, and the server time it implies (its clock advanced by the time since its snapshot arrived);
    /// `None` until it has answered once.
    seen: Option<(Part, chrono::DateTime<chrono::Utc>)>,
}

/// Reads a target's feed once (the prefixing is redone only for a new snapshot).
fn share_of(member: &mut Member) -> Share {
    let feed = member.rx.borrow().clone();
    let down = match &feed.link {
        Link::Connected => None,
        Link::Connecting => Some("connecting".to_owned()),
        Link::Reconnecting { error, .. } => Some(error.clone()),
    };
    let seen = feed.snapshot.map(|snapshot| {
        let clock = snapshot.server_now
            + feed
                .received_at
                .and_then(|at| chrono::Duration::from_std(at.elapsed()).ok())
                .unwrap_or_default();
        let part = match &member.made {
            Some((source, part)) if Arc::ptr_eq(source, &snapshot) => Part {
                down: down.clone(),
                ..part.clone()
            },
            last => Part::after(
                &member.label,
                &snapshot,
                down.clone(),
                last.as_ref().map(|(source, part)| (&**source, part)),
            ),
        };
        member.made = Some((snapshot, part.clone()));
        (part, clock)
    });
    Share {
        label: member.label.clone(),
        link: feed.link,
        down,
        seen,
    }
}

/// Joins the targets' feeds into `tx` every `interval` until the receiver side is gone. The merged feed is
/// live while any target is; a target that is down keeps its last snapshot, marked down with its error.
pub async fn run_fleet(
    targets: Vec<(String, watch::Receiver<Feed>)>,
    interval: Duration,
    tx: watch::Sender<Feed>,
) {
    let mut members: Vec<Member> = targets
        .into_iter()
        .map(|(label, rx)| Member {
            label,
            rx,
            made: None,
        })
        .collect();
    let mut ticker = super::every(interval);
    loop {
        ticker.tick().await;
        if tx.is_closed() {
            break;
        }
        let shares: Vec<Share> = members.iter_mut().map(share_of).collect();
        let any_live = shares.iter().any(|s| s.down.is_none());
        // Nobody live: the header shows the first target's link state.
        let link = if any_live {
            Link::Connected
        } else {
            shares.first().map_or(Link::Connecting, |s| s.link.clone())
        };
        let Some(now) = shares
            .iter()
            .filter_map(|s| s.seen.as_ref().map(|(_, at)| *at))
            .max()
        else {
            tx.send_modify(|f| f.link = link);
            continue;
        };
        // In the order of the configuration, whatever answered first.
        let parts = shares
            .into_iter()
            .map(|s| match s.seen {
                Some((part, _)) => part,
                None => Part::unseen(&s.label, now, s.down),
            })
            .collect();
        let merged = Snapshot::merged(parts, now);
        tx.send_modify(|f| {
            f.polls += 1;
            f.failures += u64::from(!any_live);
            f.last_poll_failed = !any_live;
            if any_live {
                f.snapshot = Some(Arc::new(merged));
                f.received_at = Some(Instant::now());
            }
            f.link = link;
        });
    }
}
