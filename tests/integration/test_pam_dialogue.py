"""pam_mfa.so's login dialogue against the real mfad on the private bus, through pam_wrapper:
what the user sees (prompts, messages) and the PAM return code the host acts on."""

import json

from pam_helpers import (ALICE, CODE_PROMPT, NOT_ENROLLED_MESSAGE, PAM_AUTH_ERR, PAM_CONV_ERR,
                         PAM_MAXTRIES, PAM_PERMIT, PAM_DENY, PAM_SERVICE_ERR,
                         PAM_SUCCESS, PAM_USER_UNKNOWN, PAM_SET_ITEMS, PAM_GET_ITEMS,
                         assert_no_secrets)
from pam_helpers import alice, pam  # noqa: F401 (fixtures are found by name)

BOB = "mfa-bob"


def wrong_code(code):
    return "%06d" % ((int(code) + 500000) % 1000000)


def test_right_code_succeeds_with_one_prompt(pam, mfad, alice):
    code = mfad.next_code(ALICE, alice)
    r = pam.run(pam.single("login", "debug"), ALICE, [code]).expect(PAM_SUCCESS)
    assert r.prompts == [CODE_PROMPT]
    assert r.errors == []
    # debug logging is verbose but never carries the code, nor does mfad's log.
    assert any("verified by totp" in line for line in r.syslog)
    assert_no_secrets([code], r.syslog, r.stderr, mfad.log_text())


def test_wrong_code_then_right_code(pam, mfad, alice):
    code = mfad.next_code(ALICE, alice)
    bad = wrong_code(code)
    r = pam.run(pam.single("login"), ALICE, [bad, code]).expect(PAM_SUCCESS)
    assert r.prompts == [CODE_PROMPT, CODE_PROMPT]
    assert r.errors == ["Invalid code, 2 tries left"]
    assert_no_secrets([code, bad], r.stderr, mfad.log_text())


def test_max_tries_wrong_codes_is_maxtries(pam, mfad, alice):
    code = mfad.next_code(ALICE, alice)
    bads = [wrong_code(code), "000000", "999999"]
    bads = [b for b in bads if b != code]
    r = pam.run(pam.single("login"), ALICE, bads[:3] + [code]).expect(PAM_MAXTRIES)
    assert r.prompts == [CODE_PROMPT] * 3
    assert r.errors == ["Invalid code, 2 tries left", "Invalid code, 1 try left", "Invalid code"]
    assert_no_secrets(bads, r.stderr, mfad.log_text())


def test_max_tries_argument_and_custom_prompt(pam, mfad, alice):
    svc = pam.add("custom", f"required {pam.mfa('max_tries=1')} [prompt=Token please: ]")
    code = mfad.next_code(ALICE, alice)
    r = pam.run(svc, ALICE, [wrong_code(code), code]).expect(PAM_MAXTRIES)
    assert r.prompts == ["Token please: "]
    assert r.errors == ["Invalid code"]


def test_replayed_code_is_refused(pam, mfad, alice):
    svc = pam.single("login", "max_tries=1")
    code = mfad.next_code(ALICE, alice)
    pam.run(svc, ALICE, [code]).expect(PAM_SUCCESS)
    r = pam.run(svc, ALICE, [code]).expect(PAM_MAXTRIES)
    assert r.errors == ["Invalid code"]


def test_backup_code_works_once(pam, mfad, alice):
    codes = mfad.call("GenerateBackupCodes", "ss", ALICE, "").expect_ok()
    assert len(codes) == 10
    svc = pam.single("login", "max_tries=1")
    r = pam.run(svc, ALICE, [codes[0]]).expect(PAM_SUCCESS)
    assert r.errors == []
    r = pam.run(svc, ALICE, [codes[0]]).expect(PAM_MAXTRIES)
    assert r.errors == ["Invalid code"]
    assert_no_secrets(codes, r.stderr, mfad.log_text())


