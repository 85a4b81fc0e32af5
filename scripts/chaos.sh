#!/usr/bin/env bash
# chaos.sh: the fault harness of tests/chaos.rs at a larger size, by hand.
#
#   scripts/chaos.sh [--seeds N] [--mode multi|leader|single] [--seed S] [--steps N] [--release]
#
# Runs N seeded fault schedules (default 20) in one mode (default multi)
# against real kvstore-server processes whose peer links go through a proxy
# the test controls: partitions (closed or silent), one-way blackholes,
# delays, connection resets, kill -9 and restart, SIGSTOP/SIGCONT; clients
# record a history over the text protocol and RESP, and once every fault
# heals the checkers run: convergence, no acknowledged write lost (and, in
# single and leader mode, linearizability). Prints each seed's line and a
# summary: schedules run, faults injected by kind, operations checked,
# violations, writes lost, convergence time after heal. A failing seed is
# replayed with --seed S (or KV_CHAOS_SEED=S). Exit status: non-zero if any
# schedule found a violation.
#
# Knobs: --steps (faults per schedule, default 20), KV_CHAOS_CLIENTS
# (default 6), KV_CHAOS_KEYS (hot keys, default 16). The debug build is the
# default (the nodes are not what limits a run, and it shares CI's build);
# --release builds the optimized one. It kills only the servers its tests
# start (they die with the test process).
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=20 mode=multi profile=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) seeds=$2; shift 2 ;;
    --mode) mode=$2; shift 2 ;;
    --seed) export KV_CHAOS_SEED=$2; shift 2 ;;
    --steps) export KV_CHAOS_STEPS=$2; shift 2 ;;
    --release) profile=(--release); shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "chaos.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$mode" in multi|leader|single) ;; *) echo "chaos.sh: --mode is multi, leader or single" >&2; exit 2 ;; esac
export KV_CHAOS_MODE=$mode KV_CHAOS_SEEDS=$seeds
start=$(date +%s)
status=0
cargo test "${profile[@]}" --test chaos -- --ignored --exact chaos_by_hand --nocapture --test-threads 1 2>&1 |
  grep --line-buffered -v -E '^(running [0-9]+ test|test result:|$)' || status=$?
echo "wall time: $(( $(date +%s) - start ))s"
# pipefail: the pipeline fails with cargo's status when the test fails.
exit "$status"
