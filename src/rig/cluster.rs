//! A throwaway PostgreSQL cluster: `initdb` in a temp dir, served on a Unix socket, for the tests, the
//! benchmarks and `locktop demo`.
//!
//! When the process is root the server runs as the `postgres` user (PostgreSQL refuses to run as root).
//! Cleanup does not rely on `Drop` alone: a watchdog shell holds a pipe from this process and, when the pipe
//! closes — on a normal exit, a panic, a signal, or a kill -9 — stops the server and removes the directory.
//! A cluster kept in a `static` (one per test binary) is therefore cleaned up when the test binary exits.

use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// Why the cluster could not start. One line, with the fix.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "no PostgreSQL server binaries found (looked in LOCKTOP_PG_BINDIR, pg_config --bindir, PATH and /usr/lib/postgresql/*/bin); install them (Debian: apt-get install postgresql), set LOCKTOP_PG_BINDIR to their directory, or set LOCKTOP_TEST_DATABASE_URL"
    )]
    NoBinaries,
    #[error(
        "the PostgreSQL bin dir {dir} has no {program}; LOCKTOP_PG_BINDIR must hold initdb, pg_ctl and postgres (and pg_basebackup for a standby; e.g. `bash .ci/embedded-postgres 13` prints such a directory)"
    )]
    MissingProgram { dir: String, program: &'static str },
    #[error(
        "running as root, but there is no 'postgres' user to run the server as; create one or run as a normal user"
    )]
    NoPostgresUser,
    #[error("{step} failed: {detail}")]
    Step { step: &'static str, detail: String },
}

/// Server settings and options of a throwaway cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Also listen on 127.0.0.1 (for tests that put a proxy between locktop and the server).
    pub tcp: bool,
    /// Extra `postgresql.conf` settings, e.g. `("log_statement", "all")`.
    pub settings: Vec<(String, String)>,
    /// `pg_hba.conf` lines put before the default `trust` ones, e.g. to make a role log in with a password.
    pub hba: Vec<String>,
    /// Serve TLS with a fresh self-signed certificate for `localhost` (made with the `openssl` command).
    pub tls: bool,
}

/// A running throwaway cluster. Dropping it stops the server and removes its files.
#[derive(Debug)]
pub struct Cluster {
    root: PathBuf,
    port: u16,
    tcp: bool,
    bindir: PathBuf,
    /// The uid and gid the server runs as, when this process is root.
    run_as: Option<(u32, u32)>,
    watchdog: Option<(Child, ChildStdin)>,
    /// Set by `keep`: the files outlive this process.
    kept: bool,
}

impl Cluster {
    /// Creates and starts a cluster; returns once it accepts connections.
    pub fn start(options: &ClusterOptions) -> Result<Self, ClusterError> {
        let bindir = server_bindir()?;
        let run_as = if is_root() {
            Some(postgres_user().ok_or(ClusterError::NoPostgresUser)?)
        } else {
            None
        };
        let mut cluster = Self::empty(bindir, run_as)?;
        cluster.tcp = options.tcp;
        let data = cluster.root.join("data");

        let mut initdb = cluster.command("initdb", run_as);
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        run(&mut initdb, "initdb")?;

        cluster.configure_and_start(options)?;
        Ok(cluster)
    }

    /// A hot standby of `primary`, made with `pg_basebackup -R` (so it streams from it) and started on a
    /// port and socket of its own; returns once it accepts read-only connections.
    pub fn standby_of(primary: &Self) -> Result<Self, ClusterError> {
        if !primary.bindir.join("pg_basebackup").is_file() {
            return Err(ClusterError::MissingProgram {
                dir: primary.bindir.display().to_string(),
                program: "pg_basebackup",
            });
        }
        let mut standby = Self::empty(primary.bindir.clone(), primary.run_as)?;
        let mut basebackup = standby.command("pg_basebackup", standby.run_as);
        basebackup
            .arg("-h")
            .arg(&primary.root)
            .arg("-p")
            .arg(primary.port.to_string())
            .args(["-U", "postgres", "-R", "-X", "stream", "-D"])
            .arg(standby.root.join("data"));
        run(&mut basebackup, "pg_basebackup")?;
        standby.configure_and_start(&ClusterOptions::default())?;
        Ok(standby)
    }

