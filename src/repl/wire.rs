//! The peer link's wire format, both ways: the frames a node sends over its
//! outbound link, the replies it reads back, and the decoding of frames a
//! node receives as requests on an inbound connection.
//!
//! The link speaks RESP, so values of any bytes pass unchanged:
//!
//! | frame | meaning | reply |
//! |---|---|---|
//! | `REPLAUTH <id> <nonce>` | with a cluster secret, first: see [`super::handshake`] | `+REPLAUTH <peer id> <nonce>` |
//! | `REPLPROOF <hmac>` | the link's proof of the secret | `+REPLPROOF <hmac>`, the peer's |
//! | `REPLHELLO <id>` | "I am node id" | `+HELLO <N> <peer id>`, N the highest counter of id's writes the peer has in order |
//! | `REPL_PUT <key> <value> <version>` | a write of ours | `:N` as above |
//! | `REPL_PUT <key> <value> <version> <deadline>` | a write of ours that expires at `deadline` (ms since the Unix epoch) | `:N` |
//! | `REPL_COUNTER <key> <state> <version> [<deadline>]` | a converging counter's whole state (binary, see [`crate::storage::counter`]); `version`: its newest | `:N` |
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

/// The highest Lamport counter this node accepts from a peer (a version's
/// counter, a `REPL_SYNCED` counter, a HELLO watermark). A counter a peer
/// announces moves this node's clock (`Store::observe`); one near
/// [`Version::MAX_COUNTER`] would leave its own writes no room, and past it
/// [`Version::new`] would wrap (found by fuzzing: `REPL_SYNCED
/// 9223372036854775807` made the next local versions lose to every older
/// write). The margin leaves 2^40 writes; leader mode's epochs stay below it
/// ([`super::election::MAX_EPOCH`]).
pub const MAX_WIRE_COUNTER: u64 = Version::MAX_COUNTER - (1 << 40);

/// Parses a decimal `u64` (a version travels as one: its 48-bit counter in
/// the high bits does not fit a RESP integer's `i64` at the top).
pub fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(n)
}

/// Encodes `REPLHELLO <id>`.
pub fn hello(out: &mut Vec<u8>, id: u16) {
    resp::array(out, 2);
    resp::bulk(out, b"REPLHELLO");
    bulk_u64(out, u64::from(id));
}

/// Encodes the answer to `REPLHELLO`: `+HELLO <watermark> <our id>
/// <epoch> [<origin> <watermark>]...`: the watermark for the asker, then
/// our epoch (leader mode; 0 otherwise) and what we hold of every origin
/// (the asker's catch-up scan sends what is newer, whoever wrote it).
pub fn hello_reply(out: &mut Vec<u8>, watermark: u64, id: u16, epoch: u64, marks: &[(u16, u64)]) {
    let mut line = format!("HELLO {watermark} {id} {epoch}");
    for (o, w) in marks {
        line.push_str(&format!(" {o} {w}"));
    }
    resp::simple(out, line.as_bytes());
}

/// Encodes `REPL_SYNCED <counter> <epoch> [<origin> <watermark>]...`: the
/// scan is through; the peer holds all our writes up to `counter`, and, of
/// every other origin, what we held when the scan began. `epoch`: ours
/// when the scan began (a candidate counts only scans of its epoch).
pub fn synced(out: &mut Vec<u8>, counter: u64, epoch: u64, claims: &[(u16, u64)]) {
    resp::array(out, 3 + 2 * claims.len());
    resp::bulk(out, b"REPL_SYNCED");
    bulk_u64(out, counter);
    bulk_u64(out, epoch);
    for &(o, w) in claims {
        bulk_u64(out, u64::from(o));
        bulk_u64(out, w);
    }
}

/// Encodes `REPL_ELECTION <epoch> <id>` (Bully's ELECTION; a pre-vote).
pub fn ask(out: &mut Vec<u8>, epoch: u64, id: u16) {
    election_frame(out, b"REPL_ELECTION", epoch, u64::from(id), None);
}

/// Encodes `REPL_VOTE <epoch> <id>`.
pub fn vote(out: &mut Vec<u8>, epoch: u64, id: u16) {
    election_frame(out, b"REPL_VOTE", epoch, u64::from(id), None);
}

/// Encodes `REPL_BEAT <epoch> <id> <commit>` (COORDINATOR and heartbeats).
pub fn beat(out: &mut Vec<u8>, epoch: u64, id: u16, commit: u64) {
    election_frame(out, b"REPL_BEAT", epoch, u64::from(id), Some(commit));
}

