"""Login sessions end to end: an SSH login through `session required pam_mfa.so` is listed by mfad
while it lasts, disappears at logout, an admin's TerminateSession or `mfactl terminate` really
ends it (the user's connection closes), and under OnLimit=deny the sixth concurrent login is
refused. Recipe: docs/sshd.md."""

import io

import pexpect

from e2e_harness import harness, record_transcript, spawn, ssh_argv

COMMAND = "echo e2e-ready; read answer; echo e2e-bye $answer"


def field(session, *names):
    for name in names:
        if name in session:
            return session[name]
    return None


def sessions_of(mfad, user):
    return mfad.call("ListSessions", "s", user.name).expect_ok()


def wait_sessions(mfad, user, count, timeout=15):
    """user's sessions once there are count of them, or when timeout seconds have passed."""
    harness.wait_until(lambda: len(sessions_of(mfad, user)) == count, timeout)
    return sessions_of(mfad, user)


def start_ssh_login(request, server, user, code, label="ssh session transcript"):
    """An ssh login of user running COMMAND, its password and code answered; the pexpect child."""
    child = spawn(ssh_argv(server, user.name, COMMAND))
    child.logfile_read = io.StringIO()
    record_transcript(request, label, child.logfile_read)
    child.expect(r"[Pp]assword: ?")
    child.sendline(user.password)
    child.expect(r"Verification code: ?")
    child.sendline(code)
    return child


def open_ssh_session(request, server, user, code):
    """An ssh login left running its command; returns the pexpect child."""
    child = start_ssh_login(request, server, user, code)
    child.expect("e2e-ready")
    return child


def totp_ssh_session(request, mfad, sshd_factory, user):
    """user enrolled with TOTP and logged in over ssh to a new sshd: the open session's child."""
    secret = mfad.enroll_totp(user)
    server = sshd_factory()
    return open_ssh_session(request, server, user, mfad.next_code(user, secret))


def expect_connection_cut(child, what):
    """The ssh connection ends within 20 s without the shell's goodbye: cut, not left."""
    i = child.expect([pexpect.EOF, pexpect.TIMEOUT], timeout=20)
    output = child.before
    child.close(force=True)
    assert i == 0, f"the ssh connection is still open after {what}"
    assert "e2e-bye" not in output


def test_ssh_session_is_listed_until_logout(request, test_users, mfad, sshd_factory):
    alice = test_users["mfa-alice"]
    child = totp_ssh_session(request, mfad, sshd_factory, alice)

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
    child = totp_ssh_session(request, mfad, sshd_factory, alice)
    listed = wait_sessions(mfad, alice, 1)
    assert len(listed) == 1, listed
    session_id = field(listed[0], "id", "session_id")

    mfad.call("TerminateSession", "s", session_id).expect_ok()
    expect_connection_cut(child, "TerminateSession")
    assert child.exitstatus != 0 or child.signalstatus is not None
    assert wait_sessions(mfad, alice, 0) == []


def backup_codes(mfad, user):
    """Ten one-time codes (the TOTP window holds too few unused steps for six logins)."""
    mfad.enroll_totp(user)
    return mfad.call("GenerateBackupCodes", "ss", user.name, "").expect_ok()


def test_mfactl_terminate_ends_an_ssh_session(request, test_users, mfad, sshd_factory):
    alice = test_users["mfa-alice"]
    codes = backup_codes(mfad, alice)
    server = sshd_factory()
    child = open_ssh_session(request, server, alice, codes[0])
    listed = wait_sessions(mfad, alice, 1)
    assert len(listed) == 1, listed
    assert listed[0]["factor"] == "backup"

    r = mfad.mfactl("terminate", listed[0]["id"])
    assert r.returncode == 0, r.stderr
    expect_connection_cut(child, "mfactl terminate")
    assert wait_sessions(mfad, alice, 0) == []


def test_sixth_concurrent_ssh_session_is_refused(request, test_users, mfad, sshd_factory):
    alice = test_users["mfa-alice"]
    codes = backup_codes(mfad, alice)
    server = sshd_factory()
    children = []
    try:
        for n in range(5):
            children.append(open_ssh_session(request, server, alice, codes[n]))
        assert len(wait_sessions(mfad, alice, 5)) == 5

        child = start_ssh_login(request, server, alice, codes[5], "sixth ssh session transcript")
        i = child.expect(["e2e-ready", pexpect.EOF, pexpect.TIMEOUT], timeout=30)
        child.close(force=True)
        assert i == 1, "the sixth session was let in"
        assert child.exitstatus != 0 or child.signalstatus is not None
        assert len(sessions_of(mfad, alice)) == 5
        rows = mfad.call("ListAuditEvents", "a{sv}",
                         {"user": ["@s", alice.name], "limit": ["@u", 1000]}).expect_ok()
        refused = [r for r in rows if r["kind"] == "session.open" and r["outcome"] == "denied"]
        assert len(refused) == 1 and refused[0]["reason"] == "limit"
    finally:
        for c in children:
            c.close(force=True)
    assert wait_sessions(mfad, alice, 0) == []
