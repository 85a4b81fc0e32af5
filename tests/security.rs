//! Security through the real binary: what a connection that should not
//! drive the server gets.

use std::io::{Read, Write};
use std::net::TcpStream;

mod common;
use common::{Client, DEADLINE, Server, run_binary, wait_for};

/// Sends `request` on a fresh connection and returns everything the server
/// sends back until it closes the connection (panics if it does not).
#[track_caller]
fn send_until_closed(srv: &Server, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(srv.addr()).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    // The server may close while the request is still being written.
    let _ = s.write_all(request);
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => got,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => got,
        Err(e) => panic!("the server did not close the connection: {e} (got {:?})", String::from_utf8_lossy(&got)),
    }
}

#[test]
fn an_http_request_from_a_web_page_is_closed_without_effect() {
    let (srv, _dir) = Server::start(&[]);
    // A browser's form POST whose body is a text-protocol session.
    let post = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n\r\nPUT owned yes\nGET k\n";
    assert_eq!(send_until_closed(&srv, post), b"", "no reply to an HTTP POST");
    // The same with bare newlines (the text protocol's line ending).
    let get = b"GET / HTTP/1.1\nHost: 127.0.0.1\n\nPUT owned2 yes\n";
    assert_eq!(send_until_closed(&srv, get), b"");
    // A header line alone, as the second line of a request would be.
    assert_eq!(send_until_closed(&srv, b"User-Agent: curl/8\r\nPUT owned3 yes\n"), b"");
    let mut c = srv.client();
    for k in ["owned", "owned2", "owned3"] {
        assert_eq!(c.cmd(&format!("GET {k}")), "NOT_FOUND", "{k} was written by an HTTP request");
    }
    wait_for("the security warning in the log", || srv.log_text().contains("possible SECURITY ATTACK"));
}

#[test]
fn commands_that_merely_resemble_http_still_work() {
    let (srv, _dir) = Server::start(&[]);
    let mut c = srv.client();
    assert_eq!(c.cmd("PUT page HTTP/1.1"), "OK", "a value is not a request line");
    assert_eq!(c.cmd("GET page"), "HTTP/1.1");
    assert_eq!(c.cmd("PUT host: x"), "OK");
    assert_eq!(c.cmd("GET host:"), "x", "the connection is still open");
}

// ------------------------------------------------------------ passwords

use common::cluster::Cluster;
use common::tools::run;

const PASS: &str = "s3cret-pass";

/// A `redis` crate connection with `password` in its URL (none: no AUTH).
#[track_caller]
fn resp_con(srv: &Server, password: Option<&str>) -> redis::Connection {
    let auth = password.map(|p| format!(":{p}@")).unwrap_or_default();
    let client = redis::Client::open(format!("redis://{auth}127.0.0.1:{}/", srv.port)).expect("url");
    let con = client.get_connection_with_timeout(DEADLINE).expect("connection");
    con.set_read_timeout(Some(DEADLINE)).expect("timeout");
    con
}

