#!/usr/bin/env bash
# run-daemon-bench.sh with its USERS bench users in a private mount namespace's /etc/passwd (a
# copy with them added) instead of useradd on the host: for hosts where the bench may not create
# accounts. Same arguments and environment as run-daemon-bench.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
users=${USERS:-20000}
if [[ ${MFA_BENCH_IN_NAMESPACE:-} != 1 ]]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  cp /etc/passwd "$tmp/passwd"
  # Names the host already has keep their entry (getpwnam finds the first).
  awk -v n="$users" 'BEGIN { for (i = 0; i < n; i++) printf "mfabench%d:x:%d:65534:mfa bench:/nonexistent:/usr/sbin/nologin\n", i, 400000 + i }' >>"$tmp/passwd"
  chmod 0644 "$tmp/passwd"
  MFA_BENCH_IN_NAMESPACE=1 unshare --mount --propagation private \
    sh -c 'mount --bind "$0" /etc/passwd && exec "$@"' "$tmp/passwd" "$here/run-daemon-bench-ns.sh" "$@"
  exit
fi
exec "$here/run-daemon-bench.sh" "$@"
