"""Step-up by SMS (issue 19): a user whose only factor is SMS has a code texted for a change of
their own account (SendStepUpCode) and changes everything with it through mfactl: a new phone,
new backup codes, SMS disabled. The texted code works once, a wrong one is refused and counted,
only the user themself may ask for one, and a user without a phone is told so. Runs against the
real mfad and the local Twilio (fake_twilio.py)."""

import json
import subprocess

import pytest

from conftest import sanitizer_env
from mfactl_helpers import STEP_UP_MESSAGE
from sms_helpers import fake  # noqa: F401 (a fixture)
from sms_helpers import MASKED, PHONE, twilio_config

ALICE = "mfa-alice"
BOB = "mfa-bob"
NEW_PHONE = "+15557650042"
NEW_MASKED = "+1\u2022\u2022\u2022\u2022\u2022\u20220042"


@pytest.fixture
def sms_mfad(mfad_factory, fake):
    """start(**sms_keys) -> mfad texting through fake."""
    def start(**sms):
        twilio_config(mfad_factory, fake)
        for k, v in sms.items():
            mfad_factory.set_config("SMS", k, v)
        return mfad_factory.start()
    return start


def enroll_phone(mfad, fake, user=ALICE, phone=PHONE):
    """An admin (root) enrolls user's phone: SMS is then user's only factor."""
    n = len(fake.requests)
    mfad.call("BeginSmsEnrollment", "sss", user, phone, "").expect_ok()
    mfad.call("ConfirmSmsEnrollment", "ss", user, fake.wait_code(n + 1)).expect_ok()


def audit_rows(mfad, kind):
    rows = mfad.call("ListAuditEvents", "a{sv}", {"limit": ["@u", 1000]}).expect_ok()
    return [r for r in rows if r["kind"] == kind]


def details(row):
    return json.loads(row["details"])


def other_code(code):
    return "%06d" % ((int(code) + 1) % 1000000)


def mfactl_texted(mfad, fake, user, *args, answer=lambda code: code):
    """`mfactl --send-sms ARGS` as user: once the text reached the provider, answer(code) is
    written to mfactl's standard input. Returns (CompletedProcess, the texted code)."""
    n = len(fake.requests)
    argv = ["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--init-groups", "--",
            mfad.mfactl_binary, "--bus-address", mfad.bus.address, "--send-sms", *args]
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=sanitizer_env())
    try:
        code = fake.wait_code(n + 1)
        out, err = p.communicate(answer(code) + "\n", timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return subprocess.CompletedProcess(argv, p.returncode, out, err), code


def test_sms_only_user_changes_phone_backup_codes_and_disables_sms(sms_mfad, fake, test_users):
    mfad = sms_mfad(MaxSendsPerWindow=10)
    alice = test_users[ALICE]
    enroll_phone(mfad, fake)
    # Without a code: refused, and told how to get one.
    r = mfad.mfactl("backup-codes", user=alice)
    assert r.returncode == 1
    assert r.stderr == STEP_UP_MESSAGE + ", or --send-sms to have one texted to " + MASKED + "\n"

    # A new phone: disable sms (SMS was the only factor: none is left), enroll the new number.
    r, _ = mfactl_texted(mfad, fake, alice, "disable", ALICE, "sms")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"A code was sent to {MASKED}.\nDisabled sms for {ALICE}.\n"
    assert fake.requests[-1]["to"] == PHONE
    assert mfad.call("GetUser", "s", ALICE).expect_ok()["methods"] == []
    n = len(fake.requests)
    r = mfad.mfactl("--json", "enroll", "sms", "--phone", NEW_PHONE, user=alice)
    assert r.returncode == 0, r.stderr
    r = mfad.mfactl("confirm", "sms", ALICE, "-", user=alice, input=fake.wait_code(n + 1) + "\n")
    assert r.returncode == 0, r.stderr
    assert mfad.call("GetUser", "s", ALICE).expect_ok()["masked_phone"] == NEW_MASKED

    # New backup codes, by a code texted to the new phone (--json: the notice goes to stderr).
    r, code = mfactl_texted(mfad, fake, alice, "--json", "backup-codes")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["codes"]) == 10
    assert f"A code was sent to {NEW_MASKED}." in r.stderr
    assert fake.requests[-1]["to"] == NEW_PHONE
    sent = [details(row) for row in audit_rows(mfad, "sms.sent")]
    assert sent[-1]["purpose"] == "step-up" and sent[-1]["phone"] == NEW_MASKED
    ok = details(audit_rows(mfad, "auth.success")[-1])
    assert ok["purpose"] == "step-up" and ok["method"] == "sms"
    assert ok["action"] == "backup-codes"

    # SMS disabled by a texted code: the backup codes stay, as today.
    r, _ = mfactl_texted(mfad, fake, alice, "disable", ALICE, "sms")
    assert r.returncode == 0, r.stderr
    info = mfad.call("GetUser", "s", ALICE).expect_ok()
    assert info["methods"] == ["backup"] and info["masked_phone"] == ""
    # No phone and no code or number in clear in mfad's log.
    log = mfad.log_text()
    assert PHONE not in log and NEW_PHONE not in log and code not in log


