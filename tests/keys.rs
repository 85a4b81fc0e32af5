//! The keyspace commands (UNLINK, TOUCH, TYPE, RENAME, RENAMENX, COPY,
//! RANDOMKEY, KEYS, SCAN, FLUSHALL/FLUSHDB, MEMORY USAGE) through the real
//! binary and real clients: the `redis` crate, redis-cli and redis-py.
//!
//! The reference is a real `redis-server`, started here on a Unix socket
//! in a temp dir (no TCP port, so no port to race for): the same commands
//! go to both and the replies must be the same, except where kvstore
//! differs on purpose (MEMORY USAGE's figure and HELP text, other types
//! than strings, other databases than 0).
//!
//! redis-server, redis-cli and redis-py are required (scripts/test.sh
//! installs them): when missing, the tests that need them fail and say
//! what to install, rather than pass without running.

mod common;
use common::*;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use redis::Value;

// ---------------------------------------------------------------- helpers

/// A throwaway redis-server on a Unix socket in its own temp dir; killed
/// (it alone, by its pid) when dropped.
struct RedisRef {
    child: Child,
    sock: PathBuf,
    _dir: TempDir,
}

impl RedisRef {
    #[track_caller]
    fn start() -> RedisRef {
        let dir = TempDir::new("redis-ref");
        let sock = dir.path().join("redis.sock");
        let log = std::fs::File::create(dir.path().join("redis.log")).expect("redis log");
        let spawned = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&sock)
            .args(["--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(c) => c,
            Err(e) => panic!("redis-server not found ({e}): install redis-server (scripts/test.sh does)"),
        };
        let r = RedisRef { child, sock, _dir: dir };
        wait_for("redis-server to listen on its socket", || std::os::unix::net::UnixStream::connect(&r.sock).is_ok());
        r
    }

    #[track_caller]
    fn connect(&self, resp3: bool) -> redis::Connection {
        let query = if resp3 { "?protocol=resp3" } else { "" };
        open(&format!("redis+unix://{}{query}", self.sock.display()))
    }
}

