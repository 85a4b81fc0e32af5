//! The server basics: PING, ECHO, SELECT, QUIT, TIME, ROLE, WAIT, the
//! saves (BGREWRITEAOF, BGSAVE, SAVE, LASTSAVE, and kvstore's COMPACT),
//! and FUNCTION, which has nothing to manage here.
//!
//! A "save" is a log compaction: it rewrites the log as a snapshot of the
//! live data, which is what Redis's RDB save and AOF rewrite both amount to
//! for a server whose only file is its log.

use std::time::Duration;

use super::command::{help_reply, subcommand};
use super::{CommandSpec, Ctx, Flow, refused, wrong_args};
use crate::node::clients::Block;
use crate::proto::resp;
use crate::repl::link::LinkState;

use super::flag::*;

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

/// `TIME`: seconds and microseconds since the epoch, as bulk strings.
pub fn time(cx: &mut Ctx<'_>) -> Flow {
    let us = cx.node.unix_micros();
    resp::array(cx.out, 2);
    resp::bulk(cx.out, (us / 1_000_000).to_string().as_bytes());
    resp::bulk(cx.out, (us % 1_000_000).to_string().as_bytes());
    Flow::Continue
}

/// `ROLE`: every node of a kvstore cluster takes writes, so each answers
/// as a Redis master: its replication offset (the Lamport counter of its
/// writes), then each connected peer with the counter up to which the peer
/// has acknowledged holding this node's writes.
pub fn role(cx: &mut Ctx<'_>) -> Flow {
    let (node, out) = (&*cx.node, &mut *cx.out);
    if let Some(e) = node.election().filter(|e| !e.leading()) {
        // A follower: as a Redis replica answers, naming its leader.
        let (host, port, link_up) = node.leader_link();
        resp::array(out, 5);
        resp::bulk(out, b"slave");
        resp::bulk(out, host.as_bytes());
        resp::int(out, port.parse().unwrap_or(0));
        resp::bulk(
            out,
            if e.leader.is_none() {
                b"connect" as &[u8]
            } else if link_up {
                b"connected"
            } else {
                b"connecting"
            },
        );
        resp::int(out, node.store.clock() as i64);
        return Flow::Continue;
    }
    let up: Vec<_> = node.repl.links.iter().filter(|l| is_up(l.state)).collect();
    resp::array(out, 3);
    resp::bulk(out, b"master");
    resp::int(out, node.store.clock() as i64);
    resp::array(out, up.len());
    for l in up {
        resp::array(out, 3);
        resp::bulk(out, l.addr.ip().to_string().as_bytes());
        resp::bulk(out, l.addr.port().to_string().as_bytes());
        resp::bulk(out, l.acked.to_string().as_bytes());
    }
    Flow::Continue
}

/// `LEADER`: one line, `LEADER <id> <host:port> EPOCH <n>`, or `LEADER
/// NONE EPOCH <n>` while there is none (leader mode); the same as a simple
/// string over RESP.
pub fn leader(cx: &mut Ctx<'_>) -> Flow {
    match cx.node.leader_line() {
        Some(line) => resp::simple(cx.out, line.as_bytes()),
        None => resp::error(cx.out, format!("ERR {NOT_LEADER_MODE}").as_bytes()),
    }
    Flow::Continue
}

/// What `LEADER` says outside leader mode.
pub const NOT_LEADER_MODE: &str = "not in leader mode: every node takes writes (start the nodes with --election bully)";

/// Whether a link's peer is connected and past the handshake (its
/// acknowledgements are current).
pub(crate) fn is_up(s: LinkState) -> bool {
    matches!(s, LinkState::Syncing { .. } | LinkState::Connected)
}

