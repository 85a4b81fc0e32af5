//! Command execution: arguments in, reply bytes out. Pure with respect to
//! I/O: a command touches the [`Core`] and appends to the connection's
//! output buffer, never a socket.
//!
//! The text protocol has the seed's small command set and line replies;
//! RESP has Redis's names, arities and error texts, so Redis clients and
//! tools work unmodified. Both reach the same store and the same write path.

use crate::proto::{Argv, resp, text};
use crate::storage::record::{Op, Record, Version};
use crate::storage::store::Applied;

use crate::node::{Core, Refused};

/// Which protocol a request came in, and so which reply encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// The line protocol.
    Text,
    /// RESP (version per connection, see [`Client::resp3`]).
    Resp,
}

/// A client-supplied name (CLIENT SETNAME, SETINFO).
pub type Name = Box<[u8]>;

/// Static facts about a RESP command: name, arity as Redis states it
/// (negative: at least), flags, first key, last key, key step.
type CommandInfo = (&'static str, i64, &'static [&'static str], i64, i64, i64);

/// Per-connection state that commands read and change.
#[derive(Debug, Default)]
pub struct Client {
    /// CLIENT ID.
    pub id: u64,
    /// RESP3 replies (after `HELLO 3`).
    pub resp3: bool,
    /// CLIENT SETNAME.
    pub name: Option<Box<[u8]>>,
    /// CLIENT SETINFO LIB-NAME / LIB-VER.
    pub lib: (Option<Name>, Option<Name>),
    /// Set by `REPLHELLO`: this connection is peer node N's link to us.
    pub peer: Option<u16>,
    /// The peer's link has finished catching up: its frames are in order.
    pub peer_ordered: bool,
    /// A transaction being queued (MULTI until EXEC or DISCARD).
    pub multi: Option<Multi>,
}

/// The commands queued between MULTI and EXEC. EXEC runs them one after the
/// other in a single call: on one thread, nothing else runs in between,
/// which is all the isolation MULTI/EXEC promises.
#[derive(Debug, Default)]
pub struct Multi {
    /// The queued requests, re-encoded as RESP, back to back.
    queued: Vec<u8>,
    count: usize,
    /// A command was refused while queueing (unknown, wrong arity, too
    /// much queued): EXEC aborts, as Redis does.
    failed: bool,
}

/// What the connection does after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on reading requests.
    Continue,
    /// Flush the replies, then close (QUIT).
    Close,
}

/// Upper-cases a command name into `buf`; names longer than it match nothing.
fn upper<'a>(name: &[u8], buf: &'a mut [u8; 24]) -> &'a [u8] {
    if name.len() > buf.len() {
        return b"";
    }
    let dst = &mut buf[..name.len()];
    dst.copy_from_slice(name);
    dst.make_ascii_uppercase();
    dst
}

/// Executes one request. `buf` is the input the argv spans point into.
pub fn execute(core: &mut Core, client: &mut Client, proto: Proto, argv: &Argv, buf: &[u8], out: &mut Vec<u8>) -> Flow {
    core.stats.commands += 1;
    let args = Args { argv, buf };
    match proto {
        Proto::Text => text_command(core, args, out),
        Proto::Resp => resp_command(core, client, args, out),
    }
}

#[derive(Clone, Copy)]
struct Args<'a> {
    argv: &'a Argv,
    buf: &'a [u8],
}

impl<'a> Args<'a> {
    fn len(&self) -> usize {
        self.argv.len()
    }
    fn get(&self, i: usize) -> &'a [u8] {
        self.argv.get(self.buf, i)
    }
    fn iter(&self, from: usize) -> impl Iterator<Item = &'a [u8]> + 'a {
        let (argv, buf) = (self.argv, self.buf);
        (from..argv.len()).map(move |i| argv.get(buf, i))
    }
}

// ---------------------------------------------------------------- text

