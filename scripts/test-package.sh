#!/usr/bin/env bash
# The package tier: what an administrator does with the Debian packages, on a fresh Debian 12.
#
#   1. copies the checkout with packaging/debian as debian/, `apt-get build-dep ./`,
#      `dpkg-buildpackage -us -uc -b` (the changelog's version), then the packages rebuilt as a
#      higher version (+ci1, from the same build tree: -nc) for the upgrade; lintian (no error,
#      no warning that is not overridden with a reason);
#   2. a minimal Debian 12 (mmdebstrap --variant=minbase, plus systemd-sysv to boot it and
#      pamtester, the mirror read from this machine's apt sources; the tarball is cached under
#      /var/cache/mfad-ci), booted with systemd-nspawn, where it runs: `apt-get install ./*.deb`;
#      the unit as systemd runs it (user mfad, the key as a credential, its sandbox);
#      `systemd-analyze verify` and the exposure score of the installed unit; enrollment with
#      mfactl; `pam-auth-update --enable mfa`; logins through the installed /etc/pam.d stack
#      with a password and a TOTP code (pamtester), a wrong code refused, an account without a
#      factor let in; the same over a real ssh (KbdInteractiveAuthentication) and `mfactl
#      terminate` ending that login; the upgrade (state, key and config kept, login again);
#      `apt-get remove` (PAM stack clean, state kept) and `purge` (state gone).
#
# Writes one JUnit file, package.xml, into MFA_RESULTS_DIR (default build/test-results). Needs
# root, no standard input; removes its container and mounts on every exit.
#
#   MFA_PACKAGE_CACHE=DIR   where the minbase tarball and the apt caches live (/var/cache/mfad-ci)
#   MFA_PACKAGE_WORK=DIR    the build tree and logs (/var/tmp/mfad-package: a fixed path, so that
#                           ccache finds the objects of the last run whatever the checkout's path)
#   MFA_PACKAGE_REUSE=1     keep the packages of the last run instead of building, and
#   MFA_PACKAGE_KEEP=1      leave the container running after a failure (local debugging only;
#                           CI sets neither)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
results=${MFA_RESULTS_DIR:-$repo/build/test-results}
cache=${MFA_PACKAGE_CACHE:-/var/cache/mfad-ci}
work=${MFA_PACKAGE_WORK:-/var/tmp/mfad-package}
root=$work/root
suite=bookworm
started=$(date +%s)
export LC_ALL=C.UTF-8
export DEBIAN_FRONTEND=noninteractive

say() { printf '\n--- package: %s (%ds)\n' "$*" "$(($(date +%s) - started))"; }

# --- JUnit: one test case per step; the first failing step ends the run. ---
cases=()
failed=0
current=""
step_started=0
begin() {
  current=$1
  step_started=$(date +%s)
  say "$current"
}
pass() {
  cases+=("<testcase classname=\"package\" name=\"$current\" time=\"$(($(date +%s) - step_started))\"/>")
  current=""
}
# (Control characters, which XML 1.0 forbids, go: a log line may hold a terminal escape.)
xml_escape() {
  tr -d '\000-\010\013\014\016-\037' |
    sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g'
}
write_junit() {
  mkdir -p "$results"
  {
    printf '<testsuite name="package" tests="%d" failures="%d" time="%d">\n' \
      "${#cases[@]}" "$failed" "$(($(date +%s) - started))"
    printf '%s\n' "${cases[@]}"
    printf '</testsuite>\n'
  } >"$results/package.xml"
}
# fail MESSAGE: the current step failed.
fail() {
  echo "package: FAILED: $current: $*" >&2
  failed=1
  local msg
  msg=$(printf '%s' "$*" | xml_escape)
  cases+=("<testcase classname=\"package\" name=\"${current:-setup}\"><failure message=\"$msg\"/></testcase>")
  current=""
  exit 1
}
check() {  # check DESCRIPTION COMMAND...: the command must succeed
  local what=$1
  shift
  "$@" || fail "$what"
}

