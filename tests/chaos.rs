//! Faults injected, histories checked: real nodes whose peer links go
//! through a proxy the test controls, clients recording every operation,
//! and checkers run once the faults heal (see tests/chaos/mod.rs).
//!
//! At CI size each test runs a few seeded schedules of a few seconds. The
//! seeds are fresh each run (so CI keeps trying new schedules) unless
//! `KV_CHAOS_SEED` names one; a failure prints its seed and the command
//! that replays it. scripts/chaos.sh runs the same at a larger size.

mod common;
#[path = "chaos/mod.rs"]
mod harness;

use harness::rng::{Rng, fresh_seed, seed_from_env};
use harness::schedule;
use harness::{Config, Mode, Totals};

/// The seeds of a test: `KV_CHAOS_SEED` alone, or `n` fresh ones.
fn seeds(n: usize) -> Vec<u64> {
    match seed_from_env() {
        Some(s) => vec![s],
        None => {
            let first = fresh_seed();
            (0..n as u64).map(|i| first + i).collect()
        }
    }
}

/// Runs `cfg` for each seed; fails with the first failing seed's report.
#[track_caller]
fn run_seeds(test: &str, mode: Mode, seeds: &[u64], config: impl Fn(Mode, u64) -> Config) -> Totals {
    let mut totals = Totals::default();
    for &seed in seeds {
        eprintln!("{test}: seed {seed} (replay: KV_CHAOS_SEED={seed})");
        let report = harness::run(&config(mode, seed));
        totals.add(&report);
        assert!(report.violations.is_empty(), "{}", report.failure(test));
    }
    eprint!("{}", totals.summary(mode));
    totals
}

/// Today's multi-master replication under partitions (symmetric, one-way,
/// silent), delays, resets, kill -9 with restarts and SIGSTOP/SIGCONT:
/// every node ends with the same keyspace, and no acknowledged write or
/// delete is undone by a write its node had before it.
#[test]
fn multi_master_converges_and_keeps_acknowledged_writes_under_faults() {
    let t = run_seeds(
        "multi_master_converges_and_keeps_acknowledged_writes_under_faults",
        Mode::Multi,
        &seeds(3),
        Config::small,
    );
    assert!(t.acked > 100, "the clients got work done: {} operations acknowledged", t.acked);
    assert!(t.faults.values().sum::<u64>() >= t.runs as u64, "faults were injected");
}

/// One node with `--fsync always`, killed with -9 at random moments and
/// restarted (and paused): the history across the restarts is
/// linearizable, and no acknowledged write is lost.
#[test]
fn single_node_fsync_always_is_linearizable_across_kill9() {
    let t = run_seeds("single_node_fsync_always_is_linearizable_across_kill9", Mode::Single, &seeds(2), Config::small);
    assert!(t.lin_ops > 100, "the checker saw a history: {} operations", t.lin_ops);
    assert_eq!(t.lin_gave_up, 0, "every key's search finished");
    assert!(t.faults.get("kill-9").copied().unwrap_or(0) > 0 || seed_from_env().is_some(), "a node was killed");
}

/// The harness can fail: a node restarted on an empty data directory
/// (acknowledged writes gone) is caught by both checkers.
#[test]
fn the_checkers_catch_a_node_that_forgets_its_writes() {
    // The first seed from a fresh one whose schedule kills the node (a
    // schedule of pauses alone would have nothing to catch).
    let start = seed_from_env().unwrap_or_else(fresh_seed);
    let kills = |s: u64| schedule::draw(&mut Rng::new(s), 1, 3).iter().any(|st| st.fault.kind() == "kill-9");
    // A kill that lands before any write was acknowledged wipes nothing
    // worth finding: up to five schedules with a kill, and one of them must
    // be caught by both checkers.
    let mut misses = Vec::new();
    for seed in (start..).filter(|&s| kills(s)).take(5) {
        let mut cfg = Config::small(Mode::Single, seed);
        cfg.wipe_on_restart = true;
        cfg.steps = 3;
        let r = harness::run(&cfg);
        let nonlin = r.violations.iter().any(|v| v.contains("not linearizable"));
        if r.lost > 0 && nonlin {
            return;
        }
        misses.push(format!("seed {seed}: lost {}, linearizability violations: {nonlin}", r.lost));
    }
    panic!("writes wiped on five schedules, never caught by both checkers: {misses:?}");
}

/// Leader mode (`--election bully --acks majority`) under the same faults:
/// the history is linearizable, no acknowledged write is lost, the nodes
/// converge, and no epoch has two leaders in any node's log.
///
/// Found by this harness, and fixed: a forwarded request lost with its
/// link took the next one's reply (a text client got RESP bytes, a GET the
/// reply to a PUT), and a new leader could answer with a deposed leader's
/// write that no majority held. Replay of the pause-only case:
/// `KV_CHAOS_FAULTS=pause KV_CHAOS_STEPS=20 scripts/chaos.sh --mode leader
/// --seed 310102243`.
#[test]
fn leader_mode_is_linearizable_under_faults() {
    let t = run_seeds("leader_mode_is_linearizable_under_faults", Mode::Leader, &seeds(2), Config::small);
    assert!(t.lin_ops > 100, "the checker saw a history: {} operations", t.lin_ops);
    assert_eq!(t.lin_gave_up, 0, "every key's search finished");
    assert!(t.epochs > 0, "the logs name the leaders (the check of one leader per epoch reads them)");
}

/// scripts/chaos.sh's entry point: `KV_CHAOS_MODE` (multi, leader, single),
/// `KV_CHAOS_SEEDS` schedules at the large size; prints the summary, and
/// fails at the end if any schedule found a violation (each one's report
/// is printed as it happens).
#[test]
#[ignore = "long: run by scripts/chaos.sh"]
fn chaos_by_hand() {
    let mode = std::env::var("KV_CHAOS_MODE").ok().and_then(|m| Mode::parse(&m)).unwrap_or(Mode::Multi);
    let n = std::env::var("KV_CHAOS_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let mut totals = Totals::default();
    for seed in seeds(n) {
        let report = harness::run(&Config::large(mode, seed));
        eprintln!(
            "seed {seed}: {} ops, {} faults, {} violations, converged in {:?}",
            report.ops,
            report.faults.values().sum::<u64>(),
            report.violations.len(),
            report.converged_in
        );
        for inv in &report.inversion_samples {
            eprintln!("  inversion: {inv}");
        }
        if !report.violations.is_empty() {
            eprintln!("{}", report.failure("chaos_by_hand -- --ignored"));
        }
        totals.add(&report);
    }
    println!("{}", totals.summary(mode));
    assert!(totals.failing.is_empty(), "violations in seeds {:?}", totals.failing);
}
