//! Wire protocols: pure parsers from bytes to a request, and reply encoders.
//!
//! Three dialects share one port, told apart by each request's first bytes
//! ([`Dialect::of`]):
//! - a request whose first byte is `*` is RESP, Redis's protocol ([`resp`]);
//! - a line that ends in `\r\n` is a Redis inline command ([`inline`]), as
//!   telnet, health checks, Redis's test suite and redis-benchmark's
//!   `*_INLINE` tests send: it is answered in RESP, as Redis answers it;
//! - a line that ends in a bare `\n` is the text protocol ([`text`]), the one
//!   for people with netcat.
//!
//! A line's dialect is known only once its `\n` is here: until then it is
//! incomplete. Parsers never do I/O and never allocate per request: they
//! record each argument as a byte range of the input in a reused [`Argv`]
//! (but for inline commands, whose arguments are copied into the argv's own
//! reused buffer, quotes and escapes decoded).

pub mod inline;
pub mod resp;
pub mod text;

/// Which protocol a request came in, and so how its reply is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The line protocol (a line ending in a bare `\n`).
    Text,
    /// RESP (RESP2 or RESP3, per connection).
    Resp,
    /// A Redis inline command (a line ending in `\r\n`): parsed as Redis
    /// splits inline commands, run and answered as RESP.
    Inline,
}

impl Dialect {
    /// The dialect of the request at the start of `buf`: RESP if it starts
    /// with `*`; else the dialect of its line, by how the line ends. A line
    /// whose end is not here yet is [`Dialect::Text`] (its parser then says
    /// incomplete). A line over `max_line` whose end is nowhere in `buf` is
    /// [`Dialect::Inline`], as Redis takes any line that does not start with
    /// `*`: its dialect cannot be known, and of the two errors only Redis's
    /// can be read by both a program (a RESP error) and a person.
    pub fn of(buf: &[u8], limits: &Limits) -> Dialect {
        if buf.first() == Some(&b'*') {
            return Dialect::Resp;
        }
        match line_end(buf, limits.max_line) {
            LineEnd::At(nl) => Dialect::of_line(buf, nl),
            LineEnd::NotYet => Dialect::Text,
            LineEnd::TooLong => Dialect::of_overlong_line(buf),
        }
    }

    /// The dialect of a request known not to be inline (the look-ahead
    /// keeps no inline request): RESP or text, by its first byte.
    #[inline]
    pub fn resp_or_text(buf: &[u8]) -> Dialect {
        if buf.first() == Some(&b'*') { Dialect::Resp } else { Dialect::Text }
    }

    /// The dialect of the line whose `\n` is at `nl`.
    #[inline]
    fn of_line(buf: &[u8], nl: usize) -> Dialect {
        match nl.checked_sub(1).and_then(|i| buf.get(i)) {
            Some(b'\r') => Dialect::Inline,
            _ => Dialect::Text,
        }
    }

    /// The dialect of a line too long to be a request: by its end if it is
    /// buffered past the limit (looked for only on this error path), else
    /// inline (see [`Dialect::of`]; Redis's protocol test sends such lines,
    /// `\x00` or `$\x00` then bytes without end, and wants its error).
    fn of_overlong_line(buf: &[u8]) -> Dialect {
        match memchr::memchr(b'\n', buf) {
            Some(nl) => Dialect::of_line(buf, nl),
            None => Dialect::Inline,
        }
    }

    /// Parses the request at the start of `buf` as this dialect (see
    /// [`resp::parse`], [`inline::parse`] and [`text::parse`]).
    #[inline]
    pub fn parse(self, buf: &[u8], argv: &mut Argv, limits: &Limits) -> Result<Parsed, ProtoError> {
        match self {
            Dialect::Resp => resp::parse(buf, argv, limits),
            Dialect::Inline => inline::parse(buf, argv, limits),
            Dialect::Text => text::parse(buf, argv, limits),
        }
    }

    /// Whether replies to this dialect are RESP.
    #[inline]
    pub fn replies_in_resp(self) -> bool {
        self != Dialect::Text
    }

