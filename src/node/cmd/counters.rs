//! Counters: INCR, DECR, INCRBY, DECRBY, INCRBYFLOAT, on string values
//! that read as numbers, with Redis's parsing, overflow checks, errors and
//! number formats.
//!
//! An increment reads the value, computes, and writes the result back
//! through [`Node::local_write`] in one handler call on the one thread, so
//! it is atomic on its node. Like Redis's replication of INCRBYFLOAT (as a
//! SET of the result), what is logged and replicated is the resulting
//! value, never the increment: replay and peers need no arithmetic, and
//! cannot compute a different float. With several masters that makes
//! concurrent increments of one key last-writer-wins (one of them is
//! lost): so in multi-master mode INCR, DECR, INCRBY and DECRBY write a
//! converging counter instead ([`converging_increment`], the state of
//! [`crate::storage::counter`]), whose copies merge to the sum of every
//! node's increments. In leader mode, or without peers, every increment is
//! applied on one node in order, and the resulting value is exact as it is.

mod long_double;

use self::long_double::LongDouble;
use super::strings::Failed;
use super::{Ctx, Flow};
use crate::node::Node;
use crate::proto::resp;
pub use crate::storage::counter::{i64_text, parse_i64};

/// Redis's error for a number that is not a 64-bit integer.
pub const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";
const OVERFLOW: &str = "ERR increment or decrement would overflow";
const NOT_A_FLOAT: &str = "ERR value is not a valid float";

/// `INCR key`.
pub fn incr(cx: &mut Ctx<'_>) -> Flow {
    let r = increment(cx.node, cx.args.get(1), 1);
    reply_int(cx.out, r)
}

/// `DECR key`.
pub fn decr(cx: &mut Ctx<'_>) -> Flow {
    let r = increment(cx.node, cx.args.get(1), -1);
    reply_int(cx.out, r)
}

/// `INCRBY key increment`.
pub fn incrby(cx: &mut Ctx<'_>) -> Flow {
    let r = delta(cx.args.get(2), false).and_then(|d| increment(cx.node, cx.args.get(1), d));
    reply_int(cx.out, r)
}

/// `DECRBY key decrement`.
pub fn decrby(cx: &mut Ctx<'_>) -> Flow {
    let r = delta(cx.args.get(2), true).and_then(|d| increment(cx.node, cx.args.get(1), d));
    reply_int(cx.out, r)
}

/// `INCRBYFLOAT key increment`: the new value, as a bulk string.
pub fn incrbyfloat(cx: &mut Ctx<'_>) -> Flow {
    let mut text = Vec::new();
    match increment_float(cx.node, cx.args.get(1), cx.args.get(2), &mut text) {
        Ok(()) => resp::bulk(cx.out, &text),
        Err(f) => f.reply(cx.out),
    }
    Flow::Continue
}

fn reply_int(out: &mut Vec<u8>, r: Result<i64, Failed>) -> Flow {
    match r {
        Ok(n) => resp::int(out, n),
        Err(f) => f.reply(out),
    }
    Flow::Continue
}

/// The amount INCRBY (or, `negate`d, DECRBY) adds. DECRBY's own overflow
/// error comes first, as in Redis: -i64::MIN does not exist.
pub fn delta(arg: &[u8], negate: bool) -> Result<i64, Failed> {
    let n = parse_i64(arg).ok_or(Failed::Redis(NOT_AN_INTEGER))?;
    if !negate {
        return Ok(n);
    }
    n.checked_neg().ok_or(Failed::Redis("ERR decrement would overflow"))
}

/// INCR's core: adds `delta` to the integer at `key` (0 if missing) and
/// returns the result.
pub fn increment(node: &mut Node, key: &[u8], delta: i64) -> Result<i64, Failed> {
    if node.repl().has_peers() && !node.leader_mode() {
        return converging_increment(node, key, delta);
    }
    let old = match node.store.get(key) {
        None => 0,
        Some(v) => parse_i64(v).ok_or(Failed::Redis(NOT_AN_INTEGER))?,
    };
    let new = old.checked_add(delta).ok_or(Failed::Redis(OVERFLOW))?;
    let mut buf = [0u8; 20];
    write_result(node, key, i64_text(new, &mut buf))?;
    Ok(new)
}

