//! Bad input is refused with one line that names the problem and the fix, before the terminal is touched;
//! nothing the monitor sends can write; it never leaves a transaction open; and a password appears nowhere.
//!
//! This binary has a cluster of its own: TLS with a self-signed certificate, a role that logs in with a
//! password, a role that may only use TLS, and `log_statement = 'all'` so every statement locktop sends is in
//! the server log with its application name.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::pty::Tui;
use locktop::rig::cluster::{Cluster, ClusterOptions};

const PASSWORD: &str = "hunter2-S3cret";

struct Safety {
    cluster: Cluster,
    /// 127.0.0.1:port of the cluster.
    tcp: String,
    /// The database every test here uses, with the reference schema.
    socket_url: String,
    /// Config, theme, log and recording files of the tests: inside the cluster's directory, which its
    /// watchdog removes when this binary exits (a `TempDir` in a static would never be dropped).
    files: PathBuf,
}

fn server() -> &'static Safety {
    static SERVER: OnceLock<Safety> = OnceLock::new();
    SERVER.get_or_init(|| {
        let cluster = Cluster::start(&ClusterOptions {
            tcp: true,
            tls: true,
            settings: vec![
                ("log_statement".into(), "all".into()),
                ("log_line_prefix".into(), "%a|%p| ".into()),
                ("log_min_messages".into(), "info".into()),
            ],
            hba: vec![
                "hostssl all tlsonly 127.0.0.1/32 trust".into(),
                "host all tlsonly 127.0.0.1/32 reject".into(),
                "host all pwuser 127.0.0.1/32 scram-sha-256".into(),
                "local all pwuser scram-sha-256".into(),
                "hostssl all certuser 127.0.0.1/32 cert".into(),
                "host all certuser 127.0.0.1/32 reject".into(),
            ],
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let tcp = format!("127.0.0.1:{}", cluster.port());
        let socket_url = cluster.url("postgres");
        let setup = format!(
            "{} \
             CREATE ROLE pwuser LOGIN PASSWORD '{PASSWORD}'; CREATE ROLE tlsonly LOGIN; \
             GRANT pg_monitor TO pwuser, tlsonly; GRANT SELECT ON entry_locks TO pwuser, tlsonly;",
            common::REFERENCE_SCHEMA
        );
        let url = socket_url.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let mut conn = common::connect(&url).await;
                common::exec(&mut conn, &setup).await;
            });
        })
        .join()
        .expect("setup");
        let files = cluster.root().join("test-files");
        std::fs::create_dir(&files).expect("files dir");
        Safety {
            cluster,
            tcp,
            socket_url,
            files,
        }
    })
}

/// A file for a test's config or theme.
fn file(name: &str, text: &str) -> PathBuf {
    let path = server().files.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

fn server_log() -> String {
    std::fs::read_to_string(server().cluster.root().join("server.log")).expect("server log")
}

/// Runs the dashboard in a pty with `args` and checks the refusal: status 1, one line starting with
/// `locktop:` that holds every `needle`, none of `secrets`, and the terminal never switched nor left raw.
fn refused(args: &[&str], size: (u16, u16), needles: &[&str], secrets: &[&str]) {
    let mut tui = Tui::spawn(args, &[], size);
    let code = tui.wait_exit();
    let raw = tui.raw_output();
    assert_eq!(code, 1, "{args:?}: {raw:?}");
    assert!(
        !raw.contains("\x1b[?1049h"),
        "{args:?}: the terminal was switched: {raw:?}"
    );
    assert!(tui.cooked(), "{args:?}: raw mode left on");
    // A password on the command line gets its own warning line first (it is taken out of the arguments).
    let text = raw
        .trim()
        .lines()
        .filter(|l| !l.starts_with("locktop: warning: a password on the command line"))
        .collect::<Vec<_>>()
        .join("\n");
    let text = text.trim();
    assert_eq!(text.lines().count(), 1, "{args:?}: one line: {text:?}");
    assert!(text.starts_with("locktop: "), "{text:?}");
    for needle in needles {
        assert!(
            text.contains(needle),
            "{args:?}: {needle:?} missing from {text:?}"
        );
    }
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "{args:?}: {secret:?} shown in {text:?}"
        );
    }
}

