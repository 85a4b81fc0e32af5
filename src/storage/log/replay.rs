//! Opening: the lock and header check, replay through a sliding read
//! window, and the torn-tail rule that decides what a failed decode at the
//! end of the file means (see "Replay and the torn-tail rule" in the
//! [module docs](super)).

use std::io::{self, ErrorKind};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::append::{Sink, Syncer};
use super::disk::{Disk, Storage, StorageFile};
use super::format::{FORMAT_VERSION, HEADER_LEN, check_header, open_locked, upgrade_header};
use super::{AppendLog, Fsync, LOG_FILE, LogConfig, LogError, REWRITE_FILE, ReplayStats, io_err};
use crate::storage::record::{DecodeError, FRAME_HEADER, Record};

/// Replay's read size: large sequential reads, few syscalls.
const READ_CHUNK: usize = 4 << 20;

/// A sliding window over the file for replay: large reads, records that
/// straddle a refill are moved to the front, never copied out one by one.
struct Window<'f> {
    file: &'f dyn StorageFile,
    file_len: u64,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    start: u64,
    filled: usize,
}

impl<'f> Window<'f> {
    fn new(file: &'f dyn StorageFile, file_len: u64) -> Window<'f> {
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

    /// The offset of the first valid record at or after `off`, if any: the
    /// difference between a torn tail and corruption. Only on that error
    /// path, so a byte-by-byte scan is fine.
    fn valid_record_from(&mut self, mut off: u64, max_payload: usize) -> io::Result<Option<u64>> {
        let mut want = FRAME_HEADER;
        loop {
            let (data, to_eof) = self.at(off, want)?;
            let mut i = 0;
            want = FRAME_HEADER;
            while i + FRAME_HEADER <= data.len() {
                match Record::decode(&data[i..], max_payload) {
                    Ok(_) => return Ok(Some(off + i as u64)),
                    Err(DecodeError::Corrupt(_)) => i += 1,
                    Err(DecodeError::Incomplete) if to_eof => i += 1,
                    Err(DecodeError::Incomplete) => {
                        want = declared_len(&data[i..]);
                        break;
                    }
                }
            }
            if to_eof && i + FRAME_HEADER > data.len() {
                return Ok(None);
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
#[derive(Clone, Copy)]
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
    pub fn open(cfg: &LogConfig, apply: impl FnMut(&Record<'_>)) -> Result<(AppendLog, ReplayStats), LogError> {
        AppendLog::open_on(Arc::new(Disk), cfg, apply)
    }

    /// As [`open`](AppendLog::open), with the files on `disk` (a
    /// [`FaultyDisk`](super::FaultyDisk) in tests).
    pub fn open_on(
        disk: Arc<dyn Storage>,
        cfg: &LogConfig,
        mut apply: impl FnMut(&Record<'_>),
    ) -> Result<(AppendLog, ReplayStats), LogError> {
        let started = Instant::now();
        let dir = cfg.dir.clone();
        disk.create_dir_all(&dir).map_err(io_err(&dir, "create the directory"))?;
        let path = dir.join(LOG_FILE);
        let rewrite_path = dir.join(REWRITE_FILE);
        let file = open_locked(&*disk, &path)?;

        match disk.remove_file(&rewrite_path) {
            Ok(()) => log::info!("{}: deleted an unfinished log rewrite", rewrite_path.display()),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&rewrite_path, "delete")(e)),
        }

        let (file_len, version) = check_header(&*disk, &*file, &path, &dir)?;
        let mut win = Window::new(&*file, file_len);
        let (records, end, tail) = replay(&mut win, cfg.max_record, &mut apply).map_err(io_err(&path, "read"))?;
        let file_len = win.file_len;
        let dropped = file_len - end;
        judge_tail(&mut win, cfg, &path, end, tail)?;
        drop(win);
        if dropped > 0 {
            file.set_len(end).map_err(io_err(&path, "truncate"))?;
            file.sync_all().map_err(io_err(&path, "fsync"))?;
        }
        if version < FORMAT_VERSION {
            upgrade_header(&*file, &path, version)?;
        }

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
            log: Sink::new(file, end),
            pending: Vec::new(),
            rewrite: None,
            syncer,
            disk,
            failed: None,
            failures: 0,
            #[cfg(test)]
            hold_switch: None,
        };
        Ok((log, stats))
    }
}

/// Decides what the bytes from `end` (where the valid records stop, for
/// `reason`) to the end of the file are: `Ok` if they are to be cut (a torn
/// tail, or corruption the operator allowed to cut), or why open refuses.
///
/// A torn tail is one with no valid record after `end` (all zeros is the
/// fast case: zeros never decode, length 0 is out of range), no longer than
/// [`LogConfig::max_torn_tail`] unless it is a single record cut short. A
/// valid record after `end` means damage in the middle ([`LogError::Corrupt`]):
/// a bad length that claims to run past the end of the file is caught here
/// too, instead of being taken for a record cut short.
fn judge_tail(win: &mut Window<'_>, cfg: &LogConfig, path: &Path, end: u64, tail: Tail) -> Result<(), LogError> {
    let (reason, one_short) = match tail {
        Tail::Clean => return Ok(()),
        Tail::Incomplete => ("a record cut short by the end of the file", true),
        Tail::Corrupt(reason) => (reason, false),
    };
    let file_len = win.file_len;
    let dropped = file_len - end;
    let zeros = win.zeros_from(end).map_err(io_err(path, "read"))?;
    let next_valid =
        if zeros { None } else { win.valid_record_from(end + 1, cfg.max_record).map_err(io_err(path, "read"))? };
    let what = if zeros { "all zeros" } else { reason };
    match next_valid {
        None if one_short || dropped <= cfg.max_torn_tail => {
            log::warn!(
                "{}: dropping a torn tail of {dropped} bytes at offset {end} ({what}, nothing valid after it)",
                path.display()
            );
            Ok(())
        }
        None if cfg.truncate_corrupt => {
            log::error!(
                "{}: unreadable tail of {dropped} bytes at offset {end} ({what}), longer than a torn write: \
                 truncating as configured, {dropped} bytes of log LOST",
                path.display()
            );
            Ok(())
        }
        None => {
            Err(LogError::LongTail { path: path.to_path_buf(), offset: end, bytes: dropped, max: cfg.max_torn_tail })
        }
        Some(next) if cfg.truncate_corrupt => {
            log::error!(
                "{}: CORRUPT record at offset {end} ({reason}) with a valid record at offset {next}: \
                 truncating as configured, {dropped} bytes of log LOST",
                path.display()
            );
            Ok(())
        }
        Some(next_valid) => Err(LogError::Corrupt {
            path: path.to_path_buf(),
            offset: end,
            reason: if one_short { "its length runs past the end of the file" } else { reason },
            next_valid,
            len: file_len,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::time::Duration;

    use super::*;
    use crate::storage::log::testutil::*;

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
        assert_eq!(head, *b"KVSTORE\0\x03\0\0\0\0\0\0\0");
    }

    /// A record framed as a version 1 build framed it, by hand (no deadline field).
    fn v1_record(r: &Owned) -> Vec<u8> {
        let mut payload = vec![r.op as u8, r.flags];
        payload.extend_from_slice(&r.version.0.to_le_bytes());
        payload.extend_from_slice(&(r.key.len() as u32).to_le_bytes());
        payload.extend_from_slice(&r.key);
        payload.extend_from_slice(&r.value);
        let mut out = (payload.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }

    #[test]
    fn a_version_1_log_replays_and_is_upgraded() {
        let tmp = TempDir::new();
        let cfg = cfg(&tmp.0, Fsync::No);
        let recs: Vec<Owned> = sample(60).into_iter().filter(|r| r.deadline.is_none()).collect();
        let mut bytes = b"KVSTORE\0\x01\0\0\0\0\0\0\0".to_vec();
        for r in &recs {
            bytes.extend_from_slice(&v1_record(r));
        }
        let path = tmp.0.join(LOG_FILE);
        fs::write(&path, &bytes).unwrap();
        let (mut log, stats, got) = reopen(&cfg);
        assert_eq!(got, recs);
        assert_eq!((stats.records, stats.dropped_tail_bytes), (recs.len() as u64, 0));
        let upgraded = fs::read(&path).unwrap();
        assert_eq!(upgraded[8..12], FORMAT_VERSION.to_le_bytes());
        assert_eq!((&upgraded[..8], &upgraded[12..]), (&bytes[..8], &bytes[12..]), "only the version changed");
        // It takes records with deadlines now, and replays them with the old ones.
        let more = Owned::put_expiring(b"k", b"v", 1000, 1_800_000_000_000);
        write_all(&mut log, std::slice::from_ref(&more));
        drop(log);
        let (_, _, got) = reopen(&cfg);
        assert_eq!(got[..recs.len()], recs[..]);
        assert_eq!(got[recs.len()..], [more]);
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
        let LogError::Corrupt { offset, next_valid, .. } = err else { panic!("{err}") };
        assert_eq!((offset, next_valid), (offsets[3], offsets[4]));
        let msg = err.to_string();
        let lost = (bytes.len() as u64 - offsets[3]).to_string();
        for part in [&path.display().to_string(), &offsets[3].to_string(), &offsets[4].to_string(), &lost] {
            assert!(msg.contains(part.as_str()), "{msg}");
        }
        assert!(msg.contains("--truncate-corrupt-log"), "{msg}");
        assert_eq!(fs::read(&path).unwrap(), bytes, "a refused log is left alone");

        // A corrupt length (not a checksum) is caught the same way.
        let mut bad_len = bytes.clone();
        bad_len[offsets[3] as usize + FRAME_HEADER + 3] ^= 0x01;
        bad_len[offsets[3] as usize..offsets[3] as usize + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        fs::write(&path, &bad_len).unwrap();
        assert!(matches!(open_all(&cfg), Err(LogError::Corrupt { offset, .. }) if offset == offsets[3]));

        // A length that runs past the end of the file, with valid records
        // inside it: not a record cut short.
        let mut past_end = bytes.clone();
        let claim = (bytes.len() as u32 - offsets[3] as u32) + 100;
        past_end[offsets[3] as usize..offsets[3] as usize + 4].copy_from_slice(&claim.to_le_bytes());
        fs::write(&path, &past_end).unwrap();
        let err = open_all(&cfg).err().unwrap();
        assert!(matches!(err, LogError::Corrupt { offset, .. } if offset == offsets[3]), "{err}");
        assert!(err.to_string().contains("past the end of the file"), "{err}");

        fs::write(&path, &bytes).unwrap();
        cfg.truncate_corrupt = true;
        let (log, stats, got) = reopen(&cfg);
        assert_eq!(got, recs[..3]);
        assert_eq!(stats.dropped_tail_bytes, bytes.len() as u64 - offsets[3]);
        assert_eq!(file_len(log.path()), offsets[3]);
    }

    #[test]
    fn creates_missing_directory() {
        let tmp = TempDir::new();
        let cfg = cfg(&tmp.0.join("a/b"), Fsync::Always);
        let (log, _, _) = reopen(&cfg);
        assert_eq!(file_len(log.path()), HEADER_LEN);
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
