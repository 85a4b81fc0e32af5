//! `kvstore-server <port> [peers]`: see `--help`.

use std::process::ExitCode;

use argh::{EarlyExit, FromArgs};
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

/// The exit code of every command-line error, argh's and the server's own
/// checks alike (2, as shells and most tools have it for a usage error).
const USAGE_ERROR: u8 = 2;

/// The checked configuration from the command line `argv` (program name
/// first); or how to exit: 0 after `--help`, [`USAGE_ERROR`] after saying
/// what is wrong, in one style whether argh or [`Config::from_args`] found it.
fn config_from(argv: Vec<std::ffi::OsString>) -> Result<Config, ExitCode> {
    let usage_error = |msg: &str| {
        eprintln!("kvstore-server: {}\nRun kvstore-server --help for usage.", msg.trim_end());
        ExitCode::from(USAGE_ERROR)
    };
    let mut words = Vec::with_capacity(argv.len());
    for w in &argv {
        match w.to_str() {
            Some(w) => words.push(w),
            None => return Err(usage_error(&format!("{} is not valid UTF-8", w.to_string_lossy()))),
        }
    }
    // As argh's from_env: the program's file name in the usage line.
    let name = words.first().map(std::path::Path::new).and_then(|p| p.file_name()?.to_str());
    let rest = words.get(1..).unwrap_or_default();
    match Args::from_args(&[name.unwrap_or("kvstore-server")], rest) {
        Ok(args) => Config::from_args(args).map_err(|e| usage_error(&e)),
        Err(EarlyExit { output, status: Ok(()) }) => {
            println!("{output}");
            Err(ExitCode::SUCCESS)
        }
        Err(EarlyExit { output, status: Err(()) }) => Err(usage_error(&output)),
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
    let cfg = match config_from(std::env::args_os().collect()) {
        Ok(c) => c,
        Err(exit) => return exit,
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
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
