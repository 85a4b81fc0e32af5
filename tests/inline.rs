//! Redis inline commands (a line ending in `\r\n`) through the real binary:
//! redis-benchmark's inline tests, telnet-style sessions with quoting, the
//! replies compared byte for byte with a real redis-server's; and the
//! netcat text protocol (a line ending in a bare `\n`), unchanged beside it.
//!
//! Each session is sent in one write, the sending side is then closed, and
//! everything the server sends until it closes is compared whole: both
//! servers answer every request of the input before they close.
//!
//! redis-tools and redis-server are required: when missing, the tests that
//! need them fail and say what to install (scripts/test.sh installs them).

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

fn show(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

/// Sends `script` over `s` in one write, closes the sending side, and
/// returns everything the server sent until it closed the connection.
#[track_caller]
fn exchange<S: Read + Write>(mut s: S, script: &[u8], shutdown: impl FnOnce(&S)) -> Vec<u8> {
    s.write_all(script).expect("send");
    shutdown(&s);
    let mut all = Vec::new();
    if let Err(e) = s.read_to_end(&mut all) {
        panic!("no end of the replies to {:?} ({e}); got {:?}", show(script), show(&all));
    }
    all
}

/// [`exchange`] with kvstore on `port`.
#[track_caller]
fn transcript(port: u16, script: &[u8]) -> Vec<u8> {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    exchange(s, script, |s| s.shutdown(Shutdown::Write).expect("shutdown"))
}

/// Checks the replies to `script` are exactly `want`; on a difference, shows
/// where the two part (a long session's whole text would bury it).
#[track_caller]
fn assert_transcript(port: u16, script: &[u8], want: &[u8]) {
    let got = transcript(port, script);
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
        let around = |b: &[u8]| show(&b[at.saturating_sub(60)..b.len().min(at + 60)]);
        let script = show(&script[..script.len().min(400)]);
        panic!("replies differ at byte {at}:\n got: …{}…\nwant: …{}…\nscript: {script}", around(&got), around(want));
    }
}

/// A redis-server on a Unix socket in `dir` (no TCP port to race for),
/// killed when dropped.
struct Redis {
    child: Child,
    socket: std::path::PathBuf,
}

impl Redis {
    #[track_caller]
    fn start(dir: &Path) -> Redis {
        let ok = Command::new("redis-server").arg("--version").output().is_ok_and(|o| o.status.success());
        assert!(ok, "redis-server not found: install redis-server (scripts/test.sh does)");
        let socket = dir.join("redis.sock");
        let child = Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no", "--unixsocket"])
            .arg(&socket)
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let redis = Redis { child, socket };
        wait_for("redis-server to listen on its socket", || UnixStream::connect(&redis.socket).is_ok());
        redis
    }

