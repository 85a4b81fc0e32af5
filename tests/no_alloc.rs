//! The hot path does no heap allocation per command once warmed up.
//!
//! A counting `#[global_allocator]` wraps the system allocator. It counts
//! only on threads that were given a counter slot, so the server's thread
//! is measured and the test's own client code (which allocates freely to
//! build requests) is not. Each test runs a real [`Server`] in-process on a
//! thread of its own, talks to it over TCP with pipelines 16 deep, in RESP
//! and in the text protocol, and compares the server thread's count before
//! and after a run of commands.
//!
//! Why "once warmed up": buffers grow to their working size on first use
//! (a connection's input and output, the log's staging buffer, the store's
//! undo journal, mio's event list) and are kept; the warm-up drives every
//! one of them to the size the measured run needs.
//!
//! To see where the server thread allocates during a measured run, set
//! `KVSTORE_ALLOC_TRACE=1` and run with `--nocapture`: every counted
//! allocation in the window prints a backtrace.
//!
//! The server threads are never stopped (the server stops only on SIGTERM
//! or SIGINT, which would stop the test process too); they end when the
//! test process exits.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use argh::FromArgs;
use kvstore::config::{Args, Config};
use kvstore::server::Server;

// ------------------------------------------------------------ the allocator

/// Counter slots; slot 0 means "not counted".
const SLOTS: usize = 16;
static COUNTS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(1);
/// Slot whose allocations print a backtrace (0: none). See the module docs.
static TRACE_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's counter slot. `const` and `Copy`, so reading it never
    /// allocates and it has no destructor to run.
    static SLOT: Cell<usize> = const { Cell::new(0) };
    /// Set while a backtrace is being printed, whose own allocations must
    /// neither be counted nor traced.
    static TRACING: Cell<bool> = const { Cell::new(false) };
}

struct Counting;

impl Counting {
    fn note(size: usize) {
        let slot = SLOT.try_with(Cell::get).unwrap_or(0);
        if slot == 0 || TRACING.try_with(Cell::get).unwrap_or(true) {
            return;
        }
        COUNTS[slot].fetch_add(1, Ordering::SeqCst);
        if TRACE_SLOT.load(Ordering::Relaxed) == slot {
            TRACING.set(true);
            let bt = std::backtrace::Backtrace::force_capture();
            eprintln!("--- allocation of {size} bytes on the server thread:\n{bt}");
            TRACING.set(false);
        }
    }
}

// SAFETY: every call is forwarded unchanged to `System`; counting touches
// only atomics and `const` thread-locals, neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Counting::note(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Counting::note(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Counting::note(new_size);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Gives the calling thread a counter slot of its own and returns it.
fn count_this_thread() -> usize {
    let slot = NEXT_SLOT.fetch_add(1, Ordering::SeqCst);
    assert!(slot < SLOTS, "more counted threads than counter slots");
    SLOT.set(slot);
    slot
}

fn count(slot: usize) -> u64 {
    COUNTS[slot].load(Ordering::SeqCst)
}

// ------------------------------------------------------------ the server

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "kvstore-noalloc-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts a server on a free port, in-process, on a thread whose
/// allocations are counted. Returns its address and counter slot.
fn start_server(dir: &TempDir) -> (SocketAddr, usize) {
    let data = dir.0.join("data");
    let data = data.to_str().expect("utf-8 temp path");
    let args = Args::from_args(&["kvstore-server"], &["0", "--dir", data, "--fsync", "no"]).expect("arguments parse");
    let cfg = Config::from_args(args).expect("valid config");
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("kvstore-server".into())
        .spawn(move || {
            let mut server = match Server::start(cfg) {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let slot = count_this_thread();
            let _ = tx.send(Ok((server.local_addr(), slot)));
            if let Err(e) = server.run() {
                panic!("server stopped: {e}");
            }
        })
        .expect("spawn the server thread");
    rx.recv_timeout(Duration::from_secs(20)).expect("server thread reports").expect("server starts")
}

// ------------------------------------------------------------ the client

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Resp,
    Text,
}

#[derive(Clone, Copy, Debug)]
enum Cmd {
    /// GET of key `i`, which exists.
    Get(usize),
    /// GET of a key that does not exist.
    Miss(usize),
    /// SET key `i` to a new value of the same size (new key the first time).
    Set(usize),
}

/// Commands per pipeline: what one round trip carries.
const DEPTH: usize = 16;
/// Keys in the working set.
const KEYS: usize = 1000;
const KEY_LEN: usize = 16;
const VALUE_LEN: usize = 32;

fn key(i: usize) -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    k.copy_from_slice(format!("key:{i:012}").as_bytes());
    k
}

