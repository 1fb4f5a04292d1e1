"""SMS in fleet mode (docs/fleet.md, "SMS"): two mfad instances (two private buses, two state
directories, one master key) sharing one real redis-server and one local Twilio (fake_twilio.py).
The send limits count every host's texts; a pending code lives in Redis as a keyed hash, so that
an enrollment texted by one host is confirmed on another, wrong tries on both add up, and a used
code is dead everywhere. With Redis away, login texts go on from the local cache on local limits,
each decision audited as degraded, and Redis learns of them when it is back. No number or code is
ever in Redis in clear."""

import concurrent.futures
import json
import os
import pwd
import re
import subprocess

import pytest

from conftest import call_spec, wait_until
from fleet_helpers import redis  # noqa: F401 (a fixture)
from fleet_helpers import REDIS_CLI, REDIS_USER, assert_last_refused_by_fleet, audit_details, \
    audit_rows, degraded, fleet_config, second_host, wait_degraded
from sms_helpers import clients, fake  # noqa: F401 (fixtures)
from sms_helpers import MASKED, PHONE, twilio_config

ALICE = "mfa-alice"
BOB = "mfa-bob"
CAROL = "mfa-carol"
OTHER_PHONE = "+15557650002"
THIRD_PHONE = "+15557650003"


@pytest.fixture
def fleet_factory(mfad_factory, build_dir, redis, fake):
    """start(max_failures=10, **sms_keys) -> (a, b): host A (the mfad fixture) and host B, one
    Redis, one fake Twilio, one master key, the same configuration."""
    hosts = []

    def start(max_failures=10, **sms):
        a = mfad_factory
        fleet_config(a, redis)
        a.set_config("Policy", "MaxFailures", max_failures)
        twilio_config(a, fake)
        for k, v in sms.items():
            a.set_config("SMS", k, v)
        a.start()
        host_b = second_host(a, build_dir, host_id=None)
        hosts.append(host_b)
        b = host_b.mfad
        b.start()
        wait_degraded(a, False)
        wait_degraded(b, False)
        return a, b
    yield start
    # Both daemons exit cleanly (under ASan: no error, no leak).
    for m in [mfad_factory] + [h.mfad for h in hosts]:
        if m.proc is not None and m.proc.poll() is None:
            code = m.stop()
            assert code == 0, m.log_text()[-4000:]
    for h in hosts:
        h.cleanup()


def begin_sms_enrollment(m, fake, user, phone=PHONE):
    """BeginSmsEnrollment on m (as root, an admin); returns the texted code."""
    n = len(fake.requests)
    m.call("BeginSmsEnrollment", "sss", user, phone, "").expect_ok()
    return fake.wait_code(n + 1)


def enroll_phone(m, fake, user, phone=PHONE):
    m.call("ConfirmSmsEnrollment", "ss", user, begin_sms_enrollment(m, fake, user, phone)).expect_ok()


def sms_login(c, fake, user):
    """BeginAuthentication and SendSmsCode on client c; returns (challenge, texted code)."""
    n = len(fake.requests)
    challenge, methods = c.begin(user)
    assert "sms" in methods, methods
    c.call("SendSmsCode", "s", challenge).expect_ok()
    return challenge, fake.wait_code(n + 1)


def wrong(code, i=1):
    return "%06d" % ((int(code) + i) % 1000000)


def rate_limited_rows(m, limit):
    return [r for r in audit_rows(m, "sms.failed")
            if r["reason"] == "rate-limited" and audit_details(r).get("limit") == limit]


def code_key(user, purpose):
    return f"mfad:user:{{{user}}}:sms:{purpose}"


def user_sends_key(user):
    return f"mfad:{{sms}}:sends:user:{user}"


def locked_until(redis, user):
    """The lockout in the user's state record (m1|HOST|COUNTER|W|B|cf|lc|lu|day|df|F|MAC)."""
    state = redis.cli("GET", f"mfad:user:{{{user}}}:state").strip().split("|")
    return int(state[7]) if len(state) == 12 else 0