    #[track_caller]
    fn transcript(&self, script: &[u8]) -> Vec<u8> {
        let s = UnixStream::connect(&self.socket).expect("connect to redis-server");
        s.set_read_timeout(Some(DEADLINE)).expect("timeout");
        exchange(s, script, |s| s.shutdown(Shutdown::Write).expect("shutdown"))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- sessions

#[test]
fn a_telnet_session_with_quoting_gets_redis_replies() {
    let (srv, _dir) = Server::start(&[]);
    let session: &[(&[u8], &[u8])] = &[
        (b"PING\r\n", b"+PONG\r\n"),
        // Empty and blank lines: no reply.
        (b"\r\n", b""),
        (b"  \t\r\n", b""),
        (b"SET greeting \"hello world\"\r\n", b"+OK\r\n"),
        (b"get greeting\r\n", b"$11\r\nhello world\r\n"),
        (b"SET esc \"tab\\there\\x21\\n\"\r\n", b"+OK\r\n"),
        (b"GET esc\r\n", b"$10\r\ntab\there!\n\r\n"),
        (b"SET q 'it\\'s \"quoted\"'\r\n", b"+OK\r\n"),
        (b"GET q\r\n", b"$13\r\nit's \"quoted\"\r\n"),
        (b"ECHO \"\"\r\n", b"$0\r\n\r\n"),
        (b"DEL greeting esc nosuch\r\n", b":2\r\n"),
        (b"EXISTS q\r\n", b":1\r\n"),
        // kvstore's own commands inline: PUT is SET without options.
        (b"PUT p \"a value\"\r\n", b"+OK\r\n"),
        (b"GET p\r\n", b"$7\r\na value\r\n"),
        (b"PUT p a value\r\n", b"-ERR wrong number of arguments for 'put' command\r\n"),
        (b"GET\r\n", b"-ERR wrong number of arguments for 'get' command\r\n"),
        (b"NOSUCH a b\r\n", b"-ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' \r\n"),
        (b"MULTI\r\nSET m 1\r\nEXEC\r\n", b"+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n"),
        (b"COMPACT\r\n", b"+Background append only file rewriting started\r\n"),
        (b"QUIT\r\n", b"+OK\r\n"),
        // After QUIT: nothing.
        (b"GET p\r\n", b""),
    ];
    let script: Vec<u8> = session.iter().flat_map(|(req, _)| req.iter().copied()).collect();
    let want: Vec<u8> = session.iter().flat_map(|(_, rep)| rep.iter().copied()).collect();
    assert_transcript(srv.port, &script, &want);
    // The text protocol sees the same keys.
    assert_eq!(srv.client().cmd("GET q"), "it's \"quoted\"");
}

#[test]
fn stats_inline_is_a_map() {
    let (srv, _dir) = Server::start(&[]);
    let resp2 = transcript(srv.port, b"PUT k v\r\nSTATS\r\n");
    let text = show(&resp2);
    assert!(text.starts_with(r"+OK\r\n*"), "{text}");
    assert!(text.contains(r"$4\r\nkeys\r\n$1\r\n1\r\n"), "{text}");
    assert!(text.contains(r"$7\r\nnode_id\r\n"), "{text}");
    // RESP3 after HELLO 3: a map, with as many pairs as RESP2's flat array has halves.
    let resp3 = transcript(srv.port, b"HELLO 3\r\nSTATS\r\n");
    let stats3 = &resp3[resp3.windows(3).rposition(|w| w == b"\r\n%").expect("a map after HELLO") + 2..];
    let count = |b: &[u8], tag: u8| -> usize {
        let line = &b[1..b.iter().position(|&c| c == b'\r').expect("header")];
        assert_eq!(b[0], tag, "{}", show(b));
        std::str::from_utf8(line).unwrap().parse().unwrap()
    };
    let flat = count(&resp2[b"+OK\r\n".len()..], b'*');
    assert_eq!(count(stats3, b'%') * 2, flat, "{}", show(stats3));
    assert!(srv.client().stat("commands").parse::<u64>().unwrap() >= 4);
}

#[test]
fn inline_replies_match_redis_byte_for_byte() {
    let (srv, dir) = Server::start(&[]);
    let redis = Redis::start(dir.path());
    // Each session on a fresh connection of each server, from a clean keyspace.
    let sessions: &[&[u8]] = &[
        b"PING\r\nPING \"hello world\"\r\n\r\n   \r\nECHO \"\"\r\nECHO ''\r\nPING \"\" ''\r\n",
        b"SET k \"a\\x41\\n\\q\\\\\"\r\nGET k\r\nSET k2 'it\\'s'\r\nGET k2\r\nSET k3 foo\"bar baz\"\r\nGET k3\r\n",
        b"SET k4 a\x0bb\r\nGET k4\r\n\x0b\x0cPING\r\nSET k5 \"x\"\x0b\r\nGET k5\r\nPING a\rb\r\n",
        b"ECHO \"\\x4\"\r\nECHO \"\\xzz\"\r\nECHO \"\\XAB\\xab\\xFF\"\r\nECHO \"\\r\\n\\t\\b\\a\"\r\nECHO 'a\\nb'\r\n",
        b"NOSUCH a b\r\nGET\r\nSET x\r\nnosuch\r\n",
        b"MSET a \"1 2\" b '3'\r\nMGET a b nosuch\r\nEXISTS a a nosuch\r\nDEL a b nosuch\r\nSET n 1 NX\r\nSET n 2 XX GET\r\n",
        b"MULTI\r\nSET t 1\r\nGET t\r\nEXEC\r\nDISCARD\r\n",
        // Protocol errors: the reply, then the connection closes.
        b"SET k \"abc\"def\r\nPING\r\n",
        b"SET k \"abc\r\nPING\r\n",
        b"SET k 'abc\r\nPING\r\n",
        b"SET k '\\\\'\r\nPING\r\n",
        b"SET k \"\\\"\r\nPING\r\n",
        b"PING\r\nECHO 'unclosed\r\n",
        // Inline and multibulk mixed on one connection.
        b"SET m \"x y\"\r\n*2\r\n$3\r\nGET\r\n$1\r\nm\r\nGET m\r\n",
        b"QUIT\r\nPING\r\n",
    ];
    for s in sessions {
        let (ours, theirs) = (transcript(srv.port, s), redis.transcript(s));
        assert_eq!(show(&ours), show(&theirs), "replies to {}", show(s));
        let _ = (transcript(srv.port, b"FLUSHALL\r\n"), redis.transcript(b"FLUSHALL\r\n"));
    }
}

#[test]
fn bad_inline_requests_close_only_their_connection() {
    let (mut srv, _dir) = Server::start(&["--max-line", "1024"]);
    let mut other = srv.client();
    assert_eq!(other.cmd("PUT safe yes"), "OK");
    assert_transcript(srv.port, b"SET k \"a\"b\r\nPING\r\n", b"-ERR Protocol error: unbalanced quotes in request\r\n");
    // Over --max-line, its CRLF already here: Redis's error for it.
    let long = [b"SET k ".as_slice(), &[b'v'; 2000], b"\r\nPING\r\n"].concat();
    assert_transcript(srv.port, &long, b"-ERR Protocol error: too big inline request\r\n");
    // Its end not here, it may be either dialect: Redis's error, which a
    // program can parse and a person read (Redis's protocol test sends such
    // lines, `\x00` or `$\x00` then bytes without end: "desync" tests).
    for start in [b"SET k ".as_slice(), b"\x00", b"$\x00"] {
        let long = [start, &[b'v'; 2000]].concat();
        assert_transcript(srv.port, &long, b"-ERR Protocol error: too big inline request\r\n");
    }
    // Ending in a bare LF, it is the text protocol's, with its error.
    let long = [b"SET k ".as_slice(), &[b'v'; 2000], b"\nPING\n"].concat();
    assert_transcript(srv.port, &long, b"ERROR line too long\n");
    assert_eq!(other.cmd("GET safe"), "yes");
    assert!(srv.is_running());
}

#[test]
fn a_netcat_session_is_unchanged() {
    let (srv, _dir) = Server::start(&[]);
    let session: &[(&[u8], &[u8])] = &[
        (b"PUT greeting hello world\n", b"OK\n"),
        (b"GET greeting\n", b"hello world\n"),
        (b"GET missing\n", b"NOT_FOUND\n"),
        (b"DEL greeting\n", b"OK\n"),
        (b"PING\n", b"PONG\n"),
        (b"HELLO\n", b"ERROR UNKNOWN COMMAND\n"),
        (b"PUT onlykey\n", b"ERROR usage: PUT <key> <value>\n"),
        // Quotes are data in the text protocol.
        (b"PUT q \"quotes\" and 'all'\n", b"OK\n"),
        (b"GET q\n", b"\"quotes\" and 'all'\n"),
        (b"\n", b""),
        (b"STATS\n", b""),
    ];
    let script: Vec<u8> = session.iter().flat_map(|(req, _)| req.iter().copied()).collect();
    let want: Vec<u8> = session.iter().flat_map(|(_, rep)| rep.iter().copied()).collect();
    let got = transcript(srv.port, &script);
    // STATS: its lines, then END, at the end of the session.
    let (before, stats) = got.split_at(want.len().min(got.len()));
    assert_eq!(show(before), show(&want));
    let stats = String::from_utf8_lossy(stats);
    assert!(stats.starts_with("STAT node_id ") && stats.ends_with("\nEND\n"), "{stats}");
    assert!(stats.lines().all(|l| l == "END" || l.starts_with("STAT ")), "{stats}");
    assert_transcript(srv.port, b"PING\nQUIT\nPING\n", b"PONG\n");
}

#[test]
fn text_inline_and_resp_mix_on_one_connection() {
    let (srv, _dir) = Server::start(&[]);
    let script = b"PUT k two words\nGET k\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\nGET k\nSET k \"one\"\r\nGET k\n";
    let want = b"OK\n$9\r\ntwo words\r\n$9\r\ntwo words\r\ntwo words\n+OK\r\none\n";
    assert_transcript(srv.port, script, want);
}

#[test]
fn a_pipelined_inline_batch_with_quotes_runs_in_order() {
    // Long enough for the look-ahead to parse ahead: decoded (quoted)
    // requests among plain ones and multibulk ones.
    let (srv, _dir) = Server::start(&[]);
    let (mut script, mut want) = (Vec::new(), Vec::new());
    for i in 0..500 {
        let v = format!("v {i}");
        match i % 3 {
            0 => script.extend_from_slice(format!("SET k{i} \"{v}\"\r\nGET k{i}\r\n").as_bytes()),
            1 => script.extend_from_slice(
                format!("SET k{i} '{v}'\r\n*2\r\n$3\r\nGET\r\n${}\r\nk{i}\r\n", 1 + i.to_string().len()).as_bytes(),
            ),
            _ => script.extend_from_slice(format!("PUT k{i} {v}\nGET k{i}\r\n").as_bytes()),
        }
        want.extend_from_slice(if i % 3 == 2 { b"OK\n" } else { b"+OK\r\n" });
        want.extend_from_slice(format!("${}\r\n{v}\r\n", v.len()).as_bytes());
    }
    assert_transcript(srv.port, &script, &want);
}

// ---------------------------------------------------------------- redis-benchmark

/// Runs redis-benchmark against `port` with `args`, bounded by `timeout` (a
/// benchmark that waits forever on a reply fails the test instead of hanging
/// it); returns its output, after checking that every test in `tests`
/// printed a result and nothing printed an error.
#[track_caller]
fn benchmark(port: u16, args: &[&str], tests: &[&str]) -> String {
    let ok = Command::new("redis-benchmark").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(ok, "redis-benchmark not found: install redis-tools (scripts/test.sh does)");
    let bound = (3 * DEADLINE).as_secs().to_string();
    let out = Command::new("timeout")
        .args([bound.as_str(), "redis-benchmark", "-h", "127.0.0.1", "-p", &port.to_string(), "-q"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run redis-benchmark");
    let all = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "redis-benchmark {args:?} failed ({}):\n{all}", out.status);
    // -q rewrites a progress line with CR; each result ends with LF.
    let lines: Vec<&str> = all.split(['\r', '\n']).map(str::trim).filter(|l| !l.is_empty()).collect();
    for test in tests {
        let found = lines.iter().any(|l| l.starts_with(&format!("{test}: ")) && l.contains(" requests per second"));
        assert!(found, "no {test} result from redis-benchmark {args:?}:\n{all}");
    }
    let lower = all.to_lowercase();
    for bad in ["err", "warn", "could not", "closed"] {
        assert!(!lower.contains(bad), "redis-benchmark {args:?} said {bad:?}:\n{all}");
    }
    all
}

#[test]
fn redis_benchmark_inline_and_multibulk_tests_all_run() {
    let (srv, _dir) = Server::start(&[]);
    // INCR belongs to another part of the command set: included once the
    // server has it.
    let has_incr = transcript(srv.port, b"INCR inline:probe\r\n").starts_with(b":");
    let mut tests = vec!["ping_inline", "ping_mbulk", "set", "get", "mset"];
    if has_incr {
        tests.push("incr");
    }
    let names: Vec<&str> = tests
        .iter()
        .map(|t| match *t {
            "ping_inline" => "PING_INLINE",
            "ping_mbulk" => "PING_MBULK",
            "mset" => "MSET (10 keys)",
            "set" => "SET",
            "get" => "GET",
            _ => "INCR",
        })
        .collect();
    benchmark(srv.port, &["-t", &tests.join(","), "-n", "20000"], &names);
    // Pipelined, so the look-ahead parses inline requests ahead.
    benchmark(srv.port, &["-t", "ping_inline", "-n", "20000", "-P", "16"], &["PING_INLINE"]);
    let commands: u64 = srv.client().stat("commands").parse().expect("commands stat");
    assert!(commands >= 20_000 * tests.len() as u64 + 20_000, "server counted {commands} commands");
}