def test_methods_argument_refuses_other_factors(pam, mfad, alice):
    codes = mfad.call("GenerateBackupCodes", "ss", ALICE, "").expect_ok()
    svc = pam.single("totponly", "methods=totp max_tries=1")
    r = pam.run(svc, ALICE, [codes[0]])
    assert r.rc in (PAM_MAXTRIES, PAM_AUTH_ERR), r
    code = mfad.next_code(ALICE, alice)
    pam.run(svc, ALICE, [code]).expect(PAM_SUCCESS)


def test_lockout_is_maxtries_with_the_daemons_message(pam, mfad_factory, test_users):
    mfad_factory.set_config("Policy", "MaxFailures", "3")
    mfad = mfad_factory.start()
    secret = mfad.enroll_totp(ALICE)
    svc = pam.single("login", "max_tries=5")
    code = mfad.next_code(ALICE, secret)
    bads = [b for b in ("000000", "111111", "222222", "333333", "444444") if b != code]
    r = pam.run(svc, ALICE, bads).expect(PAM_MAXTRIES)
    assert r.errors, "the user is told why"
    # The last message is the daemon's, not ours: it gives the wait.
    assert not r.errors[-1].startswith("Invalid code"), r.errors
    # Locked out: even the right code is not asked for.
    r = pam.run(svc, ALICE, [code]).expect(PAM_MAXTRIES)
    assert r.prompts == []
    assert len(r.errors) == 1 and r.errors[0] and "Invalid code" not in r.errors[0]
    assert_no_secrets(bads + [code], r.stderr, mfad.log_text())


def test_not_enrolled_is_denied_with_a_message(pam, mfad, test_users):
    r = pam.run(pam.single("login"), BOB, []).expect(PAM_AUTH_ERR)
    assert r.prompts == []
    assert r.errors == [NOT_ENROLLED_MESSAGE]


def test_not_enrolled_with_nullok_is_ignored(pam, mfad, test_users):
    # PAM_IGNORE: neither a success (sufficient + deny fails) nor a failure (required + permit
    # passes), and no prompt or message.
    then_permit = pam.add("np", f"required {pam.mfa('nullok')}", f"required {PAM_PERMIT}")
    r = pam.run(then_permit, BOB, []).expect(PAM_SUCCESS)
    assert r.prompts == [] and r.errors == []
    sufficient = pam.add("ns", f"sufficient {pam.mfa('nullok')}", f"required {PAM_DENY}")
    pam.run(sufficient, BOB, []).expect(PAM_AUTH_ERR)


def test_nullok_does_not_skip_an_enrolled_user(pam, mfad, alice):
    svc = pam.add("np", f"required {pam.mfa('nullok max_tries=1')}", f"required {PAM_PERMIT}")
    r = pam.run(svc, ALICE, ["000001"])
    assert r.rc == PAM_MAXTRIES or r.errors == ["Invalid code"], r
    assert r.rc != PAM_SUCCESS


def test_nullok_does_not_skip_a_user_enrolled_for_other_methods(pam, mfad, alice):
    # Issue 17: mfa-alice has TOTP; a service that accepts only backup codes must not take her
    # for unenrolled (nullok would let her in without a code). She is denied, and told what this
    # service accepts.
    svc = pam.add("bo", f"required {pam.mfa('nullok methods=backup max_tries=1')}",
                  f"required {PAM_PERMIT}")
    r = pam.run(svc, ALICE, []).expect(PAM_AUTH_ERR)
    assert r.prompts == []
    assert r.errors == ["None of your second factors is accepted by this service. "
                        "This service accepts: backup"]
    rows = mfad.call("ListAuditEvents", "a{sv}", {"user": ["@s", ALICE]}).expect_ok()
    denied = [row for row in rows if row["reason"] == "method-not-accepted"]
    assert denied and json.loads(denied[-1]["details"])["accepted"] == "backup", rows


