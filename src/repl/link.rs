//! An outbound link to one peer (the seed's PeerCommunicator), as a state
//! machine with no I/O: the driver tells it what happened to the connection
//! and it says what to send; time is an argument. Its frames are in
//! [`super::wire`].
//!
//! ```text
//!   Backoff --due--> Connecting --connected--> Handshake --watermark--> Syncing --scan done--> Connected
//!      ^                 |                        |                        |                   |
//!      +-----------------+------- failed ---------+------------------------+-------------------+
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::handshake::LinkAuth;
use super::wire;

/// First reconnect delay after a failure.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest reconnect delay.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Where a link is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Waiting until `until` to (re)connect.
    Backoff {
        /// When to try again.
        until: Instant,
    },
    /// A non-blocking connect is under way.
    Connecting,
    /// Connected; `REPLHELLO` sent, waiting for the peer's watermark (with
    /// a cluster secret, first the exchange of proofs: [`Link::auth`]).
    Handshake,
    /// Sending what the peer misses: a scan of the store from `cursor`.
    Syncing {
        /// Next store slot to look at.
        cursor: usize,
    },
    /// Caught up: local writes are forwarded as they are logged.
    Connected,
}

impl LinkState {
    /// A short name for STATS and logs.
    pub fn name(&self) -> &'static str {
        match self {
            LinkState::Backoff { .. } => "backoff",
            LinkState::Connecting => "connecting",
            LinkState::Handshake => "handshake",
            LinkState::Syncing { .. } => "syncing",
            LinkState::Connected => "connected",
        }
    }
}

/// One peer link's state and counters.
#[derive(Debug)]
pub struct Link {
    /// The peer's address.
    pub addr: SocketAddr,
    /// The peer as named on the command line.
    pub name: String,
    /// Where the link is.
    pub state: LinkState,
    /// The peer's node id, learned from its first reply.
    pub peer_id: Option<u16>,
    /// The peer's watermark for us when the link came up: the scan sends
    /// only what is newer.
    pub from: u64,
    /// What the peer held of every other origin when the link came up
    /// (its `+HELLO`): the scan sends, of each, only what is newer.
    pub from_others: Vec<(u16, u64)>,
    /// What this node held of every origin when the scan began: what
    /// `REPL_SYNCED` tells the peer it now has.
    pub claims: Vec<(u16, u64)>,
    /// This node's epoch when the scan began (leader mode; 0 otherwise).
    pub sync_epoch: u64,
    /// Leader mode's state of the link (epoch, heartbeats, forwards).
    pub votes: super::election::LinkVotes,
    /// Highest counter of our writes queued to the peer.
    pub sent: u64,
    /// Highest counter the peer reported having from us in order.
    pub acked: u64,
    /// Bytes the driver holds for the connection, not yet written to it
    /// (as of the last feed or flush).
    pub queued_bytes: usize,
    /// Full catch-up scans started.
    pub resyncs: u64,
    /// Records sent by catch-up scans, since start.
    pub sync_records: u64,
    /// When the current catch-up began.
    pub sync_started: Option<Instant>,
    /// With a cluster secret, where the current connection's exchange of
    /// proofs is (see [`super::handshake`]); set when it connects.
    pub auth: Option<LinkAuth>,
    delay: Duration,
    /// Whether the current outage was logged (log once per change of state).
    down_logged: bool,
}

impl Link {
    /// A link that will connect at once.
    pub fn new(addr: SocketAddr, name: String, now: Instant) -> Link {
        Link {
            addr,
            name,
            state: LinkState::Backoff { until: now },
            peer_id: None,
            from: 0,
            from_others: Vec::new(),
            claims: Vec::new(),
            sync_epoch: 0,
            votes: Default::default(),
            sent: 0,
            acked: 0,
            queued_bytes: 0,
            resyncs: 0,
            sync_records: 0,
            sync_started: None,
            auth: None,
            delay: BACKOFF_MIN,
            down_logged: false,
        }
    }