fn text_command(core: &mut Core, a: Args<'_>, out: &mut Vec<u8>) -> Flow {
    let mut nb = [0u8; 24];
    let name = upper(a.get(0), &mut nb);
    let n = a.len();
    let usage = |out: &mut Vec<u8>, u: &str| text::line(out, format!("ERROR usage: {u}").as_bytes());
    match name {
        b"PUT" | b"REPL_PUT" if n != 3 => {
            usage(out, if name == b"PUT" { "PUT <key> <value>" } else { "REPL_PUT <key> <value>" })
        }
        b"PUT" => text_write(out, core.local_write(Op::Put, a.get(1), a.get(2)), false),
        b"REPL_PUT" => text_write(out, core.manual_replica_write(Op::Put, a.get(1), a.get(2)), false),
        b"GET" if n != 2 => usage(out, "GET <key>"),
        b"GET" => match core.store.get(a.get(1)) {
            Some(v) if memchr::memchr2(b'\n', b'\r', v).is_some() => {
                core.stats.hits += 1;
                text::line(out, b"ERROR the value holds a line break; read it over RESP (redis-cli)");
            }
            Some(v) => {
                core.stats.hits += 1;
                text::line(out, v);
            }
            None => {
                core.stats.misses += 1;
                text::line(out, b"NOT_FOUND");
            }
        },
        b"DEL" | b"REPL_DEL" if n != 2 => usage(out, if name == b"DEL" { "DEL <key>" } else { "REPL_DEL <key>" }),
        b"DEL" | b"REPL_DEL" => {
            if !core.store.contains(a.get(1)) {
                text::line(out, b"NOT_FOUND");
            } else if name == b"DEL" {
                text_write(out, core.local_write(Op::Del, a.get(1), b""), true);
            } else {
                text_write(out, core.manual_replica_write(Op::Del, a.get(1), b""), true);
            }
        }
        b"PING" => text::line(out, b"PONG"),
        b"STATS" => {
            for (k, v) in stat_pairs(core) {
                out.extend_from_slice(b"STAT ");
                out.extend_from_slice(k.as_bytes());
                out.push(b' ');
                text::line(out, v.as_bytes());
            }
            text::line(out, b"END");
        }
        b"COMPACT" => match core.start_compaction() {
            Ok(_) => text::line(out, b"OK"),
            Err(e) => text::line(out, format!("ERROR {e}").as_bytes()),
        },
        b"QUIT" => return Flow::Close,
        _ => text::line(out, b"ERROR UNKNOWN COMMAND"),
    }
    Flow::Continue
}

fn text_write(out: &mut Vec<u8>, r: Result<Applied, Refused>, is_delete: bool) {
    match r {
        Ok(Applied::Done { was_live: false }) if is_delete => text::line(out, b"NOT_FOUND"),
        Ok(_) => text::line(out, b"OK"),
        Err(Refused(why)) => text::line(out, format!("ERROR {why}").as_bytes()),
    }
}

/// Name/value pairs for STATS (and the kvstore part of INFO).
pub fn stat_pairs(core: &Core) -> Vec<(String, String)> {
    let s = &core.stats;
    let mut v: Vec<(String, String)> = vec![
        ("node_id".into(), core.id.to_string()),
        ("keys".into(), core.store.len().to_string()),
        ("tombstones".into(), core.store.tombstones().to_string()),
        ("connections".into(), s.connected.to_string()),
        ("total_connections".into(), s.total_connections.to_string()),
        ("rejected_connections".into(), s.rejected_connections.to_string()),
        ("commands".into(), s.commands.to_string()),
        ("writes".into(), s.writes.to_string()),
        ("get_hits".into(), s.hits.to_string()),
        ("get_misses".into(), s.misses.to_string()),
        ("protocol_errors".into(), s.protocol_errors.to_string()),
        ("log_path".into(), core.log.path().display().to_string()),
        ("log_bytes".into(), core.log.len().to_string()),
        ("live_data_bytes".into(), core.store.data_bytes().to_string()),
        ("log_write_errors".into(), s.log_write_errors.to_string()),
        ("fsync".into(), core.cfg.fsync.to_string()),
        ("compacting".into(), u8::from(core.compaction.is_some()).to_string()),
        ("compactions".into(), s.compactions.to_string()),
        ("replayed_records".into(), s.replayed.0.to_string()),
        ("replay_ms".into(), s.replayed.1.as_millis().to_string()),
        ("uptime_seconds".into(), core.uptime().to_string()),
        ("peers".into(), core.cluster.links.len().to_string()),
    ];
    if let Some((before, after, took)) = s.last_compaction {
        v.push(("last_compaction_bytes_before".into(), before.to_string()));
        v.push(("last_compaction_bytes_after".into(), after.to_string()));
        v.push(("last_compaction_ms".into(), took.as_millis().to_string()));
    }
    for l in &core.cluster.links {
        let p = format!("peer.{}", l.name);
        let node = l.peer_id.map_or(0, |id| id);
        v.push((format!("{p}.node"), node.to_string()));
        v.push((format!("{p}.state"), l.state.name().to_string()));
        v.push((format!("{p}.queued_bytes"), l.queued.to_string()));
        v.push((format!("{p}.last_sent"), l.sent.to_string()));
        v.push((format!("{p}.last_acked"), l.acked.to_string()));
        v.push((format!("{p}.applied_from"), core.cluster.applied_from(node).to_string()));
        v.push((format!("{p}.resyncs"), l.resyncs.to_string()));
    }
    v
}

// ---------------------------------------------------------------- RESP

