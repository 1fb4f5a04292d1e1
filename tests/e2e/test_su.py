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
    assert "su-ok" not in d.lines()
    assert d.exitstatus == 1
    assert any(line.startswith("su: ") for line in d.lines()), d.transcript


def test_target_without_a_factor_is_refused(request, test_users, mfad, su_ns):
    alice, bob = test_users["mfa-alice"], test_users["mfa-bob"]  # alice never enrolled

    d = run_su(su_ns, bob, alice.name, [alice.password], ["123456"], request=request)

    assert "su-ok" not in d.lines()
    assert d.exitstatus == 1
