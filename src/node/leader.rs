//! Leader mode (`--election bully`), the node's side: the election state
//! machine ([`crate::repl::election`]) persisted and fed, the command gate
//! (a follower forwards or refuses writes and linearizable reads), and the
//! replies that wait for a majority ([`Wait`]).
//!
//! A leader's reply to a write waits until the write's counter is at or
//! below the commit point (the highest counter a majority has logged, see
//! [`crate::repl::election::commit_point`]); a reply to a read waits until
//! the commit point has reached the leader's last write (so no read shows
//! what a failover could lose) and a heartbeat round sent after the read
//! has been answered by a majority in this epoch (read-index: the leader
//! still leads). The driver holds such replies in the connection's output
//! and writes nothing past the first one still waiting.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::Node;
use super::clients::{Answer, Block};
use super::cmd::{self, CommandSpec, Ctx, Flow, flag};
use super::session::Session;
use crate::proto::{Argv, Dialect, resp, text};
use crate::repl::Forwarded;
use crate::repl::election::{self, Acks, Election, Event, FollowerWrites, Reads, Role};
use crate::repl::link::LinkState;
use crate::repl::wire;
use crate::storage::log::Storage;

/// The file in the data directory holding `epoch voted_for`.
const STATE_FILE: &str = "election.state";

/// A reply (and all after it on its connection) waiting for the leader's
/// majority. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    /// Output offset of the first waiting reply.
    pub at: usize,
    /// Its dialect (for the error that replaces it, if it comes to that).
    pub dialect: Dialect,
    /// The commit point it waits for.
    pub commit: u64,
    /// The heartbeat round it waits for (0: none).
    pub round: u64,
    /// The leadership it was made under ([`Election::term`]).
    pub term: u64,
    /// The loop iteration it was made in: if that iteration's log commit
    /// fails, its writes were not applied.
    pub iteration: u64,
    /// When it was made (`--request-timeout-ms`).
    pub since: Instant,
}

impl Wait {
    /// Folds `other` (a later reply of the same connection) into this one.
    pub fn merge(&mut self, other: &Wait) {
        self.commit = self.commit.max(other.commit);
        self.round = self.round.max(other.round);
        self.iteration = self.iteration.max(other.iteration);
    }
}

/// What became of a [`Wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Its replies may leave.
    Ready,
    /// Not yet.
    Waiting,
    /// It can no longer be confirmed (leadership lost, timed out): the
    /// replies become "outcome unknown" and the connection is closed.
    Unknown,
}

/// What [`Node::settle_waits`] did to one connection's replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SettledConn {
    /// Some replies may now be written (released, or replaced by an error).
    pub released: bool,
    /// The connection must be closed once its output is written (what
    /// followed the failed reply in a pipeline may have depended on it).
    pub close: bool,
}

/// Adds `w`, a batch's [`super::Processed::wait`], to a connection's waits
/// (in output order), folded into the last one if that was made in the
/// same loop iteration. Returns whether the connection had none before
/// (the driver then lists it among the waiting).
pub fn push_wait(waits: &mut VecDeque<Wait>, w: Wait) -> bool {
    match waits.back_mut() {
        Some(last) if last.iteration == w.iteration => {
            last.merge(&w);
            false
        }
        _ => {
            waits.push_back(w);
            waits.len() == 1
        }
    }
}

/// `ERROR TIMEOUT outcome unknown` / `-TIMEOUT outcome unknown`.
pub fn outcome_unknown(out: &mut Vec<u8>, dialect: Dialect) {
    if dialect.replies_in_resp() {
        resp::error(out, b"TIMEOUT outcome unknown");
    } else {
        text::line(out, b"ERROR TIMEOUT outcome unknown");
    }
}

