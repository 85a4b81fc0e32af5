//! Security through the real binary: what a connection that should not
//! drive the server gets.

use std::io::{Read, Write};
use std::net::TcpStream;

mod common;
use common::{DEADLINE, Server, wait_for};

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
