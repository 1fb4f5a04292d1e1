"""Drives pam_mfa.so through pam_wrapper: service files in a private directory, the module loaded
from the build tree, and pam_driver (tests/unit/pam_module/pam_driver.c) reporting the exact PAM return
code and every message the user saw.

Honours MFA_BUILD_DIR (through conftest's build_dir) and MFA_ASAN=1 (libasan preloaded before
pam_wrapper, PAM_WRAPPER_DISABLE_DEEPBIND=1, leaks not checked in the host process).
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass

import pytest

ASAN = os.environ.get("MFA_ASAN") == "1"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PAM_SUCCESS = 0
PAM_SERVICE_ERR = 3
PAM_SYSTEM_ERR = 4
PAM_PERM_DENIED = 6
PAM_AUTH_ERR = 7
PAM_AUTHINFO_UNAVAIL = 9
PAM_USER_UNKNOWN = 10
PAM_MAXTRIES = 11
PAM_CONV_ERR = 19
PAM_IGNORE = 25

PAM_NAMES = {v: k for k, v in dict(globals()).items() if k.startswith("PAM_") and isinstance(v, int)}

WRAPPER_MODULES = "/usr/lib/x86_64-linux-gnu/pam_wrapper"
SYSTEM_MODULES = "/lib/x86_64-linux-gnu/security"
PAM_PERMIT = os.path.join(SYSTEM_MODULES, "pam_permit.so")
PAM_DENY = os.path.join(SYSTEM_MODULES, "pam_deny.so")
PAM_MATRIX = os.path.join(WRAPPER_MODULES, "pam_matrix.so")
# Set PAM items from the environment (PAM_AUTHTOK=...) / export them to the application.
PAM_SET_ITEMS = os.path.join(WRAPPER_MODULES, "pam_set_items.so")
PAM_GET_ITEMS = os.path.join(WRAPPER_MODULES, "pam_get_items.so")

ALICE = "mfa-alice"

CODE_PROMPT = "Verification code: "
SMS_PROMPT = "SMS code: "
NOT_ENROLLED_MESSAGE = ("Multi-factor authentication is required but not set up for this "
                        "account; ask your administrator")


def rc_name(rc):
    return PAM_NAMES.get(rc, str(rc))


def preload_env():
    """The environment that loads pam_wrapper (and libasan first for an ASan build)."""
    env = dict(os.environ)
    if ASAN:
        libasan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                                 text=True, check=True).stdout.strip()
        env["LD_PRELOAD"] = f"{libasan}:libpam_wrapper.so"
        env["PAM_WRAPPER_DISABLE_DEEPBIND"] = "1"
        env["ASAN_OPTIONS"] = "detect_leaks=0"
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    else:
        env["LD_PRELOAD"] = "libpam_wrapper.so"
    env["PAM_WRAPPER"] = "1"
    # Level 2 shows every pam_syslog line (debug included) as PWRAP_... SYSLOG(n) on stderr.
    env["PAM_WRAPPER_DEBUGLEVEL"] = "2"
    return env


_DRIVER_CACHE = {}


def pam_driver_path(build_dir):
    """The driver from the build tree; compiled on the fly when the tree was configured without
    tests (it is a plain libpam client: no sanitizer needed, the module under test is loaded
    into it)."""
    built = os.path.join(build_dir, "tests", "unit", "pam_module", "pam_driver")
    if os.path.exists(built):
        return built
    if "driver" not in _DRIVER_CACHE:
        outdir = tempfile.mkdtemp(prefix="mfa-pam-driver-")
        os.chmod(outdir, 0o755)  # test users run it too
        out = os.path.join(outdir, "pam_driver")
        src = os.path.join(REPO, "tests", "unit", "pam_module", "pam_driver.c")
        subprocess.run(["cc", "-O2", "-o", out, src, "-lpam"], check=True)
        _DRIVER_CACHE["driver"] = out
    return _DRIVER_CACHE["driver"]


@dataclass
class PamResult:
    rc: int
    events: list
    stderr: str
    elapsed: float
    wall: float = 0.0

    def of(self, kind):
        return [text for k, text in self.events if k == kind]

    @property
    def prompts(self):
        return self.of("prompt")

    @property
    def errors(self):
        return self.of("error")

    @property
    def infos(self):
        return self.of("info")

    @property
    def authtok(self):
        toks = self.of("authtok")
        return toks[-1] if toks else None

    @property
    def syslog(self):
        return [line for line in self.stderr.splitlines() if "SYSLOG(" in line]

    def expect(self, rc):
        assert self.rc == rc, (f"expected {rc_name(rc)}, got {rc_name(self.rc)}; "
                               f"events={self.events}\nsyslog={self.syslog}\n"
                               f"stderr tail={self.stderr[-2000:]}")
        return self


class PamServices:
    """A pam_wrapper service directory with stacks that load the module from build_dir and talk
    to the private bus."""

    def __init__(self, build_dir, bus_address):
        self.build_dir = build_dir
        self.bus_address = bus_address
        self.module = os.path.join(build_dir, "pam_module", "pam_mfa.so")
        assert os.path.exists(self.module), f"pam_mfa.so is not built in {build_dir}"
        self.driver = pam_driver_path(build_dir)
        self.dir = tempfile.mkdtemp(prefix="mfa-pam-services-")
        os.chmod(self.dir, 0o755)
        # Test accounts load the module and run the driver too: use copies in this 0755 directory,
        # so that the modes of the directories above the build tree (a fresh clone under a 0700
        # directory, say) do not matter.
        self.module = shutil.copy2(self.module, self.dir)
        self.driver = shutil.copy2(self.driver, self.dir)
        self.passdb = os.path.join(self.dir, "passdb")
        with open(os.path.join(self.dir, "other"), "w") as f:
            f.write(f"auth required {PAM_DENY}\naccount required {PAM_DENY}\n")

    def mfa(self, args=""):
        """The module with its bus; args are appended."""
        return f"{self.module} bus_address={self.bus_address} {args}".rstrip()

    def matrix(self, args=""):
        return f"{PAM_MATRIX} passdb={self.passdb} {args}".rstrip()

    def set_passwords(self, entries):
        """pam_matrix's database: (user, password, service) triples."""
        with open(self.passdb, "w") as f:
            for user, password, service in entries:
                f.write(f"{user}:{password}:{service}\n")

    def add(self, name, *lines):
        """A service whose auth stack is lines (each "control module args")."""
        with open(os.path.join(self.dir, name), "w") as f:
            for line in lines:
                f.write(f"auth {line}\n")
        return name

    def single(self, name, args=""):
        """The module alone and required: the stack returns exactly the module's code, except
        PAM_IGNORE, which libpam turns into a failure of its own choosing."""
        return self.add(name, f"required {self.mfa(args)}")

    def env(self):
        env = preload_env()
        env["PAM_WRAPPER_SERVICE_DIR"] = self.dir
        return env

    def argv(self, service, user, items=None, authtok=None):
        argv = [self.driver]
        for key, value in (items or {"rhost": "192.0.2.7", "tty": "pts/3",
                                     "ruser": ""}).items():
            argv += ["-I", f"{key}={value}"]
        if authtok is not None:
            argv += ["--authtok", authtok]
        return argv + [service, user]

    def run(self, service, user, answers=(), items=None, authtok=None, timeout=60, as_user=None):
        """One login; as_user runs the PAM application as that account instead of root."""
        user = getattr(user, "name", user)
        stdin = "".join(a + "\n" for a in answers)
        argv = self.argv(service, user, items, authtok)
        if as_user is not None:
            import pwd
            pw = pwd.getpwnam(getattr(as_user, "name", as_user))
            argv = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups",
                    "--"] + argv
        start = time.monotonic()
        r = subprocess.run(argv, input=stdin,
                           capture_output=True, text=True, timeout=timeout, env=self.env())
        wall = time.monotonic() - start
        assert r.returncode == 0, f"pam_driver failed ({r.returncode}): {r.stderr[-3000:]}"
        out = json.loads(r.stdout.strip().splitlines()[-1])
        return PamResult(out["rc"], out["events"], r.stderr, out["elapsed"], wall)

    def start(self, service, user, items=None, authtok=None):
        """A login left running: answer() its prompts one by one; finish() collects it."""
        return RunningLogin(self, service, getattr(user, "name", user), items, authtok)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class RunningLogin:
    def __init__(self, services, service, user, items, authtok):
        self.proc = subprocess.Popen(services.argv(service, user, items, authtok),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=services.env())
        self.stderr_lines = []

    def wait_prompt(self, timeout=20):
        """Blocks until the module asks for an answer (pam_driver says so on stderr)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                raise AssertionError("pam_driver ended before prompting: "
                                     + "".join(self.stderr_lines)[-3000:])
            self.stderr_lines.append(line)
            if line.startswith("pam_driver: prompt"):
                return
        raise AssertionError("no prompt in time")

    def answer(self, text):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        self.answered_at = time.monotonic()

    def finish(self, timeout=60):
        # stderr was read line by line: keep reading the file objects (communicate() would skip
        # what they buffered). The module's own timeouts bound how long this takes.
        self.proc.stdin.close()
        out = self.proc.stdout.read()
        err = self.proc.stderr.read()
        self.proc.wait(timeout)
        finished_at = time.monotonic()
        assert self.proc.returncode == 0, f"pam_driver failed: {err[-3000:]}"
        data = json.loads(out.strip().splitlines()[-1])
        res = PamResult(data["rc"], data["events"], "".join(self.stderr_lines) + err,
                        data["elapsed"])
        res.wall = finished_at - getattr(self, "answered_at", finished_at)
        return res


@pytest.fixture
def pam(build_dir, bus):
    """PamServices on the private bus, removed after the test (import it into a test module:
    pytest finds fixtures by name)."""
    services = PamServices(build_dir, bus.address)
    yield services
    services.cleanup()


@pytest.fixture
def alice(mfad, test_users):
    """mfa-alice with an active TOTP factor; returns the secret."""
    return mfad.enroll_totp(ALICE)


def assert_no_secrets(secrets, *texts):
    """No code (TOTP, backup, SMS) appears in any of texts (syslog lines, mfad's log)."""
    for secret in secrets:
        if not secret:
            continue
        for text in texts:
            joined = text if isinstance(text, str) else "\n".join(text)
            assert secret not in joined, "a code appears in a log"
