//! The dialect-detecting entry, `proto::parse`, as a connection's pipeline
//! calls it on a stream of requests in mixed dialects. Checks that it agrees
//! with `Dialect::of` then `Dialect::parse` (the slow path it short-cuts),
//! on every outcome, errors and "incomplete" included, and that every
//! request it finds is sane.
#![no_main]

use kvstore::proto::{self, Argv, Dialect, Parsed};
use kvstore_fuzz::{check_request, limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (mut argv, mut again) = (Argv::new(), Argv::new());
    for limits in limits() {
        let mut pos = 0;
        while pos < data.len() {
            let buf = &data[pos..];
            let (dialect, parsed) = proto::parse(buf, &mut argv, &limits);
            assert_eq!(Dialect::of(buf, &limits), dialect, "dialect");
            assert_eq!(dialect.parse(buf, &mut again, &limits), parsed, "Dialect::parse");
            match parsed {
                Ok(Parsed::Request { consumed }) => {
                    let args = check_request(buf, &argv, dialect, consumed, &limits);
                    assert_eq!(check_request(buf, &again, dialect, consumed, &limits), args);
                    pos += consumed;
                }
                Ok(Parsed::Incomplete) => break,
                Err(e) => {
                    // The message a client gets: formatting it must not fail.
                    let _ = e.to_string();
                    break;
                }
            }
        }
    }
});
