"""The admin recipes in docs/ are the stacks the e2e tests run: every PAM file the tests use appears
in its page, complete and line for line (minus the tests' bus_address=), and every sshd_config
line a page shows is in the tests' sshd_config. Needs no build."""

import os
import re

import pytest

from e2e_harness import HERE, PAM_DIR, REPO, pam_lines

PAGES = {
    "sshd": "docs/sshd.md",
    "sshd-publickey": "docs/sshd.md",
    "sudo": "docs/sudo.md",
    "su": "docs/console.md",
    "login": "docs/console.md",
}


def code_blocks(path):
    with open(os.path.join(REPO, path)) as f:
        return re.findall(r"^```[a-z]*\n(.*?)^```", f.read(), re.S | re.M)


def template_rules(name):
    with open(os.path.join(PAM_DIR, name)) as f:
        return pam_lines(f.read())


@pytest.mark.parametrize("template", sorted(PAGES))
def test_page_shows_the_tested_stack_complete(template):
    rules = template_rules(template)
    assert any("pam_mfa.so" in r for r in rules)
    blocks = [pam_lines(b) for b in code_blocks(PAGES[template])]
    assert rules in blocks, f"{PAGES[template]} has no block equal to tests/e2e/pam/{template}"


# Module arguments that tests add to a stack (besides bus_address=), so a page may show them.
TESTED_ARGUMENTS = {
    "sshd": [("nullok",)],  # test_sshd.py::test_nullok_lets_users_without_a_factor_in_...
    "sudo": [("fresh=300",)],  # test_fresh.py::test_sudo_in_the_fresh_login_session_...
}


# Tested stacks a page shows only in part (the rest is the host's own file).
PARTIAL = {"sshd-common-auth": "docs/sshd.md"}


def rules_under_test(page):
    tested = set()
    for name, p in list(PAGES.items()) + list(PARTIAL.items()):
        if p != page:
            continue
        rules = template_rules(name)
        tested.update(rules)
        for args in TESTED_ARGUMENTS.get(name, []):
            tested.update(" ".join([r, *args]) for r in rules if r.endswith("pam_mfa.so"))
    return tested


@pytest.mark.parametrize("page", sorted(set(PAGES.values())))
def test_every_pam_line_on_the_page_is_tested(page):
    tested = rules_under_test(page)
    for block in code_blocks(page):
        for rule in pam_lines(block):
            if re.match(r"(auth|account|session|password)\s", rule):
                assert rule in tested, f"{page}: '{rule}' is not in a tested stack"
                assert "bus_address" not in rule


def test_sshd_config_lines_on_the_page_are_the_tested_ones():
    with open(os.path.join(HERE, "sshd_config.in")) as f:
        template = f.read()
    tested = set()
    for methods in ("keyboard-interactive", "publickey,keyboard-interactive"):
        tested |= set(pam_lines(template.replace("@AUTH_METHODS@", methods)))
    shown = 0
    for block in code_blocks("docs/sshd.md"):
        lines = pam_lines(block)
        if lines and lines[0].startswith("UsePAM"):
            for line in lines:
                assert line in tested, f"docs/sshd.md: '{line}' is not in the tests' sshd_config"
                shown += 1
    assert shown >= 8
