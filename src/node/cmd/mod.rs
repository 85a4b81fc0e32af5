//! Commands: one table, [`COMMANDS`], and their handlers, one file per
//! family. A command is one [`CommandSpec`] (name, arity, flags, key
//! positions, a handler per dialect) plus its handler; dispatch, arity
//! errors, MULTI queueing and COMMAND all read the table, so adding a
//! command is one entry and one function.
//!
//! Handlers are pure with respect to I/O: they act on the [`Node`] and
//! append their reply to the connection's output, never a socket.
//!
//! The text protocol has the seed's small command set and line replies
//! ([`text`]); RESP has Redis's names, arities and error texts, so Redis
//! clients and tools work unmodified. An inline command (a line ending in
//! `\r\n`) runs as RESP, so kvstore's own commands have a RESP form too (PUT
//! as SET, STATS as a map). All reach the same store and the same write path.

pub mod auth;
pub mod client;
pub mod command;
pub mod config;
pub mod counters;
pub mod expire;
pub mod glob;
pub mod info;
pub mod keys;
pub mod monitor;
pub mod multi;
pub mod server;
pub mod strings;
pub mod text;

use super::session::Session;
use super::{Node, security};
use crate::proto::{Argv, Dialect, resp};
use crate::repl::receiver;

/// The Redis version kvstore answers as: the command set and replies
/// follow Redis 7.2 where they overlap.
pub const REDIS_VERSION: &str = "7.2.0";

/// What the connection does after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on reading requests.
    Continue,
    /// Flush the replies, then close (QUIT).
    Close,
    /// Close at once, with no reply, and warn: the request looks like HTTP
    /// (see [`crate::node::security`]).
    Attack,
    /// The command has no answer yet (WAIT, SAVE): process no more of the
    /// connection's input until the node has it (see [`super::clients`]).
    Block,
}

/// A request's arguments (the command name is argument 0).
#[derive(Clone, Copy)]
pub struct Args<'a> {
    argv: &'a Argv,
    buf: &'a [u8],
}

impl<'a> Args<'a> {
    /// The arguments `argv`, spans of `buf` (see [`Argv::input`]).
    pub fn new(argv: &'a Argv, buf: &'a [u8]) -> Args<'a> {
        Args { argv, buf }
    }
    /// How many (the name included).
    pub fn len(&self) -> usize {
        self.argv.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.argv.is_empty()
    }
    /// Argument `i`.
    pub fn get(&self, i: usize) -> &'a [u8] {
        self.argv.get(self.buf, i)
    }
    /// The buffer the arguments are spans of.
    pub fn buf(&self) -> &'a [u8] {
        self.buf
    }
    /// The arguments from `from` on.
    pub fn iter(&self, from: usize) -> impl ExactSizeIterator<Item = &'a [u8]> + 'a {
        let (argv, buf) = (self.argv, self.buf);
        (from..argv.len()).map(move |i| argv.get(buf, i))
    }
}

/// What a handler works with.
pub struct Ctx<'a> {
    /// The node it acts on.
    pub node: &'a mut Node,
    /// The connection it runs for.
    pub session: &'a mut Session,
    /// The request.
    pub args: Args<'a>,
    /// The connection's output: the reply is appended here.
    pub out: &'a mut Vec<u8>,
}

impl Ctx<'_> {
    /// Whether replies are RESP3.
    pub fn resp3(&self) -> bool {
        self.session.resp3
    }
}

