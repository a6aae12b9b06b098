//! View snapshots: the real render code on a `TestBackend` at 80×24 and 120×40 with a fixed server time.

mod fixtures;

use fixtures::{app_showing, calm, incident, incident_over_time};
use locktop::app::{Action, App};
use locktop::theme::{ColorDepth, Theme};
use locktop::ui::{self, Glyphs};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn render(app: &mut App, width: u16, height: u16, theme: &Theme) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
    terminal
        .draw(|f| ui::draw(f, app, theme, Glyphs { unicode: true }))
        .expect("draw");
    terminal
}

fn theme() -> Theme {
    Theme::load("default", ColorDepth::Indexed).expect("theme")
}

#[test]
fn calm_at_both_sizes() {
    let mut app = app_showing(calm());
    insta::assert_snapshot!("calm_80x24", render(&mut app, 80, 24, &theme()).backend());
    insta::assert_snapshot!("calm_120x40", render(&mut app, 120, 40, &theme()).backend());
}

#[test]
fn an_incident_shows_the_banner_statuses_and_a_two_level_blocking_tree() {
    let mut app = app_showing(incident());
    let t80 = render(&mut app, 80, 24, &theme());
    let text = format!("{}", t80.backend());
    assert!(text.contains("ESCALATE"), "{text}");
    insta::assert_snapshot!("incident_80x24", t80.backend());
    let t120 = render(&mut app, 120, 40, &theme());
    let text = format!("{}", t120.backend());
    assert!(
        text.contains("└─ pid 102") && text.contains("   └─ pid 103"),
        "{text}"
    );
    insta::assert_snapshot!("incident_120x40", t120.backend());
}

/// Renders at both sizes and snapshots each.
fn snapshot_both(name: &str, app: &mut App) {
    for (w, h) in [(80, 24), (120, 40)] {
        insta::assert_snapshot!(
            format!("{name}_{w}x{h}"),
            render(app, w, h, &theme()).backend()
        );
    }
}

#[test]
fn filter_help_detail_and_paused_states() {
    let mut app = app_showing(incident());
    app.apply(Action::StartFilter);
    for c in "hot".chars() {
        app.apply(Action::FilterInput(c));
    }
    snapshot_both("filter_editing", &mut app);
    app.apply(Action::FilterDone);
    snapshot_both("filter_active", &mut app);
    app.apply(Action::Back);
    app.apply(Action::ToggleHelp);
    snapshot_both("help", &mut app);
    app.apply(Action::ToggleHelp);
    app.apply(Action::ToggleDetail);
    snapshot_both("detail", &mut app);
    app.apply(Action::ToggleDetail);
    app.apply(Action::TogglePause);
    snapshot_both("paused", &mut app);
}

#[test]
fn stale_data_and_reconnecting_say_so_and_keep_the_last_data() {
    use std::time::{Duration, Instant};
    let mut app = app_showing(incident());
    app.received_at = Instant::now().checked_sub(Duration::from_millis(12_500));
    let stale = render(&mut app, 80, 24, &theme());
    assert!(format!("{}", stale.backend()).contains("stale · 12s"));
    snapshot_both("stale", &mut app);
    app.link = locktop::model::feed::Link::Reconnecting {
        attempt: 3,
        next_at: Instant::now() + Duration::from_millis(3_500),
        error: "connection lost: terminating connection due to administrator command".into(),
    };
    let reconnecting = render(&mut app, 120, 40, &theme());
    let text = format!("{}", reconnecting.backend());
    assert!(
        text.contains("reconnecting (attempt 3, next in 4 s)"),
        "{text}"
    );
    assert!(text.contains("hot-7"), "the last data stays on screen");
    insta::assert_snapshot!("reconnecting_120x40", reconnecting.backend());
}

#[test]
fn a_terminal_too_small_gets_one_line_not_a_broken_layout() {
    let mut app = app_showing(incident());
    insta::assert_snapshot!("too_small", render(&mut app, 50, 10, &theme()).backend());
}

