//! The `--record` file and its reader, for the incident review (`locktop replay`).
//!
//! JSON Lines: a header (target, interval, the rules in force), then one line per poll attempt with the poll's
//! snapshot — the model's input, so that a replay runs the same rules over the same history — its timing
//! (`poll_ms`), and the statuses and alerts the rules gave when it was recorded. Each line is flushed whole,
//! so a crash or a full disk leaves at most one cut line, which the reader reports and stops at.
//!
//! To keep files small (format 3), the lease rows and the per-profile aggregates, of each database when
//! several are watched, are written by delta ([`Delta`], in `frame.rs`): a keyframe line holds them whole
//! (the first line, then every [`KEYFRAME_POLLS`] lines, so that a reader can start there), the lines between
//! only what changed since the line before, with the frequent change — a renewed expiry — as a short triple,
//! an aggregate's change as only its changed fields, and times as microseconds from the line's clock.
//! Aggregates are written only when they were refreshed, sessions only when a holder or a wait refers to them,
//! and query texts only with `--record-queries`. Formats 1 (every line whole) and 2 (deltas of timestamps and
//! whole aggregates, the databases of several whole) are still read.

mod frame;

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::rules::Rules;
use crate::model::{Board, Snapshot, Status};

use frame::Frame;
pub use frame::{Changes, Delta};

/// The format's version, in the header.
pub const FORMAT: u32 = 3;

/// The oldest format this locktop reads.
const OLDEST_FORMAT: u32 = 1;

/// The zstd level of `.zst` recordings: zstd's default, fast enough for any poll rate.
const ZSTD_LEVEL: i32 = 3;

/// zstd's frame magic number, as it begins a file.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// A zstd compressor (which has no `Debug` of its own).
struct Zstd(zstd::zstd_safe::CCtx<'static>);

impl Zstd {
    fn new() -> std::io::Result<Self> {
        let mut context = zstd::zstd_safe::CCtx::create();
        context
            .set_parameter(zstd::zstd_safe::CParameter::CompressionLevel(ZSTD_LEVEL))
            .map_err(zstd_error)?;
        Ok(Self(context))
    }
}

fn zstd_error(code: usize) -> std::io::Error {
    std::io::Error::other(zstd::zstd_safe::get_error_name(code))
}

/// Writes on to `inner` as long as the bytes fit in `room`; the first write that would pass it writes nothing
/// and fails, and says so in `over`.
struct Capped<'a, W> {
    inner: &'a mut W,
    room: u64,
    written: u64,
    over: bool,
}

impl<W: Write> Write for Capped<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.written + buf.len() as u64 > self.room {
            self.over = true;
            return Err(std::io::Error::other("past --record-max-size"));
        }
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl std::fmt::Debug for Zstd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Zstd")
    }
}

/// A recording's text, from its file: decompressed when the file is zstd (whatever its name).
pub fn unpacked<'a>(mut input: impl BufRead + 'a) -> std::io::Result<Box<dyn BufRead + 'a>> {
    let zstd = input.fill_buf()?.starts_with(&ZSTD_MAGIC);
    Ok(if zstd {
        Box::new(std::io::BufReader::new(
            zstd::stream::read::Decoder::with_buffer(input)?,
        ))
    } else {
        Box::new(input)
    })
}

/// Lines between keyframes (a minute of 1 s polls).
pub const KEYFRAME_POLLS: u64 = 60;

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
    /// Format 3: the snapshot's lease rows and aggregates (and each database's, of several) are left out, and
    /// this is how they differ from the previous line's, or all of them on a keyframe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<Delta>,
    /// Format 2: the aggregates were not refreshed by this poll: they are the previous line's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub summaries_unchanged: bool,
    /// Format 2, between keyframes: the snapshot's lease rows and aggregates are left out, and this is how
    /// they differ from the previous line's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
    /// Profiles that were not `ok` when recorded, with their status word.
    #[serde(default)]
    pub statuses: BTreeMap<String, String>,
    /// The escalation messages in force when recorded.
    #[serde(default)]
    pub alerts: Vec<String>,
}

/// A poll line's time, statuses and alerts: what a pass over a recording needs to find its span and its
/// escalations. The rest of the line is parsed and let go (`serde` skips unknown fields).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PollHead {
    #[serde(default)]
    snapshot: Option<SnapshotTime>,
    #[serde(default)]
    pub statuses: BTreeMap<String, String>,
    #[serde(default)]
    pub alerts: Vec<String>,
}

