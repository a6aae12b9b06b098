//! What a poll costs through a transaction-mode pooler, beside the same poll over a direct TCP session.
//!
//! `cargo bench --bench pooler` starts a throwaway cluster on 127.0.0.1 and a PgBouncer in transaction mode in
//! front of it (Debian's `pgbouncer`), loads 1,000 and 10,000 lease rows with one backend waiting for a lock,
//! and prints the client-side time of 200 polls in summary mode each way: median, p95, max. Behind the pooler a
//! poll is one simple-protocol round trip (its statements written out, text results); directly it is several
//! prepared statements.

#[allow(dead_code)] // each benchmark uses only some of it
mod common;
#[allow(dead_code)] // the tests' helper: its log is for their failure messages
#[path = "../tests/common/pgbouncer.rs"]
mod pgbouncer;

use std::time::Instant;

use common::{connect, exec};
use locktop::rig::cluster::{Cluster, ClusterOptions};
use locktop::source::{Pooler, Target};

fn main() {
    common::runtime().block_on(async {
        let options = ClusterOptions {
            tcp: true,
            ..ClusterOptions::default()
        };
        let cluster = Cluster::start(&options).expect("cluster");
        let url = cluster.tcp_url("postgres").expect("tcp");
        let addr = format!("127.0.0.1:{}", cluster.port()).parse().expect("addr");
        let bouncer = pgbouncer::PgBouncer::start(addr, 2);
        let pooled = format!("postgres://postgres@{}/postgres", bouncer.addr);
        let mut admin = connect(&url).await;
        exec(&mut admin, include_str!("../sql/reference_schema.sql")).await;
        let mut holder = connect(&url).await;
        exec(&mut holder, "SELECT pg_advisory_lock(1)").await;
        let mut waiter = connect(&url).await;
        let waiting = tokio::spawn(async move {
            exec(&mut waiter, "SELECT pg_advisory_lock(1)").await;
        });
        println!("poll, summary mode, one backend waiting: direct TCP vs PgBouncer (transaction mode, pool 2)");
        println!(
            "{:>7} {:>12} | {:>9} {:>9} {:>9}",
            "rows", "path", "median", "p95", "max"
        );
        for rows in [1_000_i64, 10_000] {
            exec(&mut admin, "TRUNCATE entry_locks").await;
            exec(
                &mut admin,
                &format!(
                    "INSERT INTO entry_locks \
                     SELECT 'profile-' || (g / 10), 'SYM' || (g % 10), 'worker-' || g, now(), \
                            now() + interval '25 s', CASE WHEN (g / 10) % 20 = 0 THEN 3 ELSE 0 END, \
                            CASE WHEN (g / 10) % 20 = 0 THEN now() - interval '60 s' END, \
                            CASE WHEN (g / 10) % 20 = 0 THEN now() - interval '1 s' END \
                     FROM generate_series(1, {rows}) g; ANALYZE entry_locks"
                ),
            )
            .await;
            for (path, dsn, pooler) in [
                ("direct", &url, Pooler::None),
                // The pooler's protocol without the pooler: what the one-round-trip form itself costs.
                ("simple", &url, Pooler::Transaction),
                ("pgbouncer", &pooled, Pooler::Transaction),
            ] {
                let (median, p95, max) = measure(dsn, pooler).await;
                println!("{rows:>7} {path:>12} | {median:>7.2}ms {p95:>7.2}ms {max:>7.2}ms");
            }
        }
        waiting.abort();
        drop(bouncer);
        drop(cluster);
    });
}

/// 200 polls after a warm-up one: median, p95 and max in milliseconds.
async fn measure(dsn: &str, pooler: Pooler) -> (f64, f64, f64) {
    let target = Target::new(Some(dsn)).expect("dsn").with_pooler(pooler);
    let mut monitor = common::dashboard_monitor(&target).await;
    monitor.poll().await.expect("first poll");
    let mut times = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        let s = monitor.poll().await.expect("poll");
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(!s.waits.is_empty() && !s.summaries.is_empty());
    }
    monitor.close().await;
    times.sort_by(f64::total_cmp);
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.95), at(1.0))
}
