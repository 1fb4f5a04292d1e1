# Shared by the benchmark scripts (sourced): a work directory on a real disk, removed on exit, and a
# private system bus with a permissive policy (the benchmarks measure mfad, not the policy).
# Sets: work, address, bus_pid, mfad_pid (for start_bench_mfad).

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

# start_bench_mfad [EXTRA_CONFIG_LINES]: writes mfad.conf with the state and key in $work, starts
# the real mfad on the private bus and waits for its name.
start_bench_mfad() {
  {
    printf '[Daemon]\nStateDirectory=%s\nKeyFile=%s\n' "$work/state" "$work/master.key"
    [[ $# -gt 0 ]] && printf '%b\n' "$1"
  } >"$work/mfad.conf"
  chmod 0644 "$work/mfad.conf"
  "$mfad" --config "$work/mfad.conf" --bus-address "$address" >"$work/mfad.log" 2>&1 &
  mfad_pid=$!
  for _ in $(seq 1200); do
    busctl --address="$address" status org.mfad1 >/dev/null 2>&1 && return 0
    kill -0 "$mfad_pid" 2>/dev/null || { echo "mfad exited" >&2; cat "$work/mfad.log" >&2; exit 1; }
    sleep 0.05
  done
  echo "mfad did not take its bus name" >&2
  exit 1
}

# cpu_ms PID: user+system CPU time the process has used so far, in milliseconds.
cpu_ms() {
  local -a f
  read -ra f <"/proc/$1/stat"
  # Fields 14 and 15 (utime, stime) in clock ticks; the command name (field 2) has no spaces here.
  echo $(((f[13] + f[14]) * 1000 / $(getconf CLK_TCK)))
}

# stop_bench_mfad: SIGTERM, exit status checked; prints mfad's group-commit statistics.
stop_bench_mfad() {
  kill -TERM "$mfad_pid"
  local rc=0
  wait "$mfad_pid" || rc=$?
  mfad_pid=
  grep -o "group commit: .*" "$work/mfad.log" || true
  if ((rc != 0)); then
    echo "mfad exited with $rc" >&2
    return 1
  fi
}
