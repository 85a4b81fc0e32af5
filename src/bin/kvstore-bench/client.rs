//! The connection driver: one non-blocking connection ([`Client`]) with its
//! batch of `--pipeline` requests in flight, and the per-thread event loop
//! ([`worker`]) that runs a group of them on one mio `Poll`.
//!
//! # One loop iteration (per worker thread)
//! 1. `poll` (timeout: the `--duration` deadline or a 100 ms tick, so an
//!    abort by another thread is noticed);
//! 2. take `now` once: it is the arrival time of every reply read in this
//!    iteration;
//! 3. for each event: finish a partial write if one is pending; read,
//!    feeding the scanner, and record `now - sent_at` for each complete
//!    reply; when the whole batch is answered, patch new keys into the next
//!    batch and send it with one `write`;
//! 4. publish the request count for the progress line.

use std::io::{self, Read, Write};
use std::net::{TcpStream as StdStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};

use crate::histogram::Histogram;
use crate::keys::Keys;
use crate::options::Protocol;
use crate::reply::{Scanner, Tally};
use crate::request::{KEY_DIGITS, Shape, put_digits};

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest poll wait, so a worker notices that another one failed.
const TICK: Duration = Duration::from_millis(100);
/// A run with requests in flight and no event for this long has stalled.
const STALL: Duration = Duration::from_secs(10);

