//! AUTH, and the rule it lifts: with `--requirepass`, a connection that
//! has not given the password may run only the commands flagged `NO_AUTH`
//! (see [`crate::node::security`] for the whole of it). And the peers'
//! counterpart: with a cluster secret, `REPLAUTH` and `REPLPROOF` prove a
//! connection is a peer's link ([`crate::repl::handshake`]), and a peer
//! frame (flagged `PEER_FRAME`) from one that has not is refused.

use std::time::Duration;

use super::{CommandSpec, Ctx, Flow, flag, wrong_args};
use crate::node::Node;
use crate::node::security::{NOAUTH, WRONGPASS, secrets_match};
use crate::node::session::Session;
use crate::proto::{resp, text};
use crate::repl::handshake::{self, PeerAuth, Refusal};

/// Wrong passwords are logged at most this often, and peers' refusals (a
/// wrong proof, a peer frame without one) likewise (the counts are in STATS).
const WRONG_LOG_EVERY: Duration = Duration::from_secs(1);

/// Why AUTH failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No password is set: there is nothing to authenticate with.
    NoPassword,
    /// The user or the password is wrong.
    Wrong,
}

/// What a peer frame from a connection that has not proved the cluster
/// secret gets, before the connection closes.
const PEER_NOAUTH: &str = "NOAUTH peer frames need the cluster secret proved first (REPLAUTH, REPLPROOF)";

/// Before a command runs: with a cluster secret, a peer frame from a
/// connection that has not proved it gets NOAUTH and the connection closes;
/// with a password set and not given, a command not flagged `NO_AUTH` gets
/// NOAUTH and does not run. Replies in RESP when `resp`, else as a text
/// line. `None`: run it.
pub(super) fn gate(cx: &mut Ctx<'_>, spec: &CommandSpec, resp: bool) -> Option<Flow> {
    // The flag first: the hot commands pay one test.
    if spec.flags & flag::PEER_FRAME != 0
        && cx.node.repl().cluster_key().is_some()
        && cx.session.peer_auth.proven().is_none()
    {
        noauth(cx.out, PEER_NOAUTH, resp);
        cx.node.stats.peer_frames_refused += 1;
        let n = cx.node.stats.peer_frames_refused;
        warn_limited(cx.node, cx.session, true, || {
            format!("sent the peer frame {} without proving the cluster secret: closed ({n} since start)", spec.name)
        });
        return Some(Flow::Close);
    }
    // (A peer frame that gets here is from a proven peer, which counts as
    // authenticated, or there is no secret and so no password either.)
    if !cx.node.needs_auth(cx.session) || spec.flags & flag::NO_AUTH != 0 {
        return None;
    }
    noauth(cx.out, NOAUTH, resp);
    Some(Flow::Continue)
}

fn noauth(out: &mut Vec<u8>, msg: &str, resp: bool) {
    if resp {
        resp::error(out, msg.as_bytes());
    } else {
        text::line(out, format!("ERROR {msg}").as_bytes());
    }
}

/// Logs `what` after the client's address, unless something of its kind
/// (a client's password when not `peer`, else a peer's refusal) was logged
/// less than [`WRONG_LOG_EVERY`] ago.
fn warn_limited(node: &mut Node, session: &Session, peer: bool, what: impl FnOnce() -> String) {
    let last = if peer { &mut node.last_peer_auth_log } else { &mut node.last_auth_log };
    if last.is_none_or(|t| node.now.saturating_duration_since(t) >= WRONG_LOG_EVERY) {
        *last = Some(node.now);
        let addr = node.clients().get(session).map_or_else(|| "a client".to_string(), |c| c.addr.to_string());
        log::warn!("{addr}: {}", what());
    }
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
    let n = node.stats.auth_failures;
    warn_limited(node, session, false, || format!("wrong password (AUTH); {n} wrong passwords since start"));
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

/// What `REPLAUTH` and `REPLPROOF` answer on a node without a cluster secret.
const NO_SECRET: &[u8] = b"ERR this node has no cluster secret (--cluster-secret or --requirepass): \
its peers must not be given one either";

/// `REPLAUTH <node> <nonce>`: a peer's link starts proving the cluster
/// secret; answered with this node's challenge ([`handshake::challenge`]).
pub fn repl_auth(cx: &mut Ctx<'_>) -> Flow {
    if cx.node.repl().cluster_key().is_none() {
        resp::error(cx.out, NO_SECRET);
        return Flow::Continue;
    }
    if cx.session.peer_auth.proven().is_some() {
        resp::error(cx.out, b"ERR this connection has proved the cluster secret already");
        return Flow::Continue;
    }
    let Some(nonce) = handshake::fresh_nonce() else {
        log::error!("cannot draw a random nonce for a peer's handshake");
        resp::error(cx.out, b"ERR cannot draw a random nonce; try again");
        return Flow::Close;
    };
    match handshake::challenge(cx.node.id(), cx.args.get(1), cx.args.get(2), nonce, cx.out) {
        Ok(t) => cx.session.peer_auth = PeerAuth::Challenged(Box::new(t)),
        Err(r) => return refuse_peer(cx, r),
    }
    Flow::Continue
}

/// `REPLPROOF <hmac>`: the link's proof, checked against the challenge
/// ([`handshake::check_proof`]); if right, this node proves itself in turn
/// and the connection is a proven peer's link, as good as authenticated
/// (knowing the cluster secret gives all the data anyway: a node that
/// proves it gets every write replicated to it). If wrong, counted, logged
/// and closed.
pub fn repl_proof(cx: &mut Ctx<'_>) -> Flow {
    let Some(key) = cx.node.repl().cluster_key() else {
        resp::error(cx.out, NO_SECRET);
        return Flow::Continue;
    };
    match handshake::check_proof(key, &mut cx.session.peer_auth, cx.args.get(1), cx.out) {
        Ok(_) => {
            cx.session.authenticated = true;
            Flow::Continue
        }
        Err(r) => refuse_peer(cx, r),
    }
}

/// Answers a refused step of the handshake and closes the connection.
fn refuse_peer(cx: &mut Ctx<'_>, r: Refusal) -> Flow {
    match r {
        Refusal::Bad(msg) => resp::error(cx.out, msg.as_bytes()),
        Refusal::WrongProof => {
            resp::error(cx.out, b"WRONGPASS wrong proof of the cluster secret: the nodes' --cluster-secret differ");
            cx.node.stats.peer_auth_failures += 1;
            let n = cx.node.stats.peer_auth_failures;
            warn_limited(cx.node, cx.session, true, || {
                format!(
                    "a peer link's proof of the cluster secret is wrong (its --cluster-secret differs); closed ({n} since start)"
                )
            });
        }
    }
    Flow::Close
}
