//! The `--record` file and its reader, for the incident review (`locktop replay`).
//!
//! JSON Lines: a header (target, interval, the rules in force), then one line per poll attempt with the poll's
//! snapshot — the model's input, so that a replay runs the same rules over the same history — its timing
//! (`poll_ms`), and the statuses and alerts the rules gave when it was recorded. To keep files small, the
//! per-profile aggregates are written only when they were refreshed, sessions only when a holder or a wait
//! refers to them, and query texts only with `--record-queries`. Each line is flushed whole, so a crash or a
//! full disk leaves at most one cut line, which the reader reports and stops at.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::rules::{self, Rules};
use crate::model::snapshot::ProfileSummary;
use crate::model::{History, Snapshot, Status};

/// The format's version, in the header.
pub const FORMAT: u32 = 1;

/// The first line of a recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Always [`FORMAT`]: tells a recording from any other JSON.
    pub locktop_recording: u32,
    pub version: String,
    /// `user@host:port/db`, never a password.
    pub target: String,
    pub interval_ms: u64,
    pub ttl_s: f64,
    pub escalate_after_s: f64,
    /// Older recordings have none: the default limit.
    #[serde(default = "default_prepared_after_s")]
    pub prepared_after_s: f64,
    /// Whether query texts were recorded.
    pub queries: bool,
    pub started_at: DateTime<Utc>,
}

impl Header {
    /// A header for unit tests: 1 s polls and the default rules.
    #[cfg(test)]
    pub(crate) fn for_tests(started_at: DateTime<Utc>) -> Self {
        Self {
            locktop_recording: FORMAT,
            version: "test".into(),
            target: "t".into(),
            interval_ms: 1000,
            ttl_s: 30.0,
            escalate_after_s: 90.0,
            prepared_after_s: 60.0,
            queries: false,
            started_at,
        }
    }

    /// The rules the recording was made with.
    pub fn rules(&self) -> Rules {
        let ms = |s: f64| chrono::Duration::milliseconds((s * 1000.0) as i64);
        Rules {
            ttl: ms(self.ttl_s),
            escalate_after: ms(self.escalate_after_s),
            prepared_after: ms(self.prepared_after_s),
            ..Rules::default()
        }
    }
}

fn default_prepared_after_s() -> f64 {
    Rules::default().prepared_after.num_milliseconds() as f64 / 1000.0
}

/// One poll attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Poll {
    /// What the poll read; `None` for a failed poll (a gap in the history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Snapshot>,
    /// Why the poll failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The aggregates were not refreshed by this poll: they are the previous line's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub summaries_unchanged: bool,
    /// Profiles that were not `ok` when recorded, with their status word.
    #[serde(default)]
    pub statuses: BTreeMap<String, String>,
    /// The escalation messages in force when recorded.
    #[serde(default)]
    pub alerts: Vec<String>,
}

impl Poll {
    /// The server time of the poll, for a successful one.
    pub fn at(&self) -> Option<DateTime<Utc>> {
        self.snapshot.as_ref().map(|s| s.server_now)
    }
}

/// Writes a recording as polls arrive.
#[derive(Debug)]
pub struct Recorder {
    out: std::io::BufWriter<std::fs::File>,
    path: std::path::PathBuf,
    queries: bool,
    rules: Rules,
    history: History,
    last_summaries: Option<Arc<Vec<ProfileSummary>>>,
    /// The file's size, and the size it may not pass (`--record-max-size`).
    size: u64,
    max_size: Option<u64>,
}

impl Recorder {
    /// Creates (mode 0600: lock rows and sessions are operational data) or appends to `path`, and writes the
    /// header. A symbolic link is refused (the file is opened with `O_NOFOLLOW`), and so is an existing file
    /// that is not a recording of the same target in this format, unless `mix` says to append anyway.
    pub fn create(path: &Path, header: &Header, mix: bool) -> std::io::Result<Self> {
        use std::io::BufRead as _;
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(path)
            .map_err(|e| {
                if e.raw_os_error() == Some(nix::libc::ELOOP) {
                    std::io::Error::other(
                        "it is a symbolic link: give the file itself (--record never follows a link)",
                    )
                } else {
                    e
                }
            })?;
        if file.metadata()?.len() > 0 && !mix {
            let mut first = String::new();
            std::io::BufReader::new(&file).read_line(&mut first)?;
            let refuse = |why: String| Err(std::io::Error::other(why));
            match serde_json::from_str::<Header>(first.trim_end()) {
                Ok(h) if h.locktop_recording != FORMAT => {
                    return refuse(format!(
                        "it is a recording in format {} (this locktop writes format {FORMAT}); give another \
                         file, or --record-append-other to add to it anyway",
                        h.locktop_recording
                    ));
                }
                Ok(h) if h.target != header.target => {
                    return refuse(format!(
                        "it is a recording of {}, not of {}; give another file, or --record-append-other to \
                         add to it anyway",
                        h.target, header.target
                    ));
                }
                Ok(_) => {}
                Err(_) => {
                    return refuse("it is not a locktop recording; give another file".to_owned());
                }
            }
        }
        Self::onto(file, path, header)
    }

