//! CONFIG: the settings, under Redis's names where Redis has one and under
//! their command-line names otherwise.
//!
//! CONFIG SET changes what can change while the server runs, which is what
//! the node and the reactor read afresh at each use: `maxclients`, the
//! output limits, the request limits, the compaction thresholds
//! (`auto-aof-rewrite-*`), the tombstone grace. What was built from a
//! setting at start cannot: the log's fsync policy (`appendfsync`; the log
//! has no way to change it), the largest record the log accepts
//! (`proto-max-bulk-len`: a larger value could write records that the next
//! start's replay refuses), the peers and their queue limit, the address,
//! the directory. Settings Redis has and kvstore has not are shown at the
//! value that says so (`maxmemory 0`, `save ""`, `timeout 0`), and
//! accepted only at that value.

use super::command::{help_reply, subcommand};
use super::{CommandSpec, Ctx, Flow};
use crate::config::Config;
use crate::node::Node;
use crate::proto::resp;

use super::flag::*;

/// CONFIG's subcommands.
pub const SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::sub("CONFIG|GET", -3, ADMIN | NOSCRIPT | LOADING | STALE, get)
        .doc("Returns the effective values of configuration parameters.", "2.0.0", "server")
        .complexity("O(N) when N is the number of configuration parameters provided"),
    CommandSpec::sub("CONFIG|SET", -4, ADMIN | NOSCRIPT | LOADING | STALE, set)
        .doc("Sets configuration parameters in-flight.", "2.0.0", "server")
        .complexity("O(N) when N is the number of configuration parameters provided"),
    CommandSpec::sub("CONFIG|RESETSTAT", 2, ADMIN | NOSCRIPT | LOADING | STALE, resetstat)
        .doc("Resets the server's statistics.", "2.0.0", "server")
        .complexity("O(1)"),
    CommandSpec::sub("CONFIG|REWRITE", 2, ADMIN | NOSCRIPT | LOADING | STALE, rewrite)
        .doc("Persists the effective configuration to file.", "2.8.0", "server")
        .complexity("O(1)"),
    CommandSpec::sub("CONFIG|HELP", 2, LOADING | STALE, help)
        .doc("Returns helpful text about the different subcommands.", "5.0.0", "server")
        .complexity("O(1)"),
];

/// `CONFIG <subcommand> ...`.
pub fn config(cx: &mut Ctx<'_>) -> Flow {
    subcommand(cx, "CONFIG", SUBCOMMANDS)
}

/// Sets a parameter in a configuration being prepared, or says why not (the
/// text after Redis's "CONFIG SET failed (possibly related to argument
/// 'x') - ").
type Setter = fn(&mut Config, &str) -> Result<(), String>;

/// One parameter: its name, its value now, and how to set it if it can
/// change while running.
struct Param {
    name: &'static str,
    get: fn(&Node) -> String,
    set: Option<Setter>,
}

const fn param(name: &'static str, get: fn(&Node) -> String, set: Option<Setter>) -> Param {
    Param { name, get, set }
}

const IMMUTABLE: &str = "can't set immutable config";

