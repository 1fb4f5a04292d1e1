#!/usr/bin/env bash
# Every test of mfad, from a clean checkout on Debian 12, as root: installs what it needs, builds
# three trees (release, ASan+UBSan, libFuzzer), and runs format check, unit, integration,
# end-to-end, sanitizer and fuzz-smoke tests. Starts its own dbus-daemon, redis-server and sshd
# instances and stops them. Exit 0 only when everything passed.
#
#   MFA_FUZZ_RUNS=N   libFuzzer runs per target (default 100000)
#   MFA_SKIP_ASAN=1   skip the sanitizer tier (local iteration only; CI never sets it)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
jobs=$(nproc)
results="$repo/build/test-results"
fuzz_runs=${MFA_FUZZ_RUNS:-100000}
started=$(date +%s)

say() { printf '\n=== %s (%ds)\n' "$*" "$(($(date +%s) - started))"; }

say "dependencies"
bash scripts/deps.sh

say "clang-format"
mapfile -t sources < <(git ls-files -co --exclude-standard '*.cpp' '*.hpp' '*.c' '*.h' | grep -v '^build')
clang-format-14 --dry-run --Werror "${sources[@]}"

say "release build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMFA_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
rm -rf "$results" && mkdir -p "$results"

say "unit tests"
ctest --test-dir build --output-on-failure --output-junit "$results/unit.xml"

pytest_run() {  # name, build dir, paths...
  local name=$1 dir=$2
  shift 2
  MFA_BUILD_DIR="$repo/$dir" /usr/bin/python3 -m pytest -p no:cacheprovider -q -rfE \
    --junitxml="$results/$name.xml" "$@"
}

say "integration tests"
pytest_run integration build tests/integration tests/repo

say "end-to-end tests (sshd, sudo, su)"
pytest_run e2e build tests/e2e

if [[ "${MFA_SKIP_ASAN:-0}" != 1 ]]; then
  say "ASan+UBSan build"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMFA_SANITIZE=ON >/dev/null
  cmake --build build-asan -j"$jobs"
  say "unit tests under ASan+UBSan"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure --output-junit "$results/unit-asan.xml"
  say "integration tests under ASan+UBSan"
  MFA_ASAN=1 pytest_run integration-asan build-asan tests/integration
fi

say "libFuzzer build and smoke run ($fuzz_runs runs per target)"
CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMFA_FUZZ=ON -DMFA_TESTS=ON >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz_all
fuzz_count=0
for target in build-fuzz/tests/fuzz/fuzz_*; do
  [[ -x $target && -f $target ]] || continue
  name=$(basename "$target")
  corpus="tests/fuzz/seeds/${name#fuzz_}"
  work=$(mktemp -d)
  dict=(); [[ -f "tests/fuzz/${name#fuzz_}.dict" ]] && dict=(-dict="tests/fuzz/${name#fuzz_}.dict")
  seeds=(); [[ -d $corpus ]] && seeds=("$corpus")
  "$target" -runs="$fuzz_runs" -max_total_time=120 "${dict[@]}" "$work" "${seeds[@]}" \
    >"$results/$name.log" 2>&1 || { tail -50 "$results/$name.log"; echo "$name FAILED"; exit 1; }
  rm -rf "$work"
  echo "$name: $(grep -Eo 'Done [0-9]+ runs' "$results/$name.log" || echo ok)"
  fuzz_count=$((fuzz_count + 1))
done
((fuzz_count > 0)) || { echo "no fuzz target was built"; exit 1; }
echo "<testsuite name=\"fuzz\" tests=\"$fuzz_count\" failures=\"0\"></testsuite>" >"$results/fuzz.xml"

say "summary"
/usr/bin/python3 scripts/junit-summary.py "$results"
