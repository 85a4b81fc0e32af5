//! Strings: GET, SET, MGET, MSET, SETNX, MSETNX, GETSET, GETDEL, APPEND,
//! STRLEN, GETRANGE (and SUBSTR), SETRANGE, SETEX, PSETEX, GETEX. The counters (INCR and the
//! like) are in [`super::counters`].
//!
//! A command that reads a key and writes it back (APPEND, SETRANGE) does
//! both in one handler call on the one thread, so nothing runs in between:
//! it is atomic, and its write goes through [`Node::local_write`] like any
//! other. Commands that the text protocol also has are split into a core
//! that returns a value or a [`Failed`], and a RESP handler that encodes it.

use super::counters::{NOT_AN_INTEGER, parse_i64};
use super::expire::{OptError, StringOpts, TimeArg, TtlOpt, deadline_of_arg, parse_string_opts};
use super::{Ctx, Flow, refused, wrong_args};
use crate::node::Node;
use crate::node::write::Refused;
use crate::proto::resp;
use crate::storage::record::Op;

/// `GET key`.
pub fn get(cx: &mut Ctx<'_>) -> Flow {
    let r3 = cx.resp3();
    let node = &mut *cx.node;
    match node.store.get(cx.args.get(1)) {
        Some(v) => {
            node.stats.hits += 1;
            resp::bulk(cx.out, v);
        }
        None => {
            node.stats.misses += 1;
            resp::null(cx.out, r3);
        }
    }
    Flow::Continue
}

/// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]`, in
/// Redis's order: the options, the time, then GET's reply (the old value),
/// then the NX/XX condition, then the write.
pub fn set(cx: &mut Ctx<'_>) -> Flow {
    let a = cx.args;
    if a.len() == 3 {
        // The hot path: no option to parse, nothing to look up first.
        match cx.node.local_write(Op::Put, a.get(1), a.get(2)) {
            Ok(_) => resp::simple(cx.out, b"OK"),
            Err(Refused(why)) => refused(cx.out, &why),
        }
        return Flow::Continue;
    }
    set_generic(cx, a.get(1), a.get(2), parse_string_opts(a.iter(3), false), "set")
}

/// SET and its shorthands SETEX and PSETEX, once the options are parsed.
fn set_generic(
    cx: &mut Ctx<'_>,
    key: &[u8],
    value: &[u8],
    opts: Result<StringOpts<'_>, OptError<'_>>,
    name: &str,
) -> Flow {
    let (r3, out, node) = (cx.resp3(), &mut *cx.out, &mut *cx.node);
    let opts = match opts {
        Ok(o) => o,
        Err(e) => {
            e.reply(out, name);
            return Flow::Continue;
        }
    };
    let deadline = match opts.ttl {
        TtlOpt::At(kind, arg) => match deadline_of_arg(kind, arg, node.store.now_ms()) {
            Ok(d) => Some(d),
            Err(e) => {
                e.reply(out, name);
                return Flow::Continue;
            }
        },
        TtlOpt::Keep => node.store.deadline_of(key),
        TtlOpt::Unset | TtlOpt::Persist => None,
    };
    // GET's reply goes first (it is the reply whatever follows); it is
    // taken back if the write is refused.
    let mark = out.len();
    // A plain SET looks nothing up: the write path finds the key once.
    if opts.get || opts.nx || opts.xx {
        let current = node.store.get(key);
        if opts.get {
            match current {
                Some(v) => resp::bulk(out, v),
                None => resp::null(out, r3),
            }
        }
        if (opts.nx && current.is_some()) || (opts.xx && current.is_none()) {
            if !opts.get {
                resp::null(out, r3);
            }
            return Flow::Continue;
        }
    }
    match node.local_put(key, value, deadline) {
        Ok(_) if opts.get => {}
        Ok(_) => resp::simple(out, b"OK"),
        Err(Refused(why)) => {
            out.truncate(mark);
            refused(out, &why);
        }
    }
    Flow::Continue
}

/// `MGET key [key ...]`.
pub fn mget(cx: &mut Ctx<'_>) -> Flow {
    let r3 = cx.resp3();
    resp::array(cx.out, cx.args.len() - 1);
    for key in cx.args.iter(1) {
        match read(cx.node, key) {
            Some(v) => resp::bulk(cx.out, v),
            None => resp::null(cx.out, r3),
        }
    }
    Flow::Continue
}

/// `MSET key value [key value ...]`.
pub fn mset(cx: &mut Ctx<'_>) -> Flow {
    if cx.args.len().is_multiple_of(2) {
        wrong_args(cx.out, "mset");
        return Flow::Continue;
    }
    match write_pairs(cx) {
        Ok(()) => resp::simple(cx.out, b"OK"),
        Err(Refused(why)) => refused(cx.out, &why),
    }
    Flow::Continue
}

