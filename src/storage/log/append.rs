//! Appending: stage, commit (and undoing a failed commit), the fsync
//! policies and the `everysec` thread (see "Writing: stage, then commit" and
//! "Fsync policies" in the [module docs](super)).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::disk::{StorageFile, write_all_at};
use super::rewrite::Phase;
use super::{AppendLog, Fsync, lock};
use crate::storage::record::Record;

/// How often the `everysec` thread flushes.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// One file the log appends to: the log itself or a rewrite in progress.
pub(super) struct Sink {
    /// Shared with the `everysec` thread and the rewrite helper.
    pub(super) file: Arc<dyn StorageFile>,
    /// Committed length: the next write goes here, a failed one is cut back to it.
    pub(super) len: u64,
    /// A failed write could not be cut back: cut it before writing again, or
    /// the rolled-back records would outlive a shorter next batch.
    torn: bool,
}

impl Sink {
    /// A sink whose committed length is `len`.
    pub(super) fn new(file: Arc<dyn StorageFile>, len: u64) -> Sink {
        Sink { file, len, torn: false }
    }

    /// Writes `buf` at the committed length (first cutting a torn file back
    /// to it); does not move the committed length.
    pub(super) fn write(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.torn {
            self.file.set_len(self.len)?;
            self.torn = false;
        }
        write_all_at(&*self.file, buf, self.len)
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
    /// An fsync failed: the message is in `SyncTargets::failure`.
    failed: AtomicBool,
    state: Mutex<SyncTargets>,
    wake: Condvar,
    path: PathBuf,
}

/// What the `everysec` thread flushes, and whether it should stop.
struct SyncTargets {
    stop: bool,
    log: Arc<dyn StorageFile>,
    rewrite: Option<Arc<dyn StorageFile>>,
    /// The first fsync error since the loop last took one.
    failure: Option<String>,
}

/// The `everysec` fsync thread: started by open, stopped and joined on drop.
pub(super) struct Syncer {
    shared: Arc<SyncShared>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts the thread, flushing `log` (whose path, for messages, is `path`).
    pub(super) fn start(log: Arc<dyn StorageFile>, path: PathBuf) -> io::Result<Syncer> {
        let shared = Arc::new(SyncShared {
            dirty: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            state: Mutex::new(SyncTargets { stop: false, log, rewrite: None, failure: None }),
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
    /// A failure of the files replaced is forgotten.
    pub(super) fn set_targets(&self, log: Arc<dyn StorageFile>, rewrite: Option<Arc<dyn StorageFile>>) {
        let mut t = lock(&self.shared.state);
        t.log = log;
        t.rewrite = rewrite;
        t.failure = None;
        self.shared.failed.store(false, Ordering::Release);
    }

    /// Sets (or, with `None`, clears) the rewrite file the thread also flushes.
    pub(super) fn set_rewrite(&self, rewrite: Option<Arc<dyn StorageFile>>) {
        lock(&self.shared.state).rewrite = rewrite;
    }

    /// The fsync error the thread met since the last call, if any: one
    /// atomic load when there is none.
    fn take_failure(&self) -> Option<String> {
        if !self.shared.failed.swap(false, Ordering::AcqRel) {
            return None;
        }
        lock(&self.shared.state).failure.take()
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
            let mut failure = None;
            for file in std::iter::once(&log).chain(rewrite.as_ref()) {
                if let Err(e) = file.sync_data() {
                    // Not retried: the pages this fsync could not write may
                    // be marked clean, so a retry would "succeed" without
                    // writing them. The loop makes the log read-only until
                    // a rewrite (see "Disk faults" in the module docs).
                    log::error!("{}: background fsync failed: {e}", shared.path.display());
                    failure.get_or_insert_with(|| format!("background fsync: {e}"));
                }
            }
            targets = lock(&shared.state);
            // Unless the files were swapped meanwhile (a failure of the
            // old ones no longer matters).
            if let Some(why) = failure
                && Arc::ptr_eq(&targets.log, &log)
            {
                targets.failure.get_or_insert(why);
                shared.failed.store(true, Ordering::Release);
            }
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
    ///
    /// A failed fsync (of this commit, or of the `everysec` thread) also
    /// makes the log read-only: from then on a commit with records fails at
    /// once, until a rewrite begun after the failure is in place (see "Disk
    /// faults" in the module docs and [`needs_rewrite`](AppendLog::needs_rewrite)).
    pub fn commit(&mut self) -> io::Result<()> {
        self.check_background();
        let main_n = self.pending.len();
        if main_n > 0
            && let Some(why) = &self.failed
        {
            let e = io::Error::other(format!("the log is read-only until it is rewritten: {why}"));
            return Err(self.fail_commit(e));
        }
        let rw_n = self.rewrite.as_ref().map_or(0, |rw| rw.pending.len());
        if main_n > 0
            && let Err(e) = self.log.write(&self.pending)
        {
            return Err(self.fail_commit(e));
        }
        // The rewrite file's error, and whether an fsync (not a write) failed.
        let mut rw_err = None;
        if let Some(rw) = &mut self.rewrite
            && rw_n > 0
            && let Err(e) = rw.sink.write(&rw.pending)
        {
            rw_err = Some((e, false));
        }
        if self.fsync == Fsync::Always {
            if main_n > 0
                && let Err(e) = self.log.file.sync_data()
            {
                let e = self.fail_commit(e);
                self.poison(format!("fsync failed: {e}"));
                return Err(e);
            }
            if let Some(rw) = &self.rewrite
                && rw_err.is_none()
                && rw_n > 0
                && matches!(rw.phase, Phase::Switching { .. })
                && let Err(e) = rw.sink.file.sync_data()
            {
                rw_err = Some((e, true));
            }
        }
        if let Some((e, synced)) = rw_err {
            if self.cancel_switch() {
                log::warn!("{}: log rewrite abandoned: {e}", self.rewrite_path.display());
                self.discard_rewrite();
            } else {
                let e = self.fail_commit(e);
                if synced {
                    self.poison(format!("fsync failed: {e}"));
                }
                return Err(e);
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
        self.check_background();
        if let Some(why) = &self.failed {
            return Err(io::Error::other(format!("the log was not rewritten since an fsync failed: {why}")));
        }
        if let Some(s) = &self.syncer {
            s.shared.dirty.store(false, Ordering::Release);
        }
        let synced = self.log.file.sync_all();
        if let Err(e) = &synced {
            self.poison(format!("fsync failed: {e}"));
        }
        synced?;
        if let Some(rw) = &self.rewrite {
            rw.sink.file.sync_all()?;
        }
        Ok(())
    }

    /// Whether the log is read-only because an fsync failed, until a
    /// rewrite is in place: the caller should start one (and retry it while
    /// it fails). See "Disk faults" in the module docs.
    pub fn needs_rewrite(&self) -> bool {
        self.failed.is_some()
    }

    /// Why the log needs a rewrite, if it does.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Takes in an fsync error the `everysec` thread met (one atomic load
    /// when there is none); returns whether the log needs a rewrite now.
    /// [`commit`](AppendLog::commit) calls it; call it once per loop
    /// iteration too, so that a failure is acted on without waiting for a
    /// write.
    pub fn check_background(&mut self) -> bool {
        if let Some(why) = self.syncer.as_ref().and_then(Syncer::take_failure) {
            self.poison(why);
        }
        self.failed.is_some()
    }

    /// An fsync of the log failed: its state on the disk is unknown. Makes
    /// it read-only until a rewrite begun from now on is in place, and
    /// abandons a rewrite still under way (unless it is in place already:
    /// then it is the log, and it needs a rewrite as well).
    pub(super) fn poison(&mut self, why: String) {
        log::error!(
            "{}: {why}; the file's contents on the disk are unknown: writes are refused until the log is \
             rewritten (fsync is not retried: a retry can succeed without writing what the failed one did not)",
            self.path.display()
        );
        self.failures += 1;
        self.failed = Some(why);
        if self.rewrite.is_some() && self.cancel_switch() {
            log::warn!("{}: log rewrite abandoned after a failed fsync", self.rewrite_path.display());
            self.discard_rewrite();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::log::testutil::*;
    use crate::storage::log::{Fault, FaultOp, FaultyDisk, Target};

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
            let disk = FaultyDisk::new();
            let (mut log, _, _) = reopen_on(&disk, &cfg);
            write_all(&mut log, &recs[..10]);
            let good = log.len();

            // A write that lands partly (more than a whole record), then fails.
            let lands = recs[10].rec().encoded_len() + 7;
            disk.inject(Fault::new(FaultOp::Write, Target::Log).errno(libc::ENOSPC).lands(lands));
            for r in &recs[10..15] {
                log.stage(&r.rec());
            }
            assert_eq!(log.commit().unwrap_err().raw_os_error(), Some(libc::ENOSPC));
            assert_eq!((log.len(), file_len(log.path())), (good, good));
            assert!(!log.has_staged() && !log.needs_rewrite());

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
        write_all_at(&*log.log.file, &junk, log.len()).unwrap();
        log.log.torn = true;
        write_all(&mut log, &recs[4..5]);
        assert_eq!(log.len(), file_len(log.path()));
        drop(log);
        let (_, _, got) = reopen(&cfg);
        assert_eq!(got, [recs[0].clone(), recs[1].clone(), recs[4].clone()]);
    }
}
