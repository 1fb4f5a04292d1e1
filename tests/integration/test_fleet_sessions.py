"""Sessions across hosts (docs/fleet.md "Sessions across hosts"): two mfad instances (two private
buses, two state directories, one master key, HostIds host-a and host-b) sharing one real
redis-server, with real session leaders (pam_session_client through pam_wrapper, as in
test_sessions.py). MaxPerUser counts both hosts' sessions; evict-oldest and TerminateSession on
one host end a session on the other (its leader really dies); when Redis is down, sessions count
per host, each decision audited as degraded, and the hosts reconcile when it is back."""

import re
import signal
import time

import pytest

from fleet_helpers import redis  # noqa: F401 (a fixture)
from fleet_helpers import (audit_details, audit_rows, degraded, fleet_config, second_host,
                           wait_degraded)
from pam_helpers import PAM_PERM_DENIED, PAM_SUCCESS
from conftest import current_step, totp, wait_until
from mfactl_helpers import run_json
from session_helpers import Monitor, SessionServices, audit

ROW_KEYS = {"id", "user", "service", "rhost", "tty", "ruser", "logind_session", "leader_pid",
            "factor", "device", "started", "last_seen", "host"}


class Fleet:
    def __init__(self, a, host_b, services_a, services_b):
        self.a = a
        self.host_b = host_b
        self.b = host_b.mfad
        self.services = {"a": services_a, "b": services_b}
        self.leaders = []

    def lead(self, host, user, **kwargs):
        services = self.services[host]
        leader = services.leader(services.session_service(), user, **kwargs)
        self.leaders.append(leader)
        return leader


@pytest.fixture
def fleet_factory(mfad_factory, build_dir, redis, test_users):
    made = []

    def make(max_per_user=2, on_limit="deny", lifetime=None):
        a = mfad_factory
        fleet_config(a, redis)  # HostId host-a
        a.set_config("Sessions", "MaxPerUser", max_per_user)
        a.set_config("Sessions", "OnLimit", on_limit)
        if lifetime:
            a.set_config("Sessions", "MaxLifetimeSeconds", lifetime)
        a.start()
        host_b = second_host(a, build_dir)
        b = host_b.mfad
        b.start()
        wait_degraded(a, False)
        wait_degraded(b, False)
        f = Fleet(a, host_b, SessionServices(build_dir, a.bus.address),
                  SessionServices(build_dir, host_b.bus.address))
        made.append(f)
        return f

    yield make
    for f in made:
        for leader in f.leaders:
            leader.kill()
        for s in f.services.values():
            s.cleanup()
        f.host_b.cleanup()


def sessions(m, user="", as_user=None):
    return m.call("ListSessions", "s", user, user=as_user).expect_ok()


def ids(m, user=""):
    return {r["id"] for r in sessions(m, user)}


def test_rows_show_every_host(fleet_factory, test_users, redis):
    f = fleet_factory()
    alice = test_users["mfa-alice"]
    on_a = f.lead("a", alice, rhost="192.0.2.10")
    on_b = f.lead("b", alice, rhost="192.0.2.11")
    assert on_a.open_rc == on_b.open_rc == PAM_SUCCESS
    assert re.fullmatch(r"[0-9a-f]{32}", on_a.session_id)
    for m in (f.a, f.b):
        rows = sessions(m, "mfa-alice", as_user=alice)
        assert all(set(r) == ROW_KEYS for r in rows), rows
        assert {(r["id"], r["host"], r["rhost"]) for r in rows} == {
            (on_a.session_id, "host-a", "192.0.2.10"), (on_b.session_id, "host-b", "192.0.2.11")}
        by_id = {r["id"]: r for r in rows}
        assert by_id[on_a.session_id]["leader_pid"] == on_a.pid
        assert by_id[on_b.session_id]["leader_pid"] == on_b.pid
    # Everyone's, for an admin; the host's own keys name it.
    assert ids(f.b) == {on_a.session_id, on_b.session_id}
    assert on_a.session_id in redis.cli("HKEYS", "mfad:host:{host-a}:sessions")
    assert on_b.session_id in redis.cli("HKEYS", "mfad:host:{host-b}:sessions")
    # mfactl shows the host column in fleet mode.
    r = f.b.mfactl("sessions", "mfa-alice")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].split()[-1] == "HOST"
    assert "host-a" in r.stdout and "host-b" in r.stdout
    # A close on A leaves the count everywhere.
    assert on_a.close() == PAM_SUCCESS
    assert ids(f.b, "mfa-alice") == {on_b.session_id}
    assert on_a.session_id not in redis.cli("HKEYS", "mfad:sessions")


