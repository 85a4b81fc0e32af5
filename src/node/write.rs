//! The write paths: a client's write, a write typed by a person as
//! `REPL_PUT`/`REPL_DEL`, a peer's write, a peer's "synced" — each applied
//! to the store through its one apply path and staged in the log in the
//! same step; and the log commit that ends the iteration, which keeps them
//! or rolls them all back.
//!
//! A write sets a key's whole state, its value and its deadline (see
//! [`crate::storage::store`]): [`Node::local_write`] leaves the key without
//! a deadline (SET, MSET), [`Node::local_put`] gives it one, and
//! [`Node::set_deadline`] writes the value again with a new deadline
//! (EXPIRE, PERSIST). A command that changes a value but keeps its TTL, as
//! Redis's INCR or APPEND do, passes [`crate::storage::store::Store::deadline_of`]
//! to [`Node::local_put`].

use std::time::Duration;

use super::{Commit, Node};
use crate::storage::counter::Counter;
use crate::storage::record::{FLAG_ORDERED, Op, Record, Version};
use crate::storage::store::Applied;

/// How long writes are refused after the log failed.
const LOG_DOWN_FOR: Duration = Duration::from_secs(1);

/// The largest copy of a value [`Node::set_deadline`] keeps for the next
/// one: a big value's copy is freed rather than held for good.
const KEEP_VALUE_COPY: usize = 64 << 10;

/// Why a write was refused; nothing was applied.
#[derive(Debug)]
pub struct Refused(pub String);

impl Node {
    fn refuse_if_log_down(&mut self) -> Result<(), Refused> {
        match &self.log_down {
            None => Ok(()),
            Some((_, why)) if self.log.needs_rewrite() => {
                Err(Refused(format!("log write failed ({why}); writes are refused until the log is rewritten")))
            }
            Some((until, why)) if *until > self.now => {
                Err(Refused(format!("log write failed ({why}); writes are refused for now")))
            }
            Some(_) => {
                self.log_down = None;
                Ok(())
            }
        }
    }

    /// Once per loop iteration: after a failed fsync the log takes no
    /// writes until it is rewritten whole from the store (see "Disk faults"
    /// in [`crate::storage::log`]); this starts that rewrite, a compaction,
    /// and starts it again [`LOG_DOWN_FOR`] after each failure, until the
    /// disk takes it. Writes are refused meanwhile, so the snapshot is all
    /// there is. Returns when to look again, if the log is waiting for one.
    pub(super) fn recover_log(&mut self) -> Option<std::time::Instant> {
        if !self.log.check_background() {
            return None;
        }
        let why = self.log.failure().unwrap_or("an fsync failed").to_string();
        let until = match &self.log_down {
            Some((until, _)) => *until,
            None => {
                // The `everysec` thread's failure, with no write to fail yet.
                self.stats.log_write_errors += 1;
                self.log_down = Some((self.now, why.clone()));
                self.now
            }
        };
        if self.compaction.is_some() || until > self.now {
            return Some(until);
        }
        log::warn!("rewriting the log from memory after a failed fsync ({why})");
        if let Err(e) = self.start_compaction() {
            log::error!("{e}; trying again in {LOG_DOWN_FOR:?}");
            self.log_down = Some((self.now + LOG_DOWN_FOR, why));
        }
        self.log_down.as_ref().map(|(until, _)| *until)
    }

    /// A rewrite started by [`Node::recover_log`] ended: writes are
    /// accepted again if it healed the log, or it is tried again later.
    pub(super) fn recovery_ended(&mut self, ok: bool) {
        if !self.log.needs_rewrite() {
            if ok {
                log::info!("the log was rewritten after a failed fsync: writes are accepted again");
            }
            self.log_down = None;
        } else if let Some((until, _)) = &mut self.log_down {
            *until = self.now + LOG_DOWN_FOR;
        }
    }

    /// A client's write: versioned here, applied, staged in the log, and
    /// queued for the peers once logged. A put leaves the key without a
    /// deadline.
    pub fn local_write(&mut self, op: Op, key: &[u8], value: &[u8]) -> Result<Applied, Refused> {
        self.write_record(op, key, value, None)
    }

