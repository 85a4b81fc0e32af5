//! The node's registry of client connections, and what the node asks the
//! driver to do with connections other than the one a command runs for.
//!
//! CLIENT LIST, CLIENT KILL, INFO and MONITOR need every connection, not
//! only the one at hand, but the driver owns each [`Session`]. So the node
//! keeps a [`ClientInfo`] per connection in a slab, at the slot its session
//! names. A command changes its own session; the registry catches up once
//! per batch of that connection's input ([`Node::client_seen`]: an indexed
//! write, no lookup per command). Rare changes (a name, a flag) are written
//! to the registry by the command that makes them.
//!
//! From the node to the driver, besides [`super::Ready`]:
//! - [`Node::take_kills`]: connections to close (CLIENT KILL, monitors whose
//!   feed outgrew the output limit). The driver drains it after every
//!   [`Node::process`] call, so that a killed client runs no further
//!   command, as in Redis, where CLIENT KILL frees the client at once.
//! - [`Node::monitor_feed`]: the iteration's MONITOR lines and the
//!   connections that get them, appended to their output at the end of the
//!   iteration; [`Node::monitor_fed`] then empties it. With no monitor, a
//!   command pays one branch for this (`Node::ran`).
//! - blocked clients (WAIT, SAVE): the handler registers a [`Block`] and
//!   returns [`Flow::Block`](super::cmd::Flow::Block); the connection
//!   processes no further input. [`super::Ready::unblocked`] lists those
//!   whose answer is ready; the driver appends it with
//!   [`Node::finish_blocked`] and resumes them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use slab::Slab;

use super::Node;
use super::cmd::server::is_up;
use super::cmd::{Args, CommandSpec, flag, monitor};
use super::session::{Name, Session};
use crate::proto::resp;

/// A connection the driver is asked to act on: its key in the driver's
/// slab, and its client id, which the driver checks (the key may have been
/// reused by a later connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The driver's key of the connection.
    pub conn: usize,
    /// Its client id.
    pub id: u64,
}

/// A connection to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kill {
    /// Which.
    pub target: Target,
    /// Write what its output holds first (a client that killed itself gets
    /// its reply); otherwise the output is dropped.
    pub flush: bool,
}

/// The sizes of a connection's buffers, as the driver reports them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Buffers {
    /// Unprocessed input bytes.
    pub qbuf: usize,
    /// The input buffer's size.
    pub qbuf_cap: usize,
    /// Output bytes not yet written from earlier iterations (the replies of
    /// the batch at hand are written at the end of the iteration).
    pub obuf: usize,
    /// The output buffer's size.
    pub obuf_cap: usize,
}

/// What blocks a client, until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// WAIT: until `replicas` peers hold this node's writes up to counter
    /// `target`, or the deadline (none: forever).
    Wait {
        /// The counter of the client's last write.
        target: u64,
        /// How many peers it asked for.
        replicas: i64,
        /// When to answer with the count so far.
        deadline: Option<Instant>,
    },
    /// SAVE: until the compaction it started has ended (`ended` is the count
    /// of ended compactions before it).
    Save {
        /// [`super::stats::Stats::rewrites_ended`] when it started.
        ended: u64,
    },
    /// Leader mode, on a follower: until the leader answers the request
    /// forwarded as `id`, or the deadline (then: outcome unknown).
    Forward {
        /// The forward's id.
        id: u64,
        /// The client speaks the text protocol (for the timeout's words).
        text: bool,
        /// `--request-timeout-ms` after it was sent.
        deadline: Instant,
    },
}

/// A blocked client's answer, once it is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `:n`.
    Int(i64),
    /// `+OK`.
    Ok,
    /// `-<message>`.
    Error(&'static str),
    /// A reply made elsewhere (the leader's, to a forwarded request).
    Bytes(Vec<u8>),
    /// "Outcome unknown", in the text protocol's words if `text`.
    Unknown {
        /// The client speaks the text protocol.
        text: bool,
    },
}

