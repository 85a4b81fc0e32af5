//! A [`Storage`] that fails on purpose: real files underneath (so what the
//! log wrote can be read back, replayed, or mangled), with errors injected
//! at chosen calls and a model of what reached the platter, for a simulated
//! power loss. For tests of the log and of the node over it; it costs
//! nothing to the real path, which never builds one.
//!
//! What it models:
//! - an injected write error (EIO, ENOSPC...) at the Nth matching write,
//!   optionally after part of the buffer landed (a failing `pwrite` that
//!   wrote some bytes first);
//! - short writes (every write takes at most so many bytes, as a
//!   full-ish disk or a signal can make it);
//! - an injected fsync error, with Linux's behaviour since 4.13 as
//!   Postgres met it ("fsyncgate"): the dirty pages the fsync failed to
//!   write are marked clean, so a later fsync succeeds without ever writing
//!   them; those bytes are lost at a power loss whatever is fsynced later,
//!   unless they are written again;
//! - faults of rename and of the directory fsync (a compaction's switch);
//! - [`FaultyDisk::power_loss`]: every byte not known durable (past the
//!   length at the last successful fsync, or lost to a failed one) becomes
//!   zeros, garbage or nothing, and the disk stops taking anything (the
//!   machine is off) until [`FaultyDisk::restart`].
//!
//! Not modelled: a rename or a truncation undone by a power loss before
//! its directory or file fsync (both are taken as durable at once). The
//! real fsync is not called: the model decides what is durable, and tests
//! stay fast.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::disk::{Disk, OpenMode, Storage, StorageFile};
use super::{LOG_FILE, REWRITE_FILE, lock};

/// The system calls a [`Fault`] can hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOp {
    /// `pwrite`.
    Write,
    /// `fsync` or `fdatasync` of a file.
    Sync,
    /// `ftruncate`.
    SetLen,
    /// `rename` (the target is the file renamed).
    Rename,
    /// `fsync` of a directory (the target is ignored).
    SyncDir,
}

/// Which files a [`Fault`] hits, by their current name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// `kvstore.aof` (a rewrite renamed into place is it from then on).
    Log,
    /// `kvstore.aof.rewrite`.
    Rewrite,
    /// Any file.
    Any,
}

/// One injected failure. Built as `Fault::new(FaultOp::Write,
/// Target::Log).nth(3).errno(libc::ENOSPC)`.
#[derive(Clone, Debug)]
pub struct Fault {
    op: FaultOp,
    target: Target,
    /// Matching calls that still succeed before this one fires.
    skip: u64,
    errno: i32,
    /// Bytes a failing write still lands before its error.
    lands: usize,
    /// Keeps failing every matching call until [`FaultyDisk::heal`].
    sticky: bool,
}

impl Fault {
    /// The next matching call fails once with EIO; a failing write lands nothing.
    pub fn new(op: FaultOp, target: Target) -> Fault {
        Fault { op, target, skip: 0, errno: libc::EIO, lands: 0, sticky: false }
    }
    /// The `n`th matching call from now fails (1: the next).
    pub fn nth(self, n: u64) -> Fault {
        Fault { skip: n.saturating_sub(1), ..self }
    }
    /// Fails with the OS error `errno` (`libc::EIO`, `libc::ENOSPC`...).
    pub fn errno(self, errno: i32) -> Fault {
        Fault { errno, ..self }
    }
    /// A failing write first writes `bytes` of its buffer.
    pub fn lands(self, bytes: usize) -> Fault {
        Fault { lands: bytes, ..self }
    }
    /// Once it fires, every matching call fails until [`FaultyDisk::heal`]:
    /// a disk that stays full or broken.
    pub fn sticky(self) -> Fault {
        Fault { sticky: true, ..self }
    }
}

/// What a power loss leaves where bytes were not durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LostBytes {
    /// Zeros, the length kept (a file system that extended the size before
    /// the data landed).
    Zeros,
    /// Pseudo-random bytes from this seed, the length kept.
    Garbage(u64),
    /// Nothing: the file ends at its durable length.
    Cut,
}

