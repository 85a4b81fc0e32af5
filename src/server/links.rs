//! The reactor's side of the peer links: opening their connections as
//! the node asks, feeding them, and reading their replies (see
//! [`crate::repl`] for what the links are).

use std::io;
use std::time::Instant;

use mio::event::Event;
use mio::net::TcpStream;
use mio::{Interest, Token};

use super::conn::{Conn, Role, Stream};
use super::{READ_BUDGET, Server};
use crate::repl::Fed;

impl Server {
    /// Opens peer connections as the node asked, and feeds every link's
    /// connection (or drops it, as the node says).
    pub(super) fn drive_links(&mut self, now: Instant) {
        let connect = std::mem::take(&mut self.ready.connect);
        for &li in &connect {
            self.connect_link(li, now);
        }
        self.ready.connect = connect;
        for li in 0..self.links.len() {
            let Some(id) = self.links[li] else { continue };
            let Some(conn) = self.conns.get_mut(id) else { continue };
            let written = conn.output.written();
            match self.node.feed_link(li, &mut conn.output.data, written, now) {
                Fed::Keep => self.queue_flush(id),
                Fed::Drop => {
                    self.links[li] = None;
                    self.close_later(id, true);
                }
            }
        }
    }

    /// Starts a non-blocking connect for link `li`.
    fn connect_link(&mut self, li: usize, now: Instant) {
        let addr = self.node.repl().links[li].addr;
        match TcpStream::connect(addr) {
            Ok(mut stream) => {
                let entry = self.conns.vacant_entry();
                let id = entry.key();
                if let Err(e) =
                    self.poll.registry().register(&mut stream, Token(id), Interest::READABLE | Interest::WRITABLE)
                {
                    self.node.link_failed(li, now, &e.to_string());
                    return;
                }
                // Under --tls-replication the ClientHello waits in rustls
                // until the connect completes and the link is flushed.
                let stream = match &mut self.tls {
                    Some(tls) => match tls.connect(Stream::Plain(stream), &self.node.repl().links[li].name, id, now) {
                        Ok(s) => s,
                        Err(e) => return self.node.link_failed(li, now, &e),
                    },
                    None => Stream::Plain(stream),
                };
                entry.insert(Conn::new(stream, addr, Role::Link { index: li, connecting: true }));
                self.links[li] = Some(id);
            }
            Err(e) => self.node.link_failed(li, now, &e.to_string()),
        }
    }

    /// Link `li`'s connection `id` is given up: the node is told why
    /// (unless `why` is `None`: it knows already), and the socket closes
    /// without writing what it holds.
    pub(super) fn drop_link(&mut self, li: usize, id: usize, why: Option<&str>) {
        if let Some(why) = why {
            self.node.link_failed(li, Instant::now(), why);
        }
        self.links[li] = None;
        self.close_later(id, true);
    }

    pub(super) fn link_event(&mut self, id: usize, li: usize, ev: &Event) {
        if self.links[li] != Some(id) {
            return; // an event for a link socket already given up
        }
        let Some(conn) = self.conns.get_mut(id) else { return };
        if let Role::Link { connecting: true, .. } = conn.role {
            if !(ev.is_writable() || ev.is_error() || ev.is_read_closed() || ev.is_write_closed()) {
                return;
            }
            let failure = match conn.stream.tcp().take_error() {
                Ok(Some(e)) | Err(e) => Some(e.to_string()),
                Ok(None) => match conn.stream.tcp().peer_addr() {
                    Ok(_) => None,
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => return, // not yet: spurious
                    Err(e) => Some(e.to_string()),
                },
            };
            if let Some(why) = failure {
                self.drop_link(li, id, Some(&why));
                return;
            }
            let _ = conn.stream.tcp().set_nodelay(true);
            conn.role = Role::Link { index: li, connecting: false };
            self.node.link_connected(li, &mut conn.output.data);
        }
        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
            self.read_link(id, li, !(ev.is_read_closed() || ev.is_error()));
        } else {
            self.queue_flush(id);
        }
    }

    /// Reads a link's replies until its socket is drained or the read budget
    /// is spent (then it is put on the resume list: under edge-triggered
    /// readiness no event would come for bytes already waiting), and hands
    /// them to the node. `trust_short_read`: see [`conn::InBuf::fill`].
    pub(super) fn read_link(&mut self, id: usize, li: usize, trust_short_read: bool) {
        if self.links[li] != Some(id) {
            return;
        }
        let Some(conn) = self.conns.get_mut(id) else { return };
        if conn.closing {
            return;
        }
        let f = match conn.fill(READ_BUDGET, trust_short_read) {
            Ok(f) => f,
            Err(e) => return self.drop_link(li, id, Some(&e.to_string())),
        };
        self.node.count_input(f.got, true);
        match self.node.link_input(li, conn.input.pending(), &mut conn.output.data, Instant::now()) {
            Ok(used) => conn.input.consume(used),
            Err(_) => return self.drop_link(li, id, None),
        }
        if f.eof {
            return self.drop_link(li, id, Some("closed by the peer"));
        }
        if !f.blocked {
            // Budget reached: come back without waiting for an event.
            self.resume.push(id);
        }
        self.queue_flush(id);
    }
}
