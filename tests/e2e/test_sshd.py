"""The real sshd and the real ssh client: password then code, wrong codes, backup codes, a key then
a code, and what happens when mfad is not there. Recipes: docs/sshd.md."""

import io
import json
import re

import pexpect

from e2e_harness import (CODE_PROMPT, PASSWORD_PROMPT, harness, record_transcript, spawn,
                         ssh_argv, ssh_login, totp)

# "()" when the module ended the login with PAM_MAXTRIES: sshd then offers no further method.
DENIED = re.compile(r"Permission denied \(([a-z,-]*)\)")


def accepted(server, user, method="keyboard-interactive/pam"):
    return f"Accepted {method} for {user} from 127.0.0.1" in server.log_text()


def assert_logged_in(d, user):
    """The command ran on the server, as that user."""
    assert d.unanswered == "", f"unexpected prompt: {d.unanswered}; prompts {d.prompts}"
    assert f"e2e-ok as {user.name}" in d.lines(), f"no output of the command:\n{d.transcript}"
    assert d.exitstatus == 0, f"ssh exited with {d.exitstatus}:\n{d.transcript}"


def assert_refused(d):
    ran = any(line.startswith("e2e-ok") for line in d.lines())
    assert not ran, f"the command ran:\n{d.transcript}"
    assert d.exitstatus == 255, f"ssh exited with {d.exitstatus}:\n{d.transcript}"
    assert DENIED.search(d.transcript), f"no 'Permission denied':\n{d.transcript}"


def assert_not_logged(texts, *secrets):
    for name, text in texts.items():
        for secret in secrets:
            assert not re.search(rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])", text), (
                f"a secret appears in the {name} log")


def test_password_then_totp_code_logs_in(request, test_users, mfad, sshd_factory):
    alice = test_users["mfa-alice"]
    secret = mfad.enroll_totp(alice)
    server = sshd_factory()
    code = mfad.next_code(alice, secret)

    d = ssh_login(server, alice.name, [alice.password], [code], request=request)

    assert_logged_in(d, alice)
    assert d.prompts == ["password", "code"]
    assert accepted(server, alice.name)
    assert_not_logged({"sshd": server.log_text(), "mfad": mfad.log_text()}, alice.password, code)


def test_wrong_code_is_refused_after_max_tries(request, test_users, mfad, sshd_factory):
    alice = test_users["mfa-alice"]
    secret = mfad.enroll_totp(alice)
    server = sshd_factory()
    good = mfad.next_code(alice, secret)
    wrong = [str((int(good) + k) % 1000000).zfill(6) for k in (111111, 222222, 333333)]

    d = ssh_login(server, alice.name, [alice.password], wrong, request=request)

    assert_refused(d)
    # The default max_tries=3: the module asks three times, then the login fails.
    assert d.prompts == ["password", "code", "code", "code"], d.prompts
    assert "Invalid code, 2 tries left" in d.transcript
    assert "Invalid code, 1 try left" in d.transcript
    assert DENIED.search(d.transcript).group(1) == ""  # PAM_MAXTRIES: no method left to try
    assert not accepted(server, alice.name)


def test_one_typo_then_the_right_code_logs_in(request, test_users, mfad, sshd_factory):
    alice = test_users["mfa-alice"]
    secret = mfad.enroll_totp(alice)
    server = sshd_factory()
    code = mfad.next_code(alice, secret)
    typo = str((int(code) + 1) % 1000000).zfill(6)

    d = ssh_login(server, alice.name, [alice.password], [typo, code], request=request)

    assert_logged_in(d, alice)
    assert d.prompts == ["password", "code", "code"]


def test_wrong_password_never_reaches_the_code_prompt(request, test_users, mfad, sshd_factory):
    alice = test_users["mfa-alice"]
    secret = mfad.enroll_totp(alice)
    server = sshd_factory()
    code = mfad.next_code(alice, secret)

    d = ssh_login(server, alice.name, ["not-" + alice.password], [code], request=request)

    assert_refused(d)
    assert d.prompts == ["password"]  # pam_unix is requisite: the stack stops there


