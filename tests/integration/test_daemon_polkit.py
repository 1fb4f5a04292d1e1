"""The admin tier through polkit's org.mfad1.manage (docs/security-model.md): python3-dbusmock's
polkitd
template on the private bus, beside the project's bus policy and polkit's own; the policy file
systemd/org.mfad1.policy itself."""

import json
import os
import pwd
import shutil
import signal
import subprocess
import threading
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import PYTHON, REPO, bus_policy, call_spec, run_as, stop_process
from fleet_helpers import redis  # noqa: F401 (a fixture)
from fleet_helpers import fleet_config

POLICY_FILE = os.path.join(REPO, "systemd", "org.mfad1.policy")
POLKIT_DTD = "/usr/share/polkit-1/policyconfig-1.dtd"
ACTION = "org.mfad1.manage"
POLKIT = "org.freedesktop.PolicyKit1"
AUTHORITY = "/org/freedesktop/PolicyKit1/Authority"

# polkitd's own bus policy, as Debian ships it (/usr/share/dbus-1/system.d/), used when polkitd is
# not installed: the name is polkitd's, and everyone may ask it.
POLKIT_BUS_POLICY = bus_policy("""  <policy user="polkitd">
    <allow own="org.freedesktop.PolicyKit1"/>
  </policy>
  <policy context="default">
    <allow send_destination="org.freedesktop.PolicyKit1"/>
  </policy>
""")
SYSTEM_POLKIT_BUS_POLICY = "/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf"

# Without a polkitd account, the mock runs as root, which may then own the name too.
ROOT_OWNS_POLKIT = bus_policy("""  <policy user="root">
    <allow own="org.freedesktop.PolicyKit1"/>
  </policy>
""")


def reload_bus_config(bus):
    subprocess.run(["busctl", f"--address={bus.address}", "call", "org.freedesktop.DBus",
                    "/org/freedesktop/DBus", "org.freedesktop.DBus", "ReloadConfig"],
                   check=True, capture_output=True, timeout=10)


def install_polkit_bus_policy(bus):
    """polkit's bus policy beside the project's, unchanged when polkitd is installed."""
    path = os.path.join(bus.dir, "system.d", "org.freedesktop.PolicyKit1.conf")
    if os.path.exists(SYSTEM_POLKIT_BUS_POLICY):
        shutil.copy(SYSTEM_POLKIT_BUS_POLICY, path)
    else:
        with open(path, "w") as f:
            f.write(POLKIT_BUS_POLICY)
    reload_bus_config(bus)


class PolkitMock:
    """python3-dbusmock's polkitd template owning org.freedesktop.PolicyKit1 on the private bus,
    as the polkitd account when there is one (the name is that account's by polkit's policy)."""

    def __init__(self, bus):
        self.bus = bus
        install_polkit_bus_policy(bus)
        argv = [PYTHON, "-m", "dbusmock", "--system", "--template", "polkitd"]
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus.address)
        try:
            pw = pwd.getpwnam("polkitd")
            argv = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups",
                    "--"] + argv
            env["HOME"] = "/"
        except KeyError:
            with open(os.path.join(bus.dir, "system.d", "polkit-mock.conf"), "w") as f:
                f.write(ROOT_OWNS_POLKIT)
            reload_bus_config(bus)
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        bus.wait_owner(POLKIT, self.proc)

    def _mock(self, method, signature="", *args):
        r = subprocess.run(["busctl", f"--address={self.bus.address}", "--json=short", "call",
                            POLKIT, AUTHORITY, "org.freedesktop.DBus.Mock", method, signature,
                            *[str(a) for a in args]], capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)["data"] if r.stdout.strip() else None

    def set_allowed(self, actions):
        self._mock("SetAllowed", "as", len(actions), *actions)

    def checks(self):
        """The CheckAuthorization calls so far: [(subject, action, details, flags, cancel)]."""
        calls = self._mock("GetMethodCalls", "s", "CheckAuthorization")[0]
        return [tuple(arg["data"] for arg in args) for _t, args in calls]

    def clear(self):
        self._mock("ClearCalls")

    def freeze(self):
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        self.thaw()
        stop_process(self.proc, 10)


@pytest.fixture
def polkit(bus):
    mock = PolkitMock(bus)
    yield mock
    mock.stop()


