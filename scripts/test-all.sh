#!/usr/bin/env bash
# Every test of mfad, from a clean checkout on Debian 12, as root: installs what it needs, builds
# three trees (release, ASan+UBSan, libFuzzer), and runs format check, unit, integration,
# end-to-end, sanitizer and fuzz-smoke tests. Starts its own dbus-daemon, redis-server and sshd
# instances and stops them.
#
# Every tier runs, whatever the tiers before it did, and leaves a JUnit file in
# build/test-results/ (a tier that cannot run at all, a failed build or format check, counts as
# one failed test named after it); the last line adds them up: `N passed, N failed, N skipped`.
# Exit 0 only when nothing failed.
#
#   MFA_FUZZ_RUNS=N       libFuzzer runs per target (default 100000)
#   MFA_SKIP_ASAN=1       skip the sanitizer tiers (local iteration only; CI never sets it)
#   MFA_SELFTEST_FAIL=1   tests/repo gains one test that fails on purpose: shows that a failure
#                         is counted, the other tiers still run and the exit status is non-zero
set -uo pipefail # no -e: a failing tier is recorded, and the next one runs
cd "$(dirname "$0")/.."
repo=$(pwd)
jobs=$(nproc)
results="$repo/build/test-results"
fuzz_runs=${MFA_FUZZ_RUNS:-100000}
started=$(date +%s)
rm -rf "$results" && mkdir -p "$results"

say() { printf '\n=== %s (%ds)\n' "$*" "$(($(date +%s) - started))"; }
record() { /usr/bin/python3 "$repo/scripts/junit-record.py" "$@"; }

# tier NAME COMMAND...: runs one tier, its output shown and kept in $results/NAME.log. Its JUnit
# file is $results/NAME.xml: written by the command (ctest, pytest) or, when it writes none, one
# test named NAME that passed or failed with the command. A command that fails while its own
# report counts no failure (a collection error, a crash) adds a failed test NAME-exit. Returns the
# command's status, for the tiers that depend on this one.
tier() {
  local name=$1
  shift
  say "$name"
  "$@" 2>&1 | tee "$results/$name.log"
  local rc=${PIPESTATUS[0]}
  record tier "$results/$name.xml" "$name" "$rc" "$results/$name.log"
  return "$rc"
}

# blocked NAME REASON: a tier that cannot run because one it needs failed; a failed test.
blocked() {
  say "$1: not run ($2)"
  record blocked "$results/$1.xml" "$1" "$2"
}

pytest_run() { # name, build dir, paths...
  local name=$1 dir=$2
  shift 2
  MFA_BUILD_DIR="$repo/$dir" /usr/bin/python3 -m pytest -p no:cacheprovider -q -rfE \
    --junitxml="$results/$name.xml" "$@"
}

format_check() {
  local sources
  mapfile -t sources < <(git ls-files -co --exclude-standard '*.cpp' '*.hpp' '*.c' '*.h' |
    grep -v '^build')
  clang-format-14 --dry-run --Werror "${sources[@]}"
}

release_build() {
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMFA_WERROR=ON >/dev/null &&
    cmake --build build -j"$jobs"
}

# The ASan tree also carries --coverage: its unit and integration tiers give the line coverage.
asan_build() {
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMFA_SANITIZE=ON -DMFA_COVERAGE=ON \
    >/dev/null && cmake --build build-asan -j"$jobs" &&
    find build-asan -name '*.gcda' -delete # counts of this run only
}

asan_unit() {
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure --output-junit "$results/unit-asan.xml"
}

asan_integration() { MFA_ASAN=1 pytest_run integration-asan build-asan tests/integration; }

# Line coverage of common/ and the daemon by the ASan unit and integration tiers (gcovr over the
# .gcda files their processes wrote at exit; a source never run counts from its .gcno). gcov runs
# in each target's build directory: with ccache's CCACHE_BASEDIR the objects name their sources
# relative to it. Fails below MFA_COVERAGE_MIN percent for either (tests/fuzz/README.md says where
# the default comes from); the figures are printed either way.
coverage_min=${MFA_COVERAGE_MIN:-85}
line_percent() { # tracefile, filter, summary file: prints the filtered line coverage in percent
  gcovr -r "$repo" -a "$1" --filter "$2" --json-summary "$3" &&
    /usr/bin/python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["line_percent"])' "$3"
}
coverage_report() {
  local json="$results/coverage.json" errors="$results/gcovr.log" objs obj n=0 traces=() c d
  : >"$errors"
  mapfile -t objs < <(find "$repo/build-asan" -path '*/CMakeFiles/*.dir' -type d | sort)
  for obj in "${objs[@]}"; do
    compgen -G "$obj/*.gcno" >/dev/null || continue
    # gcovr's warnings go to $errors, shown when gcovr fails. A line gcov prints with a negative
    # count (GCC bug 68080: a .gcda torn by a process killed while writing it, or racing
    # counters, which -fprofile-update=atomic rules out) is skipped and counted below, not fatal.
    gcovr -r "$repo" --object-directory "${obj%/CMakeFiles/*}" --filter 'common/' \
      --filter 'daemon/' --gcov-ignore-parse-errors --json "$results/coverage-$n.json" "$obj" \
      2>>"$errors" || {
      tail -40 "$errors"
      echo "gcovr failed on $obj"
      return 1
    }
    traces+=(-a "$results/coverage-$n.json")
    n=$((n + 1))
  done
  gcovr -r "$repo" "${traces[@]}" --json "$json" && rm -f "$results"/coverage-*.json || return 1
  # Never `-o /dev/null`: gcovr 5.2 checks an output file by creating it and then unlinking it,
  # which deletes /dev/null (the next `>/dev/null` then makes a regular file of it).
  c=$(line_percent "$json" common/ "$results/coverage-common.json") || return 1
  d=$(line_percent "$json" daemon/ "$results/coverage-daemon.json") || return 1
  [[ -n $c && -n $d ]] || return 1
  echo "line coverage: common/ $c %, daemon/ $d %"
  echo "gcov lines skipped as unparsable: $(grep -c 'Exception during parsing' "$errors")"
  awk -v c="$c" -v d="$d" -v min="$coverage_min" 'BEGIN { exit !(c >= min && d >= min) }' || {
    echo "line coverage below $coverage_min %"
    return 1
  }
}

