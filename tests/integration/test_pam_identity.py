"""State is keyed by the account (its uid), not by the spelling of the name a login used (issue
17): a second passwd entry with the same uid is the same account, with the same factors, through
pam_mfa.so and the bus API. (A case-folding NSS source, the other way to get two names for one
account, cannot be produced with the files source these tests use.)"""

import json
import pwd

from pam_helpers import ALICE, CODE_PROMPT, PAM_PERMIT, PAM_SUCCESS, PAM_MAXTRIES, PAM_USER_UNKNOWN
from pam_helpers import alice, pam  # noqa: F401 (fixtures are found by name)


def nullok_service(pam):
    return pam.add("nullok", f"required {pam.mfa('nullok max_tries=1')}", f"required {PAM_PERMIT}")


def test_an_alias_is_asked_for_the_accounts_factor(pam, mfad, alice, alice_alias):
    # Before: the alias had no factor of its own, and nullok let it in without a code.
    svc = nullok_service(pam)
    code = mfad.next_code(ALICE, alice)
    r = pam.run(svc, alice_alias, ["%06d" % ((int(code) + 500000) % 1000000)])
    assert r.prompts == [CODE_PROMPT], r
    assert r.rc != PAM_SUCCESS
    r = pam.run(svc, alice_alias, [code]).expect(PAM_SUCCESS)
    assert r.prompts == [CODE_PROMPT]
    # The code is the account's: used through the alias, it is spent for the name too.
    r = pam.run(svc, ALICE, [code])
    assert r.rc == PAM_MAXTRIES and r.errors == ["Invalid code"], r
    # The audit trail names the account and its uid, and the name the login used.
    rows = mfad.call("ListAuditEvents", "a{sv}",
                     {"user": ["@s", ALICE], "limit": ["@u", 1000]}).expect_ok()
    success = [row for row in rows if row["kind"] == "auth.success"][-1]
    details = json.loads(success["details"])
    assert details["uid"] == str(pwd.getpwnam(ALICE).pw_uid)
    assert details["login_name"] == alice_alias


def test_enrolling_through_an_alias_enrolls_the_account(pam, mfad, test_users, alice_alias):
    secret = mfad.enroll_totp(alice_alias)
    try:
        info = mfad.call("GetUser", "s", ALICE).expect_ok()
        assert info["user"] == ALICE and info["methods"] == ["totp"], info
        users = mfad.call("ListUsers").expect_ok()
        assert [u["user"] for u in users if u["user"] in (ALICE, alice_alias)] == [ALICE], users
        svc = nullok_service(pam)
        r = pam.run(svc, ALICE, [mfad.next_code(alice_alias, secret)]).expect(PAM_SUCCESS)
        assert r.prompts == [CODE_PROMPT]
    finally:
        mfad.call("ResetUser", "s", alice_alias).expect_ok()
    info = mfad.call("GetUser", "s", ALICE).expect_ok()
    assert info["methods"] == []


def test_a_name_nss_does_not_know_is_refused(pam, mfad, test_users):
    # Before: an unknown name had "no factor", and nullok let the login through.
    r = pam.run(nullok_service(pam), "mfa-nobody-at-all", [])
    assert r.rc == PAM_USER_UNKNOWN, r
    assert r.prompts == []
    mfad.call("BeginAuthentication", "sa{ss}", "mfa-nobody-at-all",
              {"service": "login"}).expect_error("NoSuchUser")
