//! The log over a [`FaultyDisk`]: every fault the storage seam can inject
//! (write and fsync errors, EIO and ENOSPC, short writes, faults during a
//! compaction, a power loss leaving zeros, garbage or nothing), each
//! checked the same way: a commit that returned `Ok` is in the log after a
//! restart (after a power loss too, under `--fsync always`), a commit that
//! failed is not, and the log opens.

use std::sync::Arc;

use super::testutil::*;
use super::{
    AppendLog, Fault, FaultOp, FaultyDisk, Fsync, LogConfig, LogError, LostBytes, REWRITE_FILE, Storage, Target,
};

/// The log and what it acknowledged.
struct Acked {
    log: AppendLog,
    acked: Vec<Owned>,
    next: u64,
}

impl Acked {
    fn open(disk: &FaultyDisk, cfg: &LogConfig) -> Acked {
        let (log, _, acked) = reopen_on(disk, cfg);
        let next = acked.len() as u64 + 1000;
        Acked { log, acked, next }
    }

    /// Commits `n` new records; they are acknowledged if the commit is `Ok`.
    fn commit(&mut self, n: usize) -> std::io::Result<()> {
        let recs: Vec<Owned> = (0..n)
            .map(|_| {
                self.next += 1;
                Owned::put(format!("k{}", self.next).as_bytes(), &[b'v'; 40], self.next)
            })
            .collect();
        for r in &recs {
            self.log.stage(&r.rec());
        }
        let r = self.log.commit();
        assert!(!self.log.has_staged());
        if r.is_ok() {
            self.acked.extend(recs);
        }
        r
    }

    /// Rewrites the log from what it acknowledged (as the node does from its
    /// store) and waits for the switch.
    fn rewrite(&mut self) -> std::io::Result<()> {
        self.log.begin_rewrite(&[])?;
        for r in &self.acked {
            self.log.rewrite_record(&r.rec());
        }
        self.log.finish_rewrite()?;
        let mut out = None;
        wait_for("the rewrite", || {
            out = self.log.poll_rewrite();
            out.is_some()
        });
        out.unwrap().map(|_| ())
    }

    /// Closes the log and opens it again: exactly the acknowledged records.
    #[track_caller]
    fn reopen_and_check(self, disk: &FaultyDisk, cfg: &LogConfig) -> Acked {
        let Acked { log, acked, next } = self;
        drop(log);
        let (log, _, got) = reopen_on(disk, cfg);
        assert_eq!(got, acked, "the log holds exactly the acknowledged records");
        Acked { log, acked, next }
    }
}

const ERRNOS: [i32; 2] = [libc::EIO, libc::ENOSPC];

#[test]
fn write_errors_fail_the_commit_and_the_next_one_succeeds() {
    for policy in [Fsync::Always, Fsync::EverySec, Fsync::No] {
        for errno in ERRNOS {
            let tmp = TempDir::new();
            let cfg = cfg(&tmp.0, policy);
            let disk = FaultyDisk::new();
            let mut a = Acked::open(&disk, &cfg);
            a.commit(5).unwrap();
            // The 2nd write from now fails after landing part of its batch.
            disk.inject(Fault::new(FaultOp::Write, Target::Log).nth(2).errno(errno).lands(61));
            a.commit(3).unwrap();
            let len = a.log.len();
            assert_eq!(a.commit(4).unwrap_err().raw_os_error(), Some(errno));
            assert_eq!((a.log.len(), file_len(a.log.path())), (len, len), "cut back");
            assert!(!a.log.needs_rewrite(), "a write error does not make the file's state unknown");
            a.commit(2).unwrap();
            // A disk that stays full: every commit fails until it is not.
            disk.inject(Fault::new(FaultOp::Write, Target::Log).errno(errno).lands(3).sticky());
            for _ in 0..3 {
                assert!(a.commit(1).is_err());
            }
            disk.heal();
            a.commit(3).unwrap();
            let a = a.reopen_and_check(&disk, &cfg);
            assert_eq!(a.acked.len(), 13, "{policy} {errno}");
        }
    }
}