fuzz_build() {
  CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DMFA_FUZZ=ON -DMFA_TESTS=ON >/dev/null &&
    cmake --build build-fuzz -j"$jobs" --target fuzz_all
}

# One test per fuzz target, failed with the end of its log when the target finds a crash.
fuzz_smoke() {
  local target name corpus work rc dict seeds cases=()
  echo "$fuzz_runs runs per target"
  for target in build-fuzz/tests/fuzz/fuzz_*; do
    [[ -x $target && -f $target ]] || continue
    name=$(basename "$target")
    corpus="tests/fuzz/seeds/${name#fuzz_}"
    work=$(mktemp -d)
    dict=()
    [[ -f "tests/fuzz/${name#fuzz_}.dict" ]] && dict=(-dict="tests/fuzz/${name#fuzz_}.dict")
    seeds=()
    [[ -d $corpus ]] && seeds=("$corpus")
    # -close_fd_mask=2: the target's own stderr (mfad's log lines) is dropped; libFuzzer's and the
    # sanitizers' reports still reach the log.
    "$target" -runs="$fuzz_runs" -max_total_time=120 -close_fd_mask=2 "${dict[@]}" "$work" \
      "${seeds[@]}" \
      >"$results/$name.log" 2>&1
    rc=$?
    rm -rf "$work"
    if ((rc == 0)); then
      echo "$name: $(grep -Eo 'Done [0-9]+ runs' "$results/$name.log" || echo ok)"
    else
      tail -50 "$results/$name.log"
      echo "$name FAILED (status $rc)"
    fi
    cases+=("$name" "$rc" "$results/$name.log")
  done
  if ((${#cases[@]} == 0)); then
    echo "no fuzz target was built"
    return 1
  fi
  record cases "$results/fuzz.xml" fuzz "${cases[@]}"
}

# The tiers, in order. Each one that needs an earlier one is blocked (a failed test) when that
# one failed.
tier deps bash scripts/deps.sh
tier format format_check
# No clang-tidy tier: over the tree it took 31 min here (16 min of CPU on 2 cores), and clang 14's
# front end rejects C++20 that GCC 12 builds (`git log -- .clang-tidy` says more).
tier repo pytest_run repo build tests/repo # the repository's own rules: needs no build

if tier build release_build; then
  tier unit ctest --test-dir build --output-on-failure --output-junit "$results/unit.xml"
  tier integration pytest_run integration build tests/integration
  tier e2e pytest_run e2e build tests/e2e
  # The Debian packages: built, lintian, installed/used/upgraded/removed/purged in a booted
  # minimal Debian 12; one test per step in $results/package.xml. It runs in the background
  # beside the ASan build, which only compiles: much of the package tier waits on apt,
  # mmdebstrap, the booted system and TOTP time steps, so the two together take little longer
  # than the longer one. Its output is shown when it ends, before any tier that measures or
  # times something starts.
  tier package env MFA_RESULTS_DIR="$results" bash scripts/test-package.sh \
    >"$results/package.console" 2>&1 </dev/null &
  package_pid=$!
else
  for t in unit integration e2e package; do blocked "$t" "the release build failed"; done
fi

# Waits for the package tier (when it runs) and shows its output.
package_pid=${package_pid:-}
wait_package() {
  [[ -n $package_pid ]] || return 0
  wait "$package_pid"
  cat "$results/package.console"
  package_pid=""
}

if [[ "${MFA_SKIP_ASAN:-0}" != 1 ]]; then
  asan_built=0
  tier asan-build asan_build && asan_built=1
  wait_package
  if ((asan_built)); then
    tier unit-asan asan_unit
    tier integration-asan asan_integration
    tier coverage coverage_report
  else
    for t in unit-asan integration-asan coverage; do
      blocked "$t" "the ASan+UBSan build failed"
    done
  fi
fi

wait_package
if tier fuzz-build fuzz_build; then
  tier fuzz fuzz_smoke
else
  blocked fuzz "the libFuzzer build failed"
fi

# A tier that deletes or replaces a device node breaks every later run on this machine (gcovr's
# `-o /dev/null` once did); the run fails when /dev/null is no longer the null device.
host_check() {
  [[ -c /dev/null ]] && [[ $(stat -c %t:%T /dev/null) == 1:3 ]] || {
    echo "/dev/null is no longer the null device: a tier deleted or replaced it"
    return 1
  }
}
tier host-check host_check

say "summary"
/usr/bin/python3 scripts/junit-summary.py "$results"
