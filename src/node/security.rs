//! What keeps a server safe from connections that should not drive it.
//!
//! Cross-protocol defence: a web page can make a browser send an HTTP
//! request to any host and port, and the text protocol and Redis's inline
//! commands are lines, so without a check a `POST` whose body says
//! `PUT k v` would be a valid session. As Redis does, a request that looks
//! like HTTP — a request line (`POST ...`, `GET / HTTP/1.1`) or a header
//! line (`Host:`, `User-Agent:`) — closes the connection at once, with no
//! reply, and is logged as a possible attack. RESP requests start with `*`,
//! which no browser can make a request start with, so they are not checked
//! (and the RESP hot path pays nothing).

use super::cmd::Args;

/// HTTP methods a browser can send without asking the server first (a
/// "simple" request), and the others, all as Redis's inline parser would
/// see them: upper-cased first word.
const METHODS: [&[u8]; 9] = [b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT", b"TRACE"];

/// Whether the request (its first word upper-cased in `name`) looks like a
/// line of an HTTP request: `POST` anything (as Redis refuses it), a request
/// line `<METHOD> <target> HTTP/<version>` whose target is one HTTP sends (a
/// path, `*`, or an absolute URL: so `PUT page HTTP/1.1`, a key and a value,
/// stays a write), or a `Host:` / `User-Agent:` header.
pub fn looks_like_http(name: &[u8], args: &Args<'_>) -> bool {
    match name {
        b"POST" | b"HOST:" | b"USER-AGENT:" => true,
        _ if args.len() == 3 && args.get(2).starts_with(b"HTTP/") && METHODS.contains(&name) => {
            let target = args.get(1);
            target.starts_with(b"/") || target == b"*" || memchr::memmem::find(target, b"://").is_some()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Argv, Limits, Parsed, text};

    fn check(line: &[u8]) -> bool {
        let mut argv = Argv::new();
        let Ok(Parsed::Request { .. }) = text::parse(line, &mut argv, &Limits::default()) else { panic!() };
        let args = Args::new(&argv, line);
        looks_like_http(&args.get(0).to_ascii_uppercase(), &args)
    }

    #[test]
    fn http_request_and_header_lines_are_caught() {
        assert!(check(b"POST / HTTP/1.1\n"));
        assert!(check(b"GET / HTTP/1.1\n"));
        assert!(check(b"get /index.html HTTP/1.0\n"));
        assert!(check(b"Host: 127.0.0.1:12345\n"));
        assert!(check(b"User-Agent: Mozilla/5.0\n"));
        assert!(check(b"OPTIONS * HTTP/1.1\n"));
    }

    #[test]
    fn kvstore_commands_are_not() {
        assert!(!check(b"GET k\n"));
        assert!(!check(b"PUT k v\n"));
        assert!(!check(b"PUT k HTTP\n"));
        assert!(!check(b"PUT page HTTP/1.1\n"), "a key and a value");
        assert!(!check(b"SET k HTTP/1.1\n"), "SET is no HTTP method");
        assert!(!check(b"HOST\n"));
    }
}
