#!/usr/bin/python3
"""Fleet mode benchmark (docs/fleet.md).

1. Per-login overhead: the same logins (BeginAuthentication + Verify + EndAuthentication with a
   valid TOTP code, one D-Bus connection per daemon, one login at a time) against an mfad in fleet
   mode (a local redis-server on a Unix socket, ACL user, appendfsync everysec) and against an
   mfad with SQLite alone, both with their state on tmpfs (so that fsync does not hide what Redis
   adds), then both on disk as deployed (/var/tmp: each decision's fdatasync, which fleet mode
   runs beside its Redis round trip). The two daemons run side by side and their logins alternate one by one (two pairs of
   daemons), so that both see the same load from whatever else runs on the machine. Reports mean
   p50 and p10 per login, the differences, the p50 of the paired differences, and the Redis
   round trips (scripts) per fleet login, counted by the server; beside them, as an anchor, one
   bare round trip to the same redis-server (PING, redis-benchmark's C client). Then the same
   with Redis over TLS (rediss:// to a redis-server with --tls-port on 127.0.0.1, the server
   verified against a test CA), each against its own SQLite-only daemon of the same run, and the
   TLS handshake's cost as mfad logs it (at connection time, not on the login path).
2. Failover: logins run back to back while redis-server is stopped (SIGKILL, then SIGSTOP: a
   frozen server is the worst case, every command waits for Timeout); reports the time from the
   stop to the first login served in degraded mode, and the number of failed logins (must be 0).

Run as root:  tests/bench/run-fleet-bench.py [BUILD_DIR]   env: USERS=40 ROUNDS=8
"""

import os
import pwd
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import dbus  # noqa: E402

from conftest import Bus, Mfad, current_step, make_world_dir, totp  # noqa: E402
from fleet_helpers import RedisServer, audit_rows, fleet_config, wait_degraded  # noqa: E402
from tls_helpers import Pki, TlsRedisServer  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "build"))
USERS = int(os.environ.get("USERS", "40"))
ROUNDS = int(os.environ.get("ROUNDS", "8"))
CTX = {"service": "bench", "rhost": "127.0.0.1", "tty": "pts/0", "ruser": ""}
WINDOW = 10  # TOTP Window of every mfad here: a code is tried against 2 * WINDOW + 1 steps


def usable_step(secret, step):
    """The first step from step on whose code no later step inside any window around it shares.
    mfad takes the latest matching step of its window (it moves the replay watermark furthest):
    a code that also matched a later step (1 chance in 10^6 per step) would use that step up too,
    and the next login of the user would be refused as a replay."""
    while any(totp(secret, step=step) == totp(secret, step=s)
              for s in range(step + 1, step + 2 * WINDOW + 2)):
        step += 1
    return step


class Client:
    def __init__(self, m):
        self.conn = dbus.bus.BusConnection(m.bus.address)
        self.mgr = dbus.Interface(self.conn.get_object("org.mfad1", "/org/mfad1", introspect=False),
                                  "org.mfad1.Manager")

    def enroll(self, user):
        """Returns the secret and the step its confirmation used (the user's replay watermark)."""
        secret, _ = self.mgr.BeginTotpEnrollment(user, dbus.Dictionary({}, signature="sv"))
        secret = str(secret)
        step = usable_step(secret, current_step())
        self.mgr.ConfirmTotpEnrollment(user, totp(secret, step=step))
        return secret, step

    def login(self, user, code):
        challenge, _ = self.mgr.BeginAuthentication(user, CTX)
        try:
            return str(self.mgr.Verify(challenge, code))
        finally:
            self.mgr.EndAuthentication(challenge)


_prefixes = iter(range(1000))


def start(m, fleet_redis=None, ca_file=None):
    m.set_config("TOTP", "Window", str(WINDOW))
    m.set_config("Redis", "KeyPrefix", f"mfad:bench{next(_prefixes)}:")
    m.set_config("Policy", "MaxFailures", "100")
    if fleet_redis:
        fleet_config(m, fleet_redis)
        if ca_file:
            m.set_config("Redis", "CAFile", ca_file)
    else:
        del m.config["Redis"]
    m.start()
    if fleet_redis:
        wait_degraded(m, False)
    return m


