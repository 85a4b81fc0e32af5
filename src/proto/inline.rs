//! Redis inline commands: a request as a line of words, `SET k "a b"\r\n`,
//! as telnet, load-balancer health checks, Redis's test suite and
//! redis-benchmark's `*_INLINE` tests send. Run and answered as RESP.
//!
//! The line is split as Redis splits it (`sdssplitargs`), quoting rules and
//! errors included:
//! - words are separated by whitespace (space, tab, CR, LF, VT, FF); an
//!   unquoted word ends at a space, tab, CR or LF only, so a VT or FF inside
//!   a word is part of it;
//! - `"..."` may hold `\n \r \t \b \a`, `\xHH` (two hex digits) and `\` before
//!   any other byte, which stands for that byte (`\"`, `\\`);
//! - `'...'` holds its bytes as they are, but for `\'`;
//! - a quote may open in the middle of a word (`a"b c"` is `ab c`), but a
//!   closing quote must be followed by whitespace or the end of the line;
//!   otherwise, or if a quote is not closed, the request is refused with
//!   `unbalanced quotes in request` and the connection closed, as Redis does;
//! - a line with no words (empty, or blanks only) is skipped, with no reply;
//! - a NUL byte ends the line's words: Redis splits the line as a C string.
//!   (Redis, looking for the line's `\n` with `strchr`, also stops there and
//!   waits for more input until the line is too big; here the request ends at
//!   its `\n` as any other, so one NUL does not stall the connection.)
//!
//! A line longer than `max_line` is `too big inline request`. The parser
//! also takes a line ending in a bare `\n`, as Redis does; on a connection
//! such a line is the text protocol instead (see [`super::Dialect::of`]).
//!
//! The arguments are copied into the [`Argv`]'s own buffer (reused, so no
//! allocation per request once it has grown), quotes and escapes decoded:
//! its spans index that buffer, not the input (see [`Argv::input`]).

use memchr::{memchr, memchr2};

use super::{Argv, Limits, LineEnd, Parsed, ProtoError, line_content, line_end};

/// A line over `max_line` (or with more than `max_args` words), in Redis's words.
pub const TOO_BIG: ProtoError = ProtoError::Malformed("too big inline request");

/// A quote left open, or a closing quote followed by something else than
/// whitespace, in Redis's words.
pub const UNBALANCED: ProtoError = ProtoError::Malformed("unbalanced quotes in request");

/// Parses the inline command at the start of `buf` into `argv`, whose spans
/// then index its own copy of the arguments ([`Argv::input`]). As the other
/// parsers: `Incomplete` until its `\n` is here; an error means the
/// connection cannot go on.
pub fn parse(buf: &[u8], argv: &mut Argv, limits: &Limits) -> Result<Parsed, ProtoError> {
    argv.clear();
    match line_end(buf, limits.max_line) {
        LineEnd::At(nl) => split_line(buf, nl, argv, limits),
        LineEnd::NotYet => Ok(Parsed::Incomplete),
        LineEnd::TooLong => Err(TOO_BIG),
    }
}

/// Splits the line whose `\n` is at `nl` into the cleared `argv`.
pub(super) fn split_line(buf: &[u8], nl: usize, argv: &mut Argv, limits: &Limits) -> Result<Parsed, ProtoError> {
    argv.bytes.clear();
    let line = line_content(buf, nl);
    if line.len() > limits.max_line {
        return Err(TOO_BIG);
    }
    let line = &line[..memchr(0, line).unwrap_or(line.len())];
    // Without quotes, each word is copied whole; with them, byte by byte.
    if memchr2(b'"', b'\'', line).is_some() {
        decode(line, argv, limits.max_args)?;
    } else {
        words(line, argv, limits.max_args)?;
    }
    Ok(Parsed::Request { consumed: nl + 1 })
}

