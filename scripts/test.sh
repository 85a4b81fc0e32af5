#!/usr/bin/env bash
# Runs kvstore's tests. The integration tests drive the real server with
# real Redis clients, so this first installs what is missing: redis-tools
# (redis-cli, redis-benchmark), redis-server and openssl from Debian's packages,
# and redis-py from PyPI. With no arguments it then runs Redis's own Tcl units
# (scripts/redis-tcl.sh) and redis-py's command tests (scripts/redis-py-suite.sh)
# against the server; with arguments, only `cargo test ARGS`.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-cli >/dev/null && command -v redis-benchmark >/dev/null || need_apt+=(redis-tools)
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v openssl >/dev/null || need_apt+=(openssl)   # the TLS tests drive openssl s_client
command -v ip >/dev/null || need_apt+=(iproute2)       # tests/protected_mode.rs: a client on another host (a netns)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing ${need_apt[*]} (apt-get)" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! python3 -c 'import redis' 2>/dev/null; then
  echo "installing redis-py (pip)" >&2
  # Debian's own Python refuses pip installs outside a venv (PEP 668).
  python3 -m pip install -q redis 2>/dev/null || python3 -m pip install -q --break-system-packages redis
fi

cargo test "$@"
if [ $# -eq 0 ]; then
  # Redis's own Tcl units against the debug server the tests built: every
  # test not on the script's skip list (other data types, Lua, OBJECT...)
  # must pass.
  SERVER=target/debug/kvstore-server scripts/redis-tcl.sh
  # redis-py's own command tests for strings, keys, expiry and server
  # commands (RESP2 and RESP3), less the script's skip list.
  SERVER=target/debug/kvstore-server scripts/redis-py-suite.sh
fi