def test_sends_on_a_and_b_add_up_to_one_limit(fleet_factory, fake, clients, test_users, redis):
    a, b = fleet_factory(MaxSendsPerWindow=3)
    enroll_phone(a, fake, ALICE)                   # text 1, on A
    ca, cb = clients(a), clients(b)
    ch_a, _ = sms_login(ca, fake, ALICE)           # text 2, on A
    ch_b, code_b = sms_login(cb, fake, ALICE)      # text 3, on B
    # A sent two texts only, but the fleet sent three: the shared counter refuses the fourth.
    msg = ca.call("SendSmsCode", "s", ch_a).expect_error("SmsRateLimited")
    assert "Too many SMS codes" in msg
    rows = rate_limited_rows(a, "user")
    assert rows and audit_details(rows[-1])["fleet"] == "shared", rows
    cb.call("SendSmsCode", "s", ch_b).expect_error("SmsRateLimited")
    assert rate_limited_rows(b, "user")
    assert len(fake.requests) == 3
    assert redis.cli("ZCARD", user_sends_key(ALICE)).strip() == "3"
    # The counters expire with the window: nothing grows forever.
    ttl = int(redis.cli("PTTL", user_sends_key(ALICE)).strip())
    assert 0 < ttl <= 600 * 1000, ttl
    # One live code per user fleet-wide (B's text replaced A's); the refusals took nothing from it.
    assert cb.call("Verify", "ss", ch_b, code_b).expect_ok() == "sms"


def test_phone_limit_counts_every_host_and_account(fleet_factory, fake, test_users):
    a, b = fleet_factory(MaxSendsPerPhone=2, MaxSendsPerWindow=5)
    enroll_phone(a, fake, ALICE)
    enroll_phone(b, fake, BOB)  # the same number, from the other host
    b.call("BeginSmsEnrollment", "sss", CAROL, PHONE, "").expect_error("SmsRateLimited")
    a.call("BeginSmsEnrollment", "sss", CAROL, PHONE, "").expect_error("SmsRateLimited")
    assert len(fake.requests) == 2
    assert rate_limited_rows(a, "phone") and rate_limited_rows(b, "phone")
    # Another number is fine.
    begin_sms_enrollment(a, fake, CAROL, OTHER_PHONE)


def test_global_limit_is_fleet_wide(fleet_factory, fake, test_users):
    """MaxSendsGlobal protects the provider bill: it counts the fleet's texts, not one host's."""
    a, b = fleet_factory(MaxSendsGlobal=2)
    begin_sms_enrollment(a, fake, ALICE, PHONE)
    begin_sms_enrollment(b, fake, BOB, OTHER_PHONE)
    a.call("BeginSmsEnrollment", "sss", CAROL, THIRD_PHONE, "").expect_error("SmsRateLimited")
    assert rate_limited_rows(a, "global")
    assert len(fake.requests) == 2


def test_enroll_on_a_confirm_on_b(fleet_factory, fake, clients, test_users, redis):
    a, b = fleet_factory()
    r = a.mfactl("--json", "enroll", "sms", ALICE, "--phone", PHONE)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"masked_phone": MASKED}
    code = fake.wait_code(1)
    # The pending code is in Redis as a keyed hash with the code's lifetime.
    ttl = int(redis.cli("PTTL", code_key(ALICE, "enroll")).strip())
    assert 590 * 1000 < ttl <= 600 * 1000, ttl
    r = b.mfactl("confirm", "sms", ALICE, code)
    assert r.returncode == 0, r.stderr + b.log_text()[-3000:]
    for m in (a, b):
        info = m.call("GetUser", "s", ALICE).expect_ok()
        assert info["methods"] == ["sms"] and info["pending"] == [], info
        assert info["masked_phone"] == MASKED
    assert redis.cli("EXISTS", code_key(ALICE, "enroll")).strip() == "0"
    # Logins by SMS on either host.
    for m in (a, b):
        c = clients(m)
        challenge, login_code = sms_login(c, fake, ALICE)
        assert c.call("Verify", "ss", challenge, login_code).expect_ok() == "sms"


