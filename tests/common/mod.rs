//! Shared by the integration tests: one throwaway PostgreSQL cluster per test binary (or the server named by
//! `LOCKTOP_TEST_DATABASE_URL`), one fresh database per test, made from a template holding the reference schema.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use locktop::rig::cluster::{Cluster, ClusterOptions};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

pub mod pgbouncer;
pub mod proxy;
pub mod pty;

pub const REFERENCE_SCHEMA: &str = include_str!("../../sql/reference_schema.sql");
const TEMPLATE: &str = "locktop_template";

/// Where the tests' databases live.
pub struct Server {
    /// Kept alive for the whole test binary; its watchdog removes it when the binary exits.
    cluster: Option<Cluster>,
    /// URL of the server with `{db}` where the database name goes.
    pattern: String,
}

impl Server {
    pub fn url(&self, db: &str) -> String {
        self.pattern.replace("{db}", db)
    }
}

static SERVER: OnceLock<Server> = OnceLock::new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The shared server, started on first use; the template database is created once.
pub fn server() -> &'static Server {
    SERVER.get_or_init(|| {
        let (cluster, pattern) = match std::env::var("LOCKTOP_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => (None, database_pattern(&url)),
            _ => {
                let options = ClusterOptions {
                    tcp: true,
                    // Prepared transactions are what some tests make (an orphaned one blocks workers).
                    settings: vec![("max_prepared_transactions".into(), "10".into())],
                    ..ClusterOptions::default()
                };
                let cluster = Cluster::start(&options).unwrap_or_else(|e| panic!("{e}"));
                let pattern = cluster.url("{db}");
                (Some(cluster), pattern)
            }
        };
        let server = Server { cluster, pattern };
        let admin = server.url("postgres");
        let template = server.url(TEMPLATE);
        // The tests run inside tokio runtimes; make the template on a thread with a runtime of its own.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(make_template(&admin, &template));
        })
        .join()
        .expect("template created");
        server
    })
}

fn database_pattern(url: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let cut = base
        .rfind('/')
        .filter(|&i| i > "postgres://".len())
        .unwrap_or(base.len());
    let mut pattern = format!("{}/{{db}}", &base[..cut]);
    if let Some(q) = query {
        pattern.push('?');
        pattern.push_str(q);
    }
    pattern
}

async fn make_template(admin_url: &str, template_url: &str) {
    let mut admin = connect(admin_url).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {TEMPLATE}"
    )))
    .execute(&mut admin)
    .await
    .expect("drop old template");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {TEMPLATE}")))
        .execute(&mut admin)
        .await
        .expect("create template");
    let mut t = connect(template_url).await;
    sqlx::raw_sql(REFERENCE_SCHEMA)
        .execute(&mut t)
        .await
        .expect("load reference schema");
    t.close().await.expect("close template");
}

pub async fn connect(url: &str) -> PgConnection {
    connect_as(url, "test").await
}

/// A session with an `application_name` (which workers set to their owner token to be linked).
pub async fn connect_as(url: &str, application: &str) -> PgConnection {
    let options: PgConnectOptions = url
        .parse::<PgConnectOptions>()
        .expect("url")
        .application_name(application);
    options
        .disable_statement_logging()
        .connect()
        .await
        .expect("connect")
}

/// The server's TCP address for a database URL (the harness cluster also listens on 127.0.0.1).
pub fn tcp_upstream(db_url: &str) -> std::net::SocketAddr {
    let options: PgConnectOptions = db_url.parse().expect("url");
    let host = if options.get_host().starts_with('/') || options.get_socket().is_some() {
        "127.0.0.1"
    } else {
        options.get_host()
    };
    std::net::ToSocketAddrs::to_socket_addrs(&(host, options.get_port()))
        .expect("resolve")
        .next()
        .expect("an address")
}

/// The URL of the same database and user through another address (a proxy in front of the server).
pub fn url_via(db_url: &str, via: std::net::SocketAddr) -> String {
    let options: PgConnectOptions = db_url.parse().expect("url");
    format!(
        "postgres://{}@{via}/{}",
        options.get_username(),
        options.get_database().unwrap_or("postgres")
    )
}

