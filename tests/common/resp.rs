//! RESP for tests: requests encoded as a client sends them, replies read
//! whole from a raw socket (so exact bytes can be compared), and `redis`
//! crate connections that give up at the harness deadline.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;

use super::{Client, DEADLINE};

/// The RESP encoding of a request, as a client sends it.
pub fn request(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads exactly one RESP2/RESP3 reply, nested ones included, and returns
/// its bytes as they came.
#[track_caller]
pub fn read_reply(r: &mut BufReader<TcpStream>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pending = 1i64;
    while pending > 0 {
        pending -= 1;
        let start = out.len();
        let n = r.read_until(b'\n', &mut out).expect("read reply");
        assert!(n > 0 && out.ends_with(b"\r\n"), "reply cut short: {:?}", out.escape_ascii().to_string());
        let line = &out[start..out.len() - 2];
        let num = || -> i64 {
            let text = std::str::from_utf8(&line[1..]).expect("utf-8 length");
            text.parse().unwrap_or_else(|_| panic!("bad length line {:?}", line.escape_ascii().to_string()))
        };
        match line[0] {
            b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => {}
            b'$' | b'=' | b'!' => {
                let len = num();
                if len >= 0 {
                    let mut body = vec![0; len as usize + 2];
                    r.read_exact(&mut body).expect("read bulk body");
                    out.extend_from_slice(&body);
                }
            }
            b'*' | b'~' | b'>' => pending += num().max(0),
            b'%' | b'|' => pending += 2 * num().max(0),
            _ => panic!("not a RESP reply: {:?}", out.escape_ascii().to_string()),
        }
    }
    out
}

/// Sends one request over a raw connection and returns its reply's bytes.
#[track_caller]
pub fn raw_cmd(c: &mut Client, args: &[&[u8]]) -> Vec<u8> {
    c.send(&request(args));
    read_reply(&mut c.reader)
}

/// A `redis` crate connection to `url` whose reads and writes give up
/// after the harness deadline.
#[track_caller]
pub fn connect_url(url: &str) -> redis::Connection {
    let client = redis::Client::open(url).expect("redis url");
    let con = client.get_connection_with_timeout(DEADLINE).expect("redis connection");
    con.set_read_timeout(Some(DEADLINE)).expect("read timeout");
    con.set_write_timeout(Some(DEADLINE)).expect("write timeout");
    con
}

/// A `redis` crate connection to the server on `port`.
#[track_caller]
pub fn connect_port(port: u16) -> redis::Connection {
    connect_url(&format!("redis://127.0.0.1:{port}/"))
}

/// Runs one command and returns its reply, or the error as it was on the
/// wire minus the `-` (`ERR unknown …`), as a value tests can compare.
pub fn reply(con: &mut redis::Connection, cmd: &redis::Cmd) -> Result<redis::Value, String> {
    cmd.query(con).map_err(|e| format!("{} {}", e.code().unwrap_or("<no code>"), e.detail().unwrap_or("")))
}

/// Runs one command that must succeed and returns its reply.
#[track_caller]
pub fn q(con: &mut redis::Connection, cmd: &redis::Cmd) -> redis::Value {
    match reply(con, cmd) {
        Ok(v) => v,
        Err(e) => panic!("{:?}: {e}", cmd.get_packed_command().escape_ascii().to_string()),
    }
}