/// The RESP commands, for COMMAND and arity errors.
const COMMANDS: &[CommandInfo] = &[
    ("get", 2, &["readonly", "fast"], 1, 1, 1),
    ("set", -3, &["write", "denyoom"], 1, 1, 1),
    ("del", -2, &["write"], 1, -1, 1),
    ("exists", -2, &["readonly", "fast"], 1, -1, 1),
    ("mget", -2, &["readonly", "fast"], 1, -1, 1),
    ("mset", -3, &["write", "denyoom"], 1, -1, 2),
    ("dbsize", 1, &["readonly", "fast"], 0, 0, 0),
    ("flushall", -1, &["write"], 0, 0, 0),
    ("flushdb", -1, &["write"], 0, 0, 0),
    ("ping", -1, &["fast"], 0, 0, 0),
    ("echo", 2, &["fast"], 0, 0, 0),
    ("info", -1, &["loading", "stale"], 0, 0, 0),
    ("command", -1, &["loading", "stale"], 0, 0, 0),
    ("config", -2, &["admin", "loading", "stale"], 0, 0, 0),
    ("select", 2, &["loading", "stale", "fast"], 0, 0, 0),
    ("client", -2, &["loading", "stale"], 0, 0, 0),
    ("hello", -1, &["fast", "loading", "stale"], 0, 0, 0),
    ("quit", -1, &["fast", "loading", "stale"], 0, 0, 0),
    ("bgrewriteaof", 1, &["admin"], 0, 0, 0),
    ("multi", 1, &["noscript", "loading", "stale", "fast"], 0, 0, 0),
    ("exec", 1, &["noscript", "loading", "stale"], 0, 0, 0),
    ("discard", 1, &["noscript", "loading", "stale", "fast"], 0, 0, 0),
    ("watch", -2, &["noscript", "loading", "stale", "fast"], 1, -1, 1),
    ("unwatch", 1, &["noscript", "loading", "stale", "fast"], 0, 0, 0),
];

/// Whether `name` (upper-case) is a RESP command this server knows.
fn known(name: &[u8]) -> bool {
    COMMANDS.iter().any(|c| c.0.as_bytes().eq_ignore_ascii_case(name))
        || matches!(name, b"COMPACT" | b"REPLHELLO" | b"REPL_PUT" | b"REPL_DEL" | b"REPL_FLUSHALL" | b"REPL_SYNCED")
}

fn unknown_command(out: &mut Vec<u8>, a: Args<'_>) {
    let mut msg = format!("ERR unknown command '{}', with args beginning with: ", String::from_utf8_lossy(a.get(0)));
    for arg in a.iter(1).take(8) {
        msg.push_str(&format!("'{}' ", String::from_utf8_lossy(&arg[..arg.len().min(128)])));
    }
    resp::error(out, msg.as_bytes());
}

/// Inside MULTI: queues the command (answering QUEUED) unless it is one
/// that acts on the transaction itself. Returns whether it was handled.
fn queue_in_multi(core: &Core, client: &mut Client, name: &[u8], a: Args<'_>, out: &mut Vec<u8>) -> bool {
    let Some(m) = &mut client.multi else { return false };
    if matches!(name, b"EXEC" | b"DISCARD" | b"MULTI" | b"WATCH" | b"QUIT" | b"RESET") {
        return false;
    }
    if !known(name) {
        unknown_command(out, a);
        m.failed = true;
    } else if !arity_ok(name, a.len()) {
        wrong_args(out, name);
        m.failed = true;
    } else if m.queued.len() > core.cfg.max_request {
        resp::error(out, b"ERR transaction larger than --max-request; it will be discarded");
        m.failed = true;
    } else {
        resp::array(&mut m.queued, a.len());
        for arg in a.iter(0) {
            resp::bulk(&mut m.queued, arg);
        }
        m.count += 1;
        resp::simple(out, b"QUEUED");
    }
    true
}

/// EXEC: runs the queued commands, their replies as one array.
fn exec(core: &mut Core, client: &mut Client, out: &mut Vec<u8>) {
    match client.multi.take() {
        None => resp::error(out, b"ERR EXEC without MULTI"),
        Some(m) if m.failed => resp::error(out, b"EXECABORT Transaction discarded because of previous errors."),
        Some(m) => {
            resp::array(out, m.count);
            // The queue holds requests this server encoded itself from
            // requests it had already accepted: they parse, within any limit.
            let limits = crate::proto::Limits { max_line: 64, max_bulk: usize::MAX, max_args: usize::MAX };
            let mut argv = Argv::new();
            let mut pos = 0;
            while let Ok(crate::proto::Parsed::Request { consumed }) = resp::parse(&m.queued[pos..], &mut argv, &limits)
            {
                let a = Args { argv: &argv, buf: &m.queued[pos..] };
                let _ = resp_command(core, client, a, out);
                pos += consumed;
                if pos >= m.queued.len() {
                    break;
                }
            }
        }
    }
}

