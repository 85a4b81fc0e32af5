//! Linearizability of a key-value history, checked as one register per key
//! (P-compositionality: a history of independent objects is linearizable
//! if and only if each object's sub-history is, so each key is searched
//! alone, and a search's cost is that of its key's operations only).
//!
//! The search is Wing & Gong's, with Lowe's memoization, as Porcupine does
//! it: the calls and returns of one key sorted by time in a doubly linked
//! list; take the first call whose operation the register can perform now
//! (its reply matches the state), linearize it (remove its call and return
//! from the list) and start again from the head; on reaching a return
//! whose call is not linearized yet, undo the last choice and try the next
//! call instead. A set of (operations linearized, register state) pairs
//! already explored cuts off a branch that another order already reached.
//!
//! An operation with an unknown outcome returns "at the end of time" with
//! any reply: a write may take effect anywhere after its call (placed last,
//! it is a write that never happened, since nothing reads it); an unknown
//! read says nothing and is left out. A failed operation did not happen.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::history::{Kind, Op, Outcome};

/// What was found of a history.
#[derive(Debug, Default)]
pub struct Report {
    /// Keys checked.
    pub keys: usize,
    /// Operations checked (failed ones and unknown reads left out).
    pub ops: usize,
    /// One line per key whose history is not linearizable, with that history.
    pub violations: Vec<String>,
    /// Keys whose search passed the step limit (neither proven nor refuted).
    pub gave_up: Vec<String>,
}

/// The verdict for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    NotLinearizable,
    /// More than the step limit of search steps.
    GaveUp,
}

/// Checks every key of `history`, at most `step_limit` search steps per key.
pub fn check(history: &[Op], step_limit: u64) -> Report {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in history {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let mut report = Report { keys: by_key.len(), ..Report::default() };
    for (key, ops) in by_key {
        let ops = relevant(&ops);
        report.ops += ops.len();
        match check_key(&ops, step_limit) {
            Verdict::Linearizable => {}
            Verdict::NotLinearizable => report.violations.push(describe(key, &ops)),
            Verdict::GaveUp => report.gave_up.push(key.to_string()),
        }
    }
    report
}

/// The operations that constrain a register: not failed, not unknown reads.
fn relevant<'a>(ops: &[&'a Op]) -> Vec<&'a Op> {
    ops.iter().copied().filter(|o| !o.failed() && (o.is_write() || !o.unknown())).collect()
}

fn describe(key: &str, ops: &[&Op]) -> String {
    let mut sorted = ops.to_vec();
    sorted.sort_by_key(|o| o.call);
    let mut s = format!("key {key:?}: not linearizable ({} operations):", ops.len());
    for o in sorted {
        s.push_str(&format!("\n    {o}"));
    }
    s
}

/// A register operation with values interned as small integers.
#[derive(Debug, Clone, Copy)]
enum RegOp {
    Put(u32),
    Del(Option<bool>),
    Get(Option<u32>),
}

/// The register after `op`, if `op` with its reply can happen in `state`.
fn step(state: Option<u32>, op: RegOp) -> Option<Option<u32>> {
    match op {
        RegOp::Put(v) => Some(Some(v)),
        RegOp::Del(None) => Some(None),
        RegOp::Del(Some(existed)) => (existed == state.is_some()).then_some(None),
        RegOp::Get(v) => (v == state).then_some(state),
    }
}

/// Search-list slots: 0 is the head, 1 the tail, then two per operation.
const HEAD: usize = 0;
const TAIL: usize = 1;

struct List {
    prev: Vec<usize>,
    next: Vec<usize>,
}

impl List {
    fn lift(&mut self, call: usize, ret: usize) {
        for e in [call, ret] {
            let (p, n) = (self.prev[e], self.next[e]);
            self.next[p] = n;
            self.prev[n] = p;
        }
    }

    /// Undoes `lift(call, ret)` (in reverse order: `call`'s neighbours may be `ret`'s).
    fn unlift(&mut self, call: usize, ret: usize) {
        for e in [ret, call] {
            let (p, n) = (self.prev[e], self.next[e]);
            self.next[p] = e;
            self.prev[n] = e;
        }
    }
}

