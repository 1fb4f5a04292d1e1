"""The real su on a terminal, standing in for a console login (/etc/pam.d/login takes the same
lines): an unprivileged user becomes another with that user's password and second factor.
Recipe: docs/console.md."""

import pytest

from e2e_harness import harness, render_pam, run_su

pytestmark = pytest.mark.skipif(harness.ASAN, reason="setuid su cannot preload the ASan runtime")


@pytest.fixture
def su_ns(namespace, bus, pam_module):
    namespace.pam_service("su", render_pam("su", pam_module, bus.address))
    return namespace


def test_password_then_code_opens_the_shell(request, test_users, mfad, su_ns):
    alice, bob = test_users["mfa-alice"], test_users["mfa-bob"]
    secret = mfad.enroll_totp(alice)

    d = run_su(su_ns, bob, alice.name, [alice.password], [mfad.next_code(alice, secret)],
               request=request)

    assert d.prompts == ["password", "code"]
    assert "su-ok" in d.lines(), d.transcript
    assert d.exitstatus == 0


def test_wrong_code_is_refused(request, test_users, mfad, su_ns):
    alice, bob = test_users["mfa-alice"], test_users["mfa-bob"]
    secret = mfad.enroll_totp(alice)
    wrong = str((int(mfad.next_code(alice, secret)) + 171717) % 1000000).zfill(6)

    d = run_su(su_ns, bob, alice.name, [alice.password], [wrong] * 3, request=request)

    assert d.prompts == ["password", "code", "code", "code"]
    assert "Invalid code, 2 tries left" in d.lines()
    assert "Invalid code, 1 try left" in d.lines()
    assert "su-ok" not in d.lines()
    assert d.exitstatus == 1
    assert "su: Have exhausted maximum number of retries for service" in d.lines(), d.transcript


def test_target_without_a_factor_is_refused(request, test_users, mfad, su_ns):
    alice, bob = test_users["mfa-alice"], test_users["mfa-bob"]  # alice never enrolled

    d = run_su(su_ns, bob, alice.name, [alice.password], ["123456"], request=request)

    assert d.prompts == ["password"]
    assert any(line.startswith("Multi-factor authentication is required but not set up")
               for line in d.lines()), d.transcript
    assert "su: Authentication failure" in d.lines()
    assert d.exitstatus == 1


def test_repeated_failures_lock_out_even_the_right_code(request, test_users, mfad_factory,
                                                        su_ns):
    mfad = mfad_factory
    mfad.set_config("Policy", "MaxFailures", 2)
    mfad.start()
    alice, bob = test_users["mfa-alice"], test_users["mfa-bob"]
    secret = mfad.enroll_totp(alice)
    good = mfad.next_code(alice, secret)
    wrong = [str((int(good) + k) % 1000000).zfill(6) for k in (11, 22, 33)]

    failing = run_su(su_ns, bob, alice.name, [alice.password], wrong, request=request)
    locked = run_su(su_ns, bob, alice.name, [alice.password], [good], request=request)

    # The second wrong code reaches MaxFailures: the lockout ends this login at once...
    assert failing.prompts == ["password", "code", "code"], failing.transcript
    assert any(line.startswith("Too many failed attempts; try again in")
               for line in failing.lines()), failing.transcript
    assert "su: Have exhausted maximum number of retries for service" in failing.lines()
    # ...and the next one before any code is asked, however right the code would have been.
    assert locked.prompts == ["password"]
    assert any(line.startswith("Too many failed attempts; try again in")
               for line in locked.lines()), locked.transcript
    assert "su-ok" not in locked.lines() and locked.exitstatus == 1


def test_mfad_not_running_fails_closed(request, test_users, mfad, su_ns):
    alice, bob = test_users["mfa-alice"], test_users["mfa-bob"]
    secret = mfad.enroll_totp(alice)
    code = mfad.next_code(alice, secret)
    mfad.stop()

    d = run_su(su_ns, bob, alice.name, [alice.password], [code], request=request)

    assert d.prompts == ["password"]
    assert "su: Authentication service cannot retrieve authentication info" in d.lines()
    assert "su-ok" not in d.lines() and d.exitstatus == 1
