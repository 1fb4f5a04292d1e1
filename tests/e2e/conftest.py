"""pytest wiring for the end-to-end tests: the fixtures of e2e_harness.py (which reuses
tests/integration/conftest.py's) and the failure report that shows sshd's and mfad's logs.

Run as root:  MFA_BUILD_DIR=<build> /usr/bin/python3 -m pytest -v tests/e2e
"""

import pytest

from e2e_harness import (  # noqa: F401 (fixtures are found by name)
    _tail, authorize_key, build_dir, bus, client_key, e2e_deadline, mfad, mfad_factory, namespace,
    pam_module, ssh_host_key, sshd_factory, test_users)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for server in getattr(item, "_e2e_sshd", []):
        report.sections.append((f"sshd log ({server.name})", _tail(server.log_text())))
    for name in ("mfad", "mfad_factory"):
        m = item.funcargs.get(name) if hasattr(item, "funcargs") else None
        if m is not None and hasattr(m, "log_text"):
            report.sections.append(("mfad log", _tail(m.log_text())))
            break
    for title, text in getattr(item, "_e2e_transcripts", []):
        if hasattr(text, "getvalue"):  # a transcript still being written
            text = text.getvalue()
        report.sections.append((title, _tail(text)))


