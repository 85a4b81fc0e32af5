//! One TCP connection's socket and buffers, client or peer link alike. The
//! socket is plain or TLS ([`Stream`]); the reactor does not tell them apart
//! but through [`Conn::fill`], [`Conn::flush`] and [`Conn::has_output`].
//!
//! Input is read into a buffer with a start offset: requests are consumed by
//! moving the offset, and the unconsumed tail is moved to the front once per
//! batch, not once per request. Output is appended by encoders and written
//! once per loop iteration; what the socket did not take stays for the next
//! WRITABLE event.
//!
//! mio's readiness is edge-triggered, so a socket must be drained before the
//! next event can come. Reads stop at `WouldBlock`, or earlier at a *short*
//! read (less than the room offered), which also means the socket is empty
//! (see [`InBuf::fill`] for why that is safe, and when it is not); writes
//! stop at `WouldBlock` or a short write (the socket buffer is full).

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::TcpStream;

use super::tls::TlsStream;
use crate::node::Session;
use crate::node::leader::Wait;
use crate::proto::Dialect;

/// Initial and minimum input buffer size. Grown by doubling when a read
/// fills it.
const INPUT_CHUNK: usize = 16 << 10;
/// A drained input buffer up to this size is kept for the next batch (a
/// pipelining client reuses it without allocating); a larger one, grown by
/// an unusually big request, is released.
const INPUT_KEEP: usize = 64 << 10;
/// Output buffers larger than this are released once written, so one big
/// reply does not pin memory for the connection's lifetime.
const OUTPUT_KEEP: usize = 1 << 20;

