//! Command-line options, their defaults, and validation.
//!
//! `argh` parses; [`Config::from_args`] turns the raw options into a checked
//! [`Config`] so that the rest of the server never sees an invalid value.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use argh::FromArgs;

use crate::proto::Limits;
use crate::repl::election::{Acks, FollowerWrites, LeaderConfig, Reads};
use crate::storage::log::Fsync;

/// kvstore-server: a key-value server speaking a netcat-friendly text
/// protocol and Redis's RESP on one port, with an append-only log and
/// replication to peers.
#[derive(FromArgs, Debug)]
#[argh(
    example = "One node, data in data/12345:\n  $ {command_name} 12345",
    example = "A node of a three-node cluster (start the other two likewise):\n  $ {command_name} 12350 127.0.0.1:12351,127.0.0.1:12352",
    example = "Every reply on disk before it is sent:\n  $ {command_name} 12345 --fsync always",
    example = "TLS on port 12346 beside plain text on 12345 (clients need a certificate signed by ca.crt):\n  $ {command_name} 12345 --tls-port 12346 --tls-cert-file node.crt --tls-key-file node.key --tls-ca-cert-file ca.crt",
    note = "Talk to it with netcat (PUT k v / GET k / DEL k / STATS) or any Redis client. \
Logs go to stderr; RUST_LOG=debug (or warn, ...) sets the level. SIGTERM or SIGINT \
stops it cleanly, with the log fsynced."
)]
pub struct Args {
    /// TCP port to listen on (0 picks a free one; the log says which, and the
    /// defaults of --dir and --id follow the port it picked)
    #[argh(positional)]
    pub port: u16,

    /// peers to replicate to, comma-separated host:port list, e.g. 127.0.0.1:12351,localhost:12352
    #[argh(positional)]
    pub peers: Option<String>,

    /// address or host name to bind (default 127.0.0.1; 0.0.0.0 for every interface)
    #[argh(option, default = "String::from(\"127.0.0.1\")")]
    pub bind: String,

    /// data directory holding the append-only log (default data/<port>, the
    /// port listened on: with port 0, a new directory each start)
    #[argh(option)]
    pub dir: Option<PathBuf>,

    /// when the log is fsynced: always (before each reply; group commit),
    /// everysec (about once a second, in the background; default), or no (the OS decides)
    #[argh(option, default = "Fsync::EverySec")]
    pub fsync: Fsync,

    /// node id in the cluster, 1-65535 (default: the port listened on); must differ on every node
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

    // Security.
    /// password every client must give (AUTH) before any command but AUTH, HELLO, PING and
    /// QUIT; also the cluster secret unless --cluster-secret is given. Prefer
    /// --requirepass-file: a command line shows in `ps`
    #[argh(option)]
    pub requirepass: Option<String>,

    /// file whose first line is the password (as --requirepass, without showing it in `ps`)
    #[argh(option)]
    pub requirepass_file: Option<PathBuf>,

    /// the secret the nodes of a cluster share (default: the --requirepass password): a
    /// peer link and the node it connects to prove it to each other by HMAC-SHA256
    /// challenge-response, so it never crosses the network, and peer frames from a
    /// connection that has not proved it are refused. Without --requirepass, clients need
    /// no password but peers still prove this (protected mode then still refuses other
    /// hosts: see --protected-mode). Prefer --cluster-secret-file
    #[argh(option)]
    pub cluster_secret: Option<String>,

    /// file whose first line is the cluster secret (as --cluster-secret, without showing it
    /// in `ps`)
    #[argh(option)]
    pub cluster_secret_file: Option<PathBuf>,

    /// protected mode, yes (default) or no: with no password and bound to an address other
    /// than loopback, connections from other hosts get an error saying how to open up, then
    /// are closed
    #[argh(option, default = "String::from(\"yes\")")]
    pub protected_mode: String,

    /// close a client idle for this many seconds (default 0: never); peer links are never closed
    #[argh(option, default = "0")]
    pub timeout: u64,

    // TLS (see TlsConfig).
    /// also listen for TLS on this port, both protocols as on the plain port (0 picks a free one;
    /// the log says which)
    #[argh(option)]
    pub tls_port: Option<u16>,

    /// the port itself speaks TLS and nothing listens for plain text (Redis: --port 0 --tls-port N)
    #[argh(switch)]
    pub tls_only: bool,

