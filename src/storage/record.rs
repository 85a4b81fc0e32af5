//! The log record: one write, framed, checksummed, and carrying what
//! replication needs (the write's version, which names its origin node).
//!
//! ```text
//! frame    = len:u32le  crc:u32le  payload            (crc = CRC-32C of payload)
//! payload  = op:u8  flags:u8  version:u64le  klen:u32le  [deadline:u64le]  key[klen]  value[rest]
//! ```
//!
//! `deadline` is there only if `flags` has [`FLAG_DEADLINE`] (format
//! version 2; version 1 never sets it, so a version 1 log reads as it always
//! did): the key's expiry, in milliseconds since the Unix epoch, an absolute
//! time, so that replay and every peer agree on it whenever they apply the
//! record. Only a PUT or a COUNTER carries one. A key without a deadline
//! pays nothing: its record is byte for byte what it was in version 1.
//!
//! Format version 3 added [`Op::Counter`], whose value is a converging
//! counter's whole state (see [`crate::storage::counter`]). An older build
//! would take that op for corruption (and, last in the log, cut it as a
//! torn tail), so a log of version 3 is refused by builds that read only up
//! to version 2 (by the log header's version), instead of losing increments.
//!
//! CRC-32C (Castagnoli) because CPUs compute it in one instruction per 8
//! bytes (SSE 4.2, ARMv8): the checksum of a small record costs a few
//! nanoseconds on the write path, with a software fallback elsewhere.
//!
//! The codec is pure: it encodes into a caller's buffer and decodes from a
//! byte slice, so the log, replay and tests share it without any I/O.

/// Bytes before the payload: length and checksum.
pub const FRAME_HEADER: usize = 8;
/// Fixed part of the payload: op, flags, version, key length.
pub const PAYLOAD_FIXED: usize = 1 + 1 + 8 + 4;

/// What a record does to the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// Set `key` to `value`.
    Put = 1,
    /// Delete `key` (a tombstone where replication needs one).
    Del = 2,
    /// Drop every key whose version is older than this record's.
    FlushAll = 3,
    /// "Everything node `version.node()` wrote up to `version.counter()` is
    /// here": a replication watermark, written when a full sync completes and
    /// at the head of a compacted log. No key, no value.
    Watermark = 4,
    /// Set `key` to a converging counter: `value` is its encoded state
    /// ([`crate::storage::counter::Counter`]), merged with what the store
    /// holds; the record's version is the state's newest. Format version 3.
    Counter = 5,
}

impl Op {
    fn from_u8(b: u8) -> Option<Op> {
        match b {
            1 => Some(Op::Put),
            2 => Some(Op::Del),
            3 => Some(Op::FlushAll),
            4 => Some(Op::Watermark),
            5 => Some(Op::Counter),
            _ => None,
        }
    }
}

/// Record flag: this record arrived in its origin's order (a local write or
/// a live replicated one), so at replay it advances the watermark of its
/// origin node. Records of a full sync arrive unordered and lack it.
pub const FLAG_ORDERED: u8 = 1;

/// Record flag, on disk only: a deadline follows the key length. The codec
/// sets and clears it from [`Record::deadline`], so a decoded record's
/// `flags` never has it.
pub const FLAG_DEADLINE: u8 = 2;

/// Bytes a deadline adds to a record.
pub const DEADLINE_LEN: usize = 8;

/// A write's version: a Lamport counter in the high 48 bits and the origin
/// node id in the low 16, so that one `u64` comparison is last-writer-wins
/// with ties broken by node id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u64);

impl Version {
    /// The largest counter a version can hold.
    pub const MAX_COUNTER: u64 = (1 << 48) - 1;

    /// Builds a version from a counter and the node that made it.
    pub fn new(counter: u64, node: u16) -> Version {
        Version((counter << 16) | u64::from(node))
    }
    /// The Lamport counter.
    pub fn counter(self) -> u64 {
        self.0 >> 16
    }
    /// The node that made the write.
    pub fn node(self) -> u16 {
        (self.0 & 0xffff) as u16
    }
}

/// One decoded record, borrowing its key and value from the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// What the record does.
    pub op: Op,
    /// `FLAG_*` bits.
    pub flags: u8,
    /// The write's version.
    pub version: Version,
    /// The key (empty for FlushAll and Watermark).
    pub key: &'a [u8],
    /// The value (empty but for Put; a Counter's encoded state).
    pub value: &'a [u8],
    /// When the key expires, in milliseconds since the Unix epoch (only a
    /// Put or a Counter has one; `None`: never). A deadline already past when the record
    /// is applied makes it a delete at its version (see the store).
    pub deadline: Option<u64>,
}

/// Why bytes could not be decoded as a record.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The buffer ends before the record does: at the end of a log, a torn tail.
    Incomplete,
    /// The record is complete but wrong (checksum, op, lengths).
    Corrupt(&'static str),
}