/// What is known of one file's bytes on the platter.
struct Track {
    /// Its current name.
    path: PathBuf,
    /// Bytes below this are durable, except `lost` ranges.
    durable: u64,
    /// Ranges a failed fsync dropped: gone at a power loss even below
    /// `durable`, until written again.
    lost: Vec<(u64, u64)>,
}

impl Track {
    fn target(&self) -> Target {
        match self.path.file_name().and_then(|n| n.to_str()) {
            Some(LOG_FILE) => Target::Log,
            Some(REWRITE_FILE) => Target::Rewrite,
            _ => Target::Any,
        }
    }

    /// `[start, end)` was written again: no longer lost.
    fn rewritten(&mut self, start: u64, end: u64) {
        let mut kept = Vec::with_capacity(self.lost.len() + 1);
        for &(a, b) in &self.lost {
            if b <= start || a >= end {
                kept.push((a, b));
            } else {
                if a < start {
                    kept.push((a, start));
                }
                if b > end {
                    kept.push((end, b));
                }
            }
        }
        self.lost = kept;
    }
}

#[derive(Default)]
struct State {
    faults: Vec<Fault>,
    tracks: HashMap<PathBuf, Arc<Mutex<Track>>>,
    short_writes: Option<usize>,
    /// After a power loss: every call fails.
    off: bool,
    writes: u64,
    syncs: u64,
}

impl State {
    /// The error of a call of `op` on `target`, if one is injected now.
    fn fire(&mut self, op: FaultOp, target: Target) -> Option<Fault> {
        if self.off {
            return Some(Fault::new(op, target));
        }
        let hits = |f: &Fault| f.op == op && (f.target == Target::Any || f.target == target || op == FaultOp::SyncDir);
        let i = self.faults.iter().position(hits)?;
        let f = &mut self.faults[i];
        if f.skip > 0 {
            f.skip -= 1;
            return None;
        }
        Some(if f.sticky { f.clone() } else { self.faults.remove(i) })
    }
}

/// The failing storage. Clones share their state: keep one to inject
/// faults into a log that was opened over another.
#[derive(Clone, Default)]
pub struct FaultyDisk {
    state: Arc<Mutex<State>>,
}