/// `MSETNX key value [key value ...]`: 1 if it set them all, 0 (and sets
/// none) if any of the keys exists.
pub fn msetnx(cx: &mut Ctx<'_>) -> Flow {
    if cx.args.len().is_multiple_of(2) {
        wrong_args(cx.out, "msetnx");
        return Flow::Continue;
    }
    if cx.args.iter(1).step_by(2).any(|k| cx.node.store.contains(k)) {
        resp::int(cx.out, 0);
        return Flow::Continue;
    }
    match write_pairs(cx) {
        Ok(()) => resp::int(cx.out, 1),
        Err(Refused(why)) => refused(cx.out, &why),
    }
    Flow::Continue
}

/// Writes the key/value pairs of MSET and MSETNX, all or none. Writes are
/// refused only while the log is down, which begins at a failed commit at
/// the end of a loop iteration, never within a command: so either the
/// first pair is refused and nothing is applied, or every pair is applied.
/// (A failed commit then rolls back every write of its iteration.)
fn write_pairs(cx: &mut Ctx<'_>) -> Result<(), Refused> {
    for i in (1..cx.args.len()).step_by(2) {
        cx.node.local_write(Op::Put, cx.args.get(i), cx.args.get(i + 1))?;
    }
    Ok(())
}

/// `SETNX key value`: 1 if it set the key, 0 if the key exists.
pub fn setnx(cx: &mut Ctx<'_>) -> Flow {
    let (key, value) = (cx.args.get(1), cx.args.get(2));
    if cx.node.store.contains(key) {
        resp::int(cx.out, 0);
        return Flow::Continue;
    }
    match cx.node.local_write(Op::Put, key, value) {
        Ok(_) => resp::int(cx.out, 1),
        Err(Refused(why)) => refused(cx.out, &why),
    }
    Flow::Continue
}

/// `GETSET key value`: the old value (or null), and the key set.
pub fn getset(cx: &mut Ctx<'_>) -> Flow {
    get_then_write(cx, Op::Put)
}

/// `GETDEL key`: the value (or null), and the key deleted.
pub fn getdel(cx: &mut Ctx<'_>) -> Flow {
    get_then_write(cx, Op::Del)
}

/// Replies with the key's value, then applies `op`. The reply is encoded
/// straight from the store, before the write replaces the value, and taken
/// back if the write is refused: no copy of the value.
fn get_then_write(cx: &mut Ctx<'_>, op: Op) -> Flow {
    let (key, r3) = (cx.args.get(1), cx.resp3());
    let mark = cx.out.len();
    let existed = match read(cx.node, key) {
        Some(v) => {
            resp::bulk(cx.out, v);
            true
        }
        None => {
            resp::null(cx.out, r3);
            false
        }
    };
    if op == Op::Del && !existed {
        return Flow::Continue;
    }
    let value = if op == Op::Put { cx.args.get(2) } else { b"" };
    if let Err(Refused(why)) = cx.node.local_write(op, key, value) {
        cx.out.truncate(mark);
        refused(cx.out, &why);
    }
    Flow::Continue
}

/// `APPEND key value`: the length after appending.
pub fn append(cx: &mut Ctx<'_>) -> Flow {
    let r = append_value(cx.node, cx.args.get(1), cx.args.get(2));
    reply_len(cx.out, r)
}

/// APPEND's core: appends `value` to `key` (creating it) and returns the
/// new length.
pub fn append_value(node: &mut Node, key: &[u8], value: &[u8]) -> Result<usize, Failed> {
    let new = match node.store.get(key) {
        None => {
            node.local_write(Op::Put, key, value)?;
            return Ok(value.len());
        }
        Some(old) => {
            check_size(node, old.len() as u64, value.len() as u64)?;
            [old, value].concat()
        }
    };
    // The key keeps its deadline, as Redis's APPEND and SETRANGE keep it.
    let deadline = node.store.deadline_of(key);
    node.local_put(key, &new, deadline)?;
    Ok(new.len())
}

/// `STRLEN key`: the value's length, 0 for a missing key.
pub fn strlen(cx: &mut Ctx<'_>) -> Flow {
    resp::int(cx.out, value_len(cx.node, cx.args.get(1)) as i64);
    Flow::Continue
}

/// STRLEN's core.
pub fn value_len(node: &mut Node, key: &[u8]) -> usize {
    read(node, key).map_or(0, <[u8]>::len)
}