/// A command's handler.
pub type Handler = fn(&mut Ctx<'_>) -> Flow;

/// Command flags: the ones COMMAND shows, then kvstore's own.
pub mod flag {
    /// May modify the keyspace.
    pub const WRITE: u16 = 1 << 0;
    /// Only reads.
    pub const READONLY: u16 = 1 << 1;
    /// May grow memory use.
    pub const DENYOOM: u16 = 1 << 2;
    /// An administrative command.
    pub const ADMIN: u16 = 1 << 3;
    /// Not allowed in scripts.
    pub const NOSCRIPT: u16 = 1 << 4;
    /// Allowed while loading.
    pub const LOADING: u16 = 1 << 5;
    /// Allowed on a stale replica.
    pub const STALE: u16 = 1 << 6;
    /// Constant time.
    pub const FAST: u16 = 1 << 7;
    /// Acts on the transaction itself: runs at once inside MULTI, never queued.
    pub const TX_CONTROL: u16 = 1 << 8;
    /// kvstore's own (peer frames, COMPACT): not listed by COMMAND.
    pub const HIDDEN: u16 = 1 << 9;
    /// Runs before the connection has authenticated (AUTH, HELLO, PING,
    /// QUIT, and the peers' REPLAUTH and REPLPROOF).
    pub const NO_AUTH: u16 = 1 << 10;
    /// A peer link's frame: with a cluster secret, from a connection that
    /// has not proved it (REPLAUTH, REPLPROOF), it is refused and the
    /// connection closed.
    pub const PEER_FRAME: u16 = 1 << 11;
    /// The flags COMMAND shows, in Redis's order.
    pub const SHOWN: [(u16, &str); 8] = [
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (NOSCRIPT, "noscript"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (FAST, "fast"),
    ];
}

use flag::*;

/// A command's form in the text protocol.
pub struct TextForm {
    /// Exact word count, the name included (0: any).
    pub arity: usize,
    /// What `ERROR usage: ...` says when the count is wrong.
    pub usage: &'static str,
    /// The handler.
    pub run: Handler,
}

/// One command: everything dispatch, COMMAND, arity checks and MULTI read.
pub struct CommandSpec {
    /// The name, upper-case.
    pub name: &'static str,
    /// Arity as Redis states it: the argument count with the name, negative
    /// for "at least".
    pub arity: i32,
    /// [`flag`]s.
    pub flags: u16,
    /// First key, last key (negative: from the end), step, as COMMAND shows.
    pub keys: (i32, i32, i32),
    /// The RESP handler, if the command exists in RESP.
    pub resp: Option<Handler>,
    /// The text-protocol form, if the command exists there.
    pub text: Option<TextForm>,
    /// Its subcommands (CLIENT LIST, CONFIG GET, ...), each named
    /// `PARENT|SUB` with its own arity and flags; empty for a plain command.
    /// The parent's handler dispatches them ([`command::subcommand`]).
    pub subs: &'static [CommandSpec],
    /// What COMMAND DOCS says of it.
    pub doc: Doc,
}

/// A command's documentation, for COMMAND DOCS and COMMAND INFO's ACL
/// categories. Empty fields are left out.
#[derive(Debug, Clone, Copy)]
pub struct Doc {
    /// One line on what it does.
    pub summary: &'static str,
    /// The Redis version that introduced it.
    pub since: &'static str,
    /// Its group in Redis's docs: `string`, `generic` (keys), `server`,
    /// `connection`, `transactions`, ...
    pub group: &'static str,
    /// Its time complexity.
    pub complexity: &'static str,
}

impl CommandSpec {
    const fn resp(name: &'static str, arity: i32, flags: u16, keys: (i32, i32, i32), run: Handler) -> CommandSpec {
        CommandSpec { name, arity, flags, keys, resp: Some(run), text: None, subs: &[], doc: Doc::NONE }
    }

    /// A subcommand: `name` is `PARENT|SUB`, `arity` counts the parent's
    /// name as Redis does (`CLIENT ID` is 2).
    const fn sub(name: &'static str, arity: i32, flags: u16, run: Handler) -> CommandSpec {
        CommandSpec::resp(name, arity, flags, NOKEYS, run)
    }

    /// A peer link's frame (see [`crate::repl::receiver`]).
    const fn peer(name: &'static str) -> CommandSpec {
        CommandSpec { flags: HIDDEN | PEER_FRAME, ..CommandSpec::hidden(name, receiver::frame) }
    }

    /// A command of the text protocol only (not listed by COMMAND).
    const fn text_only(name: &'static str, arity: usize, usage: &'static str, run: Handler) -> CommandSpec {
        CommandSpec {
            name,
            arity: 0,
            flags: HIDDEN,
            keys: (0, 0, 0),
            resp: None,
            text: Some(TextForm { arity, usage, run }),
            subs: &[],
            doc: Doc::NONE,
        }
    }

    /// A kvstore command of RESP that COMMAND does not list; its handler
    /// checks its own arguments.
    const fn hidden(name: &'static str, run: Handler) -> CommandSpec {
        CommandSpec::resp(name, -1, HIDDEN, (0, 0, 0), run)
    }

    /// Adds the text-protocol form.
    const fn and_text(self, arity: usize, usage: &'static str, run: Handler) -> CommandSpec {
        CommandSpec { text: Some(TextForm { arity, usage, run }), ..self }
    }

    /// Adds its documentation: a one-line summary, the Redis version that
    /// introduced it, its group (`string`, `generic`, `server`,
    /// `connection`, ...).
    const fn doc(self, summary: &'static str, since: &'static str, group: &'static str) -> CommandSpec {
        CommandSpec { doc: Doc { summary, since, group, complexity: self.doc.complexity }, ..self }
    }

    /// Adds its time complexity to its documentation.
    const fn complexity(self, complexity: &'static str) -> CommandSpec {
        CommandSpec { doc: Doc { complexity, ..self.doc }, ..self }
    }

    /// Adds its subcommands.
    const fn with_subs(self, subs: &'static [CommandSpec]) -> CommandSpec {
        CommandSpec { subs, ..self }
    }

    /// Whether `n` arguments (the name included) fit the arity.
    pub fn arity_ok(&self, n: usize) -> bool {
        let n = n as i64;
        let arity = i64::from(self.arity);
        if arity >= 0 { n == arity } else { n >= -arity }
    }

    /// Whether COMMAND lists it.
    pub fn listed(&self) -> bool {
        self.resp.is_some() && self.flags & HIDDEN == 0
    }
}

impl Doc {
    /// No documentation.
    pub const NONE: Doc = Doc { summary: "", since: "", group: "", complexity: "" };
}

const NOKEYS: (i32, i32, i32) = (0, 0, 0);
const ONE_KEY: (i32, i32, i32) = (1, 1, 1);
const ALL_KEYS: (i32, i32, i32) = (1, -1, 1);

/// Every command. Lookup is a scan, so the hottest come first; after them,
/// one block per family, in the order COMMAND lists them.
pub static COMMANDS: &[CommandSpec] = &[
    // The hottest.
    CommandSpec::resp("GET", 2, READONLY | FAST, ONE_KEY, strings::get).and_text(2, "GET <key>", text::get),
    CommandSpec::resp("SET", -3, WRITE | DENYOOM, ONE_KEY, strings::set),
    // kvstore's PUT, over RESP and inline: SET without options.
    CommandSpec::resp("PUT", 3, WRITE | DENYOOM | HIDDEN, ONE_KEY, strings::set).and_text(
        3,
        "PUT <key> <value>",
        text::put,
    ),
    CommandSpec::resp("DEL", -2, WRITE, ALL_KEYS, keys::del).and_text(2, "DEL <key>", text::del),
    // Keys.
    CommandSpec::resp("EXISTS", -2, READONLY | FAST, ALL_KEYS, keys::exists).and_text(2, "EXISTS <key>", text::exists),
    CommandSpec::resp("UNLINK", -2, WRITE | FAST, ALL_KEYS, keys::del),
    CommandSpec::resp("TOUCH", -2, READONLY | FAST, ALL_KEYS, keys::exists),
    CommandSpec::resp("TYPE", 2, READONLY | FAST, ONE_KEY, keys::type_of),
    CommandSpec::resp("RENAME", 3, WRITE, (1, 2, 1), keys::rename_cmd).and_text(
        3,
        "RENAME <key> <newkey>",
        text::rename,
    ),
    CommandSpec::resp("RENAMENX", 3, WRITE | FAST, (1, 2, 1), keys::renamenx),
    CommandSpec::resp("COPY", -3, WRITE | DENYOOM, (1, 2, 1), keys::copy),
    CommandSpec::resp("MEMORY", -2, 0, NOKEYS, keys::memory).with_subs(keys::MEMORY_SUBCOMMANDS),
    // Strings.
    CommandSpec::resp("MGET", -2, READONLY | FAST, ALL_KEYS, strings::mget),
    CommandSpec::resp("MSET", -3, WRITE | DENYOOM, (1, -1, 2), strings::mset),
    CommandSpec::resp("MSETNX", -3, WRITE | DENYOOM, (1, -1, 2), strings::msetnx),
    CommandSpec::resp("SETNX", 3, WRITE | DENYOOM | FAST, ONE_KEY, strings::setnx),
    CommandSpec::resp("GETSET", 3, WRITE | DENYOOM | FAST, ONE_KEY, strings::getset),
    CommandSpec::resp("GETDEL", 2, WRITE | FAST, ONE_KEY, strings::getdel),
    CommandSpec::resp("APPEND", 3, WRITE | DENYOOM | FAST, ONE_KEY, strings::append).and_text(
        3,
        "APPEND <key> <value>",
        text::append,
    ),
    CommandSpec::resp("STRLEN", 2, READONLY | FAST, ONE_KEY, strings::strlen).and_text(2, "STRLEN <key>", text::strlen),
    CommandSpec::resp("GETRANGE", 4, READONLY, ONE_KEY, strings::getrange),
    CommandSpec::resp("SUBSTR", 4, READONLY, ONE_KEY, strings::getrange),
    CommandSpec::resp("SETRANGE", 4, WRITE | DENYOOM, ONE_KEY, strings::setrange),
    CommandSpec::resp("INCR", 2, WRITE | DENYOOM | FAST, ONE_KEY, counters::incr).and_text(2, "INCR <key>", text::incr),
    CommandSpec::resp("DECR", 2, WRITE | DENYOOM | FAST, ONE_KEY, counters::decr).and_text(2, "DECR <key>", text::decr),
    CommandSpec::resp("INCRBY", 3, WRITE | DENYOOM | FAST, ONE_KEY, counters::incrby).and_text(
        3,
        "INCRBY <key> <increment>",
        text::incrby,
    ),
    CommandSpec::resp("DECRBY", 3, WRITE | DENYOOM | FAST, ONE_KEY, counters::decrby).and_text(
        3,
        "DECRBY <key> <decrement>",
        text::decrby,
    ),
    CommandSpec::resp("INCRBYFLOAT", 3, WRITE | DENYOOM | FAST, ONE_KEY, counters::incrbyfloat).and_text(
        3,
        "INCRBYFLOAT <key> <increment>",
        text::incrbyfloat,
    ),
    CommandSpec::resp("SETEX", 4, WRITE | DENYOOM, ONE_KEY, strings::setex),
    CommandSpec::resp("PSETEX", 4, WRITE | DENYOOM, ONE_KEY, strings::psetex),
    CommandSpec::resp("GETEX", -2, WRITE | FAST, ONE_KEY, strings::getex),
    // The keyspace as a whole.
    CommandSpec::resp("DBSIZE", 1, READONLY | FAST, NOKEYS, keys::dbsize),
    CommandSpec::resp("FLUSHALL", -1, WRITE, NOKEYS, keys::flushall),
    CommandSpec::resp("FLUSHDB", -1, WRITE, NOKEYS, keys::flushall),
    CommandSpec::resp("RANDOMKEY", 1, READONLY, NOKEYS, keys::randomkey),
    CommandSpec::resp("KEYS", 2, READONLY, NOKEYS, keys::keys).and_text(2, "KEYS <pattern>", text::keys),
    CommandSpec::resp("SCAN", -2, READONLY, NOKEYS, keys::scan),
    // Server and connection.
    CommandSpec::resp("PING", -1, FAST | NO_AUTH, NOKEYS, server::ping)
        .and_text(0, "PING", text::ping)
        .doc("Returns the server's liveliness response.", "1.0.0", "connection")
        .complexity("O(1)"),
    CommandSpec::resp("ECHO", 2, LOADING | STALE | FAST, NOKEYS, server::echo)
        .doc("Returns the given string.", "1.0.0", "connection")
        .complexity("O(1)"),
    CommandSpec::resp("INFO", -1, LOADING | STALE, NOKEYS, info::info)
        .doc("Returns information and statistics about the server.", "1.0.0", "server")
        .complexity("O(1)"),
    CommandSpec::resp("COMMAND", -1, LOADING | STALE, NOKEYS, command::command)
        .with_subs(command::SUBCOMMANDS)
        .doc("Returns detailed information about all commands.", "2.8.13", "server")
        .complexity("O(N) where N is the total number of Redis commands"),
    CommandSpec::resp("CONFIG", -2, 0, NOKEYS, config::config)
        .with_subs(config::SUBCOMMANDS)
        .doc("A container for server configuration commands.", "2.0.0", "server")
        .complexity("Depends on subcommand."),
    CommandSpec::resp("SELECT", 2, LOADING | STALE | FAST, NOKEYS, server::select)
        .doc("Changes the selected database.", "1.0.0", "connection")
        .complexity("O(1)"),
    CommandSpec::resp("CLIENT", -2, 0, NOKEYS, client::client)
        .with_subs(client::SUBCOMMANDS)
        .doc("A container for client connection commands.", "2.4.0", "connection")
        .complexity("Depends on subcommand."),
    CommandSpec::resp("AUTH", -2, NOSCRIPT | LOADING | STALE | FAST | NO_AUTH, NOKEYS, auth::auth).and_text(
        2,
        "AUTH <password>",
        auth::text_auth,
    ),
    CommandSpec::resp("HELLO", -1, NOSCRIPT | FAST | LOADING | STALE | NO_AUTH, NOKEYS, client::hello)
        .doc("Handshakes with the Redis server.", "6.0.0", "connection")
        .complexity("O(1)"),
    CommandSpec::resp("RESET", 1, NOSCRIPT | LOADING | STALE | FAST | TX_CONTROL, NOKEYS, client::reset)
        .doc("Resets the connection.", "6.2.0", "connection")
        .complexity("O(1)"),
    CommandSpec::resp("QUIT", -1, NOSCRIPT | FAST | LOADING | STALE | TX_CONTROL | NO_AUTH, NOKEYS, server::quit)
        .and_text(0, "QUIT", text::quit)
        .doc("Closes the connection.", "1.0.0", "connection")
        .complexity("O(1)"),
    CommandSpec::resp("MONITOR", 1, ADMIN | NOSCRIPT | LOADING | STALE, NOKEYS, monitor::monitor)
        .doc("Listens for all requests received by the server in real-time.", "1.0.0", "server"),
    CommandSpec::resp("TIME", 1, LOADING | STALE | FAST, NOKEYS, server::time)
        .doc("Returns the server time.", "2.6.0", "server")
        .complexity("O(1)"),
    CommandSpec::resp("ROLE", 1, NOSCRIPT | LOADING | STALE | FAST, NOKEYS, server::role)
        .doc("Returns the replication role.", "2.8.12", "server")
        .complexity("O(1)"),
    CommandSpec::resp("WAIT", 3, NOSCRIPT, NOKEYS, server::wait)
        .doc(
            "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed.",
            "3.0.0",
            "generic",
        )
        .complexity("O(1)"),
    CommandSpec::resp("BGREWRITEAOF", 1, ADMIN | NOSCRIPT, NOKEYS, server::bgrewriteaof)
        .doc("Asynchronously rewrites the append-only file to disk.", "1.0.0", "server")
        .complexity("O(1)"),
    CommandSpec::resp("BGSAVE", -1, ADMIN | NOSCRIPT, NOKEYS, server::bgsave)
        .doc("Asynchronously saves the database(s) to disk.", "1.0.0", "server")
        .complexity("O(1)"),
    CommandSpec::resp("SAVE", 1, ADMIN | NOSCRIPT, NOKEYS, server::save)
        .doc("Synchronously saves the database(s) to disk.", "1.0.0", "server")
        .complexity("O(N) where N is the total number of keys in all databases"),
    CommandSpec::resp("LASTSAVE", 1, LOADING | STALE | FAST, NOKEYS, server::lastsave)
        .doc("Returns the Unix timestamp of the last successful save to disk.", "1.0.0", "server")
        .complexity("O(1)"),
    CommandSpec::resp("FUNCTION", -2, 0, NOKEYS, server::function)
        .with_subs(server::FUNCTION_SUBCOMMANDS)
        .doc("A container for function commands.", "7.0.0", "scripting")
        .complexity("Depends on subcommand."),
    // Transactions.
    CommandSpec::resp("MULTI", 1, NOSCRIPT | LOADING | STALE | FAST | TX_CONTROL, NOKEYS, multi::multi),
    CommandSpec::resp("EXEC", 1, NOSCRIPT | LOADING | STALE | TX_CONTROL, NOKEYS, multi::exec),
    CommandSpec::resp("DISCARD", 1, NOSCRIPT | LOADING | STALE | FAST | TX_CONTROL, NOKEYS, multi::discard),
    CommandSpec::resp("WATCH", -2, NOSCRIPT | LOADING | STALE | FAST | TX_CONTROL, ALL_KEYS, multi::watch),
    CommandSpec::resp("UNWATCH", 1, NOSCRIPT | LOADING | STALE | FAST, NOKEYS, multi::unwatch),
    // Expiry.
    CommandSpec::resp("EXPIRE", -3, WRITE | FAST, ONE_KEY, expire::expire).and_text(
        3,
        "EXPIRE <key> <seconds>",
        text::expire,
    ),
    CommandSpec::resp("PEXPIRE", -3, WRITE | FAST, ONE_KEY, expire::pexpire),
    CommandSpec::resp("EXPIREAT", -3, WRITE | FAST, ONE_KEY, expire::expireat),
    CommandSpec::resp("PEXPIREAT", -3, WRITE | FAST, ONE_KEY, expire::pexpireat),
    CommandSpec::resp("TTL", 2, READONLY | FAST, ONE_KEY, expire::ttl).and_text(2, "TTL <key>", text::ttl),
    CommandSpec::resp("PTTL", 2, READONLY | FAST, ONE_KEY, expire::pttl),
    CommandSpec::resp("EXPIRETIME", 2, READONLY | FAST, ONE_KEY, expire::expiretime),
    CommandSpec::resp("PEXPIRETIME", 2, READONLY | FAST, ONE_KEY, expire::pexpiretime),
    CommandSpec::resp("PERSIST", 2, WRITE | FAST, ONE_KEY, expire::persist).and_text(2, "PERSIST <key>", text::persist),
    CommandSpec::text_only("PUTEX", 4, "PUTEX <key> <seconds> <value>", text::putex),
    // kvstore's own.
    CommandSpec::resp("STATS", 1, HIDDEN | LOADING | STALE, NOKEYS, text::stats_resp).and_text(0, "STATS", text::stats),
    CommandSpec::hidden("COMPACT", server::bgrewriteaof).and_text(0, "COMPACT", text::compact),
    CommandSpec::hidden("LEADER", server::leader).and_text(1, "LEADER", text::leader),
    // The peers' handshake: before any peer frame, so not one itself.
    CommandSpec::resp("REPLAUTH", 3, HIDDEN | NO_AUTH | NOSCRIPT | FAST, NOKEYS, auth::repl_auth),
    CommandSpec::resp("REPLPROOF", 2, HIDDEN | NO_AUTH | NOSCRIPT | FAST, NOKEYS, auth::repl_proof),
    CommandSpec::peer("REPLHELLO"),
    CommandSpec::peer("REPL_PUT").and_text(3, "REPL_PUT <key> <value>", text::repl_put),
    CommandSpec::peer("REPL_DEL").and_text(2, "REPL_DEL <key>", text::repl_del),
    CommandSpec::peer("REPL_COUNTER"),
    CommandSpec::peer("REPL_FLUSHALL"),
    CommandSpec::peer("REPL_SYNCED"),
    CommandSpec::peer("REPL_ELECTION"),
    CommandSpec::peer("REPL_VOTE"),
    CommandSpec::peer("REPL_BEAT"),
    CommandSpec::peer("REPL_FWD"),
];

/// The command named `name` (upper-case).
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|c| c.name.as_bytes() == name)
}

