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

/// What one target contributes now: its part, and the server time it implies (its clock advanced by the time
/// since its snapshot arrived).
fn part_of(member: &mut Member) -> (Option<Part>, Option<chrono::DateTime<chrono::Utc>>, bool) {
    let feed = member.rx.borrow().clone();
    let down = match &feed.link {
        Link::Connected => None,
        Link::Connecting => Some("connecting".to_owned()),
        Link::Reconnecting { error, .. } => Some(error.clone()),
    };
    let live = down.is_none();
    let Some(snapshot) = feed.snapshot else {
        return (None, None, live);
    };
    let clock = snapshot.server_now
        + feed
            .received_at
            .and_then(|at| chrono::Duration::from_std(at.elapsed()).ok())
            .unwrap_or_default();
    let part = match &member.made {
        Some((source, part)) if Arc::ptr_eq(source, &snapshot) => Part {
            down,
            ..part.clone()
        },
        _ => Part::new(&member.label, &snapshot, down),
    };
    member.made = Some((snapshot, part.clone()));
    (Some(part), Some(clock), live)
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
        let mut parts = Vec::with_capacity(members.len());
        let mut clock = None;
        let mut any_live = false;
        let mut first_error = None;
        let mut unseen = Vec::new();
        for m in &mut members {
            let (part, at, live) = part_of(m);
            any_live |= live;
            if !live && first_error.is_none() {
                first_error = Some(m.rx.borrow().link.clone());
            }
            clock = clock.max(at);
            match part {
                Some(part) => parts.push(part),
                None => unseen.push((m.label.clone(), m.rx.borrow().link.clone())),
            }
        }
        let Some(now) = clock else {
            // Nobody has answered yet: the header shows the first target's link state.
            let link = first_error.unwrap_or(Link::Connecting);
            tx.send_modify(|f| f.link = link);
            continue;
        };
        for (label, link) in unseen {
            let down = match link {
                Link::Reconnecting { error, .. } => Some(error),
                _ => Some("connecting".to_owned()),
            };
            parts.push(Part::unseen(&label, now, down));
        }
        // The order of the configuration, whatever answered first.
        parts.sort_by_key(|p| members.iter().position(|m| m.label == p.target));
        let merged = Snapshot::merged(parts, now);
        let link = if any_live {
            Link::Connected
        } else {
            first_error.unwrap_or(Link::Connecting)
        };
        tx.send_modify(|f| {
            f.polls += 1;
            f.last_poll_failed = !any_live;
            if any_live {
                f.snapshot = Some(Arc::new(merged));
                f.received_at = Some(Instant::now());
            }
            f.link = link;
        });
    }
}
