"""The rollout through pam_mfa.so and pam_wrapper (docs/rollout.md): enrollment during login
(`enroll`), [Rollout] Deadline= (skip until it, none after it), Groups=, RequireToken= with
enrollment tokens, an application that cannot show info messages, and what a login is told about
a drifting authenticator clock; the enrollment notice ([Enrollment] NoticeFile=) shown and
accepted (or not) before an enrollment during login."""

import base64
import datetime
import hashlib
import json
import os
import re
import time

import pytest

from conftest import totp
from pam_helpers import (ALICE, CODE_PROMPT, PAM_AUTH_ERR, PAM_IGNORE, PAM_MAXTRIES, PAM_PERMIT,
                         PAM_SUCCESS, NOT_ENROLLED_MESSAGE)
from pam_helpers import alice, pam  # noqa: F401 (fixtures are found by name)

BOB = "mfa-bob"
CAROL = "mfa-carol"
TOKEN_PROMPT = "Enrollment token: "
SAVED_PROMPT = "Press Enter once you have saved them: "
NOTICE_PROMPT = "Type yes to accept: "
NOTICE_DECLINED = "Enrollment needs the notice accepted; login denied."
NOTICE = ("Your second factor is personal data (GDPR Art. 13).\n\n"
          "See https://example.test/privacy \u2013 questions: dpo@example.test\n")


@pytest.fixture(autouse=True)
def echo_info(monkeypatch):
    # pam_driver echoes info messages on stderr: a running login reads the secret shown.
    monkeypatch.setenv("PAM_DRIVER_ECHO_INFO", "1")


def with_permit(pam, name, args):
    """The module then pam_permit: PAM_IGNORE (a skip) gives PAM_SUCCESS, anything else the
    module's own failure."""
    return pam.add(name, f"required {pam.mfa(args)}", f"required {PAM_PERMIT}")


def secret_of(lines):
    """The base32 secret from the lines shown ("Or type this key:" then groups of 4)."""
    text = [l.split("pam_driver: info ", 1)[1].rstrip("\n") for l in lines
            if l.startswith("pam_driver: info ")]
    at = next(i for i, l in enumerate(text) if "Or type this key:" in l)
    groups = []
    for line in text[at + 1:]:
        found = re.findall(r"(?:^|\s)([A-Z2-7]{1,4})(?=\s|$)", line.split("   ")[-1])
        if not found:
            break
        groups += found
        if len(groups) >= 8:
            break
    secret = "".join(groups)
    assert len(secret) == 32, text
    return secret


def enroll_and_confirm(login, code_for=None):
    """Waits for the code prompt of an enrollment and answers it with a right code."""
    login.wait_prompt()
    secret = secret_of(login.stderr_lines)
    login.answer(code_for(secret) if code_for else totp(secret))
    return secret


