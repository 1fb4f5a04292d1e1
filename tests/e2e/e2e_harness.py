"""The end-to-end harness (helpers and fixtures; conftest.py exports the fixtures): the real sshd
(with pam_wrapper), the real ssh client, and sudo, su and login (in a private mount namespace
whose /etc/pam.d entries point at the built pam_mfa.so), all talking to the real mfad on the
private bus of tests/integration/conftest.py, whose fixtures are reused here.

Run as root:  MFA_BUILD_DIR=<build> /usr/bin/python3 -m pytest -v tests/e2e

Fixtures: pam_module, ssh_host_key, sshd_factory, namespace, client_key, authorize_key, and the
integration ones (build_dir, test_users, bus, mfad, mfad_factory). Helpers: ssh_login(),
run_sudo(), run_su(), converse(), render_pam(). Every test has a deadline (MFA_E2E_DEADLINE
seconds, default 90); a failing test shows sshd's and mfad's logs and the dialogue transcripts.
"""

import importlib.util
import io
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import pexpect
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PAM_DIR = os.path.join(HERE, "pam")

# The integration harness, loaded under its own module name (both files are called conftest.py).
_spec = importlib.util.spec_from_file_location(
    "mfa_integration_harness", os.path.join(REPO, "tests", "integration", "conftest.py"))
harness = importlib.util.module_from_spec(_spec)
sys.modules["mfa_integration_harness"] = harness
_spec.loader.exec_module(harness)

# Re-exported so that pytest finds them for the tests in this directory.
build_dir = harness.build_dir
test_users = harness.test_users
bus = harness.bus
mfad_factory = harness.mfad_factory
mfad = harness.mfad
totp = harness.totp

E2E_DEADLINE = int(os.environ.get("MFA_E2E_DEADLINE", "90"))
SSHD = "/usr/sbin/sshd"

# What the programs print; the tests assert on these.
PASSWORD_PROMPT = r"[Pp]assword(?: for [^:]+)?: ?"
CODE_PROMPT = r"Verification code: ?"
SMS_PROMPT = r"SMS code: ?"


# ---------------------------------------------------------------------------------------------
# Deadline and logs of failing tests.


