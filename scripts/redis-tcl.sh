#!/usr/bin/env bash
# redis-tcl.sh: runs Redis's own Tcl unit tests against a kvstore server,
# the reference for how users judge compatibility.
#
#   scripts/redis-tcl.sh [UNIT ...]     (default: the units CI runs, default_units below)
#
# Gets Debian's redis source package (apt-get source, cached under
# target/redis-tcl; adds a deb-src entry for Debian's main archive if there is
# none, and installs tcl if it is missing), starts a kvstore on a free
# loopback port, and runs each unit with Redis's harness against it as an
# external server (--host/--port --singledb: kvstore has one database).
# The tests listed in skip_list below are skipped, each group with its
# reason: they need what kvstore does not have (lists, sets, OBJECT, Lua,
# Redis's own configuration...). Everything else must pass. The names are
# those of Redis 7.0 (Debian 12's redis); another version may name more. Prints per unit
# the tests passed, failed and skipped, and the exception that stopped it, if
# one did. Exits 1 if any test failed or any unit did not run to its end.
# Stops only the server it started.
#
# Knobs: SERVER=path runs that kvstore-server binary (default: a release
# build); ALL=1 skips nothing (to see what the skip list hides); WORK=dir
# keeps the run's outputs there (default: a temp dir, removed).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
default_units="type/string type/incr expire keyspace protocol info-command introspection introspection-2 scan quit"
units=("$@")
[ ${#units[@]} -gt 0 ] || read -ra units <<<"$default_units"

# One test name (or, after '/', a Tcl regexp) a line; '#' lines give the
# reason for the names under them.
skip_list() {
  cat <<'EOF'
# Other data types (lists, sets, sorted sets, hashes, streams, geo): kvstore
# answers their commands with Redis's own "unknown command".
MGET against non-string key
SETBIT against key with wrong type
SETRANGE against key with wrong type
Extended SET GET with incorrect type should result in wrong type error
INCR fails against a key holding a list
INCRBYFLOAT fails against a key holding a list
EXPIRE - write on expire should work
/^COPY basic usage for (list|intset set|hashtable set|listpack sorted set|skiplist sorted set|listpack hash|hashtable hash|stream|stream-cgroups)$
raw protocol response
raw protocol response - deferred
raw protocol response - multiline
Regression for a crash with blocking ops and pipelining
/^[SHZ]SCAN
SCAN regression test for issue #4906
command stats for GEOADD
errors stats for GEOADD
command stats for BRPOP
command stats for MULTI
COMMAND GETKEYS XGROUP
COMMAND GETKEYSANDFLAGS
COMMAND GETKEYS MORE THAN 256 KEYS
/^(ZUNIONSTORE|XREAD|SORT|SORT_RO|GEORADIUS) command is marked with movablekeys$
# Bit and LCS string commands (SETBIT, GETBIT, LCS): not in kvstore's set.
/^SETBIT
/^GETBIT
/^LCS
COMMAND GETKEYS LCS
# OBJECT (encodings, idle times): kvstore keeps one encoding and no access times.
SETRANGE against integer-encoded key
TTL, TYPE and EXISTS do not alter the last access time of a key
TOUCH alters the last access time of a key
# Lua scripts and functions: kvstore has no scripting engine.
MONITOR can log commands issued by the scripting engine
MONITOR can log commands issued by functions
command stats for scripts
COMMAND GETKEYS EVAL with keys
COMMAND GETKEYS EVAL without keys
/^(EVAL|MIGRATE) command is marked with movablekeys$
COMMAND LIST FILTERBY ACLCAT - list all commands/subcommands
# CLUSTER: kvstore is not a Redis Cluster (it has no CLUSTER command).
COMMAND LIST FILTERBY PATTERN - list all commands/subcommands
# CLIENT REPLY: not in kvstore (every command is answered).
/^CLIENT REPLY
# CLIENT LIST/INFO: kvstore does not keep a per-client query buffer to
# report (its qbuf is 0, Redis's is the request being run: 26).
CLIENT LIST
CLIENT INFO
# Redis's own settings (maxmemory, save, repl-backlog-size, bind, hidden
# debug settings, replicaof): kvstore has its own, and CONFIG SET only takes
# the ones that change at run time.
CONFIG sanity
CONFIG SET with multiple args
CONFIG SET rollback on set error
CONFIG SET rollback on apply error
CONFIG SET duplicate configs
CONFIG GET hidden configs
CONFIG GET multiple args
EOF
}

need_apt=()
command -v tclsh >/dev/null || need_apt+=(tcl)
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "redis-tcl: installing ${need_apt[*]} (apt-get)" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Redis's test suite, from Debian's source package (the version of the
# redis-server Debian ships, the one the integration tests compare with).
cache="$root/target/redis-tcl"
src=$(ls -d "$cache"/redis-*/ 2>/dev/null | head -1 || true)
if [ -z "$src" ]; then
  mkdir -p "$cache"
  if ! grep -rqs '^Types:.*deb-src\|^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "redis-tcl: adding a deb-src entry for Debian's main archive" >&2
    printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$(. /etc/os-release && echo "$VERSION_CODENAME")" | $sudo tee /etc/apt/sources.list.d/kvstore-deb-src.sources >/dev/null
    $sudo apt-get update -qq
  fi
  # Without a fresh index (a new machine) the source package is not known yet.
  if ! (cd "$cache" && apt-get source -qq --download-only redis >/dev/null 2>&1); then
    $sudo apt-get update -qq
    (cd "$cache" && apt-get source -qq --download-only redis >/dev/null)
  fi
  tar xf "$cache"/redis_*.orig.tar.* -C "$cache"
  src=$(ls -d "$cache"/redis-*/ | head -1)
fi

. "$root/scripts/lib/server.sh"
kvstore_session kvstore-tcl
port=$kv_port

skipfile="$work/skip.txt"
if [ "${ALL:-0}" = 1 ]; then : >"$skipfile"; else skip_list | grep -v '^#' >"$skipfile"; fi

status=0
for u in "${units[@]}"; do
  out="$work/$(echo "$u" | tr / _).out"
  rc=0
  (cd "$src" && timeout 300 tclsh tests/test_helper.tcl --host 127.0.0.1 --port "$port" --singledb --single "unit/$u" \
    --tags -needs:debug --tags -needs:repl --tags -needs:config-maxmemory --tags -needs:save --tags -slow \
    --skipfile "$skipfile" --clients 1 --timeout 60) >"$out" 2>&1 || rc=$?
  plain=$(sed 's/\x1b\[[0-9;]*m//g' "$out")
  ok=$(grep -c '^\[ok\]' <<<"$plain" || true)
  err=$(grep -c '^\[err\]' <<<"$plain" || true)
  skip=$(grep -c '^\[skip\]' <<<"$plain" || true)
  stop=$(grep -m1 '^\[exception\]' <<<"$plain" | sed 's/^\[exception\]: Executing test client: //' || true)
  [ "$rc" = 0 ] || status=1
  echo "unit/$u: $ok passed, $err failed, $skip skipped${stop:+; stopped by: $stop}$([ "$rc" = 0 ] || echo " (exit $rc)")"
  grep '^\[err\]' <<<"$plain" | sed 's/^/    /' || true
  if [ "$rc" != 0 ] && [ "$err" = 0 ] && [ -z "$stop" ]; then tail -5 <<<"$plain" | sed 's/^/    /'; fi
done
exit $status
