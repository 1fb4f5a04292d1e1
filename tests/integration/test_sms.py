"""The SMS factor against the real mfad and a local server that speaks Twilio's API
(fake_twilio.py): enrollment, login, expiry, attempts per code, send limits, the provider's
answers (429, 401, 400, 500, refused), the webhook provider, deferred replies that never stall
other logins, and no phone number or code in clear in any log, audit row or the database."""

import json
import os
import pwd
import subprocess
import threading
import time

import pytest

from conftest import current_step, wait_until
from daemon_helpers import dbus_script, run_mfad
from fake_twilio import AUTH_TOKEN, FROM, FakeTwilio
from pam_helpers import CODE_PROMPT, PAM_SUCCESS, PamServices, assert_no_secrets
from sms_helpers import clients, fake  # noqa: F401 (fixtures)
from sms_helpers import MASKED, PHONE, twilio_config, webhook_config

ALICE = "mfa-alice"
BOB = "mfa-bob"


@pytest.fixture
def sms_factory(mfad_factory, fake):
    """Configures mfad for the fake provider; returns start(**sms_keys)."""
    def start(provider="twilio", **sms):
        if provider == "twilio":
            twilio_config(mfad_factory, fake)
        else:
            webhook_config(mfad_factory, fake)
        for k, v in sms.items():
            mfad_factory.set_config("SMS", k, v)
        return mfad_factory.start()
    return start


@pytest.fixture
def client(mfad_factory, clients):
    """make() -> a new Client on mfad's bus, closed after the test."""
    return lambda: clients(mfad_factory)


@pytest.fixture
def scripted_login(sms_factory, fake, client):
    """start(answers) -> (mfad, c, challenge): mfad texting through fake, ALICE's phone enrolled,
    the provider scripted to give answers to the next sends, and a login of ALICE begun on c."""
    def start(answers):
        mfad = sms_factory()
        enroll_phone(mfad, fake)
        fake.script = answers
        c = client()
        challenge, _ = c.begin(ALICE)
        return mfad, c, challenge
    return start


def enroll_phone(mfad, fake, user=ALICE, phone=PHONE):
    n = len(fake.requests)
    masked = mfad.call("BeginSmsEnrollment", "sss", user, phone, "").expect_ok()
    assert masked == MASKED if phone == PHONE else phone not in masked
    code = fake.wait_code(n + 1)
    mfad.call("ConfirmSmsEnrollment", "ss", user, code).expect_ok()
    return masked


def send(c, challenge):
    return c.call("SendSmsCode", "s", challenge)


def audit_rows(mfad, kind=None):
    rows = mfad.call("ListAuditEvents", "a{sv}", {"limit": ["@u", 1000]}).expect_ok()
    return [r for r in rows if kind is None or r["kind"] == kind]


def test_enrollment_and_login_by_sms(sms_factory, fake, client, test_users):
    mfad = sms_factory()
    assert enroll_phone(mfad, fake) == MASKED
    first = fake.requests[0]
    assert first["auth_ok"] and first["to"] == PHONE and first["sender"] == FROM
    host = os.uname().nodename
    assert first["body"].startswith(f"mfad code for {host}: ")
    assert first["body"].endswith(" (valid 10 minutes)")

    info = mfad.call("GetUser", "s", ALICE).expect_ok()
    assert info["methods"] == ["sms"] and info["masked_phone"] == MASKED
    assert info["pending"] == []

    c = client()
    challenge, methods = c.begin(ALICE)
    assert methods == ["sms"]
    assert send(c, challenge).expect_ok() == MASKED
    assert c.call("Verify", "ss", challenge, fake.wait_code(2)).expect_ok() == "sms"
    c.call("EndAuthentication", "s", challenge).expect_ok()
    assert len(fake.requests) == 2 and all(r["auth_ok"] for r in fake.requests)

    # The code works once.
    c2 = client()
    ch2, _ = c2.begin(ALICE)
    c2.call("Verify", "ss", ch2, fake.code()).expect_error("BadCode")

    kinds = [r["kind"] for r in audit_rows(mfad)]
    assert kinds.count("sms.sent") == 2
    assert "enroll.confirm" in kinds


