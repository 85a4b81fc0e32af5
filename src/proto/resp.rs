//! TEMPORARY stand-in until the real RESP module lands.
#![allow(missing_docs, clippy::all)]
use super::{Argv, Limits, Parsed, ProtoError};
pub fn parse(_buf: &[u8], _argv: &mut Argv, _limits: &Limits) -> Result<Parsed, ProtoError> {
    Err(ProtoError::Malformed("todo"))
}
fn num(out: &mut Vec<u8>, p: u8, n: i64) {
    out.push(p);
    out.extend_from_slice(n.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}
pub fn simple(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'+');
    out.extend_from_slice(s);
    out.extend_from_slice(b"\r\n");
}
pub fn error(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'-');
    out.extend_from_slice(s);
    out.extend_from_slice(b"\r\n");
}
pub fn int(out: &mut Vec<u8>, n: i64) {
    num(out, b':', n)
}
pub fn bulk(out: &mut Vec<u8>, b: &[u8]) {
    num(out, b'$', b.len() as i64);
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}
pub fn null(out: &mut Vec<u8>, resp3: bool) {
    out.extend_from_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" })
}
pub fn null_array(out: &mut Vec<u8>, resp3: bool) {
    out.extend_from_slice(if resp3 { b"_\r\n" } else { b"*-1\r\n" })
}
pub fn array(out: &mut Vec<u8>, n: usize) {
    num(out, b'*', n as i64)
}
pub fn map(out: &mut Vec<u8>, n: usize, resp3: bool) {
    if resp3 { num(out, b'%', n as i64) } else { num(out, b'*', 2 * n as i64) }
}
pub fn set(out: &mut Vec<u8>, n: usize, resp3: bool) {
    if resp3 { num(out, b'~', n as i64) } else { num(out, b'*', n as i64) }
}
pub fn boolean(out: &mut Vec<u8>, b: bool, resp3: bool) {
    if resp3 { out.extend_from_slice(if b { b"#t\r\n" } else { b"#f\r\n" }) } else { int(out, b as i64) }
}
pub fn double(out: &mut Vec<u8>, d: f64, _resp3: bool) {
    bulk(out, d.to_string().as_bytes())
}
pub fn verbatim(out: &mut Vec<u8>, _f: &[u8; 3], text: &[u8], _resp3: bool) {
    bulk(out, text)
}
pub fn parse_int(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}
