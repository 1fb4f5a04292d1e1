"""Data rights (docs/security-model.md, "Data rights"; docs/mfactl.md): `mfactl export` shows
everything mfad holds about a person but no secret; `mfactl forget` erases them (no row holds
the name, the phone or a secret that opens), destroys their data key so that a copy of the
database taken before no longer opens their records, and leaves the audit trail verifiable with a
pseudonym; devices are listed and forgotten; the enrollment notice is shown and its acceptance
recorded with its SHA-256."""

import hashlib
import json
import os
import shutil
import subprocess

import pytest

from conftest import Mfad, make_world_dir, totp, current_step
from daemon_helpers import run_mfad
from sms_helpers import fake  # noqa: F401 (fixture)
from sms_helpers import MASKED, PHONE, twilio_config

ALICE = "mfa-alice"
BOB = "mfa-bob"
PHONE_DIGITS = PHONE.lstrip("+")
SSH = {"service": "sshd", "rhost": "198.51.100.7", "tty": "pts/4", "ruser": ""}


def enroll_everything(mfad, fake):
    """ALICE with every kind of record: TOTP, a phone, backup codes, a failure, a session and
    its device. Returns (secret, backup codes)."""
    secret = mfad.enroll_totp(ALICE)
    n = len(fake.requests)
    assert mfad.call("BeginSmsEnrollment", "sss", ALICE, PHONE, "").expect_ok() == MASKED
    mfad.call("ConfirmSmsEnrollment", "ss", ALICE, fake.wait_code(n + 1)).expect_ok()
    codes = mfad.call("GenerateBackupCodes", "ss", ALICE, "").expect_ok()
    _, verify = mfad.login(ALICE, "000000" if totp(secret) != "000000" else "111111")
    assert not verify.ok
    mfad.call("OpenSession", "sa{ss}", ALICE, SSH).expect_ok()
    return secret, list(codes)


@pytest.fixture
def sms_mfad(mfad_factory, fake):  # noqa: F811
    twilio_config(mfad_factory, fake)
    return mfad_factory.start()


