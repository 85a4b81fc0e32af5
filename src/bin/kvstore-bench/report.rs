//! Everything the program prints: the once-a-second progress line on stderr
//! and the final summaries, human or `--json`. Kept in one place so the
//! output formats can be read (and kept stable) together.

use std::fmt::Write as _;
use std::io::{self, IsTerminal};
use std::time::{Duration, Instant};

use crate::histogram::Histogram;
use crate::lag::LAG_TIMEOUT;
use crate::options::Config;
use crate::phase::PhaseReport;
use crate::reply::Tally;

/// The once-a-second progress line on stderr.
pub struct Progress {
    enabled: bool,
    label: &'static str,
    start: Instant,
    next: Instant,
    last_count: u64,
    last_at: Instant,
}

impl Progress {
    pub fn new(enabled: bool, label: &'static str, start: Instant) -> Progress {
        Progress { enabled, label, start, next: start + Duration::from_secs(1), last_count: 0, last_at: start }
    }

    pub fn until_next(&self) -> Duration {
        if self.enabled { self.next.saturating_duration_since(Instant::now()) } else { Duration::from_secs(3600) }
    }

    pub fn tick(&mut self, count: u64) {
        let now = Instant::now();
        self.next += Duration::from_secs(1);
        if !self.enabled {
            return;
        }
        let rate = (count - self.last_count.min(count)) as f64 / now.duration_since(self.last_at).as_secs_f64();
        eprint!(
            "\r{}: {:6.1} s  {:>12} requests  {:>10.0} req/s ",
            self.label,
            now.duration_since(self.start).as_secs_f64(),
            count,
            rate
        );
        self.last_count = count;
        self.last_at = now;
    }

    pub fn finish(&self) {
        if self.enabled && self.last_count > 0 {
            // On a terminal, erase the line; in a log, end it.
            eprint!("{}", if io::stderr().is_terminal() { "\r\x1b[2K" } else { "\n" });
        }
    }
}

pub fn print_load(cfg: &Config, r: &PhaseReport) {
    let t = &r.totals;
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    let rps = t.replies as f64 / secs;
    let cpu = r.cpu_user + r.cpu_sys;
    let cpu_per_req = if t.replies == 0 { 0.0 } else { cpu.as_secs_f64() * 1e6 / t.replies as f64 };
    let lat = r.hist.summary();
    let ratio = format!("{}:{}", cfg.ratio.set, cfg.ratio.get);
    if cfg.json {
        let mut s = String::new();
        let _ = write!(
            s,
            "{{\"mode\":\"load\",\"addr\":{},\"protocol\":\"{}\",\"clients\":{},\"pipeline\":{},\"threads\":{},\
             \"value_size\":{},\"keyspace\":{},\"ratio\":\"{}\",\"prefill\":{},\"requests\":{},\"errors\":{},\
             \"gets\":{},\"get_misses\":{},\"elapsed_s\":{:.6},\"rps\":{:.1},\"latency_ms\":{},\
             \"cpu_user_s\":{:.6},\"cpu_sys_s\":{:.6},\"cpu_us_per_request\":{:.4},\"first_error\":{}}}",
            json_str(&cfg.addr),
            cfg.protocol.name(),
            cfg.clients,
            cfg.pipeline,
            cfg.threads,
            cfg.value_size,
            cfg.keyspace,
            ratio,
            cfg.prefill,
            t.replies,
            t.tally.errors,
            t.gets,
            t.tally.nils,
            secs,
            rps,
            lat.json(),
            r.cpu_user.as_secs_f64(),
            r.cpu_sys.as_secs_f64(),
            cpu_per_req,
            t.tally.first_error.as_deref().map_or("null".into(), json_str),
        );
        println!("{s}");
        return;
    }
    println!(
        "kvstore-bench {} {}: {} clients, pipeline {}, {} thread(s), value {} B, keyspace {}, SET:GET {}",
        cfg.addr,
        cfg.protocol.name(),
        cfg.clients,
        cfg.pipeline,
        cfg.threads,
        cfg.value_size,
        cfg.keyspace,
        ratio
    );
    println!("requests     {} (errors {}, GETs {}, GET misses {})", t.replies, t.tally.errors, t.gets, t.tally.nils);
    if let Some(e) = &t.tally.first_error {
        println!("first error  {e}");
    }
    println!("elapsed      {secs:.3} s");
    println!("throughput   {rps:.0} req/s");
    println!("latency ms   {}", lat.human());
    println!(
        "client CPU   {:.3} µs/request (user {:.3} s, sys {:.3} s)",
        cpu_per_req,
        r.cpu_user.as_secs_f64(),
        r.cpu_sys.as_secs_f64()
    );
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub fn print_lag(cfg: &Config, lag_addr: &str, hist: &Histogram, timeouts: u64, tally: &Tally) {
    let lat = hist.summary();
    if cfg.json {
        println!(
            "{{\"mode\":\"lag\",\"addr\":{},\"lag_addr\":{},\"protocol\":\"{}\",\"writes\":{},\"visible\":{},\
             \"timeouts\":{},\"write_errors\":{},\"lag_ms\":{},\"first_error\":{}}}",
            json_str(&cfg.addr),
            json_str(lag_addr),
            cfg.protocol.name(),
            cfg.requests,
            hist.total,
            timeouts,
            tally.errors,
            lat.json(),
            tally.first_error.as_deref().map_or("null".into(), json_str),
        );
        return;
    }
    println!("kvstore-bench replication lag: write on {} ({}), read on {lag_addr}", cfg.addr, cfg.protocol.name());
    println!(
        "writes       {} (visible {}, timeouts after {} s {}, write errors {})",
        cfg.requests,
        hist.total,
        LAG_TIMEOUT.as_secs(),
        timeouts,
        tally.errors
    );
    if let Some(e) = &tally.first_error {
        println!("first error  {e}");
    }
    println!("lag ms       {}", lat.human());
}
