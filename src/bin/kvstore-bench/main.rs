//! kvstore-bench: the load generator for kvstore, in the spirit of
//! redis-benchmark and memtier. It speaks RESP (`SET`/`GET`) or the kvstore
//! text protocol (`PUT`/`GET` lines), so it also measures Redis or anything
//! else that answers those commands.
//!
//! The machine kvstore is measured on has two cores, shared by the server and
//! this generator: every cycle the generator spends is a cycle the server
//! does not get. So the point of this program is CPU per request, and it
//! reports its own (getrusage) next to the throughput.
//!
//! # Layout
//! - [`Args`] / [`Config`]: options, defaults, validation.
//! - [`Shape`]: the pre-encoded request window. Requests are encoded once at
//!   start; per request the hot path only writes the 12 key digits in place.
//! - [`Scanner`]: a streaming reply counter. It never buffers a reply: it
//!   finds line ends with memchr and skips bulk payloads by length, carrying
//!   at most one partial header line (64 bytes) across reads.
//! - [`Histogram`]: log-linear latency histogram, ~0.8% precision, fixed
//!   buckets, nothing allocated while running.
//! - [`Client`] / [`worker`]: one mio `Poll` per thread, its connections,
//!   each with one batch of `--pipeline` requests in flight.
//! - [`run_phase`]: connects, starts the workers, prints progress, merges.
//! - [`run_lag`]: replication lag mode (blocking sockets, one key at a time).
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

use std::fmt::Write as _;
use std::io::{self, IsTerminal, Read, Write};
use std::net::{TcpStream as StdStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use argh::FromArgs;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

#[derive(FromArgs, Debug)]
/// Load generator for kvstore (and Redis): many connections with pipelined
/// SET/GET requests over RESP or the kvstore text protocol. Reports
/// throughput, latency percentiles and the client's own CPU time per request.
struct Args {
    /// server address, HOST:PORT (default 127.0.0.1:6379)
    #[argh(option, default = "String::from(\"127.0.0.1:6379\")")]
    addr: String,

    /// concurrent connections (default 50)
    #[argh(option, default = "50")]
    clients: usize,

    /// requests each connection keeps in flight; the next batch is written
    /// in one write once the whole batch is answered (default 1)
    #[argh(option, default = "1")]
    pipeline: usize,

    /// total requests over all connections (default 100000; 1000 in
    /// --lag-addr mode); ignored when --duration is given
    #[argh(option)]
    requests: Option<u64>,

    /// run for this many seconds (fractions allowed) instead of a number of
    /// requests
    #[argh(option)]
    duration: Option<f64>,

    /// value size in bytes for SET/PUT (default 32)
    #[argh(option, default = "32")]
    value_size: usize,

    /// distinct keys: key:000000000000 up to keyspace-1, fixed width so all
    /// requests of one kind have the same length, picked uniformly at random
    /// (default 100000)
    #[argh(option, default = "100000")]
    keyspace: u64,

    /// seed of the key generator: the same seed gives the same keys (default 1)
    #[argh(option, default = "1")]
    seed: u64,

    /// SET:GET mix, interleaved evenly: 1:0 only writes, 0:1 only reads,
    /// 1:10 read-heavy (default 1:1)
    #[argh(option, default = "Ratio { set: 1, get: 1 }")]
    ratio: Ratio,

    /// resp (SET/GET, the default) or text (PUT/GET lines)
    #[argh(option, default = "Protocol::Resp")]
    protocol: Protocol,

    /// event-loop threads; connections are split among them (default 1)
    #[argh(option, default = "1")]
    threads: usize,

    /// before the run, SET every key of the keyspace once so that GETs hit
    #[argh(switch)]
    prefill: bool,

    /// print one JSON object instead of the human summary
    #[argh(switch)]
    json: bool,

    /// no progress line on stderr
    #[argh(switch)]
    quiet: bool,

    /// replication lag mode: --requests times, write a unique key on --addr,
    /// then GET it on this HOST:PORT until the value is visible; report the
    /// time from the write to visibility (5 s cap per key)
    #[argh(option)]
    lag_addr: Option<String>,
}

/// Which wire protocol the requests are encoded in and the replies parsed as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    /// Redis's protocol: `*3\r\n$3\r\nSET\r\n...` → `+OK\r\n`; GET → bulk or `$-1`.
    Resp,
    /// kvstore's line protocol: `PUT k v\n` → `OK\n`; `GET k\n` → value or `NOT_FOUND`.
    Text,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Resp => "resp",
            Protocol::Text => "text",
        }
    }
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Protocol, String> {
        match s.to_ascii_lowercase().as_str() {
            "resp" => Ok(Protocol::Resp),
            "text" => Ok(Protocol::Text),
            _ => Err(format!("unknown protocol {s:?}: expected resp or text")),
        }
    }
}

/// The SET:GET mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ratio {
    set: u32,
    get: u32,
}

impl FromStr for Ratio {
    type Err = String;
    fn from_str(s: &str) -> Result<Ratio, String> {
        let bad = || format!("bad ratio {s:?}: expected SET:GET, e.g. 1:1, 1:0, 1:10");
        let (a, b) = s.split_once(':').ok_or_else(bad)?;
        let set = a.trim().parse().map_err(|_| bad())?;
        let get = b.trim().parse().map_err(|_| bad())?;
        if set == 0 && get == 0 {
            return Err(format!("bad ratio {s:?}: at least one side must be non-zero"));
        }
        Ok(Ratio { set, get })
    }
}

impl Ratio {
    /// The same mix with the smallest period (2:2 → 1:1).
    fn reduced(self) -> Ratio {
        let (mut a, mut b) = (self.set, self.get);
        while b != 0 {
            (a, b) = (b, a % b);
        }
        Ratio { set: self.set / a, get: self.get / a }
    }
    /// Operations repeat with this period.
    fn period(self) -> usize {
        (self.set + self.get) as usize
    }
    /// The operation at slot `j` of the period: SETs spread evenly among the
    /// GETs (Bresenham), so every window of requests has about the mix.
    fn op(self, j: usize) -> Op {
        let (j, set, period) = (j as u64, self.set as u64, self.period() as u64);
        if (j + 1) * set / period > j * set / period { Op::Set } else { Op::Get }
    }
}

