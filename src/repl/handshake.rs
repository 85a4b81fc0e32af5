//! How two nodes prove to each other that they share the cluster secret
//! (`--cluster-secret`, else `--requirepass`) without sending it: a
//! challenge-response with HMAC-SHA256, both ways, before `REPLHELLO`.
//!
//! ```text
//!   link (node L, outbound)                       receiver (node R)
//!   REPLAUTH <L> <nonce L>              -->
//!                                       <--       +REPLAUTH <R> <nonce R>
//!   REPLPROOF <HMAC(link transcript)>   -->       verified in constant time; wrong: -WRONGPASS, closed
//!                                       <--       +REPLPROOF <HMAC(receiver transcript)>
//!   verified; wrong: the link drops
//!   REPLHELLO <L>                       -->       (as without a secret)
//! ```
//!
//! Nonces are 32 random bytes, proofs 32 bytes of HMAC, both sent as 64
//! lower-case hex digits. A proof is the HMAC, keyed by the secret, of
//! [`LABEL`], a role byte (`L` for the link's proof, `R` for the
//! receiver's), both node ids (link first, big-endian u16) and both nonces
//! (link's first): fixed-length fields, so no two transcripts encode alike.
//!
//! Why it is shaped so:
//! - fresh nonces on both sides: a recorded proof is worth nothing on
//!   another connection;
//! - the role byte and the ids: a node's own proof cannot be reflected back
//!   to it, nor relayed as another node's (a node refuses an exchange that
//!   names its own id as the other side's);
//! - the link proves first, and the receiver proves itself only to a link
//!   that did: someone who merely reaches the port gets a nonce, nothing
//!   computed from the secret to guess it against offline;
//! - the receiver's proof is checked before the link sends any data: a
//!   listener on a peer's address that does not know the secret gets
//!   nothing of ours.
//!
//! This authenticates the start of the connection, not each frame after it:
//! against someone who can rewrite a connection's bytes in flight, use
//! `--tls-replication`. Everything here is pure (nonces come in as
//! arguments) and tested on byte slices; the commands are in
//! [`crate::node::cmd::auth`], the link's side in [`super::Replicator`].

use ring::hmac;

use crate::proto::resp;

/// Bytes of a nonce.
pub const NONCE_LEN: usize = 32;
/// A nonce.
pub type Nonce = [u8; NONCE_LEN];
/// What every proof's HMAC input starts with; its version would change if
/// the transcript did.
pub const LABEL: &[u8] = b"kvstore peer-auth v1";

/// The role byte of a link's proof.
const LINK: u8 = b'L';
/// The role byte of a receiver's proof.
const RECEIVER: u8 = b'R';

/// The cluster secret, as the HMAC key both sides prove with.
#[derive(Debug, Clone)]
pub struct ClusterKey(hmac::Key);

impl ClusterKey {
    /// The key of `secret`.
    pub fn new(secret: &[u8]) -> ClusterKey {
        ClusterKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    fn proof(&self, role: u8, t: &Transcript) -> hmac::Tag {
        hmac::sign(&self.0, &t.hmac_input(role))
    }

    /// Whether `given` (hex) is the proof of `role` over `t`, compared in
    /// constant time (ring's `hmac::verify`).
    fn verify(&self, role: u8, t: &Transcript, given: &[u8]) -> bool {
        let mut raw = [0u8; 32];
        let decoded = unhex(given, &mut raw);
        // Verified even when the hex was bad, so that its time says nothing.
        let ok = hmac::verify(&self.0, &t.hmac_input(role), &raw).is_ok();
        decoded && ok
    }
}

/// Bytes of a proof's HMAC input.
const INPUT_LEN: usize = LABEL.len() + 1 + 2 + 2 + 2 * NONCE_LEN;

/// What both proofs of one exchange cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// The link's node id.
    pub link: u16,
    /// The receiver's node id.
    pub receiver: u16,
    /// The link's nonce.
    pub link_nonce: Nonce,
    /// The receiver's nonce.
    pub receiver_nonce: Nonce,
}

impl Transcript {
    /// The HMAC input of `role`'s proof (see the module docs).
    fn hmac_input(&self, role: u8) -> [u8; INPUT_LEN] {
        let mut m = [0u8; INPUT_LEN];
        let fields: [&[u8]; 6] = [
            LABEL,
            &[role],
            &self.link.to_be_bytes(),
            &self.receiver.to_be_bytes(),
            &self.link_nonce,
            &self.receiver_nonce,
        ];
        let mut at = 0;
        for f in fields {
            m[at..at + f.len()].copy_from_slice(f);
            at += f.len();
        }
        m
    }
}