/// Checks one key's operations (all on the same key, already `relevant`).
pub fn check_key(ops: &[&Op], step_limit: u64) -> Verdict {
    let mut values: HashMap<String, u32> = HashMap::new();
    let mut intern = |v: &str| {
        let n = values.len() as u32;
        *values.entry(v.to_string()).or_insert(n)
    };
    let reg: Vec<RegOp> = ops
        .iter()
        .map(|o| match (&o.kind, &o.out) {
            (Kind::Put(v), _) => RegOp::Put(intern(v)),
            (Kind::Del, Outcome::Deleted(b)) => RegOp::Del(Some(*b)),
            (Kind::Del, _) => RegOp::Del(None),
            (Kind::Get, Outcome::Value(v)) => RegOp::Get(v.as_deref().map(&mut intern)),
            // `relevant` left only acknowledged reads.
            (Kind::Get, _) => RegOp::Get(None),
        })
        .collect();

    // Events: (time, is_return, op). At equal times calls come first, so
    // operations that touch are taken as concurrent (the lenient reading).
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * ops.len());
    for (i, o) in ops.iter().enumerate() {
        events.push((o.call, false, i));
        events.push((o.ret.unwrap_or(u64::MAX), true, i));
    }
    events.sort();
    let slots = 2 + events.len();
    let mut list = List { prev: vec![0; slots], next: vec![0; slots] };
    let mut op_of = vec![0; slots];
    let mut is_call = vec![false; slots];
    let mut ret_slot = vec![0; ops.len()];
    let mut last = HEAD;
    for (k, &(_, is_ret, i)) in events.iter().enumerate() {
        let slot = 2 + k;
        op_of[slot] = i;
        is_call[slot] = !is_ret;
        if is_ret {
            ret_slot[i] = slot;
        }
        list.next[last] = slot;
        list.prev[slot] = last;
        last = slot;
    }
    list.next[last] = TAIL;
    list.prev[TAIL] = last;

    let words = ops.len().div_ceil(64).max(1);
    let mut linearized = vec![0u64; words];
    let mut state: Option<u32> = None;
    let mut cache: HashSet<(Vec<u64>, Option<u32>)> = HashSet::new();
    let mut stack: Vec<(usize, Option<u32>)> = Vec::new();
    let mut entry = list.next[HEAD];
    let mut steps = 0u64;
    while list.next[HEAD] != TAIL {
        steps += 1;
        if steps > step_limit {
            return Verdict::GaveUp;
        }
        if entry != TAIL && is_call[entry] {
            let i = op_of[entry];
            if let Some(after) = step(state, reg[i]) {
                let mut tried = linearized.clone();
                tried[i / 64] |= 1 << (i % 64);
                if cache.insert((tried.clone(), after)) {
                    stack.push((entry, state));
                    state = after;
                    linearized = tried;
                    list.lift(entry, ret_slot[i]);
                    entry = list.next[HEAD];
                    continue;
                }
            }
            entry = list.next[entry];
        } else {
            // A return whose call is not linearized: this prefix is a dead end.
            let Some((call, before)) = stack.pop() else {
                return Verdict::NotLinearizable;
            };
            let i = op_of[call];
            state = before;
            linearized[i / 64] &= !(1 << (i % 64));
            list.unlift(call, ret_slot[i]);
            entry = list.next[call];
        }
    }
    Verdict::Linearizable
}

#[cfg(test)]
mod tests {
    use super::super::history::{Kind::*, Op, Outcome, op};
    use super::super::rng::Rng;
    use super::*;

    const LIMIT: u64 = 1_000_000;

    fn put(c: usize, v: &str, call: u64, ret: Option<u64>) -> Op {
        let out = if ret.is_some() { Outcome::Ok } else { Outcome::Unknown("timeout".into()) };
        op(c, 0, "k", Put(v.into()), call, ret, out)
    }
    fn get(c: usize, v: Option<&str>, call: u64, ret: u64) -> Op {
        op(c, 0, "k", Get, call, Some(ret), Outcome::Value(v.map(String::from)))
    }
    fn del(c: usize, existed: Option<bool>, call: u64, ret: Option<u64>) -> Op {
        let out = match existed {
            Some(b) => Outcome::Deleted(b),
            None => Outcome::Unknown("connection lost".into()),
        };
        op(c, 0, "k", Del, call, ret, out)
    }
    fn verdict(h: &[Op]) -> Verdict {
        let refs: Vec<&Op> = h.iter().collect();
        check_key(&relevant(&refs), LIMIT)
    }
    use Verdict::{Linearizable as Lin, NotLinearizable as NotLin};

