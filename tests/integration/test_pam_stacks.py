"""pam_mfa.so's return codes inside real stacks (docs/pam_mfa.md, "Return codes"): required,
requisite, sufficient and
[success=1 default=ignore], beside pam_matrix (a password), pam_permit and pam_deny. Success only
on a verified code; no failure of ours turns into a success of the stack."""

from pam_helpers import (ALICE, CODE_PROMPT, PAM_AUTH_ERR, PAM_AUTHINFO_UNAVAIL, PAM_DENY,
                         PAM_MAXTRIES, PAM_PERMIT, PAM_SUCCESS)
from pam_helpers import alice, pam  # noqa: F401 (fixtures are found by name)

BOB = "mfa-bob"
PASSWORD = "matrix-pw-1"


def bad(code):
    return "%06d" % ((int(code) + 1) % 1000000)


def expect_success_only_on_the_right_code(pam, mfad, alice, svc):
    """svc passes on alice's right code only: a wrong code, a user not enrolled (BOB) and the
    daemon gone (stopped here) each fail the stack with PAM_AUTH_ERR."""
    code = mfad.next_code(ALICE, alice)
    pam.run(svc, ALICE, [bad(code)]).expect(PAM_AUTH_ERR)
    pam.run(svc, ALICE, [code]).expect(PAM_SUCCESS)
    pam.run(svc, BOB, []).expect(PAM_AUTH_ERR)
    mfad.stop()
    pam.run(svc, ALICE, []).expect(PAM_AUTH_ERR)


def test_required_after_password(pam, mfad, alice):
    pam.set_passwords([(ALICE, PASSWORD, "req")])
    svc = pam.add("req", f"required {pam.matrix()}", f"required {pam.mfa('max_tries=1')}")
    code = mfad.next_code(ALICE, alice)
    r = pam.run(svc, ALICE, [PASSWORD, code]).expect(PAM_SUCCESS)
    assert r.prompts[1:] == [CODE_PROMPT]
    # A wrong password still runs the code prompt (required does not stop the stack) and fails.
    code = mfad.next_code(ALICE, alice)
    r = pam.run(svc, ALICE, ["wrong", code]).expect(PAM_AUTH_ERR)
    assert CODE_PROMPT in r.prompts
    # Right password, wrong code: the module's failure is the stack's.
    code = mfad.next_code(ALICE, alice)
    pam.run(svc, ALICE, [PASSWORD, bad(code)]).expect(PAM_MAXTRIES)


def test_requisite_stops_the_stack(pam, mfad, alice):
    pam.set_passwords([(ALICE, PASSWORD, "rqs")])
    svc = pam.add("rqs", f"requisite {pam.mfa('max_tries=1')}", f"required {pam.matrix()}")
    code = mfad.next_code(ALICE, alice)
    r = pam.run(svc, ALICE, [bad(code), PASSWORD]).expect(PAM_MAXTRIES)
    assert r.prompts == [CODE_PROMPT], "the password is not asked for after a failed code"
    r = pam.run(svc, ALICE, [code, PASSWORD]).expect(PAM_SUCCESS)
    assert len(r.prompts) == 2


def test_sufficient(pam, mfad, alice):
    svc = pam.add("suf", f"sufficient {pam.mfa('max_tries=1')}", f"required {PAM_DENY}")
    # Not enrolled, and the daemon gone: never sufficient.
    expect_success_only_on_the_right_code(pam, mfad, alice, svc)


def test_success_skips_deny(pam, mfad, alice):
    # Debian's pam-auth-update pattern: [success=1 default=ignore] over a pam_deny fallback.
    svc = pam.add("skip", f"[success=1 default=ignore] {pam.mfa('max_tries=1 nullok')}",
                  f"requisite {PAM_DENY}", f"required {PAM_PERMIT}")
    # nullok's PAM_IGNORE is not a success either: it falls through to pam_deny.
    expect_success_only_on_the_right_code(pam, mfad, alice, svc)


def test_required_daemon_down_is_authinfo_unavail(pam, mfad, alice):
    svc = pam.add("down", f"required {pam.mfa()}", f"required {PAM_PERMIT}")
    mfad.stop()
    r = pam.run(svc, ALICE, []).expect(PAM_AUTHINFO_UNAVAIL)
    assert r.prompts == []