fn election_frame(out: &mut Vec<u8>, name: &[u8], epoch: u64, id: u64, extra: Option<u64>) {
    resp::array(out, if extra.is_some() { 4 } else { 3 });
    resp::bulk(out, name);
    bulk_u64(out, epoch);
    bulk_u64(out, id);
    if let Some(x) = extra {
        bulk_u64(out, x);
    }
}

/// Encodes `REPL_FWD <kind> <arg>...`: a client's command forwarded to the
/// leader; `kind` is the client's protocol (`t` text, `2` RESP2, `3`
/// RESP3), whose reply comes back as one bulk string.
pub fn forward<'a>(out: &mut Vec<u8>, kind: u8, args: impl ExactSizeIterator<Item = &'a [u8]>) {
    resp::array(out, 2 + args.len());
    resp::bulk(out, b"REPL_FWD");
    resp::bulk(out, &[kind]);
    for a in args {
        resp::bulk(out, a);
    }
}

/// Encodes a simple-string answer to an election frame:
/// `+<word> <epoch> <value>`.
pub fn election_reply(out: &mut Vec<u8>, word: &str, epoch: u64, value: &str) {
    resp::simple(out, format!("{word} {epoch} {value}").as_bytes());
}

/// Encodes a write as the frame that replays it on a peer (`deadline`:
/// a put's, ignored for other writes).
pub fn frame(out: &mut Vec<u8>, op: Op, key: &[u8], value: &[u8], version: Version, deadline: Option<u64>) {
    match op {
        Op::Put | Op::Counter => {
            resp::array(out, if deadline.is_some() { 5 } else { 4 });
            resp::bulk(out, if op == Op::Put { b"REPL_PUT" } else { b"REPL_COUNTER" });
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
    /// `+HELLO <watermark> <node> <epoch> [<origin> <watermark>]...`: the
    /// answer to `REPLHELLO`.
    Hello {
        /// The peer's watermark for us.
        watermark: u64,
        /// The peer's node id.
        node: u16,
        /// The peer's epoch.
        epoch: u64,
        /// What it holds of each origin.
        marks: Vec<(u16, u64)>,
    },
    /// `:N`: the peer's watermark for us.
    Watermark(u64),
    /// `+OK`.
    Ok,
    /// `+ELECTION <epoch> <answer>`: the answer to `REPL_ELECTION`.
    Election {
        /// The peer's epoch.
        epoch: u64,
        /// Its answer.
        answer: super::election::Answer,
    },
    /// `+VOTE <epoch> <0|1>`: the answer to `REPL_VOTE`.
    Vote {
        /// The peer's epoch.
        epoch: u64,
        /// Whether it granted the vote.
        granted: bool,
    },
    /// `+BEAT <epoch> <watermark>`: the answer to `REPL_BEAT`.
    Beat {
        /// The peer's epoch (newer than ours: we are deposed).
        epoch: u64,
        /// Its watermark for us.
        watermark: u64,
    },
    /// `$<n>`: the reply to a forwarded request (`REPL_FWD`).
    Bulk(&'a [u8]),
    /// `+REPLAUTH <node> <nonce>`: the peer's challenge (see [`super::handshake`]).
    Challenge {
        /// The peer's node id.
        node: u16,
        /// Its nonce, in hex.
        nonce: &'a [u8],
    },
    /// `+REPLPROOF <hmac>`: the peer's proof of the cluster secret, in hex.
    Proof(&'a [u8]),
    /// `-...`: the peer refused a frame.
    Error(&'a [u8]),
}

/// The largest forwarded reply a link accepts (a value at Redis's 512 MB
/// cap, with room for its framing).
pub const MAX_FORWARD_REPLY: usize = (512 << 20) + 1024;

fn parse_words(rest: &[u8]) -> Result<LinkReply<'_>, &'static str> {
    let num = |w: Option<&[u8]>| w.and_then(resp::parse_int).and_then(|n| u64::try_from(n).ok());
    let mut words = rest.split(|&c| c == b' ');
    let word = words.next();
    let (a, b) = (words.next(), words.next());
    match word {
        Some(b"HELLO") => {
            let watermark = num(a).filter(|&w| w <= MAX_WIRE_COUNTER).ok_or("bad HELLO reply")?;
            let node = num(b).and_then(|n| u16::try_from(n).ok()).ok_or("bad HELLO reply")?;
            let epoch = match words.next() {
                None => 0,
                w => num(w).ok_or("bad HELLO reply")?,
            };
            let mut marks = Vec::new();
            while let Some(o) = words.next() {
                let o = num(Some(o)).and_then(|n| u16::try_from(n).ok()).ok_or("bad HELLO reply")?;
                marks.push((o, num(words.next()).filter(|&w| w <= MAX_WIRE_COUNTER).ok_or("bad HELLO reply")?));
            }
            Ok(LinkReply::Hello { watermark, node, epoch, marks })
        }
        _ if words.next().is_some() => Err("unexpected reply"),
        Some(b"REPLAUTH") => {
            let node = num(a).and_then(|n| u16::try_from(n).ok()).ok_or("bad REPLAUTH reply")?;
            Ok(LinkReply::Challenge { node, nonce: b.ok_or("bad REPLAUTH reply")? })
        }
        Some(b"REPLPROOF") if b.is_none() => Ok(LinkReply::Proof(a.ok_or("bad REPLPROOF reply")?)),
        Some(b"ELECTION") => {
            let answer = b.and_then(super::election::Answer::parse).ok_or("bad ELECTION reply")?;
            Ok(LinkReply::Election { epoch: num(a).ok_or("bad ELECTION reply")?, answer })
        }
        Some(b"VOTE") => {
            let granted = match b {
                Some(b"1") => true,
                Some(b"0") => false,
                _ => return Err("bad VOTE reply"),
            };
            Ok(LinkReply::Vote { epoch: num(a).ok_or("bad VOTE reply")?, granted })
        }
        Some(b"BEAT") => {
            Ok(LinkReply::Beat { epoch: num(a).ok_or("bad BEAT reply")?, watermark: num(b).ok_or("bad BEAT reply")? })
        }
        _ => Err("unexpected reply"),
    }
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
        Some((b'+', rest)) => parse_words(rest).map(|r| Some((r, end + 1))),
        Some((b'$', digits)) => {
            let n = resp::parse_int(digits).and_then(|n| usize::try_from(n).ok()).ok_or("bad bulk length")?;
            if n > MAX_FORWARD_REPLY {
                return Err("forwarded reply too large");
            }
            let start = end + 1;
            if buf.len() < start + n + 2 {
                return Ok(None);
            }
            if &buf[start + n..start + n + 2] != b"\r\n" {
                return Err("bulk reply without CRLF");
            }
            Ok(Some((LinkReply::Bulk(&buf[start..start + n]), start + n + 2)))
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
    /// A versioned write (`REPL_PUT`, `REPL_COUNTER`, `REPL_DEL`,
    /// `REPL_FLUSHALL`), or `None` if its version (or deadline) is not a
    /// number, or a counter's state is not one of that version.
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
        let version = |b: &[u8]| parse_u64(b).map(Version).filter(|v| v.counter() <= MAX_WIRE_COUNTER);
        let write = |op, key, value, v: &[u8]| {
            Frame::Write(version(v).map(|version| Record { op, flags: 0, version, key, value, deadline: None }))
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
            (b"REPL_COUNTER", [_, key, state, v, d @ ..]) if d.len() <= 1 => {
                let deadline = match d {
                    [d] => match number(d) {
                        Some(d) if d > 0 => Some(d),
                        _ => return Frame::Write(None),
                    },
                    _ => None,
                };
                match write(Op::Counter, key, state, v) {
                    Frame::Write(Some(rec)) if crate::storage::record::counter_matches(state, rec.version) => {
                        Frame::Write(Some(Record { deadline, ..rec }))
                    }
                    _ => Frame::Write(None),
                }
            }
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
        let hello = |epoch, marks| LinkReply::Hello { watermark: 9, node: 12346, epoch, marks };
        assert_eq!(parse_reply(b"+HELLO 9 12346\r\n"), Ok(Some((hello(0, vec![]), 16))));
        assert!(parse_reply(b":-1\r\n").is_err());
        assert_eq!(
            parse_reply(b"+REPLAUTH 7 ab12\r\n"),
            Ok(Some((LinkReply::Challenge { node: 7, nonce: b"ab12" }, 18)))
        );
        assert_eq!(parse_reply(b"+REPLPROOF ff\r\n"), Ok(Some((LinkReply::Proof(b"ff"), 15))));
        assert!(parse_reply(b"+REPLAUTH 70000 ab\r\n").is_err());
        assert!(parse_reply(b"+REPLPROOF a b\r\n").is_err());
        let mut out = vec![];
        hello_reply(&mut out, 9, 12346, 3, &[(7, 70), (8, 80)]);
        assert_eq!(parse_reply(&out), Ok(Some((hello(3, vec![(7, 70), (8, 80)]), out.len()))));
        assert!(parse_reply(b"+HELLO 9 12346 3 7\r\n").is_err(), "an origin without its watermark");
        use super::super::election::Answer;
        assert_eq!(
            parse_reply(b"+ELECTION 4 alive\r\n"),
            Ok(Some((LinkReply::Election { epoch: 4, answer: Answer::Alive }, 19)))
        );
        assert_eq!(parse_reply(b"+VOTE 4 1\r\n"), Ok(Some((LinkReply::Vote { epoch: 4, granted: true }, 11))));
        assert!(parse_reply(b"+VOTE 4 2\r\n").is_err());
        assert_eq!(parse_reply(b"+BEAT 4 99\r\n"), Ok(Some((LinkReply::Beat { epoch: 4, watermark: 99 }, 12))));
        assert!(parse_reply(b"+BEAT 4 99 1\r\n").is_err());
        assert_eq!(parse_reply(b"$3\r\n+OK\r\n"), Ok(Some((LinkReply::Bulk(b"+OK"), 9))));
        assert_eq!(parse_reply(b"$3\r\n+OK\r"), Ok(None));
        assert!(parse_reply(b"$3\r\n+OKxx").is_err());
        assert!(parse_reply(b"$999999999999\r\n").is_err());
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
        let want = LinkReply::Hello { watermark: MAX_WIRE_COUNTER, node: 2, epoch: 0, marks: vec![] };
        assert_eq!(parse_reply(hello.as_bytes()), Ok(Some((want, hello.len()))));
        // A version travels as a u64: the top counter's fits.
        let top_version = Version::new(MAX_WIRE_COUNTER, u16::MAX).0.to_string();
        let put = Frame::decode(b"REPL_PUT", &[b"x", b"k", b"v", top_version.as_bytes()]);
        assert!(matches!(put, Frame::Write(Some(_))), "{put:?}");
        let over_version = Version::new(MAX_WIRE_COUNTER + 1, 1).0.to_string();
        let put = Frame::decode(b"REPL_PUT", &[b"x", b"k", b"v", over_version.as_bytes()]);
        assert_eq!(put, Frame::Write(None));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"-1"), None);
        for over in [(MAX_WIRE_COUNTER + 1).to_string(), i64::MAX.to_string()] {
            assert_eq!(Frame::decode(b"REPL_SYNCED", &[b"x", over.as_bytes()]), Frame::Synced(None), "{over}");
            assert!(parse_reply(format!("+HELLO {over} 2\r\n").as_bytes()).is_err(), "{over}");
        }
    }

    #[test]
    fn counter_frames_round_trip_and_carry_a_state_of_their_version() {
        use crate::storage::counter::Counter;
        let mut c = Counter::plain(Version::new(1, 1), 5);
        c.add(2, Version::new(3, 2));
        let mut state = Vec::new();
        c.encode(&mut state);
        let v = Version::new(3, 2);
        let vt = v.0.to_string();
        let mut out = vec![];
        frame(&mut out, Op::Counter, b"k", &state, v, Some(17));
        let want =
            [&b"*5\r\n$12\r\nREPL_COUNTER\r\n$1\r\nk\r\n$32\r\n"[..], &state, b"\r\n$6\r\n196610\r\n$2\r\n17\r\n"];
        assert_eq!(out, want.concat());
        let (short, long): (&[&[u8]], &[&[u8]]) =
            (&[b"x", b"k", &state, vt.as_bytes()], &[b"x", b"k", &state, vt.as_bytes(), b"17"]);
        for (args, deadline) in [(short, None), (long, Some(17))] {
            let rec = Record { op: Op::Counter, flags: 0, version: v, key: b"k", value: &state, deadline };
            assert_eq!(Frame::decode(b"REPL_COUNTER", args), Frame::Write(Some(rec)));
        }
        let other = Version::new(4, 2).0.to_string();
        assert_eq!(Frame::decode(b"REPL_COUNTER", &[b"x", b"k", &state, other.as_bytes()]), Frame::Write(None));
        assert_eq!(Frame::decode(b"REPL_COUNTER", &[b"x", b"k", b"junk", vt.as_bytes()]), Frame::Write(None));
        assert_eq!(Frame::decode(b"REPL_COUNTER", &[b"x", b"k", &state, vt.as_bytes(), b"0"]), Frame::Write(None));
        assert_eq!(Frame::decode(b"REPL_COUNTER", &[b"x", b"k", &state]), Frame::BadArity);
    }
}
