"""Login sessions end to end: an SSH login through `session optional pam_mfa.so` is listed by mfad
while it lasts, disappears at logout, and an admin's TerminateSession really ends it (the user's
connection closes). Recipe: docs/sshd.md."""

import io
import time

import pexpect
import pytest

from e2e_harness import record_transcript, spawn, ssh_argv

COMMAND = "echo e2e-ready; read answer; echo e2e-bye $answer"


def field(session, *names):
    for name in names:
        if name in session:
            return session[name]
    return None


def skip_unless_mfad_has_sessions(mfad, user):
    context = {"service": "e2e-probe", "rhost": "", "tty": "", "ruser": "", "leader_pid": "1"}
    r = mfad.call("OpenSession", "sa{ss}", user.name, context)
    if not r.ok and r.error == "org.freedesktop.DBus.Error.NotSupported":
        pytest.skip(f"mfad does not implement sessions yet ({r.message})")
    mfad.call("CloseSession", "s", r.expect_ok()).expect_ok()


def sessions_of(mfad, user):
    return mfad.call("ListSessions", "s", user.name).expect_ok()


def wait_sessions(mfad, user, count, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        found = sessions_of(mfad, user)
        if len(found) == count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def open_ssh_session(request, server, user, code):
    child = spawn(ssh_argv(server, user.name, COMMAND))
    child.logfile_read = io.StringIO()
    record_transcript(request, "ssh session transcript", child.logfile_read)
    child.expect(r"[Pp]assword: ?")
    child.sendline(user.password)
    child.expect(r"Verification code: ?")
    child.sendline(code)
    child.expect("e2e-ready")
    return child


def test_ssh_session_is_listed_until_logout(request, test_users, mfad, sshd_factory):
    alice = test_users["mfa-alice"]
    secret = mfad.enroll_totp(alice)
    skip_unless_mfad_has_sessions(mfad, alice)
    server = sshd_factory()
    child = open_ssh_session(request, server, alice, mfad.next_code(alice, secret))

    listed = wait_sessions(mfad, alice, 1)
    child.sendline("now")
    child.expect("e2e-bye now")
    child.expect(pexpect.EOF)
    child.close()
    after = wait_sessions(mfad, alice, 0)

    assert len(listed) == 1, listed
    assert field(listed[0], "user") == alice.name
    assert field(listed[0], "service") == "sshd"
    assert field(listed[0], "rhost") == "127.0.0.1"
    assert child.exitstatus == 0
    assert after == [], after


def test_admin_terminates_an_ssh_session(request, test_users, mfad, sshd_factory):
    alice = test_users["mfa-alice"]
    secret = mfad.enroll_totp(alice)
    skip_unless_mfad_has_sessions(mfad, alice)
    server = sshd_factory()
    child = open_ssh_session(request, server, alice, mfad.next_code(alice, secret))
    listed = wait_sessions(mfad, alice, 1)
    assert len(listed) == 1, listed
    session_id = field(listed[0], "id", "session_id")

    mfad.call("TerminateSession", "s", session_id).expect_ok()
    i = child.expect([pexpect.EOF, pexpect.TIMEOUT], timeout=20)
    output = child.before
    child.close(force=True)

    assert i == 0, "the ssh connection is still open after TerminateSession"
    assert "e2e-bye" not in output
    assert child.exitstatus != 0 or child.signalstatus is not None
    assert wait_sessions(mfad, alice, 0) == []