/// What the registry knows of one client connection.
#[derive(Debug)]
pub struct ClientInfo {
    /// CLIENT ID.
    pub id: u64,
    /// The driver's key of the connection.
    pub conn: usize,
    /// The client's address.
    pub addr: SocketAddr,
    /// The address it connected to.
    pub laddr: SocketAddr,
    /// The socket's file descriptor (-1 if none).
    pub fd: i32,
    /// When it connected.
    pub created: Instant,
    /// When its last batch of input was processed (CLIENT LIST's `idle`).
    pub seen: Instant,
    /// Its last command, as of that batch.
    pub cmd: &'static str,
    /// Commands queued and their bytes, while in MULTI.
    pub multi: Option<(usize, usize)>,
    /// Whether it speaks RESP3.
    pub resp3: bool,
    /// Whether it is a peer node's link.
    pub peer: bool,
    /// The peer node whose link it is (set at its `REPLHELLO`).
    pub peer_node: Option<u16>,
    /// Its buffers, as of that batch.
    pub buffers: Buffers,
    /// CLIENT SETNAME.
    pub name: Option<Name>,
    /// CLIENT SETINFO LIB-NAME.
    pub lib_name: Option<Name>,
    /// CLIENT SETINFO LIB-VER.
    pub lib_ver: Option<Name>,
    /// CLIENT NO-EVICT (nothing is evicted here: shown only).
    pub no_evict: bool,
    /// CLIENT NO-TOUCH (no access times are kept here: shown only).
    pub no_touch: bool,
    /// In MONITOR mode.
    pub monitor: bool,
    /// Blocked in WAIT or SAVE.
    pub blocked: bool,
    /// Killed: closed at the driver's next step, no longer listed.
    pub killed: bool,
    /// The answer of the command it is blocked in, once ready.
    answer: Option<Answer>,
}

/// A blocked client.
#[derive(Debug)]
struct Waiter {
    slot: usize,
    target: Target,
    block: Block,
}

/// The registry and the requests to the driver it gives rise to.
#[derive(Debug, Default)]
pub struct Clients {
    entries: Slab<ClientInfo>,
    /// The last client id given (ids start at 1).
    last_id: u64,
    /// Connections in MONITOR mode, with their slots.
    monitors: Vec<(Target, usize)>,
    /// This iteration's MONITOR lines.
    feed: Vec<u8>,
    /// Connections to close.
    kills: Vec<Kill>,
    waiters: Vec<Waiter>,
}

impl Clients {
    /// The entry of `session`, if the registry has it.
    pub fn get(&self, session: &Session) -> Option<&ClientInfo> {
        self.entries.get(session.slot).filter(|e| e.id == session.id)
    }

    /// The entry of `session`, for changing it.
    pub fn get_mut(&mut self, session: &Session) -> Option<&mut ClientInfo> {
        self.entries.get_mut(session.slot).filter(|e| e.id == session.id)
    }

