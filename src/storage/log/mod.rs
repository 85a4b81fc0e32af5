//! The append-only log: every write the store applies is framed as a
//! [`Record`](crate::storage::record::Record) and appended here before its reply leaves, and at start-up the
//! log is replayed into the store. It knows nothing of commands or sockets.
//!
//! # File format
//!
//! ```text
//! <dir>/kvstore.aof = header  record*
//! header            = "KVSTORE\0"  version:u32le (= 3)  reserved:[0u8; 4]     (16 bytes)
//! record            = len:u32le  crc:u32le  payload                           (see record.rs)
//! ```
//!
//! The header makes a wrong file (or a future format) fail loudly at open
//! instead of being "replayed" as garbage. Version 2 added record deadlines,
//! version 3 counter records; an older log replays unchanged and has its
//! header upgraded once it has (an older build then refuses it instead of
//! misreading a deadline or cutting a counter record as a torn tail). The file is locked (`flock`, via
//! [`File::try_lock`](std::fs::File::try_lock)) for the life of the [`AppendLog`], so two servers
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
//! so it is dropped with a warning (naming the byte count) and the file is
//! cut at X. The rule: the tail is torn if no valid record can be decoded
//! at any offset after X (everything from X zero is the fast case), and it
//! is either a single record cut short by the end of the file or no longer
//! than [`LogConfig::max_torn_tail`] (a longer unreadable tail is
//! [`LogError::LongTail`]: more than a power loss leaves, so a person
//! looks). Otherwise a damaged record sits *before* good ones (a bad
//! checksum, or a length that runs past the end of the file over valid
//! records): that is not a crash artefact but corruption, and silently
//! dropping the records after it would lose acknowledged writes, so open
//! refuses ([`LogError::Corrupt`], which names the offset, the next valid
//! record and `--truncate-corrupt-log`) unless the operator allowed
//! truncation ([`LogConfig::truncate_corrupt`]).
//!
//! # Disk faults
//!
//! Every file operation goes through the [`Storage`] trait ([`Disk`] in
//! production, [`FaultyDisk`] in tests). What each failure does:
//!
//! * A failed write (EIO, ENOSPC, a write that made no progress): the file
//!   is cut back to its committed length, the commit returns the error, the
//!   caller rolls back. The bytes before that length were not touched, so
//!   the next commit may simply try again. If the cut itself fails, it is
//!   done before the next write.
//! * A failed fsync (of a commit under `always`, of the `everysec` thread,
//!   of the directory after a rewrite's rename): the file's state on the
//!   disk is unknown. Linux marks the pages it failed to write clean, so a
//!   retried fsync "succeeds" without writing them (what Postgres learned in
//!   2018: it now panics rather than retry). The log never retries and
//!   trusts: it becomes read-only ([`AppendLog::needs_rewrite`]), every
//!   commit with records fails, until a rewrite *begun after the failure*
//!   is in place: a new file written whole from memory, fsynced, renamed,
//!   its directory fsynced. The node starts that rewrite at once and again
//!   each second while it fails. A rewrite under way at the failure is
//!   abandoned (it cannot be told apart from the failing file's pages).
//! * A fault of the rewrite file before its rename (write, fsync, rename):
//!   the rewrite is abandoned, the old log stays, whole.
//! * A power loss: whatever was not fsynced may read back as zeros,
//!   garbage or nothing; replay cuts it as a torn tail (above).
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
//!
//! # Where the code is
//!
//! This file holds the public types; the work is split by concern:
//! `disk.rs` the storage seam and the real disk, `faulty.rs` the failing
//! one, `format.rs` the header and the lock, `append.rs` stage, commit,
//! the fsync policies and a failed fsync, `replay.rs` open, replay and the
//! torn-tail rule, `rewrite.rs` compaction; `disk_faults.rs` tests each
//! fault.

