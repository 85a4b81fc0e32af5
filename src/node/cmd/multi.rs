//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! EXEC runs the queued commands one after the other in a single call: on
//! one thread, nothing else runs in between, which is all the isolation
//! MULTI/EXEC promises. WATCH is refused for that reason (there is nothing
//! to watch for).

use super::{CommandSpec, Ctx, Flow, run_resp, unknown_command, wrong_args};
use crate::proto::{Argv, Limits, Parsed, resp};

/// The commands queued between MULTI and EXEC.
#[derive(Debug, Default)]
pub struct Multi {
    /// The queued requests, re-encoded as RESP, back to back.
    queued: Vec<u8>,
    count: usize,
    /// A command was refused while queueing (unknown, wrong arity, too
    /// much queued): EXEC aborts, as Redis does.
    failed: bool,
}

impl Multi {
    /// How many commands are queued, and their bytes (CLIENT LIST).
    pub fn queued(&self) -> (usize, usize) {
        (self.count, self.queued.len())
    }
}

/// Inside MULTI: queues the request (answering QUEUED), or refuses it and
/// marks the transaction failed. `spec` is its table entry, if any.
pub(super) fn queue(cx: &mut Ctx<'_>, spec: Option<&CommandSpec>) {
    let max_request = cx.node.cfg.max_request;
    let (a, out) = (cx.args, &mut *cx.out);
    let Some(m) = &mut cx.session.multi else { return };
    match spec {
        None => {
            unknown_command(out, a);
            m.failed = true;
        }
        Some(spec) if !spec.arity_ok(a.len()) => {
            wrong_args(out, spec.name);
            m.failed = true;
        }
        Some(_) if m.queued.len() > max_request => {
            resp::error(out, b"ERR transaction larger than --max-request; it will be discarded");
            m.failed = true;
        }
        Some(_) => {
            resp::array(&mut m.queued, a.len());
            for arg in a.iter(0) {
                resp::bulk(&mut m.queued, arg);
            }
            m.count += 1;
            resp::simple(out, b"QUEUED");
        }
    }
}

/// `MULTI`.
pub fn multi(cx: &mut Ctx<'_>) -> Flow {
    if cx.session.multi.is_some() {
        resp::error(cx.out, b"ERR MULTI calls can not be nested");
    } else {
        cx.session.multi = Some(Multi::default());
        resp::simple(cx.out, b"OK");
    }
    Flow::Continue
}

/// `EXEC`: runs the queued commands, their replies as one array.
pub fn exec(cx: &mut Ctx<'_>) -> Flow {
    match cx.session.multi.take() {
        None => resp::error(cx.out, b"ERR EXEC without MULTI"),
        Some(m) if m.failed => resp::error(cx.out, b"EXECABORT Transaction discarded because of previous errors."),
        Some(m) => {
            resp::array(cx.out, m.count);
            // The queue holds requests this server encoded itself from
            // requests it had already accepted: they parse, within any limit.
            let limits = Limits { max_line: 64, max_bulk: usize::MAX, max_args: usize::MAX };
            let mut argv = Argv::new();
            let mut pos = 0;
            // The commands answer here, in EXEC's array: none may block.
            cx.session.in_exec = true;
            while let Ok(Parsed::Request { consumed }) = resp::parse(&m.queued[pos..], &mut argv, &limits) {
                let mut inner = Ctx {
                    node: &mut *cx.node,
                    session: &mut *cx.session,
                    args: super::Args::new(&argv, &m.queued[pos..]),
                    out: &mut *cx.out,
                };
                let _ = run_resp(&mut inner);
                pos += consumed;
                if pos >= m.queued.len() {
                    break;
                }
            }
            cx.session.in_exec = false;
        }
    }
    Flow::Continue
}

/// `DISCARD`.
pub fn discard(cx: &mut Ctx<'_>) -> Flow {
    match cx.session.multi.take() {
        Some(_) => resp::simple(cx.out, b"OK"),
        None => resp::error(cx.out, b"ERR DISCARD without MULTI"),
    }
    Flow::Continue
}

/// `WATCH`: refused (see the module docs); inside MULTI it fails the
/// transaction, as any refused command does.
pub fn watch(cx: &mut Ctx<'_>) -> Flow {
    if let Some(m) = &mut cx.session.multi {
        m.failed = true;
    }
    resp::error(cx.out, b"ERR WATCH is not supported: MULTI/EXEC runs atomically on kvstore's single thread");
    Flow::Continue
}

/// `UNWATCH`: nothing is watched.
pub fn unwatch(cx: &mut Ctx<'_>) -> Flow {
    resp::simple(cx.out, b"OK");
    Flow::Continue
}
