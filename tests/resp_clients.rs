//! RESP through the real binary with real Redis clients and tools, unmodified:
//! the `redis` crate, redis-py (tests/redis_py_check.py), redis-cli and
//! redis-benchmark; plus hostile RESP over a raw socket.
//!
//! Exact bytes are checked over a raw `TcpStream` where a client library
//! would hide them (RESP3 null, error lines, connection close).
//!
//! redis-py and redis-tools are required: when missing, the tests that need
//! them fail and say what to install, rather than pass without running.

mod common;
use common::resp::{raw_cmd, read_reply, request};
use common::tools::{require, run};
use common::*;

use std::io::Read;
use std::process::Command;

use redis::Value;

// ---------------------------------------------------------------- helpers

/// A `redis` crate connection (RESP2 unless `query` asks otherwise) whose
/// reads and writes give up after the harness deadline instead of hanging.
#[track_caller]
fn connect_with(srv: &Server, query: &str) -> redis::Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/{query}", srv.port)).expect("redis url");
    let con = client.get_connection_with_timeout(DEADLINE).expect("redis connection");
    con.set_read_timeout(Some(DEADLINE)).expect("read timeout");
    con.set_write_timeout(Some(DEADLINE)).expect("write timeout");
    con
}

#[track_caller]
fn connect(srv: &Server) -> redis::Connection {
    connect_with(srv, "")
}

/// A server error as it was on the wire, minus the `-`: `ERR unknown …`.
fn err_text(e: &redis::RedisError) -> String {
    format!("{} {}", e.code().unwrap_or("<no code>"), e.detail().unwrap_or(""))
}

/// Runs one command that must succeed and returns its reply.
#[track_caller]
fn q(con: &mut redis::Connection, cmd: &redis::Cmd) -> Value {
    // A match, not unwrap_or_else: a panic in a closure would not report the caller's line.
    match cmd.query(con) {
        Ok(v) => v,
        Err(e) => panic!("{:?}: {e}", show(&cmd.get_packed_command())),
    }
}

/// Runs one command and returns its error text; panics if it succeeded.
#[track_caller]
fn query_err(con: &mut redis::Connection, cmd: &redis::Cmd) -> String {
    match cmd.query::<Value>(con) {
        Ok(v) => panic!("{:?}: expected an error, got {v:?}", show(&cmd.get_packed_command())),
        Err(e) => err_text(&e),
    }
}

fn bulk(b: impl Into<Vec<u8>>) -> Value {
    Value::BulkString(b.into())
}

/// Everything the server sends until it closes the connection.
#[track_caller]
fn read_to_eof(c: &mut Client) -> Vec<u8> {
    let mut all = Vec::new();
    if let Err(e) = c.reader.read_to_end(&mut all) {
        panic!("the server did not close the connection ({e}); it sent {:?}", all.escape_ascii().to_string());
    }
    all
}

fn show(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

/// The server process's resident set size, in KiB.
#[track_caller]
fn rss_kib(srv: &Server) -> u64 {
    let pid = srv.child.as_ref().expect("server running").id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/<pid>/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS line");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmRSS value")
}

// ---------------------------------------------------------------- the redis crate

