//! COMMAND, which describes the command table itself, and the dispatch of
//! subcommands (CLIENT LIST, CONFIG GET, ...), which the table describes
//! like commands: `PARENT|SUB` entries with their own arity and flags, so
//! arity errors, COMMAND INFO, COMMAND LIST and MONITOR treat them as Redis
//! does.
//!
//! What the table does not hold is derived: the ACL categories from the
//! flags and the docs' group, the key specs from the key positions. Tips and
//! argument lists are not modelled (empty).

use super::config::glob;
use super::{COMMANDS, CommandSpec, Ctx, Flow, flag, lookup, upper, wrong_args};
use crate::proto::resp;

use flag::*;

/// COMMAND's subcommands.
pub const SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::sub("COMMAND|COUNT", 2, LOADING | STALE, count)
        .doc("Returns a count of commands.", "2.8.13", "server")
        .complexity("O(1)"),
    CommandSpec::sub("COMMAND|DOCS", -2, LOADING | STALE, docs)
        .doc("Returns documentary information about one, multiple or all commands.", "7.0.0", "server")
        .complexity("O(N) where N is the number of commands to look up"),
    CommandSpec::sub("COMMAND|GETKEYS", -3, LOADING | STALE, getkeys)
        .doc("Extracts the key names from an arbitrary command.", "2.8.13", "server")
        .complexity("O(N) where N is the number of arguments to the command"),
    CommandSpec::sub("COMMAND|INFO", -2, LOADING | STALE, info)
        .doc("Returns information about one, multiple or all commands.", "2.8.13", "server")
        .complexity("O(N) where N is the number of commands to look up"),
    CommandSpec::sub("COMMAND|LIST", -2, LOADING | STALE, list)
        .doc("Returns a list of command names.", "7.0.0", "server")
        .complexity("O(N) where N is the total number of Redis commands"),
    CommandSpec::sub("COMMAND|HELP", 2, LOADING | STALE, help)
        .doc("Returns helpful text about the different subcommands.", "5.0.0", "server")
        .complexity("O(1)"),
];

/// ACL categories in the order Redis lists them.
const CATEGORY_ORDER: [&str; 21] = [
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

/// Runs the subcommand named by argument 1 of a container command (CLIENT,
/// CONFIG, ...) from its `subs`, with Redis's errors for an unknown one or
/// a wrong argument count. `parent` is the name the error's hint uses.
pub fn subcommand(cx: &mut Ctx<'_>, parent: &str, subs: &'static [CommandSpec]) -> Flow {
    let mut nb = [0u8; 24];
    let name = upper(cx.args.get(1), &mut nb);
    let found = subs.iter().find(|s| sub_name(s).as_bytes() == name).and_then(|s| s.resp.map(|run| (s, run)));
    let before = cx.out.len();
    let Some((spec, run)) = found else {
        let arg = cx.args.get(1);
        let arg = String::from_utf8_lossy(&arg[..arg.len().min(128)]);
        resp::error(cx.out, format!("ERR unknown subcommand '{arg}'. Try {parent} HELP.").as_bytes());
        cx.node.stats.cmdstats.error(&cx.out[before..]);
        return Flow::Continue;
    };
    if !spec.arity_ok(cx.args.len()) {
        wrong_args(cx.out, spec.name);
        cx.node.stats.cmdstats.count(spec, true, &cx.out[before..]);
        return Flow::Continue;
    }
    // Set before it runs, so that CLIENT LIST shows it for the caller.
    cx.session.last_cmd = spec.name;
    let flow = run(cx);
    cx.node.stats.cmdstats.count(spec, false, &cx.out[before..]);
    cx.node.ran(cx.session, spec, cx.args);
    flow
}

/// The part of a subcommand's name after `|` (the whole name otherwise).
fn sub_name(spec: &CommandSpec) -> &'static str {
    spec.name.split_once('|').map_or(spec.name, |(_, s)| s)
}

