//! The node: everything a kvstore server is, except its sockets.
//!
//! The reactor ([`crate::server`]) and the test simulation drive a [`Node`]
//! the same way (raft-rs's shape: the node says what to do, the driver does
//! it and reports back):
//!
//! - [`Node::process`] takes a connection's input and its [`Session`] and
//!   appends the replies to its output: parse, execute, reply, for every
//!   complete request ([`pipeline`]); one request is [`Node::handle`];
//! - the driver registers each client connection ([`Node::client_connected`],
//!   which gives its [`Session`]), reports after each batch what it needs
//!   for CLIENT LIST ([`Node::client_seen`]) and closes the connections the
//!   node names ([`Node::take_kills`], CLIENT KILL); see [`clients`];
//! - [`Node::before_sleep`] ends a loop iteration: a compaction chunk, then
//!   the log commit. Its [`Ready`] says what the commit did (so the driver
//!   releases or retracts the replies that waited for it), which peer
//!   connections to open, and which blocked clients (WAIT, SAVE) have
//!   their answer; the driver then appends the iteration's MONITOR lines
//!   ([`Node::monitor_feed`]);
//! - then [`Node::feed_link`] appends to each peer connection's output what
//!   the peer gets (the iteration's writes, now logged; a catch-up chunk),
//!   or says to drop it;
//! - the driver reports what happened to peer connections
//!   ([`Node::link_connected`], [`Node::link_input`], [`Node::link_failed`],
//!   [`Node::link_queued`]) and calls [`Node::advance`] after writing its
//!   sockets, which does the housekeeping and says when the node next needs
//!   a turn.
//!
//! Like replies, a peer's bytes are appended to the output buffer the
//! driver lends: the node never holds a copy of them.
//!
//! The node does no network I/O and reads no clock but once at start (the
//! wall clock, which TIME and MONITOR follow with the monotonic time):
//! time comes in through [`Node::set_time`] and the `now` arguments. The
//! wall clock given to `set_time` is the store's time for the whole
//! iteration: every command of it judges deadlines by the same instant, and
//! computes relative ones (EX, PX) from it. INFO reads the process's
//! figures (`/proc`, `getrusage`) when asked. Its storage is the log file
//! (whose fsync and compaction helpers run on their own threads, see
//! [`crate::storage::log`]).
//!
//! The invariant kept here: a write is applied to the store and staged in
//! the log in the same step ([`mod@write`]), and its reply waits in the
//! connection's output until [`Node::before_sleep`] has committed the log.

pub mod clients;
pub mod cmd;
mod compaction;
pub mod leader;
pub mod pipeline;
pub mod security;
pub mod session;
#[cfg(test)]
mod sim;
pub mod stats;
pub mod write;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use self::clients::{Clients, Target};
use self::compaction::Compaction;
use self::pipeline::Lookahead;
pub use self::pipeline::Processed;
pub use self::session::Session;
use self::stats::Stats;
use crate::config::Config;
use crate::proto::Argv;
use crate::repl::{Fed, Replicator};
use crate::storage::log::{AppendLog, LogConfig, ReplayStats};
use crate::storage::record::{Op, Record};
use crate::storage::store::Store;

/// How often `--timeout` looks for idle clients (Redis's clients cron runs
/// about as often).
const IDLE_CHECK_EVERY: Duration = Duration::from_secs(1);
/// How often expired tombstones are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Keys active expiry takes in one step, at most (the ones due first): some
/// 0.2 to 0.5 ms of work (measured, thread CPU time, 1M keys due at once),
/// so no client waits long for a step.
const EXPIRE_BATCH: usize = 1000;

/// The pause between two steps of active expiry while keys are due, however
/// often the loop turns: the loop sleeps (or serves clients) in between, so
/// expiry takes at most about a quarter of a core, as Redis's active expire
/// cycle bounds itself. A server that never sleeps competes for the CPU
/// with everything else on the machine and is preempted mid-iteration
/// (measured: 4 ms stalls on a loaded 2-core machine while steps ran back to
/// back); with the pause, a million keys due in the same millisecond are
/// reclaimed in about 1.3 s.
const EXPIRE_PAUSE: Duration = Duration::from_millis(1);

/// What became of the log commit at the end of a loop iteration.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum Commit {
    /// Nothing was staged.
    #[default]
    Nothing,
    /// The log has every write of the iteration (on disk, under `--fsync
    /// always`): the replies that waited for it may leave.
    Done,
    /// The log could not take them; they were rolled back. Every reply that
    /// waited for this commit must become this error, and its connection be
    /// closed (what followed it in a pipeline may have depended on it).
    Failed(String),
}

