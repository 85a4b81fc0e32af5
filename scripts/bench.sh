#!/usr/bin/env bash
# bench.sh: the performance table of kvstore against Redis on this machine.
#
#   scripts/bench.sh [--verbose]         QUICK=1 scripts/bench.sh   (smoke run, ~1 min; full run ~6 min)
#
# Prints a Markdown table on stdout (progress goes to stderr): each row is a
# target of the performance issue, with kvstore's value, Redis's value under
# the matching configuration, the ratio kvstore/Redis and PASS/FAIL.
#   1. SET and GET throughput at pipeline 16, --fsync no vs Redis without persistence
#   2. server CPU per request (srv_us) at P1 and P16 (and vs NULLSERVER at P1)
#   3. SET P16 with --fsync everysec vs Redis appendfsync everysec
#   4. SET P16 with --fsync always vs Redis appendfsync always
#   5. RSS per key with LOADKEYS distinct 16-byte keys and DATA-byte values
#   6. restart: time from exec to the first PONG, replaying those writes
#   7. SET P16 on one node of a 3-node cluster vs a Redis master with 2 replicas
#   8. p99.9 latency of a 1:1 SET:GET load while compactions (BGREWRITEAOF) run
#      back to back, so that the whole measured window is "during a compaction"
#   9. SET and GET at P16 over TLS (--tls-port) vs Redis over TLS (when its build
#      has TLS), and what TLS costs each: server CPU per request, TLS vs plain
#      (certificates made with openssl in the work dir; no client certificates)
#  10. p99.9 latency of the same load while EXPKEYS keys, all with the same
#      deadline (one PXAT), expire and are reclaimed by active expiry
#  11. leader mode (--election bully, --acks majority, --fsync no): SET P16 on the
#      leader of 3 vs a Redis master with 2 replicas; GET P16 on the leader
#      (linearizable reads) and on a follower started with --reads local vs Redis GET
#  12. failover: FAILOVERS (20) times, kill -9 the leader, then time until a PUT
#      through a surviving node is acknowledged (median and worst, ms; defaults:
#      --heartbeat-ms 100 --election-timeout-ms 500); the killed node is
#      restarted and takes over again before the next kill
# Method: every server runs on a free loopback port with its own temp dir, in
# its own process group; all of them are stopped on exit, error or Ctrl-C.
# Servers are measured alternately (kvstore, Redis, kvstore, ...) and the
# medians of REPS runs are compared, so that drift of this shared 2-core
# machine hits both. srv_us = server CPU (utime+stime of /proc/PID/stat) per
# request: on two cores shared with the client it is steadier than req/s.
# Without redis-server the kvstore-only rows still run.
#
# Knobs (environment): REPS=3  N=2000000 (requests per run at P16)  N1=N/10 (P1)
#   NALWAYS=N/4 (row 4)  CLIENTS=50  DATA=32  KEYS=1000000 (redis-benchmark -r)
#   LOADKEYS=1000000 (rows 5, 6, 8)  DUR=8 (row 8 seconds)  TMO=180 (s per client run)
#   EXPKEYS=1000000 (row 10)  EXPAT=12 (row 10: s from the start of the load to the deadline)
#   EXPDUR=3 (row 10: s measured, from 0.5 s before the deadline)
#   PIN=1: servers on CPU SCPU=0, clients on CPU CCPU=1
#   NULLSERVER=path: a do-nothing RESP server binary (`NULLSERVER <port>`) for row 2
#   ROWS="1 3 4 5 7 9 10 11": which row groups to run (2 comes with 1; 6 and 8 with 5;
#   12 with 11)  FAILOVERS=20 (row 12)
#   QUICK=1: REPS=1, N=200000, LOADKEYS=100000, DUR=3, EXPKEYS=100000 (unless set)
#   NO_REDIS=1: act as if redis-server were missing (the kvstore-only rows)
#   KEEP=1: keep the work dir (server logs, raw runs)  VERBOSE=1: same as --verbose
#   NO_BUILD=1: use existing binaries in ${CARGO_TARGET_DIR:-target}/release
set -euo pipefail

for arg in "$@"; do
  case $arg in
    -v | --verbose) VERBOSE=1 ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  REPS=${REPS:-1} N=${N:-200000} LOADKEYS=${LOADKEYS:-100000} DUR=${DUR:-3} EXPKEYS=${EXPKEYS:-100000}
fi
REPS=${REPS:-3} N=${N:-2000000} CLIENTS=${CLIENTS:-50} DATA=${DATA:-32} KEYS=${KEYS:-1000000}
N1=${N1:-$((N / 10))} NALWAYS=${NALWAYS:-$((N / 4))} LOADKEYS=${LOADKEYS:-1000000}
DUR=${DUR:-8} TMO=${TMO:-180} PIN=${PIN:-0} SCPU=${SCPU:-0} CCPU=${CCPU:-1}
ROWS=${ROWS:-"1 3 4 5 7 9 10 11"} VERBOSE=${VERBOSE:-0} NULLSERVER=${NULLSERVER:-}
EXPKEYS=${EXPKEYS:-1000000} EXPAT=${EXPAT:-12} EXPDUR=${EXPDUR:-3}
spin=() cpin=()
if [ "$PIN" = 1 ]; then spin=(taskset -c "$SCPU") cpin=(taskset -c "$CCPU"); fi
hz=$(getconf CLK_TCK)

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- tools

have() { command -v "$1" >/dev/null 2>&1; }
have_redis=1 have_rb=1
have redis-server && have redis-cli && [ "${NO_REDIS:-0}" != 1 ] || have_redis=0
have redis-benchmark || have_rb=0
[ "$have_redis" = 1 ] || log "redis-server/redis-cli not found: running the kvstore-only rows (apt-get install redis-server)"
[ "$have_rb" = 1 ] || log "redis-benchmark not found: rows 1-4 and 7 cannot run (apt-get install redis-tools)"
if [ -n "$NULLSERVER" ] && [ ! -x "$NULLSERVER" ]; then die "NULLSERVER=$NULLSERVER is not an executable"; fi

bindir=${CARGO_TARGET_DIR:-$root/target}/release
if [ "${NO_BUILD:-0}" != 1 ]; then
  log "cargo build --release (target dir $(dirname "$bindir"))"
  cargo build --release --quiet --bin kvstore-server --bin kvstore-bench
fi
KV=$bindir/kvstore-server KVB=$bindir/kvstore-bench
if [ ! -x "$KV" ] || [ ! -x "$KVB" ]; then die "no $KV or $KVB: build first (cargo build --release)"; fi

# ---------------------------------------------------------------- servers

work=$(mktemp -d "${TMPDIR:-/tmp}/kvstore-bench.XXXXXX")
declare -A spid=() sport=() sdir=() stls=()
live=()     # process groups of servers still running (their leaders' pids)
client_pid="" # the client running now (its process group)
cmds=()     # every command run, in order, for the report
declare -A seen_cmd=()