def test_nullok_does_not_skip_a_user_with_backup_codes_only(pam, mfad, test_users):
    mfad.call("GenerateBackupCodes", "ss", BOB, "").expect_ok()
    try:
        svc = pam.add("to", f"required {pam.mfa('nullok methods=totp,sms')}",
                      f"required {PAM_PERMIT}")
        r = pam.run(svc, BOB, []).expect(PAM_AUTH_ERR)
        assert r.errors == ["None of your second factors is accepted by this service. "
                            "This service accepts: totp, sms"]
        # Not nullok: the same answer, not the "not set up" one.
        r = pam.run(pam.single("totp", "methods=totp"), BOB, []).expect(PAM_AUTH_ERR)
        assert r.errors == ["None of your second factors is accepted by this service. "
                            "This service accepts: totp"]
    finally:
        mfad.call("ResetUser", "s", BOB).expect_ok()


def test_nullok_still_skips_a_user_with_only_a_pending_enrollment(pam, mfad, test_users):
    # A pending enrollment is no factor yet: skipping it under nullok is what the user had before
    # starting to enroll, and denying would lock out whoever began an enrollment and left it.
    mfad.call("BeginTotpEnrollment", "sa{sv}", BOB, {}).expect_ok()
    try:
        svc = pam.add("np", f"required {pam.mfa('nullok methods=totp')}", f"required {PAM_PERMIT}")
        r = pam.run(svc, BOB, []).expect(PAM_SUCCESS)
        assert r.prompts == [] and r.errors == []
    finally:
        mfad.call("ResetUser", "s", BOB).expect_ok()


def test_unknown_user(pam, mfad, test_users):
    r = pam.run(pam.single("login"), "mfa-nobody-here", [])
    assert r.rc in (PAM_USER_UNKNOWN, PAM_AUTH_ERR), r
    assert r.prompts == []


def test_conversation_failure(pam, mfad, alice):
    # No answer at all: the application's conversation fails.
    r = pam.run(pam.single("login"), ALICE, []).expect(PAM_CONV_ERR)
    assert r.prompts == [CODE_PROMPT]


def test_overlong_answer_is_refused_locally(pam, mfad, alice):
    code = mfad.next_code(ALICE, alice)
    huge = "7" * 3000
    r = pam.run(pam.single("login"), ALICE, [huge, code]).expect(PAM_SUCCESS)
    assert r.errors == ["Invalid code, 2 tries left"]
    # Never sent: the daemon counted no failure.
    info = mfad.call("GetUser", "s", ALICE).expect_ok()
    assert info["failures"] == 0
    r = pam.run(pam.single("one", "max_tries=1"), ALICE, ["8" * 3000]).expect(PAM_MAXTRIES)
    assert r.errors == ["Invalid code"]


def test_empty_answer_counts_as_a_try(pam, mfad, alice):
    code = mfad.next_code(ALICE, alice)
    r = pam.run(pam.single("login"), ALICE, ["", code]).expect(PAM_SUCCESS)
    assert r.errors == ["Invalid code, 2 tries left"]


def test_sms_answer_without_sms(pam, mfad, alice):
    # Until SMS exists the daemon answers SmsUnavailable: a message, the prompt again, no try
    # spent.
    code = mfad.next_code(ALICE, alice)
    r = pam.run(pam.single("login", "max_tries=1"), ALICE, ["sms", code]).expect(PAM_SUCCESS)
    assert r.prompts == [CODE_PROMPT, CODE_PROMPT]
    assert r.errors == ["SMS is not available"]


def test_sms_answers_are_bounded(pam, mfad, alice):
    r = pam.run(pam.single("login", "max_tries=1"), ALICE, ["sms"] * 10).expect(PAM_MAXTRIES)
    assert len(r.prompts) == 4
    assert r.errors[-1] == "No more SMS codes can be sent during this login"


def test_invalid_argument_is_service_error(pam, mfad, alice):
    r = pam.run(pam.single("bad", "max_tries=0"), ALICE, []).expect(PAM_SERVICE_ERR)
    assert r.prompts == []
    assert any("max_tries" in line for line in r.syslog)


def test_unknown_argument_is_logged_and_ignored(pam, mfad, alice):
    code = mfad.next_code(ALICE, alice)
    r = pam.run(pam.single("login", "frobnicate=7"), ALICE, [code]).expect(PAM_SUCCESS)
    assert any("unknown module argument ignored: frobnicate" in line for line in r.syslog)


