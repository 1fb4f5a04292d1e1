"""A rollout's tools (issue 18): `mfactl doctor` against crafted pam.d and sshd_config trees,
`mfactl import` of real google-authenticator and pam_oath files (then logins with the imported
secret, computed by oathtool), `mfactl report`, and the [Metrics] TextfilePath= file read by
Prometheus's own text parser."""

import json
import os
import pwd
import re
import shutil
import subprocess
import time

import pytest

from conftest import make_world_dir, wait_until
from fleet_helpers import redis  # noqa: F401 (a fixture)
from mfactl_helpers import run_json

GOOD_COMMON_AUTH = """\
# as Debian's pam-auth-update writes it
auth	[success=1 default=ignore]	pam_unix.so nullok
auth	requisite			pam_deny.so
auth	required			pam_permit.so
"""
GOOD_SSHD_CONFIG = """\
# crafted for the test
UsePAM yes
KbdInteractiveAuthentication yes
AuthenticationMethods publickey,keyboard-interactive
"""


def doctor(mfad, *args):
    return mfad.mfactl("doctor", *args)


def doctor_json(mfad, tree, sshd_config):
    r = mfad.mfactl("--json", "doctor", "--pam-dir", tree, "--sshd-config", sshd_config)
    doc = json.loads(r.stdout)
    return r, doc


def make_tree(files, sshd=GOOD_SSHD_CONFIG):
    """A pam.d directory of files (name → text) with common-auth, and an sshd_config."""
    d = make_world_dir("mfa-doctor-")
    pam = os.path.join(d, "pam.d")
    os.mkdir(pam)
    files = dict(files)
    files.setdefault("common-auth", GOOD_COMMON_AUTH)
    for name, text in files.items():
        with open(os.path.join(pam, name), "w") as f:
            f.write(text)
    cfg = os.path.join(d, "sshd_config")
    with open(cfg, "w") as f:
        f.write(sshd)
    return d, pam, cfg


@pytest.fixture
def tree_factory():
    made = []

    def make(files, sshd=GOOD_SSHD_CONFIG):
        d, pam, cfg = make_tree(files, sshd)
        made.append(d)
        return pam, cfg
    yield make
    for d in made:
        shutil.rmtree(d, ignore_errors=True)


def checks_of(doc, check_id):
    return [c for c in doc["checks"] if c["id"] == check_id]


# --- doctor ---------------------------------------------------------------------------------


def test_doctor_good_tree_all_ok(mfad, tree_factory):
    pam, cfg = tree_factory({
        "sshd": "@include common-auth\nauth required pam_mfa.so\nsession optional pam_mfa.so\n",
        "sudo": "@include common-auth\nauth required pam_mfa.so\n",
        "login": "@include common-auth\nauth [success=ok default=die] pam_mfa.so\n",
        "other": "auth required pam_deny.so\n",
    })
    r, doc = doctor_json(mfad, pam, cfg)
    assert set(doc) == {"ok", "checks"}
    for c in doc["checks"]:
        assert set(c) == {"id", "status", "message"}
        assert c["status"] in ("ok", "warn", "fail")
    stacks = checks_of(doc, "pam-stack")
    assert sorted(os.path.basename(c["message"].split(":")[0]) for c in stacks) == \
        ["login", "sshd", "sudo"]
    assert all(c["status"] == "ok" for c in stacks), stacks
    for check_id in ("daemon", "sshd", "sudo", "database", "redis", "key-file"):
        [c] = checks_of(doc, check_id)
        assert c["status"] == "ok", c
    assert checks_of(doc, "clock")  # ok or warn: the host's clock, not the tree's
    assert doc["ok"] is True and r.returncode == 0, r.stdout
    # The text form: one line per check, in the same order.
    t = doctor(mfad, "--pam-dir", pam, "--sshd-config", cfg)
    assert t.returncode == 0
    lines = t.stdout.splitlines()
    assert len(lines) == len(doc["checks"])
    for line, c in zip(lines, doc["checks"]):
        assert line == f"{c['status']} {c['id']} {c['message']}"
        assert re.fullmatch(r"(ok|warn|fail) [a-z-]+ .+", line)