#[test]
fn a_cut_back_that_fails_is_done_before_the_next_write() {
    let tmp = TempDir::new();
    let cfg = cfg(&tmp.0, Fsync::Always);
    let disk = FaultyDisk::new();
    let mut a = Acked::open(&disk, &cfg);
    a.commit(3).unwrap();
    disk.inject(Fault::new(FaultOp::Write, Target::Log).lands(100));
    disk.inject(Fault::new(FaultOp::SetLen, Target::Log));
    assert!(a.commit(4).is_err());
    assert!(file_len(a.log.path()) > a.log.len(), "the failed batch is still there");
    a.commit(1).unwrap();
    assert_eq!(file_len(a.log.path()), a.log.len());
    a.reopen_and_check(&disk, &cfg);
}

#[test]
fn short_writes_are_completed() {
    let tmp = TempDir::new();
    let cfg = cfg(&tmp.0, Fsync::Always);
    let disk = FaultyDisk::new();
    let mut a = Acked::open(&disk, &cfg);
    disk.short_writes(Some(7));
    let before = disk.calls().0;
    a.commit(20).unwrap();
    assert!(disk.calls().0 - before > 100, "the batch went in 7-byte writes");
    a.rewrite().unwrap();
    a.commit(3).unwrap();
    disk.heal();
    a.reopen_and_check(&disk, &cfg);
}

#[test]
fn a_failed_fsync_makes_the_log_read_only_until_a_rewrite() {
    for errno in ERRNOS {
        let tmp = TempDir::new();
        let cfg = cfg(&tmp.0, Fsync::Always);
        let disk = FaultyDisk::new();
        let mut a = Acked::open(&disk, &cfg);
        a.commit(10).unwrap();
        disk.inject(Fault::new(FaultOp::Sync, Target::Log).errno(errno));
        assert_eq!(a.commit(4).unwrap_err().raw_os_error(), Some(errno));
        assert!(a.log.needs_rewrite());
        assert!(a.log.failure().is_some_and(|w| w.contains("fsync")));
        // The disk works again, but an fsync is never retried and trusted:
        // commits fail (an empty one, with nothing to lose, does not).
        let syncs = disk.calls().1;
        assert!(a.commit(1).unwrap_err().to_string().contains("read-only until it is rewritten"));
        a.log.commit().unwrap();
        assert_eq!(disk.calls().1, syncs, "no fsync was tried");
        // A rewrite from memory heals it.
        a.rewrite().unwrap();
        assert!(!a.log.needs_rewrite());
        a.commit(5).unwrap();
        // Everything acknowledged survives a power loss that garbles the rest.
        disk.power_loss(LostBytes::Garbage(errno as u64)).unwrap();
        drop(a.log);
        disk.restart();
        let (_, stats, got) = reopen_on(&disk, &cfg);
        assert_eq!(got, a.acked);
        assert_eq!(stats.dropped_tail_bytes, 0, "under always nothing acknowledged was in flight");
    }
}

#[test]
fn a_rewrite_begun_before_the_failure_does_not_heal() {
    let tmp = TempDir::new();
    let cfg = cfg(&tmp.0, Fsync::Always);
    let disk = FaultyDisk::new();
    let mut a = Acked::open(&disk, &cfg);
    a.commit(10).unwrap();
    a.log.begin_rewrite(&[]).unwrap();
    disk.inject(Fault::new(FaultOp::Sync, Target::Log));
    assert!(a.commit(1).is_err());
    assert!(!a.log.rewriting(), "abandoned: begun before the failure");
    assert!(!tmp.0.join(REWRITE_FILE).exists());
    a.rewrite().unwrap();
    a.commit(1).unwrap();
    a.reopen_and_check(&disk, &cfg);
}