mod append;
mod disk;
#[cfg(test)]
mod disk_faults;
mod faulty;
mod format;
mod replay;
mod rewrite;
#[cfg(test)]
mod testutil;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
#[cfg(test)]
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use append::{Sink, Syncer};
pub use disk::{Disk, OpenMode, Storage, StorageFile, read_exact_at, write_all_at};
pub use faulty::{Fault, FaultOp, FaultyDisk, LostBytes, Target};
pub use format::{FORMAT_VERSION, HEADER_LEN, MAGIC, OLDEST_FORMAT_VERSION};
use rewrite::Rewrite;

/// The log's file name inside [`LogConfig::dir`].
pub const LOG_FILE: &str = "kvstore.aof";
/// The file a compaction writes before renaming it to [`LOG_FILE`].
pub const REWRITE_FILE: &str = "kvstore.aof.rewrite";

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
    /// The longest unreadable tail (zeros or garbage with no valid record
    /// after it) that open cuts by itself, as a torn tail; a longer one is
    /// [`LogError::LongTail`] unless `truncate_corrupt`. See
    /// [`DEFAULT_MAX_TORN_TAIL`].
    pub max_torn_tail: u64,
}

/// The default [`LogConfig::max_torn_tail`]: 16 MiB. What a power loss can
/// leave unwritten is what was written since the last fsync: one commit
/// under `always`, about a second of writes under `everysec`. A longer
/// unreadable tail is more likely something else (another program wrote
/// the file, a format this build misreads) and deserves a person's look,
/// as Redis bounds what `aof-load-broken` cuts.
pub const DEFAULT_MAX_TORN_TAIL: u64 = 16 << 20;

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
        /// Byte offset of the first valid record after it.
        next_valid: u64,
        /// The file's length: `len - offset` bytes would be cut.
        len: u64,
    },
    /// An unreadable tail (no valid record in it) longer than
    /// [`LogConfig::max_torn_tail`]: too long to be taken for a torn write.
    LongTail {
        /// The log file.
        path: PathBuf,
        /// Byte offset where the valid records end.
        offset: u64,
        /// Bytes from there to the end of the file.
        bytes: u64,
        /// The configured bound.
        max: u64,
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
                "{}: unsupported log format version {version} (this build reads versions {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION})",
                path.display()
            ),
            LogError::Corrupt { path, offset, reason, next_valid, len } => write!(
                f,
                "{}: corrupt record at byte offset {offset} ({reason}), and a valid record at offset \
                 {next_valid}: this is damage in the middle of the log, not a torn write; refusing to start. \
                 Keep a copy of the file, then either repair it by hand or restart with \
                 --truncate-corrupt-log to cut it at offset {offset}, losing the {} bytes from there on",
                path.display(),
                len.saturating_sub(*offset)
            ),
            LogError::LongTail { path, offset, bytes, max } => write!(
                f,
                "{}: {bytes} unreadable bytes (zeros or garbage, no valid record) at the end, from offset \
                 {offset}: more than the {max} bytes cut as a torn write; refusing to start. If the machine \
                 lost power or the disk filled, keep a copy of the file and restart with \
                 --truncate-corrupt-log to cut it at offset {offset}",
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

/// Turns an error of `action` on `path` into a [`LogError::Io`] (for `map_err`).
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
    /// Where the files are: the real disk, or a failing one in tests.
    disk: Arc<dyn Storage>,
    /// Set when an fsync of the log (or of its directory) failed, with the
    /// error: the file's state on the disk is unknown from then on (see
    /// "Disk faults" in the module docs). Commits with records are refused
    /// until a rewrite begun after it is in place.
    failed: Option<String>,
    /// How many times `failed` was set: a rewrite heals the log only if it
    /// began after the last failure.
    failures: u64,
    /// Test-only: holds the rewrite's helper after its fsync, before the
    /// rename, until a message (or hang-up) arrives.
    #[cfg(test)]
    hold_switch: Option<Receiver<()>>,
}

impl AppendLog {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_parses_and_prints() {
        for (s, f) in [("always", Fsync::Always), ("EverySec", Fsync::EverySec), ("NO", Fsync::No)] {
            assert_eq!(s.parse::<Fsync>(), Ok(f));
            assert_eq!(f.to_string().parse::<Fsync>(), Ok(f));
        }
        assert!("sometimes".parse::<Fsync>().unwrap_err().contains("sometimes"));
    }
}
