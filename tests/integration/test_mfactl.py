"""mfactl against the real mfad on a private bus: each verb's exit status and output, as root, as
an admin (mfa-carol) and as plain users (mfa-alice, mfa-bob)."""

import json
import re

import pytest

from conftest import current_step, totp
from mfactl_helpers import (ADMIN_ERROR, BACKUP_ALPHABET, STEP_UP_MESSAGE, enroll_totp_via_mfactl,
                            run_json, secret_from_human_output, status)

STATUS_KEYS = {"user", "methods", "pending", "backup_codes_left", "locked_until", "failures",
               "masked_phone", "sessions", "totp_devices", "foreign_change"}
AUDIT_KEYS = {"id", "time", "kind", "user", "outcome", "reason", "caller", "details", "hash"}


# --- usage errors: exit 2, never a bus call -------------------------------------------------


@pytest.mark.parametrize("argv", [
    [],
    ["frobnicate"],
    ["enroll"],
    ["enroll", "fax"],
    ["confirm", "totp", "mfa-alice"],
    ["confirm", "totp", "mfa-alice", "123456", "extra"],
    ["status", "a", "b"],
    ["--no-such-option", "status"],
    ["status", "--phone", "+14155550100"],
    ["enroll", "sms", "mfa-alice"],
    ["enroll", "totp", "--digits", "six"],
    ["disable", "mfa-alice"],
    ["disable", "mfa-alice", "password"],
    ["reset"],
    ["users", "extra"],
    ["terminate"],
    ["audit", "--limit", "0"],
    ["audit", "--limit", "100001"],
    ["audit", "--since", "last tuesday"],
    ["audit", "--since", "2026-02-31"],
    ["audit", "verify", "--user", "mfa-alice"],
    ["sessions", "mfa-alice", "--all"],
    ["--current-code", "1" * 100, "backup-codes"],
    ["status", "x" * 300],
    ["status", "--bus-address"],
])
def test_usage_errors_exit_2(mfad, argv):
    r = mfad.mfactl(*argv)
    assert r.returncode == 2, (argv, r.stdout, r.stderr)
    assert r.stderr.startswith("mfactl: "), r.stderr
    assert "mfactl --help" in r.stderr
    assert r.stdout == ""


def test_help_lists_every_verb(mfad):
    r = mfad.mfactl("--help")
    assert r.returncode == 0
    for verb in ["status", "enroll totp", "confirm totp", "enroll sms", "confirm sms",
                 "backup-codes", "disable", "reset", "unlock", "users", "sessions", "terminate",
                 "audit", "audit verify"]:
        assert verb in r.stdout, verb


