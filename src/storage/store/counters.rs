//! Converging counters in the store: the side table of counter states
//! (module [`crate::storage::counter`] has the state and its merge) and the
//! apply arm of [`Op::Counter`](crate::storage::record::Op::Counter).
//!
//! A counter key's entry is an ordinary entry: its value the decimal sum,
//! its version the state's newest, its deadline the one of the write that
//! made that version. So GET and every other reader, scans, watermarks and
//! tombstones see a plain key; only the state beside it, in
//! `Store::counters`, knows the parts. A state is the key's only while its
//! version is the entry's (the guard of [`Store::counter`]): a plain write
//! that wins replaces the entry and so, without touching the table, ends
//! the state's claim; the stale state is freed at the next commit
//! (`sweep_counters`), and a rollback of the write finds it still there.
//!
//! Against a plain write a counter stands at its base: a PUT or DEL newer
//! than the base resets it, even if some increment is newer still
//! (`counter_reset_by`); one older than the base loses. A missing key is
//! the plain state at the last FLUSHALL's version, value 0, so that an
//! increment made on it loses to no FLUSHALL it has seen and is reset by
//! any it has not.

use super::journal::Undo;
use super::{Applied, Store};
use crate::storage::counter::Counter;
use crate::storage::record::{Record, Version};

/// Why a key's state cannot start a counter.
#[derive(Debug, PartialEq, Eq)]
pub struct NotAnInteger;

impl Store {
    /// The counter state of `key`, if its last write was a counter (live or
    /// expired: an expired counter is a tombstone to readers, but stays the
    /// state that later counter records merge with, on every node alike).
    pub fn counter(&self, key: &[u8]) -> Option<&Counter> {
        if self.counters.is_empty() {
            return None;
        }
        let e = &self.entries[self.find(key)? as usize];
        self.counters.get(key).filter(|c| c.version() == e.version)
    }

    /// The counter state of slot `i`, for scans (see [`Store::counter`]).
    pub fn counter_at(&self, i: usize) -> Option<&Counter> {
        if self.counters.is_empty() {
            return None;
        }
        let e = self.entries.get(i)?;
        self.counters.get(e.key()).filter(|c| c.version() == e.version)
    }

    /// The state a local increment of `key` starts from: its counter, or
    /// the plain write it holds (whose value must be an integer), or for a
    /// missing or expired key the plain state of its tombstone (or of the
    /// last FLUSHALL) with value 0.
    pub fn counter_to_increment(&self, key: &[u8]) -> Result<Counter, NotAnInteger> {
        let Some(idx) = self.find(key) else { return Ok(Counter::plain(self.floor, 0)) };
        let Some(value) = self.visible(idx) else {
            return Ok(Counter::plain(self.entries[idx as usize].version, 0));
        };
        if let Some(c) = self.counter(key) {
            return Ok(c.clone());
        }
        let n = crate::storage::counter::parse_i64(value).ok_or(NotAnInteger)?;
        Ok(Counter::plain(self.entries[idx as usize].version, n))
    }

    /// Whether a plain write at `version` resets the counter at `key`,
    /// whose entry is at `entry_version` (not older than `version`).
    pub(super) fn counter_reset_by(&self, key: &[u8], entry_version: Version, version: Version) -> bool {
        !self.counters.is_empty()
            && self.counters.get(key).is_some_and(|c| c.version() == entry_version && c.base < version)
    }

    /// The apply arm of a counter record: merges its state into the key's
    /// (see the module docs), and writes the entry if that changed it.
    pub(super) fn apply_counter(&mut self, rec: &Record<'_>, now: u32) -> Applied {
        // Decoders check the state; a bad one here is dropped, not applied.
        let Some(incoming) = Counter::decode(rec.value).filter(|c| c.version() == rec.version) else {
            return Applied::Stale;
        };
        let found = self.find(rec.key);
        let (mut merged, live_deadline, visible) = match found {
            None => (Counter::plain(self.floor, 0), None, false),
            Some(idx) => {
                let e = &self.entries[idx as usize];
                let visible = self.visible(idx).is_some();
                let state = match self.counter(rec.key) {
                    Some(c) => c.clone(),
                    None => {
                        let value = self.visible(idx).and_then(crate::storage::counter::parse_i64);
                        Counter::plain(e.version, value.unwrap_or(0))
                    }
                };
                (state, self.deadline_of(rec.key), visible)
            }
        };
        let before = merged.version();
        if !merged.merge(&incoming) {
            return Applied::Stale;
        }
        // The deadline is the one of the write that made the newest version
        // (so it is the same whichever order the states came in); if that
        // is the key's own, and the key has expired, it stays a tombstone.
        let version = merged.version();
        let (keep_own, deadline) = if version == before { (true, live_deadline) } else { (false, rec.deadline) };
        let gone = (keep_own && found.is_some() && !visible) || deadline.is_some_and(|d| d <= self.now_ms);
        let mut digits = [0u8; 20];
        let text = crate::storage::counter::i64_text(merged.value(), &mut digits);
        let applied = self.write(rec.key, (!gone).then_some(text), version, now, deadline, true);
        // Without tombstones an expired counter leaves no entry: its state goes at commit.
        self.counters_dirty |= gone && !self.keep_tombstones;
        let prev = self.counters.insert(rec.key.into(), merged);
        self.journal(Undo::Counter { key: rec.key.into(), prev });
        applied
    }

