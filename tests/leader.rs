//! Leader mode (`--election bully`) through the real binary: 3-node
//! clusters on ports chosen ahead (node ids are the ports, so the last node
//! has the highest id), with crashes (kill -9), pauses (SIGSTOP/SIGCONT)
//! and restarts on the same data dirs.
//!
//! Every condition is polled until the harness deadline; nothing sleeps a
//! fixed time and nothing asserts a duration (the failover figures are
//! measured by scripts/bench.sh). A test kills only the processes it
//! started.

mod common;
use common::cluster::Cluster;
use common::*;

use std::collections::BTreeMap;
use std::process::Command;

/// Leader mode with timeouts short enough for tests, long enough for a
/// loaded 2-core machine.
const BULLY: &[&str] = &["--election", "bully", "--heartbeat-ms", "50", "--election-timeout-ms", "400"];

fn args(extra: &[&'static str]) -> Vec<&'static str> {
    BULLY.iter().copied().chain(extra.iter().copied()).collect()
}

/// `LEADER` as node `i` answers it: (leader port, epoch), if it knows one.
fn leader_seen(c: &Cluster, i: usize) -> Option<(u16, u64)> {
    let mut cl = Client::connect(c.ports[i]);
    let l = cl.cmd("LEADER");
    let w: Vec<&str> = l.split(' ').collect();
    match w.as_slice() {
        ["LEADER", id, _addr, "EPOCH", e] => Some((id.parse().ok()?, e.parse().ok()?)),
        _ => None,
    }
}

/// The leader every running node agrees on, once they do: its index and
/// epoch.
#[track_caller]
fn agreed_leader(c: &mut Cluster) -> (usize, u64) {
    let mut found = None;
    wait_for("every running node to name the same running leader", || {
        let running: Vec<usize> =
            (0..c.ports.len()).filter(|&i| c.nodes[i].as_mut().is_some_and(|s| s.is_running())).collect();
        let seen: Vec<_> = running.iter().map(|&i| leader_seen(c, i)).collect();
        let Some(Some(first)) = seen.first().copied() else { return false };
        let Some(idx) = c.ports.iter().position(|&p| p == first.0) else { return false };
        let ok = seen.iter().all(|s| *s == Some(first)) && running.contains(&idx) && stat(c, idx, "role") == "leader";
        if ok {
            found = Some((idx, first.1));
        }
        ok
    });
    found.expect("leader")
}

/// Node indices from the highest id (port) down.
fn by_id(c: &Cluster) -> Vec<usize> {
    let mut v: Vec<usize> = (0..c.ports.len()).collect();
    v.sort_by_key(|&i| std::cmp::Reverse(c.ports[i]));
    v
}

fn stat(c: &Cluster, i: usize, name: &str) -> String {
    Client::connect(c.ports[i]).stat(name)
}

fn signal(c: &mut Cluster, i: usize, sig: &str) {
    let pid = c.node(i).pid().to_string();
    let ok = Command::new("kill").args([sig, &pid]).status().expect("kill").success();
    assert!(ok, "kill {sig} {pid}");
}

#[test]
fn the_highest_id_leads_and_a_write_on_any_node_is_read_on_every_node_right_after() {
    let mut c = Cluster::start(3, BULLY);
    let ids = by_id(&c);
    wait_for("the highest id to lead", || agreed_leader(&mut c).0 == ids[0]);
    let (leader, epoch) = agreed_leader(&mut c);
    assert!(epoch >= 1);
    let (f0, top) = (ids[2], ids[0]);
    for (i, w) in [0usize, 1, 2].into_iter().enumerate() {
        let key = format!("k{i}");
        assert_eq!(c.client(w).cmd(&format!("PUT {key} v{i}")), "OK");
        // Linearizable reads: right after the OK, every node has it.
        for r in 0..3 {
            assert_eq!(c.client(r).cmd(&format!("GET {key}")), format!("v{i}"), "read on node {r}");
        }
    }
    assert_eq!(stat(&c, f0, "role"), "follower");
    assert!(stat(&c, f0, "forwarded").parse::<u64>().unwrap() >= 1);
    assert_eq!(leader, top);
    // Over RESP too, with Redis's view of roles.
    let mut conn =
        redis::Client::open(format!("redis://127.0.0.1:{}/", c.ports[f0])).unwrap().get_connection().unwrap();
    let _: () = redis::cmd("SET").arg("r").arg("1").query(&mut conn).unwrap();
    let n: i64 = redis::cmd("INCR").arg("r").query(&mut conn).unwrap();
    assert_eq!(n, 2);
    let role: redis::Value = redis::cmd("ROLE").query(&mut conn).unwrap();
    assert!(format!("{role:?}").contains("slave"), "{role:?}");
    let info: String = redis::cmd("INFO").arg("replication").query(&mut conn).unwrap();
    assert!(info.contains("role:slave") && info.contains(&format!("master_port:{}", c.ports[top])), "{info}");
    assert!(info.contains("master_link_status:up"), "{info}");
    let mut lc = redis::Client::open(format!("redis://127.0.0.1:{}/", c.ports[top])).unwrap().get_connection().unwrap();
    let info: String = redis::cmd("INFO").arg("replication").query(&mut lc).unwrap();
    assert!(info.contains("role:master"), "{info}");
}

#[test]
fn a_killed_leader_is_replaced_and_comes_back_to_take_over_with_nothing_lost() {
    let mut c = Cluster::start(3, BULLY);
    let ids = by_id(&c);
    wait_for("the highest id to lead", || agreed_leader(&mut c).0 == ids[0]);
    let (leader, epoch) = agreed_leader(&mut c);
    assert_eq!(c.client(ids[2]).cmd("PUT before 1"), "OK");
    c.kill9(leader);
    let (next, epoch2) = agreed_leader(&mut c);
    assert_eq!(next, ids[1], "the highest live id leads");
    assert!(epoch2 > epoch, "a new leadership, a new epoch");
    assert_eq!(c.client(ids[2]).cmd("PUT during 2"), "OK");
    assert_eq!(c.client(ids[1]).cmd("GET before"), "1", "acknowledged before the crash");
    c.restart(leader);
    wait_for("the restarted highest node to take over", || {
        leader_seen(&c, ids[2]).is_some_and(|(p, _)| p == c.ports[leader])
    });
    let (back, epoch3) = agreed_leader(&mut c);
    assert_eq!(back, leader);
    assert!(epoch3 > epoch2);
    for i in 0..3 {
        assert_eq!(c.client(i).cmd("GET before"), "1");
        assert_eq!(c.client(i).cmd("GET during"), "2", "node {i} lost a write made while the leader was down");
    }
    let log = c.node(leader).log_text();
    assert!(log.contains("leads epoch"), "the log says the role change: {log}");
}

#[test]
fn a_leader_whose_followers_are_paused_acknowledges_no_write() {
    let mut c = Cluster::start(3, &args(&["--request-timeout-ms", "1000"]));
    let ids = by_id(&c);
    wait_for("the highest id to lead", || agreed_leader(&mut c).0 == ids[0]);
    let leader = ids[0];
    assert_eq!(c.client(leader).cmd("PUT a 1"), "OK");
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    for &f in &followers {
        signal(&mut c, f, "-STOP");
    }
    let mut cl = c.client(leader);
    let reply = cl.cmd("PUT a 2");
    assert!(
        reply == "ERROR TIMEOUT outcome unknown" || reply.starts_with("ERROR NO_LEADER"),
        "no majority holds the write, yet: {reply}"
    );
    // It stops leading once no majority answers; it says so.
    wait_for("the leader to step down", || stat(&c, leader, "role") != "leader");
    let mut cl = c.client(leader);
    assert!(cl.cmd("PUT a 3").starts_with("ERROR NO_LEADER"), "a minority takes no write");
    assert!(cl.cmd("GET a").starts_with("ERROR NO_LEADER"), "nor answers a linearizable read");
    for &f in &followers {
        signal(&mut c, f, "-CONT");
    }
    agreed_leader(&mut c);
    let v = c.client(0).cmd("GET a");
    assert!(v == "1" || v == "2", "the acknowledged write or the one of unknown outcome: {v}");
    assert_eq!(c.client(0).cmd("PUT a 4"), "OK");
    assert_eq!(c.client(1).cmd("GET a"), "4");
}

#[test]
fn a_paused_leader_is_replaced_in_a_higher_epoch_and_follows_on_resume() {
    let mut c = Cluster::start(3, BULLY);
    let ids = by_id(&c);
    wait_for("the highest id to lead", || agreed_leader(&mut c).0 == ids[0]);
    let (leader, epoch) = agreed_leader(&mut c);
    let other = ids[2];
    signal(&mut c, leader, "-STOP");
    wait_for("a new leader while the old one is paused", || {
        leader_seen(&c, other).is_some_and(|(p, e)| p != c.ports[leader] && e > epoch)
    });
    assert_eq!(c.client(other).cmd("PUT paused x"), "OK");
    signal(&mut c, leader, "-CONT");
    // Back, it learns the newer epoch, catches up, and (highest id) takes over.
    let (back, epoch2) = agreed_leader(&mut c);
    assert!(epoch2 > epoch);
    for i in 0..3 {
        assert_eq!(c.client(i).cmd("GET paused"), "x", "node {i} (leader {back})");
    }
}

#[test]
fn writes_through_random_nodes_during_leader_kills_lose_nothing_acknowledged() {
    let mut c = Cluster::start(3, BULLY);
    let mut acked: BTreeMap<String, String> = BTreeMap::new();
    let mut seq = 0u64;
    for round in 0..3 {
        let (leader, _) = agreed_leader(&mut c);
        for _ in 0..30 {
            seq += 1;
            let node = (seq as usize * 7 + round) % 3;
            if !c.nodes[node].as_mut().is_some_and(|s| s.is_running()) {
                continue;
            }
            let key = format!("k{}", seq % 17);
            let val = format!("v{seq}");
            let mut cl = c.client(node);
            if cl.cmd(&format!("PUT {key} {val}")) == "OK" {
                acked.insert(key, val);
            }
        }
        c.kill9(leader);
        agreed_leader(&mut c);
        c.restart(leader);
    }
    agreed_leader(&mut c);
    assert!(acked.len() > 5, "writes were acknowledged: {acked:?}");
    for i in 0..3 {
        for (k, v) in &acked {
            // A later write of unknown outcome may have superseded a value;
            // here every write after an acknowledged one to the same key was
            // itself acknowledged or refused as not applied, so the last
            // acknowledged value must be there.
            let got = c.client(i).cmd(&format!("GET {k}"));
            assert_eq!(&got, v, "node {i}, key {k}");
        }
    }
}

#[test]
fn follower_writes_refuse_names_the_leader_in_both_protocols() {
    let mut c = Cluster::start(3, &args(&["--follower-writes", "refuse"]));
    // Once the highest id leads (Bully's take-over may follow a first
    // election), the lowest is a follower for good.
    let ids = by_id(&c);
    wait_for("the highest id to lead", || agreed_leader(&mut c).0 == ids[0]);
    let (leader, f) = (ids[0], ids[2]);
    let addr = format!("127.0.0.1:{}", c.ports[leader]);
    assert_eq!(c.client(f).cmd("PUT k v"), format!("ERROR NOT_LEADER {addr}"));
    let mut conn = redis::Client::open(format!("redis://127.0.0.1:{}/", c.ports[f])).unwrap().get_connection().unwrap();
    let e = redis::cmd("SET").arg("k").arg("v").query::<()>(&mut conn).unwrap_err();
    assert!(e.kind() == redis::ErrorKind::ReadOnly && e.to_string().contains(&addr), "{e}");
    // Reads still work on the follower (forwarded: linearizable).
    assert_eq!(c.client(leader).cmd("PUT k v"), "OK");
    let v: String = redis::cmd("GET").arg("k").query(&mut conn).unwrap();
    assert_eq!(v, "v");
}

#[test]
fn redis_py_works_against_a_follower() {
    let mut c = Cluster::start(3, BULLY);
    let ids = by_id(&c);
    wait_for("the highest id to lead", || agreed_leader(&mut c).0 == ids[0]);
    let script = format!(
        "import redis\nr = redis.Redis(port={})\nr.set('py', 'a')\nassert r.get('py') == b'a'\nassert r.incr('n') == 1\n\
         p = r.pipeline(transaction=False)\np.set('x', 1)\np.get('x')\nassert p.execute() == [True, b'1']\nprint('ok')\n",
        c.ports[ids[2]]
    );
    let out = Command::new("python3").args(["-c", &script]).output().expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(c.client(ids[0]).cmd("GET py"), "a");
    assert!(stat(&c, ids[2], "forwarded").parse::<u64>().unwrap() >= 3, "the follower forwarded them");
}

#[test]
fn a_full_cluster_restart_keeps_data_and_epochs() {
    let mut c = Cluster::start(3, BULLY);
    let (_, epoch) = agreed_leader(&mut c);
    assert_eq!(c.client(1).cmd("PUT kept 1"), "OK");
    for i in 0..3 {
        c.node(i).terminate();
    }
    for i in 0..3 {
        c.restart(i);
    }
    let (_, epoch2) = agreed_leader(&mut c);
    assert!(epoch2 > epoch, "epochs never go back: {epoch2} after {epoch}");
    for i in 0..3 {
        assert_eq!(c.client(i).cmd("GET kept"), "1");
    }
    // The epoch survives in the data dir.
    let state = std::fs::read_to_string(c.dirs[0].path().join("data").join("election.state")).unwrap();
    assert!(state.split_whitespace().next().unwrap().parse::<u64>().unwrap() >= epoch2, "{state}");
}

#[test]
fn without_a_majority_nothing_is_elected() {
    let mut c = Cluster::planned(3, BULLY);
    let ids = by_id(&c);
    c.start_node(ids[0]);
    let mut cl = c.client(ids[0]);
    // Alone of three: no leader, writes refused as not applied.
    wait_for("the lone node to report no leader", || cl.cmd("LEADER").starts_with("LEADER NONE"));
    assert!(cl.cmd("PUT k v").starts_with("ERROR NO_LEADER"));
    let mut conn =
        redis::Client::open(format!("redis://127.0.0.1:{}/", c.ports[ids[0]])).unwrap().get_connection().unwrap();
    let e = redis::cmd("SET").arg("k").arg("v").query::<()>(&mut conn).unwrap_err();
    assert_eq!(e.kind(), redis::ErrorKind::ClusterDown, "{e}");
    c.start_node(ids[1]);
    wait_for("the highest id to lead", || agreed_leader(&mut c).0 == ids[0]);
    assert_eq!(c.client(ids[1]).cmd("PUT k v"), "OK");
}