/// Input bytes with a consumed offset.
#[derive(Debug, Default)]
pub struct InBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl InBuf {
    /// The unconsumed bytes.
    pub fn pending(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }
    /// Marks `n` bytes as consumed.
    pub fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }
    /// Unconsumed byte count.
    pub fn len(&self) -> usize {
        self.end - self.start
    }
    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
    /// The buffer's size (for CLIENT LIST).
    pub fn capacity(&self) -> usize {
        self.data.len()
    }
    /// Releases the buffer of an idle connection.
    pub fn release_if_empty(&mut self) {
        if self.is_empty() && self.data.len() > INPUT_KEEP {
            self.data = Vec::new();
        }
    }

    /// Makes room at the end for at least one read, compacting first.
    fn make_room(&mut self) {
        if self.start > 0 && (self.end == self.data.len() || self.start >= self.data.len() / 2) {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.data.len() {
            let grown = (self.data.len() * 2).max(INPUT_CHUNK);
            self.data.resize(grown, 0);
        }
    }

    /// Reads from `r` until it would block, it reports end of stream, or
    /// `limit` pending bytes are buffered.
    ///
    /// With `trust_short_read`, a read that returns less than the room it
    /// was offered has drained the socket: it counts as `blocked` without
    /// the extra read that would only return `WouldBlock`. That is safe
    /// under edge-triggered epoll, which raises a new event for every later
    /// arrival of data (tokio clears readiness on a short read for the same
    /// reason), and it saves a third of the syscalls of a pipelined client.
    /// It is not safe when the event already reported the peer's FIN (data
    /// and FIN can arrive together and raise one event): then the caller
    /// passes `false` and the reads go on to the end of the stream. Nor is
    /// it safe for a TLS stream, whose reads may be served from rustls's
    /// buffer: [`Conn::fill`] knows which is which.
    pub fn fill(&mut self, r: &mut impl Read, limit: usize, trust_short_read: bool) -> io::Result<Fill> {
        let mut got = 0;
        loop {
            if self.len() >= limit {
                return Ok(Fill { got, eof: false, blocked: false });
            }
            self.make_room();
            let room = self.data.len() - self.end;
            match r.read(&mut self.data[self.end..]) {
                Ok(0) => return Ok(Fill { got, eof: true, blocked: false }),
                Ok(n) => {
                    self.end += n;
                    got += n;
                    if n < room && trust_short_read {
                        return Ok(Fill { got, eof: false, blocked: true });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(Fill { got, eof: false, blocked: true });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// What [`InBuf::fill`] saw.
#[derive(Debug, Clone, Copy)]
pub struct Fill {
    /// Bytes read.
    pub got: usize,
    /// The peer closed its side.
    pub eof: bool,
    /// The socket had nothing more (WouldBlock): no need to read again
    /// before the next readable event.
    pub blocked: bool,
}

/// Output bytes with a written offset.
#[derive(Debug, Default)]
pub struct OutBuf {
    /// Encoded replies; encoders append here.
    pub data: Vec<u8>,
    written: usize,
}

impl OutBuf {
    /// Bytes not yet written.
    pub fn len(&self) -> usize {
        self.data.len() - self.written
    }
    /// Whether everything was written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The buffer's size (for CLIENT LIST).
    pub fn capacity(&self) -> usize {
        self.data.capacity()
    }
    /// Bytes of `data` already written (the unwritten ones follow).
    pub fn written(&self) -> usize {
        self.written
    }
    /// Writes until done or the socket would block. Returns bytes written.
    pub fn flush(&mut self, w: &mut impl Write) -> io::Result<usize> {
        self.flush_to(w, usize::MAX)
    }

    /// As [`OutBuf::flush`], writing nothing past byte `limit` of `data`
    /// (replies from there on wait, see [`crate::node::leader`]).
    pub fn flush_to(&mut self, w: &mut impl Write, limit: usize) -> io::Result<usize> {
        let mut total = 0;
        let end = self.data.len().min(limit);
        while self.written < end {
            let want = end - self.written;
            match w.write(&self.data[self.written..end]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.written += n;
                    total += n;
                    if n < want {
                        // The socket buffer is full: a WRITABLE event comes
                        // when it has room; another write now would block.
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.written == self.data.len() {
            self.written = 0;
            self.data.clear();
            if self.data.capacity() > OUTPUT_KEEP {
                self.data = Vec::new();
            }
        }
        Ok(total)
    }
    /// Drops everything not yet written, and everything after byte `at` of
    /// the unwritten data that the caller wants to retract.
    pub fn truncate_unwritten(&mut self, at: usize) {
        self.data.truncate(at.max(self.written));
    }
}

/// A connection's socket: plain TCP, or a TLS session over it (boxed: a
/// rustls connection is large, and plain connections should not pay for it).
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream>),
}

impl Stream {
    /// The socket.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => t.tcp(),
        }
    }

    /// The socket, to (de)register it.
    pub fn tcp_mut(&mut self) -> &mut TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => t.tcp_mut(),
        }
    }

    /// The TLS session, if any.
    pub fn tls(&self) -> Option<&TlsStream> {
        match self {
            Stream::Plain(_) => None,
            Stream::Tls(t) => Some(t),
        }
    }

    /// Whether TLS bytes wait to be sent.
    fn wants_write(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(t) => t.wants_write(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(t) => t.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(_) => Ok(()),
            Stream::Tls(t) => t.flush(),
        }
    }
}

/// What a connection is.
#[derive(Debug)]
pub enum Role {
    /// A client, or a peer's inbound link (a client that said REPLHELLO).
    Client(Session),
    /// Our outbound link to peer `index` of the node's links.
    Link {
        /// The link's index.
        index: usize,
        /// The non-blocking connect has not completed yet.
        connecting: bool,
    },
}

/// A socket with its buffers and the bookkeeping the reactor needs.
#[derive(Debug)]
pub struct Conn {
    /// What the connection is.
    pub role: Role,
    /// The socket.
    pub stream: Stream,
    /// The other end.
    pub addr: SocketAddr,
    /// Unconsumed input.
    pub input: InBuf,
    /// Unwritten output.
    pub output: OutBuf,
    /// Close once the output is written (QUIT, protocol error, EOF).
    pub closing: bool,
    /// Input is not processed while the output is over its soft limit.
    pub paused: bool,
    /// Input is not processed while a command waits for its answer (WAIT,
    /// SAVE), until the node lists the connection in `Ready::unblocked`.
    /// It is still read (up to the request limit), so that a client that
    /// hangs up is noticed.
    pub blocked: bool,
    /// The last read stopped before `WouldBlock` (a limit or a pause), so
    /// bytes may wait in the socket with no readable event to come.
    pub unread: bool,
    /// Already on the list of connections to flush this iteration.
    pub on_flush_list: bool,
    /// The client hung up while blocked (`printf 'PUT k v\n' | nc`): it is
    /// closed once its blocked command is answered and the rest of its
    /// input processed, not before.
    pub hung_up: bool,
    /// Output offset of the first reply that waits for the log commit, and
    /// its dialect: replies from there on are retracted if the commit fails,
    /// and replaced by an error in that dialect.
    pub held: Option<(usize, Dialect)>,
    /// Leader mode: replies waiting for the leader's majority, in output
    /// order; nothing from the first one's offset on is written.
    pub waits: std::collections::VecDeque<Wait>,
}

impl Conn {
    /// Wraps an accepted or connecting socket.
    pub fn new(stream: Stream, addr: SocketAddr, role: Role) -> Conn {
        Conn {
            role,
            stream,
            addr,
            input: InBuf::default(),
            output: OutBuf::default(),
            closing: false,
            paused: false,
            blocked: false,
            unread: false,
            on_flush_list: false,
            hung_up: false,
            held: None,
            waits: std::collections::VecDeque::new(),
        }
    }

    /// Reads into the input: [`InBuf::fill`], trusting a short read (if
    /// `trust_short_read`) on a plain socket; a TLS stream makes that check
    /// itself, on its socket reads ([`TlsStream::begin_fill`]).
    pub fn fill(&mut self, limit: usize, trust_short_read: bool) -> io::Result<Fill> {
        let plain = match &mut self.stream {
            Stream::Plain(_) => true,
            Stream::Tls(t) => {
                t.begin_fill(trust_short_read);
                false
            }
        };
        self.input.fill(&mut self.stream, limit, trust_short_read && plain)
    }

    /// Writes the output, then whatever TLS bytes are still pending (a
    /// handshake flight, say, with no reply behind it).
    pub fn flush(&mut self) -> io::Result<usize> {
        let limit = self.waits.front().map_or(usize::MAX, |w| w.at);
        let n = self.output.flush_to(&mut self.stream, limit)?;
        if let Stream::Tls(t) = &mut self.stream {
            t.send_pending()?;
        }
        Ok(n)
    }

    /// Whether anything waits to be written: replies, or TLS bytes.
    pub fn has_output(&self) -> bool {
        !self.output.is_empty() || self.stream.wants_write()
    }

    /// The connection will close without writing what it holds.
    pub fn discard_output(&mut self) {
        self.output.truncate_unwritten(0);
        if let Stream::Tls(t) = &mut self.stream {
            t.abandon();
        }
    }

    /// Just before the socket closes: a TLS session sends close_notify
    /// (one try).
    pub fn close(&mut self) {
        if let Stream::Tls(t) = &mut self.stream {
            t.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out its bytes in fixed-size pieces, then blocks.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn fill_consume_compact_keeps_bytes_in_order() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut buf = InBuf::default();
        let mut seen = Vec::new();
        let mut r = Trickle(&data, 777);
        // Each fill stops at a short read, as at a drained socket; the next
        // "event" reads on. Consume a little at a time to force compaction.
        for _ in 0..10_000 {
            buf.fill(&mut r, 5000, true).unwrap();
            let take = buf.len().min(1234);
            seen.extend_from_slice(&buf.pending()[..take]);
            buf.consume(take);
            if r.0.is_empty() && buf.is_empty() {
                break;
            }
        }
        assert!(seen == data, "bytes lost or reordered ({} of {})", seen.len(), data.len());
    }

    #[test]
    fn a_short_read_counts_as_drained() {
        let data = vec![1u8; 100];
        let mut buf = InBuf::default();
        let f = buf.fill(&mut Trickle(&data, 100), 1 << 20, true).unwrap();
        assert!(f.blocked && f.got == 100 && !f.eof);
        // Told not to trust it (the FIN may be waiting), it reads on.
        let mut buf = InBuf::default();
        let mut r = Trickle(&data, 30);
        let f = buf.fill(&mut r, 1 << 20, false).unwrap();
        assert!(f.blocked && f.got == 100);
    }

    #[test]
    fn fill_stops_at_limit() {
        // Full reads (the reader always fills what it is offered) go on
        // until the limit.
        let data = vec![7u8; 100_000];
        let mut buf = InBuf::default();
        let f = buf.fill(&mut Trickle(&data, usize::MAX), 30_000, true).unwrap();
        assert!(!f.blocked && buf.len() >= 30_000 && buf.len() < 70_000, "{f:?} {}", buf.len());
    }

    #[test]
    fn partial_writes_resume() {
        struct Slow(Vec<u8>, usize);
        impl Write for Slow {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                if self.1 == 0 {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                self.1 -= 1;
                let n = b.len().min(3);
                self.0.extend_from_slice(&b[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut out = OutBuf::default();
        out.data.extend_from_slice(b"hello world");
        // A short write means the socket is full: flush stops there and
        // resumes at the next writable event.
        let mut w = Slow(vec![], 2);
        assert_eq!(out.flush(&mut w).unwrap(), 3);
        assert_eq!(out.len(), 8);
        w.1 = 10;
        for _ in 0..10 {
            out.flush(&mut w).unwrap();
        }
        assert!(out.is_empty());
        assert_eq!(w.0, b"hello world");
    }
}