impl Drop for RedisRef {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[track_caller]
fn open(url: &str) -> redis::Connection {
    let client = redis::Client::open(url).expect("redis url");
    let con = client.get_connection_with_timeout(DEADLINE).expect("redis connection");
    con.set_read_timeout(Some(DEADLINE)).expect("read timeout");
    con.set_write_timeout(Some(DEADLINE)).expect("write timeout");
    con
}

#[track_caller]
fn connect(srv: &Server, resp3: bool) -> redis::Connection {
    open(&format!("redis://127.0.0.1:{}/{}", srv.port, if resp3 { "?protocol=resp3" } else { "" }))
}

fn cmd(args: &[&[u8]]) -> redis::Cmd {
    let mut c = redis::cmd(&String::from_utf8_lossy(args[0]));
    for a in &args[1..] {
        c.arg(*a);
    }
    c
}

/// A reply, or the error as it was on the wire (minus the `-`).
fn reply(con: &mut redis::Connection, args: &[&[u8]]) -> Result<Value, String> {
    cmd(args)
        .query::<Value>(con)
        .map_err(|e| format!("{} {}", e.code().unwrap_or("<no code>"), e.detail().unwrap_or("")))
}

/// Runs a command that must succeed.
#[track_caller]
fn ok(con: &mut redis::Connection, args: &[&[u8]]) -> Value {
    match reply(con, args) {
        Ok(v) => v,
        Err(e) => panic!("{:?}: {e}", args.iter().map(|a| String::from_utf8_lossy(a)).collect::<Vec<_>>()),
    }
}

fn bulks(v: &Value) -> BTreeSet<Vec<u8>> {
    match v {
        Value::Array(items) | Value::Set(items) => items
            .iter()
            .map(|i| match i {
                Value::BulkString(b) => b.clone(),
                other => panic!("not a bulk string: {other:?}"),
            })
            .collect(),
        other => panic!("not an array: {other:?}"),
    }
}

/// A SCAN reply: the cursor and the keys.
#[track_caller]
fn scan_reply(v: &Value) -> (u64, BTreeSet<Vec<u8>>) {
    match v {
        Value::Array(parts) if parts.len() == 2 => {
            let Value::BulkString(c) = &parts[0] else { panic!("cursor not a bulk: {v:?}") };
            let cursor = String::from_utf8_lossy(c).parse().expect("a numeric cursor");
            (cursor, bulks(&parts[1]))
        }
        other => panic!("not a SCAN reply: {other:?}"),
    }
}

/// A whole SCAN with these options, calls until the cursor is 0; `between`
/// runs after each call that does not end the scan.
#[track_caller]
fn scan_all(
    con: &mut redis::Connection,
    opts: &[&[u8]],
    mut between: impl FnMut(&mut redis::Connection),
) -> BTreeSet<Vec<u8>> {
    let (mut cursor, mut all) = (0u64, BTreeSet::new());
    for _ in 0..1_000_000 {
        let c = cursor.to_string();
        let args: Vec<&[u8]> = [&b"SCAN"[..], c.as_bytes()].into_iter().chain(opts.iter().copied()).collect();
        let (next, keys) = scan_reply(&ok(con, &args));
        all.extend(keys);
        if next == 0 {
            return all;
        }
        cursor = next;
        between(con);
    }
    panic!("the scan never ended");
}

/// How a reply is compared with Redis's.
#[derive(Clone, Copy)]
enum Cmp {
    Exact,
    /// An array whose order is unspecified (KEYS).
    Sorted,
    /// A SCAN reply: the cursor must be 0 on both (one call does it all)
    /// and the keys the same set.
    Scan,
}

/// Sends each command to kvstore and to Redis and compares the replies.
#[track_caller]
fn same_as_redis(kv: &mut redis::Connection, rd: &mut redis::Connection, script: &[(Cmp, &[&str])]) {
    for (how, args) in script {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let (a, b) = (reply(kv, &args), reply(rd, &args));
        let same = match (how, &a, &b) {
            (Cmp::Sorted, Ok(x), Ok(y)) => bulks(x) == bulks(y),
            (Cmp::Scan, Ok(x), Ok(y)) => {
                let ((cx, kx), (cy, ky)) = (scan_reply(x), scan_reply(y));
                cx == 0 && cy == 0 && kx == ky
            }
            _ => a == b,
        };
        assert!(same, "{args:?}:\n kvstore: {a:?}\n redis:   {b:?}", args = String::from_utf8_lossy(&args.join(&b' ')));
    }
}

// ---------------------------------------------------------------- replies as Redis gives them

/// Every edge case of the keyspace commands, replies compared with a real
/// redis-server's, in RESP2 and RESP3.
#[test]
fn replies_match_redis() {
    use Cmp::*;
    let rd = RedisRef::start();
    let (srv, _dir) = Server::start(&[]);
    let script: &[(Cmp, &[&str])] = &[
        (Exact, &["FLUSHALL"]),
        (Exact, &["SET", "foo", "bar"]),
        (Exact, &["SET", "k2", "hello"]),
        // TYPE
        (Exact, &["TYPE", "foo"]),
        (Exact, &["TYPE", "nokey"]),
        (Exact, &["TYPE"]),
        // RENAME / RENAMENX
        (Exact, &["RENAME", "nokey", "x"]),
        (Exact, &["RENAME", "nokey", "nokey"]),
        (Exact, &["RENAME", "foo", "foo"]),
        (Exact, &["RENAMENX", "foo", "foo"]),
        (Exact, &["RENAMENX", "nokey", "x"]),
        (Exact, &["RENAME", "foo"]),
        (Exact, &["RENAME", "foo", "a", "b"]),
        (Exact, &["RENAME", "k2", "k3"]),
        (Exact, &["GET", "k3"]),
        (Exact, &["EXISTS", "k2"]),
        (Exact, &["RENAMENX", "k3", "foo"]),
        (Exact, &["RENAMENX", "k3", "k4"]),
        (Exact, &["GET", "k4"]),
        (Exact, &["RENAME", "k4", "foo"]),
        (Exact, &["GET", "foo"]),
        (Exact, &["EXISTS", "k4"]),
        // COPY
        (Exact, &["SET", "src", "value"]),
        (Exact, &["COPY", "src", "src"]),
        (Exact, &["COPY", "nokey", "nokey"]),
        (Exact, &["COPY", "src", "src", "DB", "0"]),
        (Exact, &["COPY", "src", "dst", "DB", "abc"]),
        (Exact, &["COPY", "src", "dst", "DB", "99999999999"]),
        (Exact, &["COPY", "src", "dst", "DB", "99999999999999999999"]),
        (Exact, &["COPY", "src", "dst", "DB", "-1"]),
        (Exact, &["COPY", "src", "dst", "DB"]),
        (Exact, &["COPY", "src", "dst", "bogus"]),
        (Exact, &["COPY", "src", "dst", "DB", "REPLACE"]),
        (Exact, &["COPY", "src"]),
        (Exact, &["COPY", "nokey", "dst"]),
        (Exact, &["COPY", "src", "dst"]),
        (Exact, &["GET", "dst"]),
        (Exact, &["SET", "src", "changed"]),
        (Exact, &["COPY", "src", "dst"]),
        (Exact, &["GET", "dst"]),
        (Exact, &["COPY", "src", "dst", "db", "0", "replace"]),
        (Exact, &["GET", "dst"]),
        (Exact, &["COPY", "src", "dst", "REPLACE", "REPLACE"]),
        // UNLINK, TOUCH, EXISTS
        (Exact, &["TOUCH", "src", "src", "nokey"]),
        (Exact, &["TOUCH"]),
        (Exact, &["UNLINK", "src", "src", "nokey"]),
        (Exact, &["UNLINK"]),
        (Exact, &["EXISTS", "src", "dst", "dst"]),
        // KEYS
        (Sorted, &["KEYS", "*"]),
        (Sorted, &["KEYS", "f*"]),
        (Sorted, &["KEYS", "?st"]),
        (Sorted, &["KEYS", "nomatch*"]),
        (Exact, &["KEYS"]),
        (Exact, &["KEYS", "a", "b"]),
        // SCAN
        (Scan, &["SCAN", "0", "COUNT", "1000"]),
        (Scan, &["SCAN", "0", "MATCH", "f*", "COUNT", "1000"]),
        (Scan, &["SCAN", "0", "COUNT", "1000", "TYPE", "string"]),
        (Scan, &["SCAN", "0", "COUNT", "1000", "TYPE", "STRING"]),
        (Scan, &["SCAN", "0", "COUNT", "1000", "TYPE", "hash"]),
        (Scan, &["SCAN", "0", "COUNT", "1000", "TYPE", "nosuchtype"]),
        (Scan, &["SCAN", "0", "COUNT", "1", "COUNT", "1000"]),
        (Scan, &["SCAN", "", "COUNT", "1000"]),
        (Scan, &["SCAN", "+0", "COUNT", "1000"]),
        (Exact, &["SCAN", "x"]),
        (Exact, &["SCAN", " 1"]),
        (Exact, &["SCAN", "18446744073709551616"]),
        (Exact, &["SCAN", "0", "COUNT", "0"]),
        (Exact, &["SCAN", "0", "COUNT", "-1"]),
        (Exact, &["SCAN", "0", "COUNT", "x"]),
        (Exact, &["SCAN", "0", "MATCH"]),
        (Exact, &["SCAN", "0", "bogus", "1"]),
        (Exact, &["SCAN"]),
        // MEMORY (the figure itself is kvstore's own: see memory_usage_*)
        (Exact, &["MEMORY", "USAGE", "nokey"]),
        (Exact, &["MEMORY", "USAGE", "foo", "SAMPLES", "-1"]),
        (Exact, &["MEMORY", "USAGE", "foo", "SAMPLES", "x"]),
        (Exact, &["MEMORY", "USAGE", "foo", "bogus"]),
        (Exact, &["MEMORY", "USAGE", "foo", "SAMPLES"]),
        (Exact, &["MEMORY", "USAGE"]),
        (Exact, &["MEMORY", "nosuchsub"]),
        (Exact, &["MEMORY"]),
        (Exact, &["MEMORY", "HELP", "extra"]),
        // RANDOMKEY
        (Exact, &["RANDOMKEY", "x"]),
        (Exact, &["FLUSHDB", "SYNC"]),
        (Exact, &["RANDOMKEY"]),
        (Exact, &["SET", "only", "1"]),
        (Exact, &["RANDOMKEY"]),
        (Exact, &["DEL", "only"]),
        (Exact, &["RANDOMKEY"]),
        // FLUSHALL / FLUSHDB
        (Exact, &["FLUSHALL", "x"]),
        (Exact, &["FLUSHALL", "ASYNC", "SYNC"]),
        (Exact, &["FLUSHALL", "async"]),
        (Exact, &["FLUSHDB", "sync"]),
        (Exact, &["FLUSHDB", "bogus"]),
        (Exact, &["FLUSHDB"]),
        (Exact, &["DBSIZE"]),
    ];
    for resp3 in [false, true] {
        let (mut kv, mut r) = (connect(&srv, resp3), rd.connect(resp3));
        same_as_redis(&mut kv, &mut r, script);
    }
}

/// KEYS with thousands of random patterns over keys made of the bytes that
/// matter to a glob (`*?[]^-\`, letters of both cases, bytes above 0x7f,
/// NUL), against Redis: the matcher must agree on every one.
#[test]
fn keys_patterns_match_redis_exactly() {
    let rd = RedisRef::start();
    let (srv, _dir) = Server::start(&[]);
    let (mut kv, mut r) = (connect(&srv, false), rd.connect(false));
    let alphabet: &[u8] = b"abA-]^[\\*?z\x80\xff\x00";
    let mut x: u64 = 0x853c_49e6_748f_ea9b; // pinned seed: a failure reproduces
    let mut rnd = move |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    let mut word = |max: usize| -> Vec<u8> { (0..rnd(max + 1)).map(|_| alphabet[rnd(alphabet.len())]).collect() };
    let keys: BTreeSet<Vec<u8>> = (0..400).map(|_| word(5)).collect();
    for con in [&mut kv, &mut r] {
        ok(con, &[b"FLUSHALL"]);
        let mut mset = redis::cmd("MSET");
        for k in &keys {
            mset.arg(k).arg("v");
        }
        let _: () = mset.query(con).expect("MSET");
    }
    let patterns: Vec<Vec<u8>> = (0..4000).map(|_| word(7)).collect();
    for chunk in patterns.chunks(500) {
        let mut pipe = redis::pipe();
        for p in chunk {
            pipe.cmd("KEYS").arg(p);
        }
        let (a, b): (Vec<Value>, Vec<Value>) =
            (pipe.query(&mut kv).expect("kvstore"), pipe.query(&mut r).expect("redis"));
        for ((p, a), b) in chunk.iter().zip(&a).zip(&b) {
            assert_eq!(bulks(a), bulks(b), "KEYS {:?}", String::from_utf8_lossy(p));
        }
    }
    // The regression patterns of Redis's keyspace tests, which must answer at once.
    let long = "a".repeat(40);
    let pattern = format!("{}b", "a*".repeat(20));
    let (huge_key, huge_pattern) = ("a".repeat(50_000), "*?".repeat(50_000));
    for con in [&mut kv, &mut r] {
        ok(con, &[b"SET", long.as_bytes(), b"1"]);
        assert_eq!(ok(con, &[b"KEYS", pattern.as_bytes()]), Value::Array(vec![]));
        ok(con, &[b"SET", huge_key.as_bytes(), b"1"]);
        assert_eq!(ok(con, &[b"KEYS", huge_pattern.as_bytes()]), Value::Array(vec![]));
    }
}

// ---------------------------------------------------------------- SCAN's guarantee

/// Every key present for the whole scan is returned, while other keys are
/// deleted (their slots reclaimed by moving the last entry into them, at
/// the end of each loop iteration) and added between the calls.
#[test]
fn scan_returns_every_key_present_throughout_while_keys_come_and_go() {
    let (srv, _dir) = Server::start(&[]);
    let mut con = connect(&srv, false);
    let stable: BTreeSet<Vec<u8>> = (0..1000).map(|i| format!("stable:{i}").into_bytes()).collect();
    let mut churn: Vec<String> = Vec::new();
    let mut next = 0;
    let mut mset = redis::cmd("MSET");
    for (i, k) in stable.iter().enumerate() {
        mset.arg(k).arg("v");
        // Churn keys between the stable ones, so deletes open holes low down.
        for _ in 0..2 {
            churn.push(format!("churn:{next}"));
            mset.arg(churn.last().unwrap()).arg(i);
            next += 1;
        }
    }
    let _: () = mset.query(&mut con).expect("MSET");
    let mut calls = 0;
    let seen = scan_all(&mut con, &[b"COUNT", b"13"], |con| {
        calls += 1;
        // Delete from the low end of the keyspace (the first churn keys
        // sit in the lowest slots), add new keys at the top.
        let gone: Vec<String> = churn.drain(..churn.len().min(25)).collect();
        if !gone.is_empty() {
            let _: () = redis::cmd("DEL").arg(&gone).query(con).expect("DEL");
        }
        for _ in 0..10 {
            let _: () = redis::cmd("SET").arg(format!("churn:{next}")).arg("new").query(con).expect("SET");
            churn.push(format!("churn:{next}"));
            next += 1;
        }
    });
    assert!(calls > 100, "the scan took {calls} calls: too few for the keyspace to change under it");
    let missed: Vec<_> = stable.difference(&seen).map(|k| String::from_utf8_lossy(k).into_owned()).collect();
    assert!(missed.is_empty(), "{} stable keys missed, e.g. {:?}", missed.len(), &missed[..missed.len().min(5)]);
    // MATCH and TYPE filter the same walk.
    let only: BTreeSet<Vec<u8>> = stable.iter().filter(|k| k.starts_with(b"stable:1")).cloned().collect();
    assert_eq!(scan_all(&mut con, &[b"MATCH", b"stable:1*", b"COUNT", b"7"], |_| {}), only);
    assert_eq!(scan_all(&mut con, &[b"MATCH", b"stable:*", b"TYPE", b"string"], |_| {}), stable);
    assert!(scan_all(&mut con, &[b"TYPE", b"list"], |_| {}).is_empty());
}

// ---------------------------------------------------------------- writes are logged and replicated

/// RENAME and COPY are logged like any write: they survive a kill -9.
#[test]
fn rename_and_copy_survive_a_restart() {
    let (mut srv, _dir) = Server::start(&["--fsync", "always"]);
    let mut con = connect(&srv, false);
    ok(&mut con, &[b"SET", b"a", b"1"]);
    ok(&mut con, &[b"SET", b"b", b"2"]);
    assert_eq!(ok(&mut con, &[b"RENAME", b"a", b"renamed"]), Value::Okay);
    assert_eq!(ok(&mut con, &[b"RENAME", b"b", b"renamed"]), Value::Okay); // over an existing key
    assert_eq!(ok(&mut con, &[b"COPY", b"renamed", b"copied"]), Value::Int(1));
    drop(con);
    srv.kill9();
    srv.restart();
    let mut con = connect(&srv, false);
    assert_eq!(bulks(&ok(&mut con, &[b"KEYS", b"*"])), BTreeSet::from([b"renamed".to_vec(), b"copied".to_vec()]));
    assert_eq!(ok(&mut con, &[b"GET", b"renamed"]), Value::BulkString(b"2".to_vec()));
    assert_eq!(ok(&mut con, &[b"GET", b"copied"]), Value::BulkString(b"2".to_vec()));
}

/// On a node with a peer (which keeps tombstones), RENAME reaches the peer
/// as the delete and the put it is, and SCAN skips the tombstones.
#[test]
fn rename_replicates_and_scan_skips_tombstones_on_a_cluster() {
    let pair = start_pair();
    let (mut a, mut b) = (connect(&pair.nodes[0], false), connect(&pair.nodes[1], false));
    let keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
    for k in &keys {
        ok(&mut a, &[b"SET", k.as_bytes(), b"v"]);
    }
    let _: () = redis::cmd("DEL").arg(&keys[..200]).query(&mut a).expect("DEL");
    assert_eq!(ok(&mut a, &[b"RENAME", b"k250", b"moved"]), Value::Okay);
    wait_for("the rename to reach the peer", || {
        reply(&mut b, &[b"GET", b"moved"]) == Ok(Value::BulkString(b"v".to_vec()))
            && reply(&mut b, &[b"EXISTS", b"k250"]) == Ok(Value::Int(0))
    });
    let want: BTreeSet<Vec<u8>> = keys[200..]
        .iter()
        .filter(|k| *k != "k250")
        .map(|k| k.clone().into_bytes())
        .chain([b"moved".to_vec()])
        .collect();
    for con in [&mut a, &mut b] {
        assert_eq!(scan_all(con, &[b"COUNT", b"5"], |_| {}), want);
        assert_eq!(ok(con, &[b"DBSIZE"]), Value::Int(100));
    }
}

/// Two nodes that name each other as peers (the servers first, so they
/// are killed before their dirs go).
struct Pair {
    nodes: Vec<Server>,
    _dirs: [TempDir; 2],
}

/// Starts a [`Pair`] on ports chosen ahead; if a node cannot bind its port
/// (taken since), both start over on fresh ports.
#[track_caller]
fn start_pair() -> Pair {
    let dirs = [TempDir::new("pair"), TempDir::new("pair")];
    let mut last = String::new();
    for _ in 0..5 {
        let ports = ports_ahead(2);
        let mut nodes = Vec::new();
        for i in 0..2 {
            match Server::try_start_with(dirs[i].path(), &[], &[ports[1 - i]], Some(ports[i])) {
                Ok(s) => nodes.push(s),
                Err(msg) if port_in_use(&msg) => {
                    last = msg;
                    break;
                }
                Err(msg) => panic!("node did not start: {msg}"),
            }
        }
        if nodes.len() == 2 {
            return Pair { nodes, _dirs: dirs };
        }
    }
    panic!("no pair of nodes started on 5 sets of ports: {last}");
}

// ---------------------------------------------------------------- MEMORY USAGE

/// MEMORY USAGE is kvstore's own estimate: a fixed slot cost plus the heap
/// block of key and value, so it grows with the value; null for a missing key.
#[test]
fn memory_usage_is_an_estimate_that_grows_with_the_value() {
    let (srv, _dir) = Server::start(&[]);
    let mut con = connect(&srv, false);
    ok(&mut con, &[b"SET", b"foo", b"bar"]);
    assert_eq!(ok(&mut con, &[b"MEMORY", b"USAGE", b"foo"]), Value::Int(45));
    assert_eq!(ok(&mut con, &[b"MEMORY", b"usage", b"foo", b"SAMPLES", b"0"]), Value::Int(45));
    let big = vec![b'x'; 10_000];
    ok(&mut con, &[b"SET", b"big", &big]);
    let Value::Int(n) = ok(&mut con, &[b"MEMORY", b"USAGE", b"big"]) else { panic!("not an integer") };
    assert!((10_003..=10_003 + 10_003 / 4 + 64).contains(&n), "{n}");
    assert_eq!(ok(&mut con, &[b"MEMORY", b"USAGE", b"nokey"]), Value::Nil);
    let Value::Array(help) = ok(&mut con, &[b"MEMORY", b"HELP"]) else { panic!("not an array") };
    assert!(help.contains(&Value::SimpleString("USAGE <key> [SAMPLES <count>]".into())), "{help:?}");
}

// ---------------------------------------------------------------- redis-cli

#[track_caller]
fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => panic!("redis-cli not found ({e}): install redis-tools"),
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "redis-cli {args:?}: {}\n{text}{}", out.status, String::from_utf8_lossy(&out.stderr));
    text
}

