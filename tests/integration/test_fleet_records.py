"""Fleet mode without blind trust (issue 16; docs/fleet.md, "Authenticated records"): whoever can
write to Redis without the fleet's master key (the Redis password, a Redis administrator, a
restored backup) cannot revive a used backup code, lift a lockout, roll a replay watermark back or
move a record from one user to another. Each attack is done here with redis-cli, as such an
attacker would; each is refused (the login is denied, never decided as if the record were
absent), audited as fleet.record-rejected, and signalled. Degraded mode is stricter than normal:
"no factor" is not trusted for a user the cache has not confirmed, and backup codes wait."""

import os
import re
import secrets
import subprocess

import pytest

from fleet_helpers import redis  # noqa: F401 (a fixture)
from fleet_helpers import (REDIS_CLI, audit_details, audit_rows, fleet_config, second_host,
                           wait_degraded)

MAX_FAILURES = 3


@pytest.fixture
def fleet(mfad_factory, build_dir, redis):
    a = mfad_factory
    fleet_config(a, redis)
    a.set_config("Policy", "MaxFailures", MAX_FAILURES)
    a.start()
    host_b = second_host(a, build_dir)
    b = host_b.mfad
    b._last_step = a._last_step
    b.start()
    wait_degraded(a, False)
    wait_degraded(b, False)
    yield a, b
    host_b.cleanup()


def key(user, what):
    return f"mfad:user:{{{user}}}:{what}"


def state_fields(value):
    """m1|HOST|COUNTER|W|B|cf|lc|lu|day|df|F|MAC, split."""
    parts = value.split("|")
    assert parts[0] == "m1" and len(parts) == 12, value
    return parts


def rejected(m, user, reason=None):
    rows = audit_rows(m, "fleet.record-rejected", user)
    return [r for r in rows if reason is None or r["reason"] == reason]


def assert_refused_as_attack(m, user, code, reason):
    begin, verify = m.login(user, code)
    err = begin if not begin.ok else verify
    assert err.error == "org.mfad1.Error.NotAllowed", (err, m.log_text()[-3000:])
    msg = err.message
    assert "failed verification" in msg
    rows = rejected(m, user, reason)
    assert rows, audit_rows(m, "fleet.record-rejected")
    assert rows[-1]["outcome"] == "denied"


def test_records_in_redis_are_authenticated(fleet, test_users, redis):
    a, _b = fleet
    user = "mfa-alice"
    a.enroll_totp(user)
    state = redis.cli("GET", key(user, "state")).strip()
    fields = state_fields(state)
    assert fields[1] == "host-a"                       # the writing host's id
    assert re.fullmatch(r"[0-9a-f]{64}", fields[-1])   # its MAC
    factor = redis.cli("HGET", key(user, "factors"), "totp").strip()
    assert factor.startswith("m1|host-a|") and re.fullmatch(r"[0-9a-f]{64}", factor[-64:])


def test_revived_backup_code_is_refused_and_audited(fleet, test_users, redis):
    a, b = fleet
    user = "mfa-alice"
    a.enroll_totp(user)
    codes = a.call("GenerateBackupCodes", "ss", user, "").expect_ok()
    before = redis.cli("GET", key(user, "state")).strip()
    unused_before = redis.cli("SMEMBERS", key(user, "backup")).split()  # the release before's set
    assert a.login(user, codes[0])[1].expect_ok() == "backup"
    assert b.call("GetUser", "s", user).expect_ok()["backup_codes_left"] == 9
    # The attack on the release before: the used code's hash put back into the set (which made it
    # work again on both hosts); nobody reads that set now.
    for member in unused_before:
        redis.cli("SADD", key(user, "backup"), member)
    # Today's: the state record from before the code was used, put back (a replay).
    redis.cli("SET", key(user, "state"), before)
    assert_refused_as_attack(a, user, codes[0], "rolled-back")
    assert_refused_as_attack(b, user, codes[0], "rolled-back")
    # The used code's hash spliced into the current record: its MAC no longer matches.
    fields = state_fields(before)
    fields[2] = str(int(fields[2]) + 5)
    redis.cli("SET", key(user, "state"), "|".join(fields))
    assert_refused_as_attack(a, user, codes[0], "bad-mac")


def dump(redis, k):
    """DUMP of k, as the default user (binary: redis-cli --raw adds a newline)."""
    r = subprocess.run([REDIS_CLI, "-s", redis.socket, "--pass", redis.admin_password,
                        "--no-auth-warning", "--raw", "DUMP", k], capture_output=True, timeout=10)
    assert r.returncode == 0 and len(r.stdout) > 1, r
    return r.stdout[:-1]


