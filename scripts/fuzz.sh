#!/usr/bin/env bash
# Coverage-guided fuzzing of kvstore's parsers, codecs, log replay and a
# whole node (fuzz/, cargo-fuzz with libFuzzer): every target for SECONDS
# each, then a table of executions per target.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...] [-- LIBFUZZER_FLAGS...]
#
# SECONDS defaults to 20 (what CI runs); TARGETs default to all of them
# (`cargo fuzz list`). Flags after `--` go to libFuzzer, e.g. `-- -jobs=2
# -workers=2`, or `-- -max_len=65536`.
#
# Builds with the machine's stable toolchain: `--sanitizer none` (the code
# is safe Rust but for a CPU prefetch hint and libc calls with no input:
# AddressSanitizer would find nothing and halve the speed) needs no
# unstable flag; debug assertions and overflow checks are on, so an
# overflow is a crash as a panic is. Installs cargo-fuzz if it is missing.
#
# Each target grows its own corpus in fuzz/target/corpus/<target> (kept
# between runs, not committed), starting from the committed seeds in
# fuzz/corpus/<target>. A crash is saved in fuzz/artifacts/<target>/ and
# makes the script fail once every target has run; replay it with
#   cargo fuzz run -s none -a <target> fuzz/artifacts/<target>/<file>
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=20
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi
targets=()
while [[ $# -gt 0 && $1 != -- ]]; do
  targets+=("$1")
  shift
done
[[ ${1:-} == -- ]] && shift
extra=("$@")

if ! command -v cargo-fuzz >/dev/null; then
  echo "installing cargo-fuzz (cargo install --locked)" >&2
  cargo install cargo-fuzz --locked --quiet
fi
flags=(--sanitizer none --debug-assertions)
[[ ${#targets[@]} -gt 0 ]] || mapfile -t targets < <(cargo fuzz list)

start=$(date +%s)
cargo fuzz build "${flags[@]}"
echo "fuzz: built ${#targets[@]} targets in $(($(date +%s) - start)) s" >&2

logs=fuzz/target/logs
mkdir -p "$logs"
passed=0
failed=()
rows=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/target/corpus/$t" "fuzz/corpus/$t"
  log="$logs/$t.log"
  # -timeout: an input that runs 10 s is a hang, a finding like a crash.
  if cargo fuzz run "${flags[@]}" "$t" "fuzz/target/corpus/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 "${extra[@]}" >"$log" 2>&1; then
    result=ok
    passed=$((passed + 1))
  else
    result=FAILED
    failed+=("$t")
  fi
  runs=$(awk -F: '/stat::number_of_executed_units/ { n += $NF } END { print n + 0 }' "$log")
  rate=$(awk -F: '/stat::average_exec_per_sec/ { n += $NF } END { print n + 0 }' "$log")
  corpus=$(find "fuzz/target/corpus/$t" -type f | wc -l)
  rows+=("$(printf '%-14s %12s %10s %8s  %s' "$t" "$runs" "$rate" "$corpus" "$result")")
  if [[ $result != ok ]]; then
    grep -E -A2 "panicked at|ERROR: libFuzzer|Test unit written" "$log" | head -n 12 >&2 || true
  fi
done

printf '%-14s %12s %10s %8s  %s\n' target executions "exec/s" corpus result
printf '%s\n' "${rows[@]}"
echo "fuzz: ${seconds} s per target, $(($(date +%s) - start)) s in all; logs in $logs/"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz: crashes in ${failed[*]}: see fuzz/artifacts/<target>/ and the logs" >&2
fi
echo "fuzz: ${passed} passed, ${#failed[@]} failed"
[[ ${#failed[@]} -eq 0 ]]