#[test]
fn monochrome_keeps_reverse_on_the_selection_and_bold_on_escalated_rows() {
    let mono = Theme::load("default", ColorDepth::None).expect("monochrome");
    let mut app = app_showing(incident());
    let terminal = render(&mut app, 80, 24, &mono);
    let buffer = terminal.backend().buffer();
    let mut seen_reverse = false;
    let mut seen_bold = false;
    for cell in &buffer.content {
        assert!(
            matches!(cell.fg, ratatui::style::Color::Reset),
            "a colour in monochrome: {:?}",
            cell.fg
        );
        assert!(
            matches!(cell.bg, ratatui::style::Color::Reset),
            "a colour in monochrome: {:?}",
            cell.bg
        );
        seen_reverse |= cell.modifier.contains(ratatui::style::Modifier::REVERSED);
        seen_bold |= cell.modifier.contains(ratatui::style::Modifier::BOLD);
    }
    assert!(seen_reverse && seen_bold);
    insta::assert_debug_snapshot!("monochrome_styles_80x24", buffer);
}

#[test]
fn a_minute_of_polls_fills_the_sparklines_and_a_recovered_profile_reads_ok_again() {
    let mut app = incident_over_time();
    let terminal = render(&mut app, 120, 40, &theme());
    let text = format!("{}", terminal.backend());
    let line = |profile: &str| {
        text.lines()
            .find(|l| l.starts_with("\"│") && l.contains(profile))
            .unwrap_or_default()
            .to_owned()
    };
    let hot = line("hot-7");
    assert!(hot.contains("ESCALATED"), "{text}");
    // Sixteen polls with failures in every one: no empty slot in the trend.
    assert!(!hot.contains('·') && hot.contains('█'), "{hot}");
    let blip = line("blip-1");
    assert!(blip.contains("✓ ok"), "blip-1 recovered: {blip}");
    // A minute of polls fills part of the line (it spans the escalation limit): the room before it in the
    // selected line is the selection's, not blanks in the sparkline's colour, which reversed read as a bar.
    let buffer = terminal.backend().buffer();
    let y = (0..buffer.area.height)
        .find(|&y| {
            (0..buffer.area.width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
                .starts_with("│‼ ESCALATED hot-7")
        })
        .expect("hot-7's line");
    let right = buffer.area.width - 1; // the border
    let first_bar = (0..right)
        .rev()
        .take_while(|&x| buffer[(x, y)].symbol() != " ")
        .last()
        .expect("bars");
    let sparkline_fg = theme().sparkline.fg;
    let pad: Vec<_> = (first_bar - 5..first_bar)
        .map(|x| &buffer[(x, y)])
        .collect();
    assert!(pad.iter().all(|c| c.symbol() == " "), "{pad:?}");
    assert!(
        pad.iter().all(|c| Some(c.fg) != sparkline_fg
            && c.modifier.contains(ratatui::style::Modifier::REVERSED)),
        "{pad:?}"
    );
    // The bars themselves are not reversed: reversed, a full block would show as an empty cell.
    let bars: Vec<_> = (first_bar..right).map(|x| &buffer[(x, y)]).collect();
    assert!(
        bars.iter().all(|c| Some(c.fg) == sparkline_fg
            && !c.modifier.contains(ratatui::style::Modifier::REVERSED)),
        "{bars:?}"
    );
    insta::assert_snapshot!("incident_over_time_120x40", terminal.backend());
}

#[test]
fn a_locked_lease_table_is_named_on_screen_with_its_holder_and_the_last_rows_stay_marked_unread() {
    let mut snapshot = incident();
    // The rows shown are those of a poll 12 s before this one, which could not read them.
    snapshot.leases_as_of = Some(snapshot.server_now - chrono::Duration::seconds(12));
    snapshot.lease_error = Some(
        "lease rows unread: pid 4242 waits for AccessExclusiveLock (migration, active) behind pid 4100 (open-holder, idle in transaction) on public.entry_locks".into(),
    );
    let mut app = app_showing(snapshot);
    let terminal = render(&mut app, 120, 40, &theme());
    let text = format!("{}", terminal.backend());
    assert!(
        text.contains("pid 4242 waits for AccessExclusiveLock (migration, active) behind pid 4100"),
        "{text}"
    );
    let header = text.lines().next().unwrap_or_default();
    assert!(
        header.contains("rows unread · 12s") && !header.contains("live"),
        "{header}"
    );
    assert!(
        text.contains("ESCALATED hot-7"),
        "the escalated profile stays escalated:\n{text}"
    );
    assert!(
        text.contains("└─ pid 102"),
        "the lock-wait tree stays:\n{text}"
    );
    insta::assert_snapshot!("rows_unread_120x40", terminal.backend());
}

#[test]
fn a_standby_says_so_in_the_alert_colour_with_its_lag() {
    let mut snapshot = calm();
    snapshot.recovery = Some(locktop::model::snapshot::Recovery {
        replay_lag_s: Some(42.0),
    });
    let mut app = app_showing(snapshot);
    let theme = theme();
    let terminal = render(&mut app, 80, 24, &theme);
    let text = format!("{}", terminal.backend());
    let header = text.lines().next().unwrap_or_default();
    assert!(header.contains("STANDBY lag 42s"), "{header}");
    assert!(
        text.contains("lock waits shown are the replica's own"),
        "the note says what it means:\n{text}"
    );
    let buffer = terminal.backend().buffer();
    let at = header.find("STANDBY").expect("STANDBY") - 1; // the quote that opens the line
    assert_eq!(
        buffer[(u16::try_from(at).expect("column"), 0)].style().fg,
        theme.escalated.fg,
        "in the alert colour"
    );
    insta::assert_snapshot!("standby_80x24", terminal.backend());
}

#[test]
fn in_a_replay_the_header_shows_the_player_and_help_and_footer_list_its_keys() {
    let mut app = app_showing(incident());
    app.replay = Some("REPLAY 10× · 2025-11-23 12:13:20 UTC · poll 13/24".into());
    app.apply(Action::ToggleHelp);
    let text = format!("{}", render(&mut app, 120, 40, &theme()).backend());
    assert!(
        text.contains("REPLAY 10× · 2025-11-23 12:13:20 UTC · poll 13/24"),
        "{text}"
    );
    assert!(
        text.contains("+/- speed 1×/10×/60×  . step  e next escalation"),
        "{text}"
    );
    insta::assert_snapshot!(
        "replay_help_120x40",
        render(&mut app, 120, 40, &theme()).backend()
    );
}

#[test]
fn two_databases_show_each_state_prefixed_profiles_and_a_blocking_tree_per_server() {
    let mut app = app_showing(fixtures::two_targets());
    let t120 = render(&mut app, 120, 40, &theme());
    let text = format!("{}", t120.backend());
    assert!(text.contains("east · west DOWN"), "{text}");
    assert!(
        text.contains("west is down, its last data kept: cannot connect"),
        "the reason is in the notes:\n{text}"
    );
    assert!(
        text.contains("east:hot-7") && text.contains("west:profile-1"),
        "{text}"
    );
    assert!(
        text.contains("[east]"),
        "the tree is headed by its server:\n{text}"
    );
    insta::assert_snapshot!("two_targets_120x40", t120.backend());
}

#[test]
fn service_metrics_add_a_rate_column_and_health_flags_in_the_header() {
    let mut app = app_showing(incident());
    app.service = Some(fixtures::service_view());
    let t120 = render(&mut app, 120, 40, &theme());
    let text = format!("{}", t120.backend());
    assert!(
        text.contains("svc trading UNHEALTHY reconciliation ok contention 41"),
        "{text}"
    );
    assert!(text.contains("SVC/s"), "{text}");
    insta::assert_snapshot!("service_120x40", t120.backend());
}

#[test]
fn prepared_blockers_workers_approximate_and_unnamed_waits_read_as_what_they_are() {
    let mut snapshot = calm();
    let now = snapshot.server_now;
    // A lease row held by a prepared transaction (pid 0), a wait on a row nobody can see yet, a parallel
    // worker waiting for its leader's lock, and a PostgreSQL 13 wait time.
    let mut on_prepared = fixtures::wait(301, 0, "transactionid", "ShareLock", Some("profile-1"));
    on_prepared.on_lease_table = true;
    let mut unnamed = fixtures::wait(302, 303, "transactionid", "ShareLock", None);
    unnamed.on_lease_table = true;
    unnamed.relation = Some("entry_locks".into());
    let mut approx = fixtures::wait(304, 306, "relation", "AccessShareLock", None);
    approx.relation = Some("orders".into());
    approx.waitstart_approx = true;
    snapshot.waits = vec![on_prepared, unnamed, approx];
    snapshot.sessions.push(locktop::model::Session {
        pid: 304,
        application: Some("report".into()),
        user: None,
        client_addr: None,
        state: Some("active".into()),
        query: None,
        xact_start: None,
        state_change: None,
        wait_event: None,
        backend_type: Some("parallel worker".into()),
        leader_pid: Some(305),
    });
    snapshot.prepared = vec![locktop::model::snapshot::PreparedXact {
        gid: "orphan-7".into(),
        owner: Some("trader".into()),
        database: Some("trading".into()),
        prepared_at: now - chrono::Duration::seconds(300),
        transaction: "777".into(),
        blocks: vec![301],
    }];
    let mut app = app_showing(snapshot);
    let terminal = render(&mut app, 120, 40, &theme());
    let text = format!("{}", terminal.backend());
    assert!(
        text.contains(
            "prepared 'orphan-7' (owner trader, database trading, prepared 5m00s ago)  holds"
        ),
        "{text}"
    );
    assert!(
        !text.contains("pid 0 "),
        "no pid 0 for a prepared transaction:\n{text}"
    );
    assert!(
        text.contains("a row of entry_locks that cannot be named"),
        "{text}"
    );
    assert!(
        text.contains("pid 304 (worker of 305) report waits ~7s"),
        "{text}"
    );
    assert!(
        text.contains("unattributed contention: 1 session waits on an unnamed row of entry_locks, blocked by pid 303"),
        "the notes line says the contention is not attributed:\n{text}"
    );
    insta::assert_snapshot!("prepared_and_unnamed_120x40", terminal.backend());
}

/// The buffer's text, one string per line (wide characters once, their hidden cells skipped).
fn lines_of(t: &Terminal<TestBackend>) -> Vec<String> {
    let buffer = t.backend().buffer();
    let width = buffer.area.width as usize;
    buffer
        .content
        .chunks(width)
        .map(|row| {
            let mut line = String::new();
            let mut skip = 0;
            for cell in row {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                line.push_str(cell.symbol());
                skip = unicode_width::UnicodeWidthStr::width(cell.symbol()).saturating_sub(1);
            }
            line
        })
        .collect()
}

/// No cell holds a control, bidi or invisible formatting character, and in the profiles table every TTL sits in
/// the TTL column (a character measured wrong would shift it).
fn assert_safe_and_aligned(t: &Terminal<TestBackend>) {
    for cell in &t.backend().buffer().content {
        assert!(
            !cell.symbol().chars().any(locktop::ui::text::unsafe_char),
            "unsafe text reached the buffer: {:?}",
            cell.symbol()
        );
    }
    let buffer = t.backend().buffer();
    let rows: Vec<Vec<&str>> = buffer
        .content
        .chunks(buffer.area.width as usize)
        .map(|r| r.iter().map(ratatui::buffer::Cell::symbol).collect())
        .collect();
    let header = rows
        .iter()
        .position(|r| r.concat().contains("STATUS") && r.concat().contains("TTL"))
        .expect("the table's header");
    let end = rows[header]
        .windows(3)
        .position(|w| w.concat() == "TTL")
        .expect("TTL column")
        + 3;
    for row in rows.iter().skip(header + 1).take_while(|r| r[0] == "│") {
        if row[1..end].concat().trim().is_empty() {
            continue;
        }
        let ttl = row[end - 6..end].concat();
        let ttl = ttl.trim();
        assert!(
            ttl == "-" || ttl.ends_with('s') || ttl.ends_with('m'),
            "not a TTL under TTL: {ttl:?} in {:?}",
            row.concat()
        );
    }
}

#[test]
fn hostile_text_at_every_size_is_shown_escaped_measured_in_cells_and_keys_are_never_hidden() {
    let mut app = app_showing(fixtures::hostile());
    for (w, h) in [(80, 24), (120, 40), (200, 50)] {
        let t = render(&mut app, w, h, &theme());
        assert_safe_and_aligned(&t);
        insta::assert_snapshot!(format!("hostile_{w}x{h}"), t.backend());
        let text = lines_of(&t).join("\n");
        // Shown as escapes (cut in the middle where the column is narrow), never obeyed.
        assert!(text.contains("ctl-^["), "{w}x{h}:\n{text}");
        assert!(text.contains("bidi-<"), "{w}x{h}:\n{text}");
    }
    // 120x40: room for every key of the multi-key profile, each with its owner's distinguishing end and TTL.
    let text = lines_of(&render(&mut app, 120, 40, &theme())).join("\n");
    for (key, ttl, owner_end) in [
        ("SOL", "-4s", "000003"),
        ("XRP", "14s", "000004"),
        ("BTC", "9s", "000001"),
        ("ETH", "27s", "000002"),
    ] {
        let line = text
            .lines()
            .find(|l| l.contains(&format!(" {key} ")) && l.contains(owner_end))
            .unwrap_or_else(|| panic!("{key} has no line of its own:\n{text}"));
        assert!(line.contains(ttl), "{key}: {line}");
    }
    // 80x24: no room; the expired key stands for the profile, with how many more, and the owner's end shows.
    let text = lines_of(&render(&mut app, 80, 24, &theme())).join("\n");
    app.apply(Action::End);
    let text_end = lines_of(&render(&mut app, 80, 24, &theme())).join("\n");
    let line = text
        .lines()
        .chain(text_end.lines())
        .find(|l| l.contains("multi-key"))
        .unwrap_or_else(|| panic!("multi-key not on screen:\n{text}\n{text_end}"));
    assert!(
        line.contains("SOL +3") && line.contains("00003") && line.contains("-4s"),
        "{line}"
    );
    // `x` shows them all, scrolling if it must.
    app.apply(Action::CycleKeyLines);
    let t = render(&mut app, 80, 24, &theme());
    assert!(app.expanded);
    insta::assert_snapshot!("hostile_expanded_80x24", t.backend());
}

#[test]
fn without_a_utf8_locale_every_cell_is_ascii() {
    let mut app = app_showing(fixtures::hostile());
    app.apply(Action::ToggleAlerts);
    for (w, h) in [(80, 24), (120, 40)] {
        let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("terminal");
        terminal
            .draw(|f| ui::draw(f, &mut app, &theme(), Glyphs { unicode: false }))
            .expect("draw");
        for cell in &terminal.backend().buffer().content {
            assert!(cell.symbol().is_ascii(), "{:?}", cell.symbol());
        }
        insta::assert_snapshot!(format!("ascii_{w}x{h}"), terminal.backend());
    }
}

#[test]
fn a_pause_freezes_values_and_sparklines_while_polls_go_on_and_resume_shows_the_latest() {
    use locktop::model::feed::{Feed, Link};
    let mut app = fixtures::incident_over_time();
    app.apply(Action::TogglePause);
    let frozen = format!("{}", render(&mut app, 120, 40, &theme()).backend());
    assert!(
        frozen.contains("PAUSED 12:13:20") && !frozen.contains("stale"),
        "{frozen}"
    );
    // Polls keep arriving underneath, with more failures each time.
    for i in 1..=5 {
        let mut s = fixtures::incident();
        s.server_now = fixtures::t(i);
        for r in &mut s.leases {
            r.contention_count = Some(500 + i);
        }
        app.on_feed(&Feed {
            snapshot: Some(std::sync::Arc::new(s)),
            received_at: Some(std::time::Instant::now()),
            polls: 100 + i as u64,
            last_poll_failed: false,
            failures: 0,
            link: Link::Connected,
            board: None,
        });
    }
    let still = format!("{}", render(&mut app, 120, 40, &theme()).backend());
    assert_eq!(frozen, still, "nothing moves while paused");
    app.apply(Action::TogglePause);
    let resumed = format!("{}", render(&mut app, 120, 40, &theme()).backend());
    assert!(!resumed.contains("PAUSED"), "{resumed}");
    assert_ne!(
        frozen, resumed,
        "resume shows the polls that came meanwhile"
    );
    assert!(
        app.shown_history().polls() > 60,
        "no poll was lost to the pause"
    );
}

#[test]
fn the_alerts_list_names_every_trigger_with_its_runbook_and_enter_jumps_to_its_profile() {
    let mut app = app_showing(incident());
    let banner = lines_of(&render(&mut app, 120, 40, &theme()))[1].clone();
    let alerts = app.board.as_ref().expect("board").alerts.len();
    assert!(alerts >= 2, "the incident fires several triggers");
    assert!(
        banner.contains(&format!("{alerts} alerts on")) && banner.contains("a lists them"),
        "{banner}"
    );
    app.apply(Action::ToggleAlerts);
    let t = render(&mut app, 120, 40, &theme());
    let text = lines_of(&t).join("\n");
    assert!(text.contains("contended_too_long: hot-7"), "{text}");
    assert!(
        text.contains("runbook:") && text.contains("Never delete"),
        "{text}"
    );
    insta::assert_snapshot!("alerts_120x40", t.backend());
    app.apply(Action::End);
    let last = app.board.as_ref().expect("board").alerts[alerts - 1].profiles()[0].to_owned();
    app.apply(Action::ToggleDetail);
    assert!(!app.alerts_open && app.detail);
    assert_eq!(
        app.selected_profile().map(|p| p.profile.to_string()),
        Some(last)
    );
}

#[test]
fn enter_on_a_lock_wait_opens_its_profile_or_its_blockers_backend() {
    let mut app = app_showing(incident());
    app.apply(Action::SwitchPane);
    render(&mut app, 120, 40, &theme());
    // The advisory wait (the third waiter line) is on no lease row: its blocker's backend opens.
    app.apply(Action::End);
    app.apply(Action::ToggleDetail);
    assert_eq!(app.backend, Some(201));
    let text = lines_of(&render(&mut app, 120, 40, &theme())).join("\n");
    assert!(
        text.contains("backend 201") && text.contains("blocks pid 202"),
        "{text}"
    );
    app.apply(Action::Back);
    assert!(!app.detail && app.backend.is_none());
    // The first waits on hot-7's row: its profile opens, in the profiles pane.
    app.apply(Action::Home);
    app.apply(Action::ToggleDetail);
    assert_eq!(
        app.selected_profile().map(|p| p.profile.as_ref()),
        Some("hot-7")
    );
    assert!(app.detail && app.backend.is_none());
    let text = lines_of(&render(&mut app, 120, 40, &theme())).join("\n");
    assert!(
        text.contains(
            "pid 101 w-hot (trader@10.0.0.7): idle in transaction for 12s, transaction 20s"
        ) && text.contains("idle in transaction: it keeps its locks"),
        "the holder's backend state and the hint:\n{text}"
    );
}

#[test]
fn a_click_selects_a_line_or_focuses_a_pane_and_the_wheel_moves() {
    use crossterm::event::{MouseButton, MouseEventKind};
    let mut app = app_showing(incident());
    render(&mut app, 120, 40, &theme());
    let table = app.hits.profiles;
    let row = table.y + 3;
    let line = app.hits.profile_lines[3];
    assert!(app.mouse(MouseEventKind::Down(MouseButton::Left), table.x + 5, row));
    assert_eq!(app.selected, line);
    assert!(app.mouse(MouseEventKind::ScrollDown, table.x + 5, row));
    assert_eq!(app.selected, line + 1);
    let lower = app.hits.lower;
    assert!(app.mouse(
        MouseEventKind::Down(MouseButton::Left),
        lower.x + 3,
        lower.y + 2
    ));
    assert_eq!(app.pane, locktop::app::Pane::Locks);
    assert_eq!(app.lock_selected, 0, "the first waiter's line");
    assert!(
        !app.mouse(MouseEventKind::Down(MouseButton::Left), 0, 0),
        "the header picks nothing"
    );
}

#[test]
fn the_footer_shows_the_recording_and_says_when_it_stopped_and_why() {
    use locktop::model::feed::RecordStatus;
    let mut app = app_showing(calm());
    app.recording = Some(RecordStatus {
        path: "/var/tmp/incident.jsonl".into(),
        bytes: 1_234_567,
        stopped: None,
    });
    let text = lines_of(&render(&mut app, 80, 24, &theme())).join("\n");
    assert!(text.contains("REC incident.jsonl 1.2 MB"), "{text}");
    app.recording = Some(RecordStatus {
        stopped: Some("No space left on device (os error 28)".into()),
        ..app.recording.clone().expect("status")
    });
    let t = render(&mut app, 80, 24, &theme());
    let text = lines_of(&t).join("\n");
    assert!(text.contains("REC STOPPED"), "{text}");
    assert!(
        text.contains("recording stopped: No space left on device"),
        "{text}"
    );
    insta::assert_snapshot!("recording_stopped_80x24", t.backend());
}

#[test]
fn the_panes_keep_their_place_while_waits_come_and_go() {
    let borders = |app: &mut App| -> Vec<usize> {
        lines_of(&render(app, 80, 24, &theme()))
            .iter()
            .enumerate()
            .filter(|(_, l)| l.starts_with('╭'))
            .map(|(i, _)| i)
            .collect()
    };
    let mut app = app_showing(incident());
    let busy = borders(&mut app);
    let mut quiet = incident();
    quiet.waits.truncate(1);
    let mut app = app_showing(quiet);
    assert_eq!(busy, borders(&mut app));
    let mut app = app_showing(calm());
    assert_eq!(busy, borders(&mut app));
}

#[test]
fn columns_keep_their_place_when_the_longest_text_leaves_the_page() {
    let mut long = incident();
    long.leases.push(fixtures::row(
        "profile-9",
        "BTC",
        "a-much-longer-owner-token-than-the-others",
        40,
    ));
    let mut app = app_showing(long);
    let header = |app: &mut App| {
        lines_of(&render(app, 120, 40, &theme()))
            .into_iter()
            .find(|l| l.contains("STATUS"))
            .expect("header")
    };
    let before = header(&mut app);
    app.show_at(incident(), fixtures::t(1));
    assert_eq!(before, header(&mut app), "no column moved");
}

#[test]
fn the_header_counts_the_databases_deadlocks_and_those_since_locktop_started() {
    let mut first = calm();
    first.deadlocks = Some(5);
    let mut app = app_showing(first);
    let quiet = lines_of(&render(&mut app, 120, 40, &theme()))[0].clone();
    assert!(
        quiet.contains("deadlocks 5") && !quiet.contains("since start"),
        "{quiet}"
    );
    let mut later = calm();
    later.deadlocks = Some(7);
    app.show_at(later, fixtures::t(1));
    let header = lines_of(&render(&mut app, 120, 40, &theme()))[0].clone();
    assert!(header.contains("deadlocks 7 (+2 since start)"), "{header}");
    // Per minute over the last ten (t(1) and t(121) are two minutes apart): 2, none read, 4; no reading
    // before.
    let mut much_later = calm();
    much_later.deadlocks = Some(11);
    much_later.server_now = fixtures::t(121);
    app.show_at(much_later, fixtures::t(121));
    let header = lines_of(&render(&mut app, 160, 40, &theme()))[0].clone();
    assert!(
        header.contains("deadlocks 11 (+6 since start)        ▄ █/min"),
        "{header}"
    );
}

/// At 50,000 profiles most are calm and known from their summaries, and their views are built when asked for:
/// the screen asks for the page it shows, and finds and orders profiles without building the others.
#[test]
fn the_screen_builds_the_views_of_the_page_it_shows_and_no_others() {
    use locktop::model::snapshot::ProfileSummary;
    let summaries: Vec<ProfileSummary> = (0..10_000)
        .map(|i| ProfileSummary {
            group: Some(format!("p{i}").into()),
            rows: 4,
            held: 1,
            sample_key: Some("SYM".into()),
            sample_owner: Some(format!("w{i}").into()),
            next_expiry: Some(fixtures::t(10 + i64::from(i % 20))),
            ..ProfileSummary::default()
        })
        .collect();
    let mut s = calm();
    s.leases.clear();
    s.summaries = std::sync::Arc::new(summaries);
    let mut app = app_showing(s);
    let built = |app: &App| app.board.as_ref().map_or(0, |b| b.profiles.built());
    // A frame looks at a page from the first line shown and one from the end (not to leave empty lines at
    // the bottom): at most two pages of views each.
    let page = 40;
    let t1 = render(&mut app, 120, 40, &theme());
    assert!(format!("{}", t1.backend()).contains("p0 "));
    assert!(built(&app) <= 2 * page, "{} views built", built(&app));
    // The last page, the filter (by an owner's name), and each order: still a page or so each.
    app.apply(Action::End);
    let t2 = render(&mut app, 120, 40, &theme());
    assert!(format!("{}", t2.backend()).contains("p9999 "));
    assert!(built(&app) <= 4 * page, "{} views built", built(&app));
    app.apply(Action::StartFilter);
    for c in "w77".chars() {
        app.apply(Action::FilterInput(c));
    }
    app.apply(Action::FilterDone);
    assert_eq!(app.visible.len(), 111, "w77, w770–w779, w7700–w7799");
    for _ in 0..3 {
        app.apply(Action::CycleSort);
        render(&mut app, 120, 40, &theme());
    }
    assert!(built(&app) <= 10 * page, "{} views built", built(&app));
}