def test_limit_deny_counts_both_hosts(fleet_factory, test_users):
    f = fleet_factory(max_per_user=2, on_limit="deny")
    alice, bob = test_users["mfa-alice"], test_users["mfa-bob"]
    first = f.lead("a", alice)
    second = f.lead("b", alice)
    assert (first.open_rc, second.open_rc) == (PAM_SUCCESS, PAM_SUCCESS)
    # A third on either host is refused: the count is the fleet's.
    third_a = f.lead("a", alice)
    third_b = f.lead("b", alice)
    assert third_a.open_rc == third_b.open_rc == PAM_PERM_DENIED
    assert "Too many sessions" in third_b.proc.stderr.read()
    for m in (f.a, f.b):
        assert [r["outcome"] for r in audit(m, "mfa-alice", "session.open")][-1] == "denied"
        assert len(sessions(m, "mfa-alice")) == 2
    # Another user is not affected; a session ended on B makes room on A.
    assert f.lead("a", bob).open_rc == PAM_SUCCESS
    assert second.close() == PAM_SUCCESS
    assert f.lead("a", alice).open_rc == PAM_SUCCESS
    assert f.lead("b", alice).open_rc == PAM_PERM_DENIED
    # A dead leader on A does not count either, once A notices (it reaps before counting).
    first.kill()
    assert len(sessions(f.a, "mfa-alice")) == 1
    assert f.lead("b", alice).open_rc == PAM_SUCCESS


def test_evict_oldest_ends_the_other_hosts_session(fleet_factory, test_users):
    f = fleet_factory(max_per_user=2, on_limit="evict-oldest")
    monitor = Monitor(f.a.bus)
    try:
        alice = test_users["mfa-alice"]
        # The oldest by its start: lead() returns once the session is open.
        oldest = f.lead("a", alice)
        middle = f.lead("b", alice)
        newest = f.lead("b", alice)
        assert newest.open_rc == PAM_SUCCESS
        # The oldest ran on A: A ends it, as a local eviction would.
        assert oldest.wait_dead() == -signal.SIGHUP
        for m in (f.a, f.b):
            assert wait_until(lambda m=m: ids(m, "mfa-alice") == {middle.session_id,
                                                                  newest.session_id})
        text = monitor.wait_for(oldest.session_id, '"limit"')
        assert re.search(r"member=SessionClosed[^\n]*\n\s+string \"%s\"\n\s+string \"mfa-alice\"\n"
                         r"\s+string \"limit\"" % oldest.session_id, text), text
        ended = wait_until(lambda: audit(f.a, "mfa-alice", "session.terminate"))
        assert [r["reason"] for r in ended] == ["limit"]
        assert audit_details(ended[0])["requested_by"] == "host-b"
        assert audit_details(ended[0])["session"] == oldest.session_id
        asked = audit(f.b, "mfa-alice", "session.terminate")
        assert [(r["reason"], audit_details(r)["host"]) for r in asked] == [("limit", "host-a")]
        assert middle.wait_dead(0.5) is None
    finally:
        monitor.stop()


def test_terminate_on_b_ends_a_session_on_a(fleet_factory, test_users, redis):
    f = fleet_factory(max_per_user=5)
    alice, bob = test_users["mfa-alice"], test_users["mfa-bob"]
    leader = f.lead("a", alice)
    assert leader.open_rc == PAM_SUCCESS
    started = time.monotonic()
    r = f.b.mfactl("terminate", leader.session_id)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"Terminated session {leader.session_id}.\n"
    # A picks the request up at once (subscription), not at its next poll (every 10 s).
    assert leader.wait_dead(5) == -signal.SIGHUP
    assert time.monotonic() - started < 4
    for m in (f.a, f.b):
        assert wait_until(lambda m=m: ids(m, "mfa-alice") == set())
    ended = audit(f.a, "mfa-alice", "session.terminate")
    assert [r["reason"] for r in ended] == ["admin"]
    assert audit_details(ended[0])["requested_by"] == "host-b"
    assert "on host-b" in ended[0]["caller"]
    asked = audit(f.b, "mfa-alice", "session.terminate")
    assert [(r["reason"], audit_details(r)["host"]) for r in asked] == [("admin", "host-a")]
    r = f.b.mfactl("terminate", leader.session_id)
    assert r.returncode == 1 and "no such session" in r.stderr

    # A user ends their own session on A from B; someone else's looks like none.
    own = f.lead("a", alice)
    f.b.call("TerminateSession", "s", own.session_id, user=bob).expect_error("NoSuchSession")
    assert own.wait_dead(0.5) is None
    f.b.call("TerminateSession", "s", own.session_id, user=alice).expect_ok()
    assert own.wait_dead(5) == -signal.SIGHUP
    assert [r["reason"] for r in audit(f.a, "mfa-alice", "session.terminate")][-1] == "user"

    # Redis restarted: B's request still reaches A promptly (A subscribed again).
    again = f.lead("a", alice)
    redis.kill9()
    redis.start()
    wait_degraded(f.a, False)
    wait_degraded(f.b, False)
    assert wait_until(lambda: "mfad:host:{host-a}:terminate" in redis.cli("PUBSUB", "CHANNELS"))
    started = time.monotonic()
    f.b.call("TerminateSession", "s", again.session_id).expect_ok()
    assert again.wait_dead(5) == -signal.SIGHUP
    assert time.monotonic() - started < 4


