//! One phase of a load run (the prefill, or the measured run): connects its
//! connections, spreads them over `--threads` workers, shows progress, and
//! merges what the workers measured, with this process's CPU time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::time::{Duration, Instant};

use mio::Token;

use crate::client::{ABORTED, Client, Counter, Totals, WorkerCtl, connect, worker};
use crate::histogram::Histogram;
use crate::keys::Keys;
use crate::options::{Config, Ratio};
use crate::report::Progress;
use crate::request::Shape;

/// One run of the generator over all connections.
pub struct Phase {
    /// For the progress line and messages.
    pub label: &'static str,
    pub pipeline: usize,
    pub ratio: Ratio,
    /// Per connection: requests to send and where keys come from.
    pub clients: Vec<(u64, Keys)>,
    pub deadline: Option<Duration>,
    pub progress: bool,
}

pub struct PhaseReport {
    pub totals: Totals,
    pub hist: Histogram,
    pub elapsed: Duration,
    pub cpu_user: Duration,
    pub cpu_sys: Duration,
}

/// User and system CPU time of this process.
fn cpu_time() -> (Duration, Duration) {
    // SAFETY: getrusage only writes the struct it is given, which is a
    // plain-data struct for which all-zero bytes are a valid value.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut ru) != 0 {
            return (Duration::ZERO, Duration::ZERO);
        }
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

/// Connects the phase's connections, runs them on `cfg.threads` workers,
/// shows progress, and merges what the workers measured.
pub fn run_phase(cfg: &Config, phase: Phase) -> Result<PhaseReport, String> {
    let shape = Arc::new(Shape::new(cfg.protocol, phase.ratio, phase.pipeline, cfg.value_size));
    log::debug!(
        "{}: window of {} requests, {} bytes per connection",
        phase.label,
        shape.digits.len(),
        shape.bytes.len()
    );

    let threads = cfg.threads;
    let mut groups: Vec<Vec<Client>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, (budget, keys)) in phase.clients.into_iter().enumerate() {
        let stream = connect(&cfg.addr)?;
        stream.set_nonblocking(true).map_err(|e| format!("{}: cannot set non-blocking: {e}", cfg.addr))?;
        let group = &mut groups[i % threads];
        group.push(Client::new(stream, Token(group.len()), &shape, keys, budget, cfg.protocol));
    }

    let barrier = Arc::new(Barrier::new(threads + 1));
    let abort = Arc::new(AtomicBool::new(false));
    let counters: Vec<Arc<Counter>> = (0..threads).map(|_| Arc::new(Counter::default())).collect();
    let (tx, rx) = mpsc::channel();
    let mut handles = Vec::with_capacity(threads);
    for (t, clients) in groups.into_iter().enumerate() {
        let ctl = WorkerCtl {
            shape: shape.clone(),
            barrier: barrier.clone(),
            abort: abort.clone(),
            progress: counters[t].clone(),
            deadline: phase.deadline,
        };
        let tx = tx.clone();
        let handle = std::thread::Builder::new()
            .name(format!("bench-{t}"))
            .spawn(move || {
                // The receiver lives until every worker has reported.
                let _ = tx.send(worker(clients, ctl));
            })
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        handles.push(handle);
    }
    drop(tx);

    barrier.wait();
    let start = Instant::now();
    let (user0, sys0) = cpu_time();
    let mut progress = Progress::new(phase.progress, phase.label, start);
    let mut reports = Vec::with_capacity(threads);
    let mut error: Option<String> = None;
    let mut pending = threads;
    while pending > 0 {
        match rx.recv_timeout(progress.until_next()) {
            Ok(Ok(report)) => {
                reports.push(report);
                pending -= 1;
            }
            Ok(Err(e)) => {
                pending -= 1;
                abort.store(true, Ordering::Relaxed);
                if error.is_none() || error.as_deref() == Some(ABORTED) {
                    error = Some(e);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                progress.tick(counters.iter().map(|c| c.0.load(Ordering::Relaxed)).sum());
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    progress.finish();
    for h in handles {
        if h.join().is_err() && error.is_none() {
            error = Some("a worker thread panicked".into());
        }
    }
    let (user1, sys1) = cpu_time();
    if let Some(e) = error {
        return Err(e);
    }

    let mut totals = Totals::default();
    let mut hist = Histogram::new();
    let mut finished = start;
    for r in reports {
        totals.replies += r.totals.replies;
        totals.gets += r.totals.gets;
        totals.tally.merge(r.totals.tally);
        hist.merge(&r.hist);
        finished = finished.max(r.finished);
    }
    Ok(PhaseReport {
        totals,
        hist,
        elapsed: finished.duration_since(start),
        cpu_user: user1.saturating_sub(user0),
        cpu_sys: sys1.saturating_sub(sys0),
    })
}
