//! kvstore: a small distributed key-value store.

pub mod core;
pub mod proto;
