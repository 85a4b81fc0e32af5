//! The storage seam: every byte the log (and anything else that wants it,
//! such as a small state file written atomically) puts on or reads from the
//! disk goes through [`Storage`] and [`StorageFile`]. [`Disk`] is the real
//! thing, over `std::fs`; [`FaultyDisk`](super::FaultyDisk) fails on
//! purpose, for tests.
//!
//! The traits are object-safe and the log holds `Arc<dyn Storage>` and
//! `Arc<dyn StorageFile>`: one virtual call per system call, and the log
//! makes a system call per commit (one `pwrite`, one `fdatasync` under
//! `always`) or per 4 MiB read at replay, never per record. So the seam
//! costs a few nanoseconds per loop iteration and keeps [`AppendLog`](super::AppendLog)
//! and the node free of a type parameter.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, ErrorKind};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How [`Storage::open`] opens a file: always for reading; writing and
/// creating as said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; created if missing, contents kept.
    Create,
    /// Read and write; created if missing, emptied if not.
    Truncate,
}

/// One open file. Positional reads and writes only (no cursor), so one
/// handle is shared by the loop and the log's helper threads.
pub trait StorageFile: Send + Sync {
    /// The file's length.
    fn size(&self) -> io::Result<u64>;
    /// Reads at `offset` into `buf`: how many bytes were read (0 at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes `buf` at `offset`: how many bytes were written, which may be
    /// fewer than asked (see [`write_all_at`]).
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize>;
    /// Cuts or extends the file to `len` bytes (`ftruncate`).
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Flushes the file's data to the disk (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Flushes the file's data and metadata to the disk (`fsync`).
    fn sync_all(&self) -> io::Result<()>;
    /// Takes an exclusive advisory lock (`flock`) for the life of the
    /// handle: false if another handle holds it.
    fn try_lock(&self) -> io::Result<bool>;
    /// Whether `path` names this file (same device and inode): a rename
    /// over the path between open and lock would break that.
    fn is_at(&self, path: &Path) -> io::Result<bool>;
}

/// A file system: opens files and changes directory entries.
pub trait Storage: Send + Sync {
    /// Opens `path` as `mode` says.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>>;
    /// Creates `dir` and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Renames `from` to `to`, atomically replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Deletes the file at `path`.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Fsyncs the directory `dir`, so that a file created or renamed in it
    /// keeps its name after a crash of the machine.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// Replaces the file at `path` by `bytes`, atomically: after a crash
    /// at any moment the file holds either its old contents or `bytes`,
    /// whole. Writes `path` + `.tmp`, fsyncs it, renames it over `path`
    /// and fsyncs the directory. For small files (an election epoch, a
    /// node's state), not the log. On error, treat the new contents as not
    /// written: if the error came before the rename the old file is
    /// untouched (a temporary file may be left; the next call replaces it);
    /// if only the directory fsync failed, the new contents are in place but
    /// may not survive a crash of the machine.
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let tmp = tmp_path(path);
        let file = self.open(&tmp, OpenMode::Truncate)?;
        write_all_at(&*file, bytes, 0)?;
        file.sync_all()?;
        drop(file);
        self.rename(&tmp, path)?;
        self.sync_dir(path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))
    }

    /// The whole contents of the small file at `path`, `None` if there is
    /// none: the reading side of [`write_atomic`](Storage::write_atomic).
    fn read_small(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        let file = match self.open(path, OpenMode::Read) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = usize::try_from(file.size()?).map_err(|_| io::Error::other("file too large"))?;
        let mut buf = vec![0; len];
        read_exact_at(&*file, &mut buf, 0)?;
        Ok(Some(buf))
    }
}

