//! Key expiry through the real binary: the commands and their replies as
//! Redis gives them (through the `redis` crate), lazy and active expiry,
//! deadlines across a restart and a compaction, the text protocol's forms,
//! and a 3-node cluster that agrees on a deadline, expires the key on every
//! node and does not let a late, older write bring it back.
//!
//! Nothing sleeps a fixed time: every wait polls a condition until the
//! harness deadline. Deadlines are chosen long (minutes) where a test must
//! see a key alive, and short (tens of ms) where it waits for expiry.

mod common;
use common::cluster::Cluster;
use common::*;

use std::time::{SystemTime, UNIX_EPOCH};

use redis::Value;

// ---------------------------------------------------------------- helpers

/// A `redis` crate connection that gives up after the harness deadline.
#[track_caller]
fn con(port: u16) -> redis::Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("redis url");
    let con = client.get_connection_with_timeout(DEADLINE).expect("redis connection");
    con.set_read_timeout(Some(DEADLINE)).expect("read timeout");
    con
}

/// One command's reply as one line: an integer, `OK`, `nil`, a bulk's
/// text, or an error as it was on the wire (`ERR ...`).
#[track_caller]
fn r(con: &mut redis::Connection, args: &[&str]) -> String {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    match cmd.query::<Value>(con) {
        Ok(Value::Int(n)) => n.to_string(),
        Ok(Value::Okay) => "OK".into(),
        Ok(Value::Nil) => "nil".into(),
        Ok(Value::BulkString(b)) => String::from_utf8_lossy(&b).into_owned(),
        Ok(Value::SimpleString(s)) => s,
        Ok(v) => format!("{v:?}"),
        Err(e) => format!("{} {}", e.code().unwrap_or("<no code>"), e.detail().unwrap_or("")),
    }
}

/// `r` that must give `want`.
#[track_caller]
fn expect(con: &mut redis::Connection, args: &[&str], want: &str) {
    assert_eq!(r(con, args), want, "{}", args.join(" "));
}

/// An integer reply.
#[track_caller]
fn int(con: &mut redis::Connection, args: &[&str]) -> i64 {
    let got = r(con, args);
    got.parse().unwrap_or_else(|_| panic!("{}: not an integer: {got}", args.join(" ")))
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64
}

/// One field of one INFO section (`""` if absent).
#[track_caller]
fn info_field(con: &mut redis::Connection, section: &str, field: &str) -> String {
    let text = r(con, &["INFO", section]);
    text.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))).unwrap_or("").trim().to_string()
}

/// Sends `lines` (RESP commands built from words) in one write and reads
/// as many replies: a pipeline, for loading many keys fast.
#[track_caller]
fn pipeline(con: &mut redis::Connection, cmds: &[Vec<String>]) {
    let mut p = redis::pipe();
    for c in cmds {
        let mut cmd = redis::cmd(&c[0]);
        for a in &c[1..] {
            cmd.arg(a);
        }
        p.add_command(cmd);
    }
    let replies: Vec<Value> = p.query(con).expect("pipeline");
    assert!(replies.iter().all(|v| matches!(v, Value::Okay)), "{:?}", &replies[..replies.len().min(5)]);
}

// ---------------------------------------------------------------- the commands

