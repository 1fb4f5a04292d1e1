"""CheckFreshSession (`fresh=SECONDS`, docs/sudo.md): the match of a caller's kernel audit session
(set here as pam_loginuid would, by writing /proc/self/loginuid in the client before it runs)
against the sessions mfad registered, and what an unprivileged or forged caller gets: nothing."""

import json
import subprocess
import pytest

from conftest import PYTHON, Reply, call_spec

SESSION_CONTEXT = {"service": "sshd", "rhost": "192.0.2.7", "tty": "pts/3", "ruser": "",
                   "factor": "totp"}
SUDO_CONTEXT = {"service": "sudo", "rhost": "", "tty": "pts/3", "ruser": "mfa-bob",
                "fresh": "300"}


def audit_ids_work():
    r = subprocess.run(["sh", "-c", "echo 0 > /proc/self/loginuid && cat /proc/self/sessionid"],
                       capture_output=True, text=True)
    return r.returncode == 0 and r.stdout.strip() not in ("", "4294967295")


pytestmark = pytest.mark.skipif(not audit_ids_work(),
                                reason="this kernel does not let pam_loginuid set an audit session")


# One connection; each call's "sleep" waits first; "$session" stands for OpenSession's answer.
_SCRIPT = r"""
import json, sys, time, dbus
req = json.loads(sys.stdin.read())
bus = dbus.bus.BusConnection(req["address"])
obj = bus.get_object("org.mfad1", "/org/mfad1", introspect=False)
out, session = [], ""
for call in req["calls"]:
    time.sleep(call.get("sleep", 0))
    args = [session if a == "$session" else a for a in call["args"]]
    try:
        r = obj.get_dbus_method(call["method"], "org.mfad1.Manager")(
            *args, signature=call["signature"], timeout=30)
        if call["method"] == "OpenSession":
            session = str(r)
        v = [bool(r[0]), str(r[1])] if call["method"] == "CheckFreshSession" else (
            str(r) if isinstance(r, dbus.String) else None)
        out.append({"ok": True, "result": v})
    except dbus.exceptions.DBusException as e:
        out.append({"ok": False, "error": e.get_dbus_name(), "message": e.get_dbus_message()})
print(json.dumps(out))
"""


def calls_in_audit_session(mfad, login_uid, specs):
    """specs on one connection, as root, from a process that set its loginuid to login_uid first
    (a new kernel audit session, as pam_loginuid makes one); login_uid None: left unset."""
    def enter_session():
        if login_uid is not None:
            with open("/proc/self/loginuid", "w") as f:
                f.write(str(login_uid))
    req = json.dumps({"address": mfad.bus.address, "calls": specs})
    r = subprocess.run([PYTHON, "-c", _SCRIPT], input=req, capture_output=True, text=True,
                       timeout=60, preexec_fn=enter_session)
    assert r.returncode == 0, r.stderr
    return [Reply(**x) for x in json.loads(r.stdout)]


def open_then_check(mfad, user, login_uid, session_context=SESSION_CONTEXT, check_user=None,
                    sudo_context=SUDO_CONTEXT):
    opened, checked = calls_in_audit_session(mfad, login_uid, [
        call_spec("OpenSession", "sa{ss}", user, session_context),
        call_spec("CheckFreshSession", "sa{ss}", check_user or user, sudo_context)])
    return opened.expect_ok(), checked


def fresh_rows(mfad):
    return [json.loads(line) for line in mfad.sql(
        "SELECT json_object('user', user, 'details', json(details)) FROM audit "
        "WHERE kind = 'fresh-session'").splitlines()]


def test_same_audit_session_passes_and_is_audited(mfad, test_users):
    bob = test_users["mfa-bob"]
    session_id, checked = open_then_check(mfad, "mfa-bob", bob.uid)
    fresh, sid = checked.expect_ok()
    assert fresh is True and sid == session_id
    rows = fresh_rows(mfad)
    assert len(rows) == 1 and rows[0]["user"] == "mfa-bob"
    d = rows[0]["details"]
    assert d["session"] == session_id and d["factor"] == "totp" and d["fresh_service"] == "sudo"
    assert d["audit_session"] not in ("", "4294967295")


