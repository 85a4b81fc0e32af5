//! A deterministic simulation of leader mode (`--election bully`): real
//! [`Node`]s (store, log and `election.state` in a directory each, links,
//! the election state machine, the command gate, forwarding, the replies
//! that wait for a majority) joined by simulated TCP connections, under
//! simulated time, driven by seeded random schedules.
//!
//! The driver does with every connection what the reactor does with its
//! sockets (`server/mod.rs`), through the same boundary: a node's turn
//! reads its links' replies ([`Node::link_input`]), accepts and serves its
//! inbound connections and clients ([`Node::client_connected`],
//! [`Node::process`], closing what [`Node::take_kills`] names), commits
//! ([`Node::before_sleep`]), settles the replies waiting for a majority
//! ([`Node::settle_waits`]: nothing past the first waiting reply is
//! written), answers unblocked clients ([`Node::finish_blocked`]), opens and
//! feeds links ([`Node::feed_link`]), writes what it may, closes what is
//! done and asks when it next needs a turn ([`Node::advance`]). A node runs
//! a turn when bytes or a connection event reach it, or at the time it
//! asked for.
//!
//! The network: every connection is a pair of FIFO byte streams with a
//! per-direction latency and a bounded window (so a peer that does not read
//! fills its links' queues). A schedule changes latencies, partitions the
//! cluster (both ways, or one direction only: a direction that delivers
//! nothing and accepts no new connection), cuts connections (what was in
//! flight is lost; a reconnect then resends in another order), kills nodes
//! (`kill -9`: the node and its connections vanish, the data directory
//! stays; restarted at once or later), pauses nodes (no turns for a while;
//! bytes pile up at them), and has clients send pipelined PUT/SET and GET
//! requests, in the text protocol or RESP, to random nodes.
//!
//! Checked at every step: at most one leader per epoch, ever (the role of
//! each node and whom followers follow); no write acknowledged (`OK`) unless
//! a majority of the nodes' logs hold it or a newer version of its key (the
//! logs are read from their files); no read answered with a value older than
//! a write acknowledged, or a value read, before the read was sent, nor with
//! a value a majority does not hold; no write refused as not applied
//! (`NO_LEADER`, `NOT_LEADER`) in any log. Whenever the network is healed
//! and quiet, exactly one leader, followed by all, within a bound. At the
//! end every node holds the same data, and each key the newest
//! acknowledged write or a newer one whose outcome was unknown.
//!
//! `KV_LSIM_CASES` sets how many schedules run (default: a CI-sized number),
//! `KV_LSIM_SEED` the seed; a failure prints the seed and the (shrunk)
//! schedule, which [`replay`] runs again (pin it as a test).

use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use argh::FromArgs;
use proptest::prelude::*;

use super::clients::Buffers;
use super::leader::{Wait, push_wait};
use super::sim::{SIM_EPOCH_MS, peer_of, port, view_of};
use super::{Commit, Node, Ready, Session};
use crate::config::{Args, Config};
use crate::repl::Fed;
use crate::repl::election::Role;
use crate::repl::link::LinkState;
use crate::storage::log::LOG_FILE;
use crate::storage::record::{Op, Record, Version};

const HEARTBEAT_MS: u64 = 20;
const TIMEOUT_MS: u64 = 100;
const REQUEST_TIMEOUT_MS: u64 = 400;
/// Bytes a direction of a connection holds (in flight plus unread): a
/// socket's buffers.
const WINDOW: usize = 64 << 10;
/// Keys the clients use (few, so that writes and reads meet).
const KEYS: u8 = 5;
/// Once healed and quiet: the bound for every link to be up (a link's
/// reconnect backoff reaches 5 s) ...
const LINKS_BOUND_MS: u64 = 6_000;
/// ... and then for one leader that every node follows.
const LEADER_BOUND_MS: u64 = 10 * TIMEOUT_MS;
/// ... and for requests through every node to succeed (a take-over by a
/// higher node included).
const PROBE_BOUND_MS: u64 = 20 * TIMEOUT_MS;

/// A connection's output, as the reactor's `OutBuf`: bytes and how many are
/// written.
#[derive(Default)]
struct Out {
    data: Vec<u8>,
    written: usize,
}

impl Out {
    fn len(&self) -> usize {
        self.data.len() - self.written
    }

    /// Writes up to `max` bytes, none from byte `limit` of `data` on.
    fn send(&mut self, limit: usize, max: usize) -> Vec<u8> {
        let end = self.data.len().min(limit).min(self.written.saturating_add(max)).max(self.written);
        let chunk = self.data[self.written..end].to_vec();
        self.written = end;
        if self.written == self.data.len() {
            self.data.clear();
            self.written = 0;
        }
        chunk
    }

    fn discard(&mut self) {
        self.data.truncate(self.written);
    }
}

/// One direction of a connection: chunks in flight, each due at a time, in
/// order (TCP does not reorder).
#[derive(Default)]
struct Wire {
    chunks: VecDeque<(u64, Vec<u8>)>,
}

impl Wire {
    fn bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.1.len()).sum()
    }

    fn push(&mut self, due: u64, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            // Never before the chunk ahead of it.
            let due = self.chunks.back().map_or(due, |c| c.0.max(due));
            self.chunks.push_back((due, bytes));
        }
    }

    fn deliver(&mut self, now: u64, to: &mut Vec<u8>) -> bool {
        let mut moved = false;
        while self.chunks.front().is_some_and(|c| c.0 <= now) {
            if let Some((_, b)) = self.chunks.pop_front() {
                to.extend_from_slice(&b);
                moved = true;
            }
        }
        moved
    }
}

/// The accepting end of a connection, as the reactor keeps a client's.
struct Served {
    session: Session,
    out: Out,
    waits: VecDeque<Wait>,
    blocked: bool,
    closing: bool,
}

/// What one end of a connection will see of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Open,
    /// The other end closed: what is in flight arrives, then EOF.
    Eof,
    /// Reset: gone at once, with whatever was in flight.
    Reset,
    /// This end is closed and its node knows.
    Gone,
}

/// A peer link's connection: node `dialer`'s link `li` to node `acceptor`.
struct PeerConn {
    dialer: usize,
    li: usize,
    acceptor: usize,
    link_out: Out,
    link_in: Vec<u8>,
    acc_in: Vec<u8>,
    /// The acceptor's end, once it accepted.
    served: Option<Served>,
    fwd: Wire,
    back: Wire,
    dialer_end: End,
    acceptor_end: End,
}

