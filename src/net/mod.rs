//! The network side: connections, peer links, the cluster's topology.
//! The event loop that drives them is in [`crate::server`].

pub mod cluster;
pub mod conn;
pub mod peer;
