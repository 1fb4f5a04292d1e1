"""`fresh=SECONDS` with the real sudo inside a login session opened through the real PAM stack
(su with pam_loginuid, which gives the login its own kernel audit session; docs/sudo.md): the
sudo in that session asks for the password only; a sudo outside it, or after SECONDS, asks for a
code again."""

import json
import subprocess

import pytest

from e2e_harness import harness, render_pam, run_su, run_sudo

SUDOERS = "Defaults timestamp_timeout=0\n{user} ALL=(ALL) ALL\n"


def audit_sessions_work():
    r = subprocess.run(["sh", "-c", "echo 0 > /proc/self/loginuid && cat /proc/self/sessionid"],
                       capture_output=True, text=True)
    return r.returncode == 0 and r.stdout.strip() not in ("", "4294967295")


pytestmark = [
    pytest.mark.skipif(harness.ASAN, reason="setuid su and sudo cannot preload the ASan runtime"),
    pytest.mark.skipif(not audit_sessions_work(),
                       reason="this kernel does not let pam_loginuid set an audit session"),
]


def fresh_ns(namespace, bus, pam_module, user, seconds):
    namespace.pam_service("su", render_pam("su-loginuid", pam_module, bus.address))
    namespace.pam_service("sudo", render_pam("sudo", pam_module, bus.address,
                                             [f"fresh={seconds}"]))
    namespace.sudoers_drop_in(SUDOERS.format(user=user.name))
    return namespace


def fresh_rows(mfad):
    return [json.loads(d) for d in mfad.sql(
        "SELECT details FROM audit WHERE kind = 'fresh-session' ORDER BY id").splitlines()]


def test_sudo_in_the_fresh_login_session_asks_no_code(request, test_users, mfad, namespace, bus,
                                                      pam_module):
    alice, bob = test_users["mfa-alice"], test_users["mfa-bob"]
    ns = fresh_ns(namespace, bus, pam_module, alice, 300)
    secret = mfad.enroll_totp(alice)

    d = run_su(ns, bob, alice.name, [alice.password, alice.password],
               [mfad.next_code(alice, secret)],
               command="cat /proc/self/sessionid; echo; sudo -S id -un",
               request=request)

    # su: password and code; sudo in the session: the password only.
    assert d.prompts == ["password", "code", "password"], d.transcript
    assert "root" in d.lines(), d.transcript
    session_ids = [line for line in d.lines() if line.isdigit()]
    assert session_ids and session_ids[0] != "4294967295", d.transcript
    rows = fresh_rows(mfad)
    assert len(rows) == 1, rows
    assert rows[0]["audit_session"] == session_ids[0]
    assert rows[0]["fresh_service"] == "sudo" and rows[0]["factor"] == "totp"
    opened = [json.loads(d)["session"] for d in mfad.sql(
        "SELECT details FROM audit WHERE kind = 'session.open'").splitlines()]
    assert rows[0]["session"] in opened  # su's login session, closed since

    # A sudo outside that login session (no audit session of its own) asks for a code.
    r = run_sudo(ns, alice, [alice.password, mfad.next_code(alice, secret)])
    assert r.returncode == 0, r.stderr
    assert "Verification code:" in r.stderr and r.stdout.strip() == "root"
    assert len(fresh_rows(mfad)) == 1


def test_after_seconds_sudo_asks_again(request, test_users, mfad, namespace, bus, pam_module):
    alice, bob = test_users["mfa-alice"], test_users["mfa-bob"]
    ns = fresh_ns(namespace, bus, pam_module, alice, 3)
    secret = mfad.enroll_totp(alice)
    login_code = mfad.next_code(alice, secret)
    later_code = mfad.next_code(alice, secret)

    d = run_su(ns, bob, alice.name, [alice.password] * 3, [login_code, later_code],
               command="sudo -S id -un; sleep 4; "
                       "sudo -S id -un",
               request=request, timeout=60)

    assert d.prompts == ["password", "code", "password", "password", "code"], d.transcript
    assert d.lines().count("root") == 2, d.transcript
    assert len(fresh_rows(mfad)) == 1
