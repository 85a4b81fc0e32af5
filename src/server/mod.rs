//! The server: one thread, one `mio::Poll`, every socket in one slab.
//!
//! # One loop iteration
//! 1. `poll` with the timeout of the earliest deadline (a peer's reconnect,
//!    a compaction step, a paused client to resume; mio has no timers).
//! 2. For each event: accept; or read a client until `WouldBlock`, parse
//!    every complete request, execute it against the [`core::Core`], and
//!    append its reply to the client's output buffer; or advance a peer link
//!    (connect, handshake, acknowledgements).
//! 3. Resume clients that were paused (output over its soft limit) or that
//!    stopped reading at a budget.
//! 4. Before sleeping ([`Server::before_sleep`]), in this order:
//!    a. write a chunk of a running compaction's snapshot;
//!    b. commit the log: write this iteration's records (and fsync under
//!    `--fsync always`). Only then may replies leave: a reply is never
//!    sent for a write the log does not have. If the write fails, the
//!    store is rolled back and the affected replies become errors;
//!    c. hand the logged writes to the peer links and advance catch-up scans;
//!    d. write every connection's output once;
//!    e. reap closed connections (closing is deferred to here, so no event
//!    of this batch can reach a reused slab slot);
//!    f. finish a compaction whose file switch completed; start one if due.

pub mod conn;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::config::Config;
use crate::node::cmd::{self as commands, Client, Flow, Proto};
use crate::node::{Core, unix_now};
use crate::proto::{Argv, Parsed, resp, text};
use crate::repl::link::{self as peer, LinkState};
use crate::server::conn::Conn;
use crate::storage::record::{Op, Record};

const LISTENER: Token = Token(usize::MAX - 1);
const SIGNALS: Token = Token(usize::MAX - 2);

/// Bytes read from one connection per event before others get a turn.
const READ_BUDGET: usize = 1 << 20;
/// Store slots a compaction writes per loop iteration: small enough that a
/// step costs well under a millisecond.
const COMPACT_CHUNK: usize = 4096;
/// How often expired tombstones are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// What a slab slot is.
enum Role {
    /// A client, or a peer's inbound link (which is a client that says REPLHELLO).
    Client(Client),
    /// Our outbound link to peer `index` of the cluster.
    Link(usize),
}

struct Slot {
    conn: Conn,
    role: Role,
}

/// The running server. See the module docs for the loop.
pub struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    signals: Signals,
    slots: Slab<Slot>,
    core: Core,
    argv: Argv,
    /// Requests the look-ahead pass already parsed, reused by the main pass.
    ahead: Lookahead,
    /// Connections with output to write this iteration.
    flush: Vec<usize>,
    /// Connections with input to process without waiting for an event.
    resume: Vec<usize>,
    /// The list being worked through while `resume` collects the next one
    /// (two lists, swapped, so neither is reallocated).
    resuming: Vec<usize>,
    /// Connections to close in `before_sleep`.
    closing: Vec<usize>,
    next_client_id: u64,
    next_sweep: Instant,
    stop: bool,
}

