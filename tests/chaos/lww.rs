//! The multi-master checker: once every node holds the same keyspace, no
//! acknowledged write is lost unless another write to the same key could
//! have superseded it, and no deleted key comes back.
//!
//! Multi-master is last writer wins by version (a Lamport counter, then the
//! node id), not by real time: a node that has not yet seen write W (a
//! partition, or replication still on its way) can accept a later write A
//! with a lower counter, and W wins once they meet. So "superseded" has two
//! strengths here:
//! - W *surely precedes* A when A's node had W before A was called: W was
//!   acknowledged by that same node before A's call, or a read on that node
//!   returned W's value before A's call. A node's counter only grows (it
//!   is recovered from the log on restart, and every write it applies
//!   raises it), so A's version is higher than W's and W cannot win over A.
//!   W winning is a **violation** (a lost write; a resurrected key if A
//!   was a delete).
//! - W merely *precedes A in real time* (acknowledged before A was called,
//!   on another node that had not seen it): W may win under last writer
//!   wins. This is a **real-time inversion**: counted and reported, a
//!   violation only where the run promises real-time order (`strict`: one
//!   node, or leader mode).
//!
//! Values are unique per write, so the value a key ends with names the one
//! write that won; a key that ends absent was won by one of its deletes
//! (whichever is most favourable), or never written at all.

use std::collections::{BTreeMap, HashMap};

use super::history::{Kind, Op, Outcome};

/// What the check found.
#[derive(Debug, Default)]
pub struct Report {
    /// Acknowledged writes checked.
    pub acked_writes: usize,
    /// Acknowledged writes lost to a write that surely preceded them, or to
    /// nothing (and values nobody wrote).
    pub violations: Vec<String>,
    /// Acknowledged writes lost to a write that merely preceded them in real time.
    pub inversions: Vec<String>,
    /// Of the violations, acknowledged writes lost (PUTs whose value is gone,
    /// deletes whose key came back).
    pub lost: usize,
}

/// Checks `history` against `final_state` (the converged keyspace of the
/// keys the history touched; absent keys are missing). With `strict`,
/// real-time inversions are violations too.
pub fn check(history: &[Op], final_state: &BTreeMap<String, String>, strict: bool) -> Report {
    let mut report = Report::default();
    let written: HashMap<&str, &Op> = history.iter().filter_map(|o| Some((o.put_value()?, o))).collect();
    for o in history {
        if let Outcome::Value(Some(v)) = &o.out
            && written.get(v.as_str()).is_none_or(|w| w.key != o.key)
        {
            report.violations.push(format!("read a value nobody wrote to {:?}: {o}", o.key));
        }
    }
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for o in history {
        by_key.entry(o.key.as_str()).or_default().push(o);
    }
    for (key, ops) in &by_key {
        check_key(key, ops, final_state.get(*key).map(String::as_str), strict, &mut report);
    }
    for (key, v) in final_state {
        if !by_key.contains_key(key.as_str()) {
            report.violations.push(format!("key {key:?} = {v:?} at the end, never written"));
        }
    }
    report
}

/// Whether `w` surely precedes `a` (see the module doc): `a`'s node had `w`
/// before `a` was called.
fn surely_before(w: &Op, a: &Op, reads: &[&Op]) -> bool {
    if std::ptr::eq(w, a) {
        return false;
    }
    if w.node == a.node && w.acked() && w.before(a) {
        return true;
    }
    let Some(v) = w.put_value() else { return false };
    reads.iter().any(|g| g.node == a.node && g.before(a) && g.out == Outcome::Value(Some(v.to_string())))
}

