//! The node's counters; the name/value pairs the text protocol's STATS
//! shows (INFO shows the Redis-named view, see [`super::cmd::info`]); and
//! the process figures INFO reports: memory, CPU time, instantaneous rates.
//!
//! Memory: the library does not know the allocator. The binary may give a
//! [`MemoryProbe`] ([`Node::set_memory_probe`]) that reads the allocator's
//! own figure; without one, `used_memory` is the resident set size, read
//! from `/proc/self/statm`. The peak is the allocator's, or the kernel's
//! peak RSS (`getrusage`).

use std::time::{Duration, Instant};

use super::Node;

/// Reads the allocator's memory in use and its peak, in bytes, if it can.
pub type MemoryProbe = fn() -> Option<(u64, u64)>;

/// Counters for STATS and INFO.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections open now (clients, inbound peers included).
    pub connected: usize,
    /// Connections accepted since start.
    pub total_connections: u64,
    /// Connections refused at the client limit.
    pub rejected_connections: u64,
    /// AUTH (or HELLO AUTH) with a wrong password.
    pub auth_failures: u64,
    /// Inbound peer links whose proof of the cluster secret was wrong.
    pub peer_auth_failures: u64,
    /// Peer frames refused from connections that had not proved the
    /// cluster secret (each closed).
    pub peer_frames_refused: u64,
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
    /// Leader mode: times this node's role changed (led, stopped leading).
    pub role_changes: u64,
    /// Leader mode: requests this follower forwarded to the leader.
    pub forwarded: u64,
    /// Compactions completed.
    pub compactions: u64,
    /// Log size before and after the last compaction, and its duration.
    pub last_compaction: Option<(u64, u64, Duration)>,
    /// Records replayed at start, and how long replay took.
    pub replayed: (u64, Duration),
    /// Bytes read from and written to client connections (inbound peer
    /// links included: they are clients that said REPLHELLO).
    pub net_input: u64,
    /// See `net_input`.
    pub net_output: u64,
    /// Bytes read from and written to this node's outbound peer links.
    pub net_repl_input: u64,
    /// See `net_repl_input`.
    pub net_repl_output: u64,
    /// Compactions ended, done or failed, since start: never reset, SAVE
    /// waits for it to move.
    pub rewrites_ended: u64,
    /// Whether the last compaction that ended succeeded (true before any).
    pub last_rewrite_ok: bool,
    /// Compactions failed in a row.
    pub rewrite_failures_in_a_row: u64,
    /// When the log last became compact (LASTSAVE): the end of the last
    /// compaction, or the start of the server; seconds since the epoch.
    pub last_save: u32,
    /// Writes since then (`rdb_changes_since_last_save`).
    pub writes_at_last_save: u64,
    /// The wall clock at start, in microseconds since the epoch: with the
    /// monotonic time since start, the wall clock of the current iteration
    /// (see [`Node::unix_micros`]).
    pub started_unix_us: u64,
    /// Rates over the last second or so.
    pub meter: Meter,
    /// This run's random id (INFO's `run_id`), 40 hex digits.
    pub run_id: String,
    /// The allocator's figures, if the binary gave a way to read them.
    pub memory_probe: Option<MemoryProbe>,
}

impl Stats {
    /// CONFIG RESETSTAT: the counters go back to 0; the state they sit
    /// beside (clients connected, the last save) does not.
    pub fn reset(&mut self) {
        self.total_connections = 0;
        self.rejected_connections = 0;
        self.auth_failures = 0;
        self.peer_auth_failures = 0;
        self.peer_frames_refused = 0;
        self.commands = 0;
        self.hits = 0;
        self.misses = 0;
        self.writes = 0;
        self.writes_at_last_save = 0;
        self.protocol_errors = 0;
        self.log_write_errors = 0;
        self.compactions = 0;
        self.net_input = 0;
        self.net_output = 0;
        self.net_repl_input = 0;
        self.net_repl_output = 0;
        self.meter = Meter::default();
    }

    /// A compaction ended (`ok`: it replaced the log) at `unix_secs`.
    pub(super) fn rewrite_ended(&mut self, ok: bool, unix_secs: u32) {
        self.rewrites_ended += 1;
        self.last_rewrite_ok = ok;
        if ok {
            self.rewrite_failures_in_a_row = 0;
            self.last_save = unix_secs;
            self.writes_at_last_save = self.writes;
        } else {
            self.rewrite_failures_in_a_row += 1;
        }
    }

    fn totals(&self) -> [u64; 3] {
        [self.commands, self.net_input, self.net_output]
    }
}

/// The wall clock now, in microseconds since the epoch (read once, at start).
pub fn unix_micros_now() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    since.as_micros().min(u128::from(u64::MAX)) as u64
}

