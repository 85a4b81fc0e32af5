//! RESP, Redis's protocol: the request parser and the reply encoders.
//!
//! # Requests
//!
//! A client sends each command as a multibulk: `*N\r\n` followed by `N` bulk
//! strings `$len\r\n<len bytes>\r\n`. [`parse`] reads one such request from
//! the start of a buffer and records each argument as a span of that buffer
//! in an [`Argv`]; it never copies an argument and never allocates for a
//! declared length, so `$1000000000\r\n` followed by a few bytes costs nothing
//! but an `Incomplete`.
//!
//! What the parser accepts, and why where it departs from Redis:
//! - `*0` and `*-1` are a request with no arguments (Redis ignores both).
//!   `*-2` and below are errors (Redis ignores them too; nothing sends them).
//! - Lengths are [`parse_int`] integers: an optional `-`, 1 to 19 digits, no
//!   `+`, no spaces, no overflow.
//! - A bulk length must be `0..=max_bulk`; `$-1` (a null) is rejected, as
//!   Redis does: an argument is bytes, a span cannot say "null".
//! - Only bulk strings may follow `*N`; a nested array is an error.
//! - A header line (`*N` or `$len`, its type byte included, CRLF excluded)
//!   longer than `max_line` is refused as soon as that many bytes are
//!   buffered without a CR, so a peer cannot make us wait on an endless
//!   header: [`MBULK_TOO_BIG`] or [`BULK_TOO_BIG`], Redis's words (Redis
//!   refuses at 64 KiB, `max_line` is 1 MiB by default).
//! - CR must be followed by LF, and a bulk string's bytes by CRLF (Redis
//!   skips the two bytes unread; a stream that breaks them is refused here).
//!
//! There is no separate completeness pre-check: the parse itself is one pass
//! over the headers that jumps over bulk bodies, so checking first would
//! only do the same work twice.
//!
//! # Replies
//!
//! One function per reply type appends its encoding to an output buffer. The
//! ones whose RESP2 and RESP3 forms differ take `resp3`; in RESP2 they fall
//! back the way Redis does (a map is a flat array of `2n` items, a double is a
//! bulk string, a boolean is `:1`/`:0`, null is `$-1` or `*-1`).

use memchr::memchr;
use nom::character::streaming::{char, crlf};
use nom::error::{ErrorKind, ParseError};
use nom::{IResult, Needed, Offset, bytes::streaming::take};

use super::{Argv, Limits, Parsed, ProtoError};

// ---------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------

/// The nom error of this parser: the protocol error to report.
///
/// Every step that can fail maps its failure to a specific [`ProtoError`]
/// with [`or_fail`], so the generic value from `from_error_kind` is only a
/// safety net.
#[derive(Debug)]
struct Fail(ProtoError);

impl<I> ParseError<I> for Fail {
    fn from_error_kind(_: I, _: ErrorKind) -> Fail {
        Fail(ProtoError::Malformed("malformed request"))
    }
    fn append(_: I, _: ErrorKind, other: Fail) -> Fail {
        other
    }
}

type Res<'a, T> = IResult<&'a [u8], T, Fail>;

/// A hard failure: no amount of further input can make the request valid.
fn fail<'a, T>(e: ProtoError) -> Res<'a, T> {
    Err(nom::Err::Failure(Fail(e)))
}

/// Turns a nom step's recoverable error into the failure `e`; `Incomplete`
/// passes through, since more bytes may still make the step succeed.
fn or_fail<T>(r: Res<'_, T>, e: ProtoError) -> Res<'_, T> {
    r.map_err(|err| match err {
        nom::Err::Error(_) => nom::Err::Failure(Fail(e)),
        other => other,
    })
}

/// A `*N` header over `max_line` without its CR, in Redis's words.
pub const MBULK_TOO_BIG: ProtoError = ProtoError::Malformed("too big mbulk count string");

/// A `$len` header over `max_line` without its CR, in Redis's words.
pub const BULK_TOO_BIG: ProtoError = ProtoError::Malformed("too big bulk count string");

/// How far [`header`] looks for the CR by hand before calling memchr.
const SHORT_LINE: usize = 24;

/// A header line: the type byte `tag`, then text up to CRLF. Returns the
/// text between them (the would-be integer).
fn header<'a>(i: &'a [u8], tag: char, expected: &'static str, max_line: usize) -> Res<'a, &'a [u8]> {
    let (text, _) = or_fail(char(tag)(i), ProtoError::Malformed(expected))?;
    // Look for the CR only within the longest allowed line, so a line that
    // is too long is refused as soon as `max_line` bytes are here, not
    // waited on (and rescanned on every read) until a CR shows up.
    let window = &i[..i.len().min(max_line.saturating_add(1))];
    // A well-formed header is at most 21 bytes ('$', '-', 19 digits) and
    // usually 2 to 4: a plain loop finds its CR sooner than a memchr call
    // would; memchr takes over for long (hostile) lines.
    let head = &window[..window.len().min(SHORT_LINE)];
    let cr = match head.iter().position(|&c| c == b'\r') {
        Some(cr) => Some(cr),
        None => memchr(b'\r', &window[head.len()..]).map(|cr| cr + head.len()),
    };
    match cr {
        Some(cr) => {
            let (rest, _) = or_fail(crlf(&i[cr..]), ProtoError::Malformed("expected CRLF"))?;
            Ok((rest, &text[..cr - 1]))
        }
        None if i.len() > max_line => fail(if tag == '*' { MBULK_TOO_BIG } else { BULK_TOO_BIG }),
        None => Err(nom::Err::Incomplete(Needed::Unknown)),
    }
}

