//! The locks pane: `pg_locks` waits as a blocking tree — each blocker that is not itself waiting, with the
//! backends waiting on it below, then their own waiters — with mode, lock type, what is locked, wait time and,
//! when toggled, query text.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use super::{Glyphs, border_set, text};
use crate::app::{App, Pane};
use crate::model::{WaitView, human_duration};
use crate::theme::Theme;

/// Rows the pane takes: a third of the screen, whatever the waits, so that the panes keep their place while
/// waits come and go (they change only with the terminal's size).
pub fn height(screen: u16) -> u16 {
    (screen / 3).max(6)
}

/// What the pane drew, for the mouse and for Enter: each line's wait (its place in the listed order), the lines
/// scrolled off, and the listed order as indexes into the board's waits.
#[derive(Debug, Default)]
pub struct Drawn {
    pub lines: Vec<Option<usize>>,
    pub skip: usize,
    pub order: Vec<usize>,
}

/// The waits of each target (pids mean something only within one server), in the board's order.
fn by_target(waits: &[WaitView]) -> Vec<(Option<&str>, Vec<&WaitView>)> {
    let mut out: Vec<(Option<&str>, Vec<&WaitView>)> = Vec::new();
    for w in waits {
        let target = w.target.as_deref();
        match out.iter_mut().find(|(t, _)| *t == target) {
            Some((_, group)) => group.push(w),
            None => out.push((target, vec![w])),
        }
    }
    out
}

/// Blockers that do not wait themselves (the heads of the queues), the tree with the oldest wait first (its
/// incident has gone on longest; a new tree comes in below the others, so the list grows at its end), then by
/// pid; in a cycle, the lowest pid.
fn roots(waits: &[&WaitView]) -> Vec<i32> {
    let waiting: HashMap<i32, &WaitView> = waits.iter().map(|w| (w.wait.pid, *w)).collect();
    let mut out: Vec<i32> = waits
        .iter()
        .flat_map(|w| w.wait.blocked_by.iter().copied())
        .filter(|b| !waiting.contains_key(b))
        .collect();
    out.sort_unstable();
    out.dedup();
    if out.is_empty() {
        out.extend(waits.iter().map(|w| w.wait.pid).min());
    }
    // Each wait's root: up its first blockers (the way the tree hangs it) to one that does not wait.
    let root_of = |w: &WaitView| {
        let mut pid = w.wait.pid;
        let mut seen = HashSet::new();
        while let Some(up) = waiting.get(&pid).and_then(|w| w.wait.blocked_by.first()) {
            if !seen.insert(pid) {
                break;
            }
            pid = *up;
        }
        pid
    };
    let mut oldest: HashMap<i32, chrono::DateTime<chrono::Utc>> = HashMap::new();
    for w in waits {
        if let Some(start) = w.wait.waitstart {
            let o = oldest.entry(root_of(w)).or_insert(start);
            *o = (*o).min(start);
        }
    }
    // A tree whose waits have no start (not read) goes after those that have one.
    out.sort_by_key(|r| (!oldest.contains_key(r), oldest.get(r).copied(), *r));
    out
}

