//! The keyspace: versioned entries, last writer wins, tombstones, and
//! expiry beside them (the `expiry` module).
//!
//! Every change — a client's write, a replayed log record, a write from a
//! peer — goes through [`Store::apply`], so the three can never disagree.
//!
//! Layout: entries live in a dense `Vec` and a `hashbrown::HashTable<u32>`
//! maps a key's hash to its index. The dense array makes a scan resumable by
//! index (compaction and peer sync walk it a chunk per loop iteration) and
//! keeps the per-key overhead to one slot of the array plus four bytes of
//! table. Removal (`swap_remove`) moves an entry, so it happens only at safe
//! points chosen by the server: never while a scan is under way.
//!
//! The store keeps an undo journal of the current loop iteration: if the log
//! cannot be written, [`Store::rollback`] restores the state before the
//! writes that the log could not take, so a write is never applied without
//! being logged. [`Store::commit`] forgets the journal (and frees what the
//! writes replaced) once the log has the writes.
//!
//! # Expiry
//!
//! A key's state is its value and its deadline (an absolute time in
//! milliseconds since the epoch, or none) under one version: a write sets
//! both, so a change of deadline alone (EXPIRE, PERSIST) is a new write of
//! the same value, and last-writer-wins settles deadlines exactly as it
//! settles values. The deadline lives in the expiry index beside the
//! entries (module `expiry`); an entry that has one holds only its place in the
//! index, in its `deleted_at` (unused by a live key otherwise), so a key
//! without a deadline costs nothing more and its read does no more work.
//!
//! Time is an input: [`Store::set_now`], once per loop iteration. Once a
//! key's deadline is at or before it, every read treats the key as a
//! tombstone at the version of its last write (lazy expiry): [`Store::get`],
//! [`Store::len`], [`Store::slot`] never show it. That is exactly what it
//! is, on every node and at replay, without any DEL being written or sent:
//! a write whose deadline has passed when it is applied (a replayed record
//! after a restart, a late or resent peer frame) is applied as a delete at
//! its version. Active expiry ([`Store::expire_due`]) then makes it a real
//! tombstone (with peers: so that a late, older write cannot bring the key
//! back, as for a DEL) or frees it (without peers), the keys due first, a
//! bounded number per call.
//!
//! A clock that steps back does not bring an expired key back: the store's
//! time never goes backwards.
//!
//! Why this converges across nodes. The deadline travels with the write
//! (log record, peer frame, catch-up scan, compaction snapshot), absolute,
//! so every node holds the same (value, deadline, version) for a key once
//! the same writes reached it, and each reads it as gone from the same
//! moment of its own clock; nodes whose clocks differ by d disagree for d
//! at most, as they would on any time-dependent read. Expiring a key is not
//! a write: the state "value v, deadline d, version n, now past d" and "a
//! tombstone at version n" are the same state, so no node needs to tell
//! another, and it does not matter which of the two a node holds, sends
//! (a scan sends a due key as a delete at its version) or logs (compaction
//! writes it as one, or drops it on a node without peers). What must not
//! happen is that the key's entry disappears while an older write of it may
//! still arrive from a peer: with peers, active expiry leaves the tombstone
//! (kept for the tombstone grace, like a DEL's), which rejects that write
//! as stale. A newer write of the key (a SET, or an EXPIRE made on a node
//! whose clock had not reached d yet) is a new state and wins everywhere,
//! as last-writer-wins says.

mod counters;
mod expiry;
mod journal;

use self::journal::{Flushed, Undo};

use std::hash::BuildHasher;

use hashbrown::HashTable;

use self::expiry::Expiry;
pub use self::expiry::KeyspaceInfo;
use super::counter::Counter;
use super::record::{DEADLINE_LEN, Op, Record, Version};