def dump(db_path):
    r = subprocess.run(["sqlite3", "-readonly", db_path, ".dump"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_export_holds_every_record_and_no_secret(sms_mfad, fake, test_users):  # noqa: F811
    mfad = sms_mfad
    secret, codes = enroll_everything(mfad, fake)
    r = mfad.mfactl("--json", "export", user=test_users[ALICE])
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert set(doc) >= {"user", "uid", "factors", "backup_codes_left", "lockout", "sessions",
                        "devices", "audit"}
    assert doc["user"] == ALICE
    factors = {(f["method"], f["state"]): f for f in doc["factors"]}
    totp_factor = factors[("totp", "active")]
    assert set(totp_factor) >= {"enrolled", "last_used", "algorithm", "digits", "period"}
    sms = factors[("sms", "active")]
    assert sms["phone"] == PHONE and sms["masked_phone"] == MASKED
    assert doc["backup_codes_left"] == 10
    assert doc["lockout"]["consecutive_failures"] == 1
    assert [s["rhost"] for s in doc["sessions"]] == [SSH["rhost"]]
    assert [(d["rhost"], d["client"]) for d in doc["devices"]] == [(SSH["rhost"], "sshd pts")]
    kinds = {row["kind"] for row in doc["audit"]}
    assert {"enroll.confirm", "backup.generate", "auth.failure", "session.open"} <= kinds
    # No secret: not the seed, not a backup code, not a code hash.
    assert secret not in r.stdout and secret.lower() not in r.stdout
    for code in codes:
        assert code not in r.stdout and code.replace("-", "") not in r.stdout
    # The report for people, and the refusal of someone else's.
    human = mfad.mfactl("export", user=test_users[ALICE])
    assert human.returncode == 0, human.stderr
    assert "Factors:" in human.stdout and PHONE in human.stdout and "Devices:" in human.stdout
    other = mfad.mfactl("export", ALICE, user=test_users[BOB])
    assert other.returncode == 1 and "own account" in other.stderr, other.stderr
    # The export itself is audited.
    assert "data.export" in mfad.sql("SELECT kind FROM audit WHERE kind = 'data.export'")


def test_forget_erases_and_backup_no_longer_opens(sms_mfad, fake, mfad_factory, bus,
                                                  build_dir, test_users):  # noqa: F811
    mfad = sms_mfad
    secret, codes = enroll_everything(mfad, fake)
    bob_secret = mfad.enroll_totp(BOB)
    # The backup: the database as a backup tool copies it (sqlite3 .backup, consistent).
    backup_dir = make_world_dir("mfa-backup-")
    backup_db = os.path.join(backup_dir, "state", "mfad.db")
    os.makedirs(os.path.dirname(backup_db), mode=0o700)
    r = subprocess.run(["sqlite3", mfad.db_path, f".backup {backup_db}"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert ALICE in dump(backup_db)

    r = mfad.mfactl("--json", "forget", ALICE)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["data_key"] == "destroyed"
    assert report["pseudonym"].startswith("forgotten/")
    assert int(report["audit_rows"]) > 0 and report["audit_rows_kept"] == "0"
    assert report["sessions"] == "1" and report["devices"] == "1"

    # No row anywhere holds the name or the phone (in clear, masked or as digits).
    text = dump(mfad.db_path)
    for needle in (ALICE, PHONE, PHONE_DIGITS, MASKED):
        assert needle not in text, needle
    assert mfad.sql(f"SELECT count(*) FROM audit WHERE user = '{report['pseudonym']}'").strip() \
        == str(int(report["audit_rows"]) + 1)  # + the data.forget row
    # The trail still verifies, pseudonymised rows included.
    v = mfad.mfactl("audit", "verify")
    assert v.returncode == 0, v.stderr + v.stdout
    # Alice is gone; Bob is untouched.
    mfad.call("BeginAuthentication", "sa{ss}", ALICE, SSH).expect_error("NotEnrolled")
    _, ok = mfad.login(BOB, mfad.next_code(BOB, bob_secret))
    assert ok.ok, ok
    mfad.stop()

    # mfad on the backup, with the master key and the data keys of today: Alice's records are
    # there, and do not open.
    other = Mfad(build_dir, bus, backup_dir)
    other.set_config("Daemon", "KeyFile", mfad.key_path)
    other.set_config("Daemon", "DataKeyDirectory", os.path.join(mfad.state_dir, "data-keys"))
    other.start()
    try:
        assert ALICE in other.mfactl("users").stdout
        begin, verify = other.login(ALICE, totp(secret, step=current_step()))
        begin.expect_ok()
        assert not verify.ok and verify.error.endswith("StorageFailure"), verify
        assert "data key is gone" in other.log_text()
        r = other.mfactl("--json", "export", ALICE)
        assert r.returncode == 0, r.stderr
        sms = [f for f in json.loads(r.stdout)["factors"] if f["method"] == "sms"][0]
        assert sms.get("phone_unreadable") is True and "phone" not in sms
    finally:
        other.stop()
        shutil.rmtree(backup_dir, ignore_errors=True)


def test_devices_listed_and_forgotten(mfad, test_users):
    mfad.enroll_totp(ALICE)
    mfad.call("OpenSession", "sa{ss}", ALICE, SSH).expect_ok()
    mfad.call("OpenSession", "sa{ss}", ALICE,
              {"service": "login", "rhost": "", "tty": "tty1", "ruser": ""}).expect_ok()
    r = mfad.mfactl("--json", "devices", user=test_users[ALICE])
    assert r.returncode == 0, r.stderr
    devices = json.loads(r.stdout)
    assert sorted(d["client"] for d in devices) == ["login tty", "sshd pts"]
    assert all(d["first_seen"] > 0 and d["last_seen"] >= d["first_seen"] for d in devices)
    ssh = [d for d in devices if d["client"] == "sshd pts"][0]
    assert ssh["rhost"] == SSH["rhost"]
    # Bob may not see or forget Alice's.
    assert mfad.mfactl("devices", ALICE, user=test_users[BOB]).returncode == 1
    assert mfad.mfactl("forget-device", ALICE, ssh["device"], user=test_users[BOB]).returncode == 1
    r = mfad.mfactl("forget-device", ALICE, ssh["device"], user=test_users[ALICE])
    assert r.returncode == 0, r.stderr
    left = json.loads(mfad.mfactl("--json", "devices", ALICE).stdout)
    assert [d["client"] for d in left] == ["login tty"]
    assert "data.forget-device" in mfad.sql("SELECT kind FROM audit")
    assert mfad.mfactl("forget-device", ALICE, ssh["device"]).returncode == 1
    human = mfad.mfactl("devices", "--all")
    assert human.returncode == 0 and "login tty" in human.stdout


def test_enrollment_notice_shown_and_recorded(mfad_factory, test_users):
    notice_path = os.path.join(mfad_factory.dir, "notice.txt")
    text = "Your second factor is personal data: see https://example.test/privacy.\n"
    with open(notice_path, "w") as f:
        f.write(text)
    mfad_factory.set_config("Enrollment", "NoticeFile", notice_path)
    mfad = mfad_factory.start()
    digest = hashlib.sha256(text.encode()).hexdigest()
    assert mfad.call("GetEnrollmentNotice").expect_ok() == [text, digest] or \
        tuple(mfad.call("GetEnrollmentNotice").expect_ok()) == (text, digest)
    # Not on a terminal and not accepted: nothing is enrolled.
    r = mfad.mfactl("enroll", "totp", user=test_users[ALICE])
    assert r.returncode == 1 and "notice" in r.stderr, r.stderr
    assert text.strip() in r.stdout
    assert "enroll.begin" not in mfad.sql("SELECT kind FROM audit")
    r = mfad.mfactl("--json", "enroll", "totp", "--accept-notice", user=test_users[ALICE])
    assert r.returncode == 0, r.stderr
    assert text.strip() in r.stderr
    rows = mfad.sql("SELECT user, details FROM audit WHERE kind = 'enroll.notice'").splitlines()
    assert len(rows) == 1 and rows[0].startswith(ALICE + "|"), rows
    details = json.loads(rows[0].split("|", 1)[1])
    assert details["notice_sha256"] == digest and details["via"] == "mfactl"
    # The login flow's way: root accepts for the user (the PAM module), via "login"; a stale hash
    # is refused.
    mfad.call("AcceptEnrollmentNotice", "sss", BOB, digest, "login").expect_ok()
    mfad.call("AcceptEnrollmentNotice", "sss", BOB, "0" * 64, "login").expect_error(
        "InvalidArgument")
    mfad.call("AcceptEnrollmentNotice", "sss", BOB, digest, "login",
              user=test_users[ALICE]).expect_error("NotAllowed")
    # mfad enforces it: an enrollment begins only after an acceptance of the current text, and
    # one acceptance opens one enrollment.
    mfad.call("BeginTotpEnrollment", "sa{sv}", BOB, {}).expect_ok()
    mfad.call("BeginTotpEnrollment", "sa{sv}", BOB, {}).expect_error("NoticeNotAccepted")
    mfad.call("AcceptEnrollmentNotice", "sss", BOB, digest, "mfactl").expect_ok()
    changed = text + "Changed.\n"
    with open(notice_path, "w") as f:
        f.write(changed)
    mfad.call("BeginTotpEnrollment", "sa{sv}", BOB, {}).expect_error("NoticeNotAccepted")
    new_digest = hashlib.sha256(changed.encode()).hexdigest()
    mfad.call("AcceptEnrollmentNotice", "sss", BOB, new_digest, "mfactl").expect_ok()
    mfad.call("BeginTotpEnrollment", "sa{sv}", BOB, {}).expect_ok()
    refused = mfad.sql("SELECT details FROM audit WHERE kind = 'enroll.begin' AND "
                       "reason = 'notice-not-accepted'").splitlines()
    assert len(refused) == 2 and all(json.loads(d)["notice_sha256"] in (digest, new_digest)
                                     for d in refused), refused


@pytest.mark.parametrize("content,problem", [
    (b"caf\xe9 latin-1\n", "is not UTF-8 text"),
    (b"\x1b[2Jclear screen\n", "control character"),
    (b"x" * (16 * 1024 + 1), "longer than 16384 bytes"),
])
def test_notice_file_that_cannot_be_shown_is_a_config_error(mfad_factory, content, problem):
    notice_path = os.path.join(mfad_factory.dir, "notice.txt")
    with open(notice_path, "wb") as f:
        f.write(content)
    mfad_factory.set_config("Enrollment", "NoticeFile", notice_path)
    mfad_factory.write_config()
    r = run_mfad(mfad_factory, "--config", mfad_factory.config_path, "--check-config")
    assert r.returncode == 1, r.stdout
    out = r.stdout + r.stderr
    assert "[Enrollment] NoticeFile" in out and problem in out, out


def test_forget_leaves_no_byte_of_the_person(mfad_factory, fake, test_users):  # noqa: F811
    """Every kind of record (TOTP, a phone, backup codes, a session and its device, an enrollment
    token, an accepted notice) is forgotten, and the files of the database (the log and free
    pages included) hold neither the name nor the phone afterwards."""
    twilio_config(mfad_factory, fake)
    notice = "Your second factor is personal data.\n"
    mfad_factory.set_config("Enrollment", "Notice", notice.strip())
    mfad = mfad_factory.start()
    digest = hashlib.sha256(notice.strip().encode()).hexdigest()
    # One acceptance for each enrollment.
    mfad.call("AcceptEnrollmentNotice", "sss", ALICE, digest, "mfactl").expect_ok()
    mfad.enroll_totp(ALICE)
    mfad.call("AcceptEnrollmentNotice", "sss", ALICE, digest, "mfactl").expect_ok()
    n = len(fake.requests)
    assert mfad.call("BeginSmsEnrollment", "sss", ALICE, PHONE, "").expect_ok() == MASKED
    mfad.call("ConfirmSmsEnrollment", "ss", ALICE, fake.wait_code(n + 1)).expect_ok()
    mfad.call("GenerateBackupCodes", "ss", ALICE, "").expect_ok()
    mfad.call("OpenSession", "sa{ss}", ALICE, SSH).expect_ok()
    mfad.call("CreateEnrollmentToken", "su", ALICE, 72).expect_ok()
    key = f"uid/{test_users[ALICE].uid}"
    tables = [t for t in mfad.sql("SELECT name FROM sqlite_master WHERE type = 'table'").split()
              if "user" in mfad.sql(f"SELECT name FROM pragma_table_info('{t}')").split()]
    assert {"enrollment_tokens", "factors", "sessions", "devices", "audit"} <= set(tables)
    held = {t: int(mfad.sql(f"SELECT count(*) FROM {t} WHERE user IN ('{ALICE}', '{key}')"))
            for t in tables}
    assert all(held[t] > 0 for t in ("enrollment_tokens", "factors", "sessions", "devices")), held

    r = mfad.mfactl("--json", "forget", ALICE)
    assert r.returncode == 0, r.stderr
    # No row in any table is the person's.
    held = {t: int(mfad.sql(f"SELECT count(*) FROM {t} WHERE user IN ('{ALICE}', '{key}')"))
            for t in tables}
    assert not any(held.values()), held
    # Nor any byte of the files: not the log, not a free page.
    for suffix in ("", "-wal", "-shm"):
        path = mfad.db_path + suffix
        if not os.path.exists(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        for needle in (ALICE, PHONE, PHONE_DIGITS, MASKED):
            assert needle.encode() not in data, (suffix, needle)
    v = mfad.mfactl("audit", "verify")
    assert v.returncode == 0, v.stderr + v.stdout
    r = mfad.mfactl("--json", "export", ALICE)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["factors"] == [] and doc["sessions"] == [] and doc["devices"] == []
    assert doc["backup_codes_left"] == 0
    assert [row["kind"] for row in doc["audit"]] == []
