#!/usr/bin/env bash
# redis-py-suite.sh: runs redis-py's own command tests (tests/test_commands.py)
# for the families kvstore has (strings, keys, expiry, server and connection)
# against a kvstore server, over RESP2 and RESP3.
#
#   scripts/redis-py-suite.sh [PYTEST ARG ...]
#
# Gets the source of the installed redis-py (pip download --no-binary; cached
# under target/redis-py-suite; installs redis-py and pytest with pip if they
# are missing), starts a kvstore on a free loopback port (lib/server.sh), and
# runs the tests whose names the families below select, less the ones on the
# skip list, each group with its reason. Exits 1 if any of them fails.
# Stops only the server it started.
#
# Knobs: SERVER=path (as redis-tcl.sh), ALL=1 skips nothing, WORK=dir keeps
# the run's outputs there (default: a temp dir, removed).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

# The tests run: test_commands.py's names of the families kvstore has
# (a Python regexp, matched whole against the test's name).
families='test_(
  append|decr|decrby|get_and_set|getdel|getex.*|getitem.*|getrange|getset|incr|incrby|incrbyfloat
  |mget|mset|msetnx|psetex.*|set_[a-z_]*|setex|setnx|setrange|strlen|substr|binary_get_set|delitem
  |copy.*|delete.*|unlink.*|exists.*|keys|randomkey|rename|renamenx|type|scan|scan_type|scan_iter|dbsize
  |expire.*|pexpire.*|ttl.*|pttl.*|expiretime|pexpiretime|persist
  |client_(list|info|list_types_not_replica|list_client_id|id|getname|setname|setinfo.*|kill.*|list_after_client_setname|no_evict|no_touch)
  |config_(get|get_multi_params|resetstat|set|set_multi_params)
  |echo|info|info_multi_sections|lastsave|reset|ping|quit|role|select|time|bgsave|memory_usage|memory_help
  |command|command_count|command_docs|command_list|command_getkeys|22_info|case_insensitive_command_names
  |hello_not|never_decode_option|empty_response_option|large_responses|floating_point_encoding|response_callbacks
)'

# Tests of those families that cannot pass, with the reason ('#' lines).
skip_list() {
  cat <<'EOF'
# Other data types: kvstore answers their commands with Redis's "unknown command".
test_type
test_scan_type
test_floating_point_encoding
# One database: SELECT and COPY ... DB take only 0.
test_select
test_copy_to_another_database
# No ACL users (only the default one), no Lua (EVAL).
test_client_kill_filter_by_user
test_command_getkeys
# kvstore has its commands only: these want at least 100 (or 300 with subcommands).
test_command
test_command_count
test_command_list
# Redis's own settings (maxmemory eviction, hash-max-listpack-entries...).
test_config_get_multi_params
test_config_set_multi_params
# They connect to localhost:6379, whatever --redis-url says.
test_client_setinfo
test_client_setinfo_with_driver_info
EOF
}

py=python3
if ! $py -c 'import redis, pytest' 2>/dev/null; then
  echo "redis-py-suite: installing redis-py and pytest (pip)" >&2
  $py -m pip install -q redis pytest || $py -m pip install -q --break-system-packages redis pytest
fi
version=$($py -c 'import redis; print(redis.__version__)')
cache="$root/target/redis-py-suite"
src="$cache/redis-$version"
if [ ! -d "$src/tests" ]; then
  mkdir -p "$cache"
  $py -m pip download -q --no-binary :all: --no-deps -d "$cache" "redis==$version"
  tar xzf "$cache/redis-$version.tar.gz" -C "$cache"
fi

. "$root/scripts/lib/server.sh"
kvstore_session kvstore-redis-py

# The selection, by name, from the collected tests (parametrized ones run whole).
skips=$([ "${ALL:-0}" = 1 ] || skip_list | grep -v '^#' | paste -sd'|' -)
(cd "$src" && $py -m pytest tests/test_commands.py --collect-only -q -p no:cacheprovider 2>/dev/null) |
  sed -n 's/\[.*//; /::test_/p' | sort -u |
  FAMILIES="$families" SKIPS="$skips" $py -c '
import os, re, sys
fam = re.compile(re.sub(r"\s", "", os.environ["FAMILIES"]))
skip = set(os.environ["SKIPS"].split("|"))
for line in sys.stdin:
    name = line.strip().rsplit("::", 1)[-1]
    if fam.fullmatch(name) and name not in skip:
        print(line.strip())
' >"$work/tests.txt"
echo "redis-py $version: $(wc -l <"$work/tests.txt") tests of test_commands.py" >&2

status=0
for protocol in 2 3; do
  out="$work/resp$protocol.out"
  rc=0
  # shellcheck disable=SC2046
  (cd "$src" && timeout 600 $py -m pytest $(cat "$work/tests.txt") -q -p no:cacheprovider --tb=short \
    --redis-url="redis://127.0.0.1:$kv_port/0" --protocol="$protocol" "$@") >"$out" 2>&1 || rc=$?
  [ "$rc" = 0 ] || status=1
  echo "RESP$protocol: $(tail -1 "$out" | tr -d '=')"
  grep -E '^FAILED|^ERROR' "$out" | sed 's/^/    /' || true
done
exit $status
