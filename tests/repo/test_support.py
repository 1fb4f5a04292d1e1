"""Where to go with a bug or a vulnerability: the README has a Support section that sends security
problems to SECURITY.md, and SECURITY.md gives a disclosure process, the supported versions and
the project's own contact address (the one the Debian packaging names), not a placeholder."""
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(path):
    with open(os.path.join(REPO, path)) as f:
        return f.read()


def project_address():
    m = re.search(r"^Upstream-Contact:.*<([^>]+)>", read("packaging/debian/copyright"), re.M)
    assert m, "packaging/debian/copyright has no Upstream-Contact address"
    return m.group(1)


def test_readme_support_section_points_to_security_md():
    readme = read("README.md")
    m = re.search(r"^## Support\n(.*?)(?=^## |\Z)", readme, re.S | re.M)
    assert m, "README.md has no '## Support' section"
    assert "SECURITY.md" in m.group(1)
    assert project_address() in m.group(1)


def test_security_md_has_process_versions_and_the_project_address():
    text = read("SECURITY.md")
    for heading in ("## Supported versions", "## Reporting a vulnerability",
                    "## What happens next"):
        assert heading in text, f"SECURITY.md lacks '{heading}'"
    assert project_address() in text, "SECURITY.md must name the project's address " \
        f"({project_address()}, packaging/debian/copyright)"
    assert ".invalid" not in text
    version = re.search(r"project\(mfad VERSION (\d+\.\d+)\.", read("CMakeLists.txt")).group(1)
    assert f"{version}.x" in text, f"SECURITY.md's supported versions do not name {version}.x"