/// [`Entry::deleted_at`] of a live key without a deadline.
const LIVE: u32 = 0;
/// The bit of [`Entry::deleted_at`] that marks a live key with a deadline;
/// the bits below it are the key's place in the expiry index.
const EXPIRING: u32 = 1 << 31;
/// Tombstone stamps count seconds from here (2023-11-14), so that they fit
/// below [`EXPIRING`] until 2091; a stamp is at least 1 (never [`LIVE`]).
const STAMP_EPOCH: u32 = 1_700_000_000;

/// The stamp of a tombstone made at `secs` (seconds since the Unix epoch).
fn stamp(secs: u32) -> u32 {
    secs.saturating_sub(STAMP_EPOCH).clamp(1, EXPIRING - 1)
}

/// One key's state. A tombstone keeps the key and version of a delete so a
/// late, older write from a peer cannot bring the key back.
#[derive(Debug)]
struct Entry {
    /// Key bytes followed by value bytes: one allocation per key.
    data: Box<[u8]>,
    version: Version,
    klen: u32,
    /// [`LIVE`]; or [`EXPIRING`] and the key's place in the expiry index;
    /// or, for a tombstone, its [`stamp`].
    deleted_at: u32,
}

impl Entry {
    fn key(&self) -> &[u8] {
        &self.data[..self.klen as usize]
    }
    fn value_bytes(&self) -> &[u8] {
        &self.data[self.klen as usize..]
    }
    /// Whether the entry holds a value (it may be due to expire: see
    /// [`Store::visible`]).
    fn is_live(&self) -> bool {
        self.deleted_at == LIVE || self.expiring()
    }
    fn expiring(&self) -> bool {
        self.deleted_at & EXPIRING != 0
    }
    /// The entry's place in the expiry index, if it has a deadline.
    fn expiry_pos(&self) -> Option<usize> {
        self.expiring().then_some((self.deleted_at & !EXPIRING) as usize)
    }
    /// What this entry weighs as a log record, less a deadline (counted in
    /// [`Store::data_bytes`]): the measure of "live data" that decides when
    /// the log is worth compacting.
    fn record_len(&self) -> u64 {
        (super::record::FRAME_HEADER + super::record::PAYLOAD_FIXED + self.data.len()) as u64
    }
}

/// Hints the CPU to load the cache line at `p`. Never faults, whatever `p`.
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; it does not dereference `p` and
    // cannot fault, for any address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// A read-only view of one slot, for scans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value, or `None` for a tombstone.
    pub value: Option<&'a [u8]>,
    /// The version of the last write to the key.
    pub version: Version,
    /// When the key expires (ms since the epoch), if it has a value and a deadline.
    pub deadline: Option<u64>,
}

/// What [`Store::apply`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The write took effect; `was_live` says whether the key had a value before.
    Done {
        /// Whether the key held a value before this write.
        was_live: bool,
    },
    /// The store already holds a newer version of the key (or a FLUSHALL newer
    /// than the write): nothing changed.
    Stale,
    /// The record is not a write to the keyspace (a watermark).
    NotAWrite,
}

/// The keyspace. See the module docs.
pub struct Store {
    index: HashTable<u32>,
    entries: Vec<Entry>,
    /// foldhash, seeded per process: keys come from the network, so the
    /// hash must not be predictable (HashDoS). Measured on 1M 16-byte keys
    /// (`key:` + 12 digits): SipHash (std) ~36 ns/key, ahash 1.6, foldhash
    /// 2.2, FxHash 1.1 but unseeded. foldhash is within a nanosecond of the
    /// fastest seeded one and is hashbrown's own, so it adds no dependency.
    hasher: foldhash::fast::RandomState,
    /// Writes with a version at or below this are dropped: the last FLUSHALL.
    floor: Version,
    /// The Lamport clock: the highest counter this node has seen or made.
    clock: u64,
    keep_tombstones: bool,
    /// Entries holding a value, due to expire or not (see [`Store::len`]).
    live: usize,
    data_bytes: u64,
    /// The deadlines of the keys that have one.
    expiry: Expiry,
    /// The time, in milliseconds since the epoch, that deadlines are judged
    /// by (see [`Store::set_now`]).
    now_ms: u64,
    /// Keys expired by [`Store::expire_due`] since start.
    expired: u64,
    journal: Vec<Undo>,
    /// Old values of in-place overwrites, for rollback; reused, so an
    /// overwrite allocates nothing in steady state.
    scratch: Vec<u8>,
    /// Off during replay, where there is nothing to roll back to.
    journaling: bool,
    /// Tombstones made since the last sweep, for stores that keep none.
    fresh_tombstones: Vec<u32>,
    /// The converging counters' states, by key (module `counters`): only
    /// for keys whose last write was a counter record, so other keys pay
    /// nothing. A state is the key's only while its version is the entry's.
    counters: hashbrown::HashMap<Box<[u8]>, Counter, foldhash::fast::RandomState>,
    /// Some state may have stopped being its key's: sweep at commit.
    counters_dirty: bool,
}

