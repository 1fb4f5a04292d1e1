"""Several named TOTP devices per user (issue 19): independent codes and replay watermarks, at
most five, one removed by name, listed by status/users/GetUser; the bus's compatible names."""

import json

from conftest import current_step, totp
from mfactl_helpers import run_json, status


def enroll_device(mfad, user, name, as_user=None, current_code=None):
    """`enroll totp --name NAME --json` then `confirm totp` with a code of the new secret."""
    args = ["enroll", "totp", user, "--name", name]
    if current_code:
        args = ["--current-code", current_code] + args
    doc = run_json(mfad, *args, user=as_user)
    step = current_step()
    r = mfad.mfactl("confirm", "totp", user, totp(doc["secret"], step=step), user=as_user)
    assert r.returncode == 0, r.stderr
    return doc["secret"], step


def test_two_devices_have_independent_codes_and_watermarks(mfad, test_users):
    phone, step = enroll_device(mfad, "mfa-bob", "phone")
    laptop, _ = enroll_device(mfad, "mfa-bob", "laptop")
    # The confirming step of each device is used up, for that device only.
    code = totp(phone, step=step + 1)
    begin, verify = mfad.login("mfa-bob", code)
    assert verify.ok and verify.result == "totp", verify
    # Replayed: refused, and audited as a replay.
    _, again = mfad.login("mfa-bob", code)
    assert again.error == "org.mfad1.Error.BadCode"
    # The laptop's code of the very same step still works: its own watermark.
    _, other = mfad.login("mfa-bob", totp(laptop, step=step + 1))
    assert other.ok, other
    rows = mfad.sql("SELECT device, step FROM totp_watermark WHERE user = "
                    "(SELECT user FROM factors WHERE device = 'phone')").split()
    assert sorted(rows) == [f"laptop|{step + 1}", f"phone|{step + 1}"]
    details = [json.loads(d) for d in mfad.sql(
        "SELECT details FROM audit WHERE kind = 'auth.success' ORDER BY id").splitlines()]
    assert [d.get("device") for d in details[-2:]] == ["phone", "laptop"]
    reasons = mfad.sql("SELECT reason FROM audit WHERE kind = 'auth.failure'").split()
    assert "replay" in reasons


def test_status_lists_devices_with_dates(mfad, test_users):
    enroll_device(mfad, "mfa-bob", "phone")
    enroll_device(mfad, "mfa-bob", "spare")
    doc = status(mfad, "mfa-bob")
    assert [d["name"] for d in doc["totp_devices"]] == ["phone", "spare"]
    assert all(d["created"] > 1_700_000_000 and d["last_used"] > 1_700_000_000
               for d in doc["totp_devices"])
    human = mfad.mfactl("status", "mfa-bob").stdout
    assert "TOTP devices:" in human and "phone (enrolled " in human and "spare (enrolled" in human
    users = mfad.mfactl("users").stdout.splitlines()
    assert users[0].split()[-2:] == ["TOTP", "DEVICES"]
    assert any(line.startswith("mfa-bob") and line.endswith("phone, spare") for line in users)
    info = mfad.call("GetUser", "s", "mfa-bob").expect_ok()
    assert [d["name"] for d in info["totp_devices"]] == ["phone", "spare"]


def test_at_most_five_and_names_are_unique(mfad, test_users):
    for n in range(5):
        enroll_device(mfad, "mfa-bob", f"d{n}")
    r = mfad.mfactl("enroll", "totp", "mfa-bob", "--name", "d5")
    assert r.returncode == 1
    assert "5 TOTP devices, the most there can be" in r.stderr, r.stderr
    r = mfad.mfactl("enroll", "totp", "mfa-bob", "--name", "d0")
    assert r.returncode == 1 and "already enrolled" in r.stderr, r.stderr
    r = mfad.mfactl("enroll", "totp", "mfa-bob", "--name", "no/slash")
    assert r.returncode == 1 and "device name" in r.stderr, r.stderr


def test_disable_one_device_by_name_and_ambiguity(mfad, test_users):
    phone, step = enroll_device(mfad, "mfa-bob", "phone")
    laptop, _ = enroll_device(mfad, "mfa-bob", "laptop")
    r = mfad.mfactl("disable", "mfa-bob", "totp")
    assert r.returncode == 1
    assert "2 TOTP devices (laptop, phone): name the one to remove" in r.stderr, r.stderr
    r = mfad.mfactl("disable", "mfa-bob", "totp", "--name", "phone")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Disabled TOTP device phone for mfa-bob.\n"
    _, v = mfad.login("mfa-bob", totp(phone, step=step + 1))
    assert not v.ok
    _, v = mfad.login("mfa-bob", totp(laptop, step=step + 1))
    assert v.ok, v
    r = mfad.mfactl("disable", "mfa-bob", "totp", "--name", "phone")
    assert r.returncode == 1 and "No TOTP device named phone" in r.stderr, r.stderr
    # The bus's own spelling; the last device also goes with plain "totp".
    mfad.call("DisableMethod", "sss", "mfa-bob", "totp", "").expect_ok()
    assert status(mfad, "mfa-bob")["methods"] == []


def test_self_service_second_device_needs_step_up_from_the_first(mfad, test_users):
    alice = test_users["mfa-alice"]
    first, step = enroll_device(mfad, "mfa-alice", "phone", as_user=alice)
    r = mfad.mfactl("enroll", "totp", "--name", "laptop", user=alice, input="")
    assert r.returncode == 1 and "current verification code" in r.stderr, r.stderr
    enroll_device(mfad, "mfa-alice", "laptop", as_user=alice,
                  current_code=totp(first, step=step + 1))
    assert [d["name"] for d in status(mfad, alice)["totp_devices"]] == ["laptop", "phone"]


def test_default_name_and_old_callers(mfad, test_users):
    secret = mfad.enroll_totp("mfa-bob")  # BeginTotpEnrollment without "name"
    assert [d["name"] for d in status(mfad, "mfa-bob")["totp_devices"]] == ["default"]
    assert mfad.sql("SELECT device FROM factors WHERE method = 'totp'").split() == ["default"]
    _, v = mfad.login("mfa-bob", mfad.next_code("mfa-bob", secret))
    assert v.ok


def test_an_import_becomes_a_named_device(mfad, test_users):
    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    mfad.call("ImportTotp", "sa{sv}", "mfa-bob",
              {"secret": ["@s", secret], "name": ["@s", "old-phone"]}).expect_ok()
    assert [d["name"] for d in status(mfad, "mfa-bob")["totp_devices"]] == ["old-phone"]
    _, v = mfad.login("mfa-bob", totp(secret, step=current_step() + 1))
    assert v.ok, v
    details = json.loads(mfad.sql(
        "SELECT details FROM audit WHERE kind = 'auth.success' ORDER BY id DESC LIMIT 1"))
    assert details["device"] == "old-phone"
