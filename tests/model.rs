//! Property tests against a model: random command sequences, in both
//! protocols, give the replies a `HashMap` would, and replaying the log they
//! leave rebuilds exactly the same store. The commands go through the real
//! parsers, executor, store and log (no sockets: those are tested elsewhere).

use std::collections::HashMap;
use std::time::Instant;

use argh::FromArgs;
use kvstore::config::{Args, Config};
use kvstore::node::{Commit, Node, Ready, Session};
use kvstore::proto::{Argv, Dialect, Limits, Parsed, resp, text};
use proptest::prelude::*;

mod common;
use common::TempDir;

#[derive(Debug, Clone)]
enum Cmd {
    Put(u8, Vec<u8>),
    Get(u8),
    Del(u8),
    Set(u8, Vec<u8>),
    RGet(u8),
    RDel(Vec<u8>),
    Exists(Vec<u8>),
    MSet(Vec<(u8, Vec<u8>)>),
    FlushAll,
}

fn key(k: u8) -> Vec<u8> {
    format!("key{k}").into_bytes()
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    // Text values: no line breaks, and not starting with a space (the text
    // protocol keeps leading spaces, which is fine, but keeps the model simple).
    proptest::collection::vec(prop_oneof![b'a'..=b'z', Just(b' '), Just(b'0')], 0..12)
}

fn cmd() -> impl Strategy<Value = Cmd> {
    let k = 0u8..8;
    prop_oneof![
        4 => (k.clone(), value()).prop_map(|(k, v)| Cmd::Put(k, v)),
        3 => k.clone().prop_map(Cmd::Get),
        2 => k.clone().prop_map(Cmd::Del),
        3 => (k.clone(), proptest::collection::vec(any::<u8>(), 0..12)).prop_map(|(k, v)| Cmd::Set(k, v)),
        2 => k.clone().prop_map(Cmd::RGet),
        1 => proptest::collection::vec(k.clone(), 1..4).prop_map(Cmd::RDel),
        1 => proptest::collection::vec(k.clone(), 1..4).prop_map(Cmd::Exists),
        1 => proptest::collection::vec((k, proptest::collection::vec(any::<u8>(), 0..6)), 1..4).prop_map(Cmd::MSet),
        1 => Just(Cmd::FlushAll),
    ]
}

fn resp_request(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    resp::array(&mut out, args.len());
    for a in args {
        resp::bulk(&mut out, a);
    }
    out
}

/// Encodes a command as it would arrive on the wire, and the reply the model expects.
fn wire_and_expected(c: &Cmd, model: &mut HashMap<Vec<u8>, Vec<u8>>) -> (Vec<u8>, Vec<u8>) {
    let mut exp = Vec::new();
    let wire = match c {
        Cmd::Put(k, v) => {
            model.insert(key(*k), v.clone());
            text::line(&mut exp, b"OK");
            [b"PUT ".as_slice(), &key(*k), b" ", v, b"\n"].concat()
        }
        Cmd::Get(k) => {
            match model.get(&key(*k)) {
                Some(v) if !v.contains(&b'\n') && !v.contains(&b'\r') => text::line(&mut exp, v),
                Some(_) => text::line(&mut exp, b"ERROR the value holds a line break; read it over RESP (redis-cli)"),
                None => text::line(&mut exp, b"NOT_FOUND"),
            }
            [b"GET ".as_slice(), &key(*k), b"\n"].concat()
        }
        Cmd::Del(k) => {
            text::line(&mut exp, if model.remove(&key(*k)).is_some() { b"OK" } else { b"NOT_FOUND" });
            [b"DEL ".as_slice(), &key(*k), b"\n"].concat()
        }
        Cmd::Set(k, v) => {
            model.insert(key(*k), v.clone());
            resp::simple(&mut exp, b"OK");
            resp_request(&[b"SET", &key(*k), v])
        }
        Cmd::RGet(k) => {
            match model.get(&key(*k)) {
                Some(v) => resp::bulk(&mut exp, v),
                None => resp::null(&mut exp, false),
            }
            resp_request(&[b"GET", &key(*k)])
        }
        Cmd::RDel(ks) => {
            let keys: Vec<Vec<u8>> = ks.iter().map(|k| key(*k)).collect();
            let n = keys.iter().filter(|k| model.remove(*k).is_some()).count();
            resp::int(&mut exp, n as i64);
            let mut args: Vec<&[u8]> = vec![b"DEL"];
            args.extend(keys.iter().map(Vec::as_slice));
            resp_request(&args)
        }
        Cmd::Exists(ks) => {
            let keys: Vec<Vec<u8>> = ks.iter().map(|k| key(*k)).collect();
            resp::int(&mut exp, keys.iter().filter(|k| model.contains_key(*k)).count() as i64);
            let mut args: Vec<&[u8]> = vec![b"EXISTS"];
            args.extend(keys.iter().map(Vec::as_slice));
            resp_request(&args)
        }
        Cmd::MSet(pairs) => {
            let mut owned: Vec<Vec<u8>> = vec![b"MSET".to_vec()];
            for (k, v) in pairs {
                model.insert(key(*k), v.clone());
                owned.push(key(*k));
                owned.push(v.clone());
            }
            resp::simple(&mut exp, b"OK");
            resp_request(&owned.iter().map(Vec::as_slice).collect::<Vec<_>>())
        }
        Cmd::FlushAll => {
            model.clear();
            resp::simple(&mut exp, b"OK");
            resp_request(&[b"FLUSHALL"])
        }
    };
    (wire, exp)
}

fn config(dir: &std::path::Path) -> Config {
    let d = dir.to_str().unwrap();
    Config::from_args(Args::from_args(&["kvstore-server"], &["7000", "--dir", d, "--fsync", "no"]).unwrap()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn replies_match_a_hashmap_and_replay_rebuilds_the_store(cmds in proptest::collection::vec(cmd(), 1..60)) {
        let dir = TempDir::new("model");
        let (mut node, _) = Node::open(config(dir.path()), 7000, Instant::now()).unwrap();
        let mut session = Session::default();
        let mut ready = Ready::default();
        let mut model = HashMap::new();
        let mut argv = Argv::new();
        let limits = Limits::default();
        for (i, c) in cmds.iter().enumerate() {
            let (wire, expected) = wire_and_expected(c, &mut model);
            let dialect = Dialect::of(&wire, &limits);
            let parsed = dialect.parse(&wire, &mut argv, &limits);
            prop_assert_eq!(parsed, Ok(Parsed::Request { consumed: wire.len() }));
            let mut out = Vec::new();
            node.handle(&mut session, dialect, &argv, &wire, &mut out);
            prop_assert_eq!(
                String::from_utf8_lossy(&out), String::from_utf8_lossy(&expected), "command {} {:?}", i, c
            );
            // As the server does once per loop iteration.
            if i % 3 == 2 {
                node.before_sleep(Instant::now(), &mut ready);
                prop_assert!(!matches!(ready.commit, Commit::Failed(_)));
                node.advance(Instant::now());
            }
        }
        node.before_sleep(Instant::now(), &mut ready);
        node.advance(Instant::now());
        prop_assert!(!matches!(ready.commit, Commit::Failed(_)));
        prop_assert_eq!(node.store().len(), model.len());
        drop(node);
        // The server's own start-up path replays the log.
        let (replayed, _) = Node::open(config(dir.path()), 7000, Instant::now()).unwrap();
        prop_assert_eq!(replayed.store().len(), model.len());
        for (k, v) in &model {
            prop_assert_eq!(replayed.store().get(k), Some(v.as_slice()));
        }
    }
}
