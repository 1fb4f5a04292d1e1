"""Fleet mode (docs/fleet.md): two mfad instances (two private buses, two state directories, one
master key) sharing one real redis-server. What one host consumes is consumed on the other; when
Redis goes away, logins go on from the local cache with both factors, every degraded decision is
audited, and what was consumed meanwhile stays consumed once Redis is back."""

import json
import os
import signal
import time

import pytest

from conftest import call_spec, wait_until
from daemon_helpers import run_mfad
from fleet_helpers import REDIS_USER, redis  # noqa: F401 (a fixture)
from fleet_helpers import (Dialogue, audit_details, audit_rows, degraded, fleet_config, fleet_key,
                           second_host, wait_degraded)

MAX_FAILURES = 3


@pytest.fixture
def fleet(mfad_factory, build_dir, redis):
    a = mfad_factory
    fleet_config(a, redis)
    a.set_config("Policy", "MaxFailures", MAX_FAILURES)
    a.start()
    host_b = second_host(a, build_dir)
    b = host_b.mfad
    b._last_step = a._last_step                    # one clock, one user: steps are shared
    b.start()
    wait_degraded(a, False)
    wait_degraded(b, False)
    yield a, b
    if any(os.environ.get(k) for k in ("MFA_FLEET_LOGS",)):
        print(b.log_text())
    host_b.cleanup()


def backup_codes(m, user):
    return m.call("GenerateBackupCodes", "ss", user, "").expect_ok()


def test_enroll_on_a_log_in_on_b(fleet, test_users, redis):
    a, b = fleet
    user = "mfa-alice"
    secret = a.enroll_totp(user)
    # The record in Redis is sealed: no seed in clear.
    stored = redis.cli("HGETALL", f"mfad:user:{{{user}}}:factors")
    assert "totp" in stored and secret not in stored and secret.lower() not in stored
    begin, verify = b.login(user, b.next_code(user, secret))
    assert begin.expect_ok()[1] == ["totp"]
    assert verify.expect_ok() == "totp"
    info = b.call("GetUser", "s", user).expect_ok()
    assert info["methods"] == ["totp"]


def test_code_used_on_a_is_refused_on_b(fleet, test_users):
    a, b = fleet
    user = "mfa-alice"
    secret = a.enroll_totp(user)
    code = a.next_code(user, secret)
    assert a.login(user, code)[1].expect_ok() == "totp"
    b.login(user, code)[1].expect_error("BadCode")
    assert any(r["reason"] == "replay" for r in audit_rows(b, "auth.attempt", user)) or any(
        r["outcome"] == "failure" for r in audit_rows(b, user=user))
    # The next step still works on B, and is then dead on A.
    code2 = b.next_code(user, secret)
    assert b.login(user, code2)[1].expect_ok() == "totp"
    a.login(user, code2)[1].expect_error("BadCode")


def test_concurrent_same_code_on_two_hosts_lets_one_in(fleet, test_users):
    """Both hosts prefetch before either confirms: the compare-and-set in Redis decides."""
    a, b = fleet
    user = "mfa-alice"
    secret = a.enroll_totp(user)
    ctx = {"service": "test", "rhost": "127.0.0.1", "tty": "pts/0", "ruser": ""}
    ok = 0
    for _ in range(3):
        code = a.next_code(user, secret)
        import concurrent.futures
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(m.calls, [call_spec("BeginAuthentication", "sa{ss}", user, ctx),
                                             call_spec("Verify", "ss", "$0", code)])
                       for m in (a, b)]
            results = [f.result()[1] for f in futures]
        assert sum(1 for r in results if r.ok) == 1, results
        ok += 1
        for r in results:
            if not r.ok:
                assert r.error in ("org.mfad1.Error.BadCode", "org.mfad1.Error.RateLimited")
    assert ok == 3


def test_failures_on_a_and_b_add_up_to_one_lockout(fleet, test_users):
    a, b = fleet
    user = "mfa-bob"
    secret = a.enroll_totp(user)
    a.login(user, "000000")[1].expect_error("BadCode")
    b.login(user, "000001")[1].expect_error("BadCode")
    # The third failure, on A, locks the user everywhere.
    a.login(user, "000002")[1].expect_error("RateLimited")
    begin, _ = b.login(user, b.next_code(user, secret))
    begin.expect_error("RateLimited")
    assert audit_rows(a, "auth.lockout", user)
    # An admin unlock on B frees the user on A too.
    b.call("Unlock", "s", user).expect_ok()
    assert a.login(user, a.next_code(user, secret))[1].expect_ok() == "totp"


