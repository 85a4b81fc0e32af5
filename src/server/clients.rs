//! The reactor's side of the node's client registry: accepting and
//! registering clients, closing the ones the node kills, answering blocked
//! clients, and delivering MONITOR lines (see [`crate::node::clients`]).

use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::time::Instant;

use mio::{Interest, Token};

use super::conn::{Conn, Role, Stream};
use super::{Server, TLS_LISTENER};
use crate::node::security;

impl Server {
    /// Accepts what waits on the listener of `token`: the port's (TLS under
    /// `--tls-only`), or `--tls-port`'s.
    pub(super) fn accept(&mut self, token: Token) {
        let tls = token == TLS_LISTENER || self.node.cfg().tls.only;
        loop {
            let listener = match token {
                TLS_LISTENER => self.tls_listener.as_ref().map(|(l, _)| l),
                _ => self.listener.as_ref(),
            };
            let Some(listener) = listener else { return };
            match listener.accept() {
                Ok((mut stream, addr)) => {
                    if !self.node.admit_client(addr) {
                        let _ = stream.write(b"-ERR max number of clients reached\r\n");
                        continue;
                    }
                    let cfg = self.node.cfg();
                    if security::protected_refusal(
                        cfg.protected_mode,
                        cfg.requirepass.is_some(),
                        self.local_addr.ip(),
                        addr.ip(),
                    ) {
                        log::warn!("{addr}: refused by protected mode (no password, listening beyond loopback)");
                        let _ = stream.write(security::PROTECTED_MESSAGE);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let entry = self.conns.vacant_entry();
                    let token = Token(entry.key());
                    if let Err(e) =
                        self.poll.registry().register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                    {
                        log::warn!("cannot register {addr}: {e}");
                        continue;
                    }
                    // Bound to one address, every connection arrives there;
                    // bound to all, ask which.
                    let laddr = if self.local_addr.ip().is_unspecified() {
                        stream.local_addr().unwrap_or(self.local_addr)
                    } else {
                        self.local_addr
                    };
                    let fd = stream.as_raw_fd();
                    let stream = match &mut self.tls {
                        Some(t) if tls => match t.accept(stream, token.0, Instant::now()) {
                            Ok(s) => s,
                            Err(e) => {
                                log::warn!("cannot start TLS with {addr}: {e}");
                                continue;
                            }
                        },
                        _ => Stream::Plain(stream),
                    };
                    let session = self.node.client_connected(token.0, addr, laddr, fd);
                    entry.insert(Conn::new(stream, addr, Role::Client(session)));
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

    /// Closes the connections the node says to (CLIENT KILL), at once, so
    /// that none of them runs another command.
    pub(super) fn close_killed(&mut self) {
        for k in self.node.take_kills() {
            let Some(conn) = self.conns.get(k.target.conn) else { continue };
            if matches!(&conn.role, Role::Client(s) if s.id == k.target.id) {
                self.close_later(k.target.conn, !k.flush);
            }
        }
    }

    /// Appends the answers of the blocked clients the node has them for,
    /// and puts those clients back to work on their input.
    pub(super) fn unblock_clients(&mut self) {
        let list = std::mem::take(&mut self.ready.unblocked);
        for t in &list {
            let Some(conn) = self.conns.get_mut(t.conn) else { continue };
            let Conn { role: Role::Client(session), output, closing, .. } = conn else { continue };
            if session.id != t.id || *closing {
                continue; // a failed log commit is closing it: no answer after the error
            }
            self.node.finish_blocked(session, &mut output.data);
            conn.blocked = false;
            if conn.hung_up && conn.input.is_empty() {
                conn.closing = true;
                self.closing.push(t.conn);
            } else if !conn.input.is_empty() || conn.unread {
                self.resume.push(t.conn);
            }
            self.queue_flush(t.conn);
        }
        self.ready.unblocked = list;
    }

    /// Appends the iteration's MONITOR lines to every monitor's output; one
    /// that is over the output hard limit (it does not read) is
    /// disconnected.
    pub(super) fn feed_monitors(&mut self) {
        let Server { node, conns, flush, closing, .. } = self;
        let (feed, monitors) = node.monitor_feed();
        if feed.is_empty() {
            return;
        }
        let hard = node.cfg().output_hard_limit;
        for t in monitors {
            let Some(conn) = conns.get_mut(t.conn) else { continue };
            if conn.closing || !matches!(&conn.role, Role::Client(s) if s.id == t.id) {
                continue;
            }
            conn.output.data.extend_from_slice(feed);
            if conn.output.len() > hard {
                log::warn!("{}: MONITOR output over the output hard limit, disconnecting", conn.addr);
                conn.discard_output();
                conn.closing = true;
                closing.push(t.conn);
            } else if !conn.on_flush_list {
                conn.on_flush_list = true;
                flush.push(t.conn);
            }
        }
        node.monitor_fed();
    }
}