/// What [`Node::before_sleep`] asks of its driver.
#[derive(Debug, Default)]
pub struct Ready {
    /// The log commit.
    pub commit: Commit,
    /// Peer links whose connections to open now: report
    /// [`Node::link_connected`] or [`Node::link_failed`].
    pub connect: Vec<usize>,
    /// Blocked clients (WAIT, SAVE) whose answer is ready: append it with
    /// [`Node::finish_blocked`], then resume processing their input.
    pub unblocked: Vec<Target>,
}

/// The node. See the module docs.
pub struct Node {
    cfg: Config,
    id: u16,
    store: Store,
    log: AppendLog,
    repl: Replicator,
    stats: Stats,
    started: Instant,
    /// The time of the current loop iteration (see [`Node::set_time`]).
    now: Instant,
    /// Seconds since the epoch, for tombstone stamps.
    now_secs: u32,
    /// A copy of a value that a write re-writes (EXPIRE): kept, so that it
    /// allocates only while it grows.
    value_copy: Vec<u8>,
    /// Set when a write was staged during the current command: its reply
    /// then waits for the log commit.
    wrote: bool,
    /// While set (until the instant), the log has failed and writes are refused.
    log_down: Option<(Instant, String)>,
    compaction: Option<Compaction>,
    next_sweep: Instant,
    /// When `--timeout` next looks for idle clients.
    next_idle_check: Instant,
    /// When a wrong password was last logged (they are logged at most once a second).
    last_auth_log: Option<Instant>,
    /// Likewise for peers' refusals (a wrong proof of the cluster secret, a
    /// peer frame without one), apart, so that neither kind hides the other.
    last_peer_auth_log: Option<Instant>,
    /// Every client connection, and what to do with them (see [`clients`]).
    clients: Clients,
    /// Active expiry's next step is not before this (see [`EXPIRE_PAUSE`]).
    next_expire: Instant,
    /// Reused by [`Node::process`]: the arguments of the request at hand ...
    argv: Argv,
    /// ... and the requests its look-ahead already parsed.
    ahead: Lookahead,
    /// Loop iterations so far (see [`leader::Wait::iteration`]).
    iteration: u64,
    /// Leader mode: where the epoch and vote are persisted.
    election_path: Option<std::path::PathBuf>,
    /// Leader mode, leading: the store's clock at the last log commit (the
    /// highest counter of its writes that its own log has).
    own_logged: u64,
    /// Leader mode: the peers whose catch-up scan to us completed on their
    /// current link (we may take over from a lower leader among them).
    synced_peers: Vec<u16>,
    /// Leader mode, leading: the counter of its last write this leadership.
    leader_wrote: u64,
    /// Leader mode: the command that ran made a write of its own (a
    /// client's, not a peer's frame).
    local_wrote: bool,
    /// Leader mode, leading: the command that ran was a linearizable read.
    read_barrier: bool,
    /// Leader mode: the last forward id given.
    next_forward: u64,
    /// Forwarded requests answered this iteration, for `Ready::unblocked`.
    forward_ready: Vec<Target>,
    /// Reused by link input: the forwards it answered.
    forwarded: Vec<crate::repl::Forwarded>,
}

impl Node {
    /// Opens the log in `cfg.dir` and rebuilds the store and the watermarks
    /// from it, judging deadlines by the wall clock. Errors are messages for
    /// a person.
    pub fn open(cfg: Config, id: u16, now: Instant) -> Result<(Node, ReplayStats), String> {
        Node::open_at(cfg, id, now, unix_now())
    }