/// Whitespace as C's `isspace` has it: what separates words.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// What ends an unquoted word (not VT or FF, which `sdssplitargs` keeps).
fn ends_word(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

/// The index of the first non-space byte of `line` from `i` on.
fn skip_spaces(line: &[u8], mut i: usize) -> usize {
    while line.get(i).is_some_and(|&c| is_space(c)) {
        i += 1;
    }
    i
}

fn push_arg(argv: &mut Argv, start: usize, end: usize, max_args: usize) -> Result<(), ProtoError> {
    if argv.len() >= max_args {
        return Err(TOO_BIG);
    }
    argv.push(start, end);
    Ok(())
}

/// A line without quotes: its words, as they are.
fn words(line: &[u8], argv: &mut Argv, max_args: usize) -> Result<(), ProtoError> {
    let mut i = skip_spaces(line, 0);
    while i < line.len() {
        let start = i;
        while line.get(i).is_some_and(|&c| !ends_word(c)) {
            i += 1;
        }
        let at = argv.bytes.len();
        argv.bytes.extend_from_slice(&line[start..i]);
        push_arg(argv, at, argv.bytes.len(), max_args)?;
        i = skip_spaces(line, i);
    }
    Ok(())
}

/// A line with quotes: every word decoded.
fn decode(line: &[u8], argv: &mut Argv, max_args: usize) -> Result<(), ProtoError> {
    let mut i = skip_spaces(line, 0);
    while i < line.len() {
        let start = argv.bytes.len();
        i = word(line, i, &mut argv.bytes)?;
        let end = argv.bytes.len();
        push_arg(argv, start, end, max_args)?;
        i = skip_spaces(line, i);
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    None,
    Double,
    Single,
}

/// Decodes the word that starts at `line[i]` (not a space) onto `out`, as
/// `sdssplitargs` does; returns where to look for the next word.
fn word(line: &[u8], mut i: usize, out: &mut Vec<u8>) -> Result<usize, ProtoError> {
    let at = |j: usize| line.get(j).copied();
    // A closing quote must be followed by whitespace or the end.
    let close = |next: Option<u8>| if next.is_some_and(|c| !is_space(c)) { Err(UNBALANCED) } else { Ok(()) };
    let mut quote = Quote::None;
    loop {
        let Some(c) = at(i) else {
            return if quote == Quote::None { Ok(i) } else { Err(UNBALANCED) };
        };
        match quote {
            Quote::Double => match (c, at(i + 1)) {
                (b'\\', Some(b'x')) if hex_byte(at(i + 2), at(i + 3)).is_some() => {
                    out.extend(hex_byte(at(i + 2), at(i + 3)));
                    i += 3;
                }
                (b'\\', Some(e)) => {
                    out.push(unescape(e));
                    i += 1;
                }
                (b'"', next) => {
                    close(next)?;
                    return Ok(i + 1);
                }
                _ => out.push(c),
            },
            Quote::Single => match (c, at(i + 1)) {
                (b'\\', Some(b'\'')) => {
                    out.push(b'\'');
                    i += 1;
                }
                (b'\'', next) => {
                    close(next)?;
                    return Ok(i + 1);
                }
                _ => out.push(c),
            },
            Quote::None => match c {
                b'"' => quote = Quote::Double,
                b'\'' => quote = Quote::Single,
                c if ends_word(c) => return Ok(i + 1),
                _ => out.push(c),
            },
        }
        i += 1;
    }
}

/// The byte of `\xHH`, if both are hex digits.
fn hex_byte(hi: Option<u8>, lo: Option<u8>) -> Option<u8> {
    let digit = |c: Option<u8>| char::from(c?).to_digit(16);
    // Both below 16: the byte fits.
    Some((digit(hi)? * 16 + digit(lo)?) as u8)
}

/// The byte a `\` escape in double quotes stands for.
fn unescape(e: u8) -> u8 {
    match e {
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'b' => 0x08,
        b'a' => 0x07,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Dialect;
    use proptest::prelude::*;

    /// `Ok(None)` for Incomplete, else the arguments and the bytes used.
    type Outcome = Result<Option<(Vec<Vec<u8>>, usize)>, ProtoError>;

    fn run(buf: &[u8], limits: &Limits) -> Outcome {
        let mut argv = Argv::new();
        Ok(match parse(buf, &mut argv, limits)? {
            Parsed::Incomplete => None,
            Parsed::Request { consumed } => {
                let input = argv.input(Dialect::Inline, buf);
                Some(((0..argv.len()).map(|i| argv.get(input, i).to_vec()).collect(), consumed))
            }
        })
    }

    fn args(buf: &[u8]) -> Result<Vec<Vec<u8>>, ProtoError> {
        let (a, consumed) = run(buf, &Limits::default())?.expect("a whole request");
        assert_eq!(consumed, buf.len(), "{:?}", buf.escape_ascii().to_string());
        Ok(a)
    }

    fn owned(v: &[&[u8]]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.to_vec()).collect()
    }

    #[track_caller]
    fn assert_args(line: &[u8], want: &[&[u8]]) {
        assert_eq!(args(line), Ok(owned(want)), "{:?}", line.escape_ascii().to_string());
    }

    #[track_caller]
    fn assert_unbalanced(line: &[u8]) {
        assert_eq!(args(line), Err(UNBALANCED), "{:?}", line.escape_ascii().to_string());
    }

    // Each case below was sent to redis-server 7.0 and its reply compared.

    #[test]
    fn words_split_on_blanks() {
        assert_args(b"PING\r\n", &[b"PING"]);
        assert_args(b"SET k v\r\n", &[b"SET", b"k", b"v"]);
        assert_args(b"  SET \t k   v  \r\n", &[b"SET", b"k", b"v"]);
        // CR inside the line ends a word too.
        assert_args(b"PING a\rb\r\n", &[b"PING", b"a", b"b"]);
        // VT and FF separate words where they are blanks, but not inside one.
        assert_args(b"\x0b\x0cPING\r\n", &[b"PING"]);
        assert_args(b"SET k a\x0bb\r\n", &[b"SET", b"k", b"a\x0bb"]);
        // As Redis, a bare \n ends a line too.
        assert_args(b"GET k\n", &[b"GET", b"k"]);
    }

    #[test]
    fn an_empty_line_has_no_words() {
        assert_args(b"\r\n", &[]);
        assert_args(b" \t \x0b\r\n", &[]);
        assert_args(b"\n", &[]);
    }

    #[test]
    fn double_quotes_and_their_escapes() {
        assert_args(b"SET k \"a b\"\r\n", &[b"SET", b"k", b"a b"]);
        assert_args(b"SET k \"a\\x41\\n\\q\\\\\"\r\n", &[b"SET", b"k", b"aA\nq\\"]);
        assert_args(b"ECHO \"\\r\\t\\b\\a\\\"\"\r\n", &[b"ECHO", b"\r\t\x08\x07\""]);
        assert_args(b"ECHO \"\\XAB\\xab\\xfF\"\r\n", &[b"ECHO", b"XAB\xab\xff"]);
        // Not two hex digits: `\x` is just `x`.
        assert_args(b"ECHO \"\\x4\"\r\n", &[b"ECHO", b"x4"]);
        assert_args(b"ECHO \"\\xzz\"\r\n", &[b"ECHO", b"xzz"]);
        assert_args(b"ECHO \"\"\r\n", &[b"ECHO", b""]);
        // A quote may open inside a word.
        assert_args(b"SET k foo\"bar baz\"\r\n", &[b"SET", b"k", b"foobar baz"]);
        // Any whitespace may follow the closing quote.
        assert_args(b"SET k \"x\"\x0b\r\n", &[b"SET", b"k", b"x"]);
        // Bytes that would frame RESP are plain data here.
        assert_args(b"ECHO \"\\r\\n*1\\r\\n\"\r\n", &[b"ECHO", b"\r\n*1\r\n"]);
    }

    #[test]
    fn single_quotes_keep_their_bytes_but_for_an_escaped_quote() {
        assert_args(b"SET k 'it\\'s' \r\n", &[b"SET", b"k", b"it's"]);
        assert_args(b"SET k 'a\\nb \"c\"'\r\n", &[b"SET", b"k", b"a\\nb \"c\""]);
        assert_args(b"ECHO ''\r\n", &[b"ECHO", b""]);
        assert_args(b"PING \"\" ''\r\n", &[b"PING", b"", b""]);
    }

    #[test]
    fn unbalanced_quotes() {
        assert_unbalanced(b"SET k \"abc\"def\r\n");
        assert_unbalanced(b"SET k \"abc\r\n");
        assert_unbalanced(b"SET k 'abc\r\n");
        assert_unbalanced(b"SET k 'abc'def\r\n");
        // The escaped quote does not close.
        assert_unbalanced(b"SET k \"\\\"\r\n");
        assert_unbalanced(b"SET k '\\\\'\r\n");
        // A lone backslash at the end of a quoted word.
        assert_unbalanced(b"SET k \"a\\\r\n");
        assert_eq!(UNBALANCED.to_string(), "unbalanced quotes in request");
    }

    #[test]
    fn a_nul_byte_ends_the_words() {
        assert_args(b"SET a\x00b c\r\n", &[b"SET", b"a"]);
        assert_args(b"\x00PING\r\n", &[]);
        // Inside quotes it leaves them open.
        assert_unbalanced(b"SET k \"a\x00b\"\r\n");
    }

    #[test]
    fn quoted_and_unquoted_words_mix() {
        assert_args(b"MSET a \"1 2\" b '3' c 4\r\n", &[b"MSET", b"a", b"1 2", b"b", b"3", b"c", b"4"]);
    }

    #[test]
    fn limits() {
        let l = Limits { max_line: 8, max_bulk: 64, max_args: 3 };
        assert_eq!(run(b"GET 1234", &l), Ok(None));
        assert_eq!(run(b"GET 1234\r", &l), Ok(None));
        assert_eq!(run(b"GET 1234\r\n", &l), Ok(Some((owned(&[b"GET", b"1234"]), 10))));
        assert_eq!(run(b"GET 123456", &l), Err(TOO_BIG));
        assert_eq!(run(b"GET 12345\r\n", &l), Err(TOO_BIG));
        assert_eq!(run(b"a b c\r\n", &l), Ok(Some((owned(&[b"a", b"b", b"c"]), 7))));
        assert_eq!(run(b"a b c d\r\n", &l), Err(TOO_BIG));
        assert_eq!(run(b"a b 'c' d\r\n", &Limits { max_line: 20, ..l }), Err(TOO_BIG));
        assert_eq!(TOO_BIG.to_string(), "too big inline request");
    }

    #[test]
    fn arguments_are_copied_and_the_copy_reused() {
        let mut argv = Argv::new();
        let buf = b"SET k \"v w\"\r\nrest";
        assert_eq!(parse(buf, &mut argv, &Limits::default()), Ok(Parsed::Request { consumed: 13 }));
        assert_eq!(argv.input(Dialect::Inline, buf), b"SETkv w");
        assert_eq!(argv.spans(), &[(0, 3), (3, 4), (4, 7)]);
        // The next parse starts the copy anew, in the same allocation.
        let cap = argv.bytes.capacity();
        assert_eq!(parse(b"GET x\r\n", &mut argv, &Limits::default()), Ok(Parsed::Request { consumed: 7 }));
        assert_eq!(argv.input(Dialect::Inline, b""), b"GETx");
        assert_eq!(argv.bytes.capacity(), cap);
    }

    #[test]
    fn split_at_every_offset() {
        let input: &[u8] = b"PING\r\nSET k \"a \\x41\"\r\n\r\nGET 'k'\r\nMSET a 1 b 2\r\n";
        let want = [
            owned(&[b"PING"]),
            owned(&[b"SET", b"k", b"a A"]),
            vec![],
            owned(&[b"GET", b"k"]),
            owned(&[b"MSET", b"a", b"1", b"b", b"2"]),
        ];
        let limits = Limits::default();
        let mut argv = Argv::new();
        let mut pos = 0;
        for (n, want) in want.iter().enumerate() {
            let Ok(Some((got, len))) = run(&input[pos..], &limits) else { panic!("request {n} did not parse") };
            assert_eq!(&got, want, "request {n}");
            for cut in 0..len {
                assert_eq!(parse(&input[pos..pos + cut], &mut argv, &limits), Ok(Parsed::Incomplete), "{n} cut {cut}");
            }
            pos += len;
        }
        assert_eq!(pos, input.len());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        /// The word-by-word path and the byte-by-byte one split a line
        /// without quotes alike.
        #[test]
        fn both_paths_agree_without_quotes(line in proptest::collection::vec(
            prop_oneof![Just(b' '), Just(b'\t'), Just(b'\r'), Just(0x0bu8), Just(0x0cu8), Just(b'\\'), b'a'..=b'c'],
            0..40,
        )) {
            let (mut whole, mut decoded) = (Argv::new(), Argv::new());
            words(&line, &mut whole, usize::MAX).unwrap();
            decode(&line, &mut decoded, usize::MAX).unwrap();
            let a: Vec<&[u8]> = (0..whole.len()).map(|i| whole.get(&whole.bytes, i)).collect();
            let b: Vec<&[u8]> = (0..decoded.len()).map(|i| decoded.get(&decoded.bytes, i)).collect();
            prop_assert_eq!(a, b);
        }

        /// Quoting an argument the way redis-cli's `sdscatrepr` does reads
        /// back the same bytes.
        #[test]
        fn quoted_arguments_round_trip(want in proptest::collection::vec(
            proptest::collection::vec(any::<u8>().prop_filter("no NUL", |&c| c != 0), 0..20), 1..5,
        )) {
            let mut line = Vec::new();
            for a in &want {
                line.push(b'"');
                for &c in a {
                    match c {
                        b'"' | b'\\' => line.extend_from_slice(&[b'\\', c]),
                        b'\n' => line.extend_from_slice(b"\\n"),
                        b'\r' => line.extend_from_slice(b"\\r"),
                        0x20..=0x7e => line.push(c),
                        _ => line.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
                    }
                }
                line.extend_from_slice(b"\" ");
            }
            line.extend_from_slice(b"\r\n");
            prop_assert_eq!(args(&line), Ok(want));
        }

        #[test]
        fn garbage_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut argv = Argv::new();
            let limits = Limits { max_line: 32, max_bulk: 64, max_args: 4 };
            if let Ok(Parsed::Request { consumed }) = parse(&buf, &mut argv, &limits) {
                prop_assert!(consumed <= buf.len());
                for i in 0..argv.len() {
                    let _ = argv.get(argv.input(Dialect::Inline, &buf), i);
                }
            }
        }
    }
}
