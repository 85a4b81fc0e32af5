//! The data side: the keyspace, the log record codec, the append-only log.
//! Nothing here knows about sockets or protocol text.

pub mod counter;
pub mod log;
pub mod record;
pub mod store;
