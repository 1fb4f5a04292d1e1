"""The systemd and D-Bus files: a unit systemd accepts without a word, hardened to an exposure of
at most 1.6 while running as the mfad user, and a bus policy dbus-daemon loads (the harness's bus
uses it for every test). scripts/test-package.sh runs the installed unit for real."""

import os
import re
import subprocess
import xml.etree.ElementTree as ET

from conftest import REPO

SYSTEMD = os.path.join(REPO, "systemd")


def unit_copy(tmp_path, build_dir=None):
    # verify wants ExecStart= to exist: point it at a binary that does.
    text = open(os.path.join(SYSTEMD, "mfad.service")).read()
    assert "ExecStart=/usr/libexec/mfad\n" in text
    path = tmp_path / "mfad.service"
    path.write_text(text.replace("/usr/libexec/mfad", "/bin/true"))
    return path


def test_unit_verifies_cleanly(tmp_path):
    unit = unit_copy(tmp_path)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_unit_exposure_at_most_1_6(tmp_path):
    unit = unit_copy(tmp_path)
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager",
                        "--threshold=16", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    m = re.search(r"Overall exposure level for mfad.service: (\d+\.\d)", r.stdout)
    assert m and float(m.group(1)) <= 1.6


def test_unit_contract():
    text = open(os.path.join(SYSTEMD, "mfad.service")).read()
    for line in ("Type=notify", "BusName=org.mfad1", "StateDirectory=mfad",
                 "ConfigurationDirectory=mfad", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "UMask=0077", "User=mfad\n", "LoadCredential=mfad.key:/etc/mfad/master.key\n",
                 "LimitCORE=0\n", "CapabilityBoundingSet=CAP_KILL\n",
                 "AmbientCapabilities=CAP_KILL\n", "Requires=dbus.socket\n",
                 "After=dbus.socket\n"):
        assert line in text
    assert re.search(r"^WatchdogSec=\d+", text, re.M)
    # Nothing under /etc is writable: the key is root's, created by the package.
    assert "ReadWritePaths" not in text
    activation = open(os.path.join(SYSTEMD, "org.mfad1.service")).read()
    assert "Name=org.mfad1\n" in activation and "SystemdService=mfad.service" in activation
    assert "User=mfad\n" in activation


def test_policy_names_every_open_method_and_no_pam_method():
    root = ET.parse(os.path.join(SYSTEMD, "org.mfad1.conf")).getroot()
    default = [p for p in root.findall("policy") if p.get("context") == "default"][0]
    members = {a.get("send_member") for a in default.findall("allow")
               if a.get("send_interface") == "org.mfad1.Manager"}
    assert members == {"GetUser", "BeginTotpEnrollment", "ConfirmTotpEnrollment",
                       "BeginSmsEnrollment", "ConfirmSmsEnrollment", "GenerateBackupCodes",
                       "DisableMethod", "ListSessions", "TerminateSession", "ListUsers",
                       "ResetUser", "Unlock", "ListAuditEvents", "VerifyAuditTrail",
                       "ImportTotp", "GetReport", "CheckHealth", "CreateEnrollmentToken",
                       "ExportUser", "ForgetUser", "ListDevices", "ForgetDevice",
                       "GetEnrollmentNotice", "AcceptEnrollmentNotice", "SendStepUpCode"}
    # No blanket allow for the default context.
    for a in default.findall("allow"):
        assert a.get("send_interface") or a.get("own"), ET.tostring(a)
    owners = {p.get("user") for p in root.findall("policy")
              if any(a.get("own") == "org.mfad1" for a in p.findall("allow"))}
    assert owners == {"root", "mfad"}


def test_sysusers_and_tmpfiles():
    sysusers = open(os.path.join(SYSTEMD, "mfad.sysusers")).read().splitlines()
    assert sysusers[-1] == 'u mfad - "MFA daemon" /var/lib/mfad'
    assert "g mfa-admin -" in sysusers
    # Readable by mfad, which runs the daemon; by nobody else.
    assert "d /etc/mfad 0750 root mfad -" in open(os.path.join(SYSTEMD, "mfad.tmpfiles")).read()


def test_polkit_rule_lets_only_mfad_end_sessions_through_logind():
    rule = open(os.path.join(SYSTEMD, "mfad-logind.rules")).read()
    code = "\n".join(l for l in rule.splitlines() if not l.lstrip().startswith("//"))
    assert re.search(r'action\.id == "org\.freedesktop\.login1\.manage" && subject\.user == "mfad"',
                     code)
    assert code.count("polkit.Result.YES") == 1 and "polkit.Result" not in code.replace(
        "polkit.Result.YES", "")