impl Store {
    /// An empty store. `keep_tombstones` is for nodes with peers: deletes
    /// leave a tombstone until [`Store::sweep_expired`] reclaims it.
    pub fn new(keep_tombstones: bool) -> Store {
        Store {
            index: HashTable::new(),
            entries: Vec::new(),
            hasher: foldhash::fast::RandomState::default(),
            floor: Version(0),
            clock: 0,
            keep_tombstones,
            live: 0,
            data_bytes: 0,
            expiry: Expiry::default(),
            now_ms: 0,
            expired: 0,
            journal: Vec::new(),
            scratch: Vec::new(),
            journaling: true,
            fresh_tombstones: Vec::new(),
            counters: hashbrown::HashMap::default(),
            counters_dirty: false,
        }
    }

    fn find(&self, key: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        let entries = &self.entries;
        self.index.find(hash, |&i| entries[i as usize].key() == key).copied()
    }

    /// The hash of `key`, for [`Store::prefetch_entry`] and
    /// [`Store::prefetch_data`].
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// First of two passes that warm the cache for a batch of keys (group
    /// prefetching): walks the table to the key's slot and asks the CPU
    /// for its entry without waiting for it. Run over a whole pipelined
    /// batch, the misses of all its keys overlap instead of stalling one
    /// after another.
    pub fn prefetch_entry(&self, hash: u64) {
        let entries = &self.entries;
        let _ = self.index.find(hash, |&i| {
            prefetch(entries.as_ptr().wrapping_add(i as usize).cast());
            false
        });
    }

    /// Second pass (see [`Store::prefetch_entry`]): asks for the key's bytes.
    pub fn prefetch_data(&self, hash: u64) {
        let entries = &self.entries;
        let _ = self.index.find(hash, |&i| {
            if let Some(e) = entries.get(i as usize) {
                prefetch(e.data.as_ptr());
            }
            false
        });
    }