/// A random run id of 40 hex digits, as Redis's: from the standard
/// library's randomly keyed hasher (no randomness crate for one id).
pub fn run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let keys = std::collections::hash_map::RandomState::new();
    let mut id = String::with_capacity(48);
    for i in 0..3u64 {
        let mut h = keys.build_hasher();
        h.write_u64(i);
        h.write_u32(std::process::id());
        id.push_str(&format!("{:016x}", h.finish()));
    }
    id.truncate(40);
    id
}

/// How many samples the meter keeps, and how far apart.
const SAMPLES: usize = 16;
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Instantaneous rates (commands, bytes in, bytes out per second), as
/// Redis reports them: from samples of the totals taken at least 100 ms
/// apart, over the last 1.6 s. Samples are taken at the end of loop
/// iterations, so an idle server takes none; the rates then cover the time
/// since the last sample, which is idle time.
#[derive(Debug, Default)]
pub struct Meter {
    ring: [Option<(Instant, [u64; 3])>; SAMPLES],
    next: usize,
}

impl Meter {
    /// Records `totals` at `now` if the last sample is 100 ms old.
    fn sample(&mut self, now: Instant, totals: [u64; 3]) {
        let last = self.ring[(self.next + SAMPLES - 1) % SAMPLES];
        if last.is_some_and(|(t, _)| now.saturating_duration_since(t) < SAMPLE_EVERY) {
            return;
        }
        self.ring[self.next] = Some((now, totals));
        self.next = (self.next + 1) % SAMPLES;
    }

    /// The rates per second from a sample to `totals` at `now`: the oldest
    /// of the last 1.6 s that is at least 100 ms old, or the newest older
    /// than that (after idle time). Never from a younger one: a span of
    /// microseconds would turn the one command at hand into a huge rate.
    pub fn rates(&self, now: Instant, totals: [u64; 3]) -> [f64; 3] {
        let window = SAMPLE_EVERY * SAMPLES as u32;
        let age = |t: Instant| now.saturating_duration_since(t);
        let old_enough = self.ring.iter().flatten().filter(|(t, _)| age(*t) >= SAMPLE_EVERY);
        let in_window = old_enough.clone().filter(|(t, _)| age(*t) <= window).min_by_key(|(t, _)| *t);
        let Some(&(t, then)) = in_window.or_else(|| old_enough.max_by_key(|(t, _)| *t)) else { return [0.0; 3] };
        let secs = age(t).as_secs_f64();
        let mut r = [0.0; 3];
        for i in 0..3 {
            r[i] = totals[i].saturating_sub(then[i]) as f64 / secs;
        }
        r
    }
}

/// Memory figures for INFO, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// The allocator's memory in use, or the RSS without a probe.
    pub used: u64,
    /// The resident set size.
    pub rss: u64,
    /// The peak of `used`.
    pub peak: u64,
    /// Whether `used` and `peak` are the allocator's.
    pub from_allocator: bool,
}

/// CPU seconds (user, system) of the process (`RUSAGE_SELF`), its children,
/// or the calling thread, as `getrusage` reports them.
pub fn cpu_seconds(who: libc::c_int) -> (f64, f64) {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `who` is one of the RUSAGE_ constants.
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        return (0.0, 0.0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(ru.ru_utime), secs(ru.ru_stime))
}

/// The peak resident set size (`getrusage`'s `ru_maxrss`, KiB on Linux).
fn peak_rss() -> u64 {
    // SAFETY: as in `cpu_seconds`.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0;
    }
    (ru.ru_maxrss.max(0) as u64).saturating_mul(1024)
}

/// The resident set size, from `/proc/self/statm` (0 where there is none).
pub fn rss() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else { return 0 };
    let pages = statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages.saturating_mul(page.max(0) as u64)
}

/// The machine's memory, from `/proc/meminfo` (0 if unknown).
pub fn total_system_memory() -> u64 {
    let Ok(info) = std::fs::read_to_string("/proc/meminfo") else { return 0 };
    info.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map_or(0, |kb| kb.saturating_mul(1024))
}

impl Node {
    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Gives the node a way to read the allocator's figures for INFO.
    pub fn set_memory_probe(&mut self, probe: MemoryProbe) {
        self.stats.memory_probe = Some(probe);
    }

    /// The driver read `n` bytes from a client connection, or from a peer
    /// link (`repl`).
    #[inline]
    pub fn count_input(&mut self, n: usize, repl: bool) {
        let c = if repl { &mut self.stats.net_repl_input } else { &mut self.stats.net_input };
        *c += n as u64;
    }

    /// The driver wrote `n` bytes to a client connection, or to a peer link
    /// (`repl`).
    #[inline]
    pub fn count_output(&mut self, n: usize, repl: bool) {
        let c = if repl { &mut self.stats.net_repl_output } else { &mut self.stats.net_output };
        *c += n as u64;
    }