def test_replayed_totp_code_is_refused(request, test_users, mfad, sshd_factory):
    alice = test_users["mfa-alice"]
    secret = mfad.enroll_totp(alice)
    server = sshd_factory(module_args=("max_tries=1",))
    code = mfad.next_code(alice, secret)

    first = ssh_login(server, alice.name, [alice.password], [code], request=request)
    again = ssh_login(server, alice.name, [alice.password], [code], request=request)

    assert_logged_in(first, alice)
    assert_refused(again)
    assert again.prompts == ["password", "code"]


def test_backup_code_works_once(request, test_users, mfad, sshd_factory):
    alice = test_users["mfa-alice"]
    mfad.enroll_totp(alice)
    codes = mfad.call("GenerateBackupCodes", "ss", alice.name, "").expect_ok()
    assert len(codes) == 10
    server = sshd_factory(module_args=("max_tries=1",))

    first = ssh_login(server, alice.name, [alice.password], [codes[0]], request=request)
    again = ssh_login(server, alice.name, [alice.password], [codes[0]], request=request)
    other = ssh_login(server, alice.name, [alice.password], [codes[1]], request=request)

    assert_logged_in(first, alice)
    assert_refused(again)
    assert_logged_in(other, alice)
    left = mfad.call("GetUser", "s", alice.name).expect_ok()
    assert left.get("backup_codes_left") == 8, left
    assert_not_logged({"sshd": server.log_text(), "mfad": mfad.log_text()}, codes[0], codes[1])


def test_publickey_then_code(request, test_users, mfad, sshd_factory, client_key,
                             authorize_key):
    alice = test_users["mfa-alice"]
    secret = mfad.enroll_totp(alice)
    authorize_key(alice, client_key + ".pub")
    server = sshd_factory(pam_template="sshd-publickey",
                          auth_methods="publickey,keyboard-interactive")
    code = mfad.next_code(alice, secret)

    d = ssh_login(server, alice.name, [], [code], identity=client_key, request=request)

    assert_logged_in(d, alice)
    assert d.prompts == ["code"]  # the key replaces the password; the code is still asked
    assert f"Partial publickey for {alice.name} from 127.0.0.1" in server.log_text()
    assert accepted(server, alice.name)


def test_publickey_with_wrong_code_is_refused(request, test_users, mfad, sshd_factory,
                                              client_key, authorize_key):
    alice = test_users["mfa-alice"]
    secret = mfad.enroll_totp(alice)
    authorize_key(alice, client_key + ".pub")
    server = sshd_factory(pam_template="sshd-publickey",
                          auth_methods="publickey,keyboard-interactive",
                          module_args=("max_tries=1",))
    wrong = str((int(mfad.next_code(alice, secret)) + 500000) % 1000000).zfill(6)

    d = ssh_login(server, alice.name, [], [wrong], identity=client_key, request=request)

    assert_refused(d)
    assert d.prompts == ["code"]
    # the key alone is only a partial success
    assert f"Partial publickey for {alice.name} from 127.0.0.1" in server.log_text()
    assert not accepted(server, alice.name)


def test_code_alone_without_the_key_is_refused(request, test_users, mfad, sshd_factory):
    alice = test_users["mfa-alice"]
    secret = mfad.enroll_totp(alice)
    server = sshd_factory(pam_template="sshd-publickey",
                          auth_methods="publickey,keyboard-interactive")
    code = mfad.next_code(alice, secret)

    d = ssh_login(server, alice.name, [alice.password], [code], request=request)

    assert_refused(d)
    assert d.prompts == []  # sshd never offers keyboard-interactive before the key
    assert "publickey" in DENIED.search(d.transcript).group(1)


def test_user_without_a_factor_is_refused(request, test_users, mfad, sshd_factory):
    bob = test_users["mfa-bob"]  # never enrolled
    server = sshd_factory()

    d = ssh_login(server, bob.name, [bob.password], ["123456"], request=request)

    assert_refused(d)
    assert "code" not in d.prompts  # nothing to ask for: denied without a prompt


def test_mfad_not_running_fails_closed(request, test_users, mfad, sshd_factory):
    alice = test_users["mfa-alice"]
    secret = mfad.enroll_totp(alice)
    code = mfad.next_code(alice, secret)
    mfad.stop()
    server = sshd_factory()

    d = ssh_login(server, alice.name, [alice.password], [code], request=request)

    assert_refused(d)
    assert "code" not in d.prompts


