"""The fleet benchmark's script runs end to end (tiny sizes: this checks that it works and that no
login fails over, not how fast it is)."""

import os
import re
import subprocess

from conftest import PYTHON, REPO


def test_run_fleet_bench_smoke(build_dir):
    env = dict(os.environ, USERS="4", ROUNDS="2")
    r = subprocess.run([PYTHON, os.path.join(REPO, "tests", "bench", "run-fleet-bench.py"),
                        build_dir], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"fleet overhead per login: mean=-?[\d.]+ms", r.stdout), r.stdout
    assert re.search(r"anchor: redis PING round trip p50=[\d.]+ms", r.stdout), r.stdout
    assert "[state on tmpfs, Redis over TLS]" in r.stdout, r.stdout
    assert re.search(r"TLS handshake \(connect \+ verify.*p50=[\d.]+ms", r.stdout), r.stdout
    for how in ("stopped", "frozen"):
        m = re.search(rf"failover \({how}\): first degraded login (\d+)ms after the stop; "
                      r"failed logins 0/\d+", r.stdout)
        assert m, r.stdout
        assert int(m.group(1)) < 1000