/// A nonce from the operating system's random source (`getrandom(2)`), or
/// `None` if it failed (it does not, on Linux, once the system has booted).
pub fn fresh_nonce() -> Option<Nonce> {
    use ring::rand::SecureRandom;
    let mut n = [0u8; NONCE_LEN];
    ring::rand::SystemRandom::new().fill(&mut n).ok().map(|()| n)
}

// ------------------------------------------------------------ the link

/// The link's side of the exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkAuth {
    /// `REPLAUTH` sent with this nonce; waiting for the challenge.
    Sent {
        /// Our id.
        id: u16,
        /// Our nonce.
        nonce: Nonce,
    },
    /// Our proof sent; waiting for the receiver's.
    Proved(Transcript),
    /// The receiver proved it too: `REPLHELLO` may go.
    Done {
        /// The receiver's node id, as it proved it.
        peer: u16,
    },
}

impl LinkAuth {
    /// Starts the exchange of node `id`: `REPLAUTH <id> <nonce>` into `out`.
    pub fn start(id: u16, nonce: Nonce, out: &mut Vec<u8>) -> LinkAuth {
        resp::array(out, 3);
        resp::bulk(out, b"REPLAUTH");
        resp::bulk(out, id.to_string().as_bytes());
        resp::bulk(out, &hex(&nonce));
        LinkAuth::Sent { id, nonce }
    }

    /// The receiver's challenge `+REPLAUTH <peer> <nonce>`: our proof
    /// (`REPLPROOF`) into `out`. `Err`: why the link must drop.
    pub fn on_challenge(
        &mut self,
        key: &ClusterKey,
        peer: u16,
        nonce: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), &'static str> {
        let LinkAuth::Sent { id, nonce: ours } = *self else {
            return Err("a second REPLAUTH challenge");
        };
        if peer == id {
            return Err("the peer claims this node's own id");
        }
        let mut theirs = [0u8; NONCE_LEN];
        if !unhex(nonce, &mut theirs) {
            return Err("a malformed REPLAUTH challenge");
        }
        let t = Transcript { link: id, receiver: peer, link_nonce: ours, receiver_nonce: theirs };
        resp::array(out, 2);
        resp::bulk(out, b"REPLPROOF");
        resp::bulk(out, &hex(key.proof(LINK, &t).as_ref()));
        *self = LinkAuth::Proved(t);
        Ok(())
    }

    /// The receiver's proof `+REPLPROOF <hmac>`: `Ok(peer id)` if it is
    /// right, and the link may say `REPLHELLO`.
    pub fn on_proof(&mut self, key: &ClusterKey, proof: &[u8]) -> Result<u16, &'static str> {
        let LinkAuth::Proved(t) = &*self else {
            return Err("a REPLPROOF reply out of turn");
        };
        if !key.verify(RECEIVER, t, proof) {
            return Err("the peer's proof of the cluster secret is wrong: its --cluster-secret differs");
        }
        let peer = t.receiver;
        *self = LinkAuth::Done { peer };
        Ok(peer)
    }

    /// Whether the receiver proved the secret.
    pub fn done(&self) -> bool {
        matches!(self, LinkAuth::Done { .. })
    }

    /// The receiver's id, once it proved the secret.
    pub fn peer(&self) -> Option<u16> {
        match self {
            LinkAuth::Done { peer } => Some(*peer),
            _ => None,
        }
    }
}

// -------------------------------------------------------- the receiver

/// The receiver's side of the exchange, one per inbound connection (kept
/// in its [`crate::node::session::Session`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum PeerAuth {
    /// Nothing proved: no peer frame is accepted.
    #[default]
    None,
    /// Challenged: the link's proof must cover this. Boxed: most sessions
    /// are clients, which never get here.
    Challenged(Box<Transcript>),
    /// The connection is node `N`'s link, proved.
    Proven(u16),
}

impl PeerAuth {
    /// The node this connection proved to be, if it did.
    pub fn proven(&self) -> Option<u16> {
        match self {
            PeerAuth::Proven(id) => Some(*id),
            _ => None,
        }
    }
}