def test_wrong_tries_on_a_and_b_count_toward_one_limit(fleet_factory, fake, test_users, redis):
    a, b = fleet_factory(MaxAttemptsPerCode=3)
    code = begin_sms_enrollment(a, fake, ALICE)
    a.call("ConfirmSmsEnrollment", "ss", ALICE, wrong(code, 1)).expect_error("BadCode")
    b.call("ConfirmSmsEnrollment", "ss", ALICE, wrong(code, 2)).expect_error("BadCode")
    assert redis.cli("HGET", code_key(ALICE, "enroll"), "a").strip() == "2"
    # The third wrong try, on A, is the code's last: it is dead on both hosts.
    a.call("ConfirmSmsEnrollment", "ss", ALICE, wrong(code, 3)).expect_error("BadCode")
    assert redis.cli("EXISTS", code_key(ALICE, "enroll")).strip() == "0"
    b.call("ConfirmSmsEnrollment", "ss", ALICE, code).expect_error("BadCode")
    a.call("ConfirmSmsEnrollment", "ss", ALICE, code).expect_error("BadCode")
    assert a.call("GetUser", "s", ALICE).expect_ok()["pending"] == ["sms"]


def test_code_used_on_one_host_is_dead_on_the_other(fleet_factory, fake, test_users, redis):
    a, b = fleet_factory()
    code = begin_sms_enrollment(a, fake, ALICE)
    factors = f"mfad:user:{{{ALICE}}}:factors"
    pending = redis.cli("HGET", factors, "sms:pending").strip()
    assert pending
    b.call("ConfirmSmsEnrollment", "ss", ALICE, code).expect_ok()
    # A, which texted the code and still has it in its cache, learns from Redis that it was used.
    a.call("ConfirmSmsEnrollment", "ss", ALICE, code).expect_error("NoPendingEnrollment")
    # The phone put back pending by hand (the record of before): not a record the fleet's state
    # vouches for any more, refused as an attack (issue 16), never a way to use the code again.
    redis.cli("HSET", factors, "sms:pending", pending)
    redis.cli("HDEL", factors, "sms")
    a.call("ConfirmSmsEnrollment", "ss", ALICE, code).expect_error("NotAllowed")
    assert [r for r in audit_rows(a, "fleet.record-rejected", ALICE) if r["reason"] == "bad-mac"]


def test_step_up_code_texted_on_a_works_once_on_b(fleet_factory, fake, test_users, redis):
    """SendStepUpCode (issue 19): the code is the fleet's, like a login code: texted by A, good on
    B once, dead on A afterwards; with Redis away no step-up text goes out."""
    a, b = fleet_factory()
    enroll_phone(a, fake, ALICE)
    alice = test_users[ALICE]
    n = len(fake.requests)
    assert a.call("SendStepUpCode", "s", ALICE, user=alice).expect_ok() == MASKED
    code = fake.wait_code(n + 1)
    assert redis.cli("EXISTS", f"mfad:user:{{{ALICE}}}:sms:step-up").strip() == "1"
    codes = b.call("GenerateBackupCodes", "ss", ALICE, code, user=alice).expect_ok()
    assert len(codes) == 10
    a.call("DisableMethod", "sss", ALICE, "sms", code, user=alice).expect_error("BadCode")
    assert "sms" in a.call("GetUser", "s", ALICE).expect_ok()["methods"]

    redis.stop()
    a.call("SendStepUpCode", "s", ALICE, user=alice).expect_error("StorageFailure")
    assert len(fake.requests) == n + 1


