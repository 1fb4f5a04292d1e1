"""Login sessions against the real mfad: pam_mfa.so's session hooks in a long-running PAM
application of the tests' own (the session leader), limits (deny, evict-oldest), termination by
mfactl (the leader really dies), expiry, reaping of dead leaders, persistence across a restart,
authorization per tier, the signals, logind's TerminateSession (python3-dbusmock) and the
security events (new device, failure burst)."""

import re
import signal
import subprocess
import time

import pytest

from pam_helpers import PAM_PERM_DENIED, PAM_SUCCESS, PAM_AUTHINFO_UNAVAIL
from conftest import wait_until
from session_helpers import Logind, Monitor, SessionServices, audit

ROW_KEYS = {"id", "user", "service", "rhost", "tty", "ruser", "logind_session", "leader_pid",
            "factor", "device", "started", "last_seen"}


@pytest.fixture
def services(build_dir, bus):
    s = SessionServices(build_dir, bus.address)
    s.leaders = []
    yield s
    for leader in s.leaders:
        leader.kill()
    s.cleanup()


def lead(services, *args, **kwargs):
    leader = services.leader(*args, **kwargs)
    services.leaders.append(leader)
    return leader


def sessions(mfad, user="", as_user=None):
    return mfad.call("ListSessions", "s", getattr(user, "name", user), user=as_user).expect_ok()


def test_open_list_close(mfad, test_users, services):
    alice = test_users["mfa-alice"]
    service = services.session_service()
    leader = lead(services, service, alice, rhost="192.0.2.7", tty="pts/9")
    assert leader.open_rc == PAM_SUCCESS
    assert re.fullmatch(r"[0-9a-f]{32}", leader.session_id)

    rows = sessions(mfad, alice)
    assert len(rows) == 1
    row = rows[0]
    assert set(row) == ROW_KEYS
    assert row["id"] == leader.session_id and row["user"] == "mfa-alice"
    assert (row["service"], row["rhost"], row["tty"]) == (service, "192.0.2.7", "pts/9")
    assert row["leader_pid"] == leader.pid
    assert row["factor"] == "none" and row["logind_session"] == ""
    assert abs(row["started"] / 1e6 - time.time()) < 60 and row["last_seen"] >= row["started"]
    assert re.fullmatch(r"[0-9a-f]{32}", row["device"])

    assert leader.close() == PAM_SUCCESS
    assert sessions(mfad, alice) == []
    assert [r["reason"] for r in audit(mfad, "mfa-alice", "session.close")] == ["closed"]
    opened = audit(mfad, "mfa-alice", "session.open")
    assert opened and opened[-1]["outcome"] == "success"
    assert leader.session_id in opened[-1]["details"]


def test_factor_known_to_the_module(mfad, test_users, services):
    alice = test_users["mfa-alice"]
    secret = mfad.enroll_totp(alice)
    leader = lead(services, services.session_service(), alice,
                  answers=[mfad.next_code(alice, secret)])
    assert leader.opened["auth"] == PAM_SUCCESS and leader.open_rc == PAM_SUCCESS
    assert sessions(mfad, alice)[0]["factor"] == "totp"


def test_factor_linked_to_a_recent_success(mfad, test_users, services):
    alice = test_users["mfa-alice"]
    secret = mfad.enroll_totp(alice)
    service = services.session_service()
    # Authentication in another process (sshd's privilege separation does this).
    _, verify = mfad.login(alice, mfad.next_code(alice, secret),
                           {"service": service, "rhost": "192.0.2.7", "tty": "", "ruser": ""})
    verify.expect_ok()
    leader = lead(services, service, alice, rhost="192.0.2.7")
    other = lead(services, service, alice, rhost="192.0.2.8")
    found = {r["rhost"]: r["factor"] for r in sessions(mfad, alice)}
    assert found == {"192.0.2.7": "totp", "192.0.2.8": "none"}
    assert leader.open_rc == other.open_rc == PAM_SUCCESS


