"""Unprivileged floods (docs/security-model.md, "Floods"): callers that are not root flooding the
open methods must neither hold up root's logins nor grow the audit trail without bound."""

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import ASAN, REPO
from pam_helpers import PAM_SUCCESS, pam  # noqa: F401 (fixtures are found by name)

ALICE, BOB = "mfa-alice", "mfa-bob"
FLOODERS = 8
WINDOW = 16  # calls each flooder keeps in flight
LOGINS = 20
SLOWEST_LOGIN_S = 2.0


# What one passwd or group lookup costs on a directory-backed host (slow_nss.c).
NSS_DELAY_US = 3000


@pytest.fixture(scope="module")
def tools():
    """bus_flooder.c and slow_nss.c, compiled into a directory the test users can read."""
    outdir = tempfile.mkdtemp(prefix="mfa-flooder-")
    os.chmod(outdir, 0o755)
    here = os.path.join(REPO, "tests", "integration")
    flooder = os.path.join(outdir, "bus_flooder")
    subprocess.run(["cc", "-O2", "-o", flooder, os.path.join(here, "bus_flooder.c"),
                    "-lsystemd"], check=True)
    slow_nss = os.path.join(outdir, "slow_nss.so")
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", slow_nss,
                    os.path.join(here, "slow_nss.c"), "-ldl"], check=True)
    yield flooder, slow_nss
    shutil.rmtree(outdir, ignore_errors=True)


@pytest.fixture
def mfad(mfad_factory, tools, monkeypatch):
    """mfad whose NSS lookups take as long as a directory's."""
    with monkeypatch.context() as env:
        env.setenv("LD_PRELOAD", tools[1])
        env.setenv("MFA_TEST_NSS_DELAY_US", str(NSS_DELAY_US))
        if ASAN:  # libasan is not first in the link order then: it does not matter here
            env.setenv("ASAN_OPTIONS", os.environ.get(
                "ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:halt_on_error=1") +
                       ":verify_asan_link_order=0")
        return mfad_factory.start()


def start_flooder(binary, bus, user, names):
    pw = pwd.getpwnam(user)
    argv = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--",
            binary, bus.address, str(WINDOW), *names]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def audit_rows(mfad):
    return int(mfad.sql("SELECT count(*) FROM audit").strip())