fn error(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

impl FaultyDisk {
    /// A disk that works, until told otherwise.
    pub fn new() -> FaultyDisk {
        FaultyDisk::default()
    }

    /// Arms `fault`. Faults of the same call fire in the order armed.
    pub fn inject(&self, fault: Fault) {
        lock(&self.state).faults.push(fault);
    }

    /// Every write from now takes at most `max` bytes (`None`: all).
    pub fn short_writes(&self, max: Option<usize>) {
        lock(&self.state).short_writes = max;
    }

    /// The disk works again: every armed fault and short writes are gone.
    /// (Bytes a failed fsync lost stay lost.)
    pub fn heal(&self) {
        let mut s = lock(&self.state);
        s.faults.clear();
        s.short_writes = None;
    }

    /// Writes and fsyncs of files so far (successful or not).
    pub fn calls(&self) -> (u64, u64) {
        let s = lock(&self.state);
        (s.writes, s.syncs)
    }

    /// The machine loses power now: in every file, each byte that is not
    /// durable becomes what `tail` says, and every later call fails (EIO)
    /// until [`restart`](FaultyDisk::restart). Drop what used the disk,
    /// then restart and open again to see what survived.
    pub fn power_loss(&self, tail: LostBytes) -> io::Result<()> {
        let mut s = lock(&self.state);
        s.off = true;
        let mut seed = match tail {
            LostBytes::Garbage(seed) => seed | 1,
            _ => 1,
        };
        for track in s.tracks.values() {
            let t = lock(track);
            let Ok(file) = std::fs::OpenOptions::new().write(true).open(&t.path) else { continue };
            let len = file.metadata()?.len();
            let mut ranges = t.lost.clone();
            if len > t.durable {
                ranges.push((t.durable, len));
            }
            if tail == LostBytes::Cut && len > t.durable {
                file.set_len(t.durable)?;
                ranges.pop();
            }
            for (a, b) in ranges {
                let b = b.min(len);
                let mut bytes = vec![0u8; usize::try_from(b.saturating_sub(a)).unwrap_or(0)];
                if let LostBytes::Garbage(_) = tail {
                    for x in &mut bytes {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        *x = (seed >> 24) as u8;
                    }
                }
                std::os::unix::fs::FileExt::write_all_at(&file, &bytes, a)?;
            }
        }
        Ok(())
    }

    /// After [`power_loss`](FaultyDisk::power_loss): the machine is back,
    /// the disk works and holds what survived, all of it durable.
    pub fn restart(&self) {
        let mut s = lock(&self.state);
        *s = State::default();
    }

    fn track(&self, path: &Path, truncated: bool, len: u64) -> Arc<Mutex<Track>> {
        let mut s = lock(&self.state);
        let t = s
            .tracks
            .entry(path.to_path_buf())
            .or_insert_with(|| Arc::new(Mutex::new(Track { path: path.to_path_buf(), durable: len, lost: vec![] })));
        if truncated {
            let mut t = lock(t);
            t.durable = 0;
            t.lost.clear();
        }
        Arc::clone(t)
    }

    fn check(&self, op: FaultOp, target: Target) -> io::Result<()> {
        match lock(&self.state).fire(op, target) {
            Some(f) => Err(error(f.errno)),
            None => Ok(()),
        }
    }
}

/// A file opened over a [`FaultyDisk`].
struct FaultyFile {
    file: Arc<dyn StorageFile>,
    track: Arc<Mutex<Track>>,
    disk: FaultyDisk,
}

impl FaultyFile {
    fn target(&self) -> Target {
        lock(&self.track).target()
    }
}

impl StorageFile for FaultyFile {
    fn size(&self) -> io::Result<u64> {
        self.file.size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if lock(&self.disk.state).off {
            return Err(error(libc::EIO));
        }
        self.file.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let target = self.target();
        let (fault, max) = {
            let mut s = lock(&self.disk.state);
            s.writes += 1;
            (s.fire(FaultOp::Write, target), s.short_writes)
        };
        let n = match &fault {
            Some(f) => f.lands.min(buf.len()),
            None => max.map_or(buf.len(), |m| m.min(buf.len())),
        };
        let n = if n > 0 { self.file.write_at(&buf[..n], offset)? } else { 0 };
        lock(&self.track).rewritten(offset, offset + n as u64);
        match fault {
            Some(f) => Err(error(f.errno)),
            None => Ok(n),
        }
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.disk.check(FaultOp::SetLen, self.target())?;
        self.file.set_len(len)?;
        let mut t = lock(&self.track);
        t.durable = t.durable.min(len);
        t.rewritten(len, u64::MAX);
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        self.sync_all()
    }
    fn sync_all(&self) -> io::Result<()> {
        let target = self.target();
        let fault = {
            let mut s = lock(&self.disk.state);
            s.syncs += 1;
            s.fire(FaultOp::Sync, target)
        };
        let len = self.file.size()?;
        let mut t = lock(&self.track);
        match fault {
            Some(f) => {
                // The pages it failed to write are clean now: a later
                // fsync will not write them.
                if len > t.durable {
                    let durable = t.durable;
                    t.lost.push((durable, len));
                }
                Err(error(f.errno))
            }
            None => {
                t.durable = len;
                Ok(())
            }
        }
    }
    fn try_lock(&self) -> io::Result<bool> {
        self.file.try_lock()
    }
    fn is_at(&self, path: &Path) -> io::Result<bool> {
        self.file.is_at(path)
    }
}

impl Storage for FaultyDisk {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        if lock(&self.state).off {
            return Err(error(libc::EIO));
        }
        let file = Disk.open(path, mode)?;
        let track = self.track(path, mode == OpenMode::Truncate, file.size()?);
        Ok(Arc::new(FaultyFile { file, track, disk: self.clone() }))
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        if lock(&self.state).off {
            return Err(error(libc::EIO));
        }
        Disk.create_dir_all(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let target = self.tracked(from).map_or(Target::Any, |t| lock(&t).target());
        self.check(FaultOp::Rename, target)?;
        Disk.rename(from, to)?;
        let mut s = lock(&self.state);
        s.tracks.remove(to);
        if let Some(t) = s.tracks.remove(from) {
            lock(&t).path = to.to_path_buf();
            s.tracks.insert(to.to_path_buf(), t);
        }
        Ok(())
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        if lock(&self.state).off {
            return Err(error(libc::EIO));
        }
        Disk.remove_file(path)?;
        lock(&self.state).tracks.remove(path);
        Ok(())
    }
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        self.check(FaultOp::SyncDir, Target::Any)
    }
}

