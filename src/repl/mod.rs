//! The replicator: this node's side of every peer link, as a state machine
//! with no I/O (raft-rs's shape). Events come in — a local write, a link
//! connected or failed, bytes read from a link, time — and intents go out:
//! links to connect ([`Replicator::before_sleep`]), bytes for a peer
//! (appended to the connection's output that the driver lends, as replies
//! are), a link to drop ([`Fed::Drop`]). The reactor and the test
//! simulation drive it the same way, through [`crate::node::Node`].
//!
//! - [`link`]: one link's life (backoff, connect, handshake, catch-up, live);
//! - [`progress`]: the watermarks, what this node holds of every origin;
//! - [`wire`]: the frames and replies, both ways;
//! - [`receiver`]: the inbound side, frames received from a peer's link;
//! - [`handshake`]: how both ends of a link prove the cluster secret.
//!
//! A link that comes up (at start, after the peer was down, after a reset)
//! learns the peer's watermark for us and catches up by a scan of the store
//! for our own writes newer than it, a chunk per loop iteration, then
//! forwards live writes as the log takes them.

pub mod election;
pub mod handshake;
pub mod link;
pub mod progress;
pub mod receiver;
pub mod wire;

use std::net::SocketAddr;
use std::time::Instant;

use self::election::Election;
use self::handshake::{ClusterKey, LinkAuth};
use self::link::{Link, LinkState};
use self::progress::Progress;
use self::wire::LinkReply;
use crate::proto::resp;
use crate::storage::counter;
use crate::storage::record::{Op, Record, Version};
use crate::storage::store::Store;

/// A catch-up scan adds frames only while the link's queue is below this.
pub const SYNC_HIGH_WATER: usize = 256 << 10;
/// Store slots a catch-up scan looks at per loop iteration.
pub const SYNC_CHUNK: usize = 8192;

/// What [`Replicator::feed`] says of the link's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fed {
    /// Keep it; write what it holds.
    Keep,
    /// Its queue passed `--peer-queue-limit`: close it now, its unsent bytes
    /// discarded. The link is already counted as failed, and will catch up
    /// by a resync once it reconnects.
    Drop,
}

/// This node's links, watermarks and the frames of the current iteration.
#[derive(Debug)]
pub struct Replicator {
    /// This node's id (the low 16 bits of the versions of its writes).
    pub id: u16,
    /// One outbound link per peer, in the order of the command line.
    pub links: Vec<Link>,
    /// What this node holds of every origin's writes.
    pub progress: Progress,
    /// Frames of this iteration's local writes, for the links once the log
    /// has them; emptied by [`Replicator::end_iteration`].
    batch: Vec<u8>,
    /// Counter of the last local write in `batch`.
    batch_last: u64,
    /// `--peer-queue-limit`.
    queue_limit: usize,
    /// The cluster secret (`--cluster-secret`, else `--requirepass`), as
    /// the key links prove it with and inbound links must prove it with.
    secret: Option<ClusterKey>,
    /// Leader mode's election (`--election bully`), if on.
    pub election: Option<Election>,
}

/// A forwarded request's reply, read from a link: for the client waiting
/// for forward `id`.
#[derive(Debug)]
pub struct Forwarded {
    /// The forward's id.
    pub id: u64,
    /// The reply, in the client's protocol; `None`: the link went before
    /// it came (the outcome is unknown).
    pub reply: Option<Vec<u8>>,
}

impl Replicator {
    /// A node with links to `peers` (address, name as given), each link's
    /// queue bounded by `queue_limit` bytes.
    pub fn new(id: u16, peers: &[(SocketAddr, String)], queue_limit: usize, now: Instant) -> Replicator {
        let links = peers.iter().map(|(a, n)| Link::new(*a, n.clone(), now)).collect();
        let progress = Progress::default();
        Replicator { id, links, progress, batch: Vec::new(), batch_last: 0, queue_limit, secret: None, election: None }
    }

