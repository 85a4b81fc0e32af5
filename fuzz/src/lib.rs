//! What kvstore's fuzz targets share: the limits every parser is run under,
//! the checks every parsed request must pass, and a scratch directory for
//! the targets that need files.
//!
//! Each target (`fuzz_targets/*.rs`) calls the project's real functions on
//! the fuzzer's bytes and checks invariants that are cheap to state; a
//! panic, an overflow (the targets are built with debug assertions) or a
//! failed check is a crash, which libFuzzer saves under `fuzz/artifacts/`.
#![deny(missing_docs)]

use std::path::PathBuf;

use kvstore::proto::{Argv, Dialect, Limits, Parsed, ProtoError};

/// A parser's signature: [`kvstore::proto::text::parse`], `resp::parse`, `inline::parse`.
pub type ParseFn = fn(&[u8], &mut Argv, &Limits) -> Result<Parsed, ProtoError>;

/// The limits each parser runs under, once per input: the server's
/// defaults, and tight ones that the fuzzer's short inputs can exceed, so
/// that the paths of a request over a limit are fuzzed too.
pub fn limits() -> [Limits; 2] {
    [Limits::default(), Limits { max_line: 40, max_bulk: 16, max_args: 4 }]
}

/// Checks a request a parser said took `consumed` bytes of `buf`: at least
/// one byte and no more than there are, every span within the buffer it
/// indexes, no more arguments than the limit (RESP and inline); returns
/// its arguments.
#[track_caller]
pub fn check_request(buf: &[u8], argv: &Argv, dialect: Dialect, consumed: usize, limits: &Limits) -> Vec<Vec<u8>> {
    assert!(consumed >= 1 && consumed <= buf.len(), "consumed {consumed} of {}", buf.len());
    // The text protocol has no limit of its own on words: its line's has it.
    if dialect != Dialect::Text {
        assert!(argv.len() <= limits.max_args, "{} arguments over the limit {}", argv.len(), limits.max_args);
    }
    let input = argv.input(dialect, buf);
    for &(s, e) in argv.spans() {
        assert!(s <= e && e as usize <= input.len(), "span {s}..{e} out of {} bytes", input.len());
        if dialect != Dialect::Inline {
            assert!((e as usize) <= consumed, "span {s}..{e} past the request's {consumed} bytes");
        }
    }
    (0..argv.len()).map(|i| argv.get(input, i).to_vec()).collect()
}

/// Runs `parse` (of `dialect`) on `data` under each of [`limits`], and
/// for each request it finds checks that:
/// - the request is sane ([`check_request`]);
/// - it does not depend on what follows it: parsed alone, it is the same;
/// - every strict prefix of it is incomplete (cut at a few points);
/// - `encode`, which writes arguments back as a request of this dialect,
///   gives bytes that parse back to the same arguments, whole.
///
/// Then it goes on with what follows the request, as a connection would.
pub fn check_parser(data: &[u8], parse: ParseFn, dialect: Dialect, encode: fn(&[Vec<u8>], &mut Vec<u8>)) {
    let (mut argv, mut again) = (Argv::new(), Argv::new());
    let mut rng = seed_of(data);
    let mut enc = Vec::new();
    for limits in limits() {
        let mut pos = 0;
        while pos < data.len() {
            let buf = &data[pos..];
            let Ok(Parsed::Request { consumed }) = parse(buf, &mut argv, &limits) else { break };
            let args = check_request(buf, &argv, dialect, consumed, &limits);
            let req = &buf[..consumed];
            assert_eq!(parse(req, &mut again, &limits), Ok(Parsed::Request { consumed }), "the request alone");
            assert_eq!(check_request(req, &again, dialect, consumed, &limits), args, "the request alone");
            for cut in [0, consumed - 1, next(&mut rng) as usize % consumed] {
                assert_eq!(parse(&req[..cut], &mut again, &limits), Ok(Parsed::Incomplete), "cut at {cut}");
            }
            enc.clear();
            encode(&args, &mut enc);
            // An encoding may be longer than the original (inline quoting):
            // only one within the limits must parse back.
            if enc.len() <= limits.max_line || dialect == Dialect::Resp {
                assert_eq!(
                    parse(&enc, &mut again, &limits),
                    Ok(Parsed::Request { consumed: enc.len() }),
                    "re-encoded {:?}",
                    enc.escape_ascii().to_string()
                );
                assert_eq!(check_request(&enc, &again, dialect, enc.len(), &limits), args, "re-encoded");
            }
            pos += consumed;
        }
    }
}

/// A directory of this process's own for a target's files, emptied: on
/// tmpfs where there is one (`/dev/shm`), so that fsyncs cost nothing.
pub fn scratch_dir(target: &str) -> PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    let root = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
    let dir = root.join(format!("kvstore-fuzz-{target}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A small deterministic PRNG (xorshift64*) seeded from the input, for
/// choices a target makes about an input (where to cut it) that must repeat
/// when the input is replayed.
pub fn seed_of(data: &[u8]) -> u64 {
    // FNV-1a: any spread will do.
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)) | 1
}

