//! Server and connection commands through the real binary and real
//! clients: redis-cli's own modes (`--stat`, `monitor`, `--latency`),
//! redis-py (tests/server_cmds_check.py), the `redis` crate and raw
//! sockets; CLIENT KILL closing another connection, CLIENT LIST seeing
//! every one, WAIT and SAVE blocking one client and not the loop, a
//! monitor that does not read being disconnected; and replies compared
//! with a real redis-server's, for the same commands.
//!
//! redis-server, redis-cli, redis-py and stdbuf are required: when one is
//! missing, the tests that need it fail and say what to install.

mod common;
use common::resp::{connect_port, connect_url, q, raw_cmd, reply, request};
use common::tools::{Reaped, Streamed, require, run};
use common::*;

use std::process::Command;

use redis::Value;

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

fn show(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

/// A field of an INFO text (`name:value` lines).
fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).map(str::to_string)
}

/// One INFO field read over a fresh `redis` connection.
#[track_caller]
fn info_of(srv: &Server, section: &str, name: &str) -> String {
    let info: String = redis::cmd("INFO").arg(section).query(&mut connect_port(srv.port)).expect("INFO");
    info_field(&info, name).unwrap_or_else(|| panic!("no {name} in INFO {section}:\n{info}"))
}

/// The `key=value` fields of a CLIENT LIST / CLIENT INFO line.
fn client_fields(line: &str) -> Vec<(String, String)> {
    line.split(' ').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

// ---------------------------------------------------------------- redis-cli

#[test]
fn redis_cli_stat_prints_every_column() {
    require("redis-cli", "install redis-tools");
    let (srv, _dir) = Server::start(&[]);
    let mut con = connect_port(srv.port);
    for i in 0..3 {
        let _: () = redis::cmd("SET").arg(format!("k{i}")).arg("v").query(&mut con).unwrap();
    }
    let port = srv.port.to_string();
    let mut stat = Streamed::start("redis-cli", &["-p", &port, "--stat", "-i", "0.1"]);
    stat.line_where("with the column names", |l| l.starts_with("keys"));
    // Two data lines: keys, mem, clients, blocked, requests (+delta), connections.
    for _ in 0..2 {
        let line = stat.line_where("of figures", |l| l.starts_with(|c: char| c.is_ascii_digit()));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[0], "3", "keys: {line}");
        let mem = cols[1];
        assert!(
            mem.ends_with(['B', 'K', 'M', 'G']) && mem[..mem.len() - 1].parse::<f64>().is_ok_and(|m| m > 0.0),
            "mem: {line}"
        );
        assert!(cols[2].parse::<u64>().is_ok_and(|c| c >= 2), "clients: {line}");
        assert_eq!(cols[3], "0", "blocked: {line}");
        assert!(cols[4].parse::<u64>().is_ok() && cols[5].starts_with("(+"), "requests: {line}");
        assert!(cols[6].parse::<u64>().is_ok_and(|c| c >= 2), "connections: {line}");
        assert!(!line.contains("-9223372036854775808"), "a missing INFO field: {line}");
    }
    stat.stop();
}

#[test]
fn redis_cli_latency_gets_its_pongs() {
    require("redis-cli", "install redis-tools");
    let (srv, _dir) = Server::start(&[]);
    let port = srv.port.to_string();
    let mut lat = Streamed::start("redis-cli", &["-p", &port, "--latency"]);
    // Not on a terminal, it prints "min max avg samples" (ms, ms, ms, count).
    let line = lat.line_where("of figures", |l| l.split(' ').count() == 4);
    let figures: Vec<f64> = line.split(' ').filter_map(|f| f.parse().ok()).collect();
    assert!(figures.len() == 4 && figures[0] <= figures[1] && figures[3] >= 1.0, "{line}");
    lat.stop();
}