@pytest.fixture(autouse=True)
def e2e_deadline():
    """No e2e test may run longer than E2E_DEADLINE seconds, whatever hangs."""

    def expired(signum, frame):
        raise TimeoutError(f"e2e test exceeded its deadline of {E2E_DEADLINE} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(E2E_DEADLINE)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _tail(text, limit=12000):
    return text if len(text) <= limit else "[...]\n" + text[-limit:]


def record_transcript(request, title, text):
    """Attaches a dialogue's transcript (text, or a StringIO still being written) to the test's
    failure report."""
    if not hasattr(request.node, "_e2e_transcripts"):
        request.node._e2e_transcripts = []
    request.node._e2e_transcripts.append((title, text))


# ---------------------------------------------------------------------------------------------
# The module under test and PAM service files.


@pytest.fixture(scope="session")
def pam_module(build_dir):
    path = os.path.join(build_dir, "pam_module", "pam_mfa.so")
    assert os.path.exists(path), f"pam_mfa.so is not built in {build_dir}"
    return path


def render_pam(template, module_path, bus_address, extra_args=()):
    """A PAM service file from tests/e2e/pam/TEMPLATE with pam_mfa.so replaced by the built
    module and its test arguments (bus_address= first)."""
    with open(os.path.join(PAM_DIR, template)) as f:
        lines = f.read().splitlines()
    args = " ".join([f"bus_address={bus_address}", *extra_args])
    out = []
    for line in lines:
        if not line.lstrip().startswith("#"):
            line = re.sub(r"(?<![\w/])pam_mfa\.so\b", f"{module_path} {args}", line)
        out.append(line)
    return "\n".join(out) + "\n"


def pam_lines(text):
    """The rule lines of a PAM file (no comments, whitespace collapsed)."""
    rules = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            rules.append(" ".join(line.split()))
    return rules


def make_private_dir(prefix):
    d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(d, 0o755)  # sshd's privilege-separated child and su's target user read below it
    return d


# ---------------------------------------------------------------------------------------------
# sshd.


@pytest.fixture(scope="session")
def ssh_host_key():
    d = make_private_dir("mfa-e2e-hostkey-")
    key = os.path.join(d, "ssh_host_ed25519_key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mfa-e2e-host", "-f", key],
                   check=True, timeout=30)
    yield key
    shutil.rmtree(d, ignore_errors=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SshServer:
    """A real sshd on a free loopback port whose PAM service "sshd" comes from a template."""

    def __init__(self, host_key, pam_module_path, bus_address, pam_template="sshd",
                 auth_methods="keyboard-interactive", module_args=()):
        self.name = f"{pam_template}, {auth_methods}"
        self.dir = make_private_dir("mfa-e2e-sshd-")
        self.pam_dir = os.path.join(self.dir, "pam")
        os.makedirs(self.pam_dir)
        shutil.copy(host_key, os.path.join(self.dir, "ssh_host_ed25519_key"))
        self.pam_text = render_pam(pam_template, pam_module_path, bus_address, module_args)
        with open(os.path.join(self.pam_dir, "sshd"), "w") as f:
            f.write(self.pam_text)
        with open(os.path.join(self.pam_dir, "other"), "w") as f:
            f.write("auth required pam_deny.so\naccount required pam_deny.so\n"
                    "session required pam_deny.so\npassword required pam_deny.so\n")
        # "@include common-auth" in a template means the host's own file, unchanged.
        for line in pam_lines(self.pam_text):
            if line.startswith("@include "):
                name = line.split()[1]
                shutil.copy(os.path.join("/etc/pam.d", name), os.path.join(self.pam_dir, name))
        self.auth_methods = auth_methods
        self.config_path = os.path.join(self.dir, "sshd_config")
        self.log_path = os.path.join(self.dir, "sshd.log")
        self.port = None
        self.proc = None
        # sshd runs in its own mount namespace only to keep the host's login records clean.
        self.ns = Namespace()

    def _write_config(self):
        with open(os.path.join(HERE, "sshd_config.in")) as f:
            text = f.read()
        text = (text.replace("@PORT@", str(self.port)).replace("@DIR@", self.dir)
                .replace("@AUTH_METHODS@", self.auth_methods))
        with open(self.config_path, "w") as f:
            f.write(text)

    def _env(self):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
               "PAM_WRAPPER": "1", "PAM_WRAPPER_SERVICE_DIR": self.pam_dir,
               "LD_PRELOAD": "libpam_wrapper.so"}
        if harness.ASAN:  # an ASan pam_mfa.so needs the runtime loaded first
            runtime = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                                     text=True, check=True).stdout.strip()
            env["LD_PRELOAD"] = f"{runtime}:libpam_wrapper.so"
            env["PAM_WRAPPER_DISABLE_DEEPBIND"] = "1"
            env = harness.sanitizer_env(env)
        return env

    def start(self, timeout=20):
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        for _ in range(5):  # another process may take the free port before sshd binds it
            self.port = free_port()
            self._write_config()
            check = subprocess.run([SSHD, "-t", "-f", self.config_path], capture_output=True,
                                   text=True, timeout=30)
            assert check.returncode == 0, f"sshd -t refused the config: {check.stderr}"
            log = open(self.log_path, "a")
            env = dict(self.ns.env(), **self._env())
            self.proc = subprocess.Popen(self.ns.argv([SSHD, "-D", "-e", "-f", self.config_path]),
                                         stdout=log, stderr=subprocess.STDOUT, env=env,
                                         stdin=subprocess.DEVNULL)
            log.close()
            ready = f"Server listening on 127.0.0.1 port {self.port}"
            harness.wait_until(lambda: ready in self.log_text() or self.proc.poll() is not None,
                               timeout)
            if ready in self.log_text():
                return self
            if self.proc.poll() is None:
                self.stop()
                raise AssertionError(f"sshd did not listen within {timeout} s:\n{self.log_text()}")
            if "Address already in use" not in self.log_text():
                raise AssertionError(f"sshd exited with {self.proc.returncode}:\n{self.log_text()}")
        raise AssertionError("sshd found no free port")

    def stop(self):
        if self.proc is not None:
            harness.stop_process(self.proc, 10)

    def log_text(self):
        return harness.read_log(self.log_path)

    def cleanup(self):
        self.stop()
        self.ns.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def sshd_factory(request, ssh_host_key, pam_module, bus):
    """sshd_factory(pam_template="sshd", auth_methods="keyboard-interactive", module_args=())
    starts an sshd; all are stopped and removed after the test."""
    servers = []
    request.node._e2e_sshd = servers

    def start(pam_template="sshd", auth_methods="keyboard-interactive", module_args=()):
        server = SshServer(ssh_host_key, pam_module, bus.address, pam_template, auth_methods,
                           module_args)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.cleanup()


