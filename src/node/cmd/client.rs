//! The connection's own state: CLIENT and HELLO.

use super::{Args, Ctx, Flow, REDIS_VERSION};
use crate::node::session::Session;
use crate::proto::resp;

/// `CLIENT ID | GETNAME | SETNAME | SETINFO | INFO | LIST`.
pub fn client(cx: &mut Ctx<'_>) -> Flow {
    client_sub(cx.session, cx.args, cx.out);
    Flow::Continue
}

fn client_sub(client: &mut Session, a: Args<'_>, out: &mut Vec<u8>) {
    let sub = a.get(1).to_ascii_uppercase();
    match (sub.as_slice(), a.len()) {
        (b"ID", 2) => resp::int(out, client.id as i64),
        (b"GETNAME", 2) => match &client.name {
            Some(n) => resp::bulk(out, n),
            None => resp::null(out, client.resp3),
        },
        (b"SETNAME", 3) => {
            if set_client_name(client, a.get(2), out) {
                resp::simple(out, b"OK");
            }
        }
        (b"SETINFO", 4) => {
            let attr = a.get(2).to_ascii_uppercase();
            let v: Option<Box<[u8]>> = Some(a.get(3).into());
            match attr.as_slice() {
                b"LIB-NAME" => client.lib.0 = v,
                b"LIB-VER" => client.lib.1 = v,
                _ => {
                    let msg = format!("ERR Unrecognized option '{}'", String::from_utf8_lossy(a.get(2)));
                    return resp::error(out, msg.as_bytes());
                }
            }
            resp::simple(out, b"OK");
        }
        (b"INFO", 2) => {
            let line = client_line(client);
            resp::verbatim(out, b"txt", line.as_bytes(), client.resp3);
        }
        (b"LIST", _) => {
            // Only this client's line: the server keeps no registry for commands.
            let line = client_line(client);
            resp::verbatim(out, b"txt", line.as_bytes(), client.resp3);
        }
        _ => {
            let msg = format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
                String::from_utf8_lossy(a.get(1))
            );
            resp::error(out, msg.as_bytes());
        }
    }
}

/// Sets (or, when empty, clears) the connection's name, as CLIENT SETNAME
/// and HELLO SETNAME do; a name with spaces or control bytes is refused,
/// since CLIENT LIST/INFO print it unquoted. Returns whether it was set.
fn set_client_name(client: &mut Session, name: &[u8], out: &mut Vec<u8>) -> bool {
    if name.iter().any(|&c| c <= b' ' || c > b'~') {
        resp::error(out, b"ERR Client names cannot contain spaces, newlines or special characters.");
        return false;
    }
    client.name = (!name.is_empty()).then(|| name.into());
    true
}

fn client_line(c: &Session) -> String {
    let s = |b: &Option<Box<[u8]>>| b.as_deref().map(String::from_utf8_lossy).unwrap_or_default().into_owned();
    format!(
        "id={} name={} resp={} lib-name={} lib-ver={}\n",
        c.id,
        s(&c.name),
        if c.resp3 { 3 } else { 2 },
        s(&c.lib.0),
        s(&c.lib.1)
    )
}

/// `HELLO [2|3] [AUTH user pass] [SETNAME name]`.
pub fn hello(cx: &mut Ctx<'_>) -> Flow {
    hello_with(cx.session, cx.args, cx.out);
    Flow::Continue
}

fn hello_with(client: &mut Session, a: Args<'_>, out: &mut Vec<u8>) {
    let mut resp3 = client.resp3;
    let mut i = 1;
    if a.len() > 1 {
        match resp::parse_int(a.get(1)) {
            Some(2) => resp3 = false,
            Some(3) => resp3 = true,
            Some(_) => return resp::error(out, b"NOPROTO unsupported protocol version"),
            None => return resp::error(out, b"ERR Protocol version is not an integer or out of range"),
        }
        i = 2;
    }
    let mut name = None;
    while i < a.len() {
        let opt = a.get(i).to_ascii_uppercase();
        match opt.as_slice() {
            // No users or passwords are configured: like Redis's default
            // user with nopass, any credentials are accepted.
            b"AUTH" if i + 2 < a.len() => i += 3,
            b"SETNAME" if i + 1 < a.len() => {
                name = Some(a.get(i + 1));
                i += 2;
            }
            _ => {
                let msg = format!("ERR Syntax error in HELLO option '{}'", String::from_utf8_lossy(a.get(i)));
                return resp::error(out, msg.as_bytes());
            }
        }
    }
    // As in Redis, a refused name fails the whole HELLO: the protocol stays.
    if let Some(n) = name
        && !set_client_name(client, n, out)
    {
        return;
    }
    client.resp3 = resp3;
    resp::map(out, 7, resp3);
    for (k, v) in [("server", "redis"), ("version", REDIS_VERSION)] {
        resp::bulk(out, k.as_bytes());
        resp::bulk(out, v.as_bytes());
    }
    resp::bulk(out, b"proto");
    resp::int(out, if resp3 { 3 } else { 2 });
    resp::bulk(out, b"id");
    resp::int(out, client.id as i64);
    resp::bulk(out, b"mode");
    resp::bulk(out, b"standalone");
    resp::bulk(out, b"role");
    resp::bulk(out, b"master");
    resp::bulk(out, b"modules");
    resp::array(out, 0);
}