def test_redis_down_counts_per_host_audits_and_reconciles(fleet_factory, test_users, redis):
    f = fleet_factory(max_per_user=2, on_limit="deny")
    alice = test_users["mfa-alice"]
    on_b = f.lead("b", alice)
    assert on_b.open_rc == PAM_SUCCESS

    redis.stop()
    # OpenSession still works, with this host's own limit (B's session is not seen from A).
    first = f.lead("a", alice)
    second = f.lead("a", alice)
    third = f.lead("a", alice)
    assert (first.open_rc, second.open_rc) == (PAM_SUCCESS, PAM_SUCCESS)
    assert third.open_rc == PAM_PERM_DENIED
    assert degraded(f.a)
    rows = [r for r in audit(f.a, "mfa-alice", "degraded")
            if audit_details(r).get("call") == "OpenSession"]
    assert [r["outcome"] for r in rows] == ["success", "success", "denied"], rows
    assert all(r["reason"] == "redis-unavailable" for r in rows)
    # Listing falls back to this host's sessions; another host's cannot be ended now.
    assert ids(f.a, "mfa-alice") == {first.session_id, second.session_id}
    f.a.call("TerminateSession", "s", on_b.session_id).expect_error("StorageFailure")
    assert on_b.wait_dead(0.3) is None
    # A session closed meanwhile leaves the count once Redis is back.
    assert second.close() == PAM_SUCCESS

    redis.start()
    wait_degraded(f.a, False)
    wait_degraded(f.b, False)
    # Reconciled: what A opened while cut off counts on every host, what it closed does not.
    expected = {first.session_id, on_b.session_id}
    for m in (f.a, f.b):
        assert wait_until(lambda m=m: ids(m, "mfa-alice") == expected), sessions(m, "mfa-alice")
    assert f.lead("b", alice).open_rc == PAM_PERM_DENIED


def test_stale_entries_of_a_dead_host_stop_counting(fleet_factory, test_users, redis):
    f = fleet_factory(max_per_user=2, on_limit="deny", lifetime=3)
    alice = test_users["mfa-alice"]
    on_b = f.lead("b", alice)
    on_b2 = f.lead("b", alice)
    assert on_b.open_rc == on_b2.open_rc == PAM_SUCCESS
    # B dies with its sessions registered (kill -9: nothing is unregistered).
    f.b.kill9()
    assert f.lead("a", alice).open_rc == PAM_PERM_DENIED
    # Once their lifetime is over, B's entries count no more and are no longer listed. That takes
    # real time (mfad's clock cannot be injected from here): until the expiry B wrote with them.
    entries = redis.cli("HVALS", "mfad:user:{mfa-alice}:sessions").split()
    expiry = max(int(e.split("|")[2]) for e in entries if e.startswith("host-b|"))
    assert wait_until(lambda: time.time() * 1e6 >= expiry, timeout=10)
    assert f.lead("a", alice).open_rc == PAM_SUCCESS
    listed = sessions(f.a, "")
    assert {r["host"] for r in listed} == {"host-a"}
    assert wait_until(lambda: on_b.session_id not in redis.cli("HKEYS", "mfad:sessions"))


