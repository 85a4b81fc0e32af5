#!/usr/bin/env python3
"""Replication measurements on local nodes (release build; loopback only).

  scripts/cluster_bench.py catchup [server args]
      3 nodes; kill -9 node 3; 100,000 writes to node 1 with kvstore-bench;
      restart node 3 and time until its STATS keys equals node 1's; prints
      the peers' "caught up" log lines.
  ROUNDS=3 scripts/cluster_bench.py throughput [server args, e.g. --fsync no]
      kvstore-bench (--ratio 1:0 --pipeline 16 --clients 50 --requests 2000000)
      and redis-benchmark (-t set -P 16 -c 50 -n 2000000) against node 1 of a
      3-node cluster and against a lone node, alternating; also the server
      CPU time per write (less sensitive to other load on the machine).

Binaries come from $KV_RELEASE_DIR (default $CARGO_TARGET_DIR/release, or
target/release); data goes to a fresh temp dir.
"""
import os, shutil, socket, subprocess, sys, tempfile, time

REL = os.environ.get("KV_RELEASE_DIR") or os.path.join(
    os.environ.get("CARGO_TARGET_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target"),
    "release")
SRV, BENCH = f"{REL}/kvstore-server", f"{REL}/kvstore-bench"
ROOT = os.path.join(tempfile.gettempdir(), f"kvstore-cluster-bench-{os.getpid()}")


def free_base(n=3):
    while True:
        s = socket.socket(); s.bind(("127.0.0.1", 0)); base = s.getsockname()[1]; s.close()
        if base + n > 65535:
            continue
        ok = []
        try:
            for i in range(n):
                t = socket.socket(); t.bind(("127.0.0.1", base + i)); ok.append(t)
            return base
        except OSError:
            pass
        finally:
            for t in ok:
                t.close()


def ask(port, cmd):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(cmd.encode() + b"\n")
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            if cmd != "STATS" or buf.endswith(b"END\r\n") or buf.endswith(b"END\n"):
                break
        return buf.decode()


def stat(port, name):
    for line in ask(port, "STATS").splitlines():
        p = line.split(" ", 2)
        if len(p) == 3 and p[1] == name:
            return p[2].strip()
    return None


def start(port, peers, tag, extra):
    d = f"{ROOT}/{tag}"
    os.makedirs(d, exist_ok=True)
    args = [SRV, str(port)]
    if peers:
        args.append(",".join(f"127.0.0.1:{p}" for p in peers))
    args += ["--dir", f"{d}/data"] + extra
    log = open(f"{d}/server.log", "a")
    p = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    end = time.time() + 20
    while time.time() < end:
        try:
            if ask(port, "PING").strip() == "PONG":
                return p
        except OSError:
            time.sleep(0.01)
    raise SystemExit(f"node {port} did not start")


def wait(cond, what, limit=300):
    end = time.time() + limit
    while not cond():
        if time.time() > end:
            raise SystemExit(f"timeout: {what}")
        time.sleep(0.005)


def links_up(port, peers):
    s = ask(port, "STATS")
    return all(f"peer.127.0.0.1:{q}.state connected" in s for q in peers)


def cpu(p):
    f = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def stop(p):
    p.kill(); p.wait()


