//! Command-line options, their defaults, and validation.
//!
//! `argh` parses; [`Config::from_args`] turns the raw options into a checked
//! [`Config`] so that the rest of the server never sees an invalid value.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use argh::FromArgs;

use crate::proto::Limits;
use crate::storage::log::Fsync;

/// kvstore-server: a key-value server speaking a netcat-friendly text
/// protocol and Redis's RESP on one port, with an append-only log and
/// replication to peers.
#[derive(FromArgs, Debug)]
#[argh(
    example = "One node, data in data/12345:\n  $ {command_name} 12345",
    example = "A node of a three-node cluster (start the other two likewise):\n  $ {command_name} 12345 127.0.0.1:12346,127.0.0.1:12347",
    example = "Every reply on disk before it is sent:\n  $ {command_name} 12345 --fsync always",
    note = "Talk to it with netcat (PUT k v / GET k / DEL k / STATS) or any Redis client. \
Logs go to stderr; RUST_LOG=debug (or warn, ...) sets the level. SIGTERM or SIGINT \
stops it cleanly, with the log fsynced."
)]
pub struct Args {
    /// TCP port to listen on (0 picks a free one; the log says which)
    #[argh(positional)]
    pub port: u16,

    /// peers to replicate to, comma-separated host:port list, e.g. 127.0.0.1:12346,127.0.0.1:12347
    #[argh(positional)]
    pub peers: Option<String>,

    /// address to bind (default 127.0.0.1; 0.0.0.0 for every interface)
    #[argh(option, default = "String::from(\"127.0.0.1\")")]
    pub bind: String,

    /// data directory holding the append-only log (default data/<port>)
    #[argh(option)]
    pub dir: Option<PathBuf>,

    /// when the log is fsynced: always (before each reply; group commit),
    /// everysec (about once a second, in the background; default), or no (the OS decides)
    #[argh(option, default = "Fsync::EverySec")]
    pub fsync: Fsync,

    /// node id in the cluster, 1-65535 (default: the port); must differ on every node
    #[argh(option)]
    pub id: Option<u16>,

    /// most client connections at once (default 10000); more are refused with an error
    #[argh(option, default = "10_000")]
    pub max_clients: usize,

    /// longest text-protocol line and RESP header line, in bytes (default 1048576)
    #[argh(option, default = "1 << 20")]
    pub max_line: usize,

    /// longest RESP bulk string (key or value), in bytes (default 536870912, as Redis)
    #[argh(option, default = "512 << 20")]
    pub max_bulk: usize,

    /// most arguments in one RESP request (default 1048576)
    #[argh(option, default = "1 << 20")]
    pub max_args: usize,

    /// most bytes buffered for one unfinished request (default 1073741824, as Redis's query buffer)
    #[argh(option, default = "1 << 30")]
    pub max_request: usize,

    /// per-client output buffer size past which the server stops reading that client's
    /// requests until it reads its replies (default 1048576)
    #[argh(option, default = "1 << 20")]
    pub output_soft_limit: usize,

    /// per-client output buffer size past which the client is disconnected (default 268435456)
    #[argh(option, default = "256 << 20")]
    pub output_hard_limit: usize,

    /// compact the log when it grows past this multiple of the live data (default 2; 0 = never automatically)
    #[argh(option, default = "2.0")]
    pub compact_multiple: f64,

    /// never compact automatically below this log size, in bytes (default 67108864)
    #[argh(option, default = "64 << 20")]
    pub compact_min_bytes: u64,

    /// start even if a log record in the middle of the log is corrupt, dropping it and
    /// everything after it (default: refuse to start and name the offset)
    #[argh(switch)]
    pub truncate_corrupt_log: bool,

    /// bytes queued for one peer before its queue is dropped and the peer is brought up to
    /// date by a resync instead (default 67108864)
    #[argh(option, default = "64 << 20")]
    pub peer_queue_limit: usize,

    /// seconds a delete's tombstone is kept for peers that have not seen it yet (default 86400)
    #[argh(option, default = "86_400")]
    pub tombstone_grace: u64,
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen (port 0: any free port).
    pub listen: SocketAddr,
    /// Peer addresses, resolved.
    pub peers: Vec<SocketAddr>,
    /// Peers as given on the command line, for messages.
    pub peer_names: Vec<String>,
    /// Data directory.
    pub dir: PathBuf,
    /// Fsync policy.
    pub fsync: Fsync,
    /// Node id; `None` until the port is known when listening on port 0.
    pub id: Option<u16>,
    /// Connection limit.
    pub max_clients: usize,
    /// Parser limits.
    pub limits: Limits,
    /// Largest unfinished request buffered per connection.
    pub max_request: usize,
    /// Output buffer size that pauses reading a client.
    pub output_soft_limit: usize,
    /// Output buffer size that disconnects a client.
    pub output_hard_limit: usize,
    /// Automatic compaction trigger (0: off).
    pub compact_multiple: f64,
    /// Smallest log size compacted automatically.
    pub compact_min_bytes: u64,
    /// Allow dropping a corrupt middle of the log.
    pub truncate_corrupt_log: bool,
    /// Byte limit of one peer's queue.
    pub peer_queue_limit: usize,
    /// How long tombstones live.
    pub tombstone_grace: Duration,
}

