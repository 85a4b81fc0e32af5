//! The receiving side of a peer link: the frames of [`super::wire`] arrive
//! as RESP requests on an inbound connection (a client that said
//! `REPLHELLO`), and are applied through the node's one write path
//! ([`crate::node::write`]); each is answered with this node's watermark
//! for the sender, which is how the sender learns what it holds.

use super::wire::{self, Frame};
use crate::node::cmd::{Ctx, Flow, refused, upper, wrong_args};
use crate::node::write::Refused;
use crate::proto::resp;

/// The handler of every `REPL*` frame (see the command table).
pub fn frame(cx: &mut Ctx<'_>) -> Flow {
    let mut nb = [0u8; 24];
    let name = upper(cx.args.get(0), &mut nb);
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
            log::debug!("node {id} linked in; it will catch up from {}", node.repl().watermark(id));
            wire::hello_reply(out, node.repl().watermark(id), node.id());
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