BAD_STACKS = [
    ("auth required pam_unix.so\nauth optional pam_mfa.so\n", "fail", "optional"),
    ("auth sufficient pam_unix.so\nauth required pam_mfa.so\n", "fail",
     "pam_unix.so is sufficient"),
    ("auth required pam_mfa.so\nauth required pam_unix.so\n", "fail",
     "before the password module"),
    ("auth sufficient pam_mfa.so\nauth required pam_unix.so\n", "fail", "a code alone logs in"),
    ("auth required pam_unix.so\nauth [success=ok default=ignore] pam_mfa.so\n"
     "auth required pam_permit.so\n", "fail", "not pam_deny.so"),
    ("auth required pam_unix.so\nauth [success=ok default=ok] pam_mfa.so\n", "fail",
     "a wrong code counts as success"),
    ("auth [success=2 default=ignore] pam_unix.so\nauth requisite pam_deny.so\n"
     "auth required pam_mfa.so\nauth required pam_permit.so\n", "fail", "jumps over pam_mfa.so"),
    ("auth required pam_unix.so\nauth required pam_mfa.so max_tries=99\n", "fail",
     "argument max_tries"),
    ("auth required pam_unix.so\nauth required pam_mfa.so nullok\n", "warn", "nullok"),
    ("auth required pam_unix.so\nauth required pam_mfa.so max_trys=3\n", "warn",
     "unknown argument 'max_trys'"),
    ("auth required pam_unix.so\nauth required pam_mfa.so failmode=ignore\n", "warn",
     "failmode=ignore"),
    ("auth required pam_mfa.so\n", "warn", "no password module"),
]


@pytest.mark.parametrize("stack,status,needle", BAD_STACKS)
def test_doctor_bad_pam_stack(mfad, tree_factory, stack, status, needle):
    pam, cfg = tree_factory({"sshd": stack})
    r, doc = doctor_json(mfad, pam, cfg)
    [c] = checks_of(doc, "pam-stack")
    assert c["status"] == status, c
    assert needle in c["message"], c
    assert c["message"].startswith(os.path.join(pam, "sshd") + ": ")
    assert (r.returncode == 1) == (status == "fail") or status == "warn"
    if status == "fail":
        assert r.returncode == 1 and doc["ok"] is False


BAD_SSHD = [
    ("UsePAM no\nKbdInteractiveAuthentication yes\n"
     "AuthenticationMethods keyboard-interactive\n", "UsePAM"),
    ("UsePAM yes\nKbdInteractiveAuthentication no\n"
     "AuthenticationMethods keyboard-interactive\n", "KbdInteractiveAuthentication is no"),
    ("UsePAM yes\nChallengeResponseAuthentication no\n"
     "AuthenticationMethods keyboard-interactive\n", "KbdInteractiveAuthentication is no"),
    ("UsePAM yes\nKbdInteractiveAuthentication yes\n", "AuthenticationMethods is not set"),
    ("UsePAM yes\nKbdInteractiveAuthentication yes\n"
     "AuthenticationMethods publickey password,keyboard-interactive\n", "list 'publickey'"),
]


@pytest.mark.parametrize("sshd,needle", BAD_SSHD)
def test_doctor_bad_sshd_config(mfad, tree_factory, sshd, needle):
    pam, cfg = tree_factory({"sshd": "@include common-auth\nauth required pam_mfa.so\n"}, sshd)
    r, doc = doctor_json(mfad, pam, cfg)
    [c] = checks_of(doc, "sshd")
    assert c["status"] == "fail" and needle in c["message"], c
    assert r.returncode == 1 and doc["ok"] is False