/// Draws the pane.
pub fn draw(frame: &mut Frame, app: &App, theme: &Theme, glyphs: Glyphs, area: Rect) -> Drawn {
    let focused = app.pane == Pane::Locks;
    let block = Block::default()
        .borders(Borders::ALL)
        .border_set(border_set(glyphs))
        .border_style(if focused { theme.title } else { theme.border })
        .title(Span::styled(" lock waits (pg_locks) ", theme.title));
    let w = area.width.saturating_sub(2) as usize;
    let (Some(board), Some(now)) = (&app.board, app.now()) else {
        frame.render_widget(Paragraph::new("").block(block), area);
        return Drawn::default();
    };
    if board.waits.is_empty() {
        frame.render_widget(
            Paragraph::new(Line::styled("nobody waits for a lock", theme.dim)).block(block),
            area,
        );
        return Drawn::default();
    }
    let mut tree = Tree {
        app,
        now,
        glyphs,
        theme,
        w,
        lines: Vec::new(),
        index: 0,
        drawn: Drawn::default(),
        waits: &board.waits,
    };
    for (target, waits) in by_target(&board.waits) {
        let snapshot = app.snapshot.as_deref().map(|s| {
            s.parts
                .iter()
                .find(|p| Some(p.target.as_str()) == target)
                .map_or(s, |p| &p.snapshot)
        });
        if let Some(t) = target {
            tree.lines
                .push(Line::styled(text::fit(&format!("[{t}]"), w), theme.title));
            tree.drawn.lines.push(None);
        }
        let sessions: HashMap<i32, &crate::model::Session> = snapshot
            .map(|s| s.sessions.iter().map(|x| (x.pid, x)).collect())
            .unwrap_or_default();
        tree.draw(&waits, &sessions);
    }
    // The selected waiter's line stays in view.
    let at = tree
        .drawn
        .lines
        .iter()
        .position(|l| *l == Some(app.lock_selected))
        .unwrap_or(0);
    let skip = at.saturating_sub(area.height.saturating_sub(3) as usize);
    frame.render_widget(
        Paragraph::new(tree.lines)
            .scroll((skip as u16, 0))
            .block(block),
        area,
    );
    let mut drawn = tree.drawn;
    drawn.skip = skip;
    drawn
}

/// Draws the blocking trees of the pane, one server at a time, into `lines`.
struct Tree<'a> {
    app: &'a App,
    now: chrono::DateTime<chrono::Utc>,
    glyphs: Glyphs,
    theme: &'a Theme,
    w: usize,
    lines: Vec<Line<'static>>,
    /// Waiter lines so far (the locks pane's cursor counts them).
    index: usize,
    drawn: Drawn,
    /// The board's waits, to say which one a line shows.
    waits: &'a [WaitView],
}

impl Tree<'_> {
    /// The tree of one server's waits: each blocker that does not wait, and below it who waits on it.
    fn draw(&mut self, waits: &[&WaitView], sessions: &HashMap<i32, &crate::model::Session>) {
        let mut by_blocker: HashMap<i32, Vec<&WaitView>> = HashMap::new();
        for wv in waits {
            // A waiter hangs under its first blocker (pg_blocking_pids lists the queue's head first).
            if let Some(b) = wv.wait.blocked_by.first() {
                by_blocker.entry(*b).or_default().push(wv);
            }
        }
        let mut shown = HashSet::new();
        for root in roots(waits) {
            let s = sessions.get(&root);
            let mut head = if root == 0 {
                // pg_blocking_pids says 0 for a prepared transaction: it has no backend.
                prepared_head(waits, self.now)
            } else {
                format!(
                    "pid {root} {} ({})  holds",
                    s.and_then(|s| s.application.as_deref()).unwrap_or(""),
                    s.and_then(|s| s.state.as_deref()).unwrap_or("?")
                )
            };
            if self.app.show_queries {
                let _ = write!(
                    head,
                    "  {}",
                    s.and_then(|s| s.query.as_deref()).unwrap_or("")
                );
            }
            self.lines
                .push(Line::styled(text::fit(&head, self.w), self.theme.header));
            self.drawn.lines.push(None);
            self.walk(root, 1, &by_blocker, &mut shown);
        }
    }

    /// The waiters on `pid`, and theirs below them.
    fn walk(
        &mut self,
        pid: i32,
        depth: usize,
        by_blocker: &HashMap<i32, Vec<&WaitView>>,
        shown: &mut HashSet<i32>,
    ) {
        let Self {
            app,
            now,
            glyphs,
            theme,
            w,
            ..
        } = *self;
        let Some(children) = by_blocker.get(&pid) else {
            return;
        };
        for wv in children {
            if !shown.insert(wv.wait.pid) {
                continue; // a cycle (deadlock about to be detected): show each backend once
            }
            let branch = if glyphs.unicode { "└─ " } else { "`- " };
            // What is locked first, then how: on a narrow screen the end of the line is what gets cut.
            let what = match (&wv.profile, &wv.wait.advisory_key, &wv.wait.relation) {
                (None, _, Some(r)) if wv.wait.on_lease_table => {
                    format!("a row of {r} that cannot be named ({})", wv.wait.locktype)
                }
                (Some(p), _, _) => format!(
                    "row {p}/{} ({}, {})",
                    wv.key.as_deref().unwrap_or("?"),
                    wv.wait.relation.as_deref().unwrap_or("?"),
                    wv.wait.locktype
                ),
                (None, Some(k), _) => format!("advisory {k}"),
                (None, None, Some(r)) => format!("{} {r}", wv.wait.locktype),
                _ => wv.wait.transactionid.as_deref().map_or_else(
                    || wv.wait.locktype.clone(),
                    |x| format!("{} {x}", wv.wait.locktype),
                ),
            };
            let others = wv.wait.blocked_by.len().saturating_sub(1);
            let worker = wv
                .leader
                .map(|l| format!(" (worker of {l})"))
                .unwrap_or_default();
            let mut line = format!(
                "{}{branch}pid {}{worker} {} waits {} on {what}, {}{}",
                "   ".repeat(depth - 1),
                wv.wait.pid,
                wv.application.as_deref().unwrap_or(""),
                text::waited(wv, now),
                wv.wait.mode,
                if others > 0 {
                    format!(" (+{others} more blockers)")
                } else {
                    String::new()
                }
            );
            if app.show_queries {
                let _ = write!(line, "  {}", wv.query.as_deref().unwrap_or(""));
            }
            let style = if self.index == app.lock_selected && app.pane == Pane::Locks {
                theme.selected
            } else {
                theme.contended
            };
            self.lines.push(Line::styled(text::fit(&line, w), style));
            self.drawn.lines.push(Some(self.index));
            self.drawn
                .order
                .extend(self.waits.iter().position(|x| std::ptr::eq(x, *wv)));
            self.index += 1;
            self.walk(wv.wait.pid, depth + 1, by_blocker, shown);
        }
    }
}

