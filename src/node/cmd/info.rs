//! INFO: the node's state under the section and field names Redis uses,
//! which clients and tools read.

use super::{Args, Ctx, Flow, REDIS_VERSION};
use crate::node::Node;
use crate::proto::resp;

/// `INFO [section ...]`.
pub fn info(cx: &mut Ctx<'_>) -> Flow {
    let body = render(cx.node, cx.args);
    resp::verbatim(cx.out, b"txt", body.as_bytes(), cx.resp3());
    Flow::Continue
}

/// The INFO text for the sections `a` asks for (all when none).
fn render(node: &Node, a: Args<'_>) -> String {
    let wanted: Vec<String> = a.iter(1).map(|s| String::from_utf8_lossy(s).to_lowercase()).collect();
    let all = wanted.is_empty() || wanted.iter().any(|w| w == "all" || w == "everything" || w == "default");
    let want = |s: &str| all || wanted.iter().any(|w| w == s);
    let c = &node.cfg;
    let s = &node.stats;
    let mut o = String::new();
    let section = |o: &mut String, name: &str, fields: Vec<(String, String)>| {
        if want(&name.to_lowercase()) {
            if !o.is_empty() {
                o.push_str("\r\n");
            }
            o.push_str(&format!("# {name}\r\n"));
            for (k, v) in fields {
                o.push_str(&format!("{k}:{v}\r\n"));
            }
        }
    };
    let f = |k: &str, v: String| (k.to_string(), v);
    section(
        &mut o,
        "Server",
        vec![
            f("redis_version", REDIS_VERSION.into()),
            f("redis_mode", "standalone".into()),
            f("kvstore_version", env!("CARGO_PKG_VERSION").into()),
            f("os", std::env::consts::OS.into()),
            f("arch_bits", (usize::BITS).to_string()),
            f("multiplexing_api", "epoll".into()),
            f("process_id", std::process::id().to_string()),
            f("tcp_port", c.listen.port().to_string()),
            f("uptime_in_seconds", node.uptime().to_string()),
            f("uptime_in_days", (node.uptime() / 86_400).to_string()),
            f("executable", std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default()),
        ],
    );
    section(
        &mut o,
        "Clients",
        vec![f("connected_clients", s.connected.to_string()), f("maxclients", c.max_clients.to_string())],
    );
    section(
        &mut o,
        "Persistence",
        vec![
            f("loading", "0".into()),
            f("aof_enabled", "1".into()),
            f("aof_rewrite_in_progress", u8::from(node.compaction.is_some()).to_string()),
            f("aof_last_write_status", if node.log_down.is_some() { "err" } else { "ok" }.into()),
            f("aof_current_size", node.log.len().to_string()),
            f("aof_fsync", c.fsync.to_string()),
            f("rdb_changes_since_last_save", "0".into()),
        ],
    );
    let mut repl = vec![
        f("role", "master".into()),
        f("connected_slaves", "0".into()),
        f("kvstore_node_id", node.id.to_string()),
        f("kvstore_peers", node.repl.links.len().to_string()),
    ];
    for (i, l) in node.repl.links.iter().enumerate() {
        repl.push(f(
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
    section(&mut o, "Replication", repl);
    section(
        &mut o,
        "Stats",
        vec![
            f("total_connections_received", s.total_connections.to_string()),
            f("total_commands_processed", s.commands.to_string()),
            f("rejected_connections", s.rejected_connections.to_string()),
            f("keyspace_hits", s.hits.to_string()),
            f("keyspace_misses", s.misses.to_string()),
            f("expired_keys", node.store.expired_keys().to_string()),
        ],
    );
    let k = node.store.keyspace_info();
    let ks = if k.keys == 0 {
        vec![]
    } else {
        vec![f("db0", format!("keys={},expires={},avg_ttl={}", k.keys, k.expires, k.avg_ttl_ms))]
    };
    section(&mut o, "Keyspace", ks);
    o
}
