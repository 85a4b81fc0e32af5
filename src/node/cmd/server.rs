//! The server and connection basics: PING, ECHO, SELECT, QUIT,
//! BGREWRITEAOF (and kvstore's COMPACT), and COMMAND, which describes the
//! command table itself.

use super::{COMMANDS, CommandSpec, Ctx, Flow, flag, lookup, refused, wrong_args};
use crate::proto::resp;

/// `PING [message]`.
pub fn ping(cx: &mut Ctx<'_>) -> Flow {
    match cx.args.len() {
        1 => resp::simple(cx.out, b"PONG"),
        2 => resp::bulk(cx.out, cx.args.get(1)),
        _ => wrong_args(cx.out, "ping"),
    }
    Flow::Continue
}

/// `ECHO message`.
pub fn echo(cx: &mut Ctx<'_>) -> Flow {
    resp::bulk(cx.out, cx.args.get(1));
    Flow::Continue
}

/// `SELECT 0`: there is one database.
pub fn select(cx: &mut Ctx<'_>) -> Flow {
    match resp::parse_int(cx.args.get(1)) {
        Some(0) => resp::simple(cx.out, b"OK"),
        Some(_) => resp::error(cx.out, b"ERR DB index is out of range"),
        None => resp::error(cx.out, b"ERR value is not an integer or out of range"),
    }
    Flow::Continue
}

/// `QUIT`: OK, then the connection closes.
pub fn quit(cx: &mut Ctx<'_>) -> Flow {
    resp::simple(cx.out, b"OK");
    Flow::Close
}

/// `BGREWRITEAOF` / `COMPACT`: starts a log compaction.
pub fn bgrewriteaof(cx: &mut Ctx<'_>) -> Flow {
    match cx.node.start_compaction() {
        Ok(true) => resp::simple(cx.out, b"Background append only file rewriting started"),
        Ok(false) => resp::simple(cx.out, b"Background append only file rewriting already in progress"),
        Err(e) => refused(cx.out, &e),
    }
    Flow::Continue
}

/// `COMMAND [COUNT | DOCS | INFO name ...]`, from the command table.
pub fn command(cx: &mut Ctx<'_>) -> Flow {
    let (a, r3, out) = (cx.args, cx.resp3(), &mut *cx.out);
    let sub = if a.len() > 1 { a.get(1).to_ascii_uppercase() } else { Vec::new() };
    let listed = || COMMANDS.iter().filter(|c| c.listed());
    match sub.as_slice() {
        b"" => {
            resp::array(out, listed().count());
            for c in listed() {
                command_info(out, c, r3);
            }
        }
        b"COUNT" => resp::int(out, listed().count() as i64),
        b"DOCS" => resp::map(out, 0, r3),
        b"INFO" => {
            resp::array(out, a.len() - 2);
            for name in a.iter(2) {
                match lookup(&name.to_ascii_uppercase()).filter(|c| c.listed()) {
                    Some(c) => command_info(out, c, r3),
                    None => resp::null_array(out, r3),
                }
            }
        }
        _ => resp::error(out, b"ERR unknown subcommand or wrong number of arguments for 'command'"),
    }
    Flow::Continue
}

/// One command as COMMAND describes it: name, arity, flags, first key,
/// last key, step.
fn command_info(out: &mut Vec<u8>, c: &CommandSpec, r3: bool) {
    resp::array(out, 6);
    resp::bulk(out, c.name.to_ascii_lowercase().as_bytes());
    resp::int(out, i64::from(c.arity));
    let shown = flag::SHOWN.iter().filter(|(f, _)| c.flags & f != 0);
    resp::set(out, shown.clone().count(), r3);
    for (_, name) in shown {
        resp::simple(out, name.as_bytes());
    }
    resp::int(out, i64::from(c.keys.0));
    resp::int(out, i64::from(c.keys.1));
    resp::int(out, i64::from(c.keys.2));
}
