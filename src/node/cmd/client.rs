//! The connection's own state and the other connections: CLIENT, HELLO,
//! RESET. CLIENT LIST, INFO and KILL read the node's client registry
//! ([`crate::node::clients`]), which holds every connection.

use std::fmt::Write;
use std::time::Instant;

use super::command::{help_reply, subcommand};
use super::{Args, CommandSpec, Ctx, Flow, REDIS_VERSION};
use crate::node::Node;
use crate::node::clients::ClientInfo;
use crate::node::session::{Name, Session};
use crate::proto::resp;

use super::flag::*;

/// CLIENT's subcommands.
pub const SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::sub("CLIENT|ID", 2, NOSCRIPT | LOADING | STALE, id)
        .doc("Returns the unique client ID of the connection.", "5.0.0", "connection")
        .complexity("O(1)"),
    CommandSpec::sub("CLIENT|INFO", 2, NOSCRIPT | LOADING | STALE, info)
        .doc("Returns information about the connection.", "6.2.0", "connection")
        .complexity("O(1)"),
    CommandSpec::sub("CLIENT|LIST", -2, ADMIN | NOSCRIPT | LOADING | STALE, list)
        .doc("Lists open connections.", "2.4.0", "connection")
        .complexity("O(N) where N is the number of client connections"),
    CommandSpec::sub("CLIENT|KILL", -3, ADMIN | NOSCRIPT | LOADING | STALE, kill)
        .doc("Terminates open connections.", "2.4.0", "connection")
        .complexity("O(N) where N is the number of client connections"),
    CommandSpec::sub("CLIENT|GETNAME", 2, NOSCRIPT | LOADING | STALE, getname)
        .doc("Returns the name of the connection.", "2.6.9", "connection")
        .complexity("O(1)"),
    CommandSpec::sub("CLIENT|SETNAME", 3, NOSCRIPT | LOADING | STALE, setname)
        .doc("Sets the connection name.", "2.6.9", "connection")
        .complexity("O(1)"),
    CommandSpec::sub("CLIENT|SETINFO", 4, NOSCRIPT | LOADING | STALE, setinfo)
        .doc("Sets information specific to the client or connection.", "7.2.0", "connection")
        .complexity("O(1)"),
    CommandSpec::sub("CLIENT|NO-EVICT", 3, ADMIN | NOSCRIPT | LOADING | STALE, no_evict)
        .doc("Sets the client eviction mode of the connection.", "7.0.0", "connection")
        .complexity("O(1)"),
    CommandSpec::sub("CLIENT|NO-TOUCH", 3, NOSCRIPT | LOADING | STALE, no_touch)
        .doc("Controls whether commands sent by the client affect the LRU/LFU of accessed keys.", "7.2.0", "connection")
        .complexity("O(1)"),
    CommandSpec::sub("CLIENT|HELP", 2, LOADING | STALE, help)
        .doc("Returns helpful text about the different subcommands.", "5.0.0", "connection")
        .complexity("O(1)"),
];

/// `CLIENT <subcommand> ...`.
pub fn client(cx: &mut Ctx<'_>) -> Flow {
    subcommand(cx, "CLIENT", SUBCOMMANDS)
}

fn id(cx: &mut Ctx<'_>) -> Flow {
    resp::int(cx.out, cx.session.id as i64);
    Flow::Continue
}

fn getname(cx: &mut Ctx<'_>) -> Flow {
    match cx.node.clients.get(cx.session).and_then(|e| e.name.as_deref()) {
        Some(n) => resp::bulk(cx.out, n),
        None => resp::null(cx.out, cx.session.resp3),
    }
    Flow::Continue
}

fn setname(cx: &mut Ctx<'_>) -> Flow {
    if set_client_name(cx.node, cx.session, cx.args.get(2), cx.out) {
        resp::simple(cx.out, b"OK");
    }
    Flow::Continue
}