/// Validated options.
#[derive(Debug)]
struct Config {
    addr: String,
    clients: usize,
    pipeline: usize,
    requests: u64,
    duration: Option<Duration>,
    value_size: usize,
    keyspace: u64,
    seed: u64,
    /// Reduced (smallest period).
    ratio: Ratio,
    protocol: Protocol,
    /// At most `clients`.
    threads: usize,
    prefill: bool,
    json: bool,
    quiet: bool,
    lag_addr: Option<String>,
}

/// Keys are `key:` and this many digits, so all keys have one length.
const KEY_DIGITS: usize = 12;
const KEY_PREFIX: &[u8] = b"key:";
/// Pre-encoded requests of all connections together may not exceed this.
const MAX_ENCODED: usize = 1 << 30;

impl Config {
    fn from_args(a: Args) -> Result<Config, String> {
        if a.clients == 0 || a.clients > 100_000 {
            return Err("--clients must be between 1 and 100000".into());
        }
        if a.pipeline == 0 || a.pipeline > 1_000_000 {
            return Err("--pipeline must be between 1 and 1000000".into());
        }
        if a.threads == 0 {
            return Err("--threads must be at least 1".into());
        }
        if a.value_size == 0 || a.value_size > 512 << 20 {
            return Err("--value-size must be between 1 and 536870912".into());
        }
        if a.keyspace == 0 || a.keyspace > 10u64.pow(KEY_DIGITS as u32) {
            return Err(format!("--keyspace must be between 1 and 10^{KEY_DIGITS}"));
        }
        let duration = match a.duration {
            None => None,
            Some(s) if s.is_finite() && s > 0.0 && s < 1e9 => Some(Duration::from_secs_f64(s)),
            Some(s) => return Err(format!("--duration must be a positive number of seconds, not {s}")),
        };
        let requests = a.requests.unwrap_or(if a.lag_addr.is_some() { 1000 } else { 100_000 });
        if requests == 0 {
            return Err("--requests must be at least 1".into());
        }
        Ok(Config {
            addr: a.addr,
            clients: a.clients,
            pipeline: a.pipeline,
            requests,
            duration,
            value_size: a.value_size,
            keyspace: a.keyspace,
            seed: a.seed,
            ratio: a.ratio.reduced(),
            protocol: a.protocol,
            threads: a.threads.min(a.clients),
            prefill: a.prefill,
            json: a.json,
            quiet: a.quiet,
            lag_addr: a.lag_addr,
        })
    }
}

// ---------------------------------------------------------------------------
// Request encoding
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Set,
    Get,
}

/// Appends one request to `out`; returns the offset in `out` where the key starts.
fn encode(proto: Protocol, op: Op, key: &[u8], value: &[u8], out: &mut Vec<u8>) -> usize {
    match (proto, op) {
        (Protocol::Resp, Op::Set) => {
            out.extend_from_slice(b"*3\r\n$3\r\nSET\r\n");
            bulk_header(out, key.len());
            let at = out.len();
            out.extend_from_slice(key);
            out.extend_from_slice(b"\r\n");
            bulk_header(out, value.len());
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
            at
        }
        (Protocol::Resp, Op::Get) => {
            out.extend_from_slice(b"*2\r\n$3\r\nGET\r\n");
            bulk_header(out, key.len());
            let at = out.len();
            out.extend_from_slice(key);
            out.extend_from_slice(b"\r\n");
            at
        }
        (Protocol::Text, Op::Set) => {
            out.extend_from_slice(b"PUT ");
            let at = out.len();
            out.extend_from_slice(key);
            out.push(b' ');
            out.extend_from_slice(value);
            out.push(b'\n');
            at
        }
        (Protocol::Text, Op::Get) => {
            out.extend_from_slice(b"GET ");
            let at = out.len();
            out.extend_from_slice(key);
            out.push(b'\n');
            at
        }
    }
}

