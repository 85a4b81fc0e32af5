//! Reply parsing. [`Scanner`] counts replies in the load loop without
//! buffering them (it must be cheap: the client's CPU is the server's loss);
//! [`parse_reply`] returns whole replies for the lag mode, which compares values.

use crate::options::Protocol;

/// Bytes of a line the scanner keeps when the line is split across reads:
/// enough for any RESP header, to recognise `NOT_FOUND`, and to quote an error.
const LINE_KEEP: usize = 64;
/// Largest bulk length accepted in a reply.
const MAX_BULK: i64 = 1 << 40;

/// What a reply line turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LineKind {
    /// A whole reply: status, integer, value line, nil or error.
    Reply { error: bool, nil: bool },
    /// A RESP bulk header: this many bytes (payload and CRLF) follow.
    Bulk(usize),
}

/// Classifies one reply line. `kept` is the line without its `\n`, or its
/// first `LINE_KEEP` bytes when it is longer (`full` is the real length).
fn classify(proto: Protocol, kept: &[u8], full: usize) -> Result<LineKind, String> {
    let whole = kept.len() == full;
    let body = if whole { kept.strip_suffix(b"\r").unwrap_or(kept) } else { kept };
    let ok = LineKind::Reply { error: false, nil: false };
    match proto {
        Protocol::Text => Ok(if whole && body == b"NOT_FOUND" {
            LineKind::Reply { error: false, nil: true }
        } else if body.starts_with(b"ERR") || body.starts_with(b"-ERR") {
            LineKind::Reply { error: true, nil: false }
        } else {
            ok
        }),
        Protocol::Resp => match body.first() {
            Some(b'+' | b':') => Ok(ok),
            Some(b'-') => Ok(LineKind::Reply { error: true, nil: false }),
            Some(b'_') => Ok(LineKind::Reply { error: false, nil: true }),
            Some(b'$') => match parse_int(&body[1..]).filter(|_| whole) {
                Some(-1) => Ok(LineKind::Reply { error: false, nil: true }),
                Some(n) if (0..=MAX_BULK).contains(&n) => Ok(LineKind::Bulk(n as usize + 2)),
                _ => Err(format!("bad bulk header in reply: {:?}", String::from_utf8_lossy(body))),
            },
            _ => Err(format!("unexpected reply (protocol mismatch?): {:?}", String::from_utf8_lossy(body))),
        },
    }
}

fn parse_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = digits.iter().fold(0i64, |v, &c| v * 10 + i64::from(c - b'0'));
    Some(if neg { -v } else { v })
}

/// Error and nil counts, and the first error's text.
#[derive(Debug, Default)]
pub struct Tally {
    pub errors: u64,
    pub nils: u64,
    pub first_error: Option<String>,
}

