//! Leader mode's election (`--election bully`), as a state machine with no
//! I/O: the node feeds it what its peers say and the time, and it says
//! what to send and what changed.
//!
//! Bully's rule decides *who* leads: the highest live id. Epochs and
//! majorities, as in ZooKeeper's and Raft's elections, make it safe:
//!
//! - every leadership has an epoch, strictly increasing, persisted by the
//!   node before it is used or promised (see [`Election::persisted`]);
//! - a node grants its vote once per epoch and never goes back to a lower
//!   epoch; a candidate leads epoch E only with a majority of the cluster
//!   (itself included) having granted E, so there is at most one leader per
//!   epoch;
//! - before it takes writes, the new leader gets from each voter of that
//!   majority everything the voter holds that it lacks (a catch-up scan that
//!   the voter starts only once it has granted the vote, tagged with the
//!   epoch); every write acknowledged to a client was held by a majority,
//!   which meets the voting majority in at least one node, so the new leader
//!   has it;
//! - versions carry the epoch in the high bits of their counter
//!   ([`epoch_counter`]), so a write of a newer epoch beats every write of an
//!   older one, whatever the counters of a deposed leader ran up to.
//!
//! One election, in frames (see [`super::wire`]):
//!
//! 1. a follower that heard no leader for `--election-timeout-ms`, or a
//!    caught-up follower of a lower-id leader (Bully's take-over), sends
//!    `REPL_ELECTION` to every peer: Bully's ELECTION, which is also a
//!    pre-vote (nothing is persisted, so a node cut off from the others does
//!    not inflate epochs). A higher live node that could win answers
//!    `alive` and runs itself; the asker then waits for a COORDINATOR (the
//!    winner's first heartbeat) until a timeout. Lower nodes answer `ok`
//!    unless they hear a live leader of higher id than the asker;
//! 2. with no `alive` and a majority of `ok`, the node persists epoch E and
//!    its own vote and sends `REPL_VOTE E` with its watermarks;
//! 3. a voter that grants persists (E, candidate), drops its other peers'
//!    inbound links (so that no deposed leader can count an acknowledgement
//!    it gives after this point), and scans its store to the candidate;
//! 4. with a majority granted and caught up, the candidate leads: it sends
//!    `REPL_BEAT` (the COORDINATOR, then heartbeats) every `--heartbeat-ms`.

use std::collections::VecDeque;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Bits of a version's counter below the epoch: a leader makes at most
/// 2^32 writes in one epoch (then it is elected anew, see
/// [`Election::seq_exhausted`]).
pub const EPOCH_SHIFT: u32 = 32;
/// The largest epoch: the counter has 48 bits, 16 of them the epoch.
pub const MAX_EPOCH: u64 = (1 << 16) - 1;

/// The first counter of epoch `epoch`: a leader's clock starts there.
pub fn epoch_counter(epoch: u64) -> u64 {
    epoch << EPOCH_SHIFT
}

/// The epoch a counter was written in (leader mode).
pub fn epoch_of(counter: u64) -> u64 {
    counter >> EPOCH_SHIFT
}

/// `--acks`: when a leader's write is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// Once a majority (the leader included) has it in its log.
    Majority,
    /// Once the leader has it in its log.
    Leader,
}

/// `--reads`: how GETs are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// At least as new as every write acknowledged before the read arrived.
    Linearizable,
    /// From the local store, at once (possibly stale on a follower).
    Local,
}

/// `--follower-writes`: what a follower does with a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowerWrites {
    /// Forward it to the leader and relay the leader's reply.
    Forward,
    /// Refuse it, naming the leader.
    Refuse,
}

macro_rules! words {
    ($t:ty, $what:literal, $($word:literal => $v:expr),+) => {
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<$t, String> {
                match s.to_ascii_lowercase().as_str() {
                    $($word => Ok($v),)+
                    _ => Err(format!(concat!("expected ", $what, ", got '{}'"), s)),
                }
            }
        }
    };
}
words!(Acks, "majority or leader", "majority" => Acks::Majority, "leader" => Acks::Leader);
words!(Reads, "linearizable or local", "linearizable" => Reads::Linearizable, "local" => Reads::Local);
words!(FollowerWrites, "forward or refuse", "forward" => FollowerWrites::Forward, "refuse" => FollowerWrites::Refuse);