def test_a_login_code_is_used_once_fleet_wide(fleet_factory, fake, clients, test_users, redis):
    """The login challenge is one host's; the code's state is the fleet's: a code that Redis no
    longer holds as live (used, spent or replaced elsewhere) is refused even by the host that
    texted it."""
    a, _b = fleet_factory()
    enroll_phone(a, fake, ALICE)
    c = clients(a)
    challenge, code = sms_login(c, fake, ALICE)
    assert redis.cli("HGET", code_key(ALICE, "login"), "a").strip() == "0"
    c.call("Verify", "ss", challenge, wrong(code)).expect_error("BadCode")
    assert redis.cli("HGET", code_key(ALICE, "login"), "a").strip() == "1"
    # Used elsewhere: the live code in Redis is gone (as the use script leaves it).
    assert redis.cli("DEL", code_key(ALICE, "login")).strip() == "1"
    c.call("Verify", "ss", challenge, code).expect_error("BadCode")
    assert_last_refused_by_fleet(a, ALICE, "consumed-elsewhere")
    # A new text gives a code that works, once.
    challenge, code = sms_login(c, fake, ALICE)
    assert c.call("Verify", "ss", challenge, code).expect_ok() == "sms"
    assert redis.cli("EXISTS", code_key(ALICE, "login")).strip() == "0"


def test_concurrent_confirms_on_two_hosts_let_one_in(fleet_factory, fake, test_users):
    a, b = fleet_factory(MaxSendsPerWindow=10)
    for _ in range(3):
        a.call("ResetUser", "s", ALICE).expect_ok()
        code = begin_sms_enrollment(a, fake, ALICE)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(m.calls, [call_spec("ConfirmSmsEnrollment", "ss", ALICE, code)])
                       for m in (a, b)]
            results = [f.result()[0] for f in futures]
        assert sum(1 for r in results if r.ok) == 1, results
        for r in results:
            if not r.ok:
                assert r.error in ("org.mfad1.Error.BadCode", "org.mfad1.Error.AlreadyEnrolled",
                                   "org.mfad1.Error.NoPendingEnrollment"), r


def test_redis_down_sms_goes_on_locally_and_reconciles(fleet_factory, fake, clients, test_users,
                                                       redis):
    a, b = fleet_factory(MaxSendsPerWindow=4, MaxAttemptsPerCode=3)
    enroll_phone(a, fake, ALICE)                           # text 1 (A)
    ca, cb = clients(a), clients(b)
    ch, code = sms_login(cb, fake, ALICE)                  # text 2 (B)
    assert cb.call("Verify", "ss", ch, code).expect_ok() == "sms"
    ch_online, code_online = sms_login(ca, fake, ALICE)    # text 3 (A), typed after the outage

    redis.stop()
    # A code texted before the outage works once, from the cache.
    assert ca.call("Verify", "ss", ch_online, code_online).expect_ok() == "sms"
    assert degraded(a)
    # A text during the outage, on local limits; a wrong try, then the right code.
    ch_off, code_off = sms_login(ca, fake, ALICE)          # text 4 (A, degraded)
    ca.call("Verify", "ss", ch_off, wrong(code_off)).expect_error("BadCode")
    assert ca.call("Verify", "ss", ch_off, code_off).expect_ok() == "sms"
    # Local limits know the fleet's texts as they were (B's text 2 included): a fifth is refused.
    ch5, _ = ca.begin(ALICE)
    ca.call("SendSmsCode", "s", ch5).expect_error("SmsRateLimited")
    assert len(fake.requests) == 4
    rows = audit_rows(a, "degraded", ALICE)
    calls = {(audit_details(r).get("call"), r["outcome"], audit_details(r).get("method"))
             for r in rows}
    assert ("SendSmsCode", "success", "sms") in calls, rows
    assert ("Verify", "success", "sms") in calls, rows
    assert ("Verify", "failure", None) in calls, rows
    assert ("SendSmsCode", "denied", None) in calls, rows
    assert all(r["reason"] == "redis-unavailable" for r in rows)
    # Enrollment waits for Redis.
    a.call("BeginSmsEnrollment", "sss", BOB, OTHER_PHONE, "").expect_error("StorageFailure")
    assert len(fake.requests) == 4

    redis.start()
    wait_degraded(a, False)
    wait_degraded(b, False)
    assert a.sql("SELECT count(*) FROM fleet_reconcile").strip() == "0"
    # The text sent offline is in the shared counters: B may not send a fifth either.
    assert redis.cli("ZCARD", user_sends_key(ALICE)).strip() == "4"
    ch_b, _ = cb.begin(ALICE)
    cb.call("SendSmsCode", "s", ch_b).expect_error("SmsRateLimited")
    # Codes used offline stay used: no live login code is left in Redis.
    assert redis.cli("EXISTS", code_key(ALICE, "login")).strip() == "0"
    assert any(r["reason"] == "redis-available" for r in audit_rows(a, "degraded"))


