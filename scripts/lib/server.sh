# Sourced by the scripts that test kvstore with another project's suite
# (redis-tcl.sh, redis-py-suite.sh): starts one kvstore-server on a free
# loopback port and stops it, and only it, on exit.
#
#   start_kvstore DIR    sets $kv_pid and $kv_port; data and log in DIR.
#                        SERVER=path runs that binary, else a release build.

kv_pid=""
kv_port=""

stop_kvstore() {
  if [ -n "$kv_pid" ]; then kill "$kv_pid" 2>/dev/null && wait "$kv_pid" 2>/dev/null || true; fi
  kv_pid=""
}

start_kvstore() {
  local dir=$1 server=${SERVER:-}
  if [ -z "$server" ]; then
    (cd "$root" && cargo build --release --quiet --bin kvstore-server)
    server="$root/target/release/kvstore-server"
  fi
  mkdir -p "$dir"
  "$server" 0 --dir "$dir/data" --fsync no 2>"$dir/server.log" &
  kv_pid=$!
  for _ in $(seq 200); do
    kv_port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$dir/server.log" | sed 's/.*://' || true)
    [ -n "$kv_port" ] && return 0
    kill -0 "$kv_pid" 2>/dev/null || { cat "$dir/server.log" >&2; return 1; }
    sleep 0.05
  done
  echo "the server did not start: $dir/server.log" >&2
  return 1
}

# kvstore_session NAME: a work dir ($work: WORK if set, else a fresh
# /tmp/NAME.XXXXXX removed at exit) and a server started in it (start_kvstore),
# stopped at exit.
kvstore_session() {
  work=${WORK:-$(mktemp -d "/tmp/$1.XXXXXX")}
  mkdir -p "$work"
  trap kvstore_session_end EXIT
  start_kvstore "$work"
}

kvstore_session_end() {
  stop_kvstore
  if [ -z "${WORK:-}" ]; then rm -rf "$work"; fi
}
