"""The integration harness: a private system bus with the project's own policy, the real mfad on a
temporary state directory, test users, and D-Bus clients running as root or as those users.

Environment:
  MFA_BUILD_DIR  build tree to test (default: <repo>/build)
  MFA_ASAN=1     the build is ASan+UBSan: set the sanitizer options for every child process

Fixtures: build_dir, test_users, bus, mfad (started), mfad_factory (configure before start).
Helpers: totp(), Mfad.call()/call_as(), Mfad.enroll_totp(), Mfad.next_code(), mfactl(), run_as(),
wait_until() (tests wait on a condition, never for a guessed time).
"""

import base64
import grp
import hashlib
import hmac
import json
import os
import pwd
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = "/usr/bin/python3"  # Debian's: it has dbus-python and dbusmock
ASAN = os.environ.get("MFA_ASAN") == "1"


def bus_policy(policies):
    """A bus configuration file (for the bus's included policy files) holding these <policy>
    elements."""
    return ('<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"\n'
            ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n'
            f"<busconfig>\n{policies}</busconfig>\n")


# The private system bus's configuration, shared with scripts/demo.sh: the default system policy
# of /usr/share/dbus-1/system.conf, with the project's policy file included unchanged from systemd/.
BUS_CONFIG_TEMPLATE = os.path.join(REPO, "tests", "bus", "system-bus.conf.in")


def bus_config(socket, policy_dir):
    """The text of the private system bus's configuration file."""
    with open(BUS_CONFIG_TEMPLATE) as f:
        return f.read().replace("@SOCKET@", socket).replace("@POLICY_DIR@", policy_dir)


# Test accounts: (name, password, admin?). Created once per test session, removed at its end.
TEST_USERS = [
    ("mfa-alice", "alice-Pw-4f9!", False),
    ("mfa-bob", "bob-Pw-7c2!", False),
    ("mfa-carol", "carol-Pw-1e8!", True),
]
ADMIN_GROUP = "mfa-admin"
# A second passwd entry with mfa-alice's uid and gid (the `alice_alias` fixture).
ALICE_ALIAS = "mfa-alice-alias"


def read_log(path):
    """The text of a process's log file so far ("" before it exists); bad bytes replaced."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def wait_until(predicate, timeout=15, interval=0.05):
    """predicate()'s first true value within timeout seconds, else its last value: a test waits
    for what it needs (a process ready, a row written), never a fixed time. interval is only how
    often predicate is asked."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


if ASAN:
    # The ASan tree also carries --coverage (scripts/test-all.sh): a test user's process cannot
    # write the .gcda files of root's build tree, and libgcov would say so on stderr, which tests
    # compare. run_as points such a process at a tree of its own uid under this directory
    # (GCOV_PREFIX); its counts are left out of the figure, which counts what root's processes ran.
    import atexit
    GCOV_USER_DIR = tempfile.mkdtemp(prefix="mfa-gcov-")
    atexit.register(shutil.rmtree, GCOV_USER_DIR, True)
    os.chmod(GCOV_USER_DIR, 0o1777)


def sanitizer_env(env=None):
    env = dict(os.environ if env is None else env)
    if ASAN:
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:halt_on_error=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return env


# ---------------------------------------------------------------------------------------------
# TOTP, independently of the product (RFC 4226/6238).


def totp(secret_b32, t=None, digits=6, algorithm="SHA1", period=30, step=None):
    key = base64.b32decode(secret_b32.upper() + "=" * (-len(secret_b32) % 8))
    if step is None:
        step = int((time.time() if t is None else t) // period)
    digest = hmac.new(key, struct.pack(">Q", step), getattr(hashlib, algorithm.lower())).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % (10 ** digits)).zfill(digits)


def current_step(period=30):
    return int(time.time() // period)


# ---------------------------------------------------------------------------------------------
# Users.


@dataclass
class User:
    name: str
    password: str
    uid: int
    gid: int
    admin: bool
    home: str


def _exists(database, name):
    return subprocess.run(["getent", database, name], capture_output=True).returncode == 0


def ensure_user(name):
    """Creates the account NAME with a home, unless it exists. Its group may exist already: an
    alias left behind by a run cut short keeps it (the `alice_alias` fixture replaces the alias)."""
    if not _exists("passwd", name):
        group = ["--gid", name] if _exists("group", name) else []
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", *group, name],
                       check=True)


