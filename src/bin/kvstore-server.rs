//! `kvstore-server <port> [peers]`: see `--help`.

use std::process::ExitCode;

use kvstore::config::{Args, Config};

/// mimalloc: size classes that fit a small key and value exactly (glibc
/// rounds a 48-byte key+value up to a 64-byte chunk) and fast thread-local
/// free lists. Chosen by measuring RSS per key and CPU per SET.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
use kvstore::server::Server;

/// `mi_option_purge_delay` in the vendored mimalloc v2 header (the Rust
/// bindings name no constant for it); pinned by Cargo.lock.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Returns freed memory to the OS at once rather than 10 ms later: a
/// server's RSS should show its data, not the buffers it grew through (a
/// doubling entry array, a dropped peer queue). The hot path frees nothing,
/// so this costs no throughput.
fn purge_freed_memory_at_once() {
    // SAFETY: plain setter/getter of a mimalloc option, called before any
    // other thread exists.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        debug_assert_eq!(libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY), 0);
    }
}

/// INFO's `used_memory`: the memory mimalloc has committed, and its peak.
/// A release build of mimalloc counts no allocated bytes; what it holds
/// from the OS (the free space in its pages included) is the nearest figure
/// it keeps.
fn mimalloc_memory() -> Option<(u64, u64)> {
    let (mut commit, mut peak) = (0usize, 0usize);
    let null = std::ptr::null_mut();
    // SAFETY: mi_process_info writes only through the out-pointers it is
    // given and skips the null ones.
    unsafe { libmimalloc_sys::mi_process_info(null, null, null, null, null, &mut commit, &mut peak, null) };
    (commit > 0).then_some((commit as u64, peak as u64))
}

fn main() -> ExitCode {
    purge_freed_memory_at_once();
    let args: Args = argh::from_env();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cfg = match Config::from_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kvstore-server: {e}\nRun kvstore-server --help for usage.");
            return ExitCode::from(2);
        }
    };
    let mut server = match Server::start(cfg) {
        Ok(s) => s,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    server.set_memory_probe(mimalloc_memory);
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
