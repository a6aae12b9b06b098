//! Data the engine must survive without a panic, and text from the database that must never drive the
//! operator's terminal: NULL in every mapped column, 10 KB owner tokens full of escape sequences, bytes that are
//! not UTF-8 (a SQL_ASCII database), 1 MB query texts, 100,000 lease rows.
//!
//! A cluster of its own: `track_activity_query_size = 1MB`, so that the server keeps query texts that long.

mod common;

use std::sync::OnceLock;
use std::time::Duration;

use common::pty::Tui;
use locktop::app::App;
use locktop::config::Config;
use locktop::model::{Rules, Status};
use locktop::rig::cluster::{Cluster, ClusterOptions};
use locktop::source::{LeaseDetail, SessionLimits};
use locktop::theme::{ColorDepth, Theme};
use locktop::ui::{self, Glyphs};

/// Sequences a hostile text could use: set the window title, blink, ask the terminal to answer (which types
/// into the operator's shell), and clear the screen.
const ESCAPES: [&str; 4] = ["\x1b]0;pwned\x07", "\x1b[5m", "\x1b[6n", "\x1bP+q\x1b\\"];

struct Hostile {
    _cluster: Cluster,
    admin: String,
    url_of: Box<dyn Fn(&str) -> String + Send + Sync>,
}