#[test]
fn redis_cli_monitor_sees_other_clients_commands_as_redis_prints_them() {
    require("redis-cli", "install redis-tools");
    let (srv, _dir) = Server::start(&[]);
    let port = srv.port.to_string();
    let mut mon = Streamed::start("redis-cli", &["-p", &port, "monitor"]);
    mon.line_where("OK from MONITOR", |l| l == "OK");
    wait_for("the monitor to be registered", || info_of(&srv, "clients", "kvstore_monitors") == "1");

    let mut con = connect_port(srv.port);
    let _: () = redis::cmd("SET").arg("k").arg("v x\n\"y\"").query(&mut con).unwrap();
    let line = mon.line_where("for the SET", |l| l.contains("\"SET\""));
    // 1700000000.123456 [0 127.0.0.1:50000] "SET" "k" "v x\n\"y\""
    let (time, rest) = line.split_once(' ').expect("a timestamp");
    let (secs, micros) = time.split_once('.').expect("seconds.micros");
    assert!(secs.parse::<u64>().is_ok_and(|s| s > 1_600_000_000) && micros.len() == 6, "{line}");
    let (client, args) = rest.split_once("] ").expect("[db addr]");
    assert!(client.starts_with("[0 127.0.0.1:"), "{line}");
    assert_eq!(args, r#""SET" "k" "v x\n\"y\"""#);

    // Administrative commands are not shown; the next command is.
    let _: redis::Value = redis::cmd("CONFIG").arg("GET").arg("maxclients").query(&mut con).unwrap();
    let _: String = redis::cmd("PING").query(&mut con).unwrap();
    mon.line_where("for the PING", |l| l.ends_with("\"PING\""));
    assert!(!mon.seen.iter().any(|l| l.contains("CONFIG")), "{:#?}", mon.seen);
    mon.stop();
    wait_for("the monitor to be gone", || info_of(&srv, "clients", "kvstore_monitors") == "0");
}

// ---------------------------------------------------------------- CLIENT

#[test]
fn client_list_lists_every_connection_and_kill_closes_another() {
    let (srv, _dir) = Server::start(&[]);
    let mut a = srv.client();
    let mut b = srv.client();
    assert_eq!(raw_cmd(&mut a, &[b"CLIENT", b"SETNAME", b"alice"]), b"+OK\r\n");
    let id_a = String::from_utf8(raw_cmd(&mut a, &[b"CLIENT", b"ID"])).unwrap();
    let id_a = id_a.trim_start_matches(':').trim_end().to_string();

    let mut con = connect_port(srv.port);
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut con).unwrap();
    let lines: Vec<Vec<(String, String)>> = list.lines().map(client_fields).collect();
    assert_eq!(lines.len(), 3, "{list}");
    let alice = lines.iter().find(|f| field(f, "id") == id_a).expect("alice listed");
    assert_eq!(field(alice, "name"), "alice");
    assert_eq!(field(alice, "cmd"), "client|id");
    assert_eq!(field(alice, "flags"), "N");
    assert!(field(alice, "addr").starts_with("127.0.0.1:") && field(alice, "laddr") == srv.addr().to_string());
    let me = lines.iter().find(|f| field(f, "cmd") == "client|list").expect("the caller listed");
    assert!(field(me, "id") != id_a);
    let only: String = redis::cmd("CLIENT").arg("LIST").arg("ID").arg(&id_a).query(&mut con).unwrap();
    assert_eq!(only.lines().count(), 1, "{only}");

    // KILL ID: the other connection is closed; the caller's is not.
    let n: i64 = redis::cmd("CLIENT").arg("KILL").arg("ID").arg(&id_a).query(&mut con).unwrap();
    assert_eq!(n, 1);
    assert!(a.closed_by_server(), "the killed client's connection stays open");
    let n: i64 = redis::cmd("CLIENT").arg("KILL").arg("ID").arg(&id_a).query(&mut con).unwrap();
    assert_eq!(n, 0, "already gone");
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut con).unwrap();
    assert_eq!(list.lines().count(), 2, "{list}");

    // The old form, by address.
    let info = String::from_utf8(raw_cmd(&mut b, &[b"CLIENT", b"INFO"])).unwrap();
    let addr = field(&client_fields(info.lines().nth(1).unwrap_or("")), "addr").to_string();
    assert_eq!(q(&mut con, redis::cmd("CLIENT").arg("KILL").arg(&addr)), Value::Okay);
    assert!(b.closed_by_server());
    let e = reply(&mut con, redis::cmd("CLIENT").arg("KILL").arg(&addr)).unwrap_err();
    assert_eq!(e, "ERR No such client");

    // SKIPME no: the caller gets its reply, then its connection closes.
    let mut c = srv.client();
    let reply = raw_cmd(&mut c, &[b"CLIENT", b"KILL", b"LADDR", srv.addr().to_string().as_bytes(), b"SKIPME", b"no"]);
    assert_eq!(reply, b":2\r\n", "{}", show(&reply));
    assert!(c.closed_by_server());
    wait_for("the kills to be counted", || info_of(&srv, "clients", "connected_clients") == "1");
}

