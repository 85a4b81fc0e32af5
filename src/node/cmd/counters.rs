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
//! lost); `write_result` is the one place a converging counter would log
//! the increment instead.

mod long_double;

use self::long_double::LongDouble;
use super::strings::Failed;
use super::{Ctx, Flow};
use crate::node::Node;
use crate::proto::resp;

/// Redis's error for a number that is not a 64-bit integer.
pub const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";
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
    let old = match node.store.get(key) {
        None => 0,
        Some(v) => parse_i64(v).ok_or(Failed::Redis(NOT_AN_INTEGER))?,
    };
    let new = old.checked_add(delta).ok_or(Failed::Redis("ERR increment or decrement would overflow"))?;
    let mut buf = [0u8; 20];
    write_result(node, key, i64_text(new, &mut buf))?;
    Ok(new)
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
/// INCR does). Today the value itself is the write: it replaces the old one
/// under last-writer-wins, everywhere. A converging counter (increments from
/// several masters adding up) would log the increment here instead.
fn write_result(node: &mut Node, key: &[u8], value: &[u8]) -> Result<(), Failed> {
    let deadline = node.store.deadline_of(key);
    node.local_put(key, value, deadline)?;
    Ok(())
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
