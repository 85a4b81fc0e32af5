//! The test-controlled network between nodes: one TCP proxy per ordered
//! pair of nodes. Node `i` names `link(i, j).port` as its peer `j`; the
//! proxy accepts there and forwards to `j`'s real port (which it is told
//! again whenever `j` restarts). Each link has a fault per direction:
//! `Forward` is what the dialling node `i` sends (its writes to `j`),
//! `Back` what comes back (`j`'s acknowledgements).
//!
//! - `Pass`: bytes go through.
//! - `Delay(d)`: each chunk read is held `d` before it is written on.
//! - `Blackhole`: nothing is read in that direction (so nothing is lost:
//!   it waits in the socket buffers, as behind a dead route, until the
//!   fault heals); a new connection is accepted and connected, and stalls.
//! - `Cut`: connections are closed, and new ones closed as soon as they are
//!   accepted. A TCP stream cannot lose bytes one way and stay a stream, so
//!   a cut closes both ways; a one-way partition is a one-way blackhole.
//!
//! `reset` closes the connections open now (a connection reset; the next
//! one passes). Each connection has two pump threads, one per direction;
//! they poll the fault every few milliseconds.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A direction of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// From the node that dials to the node it dials.
    Forward,
    /// The replies.
    Back,
}

/// What a direction of a link does to its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    Delay(Duration),
    Blackhole,
    Cut,
}

/// How often a pump looks at its fault when it has nothing to do.
const POLL: Duration = Duration::from_millis(5);

/// One ordered pair's proxy.
pub struct Link {
    /// The port the dialling node names.
    pub port: u16,
    /// The real port of the node dialled; 0 while it is down.
    target: AtomicU16,
    faults: Mutex<[Fault; 2]>,
    /// Bumped by `reset`: pumps of an older epoch close their connection.
    epoch: AtomicU64,
    stop: AtomicBool,
    /// Connections accepted and passed on, for the summary.
    pub accepted: AtomicU64,
}

impl Link {
    pub fn fault(&self, dir: Dir) -> Fault {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())[dir as usize]
    }

    pub fn set(&self, dir: Dir, fault: Fault) {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())[dir as usize] = fault;
    }

    fn cut(&self) -> bool {
        self.fault(Dir::Forward) == Fault::Cut || self.fault(Dir::Back) == Fault::Cut
    }

    /// Closes the connections open now.
    pub fn reset(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    pub fn set_target(&self, port: u16) {
        self.target.store(port, Ordering::SeqCst);
    }
}

/// Every link of an `n`-node cluster.
pub struct Proxy {
    pub n: usize,
    /// `links[i * n + j]`: node i's link to node j (none for i == j).
    links: Vec<Option<Arc<Link>>>,
}

impl Proxy {
    /// Listens for every ordered pair (its ports are bound here and kept,
    /// so no other process can take them); targets are set as nodes start.
    #[track_caller]
    pub fn start(n: usize) -> Proxy {
        let mut links = Vec::with_capacity(n * n);
        for i in 0..n {
            for j in 0..n {
                links.push((i != j).then(|| spawn_link()));
            }
        }
        Proxy { n, links }
    }

    /// Node `from`'s link to node `to`.
    #[track_caller]
    pub fn link(&self, from: usize, to: usize) -> &Arc<Link> {
        self.links[from * self.n + to].as_ref().expect("no link from a node to itself")
    }

    /// The ports node `i` names as its peers (in node order).
    pub fn peer_ports(&self, i: usize) -> Vec<u16> {
        (0..self.n).filter(|&j| j != i).map(|j| self.link(i, j).port).collect()
    }

    /// Node `to` listens on `port` now (0: it is down).
    pub fn node_at(&self, to: usize, port: u16) {
        for from in (0..self.n).filter(|&f| f != to) {
            self.link(from, to).set_target(port);
        }
    }

    fn all(&self) -> impl Iterator<Item = &Arc<Link>> {
        self.links.iter().flatten()
    }

    /// What `a` sends no longer reaches `b`, on either link between them
    /// (`a`'s requests to `b`, `a`'s replies on `b`'s link), with `fault`.
    pub fn one_way(&self, a: usize, b: usize, fault: Fault) {
        self.link(a, b).set(Dir::Forward, fault);
        self.link(b, a).set(Dir::Back, fault);
    }

    /// Both ways between `a` and `b`.
    pub fn both_ways(&self, a: usize, b: usize, fault: Fault) {
        self.one_way(a, b, fault);
        self.one_way(b, a, fault);
    }

    /// Connection resets between `a` and `b`.
    pub fn reset(&self, a: usize, b: usize) {
        self.link(a, b).reset();
        self.link(b, a).reset();
    }

    /// Every link passes again.
    pub fn heal(&self) {
        for l in self.all() {
            l.set(Dir::Forward, Fault::Pass);
            l.set(Dir::Back, Fault::Pass);
        }
    }

    /// Connections the proxy passed on, in all.
    pub fn connections(&self) -> u64 {
        self.all().map(|l| l.accepted.load(Ordering::Relaxed)).sum()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for l in self.all() {
            l.stop.store(true, Ordering::SeqCst);
        }
    }
}