def test_backup_code_used_on_a_is_dead_on_b(fleet, test_users):
    a, b = fleet
    user = "mfa-alice"
    a.enroll_totp(user)
    codes = backup_codes(a, user)
    assert len(codes) == 10
    assert a.login(user, codes[0])[1].expect_ok() == "backup"
    b.login(user, codes[0])[1].expect_error("BadCode")
    assert b.login(user, codes[1])[1].expect_ok() == "backup"
    a.login(user, codes[1])[1].expect_error("BadCode")
    assert b.call("GetUser", "s", user).expect_ok()["backup_codes_left"] == 8


def test_disable_on_a_reaches_b(fleet, test_users):
    a, b = fleet
    user = "mfa-alice"
    secret = a.enroll_totp(user)
    assert b.login(user, b.next_code(user, secret))[1].expect_ok() == "totp"
    a.call("DisableMethod", "sss", user, "totp", "").expect_ok()
    begin, _ = b.login(user, b.next_code(user, secret))
    begin.expect_error("NotEnrolled")


def test_redis_down_logins_go_on_and_reconcile(fleet, test_users, redis):
    a, b = fleet
    # Backup codes while degraded are refused by default (test_fleet_records.py); allowed here to
    # see one consumed offline reconciled.
    a.set_config("Redis", "DegradedBackupCodes", "yes")
    a.restart()
    wait_degraded(a, False)
    user = "mfa-alice"
    secret = a.enroll_totp(user)
    codes = backup_codes(a, user)
    # Both hosts have the user in their caches.
    assert b.login(user, b.next_code(user, secret))[1].expect_ok() == "totp"

    redis.stop()
    # No failed login for an enrolled user: the first one after the outage is served from cache.
    assert a.login(user, a.next_code(user, secret))[1].expect_ok() == "totp"
    assert degraded(a)
    # Both factors still required: a wrong code is refused.
    a.login(user, "999999")[1].expect_error("BadCode")
    # A backup code consumed during the outage, on A.
    assert a.login(user, codes[0])[1].expect_ok() == "backup"
    # Enrollment changes wait for Redis.
    a.call("GenerateBackupCodes", "ss", user, "").expect_error("StorageFailure")
    rows = audit_rows(a, "degraded", user)
    assert {r["outcome"] for r in rows} >= {"success", "failure"}, rows
    assert all(r["reason"] == "redis-unavailable" for r in rows)
    assert "fleet mode degraded" in a.log_text()

    redis.start()
    wait_degraded(a, False)
    wait_degraded(b, False)
    # Reconciled: the code A consumed offline is dead fleet-wide, and B's cache learns it.
    b.login(user, codes[0])[1].expect_error("BadCode")
    assert b.login(user, codes[1])[1].expect_ok() == "backup"
    assert a.sql("SELECT count(*) FROM fleet_reconcile").strip() == "0"
    assert any(r["reason"] == "redis-available" for r in audit_rows(a, "degraded"))


