//! TEMPORARY minimal log until the real module lands (same API).
#![allow(missing_docs, clippy::all, dead_code)]
use super::record::Record;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    Always,
    EverySec,
    No,
}
impl std::str::FromStr for Fsync {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "always" => Ok(Fsync::Always),
            "everysec" => Ok(Fsync::EverySec),
            "no" => Ok(Fsync::No),
            _ => Err(format!("unknown fsync policy '{s}' (always, everysec, no)")),
        }
    }
}
impl std::fmt::Display for Fsync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Fsync::Always => "always",
            Fsync::EverySec => "everysec",
            Fsync::No => "no",
        })
    }
}
pub struct LogConfig {
    pub dir: PathBuf,
    pub fsync: Fsync,
    pub truncate_corrupt: bool,
    pub max_record: usize,
}
pub struct ReplayStats {
    pub records: u64,
    pub bytes: u64,
    pub dropped_tail_bytes: u64,
    pub elapsed: Duration,
}
#[derive(Debug)]
pub enum LogError {
    Io(String),
}
impl std::fmt::Display for LogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogError::Io(s) => f.write_str(s),
        }
    }
}
impl std::error::Error for LogError {}
pub struct RewriteDone {
    pub old_len: u64,
    pub new_len: u64,
    pub elapsed: Duration,
}
pub struct AppendLog {
    file: std::fs::File,
    path: PathBuf,
    pending: Vec<u8>,
    len: u64,
    fsync: Fsync,
}
impl AppendLog {
    pub fn open(cfg: &LogConfig, mut apply: impl FnMut(&Record<'_>)) -> Result<(AppendLog, ReplayStats), LogError> {
        let e = |x: io::Error| LogError::Io(x.to_string());
        std::fs::create_dir_all(&cfg.dir).map_err(e)?;
        let path = cfg.dir.join("kvstore.aof");
        let mut file = std::fs::OpenOptions::new().read(true).append(true).create(true).open(&path).map_err(e)?;
        let mut buf = vec![];
        file.read_to_end(&mut buf).map_err(e)?;
        let mut pos = 0;
        let mut records = 0;
        while let Ok((r, n)) = Record::decode(&buf[pos..], cfg.max_record) {
            apply(&r);
            pos += n;
            records += 1;
        }
        Ok((
            AppendLog { file, path, pending: vec![], len: pos as u64, fsync: cfg.fsync },
            ReplayStats { records, bytes: pos as u64, dropped_tail_bytes: 0, elapsed: Duration::ZERO },
        ))
    }
    pub fn stage(&mut self, rec: &Record<'_>) {
        rec.encode(&mut self.pending)
    }
    pub fn has_staged(&self) -> bool {
        !self.pending.is_empty()
    }
    pub fn commit(&mut self) -> io::Result<()> {
        self.file.write_all(&self.pending)?;
        self.len += self.pending.len() as u64;
        self.pending.clear();
        if self.fsync == Fsync::Always {
            self.file.sync_data()?;
        }
        Ok(())
    }
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn sync_all(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }
    pub fn begin_rewrite(&mut self, _head: &[Record<'_>]) -> io::Result<()> {
        Err(io::Error::other("todo"))
    }
    pub fn rewrite_record(&mut self, _rec: &Record<'_>) {}
    pub fn finish_rewrite(&mut self) -> io::Result<()> {
        Ok(())
    }
    pub fn poll_rewrite(&mut self) -> Option<Result<RewriteDone, io::Error>> {
        None
    }
    pub fn rewriting(&self) -> bool {
        false
    }
    pub fn abort_rewrite(&mut self) {}
}
