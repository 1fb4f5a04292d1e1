"""pam_mfa.so when mfad is not there to decide (docs/security-model.md, "Failure policy"): stopped,
killed or replaced in the
middle of a dialogue, frozen (SIGSTOP), or impersonated by a process that is neither root nor the
mfad user. failmode=secure → PAM_AUTHINFO_UNAVAIL; failmode=ignore → PAM_IGNORE; never success.
A scripted stand-in for mfad also covers answers the real one cannot give yet (an SMS sent) or
only with a broken disk (StorageFailure)."""

import os
import shutil
import signal
import subprocess
import tempfile

import pytest

from conftest import PYTHON, wait_until
from pam_helpers import (ALICE, CODE_PROMPT, PAM_AUTH_ERR, PAM_AUTHINFO_UNAVAIL, PAM_DENY,
                         PAM_MAXTRIES, PAM_PERMIT, PAM_SUCCESS, PamServices, assert_no_secrets)
from pam_helpers import alice, pam  # noqa: F401 (fixtures are found by name)


def file_text(path):
    with open(path) as f:
        return f.read()


def ignored_stacks(pam, args):
    """Two stacks that together show PAM_IGNORE: not a failure (required + permit passes) and
    not a success (sufficient + deny fails)."""
    return (pam.add("ign-req", f"required {pam.mfa(args)}", f"required {PAM_PERMIT}"),
            pam.add("ign-suf", f"sufficient {pam.mfa(args)}", f"required {PAM_DENY}"))


def test_daemon_stopped_failmode_secure(pam, mfad, alice):
    mfad.stop()
    r = pam.run(pam.single("login"), ALICE, []).expect(PAM_AUTHINFO_UNAVAIL)
    assert r.prompts == []
    assert any("mfad is not running" in line for line in r.syslog)


def test_daemon_stopped_failmode_ignore(pam, mfad, alice):
    mfad.stop()
    req, suf = ignored_stacks(pam, "failmode=ignore")
    r = pam.run(req, ALICE, []).expect(PAM_SUCCESS)
    assert r.prompts == []
    pam.run(suf, ALICE, []).expect(PAM_AUTH_ERR)


def test_failmode_ignore_does_not_skip_a_running_daemon(pam, mfad, alice):
    req, _ = ignored_stacks(pam, "failmode=ignore max_tries=1")
    code = mfad.next_code(ALICE, alice)
    r = pam.run(req, ALICE, ["%06d" % ((int(code) + 1) % 1000000)])
    assert r.rc != PAM_SUCCESS
    assert r.errors == ["Invalid code"]


def test_no_bus_at_all(pam, mfad, alice):
    svc = pam.add("nobus", "required " + pam.module + " bus_address=unix:path=/nonexistent/sock")
    pam.run(svc, ALICE, []).expect(PAM_AUTHINFO_UNAVAIL)
    svc = pam.add("nobus-ign", "required " + pam.module +
                  " bus_address=unix:path=/nonexistent/sock failmode=ignore",
                  f"required {PAM_PERMIT}")
    pam.run(svc, ALICE, []).expect(PAM_SUCCESS)


def test_unprivileged_host_is_refused_even_with_failmode_ignore(pam, mfad, alice):
    # A PAM application that is not root (a screen locker, say) may not ask mfad; that is a
    # refusal by a running daemon, not an unreachable one, so failmode=ignore does not apply.
    svc = pam.add("unpriv", f"required {pam.mfa('failmode=ignore')}", f"required {PAM_PERMIT}")
    r = pam.run(svc, ALICE, ["123456"], as_user="mfa-bob").expect(PAM_AUTHINFO_UNAVAIL)
    assert r.prompts == []
    assert any("refused" in line for line in r.syslog), r.syslog


@pytest.mark.parametrize("failmode", ["secure", "ignore"])
def test_daemon_killed_mid_dialogue(pam, mfad, alice, failmode):
    svc = pam.single("kill", f"failmode={failmode}")
    code = mfad.next_code(ALICE, alice)
    login = pam.start(svc, ALICE)
    login.wait_prompt()
    mfad.kill9()
    login.answer(code)
    r = login.finish()
    if failmode == "secure":
        r.expect(PAM_AUTHINFO_UNAVAIL)
    else:
        # The module said PAM_IGNORE; alone in a required stack libpam makes that a failure.
        assert r.rc != PAM_SUCCESS
    assert r.prompts == [CODE_PROMPT]


