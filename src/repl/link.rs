//! An outbound link to one peer (the seed's PeerCommunicator), as a state
//! machine with no I/O: the reactor tells it what happened to the socket and
//! asks it what to do; time is an argument.
//!
//! ```text
//!   Backoff --due--> Connecting --connected--> Handshake --watermark--> Syncing --scan done--> Live
//!      ^                 |                        |                        |                   |
//!      +-----------------+------- failed ---------+------------------------+-------------------+
//! ```
//!
//! The peer link speaks RESP, so values of any bytes pass unchanged:
//!
//! | frame | meaning | reply |
//! |---|---|---|
//! | `REPLHELLO <id>` | "I am node id" | `+HELLO <N> <peer id>`, N the highest counter of id's writes the peer has in order |
//! | `REPL_PUT <key> <value> <version>` | a write of ours | `:N` as above |
//! | `REPL_DEL <key> <version>` | a delete of ours | `:N` |
//! | `REPL_FLUSHALL <version>` | a FLUSHALL of ours | `:N` |
//! | `REPL_SYNCED <counter>` | "you now have all my writes up to counter" | `:N` |
//!
//! Between `REPLHELLO` and `REPL_SYNCED` the link is catching up: frames come
//! from a scan of the store, out of order, so the receiver applies them but
//! does not move its watermark until `REPL_SYNCED`. After it, frames are live
//! writes in order, and each moves the watermark.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::proto::resp;
use crate::storage::record::{Op, Record, Version};

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
    /// Connected; `REPLHELLO` sent, waiting for the peer's watermark.
    Handshake,
    /// Sending what the peer misses: a scan of the store from `cursor`.
    Syncing {
        /// Next store slot to look at.
        cursor: usize,
    },
    /// Caught up: local writes are forwarded as they are logged.
    Live,
}