/// Upper-cases a command name into `buf`; names longer than it match nothing.
pub fn upper<'a>(name: &[u8], buf: &'a mut [u8; 24]) -> &'a [u8] {
    if name.len() > buf.len() {
        return b"";
    }
    let dst = &mut buf[..name.len()];
    dst.copy_from_slice(name);
    dst.make_ascii_uppercase();
    dst
}

/// Runs one request in its dialect: an inline command as RESP. `buf` is
/// what the spans of `argv` index ([`Argv::input`]).
pub(super) fn dispatch(
    node: &mut Node,
    session: &mut Session,
    dialect: Dialect,
    argv: &Argv,
    buf: &[u8],
    out: &mut Vec<u8>,
) -> Flow {
    let mut cx = Ctx { node, session, args: Args::new(argv, buf), out };
    if dialect != Dialect::Resp {
        let mut nb = [0u8; 24];
        if security::looks_like_http(upper(cx.args.get(0), &mut nb), &cx.args) {
            return Flow::Attack;
        }
    }
    match dialect {
        Dialect::Resp | Dialect::Inline => run_resp(&mut cx),
        Dialect::Text => run_text(&mut cx),
    }
}

/// Runs a RESP request: queued if a transaction is open, else checked
/// against its entry and handled.
pub(super) fn run_resp(cx: &mut Ctx<'_>) -> Flow {
    let before = cx.out.len();
    let mut nb = [0u8; 24];
    let found = lookup(upper(cx.args.get(0), &mut nb)).and_then(|s| s.resp.map(|run| (s, run)));
    if cx.session.multi.is_some() && found.is_none_or(|(s, _)| s.flags & TX_CONTROL == 0) {
        multi::queue(cx, found.map(|(s, _)| s));
        return Flow::Continue;
    }
    let Some((spec, run)) = found else {
        unknown_command(cx.out, cx.args);
        cx.node.stats.cmdstats.error(&cx.out[before..]);
        return Flow::Continue;
    };
    if !spec.arity_ok(cx.args.len()) {
        wrong_args(cx.out, spec.name);
        cx.node.stats.cmdstats.count(spec, true, &cx.out[before..]);
        return Flow::Continue;
    }
    if let Some(flow) = auth::gate(cx, spec, true) {
        cx.node.stats.cmdstats.count(spec, true, &cx.out[before..]);
        return flow;
    }
    if cx.node.leader_mode()
        && let Some(flow) = crate::node::leader::gate(cx, spec, Dialect::Resp)
    {
        return flow;
    }
    let flow = run(cx);
    // A container's (CLIENT, CONFIG) subcommand counts itself, as Redis shows it.
    if spec.subs.is_empty() {
        cx.node.stats.cmdstats.count(spec, false, &cx.out[before..]);
    }
    cx.node.ran(cx.session, spec, cx.args);
    flow
}