def report(m):
    r = m.mfactl("--json", "report")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_leaving_degraded_mode_reports_what_was_decided(fleet, test_users, redis):
    """Issue 16: the row of leaving degraded mode counts the period's decisions and what became
    of its queue; `mfactl report` adds them up over its window, apart from the logins Redis
    confirmed."""
    a, _b = fleet
    a.set_config("Redis", "DegradedBackupCodes", "yes")
    a.restart()
    wait_degraded(a, False)
    user = "mfa-alice"
    secret = a.enroll_totp(user)
    codes = backup_codes(a, user)
    assert a.login(user, a.next_code(user, secret))[1].expect_ok() == "totp"  # with Redis
    before = report(a)

    redis.stop()
    assert a.login(user, a.next_code(user, secret))[1].expect_ok() == "totp"
    a.login(user, "999999")[1].expect_error("BadCode")
    assert a.login(user, codes[0])[1].expect_ok() == "backup"
    queued = int(a.sql("SELECT count(*) FROM fleet_reconcile").strip())
    assert queued >= 2  # the TOTP step and the backup code, at least
    redis.start()
    wait_degraded(a, False)

    left = [r for r in audit_rows(a, "degraded") if audit_details(r).get("state") == "left"][-1]
    assert audit_details(left) == {
        "state": "left", "decisions": "3", "logins_allowed": "2", "logins_denied": "1",
        "consumed": "2", "unreplicated": "0", "reconciled": str(queued), "refused": "0"}, left
    after = report(a)
    assert after["logins"]["success"] - before["logins"]["success"] == 2
    delta = {k: after["degraded"][k] - before["degraded"][k] for k in after["degraded"]}
    assert delta == {"decisions": 3, "logins_allowed": 2, "logins_denied": 1, "consumed": 2,
                     "unreplicated": 0, "periods": 1, "reconciled": queued, "refused": 0}, delta
    r = a.mfactl("report")
    assert r.returncode == 0, r.stderr
    assert "Decided without Redis:" in r.stdout, r.stdout


def test_redis_frozen_is_degraded_within_the_timeout(fleet, test_users, redis):
    a, _b = fleet
    user = "mfa-alice"
    secret = a.enroll_totp(user)
    redis.pause()
    try:
        started = time.monotonic()
        begin, verify = a.login(user, a.next_code(user, secret))
        elapsed = time.monotonic() - started
        assert verify.expect_ok() == "totp"
        # Three calls, the first of which waits for the timeout (200 ms) at most; the rest of the
        # time is the D-Bus client's start-up.
        assert elapsed < 2.0, elapsed
        assert degraded(a)
    finally:
        redis.resume()
    wait_degraded(a, False)


def test_redis_refusing_on_a_live_connection_degrades_then_recovers(fleet, test_users, redis):
    """Redis answers with errors (here an ACL that no longer allows scripts; out of memory does
    the same) while the connection stays up: no reconnection will come, and mfad must leave
    degraded mode on its own once Redis accepts the scripts again."""
    a, _b = fleet
    user = "mfa-alice"
    secret = a.enroll_totp(user)
    r = redis.admin_cli("ACL", "SETUSER", REDIS_USER, "-eval", "-evalsha")
    assert r.strip() == "OK", r
    try:
        # Served from the cache, both factors still required.
        assert a.login(user, a.next_code(user, secret))[1].expect_ok() == "totp"
        assert degraded(a)
        assert "NOPERM" in a.log_text()
        a.login(user, "999999")[1].expect_error("BadCode")
        # While Redis keeps refusing, mfad tries again with a growing backoff (100 ms, 200 ms,
        # ...): it does not enter and leave degraded mode at every login. Calls for 1.5 s of real
        # time: the backoff is counted in it.
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            a.call("GetUser", "s", user).expect_ok()
        entered = [r for r in audit_rows(a, "degraded")
                   if audit_details(r).get("state") == "entered"]
        assert 1 <= len(entered) <= 5, entered
    finally:
        r = redis.admin_cli("ACL", "SETUSER", REDIS_USER, "+eval", "+evalsha")
        assert r.strip() == "OK", r
    wait_degraded(a, False, timeout=10)
    # Back without a reconnection: the connection was never lost.
    assert a.log_text().count("Redis connected") == 1, a.log_text()
    assert a.login(user, a.next_code(user, secret))[1].expect_ok() == "totp"
    assert not degraded(a)


def test_redis_killed_and_restarted_with_its_data(fleet, test_users, redis):
    a, b = fleet
    user = "mfa-alice"
    secret = a.enroll_totp(user)
    redis.kill9()
    redis.start()  # appendonly: the enrollment is still there
    wait_degraded(a, False)
    wait_degraded(b, False)
    assert "NOPERM" not in redis.log_text()
    assert b.login(user, b.next_code(user, secret))[1].expect_ok() == "totp"