    /// Every client not killed, with its slot, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &ClientInfo)> {
        self.entries.iter().filter(|(_, e)| !e.killed)
    }

    /// How many clients are blocked (INFO's `blocked_clients`).
    pub fn blocked(&self) -> usize {
        self.waiters.len()
    }

    /// How many blocked clients have a deadline (INFO's
    /// `clients_in_timeout_table`).
    pub fn timed(&self) -> usize {
        self.waiters.iter().filter(|w| matches!(w.block, Block::Wait { deadline: Some(_), .. })).count()
    }

    /// How many clients are in MONITOR mode.
    pub fn monitoring(&self) -> usize {
        self.monitors.len()
    }

    /// Marks the client at `slot` killed and asks the driver to close it.
    /// `flush`: see [`Kill::flush`].
    pub fn kill(&mut self, slot: usize, flush: bool) {
        let Some(e) = self.entries.get_mut(slot) else { return };
        if e.killed {
            return;
        }
        e.killed = true;
        let target = Target { conn: e.conn, id: e.id };
        self.kills.push(Kill { target, flush });
        self.forget(target.id);
    }

    /// Leader mode accepted a new epoch from node `except`: every other
    /// peer's inbound link is closed, its unsent replies (acknowledgements)
    /// discarded, so no deposed leader counts an acknowledgement given after
    /// this point.
    pub(super) fn kill_peers_except(&mut self, except: u16) {
        let slots: Vec<usize> = self
            .entries
            .iter()
            .filter(|(_, e)| e.peer_node.is_some_and(|p| p != except) && !e.killed)
            .map(|(slot, _)| slot)
            .collect();
        for slot in slots {
            self.kill(slot, false);
        }
    }

    /// The leader's answer to forward `id` arrived (or never will): the
    /// client waiting for it is answered, its target pushed to `ready`.
    pub(super) fn answer_forward(&mut self, id: u64, answer: impl FnOnce(bool) -> Answer, ready: &mut Vec<Target>) {
        let Some(i) = self.waiters.iter().position(|w| matches!(w.block, Block::Forward { id: f, .. } if f == id))
        else {
            return;
        };
        let w = self.waiters.swap_remove(i);
        let Block::Forward { text, .. } = w.block else { return };
        if let Some(e) = self.entries.get_mut(w.slot).filter(|e| e.id == w.target.id) {
            e.answer = Some(answer(text));
            ready.push(w.target);
        }
    }

    /// `--timeout`: closes every client idle for longer than `timeout` —
    /// not peer links, not clients blocked in WAIT or SAVE, not monitors
    /// (as Redis spares replicas, blocked clients and subscribers) — with no
    /// reply, as Redis does.
    pub(super) fn kill_idle(&mut self, now: Instant, timeout: Duration) {
        let idle: Vec<usize> = self
            .entries
            .iter()
            .filter(|(_, e)| !e.peer && !e.blocked && !e.monitor && !e.killed)
            .filter(|(_, e)| now.saturating_duration_since(e.seen) > timeout)
            .map(|(slot, _)| slot)
            .collect();
        for slot in idle {
            if let Some(e) = self.entries.get(slot) {
                log::debug!("{}: idle for more than {timeout:?} (--timeout), closing", e.addr);
            }
            self.kill(slot, false);
        }
    }

    /// Drops a client from the monitors and the blocked.
    fn forget(&mut self, id: u64) {
        self.monitors.retain(|(t, _)| t.id != id);
        self.waiters.retain(|w| w.target.id != id);
    }
}

impl ClientInfo {
    /// A new client's entry: client `id` from `addr` to `laddr` on socket
    /// `fd`, the driver's connection `conn`, connected at `now`.
    pub fn new(id: u64, conn: usize, addr: SocketAddr, laddr: SocketAddr, fd: i32, now: Instant) -> ClientInfo {
        ClientInfo {
            id,
            conn,
            addr,
            laddr,
            fd,
            created: now,
            seen: now,
            cmd: "",
            multi: None,
            resp3: false,
            peer: false,
            peer_node: None,
            buffers: Buffers::default(),
            name: None,
            lib_name: None,
            lib_ver: None,
            no_evict: false,
            no_touch: false,
            monitor: false,
            blocked: false,
            killed: false,
            answer: None,
        }
    }
}

impl Answer {
    /// Appends it as a reply.
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Answer::Int(n) => resp::int(out, *n),
            Answer::Ok => resp::simple(out, b"OK"),
            Answer::Error(msg) => resp::error(out, msg.as_bytes()),
            Answer::Bytes(b) => out.extend_from_slice(b),
            Answer::Unknown { text } => {
                let dialect = if *text { crate::proto::Dialect::Text } else { crate::proto::Dialect::Resp };
                super::leader::outcome_unknown(out, dialect);
            }
        }
    }
}

impl Node {
    // ------------------------------------------------ the driver's side

    /// Whether the client at `addr` may connect (`maxclients`); a refusal
    /// is counted and logged.
    pub fn admit_client(&mut self, addr: SocketAddr) -> bool {
        if self.stats.connected < self.cfg.max_clients {
            return true;
        }
        self.stats.rejected_connections += 1;
        log::warn!("refused {addr}: {} clients connected (maxclients)", self.stats.connected);
        false
    }

