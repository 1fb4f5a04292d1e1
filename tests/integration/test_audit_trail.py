"""The audit trail's tamper evidence (docs/audit-events.md, "The hash chain"): the newest rows
deleted while mfad was stopped or while it runs are reported by `mfactl audit verify` (and at
start: journal, audit row, SecurityEvent); a missing head file is reported; retention runs at
start; the head goes to the journal at shutdown."""

import os
import re
import sqlite3


def tamper(db_path, *statements):
    """The attacker with the database file: drops the append-only triggers first."""
    db = sqlite3.connect(db_path)
    for (trigger,) in db.execute("SELECT name FROM sqlite_master WHERE type='trigger' AND "
                                 "tbl_name = 'audit'").fetchall():
        db.execute(f"DROP TRIGGER {trigger}")
    for s in statements:
        db.execute(s)
    db.commit()
    db.close()


def last_id(mfad):
    return int(mfad.sql("SELECT max(id) FROM audit").strip())


def test_verify_reports_proof_and_head(mfad, test_users):
    mfad.enroll_totp("mfa-bob")
    r = mfad.mfactl("audit", "verify")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert re.fullmatch(r"audit trail intact: \d+ rows", lines[0]), r.stdout
    assert re.fullmatch(r"rows 1\.\.\d+ proven; the head file .*", lines[1]), r.stdout
    assert os.path.exists(os.path.join(mfad.state_dir, "audit.head"))
    doc = mfad.call("VerifyAuditTrail").expect_ok()
    assert doc[0] is True


def test_truncation_while_stopped_found_at_start(mfad, test_users):
    mfad.enroll_totp("mfa-bob")
    mfad.stop()
    newest = last_id(mfad)
    tamper(mfad.db_path, f"DELETE FROM audit WHERE id > {newest - 2}")
    log_before = len(mfad.log_text())
    mfad.start()
    want = (f"truncated: the trail is proven up to row {newest - 2}; "
            f"rows {newest - 1}..{newest} are missing")
    r = mfad.mfactl("audit", "verify")
    assert r.returncode == 1, r.stdout
    assert r.stderr.startswith("mfactl: audit trail broken: "), r.stderr
    assert want in r.stderr, r.stderr
    assert want in mfad.log_text()[log_before:]
    rows = mfad.sql("SELECT kind, reason FROM audit WHERE kind = 'audit.tampering'")
    assert rows.strip() == "audit.tampering|truncated", rows


def test_truncation_while_running(mfad, test_users):
    mfad.enroll_totp("mfa-bob")
    newest = last_id(mfad)
    tamper(mfad.db_path, f"DELETE FROM audit WHERE id > {newest - 1}")
    r = mfad.mfactl("audit", "verify")
    assert r.returncode == 1, r.stdout
    want = f"truncated: the trail is proven up to row {newest - 1}; row {newest} is missing"
    assert want in r.stderr, r.stderr
    # The next row written records it in the chain, for good.
    mfad.enroll_totp("mfa-alice")
    r = mfad.mfactl("audit", "verify")
    assert r.returncode == 1 and want in r.stderr, r.stderr
    assert "audit.tampering|truncated" in mfad.sql(
        "SELECT kind, reason FROM audit WHERE kind = 'audit.tampering'")


def test_missing_head_file_reported(mfad, test_users):
    mfad.enroll_totp("mfa-bob")
    mfad.stop()
    os.unlink(os.path.join(mfad.state_dir, "audit.head"))
    mfad.start()
    r = mfad.mfactl("audit", "verify")
    assert r.returncode == 1, r.stdout
    assert "is missing" in r.stderr, r.stderr
    assert "audit.tampering|head-missing" in mfad.sql(
        "SELECT kind, reason FROM audit WHERE kind = 'audit.tampering'")


def test_retention_at_start_and_head_in_journal(mfad, test_users):
    mfad.stop()
    db = sqlite3.connect(mfad.db_path)
    old = 1_000_000  # 1970: far outside any retention
    db.execute("INSERT INTO devices(user, fingerprint, first_seen, last_seen) "
               "VALUES('mfa-bob', 'stale', ?, ?)", (old, old))
    db.commit()
    db.close()
    mfad.start()
    assert mfad.sql("SELECT count(*) FROM devices WHERE fingerprint = 'stale'").strip() == "0"
    assert mfad.mfactl("audit", "verify").returncode == 0
    mfad.stop()
    assert re.search(r"audit head \(shutdown\): first_id=1 last_id=\d+ rows=\d+ mac=[0-9a-f]{64}",
                     mfad.log_text()), mfad.log_text()
