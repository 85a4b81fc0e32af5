//! What this node holds of every node's writes: per origin, a *watermark*,
//! the highest counter of that node's writes held together with all earlier
//! ones. A peer's link asks for it at every (re)connect and the peer sends
//! only what is newer: that is how a node that was down, restarted, or
//! started late catches up. Watermarks survive restarts: replay rebuilds
//! them from records flagged in-order and from watermark records (written
//! when a catch-up completes, and at the head of a compacted log).

use crate::storage::record::{FLAG_ORDERED, Op, Record, Version};

/// The watermarks, with an undo of the current loop iteration's changes.
#[derive(Debug, Default)]
pub struct Progress {
    /// (origin node, highest in-order counter held).
    watermarks: Vec<(u16, u64)>,
    /// (origin node, writes applied from it since start), for STATS.
    applied: Vec<(u16, u64)>,
    /// Watermarks before this loop iteration's changes (valid while
    /// `saved_valid`): restored if the log cannot take the writes that moved
    /// them. Kept allocated from iteration to iteration.
    saved: Vec<(u16, u64)>,
    saved_valid: bool,
}

impl Progress {
    /// What this node holds, in order, of `node`'s writes.
    pub fn watermark(&self, node: u16) -> u64 {
        self.watermarks.iter().find(|w| w.0 == node).map_or(0, |w| w.1)
    }

    /// Every origin's watermark.
    pub fn marks(&self) -> &[(u16, u64)] {
        &self.watermarks
    }

    /// Moves `node`'s watermark up to `counter` (never down).
    pub fn advance(&mut self, node: u16, counter: u64) {
        if !self.saved_valid {
            self.saved.clone_from(&self.watermarks);
            self.saved_valid = true;
        }
        match self.watermarks.iter_mut().find(|w| w.0 == node) {
            Some(w) => w.1 = w.1.max(counter),
            None => self.watermarks.push((node, counter)),
        }
    }

    /// The log has this iteration's writes: the watermarks stand.
    pub fn commit(&mut self) {
        self.saved_valid = false;
    }

    /// The log refused this iteration's writes: forget what they taught.
    pub fn rollback(&mut self) {
        if self.saved_valid {
            self.watermarks.clone_from(&self.saved);
            self.saved_valid = false;
        }
    }

    /// All watermarks, as the records that restore them (compaction head).
    pub fn watermark_records(&self) -> impl Iterator<Item = Record<'static>> + '_ {
        self.watermarks.iter().map(|&(node, counter)| Record {
            op: Op::Watermark,
            flags: 0,
            version: Version::new(counter, node),
            key: b"",
            value: b"",
            deadline: None,
        })
    }

    /// Replay: rebuild watermarks from a log record.
    pub fn replayed(&mut self, rec: &Record<'_>) {
        if rec.op == Op::Watermark || rec.flags & FLAG_ORDERED != 0 {
            self.advance(rec.version.node(), rec.version.counter());
        }
    }

    /// Counts a write applied from a peer.
    pub fn note_applied(&mut self, node: u16) {
        match self.applied.iter_mut().find(|w| w.0 == node) {
            Some(w) => w.1 += 1,
            None => self.applied.push((node, 1)),
        }
    }

    /// Writes applied from `node` since start.
    pub fn applied_from(&self, node: u16) -> u64 {
        self.applied.iter().find(|w| w.0 == node).map_or(0, |w| w.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermarks_only_move_up_and_replay_rebuilds_them() {
        let mut c = Progress::default();
        c.advance(2, 10);
        c.advance(2, 5);
        assert_eq!(c.watermark(2), 10);
        assert_eq!(c.watermark(3), 0);
        c.commit();
        c.advance(2, 20);
        c.advance(4, 1);
        c.rollback();
        assert_eq!((c.watermark(2), c.watermark(4)), (10, 0));
        let mut r = Progress::default();
        for rec in c.watermark_records() {
            r.replayed(&rec);
        }
        let ordered = Record {
            op: Op::Put,
            flags: FLAG_ORDERED,
            version: Version::new(12, 2),
            key: b"k",
            value: b"v",
            deadline: None,
        };
        let unordered = Record { flags: 0, version: Version::new(99, 2), ..ordered };
        r.replayed(&ordered);
        r.replayed(&unordered);
        assert_eq!(r.watermark(2), 12);
    }
}
