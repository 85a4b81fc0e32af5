//! Load mode: the optional prefill phase, then the measured run, with each
//! connection's share of the requests and its own key stream.

use crate::keys::{Keys, Rng};
use crate::options::{Config, Ratio};
use crate::phase::{Phase, run_phase};
use crate::report::print_load;
use crate::request::Shape;

/// Pre-encoded requests of all connections together may not exceed this.
const MAX_ENCODED: usize = 1 << 30;

/// Splits `total` into `parts` shares differing by at most one.
pub fn share(total: u64, parts: usize, i: usize) -> u64 {
    let parts = parts as u64;
    total / parts + u64::from((i as u64) < total % parts)
}

pub fn run_load(cfg: &Config) -> Result<(), String> {
    let encoded = Shape::encoded_len(cfg.protocol, cfg.ratio, cfg.pipeline, cfg.value_size);
    if encoded.saturating_mul(cfg.clients) > MAX_ENCODED {
        return Err(format!(
            "pre-encoded requests would take {} MiB ((pipeline + SET:GET period - 1) x request size x clients); \
             lower --pipeline, --value-size or --clients, or use a simpler --ratio",
            encoded.saturating_mul(cfg.clients) >> 20
        ));
    }

    if cfg.prefill {
        let n = cfg.clients;
        let mut first = 0;
        let clients = (0..n)
            .map(|i| {
                let count = share(cfg.keyspace, n, i);
                first += count;
                (count, Keys::Seq { next: first - count })
            })
            .collect();
        let phase = Phase {
            label: "prefill",
            pipeline: cfg.pipeline.max(64),
            ratio: Ratio { set: 1, get: 0 },
            clients,
            deadline: None,
            progress: !cfg.quiet,
        };
        let r = run_phase(cfg, phase)?;
        if r.totals.tally.errors > 0 {
            return Err(format!(
                "prefill: {} SETs failed, first: {}",
                r.totals.tally.errors,
                r.totals.tally.first_error.unwrap_or_default()
            ));
        }
        if !cfg.quiet {
            eprintln!("prefilled {} keys in {:.2} s", cfg.keyspace, r.elapsed.as_secs_f64());
        }
    }

    let budget = if cfg.duration.is_some() { None } else { Some(cfg.requests) };
    let clients = (0..cfg.clients)
        .map(|i| {
            let count = budget.map_or(u64::MAX, |b| share(b, cfg.clients, i));
            let mut seeder = Rng(cfg.seed ^ (i as u64).wrapping_mul(0xa076_1d64_78bd_642f));
            (count, Keys::Random { rng: Rng(seeder.next_u64()), n: cfg.keyspace })
        })
        .collect();
    let phase = Phase {
        label: "run",
        pipeline: cfg.pipeline,
        ratio: cfg.ratio,
        clients,
        deadline: cfg.duration,
        progress: !cfg.quiet,
    };
    let r = run_phase(cfg, phase)?;
    print_load(cfg, &r);
    Ok(())
}