    /// A client connected from `addr` to `laddr` on socket `fd`, which the
    /// driver keeps under key `conn`: registers it and returns its session.
    pub fn client_connected(&mut self, conn: usize, addr: SocketAddr, laddr: SocketAddr, fd: i32) -> Session {
        self.stats.connected += 1;
        self.stats.total_connections += 1;
        let c = &mut self.clients;
        c.last_id += 1;
        let id = c.last_id;
        let slot = c.entries.insert(ClientInfo::new(id, conn, addr, laddr, fd, self.now));
        // Without a password every connection is as good as authenticated,
        // so the check per command is one flag.
        Session { id, slot, authenticated: self.cfg.requirepass.is_none(), ..Session::default() }
    }

    /// A client's connection closed: it leaves the registry.
    pub fn client_closed(&mut self, session: &Session) {
        self.stats.connected = self.stats.connected.saturating_sub(1);
        let c = &mut self.clients;
        if c.get(session).is_some() {
            c.entries.remove(session.slot);
            c.forget(session.id);
        }
    }

    /// After a batch of `session`'s input was processed: what its commands
    /// changed, for the other connections' CLIENT LIST, and its buffers.
    pub fn client_seen(&mut self, session: &Session, buffers: Buffers) {
        let now = self.now;
        let Some(e) = self.clients.get_mut(session) else { return };
        e.seen = now;
        e.cmd = session.last_cmd;
        e.multi = session.multi.as_ref().map(|m| m.queued());
        e.resp3 = session.resp3;
        e.peer = session.peer.is_some();
        e.peer_node = session.peer;
        e.buffers = buffers;
    }

    /// Whether connections are waiting to be closed ([`Node::take_kills`]).
    #[inline]
    pub fn has_kills(&self) -> bool {
        !self.clients.kills.is_empty()
    }

    /// The connections to close now (see the module docs).
    pub fn take_kills(&mut self) -> Vec<Kill> {
        std::mem::take(&mut self.clients.kills)
    }

    /// This iteration's MONITOR lines, and the connections to append them
    /// to (their ids checked), once the log commit is settled.
    pub fn monitor_feed(&self) -> (&[u8], impl Iterator<Item = Target> + '_) {
        (&self.clients.feed, self.clients.monitors.iter().map(|(t, _)| *t))
    }

    /// The MONITOR lines were delivered.
    pub fn monitor_fed(&mut self) {
        self.clients.feed.clear();
        if self.clients.monitors.is_empty() && self.clients.feed.capacity() > 1 << 20 {
            self.clients.feed = Vec::new();
        }
    }

    /// Appends the answer of the command `session` was blocked in (it is in
    /// [`super::Ready::unblocked`]) to `out`: it may go on.
    pub fn finish_blocked(&mut self, session: &Session, out: &mut Vec<u8>) {
        let Some(e) = self.clients.get_mut(session) else { return };
        e.blocked = false;
        if let Some(a) = e.answer.take() {
            a.encode(out);
        }
    }

    // ------------------------------------------------ the commands' side

    /// What a command leaves behind once it ran for `session` (dispatch
    /// calls it, and the subcommand dispatch for a subcommand): its name for
    /// CLIENT LIST, the counter WAIT waits for if it wrote, and its line for
    /// the monitors, if any (a branch when there are none).
    #[inline]
    pub(crate) fn ran(&mut self, session: &mut Session, spec: &'static CommandSpec, args: Args<'_>) {
        if !spec.subs.is_empty() {
            return; // the subcommand's own call does it
        }
        session.last_cmd = spec.name;
        if self.wrote {
            session.last_write = self.store.clock();
        }
        if !self.clients.monitors.is_empty() && spec.flags & flag::ADMIN == 0 {
            self.feed_monitors(session, args);
        }
    }

