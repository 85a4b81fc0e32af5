//! The text protocol: one command per line, for people with netcat.
//!
//! A line ends at `\n`. On a connection, a line that ends in `\r\n` is an
//! inline command instead ([`super::inline`]: `nc -C` and telnet get RESP
//! replies, as from Redis); [`parse`] itself drops a `\r` before the `\n`,
//! for callers that hand it such a line. Words are separated by spaces or
//! tabs. `PUT` and `REPL_PUT` take the rest of the line after the key (and
//! the one space after it) as the value, spaces included, and `PUTEX` the
//! rest after its key and seconds; every other command is split into words. A blank line is a request with no
//! arguments, which the caller skips.

use nom::bytes::complete::{take_till, take_while};
use nom::{IResult, Parser};

use super::{Argv, Limits, LineEnd, Parsed, ProtoError, line_content, line_end};

fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// One word and the blanks before it, as offsets into the line.
fn word(input: &[u8]) -> IResult<&[u8], &[u8]> {
    let (input, _) = take_while(is_blank)(input)?;
    take_till(is_blank).parse(input)
}

/// How many words come before the value, for a command that takes the
/// rest of its line as one.
fn words_before_value(name: &[u8]) -> Option<usize> {
    if name.eq_ignore_ascii_case(b"PUT") || name.eq_ignore_ascii_case(b"REPL_PUT") {
        Some(2)
    } else if name.eq_ignore_ascii_case(b"PUTEX") {
        Some(3)
    } else {
        None
    }
}

/// Parses the line at the start of `buf` into `argv` (offsets into `buf`).
pub fn parse(buf: &[u8], argv: &mut Argv, limits: &Limits) -> Result<Parsed, ProtoError> {
    argv.clear();
    match line_end(buf, limits.max_line) {
        LineEnd::At(nl) => split_line(buf, nl, argv, limits),
        LineEnd::NotYet => Ok(Parsed::Incomplete),
        LineEnd::TooLong => Err(ProtoError::LineTooLong),
    }
}

/// Splits the line whose `\n` is at `nl` into the cleared `argv`.
#[inline]
pub(super) fn split_line(buf: &[u8], nl: usize, argv: &mut Argv, limits: &Limits) -> Result<Parsed, ProtoError> {
    let line = line_content(buf, nl);
    if line.len() > limits.max_line {
        return Err(ProtoError::LineTooLong);
    }
    let offset = |s: &[u8]| s.as_ptr() as usize - buf.as_ptr() as usize;
    let mut rest = line;
    let mut value_after = None;
    // `word` on a non-empty slice cannot fail: take_till/take_while in their
    // complete form accept empty matches.
    while let Ok((after, w)) = word(rest) {
        if w.is_empty() {
            break;
        }
        let start = offset(w);
        argv.push(start, start + w.len());
        rest = after;
        if argv.len() == 1 {
            value_after = words_before_value(w);
        }
        if Some(argv.len()) == value_after {
            // The value: everything after the single space that follows
            // the last word before it (the key, or PUTEX's seconds).
            if let Some((_, value)) = rest.split_first() {
                let start = offset(value);
                argv.push(start, start + value.len());
            }
            break;
        }
    }
    Ok(Parsed::Request { consumed: nl + 1 })
}

