//! Appending: stage, commit (and undoing a failed commit), the fsync
//! policies and the `everysec` thread (see "Writing: stage, then commit" and
//! "Fsync policies" in the [module docs](super)).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::rewrite::Phase;
use super::{AppendLog, Fsync, lock};
use crate::storage::record::Record;

/// How often the `everysec` thread flushes.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);

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
pub(super) struct Sink {
    /// Shared with the `everysec` thread and the rewrite helper.
    pub(super) file: Arc<File>,
    /// Committed length: the next write goes here, a failed one is cut back to it.
    pub(super) len: u64,
    /// A failed write could not be cut back: cut it before writing again, or
    /// the rolled-back records would outlive a shorter next batch.
    torn: bool,
}

impl Sink {
    /// A sink whose committed length is `len`.
    pub(super) fn new(file: Arc<File>, len: u64) -> Sink {
        Sink { file, len, torn: false }
    }

    /// Writes `buf` at the committed length (first cutting a torn file back
    /// to it); does not move the committed length.
    pub(super) fn write(&mut self, buf: &[u8], fail_after: Option<usize>) -> io::Result<()> {
        if self.torn {
            self.file.set_len(self.len)?;
            self.torn = false;
        }
        write_at(&self.file, buf, self.len, fail_after)
    }

    /// Cuts off whatever a failed batch wrote past the committed length.
    pub(super) fn cut_back(&mut self, path: &Path) {
        if let Err(e) = self.file.set_len(self.len) {
            log::error!("{}: cannot cut a failed write back to {} bytes: {e}", path.display(), self.len);
            self.torn = true;
        }
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

/// What the `everysec` thread flushes, and whether it should stop.
struct SyncTargets {
    stop: bool,
    log: Arc<File>,
    rewrite: Option<Arc<File>>,
}

/// The `everysec` fsync thread: started by open, stopped and joined on drop.
pub(super) struct Syncer {
    shared: Arc<SyncShared>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts the thread, flushing `log` (whose path, for messages, is `path`).
    pub(super) fn start(log: Arc<File>, path: PathBuf) -> io::Result<Syncer> {
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

    /// Replaces both files the thread flushes: after a rewrite's switch.
    pub(super) fn set_targets(&self, log: Arc<File>, rewrite: Option<Arc<File>>) {
        let mut t = lock(&self.shared.state);
        t.log = log;
        t.rewrite = rewrite;
    }

    /// Sets (or, with `None`, clears) the rewrite file the thread also flushes.
    pub(super) fn set_rewrite(&self, rewrite: Option<Arc<File>>) {
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

impl AppendLog {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::log::testutil::*;

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
}