    /// The value of a live key (one whose deadline, if it has one, is
    /// still ahead).
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.find(key).and_then(|i| self.visible(i))
    }

    /// The value of slot `i`, unless it is a tombstone or due to expire.
    #[inline]
    fn visible(&self, i: u32) -> Option<&[u8]> {
        let e = &self.entries[i as usize];
        if e.deleted_at == LIVE {
            return Some(e.value_bytes());
        }
        e.expiry_pos().filter(|&pos| self.expiry.deadline_at(pos) > self.now_ms).map(|_| e.value_bytes())
    }

    /// Whether `key` holds a value.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// The version of the last write to `key`, tombstones included.
    pub fn version_of(&self, key: &[u8]) -> Option<Version> {
        self.find(key).map(|i| self.entries[i as usize].version)
    }

    /// A fresh version for a write made on this node: newer than anything
    /// the store has seen, so a local write always wins.
    pub fn next_version(&mut self, node: u16) -> Version {
        self.clock += 1;
        Version::new(self.clock, node)
    }

    /// Moves the clock past `counter` (a version seen from elsewhere).
    pub fn observe(&mut self, counter: u64) {
        self.clock = self.clock.max(counter);
    }

    /// The Lamport clock.
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// The last FLUSHALL's version (0 if none).
    pub fn floor(&self) -> Version {
        self.floor
    }

    /// Live keys, expired ones not counted: in the time it takes to walk
    /// the keys that are due and not yet expired by [`Store::expire_due`]
    /// (none, as long as active expiry keeps up).
    pub fn len(&self) -> usize {
        self.live - self.expiry.count_due(self.now_ms)
    }

    /// Whether no key holds a value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tombstones held (not counting keys due to expire that active expiry
    /// has not reached yet).
    pub fn tombstones(&self) -> usize {
        self.entries.len() - self.live
    }

    /// Bytes a log holding exactly this state would take (records only).
    pub fn data_bytes(&self) -> u64 {
        self.data_bytes + (DEADLINE_LEN * self.expiry.len()) as u64
    }

    /// Slots, live or not: the bound of a scan.
    pub fn slots(&self) -> usize {
        self.entries.len()
    }

    /// Slot `i` of a scan, if there is one. A key due to expire is a
    /// tombstone here, as everywhere.
    pub fn slot(&self, i: usize) -> Option<Slot<'_>> {
        let e = self.entries.get(i)?;
        let (value, deadline) = match e.expiry_pos() {
            _ if e.deleted_at == LIVE => (Some(e.value_bytes()), None),
            Some(pos) if self.expiry.deadline_at(pos) > self.now_ms => {
                (Some(e.value_bytes()), Some(self.expiry.deadline_at(pos)))
            }
            _ => (None, None),
        };
        Some(Slot { key: e.key(), value, version: e.version, deadline })
    }

    /// Applies one write, if it is newer than what the store holds.
    /// `now` (seconds since the epoch) stamps tombstones. A put whose
    /// deadline is not after the store's time is a delete at its version.
    pub fn apply(&mut self, rec: &Record<'_>, now: u32) -> Applied {
        if matches!(rec.op, Op::Watermark) {
            return Applied::NotAWrite;
        }
        self.observe(rec.version.counter());
        if rec.version <= self.floor {
            return Applied::Stale;
        }
        match rec.op {
            Op::Put => match rec.deadline {
                Some(d) if d <= self.now_ms => self.write(rec.key, None, rec.version, now, None, false),
                deadline => self.write(rec.key, Some(rec.value), rec.version, now, deadline, false),
            },
            Op::Del => self.write(rec.key, None, rec.version, now, None, false),
            Op::Counter => self.apply_counter(rec, now),
            Op::FlushAll => {
                let was_live = !self.is_empty();
                let entries = std::mem::take(&mut self.entries);
                let index = std::mem::take(&mut self.index);
                let expiry = std::mem::take(&mut self.expiry);
                let (floor, live, data_bytes) = (self.floor, self.live, self.data_bytes);
                self.floor = rec.version;
                self.live = 0;
                self.data_bytes = 0;
                self.fresh_tombstones.clear();
                // A FLUSHALL drops what is older than it, not what is newer:
                // a write made elsewhere after it may arrive here first (a
                // peer's FLUSHALL comes late, or a catch-up scan sends it
                // after live writes). Dropping that write here but not on
                // nodes that saw the two in the other order would leave the
                // cluster divergent for good. Such survivors are rare (a
                // local FLUSHALL is newer than everything), so copying them
                // keeps the undo journal simple.
                // A counter whose base is older than the FLUSHALL is reset
                // by it, as by a DEL, whatever its increments' versions.
                let counters = std::mem::take(&mut self.counters);
                let survives = |e: &&Entry| {
                    e.version > rec.version
                        && (counters.is_empty()
                            || counters.get(e.key()).is_none_or(|c| c.version() != e.version || c.base >= rec.version))
                };
                self.counters_dirty |= !counters.is_empty();
                for e in entries.iter().filter(survives) {
                    // Its place in the old index means nothing in the new one.
                    let deleted_at = if e.expiring() { LIVE } else { e.deleted_at };
                    let copy = Entry { data: e.data.clone(), version: e.version, klen: e.klen, deleted_at };
                    let idx = self.entries.len() as u32;
                    let hash = self.hasher.hash_one(copy.key());
                    self.entries.push(copy);
                    let (entries, hasher) = (&self.entries, &self.hasher);
                    self.index.insert_unique(hash, idx, |&i| hasher.hash_one(entries[i as usize].key()));
                    if let Some(pos) = e.expiry_pos() {
                        self.expiry.set(&mut self.entries, idx, expiry.deadline_at(pos));
                    }
                    self.account_add(idx);
                }
                self.counters = counters;
                self.journal(Undo::Flushed(Box::new(Flushed { entries, index, expiry, floor, live, data_bytes })));
                Applied::Done { was_live }
            }
            Op::Watermark => Applied::NotAWrite,
        }
    }

    /// Sets `key` to `value` (`None`: a tombstone) with `deadline` (ignored
    /// for a tombstone) at `version`, unless the store holds a newer version
    /// (or `force`: a counter's merge, whose version may be the entry's).
    /// A counter is held at its base's version here: a newer plain write
    /// resets it (see `counters`).
    fn write(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        version: Version,
        now: u32,
        deadline: Option<u64>,
        force: bool,
    ) -> Applied {
        let found = self.find(key);
        let mut was_live = false;
        if let Some(idx) = found {
            let slot = &self.entries[idx as usize];
            if slot.version >= version && !force {
                if !self.counter_reset_by(key, slot.version, version) {
                    return Applied::Stale;
                }
                self.counters_dirty = true;
            }
            was_live = slot.deleted_at == LIVE
                || slot.expiry_pos().is_some_and(|pos| self.expiry.deadline_at(pos) > self.now_ms);
        }
        let deadline = value.and(deadline);
        if let (Some(idx), Some(value)) = (found, value) {
            let slot = &mut self.entries[idx as usize];
            if slot.data.len() == key.len() + value.len() {
                // Same size: overwrite the bytes where they are, no allocation.
                let (old_version, old_deleted_at) = (slot.version, slot.deleted_at);
                let old_deadline = slot.expiry_pos().map(|p| self.expiry.deadline_at(p));
                if self.journaling {
                    let at = self.scratch.len();
                    self.scratch.extend_from_slice(&slot.data[key.len()..]);
                    // Kept without its place in the index (see `Undo::InPlace`).
                    let d = if old_deadline.is_some() { LIVE } else { old_deleted_at };
                    let len = value.len();
                    let undo =
                        Undo::InPlace { idx, at, len, version: old_version, deleted_at: d, deadline: old_deadline };
                    self.journal.push(undo);
                }
                let slot = &mut self.entries[idx as usize];
                slot.data[key.len()..].copy_from_slice(value);
                slot.version = version;
                if old_deleted_at == LIVE && deadline.is_none() {
                    // The common case: a key without a deadline keeps none.
                    return Applied::Done { was_live };
                }
                if !(old_deleted_at == LIVE || old_deadline.is_some()) {
                    slot.deleted_at = LIVE;
                    self.live += 1;
                }
                match deadline {
                    Some(d) => {
                        self.expiry.set(&mut self.entries, idx, d);
                    }
                    None if old_deadline.is_some() => {
                        self.expiry.remove(&mut self.entries, idx);
                    }
                    None => {}
                }
                return Applied::Done { was_live };
            }
        }
        let mut data = Vec::with_capacity(key.len() + value.map_or(0, <[u8]>::len));
        data.extend_from_slice(key);
        data.extend_from_slice(value.unwrap_or_default());
        let deleted_at = if value.is_some() { LIVE } else { stamp(now) };
        let entry = Entry { data: data.into_boxed_slice(), version, klen: key.len() as u32, deleted_at };
        match found {
            Some(idx) => {
                // The old entry leaves the index before it leaves its slot,
                // and is kept (for rollback) without its place in it.
                let prev_deadline = self.expiry.remove(&mut self.entries, idx);
                let prev = std::mem::replace(&mut self.entries[idx as usize], entry);
                if let Some(d) = deadline {
                    self.expiry.set(&mut self.entries, idx, d);
                }
                self.account_remove(&prev);
                self.account_add(idx);
                self.journal(Undo::Replaced { idx, prev, deadline: prev_deadline });
                Applied::Done { was_live }
            }
            None => {
                // A delete of a key never seen needs a tombstone only where
                // a peer may still send an older write of it.
                if value.is_none() && !self.keep_tombstones {
                    return Applied::Done { was_live: false };
                }
                let idx = self.entries.len() as u32;
                let hash = self.hasher.hash_one(key);
                self.entries.push(entry);
                let (entries, hasher) = (&self.entries, &self.hasher);
                self.index.insert_unique(hash, idx, |&i| hasher.hash_one(entries[i as usize].key()));
                if let Some(d) = deadline {
                    self.expiry.set(&mut self.entries, idx, d);
                }
                self.account_add(idx);
                self.journal(Undo::Inserted { idx });
                Applied::Done { was_live: false }
            }
        }
    }

    fn account_add(&mut self, idx: u32) {
        let e = &self.entries[idx as usize];
        self.data_bytes += e.record_len();
        if e.is_live() {
            self.live += 1;
        } else if !self.keep_tombstones {
            self.fresh_tombstones.push(idx);
        }
    }

    fn account_remove(&mut self, e: &Entry) {
        self.data_bytes -= e.record_len();
        if e.is_live() {
            self.live -= 1;
        }
    }

    /// Removes slot `idx` (a tombstone, or a key that expired) by moving
    /// the last slot into it. Only at a safe point: no scan under way,
    /// journal committed.
    fn remove_at(&mut self, idx: u32) {
        debug_assert!(self.journal.is_empty());
        let hash = self.hasher.hash_one(self.entries[idx as usize].key());
        if let Ok(found) = self.index.find_entry(hash, |&i| i == idx) {
            found.remove();
        }
        self.expiry.remove(&mut self.entries, idx);
        let last = (self.entries.len() - 1) as u32;
        if idx != last {
            let moved_hash = self.hasher.hash_one(self.entries[last as usize].key());
            if let Some(slot) = self.index.find_mut(moved_hash, |&i| i == last) {
                *slot = idx;
            }
        }
        let gone = self.entries.swap_remove(idx as usize);
        self.expiry.moved(&self.entries, idx);
        self.account_remove(&gone);
        self.counters_dirty |= !self.counters.is_empty();
    }

    /// Frees the tombstones a store without peers made since the last sweep.
    /// Only at a safe point (see `Store::remove_at`).
    pub fn sweep_fresh_tombstones(&mut self) {
        if self.fresh_tombstones.is_empty() {
            return;
        }
        let mut fresh = std::mem::take(&mut self.fresh_tombstones);
        fresh.sort_unstable_by(|a, b| b.cmp(a));
        fresh.dedup();
        for &idx in &fresh {
            if self.entries.get(idx as usize).is_some_and(|e| !e.is_live()) {
                self.remove_at(idx);
            }
        }
        fresh.clear();
        self.fresh_tombstones = fresh; // keep the allocation
    }

    /// Frees tombstones deleted at or before `cutoff` (seconds since the
    /// epoch), returning how many. Only at a safe point.
    pub fn sweep_expired(&mut self, cutoff: u32) -> usize {
        let cutoff = cutoff.saturating_sub(STAMP_EPOCH);
        let mut freed = 0;
        let mut i = self.entries.len();
        while i > 0 {
            i -= 1;
            let e = &self.entries[i];
            if !e.is_live() && e.deleted_at <= cutoff {
                self.remove_at(i as u32);
                freed += 1;
            }
        }
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::record::FLAG_ORDERED;

    fn put<'a>(key: &'a [u8], value: &'a [u8], v: Version) -> Record<'a> {
        Record { op: Op::Put, flags: FLAG_ORDERED, version: v, key, value, deadline: None }
    }
    fn del(key: &[u8], v: Version) -> Record<'_> {
        Record { op: Op::Del, flags: FLAG_ORDERED, version: v, key, value: b"", deadline: None }
    }

    #[test]
    fn newer_write_wins_in_any_order() {
        let (a, b) = (put(b"k", b"1", Version::new(1, 1)), put(b"k", b"2", Version::new(1, 2)));
        let mut s1 = Store::new(true);
        s1.apply(&a, 1);
        s1.apply(&b, 1);
        let mut s2 = Store::new(true);
        s2.apply(&b, 1);
        assert_eq!(s2.apply(&a, 1), Applied::Stale);
        assert_eq!(s1.get(b"k"), Some(&b"2"[..]));
        assert_eq!(s2.get(b"k"), Some(&b"2"[..]));
    }

    #[test]
    fn tombstone_blocks_older_write() {
        let mut s = Store::new(true);
        s.apply(&put(b"k", b"v", Version::new(1, 1)), 1);
        assert_eq!(s.apply(&del(b"k", Version::new(3, 1)), 1), Applied::Done { was_live: true });
        assert_eq!(s.apply(&put(b"k", b"old", Version::new(2, 2)), 1), Applied::Stale);
        assert_eq!(s.get(b"k"), None);
        assert_eq!((s.len(), s.tombstones()), (0, 1));
        s.commit();
        assert_eq!(s.sweep_expired(STAMP_EPOCH), 0);
        assert_eq!(s.sweep_expired(STAMP_EPOCH + 1), 1);
        assert_eq!(s.slots(), 0);
    }

    #[test]
    fn flushall_drops_older_writes_only() {
        let mut s = Store::new(true);
        s.apply(&put(b"a", b"1", Version::new(1, 1)), 1);
        let flush =
            Record { op: Op::FlushAll, flags: 0, version: Version::new(5, 1), key: b"", value: b"", deadline: None };
        s.apply(&flush, 1);
        assert!(s.is_empty());
        assert_eq!(s.apply(&put(b"b", b"late", Version::new(4, 2)), 1), Applied::Stale);
        s.apply(&put(b"c", b"new", Version::new(6, 2)), 1);
        assert_eq!(s.get(b"c"), Some(&b"new"[..]));
        assert_eq!(s.clock(), 6);
    }

    #[test]
    fn flushall_keeps_newer_writes_whatever_the_order() {
        let flush =
            Record { op: Op::FlushAll, flags: 0, version: Version::new(5, 1), key: b"", value: b"", deadline: None };
        let writes = [
            put(b"old", b"1", Version::new(4, 2)),
            put(b"new", b"2", Version::new(6, 2)),
            del(b"gone", Version::new(7, 3)),
        ];
        let late = put(b"gone", b"resurrected?", Version::new(6, 1));
        // The FLUSHALL before, between and after the writes: one outcome.
        for at in 0..=writes.len() {
            let mut s = Store::new(true);
            for (i, w) in writes.iter().enumerate() {
                if i == at {
                    s.apply(&flush, 1);
                }
                s.apply(w, 1);
            }
            if at == writes.len() {
                s.apply(&flush, 1);
            }
            assert_eq!(s.apply(&late, 1), Applied::Stale, "the tombstone newer than the flush survives (at {at})");
            assert_eq!(s.get(b"new"), Some(&b"2"[..]), "at {at}");
            assert_eq!(s.get(b"old"), None, "at {at}");
            assert_eq!((s.len(), s.tombstones(), s.floor()), (1, 1, flush.version), "at {at}");
            assert_eq!(s.data_bytes(), (0..s.slots()).map(|i| s.entries[i].record_len()).sum::<u64>());
        }
    }

    #[test]
    fn rollback_of_a_flushall_with_survivors() {
        let mut s = Store::new(true);
        s.apply(&put(b"a", b"1", Version::new(1, 1)), 1);
        s.apply(&put(b"b", b"2", Version::new(9, 2)), 1);
        s.commit();
        let before: Vec<_> = (0..s.slots()).map(|i| format!("{:?}", s.slot(i))).collect();
        let flush =
            Record { op: Op::FlushAll, flags: 0, version: Version::new(5, 1), key: b"", value: b"", deadline: None };
        s.apply(&flush, 1);
        assert_eq!((s.get(b"a"), s.get(b"b")), (None, Some(&b"2"[..])));
        s.apply(&put(b"b", b"3", Version::new(10, 1)), 1);
        s.rollback();
        let after: Vec<_> = (0..s.slots()).map(|i| format!("{:?}", s.slot(i))).collect();
        assert_eq!(before, after);
        assert_eq!((s.get(b"a"), s.get(b"b"), s.floor()), (Some(&b"1"[..]), Some(&b"2"[..]), Version(0)));
    }

    #[test]
    fn rollback_restores_exact_state() {
        let mut s = Store::new(false);
        s.apply(&put(b"a", b"1", Version::new(1, 1)), 1);
        s.apply(&put(b"b", b"2", Version::new(2, 1)), 1);
        s.commit();
        let before: Vec<_> = (0..s.slots()).map(|i| format!("{:?}", s.slot(i))).collect();
        let bytes = s.data_bytes();
        s.apply(&put(b"a", b"changed", Version::new(3, 1)), 1);
        s.apply(&del(b"b", Version::new(4, 1)), 1);
        s.apply(&put(b"new", b"x", Version::new(5, 1)), 1);
        let flush =
            Record { op: Op::FlushAll, flags: 0, version: Version::new(6, 1), key: b"", value: b"", deadline: None };
        s.apply(&flush, 1);
        s.apply(&put(b"after", b"y", Version::new(7, 1)), 1);
        s.rollback();
        let after: Vec<_> = (0..s.slots()).map(|i| format!("{:?}", s.slot(i))).collect();
        assert_eq!(before, after);
        assert_eq!((s.len(), s.data_bytes()), (2, bytes));
        assert_eq!(s.get(b"a"), Some(&b"1"[..]));
        assert_eq!(s.get(b"new"), None);
    }

    #[test]
    fn same_size_overwrite_is_in_place_and_rolls_back() {
        let mut s = Store::new(true);
        s.apply(&put(b"k", b"aaaa", Version::new(1, 1)), 1);
        s.apply(&put(b"t", b"", Version::new(2, 1)), 1);
        s.apply(&del(b"t", Version::new(3, 1)), 1);
        s.commit();
        let ptr = s.get(b"k").unwrap().as_ptr();
        s.apply(&put(b"k", b"bbbb", Version::new(4, 1)), 1);
        s.apply(&put(b"k", b"cccc", Version::new(5, 1)), 1);
        s.apply(&put(b"t", b"", Version::new(6, 1)), 1); // revives a tombstone in place
        assert_eq!(s.get(b"k"), Some(&b"cccc"[..]));
        assert_eq!(s.get(b"k").unwrap().as_ptr(), ptr, "not overwritten in place");
        assert_eq!((s.len(), s.tombstones()), (2, 0));
        s.rollback();
        assert_eq!(s.get(b"k"), Some(&b"aaaa"[..]));
        assert_eq!(s.version_of(b"k"), Some(Version::new(1, 1)));
        assert_eq!(s.get(b"t"), None);
        assert_eq!((s.len(), s.tombstones()), (1, 1));
    }

    #[test]
    fn sweep_fresh_keeps_index_consistent() {
        let mut s = Store::new(false);
        for i in 0..100u32 {
            s.apply(&put(&i.to_le_bytes(), b"v", Version::new(u64::from(i) + 1, 1)), 1);
        }
        for i in (0..100u32).step_by(3) {
            s.apply(&del(&i.to_le_bytes(), Version::new(1000 + u64::from(i), 1)), 1);
        }
        s.commit();
        s.sweep_fresh_tombstones();
        assert_eq!(s.tombstones(), 0);
        for i in 0..100u32 {
            assert_eq!(s.get(&i.to_le_bytes()).is_some(), i % 3 != 0, "key {i}");
        }
        assert_eq!(s.len(), s.slots());
    }
}
