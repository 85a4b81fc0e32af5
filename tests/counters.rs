//! Converging counters through the real binary: INCR on several masters at
//! once adds up, a SET resets the counter everywhere, and the counter's
//! state survives a restart and a compaction (clusters as in
//! tests/cluster.rs; every condition polled, nothing sleeps a fixed time).

mod common;
use common::cluster::Cluster;
use common::*;

use std::time::{Duration, Instant};

/// Increments each client makes.
const N: i64 = 300;

fn redis_con(port: u16) -> redis::Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("redis url");
    client.get_connection().expect("connect")
}

#[track_caller]
fn incr(con: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("INCR").arg(key).query(con).expect("INCR")
}

/// Polls until `GET key` on `port` answers `want`.
#[track_caller]
fn wait_value(port: u16, key: &str, want: i64) {
    let mut c = Client::connect(port);
    let end = Instant::now() + DEADLINE;
    loop {
        let last = c.cmd(&format!("GET {key}"));
        if last == want.to_string() {
            return;
        }
        assert!(Instant::now() < end, "node on port {port}: GET {key} is {last:?}, want {want}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `N` INCRs of `key` on `port`, from a thread of their own.
fn incr_thread(port: u16, key: &'static str) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut con = redis_con(port);
        let mut last = i64::MIN;
        for _ in 0..N {
            let v = incr(&mut con, key);
            // Others add too, but this client's own increments are never lost.
            assert!(v > last, "INCR went from {last} to {v}");
            last = v;
        }
    })
}

#[test]
fn multi_master_incr_on_three_nodes_at_once_adds_up() {
    let mut c = Cluster::start(3, &[]);
    let (a, b) = (incr_thread(c.ports[0], "hits"), incr_thread(c.ports[1], "hits"));
    // Node 2's client makes half its increments, node 2 is killed and
    // restarted in the middle, and the client makes the other half.
    let mut con = redis_con(c.ports[2]);
    let mut before = 0;
    for _ in 0..N / 2 {
        before = incr(&mut con, "hits");
    }
    c.kill9(2);
    c.restart(2);
    let mut con = redis_con(c.ports[2]);
    let after = incr(&mut con, "hits");
    assert!(after > before, "INCR after a restart continues from the logged state: {before} then {after}");
    for _ in 1..N / 2 {
        incr(&mut con, "hits");
    }
    a.join().expect("node 0's client");
    b.join().expect("node 1's client");
    for &port in &c.ports {
        wait_value(port, "hits", 3 * N);
    }
    // A SET is newer than the counter's base: it resets it everywhere, and
    // increments go on from it.
    let mut c1 = c.client(1);
    assert_eq!(c1.cmd("PUT hits 10"), "OK");
    for &port in &c.ports {
        wait_value(port, "hits", 10);
    }
    assert_eq!(incr(&mut redis_con(c.ports[0]), "hits"), 11);
    // An increment answers with what its node holds: node 2 has node 0's
    // once it shows 11.
    wait_value(c.ports[2], "hits", 11);
    assert_eq!(incr(&mut redis_con(c.ports[2]), "hits"), 12);
    for &port in &c.ports {
        wait_value(port, "hits", 12);
    }
    // So does a DEL (once it has reached a node, an INCR there starts from
    // nothing; one made there before it arrived would be on the old base,
    // and dropped by the reset).
    assert_eq!(c1.cmd("DEL hits"), "OK");
    for &port in &c.ports {
        let mut cl = Client::connect(port);
        wait_for("the DEL everywhere", || cl.cmd("GET hits") == "NOT_FOUND");
    }
    assert_eq!(incr(&mut redis_con(c.ports[2]), "hits"), 1);
    for &port in &c.ports {
        wait_value(port, "hits", 1);
    }
}

/// A compacted log keeps a counter's state, not only its value: after the
/// node restarts from it, another node's increment on the same counter
/// still merges with it (a plain value at the counter's version would
/// refuse it as made on an older base).
#[test]
fn compaction_and_restart_keep_counters() {
    let mut c = Cluster::start(3, &[]);
    let mut n0 = redis_con(c.ports[0]);
    let mut n1 = redis_con(c.ports[1]);
    for _ in 0..5 {
        incr(&mut n0, "k");
        incr(&mut n1, "k");
    }
    for &port in &c.ports {
        wait_value(port, "k", 10);
    }
    let mut t = c.client(1);
    assert_eq!(t.cmd("COMPACT"), "OK");
    wait_for("the compaction", || t.stat("compactions") == "1");
    // Node 0 increments while node 1 is down; node 1 restarts from its
    // compacted log and gets that increment by catch-up, which merges.
    c.kill9(1);
    assert_eq!(incr(&mut n0, "k"), 11);
    c.restart(1);
    for &port in &c.ports {
        wait_value(port, "k", 11);
    }
    let mut n1 = redis_con(c.ports[1]);
    assert_eq!(incr(&mut n1, "k"), 12);
    for &port in &c.ports {
        wait_value(port, "k", 12);
    }
}

/// Redis's errors hold for a converging counter too: a value that is not
/// an integer, and an increment that would overflow (refused, nothing
/// written, on any node).
#[test]
fn a_converging_counter_keeps_redis_errors() {
    let c = Cluster::start(2, &[]);
    let mut con = redis_con(c.ports[0]);
    let _: () = redis::cmd("SET").arg("text").arg("1.5").query(&mut con).expect("SET");
    let err = redis::cmd("INCR").arg("text").query::<i64>(&mut con).expect_err("not an integer");
    assert!(err.to_string().contains("value is not an integer or out of range"), "{err}");
    let max: i64 = redis::cmd("INCRBY").arg("big").arg(i64::MAX - 1).query(&mut con).expect("INCRBY");
    assert_eq!(max, i64::MAX - 1);
    assert_eq!(incr(&mut con, "big"), i64::MAX);
    let err = redis::cmd("INCR").arg("big").query::<i64>(&mut con).expect_err("overflow");
    assert!(err.to_string().contains("increment or decrement would overflow"), "{err}");
    wait_value(c.ports[1], "big", i64::MAX);
    let mut other = redis_con(c.ports[1]);
    let down: i64 = redis::cmd("DECRBY").arg("big").arg(i64::MAX).query(&mut other).expect("DECRBY");
    assert_eq!(down, 0);
    wait_value(c.ports[0], "big", 0);
}