#[test]
fn bad_connection_settings_are_refused_with_one_line_naming_the_fix() {
    let s = server();
    let tcp = &s.tcp;
    let port = s.cluster.port().to_string();
    let cases: Vec<(String, Vec<&str>, Vec<&str>)> = vec![
        (
            format!("postgres://pwuser:{PASSWORD}@127.0.0.1:notaport/postgres"),
            vec!["invalid DSN", "postgres://user@host:port/dbname"],
            vec![PASSWORD],
        ),
        (
            "host=db port=5432 dbname".into(),
            vec!["invalid DSN", "key=value"],
            vec![],
        ),
        (
            "postgres://monitor@nosuchhost.invalid:5432/trading".into(),
            vec![
                "cannot connect to monitor@nosuchhost.invalid:5432/trading",
                "check the host",
            ],
            vec![],
        ),
        (
            format!("postgres://pwuser:wrong-{PASSWORD}@{tcp}/postgres"),
            vec!["authentication failed for pwuser@127.0.0.1", "password"],
            vec![PASSWORD],
        ),
        (
            format!("postgres://postgres@{tcp}/nosuchdb"),
            vec!["database missing", "nosuchdb", "check the database name"],
            vec![],
        ),
        (
            format!("postgres://tlsonly@{tcp}/postgres?sslmode=disable"),
            vec!["TLS", "sslmode=require"],
            vec![],
        ),
        (
            format!("postgres://postgres@localhost:{port}/postgres?sslmode=verify-full"),
            vec!["TLS", "certificate", "sslrootcert"],
            vec![],
        ),
    ];
    std::thread::scope(|scope| {
        for (dsn, needles, secrets) in &cases {
            scope.spawn(move || refused(&["--dsn", dsn], (40, 120), needles, secrets));
        }
    });
}

/// Arguments, terminal size (rows, columns), and what the refusal must say.
type Case<'a> = (Vec<&'a str>, (u16, u16), Vec<&'a str>);

#[test]
fn a_bad_mapping_config_theme_or_terminal_is_refused_with_one_line_naming_the_fix() {
    let url = &server().socket_url;
    let no_table = file("no_table.toml", "[lease]\ntable = \"public.nope\"\n");
    let misspelled = file("misspelled.toml", "[lease]\nowner = \"owner_tokn\"\n");
    let syntax = file(
        "syntax.toml",
        "[lease]\ntable = \"public.entry_locks\"\ngroup = \n",
    );
    let unknown = file("unknown.toml", "[lease]\ntabel = \"x\"\n");
    let duration = file("duration.toml", "[thresholds]\nttl = \"30 parsecs\"\n");
    let theme = file("bad.toml", "[roles]\nok = { fg = \"blurple\" }\n");
    let path = |p: &Path| p.display().to_string();
    let (no_table, misspelled, syntax, unknown, duration, theme) = (
        path(&no_table),
        path(&misspelled),
        path(&syntax),
        path(&unknown),
        path(&duration),
        path(&theme),
    );
    let cases: Vec<Case> = vec![
        (
            vec!["--dsn", url, "--config", &no_table],
            (40, 120),
            vec!["lease table public.nope not found", "[lease] table"],
        ),
        (
            vec!["--dsn", url, "--config", &misspelled],
            (40, 120),
            vec!["no column \"owner_tokn\"", "owner_token", "fix the mapping"],
        ),
        (
            vec!["--dsn", url, "--config", &syntax],
            (40, 120),
            vec!["line 3"],
        ),
        (
            vec!["--dsn", url, "--config", &unknown],
            (40, 120),
            vec!["line 2", "tabel"],
        ),
        (
            vec!["--dsn", url, "--config", &duration],
            (40, 120),
            vec!["30 parsecs", "like 30s"],
        ),
        (
            vec!["--dsn", url, "--theme", "nosuch"],
            (40, 120),
            vec!["nosuch", "high-contrast"],
        ),
        (
            vec!["--dsn", url, "--theme", &theme],
            (40, 120),
            vec!["blurple"],
        ),
        (
            vec!["--dsn", url, "--interval", "0"],
            (40, 120),
            vec!["--interval", "greater than zero"],
        ),
        (
            vec!["--dsn", url],
            (10, 40),
            vec!["terminal too small: 40x10", "enlarge"],
        ),
        (
            vec!["--dsn", url, "--record", "/dev/full"],
            (40, 120),
            vec![
                "cannot write the recording /dev/full",
                "No space left on device",
            ],
        ),
    ];
    std::thread::scope(|scope| {
        for (args, size, needles) in &cases {
            scope.spawn(move || refused(args, *size, needles, &[]));
        }
    });

    // Not a terminal at all: the dashboard says to use snapshot.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_locktop"))
        .args(["--dsn", url])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("not a terminal") && err.contains("locktop snapshot"),
        "{err}"
    );
}

