//! The append-only log: every write the store applies is framed as a
//! [`Record`] and appended here before its reply leaves, and at start-up the
//! log is replayed into the store. It knows nothing of commands or sockets.
//!
//! # File format
//!
//! ```text
//! <dir>/kvstore.aof = header  record*
//! header            = "KVSTORE\0"  version:u32le (= 1)  reserved:[0u8; 4]     (16 bytes)
//! record            = len:u32le  crc:u32le  payload                           (see record.rs)
//! ```
//!
//! The header makes a wrong file (or a future format) fail loudly at open
//! instead of being "replayed" as garbage. The file is locked (`flock`, via
//! [`File::try_lock`]) for the life of the [`AppendLog`], so two servers
//! pointed at one directory cannot interleave their appends.
//!
//! # Writing: stage, then commit
//!
//! [`AppendLog::stage`] only encodes into a buffer. The server calls
//! [`AppendLog::commit`] once per loop iteration, in its before-sleep step,
//! with everything the iteration staged, and releases replies after it
//! returns `Ok`: one `write` (and under `always` one fsync) per iteration
//! however many clients wrote, which is the group commit that makes `always`
//! affordable. Writes use `pwrite` at the committed length, so a failed
//! commit is undone by cutting the file back to that length (`ftruncate`),
//! after which the caller rolls its store back: nothing is applied that the
//! log does not hold.
//!
//! # Fsync policies
//!
//! * [`Fsync::Always`]: `commit` fsyncs (`fdatasync`) before it returns, so
//!   an acknowledged write survives power loss.
//! * [`Fsync::EverySec`]: `commit` only writes; a thread owned by the log
//!   fsyncs about once a second when something was written since (a dirty
//!   flag). The event loop never waits for a disk flush; a crash of the
//!   machine (not of the process) loses at most about a second.
//! * [`Fsync::No`]: the OS flushes when it likes.
//!
//! # Replay and the torn-tail rule
//!
//! Replay reads the file in 4 MiB sequential reads and decodes records in
//! place (no allocation per record). Decoding stops at the first offset X
//! where no record decodes. A crash in the middle of an append leaves a
//! prefix of a record at the end of the file, or (on file systems that
//! extend the size before the data lands) a run of zero bytes: a *torn
//! tail*. It was never acknowledged under `always` (commit had not returned),
//! so it is dropped with a warning and the file is cut at X. The rule: the
//! tail is torn if the record at X is incomplete, or everything from X is
//! zero, or no valid record can be decoded at any later offset. Otherwise a
//! damaged record sits *before* good ones: that is not a crash artefact but
//! corruption, and silently dropping the records after it would lose
//! acknowledged writes, so open refuses ([`LogError::Corrupt`]) unless the
//! operator allowed truncation ([`LogConfig::truncate_corrupt`]).
//!
//! # Compaction (rewrite)
//!
//! The log grows with every overwrite; a rewrite replaces it by a snapshot
//! of the live state. The server walks its store a chunk per loop iteration,
//! so the snapshot is built without stopping the loop, and replay is
//! order-independent (the store applies last-writer-wins by version), so a
//! snapshot record and a live write of the same key may land in any order.
//!
//! 1. [`AppendLog::begin_rewrite`] creates and locks `kvstore.aof.rewrite`,
//!    writes the header and the head records (watermarks, the last FLUSHALL).
//!    From then on every staged record goes to both files.
//! 2. [`AppendLog::rewrite_record`] buffers snapshot records; each commit
//!    writes them to the rewrite file along with the staged records.
//! 3. [`AppendLog::finish_rewrite`] writes what is buffered and starts a
//!    helper thread that fsyncs the rewrite file, renames it over
//!    `kvstore.aof` and fsyncs the directory: the slow part is off the loop.
//!    (If records are staged but not yet committed at that moment, the helper
//!    starts after the next successful commit instead: the rewrite file may
//!    hold those records, and it must not become the log before they are.)
//!    Commits keep writing both files; the rewrite fd stays valid across the
//!    rename (same inode).
//! 4. [`AppendLog::poll_rewrite`], called every iteration, sees the helper's
//!    report and swaps: the rewrite fd becomes the log fd.
//!
//! Why each crash point is safe: until the rename, `kvstore.aof` is the old
//! log, complete, and the next open deletes the leftover rewrite file. The
//! rename is atomic and happens only after the rewrite file (header, head,
//! snapshot, and every record committed since step 1) was fsynced, so from
//! then on `kvstore.aof` is the complete new log; records committed after
//! that fsync were written to both files and, under `always`, fsynced in
//! both before commit returned. Before the helper starts, the rewrite file
//! needs no fsync of its own (the helper's covers it), so under `always`
//! commit fsyncs it only once the helper runs. A failure of the rewrite file
//! before the rename only abandons the rewrite; after the rename it is the
//! log, so it fails the commit like a failure of the log would. A failed
//! commit abandons a rewrite that is still taking its snapshot, because the
//! snapshot may hold the writes that the caller is about to roll back.
//! Whether the rename happened is decided under a mutex the helper holds
//! across `rename`, so cancelling (abort, drop, a failed rewrite file) and
//! renaming can never both happen.

use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, ErrorKind};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::storage::record::{DecodeError, FRAME_HEADER, Record};

/// The log's file name inside [`LogConfig::dir`].
pub const LOG_FILE: &str = "kvstore.aof";
/// The file a compaction writes before renaming it to [`LOG_FILE`].
pub const REWRITE_FILE: &str = "kvstore.aof.rewrite";
/// The first eight bytes of a log.
pub const MAGIC: [u8; 8] = *b"KVSTORE\0";
/// The format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of the header before the first record.
pub const HEADER_LEN: u64 = 16;

/// Replay's read size: large sequential reads, few syscalls.
const READ_CHUNK: usize = 4 << 20;
/// How often the `everysec` thread flushes.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);

fn header() -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

/// When the log is flushed to the disk. See the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    /// Every commit fsyncs before it returns (group commit).
    Always,
    /// A background thread fsyncs about once a second.
    EverySec,
    /// Never fsync explicitly; the OS decides.
    No,
}

impl FromStr for Fsync {
    type Err = String;

    /// Parses `always`, `everysec` or `no`, in any case.
    fn from_str(s: &str) -> Result<Fsync, String> {
        if s.eq_ignore_ascii_case("always") {
            Ok(Fsync::Always)
        } else if s.eq_ignore_ascii_case("everysec") {
            Ok(Fsync::EverySec)
        } else if s.eq_ignore_ascii_case("no") {
            Ok(Fsync::No)
        } else {
            Err(format!("unknown fsync policy {s:?} (expected always, everysec or no)"))
        }
    }
}

impl fmt::Display for Fsync {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fsync::Always => "always",
            Fsync::EverySec => "everysec",
            Fsync::No => "no",
        })
    }
}

/// How to open the log.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// The data directory; created if missing. The log is `dir/kvstore.aof`.
    pub dir: PathBuf,
    /// When to fsync.
    pub fsync: Fsync,
    /// Open a log with a corrupt record followed by valid ones by cutting it
    /// at the corrupt record (losing everything after it) instead of
    /// refusing to start.
    pub truncate_corrupt: bool,
    /// The largest record payload accepted at replay: a longer declared
    /// length is corruption, not a record to wait for.
    pub max_record: usize,
}

/// What [`AppendLog::open`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Records replayed.
    pub records: u64,
    /// Bytes of those records (the log's length after open, less the header).
    pub bytes: u64,
    /// Bytes cut off the end: a torn tail, or with `truncate_corrupt` the
    /// corrupt record and everything after it.
    pub dropped_tail_bytes: u64,
    /// Time taken by open, replay included.
    pub elapsed: Duration,
}

/// Why the log could not be opened.
#[derive(Debug)]
pub enum LogError {
    /// A system call on `path` failed.
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done, e.g. "open", "read".
        action: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// Another process (or another `AppendLog` in this one) holds the log.
    Locked {
        /// The log file.
        path: PathBuf,
    },
    /// The file does not start with [`MAGIC`]: not a kvstore log.
    BadMagic {
        /// The log file.
        path: PathBuf,
    },
    /// The header names a format version this build cannot read.
    BadVersion {
        /// The log file.
        path: PathBuf,
        /// The version found.
        version: u32,
    },
    /// A damaged record with valid records after it: not a torn tail.
    Corrupt {
        /// The log file.
        path: PathBuf,
        /// Byte offset of the damaged record in the file.
        offset: u64,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Io { path, action, source } => write!(f, "{}: cannot {action}: {source}", path.display()),
            LogError::Locked { path } => {
                write!(f, "{}: locked by another process (is another server using this directory?)", path.display())
            }
            LogError::BadMagic { path } => write!(f, "{}: not a kvstore log (bad magic number)", path.display()),
            LogError::BadVersion { path, version } => write!(
                f,
                "{}: unsupported log format version {version} (this build reads version {FORMAT_VERSION})",
                path.display()
            ),
            LogError::Corrupt { path, offset, reason } => write!(
                f,
                "{}: corrupt record at byte offset {offset} ({reason}) with valid records after it; \
                 refusing to start. Allow truncating a corrupt log to cut it at that offset, \
                 losing every record from there on",
                path.display()
            ),
        }
    }
}