/// A client's connection to node `node`, with the requests it awaits
/// replies to (indices into the history), in order.
struct ClientConn {
    node: usize,
    served: Option<Served>,
    input: Vec<u8>,
    text: bool,
    pending: VecDeque<usize>,
    recv: Vec<u8>,
    /// The node closed it (or died).
    closed: bool,
}

/// What became of a client's request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Pending,
    Ok,
    Read(Option<Vec<u8>>),
    /// Certainly not applied (`NO_LEADER`, `NOT_LEADER`, ...).
    NotApplied(String),
    Unknown,
}

/// One request of the history.
#[derive(Debug)]
struct OpRec {
    write: bool,
    key: Vec<u8>,
    value: Vec<u8>,
    node: usize,
    /// Its place in real-time order (the history's sequence).
    sent: u64,
    outcome: Outcome,
}

struct Host {
    dir: PathBuf,
    node: Option<Node>,
    paused: bool,
    /// When it asked for its next turn (ms).
    wake: u64,
    /// Something reached it: it runs a turn at the next tick.
    poke: bool,
    /// How far its log file has been read.
    log_read: u64,
    /// Per key, the newest version its log holds.
    held: BTreeMap<Vec<u8>, Version>,
}

/// One step of a schedule.
#[derive(Clone, Debug)]
pub enum Step {
    /// Time passes.
    Run { ms: u16 },
    /// A client connects to `node` and sends these requests pipelined
    /// (write?, key), in the text protocol or RESP.
    Request { node: usize, text: bool, ops: Vec<(bool, u8)> },
    /// The latency of one direction.
    Latency { from: usize, to: usize, ms: u8 },
    /// The nodes in `side` (a bit mask) and the others cannot reach each
    /// other, both ways.
    Partition { side: u8 },
    /// `from` cannot reach `to` (the other direction works).
    OneWay { from: usize, to: usize },
    /// The network is whole again (latencies stay).
    Mend,
    /// Link `link` of `node` loses its connection.
    Cut { node: usize, link: usize },
    /// `kill -9`, restarted at once from its directory.
    Crash { node: usize },
    /// `kill -9`; down until `Up`.
    Down { node: usize },
    /// A node that was down starts.
    Up { node: usize },
    /// The node gets no turns until `Resume` (SIGSTOP).
    Pause { node: usize },
    /// A paused node runs again.
    Resume { node: usize },
    /// Everything healed and up, no requests: exactly one leader within the
    /// bound.
    Quiet,
}

/// The simulated cluster. See the module docs.
pub struct LeaderSim {
    n: usize,
    hosts: Vec<Host>,
    root: PathBuf,
    t0: Instant,
    ms: u64,
    peers: BTreeMap<usize, PeerConn>,
    clients: BTreeMap<usize, ClientConn>,
    next_conn: usize,
    lat: Vec<Vec<u64>>,
    cut_off: Vec<Vec<bool>>,
    ready: Ready,
    ops: Vec<OpRec>,
    seq: u64,
    /// Every (key, value) a log holds, with its version.
    versions: BTreeMap<(Vec<u8>, Vec<u8>), Version>,
    /// Per key, what a client learned was committed: (sequence, version)
    /// of acknowledged writes and of values read.
    committed: BTreeMap<Vec<u8>, Vec<(u64, Version)>>,
    /// The leader of every epoch, as seen so far.
    leaders: BTreeMap<u64, u16>,
    failure: Option<String>,
    /// Recent events, for a failure's report.
    trace: VecDeque<String>,
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port(i)))
}

fn sim_root() -> PathBuf {
    static RUN: AtomicU64 = AtomicU64::new(0);
    // Election state is fsynced at every vote: in memory where there is one.
    let base = if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    base.join(format!("kvstore-lsim-{}-{}", std::process::id(), RUN.fetch_add(1, Ordering::Relaxed)))
}

impl LeaderSim {
    /// `n` nodes in fresh directories, all up, the network whole.
    pub fn new(n: usize) -> LeaderSim {
        let root = sim_root();
        let _ = std::fs::remove_dir_all(&root);
        let hosts = (0..n)
            .map(|i| Host {
                dir: root.join(format!("n{i}")),
                node: None,
                paused: false,
                wake: 0,
                poke: true,
                log_read: 16,
                held: BTreeMap::new(),
            })
            .collect();
        let mut sim = LeaderSim {
            n,
            hosts,
            root,
            t0: Instant::now(),
            ms: 0,
            peers: BTreeMap::new(),
            clients: BTreeMap::new(),
            next_conn: 1,
            lat: vec![vec![1; n]; n],
            cut_off: vec![vec![false; n]; n],
            ready: Ready::default(),
            ops: Vec::new(),
            seq: 0,
            versions: BTreeMap::new(),
            committed: BTreeMap::new(),
            leaders: BTreeMap::new(),
            failure: None,
            trace: VecDeque::new(),
        };
        for i in 0..n {
            sim.start(i);
        }
        sim
    }

    fn now(&self) -> Instant {
        self.t0 + Duration::from_millis(self.ms)
    }

    fn majority(&self) -> usize {
        self.n / 2 + 1
    }

    fn note(&mut self, s: String) {
        if self.trace.len() >= 200 {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("{:>6}ms {s}", self.ms));
    }

    fn fail(&mut self, why: String) {
        if self.failure.is_none() {
            let trace: Vec<_> = self.trace.iter().cloned().collect();
            self.failure = Some(format!("at {} ms: {why}\nrecent events:\n  {}", self.ms, trace.join("\n  ")));
        }
    }

    fn config(&self, i: usize) -> Config {
        let peers: Vec<String> = (0..self.n).filter(|&j| j != i).map(|j| addr(j).to_string()).collect();
        let (p, peers, dir) = (port(i).to_string(), peers.join(","), self.hosts[i].dir.display().to_string());
        let (hb, to, rt) = (HEARTBEAT_MS.to_string(), TIMEOUT_MS.to_string(), REQUEST_TIMEOUT_MS.to_string());
        let args = [
            p.as_str(),
            &peers,
            "--dir",
            &dir,
            "--fsync",
            "no",
            "--election",
            "bully",
            "--heartbeat-ms",
            &hb,
            "--election-timeout-ms",
            &to,
            "--request-timeout-ms",
            &rt,
        ];
        let args = Args::from_args(&["kvstore-server"], &args).expect("sim args");
        Config::from_args(args).expect("sim config")
    }

    fn start(&mut self, i: usize) {
        if self.hosts[i].node.is_some() {
            return;
        }
        let wall = SIM_EPOCH_MS + self.ms;
        let (node, _) = Node::open_at(self.config(i), port(i), self.now(), wall).expect("open a sim node");
        let h = &mut self.hosts[i];
        h.node = Some(node);
        h.paused = false;
        h.poke = true;
        self.note(format!("node {i} starts"));
    }