def test_confirm_needs_the_texted_code(sms_factory, fake, test_users):
    mfad = sms_factory()
    mfad.call("ConfirmSmsEnrollment", "ss", ALICE, "123456").expect_error("NoPendingEnrollment")
    mfad.call("BeginSmsEnrollment", "sss", ALICE, PHONE, "").expect_ok()
    code = fake.wait_code(1)
    wrong = "%06d" % ((int(code) + 1) % 1000000)
    mfad.call("ConfirmSmsEnrollment", "ss", ALICE, wrong).expect_error("BadCode")
    assert mfad.call("GetUser", "s", ALICE).expect_ok()["pending"] == ["sms"]
    mfad.call("ConfirmSmsEnrollment", "ss", ALICE, code).expect_ok()
    mfad.call("BeginSmsEnrollment", "sss", ALICE, PHONE, "").expect_error("AlreadyEnrolled")


@pytest.mark.parametrize("phone", ["15557654321", "+1555", "+1555765432109876", "+0155576543",
                                   "+1 555 765 4321", "+1555765432a"])
def test_phone_numbers_must_be_e164(sms_factory, fake, test_users, phone):
    mfad = sms_factory()
    msg = mfad.call("BeginSmsEnrollment", "sss", ALICE, phone, "").expect_error("InvalidArgument")
    assert "E.164" in msg
    assert fake.requests == []


def test_step_up_needed_when_another_factor_is_active(sms_factory, fake, test_users):
    mfad = sms_factory()
    secret = mfad.enroll_totp(ALICE)
    alice = test_users[ALICE]
    mfad.call("BeginSmsEnrollment", "sss", ALICE, PHONE, "",
              user=alice).expect_error("StepUpRequired")
    assert fake.requests == []
    mfad.call("BeginSmsEnrollment", "sss", ALICE, PHONE, mfad.next_code(ALICE, secret),
              user=alice).expect_ok()
    mfad.call("ConfirmSmsEnrollment", "ss", ALICE, fake.wait_code(1), user=alice).expect_ok()
    # Someone else's phone: refused.
    mfad.call("BeginSmsEnrollment", "sss", BOB, PHONE, "", user=alice).expect_error("NotAllowed")


