#!/usr/bin/env bash
# The session benchmark: a private system bus, the real mfad (SQLite synchronous=FULL, on disk:
# every commit is fsync'd), and CLIENTS concurrent PAM-like clients each running OpenSession +
# CloseSession (the leader is the client itself, so the liveness check reads /proc). Prints p50,
# p99 and max of each method as seen by the client (bus round trip included). Run as root.
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

# On a real disk rather than a tmpfs, so that fsync costs what it costs.
work=$(mktemp -d "${STATE_PARENT:-/var/tmp}/mfad-bench.XXXXXX")
chmod 0755 "$work"
bus_pid=
mfad_pid=
cleanup() {
  [[ -n $mfad_pid ]] && kill "$mfad_pid" 2>/dev/null && wait "$mfad_pid" 2>/dev/null || true
  [[ -n $bus_pid ]] && kill "$bus_pid" 2>/dev/null && wait "$bus_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path=$work/system_bus_socket</listen>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>
  <limit name="max_replies_per_connection">50000</limit>
</busconfig>
CONF
dbus-daemon --config-file="$work/bus.conf" --nofork --nopidfile --print-address=1 \
  >"$work/bus.address" 2>"$work/bus.log" &
bus_pid=$!
address=unix:path=$work/system_bus_socket
for _ in $(seq 100); do [[ -s $work/bus.address ]] && break; sleep 0.05; done
[[ -s $work/bus.address ]] || { echo "dbus-daemon did not start" >&2; cat "$work/bus.log" >&2; exit 1; }

cat >"$work/mfad.conf" <<CONF
[Daemon]
StateDirectory=$work/state
KeyFile=$work/master.key
[Sessions]
MaxPerUser=1000
CONF
chmod 0644 "$work/mfad.conf"
"$mfad" --config "$work/mfad.conf" --bus-address "$address" >"$work/mfad.log" 2>&1 &
mfad_pid=$!
for _ in $(seq 200); do
  busctl --address="$address" status org.mfad1 >/dev/null 2>&1 && break
  kill -0 "$mfad_pid" 2>/dev/null || { echo "mfad exited" >&2; cat "$work/mfad.log" >&2; exit 1; }
  sleep 0.05
done

echo "running $clients clients over $sessions sessions (synchronous=FULL, $(df --output=source "$work" | tail -1))..."
status=0
"$bench_bin/mfad-bench-sessions" --bus-address "$address" --sessions "$sessions" \
  --clients "$clients" || status=$?
kill -TERM "$mfad_pid"
wait "$mfad_pid" || { echo "mfad exited with $?" >&2; status=1; }
mfad_pid=
grep -o "group commit: .*" "$work/mfad.log" || true
exit "$status"