    /// `kill -9`: the node and its connections vanish; its peers see their
    /// connections to it reset, its clients theirs closed.
    fn stop(&mut self, i: usize) {
        if self.hosts[i].node.take().is_none() {
            return;
        }
        self.note(format!("node {i} killed"));
        for c in self.peers.values_mut() {
            if c.dialer == i {
                c.dialer_end = End::Gone;
                if c.acceptor_end != End::Gone {
                    c.acceptor_end = End::Reset;
                    self.hosts[c.acceptor].poke = true;
                }
            }
            if c.acceptor == i {
                c.acceptor_end = End::Gone;
                if c.dialer_end != End::Gone {
                    c.dialer_end = End::Reset;
                    self.hosts[c.dialer].poke = true;
                }
            }
        }
        self.peers.retain(|_, c| c.dialer_end != End::Gone || c.acceptor_end != End::Gone);
        let dead: Vec<usize> = self.clients.iter().filter(|(_, c)| c.node == i).map(|(k, _)| *k).collect();
        for k in dead {
            if let Some(mut c) = self.clients.remove(&k) {
                c.closed = true;
                self.client_replies(&mut c);
            }
        }
    }

    /// Runs one step.
    pub fn step(&mut self, s: &Step) {
        let n = self.n;
        match *s {
            Step::Run { ms } => self.run(u64::from(ms)),
            Step::Request { node, text, ref ops } => self.request(node % n, text, ops),
            Step::Latency { from, to, ms } => self.lat[from % n][to % n] = u64::from(ms),
            Step::Partition { side } => {
                let a = |i: usize| side & (1 << i) != 0;
                for i in 0..n {
                    for j in 0..n {
                        self.cut_off[i][j] = a(i) != a(j);
                    }
                }
                self.note(format!("partition {side:b}"));
            }
            Step::OneWay { from, to } if from % n != to % n => {
                self.cut_off[from % n][to % n] = true;
                self.note(format!("{} cannot reach {}", from % n, to % n));
            }
            Step::OneWay { .. } => {}
            Step::Mend => self.mend(),
            Step::Cut { node, link } => self.cut(node % n, link % (n - 1)),
            Step::Crash { node } => {
                if self.hosts[node % n].node.is_some() {
                    self.stop(node % n);
                    self.start(node % n);
                }
            }
            Step::Down { node } => self.stop(node % n),
            Step::Up { node } => self.start(node % n),
            Step::Pause { node } => {
                self.hosts[node % n].paused = true;
                self.note(format!("node {} paused", node % n));
            }
            Step::Resume { node } => self.resume(node % n),
            Step::Quiet => self.quiet(),
        }
    }

    fn resume(&mut self, i: usize) {
        if self.hosts[i].paused {
            self.hosts[i].paused = false;
            self.hosts[i].poke = true;
            self.note(format!("node {i} resumed"));
        }
    }

    fn mend(&mut self) {
        for row in &mut self.cut_off {
            row.iter_mut().for_each(|c| *c = false);
        }
        self.note("network mended".into());
    }

    fn cut(&mut self, i: usize, li: usize) {
        let mut cut = false;
        for c in self.peers.values_mut().filter(|c| c.dialer == i && c.li == li) {
            for (end, node) in [(&mut c.dialer_end, c.dialer), (&mut c.acceptor_end, c.acceptor)] {
                if *end != End::Gone {
                    *end = End::Reset;
                    self.hosts[node].poke = true;
                }
            }
            c.fwd.chunks.clear();
            c.back.chunks.clear();
            cut = true;
        }
        if cut {
            self.note(format!("link {i}->{} cut", peer_of(i, li)));
        }
    }

    fn run(&mut self, ms: u64) {
        for _ in 0..ms {
            if self.failure.is_some() {
                return;
            }
            self.tick();
        }
    }

    /// One millisecond: bytes due arrive, and every node that has
    /// something to do takes a turn.
    fn tick(&mut self) {
        self.ms += 1;
        SIM_MS.store(self.ms, Ordering::Relaxed);
        let now = self.ms;
        let LeaderSim { peers, hosts, cut_off, .. } = self;
        for c in peers.values_mut() {
            let (d, a) = (c.dialer, c.acceptor);
            if !cut_off[d][a] && matches!(c.acceptor_end, End::Open | End::Eof) && c.fwd.deliver(now, &mut c.acc_in) {
                hosts[a].poke = true;
            }
            if !cut_off[a][d] && matches!(c.dialer_end, End::Open | End::Eof) && c.back.deliver(now, &mut c.link_in) {
                hosts[d].poke = true;
            }
        }
        for k in 0..self.n {
            let i = (now as usize + k) % self.n;
            let h = &self.hosts[i];
            if h.node.is_some() && !h.paused && (h.poke || h.wake <= now) {
                self.turn(i);
            }
        }
    }