def test_doctor_sudo_without_pam_mfa_warns(mfad, tree_factory):
    pam, cfg = tree_factory({"sshd": "@include common-auth\nauth required pam_mfa.so\n",
                             "sudo": "@include common-auth\n"})
    _, doc = doctor_json(mfad, pam, cfg)
    [c] = checks_of(doc, "sudo")
    assert c["status"] == "warn" and "sudo needs no second factor" in c["message"]


def test_doctor_no_file_uses_pam_mfa(mfad, tree_factory):
    pam, cfg = tree_factory({"sshd": "@include common-auth\n"})
    _, doc = doctor_json(mfad, pam, cfg)
    [c] = checks_of(doc, "pam-stack")
    assert c["status"] == "warn" and "no file in" in c["message"]


def test_doctor_key_file_mode(mfad, tree_factory):
    pam, cfg = tree_factory({"sshd": "@include common-auth\nauth required pam_mfa.so\n"})
    os.chmod(mfad.key_path, 0o644)
    try:
        r, doc = doctor_json(mfad, pam, cfg)
    finally:
        os.chmod(mfad.key_path, 0o600)
    [c] = checks_of(doc, "key-file")
    assert c["status"] == "fail" and "chmod 600" in c["message"], c
    assert r.returncode == 1


def test_doctor_without_daemon_fails(bus, build_dir, tree_factory):
    pam, cfg = tree_factory({"sshd": "@include common-auth\nauth required pam_mfa.so\n"})
    r = subprocess.run([os.path.join(build_dir, "mfactl", "mfactl"), "--bus-address",
                        bus.address, "--json", "doctor", "--pam-dir", pam, "--sshd-config", cfg],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    [c] = checks_of(doc, "daemon")
    assert c["status"] == "fail" and "systemctl start mfad" in c["message"]


def test_doctor_is_for_admins(mfad, test_users, tree_factory):
    pam, cfg = tree_factory({"sshd": "@include common-auth\nauth required pam_mfa.so\n"})
    r = mfad.mfactl("--json", "doctor", "--pam-dir", pam, "--sshd-config", cfg,
                    user=test_users["mfa-alice"])
    assert r.returncode == 1
    [c] = checks_of(json.loads(r.stdout), "daemon")
    assert c["status"] == "fail" and "AdminGroup" in c["message"]


# --- import ---------------------------------------------------------------------------------


def oathtool_code(secret_b32=None, hexsecret=None, digits=6, period=30):
    args = ["oathtool", "--totp", f"--digits={digits}", f"--time-step-size={period}s"]
    args += ["-b", secret_b32] if secret_b32 else [hexsecret]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()


def make_ga_file(path, *extra):
    """A real ~/.google_authenticator, written by google-authenticator itself."""
    if os.path.lexists(path):
        os.unlink(path)
    subprocess.run(["google-authenticator", "-t", "-d", "-f", "-r", "3", "-R", "30", "-w", "3",
                    "-e", "5", "-q", "-Q", "NONE", "-s", path, *extra], check=True,
                   capture_output=True, timeout=30)
    with open(path) as f:
        lines = f.read().splitlines()
    return lines[0], [line for line in lines[1:] if re.fullmatch(r"\d{8}", line)]


@pytest.fixture
def ga_home(test_users):
    """Puts a real google-authenticator file in a test user's home, removed afterwards."""
    placed = []

    def place(name, owner=None, *extra):
        user = test_users[name]
        path = os.path.join(user.home, ".google_authenticator")
        secret, scratch = make_ga_file(path, *extra)
        uid = pwd.getpwnam(owner).pw_uid if owner else user.uid
        os.chown(path, uid, user.gid)
        placed.append(path)
        return path, secret, scratch
    yield place
    for p in placed:
        if os.path.lexists(p):
            os.unlink(p)


def test_import_google_authenticator_then_login_and_scratch_code(mfad, test_users, ga_home):
    path, secret, scratch = ga_home("mfa-alice")
    r = mfad.mfactl("import", "google-authenticator", "mfa-alice")
    assert r.returncode == 0, r.stderr
    assert "Imported mfa-alice's authenticator" in r.stdout and "5 backup codes" in r.stdout
    for option in ("DISALLOW_REUSE", "WINDOW_SIZE", "RATE_LIMIT"):
        assert option in r.stdout
    assert os.path.exists(path)  # kept without --remove
    st = run_json(mfad, "status", "mfa-alice")
    assert "totp" in st["methods"] and st["backup_codes_left"] == 5
    # The app keeps working: a code of the same secret, from an independent implementation.
    _, v = mfad.login("mfa-alice", oathtool_code(secret))
    assert v.ok and v.result == "totp", v
    # A scratch code is a backup code: once.
    _, v = mfad.login("mfa-alice", scratch[0])
    assert v.ok and v.result == "backup", v
    _, v = mfad.login("mfa-alice", scratch[0])
    assert not v.ok and v.error == "org.mfad1.Error.BadCode", v
    rows = mfad.sql("SELECT kind, details FROM audit WHERE kind = 'enroll.import'")
    assert '"source":"google-authenticator"' in rows and secret not in rows


def test_import_remove_and_refusal_of_an_enrolled_user(mfad, test_users, ga_home):
    path, secret, _ = ga_home("mfa-bob")
    mfad.enroll_totp("mfa-bob")
    r = mfad.mfactl("import", "google-authenticator", "mfa-bob", "--remove")
    assert r.returncode == 1 and "already has a second factor" in r.stderr
    assert os.path.exists(path)  # nothing imported: nothing removed
    doc = run_json(mfad, "import", "google-authenticator", "mfa-bob", "--remove", "--force")
    assert doc["ok"] and doc["imports"][0]["replaced"] and doc["imports"][0]["removed"]
    assert not os.path.exists(path)
    _, v = mfad.login("mfa-bob", oathtool_code(secret))
    assert v.ok, v


def test_import_refuses_a_symlink(mfad, test_users, ga_home):
    # bob's real file; alice links her own name to it, hoping root reads it for her.
    bob_path, _, _ = ga_home("mfa-bob")
    alice = test_users["mfa-alice"]
    link = os.path.join(alice.home, ".google_authenticator")
    os.symlink(bob_path, link)
    os.lchown(link, alice.uid, alice.gid)
    try:
        r = mfad.mfactl("import", "google-authenticator", "mfa-alice", "--remove")
        assert r.returncode == 1 and "symbolic link" in r.stderr, r.stderr
    finally:
        os.unlink(link)
    assert os.path.exists(bob_path)
    assert run_json(mfad, "status", "mfa-alice")["methods"] == []


def test_import_refuses_a_file_of_another_owner(mfad, test_users, ga_home):
    ga_home("mfa-alice", "mfa-bob")
    r = mfad.mfactl("import", "google-authenticator", "mfa-alice")
    assert r.returncode == 1 and "belongs to uid" in r.stderr, r.stderr
    assert run_json(mfad, "status", "mfa-alice")["methods"] == []


def test_import_refuses_hotp_google_authenticator(mfad, test_users):
    d = make_world_dir("mfa-import-")
    try:
        path = os.path.join(d, "ga")
        make_ga_file(path)
        with open(path) as f:
            text = f.read().replace('" TOTP_AUTH', '" HOTP_COUNTER 1')
        with open(path, "w") as f:
            f.write(text)
        r = mfad.mfactl("import", "google-authenticator", "mfa-alice", path)
        assert r.returncode == 1 and "HOTP" in r.stderr, r.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_import_all_homes(mfad, test_users, ga_home):
    _, secret_a, _ = ga_home("mfa-alice")
    _, secret_c, _ = ga_home("mfa-carol", None, "-S", "60")
    # Other accounts of the host may have a file of their own: only ours are asserted.
    r = mfad.mfactl("--json", "import", "google-authenticator", "--all-homes")
    doc = json.loads(r.stdout)
    users = {i["user"]: i for i in doc["imports"]}
    assert users["mfa-alice"]["imported"] and users["mfa-carol"]["imported"], doc
    _, v = mfad.login("mfa-alice", oathtool_code(secret_a))
    assert v.ok, v
    _, v = mfad.login("mfa-carol", oathtool_code(secret_c, period=60))
    assert v.ok, v
    assert run_json(mfad, "status", "mfa-carol")["methods"][0] == "totp"


def test_import_oath_usersfile(mfad, test_users):
    d = make_world_dir("mfa-import-")
    alice_hex = "3132333435363738393031323334353637383930"
    carol_hex = "00112233445566778899aabbccddeeff00112233"
    path = os.path.join(d, "users.oath")
    with open(path, "w") as f:
        f.write("# pam_oath usersfile\n"
                f"HOTP/T30/6 mfa-alice - {alice_hex}\n"
                "HOTP mfa-bob - 00112233445566778899aabbccddeeff0011223\n"
                f"HOTP/T30 mfa-carol 1234 {carol_hex} 0 123456 2026-01-01T00:00:00L\n")
    os.chmod(path, 0o600)
    try:
        r = mfad.mfactl("import", "oath", path, "--remove")
        assert r.returncode == 1
        assert "mfa-bob" in r.stderr and "HOTP (counter-based) is not supported" in r.stderr
        assert "Imported mfa-alice's" in r.stdout and "Imported mfa-carol's" in r.stdout
        assert "PIN is not kept" in r.stdout
        assert os.path.exists(path)  # not everything imported: kept
        _, v = mfad.login("mfa-alice", oathtool_code(hexsecret=alice_hex))
        assert v.ok, v
        _, v = mfad.login("mfa-carol", oathtool_code(hexsecret=carol_hex))
        assert v.ok, v
        assert run_json(mfad, "status", "mfa-bob")["methods"] == []
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_import_is_admin_only(mfad, test_users, ga_home):
    ga_home("mfa-alice")
    r = mfad.mfactl("import", "google-authenticator", "mfa-alice",
                    os.path.join(test_users["mfa-alice"].home, ".google_authenticator"),
                    user=test_users["mfa-alice"])
    assert r.returncode == 1 and "not allowed" in r.stderr, r.stderr


# --- report ---------------------------------------------------------------------------------


def test_report_keys_and_numbers(mfad, test_users):
    secret = mfad.enroll_totp("mfa-alice")
    mfad.enroll_totp("mfa-bob")
    for _ in range(2):
        _, v = mfad.login("mfa-alice", mfad.next_code("mfa-alice", secret))
        assert v.ok
    _, v = mfad.login("mfa-alice", "000000")
    assert not v.ok
    doc = run_json(mfad, "report")
    assert set(doc) == {"users_total", "users_enrolled", "enrolled_percent", "methods", "logins",
                        "verification_success_percent", "lockouts", "sms", "sessions_open",
                        "degraded"}
    assert set(doc["methods"]) == {"totp", "sms", "backup"}
    # Without fleet mode nothing is decided without Redis (fleet.md, "Reconciliation report").
    assert doc["degraded"] == {"decisions": 0, "logins_allowed": 0, "logins_denied": 0,
                               "consumed": 0, "unreplicated": 0, "periods": 0, "reconciled": 0,
                               "refused": 0}
    assert set(doc["logins"]) == {"success", "failure"}
    assert set(doc["sms"]) == {"sent", "failed"}
    assert doc["users_enrolled"] == 2 and doc["methods"]["totp"] == 2
    assert doc["users_total"] >= 3  # every login account of the host, the test users among them
    assert doc["enrolled_percent"] == round(1000 * 2 / doc["users_total"]) / 10
    assert doc["logins"] == {"success": 2, "failure": 1}
    assert doc["verification_success_percent"] == 66.7
    assert doc["lockouts"] == 0 and doc["sms"] == {"sent": 0, "failed": 0}
    # --since after the logins: none of them.
    later = run_json(mfad, "report", "--since", str(int(time.time()) + 5))
    assert later["logins"] == {"success": 0, "failure": 0}
    assert later["users_enrolled"] == 2
    human = mfad.mfactl("report")
    assert human.returncode == 0
    assert "Users enrolled:" in human.stdout and "2 passed, 1 failed" in human.stdout
    assert "GROUP" in human.stdout and "\u2588" in human.stdout


def test_report_is_admin_only(mfad, test_users):
    r = mfad.mfactl("report", user=test_users["mfa-alice"])
    assert r.returncode == 1 and "not allowed" in r.stderr


# --- metrics --------------------------------------------------------------------------------


def read_metrics(path):
    from prometheus_client.parser import text_string_to_metric_families
    with open(path) as f:
        text = f.read()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_metrics_file_parsed_and_updated_after_a_login(mfad_factory, test_users):
    mfad = mfad_factory
    path = os.path.join(mfad.dir, "metrics", "mfad.prom")
    os.mkdir(os.path.dirname(path))
    mfad.set_config("Metrics", "TextfilePath", path)
    mfad.set_config("Metrics", "IntervalSeconds", "1")
    mfad.start()
    assert wait_until(lambda: os.path.exists(path))
    m = read_metrics(path)
    assert m[("mfad_logins_total", (("method", "totp"), ("outcome", "success")))] == 0
    assert m[("mfad_users_enrolled", ())] == 0
    assert m[("mfad_lockouts_total", ())] == 0
    assert m[("mfad_sms_sent_total", (("outcome", "sent"),))] == 0
    assert m[("mfad_sessions_open", ())] == 0
    assert m[("mfad_degraded", ())] == 0
    assert os.stat(path).st_mode & 0o777 == 0o644
    secret = mfad.enroll_totp("mfa-alice")
    _, v = mfad.login("mfa-alice", mfad.next_code("mfa-alice", secret))
    assert v.ok
    _, v = mfad.login("mfa-alice", "000000")
    assert not v.ok

    # The file may be rewritten between the two logins: wait for the write after both.
    def updated():
        m = read_metrics(path)
        return (m[("mfad_logins_total", (("method", "totp"), ("outcome", "success")))] == 1 and
                m[("mfad_logins_total", (("method", "none"), ("outcome", "failure")))] == 1 and m)
    m = wait_until(updated, timeout=10)
    assert m, open(path).read()
    assert m[("mfad_users_enrolled", ())] == 1
    # Written atomically: once mfad stopped, no temporary file is left beside it.
    assert mfad.stop() == 0
    assert os.listdir(os.path.dirname(path)) == ["mfad.prom"]


# --- fleet mode -----------------------------------------------------------------------------


def test_import_on_one_host_logs_in_on_another(mfad_factory, build_dir, test_users, ga_home,
                                               redis):  # noqa: F811 (the fixture)
    """ImportTotp is a change like an enrollment: Redis gets the sealed record, the watermark and
    the backup codes, so the other host of the fleet accepts the app's codes and each scratch code
    once across both."""
    from fleet_helpers import fleet_config, second_host, wait_degraded
    a = mfad_factory
    fleet_config(a, redis)
    a.start()
    host_b = second_host(a, build_dir)
    b = host_b.mfad
    b.start()
    try:
        wait_degraded(a, False)
        wait_degraded(b, False)
        _, secret, scratch = ga_home("mfa-alice")
        r = a.mfactl("import", "google-authenticator", "mfa-alice")
        assert r.returncode == 0, r.stderr
        stored = redis.cli("HGETALL", "mfad:user:{mfa-alice}:factors")
        assert "totp" in stored and secret not in stored
        _, v = b.login("mfa-alice", oathtool_code(secret))
        assert v.ok and v.result == "totp", v
        _, v = b.login("mfa-alice", scratch[1])
        assert v.ok and v.result == "backup", v
        _, v = a.login("mfa-alice", scratch[1])
        assert not v.ok and v.error == "org.mfad1.Error.BadCode", v
        [c] = checks_of(json.loads(a.mfactl("--json", "doctor").stdout), "redis")
        assert c["status"] in ("ok", "warn"), c
    finally:
        host_b.cleanup()