def test_limit_deny_refuses_the_next_login(mfad_factory, test_users, services):
    mfad_factory.set_config("Sessions", "MaxPerUser", 2)
    mfad_factory.set_config("Sessions", "OnLimit", "deny")
    mfad = mfad_factory.start()
    alice = test_users["mfa-alice"]
    service = services.session_service()
    first = lead(services, service, alice)
    second = lead(services, service, alice)
    third = lead(services, service, alice)
    assert (first.open_rc, second.open_rc) == (PAM_SUCCESS, PAM_SUCCESS)
    assert third.open_rc == PAM_PERM_DENIED
    assert third.session_id == ""
    assert "Too many sessions" in third.proc.stderr.read()
    assert len(sessions(mfad, alice)) == 2
    assert [r["outcome"] for r in audit(mfad, "mfa-alice", "session.open")][-1] == "denied"
    # Another user is not affected; a dead leader frees its place.
    assert lead(services, service, test_users["mfa-bob"]).open_rc == PAM_SUCCESS
    first.kill()
    assert lead(services, service, alice).open_rc == PAM_SUCCESS


def test_limit_evict_oldest_ends_the_oldest(mfad_factory, test_users, services, bus):
    mfad_factory.set_config("Sessions", "MaxPerUser", 2)
    mfad_factory.set_config("Sessions", "OnLimit", "evict-oldest")
    mfad = mfad_factory.start()
    monitor = Monitor(bus)
    try:
        alice = test_users["mfa-alice"]
        service = services.session_service()
        # The oldest by its start: lead() returns once the session is open.
        first = lead(services, service, alice)
        second = lead(services, service, alice)
        third = lead(services, service, alice)
        assert third.open_rc == PAM_SUCCESS
        assert first.wait_dead() == -signal.SIGHUP
        ids = {r["id"] for r in sessions(mfad, alice)}
        assert ids == {second.session_id, third.session_id}
        text = monitor.wait_for(first.session_id, '"limit"')
        assert re.search(r"member=SessionClosed[^\n]*\n\s+string \"%s\"\n\s+string \"mfa-alice\"\n"
                         r"\s+string \"limit\"" % first.session_id, text), text
        assert second.wait_dead(0.5) is None
    finally:
        monitor.stop()


def test_mfactl_terminate_kills_the_leader(mfad, test_users, services):
    alice = test_users["mfa-alice"]
    leader = lead(services, services.session_service(), alice)
    r = mfad.mfactl("terminate", leader.session_id)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"Terminated session {leader.session_id}.\n"
    assert leader.wait_dead() == -signal.SIGHUP
    assert sessions(mfad, alice) == []
    rows = audit(mfad, "mfa-alice", "session.terminate")
    assert [x["reason"] for x in rows] == ["admin"]
    r = mfad.mfactl("terminate", leader.session_id)
    assert r.returncode == 1 and "no such session" in r.stderr