// ---------------------------------------------------------------- WAIT, SAVE

#[test]
fn wait_blocks_only_its_client() {
    let (srv, _dir) = Server::start(&[]);
    let mut con = connect_port(srv.port);
    // No peer: WAIT 0 answers at once, WAIT 1 with a timeout answers 0 at it.
    assert_eq!(q(&mut con, redis::cmd("WAIT").arg(0).arg(0)), Value::Int(0));
    assert_eq!(q(&mut con, redis::cmd("WAIT").arg(1).arg(20)), Value::Int(0));
    // Inside a transaction it never blocks.
    let mut m = srv.client();
    assert_eq!(raw_cmd(&mut m, &[b"MULTI"]), b"+OK\r\n");
    assert_eq!(raw_cmd(&mut m, &[b"WAIT", b"1", b"0"]), b"+QUEUED\r\n");
    assert_eq!(raw_cmd(&mut m, &[b"EXEC"]), b"*1\r\n:0\r\n");

    // WAIT 1 0 blocks for good: the loop serves others meanwhile, INFO and
    // CLIENT LIST show it blocked, and killing it unblocks nothing else.
    let mut w = srv.client();
    w.send(&request(&[b"WAIT", b"1", b"0"]));
    w.send(&request(&[b"PING"]));
    wait_for("the client to block", || info_of(&srv, "clients", "blocked_clients") == "1");
    assert_eq!(q(&mut con, &redis::cmd("PING")), Value::SimpleString("PONG".into()));
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut con).unwrap();
    let blocked = list.lines().map(client_fields).find(|f| field(f, "flags") == "b");
    assert!(blocked.as_ref().is_some_and(|f| field(f, "cmd") == "wait"), "{list}");
    let id = blocked.map(|f| field(&f, "id").to_string()).unwrap_or_default();
    let n: i64 = redis::cmd("CLIENT").arg("KILL").arg("ID").arg(&id).query(&mut con).unwrap();
    assert_eq!(n, 1);
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut w.reader, &mut rest);
    assert!(rest.is_empty(), "a blocked client answered: {}", show(&rest));
    wait_for("no client to be blocked", || info_of(&srv, "clients", "blocked_clients") == "0");

    // A blocked client that hangs up is noticed.
    let mut gone = srv.client();
    gone.send(&request(&[b"WAIT", b"1", b"0"]));
    wait_for("the client to block", || info_of(&srv, "clients", "blocked_clients") == "1");
    drop(gone);
    wait_for("the hung-up client to be reaped", || info_of(&srv, "clients", "blocked_clients") == "0");
}

