//! Clients that record a history: threads that each send operations to a
//! random node, one at a time, half of them over the text protocol (`PUT`,
//! `GET`, `DEL` lines) and half over RESP (the `redis` crate), and note
//! each one's call and return time and reply. A request that times out or
//! loses its connection after it was sent has an unknown outcome, and its
//! connection is dropped (a late reply must not answer the next request).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::history::{Kind, Op, Outcome};
use super::rng::Rng;

/// What the clients do.
#[derive(Debug, Clone)]
pub struct Workload {
    pub clients: usize,
    /// Hot keys `k0..k{keys}`: few, so that writes contend.
    pub keys: usize,
    /// Percent of operations on cold keys (`u<client>-<n>`: one write each).
    pub cold_percent: u64,
    /// How long a client waits for a reply before the outcome is unknown.
    pub timeout: Duration,
}

/// Which protocol a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Text,
    Resp,
}

/// The clients' view of where the nodes listen: `ports[i]` is node i's
/// port, 0 while it is down (a restarted node may come back on another).
pub type Ports = Arc<Vec<AtomicU16>>;

/// Starts the clients; each returns its operations once `stop` is set.
pub fn spawn(
    w: &Workload,
    ports: &Ports,
    rng: &mut Rng,
    origin: Instant,
    stop: &Arc<AtomicBool>,
) -> Vec<JoinHandle<Vec<Op>>> {
    (0..w.clients)
        .map(|client| {
            let (w, ports, stop, mut rng) = (w.clone(), ports.clone(), stop.clone(), rng.fork());
            let proto = if client % 2 == 0 { Proto::Text } else { Proto::Resp };
            std::thread::spawn(move || run_client(client, proto, &w, &ports, &mut rng, origin, &stop))
        })
        .collect()
}

fn nanos(origin: Instant) -> u64 {
    origin.elapsed().as_nanos() as u64
}

fn run_client(
    client: usize,
    proto: Proto,
    w: &Workload,
    ports: &Ports,
    rng: &mut Rng,
    origin: Instant,
    stop: &AtomicBool,
) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut conns: Vec<Option<(u16, Conn)>> = (0..ports.len()).map(|_| None).collect();
    let mut seq = 0u64;
    let mut cold: Vec<String> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let node = rng.below(ports.len() as u64) as usize;
        let port = ports[node].load(Ordering::SeqCst);
        if port == 0 {
            // Down: nothing is sent, nothing recorded.
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        let kind = match rng.below(10) {
            0..=4 => {
                seq += 1;
                Kind::Put(format!("c{client}-{seq}"))
            }
            5..=7 => Kind::Get,
            _ => Kind::Del,
        };
        // Hot keys are shared and overwritten all the time (last writer
        // wins, convergence); a cold key is this client's own, written
        // once (so its write can only be lost, never superseded) and
        // maybe read or deleted later (so a delete must stick).
        let key = if rng.chance(w.cold_percent) {
            match (&kind, cold.is_empty()) {
                (Kind::Put(_), _) => {
                    cold.push(format!("u{client}-{seq}"));
                    cold[cold.len() - 1].clone()
                }
                (_, false) => cold[rng.below(cold.len() as u64) as usize].clone(),
                (_, true) => format!("k{}", rng.below(w.keys as u64)),
            }
        } else {
            format!("k{}", rng.below(w.keys as u64))
        };
        if conns[node].as_ref().is_none_or(|(p, _)| *p != port) {
            match Conn::open(proto, port, w.timeout) {
                Some(c) => conns[node] = Some((port, c)),
                None => {
                    conns[node] = None;
                    continue; // refused: nothing was sent
                }
            }
        }
        let Some((_, conn)) = conns[node].as_mut() else { continue };
        let call = nanos(origin);
        let out = conn.exec(&key, &kind);
        let ret = nanos(origin);
        let known = !matches!(out, Outcome::Unknown(_));
        if !known {
            conns[node] = None;
        }
        ops.push(Op { client, node, key, kind, call, ret: known.then_some(ret), out });
    }
    ops
}

/// One client connection.
pub enum Conn {
    Text { stream: TcpStream, reader: BufReader<TcpStream> },
    Resp(Box<redis::Connection>),
}

