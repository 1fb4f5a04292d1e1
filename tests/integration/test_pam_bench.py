"""The PAM benchmark runs end to end (tiny sizes: this checks that it works, that no login fails
and that it prints its anchors and floor, not how fast anything is)."""

import json
import os
import re
import subprocess

from conftest import ASAN, REPO
from pam_helpers import preload_env


def test_run_pam_bench_smoke(build_dir, tmp_path):
    out = tmp_path / "pam-bench.json"
    env = dict(os.environ, MFA_BUILD_DIR=build_dir)
    if ASAN:  # the module under test is the sanitizer's: libasan first in every PAM process
        wrapped = preload_env()
        env.update(MFA_BENCH_PRELOAD=wrapped["LD_PRELOAD"].split(":")[0],
                   PAM_WRAPPER_DISABLE_DEEPBIND="1", ASAN_OPTIONS=wrapped["ASAN_OPTIONS"])
    r = subprocess.run([os.path.join(REPO, "tests", "bench", "pam", "run-pam-bench.sh"),
                        "--users", "2", "--per-process-users", "1", "--json", str(out)],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    for module in ("pam_mfa", "pam_google_authenticator", "pam_oath"):
        assert re.search(rf"^{module} +in-process +\d+ +0 ", r.stdout, re.M), r.stdout
    for anchor in ("libpam \\+ pam_wrapper", "the bus traffic of a login", "fdatasync after",
                   "pamtester \\+ pam_permit"):
        assert re.search(rf"anchor: .*{anchor}.* p50 [\d.]+ ms", r.stdout), r.stdout
    assert re.search(r"floor in-process \(libpam \+ bus \+ flush\): [\d.]+ ms", r.stdout)
    report = json.loads(out.read_text())
    assert set(report["anchors_p50_ms"]) == {"libpam", "bus", "bus_reconnect", "flush", "process"}
    assert all(v > 0 for v in report["anchors_p50_ms"].values())
    assert all(row["failures"] == 0 for row in report["results"])