    /// As [`Node::open`], with `unix_ms` the wall clock (milliseconds since
    /// the epoch; see [`Node::set_time`]) that replay judges deadlines by.
    pub fn open_at(cfg: Config, id: u16, now: Instant, unix_ms: u64) -> Result<(Node, ReplayStats), String> {
        let peers: Vec<_> = cfg.peers.iter().copied().zip(cfg.peer_names.iter().cloned()).collect();
        let mut store = Store::new(!peers.is_empty());
        let mut repl = Replicator::new(id, &peers, cfg.peer_queue_limit, now);
        repl.set_cluster_secret(cfg.cluster_secret.as_deref());
        let log_cfg = LogConfig {
            dir: cfg.dir.clone(),
            fsync: cfg.fsync,
            truncate_corrupt: cfg.truncate_corrupt_log,
            max_record: max_record(&cfg),
        };
        let stamp = unix_secs(unix_ms);
        // Replay judges deadlines by the time of the start: a key whose
        // deadline passed while the server was down is gone.
        store.set_now(unix_ms);
        store.set_journaling(false);
        let (log, replay) = AppendLog::open(&log_cfg, |rec| replay_record(&mut store, &mut repl, rec, stamp))
            .map_err(|e| format!("cannot open the log: {e}"))?;
        store.set_journaling(true);
        store.sweep_fresh_tombstones();
        repl.committed();
        let stats = Stats {
            replayed: (replay.records, replay.elapsed),
            last_save: stamp,
            last_rewrite_ok: true,
            started_unix_us: stats::unix_micros_now(),
            run_id: stats::run_id(),
            ..Stats::default()
        };
        let node = Node {
            cfg,
            id,
            store,
            log,
            repl,
            stats,
            started: now,
            now,
            now_secs: stamp,
            value_copy: Vec::new(),
            wrote: false,
            log_down: None,
            compaction: None,
            next_sweep: now + SWEEP_EVERY,
            last_auth_log: None,
            last_peer_auth_log: None,
            next_idle_check: now,
            clients: Clients::default(),
            next_expire: now,
            argv: Argv::new(),
            ahead: Lookahead::default(),
            iteration: 0,
            election_path: None,
            own_logged: 0,
            leader_wrote: 0,
            synced_peers: Vec::new(),
            read_barrier: false,
            local_wrote: false,
            next_forward: 0,
            forward_ready: Vec::new(),
            forwarded: Vec::new(),
        };
        let mut node = node;
        node.open_election(now)?;
        Ok((node, replay))
    }

    /// Sets the time of this loop iteration: `now`, and `unix_ms`, the
    /// wall clock in milliseconds since the epoch (see [`unix_now`]), which
    /// deadlines are judged by until the next call.
    pub fn set_time(&mut self, now: Instant, unix_ms: u64) {
        self.now = now;
        self.now_secs = unix_secs(unix_ms);
        self.store.set_now(unix_ms);
    }

    /// The end of a loop iteration, before the driver writes its sockets:
    /// writes a chunk of a running compaction's snapshot and commits the log
    /// (only then may replies leave). See [`Ready`] for what the driver must
    /// do next, then [`Node::feed_link`].
    pub fn before_sleep(&mut self, now: Instant, ready: &mut Ready) {
        self.now = now;
        self.compaction_step();
        ready.commit = self.commit_log();
        if self.leader_mode() {
            self.election_tick(now);
        }
        self.repl.before_sleep(now, &mut ready.connect);
        self.settle_blocked(now, &mut ready.unblocked);
        self.sample_rates(now);
        if !self.cfg.timeout.is_zero() && now >= self.next_idle_check {
            self.next_idle_check = now + IDLE_CHECK_EVERY;
            self.clients.kill_idle(now, self.cfg.timeout);
        }
    }

    /// After [`Node::before_sleep`], for each peer link with a connection:
    /// appends to `out`, its output (of which `written` bytes are sent), the
    /// iteration's logged writes and a catch-up chunk; or says to drop it.
    pub fn feed_link(&mut self, li: usize, out: &mut Vec<u8>, written: usize, now: Instant) -> Fed {
        self.repl.feed(li, &self.store, out, written, now)
    }

    /// After the driver wrote its sockets: finishes or starts compactions,
    /// expires keys whose deadline passed (a bounded step, see
    /// `EXPIRE_BATCH` and `EXPIRE_PAUSE`) and reclaims tombstones.
    /// Returns when the node next needs a turn with no event: `now` if it
    /// has work waiting, `None` if never; the next deadline and the next
    /// step of expiry count, so an idle server still reclaims expired keys
    /// on time.
    pub fn advance(&mut self, now: Instant) -> Option<Instant> {
        self.now = now;
        self.iteration += 1;
        self.repl.end_iteration();
        self.compaction_poll();
        let scanning = self.compaction.is_some() || self.repl.scanning();
        // Without peers expiry frees entries, which moves slots: not while
        // a scan walks them (reads hide the keys meanwhile).
        let can_expire = self.repl.has_peers() || !scanning;
        if can_expire && now >= self.next_expire {
            self.store.expire_due(EXPIRE_BATCH, !scanning);
            if self.store.has_due() {
                self.next_expire = now + EXPIRE_PAUSE;
            }
        }
        if !scanning {
            self.store.sweep_fresh_tombstones();
            if now >= self.next_sweep {
                self.next_sweep = now + SWEEP_EVERY;
                let grace = self.cfg.tombstone_grace.as_secs().min(u64::from(u32::MAX)) as u32;
                let freed = self.store.sweep_expired(self.now_secs.saturating_sub(grace));
                if freed > 0 {
                    log::info!("reclaimed {freed} tombstones older than {:?}", self.cfg.tombstone_grace);
                }
            }
        }
        if self.compaction_due()
            && let Err(e) = self.start_compaction()
        {
            log::error!("{e}");
        }
        if self.compaction_busy() || self.repl.busy() {
            return Some(now);
        }
        let mut deadline = self.next_sweep;
        if !self.cfg.timeout.is_zero() && self.stats.connected > 0 {
            deadline = deadline.min(self.next_idle_check);
        }
        if can_expire
            && let Some(d) = self.store.next_deadline()
            && let Some(t) = now.checked_add(Duration::from_millis(d.saturating_sub(self.store.now_ms())))
        {
            deadline = deadline.min(t.max(self.next_expire));
        }
        if let Some(d) = self.repl.deadline() {
            deadline = deadline.min(d);
        }
        if let Some(e) = self.repl.election.as_ref() {
            deadline = deadline.min(e.deadline().max(now));
        }
        if let Some(d) = self.blocked_deadline() {
            deadline = deadline.min(d);
        }
        if self.compaction.is_some() {
            // The file switch runs on a helper thread: look again soon.
            deadline = deadline.min(now + Duration::from_millis(5));
        }
        Some(deadline)
    }