cleanup() {
  local p
  if [ -n "$client_pid" ]; then kill -TERM -- "-$client_pid" 2>/dev/null || true; fi
  for p in "${live[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
  for p in "${live[@]}"; do
    for _ in $(seq 50); do alive "$p" || break; sleep 0.1; done
    kill -KILL -- "-$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# note CMD...: remember a command for the report (once), echo it with --verbose.
note() {
  local s
  s=$(printf '%q ' "$@")
  s=${s% }
  if [ "$VERBOSE" = 1 ]; then log "\$ $s"; fi
  note_raw "$s"
}
note_raw() {
  if [ -z "${seen_cmd[$1]:-}" ]; then seen_cmd[$1]=1; cmds+=("$1"); fi
}

# alive PID: the process exists and is not a zombie.
alive() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  [ "${s:0:1}" != Z ]
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port VAR: set VAR to a loopback port nothing listens on and that this
# script has not handed out yet (not in a subshell: used_ports must persist).
used_ports=" "
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 12000)) # below the ephemeral range
    [[ $used_ports == *" $p "* ]] || listening "$p" || break
  done
  used_ports+="$p "
  printf -v "$1" %s "$p"
}

# start NAME PORT DIR CMD...: run CMD in its own process group (pinned with PIN=1).
start() {
  local name=$1 port=$2 dir=$3
  shift 3
  mkdir -p "$dir"
  note "${spin[@]}" "$@"
  setsid "${spin[@]}" "$@" >>"$work/$name.log" 2>&1 </dev/null &
  spid[$name]=$! sport[$name]=$port sdir[$name]=$dir
  live+=("$!")
}

# stop NAME: SIGTERM to its group, wait for the exit (SIGKILL after 60 s).
stop() {
  local name=$1 pid=${spid[$1]} i keep=()
  kill -TERM -- "-$pid" 2>/dev/null || true
  for i in $(seq 600); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then log "$name did not stop in 60 s: SIGKILL"; kill -KILL -- "-$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
  for i in "${live[@]}"; do [ "$i" = "$pid" ] || keep+=("$i"); done
  live=("${keep[@]}")
}

# pong PORT [TIMEOUT]: PING answered with PONG (inline PING: Redis answers
# +PONG, kvstore's text protocol PONG; a loading Redis answers -LOADING).
pong() {
  local line
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'PING\r\n' >&3 && IFS= read -r -t "${2:-5}" line <&3 &&
      [[ ${line%$'\r'} == +PONG || ${line%$'\r'} == PONG ]]
  ) 2>/dev/null
}

# ready NAME: wait until it answers PING (60 s), or fail with its log.
ready() {
  local name=$1 pid=${spid[$1]}
  for _ in $(seq 6000); do
    pong "${sport[$name]}" 30 && return 0
    alive "$pid" || break
    sleep 0.005 # short: row 6 times a restart with this loop
  done
  tail -5 "$work/$name.log" >&2
  die "$name (pid $pid, port ${sport[$name]}) did not answer PING"
}

check_alive() {
  alive "${spid[$1]}" && return 0
  tail -5 "$work/$1.log" >&2
  die "$1 died (log above)"
}

# kv_text PORT LINE: one kvstore text-protocol request; prints the reply
# lines (STATS: until END, as "name value"; else the first line).
kv_text() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf '%s\n' "$2" >&3
    while IFS= read -r -t 10 line <&3; do
      line=${line%$'\r'}
      if [ "$2" != STATS ]; then echo "$line"; break; fi
      [ "$line" = END ] && break
      echo "${line#STAT }"
    done
  )
}
kv_stat() { kv_text "${sport[$1]}" STATS | awk -v k="$2" '$1 == k { print $2 }'; }
rinfo() { redis-cli -p "${sport[$1]}" INFO "$2" | tr -d '\r' | awk -F: -v k="$3" '$1 == k { print $2 }'; }

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# ticks PID...: utime+stime (all threads) of these processes, in clock ticks.
ticks() {
  local p s f t=0
  for p in "$@"; do
    s=$(cat "/proc/$p/stat")
    read -ra f <<<"${s##*) }" # f[0] is field 3 (state): utime is f[11], stime f[12]
    t=$((t + f[11] + f[12]))
  done
  echo "$t"
}
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; } # whole machine, ticks

# client_start TAG CMD...: start a client (pinned with PIN=1) in its own process
# group, so that cleanup can stop it and a signal to this script is handled at
# once (bash runs traps during `wait`, not during a foreground command). stdout
# goes to $work/TAG.out, stderr to $work/TAG.err, its CPU time to $work/TAG.cpu.
client_start() {
  local tag=$1
  shift
  note "${cpin[@]}" "$@"
  # shellcheck disable=SC2016 # expanded by the inner bash
  setsid bash -c '"$@" >"$0.out" 2>"$0.err"; rc=$?; times >"$0.cpu"; exit $rc' \
    "$work/$tag" timeout --foreground "$TMO" "${cpin[@]}" "$@" </dev/null &
  client_pid=$!
}
# client_wait: wait for the client started last; returns its exit status.
client_wait() {
  local rc=0
  wait "$client_pid" || rc=$?
  client_pid=""
  return "$rc"
}
# client_cpu TAG: CPU seconds (user + system) of the client that ran as TAG.
client_cpu() { awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); print u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$work/$1.cpu"; }

# ---------------------------------------------------------------- runs

runs=$work/runs.csv
echo "row,rep,server,test,pipeline,requests,rps,srv_us,all_us,srv_pct,cli_pct,oth_pct" >"$runs"

# rb ROW REP NAME PIPELINE TEST REQUESTS [ALSO...]: one redis-benchmark run against
# server NAME; appends to runs.csv. srv_us: NAME's CPU per request; all_us: NAME's
# and the ALSO servers' together; cli/srv/oth: CPU % of the client, the server
# and everything else on the machine (oth >> 0: a noisy run).
rb() {
  local row=$1 rep=$2 name=$3 p=$4 t=$5 n=$6
  shift 6
  local pids=("${spid[$name]}") o rps cpu t0 t1 a0 a1 b0 b1 w0 w1 tls=()
  if [ -n "${stls[$name]:-}" ]; then tls=(--tls --cacert "${stls[$name]}"); fi
  check_alive "$name"
  for o in "$@"; do check_alive "$o" && pids+=("${spid[$o]}"); done
  t0=$(ticks "${pids[0]}") a0=$(ticks "${pids[@]}") b0=$(busy) w0=$(date +%s%N)
  client_start rb redis-benchmark -h 127.0.0.1 -p "${sport[$name]}" "${tls[@]}" -c "$CLIENTS" -d "$DATA" -r "$KEYS" \
    -n "$n" -P "$p" -t "$t" --csv
  client_wait || log "redis-benchmark failed or timed out against $name: $(tail -c 300 "$work/rb.err")"
  check_alive "$name"
  for o in "$@"; do check_alive "$o"; done
  t1=$(ticks "${pids[0]}") a1=$(ticks "${pids[@]}") b1=$(busy) w1=$(date +%s%N)
  rps=$(awk -F'"' 'NR == 2 && $2 != "" { print $4 }' "$work/rb.out")
  cpu=$(client_cpu rb)
  awk -v row="$row" -v rep="$rep" -v s="$name" -v t="$t" -v p="$p" -v n="$n" -v rps="${rps:-NA}" \
    -v ts=$((t1 - t0)) -v ta=$((a1 - a0)) -v tb=$((b1 - b0)) -v w=$((w1 - w0)) -v cli="${cpu:-0}" \
    -v hz="$hz" 'BEGIN { w /= 1e9
      srv = 100 * ts / hz / w; clip = 100 * cli / w; oth = 100 * tb / hz / w - srv - clip
      if (rps == "NA") printf "%s,%s,%s,%s,%s,%s,NA,NA,NA,%.0f,%.0f,%.0f\n", row, rep, s, t, p, n, srv, clip, oth
      else printf "%s,%s,%s,%s,%s,%s,%.0f,%.3f,%.3f,%.0f,%.0f,%.0f\n", row, rep, s, t, p, n, rps,
        ts * 1e6 / hz / n, ta * 1e6 / hz / n, srv, clip, oth }' | tee -a "$runs" | sed 's/^/  run: /' >&2
}

