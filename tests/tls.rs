//! TLS through the real binary and real clients: certificates made here
//! with rcgen (a CA, a server certificate for 127.0.0.1, a client
//! certificate, and a rogue CA's), a rustls client for the text protocol
//! and RESP, redis-cli `--tls`, redis-py `ssl=True`, `openssl s_client`;
//! client certificate policies, a stalled handshake closed after its
//! timeout, and a TLS cluster replicating.
//!
//! Every condition is polled until the harness deadline; nothing sleeps a
//! fixed time.

mod common;
use common::*;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

// ---------------------------------------------------------------- certificates

/// PEM files made for one test: `ca.crt`, `server.crt`/`.key` (for
/// 127.0.0.1 and localhost), `client.crt`/`.key`, and a rogue CA's
/// `rogue-server.crt`/`.key` and `rogue-client.crt`/`.key`.
struct Certs {
    dir: TempDir,
}

impl Certs {
    #[track_caller]
    fn new() -> Certs {
        let dir = TempDir::new("certs");
        let ca = make_ca(dir.path(), "ca", "kvstore test CA");
        let rogue = make_ca(dir.path(), "rogue-ca", "someone else's CA");
        let sans = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        make_leaf(dir.path(), "server", sans.clone(), &ca);
        make_leaf(dir.path(), "client", vec![], &ca);
        make_leaf(dir.path(), "rogue-server", sans, &rogue);
        make_leaf(dir.path(), "rogue-client", vec![], &rogue);
        Certs { dir }
    }

    /// The path of file `name` (e.g. "ca.crt").
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// The server options for certificate pair `cert` ("server" or
    /// "rogue-server"), the CA, and `extra`.
    fn server_args(&self, cert: &str, extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "--tls-cert-file".into(),
            self.path(&format!("{cert}.crt")),
            "--tls-key-file".into(),
            self.path(&format!("{cert}.key")),
            "--tls-ca-cert-file".into(),
            self.path("ca.crt"),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }
}

/// A self-signed CA, written as `<name>.crt`; returns its issuer.
#[track_caller]
fn make_ca(dir: &Path, name: &str, cn: &str) -> Issuer<'static, KeyPair> {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, cn);
    let cert = params.self_signed(&key).expect("self-sign CA");
    std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).expect("write CA");
    Issuer::new(params, key)
}

/// A certificate for `sans` signed by `issuer`, written as `<name>.crt`
/// and `<name>.key`.
#[track_caller]
fn make_leaf(dir: &Path, name: &str, sans: Vec<String>, issuer: &Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(sans).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.signed_by(&key, issuer).expect("sign");
    std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).expect("write cert");
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).expect("write key");
}

// ---------------------------------------------------------------- servers and clients

/// Starts a server on port 0 with `args` and returns it with its
/// `--tls-port` port, read from its "TLS listening on" line.
#[track_caller]
fn start_tls(args: &[String]) -> (Server, u16, TempDir) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (srv, dir) = Server::start(&args);
    let mut port = None;
    wait_for("the \"TLS listening on\" line", || {
        port = tls_listening_port(&srv.log_text());
        port.is_some()
    });
    (srv, port.expect("port"), dir)
}

/// The port in `… TLS listening on <ip:port> …`.
fn tls_listening_port(log: &str) -> Option<u16> {
    let complete = &log[..log.rfind('\n')? + 1];
    complete.lines().find_map(|l| {
        let rest = l.split_once("TLS listening on ")?.1;
        rest.split(' ').next()?.parse::<std::net::SocketAddr>().ok().map(|a| a.port())
    })
}

/// A blocking rustls client, as a TLS-speaking netcat would be.
struct TlsClient {
    reader: BufReader<StreamOwned<ClientConnection, TcpStream>>,
}

impl TlsClient {
    /// Connects to `port` trusting `ca` ("ca.crt"), presenting client
    /// certificate pair `cert` ("client", "rogue-client") if given. A TLS
    /// 1.3 server checks the client certificate after the client thinks
    /// the handshake is done, so a refusal shows at the first read.
    fn connect(certs: &Certs, port: u16, cert: Option<&str>) -> io::Result<TlsClient> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(certs.path("ca.crt")).expect("ca.crt") {
            roots.add(c.expect("CA cert")).expect("add root");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots);
        let config = match cert {
            Some(name) => {
                let chain: Vec<_> = CertificateDer::pem_file_iter(certs.path(&format!("{name}.crt")))
                    .expect("cert")
                    .map(|c| c.expect("cert"))
                    .collect();
                let key = PrivateKeyDer::from_pem_file(certs.path(&format!("{name}.key"))).expect("key");
                builder.with_client_auth_cert(chain, key).expect("client cert")
            }
            None => builder.with_no_client_auth(),
        };
        let name = ServerName::try_from("127.0.0.1").expect("name");
        let conn = ClientConnection::new(Arc::new(config), name).map_err(io::Error::other)?;
        let sock = TcpStream::connect(("127.0.0.1", port))?;
        sock.set_read_timeout(Some(DEADLINE))?;
        let mut stream = StreamOwned::new(conn, sock);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(TlsClient { reader: BufReader::new(stream) })
    }

    /// Sends `bytes`, then reads one line (without its `\n`).
    fn request(&mut self, bytes: &[u8]) -> io::Result<String> {
        self.reader.get_mut().write_all(bytes)?;
        self.reader.get_mut().flush()?;
        let mut s = String::new();
        if self.reader.read_line(&mut s)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(s.trim_end_matches('\n').to_string())
    }

    /// One text-protocol command and its one-line reply.
    #[track_caller]
    fn cmd(&mut self, line: &str) -> String {
        self.request(format!("{line}\n").as_bytes()).expect("reply over TLS")
    }
}