def test_no_daemon_on_the_bus_exits_1(bus, build_dir):
    import subprocess
    import os
    r = subprocess.run([os.path.join(build_dir, "mfactl", "mfactl"), "--bus-address", bus.address,
                        "status"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr == "mfactl: mfad is not running (nobody owns org.mfad1 on this bus)\n"


# --- status ---------------------------------------------------------------------------------


def test_status_of_a_new_user(mfad, test_users):
    alice = test_users["mfa-alice"]
    doc = run_json(mfad, "status", user=alice)  # USER defaults to the caller
    assert set(doc) == STATUS_KEYS
    assert doc["user"] == "mfa-alice"
    assert doc["methods"] == [] and doc["pending"] == []
    assert doc["backup_codes_left"] == 0 and doc["locked_until"] == 0
    assert doc["masked_phone"] == ""
    assert doc["sessions"] == 0
    r = mfad.mfactl("status", user=alice)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^User:\s+mfa-alice$", r.stdout, re.M)
    assert re.search(r"^Methods:\s+-$", r.stdout, re.M)
    assert re.search(r"^Locked:\s+no$", r.stdout, re.M)
    assert re.search(r"^Sessions:\s+0$", r.stdout, re.M)


def test_status_of_someone_else_is_refused_for_a_plain_user(mfad, test_users):
    r = mfad.mfactl("status", "mfa-bob", user=test_users["mfa-alice"])
    assert r.returncode == 1
    assert r.stderr.startswith(ADMIN_ERROR + ": "), r.stderr
    assert r.stdout == ""


def test_status_of_unknown_user(mfad):
    r = mfad.mfactl("status", "mfa-nobody-here")
    assert r.returncode == 1
    assert r.stderr.startswith("mfactl: no such user: "), r.stderr


# --- enroll totp / confirm totp -------------------------------------------------------------


def test_enroll_totp_json_then_confirm(mfad, test_users):
    alice = test_users["mfa-alice"]
    doc = run_json(mfad, "enroll", "totp", user=alice)
    assert set(doc) == {"secret", "uri"}
    assert re.fullmatch(r"[A-Z2-7]{32}", doc["secret"])
    assert doc["uri"].startswith("otpauth://totp/")
    assert f"secret={doc['secret']}" in doc["uri"]
    assert "issuer=mfad-test" in doc["uri"]
    pending = status(mfad, alice, as_user=alice)
    assert pending["pending"] == ["totp"] and pending["methods"] == []

    wrong = str((int(totp(doc["secret"])) + 1) % 1000000).zfill(6)
    r = mfad.mfactl("confirm", "totp", "mfa-alice", wrong, user=alice)
    assert r.returncode == 1
    assert r.stderr.startswith("mfactl: wrong code: "), r.stderr
    assert wrong not in r.stderr
    assert status(mfad, alice)["methods"] == []

    r = mfad.mfactl("confirm", "totp", "mfa-alice", totp(doc["secret"]), user=alice)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "TOTP for mfa-alice is active.\n"
    after = status(mfad, alice)
    assert after["methods"] == ["totp"] and after["pending"] == []


def test_enroll_totp_options_reach_the_daemon(mfad, test_users):
    doc = run_json(mfad, "enroll", "totp", "mfa-bob", "--issuer", "Example Corp", "--algorithm",
                   "SHA256", "--digits", "8")
    assert "algorithm=SHA256" in doc["uri"] and "digits=8" in doc["uri"]
    assert "issuer=Example%20Corp" in doc["uri"]
    code = totp(doc["secret"], digits=8, algorithm="SHA256")
    r = mfad.mfactl("--json", "confirm", "totp", "mfa-bob", code)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"ok": True}


def test_enroll_totp_bad_digits_is_refused_by_the_daemon(mfad, test_users):
    r = mfad.mfactl("enroll", "totp", "mfa-bob", "--digits", "9")
    assert r.returncode == 1
    assert r.stderr.startswith("mfactl: invalid argument: "), r.stderr


def test_enroll_totp_without_terminal_prints_everything_and_leaves_it_pending(mfad, test_users):
    alice = test_users["mfa-alice"]
    r = mfad.mfactl("enroll", "totp", user=alice, input="")
    assert r.returncode == 0, r.stderr
    assert "█" in r.stdout  # the QR code
    secret = secret_from_human_output(r.stdout)
    assert re.search(r"secret by hand: ([A-Z2-7]{4} ){7}[A-Z2-7]{4}\n", r.stdout)
    assert re.search(r"^URI: otpauth://totp/\S+secret=" + secret, r.stdout, re.M)
    assert "Run `mfactl confirm totp mfa-alice CODE` to activate it." in r.stdout
    assert "Verification code" not in r.stdout
    assert status(mfad, alice)["pending"] == ["totp"]
    r = mfad.mfactl("confirm", "totp", "mfa-alice", totp(secret), user=alice)
    assert r.returncode == 0, r.stderr


def test_confirm_without_pending_enrollment(mfad, test_users):
    r = mfad.mfactl("confirm", "totp", "mfa-bob", "123456")
    assert r.returncode == 1
    assert r.stderr.startswith("mfactl: no pending enrollment: "), r.stderr


# --- step-up --------------------------------------------------------------------------------


def test_step_up_without_code_and_without_terminal(mfad, test_users):
    alice = test_users["mfa-alice"]
    enroll_totp_via_mfactl(mfad, alice, as_user=alice)
    r = mfad.mfactl("backup-codes", user=alice, input="")
    assert r.returncode == 1
    assert r.stderr == STEP_UP_MESSAGE + "\n"
    assert r.stdout == ""
    r = mfad.mfactl("disable", "mfa-alice", "totp", user=alice, input="")
    assert r.returncode == 1
    assert r.stderr == STEP_UP_MESSAGE + "\n"
    doc = status(mfad, alice)
    assert doc["backup_codes_left"] == 0 and doc["methods"] == ["totp"]


def test_step_up_with_wrong_and_right_current_code(mfad, test_users):
    alice = test_users["mfa-alice"]
    secret = enroll_totp_via_mfactl(mfad, alice, as_user=alice)
    r = mfad.mfactl("--current-code", "000000", "backup-codes", user=alice)
    assert r.returncode == 1
    assert r.stderr.startswith("mfactl: wrong code: "), r.stderr
    assert "000000" not in r.stderr
    code = mfad.next_code(alice, secret)
    # --current-code after the verb works too.
    doc = run_json(mfad, "backup-codes", "--current-code", code, user=alice)
    assert len(doc["codes"]) == 10
    assert status(mfad, alice)["backup_codes_left"] == 10


def test_admin_needs_no_step_up(mfad, test_users):
    alice = test_users["mfa-alice"]
    enroll_totp_via_mfactl(mfad, alice, as_user=alice)
    doc = run_json(mfad, "backup-codes", "mfa-alice")  # root
    assert len(doc["codes"]) == 10


# --- backup codes ---------------------------------------------------------------------------


def test_backup_codes_json_each_works_once(mfad, test_users):
    mfad.enroll_totp("mfa-bob")
    doc = run_json(mfad, "backup-codes", "mfa-bob")
    codes = doc["codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    for c in codes:
        assert len(c) == 8 and set(c) <= BACKUP_ALPHABET, c
    _, verify = mfad.login("mfa-bob", codes[0])
    assert verify.expect_ok() == "backup"
    _, verify = mfad.login("mfa-bob", codes[0])
    verify.expect_error("BadCode")
    assert status(mfad, "mfa-bob")["backup_codes_left"] == 9
    # A new set replaces the old one.
    new_codes = run_json(mfad, "backup-codes", "mfa-bob")["codes"]
    _, verify = mfad.login("mfa-bob", codes[1])
    verify.expect_error("BadCode")
    _, verify = mfad.login("mfa-bob", new_codes[0])
    assert verify.expect_ok() == "backup"


def test_backup_codes_human_output(mfad, test_users):
    mfad.enroll_totp("mfa-bob")
    r = mfad.mfactl("backup-codes", "mfa-bob")
    assert r.returncode == 0, r.stderr
    shown = re.findall(r"\b([A-Z0-9]{4})-([A-Z0-9]{4})\b", r.stdout)
    assert len(shown) == 10
    assert "not shown again" in r.stdout
    _, verify = mfad.login("mfa-bob", "-".join(shown[3]))  # typed as shown, with the dash
    assert verify.expect_ok() == "backup"


# --- disable, reset, unlock -----------------------------------------------------------------


def test_disable_as_admin_and_as_self(mfad, test_users):
    alice = test_users["mfa-alice"]
    secret = enroll_totp_via_mfactl(mfad, alice, as_user=alice)
    run_json(mfad, "backup-codes", "mfa-alice")
    r = mfad.mfactl("disable", "mfa-alice", "backup", user=alice, input="")
    assert r.returncode == 1 and r.stderr == STEP_UP_MESSAGE + "\n"
    r = mfad.mfactl("disable", "mfa-alice", "backup", "--current-code",
                    mfad.next_code(alice, secret), user=alice)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Disabled backup for mfa-alice.\n"
    assert status(mfad, alice)["backup_codes_left"] == 0
    assert run_json(mfad, "disable", "mfa-alice", "totp") == {"ok": True}
    assert status(mfad, alice)["methods"] == []


def test_disable_a_method_that_is_not_enrolled(mfad, test_users):
    r = mfad.mfactl("disable", "mfa-bob", "sms")
    assert r.returncode == 1
    assert r.stderr.startswith("mfactl: not enrolled: "), r.stderr


def test_reset_and_unlock(mfad, test_users):
    mfad.enroll_totp("mfa-bob")
    run_json(mfad, "backup-codes", "mfa-bob")
    r = mfad.mfactl("reset", "mfa-bob")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Removed every factor and lockout of mfa-bob.\n"
    doc = status(mfad, "mfa-bob")
    assert doc["methods"] == [] and doc["backup_codes_left"] == 0
    r = mfad.mfactl("unlock", "mfa-bob")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Unlocked mfa-bob.\n"
    assert run_json(mfad, "unlock", "mfa-bob") == {"ok": True}


def test_unlock_clears_a_lockout(mfad_factory, test_users):
    mfad_factory.set_config("Policy", "MaxFailures", 2)
    mfad = mfad_factory.start()
    secret = mfad.enroll_totp("mfa-bob")
    wrong = str((int(totp(secret)) + 500000) % 1000000).zfill(6)
    mfad.login("mfa-bob", [wrong, wrong])
    locked = status(mfad, "mfa-bob")
    assert locked["locked_until"] > 0
    r = mfad.mfactl("status", "mfa-bob")
    assert re.search(r"^Locked:\s+until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$", r.stdout, re.M)
    assert mfad.mfactl("unlock", "mfa-bob").returncode == 0
    assert status(mfad, "mfa-bob")["locked_until"] == 0


# --- admin verbs ----------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["users"],
    ["reset", "mfa-bob"],
    ["unlock", "mfa-bob"],
    ["audit"],
    ["audit", "verify"],
    ["backup-codes", "mfa-bob"],
    ["enroll", "totp", "mfa-bob"],
    ["disable", "mfa-bob", "totp"],
])
def test_admin_verbs_refused_for_a_plain_user(mfad, test_users, argv):
    r = mfad.mfactl(*argv, user=test_users["mfa-alice"], input="")
    assert r.returncode == 1, (argv, r.stdout, r.stderr)
    assert r.stderr.startswith(ADMIN_ERROR + ": "), r.stderr
    assert r.stdout == ""


