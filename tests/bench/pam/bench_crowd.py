#!/usr/bin/python3
"""Many logins at the code prompt at once (issue 21): N PAM conversations, one process each as sshd
forks a child per connection (tests/bench/pam/pam_crowd.c: the real libpam and pam_mfa.so), for
N distinct enrolled users, on a private system bus with Debian's default limits (the project's
tests/bus/system-bus.conf.in sets none: max_connections_per_user 256, max_incomplete_connections
64, shared by every root process). All start at once; when every one shows the prompt (or ended
before it) they all answer a valid code at once.

Reports: how many reached the prompt and how many logins succeeded; answer->result p50/p99 (from
the moment all answer to the end of each pam_authenticate); mfad's and dbus-daemon's RSS and the
bus's open connections while all wait at the prompt and at their peak; the causes the module
logged for the logins that failed, and dbus-daemon's limit messages.

Targets (printed; the exit status with --check): N of N at the prompt, N of N succeed,
answer->result p99 <= 2 s.

Usage (as root): bench_crowd.py [--users N] [--json FILE] [--check]
(MFA_BUILD_DIR, or --build-dir: the build tree; --module: another pam_mfa.so to measure.)
The bench users exist only in a private mount namespace (/etc/passwd is a copy with them added).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

WINDOW = 10
UID_BASE = 71000


def percentile(values, p):
    s = sorted(values)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * (len(s) - 1)))))
    return s[k]


def user_names(n):
    return [f"mfacrowd{i:05d}" for i in range(n)]


def reexec_in_namespace(users):
    workdir = tempfile.mkdtemp(prefix="mfa-crowd-ns-")
    passwd = os.path.join(workdir, "passwd")
    with open("/etc/passwd") as src, open(passwd, "w") as dst:
        dst.write(src.read())
        for i, name in enumerate(users):
            dst.write(f"{name}:x:{UID_BASE + i}:65534:mfa crowd:/nonexistent:/usr/sbin/nologin\n")
    os.chmod(passwd, 0o644)
    env = dict(os.environ, MFA_BENCH_IN_NAMESPACE="1")
    cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
           f'mount --bind "{passwd}" /etc/passwd && exec "$0" "$@"', sys.executable,
           os.path.abspath(sys.argv[0])] + sys.argv[1:]
    try:
        return subprocess.run(cmd, env=env).returncode
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class Bus:
    """dbus-daemon with the tests' system-bus configuration, its log kept in a file."""

    def __init__(self, workdir):
        from conftest import bus_config
        self.socket = os.path.join(workdir, "system_bus_socket")
        self.address = f"unix:path={self.socket}"
        policy_dir = os.path.join(workdir, "system.d")
        os.makedirs(policy_dir)
        shutil.copy(os.path.join(REPO, "systemd", "org.mfad1.conf"), policy_dir)
        text = bus_config(self.socket, policy_dir)
        # Debian's defaults: the configuration sets no limit of its own.
        assert "<limit" not in text, "the test bus configuration sets a limit"
        self.config = os.path.join(workdir, "bus.conf")
        with open(self.config, "w") as f:
            f.write(text)
        self.log_path = os.path.join(workdir, "bus.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            ["dbus-daemon", f"--config-file={self.config}", "--nofork", "--nopidfile",
             "--print-address=1"], stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("unix:"), "dbus-daemon did not start"
        os.chmod(self.socket, 0o777)

    def name_owner(self, name):
        r = subprocess.run(["busctl", f"--address={self.address}", "call", "org.freedesktop.DBus",
                            "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetNameOwner", "s",
                            name], capture_output=True, text=True, timeout=10)
        return r.stdout.split('"')[1] if r.returncode == 0 else None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_ms(pid):
    """CPU time pid has used, in ms (float; /proc/PID/schedstat counts nanoseconds)."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e6


def socket_count(pid):
    """Open sockets of pid: for dbus-daemon, its connections plus its listening socket and a few
    of its own."""
    n = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                    n += 1
            except OSError:
                pass
    except OSError:
        pass
    return n


class Sampler(threading.Thread):
    def __init__(self, mfad_pid, bus_pid, baseline_sockets):
        super().__init__(daemon=True)
        self.pids = (mfad_pid, bus_pid)
        self.baseline = baseline_sockets
        self.peak = {"mfad_rss_kb": 0, "bus_rss_kb": 0, "bus_connections": 0}
        self.running = True

    def sample(self):
        mfad, bus = self.pids
        return {"mfad_rss_kb": rss_kb(mfad), "bus_rss_kb": rss_kb(bus),
                "bus_connections": max(0, socket_count(bus) - self.baseline)}

    def run(self):
        while self.running:
            s = self.sample()
            for k, v in s.items():
                self.peak[k] = max(self.peak[k], v)
            time.sleep(0.02)


def enroll(bus_address, users):
    from conftest import call_spec, current_step, dbus_calls, totp
    secrets = {}
    chunk = 100
    for i in range(0, len(users), chunk):
        part = users[i:i + chunk]
        begins = dbus_calls(bus_address, [call_spec("BeginTotpEnrollment", "sa{sv}", u, {})
                                          for u in part])
        secrets.update({u: r.expect_ok()[0] for u, r in zip(part, begins)})
    # The oldest step the window accepts: the rest of the window is left for the logins.
    step = current_step() - WINDOW + 1
    for i in range(0, len(users), chunk):
        part = users[i:i + chunk]
        for r in dbus_calls(bus_address, [call_spec("ConfirmTotpEnrollment", "ss", u,
                                                    totp(secrets[u], step=step)) for u in part]):
            r.expect_ok()
    return secrets


def crowd_env(prompt_timeout):
    env = dict(os.environ, CROWD_PROMPT_TIMEOUT_MS=str(prompt_timeout * 1000))
    # MFA_BENCH_PRELOAD: libasan, when the module under test is the sanitizer build's.
    if os.environ.get("MFA_BENCH_PRELOAD"):
        env["LD_PRELOAD"] = os.environ["MFA_BENCH_PRELOAD"]
    return env


CAUSES = [
    ("mfad is not running", "not running"),
    ("connection limit is reached", "bus limit (LimitsExceeded)"),
    ("dropped the connection during its handshake", "dropped during the handshake"),
    ("is not accepting connections", "backlog full"),
    ("did not complete the connection", "connect timeout"),
    ("did not answer", "no answer"),
    ("cannot connect", "cannot connect"),
]


def run(args):
    from conftest import Mfad, current_step, totp
    build_dir = os.path.abspath(args.build_dir)
    module = args.module or os.path.join(build_dir, "pam_module", "pam_mfa.so")
    users = user_names(args.users)
    workdir = tempfile.mkdtemp(prefix="mfa-crowd-")
    os.chmod(workdir, 0o755)
    bus = mfad = None
    try:
        crowd = os.path.join(workdir, "pam_crowd")
        subprocess.run(["cc", "-O2", "-o", crowd, os.path.join(HERE, "pam_crowd.c"), "-lpam"],
                       check=True)
        os.makedirs(os.path.join(workdir, "bus"))
        bus = Bus(os.path.join(workdir, "bus"))
        mfad = Mfad(build_dir, bus, os.path.join(workdir, "mfad"))
        os.makedirs(mfad.dir, exist_ok=True)
        mfad.set_config("TOTP", "Window", str(WINDOW))
        mfad.set_config("Daemon", "AdminGroup", "root")
        mfad.start()
        t0 = time.monotonic()
        secrets = enroll(bus.address, users)
        print(f"enrolled {len(users)} users in {time.monotonic() - t0:.1f} s", flush=True)
        confdir = os.path.join(workdir, "pam.d")
        os.makedirs(confdir)
        with open(os.path.join(confdir, "crowd"), "w") as f:
            f.write(f"auth required {module} bus_address={bus.address} max_tries=1\n")
        with open(os.path.join(confdir, "other"), "w") as f:
            f.write("auth required pam_deny.so\n")
        step = current_step()
        lines = "".join(f"{u} {totp(secrets[u], step=step)}\n" for u in users) + ".\n"

        base_sockets = socket_count(bus.proc.pid) - 1  # mfad's own connection stays
        idle = Sampler(mfad.proc.pid, bus.proc.pid, base_sockets).sample()
        sampler = Sampler(mfad.proc.pid, bus.proc.pid, base_sockets)
        sampler.start()
        stderr_path = os.path.join(workdir, "crowd.err")
        with open(stderr_path, "w") as err:
            proc = subprocess.Popen([crowd, confdir, "crowd"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=err, text=True,
                                    env=crowd_env(args.prompt_timeout))
            proc.stdin.write(lines)
            proc.stdin.flush()
            head = proc.stdout.readline().split()
            assert head and head[0] == "prompt", f"pam_crowd: {head}"
            at_prompt, early, prompt_s = int(head[1]), int(head[2]), float(head[3])
            time.sleep(0.5)  # the connections of the last ones to prompt are closed by now
            plateau = sampler.sample()
            perf = None
            if args.perf:
                perf = subprocess.Popen(["perf", "record", "-g", "-F", "4000",
                                         "-q", "-p", str(mfad.proc.pid),
                                         "-o", args.perf], stderr=subprocess.DEVNULL)
                time.sleep(3)  # attached by then, on a busy machine too
            stat = None
            if args.syscalls:
                events = ",".join(f"syscalls:sys_enter_{c}" for c in (
                    "timerfd_settime", "epoll_wait", "sendmsg", "recvmsg", "fdatasync", "fsync",
                    "pwrite64", "write", "read", "kill", "clock_gettime"))
                stat = subprocess.Popen(["perf", "stat", "-x", ",", "-e", events, "-p",
                                         str(mfad.proc.pid)], stderr=subprocess.PIPE, text=True)
                time.sleep(3)
            cpu0 = cpu_ms(mfad.proc.pid), cpu_ms(bus.proc.pid)
            proc.stdin.write("go\n")
            proc.stdin.flush()
            results = []
            clients_cpu = 0
            for line in proc.stdout:
                if line.startswith("clients_cpu_ms "):
                    clients_cpu = int(line.split()[1])
                if line.startswith("result "):
                    _, rc, prompted, msg, usec = line.split()
                    results.append((int(rc), int(prompted), msg, int(usec)))
                elif line.strip() == "done":
                    break
            proc.wait(60)
            cpu1 = cpu_ms(mfad.proc.pid), cpu_ms(bus.proc.pid)
            if perf is not None:
                perf.send_signal(2)
                perf.wait(60)
            if stat is not None:
                stat.send_signal(2)
                for line in stat.communicate(timeout=60)[1].splitlines():
                    f = line.split(",")
                    if len(f) > 2 and f[0].strip().isdigit():
                        print(f"mfad syscalls during the answers: {f[2].split(':')[-1]} "
                              f"{int(f[0]) / max(1, len(users)):.1f} per login")
        sampler.running = False
        sampler.join()
    finally:
        if mfad is not None:
            mfad.stop()
        if bus is not None:
            bus.stop()
    with open(stderr_path, errors="replace") as f:
        module_log = f.read()
    with open(bus.log_path, errors="replace") as f:
        bus_log = f.read()
    shutil.rmtree(workdir, ignore_errors=True)

    ok = [r for r in results if r[0] == 0]
    latencies = [r[3] / 1000.0 for r in results if r[1] and r[3] >= 0]
    busy = sum(1 for r in results if r[2] == "busy")
    causes = {}
    for pattern, label in CAUSES:
        n = len(re.findall(re.escape(pattern), module_log))
        if n:
            causes[label] = n
    limit_lines = len(re.findall(r"maximum number of active connections", bus_log))
    incomplete_lines = len(re.findall(r"incomplete connections", bus_log))
    n = len(users)
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    print(f"logins started at once:       {n}")
    print(f"reached the prompt:           {at_prompt} of {n} in {prompt_s:.1f} s"
          f" ({early} ended before it)")
    print(f"succeeded:                    {len(ok)} of {n}")
    print(f"answer->result (all at once): p50 {p50:.1f} ms, p99 {p99:.1f} ms,"
          f" max {max(latencies) if latencies else float('nan'):.1f} ms")
    print(f"at the prompt:  mfad RSS {plateau['mfad_rss_kb'] / 1024:.1f} MB, dbus-daemon RSS "
          f"{plateau['bus_rss_kb'] / 1024:.1f} MB, bus connections {plateau['bus_connections']}")
    print(f"peak:           mfad RSS {sampler.peak['mfad_rss_kb'] / 1024:.1f} MB, dbus-daemon RSS "
          f"{sampler.peak['bus_rss_kb'] / 1024:.1f} MB, bus connections "
          f"{sampler.peak['bus_connections']}")
    print(f"idle (anchor):  mfad RSS {idle['mfad_rss_kb'] / 1024:.1f} MB, dbus-daemon RSS "
          f"{idle['bus_rss_kb'] / 1024:.1f} MB")
    print(f"cpu from the answers to the last result: mfad {cpu1[0] - cpu0[0]:.0f} ms "
          f"({(cpu1[0] - cpu0[0]) * 1000 / max(1, len(ok)):.0f} us per login), dbus-daemon "
          f"{cpu1[1] - cpu0[1]:.0f} ms, the PAM processes {clients_cpu} ms "
          f"({clients_cpu * 1000 / max(1, len(results)):.0f} us each): "
          f"{(cpu1[0] - cpu0[0] + cpu1[1] - cpu0[1] + clients_cpu) / 1000:.2f} s of CPU in all on "
          f"{os.cpu_count()} CPUs")
    print(f"told 'busy': {busy}; module log causes: {causes or 'none'}")
    print(f"dbus-daemon: {limit_lines} 'maximum number of active connections' lines, "
          f"{incomplete_lines} about incomplete connections")
    load = os.getloadavg()
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    targets = [(f"{n} of {n} reach the prompt", at_prompt == n),
               (f"{n} of {n} succeed", len(ok) == n),
               ("answer->result p99 <= 2 s", p99 <= 2000.0)]
    for text, met in targets:
        print(f"target {text}: {'met' if met else 'MISSED'}")
    report = {"n": n, "reached_prompt": at_prompt, "ended_before_prompt": early,
              "prompt_seconds": prompt_s, "succeeded": len(ok), "p50_ms": round(p50, 1),
              "p99_ms": round(p99, 1), "told_busy": busy, "module_log_causes": causes,
              "bus_limit_lines": limit_lines, "at_prompt": plateau, "peak": sampler.peak,
              "idle": idle, "load_average": load[0],
              "mfad_cpu_ms": cpu1[0] - cpu0[0], "bus_cpu_ms": cpu1[1] - cpu0[1],
              "clients_cpu_ms": clients_cpu,
              "targets": [{"target": t, "met": m} for t, m in targets]}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    if args.show_log:
        print(module_log[-4000:])
    return 0 if (not args.check or all(m for _, m in targets)) else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-dir", default=os.environ.get("MFA_BUILD_DIR",
                                                          os.path.join(REPO, "build")))
    ap.add_argument("--module", help="the pam_mfa.so to measure (default: the build tree's)")
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--prompt-timeout", type=int, default=300, help="seconds")
    ap.add_argument("--json")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--show-log", action="store_true")
    ap.add_argument("--perf", help="perf record mfad during the answers into this file")
    ap.add_argument("--syscalls", action="store_true", help="count mfad's system calls (perf)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (a private mount namespace holds the bench users)")
    if os.environ.get("MFA_BENCH_IN_NAMESPACE") != "1":
        return reexec_in_namespace(user_names(args.users))
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