/// Runs `program args` with `stdin`, bounded by the harness deadline
/// (coreutils `timeout` kills it past that), and returns what it did.
#[track_caller]
fn tool(program: &str, args: &[&str], stdin: &[u8]) -> Output {
    let secs = DEADLINE.as_secs().to_string();
    let mut child = Command::new("timeout")
        .args([&secs, program])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    child.stdin.take().expect("stdin").write_all(stdin).expect("write stdin");
    child.wait_with_output().expect("wait")
}

#[track_caller]
fn text(out: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// redis-cli over TLS to `port` with the test CA and client certificate.
#[track_caller]
fn redis_cli(certs: &Certs, port: u16, args: &[&str]) -> Output {
    let (p, ca, crt, key) =
        (port.to_string(), certs.path("ca.crt"), certs.path("client.crt"), certs.path("client.key"));
    let mut all = vec!["-p", &p, "--tls", "--cacert", &ca, "--cert", &crt, "--key", &key];
    all.extend_from_slice(args);
    tool("redis-cli", &all, b"")
}

// ---------------------------------------------------------------- clients

#[test]
fn text_protocol_and_resp_over_tls_beside_the_plain_port() {
    let certs = Certs::new();
    let (srv, port, _dir) = start_tls(&certs.server_args("server", &["--tls-port", "0"]));
    let mut c = TlsClient::connect(&certs, port, Some("client")).expect("TLS connect");
    assert_eq!(c.cmd("PUT k hello over tls"), "OK");
    assert_eq!(c.cmd("GET k"), "hello over tls");
    assert_eq!(c.request(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n").unwrap(), "$14\r");
    assert_eq!(c.request(b"").unwrap(), "hello over tls\r");
    // One keyspace, two ports.
    let mut plain = srv.client();
    assert_eq!(plain.cmd("GET k"), "hello over tls");
    assert_eq!(plain.cmd("PUT k2 plain"), "OK");
    assert_eq!(c.cmd("GET k2"), "plain");
    // A pipeline of 2000 requests in one write, and a 900 KiB value: both
    // directions cross many TLS records and rustls's buffers.
    let big = "v".repeat(900 << 10);
    let mut batch = format!("PUT big {big}\n");
    for i in 0..2000 {
        batch.push_str(&format!("PUT p{i} {i}\nGET p{i}\n"));
    }
    batch.push_str("GET big\n");
    assert_eq!(c.request(batch.as_bytes()).unwrap(), "OK");
    for i in 0..2000 {
        assert_eq!(c.request(b"").unwrap(), "OK");
        assert_eq!(c.request(b"").unwrap(), i.to_string());
    }
    assert!(c.request(b"").unwrap() == big, "the 900 KiB value came back changed");
    // QUIT (no reply in the text protocol): close_notify, a clean TLS end
    // (rustls reports a bare TCP close as UnexpectedEof).
    c.reader.get_mut().write_all(b"QUIT\n").expect("send QUIT");
    let mut rest = Vec::new();
    assert_eq!(c.reader.read_to_end(&mut rest).expect("a clean close_notify"), 0);
}

#[test]
fn redis_cli_tls() {
    let certs = Certs::new();
    let (_srv, port, _dir) = start_tls(&certs.server_args("server", &["--tls-port", "0"]));
    let out = redis_cli(&certs, port, &["SET", "k", "v"]);
    assert!(out.status.success() && out.stdout == b"OK\n", "{}", text(&out));
    let out = redis_cli(&certs, port, &["GET", "k"]);
    assert!(out.stdout == b"v\n", "{}", text(&out));
    let out = redis_cli(&certs, port, &["-3", "HELLO", "3"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("proto"), "{}", text(&out));
}

#[test]
fn redis_py_ssl() {
    let certs = Certs::new();
    let (_srv, port, _dir) = start_tls(&certs.server_args("server", &["--tls-port", "0"]));
    let script = r#"
import sys, redis
port, ca, crt, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
r = redis.Redis(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=ca, ssl_certfile=crt, ssl_keyfile=key)
assert r.ping()
assert r.set("k", "v") and r.get("k") == b"v"
p = r.pipeline(transaction=False)
for i in range(5000):
    p.set(f"p{i}", i)
    p.get(f"p{i}")
res = p.execute()
assert res[1::2] == [str(i).encode() for i in range(5000)], "pipeline replies out of order"
big = b"x" * (3 << 20)
assert r.set("big", big) and r.get("big") == big
print("ok")
"#;
    let (p, ca, crt, key) =
        (port.to_string(), certs.path("ca.crt"), certs.path("client.crt"), certs.path("client.key"));
    let out = tool("python3", &["-c", script, &p, &ca, &crt, &key], b"");
    assert!(out.status.success() && out.stdout == b"ok\n", "{}", text(&out));
}

#[test]
fn openssl_s_client_text_protocol() {
    let certs = Certs::new();
    let (_srv, port, _dir) = start_tls(&certs.server_args("server", &["--tls-port", "0"]));
    let connect = format!("127.0.0.1:{port}");
    let (ca, crt, key) = (certs.path("ca.crt"), certs.path("client.crt"), certs.path("client.key"));
    // -quiet ignores the end of stdin: QUIT makes the server close.
    let args = [
        "s_client",
        "-quiet",
        "-verify_return_error",
        "-connect",
        &connect,
        "-CAfile",
        &ca,
        "-cert",
        &crt,
        "-key",
        &key,
    ];
    let out = tool("openssl", &args, b"PUT k v\nGET k\nPING\nQUIT\n");
    assert!(out.stdout == b"OK\nv\nPONG\n", "{}", text(&out));
}

// ---------------------------------------------------------------- client certificates

/// Whether a client with certificate pair `cert` gets a reply.
fn served(certs: &Certs, port: u16, cert: Option<&str>) -> bool {
    TlsClient::connect(certs, port, cert).and_then(|mut c| c.request(b"PING\n")).is_ok_and(|r| r == "PONG")
}

#[test]
fn tls_auth_clients_yes_no_optional() {
    let certs = Certs::new();
    // yes (the default): a certificate from the CA is needed.
    let (_a, port, _d) = start_tls(&certs.server_args("server", &["--tls-port", "0"]));
    assert!(served(&certs, port, Some("client")));
    assert!(!served(&certs, port, None), "a client without a certificate was served");
    assert!(!served(&certs, port, Some("rogue-client")), "a certificate from another CA was accepted");
    let ca = certs.path("ca.crt");
    let out = tool("redis-cli", &["-p", &port.to_string(), "--tls", "--cacert", &ca, "PING"], b"");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("PONG"), "{}", text(&out));
    // optional: none is fine, a bad one is not.
    let (_b, port, _d) =
        start_tls(&certs.server_args("server", &["--tls-port", "0", "--tls-auth-clients", "optional"]));
    assert!(served(&certs, port, None));
    assert!(served(&certs, port, Some("client")));
    assert!(!served(&certs, port, Some("rogue-client")));
    // no: not asked for.
    let (_c, port, _d) = start_tls(&certs.server_args("server", &["--tls-port", "0", "--tls-auth-clients", "no"]));
    assert!(served(&certs, port, None));
    let out = tool("redis-cli", &["-p", &port.to_string(), "--tls", "--cacert", &ca, "PING"], b"");
    assert!(out.stdout == b"PONG\n", "{}", text(&out));
}

// ---------------------------------------------------------------- robustness

/// Whether the server closed `s` (EOF or reset) before the harness deadline.
fn closed(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {} // a ServerHello, an alert: read on
            Err(e) => return e.kind() == io::ErrorKind::ConnectionReset,
        }
    }
}

#[test]
fn a_stalled_handshake_is_closed_after_the_timeout_and_blocks_no_one() {
    let certs = Certs::new();
    let args = certs.server_args("server", &["--tls-port", "0", "--tls-handshake-timeout-ms", "300"]);
    let (srv, port, _dir) = start_tls(&args);
    // Connected first, kept idle past a handshake timeout below.
    let mut idle = TlsClient::connect(&certs, port, Some("client")).expect("connect");
    // Two stallers: one sends nothing, one half a ClientHello.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut half = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]).expect("write");
    // Meanwhile others are served, over TLS and plain.
    assert!(served(&certs, port, Some("client")));
    assert_eq!(srv.client().cmd("PING"), "PONG");
    assert!(closed(&mut silent), "a client that sent nothing was not closed");
    assert!(closed(&mut half), "a client that stalled mid-handshake was not closed");
    // The timeout is for handshakes only: the idle client is still served.
    assert_eq!(idle.cmd("PING"), "PONG");
}

#[test]
fn wrong_protocol_on_either_port_closes_that_connection_only() {
    let certs = Certs::new();
    let (srv, port, _dir) = start_tls(&certs.server_args("server", &["--tls-port", "0"]));
    // Plain text on the TLS port: not a TLS record; closed.
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all(b"PING\r\nGET k\n").expect("write");
    assert!(closed(&mut s));
    // TLS on the plain port: the handshake fails, the server lives on.
    assert!(TlsClient::connect(&certs, srv.port, Some("client")).is_err());
    assert!(served(&certs, port, Some("client")));
    assert_eq!(srv.client().cmd("PING"), "PONG");
}

// ---------------------------------------------------------------- replication

#[test]
fn a_tls_cluster_replicates() {
    let certs = Certs::new();
    let dirs: Vec<TempDir> = (0..3).map(|_| TempDir::new("tls-node")).collect();
    let args = certs.server_args("server", &["--tls-only", "--tls-replication", "yes", "--fsync", "no"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // The ports are chosen ahead (each node names the others): start over
    // on fresh ones if one was taken meanwhile.
    let nodes = 'plan: loop {
        let ports = ports_ahead(3);
        let mut nodes = Vec::new();
        for (i, dir) in dirs.iter().enumerate() {
            let peers: Vec<u16> = ports.iter().copied().filter(|&p| p != ports[i]).collect();
            match Server::try_start_with(dir.path(), &args, &peers, Some(ports[i])) {
                Ok(s) => nodes.push(s),
                Err(msg) if port_in_use(&msg) => continue 'plan,
                Err(msg) => panic!("node {i} did not start: {msg}"),
            }
        }
        break nodes;
    };
    let mut c0 = TlsClient::connect(&certs, nodes[0].port, Some("client")).expect("connect node 0");
    assert_eq!(c0.cmd("PUT replicated over-tls"), "OK");
    for n in &nodes[1..] {
        let mut c = TlsClient::connect(&certs, n.port, Some("client")).expect("connect");
        wait_for(&format!("the write on node {}", n.port), || c.cmd("GET replicated") == "over-tls");
    }
    // And back from another node.
    let mut c2 = TlsClient::connect(&certs, nodes[2].port, Some("client")).expect("connect node 2");
    assert_eq!(c2.cmd("DEL replicated"), "OK");
    wait_for("the delete on node 0", || c0.cmd("GET replicated") == "NOT_FOUND");
}

#[test]
fn tls_replication_refuses_a_peer_whose_certificate_the_ca_did_not_sign() {
    let certs = Certs::new();
    let rogue = certs.server_args("rogue-server", &["--tls-only", "--tls-auth-clients", "no"]);
    let rogue: Vec<&str> = rogue.iter().map(String::as_str).collect();
    let (b, _bdir) = Server::start(&rogue);
    let args = certs.server_args("server", &["--tls-only", "--tls-replication", "yes"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let adir = TempDir::new("tls-a");
    let a = Server::start_with(adir.path(), &args, &[b.port], None);
    wait_for("node A to refuse B's certificate", || a.log_text().contains("invalid peer certificate"));
}

// ---------------------------------------------------------------- options

#[test]
fn tls_options_are_checked_and_documented() {
    let certs = Certs::new();
    let fails = |args: &[&str], says: &str| {
        let out = run_binary(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success() && err.contains(says), "{args:?} should fail saying {says:?}: {err}");
    };
    fails(&["0", "--tls-port", "0"], "--tls-cert-file");
    let (crt, key) = (certs.path("server.crt"), certs.path("server.key"));
    fails(&["0", "--tls-port", "0", "--tls-cert-file", &crt, "--tls-key-file", &key], "--tls-ca-cert-file");
    fails(&["0", "--tls-cert-file", &crt], "TLS is off");
    fails(&["0", "--tls-only", "--tls-port", "0"], "--tls-only");
    fails(&["0", "--tls-auth-clients", "maybe"], "maybe");
    let missing = PathBuf::from(certs.path("nope.crt")).display().to_string();
    let no = ["0", "--tls-port", "0", "--tls-auth-clients", "no", "--tls-key-file", &key, "--tls-cert-file"];
    fails(&[&no[..], &[missing.as_str()]].concat(), "nope.crt");
    // A key file given as the certificate: no CERTIFICATE in it.
    fails(&[&no[..], &[key.as_str()]].concat(), "--tls-cert-file");
    let help = String::from_utf8_lossy(&run_binary(&["--help"]).stdout).into_owned();
    for opt in [
        "--tls-port",
        "--tls-only",
        "--tls-cert-file",
        "--tls-key-file",
        "--tls-ca-cert-file",
        "--tls-auth-clients",
        "--tls-replication",
        "--tls-handshake-timeout-ms",
    ] {
        assert!(help.contains(opt), "--help does not document {opt}");
    }
}