    /// A client's put of `key` that expires at `deadline` (milliseconds
    /// since the epoch; `None`: never). A deadline that is not after the
    /// store's time deletes the key (the record says so, and every node and
    /// every replay reads it alike).
    pub fn local_put(&mut self, key: &[u8], value: &[u8], deadline: Option<u64>) -> Result<Applied, Refused> {
        self.write_record(Op::Put, key, value, deadline)
    }

    /// Gives the live `key` a new deadline (`None`: none), as a new write of
    /// its value; a deadline that is not after the store's time deletes it
    /// (as Redis does, with a DEL). Returns whether the key was live (if
    /// not, nothing is written).
    pub fn set_deadline(&mut self, key: &[u8], deadline: Option<u64>) -> Result<bool, Refused> {
        let Some((value, _)) = self.store.get_with_deadline(key) else { return Ok(false) };
        if deadline.is_some_and(|d| d <= self.store.now_ms()) {
            self.write_record(Op::Del, key, b"", None)?;
            return Ok(true);
        }
        if let Some(state) = self.store.counter(key).cloned() {
            // A counter's new deadline is an increment by 0: a new version
            // of the whole state, so that increments made at once elsewhere
            // are kept (a plain write of the value would reset them).
            self.local_counter(key, state, 0, deadline)?;
            return Ok(true);
        }
        // The value is copied out of the store (which the write changes)
        // into a buffer kept for the purpose: no allocation once it has
        // grown, unless it grew past what is worth keeping for the next.
        let mut copy = std::mem::take(&mut self.value_copy);
        copy.clear();
        copy.extend_from_slice(value);
        let r = self.write_record(Op::Put, key, &copy, deadline);
        if copy.capacity() <= KEEP_VALUE_COPY {
            self.value_copy = copy;
        }
        r.map(|_| true)
    }

    /// A client's increment of a converging counter (multi-master mode):
    /// `state` (from [`crate::storage::store::Store::counter_to_increment`])
    /// gains `delta` as this node's increment at a fresh version, and the
    /// whole state is the write: logged and sent as [`Op::Counter`], so any
    /// copy of it, in any order, merges to the same counter. The key keeps
    /// `deadline`. Returns the new value, or `None` (nothing written) if it
    /// would overflow.
    pub fn local_counter(
        &mut self,
        key: &[u8],
        mut state: Counter,
        delta: i64,
        deadline: Option<u64>,
    ) -> Result<Option<i64>, Refused> {
        self.refuse_if_log_down()?;
        // Checked on a copy of the clock's next value: a refused increment
        // takes no version.
        let version = Version::new(self.store.clock() + 1, self.id);
        let Some(value) = state.add(delta, version) else { return Ok(None) };
        let mut encoded = Vec::new();
        state.encode(&mut encoded);
        self.write_record(Op::Counter, key, &encoded, deadline)?;
        Ok(Some(value))
    }

    fn write_record(&mut self, op: Op, key: &[u8], value: &[u8], deadline: Option<u64>) -> Result<Applied, Refused> {
        self.refuse_if_log_down()?;
        let version = self.store.next_version(self.id);
        let deadline = if matches!(op, Op::Put | Op::Counter) { deadline } else { None };
        let rec = Record { op, flags: FLAG_ORDERED, version, key, value, deadline };
        self.log.stage(&rec);
        let applied = self.store.apply(&rec, self.now_secs);
        self.repl.queue_write(&rec);
        self.stats.writes += 1;
        self.wrote = true;
        self.local_wrote = true;
        Ok(applied)
    }

    /// A write typed by a person as `REPL_PUT`/`REPL_DEL` (no version): applied
    /// here only. Its version names node 0, which no node forwards.
    pub fn manual_replica_write(&mut self, op: Op, key: &[u8], value: &[u8]) -> Result<Applied, Refused> {
        self.refuse_if_log_down()?;
        let version = Version::new(self.store.next_version(self.id).counter(), 0);
        let rec = Record { op, flags: 0, version, key, value, deadline: None };
        let applied = self.store.apply(&rec, self.now_secs);
        if matches!(applied, Applied::Done { .. }) {
            self.log.stage(&rec);
            self.wrote = true;
        }
        Ok(applied)
    }