    /// Links prove `secret` before `REPLHELLO`, and so must inbound ones
    /// (see [`handshake`]); `None`: no proof either way.
    pub fn set_cluster_secret(&mut self, secret: Option<&str>) {
        self.secret = secret.map(|s| ClusterKey::new(s.as_bytes()));
    }

    /// The cluster secret's key, if there is one.
    pub fn cluster_key(&self) -> Option<&ClusterKey> {
        self.secret.as_ref()
    }

    /// Whether there are peers at all.
    pub fn has_peers(&self) -> bool {
        !self.links.is_empty()
    }

    /// What this node holds, in order, of `node`'s writes.
    pub fn watermark(&self, node: u16) -> u64 {
        self.progress.watermark(node)
    }

    /// A local write was staged: its frame goes to the links once logged.
    pub fn queue_write(&mut self, rec: &Record<'_>) {
        if self.has_peers() {
            wire::record_frame(&mut self.batch, rec);
            self.batch_last = rec.version.counter();
        }
    }

    /// The log took this iteration's writes.
    pub fn committed(&mut self) {
        self.progress.commit();
    }

    /// The log refused this iteration's writes: none of them is sent, and
    /// what they taught the watermarks is forgotten.
    pub fn rolled_back(&mut self) {
        self.batch.clear();
        self.progress.rollback();
    }

    /// The end of a loop iteration: the links that are due, whose
    /// connections the driver must open (reporting
    /// [`Replicator::link_connected`] or [`Replicator::link_failed`]), into
    /// `connect`.
    pub fn before_sleep(&mut self, now: Instant, connect: &mut Vec<usize>) {
        connect.clear();
        for (li, link) in self.links.iter_mut().enumerate() {
            if link.due(now) {
                link.connecting();
                connect.push(li);
            }
        }
    }

    /// Once the log has this iteration's writes: appends to `out`, link
    /// `li`'s connection output (of which `written` bytes are sent), what
    /// the link gets: this iteration's frames if it is live or catching up,
    /// then a chunk of its catch-up scan, and `REPL_SYNCED` once the scan is
    /// through. A link whose queue passes the limit is dropped (it will
    /// resync).
    pub fn feed(&mut self, li: usize, store: &Store, out: &mut Vec<u8>, written: usize, now: Instant) -> Fed {
        let high_water = self.high_water();
        let link = &mut self.links[li];
        if matches!(link.state, LinkState::Connected | LinkState::Syncing { .. }) && !self.batch.is_empty() {
            out.extend_from_slice(&self.batch);
            link.sent = link.sent.max(self.batch_last);
        }
        if !link.votes.outbox.is_empty() && !matches!(link.state, LinkState::Backoff { .. } | LinkState::Connecting) {
            out.extend_from_slice(&link.votes.outbox);
            link.votes.outbox.clear();
        }
        if let LinkState::Syncing { cursor } = link.state {
            let mut i = cursor;
            let end = (cursor + SYNC_CHUNK).min(store.slots());
            // Checked before each slot, not after: a peer that does not read
            // must not get even one more frame per loop iteration.
            while i < end && out.len() - written < high_water {
                // Every origin's writes the peer lacks, not only ours: a
                // node that was down, or a new leader, gets from any one
                // peer what it holds (node 0's, typed by a person, stay
                // where they were typed).
                let lacks = |v: Version| {
                    v.node() != 0 && v.counter() > if v.node() == self.id { link.from } else { link.peer_has(v.node()) }
                };
                if let Some(s) = store.slot(i) {
                    // A counter's state holds other origins' increments than
                    // its newest's: it goes if the peer lacks any of them,
                    // whole (a merge takes what it lacks of it).
                    if let Some(c) = store.counter_at(i) {
                        if lacks(c.base) || c.parts.iter().any(|p| lacks(p.last)) {
                            let mut state = Vec::new();
                            c.encode(&mut state);
                            let deadline = if s.value.is_some() { s.deadline } else { Some(counter::EXPIRED) };
                            wire::frame(out, Op::Counter, s.key, &state, s.version, deadline);
                            link.sync_records += 1;
                        }
                    } else if lacks(s.version) {
                        // A key due to expire is a tombstone here (see `Store::slot`):
                        // the same state as the write with its deadline, fewer bytes.
                        let op = if s.value.is_some() { Op::Put } else { Op::Del };
                        wire::frame(out, op, s.key, s.value.unwrap_or_default(), s.version, s.deadline);
                        link.sync_records += 1;
                    }
                }
                i += 1;
            }
            if i >= store.slots() {
                link.sent = link.sent.max(store.clock());
                wire::synced(out, store.clock(), link.sync_epoch, &link.claims);
                link.sync_done(now);
                if link.scan_leading {
                    // The peer has it all once it answers a heartbeat sent
                    // after this (its answers wait for its log).
                    link.settle_round = self.election.as_ref().map_or(0, |e| e.round + 1);
                }
            } else {
                link.state = LinkState::Syncing { cursor: i };
            }
        }
        link.queued_bytes = out.len() - written;
        if link.queued_bytes > self.queue_limit {
            link.failed(now, "queue over --peer-queue-limit; it will catch up by resync");
            return Fed::Drop;
        }
        Fed::Keep
    }