# med ROW SERVER TEST PIPELINE COLUMN: median over reps > 0 (NA if none).
med() {
  awk -F, -v row="$1" -v s="$2" -v t="$3" -v p="$4" -v col="$5" '
    NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
    $1 == row && $2 > 0 && $3 == s && $4 == t && $5 == p && $c != "NA" { v[++n] = $c + 0 }
    END { if (!n) { print "NA"; exit }
      for (i = 2; i <= n; i++) { x = v[i]; for (j = i - 1; j > 0 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
      print (n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2) }' "$runs"
}

# medlist VALUES...: median of numbers (NA if none).
medlist() {
  printf '%s\n' "$@" | awk '/^[0-9.]+$/ { v[++n] = $1 + 0 } END { if (!n) { print "NA"; exit }
    for (i = 2; i <= n; i++) { x = v[i]; for (j = i - 1; j > 0 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
    print (n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2) }'
}

# ---------------------------------------------------------------- the table

table=()
notes=()
note_row() { notes+=("$*"); log "note: $*"; }

# row NUM WHAT FMT KV BASE TARGET JUDGE [OP LIMIT]: one table line. The ratio is
# KV/BASE. JUDGE: ratio (ratio OP LIMIT), value (KV OP LIMIT), or a text to print.
row() {
  local num=$1 what=$2 fmt=$3 kv=$4 base=$5 target=$6 judge=$7 op=${8:-} lim=${9:-}
  local num_re='^[0-9]+([.][0-9]+)?([eE][-+]?[0-9]+)?$' ratio=n/a exact=n/a res kvs=$kv bs=$base x
  # shellcheck disable=SC2059 # FMT is the number format, given by the caller
  if [[ $kv =~ $num_re ]]; then kvs=$(printf "$fmt" "$kv"); fi
  # shellcheck disable=SC2059
  if [[ $base =~ $num_re ]]; then bs=$(printf "$fmt" "$base"); fi
  if [[ $kv =~ $num_re && $base =~ $num_re ]] && awk -v b="$base" 'BEGIN { exit !(b > 0) }'; then
    exact=$(awk -v a="$kv" -v b="$base" 'BEGIN { printf "%.6f", a / b }')
    ratio=$(printf %.2f "$exact")
  fi
  case $judge in
    ratio | value)
      x=$exact # judged unrounded: 1.497 is not ≥ 1.5
      [ "$judge" = value ] && x=$kv
      if [[ $x =~ $num_re ]]; then
        res=$(awk -v x="$x" -v l="$lim" -v op="$op" 'BEGIN { ok = op == "ge" ? x >= l : x <= l; print ok ? "PASS" : "FAIL" }')
      else
        res="n/a"
      fi
      ;;
    *) res=$judge ;;
  esac
  table+=("| $num | $what | $kvs | $bs | $ratio | $target | $res |")
}

no_redis="n/a (no redis-server)"

# -------------------------------------------------- rows 1 and 2: throughput, CPU per request

group1() {
  local servers=(kv) rep p t s n null_p1=()
  local port
  free_port port
  start kv "$port" "$work/kv1" "$KV" "$port" --dir "$work/kv1" --fsync no
  if [ "$have_redis" = 1 ]; then
    free_port port
    start redis "$port" "$work/redis1" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work/redis1"
    servers+=(redis)
  fi
  if [ -n "$NULLSERVER" ]; then
    free_port port
    start null "$port" "$work/null" "$NULLSERVER" "$port"
    null_p1=(null)
  fi
  for s in "${servers[@]}" "${null_p1[@]}"; do ready "$s"; done
  for s in "${servers[@]}"; do
    log "rows 1-2: warm-up, $N SETs on $s"
    rb 1 0 "$s" 16 set "$N"
  done
  for rep in $(seq "$REPS"); do
    for p in 1 16; do
      n=$N
      [ "$p" = 1 ] && n=$N1
      for t in set get; do
        log "rows 1-2: rep $rep/$REPS, $t P$p"
        for s in "${servers[@]}"; do rb 1 "$rep" "$s" "$p" "$t" "$n"; done
        if [ "$p" = 1 ]; then for s in "${null_p1[@]}"; do rb 1 "$rep" "$s" "$p" "$t" "$n"; done; fi
      done
    done
  done
  note_row "rows 1-2: kvstore --fsync no ran $(kv_stat kv compactions) automatic compaction(s), log now $(kv_stat kv log_bytes) bytes, $(kv_stat kv protocol_errors) protocol errors"
  for s in "${servers[@]}" "${null_p1[@]}"; do stop "$s"; done

  local base=redis judge=ratio
  [ "$have_redis" = 1 ] || judge=$no_redis
  for t in SET GET; do
    row 1 "$t P16 req/s, --fsync no vs Redis no persistence" %.0f "$(med 1 kv "${t,,}" 16 rps)" "$(med 1 $base "${t,,}" 16 rps)" "≥ 1.5×" "$judge" ge 1.5
  done
  for t in SET GET; do
    row 2 "srv_us $t P16 (server CPU µs/request)" %.3f "$(med 1 kv "${t,,}" 16 srv_us)" "$(med 1 $base "${t,,}" 16 srv_us)" "≤ 0.5×" "$judge" le 0.5
  done
  for t in SET GET; do
    row 2 "srv_us $t P1 vs Redis" %.3f "$(med 1 kv "${t,,}" 1 srv_us)" "$(med 1 $base "${t,,}" 1 srv_us)" "—" "—"
  done
  for t in SET GET; do
    if [ -n "$NULLSERVER" ]; then
      row 2 "srv_us $t P1 vs the null server (Redis column: null server)" %.3f "$(med 1 kv "${t,,}" 1 srv_us)" "$(med 1 null "${t,,}" 1 srv_us)" "≤ 1.15×" ratio le 1.15
    else
      row 2 "srv_us $t P1 vs the null server" %.3f "$(med 1 kv "${t,,}" 1 srv_us)" "n/a (set NULLSERVER)" "≤ 1.15×" "n/a (set NULLSERVER)"
    fi
  done
}

# -------------------------------------------------- rows 3 and 4: durable writes

# group_fsync ROW MODE REQUESTS TARGET
group_fsync() {
  local r=$1 mode=$2 n=$3 target=$4 servers=(kv) port rep s
  free_port port
  start kv "$port" "$work/kv$r" "$KV" "$port" --dir "$work/kv$r" --fsync "$mode"
  if [ "$have_redis" = 1 ]; then
    free_port port
    start redis "$port" "$work/redis$r" redis-server --port "$port" --bind 127.0.0.1 --save '' \
      --appendonly yes --appendfsync "$mode" --dir "$work/redis$r"
    servers+=(redis)
  fi
  for s in "${servers[@]}"; do ready "$s"; done
  for s in "${servers[@]}"; do
    log "row $r: warm-up, $((n / 10)) SETs on $s"
    rb "$r" 0 "$s" 16 set $((n / 10))
  done
  for rep in $(seq "$REPS"); do
    log "row $r: rep $rep/$REPS, SET P16, fsync $mode"
    for s in "${servers[@]}"; do rb "$r" "$rep" "$s" 16 set "$n"; done
  done
  for s in "${servers[@]}"; do stop "$s"; done
  local judge=ratio
  [ "$have_redis" = 1 ] || judge=$no_redis
  row "$r" "SET P16 req/s, --fsync $mode vs Redis appendfsync $mode" %.0f "$(med "$r" kv set 16 rps)" \
    "$(med "$r" redis set 16 rps)" "≥ ${target}×" "$judge" ge "$target"
}

# -------------------------------------------------- rows 5, 6, 8: memory, restart, compaction

# load NAME: SET LOADKEYS distinct keys (key:%012d, 16 bytes) with kvstore-bench.
load() {
  client_start load "$KVB" --addr "127.0.0.1:${sport[$1]}" --ratio 1:0 --keyspace "$LOADKEYS" \
    --value-size "$DATA" --prefill --requests 1 --quiet --json
  client_wait || die "loading $1 failed: $(cat "$work/load.err")"
  grep -q '"errors":0,' "$work/load.out" || die "loading $1: errors: $(cat "$work/load.out")"
}

keycount() {
  if [ "$1" = kv ]; then kv_stat kv keys; else redis-cli -p "${sport[$1]}" DBSIZE; fi
}

group_disk() {
  local servers=(kv) port s rep rss0 rss1 t0 t1
  declare -A perkey=() restarts=()
  free_port port
  local kvcmd=("$KV" "$port" --dir "$work/kv5" --fsync no)
  start kv "$port" "$work/kv5" "${kvcmd[@]}"
  local rcmd=()
  if [ "$have_redis" = 1 ]; then
    free_port port
    rcmd=(redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly yes --appendfsync no
      --aof-use-rdb-preamble no --auto-aof-rewrite-percentage 0 --dir "$work/redis5")
    start redis "$port" "$work/redis5" "${rcmd[@]}"
    servers+=(redis)
  fi
  for s in "${servers[@]}"; do
    ready "$s"
    sleep 0.5
    rss0=$(rss_kb "${spid[$s]}")
    log "row 5: loading $LOADKEYS keys into $s"
    load "$s"
    [ "$(keycount "$s")" = "$LOADKEYS" ] || die "$s holds $(keycount "$s") keys, not $LOADKEYS"
    sleep 1
    rss1=$(rss_kb "${spid[$s]}")
    perkey[$s]=$(awk -v a="$rss0" -v b="$rss1" -v n="$LOADKEYS" 'BEGIN { printf "%.2f", (b - a) * 1024 / n }')
    note_row "row 5: $s RSS $rss0 kB empty, $rss1 kB with $LOADKEYS keys"
  done
  local judge=ratio
  [ "$have_redis" = 1 ] || judge=$no_redis
  row 5 "RSS bytes/key, $LOADKEYS keys (16 B key, $DATA B value)" %.1f "${perkey[kv]}" "${perkey[redis]:-NA}" "≤ 0.7×" "$judge" le 0.7

  # Row 6: stop cleanly, start again on the same dir, time exec → first PONG.
  [ "$(kv_stat kv compactions)" = 0 ] || note_row "row 6: kvstore compacted its log before the restart"
  note_row "row 6: kvstore log $(kv_stat kv log_bytes) bytes$([ "$have_redis" = 1 ] &&
    echo ", Redis AOF $(du -cb "$work"/redis5/appendonlydir/*.aof | awk 'END { print $1 }') bytes")"
  for rep in $(seq "$REPS"); do
    for s in "${servers[@]}"; do
      stop "$s"
      local cmd=("${kvcmd[@]}")
      [ "$s" = redis ] && cmd=("${rcmd[@]}")
      t0=$(date +%s%N)
      start "$s" "${sport[$s]}" "${sdir[$s]}" "${cmd[@]}"
      ready "$s"
      t1=$(date +%s%N)
      restarts[$s]+=" $(awk -v d=$((t1 - t0)) 'BEGIN { printf "%.3f", d / 1e9 }')"
      [ "$(keycount "$s")" = "$LOADKEYS" ] || die "$s restarted with $(keycount "$s") keys, not $LOADKEYS"
      log "row 6: rep $rep/$REPS: $s answered PING $(((t1 - t0) / 1000000)) ms after exec"
    done
  done
  local kvr rr
  # shellcheck disable=SC2086 # word splitting of the lists is wanted
  kvr=$(medlist ${restarts[kv]}) rr=$(medlist ${restarts[redis]:-})
  note_row "row 6: restart seconds, kvstore:${restarts[kv]}$([ "$have_redis" = 1 ] && echo "; Redis:${restarts[redis]}")"
  note_row "row 6: self-reported load time, kvstore: $(grep -o 'replayed .* in [0-9.]*s' "$work/kv.log" | tail -1)$(
    [ "$have_redis" = 1 ] && echo "; Redis: $(grep -o 'DB loaded from append only file: .*' "$work/redis.log" | tail -1)")"
  row 6 "restart until PONG, s ($LOADKEYS writes replayed)" %.3f "$kvr" "$rr" "≤ 0.33× (3× faster)" "$judge" le 0.333333

  # Row 8: a 1:1 load with a compaction in the middle of it.
  for s in "${servers[@]}"; do compaction_run "$s"; done
  row 8 "p99.9 ms, 1:1 SET:GET P1 10 clients, compactions of $LOADKEYS keys back to back" %.3f \
    "$(cat "$work/p999.kv")" "$(cat "$work/p999.redis" 2>/dev/null || echo NA)" "≤ 10 ms" \
    "$(cat "$work/valid.kv")" le 10
  for s in "${servers[@]}"; do stop "$s"; done
}

