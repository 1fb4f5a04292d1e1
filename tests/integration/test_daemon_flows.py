"""The user-visible flows through the real daemon: enrollment, login, replay, backup codes,
lockout and unlock, step-up, and every bus error (docs/architecture.md) that is reachable today."""

from conftest import call_spec, current_step, totp
from daemon_helpers import dbus_script, far_code

CTX = {"service": "test", "rhost": "127.0.0.1", "tty": "pts/0", "ruser": ""}


def test_two_phase_totp_enrollment(mfad, test_users):
    alice = test_users["mfa-alice"]
    secret, uri = mfad.call("BeginTotpEnrollment", "sa{sv}", "mfa-alice",
                            {"issuer": ["@s", "Example"]}, user=alice).expect_ok()
    assert f"secret={secret}" in uri and "issuer=Example" in uri
    info = mfad.call("GetUser", "s", "mfa-alice", user=alice).expect_ok()
    assert info["methods"] == [] and info["pending"] == ["totp"]
    # Not active yet: a login is not possible.
    begin, _ = mfad.login("mfa-alice", totp(secret))
    begin.expect_error("NotEnrolled")
    mfad.call("ConfirmTotpEnrollment", "ss", "mfa-alice", far_code(secret),
              user=alice).expect_error("BadCode")
    assert mfad.call("GetUser", "s", "mfa-alice").expect_ok()["methods"] == []
    mfad.call("ConfirmTotpEnrollment", "ss", "mfa-alice", totp(secret), user=alice).expect_ok()
    info = mfad.call("GetUser", "s", "mfa-alice").expect_ok()
    assert info["methods"] == ["totp"] and info["pending"] == []
    assert info["totp_algorithm"] == "SHA1" and info["totp_digits"] == 6
    mfad.call("ConfirmTotpEnrollment", "ss", "mfa-alice", totp(secret)).expect_error(
        "NoPendingEnrollment")
    mfad.call("BeginTotpEnrollment", "sa{sv}", "mfa-alice", {}).expect_error("AlreadyEnrolled")


def test_login_and_replay(mfad, test_users):
    secret = mfad.enroll_totp("mfa-alice")
    code = mfad.next_code("mfa-alice", secret)
    begin, verify = mfad.login("mfa-alice", code, CTX)
    challenge, methods = begin.expect_ok()
    assert methods == ["totp"] and len(challenge) >= 32
    assert verify.expect_ok() == "totp"
    # The same code again: refused, whatever the window.
    _, verify = mfad.login("mfa-alice", code, CTX)
    verify.expect_error("BadCode")
    # An older step inside the window, below the watermark: refused too.
    older = totp(secret, step=current_step() - 1)
    _, verify = mfad.login("mfa-alice", older, CTX)
    verify.expect_error("BadCode")
    # The next step works.
    _, verify = mfad.login("mfa-alice", mfad.next_code("mfa-alice", secret), CTX)
    assert verify.expect_ok() == "totp"


def test_sha256_eight_digits(mfad, test_users):
    secret = mfad.enroll_totp("mfa-bob", algorithm="SHA256", digits=8)
    info = mfad.call("GetUser", "s", "mfa-bob").expect_ok()
    assert info["totp_algorithm"] == "SHA256" and info["totp_digits"] == 8
    code = mfad.next_code("mfa-bob", secret, digits=8, algorithm="SHA256")
    _, verify = mfad.login("mfa-bob", code)
    assert verify.expect_ok() == "totp"


def test_challenge_belongs_to_its_connection_and_dies_with_it(mfad, test_users):
    secret = mfad.enroll_totp("mfa-alice")
    challenge, _ = mfad.call("BeginAuthentication", "sa{ss}", "mfa-alice", CTX).expect_ok()
    # Another connection (another unique name) cannot use it.
    mfad.call("Verify", "ss", challenge, mfad.next_code("mfa-alice", secret)).expect_error(
        "NoSuchChallenge")
    # Each finished client takes its challenges along: more than MaxChallengesPerUser (8)
    # sequential clients never hit the cap.
    for _ in range(12):
        mfad.call("BeginAuthentication", "sa{ss}", "mfa-alice", CTX).expect_ok()
    # One client holding too many does.
    replies = mfad.calls([call_spec("BeginAuthentication", "sa{ss}", "mfa-alice", CTX)] * 9)
    for r in replies[:8]:
        r.expect_ok()
    replies[8].expect_error("LimitExceeded")