def test_users_as_root_and_as_admin_group_member(mfad, test_users):
    mfad.enroll_totp("mfa-alice")
    run_json(mfad, "backup-codes", "mfa-alice")
    for as_user in (None, test_users["mfa-carol"]):
        users = run_json(mfad, "users", user=as_user)
        assert isinstance(users, list)
        alice = [u for u in users if u["user"] == "mfa-alice"]
        assert len(alice) == 1
        assert set(alice[0]) == STATUS_KEYS
        assert alice[0]["methods"] == ["totp", "backup"]
        assert alice[0]["backup_codes_left"] == 10
        assert not [u for u in users if u["user"] == "mfa-bob"]
    r = mfad.mfactl("users")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["USER", "METHODS", "PENDING", "BACKUP", "CODES", "LOCKED",
                                "FAILURES", "PHONE", "SESSIONS", "TOTP", "DEVICES"]
    assert any(re.match(r"mfa-alice\s+totp, backup\s+-\s+10\s+no\s+0\s+-\s+0\s+default$", line)
               for line in lines[1:]), r.stdout


# --- sessions, terminate, SMS ---------------------------------------------------------------


def test_sessions(mfad, test_users):
    alice = test_users["mfa-alice"]
    assert run_json(mfad, "sessions", user=alice) == []
    assert run_json(mfad, "sessions", "--all") == []
    r = mfad.mfactl("sessions", user=alice)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "No open sessions.\n"
    r = mfad.mfactl("sessions", "--all", user=alice)  # everyone's: admin only
    assert r.returncode == 1
    assert r.stderr.startswith(ADMIN_ERROR + ": "), r.stderr