def test_wrong_password_is_a_clear_error_and_degraded(mfad_factory, redis, test_users):
    wrong = os.path.join(redis.dir, "wrong.password")
    with open(wrong, "w") as f:
        f.write("not-the-password\n")
    os.chmod(wrong, 0o600)
    fleet_config(mfad_factory, redis, wrong)
    m = mfad_factory.start()
    wait_until(lambda: "refused authentication" in m.log_text(), timeout=10)
    assert "Redis refused authentication as mfad" in m.log_text()
    assert redis.password not in m.log_text() and "not-the-password" not in m.log_text()
    assert degraded(m)
    assert m.proc.poll() is None
    # Served from the (empty) cache, which Redis never confirmed: "no factor" is not trusted
    # (DegradedNullok=no, issue 16); changes wait for Redis.
    user = "mfa-alice"
    m.login(user, "123456")[0].expect_error("NotAllowed")
    m.call("BeginTotpEnrollment", "sa{sv}", user, {}).expect_error("StorageFailure")


def test_password_file_readable_by_others_is_refused(mfad_factory, redis):
    os.chmod(redis.password_file, 0o644)
    fleet_config(mfad_factory, redis)
    m = mfad_factory.start(wait=False)
    assert m.proc.wait(20) != 0
    assert "readable by group or others" in m.log_text()


def test_degraded_property_changes_are_signalled(fleet, redis):
    from session_helpers import Monitor
    a, _b = fleet
    mon = Monitor(a.bus, "type='signal',interface='org.freedesktop.DBus.Properties'")
    try:
        redis.stop()
        # The next call notices at once.
        a.call("GetUser", "s", "root")
        wait_degraded(a, True)
        out = mon.wait_for("PropertiesChanged", "Degraded")
    finally:
        mon.stop()
    assert "PropertiesChanged" in out and "Degraded" in out, out


# --- [Redis] Address: an IP address, never a name. ---


def test_a_host_name_is_refused_at_config_check_and_start(mfad_factory):
    m = mfad_factory
    m.set_config("Redis", "Address", "rediss://localhost:6379")
    m.write_config()
    r = run_mfad(m, "--config", m.config_path, "--check-config")
    assert r.returncode != 0
    assert "is a host name" in r.stderr and "IP addresses only" in r.stderr, r.stderr
    m.start(wait=False)
    assert m.proc.wait(20) != 0
    assert "is a host name" in m.log_text()
    m.set_config("Redis", "Address", "rediss://127.0.0.1:6379")
    m.write_config()
    fleet_key(m)
    r = run_mfad(m, "--config", m.config_path, "--check-config")
    assert r.returncode == 0, r.stderr


def test_fleet_mode_never_creates_a_master_key(mfad_factory):
    # Redis holds records sealed with the fleet's key; a key made by this host would open none of
    # them (issue 17): mfad refuses, at --check-config and at start, and says to copy the key.
    m = mfad_factory
    m.set_config("Redis", "Address", "rediss://127.0.0.1:6379")
    m.write_config()
    assert not os.path.exists(m.key_path)
    r = run_mfad(m, "--config", m.config_path, "--check-config")
    assert r.returncode != 0
    assert "in fleet mode every host needs the fleet's master key" in r.stderr, r.stderr
    m.start(wait=False)
    assert m.proc.wait(20) != 0
    assert "Copy it from another host of the fleet" in m.log_text()
    assert not os.path.exists(m.key_path)


# --- Shutdown while calls wait on Redis. ---


@pytest.fixture
def dialogues():
    """Dialogue(m) factory; every dialogue is closed at the end of the test."""
    opened = []

    def open_dialogue(m, user=None):
        d = Dialogue(m)
        opened.append(d)
        if user is not None:
            d.begin(user).expect_ok()
        return d
    yield open_dialogue
    for d in opened:
        d.close()


@pytest.fixture
def slow_host(mfad_factory, redis):
    """One mfad in fleet mode whose Redis Timeout is long enough for a call to be seen waiting."""
    m = mfad_factory
    fleet_config(m, redis)
    m.set_config("Redis", "Timeout", 3000)
    m.start()
    wait_degraded(m, False)
    return m


