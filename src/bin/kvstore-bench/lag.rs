//! Replication lag mode (`--lag-addr`): write a unique key on one server and
//! poll another until the value shows. Blocking sockets, one key at a time:
//! it measures visibility delay, not throughput, so simplicity wins.

use std::io::{self, Read, Write};
use std::net::TcpStream as StdStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::client::connect;
use crate::histogram::Histogram;
use crate::keys::Rng;
use crate::options::{Config, Protocol};
use crate::reply::{Reply, Tally, parse_reply};
use crate::report::{Progress, print_lag};
use crate::request::{Op, encode, fill_value};

/// How long a write may take to become visible before it counts as a timeout.
pub const LAG_TIMEOUT: Duration = Duration::from_secs(5);

/// A blocking connection that reads whole replies.
struct SyncConn {
    stream: StdStream,
    addr: String,
    proto: Protocol,
    buf: Vec<u8>,
    /// `buf[pos..len]` is unparsed input.
    pos: usize,
    len: usize,
}

impl SyncConn {
    fn connect(addr: &str, proto: Protocol) -> Result<SyncConn, String> {
        let stream = connect(addr)?;
        stream.set_read_timeout(Some(LAG_TIMEOUT)).map_err(|e| format!("{addr}: {e}"))?;
        Ok(SyncConn { stream, addr: addr.into(), proto, buf: vec![0; 64 << 10], pos: 0, len: 0 })
    }

    fn send(&mut self, req: &[u8]) -> Result<(), String> {
        self.stream.write_all(req).map_err(|e| format!("{}: write: {e}", self.addr))
    }

    /// The next reply; with `block == false`, `None` if none is complete yet.
    /// Ranges in the reply index [`SyncConn::bytes`].
    fn next(&mut self, block: bool) -> Result<Option<Reply>, String> {
        loop {
            let unread = &self.buf[self.pos..self.len];
            if let Some((used, reply)) = parse_reply(self.proto, unread).map_err(|e| format!("{}: {e}", self.addr))? {
                let base = self.pos;
                self.pos += used;
                let shift = |r: std::ops::Range<usize>| r.start + base..r.end + base;
                return Ok(Some(match reply {
                    Reply::Error(r) => Reply::Error(shift(r)),
                    Reply::Value(r) => Reply::Value(shift(r)),
                    other => other,
                }));
            }
            // Make room: move the partial reply to the front, grow if it fills the buffer.
            self.buf.copy_within(self.pos..self.len, 0);
            self.len -= self.pos;
            self.pos = 0;
            if self.len == self.buf.len() {
                self.buf.resize(self.buf.len() * 2, 0);
            }
            let n = if block {
                self.stream.read(&mut self.buf[self.len..])
            } else {
                recv_nowait(&self.stream, &mut self.buf[self.len..])
            };
            match n {
                Ok(0) => return Err(format!("{}: server closed the connection", self.addr)),
                Ok(n) => self.len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if !block && e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Err(format!("{}: no reply within {} s", self.addr, LAG_TIMEOUT.as_secs()));
                }
                Err(e) => return Err(format!("{}: read: {e}", self.addr)),
            }
        }
    }

    fn bytes(&self, r: std::ops::Range<usize>) -> &[u8] {
        &self.buf[r]
    }

    fn text(&self, r: std::ops::Range<usize>) -> String {
        String::from_utf8_lossy(self.bytes(r)).into_owned()
    }
}

/// A read that does not wait, on a socket that otherwise blocks.
fn recv_nowait(stream: &StdStream, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the descriptor is open for the lifetime of `stream`, and `buf`
    // is valid for writes of `buf.len()` bytes.
    let n = unsafe { libc::recv(stream.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

pub fn run_lag(cfg: &Config, lag_addr: &str) -> Result<(), String> {
    let mut writer = SyncConn::connect(&cfg.addr, cfg.protocol)?;
    let mut reader = SyncConn::connect(lag_addr, cfg.protocol)?;
    // Values carry a per-run nonce, so a value left by an earlier run is never
    // mistaken for this run's write.
    let clock = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let nonce = Rng(clock ^ cfg.seed).next_u64();
    let (mut key, mut value, mut set, mut get) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut hist = Histogram::new();
    let (mut timeouts, mut tally) = (0u64, Tally::default());
    let mut progress = Progress::new(!cfg.quiet, "lag", Instant::now());

    for i in 0..cfg.requests {
        key.clear();
        let _ = write!(key, "lag:{i:012}");
        value.clear();
        let _ = write!(value, "{nonce:016x}-{i:012}-");
        let pad = cfg.value_size.saturating_sub(value.len());
        fill_value(&mut value, pad);
        set.clear();
        encode(cfg.protocol, Op::Set, &key, &value, &mut set);
        get.clear();
        encode(cfg.protocol, Op::Get, &key, &[], &mut get);

        let t0 = Instant::now();
        writer.send(&set)?;
        let mut acked = false;
        loop {
            reader.send(&get)?;
            match reader.next(true)? {
                Some(Reply::Value(r)) if reader.bytes(r.clone()) == value.as_slice() => {
                    hist.record_duration(t0.elapsed(), 1);
                    break;
                }
                Some(Reply::Error(r)) => return Err(format!("GET on {lag_addr} failed: {}", reader.text(r))),
                _ => {}
            }
            if t0.elapsed() >= LAG_TIMEOUT {
                timeouts += 1;
                break;
            }
            // A failed write never becomes visible: check for its reply
            // between polls rather than waiting out the timeout.
            if !acked && let Some(reply) = writer.next(false)? {
                acked = true;
                if let Reply::Error(r) = reply {
                    note_error(&mut tally, writer.text(r));
                    break;
                }
            }
        }
        if !acked && let Some(Reply::Error(r)) = writer.next(true)? {
            note_error(&mut tally, writer.text(r));
        }
        if progress.until_next().is_zero() {
            progress.tick(i + 1);
        }
    }
    progress.finish();
    print_lag(cfg, lag_addr, &hist, timeouts, &tally);
    Ok(())
}

fn note_error(tally: &mut Tally, text: String) {
    tally.errors += 1;
    tally.first_error.get_or_insert(text);
}
