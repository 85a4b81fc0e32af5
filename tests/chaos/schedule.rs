//! Seeded fault schedules: a list of faults, each held for a while and then
//! healed, drawn from the run's seed before the run starts (so the seed
//! printed on failure gives the same schedule back; the interleaving of
//! clients with it is real time and may differ).

use std::fmt;
use std::time::Duration;

use super::nodes::Nodes;
use super::proxy::Fault as Net;
use super::rng::Rng;

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// `side` cannot talk to the other nodes, either way: connections
    /// closed and refused, or (`blackhole`) silently stalled.
    Partition { side: Vec<usize>, blackhole: bool },
    /// What `from` sends does not reach `to`; the other way works.
    OneWay { from: usize, to: usize },
    /// Every chunk between `a` and `b` is held this long, both ways.
    Delay { a: usize, b: usize, ms: u64 },
    /// The connections between `a` and `b` are reset once.
    Reset { a: usize, b: usize },
    /// kill -9, restarted on its data dir when the fault heals.
    Kill { node: usize },
    /// SIGSTOP, SIGCONT when the fault heals.
    Pause { node: usize },
}

impl Fault {
    /// The kind, for the summary.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Partition { blackhole: false, .. } => "partition",
            Fault::Partition { blackhole: true, .. } => "blackhole",
            Fault::OneWay { .. } => "one-way",
            Fault::Delay { .. } => "delay",
            Fault::Reset { .. } => "reset",
            Fault::Kill { .. } => "kill-9",
            Fault::Pause { .. } => "pause",
        }
    }

    /// Injects it.
    #[track_caller]
    pub fn inject(&self, nodes: &mut Nodes) {
        let n = nodes.len();
        match self {
            Fault::Partition { side, blackhole } => {
                let f = if *blackhole { Net::Blackhole } else { Net::Cut };
                for &a in side {
                    for b in (0..n).filter(|b| !side.contains(b)) {
                        nodes.proxy.both_ways(a, b, f);
                    }
                }
            }
            Fault::OneWay { from, to } => nodes.proxy.one_way(*from, *to, Net::Blackhole),
            Fault::Delay { a, b, ms } => nodes.proxy.both_ways(*a, *b, Net::Delay(Duration::from_millis(*ms))),
            Fault::Reset { a, b } => nodes.proxy.reset(*a, *b),
            Fault::Kill { node } => nodes.kill9(*node),
            Fault::Pause { node } => nodes.pause(*node),
        }
    }

    /// Heals it.
    #[track_caller]
    pub fn heal(&self, nodes: &mut Nodes) {
        match self {
            Fault::Kill { node } => nodes.restart(*node),
            Fault::Pause { node } => nodes.resume(*node),
            Fault::Reset { .. } => {}
            _ => nodes.proxy.heal(),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Partition { side, .. } => write!(f, "{} {side:?} | rest", self.kind()),
            Fault::OneWay { from, to } => write!(f, "one-way {from} -/-> {to}"),
            Fault::Delay { a, b, ms } => write!(f, "delay {a} <-> {b} {ms}ms"),
            Fault::Reset { a, b } => write!(f, "reset {a} <-> {b}"),
            Fault::Kill { node } => write!(f, "kill -9 {node}, restart"),
            Fault::Pause { node } => write!(f, "SIGSTOP {node}, SIGCONT"),
        }
    }
}

/// A fault, how long it is held, and the quiet time after it heals.
#[derive(Debug, Clone)]
pub struct Step {
    pub fault: Fault,
    pub hold: Duration,
    pub gap: Duration,
}

/// `steps` faults for `n` nodes (one node: kills and pauses only).
pub fn draw(rng: &mut Rng, n: usize, steps: usize) -> Vec<Step> {
    let nu = n as u64;
    let pair = |rng: &mut Rng| {
        let a = rng.below(nu) as usize;
        let b = (a + 1 + rng.below(nu - 1) as usize) % n;
        (a, b)
    };
    (0..steps)
        .map(|_| {
            let node = rng.below(nu) as usize;
            let fault = if n == 1 {
                if rng.chance(75) { Fault::Kill { node } } else { Fault::Pause { node } }
            } else {
                match rng.below(100) {
                    0..=24 => {
                        // One node alone, or (with more than three) a minority.
                        let size = rng.range(1, ((nu - 1) / 2).max(1)) as usize;
                        let mut side: Vec<usize> = Vec::new();
                        while side.len() < size {
                            let x = rng.below(nu) as usize;
                            if !side.contains(&x) {
                                side.push(x);
                            }
                        }
                        side.sort();
                        Fault::Partition { side, blackhole: rng.chance(50) }
                    }
                    25..=39 => {
                        let (from, to) = pair(rng);
                        Fault::OneWay { from, to }
                    }
                    40..=49 => {
                        let (a, b) = pair(rng);
                        Fault::Delay { a, b, ms: rng.range(5, 100) }
                    }
                    50..=59 => {
                        let (a, b) = pair(rng);
                        Fault::Reset { a, b }
                    }
                    60..=84 => Fault::Kill { node },
                    _ => Fault::Pause { node },
                }
            };
            Step {
                fault,
                hold: Duration::from_millis(rng.range(150, 1200)),
                gap: Duration::from_millis(rng.range(50, 400)),
            }
        })
        .collect()
}

/// The schedule, one step a line, for failure messages.
pub fn describe(steps: &[Step]) -> String {
    steps.iter().map(|s| format!("  {} for {:?}, then {:?} quiet\n", s.fault, s.hold, s.gap)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_schedule_of_valid_faults() {
        for seed in 0..200 {
            for n in [1, 2, 3, 5] {
                let a = draw(&mut Rng::new(seed), n, 20);
                let b = draw(&mut Rng::new(seed), n, 20);
                assert_eq!(describe(&a), describe(&b));
                for s in &a {
                    match &s.fault {
                        Fault::Partition { side, .. } => {
                            assert!(
                                !side.is_empty() && side.len() < n && side.iter().all(|&x| x < n),
                                "{side:?} of {n}"
                            )
                        }
                        Fault::OneWay { from: a, to: b } | Fault::Delay { a, b, .. } | Fault::Reset { a, b } => {
                            assert!(a != b && *a < n && *b < n)
                        }
                        Fault::Kill { node } | Fault::Pause { node } => assert!(*node < n),
                    }
                    if n == 1 {
                        assert!(matches!(s.fault, Fault::Kill { .. } | Fault::Pause { .. }));
                    }
                }
            }
        }
    }
}