#[test]
fn redis_crate_key_commands() {
    let (srv, _dir) = Server::start(&[]);
    let mut con = connect(&srv);

    assert_eq!(q(&mut con, redis::cmd("SET").arg("a").arg("1")), Value::Okay);
    assert_eq!(q(&mut con, redis::cmd("GET").arg("a")), bulk("1"));
    assert_eq!(q(&mut con, redis::cmd("GET").arg("missing")), Value::Nil);
    assert_eq!(q(&mut con, redis::cmd("MSET").arg("b").arg("2").arg("c").arg("3")), Value::Okay);
    assert_eq!(q(&mut con, &redis::cmd("DBSIZE")), Value::Int(3));
    assert_eq!(
        q(&mut con, redis::cmd("MGET").arg("a").arg("missing").arg("c")),
        Value::Array(vec![bulk("1"), Value::Nil, bulk("3")])
    );
    // EXISTS counts a key each time it is named, as Redis does.
    assert_eq!(q(&mut con, redis::cmd("EXISTS").arg("a").arg("a").arg("missing").arg("b")), Value::Int(3));
    assert_eq!(q(&mut con, redis::cmd("EXISTS").arg("missing")), Value::Int(0));
    // DEL counts the keys it actually removed.
    assert_eq!(q(&mut con, redis::cmd("DEL").arg("a").arg("b").arg("missing")), Value::Int(2));
    assert_eq!(q(&mut con, redis::cmd("DEL").arg("a")), Value::Int(0));
    assert_eq!(q(&mut con, &redis::cmd("DBSIZE")), Value::Int(1));
    assert_eq!(q(&mut con, redis::cmd("EXISTS").arg("a").arg("b").arg("c")), Value::Int(1));
    // MSET with an odd number of arguments is an arity error, not half a write.
    let e = query_err(&mut con, redis::cmd("MSET").arg("x").arg("1").arg("y"));
    assert_eq!(e, "ERR wrong number of arguments for 'mset' command");
    assert_eq!(q(&mut con, redis::cmd("EXISTS").arg("x")), Value::Int(0));

    assert_eq!(q(&mut con, &redis::cmd("FLUSHALL")), Value::Okay);
    assert_eq!(q(&mut con, &redis::cmd("DBSIZE")), Value::Int(0));
    assert_eq!(q(&mut con, redis::cmd("GET").arg("c")), Value::Nil);
}

#[test]
fn redis_crate_set_options() {
    let (srv, _dir) = Server::start(&[]);
    let mut con = connect(&srv);

    // NX: only when absent.
    assert_eq!(q(&mut con, redis::cmd("SET").arg("k").arg("a").arg("NX")), Value::Okay);
    assert_eq!(q(&mut con, redis::cmd("SET").arg("k").arg("b").arg("nx")), Value::Nil);
    assert_eq!(q(&mut con, redis::cmd("GET").arg("k")), bulk("a"));
    // XX: only when present.
    assert_eq!(q(&mut con, redis::cmd("SET").arg("fresh").arg("a").arg("XX")), Value::Nil);
    assert_eq!(q(&mut con, redis::cmd("EXISTS").arg("fresh")), Value::Int(0));
    assert_eq!(q(&mut con, redis::cmd("SET").arg("k").arg("c").arg("XX")), Value::Okay);
    assert_eq!(q(&mut con, redis::cmd("GET").arg("k")), bulk("c"));
    // GET: the old value (nil if none), and the write happens.
    assert_eq!(q(&mut con, redis::cmd("SET").arg("k").arg("d").arg("GET")), bulk("c"));
    assert_eq!(q(&mut con, redis::cmd("GET").arg("k")), bulk("d"));
    assert_eq!(q(&mut con, redis::cmd("SET").arg("fresh").arg("e").arg("GET")), Value::Nil);
    assert_eq!(q(&mut con, redis::cmd("GET").arg("fresh")), bulk("e"));
    // NX GET on a present key: the old value, and no write (Redis 7).
    assert_eq!(q(&mut con, redis::cmd("SET").arg("k").arg("z").arg("NX").arg("GET")), bulk("d"));
    assert_eq!(q(&mut con, redis::cmd("GET").arg("k")), bulk("d"));
    // NX and XX together is a syntax error.
    let e = query_err(&mut con, redis::cmd("SET").arg("k").arg("v").arg("NX").arg("XX"));
    assert_eq!(e, "ERR syntax error");
    // Expiry options (tests/expiry.rs has the rest).
    assert_eq!(q(&mut con, redis::cmd("SET").arg("ttl").arg("v").arg("EX").arg("10")), Value::Okay);
    assert_eq!(q(&mut con, redis::cmd("TTL").arg("ttl")), Value::Int(10));
    assert_eq!(q(&mut con, redis::cmd("GET").arg("k")), bulk("d"));
}