/// Whether `n` arguments fit the arity of `name` (upper-case). The table is
/// ordered hottest first, so GET and SET are found at once.
fn arity_ok(name: &[u8], n: usize) -> bool {
    match COMMANDS.iter().find(|c| c.0.as_bytes().eq_ignore_ascii_case(name)) {
        Some(&(_, arity, ..)) if arity >= 0 => n as i64 == arity,
        Some(&(_, arity, ..)) => n as i64 >= -arity,
        None => true,
    }
}

fn wrong_args(out: &mut Vec<u8>, name: &[u8]) {
    let lower = String::from_utf8_lossy(name).to_lowercase();
    resp::error(out, format!("ERR wrong number of arguments for '{lower}' command").as_bytes());
}

fn refused(out: &mut Vec<u8>, why: &str) {
    resp::error(out, format!("ERR {why}").as_bytes());
}

fn resp_command(core: &mut Core, client: &mut Client, a: Args<'_>, out: &mut Vec<u8>) -> Flow {
    let mut nb = [0u8; 24];
    let name = upper(a.get(0), &mut nb);
    let n = a.len();
    let r3 = client.resp3;
    if client.multi.is_some() && queue_in_multi(core, client, name, a, out) {
        return Flow::Continue;
    }
    if !arity_ok(name, n) {
        wrong_args(out, name);
        return Flow::Continue;
    }
    match name {
        b"GET" => match core.store.get(a.get(1)) {
            Some(v) => {
                core.stats.hits += 1;
                resp::bulk(out, v);
            }
            None => {
                core.stats.misses += 1;
                resp::null(out, r3);
            }
        },
        b"SET" => set(core, a, r3, out),
        b"DEL" => {
            let mut deleted = 0;
            for key in a.iter(1) {
                if core.store.contains(key) {
                    match core.local_write(Op::Del, key, b"") {
                        Ok(_) => deleted += 1,
                        Err(Refused(why)) => return refused_flow(out, &why),
                    }
                }
            }
            resp::int(out, deleted);
        }
        b"EXISTS" => resp::int(out, a.iter(1).filter(|k| core.store.contains(k)).count() as i64),
        b"MGET" => {
            resp::array(out, n - 1);
            for key in a.iter(1) {
                match core.store.get(key) {
                    Some(v) => resp::bulk(out, v),
                    None => resp::null(out, r3),
                }
            }
        }
        b"MSET" if n.is_multiple_of(2) => wrong_args(out, name),
        b"MSET" => {
            for i in (1..n).step_by(2) {
                if let Err(Refused(why)) = core.local_write(Op::Put, a.get(i), a.get(i + 1)) {
                    return refused_flow(out, &why);
                }
            }
            resp::simple(out, b"OK");
        }
        b"DBSIZE" => resp::int(out, core.store.len() as i64),
        b"FLUSHALL" | b"FLUSHDB" => {
            if a.iter(1).any(|o| !o.eq_ignore_ascii_case(b"ASYNC") && !o.eq_ignore_ascii_case(b"SYNC")) || n > 2 {
                resp::error(out, b"ERR syntax error");
            } else {
                match core.local_write(Op::FlushAll, b"", b"") {
                    Ok(_) => resp::simple(out, b"OK"),
                    Err(Refused(why)) => refused(out, &why),
                }
            }
        }
        b"PING" if n > 2 => wrong_args(out, name),
        b"PING" if n == 2 => resp::bulk(out, a.get(1)),
        b"PING" => resp::simple(out, b"PONG"),
        b"ECHO" => resp::bulk(out, a.get(1)),
        b"SELECT" => match resp::parse_int(a.get(1)) {
            Some(0) => resp::simple(out, b"OK"),
            Some(_) => resp::error(out, b"ERR DB index is out of range"),
            None => resp::error(out, b"ERR value is not an integer or out of range"),
        },
        b"INFO" => {
            let body = info(core, a);
            resp::verbatim(out, b"txt", body.as_bytes(), r3);
        }
        b"COMMAND" => command(a, r3, out),
        b"CONFIG" => config(core, a, r3, out),
        b"CLIENT" => client_cmd(client, a, out),
        b"HELLO" => hello(client, a, out),
        b"QUIT" => {
            resp::simple(out, b"OK");
            return Flow::Close;
        }
        b"BGREWRITEAOF" | b"COMPACT" => match core.start_compaction() {
            Ok(true) => resp::simple(out, b"Background append only file rewriting started"),
            Ok(false) => resp::simple(out, b"Background append only file rewriting already in progress"),
            Err(e) => refused(out, &e),
        },
        b"REPLHELLO" | b"REPL_PUT" | b"REPL_DEL" | b"REPL_FLUSHALL" | b"REPL_SYNCED" => {
            replication(core, client, name, a, out);
        }
        b"MULTI" if client.multi.is_some() => resp::error(out, b"ERR MULTI calls can not be nested"),
        b"MULTI" => {
            client.multi = Some(Multi::default());
            resp::simple(out, b"OK");
        }
        b"EXEC" => exec(core, client, out),
        b"DISCARD" => match client.multi.take() {
            Some(_) => resp::simple(out, b"OK"),
            None => resp::error(out, b"ERR DISCARD without MULTI"),
        },
        b"WATCH" => {
            if let Some(m) = &mut client.multi {
                m.failed = true;
            }
            resp::error(out, b"ERR WATCH is not supported: MULTI/EXEC runs atomically on kvstore's single thread");
        }
        b"UNWATCH" => resp::simple(out, b"OK"),
        _ => unknown_command(out, a),
    }
    Flow::Continue
}