# --- The container. ---
# Its tree goes, and whatever is still mounted below it (nothing, normally) before it.
remove_root() {
  if [[ -d $root ]]; then
    grep -o " $root[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf --one-file-system "$root"
  fi
}
nspawn_pid=""
init_pid=""
cleanup() {
  local status=$?
  if [[ -n $current ]]; then  # a command failed outside check/fail
    failed=1
    cases+=("<testcase classname=\"package\" name=\"$current\"><failure message=\"command failed (status $status)\"/></testcase>")
  fi
  if [[ ${MFA_PACKAGE_KEEP:-0} == 1 && -n $init_pid ]]; then
    echo "MFA_PACKAGE_KEEP=1: the container runs on: nsenter -t $init_pid -a bash"
    write_junit
    exit 1
  fi
  if [[ -n $init_pid ]] && kill -0 "$init_pid" 2>/dev/null; then
    kill -s SIGRTMIN+4 "$init_pid" 2>/dev/null || true  # poweroff
  fi
  if [[ -n $nspawn_pid ]]; then
    for _ in $(seq 1 30); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.5; done
    kill "$nspawn_pid" 2>/dev/null || true
    wait "$nspawn_pid" 2>/dev/null || true
  fi
  remove_root
  write_junit
  if ((failed)) || ((status)); then
    echo "package tier: FAILED ($(($(date +%s) - started))s)"
    exit 1
  fi
  echo "package tier: passed ($(($(date +%s) - started))s)"
}
trap cleanup EXIT