/// `WAIT numreplicas timeout`: how many peers hold this client's writes
/// (have acknowledged this node's writes up to the client's last one).
/// Answers at once if enough do (or inside a transaction, as Redis does);
/// otherwise the client blocks until they do or `timeout` ms pass (0:
/// forever), without holding up the loop.
pub fn wait(cx: &mut Ctx<'_>) -> Flow {
    let Some(replicas) = resp::parse_int(cx.args.get(1)) else {
        resp::error(cx.out, b"ERR value is not an integer or out of range");
        return Flow::Continue;
    };
    let timeout = match resp::parse_int(cx.args.get(2)) {
        None => {
            resp::error(cx.out, b"ERR timeout is not an integer or out of range");
            return Flow::Continue;
        }
        Some(t) if t < 0 => {
            resp::error(cx.out, b"ERR timeout is negative");
            return Flow::Continue;
        }
        Some(t) => t as u64,
    };
    let target = cx.session.last_write;
    let have = cx.node.peers_holding(target);
    if have >= replicas || cx.session.in_exec {
        resp::int(cx.out, have);
        return Flow::Continue;
    }
    let deadline = (timeout > 0).then(|| cx.node.now + Duration::from_millis(timeout));
    if cx.node.block(cx.session, Block::Wait { target, replicas, deadline }) {
        return Flow::Block;
    }
    resp::int(cx.out, have);
    Flow::Continue
}

/// `BGREWRITEAOF` / `COMPACT`: starts a log compaction.
pub fn bgrewriteaof(cx: &mut Ctx<'_>) -> Flow {
    match cx.node.start_compaction() {
        Ok(true) => resp::simple(cx.out, b"Background append only file rewriting started"),
        Ok(false) => resp::error(cx.out, b"ERR Background append only file rewriting already in progress"),
        Err(e) => refused(cx.out, &e),
    }
    Flow::Continue
}

/// `BGSAVE [SCHEDULE]`: starts a log compaction.
pub fn bgsave(cx: &mut Ctx<'_>) -> Flow {
    if cx.args.len() > 2 || (cx.args.len() == 2 && !cx.args.get(1).eq_ignore_ascii_case(b"SCHEDULE")) {
        resp::error(cx.out, b"ERR syntax error");
        return Flow::Continue;
    }
    match cx.node.start_compaction() {
        Ok(true) => resp::simple(cx.out, b"Background saving started"),
        Ok(false) => resp::error(cx.out, b"ERR Background save already in progress"),
        Err(e) => refused(cx.out, &e),
    }
    Flow::Continue
}

/// `SAVE`: compacts the log and answers once the compacted log has
/// replaced the old one. The compaction runs as BGSAVE's does, a chunk per
/// loop iteration: only this client waits.
pub fn save(cx: &mut Ctx<'_>) -> Flow {
    if cx.session.in_exec {
        resp::error(cx.out, b"ERR Command not allowed inside a transaction");
        return Flow::Continue;
    }
    let ended = cx.node.stats.rewrites_ended;
    match cx.node.start_compaction() {
        Ok(true) if cx.node.block(cx.session, Block::Save { ended }) => return Flow::Block,
        Ok(true) => resp::simple(cx.out, b"Background saving started"),
        Ok(false) => resp::error(cx.out, b"ERR Background save already in progress"),
        Err(e) => refused(cx.out, &e),
    }
    Flow::Continue
}

/// `LASTSAVE`: when the log last became compact (the end of the last
/// compaction, or the server's start), in seconds since the epoch.
pub fn lastsave(cx: &mut Ctx<'_>) -> Flow {
    resp::int(cx.out, i64::from(cx.node.stats.last_save));
    Flow::Continue
}

/// FUNCTION's subcommands: kvstore has no scripting engine, so there is
/// never a function to list, run, delete or kill.
pub const FUNCTION_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::sub("FUNCTION|FLUSH", -2, WRITE | NOSCRIPT, function_flush)
        .doc("Deletes all libraries and functions.", "7.0.0", "scripting")
        .complexity("O(N) where N is the number of functions deleted"),
    CommandSpec::sub("FUNCTION|LIST", -2, NOSCRIPT, function_list)
        .doc("Returns information about all libraries.", "7.0.0", "scripting")
        .complexity("O(N) where N is the number of functions"),
    CommandSpec::sub("FUNCTION|STATS", 2, NOSCRIPT, function_stats)
        .doc("Returns information about a function during execution.", "7.0.0", "scripting")
        .complexity("O(1)"),
    CommandSpec::sub("FUNCTION|DELETE", 3, WRITE | NOSCRIPT, function_delete)
        .doc("Deletes a library and its functions.", "7.0.0", "scripting")
        .complexity("O(1)"),
    CommandSpec::sub("FUNCTION|KILL", 2, NOSCRIPT, function_kill)
        .doc("Terminates a function during execution.", "7.0.0", "scripting")
        .complexity("O(1)"),
    CommandSpec::sub("FUNCTION|LOAD", -3, WRITE | DENYOOM | NOSCRIPT, function_load)
        .doc("Creates a library.", "7.0.0", "scripting")
        .complexity("O(1) (considering compilation time is redundant)"),
    CommandSpec::sub("FUNCTION|HELP", 2, LOADING | STALE, function_help)
        .doc("Returns helpful text about the different subcommands.", "7.0.0", "scripting")
        .complexity("O(1)"),
];