    /// Appends the MONITOR line of a command to the feed. A feed larger
    /// than the output hard limit would put every monitor over it: they are
    /// disconnected, and the feed dropped.
    #[cold]
    fn feed_monitors(&mut self, session: &Session, args: Args<'_>) {
        let micros = self.unix_micros();
        let addr = self.clients.get(session).map(|e| e.addr);
        monitor::line(&mut self.clients.feed, micros, addr, args);
        if self.clients.feed.len() > self.cfg.output_hard_limit {
            log::warn!("MONITOR output over the output hard limit in one iteration: disconnecting the monitors");
            for (_, slot) in std::mem::take(&mut self.clients.monitors) {
                self.clients.kill(slot, false);
            }
            self.clients.feed = Vec::new();
        }
    }

    /// Puts `session` in MONITOR mode. Returns false if it already was (or
    /// is not registered).
    pub(crate) fn start_monitor(&mut self, session: &Session) -> bool {
        let c = &mut self.clients;
        let Some(e) = c.entries.get_mut(session.slot).filter(|e| e.id == session.id && !e.monitor) else {
            return false;
        };
        e.monitor = true;
        c.monitors.push((Target { conn: e.conn, id: e.id }, session.slot));
        true
    }

    /// Takes `session` out of MONITOR mode (RESET).
    pub(crate) fn stop_monitor(&mut self, session: &Session) {
        if let Some(e) = self.clients.get_mut(session) {
            e.monitor = false;
        }
        self.clients.monitors.retain(|(t, _)| t.id != session.id);
    }

    /// Blocks `session` until `block` is settled. Returns false if it
    /// cannot block (it is not registered): the command must answer now.
    pub(crate) fn block(&mut self, session: &Session, block: Block) -> bool {
        let c = &mut self.clients;
        let Some(e) = c.entries.get_mut(session.slot).filter(|e| e.id == session.id) else { return false };
        e.blocked = true;
        e.answer = None;
        let target = Target { conn: e.conn, id: e.id };
        c.waiters.push(Waiter { slot: session.slot, target, block });
        true
    }

    /// Peer `session`'s link said REPLHELLO: the registry knows it as that
    /// peer's at once (a new epoch accepted later in the same batch must
    /// close it too).
    pub(crate) fn peer_linked_in(&mut self, session: &Session) {
        if let Some(e) = self.clients.get_mut(session) {
            e.peer = true;
            e.peer_node = session.peer;
        }
        if let Some(li) = session.peer.and_then(|p| self.repl.link_of(p)) {
            self.repl.kick(li, self.now);
        }
        // A new catch-up from it begins.
        self.synced_peers.retain(|&p| Some(p) != session.peer);
    }

    /// How many peers are connected and have acknowledged this node's
    /// writes up to counter `target` (WAIT, ROLE).
    pub(crate) fn peers_holding(&self, target: u64) -> i64 {
        self.repl.links.iter().filter(|l| is_up(l.state) && l.acked >= target).count() as i64
    }

    /// At the end of an iteration: the blocked clients whose answer is now
    /// known (enough peers acknowledged, a deadline passed, a compaction
    /// ended), into `ready` (cleared first).
    pub(super) fn settle_blocked(&mut self, now: Instant, ready: &mut Vec<Target>) {
        ready.clear();
        ready.append(&mut self.forward_ready);
        let mut i = 0;
        while i < self.clients.waiters.len() {
            let answer = match self.clients.waiters[i].block {
                Block::Wait { target, replicas, deadline } => {
                    let have = self.peers_holding(target);
                    (have >= replicas || deadline.is_some_and(|d| now >= d)).then_some(Answer::Int(have))
                }
                Block::Save { ended } if self.stats.rewrites_ended > ended => Some(if self.stats.last_rewrite_ok {
                    Answer::Ok
                } else {
                    Answer::Error("ERR the log compaction failed; the server log says why")
                }),
                Block::Save { .. } => None,
                Block::Forward { text, deadline, .. } => (now >= deadline).then_some(Answer::Unknown { text }),
            };
            let Some(answer) = answer else {
                i += 1;
                continue;
            };
            let w = self.clients.waiters.swap_remove(i);
            if let Some(e) = self.clients.entries.get_mut(w.slot).filter(|e| e.id == w.target.id) {
                e.answer = Some(answer);
                ready.push(w.target);
            }
        }
    }