/// The next number of the PRNG of [`seed_of`].
pub fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// The wall clock every node target starts at (milliseconds since the
/// epoch): fixed, so that a crash replays exactly.
const WALL0: u64 = 1_700_000_000_000;

/// Loop iterations a node target runs at most: enough for a blocked
/// command (WAIT with a timeout, SAVE) to end, bounded so that one input
/// cannot run forever.
const STEPS: u64 = 64;

/// Time that passes per loop iteration, so that short deadlines (PX 50,
/// WAIT 0 100) pass within the run.
const STEP_MS: u64 = 100;

/// Runs `data` as one client connection's input through a whole node, as
/// the reactor drives it: a node opened in an empty directory (with one
/// peer that never answers if `with_peer`: a replicated store, which keeps
/// tombstones and queues frames), then loop iterations of
/// [`kvstore::node::Node::process`] (the first on half the input, as if it
/// came in two reads), the log commit (`before_sleep`), blocked clients'
/// answers, kills, MONITOR lines and `advance`, with time passing.
///
/// Checks that process takes no more than it has, that a held reply lies
/// within the output, that no log commit fails, and last that the node,
/// opened again on its log, holds exactly the keys, values, versions and
/// deadlines it held (one apply path for live writes and replay).
pub fn run_node(data: &[u8], with_peer: bool) {
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    use kvstore::config::{Args, Config};
    use kvstore::node::clients::Buffers;
    use kvstore::node::{Commit, Node, Ready};

    let dir = scratch_dir(if with_peer { "node-peer" } else { "node" });
    let d = dir.display().to_string();
    let mut args = vec!["0", "--dir", &d, "--fsync", "no"];
    if with_peer {
        args.insert(1, "127.0.0.1:1");
    }
    let args: Args = argh::FromArgs::from_args(&["kvstore-server"], &args).expect("node options");
    let cfg = Config::from_args(args).expect("node config");
    let t0 = Instant::now();
    let (mut node, _) = Node::open_at(cfg.clone(), 1, t0, WALL0).expect("open a node in an empty directory");
    let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let mut session = node.client_connected(1, addr(5000), addr(6379), 7);
    let mut ready = Ready::default();
    let mut out = Vec::new();
    let (mut pos, mut avail) = (0, data.len() / 2);
    let (mut blocked, mut closed) = (false, false);
    let mut wall = WALL0;
    for step in 0..STEPS {
        let now = t0 + Duration::from_millis(step * STEP_MS);
        wall = WALL0 + step * STEP_MS;
        node.set_time(now, wall);
        let mut idle = blocked;
        if !blocked && !closed {
            let p = node.process(&mut session, &data[pos..avail], &mut out, 0);
            assert!(p.consumed <= avail - pos, "consumed {} of {}", p.consumed, avail - pos);
            if let Some((at, _)) = p.held {
                assert!(at <= out.len(), "held reply at {at} past the output's {}", out.len());
            }
            pos += p.consumed;
            (blocked, closed) = (p.blocked, p.close);
            idle = p.consumed == 0 && !p.paused && !p.blocked;
            node.client_seen(&session, Buffers::default());
        }
        node.before_sleep(now, &mut ready);
        assert!(!matches!(ready.commit, Commit::Failed(_)), "log commit: {:?}", ready.commit);
        for t in ready.unblocked.drain(..) {
            if t.id == session.id {
                node.finish_blocked(&session, &mut out);
                blocked = false;
            }
        }
        let _ = node.monitor_feed();
        node.monitor_fed();
        closed |= node.take_kills().iter().any(|k| k.target.id == session.id);
        node.advance(now);
        // The output is written: the next iteration starts with it empty.
        out.clear();
        if closed && !blocked {
            break;
        }
        if idle && avail < data.len() {
            avail = data.len(); // the second read
        } else if idle && pos == avail {
            break;
        }
    }
    node.client_closed(&session);
    let held = keyspace(node.store());
    drop(node);
    let (node, _) = Node::open_at(cfg, 1, t0, wall).expect("reopen the node on its log");
    assert_eq!(keyspace(node.store()), held, "the keyspace replayed from the log");
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A key's value, version and deadline.
type Entry = (Vec<u8>, kvstore::storage::record::Version, Option<u64>);

/// Every live key of `store`, with its value, version and deadline.
fn keyspace(store: &kvstore::storage::store::Store) -> std::collections::BTreeMap<Vec<u8>, Entry> {
    (0..store.slots())
        .filter_map(|i| store.slot(i))
        .filter_map(|s| Some((s.key.to_vec(), (s.value?.to_vec(), s.version, s.deadline))))
        .collect()
}