/// Leader mode's settings.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    /// `--heartbeat-ms`.
    pub heartbeat: Duration,
    /// `--election-timeout-ms`.
    pub timeout: Duration,
    /// `--request-timeout-ms`: a write or read waiting longer for its
    /// majority is answered "outcome unknown".
    pub request_timeout: Duration,
    /// `--acks`.
    pub acks: Acks,
    /// `--reads`.
    pub reads: Reads,
    /// `--follower-writes`.
    pub follower_writes: FollowerWrites,
}

/// A node's role in leader mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader, or waits for one.
    Follower,
    /// Running in an election.
    Candidate,
    /// Leads its epoch: applies writes, confirms reads.
    Leader,
}

impl Role {
    /// The name STATS and the log show.
    pub fn name(self) -> &'static str {
        match self {
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        }
    }
}

/// What a node answers to `REPL_ELECTION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// It would grant the vote.
    Ok,
    /// It has a higher id and can win: it runs itself (Bully's answer).
    Alive,
    /// It would not grant the vote (a live leader it prefers, a newer epoch).
    No,
}

impl Answer {
    /// The word on the wire.
    pub fn word(self) -> &'static str {
        match self {
            Answer::Ok => "ok",
            Answer::Alive => "alive",
            Answer::No => "no",
        }
    }
    /// Parses the word on the wire.
    pub fn parse(b: &[u8]) -> Option<Answer> {
        match b {
            b"ok" => Some(Answer::Ok),
            b"alive" => Some(Answer::Alive),
            b"no" => Some(Answer::No),
            _ => None,
        }
    }
}

/// Where a candidate is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Not running.
    Idle,
    /// Asked `REPL_ELECTION` for `epoch`; `ok` from these nodes so far.
    Asking { epoch: u64, until: Instant, ok: Vec<u16>, alive: bool },
    /// A higher node answered `alive`: waiting for its heartbeat.
    Deferring { until: Instant },
    /// Asked `REPL_VOTE` for `epoch`; granted by, and caught up from.
    Voting { epoch: u64, until: Instant, granted: Vec<u16>, synced: Vec<u16> },
}

/// What changed, for the node to act on (drained with [`Election::take_events`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Persist (epoch, vote) now, before any reply or frame leaves.
    Persist,
    /// Send `REPL_ELECTION epoch` on every link.
    AskAll {
        /// The epoch asked for.
        epoch: u64,
    },
    /// Send `REPL_VOTE epoch` (with our watermarks) on every link.
    VoteAll {
        /// The epoch asked for.
        epoch: u64,
    },
    /// This node leads `epoch` from now on.
    Leading {
        /// Its epoch.
        epoch: u64,
    },
    /// This node stopped leading (or running): its waiting replies'
    /// outcome is unknown.
    SteppedDown {
        /// For the log.
        why: String,
    },
    /// A new epoch was accepted from `except`: drop every other peer's
    /// inbound link.
    DropPeersExcept {
        /// The node whose link stays.
        except: u16,
    },
}

/// The election state of one node. See the module docs.
#[derive(Debug)]
pub struct Election {
    /// The settings.
    pub cfg: LeaderConfig,
    id: u16,
    /// Nodes in the cluster, this one included.
    size: usize,
    /// The highest epoch this node has accepted (persisted).
    pub epoch: u64,
    /// Whom it voted for in `epoch` (persisted).
    pub voted_for: Option<u16>,
    /// Its role.
    pub role: Role,
    /// The leader of `epoch`, once known.
    pub leader: Option<u16>,
    /// A follower's last word from its leader.
    last_heard: Instant,
    phase: Phase,
    /// No election is started before this.
    next_try: Instant,
    /// A leader's next heartbeat.
    next_beat: Instant,
    /// A leader's heartbeat rounds sent (read-index: a read waits for a
    /// round sent after it to be answered by a majority).
    pub round: u64,
    /// A read this iteration needs a new round.
    want_round: bool,
    /// Bumped whenever this node stops leading: replies that waited for the
    /// old leadership cannot be confirmed any more.
    pub term: u64,
    /// Elections this node started.
    pub started: u64,
    /// Elections it won.
    pub won: u64,
    /// When the leader was last confirmed by a majority (heartbeat
    /// answers); it steps down when that is older than the timeout.
    confirmed_at: Instant,
    events: Vec<Event>,
}