def polkit_questions(bus):
    """A monitor of the questions sent to polkit: once one shows, its asker is waiting on it."""
    from session_helpers import Monitor
    return Monitor(bus, "type='method_call',interface='org.freedesktop.PolicyKit1.Authority',"
                        "member='CheckAuthorization'")


def denials(mfad, user):
    rows = mfad.call("ListAuditEvents", "a{sv}", {"limit": ["@u", 1000]}).expect_ok()
    return [r for r in rows if r["kind"] == "access.denied" and f"uid={user.uid} " in r["caller"]]


ADMIN_CALLS = [
    call_spec("ListUsers"),
    call_spec("Unlock", "s", "mfa-bob"),
    call_spec("ListAuditEvents", "a{sv}", {"limit": ["@u", 5]}),
    call_spec("VerifyAuditTrail"),
    call_spec("GetUser", "s", "mfa-bob"),  # self-service, on someone else
    call_spec("ListSessions", "s", ""),    # everyone's
]



# ---------------------------------------------------------------------------------------------
# The policy file.


def test_policy_file_declares_the_manage_action():
    root = ET.parse(POLICY_FILE).getroot()
    assert root.tag == "policyconfig"
    actions = root.findall("action")
    assert [a.get("id") for a in actions] == [ACTION]
    action = actions[0]
    assert action.findtext("description") == "Manage multi-factor authentication for other users"
    assert action.findtext("message")
    defaults = action.find("defaults")
    assert defaults.findtext("allow_any") == "no"
    assert defaults.findtext("allow_inactive") == "no"
    assert defaults.findtext("allow_active") == "auth_admin_keep"


@pytest.mark.skipif(shutil.which("xmllint") is None or not os.path.exists(POLKIT_DTD),
                    reason="xmllint (libxml2-utils) and polkit's DTD (polkitd) are needed")