def test_wrong_texted_code_is_refused_counted_and_a_used_one_dead(sms_mfad, fake, test_users):
    mfad = sms_mfad(MaxSendsPerWindow=10)
    alice = test_users[ALICE]
    enroll_phone(mfad, fake)
    r, code = mfactl_texted(mfad, fake, alice, "backup-codes", answer=other_code)
    assert r.returncode == 1
    assert "mfactl: wrong code: Invalid code; " in r.stderr and "tries left" in r.stderr
    assert mfad.call("GetUser", "s", ALICE).expect_ok()["failures"] == 1
    failure = audit_rows(mfad, "auth.failure")[-1]
    assert failure["reason"] == "bad-code" and details(failure)["purpose"] == "step-up"
    # The texted code still works (one wrong try of MaxAttemptsPerCode=3), passed as a current
    # code, once.
    r = mfad.mfactl("--current-code", "-", "backup-codes", user=alice, input=code + "\n")
    assert r.returncode == 0, r.stderr
    assert mfad.call("GetUser", "s", ALICE).expect_ok()["backup_codes_left"] == 10
    r = mfad.mfactl("--current-code", "-", "disable", ALICE, "sms", user=alice,
                    input=code + "\n")
    assert r.returncode == 1 and "mfactl: wrong code: " in r.stderr
    assert "sms" in mfad.call("GetUser", "s", ALICE).expect_ok()["methods"]


def test_interactive_offer_of_a_text(sms_mfad, fake, test_users):
    import pexpect
    from mfactl_helpers import spawn_mfactl
    mfad = sms_mfad()
    alice = test_users[ALICE]
    enroll_phone(mfad, fake)
    n = len(fake.requests)
    child = spawn_mfactl(mfad, ["backup-codes"], user=alice)
    child.expect_exact(f"Send a code by SMS to {MASKED}? [y/N] ")
    child.sendline("y")
    child.expect_exact(f"A code was sent to {MASKED}.")
    child.expect_exact("SMS code: ")
    child.sendline(fake.wait_code(n + 1))
    child.expect_exact("New backup codes for mfa-alice.")
    child.expect_exact("not shown again")
    child.expect(pexpect.EOF)  # mfactl exits by itself (closing first would hang it up)
    child.close()
    assert child.exitstatus == 0
    # Declined: asked for a current code (here a backup code) instead, as before.
    backup = mfad.call("GenerateBackupCodes", "ss", ALICE, "").expect_ok()
    child = spawn_mfactl(mfad, ["backup-codes"], user=alice)
    child.expect_exact(f"Send a code by SMS to {MASKED}? [y/N] ")
    child.sendline("")
    child.expect_exact("Current verification code: ")
    child.sendline(backup[0])
    child.expect_exact("New backup codes for mfa-alice.")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert len(fake.requests) == n + 1


def test_only_the_user_may_have_a_step_up_code_texted(sms_mfad, fake, test_users):
    mfad = sms_mfad()
    enroll_phone(mfad, fake)
    n = len(fake.requests)
    bob = test_users[BOB]
    msg = mfad.call("SendStepUpCode", "s", ALICE, user=bob).expect_error("NotAllowed")
    assert PHONE not in msg and MASKED not in msg
    # Nor an admin or root: they change other accounts without a code.
    mfad.call("SendStepUpCode", "s", ALICE, user=test_users["mfa-carol"]).expect_error(
        "NotAllowed")
    mfad.call("SendStepUpCode", "s", ALICE).expect_error("NotAllowed")
    mfad.call("SendStepUpCode", "s", "mfa-nobody", user=bob).expect_error("NoSuchUser")
    assert len(fake.requests) == n
    denied = [details(row) for row in audit_rows(mfad, "access.denied")]
    assert any(d.get("action") == "SendStepUpCode" for d in denied)


def test_no_sms_factor_is_a_clear_error(sms_mfad, fake, test_users):
    mfad = sms_mfad()
    bob = test_users[BOB]
    mfad.enroll_totp(BOB)
    msg = mfad.call("SendStepUpCode", "s", BOB, user=bob).expect_error("NotEnrolled")
    assert "SMS is not one of your second factors" in msg
    r = mfad.mfactl("--send-sms", "backup-codes", user=bob, input="")
    assert r.returncode == 1
    assert r.stderr.startswith("mfactl: not enrolled: SMS is not one of your second factors")
    # A TOTP user's step-up reads as it always did.
    r = mfad.mfactl("backup-codes", user=bob)
    assert r.returncode == 1 and r.stderr == STEP_UP_MESSAGE + "\n"
    # --send-sms with --current-code: a usage error.
    r = mfad.mfactl("--send-sms", "--current-code", "123456", "backup-codes", user=bob)
    assert r.returncode == 2
    assert fake.requests == []


def test_step_up_texts_obey_send_limits_and_provider_failures(sms_mfad, fake, test_users):
    mfad = sms_mfad(MaxSendsPerWindow=2)
    alice = test_users[ALICE]
    enroll_phone(mfad, fake)  # text 1 of 2
    fake.script = ["unauthorized"]
    msg = mfad.call("SendStepUpCode", "s", ALICE, user=alice).expect_error("SmsUnavailable")
    assert PHONE not in msg and PHONE[-7:] not in msg
    failed = audit_rows(mfad, "sms.failed")[-1]
    assert details(failed)["purpose"] == "step-up" and failed["reason"] == "provider-auth"
    # The code of a text that did not go out does not work.
    mfad.call("GenerateBackupCodes", "ss", ALICE, fake.code(), user=alice).expect_error("BadCode")
    msg = mfad.call("SendStepUpCode", "s", ALICE, user=alice).expect_error("SmsRateLimited")
    assert PHONE not in msg