/// Every parameter, in the order CONFIG GET * lists them.
static PARAMS: &[Param] = &[
    param("bind", |n| n.cfg.listen.ip().to_string(), None),
    param("port", |n| n.cfg.listen.port().to_string(), None),
    param("dir", |n| n.cfg.dir.display().to_string(), None),
    param("databases", |_| "1".into(), None),
    param("daemonize", |_| "no".into(), None),
    param("cluster-enabled", |_| "no".into(), None),
    param("appendonly", |_| "yes".into(), Some(|_, v| only(v, "yes", "kvstore always keeps its log"))),
    param("appendfilename", file_name, None),
    param(
        "appendfsync",
        |n| n.cfg.fsync.to_string(),
        Some(|_, _| Err("the log's fsync policy is fixed at start (--fsync)".into())),
    ),
    param("save", |_| String::new(), Some(|_, v| only(v, "", "kvstore makes no RDB snapshots; its log is compacted"))),
    param(
        "maxclients",
        |n| n.cfg.max_clients.to_string(),
        Some(|c, v| {
            c.max_clients = int(v, 1, u32::MAX.into())?;
            Ok(())
        }),
    ),
    param("maxmemory", |_| "0".into(), Some(|_, v| if memory(v)? == 0 { Ok(()) } else { Err(NO_EVICTION.into()) })),
    param("maxmemory-policy", |_| "noeviction".into(), Some(|_, v| only(v, "noeviction", NO_EVICTION))),
    param(
        "timeout",
        |n| n.cfg.timeout.as_secs().to_string(),
        Some(|c, v| {
            c.timeout = std::time::Duration::from_secs(int(v, 0, 100 * 365 * 86_400)? as u64);
            Ok(())
        }),
    ),
    param("proto-max-bulk-len", |n| n.cfg.limits.max_bulk.to_string(), None),
    param(
        "client-query-buffer-limit",
        |n| n.cfg.max_request.to_string(),
        Some(|c, v| {
            c.max_request = memory(v)?;
            Ok(())
        }),
    ),
    param("client-output-buffer-limit", output_limits, Some(set_output_limits)),
    param("auto-aof-rewrite-percentage", |n| percentage(n.cfg.compact_multiple).to_string(), Some(set_percentage)),
    param(
        "auto-aof-rewrite-min-size",
        |n| n.cfg.compact_min_bytes.to_string(),
        Some(|c, v| {
            c.compact_min_bytes = memory(v)? as u64;
            Ok(())
        }),
    ),
    param(
        "max-line",
        |n| n.cfg.limits.max_line.to_string(),
        Some(|c, v| {
            c.limits.max_line = memory(v)?;
            Ok(())
        }),
    ),
    param(
        "max-args",
        |n| n.cfg.limits.max_args.to_string(),
        Some(|c, v| {
            c.limits.max_args = int(v, 1, i64::MAX)?;
            Ok(())
        }),
    ),
    param(
        "output-soft-limit",
        |n| n.cfg.output_soft_limit.to_string(),
        Some(|c, v| {
            c.output_soft_limit = memory(v)?;
            Ok(())
        }),
    ),
    param(
        "output-hard-limit",
        |n| n.cfg.output_hard_limit.to_string(),
        Some(|c, v| {
            c.output_hard_limit = memory(v)?;
            Ok(())
        }),
    ),
    param("peer-queue-limit", |n| n.cfg.peer_queue_limit.to_string(), None),
    param(
        "tombstone-grace",
        |n| n.cfg.tombstone_grace.as_secs().to_string(),
        Some(|c, v| {
            c.tombstone_grace = std::time::Duration::from_secs(int(v, 0, i64::MAX)? as u64);
            Ok(())
        }),
    ),
    param("node-id", |n| n.id.to_string(), None),
    param("peers", |n| n.cfg.peer_names.join(","), None),
];

const NO_EVICTION: &str = "kvstore does not evict keys";