/// The error code and message of a command that must fail.
#[track_caller]
fn refused(con: &mut redis::Connection, args: &[&str]) -> String {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    match cmd.query::<redis::Value>(con) {
        Ok(v) => panic!("{args:?} was accepted: {v:?}"),
        Err(e) => format!("{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or("")),
    }
}

#[test]
fn text_protocol_needs_the_password_first() {
    let (srv, _dir) = Server::start(&["--requirepass", PASS]);
    let mut c = srv.client();
    assert_eq!(c.cmd("PING"), "PONG", "PING needs no password");
    assert_eq!(c.cmd("PUT k v"), "ERROR NOAUTH Authentication required.");
    assert_eq!(c.cmd("GET k"), "ERROR NOAUTH Authentication required.");
    assert_eq!(c.cmd("AUTH wrong"), "ERROR WRONGPASS invalid username-password pair or user is disabled.");
    assert_eq!(c.cmd(&format!("AUTH {PASS}")), "OK");
    assert_eq!(c.cmd("PUT k v"), "OK");
    assert_eq!(c.cmd("GET k"), "v");
    assert_eq!(c.stat("auth_failures"), "1");
    wait_for("the wrong password in the log", || srv.log_text().contains("wrong password"));
    // Another connection has not authenticated.
    assert_eq!(srv.client().cmd("GET k"), "ERROR NOAUTH Authentication required.");
}

#[test]
fn resp_clients_authenticate_by_auth_hello_or_url() {
    let (srv, _dir) = Server::start(&["--requirepass", PASS]);
    let mut anon = resp_con(&srv, None);
    assert_eq!(refused(&mut anon, &["GET", "k"]), "NOAUTH Authentication required.");
    assert_eq!(refused(&mut anon, &["AUTH", "nope"]), "WRONGPASS invalid username-password pair or user is disabled.");
    assert_eq!(
        refused(&mut anon, &["AUTH", "someone", PASS]),
        "WRONGPASS invalid username-password pair or user is disabled.",
        "only the default user exists"
    );
    assert!(refused(&mut anon, &["HELLO", "3"]).starts_with("NOAUTH HELLO must be called"));
    assert_eq!(
        refused(&mut anon, &["HELLO", "3", "AUTH", "default", "x"]),
        "WRONGPASS invalid username-password pair or user is disabled."
    );
    let hello: redis::Value =
        redis::cmd("HELLO").arg("2").arg("AUTH").arg("default").arg(PASS).query(&mut anon).expect("HELLO AUTH");
    assert!(format!("{hello:?}").contains("proto"), "{hello:?}");
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut anon).expect("SET after HELLO AUTH");
    // The password in the URL: the crate sends AUTH itself.
    let mut con = resp_con(&srv, Some(PASS));
    let v: String = redis::cmd("GET").arg("k").query(&mut con).expect("GET");
    assert_eq!(v, "v");
    // redis-cli -a and redis-py's password=.
    let port = srv.port.to_string();
    let cli = run("redis-cli", &["-p", &port, "-a", PASS, "--no-auth-warning", "GET", "k"], b"");
    assert_eq!(cli.stdout.trim(), "v", "{}", cli.describe());
    let py = format!("import redis; print(redis.Redis(port={}, password='{PASS}').get('k').decode())", srv.port);
    let py = run("python3", &["-c", &py], b"");
    assert_eq!(py.stdout.trim(), "v", "{}", py.describe());
    let bench = run("redis-benchmark", &["-p", &port, "-a", PASS, "-t", "set,get", "-n", "2000", "-q"], b"");
    assert!(bench.status.success() && !bench.stdout.contains("ERR"), "{}", bench.describe());
}

#[test]
fn the_password_can_come_from_a_file() {
    let dir = common::TempDir::new("passfile");
    let file = dir.path().join("pass");
    std::fs::write(&file, format!("{PASS}\n")).expect("write the password file");
    let (srv, _d) = Server::start(&["--requirepass-file", file.to_str().expect("utf-8")]);
    let mut c = srv.client();
    assert_eq!(c.cmd("GET k"), "ERROR NOAUTH Authentication required.");
    assert_eq!(c.cmd(&format!("AUTH {PASS}")), "OK", "the line break is not part of the password");
}

#[test]
fn a_peer_frame_without_the_password_is_refused_and_closes_the_connection() {
    let (srv, _dir) = Server::start(&["--requirepass", PASS]);
    let frame = b"*2\r\n$9\r\nREPLHELLO\r\n$1\r\n7\r\n*5\r\n$8\r\nREPL_PUT\r\n$5\r\nowned\r\n$1\r\nv\r\n$5\r\n65537\r\n$1\r\n0\r\n";
    let got = send_until_closed(&srv, frame);
    // The password is the cluster secret here, and peers prove it by
    // handshake (tests/peer_auth.rs).
    assert_eq!(got, b"-NOAUTH peer frames need the cluster secret proved first (REPLAUTH, REPLPROOF)\r\n");
    let mut c = srv.client();
    assert_eq!(c.cmd(&format!("AUTH {PASS}")), "OK");
    assert_eq!(c.cmd("GET owned"), "NOT_FOUND", "nothing was applied");
}

