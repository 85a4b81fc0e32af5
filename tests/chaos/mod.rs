//! The fault harness: real kvstore-server processes ([`nodes`]) whose peer
//! links go through a test-controlled proxy ([`proxy`]), a seeded schedule
//! of faults ([`schedule`]: partitions, one-way blackholes, delays, resets,
//! kill -9 and restart, SIGSTOP/SIGCONT), clients that record a history
//! ([`workload`], [`history`]), and checkers run once the faults heal:
//! convergence (here), linearizability ([`linearizable`]) and the
//! multi-master promise ([`lww`]).
//!
//! A run is a function of its [`Config`]: its seed draws the schedule and
//! every client's choices; the seed is in every failure message, and
//! `KV_CHAOS_SEED=<seed>` replays it. The schedule's hold times are real
//! time (a fault is held that long while clients run): they are the
//! experiment, not a wait for a condition, which is always polled.
#![allow(dead_code)]

pub mod history;
pub mod linearizable;
pub mod lww;
pub mod nodes;
pub mod proxy;
pub mod rng;
pub mod schedule;
pub mod workload;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use history::{Kind, Op};
use nodes::Nodes;
use rng::Rng;
use workload::{Conn, Proto, Workload};

/// Which promise a run checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Today's replication: last writer wins. Convergence and no
    /// acknowledged write lost unless superseded ([`lww`], not strict).
    Multi,
    /// `--election bully --acks majority`: linearizable, and convergence.
    Leader,
    /// One node, `--fsync always`: linearizable across kill -9.
    Single,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "multi" => Some(Mode::Multi),
            "leader" => Some(Mode::Leader),
            "single" => Some(Mode::Single),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Multi => "multi",
            Mode::Leader => "leader",
            Mode::Single => "single",
        }
    }

    /// Whether the history must be linearizable.
    pub fn linearizable(self) -> bool {
        self != Mode::Multi
    }
}

/// One run.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub seed: u64,
    pub nodes: usize,
    /// Each node's options besides port, peers, `--dir` and `--id`.
    pub node_args: Vec<String>,
    pub workload: Workload,
    /// Faults in the schedule.
    pub steps: usize,
    /// How long the nodes may take to converge once healed.
    pub converge_within: Duration,
    /// Search steps the linearizability checker may take per key.
    pub lin_step_limit: u64,
    /// Restart killed nodes on an empty data dir (the harness's self-test).
    pub wipe_on_restart: bool,
}

impl Config {
    /// The CI size of `mode`: a few seconds of faults.
    pub fn small(mode: Mode, seed: u64) -> Config {
        // A small --compact-min-bytes: compactions run (and are killed) during the schedule.
        let mut node_args = vec!["--compact-min-bytes".to_string(), "65536".to_string()];
        let (nodes, mode_args): (usize, &[&str]) = match mode {
            Mode::Multi => (3, &[]),
            // Timeouts as tests/leader.rs's: short for tests, long enough for a loaded 2-core machine.
            Mode::Leader => (
                3,
                &["--election", "bully", "--acks", "majority", "--heartbeat-ms", "50", "--election-timeout-ms", "400"],
            ),
            Mode::Single => (1, &["--fsync", "always"]),
        };
        node_args.extend(mode_args.iter().map(|s| s.to_string()));
        Config {
            mode,
            seed,
            nodes,
            node_args,
            workload: Workload { clients: 4, keys: 8, cold_percent: 30, timeout: Duration::from_millis(500) },
            steps: 8,
            converge_within: Duration::from_secs(30),
            lin_step_limit: 5_000_000,
            wipe_on_restart: false,
        }
    }

    /// The size scripts/chaos.sh runs by hand; `KV_CHAOS_STEPS`,
    /// `KV_CHAOS_CLIENTS` and `KV_CHAOS_KEYS` override.
    pub fn large(mode: Mode, seed: u64) -> Config {
        let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
        let mut c = Config::small(mode, seed);
        c.steps = env("KV_CHAOS_STEPS", 20);
        c.workload.clients = env("KV_CHAOS_CLIENTS", 6);
        c.workload.keys = env("KV_CHAOS_KEYS", 16);
        c
    }
}