/// Whether `v` may be shown unquoted in CLIENT LIST: printable ASCII, no
/// space (so that the fields split at spaces).
fn listable(v: &[u8]) -> bool {
    v.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

/// Sets (or, when empty, clears) the connection's name, as CLIENT SETNAME
/// and HELLO SETNAME do; a name CLIENT LIST could not show is refused.
/// Returns whether it was set.
fn set_client_name(node: &mut Node, session: &Session, name: &[u8], out: &mut Vec<u8>) -> bool {
    if !listable(name) {
        resp::error(out, b"ERR Client names cannot contain spaces, newlines or special characters.");
        return false;
    }
    if let Some(e) = node.clients.get_mut(session) {
        e.name = (!name.is_empty()).then(|| name.into());
    }
    true
}

/// `CLIENT SETINFO LIB-NAME|LIB-VER value`.
fn setinfo(cx: &mut Ctx<'_>) -> Flow {
    let (attr, v) = (cx.args.get(2), cx.args.get(3));
    let lib_name = attr.eq_ignore_ascii_case(b"LIB-NAME");
    if !lib_name && !attr.eq_ignore_ascii_case(b"LIB-VER") {
        let msg = format!("ERR Unrecognized option '{}'", String::from_utf8_lossy(attr));
        resp::error(cx.out, msg.as_bytes());
        return Flow::Continue;
    }
    if !listable(v) {
        let msg =
            format!("ERR {} cannot contain spaces, newlines or special characters.", String::from_utf8_lossy(attr));
        resp::error(cx.out, msg.as_bytes());
        return Flow::Continue;
    }
    if let Some(e) = cx.node.clients.get_mut(cx.session) {
        let value: Option<Name> = (!v.is_empty()).then(|| v.into());
        if lib_name {
            e.lib_name = value;
        } else {
            e.lib_ver = value;
        }
    }
    resp::simple(cx.out, b"OK");
    Flow::Continue
}

/// `CLIENT NO-EVICT on|off`: shown in CLIENT LIST; nothing is evicted here.
fn no_evict(cx: &mut Ctx<'_>) -> Flow {
    set_flag(cx, |e, on| e.no_evict = on)
}

/// `CLIENT NO-TOUCH on|off`: shown in CLIENT LIST; no access times are kept.
fn no_touch(cx: &mut Ctx<'_>) -> Flow {
    set_flag(cx, |e, on| e.no_touch = on)
}

fn set_flag(cx: &mut Ctx<'_>, set: fn(&mut ClientInfo, bool)) -> Flow {
    let on = match cx.args.get(2) {
        v if v.eq_ignore_ascii_case(b"ON") => true,
        v if v.eq_ignore_ascii_case(b"OFF") => false,
        _ => {
            resp::error(cx.out, b"ERR syntax error");
            return Flow::Continue;
        }
    };
    if let Some(e) = cx.node.clients.get_mut(cx.session) {
        set(e, on);
    }
    resp::simple(cx.out, b"OK");
    Flow::Continue
}

fn help(cx: &mut Ctx<'_>) -> Flow {
    let lines: &[&str] = &[
        "GETNAME",
        "    Return the name of the current connection.",
        "ID",
        "    Return the ID of the current connection.",
        "INFO",
        "    Return information about the current client connection.",
        "KILL <ip:port>",
        "    Kill connection made from <ip:port>.",
        "KILL <option> <value> [<option> <value> [...]]",
        "    Kill connections. Options are:",
        "    * ADDR (<ip:port>|<unixsocket>:0)",
        "      Kill connections made from the specified address",
        "    * LADDR (<ip:port>|<unixsocket>:0)",
        "      Kill connections made to specified local address",
        "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
        "      Kill connections by type.",
        "    * USER <username>",
        "      Kill connections authenticated by <username>.",
        "    * SKIPME (YES|NO)",
        "      Skip killing current connection (default: yes).",
        "    * ID <client-id>",
        "      Kill connections by client id.",
        "    * MAXAGE <maxage>",
        "      Kill connections older than the specified age.",
        "LIST [options ...]",
        "    Return information about client connections. Options:",
        "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
        "      Return clients of specified type.",
        "    * ID <client-id> [<client-id> ...]",
        "      Return clients of specified IDs only.",
        "NO-EVICT (ON|OFF)",
        "    Protect current client connection from eviction.",
        "NO-TOUCH (ON|OFF)",
        "    Will not touch LRU/LFU stats when this mode is on.",
        "SETNAME <name>",
        "    Assign the name <name> to the current connection.",
        "SETINFO <option> <value>",
        "    Set client meta attr. Options are:",
        "    * LIB-NAME: the client lib name.",
        "    * LIB-VER: the client lib version.",
    ];
    help_reply(cx.out, "CLIENT", lines);
    Flow::Continue
}

// ------------------------------------------------------------ CLIENT LIST

/// Client types, as CLIENT LIST TYPE and CLIENT KILL TYPE name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientType {
    /// Any client that is none of the others (monitors included, as in Redis).
    Normal,
    /// A peer node's link to us: it sends us its writes, as a master does.
    Master,
    /// A replica: kvstore's peers are not replicas of it.
    Replica,
    /// A pub/sub client: there is no pub/sub here.
    Pubsub,
}

