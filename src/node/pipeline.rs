//! A connection's pipelined input, turned into replies: detect each
//! request's dialect (RESP, inline or text: [`proto::parse`]), parse it, execute it, append its reply — for every
//! complete request in the input, with the limits that protect the server
//! (a paused reader, a request too large, a protocol error that closes).
//!
//! Before a pipelined batch runs, the keys of its next requests are hashed
//! and their table entries prefetched (`prefetch_keys`): with many random
//! keys each lookup is a few dependent cache misses, and in a batch they
//! overlap instead of stalling one by one. The requests the look-ahead
//! parsed are kept ([`Lookahead`]) so the main pass does not parse them twice.

use super::Node;
use super::cmd::{self, Flow};
use super::security::{PRE_AUTH_BUFFER, PRE_AUTH_LIMITS};
use super::session::Session;
use crate::proto::{self, Argv, Dialect, Limits, Parsed, resp, text};
use crate::storage::store::Store;

/// Requests looked ahead by [`prefetch_keys`].
const PREFETCH_WINDOW: usize = 32;
/// Input shorter than this is one lone request (pipeline depth 1): it gains
/// nothing from looking ahead and would be parsed twice.
const PREFETCH_MIN_INPUT: usize = 128;

/// What [`Node::process`] did with a connection's input.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Processed {
    /// Bytes of the input used (whole requests); the rest waits for more.
    pub consumed: usize,
    /// Close the connection once its output is written (QUIT, a protocol
    /// error, a request too large).
    pub close: bool,
    /// The output is over `--output-soft-limit`: process no more of this
    /// connection's input until the output drains.
    pub paused: bool,
    /// The last request blocked (WAIT, SAVE): process no more of this
    /// connection's input until the node lists it in
    /// [`super::Ready::unblocked`].
    pub blocked: bool,
    /// Offset in the output of the first reply that waits for the log
    /// commit (see [`super::Commit`]), and its dialect.
    pub held: Option<(usize, Dialect)>,
    /// Leader mode, leading: the replies from here on wait for a majority
    /// (see [`super::leader`]).
    pub wait: Option<super::leader::Wait>,
    /// Why the connection is closed for breaking the protocol (for the log).
    pub error: Option<String>,
    /// The input looks like HTTP (a web page driving a browser at the
    /// port): close at once, discarding the replies, and warn.
    pub attack: bool,
}

/// What [`Node::handle`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handled {
    /// Whether the connection goes on.
    pub flow: Flow,
    /// Whether the command staged a write: its reply waits for the log commit.
    pub wrote: bool,
}

impl Node {
    /// Executes one request (its arguments `argv` point into `buf`) for
    /// `session`, appending the reply to `out`.
    pub fn handle(
        &mut self,
        session: &mut Session,
        dialect: Dialect,
        argv: &Argv,
        buf: &[u8],
        out: &mut Vec<u8>,
    ) -> Handled {
        self.stats.commands += 1;
        self.wrote = false;
        self.local_wrote = false;
        let flow = cmd::dispatch(self, session, dialect, argv, buf, out);
        Handled { flow, wrote: self.wrote }
    }

    /// Parses and executes every complete request at the start of `input`
    /// for `session`, appending the replies to `out`, of which the first
    /// `written` bytes are already sent.
    pub fn process(&mut self, session: &mut Session, input: &[u8], out: &mut Vec<u8>, written: usize) -> Processed {
        let soft = self.cfg.output_soft_limit;
        // Taken for the call (moving a Vec allocates nothing), so that
        // `handle` can borrow the node whole.
        let mut argv = std::mem::take(&mut self.argv);
        let mut ahead = std::mem::take(&mut self.ahead);
        let mut p = Processed::default();
        let mut pos = 0;
        let mut prefetched = 0;
        while pos < input.len() && !p.close {
            // Until a password is given, requests are held to tight limits
            // (read per request: an AUTH earlier in the batch lifts them).
            let limits = if self.needs_auth(session) { PRE_AUTH_LIMITS } else { self.cfg.limits };
            if pos >= prefetched && input.len() - pos > PREFETCH_MIN_INPUT {
                prefetched = pos + prefetch_keys(&self.store, &input[pos..], pos, &mut argv, &mut ahead, &limits);
            }
            if out.len() - written >= soft {
                p.paused = true;
                break;
            }
            let buf = &input[pos..];
            let (dialect, parsed) = match ahead.take(pos, &mut argv) {
                // The look-ahead keeps no inline request.
                Some(consumed) => (Dialect::resp_or_text(buf), Ok(Parsed::Request { consumed })),
                None => proto::parse(buf, &mut argv, &limits),
            };
            match parsed {
                Ok(Parsed::Incomplete) => break,
                Ok(Parsed::Request { consumed }) => {
                    pos += consumed;
                    if argv.is_empty() {
                        continue;
                    }
                    let before = out.len();
                    let h = self.handle(session, dialect, &argv, argv.input(dialect, buf), out);
                    if self.leader_mode()
                        && let Some(w) = self.leader_wait(before, dialect)
                    {
                        match &mut p.wait {
                            Some(first) => first.merge(&w),
                            None => p.wait = Some(w),
                        }
                    } else if h.wrote && p.held.is_none() {
                        p.held = Some((before, dialect));
                    }
                    p.close = matches!(h.flow, Flow::Close | Flow::Attack);
                    if h.flow == Flow::Attack {
                        self.stats.protocol_errors += 1;
                        p.attack = true;
                    }
                    if h.flow == Flow::Block {
                        p.blocked = true;
                        break;
                    }
                }
                Err(e) => self.protocol_error(&mut p, dialect, out, e.to_string()),
            }
        }
        ahead.clear();
        let (max_request, what) = if self.needs_auth(session) {
            (PRE_AUTH_BUFFER, "the limit before AUTH")
        } else {
            (self.cfg.max_request, "--max-request")
        };
        if !p.close && !p.blocked && input.len() - pos > max_request {
            let limits = if self.needs_auth(session) { PRE_AUTH_LIMITS } else { self.cfg.limits };
            let msg = format!("request larger than {what} ({max_request} bytes)");
            self.protocol_error(&mut p, Dialect::of(&input[pos..], &limits), out, msg);
        }
        p.consumed = pos;
        self.argv = argv;
        self.ahead = ahead;
        p
    }