# ---------------------------------------------------------------------------------------------
# Dialogues with a program on a terminal (ssh, su).


@dataclass
class Dialogue:
    prompts: list = field(default_factory=list)  # "password", "code", "sms", in order
    transcript: str = ""
    exitstatus: int = None
    signalstatus: int = None
    unanswered: str = ""  # a prompt that came when no answer was left
    stopped: bool = False  # stop_at was seen

    def lines(self):
        return [line.strip() for line in self.transcript.replace("\r", "").split("\n")]


def converse(child, passwords=(), codes=(), timeout=30, stop_at=None):
    """Answers password and code prompts in order until the program ends (or prints stop_at, a
    regex: then it is killed); a prompt with no answer left ends the dialogue (Ctrl-C) and is
    recorded."""
    passwords, codes = list(passwords), list(codes)
    d = Dialogue()
    out = io.StringIO()
    child.logfile_read = out
    deadline = time.monotonic() + timeout
    patterns = [PASSWORD_PROMPT, CODE_PROMPT, SMS_PROMPT, pexpect.EOF, pexpect.TIMEOUT]
    if stop_at:
        patterns.append(stop_at)
    while True:
        i = child.expect(patterns, timeout=max(0.1, deadline - time.monotonic()))
        if i in (0, 1, 2):
            kind = ("password", "code", "sms")[i]
            d.prompts.append(kind)
            queue = passwords if kind == "password" else codes
            if not queue:
                d.unanswered = kind
                child.sendintr()
                child.expect([pexpect.EOF, pexpect.TIMEOUT], timeout=10)
                break
            child.sendline(queue.pop(0))
        elif i == 3:
            break
        elif i == 5:
            d.stopped = True
            child.terminate(force=True)
            break
        else:
            child.terminate(force=True)
            raise AssertionError(f"no answer within {timeout} s; transcript:\n{out.getvalue()}")
    child.close()
    d.transcript = out.getvalue()
    d.exitstatus, d.signalstatus = child.exitstatus, child.signalstatus
    return d


def spawn(argv, env=None, timeout=30):
    env = env or {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "TERM": "dumb"}
    return pexpect.spawn(argv[0], argv[1:], env=env, encoding="utf-8", codec_errors="replace",
                         timeout=timeout, dimensions=(24, 200))


def ssh_argv(server, user, command="echo e2e-ok as $(id -un)", identity=None):
    argv = ["ssh", "-F", "/dev/null", "-p", str(server.port),
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", "ConnectTimeout=10", "-o", "NumberOfPasswordPrompts=1",
            "-o", "BatchMode=no"]
    if identity:
        argv += ["-o", "PreferredAuthentications=publickey,keyboard-interactive",
                 "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-i", identity]
    else:
        argv += ["-o", "PreferredAuthentications=keyboard-interactive",
                 "-o", "PubkeyAuthentication=no"]
    return argv + [f"{user}@127.0.0.1", command]


def ssh_login(server, user, passwords=(), codes=(), command="echo e2e-ok as $(id -un)",
              identity=None, request=None, timeout=40):
    """The real ssh client, as root, logging in as user (a name) and running command."""
    d = converse(spawn(ssh_argv(server, user, command, identity)), passwords, codes, timeout)
    if request is not None:
        record_transcript(request, f"ssh {user} transcript", d.transcript)
    return d


# ---------------------------------------------------------------------------------------------
# sudo and su in a private mount namespace (both are setuid: no LD_PRELOAD, no environment).

_NAMESPACE_SCRIPT = r"""
set -eu
mount --make-rprivate /
for pair in $E2E_BINDS; do
  mount --bind "${pair%%:*}" "${pair#*:}"
done
if [ -n "${E2E_SUDOERS:-}" ]; then
  mount -t tmpfs -o mode=0755 e2e-sudoers /etc/sudoers.d
  cp "$E2E_SUDOERS" /etc/sudoers.d/e2e
  chmod 0440 /etc/sudoers.d/e2e
fi
unset E2E_BINDS E2E_SUDOERS
exec "$@"
"""


LOGIN_RECORDS = ["/var/run/utmp", "/var/log/wtmp", "/var/log/btmp", "/var/log/lastlog"]


