"""Checks on the repository itself: the README's commands and CI agree, the shipped files parse."""
import os
import re
import subprocess
import xml.etree.ElementTree as ET

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(path):
    with open(os.path.join(REPO, path)) as f:
        return f.read()


def ci_command():
    lines = [l.strip() for l in read(".ci/run").splitlines()]
    cmds = [l for l in lines if l and not l.startswith("#") and not l.startswith("set ")
            and not l.startswith("cd ")]
    assert len(cmds) == 1, f".ci/run should run exactly one command, found {cmds}"
    return cmds[0]


def test_ci_runs_exactly_the_readme_test_command():
    readme = read("README.md")
    m = re.search(r"<!-- test-command -->\s*```sh\n(.*?)```", readme, re.S)
    assert m, "README.md has no test command block marked <!-- test-command -->"
    readme_cmds = [l.strip() for l in m.group(1).splitlines() if l.strip()]
    # The README's block is run from a fresh clone: its last line is the command .ci/run runs.
    assert readme_cmds[-1] == ci_command()


def test_readme_main_command_exists():
    readme = read("README.md")
    m = re.search(r"<!-- main-command -->\s*```sh\n(.*?)```", readme, re.S)
    assert m, "README.md has no main command block marked <!-- main-command -->"
    script = m.group(1).split()[-1]
    assert os.path.exists(os.path.join(REPO, script)), script


def test_introspection_xml_parses_and_names_the_contract_methods():
    root = ET.parse(os.path.join(REPO, "daemon", "bus", "org.mfad1.Manager.xml")).getroot()
    iface = root.find("interface[@name='org.mfad1.Manager']")
    methods = {m.get("name") for m in iface.findall("method")}
    contract = read("../shared/CONTRACT.md") if os.path.exists(
        os.path.join(REPO, "..", "shared", "CONTRACT.md")) else ""
    for name in ["BeginAuthentication", "SendSmsCode", "Verify", "EndAuthentication",
                 "OpenSession", "CloseSession", "GetUser", "BeginTotpEnrollment",
                 "ConfirmTotpEnrollment", "BeginSmsEnrollment", "ConfirmSmsEnrollment",
                 "GenerateBackupCodes", "DisableMethod", "ListSessions", "TerminateSession",
                 "ListUsers", "ResetUser", "Unlock", "ListAuditEvents"]:
        assert name in methods, name
        if contract:
            assert f"`{name}`" in contract or name in contract


def test_shell_scripts_parse():
    for path in [".ci/run", "scripts/test-all.sh", "scripts/demo.sh", "scripts/deps.sh",
                 "scripts/test-package.sh", "packaging/completion/mfactl"]:
        r = subprocess.run(["bash", "-n", os.path.join(REPO, path)], capture_output=True,
                           text=True)
        assert r.returncode == 0, f"{path}: {r.stderr}"


def test_readme_install_block_is_what_the_package_tier_does():
    readme = read("README.md")
    m = re.search(r"<!-- install-command -->\s*```sh\n(.*?)```", readme, re.S)
    assert m, "README.md has no install block marked <!-- install-command -->"
    block = m.group(1)
    tier = read("scripts/test-package.sh")
    for step in ("cp -r packaging/debian debian", "apt-get build-dep -y ./",
                 "dpkg-buildpackage -us -uc -b", "mfactl enroll totp",
                 "pam-auth-update --enable mfa", "KbdInteractiveAuthentication yes"):
        assert step in block, step
    for step in ('cp -r "$src/packaging/debian" "$src/debian"', "apt-get build-dep -y",
                 "dpkg-buildpackage -us -uc -b", "enroll totp", "pam-auth-update --enable mfa",
                 "KbdInteractiveAuthentication yes"):
        assert step in tier, step


def test_debian_maintainer_scripts():
    deb = os.path.join(REPO, "packaging", "debian")
    for name in sorted(os.listdir(deb)):
        if name.split(".")[-1] in ("postinst", "prerm", "postrm", "preinst"):
            text = read(os.path.join("packaging", "debian", name))
            assert text.startswith("#!/bin/sh\n") and "\nset -e\n" in text, name
            assert "#DEBHELPER#" in text, name
            r = subprocess.run(["sh", "-n", os.path.join(deb, name)], capture_output=True,
                               text=True)
            assert r.returncode == 0, f"{name}: {r.stderr}"
    profile = read("packaging/pam-configs/mfa")
    assert "Default: no\n" in profile and "Session-Interactive-Only: yes\n" in profile
    # pam-auth-update orders by priority, then by name descending: at 0 (as libpam-systemd's
    # "systemd"), pam_systemd's session comes first and pam_mfa sees XDG_SESSION_ID.
    assert "Priority: 0\n" in profile


if os.environ.get("MFA_SELFTEST_FAIL") == "1":
    def test_selftest_deliberate_failure():
        """Exists only under MFA_SELFTEST_FAIL=1 (scripts/test-all.sh): a failure on purpose, to
        show that the summary counts it and the run exits non-zero."""
        assert False, "MFA_SELFTEST_FAIL=1: this test fails on purpose"
