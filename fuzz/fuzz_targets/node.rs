//! Arbitrary bytes as one client connection's input to a whole node, which
//! parses AND executes them: every command of the table, in every dialect,
//! against the real store and log. See `kvstore_fuzz::run_node`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kvstore_fuzz::run_node(data, false));