/// Under `everysec`, the thread's fsync fails: the data it did not write
/// is lost at a power loss even though a later fsync succeeds (Linux marks
/// the pages clean). Retrying would acknowledge writes that a power loss
/// then takes; the log refuses writes instead and is rewritten whole.
#[test]
fn a_failed_background_fsync_is_not_retried_and_the_rewrite_saves_the_data() {
    for rewrite in [false, true] {
        let tmp = TempDir::new();
        let cfg = cfg(&tmp.0, Fsync::EverySec);
        let disk = FaultyDisk::new();
        let mut a = Acked::open(&disk, &cfg);
        a.commit(3).unwrap();
        a.log.sync_all().unwrap();
        disk.inject(Fault::new(FaultOp::Sync, Target::Log));
        a.commit(6).unwrap(); // acknowledged, not yet durable (everysec)
        wait_for("the background fsync to fail", || a.log.check_background());
        assert!(a.commit(1).is_err(), "read-only until rewritten");
        if rewrite {
            a.rewrite().unwrap();
            assert!(!a.log.needs_rewrite());
            a.commit(2).unwrap();
            a.log.sync_all().unwrap();
        }
        disk.power_loss(LostBytes::Zeros).unwrap();
        drop(a.log);
        disk.restart();
        let (_, _, got) = reopen_on(&disk, &cfg);
        if rewrite {
            assert_eq!(got, a.acked, "the records the failed fsync dropped were written again");
        } else {
            // What a retried fsync would have "saved": nothing.
            assert_eq!(got, a.acked[..3], "without the rewrite, the dropped records are gone");
        }
    }
}

#[test]
fn faults_during_a_compaction_keep_the_old_log_or_need_a_new_rewrite() {
    for errno in ERRNOS {
        let tmp = TempDir::new();
        let cfg = cfg(&tmp.0, Fsync::Always);
        let disk = FaultyDisk::new();
        let mut a = Acked::open(&disk, &cfg);
        a.commit(20).unwrap();

        // A write of the rewrite file fails: the rewrite is abandoned, the commit is not.
        disk.inject(Fault::new(FaultOp::Write, Target::Rewrite).nth(2).errno(errno).lands(5));
        assert_eq!(a.rewrite().unwrap_err().raw_os_error(), Some(errno));
        a.log.begin_rewrite(&[]).unwrap();
        disk.inject(Fault::new(FaultOp::Write, Target::Rewrite).errno(errno));
        a.commit(2).unwrap();
        assert!(!a.log.rewriting() && !tmp.0.join(REWRITE_FILE).exists());

        // The helper's fsync of the rewrite file fails, or its rename:
        // the old log stays, whole.
        for op in [FaultOp::Sync, FaultOp::Rename] {
            disk.inject(Fault::new(op, Target::Rewrite).errno(errno));
            assert!(a.rewrite().is_err(), "{op:?}");
            assert!(!a.log.rewriting() && !a.log.needs_rewrite());
            a.commit(1).unwrap();
        }

        // The directory fsync after the rename fails: the switch is done,
        // but may not survive a crash, so the log needs another rewrite.
        disk.inject(Fault::new(FaultOp::SyncDir, Target::Any).errno(errno));
        assert!(a.rewrite().is_err());
        assert!(a.log.needs_rewrite());
        assert!(a.commit(1).is_err());
        a.rewrite().unwrap();
        a.commit(1).unwrap();
        a.reopen_and_check(&disk, &cfg);
    }
}

