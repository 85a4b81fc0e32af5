//! The text protocol, persistence and robustness, through the real binary,
//! as a person with netcat would use it.

mod common;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

#[test]
fn every_row_of_the_protocol_table() {
    let (srv, _dir) = Server::start(&[]);
    let mut c = srv.client();
    assert_eq!(c.cmd("PUT k hello world"), "OK");
    assert_eq!(c.cmd("GET k"), "hello world");
    assert_eq!(c.cmd("put k2  leading spaces kept"), "OK");
    assert_eq!(c.cmd("get k2"), " leading spaces kept");
    assert_eq!(c.cmd("GET nope"), "NOT_FOUND");
    assert_eq!(c.cmd("DEL k"), "OK");
    assert_eq!(c.cmd("DEL k"), "NOT_FOUND");
    assert_eq!(c.cmd("GET k"), "NOT_FOUND");
    assert_eq!(c.cmd("PING"), "PONG");
    assert_eq!(c.cmd("REPL_PUT r v1"), "OK");
    assert_eq!(c.cmd("GET r"), "v1");
    assert_eq!(c.cmd("REPL_DEL r"), "OK");
    assert_eq!(c.cmd("GET r"), "NOT_FOUND");
    assert_eq!(c.cmd("FROB x"), "ERROR UNKNOWN COMMAND");
    assert!(c.cmd("PUT onlykey").starts_with("ERROR "));
    assert!(c.cmd("GET").starts_with("ERROR "));
    assert!(c.cmd("GET a b").starts_with("ERROR "));
    assert!(c.cmd("DEL").starts_with("ERROR "));
    assert_eq!(c.cmd("COMPACT"), "OK");
    let stats = c.stats();
    for name in ["keys", "connections", "commands", "log_bytes", "uptime_seconds"] {
        assert!(stats.iter().any(|(k, _)| k == name), "STATS lacks {name}: {stats:?}");
    }
    assert_eq!(c.stat("keys"), "1");
    // Empty lines are ignored, bare or CRLF. A line ending in CRLF (nc -C,
    // telnet) is a Redis inline command, answered in RESP as Redis does.
    c.send(b"\n\r\n  \nGET k2\r\n");
    assert_eq!(c.line(), "$20\r");
    assert_eq!(c.line(), " leading spaces kept\r");
    c.send(b"QUIT\n");
    assert!(c.closed_by_server());
}

#[test]
fn a_client_that_sends_and_closes_at_once_gets_its_replies_and_an_eof() {
    // As `printf 'PUT a 1\nGET a\n' | nc -q1 host port` does: the data and
    // the FIN can arrive together, in one readiness event.
    let (srv, _dir) = Server::start(&[]);
    for i in 0..50 {
        let mut s = TcpStream::connect(srv.addr()).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        s.write_all(format!("PUT k{i} v{i}\nGET k{i}\n").as_bytes()).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut got = String::new();
        s.read_to_string(&mut got).expect("the server must close its side too");
        assert_eq!(got, format!("OK\nv{i}\n"));
    }
}

#[test]
fn pipelining_10000_commands_in_one_write() {
    let (srv, _dir) = Server::start(&[]);
    let mut c = srv.client();
    let mut batch = Vec::new();
    for i in 0..10_000 {
        batch.extend_from_slice(format!("PUT key{i} value {i}\nGET key{i}\n").as_bytes());
    }
    let writer = {
        let mut s = c.stream.try_clone().unwrap();
        std::thread::spawn(move || s.write_all(&batch).unwrap())
    };
    for i in 0..10_000 {
        assert_eq!(c.line(), "OK");
        assert_eq!(c.line(), format!("value {i}"));
    }
    writer.join().unwrap();
    assert_eq!(c.stat("keys"), "10000");
}

