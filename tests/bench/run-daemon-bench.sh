#!/usr/bin/env bash
# The daemon benchmark: a private system bus, a database seeded with USERS TOTP enrollments, the
# real mfad (SQLite on disk: every reply waits for the fdatasync of its commit), and CLIENTS concurrent
# PAM-like clients each running BeginAuthentication + Verify + EndAuthentication with a valid code.
# Prints logins/s, p50 and p99. Run as root (the PAM-side methods are root's).
#
#   tests/bench/run-daemon-bench.sh [BUILD_DIR]
#   env: USERS=20000 CLIENTS=16 STATE_PARENT=/var/tmp MFAD=... BENCH_BIN_DIR=...
#        ROUNDS=R: each user logs in R times (codes of R successive steps; TOTP Window=R), so that
#          after the first round mfad's user cache answers instead of NSS (1: one login per user)
#        PERF_DATA=FILE: `perf record` (PERF_FLAGS, default -g) of mfad during the login run, into FILE
#        STRACE_OUT=FILE: `strace -c` (or STRACE_FLAGS) of mfad during the login run, into FILE
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
mfad=${MFAD:-$build/daemon/mfad}
bench_bin=${BENCH_BIN_DIR:-$build/tests/bench}
users=${USERS:-20000}
clients=${CLIENTS:-16}
rounds=${ROUNDS:-1}
for f in "$mfad" "$bench_bin/mfad-bench-seed" "$bench_bin/mfad-bench-login"; do
  [[ -x $f ]] || { echo "run-daemon-bench: $f is not built" >&2; exit 1; }
done

source "$repo/tests/bench/bench-env.sh"

# mfad keys state by account and refuses names NSS does not know (docs/security-model.md,
# "Accounts, not names"): the bench users are real users (no home, no shell, no password), created
# when missing and left in place for the next run. Creating 20000 takes a while, once.
missing=$(comm -13 <(getent passwd | cut -d: -f1 | sort) \
  <(for ((i = 0; i < users; i++)); do echo "mfabench$i"; done | sort))
if [[ -n $missing ]]; then
  echo "creating $(wc -w <<<"$missing") bench users..."
  for name in $missing; do
    useradd --no-create-home --no-user-group --gid nogroup --shell /usr/sbin/nologin "$name"
  done
fi

echo "seeding $users users..."
"$bench_bin/mfad-bench-seed" --state-dir "$work/state" --key-file "$work/master.key" \
  --users "$users"

if ((rounds > 1)); then
  start_bench_mfad "[TOTP]\nWindow=$rounds"
else
  start_bench_mfad
fi

# Anchors measured in the same run, on the same disk and bus: what one fsync'd commit costs, and
# the floor of three bus round trips per login (Peer.Ping, answered by sd-bus without our code).
t0=$(date +%s%N)
dd if=/dev/zero of="$work/fsync-probe" bs=4k count=200 oflag=dsync status=none
t1=$(date +%s%N)
echo "anchor: disk $((200 * 1000000000 / (t1 - t0 + 1))) fsync'd 4 KiB writes/s"
rm -f "$work/fsync-probe"
ping_cpu0=$(cpu_ms "$mfad_pid")
ping=$("$bench_bin/mfad-bench-login" --bus-address "$address" --users "$users" \
  --clients "$clients" --rounds "$rounds" --ping)
ping_cpu=$(($(cpu_ms "$mfad_pid") - ping_cpu0))
sed 's/^/anchor: bus, 3 round trips per login: /' <<<"$ping"
# What answering those three pings costs mfad's own process (sd-bus, the loop, the kernel's
# socket work and wake-ups), with no code of mfad's in the answer: the CPU floor of a login.
echo "anchor: mfad cpu per ping-login: $((ping_cpu * 1000 / (users * rounds))) us"
pings_per_s=$(sed -n 's/^pings\/s=\([0-9]*\) .*/\1/p' <<<"$ping")

logins=$((users * rounds))
echo "running $clients clients over $logins logins ($users users x $rounds) (durable: fdatasync before each reply, $(df --output=source "$work" | tail -1))..."
status=0
observer=
if [[ -n ${PERF_DATA:-} ]]; then
  perf record -q ${PERF_FLAGS:--g} -o "$PERF_DATA" -p "$mfad_pid" 2>/dev/null &
  observer=$!
elif [[ -n ${STRACE_OUT:-} ]]; then
  strace ${STRACE_FLAGS:--c} -f -o "$STRACE_OUT" -p "$mfad_pid" 2>/dev/null &
  observer=$!
fi
[[ -n $observer ]] && sleep 0.5
mfad_cpu0=$(cpu_ms "$mfad_pid") bus_cpu0=$(cpu_ms "$bus_pid") t0=$(date +%s%N)
out=$("$bench_bin/mfad-bench-login" --bus-address "$address" --users "$users" \
  --clients "$clients" --rounds "$rounds") || status=$?
t1=$(date +%s%N)
echo "$out"
mfad_cpu=$(($(cpu_ms "$mfad_pid") - mfad_cpu0))
logins_per_s=$(sed -n 's/^logins\/s=\([0-9]*\) .*/\1/p' <<<"$out")
if [[ -n $observer ]]; then
  kill -INT "$observer"
  wait "$observer" || true
fi
echo "cpu during the run: mfad $mfad_cpu ms," \
  "dbus-daemon $(($(cpu_ms "$bus_pid") - bus_cpu0)) ms, of $(((t1 - t0) / 1000000)) ms wall on $(nproc) cores"
# The issue-21 targets, each a ratio or a cost within this run (docs/operations.md, "Performance").
echo "mfad cpu per login: $((mfad_cpu * 1000 / logins)) us (target <= 90 us)"
if [[ -n $logins_per_s && -n $pings_per_s && $pings_per_s -gt 0 ]]; then
  echo "throughput: $logins_per_s logins/s = $((logins_per_s * 100 / pings_per_s)) % of the bus" \
    "floor's $pings_per_s ping-logins/s (target >= 60 %)"
fi
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
stop_bench_mfad || status=1
exit "$status"
