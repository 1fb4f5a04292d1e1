"""The real sudo (setuid, so its PAM service is bind-mounted in a private mount namespace): the
user's password, then a fresh second factor, every time. Recipe: docs/sudo.md."""

import pytest

from e2e_harness import harness, render_pam, run_sudo

pytestmark = pytest.mark.skipif(harness.ASAN, reason="setuid sudo cannot preload the ASan runtime")

SUDOERS = "Defaults timestamp_timeout=0\n{user} ALL=(ALL) ALL\n"


@pytest.fixture
def sudo_ns(namespace, bus, pam_module, test_users):
    namespace.pam_service("sudo", render_pam("sudo", pam_module, bus.address))
    namespace.sudoers_drop_in(SUDOERS.format(user=test_users["mfa-alice"].name))
    return namespace


def test_password_then_code_runs_the_command_as_root(test_users, mfad, sudo_ns):
    alice = test_users["mfa-alice"]
    secret = mfad.enroll_totp(alice)

    r = run_sudo(sudo_ns, alice, [alice.password, mfad.next_code(alice, secret)])

    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "root"
    assert "Verification code:" in r.stderr


def test_every_sudo_asks_for_a_fresh_code(test_users, mfad, sudo_ns):
    alice = test_users["mfa-alice"]
    secret = mfad.enroll_totp(alice)
    code = mfad.next_code(alice, secret)

    first = run_sudo(sudo_ns, alice, [alice.password, code])
    replay = run_sudo(sudo_ns, alice, [alice.password, code])
    fresh = run_sudo(sudo_ns, alice, [alice.password, mfad.next_code(alice, secret)])

    assert first.returncode == 0, first.stderr
    assert replay.returncode != 0 and replay.stdout == "", replay.stderr
    assert fresh.returncode == 0, fresh.stderr


def test_wrong_code_is_refused(test_users, mfad, sudo_ns):
    alice = test_users["mfa-alice"]
    secret = mfad.enroll_totp(alice)
    wrong = str((int(mfad.next_code(alice, secret)) + 424242) % 1000000).zfill(6)

    r = run_sudo(sudo_ns, alice, [alice.password] + [wrong] * 3)

    assert r.returncode == 1
    assert r.stdout == ""  # the command never ran
    assert "Invalid code, 2 tries left" in r.stderr, r.stderr
    assert "Invalid code, 1 try left" in r.stderr, r.stderr
    # sudo then starts over (its own passwd_tries) and finds no more input
    assert "Sorry, try again." in r.stderr


def test_backup_code_works_in_sudo(test_users, mfad, sudo_ns):
    alice = test_users["mfa-alice"]
    mfad.enroll_totp(alice)
    codes = mfad.call("GenerateBackupCodes", "ss", alice.name, "").expect_ok()

    r = run_sudo(sudo_ns, alice, [alice.password, codes[0]])

    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "root"


def test_mfad_down_refuses_sudo(test_users, mfad, sudo_ns):
    alice = test_users["mfa-alice"]
    mfad.enroll_totp(alice)
    mfad.stop()

    r = run_sudo(sudo_ns, alice, [alice.password])  # any code prompt would meet end of input

    assert r.returncode == 1
    assert r.stdout == ""
    assert "Verification code:" not in r.stderr  # fail closed, before asking
    assert "Sorry, try again." in r.stderr


def test_user_without_a_factor_is_told_why(test_users, mfad, sudo_ns):
    alice = test_users["mfa-alice"]  # never enrolled

    r = run_sudo(sudo_ns, alice, [alice.password])

    assert r.returncode == 1
    assert r.stdout == ""
    assert "Multi-factor authentication is required but not set up" in r.stderr, r.stderr
    assert "Verification code:" not in r.stderr
