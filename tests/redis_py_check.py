"""Drives a kvstore server with redis-py, unmodified, and checks every reply.

Usage: python3 tests/redis_py_check.py PORT PROTOCOL   (PROTOCOL is 2 or 3)

Run by tests/resp_clients.rs. Prints one line per step, exits 0 when every
check holds and 1 (with the failed check and a traceback) otherwise. Only
talks to 127.0.0.1:PORT and flushes that server's data.
"""

import sys
import traceback


class Mismatch(Exception):
    pass


def expect(what, got, want):
    if got != want:
        raise Mismatch(f"{what}: got {got!r}, want {want!r}")
    print(f"ok   {what}")


def check(port, protocol):
    import redis

    print(f"redis-py {redis.__version__}, protocol={protocol}, port={port}")
    r = redis.Redis(
        host="127.0.0.1",
        port=port,
        protocol=protocol,
        socket_timeout=20,
        socket_connect_timeout=20,
    )

    # The handshake: with protocol=3 redis-py sends HELLO 3 and checks the
    # proto field of the map it gets back; with 2 it sends no HELLO at all.
    conn = r.connection_pool.get_connection()
    try:
        meta = conn.handshake_metadata
        if protocol == 3:
            if not isinstance(meta, dict):
                raise Mismatch(f"HELLO 3 reply is not a map: {meta!r}")
            expect("HELLO proto", meta.get(b"proto"), 3)
            expect("HELLO server", meta.get(b"server"), b"redis")
    finally:
        r.connection_pool.release(conn)

    expect("ping", r.ping(), True)
    expect("echo", r.echo(b"hello world"), b"hello world")
    expect("flushall", r.flushall(), True)
    expect("dbsize after flushall", r.dbsize(), 0)

    expect("set", r.set("k", "v"), True)
    expect("get", r.get("k"), b"v")
    expect("get missing (null)", r.get("missing"), None)
    expect("set nx on existing key", r.set("k", "w", nx=True), None)
    expect("set xx on existing key", r.set("k", "w", xx=True), True)
    expect("set get returns the old value", r.set("k", "x", get=True), b"w")
    expect("get after set get", r.get("k"), b"x")

    expect("mset", r.mset({"a": "1", "b": "2", "c": "3"}), True)
    expect("mget with a missing key", r.mget(["a", "missing", "c"]), [b"1", None, b"3"])
    expect("exists counts duplicates", r.exists("a", "a", "missing", "b"), 3)
    expect("dbsize", r.dbsize(), 4)
    expect("delete counts deleted keys", r.delete("a", "b", "missing"), 2)
    expect("exists after delete", r.exists("a", "b", "c"), 1)
    expect("dbsize after delete", r.dbsize(), 2)

    # Values Redis clients must carry byte for byte.
    binary = {
        "crlf": b"line1\r\nline2\r\n",
        "nul": b"a\x00b\x00",
        "all bytes": bytes(range(256)),
        "empty": b"",
        "fake reply": b"$-1\r\n*2\r\n-ERR x\r\n",
        "64 KiB": bytes((i * 7 + 3) % 256 for i in range(65536)),
    }
    for name, value in binary.items():
        key = b"bin:\r\n\x00" + name.encode()
        expect(f"set binary {name}", r.set(key, value), True)
        expect(f"get binary {name}", r.get(key), value)

    # A plain pipeline (no MULTI/EXEC around it).
    pipe = r.pipeline(transaction=False)
    for i in range(500):
        pipe.set(f"p{i}", i)
        pipe.get(f"p{i}")
    replies = pipe.execute()
    expect("pipeline reply count", len(replies), 1000)
    want = []
    for i in range(500):
        want += [True, str(i).encode()]
    expect("pipeline replies in order", replies, want)

    # redis-py's default pipeline is a MULTI/EXEC transaction.
    tx = r.pipeline()
    tx.set("tx:a", "1")
    tx.get("tx:a")
    tx.mset({"tx:b": "2", "tx:c": "3"})
    tx.mget("tx:a", "tx:b", "tx:c")
    tx.delete("tx:a")
    expect("transaction replies", tx.execute(), [True, b"1", True, [b"1", b"2", b"3"], 1])
    # A command refused while queueing aborts the whole transaction.
    tx = r.pipeline()
    tx.set("tx:never", "1")
    tx.execute_command("NOSUCHCOMMAND")
    try:
        tx.execute()
        outcome = "executed"
    except redis.ResponseError:
        outcome = "refused"
    expect("transaction with an unknown command", outcome, "refused")
    expect("aborted transaction applied nothing", r.get("tx:never"), None)

    info = r.info()
    expect("info redis_version present", "redis_version" in info, True)
    expect("info server section", r.info("server").get("redis_mode"), "standalone")
    keys = r.dbsize()
    expect("info keyspace db0 keys", r.info("keyspace").get("db0", {}).get("keys"), keys)

    expect("client_getname before setname", r.client_getname(), None)
    expect("client_setname", r.client_setname("py-check"), True)
    # redis-py decodes this name to str under RESP2 but not under RESP3.
    name = r.client_getname()
    expect("client_getname", name.decode() if isinstance(name, bytes) else name, "py-check")
    client_id = r.client_id()
    expect("client_id is a positive int", isinstance(client_id, int) and client_id > 0, True)

    try:
        r.execute_command("NOSUCHCOMMAND", "x")
        raise Mismatch("an unknown command did not raise")
    except redis.ResponseError as e:
        expect("unknown command error", str(e).startswith("unknown command"), True)
    try:
        r.execute_command("GET")
        raise Mismatch("GET without a key did not raise")
    except redis.ResponseError as e:
        expect("wrong arity error", str(e), "wrong number of arguments for 'get' command")

    expect("flushall at the end", r.flushall(), True)
    expect("dbsize at the end", r.dbsize(), 0)
    r.close()
    print(f"all redis-py checks passed (protocol={protocol})")


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in ("2", "3"):
        print("usage: redis_py_check.py PORT 2|3", file=sys.stderr)
        return 2
    try:
        check(int(sys.argv[1]), int(sys.argv[2]))
    except Exception as e:  # report any failure, mismatch or client error alike
        print(f"FAILED: {type(e).__name__}: {e}")
        traceback.print_exc(file=sys.stdout)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