/// The head of the queue a prepared transaction blocks: its gid, owner, database and age.
fn prepared_head(waits: &[&WaitView], now: chrono::DateTime<chrono::Utc>) -> String {
    let mut seen: Vec<&crate::model::snapshot::PreparedXact> = Vec::new();
    for p in waits.iter().flat_map(|w| &w.prepared) {
        if !seen.iter().any(|s| s.gid == p.gid) {
            seen.push(p);
        }
    }
    if seen.is_empty() {
        return "a prepared transaction (pid 0)  holds".into();
    }
    let named: Vec<String> = seen
        .iter()
        .map(|p| {
            format!(
                "prepared '{}' (owner {}, database {}, prepared {} ago)",
                p.gid,
                p.owner.as_deref().unwrap_or("?"),
                p.database.as_deref().unwrap_or("?"),
                human_duration(now - p.prepared_at)
            )
        })
        .collect();
    format!("{}  holds", named.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LockWait;
    use chrono::{Duration, Utc};

    fn wait(pid: i32, blocker: i32, started_ago: Option<i64>) -> WaitView {
        WaitView {
            wait: LockWait {
                waitstart: started_ago.map(|s| Utc::now() - Duration::seconds(s)),
                ..LockWait::for_tests(pid, vec![blocker])
            },
            application: None,
            query: None,
            profile: None,
            key: None,
            target: None,
            leader: None,
            prepared: Vec::new(),
        }
    }

    #[test]
    fn the_tree_with_the_oldest_wait_comes_first_and_a_new_one_last() {
        let waits = [
            // Blocker 10: a wait of 2 s, and below it (through 11) one of 40 s.
            wait(11, 10, Some(2)),
            wait(12, 11, Some(40)),
            // Blocker 5: a wait of 30 s.
            wait(6, 5, Some(30)),
            // Blocker 3: a wait just begun; blocker 1: a wait whose start was not read.
            wait(4, 3, Some(0)),
            wait(2, 1, None),
        ];
        let refs: Vec<&WaitView> = waits.iter().collect();
        assert_eq!(roots(&refs), vec![10, 5, 3, 1]);
    }
}
