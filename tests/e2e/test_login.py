"""The real login program on a terminal (a console login), its PAM service bind-mounted in a private
mount namespace; utmp, wtmp, btmp and lastlog are private copies there too. Recipe:
docs/console.md."""

import pexpect
import pytest

from e2e_harness import converse, harness, record_transcript, render_pam, spawn

pytestmark = pytest.mark.skipif(harness.ASAN, reason="login cannot preload the ASan runtime")

@pytest.fixture
def login_ns(namespace, bus, pam_module):
    namespace.pam_service("login", render_pam("login", pam_module, bus.address))
    return namespace


def start_login(ns, user):
    return spawn(ns.argv(["login", "--", user.name]), env=ns.env())


def test_password_then_code_gives_a_shell(request, test_users, mfad, login_ns):
    alice = test_users["mfa-alice"]
    secret = mfad.enroll_totp(alice)
    child = start_login(login_ns, alice)
    transcript = []
    child.logfile_read = None

    child.expect("Password: ")
    child.sendline(alice.password)
    child.expect("Verification code: ")
    child.sendline(mfad.next_code(alice, secret))
    child.expect(r"\$ ", timeout=30)
    transcript.append(child.before + child.after)
    child.sendline("echo login-$((6*7)) as $(id -un); exit")
    child.expect(pexpect.EOF, timeout=30)
    transcript.append(child.before)
    child.close()
    text = "".join(transcript)
    record_transcript(request, "login transcript", text)

    assert f"login-42 as {alice.name}" in text.replace("\r", "")
    assert child.exitstatus == 0


def test_wrong_code_is_refused(request, test_users, mfad, login_ns):
    alice = test_users["mfa-alice"]
    secret = mfad.enroll_totp(alice)
    wrong = str((int(mfad.next_code(alice, secret)) + 313131) % 1000000).zfill(6)
    child = start_login(login_ns, alice)

    d = converse(child, [alice.password], [wrong] * 3, timeout=40, stop_at=r"login: ")
    record_transcript(request, "login transcript", d.transcript)

    assert d.prompts == ["password", "code", "code", "code"]
    assert "Invalid code, 2 tries left" in d.lines()
    # PAM_MAXTRIES ends login at once (shadow's login then exits 0, without a shell)
    assert "Maximum number of tries exceeded (1)" in d.lines(), d.transcript
    assert "$ " not in d.transcript and not d.stopped


def test_wrong_password_never_reaches_the_code_prompt(request, test_users, mfad, login_ns):
    alice = test_users["mfa-alice"]
    secret = mfad.enroll_totp(alice)
    child = start_login(login_ns, alice)

    d = converse(child, ["not-" + alice.password], [mfad.next_code(alice, secret)], timeout=40,
                 stop_at=r"login: ")
    record_transcript(request, "login transcript", d.transcript)

    assert d.prompts == ["password"]
    assert "Login incorrect" in d.lines(), d.transcript
    assert d.stopped  # login asks for a user name again