def test_terminate_unknown_session_fails(mfad, test_users):
    r = mfad.mfactl("terminate", "0123456789abcdef0123456789abcdef")
    assert r.returncode == 1
    assert re.match(r"mfactl: no such session: \S", r.stderr), r.stderr
    assert r.stdout == ""


def test_enroll_sms_without_provider(mfad, test_users):
    r = mfad.mfactl("enroll", "sms", "mfa-bob", "--phone", "+14155550100")
    assert r.returncode == 1
    assert r.stderr.startswith("mfactl: SMS unavailable: "), r.stderr
    assert "4155550100" not in r.stderr
    r = mfad.mfactl("confirm", "sms", "mfa-bob", "123456")
    assert r.returncode == 1
    assert r.stderr.startswith("mfactl: "), r.stderr


# --- audit ----------------------------------------------------------------------------------


def test_audit_shows_enrollment_and_verifies(mfad, test_users):
    alice = test_users["mfa-alice"]
    enroll_totp_via_mfactl(mfad, alice, as_user=alice)
    events = run_json(mfad, "audit", "--user", "mfa-alice")
    assert events, "no audit events for mfa-alice"
    for e in events:
        assert AUDIT_KEYS <= set(e), e
        assert e["user"] == "mfa-alice"
        assert isinstance(e["details"], dict)
    ids = [e["id"] for e in events]
    assert ids == sorted(ids)  # newest last
    kinds = [e["kind"] for e in events]
    assert any("enroll" in k for k in kinds), kinds
    dumped = json.dumps(events)
    secret_free = [e for e in events if "secret" in json.dumps(e["details"]).lower()]
    assert not secret_free, dumped

    limited = run_json(mfad, "audit", "--user", "mfa-alice", "--limit", "1")
    assert len(limited) == 1
    assert run_json(mfad, "audit", "--user", "mfa-alice", "--since", "1h") == events
    assert run_json(mfad, "audit", "--user", "mfa-alice", "--since", "2999-01-01") == []

    r = mfad.mfactl("audit", "--user", "mfa-alice")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[0].split() == ["TIME", "KIND", "USER", "OUTCOME", "REASON",
                                               "CALLER", "DETAILS"]
    assert len(r.stdout.strip().splitlines()) == len(events) + 1

    r = mfad.mfactl("audit", "verify")
    assert r.returncode == 0, r.stderr
    m = re.fullmatch(r"audit trail intact: (\d+) rows\nrows 1\.\.\d+ proven; the head file .*\n",
                     r.stdout)
    assert m and int(m.group(1)) >= len(events), r.stdout
    doc = run_json(mfad, "audit", "verify")
    assert doc["intact"] is True and doc["rows"] == int(m.group(1))


