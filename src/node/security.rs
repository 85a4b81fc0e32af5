//! What keeps a server safe from connections that should not drive it.
//!
//! Passwords: with `--requirepass`, a connection must authenticate (AUTH,
//! or HELLO's AUTH) before any command but AUTH, HELLO, PING and QUIT (the
//! table's `NO_AUTH` flag); until then its requests are held to much
//! tighter limits ([`PRE_AUTH_LIMITS`]), so it cannot make the server
//! allocate; a wrong password is counted and logged. Peers prove the
//! cluster secret (`--cluster-secret`, else the password) on their links
//! before `REPLHELLO`, by HMAC challenge-response so that it never crosses
//! the network ([`crate::repl::handshake`]), and a peer frame from a
//! connection that has not is refused and the connection closed.
//!
//! Protected mode ([`protected_refusal`]): with no password, a server bound
//! to an address other than loopback refuses clients from other hosts, with
//! a message saying how to open up.
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

use std::net::IpAddr;

use super::cmd::Args;
use crate::proto::Limits;

/// Parser limits for a connection that has not authenticated yet (Redis's:
/// a few arguments, short strings).
pub const PRE_AUTH_LIMITS: Limits = Limits { max_line: 16 << 10, max_bulk: 16 << 10, max_args: 10 };
/// The largest unfinished request buffered for a connection that has not
/// authenticated, and the most output it may have waiting.
pub const PRE_AUTH_BUFFER: usize = 64 << 10;

/// `-NOAUTH` / `ERROR NOAUTH`: the command needs AUTH first.
pub const NOAUTH: &str = "NOAUTH Authentication required.";
/// `-WRONGPASS` / `ERROR WRONGPASS`: the password was wrong.
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// Whether `given` is the password, in time that does not depend on where
/// the two first differ (nor, beyond the given length, on the password's).
pub fn secrets_match(given: &[u8], password: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != password.len());
    for (i, &g) in given.iter().enumerate() {
        // Compared against the password's byte, or against itself past its
        // end, so every given byte costs the same.
        let p = password.get(i).copied().unwrap_or(g);
        diff |= g ^ p;
    }
    std::hint::black_box(diff) == 0
}

/// Whether protected mode refuses a client at `client` on a server bound to
/// `bound`: protected mode is on, no password is set, the server listens
/// beyond loopback, and the client is not on loopback.
pub fn protected_refusal(protected: bool, has_password: bool, bound: IpAddr, client: IpAddr) -> bool {
    let local = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    };
    protected && !has_password && !local(bound) && !local(client)
}

/// What a client refused by protected mode reads before the connection closes.
pub const PROTECTED_MESSAGE: &[u8] = b"-DENIED kvstore is running in protected mode: it listens beyond the \
loopback interface and no password is set, so only connections from the loopback interface are accepted. \
To connect from other hosts, do one of: 1) set a password (--requirepass-file PATH, or --requirepass) \
and give it with AUTH; 2) bind to loopback only (--bind 127.0.0.1) and reach the server through a tunnel; \
3) if this host's network is trusted, disable protected mode with --protected-mode no. Restart the server \
after the change.\r\n";

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
    use crate::proto::{Argv, Parsed, text};

    #[test]
    fn secrets_compare_whole() {
        assert!(secrets_match(b"s3cret", b"s3cret"));
        assert!(!secrets_match(b"s3cres", b"s3cret"));
        assert!(!secrets_match(b"s3cre", b"s3cret"), "a prefix");
        assert!(!secrets_match(b"s3crett", b"s3cret"), "longer");
        assert!(!secrets_match(b"", b"s3cret"));
    }

    #[test]
    fn protected_mode_refuses_only_remote_clients_of_an_open_server_without_password() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let remote: IpAddr = "10.1.2.3".parse().unwrap();
        let lo6: IpAddr = "::1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(protected_refusal(true, false, any, remote));
        assert!(!protected_refusal(true, false, any, lo), "loopback clients are always let in");
        assert!(!protected_refusal(true, false, any, lo6));
        assert!(!protected_refusal(true, false, any, mapped));
        assert!(!protected_refusal(true, true, any, remote), "a password protects it");
        assert!(!protected_refusal(false, false, any, remote), "protected mode off");
        assert!(!protected_refusal(true, false, lo, remote), "bound to loopback");
    }

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
