"""Many logins at the code prompt at once (issue 21). A login waiting at its prompt holds no bus
connection, so more of them than dbus-daemon's max_connections_per_user (256 on Debian's system
bus, shared by everything running as root) all reach the prompt and all succeed; and when the bus
does refuse the module a connection, the module says why in its log and tells the person the
service is busy, failing closed."""

import json
import os
import shutil
import subprocess

from conftest import ASAN, PYTHON, REPO, Bus, Mfad, make_world_dir
from pam_helpers import ALICE, PAM_AUTHINFO_UNAVAIL, PAM_PERMIT, PAM_SUCCESS, PamServices
from pam_helpers import alice, pam, preload_env  # noqa: F401 (fixtures are found by name)

CROWD = os.path.join(REPO, "tests", "bench", "pam", "bench_crowd.py")
BUSY = "The login service is busy; please try again in a moment"


def test_300_logins_at_the_prompt_at_once_all_succeed(build_dir, tmp_path):
    # 300 > 256: before the module released its connection at the prompt, 255 reached it and the
    # rest failed with "mfad is not running".
    out = tmp_path / "crowd.json"
    env = dict(os.environ, MFA_BUILD_DIR=build_dir)
    if ASAN:
        wrapped = preload_env()
        env.update(MFA_BENCH_PRELOAD=wrapped["LD_PRELOAD"].split(":")[0],
                   ASAN_OPTIONS=wrapped["ASAN_OPTIONS"])
    r = subprocess.run([PYTHON, CROWD, "--users", "300", "--json", str(out)], capture_output=True,
                       text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(out.read_text())
    assert report["reached_prompt"] == 300, r.stdout
    assert report["succeeded"] == 300, r.stdout
    # At the prompt only mfad's own connection (and at most a straggler) is open.
    assert report["at_prompt"]["bus_connections"] <= 5, r.stdout
    assert report["bus_limit_lines"] == 0 or report["succeeded"] == 300


def limited_bus(limit):
    """A private system bus whose configuration allows root `limit` connections."""
    with open(os.path.join(REPO, "systemd", "org.mfad1.conf")) as f:
        policy = f.read()
    policy = policy.replace(
        "</busconfig>",
        f'  <limit name="max_connections_per_user">{limit}</limit>\n</busconfig>')
    workdir = make_world_dir("mfa-bus-limited-")
    return Bus(workdir, policy=policy), workdir


def test_a_bus_at_its_connection_limit_is_reported_as_busy(build_dir, test_users):
    # Root may hold 2 connections: mfad's, and the one a helper enrolls with. A third root process
    # holding one keeps the module's refused at Hello (LimitsExceeded).
    bus, bus_dir = limited_bus(2)
    mfad = Mfad(build_dir, bus, make_world_dir("mfa-daemon-"))
    holder = None
    pam_services = PamServices(build_dir, bus.address)
    try:
        mfad.start()
        mfad.enroll_totp(ALICE)
        holder = subprocess.Popen(
            [PYTHON, "-c", "import dbus, sys; b = dbus.bus.BusConnection(sys.argv[1]); "
             "print('ready', flush=True); sys.stdin.read()", bus.address],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "ready"
        r = pam_services.run(pam_services.single("busy", "timeout=2"), ALICE, ["123456"])
        r.expect(PAM_AUTHINFO_UNAVAIL)
        assert r.prompts == []
        assert r.errors == [BUSY], r.errors
        assert any("connection limit is reached" in line for line in r.syslog), r.syslog
        assert not any("not running" in line for line in r.syslog), r.syslog
        # failmode=ignore: the login goes on without a second factor and without the message.
        svc = pam_services.add("busy-ign", f"required {pam_services.mfa('timeout=1 failmode=ignore')}",
                               f"required {PAM_PERMIT}")
        r = pam_services.run(svc, ALICE, []).expect(PAM_SUCCESS)
        assert r.errors == []
    finally:
        if holder is not None:
            holder.stdin.close()
            holder.wait(10)
        pam_services.cleanup()
        mfad.stop()
        bus.stop()
        shutil.rmtree(bus_dir, ignore_errors=True)
        shutil.rmtree(mfad.dir, ignore_errors=True)


def test_mfad_not_running_is_not_called_busy(pam, mfad, alice):
    mfad.stop()
    r = pam.run(pam.single("stopped"), ALICE, []).expect(PAM_AUTHINFO_UNAVAIL)
    assert r.errors == []
    assert any("mfad is not running" in line for line in r.syslog), r.syslog
