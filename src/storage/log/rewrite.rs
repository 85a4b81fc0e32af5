//! Compaction: a rewrite of the log into a snapshot of the live state,
//! built while live writes go on, and the helper thread that fsyncs it and
//! renames it over the log (see "Compaction (rewrite)" in the
//! [module docs](super), which also argues why each crash point is safe).

use std::io::{self, ErrorKind};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use super::append::Sink;
use super::disk::{OpenMode, Storage, StorageFile, write_all_at};
use super::format::header;
use super::{AppendLog, RewriteDone, lock};
use crate::storage::record::Record;

/// Rename-or-cancel, decided once under the mutex.
#[derive(Default)]
pub(super) struct Gate {
    cancelled: bool,
    renamed: bool,
}

/// Where a rewrite is.
pub(super) enum Phase {
    /// Taking snapshot records.
    Snapshot,
    /// `finish_rewrite` was called while records were staged: the helper
    /// starts after the next successful commit.
    Sealed,
    /// The helper thread is fsyncing and renaming.
    Switching { done: Receiver<io::Result<()>>, helper: JoinHandle<()>, gate: Arc<Mutex<Gate>> },
}

/// A rewrite under way: its file, what to write to it at the next commit.
pub(super) struct Rewrite {
    /// The rewrite file.
    pub(super) sink: Sink,
    /// Snapshot records and copies of staged records, written at commit.
    pub(super) pending: Vec<u8>,
    started: Instant,
    pub(super) phase: Phase,
    /// Begun while the log needed a rewrite, after its failure number
    /// this: once in place, it heals the log unless another failure came.
    heals: Option<u64>,
}

/// The helper thread's work: make the rewrite file durable and put it in
/// place of the log.
struct Switch {
    file: Arc<dyn StorageFile>,
    disk: Arc<dyn Storage>,
    from: PathBuf,
    to: PathBuf,
    dir: PathBuf,
    gate: Arc<Mutex<Gate>>,
    #[cfg(test)]
    hold: Option<Receiver<()>>,
}

impl Switch {
    /// Fsyncs the rewrite file, renames it over the log unless cancelled,
    /// then fsyncs the directory.
    fn run(self) -> io::Result<()> {
        self.file.sync_all()?;
        #[cfg(test)]
        {
            if let Some(hold) = &self.hold {
                let _ = hold.recv();
            }
        }
        {
            // Held across the rename so that a cancel either precedes it
            // (no rename) or sees `renamed` (too late to cancel).
            let mut gate = lock(&self.gate);
            if gate.cancelled {
                return Err(io::Error::new(ErrorKind::Interrupted, "log rewrite cancelled"));
            }
            self.disk.rename(&self.from, &self.to)?;
            gate.renamed = true;
        }
        self.disk.sync_dir(&self.dir)
    }
}