#[test]
fn wait_counts_the_peers_that_acknowledged_the_clients_writes() {
    let ports = ports_ahead(2);
    let (d1, d2) = (TempDir::new("wait1"), TempDir::new("wait2"));
    let n1 = Server::start_with(d1.path(), &[], &[ports[1]], Some(ports[0]));
    let n2 = Server::start_with(d2.path(), &[], &[ports[0]], Some(ports[1]));
    let mut c1 = connect_port(n1.port);
    wait_for("the link to come up", || {
        let info: String = redis::cmd("INFO").arg("replication").query(&mut c1).unwrap();
        info_field(&info, "connected_slaves").as_deref() == Some("1")
    });
    // The write and the WAIT go in one pipeline: the WAIT must block until
    // the peer acknowledges the write, which arrives in a later iteration.
    let (set, wait): (String, i64) =
        redis::pipe().cmd("SET").arg("w").arg("1").cmd("WAIT").arg(1).arg(0).query(&mut c1).unwrap();
    assert_eq!((set.as_str(), wait), ("OK", 1));
    let got: String = redis::cmd("GET").arg("w").query(&mut connect_port(n2.port)).unwrap();
    assert_eq!(got, "1", "WAIT said the peer has it");
    // Two peers are more than there are: the timeout answers with one.
    assert_eq!(q(&mut c1, redis::cmd("WAIT").arg(2).arg(30)), Value::Int(1));
    // ROLE lists the peer at the counter it acknowledged.
    let Value::Array(role) = q(&mut c1, &redis::cmd("ROLE")) else { panic!("ROLE is an array") };
    assert_eq!(role[0], bulk("master"));
    let Value::Array(peers) = &role[2] else { panic!("ROLE's peers: {role:?}") };
    let [Value::Array(peer)] = peers.as_slice() else { panic!("one peer: {role:?}") };
    assert_eq!(peer[..2], [bulk("127.0.0.1"), bulk(&ports[1].to_string())], "{role:?}");
    let Value::BulkString(acked) = &peer[2] else { panic!("{role:?}") };
    assert!(String::from_utf8_lossy(acked).parse::<u64>().is_ok_and(|a| a >= 1), "{role:?}");
}

#[test]
fn save_answers_once_the_log_is_compacted() {
    let (srv, _dir) = Server::start(&[]);
    let mut con = connect_port(srv.port);
    let before: i64 = redis::cmd("LASTSAVE").query(&mut con).unwrap();
    for i in 0..100 {
        let _: () = redis::cmd("SET").arg(format!("k{i}")).arg("old").query(&mut con).unwrap();
        let _: () = redis::cmd("SET").arg(format!("k{i}")).arg("new").query(&mut con).unwrap();
    }
    let changes = info_of(&srv, "persistence", "rdb_changes_since_last_save");
    assert_eq!(changes, "200");
    assert_eq!(q(&mut con, &redis::cmd("SAVE")), Value::Okay);
    // SAVE answered once the compacted log replaced the old one.
    assert_eq!(info_of(&srv, "persistence", "aof_rewrites"), "1");
    assert_eq!(info_of(&srv, "persistence", "rdb_changes_since_last_save"), "0");
    let after: i64 = redis::cmd("LASTSAVE").query(&mut con).unwrap();
    assert!(after >= before, "LASTSAVE {before} -> {after}");
    let s: String = redis::cmd("BGSAVE").query(&mut con).unwrap();
    assert_eq!(s, "Background saving started");
}

// ---------------------------------------------------------------- CONFIG, RESET, MONITOR limits

#[test]
fn config_set_changes_what_the_server_does() {
    let (srv, _dir) = Server::start(&[]);
    let mut con = connect_port(srv.port);
    let stat = |con: &mut redis::Connection, name: &str| {
        let info: String = redis::cmd("INFO").arg("stats").query(con).expect("INFO");
        info_field(&info, name).unwrap_or_default()
    };
    assert_eq!(q(&mut con, redis::cmd("CONFIG").arg("SET").arg("maxclients").arg(1)), Value::Okay);
    let mut extra = srv.client();
    let refused = common::resp::read_reply(&mut extra.reader);
    assert_eq!(refused, b"-ERR max number of clients reached\r\n");
    assert_eq!(stat(&mut con, "rejected_connections"), "1");
    assert_eq!(q(&mut con, redis::cmd("CONFIG").arg("SET").arg("maxclients").arg(100)), Value::Okay);
    let all: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("maxclients").query(&mut con).unwrap();
    assert_eq!(all, ["maxclients", "100"]);
    // A setting that cannot change says so; a failed SET changes nothing.
    let e = reply(&mut con, redis::cmd("CONFIG").arg("SET").arg("maxclients").arg(7).arg("appendfsync").arg("no"));
    assert!(e.unwrap_err().contains("'appendfsync'"));
    let all: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("maxclients").query(&mut con).unwrap();
    assert_eq!(all, ["maxclients", "100"]);
    // RESETSTAT zeroes the counters.
    assert_eq!(q(&mut con, redis::cmd("CONFIG").arg("RESETSTAT")), Value::Okay);
    assert_eq!(stat(&mut con, "rejected_connections"), "0");
}