# compaction_run NAME: kvstore-bench (1:1, P1, 10 clients) for DUR s; from 0.5 s
# on, a compaction (kvstore COMPACT, Redis BGREWRITEAOF) is started whenever
# none is running, so that the latency percentiles describe "during a
# compaction" rather than a run where one compaction is a small part. Writes
# p99.9 to $work/p999.NAME and, for kv, how to judge it to $work/valid.kv.
compaction_run() {
  local s=$1 port=${sport[$1]} before after busy t0 now end out p took errs
  local asked=0 polls=0 busy_polls=0 first=""
  if [ "$s" = kv ]; then
    note_raw "printf 'COMPACT\\n' | nc -q1 127.0.0.1 $port   # (sent over bash's /dev/tcp; STATS polled likewise)"
    before=$(kv_stat kv compactions)
  else
    note redis-cli -p "$port" BGREWRITEAOF
    before=$(rinfo redis persistence aof_rewrites)
  fi
  t0=$(date +%s%N)
  end=$((t0 + ${DUR%.*} * 1000000000 - 300000000)) # no new compaction in the last 0.3 s
  client_start "compact.$s" "$KVB" --addr "127.0.0.1:$port" --ratio 1:1 --pipeline 1 --clients 10 \
    --duration "$DUR" --keyspace "$LOADKEYS" --value-size "$DATA" --json --quiet
  sleep 0.5
  while alive "$client_pid"; do
    if [ "$s" = kv ]; then busy=$(kv_stat kv compacting); else busy=$(rinfo redis persistence aof_rewrite_in_progress); fi
    now=$(date +%s%N)
    if [ "$busy" = 1 ]; then
      busy_polls=$((busy_polls + 1))
    elif [ "$now" -lt "$end" ]; then
      if [ "$s" = kv ]; then out=$(kv_text "$port" COMPACT); else out=$(redis-cli -p "$port" BGREWRITEAOF); fi
      [ -n "$first" ] || { first=$out; log "row 8: $s: compaction requested: $out"; }
      asked=$((asked + 1))
      busy_polls=$((busy_polls + 1))
    fi
    polls=$((polls + 1))
    sleep 0.05
  done
  client_wait || log "row 8: kvstore-bench against $s failed: $(cat "$work/compact.$s.err")"
  if [ "$s" = kv ]; then
    after=$(kv_stat kv compactions) took="last one $(kv_stat kv last_compaction_ms) ms"
  else
    after=$(rinfo redis persistence aof_rewrites) took="last one $(rinfo redis persistence aof_last_rewrite_time_sec) s"
  fi
  p=$(grep -o '"p999":[0-9.]*' "$work/compact.$s.out" | cut -d: -f2)
  errs=$(grep -o '"errors":[0-9]*' "$work/compact.$s.out" | cut -d: -f2)
  echo "${p:-NA}" >"$work/p999.$s"
  if [ "$s" = kv ]; then
    if [ "$asked" -gt 0 ] && [ "$busy_polls" -gt 0 ]; then echo value; else echo "n/a (no compaction ran)"; fi >"$work/valid.kv"
  fi
  note_row "row 8: $s: p99.9 ${p:-NA} ms, errors ${errs:-?}; $asked compaction(s) requested, $((after - before)) completed ($took), one running at $((polls ? 100 * busy_polls / polls : 0))% of $polls polls from 0.5 s to the end; $(grep -o '"latency_ms":{[^}]*}' "$work/compact.$s.out")"
}