def test_an_offline_code_still_pending_reaches_redis(fleet_factory, fake, clients, test_users,
                                                     redis):
    a, _b = fleet_factory()
    enroll_phone(a, fake, ALICE)
    c = clients(a)
    redis.stop()
    ch, code = sms_login(c, fake, ALICE)  # texted while Redis is away
    c.call("Verify", "ss", ch, wrong(code)).expect_error("BadCode")
    redis.start()
    wait_degraded(a, False)
    # Redis learned the code (its keyed hash), its expiry and the wrong try...
    assert redis.cli("HGET", code_key(ALICE, "login"), "a").strip() == "1"
    assert int(redis.cli("PTTL", code_key(ALICE, "login")).strip()) > 0
    # ... and the code, typed now, is used exactly once.
    assert c.call("Verify", "ss", ch, code).expect_ok() == "sms"
    assert redis.cli("EXISTS", code_key(ALICE, "login")).strip() == "0"


def redis_raw(redis, *args):
    r = subprocess.run([REDIS_CLI, "-s", redis.socket, "--user", REDIS_USER, "--pass",
                        redis.password, "--no-auth-warning", *args], capture_output=True,
                       timeout=10)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode("latin-1")


def test_no_phone_number_or_code_in_clear_in_redis(fleet_factory, fake, clients, test_users,
                                                   redis):
    a, b = fleet_factory(MaxAttemptsPerCode=5)
    code = begin_sms_enrollment(a, fake, ALICE)
    b.call("ConfirmSmsEnrollment", "ss", ALICE, wrong(code)).expect_error("BadCode")
    b.call("ConfirmSmsEnrollment", "ss", ALICE, code).expect_ok()
    enroll_phone(b, fake, BOB, OTHER_PHONE)
    cb = clients(b)
    ch, login_code = sms_login(cb, fake, ALICE)
    cb.call("Verify", "ss", ch, wrong(login_code)).expect_error("BadCode")
    ca = clients(a)
    sms_login(ca, fake, BOB)  # left live: its code is in Redis now
    codes = [fake.code(i) for i in range(len(fake.requests))]
    assert len(codes) == 4

    keys = [k for k in redis_raw(redis, "--raw", "--scan", "--pattern", "*").splitlines() if k]
    assert code_key(BOB, "login") in keys and user_sends_key(ALICE) in keys, keys
    assert any(":sends:phone:" in k for k in keys), keys
    seen = []
    for key in keys:
        kind = redis_raw(redis, "--raw", "TYPE", key).strip()
        read = {"string": ["GET"], "hash": ["HGETALL"], "set": ["SMEMBERS"],
                "zset": ["ZRANGE", key, "0", "-1", "WITHSCORES"],
                "list": ["LRANGE", key, "0", "-1"]}
        cmd = read.get(kind, ["TYPE"])
        args = cmd if len(cmd) > 1 else [cmd[0], key]
        seen.append(key + "\n" + redis_raw(redis, "--raw", *args) + redis_raw(redis, "DUMP", key))
    # ... and the server's own files (the append-only log holds every write).
    for root, _dirs, files in os.walk(redis.dir):
        for name in files:
            path = os.path.join(root, name)
            if os.path.isfile(path):  # not the socket
                with open(path, "rb") as f:
                    seen.append(f.read().decode("latin-1"))
    text = "\n".join(seen)
    for phone in (PHONE, OTHER_PHONE):
        assert phone not in text and phone[1:] not in text and phone[-7:] not in text
    for c in codes:
        # A code stands alone (not inside a hex hash or a microsecond time, where six given
        # digits may turn up by chance).
        assert not re.search(r"(?<![0-9a-f])" + c + r"(?![0-9a-f])", text), c


