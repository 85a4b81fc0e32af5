//! The peer wire format (`repl::wire`), both directions of a link.
//!
//! The input is read two ways, as a link would meet it:
//! - as the replies a link reads back (`parse_reply`, in a loop as
//!   `Replicator::link_input` calls it): each takes no more than there is,
//!   and a HELLO reply re-encoded (`hello_reply`) parses to itself;
//! - as the frames an inbound link receives: RESP requests, each decoded
//!   by `Frame::decode` from its upper-cased name and up to five arguments,
//!   as the receiver does; a decoded write re-encoded (`record_frame`)
//!   decodes to itself.
//!
//! Last, a write built from the input's bytes (any op, key, value, version
//! and deadline) is framed as a node sends it to its peers and must decode
//! to itself: a peer must be able to read every frame a node can send.
#![no_main]

use kvstore::node::cmd::upper;
use kvstore::proto::{Argv, Limits, Parsed, resp};
use kvstore::repl::wire::{self, Frame, LinkReply};
use kvstore::storage::record::{Op, Record, Version};
use libfuzzer_sys::fuzz_target;

/// Decodes the RESP request at the start of `buf` as a frame, as the
/// receiver does: `None` if it is not a whole request.
fn decode<'a>(buf: &'a [u8], argv: &mut Argv) -> Option<(Frame<'a>, usize)> {
    let Ok(Parsed::Request { consumed }) = resp::parse(buf, argv, &Limits::default()) else { return None };
    if argv.is_empty() {
        return Some((Frame::BadArity, consumed));
    }
    let mut nb = [0u8; 24];
    let name = upper(argv.get(buf, 0), &mut nb);
    let mut args = [&b""[..]; 5];
    if argv.len() > args.len() {
        return Some((Frame::BadArity, consumed));
    }
    for (i, a) in args.iter_mut().enumerate().take(argv.len()) {
        *a = argv.get(buf, i);
    }
    Some((Frame::decode(name, &args[..argv.len()]), consumed))
}

/// The frame `rec` is sent as, decoded back.
#[track_caller]
fn round_trip(rec: &Record<'_>) {
    let mut out = Vec::new();
    wire::record_frame(&mut out, rec);
    let mut argv = Argv::new();
    let Some((frame, used)) = decode(&out, &mut argv) else { panic!("no request in {:?}", out.escape_ascii()) };
    assert_eq!(used, out.len());
    assert_eq!(frame, Frame::Write(Some(*rec)), "{}", out.escape_ascii());
}

fuzz_target!(|data: &[u8]| {
    let mut pos = 0;
    while let Ok(Some((reply, used))) = wire::parse_reply(&data[pos..]) {
        assert!(used >= 1 && used <= data.len() - pos);
        if let LinkReply::Hello { watermark, node, epoch, marks } = &reply {
            let mut out = Vec::new();
            wire::hello_reply(&mut out, *watermark, *node, *epoch, marks);
            assert_eq!(wire::parse_reply(&out), Ok(Some((reply, out.len()))));
        }
        pos += used;
    }

    let mut argv = Argv::new();
    let mut pos = 0;
    while let Some((frame, used)) = decode(&data[pos..], &mut argv) {
        if let Frame::Write(Some(rec)) = frame {
            round_trip(&rec);
        }
        pos += used;
    }

    // A write from the bytes: op, version, deadline, then key and value.
    let Some((&[op, klen], rest)) = data.split_first_chunk::<2>() else { return };
    let Some((version, rest)) = rest.split_first_chunk::<8>() else { return };
    let Some((deadline, rest)) = rest.split_first_chunk::<8>() else { return };
    let (key, value) = rest.split_at(usize::from(klen).min(rest.len()));
    // Versions up to `i64::MAX`, what a node makes while its clock is below
    // `wire::MAX_WIRE_COUNTER`. (A node whose clock a peer pushed to that
    // counter makes larger ones, which no peer reads: reported, open.)
    let version = Version(u64::from_le_bytes(*version) & i64::MAX as u64);
    // Deadlines up to `i64::MAX`, as the commands that set them bound them.
    let deadline = u64::from_le_bytes(*deadline) & i64::MAX as u64;
    let rec = match op % 3 {
        0 => Record { op: Op::Put, flags: 0, version, key, value, deadline: (deadline != 0).then_some(deadline) },
        1 => Record { op: Op::Del, flags: 0, version, key, value: b"", deadline: None },
        _ => Record { op: Op::FlushAll, flags: 0, version, key: b"", value: b"", deadline: None },
    };
    round_trip(&rec);
});
