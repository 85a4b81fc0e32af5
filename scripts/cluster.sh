#!/usr/bin/env bash
# A local kvstore cluster for trying replication by hand.
#
#   scripts/cluster.sh start [N] [OPTION...]
#                                  start N nodes (default 3) on ports BASE, BASE+1, ...;
#                                  each lists all the others as peers; OPTIONs go to every
#                                  node, e.g. `start --election bully` for leader mode
#   scripts/cluster.sh status      each node: port, pid, running or not, keys, link states
#                                  (and role, leader and epoch in leader mode)
#   scripts/cluster.sh kill PORT   kill -9 the node on PORT (a crash, to try failover)
#   scripts/cluster.sh restart PORT  start the node on PORT again, on its data, with the
#                                  options of the last start
#   scripts/cluster.sh stop        SIGTERM each node, wait for it, SIGKILL if it hangs
#
# Environment:
#   KV_CLUSTER_DIR  where data, logs and pid files go (default ./cluster)
#   KV_BASE_PORT    first port (default 12350, clear of the README's single server on 12345)
#   KV_BIN          the server binary (default target/release/kvstore-server under
#                   $CARGO_TARGET_DIR or the repository; built with cargo if missing)
#
# Processes are tracked by the pid files in KV_CLUSTER_DIR and signalled by pid
# only, after checking that the pid is still a kvstore-server.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${KV_CLUSTER_DIR:-./cluster}"
base="${KV_BASE_PORT:-12350}"
deadline_s=20

die() { echo "cluster.sh: $*" >&2; exit 1; }

# The node count of the cluster in $dir (written by start).
nodes() { cat "$dir/nodes" 2>/dev/null || echo 0; }
pidfile() { echo "$dir/node-$1.pid"; }

# Prints the pid of the node on port $1 if it is a live kvstore-server.
live_pid() {
  local f pid state
  f="$(pidfile "$1")"
  [ -f "$f" ] || return 1
  pid="$(cat "$f")"
  [ -r "/proc/$pid/stat" ] || return 1
  # An exited child not yet reaped (a zombie) is not running.
  state="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)"
  [ "$state" != Z ] || return 1
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q kvstore-server || return 1
  echo "$pid"
}

# Sends one text-protocol command to 127.0.0.1:$1 and prints the reply lines
# (up to END for STATS). Fails if nothing answers. The line ends in a bare \n:
# ending in \r\n, it would be a Redis inline command, answered in RESP.
ask() {
  local port="$1" cmd="$2" line
  exec 3<>"/dev/tcp/127.0.0.1/$port" 2>/dev/null || return 1
  printf '%s\n' "$cmd" >&3
  while IFS= read -r -t 2 line <&3; do
    echo "$line"
    [ "$cmd" = STATS ] && [ "$line" != END ] && continue
    break
  done
  exec 3<&- 3>&-
}

binary() {
  if [ -n "${KV_BIN:-}" ]; then
    [ -x "$KV_BIN" ] || die "KV_BIN=$KV_BIN is not an executable"
    echo "$KV_BIN"
    return
  fi
  local bin="${CARGO_TARGET_DIR:-$root/target}/release/kvstore-server"
  if [ ! -x "$bin" ]; then
    echo "building $bin (cargo build --release)" >&2
    (cd "$root" && cargo build --release --bin kvstore-server >&2)
  fi
  echo "$bin"
}

# Starts node $2 of an $1-node cluster (options: the rest) in the background.
launch() {
  local n="$1" i="$2" port peers j
  shift 2
  port=$((base + i))
  peers=""
  for ((j = 0; j < n; j++)); do
    [ "$j" = "$i" ] && continue
    peers="${peers:+$peers,}127.0.0.1:$((base + j))"
  done
  # nohup: the nodes outlive the shell that started them.
  nohup "$bin" "$port" ${peers:+"$peers"} --dir "$dir/node-$port" "$@" \
    >>"$dir/node-$port.log" 2>&1 </dev/null &
  echo $! >"$(pidfile "$port")"
}

start() {
  local n=3
  if [[ "${1:-}" =~ ^[0-9]+$ ]]; then
    n="$1"
    shift
  fi
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "start: N must be a positive number, not '$n'"
  mkdir -p "$dir"
  local old i port
  old="$(nodes)"
  for ((i = 0; i < (old > n ? old : n); i++)); do
    port=$((base + i))
    if pid="$(live_pid "$port")"; then
      die "node $port of $dir is already running (pid $pid): run '$0 stop' first"
    fi
  done
  bin="$(binary)"
  echo "$n" >"$dir/nodes"
  printf '%s\n' "$@" >"$dir/options"
  local nodes_up=()
  for ((i = 0; i < n; i++)); do nodes_up+=("$i"); done
  up_wait "$n" "${nodes_up[@]}" -- "$@"
}

