//! CONFIG: the settings, under Redis's names where Redis has one.

use super::{Ctx, Flow};
use crate::proto::resp;

/// Glob match with `*` and `?`, as CONFIG GET patterns use.
pub fn glob(pattern: &[u8], s: &[u8]) -> bool {
    match (pattern.split_first(), s.split_first()) {
        (None, None) => true,
        (Some((b'*', rest)), _) => glob(rest, s) || (!s.is_empty() && glob(pattern, &s[1..])),
        (Some((b'?', rest)), Some((_, srest))) => glob(rest, srest),
        (Some((p, rest)), Some((c, srest))) => p.eq_ignore_ascii_case(c) && glob(rest, srest),
        _ => false,
    }
}

/// `CONFIG GET pattern ... | SET | RESETSTAT`.
pub fn config(cx: &mut Ctx<'_>) -> Flow {
    let (node, a, r3, out) = (&*cx.node, cx.args, cx.resp3(), &mut *cx.out);
    let sub = a.get(1).to_ascii_uppercase();
    match sub.as_slice() {
        b"GET" if a.len() >= 3 => {
            let c = &node.cfg;
            let params: Vec<(&str, String)> = vec![
                ("port", c.listen.port().to_string()),
                ("bind", c.listen.ip().to_string()),
                ("dir", c.dir.display().to_string()),
                ("appendonly", "yes".into()),
                ("appendfsync", c.fsync.to_string()),
                ("appendfilename", "kvstore.aof".into()),
                ("save", String::new()),
                ("databases", "1".into()),
                ("maxclients", c.max_clients.to_string()),
                ("maxmemory", "0".into()),
                ("proto-max-bulk-len", c.limits.max_bulk.to_string()),
                ("client-query-buffer-limit", c.max_request.to_string()),
                ("auto-aof-rewrite-percentage", ((c.compact_multiple - 1.0).max(0.0) * 100.0).round().to_string()),
                ("auto-aof-rewrite-min-size", c.compact_min_bytes.to_string()),
                ("timeout", "0".into()),
            ];
            let hits: Vec<_> = params.iter().filter(|(k, _)| a.iter(2).any(|p| glob(p, k.as_bytes()))).collect();
            resp::map(out, hits.len(), r3);
            for (k, v) in hits {
                resp::bulk(out, k.as_bytes());
                resp::bulk(out, v.as_bytes());
            }
        }
        b"SET" => resp::error(out, b"ERR CONFIG SET is not supported by kvstore; restart with the option (see --help)"),
        b"RESETSTAT" => resp::simple(out, b"OK"),
        _ => resp::error(out, b"ERR unknown subcommand or wrong number of arguments for 'config'"),
    }
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
        assert!(!glob(b"save", b"saves"));
        assert!(!glob(b"x*", b"save"));
    }
}