#[test]
fn redis_crate_pipeline_of_10000_replies_in_order() {
    let (srv, _dir) = Server::start(&[]);
    let mut con = connect(&srv);
    // Each GET reads the SET just before it: replies out of order, lost or
    // duplicated show up as a wrong value at some index.
    let mut pipe = redis::pipe();
    for i in 0..5_000 {
        pipe.cmd("SET").arg("p").arg(i).cmd("GET").arg("p");
    }
    let replies: Vec<Value> = pipe.query(&mut con).expect("pipeline");
    assert_eq!(replies.len(), 10_000);
    for (i, pair) in replies.chunks(2).enumerate() {
        assert_eq!(pair, [Value::Okay, bulk(i.to_string())], "replies {} and {}", 2 * i, 2 * i + 1);
    }
    // The connection is still in step afterwards.
    assert_eq!(redis::cmd("GET").arg("p").query::<Value>(&mut con).unwrap(), bulk("4999"));

    // Replies far past the output soft limit (1 MiB): the server stops
    // reading this client until it reads, then goes on where it stopped.
    let big: Vec<u8> = (0..64 << 10).map(|i: u32| (i % 253) as u8).collect();
    let _: () = redis::cmd("SET").arg("big").arg(&big).query(&mut con).unwrap();
    let mut pipe = redis::pipe();
    for i in 0..200 {
        pipe.cmd("GET").arg("big").cmd("ECHO").arg(i);
    }
    let replies: Vec<Value> = pipe.query(&mut con).expect("pipeline of large replies");
    assert_eq!(replies.len(), 400);
    for (i, pair) in replies.chunks(2).enumerate() {
        assert!(pair[0] == Value::BulkString(big.clone()), "GET big #{i} differs");
        assert_eq!(pair[1], bulk(i.to_string()), "ECHO #{i}");
    }
}

#[test]
fn redis_crate_binary_safe_values() {
    let (srv, _dir) = Server::start(&[]);
    let mut con = connect(&srv);
    let every_byte: Vec<u8> = (0..=255).collect();
    let mib: Vec<u8> = (0..1 << 20).map(|i: u32| (i.wrapping_mul(31).wrapping_add(i >> 8) % 251) as u8).collect();
    let values: [(&str, &[u8]); 6] = [
        ("crlf", b"one\r\ntwo\r\n"),
        ("nul", b"\0a\0b\0"),
        ("every byte", &every_byte),
        ("empty", b""),
        ("looks like a reply", b"$-1\r\n*1\r\n-ERR no\r\n"),
        ("1 MiB", &mib),
    ];
    for (name, value) in values {
        let key = [b"key\r\n\0".as_slice(), name.as_bytes()].concat();
        let r: Value = redis::cmd("SET").arg(&key).arg(value).query(&mut con).expect("SET");
        assert_eq!(r, Value::Okay, "SET {name}");
        let got: Value = redis::cmd("GET").arg(&key).query(&mut con).expect("GET");
        // Compare as bytes first so a mismatch does not print a MiB.
        let Value::BulkString(got) = got else { panic!("GET {name}: {got:?}") };
        assert!(got == value, "{name}: {} bytes back for {}", got.len(), value.len());
    }
    // A binary key with every byte value works as a key too.
    let _: () = redis::cmd("SET").arg(&every_byte).arg("v").query(&mut con).unwrap();
    assert_eq!(redis::cmd("EXISTS").arg(&every_byte).query::<i64>(&mut con).unwrap(), 1);
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut con).unwrap(), 7);
}

