//! TLS with rustls: the configurations built from the PEM files named by
//! the options, [`TlsStream`], a TLS session over a non-blocking socket
//! with the `Read`/`Write` behaviour the reactor relies on, and the
//! reactor's TLS-only steps (the `--tls-port` listener, closing stalled
//! handshakes).
//!
//! rustls does no I/O of its own: `read_tls` takes socket bytes,
//! `process_new_packets` decrypts them (and queues handshake messages or
//! alerts to send), `reader` hands out plaintext; `writer` takes plaintext
//! and `write_tls` sends the records. So the reactor keeps its one thread
//! and its edge-triggered readiness, with two cares that a plain socket does
//! not need (see [`TlsStream`]): plaintext may wait inside rustls after the
//! socket is drained, and TLS bytes may wait to be sent with no reply
//! pending (a handshake flight, a session ticket, an alert).
//!
//! A handshake never blocks the loop: its messages go through the same
//! reads and flushes as requests and replies. One that does not finish in
//! `--tls-handshake-timeout-ms` is closed by the reactor (a client that
//! connects and sends nothing would otherwise hold a slot for ever).

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, Connection, RootCertStore, ServerConfig, ServerConnection};
use slab::Slab;

use super::Server;
use super::conn::{Conn, Role, Stream};
use crate::config::{ClientAuth, TlsConfig};

/// The TLS configurations in force, built once at start.
pub struct Tls {
    /// For connections accepted on a TLS listener; `None` if none listens.
    pub server: Option<Arc<ServerConfig>>,
    /// For outbound peer links under `--tls-replication yes`.
    pub client: Option<Arc<ClientConfig>>,
    /// `--tls-handshake-timeout-ms`.
    pub handshake_timeout: Duration,
    /// Handshakes under way: (deadline, slab key), in deadline order (one
    /// timeout for all, so the order they started in). An entry outlives
    /// its handshake until its deadline, and its key may be reused by then:
    /// [`Tls::pop_overdue`] asks the connection there, not the entry.
    handshakes: VecDeque<(Instant, usize)>,
}

impl Tls {
    /// Reads the certificate, key and CA files and builds the
    /// configurations the options ask for; `None` if TLS is off. Errors
    /// name the file and what is wrong with it, or the peer (`peers`, as
    /// named on the command line) whose name cannot be checked against a
    /// certificate.
    pub fn load(cfg: &TlsConfig, peers: &[String]) -> Result<Option<Tls>, String> {
        if !cfg.serves() && !cfg.replication {
            return Ok(None);
        }
        if cfg.replication {
            for p in peers {
                peer_server_name(p)?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (cert_file, key_file) = match (&cfg.cert_file, &cfg.key_file) {
            (Some(c), Some(k)) => (c, k),
            _ => return Err("TLS needs --tls-cert-file and --tls-key-file".into()),
        };
        let certs = read_certs(cert_file)?;
        let key = PrivateKeyDer::from_pem_file(key_file)
            .map_err(|e| format!("--tls-key-file {}: {}", key_file.display(), pem_error(&e)))?;
        let roots = match &cfg.ca_cert_file {
            Some(f) => Some(read_roots(f)?),
            None => None,
        };
        let server = if cfg.serves() {
            let builder = ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS: {e}"))?;
            let builder = match (cfg.auth_clients, &roots) {
                (ClientAuth::No, _) | (_, None) => builder.with_no_client_auth(),
                (auth, Some(roots)) => {
                    let mut v = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
                    if auth == ClientAuth::Optional {
                        v = v.allow_unauthenticated();
                    }
                    builder.with_client_cert_verifier(v.build().map_err(|e| format!("--tls-ca-cert-file: {e}"))?)
                }
            };
            let config = builder
                .with_single_cert(certs.clone(), key.clone_key())
                .map_err(|e| format!("--tls-cert-file/--tls-key-file: {e}"))?;
            Some(Arc::new(config))
        } else {
            None
        };
        let client = match (cfg.replication, roots) {
            (true, Some(roots)) => {
                // The node's own certificate doubles as its client
                // certificate, so that peers verify each other.
                let config = ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| format!("TLS: {e}"))?
                    .with_root_certificates(roots)
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| format!("--tls-cert-file/--tls-key-file: {e}"))?;
                Some(Arc::new(config))
            }
            (true, None) => return Err("--tls-replication needs --tls-ca-cert-file".into()),
            (false, _) => None,
        };
        Ok(Some(Tls { server, client, handshake_timeout: cfg.handshake_timeout, handshakes: VecDeque::new() }))
    }