impl Tally {
    pub fn merge(&mut self, other: Tally) {
        self.errors += other.errors;
        self.nils += other.nils;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ScanState {
    /// At a reply boundary (`line_len == 0`) or inside a line.
    Line,
    /// Inside a bulk payload: this many bytes, CRLF included, still to skip.
    Bulk(usize),
}

/// Counts complete replies in a stream fed in arbitrary pieces.
///
/// It does not buffer replies: a line that ends in the piece is classified
/// in place, a payload is skipped by its length, and only the first
/// `LINE_KEEP` bytes of a line cut by the end of a piece are carried over.
/// So memory is fixed whatever the value size, and the common case (whole
/// replies in one read) copies nothing.
pub struct Scanner {
    proto: Protocol,
    state: ScanState,
    /// Bytes of the current line seen so far (0: at a reply boundary).
    line_len: usize,
    /// The first `min(line_len, LINE_KEEP)` of them.
    line: [u8; LINE_KEEP],
}

impl Scanner {
    pub fn new(proto: Protocol) -> Scanner {
        Scanner { proto, state: ScanState::Line, line_len: 0, line: [0; LINE_KEEP] }
    }

    /// Consumes `data`; returns how many replies it completed. Errors and
    /// nils among them are added to `tally`. An error means the stream is
    /// not a reply stream of this protocol: the connection cannot continue.
    pub fn feed(&mut self, mut data: &[u8], tally: &mut Tally) -> Result<u64, String> {
        let mut replies = 0;
        while !data.is_empty() {
            if let ScanState::Bulk(left) = self.state {
                if data.len() < left {
                    // The payload's `\r` may be the last byte of this piece.
                    if left - data.len() == 1 && data[data.len() - 1] != b'\r' {
                        return Err("bulk reply not terminated by CRLF (protocol mismatch?)".into());
                    }
                    self.state = ScanState::Bulk(left - data.len());
                    return Ok(replies);
                }
                if data[left - 1] != b'\n' || (left >= 2 && data[left - 2] != b'\r') {
                    return Err("bulk reply not terminated by CRLF (protocol mismatch?)".into());
                }
                data = &data[left..];
                self.state = ScanState::Line;
                replies += 1;
                continue;
            }
            let Some(nl) = memchr::memchr(b'\n', data) else {
                self.keep(data);
                return Ok(replies);
            };
            let kind = if self.line_len == 0 {
                classify_into(self.proto, &data[..nl], nl, tally)?
            } else {
                self.keep(&data[..nl]);
                let (line, full) = (self.line, self.line_len);
                self.line_len = 0;
                classify_into(self.proto, &line[..full.min(LINE_KEEP)], full, tally)?
            };
            data = &data[nl + 1..];
            match kind {
                LineKind::Reply { .. } => replies += 1,
                LineKind::Bulk(n) => self.state = ScanState::Bulk(n),
            }
        }
        Ok(replies)
    }

    /// Remembers (the start of) a piece of a line cut by the end of a read.
    fn keep(&mut self, piece: &[u8]) {
        let have = self.line_len.min(LINE_KEEP);
        let take = piece.len().min(LINE_KEEP - have);
        self.line[have..have + take].copy_from_slice(&piece[..take]);
        self.line_len += piece.len();
    }

    /// Whether a reply is partly read (so a close now would lose it).
    #[cfg(test)]
    fn mid_reply(&self) -> bool {
        self.line_len != 0 || self.state != ScanState::Line
    }
}

/// [`classify`], counting errors and nils into `tally`.
fn classify_into(proto: Protocol, kept: &[u8], full: usize, tally: &mut Tally) -> Result<LineKind, String> {
    let kind = classify(proto, kept, full)?;
    if let LineKind::Reply { error, nil } = kind {
        tally.nils += u64::from(nil);
        if error {
            tally.errors += 1;
            if tally.first_error.is_none() {
                let mut text = kept.strip_suffix(b"\r").unwrap_or(kept);
                if proto == Protocol::Resp {
                    text = &text[1..]; // the `-` type byte
                }
                tally.first_error = Some(String::from_utf8_lossy(text).into_owned());
            }
        }
    }
    Ok(kind)
}

/// One complete reply, for the lag mode, which needs the value itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+...`, `:...`, or (text) a line that is not a value we compare.
    Status,
    /// An error; the range is its text in the buffer.
    Error(std::ops::Range<usize>),
    /// `$-1` or `NOT_FOUND`.
    Nil,
    /// A value (RESP bulk payload, or a whole text line).
    Value(std::ops::Range<usize>),
}

/// Parses the reply at the start of `buf`: `None` if it is not complete,
/// else its length and what it is (ranges are offsets into `buf`).
pub fn parse_reply(proto: Protocol, buf: &[u8]) -> Result<Option<(usize, Reply)>, String> {
    let Some(nl) = memchr::memchr(b'\n', buf) else { return Ok(None) };
    let end = if nl > 0 && buf[nl - 1] == b'\r' { nl - 1 } else { nl };
    let line = &buf[..end];
    let reply = match proto {
        Protocol::Text if line == b"NOT_FOUND" => Reply::Nil,
        Protocol::Text if line.starts_with(b"ERR") || line.starts_with(b"-ERR") => Reply::Error(0..end),
        Protocol::Text => Reply::Value(0..end),
        Protocol::Resp => match line.first() {
            Some(b'+' | b':') => Reply::Status,
            Some(b'-') => Reply::Error(1..end),
            Some(b'_') => Reply::Nil,
            Some(b'$') => match parse_int(&line[1..]) {
                Some(-1) => Reply::Nil,
                Some(n) if (0..=MAX_BULK).contains(&n) => {
                    let (start, n) = (nl + 1, n as usize);
                    if buf.len() < start + n + 2 {
                        return Ok(None);
                    }
                    if &buf[start + n..start + n + 2] != b"\r\n" {
                        return Err("bulk reply not terminated by CRLF".into());
                    }
                    return Ok(Some((start + n + 2, Reply::Value(start..start + n))));
                }
                _ => return Err(format!("bad bulk header in reply: {:?}", String::from_utf8_lossy(line))),
            },
            _ => return Err(format!("unexpected reply: {:?}", String::from_utf8_lossy(line))),
        },
    };
    Ok(Some((nl + 1, reply)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `stream` to a fresh scanner in the given pieces.
    fn scan_pieces(proto: Protocol, pieces: &[&[u8]]) -> Result<(u64, Tally, bool), String> {
        let mut s = Scanner::new(proto);
        let mut tally = Tally::default();
        let mut replies = 0;
        for p in pieces {
            replies += s.feed(p, &mut tally)?;
        }
        Ok((replies, tally, s.mid_reply()))
    }

    /// Checks the scanner on `stream` whole, split in two at every offset,
    /// split in three at every pair of offsets, and byte by byte.
    fn check_splits(proto: Protocol, stream: &[u8], replies: u64, errors: u64, nils: u64) {
        let check = |pieces: &[&[u8]]| {
            let (r, t, mid) = scan_pieces(proto, pieces).unwrap_or_else(|e| panic!("{pieces:?}: {e}"));
            assert_eq!((r, t.errors, t.nils, mid), (replies, errors, nils, false), "pieces {pieces:?}");
        };
        check(&[stream]);
        for i in 0..=stream.len() {
            check(&[&stream[..i], &stream[i..]]);
            for j in i..=stream.len() {
                check(&[&stream[..i], &stream[i..j], &stream[j..]]);
            }
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        check(&bytes);
    }

    #[test]
    fn resp_replies_at_every_split() {
        let stream =
            b"+OK\r\n$5\r\nhello\r\n$-1\r\n-ERR wrong type\r\n:42\r\n$0\r\n\r\n$13\r\nwith\r\nnewline\r\n+OK\r\n";
        check_splits(Protocol::Resp, stream, 8, 1, 1);
    }

    #[test]
    fn text_replies_at_every_split() {
        let stream = b"OK\nsome value\nNOT_FOUND\nERR unknown command\nNOT_FOUNDX\nOK\r\nNOT_FOUND\r\n\n";
        check_splits(Protocol::Text, stream, 8, 1, 2);
    }

    #[test]
    fn partial_reply_is_not_counted() {
        let cases =
            [(Protocol::Resp, &b"+OK\r\n$5\r\nhello\r\n"[..], [5, 16]), (Protocol::Text, b"OK\nvalue\n", [3, 9])];
        for (proto, stream, ends) in cases {
            for cut in 0..=stream.len() {
                let (r, _, mid) = scan_pieces(proto, &[&stream[..cut]]).unwrap();
                assert_eq!(r, ends.iter().filter(|&&e| e <= cut).count() as u64, "{proto:?} cut {cut}");
                assert_eq!(mid, cut != 0 && !ends.contains(&cut), "{proto:?} cut {cut}");
            }
        }
    }

    #[test]
    fn long_lines_split_anywhere() {
        // Lines longer than what the scanner keeps: a long error and a long text value.
        let mut resp = b"-ERR ".to_vec();
        resp.extend(std::iter::repeat_n(b'e', 200));
        resp.extend_from_slice(b"\r\n$300\r\n");
        resp.extend(std::iter::repeat_n(b'v', 300));
        resp.extend_from_slice(b"\r\n");
        for i in 0..=resp.len() {
            let (r, t, _) = scan_pieces(Protocol::Resp, &[&resp[..i], &resp[i..]]).unwrap();
            assert_eq!((r, t.errors), (2, 1));
            assert!(t.first_error.unwrap().starts_with("ERR eee"));
        }
        let mut text = vec![b'x'; 500];
        text.extend_from_slice(b"\nNOT_FOUND\n");
        for i in 0..=text.len() {
            let (r, t, _) = scan_pieces(Protocol::Text, &[&text[..i], &text[i..]]).unwrap();
            assert_eq!((r, t.nils, t.errors), (2, 1, 0));
        }
    }

    #[test]
    fn scanner_rejects_garbage() {
        assert!(scan_pieces(Protocol::Resp, &[b"hello\r\n"]).is_err());
        assert!(scan_pieces(Protocol::Resp, &[b"$abc\r\n"]).is_err());
        assert!(scan_pieces(Protocol::Resp, &[b"$-2\r\n"]).is_err());
        assert!(scan_pieces(Protocol::Resp, &[b"$3\r\nabcXY"]).is_err());
        for bad in [&b"$3\r\nabcX\n"[..], b"$3\r\nabc\rX", b"$0\r\n\n\n"] {
            for i in 0..=bad.len() {
                assert!(scan_pieces(Protocol::Resp, &[&bad[..i], &bad[i..]]).is_err(), "{bad:?} split at {i}");
            }
        }
        assert!(
            scan_pieces(
                Protocol::Resp,
                &[b"$", b"1", b"0", b"0", b"0", b"0", b"0", b"0", b"0", b"0", b"0", b"0", b"0", b"0", b"0\r\n"]
            )
            .is_err()
        );
    }

    #[test]
    fn error_text_is_kept() {
        let (_, t, _) = scan_pieces(Protocol::Resp, &[b"+OK\r\n-ERR ", b"out of memory\r\n-ERR second\r\n"]).unwrap();
        assert_eq!(t.errors, 2);
        assert_eq!(t.first_error.as_deref(), Some("ERR out of memory"));
    }

    #[test]
    fn parse_reply_whole_and_partial() {
        let stream = b"+OK\r\n$5\r\nhello\r\n$-1\r\n-ERR bad\r\n";
        let mut pos = 0;
        let mut got = Vec::new();
        while pos < stream.len() {
            let (used, r) = parse_reply(Protocol::Resp, &stream[pos..]).unwrap().unwrap();
            got.push(match r {
                Reply::Value(x) => format!("value {}", String::from_utf8_lossy(&stream[pos..][x])),
                Reply::Error(x) => format!("error {}", String::from_utf8_lossy(&stream[pos..][x])),
                other => format!("{other:?}"),
            });
            // Every strict prefix of a reply is incomplete.
            for cut in 0..used {
                assert_eq!(parse_reply(Protocol::Resp, &stream[pos..pos + cut]).unwrap(), None);
            }
            pos += used;
        }
        assert_eq!(got, ["Status", "value hello", "Nil", "error ERR bad"]);
        assert_eq!(parse_reply(Protocol::Text, b"NOT_FOUND\n").unwrap(), Some((10, Reply::Nil)));
        assert_eq!(parse_reply(Protocol::Text, b"abc\r\n").unwrap(), Some((5, Reply::Value(0..3))));
        assert_eq!(parse_reply(Protocol::Text, b"ERR x\n").unwrap(), Some((6, Reply::Error(0..5))));
        assert_eq!(parse_reply(Protocol::Text, b"abc").unwrap(), None);
        assert!(parse_reply(Protocol::Resp, b"$3\r\nabcde\r\n").is_err());
    }
}
