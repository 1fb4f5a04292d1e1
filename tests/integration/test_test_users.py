"""The tests' own accounts survive what an earlier run left behind: the integration tier and its
ASan twin run one after the other on one machine, and every later test depends on them."""
import subprocess

from conftest import ALICE_ALIAS, _exists, ensure_user

PROBE = "mfa-probe-leftover"


def test_an_account_is_made_again_over_the_group_it_left():
    # Before: useradd refused (status 9, "group exists"): an alias that shared mfa-alice's group
    # kept it when her account was deleted, and every test of the next tier failed at set-up.
    subprocess.run(["groupadd", PROBE], check=True)
    try:
        ensure_user(PROBE)
        out = subprocess.run(["id", "-gn", PROBE], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == PROBE
    finally:
        subprocess.run(["userdel", "--remove", PROBE], capture_output=True)
        subprocess.run(["groupdel", PROBE], capture_output=True)
    assert not _exists("passwd", PROBE) and not _exists("group", PROBE)


def test_the_alias_exists_while_its_test_runs(alice_alias, test_users):
    assert alice_alias == ALICE_ALIAS and _exists("passwd", ALICE_ALIAS)


def test_no_alias_is_left_between_tests(test_users):
    # Runs after the one above (file order): the fixture removed the alias.
    assert not _exists("passwd", ALICE_ALIAS)