    /// Takes a sample for the instantaneous rates (at most every 100 ms).
    pub(super) fn sample_rates(&mut self, now: Instant) {
        let totals = self.stats.totals();
        self.stats.meter.sample(now, totals);
    }

    /// Commands, input and output bytes per second, lately.
    pub fn rates(&self) -> [f64; 3] {
        self.stats.meter.rates(self.now, self.stats.totals())
    }

    /// The wall clock of the current iteration, in microseconds since the
    /// epoch (TIME, MONITOR): the wall clock at start plus the monotonic
    /// time since. Should the two clocks part (the wall clock was set), the
    /// driver's seconds ([`Node::set_time`]) win.
    pub fn unix_micros(&self) -> u64 {
        let since = self.now.saturating_duration_since(self.started).as_micros();
        let us = self.stats.started_unix_us.saturating_add(since.min(u128::from(u64::MAX)) as u64);
        if (us / 1_000_000).abs_diff(u64::from(self.now_secs)) > 1 { u64::from(self.now_secs) * 1_000_000 } else { us }
    }

    /// Memory figures, read now.
    pub fn memory(&self) -> Memory {
        let rss = rss();
        match self.stats.memory_probe.and_then(|p| p()) {
            Some((used, peak)) => Memory { used, rss, peak: peak.max(used), from_allocator: true },
            None => Memory { used: rss, rss, peak: peak_rss().max(rss), from_allocator: false },
        }
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
            ("auth_failures".into(), s.auth_failures.to_string()),
            ("peer_auth_failures".into(), s.peer_auth_failures.to_string()),
            ("peer_frames_refused".into(), s.peer_frames_refused.to_string()),
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
        if let Some(e) = self.election() {
            v.push(("role".into(), e.role.name().into()));
            v.push(("leader_id".into(), e.leader.map_or("none".into(), |l| l.to_string())));
            v.push(("epoch".into(), e.epoch.to_string()));
            v.push(("commit_index".into(), self.commit_point().to_string()));
            v.push(("elections_started".into(), e.started.to_string()));
            v.push(("elections_won".into(), e.won.to_string()));
            v.push(("role_changes".into(), s.role_changes.to_string()));
            v.push(("forwarded".into(), s.forwarded.to_string()));
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
            if self.leader_mode() {
                let age = l
                    .votes
                    .heard
                    .map_or("never".into(), |h| self.now.saturating_duration_since(h).as_millis().to_string());
                v.push((format!("{p}.heartbeat_age_ms"), age));
                v.push((format!("{p}.epoch"), l.votes.epoch.to_string()));
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_cover_the_last_samples_and_fall_to_zero_when_idle() {
        let t0 = Instant::now();
        let mut m = Meter::default();
        assert_eq!(m.rates(t0, [5, 0, 0]), [0.0; 3], "no sample yet");
        // 1000 commands every 100 ms for 2 s.
        for i in 0..=20u32 {
            m.sample(t0 + SAMPLE_EVERY * i, [u64::from(i) * 1000, u64::from(i) * 10, 0]);
        }
        // Too soon after the last: not taken.
        m.sample(t0 + SAMPLE_EVERY * 20 + Duration::from_millis(1), [1, 1, 1]);
        let now = t0 + SAMPLE_EVERY * 20;
        let r = m.rates(now, [20_000, 200, 0]);
        assert!((r[0] - 10_000.0).abs() < 1.0 && (r[1] - 100.0).abs() < 0.1 && r[2] == 0.0, "{r:?}");
        // Right after a sample, one command more is not a burst.
        let r = m.rates(now + Duration::from_micros(50), [20_001, 200, 0]);
        assert!((r[0] - 10_000.0).abs() < 10.0, "{r:?}");
        // Ten idle seconds later (no samples: no loop iterations), one command.
        let r = m.rates(now + Duration::from_secs(10), [20_001, 200, 0]);
        assert!(r[0] < 1.0, "{r:?}");
    }

    #[test]
    fn reset_keeps_state_and_a_failed_rewrite_keeps_the_last_save() {
        let mut s = Stats { connected: 3, commands: 9, writes: 4, last_save: 100, ..Stats::default() };
        s.rewrite_ended(false, 200);
        assert_eq!((s.last_save, s.rewrite_failures_in_a_row, s.last_rewrite_ok), (100, 1, false));
        s.rewrite_ended(true, 300);
        assert_eq!((s.last_save, s.writes_at_last_save, s.rewrite_failures_in_a_row), (300, 4, 0));
        s.reset();
        assert_eq!((s.connected, s.commands, s.last_save, s.rewrites_ended), (3, 0, 300, 2));
    }

    #[test]
    fn process_figures_are_read() {
        assert!(rss() > 0 && total_system_memory() > rss());
        let (user, sys) = cpu_seconds(libc::RUSAGE_SELF);
        assert!(user >= 0.0 && sys >= 0.0 && user + sys > 0.0);
    }
}