/// `FUNCTION <subcommand> ...`.
pub fn function(cx: &mut Ctx<'_>) -> Flow {
    subcommand(cx, "FUNCTION", FUNCTION_SUBCOMMANDS)
}

fn function_flush(cx: &mut Ctx<'_>) -> Flow {
    let a = cx.args;
    if a.len() > 3
        || (a.len() == 3 && !(a.get(2).eq_ignore_ascii_case(b"ASYNC") || a.get(2).eq_ignore_ascii_case(b"SYNC")))
    {
        resp::error(cx.out, b"ERR FUNCTION FLUSH only supports SYNC|ASYNC option");
    } else {
        resp::simple(cx.out, b"OK");
    }
    Flow::Continue
}

/// `FUNCTION LIST [WITHCODE] [LIBRARYNAME pattern]`: no library.
fn function_list(cx: &mut Ctx<'_>) -> Flow {
    let a = cx.args;
    let (mut code, mut name) = (false, false);
    let mut i = 2;
    while i < a.len() {
        let arg = a.get(i);
        if !code && arg.eq_ignore_ascii_case(b"WITHCODE") {
            code = true;
        } else if !name && arg.eq_ignore_ascii_case(b"LIBRARYNAME") {
            if i + 1 >= a.len() {
                resp::error(cx.out, b"ERR library name argument was not given");
                return Flow::Continue;
            }
            name = true;
            i += 1;
        } else {
            let msg = format!("ERR Unknown argument {}", String::from_utf8_lossy(arg));
            resp::error(cx.out, msg.as_bytes());
            return Flow::Continue;
        }
        i += 1;
    }
    resp::array(cx.out, 0);
    Flow::Continue
}

/// `FUNCTION STATS`: nothing runs, and there is no engine.
fn function_stats(cx: &mut Ctx<'_>) -> Flow {
    let r3 = cx.resp3();
    resp::map(cx.out, 2, r3);
    resp::bulk(cx.out, b"running_script");
    resp::null(cx.out, r3);
    resp::bulk(cx.out, b"engines");
    resp::map(cx.out, 0, r3);
    Flow::Continue
}

fn function_delete(cx: &mut Ctx<'_>) -> Flow {
    resp::error(cx.out, b"ERR Library not found");
    Flow::Continue
}

fn function_kill(cx: &mut Ctx<'_>) -> Flow {
    resp::error(cx.out, b"NOTBUSY No scripts in execution right now.");
    Flow::Continue
}

fn function_load(cx: &mut Ctx<'_>) -> Flow {
    resp::error(cx.out, b"ERR kvstore has no scripting engine: functions cannot be loaded");
    Flow::Continue
}

fn function_help(cx: &mut Ctx<'_>) -> Flow {
    let lines: &[&str] = &[
        "LOAD [REPLACE] <FUNCTION CODE>",
        "    Not supported: kvstore has no scripting engine.",
        "DELETE <LIBRARY NAME>",
        "    Delete the given library (there are none).",
        "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
        "    Return general information on all the libraries (there are none).",
        "FLUSH [ASYNC|SYNC]",
        "    Delete all the libraries (there are none).",
        "KILL",
        "    Kill the current running function (none ever runs).",
        "STATS",
        "    Return information about the current function running.",
    ];
    help_reply(cx.out, "FUNCTION", lines);
    Flow::Continue
}