    /// A recorder writing onto an open file, beginning with the header.
    pub fn onto(file: std::fs::File, path: &Path, header: &Header) -> std::io::Result<Self> {
        let size = file.metadata()?.len();
        let mut recorder = Self {
            out: std::io::BufWriter::new(file),
            path: path.to_owned(),
            queries: header.queries,
            rules: header.rules(),
            history: History::default(),
            last_summaries: None,
            size,
            max_size: None,
        };
        recorder.line(header)?;
        Ok(recorder)
    }

    /// Stops the recording, rather than write the line that would take the file past `max` bytes: a
    /// recording must never fill the disk of the host it watches from.
    #[must_use]
    pub fn with_max_size(mut self, max: Option<u64>) -> Self {
        self.max_size = max;
        self
    }

    /// Records a successful poll, with the statuses the rules give it now.
    pub fn poll(&mut self, snapshot: &Snapshot) -> std::io::Result<()> {
        rules::record(&mut self.history, snapshot, &self.rules);
        let board = rules::evaluate(snapshot, &self.history, &self.rules, snapshot.server_now);
        let statuses = board
            .profiles
            .iter()
            .filter(|p| p.status != Status::Ok)
            .map(|p| (p.profile.clone(), p.status.word().to_owned()))
            .collect();
        let alerts = board
            .alerts
            .iter()
            .map(|a| a.message().to_owned())
            .collect();
        let unchanged = self
            .last_summaries
            .as_ref()
            .is_some_and(|last| Arc::ptr_eq(last, &snapshot.summaries));
        self.last_summaries = Some(Arc::clone(&snapshot.summaries));
        let mut kept = snapshot.clone();
        if unchanged {
            kept.summaries = Arc::default();
        }
        kept.sessions = relevant_sessions(snapshot, self.queries);
        // Several databases: each part keeps its own relevant sessions, queries left out likewise.
        for part in &mut kept.parts {
            part.snapshot.sessions = relevant_sessions(&part.snapshot, self.queries);
        }
        self.line(&Poll {
            snapshot: Some(kept),
            error: None,
            summaries_unchanged: unchanged,
            statuses,
            alerts,
        })
    }

    /// Records a failed poll.
    pub fn failed(&mut self, error: &str) -> std::io::Result<()> {
        self.history.record_missed();
        self.line(&Poll {
            snapshot: None,
            error: Some(error.to_owned()),
            summaries_unchanged: false,
            statuses: BTreeMap::new(),
            alerts: Vec::new(),
        })
    }

    /// Where it writes, and how large the file is now.
    pub fn status(&self) -> crate::model::feed::RecordStatus {
        crate::model::feed::RecordStatus {
            path: self.path.display().to_string(),
            bytes: self.out.get_ref().metadata().map_or(0, |m| m.len()),
            stopped: None,
        }
    }

    fn line(&mut self, value: &impl Serialize) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(value)?;
        line.push(b'\n');
        let next = self.size + line.len() as u64;
        if let Some(max) = self.max_size.filter(|max| next > *max) {
            return Err(std::io::Error::other(format!(
                "it reached --record-max-size ({}); record to a new file to go on",
                human_bytes(max)
            )));
        }
        self.out.write_all(&line)?;
        self.out.flush()?;
        self.size = next;
        Ok(())
    }
}

/// A size as the option takes it: `512 MiB`, `1 GiB`.
fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{} GiB", n >> 30),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

/// A size given as a number of bytes with an optional unit: `K`/`KB`/`KiB`, `M`…, `G`… (all powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().map_err(|_| {
        format!("{text:?} is not a size: give a number and a unit, like 512MiB or 2GiB")
    })?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => {
            return Err(format!(
                "{other:?} is not a unit of size: use K, M, G or T (KiB, MiB…)"
            ));
        }
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// The sessions the rules can refer to: waiters, their blockers, and holders linked by application name.
fn relevant_sessions(snapshot: &Snapshot, queries: bool) -> Vec<crate::model::Session> {
    let owners: std::collections::HashSet<&str> = snapshot
        .leases
        .iter()
        .filter_map(|r| r.owner.as_deref())
        .chain(
            snapshot
                .summaries
                .iter()
                .filter_map(|s| s.sample_owner.as_deref()),
        )
        .collect();
    let pids: std::collections::HashSet<i32> = snapshot
        .waits
        .iter()
        .flat_map(|w| std::iter::once(w.pid).chain(w.blocked_by.iter().copied()))
        .collect();
    snapshot
        .sessions
        .iter()
        .filter(|s| {
            pids.contains(&s.pid) || s.application.as_deref().is_some_and(|a| owners.contains(a))
        })
        .map(|s| {
            let mut s = s.clone();
            if !queries {
                s.query = None;
            }
            s
        })
        .collect()
}