# -------------------------------------------------- row 7: replication

# start_redis_trio ROW: a Redis master (redis) and two replicas of it
# (redis2, redis3), without persistence, dirs named after ROW.
start_redis_trio() {
  local a b c row=$1
  free_port a; free_port b; free_port c
  start redis "$a" "$work/redis${row}a" redis-server --port "$a" --bind 127.0.0.1 --save '' --appendonly no --dir "$work/redis${row}a"
  start redis2 "$b" "$work/redis${row}b" redis-server --port "$b" --bind 127.0.0.1 --save '' --appendonly no \
    --replicaof 127.0.0.1 "$a" --dir "$work/redis${row}b"
  start redis3 "$c" "$work/redis${row}c" redis-server --port "$c" --bind 127.0.0.1 --save '' --appendonly no \
    --replicaof 127.0.0.1 "$a" --dir "$work/redis${row}c"
}

# redis_trio_online: the trio answers and both replicas are online (or die).
redis_trio_online() {
  local s i
  for s in redis redis2 redis3; do ready "$s"; done
  for i in $(seq 600); do
    [ "$(redis-cli -p "${sport[redis]}" INFO replication | grep -c '^slave[0-9]*:.*state=online')" = 2 ] && return 0
    sleep 0.1
  done
  die "the Redis replicas did not come online"
}

# peers_up NAME COUNT: kvstore node NAME has COUNT links connected.
peers_up() { [ "$(kv_text "${sport[$1]}" STATS | grep -c '^peer\..*\.state connected$')" = "$2" ]; }

group_cluster() {
  local a b c i s rep servers=(kv)
  free_port a; free_port b; free_port c
  start kv "$a" "$work/kv7a" "$KV" "$a" "127.0.0.1:$b,127.0.0.1:$c" --dir "$work/kv7a" --fsync no
  start kv2 "$b" "$work/kv7b" "$KV" "$b" "127.0.0.1:$a,127.0.0.1:$c" --dir "$work/kv7b" --fsync no
  start kv3 "$c" "$work/kv7c" "$KV" "$c" "127.0.0.1:$a,127.0.0.1:$b" --dir "$work/kv7c" --fsync no
  local all_kv=(kv2 kv3) all_redis=(redis2 redis3)
  if [ "$have_redis" = 1 ]; then
    start_redis_trio 7
    servers+=(redis)
  fi
  for s in kv kv2 kv3; do ready "$s"; done
  for i in $(seq 600); do peers_up kv 2 && peers_up kv2 2 && peers_up kv3 2 && break; sleep 0.1; done
  [ "$i" -lt 600 ] || die "the kvstore cluster did not connect (logs: kv.log kv2.log kv3.log in $work, KEEP=1)"
  if [ "$have_redis" = 1 ]; then redis_trio_online; fi
  for s in "${servers[@]}"; do
    log "row 7: warm-up, $N SETs on $s"
    if [ "$s" = kv ]; then rb 7 0 kv 16 set "$N" "${all_kv[@]}"; else rb 7 0 redis 16 set "$N" "${all_redis[@]}"; fi
  done
  for rep in $(seq "$REPS"); do
    log "row 7: rep $rep/$REPS, SET P16 on the first node / the master"
    rb 7 "$rep" kv 16 set "$N" "${all_kv[@]}"
    if [ "$have_redis" = 1 ]; then rb 7 "$rep" redis 16 set "$N" "${all_redis[@]}"; fi
  done
  # Did the copies keep up? Wait (up to 30 s) for equal key counts.
  local k1 k2 k3
  for i in $(seq 300); do
    k1=$(kv_stat kv keys) k2=$(kv_stat kv2 keys) k3=$(kv_stat kv3 keys)
    [ "$k1" = "$k2" ] && [ "$k1" = "$k3" ] && break
    sleep 0.1
  done
  note_row "row 7: kvstore keys per node after the runs: $k1 / $k2 / $k3 (caught up after ~$((i / 10)) s); peer resyncs: $(kv_text "${sport[kv]}" STATS | awk '/\.resyncs / { printf "%s ", $2 }')"
  if [ "$have_redis" = 1 ]; then
    note_row "row 7: Redis keys master/replicas: $(keycount redis) / $(keycount redis2) / $(keycount redis3)"
  fi
  note_row "row 7: CPU of all 3 processes per request (all_us, median): kvstore $(med 7 kv set 16 all_us), Redis $(med 7 redis set 16 all_us)"
  for s in kv kv2 kv3; do stop "$s"; done
  if [ "$have_redis" = 1 ]; then for s in redis redis2 redis3; do stop "$s"; done; fi
  local judge=ratio
  [ "$have_redis" = 1 ] || judge=$no_redis
  row 7 "SET P16 req/s on node 1 of 3 (--fsync no) vs Redis master + 2 replicas" %.0f "$(med 7 kv set 16 rps)" \
    "$(med 7 redis set 16 rps)" "≥ 1.5×" "$judge" ge 1.5
}

