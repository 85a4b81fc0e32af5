//! The text protocol's parser (`proto::text::parse`) on arbitrary bytes: see
//! `kvstore_fuzz::check_parser` for what is checked.
#![no_main]

use kvstore::proto::{Dialect, text};
use libfuzzer_sys::fuzz_target;

/// The arguments as a text line: words joined by one space. A value (PUT's
/// last argument) may hold blanks, and takes the rest of the line anyway;
/// the line ends in `\r\n`, whose `\r` the parser drops, so that a last
/// argument ending in `\r` keeps it.
fn encode(args: &[Vec<u8>], out: &mut Vec<u8>) {
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(a);
    }
    out.extend_from_slice(b"\r\n");
}

fuzz_target!(|data: &[u8]| {
    kvstore_fuzz::check_parser(data, text::parse, Dialect::Text, encode);
});