/// A `<CMD> HELP` reply: the header, `lines`, and the HELP entry, each a
/// status line, as Redis's help replies are.
pub fn help(cx: &mut Ctx<'_>) -> Flow {
    let lines: &[&str] = &[
        "(no subcommand)",
        "    Return details about all Redis commands.",
        "COUNT",
        "    Return the total number of commands in this Redis server.",
        "LIST",
        "    Return a list of all commands in this Redis server.",
        "INFO [<command-name> ...]",
        "    Return details about multiple Redis commands.",
        "    If no command names are given, documentation details for all",
        "    commands are returned.",
        "DOCS [<command-name> ...]",
        "    Return documentation details about multiple Redis commands.",
        "    If no command names are given, documentation details for all",
        "    commands are returned.",
        "GETKEYS <full-command>",
        "    Return the keys from a full Redis command.",
    ];
    help_reply(cx.out, "COMMAND", lines);
    Flow::Continue
}

/// Appends a help reply for `cmd` (upper-case) made of `lines`.
pub fn help_reply(out: &mut Vec<u8>, cmd: &str, lines: &[&str]) {
    resp::array(out, lines.len() + 3);
    resp::simple(out, format!("{cmd} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:").as_bytes());
    for l in lines {
        resp::simple(out, l.as_bytes());
    }
    resp::simple(out, b"HELP");
    resp::simple(out, b"    Prints this help.");
}

/// The commands COMMAND describes.
fn listed() -> impl Iterator<Item = &'static CommandSpec> + Clone {
    COMMANDS.iter().filter(|c| c.listed())
}

/// A command by its full name, `get` or `client|list`, any case.
fn lookup_full(name: &[u8]) -> Option<&'static CommandSpec> {
    let upper = name.to_ascii_uppercase();
    let (parent, sub) = match upper.iter().position(|&c| c == b'|') {
        Some(i) => (&upper[..i], Some(&upper[i + 1..])),
        None => (&upper[..], None),
    };
    let c = lookup(parent).filter(|c| c.listed())?;
    match sub {
        None => Some(c),
        Some(s) => c.subs.iter().find(|x| sub_name(x).as_bytes() == s),
    }
}

/// `COMMAND`: every command's COMMAND INFO; with a subcommand, that.
pub fn command(cx: &mut Ctx<'_>) -> Flow {
    if cx.args.len() > 1 {
        return subcommand(cx, "COMMAND", SUBCOMMANDS);
    }
    let r3 = cx.resp3();
    resp::array(cx.out, listed().count());
    for c in listed() {
        command_info(cx.out, c, r3);
    }
    Flow::Continue
}

fn count(cx: &mut Ctx<'_>) -> Flow {
    resp::int(cx.out, listed().count() as i64);
    Flow::Continue
}

/// `COMMAND INFO [name ...]`: each named command's description (null for
/// an unknown one); all of them without names.
fn info(cx: &mut Ctx<'_>) -> Flow {
    let (a, r3, out) = (cx.args, cx.resp3(), &mut *cx.out);
    if a.len() == 2 {
        resp::array(out, listed().count());
        for c in listed() {
            command_info(out, c, r3);
        }
        return Flow::Continue;
    }
    resp::array(out, a.len() - 2);
    for name in a.iter(2) {
        match lookup_full(name) {
            Some(c) => command_info(out, c, r3),
            None => resp::null_array(out, r3),
        }
    }
    Flow::Continue
}

/// One command as COMMAND INFO describes it: name, arity, flags, first key,
/// last key, step, ACL categories, tips, key specs, subcommands.
fn command_info(out: &mut Vec<u8>, c: &CommandSpec, r3: bool) {
    resp::array(out, 10);
    resp::bulk(out, c.name.to_ascii_lowercase().as_bytes());
    resp::int(out, i64::from(c.arity));
    let shown = flag::SHOWN.iter().filter(|(f, _)| c.flags & f != 0);
    resp::set(out, shown.clone().count(), r3);
    for (_, name) in shown {
        resp::simple(out, name.as_bytes());
    }
    resp::int(out, i64::from(c.keys.0));
    resp::int(out, i64::from(c.keys.1));
    resp::int(out, i64::from(c.keys.2));
    let cats = categories(c);
    resp::set(out, cats.len(), r3);
    for cat in cats {
        resp::simple(out, format!("@{cat}").as_bytes());
    }
    resp::set(out, 0, r3);
    key_specs(out, c, r3);
    resp::set(out, c.subs.len(), r3);
    for s in c.subs {
        command_info(out, s, r3);
    }
}