def test_a_user_locked_fleet_wide_gets_no_text(fleet_factory, fake, clients, test_users, redis):
    """Failures on B and on A add up to a lockout in Redis after B read the user's state: B's
    challenge asks for a text, and B refuses it as it refuses a locked user's text by itself
    (RateLimited, sms.failed / locked): a lockout stops the texts the fleet pays for."""
    a, b = fleet_factory(max_failures=3)
    enroll_phone(a, fake, ALICE)                          # text 1
    ca, cb = clients(a), clients(b)
    ch_b, _ = cb.begin(ALICE)
    cb.call("Verify", "ss", ch_b, "000000").expect_error("BadCode")     # failure 1, on B
    ch_a, _ = ca.begin(ALICE)
    ca.call("Verify", "ss", ch_a, "000000").expect_error("BadCode")     # failure 2, on A
    ca.call("Verify", "ss", ch_a, "000000").expect_error("RateLimited")  # 3: locked fleet-wide
    assert locked_until(redis, ALICE) > 0
    assert b.sql(f"SELECT locked_until FROM limits WHERE user = 'uid/{pwd.getpwnam(ALICE).pw_uid}'").strip() in ("", "0")

    msg = cb.call("SendSmsCode", "s", ch_b).expect_error("RateLimited")
    assert "Too many failed attempts" in msg, msg
    assert len(fake.requests) == 1
    assert redis.cli("ZCARD", user_sends_key(ALICE)).strip() == "1"  # nothing counted
    assert redis.cli("EXISTS", code_key(ALICE, "login")).strip() == "0"
    rows = [r for r in audit_rows(b, "sms.failed", ALICE) if r["reason"] == "locked"]
    assert len(rows) == 1 and rows[0]["outcome"] == "denied", rows
    assert audit_details(rows[0])["fleet"] == "refused"
    assert "+1555" not in rows[0]["details"]  # the phone masked, as everywhere
    # B's cache took the lockout: B refuses the next text by itself, Redis or not.
    assert int(b.sql(f"SELECT locked_until FROM limits WHERE user = 'uid/{pwd.getpwnam(ALICE).pw_uid}'").strip()) > 0
    cb.call("SendSmsCode", "s", ch_b).expect_error("RateLimited")
    assert len(fake.requests) == 1
    # An admin unlock lets texts go again, on either host.
    a.call("Unlock", "s", ALICE).expect_ok()
    challenge, code = sms_login(cb, fake, ALICE)
    assert cb.call("Verify", "ss", challenge, code).expect_ok() == "sms"


def sms_login_then_stale(c, fake, user):
    """A login code texted on c's challenge, and one wrong try at it: the PAM module's retry
    after a typo, so that the next Verify reads the user's shared state again (docs/fleet.md)."""
    challenge, code = sms_login(c, fake, user)
    c.call("Verify", "ss", challenge, wrong(code)).expect_error("BadCode")
    return challenge, code