    /// A write from peer `from`'s link. `ordered` frames move the watermark.
    /// Returns the watermark of `from` to acknowledge with.
    pub fn peer_write(&mut self, from: u16, ordered: bool, rec: Record<'_>) -> Result<u64, Refused> {
        self.refuse_if_log_down()?;
        let rec = Record { flags: if ordered { FLAG_ORDERED } else { 0 }, ..rec };
        if let Applied::Done { .. } = self.store.apply(&rec, self.now_secs) {
            self.log.stage(&rec);
            self.repl.progress.note_applied(rec.version.node());
            self.wrote = true;
            if rec.op == Op::FlushAll {
                // The entries newer than a peer's FLUSHALL survive it in new
                // slots: a scan under way must start over or skip them.
                self.repl.restart_scans();
            }
            if self
                .election()
                .is_some_and(|e| e.leading() && crate::repl::election::epoch_of(rec.version.counter()) < e.epoch)
            {
                self.adopt(&rec)?;
            }
        }
        if ordered {
            self.repl.progress.advance(rec.version.node(), rec.version.counter());
        }
        Ok(self.repl.watermark(from))
    }

    /// Leader mode: a write of an older epoch (a deposed leader's, merging
    /// back) reached the leader and won here. No majority may hold it, so
    /// the leader writes it again as its own, in its epoch: replicated and
    /// confirmed like any of its writes, and its replies (reads that could
    /// show it) wait for that.
    fn adopt(&mut self, rec: &Record<'_>) -> Result<(), Refused> {
        let client_wrote = self.local_wrote;
        self.write_record(rec.op, rec.key, rec.value, rec.deadline)?;
        self.local_wrote = client_wrote;
        self.leader_wrote = self.store.clock();
        self.stats.adopted += 1;
        Ok(())
    }

    /// Peer `from` says this node now has all its writes up to `counter`.
    pub fn peer_synced(&mut self, from: u16, counter: u64) -> Result<u64, Refused> {
        self.refuse_if_log_down()?;
        self.store.observe(counter);
        self.repl.progress.advance(from, counter);
        let version = Version::new(counter, from);
        let rec = Record { op: Op::Watermark, flags: 0, version, key: b"", value: b"", deadline: None };
        self.log.stage(&rec);
        self.wrote = true;
        Ok(self.repl.watermark(from))
    }

    /// Peer `from`'s catch-up scan is through: this node has all its writes
    /// up to `counter`, and of every other origin what `claims` say the
    /// peer held when its scan began. Each becomes a watermark record.
    pub fn peer_synced_all(&mut self, from: u16, counter: u64, claims: &[(u16, u64)]) -> Result<u64, Refused> {
        self.peer_synced(from, counter)?;
        for &(origin, w) in claims {
            if origin == self.id || origin == from || origin == 0 || w <= self.repl.watermark(origin) {
                continue;
            }
            self.repl.progress.advance(origin, w);
            let version = Version::new(w, origin);
            let rec = Record { op: Op::Watermark, flags: 0, version, key: b"", value: b"", deadline: None };
            self.log.stage(&rec);
        }
        Ok(self.repl.watermark(from))
    }

    /// Writes what this iteration staged to the log (and fsyncs under
    /// `--fsync always`). On failure every write of the iteration is undone
    /// in the store, the watermarks and the peers' batch, and writes are
    /// refused for a moment.
    pub(super) fn commit_log(&mut self) -> Commit {
        if !self.log.has_staged() {
            self.store.commit();
            self.repl.committed();
            return Commit::Nothing;
        }
        match self.log.commit() {
            Ok(()) => {
                self.store.commit();
                self.repl.committed();
                if self.leading() {
                    self.own_logged = self.store.clock();
                }
                Commit::Done
            }
            Err(e) => {
                let why = e.to_string();
                self.store.rollback();
                self.repl.rolled_back();
                self.stats.log_write_errors += 1;
                log::error!(
                    "log write failed: {why}; this iteration's writes were rolled back and writes are refused for {LOG_DOWN_FOR:?}"
                );
                self.log_down = Some((self.now + LOG_DOWN_FOR, why.clone()));
                Commit::Failed(why)
            }
        }
    }
}