def restore(redis, k, payload):
    """RESTORE of a DUMP over k (redis-cli -x puts the payload last: no REPLACE after it)."""
    redis.admin_cli("DEL", k)
    r = subprocess.run([REDIS_CLI, "-s", redis.socket, "--pass", redis.admin_password,
                        "--no-auth-warning", "-x", "RESTORE", k, "0"],
                       input=payload, capture_output=True, timeout=10)
    assert r.stdout.strip() == b"OK", r


def test_rolled_back_state_is_refused_after_a_restart(fleet, test_users, redis):
    """The high-water mark survives a restart (SQLite): an older copy of the state, put back while
    the host was down, does not reopen the backup code it used."""
    a, _b = fleet
    user = "mfa-alice"
    a.enroll_totp(user)
    codes = a.call("GenerateBackupCodes", "ss", user, "").expect_ok()
    before = dump(redis, key(user, "state"))
    assert a.login(user, codes[0])[1].expect_ok() == "backup"
    a.stop()
    restore(redis, key(user, "state"), before)
    a.start()
    wait_degraded(a, False)
    assert_refused_as_attack(a, user, codes[0], "rolled-back")
    assert audit_details(rejected(a, user, "rolled-back")[-1])["when"] == "read"


def test_zeroed_lockout_is_refused_and_audited(fleet, test_users, redis):
    a, b = fleet
    user = "mfa-bob"
    secret = a.enroll_totp(user)
    for bad in ("000000", "000001", "000002"):
        a.login(user, bad)
    b.login(user, b.next_code(user, secret))[0].expect_error("RateLimited")
    # Lift the lockout: the release before's hash, then the counters in the record itself.
    redis.cli("HSET", key(user, "limits"), "cf", "0", "lc", "0", "lu", "0")
    b.login(user, b.next_code(user, secret))[0].expect_error("RateLimited")
    fields = state_fields(redis.cli("GET", key(user, "state")).strip())
    fields[7] = "0"  # lu
    redis.cli("SET", key(user, "state"), "|".join(fields))
    assert_refused_as_attack(b, user, b.next_code(user, secret), "bad-mac")
    # Deleting the record is no better: hosts that saw it know it existed.
    redis.cli("DEL", key(user, "state"), key(user, "factors"))
    assert_refused_as_attack(a, user, a.next_code(user, secret), "rolled-back")
    assert rejected(a, user) and rejected(b, user)
    # The way back: an admin's reset writes a fresh state over what failed; the user enrolls
    # again, and every host takes the new records.
    a.call("ResetUser", "s", user).expect_ok()
    secret = a.enroll_totp(user)
    assert b.login(user, b.next_code(user, secret))[1].expect_ok() == "totp"
    assert a.login(user, a.next_code(user, secret))[1].expect_ok() == "totp"


def test_zeroed_watermark_does_not_reopen_a_used_code(fleet, test_users, redis):
    a, b = fleet
    user = "mfa-alice"
    secret = a.enroll_totp(user)
    code = a.next_code(user, secret)
    assert a.login(user, code)[1].expect_ok() == "totp"
    # The release before's key, and the watermark in the record (B never read the user).
    redis.cli("SET", key(user, "watermark"), "0")
    fields = state_fields(redis.cli("GET", key(user, "state")).strip())
    fields[3] = "0"
    redis.cli("SET", key(user, "state"), "|".join(fields))
    assert_refused_as_attack(b, user, code, "bad-mac")


def test_forged_and_copied_records_are_refused_and_audited(fleet, test_users, redis):
    a, b = fleet
    alice, bob = "mfa-alice", "mfa-bob"
    a.enroll_totp(alice)
    bob_secret = a.enroll_totp(bob)
    # Alice's sealed record copied over Bob's: bound to its key, it does not verify.
    redis.cli("HSET", key(bob, "factors"), "totp",
              redis.cli("HGET", key(alice, "factors"), "totp").strip())
    assert_refused_as_attack(b, bob, b.next_code(bob, bob_secret), "bad-mac")
    details = audit_details(rejected(b, bob)[-1])
    assert details["key"].endswith(key(bob, "factors") + "#totp")
    # A record in the release before's format (no MAC): refused, not "not enrolled".
    carol = "mfa-carol"
    redis.cli("HSET", key(carol, "factors"), "totp", "1|0|00|00")
    begin, _ = a.login(carol, "123456")
    begin.expect_error("NotAllowed")
    assert rejected(a, carol, "legacy-record")


