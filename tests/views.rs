//! View snapshots: the real render code on a `TestBackend` at 80×24 and 120×40 with a fixed server time.

use chrono::{DateTime, TimeZone, Utc};
use locktop::app::{Action, App};
use locktop::model::{LeaseRow, LockWait, Rules, Session, Snapshot, Visibility};
use locktop::theme::{ColorDepth, Theme};
use locktop::ui::{self, Glyphs};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn t(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_763_900_000 + s, 0)
        .single()
        .expect("time")
}

fn row(profile: &str, key: &str, owner: &str, expires: i64) -> LeaseRow {
    LeaseRow {
        group: Some(profile.into()),
        key: Some(key.into()),
        owner: Some(owner.into()),
        expires_at: Some(t(expires)),
        acquired_at: Some(t(expires - 30)),
        contention_count: Some(0),
        contended_since: None,
        last_contended_at: None,
    }
}

fn contended(mut r: LeaseRow, since: i64, count: i64) -> LeaseRow {
    r.contended_since = Some(t(since));
    r.last_contended_at = Some(t(-1));
    r.contention_count = Some(count);
    r
}

fn session(pid: i32, app: &str, state: &str, query: &str) -> Session {
    Session {
        pid,
        application: Some(app.into()),
        user: Some("trader".into()),
        client_addr: Some("10.0.0.7".into()),
        state: Some(state.into()),
        query: Some(query.into()),
        xact_start: Some(t(-20)),
        backend_type: Some("client backend".into()),
    }
}

fn wait(pid: i32, by: i32, locktype: &str, mode: &str, profile: Option<&str>) -> LockWait {
    LockWait {
        pid,
        blocked_by: vec![by],
        locktype: locktype.into(),
        mode: mode.into(),
        relation: profile.map(|_| "entry_locks".into()),
        relation_oid: profile.map(|_| 16_384),
        tuple: profile.map(|_| (0, 3)),
        advisory_key: None,
        transactionid: None,
        waitstart: Some(t(-7)),
        lease_row: profile.map(|p| (Some(p.into()), Some("AAPL".into()))),
    }
}

fn calm() -> Snapshot {
    Snapshot {
        server_now: t(0),
        poll_ms: 1.3,
        leases: (1..=6)
            .map(|i| {
                row(
                    &format!("profile-{i}"),
                    "BTC",
                    &format!("worker-{i}"),
                    10 + i,
                )
            })
            .collect(),
        summaries: std::sync::Arc::default(),
        sessions: Vec::new(),
        waits: Vec::new(),
        visibility: Visibility::Full,
        lease_error: None,
    }
}

fn incident() -> Snapshot {
    let mut s = calm();
    s.leases
        .push(contended(row("hot-7", "AAPL", "w-hot", 18), -125, 57));
    s.leases
        .push(contended(row("warm-2", "ETH", "w-warm", 24), -20, 3));
    s.leases.push(row("dead-3", "MSFT", "w-dead", -12));
    s.sessions = vec![
        session(
            101,
            "w-hot",
            "idle in transaction",
            "SELECT * FROM entry_locks WHERE profile_id = 'hot-7' FOR UPDATE",
        ),
        session(
            102,
            "w-rival-1",
            "active",
            "UPDATE entry_locks SET expires_at = now() WHERE profile_id = 'hot-7'",
        ),
        session(
            103,
            "w-rival-2",
            "active",
            "UPDATE entry_locks SET expires_at = now() WHERE profile_id = 'hot-7'",
        ),
        session(201, "scheduler-a", "idle", "SELECT pg_advisory_lock(4242)"),
        session(
            202,
            "scheduler-b",
            "active",
            "SELECT pg_advisory_lock(4242)",
        ),
    ];
    let mut advisory = wait(202, 201, "advisory", "ExclusiveLock", None);
    advisory.advisory_key = Some(locktop::model::AdvisoryKey::Bigint(4242));
    s.waits = vec![
        wait(102, 101, "transactionid", "ShareLock", Some("hot-7")),
        wait(103, 102, "tuple", "ExclusiveLock", Some("hot-7")),
        advisory,
    ];
    s
}

fn render(app: &mut App, width: u16, height: u16, theme: &Theme) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
    terminal
        .draw(|f| ui::draw(f, app, theme, Glyphs { unicode: true }))
        .expect("draw");
    terminal
}

fn app_showing(snapshot: Snapshot) -> App {
    let mut app = App::new(
        "monitor@db.internal:5432/trading".into(),
        Rules::default(),
        std::time::Duration::from_secs(1),
        Vec::new(),
    );
    app.show_at(snapshot, t(0));
    app
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
    app.link = locktop::source::Link::Reconnecting {
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