impl FaultyDisk {
    fn tracked(&self, path: &Path) -> Option<Arc<Mutex<Track>>> {
        lock(&self.state).tracks.get(path).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::log::disk::{read_exact_at, write_all_at};
    use crate::storage::log::testutil::TempDir;

    #[test]
    fn faults_fire_at_the_nth_call_and_heal() {
        let tmp = TempDir::new();
        let disk = FaultyDisk::new();
        let f = disk.open(&tmp.0.join(LOG_FILE), OpenMode::Create).unwrap();
        disk.inject(Fault::new(FaultOp::Write, Target::Log).nth(2).errno(libc::ENOSPC).lands(2));
        write_all_at(&*f, b"abc", 0).unwrap();
        let e = write_all_at(&*f, b"defg", 3).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(f.size().unwrap(), 5, "two bytes landed");
        write_all_at(&*f, b"x", 5).unwrap();
        disk.inject(Fault::new(FaultOp::Sync, Target::Rewrite).sticky());
        f.sync_data().unwrap();
        let g = disk.open(&tmp.0.join(REWRITE_FILE), OpenMode::Truncate).unwrap();
        assert!(g.sync_all().is_err() && g.sync_all().is_err());
        disk.heal();
        g.sync_all().unwrap();
        disk.short_writes(Some(1));
        assert_eq!(f.write_at(b"yz", 6).unwrap(), 1);
        assert_eq!(disk.calls().0, 4);
    }

    #[test]
    fn power_loss_mangles_what_was_not_durable() {
        for tail in [LostBytes::Zeros, LostBytes::Garbage(7), LostBytes::Cut] {
            let tmp = TempDir::new();
            let disk = FaultyDisk::new();
            let path = tmp.0.join(LOG_FILE);
            let f = disk.open(&path, OpenMode::Create).unwrap();
            write_all_at(&*f, b"durable", 0).unwrap();
            f.sync_data().unwrap();
            write_all_at(&*f, b"-lost", 7).unwrap();
            disk.inject(Fault::new(FaultOp::Sync, Target::Any));
            assert!(f.sync_data().is_err());
            // The retry "succeeds", but the bytes it should have written are gone.
            f.sync_data().unwrap();
            write_all_at(&*f, b"-kept", 12).unwrap();
            disk.power_loss(tail).unwrap();
            assert!(f.write_at(b"x", 0).is_err(), "the machine is off");
            drop(f);
            disk.restart();
            let f = disk.open(&path, OpenMode::Read).unwrap();
            let mut got = vec![0; usize::try_from(f.size().unwrap()).unwrap()];
            read_exact_at(&*f, &mut got, 0).unwrap();
            assert_eq!(&got[..7], b"durable", "{tail:?}");
            match tail {
                LostBytes::Zeros => assert_eq!(got[7..], [0; 10]),
                LostBytes::Garbage(_) => assert_ne!(&got[7..], b"-lost-kept"),
                LostBytes::Cut => assert_eq!(got.len(), 12),
            }
            assert_ne!(&got[7..12], b"-lost", "{tail:?}");
        }
    }
}