    /// A cluster value for a fresh temp dir, owned by the server's user; nothing runs yet.
    fn empty(bindir: PathBuf, run_as: Option<(u32, u32)>) -> Result<Self, ClusterError> {
        let root = tempfile::Builder::new()
            .prefix("locktop-pg-")
            .tempdir()
            .map_err(|e| step("creating the temp dir", &e))?
            .keep();
        let cluster = Self {
            root: root.clone(),
            port: free_port(),
            tcp: false,
            bindir,
            run_as,
            watchdog: None,
            kept: false,
        };
        // From here on, a failure still removes the directory (the watchdog, or Drop without one).
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&root, Some(uid), Some(gid))
                .map_err(|e| step("chown of the temp dir", &e))?;
        }
        Ok(cluster)
    }

    /// Appends this cluster's settings to its `postgresql.conf` (later lines win over what a base backup
    /// copied), starts the server and waits until it accepts connections.
    fn configure_and_start(&mut self, options: &ClusterOptions) -> Result<(), ClusterError> {
        let data = self.root.join("data");
        let run_as = self.run_as;
        let mut conf = String::new();
        if options.tls {
            let mut openssl = Command::new("openssl");
            if let Some((uid, gid)) = run_as {
                openssl.uid(uid).gid(gid);
            }
            openssl.current_dir(&data).args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.crt",
            ]);
            run(&mut openssl, "openssl (a self-signed certificate)")?;
            let _ = writeln!(conf, "ssl = on");
        }
        let defaults = [
            (
                "listen_addresses",
                if options.tcp { "'127.0.0.1'" } else { "''" }.to_owned(),
            ),
            ("port", self.port.to_string()),
            (
                "unix_socket_directories",
                format!("'{}'", self.root.display()),
            ),
            ("unix_socket_permissions", "0777".to_owned()),
            ("fsync", "off".to_owned()),
            ("synchronous_commit", "off".to_owned()),
            ("full_page_writes", "off".to_owned()),
            ("max_connections", "300".to_owned()),
            ("max_locks_per_transaction", "256".to_owned()),
            ("shared_buffers", "64MB".to_owned()),
            ("log_min_messages", "warning".to_owned()),
        ];
        for (k, v) in defaults.iter().map(|(k, v)| (*k, v.clone())).chain(
            options
                .settings
                .iter()
                .map(|(k, v)| (k.as_str(), format!("'{}'", v.replace('\'', "''")))),
        ) {
            let _ = writeln!(conf, "{k} = {v}");
        }
        fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut f| f.write_all(conf.as_bytes()))
            .map_err(|e| step("writing postgresql.conf", &e))?;

        if !options.hba.is_empty() {
            let hba = data.join("pg_hba.conf");
            let defaults = fs::read_to_string(&hba).map_err(|e| step("reading pg_hba.conf", &e))?;
            fs::write(&hba, format!("{}\n{defaults}", options.hba.join("\n")))
                .map_err(|e| step("writing pg_hba.conf", &e))?;
        }
        let server = self.spawn_server()?;
        self.watchdog = Some(spawn_watchdog(&self.root, server.id())?);
        self.wait_ready(server)
    }

    /// Starts `postgres` on the data directory, its log appended to `server.log`.
    fn spawn_server(&self) -> Result<Child, ClusterError> {
        let log = self.root.join("server.log");
        let logfile = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| step("opening the server log", &e))?;
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(&log, Some(uid), Some(gid))
                .map_err(|e| step("chown of the log", &e))?;
        }
        let mut postgres = self.command("postgres", self.run_as);
        postgres
            .arg("-D")
            .arg(self.root.join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(logfile))
            // Out of the terminal's foreground group: a Ctrl-C meant for locktop must not stop the server early.
            .process_group(0);
        postgres.spawn().map_err(|e| step("starting postgres", &e))
    }

    /// Stops the server (fast shutdown: sessions are terminated) and keeps its files, for tests of a database
    /// that goes away; [`Self::start_server`] brings it back on the same port.
    pub fn stop_server(&self) -> Result<(), ClusterError> {
        let mut stop = self.command("pg_ctl", self.run_as);
        stop.arg("-D")
            .arg(self.root.join("data"))
            .args(["stop", "-m", "fast", "-w"]);
        run(&mut stop, "pg_ctl stop")
    }

    /// Starts the server again after [`Self::stop_server`]; returns once it accepts connections.
    pub fn start_server(&self) -> Result<(), ClusterError> {
        let server = self.spawn_server()?;
        self.wait_ready(server)
    }

    fn command(&self, program: &str, run_as: Option<(u32, u32)>) -> Command {
        let mut c = Command::new(self.bindir.join(program));
        if let Some((uid, gid)) = run_as {
            c.uid(uid).gid(gid).current_dir(&self.root);
        }
        c
    }

    fn wait_ready(&self, mut server: Child) -> Result<(), ClusterError> {
        let log = self.root.join("server.log");
        let deadline = Instant::now() + Duration::from_mins(1);
        let socket = self.root.join(format!(".s.PGSQL.{}", self.port));
        loop {
            if let Ok(Some(status)) = server.try_wait() {
                let tail = fs::read_to_string(log).unwrap_or_default();
                let last = tail.lines().last().unwrap_or("no log").to_owned();
                return Err(ClusterError::Step {
                    step: "postgres",
                    detail: format!("exited with {status}: {last}"),
                });
            }
            if socket.exists() && self.postmaster_ready() {
                // The watchdog owns the server's lifetime from here on; reap it in the background.
                std::thread::spawn(move || server.wait());
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ClusterError::Step {
                    step: "postgres",
                    detail: "not ready within 60 s".into(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the postmaster says it accepts connections: the status line of `postmaster.pid` (its eighth
    /// line, PostgreSQL 10 and later) reads `ready`, or `standby` for a hot standby. Needs no `pg_isready`,
    /// which not every bin dir has.
    fn postmaster_ready(&self) -> bool {
        fs::read_to_string(self.root.join("data").join("postmaster.pid")).is_ok_and(|pid| {
            pid.lines()
                .nth(7)
                .is_some_and(|l| matches!(l.trim(), "ready" | "standby"))
        })
    }

    /// The URL of a database on this cluster, as the superuser `postgres`, over the Unix socket.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@localhost:{}/{database}?host={}",
            self.port,
            self.root.display()
        )
    }

    /// The URL of a database over TCP on 127.0.0.1 (only when started with `tcp`).
    pub fn tcp_url(&self, database: &str) -> Option<String> {
        self.tcp
            .then(|| format!("postgres://postgres@127.0.0.1:{}/{database}", self.port))
    }

    /// The directory holding the data, the socket and the server log.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The server's port (TCP, and the socket's name).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Leaves the server running and its files in place after this process exits (`demo --keep`); returns the
    /// command that stops it later.
    pub fn keep(&mut self) -> String {
        self.kept = true;
        if let Some((mut child, mut stdin)) = self.watchdog.take() {
            let _ = stdin.write_all(b"keep\n");
            drop(stdin);
            let _ = child.wait();
        }
        let stop = format!(
            "{} -D {} stop",
            self.bindir.join("pg_ctl").display(),
            self.root.join("data").display()
        );
        let stop = if is_root() {
            format!("su postgres -s /bin/sh -c '{stop}'")
        } else {
            stop
        };
        format!("{stop} && rm -rf {}", self.root.display())
    }

    /// Stops the server and removes the directory, waiting until both are done.
    pub fn stop(&mut self) {
        if let Some((mut child, stdin)) = self.watchdog.take() {
            drop(stdin);
            let _ = child.wait();
        } else if !self.kept {
            // Failed before the server started: nothing runs, only files to remove.
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A shell that waits for its stdin to close, then stops the server (immediate shutdown) and removes the
/// directory. Its stdin is the only copy of the pipe (std opens pipes close-on-exec), so it closes exactly when
/// this process lets go of it or dies. The server's pid is read from its pid file at that moment, so a server
/// restarted by a test is the one stopped; before the file exists, the first server's pid is used.
fn spawn_watchdog(root: &Path, first_pid: u32) -> Result<(Child, ChildStdin), ClusterError> {
    // A line "keep" (from `Cluster::keep`) means: leave the server running and its files in place.
    let script = r#"read what
[ "$what" = keep ] && exit 0
pid=$(head -n 1 "$1/data/postmaster.pid" 2>/dev/null)
[ -n "$pid" ] || pid=$2
if [ -n "$pid" ]; then
  kill -QUIT "$pid" 2>/dev/null
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
  kill -KILL "$pid" 2>/dev/null
fi
rm -rf "$1""#;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("locktop-watchdog")
        .arg(root)
        .arg(first_pid.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0) // a Ctrl-C to the terminal's foreground group must not kill it before it cleans up
        .spawn()
        .map_err(|e| step("starting the cleanup watchdog", &e))?;
    let stdin = child.stdin.take().ok_or_else(|| ClusterError::Step {
        step: "starting the cleanup watchdog",
        detail: "no stdin pipe".into(),
    })?;
    Ok((child, stdin))
}

fn step(step: &'static str, e: &dyn std::fmt::Display) -> ClusterError {
    ClusterError::Step {
        step,
        detail: e.to_string(),
    }
}

fn run(cmd: &mut Command, what: &'static str) -> Result<(), ClusterError> {
    let out = cmd.output().map_err(|e| step(what, &e))?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(ClusterError::Step {
            step: what,
            detail: err.lines().last().unwrap_or_default().to_owned(),
        })
    }
}

fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The uid and gid of the `postgres` user, from /etc/passwd.
fn postgres_user() -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next()? == "postgres").then_some(())?;
        let uid = f.nth(1)?.parse().ok()?;
        let gid = f.next()?.parse().ok()?;
        Some((uid, gid))
    })
}

/// A port nobody listens on now (it names the socket file too).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(54329, |a| a.port())
}

