//! A [`Node`] over a failing disk ([`FaultyDisk`]), driven as the reactor
//! drives it (`process`, `before_sleep`, `advance`): under each fault the
//! write is not acknowledged (its commit fails, the store is rolled back),
//! writes are refused with an error while the log is down, the node
//! recovers once the disk does (after a failed fsync, by rewriting the log
//! from memory), and after a power loss the restarted node holds every
//! acknowledged write and none that failed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Commit, Node, Ready, Session};
use crate::config::{Args, Config};
use crate::storage::log::{Fault, FaultOp, FaultyDisk, LostBytes, Target};

const WALL_MS: u64 = 1_700_000_000_000;

struct Harness {
    dir: std::path::PathBuf,
    disk: FaultyDisk,
    node: Option<Node>,
    session: Session,
    t0: Instant,
    ms: u64,
    acked: Vec<String>,
    failed: Vec<String>,
    seq: u64,
}

/// How a SET ended.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// `+OK` left after a successful commit.
    Acked,
    /// The commit failed: the driver turns the held reply into an error.
    CommitFailed,
    /// Refused at once, with this error reply.
    Refused(String),
}

impl Harness {
    fn new() -> Harness {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("kvstore-disk-faults-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut h = Harness {
            dir,
            disk: FaultyDisk::new(),
            node: None,
            session: Session::default(),
            t0: Instant::now(),
            ms: 0,
            acked: vec![],
            failed: vec![],
            seq: 0,
        };
        h.start();
        h
    }

    fn now(&self) -> Instant {
        self.t0 + Duration::from_millis(self.ms)
    }

    fn start(&mut self) {
        let d = self.dir.display().to_string();
        let args: Args =
            argh::FromArgs::from_args(&["kvstore-server"], &["0", "--dir", &d, "--fsync", "always"]).unwrap();
        let cfg = Config::from_args(args).unwrap();
        let disk = Arc::new(self.disk.clone());
        let (mut node, _) = Node::open_on(disk, cfg, 1, self.now(), WALL_MS + self.ms).unwrap();
        let a = SocketAddr::from(([127, 0, 0, 1], 1));
        self.session = node.client_connected(0, a, a, -1);
        self.node = Some(node);
    }

    fn node(&mut self) -> &mut Node {
        self.node.as_mut().unwrap()
    }

    /// One loop iteration with no input, `ms` later.
    fn tick(&mut self, ms: u64) {
        self.ms += ms;
        let (now, wall) = (self.now(), WALL_MS + self.ms);
        let node = self.node();
        node.set_time(now, wall);
        let mut ready = Ready::default();
        node.before_sleep(now, &mut ready);
        // (A compaction's snapshot may commit; no client write does.)
        assert!(!matches!(ready.commit, Commit::Failed(_)), "{:?}", ready.commit);
        node.advance(now);
    }

    /// A SET of a new key, in one loop iteration.
    fn set(&mut self) -> Outcome {
        self.seq += 1;
        let key = format!("key{}", self.seq);
        let (now, wall) = (self.now(), WALL_MS + self.ms);
        let mut session = std::mem::take(&mut self.session);
        let node = self.node.as_mut().unwrap();
        node.set_time(now, wall);
        let mut out = Vec::new();
        node.process(&mut session, format!("SET {key} value-{key}\r\n").as_bytes(), &mut out, 0);
        let mut ready = Ready::default();
        node.before_sleep(now, &mut ready);
        node.advance(now);
        self.session = session;
        let outcome = match ready.commit {
            Commit::Done => {
                assert_eq!(out, b"+OK\r\n");
                Outcome::Acked
            }
            Commit::Failed(_) => Outcome::CommitFailed,
            Commit::Nothing => {
                let reply = String::from_utf8_lossy(&out).into_owned();
                assert!(reply.starts_with("-ERR log write failed"), "{reply}");
                Outcome::Refused(reply)
            }
        };
        let held = self.node().store().contains(key.as_bytes());
        assert_eq!(held, outcome == Outcome::Acked, "{key}: {outcome:?}, and the store holds it: {held}");
        if outcome == Outcome::Acked {
            self.acked.push(key)
        } else {
            self.failed.push(key)
        }
        outcome
    }