impl Election {
    /// A node `id` of a cluster of `size` nodes, with its persisted
    /// `(epoch, voted_for)`, starting as a follower with no leader.
    pub fn new(cfg: LeaderConfig, id: u16, size: usize, persisted: (u64, Option<u16>), now: Instant) -> Election {
        let mut e = Election {
            cfg,
            id,
            size,
            epoch: persisted.0,
            voted_for: persisted.1,
            role: Role::Follower,
            leader: None,
            last_heard: now,
            phase: Phase::Idle,
            next_try: now,
            next_beat: now,
            round: 0,
            want_round: false,
            term: 0,
            started: 0,
            won: 0,
            confirmed_at: now,
            events: Vec::new(),
        };
        // A lone node leads at once; in a cluster, wait a timeout for a
        // leader's heartbeat before asking (a restarted node must not
        // disturb a healthy leader).
        e.next_try = now + e.jittered_timeout();
        e
    }

    /// A majority of the cluster.
    pub fn majority(&self) -> usize {
        self.size / 2 + 1
    }

    /// This node's id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// Whether this node leads and may take writes.
    pub fn leading(&self) -> bool {
        self.role == Role::Leader
    }

    /// The events since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The election timeout, spread per node and epoch so that two nodes
    /// rarely time out together; lower ids wait longer (Bully: the highest
    /// should run first).
    fn jittered_timeout(&self) -> Duration {
        let t = self.cfg.timeout;
        let h = u64::from(self.id).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ self.epoch.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let spread = t.as_millis().max(1) as u64 / 2;
        t + Duration::from_millis((h >> 33) % spread.max(1))
    }

    fn become_follower(&mut self, leader: Option<u16>, now: Instant, why: &str) {
        if self.role != Role::Follower {
            if self.role == Role::Leader {
                self.term += 1;
            }
            log::warn!("election: node {} is now a follower in epoch {} ({why})", self.id, self.epoch);
            self.events.push(Event::SteppedDown { why: why.to_string() });
        }
        self.role = Role::Follower;
        self.phase = Phase::Idle;
        self.leader = leader;
        self.last_heard = now;
        self.next_try = now + self.jittered_timeout();
    }

    /// Accepts `epoch` (higher than ours) from `from`: persisted, and every
    /// other peer's inbound link dropped.
    fn accept_epoch(&mut self, epoch: u64, from: u16, vote: bool, now: Instant) {
        let newer = epoch > self.epoch;
        self.epoch = epoch;
        if newer {
            self.voted_for = None;
        }
        if vote {
            self.voted_for = Some(from);
        }
        self.events.push(Event::Persist);
        if newer || vote {
            self.events.push(Event::DropPeersExcept { except: from });
        }
        if self.role != Role::Follower || self.leader.is_some_and(|l| l != from) {
            self.become_follower(None, now, &format!("node {from} runs in epoch {epoch}"));
        }
    }

    // ------------------------------------------------------------ time

