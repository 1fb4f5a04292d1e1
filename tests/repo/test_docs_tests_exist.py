"""The docs name tests as proof (docs/compliance.md above all): every `tests/...` or `scripts/...`
path a page names exists, and every `file::function` names a test function that is in that file
(a Python `def`, or a C/C++ function of a cmocka test). A renamed or removed test fails here, with
the page and the reference, instead of leaving a proof that proves nothing."""
import glob
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REFERENCE = re.compile(r"`((?:tests|scripts)/[A-Za-z0-9_./-]+)(?:::([A-Za-z_][A-Za-z0-9_]*))?`")


def references():
    for page in sorted(glob.glob(os.path.join(REPO, "docs", "*.md"))):
        with open(page) as f:
            text = f.read()
        for m in REFERENCE.finditer(text):
            yield os.path.relpath(page, REPO), m.group(1), m.group(2)


def defines(path, function):
    with open(os.path.join(REPO, path)) as f:
        code = f.read()
    if path.endswith(".py"):
        return re.search(rf"^\s*(?:async\s+)?def\s+{function}\s*\(", code, re.M) is not None
    return re.search(rf"^[A-Za-z_][\w:<>\s\*&]*\b{function}\s*\(", code, re.M) is not None


def test_compliance_page_names_tests():
    assert sum(1 for page, _, fn in references() if page == "docs/compliance.md" and fn) >= 40


def test_every_test_a_page_names_exists():
    problems = []
    for page, path, function in references():
        if not os.path.exists(os.path.join(REPO, path.rstrip("/"))):
            problems.append(f"{page}: `{path}` does not exist")
        elif function and not defines(path, function):
            problems.append(f"{page}: `{path}::{function}`: no such function in {path} "
                            "(renamed? update the page)")
    assert not problems, "\n".join(problems)