/// Replies as redis-server 7 gives them (each row was run against it with
/// redis-cli). `~N`: a TTL of N seconds, or N - 1 if a second boundary
/// passed between the commands (a slow machine).
#[test]
fn replies_and_errors_are_redis_s() {
    let (srv, _dir) = Server::start(&[]);
    let mut c = con(srv.port);
    for (cmd, want) in [
        ("SET k v EX 0", "ERR invalid expire time in 'set' command"),
        ("SET k v PX -1", "ERR invalid expire time in 'set' command"),
        ("SET k v EX abc", "ERR value is not an integer or out of range"),
        ("SET k v EX 010", "ERR value is not an integer or out of range"),
        ("SET k v EX 10 PX 10", "ERR syntax error"),
        ("SET k v KEEPTTL EX 1", "ERR syntax error"),
        ("SET k v EX", "ERR syntax error"),
        ("SET k v EX 9223372036854775", "ERR invalid expire time in 'set' command"),
        ("SET k v EX 9223372036854775807", "ERR invalid expire time in 'set' command"),
        ("EXISTS k", "0"),
        ("SETEX k 0 v", "ERR invalid expire time in 'setex' command"),
        ("PSETEX k -5 v", "ERR invalid expire time in 'psetex' command"),
        ("SETEX k abc v", "ERR value is not an integer or out of range"),
        ("SETEX k 1", "ERR wrong number of arguments for 'setex' command"),
        ("GETEX nokey EX 0", "nil"),
        ("TTL nokey", "-2"),
        ("PTTL nokey", "-2"),
        ("EXPIRETIME nokey", "-2"),
        ("PERSIST nokey", "0"),
        ("EXPIRE nokey 10", "0"),
        ("SET k v", "OK"),
        ("TTL k", "-1"),
        ("PEXPIRETIME k", "-1"),
        ("PERSIST k", "0"),
        ("GETEX k EX 0", "ERR invalid expire time in 'getex' command"),
        ("GETEX k PERSIST EX 10", "ERR syntax error"),
        ("GETEX k KEEPTTL", "ERR syntax error"),
        ("GETEX k PERSIST PERSIST", "v"),
        ("EXPIRE k 10 NX XX", "ERR NX and XX, GT or LT options at the same time are not compatible"),
        ("EXPIRE k 10 GT LT", "ERR GT and LT options at the same time are not compatible"),
        ("EXPIRE k abc NX XX", "ERR NX and XX, GT or LT options at the same time are not compatible"),
        ("EXPIRE k 10 FOO", "ERR Unsupported option FOO"),
        ("EXPIRE k abc", "ERR value is not an integer or out of range"),
        ("EXPIRE k 9223372036854775", "ERR invalid expire time in 'expire' command"),
        ("PEXPIRE k 9223372036854775807", "ERR invalid expire time in 'pexpire' command"),
        ("EXPIRE k", "ERR wrong number of arguments for 'expire' command"),
        ("EXPIRE k 10 XX", "0"),
        ("EXPIRE k 10 GT", "0"),
        ("EXPIRE k 10 LT", "1"),
        ("TTL k", "~10"),
        ("EXPIRE k 100 LT", "0"),
        ("EXPIRE k 100 GT", "1"),
        ("EXPIRE k 50 XX", "1"),
        ("EXPIRE k 20 NX", "0"),
        ("TTL k", "~50"),
        ("PEXPIREAT k 9223372036854775807", "1"),
        ("PEXPIRETIME k", "9223372036854775807"),
        ("EXPIREAT k 9223372036854775", "1"),
        ("EXPIRETIME k", "9223372036854775"),
        ("PERSIST k", "1"),
        ("TTL k", "-1"),
        ("EXPIRE k -1", "1"),
        ("EXISTS k", "0"),
        ("SET k v EXAT 1", "OK"),
        ("GET k", "nil"),
        ("SET k v PXAT 9223372036854775807 GET", "nil"),
        ("PEXPIRETIME k", "9223372036854775807"),
        ("SET k w KEEPTTL GET", "v"),
        ("PEXPIRETIME k", "9223372036854775807"),
        ("SET k x", "OK"),
        ("TTL k", "-1"),
        ("SET k y NX EX 100 GET", "x"),
        ("TTL k", "-1"),
        ("SET k y XX EX 100", "OK"),
        ("TTL k", "~100"),
        ("GETEX k PERSIST", "y"),
        ("TTL k", "-1"),
        ("GETEX k EXAT 1", "y"),
        ("EXISTS k", "0"),
        ("PSETEX k 100000 v", "OK"),
        ("TTL k", "~100"),
        ("EXPIREAT k 1", "1"),
        ("GET k", "nil"),
    ] {
        let args: Vec<&str> = cmd.split(' ').collect();
        match want.strip_prefix('~') {
            Some(n) => ttl_near(&r(&mut c, &args), n.parse().expect("a number")),
            None => expect(&mut c, &args, want),
        }
    }
}

