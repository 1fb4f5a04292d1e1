"""A full disk under the database: the change is refused with StorageFailure (never a success
that was not saved), the daemon keeps answering, and works again once there is room."""

import os
import subprocess

import pytest


@pytest.fixture
def small_state_dir(mfad_factory):
    os.makedirs(mfad_factory.state_dir)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "mfad-test",
                        mfad_factory.state_dir], capture_output=True, text=True)
    assert r.returncode == 0, f"cannot mount a tmpfs (the tests run as root): {r.stderr}"
    yield mfad_factory.state_dir
    mfad_factory.stop()
    subprocess.run(["umount", mfad_factory.state_dir], check=True)


def fill(directory):
    path = os.path.join(directory, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return path


def test_full_disk_gives_storage_failure(mfad_factory, small_state_dir, test_users):
    mfad = mfad_factory.start()
    mfad.call("GenerateBackupCodes", "ss", "mfa-bob", "").expect_ok()
    filler = fill(small_state_dir)
    try:
        failed = [mfad.call("GenerateBackupCodes", "ss", "mfa-alice", "") for _ in range(3)]
        for reply in failed:
            reply.expect_error("StorageFailure")
        # Reads still work, and nothing was half-saved.
        info = mfad.call("GetUser", "s", "mfa-alice").expect_ok()
        assert info["backup_codes_left"] == 0
        assert "database commit failed" in mfad.log_text()
    finally:
        os.unlink(filler)
    codes = mfad.call("GenerateBackupCodes", "ss", "mfa-alice", "").expect_ok()
    assert len(codes) == 10
    assert mfad.call("GetUser", "s", "mfa-alice").expect_ok()["backup_codes_left"] == 10


def test_wrong_code_not_recorded_gives_storage_failure(mfad_factory, small_state_dir, test_users):
    # A wrong code whose failure could not be saved must not be answered BadCode: a guesser who
    # fills the disk would learn each code's verdict while the lockout never counts (issue 17).
    mfad = mfad_factory.start()
    secret = mfad.enroll_totp("mfa-bob")
    right = mfad.next_code("mfa-bob", secret)
    wrong = "000000" if right != "000000" else "111111"
    filler = fill(small_state_dir)
    try:
        _begin, verify = mfad.login("mfa-bob", wrong)
        assert verify is not None
        verify.expect_error("StorageFailure")
        assert mfad.call("GetUser", "s", "mfa-bob").expect_ok()["failures"] == 0
    finally:
        os.unlink(filler)
    _begin, verify = mfad.login("mfa-bob", wrong)
    verify.expect_error("BadCode")
    assert mfad.call("GetUser", "s", "mfa-bob").expect_ok()["failures"] == 1
