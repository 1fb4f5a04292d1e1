#!/usr/bin/python3
"""SMS benchmark: do texts in flight stall other logins?

A private bus, the real mfad with a database seeded with TOTP users (mfad-bench-seed), and a local
Twilio-speaking server that takes SLOW seconds (2) to answer each text. First the idle TOTP login
latency (mfad-bench-login); then, in ROUNDS rounds, SENDS texts (100) are put in flight
(BeginAuthentication + SendSmsCode from SENDS connections, deferred replies) and the same TOTP
login load runs while they are all still in flight. Prints p50/p99 of both and the p99 ratio
(target <= 1.5). Run as root, with Debian's /usr/bin/python3 (dbus-python):

    tests/bench/sms_bench.py [BUILD_DIR]
    env: LOGINS=400 CLIENTS=8 SENDS=100 ROUNDS=2 SLOW=2

The texts of a round go to three enrolled users in turn (each may have 100 sends per window).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import dbus  # noqa: E402

import fake_twilio  # noqa: E402
from conftest import Bus, _ensure_users, make_world_dir, wait_until  # noqa: E402

LOGINS = int(os.environ.get("LOGINS", "400"))
CLIENTS = int(os.environ.get("CLIENTS", "8"))
SENDS = int(os.environ.get("SENDS", "100"))
ROUNDS = int(os.environ.get("ROUNDS", "2"))
SLOW = float(os.environ.get("SLOW", "2"))
SMS_USERS = ["mfa-alice", "mfa-bob", "mfa-carol"]


def login_run(build, address, first):
    r = subprocess.run([os.path.join(build, "tests", "bench", "mfad-bench-login"),
                        "--bus-address", address, "--users", str(LOGINS), "--clients",
                        str(CLIENTS), "--first", str(first)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"p50=([\d.]+)ms p99=([\d.]+)ms", r.stdout)
    f = re.search(r"failures=(\d+)", r.stdout)
    assert m and f and f.group(1) == "0", r.stdout + r.stderr
    return float(m.group(1)), float(m.group(2)), r.stdout.strip()


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "build"))
    work = make_world_dir("mfa-sms-bench-")
    bus = Bus(make_world_dir("mfa-sms-bench-bus-"))
    fake = fake_twilio.FakeTwilio()
    fake_twilio.ANSWERS["slow"] = (201, None, {}, SLOW)
    mfad = None
    try:
        _ensure_users()
        state = os.path.join(work, "state")
        key = os.path.join(work, "master.key")
        total = LOGINS * (ROUNDS + 1)
        subprocess.run([os.path.join(build, "tests", "bench", "mfad-bench-seed"), "--state-dir",
                        state, "--key-file", key, "--users", str(total)], check=True,
                       capture_output=True)
        token = os.path.join(work, "twilio.token")
        with open(token, "w") as f:
            f.write(fake_twilio.AUTH_TOKEN + "\n")
        os.chmod(token, 0o600)
        conf = os.path.join(work, "mfad.conf")
        with open(conf, "w") as f:
            f.write(f"""[Daemon]
StateDirectory={state}
KeyFile={key}
[Policy]
MaxChallengesPerUser={SENDS + 10}
[SMS]
Provider=twilio
MaxSendsPerWindow=100
MaxSendsPerPhone=1000
MaxSendsGlobal=100000
[Twilio]
BaseURL={fake.url}
AccountSid={fake_twilio.ACCOUNT_SID}
AuthTokenFile={token}
From={fake_twilio.FROM}
""")
        os.chmod(conf, 0o644)
        log = open(os.path.join(work, "mfad.log"), "w")
        mfad = subprocess.Popen([os.path.join(build, "daemon", "mfad"), "--config", conf,
                                 "--bus-address", bus.address], stdout=log,
                                stderr=subprocess.STDOUT)
        bus.wait_owner("org.mfad1", mfad)

        root = dbus.bus.BusConnection(bus.address)
        mgr = dbus.Interface(root.get_object("org.mfad1", "/org/mfad1", introspect=False),
                             "org.mfad1.Manager")
        for i, user in enumerate(SMS_USERS):
            n = len(fake.requests)
            mgr.BeginSmsEnrollment(user, f"+1555765{4000 + i}", "", timeout=30)
            mgr.ConfirmSmsEnrollment(user, fake.wait_code(n + 1))
        fake.default = "slow"

        idle = login_run(build, bus.address, 0)
        print(f"idle:   {idle[2]}")
        loaded = []
        for rnd in range(ROUNDS):
            replies = []
            barrier = threading.Barrier(SENDS + 1)

            # Connections and challenges first, one at a time; then every send at once.
            sessions = []
            for i in range(SENDS):
                user = SMS_USERS[i % len(SMS_USERS)]
                conn = dbus.bus.BusConnection(bus.address)
                m = dbus.Interface(conn.get_object("org.mfad1", "/org/mfad1", introspect=False),
                                   "org.mfad1.Manager")
                challenge, _ = m.BeginAuthentication(user, {"service": "bench"})
                sessions.append((conn, m, challenge))

            def one_send(m, challenge):
                barrier.wait(30)
                try:
                    replies.append(str(m.SendSmsCode(challenge, timeout=60)))
                except dbus.exceptions.DBusException as e:
                    replies.append("error " + e.get_dbus_name())

            threads = [threading.Thread(target=one_send, args=(m, ch)) for _, m, ch in sessions]
            for t in threads:
                t.start()
            barrier.wait(30)
            assert wait_until(lambda: fake.inflight >= SENDS, timeout=20, interval=0.01), \
                f"only {fake.inflight} texts in flight: {replies[:3]}"
            result = login_run(build, bus.address, LOGINS * (rnd + 1))
            still = fake.inflight
            for t in threads:
                t.join(60)
            for conn, _, _ in sessions:
                conn.close()
            bad = [r for r in replies if r.startswith("error")]
            assert not bad and len(replies) == SENDS, bad[:3]
            print(f"loaded: {result[2]} (texts in flight: {SENDS} at start, {still} at end)")
            loaded.append(result)
        p99_loaded = max(r[1] for r in loaded)
        p50_loaded = max(r[0] for r in loaded)
        print(f"TOTP login latency, idle:                 p50={idle[0]:.2f}ms p99={idle[1]:.2f}ms")
        print(f"TOTP login latency, {SENDS} texts in flight: p50={p50_loaded:.2f}ms "
              f"p99={p99_loaded:.2f}ms (worst of {ROUNDS} rounds)")
        ratio = p99_loaded / idle[1] if idle[1] else float("inf")
        print(f"p99 ratio: {ratio:.2f} (target <= 1.5)")
        return 0 if ratio <= 1.5 else 1
    finally:
        if mfad and mfad.poll() is None:
            mfad.terminate()
            mfad.wait(30)
        fake.stop()
        bus.stop()
        shutil.rmtree(bus.dir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