/// A TTL reply of `n` seconds (or a few less, on a slow machine).
#[track_caller]
fn ttl_near(got: &str, n: i64) {
    let t: i64 = got.parse().unwrap_or_else(|_| panic!("TTL {got:?} is not a number"));
    assert!((n - 5..=n).contains(&t), "TTL {t}, want {n}");
}

#[test]
fn ttl_pttl_and_expiretime_count_down_from_the_deadline() {
    let (srv, _dir) = Server::start(&[]);
    let mut c = con(srv.port);
    let before = unix_ms();
    expect(&mut c, &["SET", "k", "v", "EX", "100"], "OK");
    let after = unix_ms();
    let pttl = int(&mut c, &["PTTL", "k"]);
    assert!((95_000..=100_000).contains(&pttl), "{pttl}");
    ttl_near(&r(&mut c, &["TTL", "k"]), 100);
    let at = int(&mut c, &["PEXPIRETIME", "k"]) as u64;
    assert!((before + 100_000..=after + 100_000).contains(&at), "{at} not 100 s after {before}..{after}");
    assert_eq!(int(&mut c, &["EXPIRETIME", "k"]) as u64, (at + 500) / 1000);
    // GETEX changes it, PERSIST clears it.
    expect(&mut c, &["GETEX", "k", "PX", "5000000"], "v");
    ttl_near(&r(&mut c, &["TTL", "k"]), 5_000);
    expect(&mut c, &["PERSIST", "k"], "1");
    expect(&mut c, &["TTL", "k"], "-1");
    // INFO keyspace: the keys, the keys with a deadline, their mean TTL.
    expect(&mut c, &["SETEX", "a", "1000", "1"], "OK");
    expect(&mut c, &["SETEX", "b", "3000", "2"], "OK");
    let db0 = info_field(&mut c, "keyspace", "db0");
    let fields: Vec<&str> = db0.split(',').collect();
    assert_eq!(fields[..2], ["keys=3", "expires=2"], "{db0}");
    let avg: u64 = fields[2].strip_prefix("avg_ttl=").and_then(|v| v.parse().ok()).expect("avg_ttl");
    assert!((1_995_000..=2_000_000).contains(&avg), "{db0}");
}

// ---------------------------------------------------------------- expiry, lazy and active

#[test]
fn an_expired_key_is_never_returned_counted_or_listed() {
    let (srv, _dir) = Server::start(&[]);
    let mut c = con(srv.port);
    expect(&mut c, &["SET", "forever", "v"], "OK");
    expect(&mut c, &["SET", "k", "v", "PX", "50"], "OK");
    // Whatever answers first after the deadline, every view agrees.
    wait_for("k to expire", || r(&mut c, &["GET", "k"]) == "nil");
    expect(&mut c, &["EXISTS", "k"], "0");
    expect(&mut c, &["TTL", "k"], "-2");
    expect(&mut c, &["DBSIZE"], "1");
    expect(
        &mut c,
        &["MGET", "k", "forever"],
        &format!("{:?}", Value::Array(vec![Value::Nil, Value::BulkString(b"v".to_vec())])),
    );
    assert_eq!(info_field(&mut c, "keyspace", "db0"), "keys=1,expires=0,avg_ttl=0");
    let mut t = srv.client();
    assert_eq!(t.cmd("GET k"), "NOT_FOUND");
    assert_eq!(t.stat("keys"), "1");
    // An expired key is absent for writes too.
    expect(&mut c, &["SET", "k", "new", "NX"], "OK");
    expect(&mut c, &["TTL", "k"], "-1");
}

