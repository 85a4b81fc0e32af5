//! kvstore: a small distributed key-value store.
//!
//! One `mio` event loop on one thread serves every client and peer: a
//! netcat-friendly text protocol and Redis's RESP share one port, every
//! write is appended to a checksummed log before its reply leaves, and
//! writes are forwarded to peers over persistent links that catch up by
//! themselves after an outage. Besides the loop's thread, the log owns two
//! helper threads that never touch the data: the `--fsync everysec` flusher
//! and the file switch at the end of a compaction (fsync, rename, directory
//! fsync), so that the loop never waits for a disk flush it need not wait for.
//!
//! # Layout
//! - [`config`]: command-line options, defaults, validation.
//! - [`storage`]: the data, no sockets. [`storage::store`] the versioned
//!   keyspace (last writer wins, tombstones, the one apply path);
//!   [`storage::record`] the log record codec; [`storage::log`] the log
//!   file: format, append + fsync, replay, rewrite (one file each), and the
//!   storage seam its files go through ([`storage::log::Storage`]: the real
//!   disk, or [`storage::log::FaultyDisk`], which fails on purpose in tests).
//! - [`proto`]: pure parsers (bytes to request, no I/O), reply encoders, and
//!   the [`proto::Dialect`] a request is in: [`proto::text`], [`proto::resp`],
//!   [`proto::inline`] (Redis inline commands, answered in RESP).
//! - [`node`]: the socket-free node. [`node::Node`] holds the store, the
//!   log, the replicator, the client registry ([`node::clients`]) and the
//!   counters; it turns a connection's input into replies
//!   ([`node::pipeline`]), ends a loop iteration with a [`node::Ready`]
//!   (the log commit, what to do with peer connections, blocked clients
//!   whose answer is ready) and is told what the driver did. [`node::cmd`]
//!   is the command table and one file per command family;
//!   [`node::write`] the write paths; [`node::leader`] is leader mode's
//!   side of the node (the command gate, replies that wait for a majority).
//! - [`repl`]: the replicator, events in and intents out, no I/O: peer
//!   links ([`repl::link`]), watermarks ([`repl::progress`]), the wire
//!   format both ways ([`repl::wire`]), the receiving side
//!   ([`repl::receiver`]), the peers' proof of the cluster secret
//!   ([`repl::handshake`]) and leader mode's election ([`repl::election`]).
//! - [`server`]: only sockets. The mio reactor, the order of one loop
//!   iteration (see its docs), connections and their buffers
//!   ([`server::conn`]) in one slab, TLS ([`server::tls`]: rustls inside the
//!   same loop).
//! - `src/bin/`: `kvstore-server`, and `kvstore-bench/`, the load generator.
//!
//! The reactor and a test-only in-memory cluster (`node::sim`, seeded random
//! schedules of deliveries, cuts, crashes) drive the same [`node::Node`]
//! through the same calls.
//!
//! # One loop iteration
//! 1. poll, with the timeout the node asked for;
//! 2. read each ready client until its socket is drained, and hand the input
//!    to [`node::Node::process`]: parse, execute, append the reply; a write
//!    is applied to the store and staged in the log at once;
//! 3. before sleeping: [`node::Node::before_sleep`] commits the log (one
//!    write, and one fsync under `--fsync always`, for all the iteration's
//!    writes); [`node::Node::feed_link`] appends the logged writes to each
//!    peer connection's output; only then are the replies written, each
//!    connection once; closed connections are reaped;
//!    [`node::Node::advance`] does the housekeeping.
//!
//! # The path of one PUT
//! `PUT k v\n` arrives on a client socket: [`server`] reads it into the
//! connection's input and calls [`node::Node::process`];
//! [`proto::parse`] sees a line ending in a bare `\n`, the text protocol, and
//! splits it into arguments; [`node::cmd`] finds `PUT` in the command table and runs its
//! handler ([`node::cmd::text::put`]), which calls
//! [`node::Node::local_write`]: a version from the Lamport clock, the
//! record staged in the log, applied to the store, framed for the peers;
//! `OK` is appended to the output, held. At the end of the iteration
//! [`node::Node::before_sleep`] commits the log, the reactor releases `OK`,
//! [`node::Node::feed_link`] appends the frame to every live link's
//! output, and both are written. The frame arrives as `REPL_PUT` on an
//! inbound connection and goes through [`repl::receiver`] and
//! [`node::Node::peer_write`] into the same store apply path.
#![deny(missing_docs)]

pub mod config;
pub mod node;
pub mod proto;
pub mod repl;
pub mod server;
pub mod storage;