fn check_key(key: &str, ops: &[&Op], fin: Option<&str>, strict: bool, report: &mut Report) {
    let reads: Vec<&Op> = ops.iter().copied().filter(|o| o.kind == Kind::Get && o.acked()).collect();
    // Writes that may have taken effect. A delete that found no key wrote
    // nothing (no tombstone), so it neither holds nor wins.
    let writes: Vec<&Op> =
        ops.iter().copied().filter(|o| o.is_write() && !o.failed() && o.out != Outcome::Deleted(false)).collect();
    let winner: Vec<&Op> = match fin {
        Some(v) => match writes.iter().find(|w| w.put_value() == Some(v)) {
            Some(w) => vec![*w],
            None => {
                report.violations.push(format!("key {key:?} ends as {v:?}, a value no write of it put"));
                return;
            }
        },
        None => writes.iter().copied().filter(|w| w.kind == Kind::Del).collect(),
    };
    for a in writes.iter().copied().filter(|w| w.acked()) {
        report.acked_writes += 1;
        let held = match (&a.kind, fin) {
            (Kind::Put(v), Some(f)) => v == f,
            (Kind::Del, None) => true,
            _ => false,
        };
        if held {
            continue;
        }
        let what = if a.kind == Kind::Del {
            "acknowledged delete undone (the key came back)"
        } else {
            "acknowledged write lost"
        };
        let end = fin.map_or("absent".to_string(), |v| format!("{v:?}"));
        // The most favourable winner: one not before `a` at all, else one
        // only before it in real time.
        if winner.iter().any(|w| !w.before(a) || std::ptr::eq(*w, a)) {
            continue;
        }
        if let Some(w) = winner.iter().find(|w| !surely_before(w, a, &reads)) {
            let line = format!("{what}: {a}; key ends {end}, won by {w}, which returned before it was called");
            if strict {
                report.lost += 1;
                report.violations.push(line);
            } else {
                report.inversions.push(line);
            }
            continue;
        }
        report.lost += 1;
        let by =
            winner.first().map_or("no delete of it at all".to_string(), |w| format!("{w}, which its node had first"));
        report.violations.push(format!("{what}: {a}; key ends {end}, won by {by}"));
    }
}

#[cfg(test)]
mod tests {
    use super::super::history::{Kind::*, Op, Outcome, op};
    use super::*;

    fn put(node: usize, v: &str, call: u64, ret: Option<u64>) -> Op {
        let out = if ret.is_some() { Outcome::Ok } else { Outcome::Unknown("timeout".into()) };
        op(0, node, "k", Put(v.into()), call, ret, out)
    }
    fn del(node: usize, call: u64, ret: Option<u64>) -> Op {
        let out = if ret.is_some() { Outcome::Deleted(true) } else { Outcome::Unknown("timeout".into()) };
        op(0, node, "k", Del, call, ret, out)
    }
    fn get(node: usize, v: Option<&str>, call: u64, ret: u64) -> Op {
        op(0, node, "k", Get, call, Some(ret), Outcome::Value(v.map(String::from)))
    }
    fn ends(v: Option<&str>) -> BTreeMap<String, String> {
        v.map(|v| ("k".to_string(), v.to_string())).into_iter().collect()
    }
    /// (violations, inversions) of `h` ending as `fin`, not strict.
    fn counts(h: &[Op], fin: Option<&str>) -> (usize, usize) {
        let r = check(h, &ends(fin), false);
        (r.violations.len(), r.inversions.len())
    }

    #[test]
    fn the_last_write_winning_is_fine() {
        let h = [put(0, "a", 0, Some(10)), put(1, "b", 20, Some(30))];
        assert_eq!(counts(&h, Some("b")), (0, 0));
        let h = [put(0, "a", 0, Some(10)), del(1, 20, Some(30))];
        assert_eq!(counts(&h, None), (0, 0));
        assert_eq!(check(&h, &ends(None), false).acked_writes, 2);
    }