#[test]
fn a_cluster_with_a_password_replicates() {
    let mut cluster = Cluster::start(2, &["--requirepass", PASS]);
    let mut a = cluster.node(0).client();
    assert_eq!(a.cmd(&format!("AUTH {PASS}")), "OK");
    assert_eq!(a.cmd("PUT shared yes"), "OK");
    let mut b = cluster.node(1).client();
    assert_eq!(b.cmd(&format!("AUTH {PASS}")), "OK");
    wait_for("the write on the other node", || b.cmd("GET shared") == "yes");
}

#[test]
fn before_auth_a_large_request_closes_the_connection() {
    let (srv, _dir) = Server::start(&["--requirepass", PASS]);
    // A bulk string of 1 MiB announced before AUTH: refused at its header.
    let got = send_until_closed(&srv, b"*2\r\n$3\r\nGET\r\n$1048576\r\n");
    assert!(String::from_utf8_lossy(&got).starts_with("-ERR Protocol error"), "{:?}", String::from_utf8_lossy(&got));
    // Many arguments, likewise.
    let mut many = b"*100\r\n".to_vec();
    for _ in 0..100 {
        many.extend_from_slice(b"$1\r\nx\r\n");
    }
    let got = send_until_closed(&srv, &many);
    assert!(String::from_utf8_lossy(&got).starts_with("-ERR Protocol error"), "{:?}", String::from_utf8_lossy(&got));
    // After AUTH, the normal limits apply.
    let mut c = resp_con(&srv, Some(PASS));
    let big = "x".repeat(1 << 20);
    let _: () = redis::cmd("SET").arg("big").arg(&big).query(&mut c).expect("a 1 MiB SET after AUTH");
}

#[test]
fn idle_clients_are_closed_after_the_timeout_but_peer_links_are_not() {
    let mut cluster = Cluster::start(2, &["--timeout", "1"]);
    let link = format!("{}.state", cluster.link(1));
    let mut watcher = cluster.node(0).client();
    wait_for("the link up", || watcher.stat(&link) == "connected");
    let resyncs = format!("{}.resyncs", cluster.link(1));
    let before = watcher.stat(&resyncs);
    let mut idle = cluster.node(0).client();
    assert_eq!(idle.cmd("PING"), "PONG");
    // Polled: the server closes it once it has been idle past a second.
    assert!(idle.closed_by_server(), "an idle client was not closed");
    // The watcher was idle as long: it is gone too; a new one sees the link,
    // which was idle as long, still up and never re-established.
    let mut fresh = cluster.node(0).client();
    assert_eq!(fresh.stat(&link), "connected");
    assert_eq!(fresh.stat(&resyncs), before, "the peer link was closed by --timeout");
}

#[test]
fn protected_mode_lets_loopback_clients_of_an_open_server_in() {
    // Bound to every interface with no password: protected mode is on, and
    // a loopback client is served (clients from other hosts would get the
    // DENIED line: that decision is unit-tested in node::security, since a
    // test here may send traffic to loopback only).
    let (srv, _dir) = Server::start(&["--bind", "0.0.0.0"]);
    let mut c = Client::connect(srv.port);
    assert_eq!(c.cmd("PING"), "PONG");
    assert!(run_binary(&["0", "--protected-mode", "maybe"]).status.code() == Some(2), "a bad value is a usage error");
}

#[test]
fn max_clients_is_capped_by_an_open_file_limit_that_cannot_be_raised() {
    let dir = common::TempDir::new("nofile");
    let log = dir.path().join("log");
    let mut child = std::process::Command::new("prlimit")
        .args(["--nofile=100:100", common::binary(), "0", "--max-clients", "1000", "--dir"])
        .arg(dir.path().join("data"))
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("run prlimit (util-linux)");
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("the capped limit in the log", || text().contains("listening on"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(text().contains("--max-clients 1000 is capped at 36"), "{}", text());
}