# -------------------------------------------------- rows 11 and 12: leader mode

# leader_port: the port of the node that says it leads, if one does.
leader_port() {
  local s
  for s in kvl kvm kvf; do
    alive "${spid[$s]}" && [ "$(kv_stat "$s" role 2>/dev/null)" = leader ] && { echo "$s"; return 0; }
  done
  return 1
}

# agreed: every running node names the same leader, which runs.
agreed() {
  local s l="" x
  for s in kvl kvm kvf; do
    alive "${spid[$s]}" || continue
    x=$(kv_text "${sport[$s]}" LEADER 2>/dev/null) || return 1
    [[ $x == "LEADER NONE"* ]] && return 1
    [ -z "$l" ] && l=$x
    [ "$x" = "$l" ] || return 1
  done
  leader_port >/dev/null
}

group_leader() {
  local a b c i s rep servers=(kvl) lopts=(--election bully --fsync no)
  free_port a; free_port b; free_port c
  # Node ids are the ports: the highest leads (Bully), so c, the highest, is
  # the leader and a, the lowest, the follower answering local reads.
  local ports
  ports=$(printf '%s\n' "$a" "$b" "$c" | sort -n | tr '\n' ' ')
  read -r a b c <<<"$ports"
  declare -gA lnode_args
  lnode_args[kvf]="$a 127.0.0.1:$b,127.0.0.1:$c --dir $work/kv11a --reads local"
  lnode_args[kvm]="$b 127.0.0.1:$a,127.0.0.1:$c --dir $work/kv11b"
  lnode_args[kvl]="$c 127.0.0.1:$a,127.0.0.1:$b --dir $work/kv11c"
  local -A pa=([kvf]=$a [kvm]=$b [kvl]=$c)
  for s in kvf kvm kvl; do
    # shellcheck disable=SC2086 # the node's arguments, split on purpose
    start "$s" "${pa[$s]}" "$work/$s" "$KV" ${lnode_args[$s]} "${lopts[@]}"
  done
  if [ "$have_redis" = 1 ]; then
    start_redis_trio 11
    servers+=(redis)
    redis_trio_online
  fi
  for s in kvf kvm kvl; do ready "$s"; done
  for i in $(seq 600); do agreed && [ "$(leader_port)" = kvl ] && break; sleep 0.05; done
  [ "$i" -lt 600 ] || die "row 11: no leader elected (logs kvl.log kvm.log kvf.log in $work, KEEP=1)"
  for s in "${servers[@]}"; do
    log "row 11: warm-up, $N SETs on $s"
    if [ "$s" = kvl ]; then rb 11 0 kvl 16 set "$N" kvm kvf; else rb 11 0 redis 16 set "$N" redis2 redis3; fi
  done
  for rep in $(seq "$REPS"); do
    log "row 11: rep $rep/$REPS, SET and GET P16 on the leader / the master, GET P16 on a follower"
    rb 11 "$rep" kvl 16 set "$N" kvm kvf
    rb 11 "$rep" kvl 16 get "$N" kvm kvf
    rb 11 "$rep" kvf 16 get "$N"
    if [ "$have_redis" = 1 ]; then
      rb 11 "$rep" redis 16 set "$N" redis2 redis3
      rb 11 "$rep" redis 16 get "$N"
    fi
  done
  local judge=ratio
  [ "$have_redis" = 1 ] || judge=$no_redis
  row 11 "leader mode: SET P16 req/s on the leader of 3 (--acks majority) vs Redis master + 2 replicas" %.0f \
    "$(med 11 kvl set 16 rps)" "$(med 11 redis set 16 rps)" "≥ 1.0×" "$judge" ge 1.0
  row 11 "leader mode: GET P16 req/s on the leader (linearizable) vs Redis GET P16" %.0f \
    "$(med 11 kvl get 16 rps)" "$(med 11 redis get 16 rps)" "≥ 1.5×" "$judge" ge 1.5
  row 11 "leader mode: GET P16 req/s on a follower (--reads local) vs Redis GET P16" %.0f \
    "$(med 11 kvf get 16 rps)" "$(med 11 redis get 16 rps)" "≥ 1.5×" "$judge" ge 1.5
  if [ "$have_redis" = 1 ]; then for s in redis redis2 redis3; do stop "$s"; done; fi
  # Row 12: failovers.
  local k l t0 t1 ms times=() worst=0 o
  for k in $(seq "${FAILOVERS:-20}"); do
    l=$(leader_port) || die "row 12: no leader before kill $k"
    kill -KILL -- "-${spid[$l]}" 2>/dev/null || true
    t0=$(date +%s%N)
    while :; do
      for o in kvl kvm kvf; do
        [ "$o" = "$l" ] && continue
        [ "$(kv_text "${sport[$o]}" "PUT failover$k x" 2>/dev/null)" = OK ] && break 2
      done
      (( $(date +%s%N) - t0 < 30000000000 )) || die "row 12: no write acknowledged 30 s after kill $k"
    done
    t1=$(date +%s%N) ms=$(((t1 - t0) / 1000000))
    times+=("$ms")
    ((ms > worst)) && worst=$ms
    log "row 12: kill $k of $l: first acknowledged write after $ms ms"
    wait "${spid[$l]}" 2>/dev/null || true
    # shellcheck disable=SC2086
    start "$l" "${sport[$l]}" "$work/$l" "$KV" ${lnode_args[$l]} "${lopts[@]}"
    ready "$l"
    for i in $(seq 600); do agreed && [ "$(leader_port)" = kvl ] && break; sleep 0.05; done
  done
  note_row "row 12: failover times (ms, kill -9 of the leader to the first acknowledged PUT): ${times[*]}"
  row 12 "leader mode: failover, median of ${FAILOVERS:-20} leader kills (ms)" %s "$(medlist "${times[@]}")" NA "—" "—"
  row 12 "leader mode: failover, worst of ${FAILOVERS:-20} leader kills (ms)" %s "$worst" NA "≤ 2000" value le 2000
  for s in kvl kvm kvf; do stop "$s"; done
}