    /// the certificate chain (PEM) the server presents, and peer links present under --tls-replication
    #[argh(option)]
    pub tls_cert_file: Option<PathBuf>,

    /// the private key (PEM: PKCS#8, PKCS#1 or SEC1) of --tls-cert-file
    #[argh(option)]
    pub tls_key_file: Option<PathBuf>,

    /// CA certificates (PEM) that clients' and peers' certificates must chain to
    #[argh(option)]
    pub tls_ca_cert_file: Option<PathBuf>,

    /// whether TLS clients must present a certificate signed by the CA: yes (default, as Redis),
    /// no, or optional (checked if presented)
    #[argh(option, default = "ClientAuth::Yes")]
    pub tls_auth_clients: ClientAuth,

    /// yes: links to peers are TLS, verify the peer's certificate against --tls-ca-cert-file
    /// (host name or IP from the peer list) and present --tls-cert-file; name peers by their TLS
    /// ports (default no)
    #[argh(option, default = "false", from_str_fn(yes_no))]
    pub tls_replication: bool,

    /// milliseconds a TLS connection may take to finish its handshake before it is closed (default 5000)
    #[argh(option, default = "5000")]
    pub tls_handshake_timeout_ms: u64,

    /// leader mode: "bully" elects one leader (the highest live id, with epochs and a
    /// majority), which alone applies writes; "none" (default): every node takes writes
    /// (multi-master, last writer wins)
    #[argh(option, default = "String::from(\"none\")")]
    pub election: String,

    /// leader mode: when a write is acknowledged: majority (default; once a majority of
    /// the cluster, leader included, has it in its log) or leader (once the leader has;
    /// a failover may lose the newest writes until the old leader returns)
    #[argh(option, default = "Acks::Majority")]
    pub acks: Acks,

    /// leader mode: linearizable (default; a read sees every write acknowledged before
    /// it, confirmed by the leader with a majority) or local (answered by the node at once,
    /// possibly stale on a follower)
    #[argh(option, default = "Reads::Linearizable")]
    pub reads: Reads,

    /// leader mode: what a follower does with a write: forward (default; to the leader,
    /// relaying its reply) or refuse (ERROR NOT_LEADER / -READONLY, naming the leader)
    #[argh(option, default = "FollowerWrites::Forward")]
    pub follower_writes: FollowerWrites,

    /// leader mode: milliseconds between the leader's heartbeats (default 100)
    #[argh(option, default = "100")]
    pub heartbeat_ms: u64,

    /// leader mode: milliseconds without the leader's heartbeat after which a follower
    /// starts an election, and without a majority's answers after which a leader steps
    /// down (default 500)
    #[argh(option, default = "500")]
    pub election_timeout_ms: u64,

    /// leader mode: milliseconds a write or read may wait for the leader's majority
    /// before its reply is "outcome unknown" (default 2000)
    #[argh(option, default = "2000")]
    pub request_timeout_ms: u64,
}

/// `--tls-auth-clients`: whether a TLS client must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Required, and signed by the CA.
    Yes,
    /// Not asked for.
    No,
    /// Asked for; checked if presented, and a client without one is let in.
    Optional,
}

impl FromStr for ClientAuth {
    type Err = String;

    /// Parses `yes`, `no` or `optional`, in any case, as Redis's `tls-auth-clients`.
    fn from_str(s: &str) -> Result<ClientAuth, String> {
        match s.to_ascii_lowercase().as_str() {
            "yes" => Ok(ClientAuth::Yes),
            "no" => Ok(ClientAuth::No),
            "optional" => Ok(ClientAuth::Optional),
            _ => Err(format!("{s:?}: expected yes, no or optional")),
        }
    }
}

/// `yes` or `no` (in any case), as Redis's boolean options.
fn yes_no(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(format!("{s:?}: expected yes or no")),
    }
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
    /// Data directory; with port 0 and no `--dir`, set once the port is
    /// known ([`Config::listening_on`]).
    pub dir: PathBuf,
    /// Whether `dir` is the default, `data/<port>`, which follows the port.
    dir_follows_port: bool,
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
    /// The password clients must give (`--requirepass[-file]`).
    pub requirepass: Option<String>,
    /// The secret peers prove (`--cluster-secret[-file]`, else the
    /// password; see [`crate::repl::handshake`]).
    pub cluster_secret: Option<String>,
    /// Protected mode (see [`crate::node::security::protected_refusal`]).
    pub protected_mode: bool,
    /// Idle clients are closed after this long (`--timeout`; zero: never).
    pub timeout: Duration,
    /// TLS listeners and links.
    pub tls: TlsConfig,
    /// Leader mode (`--election bully`), if on.
    pub leader: Option<LeaderConfig>,
}