/// Keys nobody reads are reclaimed all the same: `expired_keys` counts only
/// what active expiry reclaimed.
#[test]
fn active_expiry_reclaims_keys_nobody_reads() {
    let (srv, _dir) = Server::start(&[]);
    let mut c = con(srv.port);
    let cmds: Vec<Vec<String>> =
        (0..5000).map(|i| vec!["SET".into(), format!("key:{i}"), "value".into(), "PX".into(), "200".into()]).collect();
    pipeline(&mut c, &cmds);
    expect(&mut c, &["SET", "stays", "v", "EX", "1000"], "OK");
    let stays = r(&mut c, &["PEXPIRETIME", "stays"]);
    let mut t = srv.client();
    wait_for("active expiry of 5000 keys", || t.stat("expired_keys") == "5000");
    assert_eq!(info_field(&mut c, "stats", "expired_keys"), "5000");
    // Reclaimed, not hidden: no entry is left for them.
    assert_eq!((t.stat("keys"), t.stat("tombstones")), ("1".into(), "0".into()));
    let live: u64 = t.stat("live_data_bytes").parse().expect("bytes");
    assert!(live < 100, "{live} bytes of live data for one key");
    expect(&mut c, &["PEXPIRETIME", "stays"], &stays);
}

// ---------------------------------------------------------------- persistence

#[test]
fn deadlines_survive_a_restart_and_what_expired_while_down_is_gone() {
    let (mut srv, _dir) = Server::start(&["--fsync", "always"]);
    let mut c = con(srv.port);
    let far = unix_ms() + 3_600_000;
    expect(&mut c, &["SET", "far", "v", "PXAT", &far.to_string()], "OK");
    expect(&mut c, &["SET", "plain", "v"], "OK");
    let soon = unix_ms() + 300;
    expect(&mut c, &["SET", "soon", "v", "PXAT", &soon.to_string()], "OK");
    expect(&mut c, &["SET", "persisted", "v", "EX", "100"], "OK");
    expect(&mut c, &["PERSIST", "persisted"], "1");
    srv.kill9();
    wait_for("the deadline of `soon` to pass", || unix_ms() > soon);
    srv.restart();
    let mut c = con(srv.port);
    expect(&mut c, &["PEXPIRETIME", "far"], &far.to_string());
    expect(&mut c, &["TTL", "plain"], "-1");
    expect(&mut c, &["TTL", "persisted"], "-1");
    expect(&mut c, &["GET", "soon"], "nil");
    expect(&mut c, &["DBSIZE"], "3");
    // Gone at start: replay dropped it, nothing was left to expire.
    let mut t = srv.client();
    assert_eq!((t.stat("expired_keys"), t.stat("tombstones")), ("0".into(), "0".into()));
}

#[test]
fn compaction_keeps_deadlines_and_drops_what_expired() {
    let (mut srv, _dir) = Server::start(&[]);
    let mut c = con(srv.port);
    let far = unix_ms() + 3_600_000;
    let mut cmds = Vec::new();
    for i in 0..300 {
        let key = format!("key:{i}");
        cmds.push(match i % 3 {
            0 => vec!["SET".into(), key, "v".repeat(100), "PXAT".into(), far.to_string()],
            1 => vec!["SET".into(), key, "v".repeat(100), "PX".into(), "100".into()],
            _ => vec!["SET".into(), key, "v".repeat(100)],
        });
    }
    pipeline(&mut c, &cmds);
    wait_for("100 keys to expire", || r(&mut c, &["DBSIZE"]) == "200");
    let mut t = srv.client();
    let before: u64 = t.stat("log_bytes").parse().expect("log bytes");
    expect(&mut c, &["BGREWRITEAOF"], "Background append only file rewriting started");
    wait_for("the compaction", || t.stat("compactions") == "1");
    let after: u64 = t.stat("log_bytes").parse().expect("log bytes");
    // 200 records of some 130 bytes; the 100 expired ones are not there.
    assert!(after < before * 3 / 4 && after < 200 * 140, "log {before} -> {after} bytes");
    srv.kill9();
    srv.restart();
    let mut c = con(srv.port);
    expect(&mut c, &["DBSIZE"], "200");
    expect(&mut c, &["PEXPIRETIME", "key:0"], &far.to_string());
    expect(&mut c, &["TTL", "key:2"], "-1");
    expect(&mut c, &["EXISTS", "key:1"], "0");
}