pub(crate) fn run_text(cx: &mut Ctx<'_>) -> Flow {
    let mut nb = [0u8; 24];
    let Some((spec, form)) = lookup(upper(cx.args.get(0), &mut nb)).and_then(|s| s.text.as_ref().map(|f| (s, f)))
    else {
        crate::proto::text::line(cx.out, b"ERROR UNKNOWN COMMAND");
        return Flow::Continue;
    };
    if form.arity != 0 && cx.args.len() != form.arity {
        crate::proto::text::line(cx.out, format!("ERROR usage: {}", form.usage).as_bytes());
        return Flow::Continue;
    }
    if let Some(flow) = auth::gate(cx, spec, false) {
        return flow;
    }
    if cx.node.leader_mode()
        && let Some(flow) = crate::node::leader::gate(cx, spec, Dialect::Text)
    {
        return flow;
    }
    let flow = (form.run)(cx);
    cx.node.ran(cx.session, spec, cx.args);
    flow
}

/// `-ERR unknown command '...', with args beginning with: ...`, as Redis says it.
pub fn unknown_command(out: &mut Vec<u8>, a: Args<'_>) {
    let mut msg = format!("ERR unknown command '{}', with args beginning with: ", String::from_utf8_lossy(a.get(0)));
    for arg in a.iter(1).take(8) {
        msg.push_str(&format!("'{}' ", String::from_utf8_lossy(&arg[..arg.len().min(128)])));
    }
    resp::error(out, msg.as_bytes());
}

