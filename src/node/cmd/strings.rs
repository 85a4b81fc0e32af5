//! Strings: GET, SET, MGET, MSET, SETEX, PSETEX, GETEX.

use super::expire::{OptError, StringOpts, TimeArg, TtlOpt, deadline_of_arg, parse_string_opts};
use super::{Ctx, Flow, refused, wrong_args};
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
        match cx.node.store.get(key) {
            Some(v) => resp::bulk(cx.out, v),
            None => resp::null(cx.out, r3),
        }
    }
    Flow::Continue
}

/// `MSET key value [key value ...]`.
pub fn mset(cx: &mut Ctx<'_>) -> Flow {
    let n = cx.args.len();
    if n.is_multiple_of(2) {
        wrong_args(cx.out, "mset");
        return Flow::Continue;
    }
    for i in (1..n).step_by(2) {
        if let Err(Refused(why)) = cx.node.local_write(Op::Put, cx.args.get(i), cx.args.get(i + 1)) {
            refused(cx.out, &why);
            return Flow::Continue;
        }
    }
    resp::simple(cx.out, b"OK");
    Flow::Continue
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
