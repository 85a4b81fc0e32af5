//! A history: every operation a client issued, with its call and return
//! time and what came back. An operation whose outcome is not known (a
//! timeout, a lost connection, a `TIMEOUT outcome unknown` error) may or may
//! not have taken effect: the checkers treat it as one that may take effect
//! at any time after its call, or never.

use std::fmt;

/// What was asked. Values are unique per write (client and sequence
/// number), so a value read or left at the end names the one write that
/// put it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Put(String),
    Get,
    Del,
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A write was acknowledged (`OK`).
    Ok,
    /// A read's value (`None`: not found).
    Value(Option<String>),
    /// A delete's answer: whether the key was there.
    Deleted(bool),
    /// Definitely not done: the connection was refused before the request
    /// left, or the server answered an error that says nothing was applied.
    Failed(String),
    /// May or may not have taken effect.
    Unknown(String),
}

/// One operation of one client.
#[derive(Debug, Clone)]
pub struct Op {
    pub client: usize,
    /// The node the client sent it to.
    pub node: usize,
    pub key: String,
    pub kind: Kind,
    /// Nanoseconds since the run's start, when the request was about to be sent.
    pub call: u64,
    /// When the reply was read; `None` for an unknown outcome.
    pub ret: Option<u64>,
    pub out: Outcome,
}

impl Op {
    pub fn is_write(&self) -> bool {
        !matches!(self.kind, Kind::Get)
    }

    /// Acknowledged: it took effect, and the client knows.
    pub fn acked(&self) -> bool {
        matches!(self.out, Outcome::Ok | Outcome::Value(_) | Outcome::Deleted(_))
    }

    pub fn unknown(&self) -> bool {
        matches!(self.out, Outcome::Unknown(_))
    }

    pub fn failed(&self) -> bool {
        matches!(self.out, Outcome::Failed(_))
    }

    /// The value this write put, if it is a PUT.
    pub fn put_value(&self) -> Option<&str> {
        match &self.kind {
            Kind::Put(v) => Some(v),
            _ => None,
        }
    }

    /// Whether this ended, known, strictly before `other` was called.
    pub fn before(&self, other: &Op) -> bool {
        self.ret.is_some_and(|r| r < other.call)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |t: u64| t as f64 / 1e6;
        let what = match &self.kind {
            Kind::Put(v) => format!("PUT {} {v}", self.key),
            Kind::Get => format!("GET {}", self.key),
            Kind::Del => format!("DEL {}", self.key),
        };
        let ret = self.ret.map_or("?".to_string(), |r| format!("{:.3}", ms(r)));
        write!(f, "[{:.3}..{ret}ms] c{} n{} {what} -> {:?}", ms(self.call), self.client, self.node, self.out)
    }
}

/// Builds ops tersely in the checkers' unit tests: `op(client, node, key, kind, call, ret, out)`.
#[cfg(test)]
pub fn op(client: usize, node: usize, key: &str, kind: Kind, call: u64, ret: Option<u64>, out: Outcome) -> Op {
    Op { client, node, key: key.to_string(), kind, call, ret, out }
}