def test_sigterm_answers_calls_waiting_on_a_frozen_redis(slow_host, redis, test_users, dialogues):
    m = slow_host
    user, other = "mfa-alice", "mfa-bob"
    secret = m.enroll_totp(user)
    m.enroll_totp(other)
    in_verify = dialogues(m, user)
    in_begin = dialogues(m)
    redis.pause()
    try:
        in_verify.send("Verify", in_verify.challenge, m.next_code(user, secret))
        # Not alice, whose state her own Begin just read: that Begin would be answered from the
        # read cache without waiting.
        in_begin.send("BeginAuthentication", other, Dialogue.CONTEXT)
        assert not in_verify.answered(0.5) and not in_begin.answered(0)  # both wait on Redis
        m.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        for d in (in_verify, in_begin):
            r = d.receive(timeout=10)
            r.expect_error("org.freedesktop.DBus.Error.NoServer")
            assert "shutting down" in r.message
        # Within the Redis Timeout (3 s), not the client's own timeout.
        assert time.monotonic() - signalled < 4.5
        assert m.proc.wait(10) == 0
    finally:
        redis.resume()
    assert "waiting up to 3000 ms for 2 calls waiting on Redis" in m.log_text()


def test_sigterm_lets_redis_answer_within_its_timeout(slow_host, redis, test_users, dialogues):
    m = slow_host
    user = "mfa-alice"
    secret = m.enroll_totp(user)
    d = dialogues(m, user)
    redis.pause()
    try:
        d.send("Verify", d.challenge, m.next_code(user, secret))
        assert not d.answered(0.5)
        m.proc.send_signal(signal.SIGTERM)
        assert not d.answered(0.3) and m.proc.poll() is None  # still waiting for Redis
    finally:
        redis.resume()
    assert d.receive(timeout=10).expect_ok() == "totp"
    assert m.proc.wait(10) == 0
    # The success was confirmed by Redis: the step is taken fleet-wide.
    state = redis.cli("GET", f"mfad:user:{{{user}}}:state").strip().split("|")
    assert int(state[3]) == m._last_step[user]  # m1|HOST|COUNTER|WATERMARK|...


# --- Round trips per login: Verify decides from what BeginAuthentication read, and the confirm
# script checks, atomically, what another host may have done in between. BeginAuthentication
# itself is answered from the read cache (fleet_read_cache.hpp) for a user this host read since
# the last change any host published: one round trip then. ---


def fleet_refusals(m, user, reason):
    return [r for r in audit_rows(m, "auth.failure", user)
            if r["reason"] == reason and '"fleet":"refused"' in r["details"].replace(" ", "")]


def lock_out(m, user):
    """MAX_FAILURES wrong codes on m: the user is locked out, fleet-wide."""
    for i in range(MAX_FAILURES - 1):
        m.login(user, f"00000{i}")[1].expect_error("BadCode")
    m.login(user, f"00000{MAX_FAILURES - 1}")[1].expect_error("RateLimited")


def locked_until_unlocked(a, b, user, secret):
    """A refuses the user at BeginAuthentication until B unlocks them."""
    a.login(user, a.next_code(user, secret))[0].expect_error("RateLimited")
    b.call("Unlock", "s", user).expect_ok()
    assert a.login(user, a.next_code(user, secret))[1].expect_ok() == "totp"


def warm_read_cache(m, user, secret):
    """Two logins on m: the user's state is in its read cache, current."""
    for _ in range(2):
        assert m.login(user, m.next_code(user, secret))[1].expect_ok() == "totp"


def test_a_login_costs_two_redis_round_trips_then_one(fleet, test_users, redis):
    a, _b = fleet
    user = "mfa-alice"
    secret = a.enroll_totp(user)
    before = redis.scripts_run()
    assert a.login(user, a.next_code(user, secret))[1].expect_ok() == "totp"
    # BeginAuthentication's read, and Verify's confirm; EndAuthentication asks nothing.
    assert redis.scripts_run() - before == 2
    for _ in range(2):
        before = redis.scripts_run()
        assert a.login(user, a.next_code(user, secret))[1].expect_ok() == "totp"
        assert redis.scripts_run() - before == 1  # Begin from the read cache: the confirm only


def test_reset_on_b_reaches_a_begin_answered_from_the_cache(fleet, test_users, redis):
    a, b = fleet
    user = "mfa-alice"
    secret = a.enroll_totp(user)
    warm_read_cache(a, user, secret)
    b.call("ResetUser", "s", user).expect_ok()
    # nullok rests on this answer: A's cache said "enrolled"; the reset's message made A read
    # Redis again.
    before = redis.scripts_run()
    a.login(user, a.next_code(user, secret))[0].expect_error("NotEnrolled")
    assert redis.scripts_run() - before == 1  # the read