// ---------------------------------------------------------------- the text protocol

#[test]
fn text_protocol_putex_ttl_expire_persist() {
    let (srv, _dir) = Server::start(&[]);
    let mut t = srv.client();
    // The value is the rest of the line, options or not.
    assert_eq!(t.cmd("PUTEX k 100 a value EX 60"), "OK");
    assert_eq!(t.cmd("GET k"), "a value EX 60");
    ttl_near(&t.cmd("TTL k"), 100);
    assert_eq!(t.cmd("PERSIST k"), "OK");
    assert_eq!(t.cmd("TTL k"), "NO_EXPIRY");
    assert_eq!(t.cmd("PERSIST k"), "NO_EXPIRY");
    assert_eq!(t.cmd("EXPIRE k 50"), "OK");
    ttl_near(&t.cmd("TTL k"), 50);
    assert_eq!(t.cmd("TTL nokey"), "NOT_FOUND");
    assert_eq!(t.cmd("EXPIRE nokey 5"), "NOT_FOUND");
    assert_eq!(t.cmd("PERSIST nokey"), "NOT_FOUND");
    assert_eq!(t.cmd("PUTEX k 0 v"), "ERROR invalid expire time");
    assert_eq!(t.cmd("PUTEX k soon v"), "ERROR seconds must be an integer");
    assert_eq!(t.cmd("EXPIRE k later"), "ERROR seconds must be an integer");
    assert_eq!(t.cmd("PUTEX k 5"), "ERROR usage: PUTEX <key> <seconds> <value>");
    assert_eq!(t.cmd("TTL"), "ERROR usage: TTL <key>");
    // A PUT clears the deadline; EXPIRE 0 deletes, as in Redis.
    assert_eq!(t.cmd("PUT k v"), "OK");
    assert_eq!(t.cmd("TTL k"), "NO_EXPIRY");
    assert_eq!(t.cmd("EXPIRE k 0"), "OK");
    assert_eq!(t.cmd("GET k"), "NOT_FOUND");
    // And it expires.
    assert_eq!(t.cmd("PUTEX short 1 v"), "OK");
    wait_for("short to expire", || t.cmd("GET short") == "NOT_FOUND");
}

// ---------------------------------------------------------------- a cluster

/// PEXPIRETIME of `key` on the node on `port`.
#[track_caller]
fn pexpiretime(port: u16, key: &str) -> String {
    r(&mut con(port), &["PEXPIRETIME", key])
}