fn server() -> &'static Hostile {
    static SERVER: OnceLock<Hostile> = OnceLock::new();
    SERVER.get_or_init(|| {
        let cluster = Cluster::start(&ClusterOptions {
            settings: vec![
                ("track_activity_query_size".into(), "1MB".into()),
                ("max_connections".into(), "30".into()),
            ],
            ..ClusterOptions::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let pattern = cluster.url("{db}");
        Hostile {
            admin: cluster.url("postgres"),
            _cluster: cluster,
            url_of: Box::new(move |db| pattern.replace("{db}", db)),
        }
    })
}

/// A new database (with the given encoding) holding the reference schema.
async fn database(name: &str, encoding: &str) -> String {
    let s = server();
    let mut admin = common::connect(&s.admin).await;
    common::exec(
        &mut admin,
        &format!(
            "CREATE DATABASE {name} ENCODING '{encoding}' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'"
        ),
    )
    .await;
    let url = (s.url_of)(name);
    let mut conn = common::connect(&url).await;
    common::exec(&mut conn, common::REFERENCE_SCHEMA).await;
    url
}

/// A monitor of `url` in the dashboard's summary mode (30 s TTL), with these statement and client timeouts.
async fn summary_monitor(
    url: &str,
    statement_timeout: Duration,
    client_timeout: Duration,
) -> locktop::source::Monitor {
    let limits = SessionLimits {
        statement_timeout,
        lock_timeout: Duration::from_millis(50),
        client_timeout,
    };
    let mut m = common::monitor(url, &Config::default().lease, limits).await;
    m.set_detail(LeaseDetail::Summary {
        ttl: Duration::from_secs(30),
        focus: Vec::new(),
    });
    m
}

/// The dashboard's judgement of `snapshot`, and the text of it drawn on a 120×40 screen (which must not
/// panic).
fn judged_and_drawn(
    snapshot: locktop::model::Snapshot,
) -> (std::sync::Arc<locktop::model::Board>, String) {
    let mut app = App::new(
        "t".into(),
        Rules::default(),
        Duration::from_secs(1),
        Vec::new(),
    );
    let now = snapshot.server_now;
    app.show_at(snapshot, now);
    let theme = Theme::load("default", ColorDepth::Indexed).expect("theme");
    let mut terminal =
        ratatui::Terminal::new(ratatui::backend::TestBackend::new(120, 40)).expect("terminal");
    terminal
        .draw(|f| ui::draw(f, &mut app, &theme, Glyphs { unicode: true }))
        .expect("draw");
    (app.board.expect("board"), format!("{}", terminal.backend()))
}

/// One poll of the database at `url` with the lease mapping and detail given.
/// (A generous interval, so statement timeout, where a test is about surviving sizes, not about speed: the
/// poll benchmark measures that, and CI machines are sometimes slow.)
async fn poll(
    url: &str,
    lease: &locktop::config::LeaseMapping,
    detail: &LeaseDetail,
) -> locktop::model::Snapshot {
    let mut m = common::monitor(
        url,
        lease,
        SessionLimits::for_interval(Duration::from_secs(10)),
    )
    .await;
    m.set_detail(detail.clone());
    m.poll().await.unwrap_or_else(|e| panic!("{detail:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escape_sequences_in_tokens_ids_and_1_mb_queries_never_reach_the_terminal() {
    let url = database("escapes", "UTF8").await;
    let evil = format!("{}{}", ESCAPES.concat(), "A".repeat(10 * 1024));
    let mut conn = common::connect(&url).await;
    sqlx::query(
        "INSERT INTO entry_locks (profile_id, symbol, owner_token, expires_at, contention_count, \
         contended_since, last_contended_at) \
         VALUES ($1, $2, $3, now() + interval '1 hour', 5, now() - interval '10 s', now())",
    )
    .bind(format!("EVIL{}", ESCAPES[1]))
    .bind(format!("K{}\r\n\t\x08\x7f", ESCAPES[2]))
    .bind(&evil)
    .execute(&mut conn)
    .await
    .expect("insert");
    // Bidi controls and a C1 control (U+009B is CSI to some terminals), wide and zero-width characters.
    sqlx::query(
        "INSERT INTO entry_locks (profile_id, symbol, owner_token, expires_at) \
         VALUES ($1, $2, $3, now() + interval '1 hour')",
    )
    .bind("BIDI\u{202E}gnp.exe")
    .bind("\u{2066}K\u{2069}")
    .bind("o\u{9b}31m\u{200B}利润")
    .execute(&mut conn)
    .await
    .expect("insert");
    // A waiter whose query text is 1 MB long and full of escapes, blocked by a holder.
    let long_query = format!(
        "SELECT pg_advisory_lock(3) /* {} {} */",
        ESCAPES.concat(),
        "x".repeat(1024 * 1024 - 100)
    );
    let wait = common::AdvisoryWait::start(&url, 3, "holder", &long_query).await;

    let tui_url = url.clone();
    let (screen, raw) = tokio::task::spawn_blocking(move || {
        let mut tui = Tui::start(&["--dsn", &tui_url, "--interval", "500ms"]);
        tui.wait_for("EVIL");
        tui.wait_for("advisory 3");
        // Query texts on, the locks pane focused, the detail of the evil profile open.
        tui.keys("t");
        tui.wait_for("/*");
        tui.keys("\t");
        tui.keys("\t\r");
        let screen = tui.wait_for("(Esc closes");
        tui.keys("q");
        assert_eq!(tui.wait_exit(), 0);
        (screen, tui.raw_output())
    })
    .await
    .expect("pty");
    for escape in ESCAPES {
        assert!(!raw.contains(escape), "{escape:?} reached the terminal");
    }
    assert!(screen.contains("EVIL^[[5m"), "shown, defused:\n{screen}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_locktop"))
        .args(["snapshot", "--format", "table", "--dsn", &url])
        .output()
        .expect("snapshot");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("EVIL"), "{table}");
    assert!(
        !table.contains('\x1b'),
        "no escape in the table output: {table:?}"
    );
    for raw in ['\u{202E}', '\u{2066}', '\u{2069}', '\u{9b}', '\u{200B}'] {
        assert!(
            !table.contains(raw),
            "{raw:?} raw in the table output: {table}"
        );
    }
    assert!(
        table.contains("BIDI<U+202E>gnp.exe") && table.contains("o<U+009B>31m<U+200B>利润"),
        "shown as escapes: {table}"
    );
    // Under a locale that is not UTF-8, every byte of the table is ASCII.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_locktop"))
        .args(["snapshot", "--format", "table", "--dsn", &url])
        .env("LANG", "C")
        .env_remove("LC_ALL")
        .env_remove("LC_CTYPE")
        .output()
        .expect("snapshot");
    assert!(
        out.stdout.is_ascii(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("o<U+009B>31m<U+200B>?"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    wait.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_not_utf8_are_shown_replaced_not_a_failed_poll() {
    let url = database("not_utf8", "SQL_ASCII").await;
    let mut conn = common::connect(&url).await;
    // In a SQL_ASCII database text may hold any byte; these are not UTF-8.
    common::exec(
        &mut conn,
        "INSERT INTO entry_locks (profile_id, symbol, owner_token, expires_at) \
         VALUES (E'prof\\xff', E'sym\\xc3', E'own\\xfe\\xfeer', now() + interval '1 hour')",
    )
    .await;
    let wait = common::AdvisoryWait::start(
        &url,
        4,
        "holder",
        "SELECT pg_advisory_lock(4) /* caf\u{e9} */",
    )
    .await;

    for detail in [
        LeaseDetail::Full,
        LeaseDetail::Summary {
            ttl: Duration::from_secs(30),
            focus: Vec::new(),
        },
    ] {
        let snapshot = poll(&url, &Config::default().lease, &detail).await;
        // Every row in full detail; a calm profile as its per-profile summary.
        let (group, key, owner) = match (snapshot.leases.first(), snapshot.summaries.first()) {
            (Some(row), _) => (row.group.clone(), row.key.clone(), row.owner.clone()),
            (None, Some(sum)) => (
                sum.group.clone(),
                sum.sample_key.clone(),
                sum.sample_owner.clone(),
            ),
            (None, None) => panic!("{detail:?}: no row"),
        };
        assert_eq!(group.as_deref(), Some("prof\u{fffd}"), "{detail:?}");
        assert_eq!(key.as_deref(), Some("sym\u{fffd}"));
        assert_eq!(owner.as_deref(), Some("own\u{fffd}\u{fffd}er"));
        assert_eq!(snapshot.waits.len(), 1, "{detail:?}");
        assert!(
            snapshot
                .sessions
                .iter()
                .any(|s| s.query.as_deref().is_some_and(|q| q.contains("caf\u{e9}"))),
            "UTF-8 in a SQL_ASCII database reads as it was written"
        );
    }
    wait.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_in_every_mapped_column_is_shown_not_a_crash() {
    let url = database("nulls", "UTF8").await;
    let mut conn = common::connect(&url).await;
    common::exec(
        &mut conn,
        "CREATE TABLE loose (profile_id text, symbol text, owner_token text, acquired_at timestamptz, \
           expires_at timestamptz, contention_count bigint, contended_since timestamptz, last_contended_at timestamptz); \
         INSERT INTO loose VALUES \
           (NULL, 'A', 'o', now(), now() + interval '1 min', 1, now(), now()), \
           ('p1', NULL, 'o', now(), now() + interval '1 min', 1, now(), now()), \
           ('p2', 'A', NULL, now(), now() + interval '1 min', 1, now(), now()), \
           ('p3', 'A', 'o', NULL, now() + interval '1 min', 1, now(), now()), \
           ('p4', 'A', 'o', now(), NULL, 1, now(), now()), \
           ('p5', 'A', 'o', now(), now() + interval '1 min', NULL, now(), now()), \
           ('p6', 'A', 'o', now(), now() + interval '1 min', 1, NULL, now()), \
           ('p7', 'A', 'o', now(), now() + interval '1 min', 1, now(), NULL), \
           (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    )
    .await;
    let config = Config::parse("[lease]\ntable = \"loose\"\n").expect("config");
    for detail in [
        LeaseDetail::Full,
        LeaseDetail::Summary {
            ttl: Duration::from_secs(30),
            focus: Vec::new(),
        },
    ] {
        let snapshot = poll(&url, &config.lease, &detail).await;
        let (board, _) = judged_and_drawn(snapshot);
        let names: Vec<&str> = board.profiles.iter().map(|p| p.profile.as_ref()).collect();
        for p in ["p1", "p2", "p3", "p4", "p5", "p6", "p7"] {
            assert!(names.contains(&p), "{detail:?}: {p} missing from {names:?}");
        }
        assert!(
            board.profiles.iter().all(|p| p.status != Status::Escalated),
            "{detail:?}: NULLs are not an incident"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_never_expires_or_always_has_is_shown_not_a_crash() {
    let url = database("infinite", "UTF8").await;
    let mut conn = common::connect(&url).await;
    common::exec(
        &mut conn,
        "INSERT INTO entry_locks (profile_id, symbol, owner_token, acquired_at, expires_at) VALUES \
           ('forever', 'A', 'w1', now(), 'infinity'), ('never', 'A', 'w2', '-infinity', '-infinity')",
    )
    .await;
    let config = Config::parse("").expect("config");
    let summary = LeaseDetail::Summary {
        ttl: Duration::from_secs(30),
        focus: Vec::new(),
    };
    // Every row read whole, the mirror's read of every row, and the server's aggregates (no mirror).
    for (detail, mirrored) in [
        (LeaseDetail::Full, false),
        (summary.clone(), true),
        (summary, false),
    ] {
        let mut m = common::monitor(
            &url,
            &config.lease,
            SessionLimits::for_interval(Duration::from_secs(10)),
        )
        .await;
        m.set_detail(detail.clone());
        m.set_incremental(mirrored);
        let snapshot = m.poll().await.expect("a poll");
        let expiry = |p: &str| {
            snapshot
                .leases
                .iter()
                .find(|r| r.group.as_deref() == Some(p))
                .map(|r| r.expires_at)
        };
        if detail == LeaseDetail::Full {
            assert_eq!(
                expiry("forever"),
                Some(Some(chrono::DateTime::<chrono::Utc>::MAX_UTC))
            );
        }
        assert_eq!(
            expiry("never"),
            Some(Some(chrono::DateTime::<chrono::Utc>::MIN_UTC)),
            "{detail:?}: a row expired since always is a row that matters"
        );
        let (board, _) = judged_and_drawn(snapshot);
        let status = |p: &str| {
            board
                .profiles
                .iter()
                .find(|v| *v.profile == *p)
                .map(|v| v.status)
        };
        assert_eq!(status("never"), Some(Status::Expired), "{detail:?}");
        assert_ne!(status("forever"), Some(Status::Expired), "{detail:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_lease_rows_poll_and_draw() {
    let url = database("many", "UTF8").await;
    let mut conn = common::connect(&url).await;
    common::exec(
        &mut conn,
        "INSERT INTO entry_locks (profile_id, symbol, owner_token, expires_at, contention_count, \
           contended_since, last_contended_at) \
         SELECT 'p' || g, 'BTC', 'w' || g, now() + (10 + g % 60) * interval '1 s', (g % 1000 = 0)::int * 3, \
           CASE WHEN g % 1000 = 0 THEN now() - interval '5 s' END, CASE WHEN g % 1000 = 0 THEN now() END \
         FROM generate_series(1, 100000) g",
    )
    .await;
    let snapshot = poll(
        &url,
        &Config::default().lease,
        &LeaseDetail::Summary {
            ttl: Duration::from_secs(30),
            focus: Vec::new(),
        },
    )
    .await;
    assert_eq!(snapshot.lease_error, None);
    let (board, text) = judged_and_drawn(snapshot);
    assert_eq!(board.profiles.len(), 100_000);
    assert_eq!(
        board
            .profiles
            .iter()
            .filter(|p| p.status == Status::Contended)
            .count(),
        100
    );
    assert!(text.contains("profiles (100000)"), "{text}");
}

/// 300,000 calm profiles (their aggregates take a few hundred ms) and three contended ones, `hot-1` to `hot-3`.
/// The indexes make finding the contended ones an index lookup, so the tests do not depend on this machine's
/// speed: the aggregates always outgrow a 100 ms timeout, the lookup never does.
async fn calm_and_three_hot(conn: &mut sqlx::PgConnection) {
    common::exec(
        conn,
        "INSERT INTO entry_locks (profile_id, symbol, owner_token, expires_at) \
         SELECT 'p' || g, 'BTC', 'w' || g, now() + interval '1 hour' FROM generate_series(1, 300000) g; \
         INSERT INTO entry_locks (profile_id, symbol, owner_token, expires_at, contention_count, contended_since, \
           last_contended_at) \
         SELECT 'hot-' || g, 'BTC', 'w', now() + interval '1 hour', 5, now() - interval '5 s', now() \
         FROM generate_series(1, 3) g; \
         CREATE INDEX ON entry_locks (last_contended_at); CREATE INDEX ON entry_locks (expires_at); \
         ANALYZE entry_locks",
    )
    .await;
}

/// The contended profiles among a snapshot's rows (see [`calm_and_three_hot`]).
fn hot(snapshot: &locktop::model::Snapshot) -> Vec<&str> {
    snapshot
        .leases
        .iter()
        .filter_map(|r| r.group.as_deref())
        .filter(|g| g.starts_with("hot-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_too_slow_for_the_statement_timeout_still_leave_the_rows_that_matter_on_screen()
{
    let url = database("slow_aggregates", "UTF8").await;
    let mut conn = common::connect(&url).await;
    calm_and_three_hot(&mut conn).await;
    let mut m = summary_monitor(&url, Duration::from_millis(100), Duration::from_secs(5)).await;
    for poll in 1..=3 {
        let snapshot = m.poll().await.expect("the poll itself succeeds");
        let hot = hot(&snapshot);
        assert_eq!(
            hot.len(),
            3,
            "poll {poll}: the contended profiles are read: {hot:?} ({:?})",
            snapshot.lease_error
        );
        // The rows that matter were read: a note, not "lease rows unread".
        assert_eq!(snapshot.lease_error, None, "poll {poll}");
        // Where the table can be read by windows (PostgreSQL 14 on), its copy is being built meanwhile.
        let note = snapshot.notes.join(" ");
        assert!(
            note.contains("aggregates take longer than the statement timeout (100 ms)")
                || (note.contains("building its copy by windows (")
                    && note.contains(
                        "done); until then calm profiles are the server's aggregates, refreshed less often"
                    )),
            "poll {poll}: says why calm profiles are missing: {note:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_too_large_to_read_whole_in_a_poll_is_copied_by_windows_then_polled_from_the_copy()
{
    let url = database("built_by_windows", "UTF8").await;
    let mut conn = common::connect(&url).await;
    // A read of every row in one go always outgrows the 100 ms statement timeout, as a table bloated behind a
    // long transaction does when locktop is opened mid-incident; a window of the sweep is a few pages.
    calm_and_three_hot(&mut conn).await;
    let version: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int4")
        .fetch_one(&mut conn)
        .await
        .expect("version");
    let mut m = summary_monitor(&url, Duration::from_millis(100), Duration::from_secs(5)).await;
    m.read_between_polls();
    m.set_detail(LeaseDetail::Summary {
        ttl: Duration::from_secs(30),
        focus: vec!["p777".into()],
    });
    let building = |s: &locktop::model::Snapshot| {
        s.notes
            .iter()
            .any(|n| n.contains("building its copy by windows"))
    };
    let s = m.poll().await.expect("first poll");
    assert_eq!(hot(&s).len(), 3, "the contended profiles are read at once");
    if version < 140_000 {
        // No windows without TID range scans: the server aggregates the table from now on.
        assert!(!m.incremental() && !building(&s), "{:?}", s.notes);
        return;
    }
    assert!(
        building(&s),
        "the screen says what is going on: {:?}",
        s.notes
    );
    let started = std::time::Instant::now();
    let mut polls = 1;
    loop {
        let s = m.poll().await.expect("poll");
        assert_eq!(
            hot(&s).len(),
            3,
            "poll {polls}: the contended profiles stay on screen while the copy is built"
        );
        if !building(&s) {
            break;
        }
        polls += 1;
        m.between_polls().await.expect("between polls");
        assert!(
            started.elapsed() < Duration::from_mins(2),
            "the copy is built in {polls} polls"
        );
    }
    // The copy is shown: a change to a row shows at the next poll, which reads only what changed, and the
    // calm profiles are the copy's aggregates of every profile.
    common::exec(
        &mut conn,
        "UPDATE entry_locks SET owner_token = 'moved' WHERE profile_id = 'p777'",
    )
    .await;
    let before = m.lease_rows_read();
    let s = m.poll().await.expect("poll");
    let read = m.lease_rows_read() - before;
    assert!(
        read < 5_000,
        "a poll reads what changed, not the table: {read} rows"
    );
    assert_eq!(hot(&s).len(), 3);
    let owner = s
        .leases
        .iter()
        .find(|r| r.group.as_deref() == Some("p777"))
        .and_then(|r| r.owner.clone());
    assert_eq!(owner.as_deref(), Some("moved"), "the change shows");
    assert_eq!(s.summaries.len(), 300_003, "every profile, from the copy");
    assert!(
        s.notes
            .iter()
            .all(|n| !n.contains("aggregates take longer")),
        "{:?}",
        s.notes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_table_too_slow_for_two_reads_in_a_poll_still_leaves_its_sessions_on_screen() {
    let url = database("slow_every_read", "UTF8").await;
    let mut conn = common::connect(&url).await;
    // Every read of the table takes longer than the statement timeout whatever the machine: each row the
    // monitor's role may see costs 2 ms (a policy), 300 rows 600 ms. As on a table bloated behind a long
    // transaction, where the mirror's first read and then the read of the rows that matter both time out.
    common::exec(
        &mut conn,
        "INSERT INTO entry_locks (profile_id, symbol, owner_token, expires_at) \
         SELECT 'p' || g, 'BTC', 'w' || g, now() + interval '1 hour' FROM generate_series(1, 300) g; \
         CREATE FUNCTION slow_row(text) RETURNS bool LANGUAGE plpgsql VOLATILE \
           AS $$ BEGIN PERFORM pg_sleep(0.002); RETURN true; END $$; \
         ALTER TABLE entry_locks ENABLE ROW LEVEL SECURITY; \
         CREATE POLICY slow ON entry_locks FOR SELECT USING (slow_row(profile_id))",
    )
    .await;
    let reader = common::reader_role(&url, "slow_reader").await;
    common::exec(&mut conn, "GRANT pg_monitor TO slow_reader").await;
    let _witness = common::connect_as(&url, "witness-7").await;
    // Two statement timeouts do not fit in the poll's client timeout: a second read must not start.
    let mut m = summary_monitor(
        &reader,
        Duration::from_millis(300),
        Duration::from_millis(500),
    )
    .await;
    for poll in 1..=3 {
        let snapshot = m
            .poll()
            .await
            .unwrap_or_else(|e| panic!("poll {poll}: the poll itself succeeds: {e}"));
        let why = snapshot.lease_error.clone().unwrap_or_default();
        assert!(
            why.contains("statement_timeout"),
            "poll {poll}: says the lease rows are unread and why: {why:?}"
        );
        assert!(
            snapshot
                .sessions
                .iter()
                .any(|s| s.application.as_deref() == Some("witness-7")),
            "poll {poll}: the sessions are read all the same"
        );
    }
}