/// TLS settings, checked: files are named here and read when the server
/// starts (`server::tls`).
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// The extra TLS listener (`--tls-port`; port 0: any free port).
    pub listen: Option<SocketAddr>,
    /// `--tls-only`: [`Config::listen`] itself speaks TLS. A switch rather
    /// than Redis's `--port 0`, because port 0 already means "any free port"
    /// here (the tests start every server so).
    pub only: bool,
    /// Certificate chain, PEM; set whenever a listener or a link uses TLS.
    pub cert_file: Option<PathBuf>,
    /// Its private key, PEM.
    pub key_file: Option<PathBuf>,
    /// CA certificates, PEM; set whenever certificates are verified.
    pub ca_cert_file: Option<PathBuf>,
    /// Client certificate policy of the TLS listeners.
    pub auth_clients: ClientAuth,
    /// Outbound peer links use TLS.
    pub replication: bool,
    /// Longest TLS handshake before the connection is closed.
    pub handshake_timeout: Duration,
}

impl TlsConfig {
    /// Whether anything listens for TLS.
    pub fn serves(&self) -> bool {
        self.only || self.listen.is_some()
    }

    /// Checks the TLS options against each other and Redis's rules (a CA is
    /// needed wherever certificates are verified); `peers` must not include
    /// this node's TLS port.
    fn from_args(a: &Args, ip: IpAddr, peers: &[SocketAddr]) -> Result<TlsConfig, String> {
        let c = TlsConfig {
            listen: a.tls_port.map(|p| SocketAddr::new(ip, p)),
            only: a.tls_only,
            cert_file: a.tls_cert_file.clone(),
            key_file: a.tls_key_file.clone(),
            ca_cert_file: a.tls_ca_cert_file.clone(),
            auth_clients: a.tls_auth_clients,
            replication: a.tls_replication,
            handshake_timeout: Duration::from_millis(a.tls_handshake_timeout_ms),
        };
        if c.only && c.listen.is_some() {
            return Err("--tls-only makes the port itself the TLS port: drop --tls-port".into());
        }
        if let Some(port) = a.tls_port {
            if port != 0 && port == a.port {
                return Err("--tls-port must differ from the port".into());
            }
            if peers.iter().any(|p| p.port() == port && (p.ip() == ip || p.ip().is_loopback() || ip.is_unspecified())) {
                return Err(format!("a peer is this node itself (its --tls-port {port})"));
            }
        }
        if !c.serves() && !c.replication {
            let given = [
                (a.tls_cert_file.is_some(), "--tls-cert-file"),
                (a.tls_key_file.is_some(), "--tls-key-file"),
                (a.tls_ca_cert_file.is_some(), "--tls-ca-cert-file"),
            ];
            if let Some((_, name)) = given.iter().find(|(set, _)| *set) {
                return Err(format!(
                    "{name} given, but TLS is off: add --tls-port, --tls-only or --tls-replication yes"
                ));
            }
            return Ok(c);
        }
        if c.cert_file.is_none() || c.key_file.is_none() {
            return Err("TLS needs --tls-cert-file and --tls-key-file".into());
        }
        let verifies = c.replication || (c.serves() && c.auth_clients != ClientAuth::No);
        if verifies && c.ca_cert_file.is_none() {
            return Err("--tls-ca-cert-file must be given when --tls-replication or --tls-auth-clients \
                        (yes by default, as Redis) is on; or pass --tls-auth-clients no"
                .into());
        }
        // Bounded so that a deadline (now + timeout) cannot overflow.
        if c.handshake_timeout.is_zero() || c.handshake_timeout > Duration::from_secs(86_400) {
            return Err("--tls-handshake-timeout-ms must be between 1 and 86400000 (a day)".into());
        }
        Ok(c)
    }
}

/// The address of a host name or IP literal: its first IPv4 address if it
/// has one (so that `localhost` is 127.0.0.1, where kvstore listens by
/// default, even where it also resolves to ::1), else its first address.
fn resolve(addrs: impl Iterator<Item = SocketAddr>) -> Option<SocketAddr> {
    let all: Vec<SocketAddr> = addrs.collect();
    all.iter().find(|a| a.is_ipv4()).or(all.first()).copied()
}