#[test]
fn a_cluster_agrees_on_a_deadline_expires_the_key_everywhere_and_never_brings_it_back() {
    let mut c = Cluster::start(3, &[]);
    let mut c0 = con(c.ports[0]);
    // A few writes first, so that the expiring write's version is well
    // above the late write's below.
    for i in 0..5 {
        expect(&mut c0, &["SET", &format!("warm:{i}"), "v"], "OK");
    }
    let far = unix_ms() + 3_600_000;
    expect(&mut c0, &["SET", "far", "v", "PXAT", &far.to_string()], "OK");
    expect(&mut c0, &["SET", "k", "v", "PX", "2000"], "OK");
    let k_at = pexpiretime(c.ports[0], "k");
    let k_ms: u64 = k_at.parse().expect("k's deadline");
    // Node 1 changes a deadline: its write replicates like any other.
    let mut c1 = con(c.ports[1]);
    wait_for("far on node 1", || r(&mut c1, &["EXISTS", "far"]) == "1");
    let later = far + 1000;
    expect(&mut c1, &["PEXPIREAT", "far", &later.to_string()], "1");
    for &port in &c.ports {
        // (On a machine slow enough that k expires before it is seen, its
        // deadline is not there to compare: far's is.)
        wait_for(&format!("the deadlines on port {port}"), || {
            pexpiretime(port, "far") == later.to_string() && (pexpiretime(port, "k") == k_at || unix_ms() >= k_ms)
        });
    }
    // k expires on every node, by the deadline alone, and actively.
    for &port in &c.ports {
        let mut cn = con(port);
        wait_for(&format!("k to expire on port {port}"), || r(&mut cn, &["GET", "k"]) == "nil");
        let mut t = Client::connect(port);
        wait_for(&format!("active expiry on port {port}"), || t.stat("expired_keys") == "1");
    }
    // A late write of k, older than the one that expired (counter 1 of a
    // node 9), as a peer would send it: refused everywhere. The same frame
    // for a key never written is applied, so the refusal is the tombstone's.
    let old = ((1u64 << 16) | 9).to_string();
    for &port in &c.ports {
        let mut cn = con(port);
        let id = port_id(&mut cn);
        let hello: String = redis::cmd("REPLHELLO").arg("9").query(&mut cn).expect("REPLHELLO");
        assert!(hello.starts_with(&format!("HELLO 0 {id} ")), "REPLHELLO 9: {hello}");
        expect(&mut cn, &["REPL_PUT", "k", "resurrected", &old], "0");
        expect(&mut cn, &["REPL_PUT", "control", "applied", &old], "0");
        let mut check = con(port);
        expect(&mut check, &["GET", "k"], "nil");
        expect(&mut check, &["GET", "control"], "applied");
    }
    // A node that was down while k2 expired catches up without it, and
    // with the deadline of a key written meanwhile (a catch-up scan's frame).
    c.kill9(2);
    expect(&mut c0, &["SET", "k2", "v", "PX", "100"], "OK");
    expect(&mut c0, &["SET", "caught", "v", "PXAT", &far.to_string()], "OK");
    wait_for("k2 to expire on node 0", || r(&mut c0, &["GET", "k2"]) == "nil");
    c.restart(2);
    let mut c2 = con(c.ports[2]);
    wait_for("node 2 to catch up with the deadline", || r(&mut c2, &["PEXPIRETIME", "caught"]) == far.to_string());
    expect(&mut c2, &["GET", "k2"], "nil");
    expect(&mut c2, &["GET", "k"], "nil");
    for &port in &c.ports {
        expect(&mut con(port), &["DBSIZE"], "8");
    }
}

/// The node id a node answers REPLHELLO with (its `kvstore_node_id`).
#[track_caller]
fn port_id(con: &mut redis::Connection) -> String {
    info_field(con, "replication", "kvstore_node_id")
}

/// Redis keeps a key's deadline through INCR, APPEND and SETRANGE, moves it
/// with RENAME, copies it with COPY, and drops it on GETSET and SET.
#[test]
fn commands_that_rewrite_a_value_keep_or_drop_its_deadline_as_redis_does() {
    let (srv, _dir) = Server::start(&[]);
    let mut c = con(srv.port);
    expect(&mut c, &["SET", "n", "1", "EX", "100"], "OK");
    expect(&mut c, &["INCR", "n"], "2");
    expect(&mut c, &["INCRBYFLOAT", "n", "0.5"], "2.5");
    expect(&mut c, &["APPEND", "n", "0"], "4");
    expect(&mut c, &["SETRANGE", "n", "0", "9"], "4");
    assert!((1..=100).contains(&int(&mut c, &["TTL", "n"])), "INCR, APPEND, SETRANGE keep the deadline");
    expect(&mut c, &["RENAME", "n", "m"], "OK");
    assert!((1..=100).contains(&int(&mut c, &["TTL", "m"])), "RENAME moves it");
    expect(&mut c, &["COPY", "m", "c"], "1");
    assert!((1..=100).contains(&int(&mut c, &["TTL", "c"])), "COPY copies it");
    expect(&mut c, &["GETSET", "c", "x"], "9.50");
    assert_eq!(int(&mut c, &["TTL", "c"]), -1, "GETSET drops it");
    expect(&mut c, &["SET", "m", "y"], "OK");
    assert_eq!(int(&mut c, &["TTL", "m"]), -1, "SET drops it");
}