fn refused_flow(out: &mut Vec<u8>, why: &str) -> Flow {
    refused(out, why);
    Flow::Continue
}

/// `SET key value [NX|XX] [GET]`, with a clear error for expiry options.
fn set(core: &mut Core, a: Args<'_>, r3: bool, out: &mut Vec<u8>) {
    let (key, value) = (a.get(1), a.get(2));
    let (mut nx, mut xx, mut get) = (false, false, false);
    for opt in a.iter(3) {
        let mut ob = [0u8; 24];
        match upper(opt, &mut ob) {
            b"NX" if !xx => nx = true,
            b"XX" if !nx => xx = true,
            b"GET" => get = true,
            b"EX" | b"PX" | b"EXAT" | b"PXAT" | b"KEEPTTL" => {
                return resp::error(
                    out,
                    b"ERR kvstore keys do not expire: EX, PX, EXAT, PXAT and KEEPTTL are not supported",
                );
            }
            _ => return resp::error(out, b"ERR syntax error"),
        }
    }
    let old = if get { core.store.get(key).map(<[u8]>::to_vec) } else { None };
    if nx || xx {
        let exists = core.store.contains(key);
        if (nx && exists) || (xx && !exists) {
            return match old {
                Some(v) => resp::bulk(out, &v),
                None => resp::null(out, r3),
            };
        }
    }
    match core.local_write(Op::Put, key, value) {
        Ok(_) if get => match old {
            Some(v) => resp::bulk(out, &v),
            None => resp::null(out, r3),
        },
        Ok(_) => resp::simple(out, b"OK"),
        Err(Refused(why)) => refused(out, &why),
    }
}

fn command(a: Args<'_>, r3: bool, out: &mut Vec<u8>) {
    let sub = if a.len() > 1 { a.get(1).to_ascii_uppercase() } else { Vec::new() };
    let info = |out: &mut Vec<u8>, c: &CommandInfo| {
        resp::array(out, 6);
        resp::bulk(out, c.0.as_bytes());
        resp::int(out, c.1);
        resp::set(out, c.2.len(), r3);
        for f in c.2 {
            resp::simple(out, f.as_bytes());
        }
        resp::int(out, c.3);
        resp::int(out, c.4);
        resp::int(out, c.5);
    };
    match sub.as_slice() {
        b"" => {
            resp::array(out, COMMANDS.len());
            for c in COMMANDS {
                info(out, c);
            }
        }
        b"COUNT" => resp::int(out, COMMANDS.len() as i64),
        b"DOCS" => resp::map(out, 0, r3),
        b"INFO" => {
            resp::array(out, a.len() - 2);
            for name in a.iter(2) {
                let lower = String::from_utf8_lossy(name).to_lowercase();
                match COMMANDS.iter().find(|c| c.0 == lower) {
                    Some(c) => info(out, c),
                    None => resp::null_array(out, r3),
                }
            }
        }
        _ => resp::error(out, b"ERR unknown subcommand or wrong number of arguments for 'command'"),
    }
}

/// Glob match with `*` and `?`, as CONFIG GET patterns use.
fn glob(pattern: &[u8], s: &[u8]) -> bool {
    match (pattern.split_first(), s.split_first()) {
        (None, None) => true,
        (Some((b'*', rest)), _) => glob(rest, s) || (!s.is_empty() && glob(pattern, &s[1..])),
        (Some((b'?', rest)), Some((_, srest))) => glob(rest, srest),
        (Some((p, rest)), Some((c, srest))) => p.eq_ignore_ascii_case(c) && glob(rest, srest),
        _ => false,
    }
}

