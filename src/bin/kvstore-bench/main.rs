//! kvstore-bench: the load generator for kvstore, in the spirit of
//! redis-benchmark and memtier. It speaks RESP (`SET`/`GET`) or the kvstore
//! text protocol (`PUT`/`GET` lines), so it also measures Redis or anything
//! else that answers those commands.
//!
//! The machine kvstore is measured on has two cores, shared by the server and
//! this generator: every cycle the generator spends is a cycle the server
//! does not get. So the point of this program is CPU per request, and it
//! reports its own (getrusage) next to the throughput.
//!
//! # Layout
//! - [`options`]: [`Args`] / [`Config`]: options, defaults, validation.
//! - [`request`]: [`Shape`](request::Shape), the pre-encoded request window.
//!   Requests are encoded once at start; per request the hot path only writes
//!   the 12 key digits in place.
//! - [`keys`]: which keys a connection uses (uniform random, or sequential
//!   for the prefill).
//! - [`reply`]: [`Scanner`](reply::Scanner), a streaming reply counter. It
//!   never buffers a reply: it finds line ends with memchr and skips bulk
//!   payloads by length, carrying at most one partial header line (64 bytes)
//!   across reads. Also whole-reply parsing for the lag mode.
//! - [`histogram`]: log-linear latency histogram, ~0.8% precision, fixed
//!   buckets, nothing allocated while running.
//! - [`client`]: [`Client`](client::Client) / [`worker`](client::worker): one
//!   mio `Poll` per thread, its connections, each with one batch of
//!   `--pipeline` requests in flight.
//! - [`phase`]: [`run_phase`](phase::run_phase): connects, starts the
//!   workers, prints progress, merges.
//! - [`load`]: load mode: the optional prefill phase, then the measured run.
//! - [`lag`]: replication lag mode (blocking sockets, one key at a time).
//! - [`report`]: the progress line and the summaries, human or JSON.

mod client;
mod histogram;
mod keys;
mod lag;
mod load;
mod options;
mod phase;
mod reply;
mod report;
mod request;

use std::process::ExitCode;

use crate::lag::run_lag;
use crate::load::run_load;
use crate::options::{Args, Config};

fn run(args: Args) -> Result<(), String> {
    let cfg = Config::from_args(args)?;
    log::debug!("{cfg:?}");
    match cfg.lag_addr.clone() {
        Some(lag_addr) => run_lag(&cfg, &lag_addr),
        None => run_load(&cfg),
    }
}

fn main() -> ExitCode {
    env_logger::init();
    match run(argh::from_env()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kvstore-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