#[test]
fn a_command_split_at_every_byte_arrives_whole() {
    let (srv, _dir) = Server::start(&[]);
    let mut c = srv.client();
    c.stream.set_nodelay(true).unwrap();
    // An inline command (CRLF, RESP reply), then a text line.
    let input = b"PUT split \"across every byte\"\r\nGET split\n";
    for b in input {
        c.send(&[*b]);
        std::thread::sleep(Duration::from_micros(200));
    }
    assert_eq!(c.line(), "+OK\r");
    assert_eq!(c.line(), "across every byte");
}

#[test]
fn data_survives_a_clean_restart_and_sigterm_exits_zero() {
    let dir = TempDir::new("restart");
    let mut srv = Server::start_in(dir.path(), &[]);
    let mut c = srv.client();
    for i in 0..100 {
        assert_eq!(c.cmd(&format!("PUT k{i} v{i}")), "OK");
    }
    assert_eq!(c.cmd("DEL k7"), "OK");
    assert_eq!(c.cmd("PUT k8 changed"), "OK");
    let status = srv.terminate();
    assert!(status.success(), "SIGTERM exit: {status}");
    assert!(srv.log_text().contains("log synced"), "{}", srv.log_text());
    srv.restart();
    let mut c = srv.client();
    assert_eq!(c.cmd("GET k0"), "v0");
    assert_eq!(c.cmd("GET k7"), "NOT_FOUND");
    assert_eq!(c.cmd("GET k8"), "changed");
    assert_eq!(c.cmd("GET k99"), "v99");
    assert_eq!(c.stat("keys"), "99");
    assert!(srv.log_text().contains("replayed 102 records"), "{}", srv.log_text());
}

#[test]
fn kill9_with_fsync_always_loses_no_acknowledged_write() {
    let dir = TempDir::new("kill9");
    let mut srv = Server::start_in(dir.path(), &["--fsync", "always"]);
    // Several clients writing concurrently; every OK must survive kill -9.
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let port = srv.port;
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                let mut acked = vec![];
                for i in 0..300 {
                    if c.cmd(&format!("PUT t{t}k{i} v{i}")) == "OK" {
                        acked.push(i);
                    }
                }
                acked
            })
        })
        .collect();
    let acked: Vec<Vec<i32>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    srv.kill9();
    srv.restart();
    let mut c = srv.client();
    for (t, keys) in acked.iter().enumerate() {
        assert_eq!(keys.len(), 300);
        for i in keys {
            assert_eq!(c.cmd(&format!("GET t{t}k{i}")), format!("v{i}"));
        }
    }
}

#[test]
fn torn_tail_is_cut_with_a_warning_and_the_rest_kept() {
    let dir = TempDir::new("torn");
    let mut srv = Server::start_in(dir.path(), &[]);
    let mut c = srv.client();
    assert_eq!(c.cmd("PUT a 1"), "OK");
    assert_eq!(c.cmd("PUT b 2"), "OK");
    assert!(srv.terminate().success());
    let log = dir.path().join("data/kvstore.aof");
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(&[40, 0, 0, 0, 1, 2, 3]).unwrap(); // a record header that never finished
    drop(f);
    srv.restart();
    let mut c = srv.client();
    assert_eq!(c.cmd("GET a"), "1");
    assert_eq!(c.cmd("GET b"), "2");
    let log_text = srv.log_text();
    assert!(log_text.contains("7 bytes"), "no warning about the dropped bytes: {log_text}");
    assert_eq!(c.cmd("PUT c 3"), "OK");
    srv.kill9();
    srv.restart();
    assert_eq!(srv.client().cmd("GET c"), "3");
}

