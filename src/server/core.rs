//! What commands act on: the store, the log, the cluster, counters. The
//! server owns one [`Core`]; commands reach it through [`Core`]'s methods,
//! never through sockets.
//!
//! The invariant kept here: a write is applied to the store and staged in
//! the log in the same step, and its reply waits in the connection's output
//! until the server has committed the log (see `Server::before_sleep`).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::core::append_log::AppendLog;
use crate::core::record::{FLAG_ORDERED, Op, Record, Version};
use crate::core::store::{Applied, Store};
use crate::net::cluster::Cluster;
use crate::net::peer;

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
    /// Reads that found their key / did not.
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

/// A log rewrite under way: the store is walked from `cursor`.
#[derive(Debug)]
pub struct Compaction {
    /// Next store slot to write into the new log; `None` once the snapshot
    /// is complete and the log is switching files.
    pub cursor: Option<usize>,
    /// When it began.
    pub started: Instant,
}

/// The state commands act on.
pub struct Core {
    /// The configuration.
    pub cfg: Config,
    /// This node's id.
    pub id: u16,
    /// The keyspace.
    pub store: Store,
    /// The append-only log.
    pub log: AppendLog,
    /// Peers and watermarks.
    pub cluster: Cluster,
    /// Counters.
    pub stats: Stats,
    /// Process start.
    pub started: Instant,
    /// Seconds since the epoch, refreshed once per loop iteration.
    pub now_secs: u32,
    /// Set when a write was staged during the current command; the server
    /// then holds the connection's reply until the log commit.
    pub wrote: bool,
    /// Frames of this iteration's local writes, for the peer links once
    /// the log has them.
    pub link_batch: Vec<u8>,
    /// Counter of the last local write in `link_batch`.
    pub link_batch_last: u64,
    /// While set (until the instant), the log has failed and writes are refused.
    pub log_down: Option<(Instant, String)>,
    /// A compaction under way.
    pub compaction: Option<Compaction>,
}

/// Why a write was refused.
#[derive(Debug)]
pub struct Refused(pub String);

impl Core {
    /// Assembles the core; `store` and `cluster` come from replay.
    pub fn new(cfg: Config, id: u16, store: Store, log: AppendLog, cluster: Cluster) -> Core {
        Core {
            cfg,
            id,
            store,
            log,
            cluster,
            stats: Stats::default(),
            started: Instant::now(),
            now_secs: unix_now(),
            wrote: false,
            link_batch: Vec::new(),
            link_batch_last: 0,
            log_down: None,
            compaction: None,
        }
    }

    fn refuse_if_log_down(&mut self) -> Result<(), Refused> {
        // Only a failed log costs a clock read.
        match &self.log_down {
            None => Ok(()),
            Some((until, why)) if *until > Instant::now() => {
                Err(Refused(format!("log write failed ({why}); writes are refused for now")))
            }
            Some(_) => {
                self.log_down = None;
                Ok(())
            }
        }
    }

    /// A client's write: versioned here, applied, staged in the log, and
    /// queued for the peers once logged.
    pub fn local_write(&mut self, op: Op, key: &[u8], value: &[u8]) -> Result<Applied, Refused> {
        self.refuse_if_log_down()?;
        let version = self.store.next_version(self.id);
        let rec = Record { op, flags: FLAG_ORDERED, version, key, value };
        self.log.stage(&rec);
        let applied = self.store.apply(&rec, self.now_secs);
        if self.cluster.has_peers() {
            peer::record_frame(&mut self.link_batch, &rec);
            self.link_batch_last = version.counter();
        }
        self.stats.writes += 1;
        self.wrote = true;
        Ok(applied)
    }

    /// A write typed by a person as `REPL_PUT`/`REPL_DEL` (no version): applied
    /// here only. Its version names node 0, which no node forwards.
    pub fn manual_replica_write(&mut self, op: Op, key: &[u8], value: &[u8]) -> Result<Applied, Refused> {
        self.refuse_if_log_down()?;
        let version = Version::new(self.store.next_version(self.id).counter(), 0);
        let rec = Record { op, flags: 0, version, key, value };
        let applied = self.store.apply(&rec, self.now_secs);
        if matches!(applied, Applied::Done { .. }) {
            self.log.stage(&rec);
            self.wrote = true;
        }
        Ok(applied)
    }

    /// A write from peer `from`'s link. `ordered` frames move the watermark.
    /// Returns the watermark of `from` to acknowledge with.
    pub fn peer_write(&mut self, from: u16, ordered: bool, rec: Record<'_>) -> Result<u64, Refused> {
        self.refuse_if_log_down()?;
        let rec = Record { flags: if ordered { FLAG_ORDERED } else { 0 }, ..rec };
        if let Applied::Done { .. } = self.store.apply(&rec, self.now_secs) {
            self.log.stage(&rec);
            self.cluster.note_applied(rec.version.node());
            self.wrote = true;
        }
        if ordered {
            self.cluster.advance(rec.version.node(), rec.version.counter());
        }
        Ok(self.cluster.watermark(from))
    }

    /// Peer `from` says this node now has all its writes up to `counter`.
    pub fn peer_synced(&mut self, from: u16, counter: u64) -> Result<u64, Refused> {
        self.refuse_if_log_down()?;
        self.store.observe(counter);
        self.cluster.advance(from, counter);
        let rec = Record { op: Op::Watermark, flags: 0, version: Version::new(counter, from), key: b"", value: b"" };
        self.log.stage(&rec);
        self.wrote = true;
        Ok(self.cluster.watermark(from))
    }

    /// The log took this iteration's writes.
    pub fn committed(&mut self) {
        self.store.commit();
        self.cluster.commit();
    }

    /// The log refused this iteration's writes: undo them everywhere.
    pub fn rolled_back(&mut self, why: String) {
        self.store.rollback();
        self.link_batch.clear();
        self.cluster.rollback();
        self.stats.log_write_errors += 1;
        log::error!("log write failed: {why}; this iteration's writes were rolled back and writes are refused for 1s");
        self.log_down = Some((Instant::now() + Duration::from_secs(1), why));
    }

    /// Starts a compaction unless one is under way. Returns whether it started.
    pub fn start_compaction(&mut self) -> Result<bool, String> {
        if self.compaction.is_some() {
            return Ok(false);
        }
        let mut head: Vec<Record<'static>> = self.cluster.watermark_records().collect();
        if self.store.floor() > Version(0) {
            head.push(Record { op: Op::FlushAll, flags: 0, version: self.store.floor(), key: b"", value: b"" });
        }
        self.log.begin_rewrite(&head).map_err(|e| format!("cannot start compaction: {e}"))?;
        log::info!(
            "compaction started: log {} bytes, live data {} bytes in {} keys",
            self.log.len(),
            self.store.data_bytes(),
            self.store.len()
        );
        self.compaction = Some(Compaction { cursor: Some(0), started: Instant::now() });
        Ok(true)
    }

    /// Whether the log has grown enough past the live data to compact.
    pub fn compaction_due(&self) -> bool {
        let m = self.cfg.compact_multiple;
        self.compaction.is_none()
            && m > 0.0
            && self.log.len() >= self.cfg.compact_min_bytes
            && self.log.len() as f64 > m * self.store.data_bytes() as f64
    }

    /// Seconds since start.
    pub fn uptime(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}

/// Seconds since the Unix epoch (tombstone stamps).
pub fn unix_now() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_secs().min(u64::from(u32::MAX)) as u32)
}
