"""Enrollment during login (docs/rollout.md) with the real programs: the real ssh client over
keyboard-interactive shows the QR code and the secret mfad made; the code that confirms it is
computed by oathtool from the secret as the client printed it. The same through su and sudo, and
a skip before the deadline. Run alone: MFA_BUILD_DIR=<build> python3 -m pytest tests/e2e/test_rollout.py
"""

import datetime
import io
import re
import subprocess
import time

import pexpect
import pytest

from e2e_harness import (CODE_PROMPT, PASSWORD_PROMPT, harness, record_transcript, render_pam,
                         run_sudo, spawn, ssh_argv)

QR_BLOCKS = re.compile(r"[\u2580\u2584\u2588 ]{30,}")
SAVED_PROMPT = r"Press Enter once you have saved them: ?"
BACKUP_CODE = re.compile(r"^\s*([A-Z0-9]{4}-[A-Z0-9]{4})\s*$", re.M)


def secret_from_output(text):
    """The base32 secret as the person reads it: the groups of 4 after "Or type this key:"."""
    text = text.replace("\r", "")
    at = text.index("Or type this key:")
    groups = []
    for line in text[at:].split("\n")[1:]:
        found = re.findall(r"(?:(?<=\s)|^)([A-Z2-7]{1,4})(?=\s|$)", line.split("   ")[-1].strip())
        if not found:
            break
        groups += found
        if len(groups) >= 8:
            break
    secret = "".join(groups)
    assert len(secret) == 32, f"no secret in the output:\n{text[at:at + 2000]}"
    return secret


def oathtool_code(secret, at=None):
    argv = ["oathtool", "--totp", "-b", secret]
    if at is not None:
        argv += ["-N", f"@{int(at)}"]
    return subprocess.run(argv, capture_output=True, text=True, check=True,
                          timeout=10).stdout.strip()


def fresh_code(secret):
    """A code of the current 30 s step that is not about to end (mfad's window would take the
    step before anyway)."""
    now = time.time()
    if now % 30 > 27:
        time.sleep(30 - now % 30 + 0.2)
    return oathtool_code(secret)


def finish(child, timeout=40):
    """Answers the prompt after the backup codes (if any) and waits for the end."""
    if child.expect([SAVED_PROMPT, pexpect.EOF], timeout=timeout) == 0:
        child.sendline("")
        child.expect(pexpect.EOF, timeout=timeout)
    child.close()


def ssh_enroll(server, user, password, request, skip=False, timeout=60):
    """ssh with keyboard-interactive: the password, then the enrollment. Returns (transcript,
    exit status, secret shown)."""
    child = spawn(ssh_argv(server, user))
    out = io.StringIO()
    child.logfile_read = out
    child.expect(PASSWORD_PROMPT, timeout=timeout)
    child.sendline(password)
    child.expect(CODE_PROMPT, timeout=timeout)
    secret = secret_from_output(out.getvalue())
    if skip:
        child.sendline("")
    else:
        child.sendline(fresh_code(secret))
    finish(child, timeout)
    record_transcript(request, f"ssh {user} enrollment transcript", out.getvalue())
    return out.getvalue().replace("\r", ""), child.exitstatus, secret


def test_ssh_enrolls_during_login_with_the_qr_code_and_an_oathtool_code(
        request, test_users, mfad, sshd_factory):
    bob = test_users["mfa-bob"]  # never enrolled
    server = sshd_factory(module_args=("enroll",))

    text, status, secret = ssh_enroll(server, bob.name, bob.password, request)

    assert status == 0, text
    assert f"e2e-ok as {bob.name}" in text
    # The QR code came through ssh's keyboard-interactive: rows of half blocks.
    assert len(QR_BLOCKS.findall(text)) >= 15, text
    assert "otpauth://totp/" in text and f"secret={secret}" in text
    assert "Multi-factor authentication is required for your account" in text
    assert "Your backup codes" in text
    codes = BACKUP_CODE.findall(text)
    assert len(codes) == 10, text
    assert f"Accepted keyboard-interactive/pam for {bob.name} from 127.0.0.1" in server.log_text()
    info = mfad.call("GetUser", "s", bob.name).expect_ok()
    assert info["methods"] == ["totp", "backup"] or set(info["methods"]) == {"totp", "backup"}
    assert info["backup_codes_left"] == 10
    # Every line fits 80 columns but the URI, kept whole.
    for line in text.split("\n"):
        if "otpauth://" not in line and QR_BLOCKS.search(line):
            assert len(line.rstrip()) <= 80, line

    # The next login is an ordinary one, with the authenticator just set up.
    child = spawn(ssh_argv(server, bob.name))
    child.expect(PASSWORD_PROMPT)
    child.sendline(bob.password)
    child.expect(CODE_PROMPT)
    child.sendline(oathtool_code(secret, time.time() + 30))
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "Scan this QR code" not in child.before


