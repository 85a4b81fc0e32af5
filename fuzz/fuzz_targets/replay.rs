//! Opening a log file of arbitrary bytes (`storage::log`: the header check,
//! replay through its read window, the torn-tail rule, the cut).
//!
//! The input is the file; unless it starts with `KVSTORE` it is taken as
//! the records after a valid version 2 header (so the fuzzer spends its
//! time on records, not on finding the magic). The file is opened as it
//! is, and with `truncate_corrupt`; open must return a log or an error,
//! never panic, and:
//! - with `truncate_corrupt`, a corrupt record is never an error;
//! - a log that opened has the length its stats say, on disk too;
//! - it opens again cleanly (nothing more to cut) with the same records;
//! - a record appended after the cut replays after them.
#![no_main]

use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

use kvstore::storage::log::{
    AppendLog, DEFAULT_MAX_TORN_TAIL, FORMAT_VERSION, Fsync, HEADER_LEN, LOG_FILE, LogConfig, LogError, MAGIC,
};
use kvstore::storage::record::{Op, Record, Version};
use libfuzzer_sys::fuzz_target;

/// A record as replay handed it over, owned.
type Owned = (Op, u8, Version, Vec<u8>, Vec<u8>, Option<u64>);

fn own(r: &Record<'_>) -> Owned {
    (r.op, r.flags, r.version, r.key.to_vec(), r.value.to_vec(), r.deadline)
}

fn open(cfg: &LogConfig) -> Result<(AppendLog, u64, u64, Vec<Owned>), LogError> {
    let mut got = Vec::new();
    let (log, stats) = AppendLog::open(cfg, |r| got.push(own(r)))?;
    assert_eq!(stats.records, got.len() as u64, "records counted");
    assert_eq!(log.len(), HEADER_LEN + stats.bytes, "the log's length");
    assert_eq!(fs::metadata(log.path()).map(|m| m.len()).ok(), Some(log.len()), "the file's length");
    Ok((log, stats.records, stats.dropped_tail_bytes, got))
}

fuzz_target!(|data: &[u8]| {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| kvstore_fuzz::scratch_dir("replay"));
    let file = if data.starts_with(b"KVSTORE") {
        data.to_vec()
    } else {
        let mut f = MAGIC.to_vec();
        f.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        f.resize(HEADER_LEN as usize, 0);
        f.extend_from_slice(data);
        f
    };
    for truncate_corrupt in [false, true] {
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir).expect("create the scratch directory");
        fs::write(dir.join(LOG_FILE), &file).expect("write the log");
        // A small bound, so that declared lengths beyond it are corruption
        // the fuzzer can reach, and larger ones a torn tail.
        let cfg = LogConfig {
            dir: dir.clone(),
            fsync: Fsync::No,
            truncate_corrupt,
            max_record: 1 << 16,
            max_torn_tail: DEFAULT_MAX_TORN_TAIL,
        };
        let (mut log, _, _, got) = match open(&cfg) {
            Ok(opened) => opened,
            Err(e) => {
                assert!(!(truncate_corrupt && matches!(e, LogError::Corrupt { .. })), "{e}");
                let _ = e.to_string();
                continue;
            }
        };
        let rec = Record { op: Op::Put, flags: 1, version: Version::new(7, 1), key: b"k", value: b"v", deadline: None };
        log.stage(&rec);
        log.commit().expect("append after open");
        drop(log);
        let (_, records, dropped, again) = open(&cfg).expect("a log that opened opens again");
        assert_eq!(dropped, 0, "nothing left to cut");
        assert_eq!(records, got.len() as u64 + 1);
        assert_eq!(again[..got.len()], got[..], "the same records");
        assert_eq!(again.last(), Some(&own(&rec)), "the appended record last");
    }
});