impl Conn {
    /// Connects, or `None` if the node refuses (the operation is then not sent).
    pub fn open(proto: Proto, port: u16, timeout: Duration) -> Option<Conn> {
        match proto {
            Proto::Text => {
                let stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), timeout).ok()?;
                stream.set_read_timeout(Some(timeout)).ok()?;
                stream.set_write_timeout(Some(timeout)).ok()?;
                let _ = stream.set_nodelay(true);
                let reader = BufReader::new(stream.try_clone().ok()?);
                Some(Conn::Text { stream, reader })
            }
            Proto::Resp => {
                let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
                let con = client.get_connection_with_timeout(timeout).ok()?;
                con.set_read_timeout(Some(timeout)).ok()?;
                con.set_write_timeout(Some(timeout)).ok()?;
                Some(Conn::Resp(Box::new(con)))
            }
        }
    }

    /// Sends one operation and says what came of it.
    pub fn exec(&mut self, key: &str, kind: &Kind) -> Outcome {
        match self {
            Conn::Text { stream, reader } => {
                let line = match kind {
                    Kind::Put(v) => format!("PUT {key} {v}\n"),
                    Kind::Get => format!("GET {key}\n"),
                    Kind::Del => format!("DEL {key}\n"),
                };
                if let Err(e) = stream.write_all(line.as_bytes()) {
                    return Outcome::Unknown(format!("send: {e}"));
                }
                let mut reply = String::new();
                match reader.read_line(&mut reply) {
                    Ok(0) => Outcome::Unknown("connection closed".into()),
                    Ok(_) if !reply.ends_with('\n') => Outcome::Unknown(format!("reply cut short: {reply:?}")),
                    Ok(_) => text_outcome(kind, reply.trim_end_matches('\n')),
                    Err(e) => Outcome::Unknown(format!("read: {e}")),
                }
            }
            Conn::Resp(con) => {
                let cmd = match kind {
                    Kind::Put(v) => redis::cmd("SET").arg(key).arg(v).to_owned(),
                    Kind::Get => redis::cmd("GET").arg(key).to_owned(),
                    Kind::Del => redis::cmd("DEL").arg(key).to_owned(),
                };
                match cmd.query::<redis::Value>(con) {
                    Ok(v) => resp_outcome(kind, &v),
                    Err(e) if e.kind() == redis::ErrorKind::ResponseError || e.code().is_some() => {
                        error_outcome(&format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or("")))
                    }
                    Err(e) => Outcome::Unknown(format!("{e}")),
                }
            }
        }
    }
}

/// An error reply: `TIMEOUT …` (leader mode: the outcome is not known) or
/// anything else (refused: nothing applied).
fn error_outcome(msg: &str) -> Outcome {
    if msg.trim_start().starts_with("TIMEOUT") {
        Outcome::Unknown(msg.to_string())
    } else {
        Outcome::Failed(msg.to_string())
    }
}

/// A text-protocol reply line.
pub fn text_outcome(kind: &Kind, line: &str) -> Outcome {
    if let Some(rest) = line.strip_prefix("ERROR") {
        return error_outcome(rest);
    }
    if line.starts_with("TIMEOUT") {
        return Outcome::Unknown(line.to_string());
    }
    match (kind, line) {
        (Kind::Put(_), "OK") => Outcome::Ok,
        (Kind::Del, "OK") => Outcome::Deleted(true),
        (Kind::Del, "NOT_FOUND") => Outcome::Deleted(false),
        (Kind::Get, "NOT_FOUND") => Outcome::Value(None),
        (Kind::Get, v) => Outcome::Value(Some(v.to_string())),
        _ => Outcome::Failed(format!("unexpected reply {line:?}")),
    }
}

/// A RESP reply.
pub fn resp_outcome(kind: &Kind, v: &redis::Value) -> Outcome {
    use redis::Value as V;
    match (kind, v) {
        (Kind::Put(_), V::Okay) => Outcome::Ok,
        (Kind::Del, V::Int(n)) => Outcome::Deleted(*n > 0),
        (Kind::Get, V::Nil) => Outcome::Value(None),
        (Kind::Get, V::BulkString(b)) => Outcome::Value(Some(String::from_utf8_lossy(b).into_owned())),
        _ => Outcome::Failed(format!("unexpected reply {v:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read_as_outcomes() {
        let put = Kind::Put("v".into());
        assert_eq!(text_outcome(&put, "OK"), Outcome::Ok);
        assert_eq!(text_outcome(&Kind::Del, "NOT_FOUND"), Outcome::Deleted(false));
        assert_eq!(text_outcome(&Kind::Get, "NOT_FOUND"), Outcome::Value(None));
        assert_eq!(text_outcome(&Kind::Get, "c1-2"), Outcome::Value(Some("c1-2".into())));
        assert!(matches!(text_outcome(&put, "ERROR log write failed"), Outcome::Failed(_)));
        assert!(matches!(text_outcome(&put, "TIMEOUT outcome unknown"), Outcome::Unknown(_)));
        assert!(matches!(text_outcome(&put, "ERROR TIMEOUT outcome unknown"), Outcome::Unknown(_)));
        assert!(matches!(text_outcome(&put, "NOT_FOUND"), Outcome::Failed(_)));
        assert_eq!(resp_outcome(&Kind::Del, &redis::Value::Int(0)), Outcome::Deleted(false));
        assert_eq!(resp_outcome(&put, &redis::Value::Okay), Outcome::Ok);
        assert!(matches!(error_outcome("TIMEOUT outcome unknown"), Outcome::Unknown(_)));
    }
}