/// `GETRANGE key start end` (and `SUBSTR`, its old name): the bytes from
/// `start` to `end`, both included; negative offsets count from the end.
pub fn getrange(cx: &mut Ctx<'_>) -> Flow {
    let (Some(start), Some(end)) = (parse_i64(cx.args.get(2)), parse_i64(cx.args.get(3))) else {
        resp::error(cx.out, NOT_AN_INTEGER.as_bytes());
        return Flow::Continue;
    };
    let value = read(cx.node, cx.args.get(1)).unwrap_or_default();
    let bytes = byte_range(value.len(), start, end).map_or(&b""[..], |r| &value[r]);
    resp::bulk(cx.out, bytes);
    Flow::Continue
}

/// The bytes GETRANGE returns of a value of `len` bytes, clamped as Redis
/// clamps them (`None`: the empty string).
pub fn byte_range(len: usize, start: i64, end: i64) -> Option<std::ops::Range<usize>> {
    if start < 0 && end < 0 && start > end {
        return None;
    }
    // A value is far shorter than i64::MAX, so these cannot overflow.
    let len = len as i64;
    let start = if start < 0 { start + len } else { start }.max(0);
    let end = if end < 0 { end + len } else { end }.max(0).min(len - 1);
    (len > 0 && start <= end).then(|| start as usize..end as usize + 1)
}

/// `SETRANGE key offset value`: overwrites the value from `offset` on,
/// padding it with zero bytes up to `offset` if it is shorter; the length
/// after.
pub fn setrange(cx: &mut Ctx<'_>) -> Flow {
    let r = set_range(cx.node, cx.args.get(1), cx.args.get(2), cx.args.get(3));
    reply_len(cx.out, r)
}

fn set_range(node: &mut Node, key: &[u8], offset: &[u8], value: &[u8]) -> Result<usize, Failed> {
    let offset = parse_i64(offset).ok_or(Failed::Redis(NOT_AN_INTEGER))?;
    let offset = u64::try_from(offset).map_err(|_| Failed::Redis("ERR offset is out of range"))?;
    let old = node.store.get(key).unwrap_or_default();
    if value.is_empty() {
        // Nothing to write: a missing key stays missing.
        return Ok(old.len());
    }
    check_size(node, offset, value.len() as u64)?;
    // Within --max-bulk now, so the offsets fit a usize.
    let (from, to) = (offset as usize, offset as usize + value.len());
    let mut new = Vec::with_capacity(old.len().max(to));
    new.extend_from_slice(old);
    if new.len() < to {
        new.resize(to, 0);
    }
    new[from..to].copy_from_slice(value);
    // The key keeps its deadline, as Redis's APPEND and SETRANGE keep it.
    let deadline = node.store.deadline_of(key);
    node.local_put(key, &new, deadline)?;
    Ok(new.len())
}

/// Refuses a string that would be longer than `--max-bulk` (Redis's
/// `proto-max-bulk-len`, 512 MB by default): such a value could not be
/// sent back, nor pass through a peer link.
fn check_size(node: &Node, len: u64, more: u64) -> Result<(), Failed> {
    let max = node.cfg.limits.max_bulk as u64;
    match len.checked_add(more) {
        Some(total) if total <= max => Ok(()),
        _ => Err(Failed::Redis("ERR string exceeds maximum allowed size (proto-max-bulk-len)")),
    }
}

/// A key's value for a command that reads it, counted as a hit or a miss
/// (as Redis counts its `lookupKeyRead`; its writing commands' lookups are
/// not counted, nor are they here).
fn read<'a>(node: &'a mut Node, key: &[u8]) -> Option<&'a [u8]> {
    let v = node.store.get(key);
    if v.is_some() {
        node.stats.hits += 1;
    } else {
        node.stats.misses += 1;
    }
    v
}

fn reply_len(out: &mut Vec<u8>, r: Result<usize, Failed>) -> Flow {
    match r {
        Ok(n) => resp::int(out, n as i64),
        Err(f) => f.reply(out),
    }
    Flow::Continue
}

/// Why a string command did nothing.
#[derive(Debug)]
pub enum Failed {
    /// Redis's error for it, the whole text (`ERR ...`).
    Redis(&'static str),
    /// The write path refused the write.
    Refused(Refused),
}

impl From<Refused> for Failed {
    fn from(r: Refused) -> Failed {
        Failed::Refused(r)
    }
}

impl Failed {
    /// Appends the RESP error.
    pub fn reply(&self, out: &mut Vec<u8>) {
        match self {
            Failed::Redis(msg) => resp::error(out, msg.as_bytes()),
            Failed::Refused(Refused(why)) => refused(out, why),
        }
    }