def measure(local_m, fleet_m, redis, users):
    """Enrolls users on both daemons, then ROUNDS logins each (one future step per round), a
    local one and a fleet one in turn (which goes first alternates). Returns the per-login
    seconds of each, and the Redis round trips (scripts) the fleet logins cost."""
    daemons = (local_m, fleet_m)
    clients = [Client(m) for m in daemons]
    enrolled = [{u: c.enroll(u) for u in users} for c in clients]
    secrets = [{u: e[u][0] for u in users} for e in enrolled]
    last = [{u: e[u][1] for u in users} for e in enrolled]  # each user's last step used
    base = current_step()
    times = ([], [])
    scripts = redis.scripts_run()
    for r in range(1, ROUNDS + 1):
        for i, u in enumerate(users):
            order = (0, 1) if (r + i) % 2 == 0 else (1, 0)
            for k in order:
                step = usable_step(secrets[k][u], max(base + r, last[k][u] + 1))
                last[k][u] = step
                code = totp(secrets[k][u], step=step)
                t0 = time.perf_counter()
                try:
                    method = clients[k].login(u, code)
                except dbus.exceptions.DBusException as e:
                    method = f"{e.get_dbus_name()}: {e.get_dbus_message()}"
                if method != "totp":
                    raise AssertionError(login_failure(daemons[k], ("sqlite-only", "fleet")[k], u,
                                                       r, step, base, method))
                times[k].append(time.perf_counter() - t0)
    return times[0], times[1], redis.scripts_run() - scripts


def login_failure(m, mode, user, r, step, base, answer):
    """What a refused bench login needs explained (the daemons' logs go with the cleanup)."""
    try:
        rows = [f"{row.get('kind')} {row.get('outcome')} {row.get('reason')}"
                for row in audit_rows(m, user=user)[-6:]]
    except Exception as e:  # noqa: BLE001
        rows = [f"(audit unreadable: {e})"]
    return (f"{mode} login of {user} refused in round {r}: {answer}\n"
            f"code for step {step} (base {base}, now {current_step()}, window {WINDOW})\n"
            f"audit of {user}, last rows: {rows}\n"
            f"mfad log, end:\n{m.log_text()[-3000:]}")


def failover(m, redis, users, how):
    """Back-to-back logins; redis-server stopped after 0.3 s (or three rounds); logins go on for
    1.5 s more (or until the window's codes are used).
    Returns (seconds from the stop to the first login answered in degraded mode, failed logins,
    logins)."""
    c = Client(m)
    enrolled = {u: c.enroll(u) for u in users}
    secrets = {u: enrolled[u][0] for u in users}
    last = {u: enrolled[u][1] for u in users}
    base = current_step()
    stop_at = None
    first_degraded = None
    failures = 0
    n = 0
    t_start = time.monotonic()
    for r in range(1, 11):
        for u in users:
            now = time.monotonic()
            if stop_at is None and (now - t_start > 0.3 or n >= len(users) * 3):
                stop_at = now
                redis.pause() if how == "frozen" else redis.stop(signal.SIGKILL)
            if stop_at is not None and now - stop_at > 1.5:
                break
            step = usable_step(secrets[u], max(base + r, last[u] + 1))
            last[u] = step
            try:
                ok = c.login(u, totp(secrets[u], step=step)) == "totp"
            except dbus.exceptions.DBusException:
                ok = False
            done = time.monotonic()
            n += 1
            if not ok:
                failures += 1
            elif stop_at is not None and first_degraded is None and degraded_now(c.conn):
                first_degraded = done - stop_at
    if how == "frozen":
        redis.resume()
    return first_degraded, failures, n


def degraded_now(conn):
    props = dbus.Interface(conn.get_object("org.mfad1", "/org/mfad1", introspect=False),
                           "org.freedesktop.DBus.Properties")
    return bool(props.Get("org.mfad1.Manager", "Degraded"))


def report(where, local, fleet, scripts):
    mean_l, mean_f = statistics.mean(local), statistics.mean(fleet)
    p50_l, p50_f = statistics.median(local), statistics.median(fleet)
    # The fast tenth is what a login costs when nothing else competes for the CPU.
    p10_l, p10_f = (statistics.quantiles(x, n=10)[0] for x in (local, fleet))
    paired = statistics.median(f - l for l, f in zip(local, fleet))
    print(f"[state on {where}] logins={len(local)} per mode, one at a time, alternating, "
          "one connection each")
    print(f"sqlite-only: mean={mean_l * 1e3:.3f}ms p50={p50_l * 1e3:.3f}ms "
          f"p10={p10_l * 1e3:.3f}ms")
    print(f"fleet:       mean={mean_f * 1e3:.3f}ms p50={p50_f * 1e3:.3f}ms "
          f"p10={p10_f * 1e3:.3f}ms")
    print(f"fleet overhead per login: mean={(mean_f - mean_l) * 1e3:.3f}ms "
          f"p50={(p50_f - p50_l) * 1e3:.3f}ms paired-p50={paired * 1e3:.3f}ms "
          f"p10={(p10_f - p10_l) * 1e3:.3f}ms (target <= 0.3 ms)")
    print(f"redis round trips per fleet login: {scripts / len(fleet):.2f}")


