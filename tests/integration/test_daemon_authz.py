"""Who may call what: root, an admin-group member, a user on their own account, another user; the
bus policy keeps the PAM side to root."""

import pytest

from conftest import bus_policy, call_spec

ACCESS_DENIED = "org.freedesktop.DBus.Error.AccessDenied"


def test_get_user_tiers(mfad, test_users):
    alice, bob, carol = (test_users[n] for n in ("mfa-alice", "mfa-bob", "mfa-carol"))
    assert mfad.call("GetUser", "s", "mfa-alice").expect_ok()["user"] == "mfa-alice"  # root
    assert mfad.call("GetUser", "s", "mfa-alice", user=carol).expect_ok()["user"] == "mfa-alice"
    assert mfad.call("GetUser", "s", "mfa-alice", user=alice).expect_ok()["user"] == "mfa-alice"
    mfad.call("GetUser", "s", "mfa-alice", user=bob).expect_error("NotAllowed")


def test_admin_methods_need_an_admin(mfad, test_users):
    alice, carol = test_users["mfa-alice"], test_users["mfa-carol"]
    mfad.enroll_totp("mfa-bob")
    for who, ok in ((None, True), (carol, True), (alice, False)):
        replies = mfad.calls([
            call_spec("ListUsers"),
            call_spec("Unlock", "s", "mfa-bob"),
            call_spec("ListAuditEvents", "a{sv}", {"limit": ["@u", 5]}),
            call_spec("VerifyAuditTrail"),
            call_spec("GetReport", "a{sv}", {}),
            call_spec("CheckHealth"),
        ], user=who)
        for r in replies:
            if ok:
                r.expect_ok()
            else:
                r.expect_error("NotAllowed")
    users = mfad.call("ListUsers", user=carol).expect_ok()
    assert [u["user"] for u in users] == ["mfa-bob"]
    assert users[0]["methods"] == ["totp"]
    intact, rows, _message = mfad.call("VerifyAuditTrail").expect_ok()
    assert intact is True and rows > 0
    mfad.call("ResetUser", "s", "mfa-bob", user=alice).expect_error("NotAllowed")
    assert mfad.call("GetUser", "s", "mfa-bob").expect_ok()["methods"] == ["totp"]
    mfad.call("ResetUser", "s", "mfa-bob", user=carol).expect_ok()
    assert mfad.call("GetUser", "s", "mfa-bob").expect_ok()["methods"] == []


def test_self_service_on_someone_else_is_not_allowed(mfad, test_users):
    alice, bob = test_users["mfa-alice"], test_users["mfa-bob"]
    mfad.call("BeginTotpEnrollment", "sa{sv}", "mfa-bob", {}, user=alice).expect_error(
        "NotAllowed")
    mfad.call("GenerateBackupCodes", "ss", "mfa-bob", "", user=alice).expect_error("NotAllowed")
    mfad.call("DisableMethod", "sss", "mfa-bob", "totp", "", user=alice).expect_error("NotAllowed")
    mfad.call("BeginSmsEnrollment", "sss", "mfa-bob", "+15005550006", "",
              user=alice).expect_error("NotAllowed")
    # Bob's own enrollment works (first factor: no step-up).
    secret, uri = mfad.call("BeginTotpEnrollment", "sa{sv}", "mfa-bob", {}, user=bob).expect_ok()
    assert uri.startswith("otpauth://totp/") and "mfa-bob" in uri and len(secret) >= 32


PAM_SIDE_CALLS = [
    ("BeginAuthentication", "sa{ss}", ["mfa-alice", {"service": "x"}]),
    ("Verify", "ss", ["00", "123456"]),
    ("SendSmsCode", "s", ["00"]),
    ("EndAuthentication", "s", ["00"]),
    ("OpenSession", "sa{ss}", ["mfa-alice", {}]),
    ("CloseSession", "s", ["00"]),
]


@pytest.mark.parametrize("method,signature,args", PAM_SIDE_CALLS)
def test_pam_side_is_root_only_by_policy(mfad, test_users, method, signature, args):
    for name in ("mfa-alice", "mfa-carol"):
        reply = mfad.call(method, signature, *args, user=test_users[name])
        reply.expect_error(ACCESS_DENIED)


