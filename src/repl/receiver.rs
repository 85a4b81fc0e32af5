//! The receiving side of a peer link: the frames of [`super::wire`] arrive
//! as RESP requests on an inbound connection (a client that said
//! `REPLHELLO`), and are applied through the node's one write path
//! ([`crate::node::write`]); each is answered with this node's watermark
//! for the sender, which is how the sender learns what it holds.

use super::wire::{self, Frame};
use crate::node::cmd::{Ctx, Flow, refused, upper, wrong_args};
use crate::node::leader;
use crate::node::write::Refused;
use crate::proto::resp;

/// The handler of every `REPL*` frame (see the command table).
pub fn frame(cx: &mut Ctx<'_>) -> Flow {
    let mut nb = [0u8; 24];
    let name = upper(cx.args.get(0), &mut nb);
    if leader::election_frame(cx, name).is_some() {
        return Flow::Continue;
    }
    if name == b"REPL_FWD" {
        return leader::run_forwarded(cx);
    }
    if name == b"REPL_SYNCED" && cx.args.len() >= 3 {
        synced(cx);
        return Flow::Continue;
    }
    let mut args = [&b""[..]; 5];
    let frame = if cx.args.len() <= args.len() {
        for (i, a) in cx.args.iter(0).enumerate() {
            args[i] = a;
        }
        Frame::decode(name, &args[..cx.args.len()])
    } else {
        Frame::BadArity
    };
    let (node, session, out) = (&mut *cx.node, &mut *cx.session, &mut *cx.out);
    let ack = |out: &mut Vec<u8>, r: Result<u64, Refused>| match r {
        Ok(w) => resp::int(out, w as i64),
        Err(Refused(why)) => refused(out, &why),
    };
    match frame {
        Frame::Hello(Some(id)) if id == node.id() => {
            log::error!("a peer announced node id {id}, which is this node's own id: give every node its own --id");
            resp::error(out, b"ERR node id clash: both nodes use this id");
        }
        Frame::Hello(Some(id)) if session.peer_auth.proven().is_some_and(|p| p != id) => {
            resp::error(out, b"ERR REPLHELLO names another node than REPLAUTH proved");
        }
        Frame::Hello(Some(id)) if id != 0 => {
            session.peer = Some(id);
            session.peer_ordered = false;
            node.peer_linked_in(session);
            log::debug!("node {id} linked in; it will catch up from {}", node.repl().watermark(id));
            let mut marks = node.repl().progress.marks().to_vec();
            marks.push((node.id(), node.store().clock()));
            let epoch = node.election().map_or(0, |e| e.epoch);
            wire::hello_reply(out, node.repl().watermark(id), node.id(), epoch, &marks);
        }
        Frame::Hello(_) => resp::error(out, b"ERR REPLHELLO needs a node id between 1 and 65535"),
        // Without a version, typed by a person: apply here only, as the seed did.
        Frame::Manual(op, key, value) => match node.manual_replica_write(op, key, value) {
            Ok(_) => resp::simple(out, b"OK"),
            Err(Refused(why)) => refused(out, &why),
        },
        frame => match (session.peer, frame) {
            (None, _) => resp::error(out, b"ERR replication frames need REPLHELLO first"),
            (Some(_), Frame::Write(None)) => resp::error(out, b"ERR bad version or deadline"),
            (Some(from), Frame::Write(Some(rec))) => ack(out, node.peer_write(from, session.peer_ordered, rec)),
            (Some(from), Frame::Synced(Some(counter))) => {
                session.peer_ordered = true;
                ack(out, node.peer_synced(from, counter));
            }
            (Some(_), Frame::Synced(None)) => resp::error(out, b"ERR bad counter"),
            (Some(_), _) => wrong_args(out, &String::from_utf8_lossy(name)),
        },
    }
    Flow::Continue
}

/// `REPL_SYNCED <counter> <epoch> [<origin> <watermark>]...`: the peer's
/// catch-up scan is through (see [`wire::synced`]).
fn synced(cx: &mut Ctx<'_>) {
    let num = |b: &[u8]| resp::parse_int(b).and_then(|v| u64::try_from(v).ok());
    let Some(from) = cx.session.peer else {
        resp::error(cx.out, b"ERR replication frames need REPLHELLO first");
        return;
    };
    let (Some(counter), Some(tag)) = (num(cx.args.get(1)), num(cx.args.get(2))) else {
        resp::error(cx.out, b"ERR bad counter");
        return;
    };
    if cx.args.len().is_multiple_of(2) {
        crate::node::cmd::wrong_args(cx.out, "REPL_SYNCED");
        return;
    }
    let mut claims = Vec::with_capacity((cx.args.len() - 3) / 2);
    for i in (3..cx.args.len()).step_by(2) {
        match (num(cx.args.get(i)).and_then(|o| u16::try_from(o).ok()), num(cx.args.get(i + 1))) {
            (Some(o), Some(w)) => claims.push((o, w)),
            _ => {
                resp::error(cx.out, b"ERR bad watermark");
                return;
            }
        }
    }
    cx.session.peer_ordered = true;
    match cx.node.peer_synced_all(from, counter, &claims) {
        Ok(w) => {
            cx.node.election_synced(from, tag);
            resp::int(cx.out, w as i64);
        }
        Err(Refused(why)) => refused(cx.out, &why),
    }
}