impl<'a> Record<'a> {
    /// Bytes this record takes once framed.
    pub fn encoded_len(&self) -> usize {
        FRAME_HEADER + self.payload_len()
    }

    fn payload_len(&self) -> usize {
        let deadline = if self.deadline.is_some() { DEADLINE_LEN } else { 0 };
        PAYLOAD_FIXED + deadline + self.key.len() + self.value.len()
    }

    /// Appends the framed record to `out`.
    ///
    /// Keys and values are bounded by the protocol limits far below 4 GiB;
    /// the caller guarantees `encoded_len() < u32::MAX`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let payload_len = self.payload_len();
        let start = out.len();
        // The fixed part is built on the stack and appended at once: this
        // runs for every write.
        let mut head = [0u8; FRAME_HEADER + PAYLOAD_FIXED];
        head[0..4].copy_from_slice(&(payload_len as u32).to_le_bytes());
        // head[4..8]: the checksum, filled in below.
        head[8] = self.op as u8;
        head[9] = (self.flags & !FLAG_DEADLINE) | if self.deadline.is_some() { FLAG_DEADLINE } else { 0 };
        head[10..18].copy_from_slice(&self.version.0.to_le_bytes());
        head[18..22].copy_from_slice(&(self.key.len() as u32).to_le_bytes());
        out.reserve(FRAME_HEADER + payload_len);
        out.extend_from_slice(&head);
        if let Some(d) = self.deadline {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(self.key);
        out.extend_from_slice(self.value);
        let crc = crc32c::crc32c(&out[start + FRAME_HEADER..]);
        out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    }

    /// Decodes the record at the start of `buf`, returning it and the bytes it
    /// took. `max_payload` bounds the declared length, so that a corrupt
    /// length is reported as corruption rather than as a huge torn tail.
    pub fn decode(buf: &'a [u8], max_payload: usize) -> Result<(Record<'a>, usize), DecodeError> {
        if buf.len() < FRAME_HEADER {
            return Err(DecodeError::Incomplete);
        }
        let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
        if !(PAYLOAD_FIXED..=max_payload).contains(&len) {
            return Err(DecodeError::Corrupt("record length out of range"));
        }
        let Some(payload) = buf.get(FRAME_HEADER..FRAME_HEADER + len) else {
            return Err(DecodeError::Incomplete);
        };
        if crc32c::crc32c(payload) != crc {
            return Err(DecodeError::Corrupt("checksum mismatch"));
        }
        let op = Op::from_u8(payload[0]).ok_or(DecodeError::Corrupt("unknown op"))?;
        let flags = payload[1];
        let version = Version(u64_at(payload, 2));
        let klen = u32::from_le_bytes([payload[10], payload[11], payload[12], payload[13]]) as usize;
        let mut rest = &payload[PAYLOAD_FIXED..];
        let mut deadline = None;
        if flags & FLAG_DEADLINE != 0 {
            if !matches!(op, Op::Put | Op::Counter) {
                return Err(DecodeError::Corrupt("a deadline on a record that is not a put"));
            }
            if rest.len() < DEADLINE_LEN {
                return Err(DecodeError::Corrupt("deadline past the record"));
            }
            deadline = Some(u64_at(rest, 0));
            rest = &rest[DEADLINE_LEN..];
        }
        if klen > rest.len() {
            return Err(DecodeError::Corrupt("key length past the record"));
        }
        let (key, value) = rest.split_at(klen);
        if op == Op::Counter && !counter_matches(value, version) {
            return Err(DecodeError::Corrupt("bad counter state"));
        }
        let flags = flags & !FLAG_DEADLINE;
        Ok((Record { op, flags, version, key, value, deadline }, FRAME_HEADER + len))
    }
}

/// Whether `state` is a counter's valid state whose newest version is
/// `version`, as every counter record and frame has.
pub fn counter_matches(state: &[u8], version: Version) -> bool {
    crate::storage::counter::Counter::decode(state).is_some_and(|c| c.version() == version)
}

