"""pam_mfa.so when memory runs out (docs/pam_mfa.md "Return codes"): pam_oom_driver
(tests/unit/pam_module/pam_oom_driver.c) makes the allocations of a whole login fail from the Nth
on, for every N, and checks that the host is never aborted and that the login never succeeds once
an allocation failed. The scripted stand-in for mfad of test_pam_failures.py answers, so that
every login can go through the whole dialogue: the word "sms", a wrong SMS code, the right one,
and the session hooks."""

import json
import os
import subprocess
import tempfile

import pytest

from pam_helpers import ASAN, PAM_SUCCESS, PamServices
from test_pam_failures import open_bus, start_fake  # noqa: F401 (open_bus is a fixture)

ALICE = "mfa-alice"
PAM_BUF_ERR = 5
ANSWERS = ["sms", "111111", "424242"]

pytestmark = pytest.mark.skipif(ASAN, reason="the driver replaces malloc, as ASan does")


def oom_driver_path(build_dir):
    built = os.path.join(build_dir, "tests", "unit", "pam_module", "pam_oom_driver")
    if os.path.exists(built):
        return built
    outdir = tempfile.mkdtemp(prefix="mfa-pam-oom-driver-")
    out = os.path.join(outdir, "pam_oom_driver")
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "unit",
                       "pam_module", "pam_oom_driver.c")
    subprocess.run(["cc", "-O2", "-o", out, src, "-lpam"], check=True)
    return out


@pytest.fixture
def fake_pam(build_dir, open_bus, test_users):  # noqa: F811
    pam = PamServices(build_dir, open_bus[1])
    fake, _log = start_fake(open_bus, None, "sms")
    with open(os.path.join(pam.dir, "oom"), "w") as f:
        f.write(f"auth required {pam.mfa('debug')}\nsession required {pam.mfa('debug')}\n")
    yield pam
    fake.terminate()
    fake.wait(10)
    pam.cleanup()


def run_oom(pam, build_dir, *flags):
    env = pam.env()
    env["PAM_WRAPPER_DEBUGLEVEL"] = "0"
    r = subprocess.run([oom_driver_path(build_dir), *flags, "oom", ALICE, *ANSWERS],
                       capture_output=True, text=True, timeout=600, env=env)
    last = [line for line in r.stderr.splitlines() if line.startswith("pam_oom_driver: N=")][-1:]
    assert r.returncode in (0, 1), (f"the host died ({r.returncode}) at {last}: "
                                    f"{r.stderr[-3000:]}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["violations"] == [], f"success after a failed allocation: {out}"
    assert r.returncode == 0
    # A login may make fewer allocations than the first one did (sd-bus reads what has arrived);
    # one in which nothing failed proves nothing either way.
    assert out["untouched"] < out["allocations"] // 10, out
    return {int(rc): n for rc, n in out["results"].items()}, out["allocations"] - out["untouched"]


def test_login_fails_closed_whichever_allocation_fails(fake_pam, build_dir):
    results, failed = run_oom(fake_pam, build_dir, "--session")
    assert failed > 100, failed
    assert PAM_SUCCESS not in results, results
    # Most refusals say why: the application's conversation failing is PAM_CONV_ERR.
    assert results.get(PAM_BUF_ERR, 0) > failed // 2, results


def test_a_single_failed_allocation_never_crashes_the_host(fake_pam, build_dir):
    results, failed = run_oom(fake_pam, build_dir, "--once", "--session")
    assert sum(results.values()) == failed, results
