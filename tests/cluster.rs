//! Replication through the real binary: 3-node clusters, each node in its
//! own temp dir on a port chosen ahead (see `ports_ahead`: a node's peers
//! are named on its command line), listing the other two as peers, as
//! `kvstore-server 12345 127.0.0.1:12346,127.0.0.1:12347` would be run.
//!
//! Every condition is polled until the harness deadline; nothing sleeps a
//! fixed time. A test kills only the processes it started (the harness
//! kills its servers on drop, so a failing test leaves nothing behind).

mod common;
use common::cluster::Cluster;
use common::*;

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- helpers

/// One STATS value of the node on `port`.
#[track_caller]
fn stat(port: u16, name: &str) -> String {
    Client::connect(port).stat(name)
}

/// Polls until `GET key` on `port` answers `want` (`NOT_FOUND` for absent).
#[track_caller]
fn wait_value(port: u16, key: &str, want: &str) {
    let mut c = Client::connect(port);
    let end = Instant::now() + DEADLINE;
    loop {
        let last = c.cmd(&format!("GET {key}"));
        if last == want {
            return;
        }
        assert!(Instant::now() < end, "node on port {port}: GET {key} is {last:?}, want {want:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Polls until the node on `port` holds exactly `n` keys.
#[track_caller]
fn wait_keys(port: u16, n: usize) {
    let mut c = Client::connect(port);
    wait_for(&format!("{n} keys on port {port}"), || c.stat("keys") == n.to_string());
}

/// Polls until every link of node `i` is connected (caught up, live).
#[track_caller]
fn wait_links_up(c: &Cluster, i: usize) {
    let mut cl = c.client(i);
    let peers: Vec<usize> = (0..c.ports.len()).filter(|&j| j != i).collect();
    wait_for(&format!("node {i}'s links up"), || {
        let s = cl.stats();
        peers.iter().all(|&j| s.iter().any(|(k, v)| *k == format!("{}.state", c.link(j)) && v == "connected"))
    });
}

/// `GET`s all `keys` in one pipelined write; returns the replies in order.
#[track_caller]
fn get_all(port: u16, keys: &[String]) -> Vec<String> {
    let mut c = Client::connect(port);
    let mut batch = Vec::new();
    for k in keys {
        batch.extend_from_slice(format!("GET {k}\n").as_bytes());
    }
    let writer = {
        let mut s = c.stream.try_clone().expect("clone");
        std::thread::spawn(move || s.write_all(&batch).expect("send GETs"))
    };
    let mut replies = Vec::with_capacity(keys.len());
    for _ in keys {
        replies.push(c.line());
    }
    writer.join().expect("writer");
    replies
}

/// Sends all `lines` in one write and checks every reply is `want`.
#[track_caller]
fn pipeline(port: u16, lines: &[String], want: &str) {
    let mut c = Client::connect(port);
    let batch: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\n").into_bytes()).collect();
    let writer = {
        let mut s = c.stream.try_clone().expect("clone");
        std::thread::spawn(move || s.write_all(&batch).expect("send batch"))
    };
    for l in lines {
        assert_eq!(c.line(), want, "reply to {l:.60}");
    }
    writer.join().expect("writer");
}

#[track_caller]
fn redis_con(port: u16) -> redis::Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("redis url");
    let con = client.get_connection_with_timeout(DEADLINE).expect("redis connection");
    con.set_read_timeout(Some(DEADLINE)).expect("read timeout");
    con
}

#[track_caller]
fn resp_get(con: &mut redis::Connection, key: &[u8]) -> Option<Vec<u8>> {
    redis::cmd("GET").arg(key).query(con).expect("GET")
}

/// Polls until `pred` holds for a RESP `GET key` on `port`.
#[track_caller]
fn wait_resp(port: u16, key: &[u8], want: Option<&[u8]>) {
    let mut con = redis_con(port);
    wait_for(&format!("RESP GET {} on {port} to be {want:?}", key.escape_ascii()), || {
        resp_get(&mut con, key).as_deref() == want
    });
}

// ---------------------------------------------------------------- writes reach every node

#[test]
fn put_and_del_on_any_node_reach_all_three_text_and_resp() {
    let c = Cluster::start(3, &[]);
    for i in 0..3 {
        // Text protocol.
        assert_eq!(c.client(i).cmd(&format!("PUT text{i} from node {i}")), "OK");
        // RESP, with a value no text line could carry.
        let value = format!("bin\r\n\0{i}").into_bytes();
        let mut con = redis_con(c.ports[i]);
        let _: () = redis::cmd("SET").arg(format!("resp{i}")).arg(&value).query(&mut con).expect("SET");
    }
    for i in 0..3 {
        for j in 0..3 {
            wait_value(c.ports[j], &format!("text{i}"), &format!("from node {i}"));
            wait_resp(c.ports[j], format!("resp{i}").as_bytes(), Some(format!("bin\r\n\0{i}").as_bytes()));
        }
    }
    // Each key is deleted on a node other than the one that wrote it: text
    // DEL on the next node, RESP DEL (several keys at once) on the one after.
    for i in 0..3 {
        assert_eq!(c.client((i + 1) % 3).cmd(&format!("DEL text{i}")), "OK");
    }
    let mut con = redis_con(c.ports[2]);
    let n: i64 = redis::cmd("DEL").arg("resp0").arg("resp1").arg("resp2").arg("never").query(&mut con).expect("DEL");
    assert_eq!(n, 3);
    for j in 0..3 {
        for i in 0..3 {
            wait_value(c.ports[j], &format!("text{i}"), "NOT_FOUND");
            wait_resp(c.ports[j], format!("resp{i}").as_bytes(), None);
        }
        wait_keys(c.ports[j], 0);
    }
}

#[test]
fn typed_repl_put_and_repl_del_apply_locally_and_are_never_forwarded() {
    let mut c = Cluster::start(3, &[]);
    let mut n0 = c.client(0);
    assert_eq!(n0.cmd("PUT shared everywhere"), "OK");
    for j in 0..3 {
        wait_value(c.ports[j], "shared", "everywhere");
    }
    assert_eq!(n0.cmd("REPL_PUT manual only here"), "OK");
    assert_eq!(n0.cmd("GET manual"), "only here");
    assert_eq!(n0.cmd("REPL_DEL shared"), "OK");
    assert_eq!(n0.cmd("GET shared"), "NOT_FOUND");
    // A later normal write from the same node travels the same ordered link:
    // once it is on the other nodes, anything forwarded before it would be too.
    assert_eq!(n0.cmd("PUT marker after"), "OK");
    for j in 1..3 {
        wait_value(c.ports[j], "marker", "after");
        let mut cj = c.client(j);
        assert_eq!(cj.cmd("GET manual"), "NOT_FOUND", "REPL_PUT was forwarded to node {j}");
        assert_eq!(cj.cmd("GET shared"), "everywhere", "REPL_DEL was forwarded to node {j}");
    }
    // Nor does a full catch-up scan send them: node 2 loses its data and
    // comes back empty, so node 0 resends everything of its own ("shared"
    // is not among it: node 0's copy is now its local-only tombstone, and
    // node 1 sends only its own writes).
    c.kill9(2);
    std::fs::remove_dir_all(c.dirs[2].path().join("data")).expect("wipe node 2");
    c.restart(2);
    wait_value(c.ports[2], "marker", "after");
    wait_links_up(&c, 0);
    wait_links_up(&c, 1);
    let mut c2 = c.client(2);
    assert_eq!(c2.cmd("GET manual"), "NOT_FOUND");
    assert_eq!(c2.stat("keys"), "1");
    // And node 0 still has its local-only state.
    assert_eq!(n0.cmd("GET manual"), "only here");
    assert_eq!(n0.cmd("GET shared"), "NOT_FOUND");
}

#[test]
fn a_burst_of_10000_pipelined_writes_arrives_complete() {
    let c = Cluster::start(3, &[]);
    let n = 10_000;
    let puts: Vec<String> = (0..n).map(|i| format!("PUT burst{i} value-{i}")).collect();
    pipeline(c.ports[0], &puts, "OK");
    let keys: Vec<String> = (0..n).map(|i| format!("burst{i}")).collect();
    for j in 1..3 {
        wait_keys(c.ports[j], n);
        let got = get_all(c.ports[j], &keys);
        for (i, v) in got.iter().enumerate() {
            assert_eq!(v, &format!("value-{i}"), "node {j}, key burst{i}");
        }
    }
}

// ---------------------------------------------------------------- outages

#[test]
fn a_peer_killed_with_sigkill_catches_up_on_writes_and_deletes() {
    let mut c = Cluster::start(3, &[]);
    let seed: Vec<String> = (0..300).map(|i| format!("PUT k{i} seed{i}")).collect();
    pipeline(c.ports[0], &seed, "OK");
    for j in 0..3 {
        wait_keys(c.ports[j], 300);
    }
    c.kill9(2);
    // While node 2 is down: both other nodes write new keys, overwrite and
    // delete old ones (deletes of keys node 2 holds, and of keys it never saw).
    let on0: Vec<String> =
        (0..200).map(|i| format!("PUT a{i} from0-{i}")).chain((0..50).map(|i| format!("PUT k{i} new0-{i}"))).collect();
    pipeline(c.ports[0], &on0, "OK");
    let dels0: Vec<String> =
        (100..150).map(|i| format!("DEL k{i}")).chain((0..20).map(|i| format!("DEL a{i}"))).collect();
    pipeline(c.ports[0], &dels0, "OK");
    let on1: Vec<String> = (0..200).map(|i| format!("PUT b{i} from1-{i}")).collect();
    pipeline(c.ports[1], &on1, "OK");
    wait_value(c.ports[1], "k149", "NOT_FOUND"); // node 1 has node 0's deletes
    let dels1: Vec<String> =
        (150..200).map(|i| format!("DEL k{i}")).chain((0..20).map(|i| format!("DEL b{i}"))).collect();
    pipeline(c.ports[1], &dels1, "OK");
    let expect = 300 - 100 + 180 + 180;
    wait_keys(c.ports[0], expect);
    c.restart(2);
    wait_keys(c.ports[2], expect);
    let mut keys = Vec::new();
    let mut want = Vec::new();
    for i in 0..300 {
        keys.push(format!("k{i}"));
        want.push(match i {
            0..50 => format!("new0-{i}"),
            100..200 => "NOT_FOUND".into(),
            _ => format!("seed{i}"),
        });
    }
    for i in 0..200 {
        keys.push(format!("a{i}"));
        want.push(if i < 20 { "NOT_FOUND".into() } else { format!("from0-{i}") });
        keys.push(format!("b{i}"));
        want.push(if i < 20 { "NOT_FOUND".into() } else { format!("from1-{i}") });
    }
    assert_eq!(get_all(c.ports[2], &keys), want);
    // The links back to it come up, and new writes flow again.
    wait_links_up(&c, 0);
    wait_links_up(&c, 1);
    assert_eq!(c.client(1).cmd("PUT after restart"), "OK");
    wait_value(c.ports[2], "after", "restart");
}

#[test]
fn late_starters_get_earlier_writes_and_early_starters_reconnect() {
    let mut c = Cluster::planned(3, &[]);
    // Node 0 starts alone: its peers do not exist yet.
    c.start_node(0);
    let mut n0 = c.client(0);
    assert_eq!(n0.cmd("PUT early from-0"), "OK");
    // Its links to absent peers fail and back off (not just "connecting").
    wait_for("node 0's links to back off", || {
        let s = n0.stats();
        (1..3).all(|j| s.iter().any(|(k, v)| *k == format!("{}.state", c.link(j)) && v == "backoff"))
    });
    // Node 1 starts later; node 0's link reaches it after its backoff.
    c.start_node(1);
    assert_eq!(c.client(1).cmd("PUT middle from-1"), "OK");
    wait_value(c.ports[1], "early", "from-0");
    wait_value(c.ports[0], "middle", "from-1");
    // Node 2 starts last and gets everything written before it existed.
    let more: Vec<String> = (0..500).map(|i| format!("PUT m{i} v{i}")).collect();
    pipeline(c.ports[0], &more, "OK");
    c.start_node(2);
    wait_keys(c.ports[2], 502);
    wait_value(c.ports[2], "early", "from-0");
    wait_value(c.ports[2], "middle", "from-1");
    for i in 0..3 {
        wait_links_up(&c, i);
    }
}

// ---------------------------------------------------------------- conflicts

#[test]
fn concurrent_conflicting_writes_converge_on_all_three() {
    let c = Cluster::start(3, &[]);
    const KEYS: usize = 50;
    const ROUNDS: usize = 60;
    // Two writers on two nodes hit the same keys at the same time: puts, and
    // deletes in some rounds; the last round is puts only.
    let writer = |port: u16, tag: &'static str| {
        std::thread::spawn(move || {
            let mut cl = Client::connect(port);
            for r in 0..ROUNDS {
                let mut batch = String::new();
                for k in 0..KEYS {
                    if r + 1 < ROUNDS && (r + k) % 7 == 0 {
                        batch.push_str(&format!("DEL c{k}\n"));
                    } else {
                        batch.push_str(&format!("PUT c{k} {tag}-{r}\n"));
                    }
                }
                cl.send(batch.as_bytes());
                for _ in 0..KEYS {
                    let reply = cl.line();
                    assert!(reply == "OK" || reply == "NOT_FOUND", "{reply}");
                }
            }
        })
    };
    let (a, b) = (writer(c.ports[0], "A"), writer(c.ports[1], "B"));
    a.join().expect("writer A");
    b.join().expect("writer B");
    let keys: Vec<String> = (0..KEYS).map(|k| format!("c{k}")).collect();
    let mut last = Vec::new();
    wait_for("the three nodes to agree", || {
        let views: Vec<Vec<String>> = (0..3).map(|j| get_all(c.ports[j], &keys)).collect();
        last = views.clone();
        views[0] == views[1] && views[1] == views[2]
    });
    // Last writer wins: each key ends with one of the two final writes.
    let finals = [format!("A-{}", ROUNDS - 1), format!("B-{}", ROUNDS - 1)];
    for (k, v) in last[0].iter().enumerate() {
        assert!(finals.contains(v), "c{k} ended as {v:?}");
    }
}

// ---------------------------------------------------------------- a peer that does not read

/// A "peer" that accepts connections, answers the handshake as a node with
/// nothing would (`+HELLO 0 <id>`), and then never reads: the node's link
/// goes live and its frames pile up. (A peer that never answered would
/// leave the link in its handshake, where nothing is queued at all.)
struct DeafPeer {
    port: u16,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DeafPeer {
    #[track_caller]
    fn start() -> DeafPeer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        // A small receive buffer keeps the kernel from absorbing much of
        // what the node sends, so what is not sent stays in the node.
        let small: libc::c_int = 32 << 10;
        // SAFETY: setsockopt on a socket we own, with a pointer to a local int.
        unsafe {
            use std::os::fd::AsRawFd;
            libc::setsockopt(
                listener.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&small as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (s, a) = (stop.clone(), accepted.clone());
        let thread = std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut sock, _)) => {
                        let _ = sock.write_all(b"+HELLO 0 9999\r\n");
                        held.push(sock);
                        a.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        DeafPeer { port, stop, accepted, thread: Some(thread) }
    }
}

impl Drop for DeafPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_peer_that_never_reads_neither_stalls_nor_bloats_its_neighbour() {
    let deaf = DeafPeer::start();
    let dir_a = TempDir::new("deaf-a");
    let dir_b = TempDir::new("deaf-b");
    let ports = ports_ahead(2);
    let limit = 1 << 20;
    let limit_arg = limit.to_string();
    let args_a = ["--peer-queue-limit", limit_arg.as_str(), "--fsync", "no"];
    let a = Server::start_with(dir_a.path(), &args_a, &[ports[1], deaf.port], Some(ports[0]));
    let b = Server::start_with(dir_b.path(), &[], &[ports[0]], Some(ports[1]));
    let deaf_link = format!("peer.127.0.0.1:{}", deaf.port);
    let mut ca = a.client();
    wait_for("the link to the deaf peer to go live", || ca.stat(&format!("{deaf_link}.state")) == "connected");
    let rss0 = a.rss_kib();
    // 32 MiB of values, overwriting the same 16 keys: the store stays at
    // about 0.5 MiB, so only a queue could make the process grow by more.
    let value = "x".repeat(32 << 10);
    let (writes, batch) = (1024, 32);
    let started = Instant::now();
    let mut peak = rss0;
    for round in 0..writes / batch {
        let lines: Vec<String> = (0..batch).map(|i| format!("PUT big{} {round}-{value}", i % 16)).collect();
        pipeline(a.port, &lines, "OK");
        peak = peak.max(a.rss_kib());
    }
    let took = started.elapsed();
    assert!(took < DEADLINE, "{writes} writes of 32 KiB took {took:?}");
    let grown_mib = (peak.saturating_sub(rss0)) as f64 / 1024.0;
    let s = ca.stats();
    let get = |k: &str| s.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
    eprintln!(
        "deaf peer: {writes} writes in {took:?}; RSS {rss0} KiB -> peak {peak} KiB (+{grown_mib:.1} MiB); \
         link state {}, resyncs {}, queued {}, accepted {}",
        get(&format!("{deaf_link}.state")),
        get(&format!("{deaf_link}.resyncs")),
        get(&format!("{deaf_link}.queued_bytes")),
        deaf.accepted.load(Ordering::Relaxed)
    );
    // Without the limit (default 64 MiB) it grows by about 34 MiB; with it,
    // by 5-17 MiB (the 1 MiB batches' buffers, the log's and the undo
    // journal's reused buffers, and what the allocator keeps cached).
    assert!(grown_mib < 24.0, "RSS grew {grown_mib:.1} MiB with a {limit}-byte peer queue limit");
    let queued: usize = get(&format!("{deaf_link}.queued_bytes")).parse().expect("queued_bytes");
    assert!(queued <= limit, "{queued} bytes queued for the deaf peer, over the {limit}-byte limit");
    // The link was dropped and resynced (more than the first sync).
    let resyncs: u64 = get(&format!("{deaf_link}.resyncs")).parse().expect("resyncs");
    assert!(resyncs > 1 || get(&format!("{deaf_link}.state")) != "connected", "link never reset: {s:?}");
    assert!(a.log_text().contains("peer-queue-limit"), "no queue-limit reset in the log:\n{}", a.log_text());
    // The real neighbour got every write meanwhile.
    let keys: Vec<String> = (0..16).map(|i| format!("big{i}")).collect();
    let last_round = writes / batch - 1;
    let want = format!("{last_round}-{value}");
    let mut cb = b.client();
    wait_for("node B to have the last round", || keys.iter().all(|k| cb.cmd(&format!("GET {k}")) == want));
    drop(deaf);
}

// ---------------------------------------------------------------- FLUSHALL

#[test]
fn flushall_over_resp_on_one_node_empties_all_three() {
    let c = Cluster::start(3, &[]);
    for i in 0..3 {
        let puts: Vec<String> = (0..100).map(|k| format!("PUT n{i}k{k} v")).collect();
        pipeline(c.ports[i], &puts, "OK");
    }
    for j in 0..3 {
        wait_keys(c.ports[j], 300);
    }
    let mut con = redis_con(c.ports[1]);
    let _: () = redis::cmd("FLUSHALL").query(&mut con).expect("FLUSHALL");
    for j in 0..3 {
        wait_keys(c.ports[j], 0);
    }
    // Writes after the FLUSHALL are kept everywhere.
    assert_eq!(c.client(2).cmd("PUT fresh after-flush"), "OK");
    for j in 0..3 {
        wait_value(c.ports[j], "fresh", "after-flush");
        wait_keys(c.ports[j], 1);
    }
}

/// A FLUSHALL drops what is older than it, wherever and whenever it lands:
/// a node that gets a newer write first and the FLUSHALL later must keep
/// the write, as the nodes that saw them in the other order did.
#[test]
fn a_flushall_arriving_after_a_newer_write_keeps_it() {
    let mut c = Cluster::start(3, &[]);
    let seed: Vec<String> = (0..5).map(|k| format!("PUT old{k} v")).collect();
    pipeline(c.ports[0], &seed, "OK");
    for j in 0..3 {
        wait_keys(c.ports[j], 5);
    }
    c.kill9(2);
    let mut con = redis_con(c.ports[0]);
    let _: () = redis::cmd("FLUSHALL").query(&mut con).expect("FLUSHALL");
    wait_keys(c.ports[1], 0);
    // Node 1 writes after the FLUSHALL (its version is newer).
    assert_eq!(c.client(1).cmd("PUT newer kept"), "OK");
    wait_value(c.ports[0], "newer", "kept");
    // Node 2 comes back while node 0 is down: node 1's catch-up relays
    // node 0's FLUSHALL (it holds it) before its own newer write, so node 2
    // converges without node 0.
    c.kill9(0);
    c.restart(2);
    wait_value(c.ports[2], "newer", "kept");
    wait_keys(c.ports[2], 1);
    // Node 0 comes back; its own resend of the FLUSHALL changes nothing.
    c.restart(0);
    wait_keys(c.ports[2], 1);
    for j in 0..3 {
        wait_value(c.ports[j], "newer", "kept");
        assert_eq!(stat(c.ports[j], "keys"), "1");
    }
}

// ---------------------------------------------------------------- restarts

#[test]
fn a_whole_cluster_restart_keeps_data_and_watermarks() {
    let mut c = Cluster::start(3, &[]);
    for i in 0..3 {
        let puts: Vec<String> = (0..200).map(|k| format!("PUT n{i}k{k} v{i}-{k}")).collect();
        pipeline(c.ports[i], &puts, "OK");
        let dels: Vec<String> = (0..10).map(|k| format!("DEL n{i}k{k}")).collect();
        pipeline(c.ports[i], &dels, "OK");
    }
    for j in 0..3 {
        wait_keys(c.ports[j], 570);
    }
    // Every link has its peer's acknowledgement of everything: the
    // watermarks that must survive the restart.
    let mut acked = BTreeMap::new();
    for i in 0..3 {
        let sent_of = |s: &[(String, String)], k: &str| s.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let mut cl = c.client(i);
        for j in (0..3).filter(|&j| j != i) {
            let (ks, ka) = (format!("{}.last_sent", c.link(j)), format!("{}.last_acked", c.link(j)));
            wait_for("acks to catch up", || {
                let s = cl.stats();
                sent_of(&s, &ks) == sent_of(&s, &ka)
            });
            acked.insert((i, j), cl.stat(&ka));
        }
    }
    for i in 0..3 {
        c.kill9(i);
    }
    for i in 0..3 {
        c.restart(i);
    }
    let keys: Vec<String> = (0..3).flat_map(|i| (0..200).map(move |k| format!("n{i}k{k}"))).collect();
    let want: Vec<String> = (0..3)
        .flat_map(|i| (0..200).map(move |k| if k < 10 { "NOT_FOUND".to_string() } else { format!("v{i}-{k}") }))
        .collect();
    for j in 0..3 {
        assert_eq!(stat(c.ports[j], "keys"), "570", "node {j} after restart");
        assert_eq!(get_all(c.ports[j], &keys), want, "node {j} after restart");
    }
    for i in 0..3 {
        wait_links_up(&c, i);
    }
    // The peers remembered how far they were: each link came back with the
    // watermark it had before, and its catch-up scan had nothing to send.
    for i in 0..3 {
        let mut cl = c.client(i);
        for j in (0..3).filter(|&j| j != i) {
            let before: u64 = acked[&(i, j)].parse().expect("acked");
            let after: u64 = cl.stat(&format!("{}.last_acked", c.link(j))).parse().expect("acked");
            assert!(after >= before, "node {i}'s link to {j}: watermark {before} before, {after} after");
        }
        let restarted = c.node(i).log_text();
        let caught: Vec<&str> = restarted.lines().filter(|l| l.contains("caught up through")).collect();
        assert!(caught.len() >= 2, "node {i}:\n{restarted}");
        for l in caught {
            assert!(l.contains("(0 records sent by scan"), "node {i} resent data after restart: {l}");
        }
    }
    // And the restarted cluster replicates new writes.
    assert_eq!(c.client(2).cmd("PUT post restart"), "OK");
    for j in 0..3 {
        wait_value(c.ports[j], "post", "restart");
    }
}

/// A node's Lamport clock must never restart below what its peers hold as
/// its watermark: a write it takes before its links are up would get a
/// counter the peer believes it already has, and the catch-up scan (which
/// sends only what is newer than the watermark) would skip it for good.
#[test]
fn a_restarted_node_numbers_its_writes_past_what_its_peers_hold() {
    let mut c = Cluster::start(2, &[]);
    // Node 1's clock runs ahead through writes it never forwards (typed
    // REPL_PUTs), so node 0 learns that clock only from node 1's REPL_SYNCED.
    let manual: Vec<String> = (0..300).map(|i| format!("REPL_PUT local{i} x")).collect();
    pipeline(c.ports[1], &manual, "OK");
    let acked = |port: u16, link: &str| stat(port, &format!("{link}.last_acked")).parse::<u64>().unwrap_or(0);
    // A resync of node 1's link to node 0 carries that clock (REPL_SYNCED)...
    c.kill9(0);
    c.restart(0);
    wait_for("node 0 to take node 1's clock", || acked(c.ports[1], &c.link(0)) >= 300);
    // ... and a resync of node 0's link to node 1 hands it on: node 1 now
    // holds it as node 0's own watermark.
    c.kill9(1);
    c.restart(1);
    wait_for("node 1 to hold node 0's clock as its watermark", || acked(c.ports[0], &c.link(1)) >= 300);
    // Both down; node 0 comes back alone and takes a write at once.
    c.kill9(1);
    c.kill9(0);
    c.restart(0);
    let mut n0 = c.client(0);
    assert_eq!(n0.cmd("PUT while-alone v"), "OK");
    c.restart(1);
    wait_links_up(&c, 0);
    wait_value(c.ports[1], "while-alone", "v");
}

// ---------------------------------------------------------------- scripts/cluster.sh

#[track_caller]
fn script(dir: &Path, base: u16, args: &[&str]) -> (bool, String) {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/scripts/cluster.sh"))
        .args(args)
        .env("KV_CLUSTER_DIR", dir)
        .env("KV_BIN", binary())
        .env("KV_BASE_PORT", base.to_string())
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/cluster.sh");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The pids the script recorded.
fn script_pids(dir: &Path) -> Vec<i32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.extension() == Some("pid".as_ref())
            && let Ok(s) = std::fs::read_to_string(&p)
            && let Ok(pid) = s.trim().parse()
        {
            pids.push(pid);
        }
    }
    pids
}

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

/// Kills what the script started if the test fails midway.
struct ScriptCluster {
    dir: TempDir,
    pids: HashSet<i32>,
}

impl Drop for ScriptCluster {
    fn drop(&mut self) {
        self.pids.extend(script_pids(self.dir.path()));
        for &pid in &self.pids {
            if alive(pid) {
                // SAFETY: kill(2) on a pid this test's script started.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

#[test]
fn cluster_script_starts_reports_and_stops_three_nodes() {
    let base = port_run_ahead(3);
    let mut sc = ScriptCluster { dir: TempDir::new("script"), pids: HashSet::new() };
    let dir = sc.dir.path().join("cluster");
    let (ok, out) = script(&dir, base, &["start", "3"]);
    sc.pids.extend(script_pids(&dir));
    assert!(ok, "start failed:\n{out}");
    assert_eq!(sc.pids.len(), 3, "pids: {out}");
    // A second start of the same cluster is refused while it runs.
    let (ok, again) = script(&dir, base, &["start", "3"]);
    assert!(!ok, "a second start was not refused:\n{again}");
    assert_eq!(script_pids(&dir).len(), 3);
    assert_eq!(Client::connect(base).cmd("PUT via script"), "OK");
    wait_value(base + 2, "via", "script");
    let mut status = String::new();
    wait_for("status to show every link connected", || {
        let (ok, out) = script(&dir, base, &["status"]);
        status = out;
        ok && status.matches("connected").count() >= 6
    });
    for p in 0..3 {
        assert!(status.contains(&(base + p).to_string()), "{status}");
    }
    let (ok, out) = script(&dir, base, &["stop"]);
    assert!(ok, "stop failed:\n{out}");
    for &pid in &sc.pids {
        assert!(!alive(pid), "pid {pid} survived stop:\n{out}");
    }
    let (_, out) = script(&dir, base, &["status"]);
    assert!(!out.contains("running"), "{out}");
}

#[test]
fn cluster_script_reports_a_node_whose_port_is_taken_and_fails() {
    // A server already on the second port, as the README's quick start
    // would be: it answers PING there, but it is not the script's node.
    let base = port_run_ahead(3);
    let other_dir = TempDir::new("taken");
    let mut other = Server::start_with(other_dir.path(), &[], &[], Some(base + 1));
    let mut sc = ScriptCluster { dir: TempDir::new("script-taken"), pids: HashSet::new() };
    let dir = sc.dir.path().join("cluster");
    let (ok, out) = script(&dir, base, &["start", "3"]);
    sc.pids.extend(script_pids(&dir));
    assert!(!ok, "start succeeded although port {} was taken:\n{out}", base + 1);
    assert!(out.contains(&format!("node {} failed to start", base + 1)), "{out}");
    assert!(out.contains("Address already in use"), "the node's log lines are not shown:\n{out}");
    assert!(!out.contains(&format!("node {} up", base + 1)), "{out}");
    // What it started is stopped; the other server is untouched.
    wait_for("the script's nodes to be gone", || sc.pids.iter().all(|&pid| !alive(pid)));
    assert!(other.is_running());
    assert_eq!(Client::connect(base + 1).cmd("PING"), "PONG");
}
