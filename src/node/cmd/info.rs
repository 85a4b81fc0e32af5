//! INFO: the node's state under the section and field names Redis uses,
//! which clients and tools read (redis-cli `--stat`, redis-py's `info()`,
//! exporters). A field is shown only where kvstore has the figure or its
//! true counterpart; kvstore's own figures are prefixed `kvstore_`.
//!
//! Sections, in Redis's order: Server, Clients, Memory, Persistence,
//! Stats, Replication, CPU, Modules, Commandstats, Errorstats, Cluster,
//! Keyspace. `INFO` alone and `default` give all but Commandstats and
//! Errorstats, which `all` and `everything` add, as in Redis (kvstore has
//! no latency stats, the third section they add in Redis); names are
//! matched in any case, unknown ones select nothing.

use super::server::is_up;
use super::{COMMANDS, CommandSpec, Ctx, Flow, REDIS_VERSION};
use crate::node::Node;
use crate::node::stats::{cpu_seconds, total_system_memory};
use crate::proto::resp;

/// `INFO [section ...]`.
pub fn info(cx: &mut Ctx<'_>) -> Flow {
    let sel = select(cx.args.iter(1));
    let body = render(cx.node, &sel);
    resp::verbatim(cx.out, b"txt", body.as_bytes(), cx.resp3());
    Flow::Continue
}

/// The sections, lower-case, in output order.
const SECTIONS: [&str; 12] = [
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "commandstats",
    "errorstats",
    "cluster",
    "keyspace",
];

/// The sections `INFO`, `INFO default` give: all but the per-command and
/// per-error ones, which can be long.
const DEFAULT: [bool; SECTIONS.len()] = {
    let mut d = [true; SECTIONS.len()];
    d[8] = false;
    d[9] = false;
    d
};

/// Which of [`SECTIONS`] the arguments ask for (the default ones when none).
fn select<'a>(args: impl Iterator<Item = &'a [u8]>) -> [bool; SECTIONS.len()] {
    let mut sel = [false; SECTIONS.len()];
    let mut any = false;
    for a in args {
        any = true;
        let a = a.to_ascii_lowercase();
        let add = match a.as_slice() {
            b"all" | b"everything" => [true; SECTIONS.len()],
            b"default" => DEFAULT,
            _ => {
                let mut one = [false; SECTIONS.len()];
                if let Some(i) = SECTIONS.iter().position(|s| s.as_bytes() == a) {
                    one[i] = true;
                }
                one
            }
        };
        for (s, a) in sel.iter_mut().zip(add) {
            *s |= a;
        }
    }
    if any { sel } else { DEFAULT }
}

type Fields = Vec<(String, String)>;

