//! Helpers shared by the log's unit tests: temporary directories, owned
//! records, opening and filling a log.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::{AppendLog, Disk, FaultyDisk, Fsync, LogConfig, LogError, ReplayStats, Storage};
use crate::storage::record::{FLAG_ORDERED, Op, Record, Version};

/// A unique directory under the system temp dir, removed on drop.
pub(super) struct TempDir(pub(super) PathBuf);

impl TempDir {
    /// Creates the directory.
    pub(super) fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
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

/// A [`Record`] that owns its key and value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Owned {
    pub(super) op: Op,
    pub(super) flags: u8,
    pub(super) version: Version,
    pub(super) key: Vec<u8>,
    pub(super) value: Vec<u8>,
    pub(super) deadline: Option<u64>,
}

impl Owned {
    /// Copies `r`.
    fn of(r: &Record<'_>) -> Owned {
        Owned {
            op: r.op,
            flags: r.flags,
            version: r.version,
            key: r.key.to_vec(),
            value: r.value.to_vec(),
            deadline: r.deadline,
        }
    }
    /// The record, borrowing from `self`.
    pub(super) fn rec(&self) -> Record<'_> {
        Record {
            op: self.op,
            flags: self.flags,
            version: self.version,
            key: &self.key,
            value: &self.value,
            deadline: self.deadline,
        }
    }
    /// An ordered PUT of `key` at version `counter`.
    pub(super) fn put(key: &[u8], value: &[u8], counter: u64) -> Owned {
        Owned {
            op: Op::Put,
            flags: FLAG_ORDERED,
            version: Version::new(counter, 1),
            key: key.to_vec(),
            value: value.to_vec(),
            deadline: None,
        }
    }
    /// As [`Owned::put`], expiring at `deadline` (ms since the epoch).
    pub(super) fn put_expiring(key: &[u8], value: &[u8], counter: u64, deadline: u64) -> Owned {
        Owned { deadline: Some(deadline), ..Owned::put(key, value, counter) }
    }
    /// An ordered DEL of `key` at version `counter`.
    pub(super) fn del(key: &[u8], counter: u64) -> Owned {
        Owned {
            op: Op::Del,
            flags: FLAG_ORDERED,
            version: Version::new(counter, 1),
            key: key.to_vec(),
            value: vec![],
            deadline: None,
        }
    }
    /// A FLUSHALL at version `counter`.
    pub(super) fn flush(counter: u64) -> Owned {
        Owned {
            op: Op::FlushAll,
            flags: 0,
            version: Version::new(counter, 1),
            key: vec![],
            value: vec![],
            deadline: None,
        }
    }
}

/// Varied records: binary and empty keys and values, deletes, a flush,
/// deadlines.
pub(super) fn sample(n: u64) -> Vec<Owned> {
    (0..n)
        .map(|i| match i % 7 {
            3 => Owned::del(format!("k{}", i % 5).as_bytes(), i + 1),
            4 => Owned::put_expiring(format!("e{i}").as_bytes(), b"expiring", i + 1, 1_700_000_000_000 + i),
            5 => Owned::put(&[0, 255, b'\r', b'\n', i as u8], &[], i + 1),
            6 if i % 21 == 6 => Owned::flush(i + 1),
            _ => Owned::put(b"", &vec![i as u8; (i % 300) as usize], i + 1),
        })
        .collect()
}

/// A config for `dir`: no truncation of corrupt logs, records up to 1 MiB.
pub(super) fn cfg(dir: &Path, fsync: Fsync) -> LogConfig {
    LogConfig { dir: dir.to_path_buf(), fsync, truncate_corrupt: false, max_record: 1 << 20, max_torn_tail: 1 << 20 }
}

/// Opens the log at `cfg` on `disk`, collecting what it replays.
pub(super) fn open_all_on(
    disk: Arc<dyn Storage>,
    cfg: &LogConfig,
) -> Result<(AppendLog, ReplayStats, Vec<Owned>), LogError> {
    let mut got = Vec::new();
    let (log, stats) = AppendLog::open_on(disk, cfg, |r| got.push(Owned::of(r)))?;
    Ok((log, stats, got))
}

/// [`open_all_on`] the real disk.
pub(super) fn open_all(cfg: &LogConfig) -> Result<(AppendLog, ReplayStats, Vec<Owned>), LogError> {
    open_all_on(Arc::new(Disk), cfg)
}

/// [`open_all`], which must succeed.
pub(super) fn reopen(cfg: &LogConfig) -> (AppendLog, ReplayStats, Vec<Owned>) {
    open_all(cfg).unwrap()
}

/// [`open_all_on`] `disk`, which must succeed.
pub(super) fn reopen_on(disk: &FaultyDisk, cfg: &LogConfig) -> (AppendLog, ReplayStats, Vec<Owned>) {
    open_all_on(Arc::new(disk.clone()), cfg).unwrap()
}

/// Stages `recs` and commits them as one batch.
pub(super) fn write_all(log: &mut AppendLog, recs: &[Owned]) {
    for r in recs {
        log.stage(&r.rec());
    }
    log.commit().unwrap();
}

/// The length of the file at `path`.
pub(super) fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

/// Polls `cond` with short yields until it holds or 10 s pass.
pub(super) fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Writes `recs` to a fresh log and returns its bytes and each record's offset.
pub(super) fn build(cfg: &LogConfig, recs: &[Owned]) -> (Vec<u8>, Vec<u64>) {
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