fn config(core: &mut Core, a: Args<'_>, r3: bool, out: &mut Vec<u8>) {
    let sub = a.get(1).to_ascii_uppercase();
    match sub.as_slice() {
        b"GET" if a.len() >= 3 => {
            let c = &core.cfg;
            let params: Vec<(&str, String)> = vec![
                ("port", c.listen.port().to_string()),
                ("bind", c.listen.ip().to_string()),
                ("dir", c.dir.display().to_string()),
                ("appendonly", "yes".into()),
                ("appendfsync", c.fsync.to_string()),
                ("appendfilename", "kvstore.aof".into()),
                ("save", String::new()),
                ("databases", "1".into()),
                ("maxclients", c.max_clients.to_string()),
                ("maxmemory", "0".into()),
                ("proto-max-bulk-len", c.limits.max_bulk.to_string()),
                ("client-query-buffer-limit", c.max_request.to_string()),
                ("auto-aof-rewrite-percentage", ((c.compact_multiple - 1.0).max(0.0) * 100.0).round().to_string()),
                ("auto-aof-rewrite-min-size", c.compact_min_bytes.to_string()),
                ("timeout", "0".into()),
            ];
            let hits: Vec<_> = params.iter().filter(|(k, _)| a.iter(2).any(|p| glob(p, k.as_bytes()))).collect();
            resp::map(out, hits.len(), r3);
            for (k, v) in hits {
                resp::bulk(out, k.as_bytes());
                resp::bulk(out, v.as_bytes());
            }
        }
        b"SET" => resp::error(out, b"ERR CONFIG SET is not supported by kvstore; restart with the option (see --help)"),
        b"RESETSTAT" => resp::simple(out, b"OK"),
        _ => resp::error(out, b"ERR unknown subcommand or wrong number of arguments for 'config'"),
    }
}

fn client_cmd(client: &mut Client, a: Args<'_>, out: &mut Vec<u8>) {
    let sub = a.get(1).to_ascii_uppercase();
    match (sub.as_slice(), a.len()) {
        (b"ID", 2) => resp::int(out, client.id as i64),
        (b"GETNAME", 2) => match &client.name {
            Some(n) => resp::bulk(out, n),
            None => resp::null(out, client.resp3),
        },
        (b"SETNAME", 3) => {
            if set_client_name(client, a.get(2), out) {
                resp::simple(out, b"OK");
            }
        }
        (b"SETINFO", 4) => {
            let attr = a.get(2).to_ascii_uppercase();
            let v: Option<Box<[u8]>> = Some(a.get(3).into());
            match attr.as_slice() {
                b"LIB-NAME" => client.lib.0 = v,
                b"LIB-VER" => client.lib.1 = v,
                _ => {
                    let msg = format!("ERR Unrecognized option '{}'", String::from_utf8_lossy(a.get(2)));
                    return resp::error(out, msg.as_bytes());
                }
            }
            resp::simple(out, b"OK");
        }
        (b"INFO", 2) => {
            let line = client_line(client);
            resp::verbatim(out, b"txt", line.as_bytes(), client.resp3);
        }
        (b"LIST", _) => {
            // Only this client's line: the server keeps no registry for commands.
            let line = client_line(client);
            resp::verbatim(out, b"txt", line.as_bytes(), client.resp3);
        }
        _ => {
            let msg = format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
                String::from_utf8_lossy(a.get(1))
            );
            resp::error(out, msg.as_bytes());
        }
    }
}

/// Sets (or, when empty, clears) the connection's name, as CLIENT SETNAME
/// and HELLO SETNAME do; a name with spaces or control bytes is refused,
/// since CLIENT LIST/INFO print it unquoted. Returns whether it was set.
fn set_client_name(client: &mut Client, name: &[u8], out: &mut Vec<u8>) -> bool {
    if name.iter().any(|&c| c <= b' ' || c > b'~') {
        resp::error(out, b"ERR Client names cannot contain spaces, newlines or special characters.");
        return false;
    }
    client.name = (!name.is_empty()).then(|| name.into());
    true
}

fn client_line(c: &Client) -> String {
    let s = |b: &Option<Box<[u8]>>| b.as_deref().map(String::from_utf8_lossy).unwrap_or_default().into_owned();
    format!(
        "id={} name={} resp={} lib-name={} lib-ver={}\n",
        c.id,
        s(&c.name),
        if c.resp3 { 3 } else { 2 },
        s(&c.lib.0),
        s(&c.lib.1)
    )
}