fn file_name(n: &Node) -> String {
    n.log.path().file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Accepts only `want` (any case), for a setting kvstore has at one value.
fn only(v: &str, want: &str, why: &str) -> Result<(), String> {
    if v.eq_ignore_ascii_case(want) { Ok(()) } else { Err(format!("{why}: only '{want}' is accepted")) }
}

/// An integer in `min..=max`, with Redis's errors.
fn int(v: &str, min: i64, max: i64) -> Result<usize, String> {
    let n = resp::parse_int(v.as_bytes()).ok_or("argument couldn't be parsed into an integer")?;
    if n < min || n > max {
        return Err(format!("argument must be between {min} and {max} inclusive"));
    }
    usize::try_from(n).map_err(|_| "argument is out of range".into())
}

/// A memory size, as Redis reads one: digits and an optional unit (`k`,
/// `kb`, `m`, `mb`, `g`, `gb`, any case; `k` is 1000 and `kb` 1024).
pub fn parse_memory(v: &str) -> Option<u64> {
    let lower = v.to_ascii_lowercase();
    let digits = lower.find(|c: char| !c.is_ascii_digit()).unwrap_or(lower.len());
    let unit = match &lower[digits..] {
        "" | "b" => 1,
        "k" => 1_000,
        "kb" => 1 << 10,
        "m" => 1_000_000,
        "mb" => 1 << 20,
        "g" => 1_000_000_000,
        "gb" => 1 << 30,
        _ => return None,
    };
    if digits == 0 {
        return None;
    }
    lower[..digits].parse::<u64>().ok()?.checked_mul(unit)
}

fn memory(v: &str) -> Result<usize, String> {
    let n = parse_memory(v).ok_or("argument must be a memory value")?;
    usize::try_from(n).map_err(|_| "argument is out of range".into())
}

/// `--compact-multiple` as Redis's percentage of growth (0: off).
fn percentage(multiple: f64) -> i64 {
    if multiple <= 0.0 { 0 } else { ((multiple - 1.0) * 100.0).round() as i64 }
}

fn set_percentage(c: &mut Config, v: &str) -> Result<(), String> {
    let pct = int(v, 0, i32::MAX.into())?;
    c.compact_multiple = if pct == 0 { 0.0 } else { 1.0 + pct as f64 / 100.0 };
    Ok(())
}

/// Redis's three classes: `normal` is the client output hard limit
/// (disconnect past it; kvstore's soft limit pauses reading instead of
/// disconnecting, so it is not Redis's soft limit and shows as 0); the
/// peers' queue limit plays `slave`'s hard limit; there is no pub/sub.
fn output_limits(n: &Node) -> String {
    format!("normal {} 0 0 slave {} 0 0 pubsub 0 0 0", n.cfg.output_hard_limit, n.cfg.peer_queue_limit)
}

/// Only the normal class's hard limit can change, and not to 0 (kvstore
/// bounds every client's output); the others must stay as shown.
fn set_output_limits(c: &mut Config, v: &str) -> Result<(), String> {
    let words: Vec<&str> = v.split_whitespace().collect();
    if words.is_empty() || !words.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.".into());
    }
    for w in words.chunks(4) {
        let class = w[0].to_ascii_lowercase();
        let (hard, soft, secs) = (memory(w[1])?, memory(w[2])?, int(w[3], 0, i64::MAX)?);
        match class.as_str() {
            "normal" if hard == 0 => return Err("kvstore keeps a hard limit on every client's output: not 0".into()),
            "normal" if soft == 0 && secs == 0 => c.output_hard_limit = hard,
            "normal" => return Err("kvstore has no timed soft limit: soft and seconds must be 0".into()),
            "slave" | "replica" if (hard, soft, secs) == (c.peer_queue_limit, 0, 0) => {}
            "pubsub" if (hard, soft, secs) == (0, 0, 0) => {}
            "slave" | "replica" | "pubsub" => return Err(format!("the {class} class is fixed here")),
            _ => return Err("Invalid client class specified in buffer limit configuration.".into()),
        }
    }
    Ok(())
}

/// The checks of [`Config::from_args`] that settings changed together must
/// pass; the error names the setting it is about.
fn check(c: &Config) -> Result<(), (&'static str, String)> {
    if c.max_request >= u32::MAX as usize || c.max_request < c.limits.max_line {
        return Err(("client-query-buffer-limit", "must be at least max-line and below 4 GiB".into()));
    }
    if c.limits.max_bulk > c.max_request {
        return Err(("client-query-buffer-limit", "must be at least proto-max-bulk-len".into()));
    }
    if c.output_soft_limit == 0 || c.limits.max_line == 0 {
        return Err(("output-soft-limit", "must be positive".into()));
    }
    if c.output_hard_limit < c.output_soft_limit {
        return Err(("output-hard-limit", "must be at least output-soft-limit".into()));
    }
    Ok(())
}