def test_code_expires(sms_factory, fake, client, test_users):
    mfad = sms_factory(CodeLifetimeSeconds=30)
    enroll_phone(mfad, fake)
    c = client()
    challenge, _ = c.begin(ALICE)
    send(c, challenge).expect_ok()
    code = fake.wait_code(2)
    assert fake.requests[1]["body"].endswith("(valid 30 seconds)")
    # The code's stored expiry is moved into the past, as 30 s passing would (mfad reads it from
    # the database at each Verify; its clock cannot be injected from here). Verify is tried once
    # only, after it: a wrong try would count on the code.
    uid = pwd.getpwnam(ALICE).pw_uid
    where = f"user = 'uid/{uid}' AND purpose = 'login'"
    expires = int(mfad.sql(f"SELECT expires FROM sms_codes WHERE {where}"))
    assert expires > time.time() * 1e6 + 20e6  # valid for about 30 s from now
    r = subprocess.run(["sqlite3", mfad.db_path, ".timeout 10000",
                        f"UPDATE sms_codes SET expires = {int(time.time() * 1e6) - 1} WHERE {where}"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    # Told as expired, not as a wrong code (issue 18), and audited so.
    message = c.call("Verify", "ss", challenge, code).expect_error("CodeExpired")
    assert "type sms for a new one" in message
    rows = mfad.call("ListAuditEvents", "a{sv}", {"user": ["@s", ALICE],
                                                 "limit": ["@u", 1000]}).expect_ok()
    failures = [r for r in rows if r["kind"] == "auth.failure"]
    assert failures[-1]["reason"] == "expired", failures
    # The code died with it: typed again, it is a wrong code.
    c.call("Verify", "ss", challenge, code).expect_error("BadCode")


def test_three_wrong_tries_kill_a_code(sms_factory, fake, client, test_users):
    mfad = sms_factory()
    mfad.set_config("Policy", "MaxFailures", "10")
    enroll_phone(mfad, fake)
    c = client()
    challenge, _ = c.begin(ALICE)
    send(c, challenge).expect_ok()
    code = fake.wait_code(2)
    for i in range(3):
        wrong = "%06d" % ((int(code) + 1 + i) % 1000000)
        c.call("Verify", "ss", challenge, wrong).expect_error("BadCode")
    c.call("Verify", "ss", challenge, code).expect_error("BadCode")
    # A new text gives a new code that works.
    send(c, challenge).expect_ok()
    assert c.call("Verify", "ss", challenge, fake.wait_code(3)).expect_ok() == "sms"


def test_send_limit_per_user(sms_factory, fake, client, test_users):
    mfad = sms_factory(MaxSendsPerWindow=3)
    enroll_phone(mfad, fake)  # the first of three
    c = client()
    challenge, _ = c.begin(ALICE)
    send(c, challenge).expect_ok()
    send(c, challenge).expect_ok()
    msg = send(c, challenge).expect_error("SmsRateLimited")
    assert "Too many SMS codes" in msg
    assert len(fake.requests) == 3
    rows = [r for r in audit_rows(mfad, "sms.failed") if r["reason"] == "rate-limited"]
    assert rows and '"limit":"user"' in rows[-1]["details"].replace(" ", "")
    # The limit survives a restart (persistent state).
    mfad.restart()
    c2 = client()
    ch2, _ = c2.begin(ALICE)
    send(c2, ch2).expect_error("SmsRateLimited")


def test_send_limit_per_phone_across_users(sms_factory, fake, client, test_users):
    mfad = sms_factory(MaxSendsPerPhone=2, MaxSendsPerWindow=5)
    enroll_phone(mfad, fake, ALICE)
    enroll_phone(mfad, fake, BOB)
    msg = mfad.call("BeginSmsEnrollment", "sss", "mfa-carol", PHONE, "")
    msg.expect_error("SmsRateLimited")
    assert len(fake.requests) == 2


def test_429_then_success_honours_retry_after(scripted_login, fake, test_users):
    mfad, c, challenge = scripted_login(["busy-retry-1"])
    assert send(c, challenge).expect_ok() == MASKED
    reqs = fake.wait_requests(3)
    assert [r["answer"] for r in reqs[1:]] == ["busy-retry-1", "ok"]
    assert reqs[2]["time"] - reqs[1]["time"] >= 0.95  # Retry-After: 1
    assert c.call("Verify", "ss", challenge, fake.code()).expect_ok() == "sms"


def test_429_without_retry_after_backs_off_and_gives_up(scripted_login, fake, test_users):
    mfad, c, challenge = scripted_login(["busy", "busy", "busy"])
    start = time.monotonic()
    send(c, challenge).expect_error("SmsUnavailable")
    assert time.monotonic() - start < 10
    reqs = fake.requests[1:]
    assert len(reqs) == 3  # at most 3 tries
    gaps = [b["time"] - a["time"] for a, b in zip(reqs, reqs[1:])]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4, gaps  # exponential, jittered


def test_429_asking_too_long_a_wait_fails_at_once(scripted_login, fake, test_users):
    mfad, c, challenge = scripted_login(["busy-retry-60"])
    start = time.monotonic()
    msg = send(c, challenge).expect_error("SmsUnavailable")
    assert time.monotonic() - start < 3
    assert "60 s" in msg
    assert len(fake.requests) == 2


def test_5xx_is_not_retried(scripted_login, fake, test_users):
    mfad, c, challenge = scripted_login(["error"])
    msg = send(c, challenge).expect_error("SmsUnavailable")
    assert "not sent again" in msg
    # No retry comes later either: an absence takes real time to show, longer than a retry's
    # backoff (200 ms, then 400 ms, jittered: test_429_without_retry_after_backs_off_and_gives_up).
    time.sleep(1.5)
    assert len(fake.requests) == 2
    rows = audit_rows(mfad, "sms.failed")
    assert rows[-1]["reason"] == "provider-error"
    # The code of a failed text does not work.
    c.call("Verify", "ss", challenge, fake.code()).expect_error("BadCode")


def test_401_is_a_clean_error_an_audit_event_and_an_alert(scripted_login, fake, test_users):
    mfad, c, challenge = scripted_login(["unauthorized"])
    msg = send(c, challenge).expect_error("SmsUnavailable")
    assert msg == "SMS is unavailable: the provider refused mfad's credentials"
    assert len(fake.requests) == 2  # not retried
    row = audit_rows(mfad, "sms.failed")[-1]
    assert row["reason"] == "provider-auth" and row["outcome"] == "error"
    assert '"http_status":"401"' in row["details"].replace(" ", "")
    assert "ALERT: the SMS provider refused mfad's credentials" in mfad.log_text()
    assert AUTH_TOKEN not in mfad.log_text()


@pytest.mark.parametrize("answer,words", [("invalid", "not a valid phone number (Twilio 21211)"),
                                          ("unverified", "verified numbers (Twilio 21608)"),
                                          ("opted-out", "opted out of texts")])
def test_4xx_is_a_recipient_error(sms_factory, fake, test_users, answer, words):
    mfad = sms_factory()
    fake.script = [answer]
    msg = mfad.call("BeginSmsEnrollment", "sss", ALICE, PHONE, "").expect_error("SmsUnavailable")
    assert words in msg and MASKED in msg and PHONE not in msg
    assert len(fake.requests) == 1


def test_connection_refused_is_retried_then_reported(sms_factory, fake, client, test_users):
    mfad = sms_factory()
    enroll_phone(mfad, fake)
    fake.refuse()
    c = client()
    challenge, _ = c.begin(ALICE)
    start = time.monotonic()
    msg = send(c, challenge).expect_error("SmsUnavailable")
    took = time.monotonic() - start
    assert "could not be reached" in msg
    assert 0.7 <= took < 10, took  # two backoffs (0.25-0.5 s, then 0.5-1 s)


def test_webhook_sends_json_with_a_bearer_token(mfad_factory, test_users, client):
    hook = FakeTwilio(mode="webhook")
    try:
        webhook_config(mfad_factory, hook)
        mfad = mfad_factory.start()
        enroll_phone(mfad, hook)
        r = hook.requests[0]
        assert r["auth_ok"] and r["content_type"] == "application/json" and r["to"] == PHONE
        c = client()
        challenge, _ = c.begin(ALICE)
        send(c, challenge).expect_ok()
        assert c.call("Verify", "ss", challenge, hook.wait_code(2)).expect_ok() == "sms"
    finally:
        hook.stop()


def test_token_file_readable_by_others_is_refused(sms_factory, mfad_factory, fake, test_users):
    mfad = sms_factory()
    token = mfad_factory.config["Twilio"]["AuthTokenFile"]
    mfad.stop()
    os.chmod(token, 0o640)
    mfad.start()  # TOTP logins must go on: mfad starts, SMS is unavailable
    msg = mfad.call("BeginSmsEnrollment", "sss", ALICE, PHONE, "").expect_error("SmsUnavailable")
    assert "mode 0600" in msg
    assert fake.requests == []
    assert AUTH_TOKEN not in mfad.log_text()


def test_plain_http_to_a_remote_host_is_refused(sms_factory, mfad_factory, fake, test_users):
    mfad_factory.set_config("Twilio", "BaseURL", "http://192.0.2.1:8080")
    mfad = sms_factory()
    mfad.stop()
    mfad_factory.set_config("Twilio", "BaseURL", "http://192.0.2.1:8080")
    mfad.start()
    msg = mfad.call("BeginSmsEnrollment", "sss", ALICE, PHONE, "").expect_error("SmsUnavailable")
    assert "https://" in msg


def test_no_phone_number_or_code_in_clear(sms_factory, fake, client, test_users):
    mfad = sms_factory()
    enroll_phone(mfad, fake)
    c = client()
    challenge, _ = c.begin(ALICE)
    send(c, challenge).expect_ok()
    code = fake.wait_code(2)
    c.call("Verify", "ss", challenge, "000000" if code != "000000" else "111111")
    c.call("Verify", "ss", challenge, code).expect_ok()
    codes = [r["body"][-28:-22] for r in fake.requests] + [fake.code(0), code]
    audit = "\n".join(str(r) for r in audit_rows(mfad))
    mfad.stop()
    dump = subprocess.run(["sqlite3", mfad.db_path, ".dump"], capture_output=True,
                          text=True, check=True).stdout
    with open(mfad.db_path, "rb") as f:
        raw = f.read().decode("latin-1")
    for text, name in ((mfad.log_text(), "log"), (audit, "audit"), (dump, "dump"), (raw, "db")):
        assert PHONE not in text and PHONE[1:] not in text and PHONE[-7:] not in text, name
        assert_no_secrets([fake.code(0), code], text)
    assert MASKED in audit


def test_other_logins_are_served_while_a_send_is_slow(sms_factory, fake, client, test_users):
    mfad = sms_factory()
    enroll_phone(mfad, fake)
    secret = mfad.enroll_totp(BOB)
    fake.default = "slow"
    c = client()
    challenge, _ = c.begin(ALICE)
    result = {}

    def slow_send():
        result["reply"] = send(c, challenge)
        result["at"] = time.monotonic()

    t = threading.Thread(target=slow_send)
    start = time.monotonic()
    t.start()
    fake.wait_requests(2)
    c2 = client()
    ch, _ = c2.begin(BOB)
    assert c2.call("Verify", "ss", ch, mfad.next_code(BOB, secret)).expect_ok() == "totp"
    totp_done = time.monotonic()
    t.join(20)
    assert result["reply"].expect_ok() == MASKED
    assert totp_done - start < 1.5, "a TOTP login waited for the slow provider"
    assert result["at"] - start >= 1.9  # the deferred reply came when the provider answered


def test_login_by_sms_through_pam(sms_factory, fake, build_dir, test_users):
    mfad = sms_factory()
    enroll_phone(mfad, fake)
    pam = PamServices(build_dir, mfad.bus.address)
    try:
        login = pam.start(pam.single("login", "debug"), ALICE)
        login.wait_prompt()
        login.answer("sms")
        login.wait_prompt()
        code = fake.wait_code(2)
        login.answer(code)
        r = login.finish()
        r.expect(PAM_SUCCESS)
        assert r.prompts == [CODE_PROMPT, "SMS code: "]
        assert f"A code was sent to {MASKED}" in r.infos
        assert_no_secrets([code, PHONE, PHONE[1:]], r.syslog, r.stderr, mfad.log_text())
    finally:
        pam.cleanup()


def test_mfactl_enroll_confirm_and_status(sms_factory, fake, test_users):
    mfad = sms_factory()
    r = mfad.mfactl("--json", "enroll", "sms", ALICE, "--phone", PHONE)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"masked_phone": MASKED}
    r = mfad.mfactl("confirm", "sms", ALICE, fake.wait_code(1))
    assert r.returncode == 0, r.stderr
    assert "SMS for mfa-alice is active" in r.stdout
    r = mfad.mfactl("status", ALICE)
    assert r.returncode == 0 and MASKED in r.stdout and PHONE not in r.stdout
    r = mfad.mfactl("--json", "status", ALICE)
    assert json.loads(r.stdout)["masked_phone"] == MASKED
    r = mfad.mfactl("enroll", "sms", BOB, "--phone", "5557654321")
    assert r.returncode == 1 and "E.164" in r.stderr
    assert "5557654321" not in mfad.log_text()


# --- SMS pumping (issue 17): allowed prefixes, phone changes per day, the global cap near ------


def test_allowed_prefixes_refuse_other_numbers_at_enrollment(sms_factory, fake, test_users):
    mfad = sms_factory(AllowedPrefixes="+44 +49")
    alice = test_users["mfa-alice"]
    msg = mfad.call("BeginSmsEnrollment", "sss", ALICE, PHONE, "",
                    user=alice).expect_error("InvalidArgument")
    assert "+44 +49" in msg and "AllowedPrefixes" in msg
    assert PHONE not in msg and PHONE[-4:] not in msg
    # Admins are held to it too: the prefixes say where this host's texts may go.
    mfad.call("BeginSmsEnrollment", "sss", ALICE, PHONE, "").expect_error("InvalidArgument")
    assert fake.requests == []
    enroll_phone(mfad, fake, ALICE, "+4915123456789")


@pytest.mark.parametrize("value", ["44", "+", "+0", "+1 x", "+1234567890123456"])
def test_bad_allowed_prefixes_are_config_errors(mfad_factory, value):
    mfad_factory.set_config("SMS", "AllowedPrefixes", value)
    mfad_factory.write_config()
    r = run_mfad(mfad_factory, "--config", mfad_factory.config_path, "--check-config")
    assert r.returncode == 1 and "[SMS] AllowedPrefixes" in r.stdout + r.stderr


def test_phone_changes_per_day_are_limited_for_self_service(sms_factory, fake, test_users):
    mfad = sms_factory(MaxPhoneChangesPerDay=2, MaxSendsPerWindow=10)
    alice = test_users["mfa-alice"]
    phones = ["+15557654001", "+15557654002", "+15557654003", "+15557654004"]
    for phone in phones[:2]:
        mfad.call("BeginSmsEnrollment", "sss", ALICE, phone, "", user=alice).expect_ok()
    msg = mfad.call("BeginSmsEnrollment", "sss", ALICE, phones[2], "",
                    user=alice).expect_error("SmsRateLimited")
    assert "MaxPhoneChangesPerDay" in msg and phones[2][-4:] not in msg
    assert len(fake.requests) == 2
    rows = [r for r in audit_rows(mfad, "sms.failed") if r["reason"] == "rate-limited"]
    assert rows and '"limit":"phone-changes"' in rows[-1]["details"].replace(" ", "")
    # A number already texted today is no change; an admin may still set a new one.
    mfad.call("BeginSmsEnrollment", "sss", ALICE, phones[0], "", user=alice).expect_ok()
    mfad.call("BeginSmsEnrollment", "sss", ALICE, phones[3], "").expect_ok()
    # The limit is the user's: bob has his own.
    mfad.call("BeginSmsEnrollment", "sss", BOB, phones[2], "",
              user=test_users["mfa-bob"]).expect_ok()


def test_global_cap_near_emits_security_event(sms_factory, fake, test_users):
    mfad = sms_factory(MaxSendsGlobal=5, MaxSendsPerWindow=10, MaxSendsPerPhone=10)
    out = dbus_script(mfad.bus, """
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib
bus = dbus.bus.BusConnection(sys.argv[1], mainloop=DBusGMainLoop())
mgr = dbus.Interface(bus.get_object("org.mfad1", "/org/mfad1", introspect=False),
                     "org.mfad1.Manager")
events = []
def on_event(user, kind, details):
    events.append([str(user), str(kind), {str(k): str(v) for k, v in details.items()}])
bus.add_signal_receiver(on_event, "SecurityEvent", "org.mfad1.Manager")
out["sent"] = [call("BeginSmsEnrollment", "mfa-alice", "+1555765400%d" % i, "")[0]
               for i in range(5)]
deadline = time.time() + 10
GLib.timeout_add_seconds(10, lambda: False)
ctx = GLib.MainContext.default()
while not events and time.time() < deadline:
    ctx.iteration(True)
ctx.iteration(False)
out["events"] = events
""")
    assert out["sent"] == [True] * 5
    assert [e[:2] for e in out["events"]] == [["mfa-alice", "sms-global-cap-near"]]
    assert out["events"][0][2] == {"sent": "4", "cap": "5", "window_seconds": "600"}
    assert "reached 4 of [SMS] MaxSendsGlobal=5" in mfad.log_text()