/// A fresh database with the reference schema, for one test: its URL (it derefs to `&str`). On a server given
/// by `LOCKTOP_TEST_DATABASE_URL` the database is dropped when the test ends (the harness's own cluster is
/// removed whole when the test binary exits).
pub async fn database(test: &str) -> TestDb {
    let server = server();
    let name = format!("t_{}_{}", test, COUNTER.fetch_add(1, Ordering::SeqCst));
    let mut admin = connect(&server.url("postgres")).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE {name} TEMPLATE {TEMPLATE}"
    )))
    .execute(&mut admin)
    .await
    .expect("create test database");
    admin.close().await.ok();
    TestDb {
        url: server.url(&name),
        drop_on: server
            .cluster
            .is_none()
            .then(|| (server.url("postgres"), name)),
    }
}

/// A test's database (see [`database`]).
#[derive(Debug)]
pub struct TestDb {
    url: String,
    /// The admin URL and the name, when the database must be dropped at the end of the test.
    drop_on: Option<(String, String)>,
}

impl std::ops::Deref for TestDb {
    type Target = str;
    fn deref(&self) -> &str {
        &self.url
    }
}

impl std::fmt::Display for TestDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.drop_on.take() else {
            return;
        };
        // Tests run inside tokio runtimes: drop it from a thread with a runtime of its own. FORCE ends the
        // sessions the test left open (PostgreSQL 13 and later).
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let mut admin = connect(&admin).await;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await
            })
        })
        .join();
        assert!(
            matches!(dropped, Ok(Ok(_))) || std::thread::panicking(),
            "could not drop the test database: {dropped:?}"
        );
    }
}

/// Runs SQL (several statements allowed) on a connection.
pub async fn exec(conn: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Waits until `check` holds, polling; fails the test with `what` after 20 s.
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `n` backends wait for a lock in this database.
pub async fn wait_for_lock_waiters(url: &str, n: i64) {
    let mut probe = connect(url).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
        )
        .fetch_one(&mut probe)
        .await
        .expect("count waiters");
        if waiting >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {n} lock waiters (have {waiting})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A login role that may read the lease table and nothing more (no `pg_monitor`); the URL of `url`'s
/// database as that role.
pub async fn reader_role(url: &str, role: &str) -> String {
    let mut admin = connect(url).await;
    exec(
        &mut admin,
        &format!(
            "DO $$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$; \
             GRANT SELECT ON entry_locks TO {role}"
        ),
    )
    .await;
    let as_role = url.replacen("postgres://postgres@", &format!("postgres://{role}@"), 1);
    assert_ne!(as_role, url, "the harness URL names its user");
    as_role
}

/// The backend pid of a session.
pub async fn pid(conn: &mut PgConnection) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await
        .expect("pid")
}

/// Takes a lease row as `owner` (the session's application name too); returns the session.
pub async fn acquire(url: &str, profile: &str, owner: &str) -> PgConnection {
    let mut conn = connect_as(url, owner).await;
    let ok: bool = sqlx::query_scalar("SELECT fn_try_acquire_entry_lock_row($1, 'BTC', $2)")
        .bind(profile)
        .bind(owner)
        .fetch_one(&mut conn)
        .await
        .expect("acquire");
    assert!(ok, "{owner} takes {profile}");
    conn
}

/// A session holding advisory lock `key` and another waiting for it with `waiter_sql` (which must ask for the
/// same key); returns once the wait is visible.
pub struct AdvisoryWait {
    holder: PgConnection,
    waiter: tokio::task::JoinHandle<PgConnection>,
}

impl AdvisoryWait {
    pub async fn start(url: &str, key: i64, holder_app: &str, waiter_sql: &str) -> Self {
        let mut holder = connect_as(url, holder_app).await;
        exec(&mut holder, &format!("SELECT pg_advisory_lock({key})")).await;
        let mut conn = connect_as(url, "waiter").await;
        let sql = waiter_sql.to_owned();
        let waiter = tokio::spawn(async move {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await;
            conn
        });
        wait_for_lock_waiters(url, 1).await;
        Self { holder, waiter }
    }

    /// Lets the waiter through and waits for it.
    pub async fn release(mut self) {
        exec(&mut self.holder, "SELECT pg_advisory_unlock_all()").await;
        drop(self.waiter.await);
    }
}

/// A monitor on `url` with the lease mapping and limits given; a test that expects it to connect.
pub async fn monitor(
    url: &str,
    mapping: &locktop::config::LeaseMapping,
    limits: locktop::source::SessionLimits,
) -> locktop::source::Monitor {
    let target = locktop::source::Target::new(Some(url)).expect("url");
    locktop::source::Monitor::connect(&target, mapping, limits)
        .await
        .expect("the monitor connects")
}
