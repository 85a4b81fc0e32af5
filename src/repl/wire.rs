//! The peer link's wire format, both ways: the frames a node sends over its
//! outbound link, the replies it reads back, and the decoding of frames a
//! node receives as requests on an inbound connection.
//!
//! The link speaks RESP, so values of any bytes pass unchanged:
//!
//! | frame | meaning | reply |
//! |---|---|---|
//! | `REPLHELLO <id>` | "I am node id" | `+HELLO <N> <peer id>`, N the highest counter of id's writes the peer has in order |
//! | `REPL_PUT <key> <value> <version>` | a write of ours | `:N` as above |
//! | `REPL_PUT <key> <value> <version> <deadline>` | a write of ours that expires at `deadline` (ms since the Unix epoch) | `:N` |
//! | `REPL_DEL <key> <version>` | a delete of ours | `:N` |
//! | `REPL_FLUSHALL <version>` | a FLUSHALL of ours | `:N` |
//! | `REPL_SYNCED <counter>` | "you now have all my writes up to counter" | `:N` |
//!
//! Between `REPLHELLO` and `REPL_SYNCED` the link is catching up: frames come
//! from a scan of the store, out of order, so the receiver applies them but
//! does not move its watermark until `REPL_SYNCED`. After it, frames are live
//! writes in order, and each moves the watermark.
//!
//! A deadline travels as the absolute time it is, so every node expires the
//! key at the same moment of its own clock, and a frame that arrives after
//! the deadline (late, or resent by a catch-up) is applied as what the key
//! then is: a tombstone at the frame's version. Only a write with a deadline
//! has the fifth argument; a node of a build without expiry refuses it
//! (wrong number of arguments), which drops the link rather than lose the
//! deadline.

use crate::proto::resp;
use crate::storage::record::{Op, Record, Version};

/// The highest Lamport counter a version carries on the wire: a version
/// travels as a RESP integer, an `i64`, and holds the counter in its top 48
/// bits. A counter a peer announces (`REPL_SYNCED`, a HELLO watermark) moves
/// this node's clock (`Store::observe`), so one past this bound is refused:
/// it would make the next local version wrap in [`Version::new`] (from
/// `REPL_SYNCED 9223372036854775807`, counters near zero, which lose to
/// every older write).
pub const MAX_WIRE_COUNTER: u64 = i64::MAX as u64 >> 16;

/// Encodes `AUTH <password>`, which a link sends first when the cluster
/// has a password.
pub fn auth(out: &mut Vec<u8>, password: &[u8]) {
    resp::array(out, 2);
    resp::bulk(out, b"AUTH");
    resp::bulk(out, password);
}

/// Encodes `REPLHELLO <id>`.
pub fn hello(out: &mut Vec<u8>, id: u16) {
    resp::array(out, 2);
    resp::bulk(out, b"REPLHELLO");
    bulk_u64(out, u64::from(id));
}

/// Encodes the answer to `REPLHELLO`: `+HELLO <watermark> <our id>`.
pub fn hello_reply(out: &mut Vec<u8>, watermark: u64, id: u16) {
    resp::simple(out, format!("HELLO {watermark} {id}").as_bytes());
}

/// Encodes `REPL_SYNCED <counter>`.
pub fn synced(out: &mut Vec<u8>, counter: u64) {
    resp::array(out, 2);
    resp::bulk(out, b"REPL_SYNCED");
    bulk_u64(out, counter);
}

/// Encodes a write as the frame that replays it on a peer (`deadline`:
/// a put's, ignored for other writes).
pub fn frame(out: &mut Vec<u8>, op: Op, key: &[u8], value: &[u8], version: Version, deadline: Option<u64>) {
    match op {
        Op::Put => {
            resp::array(out, if deadline.is_some() { 5 } else { 4 });
            resp::bulk(out, b"REPL_PUT");
            resp::bulk(out, key);
            resp::bulk(out, value);
            bulk_u64(out, version.0);
            if let Some(d) = deadline {
                bulk_u64(out, d);
            }
            return;
        }
        Op::Del => {
            resp::array(out, 3);
            resp::bulk(out, b"REPL_DEL");
            resp::bulk(out, key);
        }
        Op::FlushAll => {
            resp::array(out, 2);
            resp::bulk(out, b"REPL_FLUSHALL");
        }
        Op::Watermark => return,
    }
    bulk_u64(out, version.0);
}

/// Encodes a record as its frame (see [`frame`]).
pub fn record_frame(out: &mut Vec<u8>, rec: &Record<'_>) {
    frame(out, rec.op, rec.key, rec.value, rec.version, rec.deadline);
}

fn bulk_u64(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    resp::bulk(out, &digits[i..]);
}