impl ClientType {
    /// The type named `name` (any case), or Redis's error.
    pub fn parse(name: &[u8]) -> Result<ClientType, String> {
        match name.to_ascii_lowercase().as_slice() {
            b"normal" => Ok(ClientType::Normal),
            b"master" => Ok(ClientType::Master),
            b"replica" | b"slave" => Ok(ClientType::Replica),
            b"pubsub" => Ok(ClientType::Pubsub),
            _ => Err(format!("ERR Unknown client type '{}'", String::from_utf8_lossy(name))),
        }
    }

    /// The type of a registered client.
    pub fn of(e: &ClientInfo) -> ClientType {
        if e.peer { ClientType::Master } else { ClientType::Normal }
    }
}

/// `CLIENT INFO`: this connection's CLIENT LIST line.
fn info(cx: &mut Ctx<'_>) -> Flow {
    let mut text = String::new();
    match cx.node.clients.get(cx.session) {
        Some(e) => client_line(&mut text, e, cx.node.now, Some(cx.session)),
        None => text.push_str(&format!("id={} cmd=client|info\n", cx.session.id)),
    }
    resp::verbatim(cx.out, b"txt", text.as_bytes(), cx.session.resp3);
    Flow::Continue
}

/// `CLIENT LIST [TYPE type | ID id ...]`: a line per client, oldest first.
fn list(cx: &mut Ctx<'_>) -> Flow {
    let a = cx.args;
    let mut ids: Option<Vec<u64>> = None;
    let mut typ = None;
    if a.len() == 4 && a.get(2).eq_ignore_ascii_case(b"TYPE") {
        match ClientType::parse(a.get(3)) {
            Ok(t) => typ = Some(t),
            Err(e) => return error(cx, &e),
        }
    } else if a.len() > 3 && a.get(2).eq_ignore_ascii_case(b"ID") {
        let mut v = Vec::new();
        for s in a.iter(3) {
            match resp::parse_int(s).filter(|&n| n >= 1) {
                Some(n) => v.push(n as u64),
                None => return error(cx, "ERR Invalid client ID"),
            }
        }
        ids = Some(v);
    } else if a.len() != 2 {
        return error(cx, "ERR syntax error");
    }
    let (node, session) = (&*cx.node, &*cx.session);
    let mut shown: Vec<&ClientInfo> = node.clients.iter().map(|(_, e)| e).collect();
    shown.sort_unstable_by_key(|e| e.id);
    if let Some(ids) = &ids {
        shown = ids.iter().filter_map(|id| shown.iter().find(|e| e.id == *id).copied()).collect();
    }
    let mut text = String::new();
    for e in shown.into_iter().filter(|e| typ.is_none_or(|t| t == ClientType::of(e))) {
        client_line(&mut text, e, node.now, (e.id == session.id).then_some(session));
    }
    resp::verbatim(cx.out, b"txt", text.as_bytes(), session.resp3);
    Flow::Continue
}

fn error(cx: &mut Ctx<'_>, msg: &str) -> Flow {
    resp::error(cx.out, msg.as_bytes());
    Flow::Continue
}