impl Config {
    /// Checks and completes the raw options.
    pub fn from_args(a: Args) -> Result<Config, String> {
        let ip: IpAddr = a.bind.parse().map_err(|_| format!("--bind: '{}' is not an IP address", a.bind))?;
        let listen = SocketAddr::new(ip, a.port);
        let mut peers = Vec::new();
        let mut peer_names = Vec::new();
        for name in a.peers.as_deref().unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let addr = name
                .to_socket_addrs()
                .map_err(|e| format!("peer '{name}': {e} (expected host:port)"))?
                .next()
                .ok_or_else(|| format!("peer '{name}': no address"))?;
            if addr.port() == 0 {
                return Err(format!("peer '{name}': port 0 is not a peer"));
            }
            if addr.port() == a.port && (addr.ip() == ip || addr.ip().is_loopback() || ip.is_unspecified()) {
                return Err(format!("peer '{name}' is this node itself"));
            }
            if peers.contains(&addr) {
                return Err(format!("peer '{name}' is listed twice"));
            }
            peers.push(addr);
            peer_names.push(name.to_string());
        }
        let id = match a.id {
            Some(0) => return Err("--id must be between 1 and 65535".into()),
            Some(id) => Some(id),
            None if a.port == 0 => None,
            None => Some(a.port),
        };
        let dir = a.dir.unwrap_or_else(|| PathBuf::from(format!("data/{}", a.port)));
        let positive = |name: &str, v: usize| if v == 0 { Err(format!("--{name} must be positive")) } else { Ok(v) };
        positive("max-clients", a.max_clients)?;
        positive("max-line", a.max_line)?;
        positive("max-bulk", a.max_bulk)?;
        positive("max-args", a.max_args)?;
        positive("output-soft-limit", a.output_soft_limit)?;
        positive("peer-queue-limit", a.peer_queue_limit)?;
        // Argument offsets are kept as u32 (see proto::Argv).
        if a.max_request >= u32::MAX as usize || a.max_request < a.max_line {
            return Err("--max-request must be at least --max-line and below 4 GiB".into());
        }
        if a.max_bulk > a.max_request {
            return Err("--max-bulk must not exceed --max-request".into());
        }
        if a.output_hard_limit < a.output_soft_limit {
            return Err("--output-hard-limit must be at least --output-soft-limit".into());
        }
        if !(a.compact_multiple == 0.0 || a.compact_multiple >= 1.0) || !a.compact_multiple.is_finite() {
            return Err("--compact-multiple must be 0 (off) or at least 1".into());
        }
        Ok(Config {
            listen,
            peers,
            peer_names,
            dir,
            fsync: a.fsync,
            id,
            max_clients: a.max_clients,
            limits: Limits { max_line: a.max_line, max_bulk: a.max_bulk, max_args: a.max_args },
            max_request: a.max_request,
            output_soft_limit: a.output_soft_limit,
            output_hard_limit: a.output_hard_limit,
            compact_multiple: a.compact_multiple,
            compact_min_bytes: a.compact_min_bytes,
            truncate_corrupt_log: a.truncate_corrupt_log,
            peer_queue_limit: a.peer_queue_limit,
            tombstone_grace: Duration::from_secs(a.tombstone_grace),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let a = Args::from_args(&["kvstore-server"], args).map_err(|e| e.output)?;
        Config::from_args(a)
    }

    #[test]
    fn defaults() {
        let c = parse(&["12345"]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:12345".parse().unwrap());
        assert_eq!(c.dir, PathBuf::from("data/12345"));
        assert_eq!(c.id, Some(12345));
        assert_eq!(c.fsync, Fsync::EverySec);
        assert!(c.peers.is_empty());
    }

    #[test]
    fn peers_as_in_the_seed() {
        let c = parse(&["12345", "127.0.0.1:12346,127.0.0.1:12347"]).unwrap();
        assert_eq!(c.peers.len(), 2);
        assert_eq!(c.peers[1], "127.0.0.1:12347".parse().unwrap());
    }

    #[test]
    fn bad_input_is_explained() {
        assert!(parse(&["12345", "127.0.0.1"]).unwrap_err().contains("127.0.0.1"));
        assert!(parse(&["12345", "127.0.0.1:12345"]).unwrap_err().contains("itself"));
        assert!(parse(&["12345", "127.0.0.1:1,127.0.0.1:1"]).unwrap_err().contains("twice"));
        assert!(parse(&["12345", "--fsync", "sometimes"]).is_err());
        assert!(parse(&["12345", "--id", "0"]).is_err());
        assert!(parse(&["12345", "--bind", "nowhere"]).unwrap_err().contains("--bind"));
        assert!(parse(&["notaport"]).is_err());
    }
}