/// One bulk string, `$len\r\n<len bytes>\r\n`. Returns its bytes.
fn bulk_arg<'a>(i: &'a [u8], limits: &Limits) -> Res<'a, &'a [u8]> {
    if let Some(&got) = i.first()
        && got != b'$'
    {
        return fail(ProtoError::Expected { want: b'$', got });
    }
    let (i, text) = header(i, '$', "expected '$'", limits.max_line)?;
    let len = match parse_int(text) {
        Some(len) if len >= 0 => len as u64,
        _ => return fail(ProtoError::Malformed("invalid bulk length")),
    };
    if len > limits.max_bulk as u64 {
        return fail(ProtoError::BulkTooLong);
    }
    // `take` only compares the length with what is buffered: a huge declared
    // length costs nothing until its bytes arrive.
    let (i, data) = take(len as usize)(i)?;
    let (i, _) = or_fail(crlf(i), ProtoError::Malformed("expected CRLF after bulk"))?;
    Ok((i, data))
}

/// A whole multibulk request; pushes the span of each argument onto `argv`.
fn request<'a>(buf: &'a [u8], argv: &mut Argv, limits: &Limits) -> Res<'a, ()> {
    let (mut i, text) = header(buf, '*', "expected '*'", limits.max_line)?;
    let n = match parse_int(text) {
        // Zero or less (-1 is a null array) is an empty request, as Redis
        // takes it (its protocol test sends `*-10` and expects the
        // connection to go on).
        Some(n) => n.max(0),
        None => return fail(ProtoError::Malformed("invalid multibulk length")),
    };
    if n > 0 && n as u64 > limits.max_args as u64 {
        return fail(ProtoError::TooManyArgs);
    }
    // No `reserve(n)`: `n` is only a claim until the arguments arrive; argv
    // grows with the arguments actually parsed and is reused by the caller.
    for _ in 0..n {
        let (rest, data) = bulk_arg(i, limits)?;
        let start = buf.offset(data);
        argv.push(start, start + data.len());
        i = rest;
    }
    Ok((i, ()))
}

/// Parses one RESP multibulk request (`*N\r\n` then N bulk strings
/// `$len\r\n<bytes>\r\n`) at the start of `buf`.
///
/// `argv` is cleared first. On [`Parsed::Request`] it holds one span per
/// argument (offsets into `buf`) and `consumed` is the length of the
/// request; bytes after it are left alone. On [`Parsed::Incomplete`] its
/// content is unspecified. An error means the stream cannot be resynchronised:
/// the caller reports it and closes the connection.
pub fn parse(buf: &[u8], argv: &mut Argv, limits: &Limits) -> Result<Parsed, ProtoError> {
    argv.clear();
    if let Some(consumed) = fast_request(buf, argv, limits) {
        return Ok(Parsed::Request { consumed });
    }
    argv.clear();
    match request(buf, argv, limits) {
        Ok((rest, ())) => {
            let consumed = buf.len() - rest.len();
            // Spans are u32: refuse rather than record wrapped offsets.
            if consumed > u32::MAX as usize {
                return Err(ProtoError::Malformed("request too large"));
            }
            Ok(Parsed::Request { consumed })
        }
        Err(nom::Err::Incomplete(_)) => Ok(Parsed::Incomplete),
        Err(nom::Err::Error(Fail(e)) | nom::Err::Failure(Fail(e))) => Err(e),
    }
}

/// The common case without combinators: a complete, well-formed request
/// whose header lines are plain decimal numbers within the limits, as every
/// client sends. It accepts a strict subset of what [`request`] accepts and
/// returns exactly what it would (a property test holds them to that); any
/// other input (incomplete, malformed, over a limit, `*0`) returns `None`
/// and is left to the nom parser, which decides every error and every
/// "need more bytes". It exists because the combinators cost several times
/// more per header line, on the path every request takes.
#[inline]
fn fast_request(buf: &[u8], argv: &mut Argv, limits: &Limits) -> Option<usize> {
    if limits.max_line < MAX_FAST_HEADER {
        return None;
    }
    let (n, mut pos) = fast_header(buf, 0, b'*')?;
    if n == 0 || n > limits.max_args as u64 {
        return None;
    }
    for _ in 0..n {
        let (len, start) = fast_header(buf, pos, b'$')?;
        if len > limits.max_bulk as u64 {
            return None;
        }
        let end = start.checked_add(len as usize)?;
        if buf.get(end..end.checked_add(2)?)? != b"\r\n" {
            return None;
        }
        argv.push(start, end);
        pos = end + 2;
    }
    (pos <= u32::MAX as usize).then_some(pos)
}

/// Longest header line the fast path reads: tag, 18 digits, CR.
const MAX_FAST_HEADER: usize = 20;

/// `<tag><1 to 18 digits>\r\n` at `pos`: the number and where the line ends.
#[inline]
fn fast_header(buf: &[u8], pos: usize, tag: u8) -> Option<(u64, usize)> {
    let b = buf.get(pos..)?;
    // Nearly every header is `*N`, `$N` or `$NN`: match those whole.
    match b {
        [t, d, b'\r', b'\n', ..] if *t == tag && d.is_ascii_digit() => return Some((u64::from(d - b'0'), pos + 4)),
        [t, d1, d0, b'\r', b'\n', ..] if *t == tag && d1.is_ascii_digit() && d0.is_ascii_digit() => {
            return Some((u64::from((d1 - b'0') * 10 + (d0 - b'0')), pos + 5));
        }
        _ => {}
    }
    if *b.first()? != tag {
        return None;
    }
    let mut n: u64 = 0;
    let mut i = 1;
    loop {
        let c = *b.get(i)?;
        if c == b'\r' {
            break;
        }
        let d = c.wrapping_sub(b'0');
        if d > 9 || i > 18 {
            return None;
        }
        n = n * 10 + u64::from(d);
        i += 1;
    }
    if i == 1 || *b.get(i + 1)? != b'\n' {
        return None;
    }
    Some((n, pos + i + 2))
}