    /// When a blocked client next needs a look, for [`Node::advance`]: the
    /// earliest WAIT deadline, or now for a SAVE whose compaction has just
    /// ended (the next [`Node::before_sleep`] answers it).
    pub(super) fn blocked_deadline(&self) -> Option<Instant> {
        let ended = self.stats.rewrites_ended;
        self.clients
            .waiters
            .iter()
            .filter_map(|w| match w.block {
                Block::Wait { deadline, .. } => deadline,
                Block::Save { ended: before } => (ended > before).then_some(self.now),
                Block::Forward { deadline, .. } => Some(deadline),
            })
            .min()
    }

    /// The client registry.
    pub fn clients(&self) -> &Clients {
        &self.clients
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{Args, Config};
    use crate::node::Ready;

    /// A node in a fresh directory (removed when the guard drops).
    struct TestNode {
        node: Node,
        dir: std::path::PathBuf,
    }

    impl Drop for TestNode {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn node(now: Instant) -> TestNode {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("kvstore-clients-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let d = dir.display().to_string();
        let args: Args = argh::FromArgs::from_args(&["kvstore-server"], &["0", "--dir", &d, "--fsync", "no"]).unwrap();
        let (node, _) = Node::open(Config::from_args(args).unwrap(), 1, now).unwrap();
        TestNode { node, dir }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// Runs one RESP request for `s` and returns the output and what
    /// processing said.
    fn run(node: &mut Node, s: &mut Session, args: &[&str]) -> (String, crate::node::Processed) {
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        let mut out = Vec::new();
        let p = node.process(s, req.as_bytes(), &mut out, 0);
        (String::from_utf8_lossy(&out).into_owned(), p)
    }

    #[test]
    fn a_kill_is_asked_of_the_driver_and_the_killed_leave_the_listings() {
        let t0 = Instant::now();
        let mut t = node(t0);
        let n = &mut t.node;
        let a = n.client_connected(10, addr(5000), addr(6379), 7);
        let mut b = n.client_connected(11, addr(5001), addr(6379), 8);
        assert!(a.id != b.id && a.id > 0);
        let victim = a.id.to_string();
        assert_eq!(run(n, &mut b, &["CLIENT", "KILL", "ID", &victim]).0, ":1\r\n");
        let kills = n.take_kills();
        assert_eq!(kills, [Kill { target: Target { conn: 10, id: a.id }, flush: false }]);
        assert!(!n.has_kills());
        let (list, _) = run(n, &mut b, &["CLIENT", "LIST"]);
        assert!(list.contains(&format!("id={} addr=127.0.0.1:5001", b.id)) && !list.contains("5000"), "{list}");
        // Killing oneself: the reply first, then the connection closes.
        let me = b.id.to_string();
        let (out, p) = run(n, &mut b, &["CLIENT", "KILL", "ID", &me, "SKIPME", "no"]);
        assert_eq!(out, ":1\r\n");
        assert!(p.close);
        assert_eq!(n.take_kills(), [Kill { target: Target { conn: 11, id: b.id }, flush: true }]);
        n.client_closed(&a);
        n.client_closed(&b);
        assert_eq!((n.clients().iter().count(), n.stats.connected), (0, 0));
        // A session the registry never saw finds nothing, and breaks nothing.
        let mut stray = Session::default();
        assert_eq!(run(n, &mut stray, &["CLIENT", "GETNAME"]).0, "$-1\r\n");
    }

    #[test]
    fn monitor_lines_are_made_only_while_someone_monitors() {
        let t0 = Instant::now();
        let mut t = node(t0);
        let n = &mut t.node;
        let mut a = n.client_connected(1, addr(5000), addr(6379), 7);
        let mut m = n.client_connected(2, addr(5001), addr(6379), 8);
        run(n, &mut a, &["SET", "k", "v"]);
        assert!(n.monitor_feed().0.is_empty());
        assert_eq!(run(n, &mut m, &["MONITOR"]).0, "+OK\r\n");
        assert_eq!(run(n, &mut m, &["MONITOR"]).0, "", "already monitoring: no reply, as in Redis");
        run(n, &mut a, &["SET", "k", "v w"]);
        run(n, &mut a, &["CONFIG", "GET", "maxclients"]);
        run(n, &mut a, &["CLIENT", "ID"]);
        let (feed, to) = n.monitor_feed();
        let feed = String::from_utf8_lossy(feed).into_owned();
        assert_eq!(to.collect::<Vec<_>>(), [Target { conn: 2, id: m.id }]);
        let lines: Vec<&str> = feed.lines().collect();
        assert_eq!(lines.len(), 2, "CONFIG is an admin command: not shown\n{feed}");
        assert!(lines[0].starts_with('+') && lines[0].ends_with(r#"[0 127.0.0.1:5000] "SET" "k" "v w""#), "{feed}");
        assert!(lines[1].ends_with(r#""CLIENT" "ID""#), "{feed}");
        n.monitor_fed();
        assert!(n.monitor_feed().0.is_empty());
        assert_eq!(run(n, &mut m, &["RESET"]).0, "+RESET\r\n");
        assert_eq!(n.clients().monitoring(), 0);
    }

    #[test]
    fn wait_blocks_its_client_until_the_deadline_then_answers_through_ready() {
        let t0 = Instant::now();
        let mut t = node(t0);
        let n = &mut t.node;
        let mut a = n.client_connected(3, addr(5000), addr(6379), 7);
        let (out, p) = run(n, &mut a, &["WAIT", "1", "100", "PING"]);
        assert!(out.starts_with("-ERR wrong number"), "{out}");
        assert!(!p.blocked);
        let mut req = Vec::new();
        for args in [&["WAIT", "1", "100"][..], &["PING"]] {
            req.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
            for x in args {
                req.extend_from_slice(format!("${}\r\n{x}\r\n", x.len()).as_bytes());
            }
        }
        let mut out = Vec::new();
        let p = n.process(&mut a, &req, &mut out, 0);
        assert!(p.blocked && out.is_empty(), "{p:?} {out:?}");
        assert!(p.consumed < req.len(), "the PING after it waits");
        assert_eq!(n.clients().blocked(), 1);
        let mut ready = Ready::default();
        n.before_sleep(t0, &mut ready);
        assert!(ready.unblocked.is_empty());
        let wake = n.advance(t0).expect("a deadline");
        assert!(wake <= t0 + Duration::from_millis(100), "the WAIT's deadline wakes the loop");
        let later = t0 + Duration::from_millis(100);
        n.set_time(later, crate::node::unix_now());
        n.before_sleep(later, &mut ready);
        assert_eq!(ready.unblocked, [Target { conn: 3, id: a.id }]);
        n.finish_blocked(&a, &mut out);
        assert_eq!(out, b":0\r\n", "no peer holds the write");
        assert_eq!(n.clients().blocked(), 0);
    }

    #[test]
    fn save_answers_once_its_compaction_has_replaced_the_log() {
        let t0 = Instant::now();
        let mut t = node(t0);
        let n = &mut t.node;
        let mut a = n.client_connected(4, addr(5000), addr(6379), 7);
        run(n, &mut a, &["SET", "k", "v"]);
        let (out, p) = run(n, &mut a, &["SAVE"]);
        assert!(p.blocked && out.is_empty(), "{out}");
        // The file switch runs on the log's helper thread: turn the loop
        // until the answer is ready.
        let mut ready = Ready::default();
        let end = Instant::now() + Duration::from_secs(20);
        while ready.unblocked.is_empty() {
            assert!(Instant::now() < end, "SAVE never answered");
            let now = Instant::now();
            n.before_sleep(now, &mut ready);
            n.advance(now);
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut out = Vec::new();
        n.finish_blocked(&a, &mut out);
        assert_eq!(out, b"+OK\r\n");
        assert_eq!(n.stats.compactions, 1);
    }
}