def catchup(extra):
    shutil.rmtree(ROOT, ignore_errors=True)
    base = free_base()
    ports = [base, base + 1, base + 2]
    peers = lambda i: [q for q in ports if q != ports[i]]
    procs = [start(ports[i], peers(i), f"n{i}", extra) for i in range(3)]
    for i in range(3):
        wait(lambda: links_up(ports[i], peers(i)), "links up")
    stop(procs[2])
    cmd = [BENCH, "--addr", f"127.0.0.1:{ports[0]}", "--ratio", "1:0", "--requests", "100000",
           "--keyspace", "100000000", "--pipeline", "16", "--quiet"]
    print("$", " ".join(cmd))
    out = subprocess.run(cmd, capture_output=True, text=True)
    print(out.stdout.strip())
    target = int(stat(ports[0], "keys"))
    wait(lambda: int(stat(ports[1], "keys")) == target, "node 2 has all")
    t0 = time.time()
    procs[2] = start(ports[2], peers(2), "n2", extra)
    t_listen = time.time() - t0
    wait(lambda: int(stat(ports[2], "keys")) == target, "node 3 caught up")
    t_keys = time.time() - t0
    wait(lambda: links_up(ports[0], peers(0)), "node 1 link live")
    print(f"catch-up: {target} keys; node 3 listening after {t_listen:.3f}s, "
          f"STATS keys == {target} after {t_keys:.3f}s (from spawn)")
    for i in range(2):
        for line in open(f"{ROOT}/n{i}/server.log"):
            if "caught up" in line and str(ports[2]) in line:
                last = line.strip()
        print(f"node {i+1} log: {last}")
    for line in open(f"{ROOT}/n2/server.log"):
        if "replayed" in line:
            rep = line.strip()
    print(f"node 3 log: {rep}")
    for p in procs:
        stop(p)


def throughput(extra, rounds):
    results = {}
    for r in range(rounds):
        for mode in ("cluster", "single"):
            shutil.rmtree(ROOT, ignore_errors=True)
            base = free_base()
            if mode == "cluster":
                ports = [base, base + 1, base + 2]
                peers = lambda i: [q for q in ports if q != ports[i]]
                procs = [start(ports[i], peers(i), f"n{i}", extra) for i in range(3)]
                for i in range(3):
                    wait(lambda: links_up(ports[i], peers(i)), "links up")
            else:
                ports = [base]
                procs = [start(base, [], "solo", extra)]
            cmd = [BENCH, "--addr", f"127.0.0.1:{ports[0]}", "--ratio", "1:0", "--pipeline", "16",
                   "--clients", "50", "--requests", "2000000", "--quiet"]
            if r == 0:
                print("$", " ".join(cmd))
            c0 = [cpu(p) for p in procs]
            out = subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
            c1 = [cpu(p) for p in procs]
            tput = [l for l in out.splitlines() if l.startswith("throughput")][0]
            results.setdefault((mode, "kvstore-bench"), []).append(
                tput + "; CPU us/write: node1 %.2f, others %s" % ((c1[0]-c0[0])/2e6*1e6,
                ["%.2f" % ((b-a)/2e6*1e6) for a, b in zip(c0[1:], c1[1:])]))
            if mode == "cluster":
                n = int(stat(ports[0], "keys"))
                t0 = time.time()
                wait(lambda: all(int(stat(p, "keys")) == n for p in ports), "replicas equal")
                results.setdefault((mode, "replicas-equal-after"), []).append(f"{time.time()-t0:.3f}s ({n} keys)")
            cmd = ["redis-benchmark", "-p", str(ports[0]), "-t", "set", "-P", "16", "-c", "50", "-n", "2000000", "-q"]
            if r == 0:
                print("$", " ".join(cmd))
            c0 = [cpu(p) for p in procs]
            out = subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()
            c1 = [cpu(p) for p in procs]
            results.setdefault((mode, "redis-benchmark"), []).append((out[-1].split("\r")[-1] if out else "?")
                + "; CPU us/write: node1 %.2f" % ((c1[0]-c0[0])/2e6*1e6))
            for p in procs:
                stop(p)
    for k, v in results.items():
        print(k)
        for x in v:
            print("   ", x.replace("\n", "\n    "))


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("catchup", "throughput"):
        raise SystemExit(__doc__)
    for b in (SRV, BENCH):
        if not os.access(b, os.X_OK):
            raise SystemExit(f"{b} missing: cargo build --release (or set KV_RELEASE_DIR)")
    try:
        if sys.argv[1] == "catchup":
            catchup(sys.argv[2:])
        else:
            throughput(sys.argv[2:], int(os.environ.get("ROUNDS", "2")))
    finally:
        shutil.rmtree(ROOT, ignore_errors=True)