    /// A turn of the loop: starts an election when the leader is silent
    /// (or, caught up under a lower leader, to take over: `can_take_over`),
    /// gives up a stalled one, sends heartbeats. `reachable`: peers whose
    /// links are up; `heard`: peers that answered this leader's heartbeats
    /// within the timeout. Returns whether heartbeats are due now.
    pub fn tick(&mut self, now: Instant, reachable: usize, heard: usize, can_take_over: bool) -> bool {
        match self.role {
            Role::Leader => {
                if heard + 1 >= self.majority() {
                    self.confirmed_at = now;
                } else if now.saturating_duration_since(self.confirmed_at) > self.cfg.timeout {
                    let why = format!("no majority answered for {:?}", self.cfg.timeout);
                    self.become_follower(None, now, &why);
                    return false;
                }
                if now >= self.next_beat || self.want_round {
                    self.next_beat = now + self.cfg.heartbeat;
                    if self.want_round {
                        self.want_round = false;
                    }
                    self.round += 1;
                    return true;
                }
                false
            }
            Role::Candidate => {
                let until = match &self.phase {
                    Phase::Asking { until, .. } | Phase::Voting { until, .. } | Phase::Deferring { until } => *until,
                    Phase::Idle => now,
                };
                if now >= until {
                    self.role = Role::Follower;
                    self.phase = Phase::Idle;
                    self.next_try = now + self.jittered_timeout();
                    log::info!("election: node {} got no majority in time; will try again", self.id);
                }
                false
            }
            Role::Follower => {
                let silent = self.leader.is_none() || now.saturating_duration_since(self.last_heard) > self.cfg.timeout;
                let take_over = can_take_over && self.leader.is_some_and(|l| l < self.id);
                if (silent || take_over) && now >= self.next_try && reachable + 1 >= self.majority() {
                    self.ask(now);
                }
                false
            }
        }
    }

    /// Starts an election: asks every peer (pre-vote, Bully's ELECTION).
    fn ask(&mut self, now: Instant) {
        let epoch = self.epoch + 1;
        if epoch > MAX_EPOCH {
            log::error!("election: epoch space exhausted ({MAX_EPOCH}); this cluster cannot elect again");
            self.next_try = now + Duration::from_secs(60);
            return;
        }
        self.role = Role::Candidate;
        self.started += 1;
        self.next_try = now + self.jittered_timeout();
        if self.size == 1 {
            self.vote_for_self(epoch, now);
            return;
        }
        self.phase = Phase::Asking { epoch, until: now + self.cfg.timeout, ok: Vec::new(), alive: false };
        log::info!("election: node {} asks its peers about epoch {epoch}", self.id);
        self.events.push(Event::AskAll { epoch });
    }

    fn vote_for_self(&mut self, epoch: u64, now: Instant) {
        self.epoch = epoch;
        self.voted_for = Some(self.id);
        self.leader = None;
        self.events.push(Event::Persist);
        self.phase =
            Phase::Voting { epoch, until: now + self.cfg.timeout * 2, granted: Vec::new(), synced: Vec::new() };
        log::info!("election: node {} runs for epoch {epoch}", self.id);
        self.events.push(Event::VoteAll { epoch });
        self.check_won(now);
    }

    /// A read was served this iteration: the next heartbeat round goes out
    /// now, and the read waits for it. Returns the round it waits for.
    pub fn read_round(&mut self) -> u64 {
        self.want_round = true;
        self.round + 1
    }

    /// When the election next needs a turn.
    pub fn deadline(&self) -> Instant {
        match (&self.role, &self.phase) {
            (Role::Leader, _) => self.next_beat,
            (_, Phase::Asking { until, .. } | Phase::Voting { until, .. } | Phase::Deferring { until }) => *until,
            _ => self.next_try.max(self.last_heard + self.cfg.timeout),
        }
    }

    /// A leader whose epoch's sequence of counters is spent steps down and
    /// runs again at once (in a new epoch, with a fresh sequence).
    pub fn seq_exhausted(&mut self, now: Instant) {
        self.become_follower(None, now, "this epoch's 2^32 write counters are spent; electing anew");
        self.next_try = now;
    }

    // ------------------------------------------------- frames received

    /// `REPL_ELECTION epoch` from `from`: the pre-vote answer.
    /// `live_leader`: the leader this node hears, if its heartbeats are
    /// fresh; `electable`: this node reaches a majority.
    pub fn on_ask(&mut self, from: u16, epoch: u64, now: Instant, electable: bool) -> Answer {
        if epoch <= self.epoch {
            return Answer::No;
        }
        if self.id > from && electable {
            // Bully: a higher live node answers and runs itself.
            if self.role == Role::Follower {
                self.ask(now);
            }
            return Answer::Alive;
        }
        if self.leader_is_live(now) && self.leader.is_some_and(|l| l > from) {
            return Answer::No;
        }
        Answer::Ok
    }