fn lines(s: &str) -> BTreeSet<String> {
    s.lines().map(str::to_string).collect()
}

/// `redis-cli --scan` (SCAN with the cursor until 0) lists every key, and
/// `--pattern` only those that match.
#[test]
fn redis_cli_scan_lists_keys() {
    let (srv, _dir) = Server::start(&[]);
    let mut con = connect(&srv, false);
    let mut mset = redis::cmd("MSET");
    let all: BTreeSet<String> =
        (0..500).map(|i| format!("user:{i}")).chain((0..50).map(|i| format!("s:{i}"))).collect();
    for k in &all {
        mset.arg(k).arg("v");
    }
    let _: () = mset.query(&mut con).expect("MSET");
    assert_eq!(lines(&cli(srv.port, &["--scan"])), all);
    let want: BTreeSet<String> = all.iter().filter(|k| k.starts_with("user:4")).cloned().collect();
    assert_eq!(lines(&cli(srv.port, &["--scan", "--pattern", "user:4*"])), want);
    assert_eq!(lines(&cli(srv.port, &["--scan", "--pattern", "s:[1-2]?"])).len(), 20);
    assert!(cli(srv.port, &["--scan", "--pattern", "nomatch*"]).is_empty());
}

/// `redis-cli --memkeys` sends DBSIZE, SCAN, TYPE and MEMORY USAGE: it
/// finds the biggest string by kvstore's estimate.
#[test]
fn redis_cli_memkeys_finds_the_biggest_key() {
    let (srv, _dir) = Server::start(&[]);
    let mut con = connect(&srv, false);
    for (k, n) in [("small", 3), ("medium", 300), ("large", 30_000)] {
        ok(&mut con, &[b"SET", k.as_bytes(), &vec![b'v'; n]]);
    }
    let out = cli(srv.port, &["--memkeys"]);
    assert!(out.contains("Sampled 3 keys in the keyspace!"), "{out}");
    assert!(out.contains("Biggest string found '\"large\"' has "), "{out}");
    assert!(out.contains("3 strings with "), "{out}");
}