/// Connects with a clear message on failure.
pub fn connect(addr: &str) -> Result<StdStream, String> {
    let addrs: Vec<_> = addr.to_socket_addrs().map_err(|e| format!("cannot resolve {addr}: {e}"))?.collect();
    let mut last = None;
    for a in &addrs {
        match StdStream::connect_timeout(a, CONNECT_TIMEOUT) {
            Ok(s) => {
                s.set_nodelay(true).map_err(|e| format!("{addr}: cannot set TCP_NODELAY: {e}"))?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) => Err(format!("cannot connect to {addr}: {e}")),
        None => Err(format!("cannot resolve {addr}: no addresses")),
    }
}

/// Request counts of one worker.
#[derive(Debug, Default)]
pub struct Totals {
    /// Replies received (each answers one request).
    pub replies: u64,
    /// GETs sent.
    pub gets: u64,
    pub tally: Tally,
}

/// One connection with its batch in flight.
pub struct Client {
    stream: TcpStream,
    token: Token,
    /// This connection's copy of the window; keys are patched in place.
    buf: Vec<u8>,
    keys: Keys,
    /// Slot of the period where the next batch starts (`< shape.period`).
    next_slot: usize,
    /// Requests it may still send (`u64::MAX` when the run is timed).
    budget: u64,
    /// `buf[wpos..wend]` is written yet.
    wpos: usize,
    wend: usize,
    /// Replies still due for the batch in flight.
    owed: u64,
    /// When the batch in flight was written: its requests share this start,
    /// as in redis-benchmark.
    sent_at: Instant,
    scanner: Scanner,
    /// Whether WRITABLE interest is registered: only while a write is partial,
    /// so a connection with nothing to write is not woken for nothing.
    want_write: bool,
}

impl Client {
    /// A connection that has sent nothing yet, with its own copy of the window.
    pub fn new(stream: StdStream, token: Token, shape: &Shape, keys: Keys, budget: u64, proto: Protocol) -> Client {
        Client {
            stream: TcpStream::from_std(stream),
            token,
            buf: shape.bytes.clone(),
            keys,
            next_slot: 0,
            budget,
            wpos: 0,
            wend: 0,
            owed: 0,
            sent_at: Instant::now(),
            scanner: Scanner::new(proto),
            want_write: false,
        }
    }

    /// Patches fresh keys into the next batch and writes it.
    fn send_batch(&mut self, shape: &Shape, registry: &Registry, totals: &mut Totals) -> Result<(), String> {
        let n = (shape.pipeline as u64).min(self.budget) as usize;
        debug_assert!(n > 0 && self.owed == 0);
        let (lo, hi) = (self.next_slot, self.next_slot + n);
        for &d in &shape.digits[lo..hi] {
            put_digits(&mut self.buf[d..d + KEY_DIGITS], self.keys.next());
        }
        self.wpos = shape.starts[lo];
        self.wend = shape.starts[hi];
        self.owed = n as u64;
        self.budget -= n as u64;
        self.next_slot = hi % shape.period;
        totals.gets += shape.gets_before[hi] - shape.gets_before[lo];
        self.sent_at = Instant::now();
        self.flush(registry)
    }

    /// Writes what is pending until done or WouldBlock.
    fn flush(&mut self, registry: &Registry) -> Result<(), String> {
        while self.wpos < self.wend {
            match self.stream.write(&self.buf[self.wpos..self.wend]) {
                Ok(0) => return Err("server closed the connection".into()),
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !self.want_write {
                        self.want_write = true;
                        registry
                            .reregister(&mut self.stream, self.token, Interest::READABLE | Interest::WRITABLE)
                            .map_err(|e| format!("poll reregister: {e}"))?;
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write: {e}")),
            }
        }
        if self.want_write {
            self.want_write = false;
            registry
                .reregister(&mut self.stream, self.token, Interest::READABLE)
                .map_err(|e| format!("poll reregister: {e}"))?;
        }
        Ok(())
    }

    /// Reads what arrived; records each complete reply's latency. Returns
    /// whether the batch in flight is fully answered.
    fn on_readable(
        &mut self,
        scratch: &mut [u8],
        now: Instant,
        hist: &mut Histogram,
        totals: &mut Totals,
    ) -> Result<bool, String> {
        loop {
            match self.stream.read(scratch) {
                Ok(0) => return Err("server closed the connection".into()),
                Ok(n) => {
                    let got = self.scanner.feed(&scratch[..n], &mut totals.tally)?;
                    if got > self.owed {
                        return Err("server sent more replies than requests (protocol mismatch?)".into());
                    }
                    self.owed -= got;
                    totals.replies += got;
                    if got > 0 {
                        hist.record_duration(now.saturating_duration_since(self.sent_at), got);
                    }
                    // A short read emptied the socket's receive queue; data
                    // arriving after it raises a new edge. Stopping here saves
                    // the read that would only return WouldBlock: one syscall
                    // in three per batch.
                    if n < scratch.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        Ok(self.owed == 0)
    }
}

/// A counter on its own cache line, so workers publishing progress do not
/// contend with each other.
#[repr(align(64))]
#[derive(Default)]
pub struct Counter(pub AtomicU64);

/// What a worker gets besides its connections.
pub struct WorkerCtl {
    pub shape: Arc<Shape>,
    pub barrier: Arc<Barrier>,
    pub abort: Arc<AtomicBool>,
    pub progress: Arc<Counter>,
    /// Stop starting batches this long after the start.
    pub deadline: Option<Duration>,
}

pub struct WorkerReport {
    pub totals: Totals,
    pub hist: Histogram,
    pub finished: Instant,
}

/// Set by a worker that stops because another one failed; never shown.
pub const ABORTED: &str = "aborted";

/// One event-loop thread: runs its connections until their budgets are spent
/// or the deadline passed, and every batch in flight is answered.
pub fn worker(mut clients: Vec<Client>, ctl: WorkerCtl) -> Result<WorkerReport, String> {
    // Set up before the barrier, but always reach it: the others wait there.
    let setup = (|| {
        let poll = Poll::new().map_err(|e| format!("cannot create poll: {e}"))?;
        for c in clients.iter_mut() {
            poll.registry()
                .register(&mut c.stream, c.token, Interest::READABLE)
                .map_err(|e| format!("poll register: {e}"))?;
        }
        Ok::<_, String>(poll)
    })();
    ctl.barrier.wait();
    let mut poll = setup?;
    let shape = &*ctl.shape;
    let mut events = Events::with_capacity(clients.len().clamp(16, 1024));
    let mut scratch = vec![0u8; 256 << 10];
    let mut hist = Histogram::new();
    let mut totals = Totals::default();
    let start = Instant::now();
    let deadline = ctl.deadline.map(|d| start + d);

    let mut active = 0usize;
    for c in clients.iter_mut().filter(|c| c.budget > 0) {
        c.send_batch(shape, poll.registry(), &mut totals)?;
        active += 1;
    }
    let mut last_event = start;
    while active > 0 {
        if ctl.abort.load(Ordering::Relaxed) {
            return Err(ABORTED.into());
        }
        let mut timeout = TICK;
        if let Some(d) = deadline.map(|d| d.saturating_duration_since(Instant::now()))
            && !d.is_zero()
        {
            timeout = timeout.min(d);
        }
        match poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("poll: {e}")),
        }
        let now = Instant::now();
        if events.is_empty() {
            if now.duration_since(last_event) > STALL {
                return Err(format!("no reply for {} s: the server stalled", STALL.as_secs()));
            }
            continue;
        }
        last_event = now;
        let open = deadline.is_none_or(|d| now < d);
        for ev in events.iter() {
            let c = &mut clients[ev.token().0];
            if c.owed == 0 {
                continue; // finished; a late event (e.g. the server closing) is of no interest
            }
            if ev.is_writable() && c.wpos < c.wend {
                c.flush(poll.registry())?;
            }
            if c.on_readable(&mut scratch, now, &mut hist, &mut totals)? {
                if open && c.budget > 0 {
                    c.send_batch(shape, poll.registry(), &mut totals)?;
                } else {
                    active -= 1;
                }
            }
        }
        ctl.progress.0.store(totals.replies, Ordering::Relaxed);
    }
    ctl.progress.0.store(totals.replies, Ordering::Relaxed);
    Ok(WorkerReport { totals, hist, finished: Instant::now() })
}