/// The one field of a snapshot that a [`PollHead`] keeps.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct SnapshotTime {
    server_now: DateTime<Utc>,
}

impl PollHead {
    /// The server time of the poll, for a successful one.
    pub fn at(&self) -> Option<DateTime<Utc>> {
        self.snapshot.as_ref().map(|s| s.server_now)
    }
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
    /// For a `.zst` file: each line is written as a zstd frame of its own, so the file is always whole frames
    /// (a crash cuts at most the last) and appending to it needs no state from before.
    compressor: Option<Zstd>,
    path: std::path::PathBuf,
    queries: bool,
    rules: Rules,
    /// The rows and aggregates the last line left the reader with, and lines since the last keyframe
    /// (`None`: the next line is one).
    frame: Frame,
    since_keyframe: Option<u64>,
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
            unpacked(std::io::BufReader::new(&file))?.read_line(&mut first)?;
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
            compressor: if path.extension().is_some_and(|e| e == "zst") {
                Some(Zstd::new()?)
            } else {
                None
            },
            path: path.to_owned(),
            queries: header.queries,
            rules: header.rules(),
            frame: Frame::default(),
            since_keyframe: None,
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

    /// The rules the recording is made with (its header's).
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Records a successful poll with the statuses and alerts of `board`, the rules' judgement of it made by
    /// the caller (at its server time, with the history of every poll before it), so that it is made once.
    pub fn poll_judged(&mut self, snapshot: &Snapshot, board: &Board) -> std::io::Result<()> {
        let statuses = board
            .profiles
            .judged()
            .filter(|p| p.status != Status::Ok)
            .map(|p| (p.profile.to_string(), p.status.word().to_owned()))
            .collect();
        let alerts = board
            .alerts
            .iter()
            .map(|a| a.message().to_owned())
            .collect();
        let keyframe = self.since_keyframe.is_none_or(|n| n >= KEYFRAME_POLLS);
        self.since_keyframe = if keyframe {
            Some(1)
        } else {
            self.since_keyframe.map(|n| n + 1)
        };
        let delta = self.frame.diff(snapshot, keyframe);
        self.line(&Poll {
            snapshot: Some(bare(snapshot, self.queries)),
            error: None,
            delta: Some(delta),
            summaries_unchanged: false,
            changes: None,
            statuses,
            alerts,
        })
    }

