//! The log record codec (`storage::record`), both ways.
//!
//! Decoding arbitrary bytes: a record that decodes takes no more bytes than
//! there are and encodes back to exactly those bytes (the codec is a
//! bijection on valid records); a bound on the payload is honoured.
//!
//! Encoding a record built from the bytes: it decodes to the same record,
//! and every strict prefix of it is incomplete, never corrupt (replay's
//! torn-tail rule rests on that).
#![no_main]

use kvstore::storage::record::{DecodeError, FLAG_DEADLINE, FRAME_HEADER, Op, Record, Version};
use kvstore_fuzz::{next, seed_of};
use libfuzzer_sys::fuzz_target;

/// Reads fields off the input, zeros past its end.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn u8(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |n, _| n << 8 | u64::from(self.u8()))
    }
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
}

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    for max_payload in [usize::MAX, 1 << 20, 64] {
        if let Ok((rec, used)) = Record::decode(data, max_payload) {
            assert!(used <= data.len() && used - FRAME_HEADER <= max_payload);
            assert_eq!(rec.encoded_len(), used);
            assert_eq!(rec.flags & FLAG_DEADLINE, 0, "the deadline flag is the codec's own");
            out.clear();
            rec.encode(&mut out);
            assert_eq!(out, data[..used], "decoded then encoded");
        }
    }

    let mut f = Fields(data);
    let op = [Op::Put, Op::Del, Op::FlushAll, Op::Watermark][usize::from(f.u8() % 4)];
    let flags = f.u8();
    let version = Version(f.u64());
    let with_deadline = f.u8() & 1 == 1 && op == Op::Put;
    let deadline = f.u64();
    let klen = usize::from(f.u8());
    let key = f.bytes(klen);
    let value = f.0;
    let rec = Record { op, flags, version, key, value, deadline: with_deadline.then_some(deadline) };
    out.clear();
    rec.encode(&mut out);
    assert_eq!(out.len(), rec.encoded_len());
    let want = Record { flags: flags & !FLAG_DEADLINE, ..rec };
    assert_eq!(Record::decode(&out, usize::MAX), Ok((want, out.len())), "encoded then decoded");
    let mut rng = seed_of(data);
    for cut in [0, FRAME_HEADER, out.len() - 1, next(&mut rng) as usize % out.len()] {
        assert_eq!(Record::decode(&out[..cut], usize::MAX), Err(DecodeError::Incomplete), "cut at {cut}");
    }
});
