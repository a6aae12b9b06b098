//! `locktop snapshot`: one poll, printed as JSON (the scripts contract) or a plain table.
//! Exit status: 0 when everything was read and nothing fired, 2 when an escalation trigger fired (it wins over
//! 3), 3 when locktop cannot vouch for calm (a standby, lease rows unread, a target down, waits on lease rows
//! that no profile could be named for), 1 on error (set by `main`).

use std::io::Write;

use color_eyre::eyre::{Result, eyre};

use crate::cli::{Common, Connection, Format, SnapshotArgs};
use crate::model::report::Report;
use crate::model::rules;
use crate::model::snapshot::Part;
use crate::model::{Board, History, Snapshot};
use crate::source::{SessionLimits, Target};
use crate::ui::columns::{self, Cells, Column, Entry, Spec, Width, plain_line};
use crate::ui::text;

/// Exit status when an escalation trigger fired.
pub const EXIT_ESCALATED: i32 = 2;

/// Exit status when the read was incomplete and nothing fired: locktop cannot vouch for calm.
pub const EXIT_INCOMPLETE: i32 = 3;

/// Whether locktop can vouch for calm on this snapshot and its board: everything was read, and every wait on a
/// lease row is attributed to its profile.
pub fn vouches_for_calm(snapshot: &Snapshot, board: &Board) -> bool {
    snapshot.incomplete().is_empty() && board.doubts.is_empty()
}

/// The exit status of a board: 2 when a trigger fired, else 3 when locktop cannot vouch for calm, else 0.
pub fn exit_status(board: &Board, vouches: bool) -> i32 {
    if board.escalated() {
        EXIT_ESCALATED
    } else if vouches {
        0
    } else {
        EXIT_INCOMPLETE
    }
}

/// Polls once and prints; returns the exit status.
pub async fn run(common: &Common, connection: &Connection, args: &SnapshotArgs) -> Result<i32> {
    let config = super::load_config(common.config.as_deref())?;
    let targets = super::ask_passwords(super::targets(connection, &config)?, connection)?;
    let limits = SessionLimits::for_interval(common.interval);
    let polls = targets.iter().map(|(_, target)| async {
        let (mut monitor, _) =
            super::connect_asking(target, &config.lease, limits, connection.no_password).await?;
        let polled = monitor.poll().await;
        monitor.close().await;
        polled
    });
    // The service's counters are read twice, an interval apart, to give rates: the first read goes with the
    // database poll, the second after it.
    let mut scraper = super::scraper(
        super::service_settings(connection, &config),
        common.interval,
    )?;
    let first_scrape = async {
        if let Some(s) = scraper.as_mut() {
            s.scrape().await;
        }
        tokio::time::Instant::now()
    };
    let (mut polled, scraped_at) =
        tokio::join!(futures_util::future::join_all(polls), first_scrape);
    let service = match scraper.as_mut() {
        Some(s) => {
            tokio::time::sleep_until(scraped_at + common.interval).await;
            Some(s.scrape().await)
        }
        None => None,
    };
    let snapshot = if targets.len() == 1 {
        polled.pop().expect("one target")?
    } else {
        merge_once(&targets, polled)?
    };
    let description = super::describe(&targets);

    let rules = config.thresholds.rules();
    let board = evaluate_once(&snapshot, &rules);
    let mut notes = snapshot.incomplete();
    notes.extend(board.doubts.iter().cloned());
    notes.extend(snapshot.visibility.note().map(str::to_owned));
    notes.extend(snapshot.source_notes());
    if snapshot.pooled {
        notes.push(crate::model::snapshot::POOLED_NOTE.to_owned());
    }

    if let (Format::Table, Some(view)) = (args.format, &service) {
        notes.extend(view.errors.iter().cloned());
    }

    let status = exit_status(&board, vouches_for_calm(&snapshot, &board));
    let mut out = std::io::stdout().lock();
    let written = match args.format {
        Format::Json => {
            // One poll: every deadlock counted before it, none since.
            let mut report = Report::new(&board, &description, snapshot.visibility, notes)
                .with_deadlocks(snapshot.deadlocks, snapshot.deadlocks);
            if let Some(view) = &service {
                report = report.with_service(view);
            }
            serde_json::to_writer_pretty(&mut out, &report)
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(out))
        }
        Format::Table => write_table(&mut out, &board, &description, &notes),
    };
    match written.and_then(|()| out.flush()) {
        // The reader went away (`| head -1`): like other Unix tools, stop quietly; the status stands.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(status),
        Err(e) => Err(e.into()),
        Ok(()) => Ok(status),
    }
}