def test_new_secret_on_b_is_asked_on_a_at_once(fleet, test_users, redis):
    a, b = fleet
    user = "mfa-alice"
    secret = a.enroll_totp(user)
    warm_read_cache(a, user, secret)
    b.call("DisableMethod", "sss", user, "totp", "").expect_ok()
    used_step = a._last_step[user]
    secret2 = b.enroll_totp(user)
    a._last_step[user] = max(a._last_step[user], used_step)  # the watermark stays
    # Had A kept its cached record, the new secret's code would be refused there.
    before = redis.scripts_run()
    assert a.login(user, a.next_code(user, secret2))[1].expect_ok() == "totp"
    assert redis.scripts_run() - before == 2  # the message made A read Redis again
    assert not fleet_refusals(a, user, "factor-changed")


def test_lockout_on_b_reaches_a_begin_answered_from_the_cache(fleet, test_users):
    a, b = fleet
    user = "mfa-bob"
    secret = a.enroll_totp(user)
    warm_read_cache(a, user, secret)
    lock_out(b, user)
    # Refused at Begin, no code asked: the lock's message reached A.
    locked_until_unlocked(a, b, user, secret)


def test_last_backup_code_used_on_b_reaches_a(fleet, test_users, redis):
    a, b = fleet
    user = "mfa-carol"
    codes = backup_codes(a, user)  # backup codes only
    assert a.login(user, codes[0])[1].expect_ok() == "backup"
    for code in codes[1:]:
        assert b.login(user, code)[1].expect_ok() == "backup"
    # No factor left: A answers from Redis, not from its cache's codes.
    a.login(user, codes[1])[0].expect_error("NotEnrolled")


def test_a_lost_subscription_forgets_the_cache(fleet, test_users, redis):
    a, _b = fleet
    user = "mfa-alice"
    secret = a.enroll_totp(user)
    warm_read_cache(a, user, secret)
    # Every subscribed connection dropped (messages may have been missed): until A has
    # subscribed again and read the user anew, its Begin reads Redis.
    redis.admin_cli("CLIENT", "KILL", "TYPE", "pubsub")
    before = redis.scripts_run()
    assert a.login(user, a.next_code(user, secret))[1].expect_ok() == "totp"
    # The read and the confirm (and perhaps the session subscribers' catch-up scripts).
    assert redis.scripts_run() - before >= 2
    # Both hosts subscribed again, to invalidations and to termination requests.
    wait_until(lambda: redis.admin_cli("PUBSUB", "NUMSUB", "mfad:invalidate").split()[-1] == "2"
               and len(redis.admin_cli("CLIENT", "LIST", "TYPE", "pubsub").splitlines()) == 4)
    assert a.login(user, a.next_code(user, secret))[1].expect_ok() == "totp"
    before = redis.scripts_run()
    assert a.login(user, a.next_code(user, secret))[1].expect_ok() == "totp"
    assert redis.scripts_run() - before == 1


def test_lockout_on_b_between_begin_and_verify_blocks_a(fleet, test_users, dialogues):
    a, b = fleet
    user = "mfa-bob"
    secret = a.enroll_totp(user)
    d = dialogues(a, user)
    # Meanwhile, a guesser locks the user out on B.
    lock_out(b, user)
    # A's cache still says "not locked"; Redis refuses the valid code all the same.
    d.verify(a.next_code(user, secret)).expect_error("RateLimited")
    rows = fleet_refusals(a, user, "locked")
    assert rows and rows[-1]["outcome"] == "denied", audit_rows(a, user=user)
    assert "locked out fleet-wide" in a.log_text()
    # Still locked on A, from its own cache now, and on B.
    locked_until_unlocked(a, b, user, secret)


def test_code_used_on_b_between_begin_and_verify_is_refused_on_a(fleet, test_users, dialogues):
    a, b = fleet
    user = "mfa-alice"
    secret = a.enroll_totp(user)
    d = dialogues(a, user)
    code = b.next_code(user, secret)
    assert b.login(user, code)[1].expect_ok() == "totp"
    # A's cache has the older watermark and accepts the code; the compare-and-set refuses it.
    d.verify(code).expect_error("BadCode")
    assert fleet_refusals(a, user, "replay-fleet")