def test_leader_ignoring_sighup_gets_sigkill(mfad, test_users, services):
    # A leader that ignores SIGHUP (a shell trap, inherited across exec).
    argv = ["bash", "-c", f"trap '' HUP; exec {services.client} -I rhost=192.0.2.9 "
            f"{services.session_service()} mfa-alice"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=services.env(), start_new_session=True)
    try:
        line = proc.stdout.readline()
        assert '"open": 0' in line, proc.stderr.read()
        session_id = re.search(r'"session_id": "([0-9a-f]+)"', line).group(1)
        start = time.monotonic()
        mfad.call("TerminateSession", "s", session_id).expect_ok()
        assert proc.wait(15) == -signal.SIGKILL
        assert time.monotonic() - start >= 4.5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_users_end_their_own_sessions_only(mfad, test_users, services):
    alice, bob, carol = (test_users[n] for n in ("mfa-alice", "mfa-bob", "mfa-carol"))
    service = services.session_service()
    a1 = lead(services, service, alice)
    a2 = lead(services, service, alice)
    b1 = lead(services, service, bob)
    # Listing: own, or anyone's for an admin; everyone's for admins only.
    assert {r["id"] for r in sessions(mfad, alice, as_user=alice)} == {a1.session_id,
                                                                       a2.session_id}
    mfad.call("ListSessions", "s", "mfa-bob", user=alice).expect_error("NotAllowed")
    mfad.call("ListSessions", "s", "", user=alice).expect_error("NotAllowed")
    assert len(sessions(mfad, "", as_user=carol)) == 3
    assert len(sessions(mfad, bob, as_user=carol)) == 1
    # Ending: someone else's looks like no session at all.
    mfad.call("TerminateSession", "s", b1.session_id, user=alice).expect_error("NoSuchSession")
    assert b1.wait_dead(0.5) is None
    mfad.call("TerminateSession", "s", a1.session_id, user=alice).expect_ok()
    assert a1.wait_dead() == -signal.SIGHUP
    mfad.call("TerminateSession", "s", b1.session_id, user=carol).expect_ok()
    assert b1.wait_dead() == -signal.SIGHUP
    assert [r["reason"] for r in audit(mfad, "mfa-alice", "session.terminate")] == ["user"]
    assert [r["reason"] for r in audit(mfad, "mfa-bob", "session.terminate")] == ["admin"]
    # The PAM side is root's: users cannot open or close sessions.
    mfad.call("CloseSession", "s", a2.session_id, user=alice).expect_error(
        "org.freedesktop.DBus.Error.AccessDenied")
    mfad.call("OpenSession", "sa{ss}", "mfa-alice", {}, user=alice).expect_error(
        "org.freedesktop.DBus.Error.AccessDenied")
    r = mfad.mfactl("--json", "sessions", user=alice)
    assert r.returncode == 0 and a2.session_id in r.stdout and b1.session_id not in r.stdout


def test_lifetime_expiry_terminates(mfad_factory, test_users, services):
    mfad_factory.set_config("Sessions", "MaxLifetimeSeconds", 2)
    mfad = mfad_factory.start()
    alice = test_users["mfa-alice"]
    leader = lead(services, services.session_service(), alice)
    assert leader.open_rc == PAM_SUCCESS
    assert leader.wait_dead(15) == -signal.SIGHUP
    assert wait_until(lambda: audit(mfad, "mfa-alice", "session.terminate"))[0]["reason"] == \
        "expired"
    assert sessions(mfad, alice) == []


def test_dead_leader_is_reaped(mfad, test_users, services):
    alice = test_users["mfa-alice"]
    leader = lead(services, services.session_service(), alice)
    assert len(sessions(mfad, alice)) == 1
    leader.kill()
    assert sessions(mfad, alice) == []
    assert [r["reason"] for r in audit(mfad, "mfa-alice", "session.close")] == ["closed"]


def test_sessions_survive_a_restart_and_dead_leaders_are_reaped_at_start(mfad, test_users,
                                                                          services):
    alice = test_users["mfa-alice"]
    service = services.session_service()
    live = lead(services, service, alice)
    dead = lead(services, service, alice)
    mfad.stop()
    dead.kill()
    mfad.start()
    assert [r["id"] for r in sessions(mfad, alice)] == [live.session_id]
    assert live.close() == PAM_SUCCESS
    assert sessions(mfad, alice) == []


def test_signals_and_new_device(mfad, test_users, services, bus):
    alice = test_users["mfa-alice"]
    service = services.session_service()
    monitor = Monitor(bus)
    try:
        first = lead(services, service, alice, rhost="198.51.100.20")
        second = lead(services, service, alice, rhost="198.51.100.20")
        assert first.close() == PAM_SUCCESS
        text = monitor.wait_for("SessionOpened", "SessionClosed", "new-device")
    finally:
        monitor.stop()
    assert text.count("member=SessionOpened") == 2
    assert f'string "{first.session_id}"' in text and f'string "{second.session_id}"' in text
    assert re.search(r'string "%s"\n\s+string "mfa-alice"\n\s+string "closed"' % first.session_id,
                     text)
    # The same device twice: one new-device event.
    assert text.count('string "new-device"') == 1
    assert 'string "198.51.100.20"' in text
    rows = audit(mfad, "mfa-alice", "security.new-device")
    assert len(rows) == 1 and "198.51.100.20" in rows[0]["details"]