def authtok_stack(pam, name, args):
    """pam_set_items puts the driver's --authtok into PAM_AUTHTOK before the module runs (as an
    earlier password module would); pam_get_items shows the application what is left after."""
    return pam.add(name, f"optional {PAM_SET_ITEMS}", f"required {pam.mfa(args)}",
                   f"optional {PAM_GET_ITEMS}")


def test_use_first_pass_takes_the_code_from_authtok(pam, mfad, alice):
    svc = authtok_stack(pam, "ufp", "use_first_pass")
    code = mfad.next_code(ALICE, alice)
    r = pam.run(svc, ALICE, [], authtok=code).expect(PAM_SUCCESS)
    assert r.prompts == []
    # password + code: the trailing six digits are the code.
    code = mfad.next_code(ALICE, alice)
    r = pam.run(svc, ALICE, [], authtok="s3cret-pw" + code).expect(PAM_SUCCESS)
    assert r.prompts == []
    # Without forward_pass the item is left as it was.
    assert r.authtok == "s3cret-pw" + code
    # A password with no code in it is never sent, and use_first_pass does not prompt.
    r = pam.run(svc, ALICE, [], authtok="just-a-password").expect(PAM_AUTH_ERR)
    assert r.prompts == []
    assert mfad.call("GetUser", "s", ALICE).expect_ok()["failures"] == 0


def test_use_first_pass_wrong_code_does_not_prompt(pam, mfad, alice):
    svc = authtok_stack(pam, "ufp", "use_first_pass")
    code = mfad.next_code(ALICE, alice)
    r = pam.run(svc, ALICE, [code], authtok=wrong_code(code)).expect(PAM_AUTH_ERR)
    assert r.prompts == []


def test_try_first_pass_falls_back_to_the_prompt(pam, mfad, alice):
    svc = authtok_stack(pam, "tfp", "try_first_pass")
    code = mfad.next_code(ALICE, alice)
    r = pam.run(svc, ALICE, [code], authtok="just-a-password").expect(PAM_SUCCESS)
    assert r.prompts == [CODE_PROMPT]
    code = mfad.next_code(ALICE, alice)
    r = pam.run(svc, ALICE, [], authtok=code).expect(PAM_SUCCESS)
    assert r.prompts == []
    # A wrong first-pass code is a spent try; the prompt takes the rest.
    code = mfad.next_code(ALICE, alice)
    r = pam.run(svc, ALICE, [code], authtok=wrong_code(code)).expect(PAM_SUCCESS)
    assert r.prompts == [CODE_PROMPT]
    assert r.errors == ["Invalid code, 2 tries left"]


def test_forward_pass_splits_password_and_code(pam, mfad, alice):
    svc = pam.add("fwd", f"required {pam.mfa('forward_pass')}", f"optional {PAM_GET_ITEMS}")
    code = mfad.next_code(ALICE, alice)
    r = pam.run(svc, ALICE, ["hunter2" + code]).expect(PAM_SUCCESS)
    assert r.prompts == ["Password & verification code: "]
    # The next module gets the password alone.
    assert r.authtok == "hunter2"
    assert_no_secrets([code, "hunter2"], r.syslog, mfad.log_text())


def test_forward_pass_accepts_a_long_password(pam, mfad, alice):
    # The 64-byte bound is for codes; a combined answer may carry a password as long as PAM's.
    svc = pam.add("fwl", f"required {pam.mfa('forward_pass')}", f"optional {PAM_GET_ITEMS}")
    password = "p" * 200
    code = mfad.next_code(ALICE, alice)
    r = pam.run(svc, ALICE, [password + code]).expect(PAM_SUCCESS)
    assert r.authtok == password


def test_forward_pass_with_try_first_pass_forwards_the_password(pam, mfad, alice):
    svc = authtok_stack(pam, "fwt", "try_first_pass forward_pass")
    code = mfad.next_code(ALICE, alice)
    r = pam.run(svc, ALICE, [], authtok="pw-1" + code).expect(PAM_SUCCESS)
    assert r.prompts == []
    assert r.authtok == "pw-1"