/// Appends a client's CLIENT LIST line, in Redis 7.2's field order. `live`
/// is its session when it is the caller: its registry entry is one batch
/// behind it. Fields kvstore has no counterpart for are left out (`rbp`),
/// or are what they are here: no pub/sub (`sub=0`), no reply list
/// (`oll=0`), arguments kept in the input buffer (`argv-mem=0`), one user.
pub fn client_line(out: &mut String, e: &ClientInfo, now: Instant, live: Option<&Session>) {
    let (cmd, multi, resp3, idle) = match live {
        Some(s) => (s.last_cmd, s.multi.as_ref().map(|m| m.queued()), s.resp3, 0),
        None => (e.cmd, e.multi, e.resp3, now.saturating_duration_since(e.seen).as_secs()),
    };
    let mut flags = String::new();
    for (on, c) in [
        (e.monitor, 'O'),
        (e.peer, 'M'),
        (multi.is_some(), 'x'),
        (e.blocked, 'b'),
        (e.no_evict, 'e'),
        (e.no_touch, 'T'),
    ] {
        if on {
            flags.push(c);
        }
    }
    if flags.is_empty() {
        flags.push('N');
    }
    fn text(v: &Option<Name>) -> std::borrow::Cow<'_, str> {
        v.as_deref().map(String::from_utf8_lossy).unwrap_or_default()
    }
    let b = e.buffers;
    let (queued, multi_mem) = multi.map_or((-1, 0), |(n, bytes)| (n as i64, bytes));
    let _ = writeln!(
        out,
        "id={} addr={} laddr={} fd={} name={} age={} idle={idle} flags={flags} db=0 sub=0 psub=0 ssub=0 \
         multi={queued} qbuf={} qbuf-free={} argv-mem=0 multi-mem={multi_mem} rbs={} obl={} oll=0 omem={} \
         tot-mem={} events={} cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
        e.id,
        e.addr,
        e.laddr,
        e.fd,
        text(&e.name),
        now.saturating_duration_since(e.created).as_secs(),
        b.qbuf,
        b.qbuf_cap.saturating_sub(b.qbuf),
        b.qbuf_cap,
        b.obuf,
        b.obuf_cap,
        b.qbuf_cap + b.obuf_cap + multi_mem,
        if b.obuf > 0 { "rw" } else { "r" },
        if cmd.is_empty() { "NULL".to_string() } else { cmd.to_ascii_lowercase() },
        if resp3 { 3 } else { 2 },
        text(&e.lib_name),
        text(&e.lib_ver),
    );
}

// ------------------------------------------------------------ CLIENT KILL

/// What CLIENT KILL kills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillFilter {
    /// The old form, `CLIENT KILL addr`: answers OK or "No such client".
    pub old_form: bool,
    /// `ID`.
    pub id: Option<u64>,
    /// `TYPE`.
    pub typ: Option<ClientType>,
    /// `ADDR` (or the old form's address), compared as text, as Redis does.
    pub addr: Option<Vec<u8>>,
    /// `LADDR`.
    pub laddr: Option<Vec<u8>>,
    /// `SKIPME` (default yes; no in the old form).
    pub skipme: bool,
    /// `MAXAGE`: only clients connected for longer, in seconds.
    pub max_age: Option<u64>,
}

/// Parses CLIENT KILL's arguments (those after KILL), with Redis's errors.
pub fn parse_kill(args: &[&[u8]]) -> Result<KillFilter, String> {
    let mut f =
        KillFilter { old_form: false, id: None, typ: None, addr: None, laddr: None, skipme: true, max_age: None };
    if let [addr] = args {
        return Ok(KillFilter { old_form: true, addr: Some(addr.to_vec()), skipme: false, ..f });
    }
    let syntax = || "ERR syntax error".to_string();
    if !args.len().is_multiple_of(2) {
        return Err(syntax());
    }
    for pair in args.chunks(2) {
        let (opt, v) = (pair[0].to_ascii_uppercase(), pair[1]);
        match opt.as_slice() {
            b"ID" => match resp::parse_int(v).filter(|&n| n >= 1) {
                Some(n) => f.id = Some(n as u64),
                None => return Err("ERR client-id should be greater than 0".into()),
            },
            b"TYPE" => f.typ = Some(ClientType::parse(v)?),
            b"ADDR" => f.addr = Some(v.to_vec()),
            b"LADDR" => f.laddr = Some(v.to_vec()),
            // One user exists: everyone is `default`.
            b"USER" if v == b"default" => {}
            b"USER" => return Err(format!("ERR No such user '{}'", String::from_utf8_lossy(v))),
            b"SKIPME" if v.eq_ignore_ascii_case(b"YES") => f.skipme = true,
            b"SKIPME" if v.eq_ignore_ascii_case(b"NO") => f.skipme = false,
            b"MAXAGE" => match resp::parse_int(v) {
                Some(n) if n > 0 => f.max_age = Some(n as u64),
                Some(_) => return Err(syntax()),
                None => return Err("ERR maxage is not an integer or out of range".into()),
            },
            _ => return Err(syntax()),
        }
    }
    Ok(f)
}

