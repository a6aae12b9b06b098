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