impl Server {
    /// Binds, replays the log, and gets ready to run. Errors are messages
    /// for a person: what failed and where.
    pub fn start(cfg: Config) -> Result<Server, String> {
        let listener = TcpListener::bind(cfg.listen).map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
        let local_addr = listener.local_addr().map_err(|e| format!("cannot read the listening address: {e}"))?;
        let id = cfg.id.unwrap_or(local_addr.port());
        let now = Instant::now();
        let (core, replay) = Core::open(cfg, id, now)?;
        log::info!(
            "kvstore-server node {id} listening on {local_addr} (text protocol and RESP); data in {}",
            core.log.path().display()
        );
        log::info!(
            "replayed {} records ({} bytes) in {:.3}s: {} keys{}",
            replay.records,
            replay.bytes,
            replay.elapsed.as_secs_f64(),
            core.store.len(),
            if replay.dropped_tail_bytes > 0 {
                format!(", {} bytes of torn tail dropped", replay.dropped_tail_bytes)
            } else {
                String::new()
            }
        );
        log::info!(
            "fsync {}; peers: {}",
            core.cfg.fsync,
            if core.cfg.peer_names.is_empty() { "none".to_string() } else { core.cfg.peer_names.join(", ") }
        );
        let poll = Poll::new().map_err(|e| format!("cannot create the poller: {e}"))?;
        let mut listener = listener;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| format!("cannot register the listener: {e}"))?;
        let mut signals =
            Signals::new([SIGTERM, SIGINT]).map_err(|e| format!("cannot install signal handlers: {e}"))?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(|e| format!("cannot register signals: {e}"))?;
        ignore_sigxfsz();
        raise_fd_limit(core.cfg.max_clients);
        Ok(Server {
            poll,
            listener: Some(listener),
            local_addr,
            signals,
            slots: Slab::new(),
            core,
            argv: Argv::new(),
            ahead: Lookahead::default(),
            flush: Vec::new(),
            resume: Vec::new(),
            resuming: Vec::new(),
            closing: Vec::new(),
            next_client_id: 1,
            next_sweep: now + SWEEP_EVERY,
            stop: false,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Runs until SIGTERM or SIGINT, then shuts down cleanly.
    pub fn run(&mut self) -> Result<(), String> {
        let mut events = Events::with_capacity(1024);
        while !self.stop {
            let timeout = self.next_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(format!("poll failed: {e}"));
            }
            self.core.now_secs = unix_now();
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    SIGNALS => {
                        for sig in self.signals.pending() {
                            log::info!("received signal {sig}: shutting down");
                            self.stop = true;
                        }
                    }
                    Token(id) => self.on_event(id, ev),
                }
            }
            self.resume_connections();
            self.before_sleep();
        }
        self.shutdown()
    }

    fn next_timeout(&self) -> Option<Duration> {
        if !self.resume.is_empty() || self.core.compaction.as_ref().is_some_and(|c| c.cursor.is_some()) {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let mut deadline = self.next_sweep;
        if let Some(d) = self.core.cluster.deadline() {
            deadline = deadline.min(d);
        }
        if self.core.compaction.is_some() {
            deadline = deadline.min(now + Duration::from_millis(5));
        }
        let high_water = self.core.sync_high_water();
        if self.core.cluster.links.iter().any(|l| matches!(l.state, LinkState::Syncing { .. }) && l.queued < high_water)
        {
            return Some(Duration::ZERO);
        }
        Some(deadline.saturating_duration_since(now))
    }

    fn accept(&mut self) {
        loop {
            let Some(listener) = &self.listener else { return };
            match listener.accept() {
                Ok((mut stream, addr)) => {
                    if self.core.stats.connected >= self.core.cfg.max_clients {
                        self.core.stats.rejected_connections += 1;
                        let _ = stream.write(b"-ERR max number of clients reached\r\n");
                        log::warn!("refused {addr}: {} clients connected (--max-clients)", self.core.stats.connected);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let entry = self.slots.vacant_entry();
                    let token = Token(entry.key());
                    if let Err(e) =
                        self.poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                    {
                        log::warn!("cannot register {addr}: {e}");
                        continue;
                    }
                    let client = Client { id: self.next_client_id, ..Client::default() };
                    self.next_client_id += 1;
                    entry.insert(Slot { conn: Conn::new(stream, addr), role: Role::Client(client) });
                    self.core.stats.connected += 1;
                    self.core.stats.total_connections += 1;
                    log::debug!("accepted {addr}");
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and the like: the connection stays in the backlog
                    // and is tried again at the next event.
                    log::warn!("accept failed: {e}");
                    return;
                }
            }
        }
    }

    fn on_event(&mut self, id: usize, ev: &Event) {
        let Some(slot) = self.slots.get(id) else { return };
        match slot.role {
            Role::Client(_) => {
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    self.read_client(id, !(ev.is_read_closed() || ev.is_error()));
                }
                if ev.is_writable() {
                    self.queue_flush(id);
                }
            }
            Role::Link(li) => self.link_event(id, li, ev),
        }
    }

    fn queue_flush(&mut self, id: usize) {
        if let Some(slot) = self.slots.get_mut(id)
            && !slot.conn.queued
            && !slot.conn.output.is_empty()
        {
            slot.conn.queued = true;
            self.flush.push(id);
        }
    }

    fn close_later(&mut self, id: usize, discard_output: bool) {
        if let Some(slot) = self.slots.get_mut(id) {
            if discard_output {
                slot.conn.output.truncate_unwritten(0);
            }
            slot.conn.closing = true;
            self.closing.push(id);
        }
    }

    /// Reads a client until `WouldBlock` (or its budget), then processes.
    /// `trust_short_read`: see [`crate::server::conn::InBuf::fill`].
    fn read_client(&mut self, id: usize, trust_short_read: bool) {
        let max_request = self.core.cfg.max_request;
        let Some(slot) = self.slots.get_mut(id) else { return };
        let conn = &mut slot.conn;
        if conn.closing {
            return;
        }
        if !conn.paused && !conn.input.is_empty() {
            // Requests left from a pause come first: reading more before
            // they are done would let the input grow without bound.
            self.process(id);
        }
        let Some(slot) = self.slots.get_mut(id) else { return };
        let conn = &mut slot.conn;
        if conn.paused || conn.closing {
            conn.unread = true;
            return;
        }
        // What is left is at most one unfinished request: read on.
        let limit = (conn.input.len() + READ_BUDGET).min(max_request + 1);
        match conn.input.fill(&mut conn.stream, limit, trust_short_read) {
            Err(e) => {
                log::debug!("{}: read failed: {e}", conn.addr);
                self.close_later(id, true);
            }
            Ok(f) => {
                conn.unread = !f.blocked && !f.eof;
                self.process(id);
                let Some(slot) = self.slots.get_mut(id) else { return };
                if f.eof {
                    log::debug!("{}: closed by the client", slot.conn.addr);
                    self.close_later(id, false);
                } else if slot.conn.unread && !slot.conn.paused && !slot.conn.closing {
                    self.resume.push(id);
                }
            }
        }
    }

    /// Parses and executes every complete request in a client's input.
    fn process(&mut self, id: usize) {
        let Server { slots, core, argv, ahead, flush, closing, .. } = self;
        let Some(slot) = slots.get_mut(id) else { return };
        let Role::Client(client) = &mut slot.role else { return };
        let conn = &mut slot.conn;
        let limits = core.cfg.limits;
        let soft = core.cfg.output_soft_limit;
        let input = conn.input.pending();
        let already_written = conn.output.written();
        let out = &mut conn.output.data;
        let mut pos = 0;
        let mut prefetched = 0;
        while pos < input.len() && !conn.closing {
            // A lone request (pipeline depth 1 is a short input) gains
            // nothing from looking ahead and would be parsed twice.
            if pos >= prefetched && input.len() - pos > 128 {
                prefetched = pos + prefetch_keys(&core.store, &input[pos..], pos, argv, ahead, &limits);
            }
            if out.len() - already_written >= soft {
                conn.paused = true;
                break;
            }
            let buf = &input[pos..];
            let proto = if buf[0] == b'*' { Proto::Resp } else { Proto::Text };
            let parsed = match ahead.take(pos, argv) {
                Some(consumed) => Ok(Parsed::Request { consumed }),
                None if proto == Proto::Resp => resp::parse(buf, argv, &limits),
                None => text::parse(buf, argv, &limits),
            };
            match parsed {
                Ok(Parsed::Incomplete) => break,
                Ok(Parsed::Request { consumed }) => {
                    pos += consumed;
                    if argv.is_empty() {
                        continue;
                    }
                    let before = out.len();
                    core.wrote = false;
                    let flow = commands::execute(core, client, proto, argv, buf, out);
                    if core.wrote && conn.unacked_at.is_none() {
                        conn.unacked_at = Some(before);
                        conn.unacked_resp = proto == Proto::Resp;
                    }
                    if flow == Flow::Close {
                        conn.closing = true;
                        closing.push(id);
                    }
                }
                Err(e) => {
                    core.stats.protocol_errors += 1;
                    log::debug!("{}: protocol error, closing: {e}", conn.addr);
                    match proto {
                        Proto::Resp => resp::error(out, format!("ERR Protocol error: {e}").as_bytes()),
                        Proto::Text => text::line(out, format!("ERROR {e}").as_bytes()),
                    }
                    conn.closing = true;
                    closing.push(id);
                }
            }
        }
        ahead.clear();
        conn.input.consume(pos);
        if !conn.closing && conn.input.len() > core.cfg.max_request {
            core.stats.protocol_errors += 1;
            let msg = format!("request larger than --max-request ({} bytes)", core.cfg.max_request);
            log::debug!("{}: {msg}, closing", conn.addr);
            if conn.input.pending().first() == Some(&b'*') {
                resp::error(out, format!("ERR Protocol error: {msg}").as_bytes());
            } else {
                text::line(out, format!("ERROR {msg}").as_bytes());
            }
            conn.closing = true;
            closing.push(id);
        }
        conn.input.release_if_empty();
        if conn.output.len() > core.cfg.output_hard_limit {
            log::warn!("{}: output buffer over --output-hard-limit, disconnecting", conn.addr);
            conn.output.truncate_unwritten(0);
            conn.closing = true;
            closing.push(id);
        }
        if !conn.output.is_empty() && !conn.queued {
            conn.queued = true;
            flush.push(id);
        }
    }

    fn resume_connections(&mut self) {
        std::mem::swap(&mut self.resume, &mut self.resuming);
        let list = std::mem::take(&mut self.resuming);
        for &id in &list {
            let Some(slot) = self.slots.get_mut(id) else { continue };
            if let Role::Link(li) = slot.role {
                // A link that stopped reading at its budget (no event to
                // tell whether a FIN waits: read to the end).
                self.read_link(id, li, false);
                continue;
            }
            if slot.conn.closing || slot.conn.paused {
                continue;
            }
            if !slot.conn.input.is_empty() {
                self.process(id);
            }
            if self.slots.get(id).is_some_and(|s| s.conn.unread && !s.conn.paused && !s.conn.closing) {
                // No event to tell whether a FIN is waiting: read to the end.
                self.read_client(id, false);
            }
        }
        let mut list = list;
        list.clear();
        self.resuming = list; // keep the allocation
    }

    /// The end of an iteration: see the module docs for the order.
    fn before_sleep(&mut self) {
        self.compaction_step();
        self.commit();
        self.feed_links();
        self.flush_all();
        self.reap();
        self.housekeeping();
    }

    fn compaction_step(&mut self) {
        let core = &mut self.core;
        let Some(c) = &mut core.compaction else { return };
        let Some(cursor) = c.cursor else { return };
        let end = (cursor + COMPACT_CHUNK).min(core.store.slots());
        for i in cursor..end {
            if let Some(s) = core.store.slot(i) {
                let op = if s.value.is_some() { Op::Put } else { Op::Del };
                let rec = Record { op, flags: 0, version: s.version, key: s.key, value: s.value.unwrap_or_default() };
                core.log.rewrite_record(&rec);
            }
        }
        if end < core.store.slots() {
            c.cursor = Some(end);
            return;
        }
        c.cursor = None;
        if let Err(e) = core.log.finish_rewrite() {
            log::error!("compaction failed: {e}; the old log stays in use");
            core.log.abort_rewrite();
            core.compaction = None;
        }
    }

    fn commit(&mut self) {
        let core = &mut self.core;
        if !core.log.has_staged() {
            core.committed();
            return;
        }
        match core.log.commit() {
            Ok(()) => {
                core.committed();
                for &id in &self.flush {
                    if let Some(slot) = self.slots.get_mut(id) {
                        slot.conn.unacked_at = None;
                    }
                }
            }
            Err(e) => {
                core.rolled_back(e.to_string());
                // Replies to the writes the log could not take become errors,
                // and those clients are closed: what followed them in the
                // pipeline may have depended on them.
                for &id in &self.flush {
                    let Some(slot) = self.slots.get_mut(id) else { continue };
                    let Some(at) = slot.conn.unacked_at.take() else { continue };
                    slot.conn.output.truncate_unwritten(at);
                    let msg = format!("log write failed ({e}); the write was not applied");
                    if slot.conn.unacked_resp {
                        resp::error(&mut slot.conn.output.data, format!("ERR {msg}").as_bytes());
                    } else {
                        text::line(&mut slot.conn.output.data, format!("ERROR {msg}").as_bytes());
                    }
                    slot.conn.closing = true;
                    self.closing.push(id);
                }
            }
        }
    }

    /// Hands this iteration's logged writes to the links, and advances
    /// catch-up scans.
    fn feed_links(&mut self) {
        let Server { slots, core, flush, .. } = self;
        let now = Instant::now();
        for li in 0..core.cluster.links.len() {
            if core.cluster.links[li].due(now) {
                connect_link(&self.poll, slots, core, li, now);
            }
            let Some(cid) = core.cluster.links[li].conn else { continue };
            let Some(slot) = slots.get_mut(cid) else { continue };
            let written = slot.conn.output.written();
            core.feed_link(li, &mut slot.conn.output.data, written, now);
            let link = &mut core.cluster.links[li];
            link.queued = slot.conn.output.len();
            if link.queued > core.cfg.peer_queue_limit {
                link.failed(now, "queue over --peer-queue-limit; it will catch up by resync");
                slot.conn.output.truncate_unwritten(0);
                slot.conn.closing = true;
                self.closing.push(cid);
                continue;
            }
            if !slot.conn.output.is_empty() && !slot.conn.queued {
                slot.conn.queued = true;
                flush.push(cid);
            }
        }
        core.link_batch.clear();
    }

    fn flush_all(&mut self) {
        let soft = self.core.cfg.output_soft_limit;
        let mut list = std::mem::take(&mut self.flush);
        for &id in &list {
            let Some(slot) = self.slots.get_mut(id) else { continue };
            slot.conn.queued = false;
            let conn = &mut slot.conn;
            if let Err(e) = conn.output.flush(&mut conn.stream) {
                log::debug!("{}: write failed: {e}", conn.addr);
                conn.output.truncate_unwritten(0);
                conn.closing = true;
                self.closing.push(id);
                if let Role::Link(li) = slot.role
                    && self.core.cluster.links[li].conn == Some(id)
                {
                    self.core.cluster.links[li].failed(Instant::now(), &e.to_string());
                }
                continue;
            }
            if let Role::Link(li) = slot.role {
                self.core.cluster.links[li].queued = conn.output.len();
            }
            if conn.closing && conn.output.is_empty() {
                self.closing.push(id);
            }
            if conn.paused && conn.output.len() < soft {
                conn.paused = false;
                self.resume.push(id);
            }
        }
        list.clear();
        if self.flush.is_empty() {
            self.flush = list;
        }
    }

    /// Closes connections marked closing whose output is written (or that
    /// broke), now that no event of this batch can reach their slot.
    fn reap(&mut self) {
        let mut list = std::mem::take(&mut self.closing);
        list.sort_unstable();
        list.dedup();
        for &id in &list {
            let Some(slot) = self.slots.get(id) else { continue };
            if !slot.conn.closing {
                continue;
            }
            if !slot.conn.output.is_empty() {
                // Still writing a last reply (QUIT, an error): a WRITABLE
                // event will flush it and put it back on the list.
                continue;
            }
            let mut slot = self.slots.remove(id);
            let _ = self.poll.registry().deregister(&mut slot.conn.stream);
            match slot.role {
                Role::Client(_) => self.core.stats.connected -= 1,
                Role::Link(li) => {
                    let link = &mut self.core.cluster.links[li];
                    if link.conn == Some(id) {
                        link.failed(Instant::now(), "closed");
                    }
                }
            }
        }
        list.clear();
        if self.closing.is_empty() {
            self.closing = list;
        }
    }

    fn housekeeping(&mut self) {
        let core = &mut self.core;
        if core.compaction.is_some()
            && let Some(result) = core.log.poll_rewrite()
        {
            let took = core.compaction.take().map_or(Duration::ZERO, |c| c.started.elapsed());
            match result {
                Ok(done) => {
                    core.stats.compactions += 1;
                    core.stats.last_compaction = Some((done.old_len, done.new_len, took));
                    log::info!(
                        "compaction done in {:.3}s: log {} -> {} bytes",
                        took.as_secs_f64(),
                        done.old_len,
                        done.new_len
                    );
                }
                Err(e) => log::error!("compaction failed: {e}; the old log stays in use"),
            }
        }
        let scanning = core.compaction.is_some() || core.cluster.scanning();
        if !scanning {
            core.store.sweep_fresh_tombstones();
            let now = Instant::now();
            if now >= self.next_sweep {
                self.next_sweep = now + SWEEP_EVERY;
                let cutoff =
                    unix_now().saturating_sub(core.cfg.tombstone_grace.as_secs().min(u64::from(u32::MAX)) as u32);
                let freed = core.store.sweep_expired(cutoff);
                if freed > 0 {
                    log::info!("reclaimed {freed} tombstones older than {:?}", core.cfg.tombstone_grace);
                }
            }
        }
        if core.compaction_due()
            && let Err(e) = core.start_compaction()
        {
            log::error!("{e}");
        }
    }

    fn link_event(&mut self, id: usize, li: usize, ev: &Event) {
        let now = Instant::now();
        let Server { slots, core, .. } = self;
        let link = &mut core.cluster.links[li];
        if link.conn != Some(id) {
            return; // an event for a link socket already given up
        }
        let Some(slot) = slots.get_mut(id) else { return };
        let conn = &mut slot.conn;
        if link.state == LinkState::Connecting {
            if !(ev.is_writable() || ev.is_error() || ev.is_read_closed() || ev.is_write_closed()) {
                return;
            }
            let failure = match conn.stream.take_error() {
                Ok(Some(e)) | Err(e) => Some(e.to_string()),
                Ok(None) => match conn.stream.peer_addr() {
                    Ok(_) => None,
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => return, // not yet: spurious
                    Err(e) => Some(e.to_string()),
                },
            };
            if let Some(why) = failure {
                link.failed(now, &why);
                conn.closing = true;
                self.closing.push(id);
                return;
            }
            let _ = conn.stream.set_nodelay(true);
            link.connected();
            peer::hello(&mut conn.output.data, core.id);
        }
        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
            self.read_link(id, li, !(ev.is_read_closed() || ev.is_error()));
        } else {
            self.queue_flush(id);
        }
    }

    /// Reads a link's replies until `WouldBlock` or the read budget (then
    /// it is put on the resume list: under edge-triggered readiness no
    /// event would come for bytes already waiting), and acts on them.
    /// `trust_short_read`: see [`crate::server::conn::InBuf::fill`].
    fn read_link(&mut self, id: usize, li: usize, trust_short_read: bool) {
        let now = Instant::now();
        let Server { slots, core, .. } = self;
        if core.cluster.links[li].conn != Some(id) {
            return;
        }
        let Some(slot) = slots.get_mut(id) else { return };
        let conn = &mut slot.conn;
        if conn.closing {
            return;
        }
        let fill = conn.input.fill(&mut conn.stream, READ_BUDGET, trust_short_read);
        let mut why: Option<String> = match &fill {
            Err(e) => Some(e.to_string()),
            Ok(_) => None,
        };
        let mut used = 0;
        while why.is_none() {
            match peer::parse_reply(&conn.input.pending()[used..]) {
                Ok(None) => break,
                Ok(Some((reply, n))) => {
                    used += n;
                    if let Err(e) = core.link_reply(li, reply, &mut conn.output.data, now) {
                        why = Some(e);
                    }
                }
                Err(e) => why = Some(e.to_string()),
            }
        }
        conn.input.consume(used);
        if why.is_none() && matches!(fill, Ok(f) if f.eof) {
            why = Some("closed by the peer".into());
        }
        if let Some(why) = why {
            core.cluster.links[li].failed(now, &why);
            conn.output.truncate_unwritten(0);
            conn.closing = true;
            self.closing.push(id);
            return;
        }
        if matches!(fill, Ok(f) if !f.blocked) {
            // Budget reached: come back without waiting for an event.
            self.resume.push(id);
        }
        self.queue_flush(id);
    }

    fn shutdown(&mut self) -> Result<(), String> {
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        // Replies already computed go out if the sockets take them now.
        for (_, slot) in self.slots.iter_mut() {
            let _ = slot.conn.output.flush(&mut slot.conn.stream);
        }
        if self.core.compaction.is_some() {
            self.core.log.abort_rewrite();
        }
        self.core.log.sync_all().map_err(|e| format!("cannot fsync the log at shutdown: {e}"))?;
        log::info!("log synced ({} bytes, {} keys); bye", self.core.log.len(), self.core.store.len());
        Ok(())
    }
}

