//! Wire protocols: pure parsers from bytes to a request, and reply encoders.
//!
//! A request whose first byte is `*` is RESP (Redis's protocol); anything
//! else is a line of the text protocol. Parsers never do I/O and never
//! allocate per request: they record each argument as a byte range of the
//! input in a reused [`Argv`].

pub mod resp;
pub mod text;

/// Which protocol a request came in, and so how its reply is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The line protocol.
    Text,
    /// RESP (RESP2 or RESP3, per connection).
    Resp,
}

impl Dialect {
    /// The dialect of a request that starts with byte `first`: RESP's
    /// arrays start with `*`; anything else is a line of the text protocol.
    #[inline]
    pub fn of(first: u8) -> Dialect {
        if first == b'*' { Dialect::Resp } else { Dialect::Text }
    }

    /// Parses the request at the start of `buf` (see [`resp::parse`] and
    /// [`text::parse`]).
    #[inline]
    pub fn parse(self, buf: &[u8], argv: &mut Argv, limits: &Limits) -> Result<Parsed, ProtoError> {
        match self {
            Dialect::Resp => resp::parse(buf, argv, limits),
            Dialect::Text => text::parse(buf, argv, limits),
        }
    }

    /// Appends the error reply `msg`: `-ERR msg` in RESP, `ERROR msg` in text.
    pub fn error(self, out: &mut Vec<u8>, msg: &str) {
        match self {
            Dialect::Resp => resp::error(out, format!("ERR {msg}").as_bytes()),
            Dialect::Text => text::line(out, format!("ERROR {msg}").as_bytes()),
        }
    }
}

/// The arguments of one request, as `(start, end)` byte offsets into the
/// buffer it was parsed from. Reused from request to request.
#[derive(Debug, Default, Clone)]
pub struct Argv {
    spans: Vec<(u32, u32)>,
}

impl Argv {
    /// An empty argv.
    pub fn new() -> Argv {
        Argv::default()
    }
    /// Forgets the previous request's arguments, keeping the allocation.
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
    /// Argument `i` as bytes of `buf`, the buffer the request was parsed from.
    pub fn get<'a>(&self, buf: &'a [u8], i: usize) -> &'a [u8] {
        let (s, e) = self.spans[i];
        &buf[s as usize..e as usize]
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
    /// Longest text-protocol line, and longest RESP header line.
    pub max_line: usize,
    /// Longest RESP bulk string.
    pub max_bulk: usize,
    /// Most arguments in one RESP request.
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
    /// (none for a blank text line, which is skipped).
    Request {
        /// Bytes the request took.
        consumed: usize,
    },
}

/// Input that cannot be a request. The connection replies with the message
/// and closes: past a framing error the stream cannot be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtoError {
    /// A text line or RESP header longer than `max_line`.
    LineTooLong,
    /// A bulk string longer than `max_bulk`.
    BulkTooLong,
    /// More arguments than `max_args`.
    TooManyArgs,
    /// Bytes that break the framing; says what was expected.
    Malformed(&'static str),
}

impl std::fmt::Display for ProtoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProtoError::LineTooLong => f.write_str("line too long"),
            ProtoError::BulkTooLong => f.write_str("invalid bulk length"),
            ProtoError::TooManyArgs => f.write_str("invalid multibulk length"),
            ProtoError::Malformed(what) => f.write_str(what),
        }
    }
}
