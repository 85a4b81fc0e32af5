//! Converging counters: the state INCR/DECR/INCRBY/DECRBY keep for a key
//! in multi-master mode, so that increments made at once on different
//! nodes add up instead of one of them winning.
//!
//! A counter is a base (the write that started it: a SET, a DEL, a key
//! never written; its version and integer value, 0 for no value) and, per
//! origin node, the sum of that node's increments on this base and the
//! version of its latest one. Its value is the base's plus every sum. It is
//! a join-semilattice: [`Counter::merge`] is commutative, associative and
//! idempotent, so nodes that received the same states in any order, with
//! duplicates and catch-up resends, hold the same counter.
//!
//! - The higher base wins whole. A SET or DEL newer than the base resets
//!   the counter (the store drops it): increments made concurrently on the
//!   older base are superseded by the reset, like any write older than it.
//! - On one base, each origin's part with the later `last` wins (an
//!   origin's parts only grow: each of its increments makes a fresh, newer
//!   version), and origins are unioned.
//!
//! Overflow: a local increment is refused (Redis's error) if the value it
//! gives, or its own origin's sum, would not fit an i64. Concurrent
//! increments on different nodes can still take the merged value past
//! i64: [`Counter::value`] then saturates at `i64::MIN`/`i64::MAX` (a
//! function of the state, so every node shows the same), and a local
//! increment is judged on the exact sum: refused while it stays past i64,
//! accepted once it brings it back.
//!
//! Encoding (a record's value, a `REPL_COUNTER` frame's state argument):
//!
//! ```text
//! state = base:u64le  base_value:i64le  ( cum:i64le  last:u64le )*   sorted by origin = last's node
//! ```

use super::record::Version;

/// The deadline an expired counter is sent and compacted with (ms since
/// the epoch: long past on every clock). An expired counter is a tombstone
/// to readers, but its state still decides which plain writes reset it
/// (those newer than its base), so it travels as its state, expired, and
/// every node applies it as the same tombstone with the same state.
pub const EXPIRED: u64 = 1;

/// Bytes of the fixed part of an encoded state.
const FIXED: usize = 16;
/// Bytes of one part.
const PART: usize = 16;

/// One origin's contribution (its node is `last.node()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    /// The sum of the origin's increments on the counter's base.
    pub cum: i64,
    /// The version of its latest increment.
    pub last: Version,
}

/// A counter's state (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    /// The version of the write the counter started from.
    pub base: Version,
    /// That write's value as an integer (0 for a delete or a missing key).
    pub base_value: i64,
    /// At most one part per origin, sorted by origin.
    pub parts: Vec<Part>,
}

impl Counter {
    /// The state of a plain key: its write, with no increments.
    pub fn plain(base: Version, base_value: i64) -> Counter {
        Counter { base, base_value, parts: Vec::new() }
    }

    /// The newest version in the state: the store's version of the key.
    pub fn version(&self) -> Version {
        self.parts.iter().map(|p| p.last).fold(self.base, Version::max)
    }

    /// The value: the base's plus every origin's sum, saturated to i64.
    pub fn value(&self) -> i64 {
        self.sum().clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// The exact sum (an i128 holds 2^64 parts of i64 without overflow).
    fn sum(&self) -> i128 {
        self.parts.iter().fold(i128::from(self.base_value), |s, p| s + i128::from(p.cum))
    }

    /// `origin`'s part, if it has one.
    pub fn part(&self, origin: u16) -> Option<&Part> {
        self.parts.iter().find(|p| p.last.node() == origin)
    }

    /// Adds `delta` to the part of `last`'s node, as its increment made at
    /// `last` (newer than everything in the state). `None`, and nothing
    /// changed, if that part's sum or the value would overflow.
    pub fn add(&mut self, delta: i64, last: Version) -> Option<i64> {
        let value = i64::try_from(self.sum() + i128::from(delta)).ok()?;
        let origin = last.node();
        match self.parts.binary_search_by_key(&origin, |p| p.last.node()) {
            Ok(i) => {
                let p = &mut self.parts[i];
                p.cum = p.cum.checked_add(delta)?;
                p.last = p.last.max(last);
            }
            Err(i) => self.parts.insert(i, Part { cum: delta, last }),
        }
        Some(value)
    }

    /// Joins `other` into `self` (see the module docs); returns whether
    /// `self` changed.
    pub fn merge(&mut self, other: &Counter) -> bool {
        if other.base != self.base {
            if other.base > self.base {
                *self = other.clone();
                return true;
            }
            return false;
        }
        let mut changed = false;
        // One base, one write, one value: a difference is damage, settled
        // the same way in any order.
        if other.base_value > self.base_value {
            self.base_value = other.base_value;
            changed = true;
        }
        for p in &other.parts {
            match self.parts.binary_search_by_key(&p.last.node(), |q| q.last.node()) {
                // Equal `last`s are one increment, so one `cum`; were they
                // not (damage), the larger wins, in any order.
                Ok(i) if (self.parts[i].last, self.parts[i].cum) < (p.last, p.cum) => {
                    self.parts[i] = *p;
                    changed = true;
                }
                Ok(_) => {}
                Err(i) => {
                    self.parts.insert(i, *p);
                    changed = true;
                }
            }
        }
        changed
    }

    /// Appends the encoded state to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(FIXED + PART * self.parts.len());
        out.extend_from_slice(&self.base.0.to_le_bytes());
        out.extend_from_slice(&self.base_value.to_le_bytes());
        for p in &self.parts {
            out.extend_from_slice(&p.cum.to_le_bytes());
            out.extend_from_slice(&p.last.0.to_le_bytes());
        }
    }

