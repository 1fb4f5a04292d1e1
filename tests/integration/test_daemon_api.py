"""mfad's D-Bus surface: introspection against the XML in the repository, the Version property,
and bad input of every kind answered with a named error while the daemon keeps answering."""

import subprocess

from conftest import call_spec
from daemon_helpers import XML_PATH, busctl, interface_shape


def test_introspection_matches_the_xml(mfad):
    r = busctl(mfad.bus, "introspect", "--xml-interface", "org.mfad1", "/org/mfad1")
    assert r.returncode == 0, r.stderr
    with open(XML_PATH) as f:
        expected = interface_shape(f.read())
    running = interface_shape(r.stdout)
    assert running["methods"] == expected["methods"]
    assert running["signals"] == expected["signals"]
    assert running["properties"] == expected["properties"]


def test_introspection_and_version_are_open_to_everyone(mfad, test_users):
    alice = test_users["mfa-alice"]
    r = busctl(mfad.bus, "introspect", "--xml-interface", "org.mfad1", "/org/mfad1", user=alice)
    assert r.returncode == 0, r.stderr
    assert "BeginAuthentication" in r.stdout
    reply = mfad.calls([call_spec("Get", "ss", "org.mfad1.Manager", "Version",
                                  interface="org.freedesktop.DBus.Properties")], user=alice)[0]
    version = reply.expect_ok()
    assert version and version[0].isdigit()
    r = subprocess.run([mfad.binary, "--version"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.strip() == f"mfad {version}"


def test_unknown_method_is_a_named_error(mfad):
    mfad.call("NoSuchMethod", "s", "x").expect_error("org.freedesktop.DBus.Error.UnknownMethod")
    mfad.call("GetUser", "s", "root").expect_ok()


def test_huge_strings_are_refused_and_the_daemon_still_answers(mfad, test_users):
    big = "a" * 200_000
    msg = mfad.call("GetUser", "s", big).expect_error("InvalidArgument")
    assert "too long" in msg and big not in msg
    ctx = {"service": big}
    mfad.call("BeginAuthentication", "sa{ss}", "mfa-alice", ctx).expect_error("InvalidArgument")
    mfad.call("Verify", "ss", "0" * 32, "1" * 200_000).expect_error("InvalidArgument")
    mfad.call("BeginTotpEnrollment", "sa{sv}", "mfa-alice",
              {"issuer": ["@s", big]}).expect_error("InvalidArgument")
    mfad.call("GenerateBackupCodes", "ss", "mfa-alice", big).expect_error("InvalidArgument")
    # Still alive and answering.
    info = mfad.call("GetUser", "s", "mfa-alice").expect_ok()
    assert info["user"] == "mfa-alice"


def test_empty_and_unknown_names(mfad, test_users):
    mfad.call("GetUser", "s", "").expect_error("InvalidArgument")
    mfad.call("GetUser", "s", "mfa-no-such-user-x").expect_error("NoSuchUser")
    # Issue 17: a name NSS does not know is no account, not an account without factors.
    mfad.call("BeginAuthentication", "sa{ss}", "mfa-no-such-user-x",
              {"service": "test"}).expect_error("NoSuchUser")
    mfad.call("BeginAuthentication", "sa{ss}", "", {}).expect_error("InvalidArgument")
    mfad.call("Verify", "ss", "", "123456").expect_error("NoSuchChallenge")
    mfad.call("EndAuthentication", "s", "").expect_error("NoSuchChallenge")
    mfad.call("DisableMethod", "sss", "mfa-alice", "carrier-pigeon", "").expect_error(
        "InvalidArgument")


def test_options_are_checked_by_name_and_type(mfad, test_users):
    msg = mfad.call("BeginTotpEnrollment", "sa{sv}", "mfa-alice",
                    {"algorithm": ["@s", "MD5"]}).expect_error("InvalidArgument")
    assert "lgorithm" in msg
    msg = mfad.call("BeginTotpEnrollment", "sa{sv}", "mfa-alice",
                    {"digits": ["@s", "8"]}).expect_error("InvalidArgument")
    assert "digits" in msg
    msg = mfad.call("BeginTotpEnrollment", "sa{sv}", "mfa-alice",
                    {"digits": ["@u", 9]}).expect_error("InvalidArgument")
    assert "digits" in msg
    msg = mfad.call("BeginTotpEnrollment", "sa{sv}", "mfa-alice",
                    {"colour": ["@s", "blue"]}).expect_error("InvalidArgument")
    assert "colour" in msg
    msg = mfad.call("ListAuditEvents", "a{sv}", {"limit": ["@s", "10"]}).expect_error(
        "InvalidArgument")
    assert "limit" in msg
    mfad.call("ListAuditEvents", "a{sv}", {"limit": ["@u", 10_000_000]}).expect_error(
        "InvalidArgument")
    too_many = {f"k{i}": "v" for i in range(40)}
    mfad.call("BeginAuthentication", "sa{ss}", "mfa-alice", too_many).expect_error(
        "InvalidArgument")
    # Nothing of that left a pending enrollment behind.
    info = mfad.call("GetUser", "s", "mfa-alice").expect_ok()
    assert info["pending"] == [] and info["methods"] == []


def test_session_methods_without_sessions(mfad, test_users):
    mfad.call("CloseSession", "s", "x").expect_error("NoSuchSession")
    mfad.call("TerminateSession", "s", "x").expect_error("NoSuchSession")
    assert mfad.call("ListSessions", "s", "").expect_ok() == []
    assert mfad.call("ListSessions", "s", "mfa-alice").expect_ok() == []
    alice = test_users["mfa-alice"]
    assert mfad.call("ListSessions", "s", "mfa-alice", user=alice).expect_ok() == []
    mfad.call("ListSessions", "s", "", user=alice).expect_error("NotAllowed")
    mfad.call("ListSessions", "s", "mfa-bob", user=alice).expect_error("NotAllowed")