def _ensure_users():
    if not _exists("group", ADMIN_GROUP):
        subprocess.run(["groupadd", "--system", ADMIN_GROUP], check=True)
    users = {}
    for name, password, admin in TEST_USERS:
        ensure_user(name)
        subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
        if admin:
            subprocess.run(["usermod", "-a", "-G", ADMIN_GROUP, name], check=True)
        pw = pwd.getpwnam(name)
        users[name] = User(name, password, pw.pw_uid, pw.pw_gid, admin, pw.pw_dir)
    return users


@pytest.fixture(scope="session")
def test_users():
    """Three accounts: mfa-alice, mfa-bob (plain users), mfa-carol (in group mfa-admin)."""
    created = [n for n, _, _ in TEST_USERS
               if subprocess.run(["getent", "passwd", n], capture_output=True).returncode != 0]
    users = _ensure_users()
    yield users
    if os.environ.get("MFA_KEEP_USERS") != "1":
        for name in created:
            subprocess.run(["userdel", "--remove", name], capture_output=True)


@pytest.fixture
def alice_alias(test_users):
    """ALICE_ALIAS: a second passwd entry with mfa-alice's uid and gid (after hers, so that getpwuid
    names her), removed afterwards: left behind, it would keep her group when her account goes."""
    owner = test_users["mfa-alice"]
    try:
        if pwd.getpwnam(ALICE_ALIAS).pw_uid != owner.uid:  # stale, from a run that was cut short
            subprocess.run(["userdel", ALICE_ALIAS], check=True)
            raise KeyError(ALICE_ALIAS)
    except KeyError:
        subprocess.run(["useradd", "--non-unique", "--uid", str(owner.uid), "--gid",
                        str(owner.gid), "--no-create-home", "--home-dir", owner.home, "--shell",
                        "/usr/sbin/nologin", ALICE_ALIAS], check=True)
    assert pwd.getpwuid(owner.uid).pw_name == owner.name
    yield ALICE_ALIAS
    if os.environ.get("MFA_KEEP_USERS") != "1":
        subprocess.run(["userdel", ALICE_ALIAS], check=True)


def run_as(user, argv, **kwargs):
    """Runs argv as the given User (or user name) with its groups; returns CompletedProcess."""
    if isinstance(user, str):
        pw = pwd.getpwnam(user)
        uid, gid = pw.pw_uid, pw.pw_gid
    else:
        uid, gid = user.uid, user.gid
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", 60)
    kwargs["env"] = sanitizer_env(kwargs.get("env"))
    if ASAN:
        kwargs["env"]["GCOV_PREFIX"] = os.path.join(GCOV_USER_DIR, str(uid))
    cmd = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups", "--"] + list(argv)
    return subprocess.run(cmd, **kwargs)


# ---------------------------------------------------------------------------------------------
# Build tree.


@pytest.fixture(scope="session")
def build_dir():
    path = os.path.abspath(os.environ.get("MFA_BUILD_DIR", os.path.join(REPO, "build")))
    assert os.path.exists(os.path.join(path, "daemon", "mfad")), f"mfad is not built in {path}"
    return path


# ---------------------------------------------------------------------------------------------
# The private system bus.


