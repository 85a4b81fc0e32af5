//! `kvstore-server <port> [peers]`: see `--help`.

use std::process::ExitCode;

use kvstore::config::{Args, Config};

/// mimalloc: size classes that fit a small key and value exactly (glibc
/// rounds a 48-byte key+value up to a 64-byte chunk) and fast thread-local
/// free lists. Chosen by measuring RSS per key and CPU per SET.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
use kvstore::server::Server;

fn main() -> ExitCode {
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
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
