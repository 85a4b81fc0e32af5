#!/usr/bin/env bash
# redis-tcl.sh: runs Redis's own Tcl unit tests against a kvstore server,
# the reference for how users judge compatibility.
#
#   scripts/redis-tcl.sh [UNIT ...]     (default: type/string type/incr expire keyspace protocol)
#
# Gets Debian's redis source package (apt-get source; adds a deb-src entry
# for Debian's main archive if there is none), starts a release kvstore on a
# free loopback port, runs each unit with Redis's harness against it as an
# external server (--host/--port --singledb: kvstore has one database), and
# prints per unit the tests that passed, failed and the exception that
# stopped it (a unit stops at its first command of another data type, such
# as LPUSH, which kvstore does not have). Stops only the server it started.
# Knobs: WORK=dir (kept; default a temp dir), KEEP=1 keeps a temp WORK.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
units=("$@")
[ ${#units[@]} -gt 0 ] || units=(type/string type/incr expire keyspace protocol)
command -v tclsh >/dev/null || { echo "redis-tcl: tclsh is missing (apt-get install tcl)" >&2; exit 1; }

work=${WORK:-$(mktemp -d /tmp/kvstore-tcl.XXXXXX)}
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  if [ -z "${WORK:-}" ] && [ "${KEEP:-0}" != 1 ]; then rm -rf "$work"; else echo "kept $work" >&2; fi
}
trap cleanup EXIT

src=$(ls -d "$work"/redis-*/ 2>/dev/null | head -1 || true)
if [ -z "$src" ]; then
  if ! grep -rqs '^Types:.*deb-src\|^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "adding a deb-src entry for Debian's main archive" >&2
    printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$(. /etc/os-release && echo "$VERSION_CODENAME")" >/etc/apt/sources.list.d/kvstore-deb-src.sources
    apt-get update -qq
  fi
  (cd "$work" && apt-get source -qq --download-only redis >/dev/null 2>&1)
  tar xzf "$work"/redis_*.orig.tar.gz -C "$work"
  src=$(ls -d "$work"/redis-*/ | head -1)
fi

(cd "$root" && cargo build --release --quiet --bin kvstore-server)
"$root/target/release/kvstore-server" 0 --dir "$work/data" --fsync no 2>"$work/server.log" &
pid=$!
port=""
for _ in $(seq 200); do
  port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$work/server.log" | sed 's/.*://' || true)
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.05
done
[ -n "$port" ] || { echo "redis-tcl: the server did not start" >&2; exit 1; }

for u in "${units[@]}"; do
  out="$work/$(echo "$u" | tr / _).out"
  (cd "$src" && timeout 300 tclsh tests/test_helper.tcl --host 127.0.0.1 --port "$port" --singledb --single "unit/$u" \
    --tags -needs:debug --tags -needs:repl --tags -needs:config-maxmemory --tags -needs:save --tags -slow \
    --clients 1 --timeout 60) >"$out" 2>&1 || true
  plain=$(sed 's/\x1b\[[0-9;]*m//g' "$out")
  ok=$(grep -c '^\[ok\]' <<<"$plain" || true)
  err=$(grep -c '^\[err\]' <<<"$plain" || true)
  stop=$(grep -m1 '^\[exception\]' <<<"$plain" | sed 's/^\[exception\]: Executing test client: //' || true)
  echo "unit/$u: $ok passed, $err failed${stop:+; stopped by: $stop}"
  grep '^\[err\]' <<<"$plain" | sed 's/^/    /' || true
done
