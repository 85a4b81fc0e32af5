//! A new user's first minutes with the binary: option errors (one exit
//! code, one style), host names where an address is expected, a file given
//! as the data directory, and where the data goes on port 0.

mod common;
use common::*;

use std::process::{Child, Command, Stdio};

const HINT: &str = "Run kvstore-server --help for usage.\n";

#[track_caller]
fn assert_usage_error(args: &[&str], says: &str) {
    let out = run_binary(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "kvstore-server {args:?}: {}\n{err}", out.status);
    assert!(err.starts_with("kvstore-server: ") && err.ends_with(HINT), "kvstore-server {args:?}:\n{err}");
    assert!(err.contains(says), "kvstore-server {args:?} does not say {says:?}:\n{err}");
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn every_option_error_exits_2_in_one_style() {
    // Found by argh...
    assert_usage_error(&[], "port");
    assert_usage_error(&["--bogus"], "--bogus");
    assert_usage_error(&["notaport"], "notaport");
    assert_usage_error(&["1", "--fsync", "sometimes"], "sometimes");
    // ... and by the server's own checks.
    assert_usage_error(&["1", "--id", "0"], "--id");
    assert_usage_error(&["1", "notapeer"], "notapeer");
    assert_usage_error(&["1", "--bind", "nowhere.invalid"], "--bind 'nowhere.invalid'");
    assert_usage_error(&["1", "--max-line", "0"], "--max-line");
}

#[test]
fn help_goes_to_stdout_and_exits_0() {
    let out = run_binary(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.starts_with("Usage: kvstore-server "), "{help}");
    assert!(help.contains("--dir") && help.contains("port 0"), "{help}");
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_file_given_as_the_data_directory_is_named_as_one() {
    let dir = TempDir::new("dirfile");
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, b"a file").unwrap();
    let f = file.to_str().unwrap();
    assert_usage_error(&["0", "--dir", f], &format!("--dir '{f}' is a file, not a directory"));
    let under = format!("{f}/data");
    assert_usage_error(&["0", "--dir", &under], &format!("'{f}' is a file, not a directory"));
}

#[test]
fn bind_and_peers_take_host_names() {
    let peer = free_port();
    let (srv, _dir) = Server::start(&["--bind", "localhost", &format!("localhost:{peer}")]);
    assert!(srv.log_text().contains("listening on 127.0.0.1:"), "{}", srv.log_text());
    assert!(srv.log_text().contains(&format!("peers: localhost:{peer}")), "{}", srv.log_text());
    assert_eq!(srv.client().cmd("PING"), "PONG");
}

/// A server started by hand in `cwd`, as a user would, killed when dropped.
struct ByHand(Child);

impl Drop for ByHand {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn on_port_0_the_data_directory_and_id_follow_the_port_it_got() {
    let cwd = TempDir::new("port0");
    let mut ports = Vec::new();
    for start in 0..2 {
        let log = cwd.path().join(format!("server-{start}.log"));
        let child = Command::new(binary())
            .arg("0")
            .current_dir(cwd.path())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn kvstore-server");
        let _srv = ByHand(child);
        let text = || std::fs::read_to_string(&log).unwrap_or_default();
        wait_for("the server to listen", || listening_addr(&text()).is_some());
        let port = listening_addr(&text()).unwrap().port();
        assert!(text().contains(&format!("node {port} listening on")), "{}", text());
        assert!(text().contains(&format!("data in data/{port}/kvstore.aof")), "{}", text());
        assert!(cwd.path().join(format!("data/{port}/kvstore.aof")).is_file());
        let mut c = Client::connect(port);
        assert_eq!(c.stat("node_id"), port.to_string());
        assert_eq!(c.cmd("PUT started on-port-0"), "OK");
        ports.push(port);
    }
    // Two starts, two nodes, each with its own data: no start took another's
    // data under a new id.
    assert!(!cwd.path().join("data/0").exists());
    for p in ports {
        assert!(cwd.path().join(format!("data/{p}/kvstore.aof")).is_file());
    }
}