fn bulk_header(out: &mut Vec<u8>, len: usize) {
    out.push(b'$');
    out.extend_from_slice(len.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Value bytes: a repeating pattern with no space, `\r` or `\n`, so the
/// value is one word of a text line and never ends a line early.
fn fill_value(out: &mut Vec<u8>, len: usize) {
    const PATTERN: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    out.extend(PATTERN.iter().cycle().take(len));
}

/// Writes `v` as `dst.len()` decimal digits, zero-padded (high digits of a
/// value too large are dropped; keys are validated to fit).
fn put_digits(dst: &mut [u8], mut v: u64) {
    for d in dst.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// The request window every connection of a phase shares.
///
/// Operations follow the ratio's period, so a batch of `pipeline` requests
/// starting at slot `s` of the period is the same sequence of operations
/// wherever it occurs. The window holds `pipeline + period - 1` requests: a
/// batch starting at any slot `s < period` is then one contiguous slice
/// `starts[s]..starts[s + n]`, written with one `write` and no copying. Each
/// connection owns a copy of `bytes` (its keys differ), not of the tables.
struct Shape {
    pipeline: usize,
    period: usize,
    /// Byte offset where request `i` starts; one more entry for the end.
    starts: Vec<usize>,
    /// Byte offset of request `i`'s key digits.
    digits: Vec<usize>,
    /// GETs among requests `0..i`; one more entry for the end.
    gets_before: Vec<u64>,
    /// The encoded window with all keys zero: each connection's template.
    bytes: Vec<u8>,
}

impl Shape {
    fn new(proto: Protocol, ratio: Ratio, pipeline: usize, value_size: usize) -> Shape {
        let period = ratio.period();
        let slots = pipeline + period - 1;
        let mut value = Vec::with_capacity(value_size);
        fill_value(&mut value, value_size);
        let mut key = KEY_PREFIX.to_vec();
        key.resize(KEY_PREFIX.len() + KEY_DIGITS, b'0');
        let mut shape = Shape {
            pipeline,
            period,
            starts: Vec::with_capacity(slots + 1),
            digits: Vec::with_capacity(slots),
            gets_before: Vec::with_capacity(slots + 1),
            bytes: Vec::new(),
        };
        let mut gets = 0;
        for i in 0..slots {
            let op = ratio.op(i % period);
            shape.starts.push(shape.bytes.len());
            shape.gets_before.push(gets);
            let at = encode(proto, op, &key, &value, &mut shape.bytes);
            shape.digits.push(at + KEY_PREFIX.len());
            gets += u64::from(op == Op::Get);
        }
        shape.starts.push(shape.bytes.len());
        shape.gets_before.push(gets);
        shape
    }

    /// Bytes the window of `pipeline + period - 1` requests takes, computed
    /// without building it (to refuse absurd configurations).
    fn encoded_len(proto: Protocol, ratio: Ratio, pipeline: usize, value_size: usize) -> usize {
        let key = KEY_PREFIX.len() + KEY_DIGITS;
        let digits = |n: usize| n.to_string().len();
        let (set, get) = match proto {
            Protocol::Resp => (
                13 + 3 + digits(key) + key + 2 + 3 + digits(value_size) + value_size + 2,
                13 + 3 + digits(key) + key + 2,
            ),
            Protocol::Text => (4 + key + 1 + value_size + 1, 4 + key + 1),
        };
        let slots = pipeline + ratio.period() - 1;
        let sets = (0..ratio.period()).filter(|&j| ratio.op(j) == Op::Set).count();
        let sets =
            slots / ratio.period() * sets + (0..slots % ratio.period()).filter(|&j| ratio.op(j) == Op::Set).count();
        sets.saturating_mul(set).saturating_add((slots - sets).saturating_mul(get))
    }
}

// ---------------------------------------------------------------------------
// Key choice
// ---------------------------------------------------------------------------

/// SplitMix64: tiny, fast, and good enough to pick keys uniformly.
#[derive(Clone, Debug)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (Lemire's multiply-shift; the bias is below 2^-24
    /// for any keyspace up to 10^12).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Where a connection's keys come from.
#[derive(Clone, Debug)]
enum Keys {
    /// Uniform over `0..n`.
    Random { rng: Rng, n: u64 },
    /// `next`, `next + 1`, ...: the prefill phase walks each connection's slice of the keyspace.
    Seq { next: u64 },
}

impl Keys {
    fn next(&mut self) -> u64 {
        match self {
            Keys::Random { rng, n } => rng.below(*n),
            Keys::Seq { next } => {
                *next += 1;
                *next - 1
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Reply scanning
// ---------------------------------------------------------------------------

/// Bytes of a line the scanner keeps when the line is split across reads:
/// enough for any RESP header, to recognise `NOT_FOUND`, and to quote an error.
const LINE_KEEP: usize = 64;
/// Largest bulk length accepted in a reply.
const MAX_BULK: i64 = 1 << 40;

/// What a reply line turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LineKind {
    /// A whole reply: status, integer, value line, nil or error.
    Reply { error: bool, nil: bool },
    /// A RESP bulk header: this many bytes (payload and CRLF) follow.
    Bulk(usize),
}

/// Classifies one reply line. `kept` is the line without its `\n`, or its
/// first `LINE_KEEP` bytes when it is longer (`full` is the real length).
fn classify(proto: Protocol, kept: &[u8], full: usize) -> Result<LineKind, String> {
    let whole = kept.len() == full;
    let body = if whole { kept.strip_suffix(b"\r").unwrap_or(kept) } else { kept };
    let ok = LineKind::Reply { error: false, nil: false };
    match proto {
        Protocol::Text => Ok(if whole && body == b"NOT_FOUND" {
            LineKind::Reply { error: false, nil: true }
        } else if body.starts_with(b"ERR") || body.starts_with(b"-ERR") {
            LineKind::Reply { error: true, nil: false }
        } else {
            ok
        }),
        Protocol::Resp => match body.first() {
            Some(b'+' | b':') => Ok(ok),
            Some(b'-') => Ok(LineKind::Reply { error: true, nil: false }),
            Some(b'_') => Ok(LineKind::Reply { error: false, nil: true }),
            Some(b'$') => match parse_int(&body[1..]).filter(|_| whole) {
                Some(-1) => Ok(LineKind::Reply { error: false, nil: true }),
                Some(n) if (0..=MAX_BULK).contains(&n) => Ok(LineKind::Bulk(n as usize + 2)),
                _ => Err(format!("bad bulk header in reply: {:?}", String::from_utf8_lossy(body))),
            },
            _ => Err(format!("unexpected reply (protocol mismatch?): {:?}", String::from_utf8_lossy(body))),
        },
    }
}

fn parse_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = digits.iter().fold(0i64, |v, &c| v * 10 + i64::from(c - b'0'));
    Some(if neg { -v } else { v })
}

/// Error and nil counts, and the first error's text.
#[derive(Debug, Default)]
struct Tally {
    errors: u64,
    nils: u64,
    first_error: Option<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.errors += other.errors;
        self.nils += other.nils;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ScanState {
    /// At a reply boundary (`line_len == 0`) or inside a line.
    Line,
    /// Inside a bulk payload: this many bytes, CRLF included, still to skip.
    Bulk(usize),
}

/// Counts complete replies in a stream fed in arbitrary pieces.
///
/// It does not buffer replies: a line that ends in the piece is classified
/// in place, a payload is skipped by its length, and only the first
/// `LINE_KEEP` bytes of a line cut by the end of a piece are carried over.
/// So memory is fixed whatever the value size, and the common case (whole
/// replies in one read) copies nothing.
struct Scanner {
    proto: Protocol,
    state: ScanState,
    /// Bytes of the current line seen so far (0: at a reply boundary).
    line_len: usize,
    /// The first `min(line_len, LINE_KEEP)` of them.
    line: [u8; LINE_KEEP],
}

impl Scanner {
    fn new(proto: Protocol) -> Scanner {
        Scanner { proto, state: ScanState::Line, line_len: 0, line: [0; LINE_KEEP] }
    }

    /// Consumes `data`; returns how many replies it completed. Errors and
    /// nils among them are added to `tally`. An error means the stream is
    /// not a reply stream of this protocol: the connection cannot continue.
    fn feed(&mut self, mut data: &[u8], tally: &mut Tally) -> Result<u64, String> {
        let mut replies = 0;
        while !data.is_empty() {
            if let ScanState::Bulk(left) = self.state {
                if data.len() < left {
                    // The payload's `\r` may be the last byte of this piece.
                    if left - data.len() == 1 && data[data.len() - 1] != b'\r' {
                        return Err("bulk reply not terminated by CRLF (protocol mismatch?)".into());
                    }
                    self.state = ScanState::Bulk(left - data.len());
                    return Ok(replies);
                }
                if data[left - 1] != b'\n' || (left >= 2 && data[left - 2] != b'\r') {
                    return Err("bulk reply not terminated by CRLF (protocol mismatch?)".into());
                }
                data = &data[left..];
                self.state = ScanState::Line;
                replies += 1;
                continue;
            }
            let Some(nl) = memchr::memchr(b'\n', data) else {
                self.keep(data);
                return Ok(replies);
            };
            let kind = if self.line_len == 0 {
                classify_into(self.proto, &data[..nl], nl, tally)?
            } else {
                self.keep(&data[..nl]);
                let (line, full) = (self.line, self.line_len);
                self.line_len = 0;
                classify_into(self.proto, &line[..full.min(LINE_KEEP)], full, tally)?
            };
            data = &data[nl + 1..];
            match kind {
                LineKind::Reply { .. } => replies += 1,
                LineKind::Bulk(n) => self.state = ScanState::Bulk(n),
            }
        }
        Ok(replies)
    }

    /// Remembers (the start of) a piece of a line cut by the end of a read.
    fn keep(&mut self, piece: &[u8]) {
        let have = self.line_len.min(LINE_KEEP);
        let take = piece.len().min(LINE_KEEP - have);
        self.line[have..have + take].copy_from_slice(&piece[..take]);
        self.line_len += piece.len();
    }

    /// Whether a reply is partly read (so a close now would lose it).
    #[cfg(test)]
    fn mid_reply(&self) -> bool {
        self.line_len != 0 || self.state != ScanState::Line
    }
}

/// [`classify`], counting errors and nils into `tally`.
fn classify_into(proto: Protocol, kept: &[u8], full: usize, tally: &mut Tally) -> Result<LineKind, String> {
    let kind = classify(proto, kept, full)?;
    if let LineKind::Reply { error, nil } = kind {
        tally.nils += u64::from(nil);
        if error {
            tally.errors += 1;
            if tally.first_error.is_none() {
                let mut text = kept.strip_suffix(b"\r").unwrap_or(kept);
                if proto == Protocol::Resp {
                    text = &text[1..]; // the `-` type byte
                }
                tally.first_error = Some(String::from_utf8_lossy(text).into_owned());
            }
        }
    }
    Ok(kind)
}

/// One complete reply, for the lag mode, which needs the value itself.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Reply {
    /// `+...`, `:...`, or (text) a line that is not a value we compare.
    Status,
    /// An error; the range is its text in the buffer.
    Error(std::ops::Range<usize>),
    /// `$-1` or `NOT_FOUND`.
    Nil,
    /// A value (RESP bulk payload, or a whole text line).
    Value(std::ops::Range<usize>),
}

/// Parses the reply at the start of `buf`: `None` if it is not complete,
/// else its length and what it is (ranges are offsets into `buf`).
fn parse_reply(proto: Protocol, buf: &[u8]) -> Result<Option<(usize, Reply)>, String> {
    let Some(nl) = memchr::memchr(b'\n', buf) else { return Ok(None) };
    let end = if nl > 0 && buf[nl - 1] == b'\r' { nl - 1 } else { nl };
    let line = &buf[..end];
    let reply = match proto {
        Protocol::Text if line == b"NOT_FOUND" => Reply::Nil,
        Protocol::Text if line.starts_with(b"ERR") || line.starts_with(b"-ERR") => Reply::Error(0..end),
        Protocol::Text => Reply::Value(0..end),
        Protocol::Resp => match line.first() {
            Some(b'+' | b':') => Reply::Status,
            Some(b'-') => Reply::Error(1..end),
            Some(b'_') => Reply::Nil,
            Some(b'$') => match parse_int(&line[1..]) {
                Some(-1) => Reply::Nil,
                Some(n) if (0..=MAX_BULK).contains(&n) => {
                    let (start, n) = (nl + 1, n as usize);
                    if buf.len() < start + n + 2 {
                        return Ok(None);
                    }
                    if &buf[start + n..start + n + 2] != b"\r\n" {
                        return Err("bulk reply not terminated by CRLF".into());
                    }
                    return Ok(Some((start + n + 2, Reply::Value(start..start + n))));
                }
                _ => return Err(format!("bad bulk header in reply: {:?}", String::from_utf8_lossy(line))),
            },
            _ => return Err(format!("unexpected reply: {:?}", String::from_utf8_lossy(line))),
        },
    };
    Ok(Some((nl + 1, reply)))
}

// ---------------------------------------------------------------------------
// Latency histogram
// ---------------------------------------------------------------------------

/// Values below `2 * SUB` get a bucket each; above, every power of two is cut
/// into `SUB` buckets, so a bucket is at most 1/128 (0.8%) of its values.
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB as usize;

/// Log-linear histogram of nanoseconds (HdrHistogram's layout, simplified).
///
/// Nanoseconds rather than microseconds: loopback latencies are often 10 to
/// 50 µs, where whole microseconds would be a 2–10% error. All buckets
/// exist from the start (58 KiB), so recording never allocates.
#[derive(Clone)]
struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    sum: u128,
    max: u64,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram { counts: vec![0; BUCKETS].into_boxed_slice(), total: 0, sum: 0, max: 0 }
    }

    fn bucket(v: u64) -> usize {
        if v < 2 * SUB {
            v as usize
        } else {
            let shift = 63 - v.leading_zeros() - SUB_BITS;
            ((u64::from(shift) + 1) * SUB + ((v >> shift) - SUB)) as usize
        }
    }

    /// The largest value that falls in bucket `i`.
    fn bucket_high(i: usize) -> u64 {
        let i = i as u64;
        if i < 2 * SUB {
            i
        } else {
            let shift = i / SUB - 1;
            let sub = i % SUB + SUB;
            (((u128::from(sub) + 1) << shift) - 1) as u64
        }
    }

    /// Records `n` samples of value `v`.
    fn record_n(&mut self, v: u64, n: u64) {
        self.counts[Histogram::bucket(v)] += n;
        self.total += n;
        self.sum += u128::from(v) * u128::from(n);
        self.max = self.max.max(v);
    }

    fn record_duration(&mut self, d: Duration, n: u64) {
        self.record_n(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), n);
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.total += other.total;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    /// The value below or at which a fraction `q` of the samples fall
    /// (the highest value of that bucket, never above the true maximum).
    fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Histogram::bucket_high(i).min(self.max);
            }
        }
        self.max
    }

    fn mean(&self) -> f64 {
        if self.total == 0 { 0.0 } else { self.sum as f64 / self.total as f64 }
    }

    fn summary(&self) -> Latency {
        let ms = |ns: u64| ns as f64 / 1e6;
        Latency {
            mean: self.mean() / 1e6,
            p50: ms(self.quantile(0.50)),
            p99: ms(self.quantile(0.99)),
            p999: ms(self.quantile(0.999)),
            max: ms(self.max),
        }
    }
}