    /// Decodes a state, checking what every state made here satisfies:
    /// whole parts, sorted by origin without repeats, each newer than the
    /// base, none of node 0 (which names writes typed by a person).
    pub fn decode(b: &[u8]) -> Option<Counter> {
        if b.len() < FIXED || !(b.len() - FIXED).is_multiple_of(PART) {
            return None;
        }
        let word = |at: usize| b.get(at..at + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()).map(u64::from_le_bytes);
        let base = Version(word(0)?);
        let base_value = word(8)? as i64;
        let mut parts = Vec::with_capacity((b.len() - FIXED) / PART);
        for at in (FIXED..b.len()).step_by(PART) {
            let p = Part { cum: word(at)? as i64, last: Version(word(at + 8)?) };
            let sorted = parts.last().is_none_or(|q: &Part| q.last.node() < p.last.node());
            if !sorted || p.last <= base || p.last.node() == 0 {
                return None;
            }
            parts.push(p);
        }
        Some(Counter { base, base_value, parts })
    }
}

/// Parses a 64-bit integer as Redis's `string2ll` does, for stored values
/// and for arguments alike: an optional `-`, then digits with no leading
/// zero (`0` alone excepted), at most 20 bytes, within i64. So `+1`, `01`,
/// `-0`, ` 1` and `1.0` are not integers.
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    let digits = match b {
        [b'0'] => return Some(0),
        [b'-', rest @ ..] => rest,
        _ => b,
    };
    if b.len() > 20 || !matches!(digits.first(), Some(b'1'..=b'9')) || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // At most 20 digits: the magnitude fits a u128 before the range check.
    let n = digits.iter().fold(0u128, |n, &c| n * 10 + u128::from(c - b'0'));
    if digits.len() == b.len() { i64::try_from(n).ok() } else { 0i64.checked_sub_unsigned(u64::try_from(n).ok()?) }
}