/// Parses a strict decimal integer: an optional `-`, then 1 to 19 ASCII
/// digits, nothing else (no `+`, no spaces), and no overflow of `i64`.
///
/// Leading zeros are accepted (`007` is 7).
pub fn parse_int(b: &[u8]) -> Option<i64> {
    let (neg, digits) = match b {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    // 19 nines fit in a u64, so the accumulation itself cannot overflow;
    // the range of i64 is checked once at the end.
    let mut n: u64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n * 10 + u64::from(d);
    }
    if neg {
        // 2^63 is i64::MIN's magnitude; wrapping_neg maps it onto itself.
        (n <= 1 << 63).then(|| (n as i64).wrapping_neg())
    } else {
        i64::try_from(n).ok()
    }
}

// ---------------------------------------------------------------------------
// Encoders
// ---------------------------------------------------------------------------

/// "00" "01" … "99": two digits per division when writing a number.
const DIGIT_PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// Appends `n` in decimal, without allocating beyond `out`'s growth.
fn put_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20]; // u64::MAX has 20 digits
    let mut pos = buf.len();
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        pos -= 2;
        buf[pos..pos + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        pos -= 2;
        buf[pos..pos + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        pos -= 1;
        buf[pos] = b'0' + n as u8;
    }
    out.extend_from_slice(&buf[pos..]);
}

/// Appends `n` in decimal; `unsigned_abs` makes i64::MIN safe.
fn put_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    put_u64(out, n.unsigned_abs());
}

/// Appends `<tag><n>\r\n`, the header of aggregates and bulks.
fn put_header(out: &mut Vec<u8>, tag: u8, n: usize) {
    out.push(tag);
    put_u64(out, n as u64);
    out.extend_from_slice(b"\r\n");
}

/// Appends a simple string, `+s\r\n`. `s` must not contain CR or LF.
pub fn simple(out: &mut Vec<u8>, s: &[u8]) {
    debug_assert!(!s.contains(&b'\r') && !s.contains(&b'\n'));
    out.push(b'+');
    out.extend_from_slice(s);
    out.extend_from_slice(b"\r\n");
}

/// Appends an error, `-msg\r\n`; `msg` starts with its code, as in
/// `ERR unknown command`.
///
/// Error texts quote client arguments (an unknown subcommand, a bad
/// option), so CR and LF in `msg` become spaces here, as Redis does: one
/// stray CRLF would end the error early and make the rest of the text read
/// as a second, forged reply.
pub fn error(out: &mut Vec<u8>, msg: &[u8]) {
    out.push(b'-');
    out.extend(msg.iter().map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }));
    out.extend_from_slice(b"\r\n");
}

/// Appends an integer, `:n\r\n`.
pub fn int(out: &mut Vec<u8>, n: i64) {
    out.push(b':');
    put_i64(out, n);
    out.extend_from_slice(b"\r\n");
}

