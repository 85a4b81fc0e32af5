//! Command-line options (argh) and their validation into a [`Config`].
//! The rest of the program sees only the checked, reduced `Config`, so no
//! other module has to validate an option or know a default.

use std::str::FromStr;
use std::time::Duration;

use argh::FromArgs;

use crate::request::{KEY_DIGITS, Op};

#[derive(FromArgs, Debug)]
/// Load generator for kvstore (and Redis): many connections with pipelined
/// SET/GET requests over RESP or the kvstore text protocol. Reports
/// throughput, latency percentiles and the client's own CPU time per request.
pub struct Args {
    /// server address, HOST:PORT (default 127.0.0.1:12345, the README's
    /// kvstore server; Redis's is 127.0.0.1:6379)
    #[argh(option, default = "String::from(\"127.0.0.1:12345\")")]
    addr: String,

    /// concurrent connections (default 50)
    #[argh(option, default = "50")]
    clients: usize,

    /// requests each connection keeps in flight; the next batch is written
    /// in one write once the whole batch is answered (default 1)
    #[argh(option, default = "1")]
    pipeline: usize,

    /// total requests over all connections (default 100000; 1000 in
    /// --lag-addr mode); ignored when --duration is given
    #[argh(option)]
    requests: Option<u64>,

    /// run for this many seconds (fractions allowed) instead of a number of
    /// requests
    #[argh(option)]
    duration: Option<f64>,

    /// value size in bytes for SET/PUT (default 32)
    #[argh(option, default = "32")]
    value_size: usize,

    /// distinct keys: key:000000000000 up to keyspace-1, fixed width so all
    /// requests of one kind have the same length, picked uniformly at random
    /// (default 100000)
    #[argh(option, default = "100000")]
    keyspace: u64,

    /// seed of the key generator: the same seed gives the same keys (default 1)
    #[argh(option, default = "1")]
    seed: u64,

    /// SET:GET mix, interleaved evenly: 1:0 only writes, 0:1 only reads,
    /// 1:10 read-heavy (default 1:1)
    #[argh(option, default = "Ratio { set: 1, get: 1 }")]
    ratio: Ratio,

    /// resp (SET/GET, the default) or text (PUT/GET lines)
    #[argh(option, default = "Protocol::Resp")]
    protocol: Protocol,

    /// event-loop threads; connections are split among them (default 1)
    #[argh(option, default = "1")]
    threads: usize,

    /// before the run, SET every key of the keyspace once so that GETs hit
    #[argh(switch)]
    prefill: bool,

    /// print one JSON object instead of the human summary
    #[argh(switch)]
    json: bool,

    /// no progress line on stderr
    #[argh(switch)]
    quiet: bool,

    /// replication lag mode: --requests times, write a unique key on --addr,
    /// then GET it on this HOST:PORT until the value is visible; report the
    /// time from the write to visibility (5 s cap per key)
    #[argh(option)]
    lag_addr: Option<String>,
}

/// Which wire protocol the requests are encoded in and the replies parsed as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Redis's protocol: `*3\r\n$3\r\nSET\r\n...` → `+OK\r\n`; GET → bulk or `$-1`.
    Resp,
    /// kvstore's line protocol: `PUT k v\n` → `OK\n`; `GET k\n` → value or `NOT_FOUND`.
    Text,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Resp => "resp",
            Protocol::Text => "text",
        }
    }
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Protocol, String> {
        match s.to_ascii_lowercase().as_str() {
            "resp" => Ok(Protocol::Resp),
            "text" => Ok(Protocol::Text),
            _ => Err(format!("unknown protocol {s:?}: expected resp or text")),
        }
    }
}

/// The SET:GET mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ratio {
    pub set: u32,
    pub get: u32,
}