#[test]
fn transactions_multi_exec_discard() {
    let (srv, _dir) = Server::start(&[]);
    let mut con = connect(&srv);
    // The redis crate's atomic pipeline wraps the commands in MULTI/EXEC.
    let (a, n): (String, i64) =
        redis::pipe().atomic().set("t:a", "1").ignore().get("t:a").del("t:a").query(&mut con).expect("atomic pipe");
    assert_eq!((a.as_str(), n), ("1", 1));
    // Exact replies, over a raw socket.
    let mut c = srv.client();
    let mut sent = Vec::new();
    for args in [&[&b"MULTI"[..]][..], &[b"SET", b"k", b"v"], &[b"GET", b"k"], &[b"EXEC"], &[b"EXEC"]] {
        sent.extend(request(args));
    }
    c.send(&sent);
    let want = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n$1\r\nv\r\n-ERR EXEC without MULTI\r\n";
    assert_eq!(show(&c.read_exact(want.len())), show(want));
    // DISCARD drops the queue; a refused command aborts EXEC; no nesting.
    let mut sent = Vec::new();
    for args in [
        &[&b"MULTI"[..]][..],
        &[b"SET", b"d", b"1"],
        &[b"DISCARD"],
        &[b"DISCARD"],
        &[b"MULTI"],
        &[b"MULTI"],
        &[b"SET", b"e", b"1"],
        &[b"GET"],
        &[b"EXEC"],
        &[b"GET", b"d"],
        &[b"GET", b"e"],
    ] {
        sent.extend(request(args));
    }
    c.send(&sent);
    let want = b"+OK\r\n+QUEUED\r\n+OK\r\n-ERR DISCARD without MULTI\r\n+OK\r\n\
-ERR MULTI calls can not be nested\r\n+QUEUED\r\n-ERR wrong number of arguments for 'get' command\r\n\
-EXECABORT Transaction discarded because of previous errors.\r\n$-1\r\n$-1\r\n";
    assert_eq!(show(&c.read_exact(want.len())), show(want));
}

#[test]
fn keys_cross_protocols() {
    let (srv, _dir) = Server::start(&[]);
    let mut con = connect(&srv);
    let mut text = srv.client();

    let _: () = redis::cmd("SET").arg("from-resp").arg("hello").query(&mut con).unwrap();
    assert_eq!(text.cmd("GET from-resp"), "hello");

    assert_eq!(text.cmd("PUT from-text world"), "OK");
    assert_eq!(redis::cmd("GET").arg("from-text").query::<Value>(&mut con).unwrap(), bulk("world"));

    assert_eq!(text.cmd("DEL from-resp"), "OK");
    assert_eq!(redis::cmd("EXISTS").arg("from-resp").query::<i64>(&mut con).unwrap(), 0);
    // A value the line protocol cannot carry is refused there, not mangled.
    let _: () = redis::cmd("SET").arg("multi-line").arg("a\r\nb").query(&mut con).unwrap();
    let line = text.cmd("GET multi-line");
    assert!(line.starts_with("ERROR "), "text GET of a value with CRLF: {line:?}");
    // RESP and text requests on one connection, each answered in its own protocol.
    text.send(b"PING\n");
    text.send(&request(&[b"GET", b"from-text"]));
    text.send(b"GET from-text\n");
    assert_eq!(text.line(), "PONG");
    assert_eq!(read_reply(&mut text.reader), b"$5\r\nworld\r\n");
    assert_eq!(text.line(), "world");
}