    /// A client connects to node `i` and sends `ops`.
    fn request(&mut self, i: usize, text: bool, ops: &[(bool, u8)]) {
        if self.hosts[i].node.is_none() || ops.is_empty() {
            return; // connection refused
        }
        let mut c = ClientConn {
            node: i,
            served: None,
            input: Vec::new(),
            text,
            pending: VecDeque::new(),
            recv: Vec::new(),
            closed: false,
        };
        for &(write, key) in ops {
            self.seq += 1;
            let key = format!("k{}", key % KEYS).into_bytes();
            let value = if write { format!("v{}", self.seq).into_bytes() } else { Vec::new() };
            let req = match (write, text) {
                (true, true) => format!("PUT {} {}\n", s(&key), s(&value)).into_bytes(),
                (false, true) => format!("GET {}\n", s(&key)).into_bytes(),
                (true, false) => resp_request(&[b"SET", &key, &value]),
                (false, false) => resp_request(&[b"GET", &key]),
            };
            c.input.extend_from_slice(&req);
            c.pending.push_back(self.ops.len());
            let what = if write { format!("PUT {}={}", s(&key), s(&value)) } else { format!("GET {}", s(&key)) };
            self.note(format!("client sends {what} to node {i} (#{})", self.seq));
            self.ops.push(OpRec { write, key, value, node: i, sent: self.seq, outcome: Outcome::Pending });
        }
        self.clients.insert(self.next_conn, c);
        self.next_conn += 1;
        self.hosts[i].poke = true;
    }
}

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn resp_request(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Serves one accepted connection's input, as the reactor's `process`.
fn serve(node: &mut Node, s: &mut Served, input: &mut Vec<u8>) {
    if s.blocked || s.closing || input.is_empty() {
        return;
    }
    let p = node.process(&mut s.session, input, &mut s.out.data, s.out.written);
    input.drain(..p.consumed);
    node.client_seen(&s.session, Buffers::default());
    if let Some(w) = p.wait {
        push_wait(&mut s.waits, w);
    }
    s.blocked |= p.blocked;
    if p.close {
        s.closing = true;
        if p.attack {
            s.out.discard();
        }
    }
}

/// Closes what the node names (CLIENT KILL, peers dropped for a new
/// epoch), as the reactor's `close_killed`.
fn kills(node: &mut Node, i: usize, peers: &mut BTreeMap<usize, PeerConn>, clients: &mut BTreeMap<usize, ClientConn>) {
    for k in node.take_kills() {
        let served = match (peers.get_mut(&k.target.conn), clients.get_mut(&k.target.conn)) {
            (Some(c), _) if c.acceptor == i => c.served.as_mut(),
            (_, Some(c)) if c.node == i => c.served.as_mut(),
            _ => None,
        };
        if let Some(s) = served.filter(|s| s.session.id == k.target.id) {
            s.closing = true;
            if !k.flush {
                s.out.discard();
            }
        }
    }
}

/// Records whom node `node` takes as the leader of its epoch: there must be
/// one per epoch, ever.
fn note_leader(node: &Node, leaders: &mut BTreeMap<u64, u16>, failure: &mut Vec<String>) {
    let Some(e) = node.election() else { return };
    let claim = if e.role == Role::Leader { Some(node.id()) } else { e.leader.filter(|&l| l != node.id()) };
    if e.role == Role::Leader && e.leader != Some(node.id()) {
        failure.push(format!("node {} leads epoch {} but names {:?} as the leader", node.id(), e.epoch, e.leader));
    }
    let Some(l) = claim else { return };
    match leaders.get(&e.epoch) {
        Some(&prev) if prev != l => failure.push(format!(
            "two leaders of epoch {}: {prev} and {l} (node {} says {l}, role {:?})",
            e.epoch,
            node.id(),
            e.role
        )),
        Some(_) => {}
        None => {
            leaders.insert(e.epoch, l);
        }
    }
}

impl LeaderSim {
    /// Node `i`'s loop iteration, as `Server::run`'s with sockets.
    fn turn(&mut self, i: usize) {
        let now = self.now();
        let (ms, wall) = (self.ms, SIM_EPOCH_MS + self.ms);
        let up: Vec<bool> = self.hosts.iter().map(|h| h.node.is_some()).collect();
        let mut problems = Vec::new();
        let mut closed_clients = Vec::new();
        let mut poke = Vec::new();
        let before = self.hosts[i].node.as_ref().and_then(Node::election).map(|e| (e.role, e.epoch, e.leader));
        SIM_NODE.store(i as u64, Ordering::Relaxed);
        let LeaderSim { hosts, peers, clients, ready, leaders, lat, cut_off, next_conn, .. } = self;
        let host = &mut hosts[i];
        let Some(node) = host.node.as_mut() else { return };
        host.poke = false;
        node.set_time(now, wall);

        // Events: the links' replies and closes ...
        for c in peers.values_mut().filter(|c| c.dialer == i && c.dialer_end != End::Gone) {
            if c.dialer_end == End::Reset {
                node.link_failed(c.li, now, "connection reset");
                c.dialer_end = End::Gone;
                continue;
            }
            if !c.link_in.is_empty() {
                match node.link_input(c.li, &c.link_in, &mut c.link_out.data, now) {
                    Ok(used) => drop(c.link_in.drain(..used)),
                    Err(_) => {
                        close_dialer(c);
                        poke.push(c.acceptor);
                        continue;
                    }
                }
            }
            if c.dialer_end == End::Eof && c.back.chunks.is_empty() {
                node.link_failed(c.li, now, "closed by the peer");
                c.dialer_end = End::Gone;
            }
        }
        note_leader(node, leaders, &mut problems);
        kills(node, i, peers, clients);
        // ... then the peers' links to this node and the clients.
        let keys: Vec<usize> = peers.keys().copied().collect();
        for k in keys {
            let Some(c) = peers.get_mut(&k).filter(|c| c.acceptor == i && c.acceptor_end != End::Gone) else {
                continue;
            };
            if c.acceptor_end == End::Reset {
                if let Some(s) = &c.served {
                    node.client_closed(&s.session);
                }
                c.acceptor_end = End::Gone;
                continue;
            }
            let s = c.served.get_or_insert_with(|| served(node.client_connected(k, addr(c.dialer), addr(i), -1)));
            serve(node, s, &mut c.acc_in);
            if c.acceptor_end == End::Eof && c.fwd.chunks.is_empty() && !s.blocked {
                s.closing = true;
            }
            note_leader(node, leaders, &mut problems);
            kills(node, i, peers, clients);
        }
        let keys: Vec<usize> = clients.keys().copied().collect();
        for k in keys {
            let Some(c) = clients.get_mut(&k).filter(|c| c.node == i && !c.closed) else { continue };
            let s = c.served.get_or_insert_with(|| served(node.client_connected(k, addr(99), addr(i), -1)));
            serve(node, s, &mut c.input);
            if c.pending.is_empty() && !s.blocked {
                s.closing = true; // it has every reply and hung up
            }
            note_leader(node, leaders, &mut problems);
            kills(node, i, peers, clients);
        }

        // Before sleeping: commit, settle waits, answer the unblocked.
        node.before_sleep(now, ready);
        assert!(!matches!(ready.commit, Commit::Failed(_)), "sim log commit failed");
        note_leader(node, leaders, &mut problems);
        let served_here = peers
            .values_mut()
            .filter(|c| c.acceptor == i)
            .filter_map(|c| c.served.as_mut())
            .chain(clients.values_mut().filter(|c| c.node == i).filter_map(|c| c.served.as_mut()));
        for s in served_here {
            if !s.waits.is_empty() {
                let r = node.settle_waits(&mut s.waits, &mut s.out.data, s.out.written, false, now);
                s.closing |= r.close;
            }
        }
        for t in &ready.unblocked {
            let s = match (peers.get_mut(&t.conn), clients.get_mut(&t.conn)) {
                (Some(c), _) if c.acceptor == i => c.served.as_mut(),
                (_, Some(c)) if c.node == i => c.served.as_mut(),
                _ => None,
            };
            if let Some(s) = s.filter(|s| s.session.id == t.id && !s.closing) {
                node.finish_blocked(&s.session, &mut s.out.data);
                s.blocked = false;
                host.poke = true; // its input is processed next turn
            }
        }
        kills(node, i, peers, clients);

        // Links: connect as asked, feed, write.
        for &li in &ready.connect {
            let j = peer_of(i, li);
            if up[j] && !cut_off[i][j] && !cut_off[j][i] {
                let mut c = PeerConn {
                    dialer: i,
                    li,
                    acceptor: j,
                    link_out: Out::default(),
                    link_in: Vec::new(),
                    acc_in: Vec::new(),
                    served: None,
                    fwd: Wire::default(),
                    back: Wire::default(),
                    dialer_end: End::Open,
                    acceptor_end: End::Open,
                };
                node.link_connected(li, &mut c.link_out.data);
                peers.insert(*next_conn, c);
                *next_conn += 1;
                poke.push(j);
            } else {
                node.link_failed(li, now, if up[j] { "unreachable" } else { "connection refused" });
            }
        }
        for c in peers.values_mut().filter(|c| c.dialer == i && matches!(c.dialer_end, End::Open | End::Eof)) {
            if node.feed_link(c.li, &mut c.link_out.data, c.link_out.written, now) == Fed::Drop {
                close_dialer(c);
                poke.push(c.acceptor);
                continue;
            }
            let room = WINDOW.saturating_sub(c.fwd.bytes() + c.acc_in.len());
            c.fwd.push(ms + lat[i][c.acceptor], c.link_out.send(usize::MAX, room));
            node.link_queued(c.li, c.link_out.len());
        }
        for c in peers.values_mut().filter(|c| c.acceptor == i && matches!(c.acceptor_end, End::Open | End::Eof)) {
            let Some(s) = c.served.as_mut() else { continue };
            let limit = s.waits.front().map_or(usize::MAX, |w| w.at);
            let room = WINDOW.saturating_sub(c.back.bytes() + c.link_in.len());
            c.back.push(ms + lat[i][c.dialer], s.out.send(limit, room));
            if s.closing && s.out.len() == 0 {
                node.client_closed(&s.session);
                c.acceptor_end = End::Gone;
                if c.dialer_end == End::Open {
                    c.dialer_end = End::Eof;
                    poke.push(c.dialer);
                }
            }
        }
        for (&k, c) in clients.iter_mut().filter(|(_, c)| c.node == i && !c.closed) {
            let Some(s) = c.served.as_mut() else { continue };
            let limit = s.waits.front().map_or(usize::MAX, |w| w.at);
            c.recv.extend_from_slice(&s.out.send(limit, usize::MAX));
            if s.closing && s.out.len() == 0 {
                node.client_closed(&s.session);
                c.closed = true;
            }
            closed_clients.push(k);
        }
        host.wake = node.advance(now).map_or(u64::MAX, |t| {
            let d = t.saturating_duration_since(self.t0);
            u64::try_from(d.as_micros().div_ceil(1000)).unwrap_or(u64::MAX)
        });
        note_leader(node, leaders, &mut problems);
        let after = node.election().map(|e| (e.role, e.epoch, e.leader));
        peers.retain(|_, c| c.dialer_end != End::Gone || c.acceptor_end != End::Gone);
        for j in poke {
            hosts[j].poke = true;
        }
        if after != before
            && let Some((role, epoch, leader)) = after
        {
            self.note(format!("node {i}: {} in epoch {epoch}, leader {leader:?}", role.name()));
        }
        for p in problems {
            self.fail(p);
        }
        // The clients read their replies.
        for k in closed_clients {
            if let Some(mut c) = self.clients.remove(&k) {
                self.client_replies(&mut c);
                if !c.closed || !c.pending.is_empty() {
                    self.clients.insert(k, c);
                }
            }
        }
    }
}

fn served(session: Session) -> Served {
    Served { session, out: Out::default(), waits: VecDeque::new(), blocked: false, closing: false }
}

/// The dialer closed its link's connection (its node knows): the acceptor
/// gets what is in flight, then EOF.
fn close_dialer(c: &mut PeerConn) {
    c.dialer_end = End::Gone;
    c.link_out.discard();
    if c.acceptor_end == End::Open {
        c.acceptor_end = End::Eof;
    }
}

/// A reply parsed by a client.
enum Reply {
    Ok,
    Value(Option<Vec<u8>>),
    Error(String),
}

/// The first whole reply in `buf`, and its length.
fn parse_reply(buf: &[u8], text: bool) -> Option<(Reply, usize)> {
    let eol = buf.iter().position(|&b| b == b'\n')?;
    let line = &buf[..eol];
    if text {
        let r = match line {
            b"OK" => Reply::Ok,
            b"NOT_FOUND" => Reply::Value(None),
            l if l.starts_with(b"ERROR ") => Reply::Error(s(&l[6..])),
            l => Reply::Value(Some(l.to_vec())),
        };
        return Some((r, eol + 1));
    }
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match line.first() {
        Some(b'+') if &line[1..] == b"OK" => Some((Reply::Ok, eol + 1)),
        Some(b'-') => Some((Reply::Error(s(&line[1..])), eol + 1)),
        Some(b'$') if &line[1..] == b"-1" => Some((Reply::Value(None), eol + 1)),
        Some(b'$') => {
            let n: usize = s(&line[1..]).parse().ok()?;
            let v = buf.get(eol + 1..eol + 1 + n)?.to_vec();
            buf.get(eol + 1 + n..eol + 3 + n)?;
            Some((Reply::Value(Some(v)), eol + 3 + n))
        }
        _ => Some((Reply::Error(format!("unexpected reply {:?}", s(line))), eol + 1)),
    }
}

impl LeaderSim {
    /// Client `c` reads what it got; once its connection is closed, what
    /// it still awaits has an unknown outcome.
    fn client_replies(&mut self, c: &mut ClientConn) {
        while let Some(&op) = c.pending.front() {
            let Some((reply, used)) = parse_reply(&c.recv, c.text) else { break };
            c.recv.drain(..used);
            c.pending.pop_front();
            let outcome = match reply {
                Reply::Ok if self.ops[op].write => Outcome::Ok,
                Reply::Value(v) if !self.ops[op].write => Outcome::Read(v),
                Reply::Error(e) if e.contains("TIMEOUT outcome unknown") => Outcome::Unknown,
                Reply::Error(e)
                    if ["NO_LEADER", "NOT_LEADER", "CLUSTERDOWN", "READONLY"].iter().any(|w| e.starts_with(w)) =>
                {
                    Outcome::NotApplied(e)
                }
                Reply::Error(e) => {
                    self.fail(format!("request {:?} got an unexpected error: {e}", self.ops[op]));
                    Outcome::Unknown
                }
                Reply::Ok | Reply::Value(_) => {
                    self.fail(format!("request {:?} got a reply of the wrong kind", self.ops[op]));
                    Outcome::Unknown
                }
            };
            self.complete(op, outcome);
        }
        if c.closed {
            for op in std::mem::take(&mut c.pending) {
                self.complete(op, Outcome::Unknown);
            }
        }
    }

    /// Reads the new records of every node's log.
    fn scan_logs(&mut self) {
        for h in &mut self.hosts {
            let Ok(mut f) = std::fs::File::open(h.dir.join(LOG_FILE)) else { continue };
            let len = f.metadata().map_or(0, |m| m.len());
            if len < h.log_read {
                h.log_read = 16; // compacted: read it anew (versions only grow)
            }
            let mut buf = Vec::new();
            if f.seek(SeekFrom::Start(h.log_read)).is_err() || f.read_to_end(&mut buf).is_err() {
                continue;
            }
            let mut pos = 0;
            while let Ok((rec, used)) = Record::decode(&buf[pos..], 1 << 20) {
                pos += used;
                if rec.op == Op::Put || rec.op == Op::Del {
                    let v = h.held.entry(rec.key.to_vec()).or_insert(Version(0));
                    *v = (*v).max(rec.version);
                }
                if rec.op == Op::Put {
                    self.versions.insert((rec.key.to_vec(), rec.value.to_vec()), rec.version);
                }
            }
            h.log_read += pos as u64;
        }
    }

    /// How many nodes' logs hold `version` of `key`, or a newer one.
    fn holding(&self, key: &[u8], version: Version) -> usize {
        self.hosts.iter().filter(|h| h.held.get(key).is_some_and(|&v| v >= version)).count()
    }

    /// A request's outcome is known: the checks of the module docs.
    fn complete(&mut self, op: usize, outcome: Outcome) {
        self.seq += 1;
        let seq = self.seq;
        let o = &self.ops[op];
        let (key, value, sent, write) = (o.key.clone(), o.value.clone(), o.sent, o.write);
        self.note(format!(
            "{} {}{} on node {} (#{sent}): {outcome:?}",
            if write { "PUT" } else { "GET" },
            s(&key),
            if write { format!("={}", s(&value)) } else { String::new() },
            o.node
        ));
        self.ops[op].outcome = outcome.clone();
        let version = match &outcome {
            Outcome::Ok => Some(value),
            Outcome::Read(v) => v.clone(),
            _ => return,
        };
        self.scan_logs();
        let version = match version {
            None => Version(0),
            Some(v) => match self.versions.get(&(key.clone(), v.clone())) {
                Some(&ver) => ver,
                None => {
                    return self.fail(format!(
                        "{} {}={} is in no log",
                        if write { "acknowledged" } else { "read" },
                        s(&key),
                        s(&v)
                    ));
                }
            },
        };
        if version > Version(0) {
            let have = self.holding(&key, version);
            if have < self.majority() {
                return self.fail(format!(
                    "{} {} at {version:?} is held by {have} of {} nodes' logs",
                    if write { "acknowledged write of" } else { "read of" },
                    s(&key),
                    self.n
                ));
            }
        }
        let events = self.committed.entry(key.clone()).or_default();
        let newest = events.iter().filter(|e| e.0 < sent).max_by_key(|e| e.1).copied();
        events.push((seq, version));
        if !write
            && let Some((at, newest)) = newest
            && version < newest
        {
            self.fail(format!(
                "stale read of {}: {version:?}, but {newest:?} was acknowledged or read (at #{at}) before the read \
                 was sent (#{sent})",
                s(&key)
            ));
        }
    }

    /// Every node up and running, the network whole.
    fn heal(&mut self) {
        self.mend();
        for i in 0..self.n {
            self.start(i);
            self.resume(i);
        }
    }

    /// Whether every node is up with every link connected.
    fn links_up(&self) -> bool {
        self.hosts
            .iter()
            .all(|h| h.node.as_ref().is_some_and(|n| n.repl().links.iter().all(|l| l.state == LinkState::Connected)))
    }

    /// The one leader every node follows, in its epoch, if there is one.
    fn sole_leader(&self) -> Option<usize> {
        let elections: Vec<_> = self.hosts.iter().map(|h| h.node.as_ref().and_then(Node::election)).collect();
        let leaders: Vec<usize> =
            (0..self.n).filter(|&i| elections[i].is_some_and(|e| e.role == Role::Leader)).collect();
        let &[l] = &leaders[..] else { return None };
        let le = elections[l]?;
        let id = port(l);
        elections.iter().all(|e| e.is_some_and(|e| e.epoch == le.epoch && e.leader == Some(id))).then_some(l)
    }

    /// Heals everything, then, with no requests: every link up within
    /// [`LINKS_BOUND_MS`], and one leader followed by all within
    /// [`LEADER_BOUND_MS`] after that; then through every node a read, and
    /// then a write and a read, must succeed within [`PROBE_BOUND_MS`]
    /// (a request that fails is sent again: a higher node may take over
    /// meanwhile, as Bully's rule says).
    fn quiet(&mut self) {
        self.one_leader();
        let start = self.ms;
        for i in 0..self.n {
            self.probe(i, &[(false, (i % usize::from(KEYS)) as u8)], start);
        }
        for i in 0..self.n {
            self.probe(i, &[(true, (i % usize::from(KEYS)) as u8), (false, 0)], start);
        }
    }

    /// Sends `ops` to node `i` until all succeed, or fails once
    /// [`PROBE_BOUND_MS`] have passed since `start`.
    fn probe(&mut self, i: usize, ops: &[(bool, u8)], start: u64) {
        while self.failure.is_none() {
            let first = self.ops.len();
            self.request(i, i % 2 == 1, ops);
            while self.failure.is_none() && self.ops[first..].iter().any(|o| o.outcome == Outcome::Pending) {
                self.tick();
            }
            if self.ops[first..].iter().all(|o| matches!(o.outcome, Outcome::Ok | Outcome::Read(_))) {
                return;
            }
            if self.ms - start > PROBE_BOUND_MS {
                let got: Vec<_> = self.ops[first..].iter().map(|o| &o.outcome).collect();
                let why = format!(
                    "healed and quiet, but requests through node {i} still fail after {PROBE_BOUND_MS} ms: {got:?}"
                );
                return self.fail(why);
            }
            self.run(TIMEOUT_MS / 2);
        }
    }

    /// Runs until `ops` sent to every node at once are answered: whether
    /// all of them succeeded.
    #[cfg(test)]
    fn probe_round(&mut self, ops: &[(bool, u8)]) -> bool {
        let first = self.ops.len();
        for i in 0..self.n {
            self.request(i, i % 2 == 1, ops);
        }
        while self.failure.is_none() && self.ops[first..].iter().any(|o| o.outcome == Outcome::Pending) {
            self.tick();
        }
        self.ops[first..].iter().all(|o| matches!(o.outcome, Outcome::Ok | Outcome::Read(_)))
    }

    /// See [`LeaderSim::quiet`].
    fn one_leader(&mut self) {
        self.heal();
        self.note("healed and quiet".into());
        let start = self.ms;
        while !self.links_up() {
            if self.failure.is_some() {
                return;
            }
            if self.ms - start > LINKS_BOUND_MS {
                let states: Vec<Vec<&str>> = self
                    .hosts
                    .iter()
                    .map(|h| {
                        h.node.as_ref().map_or(vec![], |n| n.repl().links.iter().map(|l| l.state.name()).collect())
                    })
                    .collect();
                return self.fail(format!("healed, but links not all up within {LINKS_BOUND_MS} ms: {states:?}"));
            }
            self.tick();
        }
        let up = self.ms;
        while self.sole_leader().is_none() {
            if self.failure.is_some() {
                return;
            }
            if self.ms - up > LEADER_BOUND_MS {
                let roles: Vec<_> = self
                    .hosts
                    .iter()
                    .map(|h| h.node.as_ref().and_then(Node::election).map(|e| (e.role, e.epoch, e.leader)))
                    .collect();
                return self.fail(format!(
                    "healed and quiet, links up, but no single leader within {LEADER_BOUND_MS} ms: {roles:?}"
                ));
            }
            self.tick();
        }
        self.note(format!(
            "node {:?} leads all ({} ms to links up, {} ms more to one leader)",
            self.sole_leader(),
            up - start,
            self.ms - up
        ));
    }

    /// Whether every node holds the same keys and values.
    fn converged(&self) -> bool {
        let views: Vec<_> = self.hosts.iter().filter_map(|h| h.node.as_ref()).map(|n| view_of(n.store())).collect();
        views.len() == self.n && views.windows(2).all(|w| w[0] == w[1])
    }

    /// Heals, lets every request end and the nodes converge, then checks
    /// what they hold against the history.
    fn finish(&mut self) {
        self.quiet();
        let start = self.ms;
        while self.failure.is_none() && !(self.clients.is_empty() && self.converged() && self.sole_leader().is_some()) {
            if self.ms - start > 20_000 {
                return self.fail("healed, but the nodes did not converge within 20 s".into());
            }
            self.run(10);
        }
        if self.failure.is_some() {
            return;
        }
        self.scan_logs();
        let Some(store) = self.hosts[0].node.as_ref().map(Node::store) else { return };
        let mut problems = Vec::new();
        for k in 0..KEYS {
            let key = format!("k{k}").into_bytes();
            let of = |o: &OpRec| self.versions.get(&(o.key.clone(), o.value.clone())).copied();
            let acked =
                self.ops.iter().filter(|o| o.write && o.key == key && o.outcome == Outcome::Ok).filter_map(of).max();
            let last = store.get(&key).map(|v| (v.to_vec(), store.version_of(&key)));
            match (acked, last) {
                (None, None) => {}
                (Some(a), None) => problems.push(format!("{}: the acknowledged write at {a:?} is gone", s(&key))),
                (_, Some((v, ver))) => {
                    let op = self.ops.iter().find(|o| o.write && o.key == key && o.value == v);
                    let fine = match op.map(|o| &o.outcome) {
                        Some(Outcome::Ok) => true,
                        Some(Outcome::Unknown) => acked.is_none_or(|a| ver.is_some_and(|ver| ver > a)),
                        _ => false,
                    };
                    if !fine || acked.is_some_and(|a| ver.is_none_or(|ver| ver < a)) {
                        problems.push(format!(
                            "{} ends as {} ({ver:?}, written by {op:?}); the newest acknowledged write is at {acked:?}",
                            s(&key),
                            s(&v)
                        ));
                    }
                }
            }
        }
        for o in self.ops.iter().filter(|o| o.write && matches!(o.outcome, Outcome::NotApplied(_))) {
            if self.versions.contains_key(&(o.key.clone(), o.value.clone())) {
                problems.push(format!("{o:?} was refused as not applied, but a log holds it"));
            }
        }
        for p in problems {
            self.fail(p);
        }
    }
}

impl LeaderSim {
    /// One line: what the schedule did (`KV_LSIM_STATS`).
    fn print_stats(&self) {
        let count = |f: &dyn Fn(&OpRec) -> bool| self.ops.iter().filter(|o| f(o)).count();
        eprintln!(
            "lsim n={} not_highest={} ms={} epochs={} writes_ok={} writes_unknown={} writes_refused={} reads_ok={} reads_unknown={} \
             reads_refused={}",
            self.n,
            u8::from(self.sole_leader() != Some(self.n - 1)),
            self.ms,
            self.leaders.keys().max().copied().unwrap_or(0),
            count(&|o| o.write && o.outcome == Outcome::Ok),
            count(&|o| o.write && o.outcome == Outcome::Unknown),
            count(&|o| o.write && matches!(o.outcome, Outcome::NotApplied(_))),
            count(&|o| !o.write && matches!(o.outcome, Outcome::Read(_))),
            count(&|o| !o.write && o.outcome == Outcome::Unknown),
            count(&|o| !o.write && matches!(o.outcome, Outcome::NotApplied(_))),
        );
    }
}

impl Drop for LeaderSim {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            h.node = None;
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Runs `steps` on `n` nodes from a cold start (which must elect a leader
/// within the bound), then heals and checks the end state: the failure, if
/// any, with the recent events.
pub fn replay(n: usize, steps: &[Step]) -> Result<(), String> {
    init_log();
    let mut sim = LeaderSim::new(n);
    sim.quiet();
    for s in steps {
        if let Some(f) = sim.failure.take() {
            return Err(f);
        }
        sim.step(s);
    }
    if sim.failure.is_none() {
        sim.finish();
    }
    if std::env::var_os("KV_LSIM_STATS").is_some() {
        sim.print_stats();
    }
    sim.failure.take().map_or(Ok(()), Err)
}

fn step_strategy(n: usize) -> impl Strategy<Value = Step> {
    let node = 0..n;
    prop_oneof![
        22 => (1u16..40).prop_map(|ms| Step::Run { ms }),
        8 => (40u16..400).prop_map(|ms| Step::Run { ms }),
        30 => (node.clone(), any::<bool>(), prop::collection::vec((any::<bool>(), 0..KEYS), 1..4))
            .prop_map(|(node, text, ops)| Step::Request { node, text, ops }),
        4 => (node.clone(), node.clone(), 0u8..40).prop_map(|(from, to, ms)| Step::Latency { from, to, ms }),
        3 => (1u8..(1u8 << n) - 1).prop_map(|side| Step::Partition { side }),
        3 => (node.clone(), node.clone()).prop_map(|(from, to)| Step::OneWay { from, to }),
        5 => Just(Step::Mend),
        4 => (node.clone(), 0..n - 1).prop_map(|(node, link)| Step::Cut { node, link }),
        3 => node.clone().prop_map(|node| Step::Crash { node }),
        2 => node.clone().prop_map(|node| Step::Down { node }),
        3 => node.clone().prop_map(|node| Step::Up { node }),
        2 => node.clone().prop_map(|node| Step::Pause { node }),
        3 => node.prop_map(|node| Step::Resume { node }),
        1 => Just(Step::Quiet),
    ]
}

/// With `KV_LSIM_LOG` set, the nodes' log lines go to stderr (for a
/// replayed schedule), each with the simulated time.
struct SimLogger;

static SIM_MS: AtomicU64 = AtomicU64::new(0);
/// The node whose turn it is (for the log lines).
static SIM_NODE: AtomicU64 = AtomicU64::new(0);

impl log::Log for SimLogger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Info
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            let (ms, node) = (SIM_MS.load(Ordering::Relaxed), SIM_NODE.load(Ordering::Relaxed));
            eprintln!("{ms:>6}ms [node {node}] {} {}", r.level(), r.args());
        }
    }
    fn flush(&self) {}
}