    fn leader_is_live(&self, now: Instant) -> bool {
        match self.role {
            Role::Leader => true,
            _ => self.leader.is_some() && now.saturating_duration_since(self.last_heard) <= self.cfg.timeout,
        }
    }

    /// `REPL_VOTE epoch` from `from`: whether the vote is granted. On a
    /// grant the node has accepted the epoch ([`Event::Persist`],
    /// [`Event::DropPeersExcept`]) and must start its catch-up scan to the
    /// candidate.
    pub fn on_vote(&mut self, from: u16, epoch: u64, now: Instant, electable: bool) -> bool {
        if epoch < self.epoch || (epoch == self.epoch && self.voted_for.is_some_and(|v| v != from)) {
            return false;
        }
        if epoch == self.epoch && self.voted_for == Some(from) {
            return true; // a repeat (the link was cut): same answer
        }
        if (self.id > from && electable) || (self.leader_is_live(now) && self.leader.is_some_and(|l| l > from)) {
            return false;
        }
        self.accept_epoch(epoch, from, true, now);
        true
    }

    /// `REPL_BEAT epoch` from `from` (the leader's COORDINATOR and
    /// heartbeats). Returns whether it is accepted (else the answer carries
    /// our newer epoch and the sender steps down).
    pub fn on_beat(&mut self, from: u16, epoch: u64, now: Instant) -> bool {
        if epoch < self.epoch {
            return false;
        }
        if epoch > self.epoch {
            self.accept_epoch(epoch, from, false, now);
        } else if self.role != Role::Follower {
            // Same epoch: `from` won it (there is one leader per epoch).
            self.become_follower(Some(from), now, &format!("node {from} leads epoch {epoch}"));
        }
        if self.leader != Some(from) {
            log::info!("election: node {} follows node {from}, leader of epoch {epoch}", self.id);
        }
        self.leader = Some(from);
        self.last_heard = now;
        true
    }

    // -------------------------------------------- answers to our frames

    /// A peer's answer to our `REPL_ELECTION`.
    pub fn on_ask_answer(&mut self, from: u16, epoch: u64, answer: Answer, now: Instant) {
        if epoch > self.epoch {
            self.see_epoch(epoch, now);
            return;
        }
        let Phase::Asking { ok, alive, epoch: asked, .. } = &mut self.phase else { return };
        match answer {
            Answer::Alive => *alive = true,
            Answer::Ok if !ok.contains(&from) => ok.push(from),
            _ => {}
        }
        let (n, alive, asked) = (ok.len(), *alive, *asked);
        if alive {
            log::info!("election: a higher node is alive; node {} waits for its heartbeat", self.id);
            self.phase = Phase::Deferring { until: now + self.cfg.timeout * 2 };
        } else if n + 1 >= self.majority() {
            self.vote_for_self(asked, now);
        }
    }

    /// A peer's answer to our `REPL_VOTE`.
    pub fn on_vote_answer(&mut self, from: u16, epoch: u64, granted: bool, now: Instant) {
        if epoch > self.epoch {
            self.see_epoch(epoch, now);
            return;
        }
        if let Phase::Voting { granted: g, epoch: e, .. } = &mut self.phase
            && granted
            && *e == epoch
            && !g.contains(&from)
        {
            g.push(from);
        }
        self.check_won(now);
    }

    /// Peer `from` finished a catch-up scan to us that it started in
    /// epoch `tag` (after granting its vote, if `tag` is ours).
    pub fn on_synced(&mut self, from: u16, tag: u64, now: Instant) {
        if let Phase::Voting { synced, epoch, .. } = &mut self.phase
            && *epoch == tag
            && !synced.contains(&from)
        {
            synced.push(from);
        }
        self.check_won(now);
    }