#[test]
fn redis_crate_server_commands() {
    let (srv, _dir) = Server::start(&[]);
    let mut con = connect(&srv);

    assert_eq!(q(&mut con, &redis::cmd("PING")), Value::SimpleString("PONG".into()));
    assert_eq!(q(&mut con, redis::cmd("PING").arg("hi there")), bulk("hi there"));
    assert_eq!(q(&mut con, redis::cmd("ECHO").arg("a\r\nb")), bulk("a\r\nb"));

    assert_eq!(q(&mut con, redis::cmd("SELECT").arg(0)), Value::Okay);
    let e = query_err(&mut con, redis::cmd("SELECT").arg(1));
    assert!(e.starts_with("ERR ") && e.contains("out of range"), "SELECT 1: {e}");

    let e = query_err(&mut con, redis::cmd("NOSUCHCMD").arg("x"));
    assert!(e.starts_with("ERR unknown command"), "unknown command: {e}");
    let e = query_err(&mut con, &redis::cmd("GET"));
    assert_eq!(e, "ERR wrong number of arguments for 'get' command");
    let e = query_err(&mut con, redis::cmd("get").arg("a").arg("b"));
    assert_eq!(e, "ERR wrong number of arguments for 'get' command");

    let _: () = redis::cmd("MSET").arg("a").arg("1").arg("b").arg("2").arg("c").arg("3").query(&mut con).unwrap();
    let info: String = redis::cmd("INFO").query(&mut con).expect("INFO");
    assert!(info.starts_with("# Server\r\n"), "INFO:\n{info}");
    assert!(info.contains("\r\nredis_version:"), "INFO:\n{info}");
    assert!(info.contains("# Keyspace\r\ndb0:keys=3,"), "INFO:\n{info}");
    let server: String = redis::cmd("INFO").arg("server").query(&mut con).expect("INFO server");
    assert!(server.contains("redis_version:") && !server.contains("# Keyspace"), "INFO server:\n{server}");

    // CLIENT: the name is per connection, the id differs between connections.
    assert_eq!(q(&mut con, redis::cmd("CLIENT").arg("GETNAME")), Value::Nil);
    assert_eq!(q(&mut con, redis::cmd("CLIENT").arg("SETNAME").arg("rust-test")), Value::Okay);
    assert_eq!(q(&mut con, redis::cmd("CLIENT").arg("GETNAME")), bulk("rust-test"));
    let e = query_err(&mut con, redis::cmd("CLIENT").arg("SETNAME").arg("has space"));
    assert!(e.starts_with("ERR "), "{e}");
    let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut con).unwrap();
    let mut other = connect(&srv);
    let other_id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut other).unwrap();
    assert!(id > 0 && other_id > 0 && id != other_id, "ids {id} and {other_id}");
    assert_eq!(q(&mut other, redis::cmd("CLIENT").arg("GETNAME")), Value::Nil);

    let count: i64 = redis::cmd("COMMAND").arg("COUNT").query(&mut con).unwrap();
    assert!(count > 0, "COMMAND COUNT {count}");

    // CONFIG GET answers name/value pairs (redis-benchmark asks for these two).
    let save: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("save").query(&mut con).unwrap();
    assert_eq!(save, ["save", ""]);
    let aof: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("appendonly").query(&mut con).unwrap();
    assert_eq!(aof, ["appendonly", "yes"]);
    let both: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("save").arg("appendonly").query(&mut con).unwrap();
    assert_eq!(both.len(), 4, "{both:?}");
    let none: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("no-such-param").query(&mut con).unwrap();
    assert!(none.is_empty(), "{none:?}");
}

#[test]
fn hello_3_switches_to_resp3_replies() {
    let (srv, _dir) = Server::start(&[]);
    let mut c = Client::connect(srv.port);

    assert_eq!(raw_cmd(&mut c, &[b"GET", b"missing"]), b"$-1\r\n");
    let hello = raw_cmd(&mut c, &[b"HELLO", b"3"]);
    assert!(hello.starts_with(b"%7\r\n"), "HELLO 3: {}", show(&hello));
    let h = show(&hello);
    assert!(h.contains(r"$5\r\nproto\r\n:3\r\n"), "HELLO 3: {h}");
    assert!(h.contains(r"$6\r\nserver\r\n$5\r\nredis\r\n"), "HELLO 3: {h}");
    assert_eq!(raw_cmd(&mut c, &[b"GET", b"missing"]), b"_\r\n");
    assert_eq!(raw_cmd(&mut c, &[b"MGET", b"missing"]), b"*1\r\n_\r\n");

    // An unsupported version is refused and changes nothing.
    let nope = raw_cmd(&mut c, &[b"HELLO", b"4"]);
    assert!(nope.starts_with(b"-NOPROTO "), "HELLO 4: {}", show(&nope));
    assert_eq!(raw_cmd(&mut c, &[b"GET", b"missing"]), b"_\r\n");

    // HELLO 2 goes back; a map is then a flat array.
    let hello2 = raw_cmd(&mut c, &[b"HELLO", b"2"]);
    assert!(hello2.starts_with(b"*14\r\n"), "HELLO 2: {}", show(&hello2));
    assert_eq!(raw_cmd(&mut c, &[b"GET", b"missing"]), b"$-1\r\n");

    // Another connection is not affected by this one's HELLO.
    let mut other = Client::connect(srv.port);
    let _ = raw_cmd(&mut c, &[b"HELLO", b"3"]);
    assert_eq!(raw_cmd(&mut other, &[b"GET", b"missing"]), b"$-1\r\n");

    // The redis crate: HELLO 4 is a NOPROTO error; in RESP3 mode its
    // handshake (HELLO 3) succeeds and replies decode.
    let mut con = connect(&srv);
    let e = redis::cmd("HELLO").arg(4).query::<Value>(&mut con).expect_err("HELLO 4");
    assert_eq!(e.code(), Some("NOPROTO"), "{e}");
    let mut con3 = connect_with(&srv, "?protocol=resp3");
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con3).unwrap();
    assert_eq!(redis::cmd("GET").arg("missing").query::<Value>(&mut con3).unwrap(), Value::Nil);
    assert_eq!(
        redis::cmd("MGET").arg("k").arg("missing").query::<Value>(&mut con3).unwrap(),
        Value::Array(vec![bulk("v"), Value::Nil])
    );
    let info: String = redis::cmd("INFO").query(&mut con3).expect("INFO over RESP3");
    assert!(info.contains("redis_version:"), "{info}");
    let cfg = redis::cmd("CONFIG").arg("GET").arg("appendonly").query::<Value>(&mut con3).unwrap();
    assert_eq!(cfg, Value::Map(vec![(bulk("appendonly"), bulk("yes"))]));
}