/// The little-endian `u64` at `b[at..at + 8]` (the caller checked the length).
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record<'static> {
        Record {
            op: Op::Put,
            flags: FLAG_ORDERED,
            version: Version::new(42, 7),
            key: b"key",
            value: b"a value\r\n\0",
            deadline: None,
        }
    }

    fn expiring() -> Record<'static> {
        Record { deadline: Some(1_700_000_000_123), ..sample() }
    }

    #[test]
    fn round_trip_with_and_without_deadline() {
        for r in [sample(), expiring(), Record { key: b"", value: b"", ..expiring() }] {
            let mut buf = Vec::new();
            r.encode(&mut buf);
            assert_eq!(buf.len(), r.encoded_len());
            let (d, used) = Record::decode(&buf, 1 << 20).unwrap();
            assert_eq!(d, r);
            assert_eq!(used, buf.len());
        }
    }

    #[test]
    fn a_deadline_costs_eight_bytes_and_only_when_there_is_one() {
        let (mut plain, mut with) = (Vec::new(), Vec::new());
        sample().encode(&mut plain);
        expiring().encode(&mut with);
        assert_eq!(with.len(), plain.len() + DEADLINE_LEN);
        // Without a deadline the bytes are version 1's: flags as given.
        assert_eq!(plain[9], FLAG_ORDERED);
        assert_eq!(with[9], FLAG_ORDERED | FLAG_DEADLINE);
        assert_eq!(with[22..30], 1_700_000_000_123u64.to_le_bytes());
        // The flag is the codec's: a caller's stray FLAG_DEADLINE is not written.
        let mut stray = Vec::new();
        Record { flags: FLAG_ORDERED | FLAG_DEADLINE, ..sample() }.encode(&mut stray);
        assert_eq!(stray, plain);
    }

    #[test]
    fn a_version_1_record_decodes_unchanged() {
        // Built by hand as a version 1 build wrote it: no deadline field.
        let payload: Vec<u8> =
            [&[1u8, FLAG_ORDERED][..], &Version::new(3, 2).0.to_le_bytes(), &2u32.to_le_bytes(), b"k1v"].concat();
        let buf = framed(&payload);
        let (r, used) = Record::decode(&buf, 1 << 20).unwrap();
        let want = Record {
            op: Op::Put,
            flags: FLAG_ORDERED,
            version: Version::new(3, 2),
            key: b"k1",
            value: b"v",
            deadline: None,
        };
        assert_eq!((r, used), (want, buf.len()));
    }

    /// Frames `payload` with a good length and checksum.
    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut buf = (payload.len() as u32).to_le_bytes().to_vec();
        buf.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
        buf.extend_from_slice(payload);
        buf
    }

    #[test]
    fn a_bad_deadline_is_corrupt() {
        let mut buf = Vec::new();
        Record { op: Op::Del, value: b"", ..expiring() }.encode(&mut buf);
        assert_eq!(
            Record::decode(&buf, 1 << 20),
            Err(DecodeError::Corrupt("a deadline on a record that is not a put"))
        );
        // The flag with fewer than eight bytes after the fixed part.
        let mut payload = vec![1u8, FLAG_DEADLINE];
        payload.extend_from_slice(&[0; 8]);
        payload.extend_from_slice(&0u32.to_le_bytes());
        payload.extend_from_slice(&[7; 5]);
        assert_eq!(Record::decode(&framed(&payload), 1 << 20), Err(DecodeError::Corrupt("deadline past the record")));
        // A key length that fits without the deadline but not with it.
        let mut buf = Vec::new();
        expiring().encode(&mut buf);
        let payload = &mut buf[FRAME_HEADER..];
        payload[10..14].copy_from_slice(&((3 + 11 + 1) as u32).to_le_bytes());
        let payload = payload.to_vec();
        assert_eq!(Record::decode(&framed(&payload), 1 << 20), Err(DecodeError::Corrupt("key length past the record")));
    }

    #[test]
    fn every_prefix_is_incomplete() {
        for r in [sample(), expiring()] {
            let mut buf = Vec::new();
            r.encode(&mut buf);
            for cut in 0..buf.len() {
                assert_eq!(Record::decode(&buf[..cut], 1 << 20), Err(DecodeError::Incomplete), "cut {cut}");
            }
        }
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        for r in [sample(), expiring()] {
            let mut buf = Vec::new();
            r.encode(&mut buf);
            for i in 0..buf.len() {
                let mut b = buf.clone();
                b[i] ^= 0x40;
                assert!(!matches!(Record::decode(&b, 1 << 20), Ok((d, _)) if d == r), "byte {i}");
            }
        }
    }

    #[test]
    fn a_counter_record_round_trips_and_must_hold_a_state_of_its_version() {
        use crate::storage::counter::Counter;
        let mut c = Counter::plain(Version::new(1, 1), 5);
        c.add(3, Version::new(4, 2));
        let mut state = Vec::new();
        c.encode(&mut state);
        let rec = Record { op: Op::Counter, version: Version::new(4, 2), value: &state, ..expiring() };
        let mut buf = Vec::new();
        rec.encode(&mut buf);
        assert_eq!(Record::decode(&buf, 1 << 20), Ok((rec, buf.len())));
        for bad in [Record { version: Version::new(5, 2), ..rec }, Record { value: &state[..20], ..rec }] {
            let mut buf = Vec::new();
            bad.encode(&mut buf);
            assert_eq!(Record::decode(&buf, 1 << 20), Err(DecodeError::Corrupt("bad counter state")));
        }
    }

    #[test]
    fn version_orders_by_counter_then_node() {
        assert!(Version::new(2, 1) > Version::new(1, 9));
        assert!(Version::new(2, 2) > Version::new(2, 1));
        assert_eq!(Version::new(5, 3).counter(), 5);
        assert_eq!(Version::new(5, 3).node(), 3);
    }
}