def test_audit_verify_detects_tampering(mfad, test_users):
    mfad.enroll_totp("mfa-bob")
    assert mfad.mfactl("audit", "verify").returncode == 0
    mfad.stop()
    import sqlite3
    db = sqlite3.connect(mfad.db_path)
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    table = next(t for t in tables if "audit" in t)
    cols = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
    assert "outcome" in cols, cols
    # An attacker with the file drops the append-only triggers first.
    for (trigger,) in db.execute("SELECT name FROM sqlite_master WHERE type='trigger' AND "
                                 "tbl_name = ?", (table,)).fetchall():
        db.execute(f"DROP TRIGGER {trigger}")
    db.execute(f"UPDATE {table} SET outcome = 'tampered' WHERE rowid = "
               f"(SELECT MIN(rowid) FROM {table})")
    db.commit()
    db.close()
    mfad.start()
    r = mfad.mfactl("audit", "verify")
    assert r.returncode == 1, r.stdout
    assert r.stderr.startswith("mfactl: audit trail broken: "), r.stderr


# --- interactive (pexpect) ------------------------------------------------------------------


def test_interactive_enroll_totp(mfad, test_users):
    import pexpect
    from mfactl_helpers import spawn_mfactl
    alice = test_users["mfa-alice"]
    child = spawn_mfactl(mfad, ["enroll", "totp"], user=alice)
    child.expect("█")
    child.expect(r"secret by hand: ([A-Z2-7 ]+)\r\n")
    secret = child.match.group(1).replace(" ", "")
    child.expect("Verification code: ")
    wrong = str((int(totp(secret)) + 1) % 1000000).zfill(6)
    child.sendline(wrong)
    child.expect("mfactl: wrong code: ")
    child.expect("Verification code: ")
    step = current_step()
    code = totp(secret, step=step)
    child.sendline(code)
    child.expect("TOTP for mfa-alice is active.")
    child.expect(pexpect.EOF)
    child.close()
    # Echo was off: neither code appeared on the terminal.
    shown = child.logfile_read.getvalue()
    assert code not in shown and wrong not in shown
    assert child.exitstatus == 0
    assert status(mfad, alice)["methods"] == ["totp"]


