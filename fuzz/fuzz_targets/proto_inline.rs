//! Redis inline commands (`proto::inline::parse`: quotes, escapes, NULs) on
//! arbitrary bytes: see `kvstore_fuzz::check_parser`. The round trip goes
//! through MONITOR's quoting (Redis's `sdscatrepr`), which Redis's
//! splitting reads back.
#![no_main]

use kvstore::node::cmd::monitor;
use kvstore::proto::{Dialect, inline};
use libfuzzer_sys::fuzz_target;

/// The arguments as an inline line, each quoted as MONITOR quotes it.
fn encode(args: &[Vec<u8>], out: &mut Vec<u8>) {
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        monitor::quote(out, a);
    }
    out.extend_from_slice(b"\r\n");
}

fuzz_target!(|data: &[u8]| {
    kvstore_fuzz::check_parser(data, inline::parse, Dialect::Inline, encode);
});