def test_failure_burst_from_one_rhost(mfad_factory, test_users, bus):
    mfad_factory.set_config("Policy", "MaxFailures", 20)
    mfad = mfad_factory.start()
    for name in ("mfa-alice", "mfa-bob"):
        mfad.enroll_totp(name)
    monitor = Monitor(bus)
    try:
        ctx = {"service": "sshd", "rhost": "203.0.113.66", "tty": "", "ruser": ""}
        for name in ("mfa-alice", "mfa-bob"):
            _, verifies = mfad.login(name, ["000000"] * 5, ctx)
            assert all(v.error == "org.mfad1.Error.BadCode" for v in verifies)
        text = monitor.wait_for("failure-burst")
    finally:
        monitor.stop()
    assert text.count('string "failure-burst"') == 1
    assert 'string "203.0.113.66"' in text
    rows = mfad.call("ListAuditEvents", "a{sv}", {"limit": ["@u", 1000]}).expect_ok()
    assert len([r for r in rows if r["kind"] == "security.failure-burst"]) == 1


def test_logind_terminate_session(mfad, test_users, services, bus):
    logind = Logind(bus)
    try:
        alice = test_users["mfa-alice"]
        leader = lead(services, services.session_service(), alice, env=["XDG_SESSION_ID=c7"])
        assert sessions(mfad, alice)[0]["logind_session"] == "c7"
        mfad.call("TerminateSession", "s", leader.session_id).expect_ok()
        assert wait_until(logind.terminate_calls) == [["c7"]]
        # logind ends the processes: mfad sent no signal of its own.
        assert leader.wait_dead(2) is None
    finally:
        logind.stop()


def test_no_logind_falls_back_to_signals(mfad, test_users, services):
    alice = test_users["mfa-alice"]
    leader = lead(services, services.session_service(), alice, env=["XDG_SESSION_ID=c8"])
    mfad.call("TerminateSession", "s", leader.session_id).expect_ok()
    assert leader.wait_dead() == -signal.SIGHUP


def test_open_session_failure_rules(mfad_factory, test_users, services):
    alice = test_users["mfa-alice"]
    # mfad not running: unavailable, or ignored with failmode=ignore (then the next module
    # decides: PAM_IGNORE is not counted, pam_permit's success is).
    assert lead(services, services.session_service("s-secure", then_permit=True),
                alice).open_rc == PAM_AUTHINFO_UNAVAIL
    assert lead(services, services.session_service("s-ignore", "failmode=ignore",
                                                   then_permit=True), alice).open_rc == PAM_SUCCESS
    mfad = mfad_factory.start()
    assert lead(services, "s-secure", alice).open_rc == PAM_SUCCESS
    assert len(sessions(mfad, alice)) == 1