impl std::error::Error for LogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LogError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io_err<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> LogError + 'a {
    move |source| LogError::Io { path: path.to_path_buf(), action, source }
}

/// What a finished rewrite did, reported once by [`AppendLog::poll_rewrite`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RewriteDone {
    /// Length of the log that was replaced, when it was replaced.
    pub old_len: u64,
    /// Length of the new log at the same moment.
    pub new_len: u64,
    /// Time from [`AppendLog::begin_rewrite`] to the switch.
    pub elapsed: Duration,
}

/// Locks a mutex, ignoring poisoning: every state it guards stays
/// consistent even if a holder panicked (single-field updates).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// `pwrite`s all of `buf` at `offset` (retrying short writes and EINTR).
/// `fail_after` is fault injection for tests: write that many bytes, then fail.
fn write_at(file: &File, buf: &[u8], offset: u64, fail_after: Option<usize>) -> io::Result<()> {
    match fail_after {
        None => file.write_all_at(buf, offset),
        Some(n) => {
            file.write_all_at(&buf[..n.min(buf.len())], offset)?;
            Err(io::Error::other("injected write failure"))
        }
    }
}

/// One file the log appends to: the log itself or a rewrite in progress.
struct Sink {
    /// Shared with the `everysec` thread and the rewrite helper.
    file: Arc<File>,
    /// Committed length: the next write goes here, a failed one is cut back to it.
    len: u64,
    /// A failed write could not be cut back: cut it before writing again, or
    /// the rolled-back records would outlive a shorter next batch.
    torn: bool,
}

impl Sink {
    fn write(&mut self, buf: &[u8], fail_after: Option<usize>) -> io::Result<()> {
        if self.torn {
            self.file.set_len(self.len)?;
            self.torn = false;
        }
        write_at(&self.file, buf, self.len, fail_after)
    }

    /// Cuts off whatever a failed batch wrote past the committed length.
    fn cut_back(&mut self, path: &Path) {
        if let Err(e) = self.file.set_len(self.len) {
            log::error!("{}: cannot cut a failed write back to {} bytes: {e}", path.display(), self.len);
            self.torn = true;
        }
    }
}

/// Rename-or-cancel, decided once under the mutex.
#[derive(Default)]
struct Gate {
    cancelled: bool,
    renamed: bool,
}

enum Phase {
    /// Taking snapshot records.
    Snapshot,
    /// `finish_rewrite` was called while records were staged: the helper
    /// starts after the next successful commit.
    Sealed,
    /// The helper thread is fsyncing and renaming.
    Switching { done: Receiver<io::Result<()>>, helper: JoinHandle<()>, gate: Arc<Mutex<Gate>> },
}

struct Rewrite {
    sink: Sink,
    /// Snapshot records and copies of staged records, written at commit.
    pending: Vec<u8>,
    started: Instant,
    phase: Phase,
}

/// The helper thread's work: make the rewrite file durable and put it in
/// place of the log.
struct Switch {
    file: Arc<File>,
    from: PathBuf,
    to: PathBuf,
    dir: PathBuf,
    gate: Arc<Mutex<Gate>>,
    #[cfg(test)]
    fail: bool,
    #[cfg(test)]
    hold: Option<Receiver<()>>,
}

impl Switch {
    fn run(self) -> io::Result<()> {
        self.file.sync_all()?;
        #[cfg(test)]
        {
            if let Some(hold) = &self.hold {
                let _ = hold.recv();
            }
            if self.fail {
                return Err(io::Error::other("injected rewrite failure"));
            }
        }
        {
            // Held across the rename so that a cancel either precedes it
            // (no rename) or sees `renamed` (too late to cancel).
            let mut gate = lock(&self.gate);
            if gate.cancelled {
                return Err(io::Error::new(ErrorKind::Interrupted, "log rewrite cancelled"));
            }
            fs::rename(&self.from, &self.to)?;
            gate.renamed = true;
        }
        sync_dir(&self.dir)
    }
}

/// State shared with the `everysec` thread.
struct SyncShared {
    /// Something was written since the last fsync.
    dirty: AtomicBool,
    state: Mutex<SyncTargets>,
    wake: Condvar,
    path: PathBuf,
}

struct SyncTargets {
    stop: bool,
    log: Arc<File>,
    rewrite: Option<Arc<File>>,
}

/// The `everysec` fsync thread: started by open, stopped and joined on drop.
struct Syncer {
    shared: Arc<SyncShared>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    fn start(log: Arc<File>, path: PathBuf) -> io::Result<Syncer> {
        let shared = Arc::new(SyncShared {
            dirty: AtomicBool::new(false),
            state: Mutex::new(SyncTargets { stop: false, log, rewrite: None }),
            wake: Condvar::new(),
            path,
        });
        let theirs = Arc::clone(&shared);
        let thread = thread::Builder::new().name("kvstore-aof-fsync".into()).spawn(move || run_syncer(&theirs))?;
        Ok(Syncer { shared, thread: Some(thread) })
    }

    fn mark_dirty(&self) {
        self.shared.dirty.store(true, Ordering::Release);
    }

    fn set_targets(&self, log: Arc<File>, rewrite: Option<Arc<File>>) {
        let mut t = lock(&self.shared.state);
        t.log = log;
        t.rewrite = rewrite;
    }

    fn set_rewrite(&self, rewrite: Option<Arc<File>>) {
        lock(&self.shared.state).rewrite = rewrite;
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        lock(&self.shared.state).stop = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            log::error!("{}: the fsync thread panicked", self.shared.path.display());
        }
    }
}

fn run_syncer(shared: &SyncShared) {
    let mut targets = lock(&shared.state);
    loop {
        let deadline = Instant::now() + SYNC_INTERVAL;
        while !targets.stop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            targets = shared.wake.wait_timeout(targets, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        }
        let stop = targets.stop;
        if shared.dirty.swap(false, Ordering::AcqRel) {
            // Never fsync under the lock: the event loop takes it to swap files.
            let log = Arc::clone(&targets.log);
            let rewrite = targets.rewrite.clone();
            drop(targets);
            for file in std::iter::once(&log).chain(rewrite.as_ref()) {
                if let Err(e) = file.sync_data() {
                    log::error!("{}: background fsync failed: {e}", shared.path.display());
                    shared.dirty.store(true, Ordering::Release);
                }
            }
            targets = lock(&shared.state);
        }
        if stop {
            return;
        }
    }
}

/// Test-only fault injection; empty (and free) in other builds.
#[cfg(test)]
#[derive(Default)]
struct Faults {
    main_write: Option<usize>,
    main_sync: bool,
    rewrite_write: Option<usize>,
    switch: bool,
    hold_switch: Option<Receiver<()>>,
}

#[cfg(not(test))]
#[derive(Default)]
struct Faults {}

#[cfg(not(test))]
impl Faults {
    fn main_write(&mut self) -> Option<usize> {
        None
    }
    fn main_sync(&mut self) -> bool {
        false
    }
    fn rewrite_write(&mut self) -> Option<usize> {
        None
    }
}

#[cfg(test)]
impl Faults {
    fn main_write(&mut self) -> Option<usize> {
        self.main_write.take()
    }
    fn main_sync(&mut self) -> bool {
        std::mem::take(&mut self.main_sync)
    }
    fn rewrite_write(&mut self) -> Option<usize> {
        self.rewrite_write.take()
    }
}

/// The append-only log. See the module docs.
pub struct AppendLog {
    path: PathBuf,
    rewrite_path: PathBuf,
    dir: PathBuf,
    fsync: Fsync,
    log: Sink,
    /// Records staged since the last commit.
    pending: Vec<u8>,
    rewrite: Option<Rewrite>,
    /// Only under `everysec`.
    syncer: Option<Syncer>,
    faults: Faults,
}

/// Opens `path` and locks it, making sure the lock is on the file that
/// carries the name: a rewrite elsewhere could rename a new file over it
/// between our open and our lock (it would then be locked already, but the
/// check costs nothing).
fn open_locked(path: &Path) -> Result<File, LogError> {
    for _ in 0..3 {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_err(path, "open"))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(LogError::Locked { path: path.to_path_buf() }),
            Err(TryLockError::Error(e)) => return Err(io_err(path, "lock")(e)),
        }
        let ours = file.metadata().map_err(io_err(path, "stat"))?;
        let named = fs::metadata(path).map_err(io_err(path, "stat"))?;
        if (ours.dev(), ours.ino()) == (named.dev(), named.ino()) {
            return Ok(file);
        }
    }
    Err(LogError::Locked { path: path.to_path_buf() })
}

/// A sliding window over the file for replay: large reads, records that
/// straddle a refill are moved to the front, never copied out one by one.
struct Window<'f> {
    file: &'f File,
    file_len: u64,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    start: u64,
    filled: usize,
}