@pytest.mark.parametrize("removal", ["ResetUser", "DisableMethod"])
def test_removing_the_phone_kills_its_codes_fleet_wide(fleet_factory, fake, clients, test_users,
                                                        redis, removal):
    """A code B texted before A removed the phone (an admin's ResetUser or DisableMethod sms)
    is dead in Redis in the same step: when the phone is enrolled again, B's challenge, which
    still holds the code in its cache, does not take it."""
    a, b = fleet_factory(MaxSendsPerWindow=10)
    enroll_phone(a, fake, ALICE)
    cb = clients(b)
    ch_b, code = sms_login_then_stale(cb, fake, ALICE)
    begin_sms_enrollment(b, fake, BOB)  # a pending enrollment code
    assert redis.cli("EXISTS", code_key(ALICE, "login")).strip() == "1"
    assert redis.cli("EXISTS", code_key(BOB, "enroll")).strip() == "1"

    for user in (ALICE, BOB):
        if removal == "ResetUser":
            a.call("ResetUser", "s", user).expect_ok()
        else:
            a.call("DisableMethod", "sss", user, "sms", "").expect_ok()
    for key in (code_key(ALICE, "login"), code_key(ALICE, "enroll"), code_key(BOB, "enroll")):
        assert redis.cli("EXISTS", key).strip() == "0", key
    assert a.sql(f"SELECT count(*) FROM sms_codes WHERE user IN ('{ALICE}', '{BOB}')"
                 ).strip() == "0"

    enroll_phone(a, fake, ALICE)  # the same phone again
    cb.call("Verify", "ss", ch_b, code).expect_error("BadCode")
    assert_last_refused_by_fleet(b, ALICE, "consumed-elsewhere")
    # New texts work as ever.
    challenge, fresh = sms_login(cb, fake, ALICE)
    assert cb.call("Verify", "ss", challenge, fresh).expect_ok() == "sms"


def deny_code_writes(redis, user):
    """The mfad ACL user may read but no longer write user's SMS code keys: a write of them
    fails as it would if Redis went away between the call's read and its write."""
    tag = "mfad:user:{" + user + "}:"
    assert user.startswith("mfa-a")  # every other test user's keys stay writable
    # (A key needs one pattern that grants all a command asks of it: reading and writing.)
    r = redis.admin_cli("ACL", "SETUSER", REDIS_USER, "resetkeys", "~mfad:[^u]*",
                        "~mfad:user:{mfa-[^a]*", "~" + tag + "[^s]*", "~" + tag + "se*", "~" + tag + "st*",
                        "%R~" + tag + "sm*")
    assert r.strip() == "OK", r


def test_codes_of_a_removal_redis_missed_die_on_reconciliation(fleet_factory, fake, clients,
                                                               test_users, redis):
    """ResetUser on A reads Redis, then its write fails: A answers StorageFailure, its cache
    has no code left, and it queues their death; when Redis is back, A kills the codes texted
    before the reset (that one texted after lives: test_fleet_sms.cpp)."""
    a, b = fleet_factory(MaxSendsPerWindow=10)
    enroll_phone(a, fake, ALICE)
    cb = clients(b)
    ch_b, code = sms_login_then_stale(cb, fake, ALICE)
    deny_code_writes(redis, ALICE)
    a.call("ResetUser", "s", ALICE).expect_error("StorageFailure")
    wait_degraded(a, True)
    assert redis.cli("EXISTS", code_key(ALICE, "login")).strip() == "1"
    # The queue commits with the loop's next batch.
    assert wait_until(lambda: a.sql("SELECT kind FROM fleet_reconcile").split() == ["sms-drop"],
                      timeout=10), a.sql("SELECT * FROM fleet_reconcile")
    assert "NOPERM" in a.log_text()
    assert a.sql(f"SELECT count(*) FROM sms_codes WHERE user = 'uid/{pwd.getpwnam(ALICE).pw_uid}'").strip() == "0"

    redis.stop()
    redis.start()  # its own configuration again: the ACL as before
    wait_degraded(a, False)
    wait_degraded(b, False)
    assert redis.cli("EXISTS", code_key(ALICE, "login")).strip() == "0"
    cb.call("Verify", "ss", ch_b, code).expect_error("BadCode")
    # The reset itself did not happen in Redis: the admin, told so, runs it again.
    assert a.call("GetUser", "s", ALICE).expect_ok()["methods"] == ["sms"]
    a.call("ResetUser", "s", ALICE).expect_ok()
    assert b.call("GetUser", "s", ALICE).expect_ok()["methods"] == []
