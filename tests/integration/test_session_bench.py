"""The session benchmark's script runs end to end (tiny sizes: this checks that it works, not how
fast it is)."""

import os
import re
import subprocess

from conftest import REPO


def test_run_session_bench_smoke(build_dir):
    env = dict(os.environ, SESSIONS="40", CLIENTS="2")
    r = subprocess.run([os.path.join(REPO, "tests", "bench", "run-session-bench.sh"), build_dir],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "clients=2 sessions=40 failures=0" in r.stdout
    for method in ("OpenSession", "CloseSession"):
        assert re.search(method + r": calls=40 p50=[\d.]+ms p99=[\d.]+ms max=[\d.]+ms", r.stdout)
