//! AUTH, and the rule it lifts: with `--requirepass`, a connection that
//! has not given the password may run only the commands flagged `NO_AUTH`
//! (see [`crate::node::security`] for the whole of it).

use std::time::Duration;

use super::{CommandSpec, Ctx, Flow, flag, wrong_args};
use crate::node::Node;
use crate::node::security::{NOAUTH, WRONGPASS, secrets_match};
use crate::node::session::Session;
use crate::proto::{resp, text};

/// A wrong password is logged at most this often (the count is in STATS).
const WRONG_LOG_EVERY: Duration = Duration::from_secs(1);

/// Why AUTH failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No password is set: there is nothing to authenticate with.
    NoPassword,
    /// The user or the password is wrong.
    Wrong,
}

/// Before a command runs: with a password set and not given, a command not
/// flagged `NO_AUTH` gets NOAUTH (in RESP when `resp`, else as a text line)
/// and does not run; a peer frame also closes the connection. `None`: run it.
pub(super) fn gate(cx: &mut Ctx<'_>, spec: &CommandSpec, resp: bool) -> Option<Flow> {
    if !cx.node.needs_auth(cx.session) || spec.flags & flag::NO_AUTH != 0 {
        return None;
    }
    if resp {
        resp::error(cx.out, NOAUTH.as_bytes());
    } else {
        text::line(cx.out, format!("ERROR {NOAUTH}").as_bytes());
    }
    if spec.flags & flag::PEER_FRAME != 0 {
        log::warn!("a connection sent the peer frame {} without authenticating: closed", spec.name);
        return Some(Flow::Close);
    }
    Some(Flow::Continue)
}

/// Checks `user` (only `default` exists) and `password` for `session`,
/// which is authenticated if they are right. A wrong one is counted and
/// logged (with the client's address, at most once a second).
pub fn authenticate(
    node: &mut Node,
    session: &mut Session,
    user: Option<&[u8]>,
    password: &[u8],
) -> Result<(), AuthError> {
    let Some(want) = node.cfg.requirepass.as_deref() else {
        // As Redis's default user with nopass: any credentials are accepted
        // by HELLO and by the two-argument AUTH.
        return if user.is_some() { Ok(()) } else { Err(AuthError::NoPassword) };
    };
    let user_ok = user.is_none_or(|u| u == b"default");
    // Both compared, whatever the first gives, so timing says nothing.
    let pass_ok = secrets_match(password, want.as_bytes());
    if user_ok && pass_ok {
        session.authenticated = true;
        return Ok(());
    }
    node.stats.auth_failures += 1;
    if node.last_auth_log.is_none_or(|t| node.now.saturating_duration_since(t) >= WRONG_LOG_EVERY) {
        node.last_auth_log = Some(node.now);
        let addr = node.clients().get(session).map_or_else(|| "a client".to_string(), |c| c.addr.to_string());
        log::warn!("{addr}: wrong password (AUTH); {} wrong passwords since start", node.stats.auth_failures);
    }
    Err(AuthError::Wrong)
}

/// `AUTH [username] password`.
pub fn auth(cx: &mut Ctx<'_>) -> Flow {
    let (user, password) = match cx.args.len() {
        2 => (None, cx.args.get(1)),
        3 => (Some(cx.args.get(1)), cx.args.get(2)),
        _ => {
            wrong_args(cx.out, "auth");
            return Flow::Continue;
        }
    };
    match authenticate(cx.node, cx.session, user, password) {
        Ok(()) => resp::simple(cx.out, b"OK"),
        Err(AuthError::NoPassword) => resp::error(
            cx.out,
            b"ERR AUTH <password> called without any password configured for the default user. \
Are you sure your configuration is correct?",
        ),
        Err(AuthError::Wrong) => resp::error(cx.out, WRONGPASS.as_bytes()),
    }
    Flow::Continue
}

/// Text `AUTH <password>`: `OK`, `ERROR WRONGPASS ...`, or an error saying
/// no password is set.
pub fn text_auth(cx: &mut Ctx<'_>) -> Flow {
    match authenticate(cx.node, cx.session, None, cx.args.get(1)) {
        Ok(()) => text::line(cx.out, b"OK"),
        Err(AuthError::NoPassword) => {
            text::line(cx.out, b"ERROR no password is set (--requirepass): AUTH is not needed")
        }
        Err(AuthError::Wrong) => text::line(cx.out, format!("ERROR {WRONGPASS}").as_bytes()),
    }
    Flow::Continue
}