    fn check_won(&mut self, now: Instant) {
        let Phase::Voting { epoch, granted, synced, .. } = &self.phase else { return };
        let ready = granted.iter().filter(|g| synced.contains(g)).count();
        if ready + 1 < self.majority() {
            return;
        }
        let epoch = *epoch;
        self.role = Role::Leader;
        self.leader = Some(self.id);
        self.phase = Phase::Idle;
        self.won += 1;
        self.confirmed_at = now;
        self.next_beat = now;
        log::warn!(
            "election: node {} leads epoch {epoch} (granted and caught up from a majority of {})",
            self.id,
            self.size
        );
        self.events.push(Event::Leading { epoch });
    }

    /// A peer answered with a newer epoch than ours: we are out of date.
    pub fn see_epoch(&mut self, epoch: u64, now: Instant) {
        if epoch <= self.epoch {
            return;
        }
        self.epoch = epoch;
        self.voted_for = None;
        self.events.push(Event::Persist);
        let why = format!("a peer is in epoch {epoch}");
        if self.role == Role::Follower {
            self.leader = None;
        } else {
            self.become_follower(None, now, &why);
        }
    }

    /// How many peers in `confirmed` (per link: the last heartbeat round it
    /// answered in this epoch) have answered round `round`: with this node,
    /// a majority confirms a read.
    pub fn round_confirmed(&self, round: u64, confirmed: impl Iterator<Item = u64>) -> bool {
        self.leading() && confirmed.filter(|&c| c >= round).count() + 1 >= self.majority()
    }
}

/// The commit point of a leader: the highest counter of its writes that a
/// majority holds. `own`: what its log has; `acked`: each peer's
/// acknowledged watermark for it (peers in this epoch only).
pub fn commit_point(own: u64, acked: &mut Vec<u64>, majority: usize) -> u64 {
    acked.push(own);
    acked.sort_unstable_by(|a, b| b.cmp(a));
    let c = acked.get(majority.saturating_sub(1)).copied().unwrap_or(0);
    c.min(own)
}

/// Per-link state of leader mode: what the peer's epoch is, which of our
/// heartbeat rounds it answered, the forwarded requests it owes answers.
#[derive(Debug, Default)]
pub struct LinkVotes {
    /// The peer's epoch, as its last answer said.
    pub epoch: u64,
    /// Rounds of our heartbeats sent on the link, not yet answered.
    pub beats: VecDeque<u64>,
    /// The last round it answered.
    pub confirmed: u64,
    /// When it last answered a heartbeat (or a vote).
    pub heard: Option<Instant>,
    /// Requests forwarded on the link, by forward id, in order.
    pub forwards: VecDeque<u64>,
    /// Frames for the link decided between feeds (votes, heartbeats,
    /// forwarded requests).
    pub outbox: Vec<u8>,
}