    /// The input broke the protocol: says why, and closes the connection
    /// (past a framing error the stream cannot be trusted).
    fn protocol_error(&mut self, p: &mut Processed, dialect: Dialect, out: &mut Vec<u8>, why: String) {
        if dialect.replies_in_resp() {
            resp::error(out, format!("ERR Protocol error: {why}").as_bytes());
        } else {
            text::line(out, format!("ERROR {why}").as_bytes());
        }
        self.stats.protocol_errors += 1;
        p.close = true;
        p.error = Some(why);
    }
}

/// Requests parsed by the look-ahead pass of `prefetch_keys`, so that the
/// main pass does not parse them a second time. Valid for one
/// [`Node::process`] call (offsets are into that call's input); reused, so
/// it allocates nothing in steady state. An inline request is not kept: its
/// arguments are not spans of the input (see [`Argv::input`]); the main
/// pass parses it again.
#[derive(Debug, Default)]
pub struct Lookahead {
    /// Per request: (offset in the input, bytes it takes, first span, span count).
    reqs: Vec<(usize, usize, usize, usize)>,
    /// The argument spans of all of them, back to back.
    spans: Vec<(u32, u32)>,
    /// The next request of `reqs` the main pass will reach.
    next: usize,
}

impl Lookahead {
    fn clear(&mut self) {
        self.reqs.clear();
        self.spans.clear();
        self.next = 0;
    }

    /// The request at `offset`, if it was parsed ahead: loads its arguments
    /// into `argv` and returns its length.
    fn take(&mut self, offset: usize, argv: &mut Argv) -> Option<usize> {
        let &(at, consumed, first, n) = self.reqs.get(self.next)?;
        if at != offset {
            return None;
        }
        self.next += 1;
        argv.clear();
        for &(s, e) in &self.spans[first..first + n] {
            argv.push(s as usize, e as usize);
        }
        Some(consumed)
    }
}

/// Warms the cache for the keys of the next requests in `input` (the second
/// argument of each, the key of GET, SET, PUT, DEL, ...). The requests it
/// parses are kept in `ahead` (at `base` + their offset) for the main pass.
/// Returns how many bytes of requests it covered (all of `input` when it
/// met an incomplete or bad request, which the main pass then deals with).
fn prefetch_keys(
    store: &Store,
    input: &[u8],
    base: usize,
    argv: &mut Argv,
    ahead: &mut Lookahead,
    limits: &Limits,
) -> usize {
    ahead.clear();
    let mut hashes = [0u64; PREFETCH_WINDOW];
    let (mut n, mut pos) = (0, 0);
    while n < PREFETCH_WINDOW && pos < input.len() {
        let buf = &input[pos..];
        let (dialect, Ok(Parsed::Request { consumed })) = proto::parse(buf, argv, limits) else {
            return input.len();
        };
        // An inline request is neither kept nor prefetched: its spans are
        // not into `buf`.
        if dialect != Dialect::Inline {
            ahead.reqs.push((base + pos, consumed, ahead.spans.len(), argv.len()));
            ahead.spans.extend_from_slice(argv.spans());
            if argv.len() >= 2 {
                hashes[n] = store.hash(argv.get(buf, 1));
                n += 1;
            }
        }
        pos += consumed;
    }
    // One request alone gains nothing from looking ahead.
    if n >= 2 {
        for &h in &hashes[..n] {
            store.prefetch_entry(h);
        }
        for &h in &hashes[..n] {
            store.prefetch_data(h);
        }
    }
    if pos >= input.len() { input.len() } else { pos }
}
