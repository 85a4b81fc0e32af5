//! Strings: GET, SET, MGET, MSET.

use super::{Ctx, Flow, refused, upper, wrong_args};
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

/// `SET key value [NX|XX] [GET]`, with a clear error for expiry options.
pub fn set(cx: &mut Ctx<'_>) -> Flow {
    let (a, r3, out) = (cx.args, cx.resp3(), &mut *cx.out);
    let (key, value) = (a.get(1), a.get(2));
    let (mut nx, mut xx, mut get) = (false, false, false);
    for opt in a.iter(3) {
        let mut ob = [0u8; 24];
        match upper(opt, &mut ob) {
            b"NX" if !xx => nx = true,
            b"XX" if !nx => xx = true,
            b"GET" => get = true,
            b"EX" | b"PX" | b"EXAT" | b"PXAT" | b"KEEPTTL" => {
                resp::error(out, b"ERR kvstore keys do not expire: EX, PX, EXAT, PXAT and KEEPTTL are not supported");
                return Flow::Continue;
            }
            _ => {
                resp::error(out, b"ERR syntax error");
                return Flow::Continue;
            }
        }
    }
    let node = &mut *cx.node;
    let old = if get { node.store.get(key).map(<[u8]>::to_vec) } else { None };
    let old_or_null = |out: &mut Vec<u8>, old: Option<Vec<u8>>| match old {
        Some(v) => resp::bulk(out, &v),
        None => resp::null(out, r3),
    };
    if nx || xx {
        let exists = node.store.contains(key);
        if (nx && exists) || (xx && !exists) {
            old_or_null(out, old);
            return Flow::Continue;
        }
    }
    match node.local_write(Op::Put, key, value) {
        Ok(_) if get => old_or_null(out, old),
        Ok(_) => resp::simple(out, b"OK"),
        Err(Refused(why)) => refused(out, &why),
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