    /// Wraps a socket accepted on a TLS listener, which will be connection
    /// `id`, and starts its handshake clock.
    pub fn accept(&mut self, sock: TcpStream, id: usize, now: Instant) -> Result<Stream, String> {
        let config = self.server.clone().ok_or("no TLS listener")?;
        let deadline = now + self.handshake_timeout;
        let t = TlsStream::accept(sock, config, deadline).map_err(|e| e.to_string())?;
        self.handshakes.push_back((deadline, id));
        Ok(Stream::Tls(Box::new(t)))
    }

    /// Turns link connection `id`, just connected to the peer named `peer`
    /// (`host:port`), into a TLS client if `--tls-replication` is on; a
    /// plain stream is returned as it is.
    pub fn connect(&mut self, stream: Stream, peer: &str, id: usize, now: Instant) -> Result<Stream, String> {
        let Some(config) = self.client.clone() else { return Ok(stream) };
        match stream {
            Stream::Plain(sock) => {
                let deadline = now + self.handshake_timeout;
                let t =
                    TlsStream::connect(sock, config, peer_server_name(peer)?, deadline).map_err(|e| e.to_string())?;
                self.handshakes.push_back((deadline, id));
                Ok(Stream::Tls(Box::new(t)))
            }
            tls => Ok(tls),
        }
    }

    /// When the reactor must wake up to close a stalled handshake.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.handshakes.front().map(|&(at, _)| at)
    }

    /// The next connection whose handshake is overdue at `now`, if any
    /// (entries whose handshake finished, or whose slot now holds another
    /// connection, are dropped on the way).
    pub fn pop_overdue(&mut self, now: Instant, conns: &Slab<Conn>) -> Option<usize> {
        while let Some(&(at, id)) = self.handshakes.front() {
            if at > now {
                return None;
            }
            self.handshakes.pop_front();
            let overdue = conns.get(id).and_then(|c| c.stream.tls()).is_some_and(|t| t.handshake_overdue(now));
            if overdue {
                return Some(id);
            }
        }
        None
    }
}

/// The certificates of a PEM file, in order; at least one.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let what = |e: &dyn fmt::Display| format!("--tls-cert-file {}: {e}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| what(&pem_error(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| what(&pem_error(&e)))?;
    if certs.is_empty() {
        return Err(what(&"no CERTIFICATE block in it"));
    }
    Ok(certs)
}

/// The trust anchors of a PEM file of CA certificates.
fn read_roots(path: &Path) -> Result<Arc<RootCertStore>, String> {
    let what = |e: &dyn fmt::Display| format!("--tls-ca-cert-file {}: {e}", path.display());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| what(&pem_error(&e)))? {
        let cert = cert.map_err(|e| what(&pem_error(&e)))?;
        roots.add(cert).map_err(|e| what(&e))?;
    }
    if roots.is_empty() {
        return Err(what(&"no CERTIFICATE block in it"));
    }
    Ok(Arc::new(roots))
}

/// A PEM error in words (its `Display` says "no items found" for a file
/// without the block wanted; say what that means here).
fn pem_error(e: &rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM block of the expected kind in it".into(),
        e => e.to_string(),
    }
}

/// The host part of a peer named `host:port` (or `[v6]:port`), as the
/// name its certificate must carry: a DNS name, or an IP address (an IP
/// SAN).
pub fn peer_server_name(peer: &str) -> Result<ServerName<'static>, String> {
    let host = peer.rsplit_once(':').map_or(peer, |(h, _)| h);
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    ServerName::try_from(host.to_string()).map_err(|e| format!("peer '{peer}': {e} for TLS"))
}

/// A TLS session over a non-blocking socket.
///
/// `read` returns plaintext, reading and decrypting socket bytes only when
/// rustls holds none; it returns `WouldBlock` only once the socket is
/// drained *and* no plaintext is left, so a reader that goes on to
/// `WouldBlock` drains it. A short `read` says nothing about the socket
/// (it may have been served from rustls's buffer): the caller must not
/// take it as drained (see [`super::conn::InBuf::fill`]). The stream makes
/// that check itself, one level down, where it is sound: a short *socket*
/// read means the socket is drained, so once rustls holds no plaintext
/// either, `read` says `WouldBlock` without the read that would only say
/// so too, if [`TlsStream::begin_fill`] allowed it (same reasoning and
/// same exception, the peer's FIN, as for a plain socket; it saves a third
/// of the syscalls of a pipelining client).
///
/// `write` encrypts and sends at once; it takes less than it was offered
/// only when the socket would block (or, before the handshake is done,
/// when rustls's buffer for early plaintext is full: the handshake's own
/// progress then brings the connection back to flushing). TLS bytes can be
/// waiting with no plaintext to write ([`TlsStream::wants_write`]): the
/// reactor keeps flushing while they are ([`TlsStream::send_pending`]).
pub struct TlsStream {
    sock: TcpStream,
    tls: Connection,
    /// When the handshake must be done by.
    deadline: Instant,
    /// The connection is being closed without its output: pending TLS
    /// bytes no longer hold it open.
    abandoned: bool,
    /// This fill may take a short socket read as drained.
    trust_short_read: bool,
    /// The socket was drained by a short read during this fill.
    drained: bool,
}

