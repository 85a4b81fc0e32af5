//! Protocol benches: parsing requests, encoding replies, and executing a
//! parsed request against a `Core` (no sockets).
//!
//! Groups:
//! - `text_parse`: one `PUT`/`GET` line, and pipelines of 16 and 100 lines
//!   parsed one after the other as the server does (offset advanced by
//!   `consumed`).
//! - `resp_parse`: one `SET`/`GET` multibulk, and pipelines of 16.
//! - `reply_encode`: `+OK`, a 32-byte bulk, an integer, RESP3 null, and a
//!   text value line.
//! - `execute`: `Node::handle` on a pre-parsed request against a store
//!   of 100k keys; writes go through the log (`--fsync no`), committed
//!   every 16 commands as the server's loop does once per iteration.
//!
//! Keys are 16 bytes and values 32, as `redis-benchmark -r 1000000 -d 32`.
//! Throughput is in commands (or replies) per second.

mod util;

use std::hint::black_box;
use std::time::{Duration, Instant};

use argh::FromArgs;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kvstore::config::{Args, Config};
use kvstore::node::{Node, Ready, Session};
use kvstore::proto::{Argv, Dialect, Limits, Parsed, resp, text};
use kvstore::storage::record::Op;
use util::{KEY_LEN, Rng, TempDir, key, value};

fn text_put(k: &[u8], v: &[u8]) -> Vec<u8> {
    [b"PUT ", k, b" ", v, b"\n"].concat()
}

fn text_get(k: &[u8]) -> Vec<u8> {
    [b"GET ", k, b"\n"].concat()
}

fn resp_req(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    resp::array(&mut out, args.len());
    for a in args {
        resp::bulk(&mut out, a);
    }
    out
}

/// `n` requests made by `make(i)`, back to back in one buffer.
fn pipeline(n: usize, make: impl Fn(u64) -> Vec<u8>) -> Vec<u8> {
    (0..n as u64).flat_map(make).collect()
}

type ParseFn = fn(&[u8], &mut Argv, &Limits) -> Result<Parsed, kvstore::proto::ProtoError>;

/// Parses every request in `buf` in order; returns how many.
#[inline]
fn parse_all(parse: ParseFn, buf: &[u8], argv: &mut Argv, limits: &Limits) -> usize {
    let mut pos = 0;
    let mut n = 0;
    while pos < buf.len() {
        match parse(&buf[pos..], argv, limits) {
            Ok(Parsed::Request { consumed }) => {
                pos += consumed;
                n += 1;
            }
            other => panic!("bench input does not parse: {other:?}"),
        }
    }
    n
}

fn bench_parse(c: &mut Criterion, group: &str, parse: ParseFn, cases: &[(&str, Vec<u8>, usize)]) {
    let limits = Limits::default();
    let mut argv = Argv::new();
    let mut g = c.benchmark_group(group);
    for (name, buf, count) in cases {
        assert_eq!(parse_all(parse, buf, &mut argv, &limits), *count, "{name}");
        g.throughput(Throughput::Elements(*count as u64));
        g.bench_function(*name, |b| b.iter(|| parse_all(parse, black_box(buf), &mut argv, &limits)));
    }
    g.finish();
}

fn text_parse(c: &mut Criterion) {
    let v = value(0);
    let put = |i| text_put(&key(b"key:", i), &v);
    let get = |i| text_get(&key(b"key:", i));
    let cases = [
        ("put", put(1), 1),
        ("get", get(1), 1),
        ("pipeline_get/16", pipeline(16, get), 16),
        ("pipeline_get/100", pipeline(100, get), 100),
        ("pipeline_put/16", pipeline(16, put), 16),
        ("pipeline_put/100", pipeline(100, put), 100),
    ];
    bench_parse(c, "text_parse", text::parse, &cases);
}

fn resp_parse(c: &mut Criterion) {
    let v = value(0);
    let set = |i| resp_req(&[b"SET", &key(b"key:", i), &v]);
    let get = |i| resp_req(&[b"GET", &key(b"key:", i)]);
    let cases = [
        ("set", set(1), 1),
        ("get", get(1), 1),
        ("pipeline_set/16", pipeline(16, set), 16),
        ("pipeline_get/16", pipeline(16, get), 16),
    ];
    bench_parse(c, "resp_parse", resp::parse, &cases);
}

fn reply_encode(c: &mut Criterion) {
    let v = value(0);
    let mut out = Vec::with_capacity(256);
    let mut g = c.benchmark_group("reply_encode");
    g.throughput(Throughput::Elements(1));
    macro_rules! enc {
        ($name:expr, |$o:ident| $e:expr) => {
            g.bench_function($name, |b| {
                b.iter(|| {
                    out.clear();
                    let $o = &mut out;
                    $e;
                    black_box(&out);
                })
            });
        };
    }
    enc!("resp_ok", |o| resp::simple(o, black_box(b"OK")));
    enc!("resp_bulk_32", |o| resp::bulk(o, black_box(&v)));
    enc!("resp_int", |o| resp::int(o, black_box(1_234_567)));
    enc!("resp3_null", |o| resp::null(o, black_box(true)));
    enc!("text_line_32", |o| text::line(o, black_box(&v)));
    g.finish();
}

