//! The text protocol's commands, with its line replies: PUT, GET, DEL,
//! The text protocol's commands, with its line replies: PUT, GET, DEL,
//! PING, STATS, COMPACT, QUIT, REPL_PUT/REPL_DEL typed by a person, the
//! seed-style counterparts of Redis commands (EXISTS, RENAME, KEYS, INCR &
//! co., APPEND, STRLEN), and expiry (PUTEX, TTL, EXPIRE, PERSIST). Their
//! arities and usage lines are in the command table. STATS's RESP form
//! (inline or RESP) is here too, beside the text one, so that the two list
//! the same counters.
//!
//! Expiry in the seed's words: `PUTEX <key> <seconds> <value>` is a PUT that
//! expires (the seconds come before the value, which is the rest of the line
//! as for PUT, so no value can be mistaken for an option: `PUT k v EX 60`
//! would be ambiguous with the value `v EX 60`); `TTL <key>` answers the
//! seconds left (rounded as Redis's TTL), `NO_EXPIRY` or `NOT_FOUND`;
//! `EXPIRE <key> <seconds>` answers `OK` or `NOT_FOUND` (0 or less deletes
//! the key, as in Redis); `PERSIST <key>` answers `OK`, `NO_EXPIRY` or
//! `NOT_FOUND`.

use super::counters;
use super::expire::{OptError, TimeArg, deadline_of_arg, expire_when, ttl_of};
use super::strings::{self, Failed};
use super::{Ctx, Flow};
use crate::node::write::Refused;
use crate::proto::resp;
use crate::proto::text::line;
use crate::storage::record::Op;
use crate::storage::store::Applied;

/// `PUT <key> <value>`.
pub fn put(cx: &mut Ctx<'_>) -> Flow {
    let r = cx.node.local_write(Op::Put, cx.args.get(1), cx.args.get(2));
    write_reply(cx.out, r, false)
}

/// `REPL_PUT <key> <value>`: applied on this node only.
pub fn repl_put(cx: &mut Ctx<'_>) -> Flow {
    let r = cx.node.manual_replica_write(Op::Put, cx.args.get(1), cx.args.get(2));
    write_reply(cx.out, r, false)
}

/// `GET <key>`: the value, or `NOT_FOUND`. A value with a line break cannot
/// be a line: it is refused with a pointer to RESP.
pub fn get(cx: &mut Ctx<'_>) -> Flow {
    let node = &mut *cx.node;
    match node.store.get(cx.args.get(1)) {
        Some(v) if memchr::memchr2(b'\n', b'\r', v).is_some() => {
            node.stats.hits += 1;
            line(cx.out, b"ERROR the value holds a line break; read it over RESP (redis-cli)");
        }
        Some(v) => {
            node.stats.hits += 1;
            line(cx.out, v);
        }
        None => {
            node.stats.misses += 1;
            line(cx.out, b"NOT_FOUND");
        }
    }
    Flow::Continue
}

/// `DEL <key>`: `OK`, or `NOT_FOUND`.
pub fn del(cx: &mut Ctx<'_>) -> Flow {
    delete(cx, false)
}

/// `REPL_DEL <key>`: as DEL, applied on this node only.
pub fn repl_del(cx: &mut Ctx<'_>) -> Flow {
    delete(cx, true)
}

fn delete(cx: &mut Ctx<'_>, manual: bool) -> Flow {
    let key = cx.args.get(1);
    if !cx.node.store.contains(key) {
        line(cx.out, b"NOT_FOUND");
        return Flow::Continue;
    }
    let r =
        if manual { cx.node.manual_replica_write(Op::Del, key, b"") } else { cx.node.local_write(Op::Del, key, b"") };
    write_reply(cx.out, r, true)
}

fn write_reply(out: &mut Vec<u8>, r: Result<Applied, Refused>, is_delete: bool) -> Flow {
    match r {
        Ok(Applied::Done { was_live: false }) if is_delete => line(out, b"NOT_FOUND"),
        Ok(_) => line(out, b"OK"),
        Err(Refused(why)) => line(out, format!("ERROR {why}").as_bytes()),
    }
    Flow::Continue
}

/// `PUTEX <key> <seconds> <value>`: `OK`. `seconds` must be positive.
pub fn putex(cx: &mut Ctx<'_>) -> Flow {
    let a = cx.args;
    match deadline_of_arg(TimeArg::Ex, a.get(2), cx.node.store.now_ms()) {
        Ok(d) => write_reply(cx.out, cx.node.local_put(a.get(1), a.get(3), Some(d)), false),
        Err(e) => time_error(cx.out, e),
    }
}