/// Why the receiver refused a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The frame is malformed or out of turn: closed, not counted.
    Bad(&'static str),
    /// The link's proof is wrong: closed, counted and logged.
    WrongProof,
}

/// Receiver node `id` answers `REPLAUTH <link> <nonce>` (its arguments
/// after the name) with `+REPLAUTH <id> <our_nonce>` into `out`, and what
/// the link's proof must cover.
pub fn challenge(
    id: u16,
    link: &[u8],
    nonce: &[u8],
    our_nonce: Nonce,
    out: &mut Vec<u8>,
) -> Result<Transcript, Refusal> {
    let link = resp::parse_int(link)
        .and_then(|v| u16::try_from(v).ok())
        .filter(|&v| v != 0)
        .ok_or(Refusal::Bad("ERR REPLAUTH needs a node id between 1 and 65535"))?;
    if link == id {
        return Err(Refusal::Bad("ERR node id clash: both nodes use this id"));
    }
    let mut theirs = [0u8; NONCE_LEN];
    if !unhex(nonce, &mut theirs) {
        return Err(Refusal::Bad("ERR REPLAUTH needs a nonce of 64 hex digits"));
    }
    let mut line = format!("REPLAUTH {id} ").into_bytes();
    line.extend_from_slice(&hex(&our_nonce));
    resp::simple(out, &line);
    Ok(Transcript { link, receiver: id, link_nonce: theirs, receiver_nonce: our_nonce })
}

/// The link's `REPLPROOF <proof>` against `state`: if right, the
/// receiver's proof `+REPLPROOF <hmac>` into `out` and the state becomes
/// [`PeerAuth::Proven`]. Any outcome uses the challenge up: one try each.
pub fn check_proof(key: &ClusterKey, state: &mut PeerAuth, proof: &[u8], out: &mut Vec<u8>) -> Result<u16, Refusal> {
    let PeerAuth::Challenged(t) = std::mem::take(state) else {
        return Err(Refusal::Bad("ERR REPLPROOF without REPLAUTH"));
    };
    if !key.verify(LINK, &t, proof) {
        return Err(Refusal::WrongProof);
    }
    let mut line = b"REPLPROOF ".to_vec();
    line.extend_from_slice(&hex(key.proof(RECEIVER, &t).as_ref()));
    resp::simple(out, &line);
    *state = PeerAuth::Proven(t.link);
    Ok(t.link)
}

// ----------------------------------------------------------------- hex

/// `bytes` as lower-case hex digits.
fn hex(bytes: &[u8]) -> Vec<u8> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes.iter().flat_map(|&b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]]).collect()
}

