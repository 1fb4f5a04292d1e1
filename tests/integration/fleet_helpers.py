"""Fleet mode test helpers: a real redis-server started by the tests (temporary config: no TCP
port, a Unix socket in a temporary directory, an ACL user with a password, append-only file), and
two mfad instances (two private buses, two state directories, one master key) sharing it."""

import json
import os
import secrets
import select
import shutil
import signal
import subprocess

import pytest

from conftest import (ASAN, PYTHON, Bus, Mfad, Reply, make_world_dir, read_log, sanitizer_env,
                      wait_until)

REDIS_SERVER = "/usr/bin/redis-server"
ASAN_REDIS_TIMEOUT_MS = 600
REDIS_CLI = "/usr/bin/redis-cli"
REDIS_USER = "mfad"

REDIS_CONFIG = """port 0
unixsocket {socket}
unixsocketperm 700
daemonize no
dir {dir}
appendonly yes
appendfsync always
save ""
requirepass {admin_password}
user {user} on >{password} ~mfad:* &mfad:* +@all -@admin -@dangerous
"""


class RedisServer:
    def __init__(self):
        self.dir = make_world_dir("mfa-redis-")
        self.socket = os.path.join(self.dir, "redis.sock")
        self.password = secrets.token_hex(16)
        self.admin_password = secrets.token_hex(16)
        self.password_file = os.path.join(self.dir, "redis.password")
        with open(self.password_file, "w") as f:
            f.write(self.password + "\n")
        os.chmod(self.password_file, 0o600)
        self.config = os.path.join(self.dir, "redis.conf")
        with open(self.config, "w") as f:
            # The default user stays on (with a password nobody uses): Redis 7.0 replays an
            # append-only file as the default user, and with "user default off" it refuses the
            # scripts' writes on restart ("NOPERM ACLs rules changed..."), losing them.
            f.write(REDIS_CONFIG.format(socket=self.socket, dir=self.dir, user=REDIS_USER,
                                        password=self.password,
                                        admin_password=self.admin_password))
        self.log_path = os.path.join(self.dir, "redis.log")
        self.proc = None

    @property
    def address(self):
        return "unix:" + self.socket

    def start(self):
        assert self.proc is None or self.proc.poll() is not None
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen([REDIS_SERVER, self.config], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        wait_until(lambda: self.proc.poll() is not None or (
            os.path.exists(self.socket) and self.cli("PING").strip() == "PONG"), timeout=20,
            interval=0.02)
        assert self.proc.poll() is None, "redis-server exited:\n" + self.log_text()
        if os.path.exists(self.socket) and self.cli("PING").strip() == "PONG":
            return self
        raise AssertionError("redis-server did not start:\n" + self.log_text())

    def stop(self, sig=signal.SIGTERM):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(20)
            self.log.close()

    def kill9(self):
        self.stop(signal.SIGKILL)

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def cli(self, *args):
        r = subprocess.run([REDIS_CLI, "-s", self.socket, "--user", REDIS_USER, "--pass",
                            self.password, "--no-auth-warning", "--raw", *args],
                           capture_output=True, text=True, timeout=10)
        return r.stdout

    def admin_cli(self, *args):
        """As the default user (INFO, CONFIG: what the mfad ACL user may not run)."""
        r = subprocess.run([REDIS_CLI, "-s", self.socket, "--pass", self.admin_password,
                            "--no-auth-warning", "--raw", *args],
                           capture_output=True, text=True, timeout=10)
        return r.stdout

    def scripts_run(self):
        """EVALSHA and EVAL commands the server has run or refused so far (INFO commandstats):
        a login's round trips to Redis, since each is one script. (The commands a script runs
        are counted under their own names.)"""
        total = 0
        for line in self.admin_cli("INFO", "commandstats").splitlines():
            if not line.startswith(("cmdstat_evalsha:", "cmdstat_eval:")):
                continue
            fields = dict(kv.split("=", 1) for kv in line.split(":", 1)[1].split(","))
            total += sum(int(fields.get(k, 0)) for k in ("calls", "rejected_calls"))
        return total

    def log_text(self):
        return read_log(self.log_path)

    def cleanup(self):
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis():
    r = RedisServer().start()
    yield r
    r.cleanup()


def fleet_key(m):
    """The fleet's master key at m's KeyFile, made once: in fleet mode mfad never creates one."""
    if not os.path.exists(m.key_path):
        os.makedirs(os.path.dirname(m.key_path), exist_ok=True)
        fd = os.open(m.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, os.urandom(32))
        os.close(fd)


def fleet_config(m, redis, password_file=None, host_id="host-a"):
    """Fleet mode for m. Every mfad sharing one Redis needs its own HostId (they run on one
    machine here, with one host name): give the second one another (Host B: "host-b")."""
    fleet_key(m)
    m.set_config("Redis", "Address", redis.address)
    m.set_config("Redis", "User", REDIS_USER)
    m.set_config("Redis", "PasswordFile", password_file or redis.password_file)
    m.set_config("Redis", "HostId", host_id)
    if ASAN:
        # The sanitized mfad takes several times longer per step: a reply can wait behind a
        # step longer than the default 200 ms, and the host would be degraded for nothing.
        m.set_config("Redis", "Timeout", ASAN_REDIS_TIMEOUT_MS)


def degraded(m):
    r = subprocess.run(["busctl", f"--address={m.bus.address}", "get-property", "org.mfad1",
                        "/org/mfad1", "org.mfad1.Manager", "Degraded"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip() == "b true"


def audit_rows(m, kind=None, user=None):
    """m's audit rows (the last 1000), of kind and about user when given."""
    f = {"limit": ["@u", 1000]}
    if user:
        f["user"] = ["@s", user]
    rows = m.call("ListAuditEvents", "a{sv}", f).expect_ok()
    return [r for r in rows if kind is None or r["kind"] == kind]


def audit_details(row):
    """An audit row's details, as a dict (ListAuditEvents gives them as JSON text)."""
    return row["details"] if isinstance(row["details"], dict) else json.loads(row["details"])


def assert_last_refused_by_fleet(m, user, reason):
    """m's last auth.failure of user for reason is a refusal by the fleet (Redis knew better)."""
    rows = [r for r in audit_rows(m, "auth.failure", user) if r["reason"] == reason]
    assert rows and audit_details(rows[-1])["fleet"] == "refused", rows


def wait_degraded(m, value, timeout=15):
    """Waits for the Degraded property to become value; when False, also for the emptied
    reconciliation queue to be committed (it commits with the loop's next batch, possibly just
    after the property changed)."""
    if wait_until(lambda: degraded(m) == value and (
            value or m.sql("SELECT count(*) FROM fleet_reconcile").strip() == "0"), timeout):
        return
    raise AssertionError(f"Degraded did not become {value}:\n{m.log_text()[-4000:]}")


class Host:
    """One more mfad on its own private bus (the mfad fixture is host A)."""

    def __init__(self, build_dir):
        self.bus = Bus(make_world_dir("mfa-bus-"))
        self.workdir = make_world_dir("mfa-daemon-")
        self.mfad = Mfad(build_dir, self.bus, self.workdir)

    def cleanup(self):
        if self.mfad.proc is not None and self.mfad.proc.poll() is None:
            self.mfad.stop()
        self.bus.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
        shutil.rmtree(self.bus.dir, ignore_errors=True)


def second_host(a, build_dir, host_id="host-b"):
    """Host B, not started: another mfad with a's configuration and master key, and HostId
    host_id (None: a's)."""
    host_b = Host(build_dir)
    b = host_b.mfad
    b.config = json.loads(json.dumps(a.config))
    b.set_config("Daemon", "KeyFile", a.key_path)  # one master key for the fleet
    if host_id is not None:
        b.set_config("Redis", "HostId", host_id)
    return host_b


# One D-Bus connection held open by a child process (challenges belong to the connection that
# began them), so that a test can act on other hosts between BeginAuthentication and Verify, or
# signal mfad while a call waits. Reads one [method, args] per line, answers one JSON per line.
_DIALOGUE_SCRIPT = r"""
import json, sys, time, dbus
bus = dbus.bus.BusConnection(sys.argv[1])
mgr = dbus.Interface(bus.get_object("org.mfad1", "/org/mfad1", introspect=False),
                     "org.mfad1.Manager")
def plain(v):
    if isinstance(v, (dbus.Array, list, tuple, dbus.Struct)): return [plain(x) for x in v]
    if isinstance(v, dbus.String): return str(v)
    return v
for line in sys.stdin:
    method, args = json.loads(line)
    try:
        out = {"ok": True, "result": plain(getattr(mgr, method)(*args, timeout=60))}
    except dbus.exceptions.DBusException as e:
        out = {"ok": False, "error": e.get_dbus_name(), "message": e.get_dbus_message()}
    print(json.dumps(out), flush=True)
"""


class Dialogue:
    """A login dialogue on one connection to m, step by step, as the PAM module holds it."""

    CONTEXT = {"service": "test", "rhost": "127.0.0.1", "tty": "pts/0", "ruser": ""}

    def __init__(self, m):
        self.proc = subprocess.Popen([PYTHON, "-c", _DIALOGUE_SCRIPT, m.bus.address],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=sanitizer_env())
        self.challenge = None

    def send(self, method, *args):
        self.proc.stdin.write(json.dumps([method, list(args)]) + "\n")
        self.proc.stdin.flush()

    def answered(self, timeout=0.0):
        return bool(select.select([self.proc.stdout], [], [], timeout)[0])

    def receive(self, timeout=30):
        assert self.answered(timeout), "no reply from mfad within %s s" % timeout
        line = self.proc.stdout.readline()
        assert line, "the D-Bus client died: " + self.proc.stderr.read()
        return Reply(**json.loads(line))

    def call(self, method, *args):
        self.send(method, *args)
        return self.receive()

    def begin(self, user):
        r = self.call("BeginAuthentication", user, self.CONTEXT)
        if r.ok:
            self.challenge = r.result[0]
        return r

    def verify(self, code):
        return self.call("Verify", self.challenge, code)

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