def test_interactive_enroll_gives_up_after_three_wrong_codes(mfad, test_users):
    import pexpect
    from mfactl_helpers import spawn_mfactl
    child = spawn_mfactl(mfad, ["enroll", "totp", "mfa-bob"])
    child.expect(r"secret by hand: ([A-Z2-7 ]+)\r\n")
    secret = child.match.group(1).replace(" ", "")
    wrong = str((int(totp(secret)) + 3) % 1000000).zfill(6)
    for _ in range(3):
        child.expect("Verification code: ")
        child.sendline(wrong)
        child.expect("mfactl: wrong code: ")
    child.expect("still pending: run `mfactl confirm totp mfa-bob CODE`")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert status(mfad, "mfa-bob")["pending"] == ["totp"]


def test_interactive_step_up_prompt(mfad, test_users):
    import pexpect
    from mfactl_helpers import spawn_mfactl
    alice = test_users["mfa-alice"]
    secret = enroll_totp_via_mfactl(mfad, alice, as_user=alice)
    child = spawn_mfactl(mfad, ["backup-codes"], user=alice)
    child.expect("Current verification code: ")
    child.sendline(mfad.next_code(alice, secret))
    child.expect("New backup codes for mfa-alice")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert len(re.findall(r"\b[A-Z0-9]{4}-[A-Z0-9]{4}\b", child.before)) == 10
    assert status(mfad, alice)["backup_codes_left"] == 10


def test_ctrl_c_at_the_code_prompt_restores_the_terminal(mfad, test_users):
    import pexpect
    # bash ignores SIGINT here so that it survives mfactl and can show the terminal's state.
    script = (f"trap '' INT; {mfad.mfactl_binary} --bus-address {mfad.bus.address} "
              "enroll totp mfa-bob; echo \"rc=$?\"; stty -a")
    child = pexpect.spawn("/bin/bash", ["-c", script], encoding="utf-8", timeout=30)
    child.expect("Verification code: ")
    child.sendintr()
    child.expect(r"rc=(\d+)")
    assert child.match.group(1) == "130"  # killed by SIGINT
    child.expect(pexpect.EOF)
    assert re.search(r"(?<![-\w])echo(?![\w])", child.before), child.before  # not "-echo"
    assert "-echo " not in child.before


def test_version(mfad):
    r = mfad.mfactl("--version")
    assert r.returncode == 0
    assert re.fullmatch(r"mfactl \d+\.\d+\.\d+\n", r.stdout), r.stdout


