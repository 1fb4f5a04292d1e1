"""`mfactl enroll totp --svg FILE`: the QR code as an SVG file that decodes (zbarimg, after
rsvg-convert rasterises it) to the otpauth URI, created new with mode 0600."""

import os
import shutil
import stat
import subprocess

import pytest

from mfactl_helpers import run_json

needs_tools = pytest.mark.skipif(
    not (shutil.which("zbarimg") and shutil.which("rsvg-convert")),
    reason="needs zbar-tools and librsvg2-bin (scripts/deps.sh)")


@needs_tools
def test_svg_decodes_to_the_uri_and_is_private(mfad, test_users, tmp_path):
    path = tmp_path / "qr.svg"
    doc = run_json(mfad, "enroll", "totp", "mfa-bob", "--svg", str(path))
    assert doc["svg"] == str(path)
    st = os.lstat(path)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    png = tmp_path / "qr.png"
    subprocess.run(["rsvg-convert", "-o", str(png), str(path)], check=True)
    out = subprocess.run(["zbarimg", "--quiet", "--raw", str(png)], capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == doc["uri"]


def test_svg_never_replaces_a_file_or_follows_a_link(mfad, test_users, tmp_path):
    existing = tmp_path / "there.svg"
    existing.write_text("keep me")
    r = mfad.mfactl("enroll", "totp", "mfa-bob", "--svg", str(existing))
    assert r.returncode == 1
    assert f"mfactl: {existing} exists already" in r.stderr
    assert existing.read_text() == "keep me"
    target = tmp_path / "target"
    link = tmp_path / "link.svg"
    link.symlink_to(target)
    r = mfad.mfactl("enroll", "totp", "mfa-bob", "--svg", str(link))
    assert r.returncode == 1
    assert not target.exists()


def test_svg_human_output_names_the_file(mfad, test_users, tmp_path):
    path = tmp_path / "human.svg"
    r = mfad.mfactl("enroll", "totp", "mfa-bob", "--svg", str(path), input="")
    assert r.returncode == 0, r.stderr
    assert f"Wrote the QR code to {path} (mode 0600" in r.stdout
    assert path.read_text().startswith("<?xml")


def test_svg_does_not_apply_to_other_verbs(mfad, test_users):
    r = mfad.mfactl("status", "--svg", "/tmp/x.svg")
    assert r.returncode == 2
    assert "--svg does not apply to 'status'" in r.stderr