fn missing_key(i: usize) -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    k.copy_from_slice(format!("nok:{i:012}").as_bytes());
    k
}

/// One connection; its buffers are reused from pipeline to pipeline.
struct Client {
    stream: TcpStream,
    proto: Proto,
    req: Vec<u8>,
    want: Vec<u8>,
    got: Vec<u8>,
}

/// What the server should hold: the value of every key, `None` before its first SET.
struct Model {
    values: Vec<Option<[u8; VALUE_LEN]>>,
    generation: u64,
}

impl Model {
    fn new() -> Model {
        Model { values: vec![None; KEYS], generation: 0 }
    }
    /// A new value for key `i`, always `VALUE_LEN` bytes, never equal to the last one.
    fn next_value(&mut self, i: usize) -> [u8; VALUE_LEN] {
        self.generation += 1;
        let mut v = [0u8; VALUE_LEN];
        v.copy_from_slice(format!("v{:015}-{i:015}", self.generation).as_bytes());
        self.values[i] = Some(v);
        v
    }
}

fn resp_request(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

impl Client {
    fn connect(addr: SocketAddr, proto: Proto) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        // A server that stops answering fails the test instead of hanging it.
        stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        Client { stream, proto, req: Vec::new(), want: Vec::new(), got: Vec::new() }
    }

    /// Sends `cmds` as one pipeline and checks every reply byte for byte.
    fn pipeline(&mut self, cmds: &[Cmd], model: &mut Model) {
        self.req.clear();
        self.want.clear();
        for &cmd in cmds {
            match (cmd, self.proto) {
                (Cmd::Get(i), Proto::Resp) => {
                    resp_request(&mut self.req, &[b"GET", &key(i)]);
                    match model.values[i] {
                        Some(v) => resp_bulk_reply(&mut self.want, &v),
                        None => self.want.extend_from_slice(b"$-1\r\n"),
                    }
                }
                (Cmd::Get(i), Proto::Text) => {
                    self.req.extend_from_slice(b"GET ");
                    self.req.extend_from_slice(&key(i));
                    self.req.push(b'\n');
                    match model.values[i] {
                        Some(v) => {
                            self.want.extend_from_slice(&v);
                            self.want.push(b'\n');
                        }
                        None => self.want.extend_from_slice(b"NOT_FOUND\n"),
                    }
                }
                (Cmd::Miss(i), Proto::Resp) => {
                    resp_request(&mut self.req, &[b"GET", &missing_key(i)]);
                    self.want.extend_from_slice(b"$-1\r\n");
                }
                (Cmd::Miss(i), Proto::Text) => {
                    self.req.extend_from_slice(b"GET ");
                    self.req.extend_from_slice(&missing_key(i));
                    self.req.push(b'\n');
                    self.want.extend_from_slice(b"NOT_FOUND\n");
                }
                (Cmd::Set(i), Proto::Resp) => {
                    let v = model.next_value(i);
                    resp_request(&mut self.req, &[b"SET", &key(i), &v]);
                    self.want.extend_from_slice(b"+OK\r\n");
                }
                (Cmd::Set(i), Proto::Text) => {
                    let v = model.next_value(i);
                    self.req.extend_from_slice(b"PUT ");
                    self.req.extend_from_slice(&key(i));
                    self.req.push(b' ');
                    self.req.extend_from_slice(&v);
                    self.req.push(b'\n');
                    self.want.extend_from_slice(b"OK\n");
                }
            }
        }
        self.stream.write_all(&self.req).expect("send pipeline");
        self.got.resize(self.want.len(), 0);
        self.stream.read_exact(&mut self.got).expect("read replies");
        assert_eq!(
            self.got.escape_ascii().to_string(),
            self.want.escape_ascii().to_string(),
            "{:?} replies to {cmds:?}",
            self.proto
        );
    }

    /// Runs `cmds` in pipelines of `DEPTH`.
    fn run(&mut self, cmds: &[Cmd], model: &mut Model) {
        for chunk in cmds.chunks(DEPTH) {
            self.pipeline(chunk, model);
        }
    }
}

fn resp_bulk_reply(out: &mut Vec<u8>, v: &[u8]) {
    out.extend_from_slice(format!("${}\r\n", v.len()).as_bytes());
    out.extend_from_slice(v);
    out.extend_from_slice(b"\r\n");
}

/// A running server, one connection per protocol, and the model.
struct Bench {
    _dir: TempDir,
    slot: usize,
    clients: [Client; 2],
    model: Model,
}