    /// When the link next needs attention without any event.
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            LinkState::Backoff { until } => Some(until),
            _ => None,
        }
    }

    /// Whether it is time to connect.
    pub fn due(&self, now: Instant) -> bool {
        matches!(self.state, LinkState::Backoff { until } if until <= now)
    }

    /// The driver was asked to connect (see [`super::Replicator::before_sleep`]).
    pub fn connecting(&mut self) {
        self.state = LinkState::Connecting;
    }

    /// The connect completed: says who we are (into `out`, the
    /// connection's output) and waits for the peer's watermark.
    pub fn connected(&mut self, our_id: u16, out: &mut Vec<u8>) {
        self.state = LinkState::Handshake;
        wire::hello(out, our_id);
    }

    /// The peer answered the handshake with its watermark for us: start a
    /// catch-up scan of everything newer.
    pub fn handshake_done(&mut self, watermark: u64, now: Instant) {
        if self.down_logged || self.resyncs == 0 {
            log::info!("peer {}: connected (node {:?}), has our writes up to {watermark}", self.name, self.peer_id);
        }
        self.down_logged = false;
        self.delay = BACKOFF_MIN;
        self.acked = watermark;
        self.from = watermark;
        self.sent = watermark;
        self.resyncs += 1;
        self.sync_started = Some(now);
        self.state = LinkState::Syncing { cursor: 0 };
    }

    /// What the peer held of `origin`'s writes when the link came up.
    pub fn peer_has(&self, origin: u16) -> u64 {
        self.from_others.iter().find(|m| m.0 == origin).map_or(0, |m| m.1)
    }

    /// The catch-up scan is complete: from now on, forward live writes.
    pub fn sync_done(&mut self, now: Instant) {
        if let Some(t) = self.sync_started.take() {
            log::info!(
                "peer {}: caught up through counter {} in {:.3}s ({} records sent by scan in all)",
                self.name,
                self.sent,
                now.duration_since(t).as_secs_f64(),
                self.sync_records
            );
        }
        self.state = LinkState::Connected;
    }

    /// The socket failed or was closed: forget it and retry after a delay
    /// that doubles up to a cap. Logs once per outage, not per attempt.
    pub fn failed(&mut self, now: Instant, why: &str) {
        if !self.down_logged {
            log::warn!("peer {}: link down ({why}); reconnecting with backoff up to {:?}", self.name, BACKOFF_MAX);
            self.down_logged = true;
        } else {
            log::debug!("peer {}: attempt failed ({why})", self.name);
        }
        self.sync_started = None;
        self.votes.outbox.clear();
        self.votes.beats.clear();
        // The queue went with the connection; STATS must not show it as waiting.
        self.queued_bytes = 0;
        self.state = LinkState::Backoff { until: now + self.delay };
        self.delay = (self.delay * 2).min(BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap_and_resets_on_success() {
        let t0 = Instant::now();
        let mut l = Link::new("127.0.0.1:1".parse().unwrap(), "p".into(), t0);
        assert!(l.due(t0));
        let mut delays = vec![];
        for _ in 0..10 {
            l.connecting();
            l.failed(t0, "refused");
            let LinkState::Backoff { until } = l.state else { panic!() };
            delays.push(until - t0);
            assert!(!l.due(t0));
            assert!(l.due(until));
        }
        assert_eq!(delays[0], BACKOFF_MIN);
        assert_eq!(delays[1], BACKOFF_MIN * 2);
        assert_eq!(*delays.last().unwrap(), BACKOFF_MAX);
        l.connecting();
        let mut out = vec![];
        l.connected(1, &mut out);
        assert!(out.starts_with(b"*2\r\n$9\r\nREPLHELLO"), "REPLHELLO queued");
        l.handshake_done(7, t0);
        assert_eq!(l.state, LinkState::Syncing { cursor: 0 });
        assert_eq!((l.acked, l.sent, l.resyncs), (7, 7, 1));
        l.sync_done(t0);
        assert_eq!(l.state.name(), "connected");
        l.queued_bytes = 1234;
        l.failed(t0, "reset");
        assert_eq!(l.deadline(), Some(t0 + BACKOFF_MIN));
        assert_eq!(l.queued_bytes, 0, "the queue went with the connection");
    }
}