impl TlsStream {
    /// The server side of a connection accepted on a TLS listener.
    pub fn accept(sock: TcpStream, config: Arc<ServerConfig>, deadline: Instant) -> Result<TlsStream, rustls::Error> {
        let tls = ServerConnection::new(config)?.into();
        Ok(TlsStream { sock, tls, deadline, abandoned: false, trust_short_read: false, drained: false })
    }

    /// The client side, to a peer named `name`; the ClientHello is queued.
    pub fn connect(
        sock: TcpStream,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        deadline: Instant,
    ) -> Result<TlsStream, rustls::Error> {
        let tls = ClientConnection::new(config, name)?.into();
        Ok(TlsStream { sock, tls, deadline, abandoned: false, trust_short_read: false, drained: false })
    }

    /// The socket.
    pub fn tcp(&self) -> &TcpStream {
        &self.sock
    }

    /// The socket, to (de)register it.
    pub fn tcp_mut(&mut self) -> &mut TcpStream {
        &mut self.sock
    }

    /// Whether TLS bytes wait to be sent (and should hold the connection
    /// open until they are).
    pub fn wants_write(&self) -> bool {
        !self.abandoned && self.tls.wants_write()
    }

    /// Whether the handshake is still under way past its deadline.
    pub fn handshake_overdue(&self, now: Instant) -> bool {
        self.tls.is_handshaking() && self.deadline <= now
    }

    /// Starts a series of reads to `WouldBlock` (one readiness event's):
    /// whether a short socket read may count as drained (see the type's
    /// docs).
    pub fn begin_fill(&mut self, trust_short_read: bool) {
        self.trust_short_read = trust_short_read;
        self.drained = false;
    }

    /// The connection closes without its pending output.
    pub fn abandon(&mut self) {
        self.abandoned = true;
    }

    /// Sends what rustls holds until the socket would block. `Ok(true)`:
    /// all of it went.
    pub fn send_pending(&mut self) -> io::Result<bool> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Queues close_notify and tries once to send it with whatever else is
    /// pending (an alert after a failed handshake, say); the socket closes
    /// next whatever happens.
    pub fn close(&mut self) {
        self.tls.send_close_notify();
        let _ = self.send_pending();
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.tls.reader().read(buf) {
                Ok(n) => return Ok(n), // 0: close_notify received
                // The peer closed the socket without close_notify: most
                // clients do, and a request cut short is dropped anyway.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && self.drained => {
                    // Said once: the next read (the next event's) reads the socket.
                    self.drained = false;
                    return Err(e);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            // No plaintext left: read and decrypt more. At the socket's
            // end (Ok(0)) the reader says, at the next turn, whether the
            // close was clean.
            let mut sock = Noting { sock: &mut self.sock, short: false };
            match self.tls.read_tls(&mut sock) {
                Ok(_) => self.drained = self.trust_short_read && sock.short,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if let Err(e) = self.tls.process_new_packets() {
                // rustls has queued an alert; `close` tries to send it.
                return Err(io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {e}")));
            }
        }
    }
}

/// A socket read that notes whether it was short: less than was offered.
struct Noting<'a> {
    sock: &'a mut TcpStream,
    short: bool,
}

impl Read for Noting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.sock.read(buf)?;
        self.short = n < buf.len();
        Ok(n)
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut taken = 0;
        // Older records first, then more plaintext while the socket takes
        // it all: stopping at a short take that was not the socket's doing
        // would leave the caller waiting for a WRITABLE event that never
        // comes.
        while self.send_pending()? && taken < buf.len() {
            let n = self.tls.writer().write(&buf[taken..])?;
            if n == 0 {
                break; // early plaintext buffer full: the handshake goes first
            }
            taken += n;
        }
        if taken == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_pending().map(|_| ())
    }
}

impl fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsStream")
            .field("sock", &self.sock)
            .field("handshaking", &self.tls.is_handshaking())
            .field("wants_write", &self.tls.wants_write())
            .finish()
    }
}

// ---------------------------------------------------------------- the reactor's side