#[test]
fn a_monitor_that_does_not_read_is_disconnected_at_the_hard_limit() {
    let (srv, _dir) = Server::start(&[]);
    let mut con = connect_port(srv.port);
    let set = redis::cmd("CONFIG")
        .arg("SET")
        .arg("output-soft-limit")
        .arg("64kb")
        .arg("client-output-buffer-limit")
        .arg("normal 256kb 0 0")
        .clone();
    let _: () = set.query(&mut con).unwrap();
    let mut mon = srv.client();
    assert_eq!(raw_cmd(&mut mon, &[b"MONITOR"]), b"+OK\r\n");
    // It never reads again. Every SET's line (~64 KiB) goes to its output,
    // past what the socket buffers take, until the hard limit.
    let value = "x".repeat(64 << 10);
    wait_for("the monitor to be disconnected", || {
        for _ in 0..16 {
            let _: () = redis::cmd("SET").arg("k").arg(&value).query(&mut con).unwrap();
        }
        info_of(&srv, "clients", "kvstore_monitors") == "0"
    });
    assert!(srv.log_text().contains("MONITOR output over the output hard limit"), "{}", srv.log_text());
    assert!(mon.closed_by_server());
}

#[test]
fn reset_gives_back_a_fresh_connection() {
    let (srv, _dir) = Server::start(&[]);
    let mut c = srv.client();
    assert_eq!(raw_cmd(&mut c, &[b"CLIENT", b"SETNAME", b"before"]), b"+OK\r\n");
    assert!(raw_cmd(&mut c, &[b"HELLO", b"3"]).starts_with(b"%7\r\n"));
    assert_eq!(raw_cmd(&mut c, &[b"MULTI"]), b"+OK\r\n");
    assert_eq!(raw_cmd(&mut c, &[b"RESET"]), b"+RESET\r\n", "RESET runs at once inside MULTI");
    assert_eq!(raw_cmd(&mut c, &[b"EXEC"]), b"-ERR EXEC without MULTI\r\n");
    assert_eq!(raw_cmd(&mut c, &[b"CLIENT", b"GETNAME"]), b"$-1\r\n", "RESP2 again, and no name");
    assert_eq!(raw_cmd(&mut c, &[b"MONITOR"]), b"+OK\r\n");
    assert_eq!(raw_cmd(&mut c, &[b"RESET"]), b"+RESET\r\n");
    assert_eq!(info_of(&srv, "clients", "kvstore_monitors"), "0");
}

// ---------------------------------------------------------------- redis-py

#[test]
fn redis_py_reads_info_client_config_and_the_rest() {
    let import = Command::new("python3").args(["-c", "import redis"]).output();
    assert!(import.is_ok_and(|o| o.status.success()), "redis-py missing: pip install redis");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/server_cmds_check.py");
    for protocol in ["2", "3"] {
        let (srv, _dir) = Server::start(&[]);
        let ran = run("python3", &[script, &srv.port.to_string(), protocol], b"");
        assert!(ran.status.success(), "server_cmds_check.py (RESP{protocol}) failed:\n{}", ran.describe());
        assert!(ran.stdout.contains("all server command checks passed"), "{}", ran.describe());
    }
}