# Starts the nodes given (indices) of an $1-node cluster with the options
# after --, and waits until each is up.
up_wait() {
  local n="$1" i port
  shift
  local idx=()
  while [ "$1" != -- ]; do idx+=("$1"); shift; done
  shift
  # Where each node's log ends before this start: only what it writes from
  # there on tells about this start (a node's log is appended to).
  local -A log_from
  for i in "${idx[@]}"; do
    port=$((base + i))
    log_from[$port]=$(($(stat -c %s "$dir/node-$port.log" 2>/dev/null || echo 0) + 1))
    launch "$n" "$i" "$@"
  done
  local end=$((SECONDS + deadline_s)) log
  for i in "${idx[@]}"; do
    port=$((base + i))
    log="$dir/node-$port.log"
    # Up once the process started here is alive, has logged that it listens
    # on its port, and answers PING: a PING alone may be answered by some
    # other server that holds the port.
    until live_pid "$port" >/dev/null &&
      tail -c "+${log_from[$port]}" "$log" | grep -q "listening on 127.0.0.1:$port " &&
      [ "$(ask "$port" PING 2>/dev/null)" = PONG ]; do
      if ! live_pid "$port" >/dev/null; then
        {
          echo "cluster.sh: node $port failed to start; the end of its log ($log):"
          tail -c "+${log_from[$port]}" "$log" | tail -n 5 | sed 's/^/  /'
        } >&2
        stop >/dev/null
        exit 1
      fi
      if ((SECONDS >= end)); then
        stop >/dev/null
        die "node $port did not log that it listens within ${deadline_s}s (log: $log; RUST_LOG must keep kvstore::server at info)"
      fi
      sleep 0.05
    done
    echo "node $port up (pid $(cat "$(pidfile "$port")"), data $dir/node-$port)"
  done
}

# The node index of port $1 in the cluster, or exit.
index_of() {
  local n i
  n="$(nodes)"
  [[ "${1:-}" =~ ^[0-9]+$ ]] || die "a PORT is needed"
  i=$(($1 - base))
  ((i >= 0 && i < n)) || die "no node on port $1 in $dir (ports $base..$((base + n - 1)))"
  echo "$i"
}

kill9() {
  local i pid
  i="$(index_of "${1:-}")"
  pid="$(live_pid "$1")" || die "node $1 is not running"
  kill -KILL "$pid"
  while live_pid "$1" >/dev/null; do sleep 0.05; done
  echo "node $1 killed (kill -9 $pid)"
}

restart() {
  local i pid
  i="$(index_of "${1:-}")"
  if pid="$(live_pid "$1")"; then die "node $1 is running (pid $pid)"; fi
  bin="$(binary)"
  local opts=()
  [ -f "$dir/options" ] && mapfile -t opts <"$dir/options"
  up_wait "$(nodes)" "$i" -- "${opts[@]}"
}

stop() {
  local n i port pid end
  n="$(nodes)"
  for ((i = 0; i < n; i++)); do
    port=$((base + i))
    if pid="$(live_pid "$port")"; then
      kill -TERM "$pid" 2>/dev/null || true
      end=$((SECONDS + deadline_s))
      while live_pid "$port" >/dev/null && ((SECONDS < end)); do sleep 0.05; done
      if live_pid "$port" >/dev/null; then
        echo "node $port (pid $pid) ignored SIGTERM for ${deadline_s}s: SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
        while live_pid "$port" >/dev/null; do sleep 0.05; done
      fi
      echo "node $port stopped (pid $pid)"
    fi
    rm -f "$(pidfile "$port")"
  done
}

status() {
  local n i port pid stats keys links role all=0
  n="$(nodes)"
  [ "$n" -gt 0 ] || { echo "no cluster in $dir"; return 3; }
  for ((i = 0; i < n; i++)); do
    port=$((base + i))
    if pid="$(live_pid "$port")" && stats="$(ask "$port" STATS 2>/dev/null)"; then
      keys="$(awk '$2 == "keys" { print $3 }' <<<"$stats")"
      links="$(awk '$2 ~ /^peer\..*\.state$/ { sub(/^peer\./, "", $2); sub(/\.state$/, "", $2); printf " %s=%s", $2, $3 }' <<<"$stats")"
      role="$(awk '$2 == "role" { r = $3 } $2 == "leader_id" { l = $3 } $2 == "epoch" { e = $3 } END { if (r != "") printf "  %s (leader %s, epoch %s)", r, l, e }' <<<"$stats")"
      echo "node $port  pid $pid  running  keys ${keys:-?}${role}  links:${links:- none}"
    elif [ -n "${pid:-}" ]; then
      echo "node $port  pid $pid  not answering"
      all=3
    else
      echo "node $port  stopped"
      all=3
    fi
    pid=""
  done
  return "$all"
}

case "${1:-}" in
  start) shift; start "$@" ;;
  stop) stop ;;
  status) status ;;
  kill) kill9 "${2:-}" ;;
  restart) restart "${2:-}" ;;
  *) echo "usage: $0 start [N] [OPTION...] | status | kill PORT | restart PORT | stop" >&2; exit 2 ;;
esac