    #[test]
    fn sequential_histories() {
        assert_eq!(verdict(&[]), Lin);
        assert_eq!(verdict(&[get(0, None, 0, 1)]), Lin);
        assert_eq!(verdict(&[get(0, Some("a"), 0, 1)]), NotLin, "a value nobody wrote");
        assert_eq!(verdict(&[put(0, "a", 0, Some(10)), get(0, Some("a"), 20, 30)]), Lin);
        let stale = [put(0, "a", 0, Some(10)), put(0, "b", 20, Some(30)), get(1, Some("a"), 40, 50)];
        assert_eq!(verdict(&stale), NotLin, "a stale read after a completed overwrite");
        assert_eq!(verdict(&[put(0, "a", 0, Some(10)), get(1, None, 20, 30)]), NotLin, "a lost write");
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        // put a spans both reads: None then a is fine, a then None is not.
        let h = [put(0, "a", 0, Some(100)), get(1, None, 10, 20), get(1, Some("a"), 30, 40)];
        assert_eq!(verdict(&h), Lin);
        let h = [put(0, "a", 0, Some(100)), get(1, Some("a"), 10, 20), get(1, None, 30, 40)];
        assert_eq!(verdict(&h), NotLin, "a read cannot go back once a was seen");
        // Two concurrent writes, reads that see them in opposite orders.
        let h = [
            put(0, "a", 0, Some(100)),
            put(1, "b", 0, Some(100)),
            get(2, Some("a"), 10, 20),
            get(2, Some("b"), 30, 40),
            get(3, Some("b"), 10, 20),
            get(3, Some("a"), 30, 40),
        ];
        assert_eq!(verdict(&h), NotLin, "two readers disagree on the order of a and b");
        let h = [
            put(0, "a", 0, Some(100)),
            put(1, "b", 0, Some(100)),
            get(2, Some("a"), 10, 20),
            get(3, Some("b"), 30, 40),
        ];
        assert_eq!(verdict(&h), Lin);
    }

    #[test]
    fn unknown_writes_take_effect_any_time_after_their_call_or_never() {
        // Never: reads keep seeing nothing.
        assert_eq!(verdict(&[put(0, "a", 0, None), get(1, None, 10, 20), get(1, None, 1000, 1010)]), Lin);
        // Late: after a later acknowledged write, even.
        let h = [put(0, "a", 0, None), put(1, "b", 10, Some(20)), get(2, Some("b"), 30, 40), get(2, Some("a"), 50, 60)];
        assert_eq!(verdict(&h), Lin);
        // The same with the first write acknowledged early is a stale read.
        let h =
            [put(0, "a", 0, Some(5)), put(1, "b", 10, Some(20)), get(2, Some("b"), 30, 40), get(2, Some("a"), 50, 60)];
        assert_eq!(verdict(&h), NotLin);
        // But once, and not before its call.
        let h = [put(0, "a", 0, None), get(1, Some("a"), 10, 20), get(1, None, 30, 40)];
        assert_eq!(verdict(&h), NotLin, "an unknown write cannot be undone");
        let h = [get(1, Some("a"), 0, 10), put(0, "a", 20, None)];
        assert_eq!(verdict(&h), NotLin, "an unknown write cannot be seen before its call");
        // An unknown delete, likewise.
        let h = [put(0, "a", 0, Some(10)), del(1, None, 20, None), get(2, Some("a"), 30, 40), get(2, None, 50, 60)];
        assert_eq!(verdict(&h), Lin);
        let h = [put(0, "a", 0, Some(10)), del(1, None, 20, None), get(2, None, 30, 40), get(2, Some("a"), 50, 60)];
        assert_eq!(verdict(&h), NotLin, "the deleted value comes back");
    }

    #[test]
    fn deletes_answer_whether_the_key_was_there() {
        let h = [put(0, "a", 0, Some(10)), del(1, Some(true), 20, Some(30)), get(0, None, 40, 50)];
        assert_eq!(verdict(&h), Lin);
        let h = [put(0, "a", 0, Some(10)), del(1, Some(true), 20, Some(30)), del(1, Some(true), 40, Some(50))];
        assert_eq!(verdict(&h), NotLin, "the second delete found the key again");
        assert_eq!(verdict(&[del(0, Some(false), 0, Some(1))]), Lin);
        assert_eq!(verdict(&[del(0, Some(true), 0, Some(1))]), NotLin);
        // Concurrent with the put, the delete may find it either way.
        let h = [put(0, "a", 0, Some(100)), del(1, Some(true), 10, Some(20)), get(2, None, 30, 40)];
        assert_eq!(verdict(&h), Lin);
    }