/// What one run found.
#[derive(Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub schedule: String,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    pub ops: usize,
    pub acked: usize,
    pub unknown: usize,
    pub failed: usize,
    /// Acknowledged writes the no-lost-write check looked at.
    pub writes_checked: usize,
    /// Operations the linearizability checker looked at (0: not checked).
    pub lin_ops: usize,
    /// Keys whose linearizability search gave up.
    pub lin_gave_up: usize,
    pub violations: Vec<String>,
    /// Acknowledged writes lost (among the violations).
    pub lost: usize,
    /// Real-time inversions that last writer wins allows (multi-master).
    pub inversions: usize,
    /// The first few of them, to show what they are.
    pub inversion_samples: Vec<String>,
    /// From the heal to the same keyspace everywhere.
    pub converged_in: Option<Duration>,
    /// Leader mode: epochs some node led, as the logs say.
    pub epochs: usize,
    /// Compactions started and finished, as the logs say (the difference
    /// were cut short, by kill -9 mostly).
    pub compactions: usize,
    pub compactions_done: usize,
}

impl Report {
    /// The failure message: seed, how to replay, schedule, violations.
    pub fn failure(&self, test: &str) -> String {
        let mut s = format!(
            "chaos seed {} found {} violation(s); replay: KV_CHAOS_SEED={} cargo test --test chaos {test}\nschedule:\n{}",
            self.seed,
            self.violations.len(),
            self.seed,
            self.schedule
        );
        for v in self.violations.iter().take(10) {
            let _ = writeln!(s, "- {v}");
        }
        s
    }
}

/// Runs one schedule and checks its history.
#[track_caller]
pub fn run(cfg: &Config) -> Report {
    let mut rng = Rng::new(cfg.seed);
    let mut steps = schedule::draw(&mut rng, cfg.nodes, cfg.steps);
    // KV_CHAOS_FAULTS=kill-9,pause keeps only those kinds (to narrow a failure down).
    if let Ok(kinds) = std::env::var("KV_CHAOS_FAULTS") {
        steps.retain(|s| kinds.split(',').any(|k| k.trim() == s.fault.kind()));
    }
    let mut report = Report { seed: cfg.seed, schedule: schedule::describe(&steps), ..Report::default() };
    let mut nodes = Nodes::start(cfg.nodes, &cfg.node_args);
    nodes.wipe_on_restart = cfg.wipe_on_restart;
    let origin = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let clients = workload::spawn(&cfg.workload, &nodes.ports, &mut rng, origin, &stop);
    for step in &steps {
        *report.faults.entry(step.fault.kind()).or_default() += 1;
        step.fault.inject(&mut nodes);
        std::thread::sleep(step.hold);
        step.fault.heal(&mut nodes);
        std::thread::sleep(step.gap);
    }
    stop.store(true, Ordering::SeqCst);
    let mut history: Vec<Op> = clients.into_iter().flat_map(|c| c.join().expect("client thread")).collect();
    nodes.heal();
    let healed = Instant::now();
    report.violations.extend(nodes.crashed());

    let final_state = match converge(&nodes, cfg.converge_within) {
        Ok(state) => {
            report.converged_in = Some(healed.elapsed());
            state
        }
        Err(diff) => {
            report.violations.push(format!("no convergence within {:?} of the heal: {diff}", cfg.converge_within));
            keyspace(nodes.ports[0].load(Ordering::SeqCst)).unwrap_or_default()
        }
    };
    if cfg.mode.linearizable() {
        let unanswered = final_reads(&mut history, &nodes, origin);
        report.violations.extend(unanswered);
    }
    report.ops = history.len();
    report.acked = history.iter().filter(|o| o.acked()).count();
    report.unknown = history.iter().filter(|o| o.unknown()).count();
    report.failed = history.iter().filter(|o| o.failed()).count();

    let lww = lww::check(&history, &final_state, cfg.mode.linearizable());
    report.writes_checked = lww.acked_writes;
    report.lost = lww.lost;
    report.inversions = lww.inversions.len();
    report.inversion_samples = lww.inversions.iter().take(3).cloned().collect();
    report.violations.extend(lww.violations);
    let lines = log_lines(&nodes);
    report.compactions = lines.iter().filter(|l| l.contains("compaction started")).count();
    report.compactions_done = lines.iter().filter(|l| l.contains("compaction done")).count();
    if cfg.mode == Mode::Leader {
        let (epochs, twice) = leaders_per_epoch(&nodes);
        report.epochs = epochs;
        report.violations.extend(twice);
    }
    if cfg.mode.linearizable() {
        let lin = linearizable::check(&history, cfg.lin_step_limit);
        report.lin_ops = lin.ops;
        report.lin_gave_up = lin.gave_up.len();
        report.violations.extend(lin.violations);
    }
    if !report.violations.is_empty() && !cfg.wipe_on_restart {
        let path = std::env::temp_dir().join(format!("kvstore-chaos-{}-{}.history", cfg.mode.name(), cfg.seed));
        let mut sorted: Vec<&Op> = history.iter().collect();
        sorted.sort_by_key(|o| o.call);
        let text: String = sorted.iter().map(|o| format!("{o}\n")).collect();
        if std::fs::write(&path, text).is_ok() {
            report.violations.push(format!("the whole history is in {}", path.display()));
        }
    }
    report
}