/// The ACL categories of `c`, derived from its flags and its docs' group.
fn categories(c: &CommandSpec) -> Vec<&'static str> {
    let group = match c.doc.group {
        "string" => Some("string"),
        "list" => Some("list"),
        "hash" => Some("hash"),
        "set" => Some("set"),
        "sorted-set" => Some("sortedset"),
        "connection" => Some("connection"),
        "transactions" => Some("transaction"),
        "scripting" => Some("scripting"),
        "pubsub" => Some("pubsub"),
        "generic" if c.keys.0 != 0 => Some("keyspace"),
        _ => None,
    };
    let has = |cat: &str| match cat {
        "read" => c.flags & READONLY != 0,
        "write" => c.flags & WRITE != 0,
        "admin" | "dangerous" => c.flags & ADMIN != 0,
        "fast" => c.flags & FAST != 0,
        "slow" => c.flags & FAST == 0,
        other => group == Some(other),
    };
    CATEGORY_ORDER.iter().copied().filter(|cat| has(cat)).collect()
}

/// The key specs of `c`, from its key positions: one range from the first
/// key, its access derived from the read/write flags.
fn key_specs(out: &mut Vec<u8>, c: &CommandSpec, r3: bool) {
    let (first, last, step) = c.keys;
    if first <= 0 {
        resp::set(out, 0, r3);
        return;
    }
    resp::set(out, 1, r3);
    resp::map(out, 3, r3);
    resp::bulk(out, b"flags");
    let flags: &[&str] = if c.flags & WRITE != 0 { &["RW", "update"] } else { &["RO", "access"] };
    resp::set(out, flags.len(), r3);
    for f in flags {
        resp::simple(out, f.as_bytes());
    }
    resp::bulk(out, b"begin_search");
    resp::map(out, 2, r3);
    resp::bulk(out, b"type");
    resp::bulk(out, b"index");
    resp::bulk(out, b"spec");
    resp::map(out, 1, r3);
    resp::bulk(out, b"index");
    resp::int(out, i64::from(first));
    resp::bulk(out, b"find_keys");
    resp::map(out, 2, r3);
    resp::bulk(out, b"type");
    resp::bulk(out, b"range");
    resp::bulk(out, b"spec");
    resp::map(out, 3, r3);
    let lastkey = if last < 0 { last } else { last - first };
    for (k, v) in [("lastkey", lastkey), ("keystep", step), ("limit", 0)] {
        resp::bulk(out, k.as_bytes());
        resp::int(out, i64::from(v));
    }
}

/// `COMMAND DOCS [name ...]`: a map of command name to its docs (all
/// commands without names; unknown names are left out).
fn docs(cx: &mut Ctx<'_>) -> Flow {
    let (a, r3, out) = (cx.args, cx.resp3(), &mut *cx.out);
    let found: Vec<&CommandSpec> =
        if a.len() == 2 { listed().collect() } else { a.iter(2).filter_map(lookup_full).collect() };
    resp::map(out, found.len(), r3);
    for c in found {
        resp::bulk(out, c.name.to_ascii_lowercase().as_bytes());
        command_docs(out, c, r3);
    }
    Flow::Continue
}

fn command_docs(out: &mut Vec<u8>, c: &CommandSpec, r3: bool) {
    let d = &c.doc;
    let fields: Vec<(&str, &str)> =
        [("summary", d.summary), ("since", d.since), ("group", d.group), ("complexity", d.complexity)]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .collect();
    resp::map(out, fields.len() + usize::from(!c.subs.is_empty()), r3);
    for (k, v) in fields {
        resp::bulk(out, k.as_bytes());
        resp::bulk(out, v.as_bytes());
    }
    if !c.subs.is_empty() {
        resp::bulk(out, b"subcommands");
        resp::map(out, c.subs.len(), r3);
        for s in c.subs {
            resp::bulk(out, s.name.to_ascii_lowercase().as_bytes());
            command_docs(out, s, r3);
        }
    }
}

/// Every command's full name (subcommands included), lower-case.
fn all_names() -> impl Iterator<Item = (String, &'static CommandSpec)> {
    listed().flat_map(|c| std::iter::once(c).chain(c.subs.iter())).map(|c| (c.name.to_ascii_lowercase(), c))
}

