//! What commands act on: the store, the log, the cluster, counters. The
//! server owns one [`Core`]; commands reach it through [`Core`]'s methods,
//! never through sockets.
//!
//! The invariant kept here: a write is applied to the store and staged in
//! the log in the same step, and its reply waits in the connection's output
//! until the server has committed the log (see `Server::before_sleep`).

pub mod cmd;
#[cfg(test)]
mod sim;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::repl::Cluster;
use crate::repl::link::{self as peer, LinkReply, LinkState};
use crate::storage::log::{AppendLog, LogConfig, ReplayStats};
use crate::storage::record::{FLAG_ORDERED, Op, Record, Version};
use crate::storage::store::{Applied, Store};

/// A catch-up scan adds frames only while the link's queue is below this.
pub const SYNC_HIGH_WATER: usize = 256 << 10;
/// Store slots a catch-up scan looks at per loop iteration.
pub const SYNC_CHUNK: usize = 8192;

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

    /// Opens the log in `cfg.dir` and rebuilds the store and the
    /// watermarks from it (see [`replay`]).
    pub fn open(cfg: Config, id: u16, now: Instant) -> Result<(Core, ReplayStats), String> {
        let peers: Vec<_> = cfg.peers.iter().copied().zip(cfg.peer_names.iter().cloned()).collect();
        let mut store = Store::new(!peers.is_empty());
        let mut cluster = Cluster::new(id, &peers, now);
        let log_cfg = LogConfig {
            dir: cfg.dir.clone(),
            fsync: cfg.fsync,
            truncate_corrupt: cfg.truncate_corrupt_log,
            max_record: max_record(&cfg),
        };
        let stamp = unix_now();
        store.set_journaling(false);
        let (log, stats) = AppendLog::open(&log_cfg, |rec| replay(&mut store, &mut cluster, rec, stamp))
            .map_err(|e| format!("cannot open the log: {e}"))?;
        store.set_journaling(true);
        store.sweep_fresh_tombstones();
        cluster.commit();
        let mut core = Core::new(cfg, id, store, log, cluster);
        core.stats.replayed = (stats.records, stats.elapsed);
        Ok((core, stats))
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
            if rec.op == Op::FlushAll {
                // The entries newer than a peer's FLUSHALL survive it in new
                // slots: a scan under way must start over or skip them.
                self.cluster.restart_scans();
            }
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

    /// Adds to link `li`'s queue `out` (of which `written` bytes are sent
    /// already) what it gets this loop iteration, once the log has the
    /// iteration's writes: their frames if the link is live or catching
    /// up; then, while catching up, a chunk of the scan of our own writes
    /// newer than the peer's watermark, and `REPL_SYNCED` once the scan is
    /// through. No I/O: the reactor writes `out`.
    pub fn feed_link(&mut self, li: usize, out: &mut Vec<u8>, written: usize, now: Instant) {
        let high_water = self.sync_high_water();
        let link = &mut self.cluster.links[li];
        if matches!(link.state, LinkState::Live | LinkState::Syncing { .. }) && !self.link_batch.is_empty() {
            out.extend_from_slice(&self.link_batch);
            link.sent = link.sent.max(self.link_batch_last);
        }
        let LinkState::Syncing { cursor } = link.state else { return };
        let store = &self.store;
        let mut i = cursor;
        let end = (cursor + SYNC_CHUNK).min(store.slots());
        // Checked before each slot, not after: a peer that does not read
        // must not get even one more frame per loop iteration.
        while i < end && out.len() - written < high_water {
            if let Some(s) = store.slot(i)
                && s.version.node() == self.id
                && s.version.counter() > link.from
            {
                let op = if s.value.is_some() { Op::Put } else { Op::Del };
                peer::frame(out, op, s.key, s.value.unwrap_or_default(), s.version);
                link.sync_records += 1;
            }
            i += 1;
        }
        if i >= store.slots() {
            link.sent = link.sent.max(store.clock());
            peer::synced(out, store.clock());
            link.sync_done(now);
        } else {
            link.state = LinkState::Syncing { cursor: i };
        }
    }

    /// The queue size below which a catch-up scan adds frames:
    /// [`SYNC_HIGH_WATER`], or half of `--peer-queue-limit` if that is less.
    /// A scan that could fill the queue past the limit by itself would have
    /// its link dropped and restarted from scratch, again and again: the
    /// peer would never catch up.
    pub fn sync_high_water(&self) -> usize {
        SYNC_HIGH_WATER.min(self.cfg.peer_queue_limit / 2)
    }

    /// Acts on one reply read from link `li`, appending to its queue `out`
    /// what the reply calls for. An error means the link must be dropped.
    pub fn link_reply(
        &mut self,
        li: usize,
        reply: LinkReply<'_>,
        out: &mut Vec<u8>,
        now: Instant,
    ) -> Result<(), String> {
        let link = &mut self.cluster.links[li];
        match reply {
            LinkReply::Hello { watermark, node } => {
                link.peer_id = Some(node);
                self.store.observe(watermark);
                link.handshake_done(watermark, now);
                // A FLUSHALL of ours the peer lacks goes first, once per
                // catch-up, before any live frame and before the scan (which
                // may start over, see `Cluster::restart_scans`, or stall at
                // its first slot while the queue is full).
                let floor = self.store.floor();
                if floor.node() == self.id && floor.counter() > watermark {
                    peer::frame(out, Op::FlushAll, b"", b"", floor);
                }
                Ok(())
            }
            LinkReply::Watermark(w) => {
                link.acked = link.acked.max(w);
                Ok(())
            }
            LinkReply::Error(msg) => Err(format!("peer refused: {}", String::from_utf8_lossy(msg))),
        }
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
        // Our own clock, so replay restores it even when the records that
        // carried its highest counters are gone (overwritten, or tombstones
        // swept): peers may hold it as our watermark (see `Server::start`).
        head.push(Record {
            op: Op::Watermark,
            flags: 0,
            version: Version::new(self.store.clock(), self.id),
            key: b"",
            value: b"",
        });
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

/// Replays one log record: the same apply as live and replicated writes,
/// plus what the record says about watermarks and the clock.
pub fn replay(store: &mut Store, cluster: &mut Cluster, rec: &Record<'_>, stamp: u32) {
    store.apply(rec, stamp);
    cluster.replayed(rec);
    // The clock must restart at least where it was: peers may hold a
    // watermark for us as high as any clock we ever announced (REPL_SYNCED),
    // and a write numbered at or below it would be skipped by their catch-up
    // for good. A watermark record (a peer's REPL_SYNCED, or the compaction
    // head, which also records our own clock) is the only record whose
    // counter `apply` does not observe.
    if rec.op == Op::Watermark {
        store.observe(rec.version.counter());
    }
}

/// The largest record the log may hold: a key and a value at their limits.
fn max_record(cfg: &Config) -> usize {
    cfg.limits.max_bulk.saturating_mul(2).saturating_add(64).min(u32::MAX as usize)
}

/// Seconds since the Unix epoch (tombstone stamps).
pub fn unix_now() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_secs().min(u64::from(u32::MAX)) as u32)
}