def test_enroll_during_login_confirms_and_shows_backup_codes(pam, mfad, test_users):
    login = pam.start(pam.single("login", "enroll"), BOB)
    secret = enroll_and_confirm(login)
    login.wait_prompt()  # "Press Enter once you have saved them"
    login.answer("")
    r = login.finish().expect(PAM_SUCCESS)
    assert r.prompts == [CODE_PROMPT, SAVED_PROMPT]
    assert r.infos[0].startswith("Multi-factor authentication is required for your account.")
    assert "Scan this QR code with your authenticator app:" in r.infos
    assert any(f"secret={secret}" in i for i in r.infos)
    qr = [i for i in r.infos if "\u2588" in i]
    assert len(qr) >= 15 and all(len(i) <= 80 for i in qr)
    header = next(i for i, t in enumerate(r.infos) if t.startswith("Enrolled. Your backup codes"))
    codes = r.infos[header + 1:header + 11]
    assert len(codes) == 10 and all(re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", c) for c in codes)
    info = mfad.call("GetUser", "s", BOB).expect_ok()
    assert sorted(info["methods"]) == ["backup", "totp"] and info["backup_codes_left"] == 10
    # The secret never reaches a log.
    assert secret not in mfad.log_text()
    assert not any(secret in l for l in r.syslog)
    # The next login is an ordinary one.
    later = totp(secret, t=time.time() + 30)
    pam.run(pam.single("again", "enroll"), BOB, [later]).expect(PAM_SUCCESS)
    # A backup code works too.
    pam.run(pam.single("again2", "max_tries=1"), BOB, [codes[0]]).expect(PAM_SUCCESS)


def test_enrollment_wrong_codes_store_nothing(pam, mfad, test_users):
    login = pam.start(pam.single("login", "enroll max_tries=2"), BOB)
    login.wait_prompt()
    login.answer("000000")
    login.wait_prompt()
    login.answer("999999")
    r = login.finish().expect(PAM_MAXTRIES)
    assert r.errors == ["Invalid code, 1 try left", "Invalid code"]
    assert mfad.call("GetUser", "s", BOB).expect_ok()["methods"] == []
    # No deadline: an empty answer is no skip.
    login = pam.start(pam.single("login2", "enroll max_tries=1"), BOB)
    login.wait_prompt()
    login.answer("")
    login.finish().expect(PAM_MAXTRIES)


def test_without_enroll_and_deadline_nothing_changes(pam, mfad, test_users):
    r = pam.run(pam.single("login"), BOB, []).expect(PAM_AUTH_ERR)
    assert r.prompts == [] and r.errors == [NOT_ENROLLED_MESSAGE]
    r = pam.run(with_permit(pam, "np", "nullok"), BOB, []).expect(PAM_SUCCESS)
    assert r.prompts == [] and r.errors == [] and r.infos == []


def future(days):
    return (datetime.datetime.now(datetime.timezone.utc)
            + datetime.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_before_the_deadline_an_empty_answer_skips(pam, mfad_factory, test_users):
    mfad_factory.set_config("Rollout", "Deadline", future(12))
    mfad = mfad_factory.start()
    # PAM_IGNORE: alone and required, the stack fails (no module succeeded); after a password
    # module (pam_permit here) the login goes on.
    r = pam.run(with_permit(pam, "login", "enroll"), BOB, [""]).expect(PAM_SUCCESS)
    assert r.prompts == [CODE_PROMPT]
    assert "(12 days left)" in r.infos[0] and "press Enter to skip" in r.infos[0]
    assert r.infos[-1].startswith("Type the code your app shows now to confirm, or press Enter")
    r = pam.run(pam.single("alone", "enroll"), BOB, [""])
    assert r.rc != PAM_SUCCESS  # a skip is never PAM_SUCCESS
    rows = mfad.call("ListAuditEvents", "a{sv}", {"user": ["@s", BOB], "limit": ["@u", 1000]}).expect_ok()
    skips = [row for row in rows if row["reason"] == "enrollment-skipped"]
    assert len(skips) == 2 and skips[0]["kind"] == "auth.not-enrolled"
    assert mfad.call("GetUser", "s", BOB).expect_ok()["methods"] == []
    # Without `enroll`: told, and in without a prompt.
    r = pam.run(with_permit(pam, "plain", ""), BOB, []).expect(PAM_SUCCESS)
    assert r.prompts == []
    assert "(12 days left)" in r.infos[0] and "mfactl enroll totp" in r.infos[0]


def test_from_the_deadline_no_skip_and_nullok_does_not_help(pam, mfad_factory, test_users):
    mfad_factory.set_config("Rollout", "Deadline", "2020-01-01")
    mfad_factory.start()
    r = pam.run(with_permit(pam, "nullok", "nullok"), BOB, []).expect(PAM_AUTH_ERR)
    assert r.prompts == []
    assert "has passed" in r.errors[0]
    login = pam.start(with_permit(pam, "enroll", "enroll nullok max_tries=1"), BOB)
    login.wait_prompt()
    login.answer("")  # no skip any more
    r = login.finish().expect(PAM_MAXTRIES)
    assert "press Enter to skip" not in " ".join(r.infos)
    # Enrolling is still the way in.
    login = pam.start(pam.single("enroll2", "enroll"), BOB)
    enroll_and_confirm(login)
    login.wait_prompt()
    login.answer("")
    login.finish().expect(PAM_SUCCESS)


def test_groups_only_members_must_have_a_factor(pam, mfad_factory, test_users):
    mfad_factory.set_config("Rollout", "Groups", "mfa-admin nosuch-group")
    mfad = mfad_factory.start()
    # bob is not in mfa-admin: PAM_IGNORE without nullok, no prompt.
    r = pam.run(with_permit(pam, "login", ""), BOB, []).expect(PAM_SUCCESS)
    assert r.prompts == [] and r.errors == []
    r = pam.run(pam.single("alone"), BOB, [])
    assert r.rc != PAM_SUCCESS
    # carol is: denied as ever.
    r = pam.run(with_permit(pam, "login2", ""), CAROL, []).expect(PAM_AUTH_ERR)
    assert r.errors == [NOT_ENROLLED_MESSAGE]
    # A non-member who has a factor is still asked for it.
    secret = mfad.enroll_totp(BOB)
    r = pam.run(with_permit(pam, "login3", "max_tries=1"), BOB, ["000000" if totp(secret) != "000000" else "111111"])
    r.expect(PAM_MAXTRIES)


def test_require_token(pam, mfad_factory, test_users):
    mfad_factory.set_config("Rollout", "RequireToken", "yes")
    mfad = mfad_factory.start()
    token, expires = mfad.call("CreateEnrollmentToken", "su", BOB, 72).expect_ok()
    assert re.fullmatch(r"([A-Z2-7]{4}-){5}[A-Z2-7]{4}", token)
    assert abs(expires - (time.time() + 72 * 3600)) < 120
    other, _ = mfad.call("CreateEnrollmentToken", "su", ALICE, 72).expect_ok()
    # Not an admin: refused.
    mfad.call("CreateEnrollmentToken", "su", BOB, 72,
              user=test_users[BOB]).expect_error("NotAllowed")

    login = pam.start(pam.single("login", "enroll max_tries=3"), BOB)
    login.wait_prompt()  # the token first
    login.answer(other)  # alice's
    login.wait_prompt()
    login.answer("WRONG-TOKEN")
    login.wait_prompt()
    login.answer(token.lower())
    enroll_and_confirm(login)
    login.wait_prompt()
    login.answer("")
    r = login.finish().expect(PAM_SUCCESS)
    assert r.prompts == [TOKEN_PROMPT] * 3 + [CODE_PROMPT, SAVED_PROMPT]
    assert len(r.errors) == 2 and all("not valid" in e for e in r.errors)
    # Spent: it cannot start another enrollment (bob's factor reset first).
    mfad.call("ResetUser", "s", BOB).expect_ok()
    r = pam.run(pam.single("again", "enroll max_tries=1"), BOB, [token])
    r.expect(PAM_MAXTRIES)
    assert r.errors and "not valid" in r.errors[0]
    assert token.replace("-", "") not in mfad.log_text() and token not in mfad.log_text()
    # Self-service first enrollment asks for one too; an admin enrolling someone needs none.
    mfad.call("BeginTotpEnrollment", "sa{sv}", ALICE, {},
              user=test_users[ALICE]).expect_error("EnrollmentTokenRequired")
    mfad.call("BeginTotpEnrollment", "sa{sv}", ALICE, {"current_code": ["@s", other]},
              user=test_users[ALICE]).expect_ok()
    mfad.call("BeginTotpEnrollment", "sa{sv}", CAROL, {}).expect_ok()
    kinds = [row["kind"] for row in
             mfad.call("ListAuditEvents", "a{sv}", {"limit": ["@u", 1000]}).expect_ok() if row["kind"] == "enroll.token"]
    assert len(kinds) >= 4  # 2 created by root, 2 spent


def test_an_application_without_info_messages_cannot_enroll(pam, mfad_factory, test_users,
                                                            monkeypatch):
    mfad_factory.set_config("Rollout", "Deadline", future(5))
    mfad = mfad_factory.start()
    monkeypatch.setenv("PAM_DRIVER_NO_INFO", "1")
    r = pam.run(with_permit(pam, "login", "enroll"), BOB, ["", "123456"])
    r.expect(PAM_AUTH_ERR)  # never a skip, never a prompt
    assert r.prompts == []
    assert any("cannot show info messages" in line for line in r.syslog), r.syslog
    assert any("set up multi-factor authentication with mfactl enroll totp" in e
               for e in r.errors)
    assert mfad.call("GetUser", "s", BOB).expect_ok()["methods"] == []


def test_clock_drift_is_told_refused_and_audited(pam, mfad, alice):
    # 8 steps ahead of the daemon's clock, outside the tests' Window=5 but within 5 minutes:
    # refused, counted, told.
    ahead = totp(alice, t=time.time() + 240)
    r = pam.run(pam.single("login", "max_tries=1"), ALICE, [ahead]).expect(PAM_MAXTRIES)
    assert len(r.errors) == 1
    assert re.search(r"clock seems (210|240|270) seconds ahead", r.errors[0]), r.errors
    rows = mfad.call("ListAuditEvents", "a{sv}", {"user": ["@s", ALICE], "limit": ["@u", 1000]}).expect_ok()
    drift = [row for row in rows if row["reason"] == "clock-drift"]
    assert len(drift) == 1 and drift[0]["kind"] == "auth.failure"
    assert mfad.call("GetUser", "s", ALICE).expect_ok()["failures"] == 1
    assert ahead not in mfad.log_text()


def test_rollout_calls_are_root_only_and_bound_to_the_challenge(mfad, test_users):
    bob = test_users[BOB]
    mfad.call("GetLoginEnrollment", "s", "00" * 16, user=bob).expect_error(
        "org.freedesktop.DBus.Error.AccessDenied")
    mfad.call("SkipEnrollment", "s", "00" * 16).expect_error("NoSuchChallenge")
    mfad.call("BeginLoginEnrollment", "ss", "00" * 16, "").expect_error("NoSuchChallenge")


def notice_file(mfad_factory, text=NOTICE):
    """[Enrollment] NoticeFile= holding text; returns the text's SHA-256 (hex)."""
    path = os.path.join(mfad_factory.dir, "notice.txt")
    with open(path, "w") as f:
        f.write(text)
    mfad_factory.set_config("Enrollment", "NoticeFile", path)
    return hashlib.sha256(text.encode()).hexdigest()


def audit_rows(mfad, user):
    rows = mfad.call("ListAuditEvents", "a{sv}",
                     {"user": ["@s", user], "limit": ["@u", 1000]}).expect_ok()
    for row in rows:
        if isinstance(row.get("details"), str):
            row["details"] = json.loads(row["details"] or "{}")
    return rows


def test_notice_shown_and_accepted_before_the_enrollment(pam, mfad_factory, test_users):
    digest = notice_file(mfad_factory)
    mfad = mfad_factory.start()
    login = pam.start(pam.single("login", "enroll"), BOB)
    login.wait_prompt()
    assert "Scan this QR code" not in "".join(login.stderr_lines)  # the notice comes first
    login.answer("yes")
    enroll_and_confirm(login)
    login.wait_prompt()
    login.answer("")
    r = login.finish().expect(PAM_SUCCESS)
    assert r.prompts == [NOTICE_PROMPT, CODE_PROMPT, SAVED_PROMPT]
    at = r.infos.index("Your second factor is personal data (GDPR Art. 13).")
    assert r.infos[at + 1:at + 3] == ["", "See https://example.test/privacy \u2013 questions: "
                                          "dpo@example.test"]
    assert at < r.infos.index("Scan this QR code with your authenticator app:")
    assert sorted(mfad.call("GetUser", "s", BOB).expect_ok()["methods"]) == ["backup", "totp"]
    rows = audit_rows(mfad, BOB)
    accepted = [row for row in rows if row["kind"] == "enroll.notice"]
    assert len(accepted) == 1, rows
    assert accepted[0]["details"]["notice_sha256"] == digest
    assert accepted[0]["details"]["via"] == "login"
    assert any(row["kind"] == "enroll.confirm" for row in rows)


def test_notice_declined_denies_and_enrolls_nothing(pam, mfad_factory, test_users):
    notice_file(mfad_factory)
    mfad = mfad_factory.start()
    for answer in ("no", "", "y e s"):
        r = pam.run(pam.single("login", "enroll"), BOB, [answer]).expect(PAM_AUTH_ERR)
        assert r.prompts == [NOTICE_PROMPT]
        assert r.errors == [NOTICE_DECLINED]
        assert "Scan this QR code with your authenticator app:" not in r.infos
        assert not any("secret=" in i for i in r.infos)
    assert mfad.call("GetUser", "s", BOB).expect_ok()["methods"] == []
    rows = audit_rows(mfad, BOB)
    assert not any(row["kind"] in ("enroll.notice", "enroll.confirm") for row in rows)
    refused = [row for row in rows if row["kind"] == "enroll.begin"]
    assert len(refused) == 3 and all(row["outcome"] == "denied" and
                                     row["reason"] == "notice-not-accepted" for row in refused)
    assert all(row["details"]["via"] == "login" for row in refused)
    # Before a deadline an empty answer is the skip it is elsewhere; "no" still denies.
    mfad.stop()
    mfad_factory.set_config("Rollout", "Deadline", future(3))
    mfad = mfad_factory.start()
    r = pam.run(with_permit(pam, "skip", "enroll"), BOB, [""]).expect(PAM_SUCCESS)
    assert r.prompts == [NOTICE_PROMPT]
    r = pam.run(with_permit(pam, "skip2", "enroll"), BOB, ["no"]).expect(PAM_AUTH_ERR)
    assert r.errors == [NOTICE_DECLINED]
    assert mfad.call("GetUser", "s", BOB).expect_ok()["methods"] == []


def test_long_notice_lines_are_cut_for_the_conversation(pam, mfad_factory, test_users):
    # 801 bytes: cut at 480 bytes would split a character; the cut comes before it.
    long_line = "x" + "\u00e9" * 400
    notice_file(mfad_factory, "Short line\n" + long_line + "\n")
    mfad_factory.start()
    r = pam.run(pam.single("login", "enroll"), BOB, ["no"]).expect(PAM_AUTH_ERR)
    at = r.infos.index("Short line")
    assert r.infos[at + 1:at + 3] == ["x" + "\u00e9" * 239, "\u00e9" * 161]
