//! The reactor: one thread, one `mio::Poll`, every socket in one slab. It
//! owns the sockets and nothing else: what their bytes mean, and what to
//! send, is the [`Node`]'s. Connections and their buffers are in
//! [`conn`]; accepting clients and acting on what the node's client
//! registry asks (kills, blocked clients' answers, MONITOR lines) in
//! `clients.rs`.
//!
//! # One loop iteration
//! 1. `poll`, with the timeout the node asked for at the end of the last
//!    iteration (mio has no timers), or none while connections wait to be
//!    resumed; then the node is given the time ([`Node::set_time`]).
//! 2. For each event: accept; or read a client until its socket is drained
//!    (or a read budget is spent) and hand its input to [`Node::process`],
//!    which appends the replies to its output; or advance a peer link (the
//!    connect completed; replies read, for [`Node::link_input`]).
//! 3. Resume connections that stopped at a budget, or that were paused
//!    (output over its soft limit) and have drained.
//! 4. Before sleeping (`Server::before_sleep`), in this order:
//!    a. [`Node::before_sleep`]: a compaction chunk, then the log commit
//!    (with its fsync under `--fsync always`);
//!    b. the commit's outcome: the replies that waited for it are released
//!    (a reply never leaves for a write the log does not have), or, if it
//!    failed, replaced by errors and their connections closed; then the
//!    answers of blocked clients that are ready (WAIT, SAVE) are appended
//!    and those clients resumed, and the iteration's MONITOR lines appended
//!    to every monitor (one over the output hard limit is disconnected);
//!    c. peer connections opened as the node asks, and every link's
//!    connection fed ([`Node::feed_link`]: the logged writes, a catch-up
//!    chunk), or dropped when its queue is over the limit;
//!    d. every connection's output written once, and the links' unwritten
//!    bytes reported to the node;
//!    e. closed connections reaped (closing is deferred to here, so no event
//!    of this batch can reach a reused slab slot);
//!    f. [`Node::advance`]: compactions finished or started, expired keys
//!    reclaimed, tombstones swept; it says when it next needs a turn.
//!
//! # TLS
//! A connection accepted on a TLS listener (`--tls-port`, or the port
//! itself under `--tls-only`), or a peer link under `--tls-replication`,
//! has a [`tls::TlsStream`] for its socket; the steps above are the same.
//! Its handshake is driven by its reads and flushes, and one not done by
//! its deadline is closed at step 4 (before the flush), the poll timeout
//! being the earlier of the node's and the next handshake deadline.

mod clients;
pub mod conn;
mod links;
mod os;
pub mod tls;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use self::conn::{Conn, Role};
use self::tls::Tls;
use crate::config::Config;
use crate::node::clients::Buffers;
use crate::node::leader::{Settled, outcome_unknown};
use crate::node::security::PRE_AUTH_BUFFER;
use crate::node::{Commit, Node, Ready, unix_now};

const LISTENER: Token = Token(usize::MAX - 1);
const SIGNALS: Token = Token(usize::MAX - 2);
/// The `--tls-port` listener.
const TLS_LISTENER: Token = Token(usize::MAX - 3);

/// Bytes read from one connection per event before others get a turn.
const READ_BUDGET: usize = 1 << 20;

/// The running server. See the module docs for the loop.
pub struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    /// The `--tls-port` listener, and its address.
    tls_listener: Option<(TcpListener, SocketAddr)>,
    /// TLS configurations and handshake deadlines, if TLS is on.
    tls: Option<Tls>,
    signals: Signals,
    conns: Slab<Conn>,
    node: Node,
    /// What the node asked for at the end of this iteration (kept, so its
    /// lists are not reallocated).
    ready: Ready,
    /// Per peer link, the slab key of its connection while it has one.
    links: Vec<Option<usize>>,
    /// Connections with output to write this iteration.
    flush: Vec<usize>,
    /// Connections with input to process without waiting for an event.
    resume: Vec<usize>,
    /// The list being worked through while `resume` collects the next one
    /// (two lists, swapped, so neither is reallocated).
    resuming: Vec<usize>,
    /// Connections to close in `before_sleep`.
    closing: Vec<usize>,
    /// Leader mode: connections with replies waiting for a majority.
    waiting: Vec<usize>,
    /// The client count the open-file limit was last raised for
    /// (`maxclients` can grow at run time).
    fd_limit_for: usize,
    /// When the node next needs a turn with no event (see [`Node::advance`]).
    wakeup: Option<Instant>,
    stop: bool,
}