    /// Records a failed poll.
    pub fn failed(&mut self, error: &str) -> std::io::Result<()> {
        self.since_keyframe = self.since_keyframe.map(|n| n + 1);
        self.line(&Poll {
            snapshot: None,
            error: Some(error.to_owned()),
            delta: None,
            summaries_unchanged: false,
            changes: None,
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

    /// Writes `value` as one line (one zstd frame in a `.zst` file), serialised straight into the file: a
    /// keyframe at 50,000 profiles is 8 MB of JSON, which is not built in memory first. A line that would take
    /// the file past `--record-max-size` is not written: what of it went out is cut off again.
    fn line(&mut self, value: &impl Serialize) -> std::io::Result<()> {
        let mut out = Capped {
            inner: &mut self.out,
            room: self
                .max_size
                .map_or(u64::MAX, |max| max.saturating_sub(self.size)),
            written: 0,
            over: false,
        };
        let written = match self.compressor.as_mut() {
            None => serde_json::to_writer(&mut out, value)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n")),
            Some(Zstd(context)) => {
                // A line cut short left the context inside its frame.
                context
                    .reset(zstd::zstd_safe::ResetDirective::SessionOnly)
                    .map_err(zstd_error)?;
                let mut frame = zstd::stream::write::Encoder::with_context(&mut out, context);
                serde_json::to_writer(&mut frame, value)
                    .map_err(std::io::Error::from)
                    .and_then(|()| frame.write_all(b"\n"))
                    .and_then(|()| frame.finish().map(drop))
            }
        };
        let (over, length) = (out.over, out.written);
        let written = written.and_then(|()| self.out.flush());
        if let Err(e) = written {
            // Nothing of a line that failed stays in the file: what the buffer holds of it is dropped, what
            // went out is cut off.
            let file = self.out.get_ref().try_clone()?;
            let (file, _dropped) =
                std::mem::replace(&mut self.out, std::io::BufWriter::new(file)).into_parts();
            // Best effort (a pipe cannot be cut): the error that stopped the line is the one to tell.
            let _ = file.set_len(self.size);
            return Err(if over {
                std::io::Error::other(format!(
                    "it reached --record-max-size ({}); record to a new file to go on",
                    human_bytes(self.max_size.unwrap_or_default())
                ))
            } else {
                e
            });
        }
        self.size += length;
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

/// A snapshot as a line writes it: all but its lease rows and aggregates (its line's [`Delta`] carries them),
/// with only the sessions the rules can refer to, and each database's of several likewise.
fn bare(snapshot: &Snapshot, queries: bool) -> Snapshot {
    Snapshot {
        server_now: snapshot.server_now,
        poll_ms: snapshot.poll_ms,
        leases: Vec::new(),
        summaries: Arc::default(),
        sessions: relevant_sessions(snapshot, queries),
        waits: snapshot.waits.clone(),
        visibility: snapshot.visibility,
        lease_error: snapshot.lease_error.clone(),
        pooled: snapshot.pooled,
        parts: snapshot
            .parts
            .iter()
            .map(|p| crate::model::snapshot::Part {
                target: p.target.clone(),
                snapshot: bare(&p.snapshot, queries),
                down: p.down.clone(),
                seen: p.seen,
            })
            .collect(),
        leases_as_of: snapshot.leases_as_of,
        recovery: snapshot.recovery,
        deadlocks: snapshot.deadlocks,
        prepared: snapshot.prepared.clone(),
        locks_error: snapshot.locks_error.clone(),
        lag: snapshot.lag.clone(),
        notes: snapshot.notes.clone(),
    }
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

/// A recording as read back whole: for tests and small files. Replay streams with [`Reader`] instead.
#[derive(Debug, Clone)]
pub struct Recording {
    pub header: Header,
    pub polls: Vec<Poll>,
    /// Set when the file is cut or corrupt: the polls before it are all there is.
    pub damage: Option<Damage>,
}

/// Reads a recording whole; a damaged line ends it (and is reported), a file that is not a recording is an
/// error.
pub fn read(input: impl BufRead) -> Result<Recording, String> {
    let mut reader = Reader::new(input)?;
    let polls: Vec<Poll> = reader.by_ref().collect();
    Ok(Recording {
        header: reader.header().clone(),
        polls,
        damage: reader.damage().cloned(),
    })
}

/// A recording read poll by poll, each rebuilt whole from the keyframe and the changes before it. It holds
/// one poll and the previous line's rows and aggregates, never the file or a whole line of its text: each
/// line is parsed as it streams in, so a long recording of a large table replays in the memory of one poll.
/// A damaged line ends the polls; [`Reader::damage`] then says where and why.
pub struct Reader<'a> {
    header: Header,
    input: Box<dyn BufRead + 'a>,
    /// 1-based number of the next line, and where it begins in the (decompressed) text.
    line: usize,
    offset: u64,
    frame: Frame,
    damage: Option<Damage>,
    done: bool,
}

impl std::fmt::Debug for Reader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("line", &self.line)
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

impl<'a> Reader<'a> {
    /// Reads the header; a file that is not a recording (or of a format this locktop does not read) is an
    /// error.
    pub fn new(input: impl BufRead + 'a) -> Result<Self, String> {
        let mut input = unpacked(input).map_err(|e| format!("cannot read it: {e}"))?;
        if input.fill_buf().map_err(|e| e.to_string())?.is_empty() {
            return Err("the file is empty".to_owned());
        }
        let mut line = Line::new(&mut input);
        let header: Result<Header, _> = serde_json::from_reader(&mut line);
        let offset = line.finish();
        let header = header.map_err(|e| format!("not a locktop recording (line 1: {e})"))?;
        if !(OLDEST_FORMAT..=FORMAT).contains(&header.locktop_recording) {
            return Err(format!(
                "recording format {} is not supported (this locktop reads formats {OLDEST_FORMAT} to {FORMAT})",
                header.locktop_recording
            ));
        }
        Ok(Self {
            header,
            input,
            line: 2,
            offset,
            frame: Frame::default(),
            damage: None,
            done: false,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Where and why the recording stopped early, once the polls before it are read.
    pub fn damage(&self) -> Option<&Damage> {
        self.damage.as_ref()
    }

    /// What each remaining poll says of itself (its time, statuses and alerts), without its rows: a pass over
    /// the recording that parses every line but builds no snapshot (the player's scan before it plays).
    pub fn heads(&mut self) -> impl Iterator<Item = PollHead> + '_ {
        std::iter::from_fn(move || self.next_value::<PollHead>())
    }

    /// The next line's poll: `None` at the end, at a blank line's end of file, or at a damaged line.
    fn next_poll(&mut self) -> Option<Poll> {
        let mut poll = self.next_value::<Poll>()?;
        self.rebuild(&mut poll);
        Some(poll)
    }

    /// The next line's value: `None` at the end, at a blank line's end of file, or at a damaged line.
    fn next_value<T: serde::de::DeserializeOwned>(&mut self) -> Option<T> {
        while !self.done {
            let (number, start) = (self.line, self.offset);
            match self.input.fill_buf() {
                Ok([]) => return None,
                Ok(_) => {}
                Err(e) => {
                    self.stop(number, start, e.to_string());
                    return None;
                }
            }
            let mut line = Line::new(&mut self.input);
            let parsed: Result<Option<T>, serde_json::Error> = if line.blank() {
                Ok(None)
            } else {
                serde_json::from_reader(&mut line).map(Some)
            };
            self.offset += line.finish();
            self.line += 1;
            match parsed {
                Ok(None) => {}
                Ok(Some(value)) => return Some(value),
                Err(e) => {
                    let reason = if e.is_eof() {
                        "the line is cut short".to_owned()
                    } else {
                        e.to_string()
                    };
                    self.stop(number, start, reason);
                }
            }
        }
        None
    }

    fn stop(&mut self, line: usize, offset: u64, reason: String) {
        self.damage = Some(Damage {
            line,
            offset,
            reason,
        });
        self.done = true;
    }

    /// Makes a delta line's snapshot whole, from the lines before it.
    fn rebuild(&mut self, poll: &mut Poll) {
        if let Some(s) = poll.snapshot.as_mut() {
            if let Some(delta) = poll.delta.take() {
                self.frame.apply(delta, s);
            } else if let Some(changes) = poll.changes.take() {
                // Format 2 wrote each database of several whole: only the line's own rows are by delta.
                let parts = std::mem::take(&mut s.parts);
                self.frame.apply(changes.into_delta(s.server_now), s);
                s.parts = parts;
            } else if poll.summaries_unchanged {
                // A keyframe of rows whose aggregates are the previous line's: the frame has them already.
                s.summaries = Arc::clone(&self.frame.summaries);
                self.frame.take_rows(s);
            } else {
                self.frame.keyframe(s);
            }
        }
    }
}

impl Iterator for Reader<'_> {
    type Item = Poll;

    fn next(&mut self) -> Option<Poll> {
        self.next_poll()
    }
}

/// One line of a [`BufRead`] as a reader of its own: it ends before the line's `\n`, so that a parser reads
/// the line as it streams in, and a line cut short is its own line's damage rather than the next one's.
struct Line<'r, R: BufRead + ?Sized> {
    input: &'r mut R,
    /// Bytes taken from `input`, the `\n` included.
    taken: u64,
    ended: bool,
}

impl<'r, R: BufRead + ?Sized> Line<'r, R> {
    fn new(input: &'r mut R) -> Self {
        Self {
            input,
            taken: 0,
            ended: false,
        }
    }

    /// Whether the line holds only white space (it is then taken whole).
    fn blank(&mut self) -> bool {
        loop {
            let Ok(buf) = self.input.fill_buf() else {
                return false;
            };
            let spaces = buf
                .iter()
                .take_while(|b| b.is_ascii_whitespace() && **b != b'\n')
                .count();
            match buf.get(spaces) {
                None if buf.is_empty() => return true,
                None => {
                    self.input.consume(spaces);
                    self.taken += spaces as u64;
                }
                Some(b'\n') => {
                    self.input.consume(spaces + 1);
                    self.taken += spaces as u64 + 1;
                    self.ended = true;
                    return true;
                }
                Some(_) => {
                    self.input.consume(spaces);
                    self.taken += spaces as u64;
                    return false;
                }
            }
        }
    }

    /// Takes the rest of the line (after a parse, or a parse error) and says how long the line was.
    fn finish(mut self) -> u64 {
        let mut sink = [0_u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut self, &mut sink) {
            if n == 0 {
                break;
            }
        }
        self.taken
    }
}

impl<R: BufRead + ?Sized> std::io::Read for Line<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.ended || out.is_empty() {
            return Ok(0);
        }
        let buf = self.input.fill_buf()?;
        // Looked for only as far as this read takes (a parser reads a byte at a time).
        let avail = &buf[..buf.len().min(out.len())];
        let end = avail.iter().position(|b| *b == b'\n');
        let n = end.unwrap_or(avail.len());
        out[..n].copy_from_slice(&avail[..n]);
        let newline = end.is_some();
        self.input.consume(n + usize::from(newline));
        self.taken += n as u64 + u64::from(newline);
        self.ended = newline || n == 0;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LeaseRow;
    use crate::model::snapshot::Part;
    use crate::model::snapshot::ProfileSummary;
    use crate::model::{LockWait, Session};

    /// Records `snapshot` judged as the live judge would: with the history of the polls before it.
    fn poll(recorder: &mut Recorder, history: &mut crate::model::History, snapshot: &Snapshot) {
        let rules = *recorder.rules();
        crate::model::rules::record(history, snapshot, &rules);
        let board = crate::model::rules::evaluate(snapshot, history, &rules, snapshot.server_now);
        recorder.poll_judged(snapshot, &board).expect("poll");
    }

    fn lease(group: &str, key: &str, owner: &str, expires: DateTime<Utc>) -> LeaseRow {
        LeaseRow {
            group: Some(group.into()),
            key: Some(key.into()),
            owner: Some(owner.into()),
            expires_at: Some(expires),
            acquired_at: None,
            contention_count: Some(0),
            contended_since: None,
            last_contended_at: None,
        }
    }

    fn summary(group: &str, next_expiry: DateTime<Utc>) -> ProfileSummary {
        ProfileSummary {
            group: Some(group.into()),
            rows: 1,
            held: 1,
            sample_key: Some("S".into()),
            sample_owner: Some("w".into()),
            sample_acquired_at: None,
            next_expiry: Some(next_expiry),
            failure_total: Some(0),
            latest_contended_since: None,
        }
    }

    /// Records 130 polls (one failed) into `path`: 20 rows renewed at every poll, one row joining and
    /// leaving, an owner changing, and aggregates refreshed every 5th poll; returns what was recorded.
    fn record_polls(path: &Path) -> Vec<Option<Snapshot>> {
        // To the microsecond, as PostgreSQL keeps times (and a recording writes them).
        let start = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
        let mut recorder =
            Recorder::create(path, &Header::for_tests(start), false).expect("create");
        let mut written = Vec::new();
        let mut history = crate::model::History::default();
        let mut summaries = Arc::new(vec![summary("calm-0", start)]);
        for i in 0..130_i64 {
            let now = start + chrono::Duration::seconds(i);
            if i == 70 {
                recorder.failed("lost").expect("failed");
                written.push(None);
                continue;
            }
            let mut s = Snapshot::at(now);
            // 20 rows renewed every poll; one joins at poll 10 and leaves at poll 100; an owner changes at 50.
            s.leases = (0..20)
                .map(|p| {
                    lease(
                        &format!("p{p}"),
                        "S",
                        "w",
                        now + chrono::Duration::seconds(30),
                    )
                })
                .collect();
            if (10..100).contains(&i) {
                s.leases.push(lease("late", "S", "x", start));
            }
            if i >= 50 {
                s.leases[3].owner = Some("taken-over".into());
            }
            // The aggregates are refreshed every 5th poll, one profile more each time (in an order that is
            // not the names': calm-10 after calm-9), calm-0's changing each time and calm-1's gone after 50.
            if i % 5 == 0 {
                summaries = Arc::new(
                    (0..=i / 5)
                        .filter(|p| *p != 1 || i < 50)
                        .map(|p| {
                            let mut s = summary(&format!("calm-{p}"), now);
                            if p == 0 {
                                s.held = i / 5;
                            }
                            s
                        })
                        .collect(),
                );
            }
            s.summaries = Arc::clone(&summaries);
            poll(&mut recorder, &mut history, &s);
            written.push(Some(s));
        }
        written
    }

    /// Checks that every poll read back is the one recorded (rows and aggregates in any order).
    fn assert_same_polls(back: &Recording, written: &[Option<Snapshot>]) {
        assert_eq!(back.polls.len(), written.len());
        for (i, (got, want)) in back.polls.iter().zip(written).enumerate() {
            let (Some(got), Some(want)) = (got.snapshot.as_ref(), want.as_ref()) else {
                assert_eq!(got.snapshot.is_none(), want.is_none(), "poll {i}");
                continue;
            };
            // Rows come back in (group, key) order.
            let sorted = |rows: &[LeaseRow]| {
                let mut rows = rows.to_vec();
                rows.sort_by(|a, b| (&a.group, &a.key).cmp(&(&b.group, &b.key)));
                rows
            };
            assert_eq!(
                sorted(&got.leases),
                sorted(&want.leases),
                "poll {i}: the rows"
            );
            let by_group = |s: &[ProfileSummary]| {
                let mut s = s.to_vec();
                s.sort_by(|a, b| a.group.cmp(&b.group));
                s
            };
            assert_eq!(
                by_group(&got.summaries),
                by_group(&want.summaries),
                "poll {i}: the aggregates"
            );
            assert_eq!(got.server_now, want.server_now);
        }
    }

    #[test]
    fn a_delta_recording_reads_back_every_poll_whole_across_keyframes_and_renewals_are_short() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("r.jsonl");
        let written = record_polls(&path);
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        let back = read(std::io::BufReader::new(text.as_bytes())).expect("parses");
        assert_eq!(back.damage, None);
        assert_same_polls(&back, &written);
        // Keyframes: the first line after the header, then every 60 lines.
        let keyframes: Vec<usize> = lines
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, l)| l.contains("\"keyframe\":true"))
            .map(|(n, _)| n)
            .collect();
        assert_eq!(keyframes, vec![1, 61, 121]);
        // A line of renewals only is a fraction of a keyframe.
        let (keyframe, renewal) = (lines[61].len(), lines[62].len());
        assert!(
            renewal * 2 < keyframe,
            "renewals {renewal} bytes, keyframe {keyframe} bytes: {}",
            lines[62]
        );
        assert!(lines[62].contains("\"renewed\""), "{}", lines[62]);
    }

    #[test]
    fn a_line_larger_than_the_write_buffer_that_would_pass_the_size_limit_leaves_nothing_of_itself()
    {
        let dir = tempfile::tempdir().expect("dir");
        let now = Utc::now();
        for name in ["big.jsonl", "big.jsonl.zst"] {
            let path = dir.path().join(name);
            let header = Header::for_tests(now);
            let mut recorder = Recorder::create(&path, &header, false).expect("create");
            let after_header = std::fs::metadata(&path).expect("file").len();
            // Room for more than the buffer: some of the line goes out to the file before it is refused.
            recorder = recorder.with_max_size(Some(after_header + 20_000));
            let mut snapshot = Snapshot::at(now);
            // Owners that do not repeat: the line is far beyond the file's 8 KiB buffer, compressed or not.
            snapshot.leases = (0..4_000_u64)
                .map(|i| {
                    let owner = format!("{:x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    lease(&format!("p{i}"), "S", &owner, now)
                })
                .collect();
            let mut history = crate::model::History::default();
            let rules = *recorder.rules();
            crate::model::rules::record(&mut history, &snapshot, &rules);
            let board = crate::model::rules::evaluate(&snapshot, &history, &rules, now);
            let e = recorder
                .poll_judged(&snapshot, &board)
                .expect_err("too large");
            assert!(e.to_string().contains("--record-max-size"), "{e}");
            assert_eq!(std::fs::metadata(&path).expect("file").len(), after_header);
            let file = std::io::BufReader::new(std::fs::File::open(&path).expect("open"));
            let back = read(unpacked(file).expect("unpacked")).expect("read");
            assert!(back.damage.is_none(), "{name}: {:?}", back.damage);
            assert!(back.polls.is_empty(), "{name}");
        }
    }

    #[test]
    fn a_zst_recording_is_compressed_line_by_line_reads_back_whole_and_a_cut_one_keeps_its_polls() {
        let dir = tempfile::tempdir().expect("dir");
        let (plain, packed) = (dir.path().join("r.jsonl"), dir.path().join("r.jsonl.zst"));
        record_polls(&plain);
        let written = record_polls(&packed);
        let bytes = std::fs::read(&packed).expect("read");
        assert!(bytes.starts_with(&ZSTD_MAGIC), "a zstd file");
        let plain_size = std::fs::metadata(&plain).expect("plain").len();
        assert!(
            (bytes.len() as u64) * 2 < plain_size,
            "compressed {} bytes, plain {plain_size}",
            bytes.len()
        );
        let back = read(std::io::BufReader::new(bytes.as_slice())).expect("parses");
        assert_eq!(back.damage, None);
        assert_same_polls(&back, &written);
        // Cut in its last frame: every earlier poll is there, and the damage is said.
        let cut = read(std::io::BufReader::new(&bytes[..bytes.len() - 10])).expect("parses");
        assert_eq!(cut.polls.len(), written.len() - 1);
        let damage = cut.damage.expect("damaged");
        assert_eq!(damage.line, written.len() + 1, "{damage:?}");
        // Appending to it checks its header through the compression.
        let start = Utc::now();
        Recorder::create(&packed, &Header::for_tests(start), false).expect("appends");
    }

    /// A reader that counts the bytes taken from it.
    struct Counted<'b> {
        bytes: &'b [u8],
        taken: std::rc::Rc<std::cell::Cell<usize>>,
    }

    impl std::io::Read for Counted<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = std::io::Read::read(&mut self.bytes, out)?;
            self.taken.set(self.taken.get() + n);
            Ok(n)
        }
    }

    #[test]
    fn a_recording_streams_poll_by_poll_through_a_buffer_smaller_than_a_line() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("r.jsonl");
        let written = record_polls(&path);
        let bytes = std::fs::read(&path).expect("read");
        let taken = std::rc::Rc::new(std::cell::Cell::new(0));
        let input = Counted {
            bytes: &bytes,
            taken: std::rc::Rc::clone(&taken),
        };
        // A 16-byte buffer: every line (hundreds of bytes) streams through it, never held whole.
        let mut reader = Reader::new(std::io::BufReader::with_capacity(16, input)).expect("header");
        let first = reader.next().expect("a poll");
        // Rows come back in (group, key) order.
        let mut want = written[0].clone().expect("a snapshot");
        want.leases
            .sort_by(|a, b| (&a.group, &a.key).cmp(&(&b.group, &b.key)));
        assert_eq!(first.snapshot, Some(want));
        assert!(
            taken.get() < bytes.len() / 20,
            "the first poll took {} of {} bytes",
            taken.get(),
            bytes.len()
        );
        let rest: Vec<Poll> = reader.by_ref().collect();
        assert_eq!(rest.len(), written.len() - 1);
        assert_eq!(reader.damage(), None);
        let back = Recording {
            header: reader.header().clone(),
            polls: std::iter::once(first).chain(rest).collect(),
            damage: None,
        };
        assert_same_polls(&back, &written);
    }

    #[test]
    fn the_heads_of_a_recording_are_its_polls_times_statuses_and_alerts() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("r.jsonl");
        record_polls(&path);
        let bytes = std::fs::read(&path).expect("read");
        let whole = read(bytes.as_slice()).expect("parses");
        let mut reader = Reader::new(bytes.as_slice()).expect("header");
        let heads: Vec<PollHead> = reader.heads().collect();
        assert_eq!(heads.len(), whole.polls.len());
        for (head, poll) in heads.iter().zip(&whole.polls) {
            assert_eq!(head.at(), poll.at());
            assert_eq!(
                (&head.statuses, &head.alerts),
                (&poll.statuses, &poll.alerts)
            );
        }
        assert!(
            heads.iter().any(|h| h.at().is_none()),
            "the failed poll has no time"
        );
        assert_eq!(reader.damage(), None);
    }

    #[test]
    fn a_line_cut_short_before_more_lines_is_named_with_its_own_line_and_offset() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("r.jsonl");
        record_polls(&path);
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        // A crash cut line 5 in half; a later run appended its polls after it.
        let offset: usize = lines[..4].iter().map(|l| l.len() + 1).sum();
        let damaged = format!(
            "{}\n{}\n{}\n",
            lines[..4].join("\n"),
            &lines[4][..lines[4].len() / 2],
            lines[5..].join("\n")
        );
        let back = read(damaged.as_bytes()).expect("parses");
        assert_eq!(back.polls.len(), 3);
        let damage = back.damage.expect("damaged");
        assert_eq!(
            (damage.line, damage.offset),
            (5, offset as u64),
            "{damage:?}"
        );
        assert_eq!(damage.reason, "the line is cut short");
        // Garbage after a whole poll on its line is that line's damage too.
        let trailing = format!("{}\n{} x\n", lines[..2].join("\n"), lines[2]);
        let back = read(trailing.as_bytes()).expect("parses");
        assert_eq!(back.polls.len(), 1);
        assert_eq!(back.damage.expect("damaged").line, 3);
    }

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
        one.waits = vec![LockWait::for_tests(7, Vec::new())];
        let merged = Snapshot::merged(vec![Part::new("east", &one, None)], now);
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("r.jsonl");
        let header = Header::for_tests(now);
        let mut recorder = Recorder::create(&path, &header, false).expect("create");
        poll(
            &mut recorder,
            &mut crate::model::History::default(),
            &merged,
        );
        drop(recorder);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(!text.contains("secret"), "{text}");
        assert!(!text.contains("bystander"), "{text}");
        let back = read(std::io::BufReader::new(text.as_bytes())).expect("parses");
        let part = &back.polls[0].snapshot.as_ref().expect("snapshot").parts[0];
        assert_eq!(part.snapshot.sessions.len(), 1, "the waiter is kept");
    }

    #[test]
    fn the_databases_of_several_are_recorded_by_delta_and_read_back_whole() {
        let start = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("r.jsonl");
        let mut recorder =
            Recorder::create(&path, &Header::for_tests(start), false).expect("create");
        let mut history = crate::model::History::default();
        let mut written = Vec::new();
        for i in 0..8_i64 {
            let now = start + chrono::Duration::seconds(i);
            let part = |target: &str| {
                let mut s = Snapshot::at(now);
                s.leases = (0..20)
                    .map(|p| {
                        lease(
                            &format!("p{p}"),
                            "S",
                            "holder-1",
                            now + chrono::Duration::seconds(30),
                        )
                    })
                    .collect();
                if target == "west" && i >= 5 {
                    s.leases[2].owner = Some("taken-over".into());
                }
                s.summaries = Arc::new(vec![summary(
                    "calm",
                    start + chrono::Duration::seconds(i / 4),
                )]);
                Part::new(target, &s, None)
            };
            let merged = Snapshot::merged(vec![part("east"), part("west")], now);
            poll(&mut recorder, &mut history, &merged);
            written.push(merged);
        }
        drop(recorder);
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        // Between keyframes, a database's rows are its renewals, not the rows whole.
        assert!(lines[1].contains("\"keyframe\":true"), "{}", lines[1]);
        assert!(lines[1].contains("holder-1"), "{}", lines[1]);
        for line in &lines[2..] {
            assert!(!line.contains("holder-1"), "{line}");
        }
        assert!(lines[6].contains("taken-over"), "{}", lines[6]);
        let back = read(std::io::BufReader::new(text.as_bytes())).expect("parses");
        assert_eq!(back.damage, None);
        for (i, (got, want)) in back.polls.iter().zip(&written).enumerate() {
            let got = got.snapshot.as_ref().expect("a snapshot");
            assert_eq!(got.parts.len(), 2, "poll {i}");
            for (g, w) in got.parts.iter().zip(&want.parts) {
                let mut rows = w.snapshot.leases.clone();
                rows.sort_by(|a, b| (&a.group, &a.key).cmp(&(&b.group, &b.key)));
                assert_eq!(g.target, w.target);
                assert_eq!(g.snapshot.leases, rows, "poll {i}, {}", g.target);
                assert_eq!(g.snapshot.summaries, w.snapshot.summaries, "poll {i}");
            }
        }
    }

    #[test]
    fn a_format_2_recording_reads_back_as_it_was_written() {
        let text = include_str!("../tests/fixtures/recording-format2.jsonl");
        let back = read(std::io::BufReader::new(text.as_bytes())).expect("parses");
        assert_eq!(back.damage, None);
        assert_eq!(back.header.locktop_recording, 2);
        assert_eq!(back.polls.len(), 3);
        let t = |s: &str| Some(s.parse::<DateTime<Utc>>().expect("time"));
        let second = back.polls[1].snapshot.as_ref().expect("snapshot");
        let rows: Vec<(&str, &str, Option<DateTime<Utc>>)> = second
            .leases
            .iter()
            .map(|r| {
                (
                    r.group.as_deref().unwrap_or(""),
                    r.owner.as_deref().unwrap_or(""),
                    r.expires_at,
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![
                ("a", "w", t("2026-11-23T12:00:31.250Z")),
                ("b", "x", t("2026-11-23T12:00:30Z")),
                ("d", "y", t("2026-11-23T12:00:40Z")),
            ]
        );
        let summaries: Vec<(&str, i64, Option<DateTime<Utc>>)> = second
            .summaries
            .iter()
            .map(|s| (s.group.as_deref().unwrap_or(""), s.held, s.next_expiry))
            .collect();
        assert_eq!(
            summaries,
            vec![
                ("a", 1, t("2026-11-23T12:00:31.250Z")),
                ("b", 2, t("2026-11-23T12:00:30Z")),
                ("y", 1, t("2026-11-23T12:00:07Z")),
            ]
        );
        assert_eq!(back.polls[2].error.as_deref(), Some("connection lost"));
    }
}