def test_unprivileged_bus_name_ownership_is_refused(mfad, test_users):
    from daemon_helpers import dbus_script
    out = dbus_script(mfad.bus, """
try:
    bus.request_name("org.mfad1", dbus.bus.NAME_FLAG_DO_NOT_QUEUE)
    out["error"] = ""
except dbus.exceptions.DBusException as e:
    out["error"] = e.get_dbus_name()
""", user=test_users["mfa-alice"])
    assert out["error"] == ACCESS_DENIED


PERMISSIVE_POLICY = bus_policy("""  <policy context="default">
    <allow own="org.mfad1"/>
    <allow send_destination="org.mfad1"/>
  </policy>
""")


@pytest.fixture
def mfad_without_policy(build_dir, test_users):
    """mfad on a bus whose policy lets anyone call anything: only mfad's own checks remain."""
    import shutil
    from conftest import Bus, Mfad, make_world_dir
    bus = Bus(make_world_dir("mfa-bus-"), policy=PERMISSIVE_POLICY)
    workdir = make_world_dir("mfa-daemon-")
    m = Mfad(build_dir, bus, workdir)
    try:
        yield m.start()
    finally:
        if m.proc is not None and m.proc.poll() is None:
            m.stop()
        bus.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(bus.dir, ignore_errors=True)


def test_pam_side_is_root_only_without_the_policy(mfad_without_policy, test_users):
    m = mfad_without_policy
    m.enroll_totp("mfa-alice")
    for method, signature, args in PAM_SIDE_CALLS:
        for name in ("mfa-alice", "mfa-carol"):
            m.call(method, signature, *args, user=test_users[name]).expect_error(ACCESS_DENIED)
    # The bus really is open (a self-service call goes through) and root is served.
    assert m.call("GetUser", "s", "mfa-alice",
                  user=test_users["mfa-alice"]).expect_ok()["user"] == "mfa-alice"
    challenge, methods = m.call("BeginAuthentication", "sa{ss}", "mfa-alice",
                                {"service": "x"}).expect_ok()
    assert challenge and "totp" in methods


def test_admin_on_own_account_needs_step_up(mfad_factory, test_users):
    # The admin tier is no second factor: whoever has carol's password has it too (issue 17).
    # Reset and Unlock of her own account would drop or unlock the factor a guesser lacks.
    mfad_factory.set_config("Policy", "MaxFailures", 2)
    mfad = mfad_factory.start()
    carol = test_users["mfa-carol"]
    secret = mfad.enroll_totp("mfa-carol")
    mfad.call("DisableMethod", "sss", "mfa-carol", "totp", "", user=carol).expect_error(
        "StepUpRequired")
    msg = mfad.call("ResetUser", "s", "mfa-carol", user=carol).expect_error("StepUpRequired")
    assert "mfactl disable" in msg
    assert mfad.call("GetUser", "s", "mfa-carol").expect_ok()["methods"] == ["totp"]
    # Locked out by a guesser: carol cannot lift her own lockout, even with the right code.
    bad = str((int(mfad.next_code("mfa-carol", secret)) + 500000) % 1000000).zfill(6)
    mfad.login("mfa-carol", [bad, bad])
    assert mfad.call("GetUser", "s", "mfa-carol").expect_ok()["locked_until"] > 0
    msg = mfad.call("Unlock", "s", "mfa-carol", user=carol).expect_error("NotAllowed")
    assert "your own lockout" in msg
    assert mfad.call("GetUser", "s", "mfa-carol").expect_ok()["locked_until"] > 0
    rows = mfad.call("ListAuditEvents", "a{sv}", {"user": ["@s", "mfa-carol"],
                                                  "limit": ["@u", 100]}).expect_ok()
    assert [r["reason"] for r in rows if r["kind"] == "access.denied"] == ["not-allowed"]
    assert not [r for r in rows if r["kind"] in ("admin.unlock", "admin.reset")]
    # Root may do both; so may carol on someone else, and on her own account with no factor.
    mfad.call("Unlock", "s", "mfa-carol").expect_ok()
    mfad.call("ResetUser", "s", "mfa-carol").expect_ok()
    mfad.call("Unlock", "s", "mfa-carol", user=carol).expect_ok()
    mfad.call("ResetUser", "s", "mfa-carol", user=carol).expect_ok()
    mfad.enroll_totp("mfa-bob")
    mfad.call("ResetUser", "s", "mfa-bob", user=carol).expect_ok()