/// A reply read from a peer link.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkReply<'a> {
    /// `+HELLO <watermark> <node>`: the answer to `REPLHELLO`.
    Hello {
        /// The peer's watermark for us.
        watermark: u64,
        /// The peer's node id.
        node: u16,
    },
    /// `:N`: the peer's watermark for us.
    Watermark(u64),
    /// `+OK`: the peer took our password.
    Ok,
    /// `-...`: the peer refused a frame.
    Error(&'a [u8]),
}

/// Parses the reply at the start of `buf`: `Ok(None)` if incomplete,
/// `Err` if the peer sent something no kvstore node sends.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(LinkReply<'_>, usize)>, &'static str> {
    let Some(end) = memchr::memchr(b'\n', buf) else {
        return if buf.len() > 1024 { Err("reply line too long") } else { Ok(None) };
    };
    let line = buf[..end].strip_suffix(b"\r").ok_or("reply without CRLF")?;
    match line.split_first() {
        Some((b':', digits)) => {
            let n = resp::parse_int(digits).and_then(|n| u64::try_from(n).ok()).ok_or("bad integer reply")?;
            Ok(Some((LinkReply::Watermark(n), end + 1)))
        }
        Some((b'-', msg)) => Ok(Some((LinkReply::Error(msg), end + 1))),
        Some((b'+', b"OK")) => Ok(Some((LinkReply::Ok, end + 1))),
        Some((b'+', rest)) => {
            let mut words = rest.split(|&c| c == b' ');
            let (Some(b"HELLO"), Some(w), Some(n), None) = (words.next(), words.next(), words.next(), words.next())
            else {
                return Err("unexpected reply");
            };
            let watermark = resp::parse_int(w)
                .and_then(|n| u64::try_from(n).ok())
                .filter(|&n| n <= MAX_WIRE_COUNTER)
                .ok_or("bad HELLO reply")?;
            let node = resp::parse_int(n).and_then(|n| u16::try_from(n).ok()).ok_or("bad HELLO reply")?;
            Ok(Some((LinkReply::Hello { watermark, node }, end + 1)))
        }
        _ => Err("unexpected reply"),
    }
}

/// A frame received on an inbound link, decoded from its arguments.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// `REPLHELLO <id>`, with the id checked to be a node id (1-65535).
    Hello(Option<u16>),
    /// `REPL_PUT <key> <value>` / `REPL_DEL <key>` without a version: typed by
    /// a person, applied on the receiving node only.
    Manual(Op, &'a [u8], &'a [u8]),
    /// A versioned write (`REPL_PUT`, `REPL_DEL`, `REPL_FLUSHALL`), or
    /// `None` if its version (or deadline) is not a number.
    Write(Option<Record<'a>>),
    /// `REPL_SYNCED <counter>`, or `None` if the counter is not a number
    /// (or is over [`MAX_WIRE_COUNTER`]).
    Synced(Option<u64>),
    /// Not a frame of this shape (wrong argument count).
    BadArity,
}