/// [`increment`] in multi-master mode: the key becomes (or stays) a
/// converging counter (see [`crate::storage::counter`]), so increments made
/// at once on several nodes all count. The value is Redis's all the same:
/// an integer, or NOT_AN_INTEGER; an overflow is refused.
fn converging_increment(node: &mut Node, key: &[u8], delta: i64) -> Result<i64, Failed> {
    let state = node.store.counter_to_increment(key).map_err(|_| Failed::Redis(NOT_AN_INTEGER))?;
    let deadline = node.store.deadline_of(key);
    node.local_counter(key, state, delta, deadline)?.ok_or(Failed::Redis(OVERFLOW))
}

/// INCRBYFLOAT's core: adds the number `incr` to the number at `key` (0 if
/// missing) in x87 extended precision, as Redis does on x86-64, and writes
/// the result to `text` as Redis formats it.
pub fn increment_float(node: &mut Node, key: &[u8], incr: &[u8], text: &mut Vec<u8>) -> Result<(), Failed> {
    let not_a_float = Failed::Redis(NOT_A_FLOAT);
    let old = match node.store.get(key) {
        None => LongDouble::parse(b"0"),
        Some(v) => LongDouble::parse(v),
    };
    let (Some(old), Some(incr)) = (old, LongDouble::parse(incr)) else { return Err(not_a_float) };
    let new = old.add(incr);
    if !new.is_finite() {
        return Err(Failed::Redis("ERR increment would produce NaN or Infinity"));
    }
    new.write_human(text);
    write_result(node, key, text)
}

/// Stores a counter's new value, keeping the key's deadline (as Redis's
/// INCR does): the value itself is the write, replacing the old one under
/// last-writer-wins (leader mode, no peers, and INCRBYFLOAT).
fn write_result(node: &mut Node, key: &[u8], value: &[u8]) -> Result<(), Failed> {
    let deadline = node.store.deadline_of(key);
    node.local_put(key, value, deadline)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_as_string2ll() {
        for (s, n) in [
            ("0", 0),
            ("1", 1),
            ("-1", -1),
            ("10", 10),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
        ] {
            assert_eq!(parse_i64(s.as_bytes()), Some(n), "{s}");
        }
        for s in [
            "",
            "-",
            "+1",
            "01",
            "00",
            "-0",
            "-01",
            " 1",
            "1 ",
            "1.0",
            "1e3",
            "0x10",
            "9223372036854775808",
            "-9223372036854775809",
            "99999999999999999999",
            "-99999999999999999999",
            "123456789012345678901",
            "12a",
            "١",
        ] {
            assert_eq!(parse_i64(s.as_bytes()), None, "{s:?}");
        }
    }

    #[test]
    fn integers_print_in_decimal() {
        for n in [0, 1, -1, 9, 10, -10, 1234567890, i64::MAX, i64::MIN] {
            let mut buf = [0u8; 20];
            assert_eq!(i64_text(n, &mut buf), n.to_string().as_bytes());
        }
    }

    #[test]
    fn decrby_refuses_what_cannot_be_negated() {
        assert_eq!(delta(b"5", true).ok(), Some(-5));
        assert_eq!(delta(b"-9223372036854775807", true).ok(), Some(i64::MAX));
        assert!(matches!(delta(b"-9223372036854775808", true), Err(Failed::Redis("ERR decrement would overflow"))));
        assert_eq!(delta(b"-9223372036854775808", false).ok(), Some(i64::MIN));
        assert!(matches!(delta(b"x", true), Err(Failed::Redis(NOT_AN_INTEGER))));
    }
}
