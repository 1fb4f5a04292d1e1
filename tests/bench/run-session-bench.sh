#!/usr/bin/env bash
# The session benchmark: a private system bus, the real mfad (SQLite on disk: every reply waits
# for the fdatasync of its commit), and CLIENTS concurrent PAM-like clients each running
# OpenSession + CloseSession (the leader is the client itself, so the liveness check reads
# /proc). Prints p50, p99 and max of each method as seen by the client (bus round trip
# included). Run as root.
#
#   tests/bench/run-session-bench.sh [BUILD_DIR]
#   env: SESSIONS=2000 CLIENTS=1 STATE_PARENT=/var/tmp MFAD=... BENCH_BIN_DIR=...
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
mfad=${MFAD:-$build/daemon/mfad}
bench_bin=${BENCH_BIN_DIR:-$build/tests/bench}
sessions=${SESSIONS:-2000}
clients=${CLIENTS:-1}
for f in "$mfad" "$bench_bin/mfad-bench-sessions"; do
  [[ -x $f ]] || { echo "run-session-bench: $f is not built" >&2; exit 1; }
done

source "$repo/tests/bench/bench-env.sh"

start_bench_mfad "[Sessions]\nMaxPerUser=1000"

echo "running $clients clients over $sessions sessions (durable: fdatasync before each reply, $(df --output=source "$work" | tail -1))..."
status=0
"$bench_bin/mfad-bench-sessions" --bus-address "$address" --sessions "$sessions" \
  --clients "$clients" || status=$?
stop_bench_mfad || status=1
exit "$status"