    /// Every link has been fed this iteration's frames: they are dropped.
    pub fn end_iteration(&mut self) {
        self.batch.clear();
    }

    /// The queue size below which a catch-up scan adds frames:
    /// [`SYNC_HIGH_WATER`], or half of `--peer-queue-limit` if that is less.
    /// A scan that could fill the queue past the limit by itself would have
    /// its link dropped and restarted from scratch, again and again: the
    /// peer would never catch up.
    pub fn high_water(&self) -> usize {
        SYNC_HIGH_WATER.min(self.queue_limit / 2)
    }

    /// Whether a catch-up scan can go on at once (its queue has room): the
    /// loop must not sleep.
    pub fn busy(&self) -> bool {
        let high_water = self.high_water();
        self.links.iter().any(|l| matches!(l.state, LinkState::Syncing { .. }) && l.queued_bytes < high_water)
    }

    /// The connection of link `li` is up; `out` is its output.
    pub fn link_connected(&mut self, li: usize, out: &mut Vec<u8>) {
        let link = &mut self.links[li];
        if self.secret.is_none() {
            link.connected(self.id, out);
            return;
        }
        // The proofs first; `REPLHELLO` once the peer has proved the secret.
        link.state = LinkState::Handshake;
        link.auth = match handshake::fresh_nonce() {
            Some(nonce) => Some(LinkAuth::start(self.id, nonce, out)),
            None => {
                // A REPLAUTH without its arguments: the peer refuses it,
                // which drops the link, to be tried again after a backoff.
                log::error!("peer {}: cannot draw a random nonce for the handshake", link.name);
                resp::array(out, 1);
                resp::bulk(out, b"REPLAUTH");
                None
            }
        };
    }

    /// The connection of link `li` failed or closed; `why` is for the log.
    /// The requests forwarded on it and not answered go into `forwarded`
    /// with no reply (their outcome is unknown).
    pub fn link_failed(&mut self, li: usize, now: Instant, why: &str, forwarded: &mut Vec<Forwarded>) {
        self.links[li].failed(now, why);
        self.take_lost_forwards(forwarded);
    }

    /// The requests forwarded on connections that are gone (however they
    /// went: failed, refused a frame, dropped for its queue), into
    /// `forwarded` with no reply: their outcome is unknown.
    pub fn take_lost_forwards(&mut self, forwarded: &mut Vec<Forwarded>) {
        for l in &mut self.links {
            forwarded.extend(l.votes.lost.drain(..).map(|id| Forwarded { id, reply: None }));
        }
    }

    /// The driver holds `bytes` of link `li`'s not yet written.
    pub fn link_queued(&mut self, li: usize, bytes: usize) {
        self.links[li].queued_bytes = bytes;
    }