/// Several targets' single polls as one snapshot: a target whose poll failed is a part marked down. Fails
/// only when every target failed (with the first error).
fn merge_once(
    targets: &[(String, Target)],
    polled: Vec<Result<Snapshot, crate::source::SourceError>>,
) -> Result<Snapshot> {
    let now = polled
        .iter()
        .filter_map(|p| p.as_ref().ok().map(|s| s.server_now))
        .max();
    let Some(now) = now else {
        let first = polled.into_iter().find_map(Result::err);
        return Err(first.map_or_else(|| eyre!("no target answered"), Into::into));
    };
    let parts = targets
        .iter()
        .zip(polled)
        .map(|((label, _), p)| match p {
            Ok(s) => Part::new(label, &s, None),
            Err(e) => Part::unseen(label, now, Some(e.to_string())),
        })
        .collect();
    Ok(Snapshot::merged(parts, now))
}

/// The board of a single snapshot, at its own server time.
pub fn evaluate_once(snapshot: &Snapshot, rules: &rules::Rules) -> Board {
    let mut history = History::with_capacity(1);
    rules::record(&mut history, snapshot, rules);
    rules::evaluate(snapshot, &history, rules, snapshot.server_now)
}

fn write_table(
    out: &mut impl Write,
    board: &Board,
    target: &str,
    notes: &[String],
) -> std::io::Result<()> {
    let now = board.now;
    let glyphs = crate::ui::Glyphs::detect();
    // Every line through the one sanitiser, and in ASCII only under a locale that is not UTF-8.
    let mut print = |line: &str| {
        writeln!(
            out,
            "{}",
            text::ascii_if(&text::sanitize(line), !glyphs.unicode)
        )
    };
    print(&format!(
        "{target}  server time {}",
        now.format("%Y-%m-%d %H:%M:%S UTC")
    ))?;
    for a in &board.alerts {
        print(a.message())?;
    }
    for n in notes {
        print(&format!("note: {n}"))?;
    }
    // The dashboard's columns, as plain text (one poll: no trend to draw), each as wide as its widest cell,
    // and every held row on a line of its own.
    let cells = Cells {
        now,
        glyphs,
        history: None,
        service: None,
        spark: 0,
        per_cell: 1,
    };
    let lines: Vec<Entry> = board
        .profiles
        .iter()
        .flat_map(|p| columns::entries(p, now, true))
        .collect();
    let layout: Vec<(Column, usize)> = Column::PLAIN
        .iter()
        .map(|&c| {
            let width = match c.width() {
                Width::Fixed(n) => n,
                Width::Text { min, .. } => lines
                    .iter()
                    .map(|e| text::width(&c.text(e, &cells)))
                    .chain([min, c.title().len()])
                    .max()
                    .unwrap_or(min),
            };
            (c, width)
        })
        .collect();
    print(&plain_line(&layout, |c, w| c.fit(c.title(), w).into()))?;
    for e in &lines {
        print(&plain_line(&layout, |c, w| c.cell(e, &cells, w).into()))?;
        if e.first {
            for r in &e.profile.reasons {
                print(&format!("{:<12}{}", "", text::clean(r, 100)))?;
            }
        }
    }
    if !board.waits.is_empty() {
        print("")?;
        print(&format!(
            "{:<8} {:<24} {:<14} {:<24} {:>8}",
            "PID", "BLOCKED BY", "LOCKTYPE", "MODE", "WAITING"
        ))?;
        for w in &board.waits {
            let by = rules::blocker_names(w);
            print(&format!(
                "{:<8} {} {} {} {}",
                w.wait.pid,
                text::fit(&by.join(","), 24),
                text::fit(&w.wait.locktype, 14),
                text::fit(&w.wait.mode, 24),
                text::pad_left(&text::waited(w, now), 8)
            ))?;
        }
    }
    Ok(())
}