def test_daemon_replaced_mid_dialogue_gets_no_code(pam, mfad, alice):
    # The code goes to the unique name that was checked, never to a new owner of org.mfad1.
    svc = pam.single("replace")
    code = mfad.next_code(ALICE, alice)
    login = pam.start(svc, ALICE)
    login.wait_prompt()
    mfad.kill9()
    before = len(mfad.log_text())
    mfad.start()
    login.answer(code)
    r = login.finish().expect(PAM_AUTHINFO_UNAVAIL)
    after = mfad.log_text()[before:]
    assert "auth.success" not in after and "auth.failure" not in after, after
    assert_no_secrets([code], r.stderr, mfad.log_text())
    # The code was not consumed: the new daemon accepts it.
    pam.run(pam.single("again"), ALICE, [code]).expect(PAM_SUCCESS)


def test_daemon_frozen_before_the_dialogue(pam, mfad, alice):
    svc = pam.single("frozen", "timeout=2")
    mfad.proc.send_signal(signal.SIGSTOP)
    try:
        r = pam.run(svc, ALICE, ["000000"]).expect(PAM_AUTHINFO_UNAVAIL)
    finally:
        mfad.proc.send_signal(signal.SIGCONT)
    assert r.prompts == []
    assert r.wall < 3.0, f"took {r.wall:.2f}s with timeout=2"


def test_daemon_frozen_mid_dialogue(pam, mfad, alice):
    svc = pam.single("frozen", "timeout=2")
    code = mfad.next_code(ALICE, alice)
    login = pam.start(svc, ALICE)
    login.wait_prompt()
    mfad.proc.send_signal(signal.SIGSTOP)
    try:
        login.answer(code)
        r = login.finish(timeout=30).expect(PAM_AUTHINFO_UNAVAIL)
    finally:
        mfad.proc.send_signal(signal.SIGCONT)
    assert r.wall < 3.0, f"answer came {r.wall:.2f}s after the code with timeout=2"
    assert_no_secrets([code], r.stderr)


def test_daemon_frozen_failmode_ignore(pam, mfad, alice):
    req, suf = ignored_stacks(pam, "timeout=1 failmode=ignore")
    mfad.proc.send_signal(signal.SIGSTOP)
    try:
        pam.run(req, ALICE, []).expect(PAM_SUCCESS)
        pam.run(suf, ALICE, []).expect(PAM_AUTH_ERR)
    finally:
        mfad.proc.send_signal(signal.SIGCONT)


# ---------------------------------------------------------------------------------------------
# An impostor owning org.mfad1 on a bus whose policy lets anyone own it.

PERMISSIVE_BUS = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path={socket}</listen>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""

FAKE_DAEMON = r"""
import sys, dbus, dbus.service, dbus.mainloop.glib
from gi.repository import GLib
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
log = open(sys.argv[2], "a", buffering=1)
mode = sys.argv[3]
bus = dbus.bus.BusConnection(sys.argv[1])
class Error(dbus.DBusException):
    def __init__(self, name, message):
        super().__init__(message, name="org.mfad1.Error." + name)
class Fake(dbus.service.Object):
    @dbus.service.method("org.mfad1.Manager", in_signature="sa{ss}", out_signature="sas")
    def BeginAuthentication(self, user, context):
        log.write("BeginAuthentication\n")
        if mode == "storage":
            raise Error("StorageFailure", "database is locked")
        return "c0ffee", ["totp", "sms"]
    @dbus.service.method("org.mfad1.Manager", in_signature="s", out_signature="s")
    def SendSmsCode(self, challenge):
        log.write("SendSmsCode\n")
        return "+1******1234"
    @dbus.service.method("org.mfad1.Manager", in_signature="ss", out_signature="s")
    def Verify(self, challenge, code):
        log.write("Verify " + code + "\n")
        if mode == "sms":
            if code != "424242":
                raise Error("BadCode", "Invalid code")
            return "sms"
        if mode == "locked":
            raise Error("RateLimited", "Too many failures;\x1b[2J try again in 15 minutes")
        return "totp"
    @dbus.service.method("org.mfad1.Manager", in_signature="s", out_signature="")
    def EndAuthentication(self, challenge):
        log.write("EndAuthentication\n")
    @dbus.service.method("org.mfad1.Manager", in_signature="sa{ss}", out_signature="s")
    def OpenSession(self, user, context):
        log.write("OpenSession\n")
        return "5e55104"
    @dbus.service.method("org.mfad1.Manager", in_signature="s", out_signature="")
    def CloseSession(self, session_id):
        log.write("CloseSession\n")
name = dbus.service.BusName("org.mfad1", bus)
Fake(bus, "/org/mfad1")
print("ready", flush=True)
GLib.MainLoop().run()
"""