/// Requests looked ahead by [`prefetch_keys`].
const PREFETCH_WINDOW: usize = 32;

/// Requests parsed by the look-ahead pass of [`prefetch_keys`], so that the
/// main pass does not parse them a second time. Valid for one `process`
/// call (offsets are into that call's input); reused, so it allocates
/// nothing in steady state.
#[derive(Default)]
struct Lookahead {
    /// Per request: (offset in the input, bytes it takes, first span, span count).
    reqs: Vec<(usize, usize, usize, usize)>,
    /// The argument spans of all of them, back to back.
    spans: Vec<(u32, u32)>,
    /// The next request of `reqs` the main pass will reach.
    next: usize,
}

impl Lookahead {
    fn clear(&mut self) {
        self.reqs.clear();
        self.spans.clear();
        self.next = 0;
    }

    /// The request at `offset`, if it was parsed ahead: loads its arguments
    /// into `argv` and returns its length.
    fn take(&mut self, offset: usize, argv: &mut Argv) -> Option<usize> {
        let &(at, consumed, first, n) = self.reqs.get(self.next)?;
        if at != offset {
            return None;
        }
        self.next += 1;
        argv.clear();
        for &(s, e) in &self.spans[first..first + n] {
            argv.push(s as usize, e as usize);
        }
        Some(consumed)
    }
}