    /// Appends the text protocol's `ERROR <why>` line.
    pub fn line(&self, out: &mut Vec<u8>) {
        let why = match self {
            Failed::Redis(msg) => msg.strip_prefix("ERR ").unwrap_or(msg),
            Failed::Refused(Refused(why)) => why,
        };
        crate::proto::text::line(out, format!("ERROR {why}").as_bytes());
    }
}

/// `SETEX key seconds value`: SET with EX.
pub fn setex(cx: &mut Ctx<'_>) -> Flow {
    let a = cx.args;
    let opts = StringOpts { nx: false, xx: false, get: false, ttl: TtlOpt::At(TimeArg::Ex, a.get(2)) };
    set_generic(cx, a.get(1), a.get(3), Ok(opts), "setex")
}

/// `PSETEX key milliseconds value`: SET with PX.
pub fn psetex(cx: &mut Ctx<'_>) -> Flow {
    let a = cx.args;
    let opts = StringOpts { nx: false, xx: false, get: false, ttl: TtlOpt::At(TimeArg::Px, a.get(2)) };
    set_generic(cx, a.get(1), a.get(3), Ok(opts), "psetex")
}

/// `GETEX key [EX s|PX ms|EXAT s|PXAT ms|PERSIST]`: the value, and the
/// deadline changed as asked (an EXAT/PXAT already past deletes the key).
/// Redis's order: the options, the key (a missing one is a null whatever
/// the time says), then the time.
pub fn getex(cx: &mut Ctx<'_>) -> Flow {
    let (a, r3, out, node) = (cx.args, cx.resp3(), &mut *cx.out, &mut *cx.node);
    let opts = match parse_string_opts(a.iter(2), true) {
        Ok(o) => o,
        Err(e) => {
            e.reply(out, "getex");
            return Flow::Continue;
        }
    };
    let key = a.get(1);
    let Some((value, current)) = node.store.get_with_deadline(key) else {
        node.stats.misses += 1;
        resp::null(out, r3);
        return Flow::Continue;
    };
    let deadline = match opts.ttl {
        TtlOpt::At(kind, arg) => match deadline_of_arg(kind, arg, node.store.now_ms()) {
            Ok(d) => Some(d),
            Err(e) => {
                e.reply(out, "getex");
                return Flow::Continue;
            }
        },
        TtlOpt::Persist if current.is_some() => None,
        TtlOpt::Unset | TtlOpt::Keep | TtlOpt::Persist => {
            node.stats.hits += 1;
            resp::bulk(out, value);
            return Flow::Continue;
        }
    };
    node.stats.hits += 1;
    let mark = out.len();
    resp::bulk(out, value);
    if let Err(Refused(why)) = node.set_deadline(key, deadline) {
        out.truncate(mark);
        refused(out, &why);
    }
    Flow::Continue
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GETRANGE of `s` as Redis answers it.
    fn getrange(s: &str, start: i64, end: i64) -> &str {
        byte_range(s.len(), start, end).map_or("", |r| &s[r])
    }

    #[test]
    fn getrange_clamps_as_redis_does() {
        // The cases of Redis's unit/type/string.tcl and redis-py's
        // test_getrange, plus the extremes.
        let s = "Hello World";
        assert_eq!(getrange(s, 0, 3), "Hell");
        assert_eq!(getrange(s, 0, -1), s);
        assert_eq!(getrange(s, -4, -1), "orld");
        assert_eq!(getrange(s, 5, 3), "");
        assert_eq!(getrange(s, 5, 5000), " World");
        assert_eq!(getrange(s, -5000, 10000), s);
        assert_eq!(getrange(s, -1, -5), "");
        assert_eq!(getrange(s, -5000, -4000), "H");
        assert_eq!(getrange(s, 4000, 5000), "");
        assert_eq!(getrange(s, 11, 11), "");
        assert_eq!(getrange(s, 10, 10), "d");
        assert_eq!(getrange(s, i64::MIN, i64::MAX), s);
        assert_eq!(getrange(s, i64::MAX, i64::MIN), "");
        assert_eq!(getrange(s, i64::MIN, i64::MIN), "H");
        assert_eq!(getrange("", 0, -1), "");
        assert_eq!(getrange("", 0, 0), "");
        assert_eq!(getrange("", -1, -1), "");
        assert_eq!(getrange("1234567", 0, -1), "1234567");
    }

    #[test]
    fn failures_read_as_redis_and_as_text_lines() {
        let mut out = Vec::new();
        Failed::Redis(NOT_AN_INTEGER).reply(&mut out);
        assert_eq!(out, b"-ERR value is not an integer or out of range\r\n");
        out.clear();
        Failed::Redis(NOT_AN_INTEGER).line(&mut out);
        assert_eq!(out, b"ERROR value is not an integer or out of range\n");
        out.clear();
        Failed::Refused(Refused("log write failed".into())).line(&mut out);
        assert_eq!(out, b"ERROR log write failed\n");
    }
}