/// `COMMAND LIST [FILTERBY MODULE m | ACLCAT c | PATTERN p]`.
fn list(cx: &mut Ctx<'_>) -> Flow {
    let (a, out) = (cx.args, &mut *cx.out);
    let names: Vec<String> = match a.len() {
        2 => all_names().map(|(n, _)| n).collect(),
        5 if a.get(2).eq_ignore_ascii_case(b"FILTERBY") => {
            let (by, what) = (a.get(3).to_ascii_uppercase(), a.get(4));
            match by.as_slice() {
                b"MODULE" => Vec::new(),
                b"ACLCAT" => all_names()
                    .filter(|(_, c)| categories(c).iter().any(|cat| cat.as_bytes().eq_ignore_ascii_case(what)))
                    .map(|(n, _)| n)
                    .collect(),
                b"PATTERN" => all_names().filter(|(n, _)| glob(what, n.as_bytes())).map(|(n, _)| n).collect(),
                _ => return syntax_error(out),
            }
        }
        _ => return syntax_error(out),
    };
    resp::array(out, names.len());
    for n in names {
        resp::bulk(out, n.as_bytes());
    }
    Flow::Continue
}

fn syntax_error(out: &mut Vec<u8>) -> Flow {
    resp::error(out, b"ERR syntax error");
    Flow::Continue
}

/// `COMMAND GETKEYS command arg ...`: the keys of that command, from its
/// key positions.
fn getkeys(cx: &mut Ctx<'_>) -> Flow {
    let (a, out) = (cx.args, &mut *cx.out);
    // A container's keys are its subcommand's (MEMORY USAGE key), as Redis
    // looks a command up from its arguments; a container alone is a wrong
    // argument count, as Redis has it.
    let c = lookup_full(a.get(2));
    if c.is_some_and(|c| !c.subs.is_empty()) && a.len() < 4 {
        wrong_args(out, "COMMAND|GETKEYS");
        return Flow::Continue;
    }
    let c = c.and_then(|c| match c.subs {
        [] => Some(c),
        subs => subs.iter().find(|s| sub_name(s).as_bytes().eq_ignore_ascii_case(a.get(3))),
    });
    let Some(c) = c else {
        resp::error(out, b"ERR Invalid command specified");
        return Flow::Continue;
    };
    let argc = a.len() - 2;
    if !c.arity_ok(argc) {
        resp::error(out, b"ERR Invalid number of arguments specified for command");
        return Flow::Continue;
    }
    let Some(keys) = key_positions(c.keys, argc) else {
        resp::error(out, b"ERR The command has no key arguments");
        return Flow::Continue;
    };
    resp::array(out, keys.len());
    for i in keys {
        resp::bulk(out, a.get(i + 2));
    }
    Flow::Continue
}

/// The argument positions of the keys of a command of `argc` arguments
/// with key positions `keys` (first, last, step; last counts from the end
/// when negative); `None` if it has none.
fn key_positions((first, last, step): (i32, i32, i32), argc: usize) -> Option<Vec<usize>> {
    if first <= 0 || step <= 0 {
        return None;
    }
    let argc = argc as i64;
    let last = if last < 0 { argc + i64::from(last) } else { i64::from(last) }.min(argc - 1);
    let v: Vec<usize> = (i64::from(first)..=last).step_by(step as usize).map(|i| i as usize).collect();
    (!v.is_empty()).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_positions_follow_first_last_step() {
        assert_eq!(key_positions((1, 1, 1), 3), Some(vec![1]));
        assert_eq!(key_positions((1, -1, 1), 4), Some(vec![1, 2, 3]));
        assert_eq!(key_positions((1, -1, 2), 5), Some(vec![1, 3]));
        assert_eq!(key_positions((0, 0, 0), 1), None);
    }

    #[test]
    fn full_names_find_subcommands() {
        assert_eq!(lookup_full(b"client|LIST").map(|c| c.name), Some("CLIENT|LIST"));
        assert_eq!(lookup_full(b"get").map(|c| c.name), Some("GET"));
        assert!(lookup_full(b"client|nope").is_none() && lookup_full(b"repl_put").is_none());
    }

    #[test]
    fn categories_are_derived_in_redis_order() {
        assert_eq!(categories(lookup(b"INFO").unwrap()), ["slow"]);
        assert_eq!(categories(lookup(b"PING").unwrap()), ["fast", "connection"]);
        assert_eq!(categories(lookup_full(b"config|set").unwrap()), ["admin", "slow", "dangerous"]);
    }
}
