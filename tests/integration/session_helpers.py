"""Session leaders for the session tests: pam_session_client (tests/unit/pam_module) under pam_wrapper,
with a service whose auth and session stacks are pam_mfa.so from the build tree; a dbus-monitor
of mfad's signals; python3-dbusmock's logind template on the private bus."""

import json
import os
import signal
import subprocess
import tempfile

from conftest import PYTHON, bus_policy, wait_until
from pam_helpers import PAM_PERMIT, PamServices

LOGIND_POLICY = bus_policy("""  <policy user="root">
    <allow own="org.freedesktop.login1"/>
    <allow send_destination="org.freedesktop.login1"/>
  </policy>
""")


def client_path(build_dir):
    built = os.path.join(build_dir, "tests", "unit", "pam_module", "pam_session_client")
    if os.path.exists(built):
        return built
    outdir = tempfile.mkdtemp(prefix="mfa-session-client-")
    os.chmod(outdir, 0o755)
    out = os.path.join(outdir, "pam_session_client")
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "unit", "pam_module",
                       "pam_session_client.c")
    subprocess.run(["cc", "-O2", "-o", out, src, "-lpam"], check=True)
    return out


def audit(m, user, kind):
    """m's audit rows of kind about user."""
    rows = m.call("ListAuditEvents", "a{sv}",
                  {"user": ["@s", user], "limit": ["@u", 1000]}).expect_ok()
    return [r for r in rows if r["kind"] == kind]


class SessionServices(PamServices):
    def __init__(self, build_dir, bus_address):
        super().__init__(build_dir, bus_address)
        self.client = client_path(build_dir)

    def session_service(self, name="mfa-session", args="", then_permit=False):
        with open(os.path.join(self.dir, name), "w") as f:
            f.write(f"auth required {self.mfa(args)}\n")
            f.write(f"account required {PAM_PERMIT}\n")
            f.write(f"session required {self.mfa(args)}\n")
            if then_permit:
                f.write(f"session required {PAM_PERMIT}\n")
        return name

    def leader(self, service, user, rhost="192.0.2.7", tty="pts/9", answers=(), env=()):
        return Leader(self, service, getattr(user, "name", user), rhost, tty, answers, env)


def default_sighup():
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


class Leader:
    """A running pam_session_client: .opened is its first JSON line."""

    def __init__(self, services, service, user, rhost, tty, answers, env):
        argv = [services.client, "-I", f"rhost={rhost}", "-I", f"tty={tty}"]
        for e in env:
            argv += ["-E", e]
        if answers:
            argv.append("--authenticate")
        argv += [service, user]
        # Its own process group, as a login's: mfad signals the leader's group. SIGHUP back to
        # its default, as login(1) does: a test run under nohup would otherwise pass SIG_IGN on.
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=services.env(),
                                     start_new_session=True, preexec_fn=default_sighup)
        for a in answers:
            self.proc.stdin.write(a + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"pam_session_client printed nothing: {self.proc.stderr.read()[-3000:]}"
        self.opened = json.loads(line)
        self.pid = self.proc.pid

    @property
    def open_rc(self):
        return self.opened["open"]

    @property
    def session_id(self):
        return self.opened["session_id"]

    def close(self, timeout=20):
        """SIGTERM: the client calls pam_close_session; returns its rc."""
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=timeout)
        lines = [json.loads(x) for x in out.splitlines() if x.strip()]
        assert lines, f"no close line: {err[-3000:]}"
        return lines[-1]["close"]

    def wait_dead(self, timeout=15):
        """The exit status (negative: the signal) once it ended, or None."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


class Monitor:
    """dbus-monitor of the private bus's messages matching match (default: org.mfad1's
    signals); ready when constructed."""

    def __init__(self, bus, match="type='signal',interface='org.mfad1.Manager'"):
        self.out = tempfile.NamedTemporaryFile(mode="w+", prefix="mfa-monitor-", delete=False)
        self.proc = subprocess.Popen(
            ["dbus-monitor", "--address", bus.address, "--monitor", match],
            stdout=self.out, stderr=subprocess.STDOUT, text=True)
        # Once a monitor, its connection loses its unique name and prints the NameLost signal
        # the bus sends it: from then on it sees every matching message.
        assert wait_until(lambda: "member=NameLost" in self.text() or self.proc.poll()
                          is not None), "dbus-monitor did not become a monitor"
        assert self.proc.poll() is None, self.text()

    def text(self):
        with open(self.out.name) as f:
            return f.read()

    def wait_for(self, *needles, timeout=15):
        """The output once it holds every needle, or when timeout seconds have passed."""
        wait_until(lambda: all(n in self.text() for n in needles), timeout)
        return self.text()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)
        os.unlink(self.out.name)


class Logind:
    """python3-dbusmock's logind template, owning org.freedesktop.login1 on the private bus."""

    def __init__(self, bus):
        with open(os.path.join(bus.dir, "system.d", "login1-mock.conf"), "w") as f:
            f.write(LOGIND_POLICY)
        subprocess.run(["busctl", f"--address={bus.address}", "call", "org.freedesktop.DBus",
                        "/org/freedesktop/DBus", "org.freedesktop.DBus", "ReloadConfig"],
                       check=True, capture_output=True, timeout=10)
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus.address)
        self.bus = bus
        self.proc = subprocess.Popen([PYTHON, "-m", "dbusmock", "--system", "--template", "logind"],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        bus.wait_owner("org.freedesktop.login1", self.proc)

    def terminate_calls(self):
        r = subprocess.run(["busctl", f"--address={self.bus.address}", "--json=short", "call",
                            "org.freedesktop.login1", "/org/freedesktop/login1",
                            "org.freedesktop.DBus.Mock", "GetMethodCalls", "s",
                            "TerminateSession"], capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r.stderr
        calls = json.loads(r.stdout)["data"][0]
        return [[arg["data"] for arg in args] for _t, args in calls]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)