impl<'f> Window<'f> {
    fn new(file: &'f File, file_len: u64) -> Window<'f> {
        Window { file, file_len, buf: Vec::new(), start: HEADER_LEN, filled: 0 }
    }

    /// The file's bytes from `off` to the end of the buffer, at least `want`
    /// of them unless the file ends first, and whether they reach the end of
    /// the file. Cheap when `off` lies within what was returned last.
    fn at(&mut self, off: u64, want: usize) -> io::Result<(&[u8], bool)> {
        if off < self.start || off > self.start + self.filled as u64 {
            self.start = off;
            self.filled = 0;
        }
        let left = usize::try_from(self.file_len.saturating_sub(off)).unwrap_or(usize::MAX);
        let want = want.min(left);
        let rel = (off - self.start) as usize;
        if self.filled - rel < want {
            self.buf.copy_within(rel..self.filled, 0);
            self.filled -= rel;
            self.start = off;
            if self.buf.len() < want.max(READ_CHUNK.min(left)) {
                self.buf.resize(want.max(READ_CHUNK.min(left)), 0);
            }
            let target = self.buf.len().min(left);
            while self.filled < target {
                match self.file.read_at(&mut self.buf[self.filled..target], self.start + self.filled as u64) {
                    Ok(0) => {
                        // The file is shorter than its length said: its end is here.
                        self.file_len = self.start + self.filled as u64;
                        break;
                    }
                    Ok(n) => self.filled += n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let rel = (off - self.start) as usize;
        let to_eof = self.start + self.filled as u64 == self.file_len;
        Ok((&self.buf[rel..self.filled], to_eof))
    }

    /// Whether every byte from `off` to the end of the file is zero.
    fn zeros_from(&mut self, mut off: u64) -> io::Result<bool> {
        loop {
            let (data, _) = self.at(off, 1)?;
            if data.is_empty() {
                return Ok(true);
            }
            if data.iter().any(|&b| b != 0) {
                return Ok(false);
            }
            off += data.len() as u64;
        }
    }

    /// Whether a valid record decodes at any offset from `off` on: the
    /// difference between a torn tail and corruption. Only on that error
    /// path, so a byte-by-byte scan is fine.
    fn valid_record_from(&mut self, mut off: u64, max_payload: usize) -> io::Result<bool> {
        let mut want = FRAME_HEADER;
        loop {
            let (data, to_eof) = self.at(off, want)?;
            let mut i = 0;
            want = FRAME_HEADER;
            while i + FRAME_HEADER <= data.len() {
                match Record::decode(&data[i..], max_payload) {
                    Ok(_) => return Ok(true),
                    Err(DecodeError::Corrupt(_)) => i += 1,
                    Err(DecodeError::Incomplete) if to_eof => i += 1,
                    Err(DecodeError::Incomplete) => {
                        want = declared_len(&data[i..]);
                        break;
                    }
                }
            }
            if to_eof && i + FRAME_HEADER > data.len() {
                return Ok(false);
            }
            off += i as u64;
        }
    }
}

/// The frame length a record at the start of `buf` declares (at least a header).
fn declared_len(buf: &[u8]) -> usize {
    match buf.get(..4) {
        Some(b) => FRAME_HEADER + u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize,
        None => FRAME_HEADER,
    }
}

/// Where decoding stopped.
enum Tail {
    /// At the end of the file.
    Clean,
    /// At a record cut short by the end of the file.
    Incomplete,
    /// At a damaged record.
    Corrupt(&'static str),
}

/// Decodes records from the header on, handing each to `apply`; returns how
/// many, where the valid records end, and why decoding stopped there.
fn replay(
    win: &mut Window<'_>,
    max_payload: usize,
    apply: &mut impl FnMut(&Record<'_>),
) -> io::Result<(u64, u64, Tail)> {
    let mut records = 0u64;
    let mut off = HEADER_LEN;
    let mut want = FRAME_HEADER;
    loop {
        let (data, to_eof) = win.at(off, want)?;
        if data.is_empty() {
            return Ok((records, off, Tail::Clean));
        }
        let mut pos = 0;
        let stop = loop {
            match Record::decode(&data[pos..], max_payload) {
                Ok((rec, used)) => {
                    apply(&rec);
                    records += 1;
                    pos += used;
                    if pos == data.len() {
                        break None;
                    }
                }
                Err(e) => break Some(e),
            }
        };
        want = FRAME_HEADER;
        match stop {
            None => {}
            Some(DecodeError::Incomplete) if to_eof => return Ok((records, off + pos as u64, Tail::Incomplete)),
            Some(DecodeError::Incomplete) => want = declared_len(&data[pos..]),
            Some(DecodeError::Corrupt(reason)) => return Ok((records, off + pos as u64, Tail::Corrupt(reason))),
        }
        off += pos as u64;
    }
}

impl AppendLog {
    /// Opens (or creates) the log, replays every record into `apply` in file
    /// order, then is ready to append.
    ///
    /// Creates `cfg.dir` if needed; a new log gets its header, fsynced with
    /// its directory. Takes the log's lock ([`LogError::Locked`] if another
    /// log holds it), deletes a leftover `kvstore.aof.rewrite` (a compaction
    /// that did not finish: the log is complete without it), and cuts off a
    /// torn tail (see the module docs). Under [`Fsync::EverySec`] starts the
    /// fsync thread.
    pub fn open(cfg: &LogConfig, mut apply: impl FnMut(&Record<'_>)) -> Result<(AppendLog, ReplayStats), LogError> {
        let started = Instant::now();
        let dir = cfg.dir.clone();
        fs::create_dir_all(&dir).map_err(io_err(&dir, "create the directory"))?;
        let path = dir.join(LOG_FILE);
        let rewrite_path = dir.join(REWRITE_FILE);
        let file = open_locked(&path)?;

        match fs::remove_file(&rewrite_path) {
            Ok(()) => log::info!("{}: deleted an unfinished log rewrite", rewrite_path.display()),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&rewrite_path, "delete")(e)),
        }

        let mut file_len = file.metadata().map_err(io_err(&path, "stat"))?.len();
        let want = header();
        if file_len < HEADER_LEN {
            // New, or a creation cut short by a crash: (re)write the header.
            let mut have = vec![0u8; file_len as usize];
            file.read_exact_at(&mut have, 0).map_err(io_err(&path, "read"))?;
            if have[..] != want[..have.len()] {
                return Err(LogError::BadMagic { path });
            }
            if file_len > 0 {
                log::warn!("{}: completing a header cut short at {file_len} bytes", path.display());
            }
            file.write_all_at(&want, 0).map_err(io_err(&path, "write"))?;
            file.sync_all().map_err(io_err(&path, "fsync"))?;
            sync_dir(&dir).map_err(io_err(&dir, "fsync"))?;
            file_len = HEADER_LEN;
        }
        let mut have = [0u8; HEADER_LEN as usize];
        file.read_exact_at(&mut have, 0).map_err(io_err(&path, "read"))?;
        if have[..8] != MAGIC {
            return Err(LogError::BadMagic { path });
        }
        let version = u32::from_le_bytes([have[8], have[9], have[10], have[11]]);
        if version != FORMAT_VERSION {
            return Err(LogError::BadVersion { path, version });
        }

        let mut win = Window::new(&file, file_len);
        let (records, end, tail) = replay(&mut win, cfg.max_record, &mut apply).map_err(io_err(&path, "read"))?;
        let file_len = win.file_len;
        let dropped = file_len - end;
        match tail {
            Tail::Clean => {}
            Tail::Incomplete => log::warn!(
                "{}: dropping a torn tail of {dropped} bytes at offset {end} (a record cut short)",
                path.display()
            ),
            Tail::Corrupt(reason) => {
                // Zeros never decode (length 0 is out of range), so the zero
                // check is only the fast path of the scan that follows.
                let torn = win.zeros_from(end).map_err(io_err(&path, "read"))?
                    || !win.valid_record_from(end + 1, cfg.max_record).map_err(io_err(&path, "read"))?;
                if torn {
                    log::warn!(
                        "{}: dropping a torn tail of {dropped} bytes at offset {end} ({reason}, nothing valid after it)",
                        path.display()
                    );
                } else if cfg.truncate_corrupt {
                    log::error!(
                        "{}: CORRUPT record at offset {end} ({reason}) with valid records after it: \
                         truncating as configured, {dropped} bytes of log LOST",
                        path.display()
                    );
                } else {
                    return Err(LogError::Corrupt { path, offset: end, reason });
                }
            }
        }
        drop(win);
        if dropped > 0 {
            file.set_len(end).map_err(io_err(&path, "truncate"))?;
            file.sync_all().map_err(io_err(&path, "fsync"))?;
        }

        let file = Arc::new(file);
        let syncer = match cfg.fsync {
            Fsync::EverySec => {
                Some(Syncer::start(Arc::clone(&file), path.clone()).map_err(io_err(&path, "start the fsync thread"))?)
            }
            Fsync::Always | Fsync::No => None,
        };
        let stats =
            ReplayStats { records, bytes: end - HEADER_LEN, dropped_tail_bytes: dropped, elapsed: started.elapsed() };
        let log = AppendLog {
            path,
            rewrite_path,
            dir,
            fsync: cfg.fsync,
            log: Sink { file, len: end, torn: false },
            pending: Vec::new(),
            rewrite: None,
            syncer,
            faults: Faults::default(),
        };
        Ok((log, stats))
    }

    /// Encodes `rec` into the pending buffer. No syscall. While a rewrite is
    /// active, also into the rewrite's pending buffer.
    pub fn stage(&mut self, rec: &Record<'_>) {
        let start = self.pending.len();
        rec.encode(&mut self.pending);
        if let Some(rw) = &mut self.rewrite {
            rw.pending.extend_from_slice(&self.pending[start..]);
        }
    }

    /// Whether [`commit`](AppendLog::commit) has bytes to write: staged
    /// records, or snapshot records of a rewrite.
    pub fn has_staged(&self) -> bool {
        !self.pending.is_empty() || self.rewrite.as_ref().is_some_and(|rw| !rw.pending.is_empty())
    }

    /// Writes everything staged (retrying short writes and EINTR), then
    /// fsyncs under [`Fsync::Always`]. While a rewrite is active, also writes
    /// the rewrite file (and under `Always` fsyncs it once its switch has
    /// started; before that the switch's own fsync covers it).
    ///
    /// On an error of the log, the file is cut back to its last committed
    /// length, the staged bytes are dropped and the error is returned: the
    /// caller rolls back its store. A rewrite still taking its snapshot is
    /// abandoned then (its snapshot may hold the rolled-back writes). An
    /// error of the rewrite file abandons the rewrite with a warning and is
    /// not an error of the commit, unless the rewrite file was already
    /// renamed into place: then it is the log, and its error is the commit's.
    pub fn commit(&mut self) -> io::Result<()> {
        let main_n = self.pending.len();
        let rw_n = self.rewrite.as_ref().map_or(0, |rw| rw.pending.len());
        if main_n > 0 {
            let fault = self.faults.main_write();
            if let Err(e) = self.log.write(&self.pending, fault) {
                return Err(self.fail_commit(e));
            }
        }
        let mut rw_err = None;
        if let Some(rw) = &mut self.rewrite
            && rw_n > 0
            && let Err(e) = rw.sink.write(&rw.pending, self.faults.rewrite_write())
        {
            rw_err = Some(e);
        }
        if self.fsync == Fsync::Always {
            if main_n > 0 {
                let synced =
                    if self.faults.main_sync() { Err(io::Error::other("injected fsync failure")) } else { Ok(()) };
                if let Err(e) = synced.and_then(|()| self.log.file.sync_data()) {
                    return Err(self.fail_commit(e));
                }
            }
            if let Some(rw) = &self.rewrite
                && rw_err.is_none()
                && rw_n > 0
                && matches!(rw.phase, Phase::Switching { .. })
                && let Err(e) = rw.sink.file.sync_data()
            {
                rw_err = Some(e);
            }
        }
        if let Some(e) = rw_err {
            if self.cancel_switch() {
                log::warn!("{}: log rewrite abandoned: {e}", self.rewrite_path.display());
                self.discard_rewrite();
            } else {
                return Err(self.fail_commit(e));
            }
        }

        self.log.len += main_n as u64;
        self.pending.clear();
        let mut seal = false;
        if let Some(rw) = &mut self.rewrite {
            rw.sink.len += rw_n as u64;
            rw.pending.clear();
            seal = matches!(rw.phase, Phase::Sealed);
        }
        if let Some(s) = &self.syncer
            && main_n + rw_n > 0
        {
            s.mark_dirty();
        }
        if seal && let Err(e) = self.start_switch() {
            log::warn!("{}: log rewrite abandoned: cannot start its thread: {e}", self.rewrite_path.display());
            self.discard_rewrite();
        }
        Ok(())
    }

    /// Undoes a failed commit (see [`commit`](AppendLog::commit)) and hands back its error.
    fn fail_commit(&mut self, e: io::Error) -> io::Error {
        self.log.cut_back(&self.path);
        self.pending.clear();
        if let Some(rw) = &mut self.rewrite {
            if matches!(rw.phase, Phase::Switching { .. }) {
                // Its pending bytes are exactly the failed batch.
                rw.sink.cut_back(&self.rewrite_path);
                rw.pending.clear();
            } else {
                log::warn!(
                    "{}: log rewrite abandoned: the log failed ({e}) and its snapshot may hold rolled-back writes",
                    self.rewrite_path.display()
                );
                self.discard_rewrite();
            }
        }
        e
    }

    /// Bytes in the log file, header included, as committed.
    pub fn len(&self) -> u64 {
        self.log.len
    }

    /// Whether the log holds no record (only its header).
    pub fn is_empty(&self) -> bool {
        self.log.len <= HEADER_LEN
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fsyncs the log (and a rewrite in progress) now, whatever the policy:
    /// at shutdown, and in tests.
    pub fn sync_all(&mut self) -> io::Result<()> {
        if let Some(s) = &self.syncer {
            s.shared.dirty.store(false, Ordering::Release);
        }
        self.log.file.sync_all()?;
        if let Some(rw) = &self.rewrite {
            rw.sink.file.sync_all()?;
        }
        Ok(())
    }

    /// Starts a compaction: creates (or truncates) and locks
    /// `kvstore.aof.rewrite` and writes the header and `head` (watermarks,
    /// the last FLUSHALL). From now on staged records also go to the
    /// rewrite; records staged but not yet committed are copied to it too.
    /// Fails if a rewrite is already under way.
    pub fn begin_rewrite(&mut self, head: &[Record<'_>]) -> io::Result<()> {
        if self.rewrite.is_some() {
            return Err(io::Error::other("a log rewrite is already under way"));
        }
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&self.rewrite_path)?;
        let mut buf = header().to_vec();
        for rec in head {
            rec.encode(&mut buf);
        }
        let setup = match file.try_lock() {
            Ok(()) => file.write_all_at(&buf, 0),
            Err(TryLockError::WouldBlock) => Err(io::Error::other("the rewrite file is locked")),
            Err(TryLockError::Error(e)) => Err(e),
        };
        if let Err(e) = setup {
            drop(file);
            let _ = fs::remove_file(&self.rewrite_path);
            return Err(e);
        }
        let file = Arc::new(file);
        if let Some(s) = &self.syncer {
            s.set_rewrite(Some(Arc::clone(&file)));
        }
        self.rewrite = Some(Rewrite {
            sink: Sink { file, len: buf.len() as u64, torn: false },
            pending: self.pending.clone(),
            started: Instant::now(),
            phase: Phase::Snapshot,
        });
        Ok(())
    }

    /// Buffers one snapshot record for the rewrite; it is written at the next
    /// [`commit`](AppendLog::commit) or [`finish_rewrite`](AppendLog::finish_rewrite).
    /// Ignored if no rewrite is taking its snapshot (a caller bug, asserted in
    /// debug builds).
    pub fn rewrite_record(&mut self, rec: &Record<'_>) {
        match &mut self.rewrite {
            Some(rw) if matches!(rw.phase, Phase::Snapshot) => rec.encode(&mut rw.pending),
            _ => debug_assert!(false, "rewrite_record without a rewrite taking its snapshot"),
        }
    }

    /// The snapshot is complete: writes what is buffered for the rewrite and
    /// starts the helper thread that fsyncs it, renames it over the log and
    /// fsyncs the directory. If records are staged but not committed, the
    /// helper starts right after the next successful commit instead (the
    /// rewrite file must not become the log while it holds records the caller
    /// may yet roll back). On error the rewrite is abandoned.
    pub fn finish_rewrite(&mut self) -> io::Result<()> {
        let fault = self.faults.rewrite_write();
        let Some(rw) = &mut self.rewrite else {
            return Err(io::Error::other("no log rewrite under way"));
        };
        if !matches!(rw.phase, Phase::Snapshot) {
            return Err(io::Error::other("the log rewrite is already finishing"));
        }
        if let Err(e) = rw.sink.write(&rw.pending, fault) {
            log::warn!("{}: log rewrite abandoned: {e}", self.rewrite_path.display());
            self.discard_rewrite();
            return Err(e);
        }
        rw.sink.len += rw.pending.len() as u64;
        rw.pending.clear();
        if !self.pending.is_empty() {
            rw.phase = Phase::Sealed;
            return Ok(());
        }
        self.start_switch().inspect_err(|e| {
            log::warn!("{}: log rewrite abandoned: cannot start its thread: {e}", self.rewrite_path.display());
            self.discard_rewrite();
        })
    }

    fn start_switch(&mut self) -> io::Result<()> {
        let Some(rw) = &mut self.rewrite else { return Ok(()) };
        let gate = Arc::new(Mutex::new(Gate::default()));
        let job = Switch {
            file: Arc::clone(&rw.sink.file),
            from: self.rewrite_path.clone(),
            to: self.path.clone(),
            dir: self.dir.clone(),
            gate: Arc::clone(&gate),
            #[cfg(test)]
            fail: std::mem::take(&mut self.faults.switch),
            #[cfg(test)]
            hold: self.faults.hold_switch.take(),
        };
        let (tx, done) = mpsc::channel();
        let helper = thread::Builder::new().name("kvstore-aof-rewrite".into()).spawn(move || {
            let _ = tx.send(job.run());
        })?;
        rw.phase = Phase::Switching { done, helper, gate };
        Ok(())
    }

    /// Non-blocking: `Some` once, when the rewrite's helper has reported.
    ///
    /// `Some(Ok)`: the new file is the log (its fd replaced the old one, the
    /// old one is closed, [`len`](AppendLog::len) is the new length).
    /// `Some(Err)` before the rename: the rewrite file is deleted and the old
    /// log stays. `Some(Err)` after the rename (only the directory fsync can
    /// fail then): the switch is done all the same, but the rename may not
    /// survive a crash of the machine; the error is logged and returned.
    pub fn poll_rewrite(&mut self) -> Option<io::Result<RewriteDone>> {
        let Phase::Switching { done, gate, .. } = &self.rewrite.as_ref()?.phase else {
            return None;
        };
        let outcome = match done.try_recv() {
            Ok(r) => r,
            Err(TryRecvError::Empty) => return None,
            Err(TryRecvError::Disconnected) => Err(io::Error::other("the log rewrite thread died")),
        };
        let renamed = lock(gate).renamed;
        let rw = self.rewrite.take()?;
        if let Phase::Switching { helper, .. } = rw.phase
            && helper.join().is_err()
        {
            log::error!("{}: the log rewrite thread panicked", self.rewrite_path.display());
        }
        if !renamed {
            let e = outcome.err().unwrap_or_else(|| io::Error::other("log rewrite not renamed"));
            log::warn!("{}: log rewrite failed: {e}", self.rewrite_path.display());
            self.remove_rewrite_file();
            if let Some(s) = &self.syncer {
                s.set_rewrite(None);
            }
            return Some(Err(e));
        }
        // Staged-but-uncommitted bytes are in both pending buffers alike:
        // keep the log's.
        let done = RewriteDone { old_len: self.log.len, new_len: rw.sink.len, elapsed: rw.started.elapsed() };
        if let Some(s) = &self.syncer {
            s.set_targets(Arc::clone(&rw.sink.file), None);
        }
        // The old file was unlinked by the rename: its last close frees all
        // its blocks, which for a large log takes milliseconds. Do it off
        // the event loop.
        let old = std::mem::replace(&mut self.log, rw.sink);
        if std::thread::Builder::new().name("kvstore-log-close".into()).spawn(move || drop(old)).is_err() {
            log::debug!("could not start a thread to close the old log; closed inline");
        }
        match outcome {
            Ok(()) => Some(Ok(done)),
            Err(e) => {
                log::error!(
                    "{}: the log was rewritten but fsyncing its directory failed: {e}; \
                     the switch may not survive a crash",
                    self.dir.display()
                );
                Some(Err(e))
            }
        }
    }

    /// Whether a rewrite is under way (begun and not yet reported by
    /// [`poll_rewrite`](AppendLog::poll_rewrite) or aborted).
    pub fn rewriting(&self) -> bool {
        self.rewrite.is_some()
    }

    /// Stops the rewrite and deletes its file. If the helper thread has
    /// already renamed it into place, it is too late: the rewrite completes
    /// and the next [`poll_rewrite`](AppendLog::poll_rewrite) reports it.
    pub fn abort_rewrite(&mut self) {
        if self.rewrite.is_none() {
            return;
        }
        if self.cancel_switch() {
            self.discard_rewrite();
        } else {
            log::info!("{}: too late to abort the log rewrite: it is in place", self.rewrite_path.display());
        }
    }

    /// Stops a running helper before its rename. Returns false if the rename
    /// already happened (the rewrite file is the log).
    fn cancel_switch(&mut self) -> bool {
        match &self.rewrite {
            Some(Rewrite { phase: Phase::Switching { gate, .. }, .. }) => {
                let mut gate = lock(gate);
                gate.cancelled = true;
                !gate.renamed
            }
            _ => true,
        }
    }

    /// Drops a rewrite that will never be renamed (cancelled first) and
    /// deletes its file. A cancelled helper finishes its fsync and exits
    /// on its own: the loop does not wait for it.
    fn discard_rewrite(&mut self) {
        if self.rewrite.take().is_some() {
            self.remove_rewrite_file();
            if let Some(s) = &self.syncer {
                s.set_rewrite(None);
            }
        }
    }

    fn remove_rewrite_file(&self) {
        match fs::remove_file(&self.rewrite_path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => log::warn!("{}: cannot delete: {e}", self.rewrite_path.display()),
        }
    }
}

impl Drop for AppendLog {
    /// Abandons a rewrite that is not in place yet (never finishing its
    /// rename: a drop is a shutdown, not a reason to switch files), waits for
    /// its helper, and stops the fsync thread (which flushes once more if
    /// anything was written since its last flush). Staged records that were
    /// never committed are dropped, as a crash would.
    fn drop(&mut self) {
        let Some(rw) = self.rewrite.take() else { return };
        let renamed = match rw.phase {
            Phase::Switching { gate, helper, .. } => {
                lock(&gate).cancelled = true;
                let _ = helper.join();
                lock(&gate).renamed
            }
            Phase::Snapshot | Phase::Sealed => false,
        };
        if !renamed {
            self.remove_rewrite_file();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::storage::record::{FLAG_ORDERED, Op, Version};

    /// A unique directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let nanos =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
            let name = format!("kvstore-aof-{}-{}-{nanos}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
            let dir = std::env::temp_dir().join(name);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[derive(Clone, Debug, PartialEq, Eq)]
    struct Owned {
        op: Op,
        flags: u8,
        version: Version,
        key: Vec<u8>,
        value: Vec<u8>,
    }

    impl Owned {
        fn of(r: &Record<'_>) -> Owned {
            Owned { op: r.op, flags: r.flags, version: r.version, key: r.key.to_vec(), value: r.value.to_vec() }
        }
        fn rec(&self) -> Record<'_> {
            Record { op: self.op, flags: self.flags, version: self.version, key: &self.key, value: &self.value }
        }
        fn put(key: &[u8], value: &[u8], counter: u64) -> Owned {
            Owned {
                op: Op::Put,
                flags: FLAG_ORDERED,
                version: Version::new(counter, 1),
                key: key.to_vec(),
                value: value.to_vec(),
            }
        }
        fn del(key: &[u8], counter: u64) -> Owned {
            Owned {
                op: Op::Del,
                flags: FLAG_ORDERED,
                version: Version::new(counter, 1),
                key: key.to_vec(),
                value: vec![],
            }
        }
        fn flush(counter: u64) -> Owned {
            Owned { op: Op::FlushAll, flags: 0, version: Version::new(counter, 1), key: vec![], value: vec![] }
        }
    }

    /// Varied records: binary and empty keys and values, deletes, a flush.
    fn sample(n: u64) -> Vec<Owned> {
        (0..n)
            .map(|i| match i % 7 {
                3 => Owned::del(format!("k{}", i % 5).as_bytes(), i + 1),
                5 => Owned::put(&[0, 255, b'\r', b'\n', i as u8], &[], i + 1),
                6 if i % 21 == 6 => Owned::flush(i + 1),
                _ => Owned::put(b"", &vec![i as u8; (i % 300) as usize], i + 1),
            })
            .collect()
    }

    fn cfg(dir: &Path, fsync: Fsync) -> LogConfig {
        LogConfig { dir: dir.to_path_buf(), fsync, truncate_corrupt: false, max_record: 1 << 20 }
    }

    fn open_all(cfg: &LogConfig) -> Result<(AppendLog, ReplayStats, Vec<Owned>), LogError> {
        let mut got = Vec::new();
        let (log, stats) = AppendLog::open(cfg, |r| got.push(Owned::of(r)))?;
        Ok((log, stats, got))
    }

    fn reopen(cfg: &LogConfig) -> (AppendLog, ReplayStats, Vec<Owned>) {
        open_all(cfg).unwrap()
    }

    fn write_all(log: &mut AppendLog, recs: &[Owned]) {
        for r in recs {
            log.stage(&r.rec());
        }
        log.commit().unwrap();
    }

    fn file_len(path: &Path) -> u64 {
        fs::metadata(path).unwrap().len()
    }

    /// Last-writer-wins by version, tombstones kept: the store's rule.
    #[derive(Default)]
    struct Model {
        keys: HashMap<Vec<u8>, (Version, Option<Vec<u8>>)>,
        floor: Version,
    }

    impl Model {
        fn apply(&mut self, r: &Record<'_>) {
            match r.op {
                Op::Put | Op::Del if r.version > self.floor => {
                    let newer = self.keys.get(r.key).is_none_or(|(v, _)| *v < r.version);
                    if newer {
                        let value = (r.op == Op::Put).then(|| r.value.to_vec());
                        self.keys.insert(r.key.to_vec(), (r.version, value));
                    }
                }
                Op::FlushAll if r.version > self.floor => {
                    self.floor = r.version;
                    let floor = self.floor;
                    self.keys.retain(|_, (v, _)| *v > floor);
                }
                _ => {}
            }
        }
        fn live(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
            self.keys.iter().filter_map(|(k, (_, v))| v.clone().map(|v| (k.clone(), v))).collect()
        }
        /// The snapshot a server would feed a rewrite: the floor, then every key.
        fn snapshot(&self) -> (Vec<Owned>, Vec<Owned>) {
            let head = vec![Owned { op: Op::FlushAll, flags: 0, version: self.floor, key: vec![], value: vec![] }];
            let body = self
                .keys
                .iter()
                .map(|(k, (v, val))| match val {
                    Some(val) => Owned { op: Op::Put, flags: 0, version: *v, key: k.clone(), value: val.clone() },
                    None => Owned { op: Op::Del, flags: 0, version: *v, key: k.clone(), value: vec![] },
                })
                .collect();
            (head, body)
        }
    }

    fn replayed_state(cfg: &LogConfig) -> (AppendLog, BTreeMap<Vec<u8>, Vec<u8>>) {
        let mut m = Model::default();
        let (log, _) = AppendLog::open(cfg, |r| m.apply(r)).unwrap();
        (log, m.live())
    }

    /// Polls `cond` with short yields until it holds or 10 s pass.
    fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(1));
        }
    }

    fn poll_done(log: &mut AppendLog) -> io::Result<RewriteDone> {
        let mut out = None;
        wait_for("the rewrite", || {
            out = log.poll_rewrite();
            out.is_some()
        });
        out.unwrap()
    }

    impl AppendLog {
        /// The running helper's gate, if a helper runs and has not renamed yet.
        fn gate(&self) -> Option<Arc<Mutex<Gate>>> {
            match &self.rewrite {
                Some(Rewrite { phase: Phase::Switching { gate, .. }, .. }) if !lock(gate).renamed => {
                    Some(Arc::clone(gate))
                }
                _ => None,
            }
        }
        fn renamed(&self) -> bool {
            match &self.rewrite {
                Some(Rewrite { phase: Phase::Switching { gate, .. }, .. }) => lock(gate).renamed,
                _ => false,
            }
        }
    }

    #[test]
    fn records_round_trip_in_order_and_append_after_reopen() {
        let tmp = TempDir::new();
        let cfg = cfg(&tmp.0, Fsync::No);
        let recs = sample(500);
        let (mut log, stats, got) = reopen(&cfg);
        assert_eq!((stats.records, got.len()), (0, 0));
        assert!(log.is_empty());
        for chunk in recs[..300].chunks(17) {
            write_all(&mut log, chunk);
        }
        assert!(!log.has_staged());
        assert_eq!(log.len(), file_len(log.path()));
        drop(log);

        let (mut log, stats, got) = reopen(&cfg);
        assert_eq!(got, recs[..300]);
        assert_eq!(stats.records, 300);
        assert_eq!(stats.bytes + HEADER_LEN, log.len());
        assert_eq!(stats.dropped_tail_bytes, 0);
        write_all(&mut log, &recs[300..]);
        assert_eq!(log.len(), file_len(log.path()));
        drop(log);

        let (log, _, got) = reopen(&cfg);
        assert_eq!(got, recs);
        assert_eq!(log.len(), file_len(log.path()));
        let mut head = [0u8; 16];
        head.copy_from_slice(&fs::read(log.path()).unwrap()[..16]);
        assert_eq!(head, *b"KVSTORE\0\x01\0\0\0\0\0\0\0");
    }

    #[test]
    fn replay_spans_read_chunks_and_big_records() {
        let tmp = TempDir::new();
        let mut cfg = cfg(&tmp.0, Fsync::No);
        cfg.max_record = 16 << 20;
        // Records larger than a read chunk, and many small ones around them.
        let mut recs = Vec::new();
        for i in 0..3000u64 {
            let len = if i % 1000 == 500 { READ_CHUNK + 12345 } else { (i * 37 % 5000) as usize };
            recs.push(Owned::put(&i.to_le_bytes(), &vec![i as u8; len], i + 1));
        }
        let (mut log, _, _) = reopen(&cfg);
        write_all(&mut log, &recs);
        drop(log);
        let (_, stats, got) = reopen(&cfg);
        assert_eq!(stats.records, 3000);
        assert!(got == recs);
    }

    #[test]
    fn every_fsync_policy_commits_and_replays() {
        for policy in [Fsync::Always, Fsync::EverySec, Fsync::No] {
            let tmp = TempDir::new();
            let cfg = cfg(&tmp.0, policy);
            let recs = sample(50);
            let (mut log, _, _) = reopen(&cfg);
            write_all(&mut log, &recs[..25]);
            if policy == Fsync::EverySec {
                // The thread flushes on its own and clears the flag.
                let shared = Arc::clone(&log.syncer.as_ref().unwrap().shared);
                wait_for("the background fsync", || !shared.dirty.load(Ordering::Acquire));
            } else {
                assert!(log.syncer.is_none());
            }
            write_all(&mut log, &recs[25..]);
            log.sync_all().unwrap();
            drop(log); // joins the fsync thread: must not hang
            let (_, _, got) = reopen(&cfg);
            assert_eq!(got, recs, "{policy}");
        }
    }

    #[test]
    fn fsync_parses_and_prints() {
        for (s, f) in [("always", Fsync::Always), ("EverySec", Fsync::EverySec), ("NO", Fsync::No)] {
            assert_eq!(s.parse::<Fsync>(), Ok(f));
            assert_eq!(f.to_string().parse::<Fsync>(), Ok(f));
        }
        assert!("sometimes".parse::<Fsync>().unwrap_err().contains("sometimes"));
    }

    /// Writes `recs` to a fresh log and returns its bytes and each record's offset.
    fn build(cfg: &LogConfig, recs: &[Owned]) -> (Vec<u8>, Vec<u64>) {
        let (mut log, _, _) = reopen(cfg);
        let mut offsets = Vec::new();
        for r in recs {
            offsets.push(log.len());
            write_all(&mut log, std::slice::from_ref(r));
        }
        let path = log.path().to_path_buf();
        drop(log);
        (fs::read(path).unwrap(), offsets)
    }

    #[test]
    fn torn_tail_at_every_byte_of_the_last_record() {
        let tmp = TempDir::new();
        let cfg = cfg(&tmp.0, Fsync::No);
        let recs = sample(10);
        let (bytes, offsets) = build(&cfg, &recs);
        let path = tmp.0.join(LOG_FILE);
        let last = offsets[9] as usize;
        let last_len = bytes.len() - last;
        assert!(last_len > FRAME_HEADER + 20);
        let extra = Owned::put(b"after", b"the tear", 99);
        for k in 1..last_len {
            fs::write(&path, &bytes[..bytes.len() - k]).unwrap();
            let (mut log, stats, got) = reopen(&cfg);
            assert_eq!(got, recs[..9], "cut {k}");
            assert_eq!(stats.dropped_tail_bytes, (last_len - k) as u64, "cut {k}");
            assert_eq!(file_len(&path), last as u64, "cut {k}");
            assert_eq!(log.len(), last as u64);
            write_all(&mut log, std::slice::from_ref(&extra));
            drop(log);
            let (_, stats, got) = reopen(&cfg);
            assert_eq!(stats.dropped_tail_bytes, 0);
            assert_eq!(got.len(), 10, "cut {k}");
            assert_eq!(got[..9], recs[..9]);
            assert_eq!(got[9], extra);
        }
    }

    #[test]
    fn zeroed_tail_is_a_torn_tail() {
        let tmp = TempDir::new();
        let cfg = cfg(&tmp.0, Fsync::No);
        let recs = sample(10);
        let (mut bytes, _) = build(&cfg, &recs);
        let good = bytes.len() as u64;
        bytes.extend_from_slice(&[0; 4096]);
        fs::write(tmp.0.join(LOG_FILE), &bytes).unwrap();
        let (log, stats, got) = reopen(&cfg);
        assert_eq!(got, recs);
        assert_eq!(stats.dropped_tail_bytes, 4096);
        assert_eq!((log.len(), file_len(log.path())), (good, good));
    }

    #[test]
    fn damaged_last_record_is_a_torn_tail() {
        let tmp = TempDir::new();
        let cfg = cfg(&tmp.0, Fsync::No);
        let recs = sample(10);
        let (mut bytes, offsets) = build(&cfg, &recs);
        let n = bytes.len();
        bytes[n - 1] ^= 0x55;
        fs::write(tmp.0.join(LOG_FILE), &bytes).unwrap();
        let (_, stats, got) = reopen(&cfg);
        assert_eq!(got, recs[..9]);
        assert_eq!(stats.dropped_tail_bytes, n as u64 - offsets[9]);
    }

    #[test]
    fn corrupt_middle_record_refuses_to_open_unless_allowed() {
        let tmp = TempDir::new();
        let mut cfg = cfg(&tmp.0, Fsync::No);
        let recs = sample(10);
        let (mut bytes, offsets) = build(&cfg, &recs);
        let path = tmp.0.join(LOG_FILE);
        bytes[offsets[3] as usize + FRAME_HEADER + 3] ^= 0x01;
        fs::write(&path, &bytes).unwrap();

        let err = open_all(&cfg).err().unwrap();
        let LogError::Corrupt { offset, .. } = err else { panic!("{err}") };
        assert_eq!(offset, offsets[3]);
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains(&offsets[3].to_string()), "{msg}");
        assert_eq!(fs::read(&path).unwrap(), bytes, "a refused log is left alone");

        // A corrupt length (not a checksum) is caught the same way.
        let mut bad_len = bytes.clone();
        bad_len[offsets[3] as usize + FRAME_HEADER + 3] ^= 0x01;
        bad_len[offsets[3] as usize..offsets[3] as usize + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        fs::write(&path, &bad_len).unwrap();
        assert!(matches!(open_all(&cfg), Err(LogError::Corrupt { offset, .. }) if offset == offsets[3]));

        fs::write(&path, &bytes).unwrap();
        cfg.truncate_corrupt = true;
        let (log, stats, got) = reopen(&cfg);
        assert_eq!(got, recs[..3]);
        assert_eq!(stats.dropped_tail_bytes, bytes.len() as u64 - offsets[3]);
        assert_eq!(file_len(log.path()), offsets[3]);
    }

    #[test]
    fn bad_header_is_refused() {
        let tmp = TempDir::new();
        let cfg = cfg(&tmp.0, Fsync::No);
        let path = tmp.0.join(LOG_FILE);
        let (bytes, _) = build(&cfg, &sample(3));

        let mut magic = bytes.clone();
        magic[0] = b'X';
        fs::write(&path, &magic).unwrap();
        let err = open_all(&cfg).err().unwrap();
        assert!(matches!(err, LogError::BadMagic { .. }), "{err}");
        assert!(err.to_string().contains(&path.display().to_string()));

        let mut version = bytes.clone();
        version[8] = 2;
        fs::write(&path, &version).unwrap();
        let err = open_all(&cfg).err().unwrap();
        assert!(matches!(err, LogError::BadVersion { version: 2, .. }), "{err}");

        fs::write(&path, b"hello").unwrap();
        assert!(matches!(open_all(&cfg), Err(LogError::BadMagic { .. })));

        // A header cut short by a crash at creation is completed.
        fs::write(&path, &bytes[..5]).unwrap();
        let (log, stats, _) = reopen(&cfg);
        assert_eq!((stats.records, log.len()), (0, HEADER_LEN));
    }

    #[test]
    fn creates_missing_directory() {
        let tmp = TempDir::new();
        let cfg = cfg(&tmp.0.join("a/b"), Fsync::Always);
        let (log, _, _) = reopen(&cfg);
        assert_eq!(file_len(log.path()), HEADER_LEN);
    }

    #[test]
    fn second_open_of_a_dir_is_locked() {
        let tmp = TempDir::new();
        let cfg = cfg(&tmp.0, Fsync::EverySec);
        let (log, _, _) = reopen(&cfg);
        let err = open_all(&cfg).err().unwrap();
        assert!(matches!(err, LogError::Locked { .. }), "{err}");
        drop(log);
        reopen(&cfg);
    }

    #[test]
    fn failed_commit_is_cut_back_and_forgotten() {
        for policy in [Fsync::Always, Fsync::No] {
            let tmp = TempDir::new();
            let cfg = cfg(&tmp.0, policy);
            let recs = sample(30);
            let (mut log, _, _) = reopen(&cfg);
            write_all(&mut log, &recs[..10]);
            let good = log.len();

            // A write that lands partly (more than a whole record), then fails.
            log.faults.main_write = Some(recs[10].rec().encoded_len() + 7);
            for r in &recs[10..15] {
                log.stage(&r.rec());
            }
            assert!(log.commit().is_err());
            assert_eq!((log.len(), file_len(log.path())), (good, good));
            assert!(!log.has_staged());

            if policy == Fsync::Always {
                log.faults.main_sync = true;
                log.stage(&recs[15].rec());
                assert!(log.commit().is_err());
                assert_eq!((log.len(), file_len(log.path())), (good, good));
            }

            write_all(&mut log, &recs[20..22]);
            assert_eq!(log.len(), file_len(log.path()));
            drop(log);
            let (_, _, got) = reopen(&cfg);
            assert_eq!(got[..10], recs[..10]);
            assert_eq!(got[10..], recs[20..22]);
        }
    }

    #[test]
    fn torn_sink_is_cut_before_the_next_write() {
        let tmp = TempDir::new();
        let cfg = cfg(&tmp.0, Fsync::No);
        let recs = sample(6);
        let (mut log, _, _) = reopen(&cfg);
        write_all(&mut log, &recs[..2]);
        // As if a failed batch could not be cut back: two rolled-back records
        // past `len`, longer together than the next batch, so that without
        // the cut the second would survive whole after it.
        let long = Owned::put(b"rolled", &[7; 100], 50);
        let mut junk = Vec::new();
        long.rec().encode(&mut junk);
        long.rec().encode(&mut junk);
        log.log.file.write_all_at(&junk, log.len()).unwrap();
        log.log.torn = true;
        write_all(&mut log, &recs[4..5]);
        assert_eq!(log.len(), file_len(log.path()));
        drop(log);
        let (_, _, got) = reopen(&cfg);
        assert_eq!(got, [recs[0].clone(), recs[1].clone(), recs[4].clone()]);
    }

    /// Writes 1000 records with overwrites, deletes and a flush, in batches.
    fn history(log: &mut AppendLog, model: &mut Model, counter: &mut u64) {
        for batch in 0..100u64 {
            for j in 0..10u64 {
                *counter += 1;
                let key = format!("key{}", (batch * 7 + j * 3) % 60).into_bytes();
                let r = match (batch * 10 + j) % 11 {
                    4 => Owned::del(&key, *counter),
                    _ if batch == 40 && j == 0 => Owned::flush(*counter),
                    _ => Owned::put(&key, format!("v{counter}-{}", "x".repeat((j * 13) as usize)).as_bytes(), *counter),
                };
                model.apply(&r.rec());
                log.stage(&r.rec());
            }
            log.commit().unwrap();
        }
    }

    /// One live write: applied to the model once committed.
    fn live_write(log: &mut AppendLog, model: &mut Model, counter: &mut u64) {
        *counter += 1;
        let key = format!("key{}", *counter % 80).into_bytes();
        let r = if counter.is_multiple_of(5) {
            Owned::del(&key, *counter)
        } else {
            Owned::put(&key, format!("live{counter}").as_bytes(), *counter)
        };
        log.stage(&r.rec());
        log.commit().unwrap();
        model.apply(&r.rec());
    }

    /// Where a compaction is interrupted.
    #[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
    enum Stop {
        AfterBegin,
        MidSnapshot,
        AfterSnapshotWrites,
        Sealed,
        /// Helper held after its fsync, before the rename.
        BeforeRename,
        /// The rename happened, the loop has not swapped yet.
        Renamed,
        Swapped,
    }

    /// Runs a compaction under live writes, stopping at `stop`; returns the
    /// log (still open) and the expected state.
    fn compaction(cfg: &LogConfig, stop: Stop) -> (AppendLog, Model, u64, Option<mpsc::Sender<()>>) {
        let mut model = Model::default();
        let mut counter = 0;
        let (mut log, _, _) = reopen(cfg);
        history(&mut log, &mut model, &mut counter);
        let before = log.len();
        let (head, body) = model.snapshot();
        let heads: Vec<_> = head.iter().map(Owned::rec).collect();
        log.begin_rewrite(&heads).unwrap();
        assert!(log.rewriting());
        live_write(&mut log, &mut model, &mut counter);
        if stop == Stop::AfterBegin {
            return (log, model, before, None);
        }
        for (i, chunk) in body.chunks(7).enumerate() {
            for r in chunk {
                log.rewrite_record(&r.rec());
            }
            assert!(log.has_staged());
            live_write(&mut log, &mut model, &mut counter);
            if stop == Stop::MidSnapshot && i == 3 {
                return (log, model, before, None);
            }
        }
        if stop == Stop::AfterSnapshotWrites {
            return (log, model, before, None);
        }
        let (hold_tx, hold_rx) = mpsc::channel();
        log.faults.hold_switch = Some(hold_rx);
        // A record staged across finish: the helper must wait for its commit.
        counter += 1;
        let straddle = Owned::put(b"straddle", b"s", counter);
        log.stage(&straddle.rec());
        log.finish_rewrite().unwrap();
        assert!(matches!(log.rewrite.as_ref().unwrap().phase, Phase::Sealed));
        if stop == Stop::Sealed {
            return (log, model, before, Some(hold_tx));
        }
        log.commit().unwrap();
        model.apply(&straddle.rec());
        assert!(matches!(log.rewrite.as_ref().unwrap().phase, Phase::Switching { .. }));
        live_write(&mut log, &mut model, &mut counter);
        assert!(log.poll_rewrite().is_none());
        if stop == Stop::BeforeRename {
            return (log, model, before, Some(hold_tx));
        }
        hold_tx.send(()).unwrap();
        wait_for("the rename", || log.renamed());
        live_write(&mut log, &mut model, &mut counter);
        if stop == Stop::Renamed {
            return (log, model, before, None);
        }
        let done = poll_done(&mut log).unwrap();
        assert!(!log.rewriting());
        assert!(done.new_len < done.old_len, "{done:?}");
        assert_eq!(log.len(), done.new_len);
        assert_eq!(log.len(), file_len(log.path()));
        live_write(&mut log, &mut model, &mut counter);
        (log, model, before, None)
    }

    #[test]
    fn compaction_under_live_writes_keeps_the_state_and_shrinks_the_log() {
        for policy in [Fsync::Always, Fsync::EverySec, Fsync::No] {
            let tmp = TempDir::new();
            let cfg = cfg(&tmp.0, policy);
            let (log, model, before, _) = compaction(&cfg, Stop::Swapped);
            let after = log.len();
            assert!(after < before / 3, "{after} vs {before}");
            assert_eq!(after, file_len(log.path()));
            drop(log);
            assert!(!tmp.0.join(REWRITE_FILE).exists());
            let (mut log, state) = replayed_state(&cfg);
            assert_eq!(state, model.live(), "{policy}");
            // The new log takes appends and keeps its lock.
            assert!(matches!(open_all(&cfg), Err(LogError::Locked { .. })));
            log.stage(&Owned::put(b"z", b"z", 1 << 40).rec());
            log.commit().unwrap();
            drop(log);
            let (_, state) = replayed_state(&cfg);
            assert_eq!(state.get(&b"z"[..]), Some(&b"z".to_vec()));
        }
    }

    #[test]
    fn crash_at_each_compaction_step_loses_nothing() {
        use Stop::*;
        for stop in [AfterBegin, MidSnapshot, AfterSnapshotWrites, Sealed, BeforeRename, Renamed, Swapped] {
            for keep_rewrite_file in [false, true] {
                let tmp = TempDir::new();
                let cfg = cfg(&tmp.0, Fsync::Always);
                let (log, model, _, hold) = compaction(&cfg, stop);
                let rw_path = tmp.0.join(REWRITE_FILE);
                // A crash leaves the rewrite file as it was: keep a copy to put back.
                let copy = keep_rewrite_file.then(|| fs::read(&rw_path).ok()).flatten();
                if matches!(stop, BeforeRename) {
                    // Also the crash right after the rename: the rewrite file
                    // alone must hold the whole state.
                    let alone = tmp.0.join("alone");
                    fs::create_dir_all(&alone).unwrap();
                    fs::copy(&rw_path, alone.join(LOG_FILE)).unwrap();
                    let (_, state) = replayed_state(&cfg_with_dir(&cfg, &alone));
                    assert_eq!(state, model.live(), "{stop:?}, rewrite file renamed");
                }
                if let Some(gate) = log.gate() {
                    // Drop in another thread, release the held helper only
                    // once drop has cancelled it: the rename must not happen.
                    let old_len = log.len();
                    let dropper = thread::spawn(move || drop(log));
                    wait_for("drop to cancel the rename", || lock(&gate).cancelled);
                    drop(hold);
                    dropper.join().unwrap();
                    assert!(!lock(&gate).renamed, "{stop:?}");
                    assert_eq!(file_len(&tmp.0.join(LOG_FILE)), old_len, "{stop:?}: the old log stays");
                } else {
                    drop(hold);
                    drop(log);
                }
                if stop < Renamed {
                    assert!(!rw_path.exists(), "{stop:?}: drop deletes an unfinished rewrite");
                }
                if let Some(copy) = copy {
                    fs::write(&rw_path, copy).unwrap();
                }
                let (_, state) = replayed_state(&cfg);
                assert_eq!(state, model.live(), "{stop:?}, keep {keep_rewrite_file}");
                assert!(!rw_path.exists(), "{stop:?}: leftover rewrite file removed");
            }
        }
    }

    fn cfg_with_dir(cfg: &LogConfig, dir: &Path) -> LogConfig {
        LogConfig { dir: dir.to_path_buf(), ..cfg.clone() }
    }

    #[test]
    fn abort_and_failures_keep_the_old_log() {
        let tmp = TempDir::new();
        let cfg = cfg(&tmp.0, Fsync::Always);
        let rw_path = tmp.0.join(REWRITE_FILE);

        // abort during the snapshot
        let (mut log, mut model, _, _) = compaction(&cfg, Stop::MidSnapshot);
        log.abort_rewrite();
        assert!(!log.rewriting() && !rw_path.exists());
        let mut counter = 1 << 20;
        live_write(&mut log, &mut model, &mut counter);

        // the helper fails before its rename
        let (head, body) = model.snapshot();
        log.begin_rewrite(&head.iter().map(Owned::rec).collect::<Vec<_>>()).unwrap();
        for r in &body {
            log.rewrite_record(&r.rec());
        }
        log.faults.switch = true;
        log.finish_rewrite().unwrap();
        live_write(&mut log, &mut model, &mut counter);
        assert!(poll_done(&mut log).is_err());
        assert!(!log.rewriting() && !rw_path.exists());
        assert!(log.poll_rewrite().is_none());
        live_write(&mut log, &mut model, &mut counter);

        // the rewrite file fails before the rename: commit still succeeds
        log.begin_rewrite(&[]).unwrap();
        log.faults.rewrite_write = Some(3);
        live_write(&mut log, &mut model, &mut counter);
        assert!(!log.rewriting() && !rw_path.exists());

        // the log fails during a snapshot: the commit fails, the rewrite is dropped
        log.begin_rewrite(&[]).unwrap();
        log.faults.main_write = Some(1);
        log.stage(&Owned::put(b"lost", b"x", counter + 1).rec());
        assert!(log.commit().is_err());
        assert!(!log.rewriting() && !rw_path.exists());
        assert_eq!(log.len(), file_len(log.path()));

        // abort after finish, before the rename
        log.begin_rewrite(&[]).unwrap();
        let (hold_tx, hold_rx) = mpsc::channel();
        log.faults.hold_switch = Some(hold_rx);
        log.finish_rewrite().unwrap();
        log.abort_rewrite();
        assert!(!log.rewriting() && !rw_path.exists());
        drop(hold_tx);
        live_write(&mut log, &mut model, &mut counter);
        drop(log);
        let (_, state) = replayed_state(&cfg);
        assert_eq!(state, model.live());
        assert!(!state.contains_key(&b"lost"[..]));
    }

    #[test]
    fn failures_after_the_rename_fail_the_commit() {
        let tmp = TempDir::new();
        let cfg = cfg(&tmp.0, Fsync::Always);
        let (mut log, mut model, _, _) = compaction(&cfg, Stop::Renamed);
        let mut counter = 1 << 20;
        // The rewrite file is the log now: its failure is the commit's.
        log.faults.rewrite_write = Some(10);
        log.stage(&Owned::put(b"lost", b"x", counter).rec());
        assert!(log.commit().is_err());
        assert!(log.rewriting());
        // Too late to abort: it completes.
        log.abort_rewrite();
        assert!(log.rewriting());
        live_write(&mut log, &mut model, &mut counter);
        poll_done(&mut log).unwrap();
        assert_eq!(log.len(), file_len(log.path()));
        live_write(&mut log, &mut model, &mut counter);
        drop(log);
        let (_, state) = replayed_state(&cfg);
        assert_eq!(state, model.live());
        assert!(!state.contains_key(&b"lost"[..]));
    }

    /// `cargo test --release --lib -- --ignored replay_speed --nocapture`
    #[test]
    #[ignore = "a timing check for release builds"]
    fn replay_speed() {
        let tmp = TempDir::new();
        let cfg = cfg(&tmp.0, Fsync::No);
        let (mut log, _, _) = reopen(&cfg);
        for i in 0..1_000_000u64 {
            log.stage(&Owned::put(format!("key:{i}").as_bytes(), b"value-0123456789", i + 1).rec());
            if i % 10_000 == 0 {
                log.commit().unwrap();
            }
        }
        log.commit().unwrap();
        drop(log);
        let mut n = 0u64;
        let mut sum = 0usize;
        let (_, stats) = AppendLog::open(&cfg, |r| {
            n += 1;
            sum += r.key.len();
        })
        .unwrap();
        println!("replayed {} records ({} bytes) in {:?}", stats.records, stats.bytes, stats.elapsed);
        assert_eq!(n, 1_000_000);
        assert!(sum > 0);
        if !cfg!(debug_assertions) {
            assert!(stats.elapsed < Duration::from_secs(1), "{:?}", stats.elapsed);
        }
    }
}