impl KillFilter {
    /// Whether the filter selects `e`; `me` is the caller's id.
    pub fn matches(&self, e: &ClientInfo, me: u64, now: Instant) -> bool {
        let text_is = |want: &Option<Vec<u8>>, addr: std::net::SocketAddr| {
            want.as_ref().is_none_or(|w| w.as_slice() == addr.to_string().as_bytes())
        };
        self.id.is_none_or(|id| id == e.id)
            && self.typ.is_none_or(|t| t == ClientType::of(e))
            && text_is(&self.addr, e.addr)
            && text_is(&self.laddr, e.laddr)
            && !(self.skipme && e.id == me)
            && self.max_age.is_none_or(|m| now.saturating_duration_since(e.created).as_secs() > m)
    }
}

/// `CLIENT KILL addr` or `CLIENT KILL <filter> <value> ...`. The killed
/// connections close at once, their unsent output dropped; the caller, if
/// it killed itself, gets its reply first.
fn kill(cx: &mut Ctx<'_>) -> Flow {
    let args: Vec<&[u8]> = cx.args.iter(2).collect();
    let f = match parse_kill(&args) {
        Ok(f) => f,
        Err(e) => return error(cx, &e),
    };
    let (me, now) = (cx.session.id, cx.node.now);
    let slots: Vec<(usize, u64)> =
        cx.node.clients.iter().filter(|(_, e)| f.matches(e, me, now)).map(|(slot, e)| (slot, e.id)).collect();
    let mut myself = false;
    for &(slot, id) in &slots {
        myself |= id == me;
        cx.node.clients.kill(slot, id == me);
    }
    match (f.old_form, slots.len()) {
        (true, 0) => return error(cx, "ERR No such client"),
        (true, _) => resp::simple(cx.out, b"OK"),
        (false, n) => resp::int(cx.out, n as i64),
    }
    if myself { Flow::Close } else { Flow::Continue }
}

// ------------------------------------------------------------ HELLO, RESET

/// `HELLO [2|3] [AUTH user pass] [SETNAME name]`.
pub fn hello(cx: &mut Ctx<'_>) -> Flow {
    hello_with(cx.node, cx.session, cx.args, cx.out);
    Flow::Continue
}