def main():
    cleanup = []
    try:
        redis = RedisServer()
        with open(redis.config, "a") as f:
            f.write("appendfsync everysec\n")
        redis.start()
        cleanup.append(redis.cleanup)

        def new_mfad(state_dir="/dev/shm"):
            bus = Bus(make_world_dir("mfa-bench-bus-"))
            work = tempfile.mkdtemp(prefix="mfa-bench-mfad-", dir=state_dir)
            m = Mfad(BUILD, bus, work)
            # Run in reverse: mfad stops, then its state goes, then the bus and its directory.
            cleanup.append(lambda: shutil.rmtree(bus.dir, ignore_errors=True))
            cleanup.append(bus.stop)
            cleanup.append(lambda: shutil.rmtree(work, ignore_errors=True))
            cleanup.append(lambda: m.stop())
            return m

        # Anchor, same run: one bare round trip to this redis-server (PING over the same Unix
        # socket, one client, redis-benchmark's C client): a fleet login makes one or two (its
        # user's first login on the host reads Redis at BeginAuthentication), with scripts.
        r = subprocess.run(["redis-benchmark", "-s", redis.socket, "-a", redis.admin_password,
                            "-c", "1", "-n", "5000", "-t", "ping", "--csv"],
                           capture_output=True, text=True, timeout=120)
        rows = [line.replace('"', "").split(",") for line in r.stdout.splitlines()]
        pings = [row for row in rows if row and row[0].startswith("PING")]
        if pings:
            print(f"anchor: redis PING round trip p50={float(pings[-1][4]):.3f}ms "
                  f"p99={float(pings[-1][6]):.3f}ms (redis-benchmark, 1 client, same socket)")
        else:
            print(f"anchor: redis-benchmark gave nothing: {r.stderr.strip()[-200:]}")

        # Enrollment needs real accounts: the system's own (no login happens through them).
        # One name per account: state is keyed by the uid, and a second name of one account
        # (another test's alias) would find it enrolled already.
        by_uid = {}
        for p in sorted(pwd.getpwall(), key=lambda p: p.pw_name):
            if p.pw_uid != 0:
                by_uid.setdefault(p.pw_uid, p.pw_name)
        users = sorted(by_uid.values())[:USERS]
        # State on tmpfs first: fsync would otherwise dominate and hide what Redis adds. Then on
        # disk, as deployed.
        for where, state_dir in (("tmpfs", "/dev/shm"), ("disk", "/var/tmp")):
            local, fleet, scripts = [], [], 0
            for _ in range(2):
                tl, tf, n = measure(start(new_mfad(state_dir)), start(new_mfad(state_dir), redis),
                                    redis, users)
                local += tl
                fleet += tf
                scripts += n
            report(where, local, fleet, scripts)

        # Redis over TLS: the same comparison, against a redis-server with --tls-port.
        pki = Pki()
        cleanup.append(pki.cleanup)
        tls_redis = TlsRedisServer(pki)
        with open(tls_redis.config, "a") as f:
            f.write("appendfsync everysec\n")
        tls_redis.start()
        cleanup.append(tls_redis.cleanup)
        handshakes = []
        for where, state_dir in (("tmpfs", "/dev/shm"), ("disk", "/var/tmp")):
            local, fleet, scripts = [], [], 0
            for _ in range(2):
                fleet_m = start(new_mfad(state_dir), tls_redis, pki.path("ca.pem"))
                tl, tf, n = measure(start(new_mfad(state_dir)), fleet_m, tls_redis, users)
                local += tl
                fleet += tf
                scripts += n
                handshakes += [float(x) for x in
                               re.findall(r"connected and verified in ([\d.]+) ms",
                                          fleet_m.log_text())]
            report(where + ", Redis over TLS", local, fleet, scripts)
        if handshakes:
            print(f"TLS handshake (connect + verify, at connection time, 3 per mfad): "
                  f"p50={statistics.median(handshakes):.2f}ms max={max(handshakes):.2f}ms "
                  f"n={len(handshakes)}")

        for how in ("stopped", "frozen"):
            if redis.proc.poll() is not None:
                redis.start()
            m = start(new_mfad(), redis)
            first, failures, n = failover(m, redis, users[:8], how)
            print(f"failover ({how}): first degraded login {first * 1e3:.0f}ms after the stop; "
                  f"failed logins {failures}/{n} (target <= 1000 ms, 0 failed)"
                  if first is not None else f"failover ({how}): no degraded login seen")
            if redis.proc.poll() is None and how == "frozen":
                pass
    finally:
        for f in reversed(cleanup):
            try:
                f()
            except Exception:  # noqa: BLE001
                pass


if __name__ == "__main__":
    main()