/// The secret from `--<option>` or the first line of `--<option>-file`
/// (not both; not empty: an empty password would let anyone in while
/// looking set). `option` is `requirepass` or `cluster-secret`.
fn secret(option: &str, given: Option<String>, file: Option<&Path>) -> Result<Option<String>, String> {
    let pass = match (given, file) {
        (Some(_), Some(_)) => return Err(format!("--{option} and --{option}-file: give one")),
        (Some(p), None) => p,
        (None, Some(f)) => {
            let text = std::fs::read_to_string(f)
                .map_err(|e| format!("--{option}-file '{}': cannot read it: {e}", f.display()))?;
            text.lines().next().unwrap_or_default().to_string()
        }
        (None, None) => return Ok(None),
    };
    if pass.is_empty() {
        return Err(format!("the --{option} secret is empty: give one, or no --{option} at all"));
    }
    if pass.bytes().any(|c| c.is_ascii_control()) {
        return Err(format!(
            "the --{option} secret holds a control character (a line break?), which no client can send"
        ));
    }
    Ok(Some(pass))
}

/// The default data directory of a node listening on `port`.
fn default_dir(port: u16) -> PathBuf {
    PathBuf::from(format!("data/{port}"))
}

/// Says what is wrong with `dir` as a data directory that exists or can be
/// created: a file where it, or a directory above it, should be.
fn check_dir(dir: &Path, given: bool) -> Result<(), String> {
    let what = if given { format!("--dir '{}'", dir.display()) } else { format!("data directory '{}'", dir.display()) };
    match dir.ancestors().find_map(|p| std::fs::metadata(p).ok().map(|m| (p, m))) {
        Some((p, m)) if !m.is_dir() && p == dir => Err(format!("{what} is a file, not a directory")),
        Some((p, m)) if !m.is_dir() => Err(format!("{what}: '{}' is a file, not a directory", p.display())),
        _ => Ok(()),
    }
}

/// Leader mode's options, checked.
fn leader_config(a: &Args) -> Result<Option<LeaderConfig>, String> {
    match a.election.to_ascii_lowercase().as_str() {
        "none" => return Ok(None),
        "bully" => {}
        other => return Err(format!("--election: expected bully or none, got '{other}'")),
    }
    let ms = |name: &str, v: u64| {
        if v == 0 || v > 3_600_000 {
            Err(format!("--{name} must be between 1 and 3600000 (an hour)"))
        } else {
            Ok(Duration::from_millis(v))
        }
    };
    let heartbeat = ms("heartbeat-ms", a.heartbeat_ms)?;
    let timeout = ms("election-timeout-ms", a.election_timeout_ms)?;
    if timeout < heartbeat * 2 {
        return Err("--election-timeout-ms must be at least twice --heartbeat-ms".into());
    }
    Ok(Some(LeaderConfig {
        heartbeat,
        timeout,
        request_timeout: ms("request-timeout-ms", a.request_timeout_ms)?,
        acks: a.acks,
        reads: a.reads,
        follower_writes: a.follower_writes,
    }))
}

