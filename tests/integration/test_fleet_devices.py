"""Named TOTP devices in fleet mode (issue 19; docs/fleet.md, "Named devices"): every device is a
record of its own in Redis, vouched for by the state record with its own replay watermark, so a
code of any device works on every host, a used code of a device is refused on the other host,
`disable --name` removes one device fleet-wide, and `status` lists them on every host. A state of
the one device `default` stays in the format of the release before."""

from conftest import current_step, totp
from fleet_helpers import redis  # noqa: F401 (a fixture)
from fleet_helpers import fleet_config, second_host, wait_degraded
from mfactl_helpers import run_json, status
from test_fleet_records import state_fields


def key(user, what):
    return f"mfad:user:{{{user}}}:{what}"


def fleet_pair(mfad_factory, build_dir, redis):
    a = mfad_factory
    fleet_config(a, redis)
    a.set_config("TOTP", "Window", 2)  # room for the steps a test uses up
    a.start()
    host_b = second_host(a, build_dir)
    host_b.mfad._last_step = a._last_step  # one user's steps are used up fleet-wide
    host_b.mfad.start()
    wait_degraded(a, False)
    wait_degraded(host_b.mfad, False)
    return a, host_b


def enroll_device(m, user, name):
    """`enroll totp USER --name NAME --json` then `confirm totp`, as root on host m."""
    doc = run_json(m, "enroll", "totp", user, "--name", name)
    step = current_step()
    r = m.mfactl("confirm", "totp", user, totp(doc["secret"], step=step))
    assert r.returncode == 0, r.stderr
    return doc["secret"], step


def factor_fields(redis, user):
    return sorted(redis.cli("HKEYS", key(user, "factors")).split())


def device_names(m, user):
    return [d["name"] for d in status(m, user)["totp_devices"]]


def test_named_devices_work_on_every_host(mfad_factory, build_dir, redis, test_users):
    a, host_b = fleet_pair(mfad_factory, build_dir, redis)
    b = host_b.mfad
    try:
        user = "mfa-bob"
        phone, step = enroll_device(a, user, "phone")
        laptop, _ = enroll_device(b, user, "laptop")
        assert factor_fields(redis, user) == ["totp/laptop", "totp/phone"]
        # The state record carries each device's watermark (its 13th field).
        fields = redis.cli("GET", key(user, "state")).strip().split("|")
        assert len(fields) == 13 and "phone=" in fields[11] and "laptop=" in fields[11], fields
        # Listed on both hosts.
        assert device_names(a, user) == ["laptop", "phone"]
        assert device_names(b, user) == ["laptop", "phone"]
        # A code of either device works on either host; a used code of a device is refused on the
        # other host, while the other device's code of the same step still works.
        code = totp(laptop, step=step + 1)
        assert a.login(user, code)[1].expect_ok() == "totp"
        _, again = b.login(user, code)
        assert again.error == "org.mfad1.Error.BadCode", again
        assert b.login(user, totp(phone, step=step + 1))[1].expect_ok() == "totp"
        _, again = a.login(user, totp(phone, step=step + 1))
        assert again.error == "org.mfad1.Error.BadCode", again
        # One device removed on B is gone everywhere; the other one still works on A.
        r = b.mfactl("disable", user, "totp", "--name", "phone")
        assert r.returncode == 0, r.stderr
        assert factor_fields(redis, user) == ["totp/laptop"]
        assert "phone=" not in redis.cli("GET", key(user, "state"))
        assert device_names(a, user) == ["laptop"]
        _, refused = a.login(user, totp(phone, step=step + 2))
        assert refused.error == "org.mfad1.Error.BadCode", refused
        assert a.login(user, totp(laptop, step=step + 2))[1].expect_ok() == "totp"
    finally:
        host_b.cleanup()


def test_one_default_device_keeps_the_old_format(mfad_factory, build_dir, redis, test_users):
    a, host_b = fleet_pair(mfad_factory, build_dir, redis)
    b = host_b.mfad
    try:
        user = "mfa-alice"
        secret = a.enroll_totp(user)
        # The release before's format: 12 fields, the field "totp", one watermark.
        before = state_fields(redis.cli("GET", key(user, "state")).strip())
        assert factor_fields(redis, user) == ["totp"]
        assert b.login(user, b.next_code(user, secret))[1].expect_ok() == "totp"
        assert len(state_fields(redis.cli("GET", key(user, "state")).strip())) == 12
        # A named device added beside it: the new format, the default device's record and
        # watermark kept as they were.
        laptop, step = enroll_device(b, user, "laptop")
        after = redis.cli("GET", key(user, "state")).strip().split("|")
        assert len(after) == 13 and after[11].startswith("laptop="), after
        assert factor_fields(redis, user) == ["totp", "totp/laptop"]
        assert int(after[3]) >= int(before[3])
        assert device_names(a, user) == ["default", "laptop"]
        assert a.login(user, a.next_code(user, secret))[1].expect_ok() == "totp"
        assert a.login(user, totp(laptop, step=step + 1))[1].expect_ok() == "totp"
    finally:
        host_b.cleanup()