/// Decodes `text`, hex digits of either case, into `into`, which it must
/// fill exactly; `false` if it does not (then `into` holds garbage).
fn unhex(text: &[u8], into: &mut [u8]) -> bool {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    if text.len() != 2 * into.len() {
        return false;
    }
    let mut ok = true;
    for (byte, pair) in into.iter_mut().zip(text.chunks_exact(2)) {
        let (h, l) = match pair {
            &[h, l] => (digit(h), digit(l)),
            _ => (None, None),
        };
        match (h, l) {
            (Some(h), Some(l)) => *byte = h << 4 | l,
            _ => ok = false,
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Argv, Limits, Parsed};
    use crate::repl::wire::{LinkReply, parse_reply};

    const LINK_NONCE: Nonce = [1; NONCE_LEN];
    const RECV_NONCE: Nonce = [2; NONCE_LEN];

    /// The arguments of the one RESP request in `buf`.
    fn request(buf: &[u8]) -> Vec<Vec<u8>> {
        let mut argv = Argv::new();
        let Ok(Parsed::Request { consumed }) = crate::proto::resp::parse(buf, &mut argv, &Limits::default()) else {
            panic!("not a request: {:?}", String::from_utf8_lossy(buf))
        };
        assert_eq!(consumed, buf.len(), "one request");
        (0..argv.len()).map(|i| argv.get(buf, i).to_vec()).collect()
    }

    /// Link node 7 (secret `link_secret`) against receiver node 9
    /// (`recv_secret`), through the bytes each sends: what the receiver
    /// said to the proof, and the link's verdict on the receiver's, if it
    /// got one. Every byte sent either way is appended to `wire`.
    fn exchange(
        link_secret: &[u8],
        recv_secret: &[u8],
        wire: &mut Vec<u8>,
    ) -> (Result<u16, Refusal>, Option<Result<u16, &'static str>>) {
        let (lk, rk) = (ClusterKey::new(link_secret), ClusterKey::new(recv_secret));
        let mut to_recv = vec![];
        let mut link = LinkAuth::start(7, LINK_NONCE, &mut to_recv);
        let args = request(&to_recv);
        assert_eq!(args[0], b"REPLAUTH");
        wire.extend_from_slice(&to_recv);
        let mut to_link = vec![];
        let t = challenge(9, &args[1], &args[2], RECV_NONCE, &mut to_link).expect("challenged");
        assert_eq!((t.link, t.receiver, t.link_nonce, t.receiver_nonce), (7, 9, LINK_NONCE, RECV_NONCE));
        let mut state = PeerAuth::Challenged(Box::new(t));
        wire.extend_from_slice(&to_link);
        let Ok(Some((LinkReply::Challenge { node, nonce }, _))) = parse_reply(&to_link) else { panic!() };
        to_recv.clear();
        link.on_challenge(&lk, node, nonce, &mut to_recv).expect("proof sent");
        wire.extend_from_slice(&to_recv);
        let args = request(&to_recv);
        assert_eq!(args[0], b"REPLPROOF");
        to_link.clear();
        let verdict = check_proof(&rk, &mut state, &args[1], &mut to_link);
        wire.extend_from_slice(&to_link);
        match verdict {
            Ok(id) => {
                assert_eq!(state, PeerAuth::Proven(7));
                let Ok(Some((LinkReply::Proof(p), _))) = parse_reply(&to_link) else { panic!() };
                (Ok(id), Some(link.on_proof(&lk, p)))
            }
            Err(e) => {
                assert_eq!(state, PeerAuth::None, "the challenge is used up");
                assert!(to_link.is_empty(), "no proof for a link that did not prove itself");
                (Err(e), None)
            }
        }
    }

    #[test]
    fn the_same_secret_proves_both_ways() {
        let mut wire = vec![];
        assert_eq!(exchange(b"s3cret", b"s3cret", &mut wire), (Ok(7), Some(Ok(9))));
        assert!(memchr::memmem::find(&wire, b"s3cret").is_none(), "the secret crossed the wire");
    }

    #[test]
    fn a_wrong_secret_is_refused_on_either_side() {
        let mut wire = vec![];
        assert_eq!(exchange(b"wrong", b"s3cret", &mut wire), (Err(Refusal::WrongProof), None));
        // A receiver that does not know the secret cannot prove it, even
        // to a link that proved it (as far as it can tell: the proof is
        // checked with its own, wrong, key, so it fails there first).
        let lk = ClusterKey::new(b"s3cret");
        let t = Transcript { link: 7, receiver: 9, link_nonce: LINK_NONCE, receiver_nonce: RECV_NONCE };
        let mut link = LinkAuth::Proved(t.clone());
        let forged = hex(ClusterKey::new(b"guess").proof(RECEIVER, &t).as_ref());
        assert!(link.on_proof(&lk, &forged).is_err());
        assert!(!link.done());
        // The right one.
        let right = hex(lk.proof(RECEIVER, &t).as_ref());
        assert_eq!(link.on_proof(&lk, &right), Ok(9));
        assert_eq!(link.peer(), Some(9));
    }

    #[test]
    fn proofs_are_pinned_to_the_transcript_format() {
        // Computed independently (Python's hmac module) from the format in
        // the module docs: changing the format must change LABEL's version.
        let key = ClusterKey::new(b"secret");
        let mut ln = [0u8; 32];
        let mut rn = [0u8; 32];
        for i in 0..32 {
            ln[i] = i as u8;
            rn[i] = 32 + i as u8;
        }
        let t = Transcript { link: 7, receiver: 9, link_nonce: ln, receiver_nonce: rn };
        assert_eq!(
            hex(key.proof(LINK, &t).as_ref()),
            b"6541c1eef9889d159d02ec71d7a6eb350ec060fade3e5f6a6fecd94c31d17ea3"
        );
        assert_eq!(
            hex(key.proof(RECEIVER, &t).as_ref()),
            b"b260c423830b70660349c4c2c18d6d287099c9f4b904bf35e9a40bd59b3ffd70"
        );
    }

    #[test]
    fn a_proof_is_good_for_its_own_exchange_only() {
        let key = ClusterKey::new(b"s3cret");
        let t = Transcript { link: 7, receiver: 9, link_nonce: LINK_NONCE, receiver_nonce: RECV_NONCE };
        let proof = hex(key.proof(LINK, &t).as_ref());
        assert!(key.verify(LINK, &t, &proof));
        assert!(key.verify(LINK, &t, &proof.to_ascii_uppercase()), "hex of either case");
        // Replayed on another connection: another receiver nonce.
        assert!(!key.verify(LINK, &Transcript { receiver_nonce: [3; NONCE_LEN], ..t.clone() }, &proof));
        // Relayed as another node's, or to another node.
        assert!(!key.verify(LINK, &Transcript { link: 8, ..t.clone() }, &proof));
        assert!(!key.verify(LINK, &Transcript { receiver: 8, ..t.clone() }, &proof));
        // Reflected: the receiver's proof is no link's proof.
        assert!(!key.verify(LINK, &t, &hex(key.proof(RECEIVER, &t).as_ref())));
        // Malformed.
        for bad in [&proof[..63], &[&proof[..], b"0"].concat(), b"", &[b'g'; 64]] {
            assert!(!key.verify(LINK, &t, bad), "{:?}", String::from_utf8_lossy(bad));
        }
        let mut flipped = proof.clone();
        flipped[10] = if flipped[10] == b'0' { b'1' } else { b'0' };
        assert!(!key.verify(LINK, &t, &flipped));
    }

    #[test]
    fn the_receiver_refuses_malformed_or_out_of_turn_steps() {
        let key = ClusterKey::new(b"s3cret");
        let nonce = hex(&LINK_NONCE);
        let mut out = vec![];
        for id in [&b"0"[..], b"70000", b"-1", b"x", b""] {
            assert!(matches!(challenge(9, id, &nonce, RECV_NONCE, &mut out), Err(Refusal::Bad(_))));
        }
        assert_eq!(
            challenge(9, b"9", &nonce, RECV_NONCE, &mut out),
            Err(Refusal::Bad("ERR node id clash: both nodes use this id")),
            "its own id: a reflection"
        );
        for n in [&nonce[..62], b"zz", &[b'a'; 66]] {
            assert!(matches!(challenge(9, b"7", n, RECV_NONCE, &mut out), Err(Refusal::Bad(_))));
        }
        assert!(out.is_empty(), "nothing answered to a refused challenge");
        let mut state = PeerAuth::None;
        assert_eq!(
            check_proof(&key, &mut state, &[b'0'; 64], &mut out),
            Err(Refusal::Bad("ERR REPLPROOF without REPLAUTH"))
        );
        let mut state = PeerAuth::Proven(7);
        assert!(matches!(check_proof(&key, &mut state, &[b'0'; 64], &mut out), Err(Refusal::Bad(_))));
        assert!(out.is_empty());
    }

    #[test]
    fn the_link_refuses_malformed_or_out_of_turn_replies() {
        let key = ClusterKey::new(b"s3cret");
        let mut out = vec![];
        let mut link = LinkAuth::start(7, LINK_NONCE, &mut out);
        out.clear();
        assert!(link.on_proof(&key, &[b'0'; 64]).is_err(), "a proof before the challenge");
        assert!(link.on_challenge(&key, 7, &hex(&RECV_NONCE), &mut out).is_err(), "its own id: a reflection");
        assert!(link.on_challenge(&key, 9, b"abc", &mut out).is_err());
        assert!(out.is_empty());
        assert!(link.on_challenge(&key, 9, &hex(&RECV_NONCE), &mut out).is_ok());
        assert!(link.on_challenge(&key, 9, &hex(&RECV_NONCE), &mut out).is_err(), "a second challenge");
        assert!(!link.done() && link.peer().is_none());
    }

    #[test]
    fn hex_round_trips_and_fresh_nonces_differ() {
        let mut back = [0u8; 3];
        assert_eq!(hex(&[0x00, 0xab, 0xff]), b"00abff");
        assert!(unhex(b"00ABff", &mut back) && back == [0x00, 0xab, 0xff]);
        assert!(!unhex(b"00abf", &mut back) && !unhex(b"00abfg", &mut back));
        let (a, b) = (fresh_nonce().expect("random"), fresh_nonce().expect("random"));
        assert_ne!(a, b);
    }
}