impl<'a> Frame<'a> {
    /// Decodes the frame named `name` (upper-case) with arguments `args`
    /// (the name included).
    pub fn decode(name: &[u8], args: &[&'a [u8]]) -> Frame<'a> {
        let number = |b: &[u8]| resp::parse_int(b).and_then(|v| u64::try_from(v).ok());
        let write = |op, key, value, v: &[u8]| {
            Frame::Write(number(v).map(|v| Record { op, flags: 0, version: Version(v), key, value, deadline: None }))
        };
        match (name, args) {
            (b"REPLHELLO", [_, id]) => Frame::Hello(resp::parse_int(id).and_then(|v| u16::try_from(v).ok())),
            (b"REPL_PUT", [_, key, value]) => Frame::Manual(Op::Put, key, value),
            (b"REPL_DEL", [_, key]) => Frame::Manual(Op::Del, key, b""),
            (b"REPL_PUT", [_, key, value, v]) => write(Op::Put, key, value, v),
            (b"REPL_PUT", [_, key, value, v, d]) => match (write(Op::Put, key, value, v), number(d)) {
                (Frame::Write(Some(rec)), Some(d)) if d > 0 => Frame::Write(Some(Record { deadline: Some(d), ..rec })),
                _ => Frame::Write(None),
            },
            (b"REPL_DEL", [_, key, v]) => write(Op::Del, key, b"", v),
            (b"REPL_FLUSHALL", [_, v]) => write(Op::FlushAll, b"", b"", v),
            (b"REPL_SYNCED", [_, c]) => Frame::Synced(number(c).filter(|&c| c <= MAX_WIRE_COUNTER)),
            _ => Frame::BadArity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_resp_the_server_parses() {
        let mut out = vec![];
        frame(&mut out, Op::Put, b"k\r\n", b"\0v", Version(65537), None);
        assert_eq!(out, b"*4\r\n$8\r\nREPL_PUT\r\n$3\r\nk\r\n\r\n$2\r\n\0v\r\n$5\r\n65537\r\n");
        out.clear();
        frame(&mut out, Op::Put, b"k", b"v", Version(65537), Some(1_700_000_000_123));
        assert_eq!(out, b"*5\r\n$8\r\nREPL_PUT\r\n$1\r\nk\r\n$1\r\nv\r\n$5\r\n65537\r\n$13\r\n1700000000123\r\n");
        out.clear();
        frame(&mut out, Op::Del, b"k", b"", Version(0), Some(5));
        assert_eq!(out, b"*3\r\n$8\r\nREPL_DEL\r\n$1\r\nk\r\n$1\r\n0\r\n");
    }

    #[test]
    fn replies() {
        assert_eq!(parse_reply(b":12\r\n:1"), Ok(Some((LinkReply::Watermark(12), 5))));
        assert_eq!(parse_reply(b":12\r"), Ok(None));
        assert_eq!(parse_reply(b"-ERR no\r\n"), Ok(Some((LinkReply::Error(b"ERR no"), 9))));
        assert_eq!(parse_reply(b"+OK\r\n"), Ok(Some((LinkReply::Ok, 5))));
        assert!(parse_reply(b"+NO\r\n").is_err());
        assert_eq!(parse_reply(b"+HELLO 9 12346\r\n"), Ok(Some((LinkReply::Hello { watermark: 9, node: 12346 }, 16))));
        assert!(parse_reply(b":-1\r\n").is_err());
        let mut out = vec![];
        hello_reply(&mut out, 9, 12346);
        assert_eq!(parse_reply(&out), Ok(Some((LinkReply::Hello { watermark: 9, node: 12346 }, 16))));
    }

    #[test]
    fn frames_decode_by_name_and_arity() {
        let put = Frame::decode(b"REPL_PUT", &[b"repl_put", b"k", b"v", b"65537"]);
        let rec = Record { op: Op::Put, flags: 0, version: Version(65537), key: b"k", value: b"v", deadline: None };
        assert_eq!(put, Frame::Write(Some(rec)));
        let put = Frame::decode(b"REPL_PUT", &[b"repl_put", b"k", b"v", b"65537", b"1700000000123"]);
        assert_eq!(put, Frame::Write(Some(Record { deadline: Some(1_700_000_000_123), ..rec })));
        for bad in [&b"0"[..], b"-5", b"soon", b""] {
            assert_eq!(Frame::decode(b"REPL_PUT", &[b"x", b"k", b"v", b"1", bad]), Frame::Write(None));
        }
        assert_eq!(Frame::decode(b"REPL_PUT", &[b"x", b"k", b"v", b"x", b"5"]), Frame::Write(None));
        assert_eq!(Frame::decode(b"REPL_DEL", &[b"x", b"k", b"1", b"5"]), Frame::BadArity);
        assert_eq!(Frame::decode(b"REPL_PUT", &[b"x", b"k", b"v"]), Frame::Manual(Op::Put, b"k", b"v"));
        assert_eq!(Frame::decode(b"REPL_DEL", &[b"x", b"k", b"-1"]), Frame::Write(None));
        assert_eq!(Frame::decode(b"REPLHELLO", &[b"x", b"70000"]), Frame::Hello(None));
        assert_eq!(Frame::decode(b"REPL_SYNCED", &[b"x", b"7"]), Frame::Synced(Some(7)));
        assert_eq!(Frame::decode(b"REPL_FLUSHALL", &[b"x"]), Frame::BadArity);
    }

    /// Found with the `repl_wire` fuzz target: a counter no version on the
    /// wire can carry, from a peer (or any client after REPLHELLO), moved
    /// the clock so far that the next local version wrapped.
    #[test]
    fn a_counter_no_version_can_carry_is_refused() {
        let top = MAX_WIRE_COUNTER.to_string();
        assert_eq!(Frame::decode(b"REPL_SYNCED", &[b"x", top.as_bytes()]), Frame::Synced(Some(MAX_WIRE_COUNTER)));
        let hello = format!("+HELLO {top} 2\r\n");
        let want = LinkReply::Hello { watermark: MAX_WIRE_COUNTER, node: 2 };
        assert_eq!(parse_reply(hello.as_bytes()), Ok(Some((want, hello.len()))));
        assert_eq!(Version::new(MAX_WIRE_COUNTER, u16::MAX).0, i64::MAX as u64, "the top version fits");
        for over in [(MAX_WIRE_COUNTER + 1).to_string(), i64::MAX.to_string()] {
            assert_eq!(Frame::decode(b"REPL_SYNCED", &[b"x", over.as_bytes()]), Frame::Synced(None), "{over}");
            assert!(parse_reply(format!("+HELLO {over} 2\r\n").as_bytes()).is_err(), "{over}");
        }
    }
}