class Bus:
    def __init__(self, workdir, policy=None):
        """policy: the text of the bus policy for org.mfad1 (default: the project's file)."""
        self.dir = workdir
        self.socket = os.path.join(workdir, "system_bus_socket")
        self.address = f"unix:path={self.socket}"
        policy_dir = os.path.join(workdir, "system.d")
        os.makedirs(policy_dir)
        if policy is None:
            shutil.copy(os.path.join(REPO, "systemd", "org.mfad1.conf"), policy_dir)
        else:
            with open(os.path.join(policy_dir, "org.mfad1.conf"), "w") as f:
                f.write(policy)
        self.config = os.path.join(workdir, "bus.conf")
        with open(self.config, "w") as f:
            f.write(bus_config(self.socket, policy_dir))
        self.proc = subprocess.Popen(
            ["dbus-daemon", f"--config-file={self.config}", "--nofork", "--nopidfile",
             "--print-address=1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("unix:"), f"dbus-daemon did not start: {self.proc.stderr.read()}"
        os.chmod(self.socket, 0o777)

    def name_owner(self, name):
        """The unique name owning name, or None."""
        r = subprocess.run(["busctl", f"--address={self.address}", "call", "org.freedesktop.DBus",
                            "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetNameOwner", "s",
                            name], capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            return None
        return r.stdout.split('"')[1]

    def wait_owner(self, name, proc, timeout=20):
        """Waits for proc (a Popen) to own name; fails when it exits first or takes too long."""
        wait_until(lambda: self.name_owner(name) or proc.poll() is not None, timeout)
        assert proc.poll() is None, \
            f"the owner of {name} exited: {proc.stderr.read() if proc.stderr else ''}"
        assert self.name_owner(name), f"{name} was not owned within {timeout} s"

    def stop(self):
        stop_process(self.proc, 5)


def stop_process(proc, timeout):
    """SIGTERM to proc if it still runs, SIGKILL if it has not exited within timeout seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def make_world_dir(prefix):
    d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(d, 0o755)
    return d


@pytest.fixture
def bus():
    workdir = make_world_dir("mfa-bus-")
    b = Bus(workdir)
    yield b
    b.stop()
    shutil.rmtree(workdir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# D-Bus calls, through dbus-python (Debian's), in a child process so that the caller's identity
# is exactly the one chosen: root by default, or a test user.

_CALL_SCRIPT = r"""
import json, sys, dbus
req = json.loads(sys.stdin.read())
def plain(v):
    if isinstance(v, dbus.Boolean): return bool(v)
    if isinstance(v, (dbus.Byte, dbus.Int16, dbus.Int32, dbus.Int64, dbus.UInt16, dbus.UInt32,
                      dbus.UInt64)): return int(v)
    if isinstance(v, dbus.Double): return float(v)
    if isinstance(v, (dbus.String, dbus.ObjectPath, dbus.Signature)): return str(v)
    if isinstance(v, (dbus.Array, list, tuple, dbus.Struct)): return [plain(x) for x in v]
    if isinstance(v, (dbus.Dictionary, dict)): return {str(k): plain(x) for k, x in v.items()}
    return v
def conv(sig_item, v):
    # a{sv}: wrap values in variants with an explicit type when given as [type, value]
    if sig_item == "a{sv}" and isinstance(v, dict):
        out = dbus.Dictionary({}, signature="sv")
        for k, x in v.items():
            if isinstance(x, list) and len(x) == 2 and isinstance(x[0], str) and x[0].startswith("@"):
                t = x[0][1:]
                ctor = {"s": dbus.String, "u": dbus.UInt32, "t": dbus.UInt64, "i": dbus.Int32,
                        "x": dbus.Int64, "b": dbus.Boolean, "as": lambda a: dbus.Array(a, signature="s")}[t]
                out[k] = ctor(x[1])
            else:
                out[k] = x
        return out
    return v
bus = dbus.bus.BusConnection(req["address"])
results = []
for call in req["calls"]:
    try:
        obj = bus.get_object(call.get("dest", "org.mfad1"), call.get("path", "/org/mfad1"),
                             introspect=False)
        sig = call["signature"]
        items = list(dbus.Signature(sig)) if sig else []
        args = [conv(str(s), a) for s, a in zip(items, call["args"])]
        # "$N" stands for the first value returned by call N (a challenge, say), so that a whole
        # dialogue runs on one connection.
        args = [results[int(a[1:])]["result"][0] if isinstance(a, str) and a[:1] == "$"
                and a[1:].isdigit() and results[int(a[1:])].get("ok") else a for a in args]
        r = obj.get_dbus_method(call["method"], call.get("interface", "org.mfad1.Manager"))(
            *args, signature=sig, timeout=call.get("timeout", 30))
        results.append({"ok": True, "result": plain(r)})
    except dbus.exceptions.DBusException as e:
        results.append({"ok": False, "error": e.get_dbus_name(), "message": e.get_dbus_message()})
print(json.dumps(results))
"""


@dataclass
class Reply:
    ok: bool
    result: object = None
    error: str = ""
    message: str = ""

    def expect_ok(self):
        assert self.ok, f"expected success, got {self.error}: {self.message}"
        return self.result

    def expect_error(self, name):
        if not name.startswith("org."):
            name = "org.mfad1.Error." + name
        assert not self.ok, f"expected {name}, got success: {self.result}"
        assert self.error == name, f"expected {name}, got {self.error}: {self.message}"
        return self.message


def dbus_calls(address, calls, user=None, timeout=60):
    """Runs several calls on ONE connection (same unique name), as root or as user."""
    req = json.dumps({"address": address, "calls": calls})
    argv = [PYTHON, "-c", _CALL_SCRIPT]
    if user is None:
        r = subprocess.run(argv, input=req, capture_output=True, text=True, timeout=timeout)
    else:
        r = run_as(user, argv, input=req, timeout=timeout)
    assert r.returncode == 0, f"D-Bus client failed: {r.stderr}"
    return [Reply(**x) for x in json.loads(r.stdout)]


def call_spec(method, signature="", *args, **kw):
    d = {"method": method, "signature": signature, "args": list(args)}
    d.update(kw)
    return d


# ---------------------------------------------------------------------------------------------
# mfad.


DEFAULT_CONFIG = {
    "Daemon": {"AdminGroup": ADMIN_GROUP},
    # A wider window than the product's default (1) leaves room for several logins of one user
    # inside a test without waiting for the clock (each step can be used once).
    "TOTP": {"Issuer": "mfad-test", "Window": "5"},
}


class Mfad:
    def __init__(self, build_dir, bus, workdir):
        self.build_dir = build_dir
        self.bus = bus
        self.dir = workdir
        self.binary = os.path.join(build_dir, "daemon", "mfad")
        self.mfactl_binary = os.path.join(build_dir, "mfactl", "mfactl")
        self.state_dir = os.path.join(workdir, "state")
        self.config_path = os.path.join(workdir, "mfad.conf")
        self.key_path = os.path.join(workdir, "master.key")
        self.db_path = os.path.join(self.state_dir, "mfad.db")
        self.log_path = os.path.join(workdir, "mfad.log")
        self.proc = None
        self.last_exit = None
        self.config = json.loads(json.dumps(DEFAULT_CONFIG))
        self._last_step = {}

    # -- configuration --
    def set_config(self, section, key, value):
        self.config.setdefault(section, {})[key] = str(value)

    def write_config(self):
        cfg = json.loads(json.dumps(self.config))
        cfg.setdefault("Daemon", {})
        cfg["Daemon"].setdefault("StateDirectory", self.state_dir)
        cfg["Daemon"].setdefault("KeyFile", self.key_path)
        with open(self.config_path, "w") as f:
            for section, kv in cfg.items():
                f.write(f"[{section}]\n")
                for k, v in kv.items():
                    f.write(f"{k}={v}\n")
                f.write("\n")
        os.chmod(self.config_path, 0o644)

    # -- lifecycle --
    def start(self, wait=True, extra_args=()):
        assert self.proc is None or self.proc.poll() is not None
        self.write_config()
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [self.binary, "--config", self.config_path, "--bus-address", self.bus.address,
             *extra_args], stdout=self.log, stderr=subprocess.STDOUT, env=sanitizer_env())
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=20):
        wait_until(lambda: self.proc.poll() is not None or self.bus.name_owner("org.mfad1"),
                   timeout)
        if self.proc.poll() is not None:
            raise AssertionError(f"mfad exited with {self.proc.returncode}:\n{self.log_text()}")
        if not self.bus.name_owner("org.mfad1"):
            raise AssertionError(f"mfad did not take its bus name:\n{self.log_text()}")

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            self.last_exit = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.last_exit = self.proc.wait()
            raise AssertionError("mfad did not exit after SIGTERM")
        self.log.close()
        return self.last_exit

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def restart(self):
        code = self.stop()
        self.start()
        return code

    def log_text(self):
        return read_log(self.log_path)

    # -- D-Bus --
    def call(self, method, signature="", *args, user=None, timeout=30):
        """One call on a fresh connection; returns a Reply."""
        return dbus_calls(self.bus.address, [call_spec(method, signature, *args, timeout=timeout)],
                          user=user)[0]

    def calls(self, specs, user=None):
        """Several calls on one connection (challenges are tied to the caller's unique name)."""
        return dbus_calls(self.bus.address, specs, user=user)

    # -- enrollment and codes --
    def enroll_totp(self, user, algorithm=None, digits=None):
        """Enrolls user (an admin call as root); returns the base32 secret."""
        name = user.name if isinstance(user, User) else user
        options = {}
        if algorithm:
            options["algorithm"] = ["@s", algorithm]
        if digits:
            options["digits"] = ["@u", digits]
        secret, _uri = self.call("BeginTotpEnrollment", "sa{sv}", name, options).expect_ok()
        step = current_step()
        code = totp(secret, step=step, digits=digits or 6, algorithm=algorithm or "SHA1")
        self.call("ConfirmTotpEnrollment", "ss", name, code).expect_ok()
        self._last_step[name] = step
        return secret

    def next_code(self, user, secret, digits=6, algorithm="SHA1"):
        """A code for the next unused time step inside the window (replay protection means
        each step works once)."""
        name = user.name if isinstance(user, User) else user
        step = max(current_step(), self._last_step.get(name, 0) + 1)
        window = int(self.config.get("TOTP", {}).get("Window", "1"))
        assert step <= current_step() + window, "no unused TOTP step left in the window"
        self._last_step[name] = step
        return totp(secret, step=step, digits=digits, algorithm=algorithm)

    def login(self, user, code, context=None):
        """BeginAuthentication + Verify + EndAuthentication on one connection, as root (the PAM
        module's dialogue). Returns (begin_reply, verify_reply); verify_reply is None when
        BeginAuthentication failed."""
        name = user.name if isinstance(user, User) else user
        ctx = context or {"service": "test", "rhost": "127.0.0.1", "tty": "pts/0", "ruser": ""}
        codes = code if isinstance(code, list) else [code]
        specs = [call_spec("BeginAuthentication", "sa{ss}", name, ctx)]
        specs += [call_spec("Verify", "ss", "$0", c) for c in codes]
        specs.append(call_spec("EndAuthentication", "s", "$0"))
        replies = self.calls(specs)
        if not replies[0].ok:
            return replies[0], None
        verifies = replies[1:-1]
        return replies[0], (verifies if isinstance(code, list) else verifies[0])

    def sql(self, query):
        """Reads the database with the sqlite3 shell (read-only)."""
        r = subprocess.run(["sqlite3", "-readonly", self.db_path, query], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def mfactl(self, *args, user=None, input=None, timeout=60):
        argv = [self.mfactl_binary, "--bus-address", self.bus.address, *args]
        if user is None:
            return subprocess.run(argv, input=input, capture_output=True, text=True,
                                  timeout=timeout, env=sanitizer_env())
        return run_as(user, argv, input=input, timeout=timeout)


@pytest.fixture
def mfad_factory(build_dir, bus, test_users):
    """An mfad not started yet: adjust .config (set_config) then .start()."""
    workdir = make_world_dir("mfa-daemon-")
    m = Mfad(build_dir, bus, workdir)
    yield m
    if m.proc is not None and m.proc.poll() is None:
        code = m.stop()
        if code not in (0, None) and ASAN:
            print(m.log_text())
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def mfad(mfad_factory):
    """The real mfad, started on the private bus with the test configuration."""
    return mfad_factory.start()


def pytest_runtest_makereport(item, call):
    # On failure, show mfad's log: it is the first thing one wants to read.
    if call.when == "call" and call.excinfo is not None:
        m = item.funcargs.get("mfad") or item.funcargs.get("mfad_factory")
        if isinstance(m, Mfad):
            text = m.log_text()
            if text:
                sys.stderr.write("\n--- mfad log ---\n" + text[-8000:] + "\n")
