//! MONITOR: every command that runs, as a line streamed to the clients in
//! monitor mode, in Redis's format:
//!
//! ```text
//! +1700000000.123456 [0 127.0.0.1:50000] "SET" "k" "v"
//! ```
//!
//! A command's line is made once it ran (so EXEC's follow those of the
//! commands it ran, as in Redis); administrative commands are not shown,
//! nor the credentials of HELLO's AUTH. The lines of an iteration are
//! appended to every monitor's output at its end (see
//! [`crate::node::clients`]), and a monitor whose output passes the hard
//! limit is disconnected like any client.

use super::{Args, Ctx, Flow};
use crate::proto::resp;
use std::net::SocketAddr;

/// `MONITOR`: this connection gets every command's line from now on. As in
/// Redis, a connection already monitoring gets no reply, and a transaction
/// cannot start monitoring.
pub fn monitor(cx: &mut Ctx<'_>) -> Flow {
    if cx.session.in_exec {
        resp::error(cx.out, b"ERR MONITOR isn't allowed for DENY BLOCKING client");
        return Flow::Continue;
    }
    if cx.node.start_monitor(cx.session) {
        resp::simple(cx.out, b"OK");
    }
    Flow::Continue
}

/// Appends the monitor line of the command `args` of the client at `addr`
/// (unknown for a connection the registry never saw), run at `micros` since
/// the epoch.
pub fn line(out: &mut Vec<u8>, micros: u64, addr: Option<SocketAddr>, args: Args<'_>) {
    use std::io::Write;
    let addr = addr.map_or_else(|| "?".to_string(), |a| a.to_string());
    let _ = write!(out, "+{}.{:06} [0 {addr}]", micros / 1_000_000, micros % 1_000_000);
    let redact_from = if args.get(0).eq_ignore_ascii_case(b"HELLO") { hello_auth(args) } else { None };
    for (i, arg) in args.iter(0).enumerate() {
        out.push(b' ');
        match redact_from {
            Some((from, to)) if (from..to).contains(&i) => out.extend_from_slice(b"\"(redacted)\""),
            _ => quote(out, arg),
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// The argument range of `HELLO ... AUTH user pass`'s credentials.
fn hello_auth(args: Args<'_>) -> Option<(usize, usize)> {
    let at = (2..args.len()).find(|&i| args.get(i).eq_ignore_ascii_case(b"AUTH"))?;
    Some((at + 1, (at + 3).min(args.len())))
}

/// Appends `s` quoted as Redis's `sdscatrepr` does: in double quotes, with
/// `\\`, `\"`, `\n`, `\r`, `\t`, `\a`, `\b` escaped and any other byte
/// that is not printable ASCII as `\xhh`.
pub fn quote(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for &c in s {
        match c {
            b'\\' | b'"' => out.extend_from_slice(&[b'\\', c]),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x20..=0x7e => out.push(c),
            _ => out.extend_from_slice(&[b'\\', b'x', HEX[usize::from(c >> 4)], HEX[usize::from(c & 15)]]),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Argv;

    fn args_of(parts: &[&[u8]]) -> (Argv, Vec<u8>) {
        let mut buf = Vec::new();
        let mut argv = Argv::new();
        for p in parts {
            let start = buf.len();
            buf.extend_from_slice(p);
            argv.push(start, buf.len());
        }
        (argv, buf)
    }

    #[test]
    fn quoting_is_redis_repr() {
        let mut out = Vec::new();
        quote(&mut out, b"a b\"c\\d\n\r\t\x07\x08\x00\x7f\xffz");
        assert_eq!(out, br#""a b\"c\\d\n\r\t\a\b\x00\x7f\xffz""#);
    }

    #[test]
    fn a_line_has_the_time_the_client_and_every_argument() {
        let (argv, buf) = args_of(&[b"SET", b"k", b"x y"]);
        let mut out = Vec::new();
        line(&mut out, 1_700_000_000_000_042, Some("127.0.0.1:50000".parse().unwrap()), Args::new(&argv, &buf));
        assert_eq!(out, b"+1700000000.000042 [0 127.0.0.1:50000] \"SET\" \"k\" \"x y\"\r\n");
    }

    #[test]
    fn hello_credentials_are_redacted() {
        let (argv, buf) = args_of(&[b"hello", b"3", b"auth", b"me", b"secret", b"setname", b"n"]);
        let mut out = Vec::new();
        line(&mut out, 0, None, Args::new(&argv, &buf));
        let s = String::from_utf8(out).unwrap();
        assert_eq!(s, "+0.000000 [0 ?] \"hello\" \"3\" \"auth\" \"(redacted)\" \"(redacted)\" \"setname\" \"n\"\r\n");
    }
}
