"""Helpers for mfactl's integration tests (test_mfactl*.py), on top of conftest.py."""

import io
import json
import os
import re

from conftest import User, current_step, totp

ADMIN_ERROR = "mfactl: not allowed"
STEP_UP_MESSAGE = ("mfactl: this change needs a current verification code: "
                   "pass --current-code - and the code on standard input")
BACKUP_ALPHABET = set("ACDEFGHJKMNPQRTUVWXY34679")  # no 0/O, 1/I/L, 5/S, 2/Z, 8/B


def name_of(user):
    return user.name if isinstance(user, User) else user


def run_json(mfad, *args, user=None, input=None):
    """Runs `mfactl --json ARGS`, asserts exit 0, returns the parsed document."""
    r = mfad.mfactl("--json", *args, user=user, input=input)
    assert r.returncode == 0, f"mfactl {' '.join(args)} exited {r.returncode}: {r.stderr}"
    return json.loads(r.stdout)


def enroll_totp_via_mfactl(mfad, user, as_user=None):
    """`enroll totp --json` then `confirm totp` with a code computed here; returns the secret.
    Records the used step so that mfad.next_code() does not replay it."""
    name = name_of(user)
    doc = run_json(mfad, "enroll", "totp", name, user=as_user)
    step = current_step()
    r = mfad.mfactl("confirm", "totp", name, totp(doc["secret"], step=step), user=as_user)
    assert r.returncode == 0, r.stderr
    mfad._last_step[name] = step
    return doc["secret"]


def status(mfad, user, as_user=None):
    return run_json(mfad, "status", name_of(user), user=as_user)


def secret_from_human_output(text):
    """The grouped secret line of `enroll totp`, ungrouped."""
    m = re.search(r"secret by hand: ([A-Z2-7 ]+)\n", text)
    assert m, f"no secret in:\n{text}"
    return m.group(1).replace(" ", "")


def spawn_mfactl(mfad, args, user=None, timeout=30):
    """mfactl on a pseudo-terminal (pexpect), as root or as a test user."""
    import pexpect
    argv = [mfad.mfactl_binary, "--bus-address", mfad.bus.address, *args]
    if user is not None:
        argv = ["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--init-groups", "--"] \
            + argv
    env = dict(os.environ)
    env.setdefault("TERM", "xterm")
    child = pexpect.spawn(argv[0], argv[1:], encoding="utf-8", timeout=timeout, env=env)
    child.logfile_read = io.StringIO()  # everything the terminal showed
    return child
