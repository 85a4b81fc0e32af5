//! RESP's request parser (`proto::resp::parse`: the fast path and the nom
//! parser behind it) on arbitrary bytes: see `kvstore_fuzz::check_parser`.
#![no_main]

use kvstore::proto::{Dialect, resp};
use libfuzzer_sys::fuzz_target;

/// The arguments as a RESP multibulk request, as clients send them.
fn encode(args: &[Vec<u8>], out: &mut Vec<u8>) {
    resp::array(out, args.len());
    for a in args {
        resp::bulk(out, a);
    }
}

fuzz_target!(|data: &[u8]| {
    kvstore_fuzz::check_parser(data, resp::parse, Dialect::Resp, encode);
});