# -------------------------------------------------- row 9: TLS

# tls_certs DIR: a CA and a certificate for 127.0.0.1 signed by it, as the
# README's TLS example makes them.
tls_certs() {
  local d=$1
  mkdir -p "$d"
  note_raw "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=bench-ca -keyout ca.key -out ca.crt (and a server.crt for IP:127.0.0.1 signed by it)"
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=bench-ca -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null &&
    openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null &&
    printf 'subjectAltName=IP:127.0.0.1\n' >"$d/san.ext" &&
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 1 \
      -extfile "$d/san.ext" -out "$d/server.crt" 2>/dev/null
}

# The installed redis-server speaks TLS if it was built with it (Debian's is):
# one without it refuses the tls-port option.
redis_has_tls() {
  local out
  out=$(timeout 10 redis-server --port 0 --tls-port 0 --save '' 2>&1 || true) # it exits 1 either way
  [[ $out == *"not listen anywhere"* ]]
}

# Each server listens on a plain port (for `ready`) and a TLS port; the TLS
# endpoint is measured under a second name (kvtls, redistls) for the same
# process, whose redis-benchmark runs get --tls.
group_tls() {
  local d=$work/tls port tport s t rep servers=(kv kvtls) judge=—
  if ! redis-benchmark --help 2>&1 | grep -q -- --tls || ! have openssl; then
    row 9 "SET/GET P16 over TLS" %s NA NA "—" "not run (no redis-benchmark --tls or no openssl)"
    return
  fi
  tls_certs "$d" || die "row 9: openssl could not make the certificates"
  local certs=(--tls-cert-file "$d/server.crt" --tls-key-file "$d/server.key" --tls-ca-cert-file "$d/ca.crt" --tls-auth-clients no)
  free_port port
  free_port tport
  start kv "$port" "$work/kv9" "$KV" "$port" --dir "$work/kv9" --fsync no --tls-port "$tport" "${certs[@]}"
  spid[kvtls]=${spid[kv]} sport[kvtls]=$tport stls[kvtls]=$d/ca.crt
  if [ "$have_redis" = 1 ] && redis_has_tls; then
    free_port port
    free_port tport
    start redis "$port" "$work/redis9" redis-server --port "$port" --tls-port "$tport" --bind 127.0.0.1 \
      --save '' --appendonly no --dir "$work/redis9" "${certs[@]}"
    spid[redistls]=${spid[redis]} sport[redistls]=$tport stls[redistls]=$d/ca.crt
    servers+=(redis redistls)
    judge=ratio
  elif [ "$have_redis" = 1 ]; then
    judge="n/a (redis-server without TLS)"
  else
    judge=$no_redis
  fi
  for s in "${servers[@]}"; do [[ $s == *tls ]] || ready "$s"; done
  for s in "${servers[@]}"; do
    [[ $s == *tls ]] && continue
    log "row 9: warm-up, $N SETs on $s"
    rb 9 0 "$s" 16 set "$N"
  done
  for rep in $(seq "$REPS"); do
    for t in set get; do
      log "row 9: rep $rep/$REPS, $t P16, plain and TLS"
      for s in "${servers[@]}"; do rb 9 "$rep" "$s" 16 "$t" "$N"; done
    done
  done
  for s in "${servers[@]}"; do [[ $s == *tls ]] || stop "$s"; done
  for t in SET GET; do
    row 9 "$t P16 req/s over TLS vs Redis over TLS" %.0f "$(med 9 kvtls "${t,,}" 16 rps)" \
      "$(med 9 redistls "${t,,}" 16 rps)" "—" "$([ "$judge" = ratio ] && echo — || echo "$judge")"
  done
  for t in SET GET; do
    row 9 "srv_us $t P16 over TLS vs plain (Redis column: kvstore plain)" %.3f "$(med 9 kvtls "${t,,}" 16 srv_us)" \
      "$(med 9 kv "${t,,}" 16 srv_us)" "—" "—"
  done
  if [ "$judge" = ratio ]; then
    note_row "row 9: Redis srv_us P16 over TLS / plain: SET $(med 9 redistls set 16 srv_us) / $(med 9 redis set 16 srv_us), GET $(med 9 redistls get 16 srv_us) / $(med 9 redis get 16 srv_us)"
  fi
}

# -------------------------------------------------- row 10: active expiry

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# expired_count NAME: keys expired by the server since start.
expired_count() {
  if [ "$1" = kv ]; then kv_stat kv expired_keys; else rinfo redis stats expired_keys; fi
}

# expire_load NAME AT_MS: SET EXPKEYS distinct keys exp:%012d (16 bytes) with
# DATA-byte values, every one expiring at AT_MS (PXAT), through redis-cli
# --pipe (Redis's mass insertion, which kvstore speaks too).
expire_load() {
  local s=$1 at=$2
  cat >"$work/expload.awk" <<'AWK'
BEGIN { v = sprintf("%" d "s", ""); gsub(/ /, "x", v)
  for (i = 0; i < n; i++)
    printf "*5\r\n$3\r\nSET\r\n$16\r\nexp:%012d\r\n$%d\r\n%s\r\n$4\r\nPXAT\r\n$%d\r\n%s\r\n", i, d, v, length(at), at }
AWK
  # shellcheck disable=SC2016 # expanded by the inner bash
  client_start "expload.$s" bash -c 'awk -v n="$1" -v at="$2" -v d="$3" -f "$4" | redis-cli -p "$5" --pipe' \
    expload "$EXPKEYS" "$at" "$DATA" "$work/expload.awk" "${sport[$s]}"
  client_wait || die "loading $s with expiring keys failed: $(tail -c 300 "$work/expload.$s.err")"
  grep -q "errors: 0, replies: $EXPKEYS" "$work/expload.$s.out" || die "loading $s: $(tail -3 "$work/expload.$s.out")"
}

