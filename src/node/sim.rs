//! An in-memory cluster for tests: real [`Node`]s (store, log in a temp
//! dir, watermarks, link state machines) joined by byte pipes instead of
//! sockets, driven one step at a time by a seeded random schedule.
//!
//! The code under test is the server's own, driven through the same
//! boundary as the reactor drives it: [`Node::before_sleep`] commits the log,
//! [`Node::feed_link`] fills the links' pipes, which stand in for sockets
//! ([`Sim::tick`] does with them what `Server::before_sleep` does with its
//! connections), the peer runs the bytes it receives through
//! [`Node::process`], and the replies go back through [`Node::link_input`].
//! Only the sockets and the poll loop are stand-ins. The schedule delivers
//! bytes in arbitrary pieces and interleavings, cuts connections, overflows
//! queues, kills nodes (restarting them from their log) and keeps some
//! down; then the network heals, and every node must hold exactly what
//! last-writer-wins over all acknowledged writes gives, as computed by an
//! oracle store that applied each of them once.
//!
//! Writes may carry deadlines (PUTs that expire, EXPIRE, PERSIST). The wall
//! clock is the simulation's own ([`Sim::wall_ms`]), the same for every
//! node and the oracle, so a node's view can be compared with the oracle's
//! at any moment; once every deadline has passed the keys must be gone on
//! every node (actively expired, not only hidden) and stay gone.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use argh::FromArgs;
use proptest::prelude::*;

use super::{Commit, Node, Ready, Session};
use crate::config::{Args, Config};
use crate::repl::Fed;
use crate::repl::link::LinkState;
use crate::storage::record::{Op, Record};
use crate::storage::store::Store;

/// Nodes in the simulated cluster.
const N: usize = 3;
/// A small queue limit (a frame is some 50 bytes, a counter's of three
/// origins some 125), so that queues overflow and links resync often, and
/// catch-up scans go a few frames at a time. It must hold a scan's high
/// water (half of it) plus one more frame and `REPL_SYNCED`: a scan stops
/// below the high water, then sends the frame and, at its end, the
/// `REPL_SYNCED`; over the limit, every resync would overflow alike (300
/// did, with counter frames).
const QUEUE_LIMIT: &str = "500";

/// The wall clock at the start of every simulation: fixed, so that runs
/// repeat exactly.
pub(super) const SIM_EPOCH_MS: u64 = 1_700_000_000_000;

/// Node `i`'s port, which is also its id.
pub(super) fn port(i: usize) -> u16 {
    41_000 + i as u16
}

/// The node that link `li` of node `i` goes to (peers are listed in order).
pub(super) fn peer_of(i: usize, li: usize) -> usize {
    if li < i { li } else { li + 1 }
}

/// One connection of a link: what a socket pair would hold.
#[derive(Default)]
struct Pipe {
    /// Queued by the link, not yet received by the peer.
    to_peer: Vec<u8>,
    /// Received by the peer, not yet a whole frame.
    at_peer: Vec<u8>,
    /// The peer's replies, not yet read by the link.
    replies: Vec<u8>,
    /// The peer's session for this inbound connection.
    session: Session,
}

impl Pipe {
    fn idle(&self) -> bool {
        self.to_peer.is_empty() && self.at_peer.is_empty() && self.replies.is_empty()
    }
}

/// A simulated machine: a node's data directory, the node while it runs,
/// and its links' pipes.
struct Host {
    dir: PathBuf,
    /// `None` while the node is down.
    node: Option<Node>,
    /// Per link (the node's link index), its connection.
    pipes: Vec<Option<Pipe>>,
}