    /// Stops: abandons a compaction under way and fsyncs the log.
    pub fn shutdown(&mut self) -> Result<(), String> {
        if self.compaction.is_some() {
            self.log.abort_rewrite();
        }
        self.log.sync_all().map_err(|e| format!("cannot fsync the log at shutdown: {e}"))?;
        log::info!("log synced ({} bytes, {} keys); bye", self.log.len(), self.store.len());
        Ok(())
    }

    // ------------------------------------------------------- peer links

    /// The connection the driver opened for link `li` is up; `out` is its
    /// output (the handshake goes there).
    pub fn link_connected(&mut self, li: usize, out: &mut Vec<u8>) {
        self.repl.link_connected(li, out);
    }

    /// Link `li`'s connection failed or closed (`why` is for the log).
    pub fn link_failed(&mut self, li: usize, now: Instant, why: &str) {
        let mut answered = std::mem::take(&mut self.forwarded);
        self.repl.link_failed(li, now, why, &mut answered);
        self.forwards_answered(&mut answered);
        self.forwarded = answered;
    }

    /// The driver holds `bytes` not yet written on link `li`'s connection.
    pub fn link_queued(&mut self, li: usize, bytes: usize) {
        self.repl.link_queued(li, bytes);
    }

    /// Bytes read from link `li`'s connection, whose output is `out`:
    /// returns how many were used, or why the link must be dropped (it is
    /// already counted as failed).
    pub fn link_input(&mut self, li: usize, input: &[u8], out: &mut Vec<u8>, now: Instant) -> Result<usize, String> {
        let mut answered = std::mem::take(&mut self.forwarded);
        let r = self.repl.link_input(li, input, out, &mut self.store, now, &mut answered);
        if !answered.is_empty() {
            self.forwards_answered(&mut answered);
        }
        self.forwarded = answered;
        if self.leader_mode() {
            self.election_events();
        }
        r
    }

    /// How many peer links there are (link indices are `0..links()`).
    pub fn links(&self) -> usize {
        self.repl.links.len()
    }

    // -------------------------------------------------------- accessors

    /// Whether `session` must still give the password (one is set and it
    /// has not).
    #[inline]
    pub fn needs_auth(&self, session: &Session) -> bool {
        !session.authenticated && self.cfg.requirepass.is_some()
    }

    /// The configuration.
    pub fn cfg(&self) -> &Config {
        &self.cfg
    }

    /// This node's id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The keyspace.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The replicator (links and watermarks), for inspection.
    pub fn repl(&self) -> &Replicator {
        &self.repl
    }

    /// The log, for tools that manage it directly (the benches swap it for
    /// an empty one between timed stretches).
    pub fn log_mut(&mut self) -> &mut AppendLog {
        &mut self.log
    }

    /// The log.
    pub fn log(&self) -> &AppendLog {
        &self.log
    }

    /// Seconds since start.
    pub fn uptime(&self) -> u64 {
        self.now.saturating_duration_since(self.started).as_secs()
    }
}

/// Replays one log record at start: the same apply as live and replicated
/// writes, plus what the record says about watermarks and the clock.
fn replay_record(store: &mut Store, repl: &mut Replicator, rec: &Record<'_>, stamp: u32) {
    store.apply(rec, stamp);
    repl.progress.replayed(rec);
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

/// Milliseconds since the Unix epoch, for drivers to pass to
/// [`Node::set_time`]: the time deadlines are judged by.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whole seconds of `unix_ms`, as tombstones are stamped.
fn unix_secs(unix_ms: u64) -> u32 {
    (unix_ms / 1000).min(u64::from(u32::MAX)) as u32
}
