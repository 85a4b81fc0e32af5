//! Test harness: starts the real `kvstore-server` binary on 127.0.0.1
//! port 0 with a private data directory, reads the port it got from its
//! start-up log line, and talks to it over TCP as netcat would. Nothing here sleeps for a fixed time: conditions are
//! polled until a deadline.
#![allow(dead_code)]

pub mod resp;
pub mod tools;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub mod cluster;

/// How long any single condition may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `cond` until it holds or `DEADLINE` passes; panics with `what`.
#[track_caller]
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    let mut pause = Duration::from_millis(1);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------- ports chosen ahead
//
// The only ports the tests choose before a server runs are chosen here.
// Every other server starts on port 0 and the harness reads its port from
// its log. A cluster cannot: each node names its peers (host:port) on its
// command line, so all of a cluster's ports must be known before its first
// node starts, and a restarted node must come back on its own port, which
// its peers keep dialling. (scripts/cluster.sh likewise takes a base port
// and uses the ones after it.) The OS picks each port (a bind to port 0)
// and the listener is dropped, so something else may take the port before
// the node binds it: `Server::start_with` and `restart` try a fixed port
// again while it is "Address already in use", and tests/cluster.rs starts a
// whole cluster over on fresh ports if a node cannot bind its own.

/// A port that was free a moment ago (the OS picked it for a bind to port 0).
#[track_caller]
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// `n` distinct ports that were free a moment ago, for a cluster's nodes.
#[track_caller]
pub fn ports_ahead(n: usize) -> Vec<u16> {
    let mut ports: Vec<u16> = Vec::new();
    while ports.len() < n {
        let p = free_port();
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    ports
}

/// The first of `n` consecutive ports that were free a moment ago (all `n`
/// were bound at once), for scripts/cluster.sh's base port.
#[track_caller]
pub fn port_run_ahead(n: u16) -> u16 {
    for _ in 0..200 {
        let base = free_port();
        if base > u16::MAX - n {
            continue;
        }
        let held: Vec<_> = (0..n).filter_map(|i| TcpListener::bind(("127.0.0.1", base + i)).ok()).collect();
        if held.len() == n as usize {
            return base;
        }
    }
    panic!("no run of {n} free ports");
}

/// Whether a failed start (`Err` of `Server::try_start_with`) was its
/// fixed port being taken.
pub fn port_in_use(msg: &str) -> bool {
    msg.contains("Address already in use")
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    #[track_caller]
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let p = std::env::temp_dir().join(format!(
            "kvstore-test-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running kvstore-server child process.
pub struct Server {
    pub child: Option<Child>,
    /// The port it listens on, as its log said (it was started on port 0
    /// unless `fixed_port` is set).
    pub port: u16,
    pub dir: PathBuf,
    pub args: Vec<String>,
    /// Ports of its peers, named on its command line.
    pub peers: Vec<u16>,
    /// A port chosen ahead, which it is started (and restarted) on: a
    /// cluster node's, since its peers dial it. `None`: port 0.
    pub fixed_port: Option<u16>,
    pub log: PathBuf,
    /// RLIMIT_FSIZE for the child (simulates a full disk: writes past it fail).
    pub fsize_limit: Option<u64>,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_kvstore-server")
}

/// The address in the server's start-up line, once that whole line is in
/// `log`:
/// `… kvstore-server node <id> listening on <ip:port> (text protocol and RESP); data in …`.
pub fn listening_addr(log: &str) -> Option<SocketAddr> {
    // Only complete lines: the server may be writing the last one.
    let complete = &log[..log.rfind('\n')? + 1];
    complete.lines().find_map(|line| {
        let (_, rest) = line.split_once("kvstore-server node ")?;
        let (id, rest) = rest.split_once(' ')?;
        id.parse::<u16>().ok()?;
        let rest = rest.strip_prefix("listening on ")?;
        let addr: SocketAddr = rest.split(' ').next()?.parse().ok()?;
        (addr.port() != 0).then_some(addr)
    })
}

/// Runs the server binary with `args` to completion, as a person would from
/// a shell, killing it if it is still running at the deadline (so a server
/// that should have refused to start fails the test instead of hanging it).
#[track_caller]
pub fn run_binary(args: &[&str]) -> std::process::Output {
    let dir = TempDir::new("run");
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn kvstore-server");
    let end = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kvstore-server {args:?} still running after {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    std::process::Output {
        status,
        stdout: std::fs::read(&out_path).unwrap_or_default(),
        stderr: std::fs::read(&err_path).unwrap_or_default(),
    }
}

impl Server {
    /// Starts a server on port 0 with data in `dir` and extra `args`.
    #[track_caller]
    pub fn start_in(dir: &Path, args: &[&str]) -> Server {
        Server::start_with(dir, args, &[], None)
    }

    /// Starts a server with `peers` and extra `args`, on port 0 unless
    /// `port` is given (a cluster node's port, from `ports_ahead`). A given port
    /// that is in use is tried again until the deadline, in case whatever
    /// took it lets go.
    #[track_caller]
    pub fn start_with(dir: &Path, args: &[&str], peers: &[u16], port: Option<u16>) -> Server {
        let mut s = Server::planned(dir, args, peers, port);
        if let Err(msg) = s.launch(true) {
            panic!("server did not start: {msg}");
        }
        s
    }

    /// As `start_with`, but one attempt: `Err` (with the server's log) if
    /// it did not start, e.g. because `port` is in use.
    #[track_caller]
    pub fn try_start_with(dir: &Path, args: &[&str], peers: &[u16], port: Option<u16>) -> Result<Server, String> {
        let mut s = Server::planned(dir, args, peers, port);
        s.launch(false)?;
        Ok(s)
    }

    /// Starts a server in a fresh temp dir (kept by the returned TempDir).
    #[track_caller]
    pub fn start(args: &[&str]) -> (Server, TempDir) {
        let dir = TempDir::new("srv");
        let s = Server::start_in(dir.path(), args);
        (s, dir)
    }

    fn planned(dir: &Path, args: &[&str], peers: &[u16], port: Option<u16>) -> Server {
        Server {
            child: None,
            port: 0,
            dir: dir.to_path_buf(),
            args: args.iter().map(|s| s.to_string()).collect(),
            peers: peers.to_vec(),
            fixed_port: port,
            log: PathBuf::new(),
            fsize_limit: None,
        }
    }

    /// Spawns the server and waits for its start-up line, which gives
    /// `self.port`. A fixed port "in use" is tried again until the deadline
    /// if `retry_in_use`.
    #[track_caller]
    fn launch(&mut self, retry_in_use: bool) -> Result<(), String> {
        assert!(self.child.is_none(), "stop the server first");
        let end = Instant::now() + DEADLINE;
        loop {
            self.spawn();
            match self.wait_listening() {
                Ok(port) => {
                    self.port = port;
                    return Ok(());
                }
                Err(msg) if retry_in_use && port_in_use(&msg) && Instant::now() < end => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(msg) => return Err(msg),
            }
        }
    }

    /// Starts the child with a fresh log file.
    #[track_caller]
    fn spawn(&mut self) {
        static SPAWNS: AtomicU64 = AtomicU64::new(0);
        self.log = self.dir.join(format!("server-{}.log", SPAWNS.fetch_add(1, Ordering::Relaxed)));
        let mut cmd = Command::new(binary());
        cmd.arg(self.fixed_port.unwrap_or(0).to_string());
        if !self.peers.is_empty() {
            let list: Vec<String> = self.peers.iter().map(|p| format!("127.0.0.1:{p}")).collect();
            cmd.arg(list.join(","));
        }
        cmd.arg("--dir").arg(self.dir.join("data"));
        cmd.args(&self.args);
        let log = std::fs::File::create(&self.log).expect("create server log");
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        // The harness needs the info-level start-up line to learn the port.
        cmd.env("RUST_LOG", std::env::var("KV_TEST_LOG").unwrap_or_else(|_| "info".into()));
        if let Some(limit) = self.fsize_limit {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit { rlim_cur: limit, rlim_max: limit };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        self.child = Some(cmd.spawn().expect("spawn kvstore-server"));
    }

    /// Polls the log until the start-up line names the port the server
    /// listens on (it has bound and listens by then), or the server exits,
    /// or the deadline passes.
    fn wait_listening(&mut self) -> Result<u16, String> {
        let end = Instant::now() + DEADLINE;
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(addr) = listening_addr(&self.log_text()) {
                if let Some(want) = self.fixed_port
                    && addr.port() != want
                {
                    return Err(format!("listening on {addr}, not port {want}: {}", self.log_text()));
                }
                return Ok(addr.port());
            }
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!("exited with {status}: {}", self.log_text()));
            }
            if Instant::now() > end {
                return Err(format!(
                    "no \"listening on\" line in its log after {DEADLINE:?} \
                     (KV_TEST_LOG must keep kvstore::server at info): {}",
                    self.log_text()
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// What the server wrote to stderr.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// kill -9.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    #[track_caller]
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("server running");
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(st) = c.try_wait().expect("wait") {
                return st;
            }
            assert!(Instant::now() < end, "server did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Starts the stopped server again on its data dir, with its `args`
    /// and peers as they are now. A server started on port 0 is started on
    /// port 0 again and `self.port` is the new port (no test needs the old
    /// one back: clients connect anew); a cluster node comes back on its
    /// fixed port, which its peers dial.
    #[track_caller]
    pub fn restart(&mut self) {
        if let Err(msg) = self.launch(true) {
            panic!("restart failed: {msg}");
        }
    }

    /// Stops the server (kill -9) and starts it again with an RLIMIT_FSIZE.
    #[track_caller]
    pub fn restart_with_fsize_limit(&mut self, limit: Option<u64>) {
        self.kill9();
        self.fsize_limit = limit;
        self.restart();
    }

    #[track_caller]
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// Resident memory of the server process, in KiB.
    #[track_caller]
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    #[track_caller]
    pub fn client(&self) -> Client {
        Client::connect(self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A line-protocol client, as netcat would be.
pub struct Client {
    pub reader: BufReader<TcpStream>,
    pub stream: TcpStream,
}

impl Client {
    #[track_caller]
    pub fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        Client { reader, stream }
    }

    #[track_caller]
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads one reply line, without its `\n`.
    #[track_caller]
    pub fn line(&mut self) -> String {
        let mut s = String::new();
        let n = self.reader.read_line(&mut s).expect("read reply");
        assert!(n > 0, "connection closed while a reply was expected");
        s.trim_end_matches('\n').to_string()
    }

    /// Sends one command line and reads its one-line reply.
    #[track_caller]
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\n").as_bytes());
        self.line()
    }

    /// Reads raw bytes until `n` are here.
    #[track_caller]
    pub fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        self.reader.read_exact(&mut buf).expect("read");
        buf
    }

    /// Whether the server closed the connection (reads EOF within the deadline).
    pub fn closed_by_server(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => true,
            // A close with our bytes unread shows as a reset.
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }

    /// STATS as (name, value) pairs.
    #[track_caller]
    pub fn stats(&mut self) -> Vec<(String, String)> {
        self.send(b"STATS\n");
        let mut v = vec![];
        loop {
            let l = self.line();
            if l == "END" {
                return v;
            }
            let mut parts = l.splitn(3, ' ');
            assert_eq!(parts.next(), Some("STAT"), "bad STATS line {l:?}");
            v.push((parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string()));
        }
    }

    #[track_caller]
    pub fn stat(&mut self, name: &str) -> String {
        self.stats().into_iter().find(|(k, _)| k == name).map(|(_, v)| v).unwrap_or_default()
    }
}