/// `redis-cli --bigkeys` sends DBSIZE, SCAN, TYPE, then STRLEN for strings.
#[test]
fn redis_cli_bigkeys_finds_the_longest_string() {
    let (srv, _dir) = Server::start(&[]);
    let mut con = connect(&srv, false);
    for (k, n) in [("small", 3), ("large", 3000)] {
        ok(&mut con, &[b"SET", k.as_bytes(), &vec![b'v'; n]]);
    }
    let out = cli(srv.port, &["--bigkeys"]);
    assert!(out.contains("Biggest string found '\"large\"' has 3000 bytes"), "{out}");
    assert!(!out.contains("Warning"), "{out}");
}

// ---------------------------------------------------------------- redis-py

/// The same redis-py calls against kvstore and Redis print the same.
const REDIS_PY_SCRIPT: &str = r#"
import sys, redis
r = redis.Redis(host=sys.argv[1], port=int(sys.argv[2])) if sys.argv[1] != "unix" else redis.Redis(unix_socket_path=sys.argv[2])
r.flushall()
r.mset({f"user:{i}": i for i in range(300)})
r.set("other", "x")
out = []
out.append(sorted(r.keys("user:1?")))
out.append(sorted(r.scan_iter(match="user:2*", count=7)))
out.append(sorted(r.scan_iter(_type="string", count=50))[:5])
out.append(list(r.scan_iter(_type="hash")))
out.append([r.type("other"), r.type("nokey")])
out.append([r.exists("other", "other", "nokey"), r.touch("other", "nokey"), r.unlink("user:0", "nokey")])
out.append([r.rename("user:1", "renamed"), r.get("renamed"), r.exists("user:1")])
out.append([r.renamenx("renamed", "user:2"), r.renamenx("renamed", "fresh"), r.get("fresh")])
try:
    r.rename("nokey", "x")
