//! As `node`, on a node with one peer (which never answers): the store
//! keeps tombstones, writes are framed for the peer, WAIT has a peer to
//! wait for, and REPLHELLO then REPL_* frames from the input reach the
//! receiving side. See `kvstore_fuzz::run_node`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kvstore_fuzz::run_node(data, true));
