//! The external programs tests drive (redis-cli, redis-server, python3):
//! run to completion with a deadline, or kept running with their output
//! read line by line as it comes.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use super::{DEADLINE, TempDir, wait_for};

/// A child process of a test, killed if it is still running when dropped.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// What an external program did: its exit status, stdout and stderr.
pub struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn describe(&self) -> String {
        format!("exit status {}\n--- stdout\n{}\n--- stderr\n{}", self.status, self.stdout, self.stderr)
    }
}

/// Runs `program args` with `stdin`, waiting (polled, bounded by the
/// harness deadline) for it to exit. Output goes to files so a chatty
/// program cannot block on a full pipe.
#[track_caller]
pub fn run(program: &str, args: &[&str], stdin: &[u8]) -> Ran {
    let dir = TempDir::new("tool");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let spawned = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn();
    let mut child = match spawned {
        Ok(child) => Reaped(child),
        Err(e) => panic!("cannot run {program}: {e}"),
    };
    {
        use std::io::Write;
        let mut input = child.0.stdin.take().expect("stdin");
        input.write_all(stdin).expect("write stdin");
    }
    let mut status = None;
    wait_for(&format!("{program} {} to exit", args.join(" ")), || {
        status = child.0.try_wait().expect("try_wait");
        status.is_some()
    });
    let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    Ran { status: status.expect("exited"), stdout: read(&out_path), stderr: read(&err_path) }
}

/// Fails the test, with what to install, unless `program --version` runs.
#[track_caller]
pub fn require(program: &str, install: &str) {
    let ok = Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(ok, "{program} not found: {install}");
}

/// A program left running, whose stdout lines arrive as it prints them
/// (read on a thread of their own; its stdout is unbuffered through
/// `stdbuf -o0`, since a C program buffers a pipe until it exits).
pub struct Streamed {
    child: Reaped,
    lines: mpsc::Receiver<String>,
    /// Every line seen so far, for failure messages.
    pub seen: Vec<String>,
}

impl Streamed {
    /// Starts `program args` through `stdbuf -o0`.
    #[track_caller]
    pub fn start(program: &str, args: &[&str]) -> Streamed {
        require("stdbuf", "install coreutils");
        let mut child = Command::new("stdbuf")
            .arg("-o0")
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            // Lines end with LF, or with CR where a tool redraws one.
            let mut r = BufReader::new(out);
            let mut line = Vec::new();
            while r.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                for part in line.split(|&c| c == b'\r' || c == b'\n').filter(|p| !p.is_empty()) {
                    if tx.send(String::from_utf8_lossy(part).into_owned()).is_err() {
                        return;
                    }
                }
                line.clear();
            }
        });
        Streamed { child: Reaped(child), lines, seen: Vec::new() }
    }

    /// Waits for a line that `want` accepts and returns it (lines before it
    /// are kept in `seen`).
    #[track_caller]
    pub fn line_where(&mut self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if want(&l) {
                        return l;
                    }
                }
                Err(_) => panic!("no line {what} within {DEADLINE:?}; it printed {:#?}", self.seen),
            }
        }
    }

    /// Stops it.
    pub fn stop(self) {
        drop(self.child);
    }
}