    /// Acts on the replies at the start of `input`, read from link `li`,
    /// appending to `out` (its connection's output) what they call for.
    /// Returns the bytes used, or, when the link must be dropped (its peer
    /// refused a frame, or sent what no node sends), why: the link is then
    /// already counted as failed.
    pub fn link_input(
        &mut self,
        li: usize,
        input: &[u8],
        out: &mut Vec<u8>,
        store: &mut Store,
        now: Instant,
        forwarded: &mut Vec<Forwarded>,
    ) -> Result<usize, String> {
        let mut used = 0;
        loop {
            let reply = match wire::parse_reply(&input[used..]) {
                Ok(None) => return Ok(used),
                Ok(Some((reply, n))) => {
                    used += n;
                    reply
                }
                Err(e) => return Err(self.fail(li, now, e.to_string(), forwarded)),
            };
            let link = &mut self.links[li];
            // With a secret, only the exchange of proofs (or a refusal)
            // counts until the peer has proved it.
            let proven = self.secret.is_none() || link.auth.as_ref().is_some_and(LinkAuth::done);
            match reply {
                LinkReply::Challenge { node, nonce } => {
                    let step = match (&mut link.auth, &self.secret) {
                        (Some(auth), Some(key)) => auth.on_challenge(key, node, nonce, out),
                        _ => Err("a REPLAUTH challenge, unasked"),
                    };
                    if let Err(why) = step {
                        return Err(self.fail(li, now, why.to_string(), forwarded));
                    }
                }
                LinkReply::Proof(proof) => {
                    let step = match (&mut link.auth, &self.secret) {
                        (Some(auth), Some(key)) => auth.on_proof(key, proof),
                        _ => Err("a REPLPROOF reply, unasked"),
                    };
                    match step {
                        Ok(peer) => {
                            link.peer_id = Some(peer);
                            link.connected(self.id, out);
                        }
                        Err(why) => return Err(self.fail(li, now, why.to_string(), forwarded)),
                    }
                }
                LinkReply::Error(msg) => {
                    let why = format!("peer refused: {}", String::from_utf8_lossy(msg));
                    return Err(self.fail(li, now, why, forwarded));
                }
                _ if !proven => {
                    return Err(self.fail(
                        li,
                        now,
                        "the peer answered before proving the cluster secret".into(),
                        forwarded,
                    ));
                }
                LinkReply::Hello { node, .. }
                    if link.auth.as_ref().and_then(LinkAuth::peer).is_some_and(|p| p != node) =>
                {
                    return Err(self.fail(
                        li,
                        now,
                        "the peer's HELLO names another node than it proved".into(),
                        forwarded,
                    ));
                }
                LinkReply::Hello { watermark, node, epoch, marks } => {
                    link.peer_id = Some(node);
                    store.observe(watermark);
                    link.from_others = marks;
                    link.claims = self.progress.marks().to_vec();
                    link.votes.epoch = epoch;
                    link.sync_epoch = self.election.as_ref().map_or(0, |e| e.epoch);
                    link.scan_leading = self.election.as_ref().is_some_and(Election::leading);
                    link.settle_round = 0;
                    link.handshake_done(watermark, now);
                    // A FLUSHALL the peer lacks goes first, once per
                    // catch-up, before any live frame and before the scan
                    // (which may start over, see `restart_scans`, or stall at
                    // its first slot while the queue is full).
                    let floor = store.floor();
                    let has = if floor.node() == self.id { watermark } else { link.peer_has(floor.node()) };
                    if floor.counter() > 0 && floor.node() != 0 && floor.counter() > has {
                        wire::frame(out, Op::FlushAll, b"", b"", floor, None);
                    }
                    if let Some(e) = &mut self.election {
                        e.see_epoch(epoch, now);
                    }
                }
                LinkReply::Watermark(w) => link.acked = link.acked.max(w),
                LinkReply::Ok => {}
                LinkReply::Election { epoch, answer } => {
                    link.votes.epoch = epoch;
                    if let (Some(e), Some(peer)) = (&mut self.election, link.peer_id) {
                        e.on_ask_answer(peer, epoch, answer, now);
                    }
                }
                LinkReply::Vote { epoch, granted } => {
                    link.votes.epoch = epoch;
                    link.votes.heard = Some(now);
                    if let (Some(e), Some(peer)) = (&mut self.election, link.peer_id) {
                        e.on_vote_answer(peer, epoch, granted, now);
                    }
                }
                LinkReply::Beat { epoch, watermark } => {
                    link.votes.epoch = epoch;
                    link.acked = link.acked.max(watermark);
                    if let Some(r) = link.votes.beats.pop_front() {
                        link.votes.confirmed = link.votes.confirmed.max(r);
                    }
                    link.votes.heard = Some(now);
                    if let Some(e) = &mut self.election {
                        e.see_epoch(epoch, now);
                    }
                }
                LinkReply::Bulk(reply) => {
                    if let Some(id) = link.votes.forwards.pop_front() {
                        forwarded.push(Forwarded { id, reply: Some(reply.to_vec()) });
                    }
                }
            }
        }
    }

