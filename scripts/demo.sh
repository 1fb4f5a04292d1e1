#!/usr/bin/env bash
# The main job, from a clean checkout on Debian 12, as root: install, build, start mfad on a
# private system bus with the embedded SQLite default, enroll a user with mfactl (QR code in the
# terminal), and log in through the real pam_mfa.so (libpam via pam_wrapper + pamtester) with a
# TOTP code. Everything runs in a temporary directory and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
user=mfa-demo

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "Installing build and runtime dependencies (apt-get)"
bash scripts/deps.sh

step "Building mfad, mfactl and pam_mfa.so"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"

work=$(mktemp -d /tmp/mfad-demo.XXXXXX)
chmod 755 "$work"
cleanup() {
  [[ -n ${mfad_pid:-} ]] && kill "$mfad_pid" 2>/dev/null && wait "$mfad_pid" 2>/dev/null
  [[ -n ${bus_pid:-} ]] && kill "$bus_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

step "Starting a private system bus with mfad's own D-Bus policy"
mkdir -p "$work/system.d"
cp systemd/org.mfad1.conf "$work/system.d/"
# The same configuration as the integration tests' private bus (tests/integration/conftest.py).
sed "s|@SOCKET@|$work/system_bus_socket|; s|@POLICY_DIR@|$work/system.d|" \
  tests/bus/system-bus.conf.in >"$work/bus.conf"
dbus-daemon --config-file="$work/bus.conf" --nofork --nopidfile --print-address=1 >"$work/bus.addr" &
bus_pid=$!
for _ in $(seq 100); do [[ -S $work/system_bus_socket ]] && break; sleep 0.05; done
address="unix:path=$work/system_bus_socket"
echo "bus: $address"

step "Starting mfad (state in SQLite at $work/state/mfad.db, master key created on first start)"
cat >"$work/mfad.conf" <<CONF
[Daemon]
StateDirectory=$work/state
KeyFile=$work/master.key
[TOTP]
Issuer=mfad-demo
CONF
build/daemon/mfad --config "$work/mfad.conf" --bus-address "$address" 2>"$work/mfad.log" &
mfad_pid=$!
for _ in $(seq 200); do
  busctl --address="$address" status org.mfad1 >/dev/null 2>&1 && break
  sleep 0.05
done
busctl --address="$address" get-property org.mfad1 /org/mfad1 org.mfad1.Manager Version

step "Creating the demo account $user"
id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"

mfactl() { build/mfactl/mfactl --bus-address "$address" "$@"; }

step "mfactl enroll totp $user   (scan the QR code with any authenticator app)"
mfactl enroll totp "$user" </dev/null | tee "$work/enroll.txt"
secret=$(grep -o 'otpauth://[^[:space:]]*' "$work/enroll.txt" | head -1 | sed 's/.*[?&]secret=\([A-Z2-7]*\).*/\1/')

step "Confirming the enrollment with the app's current code (computed here by oathtool)"
code=$(oathtool --totp -b "$secret")
echo "code: $code"
mfactl confirm totp "$user" "$code"

step "mfactl backup-codes $user   (printed once; stored only as keyed hashes)"
mfactl backup-codes "$user"   # root is an admin: no step-up code needed

step "mfactl status $user"
mfactl status "$user"

step "A real login through libpam and pam_mfa.so (pamtester with pam_wrapper)"
mkdir -p "$work/pam.d"
cat >"$work/pam.d/demo" <<PAM
auth     required $repo/build/pam_module/pam_mfa.so bus_address=$address
account  required pam_permit.so
PAM
echo "auth required pam_deny.so" >"$work/pam.d/other"
pam() {
  LD_PRELOAD=libpam_wrapper.so PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR="$work/pam.d" \
    pamtester -v demo "$user" authenticate
}
# The confirmation used the current time step, and replay protection refuses a step twice: the
# login uses the next one (inside the default window of ±1 step).
code=$(oathtool --totp -b -N 'now + 30 seconds' "$secret")
echo "Verification code: $code  (window: the demo config accepts ±1 step)"
printf '%s\n' "$code" | pam 2>&1
echo "LOGIN OK: password-less demo stack, second factor verified by mfad"

step "The same code again is a replay and is refused; so is a wrong code"
printf '%s\n%s\n%s\n' "$code" 000000 111111 | pam 2>&1 || echo "refused, as it must be"

step "mfactl audit (hash-chained) and audit verify"
mfactl audit --limit 12
mfactl audit verify
echo
echo "Done. Everything ran under $work and is removed now."
