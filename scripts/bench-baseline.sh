#!/usr/bin/env bash
# Saves or compares criterion baselines of kvstore's benches, so a
# regression shows as a percentage next to each figure.
#
#   scripts/bench-baseline.sh save NAME [ARGS...]     run every bench, store the results as baseline NAME
#   scripts/bench-baseline.sh compare NAME [ARGS...]  run every bench, report the change against baseline NAME
#
# Typical use: `save main` on the commit you start from, make the change,
# then `compare main`. Criterion prints "Performance has regressed" (or
# "has improved", or "No change in performance detected") under each figure.
# ARGS go to criterion: a name filter (a regex, e.g. `store_1m/get` or
# `execute`; benches that do not match are skipped) and options such as
# `--measurement-time 5` for steadier figures.
#
# Each bench file is run as `cargo bench --bench <file> -- --save-baseline
# NAME` or `-- --baseline NAME`. Baselines live in
# $CARGO_TARGET_DIR/criterion (target/criterion by default): keep the same
# target dir between save and compare. Runs are short (1 s warm-up, 2 s
# measurement per benchmark, set in benches/util/mod.rs); on a busy machine
# nanosecond figures move by 20% between identical runs, so compare twice
# before believing a change that size.
set -euo pipefail
cd "$(dirname "$0")/.."

BENCHES=(protocol store log)

usage() {
  sed -n '2,21p' "$0" >&2
  exit 2
}

[ $# -ge 2 ] || usage
mode=$1
name=$2
shift 2
case "$mode" in
  save) flag=--save-baseline ;;
  compare) flag=--baseline ;;
  *) usage ;;
esac

for b in "${BENCHES[@]}"; do
  echo "== cargo bench --bench $b -- $flag $name $*" >&2
  cargo bench --bench "$b" -- "$flag" "$name" "$@"
done
