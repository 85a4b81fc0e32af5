//! The keyspace as a whole: DEL, EXISTS, DBSIZE, FLUSHALL/FLUSHDB.

use super::{Ctx, Flow, refused};
use crate::node::write::Refused;
use crate::proto::resp;
use crate::storage::record::Op;

/// `DEL key [key ...]`: how many existed.
pub fn del(cx: &mut Ctx<'_>) -> Flow {
    let mut deleted = 0;
    for key in cx.args.iter(1) {
        if cx.node.store.contains(key) {
            match cx.node.local_write(Op::Del, key, b"") {
                Ok(_) => deleted += 1,
                Err(Refused(why)) => {
                    refused(cx.out, &why);
                    return Flow::Continue;
                }
            }
        }
    }
    resp::int(cx.out, deleted);
    Flow::Continue
}

/// `EXISTS key [key ...]`: how many exist (a key named twice counts twice).
pub fn exists(cx: &mut Ctx<'_>) -> Flow {
    let n = cx.args.iter(1).filter(|k| cx.node.store.contains(k)).count();
    resp::int(cx.out, n as i64);
    Flow::Continue
}

/// `DBSIZE`.
pub fn dbsize(cx: &mut Ctx<'_>) -> Flow {
    resp::int(cx.out, cx.node.store.len() as i64);
    Flow::Continue
}

/// `FLUSHALL|FLUSHDB [ASYNC|SYNC]`: one write that drops every older one.
pub fn flushall(cx: &mut Ctx<'_>) -> Flow {
    let a = cx.args;
    if a.iter(1).any(|o| !o.eq_ignore_ascii_case(b"ASYNC") && !o.eq_ignore_ascii_case(b"SYNC")) || a.len() > 2 {
        resp::error(cx.out, b"ERR syntax error");
        return Flow::Continue;
    }
    match cx.node.local_write(Op::FlushAll, b"", b"") {
        Ok(_) => resp::simple(cx.out, b"OK"),
        Err(Refused(why)) => refused(cx.out, &why),
    }
    Flow::Continue
}