def test_open_session_input_is_checked(mfad, test_users):
    ok = {"service": "x", "rhost": "", "tty": "", "ruser": ""}
    mfad.call("OpenSession", "sa{ss}", "no-such-user-x", ok).expect_error("NoSuchUser")
    mfad.call("OpenSession", "sa{ss}", "mfa-alice", dict(ok, colour="red")).expect_error(
        "InvalidArgument")
    mfad.call("OpenSession", "sa{ss}", "mfa-alice", dict(ok, leader_pid="12x")).expect_error(
        "InvalidArgument")
    mfad.call("OpenSession", "sa{ss}", "mfa-alice", dict(ok, factor="magic")).expect_error(
        "InvalidArgument")
    mfad.call("OpenSession", "sa{ss}", "mfa-alice",
              dict(ok, logind_session="../x")).expect_error("InvalidArgument")
    mfad.call("CloseSession", "s", "0" * 32).expect_error("NoSuchSession")
    mfad.call("TerminateSession", "s", "0" * 32).expect_error("NoSuchSession")
    # Without a leader pid the session is kept until it is closed or expires.
    session_id = mfad.call("OpenSession", "sa{ss}", "mfa-alice", ok).expect_ok()
    assert [r["leader_pid"] for r in sessions(mfad, "mfa-alice")] == [0]
    mfad.call("CloseSession", "s", session_id).expect_ok()
    mfad.call("CloseSession", "s", session_id).expect_error("NoSuchSession")


def test_mfactl_sessions_and_status(mfad, test_users, services):
    alice = test_users["mfa-alice"]
    leader = lead(services, services.session_service(), alice, rhost="192.0.2.44", tty="pts/4")
    r = mfad.mfactl("sessions", user=alice)
    assert r.returncode == 0, r.stderr
    header, row = r.stdout.splitlines()[:2]
    assert header.split() == ["ID", "USER", "SERVICE", "RHOST", "TTY", "START", "LAST", "SEEN",
                              "FACTOR"]
    assert row.split()[:5] == [leader.session_id, "mfa-alice", "mfa-session", "192.0.2.44",
                               "pts/4"]
    assert row.split()[-1] == "none"
    r = mfad.mfactl("--json", "status", user=alice)
    assert r.returncode == 0, r.stderr
    assert '"sessions": 1' in r.stdout or '"sessions":1' in r.stdout
    r = mfad.mfactl("--json", "sessions", "--all")
    assert r.returncode == 0 and leader.session_id in r.stdout


def test_leader_that_allocates_memory_stays_alive(mfad, test_users):
    # The leader's identity is its start time (/proc/PID/stat field 22): a leader whose memory
    # grows (sshd after pam_systemd, for one) is the same process and its session stays open.
    leader = subprocess.Popen(["/usr/bin/python3", "-c",
                               "import sys, time; sys.stdin.readline(); b = bytearray(64 << 20); "
                               "print('grown', flush=True); time.sleep(60)"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        context = {"service": "x", "rhost": "", "tty": "", "ruser": "",
                   "leader_pid": str(leader.pid)}
        session_id = mfad.call("OpenSession", "sa{ss}", "mfa-alice", context).expect_ok()
        with open(f"/proc/{leader.pid}/stat") as f:
            start = int(f.read().rsplit(")", 1)[1].split()[19])
        leader.stdin.write("\n")
        leader.stdin.flush()
        assert leader.stdout.readline() == "grown\n"
        assert [r["id"] for r in sessions(mfad, "mfa-alice")] == [session_id]
        with open(f"/proc/{leader.pid}/stat") as f:
            assert int(f.read().rsplit(")", 1)[1].split()[19]) == start
    finally:
        leader.kill()
        leader.wait()


def test_an_alias_shares_the_accounts_session_limit(mfad_factory, test_users, services,
                                                    alice_alias):
    # Sessions belong to the account, not to the name a login used (issue 17): a second passwd
    # entry with alice's uid does not open MaxPerUser more sessions, and its sessions are listed
    # under her name.
    alice = test_users["mfa-alice"]
    mfad_factory.set_config("Sessions", "MaxPerUser", 1)
    mfad_factory.set_config("Sessions", "OnLimit", "deny")
    mfad = mfad_factory.start()
    service = services.session_service()
    assert lead(services, service, alice).open_rc == PAM_SUCCESS
    second = lead(services, service, alice_alias)
    assert second.open_rc == PAM_PERM_DENIED
    assert "Too many sessions" in second.proc.stderr.read()
    assert [r["user"] for r in sessions(mfad, alice_alias)] == ["mfa-alice"]