/// The programs a throwaway cluster runs.
const SERVER_PROGRAMS: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// The server binaries to use: `LOCKTOP_PG_BINDIR` before any lookup (a directory that lacks one of the
/// programs is an error at once, naming it), else [`find_bindir`].
pub fn server_bindir() -> Result<PathBuf, ClusterError> {
    match std::env::var_os("LOCKTOP_PG_BINDIR").filter(|d| !d.is_empty()) {
        Some(dir) => checked_bindir(PathBuf::from(dir)),
        None => find_bindir().ok_or(ClusterError::NoBinaries),
    }
}

/// `dir` when it holds every server program, else which one it lacks.
fn checked_bindir(dir: PathBuf) -> Result<PathBuf, ClusterError> {
    match SERVER_PROGRAMS.iter().find(|p| !dir.join(p).is_file()) {
        Some(program) => Err(ClusterError::MissingProgram {
            dir: dir.display().to_string(),
            program,
        }),
        None => Ok(dir),
    }
}

/// The directory of `initdb` and `postgres`: `pg_config --bindir`, then PATH, then the newest
/// /usr/lib/postgresql/*/bin.
pub fn find_bindir() -> Option<PathBuf> {
    let has_server = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let from_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .filter(|d| has_server(d))
        .filter_map(|d| {
            fs::canonicalize(d.join("initdb"))
                .ok()?
                .parent()
                .map(Path::to_path_buf)
        });
    let mut debian: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .collect();
    debian.sort();
    from_pg_config
        .into_iter()
        .chain(from_path)
        .chain(debian.into_iter().rev().map(|(_, p)| p))
        .find(|d| has_server(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bin_dir_without_a_server_program_is_refused_naming_it() {
        let dir = tempfile::tempdir().expect("dir");
        for program in ["initdb", "postgres"] {
            fs::write(dir.path().join(program), "").expect("write");
        }
        let e = checked_bindir(dir.path().to_owned()).expect_err("no pg_ctl");
        assert!(e.to_string().contains("has no pg_ctl"), "{e}");
        fs::write(dir.path().join("pg_ctl"), "").expect("write");
        assert_eq!(
            checked_bindir(dir.path().to_owned()).expect("complete"),
            dir.path()
        );
    }

    #[test]
    fn readiness_is_read_from_the_postmaster_pid_status_line() {
        let cluster = Cluster::empty(PathBuf::from("/nonexistent"), None).expect("dir");
        let data = cluster.root.join("data");
        fs::create_dir(&data).expect("data");
        let pid_file = |status: &str| {
            fs::write(
                data.join("postmaster.pid"),
                format!("1\n{}\n0\n5432\n/tmp\n*\n0 0\n{status}\n", data.display()),
            )
            .expect("write");
        };
        assert!(!cluster.postmaster_ready(), "no pid file yet");
        pid_file("starting");
        assert!(!cluster.postmaster_ready());
        pid_file("ready   ");
        assert!(cluster.postmaster_ready());
        pid_file("standby ");
        assert!(
            cluster.postmaster_ready(),
            "a hot standby accepts connections"
        );
    }
}
