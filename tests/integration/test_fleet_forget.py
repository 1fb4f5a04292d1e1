"""Forgetting a person in fleet mode (issue 20; docs/fleet.md, "Forgetting a person"): the
person's records in Redis are sealed under their own data key, which Redis holds wrapped under a
key of the fleet's; `mfactl forget` on one host deletes that key and every record from Redis,
leaves an authenticated tombstone (no name in it), and every host erases its copy of the key and
its own records. Afterwards no host and no Redis key holds the name, the phone or a record that
opens: a copy of the records taken from Redis before the forget, put back, no longer opens."""

import hashlib
import json
import os
import pwd
import secrets
import subprocess

from conftest import wait_until
from fleet_helpers import redis  # noqa: F401 (a fixture)
from fleet_helpers import REDIS_CLI, REDIS_USER, audit_details, audit_rows, fleet_config, second_host, wait_degraded
from sms_helpers import fake  # noqa: F401 (a fixture)
from sms_helpers import MASKED, PHONE, twilio_config

ALICE = "mfa-alice"
BOB = "mfa-bob"
PHONE_DIGITS = PHONE.lstrip("+")


def key(user, what):
    return f"mfad:user:{{{user}}}:{what}"


def data_key_file(m, user):
    account = f"uid/{pwd.getpwnam(user).pw_uid}"
    return os.path.join(m.state_dir, "data-keys",
                        hashlib.sha256(account.encode()).hexdigest() + ".key")


