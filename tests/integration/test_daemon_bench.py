"""The daemon benchmark's script runs end to end (tiny sizes: this checks that it works, not how
fast it is). The bench programs are part of every build with tests (tests/bench)."""

import os
import re
import subprocess


from conftest import REPO


def test_run_daemon_bench_smoke(build_dir):
    bench_dir = os.path.join(build_dir, "tests", "bench")
    assert os.path.exists(os.path.join(bench_dir, "mfad-bench-login")), "bench not built"
    env = dict(os.environ, USERS="64", CLIENTS="4")
    r = subprocess.run([os.path.join(REPO, "tests", "bench", "run-daemon-bench.sh"), build_dir],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "clients=4 logins=64 failures=0" in r.stdout
    assert re.search(r"logins/s=\d+ p50=[\d.]+ms p99=[\d.]+ms", r.stdout)
    m = re.search(r"group commit: (\d+) commits and (\d+) disk syncs for (\d+) replies", r.stdout)
    assert m and 0 < int(m.group(1)) <= int(m.group(3))
    assert int(m.group(2)) > 0
    assert re.search(r"cpu during the run: mfad \d+ ms, dbus-daemon \d+ ms", r.stdout)
