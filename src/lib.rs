//! kvstore: a small distributed key-value store.
//!
//! One thread runs one `mio` event loop that serves every client and peer:
//! a netcat-friendly text protocol and Redis's RESP share one port, every
//! write is appended to a checksummed log before its reply leaves, and
//! writes are forwarded to peers over persistent links that catch up by
//! themselves after an outage.
//!
//! # Layout
//! - [`config`]: command-line options, defaults, validation.
//! - [`core`]: the data side, no sockets. [`core::store`] the versioned
//!   keyspace (last writer wins, tombstones, the one apply path);
//!   [`core::record`] the log record codec; [`core::append_log`] the log
//!   file: append, fsync policies, replay, torn tails, compaction.
//! - [`proto`]: pure parsers (bytes to request, no I/O) and reply encoders:
//!   [`proto::text`] and [`proto::resp`].
//! - [`net`]: [`net::conn`] a connection's buffers; [`net::peer`] a peer
//!   link's state machine and frames; [`net::cluster`] the topology and
//!   watermarks. None of them does I/O on its own.
//! - [`server`]: the reactor that owns every socket, and the order of one
//!   loop iteration (see its docs); [`server::commands`] executes requests;
//!   [`server::core`] holds the state they act on, and the socket-free
//!   halves of a peer link (`feed_link`, `link_reply`), which a test-only
//!   in-memory cluster (`server::sim`) drives through random schedules.
//! - `src/bin/`: `kvstore-server`, and `kvstore-bench`, the load generator.

pub mod config;
pub mod node;
pub mod proto;
pub mod repl;
pub mod server;
pub mod storage;
