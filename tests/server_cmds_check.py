"""Drives a kvstore server's server and connection commands with redis-py,
unmodified, and checks what redis-py makes of the replies.

Usage: python3 tests/server_cmds_check.py PORT PROTOCOL   (PROTOCOL is 2 or 3)

Run by tests/server_cmds.rs. Prints one line per step, exits 0 when every
check holds and 1 (with the failed check and a traceback) otherwise. Only
talks to 127.0.0.1:PORT and flushes that server's data.
"""

import datetime
import sys
import traceback


class Mismatch(Exception):
    pass


def expect(what, ok, detail=""):
    if not ok:
        raise Mismatch(f"{what}: {detail}")
    print(f"ok   {what}")


def check(port, protocol):
    import redis

    print(f"redis-py {redis.__version__}, protocol={protocol}, port={port}")
    r = redis.Redis(host="127.0.0.1", port=port, protocol=protocol, socket_timeout=20, decode_responses=True)
    r.flushall()
    r.mset({"a": "1", "b": "2"})

    # INFO as redis-py parses it: numbers become numbers, db0 a dict. Its
    # own test suite reads cluster_enabled before anything else.
    info = r.info()
    expect("info cluster_enabled", info.get("cluster_enabled") == 0, repr(info.get("cluster_enabled")))
    expect("info used_memory", isinstance(info.get("used_memory"), int) and info["used_memory"] > 0, repr(info.get("used_memory")))
    expect("info used_memory_human", str(info.get("used_memory_human", "")).endswith(("K", "M", "G")), repr(info.get("used_memory_human")))
    expect("info connected_clients", info.get("connected_clients", 0) >= 1, repr(info.get("connected_clients")))
    expect("info db0 keys", info.get("db0", {}).get("keys") == 2, repr(info.get("db0")))
    expect("info role", info.get("role") == "master", repr(info.get("role")))
    expect("info used_cpu_user is a float", isinstance(info.get("used_cpu_user"), float), repr(info.get("used_cpu_user")))
    mem = r.info("memory")
    expect("info memory only", "used_memory_rss" in mem and "redis_version" not in mem, repr(sorted(mem)[:5]))
    both = r.info("server", "clients")
    expect("info two sections", "redis_version" in both and "connected_clients" in both and "used_memory" not in both, "")
    expect("info everything", "cluster_enabled" in r.info("everything"), "")

    # CLIENT: ids, names, lists, kill.
    other = redis.Redis(host="127.0.0.1", port=port, protocol=protocol, socket_timeout=20, decode_responses=True)
    other.client_setname("other-conn")
    other_id = other.client_id()
    my_id = r.client_id()
    expect("client ids differ", my_id != other_id and my_id > 0, f"{my_id} {other_id}")
    clients = r.client_list()
    names = {int(c["id"]): c.get("name") for c in clients}
    expect("client list has both", names.get(other_id) == "other-conn" and my_id in names, repr(names))
    mine = r.client_info()
    expect("client info is mine", int(mine["id"]) == my_id and mine["cmd"] == "client|info", repr(mine))
    expect("client list by type", len(r.client_list(_type="normal")) >= 2, "")
    expect("client list by id", [int(c["id"]) for c in r.client_list(client_id=[other_id])] == [other_id], "")
    expect("client setinfo", r.client_setinfo("lib-name", "redis-py-check") is True, "")
    expect("client no-evict", r.client_no_evict("on") == "OK", "")
    expect("client kill filter", r.client_kill_filter(_id=other_id) == 1, "")
    # redis-py reconnects on its own: a new id shows the old connection went.
    expect("killed connection is closed", other.client_id() != other_id, "")

    # CONFIG.
    r.config_set("maxclients", 10000)
    got = r.config_get("maxclients")
    expect("config get", got == {"maxclients": "10000"}, repr(got))
    expect("config set", r.config_set("maxclients", 500) is True, "")
    expect("config get after set", r.config_get("maxclients") == {"maxclients": "500"}, "")
    many = r.config_get("max*")
    expect("config get glob", "maxmemory" in many and "maxclients" in many, repr(many))
    try:
        r.config_set("nosuch", "1")
        raise Mismatch("config set of an unknown parameter succeeded")
    except redis.ResponseError as e:
        expect("config set unknown", "Unknown option" in str(e), str(e))
    expect("config resetstat", r.config_resetstat() is True, "")
    expect("stats reset", r.info("stats")["total_commands_processed"] <= 2, repr(r.info("stats")["total_commands_processed"]))

    # Server.
    secs, usecs = r.time()
    expect("time", secs > 1_600_000_000 and 0 <= usecs < 1_000_000, f"{secs} {usecs}")
    expect("lastsave", isinstance(r.lastsave(), datetime.datetime), repr(r.lastsave()))
    role = r.role()
    expect("role", role[0] == "master", repr(role))
    expect("wait", r.wait(0, 0) == 0, "")
    expect("command count", r.command_count() > 20, "")
    cmds = r.command()
    expect("command", "get" in cmds and cmds["client"]["arity"] == -2, repr(cmds.get("client")))
    expect("command list", "client|kill" in r.command_list(), "")
    expect("command getkeys", r.command_getkeys("MSET", "x", "1", "y", "2") == ["x", "y"], "")
    expect("function flush", r.function_flush() is True, "")
    expect("function list", r.function_list() == [], "")
    got = r.bgsave()
    # redis-py maps the status to True over RESP2 only.
    expect("bgsave", got in (True, "Background saving started"), repr(got))

    print("all server command checks passed")


if __name__ == "__main__":
    try:
        check(int(sys.argv[1]), int(sys.argv[2]))
    except Exception:
        traceback.print_exc()
        sys.exit(1)