fn init_log() {
    if std::env::var_os("KV_LSIM_LOG").is_some() && log::set_logger(&SimLogger).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The seed of the schedules (`KV_LSIM_SEED`).
fn seed() -> u64 {
    env_u64("KV_LSIM_SEED", 0x6c65_6164_6572_3031)
}

fn config(default_cases: u64) -> ProptestConfig {
    ProptestConfig {
        cases: env_u64("KV_LSIM_CASES", default_cases) as u32,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed()),
        failure_persistence: None,
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    }
}

fn check(n: usize, steps: &[Step]) -> Result<(), TestCaseError> {
    replay(n, steps).map_err(|e| TestCaseError::fail(format!("KV_LSIM_SEED={}: {e}", seed())))
}

proptest! {
    #![proptest_config(config(500))]

    /// Three nodes, any schedule: the checks of the module docs.
    #[test]
    fn three_nodes_keep_every_promise(steps in prop::collection::vec(step_strategy(3), 1..120)) {
        check(3, &steps)?;
    }
}

proptest! {
    #![proptest_config(config(100))]

    /// Five nodes, any schedule: the same checks.
    #[test]
    fn five_nodes_keep_every_promise(steps in prop::collection::vec(step_strategy(5), 1..120)) {
        check(5, &steps)?;
    }
}