#[test]
fn info_commandstats_counts_calls_failures_and_refusals_as_redis_names_them() {
    let (srv, _dir) = Server::start(&[]);
    let mut c = connect_port(srv.port);
    let _: () = redis::cmd("SET").arg("n").arg("x").query(&mut c).expect("SET");
    let _: Option<String> = redis::cmd("GET").arg("n").query(&mut c).expect("GET");
    let _: Option<String> = redis::cmd("GET").arg("missing").query(&mut c).expect("GET");
    assert!(redis::cmd("INCR").arg("n").query::<i64>(&mut c).is_err(), "not an integer");
    assert!(redis::cmd("GET").arg("a").arg("b").query::<String>(&mut c).is_err(), "wrong count");
    assert!(redis::cmd("LPUSH").arg("l").arg("a").query::<i64>(&mut c).is_err(), "unknown");
    let _: i64 = redis::cmd("CLIENT").arg("ID").query(&mut c).expect("CLIENT ID");
    let stat = |name: &str| info_of(&srv, "commandstats", &format!("cmdstat_{name}"));
    assert_eq!(stat("get"), "calls=2,usec=0,usec_per_call=0.00,rejected_calls=1,failed_calls=0");
    assert_eq!(stat("incr"), "calls=1,usec=0,usec_per_call=0.00,rejected_calls=0,failed_calls=1");
    assert_eq!(stat("client|id"), "calls=1,usec=0,usec_per_call=0.00,rejected_calls=0,failed_calls=0");
    // Two wrong-count/not-an-integer errors and the unknown command: ERR.
    assert_eq!(info_of(&srv, "errorstats", "errorstat_ERR"), "count=3");
    // Redis's selection: `all` and `everything` have them, the default not.
    let text =
        |args: &[&str]| -> String { redis::cmd("INFO").arg(args).query(&mut connect_port(srv.port)).expect("INFO") };
    for (args, has) in [(&[][..], false), (&["default"], false), (&["all"], true), (&["everything"], true)] {
        let info = text(args);
        assert_eq!(info.contains("rejected_calls="), has, "INFO {args:?}");
        assert_eq!(info.contains("# Errorstats"), has, "INFO {args:?}");
    }
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut c).expect("RESETSTAT");
    let after = text(&["commandstats"]);
    assert_eq!(info_field(&after, "cmdstat_get"), None, "{after}");
}

// ---------------------------------------------------------------- against redis-server

/// A throwaway redis-server on a Unix socket (no TCP port to race for),
/// with nothing saved.
struct RedisServer {
    _child: Reaped,
    sock: std::path::PathBuf,
    _dir: TempDir,
}

impl RedisServer {
    #[track_caller]
    fn start() -> RedisServer {
        require("redis-server", "install redis-server");
        let dir = TempDir::new("redis");
        let sock = dir.path().join("redis.sock");
        let child = Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no", "--unixsocket"])
            .arg(&sock)
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start redis-server");
        let child = Reaped(child);
        wait_for("redis-server's socket", || std::os::unix::net::UnixStream::connect(&sock).is_ok());
        RedisServer { _child: child, sock, _dir: dir }
    }

    fn connect(&self) -> redis::Connection {
        connect_url(&format!("redis+unix://{}", self.sock.display()))
    }
}