/// Where and why a recording stops early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// 1-based line number of the first line that could not be read.
    pub line: usize,
    /// Where that line begins in the file, in bytes (for `tail -c +N`, `dd skip=` or a hex viewer).
    pub offset: u64,
    pub reason: String,
}

/// A recording as read back.
#[derive(Debug, Clone)]
pub struct Recording {
    pub header: Header,
    pub polls: Vec<Poll>,
    /// Set when the file is cut or corrupt: the polls before it are all there is.
    pub damage: Option<Damage>,
}

/// Reads a recording; a damaged line ends it (and is reported), a file that is not a recording is an error.
pub fn read(input: impl BufRead) -> Result<Recording, String> {
    let mut lines = input.split(b'\n');
    let first = lines
        .next()
        .ok_or_else(|| "the file is empty".to_owned())?
        .map_err(|e| e.to_string())?;
    // Where the next line begins.
    let mut offset = first.len() as u64 + 1;
    let header: Header = serde_json::from_slice(&first)
        .map_err(|e| format!("not a locktop recording (line 1: {e})"))?;
    if header.locktop_recording != FORMAT {
        return Err(format!(
            "recording format {} is not supported (this locktop reads format {FORMAT})",
            header.locktop_recording
        ));
    }
    let mut polls: Vec<Poll> = Vec::new();
    let mut damage = None;
    let mut summaries: Arc<Vec<ProfileSummary>> = Arc::default();
    for (i, line) in lines.enumerate() {
        let number = i + 2;
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                damage = Some(Damage {
                    line: number,
                    offset,
                    reason: e.to_string(),
                });
                break;
            }
        };
        let start = offset;
        offset += line.len() as u64 + 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Poll>(&line) {
            Ok(mut poll) => {
                if let Some(s) = poll.snapshot.as_mut() {
                    if poll.summaries_unchanged {
                        s.summaries = Arc::clone(&summaries);
                    } else {
                        summaries = Arc::clone(&s.summaries);
                    }
                }
                polls.push(poll);
            }
            Err(e) => {
                let reason = if e.is_eof() {
                    "the line is cut short".to_owned()
                } else {
                    e.to_string()
                };
                damage = Some(Damage {
                    line: number,
                    offset: start,
                    reason,
                });
                break;
            }
        }
    }
    Ok(Recording {
        header,
        polls,
        damage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::snapshot::Part;
    use crate::model::{LockWait, Session};

    #[test]
    fn the_sessions_of_every_database_are_filtered_and_lose_their_queries() {
        let now = Utc::now();
        let mut one = Snapshot::at(now);
        let session = |pid, app: &str| Session {
            pid,
            application: Some(app.into()),
            user: None,
            client_addr: None,
            state: None,
            query: Some("SELECT secret".into()),
            xact_start: None,
            state_change: None,
            wait_event: None,
            backend_type: None,
            leader_pid: None,
        };
        one.sessions = vec![session(7, "waiter"), session(8, "bystander")];
        one.waits = vec![LockWait {
            pid: 7,
            blocked_by: Vec::new(),
            locktype: "advisory".into(),
            mode: "ExclusiveLock".into(),
            relation: None,
            relation_oid: None,
            tuple: None,
            advisory_key: None,
            transactionid: None,
            waitstart: None,
            lease_row: None,
            waitstart_approx: false,
            on_lease_table: false,
        }];
        let merged = Snapshot::merged(vec![Part::new("east", &one, None)], now);
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("r.jsonl");
        let header = Header::for_tests(now);
        let mut recorder = Recorder::create(&path, &header, false).expect("create");
        recorder.poll(&merged).expect("poll");
        drop(recorder);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(!text.contains("secret"), "{text}");
        assert!(!text.contains("bystander"), "{text}");
        let back = read(std::io::BufReader::new(text.as_bytes())).expect("parses");
        let part = &back.polls[0].snapshot.as_ref().expect("snapshot").parts[0];
        assert_eq!(part.snapshot.sessions.len(), 1, "the waiter is kept");
    }
}