impl Config {
    /// Checks and completes the raw options.
    pub fn from_args(mut a: Args) -> Result<Config, String> {
        let ip = match (a.bind.as_str(), a.port).to_socket_addrs() {
            Ok(addrs) => resolve(addrs).ok_or_else(|| format!("--bind '{}': no address", a.bind))?.ip(),
            Err(e) => return Err(format!("--bind '{}': not an IP address or a known host name ({e})", a.bind)),
        };
        let listen = SocketAddr::new(ip, a.port);
        let mut peers = Vec::new();
        let mut peer_names = Vec::new();
        for name in a.peers.as_deref().unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let addr = name
                .to_socket_addrs()
                .map_err(|e| format!("peer '{name}': {e} (expected host:port)"))
                .map(resolve)?
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
        let tls = TlsConfig::from_args(&a, ip, &peers)?;
        let requirepass = secret("requirepass", a.requirepass.take(), a.requirepass_file.as_deref())?;
        let cluster_secret = secret("cluster-secret", a.cluster_secret.take(), a.cluster_secret_file.as_deref())?
            .or_else(|| requirepass.clone());
        let protected_mode = yes_no(&a.protected_mode).map_err(|e| format!("--protected-mode: {e}"))?;
        if a.timeout > 100 * 365 * 86_400 {
            return Err("--timeout: at most a hundred years".into());
        }
        let leader = leader_config(&a)?;
        let dir_follows_port = a.dir.is_none();
        let dir = a.dir.unwrap_or_else(|| default_dir(a.port));
        if a.port != 0 || !dir_follows_port {
            check_dir(&dir, !dir_follows_port)?;
        }
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
            dir_follows_port,
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
            requirepass,
            cluster_secret,
            protected_mode,
            timeout: Duration::from_secs(a.timeout),
            tls,
            leader,
        })
    }

    /// Completes what follows the port once the server listens on `port`
    /// (the port it was given, or the one it got for port 0): the port in
    /// `listen`, the default data directory `data/<port>` and the default
    /// node id, the port. Returns the node id.
    pub fn listening_on(&mut self, port: u16) -> Result<u16, String> {
        self.listen.set_port(port);
        if self.dir_follows_port {
            self.dir = default_dir(port);
            check_dir(&self.dir, false)?;
        }
        Ok(*self.id.get_or_insert(port))
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
        assert!(parse(&["12345", "--bind", "nowhere.invalid"]).unwrap_err().contains("--bind"));
        assert!(parse(&["notaport"]).is_err());
    }

    #[test]
    fn host_names_are_resolved_where_an_address_is_expected() {
        let c = parse(&["12345", "localhost:12346", "--bind", "localhost"]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:12345".parse().unwrap());
        assert_eq!(c.peers, ["127.0.0.1:12346".parse().unwrap()]);
        assert_eq!(c.peer_names, ["localhost:12346"]);
        // IP literals as before, IPv6 included.
        assert_eq!(parse(&["1", "--bind", "0.0.0.0"]).unwrap().listen, "0.0.0.0:1".parse().unwrap());
        assert_eq!(parse(&["1", "--bind", "::1"]).unwrap().listen, "[::1]:1".parse().unwrap());
        // The node itself, by name.
        assert!(parse(&["12345", "localhost:12345"]).unwrap_err().contains("itself"));
    }

    #[test]
    fn an_ipv4_address_is_preferred() {
        let v6: SocketAddr = "[::1]:1".parse().unwrap();
        let v4: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(resolve([v6, v4].into_iter()), Some(v4));
        assert_eq!(resolve([v6].into_iter()), Some(v6));
        assert_eq!(resolve(std::iter::empty()), None);
    }

    /// A path under the system's temp dir, removed when dropped.
    struct Scratch(PathBuf);
    impl Scratch {
        fn new(tag: &str) -> Scratch {
            Scratch(std::env::temp_dir().join(format!("kvstore-config-{tag}-{}", std::process::id())))
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn a_file_as_data_directory_is_named_as_such() {
        let file = Scratch::new("file");
        std::fs::write(&file.0, b"not a directory").unwrap();
        let f = file.0.to_str().unwrap();
        assert_eq!(parse(&["1", "--dir", f]).unwrap_err(), format!("--dir '{f}' is a file, not a directory"));
        let under = format!("{f}/data");
        assert_eq!(
            parse(&["1", "--dir", &under]).unwrap_err(),
            format!("--dir '{under}': '{f}' is a file, not a directory")
        );
        // A directory that does not exist yet is fine (it is created).
        let fresh = Scratch::new("fresh");
        assert!(parse(&["1", "--dir", &fresh.0.join("a/b").display().to_string()]).is_ok());
    }

    #[test]
    fn with_port_0_the_defaults_follow_the_port_listened_on() {
        let mut c = parse(&["0"]).unwrap();
        assert_eq!(c.id, None);
        assert_eq!(c.listening_on(40123), Ok(40123));
        assert_eq!((c.id, c.dir.as_path(), c.listen.port()), (Some(40123), Path::new("data/40123"), 40123));
        // What is given stays.
        let mut c = parse(&["0", "--dir", "mine", "--id", "7"]).unwrap();
        assert_eq!(c.listening_on(40123), Ok(7));
        assert_eq!(c.dir, PathBuf::from("mine"));
        // A fixed port: nothing changes.
        let mut c = parse(&["12345"]).unwrap();
        assert_eq!(c.listening_on(12345), Ok(12345));
        assert_eq!(c.dir, PathBuf::from("data/12345"));
    }

    #[test]
    fn the_cluster_secret_defaults_to_the_password() {
        let c = parse(&["1"]).unwrap();
        assert_eq!((c.requirepass, c.cluster_secret), (None, None));
        let c = parse(&["1", "--requirepass", "p"]).unwrap();
        assert_eq!((c.requirepass.as_deref(), c.cluster_secret.as_deref()), (Some("p"), Some("p")));
        let c = parse(&["1", "--requirepass", "p", "--cluster-secret", "s"]).unwrap();
        assert_eq!((c.requirepass.as_deref(), c.cluster_secret.as_deref()), (Some("p"), Some("s")));
        let c = parse(&["1", "--cluster-secret", "s"]).unwrap();
        assert_eq!((c.requirepass, c.cluster_secret.as_deref()), (None, Some("s")));
        let file = Scratch::new("secret");
        std::fs::write(&file.0, b"from-file\nignored\n").unwrap();
        let f = file.0.to_str().unwrap();
        assert_eq!(parse(&["1", "--cluster-secret-file", f]).unwrap().cluster_secret.as_deref(), Some("from-file"));
        let both = parse(&["1", "--cluster-secret", "s", "--cluster-secret-file", f]).unwrap_err();
        assert_eq!(both, "--cluster-secret and --cluster-secret-file: give one");
        assert!(parse(&["1", "--cluster-secret", ""]).unwrap_err().contains("--cluster-secret secret is empty"));
        assert!(parse(&["1", "--cluster-secret-file", "/nonexistent/x"]).unwrap_err().contains("cannot read"));
    }

    #[test]
    fn tls_options() {
        let files = ["--tls-cert-file", "c.pem", "--tls-key-file", "k.pem", "--tls-ca-cert-file", "ca.pem"];
        let with = |extra: &[&str]| parse(&[&["12345"][..], &files, extra].concat());
        let off = parse(&["12345"]).unwrap().tls;
        assert!(!off.serves() && !off.replication);
        let c = with(&["--tls-port", "12346"]).unwrap().tls;
        assert_eq!(c.listen, Some("127.0.0.1:12346".parse().unwrap()));
        assert_eq!(c.auth_clients, ClientAuth::Yes);
        assert_eq!(c.handshake_timeout, Duration::from_secs(5));
        let c = with(&["--tls-only", "--tls-replication", "YES", "--tls-auth-clients", "optional"]).unwrap().tls;
        assert!(c.only && c.serves() && c.replication && c.listen.is_none());
        assert_eq!(c.auth_clients, ClientAuth::Optional);
        // Both ports may be "any free port".
        assert!(
            parse(&["0", "--tls-port", "0", "--tls-cert-file", "c", "--tls-key-file", "k", "--tls-auth-clients", "no"])
                .is_ok()
        );
        assert!(with(&["--tls-port", "12345"]).unwrap_err().contains("differ"));
        assert!(with(&["--tls-only", "--tls-port", "1"]).unwrap_err().contains("--tls-only"));
        assert!(with(&["--tls-replication", "maybe"]).unwrap_err().contains("maybe"));
        assert!(with(&["--tls-port", "1", "--tls-handshake-timeout-ms", "0"]).is_err());
        assert!(with(&["--tls-port", "1", "--tls-handshake-timeout-ms", "18446744073709551615"]).is_err());
        assert!(parse(&["12345", "--tls-port", "1"]).unwrap_err().contains("--tls-cert-file"));
        let no_ca = ["12345", "--tls-port", "1", "--tls-cert-file", "c", "--tls-key-file", "k"];
        assert!(parse(&no_ca).unwrap_err().contains("--tls-ca-cert-file"));
        assert!(parse(&[&no_ca[..], &["--tls-auth-clients", "no"]].concat()).is_ok());
        assert!(parse(&[&no_ca[..], &["--tls-auth-clients", "no", "--tls-replication", "yes"]].concat()).is_err());
        assert!(parse(&["12345", "--tls-ca-cert-file", "ca"]).unwrap_err().contains("TLS is off"));
        let peer_is_me = parse(&[&["12345", "127.0.0.1:12346"][..], &files, &["--tls-port", "12346"]].concat());
        assert!(peer_is_me.unwrap_err().contains("itself"));
    }
}
