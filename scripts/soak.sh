#!/usr/bin/env bash
# soak.sh: a mixed load for minutes against a 3-node cluster while its peers
# restart, compactions run, keys expire and clients connect in storms; then
# whether memory and file descriptors stayed flat, and the latency the load saw.
#
#   scripts/soak.sh [SECONDS] [--election bully]     (default 300 s, multi-master)
#
# - load: kvstore-bench --duration SECONDS --pipeline 8 --ratio 1:1 --keyspace 200000
#   against node 1 (RESP), its latency percentiles printed at the end;
# - every 20 s node 2 or node 3 (in turn) is killed with -9 and restarted on
#   its data, so node 1's links go down, reconnect and catch up;
# - every 15 s COMPACT on node 1 (a log rewrite under load);
# - a writer of keys that expire within 2 s (PUTEX), so active expiry runs;
# - every 5 s a storm of 200 connections opened and closed (redis-benchmark PING);
# - every 5 s node 1's RSS (kB) and open file descriptors are sampled.
# At the end: the samples, first/last/max, and the bench's report. With
# --election bully the nodes run in leader mode and node 1 is the highest id
# (the leader), so the restarts are of followers.
#
# Servers are started here, on free ports, in a temp dir, and only they are
# stopped (by pid) on exit. Needs a release build (built if missing),
# redis-benchmark and redis-cli.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-300}
shift || true
extra=("$@")
bin=target/release/kvstore-server bench=target/release/kvstore-bench
[ -x "$bin" ] && [ -x "$bench" ] || cargo build --release --bins >&2
work=$(mktemp -d /tmp/kvstore-soak.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Ports in descending order: node 1 gets the highest (the leader in leader mode).
mapfile -t ports < <(for _ in 1 2 3; do free_port; done | sort -rn)
declare -a npid
start() {
  local i=$1 peers=() j
  for j in 0 1 2; do [ "$j" = "$i" ] || peers+=("127.0.0.1:${ports[$j]}"); done
  "$bin" "${ports[$i]}" "$(IFS=,; echo "${peers[*]}")" --dir "$work/n$i" --compact-min-bytes 1048576 "${extra[@]}" \
    >>"$work/n$i.log" 2>&1 &
  npid[$i]=$!
  pids+=("$!")
  for _ in $(seq 200); do redis-cli -p "${ports[$i]}" PING >/dev/null 2>&1 && return; sleep 0.05; done
  echo "soak.sh: node $i did not start (log $work/n$i.log)" >&2
  exit 1
}
for i in 0 1 2; do start "$i"; done
if [[ " ${extra[*]} " == *" bully "* ]]; then
  for _ in $(seq 200); do [ "$(redis-cli -p "${ports[0]}" LEADER 2>/dev/null | cut -d' ' -f2)" = "${ports[0]}" ] && break; sleep 0.1; done
fi
echo "soak: nodes on ${ports[*]} (data $work), ${secs}s, options: ${extra[*]:-none}" >&2

rss() { awk '/^VmRSS:/ { print $2 }' "/proc/${npid[0]}/status"; }
fds() { ls "/proc/${npid[0]}/fd" | wc -l; }

"$bench" --addr "127.0.0.1:${ports[0]}" --duration "$secs" --pipeline 8 --clients 50 --ratio 1:1 --keyspace 200000 \
  --prefill --json --quiet >"$work/bench.json" 2>"$work/bench.err" &
load=$!
t0=$SECONDS next_kill=20 next_compact=15 next_storm=5 victim=1 restarts=0 compactions=0 storms=0
samples=()
(
  n=0
  while :; do
    n=$((n + 1))
    printf 'PUTEX exp:%d 1 v\n' "$n"
    if ((n % 500 == 0)); then sleep 0.2; fi
  done | nc -q1 127.0.0.1 "${ports[0]}" >/dev/null 2>&1
) &
while kill -0 "$load" 2>/dev/null; do
  el=$((SECONDS - t0))
  if ((el >= next_kill)); then
    kill -9 "${npid[$victim]}" 2>/dev/null || true
    wait "${npid[$victim]}" 2>/dev/null || true
    start "$victim"
    restarts=$((restarts + 1)) victim=$((3 - victim)) next_kill=$((next_kill + 20))
  fi
  if ((el >= next_compact)); then
    redis-cli -p "${ports[0]}" BGREWRITEAOF >/dev/null 2>&1 || true
    compactions=$((compactions + 1)) next_compact=$((next_compact + 15))
  fi
  if ((el >= next_storm)); then
    redis-benchmark -p "${ports[0]}" -c 200 -n 200 -t ping -q >/dev/null 2>&1 || true
    storms=$((storms + 1))
    samples+=("$el:$(rss):$(fds)")
    next_storm=$((next_storm + 5))
  fi
  sleep 0.2
done
wait "$load" || { echo "soak.sh: the load failed: $(cat "$work/bench.err")" >&2; exit 1; }
keys=$(redis-cli -p "${ports[0]}" DBSIZE)
expired=$(redis-cli -p "${ports[0]}" INFO stats | tr -d '\r' | awk -F: '$1 == "expired_keys" { print $2 }')
echo "## soak: ${secs}s, $restarts peer restarts (kill -9), $compactions compactions asked, $storms connection storms of 200"
echo
echo "node 1 samples (s:RSS kB:open fds): ${samples[*]}"
printf '%s\n' "${samples[@]}" | awk -F: 'NR == 1 { r0 = $2; f0 = $3 } { if ($2 > rm) rm = $2; if ($3 > fm) fm = $3; r = $2; f = $3 }
  END { printf "RSS kB: first %d, last %d, max %d; fds: first %d, last %d, max %d\n", r0, r, rm, f0, f, fm }'
echo "keys at the end: $keys; expired_keys: $expired; compactions: $(redis-cli -p "${ports[0]}" INFO persistence | tr -d '\r' | awk -F: '$1 == "aof_rewrites" { print $2 }')"
echo "load (kvstore-bench --json):"
cat "$work/bench.json"
echo