/// Statements the server logged for sessions named `locktop`.
fn locktop_statements(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.strip_prefix("locktop|"))
        .filter_map(|l| {
            let (_, rest) = l.split_once("LOG:  ")?;
            let (kind, text) = rest.split_once(": ")?;
            (kind == "statement" || kind.starts_with("execute")).then(|| text.to_owned())
        })
        .collect()
}

fn is_read(statement: &str) -> bool {
    let upper = statement.to_uppercase();
    let first = upper.split_whitespace().next().unwrap_or_default();
    let writes = [
        "INSERT ",
        "UPDATE ",
        "DELETE ",
        "MERGE ",
        "TRUNCATE ",
        "CREATE ",
        "ALTER ",
        "DROP ",
        "GRANT ",
        "LOCK ",
        "COPY ",
        "CALL ",
        "DO ",
    ];
    matches!(first, "SELECT" | "WITH" | "SHOW") && !writes.iter().any(|w| upper.contains(w))
}

/// Contention, a row-lock queue and an advisory wait, so that every read path of the monitor has work: the
/// holder's session and the waiting tasks.
async fn contention(
    url: &str,
) -> (
    sqlx::PgConnection,
    Vec<tokio::task::JoinHandle<sqlx::PgConnection>>,
) {
    let mut w1 = common::connect_as(url, "w1").await;
    common::exec(
        &mut w1,
        "SELECT fn_try_acquire_entry_lock_row('SAFE', 'BTC', 'w1'); \
         SELECT fn_try_acquire_entry_lock_row('SAFE', 'BTC', 'w2')",
    )
    .await;
    common::exec(
        &mut w1,
        "BEGIN; SELECT 1 FROM entry_locks WHERE profile_id = 'SAFE' FOR UPDATE; SELECT pg_advisory_lock(5)",
    )
    .await;
    let mut w2 = common::connect_as(url, "w2").await;
    let row_wait = tokio::spawn(async move {
        let _ =
            sqlx::raw_sql("UPDATE entry_locks SET expires_at = now() WHERE profile_id = 'SAFE'")
                .execute(&mut w2)
                .await;
        w2
    });
    let mut w3 = common::connect_as(url, "w3").await;
    let advisory_wait = tokio::spawn(async move {
        let _ = sqlx::raw_sql("SELECT pg_advisory_lock(5)")
            .execute(&mut w3)
            .await;
        w3
    });
    (w1, vec![row_wait, advisory_wait])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_statement_locktop_sends_is_a_read_and_it_never_idles_in_a_transaction() {
    let url = server().socket_url.clone();
    let (mut w1, waits) = contention(&url).await;

    let tui_url = url.clone();
    let tui = tokio::task::spawn_blocking(move || {
        let tui = Tui::start(&["--dsn", &tui_url, "--interval", "200ms"]);
        tui.wait_for("SAFE");
        tui
    })
    .await
    .expect("pty");

    // Watch the monitor's session from outside for a while: never idle in a transaction.
    let mut probe = common::connect(&url).await;
    let until = Instant::now() + Duration::from_secs(3);
    let mut states = std::collections::BTreeSet::new();
    let mut locked_table = false;
    while Instant::now() < until {
        let seen: Vec<Option<String>> = sqlx::query_scalar(
            "SELECT state FROM pg_stat_activity WHERE application_name = 'locktop'",
        )
        .fetch_all(&mut probe)
        .await
        .expect("probe");
        states.extend(seen.into_iter().flatten());
        if !locked_table
            && until.saturating_duration_since(Instant::now()) < Duration::from_millis(1500)
        {
            // A migration queues for the table lock behind w1 for a moment: the table-lock path runs too.
            locked_table = true;
            let migration_url = url.clone();
            tokio::spawn(async move {
                let mut migration = common::connect_as(&migration_url, "migration").await;
                let _ = sqlx::raw_sql(
                    "SET lock_timeout = '700ms'; BEGIN; LOCK TABLE entry_locks IN ACCESS EXCLUSIVE MODE",
                )
                .execute(&mut migration)
                .await;
            });
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        states.contains("idle") || states.contains("active"),
        "{states:?}"
    );
    assert!(
        !states.iter().any(|s| s.contains("transaction")),
        "the monitor held a transaction open: {states:?}"
    );

    let mut tui = tui;
    tokio::task::spawn_blocking(move || {
        tui.keys("q");
        assert_eq!(tui.wait_exit(), 0);
    })
    .await
    .expect("pty");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_locktop"))
        .args(["snapshot", "--format", "json", "--dsn", &url])
        .output()
        .expect("snapshot");
    assert!(
        out.status.code().is_some_and(|c| c == 0 || c == 2),
        "{out:?}"
    );

    common::exec(&mut w1, "ROLLBACK; SELECT pg_advisory_unlock_all()").await;
    for wait in waits {
        drop(wait.await);
    }

    assert_every_statement_is_a_read();
}

fn assert_every_statement_is_a_read() {
    // The check itself can fail.
    assert!(!is_read("UPDATE entry_locks SET owner_token = NULL"));
    assert!(!is_read(
        "WITH gone AS (DELETE FROM entry_locks RETURNING 1) SELECT count(*) FROM gone"
    ));
    assert!(is_read("SELECT now()"));
    let statements = locktop_statements(&server_log());
    let distinct: std::collections::BTreeSet<String> = statements
        .iter()
        .map(|s| s.split_whitespace().take(6).collect::<Vec<_>>().join(" "))
        .collect();
    assert!(
        statements.iter().any(|s| s.contains("pg_locks")),
        "the log has locktop's statements: {distinct:#?}"
    );
    for statement in &statements {
        assert!(is_read(statement), "not a read: {statement}");
    }
    eprintln!(
        "{} statements from locktop, {} distinct beginnings, all reads",
        statements.len(),
        distinct.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_appears_nowhere_on_screen_in_messages_in_the_log_or_in_a_recording() {
    let s = server();
    let log = s.files.join("locktop.log");
    let record = s.files.join("secret.jsonl");
    let dsn = format!("postgres://pwuser:{PASSWORD}@{}/postgres", s.tcp);
    let log_arg = log.display().to_string();
    let record_arg = record.display().to_string();
    let screen_and_raw = tokio::task::spawn_blocking(move || {
        let mut tui = Tui::start(&[
            "--dsn",
            &dsn,
            "--interval",
            "200ms",
            "--log-file",
            &log_arg,
            "--record",
            &record_arg,
            "--record-queries",
        ]);
        let screen = tui.wait_for("pwuser@127.0.0.1");
        tui.keys("?");
        tui.wait_for("help (? or Esc closes)");
        tui.keys("q");
        assert_eq!(tui.wait_exit(), 0);
        (screen, tui.raw_output())
    })
    .await
    .expect("pty");
    let (screen, raw) = screen_and_raw;
    assert!(
        !screen.contains(PASSWORD) && !raw.contains(PASSWORD),
        "on screen"
    );
    // The same password from PGPASSWORD, for the snapshot command and its messages.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_locktop"))
        .args([
            "snapshot",
            "--format",
            "table",
            "--dsn",
            &format!("postgres://pwuser@{}/postgres", s.tcp),
            "--log-file",
            &log.display().to_string(),
        ])
        .env("PGPASSWORD", PASSWORD)
        .output()
        .expect("snapshot");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A poll, not an error: 0 or 2, or 3 when another test of this binary holds the lease table just then
    // (its migration queues for ACCESS EXCLUSIVE: the rows are unread and locktop cannot vouch for calm).
    assert!(
        out.status
            .code()
            .is_some_and(|c| c == 0 || c == 2 || c == 3),
        "{printed}"
    );
    assert!(!printed.contains(PASSWORD), "{printed}");
    let logged = std::fs::read_to_string(&log).expect("the log file was written");
    assert!(logged.contains("connected"), "{logged}");
    assert!(!logged.contains(PASSWORD), "in the log file");
    let recorded = std::fs::read_to_string(&record).expect("the recording was written");
    assert!(recorded.contains("pwuser@127.0.0.1"), "{recorded}");
    assert!(!recorded.contains(PASSWORD), "in the recording");
}

#[test]
fn verify_full_reads_the_default_root_certificate_in_the_home_directory() {
    let s = server();
    let home = tempfile::tempdir().expect("home");
    let url = format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=verify-full",
        s.cluster.port()
    );
    let run = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_locktop"))
            .args(["snapshot", "--format", "json", "--dsn", &url])
            .env("HOME", home.path())
            .env_remove("PGSSLROOTCERT")
            .output()
            .expect("snapshot");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let missing = run();
    assert!(
        missing.contains(".postgresql/root.crt does not exist"),
        "{missing}"
    );
    // With the file there, it is the CA the server is verified against. (The rig's certificate signs
    // itself, which rustls does not take as a CA: verification fails, but on the certificate, not on a
    // missing file.)
    std::fs::create_dir(home.path().join(".postgresql")).expect("dir");
    std::fs::copy(
        s.cluster.root().join("data/server.crt"),
        home.path().join(".postgresql/root.crt"),
    )
    .expect("the server's certificate");
    let verified = run();
    assert!(
        verified.contains("TLS to")
            && verified.contains("certificate")
            && !verified.contains("does not exist"),
        "{verified}"
    );
}

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let ok = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(ok.status.success(), "openssl {args:?}: {ok:?}");
}

/// In `dir`: a CA (`ca.crt`) and a certificate for the role `certuser` that it signed (`client.crt`,
/// `client.key`).
fn client_certificate(dir: &Path) {
    let dir = dir.to_path_buf();
    std::fs::create_dir_all(&dir).expect("dir");
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    );
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=certuser",
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
        ],
    );
    // An X.509 v3 certificate (rustls refuses v1, which `x509 -req` makes without extensions).
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
    )
    .expect("extensions");
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "client.ext",
            "-out",
            "client.crt",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_sslcert_and_sslkey_logs_in_where_the_server_asks_for_one() {
    let s = server();
    // A CA of the test's own, which the server trusts for client certificates, and a certificate for the role.
    let dir = s.files.join("client-ca");
    client_certificate(&dir);
    let mut admin = common::connect(&s.socket_url).await;
    common::exec(
        &mut admin,
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'certuser') THEN \
         CREATE ROLE certuser LOGIN; END IF; END $$; \
         GRANT pg_monitor TO certuser; GRANT SELECT ON entry_locks TO certuser;",
    )
    .await;
    let ca = dir.join("ca.crt").display().to_string();
    common::exec(
        &mut admin,
        &format!("ALTER SYSTEM SET ssl_ca_file = '{ca}'"),
    )
    .await;
    common::exec(&mut admin, "SELECT pg_reload_conf()").await;
    let cert = dir.join("client.crt").display().to_string();
    let key = dir.join("client.key").display().to_string();
    let dsn = format!(
        "host=127.0.0.1 port={} user=certuser dbname=postgres sslmode=require",
        s.cluster.port()
    );
    let snapshot = |dsn: String, env: Vec<(&'static str, String)>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_locktop"));
        cmd.args(["snapshot", "--format", "json", "--dsn", &dsn])
            .env_remove("PGSSLCERT")
            .env_remove("PGSSLKEY");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("snapshot")
    };
    // The reload takes a moment to reach new connections.
    common::wait_until("the server trusts the test's CA", || {
        let out = snapshot(format!("{dsn} sslcert={cert} sslkey={key}"), Vec::new());
        // Logged in: a poll, whatever it found (3 while another test holds the lease table).
        async move { out.status.code().is_some_and(|c| c != 1) }
    })
    .await;
    let out = snapshot(
        dsn.clone(),
        vec![("PGSSLCERT", cert.clone()), ("PGSSLKEY", key.clone())],
    );
    assert!(
        out.status.code().is_some_and(|c| c != 1),
        "PGSSLCERT and PGSSLKEY: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = snapshot(dsn, Vec::new());
    assert_eq!(out.status.code(), Some(1), "no certificate, no login");
}