# Runs a command inside the booted container, as root, with a clean environment.
ct() {
  nsenter -t "$init_pid" -a -- /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

# The mirror this machine uses for Debian 12 (deb822 .sources or one-line .list files).
debian_mirror() {
  /usr/bin/python3 - "$suite" <<'EOF'
import glob, re, sys
suite = sys.argv[1]
found = []
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in re.split(r"\n\s*\n", open(path).read()):
        fields = {}
        for line in stanza.splitlines():
            if line.startswith("#") or line[:1].isspace() or ":" not in line:
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        if "deb" in fields.get("types", "").split() and suite in fields.get("suites", "").split():
            found += fields.get("uris", "").split()
for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        m = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s", line)
        if m and m.group(2) == suite:
            found.append(m.group(1))
found = [u for u in found if u.startswith(("http://", "https://"))]
if not found:
    sys.exit("no apt source serves " + suite)
print(found[0])
EOF
}

# The code of a TOTP secret at a given unix time (oathtool: an independent implementation).
totp_at() { oathtool --totp -b "$1" -N "@$2"; }
# fresh_code SECRET: sets $code to a code for a login: of a time step after every step used so
# far (replay protection) and inside mfad's window (now ±1 step); waits for the next step when
# needed. (It sets a variable rather than printing: a $(...) subshell would lose last_step.)
last_step=0
code=""
fresh_code() {
  local secret=$1 now step
  now=$(date +%s)
  step=$((now / 30))
  if ((step + 1 <= last_step)); then
    sleep $(((last_step - step) * 30 - now % 30 + 1))
    now=$(date +%s)
    step=$((now / 30))
  fi
  ((step > last_step)) || step=$((step + 1))
  last_step=$step
  code=$(totp_at "$secret" $((step * 30)))
}
# A 6-digit code that is none of the codes mfad accepts now.
wrong_code() {
  local secret=$1 now c
  now=$(date +%s)
  local valid
  valid=" $(totp_at "$secret" $((now - 30))) $(totp_at "$secret" "$now") $(totp_at "$secret" $((now + 30))) "
  c=$(printf '%06d' $(((10#$(totp_at "$secret" "$now") + 500000) % 1000000)))
  while [[ $valid == *" $c "* ]]; do c=$(printf '%06d' $(((10#$c + 1) % 1000000))); done
  echo "$c"
}

# pamtester through the container's /etc/pam.d, answers on stdin, one line each.
pam_login() {  # SERVICE USER ANSWERS...
  local service=$1 user=$2
  shift 2
  printf '%s\n' "$@" | ct pamtester -v "$service" "$user" authenticate 2>&1
}

# ===========================================================================================
begin "tools"
apt_needed=(debhelper lintian mmdebstrap systemd-container dpkg-dev oathtool expect
  openssh-client python3)
missing=()
for p in "${apt_needed[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
fi
pass

# ===========================================================================================
begin "build"
remove_root
src=$work/src/mfad
if [[ ${MFA_PACKAGE_REUSE:-0} == 1 && -d $work/v2 ]]; then
  echo "MFA_PACKAGE_REUSE=1: the packages of the last run"
  version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version -o 1 -c 1)
  upgrade_version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
else
rm -rf --one-file-system "$work" && mkdir -p "$work/src" "$work/v1" "$work/v2"
mkdir -p "$src"
# The checkout as it is (tracked and new files, nothing ignored), packaging/debian as debian/.
git ls-files -co --exclude-standard -z | tar -C "$repo" --null -T - -cf - | tar -C "$src" -xf -
cp -r "$src/packaging/debian" "$src/debian"
(cd "$src" && apt-get build-dep -y -qq ./ </dev/null >"$work/build-dep.log" 2>&1) ||
  { tail -20 "$work/build-dep.log"; fail "apt-get build-dep ./"; }
# ccache (when there) keeps a rebuild of unchanged sources short; paths relative to $work. Its
# directory is named: debhelper (compat 13) gives the build a HOME of its own inside the tree,
# and the cache would go with the tree.
if command -v ccache >/dev/null; then
  CCACHE_DIR=$(ccache -k cache_dir)
  export CCACHE_DIR CCACHE_BASEDIR=$work CMAKE_C_COMPILER_LAUNCHER=ccache \
    CMAKE_CXX_COMPILER_LAUNCHER=ccache
fi
(cd "$src" && dpkg-buildpackage -us -uc -b -j"$(nproc)" </dev/null >"$work/build-v1.log" 2>&1) ||
  { tail -40 "$work/build-v1.log"; fail "dpkg-buildpackage (0.1.0)"; }
mv "$work"/src/*.deb "$work"/src/*.changes "$work"/src/*.buildinfo "$work/v1/"
version=$(cd "$src" && dpkg-parsechangelog -S Version)
upgrade_version="$version+ci1"
{
  printf 'mfad (%s) unstable; urgency=medium\n\n  * Rebuilt by the package tier to test upgrades.\n\n' \
    "$upgrade_version"
  printf ' -- mfad developers <mfad@example.org>  %s\n\n' "$(date -R)"
  cat "$src/debian/changelog"
} >"$src/debian/changelog.new"
mv "$src/debian/changelog.new" "$src/debian/changelog"
# The same build tree (-nc): the packages are made again with the new version, nothing recompiles.
(cd "$src" && dpkg-buildpackage -us -uc -b -nc </dev/null >"$work/build-v2.log" 2>&1) ||
  { tail -40 "$work/build-v2.log"; fail "dpkg-buildpackage ($upgrade_version)"; }
mv "$work"/src/*.deb "$work"/src/*.changes "$work"/src/*.buildinfo "$work/v2/"
for d in v1 v2; do
  # The -dbgsym packages stay beside the .changes (lintian reads them), out of the install.
  n=$(find "$work/$d" -name '*.deb' ! -name '*-dbgsym_*' | wc -l)
  ((n == 2)) || fail "$d: expected 2 packages (mfad, libpam-mfa), found $n"
done
fi
ls -l "$work"/v1/*.deb "$work"/v2/*.deb
echo "built $version and $upgrade_version"
pass

# ===========================================================================================
begin "package contents"
mfad_deb=$work/v1/mfad_${version}_$(dpkg --print-architecture).deb
pam_deb=$work/v1/libpam-mfa_${version}_$(dpkg --print-architecture).deb
contents=$(dpkg-deb -c "$mfad_deb"; dpkg-deb -c "$pam_deb")
for f in ./usr/libexec/mfad ./usr/bin/mfactl ./lib/systemd/system/mfad.service \
  ./usr/share/dbus-1/system.d/org.mfad1.conf ./usr/share/dbus-1/system-services/org.mfad1.service \
  ./usr/share/polkit-1/actions/org.mfad1.policy ./usr/share/polkit-1/rules.d/60-mfad.rules \
  ./usr/lib/sysusers.d/mfad.conf ./usr/lib/tmpfiles.d/mfad.conf ./etc/mfad/mfad.conf \
  ./usr/share/bash-completion/completions/mfactl ./usr/share/man/man1/mfactl.1.gz \
  ./usr/share/man/man5/mfad.conf.5.gz ./usr/share/man/man8/mfad.8.gz \
  ./usr/share/man/man8/pam_mfa.8.gz ./usr/share/doc/mfad/copyright \
  ./usr/share/doc/libpam-mfa/copyright ./usr/share/doc/mfad/install.md.gz \
  ./usr/share/pam-configs/mfa "./lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/security/pam_mfa.so"; do
  grep -q " $f\$" <<<"$contents" || fail "no $f in the packages"
done
# Never a question: no debconf templates or config script in either package.
for deb in "$mfad_deb" "$pam_deb"; do
  ctrl=$(dpkg-deb -I "$deb")
  grep -qE '^ +[0-9]+ bytes, +[0-9]+ lines +.*(config|templates) *$' <<<"$ctrl" &&
    fail "$(basename "$deb") has a debconf config or templates"
done
dpkg-deb -I "$mfad_deb" conffiles | grep -qx /etc/mfad/mfad.conf || fail "mfad.conf is no conffile"
dpkg-deb -f "$mfad_deb" Depends | grep -q 'libsqlite3-0' || fail "mfad: no shlibs dependency"
dpkg-deb -f "$pam_deb" Depends | grep -q 'libpam0g' || fail "libpam-mfa: no shlibs dependency"
pass

# ===========================================================================================
begin "lintian"
# The upgrade's packages differ only in their version: lintian reads the first build's.
lintian --info "$work"/v1/*.changes >"$work/lintian.log" 2>&1 || true
cat "$work/lintian.log"
# Counted from the tags printed (E: error, W: warning; overridden ones are not printed).
errors=$(grep -c '^E: ' "$work/lintian.log" || true)
warnings=$(grep -c '^W: ' "$work/lintian.log" || true)
grep -q '^\(running with root\|[EWIPNOX]: \)' "$work/lintian.log" || [[ ! -s $work/lintian.log ]] ||
  fail "lintian did not run: $(head -5 "$work/lintian.log")"
echo "lintian: $errors errors, $warnings warnings"
((errors == 0 && warnings == 0)) || fail "lintian: $errors errors, $warnings warnings"
pass

# ===========================================================================================
begin "minimal Debian 12"
mkdir -p "$cache/archives/partial" "$cache/lists/partial"
tarball=$cache/$suite-minbase.tar
# A month-old tarball is made again: its packages would lag too far behind the mirror.
if [[ -f $tarball ]] && [[ -z $(find "$tarball" -mtime +30) ]] && tar -tf "$tarball" ./usr/sbin/init >/dev/null 2>&1; then
  echo "cached: $tarball"
else
  mirror=$(debian_mirror) || fail "no Debian mirror in this machine's apt sources"
  echo "mmdebstrap from $mirror"
  # (mmdebstrap picks the output format by the name's extension: .tar for a tarball.)
  mmdebstrap --variant=minbase --include=systemd-sysv,pamtester "$suite" "$tarball.new.tar" \
    "$mirror" </dev/null >"$work/mmdebstrap.log" 2>&1 ||
    { tail -20 "$work/mmdebstrap.log"; rm -f "$tarball.new.tar"; fail "mmdebstrap"; }
  mv "$tarball.new.tar" "$tarball"
fi
mkdir -p "$root"
tar -C "$root" -xf "$tarball"
echo "mfad-ci" >"$root/etc/hostname"
# The container shares the host's network: its sshd gets a port nothing on this host listens on.
for _ in $(seq 1 50); do
  ssh_port=$((20000 + RANDOM % 20000))
  (exec 3<>"/dev/tcp/127.0.0.1/$ssh_port") 2>/dev/null || break
done
pass

# ===========================================================================================
begin "boot"
mkdir -p "$work/debs"
rm -rf "$work/debs" && mkdir -p "$work/debs/v2"
cp "$work"/v1/mfad_*.deb "$work"/v1/libpam-mfa_*.deb "$work/debs/"
cp "$work"/v2/mfad_*.deb "$work"/v2/libpam-mfa_*.deb "$work/debs/v2/"
systemd-nspawn -D "$root" --boot --register=no --keep-unit --console=passive -q \
  --machine="mfad-ci-$$" --bind-ro="$work/debs:/debs" \
  --bind="$cache/archives:/var/cache/apt/archives" --bind="$cache/lists:/var/lib/apt/lists" \
  </dev/null >"$work/nspawn.log" 2>&1 &
nspawn_pid=$!
for _ in $(seq 1 100); do
  init_pid=$(pgrep -P "$nspawn_pid" 2>/dev/null | head -1 || true)
  [[ -n $init_pid ]] && break
  sleep 0.2
done
[[ -n $init_pid ]] || { cat "$work/nspawn.log"; fail "systemd-nspawn did not start"; }
# systemctl answers once the container's systemd has its own socket; then it waits for the boot.
state=""
for _ in $(seq 1 90); do
  state=$(timeout 90 nsenter -t "$init_pid" -a systemctl is-system-running --wait 2>&1 || true)
  [[ $state == running || $state == degraded ]] && break
  sleep 1
done
[[ $state == running || $state == degraded ]] || { cat "$work/nspawn.log"; fail "boot: $state"; }
ct systemctl --failed --no-legend || true
pass

# ===========================================================================================
begin "install"
ct apt-get update -qq >"$work/apt-update.log" 2>&1 || { cat "$work/apt-update.log"; fail "apt-get update"; }
ct sh -c 'cd /debs && apt-get install -y ./mfad_*.deb ./libpam-mfa_*.deb' </dev/null \
  >"$work/install.log" 2>&1 || { tail -30 "$work/install.log"; fail "apt-get install ./*.deb"; }
grep '^mfad:\|^libpam-mfa:' "$work/install.log" || true
grep -q 'mfactl enroll totp' "$work/install.log" || fail "the postinst does not print the next step"
grep -q 'pam-auth-update --enable mfa' "$work/install.log" || fail "no word on enabling the profile"
pass

# ===========================================================================================
begin "installed system"
check "no user mfad" ct id mfad
check "no group mfa-admin" ct getent group mfa-admin
[[ $(ct stat -c '%U:%G %a' /etc/mfad) == "root:mfad 750" ]] || fail "/etc/mfad: $(ct stat -c '%U:%G %a' /etc/mfad)"
[[ $(ct stat -c '%U:%G %a %s' /etc/mfad/master.key) == "root:root 600 32" ]] ||
  fail "master.key: $(ct stat -c '%U:%G %a %s' /etc/mfad/master.key)"
check "mfad is not active" ct systemctl is-active -q mfad
check "mfad is not enabled" ct systemctl is-enabled -q mfad
pid=$(ct systemctl show -P MainPID mfad)
mfad_uid=$(ct id -u mfad)
uids=$(ct awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$pid/status")
[[ $uids == "$mfad_uid $mfad_uid $mfad_uid $mfad_uid" ]] || fail "mfad runs as uids $uids, not $mfad_uid"
[[ $(ct stat -c '%U:%G %a' /var/lib/mfad) == "mfad:mfad 700" ]] || fail "/var/lib/mfad: $(ct stat -c '%U:%G %a' /var/lib/mfad)"
# Non-dumpable (prctl): /proc/PID/* belong to root although mfad runs as mfad; no core file.
[[ $(ct stat -c %U "/proc/$pid/status") == root ]] ||
  fail "mfad is dumpable: $(ct ls -l "/proc/$pid/status")"
ct grep -q '^Max core file size *0 *0 ' "/proc/$pid/limits" || fail "mfad may dump core"
# Its only capability is CAP_KILL (bit 5).
[[ $(ct awk '/^CapEff/ {print $2}' "/proc/$pid/status") == 0000000000000020 ]] ||
  fail "capabilities: $(ct grep Cap "/proc/$pid/status")"
check "mfad --check-config" ct /usr/libexec/mfad --check-config
ct grep -rl pam_mfa /etc/pam.d && fail "installing enabled pam_mfa"
pass

# ===========================================================================================
begin "systemd-analyze"
verify=$(ct systemd-analyze verify --man=no mfad.service 2>&1) || fail "verify: $verify"
[[ -z $verify ]] || fail "systemd-analyze verify: $verify"
ct systemd-analyze security --no-pager mfad.service >"$work/exposure-live.log" 2>&1 || true
ct systemd-analyze security --offline=yes --no-pager /lib/systemd/system/mfad.service \
  >"$work/exposure.log" 2>&1 || true
grep -v '✓' "$work/exposure.log" || true
score=$(grep -oP 'Overall exposure level for mfad.service: \K[0-9.]+' "$work/exposure.log" || true)
live=$(grep -oP 'Overall exposure level for mfad.service: \K[0-9.]+' "$work/exposure-live.log" || true)
echo "exposure of the installed unit: $score offline, $live on the running system"
[[ -n $score ]] && awk -v s="$score" 'BEGIN {exit !(s <= 1.6)}' || fail "exposure $score > 1.6"
pass

# ===========================================================================================
begin "enroll"
ct useradd -m -s /bin/bash alice
ct useradd -m -s /bin/bash bob
ct sh -c 'echo alice:alice-password-1 | chpasswd && echo bob:bob-password-1 | chpasswd'
# alice enrolls herself, as the README says, through the shipped bus policy.
enroll=$(ct runuser -u alice -- mfactl --json enroll totp) || fail "mfactl enroll totp (alice)"
secret=$(/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])' <<<"$enroll")
[[ -n $secret ]] || fail "no secret in $enroll"
fresh_code "$secret"
check "mfactl confirm totp" ct runuser -u alice -- mfactl confirm totp alice "$code"
ct mfactl status alice
ct mfactl --json status alice | grep -q '"totp"' || fail "alice has no active totp"
pass

# ===========================================================================================
begin "enable the profile"
check "pam-auth-update --enable mfa" ct pam-auth-update --enable mfa
ct grep -q '^auth[[:space:]].*pam_mfa\.so nullok' /etc/pam.d/common-auth || fail "common-auth: $(ct cat /etc/pam.d/common-auth)"
ct grep -q 'pam_mfa\.so' /etc/pam.d/common-session || fail "no session line in common-session"
ct grep -q 'pam_mfa\.so' /etc/pam.d/common-session-noninteractive &&
  fail "pam_mfa in common-session-noninteractive"
pass

# ===========================================================================================
begin "login with password and code"
fresh_code "$secret"
out=$(pam_login login alice alice-password-1 "$code") || fail "login refused: $out"
grep -q 'successfully authenticated' <<<"$out" || fail "login: $out"
pass

begin "wrong code refused"
bad=$(wrong_code "$secret")
if out=$(pam_login login alice alice-password-1 "$bad" "$bad" "$bad"); then
  fail "a wrong code was accepted: $out"
fi
grep -q 'successfully authenticated' <<<"$out" && fail "a wrong code was accepted: $out"
grep -qi 'invalid code\|authentication failure\|maximum' <<<"$out" || fail "unexpected: $out"
# The password alone is no login for an enrolled account.
if out=$(pam_login login alice alice-password-1); then fail "no code, yet logged in: $out"; fi
pass

begin "account without a factor"
# The profile's nullok: bob (and root) log in as before until they enroll.
out=$(pam_login login bob bob-password-1) || fail "bob (no factor) refused: $out"
pass

# ===========================================================================================
begin "ssh login and terminate"
# A port of our own before sshd first starts (the container shares the host's network, and the
# host may run an sshd of its own), then the README's drop-in.
ct mkdir -p /etc/ssh/sshd_config.d
ct sh -c "printf 'Port $ssh_port\nListenAddress 127.0.0.1\n' >/etc/ssh/sshd_config.d/ci-port.conf"
ct apt-get install -y -qq --no-install-recommends openssh-server </dev/null >"$work/ssh-install.log" 2>&1 ||
  { tail -20 "$work/ssh-install.log"; fail "apt-get install openssh-server"; }
ct sh -c "printf 'KbdInteractiveAuthentication yes\nPasswordAuthentication no\n' >/etc/ssh/sshd_config.d/mfa.conf"
check "sshd -t" ct sshd -t
check "restart ssh" ct systemctl restart ssh
# ssh_session: alice logs in over ssh with her password and a code; the session stays open until
# something ends it. Sets ssh_pid and sid (mfad's id of that session).
ssh_session() {
  local sessions
  fresh_code "$secret"
  cat >"$work/ssh.exp" <<EXP
set timeout 30
spawn ssh -p $ssh_port -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
  -o PreferredAuthentications=keyboard-interactive -o PubkeyAuthentication=no alice@127.0.0.1 \
  {echo logged-in-as-\$(id -un); sleep 120}
expect {
  -re "assword:" { send "alice-password-1\r" }
  timeout { exit 2 }
}
expect {
  "Verification code: " { send "$code\r" }
  timeout { exit 3 }
}
expect {
  "logged-in-as-alice" { }
  timeout { exit 4 }
  eof { exit 5 }
}
# The session is open: the test ends it with mfactl terminate, and ssh must see its end.
set f [open "$work/ssh-open" w]; close \$f
expect {
  eof { exit 0 }
  timeout { exit 6 }
}
EXP
  rm -f "$work/ssh-open"
  expect "$work/ssh.exp" >"$work/ssh.log" 2>&1 &
  ssh_pid=$!
  for _ in $(seq 1 60); do
    [[ -f $work/ssh-open ]] && break
    kill -0 "$ssh_pid" 2>/dev/null || break
    sleep 0.5
  done
  [[ -f $work/ssh-open ]] || { wait "$ssh_pid" || true; cat "$work/ssh.log"; fail "ssh login with a code failed"; }
  sessions=$(ct mfactl --json sessions alice)
  sid=$(/usr/bin/python3 -c 'import json, sys
s = [x for x in json.load(sys.stdin) if x.get("service") == "sshd"]
print(s[-1].get("id") or s[-1].get("session_id"))' <<<"$sessions") ||
    fail "the ssh login is no mfad session: $sessions
$(ct cat /etc/pam.d/common-session; ct journalctl --no-pager -q -n 40)"
}
# Ends that session with mfactl terminate: ssh must see it end within 15 s.
terminate_ssh() {
  check "mfactl terminate" ct mfactl terminate "$sid"
  for _ in $(seq 1 30); do
    kill -0 "$ssh_pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$ssh_pid" 2>/dev/null; then
    kill "$ssh_pid" || true
    cat "$work/ssh.log"
    fail "mfactl terminate did not end the ssh session"
  fi
  wait "$ssh_pid" || { cat "$work/ssh.log"; fail "ssh did not end cleanly"; }
}

# No logind session here (no pam_systemd): mfad ends the login with signals, thanks to CAP_KILL
# (the leader, sshd's privileged process, is root's).
ssh_session
terminate_ssh
ct journalctl -u mfad --no-pager -q -n 200 | grep -q 'sent SIGHUP to session leader' ||
  fail "mfad did not signal the session leader: $(ct journalctl -u mfad --no-pager -q -n 20)"
pass

# ===========================================================================================
begin "terminate through logind and polkit"
# With pam_systemd the login is a logind session: mfad asks logind, logind asks polkit, and the
# package's rule (60-mfad.rules) lets the mfad user end it.
ct apt-get install -y -qq --no-install-recommends libpam-systemd polkitd </dev/null \
  >"$work/polkit-install.log" 2>&1 || { tail -20 "$work/polkit-install.log"; fail "apt-get install libpam-systemd polkitd"; }
ct systemctl restart polkit
ssh_session
terminate_ssh
ct journalctl -u mfad --no-pager -q -n 200 | grep -q 'logind terminated session' ||
  fail "mfad did not end the session through logind: $(ct journalctl -u mfad --no-pager -q -n 20)"
pass

# ===========================================================================================
begin "upgrade"
ct sh -c "sed -i 's/^#Issuer=\$/Issuer=ci-upgrade/' /etc/mfad/mfad.conf"
ct grep -q '^Issuer=ci-upgrade' /etc/mfad/mfad.conf || fail "could not edit mfad.conf"
key_sum=$(ct sha256sum /etc/mfad/master.key)
old_pid=$(ct systemctl show -P MainPID mfad)
ct sh -c 'cd /debs/v2 && apt-get install -y ./mfad_*.deb ./libpam-mfa_*.deb' </dev/null \
  >"$work/upgrade.log" 2>&1 || { tail -30 "$work/upgrade.log"; fail "apt-get install (upgrade)"; }
[[ $(ct dpkg-query -W -f='${Version}' mfad) == "$upgrade_version" ]] || fail "mfad not upgraded"
[[ $(ct dpkg-query -W -f='${Version}' libpam-mfa) == "$upgrade_version" ]] || fail "libpam-mfa not upgraded"
[[ $(ct sha256sum /etc/mfad/master.key) == "$key_sum" ]] || fail "the upgrade replaced the master key"
ct grep -q '^Issuer=ci-upgrade' /etc/mfad/mfad.conf || fail "the upgrade lost the admin's mfad.conf"
ct sh -c 'ls /etc/mfad/*.dpkg-* 2>/dev/null' && fail "the upgrade left conffile copies"
[[ $(ct stat -c '%U:%G %a' /etc/mfad) == "root:mfad 750" ]] || fail "/etc/mfad after upgrade: $(ct stat -c '%U:%G %a' /etc/mfad)"
check "mfad is not active after the upgrade" ct systemctl is-active -q mfad
[[ $(ct systemctl show -P MainPID mfad) != "$old_pid" ]] || fail "mfad was not restarted"
ct grep -q 'pam_mfa\.so nullok' /etc/pam.d/common-auth || fail "the upgrade disabled the profile"
ct mfactl --json status alice | grep -q '"totp"' || fail "alice lost her enrollment"
fresh_code "$secret"
out=$(pam_login login alice alice-password-1 "$code") || fail "login after upgrade: $out"
pass

# ===========================================================================================
begin "remove"
ct apt-get remove -y libpam-mfa mfad </dev/null >"$work/remove.log" 2>&1 ||
  { tail -30 "$work/remove.log"; fail "apt-get remove"; }
ct grep -rl pam_mfa /etc/pam.d && fail "pam_mfa left in /etc/pam.d: $(ct grep -rl pam_mfa /etc/pam.d)"
ct test -f /etc/mfad/master.key || fail "remove deleted the master key"
ct test -f /var/lib/mfad/mfad.db || fail "remove deleted the database"
ct test -f /etc/mfad/mfad.conf || fail "remove deleted mfad.conf"
ct systemctl is-active -q mfad && fail "mfad still runs after remove"
# The stack works without the module: the password alone lets alice in again.
out=$(pam_login login alice alice-password-1) || fail "login after remove: $out"
pass

begin "purge"
# libpam-mfa is gone entirely (it has no conffiles); mfad stays known to dpkg until purged.
[[ $(ct dpkg-query -W -f='${db:Status-Abbrev}' mfad 2>/dev/null) == "rc " ]] || fail "mfad is not in state rc"
ct apt-get purge -y mfad </dev/null >"$work/purge.log" 2>&1 ||
  { tail -30 "$work/purge.log"; fail "apt-get purge"; }
ct test -e /etc/mfad && fail "purge left /etc/mfad"
ct test -e /var/lib/mfad && fail "purge left /var/lib/mfad"
ct dpkg-query -W -f='${Status}\n' mfad libpam-mfa 2>/dev/null | grep -q 'install ok' && fail "still installed"
ct grep -rl pam_mfa /etc/pam.d && fail "pam_mfa left in /etc/pam.d after purge"
pass