/// Keys preloaded into the store of the `execute` group.
const EXEC_KEYS: u64 = 100_000;
/// Distinct pre-parsed requests cycled through (keys spread over the store).
const EXEC_REQUESTS: usize = 1024;
/// Commands per simulated loop iteration: the log is committed and the
/// store's undo journal dropped after this many.
const BATCH: u64 = 16;

/// A request parsed once, executed many times.
struct Prepared {
    dialect: Dialect,
    buf: Vec<u8>,
    argv: Argv,
}

impl Prepared {
    fn new(buf: Vec<u8>) -> Prepared {
        let mut argv = Argv::new();
        let dialect = Dialect::of(&buf, &Limits::default());
        let parsed = dialect.parse(&buf, &mut argv, &Limits::default());
        assert_eq!(parsed, Ok(Parsed::Request { consumed: buf.len() }));
        Prepared { dialect, buf, argv }
    }
}

/// A `Node` as `Server::start` opens one, with `EXEC_KEYS` keys written
/// through the normal write path.
fn node(dir: &TempDir) -> Node {
    let data = dir.path().to_str().expect("utf-8 temp path");
    let args = Args::from_args(&["kvstore-server"], &["0", "--dir", data, "--fsync", "no"]).expect("arguments");
    let cfg = Config::from_args(args).expect("config");
    let (mut node, _) = Node::open(cfg, 1, Instant::now()).expect("open the node");
    let v = value(0);
    for i in 0..EXEC_KEYS {
        node.local_write(Op::Put, &key(b"key:", i), &v).expect("preload write");
        if i % 1024 == 1023 {
            commit(&mut node);
        }
    }
    commit(&mut node);
    node
}

/// The end of a loop iteration, as the server has it: the log commit.
fn commit(node: &mut Node) {
    let mut ready = Ready::default();
    node.before_sleep(Instant::now(), &mut ready);
    assert!(!matches!(ready.commit, kvstore::node::Commit::Failed(_)), "commit");
}

fn execute(c: &mut Criterion) {
    let mut dir = TempDir::new("exec");
    let mut node = node(&dir);
    let mut session = Session::default();
    let mut out = Vec::with_capacity(1 << 16);
    let mut rng = Rng::new(7);
    let mut hit = || key(b"key:", rng.below(EXEC_KEYS as usize) as u64);
    let hits: Vec<[u8; KEY_LEN]> = (0..EXEC_REQUESTS).map(|_| hit()).collect();
    let prepare = |make: &dyn Fn(usize) -> Vec<u8>| -> Vec<Prepared> {
        (0..EXEC_REQUESTS).map(|i| Prepared::new(make(i))).collect()
    };
    let (v0, v) = (value(0), value(1));
    // (name, writes, requests, what every reply starts with)
    let cases: Vec<(&str, bool, Vec<Prepared>, &[u8])> = vec![
        ("resp_get_hit", false, prepare(&|i| resp_req(&[b"GET", &hits[i]])), b"$32\r\n"),
        ("resp_get_miss", false, prepare(&|i| resp_req(&[b"GET", &key(b"nok:", i as u64)])), b"$-1\r\n"),
        ("text_get_hit", false, prepare(&|i| text_get(&hits[i])), &v0),
        ("resp_set_overwrite", true, prepare(&|i| resp_req(&[b"SET", &hits[i], &v])), b"+OK\r\n"),
        ("text_put_overwrite", true, prepare(&|i| text_put(&hits[i], &v)), b"OK\n"),
    ];
    // Each request gets the reply it should, before anything is timed.
    for (name, _, reqs, want) in &cases {
        for r in reqs {
            node.handle(&mut session, r.dialect, &r.argv, &r.buf, &mut out);
            assert!(out.starts_with(want), "{name}: {:?}", out.escape_ascii().to_string());
            out.clear();
        }
    }
    commit(&mut node);

    let mut g = c.benchmark_group("execute");
    g.throughput(Throughput::Elements(1));
    for (name, writes, reqs, _) in &cases {
        g.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    // Stretches of at most 64k commands, so the log can be
                    // swapped for an empty one between them, untimed.
                    let n = (iters - done).min(1 << 16);
                    let start = Instant::now();
                    for i in 0..n {
                        let r = &reqs[(done + i) as usize % EXEC_REQUESTS];
                        node.handle(&mut session, r.dialect, &r.argv, &r.buf, &mut out);
                        out.clear();
                        if *writes && (done + i) % BATCH == BATCH - 1 {
                            commit(&mut node);
                        }
                    }
                    if *writes {
                        commit(&mut node);
                    }
                    timed += start.elapsed();
                    done += n;
                    util::rotate_if_big(node.log_mut(), &mut dir, "exec");
                }
                timed
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = util::config();
    targets = text_parse, resp_parse, reply_encode, execute
}
criterion_main!(benches);