/// Glob match in any case, as CONFIG GET and COMMAND LIST patterns use:
/// Redis's `stringmatchlen` with nocase, from [`super::glob`] (which KEYS
/// and SCAN use too).
pub fn glob(pattern: &[u8], s: &[u8]) -> bool {
    super::glob::matches(pattern, s, true)
}

/// `CONFIG GET pattern ...`: name/value pairs. A name without glob
/// characters is answered under the name as given, as Redis does; each
/// parameter once, whatever matched it.
fn get(cx: &mut Ctx<'_>) -> Flow {
    let (node, a, r3, out) = (&*cx.node, cx.args, cx.resp3(), &mut *cx.out);
    let mut hits: Vec<(String, usize)> = Vec::new();
    for pat in a.iter(2) {
        let is_glob = pat.iter().any(|c| matches!(c, b'*' | b'?' | b'['));
        for (i, p) in PARAMS.iter().enumerate() {
            let hit = if is_glob { glob(pat, p.name.as_bytes()) } else { pat.eq_ignore_ascii_case(p.name.as_bytes()) };
            if hit && hits.iter().all(|(_, j)| *j != i) {
                let shown = if is_glob { p.name.to_string() } else { String::from_utf8_lossy(pat).into_owned() };
                hits.push((shown, i));
            }
        }
    }
    resp::map(out, hits.len(), r3);
    for (name, i) in hits {
        resp::bulk(out, name.as_bytes());
        resp::bulk(out, (PARAMS[i].get)(node).as_bytes());
    }
    Flow::Continue
}

/// `CONFIG SET name value [name value ...]`: all of them or none, as in
/// Redis 7.
fn set(cx: &mut Ctx<'_>) -> Flow {
    let a = cx.args;
    if !a.len().is_multiple_of(2) {
        super::wrong_args(cx.out, "CONFIG|SET");
        return Flow::Continue;
    }
    let failed = |out: &mut Vec<u8>, name: &str, why: &str| {
        let msg = format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {why}");
        resp::error(out, msg.as_bytes());
        Flow::Continue
    };
    let mut next = cx.node.cfg.clone();
    let mut seen: Vec<usize> = Vec::new();
    for pair in (2..a.len()).step_by(2) {
        let (name, value) = (a.get(pair), String::from_utf8_lossy(a.get(pair + 1)));
        let Some(i) = PARAMS.iter().position(|p| name.eq_ignore_ascii_case(p.name.as_bytes())) else {
            let msg = format!(
                "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
                String::from_utf8_lossy(name)
            );
            resp::error(cx.out, msg.as_bytes());
            return Flow::Continue;
        };
        let p = &PARAMS[i];
        if seen.contains(&i) {
            return failed(cx.out, p.name, "duplicate parameter");
        }
        seen.push(i);
        let Some(setter) = p.set else { return failed(cx.out, p.name, IMMUTABLE) };
        if let Err(why) = setter(&mut next, &value) {
            return failed(cx.out, p.name, &why);
        }
    }
    if let Err((name, why)) = check(&next) {
        return failed(cx.out, name, &why);
    }
    cx.node.cfg = next;
    resp::simple(cx.out, b"OK");
    Flow::Continue
}

/// `CONFIG RESETSTAT`: the INFO counters back to 0.
fn resetstat(cx: &mut Ctx<'_>) -> Flow {
    cx.node.stats.reset();
    resp::simple(cx.out, b"OK");
    Flow::Continue
}

/// `CONFIG REWRITE`: the settings come from the command line.
fn rewrite(cx: &mut Ctx<'_>) -> Flow {
    resp::error(cx.out, b"ERR The server is running without a config file");
    Flow::Continue
}