def test_empty_listings(mfad, test_users):
    assert run_json(mfad, "users") == []
    r = mfad.mfactl("users")
    assert r.returncode == 0 and r.stdout == "No users are enrolled.\n"
    assert run_json(mfad, "audit", "--user", "mfa-bob") == []
    r = mfad.mfactl("audit", "--user", "mfa-bob")
    assert r.returncode == 0 and r.stdout == "No audit events.\n"


@pytest.mark.parametrize("since,expect_all", [
    ("946684800", True),              # unix seconds: 2000-01-01
    ("2000-01-01", True),             # a date
    ("2000-01-01T00:00:00Z", True),   # ISO 8601
    ("2000-01-01 00:00:00", True),
    ("10m", True),                    # an age
    ("4102444800", False),            # 2100-01-01
    ("2100-01-01T00:00:00Z", False),
])
def test_audit_since_forms(mfad, test_users, since, expect_all):
    mfad.enroll_totp("mfa-bob")
    everything = run_json(mfad, "audit", "--user", "mfa-bob")
    assert everything
    got = run_json(mfad, "audit", "--user", "mfa-bob", "--since", since)
    assert got == (everything if expect_all else [])


# --- codes on standard input (issue 17: never on a command line, where ps shows them) --------


def test_current_code_and_confirm_code_from_stdin(mfad, test_users):
    alice = test_users["mfa-alice"]
    doc = run_json(mfad, "enroll", "totp", user=alice)
    r = mfad.mfactl("confirm", "totp", "mfa-alice", "-", user=alice,
                    input=totp(doc["secret"]) + "\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "TOTP for mfa-alice is active.\n"
    r = mfad.mfactl("--current-code", "-", "backup-codes", user=alice, input="000000\n")
    assert r.returncode == 1 and r.stderr.startswith("mfactl: wrong code: "), r.stderr
    code = totp(doc["secret"], step=current_step() + 1)
    r = mfad.mfactl("--json", "--current-code", "-", "backup-codes", user=alice, input=code)
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["codes"]) == 10


@pytest.mark.parametrize("stdin", ["", "\n", "1" * 200 + "\n"])
def test_code_from_stdin_missing_or_too_long_is_a_usage_error(mfad, test_users, stdin):
    r = mfad.mfactl("--current-code", "-", "backup-codes", user=test_users["mfa-alice"],
                    input=stdin)
    assert r.returncode == 2, r.stderr
    assert "--current-code -" in r.stderr
    r = mfad.mfactl("confirm", "sms", "mfa-alice", "-", user=test_users["mfa-alice"],
                    input=stdin)
    assert r.returncode == 2, r.stderr
    assert "confirm sms" in r.stderr


def test_admin_reset_or_unlock_of_own_account_says_what_to_do(mfad, test_users):
    carol = test_users["mfa-carol"]
    mfad.enroll_totp("mfa-carol")
    r = mfad.mfactl("reset", "mfa-carol", user=carol, input="")
    assert r.returncode == 1
    assert r.stderr == ("mfactl: resetting your own account needs a current code: run `mfactl "
                        "disable mfa-carol METHOD` for each factor (it asks for the code), or ask "
                        "root or another administrator\n")
    r = mfad.mfactl("unlock", "mfa-carol", user=carol, input="")
    assert r.returncode == 1 and "your own lockout" in r.stderr, r.stderr
    assert status(mfad, "mfa-carol")["methods"] == ["totp"]
    assert mfad.mfactl("reset", "mfa-carol").returncode == 0  # root


def test_current_code_dash_on_a_terminal_is_not_echoed(mfad, test_users):
    import pexpect
    from mfactl_helpers import spawn_mfactl
    alice = test_users["mfa-alice"]
    secret = enroll_totp_via_mfactl(mfad, alice, as_user=alice)
    child = spawn_mfactl(mfad, ["--current-code", "-", "backup-codes"], user=alice)
    child.expect("Verification code: ")
    code = mfad.next_code(alice, secret)
    child.sendline(code)
    child.expect("New backup codes for mfa-alice")
    assert code not in child.before  # what the terminal showed after the prompt
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