/// Writes a text reply line.
pub fn line(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(s);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(input: &[u8]) -> Result<(Vec<Vec<u8>>, usize), ProtoError> {
        let mut argv = Argv::new();
        match parse(input, &mut argv, &Limits::default())? {
            Parsed::Incomplete => Ok((vec![], 0)),
            Parsed::Request { consumed } => {
                Ok(((0..argv.len()).map(|i| argv.get(input, i).to_vec()).collect(), consumed))
            }
        }
    }

    fn words(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn every_command_form() {
        assert_eq!(args(b"PUT k hello world\n").unwrap(), (words(&["PUT", "k", "hello world"]), 18));
        assert_eq!(args(b"put k  two  spaces\r\n").unwrap().0, words(&["put", "k", " two  spaces"]));
        assert_eq!(args(b"PUT k \n").unwrap().0, words(&["PUT", "k", ""]));
        assert_eq!(args(b"PUT k\n").unwrap().0, words(&["PUT", "k"]));
        assert_eq!(args(b"GET k\n").unwrap().0, words(&["GET", "k"]));
        assert_eq!(args(b"  DEL\tk  \r\n").unwrap().0, words(&["DEL", "k"]));
        assert_eq!(args(b"REPL_PUT k v v\n").unwrap().0, words(&["REPL_PUT", "k", "v v"]));
        assert_eq!(args(b"REPL_DEL k\n").unwrap().0, words(&["REPL_DEL", "k"]));
        assert_eq!(args(b"PUTEX k 60 v EX 10\n").unwrap().0, words(&["PUTEX", "k", "60", "v EX 10"]));
        assert_eq!(args(b"putex k 60\n").unwrap().0, words(&["putex", "k", "60"]));
        assert_eq!(args(b"TTL k\n").unwrap().0, words(&["TTL", "k"]));
        for cmd in ["PING", "STATS", "COMPACT", "QUIT"] {
            let line = format!("{cmd}\n");
            assert_eq!(args(line.as_bytes()).unwrap().0, words(&[cmd]));
        }
        assert_eq!(args(b"GET a b c\n").unwrap().0, words(&["GET", "a", "b", "c"]));
    }

    #[test]
    fn blank_lines_are_empty_requests() {
        assert_eq!(args(b"\n").unwrap(), (vec![], 1));
        assert_eq!(args(b" \t \r\n").unwrap(), (vec![], 5));
    }

    #[test]
    fn binary_garbage_is_just_words() {
        let (a, used) = args(b"\x00\xff\x01 x\n").unwrap();
        assert_eq!(a, vec![b"\x00\xff\x01".to_vec(), b"x".to_vec()]);
        assert_eq!(used, 6);
    }

    #[test]
    fn split_at_every_offset() {
        let input = b"PUT key some value\r\nGET key\nDEL key\n\nPING\n";
        let mut argv = Argv::new();
        // Parse the whole pipeline as a reference.
        let mut reference = vec![];
        let mut pos = 0;
        while pos < input.len() {
            let Parsed::Request { consumed } = parse(&input[pos..], &mut argv, &Limits::default()).unwrap() else {
                panic!("complete input parsed as incomplete");
            };
            reference.push((pos, consumed));
            pos += consumed;
        }
        assert_eq!(reference.len(), 5);
        // Every strict prefix of each request is incomplete; a cut never
        // changes what the complete request parses to.
        for &(start, len) in &reference {
            for cut in 0..len {
                assert_eq!(
                    parse(&input[start..start + cut], &mut argv, &Limits::default()),
                    Ok(Parsed::Incomplete),
                    "request at {start} cut at {cut}"
                );
            }
            assert_eq!(
                parse(&input[start..start + len], &mut argv, &Limits::default()),
                Ok(Parsed::Request { consumed: len })
            );
        }
    }

    #[test]
    fn line_limit() {
        let limits = Limits { max_line: 8, ..Limits::default() };
        let mut argv = Argv::new();
        assert_eq!(parse(b"GET 1234", &mut argv, &limits), Ok(Parsed::Incomplete));
        // Its \r may be the start of a \r\n: wait for the next byte.
        assert_eq!(parse(b"GET 1234\r", &mut argv, &limits), Ok(Parsed::Incomplete));
        assert_eq!(parse(b"GET 123456", &mut argv, &limits), Err(ProtoError::LineTooLong));
        assert_eq!(parse(b"GET 12345\n", &mut argv, &limits), Err(ProtoError::LineTooLong));
        assert_eq!(parse(b"GET 1234\r\n", &mut argv, &limits), Ok(Parsed::Request { consumed: 10 }));
    }
}