impl LinkState {
    /// A short name for STATS and logs.
    pub fn name(&self) -> &'static str {
        match self {
            LinkState::Backoff { .. } => "backoff",
            LinkState::Connecting => "connecting",
            LinkState::Handshake => "handshake",
            LinkState::Syncing { .. } => "syncing",
            LinkState::Live => "connected",
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
    /// Slab key of the link's socket while it has one.
    pub conn: Option<usize>,
    /// The peer's node id, learned from its first reply.
    pub peer_id: Option<u16>,
    /// The peer's watermark for us when the link came up: the scan sends
    /// only what is newer.
    pub from: u64,
    /// Highest counter of our writes queued to the peer.
    pub sent: u64,
    /// Highest counter the peer reported having from us in order.
    pub acked: u64,
    /// Bytes waiting in the link's output buffer (refreshed by the reactor).
    pub queued: usize,
    /// Full catch-up scans started.
    pub resyncs: u64,
    /// Records sent by catch-up scans, since start.
    pub sync_records: u64,
    /// When the current catch-up began.
    pub sync_started: Option<Instant>,
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
            conn: None,
            peer_id: None,
            from: 0,
            sent: 0,
            acked: 0,
            queued: 0,
            resyncs: 0,
            sync_records: 0,
            sync_started: None,
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

    /// The reactor started a connect on socket `conn`.
    pub fn connecting(&mut self, conn: usize) {
        self.state = LinkState::Connecting;
        self.conn = Some(conn);
    }

    /// The connect completed; the reactor queued `REPLHELLO` (see [`hello`]).
    pub fn connected(&mut self) {
        self.state = LinkState::Handshake;
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
        self.state = LinkState::Live;
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
        self.conn = None;
        self.sync_started = None;
        // The queue went with the socket; STATS must not show it as waiting.
        self.queued = 0;
        self.state = LinkState::Backoff { until: now + self.delay };
        self.delay = (self.delay * 2).min(BACKOFF_MAX);
    }
}

/// Encodes `REPLHELLO <id>`.
pub fn hello(out: &mut Vec<u8>, id: u16) {
    resp::array(out, 2);
    resp::bulk(out, b"REPLHELLO");
    bulk_u64(out, u64::from(id));
}

/// Encodes `REPL_SYNCED <counter>`.
pub fn synced(out: &mut Vec<u8>, counter: u64) {
    resp::array(out, 2);
    resp::bulk(out, b"REPL_SYNCED");
    bulk_u64(out, counter);
}

/// Encodes a write as the frame that replays it on a peer.
pub fn frame(out: &mut Vec<u8>, op: Op, key: &[u8], value: &[u8], version: Version) {
    match op {
        Op::Put => {
            resp::array(out, 4);
            resp::bulk(out, b"REPL_PUT");
            resp::bulk(out, key);
            resp::bulk(out, value);
        }
        Op::Del => {
            resp::array(out, 3);
            resp::bulk(out, b"REPL_DEL");
            resp::bulk(out, key);
        }
        Op::FlushAll => {
            resp::array(out, 2);
            resp::bulk(out, b"REPL_FLUSHALL");
        }
        Op::Watermark => return,
    }
    bulk_u64(out, version.0);
}

/// Encodes a record as its frame (see [`frame`]).
pub fn record_frame(out: &mut Vec<u8>, rec: &Record<'_>) {
    frame(out, rec.op, rec.key, rec.value, rec.version);
}

fn bulk_u64(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    resp::bulk(out, &digits[i..]);
}

/// A reply read from a peer link.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkReply<'a> {
    /// `+HELLO <watermark> <node>`: the answer to `REPLHELLO`.
    Hello {
        /// The peer's watermark for us.
        watermark: u64,
        /// The peer's node id.
        node: u16,
    },
    /// `:N`: the peer's watermark for us.
    Watermark(u64),
    /// `-...`: the peer refused a frame.
    Error(&'a [u8]),
}

/// Parses the reply at the start of `buf`: `Ok(None)` if incomplete,
/// `Err` if the peer sent something no kvstore node sends.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(LinkReply<'_>, usize)>, &'static str> {
    let Some(end) = memchr::memchr(b'\n', buf) else {
        return if buf.len() > 1024 { Err("reply line too long") } else { Ok(None) };
    };
    let line = buf[..end].strip_suffix(b"\r").ok_or("reply without CRLF")?;
    match line.split_first() {
        Some((b':', digits)) => {
            let n = resp::parse_int(digits).and_then(|n| u64::try_from(n).ok()).ok_or("bad integer reply")?;
            Ok(Some((LinkReply::Watermark(n), end + 1)))
        }
        Some((b'-', msg)) => Ok(Some((LinkReply::Error(msg), end + 1))),
        Some((b'+', rest)) => {
            let mut words = rest.split(|&c| c == b' ');
            let (Some(b"HELLO"), Some(w), Some(n), None) = (words.next(), words.next(), words.next(), words.next())
            else {
                return Err("unexpected reply");
            };
            let watermark = resp::parse_int(w).and_then(|n| u64::try_from(n).ok()).ok_or("bad HELLO reply")?;
            let node = resp::parse_int(n).and_then(|n| u16::try_from(n).ok()).ok_or("bad HELLO reply")?;
            Ok(Some((LinkReply::Hello { watermark, node }, end + 1)))
        }
        _ => Err("unexpected reply"),
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
            l.connecting(3);
            l.failed(t0, "refused");
            let LinkState::Backoff { until } = l.state else { panic!() };
            delays.push(until - t0);
            assert!(!l.due(t0));
            assert!(l.due(until));
        }
        assert_eq!(delays[0], BACKOFF_MIN);
        assert_eq!(delays[1], BACKOFF_MIN * 2);
        assert_eq!(*delays.last().unwrap(), BACKOFF_MAX);
        l.connecting(3);
        l.connected();
        l.handshake_done(7, t0);
        assert_eq!(l.state, LinkState::Syncing { cursor: 0 });
        assert_eq!((l.acked, l.sent, l.resyncs), (7, 7, 1));
        l.sync_done(t0);
        assert_eq!(l.state.name(), "connected");
        l.queued = 1234;
        l.failed(t0, "reset");
        assert_eq!(l.deadline(), Some(t0 + BACKOFF_MIN));
        assert_eq!((l.conn, l.queued), (None, 0), "the queue went with the socket");
    }

    #[test]
    fn frames_are_resp_the_server_parses() {
        let mut out = vec![];
        frame(&mut out, Op::Put, b"k\r\n", b"\0v", Version(65537));
        assert_eq!(out, b"*4\r\n$8\r\nREPL_PUT\r\n$3\r\nk\r\n\r\n$2\r\n\0v\r\n$5\r\n65537\r\n");
        out.clear();
        frame(&mut out, Op::Del, b"k", b"", Version(0));
        assert_eq!(out, b"*3\r\n$8\r\nREPL_DEL\r\n$1\r\nk\r\n$1\r\n0\r\n");
    }

    #[test]
    fn replies() {
        assert_eq!(parse_reply(b":12\r\n:1"), Ok(Some((LinkReply::Watermark(12), 5))));
        assert_eq!(parse_reply(b":12\r"), Ok(None));
        assert_eq!(parse_reply(b"-ERR no\r\n"), Ok(Some((LinkReply::Error(b"ERR no"), 9))));
        assert!(parse_reply(b"+OK\r\n").is_err());
        assert_eq!(parse_reply(b"+HELLO 9 12346\r\n"), Ok(Some((LinkReply::Hello { watermark: 9, node: 12346 }, 16))));
        assert!(parse_reply(b":-1\r\n").is_err());
    }
}
