//! The live heap of the model at 50,000 profiles (200,000 lease rows), structure by structure, counted by the
//! allocator: `cargo bench --bench memory --features heap-stats`.
//!
//! It prints the bytes held by the mirror of the rows, one generation of aggregates, the rows that matter, the
//! history, and the board with what the evaluator keeps (the views of the profiles that are not calm, the
//! calm ones as the places of their summaries) and a page of views built for the screen; then what a refresh
//! of the aggregates adds while the last board is still shown (as the screen holds it until the next arrives): the highest the heap
//! goes each few seconds, and what the resident memory follows. The system allocator counts here, the sizes
//! are its own; the dashboard's mimalloc rounds allocations to its size classes instead.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use locktop::model::rules::{self, Rules};
use locktop::model::snapshot::ProfileSummary;
use locktop::model::{History, LeaseRow, Snapshot};
use locktop::source::lease::{Delta, XidMark};
use locktop::source::mirror::Mirror;
use locktop::source::packed::PackedRows;

#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

const PROFILES: usize = 50_000;

/// Live heap in MB.
fn live() -> f64 {
    ALLOCATOR.allocated() as f64 / 1e6
}

/// Prints what `what` holds: the live heap's growth since `since`, which moves to now.
fn held(since: &mut f64, what: &str) {
    let now = live();
    println!("  {what:<58} {:>6.1} MB", now - *since);
    *since = now;
}

fn main() {
    let t0 = Utc.timestamp_opt(1_700_000_000, 0).single().expect("time");
    // The scale scene's shape (`common/scale.rs`): four symbols a profile, an owner token per row, 500 dead
    // owners and 1,000 contended profiles.
    let contended = |p: usize| (500..1_500).contains(&p);
    let row = |p: usize, k: usize| LeaseRow {
        group: Some(format!("p{p:05}").into()),
        key: Some(format!("S{k}").into()),
        owner: Some(format!("worker-{p}-{k}").into()),
        expires_at: Some(if p < 500 && k == 0 {
            t0 - chrono::Duration::seconds(60)
        } else {
            t0 + chrono::Duration::seconds(2 + (p % 28) as i64)
        }),
        acquired_at: Some(t0),
        contention_count: Some(i64::from(contended(p))),
        contended_since: contended(p).then_some(t0),
        last_contended_at: contended(p).then_some(t0),
    };
    println!(
        "live heap at {PROFILES} profiles ({} lease rows):",
        4 * PROFILES
    );
    let mut since = live();
    let mut mirror = mirror_of(&row);
    held(&mut since, "the mirror of the rows");
    let summaries = Arc::new(mirror.summaries().expect("summaries"));
    held(&mut since, "one generation of aggregates");
    let at = t0 + chrono::Duration::seconds(1);
    let ttl = chrono::Duration::seconds(30);
    let mut snapshot = Snapshot::at(at);
    snapshot.leases = mirror.rows_that_matter(at, ttl, &[]);
    snapshot.summaries = summaries;
    held(
        &mut since,
        &format!("the rows that matter ({})", snapshot.leases.len()),
    );
    let rules = Rules::default();
    let mut history = History::default();
    rules::record(&mut history, &snapshot, &rules);
    held(&mut since, "the history");
    let mut evaluator = rules::Evaluator::new();
    let board = evaluator.evaluate(&snapshot, &history, &rules, at);
    held(
        &mut since,
        &format!(
            "the board ({} of {} judged) and what is kept",
            board.profiles.judged().count(),
            board.profiles.len()
        ),
    );
    // The screen builds the views of the page it shows (the calm profiles' are built when asked for).
    let page = 40;
    for i in (board.profiles.len() - page)..board.profiles.len() {
        std::hint::black_box(board.profiles.get(i));
    }
    held(&mut since, &format!("a page of views built ({page})"));
    // A refresh that moved every profile's first expiry (as renewals do within a few seconds), while the
    // last board is still on screen: the next generation of aggregates and of views, beside the last.
    let summaries = Arc::new(
        snapshot
            .summaries
            .iter()
            .map(|s| ProfileSummary {
                next_expiry: s.next_expiry.map(|e| e + chrono::Duration::seconds(1)),
                ..s.clone()
            })
            .collect(),
    );
    held(&mut since, "a refresh: the next generation of aggregates");
    let refreshed = Snapshot {
        summaries,
        ..snapshot
    };
    let next = evaluator.evaluate(&refreshed, &history, &rules, at);
    held(&mut since, "and of the board, while the last is shown");
    std::hint::black_box((board, next));
    drop(mirror);
    // Where a worker's token holds each of its profile's four rows, as in the demo, not one token a row.
    let mut since = live();
    let shared = mirror_of(&|p, k| LeaseRow {
        owner: Some(format!("worker-{p}").into()),
        ..row(p, k)
    });
    held(
        &mut since,
        "the mirror of the rows, a worker's token for each profile",
    );
    std::hint::black_box(shared);
}

/// The mirror of every profile's four rows, each `row(profile, symbol)`, read whole.
fn mirror_of(row: &dyn Fn(usize, usize) -> LeaseRow) -> Mirror {
    let mut mirror = Mirror::default();
    let all: Vec<LeaseRow> = (0..PROFILES)
        .flat_map(|p| (0..4).map(move |k| row(p, k)))
        .collect();
    let packed = PackedRows::of(&all);
    drop(all);
    let mark = XidMark {
        xmax: 100,
        running: vec![],
    };
    mirror.apply(
        packed.iter(),
        Delta {
            mark,
            total: 4 * PROFILES as i64,
            pages: 20_000,
            all: true,
            window: false,
        },
    );
    mirror
}