impl AppendLog {
    /// Starts a compaction: creates (or truncates) and locks
    /// `kvstore.aof.rewrite` and writes the header and `head` (watermarks,
    /// the last FLUSHALL). From now on staged records also go to the
    /// rewrite; records staged but not yet committed are copied to it too.
    /// Fails if a rewrite is already under way.
    pub fn begin_rewrite(&mut self, head: &[Record<'_>]) -> io::Result<()> {
        if self.rewrite.is_some() {
            return Err(io::Error::other("a log rewrite is already under way"));
        }
        let file = self.disk.open(&self.rewrite_path, OpenMode::Truncate)?;
        let mut buf = header().to_vec();
        for rec in head {
            rec.encode(&mut buf);
        }
        let setup = match file.try_lock() {
            Ok(true) => write_all_at(&*file, &buf, 0),
            Ok(false) => Err(io::Error::other("the rewrite file is locked")),
            Err(e) => Err(e),
        };
        if let Err(e) = setup {
            drop(file);
            let _ = self.disk.remove_file(&self.rewrite_path);
            return Err(e);
        }
        if let Some(s) = &self.syncer {
            s.set_rewrite(Some(Arc::clone(&file)));
        }
        self.rewrite = Some(Rewrite {
            sink: Sink::new(file, buf.len() as u64),
            pending: self.pending.clone(),
            started: Instant::now(),
            phase: Phase::Snapshot,
            heals: self.failed.is_some().then_some(self.failures),
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
        let Some(rw) = &mut self.rewrite else {
            return Err(io::Error::other("no log rewrite under way"));
        };
        if !matches!(rw.phase, Phase::Snapshot) {
            return Err(io::Error::other("the log rewrite is already finishing"));
        }
        if let Err(e) = rw.sink.write(&rw.pending) {
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

    /// Starts the helper thread that fsyncs the rewrite file and renames it
    /// over the log (nothing to do without a rewrite).
    pub(super) fn start_switch(&mut self) -> io::Result<()> {
        let Some(rw) = &mut self.rewrite else { return Ok(()) };
        let gate = Arc::new(Mutex::new(Gate::default()));
        let job = Switch {
            file: Arc::clone(&rw.sink.file),
            disk: Arc::clone(&self.disk),
            from: self.rewrite_path.clone(),
            to: self.path.clone(),
            dir: self.dir.clone(),
            gate: Arc::clone(&gate),
            #[cfg(test)]
            hold: self.hold_switch.take(),
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
    /// survive a crash of the machine, and writes after it would then be
    /// lost with the new file: the log needs a rewrite again
    /// ([`needs_rewrite`](AppendLog::needs_rewrite)); the error is logged
    /// and returned.
    ///
    /// A rewrite begun after an fsync failure, once in place, makes the log
    /// writable again (unless another failure came meanwhile).
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
            Ok(()) => {
                if self.failed.is_some() && rw.heals == Some(self.failures) {
                    log::info!(
                        "{}: the log was rewritten whole after a failed fsync: writes are accepted again",
                        self.path.display()
                    );
                    self.failed = None;
                }
                Some(Ok(done))
            }
            Err(e) => {
                self.poison(format!("fsyncing the directory {} after a log rewrite failed: {e}", self.dir.display()));
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
    pub(super) fn cancel_switch(&mut self) -> bool {
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
    pub(super) fn discard_rewrite(&mut self) {
        if self.rewrite.take().is_some() {
            self.remove_rewrite_file();
            if let Some(s) = &self.syncer {
                s.set_rewrite(None);
            }
        }
    }

    /// Deletes the rewrite file; a missing one is fine.
    fn remove_rewrite_file(&self) {
        match self.disk.remove_file(&self.rewrite_path) {
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
    use std::fs;
    use std::path::Path;

    use super::*;
    use crate::storage::log::testutil::*;
    use crate::storage::log::{Fault, FaultOp, FaultyDisk, Fsync, LOG_FILE, LogConfig, LogError, REWRITE_FILE, Target};
    use crate::storage::record::{Op, Version};

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
            let head = vec![Owned {
                op: Op::FlushAll,
                flags: 0,
                version: self.floor,
                key: vec![],
                value: vec![],
                deadline: None,
            }];
            let body = self
                .keys
                .iter()
                .map(|(k, (v, val))| match val {
                    Some(val) => {
                        Owned { op: Op::Put, flags: 0, version: *v, key: k.clone(), value: val.clone(), deadline: None }
                    }
                    None => Owned { op: Op::Del, flags: 0, version: *v, key: k.clone(), value: vec![], deadline: None },
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
    fn compaction(disk: &FaultyDisk, cfg: &LogConfig, stop: Stop) -> (AppendLog, Model, u64, Option<mpsc::Sender<()>>) {
        let mut model = Model::default();
        let mut counter = 0;
        let (mut log, _, _) = reopen_on(disk, cfg);
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
        log.hold_switch = Some(hold_rx);
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
            let (log, model, before, _) = compaction(&FaultyDisk::new(), &cfg, Stop::Swapped);
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
                let (log, model, _, hold) = compaction(&FaultyDisk::new(), &cfg, stop);
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
        let disk = FaultyDisk::new();
        let (mut log, mut model, _, _) = compaction(&disk, &cfg, Stop::MidSnapshot);
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
        disk.inject(Fault::new(FaultOp::Rename, Target::Rewrite));
        log.finish_rewrite().unwrap();
        live_write(&mut log, &mut model, &mut counter);
        assert!(poll_done(&mut log).is_err());
        assert!(!log.rewriting() && !rw_path.exists());
        assert!(log.poll_rewrite().is_none());
        live_write(&mut log, &mut model, &mut counter);

        // the rewrite file fails before the rename: commit still succeeds
        log.begin_rewrite(&[]).unwrap();
        disk.inject(Fault::new(FaultOp::Write, Target::Rewrite).lands(3));
        live_write(&mut log, &mut model, &mut counter);
        assert!(!log.rewriting() && !rw_path.exists());

        // the log fails during a snapshot: the commit fails, the rewrite is dropped
        log.begin_rewrite(&[]).unwrap();
        disk.inject(Fault::new(FaultOp::Write, Target::Log).lands(1));
        log.stage(&Owned::put(b"lost", b"x", counter + 1).rec());
        assert!(log.commit().is_err());
        assert!(!log.rewriting() && !rw_path.exists());
        assert_eq!(log.len(), file_len(log.path()));

        // abort after finish, before the rename
        log.begin_rewrite(&[]).unwrap();
        let (hold_tx, hold_rx) = mpsc::channel();
        log.hold_switch = Some(hold_rx);
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
        let disk = FaultyDisk::new();
        let (mut log, mut model, _, _) = compaction(&disk, &cfg, Stop::Renamed);
        let mut counter = 1 << 20;
        // The rewrite file is the log now: its failure is the commit's.
        // (Its name is the log's: the fault names the file by its name.)
        disk.inject(Fault::new(FaultOp::Write, Target::Log).nth(2).lands(10));
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
}