    /// Frees the states that stopped being their key's (see the module
    /// docs), if any may have. At commit: the journal is empty.
    pub(super) fn sweep_counters(&mut self) {
        if !self.counters_dirty {
            return;
        }
        self.counters_dirty = false;
        let mut counters = std::mem::take(&mut self.counters);
        counters.retain(|k, c| self.find(k).is_some_and(|i| self.entries[i as usize].version == c.version()));
        self.counters = counters;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::record::{FLAG_ORDERED, Op};

    fn v(c: u64, n: u16) -> Version {
        Version::new(c, n)
    }

    fn put<'a>(key: &'a [u8], value: &'a [u8], version: Version) -> Record<'a> {
        Record { op: Op::Put, flags: FLAG_ORDERED, version, key, value, deadline: None }
    }

    /// `start` incremented by `delta` as node `last.node()` at `last`, as a record's value.
    fn inc(start: &Counter, delta: i64, last: Version) -> (Counter, Vec<u8>) {
        let mut c = start.clone();
        c.add(delta, last);
        let mut buf = Vec::new();
        c.encode(&mut buf);
        (c, buf)
    }

    fn counter_rec<'a>(key: &'a [u8], state: &'a [u8], deadline: Option<u64>) -> Record<'a> {
        let version = Counter::decode(state).map(|c| c.version()).unwrap_or_default();
        Record { op: Op::Counter, flags: FLAG_ORDERED, version, key, value: state, deadline }
    }

    #[test]
    fn increments_from_three_nodes_add_up_in_any_order_with_resends() {
        let base = Counter::plain(v(1, 1), 10);
        let (a, ab) = inc(&base, 1, v(2, 1));
        let (_, bb) = inc(&base, 2, v(2, 2));
        let (_, a2) = inc(&a, 4, v(3, 1));
        let (_, cb) = inc(&base, -20, v(5, 3));
        let recs = [ab.clone(), bb, a2, cb, ab];
        let orders: [[usize; 5]; 4] = [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [2, 0, 3, 4, 1], [3, 2, 1, 0, 4]];
        for order in orders {
            let mut s = Store::new(true);
            s.apply(&put(b"k", b"10", v(1, 1)), 1);
            for &i in &order {
                s.apply(&counter_rec(b"k", &recs[i], None), 1);
            }
            assert_eq!(s.get(b"k"), Some(&b"-3"[..]), "{order:?}");
            assert_eq!(s.version_of(b"k"), Some(v(5, 3)));
            assert_eq!(s.counter(b"k").map(|c| c.parts.len()), Some(3));
        }
        // Already held: stale, so a resend is not logged again.
        let mut s = Store::new(true);
        s.apply(&counter_rec(b"k", &recs[0], None), 1);
        assert_eq!(s.apply(&counter_rec(b"k", &recs[0], None), 1), Applied::Stale);
    }

    #[test]
    fn a_newer_plain_write_resets_and_an_older_one_loses() {
        let base = Counter::plain(v(3, 1), 0);
        let (_, state) = inc(&base, 5, v(9, 2));
        for reset_first in [false, true] {
            let mut s = Store::new(true);
            s.apply(&put(b"k", b"0", v(3, 1)), 1);
            let (rec, set) = (counter_rec(b"k", &state, None), put(b"k", b"7", v(5, 1)));
            if reset_first {
                s.apply(&set, 1);
                assert_eq!(s.apply(&rec, 1), Applied::Stale);
            } else {
                s.apply(&rec, 1);
                assert_eq!(s.apply(&set, 1), Applied::Done { was_live: true }, "newer than the base");
            }
            s.commit();
            assert_eq!((s.get(b"k"), s.counter(b"k")), (Some(&b"7"[..]), None), "reset first: {reset_first}");
            assert_eq!(s.counters.len(), 0, "the state is freed at commit");
            assert_eq!(s.apply(&put(b"k", b"old", v(2, 1)), 1), Applied::Stale);
        }
        let mut s = Store::new(true);
        s.apply(&counter_rec(b"k", &state, None), 1);
        assert_eq!(s.apply(&put(b"k", b"old", v(2, 2)), 1), Applied::Stale, "older than the base");
        assert_eq!(s.get(b"k"), Some(&b"5"[..]));
    }

    #[test]
    fn a_counter_starts_from_an_integer_and_keeps_its_state_until_reset() {
        let mut s = Store::new(true);
        assert_eq!(s.counter_to_increment(b"k"), Ok(Counter::plain(Version(0), 0)));
        s.apply(&put(b"k", b"41", v(2, 1)), 1);
        assert_eq!(s.counter_to_increment(b"k"), Ok(Counter::plain(v(2, 1), 41)));
        s.apply(&put(b"t", b"4.5", v(3, 1)), 1);
        assert_eq!(s.counter_to_increment(b"t"), Err(NotAnInteger));
        let (c, state) = inc(&Counter::plain(v(2, 1), 41), 1, v(4, 1));
        s.apply(&counter_rec(b"k", &state, None), 1);
        assert_eq!(s.counter_to_increment(b"k"), Ok(c));
        s.apply(&Record { op: Op::Del, value: b"", ..put(b"k", b"", v(6, 2)) }, 1);
        assert_eq!(s.counter_to_increment(b"k"), Ok(Counter::plain(v(6, 2), 0)));
    }

    #[test]
    fn rollback_restores_counter_and_entry() {
        let mut s = Store::new(true);
        let (_, one) = inc(&Counter::plain(Version(0), 0), 1, v(1, 1));
        s.apply(&counter_rec(b"k", &one, None), 1);
        s.commit();
        let (_, other) = inc(&Counter::plain(Version(0), 0), 5, v(2, 2));
        s.apply(&counter_rec(b"k", &other, None), 1);
        s.apply(&put(b"k", b"x", v(3, 1)), 1);
        s.rollback();
        assert_eq!(s.get(b"k"), Some(&b"1"[..]));
        assert_eq!(s.counter(b"k").map(|c| c.parts.len()), Some(1));
        s.apply(&counter_rec(b"k", &other, None), 1);
        assert_eq!(s.get(b"k"), Some(&b"6"[..]));
    }

    #[test]
    fn a_flushall_resets_counters_on_older_bases_in_any_order() {
        let flush = Record { op: Op::FlushAll, flags: 0, version: v(5, 1), key: b"", value: b"", deadline: None };
        let (_, old) = inc(&Counter::plain(v(1, 1), 0), 3, v(7, 2));
        let (_, new) = inc(&Counter::plain(v(5, 1), 0), 4, v(8, 3));
        for flush_first in [false, true] {
            let mut s = Store::new(true);
            if flush_first {
                s.apply(&flush, 1);
            }
            s.apply(&counter_rec(b"old", &old, None), 1);
            s.apply(&counter_rec(b"new", &new, None), 1);
            if !flush_first {
                s.apply(&flush, 1);
            }
            s.commit();
            assert_eq!((s.get(b"old"), s.get(b"new")), (None, Some(&b"4"[..])), "flush first: {flush_first}");
            assert_eq!(s.counters.len(), 1);
        }
    }

    #[test]
    fn the_deadline_is_the_newest_writes_and_an_expired_counter_stays_gone() {
        let base = Counter::plain(v(1, 1), 0);
        let (a, sa) = inc(&base, 1, v(2, 1));
        let (_, sb) = inc(&base, 1, v(3, 2));
        let mut s = Store::new(true);
        s.set_now(1_000);
        s.apply(&counter_rec(b"k", &sb, Some(5_000)), 1);
        s.apply(&counter_rec(b"k", &sa, Some(9_000)), 1);
        assert_eq!(s.deadline_of(b"k"), Some(5_000), "the newest write's (origin 2's) deadline");
        assert_eq!(s.get(b"k"), Some(&b"2"[..]));
        s.set_now(6_000);
        s.commit();
        s.expire_due(10, true);
        assert_eq!(s.get(b"k"), None);
        // A part it lacked, older than its newest: merged, still expired.
        let mut s2 = Store::new(true);
        s2.set_now(1_000);
        s2.apply(&counter_rec(b"k", &sb, Some(5_000)), 1);
        s2.set_now(6_000);
        s2.commit();
        s2.expire_due(10, true);
        assert_eq!(s2.apply(&counter_rec(b"k", &sa, Some(9_000)), 1), Applied::Done { was_live: false });
        assert_eq!(s2.get(b"k"), None, "an expired counter does not come back");
        assert_eq!(s2.counter(b"k").map(|c| c.value()), Some(2));
        let _ = a;
    }
}
