//! Protected mode end to end, from another host: a network namespace made
//! by the test (`ip netns`, a veth pair on a private /30), whose client
//! connects to the server's address on the veth — a non-loopback client of
//! a server bound to every interface. Needs root and iproute2, as CI has
//! (scripts/test.sh runs as root there); elsewhere the test says why it
//! cannot run and fails, unless KV_SKIP_NETNS=1 says to skip it.

mod common;
use common::*;

use std::process::Command;

/// A namespace with one end of a veth pair: `10.77.<n>.2` inside, the
/// host end `10.77.<n>.1`. Removed on drop (with it the veth pair).
struct Netns {
    name: String,
    host_if: String,
    /// The third byte of its addresses.
    n: u32,
}

impl Netns {
    fn new() -> Result<Netns, String> {
        // Names and subnets differ per process and per test in it.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("{}{k}", std::process::id() % 1_000_000);
        let n = (std::process::id() * 7 + k) % 250 + 1;
        let name = format!("kvpm{id}");
        let (host_if, ns_if) = (format!("kvh{id}"), format!("kvn{id}"));
        let ns = Netns { name: name.clone(), host_if: host_if.clone(), n };
        let steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), name.clone()],
            vec![
                "link".into(),
                "add".into(),
                host_if.clone(),
                "type".into(),
                "veth".into(),
                "peer".into(),
                "name".into(),
                ns_if.clone(),
            ],
            vec!["link".into(), "set".into(), ns_if.clone(), "netns".into(), name.clone()],
            vec!["addr".into(), "add".into(), format!("10.77.{n}.1/30"), "dev".into(), host_if.clone()],
            vec!["link".into(), "set".into(), host_if.clone(), "up".into()],
            vec![
                "-n".into(),
                name.clone(),
                "addr".into(),
                "add".into(),
                format!("10.77.{n}.2/30"),
                "dev".into(),
                ns_if.clone(),
            ],
            vec!["-n".into(), name.clone(), "link".into(), "set".into(), ns_if, "up".into()],
            vec!["-n".into(), name.clone(), "link".into(), "set".into(), "lo".into(), "up".into()],
        ];
        for args in steps {
            let out = Command::new("ip").args(&args).output().map_err(|e| format!("ip: {e}"))?;
            if !out.status.success() {
                return Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
            }
        }
        Ok(ns)
    }

    fn host_addr(&self) -> String {
        format!("10.77.{}.1", self.n)
    }

    /// Connects from inside the namespace to `addr:port`, sends `request`,
    /// and returns everything the server sent until it closed (or 5 s).
    fn talk(&self, addr: &str, port: u16, request: &str) -> String {
        // Reads until the server closes, or for a second of silence.
        let script = format!(
            "import socket\ns = socket.create_connection(('{addr}', {port}), timeout=5)\ns.sendall({request:?}.encode())\n\
             s.settimeout(1)\nout = b''\ntry:\n    while True:\n        b = s.recv(4096)\n        if not b: break\n\
             \x20       out += b\nexcept socket.timeout:\n    pass\nprint(out.decode(errors='replace'), end='')\n"
        );
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "python3", "-c", &script])
            .output()
            .expect("ip netns exec");
        assert!(out.status.success(), "client in the namespace: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.host_if]).output();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// The namespace, or why there is none (then the test fails, unless told
/// to skip).
fn netns() -> Option<Netns> {
    match Netns::new() {
        Ok(ns) => Some(ns),
        Err(why) if std::env::var_os("KV_SKIP_NETNS").is_some() => {
            eprintln!("skipped (KV_SKIP_NETNS): no network namespace: {why}");
            None
        }
        Err(why) => panic!("a network namespace is needed (root and iproute2; KV_SKIP_NETNS=1 skips): {why}"),
    }
}

#[test]
fn protected_mode_refuses_a_client_from_another_host_and_says_how_to_fix_it() {
    let Some(ns) = netns() else { return };
    let (srv, _dir) = Server::start(&["--bind", "0.0.0.0"]);
    let port = srv.addr().port();
    // Refused as it connects; it sends nothing (a request still unread when
    // the server closes would make the close a reset, which may beat the
    // DENIED line to the client).
    let got = ns.talk(&ns.host_addr(), port, "");
    assert!(got.starts_with("-DENIED kvstore is running in protected mode"), "{got:?}");
    assert!(got.contains("--requirepass") && got.contains("--protected-mode no"), "says how to fix it: {got:?}");
    // Loopback clients are still served.
    assert_eq!(srv.client().cmd("PING"), "PONG");
    wait_for("the refusal in the log", || srv.log_text().contains("protected mode"));
}

#[test]
fn a_password_or_protected_mode_off_lets_the_other_host_in() {
    let Some(ns) = netns() else { return };
    let (srv, _dir) = Server::start(&["--bind", "0.0.0.0", "--requirepass", "s3cret"]);
    let got = ns.talk(&ns.host_addr(), srv.addr().port(), "PUT k v\n");
    assert_eq!(got, "ERROR NOAUTH Authentication required.\n", "a password protects it: the client must AUTH");
    let got = ns.talk(&ns.host_addr(), srv.addr().port(), "AUTH s3cret\nPUT k v\nGET k\n");
    assert_eq!(got, "OK\nOK\nv\n");
    let (open, _dir2) = Server::start(&["--bind", "0.0.0.0", "--protected-mode", "no"]);
    let got = ns.talk(&ns.host_addr(), open.addr().port(), "PUT k v\n");
    assert_eq!(got, "OK\n");
    assert_eq!(open.client().cmd("GET k"), "v");
}
