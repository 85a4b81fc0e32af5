//! Process settings the server makes at start: the open-file limit, and
//! what a file-size limit does.

/// File descriptors kept for everything but clients: the listeners, the
/// log, the poller, peer links, signals.
const RESERVED_FDS: u64 = 64;

/// Raises the open-file limit toward what `max_clients` connections need
/// (as Redis does), so a default 1024 limit does not cap clients silently.
/// Returns how many clients the limit allows: `max_clients`, or fewer
/// (logged) where the limit cannot be raised that far.
pub fn raise_fd_limit(max_clients: usize) -> usize {
    let want = (max_clients as u64).saturating_add(RESERVED_FDS);
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 || lim.rlim_cur >= want {
            return max_clients;
        }
        let target = want.min(lim.rlim_max);
        let new = libc::rlimit { rlim_cur: target, rlim_max: lim.rlim_max };
        let got = if libc::setrlimit(libc::RLIMIT_NOFILE, &new) == 0 { target } else { lim.rlim_cur };
        if got < want {
            let allowed = got.saturating_sub(RESERVED_FDS).max(1) as usize;
            log::warn!(
                "the open-file limit is {got} and cannot be raised to {want}: --max-clients {max_clients} is capped \
                 at {allowed} (raise the hard limit, e.g. ulimit -Hn, to allow more)"
            );
            return allowed.min(max_clients);
        }
        max_clients
    }
}

/// A file-size limit (ulimit -f) must make writes fail with EFBIG, which
/// the log handles, rather than kill the process with SIGXFSZ.
pub fn ignore_sigxfsz() {
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions
    // and happens before any other thread exists.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}