/// Leader mode: from every log each node wrote (one per start), the
/// epochs led and a violation for each epoch two nodes say they led.
fn leaders_per_epoch(nodes: &Nodes) -> (usize, Vec<String>) {
    let mut led: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for line in log_lines(nodes) {
        let Some((_, rest)) = line.split_once("election: node ") else { continue };
        let Some((id, rest)) = rest.split_once(" leads epoch ") else { continue };
        let Some(epoch) = rest.split(' ').next().and_then(|e| e.parse().ok()) else { continue };
        let ids = led.entry(epoch).or_default();
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
        }
    }
    let twice = led
        .iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|(e, ids)| format!("epoch {e} had {} leaders: nodes {}", ids.len(), ids.join(", ")))
        .collect();
    (led.len(), twice)
}

/// Every line of every log the nodes wrote (one file per start).
fn log_lines(nodes: &Nodes) -> Vec<String> {
    let mut lines = Vec::new();
    for s in &nodes.servers {
        let Ok(dir) = std::fs::read_dir(&s.dir) else { continue };
        for f in dir.flatten().filter(|f| f.file_name().to_string_lossy().starts_with("server-")) {
            lines.extend(std::fs::read_to_string(f.path()).unwrap_or_default().lines().map(String::from));
        }
    }
    lines
}

/// A GET of every key the history touched, through every node, once all is
/// healed and converged: the history's last word on each key. A read may
/// meet a leadership change still under way (Bully's take-over by a node
/// restarted near the end): its unknown outcome is recorded and the read
/// tried again on a new connection, until a deadline; a key still
/// unanswered then is a violation, since every node is up and connected.
fn final_reads(history: &mut Vec<Op>, nodes: &Nodes, origin: Instant) -> Vec<String> {
    let mut keys: Vec<String> = history.iter().map(|o| o.key.clone()).collect();
    keys.sort();
    keys.dedup();
    let mut violations = Vec::new();
    for node in 0..nodes.len() {
        let port = nodes.ports[node].load(Ordering::SeqCst);
        let Some(mut conn) = Conn::open(Proto::Resp, port, Duration::from_secs(5)) else {
            violations.push(format!("node {node} refused a connection after the heal"));
            continue;
        };
        for key in &keys {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let call = origin.elapsed().as_nanos() as u64;
                let out = conn.exec(key, &Kind::Get);
                let ret = origin.elapsed().as_nanos() as u64;
                let known = !out_unknown(&out);
                let last = Instant::now() >= deadline;
                if !known && last {
                    violations.push(format!("node {node}: GET {key} after the heal, for 10 s: {out:?}"));
                }
                history.push(Op {
                    client: usize::MAX,
                    node,
                    key: key.clone(),
                    kind: Kind::Get,
                    call,
                    ret: known.then_some(ret),
                    out,
                });
                if known || last {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
                match Conn::open(Proto::Resp, port, Duration::from_secs(5)) {
                    Some(c) => conn = c,
                    None => {
                        violations.push(format!("node {node} refused a connection after the heal"));
                        break;
                    }
                }
            }
        }
    }
    violations
}

fn out_unknown(o: &history::Outcome) -> bool {
    matches!(o, history::Outcome::Unknown(_))
}

/// Every key and value of the node on `port` (KEYS *, then MGET).
pub fn keyspace(port: u16) -> Result<BTreeMap<String, String>, String> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).map_err(|e| e.to_string())?;
    let mut con = client.get_connection_with_timeout(Duration::from_secs(5)).map_err(|e| e.to_string())?;
    con.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).map_err(|e| e.to_string())?;
    if keys.is_empty() {
        return Ok(BTreeMap::new());
    }
    let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut con).map_err(|e| e.to_string())?;
    Ok(keys.into_iter().zip(values).filter_map(|(k, v)| Some((k, v?))).collect())
}

