//! What the benches share: the criterion settings, the data shape, temp
//! directories and a log that is replaced before it fills the disk.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::Criterion;
use kvstore::storage::log::{AppendLog, DEFAULT_MAX_TORN_TAIL, Fsync, LogConfig};

/// Short runs: the machine is small and shared. `--warm-up-time` and
/// `--measurement-time` on the command line still override these.
pub fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2))
}

/// Key and value sizes of `redis-benchmark -r 1000000 -d 32`: its keys are
/// `key:` and twelve digits.
pub const KEY_LEN: usize = 16;
pub const VALUE_LEN: usize = 32;

/// `prefix` (four bytes) followed by `i` in twelve digits: 16 bytes, no
/// allocation.
pub fn key(prefix: &[u8; 4], mut i: u64) -> [u8; KEY_LEN] {
    let mut k = [b'0'; KEY_LEN];
    k[..4].copy_from_slice(prefix);
    for d in k[4..].iter_mut().rev() {
        *d = b'0' + (i % 10) as u8;
        i /= 10;
    }
    k
}

/// A 32-byte value that differs by `tag` (so overwrites change the bytes).
pub fn value(tag: u8) -> [u8; VALUE_LEN] {
    let mut v = [b'v'; VALUE_LEN];
    v[0] = b'a' + tag % 26;
    v
}

/// A small, fast, seeded generator of indices (xorshift64*), so the
/// benches touch keys in a scattered but repeatable order.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    /// Uniform-enough in `0..n`.
    #[inline]
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((u128::from(x) * n as u128) >> 64) as usize
    }
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "kvstore-bench-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn log_config(dir: &Path) -> LogConfig {
    LogConfig {
        dir: dir.to_path_buf(),
        fsync: Fsync::No,
        truncate_corrupt: false,
        max_record: 1 << 20,
        max_torn_tail: DEFAULT_MAX_TORN_TAIL,
    }
}

/// Opens an empty log (`--fsync no`) in a fresh temp dir.
pub fn fresh_log(tag: &str) -> (AppendLog, TempDir) {
    let dir = TempDir::new(tag);
    let (log, _) = AppendLog::open(&log_config(dir.path()), |_| {}).expect("open the log");
    (log, dir)
}

/// A log is replaced by an empty one past this size, between timed
/// stretches, so a long run does not write gigabytes.
pub const ROTATE_AT: u64 = 64 << 20;

/// Replaces `log` by an empty one in a new directory if it grew past
/// [`ROTATE_AT`]. Call it outside the timed part.
pub fn rotate_if_big(log: &mut AppendLog, dir: &mut TempDir, tag: &str) {
    if log.len() >= ROTATE_AT {
        let (fresh, fresh_dir) = fresh_log(tag);
        *log = fresh; // the old log is dropped (and unlocked) here
        *dir = fresh_dir; // and its directory removed here
    }
}