fn hello_with(node: &mut Node, client: &mut Session, a: Args<'_>, out: &mut Vec<u8>) {
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
    let mut credentials = None;
    while i < a.len() {
        let opt = a.get(i).to_ascii_uppercase();
        match opt.as_slice() {
            b"AUTH" if i + 2 < a.len() => {
                credentials = Some((a.get(i + 1), a.get(i + 2)));
                i += 3;
            }
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
    // As in Redis, wrong credentials or a refused name fail the whole
    // HELLO: the protocol stays.
    match credentials {
        Some((user, pass)) if super::auth::authenticate(node, client, Some(user), pass).is_err() => {
            return resp::error(out, crate::node::security::WRONGPASS.as_bytes());
        }
        Some(_) => {}
        None if node.needs_auth(client) => {
            return resp::error(
                out,
                b"NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> \
AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
            );
        }
        None => {}
    }
    // As in Redis, a refused name fails the whole HELLO: the protocol stays.
    if let Some(n) = name
        && !set_client_name(node, client, n, out)
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

/// `RESET`: the connection as if new, as Redis resets it: the transaction
/// discarded, MONITOR mode left, the name and NO-EVICT/NO-TOUCH cleared,
/// RESP2. The library name and version stay: they still describe the
/// client behind the connection.
pub fn reset(cx: &mut Ctx<'_>) -> Flow {
    let s = &mut *cx.session;
    s.multi = None;
    s.resp3 = false;
    cx.node.stop_monitor(s);
    if let Some(e) = cx.node.clients.get_mut(s) {
        e.name = None;
        e.no_evict = false;
        e.no_touch = false;
    }
    resp::simple(cx.out, b"RESET");
    Flow::Continue
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kill_args(s: &str) -> Result<KillFilter, String> {
        let v: Vec<&[u8]> = s.split(' ').map(str::as_bytes).collect();
        parse_kill(&v)
    }

    #[test]
    fn kill_filters_parse_as_redis_does() {
        let f = kill_args("127.0.0.1:5000").unwrap();
        assert!(f.old_form && !f.skipme && f.addr.as_deref() == Some(&b"127.0.0.1:5000"[..]));
        // Two arguments is the old form too: "id" is taken for an address.
        assert!(kill_args("id").unwrap().old_form);
        let f = kill_args("ID 7 type normal SKIPME no maxage 30 laddr 1.2.3.4:5 USER default").unwrap();
        assert_eq!(
            (f.id, f.typ, f.skipme, f.max_age, f.old_form),
            (Some(7), Some(ClientType::Normal), false, Some(30), false)
        );
        assert_eq!(f.laddr.as_deref(), Some(&b"1.2.3.4:5"[..]));
        assert!(kill_args("addr 1.2.3.4:5").unwrap().skipme, "SKIPME defaults to yes");
        assert_eq!(kill_args("type replica").unwrap().typ, Some(ClientType::Replica));
        for (args, err) in [
            ("id abc", "ERR client-id should be greater than 0"),
            ("id 0", "ERR client-id should be greater than 0"),
            ("type foo", "ERR Unknown client type 'foo'"),
            ("foo bar", "ERR syntax error"),
            ("id 1 addr", "ERR syntax error"),
            ("skipme maybe", "ERR syntax error"),
            ("maxage 0", "ERR syntax error"),
            ("maxage x", "ERR maxage is not an integer or out of range"),
            ("user nobody", "ERR No such user 'nobody'"),
        ] {
            assert_eq!(kill_args(args).unwrap_err(), err, "{args}");
        }
    }

    #[test]
    fn kill_filters_match_on_every_criterion() {
        let t0 = Instant::now();
        let e = ClientInfo::new(5, 0, "10.0.0.1:4000".parse().unwrap(), "10.0.0.9:6379".parse().unwrap(), -1, t0);
        let later = t0 + std::time::Duration::from_secs(100);
        let yes = |s: &str, me: u64| kill_args(s).unwrap().matches(&e, me, later);
        assert!(yes("10.0.0.1:4000", 5), "the old form may kill the caller");
        assert!(!yes("10.0.0.1:4001", 1));
        assert!(yes("id 5", 1) && !yes("id 6", 1));
        assert!(!yes("id 5", 5), "SKIPME yes spares the caller");
        assert!(yes("id 5 skipme no", 5));
        assert!(yes("laddr 10.0.0.9:6379 type normal", 1) && !yes("type master", 1));
        assert!(yes("maxage 99", 1) && !yes("maxage 100", 1));
    }

    #[test]
    fn client_type_names() {
        assert_eq!(ClientType::parse(b"SLAVE"), Ok(ClientType::Replica));
        assert_eq!(ClientType::parse(b"PubSub"), Ok(ClientType::Pubsub));
        assert!(ClientType::parse(b"x").is_err());
    }

    #[test]
    fn a_client_line_has_redis_fields_in_order() {
        let t0 = Instant::now();
        let mut e =
            ClientInfo::new(3, 0, "127.0.0.1:40000".parse().unwrap(), "127.0.0.1:6379".parse().unwrap(), -1, t0);
        e.name = Some((*b"worker").into());
        e.monitor = true;
        e.cmd = "CLIENT|LIST";
        let mut s = String::new();
        client_line(&mut s, &e, t0 + std::time::Duration::from_secs(2), None);
        assert!(
            s.starts_with(
                "id=3 addr=127.0.0.1:40000 laddr=127.0.0.1:6379 fd=-1 name=worker age=2 idle=2 flags=O db=0 "
            ),
            "{s}"
        );
        assert!(s.ends_with(" cmd=client|list user=default redir=-1 resp=2 lib-name= lib-ver=\n"), "{s}");
        let fields: Vec<&str> = s.trim_end().split(' ').map(|kv| kv.split('=').next().unwrap()).collect();
        let redis = "id addr laddr fd name age idle flags db sub psub ssub multi qbuf qbuf-free argv-mem multi-mem \
                     rbs obl oll omem tot-mem events cmd user redir resp lib-name lib-ver";
        assert_eq!(fields, redis.split(' ').collect::<Vec<_>>());
    }
}