@pytest.fixture
def open_bus():
    d = tempfile.mkdtemp(prefix="mfa-openbus-", dir="/tmp")
    os.chmod(d, 0o755)
    socket = os.path.join(d, "bus_socket")
    with open(os.path.join(d, "bus.conf"), "w") as f:
        f.write(PERMISSIVE_BUS.format(socket=socket))
    proc = subprocess.Popen(["dbus-daemon", f"--config-file={d}/bus.conf", "--nofork",
                             "--nopidfile", "--print-address=1"], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().startswith("unix:")
    os.chmod(socket, 0o777)
    yield d, f"unix:path={socket}"
    proc.terminate()
    proc.wait(10)
    shutil.rmtree(d, ignore_errors=True)


def start_fake(open_bus, user, mode="plain"):
    d, address = open_bus
    log = os.path.join(d, f"calls-{user or 'root'}.log")
    open(log, "w").close()
    os.chmod(log, 0o666)
    script = os.path.join(d, "fake.py")
    with open(script, "w") as f:
        f.write(FAKE_DAEMON)
    argv = [PYTHON, script, address, log, mode]
    if user:
        import pwd
        pw = pwd.getpwnam(user)
        argv = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups",
                "--"] + argv
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read()
    return proc, log


def test_impostor_daemon_gets_nothing(build_dir, open_bus, test_users):
    pam = PamServices(build_dir, open_bus[1])
    try:
        fake, log = start_fake(open_bus, "mfa-bob")
        try:
            r = pam.run(pam.single("imp"), ALICE, ["123456"]).expect(PAM_AUTHINFO_UNAVAIL)
            assert r.prompts == []
            assert any("not root or mfad" in line for line in r.syslog), r.syslog
            with open(log) as f:
                assert f.read() == "", "the impostor received a call"
            req = pam.add("imp-ign", f"required {pam.mfa('failmode=ignore')}",
                          f"required {PAM_PERMIT}")
            pam.run(req, ALICE, ["123456"]).expect(PAM_SUCCESS)
        finally:
            fake.terminate()
            fake.wait(10)
        # Control: the same fake as root is believed (the check above is what refused it).
        fake, log = start_fake(open_bus, None)
        try:
            pam.run(pam.single("root"), ALICE, ["123456"]).expect(PAM_SUCCESS)
            wait_until(lambda: "EndAuthentication" in file_text(log), timeout=10)
            calls = file_text(log)
            assert calls.splitlines() == ["BeginAuthentication", "Verify 123456",
                                          "EndAuthentication"]
        finally:
            fake.terminate()
            fake.wait(10)
    finally:
        pam.cleanup()


# The same fake, as root, for answers the real daemon cannot give yet (SMS) or only with a broken
# disk: what the user sees for each.


def fake_session(build_dir, open_bus, mode):
    pam = PamServices(build_dir, open_bus[1])
    fake, log = start_fake(open_bus, None, mode)
    return pam, fake, log


def stop_fake(pam, fake):
    fake.terminate()
    fake.wait(10)
    pam.cleanup()


def test_sms_code_is_sent_and_asked_for(build_dir, open_bus, test_users):
    pam, fake, log = fake_session(build_dir, open_bus, "sms")
    try:
        r = pam.run(pam.single("sms"), ALICE, ["SMS", "111111", "424242"]).expect(PAM_SUCCESS)
        assert r.prompts == [CODE_PROMPT, "SMS code: ", CODE_PROMPT]
        assert r.infos == ["A code was sent to +1******1234"]
        assert r.errors == ["Invalid code, 2 tries left"]
        assert_no_secrets(["111111", "424242"], r.syslog)
    finally:
        stop_fake(pam, fake)


def test_lockout_message_is_shown_without_control_characters(build_dir, open_bus, test_users):
    pam, fake, log = fake_session(build_dir, open_bus, "locked")
    try:
        r = pam.run(pam.single("locked"), ALICE, ["123456"]).expect(PAM_MAXTRIES)
        assert r.errors == ["Too many failures; [2J try again in 15 minutes"]
    finally:
        stop_fake(pam, fake)


def test_daemon_that_cannot_decide_is_not_ignored(build_dir, open_bus, test_users):
    # StorageFailure comes from a running daemon: PAM_AUTHINFO_UNAVAIL even with failmode=ignore.
    pam, fake, log = fake_session(build_dir, open_bus, "storage")
    try:
        svc = pam.add("storage", f"required {pam.mfa('failmode=ignore')}",
                      f"required {PAM_PERMIT}")
        r = pam.run(svc, ALICE, []).expect(PAM_AUTHINFO_UNAVAIL)
        assert r.prompts == []
    finally:
        stop_fake(pam, fake)