/// Latency percentiles in milliseconds.
struct Latency {
    mean: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl Latency {
    fn human(&self) -> String {
        format!(
            "mean {:.3}  p50 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
            self.mean, self.p50, self.p99, self.p999, self.max
        )
    }
    fn json(&self) -> String {
        format!(
            "{{\"mean\":{:.4},\"p50\":{:.4},\"p99\":{:.4},\"p999\":{:.4},\"max\":{:.4}}}",
            self.mean, self.p50, self.p99, self.p999, self.max
        )
    }
}

// ---------------------------------------------------------------------------
// Connections and the event loop
// ---------------------------------------------------------------------------

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest poll wait, so a worker notices that another one failed.
const TICK: Duration = Duration::from_millis(100);
/// A run with requests in flight and no event for this long has stalled.
const STALL: Duration = Duration::from_secs(10);

/// Connects with a clear message on failure.
fn connect(addr: &str) -> Result<StdStream, String> {
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
struct Totals {
    /// Replies received (each answers one request).
    replies: u64,
    /// GETs sent.
    gets: u64,
    tally: Tally,
}

/// One connection with its batch in flight.
struct Client {
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
struct Counter(AtomicU64);

/// What a worker gets besides its connections.
struct WorkerCtl {
    shape: Arc<Shape>,
    barrier: Arc<Barrier>,
    abort: Arc<AtomicBool>,
    progress: Arc<Counter>,
    /// Stop starting batches this long after the start.
    deadline: Option<Duration>,
}

struct WorkerReport {
    totals: Totals,
    hist: Histogram,
    finished: Instant,
}

/// Set by a worker that stops because another one failed; never shown.
const ABORTED: &str = "aborted";

/// One event-loop thread: runs its connections until their budgets are spent
/// or the deadline passed, and every batch in flight is answered.
fn worker(mut clients: Vec<Client>, ctl: WorkerCtl) -> Result<WorkerReport, String> {
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

/// One run of the generator over all connections.
struct Phase {
    /// For the progress line and messages.
    label: &'static str,
    pipeline: usize,
    ratio: Ratio,
    /// Per connection: requests to send and where keys come from.
    clients: Vec<(u64, Keys)>,
    deadline: Option<Duration>,
    progress: bool,
}

struct PhaseReport {
    totals: Totals,
    hist: Histogram,
    elapsed: Duration,
    cpu_user: Duration,
    cpu_sys: Duration,
}

/// User and system CPU time of this process.
fn cpu_time() -> (Duration, Duration) {
    // SAFETY: getrusage only writes the struct it is given, which is a
    // plain-data struct for which all-zero bytes are a valid value.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut ru) != 0 {
            return (Duration::ZERO, Duration::ZERO);
        }
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

/// Connects the phase's connections, runs them on `cfg.threads` workers,
/// shows progress, and merges what the workers measured.
fn run_phase(cfg: &Config, phase: Phase) -> Result<PhaseReport, String> {
    let shape = Arc::new(Shape::new(cfg.protocol, phase.ratio, phase.pipeline, cfg.value_size));
    log::debug!(
        "{}: window of {} requests, {} bytes per connection",
        phase.label,
        shape.digits.len(),
        shape.bytes.len()
    );

    let threads = cfg.threads;
    let mut groups: Vec<Vec<Client>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, (budget, keys)) in phase.clients.into_iter().enumerate() {
        let stream = connect(&cfg.addr)?;
        stream.set_nonblocking(true).map_err(|e| format!("{}: cannot set non-blocking: {e}", cfg.addr))?;
        let group = &mut groups[i % threads];
        group.push(Client {
            stream: TcpStream::from_std(stream),
            token: Token(group.len()),
            buf: shape.bytes.clone(),
            keys,
            next_slot: 0,
            budget,
            wpos: 0,
            wend: 0,
            owed: 0,
            sent_at: Instant::now(),
            scanner: Scanner::new(cfg.protocol),
            want_write: false,
        });
    }

    let barrier = Arc::new(Barrier::new(threads + 1));
    let abort = Arc::new(AtomicBool::new(false));
    let counters: Vec<Arc<Counter>> = (0..threads).map(|_| Arc::new(Counter::default())).collect();
    let (tx, rx) = mpsc::channel();
    let mut handles = Vec::with_capacity(threads);
    for (t, clients) in groups.into_iter().enumerate() {
        let ctl = WorkerCtl {
            shape: shape.clone(),
            barrier: barrier.clone(),
            abort: abort.clone(),
            progress: counters[t].clone(),
            deadline: phase.deadline,
        };
        let tx = tx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("bench-{t}"))
            .spawn(move || {
                // The receiver lives until every worker has reported.
                let _ = tx.send(worker(clients, ctl));
            })
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        handles.push(handle);
    }
    drop(tx);

    barrier.wait();
    let start = Instant::now();
    let (user0, sys0) = cpu_time();
    let mut progress = Progress::new(phase.progress, phase.label, start);
    let mut reports = Vec::with_capacity(threads);
    let mut error: Option<String> = None;
    let mut pending = threads;
    while pending > 0 {
        match rx.recv_timeout(progress.until_next()) {
            Ok(Ok(report)) => {
                reports.push(report);
                pending -= 1;
            }
            Ok(Err(e)) => {
                pending -= 1;
                abort.store(true, Ordering::Relaxed);
                if error.is_none() || error.as_deref() == Some(ABORTED) {
                    error = Some(e);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                progress.tick(counters.iter().map(|c| c.0.load(Ordering::Relaxed)).sum());
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    progress.finish();
    for h in handles {
        if h.join().is_err() && error.is_none() {
            error = Some("a worker thread panicked".into());
        }
    }
    let (user1, sys1) = cpu_time();
    if let Some(e) = error {
        return Err(e);
    }

    let mut totals = Totals::default();
    let mut hist = Histogram::new();
    let mut finished = start;
    for r in reports {
        totals.replies += r.totals.replies;
        totals.gets += r.totals.gets;
        totals.tally.merge(r.totals.tally);
        hist.merge(&r.hist);
        finished = finished.max(r.finished);
    }
    Ok(PhaseReport {
        totals,
        hist,
        elapsed: finished.duration_since(start),
        cpu_user: user1.saturating_sub(user0),
        cpu_sys: sys1.saturating_sub(sys0),
    })
}

/// The once-a-second progress line on stderr.
struct Progress {
    enabled: bool,
    label: &'static str,
    start: Instant,
    next: Instant,
    last_count: u64,
    last_at: Instant,
}

impl Progress {
    fn new(enabled: bool, label: &'static str, start: Instant) -> Progress {
        Progress { enabled, label, start, next: start + Duration::from_secs(1), last_count: 0, last_at: start }
    }

    fn until_next(&self) -> Duration {
        if self.enabled { self.next.saturating_duration_since(Instant::now()) } else { Duration::from_secs(3600) }
    }

    fn tick(&mut self, count: u64) {
        let now = Instant::now();
        self.next += Duration::from_secs(1);
        if !self.enabled {
            return;
        }
        let rate = (count - self.last_count.min(count)) as f64 / now.duration_since(self.last_at).as_secs_f64();
        eprint!(
            "\r{}: {:6.1} s  {:>12} requests  {:>10.0} req/s ",
            self.label,
            now.duration_since(self.start).as_secs_f64(),
            count,
            rate
        );
        self.last_count = count;
        self.last_at = now;
    }

    fn finish(&self) {
        if self.enabled && self.last_count > 0 {
            // On a terminal, erase the line; in a log, end it.
            eprint!("{}", if io::stderr().is_terminal() { "\r\x1b[2K" } else { "\n" });
        }
    }
}

// ---------------------------------------------------------------------------
// Load mode
// ---------------------------------------------------------------------------

/// Splits `total` into `parts` shares differing by at most one.
fn share(total: u64, parts: usize, i: usize) -> u64 {
    let parts = parts as u64;
    total / parts + u64::from((i as u64) < total % parts)
}

fn run_load(cfg: &Config) -> Result<(), String> {
    let encoded = Shape::encoded_len(cfg.protocol, cfg.ratio, cfg.pipeline, cfg.value_size);
    if encoded.saturating_mul(cfg.clients) > MAX_ENCODED {
        return Err(format!(
            "pre-encoded requests would take {} MiB ((pipeline + SET:GET period - 1) x request size x clients); \
             lower --pipeline, --value-size or --clients, or use a simpler --ratio",
            encoded.saturating_mul(cfg.clients) >> 20
        ));
    }

    if cfg.prefill {
        let n = cfg.clients;
        let mut first = 0;
        let clients = (0..n)
            .map(|i| {
                let count = share(cfg.keyspace, n, i);
                first += count;
                (count, Keys::Seq { next: first - count })
            })
            .collect();
        let phase = Phase {
            label: "prefill",
            pipeline: cfg.pipeline.max(64),
            ratio: Ratio { set: 1, get: 0 },
            clients,
            deadline: None,
            progress: !cfg.quiet,
        };
        let r = run_phase(cfg, phase)?;
        if r.totals.tally.errors > 0 {
            return Err(format!(
                "prefill: {} SETs failed, first: {}",
                r.totals.tally.errors,
                r.totals.tally.first_error.unwrap_or_default()
            ));
        }
        if !cfg.quiet {
            eprintln!("prefilled {} keys in {:.2} s", cfg.keyspace, r.elapsed.as_secs_f64());
        }
    }

    let budget = if cfg.duration.is_some() { None } else { Some(cfg.requests) };
    let clients = (0..cfg.clients)
        .map(|i| {
            let count = budget.map_or(u64::MAX, |b| share(b, cfg.clients, i));
            let mut seeder = Rng(cfg.seed ^ (i as u64).wrapping_mul(0xa076_1d64_78bd_642f));
            (count, Keys::Random { rng: Rng(seeder.next_u64()), n: cfg.keyspace })
        })
        .collect();
    let phase = Phase {
        label: "run",
        pipeline: cfg.pipeline,
        ratio: cfg.ratio,
        clients,
        deadline: cfg.duration,
        progress: !cfg.quiet,
    };
    let r = run_phase(cfg, phase)?;
    print_load(cfg, &r);
    Ok(())
}

fn print_load(cfg: &Config, r: &PhaseReport) {
    let t = &r.totals;
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    let rps = t.replies as f64 / secs;
    let cpu = r.cpu_user + r.cpu_sys;
    let cpu_per_req = if t.replies == 0 { 0.0 } else { cpu.as_secs_f64() * 1e6 / t.replies as f64 };
    let lat = r.hist.summary();
    let ratio = format!("{}:{}", cfg.ratio.set, cfg.ratio.get);
    if cfg.json {
        let mut s = String::new();
        let _ = write!(
            s,
            "{{\"mode\":\"load\",\"addr\":{},\"protocol\":\"{}\",\"clients\":{},\"pipeline\":{},\"threads\":{},\
             \"value_size\":{},\"keyspace\":{},\"ratio\":\"{}\",\"prefill\":{},\"requests\":{},\"errors\":{},\
             \"gets\":{},\"get_misses\":{},\"elapsed_s\":{:.6},\"rps\":{:.1},\"latency_ms\":{},\
             \"cpu_user_s\":{:.6},\"cpu_sys_s\":{:.6},\"cpu_us_per_request\":{:.4},\"first_error\":{}}}",
            json_str(&cfg.addr),
            cfg.protocol.name(),
            cfg.clients,
            cfg.pipeline,
            cfg.threads,
            cfg.value_size,
            cfg.keyspace,
            ratio,
            cfg.prefill,
            t.replies,
            t.tally.errors,
            t.gets,
            t.tally.nils,
            secs,
            rps,
            lat.json(),
            r.cpu_user.as_secs_f64(),
            r.cpu_sys.as_secs_f64(),
            cpu_per_req,
            t.tally.first_error.as_deref().map_or("null".into(), json_str),
        );
        println!("{s}");
        return;
    }
    println!(
        "kvstore-bench {} {}: {} clients, pipeline {}, {} thread(s), value {} B, keyspace {}, SET:GET {}",
        cfg.addr,
        cfg.protocol.name(),
        cfg.clients,
        cfg.pipeline,
        cfg.threads,
        cfg.value_size,
        cfg.keyspace,
        ratio
    );
    println!("requests     {} (errors {}, GETs {}, GET misses {})", t.replies, t.tally.errors, t.gets, t.tally.nils);
    if let Some(e) = &t.tally.first_error {
        println!("first error  {e}");
    }
    println!("elapsed      {secs:.3} s");
    println!("throughput   {rps:.0} req/s");
    println!("latency ms   {}", lat.human());
    println!(
        "client CPU   {:.3} µs/request (user {:.3} s, sys {:.3} s)",
        cpu_per_req,
        r.cpu_user.as_secs_f64(),
        r.cpu_sys.as_secs_f64()
    );
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------
// Replication lag mode
// ---------------------------------------------------------------------------

/// How long a write may take to become visible before it counts as a timeout.
const LAG_TIMEOUT: Duration = Duration::from_secs(5);

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

fn run_lag(cfg: &Config, lag_addr: &str) -> Result<(), String> {
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

fn print_lag(cfg: &Config, lag_addr: &str, hist: &Histogram, timeouts: u64, tally: &Tally) {
    let lat = hist.summary();
    if cfg.json {
        println!(
            "{{\"mode\":\"lag\",\"addr\":{},\"lag_addr\":{},\"protocol\":\"{}\",\"writes\":{},\"visible\":{},\
             \"timeouts\":{},\"write_errors\":{},\"lag_ms\":{},\"first_error\":{}}}",
            json_str(&cfg.addr),
            json_str(lag_addr),
            cfg.protocol.name(),
            cfg.requests,
            hist.total,
            timeouts,
            tally.errors,
            lat.json(),
            tally.first_error.as_deref().map_or("null".into(), json_str),
        );
        return;
    }
    println!("kvstore-bench replication lag: write on {} ({}), read on {lag_addr}", cfg.addr, cfg.protocol.name());
    println!(
        "writes       {} (visible {}, timeouts after {} s {}, write errors {})",
        cfg.requests,
        hist.total,
        LAG_TIMEOUT.as_secs(),
        timeouts,
        tally.errors
    );
    if let Some(e) = &tally.first_error {
        println!("first error  {e}");
    }
    println!("lag ms       {}", lat.human());
}

// ---------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------

fn run(args: Args) -> Result<(), String> {
    let cfg = Config::from_args(args)?;
    log::debug!("{cfg:?}");
    match cfg.lag_addr.clone() {
        Some(lag_addr) => run_lag(&cfg, &lag_addr),
        None => run_load(&cfg),
    }
}

fn main() -> ExitCode {
    env_logger::init();
    match run(argh::from_env()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kvstore-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `stream` to a fresh scanner in the given pieces.
    fn scan_pieces(proto: Protocol, pieces: &[&[u8]]) -> Result<(u64, Tally, bool), String> {
        let mut s = Scanner::new(proto);
        let mut tally = Tally::default();
        let mut replies = 0;
        for p in pieces {
            replies += s.feed(p, &mut tally)?;
        }
        Ok((replies, tally, s.mid_reply()))
    }

    /// Checks the scanner on `stream` whole, split in two at every offset,
    /// split in three at every pair of offsets, and byte by byte.
    fn check_splits(proto: Protocol, stream: &[u8], replies: u64, errors: u64, nils: u64) {
        let check = |pieces: &[&[u8]]| {
            let (r, t, mid) = scan_pieces(proto, pieces).unwrap_or_else(|e| panic!("{pieces:?}: {e}"));
            assert_eq!((r, t.errors, t.nils, mid), (replies, errors, nils, false), "pieces {pieces:?}");
        };
        check(&[stream]);
        for i in 0..=stream.len() {
            check(&[&stream[..i], &stream[i..]]);
            for j in i..=stream.len() {
                check(&[&stream[..i], &stream[i..j], &stream[j..]]);
            }
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        check(&bytes);
    }

    #[test]
    fn resp_replies_at_every_split() {
        let stream =
            b"+OK\r\n$5\r\nhello\r\n$-1\r\n-ERR wrong type\r\n:42\r\n$0\r\n\r\n$13\r\nwith\r\nnewline\r\n+OK\r\n";
        check_splits(Protocol::Resp, stream, 8, 1, 1);
    }

    #[test]
    fn text_replies_at_every_split() {
        let stream = b"OK\nsome value\nNOT_FOUND\nERR unknown command\nNOT_FOUNDX\nOK\r\nNOT_FOUND\r\n\n";
        check_splits(Protocol::Text, stream, 8, 1, 2);
    }

    #[test]
    fn partial_reply_is_not_counted() {
        let cases =
            [(Protocol::Resp, &b"+OK\r\n$5\r\nhello\r\n"[..], [5, 16]), (Protocol::Text, b"OK\nvalue\n", [3, 9])];
        for (proto, stream, ends) in cases {
            for cut in 0..=stream.len() {
                let (r, _, mid) = scan_pieces(proto, &[&stream[..cut]]).unwrap();
                assert_eq!(r, ends.iter().filter(|&&e| e <= cut).count() as u64, "{proto:?} cut {cut}");
                assert_eq!(mid, cut != 0 && !ends.contains(&cut), "{proto:?} cut {cut}");
            }
        }
    }

    #[test]
    fn long_lines_split_anywhere() {
        // Lines longer than what the scanner keeps: a long error and a long text value.
        let mut resp = b"-ERR ".to_vec();
        resp.extend(std::iter::repeat_n(b'e', 200));
        resp.extend_from_slice(b"\r\n$300\r\n");
        resp.extend(std::iter::repeat_n(b'v', 300));
        resp.extend_from_slice(b"\r\n");
        for i in 0..=resp.len() {
            let (r, t, _) = scan_pieces(Protocol::Resp, &[&resp[..i], &resp[i..]]).unwrap();
            assert_eq!((r, t.errors), (2, 1));
            assert!(t.first_error.unwrap().starts_with("ERR eee"));
        }
        let mut text = vec![b'x'; 500];
        text.extend_from_slice(b"\nNOT_FOUND\n");
        for i in 0..=text.len() {
            let (r, t, _) = scan_pieces(Protocol::Text, &[&text[..i], &text[i..]]).unwrap();
            assert_eq!((r, t.nils, t.errors), (2, 1, 0));
        }
    }

    #[test]
    fn scanner_rejects_garbage() {
        assert!(scan_pieces(Protocol::Resp, &[b"hello\r\n"]).is_err());
        assert!(scan_pieces(Protocol::Resp, &[b"$abc\r\n"]).is_err());
        assert!(scan_pieces(Protocol::Resp, &[b"$-2\r\n"]).is_err());
        assert!(scan_pieces(Protocol::Resp, &[b"$3\r\nabcXY"]).is_err());
        for bad in [&b"$3\r\nabcX\n"[..], b"$3\r\nabc\rX", b"$0\r\n\n\n"] {
            for i in 0..=bad.len() {
                assert!(scan_pieces(Protocol::Resp, &[&bad[..i], &bad[i..]]).is_err(), "{bad:?} split at {i}");
            }
        }
        assert!(
            scan_pieces(
                Protocol::Resp,
                &[b"$", b"1", b"0", b"0", b"0", b"0", b"0", b"0", b"0", b"0", b"0", b"0", b"0", b"0", b"0\r\n"]
            )
            .is_err()
        );
    }

    #[test]
    fn error_text_is_kept() {
        let (_, t, _) = scan_pieces(Protocol::Resp, &[b"+OK\r\n-ERR ", b"out of memory\r\n-ERR second\r\n"]).unwrap();
        assert_eq!(t.errors, 2);
        assert_eq!(t.first_error.as_deref(), Some("ERR out of memory"));
    }

    #[test]
    fn parse_reply_whole_and_partial() {
        let stream = b"+OK\r\n$5\r\nhello\r\n$-1\r\n-ERR bad\r\n";
        let mut pos = 0;
        let mut got = Vec::new();
        while pos < stream.len() {
            let (used, r) = parse_reply(Protocol::Resp, &stream[pos..]).unwrap().unwrap();
            got.push(match r {
                Reply::Value(x) => format!("value {}", String::from_utf8_lossy(&stream[pos..][x])),
                Reply::Error(x) => format!("error {}", String::from_utf8_lossy(&stream[pos..][x])),
                other => format!("{other:?}"),
            });
            // Every strict prefix of a reply is incomplete.
            for cut in 0..used {
                assert_eq!(parse_reply(Protocol::Resp, &stream[pos..pos + cut]).unwrap(), None);
            }
            pos += used;
        }
        assert_eq!(got, ["Status", "value hello", "Nil", "error ERR bad"]);
        assert_eq!(parse_reply(Protocol::Text, b"NOT_FOUND\n").unwrap(), Some((10, Reply::Nil)));
        assert_eq!(parse_reply(Protocol::Text, b"abc\r\n").unwrap(), Some((5, Reply::Value(0..3))));
        assert_eq!(parse_reply(Protocol::Text, b"ERR x\n").unwrap(), Some((6, Reply::Error(0..5))));
        assert_eq!(parse_reply(Protocol::Text, b"abc").unwrap(), None);
        assert!(parse_reply(Protocol::Resp, b"$3\r\nabcde\r\n").is_err());
    }

    #[test]
    fn histogram_buckets_are_contiguous_and_tight() {
        let mut prev_high = None;
        for i in 0..BUCKETS {
            let high = Histogram::bucket_high(i);
            let low = prev_high.map_or(0, |h: u64| h + 1);
            assert_eq!(Histogram::bucket(low), i);
            assert_eq!(Histogram::bucket(high), i);
            assert!((high - low) as f64 <= low as f64 / 128.0 + 1.0, "bucket {i}: {low}..={high}");
            prev_high = Some(high);
        }
        assert_eq!(prev_high, Some(u64::MAX));
    }

    #[test]
    fn histogram_percentiles() {
        let mut h = Histogram::new();
        assert_eq!(h.quantile(0.5), 0);
        for us in 1..=10_000u64 {
            h.record_n(us * 1000, 1);
        }
        let close = |got: u64, want: u64| (got as f64 - want as f64).abs() <= want as f64 * 0.01;
        assert!(close(h.quantile(0.5), 5_000_000), "{}", h.quantile(0.5));
        assert!(close(h.quantile(0.99), 9_900_000), "{}", h.quantile(0.99));
        assert!(close(h.quantile(0.999), 9_990_000), "{}", h.quantile(0.999));
        assert_eq!(h.quantile(1.0), 10_000_000);
        assert_eq!(h.max, 10_000_000);
        assert!((h.mean() - 5_000_500.0).abs() < 1.0);

        // Small values are exact; a merged histogram answers for both.
        let mut a = Histogram::new();
        a.record_n(100, 99);
        let mut b = Histogram::new();
        b.record_n(200, 1);
        a.merge(&b);
        assert_eq!(a.quantile(0.5), 100);
        assert_eq!(a.quantile(0.99), 100);
        assert_eq!(a.quantile(0.999), 200);
        assert_eq!(a.total, 100);
    }

    #[test]
    fn shape_patches_keys_in_place() {
        let ratio = Ratio { set: 1, get: 2 };
        let shape = Shape::new(Protocol::Resp, ratio, 4, 5);
        assert_eq!(shape.digits.len(), 4 + 3 - 1);
        assert_eq!(shape.bytes.len(), Shape::encoded_len(Protocol::Resp, ratio, 4, 5));
        let mut buf = shape.bytes.clone();
        put_digits(&mut buf[shape.digits[0]..shape.digits[0] + KEY_DIGITS], 42);
        let first = &buf[shape.starts[0]..shape.starts[1]];
        assert_eq!(first, b"*2\r\n$3\r\nGET\r\n$16\r\nkey:000000000042\r\n");
        let set = (0..3).find(|&i| ratio.op(i) == Op::Set).unwrap();
        assert_eq!(
            &shape.bytes[shape.starts[set]..shape.starts[set + 1]],
            b"*3\r\n$3\r\nSET\r\n$16\r\nkey:000000000000\r\n$5\r\n01234\r\n"
        );
        assert_eq!(shape.gets_before[6], 4);

        let text = Shape::new(Protocol::Text, Ratio { set: 1, get: 1 }, 1, 3);
        assert_eq!(text.bytes, b"GET key:000000000000\nPUT key:000000000000 012\n");
    }

    #[test]
    fn ratio_spreads_evenly() {
        let r: Ratio = "2:6".parse().unwrap();
        let r = r.reduced();
        assert_eq!(r, Ratio { set: 1, get: 3 });
        let sets = (0..r.period()).filter(|&j| r.op(j) == Op::Set).count();
        assert_eq!(sets, 1);
        assert!((0..1).all(|j| Ratio { set: 1, get: 0 }.op(j) == Op::Set));
        assert!((0..1).all(|j| Ratio { set: 0, get: 1 }.op(j) == Op::Get));
        assert!("0:0".parse::<Ratio>().is_err());
        assert!("1-1".parse::<Ratio>().is_err());
    }

    #[test]
    fn keys_are_uniform_and_in_range() {
        let mut rng = Rng(7);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            let k = rng.below(10);
            counts[k as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (9_000..11_000).contains(&c)), "{counts:?}");
        assert_eq!((0..4).map(|i| share(10, 4, i)).collect::<Vec<_>>(), [3, 3, 2, 2]);
    }
}