impl Server {
    /// Binds, replays the log, and gets ready to run. Errors are messages
    /// for a person: what failed and where.
    pub fn start(mut cfg: Config) -> Result<Server, String> {
        let tls = Tls::load(&cfg.tls, &cfg.peer_names)?;
        let listener = TcpListener::bind(cfg.listen).map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
        let local_addr = listener.local_addr().map_err(|e| format!("cannot read the listening address: {e}"))?;
        let mut tls_listener = tls::bind_listener(cfg.tls.listen)?;
        // With port 0, the data directory and the id follow the port it got.
        let id = cfg.listening_on(local_addr.port())?;
        cfg.max_clients = os::raise_fd_limit(cfg.max_clients);
        let over = if cfg.tls.only { " over TLS" } else { "" };
        let now = Instant::now();
        let (node, replay) = Node::open(cfg, id, now)?;
        log::info!(
            "kvstore-server node {id} listening on {local_addr} (text protocol and RESP{over}); data in {}",
            node.log().path().display()
        );
        if let Some((_, addr)) = &tls_listener {
            log::info!("TLS listening on {addr} (text protocol and RESP)");
        }
        log::info!(
            "replayed {} records ({} bytes) in {:.3}s: {} keys{}",
            replay.records,
            replay.bytes,
            replay.elapsed.as_secs_f64(),
            node.store().len(),
            if replay.dropped_tail_bytes > 0 {
                format!(", {} bytes of torn tail dropped", replay.dropped_tail_bytes)
            } else {
                String::new()
            }
        );
        let cfg = node.cfg();
        log::info!(
            "fsync {}; peers: {}",
            cfg.fsync,
            if cfg.peer_names.is_empty() { "none".to_string() } else { cfg.peer_names.join(", ") }
        );
        let poll = Poll::new().map_err(|e| format!("cannot create the poller: {e}"))?;
        let mut listener = listener;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| format!("cannot register the listener: {e}"))?;
        if let Some((l, _)) = &mut tls_listener {
            poll.registry()
                .register(l, TLS_LISTENER, Interest::READABLE)
                .map_err(|e| format!("cannot register the TLS listener: {e}"))?;
        }
        let mut signals =
            Signals::new([SIGTERM, SIGINT]).map_err(|e| format!("cannot install signal handlers: {e}"))?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(|e| format!("cannot register signals: {e}"))?;
        os::ignore_sigxfsz();
        let fd_limit_for = cfg.max_clients;
        Ok(Server {
            poll,
            listener: Some(listener),
            local_addr,
            tls_listener,
            tls,
            signals,
            conns: Slab::new(),
            links: vec![None; node.links()],
            node,
            ready: Ready::default(),
            flush: Vec::new(),
            resume: Vec::new(),
            resuming: Vec::new(),
            closing: Vec::new(),
            waiting: Vec::new(),
            fd_limit_for,
            wakeup: Some(now),
            stop: false,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Gives the node a way to read the allocator's memory figures for
    /// INFO (the library does not know which allocator the binary uses).
    pub fn set_memory_probe(&mut self, probe: crate::node::stats::MemoryProbe) {
        self.node.set_memory_probe(probe);
    }

    /// Runs until SIGTERM or SIGINT, then shuts down cleanly.
    pub fn run(&mut self) -> Result<(), String> {
        let mut events = Events::with_capacity(1024);
        while !self.stop {
            let timeout = self.timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(format!("poll failed: {e}"));
            }
            self.node.set_time(Instant::now(), unix_now());
            for ev in events.iter() {
                match ev.token() {
                    LISTENER | TLS_LISTENER => self.accept(ev.token()),
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

    fn timeout(&self) -> Option<Duration> {
        if !self.resume.is_empty() {
            return Some(Duration::ZERO);
        }
        let handshake = self.tls.as_ref().and_then(Tls::next_deadline);
        let wakeup = match (self.wakeup, handshake) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        wakeup.map(|t| t.saturating_duration_since(Instant::now()))
    }

    fn on_event(&mut self, id: usize, ev: &Event) {
        let Some(conn) = self.conns.get(id) else { return };
        match conn.role {
            Role::Client(_) => {
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    self.read_client(id, !(ev.is_read_closed() || ev.is_error()));
                }
                if ev.is_writable() {
                    self.queue_flush(id);
                }
            }
            Role::Link { index, .. } => self.link_event(id, index, ev),
        }
    }

    fn queue_flush(&mut self, id: usize) {
        if let Some(conn) = self.conns.get_mut(id)
            && !conn.on_flush_list
            && conn.has_output()
        {
            conn.on_flush_list = true;
            self.flush.push(id);
        }
    }

    fn close_later(&mut self, id: usize, discard_output: bool) {
        if let Some(conn) = self.conns.get_mut(id) {
            if discard_output {
                conn.discard_output();
            }
            conn.closing = true;
            self.closing.push(id);
        }
    }

    /// Reads a client until its socket is drained (or its budget), then
    /// processes. `trust_short_read`: see [`conn::InBuf::fill`].
    fn read_client(&mut self, id: usize, trust_short_read: bool) {
        let max_request = self.node.cfg().max_request;
        let Some(conn) = self.conns.get_mut(id) else { return };
        if conn.closing {
            return;
        }
        if !conn.paused && !conn.input.is_empty() {
            // Requests left from a pause come first: reading more before
            // they are done would let the input grow without bound.
            self.process(id);
        }
        let Some(conn) = self.conns.get_mut(id) else { return };
        if conn.paused || conn.closing {
            conn.unread = true;
            return;
        }
        // A blocked connection is read on (its requests wait in its input)
        // so that its hanging up is seen; not past the request limit.
        if conn.blocked && conn.input.len() > max_request {
            conn.unread = true;
            return;
        }
        // What is left is at most one unfinished request: read on.
        let limit = (conn.input.len() + READ_BUDGET).min(max_request + 1);
        match conn.fill(limit, trust_short_read) {
            Err(e) => {
                log::debug!("{}: read failed: {e}", conn.addr);
                self.close_later(id, true);
            }
            Ok(f) => {
                conn.unread = !f.blocked && !f.eof;
                self.node.count_input(f.got, false);
                self.process(id);
                let Some(conn) = self.conns.get_mut(id) else { return };
                if f.eof && conn.blocked {
                    conn.hung_up = true;
                } else if f.eof {
                    log::debug!("{}: closed by the client", conn.addr);
                    self.close_later(id, false);
                } else if conn.unread && !conn.paused && !conn.closing && !conn.blocked {
                    self.resume.push(id);
                }
            }
        }
    }

    /// Hands a client's input to the node, which appends the replies.
    fn process(&mut self, id: usize) {
        let Server { conns, node, .. } = self;
        let Some(conn) = conns.get_mut(id) else { return };
        if conn.blocked {
            return;
        }
        let Conn { role: Role::Client(session), input, output, .. } = conn else { return };
        let written = output.written();
        // What is still unwritten from earlier iterations (a client's
        // backlog); this batch's replies go out at the end of the iteration.
        let backlog = output.len();
        let p = node.process(session, input.pending(), &mut output.data, written);
        // Before AUTH, a client may not make the server hold much output.
        let hard = if node.needs_auth(session) { PRE_AUTH_BUFFER } else { node.cfg().output_hard_limit };
        input.consume(p.consumed);
        input.release_if_empty();
        let buffers =
            Buffers { qbuf: input.len(), qbuf_cap: input.capacity(), obuf: backlog, obuf_cap: output.capacity() };
        node.client_seen(session, buffers);
        if conn.held.is_none() {
            conn.held = p.held;
        }
        if let Some(w) = p.wait {
            match conn.waits.back_mut() {
                Some(last) if last.iteration == w.iteration => last.merge(&w),
                _ => {
                    if conn.waits.is_empty() {
                        self.waiting.push(id);
                    }
                    conn.waits.push_back(w);
                }
            }
        }
        conn.paused |= p.paused;
        conn.blocked |= p.blocked;
        if let Some(e) = &p.error {
            log::debug!("{}: protocol error, closing: {e}", conn.addr);
        }
        if p.attack {
            log::warn!(
                "{}: possible SECURITY ATTACK: an HTTP request (a web page through a browser?) reached kvstore's \
                 port; connection closed",
                conn.addr
            );
        }
        let hard_limit = conn.output.len() > hard;
        if hard_limit {
            log::warn!("{}: output buffer over its hard limit ({hard} bytes), disconnecting", conn.addr);
        }
        if p.close || hard_limit {
            self.close_later(id, hard_limit || p.attack);
        } else if conn.hung_up && !conn.blocked {
            self.close_later(id, false);
        }
        self.queue_flush(id);
        if self.node.has_kills() {
            self.close_killed();
        }
    }

    fn resume_connections(&mut self) {
        std::mem::swap(&mut self.resume, &mut self.resuming);
        let list = std::mem::take(&mut self.resuming);
        for &id in &list {
            let Some(conn) = self.conns.get_mut(id) else { continue };
            if let Role::Link { index, .. } = conn.role {
                // A link that stopped reading at its budget (no event to
                // tell whether a FIN waits: read to the end).
                self.read_link(id, index, false);
                continue;
            }
            if conn.closing || conn.paused || conn.blocked {
                continue;
            }
            if !conn.input.is_empty() {
                self.process(id);
            }
            if self.conns.get(id).is_some_and(|c| c.unread && !c.paused && !c.closing) {
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
        let now = Instant::now();
        self.node.before_sleep(now, &mut self.ready);
        let failed = matches!(self.ready.commit, Commit::Failed(_));
        self.settle_commit();
        if !self.waiting.is_empty() {
            self.settle_waits(failed, now);
        }
        self.unblock_clients();
        self.feed_monitors();
        if self.node.has_kills() {
            self.close_killed();
        }
        let max_clients = self.node.cfg().max_clients;
        if max_clients > self.fd_limit_for {
            // CONFIG SET maxclients raised it.
            // Raised as far as it goes; past that, accept fails with EMFILE
            // and the connection waits in the backlog (logged).
            let _ = os::raise_fd_limit(max_clients);
            self.fd_limit_for = max_clients;
        }
        self.drive_links(now);
        self.close_stalled_handshakes(now);
        self.flush_all();
        self.reap();
        self.wakeup = self.node.advance(now);
    }

    /// Releases the replies that waited for the log commit, or, if it
    /// failed, replaces them by an error and closes their connections (what
    /// followed them in a pipeline may have depended on them).
    fn settle_commit(&mut self) {
        let commit = std::mem::take(&mut self.ready.commit);
        let failed = match &commit {
            Commit::Nothing => return,
            Commit::Done => None,
            Commit::Failed(why) => Some(format!("log write failed ({why}); the write was not applied")),
        };
        // Every connection holding a reply has output, so it is on the list.
        for &id in &self.flush {
            let Some(conn) = self.conns.get_mut(id) else { continue };
            let Some((at, dialect)) = conn.held.take() else { continue };
            if let Some(msg) = &failed {
                conn.output.truncate_unwritten(at);
                dialect.error(&mut conn.output.data, msg);
                conn.closing = true;
                self.closing.push(id);
            }
        }
    }

    /// Leader mode: releases the replies whose majority is there; replaces
    /// by an error the ones that can no longer get it (leadership lost,
    /// `--request-timeout-ms`: outcome unknown) or whose writes the failed
    /// log commit rolled back (not applied), and closes those connections
    /// (what followed in a pipeline may have depended on them).
    fn settle_waits(&mut self, commit_failed: bool, now: Instant) {
        let iteration = self.node.iteration();
        let mut list = std::mem::take(&mut self.waiting);
        list.retain(|&id| {
            let Some(conn) = self.conns.get_mut(id) else { return false };
            let mut released = false;
            let keep = loop {
                let Some(w) = conn.waits.front() else { break false };
                if commit_failed && w.iteration == iteration {
                    conn.output.truncate_unwritten(w.at);
                    w.dialect.error(&mut conn.output.data, "log write failed; the write was not applied");
                } else {
                    match self.node.settle_wait(w, now) {
                        Settled::Ready => {
                            conn.waits.pop_front();
                            released = true;
                            continue;
                        }
                        Settled::Waiting => break true,
                        Settled::Unknown => {
                            conn.output.truncate_unwritten(w.at);
                            outcome_unknown(&mut conn.output.data, w.dialect);
                        }
                    }
                }
                conn.waits.clear();
                conn.closing = true;
                self.closing.push(id);
                released = true;
                break false;
            };
            if released && !conn.on_flush_list && conn.has_output() {
                conn.on_flush_list = true;
                self.flush.push(id);
            }
            keep
        });
        self.waiting = list;
    }

    fn flush_all(&mut self) {
        let soft = self.node.cfg().output_soft_limit;
        let mut list = std::mem::take(&mut self.flush);
        for &id in &list {
            let Some(conn) = self.conns.get_mut(id) else { continue };
            conn.on_flush_list = false;
            let link = match conn.role {
                Role::Link { index, .. } if self.links[index] == Some(id) => Some(index),
                _ => None,
            };
            match conn.flush() {
                Ok(n) => self.node.count_output(n, matches!(conn.role, Role::Link { .. })),
                Err(e) => {
                    log::debug!("{}: write failed: {e}", conn.addr);
                    match link {
                        Some(li) => self.drop_link(li, id, Some(&e.to_string())),
                        None => self.close_later(id, true),
                    }
                    continue;
                }
            }
            if let Some(li) = link {
                self.node.link_queued(li, conn.output.len());
            }
            if conn.closing && !conn.has_output() {
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
            let Some(conn) = self.conns.get(id) else { continue };
            if !conn.closing {
                continue;
            }
            if conn.has_output() {
                // Still writing a last reply (QUIT, an error): a WRITABLE
                // event will flush it and put it back on the list.
                continue;
            }
            let mut conn = self.conns.remove(id);
            conn.close();
            let _ = self.poll.registry().deregister(conn.stream.tcp_mut());
            match conn.role {
                Role::Client(session) => self.node.client_closed(&session),
                Role::Link { index, .. } if self.links[index] == Some(id) => {
                    self.links[index] = None;
                    self.node.link_failed(index, Instant::now(), "closed");
                }
                Role::Link { .. } => {}
            }
        }
        list.clear();
        if self.closing.is_empty() {
            self.closing = list;
        }
    }

    fn shutdown(&mut self) -> Result<(), String> {
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        if let Some((mut l, _)) = self.tls_listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        // Replies already computed go out if the sockets take them now.
        for (_, conn) in self.conns.iter_mut() {
            let _ = conn.flush();
            conn.close();
        }
        self.node.shutdown()
    }
}