def test_forged_termination_request_ends_nothing(fleet_factory, test_users, redis):
    """Issue 16: with the Redis password, an attacker pushes a termination request for a session
    of host A and publishes it: A ends nothing, and audits the request as fleet.record-rejected.
    A real request from B still works."""
    f = fleet_factory(max_per_user=5)
    alice = test_users["mfa-alice"]
    leader = f.lead("a", alice)
    assert leader.open_rc == PAM_SUCCESS
    queue = "mfad:host:{host-a}:terminate"
    forged = ('{"v":1,"id":"%s","reason":"admin","from":"host-b","caller":"uid=0 pid=1 :1.1",'
              '"user":"mfa-alice","uid":0}' % leader.session_id)
    redis.cli("RPUSH", queue, forged)
    redis.cli("PUBLISH", queue, "x")
    assert wait_until(lambda: [r for r in audit_rows(f.a, "fleet.record-rejected")
                               if audit_details(r)["when"] == "terminate"])
    assert leader.wait_dead(1) is None
    rows = [r for r in audit_rows(f.a, "fleet.record-rejected")]
    assert rows[-1]["reason"] == "legacy-record"
    assert audit_details(rows[-1])["key"] == queue
    assert ids(f.a, "mfa-alice") == {leader.session_id}
    f.b.call("TerminateSession", "s", leader.session_id).expect_ok()
    assert leader.wait_dead(5) == -signal.SIGHUP


def status_text(m, user):
    r = m.mfactl("status", user)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_changes_made_elsewhere_are_signalled_and_shown(fleet_factory, test_users, redis):
    """Issue 16: an enrollment or a reset written by another host raises a SecurityEvent where
    the user has sessions, with the writer's HostId, and `mfactl status` shows it there (kept
    across a restart) until the user's factors change on that host; a change made on the host
    itself shows nothing."""
    f = fleet_factory(max_per_user=5)
    alice = test_users["mfa-alice"]
    # Bob's enrollment is A's own.
    f.a.enroll_totp("mfa-bob")
    assert "Changed elsewhere" not in status_text(f.a, "mfa-bob")
    assert run_json(f.a, "status", "mfa-bob")["foreign_change"] is None
    f.a.enroll_totp("mfa-alice")
    assert f.lead("a", alice).open_rc == PAM_SUCCESS
    monitor = Monitor(f.a.bus)
    try:
        # B enrolls a second authenticator for alice.
        doc = run_json(f.b, "enroll", "totp", "mfa-alice", "--name", "phone2")
        r = f.b.mfactl("confirm", "totp", "mfa-alice", totp(doc["secret"], step=current_step()))
        assert r.returncode == 0, r.stderr
        text = monitor.wait_for('string "fleet-foreign-enrollment"', 'string "totp/phone2"')
        assert re.search(r'member=SecurityEvent[^\n]*\n[^\n]*\n\s+string "fleet-foreign-enrollment"',
                         text), text
        assert 'string "host-b"' in text, text
        # The pending record of the enrollment raised nothing: its confirmation is the change.
        assert "totp/phone2:pending" not in text, text
        change = run_json(f.a, "status", "mfa-alice")["foreign_change"]
        assert {k: change[k] for k in ("host", "kind", "factor")} == {
            "host": "host-b", "kind": "enrollment", "factor": "totp/phone2"}
        assert abs(change["at"] - time.time()) < 60, change
        assert re.search(r"^Changed elsewhere: +enrollment of totp/phone2 by host host-b at \S",
                         status_text(f.a, "mfa-alice"), re.M)
        rows = audit(f.a, "mfa-alice", "fleet.foreign-change")
        assert [audit_details(r) for r in rows] == [
            {"host": "host-b", "change": "enrollment", "factor": "totp/phone2",
             "uid": str(alice.uid)}]
        # B itself wrote it: nothing to show there.
        assert run_json(f.b, "status", "mfa-alice")["foreign_change"] is None

        # An admin on B resets alice.
        f.b.call("ResetUser", "s", "mfa-alice").expect_ok()
        monitor.wait_for('string "fleet-foreign-reset"')
        assert re.search(r"^Changed elsewhere: +reset by host host-b at \S",
                         status_text(f.a, "mfa-alice"), re.M)
    finally:
        monitor.stop()
    # Kept in A's database: a restart still shows it.
    f.a.restart()
    wait_degraded(f.a, False)
    assert run_json(f.a, "status", "mfa-alice")["foreign_change"]["kind"] == "reset"
    # An enrollment on A itself: the line goes, and no new one comes.
    f.a.enroll_totp("mfa-alice")
    assert "Changed elsewhere" not in status_text(f.a, "mfa-alice")
    assert run_json(f.a, "status", "mfa-alice")["foreign_change"] is None