/// A new leader answers reads before it has written anything. It used to
/// time them out: the `REPL_SYNCED` that made it leader (a peer's frame,
/// which stages a watermark record) counted as a write of its own, so its
/// reply on the voter's link waited for a majority (and failed the link
/// with `-TIMEOUT` after `--request-timeout-ms`), and every read waited
/// for a commit point at the new epoch's first counter, which no follower
/// acknowledges until the leader's first write.
#[test]
fn a_new_leader_answers_reads_before_its_first_write() {
    let mut sim = LeaderSim::new(3);
    sim.one_leader();
    assert!(sim.probe_round(&[(false, 0)]), "a GET through every node failed: {:?}", sim.failure);
    assert!(sim.probe_round(&[(false, 1)]), "{:?}", sim.failure);
    assert!(sim.failure.is_none(), "{:?}", sim.failure);
}

/// Found by the simulation: a follower forwards a GET to a leader that is
/// paused; the leader resumes, steps down, and its unconfirmable reply
/// ends as `-TIMEOUT` on the link, which fails it. The forward stayed in
/// the link's queue, so the reply to the next forward on the new
/// connection went to the first client, and the second client's GET
/// timed out.
#[test]
fn a_forward_lost_with_its_link_does_not_take_the_next_ones_reply() {
    use Step::*;
    let steps = [
        Cut { node: 1, link: 0 },
        Run { ms: 108 },
        Crash { node: 1 },
        Pause { node: 2 },
        Request { node: 0, text: false, ops: vec![(false, 0)] },
        Run { ms: 21 },
        Latency { from: 2, to: 1, ms: 5 },
        Run { ms: 79 },
    ];
    replay(3, &steps).unwrap();
}

