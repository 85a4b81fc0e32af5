//! Compaction control: when a log rewrite starts, the snapshot written a
//! chunk per loop iteration (so the loop never stalls), and its end. The
//! file work (the new file, fsync, rename, directory fsync on a helper
//! thread) is the log's own ([`crate::storage::log`]).

use std::time::Instant;

use super::Node;
use crate::storage::counter;
use crate::storage::record::{Op, Record, Version};

/// Store slots a compaction writes per loop iteration: small enough that a
/// step costs well under a millisecond.
const COMPACT_CHUNK: usize = 4096;

/// A log rewrite under way: the store is walked from `cursor`.
#[derive(Debug)]
pub(super) struct Compaction {
    /// Next store slot to write into the new log; `None` once the snapshot
    /// is complete and the log is switching files.
    cursor: Option<usize>,
    /// When it began.
    started: Instant,
    /// Begun to rewrite the log after a failed fsync ([`Node::recover_log`]).
    recovery: bool,
}

impl Compaction {
    /// When it began (INFO's `aof_current_rewrite_time_sec`).
    pub(super) fn started(&self) -> Instant {
        self.started
    }
}

impl Node {
    /// Starts a compaction unless one is under way. Returns whether it started.
    pub fn start_compaction(&mut self) -> Result<bool, String> {
        if self.compaction.is_some() {
            return Ok(false);
        }
        let mut head: Vec<Record<'static>> = self.repl.progress.watermark_records().collect();
        // Our own clock, so replay restores it even when the records that
        // carried its highest counters are gone (overwritten, or tombstones
        // swept): peers may hold it as our watermark (see `replay_record`).
        head.push(Record {
            op: Op::Watermark,
            flags: 0,
            version: Version::new(self.store.clock(), self.id),
            key: b"",
            value: b"",
            deadline: None,
        });
        if self.store.floor() > Version(0) {
            let floor = self.store.floor();
            head.push(Record { op: Op::FlushAll, flags: 0, version: floor, key: b"", value: b"", deadline: None });
        }
        self.log.begin_rewrite(&head).map_err(|e| format!("cannot start compaction: {e}"))?;
        log::info!(
            "compaction started: log {} bytes, live data {} bytes in {} keys",
            self.log.len(),
            self.store.data_bytes(),
            self.store.len()
        );
        self.compaction = Some(Compaction { cursor: Some(0), started: self.now, recovery: self.log.needs_rewrite() });
        Ok(true)
    }

    /// Whether a compaction is under way.
    pub fn compacting(&self) -> bool {
        self.compaction.is_some()
    }

    /// Whether the log has grown enough past the live data to compact.
    pub(super) fn compaction_due(&self) -> bool {
        let m = self.cfg.compact_multiple;
        self.compaction.is_none()
            && m > 0.0
            && self.log.len() >= self.cfg.compact_min_bytes
            && self.log.len() as f64 > m * self.store.data_bytes() as f64
    }

    /// Whether the snapshot has chunks left to write (the loop must not sleep).
    pub(super) fn compaction_busy(&self) -> bool {
        self.compaction.as_ref().is_some_and(|c| c.cursor.is_some())
    }

    /// Writes the next chunk of the snapshot; after the last one, starts the
    /// file switch. A key with a deadline is written with it; a key due to
    /// expire is a tombstone to the scan (see `Store::slot`), written as one
    /// (a delete at its version) by a node with peers, and left out by a
    /// node without (which keeps no tombstones).
    pub(super) fn compaction_step(&mut self) {
        if self.compaction.is_some() && !self.log.rewriting() {
            // The log dropped it: a failed commit (whose rolled-back writes
            // the snapshot may hold) or a failed fsync.
            self.compaction_failed("the log abandoned it");
            return;
        }
        let Some(c) = &mut self.compaction else { return };
        let Some(cursor) = c.cursor else { return };
        let end = (cursor + COMPACT_CHUNK).min(self.store.slots());
        for i in cursor..end {
            if let Some(s) = self.store.slot(i) {
                let op = match s.value {
                    Some(_) => Op::Put,
                    None if self.repl.has_peers() => Op::Del,
                    None => continue,
                };
                let (mut value, mut deadline) = (s.value.unwrap_or_default(), s.deadline);
                // A counter is written as its state, which replay merges back
                // into the same counter (its value alone would lose the parts
                // that later increments from peers merge with); an expired
                // one as expired (see `counter::EXPIRED`).
                let mut state = Vec::new();
                let op = match self.store.counter_at(i) {
                    Some(c) => {
                        c.encode(&mut state);
                        value = &state;
                        if op == Op::Del {
                            deadline = Some(counter::EXPIRED);
                        }
                        Op::Counter
                    }
                    None => op,
                };
                let rec = Record { op, flags: 0, version: s.version, key: s.key, value, deadline };
                self.log.rewrite_record(&rec);
            }
        }
        if end < self.store.slots() {
            c.cursor = Some(end);
            return;
        }
        c.cursor = None;
        if let Err(e) = self.log.finish_rewrite() {
            self.log.abort_rewrite();
            self.compaction_failed(&e.to_string());
        }
    }

    /// Ends a compaction that failed (the log has dropped its rewrite).
    fn compaction_failed(&mut self, why: &str) {
        log::error!("compaction failed: {why}; the old log stays in use");
        let recovery = self.compaction.take().is_some_and(|c| c.recovery);
        self.stats.rewrite_ended(false, self.now_secs);
        if recovery {
            self.recovery_ended(false);
        }
    }

    /// Ends a compaction whose file switch completed.
    pub(super) fn compaction_poll(&mut self) {
        if self.compaction.is_none() {
            return;
        }
        let Some(result) = self.log.poll_rewrite() else { return };
        let (took, recovery) = self
            .compaction
            .take()
            .map_or((Default::default(), false), |c| (self.now.saturating_duration_since(c.started), c.recovery));
        if recovery {
            self.recovery_ended(result.is_ok());
        }
        match result {
            Ok(done) => {
                self.stats.compactions += 1;
                self.stats.rewrite_ended(true, self.now_secs);
                self.stats.last_compaction = Some((done.old_len, done.new_len, took));
                log::info!(
                    "compaction done in {:.3}s: log {} -> {} bytes",
                    took.as_secs_f64(),
                    done.old_len,
                    done.new_len
                );
            }
            Err(e) => {
                log::error!("compaction failed: {e}; the old log stays in use");
                self.stats.rewrite_ended(false, self.now_secs);
            }
        }
    }
}