    #[test]
    fn failed_operations_did_not_happen_and_keys_are_checked_apart() {
        let failed = op(0, 0, "k", Put("a".into()), 0, Some(5), Outcome::Failed("ERR disk".into()));
        assert_eq!(verdict(&[failed.clone(), get(1, None, 10, 20)]), Lin);
        assert_eq!(verdict(&[failed, get(1, Some("a"), 10, 20)]), NotLin, "a failed write was applied");
        let mut h = vec![put(0, "a", 0, Some(10)), get(1, None, 20, 30)];
        h.push(op(2, 0, "other", Put("x".into()), 0, Some(10), Outcome::Ok));
        h.push(op(2, 0, "other", Get, 20, Some(30), Outcome::Value(Some("x".into()))));
        let r = check(&h, LIMIT);
        assert_eq!((r.keys, r.ops, r.violations.len()), (2, 4, 1));
        assert!(r.violations[0].starts_with("key \"k\""), "{:?}", r.violations);
    }

    #[test]
    fn gives_up_at_the_step_limit() {
        let h: Vec<Op> = (0..20).map(|i| put(i, &format!("v{i}"), 0, None)).chain([get(99, Some("x"), 1, 2)]).collect();
        let refs: Vec<&Op> = h.iter().collect();
        assert_eq!(check_key(&relevant(&refs), 50), Verdict::GaveUp);
    }

    /// Whether some order of `ops` that respects real time (a known return
    /// before a call), leaving out any unknown writes, is a legal register
    /// run: by trying every such order.
    fn brute_force(ops: &[&Op]) -> bool {
        fn go(ops: &[&Op], done: &mut Vec<bool>, state: Option<&str>) -> bool {
            if done.iter().zip(ops).all(|(d, o)| *d || o.unknown()) {
                return true;
            }
            for i in 0..ops.len() {
                let ready = !done[i] && (0..ops.len()).all(|j| done[j] || !ops[j].before(ops[i]));
                if !ready {
                    continue;
                }
                let after: Option<Option<&str>> = match (&ops[i].kind, &ops[i].out) {
                    (Put(v), _) => Some(Some(v)),
                    (Del, Outcome::Deleted(b)) => (*b == state.is_some()).then_some(None),
                    (Del, _) => Some(None),
                    (Get, Outcome::Value(v)) => (v.as_deref() == state).then_some(state),
                    (Get, _) => Some(state),
                };
                if let Some(s) = after {
                    done[i] = true;
                    if go(ops, done, s) {
                        return true;
                    }
                    done[i] = false;
                }
            }
            false
        }
        go(ops, &mut vec![false; ops.len()], None)
    }

    #[test]
    fn agrees_with_brute_force_on_random_small_histories() {
        // Pinned seed: the same 3000 histories every run (the differential
        // test is exhaustive enough that fresh ones add little).
        let mut rng = Rng::new(12);
        let (mut lin, mut not) = (0, 0);
        for _ in 0..3000 {
            let n = rng.range(1, 6) as usize;
            let h: Vec<Op> = (0..n)
                .map(|i| {
                    let call = rng.below(40);
                    let ret = call + rng.range(1, 30);
                    let unknown = rng.chance(20);
                    let v = || format!("v{}", i);
                    match rng.below(3) {
                        0 => put(i, &v(), call, (!unknown).then_some(ret)),
                        1 => del(i, (!unknown).then(|| rng.chance(50)), call, (!unknown).then_some(ret)),
                        _ => {
                            let seen = match rng.below(3) {
                                0 => None,
                                _ => Some(format!("v{}", rng.below(n as u64))),
                            };
                            get(i, seen.as_deref(), call, ret)
                        }
                    }
                })
                .collect();
            let refs: Vec<&Op> = h.iter().collect();
            let ops = relevant(&refs);
            let want = brute_force(&ops);
            let got = check_key(&ops, LIMIT);
            assert_eq!(got == Verdict::Linearizable, want, "history:\n{}", describe("k", &ops));
            if want { lin += 1 } else { not += 1 }
        }
        assert!(lin > 300 && not > 300, "both verdicts exercised: {lin} linearizable, {not} not");
    }
}
