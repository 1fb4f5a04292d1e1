#!/bin/sh
# PAM login latency: pam_mfa.so (real mfad on a private bus) beside pam_google_authenticator and
# pam_oath, in-process and one process per login. As root; the build tree is MFA_BUILD_DIR
# (default: <repo>/build). Arguments go to bench_pam.py (--users N, --json FILE, --check).
set -eu
here=$(dirname "$(readlink -f "$0")")
exec /usr/bin/python3 "$here/bench_pam.py" "$@"