except redis.ResponseError as e:
    out.append(str(e))
out.append([r.copy("fresh", "copied"), r.copy("fresh", "copied"), r.copy("other", "copied", replace=True), r.get("copied")])
out.append([r.memory_usage("nokey"), type(r.memory_usage("other")).__name__])
r.flushdb()
r.set("only", "1")
out.append([r.randomkey(), r.dbsize()])
r.flushall(asynchronous=True)
out.append([r.randomkey(), r.keys()])
for o in out:
    print(o)
"#;

#[test]
fn redis_py_sees_what_it_sees_on_redis() {
    let import = Command::new("python3").args(["-c", "import redis"]).output();
    assert!(import.is_ok_and(|o| o.status.success()), "redis-py missing: pip install redis");
    let rd = RedisRef::start();
    let (srv, _dir) = Server::start(&[]);
    let run = |a: &str, b: &str| {
        let out = Command::new("python3").args(["-c", REDIS_PY_SCRIPT, a, b]).output().expect("python3");
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "redis-py against {a} {b}: {}\n{stdout}{stderr}", out.status);
        stdout.into_owned()
    };
    let kv = run("127.0.0.1", &srv.port.to_string());
    let want = run("unix", &rd.sock.to_string_lossy());
    assert_eq!(kv, want);
    assert_eq!(kv.lines().count(), 13, "{kv}");
}

