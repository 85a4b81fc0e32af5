//! A connection's state as the node sees it while one of its commands runs:
//! who the client is, its protocol version, its transaction, whether it is a
//! peer's link, and what its last command left behind.
//!
//! The driver keeps the session with the connection's buffers and lends it
//! to [`super::Node::process`]. What other connections' commands must see
//! of it (CLIENT LIST, CLIENT KILL, MONITOR) is in the node's client
//! registry ([`super::clients`]), at [`Session::slot`].

use super::cmd::multi::Multi;
use crate::repl::handshake::PeerAuth;

/// A client-supplied name (CLIENT SETNAME, SETINFO).
pub type Name = Box<[u8]>;

/// Per-connection state that commands read and change.
#[derive(Debug, Default)]
pub struct Session {
    /// CLIENT ID: unique for the life of the server, never 0 for a
    /// registered client.
    pub id: u64,
    /// Where the client's entry is in the node's registry (checked against
    /// `id`, so a session the registry never saw finds nothing there).
    pub slot: usize,
    /// RESP3 replies (after `HELLO 3`).
    pub resp3: bool,
    /// Gave the password (AUTH, HELLO AUTH). Read only when one is set.
    pub authenticated: bool,
    /// With a cluster secret, how far this connection is in proving it is
    /// a peer's link (`REPLAUTH`, `REPLPROOF`): peer frames need it proven.
    pub peer_auth: PeerAuth,
    /// Set by `REPLHELLO`: this connection is peer node N's link to us.
    pub peer: Option<u16>,
    /// The peer's link has finished catching up: its frames are in order.
    pub peer_ordered: bool,
    /// A request a follower forwarded to this leader (leader mode): it is
    /// not forwarded again.
    pub forwarded: bool,
    /// A transaction being queued (MULTI until EXEC or DISCARD).
    pub multi: Option<Multi>,
    /// Set while EXEC runs the queued commands: a command that would block
    /// (WAIT, MONITOR) must answer at once instead, as in Redis.
    pub in_exec: bool,
    /// The name of the last command run, for CLIENT LIST's `cmd=`
    /// (`CLIENT|LIST` for a subcommand; empty before the first).
    pub last_cmd: &'static str,
    /// The Lamport counter after this client's last write: WAIT counts the
    /// peers whose acknowledged watermark for this node has reached it.
    pub last_write: u64,
}

impl Session {
    /// A session with CLIENT ID `id` that no registry knows: for tests and
    /// tools that drive [`super::Node::handle`] directly. Connections get
    /// theirs from [`super::Node::client_connected`].
    pub fn new(id: u64) -> Session {
        Session { id, ..Session::default() }
    }
}