    fn fail(&mut self, li: usize, now: Instant, why: String, forwarded: &mut Vec<Forwarded>) -> String {
        self.links[li].failed(now, &why);
        self.take_lost_forwards(forwarded);
        why
    }

    /// Starts the catch-up of link `li`'s peer over again, on the same
    /// connection: `REPLHELLO` anew (the peer treats what follows as
    /// unordered until `REPL_SYNCED`), and a scan from its fresh
    /// watermarks. A voter does this once it has granted its vote, so that
    /// the scan the candidate waits for begins after the grant.
    pub fn resync(&mut self, li: usize, now: Instant) {
        let link = &mut self.links[li];
        if matches!(link.state, LinkState::Syncing { .. } | LinkState::Connected | LinkState::Handshake) {
            link.state = LinkState::Handshake;
            link.scan_leading = false;
            link.settle_round = 0;
            wire::hello(&mut link.votes.outbox, self.id);
        } else {
            self.kick(li, now);
        }
    }

    /// The peer of link `li` is up (it just linked in to us): a link
    /// waiting out its backoff connects now.
    pub fn kick(&mut self, li: usize, now: Instant) {
        if let LinkState::Backoff { until } = &mut self.links[li].state {
            *until = (*until).min(now);
        }
    }

    /// The link whose peer is node `id`, once its handshake said so.
    pub fn link_of(&self, id: u16) -> Option<usize> {
        self.links.iter().position(|l| l.peer_id == Some(id))
    }

    /// Whether a link is scanning the store (no slot may move meanwhile).
    pub fn scanning(&self) -> bool {
        self.links.iter().any(|l| matches!(l.state, LinkState::Syncing { .. }))
    }

    /// The store's slots were rebuilt (a FLUSHALL kept the writes newer
    /// than it, in new places): every scan under way starts over, so that
    /// none skips a write it has not sent. Resending is harmless.
    pub fn restart_scans(&mut self) {
        for l in &mut self.links {
            if let LinkState::Syncing { cursor } = &mut l.state {
                *cursor = 0;
            }
        }
    }