def test_ssh_skip_before_the_deadline(request, test_users, mfad_factory, sshd_factory):
    deadline = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=10))
    mfad_factory.set_config("Rollout", "Deadline", deadline.strftime("%Y-%m-%d"))
    mfad = mfad_factory.start()
    bob = test_users["mfa-bob"]
    server = sshd_factory(module_args=("enroll",))

    text, status, _ = ssh_enroll(server, bob.name, bob.password, request, skip=True)

    assert status == 0, text
    assert f"e2e-ok as {bob.name}" in text
    assert re.search(r"\((9|10) days left\)", text), text
    assert "press Enter to skip" in text
    info = mfad.call("GetUser", "s", bob.name).expect_ok()
    assert info["methods"] == []
    rows = mfad.call("ListAuditEvents", "a{sv}", {"user": ["@s", bob.name], "limit": ["@u", 1000]}).expect_ok()
    assert any(r["reason"] == "enrollment-skipped" for r in rows), rows


def test_ssh_past_the_deadline_without_enroll_is_refused(request, test_users, mfad_factory,
                                                         sshd_factory):
    mfad_factory.set_config("Rollout", "Deadline", "2020-01-01")
    mfad = mfad_factory.start()
    bob = test_users["mfa-bob"]
    server = sshd_factory(module_args=("nullok",))

    child = spawn(ssh_argv(server, bob.name))
    out = io.StringIO()
    child.logfile_read = out
    child.expect(PASSWORD_PROMPT)
    child.sendline(bob.password)
    child.expect(pexpect.EOF, timeout=40)
    child.close()
    record_transcript(request, "ssh past the deadline", out.getvalue())
    assert child.exitstatus == 255, out.getvalue()
    assert "e2e-ok" not in out.getvalue()
    # sshd does not relay a message that no prompt follows: the refusal is in the audit trail.
    rows = mfad.call("ListAuditEvents", "a{sv}",
                     {"user": ["@s", bob.name], "limit": ["@u", 1000]}).expect_ok()
    assert any(r["kind"] == "auth.not-enrolled" and r["outcome"] == "denied" for r in rows), rows


@pytest.mark.skipif(harness.ASAN, reason="setuid su cannot preload the ASan runtime")
def test_su_enrolls_on_a_terminal(request, test_users, mfad, namespace, bus, pam_module):
    alice, bob = test_users["mfa-alice"], test_users["mfa-bob"]  # bob never enrolled
    namespace.pam_service("su", render_pam("su", pam_module, bus.address, ("enroll",)))
    argv = namespace.argv(["setpriv", f"--reuid={alice.uid}", f"--regid={alice.gid}",
                           "--init-groups", "--", "su", "-", bob.name, "-c", "echo su-ok"])
    child = spawn(argv, env=namespace.env())
    out = io.StringIO()
    child.logfile_read = out
    child.expect(PASSWORD_PROMPT)
    child.sendline(bob.password)
    child.expect(CODE_PROMPT)
    secret = secret_from_output(out.getvalue())
    child.sendline(fresh_code(secret))
    finish(child)
    text = out.getvalue().replace("\r", "")
    record_transcript(request, "su enrollment transcript", text)
    assert len(QR_BLOCKS.findall(text)) >= 15, text
    assert "su-ok" in text and child.exitstatus == 0, text
    assert mfad.call("GetUser", "s", bob.name).expect_ok()["backup_codes_left"] == 10


@pytest.mark.skipif(harness.ASAN, reason="setuid sudo cannot preload the ASan runtime")
def test_sudo_without_a_terminal_a_wrong_code_enrolls_nothing(request, test_users, mfad,
                                                             namespace, bus, pam_module):
    # sudo -S (answers on stdin, no terminal) accepts the info messages but shows them nowhere:
    # the person sees only the prompt, and a code that does not confirm enrolls nothing.
    bob = test_users["mfa-bob"]
    namespace.pam_service("sudo", render_pam("sudo", pam_module, bus.address,
                                             ("enroll", "max_tries=1")))
    namespace.sudoers_drop_in(f"{bob.name} ALL=(ALL) ALL\n")
    r = run_sudo(namespace, bob, [bob.password, "000000"])
    record_transcript(request, "sudo stderr", r.stderr)
    assert r.returncode != 0
    assert "Verification code:" in r.stderr and "Invalid code" in r.stderr, r.stderr
    info = mfad.call("GetUser", "s", bob.name).expect_ok()
    assert info["methods"] == [], info


@pytest.mark.skipif(harness.ASAN, reason="setuid sudo cannot preload the ASan runtime")
def test_sudo_enrolls_with_a_code_from_the_secret_shown(request, test_users, mfad, namespace,
                                                        bus, pam_module):
    bob = test_users["mfa-bob"]
    namespace.pam_service("sudo", render_pam("sudo", pam_module, bus.address, ("enroll",)))
    namespace.sudoers_drop_in(f"{bob.name} ALL=(ALL) ALL\n")
    argv = namespace.argv(["setpriv", f"--reuid={bob.uid}", f"--regid={bob.gid}",
                           "--init-groups", "--", "sudo", "--", "id", "-un"])
    child = spawn(argv, env=namespace.env())
    out = io.StringIO()
    child.logfile_read = out
    child.expect(PASSWORD_PROMPT)
    child.sendline(bob.password)
    child.expect(CODE_PROMPT)
    secret = secret_from_output(out.getvalue())
    child.sendline(fresh_code(secret))
    finish(child)
    text = out.getvalue().replace("\r", "")
    record_transcript(request, "sudo enrollment transcript", text)
    assert child.exitstatus == 0, text
    assert "root" in text.split("\n")[-2:] or "\nroot" in text, text
    assert mfad.call("GetUser", "s", bob.name).expect_ok()["backup_codes_left"] == 10