def test_verified_challenge_cannot_be_reused(mfad, test_users):
    secret = mfad.enroll_totp("mfa-alice")
    c1, c2 = mfad.next_code("mfa-alice", secret), mfad.next_code("mfa-alice", secret)
    replies = mfad.calls([
        call_spec("BeginAuthentication", "sa{ss}", "mfa-alice", CTX),
        call_spec("Verify", "ss", "$0", c1),
        call_spec("Verify", "ss", "$0", c2),
        call_spec("EndAuthentication", "s", "$0"),
        call_spec("EndAuthentication", "s", "$0"),
    ])
    assert replies[1].expect_ok() == "totp"
    replies[2].expect_error("NoSuchChallenge")
    replies[3].expect_ok()
    replies[4].expect_error("NoSuchChallenge")


def test_backup_codes_once_only_and_regeneration(mfad, test_users):
    codes = mfad.call("GenerateBackupCodes", "ss", "mfa-bob", "").expect_ok()
    assert len(codes) == 10 and len(set(codes)) == 10
    assert mfad.call("GetUser", "s", "mfa-bob").expect_ok()["backup_codes_left"] == 10
    begin, verify = mfad.login("mfa-bob", codes[0])
    assert begin.expect_ok()[1] == ["backup"]
    assert verify.expect_ok() == "backup"
    _, verify = mfad.login("mfa-bob", codes[0])
    verify.expect_error("BadCode")
    assert mfad.call("GetUser", "s", "mfa-bob").expect_ok()["backup_codes_left"] == 9
    new = mfad.call("GenerateBackupCodes", "ss", "mfa-bob", "").expect_ok()
    assert not set(new) & set(codes)
    _, verify = mfad.login("mfa-bob", codes[1])
    verify.expect_error("BadCode")
    _, verify = mfad.login("mfa-bob", new[1])
    assert verify.expect_ok() == "backup"


def alice_with_max_failures(mfad_factory, max_failures):
    """mfad started with Policy.MaxFailures, mfa-alice enrolled with TOTP: (mfad, her secret, a
    code of hers that is wrong now)."""
    mfad_factory.set_config("Policy", "MaxFailures", max_failures)
    mfad = mfad_factory.start()
    secret = mfad.enroll_totp("mfa-alice")
    return mfad, secret, far_code(secret)


def test_lockout_and_unlock(mfad_factory, test_users):
    mfad, secret, bad = alice_with_max_failures(mfad_factory, 3)
    _, replies = mfad.login("mfa-alice", [bad, bad, bad])
    replies[0].expect_error("BadCode")
    replies[1].expect_error("BadCode")
    msg = replies[2].expect_error("RateLimited")
    assert "minute" in msg or "second" in msg
    # Locked: even a good code is refused, and BeginAuthentication says so.
    begin, _ = mfad.login("mfa-alice", mfad.next_code("mfa-alice", secret))
    begin.expect_error("RateLimited")
    info = mfad.call("GetUser", "s", "mfa-alice").expect_ok()
    assert info["locked_until"] > 0
    mfad.call("Unlock", "s", "mfa-alice", user=test_users["mfa-carol"]).expect_ok()
    assert mfad.call("GetUser", "s", "mfa-alice").expect_ok()["locked_until"] == 0
    _, verify = mfad.login("mfa-alice", mfad.next_code("mfa-alice", secret))
    assert verify.expect_ok() == "totp"