def test_unprivileged_flood_does_not_hold_up_logins(mfad, pam, tools, test_users):
    flooder = tools[0]
    # 20 logins with backup codes: each code works once, whatever the clock does.
    codes = {user: mfad.call("GenerateBackupCodes", "ss", user, "").expect_ok()
             for user in (ALICE, BOB)}
    svc = pam.single("login", "max_tries=1")
    rows_before = audit_rows(mfad)

    # Each flooder asks in turn for its own account, another one (a denial), root (a denial) and
    # names nobody has (NSS lookups that find nothing).
    flooders = []
    try:
        for i in range(FLOODERS):
            me, other = (ALICE, BOB) if i % 2 == 0 else (BOB, ALICE)
            flooders.append(start_flooder(flooder, mfad.bus, me,
                                          [me, other, "@random", "root", "@random"]))
        for f in flooders:
            assert f.stdout.readline().strip() == "ready", f.stderr.read()

        slowest = 0.0
        for n in range(LOGINS):
            user = (ALICE, BOB)[n % 2]
            r = pam.run(svc, user, [codes[user][n // 2]], timeout=60)
            assert r.rc == PAM_SUCCESS, (f"login {n + 1} of {LOGINS} failed during the flood: "
                                         f"rc={r.rc} after {r.elapsed:.2f} s; {r.syslog}")
            slowest = max(slowest, r.elapsed)
            assert r.elapsed < SLOWEST_LOGIN_S, \
                f"login {n + 1} of {LOGINS} took {r.elapsed:.2f} s during the flood"
    finally:
        outcomes = []
        for f in flooders:
            f.terminate()
        for f in flooders:
            out, err = f.communicate(timeout=30)
            lines = out.strip().splitlines()
            outcomes.append(json.loads(lines[-1]) if lines and lines[-1].startswith("{") else err)
    print(f"slowest login {slowest:.3f} s; flooders' replies: {outcomes}")

    # The flood was answered, not dropped: every flooder got replies, some of them refusals.
    totals = {}
    for o in outcomes:
        assert isinstance(o, dict) and sum(o.values()) > 0, outcomes
        for k, v in o.items():
            totals[k] = totals.get(k, 0) + v
    assert "org.mfad1.Error.LimitExceeded" in totals, totals
    assert "send-failed" not in totals, totals

    # The audit trail grew by the logins' rows and one or two rows per repeated denial, not by a
    # row per refused call.
    mfad.stop()
    grown = audit_rows(mfad) - rows_before
    assert grown <= LOGINS * 3 + 40, f"the audit trail grew by {grown} rows during the flood"
    counted = mfad.sql("SELECT details FROM audit WHERE kind = 'access.denied' "
                       "AND details LIKE '%\"count\"%'")
    assert counted.strip(), "no coalesced denial row"


def test_repeated_denials_are_counted_in_one_row(mfad_factory, test_users):
    """An unprivileged caller refused 30 times leaves one row at once and one counted row (written
    at the latest at shutdown), not 30 (docs/audit-events.md, "Coalesced denials")."""
    mfad = mfad_factory.start()
    calls = [{"method": "GetUser", "signature": "s", "args": [BOB]}] * 30
    replies = mfad.calls(calls, user=ALICE)
    for r in replies:
        r.expect_error("NotAllowed")
    uid = pwd.getpwnam(ALICE).pw_uid
    query = (f"SELECT details FROM audit WHERE kind = 'access.denied' "
             f"AND caller LIKE 'uid={uid} %' ORDER BY id")
    assert len(mfad.sql(query).splitlines()) == 1
    mfad.stop()
    rows = mfad.sql(query).splitlines()
    assert len(rows) == 2, rows
    assert json.loads(rows[1]) == {"action": "GetUser", "count": "29", "window_seconds": "60"}


def test_refusals_of_a_flood_are_sent_late(mfad_factory, test_users):
    """A caller over its rate limit gets LimitExceeded a quarter of a second late
    (daemon/bus/held_replies.hpp): a flooder that waits for its replies slows down, instead of
    pushing twice the bus traffic through dbus-daemon in front of the real logins."""
    mfad = mfad_factory.start()
    calls = [{"method": "GetUser", "signature": "s", "args": [ALICE]}] * 100
    t0 = time.monotonic()
    replies = mfad.calls(calls, user=ALICE)
    elapsed = time.monotonic() - t0
    refused = [r for r in replies if not r.ok]
    assert len(refused) >= 2, [r.__dict__ for r in replies[-5:]]
    for r in refused:
        r.expect_error("LimitExceeded")
    assert elapsed >= 0.25 * len(refused), f"{len(refused)} refusals in {elapsed:.2f} s"


def test_locked_logins_are_refused_late_and_counted_in_one_row(mfad_factory, test_users):
    """While a lockout holds, each login is refused (RateLimited) a quarter of a second late, the
    first refusal is written at once and the repeats are one counted row (written at the latest
    at shutdown), not a row each (docs/audit-events.md, "Coalesced denials")."""
    mfad_factory.set_config("Policy", "MaxFailures", 1)
    mfad = mfad_factory.start()
    secret = mfad.enroll_totp(BOB)
    _, verify = mfad.login(BOB, "000000")
    verify.expect_error("RateLimited")
    query = "SELECT details FROM audit WHERE kind = 'auth.rate-limited' ORDER BY id"
    for _ in range(4):
        t0 = time.monotonic()
        begin, _ = mfad.login(BOB, mfad.next_code(BOB, secret))
        begin.expect_error("RateLimited")
        assert time.monotonic() - t0 >= 0.25
    assert len(mfad.sql(query).splitlines()) == 1
    mfad.stop()
    rows = mfad.sql(query).splitlines()
    assert len(rows) == 2, rows
    assert json.loads(rows[1])["count"] == "3"
