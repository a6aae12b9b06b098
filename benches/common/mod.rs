//! What the benchmarks share: what they read about a process from `/proc` (its memory and its CPU time), and
//! a plain session for setting up their data.

pub mod scale;

/// A `/proc/PID/status` field in KiB, such as `VmRSS:` or `VmHWM:`; `pid` may be `self`.
pub fn status_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// User plus system CPU time of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'; utime and stime are
    // the 12th and 13th of them, in ticks of USER_HZ (100 on Linux).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field(11) + field(12)) as f64 / 100.0
}

/// A monitor as the dashboard polls (1 s interval, summary mode, the default mapping and TTL).
pub async fn dashboard_monitor(target: &locktop::source::Target) -> locktop::source::Monitor {
    let limits = locktop::source::SessionLimits::for_interval(std::time::Duration::from_secs(1));
    let mut monitor = locktop::source::Monitor::connect(
        target,
        &locktop::config::LeaseMapping::default(),
        limits,
    )
    .await
    .expect("monitor");
    monitor.set_detail(locktop::source::LeaseDetail::Summary {
        ttl: std::time::Duration::from_secs(30),
        focus: Vec::new(),
    });
    monitor
}

/// A plain session (the benchmark's own, for setting up data).
pub async fn connect(url: &str) -> sqlx::PgConnection {
    use sqlx::ConnectOptions as _;
    url.parse::<sqlx::postgres::PgConnectOptions>()
        .expect("url")
        .disable_statement_logging()
        .connect()
        .await
        .expect("connect")
}

/// Runs SQL (several statements allowed).
pub async fn exec(c: &mut sqlx::PgConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(c)
        .await
        .expect(sql);
}

/// The runtime of a benchmark's database work: two workers, as the machines here have two cores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A throwaway cluster with the reference schema and the demo's workload on it (every incident scenario beside
/// `profiles` calm ones, `workers` contending, real-time TTL 30 s): the cluster, its URL, the runtime the
/// workload runs on and the workload's sessions (both kept alive by the caller).
pub fn demo_scene(
    profiles: usize,
    workers: usize,
) -> (
    locktop::rig::cluster::Cluster,
    String,
    tokio::runtime::Runtime,
    tokio::task::JoinSet<()>,
) {
    use locktop::rig::demo::{self, Scenario, Workload};
    let cluster =
        locktop::rig::cluster::Cluster::start(&locktop::rig::cluster::ClusterOptions::default())
            .expect("cluster");
    let url = cluster.url("postgres");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let sessions = rt.block_on(async {
        let mut admin = demo::admin(&url).await.expect("admin");
        sqlx::raw_sql(include_str!("../../sql/reference_schema.sql"))
            .execute(&mut admin)
            .await
            .expect("schema");
        demo::start(&Workload {
            url: url.clone(),
            scenarios: Scenario::ALL.to_vec(),
            ttl: std::time::Duration::from_secs(30),
            profiles,
            workers,
            stats: demo::ServiceStats::new(std::time::Duration::from_secs(30)),
        })
        .await
        .expect("workload")
    });
    (cluster, url, rt, sessions)
}

/// Counts what a terminal would receive.
#[derive(Clone, Default)]
pub struct Counting(pub std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl std::io::Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .fetch_add(buf.len(), std::sync::atomic::Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
