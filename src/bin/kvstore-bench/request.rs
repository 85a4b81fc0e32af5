//! Request encoding: SET/GET in RESP or the text protocol, and the
//! pre-encoded request window ([`Shape`]). Requests are encoded once at start,
//! so per request the hot path only writes the 12 key digits in place.

use crate::options::{Protocol, Ratio};

/// Keys are `key:` and this many digits, so all keys have one length.
pub const KEY_DIGITS: usize = 12;
const KEY_PREFIX: &[u8] = b"key:";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Set,
    Get,
}

/// Appends one request to `out`; returns the offset in `out` where the key starts.
pub fn encode(proto: Protocol, op: Op, key: &[u8], value: &[u8], out: &mut Vec<u8>) -> usize {
    match (proto, op) {
        (Protocol::Resp, Op::Set) => {
            out.extend_from_slice(b"*3\r\n$3\r\nSET\r\n");
            bulk_header(out, key.len());
            let at = out.len();
            out.extend_from_slice(key);
            out.extend_from_slice(b"\r\n");
            bulk_header(out, value.len());
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
            at
        }
        (Protocol::Resp, Op::Get) => {
            out.extend_from_slice(b"*2\r\n$3\r\nGET\r\n");
            bulk_header(out, key.len());
            let at = out.len();
            out.extend_from_slice(key);
            out.extend_from_slice(b"\r\n");
            at
        }
        (Protocol::Text, Op::Set) => {
            out.extend_from_slice(b"PUT ");
            let at = out.len();
            out.extend_from_slice(key);
            out.push(b' ');
            out.extend_from_slice(value);
            out.push(b'\n');
            at
        }
        (Protocol::Text, Op::Get) => {
            out.extend_from_slice(b"GET ");
            let at = out.len();
            out.extend_from_slice(key);
            out.push(b'\n');
            at
        }
    }
}

fn bulk_header(out: &mut Vec<u8>, len: usize) {
    out.push(b'$');
    out.extend_from_slice(len.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Value bytes: a repeating pattern with no space, `\r` or `\n`, so the
/// value is one word of a text line and never ends a line early.
pub fn fill_value(out: &mut Vec<u8>, len: usize) {
    const PATTERN: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    out.extend(PATTERN.iter().cycle().take(len));
}

/// Writes `v` as `dst.len()` decimal digits, zero-padded (high digits of a
/// value too large are dropped; keys are validated to fit).
pub fn put_digits(dst: &mut [u8], mut v: u64) {
    for d in dst.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// The request window every connection of a phase shares.
///
/// Operations follow the ratio's period, so a batch of `pipeline` requests
/// starting at slot `s` of the period is the same sequence of operations
/// wherever it occurs. The window holds `pipeline + period - 1` requests: a
/// batch starting at any slot `s < period` is then one contiguous slice
/// `starts[s]..starts[s + n]`, written with one `write` and no copying. Each
/// connection owns a copy of `bytes` (its keys differ), not of the tables.
pub struct Shape {
    pub pipeline: usize,
    pub period: usize,
    /// Byte offset where request `i` starts; one more entry for the end.
    pub starts: Vec<usize>,
    /// Byte offset of request `i`'s key digits.
    pub digits: Vec<usize>,
    /// GETs among requests `0..i`; one more entry for the end.
    pub gets_before: Vec<u64>,
    /// The encoded window with all keys zero: each connection's template.
    pub bytes: Vec<u8>,
}

impl Shape {
    pub fn new(proto: Protocol, ratio: Ratio, pipeline: usize, value_size: usize) -> Shape {
        let period = ratio.period();
        let slots = pipeline + period - 1;
        let mut value = Vec::with_capacity(value_size);
        fill_value(&mut value, value_size);
        let mut key = KEY_PREFIX.to_vec();
        key.resize(KEY_PREFIX.len() + KEY_DIGITS, b'0');
        let mut shape = Shape {
            pipeline,
            period,
            starts: Vec::with_capacity(slots + 1),
            digits: Vec::with_capacity(slots),
            gets_before: Vec::with_capacity(slots + 1),
            bytes: Vec::new(),
        };
        let mut gets = 0;
        for i in 0..slots {
            let op = ratio.op(i % period);
            shape.starts.push(shape.bytes.len());
            shape.gets_before.push(gets);
            let at = encode(proto, op, &key, &value, &mut shape.bytes);
            shape.digits.push(at + KEY_PREFIX.len());
            gets += u64::from(op == Op::Get);
        }
        shape.starts.push(shape.bytes.len());
        shape.gets_before.push(gets);
        shape
    }

    /// Bytes the window of `pipeline + period - 1` requests takes, computed
    /// without building it (to refuse absurd configurations).
    pub fn encoded_len(proto: Protocol, ratio: Ratio, pipeline: usize, value_size: usize) -> usize {
        let key = KEY_PREFIX.len() + KEY_DIGITS;
        let digits = |n: usize| n.to_string().len();
        let (set, get) = match proto {
            Protocol::Resp => (
                13 + 3 + digits(key) + key + 2 + 3 + digits(value_size) + value_size + 2,
                13 + 3 + digits(key) + key + 2,
            ),
            Protocol::Text => (4 + key + 1 + value_size + 1, 4 + key + 1),
        };
        let slots = pipeline + ratio.period() - 1;
        let sets = (0..ratio.period()).filter(|&j| ratio.op(j) == Op::Set).count();
        let sets =
            slots / ratio.period() * sets + (0..slots % ratio.period()).filter(|&j| ratio.op(j) == Op::Set).count();
        sets.saturating_mul(set).saturating_add((slots - sets).saturating_mul(get))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_patches_keys_in_place() {
        let ratio = Ratio { set: 1, get: 2 };
        let shape = Shape::new(Protocol::Resp, ratio, 4, 5);
        assert_eq!(shape.digits.len(), 4 + 3 - 1);
        assert_eq!(shape.bytes.len(), Shape::encoded_len(Protocol::Resp, ratio, 4, 5));
        let mut buf = shape.bytes.clone();
        put_digits(&mut buf[shape.digits[0]..shape.digits[0] + KEY_DIGITS], 42);
        let first = &buf[shape.starts[0]..shape.starts[1]];
        assert_eq!(first, b"*2\r\n$3\r\nGET\r\n$16\r\nkey:000000000042\r\n");
        let set = (0..3).find(|&i| ratio.op(i) == Op::Set).unwrap();
        assert_eq!(
            &shape.bytes[shape.starts[set]..shape.starts[set + 1]],
            b"*3\r\n$3\r\nSET\r\n$16\r\nkey:000000000000\r\n$5\r\n01234\r\n"
        );
        assert_eq!(shape.gets_before[6], 4);

        let text = Shape::new(Protocol::Text, Ratio { set: 1, get: 1 }, 1, 3);
        assert_eq!(text.bytes, b"GET key:000000000000\nPUT key:000000000000 012\n");
    }
}