# expire_run NAME: load the expiring keys, then run kvstore-bench (1:1, P1,
# 10 clients, on other keys) for EXPDUR s from 0.5 s before the deadline, so
# that the measured window is mostly "while the keys expire", polling how
# many have expired. Appends p99.9 to $work/p999exp.NAME and, for kv, a
# reason not to judge it to $work/invalidexp.kv.
expire_run() {
  local s=$1 t0 at left b0 base n p errs done_ms="" valid=value
  b0=$(expired_count "$s")
  t0=$(now_ms)
  at=$((t0 + EXPAT * 1000))
  log "row 10: loading $EXPKEYS keys into $s, all expiring at $at (${EXPAT}s from now)"
  expire_load "$s" "$at"
  left=$((at - $(now_ms)))
  [ "$left" -ge 1000 ] || valid="n/a (the load ended $left ms before the deadline: raise EXPAT)"
  base=$(expired_count "$s")
  [ "$base" = "$b0" ] || valid="n/a ($((base - b0)) keys expired before the deadline)"
  log "row 10: $s: the load ended ${left} ms before the deadline; measuring for ${EXPDUR}s from 0.5 s before it"
  if [ "$left" -gt 500 ]; then sleep "$(awk -v l="$left" 'BEGIN { printf "%.3f", (l - 500) / 1000 }')"; fi
  client_start "exp.$s" "$KVB" --addr "127.0.0.1:${sport[$s]}" --ratio 1:1 --pipeline 1 --clients 10 \
    --duration "$EXPDUR" --keyspace 100000 --value-size "$DATA" --json --quiet
  while alive "$client_pid"; do
    if [ -z "$done_ms" ] && [ $(($(expired_count "$s") - base)) -ge "$EXPKEYS" ]; then done_ms=$(($(now_ms) - at)); fi
    sleep 0.05
  done
  client_wait || log "row 10: kvstore-bench against $s failed: $(cat "$work/exp.$s.err")"
  n=$(($(expired_count "$s") - base))
  [ "$n" -ge "$EXPKEYS" ] || valid="n/a (only $n of $EXPKEYS keys expired while measured)"
  p=$(grep -o '"p999":[0-9.]*' "$work/exp.$s.out" | cut -d: -f2)
  errs=$(grep -o '"errors":[0-9]*' "$work/exp.$s.out" | cut -d: -f2)
  echo "${p:-NA}" >>"$work/p999exp.$s"
  if [ "$s" = kv ] && [ "$valid" != value ]; then echo "$valid" >"$work/invalidexp.kv"; fi
  note_row "row 10: $s: p99.9 ${p:-NA} ms, errors ${errs:-?}; $n keys expired by the end of the ${EXPDUR}s measured, the last of the $EXPKEYS ${done_ms:-(not while measured)} ms after the deadline (polled every 50 ms); $(grep -o '"latency_ms":{[^}]*}' "$work/exp.$s.out")"
}

group_expire() {
  local servers=(kv) port s rep
  if ! have redis-cli; then
    row 10 "p99.9 ms while $EXPKEYS keys expire" %s NA NA "≤ 10 ms" "n/a (no redis-cli to load the keys)"
    return
  fi
  free_port port
  start kv "$port" "$work/kv10" "$KV" "$port" --dir "$work/kv10" --fsync no
  if [ "$have_redis" = 1 ]; then
    free_port port
    start redis "$port" "$work/redis10" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work/redis10"
    servers+=(redis)
  fi
  for s in "${servers[@]}"; do ready "$s"; done
  for rep in $(seq "$REPS"); do
    for s in "${servers[@]}"; do
      log "row 10: rep $rep/$REPS, $s"
      expire_run "$s"
    done
  done
  local kvp rp judge=value
  # shellcheck disable=SC2046 # word splitting of the lists is wanted
  kvp=$(medlist $(cat "$work/p999exp.kv")) rp=$(medlist $(cat "$work/p999exp.redis" 2>/dev/null))
  if [ -s "$work/invalidexp.kv" ]; then judge=$(head -1 "$work/invalidexp.kv"); fi
  note_row "row 10: p99.9 ms per rep, kvstore: $(tr '\n' ' ' <"$work/p999exp.kv")$([ "$have_redis" = 1 ] && echo "; Redis: $(tr '\n' ' ' <"$work/p999exp.redis")")"
  row 10 "p99.9 ms, 1:1 SET:GET P1 10 clients, while $EXPKEYS keys with one deadline expire" %.3f \
    "$kvp" "$rp" "≤ 10 ms" "$judge" le 10
  for s in "${servers[@]}"; do stop "$s"; done
}

# ---------------------------------------------------------------- main

started=$(date +%s) load0=$(cut -d' ' -f1-3 /proc/loadavg)
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$root" diff --quiet HEAD 2>/dev/null || rev+=" (with uncommitted changes)"
log "work dir $work; rows: $ROWS; REPS=$REPS N=$N N1=$N1 NALWAYS=$NALWAYS LOADKEYS=$LOADKEYS DUR=$DUR EXPKEYS=$EXPKEYS PIN=$PIN"

norb="not run (no redis-benchmark)"
done_groups=" "
for g in $ROWS; do
  case $g in 2) g=1 ;; 6 | 8) g=5 ;; 12) g=11 ;; esac
  [[ $done_groups == *" $g "* ]] && continue
  done_groups+="$g "
  case $g in
    1)
      if [ "$have_rb" = 1 ]; then group1; else row 1 "SET/GET P16 req/s" %s NA NA "≥ 1.5×" "$norb"; fi ;;
    3) if [ "$have_rb" = 1 ]; then group_fsync 3 everysec "$N" 2; else row 3 "SET P16 everysec" %s NA NA "≥ 2×" "$norb"; fi ;;
    4) if [ "$have_rb" = 1 ]; then group_fsync 4 always "$NALWAYS" 1.5; else row 4 "SET P16 always" %s NA NA "≥ 1.5×" "$norb"; fi ;;
    5) group_disk ;;
    7) if [ "$have_rb" = 1 ]; then group_cluster; else row 7 "SET P16 cluster" %s NA NA "≥ 1.5×" "$norb"; fi ;;
    9) if [ "$have_rb" = 1 ]; then group_tls; else row 9 "SET/GET P16 over TLS" %s NA NA "—" "$norb"; fi ;;
    10) group_expire ;;
    11) if [ "$have_rb" = 1 ]; then group_leader; else row 11 "leader mode" %s NA NA "—" "$norb"; fi ;;
    *) die "unknown row group $g in ROWS (use 1 3 4 5 7 9 10 11)" ;;
  esac
done

{
  echo "## kvstore vs Redis, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- kvstore $rev; $(redis-server --version 2>/dev/null | awk '{ print $1, $2, $3 }' || echo "no redis-server")"
  echo "- machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(uname -sr), load average $load0 at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
  echo "- servers $([ "$PIN" = 1 ] && echo "pinned on CPU $SCPU, clients on CPU $CCPU" || echo "and clients unpinned"); work dir on $(df -T "$work" | awk 'NR == 2 { print $2, $1 }')"
  echo "- REPS=$REPS (medians), N=$N requests per run at P16, N1=$N1 at P1, NALWAYS=$NALWAYS, CLIENTS=$CLIENTS, DATA=$DATA, KEYS=$KEYS, LOADKEYS=$LOADKEYS, DUR=$DUR, EXPKEYS=$EXPKEYS; $(($(date +%s) - started)) s"
  echo "- ratio = kvstore / Redis; srv_us = server CPU µs per request (utime+stime from /proc/PID/stat)"
  echo
  echo "| # | measurement | kvstore | Redis | ratio | target | result |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${table[@]}" | sort -t'|' -k2,2n -s
  echo
  if [ ${#notes[@]} -gt 0 ]; then
    echo "### Notes"
    echo
    printf -- '- %s\n' "${notes[@]}"
    echo
  fi
  echo "### Runs (rep 0 = warm-up; cli/srv/oth = CPU % of client, server, everything else)"
  echo
  echo '```'
  column -t -s, "$runs" 2>/dev/null || cat "$runs"
  echo '```'
  echo
  echo "### Commands (PORT/dirs differ per run)"
  echo
  echo '```'
  printf '%s\n' "${cmds[@]}"
  echo '```'
}