def test_policy_file_is_valid_for_polkit():
    r = subprocess.run(["xmllint", "--noout", "--nonet", "--dtdvalid", POLKIT_DTD, POLICY_FILE],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


def test_policy_file_is_installed_with_polkits_actions(build_dir):
    with open(os.path.join(build_dir, "systemd", "cmake_install.cmake")) as f:
        rules = f.read()
    assert "polkit-1/actions" in rules and "org.mfad1.policy" in rules


# ---------------------------------------------------------------------------------------------
# mfad and polkit.


def test_polkit_grants_the_admin_tier(polkit, mfad, test_users):
    alice = test_users["mfa-alice"]
    mfad.enroll_totp("mfa-bob")
    polkit.set_allowed([ACTION])
    polkit.clear()
    replies = mfad.calls(ADMIN_CALLS, user=alice)
    for r in replies:
        r.expect_ok()
    assert [u["user"] for u in replies[0].result] == ["mfa-bob"]
    assert replies[4].result["methods"] == ["totp"]
    # The admin action is audited with how the tier was obtained; no denial was written.
    rows = mfad.call("ListAuditEvents", "a{sv}", {"user": ["@s", "mfa-bob"],
                                                  "limit": ["@u", 100]}).expect_ok()
    unlocks = [r for r in rows if r["kind"] == "admin.unlock"]
    assert len(unlocks) == 1 and unlocks[0]["caller"].startswith(f"uid={alice.uid} ")
    assert unlocks[0]["caller"].endswith(" via polkit")
    assert denials(mfad, alice) == []
    # One question per call, about the caller's own connection, not interactive (dbus-python
    # does not allow it), no details, no cancellation id.
    sender = unlocks[0]["caller"].split()[2]
    checks = polkit.checks()
    assert len(checks) == len(ADMIN_CALLS)
    for subject, action, details, flags, cancel in checks:
        assert subject == ["system-bus-name", {"name": {"type": "s", "data": sender}}]
        assert (action, details, flags, cancel) == (ACTION, {}, 0, "")
    # A change on someone else's account goes through too.
    mfad.call("ResetUser", "s", "mfa-bob", user=alice).expect_ok()
    assert mfad.call("GetUser", "s", "mfa-bob").expect_ok()["methods"] == []


def test_polkit_saying_no_is_a_denial(polkit, mfad, test_users):
    alice = test_users["mfa-alice"]
    polkit.set_allowed(["org.example.other"])
    replies = mfad.calls(ADMIN_CALLS, user=alice)
    for r in replies:
        r.expect_error("NotAllowed")
    assert len(polkit.checks()) == len(ADMIN_CALLS)
    # Audited as before polkit: one access.denied per audited refusal (ListSessions never was).
    assert len(denials(mfad, alice)) == len(ADMIN_CALLS) - 1
    mfad.call("BeginTotpEnrollment", "sa{sv}", "mfa-bob", {}, user=alice).expect_error(
        "NotAllowed")
    assert mfad.call("GetUser", "s", "mfa-bob").expect_ok()["pending"] == []


def test_without_polkit_the_admin_tier_is_root_and_the_group(mfad, test_users):
    alice = test_users["mfa-alice"]
    for _ in range(3):
        for r in mfad.calls(ADMIN_CALLS, user=alice):
            r.expect_error("NotAllowed")
    # The first refusal of each call at once, the two repeats counted (audit-events.md,
    # "Coalesced denials").
    assert len(denials(mfad, alice)) == len(ADMIN_CALLS) - 1
    # One line in the log, not one per call.
    log = mfad.log_text()
    assert log.count("polkit") == 1 and "polkit is not on the bus" in log, log


def test_root_the_admin_group_and_own_account_never_ask(polkit, mfad, test_users):
    alice, carol = test_users["mfa-alice"], test_users["mfa-carol"]
    polkit.set_allowed([ACTION])
    polkit.clear()
    for who in (None, carol):
        for r in mfad.calls(ADMIN_CALLS, user=who):
            r.expect_ok()
    mfad.call("GetUser", "s", "mfa-alice", user=alice).expect_ok()
    mfad.call("ListSessions", "s", "mfa-alice", user=alice).expect_ok()
    assert polkit.checks() == []


def test_interactive_authorization_is_passed_on(polkit, mfad, test_users):
    alice = test_users["mfa-alice"]
    polkit.set_allowed([ACTION])
    polkit.clear()
    for allow, flags in (("yes", 1), ("no", 0)):
        r = run_as(alice, ["busctl", f"--address={mfad.bus.address}",
                           f"--allow-interactive-authorization={allow}", "call", "org.mfad1",
                           "/org/mfad1", "org.mfad1.Manager", "Unlock", "s", "mfa-bob"])
        assert r.returncode == 0, r.stderr
        assert polkit.checks()[-1][3] == flags


def test_frozen_polkit_is_a_denial_in_time(polkit, mfad, test_users):
    alice, carol = test_users["mfa-alice"], test_users["mfa-carol"]
    polkit.set_allowed([ACTION])
    questions = polkit_questions(mfad.bus)
    polkit.freeze()
    try:
        result = {}

        def ask():
            start = time.monotonic()
            result["reply"] = mfad.call("ListUsers", user=alice)
            result["seconds"] = time.monotonic() - start

        waiting = threading.Thread(target=ask)
        waiting.start()
        # alice's call is waiting on polkit once mfad has asked it.
        assert "member=CheckAuthorization" in questions.wait_for("member=CheckAuthorization")
        # mfad serves everyone else meanwhile.
        for who in (None, carol):
            start = time.monotonic()
            mfad.call("ListUsers", user=who).expect_ok()
            assert time.monotonic() - start < 3
        assert waiting.is_alive()
        waiting.join(30)
        assert not waiting.is_alive()
        result["reply"].expect_error("NotAllowed")
        assert 4 <= result["seconds"] < 15  # polkit's 5 s timeout, not the client's 30 s
        assert len(denials(mfad, alice)) == 1
    finally:
        polkit.thaw()
        questions.stop()
    # polkit back: it decides again.
    mfad.call("ListUsers", user=alice).expect_ok()


def test_polkit_unreachable_by_bus_policy_fails_closed(bus, mfad, test_users):
    """Without polkit's own bus policy, mfad may not send to it: AccessDenied, hence NotAllowed."""
    alice = test_users["mfa-alice"]
    with open(os.path.join(bus.dir, "system.d", "polkit-mock.conf"), "w") as f:
        f.write(ROOT_OWNS_POLKIT)
    reload_bus_config(bus)
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus.address)
    proc = subprocess.Popen([PYTHON, "-m", "dbusmock", "--system", "--template", "polkitd"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        bus.wait_owner(POLKIT, proc)
        mfad.call("ListUsers", user=alice).expect_error("NotAllowed")
        assert "AccessDenied" in mfad.log_text()
    finally:
        proc.terminate()
        proc.wait(10)


def test_polkit_grants_other_users_sessions(polkit, mfad, test_users, build_dir, bus):
    """Everyone's sessions and ending someone else's are admin: polkit's yes opens them, its no
    leaves someone else's session looking like none."""
    from session_helpers import SessionServices, audit
    alice, bob = test_users["mfa-alice"], test_users["mfa-bob"]
    services = SessionServices(build_dir, bus.address)
    leaders = []
    try:
        service = services.session_service()
        leaders.append(services.leader(service, bob))
        b1 = leaders[0]
        polkit.set_allowed([])
        mfad.call("TerminateSession", "s", b1.session_id, user=alice).expect_error(
            "NoSuchSession")
        assert b1.wait_dead(0.5) is None
        polkit.set_allowed([ACTION])
        rows = mfad.call("ListSessions", "s", "mfa-bob", user=alice).expect_ok()
        assert [r["id"] for r in rows] == [b1.session_id]
        mfad.call("TerminateSession", "s", b1.session_id, user=alice).expect_ok()
        assert b1.wait_dead() == -signal.SIGHUP
        ended = audit(mfad, "mfa-bob", "session.terminate")
        assert [r["reason"] for r in ended] == ["admin"]
        assert ended[0]["caller"].endswith(" via polkit")
        assert len(polkit.checks()) == 3
    finally:
        for leader in leaders:
            leader.kill()
        services.cleanup()


def test_polkit_in_fleet_mode(polkit, mfad_factory, redis, test_users):
    """Fleet mode defers admin calls behind a prefetch from Redis: polkit's answer carries
    through it, and a refusal changes nothing fleet-wide."""
    alice = test_users["mfa-alice"]
    m = mfad_factory
    fleet_config(m, redis)
    m.start()
    m.enroll_totp("mfa-bob")
    polkit.set_allowed([])
    m.call("ResetUser", "s", "mfa-bob", user=alice).expect_error("NotAllowed")
    m.call("GetUser", "s", "mfa-bob", user=alice).expect_error("NotAllowed")
    assert m.call("GetUser", "s", "mfa-bob").expect_ok()["methods"] == ["totp"]
    assert len(denials(m, alice)) == 2
    polkit.set_allowed([ACTION])
    assert m.call("GetUser", "s", "mfa-bob", user=alice).expect_ok()["methods"] == ["totp"]
    m.call("ResetUser", "s", "mfa-bob", user=alice).expect_ok()
    assert m.call("GetUser", "s", "mfa-bob").expect_ok()["methods"] == []
    assert len(denials(m, alice)) == 2
    assert len(polkit.checks()) == 4


def test_shutdown_answers_calls_waiting_on_polkit(polkit, mfad, test_users):
    alice = test_users["mfa-alice"]
    questions = polkit_questions(mfad.bus)
    polkit.freeze()
    result = {}
    waiting = threading.Thread(
        target=lambda: result.setdefault("reply", mfad.call("ListUsers", user=alice)))
    waiting.start()
    try:
        assert "member=CheckAuthorization" in questions.wait_for("member=CheckAuthorization")
    finally:
        questions.stop()
    start = time.monotonic()
    assert mfad.stop() == 0
    waiting.join(10)
    assert time.monotonic() - start < 3
    result["reply"].expect_error("org.freedesktop.DBus.Error.NoServer")


def test_polkit_admin_on_own_account_still_needs_the_factor(polkit, mfad, test_users):
    # auth_admin_keep asks for a password, which a guesser may hold: on her own account a
    # polkit-granted admin is refused as an AdminGroup member is (issue 17).
    alice = test_users["mfa-alice"]
    mfad.enroll_totp("mfa-alice")
    polkit.set_allowed([ACTION])
    mfad.call("ResetUser", "s", "mfa-alice", user=alice).expect_error("StepUpRequired")
    mfad.call("Unlock", "s", "mfa-alice", user=alice).expect_error("NotAllowed")
    assert mfad.call("GetUser", "s", "mfa-alice").expect_ok()["methods"] == ["totp"]