#[test]
fn corrupt_middle_record_refuses_to_start_unless_allowed() {
    let dir = TempDir::new("corrupt");
    let mut srv = Server::start_in(dir.path(), &[]);
    let mut c = srv.client();
    for i in 0..10 {
        assert_eq!(c.cmd(&format!("PUT key{i} value{i}")), "OK");
    }
    assert!(srv.terminate().success());
    let log = dir.path().join("data/kvstore.aof");
    let mut bytes = std::fs::read(&log).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&log, &bytes).unwrap();
    // Started by hand: it must exit non-zero, naming the file and an offset.
    let data = dir.path().join("data");
    let out = run_binary(&["0", "--dir", data.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kvstore.aof") && err.contains("offset"), "{err}");
    srv.args = vec!["--truncate-corrupt-log".into()];
    srv.restart();
    let mut c = srv.client();
    assert_eq!(c.cmd("GET key0"), "value0");
    assert_eq!(c.cmd("GET key9"), "NOT_FOUND");
}

#[test]
fn a_full_disk_refuses_writes_keeps_reads_and_loses_nothing() {
    let dir = TempDir::new("full");
    let mut srv = Server::start_in(dir.path(), &[]);
    assert_eq!(srv.client().cmd("PUT before ok"), "OK");
    srv.restart_with_fsize_limit(Some(4096));
    let mut c = srv.client();
    let value = "x".repeat(200);
    let mut acked = vec![];
    let mut refused = None;
    for i in 0..100 {
        let reply = c.cmd(&format!("PUT k{i} {value}"));
        if reply == "OK" {
            acked.push(i);
        } else {
            assert!(reply.starts_with("ERROR ") && reply.contains("log"), "{reply}");
            refused = Some(i);
            break;
        }
    }
    let refused = refused.expect("the log never filled up");
    assert!(c.closed_by_server(), "the client whose write failed is closed");
    let mut c = srv.client();
    assert_eq!(c.cmd("GET before"), "ok", "reads keep working");
    assert_eq!(c.cmd(&format!("GET k{refused}")), "NOT_FOUND", "a refused write is not applied");
    let r = c.cmd("PUT another one");
    assert!(r == "OK" || r.starts_with("ERROR "), "{r}");
    assert!(srv.is_running());
    srv.restart_with_fsize_limit(None);
    let mut c = srv.client();
    for i in &acked {
        assert_eq!(c.cmd(&format!("GET k{i}")), value, "acknowledged k{i} lost");
    }
    assert_eq!(c.cmd(&format!("GET k{refused}")), "NOT_FOUND");
}

#[test]
fn bad_input_gets_errors_and_never_hurts_other_clients() {
    let (mut srv, _dir) = Server::start(&["--max-line", "1024"]);
    let mut other = srv.client();
    assert_eq!(other.cmd("PUT safe yes"), "OK");

    // Binary garbage and NUL bytes: an error per line, connection kept.
    let mut g = srv.client();
    g.send(b"\x00\x01\x02\xff\xfe garbage\n");
    assert_eq!(g.line(), "ERROR UNKNOWN COMMAND");
    g.send(b"GET \x00\n");
    assert_eq!(g.line(), "NOT_FOUND");
    assert_eq!(g.cmd("PING"), "PONG");

    // A line over the limit: an error, then the connection is closed.
    let mut long = srv.client();
    long.send(format!("PUT k {}\n", "v".repeat(5000)).as_bytes());
    assert!(long.line().starts_with("ERROR "));
    assert!(long.closed_by_server());

    // A half line from a client that stalls, then vanishes.
    let mut half = srv.client();
    half.send(b"PUT stalled val");
    drop(half);

    // Abrupt disconnects mid-pipeline.
    for _ in 0..20 {
        let mut s = TcpStream::connect(srv.addr()).unwrap();
        s.write_all(b"PUT a 1\nGET a\nPUT b").unwrap();
        drop(s);
    }

    assert_eq!(other.cmd("GET safe"), "yes");
    assert_eq!(other.cmd("GET stalled"), "NOT_FOUND");
    assert!(srv.is_running());
}

#[test]
fn a_client_that_never_reads_is_paused_not_buffered_without_end() {
    let (mut srv, _dir) = Server::start(&["--output-soft-limit", "65536"]);
    let mut c = srv.client();
    let big = "b".repeat(64 * 1024);
    assert_eq!(c.cmd(&format!("PUT big {big}")), "OK");
    let rss_before = srv.rss_kib();
    // Pipeline GETs of a 64 KiB value without reading any reply; stop when
    // the server stops reading (our writes block).
    let mut s = TcpStream::connect(srv.addr()).unwrap();
    s.set_write_timeout(Some(Duration::from_millis(500))).unwrap();
    let chunk = "GET big\n".repeat(1000);
    let mut sent = 0usize;
    while sent < 10_000_000 {
        match s.write(chunk.as_bytes()) {
            Ok(n) => sent += n / 8,
            Err(_) => break,
        }
    }
    // 10 million GETs would be 640 GB of replies: the server must have
    // stopped reading (its read budget and the kernel buffers hold a few MB).
    assert!(sent < 1_000_000, "the server kept reading from a client that never reads ({sent} GETs sent)");
    let mut other = srv.client();
    assert_eq!(other.cmd("PING"), "PONG");
    let grown = srv.rss_kib().saturating_sub(rss_before);
    assert!(grown < 64 * 1024, "server grew by {grown} KiB for one slow client");
    // Reading the replies lets it go on.
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0;
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    while got < 10 * (big.len() + 1) {
        got += s.read(&mut buf).unwrap();
    }
    assert!(srv.is_running());
}

#[test]
fn a_reply_past_the_hard_limit_disconnects_that_client_only() {
    let (mut srv, _dir) =
        Server::start(&["--output-soft-limit", "1024", "--output-hard-limit", "4096", "--max-line", "100000"]);
    let mut c = srv.client();
    assert_eq!(c.cmd(&format!("PUT big {}", "z".repeat(10_000))), "OK");
    c.send(b"GET big\n");
    let mut rest = Vec::new();
    let _ = c.reader.read_to_end(&mut rest);
    assert!(rest.len() < 10_000, "the oversized reply was sent anyway");
    let mut other = srv.client();
    assert_eq!(other.cmd("PING"), "PONG");
    assert!(srv.is_running());
}

#[test]
fn thousands_of_idle_connections() {
    raise_own_fd_limit(4096);
    let (mut srv, _dir) = Server::start(&[]);
    let idle: Vec<TcpStream> = (0..2000).map(|_| TcpStream::connect(srv.addr()).unwrap()).collect();
    let mut c = srv.client();
    wait_for("all connections accepted", || c.stat("connections") == "2001");
    assert_eq!(c.cmd("PUT still serving"), "OK");
    drop(idle);
    wait_for("idle connections closed", || c.stat("connections") == "1");
    assert!(srv.is_running());
}

#[test]
fn max_clients_refuses_with_an_error() {
    let (srv, _dir) = Server::start(&["--max-clients", "2"]);
    let mut a = srv.client();
    wait_for("only this client to be connected", || a.stat("connections") == "1");
    let mut b = srv.client();
    assert_eq!(b.cmd("PING"), "PONG");
    let mut c = srv.client();
    assert!(c.line().contains("max number of clients"));
    assert!(c.closed_by_server());
}

#[test]
fn help_explains_and_bad_options_fail_clearly() {
    let out = run_binary(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for opt in ["--fsync", "--dir", "--bind", "--id", "--max-clients", "--max-line", "peers"] {
        assert!(help.contains(opt), "--help lacks {opt}");
    }
    let out = run_binary(&["1234", "--fsync", "sometimes"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sometimes"));
    let out = run_binary(&["1234", "notapeer"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("notapeer"));
}

#[test]
fn two_servers_cannot_share_a_data_dir() {
    let dir = TempDir::new("lock");
    let _first = Server::start_in(dir.path(), &[]);
    let data = dir.path().join("data");
    let out = run_binary(&["0", "--dir", data.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lock") || err.contains("in use"), "{err}");
}

fn raise_own_fd_limit(n: u64) {
    // SAFETY: get/setrlimit on a local struct.
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        if lim.rlim_cur < n {
            lim.rlim_cur = n.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