/// One step of a schedule.
#[derive(Clone, Debug)]
pub enum Step {
    /// A client's write on `node`: a PUT of `key` (kind < 20), a DEL of it
    /// if it exists (kind < 29), else a FLUSHALL.
    Write { node: usize, key: u8, kind: u8 },
    /// `n` PUTs in a row on `node` (more than a queue holds).
    Burst { node: usize, n: u8 },
    /// INCRBY `key` `by` on `node` (a converging counter: with peers and
    /// no election, increments made anywhere add up).
    Incr { node: usize, key: u8, by: i8 },
    /// A PUT of `key` on `node` that expires `ttl` ms from now.
    PutEx { node: usize, key: u8, ttl: u16 },
    /// EXPIRE `key` on `node` `ttl` ms from now (0: deletes it), or PERSIST
    /// (`None`), if the key is live there.
    Expire { node: usize, key: u8, ttl: Option<u16> },
    /// Up to `max` bytes of a link's queue reach its peer, which executes
    /// every whole frame and commits its log.
    Deliver { node: usize, link: usize, max: usize },
    /// The peer's replies reach the link.
    Ack { node: usize, link: usize },
    /// The connection breaks; whatever was not delivered is lost.
    Cut { node: usize, link: usize },
    /// `kill -9`, then a restart from the log.
    Crash { node: usize },
    /// `kill -9`; the node stays down until `Up` (or the end).
    Down { node: usize },
    /// A node that was down starts again.
    Up { node: usize },
    /// Time passes (backoffs expire); every node runs a loop iteration.
    Wait { ms: u64 },
}

/// The simulated cluster. See the module docs.
pub struct Sim {
    hosts: Vec<Host>,
    root: PathBuf,
    t0: Instant,
    ms: u64,
    /// Every acknowledged write, applied once.
    oracle: Store,
    /// The sum of every acknowledged increment, whatever the key.
    increments: i64,
    seq: u64,
    ready: Ready,
}