def test_degraded_nullok_denies_a_user_the_cache_has_not_confirmed(fleet, test_users, redis):
    a, b = fleet
    stale, confirmed = "mfa-alice", "mfa-bob"
    # A read "confirmed" before the outage: still not enrolled, trusted.
    a.login(confirmed, "123456")[0].expect_error("NotEnrolled")
    b.enroll_totp(stale)  # A never heard of it
    redis.stop()
    begin, _ = a.login(stale, "123456")
    msg = begin.expect_error("NotAllowed")
    assert "cannot confirm" in msg
    rows = [r for r in audit_rows(a, "degraded", stale) if r["reason"] == "unconfirmed-not-enrolled"]
    assert rows and rows[-1]["outcome"] == "denied"
    a.login(confirmed, "123456")[0].expect_error("NotEnrolled")
    redis.start()
    wait_degraded(a, False)


def test_degraded_backup_code_is_refused_unconsumed(fleet, test_users, redis):
    a, b = fleet
    user = "mfa-alice"
    a.enroll_totp(user)
    codes = a.call("GenerateBackupCodes", "ss", user, "").expect_ok()
    assert a.call("GetUser", "s", user).expect_ok()["backup_codes_left"] == 10
    redis.stop()
    msg = a.login(user, codes[0])[1].expect_error("BadCode")
    assert "not accepted" in msg
    assert [r for r in audit_rows(a, "auth.failure", user) if r["reason"] == "degraded-backup-code"]
    redis.start()
    wait_degraded(a, False)
    wait_degraded(b, False)
    assert b.login(user, codes[0])[1].expect_ok() == "backup"


def test_degraded_failure_limit_is_a_fraction_of_the_fleets(mfad_factory, redis, test_users):
    a = mfad_factory
    fleet_config(a, redis)
    a.set_config("Policy", "MaxFailures", 4)
    a.set_config("Redis", "DegradedFailuresPercent", 50)
    a.start()
    wait_degraded(a, False)
    user = "mfa-alice"
    a.enroll_totp(user)
    redis.stop()
    a.login(user, "000000")[1].expect_error("BadCode")
    a.login(user, "000001")[1].expect_error("RateLimited")  # 2 of 4 while degraded
    redis.start()
    wait_degraded(a, False)


def test_per_host_acl_line_runs_a_host_and_refuses_the_rest(mfad_factory, build_dir, redis,
                                                            test_users, tmp_path):
    out = subprocess.run([os.path.join(build_dir, "mfactl", "mfactl"), "fleet", "acl", "host-a"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip()
    assert line.startswith("ACL SETUSER mfad-host-a reset on ") and ">" not in line
    assert redis.admin_cli(*line.split()).strip() == "OK"
    password = secrets.token_hex(16)
    assert redis.admin_cli("ACL", "SETUSER", "mfad-host-a", ">" + password).strip() == "OK"
    password_file = tmp_path / "host-a.password"
    password_file.write_text(password + "\n")
    os.chmod(password_file, 0o600)
    a = mfad_factory
    fleet_config(a, redis, password_file=str(password_file))
    a.set_config("Redis", "User", "mfad-host-a")
    a.start()
    wait_degraded(a, False)
    user = "mfa-alice"
    secret = a.enroll_totp(user)
    codes = a.call("GenerateBackupCodes", "ss", user, "").expect_ok()
    assert a.login(user, a.next_code(user, secret))[1].expect_ok() == "totp"
    assert a.login(user, codes[0])[1].expect_ok() == "backup"
    assert not [r for r in audit_rows(a, "degraded") if r["outcome"] != "info"]

    def as_host(*args):
        r = subprocess.run(["redis-cli", "-s", redis.socket, "--user", "mfad-host-a", "--pass",
                            password, "--no-auth-warning", *args],
                           capture_output=True, text=True, timeout=10)
        return r.stdout + r.stderr

    assert "NOPERM" in as_host("GET", "mfad:host:{host-b}:sessions")  # another host's registry
    assert "NOPERM" in as_host("HGETALL", "other:user:{x}:factors")     # outside the prefix
    assert "NOPERM" in as_host("KEYS", "*")
    assert "NOPERM" in as_host("FLUSHALL")
    assert "NOPERM" in as_host("CONFIG", "GET", "requirepass")