    /// Appends the error reply `msg`: `-ERR msg` in RESP, `ERROR msg` in text.
    pub fn error(self, out: &mut Vec<u8>, msg: &str) {
        if self.replies_in_resp() {
            resp::error(out, format!("ERR {msg}").as_bytes());
        } else {
            text::line(out, format!("ERROR {msg}").as_bytes());
        }
    }

    /// The error for a line over `max_line`, in this dialect's words.
    fn line_too_long(self) -> ProtoError {
        match self {
            Dialect::Inline => inline::TOO_BIG,
            _ => ProtoError::LineTooLong,
        }
    }
}

/// Finds the dialect of the request at the start of `buf` and parses it:
/// as [`Dialect::of`] then [`Dialect::parse`], with a line's end looked
/// for once. The dialect comes back with an error too, to word the error in.
///
/// Always inlined: on the RESP path, the one GET and SET take, it is then
/// one byte compared before [`resp::parse`] (as a call of its own, it cost
/// GET 7% more instructions, for moving the returned pair through memory).
#[inline(always)]
pub fn parse(buf: &[u8], argv: &mut Argv, limits: &Limits) -> (Dialect, Result<Parsed, ProtoError>) {
    if buf.first() == Some(&b'*') {
        (Dialect::Resp, resp::parse(buf, argv, limits))
    } else {
        parse_line(buf, argv, limits)
    }
}

/// [`parse`] for a request that is not RESP: a line, inline or text. (Not
/// inlined: into the pipeline, it made the RESP path's code slower.)
#[inline(never)]
fn parse_line(buf: &[u8], argv: &mut Argv, limits: &Limits) -> (Dialect, Result<Parsed, ProtoError>) {
    argv.clear();
    match line_end(buf, limits.max_line) {
        LineEnd::At(nl) => match Dialect::of_line(buf, nl) {
            Dialect::Inline => (Dialect::Inline, inline::split_line(buf, nl, argv, limits)),
            _ => (Dialect::Text, text::split_line(buf, nl, argv, limits)),
        },
        LineEnd::NotYet => (Dialect::Text, Ok(Parsed::Incomplete)),
        LineEnd::TooLong => {
            let d = Dialect::of_overlong_line(buf);
            (d, Err(d.line_too_long()))
        }
    }
}

/// Where the line at the start of a buffer ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineEnd {
    /// Its `\n` is at this offset.
    At(usize),
    /// Not here yet, and it may still fit.
    NotYet,
    /// Over `max_line` bytes with no `\n` in sight: it cannot fit.
    TooLong,
}

/// Finds the `\n` of the line at the start of `buf`. A line holds at most
/// `max_line` bytes before its `\r\n`, so the `\n` is looked for in the
/// first `max_line + 2` bytes only: an endless line is refused as soon as
/// that many bytes are here, not rescanned on every read until it ends.
#[inline]
fn line_end(buf: &[u8], max_line: usize) -> LineEnd {
    let window = &buf[..buf.len().min(max_line.saturating_add(2))];
    match memchr::memchr(b'\n', window) {
        Some(nl) => LineEnd::At(nl),
        None if buf.len() > max_line.saturating_add(1) => LineEnd::TooLong,
        None => LineEnd::NotYet,
    }
}

/// The content of the line whose `\n` is at `nl`, without its `\r\n` or `\n`.
#[inline]
fn line_content(buf: &[u8], nl: usize) -> &[u8] {
    match &buf[..nl] {
        [rest @ .., b'\r'] => rest,
        l => l,
    }
}

/// The arguments of one request, as `(start, end)` byte offsets into the
/// buffer it was parsed from. Reused from request to request.
///
/// An inline request's arguments are not always ranges of the input (quotes
/// and escapes are decoded): [`inline::parse`] copies them into the argv's
/// own buffer, and its spans index that buffer ([`Argv::input`] says which
/// buffer a request's spans index). So RESP and the text protocol, which
/// GET and SET take, pay nothing for it.
#[derive(Debug, Default, Clone)]
pub struct Argv {
    spans: Vec<(u32, u32)>,
    /// An inline request's arguments, back to back (reused, so no
    /// allocation per request once it has grown).
    bytes: Vec<u8>,
}