// ---------------------------------------------------------------- hostile RESP

#[test]
fn arguments_quoted_in_errors_cannot_forge_replies() {
    let (mut srv, _dir) = Server::start(&[]);
    let mut c = Client::connect(srv.port);
    // Each of these error replies quotes an argument. A CR or LF copied
    // into the error line would end it early and turn the rest into a
    // forged reply (and a debug build used to panic on it).
    let requests: [&[&[u8]]; 5] = [
        &[b"CLIENT", b"x\r\n+FORGED"],
        &[b"CLIENT", b"SETINFO", b"a\r\n:1", b"v"],
        &[b"HELLO", b"3", b"bad\r\n$1\r\nx"],
        &[b"NO\r\nSUCH", b"arg\r\n+FORGED"],
        &[b"GET", b"\r\n", b"\n"],
    ];
    for args in requests {
        let reply = raw_cmd(&mut c, args);
        let body = &reply[..reply.len() - 2];
        assert!(
            reply.starts_with(b"-ERR ") && !body.contains(&b'\r') && !body.contains(&b'\n'),
            "{}: {}",
            show(&request(args)),
            show(&reply)
        );
        assert_eq!(raw_cmd(&mut c, &[b"PING"]), b"+PONG\r\n", "after {}", show(&request(args)));
    }
    assert!(srv.is_running(), "the server exited");

    // HELLO SETNAME checks the name as CLIENT SETNAME does, and a refused
    // name fails the whole HELLO: the connection stays on RESP2.
    let e = raw_cmd(&mut c, &[b"HELLO", b"3", b"SETNAME", b"has space"]);
    assert!(e.starts_with(b"-ERR Client names cannot contain"), "{}", show(&e));
    assert_eq!(raw_cmd(&mut c, &[b"GET", b"missing"]), b"$-1\r\n");
    assert_eq!(raw_cmd(&mut c, &[b"CLIENT", b"GETNAME"]), b"$-1\r\n");
    let hello = raw_cmd(&mut c, &[b"HELLO", b"3", b"SETNAME", b"good-name"]);
    assert!(hello.starts_with(b"%7\r\n"), "{}", show(&hello));
    assert_eq!(raw_cmd(&mut c, &[b"CLIENT", b"GETNAME"]), b"$9\r\ngood-name\r\n");
}