def dump(db_path):
    r = subprocess.run(["sqlite3", "-readonly", db_path, ".dump"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def redis_text(redis):
    """Every key's name and DUMP (its serialized value, bytes as latin-1), as one text."""
    names = redis.cli("--scan").split()
    dumps = []
    for name in names:
        r = subprocess.run([REDIS_CLI, "-s", redis.socket, "--user", REDIS_USER, "--pass",
                            redis.password, "--no-auth-warning", "--raw", "DUMP", name],
                           capture_output=True, timeout=10)
        assert r.returncode == 0, r.stderr
        dumps.append(r.stdout.decode("latin-1"))
    return "\n".join(names + dumps)


def test_forget_on_one_host_shreds_on_every_host(mfad_factory, build_dir, redis, fake,
                                                 test_users):  # noqa: F811
    a = mfad_factory
    fleet_config(a, redis)
    twilio_config(a, fake)
    a.start()
    host_b = second_host(a, build_dir)
    b = host_b.mfad
    b._last_step = a._last_step
    b.start()
    wait_degraded(a, False)
    wait_degraded(b, False)
    try:
        secret = a.enroll_totp(ALICE)
        n = len(fake.requests)
        assert a.call("BeginSmsEnrollment", "sss", ALICE, PHONE, "").expect_ok() == MASKED
        a.call("ConfirmSmsEnrollment", "ss", ALICE, fake.wait_code(n + 1)).expect_ok()
        a.call("GenerateBackupCodes", "ss", ALICE, "").expect_ok()
        bob_secret = a.enroll_totp(BOB)
        # B reads Alice's records and her data key from Redis, and logs her in.
        assert b.login(ALICE, b.next_code(ALICE, secret))[1].expect_ok() == "totp"
        assert os.path.exists(data_key_file(a, ALICE)) and os.path.exists(data_key_file(b, ALICE))
        wrapped = redis.cli("GET", key(ALICE, "datakey")).strip()
        assert wrapped and len(wrapped) > 64
        # A copy of her records as a backup of Redis holds them (without the data key).
        old_state = redis.cli("GET", key(ALICE, "state")).strip()
        old_factors = redis.cli("HGETALL", key(ALICE, "factors")).split()
        assert len(old_factors) == 4  # totp, sms

        r = a.mfactl("--json", "forget", ALICE)
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        assert report["data_key"] == "destroyed"
        # B hears the announcement: its copy of the key and its records go.
        assert wait_until(lambda: not os.path.exists(data_key_file(b, ALICE)), timeout=15)
        assert wait_until(lambda: audit_rows(b, "data.forget"), timeout=15)
        assert audit_details(audit_rows(b, "data.forget")[-1])["fleet_host"] == "host-a"
        # Nothing of hers in Redis: no key holds her name, no value her phone or her data key.
        text = redis_text(redis)
        for needle in (ALICE, PHONE, PHONE_DIGITS, wrapped[:32]):
            assert needle not in text, needle
        assert redis.cli("ZCARD", "mfad:forgotten").strip() == "1"
        # Nor in either database; both audit chains still verify.
        for m in (a, b):
            db = dump(m.db_path)
            for needle in (ALICE, PHONE, PHONE_DIGITS, MASKED):
                assert needle not in db, (m.state_dir, needle)
            v = m.mfactl("audit", "verify")
            assert v.returncode == 0, v.stderr + v.stdout
        # B no longer knows her (the attempt is audited under her name again, as on one host).
        b.call("BeginAuthentication", "sa{ss}", ALICE,
               {"service": "sshd", "rhost": "", "tty": "", "ruser": ""}).expect_error("NotEnrolled")
        # The copy taken before the forget, put back: it does not open on any host (her data key
        # is gone everywhere), and the login fails closed.
        redis.cli("SET", key(ALICE, "state"), old_state)
        redis.cli("HSET", key(ALICE, "factors"), *old_factors)
        for m in (a, b):
            begin, verify = m.login(ALICE, m.next_code(ALICE, secret))
            assert verify is not None and verify.error == "org.mfad1.Error.StorageFailure", \
                (begin, verify)
        # Bob is untouched on both hosts.
        assert b.login(BOB, b.next_code(BOB, bob_secret))[1].expect_ok() == "totp"
        assert a.login(BOB, a.next_code(BOB, bob_secret))[1].expect_ok() == "totp"
    finally:
        host_b.cleanup()


def test_a_host_away_applies_the_forget_when_back(mfad_factory, build_dir, redis,
                                                  test_users):
    a = mfad_factory
    fleet_config(a, redis)
    a.start()
    host_b = second_host(a, build_dir)
    b = host_b.mfad
    b._last_step = a._last_step
    b.start()
    wait_degraded(a, False)
    wait_degraded(b, False)
    try:
        secret = a.enroll_totp(ALICE)
        assert b.login(ALICE, b.next_code(ALICE, secret))[1].expect_ok() == "totp"
        assert os.path.exists(data_key_file(b, ALICE))
        b.stop()
        r = a.mfactl("forget", ALICE)
        assert r.returncode == 0, r.stderr
        b.start()
        wait_degraded(b, False)
        assert wait_until(lambda: not os.path.exists(data_key_file(b, ALICE)), timeout=15)
        assert wait_until(lambda: ALICE not in dump(b.db_path), timeout=15)
        v = b.mfactl("audit", "verify")
        assert v.returncode == 0, v.stderr + v.stdout
        # A forged tombstone (no MAC of the fleet's) is ignored: Bob stays.
        bob_secret = a.enroll_totp(BOB)
        assert b.login(BOB, b.next_code(BOB, bob_secret))[1].expect_ok() == "totp"
        redis.cli("ZADD", "mfad:forgotten", "1", "m1|host-a|1|" + "0" * 64 + "|" + "0" * 64)
        redis.cli("PUBLISH", "mfad:invalidate", "/forget")
        assert b.login(BOB, b.next_code(BOB, bob_secret))[1].expect_ok() == "totp"
    finally:
        host_b.cleanup()


def test_forget_runs_under_a_per_host_acl(mfad_factory, build_dir, redis, test_users, tmp_path):
    """The line of `mfactl fleet acl` lets a host forget (the tombstones, their trim)."""
    out = subprocess.run([os.path.join(build_dir, "mfactl", "mfactl"), "fleet", "acl", "host-a"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert redis.admin_cli(*out.stdout.strip().split()).strip() == "OK"
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
    secret = a.enroll_totp(ALICE)
    assert a.login(ALICE, a.next_code(ALICE, secret))[1].expect_ok() == "totp"
    r = a.mfactl("forget", ALICE)
    assert r.returncode == 0, r.stderr
    assert redis.cli("ZCARD", "mfad:forgotten").strip() == "1"
    assert ALICE not in redis_text(redis)
    assert not [row for row in audit_rows(a, "degraded") if row["outcome"] != "info"]