    #[test]
    fn concurrent_or_unknown_writes_may_win() {
        let h = [put(0, "a", 0, Some(50)), put(1, "b", 10, Some(60))];
        assert_eq!(counts(&h, Some("a")), (0, 0));
        assert_eq!(counts(&h, Some("b")), (0, 0));
        // An unknown write may land at any time after its call.
        let h = [put(0, "a", 0, None), put(1, "b", 10, Some(20))];
        assert_eq!(counts(&h, Some("a")), (0, 0));
        let h = [put(0, "a", 0, Some(10)), del(1, 5, None)];
        assert_eq!(counts(&h, None), (0, 0));
    }

    #[test]
    fn a_write_lost_to_an_earlier_write_of_its_own_node_is_a_violation() {
        let h = [put(0, "a", 0, Some(10)), put(0, "b", 20, Some(30))];
        assert_eq!(counts(&h, Some("a")), (1, 0));
        let r = check(&h, &ends(Some("a")), false);
        assert_eq!(r.lost, 1);
        assert!(r.violations[0].contains("acknowledged write lost"), "{:?}", r.violations);
    }

    #[test]
    fn a_write_lost_to_an_earlier_write_its_node_had_read_is_a_violation() {
        let h = [put(0, "a", 0, Some(10)), get(1, Some("a"), 15, 18), put(1, "b", 20, Some(30))];
        assert_eq!(counts(&h, Some("a")), (1, 0));
        // Read on another node: node 1 may not have had "a".
        let h = [put(0, "a", 0, Some(10)), get(2, Some("a"), 15, 18), put(1, "b", 20, Some(30))];
        assert_eq!(counts(&h, Some("a")), (0, 1), "an inversion, not a violation");
        assert_eq!(check(&h, &ends(Some("a")), true).violations.len(), 1, "strict: a violation");
    }

    #[test]
    fn deleted_keys_must_not_come_back() {
        let h = [put(0, "a", 0, Some(10)), del(0, 20, Some(30))];
        let r = check(&h, &ends(Some("a")), false);
        assert_eq!((r.violations.len(), r.lost), (1, 1));
        assert!(r.violations[0].contains("came back"), "{:?}", r.violations);
    }

    #[test]
    fn a_key_vanishing_without_a_delete_or_holding_a_value_nobody_wrote() {
        assert_eq!(counts(&[put(0, "a", 0, Some(10))], None), (1, 0));
        // An unknown write that never took effect is not lost.
        assert_eq!(counts(&[put(0, "a", 0, None)], None), (0, 0));
        assert_eq!(counts(&[put(0, "a", 0, Some(10))], Some("zz")), (1, 0));
        let mut fin = ends(None);
        fin.insert("stray".into(), "x".into());
        assert_eq!(check(&[], &fin, false).violations.len(), 1);
        assert_eq!(counts(&[get(0, Some("ghost"), 0, 1)], None), (1, 0), "a read of a value nobody wrote");
        // A failed write cannot win.
        let failed = op(0, 0, "k", Put("f".into()), 0, Some(1), Outcome::Failed("ERR".into()));
        assert_eq!(counts(&[failed], Some("f")), (1, 0));
    }

    #[test]
    fn an_absent_key_is_won_by_the_most_favourable_delete() {
        // One delete before the put (same node: surely before), one after it: fine.
        let h = [del(0, 0, Some(5)), put(0, "a", 10, Some(20)), del(1, 30, Some(40))];
        assert_eq!(counts(&h, None), (0, 0));
        // Only the earlier one: a lost write.
        let h = [del(0, 0, Some(5)), put(0, "a", 10, Some(20))];
        assert_eq!(counts(&h, None), (1, 0));
        // An earlier one on another node: an inversion.
        let h = [del(1, 0, Some(5)), put(0, "a", 10, Some(20))];
        assert_eq!(counts(&h, None), (0, 1));
        // A delete that found nothing wrote nothing: it cannot win.
        let found_nothing = op(0, 1, "k", Del, 30, Some(40), Outcome::Deleted(false));
        assert_eq!(counts(&[put(0, "a", 0, Some(10)), found_nothing.clone()], None), (1, 0));
        assert_eq!(counts(&[found_nothing], None), (0, 0));
    }
}