fn hello(client: &mut Client, a: Args<'_>, out: &mut Vec<u8>) {
    let mut resp3 = client.resp3;
    let mut i = 1;
    if a.len() > 1 {
        match resp::parse_int(a.get(1)) {
            Some(2) => resp3 = false,
            Some(3) => resp3 = true,
            Some(_) => return resp::error(out, b"NOPROTO unsupported protocol version"),
            None => return resp::error(out, b"ERR Protocol version is not an integer or out of range"),
        }
        i = 2;
    }
    let mut name = None;
    while i < a.len() {
        let opt = a.get(i).to_ascii_uppercase();
        match opt.as_slice() {
            // No users or passwords are configured: like Redis's default
            // user with nopass, any credentials are accepted.
            b"AUTH" if i + 2 < a.len() => i += 3,
            b"SETNAME" if i + 1 < a.len() => {
                name = Some(a.get(i + 1));
                i += 2;
            }
            _ => {
                let msg = format!("ERR Syntax error in HELLO option '{}'", String::from_utf8_lossy(a.get(i)));
                return resp::error(out, msg.as_bytes());
            }
        }
    }
    // As in Redis, a refused name fails the whole HELLO: the protocol stays.
    if let Some(n) = name
        && !set_client_name(client, n, out)
    {
        return;
    }
    client.resp3 = resp3;
    resp::map(out, 7, resp3);
    for (k, v) in [("server", "redis"), ("version", REDIS_VERSION)] {
        resp::bulk(out, k.as_bytes());
        resp::bulk(out, v.as_bytes());
    }
    resp::bulk(out, b"proto");
    resp::int(out, if resp3 { 3 } else { 2 });
    resp::bulk(out, b"id");
    resp::int(out, client.id as i64);
    resp::bulk(out, b"mode");
    resp::bulk(out, b"standalone");
    resp::bulk(out, b"role");
    resp::bulk(out, b"master");
    resp::bulk(out, b"modules");
    resp::array(out, 0);
}

/// The Redis version kvstore answers as: the command set and replies
/// follow Redis 7.2 where they overlap.
pub const REDIS_VERSION: &str = "7.2.0";

fn info(core: &Core, a: Args<'_>) -> String {
    let wanted: Vec<String> = a.iter(1).map(|s| String::from_utf8_lossy(s).to_lowercase()).collect();
    let all = wanted.is_empty() || wanted.iter().any(|w| w == "all" || w == "everything" || w == "default");
    let want = |s: &str| all || wanted.iter().any(|w| w == s);
    let c = &core.cfg;
    let s = &core.stats;
    let mut o = String::new();
    let section = |o: &mut String, name: &str, fields: Vec<(String, String)>| {
        if want(&name.to_lowercase()) {
            if !o.is_empty() {
                o.push_str("\r\n");
            }
            o.push_str(&format!("# {name}\r\n"));
            for (k, v) in fields {
                o.push_str(&format!("{k}:{v}\r\n"));
            }
        }
    };
    let f = |k: &str, v: String| (k.to_string(), v);
    section(
        &mut o,
        "Server",
        vec![
            f("redis_version", REDIS_VERSION.into()),
            f("redis_mode", "standalone".into()),
            f("kvstore_version", env!("CARGO_PKG_VERSION").into()),
            f("os", std::env::consts::OS.into()),
            f("arch_bits", (usize::BITS).to_string()),
            f("multiplexing_api", "epoll".into()),
            f("process_id", std::process::id().to_string()),
            f("tcp_port", c.listen.port().to_string()),
            f("uptime_in_seconds", core.uptime().to_string()),
            f("uptime_in_days", (core.uptime() / 86_400).to_string()),
            f("executable", std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default()),
        ],
    );
    section(
        &mut o,
        "Clients",
        vec![f("connected_clients", s.connected.to_string()), f("maxclients", c.max_clients.to_string())],
    );
    section(
        &mut o,
        "Persistence",
        vec![
            f("loading", "0".into()),
            f("aof_enabled", "1".into()),
            f("aof_rewrite_in_progress", u8::from(core.compaction.is_some()).to_string()),
            f("aof_last_write_status", if core.log_down.is_some() { "err" } else { "ok" }.into()),
            f("aof_current_size", core.log.len().to_string()),
            f("aof_fsync", c.fsync.to_string()),
            f("rdb_changes_since_last_save", "0".into()),
        ],
    );
    let mut repl = vec![
        f("role", "master".into()),
        f("connected_slaves", "0".into()),
        f("kvstore_node_id", core.id.to_string()),
        f("kvstore_peers", core.cluster.links.len().to_string()),
    ];
    for (i, l) in core.cluster.links.iter().enumerate() {
        repl.push(f(
            &format!("peer{i}"),
            format!(
                "addr={},node={},state={},queued={},sent={},acked={},resyncs={}",
                l.name,
                l.peer_id.unwrap_or(0),
                l.state.name(),
                l.queued,
                l.sent,
                l.acked,
                l.resyncs
            ),
        ));
    }
    section(&mut o, "Replication", repl);
    section(
        &mut o,
        "Stats",
        vec![
            f("total_connections_received", s.total_connections.to_string()),
            f("total_commands_processed", s.commands.to_string()),
            f("rejected_connections", s.rejected_connections.to_string()),
            f("keyspace_hits", s.hits.to_string()),
            f("keyspace_misses", s.misses.to_string()),
        ],
    );
    let ks = if core.store.is_empty() {
        vec![]
    } else {
        vec![f("db0", format!("keys={},expires=0,avg_ttl=0", core.store.len()))]
    };
    section(&mut o, "Keyspace", ks);
    o
}

