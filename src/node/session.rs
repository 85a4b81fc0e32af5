//! A connection's state as the node sees it: who the client is, its
//! protocol version, its transaction, and whether it is a peer's link.

use super::cmd::multi::Multi;

/// A client-supplied name (CLIENT SETNAME, SETINFO).
pub type Name = Box<[u8]>;

/// Per-connection state that commands read and change.
#[derive(Debug, Default)]
pub struct Session {
    /// CLIENT ID.
    pub id: u64,
    /// RESP3 replies (after `HELLO 3`).
    pub resp3: bool,
    /// CLIENT SETNAME.
    pub name: Option<Name>,
    /// CLIENT SETINFO LIB-NAME / LIB-VER.
    pub lib: (Option<Name>, Option<Name>),
    /// Set by `REPLHELLO`: this connection is peer node N's link to us.
    pub peer: Option<u16>,
    /// The peer's link has finished catching up: its frames are in order.
    pub peer_ordered: bool,
    /// A transaction being queued (MULTI until EXEC or DISCARD).
    pub multi: Option<Multi>,
}

impl Session {
    /// A new connection's session, with CLIENT ID `id`.
    pub fn new(id: u64) -> Session {
        Session { id, ..Session::default() }
    }
}