/// Polls every node's keyspace until all are the same (then returns it) or
/// `within` passes (then says how they differ).
fn converge(nodes: &Nodes, within: Duration) -> Result<BTreeMap<String, String>, String> {
    let end = Instant::now() + within;
    let mut pause = Duration::from_millis(5);
    loop {
        let spaces: Vec<Result<BTreeMap<String, String>, String>> =
            (0..nodes.len()).map(|i| keyspace(nodes.ports[i].load(Ordering::SeqCst))).collect();
        if let Some(Ok(first)) = spaces.first()
            && spaces.iter().all(|s| s.as_ref() == Ok(first))
        {
            return Ok(first.clone());
        }
        if Instant::now() > end {
            return Err(diff(&spaces));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// How the nodes' keyspaces differ from node 0's, briefly.
fn diff(spaces: &[Result<BTreeMap<String, String>, String>]) -> String {
    let mut s = String::new();
    let empty = BTreeMap::new();
    let base = spaces.first().and_then(|r| r.as_ref().ok()).unwrap_or(&empty);
    for (i, sp) in spaces.iter().enumerate().skip(1) {
        match sp {
            Err(e) => {
                let _ = write!(s, "node {i}: {e}; ");
            }
            Ok(m) => {
                let keys: std::collections::BTreeSet<&String> = base.keys().chain(m.keys()).collect();
                let differ: Vec<String> = keys
                    .into_iter()
                    .filter(|k| base.get(*k) != m.get(*k))
                    .take(5)
                    .map(|k| format!("{k}: {:?} vs {:?}", base.get(k), m.get(k)))
                    .collect();
                if !differ.is_empty() {
                    let _ = write!(s, "node 0 vs node {i}: {}; ", differ.join(", "));
                }
            }
        }
    }
    s
}

/// The figures of several runs.
#[derive(Debug, Default)]
pub struct Totals {
    pub runs: usize,
    pub faults: BTreeMap<&'static str, u64>,
    pub ops: usize,
    pub acked: usize,
    pub unknown: usize,
    pub writes_checked: usize,
    pub lin_ops: usize,
    pub lin_gave_up: usize,
    pub violations: usize,
    pub lost: usize,
    pub inversions: usize,
    pub converge: Vec<Duration>,
    pub epochs: usize,
    pub compactions: usize,
    pub compactions_done: usize,
    /// Seeds with violations.
    pub failing: Vec<u64>,
}

impl Totals {
    pub fn add(&mut self, r: &Report) {
        self.runs += 1;
        for (k, v) in &r.faults {
            *self.faults.entry(k).or_default() += v;
        }
        self.ops += r.ops;
        self.acked += r.acked;
        self.unknown += r.unknown;
        self.writes_checked += r.writes_checked;
        self.lin_ops += r.lin_ops;
        self.lin_gave_up += r.lin_gave_up;
        self.violations += r.violations.len();
        self.lost += r.lost;
        self.inversions += r.inversions;
        self.converge.extend(r.converged_in);
        self.epochs += r.epochs;
        self.compactions += r.compactions;
        self.compactions_done += r.compactions_done;
        if !r.violations.is_empty() {
            self.failing.push(r.seed);
        }
    }

    /// One summary block, as scripts/chaos.sh prints it.
    pub fn summary(&self, mode: Mode) -> String {
        let faults: u64 = self.faults.values().sum();
        let kinds: Vec<String> = self.faults.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let mut conv = self.converge.clone();
        conv.sort();
        let pct = |p: usize| conv.get((conv.len().saturating_sub(1)) * p / 100).map_or(0.0, |d| d.as_secs_f64());
        let lin = if self.lin_ops > 0 {
            format!("{} operations, {} keys gave up", self.lin_ops, self.lin_gave_up)
        } else {
            "not checked (last writer wins is not linearizable)".into()
        };
        let epochs = if mode == Mode::Leader {
            format!("  epochs led:           {} (one leader each)\n", self.epochs)
        } else {
            String::new()
        };
        format!(
            "chaos summary, mode {}\n  schedules run:        {}\n  faults injected:      {faults} ({})\n  operations:           {} ({} acknowledged, {} unknown outcome)\n  acknowledged writes checked: {}\n  linearizability:      {lin}\n  violations:           {}{}\n  writes lost:          {}\n  real-time inversions: {} ({})\n  convergence after heal: median {:.3}s, max {:.3}s\n  compactions:          {} started, {} finished\n{epochs}",
            mode.name(),
            self.runs,
            kinds.join(", "),
            self.ops,
            self.acked,
            self.unknown,
            self.writes_checked,
            self.violations,
            if self.failing.is_empty() { String::new() } else { format!(" (seeds {:?})", self.failing) },
            self.lost,
            self.inversions,
            if mode == Mode::Multi {
                "allowed by last writer wins: see tests/chaos/lww.rs"
            } else {
                "each one a violation here"
            },
            pct(50),
            pct(100),
            self.compactions,
            self.compactions_done,
        )
    }
}
