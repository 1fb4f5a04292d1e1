#!/usr/bin/python3
"""mfad's memory with many enrolled accounts and many open challenges (issue 21): a database
seeded with USERS TOTP enrollments (mfad-bench-seed), the real mfad on a private bus, then
CHALLENGES BeginAuthentication calls left open (8 per user, MaxChallengesPerUser's default, on
CHALLENGES / 8 users that exist in a private mount namespace's /etc/passwd). Prints mfad's RSS
after start (the anchor), with the challenges open, and per open challenge.

Target (printed; the exit status with --check): RSS <= 64 MB with 100,000 users and 10,000 open
challenges.

Usage (as root): run-memory-bench.py [BUILD_DIR] [--users 100000] [--challenges 10000]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.insert(0, os.path.join(HERE, "pam"))

UID_BASE = 300000
PER_USER = 8


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def reexec_in_namespace(n_names):
    workdir = tempfile.mkdtemp(prefix="mfa-mem-ns-")
    passwd = os.path.join(workdir, "passwd")
    with open("/etc/passwd") as src, open(passwd, "w") as dst:
        dst.write(src.read())
        for i in range(n_names):
            dst.write(f"mfamem{i}:x:{UID_BASE + i}:65534:mfa bench:/nonexistent:"
                      "/usr/sbin/nologin\n")
    os.chmod(passwd, 0o644)
    env = dict(os.environ, MFA_BENCH_IN_NAMESPACE="1")
    cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
           f'mount --bind "{passwd}" /etc/passwd && exec "$0" "$@"', sys.executable,
           os.path.abspath(sys.argv[0])] + sys.argv[1:]
    try:
        return subprocess.run(cmd, env=env).returncode
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build_dir", nargs="?", default=os.environ.get(
        "MFA_BUILD_DIR", os.path.join(REPO, "build")))
    ap.add_argument("--users", type=int, default=100000)
    ap.add_argument("--challenges", type=int, default=10000)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    login_users = (args.challenges + PER_USER - 1) // PER_USER
    if os.environ.get("MFA_BENCH_IN_NAMESPACE") != "1":
        return reexec_in_namespace(login_users)

    from bench_crowd import Bus
    from conftest import Mfad, call_spec, dbus_calls
    build_dir = os.path.abspath(args.build_dir)
    workdir = tempfile.mkdtemp(prefix="mfa-mem-", dir="/var/tmp")
    os.chmod(workdir, 0o755)
    bus = mfad = None
    try:
        os.makedirs(os.path.join(workdir, "bus"))
        bus = Bus(os.path.join(workdir, "bus"))
        mfad = Mfad(build_dir, bus, os.path.join(workdir, "mfad"))
        os.makedirs(mfad.state_dir, exist_ok=True)
        os.chmod(mfad.dir, 0o755)
        t0 = time.monotonic()
        # Accounts UID_BASE + i: the first login_users of them have names in /etc/passwd.
        subprocess.run([os.path.join(build_dir, "tests", "bench", "mfad-bench-seed"),
                        "--state-dir", mfad.state_dir, "--key-file", mfad.key_path,
                        "--users", str(args.users), "--uid-base", str(UID_BASE)],
                       check=True, capture_output=True)
        seeded_s = time.monotonic() - t0
        mfad.set_config("Daemon", "AdminGroup", "root")
        mfad.set_config("Policy", "MaxChallengesPerCaller", str(args.challenges + 1))
        mfad.start()
        time.sleep(0.5)
        idle = rss_kb(mfad.proc.pid)
        opened = 0
        t0 = time.monotonic()
        users = [f"mfamem{i}" for i in range(login_users)]
        specs = [call_spec("BeginAuthentication", "sa{ss}", u, {"service": "sshd",
                                                              "rhost": "192.0.2.1"})
                 for u in users for _ in range(PER_USER)][:args.challenges]
        for i in range(0, len(specs), 2000):
            for r in dbus_calls(bus.address, specs[i:i + 2000], timeout=600):
                r.expect_ok()
                opened += 1
        open_s = time.monotonic() - t0
        time.sleep(0.5)
        loaded = rss_kb(mfad.proc.pid)
    finally:
        if mfad is not None:
            mfad.stop()
        if bus is not None:
            bus.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    per = (loaded - idle) * 1024 / max(1, opened)
    print(f"seeded {args.users} enrolled accounts in {seeded_s:.1f} s; opened {opened} challenges "
          f"in {open_s:.1f} s")
    print(f"anchor: mfad RSS after start with {args.users} accounts: {idle / 1024:.1f} MB")
    print(f"mfad RSS with {opened} open challenges: {loaded / 1024:.1f} MB "
          f"({per:.0f} bytes per open challenge)")
    met = loaded <= 64 * 1024
    print(f"target RSS <= 64 MB with {args.users} users and {args.challenges} open challenges: "
          f"{'met' if met else 'MISSED'}")
    return 0 if (met or not args.check) else 1


if __name__ == "__main__":
    sys.exit(main())