/// A section: its title and what makes its fields.
type Section = (&'static str, fn(&Node) -> Fields);

/// A field: its name and its value.
fn f(k: &str, v: impl ToString) -> (String, String) {
    (k.to_string(), v.to_string())
}

/// The INFO text of the selected sections.
fn render(node: &Node, sel: &[bool; SECTIONS.len()]) -> String {
    let makers: [Section; SECTIONS.len()] = [
        ("Server", server),
        ("Clients", clients),
        ("Memory", memory),
        ("Persistence", persistence),
        ("Stats", stats),
        ("Replication", replication),
        ("CPU", cpu),
        ("Modules", |_| Vec::new()),
        ("Commandstats", |n| n.stats.cmdstats.commandstats()),
        ("Errorstats", |n| n.stats.cmdstats.errorstats()),
        ("Cluster", |_| vec![f("cluster_enabled", 0)]),
        ("Keyspace", keyspace),
    ];
    let mut o = String::new();
    for ((title, make), _) in makers.iter().zip(sel).filter(|(_, on)| **on) {
        if !o.is_empty() {
            o.push_str("\r\n");
        }
        o.push_str(&format!("# {title}\r\n"));
        for (k, v) in make(node) {
            o.push_str(&format!("{k}:{v}\r\n"));
        }
    }
    o
}

/// Bytes as Redis's `bytesToHuman` shows them: `512B`, `1.50K`, `2.00M`.
pub fn human(n: u64) -> String {
    const UNITS: [(u64, &str); 5] = [(1 << 50, "P"), (1 << 40, "T"), (1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")];
    match UNITS.iter().find(|(u, _)| n >= *u) {
        Some((u, name)) => format!("{:.2}{name}", n as f64 / *u as f64),
        None => format!("{n}B"),
    }
}

fn os_name() -> String {
    // SAFETY: uname fills the zeroed struct it is given.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::uname(&mut u) } != 0 {
        return std::env::consts::OS.to_string();
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    format!("{} {} {}", field(&u.sysname), field(&u.release), field(&u.machine))
}

fn server(node: &Node) -> Fields {
    let up = node.uptime();
    vec![
        f("redis_version", REDIS_VERSION),
        f("redis_git_sha1", "00000000"),
        f("redis_git_dirty", "0"),
        f("redis_mode", "standalone"),
        f("kvstore_version", env!("CARGO_PKG_VERSION")),
        f("os", os_name()),
        f("arch_bits", usize::BITS.to_string()),
        f("monotonic_clock", "POSIX clock_gettime"),
        f("multiplexing_api", "epoll"),
        f("process_id", std::process::id().to_string()),
        f("process_supervised", "no"),
        f("run_id", node.stats.run_id.clone()),
        f("tcp_port", node.cfg.listen.port().to_string()),
        f("server_time_usec", node.unix_micros().to_string()),
        f("uptime_in_seconds", up.to_string()),
        f("uptime_in_days", (up / 86_400).to_string()),
        f("hz", "10"),
        f("configured_hz", "10"),
        f("executable", std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default()),
        f("config_file", String::new()),
        f("io_threads_active", "0"),
        f("kvstore_node_id", node.id.to_string()),
        f("kvstore_epoch", node.election().map_or(0, |e| e.epoch)),
    ]
}

fn clients(node: &Node) -> Fields {
    let c = node.clients();
    let most = |f: fn(&crate::node::clients::ClientInfo) -> usize| c.iter().map(|(_, e)| f(e)).max().unwrap_or(0);
    vec![
        f("connected_clients", node.stats.connected.to_string()),
        f("cluster_connections", "0"),
        f("maxclients", node.cfg.max_clients.to_string()),
        f("client_recent_max_input_buffer", most(|e| e.buffers.qbuf).to_string()),
        f("client_recent_max_output_buffer", most(|e| e.buffers.obuf).to_string()),
        f("blocked_clients", c.blocked().to_string()),
        f("tracking_clients", "0"),
        f("clients_in_timeout_table", c.timed().to_string()),
        f("kvstore_monitors", c.monitoring().to_string()),
    ]
}

fn memory(node: &Node) -> Fields {
    let m = node.memory();
    let total = total_system_memory();
    let ratio = if m.used > 0 { m.rss as f64 / m.used as f64 } else { 0.0 };
    let perc = if m.peak > 0 { m.used as f64 * 100.0 / m.peak as f64 } else { 0.0 };
    vec![
        f("used_memory", m.used.to_string()),
        f("used_memory_human", human(m.used)),
        f("used_memory_rss", m.rss.to_string()),
        f("used_memory_rss_human", human(m.rss)),
        f("used_memory_peak", m.peak.to_string()),
        f("used_memory_peak_human", human(m.peak)),
        f("used_memory_peak_perc", format!("{perc:.2}%")),
        f("total_system_memory", total.to_string()),
        f("total_system_memory_human", human(total)),
        f("maxmemory", "0"),
        f("maxmemory_human", "0B"),
        f("maxmemory_policy", "noeviction"),
        f("mem_fragmentation_ratio", format!("{ratio:.2}")),
        f("mem_fragmentation_bytes", (m.rss as i64 - m.used as i64).to_string()),
        f("mem_allocator", if m.from_allocator { "mimalloc" } else { "libc" }),
        f("kvstore_live_data_bytes", node.store.data_bytes().to_string()),
    ]
}

fn persistence(node: &Node) -> Fields {
    let s = &node.stats;
    let running = node.compaction.as_ref().map(|c| node.now.saturating_duration_since(c.started()).as_secs() as i64);
    let last = s.last_compaction.map_or(-1, |(_, _, took)| took.as_secs() as i64);
    let status = if s.last_rewrite_ok { "ok" } else { "err" };
    let flag = |b: bool| u8::from(b).to_string();
    vec![
        f("loading", "0"),
        f("async_loading", "0"),
        f("rdb_changes_since_last_save", s.writes.saturating_sub(s.writes_at_last_save).to_string()),
        f("rdb_bgsave_in_progress", flag(running.is_some())),
        f("rdb_last_save_time", s.last_save.to_string()),
        f("rdb_last_bgsave_status", status),
        f("rdb_last_bgsave_time_sec", last.to_string()),
        f("rdb_current_bgsave_time_sec", running.unwrap_or(-1).to_string()),
        f("rdb_saves", s.compactions.to_string()),
        f("aof_enabled", "1"),
        f("aof_rewrite_in_progress", flag(running.is_some())),
        f("aof_rewrite_scheduled", "0"),
        f("aof_last_rewrite_time_sec", last.to_string()),
        f("aof_current_rewrite_time_sec", running.unwrap_or(-1).to_string()),
        f("aof_last_bgrewrite_status", status),
        f("aof_rewrites", s.compactions.to_string()),
        f("aof_rewrites_consecutive_failures", s.rewrite_failures_in_a_row.to_string()),
        f("aof_last_write_status", if node.log_down.is_some() { "err" } else { "ok" }),
        f("aof_current_size", node.log.len().to_string()),
        f("aof_base_size", s.last_compaction.map_or(0, |(_, after, _)| after).to_string()),
        f("aof_fsync", node.cfg.fsync.to_string()),
    ]
}

fn stats(node: &Node) -> Fields {
    let s = &node.stats;
    let [ops, input, output] = node.rates();
    let kbps = |bytes_per_sec: f64| format!("{:.2}", bytes_per_sec / 1024.0);
    let resyncs: u64 = node.repl.links.iter().map(|l| l.resyncs).sum();
    vec![
        f("total_connections_received", s.total_connections.to_string()),
        f("total_commands_processed", s.commands.to_string()),
        f("instantaneous_ops_per_sec", (ops.round() as u64).to_string()),
        f("total_net_input_bytes", s.net_input.to_string()),
        f("total_net_output_bytes", s.net_output.to_string()),
        f("total_net_repl_input_bytes", s.net_repl_input.to_string()),
        f("total_net_repl_output_bytes", s.net_repl_output.to_string()),
        f("instantaneous_input_kbps", kbps(input)),
        f("instantaneous_output_kbps", kbps(output)),
        f("rejected_connections", s.rejected_connections.to_string()),
        f("acl_access_denied_auth", s.auth_failures.to_string()),
        f("sync_full", resyncs.to_string()),
        f("sync_partial_ok", "0"),
        f("sync_partial_err", "0"),
        f("expired_keys", node.store.expired_keys().to_string()),
        f("evicted_keys", "0"),
        f("evicted_clients", "0"),
        f("keyspace_hits", s.hits.to_string()),
        f("keyspace_misses", s.misses.to_string()),
        f("pubsub_channels", "0"),
        f("pubsub_patterns", "0"),
        f("pubsubshard_channels", "0"),
        f("latest_fork_usec", "0"),
        f("total_forks", "0"),
        f("kvstore_writes", s.writes.to_string()),
        f("kvstore_protocol_errors", s.protocol_errors.to_string()),
        f("kvstore_log_write_errors", s.log_write_errors.to_string()),
    ]
}

/// Every node takes writes: it answers as a master whose replicas are its
/// connected peers, each at the counter up to which it has acknowledged
/// this node's writes (see ROLE).
fn replication(node: &Node) -> Fields {
    let up: Vec<_> = node.repl.links.iter().filter(|l| is_up(l.state)).collect();
    if let Some(e) = node.election().filter(|e| !e.leading()) {
        // A follower in leader mode: as a Redis replica shows its master.
        let (host, port, link_up) = node.leader_link();
        return vec![
            f("role", "slave"),
            f("master_host", host),
            f("master_port", port),
            f("master_link_status", if link_up && e.leader.is_some() { "up" } else { "down" }),
            f("master_last_io_seconds_ago", 0),
            f("master_sync_in_progress", 0),
            f("slave_read_repl_offset", node.store.clock()),
            f("slave_repl_offset", node.store.clock()),
            f("slave_priority", 100),
            f("slave_read_only", 1),
            f("replica_announced", 1),
            f("connected_slaves", 0),
            f("master_failover_state", "no-failover"),
            f("master_replid", node.stats.run_id.clone()),
            f("master_repl_offset", node.store.clock()),
            f("kvstore_node_id", node.id),
            f("kvstore_epoch", e.epoch),
            f("kvstore_leader_id", e.leader.map_or("none".into(), |l| l.to_string())),
        ];
    }
    let mut v: Fields = vec![f("role", "master"), f("connected_slaves", up.len())];
    for (i, l) in up.iter().enumerate() {
        let state = if l.state.name() == "connected" { "online" } else { "wait_bgsave" };
        let line = format!("ip={},port={},state={state},offset={}", l.addr.ip(), l.addr.port(), l.acked);
        v.push(f(&format!("slave{i}"), line));
    }
    v.extend([
        f("master_failover_state", "no-failover"),
        f("master_replid", node.stats.run_id.clone()),
        f("master_replid2", "0".repeat(40)),
        f("master_repl_offset", node.store.clock().to_string()),
        f("second_repl_offset", "-1"),
        f("repl_backlog_active", "0"),
        f("kvstore_node_id", node.id.to_string()),
        f("kvstore_peers", node.repl.links.len().to_string()),
    ]);
    for (i, l) in node.repl.links.iter().enumerate() {
        v.push(f(
            &format!("peer{i}"),
            format!(
                "addr={},node={},state={},queued={},sent={},acked={},resyncs={}",
                l.name,
                l.peer_id.unwrap_or(0),
                l.state.name(),
                l.queued_bytes,
                l.sent,
                l.acked,
                l.resyncs
            ),
        ));
    }
    v
}

fn cpu(_: &Node) -> Fields {
    let secs = |s: f64| format!("{s:.6}");
    let (user, sys) = cpu_seconds(libc::RUSAGE_SELF);
    let (cuser, csys) = cpu_seconds(libc::RUSAGE_CHILDREN);
    let (tuser, tsys) = cpu_seconds(libc::RUSAGE_THREAD);
    vec![
        f("used_cpu_sys", secs(sys)),
        f("used_cpu_user", secs(user)),
        f("used_cpu_sys_children", secs(csys)),
        f("used_cpu_user_children", secs(cuser)),
        f("used_cpu_sys_main_thread", secs(tsys)),
        f("used_cpu_user_main_thread", secs(tuser)),
    ]
}

fn keyspace(node: &Node) -> Fields {
    if node.store.is_empty() {
        vec![]
    } else {
        let k = node.store.keyspace_info();
        vec![f("db0", format!("keys={},expires={},avg_ttl={}", k.keys, k.expires, k.avg_ttl_ms))]
    }
}

/// Per-command counts for INFO's Commandstats and Errorstats, of the
/// commands run over RESP and inline (see [`super::run_resp`]): calls,
/// calls that replied an error, calls refused before they ran (wrong
/// argument count, NOAUTH), and replies per error code.
///
/// kvstore does not time commands: a clock read per command would cost the
/// GET/SET path more than the count, so `usec` and `usec_per_call` are 0.
#[derive(Debug, Default)]
pub struct CommandStats {
    /// Per entry of [`COMMANDS`], by its index (grown once, on first use).
    top: Vec<Calls>,
    /// Subcommands (`CLIENT|LIST`, ...): few, and off the hot path.
    subs: Vec<(&'static str, Calls)>,
    /// Error replies per error code (the reply's first word), at most
    /// [`MAX_ERROR_CODES`] of them, as Redis keeps.
    errors: Vec<(String, u64)>,
}

/// Most error codes Errorstats keeps (Redis's limit): past it, replies
/// with a new code are not counted.
const MAX_ERROR_CODES: usize = 128;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Calls {
    calls: u64,
    failed: u64,
    rejected: u64,
}

impl CommandStats {
    /// Counts a call of `spec` whose reply is `reply`: refused before it ran
    /// if `rejected`, else run (and failed if it replied an error).
    #[inline]
    pub fn count(&mut self, spec: &'static CommandSpec, rejected: bool, reply: &[u8]) {
        let failed = reply.first() == Some(&b'-');
        let c = self.calls_of(spec);
        if rejected {
            c.rejected += 1;
        } else {
            c.calls += 1;
            c.failed += u64::from(failed);
        }
        if failed {
            self.error(reply);
        }
    }

    /// Counts the error reply at the start of `reply` under its code.
    #[cold]
    pub fn error(&mut self, reply: &[u8]) {
        let Some(body) = reply.strip_prefix(b"-") else { return };
        let end = body.iter().position(|&c| c == b' ' || c == b'\r').unwrap_or(body.len());
        let code = String::from_utf8_lossy(&body[..end]);
        if let Some((_, n)) = self.errors.iter_mut().find(|(c, _)| *c == code) {
            *n += 1;
        } else if self.errors.len() < MAX_ERROR_CODES {
            self.errors.push((code.into_owned(), 1));
        }
    }

    /// The counts of `spec`: by its index if it is an entry of [`COMMANDS`]
    /// (found from its address, no search), else among the subcommands.
    fn calls_of(&mut self, spec: &'static CommandSpec) -> &mut Calls {
        let size = std::mem::size_of::<CommandSpec>();
        let i = (spec as *const CommandSpec as usize).wrapping_sub(COMMANDS.as_ptr() as usize) / size;
        if COMMANDS.get(i).is_some_and(|c| std::ptr::eq(c, spec)) {
            if self.top.len() < COMMANDS.len() {
                self.top.resize(COMMANDS.len(), Calls::default());
            }
            return &mut self.top[i];
        }
        let at = match self.subs.iter().position(|(n, _)| *n == spec.name) {
            Some(at) => at,
            None => {
                self.subs.push((spec.name, Calls::default()));
                self.subs.len() - 1
            }
        };
        &mut self.subs[at].1
    }

    /// The Commandstats fields: one per command called or refused.
    fn commandstats(&self) -> Fields {
        let top = COMMANDS.iter().map(|c| c.name).zip(self.top.iter().copied());
        top.chain(self.subs.iter().copied())
            .filter(|(_, c)| *c != Calls::default())
            .map(|(name, c)| {
                let v = format!(
                    "calls={},usec=0,usec_per_call=0.00,rejected_calls={},failed_calls={}",
                    c.calls, c.rejected, c.failed
                );
                (format!("cmdstat_{}", name.to_ascii_lowercase()), v)
            })
            .collect()
    }

    /// The Errorstats fields: one per error code replied.
    fn errorstats(&self) -> Fields {
        self.errors.iter().map(|(code, n)| (format!("errorstat_{code}"), format!("count={n}"))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(args: &[&str]) -> Vec<&'static str> {
        let s = select(args.iter().map(|a| a.as_bytes()));
        SECTIONS.iter().zip(s).filter(|(_, on)| *on).map(|(n, _)| *n).collect()
    }

    #[test]
    fn sections_are_selected_as_redis_does() {
        assert_eq!(sel(&[]).len(), SECTIONS.len() - 2);
        assert_eq!(sel(&["default"]), sel(&[]));
        assert!(!sel(&[]).contains(&"commandstats") && !sel(&[]).contains(&"errorstats"));
        assert_eq!(sel(&["ALL"]), sel(&["everything"]));
        assert_eq!(sel(&["all"]).len(), SECTIONS.len());
        assert_eq!(sel(&["cpu", "default"]), sel(&["default"]));
        assert_eq!(sel(&["commandSTATS"]), ["commandstats"]);
        assert_eq!(sel(&["Keyspace", "server"]), ["server", "keyspace"], "in Redis's order, any case");
        assert_eq!(sel(&["cluster"]), ["cluster"]);
        assert!(sel(&["nosuch"]).is_empty());
        assert!(sel(&["latencystats"]).is_empty(), "not kept by kvstore");
        assert_eq!(sel(&["nosuch", "cpu", "cpu"]), ["cpu"]);
    }

    fn spec(name: &str) -> &'static CommandSpec {
        super::super::lookup(name.as_bytes()).expect(name)
    }

    #[test]
    fn command_stats_count_calls_failures_refusals_and_error_codes() {
        let mut s = CommandStats::default();
        assert!(s.commandstats().is_empty() && s.errorstats().is_empty());
        s.count(spec("GET"), false, b"$1\r\nv\r\n");
        s.count(spec("GET"), false, b"$-1\r\n");
        s.count(spec("INCR"), false, b"-ERR value is not an integer or out of range\r\n");
        s.count(spec("GET"), true, b"-ERR wrong number of arguments for 'get' command\r\n");
        s.count(spec("SET"), false, b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
        let client = spec("CLIENT").subs.iter().find(|c| c.name == "CLIENT|ID").unwrap();
        s.count(client, false, b":7\r\n");
        s.error(b"-ERR unknown command 'LPUSH'\r\n");
        let rows = s.commandstats();
        let row = |n: &str| rows.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(row("cmdstat_get"), Some("calls=2,usec=0,usec_per_call=0.00,rejected_calls=1,failed_calls=0"));
        assert_eq!(row("cmdstat_incr"), Some("calls=1,usec=0,usec_per_call=0.00,rejected_calls=0,failed_calls=1"));
        assert_eq!(row("cmdstat_client|id"), Some("calls=1,usec=0,usec_per_call=0.00,rejected_calls=0,failed_calls=0"));
        assert_eq!(row("cmdstat_del"), None, "never called");
        assert_eq!(rows.len(), 4);
        let errors = s.errorstats();
        assert_eq!(errors, [f("errorstat_ERR", "count=3"), f("errorstat_WRONGTYPE", "count=1")]);
    }

    #[test]
    fn error_codes_are_capped() {
        let mut s = CommandStats::default();
        for i in 0..MAX_ERROR_CODES + 10 {
            s.error(format!("-E{i} x\r\n").as_bytes());
        }
        s.error(b"-E0\r\n");
        assert_eq!(s.errorstats().len(), MAX_ERROR_CODES);
        assert_eq!(s.errorstats()[0], f("errorstat_E0", "count=2"));
    }

    #[test]
    fn human_sizes_as_redis_prints_them() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(1023), "1023B");
        assert_eq!(human(1536), "1.50K");
        assert_eq!(human(1163400), "1.11M");
        assert_eq!(human(25276502016), "23.54G");
    }
}