def test_lockout_emits_security_event(mfad_factory, test_users):
    mfad, secret, bad = alice_with_max_failures(mfad_factory, 2)
    out = dbus_script(mfad.bus, f"""
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib
bus = dbus.bus.BusConnection(sys.argv[1], mainloop=DBusGMainLoop())
mgr = dbus.Interface(bus.get_object("org.mfad1", "/org/mfad1", introspect=False),
                     "org.mfad1.Manager")
events = []
def on_event(user, kind, details):
    events.append([str(user), str(kind), {{str(k): str(v) for k, v in details.items()}}])
bus.add_signal_receiver(on_event, "SecurityEvent", "org.mfad1.Manager")
ok, r = call("BeginAuthentication", "mfa-alice", dbus.Dictionary({CTX!r}, signature="ss"))
out["verify"] = [call("Verify", r[0], "{bad}")[1] for _ in range(2)]
# Dispatches until the signal came: a timer wakes the loop at the deadline.
deadline = time.time() + 10
GLib.timeout_add_seconds(10, lambda: False)
ctx = GLib.MainContext.default()
while not events and time.time() < deadline:
    ctx.iteration(True)
out["events"] = events
""")
    assert out["verify"] == ["org.mfad1.Error.BadCode", "org.mfad1.Error.RateLimited"]
    assert [e[:2] for e in out["events"]] == [["mfa-alice", "lockout"]]
    assert bad not in str(out["events"])


def test_step_up(mfad, test_users):
    alice = test_users["mfa-alice"]
    secret = mfad.enroll_totp("mfa-alice")
    mfad.call("GenerateBackupCodes", "ss", "mfa-alice", "", user=alice).expect_error(
        "StepUpRequired")
    mfad.call("GenerateBackupCodes", "ss", "mfa-alice", far_code(secret),
              user=alice).expect_error("BadCode")
    codes = mfad.call("GenerateBackupCodes", "ss", "mfa-alice",
                      mfad.next_code("mfa-alice", secret), user=alice).expect_ok()
    assert len(codes) == 10
    mfad.call("DisableMethod", "sss", "mfa-alice", "totp", "", user=alice).expect_error(
        "StepUpRequired")
    mfad.call("BeginTotpEnrollment", "sa{sv}", "mfa-alice", {}, user=alice).expect_error(
        "AlreadyEnrolled")
    # A backup code is a current factor too.
    mfad.call("DisableMethod", "sss", "mfa-alice", "totp", codes[0], user=alice).expect_ok()
    info = mfad.call("GetUser", "s", "mfa-alice").expect_ok()
    assert info["methods"] == ["backup"]
    # Admins pass no code for someone else.
    mfad.call("DisableMethod", "sss", "mfa-alice", "backup", "",
              user=test_users["mfa-carol"]).expect_ok()
    mfad.call("DisableMethod", "sss", "mfa-alice", "backup", "").expect_error("NotEnrolled")


def test_sms_is_unavailable(mfad, test_users):
    mfad.enroll_totp("mfa-alice")
    replies = mfad.calls([
        call_spec("BeginAuthentication", "sa{ss}", "mfa-alice", CTX),
        call_spec("SendSmsCode", "s", "$0"),
    ])
    replies[1].expect_error("SmsUnavailable")
    alice = test_users["mfa-alice"]
    mfad.call("BeginSmsEnrollment", "sss", "mfa-alice", "+15005550006", "",
              user=alice).expect_error("SmsUnavailable")
    mfad.call("ConfirmSmsEnrollment", "ss", "mfa-alice", "123456", user=alice).expect_error(
        "NoPendingEnrollment")


def test_challenge_expires(mfad_factory, test_users):
    mfad_factory.set_config("Policy", "ChallengeTimeoutSeconds", 10)
    mfad = mfad_factory.start()
    mfad.enroll_totp("mfa-alice")
    # SendSmsCode answers SmsUnavailable while the challenge lives (without counting an
    # attempt), ChallengeExpired once its time is up; poll with a deadline.
    out = dbus_script(mfad.bus, f"""
ok, r = call("BeginAuthentication", "mfa-alice", dbus.Dictionary({CTX!r}, signature="ss"))
ch = r[0]
deadline = time.time() + 30
seen = []
while time.time() < deadline:
    ok, err = call("SendSmsCode", ch)
    if err not in seen:
        seen.append(err)
    if err != "org.mfad1.Error.SmsUnavailable":
        break
    time.sleep(0.2)  # real time must pass: 10 s, the shortest ChallengeTimeoutSeconds
out["seen"] = seen
""")
    assert out["seen"] == ["org.mfad1.Error.SmsUnavailable", "org.mfad1.Error.ChallengeExpired"]