/// `-ERR wrong number of arguments for 'name' command`.
pub fn wrong_args(out: &mut Vec<u8>, name: &str) {
    let lower = name.to_lowercase();
    resp::error(out, format!("ERR wrong number of arguments for '{lower}' command").as_bytes());
}

/// `-ERR <why>`: a write refused, nothing applied.
pub fn refused(out: &mut Vec<u8>, why: &str) {
    resp::error(out, format!("ERR {why}").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arity_follows_redis() {
        let get = lookup(b"GET").unwrap();
        assert!(get.arity_ok(2));
        assert!(!get.arity_ok(3));
        let set = lookup(b"SET").unwrap();
        assert!(set.arity_ok(5));
        assert!(!set.arity_ok(2));
        assert!(lookup(b"UNKNOWN").is_none());
    }

    #[test]
    fn upper_ignores_overlong_names() {
        let mut b = [0u8; 24];
        assert_eq!(upper(b"get", &mut b), b"GET");
        assert_eq!(upper(&[b'a'; 30], &mut b), b"");
    }

    #[test]
    fn the_table_names_each_command_once_in_upper_case() {
        for (i, c) in COMMANDS.iter().enumerate() {
            assert_eq!(c.name, c.name.to_ascii_uppercase());
            assert!(c.resp.is_some() || c.text.is_some(), "{}", c.name);
            assert!(COMMANDS[..i].iter().all(|d| d.name != c.name), "{} twice", c.name);
        }
        assert_eq!(COMMANDS.iter().filter(|c| c.listed()).count(), 70);
        for c in COMMANDS {
            for (i, s) in c.subs.iter().enumerate() {
                let (parent, sub) = s.name.split_once('|').expect("PARENT|SUB");
                assert!(parent == c.name && sub == sub.to_ascii_uppercase() && s.resp.is_some(), "{}", s.name);
                assert!(c.subs[..i].iter().all(|d| d.name != s.name), "{} twice", s.name);
            }
        }
    }
}