/// Warms the cache for the keys of the next requests in `input` (the second
/// argument of each, the key of GET, SET, PUT, DEL, ...): with many random
/// keys, each lookup is a few dependent cache misses, and in a pipelined
/// batch they can overlap instead of stalling one by one. The requests it
/// parses are kept in `ahead` (at `base` + their offset) for the main pass.
/// Returns how many bytes of requests it covered (all of `input` when it
/// met an incomplete or bad request, which the main pass then deals with).
fn prefetch_keys(
    store: &crate::storage::store::Store,
    input: &[u8],
    base: usize,
    argv: &mut Argv,
    ahead: &mut Lookahead,
    limits: &crate::proto::Limits,
) -> usize {
    ahead.clear();
    let mut hashes = [0u64; PREFETCH_WINDOW];
    let (mut n, mut pos) = (0, 0);
    while n < PREFETCH_WINDOW && pos < input.len() {
        let buf = &input[pos..];
        let parsed = if buf[0] == b'*' { resp::parse(buf, argv, limits) } else { text::parse(buf, argv, limits) };
        let Ok(Parsed::Request { consumed }) = parsed else { return input.len() };
        ahead.reqs.push((base + pos, consumed, ahead.spans.len(), argv.len()));
        ahead.spans.extend_from_slice(argv.spans());
        if argv.len() >= 2 {
            hashes[n] = store.hash(argv.get(buf, 1));
            n += 1;
        }
        pos += consumed;
    }
    // One request alone gains nothing from looking ahead.
    if n >= 2 {
        for &h in &hashes[..n] {
            store.prefetch_entry(h);
        }
        for &h in &hashes[..n] {
            store.prefetch_data(h);
        }
    }
    if pos >= input.len() { input.len() } else { pos }
}