/// Appends a bulk string, `$len\r\nb\r\n`.
pub fn bulk(out: &mut Vec<u8>, b: &[u8]) {
    out.reserve(b.len() + 16);
    put_header(out, b'$', b.len());
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

/// Appends a null: `$-1\r\n` (RESP2's null bulk) or `_\r\n` (RESP3).
pub fn null(out: &mut Vec<u8>, resp3: bool) {
    out.extend_from_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" });
}

/// Appends a null where an array was expected: `*-1\r\n` (RESP2) or
/// `_\r\n` (RESP3).
pub fn null_array(out: &mut Vec<u8>, resp3: bool) {
    out.extend_from_slice(if resp3 { b"_\r\n" } else { b"*-1\r\n" });
}

/// Appends an array header, `*n\r\n`; the caller then appends `n` replies.
pub fn array(out: &mut Vec<u8>, n: usize) {
    put_header(out, b'*', n);
}

/// Appends a map header for `n` pairs: `%n\r\n` in RESP3, a flat array
/// `*{2n}\r\n` in RESP2. The caller then appends key, value, key, value…
pub fn map(out: &mut Vec<u8>, n: usize, resp3: bool) {
    if resp3 {
        put_header(out, b'%', n);
    } else {
        put_header(out, b'*', 2 * n);
    }
}

/// Appends a set header: `~n\r\n` in RESP3, `*n\r\n` in RESP2.
pub fn set(out: &mut Vec<u8>, n: usize, resp3: bool) {
    put_header(out, if resp3 { b'~' } else { b'*' }, n);
}

/// Appends a boolean: `#t\r\n`/`#f\r\n` in RESP3, `:1\r\n`/`:0\r\n` in RESP2.
pub fn boolean(out: &mut Vec<u8>, b: bool, resp3: bool) {
    out.extend_from_slice(match (resp3, b) {
        (true, true) => b"#t\r\n",
        (true, false) => b"#f\r\n",
        (false, true) => b":1\r\n",
        (false, false) => b":0\r\n",
    });
}

/// A fixed stack buffer to format a double into, so that its length is
/// known before the RESP2 bulk header is written.
struct DoubleText {
    buf: [u8; 40],
    len: usize,
}

impl std::fmt::Write for DoubleText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Formats `d` as the shortest text that reads back to the same value:
/// plain decimal for magnitudes in [1e-4, 1e17), exponent form beyond (so
/// 1e300 is not 301 digits), and `inf`, `-inf`, `nan` as RESP3 spells them.
fn double_text(d: f64) -> DoubleText {
    use std::fmt::Write;
    let mut t = DoubleText { buf: [0; 40], len: 0 };
    let a = d.abs();
    // At most 17 significant digits, a sign, a point, "0.000" or "e-324":
    // every branch fits in 40 bytes, so the writes cannot fail.
    let r = if d.is_nan() {
        t.write_str("nan")
    } else if d.is_infinite() {
        t.write_str(if d > 0.0 { "inf" } else { "-inf" })
    } else if a == 0.0 || (1e-4..1e17).contains(&a) {
        write!(t, "{d}")
    } else {
        write!(t, "{d:e}")
    };
    debug_assert!(r.is_ok());
    t
}

/// Appends a double: `,d\r\n` in RESP3, a bulk string of the same text in
/// RESP2.
pub fn double(out: &mut Vec<u8>, d: f64, resp3: bool) {
    let t = double_text(d);
    let text = &t.buf[..t.len];
    if resp3 {
        out.push(b',');
        out.extend_from_slice(text);
        out.extend_from_slice(b"\r\n");
    } else {
        bulk(out, text);
    }
}

/// Appends a verbatim string: in RESP3 `=len\r\nfmt:text\r\n`, where `fmt`
/// is its format (`txt`, `mkd`) and `len` counts the `fmt:` prefix; in
/// RESP2 a bulk string of `text` alone.
pub fn verbatim(out: &mut Vec<u8>, fmt3: &[u8; 3], text: &[u8], resp3: bool) {
    if resp3 {
        out.reserve(text.len() + 20);
        put_header(out, b'=', text.len() + 4);
        out.extend_from_slice(fmt3);
        out.push(b':');
        out.extend_from_slice(text);
        out.extend_from_slice(b"\r\n");
    } else {
        bulk(out, text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MALFORMED_MULTIBULK: ProtoError = ProtoError::Malformed("invalid multibulk length");
    const MALFORMED_BULK: ProtoError = ProtoError::Malformed("invalid bulk length");

    /// `None` for Incomplete, else consumed and the arguments.
    type Outcome = Result<Option<(usize, Vec<Vec<u8>>)>, ProtoError>;

    /// Parses `buf` with `limits`; on a request, returns consumed and the args.
    fn run(buf: &[u8], limits: &Limits) -> Outcome {
        let mut argv = Argv::new();
        Ok(match parse(buf, &mut argv, limits)? {
            Parsed::Incomplete => None,
            Parsed::Request { consumed } => {
                let args = (0..argv.len()).map(|i| argv.get(buf, i).to_vec()).collect();
                Some((consumed, args))
            }
        })
    }

    fn run_default(buf: &[u8]) -> Outcome {
        run(buf, &Limits::default())
    }

    /// Encodes a request independently of the encoders under test.
    fn encode(args: &[&[u8]]) -> Vec<u8> {
        let mut v = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            v.extend_from_slice(a);
            v.extend_from_slice(b"\r\n");
        }
        v
    }

    fn owned(args: &[&[u8]]) -> Vec<Vec<u8>> {
        args.iter().map(|a| a.to_vec()).collect()
    }

    fn assert_request(buf: &[u8], consumed: usize, args: &[&[u8]]) {
        assert_eq!(run_default(buf), Ok(Some((consumed, owned(args)))), "{:?}", buf.escape_ascii().to_string());
    }

    fn assert_err(buf: &[u8], limits: &Limits, e: ProtoError) {
        assert_eq!(run(buf, limits), Err(e), "{:?}", buf.escape_ascii().to_string());
    }

    // --- valid requests ---------------------------------------------------

    #[test]
    fn one_arg() {
        assert_request(b"*1\r\n$4\r\nPING\r\n", 14, &[b"PING"]);
    }

    #[test]
    fn many_args() {
        let buf = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";
        assert_request(buf, buf.len(), &[b"SET", b"key", b"value"]);
        let many: Vec<Vec<u8>> = (0..100).map(|i| format!("arg{i}").into_bytes()).collect();
        let refs: Vec<&[u8]> = many.iter().map(|a| a.as_slice()).collect();
        let buf = encode(&refs);
        assert_request(&buf, buf.len(), &refs);
    }

    #[test]
    fn empty_bulk() {
        assert_request(b"*2\r\n$3\r\nGET\r\n$0\r\n\r\n", 19, &[b"GET", b""]);
    }

    #[test]
    fn binary_values_with_crlf_and_nul() {
        let value: &[u8] = b"a\r\nb\0c\r\n\r\n\n\r\0";
        let buf = encode(&[b"SET", b"\0k\r\n", value]);
        assert_request(&buf, buf.len(), &[b"SET", b"\0k\r\n", value]);
        // A bulk body that looks like a header is still data.
        let buf = encode(&[b"*1\r\n$1\r\na\r\n"]);
        assert_request(&buf, buf.len(), &[b"*1\r\n$1\r\na\r\n"]);
    }

    #[test]
    fn empty_and_null_multibulk() {
        assert_request(b"*0\r\n", 4, &[]);
        assert_request(b"*-1\r\n", 5, &[]);
        assert_request(b"*0\r\n*1\r\n$1\r\na\r\n", 4, &[]);
    }

    #[test]
    fn leading_zeros_in_lengths() {
        assert_request(b"*01\r\n$003\r\nfoo\r\n", 16, &[b"foo"]);
    }

    #[test]
    fn back_to_back_stops_at_first() {
        let first = encode(&[b"GET", b"a"]);
        let mut buf = first.clone();
        buf.extend_from_slice(&encode(&[b"GET", b"bb"]));
        assert_request(&buf, first.len(), &[b"GET", b"a"]);
        // Trailing garbage after a complete request is the next request's
        // problem, not this one's.
        let mut buf = first.clone();
        buf.extend_from_slice(b"garbage");
        assert_request(&buf, first.len(), &[b"GET", b"a"]);
    }

    #[test]
    fn spans_are_offsets_into_buf() {
        let buf = b"*2\r\n$1\r\na\r\n$2\r\nbc\r\n";
        let mut argv = Argv::new();
        assert_eq!(parse(buf, &mut argv, &Limits::default()), Ok(Parsed::Request { consumed: buf.len() }));
        assert_eq!(argv.spans(), &[(8, 9), (15, 17)]);
    }

    #[test]
    fn argv_is_cleared_between_requests() {
        let limits = Limits::default();
        let mut argv = Argv::new();
        let big = encode(&[b"a", b"b", b"c"]);
        assert!(matches!(parse(&big, &mut argv, &limits), Ok(Parsed::Request { .. })));
        assert_eq!(argv.len(), 3);
        let small = encode(&[b"x"]);
        assert!(matches!(parse(&small, &mut argv, &limits), Ok(Parsed::Request { .. })));
        assert_eq!(argv.len(), 1);
        assert_eq!(argv.get(&small, 0), b"x");
        assert!(matches!(parse(b"*0\r\n", &mut argv, &limits), Ok(Parsed::Request { consumed: 4 })));
        assert!(argv.is_empty());
    }

    // --- split at every byte offset ---------------------------------------

    fn samples() -> Vec<Vec<Vec<u8>>> {
        vec![
            vec![b"PING".to_vec()],
            vec![b"SET".to_vec(), b"key".to_vec(), b"value".to_vec()],
            vec![b"SET".to_vec(), b"k".to_vec(), b"\r\n\0\r\r\n\n$3\r\n*1\r\n".to_vec()],
            vec![b"".to_vec(), b"".to_vec()],
            vec![b"x".repeat(300), (0u8..=255).collect()],
            vec![],
        ]
    }

    #[test]
    fn every_strict_prefix_is_incomplete() {
        for args in samples() {
            let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
            let buf = encode(&refs);
            for cut in 0..buf.len() {
                assert_eq!(run_default(&buf[..cut]), Ok(None), "prefix {cut} of {:?}", buf.escape_ascii().to_string());
            }
            assert_eq!(run_default(&buf), Ok(Some((buf.len(), args.clone()))));
        }
    }

    #[test]
    fn pipeline_parses_sequentially_at_every_split() {
        let reqs = [encode(&[b"SET", b"a", b"1\r\n"]), encode(&[b"GET", b"a"]), encode(&[b"DEL", b"\0", b"b"])];
        let expected = [owned(&[b"SET", b"a", b"1\r\n"]), owned(&[b"GET", b"a"]), owned(&[b"DEL", b"\0", b"b"])];
        let stream: Vec<u8> = reqs.concat();
        let limits = Limits::default();
        // Simulate a connection receiving the stream in two reads split at
        // `cut`: parse what is buffered, consume, read more, repeat.
        for cut in 0..=stream.len() {
            let mut buffered = stream[..cut].to_vec();
            let mut pending = &stream[cut..];
            let mut pos = 0;
            let mut got = Vec::new();
            let mut argv = Argv::new();
            loop {
                match parse(&buffered[pos..], &mut argv, &limits).unwrap() {
                    Parsed::Request { consumed } => {
                        let b = &buffered[pos..];
                        got.push((0..argv.len()).map(|i| argv.get(b, i).to_vec()).collect::<Vec<_>>());
                        pos += consumed;
                    }
                    Parsed::Incomplete if pending.is_empty() => break,
                    Parsed::Incomplete => {
                        buffered.extend_from_slice(pending);
                        pending = &[];
                    }
                }
            }
            assert_eq!(pos, stream.len(), "cut {cut}");
            assert_eq!(got, expected, "cut {cut}");
        }
    }

    // --- malformed and hostile ---------------------------------------------

    #[test]
    fn empty_buffer_is_incomplete() {
        assert_eq!(run_default(b""), Ok(None));
    }

    #[test]
    fn not_a_multibulk() {
        assert_err(b"+OK\r\n", &Limits::default(), ProtoError::Malformed("expected '*'"));
        assert_err(b"GET a\r\n", &Limits::default(), ProtoError::Malformed("expected '*'"));
    }

    #[test]
    fn negative_lengths() {
        let l = Limits::default();
        // A negative multibulk length is an empty request, as in Redis.
        assert_request(b"*-5\r\n", 5, &[]);
        assert_request(b"*-10\r\n", 6, &[]);
        assert_err(b"*x\r\n", &l, MALFORMED_MULTIBULK);
        assert_err(b"*1\r\n$-2\r\n", &l, MALFORMED_BULK);
        // A null bulk cannot be an argument.
        assert_err(b"*1\r\n$-1\r\n", &l, MALFORMED_BULK);
        // "-0" is a valid integer, zero, so this is an empty argument.
        assert_eq!(run(b"*1\r\n$-0\r\n\r\n", &l), Ok(Some((11, owned(&[b""])))));
    }

    #[test]
    fn huge_lengths() {
        let l = Limits::default();
        assert_err(b"*99999999999999999999\r\n", &l, MALFORMED_MULTIBULK);
        assert_err(b"*9223372036854775807\r\n", &l, ProtoError::TooManyArgs);
        assert_err(b"*9223372036854775808\r\n", &l, MALFORMED_MULTIBULK);
        assert_err(b"*1\r\n$9223372036854775807\r\n", &l, ProtoError::BulkTooLong);
        assert_err(b"*1\r\n$99999999999999999999\r\n", &l, MALFORMED_BULK);
    }

    #[test]
    fn limits_on_bulk_and_args() {
        let l = Limits { max_line: 64, max_bulk: 5, max_args: 2 };
        assert_eq!(run(b"*2\r\n$5\r\nhello\r\n$0\r\n\r\n", &l), Ok(Some((21, owned(&[b"hello", b""])))));
        assert_err(b"*1\r\n$6\r\n", &l, ProtoError::BulkTooLong);
        assert_err(b"*3\r\n", &l, ProtoError::TooManyArgs);
        // Limits are checked on the header, before any data arrives.
        assert_err(b"*1\r\n$6\r\nhel", &l, ProtoError::BulkTooLong);
    }

    #[test]
    fn non_digits_and_empty_lengths() {
        let l = Limits::default();
        for bad in [&b"*\r\n"[..], b"*x\r\n", b"*1x\r\n", b"*+1\r\n", b"* 1\r\n", b"*1 \r\n", b"*-\r\n", b"*--1\r\n"] {
            assert_err(bad, &l, MALFORMED_MULTIBULK);
        }
        for bad in [&b"*1\r\n$\r\n"[..], b"*1\r\n$x\r\n", b"*1\r\n$+3\r\nfoo\r\n", b"*1\r\n$3 \r\nfoo\r\n"] {
            assert_err(bad, &l, MALFORMED_BULK);
        }
    }

    #[test]
    fn bulk_must_end_with_crlf() {
        let l = Limits::default();
        let e = ProtoError::Malformed("expected CRLF after bulk");
        assert_err(b"*1\r\n$3\r\nfooX\r\n", &l, e);
        assert_err(b"*1\r\n$3\r\nfoo\n", &l, e);
        assert_err(b"*1\r\n$3\r\nfoo\rX", &l, e);
        assert_err(b"*1\r\n$2\r\nfoo\r\n", &l, e);
        // CR alone may still be followed by LF.
        assert_eq!(run(b"*1\r\n$3\r\nfoo\r", &l), Ok(None));
    }

    #[test]
    fn lf_without_cr() {
        let l = Limits::default();
        // The first CR is past the LF, so the length text includes "\n".
        assert_err(b"*1\n$3\r\nfoo\r\n", &l, MALFORMED_MULTIBULK);
        assert_err(b"*1\r\n$3\nfoo\r\n", &l, MALFORMED_BULK);
        // CR followed by something other than LF.
        assert_err(b"*1\rX", &l, ProtoError::Malformed("expected CRLF"));
        assert_err(b"*1\r\n$3\r\r", &l, ProtoError::Malformed("expected CRLF"));
        // A bare LF header with no CR yet: wait, it cannot be told apart
        // from a slow sender until a CR or the line limit arrives.
        assert_eq!(run(b"*1\n", &l), Ok(None));
    }

    #[test]
    fn nested_array_is_rejected() {
        assert_err(b"*1\r\n*1\r\n$1\r\na\r\n", &Limits::default(), ProtoError::Expected { want: b'$', got: b'*' });
        assert_err(b"*2\r\n$1\r\na\r\n:1\r\n", &Limits::default(), ProtoError::Expected { want: b'$', got: b':' });
        assert_eq!(ProtoError::Expected { want: b'$', got: b'f' }.to_string(), "expected '$', got 'f'");
    }

    #[test]
    fn header_longer_than_max_line() {
        let l = Limits { max_line: 16, ..Limits::default() };
        // 16 bytes without CR: still possibly a valid line.
        let mut line = b"*".to_vec();
        line.extend_from_slice(&[b'1'; 15]);
        assert_eq!(run(&line, &l), Ok(None));
        // A 17th byte without CR: too long, whatever comes next.
        line.push(b'1');
        assert_err(&line, &l, MBULK_TOO_BIG);
        let mut line = b"*1\r\n$".to_vec();
        line.extend_from_slice(&[b'9'; 100]);
        assert_err(&line, &l, BULK_TOO_BIG);
        // Garbage that never sends a CR is also cut off.
        assert_err(&[b'*'; 1000], &l, MBULK_TOO_BIG);
        // Exactly max_line bytes before the CRLF is fine.
        let mut ok = b"*1\r\n$000000000000003\r\nfoo\r\n".to_vec();
        assert_eq!(run(&ok, &l), Ok(Some((ok.len(), owned(&[b"foo"])))));
        ok.insert(5, b'0');
        assert_err(&ok, &l, BULK_TOO_BIG);
        // Past the first bytes scanned by hand, memchr finds the CR...
        let l = Limits { max_line: 100, ..Limits::default() };
        let mut long = b"*".to_vec();
        long.extend_from_slice(&[b'7'; 60]);
        assert_eq!(run(&long, &l), Ok(None));
        long.extend_from_slice(b"\r\n");
        assert_err(&long, &l, MALFORMED_MULTIBULK);
        // ...and the limit holds there too.
        assert_err(&[b'7'; 101], &l, ProtoError::Malformed("expected '*'"));
        let mut long = b"*1\r\n$".to_vec();
        long.extend_from_slice(&[b'7'; 99]);
        assert_eq!(run(&long, &l), Ok(None));
        long.push(b'7');
        assert_err(&long, &l, BULK_TOO_BIG);
        long.extend_from_slice(b"\r\n");
        assert_err(&long, &l, BULK_TOO_BIG);
        assert_eq!(MBULK_TOO_BIG.to_string(), "too big mbulk count string");
        assert_eq!(BULK_TOO_BIG.to_string(), "too big bulk count string");
    }

    #[test]
    fn huge_declared_bulk_is_just_incomplete() {
        let l = Limits { max_bulk: usize::MAX, ..Limits::default() };
        let buf = b"*2\r\n$3\r\nSET\r\n$1000000000\r\n0123456789";
        let start = std::time::Instant::now();
        let mut argv = Argv::new();
        assert_eq!(parse(buf, &mut argv, &l), Ok(Parsed::Incomplete));
        // Also with the data there but one byte short.
        assert_eq!(run(b"*1\r\n$10\r\n012345678", &l), Ok(None));
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
        // Many declared arguments, none sent: nothing reserved for them.
        assert_eq!(parse(b"*1000000\r\n", &mut argv, &l), Ok(Parsed::Incomplete));
        assert!(argv.spans().is_empty());
    }

    // --- parse_int ----------------------------------------------------------

    #[test]
    fn parse_int_strict() {
        assert_eq!(parse_int(b"0"), Some(0));
        assert_eq!(parse_int(b"-0"), Some(0));
        assert_eq!(parse_int(b"42"), Some(42));
        assert_eq!(parse_int(b"-42"), Some(-42));
        assert_eq!(parse_int(b"007"), Some(7));
        assert_eq!(parse_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_int(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_int(b"9999999999999999999"), None);
        assert_eq!(parse_int(b"9223372036854775808"), None);
        assert_eq!(parse_int(b"-9223372036854775809"), None);
        assert_eq!(parse_int(b"00000000000000000001"), None); // 20 digits
        for bad in [&b""[..], b"-", b"+1", b" 1", b"1 ", b"1a", b"--1", b"1-", b"0x1", b"1.0", b"\x001"] {
            assert_eq!(parse_int(bad), None, "{:?}", bad.escape_ascii().to_string());
        }
    }

    // --- encoders -------------------------------------------------------------

    fn enc(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        // Start non-empty: encoders append, they must not clear.
        let mut out = b"..".to_vec();
        f(&mut out);
        assert_eq!(&out[..2], b"..");
        out.split_off(2)
    }

    #[test]
    fn simple_error_bulk() {
        assert_eq!(enc(|o| simple(o, b"OK")), b"+OK\r\n");
        assert_eq!(enc(|o| error(o, b"ERR unknown command")), b"-ERR unknown command\r\n");
        assert_eq!(enc(|o| error(o, b"ERR bad 'x\r\n+OK'\n")), b"-ERR bad 'x  +OK' \r\n");
        assert_eq!(enc(|o| bulk(o, b"hello")), b"$5\r\nhello\r\n");
        assert_eq!(enc(|o| bulk(o, b"")), b"$0\r\n\r\n");
        assert_eq!(enc(|o| bulk(o, b"a\r\n\0")), b"$4\r\na\r\n\0\r\n");
        let big = vec![b'x'; 12345];
        let mut want = b"$12345\r\n".to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(b"\r\n");
        assert_eq!(enc(|o| bulk(o, &big)), want);
    }

    #[test]
    fn ints() {
        assert_eq!(enc(|o| int(o, 0)), b":0\r\n");
        assert_eq!(enc(|o| int(o, 7)), b":7\r\n");
        assert_eq!(enc(|o| int(o, 10)), b":10\r\n");
        assert_eq!(enc(|o| int(o, 100)), b":100\r\n");
        assert_eq!(enc(|o| int(o, -1)), b":-1\r\n");
        assert_eq!(enc(|o| int(o, -1234567)), b":-1234567\r\n");
        assert_eq!(enc(|o| int(o, i64::MAX)), b":9223372036854775807\r\n");
        assert_eq!(enc(|o| int(o, i64::MIN)), b":-9223372036854775808\r\n");
        let mut out = Vec::new();
        put_u64(&mut out, u64::MAX);
        assert_eq!(out, b"18446744073709551615");
    }

    #[test]
    fn nulls_and_aggregates() {
        assert_eq!(enc(|o| null(o, false)), b"$-1\r\n");
        assert_eq!(enc(|o| null(o, true)), b"_\r\n");
        assert_eq!(enc(|o| null_array(o, false)), b"*-1\r\n");
        assert_eq!(enc(|o| null_array(o, true)), b"_\r\n");
        assert_eq!(enc(|o| array(o, 0)), b"*0\r\n");
        assert_eq!(enc(|o| array(o, 3)), b"*3\r\n");
        assert_eq!(enc(|o| map(o, 2, true)), b"%2\r\n");
        assert_eq!(enc(|o| map(o, 2, false)), b"*4\r\n");
        assert_eq!(enc(|o| map(o, 0, false)), b"*0\r\n");
        assert_eq!(enc(|o| set(o, 5, true)), b"~5\r\n");
        assert_eq!(enc(|o| set(o, 5, false)), b"*5\r\n");
    }

    #[test]
    fn booleans() {
        assert_eq!(enc(|o| boolean(o, true, true)), b"#t\r\n");
        assert_eq!(enc(|o| boolean(o, false, true)), b"#f\r\n");
        assert_eq!(enc(|o| boolean(o, true, false)), b":1\r\n");
        assert_eq!(enc(|o| boolean(o, false, false)), b":0\r\n");
    }

    #[test]
    fn doubles() {
        assert_eq!(enc(|o| double(o, 1.5, true)), b",1.5\r\n");
        assert_eq!(enc(|o| double(o, 1.5, false)), b"$3\r\n1.5\r\n");
        assert_eq!(enc(|o| double(o, 0.0, true)), b",0\r\n");
        assert_eq!(enc(|o| double(o, -2.0, true)), b",-2\r\n");
        assert_eq!(enc(|o| double(o, 0.1, true)), b",0.1\r\n");
        assert_eq!(enc(|o| double(o, 2.71, false)), b"$4\r\n2.71\r\n");
        assert_eq!(enc(|o| double(o, 1e300, true)), b",1e300\r\n");
        assert_eq!(enc(|o| double(o, -1.25e-7, true)), b",-1.25e-7\r\n");
        assert_eq!(enc(|o| double(o, f64::INFINITY, true)), b",inf\r\n");
        assert_eq!(enc(|o| double(o, f64::NEG_INFINITY, true)), b",-inf\r\n");
        assert_eq!(enc(|o| double(o, f64::NAN, true)), b",nan\r\n");
        assert_eq!(enc(|o| double(o, f64::INFINITY, false)), b"$3\r\ninf\r\n");
        // The longest texts still fit the stack buffer and read back exactly.
        for d in [
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            -5e-324,
            1.0000000000000002,
            0.00012345678901234567,
            99999999999999980.0,
        ] {
            let t = double_text(d);
            let s = std::str::from_utf8(&t.buf[..t.len]).unwrap();
            assert_eq!(s.parse::<f64>().unwrap(), d, "{s}");
        }
    }

    #[test]
    fn verbatims() {
        assert_eq!(enc(|o| verbatim(o, b"txt", b"Some string", true)), b"=15\r\ntxt:Some string\r\n");
        assert_eq!(enc(|o| verbatim(o, b"mkd", b"", true)), b"=4\r\nmkd:\r\n");
        assert_eq!(enc(|o| verbatim(o, b"txt", b"Some string", false)), b"$11\r\nSome string\r\n");
    }

    #[test]
    fn encoders_compose_into_a_parsable_request() {
        let mut out = Vec::new();
        array(&mut out, 2);
        bulk(&mut out, b"GET");
        bulk(&mut out, b"k\r\n");
        assert_eq!(out, encode(&[b"GET", b"k\r\n"]));
    }

    // --- properties -----------------------------------------------------------

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn roundtrip(args in prop::collection::vec(
            prop::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(0u8), any::<u8>()], 0..64), 0..8))
        {
            let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
            let buf = encode(&refs);
            prop_assert_eq!(run_default(&buf), Ok(Some((buf.len(), args.clone()))));
            // Encoded with the crate's own encoders, the bytes are the same.
            let mut out = Vec::new();
            array(&mut out, refs.len());
            for a in &refs {
                bulk(&mut out, a);
            }
            prop_assert_eq!(out, buf);
        }

        #[test]
        fn garbage_never_panics(
            body in prop::collection::vec(
                prop_oneof![Just(b'*'), Just(b'$'), Just(b'\r'), Just(b'\n'), Just(b'-'), (b'0'..=b'9'), any::<u8>()],
                0..64),
            star in any::<bool>(),
            max_line in 0usize..24, max_bulk in 0usize..16, max_args in 0usize..8)
        {
            let mut buf = if star { b"*".to_vec() } else { Vec::new() };
            buf.extend_from_slice(&body);
            let tight = Limits { max_line, max_bulk, max_args };
            for limits in [Limits::default(), tight] {
                let mut argv = Argv::new();
                if let Ok(Parsed::Request { consumed }) = parse(&buf, &mut argv, &limits) {
                    prop_assert!(consumed <= buf.len());
                    for &(s, e) in argv.spans() {
                        prop_assert!(s <= e && (e as usize) < consumed);
                    }
                }
            }
        }

        #[test]
        fn int_matches_std(n in any::<i64>()) {
            let s = n.to_string();
            prop_assert_eq!(enc(|o| int(o, n)), format!(":{s}\r\n").into_bytes());
            prop_assert_eq!(parse_int(s.as_bytes()), Some(n));
        }
    }

    /// Runs only the nom parser.
    fn slow(buf: &[u8], limits: &Limits) -> Outcome {
        let mut argv = Argv::new();
        match request(buf, &mut argv, limits) {
            Ok((rest, ())) => {
                Ok(Some((buf.len() - rest.len(), (0..argv.len()).map(|i| argv.get(buf, i).to_vec()).collect())))
            }
            Err(nom::Err::Incomplete(_)) => Ok(None),
            Err(nom::Err::Error(Fail(e)) | nom::Err::Failure(Fail(e))) => Err(e),
        }
    }

    proptest! {
        /// Whatever the fast path accepts, the nom parser parses the same way.
        #[test]
        fn fast_path_agrees_with_nom(
            args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6),
            cut in 0usize..200,
            flip in proptest::option::of((0usize..200, any::<u8>())),
            max_bulk in 1usize..64,
        ) {
            let limits = Limits { max_bulk, ..Limits::default() };
            let mut buf = encode(&args.iter().map(Vec::as_slice).collect::<Vec<_>>());
            buf.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
            if let Some((at, b)) = flip && at < buf.len() {
                buf[at] = b;
            }
            let buf = &buf[..buf.len().min(cut.max(1) * 2)];
            let mut argv = Argv::new();
            if let Some(consumed) = fast_request(buf, &mut argv, &limits) {
                let args: Vec<Vec<u8>> = (0..argv.len()).map(|i| argv.get(buf, i).to_vec()).collect();
                prop_assert_eq!(slow(buf, &limits), Ok(Some((consumed, args))));
            }
            prop_assert_eq!(run(buf, &limits), slow(buf, &limits));
        }
    }
}