/// Reads `epoch voted_for` from the data directory (none yet: 0, none).
fn read_state(disk: &dyn Storage, path: &Path) -> Result<(u64, Option<u16>), String> {
    let bytes = match disk.read_small(path) {
        Ok(Some(b)) => b,
        Ok(None) => return Ok((0, None)),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let s = String::from_utf8_lossy(&bytes);
    let mut w = s.split_whitespace();
    let bad = || format!("{} is not 'epoch voted_for': {s:?}", path.display());
    let epoch = w.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?;
    let voted = match w.next() {
        Some("-") | None => None,
        Some(v) => Some(v.parse().map_err(|_| bad())?),
    };
    Ok((epoch, voted))
}

/// Writes `epoch voted_for` durably: a new file, fsynced, renamed over the
/// old one, the directory fsynced (see [`Storage::write_atomic`]).
fn write_state(disk: &dyn Storage, path: &Path, epoch: u64, voted: Option<u16>) -> std::io::Result<()> {
    let voted = voted.map_or("-".to_string(), |v| v.to_string());
    disk.write_atomic(path, format!("{epoch} {voted}\n").as_bytes())
}

impl Node {
    /// Leader mode at start: the persisted epoch and vote.
    pub(super) fn open_election(&mut self, disk: Arc<dyn Storage>, now: Instant) -> Result<(), String> {
        let Some(cfg) = self.cfg.leader.clone() else { return Ok(()) };
        let path = self.cfg.dir.join(STATE_FILE);
        let state = read_state(&*disk, &path)?;
        log::info!(
            "leader mode (--election bully): epoch {}, {} nodes, acks {:?}, reads {:?}",
            state.0,
            self.repl.links.len() + 1,
            cfg.acks,
            cfg.reads
        );
        self.repl.election = Some(Election::new(cfg, self.id, self.repl.links.len() + 1, state, now));
        self.election_path = Some((path, disk));
        Ok(())
    }

    /// Whether this node runs in leader mode.
    #[inline]
    pub fn leader_mode(&self) -> bool {
        self.repl.election.is_some()
    }

    /// Whether this node leads (leader mode) and takes writes.
    pub fn leading(&self) -> bool {
        self.repl.election.as_ref().is_some_and(Election::leading)
    }

    /// The election, if leader mode is on.
    pub fn election(&self) -> Option<&Election> {
        self.repl.election.as_ref()
    }

    /// The leader's address (as peers name it), if known.
    pub fn leader_addr(&self) -> Option<String> {
        let e = self.repl.election.as_ref()?;
        let l = e.leader?;
        if l == self.id {
            return Some(self.cfg.listen.to_string());
        }
        self.repl.link_of(l).map(|li| self.repl.links[li].name.clone())
    }

    /// What `LEADER` answers (both protocols): `LEADER <id> <host:port>
    /// EPOCH <n>`, or `LEADER NONE EPOCH <n>`; `None` outside leader mode.
    pub fn leader_line(&self) -> Option<String> {
        let e = self.repl.election.as_ref()?;
        Some(match (e.leader, self.leader_addr()) {
            (Some(id), Some(addr)) => format!("LEADER {id} {addr} EPOCH {}", e.epoch),
            _ => format!("LEADER NONE EPOCH {}", e.epoch),
        })
    }

    /// A follower's view of its leader, as ROLE and INFO replication show
    /// it: host and port (empty and "0" while none is known), and whether
    /// the link to it is up.
    pub fn leader_link(&self) -> (String, String, bool) {
        let (host, port) = self
            .leader_addr()
            .and_then(|a| a.rsplit_once(':').map(|(h, p)| (h.to_string(), p.to_string())))
            .unwrap_or_default();
        let up = self
            .election()
            .and_then(|e| e.leader)
            .and_then(|l| self.repl.link_of(l))
            .is_some_and(|li| is_live(self.repl.links[li].state));
        (host, if port.is_empty() { "0".into() } else { port }, up)
    }

    /// Acts on what the election decided (see [`Event`]).
    pub(super) fn election_events(&mut self) {
        let Some(e) = self.repl.election.as_mut() else { return };
        let events = e.take_events();
        let (epoch, voted) = (e.epoch, e.voted_for);
        for ev in events {
            match ev {
                Event::Persist => {
                    if let Some((p, disk)) = &self.election_path
                        && let Err(err) = write_state(&**disk, p, epoch, voted)
                    {
                        // A promise (a vote, an epoch) that may not survive
                        // a crash must not be made: stop, as etcd stops on
                        // a failed sync of its log. A restart reads the
                        // state that is on disk.
                        log::error!("cannot persist the election state to {}: {err}; exiting", p.display());
                        std::process::exit(1);
                    }
                }
                Event::AskAll { epoch } => {
                    for l in &mut self.repl.links {
                        wire::ask(&mut l.votes.outbox, epoch, self.id);
                    }
                }
                Event::VoteAll { epoch } => {
                    for l in &mut self.repl.links {
                        wire::vote(&mut l.votes.outbox, epoch, self.id);
                    }
                }
                Event::Leading { epoch } => {
                    // Versions of this epoch beat every version of older ones.
                    self.store.observe(election::epoch_counter(epoch));
                    // What it holds may include writes of older epochs that
                    // no majority has (a voter's, never acknowledged): every
                    // follower catches up from it anew, and no reply leaves
                    // until a majority has (see `leader_settled`).
                    for li in 0..self.repl.links.len() {
                        self.repl.resync(li, self.now);
                    }
                    self.own_logged = self.store.clock();
                    self.leader_wrote = 0;
                    self.stats.role_changes += 1;
                }
                Event::SteppedDown { .. } => self.stats.role_changes += 1,
                Event::DropPeersExcept { except } => self.clients.kill_peers_except(except),
            }
        }
    }

    /// The loop's turn for the election (in `before_sleep`, after the log
    /// commit): timeouts, elections, heartbeats.
    pub(super) fn election_tick(&mut self, now: Instant) {
        // A link dropped while fed (its queue over the limit) lost its
        // forwards: their clients are answered now.
        let mut lost = std::mem::take(&mut self.forwarded);
        self.repl.take_lost_forwards(&mut lost);
        self.forwards_answered(&mut lost);
        self.forwarded = lost;
        let Some(e) = self.repl.election.as_ref() else { return };
        let (epoch, timeout) = (e.epoch, e.cfg.timeout);
        let reachable = self
            .repl
            .links
            .iter()
            .filter(|l| matches!(l.state, LinkState::Syncing { .. } | LinkState::Connected))
            .count();
        let heard = self
            .repl
            .links
            .iter()
            .filter(|l| {
                l.votes.epoch == epoch && l.votes.heard.is_some_and(|h| now.saturating_duration_since(h) <= timeout)
            })
            .count();
        let take_over = e.leader.is_some_and(|l| self.synced_peers.contains(&l));
        let commit = self.commit_point();
        let floor = election::epoch_of(self.store.clock()) + 1;
        let Some(e) = self.repl.election.as_mut() else { return };
        e.epoch_floor = floor;
        if e.tick(now, reachable, heard, take_over) {
            let round = e.round;
            for l in &mut self.repl.links {
                if matches!(l.state, LinkState::Syncing { .. } | LinkState::Connected | LinkState::Handshake) {
                    wire::beat(&mut l.votes.outbox, epoch, self.id, commit);
                    l.votes.beats.push_back(round);
                }
            }
        }
        self.election_events();
    }

    /// The highest counter of this leader's writes that the acknowledgement
    /// policy counts as held (a majority's logs, or its own); 0 when not
    /// leading.
    pub fn commit_point(&self) -> u64 {
        let Some(e) = self.repl.election.as_ref().filter(|e| e.leading()) else { return 0 };
        if e.cfg.acks == Acks::Leader {
            return self.own_logged;
        }
        let mut acked: Vec<u64> =
            self.repl.links.iter().filter(|l| l.votes.epoch == e.epoch && is_live(l.state)).map(|l| l.acked).collect();
        election::commit_point(self.own_logged, &mut acked, e.majority())
    }

    /// What became of `w` now (the log commit of `failed_iteration`, if
    /// any, failed).
    pub fn settle_wait(&self, w: &Wait, now: Instant) -> Settled {
        let Some(e) = self.repl.election.as_ref() else { return Settled::Ready };
        if w.term != e.term || !e.leading() || now.saturating_duration_since(w.since) > e.cfg.request_timeout {
            return Settled::Unknown;
        }
        if self.commit_point() < w.commit || !self.leader_settled() {
            return Settled::Waiting;
        }
        if w.round > 0
            && !e.round_confirmed(
                w.round,
                self.repl.links.iter().filter(|l| l.votes.epoch == e.epoch).map(|l| l.votes.confirmed),
            )
        {
            return Settled::Waiting;
        }
        Settled::Ready
    }

    /// Settles one connection's `waits` (front first) against its output
    /// `out`, of which `written` bytes are sent: releases the replies whose
    /// majority is there; replaces by an error (and asks to close) the
    /// first that can no longer get it (leadership lost,
    /// `--request-timeout-ms`: outcome unknown) or whose writes this
    /// iteration's failed log commit rolled back (`commit_failed`: not
    /// applied), dropping the replies after it. The driver writes nothing
    /// of `out` past the first wait still there.
    pub fn settle_waits(
        &self,
        waits: &mut VecDeque<Wait>,
        out: &mut Vec<u8>,
        written: usize,
        commit_failed: bool,
        now: Instant,
    ) -> SettledConn {
        let mut s = SettledConn::default();
        while let Some(w) = waits.front() {
            if commit_failed && w.iteration == self.iteration {
                out.truncate(w.at.max(written));
                w.dialect.error(out, "log write failed; the write was not applied");
            } else {
                match self.settle_wait(w, now) {
                    Settled::Ready => {
                        waits.pop_front();
                        s.released = true;
                        continue;
                    }
                    Settled::Waiting => return s,
                    Settled::Unknown => {
                        out.truncate(w.at.max(written));
                        outcome_unknown(out, w.dialect);
                    }
                }
            }
            waits.clear();
            s.released = true;
            s.close = true;
        }
        s
    }

    /// Whether a majority (this leader included) holds everything this
    /// leader held when it took office: followers whose catch-up scan,
    /// begun while it led, is through and logged (they answered a heartbeat
    /// sent after it). Until then no reply waits out, since a reply could
    /// show an older epoch's write that a failover would lose.
    pub fn leader_settled(&self) -> bool {
        let Some(e) = self.repl.election.as_ref().filter(|e| e.leading()) else { return false };
        let settled = self
            .repl
            .links
            .iter()
            .filter(|l| l.settle_round > 0 && l.votes.epoch == e.epoch && l.votes.confirmed >= l.settle_round)
            .count();
        settled + 1 >= e.majority()
    }

    /// The loop iteration (see [`Wait::iteration`]).
    pub fn iteration(&self) -> u64 {
        self.iteration
    }

    /// After a command ran on a leader: the wait its reply needs, if any.
    /// Only a client's write waits (one of [`Node::local_write`] & co.); a
    /// peer's frame applied here (a merged write, a watermark) is held
    /// for the log commit only, like any node's.
    pub(super) fn leader_wait(&mut self, at: usize, dialect: Dialect) -> Option<Wait> {
        let read = std::mem::take(&mut self.read_barrier);
        let wrote = std::mem::take(&mut self.local_wrote);
        // A write that wrote is confirmed by its commit (acknowledgements
        // given after it arrived); one that did not needs a heartbeat round.
        let read = read && !wrote;
        let e = self.repl.election.as_mut().filter(|e| e.leading())?;
        if !wrote && !read {
            return None;
        }
        let round = if read { e.read_round() } else { 0 };
        if wrote {
            self.leader_wrote = self.store.clock();
        }
        Some(Wait {
            at,
            dialect,
            // A read waits for the leader's last write: it may show it.
            commit: self.leader_wrote,
            round,
            term: e.term,
            iteration: self.iteration,
            since: self.now,
        })
    }

    /// Peer `from` caught us up through its `REPL_SYNCED` of epoch `tag`.
    pub(crate) fn election_synced(&mut self, from: u16, tag: u64) {
        let now = self.now;
        let Some(e) = self.repl.election.as_mut() else { return };
        if !self.synced_peers.contains(&from) {
            self.synced_peers.push(from);
        }
        e.on_synced(from, tag, now);
        self.election_events();
    }

    /// Whether this node reaches a majority (it could win an election).
    fn electable(&self) -> bool {
        let up = self.repl.links.iter().filter(|l| is_live(l.state)).count();
        up + 1 >= self.repl.election.as_ref().map_or(1, Election::majority)
    }
}

fn is_live(s: LinkState) -> bool {
    matches!(s, LinkState::Syncing { .. } | LinkState::Connected)
}

// ------------------------------------------------------- the command gate

/// Leader mode's gate before a command runs: on the leader, a
/// linearizable read is marked to wait for its confirmation; elsewhere a
/// key command is forwarded to the leader, refused, or (a read under
/// `--reads local`) run here. `None`: run it here.
pub(crate) fn gate(cx: &mut Ctx<'_>, spec: &CommandSpec, dialect: Dialect) -> Option<Flow> {
    let e = cx.node.repl.election.as_ref()?;
    let write = spec.flags & flag::WRITE != 0;
    let read = spec.flags & flag::READONLY != 0;
    if !write && !read {
        return None;
    }
    let linearizable = e.cfg.reads == Reads::Linearizable;
    if e.leading() {
        if write && election::epoch_of(cx.node.store.clock() + (1 << 20)) != e.epoch {
            let now = cx.node.now;
            if let Some(e) = cx.node.repl.election.as_mut() {
                e.seq_exhausted(now);
            }
            cx.node.election_events();
            no_leader(cx.out, dialect, "electing anew (this epoch's write counters are spent)");
            return Some(Flow::Continue);
        }
        // A read, and a write command that may end up writing nothing
        // (DEL of a missing key, SET NX of one that exists): its reply
        // tells what the leader holds, so it waits to be confirmed.
        if read && linearizable || write {
            cx.node.read_barrier = true;
        }
        return None;
    }
    if read && !linearizable {
        return None;
    }
    let leader = cx.node.leader_addr();
    let why = match e.role {
        Role::Candidate => "an election is under way",
        _ if e.leader.is_none() => "no leader known (election under way, or this node is cut off from a majority)",
        _ => "",
    };
    if !why.is_empty() || cx.session.forwarded {
        let why = if why.is_empty() { "this node is not the leader" } else { why };
        no_leader(cx.out, dialect, why);
        return Some(Flow::Continue);
    }
    let addr = leader.unwrap_or_default();
    if write && e.cfg.follower_writes == FollowerWrites::Refuse || cx.session.in_exec || cx.session.multi.is_some() {
        not_leader(cx.out, dialect, &addr);
        return Some(Flow::Continue);
    }
    Some(forward(cx, dialect, &addr))
}

/// `ERROR NO_LEADER <why>` / `-CLUSTERDOWN No leader: <why>`: not applied.
fn no_leader(out: &mut Vec<u8>, dialect: Dialect, why: &str) {
    if dialect.replies_in_resp() {
        resp::error(out, format!("CLUSTERDOWN No leader: {why}").as_bytes());
    } else {
        text::line(out, format!("ERROR NO_LEADER {why}").as_bytes());
    }
}

/// `ERROR NOT_LEADER <addr>` / `-READONLY ...`: not applied.
fn not_leader(out: &mut Vec<u8>, dialect: Dialect, addr: &str) {
    if dialect.replies_in_resp() {
        resp::error(out, format!("READONLY You can't write against a read only replica. Leader: {addr}").as_bytes());
    } else {
        text::line(out, format!("ERROR NOT_LEADER {addr}").as_bytes());
    }
}

/// Sends the request to the leader over this node's link to it and blocks
/// the client until the leader's reply comes back.
fn forward(cx: &mut Ctx<'_>, dialect: Dialect, addr: &str) -> Flow {
    let node = &mut *cx.node;
    let leader = node.repl.election.as_ref().and_then(|e| e.leader);
    let Some(li) = leader.and_then(|l| node.repl.link_of(l)).filter(|&li| is_live(node.repl.links[li].state)) else {
        no_leader(cx.out, dialect, &format!("the link to the leader {addr} is down"));
        return Flow::Continue;
    };
    let timeout = node.repl.election.as_ref().map_or(std::time::Duration::from_secs(2), |e| e.cfg.request_timeout);
    node.next_forward += 1;
    let id = node.next_forward;
    let text = !dialect.replies_in_resp();
    if !node.block(cx.session, Block::Forward { id, text, deadline: node.now + timeout }) {
        no_leader(cx.out, dialect, "cannot wait here");
        return Flow::Continue;
    }
    let kind = if text {
        b't'
    } else if cx.session.resp3 {
        b'3'
    } else {
        b'2'
    };
    let link = &mut node.repl.links[li];
    wire::forward(&mut link.votes.outbox, kind, cx.args.iter(0));
    link.votes.forwards.push_back(id);
    node.stats.forwarded += 1;
    Flow::Block
}

impl Node {
    /// Replies to forwarded requests came back (or never will): their
    /// clients get them at the end of the iteration.
    pub(super) fn forwards_answered(&mut self, answered: &mut Vec<Forwarded>) {
        for f in answered.drain(..) {
            let answer = |text: bool| match f.reply.clone() {
                Some(bytes) => Answer::Bytes(bytes),
                None => Answer::Unknown { text },
            };
            self.clients.answer_forward(f.id, answer, &mut self.forward_ready);
        }
    }
}

// ---------------------------------------------- frames from peers

/// `REPL_ELECTION <epoch> <id>`, `REPL_VOTE <epoch> <id>`,
/// `REPL_BEAT <epoch> <id> <commit>`: answered with `+ELECTION`, `+VOTE`,
/// `+BEAT` carrying this node's epoch. `None`: not an election frame.
pub(crate) fn election_frame(cx: &mut Ctx<'_>, name: &[u8]) -> Option<()> {
    let num = |i: usize| resp::parse_int(cx.args.get(i)).and_then(|n| u64::try_from(n).ok());
    let kind = match name {
        b"REPL_ELECTION" => 0,
        b"REPL_VOTE" => 1,
        b"REPL_BEAT" => 2,
        _ => return None,
    };
    let want = if kind == 2 { 4 } else { 3 };
    let (Some(epoch), Some(from)) = (num(1), num(2).and_then(|n| u16::try_from(n).ok())) else {
        resp::error(cx.out, b"ERR bad epoch or node id");
        return Some(());
    };
    if cx.args.len() != want || cx.session.peer != Some(from) {
        resp::error(cx.out, b"ERR election frames come from the peer's own link, after REPLHELLO");
        return Some(());
    }
    let node = &mut *cx.node;
    let now = node.now;
    let electable = node.electable();
    let Some(e) = node.repl.election.as_mut() else {
        resp::error(cx.out, b"ERR this node is not in leader mode (--election bully)");
        return Some(());
    };
    let (word, value, granted) = match kind {
        0 => ("ELECTION", e.on_ask(from, epoch, now, electable).word().to_string(), false),
        1 => {
            let granted = e.on_vote(from, epoch, now, electable);
            if granted {
                log::info!("election: node {} grants its vote to node {from} for epoch {epoch}", e.id());
            }
            ("VOTE", u8::from(granted).to_string(), granted)
        }
        _ => {
            e.on_beat(from, epoch, now);
            ("BEAT", node.repl.watermark(from).to_string(), false)
        }
    };
    // Persisted before the answer is written (a promise made must survive
    // a crash).
    node.election_events();
    let Some(e) = node.repl.election.as_ref() else { return Some(()) };
    let epoch_now = e.epoch;
    if granted && e.voted_for == Some(from) {
        // The catch-up scan the candidate waits for begins after the grant.
        if let Some(li) = node.repl.link_of(from) {
            node.repl.resync(li, now);
        }
    }
    wire::election_reply(cx.out, word, epoch_now, &value);
    Some(())
}

/// `REPL_FWD <kind> <arg>...` on the leader: runs the client's command as
/// if the client were here, and answers its reply as one bulk string.
pub(crate) fn run_forwarded(cx: &mut Ctx<'_>) -> Flow {
    if cx.args.len() < 3 || cx.session.peer.is_none() {
        resp::error(cx.out, b"ERR REPL_FWD needs REPLHELLO first, a kind and a command");
        return Flow::Continue;
    }
    let (dialect, resp3) = match cx.args.get(1) {
        b"t" => (Dialect::Text, false),
        b"2" => (Dialect::Resp, false),
        b"3" => (Dialect::Resp, true),
        _ => {
            resp::error(cx.out, b"ERR REPL_FWD kind must be t, 2 or 3");
            return Flow::Continue;
        }
    };
    let buf = cx.args.buf();
    let mut argv = Argv::new();
    for a in cx.args.iter(2) {
        let start = a.as_ptr() as usize - buf.as_ptr() as usize;
        argv.push(start, start + a.len());
    }
    let mut session = Session { authenticated: true, resp3, forwarded: true, ..Session::default() };
    let mut reply = Vec::new();
    let mut inner =
        Ctx { node: &mut *cx.node, session: &mut session, args: cmd::Args::new(&argv, buf), out: &mut reply };
    let _ = match dialect {
        Dialect::Text => cmd::run_text(&mut inner),
        _ => cmd::run_resp(&mut inner),
    };
    resp::bulk(cx.out, &reply);
    Flow::Continue
}