impl Bench {
    /// Starts a server and warms it up: every key SET (new keys, which must
    /// allocate: that proves the counter sees the server thread), then
    /// rounds of GETs, misses and overwrites over both protocols so that
    /// every buffer reaches the size the measured runs need.
    fn warmed_up(tag: &str) -> Bench {
        let dir = TempDir::new(tag);
        let (addr, slot) = start_server(&dir);
        let clients = [Client::connect(addr, Proto::Resp), Client::connect(addr, Proto::Text)];
        let mut b = Bench { _dir: dir, slot, clients, model: Model::new() };

        let before = count(slot);
        let sets: Vec<Cmd> = (0..KEYS).map(Cmd::Set).collect();
        b.clients[0].run(&sets, &mut b.model);
        let new_keys = count(slot) - before;
        assert!(
            new_keys >= KEYS as u64,
            "inserting {KEYS} new keys counted only {new_keys} allocations on the server thread: \
             the counting allocator is not seeing the server"
        );

        for _ in 0..3 {
            for c in 0..2 {
                let gets: Vec<Cmd> = (0..KEYS).map(Cmd::Get).collect();
                let misses: Vec<Cmd> = (0..KEYS).map(Cmd::Miss).collect();
                b.clients[c].run(&sets, &mut b.model);
                b.clients[c].run(&gets, &mut b.model);
                b.clients[c].run(&misses, &mut b.model);
                b.clients[c].run(&mixed(KEYS, 0), &mut b.model);
            }
        }
        b
    }

    /// Runs `per_proto` commands made by `make` on each protocol, pipelines
    /// alternating between the two connections, and returns the server
    /// thread's allocations meanwhile.
    fn measure(&mut self, per_proto: usize, make: impl Fn(usize) -> Cmd) -> u64 {
        let cmds: Vec<Cmd> = (0..per_proto).map(make).collect();
        if std::env::var_os("KVSTORE_ALLOC_TRACE").is_some() {
            TRACE_SLOT.store(self.slot, Ordering::SeqCst);
        }
        let before = count(self.slot);
        for chunk in cmds.chunks(DEPTH) {
            for c in 0..2 {
                self.clients[c].pipeline(chunk, &mut self.model);
            }
        }
        let after = count(self.slot);
        TRACE_SLOT.store(0, Ordering::SeqCst);
        after - before
    }
}

/// GETs: three hits for every miss, keys spread over the working set.
fn mixed(n: usize, seed: usize) -> Vec<Cmd> {
    (0..n).map(|i| get_or_miss(i + seed)).collect()
}

fn get_or_miss(i: usize) -> Cmd {
    let k = (i * 7919) % KEYS;
    if i % 4 == 3 { Cmd::Miss(k) } else { Cmd::Get(k) }
}

/// Commands measured per test, split evenly over RESP and text.
const MEASURED: usize = 20_000;
/// One-time growth tolerated over a whole measured run (not per command).
const SLACK: u64 = 5;

#[test]
fn counter_sees_only_marked_threads() {
    let slot = count_this_thread();
    let before = count(slot);
    let v = std::hint::black_box(vec![1u8; 100]);
    assert_eq!(count(slot) - before, 1, "one Vec, one allocation");
    drop(v);
    let before = count(slot);
    std::thread::spawn(|| std::hint::black_box(vec![1u8; 100])).join().unwrap();
    // Spawning allocates on this thread; the child's Vec must not count here.
    let spawned = count(slot) - before;
    let before = count(slot);
    std::thread::spawn(|| std::hint::black_box(vec![1u8; 100]).len()).join().unwrap();
    assert_eq!(count(slot) - before, spawned, "another thread's allocations counted here");
}

#[test]
fn gets_do_not_allocate() {
    let mut b = Bench::warmed_up("get");
    let allocs = b.measure(MEASURED / 2, get_or_miss);
    eprintln!("GET (3 hits : 1 miss), {MEASURED} commands over RESP and text: {allocs} allocations");
    assert!(allocs <= SLACK, "{MEASURED} GETs allocated {allocs} times on the server thread (slack {SLACK})");
}

/// A same-size overwrite reuses the entry's bytes (its old value goes to
/// the store's reused undo scratch buffer), so it allocates nothing.
#[test]
fn set_overwrites_do_not_allocate() {
    let mut b = Bench::warmed_up("set0");
    let allocs = b.measure(MEASURED / 2, |i| Cmd::Set((i * 7919) % KEYS));
    eprintln!("SET overwrite, same size, {MEASURED} commands over RESP and text: {allocs} allocations");
    assert!(allocs <= SLACK, "{MEASURED} SET overwrites allocated {allocs} times on the server thread (slack {SLACK})");
}
