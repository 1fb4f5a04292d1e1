#!/usr/bin/env bash
# Installs everything mfad needs to build, run and test on Debian 12 (as root). Idempotent.
set -euo pipefail
packages=(
  # build
  build-essential cmake pkg-config clang-14 libclang-rt-14-dev clang-format-14
  libpam0g-dev libsystemd-dev libsqlite3-dev libssl-dev libqrencode-dev libcurl4-openssl-dev
  libhiredis-dev libinih-dev nlohmann-json3-dev libcmocka-dev
  # run and test
  dbus dbus-daemon systemd sqlite3 util-linux procps
  libpam-wrapper libpamtest0-dev pamtester python3 python3-pytest python3-pexpect python3-dbusmock
  redis-server openssl openssh-server openssh-client sudo expect oathtool
  # the enrollment QR code's SVG, rasterised and decoded back to its URI
  zbar-tools librsvg2-bin
  # line coverage of the ASan tiers (test-all.sh's coverage tier)
  gcovr
  # polkit: its bus policy and the DTD that validates systemd/org.mfad1.policy (with xmllint)
  polkitd libxml2-utils
  # the metrics file parsed as Prometheus reads it (tests/integration/test_rollout_tools.py)
  python3-prometheus-client
  # benchmarks, and the import tests' real google-authenticator files: the modules we compare
  # against and import from
  libpam-google-authenticator libpam-oath
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
fi