impl Argv {
    /// An empty argv.
    pub fn new() -> Argv {
        Argv::default()
    }
    /// Forgets the previous request's arguments, keeping the allocation.
    #[inline]
    pub fn clear(&mut self) {
        self.spans.clear();
    }
    /// Adds the argument `buf[start..end]`.
    pub fn push(&mut self, start: usize, end: usize) {
        self.spans.push((start as u32, end as u32));
    }
    /// How many arguments (the command name included).
    pub fn len(&self) -> usize {
        self.spans.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
    /// Argument `i`, of `buf`: the buffer the spans index ([`Argv::input`]).
    pub fn get<'a>(&self, buf: &'a [u8], i: usize) -> &'a [u8] {
        let (s, e) = self.spans[i];
        &buf[s as usize..e as usize]
    }
    /// The buffer the spans of a request in `dialect` parsed from `buf`
    /// index: `buf` itself, or for an inline request the argv's own copy.
    #[inline]
    pub fn input<'a>(&'a self, dialect: Dialect, buf: &'a [u8]) -> &'a [u8] {
        if dialect == Dialect::Inline { &self.bytes } else { buf }
    }
    /// The spans, for callers that walk all arguments.
    pub fn spans(&self) -> &[(u32, u32)] {
        &self.spans
    }
}

/// Size limits a parser enforces, so a peer cannot make the server buffer
/// or allocate without bound.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest text-protocol line, inline command line, and RESP header line.
    pub max_line: usize,
    /// Longest RESP bulk string.
    pub max_bulk: usize,
    /// Most arguments in one RESP or inline request.
    pub max_args: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_line: 1 << 20, max_bulk: 512 << 20, max_args: 1 << 20 }
    }
}

/// What a parser found at the start of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole request yet: read more bytes and call again.
    Incomplete,
    /// A request of `consumed` bytes; its arguments are in the argv
    /// (none for a blank line, which is skipped).
    Request {
        /// Bytes the request took.
        consumed: usize,
    },
}

/// Input that cannot be a request. The connection replies with the message
/// and closes: past a framing error the stream cannot be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtoError {
    /// A text-protocol line longer than `max_line` (an inline line or a
    /// RESP header has Redis's words for it: [`inline::TOO_BIG`],
    /// [`resp::MBULK_TOO_BIG`]).
    LineTooLong,
    /// A bulk string longer than `max_bulk`.
    BulkTooLong,
    /// More arguments than `max_args`.
    TooManyArgs,
    /// Bytes that break the framing; says what is wrong (in Redis's words
    /// where Redis has some, as for inline commands).
    Malformed(&'static str),
    /// Another byte where a bulk string's `$` was expected (Redis's words:
    /// "expected '$', got 'f'").
    Expected {
        /// The byte the framing calls for.
        want: u8,
        /// The byte that came.
        got: u8,
    },
}