/// Starts a non-blocking connect for link `li`.
fn connect_link(poll: &Poll, slots: &mut Slab<Slot>, core: &mut Core, li: usize, now: Instant) {
    let link = &mut core.cluster.links[li];
    match TcpStream::connect(link.addr) {
        Ok(mut stream) => {
            let entry = slots.vacant_entry();
            let id = entry.key();
            if let Err(e) = poll.registry().register(&mut stream, Token(id), Interest::READABLE | Interest::WRITABLE) {
                link.failed(now, &e.to_string());
                return;
            }
            entry.insert(Slot { conn: Conn::new(stream, link.addr), role: Role::Link(li) });
            link.connecting(id);
        }
        Err(e) => link.failed(now, &e.to_string()),
    }
}

/// Raises the open-file limit toward what `max_clients` connections need
/// (as Redis does), so a default 1024 limit does not cap clients silently.
fn raise_fd_limit(max_clients: usize) {
    let want = (max_clients as u64).saturating_add(64);
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 || lim.rlim_cur >= want {
            return;
        }
        let target = want.min(lim.rlim_max);
        let new = libc::rlimit { rlim_cur: target, rlim_max: lim.rlim_max };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &new) == 0 && target < want {
            log::warn!("open-file limit is {target}: at most about {} clients", target.saturating_sub(64));
        }
    }
}

/// A file-size limit (ulimit -f) must make writes fail with EFBIG, which
/// the log handles, rather than kill the process with SIGXFSZ.
fn ignore_sigxfsz() {
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions
    // and happens before any other thread exists.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}