/// `TTL <key>`: the seconds left, `NO_EXPIRY`, or `NOT_FOUND`.
pub fn ttl(cx: &mut Ctx<'_>) -> Flow {
    let store = &cx.node.store;
    match store.get_with_deadline(cx.args.get(1)) {
        None => line(cx.out, b"NOT_FOUND"),
        Some((_, None)) => line(cx.out, b"NO_EXPIRY"),
        Some((_, Some(d))) => line(cx.out, ttl_of(Some(Some(d)), store.now_ms(), false, false).to_string().as_bytes()),
    }
    Flow::Continue
}

/// `EXPIRE <key> <seconds>`: `OK` or `NOT_FOUND`.
pub fn expire(cx: &mut Ctx<'_>) -> Flow {
    let (key, node) = (cx.args.get(1), &mut *cx.node);
    let now = i64::try_from(node.store.now_ms()).unwrap_or(i64::MAX);
    let when = match expire_when(cx.args.get(2), true, now) {
        Ok(w) => w,
        Err(e) => return time_error(cx.out, e),
    };
    match node.set_deadline(key, Some(u64::try_from(when).unwrap_or(0))) {
        Ok(true) => line(cx.out, b"OK"),
        Ok(false) => line(cx.out, b"NOT_FOUND"),
        Err(Refused(why)) => line(cx.out, format!("ERROR {why}").as_bytes()),
    }
    Flow::Continue
}

/// `PERSIST <key>`: `OK` (its deadline is gone), `NO_EXPIRY`, or `NOT_FOUND`.
pub fn persist(cx: &mut Ctx<'_>) -> Flow {
    let (key, node) = (cx.args.get(1), &mut *cx.node);
    match node.store.get_with_deadline(key) {
        None => line(cx.out, b"NOT_FOUND"),
        Some((_, None)) => line(cx.out, b"NO_EXPIRY"),
        Some(_) => match node.set_deadline(key, None) {
            Ok(_) => line(cx.out, b"OK"),
            Err(Refused(why)) => line(cx.out, format!("ERROR {why}").as_bytes()),
        },
    }
    Flow::Continue
}

/// The text reply to a bad number of seconds.
fn time_error(out: &mut Vec<u8>, e: OptError<'_>) -> Flow {
    match e {
        OptError::NotInteger => line(out, b"ERROR seconds must be an integer"),
        _ => line(out, b"ERROR invalid expire time"),
    }
    Flow::Continue
}

/// `PING`.
pub fn ping(cx: &mut Ctx<'_>) -> Flow {
    line(cx.out, b"PONG");
    Flow::Continue
}

/// `STATS`: `STAT <name> <value>` lines, then `END`.
pub fn stats(cx: &mut Ctx<'_>) -> Flow {
    for (k, v) in cx.node.stat_pairs() {
        cx.out.extend_from_slice(b"STAT ");
        cx.out.extend_from_slice(k.as_bytes());
        cx.out.push(b' ');
        line(cx.out, v.as_bytes());
    }
    line(cx.out, b"END");
    Flow::Continue
}

/// `STATS` over RESP: a map of every `STAT` line's name to its value (a
/// bulk string, as the text form has it); a flat array of name, value,
/// name, value... in RESP2, as Redis sends maps there.
pub fn stats_resp(cx: &mut Ctx<'_>) -> Flow {
    let pairs = cx.node.stat_pairs();
    resp::map(cx.out, pairs.len(), cx.resp3());
    for (k, v) in &pairs {
        resp::bulk(cx.out, k.as_bytes());
        resp::bulk(cx.out, v.as_bytes());
    }
    Flow::Continue
}

/// `COMPACT`: `OK` once a log rewrite has started (or is under way).
pub fn compact(cx: &mut Ctx<'_>) -> Flow {
    match cx.node.start_compaction() {
        Ok(_) => line(cx.out, b"OK"),
        Err(e) => line(cx.out, format!("ERROR {e}").as_bytes()),
    }
    Flow::Continue
}

/// `QUIT`: the connection closes, with no reply.
pub fn quit(_: &mut Ctx<'_>) -> Flow {
    Flow::Close
}

/// `EXISTS <key>`: `1` or `0`, as Redis counts it.
pub fn exists(cx: &mut Ctx<'_>) -> Flow {
    line(cx.out, if cx.node.store.contains(cx.args.get(1)) { b"1" } else { b"0" });
    Flow::Continue
}