def test_another_audit_session_gets_the_prompt(mfad, test_users):
    bob = test_users["mfa-bob"]
    calls_in_audit_session(mfad, bob.uid, [
        call_spec("OpenSession", "sa{ss}", "mfa-bob", SESSION_CONTEXT)])[0].expect_ok()
    # The same user, another login: another audit session.
    checked = calls_in_audit_session(mfad, bob.uid, [
        call_spec("CheckFreshSession", "sa{ss}", "mfa-bob", SUDO_CONTEXT)])[0]
    assert checked.expect_ok() == [False, ""]
    assert fresh_rows(mfad) == []


def test_unset_ids_bind_nothing(mfad, test_users):
    _, checked = open_then_check(mfad, "mfa-bob", None)
    assert checked.expect_ok() == [False, ""]


def test_login_without_a_factor_binds_nothing(mfad, test_users):
    bob = test_users["mfa-bob"]
    _, checked = open_then_check(mfad, "mfa-bob", bob.uid,
                                 session_context=dict(SESSION_CONTEXT, factor="none"))
    assert checked.expect_ok() == [False, ""]


def test_another_user_in_the_session_gets_the_prompt(mfad, test_users):
    bob = test_users["mfa-bob"]
    # bob's login session; a sudo in it that authenticates alice (the login uid is bob's).
    _, checked = open_then_check(mfad, "mfa-bob", bob.uid, check_user="mfa-alice")
    assert checked.expect_ok() == [False, ""]


def test_session_older_than_seconds_gets_the_prompt(mfad, test_users):
    bob = test_users["mfa-bob"]
    opened, first, second = calls_in_audit_session(mfad, bob.uid, [
        call_spec("OpenSession", "sa{ss}", "mfa-bob", SESSION_CONTEXT),
        call_spec("CheckFreshSession", "sa{ss}", "mfa-bob", dict(SUDO_CONTEXT, fresh="2")),
        call_spec("CheckFreshSession", "sa{ss}", "mfa-bob", dict(SUDO_CONTEXT, fresh="2"),
                  sleep=2.5)])
    assert first.expect_ok()[0] is True
    assert second.expect_ok() == [False, ""]


def test_closed_session_gets_the_prompt(mfad, test_users):
    bob = test_users["mfa-bob"]
    opened, closed, checked = calls_in_audit_session(mfad, bob.uid, [
        call_spec("OpenSession", "sa{ss}", "mfa-bob", SESSION_CONTEXT),
        call_spec("CloseSession", "s", "$session"),
        call_spec("CheckFreshSession", "sa{ss}", "mfa-bob", SUDO_CONTEXT)])
    closed.expect_ok()
    assert checked.expect_ok() == [False, ""]


def test_unprivileged_caller_with_forged_context_gains_nothing(mfad, test_users):
    bob = test_users["mfa-bob"]
    session_id = calls_in_audit_session(mfad, bob.uid, [
        call_spec("OpenSession", "sa{ss}", "mfa-bob", SESSION_CONTEXT)])[0].expect_ok()
    forged = dict(SUDO_CONTEXT, session=str(session_id), audit_session="1", loginuid=str(bob.uid))
    r = mfad.call("CheckFreshSession", "sa{ss}", "mfa-bob", forged, user=bob)
    r.expect_error("org.freedesktop.DBus.Error.AccessDenied")
    # Root with the forged keys but no audit session of its own: still nothing.
    r = calls_in_audit_session(mfad, None, [
        call_spec("CheckFreshSession", "sa{ss}", "mfa-bob", forged)])[0]
    assert r.expect_ok() == [False, ""]
    assert fresh_rows(mfad) == []


def test_bad_seconds_are_refused(mfad, test_users):
    for bad in ("0", "86401", "ten", ""):
        r = mfad.call("CheckFreshSession", "sa{ss}", "mfa-bob", dict(SUDO_CONTEXT, fresh=bad))
        r.expect_error("InvalidArgument")
