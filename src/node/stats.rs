//! The node's counters, and the name/value pairs the text protocol's STATS
//! shows (INFO shows the Redis-named subset, see [`super::cmd::info`]).

use std::time::Duration;

use super::Node;

/// Counters for STATS and INFO.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections open now (clients, inbound peers included).
    pub connected: usize,
    /// Connections accepted since start.
    pub total_connections: u64,
    /// Connections refused at the client limit.
    pub rejected_connections: u64,
    /// Commands executed.
    pub commands: u64,
    /// Reads that found their key.
    pub hits: u64,
    /// Reads that did not find their key.
    pub misses: u64,
    /// Writes accepted from clients.
    pub writes: u64,
    /// Protocol errors (connections closed for bad framing).
    pub protocol_errors: u64,
    /// Log commits that failed.
    pub log_write_errors: u64,
    /// Compactions completed.
    pub compactions: u64,
    /// Log size before and after the last compaction, and its duration.
    pub last_compaction: Option<(u64, u64, Duration)>,
    /// Records replayed at start, and how long replay took.
    pub replayed: (u64, Duration),
}

impl Node {
    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Name/value pairs for STATS.
    pub fn stat_pairs(&self) -> Vec<(String, String)> {
        let s = &self.stats;
        let mut v: Vec<(String, String)> = vec![
            ("node_id".into(), self.id.to_string()),
            ("keys".into(), self.store.len().to_string()),
            ("tombstones".into(), self.store.tombstones().to_string()),
            ("expired_keys".into(), self.store.expired_keys().to_string()),
            ("connections".into(), s.connected.to_string()),
            ("total_connections".into(), s.total_connections.to_string()),
            ("rejected_connections".into(), s.rejected_connections.to_string()),
            ("commands".into(), s.commands.to_string()),
            ("writes".into(), s.writes.to_string()),
            ("get_hits".into(), s.hits.to_string()),
            ("get_misses".into(), s.misses.to_string()),
            ("protocol_errors".into(), s.protocol_errors.to_string()),
            ("log_path".into(), self.log.path().display().to_string()),
            ("log_bytes".into(), self.log.len().to_string()),
            ("live_data_bytes".into(), self.store.data_bytes().to_string()),
            ("log_write_errors".into(), s.log_write_errors.to_string()),
            ("fsync".into(), self.cfg.fsync.to_string()),
            ("compacting".into(), u8::from(self.compaction.is_some()).to_string()),
            ("compactions".into(), s.compactions.to_string()),
            ("replayed_records".into(), s.replayed.0.to_string()),
            ("replay_ms".into(), s.replayed.1.as_millis().to_string()),
            ("uptime_seconds".into(), self.uptime().to_string()),
            ("peers".into(), self.repl.links.len().to_string()),
        ];
        if let Some((before, after, took)) = s.last_compaction {
            v.push(("last_compaction_bytes_before".into(), before.to_string()));
            v.push(("last_compaction_bytes_after".into(), after.to_string()));
            v.push(("last_compaction_ms".into(), took.as_millis().to_string()));
        }
        for l in &self.repl.links {
            let p = format!("peer.{}", l.name);
            let node = l.peer_id.unwrap_or(0);
            v.push((format!("{p}.node"), node.to_string()));
            v.push((format!("{p}.state"), l.state.name().to_string()));
            v.push((format!("{p}.queued_bytes"), l.queued_bytes.to_string()));
            v.push((format!("{p}.last_sent"), l.sent.to_string()));
            v.push((format!("{p}.last_acked"), l.acked.to_string()));
            v.push((format!("{p}.applied_from"), self.repl.progress.applied_from(node).to_string()));
            v.push((format!("{p}.resyncs"), l.resyncs.to_string()));
        }
        v
    }
}