#[test]
fn hostile_resp_is_refused_and_only_that_connection_closed() {
    let (mut srv, _dir) = Server::start(&["--max-bulk", "1024", "--max-line", "1024"]);
    let endless_count = [b"*".as_slice(), &[b'1'; 2000]].concat();
    let endless_length = [b"*1\r\n$".as_slice(), &[b'1'; 2000]].concat();
    let cases: [(&str, &[u8], &str); 8] = [
        // Headers without end, in Redis's words for them.
        ("endless multibulk count", &endless_count, "too big mbulk count string"),
        ("endless bulk length", &endless_length, "too big bulk count string"),
        ("negative bulk length", b"*1\r\n$-5\r\n", "invalid bulk length"),
        ("multibulk length past i64", b"*99999999999999999999\r\n", "invalid multibulk length"),
        ("bulk longer than --max-bulk", b"*2\r\n$3\r\nGET\r\n$2000\r\n", "invalid bulk length"),
        ("nested array", b"*1\r\n*1\r\n$4\r\nPING\r\n", "expected '$', got '*'"),
        ("no CRLF after a bulk", b"*2\r\n$3\r\nGET\r\n$1\r\nkXY", "expected CRLF after bulk"),
        ("RESP after a valid request", b"*1\r\n$4\r\nPING\r\n*1\r\n$x\r\n", "invalid bulk length"),
    ];
    let mut stats = srv.client();
    let mut bystander = Client::connect(srv.port);
    for (i, (name, bytes, why)) in cases.into_iter().enumerate() {
        // The bystander is in the middle of a request of its own throughout.
        let key = format!("bystander-{i}");
        let set = request(&[b"SET", key.as_bytes(), name.as_bytes()]);
        let (head, tail) = set.split_at(set.len() / 2);
        bystander.send(head);

        let mut bad = Client::connect(srv.port);
        bad.send(bytes);
        let got = read_to_eof(&mut bad);
        let text = String::from_utf8_lossy(&got);
        let want = format!("-ERR Protocol error: {why}\r\n");
        // Replies to requests before the bad one still arrive, in order.
        let want = if name.starts_with("RESP after") { format!("+PONG\r\n{want}") } else { want };
        assert_eq!(text, want, "{name}: {}", show(bytes));

        bystander.send(tail);
        assert_eq!(read_reply(&mut bystander.reader), b"+OK\r\n", "{name}: bystander SET");
        let value = raw_cmd(&mut bystander, &[b"GET", key.as_bytes()]);
        assert_eq!(value, [format!("${}\r\n", name.len()).as_bytes(), name.as_bytes(), b"\r\n"].concat());
        assert!(srv.is_running(), "{name}: the server exited");
        assert_eq!(stats.stat("protocol_errors"), (i + 1).to_string(), "{name}");
    }
    assert_eq!(stats.stat("keys"), cases.len().to_string());
}

#[test]
fn huge_declared_bulk_then_disconnect_costs_no_memory() {
    const LIMIT_KIB: u64 = 200 * 1024;
    // By default a 1e9 bulk is over --max-bulk (512 MiB) and refused at
    // once; with the limits raised it is legal, and the server must wait for
    // its bytes without reserving room for them.
    for args in [&[][..], &["--max-bulk", "1000000000", "--max-request", "1100000000"]] {
        let (mut srv, _dir) = Server::start(args);
        let mut watcher = srv.client();
        // Nothing else is connected (the harness connects no probe; this makes sure).
        wait_for("only the watcher to be connected", || watcher.stat("connections") == "1");

        let mut c = Client::connect(srv.port);
        c.send(b"*1\r\n$1000000000\r\n0123456789abcdef");
        // Whatever it does with that, the server serves others meanwhile...
        assert_eq!(watcher.cmd("PING"), "PONG");
        assert_eq!(raw_cmd(&mut watcher, &[b"SET", b"k", b"v"]), b"+OK\r\n");
        let during = rss_kib(&srv);
        assert!(during < LIMIT_KIB, "{args:?}: RSS {during} KiB while a 1 GB bulk is pending");
        // ...and forgets it when the client just goes away.
        drop(c);
        wait_for("the server to notice the disconnect", || watcher.stat("connections") == "1");
        assert!(srv.is_running(), "{args:?}: the server exited");
        assert_eq!(watcher.cmd("GET k"), "v");
        let after = rss_kib(&srv);
        assert!(after < LIMIT_KIB, "{args:?}: RSS {after} KiB after the disconnect");
    }
}

// ---------------------------------------------------------------- redis-py

#[test]
fn redis_py_with_resp3_and_resp2() {
    let import = Command::new("python3").args(["-c", "import redis"]).output();
    assert!(import.is_ok_and(|o| o.status.success()), "redis-py missing: pip install redis");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/redis_py_check.py");
    let (srv, _dir) = Server::start(&[]);
    let port = srv.port.to_string();
    for protocol in ["3", "2"] {
        let ran = run("python3", &[script, &port, protocol], b"");
        assert!(ran.status.success(), "redis_py_check.py with protocol {protocol} failed:\n{}", ran.describe());
        assert!(ran.stdout.contains("all redis-py checks passed"), "{}", ran.describe());
    }
}