/// Found by the simulation: a voter for a candidate that had led the
/// previous epoch named it the leader of the new one before it won (and
/// another node won it).
#[test]
fn a_voter_names_no_leader_of_an_epoch_before_its_heartbeat() {
    use Step::*;
    let steps = [
        Crash { node: 2 },
        Down { node: 3 },
        Run { ms: 99 },
        Quiet,
        Pause { node: 0 },
        Pause { node: 3 },
        Run { ms: 20 },
        Pause { node: 4 },
        Run { ms: 100 },
    ];
    replay(5, &steps).unwrap();
}

/// Found by the simulation (5 nodes), not fixed: a new leader answers a
/// read with a write of a deposed leader that it holds but a majority does
/// not. Node 2 (leader of epoch 1) is paused with a forwarded PUT of `k2`
/// in its input; nodes 4, 3, 1, 0 elect node 4 for epoch 2; node 2
/// resumes, applies the PUT as the leader it still thinks it is, and its
/// live link gives the write to node 4. A GET of `k2` through node 0 is
/// answered by node 4 with that value, held by 2 of 5 logs: should nodes 2
/// and 4 fail now, the others elect a leader without it, and a later read
/// returns the older value. Fixed: the leader writes such a late write of
/// an older epoch again as its own (`Node::adopt`), and a read waits for
/// that to be on a majority; and no reply leaves a new leader before a
/// majority holds all it held when it took office (`Node::leader_settled`),
/// as Raft's leader commits an entry of its term first.
#[test]
fn a_read_shows_no_older_epochs_write_that_a_majority_lacks() {
    use Step::*;
    let steps = [
        Pause { node: 2 },
        Request { node: 1, text: false, ops: vec![(true, 2)] },
        Run { ms: 101 },
        Resume { node: 2 },
        Run { ms: 4 },
        Request { node: 0, text: false, ops: vec![(false, 2)] },
        Run { ms: 1 },
    ];
    replay(5, &steps).unwrap();
}