/// The receiving side of a peer link (see `net::peer` for the frames).
fn replication(core: &mut Core, client: &mut Client, name: &[u8], a: Args<'_>, out: &mut Vec<u8>) {
    let version = |i: usize| resp::parse_int(a.get(i)).and_then(|v| u64::try_from(v).ok()).map(Version);
    let ack = |out: &mut Vec<u8>, r: Result<u64, Refused>| match r {
        Ok(w) => resp::int(out, w as i64),
        Err(Refused(why)) => refused(out, &why),
    };
    match (name, a.len(), client.peer) {
        (b"REPLHELLO", 2, _) => match resp::parse_int(a.get(1)).and_then(|v| u16::try_from(v).ok()) {
            Some(id) if id == core.id => {
                log::error!("a peer announced node id {id}, which is this node's own id: give every node its own --id");
                resp::error(out, b"ERR node id clash: both nodes use this id");
            }
            Some(id) if id != 0 => {
                client.peer = Some(id);
                client.peer_ordered = false;
                log::debug!("node {id} linked in; it will catch up from {}", core.cluster.watermark(id));
                let hello = format!("HELLO {} {}", core.cluster.watermark(id), core.id);
                resp::simple(out, hello.as_bytes());
            }
            _ => resp::error(out, b"ERR REPLHELLO needs a node id between 1 and 65535"),
        },
        // Without a version, typed by a person: apply here only, as the seed did.
        (b"REPL_PUT", 3, _) => resp_write(out, core.manual_replica_write(Op::Put, a.get(1), a.get(2))),
        (b"REPL_DEL", 2, _) => resp_write(out, core.manual_replica_write(Op::Del, a.get(1), b"")),
        (_, _, None) => resp::error(out, b"ERR replication frames need REPLHELLO first"),
        (b"REPL_PUT", 4, Some(from)) | (b"REPL_DEL", 3, Some(from)) | (b"REPL_FLUSHALL", 2, Some(from)) => {
            let Some(v) = version(a.len() - 1) else { return resp::error(out, b"ERR bad version") };
            let (op, key, value) = match name {
                b"REPL_PUT" => (Op::Put, a.get(1), a.get(2)),
                b"REPL_DEL" => (Op::Del, a.get(1), &b""[..]),
                _ => (Op::FlushAll, &b""[..], &b""[..]),
            };
            let rec = Record { op, flags: 0, version: v, key, value };
            ack(out, core.peer_write(from, client.peer_ordered, rec));
        }
        (b"REPL_SYNCED", 2, Some(from)) => match version(1) {
            Some(Version(counter)) => {
                client.peer_ordered = true;
                ack(out, core.peer_synced(from, counter));
            }
            None => resp::error(out, b"ERR bad counter"),
        },
        _ => wrong_args(out, name),
    }
}

fn resp_write(out: &mut Vec<u8>, r: Result<Applied, Refused>) {
    match r {
        Ok(_) => resp::simple(out, b"OK"),
        Err(Refused(why)) => refused(out, &why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_patterns() {
        assert!(glob(b"*", b"save"));
        assert!(glob(b"save", b"save"));
        assert!(glob(b"app*", b"appendonly"));
        assert!(glob(b"a?pendonly", b"appendonly"));
        assert!(!glob(b"save", b"saves"));
        assert!(!glob(b"x*", b"save"));
    }

    #[test]
    fn arity_follows_redis() {
        assert!(arity_ok(b"GET", 2));
        assert!(!arity_ok(b"GET", 3));
        assert!(arity_ok(b"SET", 5));
        assert!(!arity_ok(b"SET", 2));
        assert!(arity_ok(b"UNKNOWN", 9));
    }

    #[test]
    fn upper_ignores_overlong_names() {
        let mut b = [0u8; 24];
        assert_eq!(upper(b"get", &mut b), b"GET");
        assert_eq!(upper(&[b'a'; 30], &mut b), b"");
    }
}