def test_nullok_lets_users_without_a_factor_in_during_a_rollout(request, test_users, mfad,
                                                                  sshd_factory):
    alice, bob = test_users["mfa-alice"], test_users["mfa-bob"]  # bob never enrolled
    secret = mfad.enroll_totp(alice)
    server = sshd_factory(module_args=("nullok",))

    unenrolled = ssh_login(server, bob.name, [bob.password], [], request=request)
    enrolled = ssh_login(server, alice.name, [alice.password], [mfad.next_code(alice, secret)],
                         request=request)

    assert_logged_in(unenrolled, bob)
    assert unenrolled.prompts == ["password"]
    assert_logged_in(enrolled, alice)
    assert enrolled.prompts == ["password", "code"]  # nullok never skips an enrolled user


def test_user_who_enrolled_with_mfactl_logs_in(request, test_users, mfad, sshd_factory):
    alice = test_users["mfa-alice"]
    # What docs/sshd.md tells users to do, as alice herself: enroll, then confirm with a code.
    begun = mfad.mfactl("--json", "enroll", "totp", user=alice)
    assert begun.returncode == 0, begun.stderr
    secret = json.loads(begun.stdout)["secret"]
    step = harness.current_step()
    confirmed = mfad.mfactl("confirm", "totp", alice.name, totp(secret, step=step), user=alice)
    assert confirmed.returncode == 0, confirmed.stderr
    server = sshd_factory()

    d = ssh_login(server, alice.name, [alice.password], [totp(secret, step=step + 1)],
                  request=request)

    assert_logged_in(d, alice)
    assert d.prompts == ["password", "code"]


def test_same_code_in_two_concurrent_logins_lets_only_one_in(request, test_users, mfad,
                                                             sshd_factory):
    alice = test_users["mfa-alice"]
    secret = mfad.enroll_totp(alice)
    server = sshd_factory(module_args=("max_tries=1",))
    code = mfad.next_code(alice, secret)
    clients = [spawn(ssh_argv(server, alice.name)) for _ in range(2)]
    for child in clients:
        child.logfile_read = io.StringIO()
        record_transcript(request, "concurrent ssh transcript", child.logfile_read)
        child.expect(PASSWORD_PROMPT)
        child.sendline(alice.password)
    for child in clients:
        child.expect(CODE_PROMPT)

    for child in clients:  # both answers are in flight together
        child.sendline(code)
    outputs = []
    for child in clients:
        child.expect(pexpect.EOF, timeout=30)
        child.close()
        outputs.append(child.logfile_read.getvalue().replace("\r", ""))

    logged_in = [f"e2e-ok as {alice.name}\n" in out for out in outputs]
    assert sorted(logged_in) == [False, True], outputs


def test_debian_common_auth_then_pam_mfa(request, test_users, mfad, sshd_factory):
    # docs/sshd.md: keeping "@include common-auth" before the pam_mfa line behaves the same.
    alice = test_users["mfa-alice"]
    secret = mfad.enroll_totp(alice)
    server = sshd_factory(pam_template="sshd-common-auth")

    good = ssh_login(server, alice.name, [alice.password], [mfad.next_code(alice, secret)],
                     request=request)
    bad_password = ssh_login(server, alice.name, ["not-" + alice.password],
                             [mfad.next_code(alice, secret)], request=request)

    assert_logged_in(good, alice)
    assert good.prompts == ["password", "code"]
    assert_refused(bad_password)
    assert bad_password.prompts == ["password"]


def test_failmode_ignore_skips_only_an_unreachable_mfad(request, test_users, mfad, sshd_factory):
    # docs/sshd.md warns that failmode=ignore turns MFA off whenever mfad is down; it must never
    # let a wrong code through while mfad is up.
    alice = test_users["mfa-alice"]
    secret = mfad.enroll_totp(alice)
    server = sshd_factory(module_args=("failmode=ignore", "max_tries=1"))
    wrong = str((int(mfad.next_code(alice, secret)) + 272727) % 1000000).zfill(6)

    refused = ssh_login(server, alice.name, [alice.password], [wrong], request=request)
    mfad.stop()
    unguarded = ssh_login(server, alice.name, [alice.password], [], request=request)

    assert_refused(refused)
    assert refused.prompts == ["password", "code"]
    assert_logged_in(unguarded, alice)
    assert unguarded.prompts == ["password"]