fn help(cx: &mut Ctx<'_>) -> Flow {
    let lines: &[&str] = &[
        "GET <pattern>",
        "    Return parameters matching the glob-like <pattern> and their values.",
        "SET <directive> <value>",
        "    Set the configuration <directive> to <value>.",
        "RESETSTAT",
        "    Reset statistics reported by the INFO command.",
        "REWRITE",
        "    Rewrite the configuration file.",
    ];
    help_reply(cx.out, "CONFIG", lines);
    Flow::Continue
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_patterns() {
        assert!(glob(b"*", b"save"));
        assert!(glob(b"save", b"save"));
        assert!(glob(b"app*", b"appendonly"));
        assert!(glob(b"a?pendonly", b"appendonly"));
        assert!(glob(b"APPEND*", b"appendfsync"), "any case");
        assert!(glob(b"*-limit", b"client-query-buffer-limit"));
        assert!(glob(b"max*", b"maxmemory-policy") && glob(b"*o*o*", b"maxmemory-policy"));
        assert!(glob(b"[ab]ind", b"bind") && !glob(b"[^b]ind", b"bind") && glob(b"[a-c]ind", b"bind"));
        assert!(glob(b"x\\*", b"x*") && !glob(b"x\\*", b"xy"));
        assert!(!glob(b"save", b"saves"));
        assert!(!glob(b"x*", b"save"));
        // As Redis's stringmatchlen: an empty string matches only the empty
        // pattern (no parameter has an empty name).
        assert!(!glob(b"", b"a") && glob(b"", b"") && !glob(b"**", b""));
        // No exponential backtracking.
        assert!(!glob(&[b"*a".repeat(30), b"b".to_vec()].concat(), &[b'a'; 200]));
    }

    #[test]
    fn memory_values_as_redis_reads_them() {
        assert_eq!(parse_memory("1024"), Some(1024));
        assert_eq!(parse_memory("64mb"), Some(64 << 20));
        assert_eq!(parse_memory("1GB"), Some(1 << 30));
        assert_eq!(parse_memory("2k"), Some(2000));
        assert_eq!(parse_memory("1kb"), Some(1024));
        for bad in ["", "mb", "-1", "1x", "1.5mb", "99999999999999999999"] {
            assert_eq!(parse_memory(bad), None, "{bad}");
        }
    }

    #[test]
    fn integers_and_percentages() {
        assert_eq!(int("5", 1, 10), Ok(5));
        assert_eq!(int("abc", 1, 10).unwrap_err(), "argument couldn't be parsed into an integer");
        assert_eq!(int("0", 1, 4294967295).unwrap_err(), "argument must be between 1 and 4294967295 inclusive");
        assert_eq!(percentage(2.0), 100);
        assert_eq!(percentage(0.0), 0);
        let mut c = test_config();
        set_percentage(&mut c, "50").unwrap();
        assert_eq!(c.compact_multiple, 1.5);
        set_percentage(&mut c, "0").unwrap();
        assert_eq!(c.compact_multiple, 0.0);
    }

    #[test]
    fn output_limits_change_only_the_normal_hard_limit() {
        let mut c = test_config();
        let slave = c.peer_queue_limit;
        set_output_limits(&mut c, &format!("normal 1mb 0 0 slave {slave} 0 0 pubsub 0 0 0")).unwrap();
        assert_eq!(c.output_hard_limit, 1 << 20);
        assert!(set_output_limits(&mut c, "normal 0 0 0").is_err(), "unbounded");
        assert!(set_output_limits(&mut c, "normal 1mb 1mb 60").is_err(), "timed soft limit");
        assert!(set_output_limits(&mut c, "pubsub 1 0 0").is_err());
        assert!(set_output_limits(&mut c, "normal 1mb 0").is_err());
        assert!(set_output_limits(&mut c, "other 1 0 0").is_err());
        c.output_soft_limit = 2 << 20;
        assert_eq!(check(&c).unwrap_err().0, "output-hard-limit");
    }

    #[test]
    fn every_parameter_name_is_unique_and_lower_case() {
        for (i, p) in PARAMS.iter().enumerate() {
            assert_eq!(p.name, p.name.to_ascii_lowercase());
            assert!(PARAMS[..i].iter().all(|q| q.name != p.name), "{} twice", p.name);
        }
    }

    fn test_config() -> Config {
        let a: crate::config::Args = argh::FromArgs::from_args(&["kvstore-server"], &["0"]).unwrap();
        Config::from_args(a).unwrap()
    }
}