    /// Ticks (a loop iteration every 10 ms) until `cond`, polling the
    /// rewrite's helper thread; panics after 10 s of real time.
    #[track_caller]
    fn tick_until(&mut self, what: &str, mut cond: impl FnMut(&mut Harness) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(1));
            self.tick(10);
        }
    }

    /// Power off, restart, and check the keys.
    #[track_caller]
    fn power_loss_and_check(&mut self, tail: LostBytes) {
        self.disk.power_loss(tail).unwrap();
        self.node = None;
        self.disk.restart();
        self.start();
        let node = self.node.as_ref().unwrap();
        for k in &self.acked {
            assert!(node.store().contains(k.as_bytes()), "acknowledged {k} lost");
        }
        for k in &self.failed {
            assert!(!node.store().contains(k.as_bytes()), "failed {k} came back");
        }
        assert_eq!(node.store().len(), self.acked.len());
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.node = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn write_errors_are_refused_then_recovered() {
    for errno in [libc::EIO, libc::ENOSPC] {
        let mut h = Harness::new();
        for _ in 0..5 {
            assert_eq!(h.set(), Outcome::Acked);
        }
        h.disk.inject(Fault::new(FaultOp::Write, Target::Log).errno(errno).lands(9).sticky());
        assert_eq!(h.set(), Outcome::CommitFailed);
        assert!(matches!(h.set(), Outcome::Refused(r) if r.contains("refused for now")));
        h.tick(1500);
        // Still broken: the first write after the pause fails again.
        assert_eq!(h.set(), Outcome::CommitFailed);
        h.disk.heal();
        h.tick(1500);
        assert_eq!(h.set(), Outcome::Acked);
        h.power_loss_and_check(LostBytes::Garbage(errno as u64));
    }
}

#[test]
fn short_writes_are_acknowledged_whole() {
    let mut h = Harness::new();
    h.disk.short_writes(Some(5));
    for _ in 0..5 {
        assert_eq!(h.set(), Outcome::Acked);
    }
    h.power_loss_and_check(LostBytes::Zeros);
}

#[test]
fn a_failed_fsync_refuses_writes_until_the_log_is_rewritten() {
    for errno in [libc::EIO, libc::ENOSPC] {
        let mut h = Harness::new();
        for _ in 0..5 {
            assert_eq!(h.set(), Outcome::Acked);
        }
        // The disk stays broken a while: the recovery rewrite fails too
        // (its fsync) and is tried again.
        h.disk.inject(Fault::new(FaultOp::Sync, Target::Any).errno(errno).sticky());
        assert_eq!(h.set(), Outcome::CommitFailed);
        assert!(h.node().log().needs_rewrite());
        for _ in 0..3 {
            h.tick(1100);
            assert!(matches!(h.set(), Outcome::Refused(r) if r.contains("until the log is rewritten")));
        }
        h.tick_until("a recovery rewrite to fail", |h| h.node().stats.rewrite_failures_in_a_row >= 2);
        h.disk.heal();
        h.tick_until("the log to be rewritten", |h| !h.node().log().needs_rewrite());
        h.tick(1);
        assert_eq!(h.set(), Outcome::Acked);
        h.power_loss_and_check(LostBytes::Garbage(7));
    }
}

#[test]
fn faults_during_a_compaction() {
    let mut h = Harness::new();
    for _ in 0..20 {
        assert_eq!(h.set(), Outcome::Acked);
    }
    // The rewrite file fails: the compaction ends, writes go on.
    assert!(h.node().start_compaction().unwrap());
    h.disk.inject(Fault::new(FaultOp::Write, Target::Rewrite).errno(libc::ENOSPC));
    assert_eq!(h.set(), Outcome::Acked);
    h.tick_until("the compaction to end", |h| !h.node().compacting());
    assert_eq!(h.set(), Outcome::Acked);
    // The log's fsync fails while a compaction runs: it is abandoned, and
    // the recovery rewrite that follows makes the log writable again.
    assert!(h.node().start_compaction().unwrap());
    h.disk.inject(Fault::new(FaultOp::Sync, Target::Log).errno(libc::EIO));
    assert_eq!(h.set(), Outcome::CommitFailed);
    h.tick_until("the log to be rewritten", |h| !h.node().log().needs_rewrite());
    h.tick(1);
    assert_eq!(h.set(), Outcome::Acked);
    h.power_loss_and_check(LostBytes::Zeros);
}
