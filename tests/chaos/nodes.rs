//! Real kvstore-server processes whose peer links all go through the
//! [`Proxy`]: node `i` is started on port 0 (its peers never dial it
//! directly, so any port will do, and a restart may take another) with
//! `--id i+1` and the proxy's ports for its peers. Nodes are killed with -9,
//! paused with SIGSTOP and continued with SIGCONT, and restarted on their
//! data directories.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use super::proxy::Proxy;
use super::workload::Ports;
use crate::common::{Server, TempDir};

/// A node's life, as the schedule left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Running,
    Killed,
    Paused,
}

/// The nodes of one run, and the network between them.
pub struct Nodes {
    pub servers: Vec<Server>,
    pub state: Vec<State>,
    /// Where clients find each node (0 while it is down).
    pub ports: Ports,
    pub proxy: Proxy,
    /// Restart on an empty data directory (the harness's self-test: a node
    /// that forgets must be caught by the checkers).
    pub wipe_on_restart: bool,
    _dirs: Vec<TempDir>,
}

impl Nodes {
    /// Starts `n` nodes, each with `args` (besides its port, peers, `--dir` and `--id`).
    #[track_caller]
    pub fn start(n: usize, args: &[String]) -> Nodes {
        let proxy = Proxy::start(n);
        let dirs: Vec<TempDir> = (0..n).map(|_| TempDir::new("chaos")).collect();
        let mut servers = Vec::with_capacity(n);
        for (i, dir) in dirs.iter().enumerate() {
            let id = (i + 1).to_string();
            let mut a: Vec<&str> = vec!["--id", &id];
            a.extend(args.iter().map(String::as_str));
            let s = Server::start_with(dir.path(), &a, &proxy.peer_ports(i), None);
            proxy.node_at(i, s.port);
            servers.push(s);
        }
        let ports = Arc::new(servers.iter().map(|s| AtomicU16::new(s.port)).collect());
        Nodes { servers, state: vec![State::Running; n], ports, proxy, wipe_on_restart: false, _dirs: dirs }
    }

    pub fn len(&self) -> usize {
        self.servers.len()
    }

    fn signal(&self, i: usize, sig: i32) {
        // SAFETY: kill(2) on the pid of a child this harness started and has not reaped.
        unsafe {
            libc::kill(self.servers[i].pid() as i32, sig);
        }
    }

    /// kill -9 node `i`.
    pub fn kill9(&mut self, i: usize) {
        if self.state[i] == State::Killed {
            return;
        }
        self.ports[i].store(0, Ordering::SeqCst);
        self.proxy.node_at(i, 0);
        self.servers[i].kill9();
        self.state[i] = State::Killed;
    }

    /// Starts a killed node again on its data dir.
    #[track_caller]
    pub fn restart(&mut self, i: usize) {
        if self.state[i] != State::Killed {
            return;
        }
        if self.wipe_on_restart {
            let _ = std::fs::remove_dir_all(self.servers[i].dir.join("data"));
        }
        self.servers[i].restart();
        let port = self.servers[i].port;
        self.proxy.node_at(i, port);
        self.ports[i].store(port, Ordering::SeqCst);
        self.state[i] = State::Running;
    }

    /// SIGSTOP: the process keeps its sockets and answers nothing.
    pub fn pause(&mut self, i: usize) {
        if self.state[i] == State::Running {
            self.signal(i, libc::SIGSTOP);
            self.state[i] = State::Paused;
        }
    }

    /// SIGCONT.
    pub fn resume(&mut self, i: usize) {
        if self.state[i] == State::Paused {
            self.signal(i, libc::SIGCONT);
            self.state[i] = State::Running;
        }
    }

    /// Every node running and every link passing.
    #[track_caller]
    pub fn heal(&mut self) {
        self.proxy.heal();
        for i in 0..self.len() {
            self.resume(i);
            self.restart(i);
        }
    }

    /// Whether each node is still running (none crashed by itself).
    pub fn crashed(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for i in 0..self.len() {
            if self.state[i] != State::Killed && !self.servers[i].is_running() {
                out.push(format!("node {i} exited by itself; its log:\n{}", self.servers[i].log_text()));
            }
        }
        out
    }
}