/// `RENAME <key> <newkey>`: `OK`, or `NOT_FOUND` when the key is missing.
pub fn rename(cx: &mut Ctx<'_>) -> Flow {
    match super::keys::rename(cx.node, cx.args.get(1), cx.args.get(2), false) {
        Ok(super::keys::Renamed::NoSuchKey) => line(cx.out, b"NOT_FOUND"),
        Ok(_) => line(cx.out, b"OK"),
        Err(Refused(why)) => line(cx.out, format!("ERROR {why}").as_bytes()),
    }
    Flow::Continue
}

/// `KEYS <pattern>`: the matching keys, one a line, then `END`. A key with
/// a line break cannot be a line: the reply is then an error pointing to
/// RESP, before any key, so it cannot be mistaken for a shorter list.
pub fn keys(cx: &mut Ctx<'_>) -> Flow {
    let (store, pattern) = (&cx.node.store, cx.args.get(1));
    if super::keys::matching_keys(store, pattern).any(|k| memchr::memchr2(b'\n', b'\r', k).is_some()) {
        line(cx.out, b"ERROR a key holds a line break; list keys over RESP (redis-cli --scan)");
        return Flow::Continue;
    }
    for k in super::keys::matching_keys(store, pattern) {
        line(cx.out, k);
    }
    line(cx.out, b"END");
    Flow::Continue
}

// ------------------------------------------------------------ strings and counters
//
// INCR, DECR, INCRBY, DECRBY, INCRBYFLOAT, APPEND and STRLEN answer a
// number (or `ERROR <why>`); their cores are RESP's.

/// `INCR <key>`: the new value.
pub fn incr(cx: &mut Ctx<'_>) -> Flow {
    let r = counters::increment(cx.node, cx.args.get(1), 1);
    int_line(cx.out, r)
}

/// `DECR <key>`: the new value.
pub fn decr(cx: &mut Ctx<'_>) -> Flow {
    let r = counters::increment(cx.node, cx.args.get(1), -1);
    int_line(cx.out, r)
}

/// `INCRBY <key> <increment>`: the new value.
pub fn incrby(cx: &mut Ctx<'_>) -> Flow {
    let r = counters::delta(cx.args.get(2), false).and_then(|d| counters::increment(cx.node, cx.args.get(1), d));
    int_line(cx.out, r)
}

/// `DECRBY <key> <decrement>`: the new value.
pub fn decrby(cx: &mut Ctx<'_>) -> Flow {
    let r = counters::delta(cx.args.get(2), true).and_then(|d| counters::increment(cx.node, cx.args.get(1), d));
    int_line(cx.out, r)
}

/// `INCRBYFLOAT <key> <increment>`: the new value, as RESP's INCRBYFLOAT
/// writes it.
pub fn incrbyfloat(cx: &mut Ctx<'_>) -> Flow {
    let mut text = Vec::new();
    match counters::increment_float(cx.node, cx.args.get(1), cx.args.get(2), &mut text) {
        Ok(()) => line(cx.out, &text),
        Err(f) => f.line(cx.out),
    }
    Flow::Continue
}

/// `APPEND <key> <value>`: the length after appending.
pub fn append(cx: &mut Ctx<'_>) -> Flow {
    let r = strings::append_value(cx.node, cx.args.get(1), cx.args.get(2));
    int_line(cx.out, r.map(|n| n as i64))
}

/// `STRLEN <key>`: the value's length, 0 for a missing key.
pub fn strlen(cx: &mut Ctx<'_>) -> Flow {
    let n = strings::value_len(cx.node, cx.args.get(1));
    int_line(cx.out, Ok(n as i64))
}

/// A number as a line, or `ERROR <why>`.
fn int_line(out: &mut Vec<u8>, r: Result<i64, Failed>) -> Flow {
    match r {
        Ok(n) => line(out, counters::i64_text(n, &mut [0; 20])),
        Err(f) => f.line(out),
    }
    Flow::Continue
}

/// `LEADER` in the text protocol (see [`super::server::leader`]).
pub fn leader(cx: &mut Ctx<'_>) -> Flow {
    match cx.node.leader_line() {
        Some(s) => line(cx.out, s.as_bytes()),
        None => line(cx.out, format!("ERROR {}", super::server::NOT_LEADER_MODE).as_bytes()),
    }
    Flow::Continue
}