/// `n` in decimal, written into `buf`.
pub fn i64_text(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut pos = buf.len();
    let mut m = n.unsigned_abs();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        pos -= 1;
        buf[pos] = b'-';
    }
    &buf[pos..]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(counter: u64, node: u16) -> Version {
        Version::new(counter, node)
    }

    #[test]
    fn increments_of_two_origins_add_up_in_either_order() {
        let base = Counter::plain(v(1, 1), 10);
        let (mut a, mut b) = (base.clone(), base.clone());
        assert_eq!(a.add(5, v(2, 1)), Some(15));
        assert_eq!(b.add(-3, v(2, 2)), Some(7));
        let mut ab = a.clone();
        assert!(ab.merge(&b));
        let mut ba = b.clone();
        assert!(ba.merge(&a));
        assert_eq!(ab, ba);
        assert_eq!((ab.value(), ab.version()), (12, v(2, 2)));
        assert!(!ab.merge(&a), "a state already joined changes nothing");
        // A later increment of origin 1 replaces its part, not adds to it.
        assert_eq!(a.add(1, v(3, 1)), Some(16));
        assert!(ab.merge(&a));
        assert_eq!(ab.value(), 13);
    }

    #[test]
    fn a_newer_base_wins_whole_and_an_older_one_loses() {
        let mut old = Counter::plain(v(1, 1), 0);
        old.add(100, v(5, 2));
        let reset = Counter::plain(v(3, 3), 7);
        let mut x = old.clone();
        assert!(x.merge(&reset));
        assert_eq!(x, reset, "increments on the older base are superseded");
        let mut y = reset.clone();
        assert!(!y.merge(&old));
        assert_eq!(y.value(), 7);
    }

    #[test]
    fn overflow_is_refused_locally_and_saturates_when_merged() {
        let mut c = Counter::plain(v(1, 1), i64::MAX - 1);
        assert_eq!(c.add(1, v(2, 1)), Some(i64::MAX));
        let before = c.clone();
        assert_eq!(c.add(1, v(3, 1)), None);
        assert_eq!(c, before, "a refused increment changes nothing");
        // Each fits on its own node; together they pass i64::MAX.
        let mut other = Counter::plain(v(1, 1), i64::MAX - 1);
        other.add(1, v(2, 2));
        c.merge(&other);
        assert_eq!(c.value(), i64::MAX);
        assert_eq!(c.add(1, v(4, 1)), None);
        assert_eq!(c.add(-5, v(4, 1)), Some(i64::MAX - 4), "the exact sum, MAX + 1, less 5");
        assert_eq!(c.value(), i64::MAX - 4);
        // An origin's own sum is checked too.
        let mut d = Counter::plain(v(1, 1), -10);
        d.add(i64::MAX, v(2, 1));
        assert_eq!(d.add(1, v(3, 1)), None);
        let mut neg = Counter::plain(v(1, 1), i64::MIN);
        assert_eq!(neg.add(-1, v(2, 2)), None, "MIN - 1");
        let mut m = Counter::plain(v(1, 1), i64::MIN + 1);
        m.add(-1, v(2, 1));
        let mut n = Counter::plain(v(1, 1), i64::MIN + 1);
        n.add(-1, v(2, 2));
        m.merge(&n);
        assert_eq!(m.value(), i64::MIN);
    }

    #[test]
    fn codec_rejects_what_no_node_makes() {
        let mut c = Counter::plain(v(1, 1), 3);
        c.add(4, v(2, 2));
        c.add(-1, v(3, 1));
        let mut buf = Vec::new();
        c.encode(&mut buf);
        assert_eq!(buf.len(), 16 + 2 * 16);
        assert_eq!(Counter::decode(&buf), Some(c.clone()));
        for cut in 0..buf.len() {
            if cut != 16 && cut != 32 {
                assert_eq!(Counter::decode(&buf[..cut]), None, "cut {cut}");
            }
        }
        let enc = |base: Version, parts: &[(i64, Version)]| {
            let c =
                Counter { base, base_value: 0, parts: parts.iter().map(|&(cum, last)| Part { cum, last }).collect() };
            let mut b = Vec::new();
            c.encode(&mut b);
            Counter::decode(&b)
        };
        assert!(enc(v(1, 1), &[(1, v(2, 1)), (1, v(3, 2))]).is_some());
        assert!(enc(v(1, 1), &[(1, v(3, 2)), (1, v(2, 1))]).is_none(), "unsorted");
        assert!(enc(v(1, 1), &[(1, v(2, 1)), (1, v(3, 1))]).is_none(), "one origin twice");
        assert!(enc(v(5, 1), &[(1, v(2, 1))]).is_none(), "older than its base");
        assert!(enc(v(1, 1), &[(1, v(2, 0))]).is_none(), "node 0");
    }

    fn state() -> impl Strategy<Value = Counter> {
        // Few bases and origins, so that states share them often.
        (0u64..3, -5i64..5, prop::collection::vec((1u16..5, 4u64..9, -100i64..100), 0..6)).prop_map(|(b, bv, ps)| {
            let mut c = Counter::plain(v(b, 1), bv);
            for (origin, counter, cum) in ps {
                let last = v(counter, origin);
                let other = Counter { parts: vec![Part { cum, last }], ..c.clone() };
                c.merge(&other);
            }
            c
        })
    }

    fn join(a: &Counter, b: &Counter) -> Counter {
        let mut j = a.clone();
        j.merge(b);
        j
    }

    proptest! {
        #[test]
        fn merge_is_a_semilattice(a in state(), b in state(), c in state()) {
            prop_assert_eq!(join(&a, &b), join(&b, &a));
            prop_assert_eq!(join(&join(&a, &b), &c), join(&a, &join(&b, &c)));
            prop_assert_eq!(join(&a, &a), a.clone());
            let j = join(&a, &b);
            prop_assert_eq!(join(&j, &a), j.clone(), "a join absorbs its parts");
            let mut buf = Vec::new();
            j.encode(&mut buf);
            prop_assert_eq!(Counter::decode(&buf), Some(j));
        }
    }
}