#[track_caller]
fn spawn_link() -> Arc<Link> {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a proxy port");
    listener.set_nonblocking(true).expect("nonblocking listener");
    let link = Arc::new(Link {
        port: listener.local_addr().expect("proxy addr").port(),
        target: AtomicU16::new(0),
        faults: Mutex::new([Fault::Pass; 2]),
        epoch: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        accepted: AtomicU64::new(0),
    });
    let l = link.clone();
    std::thread::spawn(move || accept_loop(listener, l));
    link
}

fn accept_loop(listener: TcpListener, link: Arc<Link>) {
    while !link.stop.load(Ordering::SeqCst) {
        let down = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(POLL);
                continue;
            }
            Err(_) => continue,
        };
        let target = link.target.load(Ordering::SeqCst);
        if link.cut() || target == 0 {
            continue; // dropped: closed
        }
        let Ok(up) = TcpStream::connect_timeout(&([127, 0, 0, 1], target).into(), Duration::from_secs(1)) else {
            continue; // the node is down: closed, as a refused connect would be
        };
        let (Ok(_), Ok(_)) = (down.set_nonblocking(false), up.set_nodelay(true)) else { continue };
        let _ = down.set_nodelay(true);
        link.accepted.fetch_add(1, Ordering::Relaxed);
        let epoch = link.epoch.load(Ordering::SeqCst);
        for (dir, from, to) in [(Dir::Forward, &down, &up), (Dir::Back, &up, &down)] {
            let (Ok(from), Ok(to)) = (from.try_clone(), to.try_clone()) else { continue };
            let l = link.clone();
            std::thread::spawn(move || pump(&l, dir, epoch, from, to));
        }
    }
}

/// Copies `from` to `to` as the fault of `dir` says, until either side
/// closes, the link is cut or reset, or the proxy stops; then closes both.
fn pump(link: &Link, dir: Dir, epoch: u64, mut from: TcpStream, mut to: TcpStream) {
    let _ = from.set_read_timeout(Some(POLL));
    let mut buf = vec![0u8; 64 << 10];
    let live = || !link.stop.load(Ordering::SeqCst) && link.epoch.load(Ordering::SeqCst) == epoch && !link.cut();
    while live() {
        if link.fault(dir) == Fault::Blackhole {
            std::thread::sleep(POLL);
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                // The fault may have changed while the read waited: a chunk
                // read as a blackhole began is held, as a cut or reset drops it.
                while live() && link.fault(dir) == Fault::Blackhole {
                    std::thread::sleep(POLL);
                }
                if !live() {
                    break;
                }
                if let Fault::Delay(d) = link.fault(dir) {
                    std::thread::sleep(d);
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    /// An echo server on port 0; returns its port.
    fn echo() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut w = s.try_clone().unwrap();
                    let _ = std::io::copy(&mut &s, &mut w);
                });
            }
        });
        port
    }

    fn connect(port: u16) -> (TcpStream, std::io::BufReader<TcpStream>) {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        let r = std::io::BufReader::new(s.try_clone().unwrap());
        (s, r)
    }

    fn roundtrip(s: &mut TcpStream, r: &mut std::io::BufReader<TcpStream>, msg: &str) -> Option<String> {
        s.write_all(format!("{msg}\n").as_bytes()).ok()?;
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(n) if n > 0 => Some(line.trim_end().to_string()),
            _ => None,
        }
    }

    #[test]
    fn passes_blackholes_heals_and_cuts_each_direction() {
        let p = Proxy::start(2);
        p.node_at(1, echo());
        let port = p.link(0, 1).port;
        let (mut s, mut r) = connect(port);
        assert_eq!(roundtrip(&mut s, &mut r, "a").as_deref(), Some("a"));
        // Replies blackholed: the request arrives, the echo waits.
        p.link(0, 1).set(Dir::Back, Fault::Blackhole);
        assert_eq!(roundtrip(&mut s, &mut r, "b"), None, "no reply through a blackhole");
        p.heal();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert_eq!(line, "b\n", "held, not lost: it arrives once healed");
        // A delay still delivers.
        p.link(0, 1).set(Dir::Forward, Fault::Delay(Duration::from_millis(20)));
        assert_eq!(roundtrip(&mut s, &mut r, "c").as_deref(), Some("c"));
        // A cut closes the connection, and the next ones.
        p.link(0, 1).set(Dir::Forward, Fault::Cut);
        assert_eq!(roundtrip(&mut s, &mut r, "d"), None);
        let (mut s2, mut r2) = connect(port);
        assert_eq!(roundtrip(&mut s2, &mut r2, "e"), None, "refused while cut");
        p.heal();
        let (mut s3, mut r3) = connect(port);
        assert_eq!(roundtrip(&mut s3, &mut r3, "f").as_deref(), Some("f"));
        // A reset closes what is open, and only that.
        p.reset(0, 1);
        assert_eq!(roundtrip(&mut s3, &mut r3, "g"), None);
        let (mut s4, mut r4) = connect(port);
        assert_eq!(roundtrip(&mut s4, &mut r4, "h").as_deref(), Some("h"));
        // A node that is down: connections are closed at once.
        p.node_at(1, 0);
        let (mut s5, mut r5) = connect(port);
        assert_eq!(roundtrip(&mut s5, &mut r5, "i"), None);
    }
}