/// Binds the `--tls-port` listener, if there is one.
pub(super) fn bind_listener(at: Option<SocketAddr>) -> Result<Option<(TcpListener, SocketAddr)>, String> {
    let Some(at) = at else { return Ok(None) };
    let l = TcpListener::bind(at).map_err(|e| format!("cannot listen on {at} (--tls-port): {e}"))?;
    let addr = l.local_addr().map_err(|e| format!("cannot read the TLS listening address: {e}"))?;
    Ok(Some((l, addr)))
}

impl Server {
    /// The address of the `--tls-port` listener.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_listener.as_ref().map(|(_, a)| *a)
    }

    /// Closes the connections whose TLS handshake is overdue (a client
    /// that connected and stalled; a peer that does not answer).
    pub(super) fn close_stalled_handshakes(&mut self, now: Instant) {
        while let Some(id) = self.tls.as_mut().and_then(|t| t.pop_overdue(now, &self.conns)) {
            let Some(conn) = self.conns.get(id) else { continue };
            log::debug!("{}: TLS handshake not done in time, closing", conn.addr);
            match conn.role {
                Role::Link { index, .. } if self.links[index] == Some(id) => {
                    self.drop_link(index, id, Some("TLS handshake timed out"))
                }
                _ => self.close_later(id, true),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::conn::InBuf;

    #[test]
    fn peer_names_become_server_names() {
        let ip = |s: &str| matches!(peer_server_name(s), Ok(ServerName::IpAddress(_)));
        let dns = |s: &str| matches!(peer_server_name(s), Ok(ServerName::DnsName(_)));
        assert!(ip("127.0.0.1:6380"));
        assert!(ip("[::1]:6380"));
        assert!(dns("node-a.example:6380"));
        assert!(dns("localhost:1"));
        assert!(peer_server_name("bad_name!:1").unwrap_err().contains("bad_name!:1"));
    }

    /// A server and a client TlsStream over a loopback socket pair, the
    /// client trusting the server's self-signed certificate.
    fn pair() -> (TlsStream, TlsStream) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap().self_signed(&key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let der = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], der)
            .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        for sock in [&c, &s] {
            sock.set_nonblocking(true).unwrap();
        }
        let far = Instant::now() + Duration::from_secs(3600);
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let s = TlsStream::accept(TcpStream::from_std(s), Arc::new(server), far).unwrap();
        let c = TlsStream::connect(TcpStream::from_std(c), Arc::new(client), name, far).unwrap();
        (s, c)
    }

    /// Reads `s` to WouldBlock, as the reactor does for a TLS stream.
    fn drain(s: &mut TlsStream, into: &mut InBuf) -> usize {
        into.fill(s, usize::MAX, false).unwrap().got
    }

    #[test]
    fn writes_take_less_only_when_the_socket_is_full_and_reads_drain_rustls() {
        let (mut s, mut c) = pair();
        let (mut sin, mut cin) = (InBuf::default(), InBuf::default());
        let end = Instant::now() + Duration::from_secs(20);
        while s.tls.is_handshaking() || c.tls.is_handshaking() {
            assert!(Instant::now() < end, "handshake did not finish");
            c.send_pending().unwrap();
            drain(&mut s, &mut sin);
            s.send_pending().unwrap();
            drain(&mut c, &mut cin);
        }
        // 8 MiB, more than the socket buffers and rustls's limit hold,
        // while the server reads only when the client is stuck.
        let data: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
        let mut sent = 0;
        let mut got = Vec::new();
        while got.len() < data.len() {
            assert!(Instant::now() < end, "stalled at {} of {} bytes", got.len(), data.len());
            if sent < data.len() {
                match c.write(&data[sent..]) {
                    Ok(n) => {
                        sent += n;
                        if sent < data.len() {
                            // A short take: the socket must be full, or no
                            // WRITABLE event would come to resume.
                            assert!(!c.send_pending().unwrap(), "short take with room in the socket");
                        }
                    }
                    Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
                }
            } else {
                c.send_pending().unwrap();
            }
            // Short socket reads trusted at every other turn.
            s.begin_fill(got.len() % 2 == 0);
            drain(&mut s, &mut sin);
            // Drained means drained: no plaintext is left inside rustls.
            let mut probe = [0u8; 1];
            assert_eq!(s.tls.reader().read(&mut probe).unwrap_err().kind(), io::ErrorKind::WouldBlock);
            got.extend_from_slice(sin.pending());
            sin.consume(sin.len());
            s.send_pending().unwrap(); // session tickets
        }
        assert!(got == data, "bytes lost or reordered");
        // close_notify reads as the end of the stream.
        c.close();
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            match sin.fill(&mut s, usize::MAX, false) {
                Ok(f) if f.eof => break,
                Ok(_) => assert!(Instant::now() < end, "no end of stream"),
                Err(e) => panic!("{e}"),
            }
        }
    }
}
