//! Process settings the server makes at start: the open-file limit, and
//! what a file-size limit does.

/// Raises the open-file limit toward what `max_clients` connections need
/// (as Redis does), so a default 1024 limit does not cap clients silently.
pub fn raise_fd_limit(max_clients: usize) {
    let want = (max_clients as u64).saturating_add(64);
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 || lim.rlim_cur >= want {
            return;
        }
        let target = want.min(lim.rlim_max);
        let new = libc::rlimit { rlim_cur: target, rlim_max: lim.rlim_max };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &new) == 0 && target < want {
            log::warn!("open-file limit is {target}: at most about {} clients", target.saturating_sub(64));
        }
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
