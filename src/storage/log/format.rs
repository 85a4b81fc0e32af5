//! The file on disk: its 16-byte header, the check of that header at open,
//! and the lock taken on the file (see "File format" in the
//! [module docs](super)).

use std::path::Path;
use std::sync::Arc;

use super::disk::{OpenMode, Storage, StorageFile, read_exact_at, write_all_at};
use super::{LogError, io_err};

/// The first eight bytes of a log.
pub const MAGIC: [u8; 8] = *b"KVSTORE\0";
/// The format version this build writes. Version 2 added the record
/// deadline, version 3 the counter record (see [`crate::storage::record`]);
/// each one's records are a superset of the one before's, so this build
/// also reads versions 1 and 2, and upgrades an older header in place once
/// the log has replayed (`upgrade_header`): from then on a build that does
/// not know counter records refuses the log rather than cut one as a torn
/// tail.
pub const FORMAT_VERSION: u32 = 3;
/// The oldest format version this build reads.
pub const OLDEST_FORMAT_VERSION: u32 = 1;
/// Bytes of the header before the first record.
pub const HEADER_LEN: u64 = 16;

/// The header a log (or a rewrite of it) starts with.
pub(super) fn header() -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

/// Opens `path` and locks it, making sure the lock is on the file that
/// carries the name: a rewrite elsewhere could rename a new file over it
/// between our open and our lock (it would then be locked already, but the
/// check costs nothing).
pub(super) fn open_locked(disk: &dyn Storage, path: &Path) -> Result<Arc<dyn StorageFile>, LogError> {
    for _ in 0..3 {
        let file = disk.open(path, OpenMode::Create).map_err(io_err(path, "open"))?;
        if !file.try_lock().map_err(io_err(path, "lock"))? {
            return Err(LogError::Locked { path: path.to_path_buf() });
        }
        if file.is_at(path).map_err(io_err(path, "stat"))? {
            return Ok(file);
        }
    }
    Err(LogError::Locked { path: path.to_path_buf() })
}

/// Checks that the log `file` (at `path`, in the directory `dir`) starts
/// with a header this build reads, and returns the file's length and its
/// format version.
///
/// A file shorter than a header is new, or its creation was cut short by a
/// crash: if what it holds is a prefix of the header, the header is
/// (re)written and fsynced with its directory; otherwise it is
/// [`LogError::BadMagic`]. A wrong version is [`LogError::BadVersion`].
pub(super) fn check_header(
    disk: &dyn Storage,
    file: &dyn StorageFile,
    path: &Path,
    dir: &Path,
) -> Result<(u64, u32), LogError> {
    let mut file_len = file.size().map_err(io_err(path, "stat"))?;
    let want = header();
    if file_len < HEADER_LEN {
        // New, or a creation cut short by a crash: (re)write the header.
        let mut have = vec![0u8; file_len as usize];
        read_exact_at(file, &mut have, 0).map_err(io_err(path, "read"))?;
        if have[..] != want[..have.len()] {
            return Err(LogError::BadMagic { path: path.to_path_buf() });
        }
        if file_len > 0 {
            log::warn!("{}: completing a header cut short at {file_len} bytes", path.display());
        }
        write_all_at(file, &want, 0).map_err(io_err(path, "write"))?;
        file.sync_all().map_err(io_err(path, "fsync"))?;
        disk.sync_dir(dir).map_err(io_err(dir, "fsync"))?;
        file_len = HEADER_LEN;
    }
    let mut have = [0u8; HEADER_LEN as usize];
    read_exact_at(file, &mut have, 0).map_err(io_err(path, "read"))?;
    if have[..8] != MAGIC {
        return Err(LogError::BadMagic { path: path.to_path_buf() });
    }
    let version = u32::from_le_bytes([have[8], have[9], have[10], have[11]]);
    if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(LogError::BadVersion { path: path.to_path_buf(), version });
    }
    Ok((file_len, version))
}

/// Rewrites the header of an older log (already replayed) as this build's:
/// the records it holds are read the same way by both, but the records this
/// build appends may not be (a deadline), so an older build must refuse the
/// file rather than misread it. Four bytes in the first sector, fsynced: a
/// crash leaves either version, both of which this build reads.
pub(super) fn upgrade_header(file: &dyn StorageFile, path: &Path, from: u32) -> Result<(), LogError> {
    write_all_at(file, &FORMAT_VERSION.to_le_bytes(), 8).map_err(io_err(path, "write"))?;
    file.sync_all().map_err(io_err(path, "fsync"))?;
    log::info!("{}: log format upgraded from version {from} to {FORMAT_VERSION}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::storage::log::testutil::*;
    use crate::storage::log::{Fsync, LOG_FILE};

    #[test]
    fn bad_header_is_refused() {
        let tmp = TempDir::new();
        let cfg = cfg(&tmp.0, Fsync::No);
        let path = tmp.0.join(LOG_FILE);
        let (bytes, _) = build(&cfg, &sample(3));

        let mut magic = bytes.clone();
        magic[0] = b'X';
        fs::write(&path, &magic).unwrap();
        let err = open_all(&cfg).err().unwrap();
        assert!(matches!(err, LogError::BadMagic { .. }), "{err}");
        assert!(err.to_string().contains(&path.display().to_string()));

        for bad in [0, FORMAT_VERSION + 1] {
            let mut version = bytes.clone();
            version[8] = bad as u8;
            fs::write(&path, &version).unwrap();
            let err = open_all(&cfg).err().unwrap();
            assert!(matches!(err, LogError::BadVersion { version, .. } if version == bad), "{err}");
        }

        fs::write(&path, b"hello").unwrap();
        assert!(matches!(open_all(&cfg), Err(LogError::BadMagic { .. })));

        // A header cut short by a crash at creation is completed.
        fs::write(&path, &bytes[..5]).unwrap();
        let (log, stats, _) = reopen(&cfg);
        assert_eq!((stats.records, log.len()), (0, HEADER_LEN));
    }

    #[test]
    fn second_open_of_a_dir_is_locked() {
        let tmp = TempDir::new();
        let cfg = cfg(&tmp.0, Fsync::EverySec);
        let (log, _, _) = reopen(&cfg);
        let err = open_all(&cfg).err().unwrap();
        assert!(matches!(err, LogError::Locked { .. }), "{err}");
        drop(log);
        reopen(&cfg);
    }
}