impl FromStr for Ratio {
    type Err = String;
    fn from_str(s: &str) -> Result<Ratio, String> {
        let bad = || format!("bad ratio {s:?}: expected SET:GET, e.g. 1:1, 1:0, 1:10");
        let (a, b) = s.split_once(':').ok_or_else(bad)?;
        let set = a.trim().parse().map_err(|_| bad())?;
        let get = b.trim().parse().map_err(|_| bad())?;
        if set == 0 && get == 0 {
            return Err(format!("bad ratio {s:?}: at least one side must be non-zero"));
        }
        Ok(Ratio { set, get })
    }
}

impl Ratio {
    /// The same mix with the smallest period (2:2 → 1:1).
    fn reduced(self) -> Ratio {
        let (mut a, mut b) = (self.set, self.get);
        while b != 0 {
            (a, b) = (b, a % b);
        }
        Ratio { set: self.set / a, get: self.get / a }
    }
    /// Operations repeat with this period.
    pub fn period(self) -> usize {
        (self.set + self.get) as usize
    }
    /// The operation at slot `j` of the period: SETs spread evenly among the
    /// GETs (Bresenham), so every window of requests has about the mix.
    pub fn op(self, j: usize) -> Op {
        let (j, set, period) = (j as u64, self.set as u64, self.period() as u64);
        if (j + 1) * set / period > j * set / period { Op::Set } else { Op::Get }
    }
}

/// Validated options.
#[derive(Debug)]
pub struct Config {
    pub addr: String,
    pub clients: usize,
    pub pipeline: usize,
    pub requests: u64,
    pub duration: Option<Duration>,
    pub value_size: usize,
    pub keyspace: u64,
    pub seed: u64,
    /// Reduced (smallest period).
    pub ratio: Ratio,
    pub protocol: Protocol,
    /// At most `clients`.
    pub threads: usize,
    pub prefill: bool,
    pub json: bool,
    pub quiet: bool,
    pub lag_addr: Option<String>,
}

impl Config {
    pub fn from_args(a: Args) -> Result<Config, String> {
        if a.clients == 0 || a.clients > 100_000 {
            return Err("--clients must be between 1 and 100000".into());
        }
        if a.pipeline == 0 || a.pipeline > 1_000_000 {
            return Err("--pipeline must be between 1 and 1000000".into());
        }
        if a.threads == 0 {
            return Err("--threads must be at least 1".into());
        }
        if a.value_size == 0 || a.value_size > 512 << 20 {
            return Err("--value-size must be between 1 and 536870912".into());
        }
        if a.keyspace == 0 || a.keyspace > 10u64.pow(KEY_DIGITS as u32) {
            return Err(format!("--keyspace must be between 1 and 10^{KEY_DIGITS}"));
        }
        let duration = match a.duration {
            None => None,
            Some(s) if s.is_finite() && s > 0.0 && s < 1e9 => Some(Duration::from_secs_f64(s)),
            Some(s) => return Err(format!("--duration must be a positive number of seconds, not {s}")),
        };
        let requests = a.requests.unwrap_or(if a.lag_addr.is_some() { 1000 } else { 100_000 });
        if requests == 0 {
            return Err("--requests must be at least 1".into());
        }
        Ok(Config {
            addr: a.addr,
            clients: a.clients,
            pipeline: a.pipeline,
            requests,
            duration,
            value_size: a.value_size,
            keyspace: a.keyspace,
            seed: a.seed,
            ratio: a.ratio.reduced(),
            protocol: a.protocol,
            threads: a.threads.min(a.clients),
            prefill: a.prefill,
            json: a.json,
            quiet: a.quiet,
            lag_addr: a.lag_addr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_spreads_evenly() {
        let r: Ratio = "2:6".parse().unwrap();
        let r = r.reduced();
        assert_eq!(r, Ratio { set: 1, get: 3 });
        let sets = (0..r.period()).filter(|&j| r.op(j) == Op::Set).count();
        assert_eq!(sets, 1);
        assert!((0..1).all(|j| Ratio { set: 1, get: 0 }.op(j) == Op::Set));
        assert!((0..1).all(|j| Ratio { set: 0, get: 1 }.op(j) == Op::Get));
        assert!("0:0".parse::<Ratio>().is_err());
        assert!("1-1".parse::<Ratio>().is_err());
    }
}