impl std::fmt::Display for ProtoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtoError::LineTooLong => f.write_str("line too long"),
            ProtoError::BulkTooLong => f.write_str("invalid bulk length"),
            ProtoError::TooManyArgs => f.write_str("invalid multibulk length"),
            ProtoError::Malformed(what) => f.write_str(what),
            ProtoError::Expected { want, got } => {
                write!(f, "expected '{}', got '{}'", char::from(*want), got.escape_ascii())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(buf: &[u8]) -> Dialect {
        Dialect::of(buf, &Limits::default())
    }

    #[test]
    fn a_line_is_told_by_its_end() {
        assert_eq!(of(b"*1\r\n$4\r\nPING\r\n"), Dialect::Resp);
        assert_eq!(of(b"*"), Dialect::Resp);
        assert_eq!(of(b"PING\r\n"), Dialect::Inline);
        assert_eq!(of(b"\r\n"), Dialect::Inline);
        assert_eq!(of(b"PING\n"), Dialect::Text);
        assert_eq!(of(b"\n"), Dialect::Text);
        // The first line decides, whatever follows it.
        assert_eq!(of(b"PING\nGET k\r\n"), Dialect::Text);
        assert_eq!(of(b"PING\r\nGET k\n"), Dialect::Inline);
        // A CR inside the line is not its end.
        assert_eq!(of(b"PUT k a\rb\n"), Dialect::Text);
        // Not whole yet: text, which its parser calls incomplete.
        assert_eq!(of(b"PING\r"), Dialect::Text);
        assert_eq!(of(b""), Dialect::Text);
    }

    #[test]
    fn an_overlong_line_is_told_by_its_end_or_else_is_inline() {
        let limits = Limits { max_line: 8, ..Limits::default() };
        let mut argv = Argv::new();
        let long = b"GET 0123456789";
        // Its end not here: Redis's error, as Redis would answer it.
        assert_eq!(parse(long, &mut argv, &limits), (Dialect::Inline, Err(inline::TOO_BIG)));
        assert_eq!(parse(b"\x00AAAAAAAAAAA", &mut argv, &limits), (Dialect::Inline, Err(inline::TOO_BIG)));
        assert_eq!(parse(b"$\x00AAAAAAAAAA", &mut argv, &limits), (Dialect::Inline, Err(inline::TOO_BIG)));
        assert_eq!(Dialect::of(long, &limits), Dialect::Inline);
        // Shorter than the limit, it may still end either way: incomplete.
        assert_eq!(parse(b"GET 0", &mut argv, &limits), (Dialect::Text, Ok(Parsed::Incomplete)));
        let crlf = [long.as_slice(), b"\r\n"].concat();
        assert_eq!(parse(&crlf, &mut argv, &limits), (Dialect::Inline, Err(inline::TOO_BIG)));
        let lf = [long.as_slice(), b"\n"].concat();
        assert_eq!(parse(&lf, &mut argv, &limits), (Dialect::Text, Err(ProtoError::LineTooLong)));
        assert_eq!(Dialect::of(&crlf, &limits), Dialect::Inline);
    }

    #[test]
    fn replies_and_errors_follow_the_dialect() {
        assert!(Dialect::Inline.replies_in_resp() && Dialect::Resp.replies_in_resp());
        assert!(!Dialect::Text.replies_in_resp());
        let mut out = Vec::new();
        Dialect::Inline.error(&mut out, "no");
        Dialect::Text.error(&mut out, "no");
        assert_eq!(out, b"-ERR no\r\nERROR no\n");
    }

    /// A mixed stream, as one connection may send it, parsed request by
    /// request from every cut: a strict prefix of a request is incomplete,
    /// and `parse` agrees with `Dialect::of` then `Dialect::parse`.
    #[test]
    fn a_mixed_stream_split_at_every_offset() {
        let stream: &[u8] = b"PUT k v w\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\nSET k \"a b\"\r\n\r\n\nGET k\n";
        let want: [(Dialect, &[&[u8]]); 7] = [
            (Dialect::Text, &[b"PUT", b"k", b"v w"]),
            (Dialect::Inline, &[b"PING"]),
            (Dialect::Resp, &[b"GET", b"k"]),
            (Dialect::Inline, &[b"SET", b"k", b"a b"]),
            (Dialect::Inline, &[]),
            (Dialect::Text, &[]),
            (Dialect::Text, &[b"GET", b"k"]),
        ];
        let limits = Limits::default();
        let (mut argv, mut again) = (Argv::new(), Argv::new());
        let mut pos = 0;
        for (n, (dialect, args)) in want.iter().enumerate() {
            let buf = &stream[pos..];
            let (d, parsed) = parse(buf, &mut argv, &limits);
            let Ok(Parsed::Request { consumed }) = parsed else { panic!("request {n}: {parsed:?}") };
            assert_eq!(d, *dialect, "request {n}");
            let input = argv.input(d, buf);
            let got: Vec<&[u8]> = (0..argv.len()).map(|i| argv.get(input, i)).collect();
            assert_eq!(&got, args, "request {n}");
            assert_eq!(Dialect::of(buf, &limits), d);
            assert_eq!(d.parse(buf, &mut again, &limits), Ok(Parsed::Request { consumed }));
            for cut in 0..consumed {
                assert_eq!(parse(&buf[..cut], &mut argv, &limits).1, Ok(Parsed::Incomplete), "{n} cut at {cut}");
            }
            pos += consumed;
        }
        assert_eq!(pos, stream.len());
    }
}