impl Sim {
    /// Starts `N` nodes, each in a fresh directory.
    pub fn new() -> Sim {
        static RUN: AtomicU64 = AtomicU64::new(0);
        let root = std::env::temp_dir().join(format!(
            "kvstore-sim-{}-{}",
            std::process::id(),
            RUN.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        let hosts = (0..N).map(|i| Host { dir: root.join(format!("n{i}")), node: None, pipes: Vec::new() }).collect();
        let mut oracle = Store::new(true);
        oracle.set_now(SIM_EPOCH_MS);
        let mut sim =
            Sim { hosts, root, t0: Instant::now(), ms: 0, oracle, increments: 0, seq: 0, ready: Ready::default() };
        for i in 0..N {
            sim.start(i);
        }
        sim
    }

    fn now(&self) -> Instant {
        self.t0 + Duration::from_millis(self.ms)
    }

    /// The wall clock of every node (and of the oracle).
    fn wall_ms(&self) -> u64 {
        SIM_EPOCH_MS + self.ms
    }

    fn config(&self, i: usize) -> Config {
        let peers: Vec<String> = (0..N).filter(|&j| j != i).map(|j| format!("127.0.0.1:{}", port(j))).collect();
        let (p, peers, dir) = (port(i).to_string(), peers.join(","), self.hosts[i].dir.display().to_string());
        // With a cluster secret, so that every reconnect runs the peers'
        // handshake too, its frames split and interleaved like any other.
        let args = [
            p.as_str(),
            &peers,
            "--dir",
            &dir,
            "--fsync",
            "no",
            "--peer-queue-limit",
            QUEUE_LIMIT,
            "--cluster-secret",
            "sim-secret",
        ];
        let args = Args::from_args(&["kvstore-server"], &args).expect("sim args");
        Config::from_args(args).expect("sim config")
    }

    fn start(&mut self, i: usize) {
        if self.hosts[i].node.is_some() {
            return;
        }
        let (node, _) = Node::open_at(self.config(i), port(i), self.now(), self.wall_ms()).expect("open a sim node");
        self.hosts[i].node = Some(node);
        self.hosts[i].pipes = (0..N - 1).map(|_| None).collect();
    }

    /// kill -9: nothing is lost that was acknowledged, since each step
    /// ends with its node's log commit; the node's connections break.
    fn stop(&mut self, i: usize) {
        let now = self.now();
        self.hosts[i].node = None;
        self.hosts[i].pipes.clear();
        for j in (0..N).filter(|&j| j != i) {
            let host = &mut self.hosts[j];
            let Some(node) = host.node.as_mut() else { continue };
            for li in 0..N - 1 {
                if peer_of(j, li) == i && host.pipes[li].take().is_some() {
                    node.link_failed(li, now, "peer died");
                }
            }
        }
    }

    /// The end of node `i`'s loop iteration, as the reactor's
    /// `before_sleep` does it with sockets: the node commits and says which
    /// links to connect (they connect if their peer is up); every pipe is
    /// fed, or dropped.
    fn tick(&mut self, i: usize) {
        let (now, wall) = (self.now(), self.wall_ms());
        let up: Vec<bool> = self.hosts.iter().map(|h| h.node.is_some()).collect();
        let host = &mut self.hosts[i];
        let Some(node) = host.node.as_mut() else { return };
        node.set_time(now, wall);
        node.before_sleep(now, &mut self.ready);
        assert!(!matches!(self.ready.commit, Commit::Failed(_)), "sim log commit failed");
        for &li in &self.ready.connect {
            if up[peer_of(i, li)] {
                let mut p = Pipe::default();
                node.link_connected(li, &mut p.to_peer);
                host.pipes[li] = Some(p);
            } else {
                node.link_failed(li, now, "connection refused");
            }
        }
        for li in 0..N - 1 {
            if let Some(p) = host.pipes[li].as_mut()
                && node.feed_link(li, &mut p.to_peer, 0, now) == Fed::Drop
            {
                host.pipes[li] = None;
            }
        }
        node.advance(now);
    }

    fn write(&mut self, i: usize, key: u8, kind: u8) {
        let Some(node) = self.hosts[i].node.as_mut() else { return };
        self.seq += 1;
        let key = format!("k{key}").into_bytes();
        let value = format!("v{}", self.seq).into_bytes();
        let op = match kind {
            0..20 => Op::Put,
            20..29 if node.store().contains(&key) => Op::Del,
            20..29 => return,
            _ => Op::FlushAll,
        };
        let (key, value) = match op {
            Op::Put => (&key[..], &value[..]),
            Op::Del => (&key[..], &b""[..]),
            _ => (&b""[..], &b""[..]),
        };
        node.local_write(op, key, value).expect("local write");
        if op == Op::FlushAll {
            let version = node.store().floor();
            self.tick(i);
            self.acknowledged(&Record { op, flags: 0, version, key, value, deadline: None });
        } else {
            self.acknowledge_key(i, key);
        }
    }

    /// A PUT with a deadline `ttl` ms from now, or (`expire`) a change of the
    /// deadline of a live key: `Some(ttl)`, EXPIRE (0 deletes it), `None`,
    /// PERSIST.
    fn write_deadline(&mut self, i: usize, key: u8, ttl: Option<u16>, expire: bool) {
        let wall = self.wall_ms();
        let Some(node) = self.hosts[i].node.as_mut() else { return };
        self.seq += 1;
        let key = format!("k{key}").into_bytes();
        let deadline = ttl.map(|t| wall + u64::from(t));
        if expire {
            if !node.set_deadline(&key, deadline).expect("set a deadline") {
                return;
            }
        } else {
            node.local_put(&key, format!("v{}", self.seq).as_bytes(), deadline).expect("local put");
        }
        self.acknowledge_key(i, &key);
    }

    /// An INCRBY; a refusal (the key holds no integer, or an overflow) is
    /// Redis's and writes nothing.
    fn incr(&mut self, i: usize, key: u8, by: i8) {
        let Some(node) = self.hosts[i].node.as_mut() else { return };
        let key = format!("k{key}").into_bytes();
        if crate::node::cmd::counters::increment(node, &key, i64::from(by)).is_ok() {
            self.increments += i64::from(by);
            self.acknowledge_key(i, &key);
        }
    }

    /// Ends node `i`'s iteration after a write of `key` and acknowledges the
    /// write to the oracle: the key's state on the node, as the record that
    /// sets it (equal to the write's own: a delete at its version, for a
    /// write that left a tombstone; a counter's whole state, for a counter).
    fn acknowledge_key(&mut self, i: usize, key: &[u8]) {
        let node = self.hosts[i].node.as_ref().expect("up");
        let store = node.store();
        let version = store.version_of(key).expect("written");
        let (mut value, deadline) = store.get_with_deadline(key).map(|(v, d)| (v.to_vec(), d)).unwrap_or_default();
        let mut op = if store.contains(key) { Op::Put } else { Op::Del };
        if let Some(c) = store.counter(key).filter(|_| op == Op::Put) {
            value.clear();
            c.encode(&mut value);
            op = Op::Counter;
        }
        self.tick(i);
        self.acknowledged(&Record { op, flags: 0, version, key, value: &value, deadline });
    }

    /// The log has `rec`: the oracle applies it.
    fn acknowledged(&mut self, rec: &Record<'_>) {
        self.oracle.apply(rec, 1);
        self.oracle.commit();
    }

    fn deliver(&mut self, i: usize, li: usize, max: usize) {
        let j = peer_of(i, li);
        let Some(mut p) = self.hosts[i].pipes.get_mut(li).and_then(Option::take) else { return };
        let n = max.min(p.to_peer.len());
        p.at_peer.extend(p.to_peer.drain(..n));
        // The socket took the bytes: the sender learns what it still holds.
        if let Some(node) = self.hosts[i].node.as_mut() {
            node.link_queued(li, p.to_peer.len());
        }
        let peer = self.hosts[j].node.as_mut().expect("a connection to a node that is down");
        let Pipe { at_peer, session, replies, .. } = &mut p;
        let done = peer.process(session, at_peer, replies, 0);
        assert!(done.error.is_none() && !done.close, "node {i} sent node {j} a bad frame: {done:?}");
        at_peer.drain(..done.consumed);
        self.hosts[i].pipes[li] = Some(p);
        self.tick(j);
    }

    fn ack(&mut self, i: usize, li: usize) {
        let now = self.now();
        let host = &mut self.hosts[i];
        let (Some(node), Some(Some(p))) = (host.node.as_mut(), host.pipes.get_mut(li)) else { return };
        match node.link_input(li, &p.replies, &mut p.to_peer, now) {
            Ok(used) => drop(p.replies.drain(..used)),
            Err(_) => host.pipes[li] = None,
        }
        self.tick(i);
    }

    fn cut(&mut self, i: usize, li: usize) {
        let now = self.now();
        let host = &mut self.hosts[i];
        if let (Some(node), Some(slot)) = (host.node.as_mut(), host.pipes.get_mut(li))
            && slot.take().is_some()
        {
            node.link_failed(li, now, "cut");
        }
    }

    /// Runs one step.
    pub fn step(&mut self, s: &Step) {
        match *s {
            Step::Write { node, key, kind } => self.write(node, key, kind),
            Step::Burst { node, n } => {
                for k in 0..n {
                    self.write(node, k % 12, 0);
                }
            }
            Step::Incr { node, key, by } => self.incr(node, key, by),
            Step::PutEx { node, key, ttl } => self.write_deadline(node, key, Some(ttl), false),
            Step::Expire { node, key, ttl } => self.write_deadline(node, key, ttl, true),
            Step::Deliver { node, link, max } => self.deliver(node, link, max),
            Step::Ack { node, link } => self.ack(node, link),
            Step::Cut { node, link } => self.cut(node, link),
            Step::Crash { node } => {
                if self.hosts[node].node.is_some() {
                    self.stop(node);
                    self.start(node);
                }
            }
            Step::Down { node } => self.stop(node),
            Step::Up { node } => self.start(node),
            Step::Wait { ms } => {
                self.ms += ms;
                self.oracle.set_now(self.wall_ms());
                for i in 0..N {
                    self.tick(i);
                }
            }
        }
    }

    /// Every node up, every link given time to reconnect, every byte
    /// delivered, until all links are live and idle. Panics if that never
    /// happens.
    pub fn heal(&mut self) {
        self.settle(None);
    }

    /// As [`Sim::heal`], but node `down` (if any) is kept down: the others
    /// settle among themselves.
    fn settle(&mut self, down: Option<usize>) {
        for i in (0..N).filter(|&i| Some(i) != down) {
            self.start(i);
        }
        if let Some(d) = down {
            self.stop(d);
        }
        for _ in 0..100 {
            self.step(&Step::Wait { ms: 10_000 });
            for _ in 0..10_000 {
                let mut moved = false;
                for i in 0..N {
                    for li in 0..self.hosts[i].pipes.len() {
                        if self.hosts[i].pipes[li].as_ref().is_some_and(|p| !p.to_peer.is_empty()) {
                            self.deliver(i, li, usize::MAX);
                            moved = true;
                        }
                        if self.hosts[i].pipes[li].as_ref().is_some_and(|p| !p.replies.is_empty()) {
                            self.ack(i, li);
                            moved = true;
                        }
                    }
                }
                if !moved {
                    break;
                }
            }
            let settled = (0..N).filter(|&i| Some(i) != down).all(|i| {
                let h = &self.hosts[i];
                let node = h.node.as_ref().expect("up");
                (0..N - 1).filter(|&li| Some(peer_of(i, li)) != down).all(|li| {
                    node.repl().links[li].state == LinkState::Connected && h.pipes[li].as_ref().is_some_and(Pipe::idle)
                })
            });
            if settled {
                return;
            }
        }
        panic!("the cluster did not settle");
    }

    /// Node `i`'s live keys and values.
    pub fn view(&self, i: usize) -> View {
        view_of(self.hosts[i].node.as_ref().expect("up").store())
    }

    /// What last-writer-wins over every acknowledged write gives.
    pub fn expected(&self) -> View {
        view_of(&self.oracle)
    }

    /// Node `i`'s clock and its watermark for node `j`.
    fn clock_and_watermark(&self, i: usize, j: usize) -> (u64, u64) {
        let node = self.hosts[i].node.as_ref().expect("up");
        (node.store().clock(), node.repl().watermark(port(j)))
    }
}

/// A node's live keys, each with its value and deadline.
pub type View = BTreeMap<Vec<u8>, (Vec<u8>, Option<u64>)>;

pub(super) fn view_of(store: &Store) -> View {
    (0..store.slots())
        .filter_map(|i| store.slot(i))
        .filter_map(|s| s.value.map(|v| (s.key.to_vec(), (v.to_vec(), s.deadline))))
        .collect()
}

impl Drop for Sim {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            h.node = None;
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Runs `steps`, heals, and checks that every node holds what the oracle
/// holds, and that no node holds a watermark past its origin's clock; then
/// lets every deadline pass, heals again, and checks that again, and that
/// every node has actively expired what was due.
fn check(steps: &[Step]) -> Result<(), String> {
    let mut sim = Sim::new();
    for s in steps {
        sim.step(s);
    }
    sim.heal();
    sim.compare()?;
    sim.step(&Step::Wait { ms: u64::from(u16::MAX) + 1 });
    sim.heal();
    sim.compare()?;
    for i in 0..N {
        let store = sim.hosts[i].node.as_ref().expect("up").store();
        if store.has_due() || store.keyspace_info().expires > 0 {
            return Err(format!("node {i} still holds keys past their deadline: {:?}", store.keyspace_info()));
        }
    }
    Ok(())
}

impl Sim {
    /// Whether every node holds what the oracle holds, and no node a
    /// watermark past its origin's clock.
    fn compare(&self) -> Result<(), String> {
        let sim = self;
        let want = sim.expected();
        for i in 0..N {
            let got = sim.view(i);
            if got != want {
                let diff: Vec<_> = want
                    .keys()
                    .chain(got.keys())
                    .filter(|k| want.get(*k) != got.get(*k))
                    .map(|k| {
                        let show = |v: Option<&(Vec<u8>, Option<u64>)>| {
                            v.map(|(v, d)| (String::from_utf8_lossy(v).into_owned(), *d))
                        };
                        format!(
                            "{}: want {:?}, node {i} has {:?}",
                            String::from_utf8_lossy(k),
                            show(want.get(k)),
                            show(got.get(k))
                        )
                    })
                    .collect();
                return Err(format!("node {i} diverged: {diff:?}"));
            }
            for j in (0..N).filter(|&j| j != i) {
                let (_, mark) = sim.clock_and_watermark(i, j);
                let (clock, _) = sim.clock_and_watermark(j, i);
                if mark > clock {
                    return Err(format!("node {i} holds watermark {mark} for node {j}, whose clock is {clock}"));
                }
            }
        }
        Ok(())
    }
}

fn step_strategy() -> impl Strategy<Value = Step> {
    let node = 0..N;
    let link = 0..N - 1;
    prop_oneof![
        30 => (node.clone(), 0u8..12, 0u8..30).prop_map(|(node, key, kind)| Step::Write { node, key, kind }),
        3 => (node.clone(), 5u8..30).prop_map(|(node, n)| Step::Burst { node, n }),
        8 => (node.clone(), 0u8..12, 1u16..5000).prop_map(|(node, key, ttl)| Step::PutEx { node, key, ttl }),
        10 => (node.clone(), 0u8..12, any::<i8>()).prop_map(|(node, key, by)| Step::Incr { node, key, by }),
        5 => (node.clone(), 0u8..12, prop::option::of(0u16..5000))
            .prop_map(|(node, key, ttl)| Step::Expire { node, key, ttl }),
        25 => (node.clone(), link.clone(), 1usize..200).prop_map(|(node, link, max)| Step::Deliver { node, link, max }),
        20 => (node.clone(), link.clone()).prop_map(|(node, link)| Step::Ack { node, link }),
        8 => (1u64..3000).prop_map(|ms| Step::Wait { ms }),
        5 => (node.clone(), link).prop_map(|(node, link)| Step::Cut { node, link }),
        4 => node.clone().prop_map(|node| Step::Crash { node }),
        3 => node.clone().prop_map(|node| Step::Down { node }),
        5 => node.prop_map(|node| Step::Up { node }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 300,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x6b76_7374_6f72_6531),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Any schedule of writes, partial deliveries, cuts, overflows, crashes
    /// and outages ends, once healed, with every node equal to the oracle.
    #[test]
    fn any_schedule_converges_to_last_writer_wins(steps in prop::collection::vec(step_strategy(), 1..160)) {
        check(&steps).map_err(TestCaseError::fail)?;
    }
}

/// Increments only, of two keys, on every node at once, with partial
/// deliveries, cuts, crashes and outages: once healed, every node shows the
/// exact sum of every acknowledged increment (no oracle: the arithmetic).
fn increments_add_up(steps: &[Step]) -> Result<(), String> {
    let mut sim = Sim::new();
    for s in steps {
        sim.step(s);
    }
    sim.heal();
    for i in 0..N {
        let view = sim.view(i);
        let value = |k: &[u8]| view.get(k).map_or(Ok(0), |(v, _)| String::from_utf8_lossy(v).parse::<i64>());
        let sum = value(b"k0").and_then(|a| value(b"k1").map(|b| a + b)).map_err(|e| e.to_string())?;
        if sum != sim.increments {
            return Err(format!("node {i} shows {sum} in all, {} were acknowledged: {view:?}", sim.increments));
        }
    }
    sim.compare()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 100,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x6b76_636f_756e_7431),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Concurrent INCRs on three masters lose nothing.
    #[test]
    fn concurrent_increments_on_every_node_add_up(
        steps in prop::collection::vec(step_strategy().prop_map(|s| match s {
            Step::Write { node, key, .. } | Step::Expire { node, key, .. } => Step::Incr { node, key: key % 2, by: 1 },
            Step::PutEx { node, key, ttl } => Step::Incr { node, key: key % 2, by: -((ttl % 100) as i8) },
            Step::Burst { node, n } => Step::Incr { node, key: 0, by: n as i8 },
            Step::Incr { node, key, by } => Step::Incr { node, key: key % 2, by },
            other => other,
        }), 1..160)
    ) {
        increments_add_up(&steps).map_err(TestCaseError::fail)?;
    }
}

/// A node's clock, raised only by a peer's REPL_SYNCED, must survive a
/// restart: otherwise its first write after it, made before its links are
/// back, is numbered at or below what a peer holds as its watermark, and
/// the catch-up scan (only what is newer) never sends it.
#[test]
fn a_clock_learned_from_repl_synced_survives_a_restart() {
    let mut sim = Sim::new();
    sim.heal();
    // Node 2's writes reach node 1 but not node 0, which is down.
    sim.step(&Step::Down { node: 0 });
    for _ in 0..50 {
        sim.step(&Step::Write { node: 2, key: 0, kind: 0 });
    }
    sim.settle(Some(0));
    // Node 0 comes back while node 2 is down: it learns node 1's clock
    // from node 1's REPL_SYNCED alone (node 1 forwards no write of node 2's).
    sim.settle(Some(2));
    assert!(sim.clock_and_watermark(0, 1).0 >= 50);
    // Node 1 restarts, so node 0's link to it resyncs: node 1 now holds
    // node 0's clock as node 0's watermark.
    sim.step(&Step::Crash { node: 1 });
    sim.settle(Some(2));
    assert!(sim.clock_and_watermark(1, 0).1 >= 50);
    // Node 0 restarts and takes a write before its links are back.
    sim.step(&Step::Crash { node: 0 });
    let clock = sim.clock_and_watermark(0, 1).0;
    assert!(clock >= 50, "node 0 restarted with clock {clock}");
    sim.step(&Step::Write { node: 0, key: 1, kind: 0 });
    sim.heal();
    assert_eq!(sim.view(1), sim.expected());
}

/// A FLUSHALL that reaches a node after a write newer than it must keep
/// that write, as the nodes that saw the two in the other order did.
#[test]
fn a_late_flushall_keeps_newer_writes() {
    let mut sim = Sim::new();
    sim.step(&Step::Write { node: 0, key: 0, kind: 0 });
    sim.heal();
    // Node 2 is down while node 0 flushes and node 1 then writes.
    sim.step(&Step::Down { node: 2 });
    sim.step(&Step::Write { node: 0, key: 0, kind: 29 });
    sim.settle(Some(2));
    sim.step(&Step::Write { node: 1, key: 1, kind: 0 });
    sim.settle(Some(2));
    // Node 2 comes back while node 0 is down: node 1's catch-up scan
    // relays node 0's FLUSHALL (first) and its own newer write ...
    sim.settle(Some(0));
    assert_eq!(sim.view(2), sim.expected());
    // ... and node 0's own resend of its FLUSHALL, later, changes nothing.
    sim.heal();
    assert_eq!(sim.expected().len(), 1);
    assert_eq!(sim.view(2), sim.expected());
}

/// A key that expired must not come back through an older write that
/// arrives late: node 1's write of `k0` is held in flight while node 0
/// overwrites the key with a newer, expiring write; once that expires and
/// has been reclaimed (a tombstone, not a hidden entry), node 1's write
/// reaches the others, and must change nothing anywhere.
#[test]
fn an_expired_key_is_not_brought_back_by_a_late_older_write() {
    let mut sim = Sim::new();
    sim.heal();
    // Node 1's write, held: its frames stay in node 1's pipes.
    sim.step(&Step::Write { node: 1, key: 0, kind: 0 });
    let late = sim.hosts[1].node.as_ref().expect("up").store().version_of(b"k0").expect("written");
    // Node 0 writes twice, so that its counter passes node 1's (ties go to
    // the higher node id), then k0 with a deadline 100 ms away.
    sim.step(&Step::Write { node: 0, key: 1, kind: 0 });
    sim.step(&Step::PutEx { node: 0, key: 0, ttl: 100 });
    let newer = sim.hosts[0].node.as_ref().expect("up").store().version_of(b"k0").expect("written");
    assert!(newer > late, "{newer:?} vs {late:?}");
    for li in 0..N - 1 {
        sim.step(&Step::Deliver { node: 0, link: li, max: usize::MAX });
        sim.step(&Step::Ack { node: 0, link: li });
    }
    for i in 0..N {
        let store = sim.hosts[i].node.as_ref().expect("up").store();
        assert_eq!((store.version_of(b"k0"), store.deadline_of(b"k0").is_some()), (Some(newer), true), "node {i}");
    }
    sim.step(&Step::Wait { ms: 200 });
    for i in [0, 2] {
        let store = sim.hosts[i].node.as_ref().expect("up").store();
        assert!(!store.has_due() && store.tombstones() > 0, "node {i} did not expire k0 actively");
        assert_eq!(store.version_of(b"k0"), Some(newer));
    }
    // Now node 1's old write arrives.
    for li in 0..N - 1 {
        sim.step(&Step::Deliver { node: 1, link: li, max: usize::MAX });
    }
    for i in 0..N {
        assert_eq!(sim.hosts[i].node.as_ref().expect("up").store().get(b"k0"), None, "node {i}");
    }
    sim.heal();
    sim.compare().unwrap();
    assert!(!sim.view(0).contains_key(&b"k0"[..]));
}