// ---------------------------------------------------------------- redis-tools

#[test]
fn redis_cli_one_shot_and_stdin() {
    require("redis-cli", "install redis-tools");
    let (srv, _dir) = Server::start(&[]);
    let port = srv.port.to_string();
    let cli = |args: &[&str], stdin: &[u8]| {
        let all: Vec<&str> = ["-h", "127.0.0.1", "-p", &port].iter().copied().chain(args.iter().copied()).collect();
        let ran = run("redis-cli", &all, stdin);
        assert!(ran.status.success(), "redis-cli {args:?}: {}", ran.describe());
        ran.stdout
    };

    assert_eq!(cli(&["SET", "k", "v"], b""), "OK\n");
    assert_eq!(cli(&["GET", "k"], b""), "v\n");
    assert_eq!(cli(&["DBSIZE"], b""), "1\n");
    assert_eq!(srv.client().cmd("GET k"), "v");

    // Commands on stdin, one per line; a nil prints as an empty line.
    let out = cli(&[], b"SET a 1\nGET a\nEXISTS a a k\nDEL a\nGET a\nDBSIZE\nPING\nECHO \"x y\"\n");
    assert_eq!(out, "OK\n1\n3\n1\n\n1\nPONG\nx y\n");
    // Errors are shown (redis-cli adds a blank line after each), and later
    // commands still run.
    let out = cli(&[], b"NOSUCHCMD\nGET\nGET k\n");
    let lines: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("ERR unknown command"), "{out}");
    assert_eq!(lines[1], "ERR wrong number of arguments for 'get' command", "{out}");
    assert_eq!(lines[2], "v", "{out}");

    // -x takes the last argument from stdin, bytes and all.
    assert_eq!(cli(&["-x", "SET", "blob"], b"a\r\nb\0c"), "OK\n");
    let mut con = connect(&srv);
    assert_eq!(redis::cmd("GET").arg("blob").query::<Value>(&mut con).unwrap(), bulk(&b"a\r\nb\0c"[..]));
    // RESP3 (redis-cli sends HELLO 3).
    assert_eq!(cli(&["-3", "GET", "k"], b""), "v\n");
    assert!(cli(&["INFO", "server"], b"").contains("redis_version:"));
}

#[test]
fn redis_benchmark_set_get() {
    require("redis-benchmark", "install redis-tools");
    let (srv, _dir) = Server::start(&[]);
    let port = srv.port.to_string();
    let args = ["-h", "127.0.0.1", "-p", &port, "-t", "set,get", "-n", "100000", "-P", "16", "-q"];
    let ran = run("redis-benchmark", &args, b"");
    assert!(ran.status.success(), "redis-benchmark failed: {}", ran.describe());

    // -q rewrites a progress line with CR; the final result ends with LF.
    let lines: Vec<&str> = ran.stdout.split(['\r', '\n']).map(str::trim).filter(|l| !l.is_empty()).collect();
    for test in ["SET", "GET"] {
        let result = lines.iter().find(|l| l.starts_with(&format!("{test}: ")) && l.contains(" requests per second"));
        let result = result.unwrap_or_else(|| panic!("no {test} result line: {}", ran.describe()));
        let rps: f64 = result[test.len() + 2..].split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0.0);
        assert!(rps > 0.0, "{test}: {result}");
    }
    let all = format!("{}\n{}", ran.stdout, ran.stderr).to_lowercase();
    for bad in ["err", "warn", "could not", "closed"] {
        assert!(!all.contains(bad), "redis-benchmark said {bad:?}: {}", ran.describe());
    }

    // The requests really ran: the benchmark's key holds its 3-byte value,
    // and the server counted at least the 200,000 requests.
    let mut con = connect(&srv);
    let v: Vec<u8> = redis::cmd("GET").arg("key:__rand_int__").query(&mut con).expect("benchmark key");
    assert_eq!(v.len(), 3, "{v:?}");
    let commands: u64 = srv.client().stat("commands").parse().expect("commands stat");
    assert!(commands >= 200_000, "server counted {commands} commands");
}