impl LinkVotes {
    /// The connection went: nothing in flight will be answered.
    pub fn reset(&mut self) -> VecDeque<u64> {
        self.beats.clear();
        self.outbox.clear();
        std::mem::take(&mut self.forwards)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LeaderConfig {
        LeaderConfig {
            heartbeat: Duration::from_millis(100),
            timeout: Duration::from_millis(500),
            request_timeout: Duration::from_secs(2),
            acks: Acks::Majority,
            reads: Reads::Linearizable,
            follower_writes: FollowerWrites::Forward,
        }
    }

    #[test]
    fn commit_point_is_the_majority_th_highest() {
        assert_eq!(commit_point(10, &mut vec![7, 3], 2), 7);
        assert_eq!(commit_point(10, &mut vec![12, 3], 2), 10, "never past our own log");
        assert_eq!(commit_point(10, &mut vec![], 1), 10);
        assert_eq!(commit_point(10, &mut vec![5, 4, 9, 1], 3), 5);
        assert_eq!(commit_point(10, &mut vec![], 2), 0);
    }

    #[test]
    fn versions_of_a_newer_epoch_beat_any_counter_of_an_older_one() {
        let old = epoch_counter(3) + (1 << 32) - 1;
        assert!(epoch_counter(4) + 1 > old);
        assert_eq!(epoch_of(old), 3);
        assert_eq!(epoch_of(epoch_counter(4) + 1), 4);
        // The counter (48 bits) holds every epoch.
        assert!(epoch_counter(MAX_EPOCH) + u64::from(u32::MAX) <= crate::storage::record::Version::MAX_COUNTER);
    }

    #[test]
    fn a_higher_node_answers_alive_and_runs_a_lower_one_grants() {
        let t = Instant::now();
        let mut high = Election::new(cfg(), 3, 3, (0, None), t);
        assert_eq!(high.on_ask(2, 1, t, true), Answer::Alive);
        assert_eq!(high.role, Role::Candidate, "it runs itself");
        let mut low = Election::new(cfg(), 1, 3, (0, None), t);
        assert_eq!(low.on_ask(2, 1, t, true), Answer::Ok);
        assert_eq!(low.on_ask(2, 0, t, true), Answer::No, "not newer than ours");
        // Asking persists nothing.
        assert_eq!((low.epoch, low.voted_for), (0, None));
    }

    #[test]
    fn one_vote_per_epoch_and_never_back() {
        let t = Instant::now();
        let mut e = Election::new(cfg(), 1, 3, (4, None), t);
        assert!(!e.on_vote(2, 3, t, true), "older epoch");
        assert!(e.on_vote(2, 5, t, true));
        assert_eq!(e.take_events(), [Event::Persist, Event::DropPeersExcept { except: 2 }]);
        assert!(e.on_vote(2, 5, t, true), "a repeat gets the same answer");
        assert!(!e.on_vote(3, 5, t, true), "already voted in 5");
        assert!(!e.on_beat(3, 4, t), "a deposed leader's heartbeat");
        assert!(e.on_beat(2, 5, t));
        assert_eq!(e.leader, Some(2));
    }

    #[test]
    fn a_candidate_leads_once_a_majority_granted_and_caught_it_up() {
        let t = Instant::now();
        let mut e = Election::new(cfg(), 3, 3, (0, None), t);
        let later = t + Duration::from_secs(2);
        e.tick(later, 2, 0, false);
        assert_eq!(e.role, Role::Candidate);
        assert_eq!(e.take_events(), [Event::AskAll { epoch: 1 }]);
        e.on_ask_answer(1, 0, Answer::Ok, later);
        assert_eq!(e.take_events(), [Event::Persist, Event::VoteAll { epoch: 1 }]);
        assert_eq!((e.epoch, e.voted_for), (1, Some(3)));
        e.on_vote_answer(1, 1, true, later);
        assert_eq!(e.role, Role::Candidate, "granted, not yet caught up");
        e.on_synced(2, 1, later);
        assert_eq!(e.role, Role::Candidate, "caught up by a node that did not grant");
        e.on_synced(1, 0, later);
        assert_eq!(e.role, Role::Candidate, "a scan of an older epoch does not count");
        e.on_synced(1, 1, later);
        assert_eq!(e.role, Role::Leader);
        assert_eq!(e.take_events(), [Event::Leading { epoch: 1 }]);
        // A leader that hears no majority steps down.
        assert!(e.tick(later, 2, 0, false), "heartbeats due");
        e.tick(later + Duration::from_secs(1), 2, 0, false);
        assert_eq!(e.role, Role::Follower);
        assert_eq!(e.term, 1);
    }

    #[test]
    fn no_election_without_a_reachable_majority() {
        let t = Instant::now();
        let mut e = Election::new(cfg(), 3, 3, (0, None), t);
        e.tick(t + Duration::from_secs(5), 0, 0, false);
        assert_eq!(e.role, Role::Follower);
        assert!(e.take_events().is_empty());
        let mut lone = Election::new(cfg(), 3, 1, (7, None), t);
        lone.tick(t + Duration::from_secs(5), 0, 0, false);
        assert_eq!((lone.role, lone.epoch), (Role::Leader, 8));
    }
}