/// `path` with `.tmp` appended to its file name.
fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Writes all of `buf` at `offset`, retrying short writes and EINTR. A
/// write that makes no progress is [`ErrorKind::WriteZero`].
pub fn write_all_at(file: &dyn StorageFile, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.write_at(buf, offset) {
            Ok(0) => return Err(io::Error::new(ErrorKind::WriteZero, "failed to write whole buffer")),
            Ok(n) => {
                buf = buf.get(n..).unwrap_or_default();
                offset += n as u64;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Fills `buf` from `offset`, retrying short reads and EINTR; the end of
/// the file first is [`ErrorKind::UnexpectedEof`].
pub fn read_exact_at(file: &dyn StorageFile, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.read_at(buf, offset) {
            Ok(0) => return Err(io::Error::new(ErrorKind::UnexpectedEof, "failed to fill whole buffer")),
            Ok(n) => {
                buf = buf.get_mut(n..).unwrap_or_default();
                offset += n as u64;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The real file system, `std::fs`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Disk;

impl StorageFile for File {
    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        FileExt::write_at(self, buf, offset)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }
    fn sync_all(&self) -> io::Result<()> {
        File::sync_all(self)
    }
    fn try_lock(&self) -> io::Result<bool> {
        match File::try_lock(self) {
            Ok(()) => Ok(true),
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
    fn is_at(&self, path: &Path) -> io::Result<bool> {
        let ours = self.metadata()?;
        let named = fs::metadata(path)?;
        Ok((ours.dev(), ours.ino()) == (named.dev(), named.ino()))
    }
}

impl Storage for Disk {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let mut o = OpenOptions::new();
        o.read(true);
        match mode {
            OpenMode::Read => {}
            OpenMode::Create => {
                o.write(true).create(true).truncate(false);
            }
            OpenMode::Truncate => {
                o.write(true).create(true).truncate(true);
            }
        }
        Ok(Arc::new(o.open(path)?))
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::log::testutil::TempDir;

    #[test]
    fn write_atomic_replaces_whole_and_reads_back() {
        let tmp = TempDir::new();
        let path = tmp.0.join("state");
        assert_eq!(Disk.read_small(&path).unwrap(), None);
        Disk.write_atomic(&path, b"epoch 1").unwrap();
        Disk.write_atomic(&path, b"epoch 12").unwrap();
        Disk.write_atomic(&path, b"e3").unwrap();
        assert_eq!(Disk.read_small(&path).unwrap().as_deref(), Some(&b"e3"[..]));
        assert!(!tmp_path(&path).exists());
    }

    /// A file that writes at most `max` bytes a call.
    struct Short(File, usize);
    impl StorageFile for Short {
        fn size(&self) -> io::Result<u64> {
            StorageFile::size(&self.0)
        }
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let n = buf.len().min(self.1);
            StorageFile::read_at(&self.0, &mut buf[..n], offset)
        }
        fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
            StorageFile::write_at(&self.0, &buf[..buf.len().min(self.1)], offset)
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            StorageFile::set_len(&self.0, len)
        }
        fn sync_data(&self) -> io::Result<()> {
            Ok(())
        }
        fn sync_all(&self) -> io::Result<()> {
            Ok(())
        }
        fn try_lock(&self) -> io::Result<bool> {
            Ok(true)
        }
        fn is_at(&self, path: &Path) -> io::Result<bool> {
            self.0.is_at(path)
        }
    }

    #[test]
    fn short_reads_and_writes_are_completed() {
        let tmp = TempDir::new();
        let path = tmp.0.join("f");
        let file = Short(File::create_new(&path).unwrap(), 3);
        let data: Vec<u8> = (0..100).collect();
        write_all_at(&file, &data, 5).unwrap();
        let mut back = vec![0; 100];
        read_exact_at(&file, &mut back, 5).unwrap();
        assert_eq!(back, data);
        assert_eq!(read_exact_at(&file, &mut back, 6).unwrap_err().kind(), ErrorKind::UnexpectedEof);
        assert_eq!(
            write_all_at(&Short(OpenOptions::new().write(true).open(&path).unwrap(), 0), b"x", 0).unwrap_err().kind(),
            ErrorKind::WriteZero
        );
        assert!(file.is_at(&path).unwrap());
    }
}