    /// The earliest time a link needs attention.
    pub fn deadline(&self) -> Option<Instant> {
        self.links.iter().filter_map(Link::deadline).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However a link's connection goes, the requests forwarded on it
    /// leave its queue as lost (outcome unknown): left there, each reply on
    /// the next connection was matched with the request before it, so a
    /// client got another client's reply.
    #[test]
    fn forwards_on_a_connection_that_goes_are_lost_whichever_way_it_goes() {
        let t0 = Instant::now();
        let peers = vec![("127.0.0.1:2".parse().unwrap(), "p2".to_string())];
        let mut c = Replicator::new(1, &peers, 64, t0);
        let mut store = Store::new(true);
        let up = |c: &mut Replicator| {
            let l = &mut c.links[0];
            l.connecting();
            l.connected(1, &mut vec![]);
            l.handshake_done(0, t0);
            l.sync_done(t0);
        };
        let ids = |f: &[Forwarded]| f.iter().map(|f| (f.id, f.reply.clone())).collect::<Vec<_>>();
        // The peer refuses a frame (a forwarded request it could not
        // confirm ends in -TIMEOUT on the link).
        up(&mut c);
        c.links[0].votes.forwards.extend([7, 8]);
        let mut answered = vec![];
        let r =
            c.link_input(0, b"$2\r\nok\r\n-TIMEOUT outcome unknown\r\n", &mut vec![], &mut store, t0, &mut answered);
        assert!(r.is_err());
        assert_eq!(ids(&answered), [(7, Some(b"ok".to_vec())), (8, None)]);
        assert!(c.links[0].votes.forwards.is_empty());
        // The queue passes its limit while fed.
        up(&mut c);
        c.links[0].votes.forwards.push_back(9);
        c.links[0].votes.outbox.extend_from_slice(&[b'x'; 100]);
        assert_eq!(c.feed(0, &store, &mut vec![], 0, t0), Fed::Drop);
        let mut lost = vec![];
        c.take_lost_forwards(&mut lost);
        assert_eq!(ids(&lost), [(9, None)]);
        // The connection fails.
        up(&mut c);
        c.links[0].votes.forwards.push_back(10);
        let mut lost = vec![];
        c.link_failed(0, t0, "reset", &mut lost);
        assert_eq!(ids(&lost), [(10, None)]);
        assert!(c.links[0].votes.forwards.is_empty() && c.links[0].votes.lost.is_empty());
    }

    #[test]
    fn restart_scans_rewinds_only_links_that_are_scanning() {
        let t0 = Instant::now();
        let peers: Vec<_> = (1..=3).map(|p| (format!("127.0.0.1:{p}").parse().unwrap(), format!("p{p}"))).collect();
        let mut c = Replicator::new(1, &peers, 1 << 20, t0);
        for l in &mut c.links {
            l.connecting();
            l.connected(1, &mut vec![]);
            l.handshake_done(0, t0);
        }
        c.links[0].state = LinkState::Syncing { cursor: 500 };
        c.links[1].sync_done(t0);
        c.links[2].failed(t0, "reset");
        assert!(c.scanning());
        c.restart_scans();
        assert_eq!(c.links[0].state, LinkState::Syncing { cursor: 0 });
        assert_eq!(c.links[1].state, LinkState::Connected);
        assert!(matches!(c.links[2].state, LinkState::Backoff { .. }));
        assert_eq!(c.deadline(), Some(t0 + std::time::Duration::from_millis(100)));
    }

    #[test]
    fn with_a_secret_a_link_says_and_sends_nothing_until_the_peer_proves_it() {
        let t0 = Instant::now();
        let peers = [("127.0.0.1:1".parse().unwrap(), "p".to_string())];
        let mut store = Store::new(true);
        for early in [&b"+HELLO 0 2\r\n"[..], b":5\r\n", b"+OK\r\n", b"+REPLPROOF 00\r\n"] {
            let mut c = Replicator::new(1, &peers, 1 << 20, t0);
            c.set_cluster_secret(Some("s3cret"));
            c.links[0].connecting();
            let mut out = vec![];
            c.link_connected(0, &mut out);
            assert!(out.starts_with(b"*3\r\n$8\r\nREPLAUTH\r\n$1\r\n1\r\n$64\r\n"), "{out:?}");
            assert!(memchr::memmem::find(&out, b"s3cret").is_none());
            // A listener on the peer's address that does not know the secret.
            out.clear();
            assert!(c.link_input(0, early, &mut out, &mut store, t0, &mut vec![]).is_err(), "{early:?} accepted");
            assert!(out.is_empty(), "{early:?}: something was sent");
            assert!(matches!(c.links[0].state, LinkState::Backoff { .. }));
        }
    }
}
