//! The text protocol through the real binary, as netcat would use it.

mod common;
use common::*;

#[test]
fn smoke() {
    let (srv, _dir) = Server::start(&[]);
    let mut c = srv.client();
    assert_eq!(c.cmd("PUT k v"), "OK");
    assert_eq!(c.cmd("GET k"), "v");
}