#[test]
fn replies_match_redis_server() {
    let redis_srv = RedisServer::start();
    let (srv, _dir) = Server::start(&[]);
    let (mut theirs, mut ours) = (redis_srv.connect(), connect_port(srv.port));
    let cases: &[&[&str]] = &[
        &["CLIENT", "KILL", "1.2.3.4:5"],
        &["CLIENT", "KILL", "ID", "abc"],
        &["CLIENT", "KILL", "ID", "0"],
        &["CLIENT", "KILL", "ID", "999"],
        &["CLIENT", "KILL", "TYPE", "foo"],
        &["CLIENT", "KILL", "foo", "bar"],
        &["CLIENT", "KILL", "ID"],
        &["CLIENT", "KILL", "SKIPME", "maybe"],
        &["CLIENT", "KILL", "USER", "nobody"],
        &["CLIENT", "KILL", "ADDR", "1.2.3.4:5", "SKIPME", "yes"],
        &["CLIENT"],
        &["CLIENT", "foo"],
        &["CLIENT", "ID", "x"],
        &["CLIENT", "LIST", "ID"],
        &["CLIENT", "LIST", "ID", "abc"],
        &["CLIENT", "LIST", "ID", "99"],
        &["CLIENT", "LIST", "TYPE", "foo"],
        &["CLIENT", "LIST", "foo"],
        &["CLIENT", "NO-EVICT", "maybe"],
        &["CLIENT", "NO-EVICT", "on"],
        &["CLIENT", "SETNAME", "a b"],
        &["CLIENT", "SETNAME", "ok"],
        &["CLIENT", "GETNAME"],
        &["CLIENT", "GETNAME", "x"],
        &["CONFIG"],
        &["CONFIG", "GET"],
        &["CONFIG", "foo"],
        &["CONFIG", "SET", "nosuch", "1"],
        &["CONFIG", "SET", "maxclients"],
        &["CONFIG", "SET", "maxclients", "abc"],
        &["CONFIG", "SET", "maxclients", "0"],
        &["CONFIG", "SET", "maxclients", "10000", "maxclients", "5"],
        &["CONFIG", "SET", "daemonize", "yes"],
        &["CONFIG", "SET", "auto-aof-rewrite-percentage", "-1"],
        &["CONFIG", "SET", "maxclients", "123"],
        &["CONFIG", "GET", "maxclients"],
        &["CONFIG", "GET", "MAXCLIENTS"],
        &["CONFIG", "GET", "no-such-param"],
        &["CONFIG", "RESETSTAT"],
        &["CONFIG", "REWRITE"],
        &["WAIT"],
        &["WAIT", "0", "0"],
        &["WAIT", "a", "0"],
        &["WAIT", "0", "-1"],
        &["WAIT", "0", "a"],
        &["FUNCTION"],
        &["FUNCTION", "foo"],
        &["FUNCTION", "FLUSH"],
        &["FUNCTION", "FLUSH", "async"],
        &["FUNCTION", "FLUSH", "x"],
        &["FUNCTION", "LIST"],
        &["FUNCTION", "LIST", "WITHCODE", "LIBRARYNAME", "x"],
        &["FUNCTION", "LIST", "LIBRARYNAME"],
        &["FUNCTION", "LIST", "foo"],
        &["FUNCTION", "DELETE", "x"],
        &["FUNCTION", "KILL"],
        &["COMMAND", "foo"],
        &["COMMAND", "LIST", "x"],
        &["COMMAND", "LIST", "FILTERBY", "foo", "x"],
        &["COMMAND", "LIST", "FILTERBY", "MODULE", "x"],
        &["COMMAND", "INFO", "nosuch"],
        &["COMMAND", "DOCS", "nosuch"],
        &["COMMAND", "COUNT", "x"],
        &["COMMAND", "GETKEYS", "SET", "a", "b"],
        &["COMMAND", "GETKEYS", "MSET", "a", "b", "c", "d"],
        &["COMMAND", "GETKEYS", "nosuch", "a"],
        // A container's keys are its subcommand's.
        &["COMMAND", "GETKEYS", "MEMORY", "USAGE", "k"],
        &["COMMAND", "GETKEYS", "memory", "usage", "k", "SAMPLES", "5"],
        &["COMMAND", "GETKEYS", "MEMORY", "nosuch", "k"],
        &["COMMAND", "GETKEYS", "CLIENT", "LIST"],
        &["COMMAND", "GETKEYS", "CLIENT"],
        &["BGSAVE", "foo"],
        &["RESET"],
        &["RESET", "x"],
        &["TIME", "x"],
        &["LASTSAVE", "x"],
        &["ROLE", "x"],
        &["MONITOR", "x"],
        &["SAVE", "x"],
        &["ECHO"],
        &["PING", "a", "b"],
        &["SELECT", "x"],
    ];
    let mut diffs = Vec::new();
    for case in cases {
        let mut cmd = redis::cmd(case[0]);
        for a in &case[1..] {
            cmd.arg(*a);
        }
        let (want, got) = (reply(&mut theirs, &cmd), reply(&mut ours, &cmd));
        if want != got {
            diffs.push(format!("{}:\n  redis-server: {want:?}\n  kvstore:      {got:?}", case.join(" ")));
        }
    }
    assert!(diffs.is_empty(), "{} of {} replies differ:\n{}", diffs.len(), cases.len(), diffs.join("\n"));
}