def test_backup_code_used_on_b_between_begin_and_verify_is_refused_on_a(fleet, test_users,
                                                                         dialogues):
    a, b = fleet
    user = "mfa-alice"
    a.enroll_totp(user)
    codes = backup_codes(a, user)
    d = dialogues(a, user)
    assert b.login(user, codes[0])[1].expect_ok() == "backup"
    d.verify(codes[0]).expect_error("BadCode")
    assert fleet_refusals(a, user, "consumed-elsewhere")
    assert a.call("GetUser", "s", user).expect_ok()["backup_codes_left"] == 9
    # Once fleet-wide, whichever host comes first.
    d2 = dialogues(b, user)
    assert a.login(user, codes[1])[1].expect_ok() == "backup"
    d2.verify(codes[1]).expect_error("BadCode")


def test_factor_removed_on_b_between_begin_and_verify(fleet, test_users, dialogues):
    a, b = fleet
    user = "mfa-alice"
    secret = a.enroll_totp(user)
    d = dialogues(a, user)
    b.call("DisableMethod", "sss", user, "totp", "").expect_ok()
    d.verify(a.next_code(user, secret)).expect_error("BadCode")
    assert len(fleet_refusals(a, user, "factor-changed")) == 1
    # Re-enrolled (a new secret), then reset by an admin while A's login waits for its code.
    used_step = a._last_step[user]
    secret2 = b.enroll_totp(user)
    a._last_step[user] = max(a._last_step[user], used_step)  # A's cache took that step already
    d2 = dialogues(a, user)
    b.call("ResetUser", "s", user).expect_ok()
    d2.verify(a.next_code(user, secret2)).expect_error("BadCode")
    assert len(fleet_refusals(a, user, "factor-changed")) == 2
    a.login(user, a.next_code(user, secret2))[0].expect_error("NotEnrolled")


def test_failure_on_a_that_completes_a_fleet_lockout_says_so(fleet, test_users, dialogues):
    a, b = fleet
    user = "mfa-bob"
    secret = a.enroll_totp(user)
    d = dialogues(a, user)
    b.login(user, "000000")[1].expect_error("BadCode")
    b.login(user, "000001")[1].expect_error("BadCode")
    # A's cache counts one failure; Redis counts the third and locks the user.
    d.verify("000002").expect_error("RateLimited")
    rows = audit_rows(a, "auth.lockout", user)
    assert rows and rows[-1]["reason"] == "fleet-failures"
    b.login(user, b.next_code(user, secret))[0].expect_error("RateLimited")


def test_only_the_first_verify_reuses_what_begin_read(fleet, test_users, redis, dialogues):
    a, b = fleet
    user = "mfa-alice"
    a.enroll_totp(user)
    backup_codes(a, user)
    d = dialogues(a, user)
    before = redis.scripts_run()
    d.verify("000000").expect_error("BadCode")
    assert redis.scripts_run() - before == 1  # the confirm only
    # A new set of backup codes on B; the retry on A reads Redis again and knows it.
    codes = backup_codes(b, user)
    before = redis.scripts_run()
    assert d.verify(codes[0]).expect_ok() == "backup"
    assert redis.scripts_run() - before == 2


def test_redis_frozen_during_the_confirm_is_a_degraded_decision(fleet, test_users, redis,
                                                                dialogues):
    a, b = fleet
    user = "mfa-alice"
    secret = a.enroll_totp(user)
    code = a.next_code(user, secret)
    d = dialogues(a, user)       # BeginAuthentication read Redis: Verify goes straight to confirm
    redis.pause()
    try:
        assert d.verify(code).expect_ok() == "totp"   # decided from the cache, within Timeout
        rows = [r for r in audit_rows(a, "degraded", user)
                if audit_details(r).get("call") == "Verify"]
        assert rows and rows[-1]["outcome"] == "success", audit_rows(a, user=user)
        assert audit_details(rows[-1]).get("method") == "totp"
        assert rows[-1]["reason"] == "redis-unavailable"
    finally:
        redis.resume()
    wait_degraded(a, False)
    # The step used during the freeze reached Redis: B refuses the same code.
    b.login(user, code)[1].expect_error("BadCode")