class Namespace:
    """Files to put in place of /etc/pam.d entries (and an optional sudoers drop-in), applied
    only inside a private mount namespace: the host's /etc is never changed, and the programs
    write their login records (utmp, wtmp, btmp, lastlog) to private copies."""

    def __init__(self):
        self.dir = make_private_dir("mfa-e2e-ns-")
        self.binds = []
        self.sudoers = ""
        self.private_login_records()

    def pam_service(self, service, text):
        path = os.path.join(self.dir, f"{service}.pam")
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
        self.binds.append((path, f"/etc/pam.d/{service}"))

    def private_login_records(self):
        """Empty private copies over utmp, wtmp, btmp and lastlog: logins and failures in the
        tests leave the host's records alone."""
        for path in LOGIN_RECORDS:
            real = os.path.realpath(path)
            if os.path.exists(real):
                copy = os.path.join(self.dir, os.path.basename(real))
                open(copy, "wb").close()
                self.binds.append((copy, real))

    def sudoers_drop_in(self, text):
        self.sudoers = os.path.join(self.dir, "sudoers")
        with open(self.sudoers, "w") as f:
            f.write(text)
        check = subprocess.run(["visudo", "-c", "-q", "-f", self.sudoers], capture_output=True,
                               text=True, timeout=30)
        assert check.returncode == 0, f"sudoers drop-in refused: {check.stdout}{check.stderr}"

    def argv(self, inner):
        return ["unshare", "--mount", "--", "/bin/sh", "-c", _NAMESPACE_SCRIPT, "e2e-ns", *inner]

    def env(self):
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "TERM": "dumb",
                "E2E_BINDS": " ".join(f"{src}:{dst}" for src, dst in self.binds),
                "E2E_SUDOERS": self.sudoers}

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def namespace():
    ns = Namespace()
    yield ns
    ns.cleanup()


def as_user(user, argv):
    return ["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--init-groups", "--",
            *argv]


def run_sudo(ns, user, answers, command=("id", "-un"), timeout=40):
    """user runs `sudo -S COMMAND` in the namespace, answering its prompts from stdin (one line
    each). Returns the CompletedProcess (prompts are on stderr)."""
    argv = ns.argv(as_user(user, ["sudo", "-S", "--", *command]))
    stdin = "".join(a + "\n" for a in answers)
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, env=ns.env(),
                          timeout=timeout)


def run_su(ns, caller, target, passwords=(), codes=(), command="echo su-ok", request=None,
           timeout=40):
    """caller runs `su - TARGET -c COMMAND` on a terminal in the namespace."""
    argv = ns.argv(as_user(caller, ["su", "-", target, "-c", command]))
    d = converse(spawn(argv, env=ns.env()), passwords, codes, timeout)
    if request is not None:
        record_transcript(request, f"su {target} transcript", d.transcript)
    return d


# ---------------------------------------------------------------------------------------------
# Keys for publickey logins.


@pytest.fixture
def client_key():
    """A fresh ed25519 key pair for the ssh client: returns the private key's path."""
    d = make_private_dir("mfa-e2e-client-")
    os.chmod(d, 0o700)
    key = os.path.join(d, "id_ed25519")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mfa-e2e-client", "-f",
                    key], check=True, timeout=30)
    yield key
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def authorize_key():
    """authorize_key(user, public_key_path): puts the key in ~user/.ssh/authorized_keys; the
    user's previous file (or its absence) is restored after the test."""
    restore = []

    def put(user, public_key_path):
        pw = pwd.getpwnam(user.name)
        ssh_dir = os.path.join(pw.pw_dir, ".ssh")
        path = os.path.join(ssh_dir, "authorized_keys")
        created_dir = not os.path.isdir(ssh_dir)
        if created_dir:
            os.makedirs(ssh_dir, mode=0o700)
            os.chown(ssh_dir, pw.pw_uid, pw.pw_gid)
        old = None
        if os.path.exists(path):
            with open(path) as f:
                old = f.read()
        restore.append((path, ssh_dir if created_dir else None, old))
        with open(public_key_path) as f:
            key = f.read()
        with open(path, "w") as f:
            f.write(key)
        os.chmod(path, 0o600)
        os.chown(path, pw.pw_uid, pw.pw_gid)

    yield put
    for path, created_dir, old in reversed(restore):
        if old is None:
            if os.path.exists(path):
                os.unlink(path)
        else:
            with open(path, "w") as f:
                f.write(old)
        if created_dir:
            shutil.rmtree(created_dir, ignore_errors=True)