// ---------------------------------------------------------------- the text protocol

#[test]
fn text_protocol_exists_rename_and_keys() {
    let (srv, _dir) = Server::start(&[]);
    let mut c = srv.client();
    assert_eq!(c.cmd("PUT user:1 Ada"), "OK");
    assert_eq!(c.cmd("PUT user:2 Grace"), "OK");
    assert_eq!(c.cmd("EXISTS user:1"), "1");
    assert_eq!(c.cmd("EXISTS nokey"), "0");
    assert_eq!(c.cmd("EXISTS"), "ERROR usage: EXISTS <key>");
    assert_eq!(c.cmd("RENAME user:1 user:3"), "OK");
    assert_eq!(c.cmd("GET user:3"), "Ada");
    assert_eq!(c.cmd("GET user:1"), "NOT_FOUND");
    assert_eq!(c.cmd("RENAME nokey x"), "NOT_FOUND");
    assert_eq!(c.cmd("RENAME user:3"), "ERROR usage: RENAME <key> <newkey>");
    c.send(b"KEYS user:*\n");
    let got: BTreeSet<String> = [c.line(), c.line()].into();
    assert_eq!(got, BTreeSet::from(["user:2".to_string(), "user:3".to_string()]));
    assert_eq!(c.line(), "END");
    assert_eq!(c.cmd("KEYS nomatch*"), "END");
    assert_eq!(c.cmd("KEYS"), "ERROR usage: KEYS <pattern>");
    // A key with a line break (made over RESP) cannot be listed as a line.
    let mut con = connect(&srv, false);
    ok(&mut con, &[b"SET", b"two\nlines", b"v"]);
    assert_eq!(c.cmd("KEYS *"), "ERROR a key holds a line break; list keys over RESP (redis-cli --scan)");
    assert_eq!(c.cmd("KEYS user:2"), "user:2");
    assert_eq!(c.line(), "END");
}
