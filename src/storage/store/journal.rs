//! The store's undo journal: what each write of the current loop iteration
//! replaced, so that a failed log commit can put the store back exactly as
//! it was ([`Store::rollback`]), and forgets it once the log has them
//! ([`Store::commit`]).

use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::expiry::Expiry;
use super::{Entry, Store};
use crate::storage::counter::Counter;
use crate::storage::record::Version;

pub(super) enum Undo {
    /// Slot `idx` was overwritten in place; its old value bytes are at
    /// `scratch[at..at + len]`, its old version, deletion stamp (`LIVE` if
    /// it had a deadline: its place in the index is not kept, it may move)
    /// and deadline here.
    InPlace { idx: u32, at: usize, len: usize, version: Version, deleted_at: u32, deadline: Option<u64> },
    /// Slot `idx` held `prev`, expiring at `deadline`, before the write.
    Replaced { idx: u32, prev: Entry, deadline: Option<u64> },
    /// The write appended slot `idx` (always the last one when undone).
    Inserted { idx: u32 },
    /// The counter state of `key` was `prev` (`None`: none) before a
    /// counter record changed it.
    Counter { key: Box<[u8]>, prev: Option<Counter> },
    /// A FLUSHALL replaced the whole keyspace. Boxed: rare, and the
    /// largest variant, whose size every journal entry would take.
    Flushed(Box<Flushed>),
}

/// The keyspace a FLUSHALL replaced, for its rollback.
pub(super) struct Flushed {
    pub(super) entries: Vec<Entry>,
    pub(super) index: HashTable<u32>,
    pub(super) expiry: Expiry,
    pub(super) floor: Version,
    pub(super) live: usize,
    pub(super) data_bytes: u64,
}

impl Store {
    /// Turns the undo journal off (replay) or back on.
    pub fn set_journaling(&mut self, on: bool) {
        self.journal.clear();
        self.journaling = on;
    }

    pub(super) fn journal(&mut self, undo: Undo) {
        if self.journaling {
            self.journal.push(undo);
        }
    }

    /// The log has every write applied since the last commit: forget how to
    /// undo them (this is where replaced values are freed).
    pub fn commit(&mut self) {
        self.journal.clear();
        self.scratch.clear();
        self.sweep_counters();
    }

    /// The log could not take the writes applied since the last commit:
    /// undo them, newest first.
    pub fn rollback(&mut self) {
        while let Some(undo) = self.journal.pop() {
            match undo {
                Undo::InPlace { idx, at, len, version, deleted_at, deadline } => {
                    self.expiry.remove(&mut self.entries, idx);
                    let slot = &mut self.entries[idx as usize];
                    let klen = slot.klen as usize;
                    slot.data[klen..klen + len].copy_from_slice(&self.scratch[at..at + len]);
                    slot.version = version;
                    slot.deleted_at = deleted_at;
                    if !slot.is_live() {
                        self.live -= 1;
                    }
                    if let Some(d) = deadline {
                        self.expiry.set(&mut self.entries, idx, d);
                    }
                }
                Undo::Replaced { idx, prev, deadline } => {
                    self.expiry.remove(&mut self.entries, idx);
                    let cur = std::mem::replace(&mut self.entries[idx as usize], prev);
                    self.account_remove(&cur);
                    self.data_bytes += self.entries[idx as usize].record_len();
                    if self.entries[idx as usize].is_live() {
                        self.live += 1;
                    }
                    if let Some(d) = deadline {
                        self.expiry.set(&mut self.entries, idx, d);
                    }
                }
                Undo::Inserted { idx } => {
                    debug_assert_eq!(idx as usize + 1, self.entries.len());
                    self.expiry.remove(&mut self.entries, idx);
                    if let Some(cur) = self.entries.pop() {
                        let hash = self.hasher.hash_one(cur.key());
                        if let Ok(found) = self.index.find_entry(hash, |&i| i == idx) {
                            found.remove();
                        }
                        self.account_remove(&cur);
                    }
                }
                Undo::Counter { key, prev } => match prev {
                    Some(c) => {
                        self.counters.insert(key, c);
                    }
                    None => {
                        self.counters.remove(&key);
                    }
                },
                Undo::Flushed(flushed) => {
                    let Flushed { entries, index, expiry, floor, live, data_bytes } = *flushed;
                    self.entries = entries;
                    self.index = index;
                    self.expiry = expiry;
                    self.floor = floor;
                    self.live = live;
                    self.data_bytes = data_bytes;
                }
            }
        }
        self.scratch.clear();
        self.fresh_tombstones.retain(|&i| (i as usize) < self.entries.len());
    }
}