#[test]
fn a_power_loss_tail_is_cut_on_restart() {
    for tail in [LostBytes::Zeros, LostBytes::Garbage(42), LostBytes::Cut] {
        for policy in [Fsync::Always, Fsync::No] {
            let tmp = TempDir::new();
            let cfg = cfg(&tmp.0, policy);
            let disk = FaultyDisk::new();
            let mut a = Acked::open(&disk, &cfg);
            a.commit(10).unwrap();
            a.log.sync_all().unwrap();
            let durable = a.acked.len();
            let synced_len = a.log.len();
            a.commit(7).unwrap();
            a.commit(5).unwrap();
            let written = a.log.len() - synced_len;
            disk.power_loss(tail).unwrap();
            drop(a.log);
            disk.restart();
            let (log, stats, got) = reopen_on(&disk, &cfg);
            if policy == Fsync::Always {
                assert_eq!(got, a.acked, "{tail:?}: every acknowledged write survives");
                assert_eq!(stats.dropped_tail_bytes, 0);
            } else {
                assert_eq!(got, a.acked[..durable], "{tail:?}: what was fsynced survives");
                let cut = if tail == LostBytes::Cut { 0 } else { written };
                assert_eq!(stats.dropped_tail_bytes, cut, "{tail:?}");
            }
            assert_eq!(file_len(log.path()), log.len(), "{tail:?}: the tail is cut off the file");
        }
    }
}

#[test]
fn a_long_unreadable_tail_refuses_to_start_unless_allowed() {
    let tmp = TempDir::new();
    let mut cfg = cfg(&tmp.0, Fsync::No);
    cfg.max_torn_tail = 1000;
    let disk = FaultyDisk::new();
    let mut a = Acked::open(&disk, &cfg);
    a.commit(4).unwrap();
    a.log.sync_all().unwrap();
    let good = a.log.len();
    for _ in 0..10 {
        a.commit(5).unwrap(); // some 3 KB never fsynced
    }
    let len = a.log.len();
    disk.power_loss(LostBytes::Garbage(9)).unwrap();
    drop(a.log);
    disk.restart();
    let err = open_all_on(Arc::new(disk.clone()), &cfg).err().unwrap();
    let LogError::LongTail { offset, bytes, .. } = err else { panic!("{err}") };
    assert_eq!((offset, bytes), (good, len - good));
    let msg = err.to_string();
    for part in ["--truncate-corrupt-log", &good.to_string(), &(len - good).to_string()] {
        assert!(msg.contains(part), "{msg}");
    }
    assert_eq!(file_len(&tmp.0.join(super::LOG_FILE)), len, "a refused log is left alone");
    cfg.truncate_corrupt = true;
    let (_, stats, got) = reopen_on(&disk, &cfg);
    assert_eq!(got, a.acked[..4]);
    assert_eq!(stats.dropped_tail_bytes, len - good);
}

#[test]
fn a_small_file_written_atomically_is_old_or_new_under_each_fault() {
    let tmp = TempDir::new();
    let disk = FaultyDisk::new();
    let path = tmp.0.join("election.state");
    disk.write_atomic(&path, b"epoch 1").unwrap();
    for (i, op) in [FaultOp::Write, FaultOp::Sync, FaultOp::Rename].into_iter().enumerate() {
        disk.inject(Fault::new(op, Target::Any).errno(libc::ENOSPC));
        let e = disk.write_atomic(&path, format!("epoch {}", i + 2).as_bytes()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{op:?}");
        assert_eq!(disk.read_small(&path).unwrap().as_deref(), Some(&b"epoch 1"[..]), "{op:?}: the old file");
    }
    // After the rename, the directory fsync fails: the new contents are in
    // place, but the call says it failed (they may not survive a crash).
    disk.inject(Fault::new(FaultOp::SyncDir, Target::Any));
    assert!(disk.write_atomic(&path, b"epoch 9").is_err());
    assert_eq!(disk.read_small(&path).unwrap().as_deref(), Some(&b"epoch 9"[..]));
    // What was fsynced survives a power loss; the stale temporary file does not matter.
    disk.write_atomic(&path, b"epoch 10").unwrap();
    disk.power_loss(LostBytes::Garbage(3)).unwrap();
    disk.restart();
    assert_eq!(disk.read_small(&path).unwrap().as_deref(), Some(&b"epoch 10"[..]));
}
