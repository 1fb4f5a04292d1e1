"""The test command's own machinery: scripts/junit-record.py and scripts/junit-summary.py count
every failure (a tier that wrote no report, a runner that crashed, an unreadable report), and
scripts/demo.sh and the tests start their private bus from one configuration."""
import os
import re
import subprocess
import xml.etree.ElementTree as ET

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = "/usr/bin/python3"


def record(*args):
    subprocess.run([PYTHON, os.path.join(REPO, "scripts", "junit-record.py"), *map(str, args)],
                   check=True, capture_output=True, text=True)


def summary(results):
    r = subprocess.run([PYTHON, os.path.join(REPO, "scripts", "junit-summary.py"), str(results)],
                       capture_output=True, text=True)
    return r.returncode, r.stdout.splitlines()[-1], r.stdout


def write_log(path, text="line 1\nthe error\n"):
    path.write_text(text)
    return path


def test_a_tier_without_a_report_is_one_test_named_after_it(tmp_path):
    log = write_log(tmp_path / "build.log")
    record("tier", tmp_path / "build.xml", "build", 0, log)
    assert summary(tmp_path)[:2] == (0, "1 passed, 0 failed, 0 skipped")
    record("tier", tmp_path / "format.xml", "format", 1, log)
    rc, line, out = summary(tmp_path)
    assert (rc, line) == (1, "1 passed, 1 failed, 0 skipped")
    assert "FAILED format" in out
    assert "the error" in (tmp_path / "format.xml").read_text()


def test_a_runner_failing_without_a_failed_test_counts_as_a_failure(tmp_path):
    (tmp_path / "integration.xml").write_text(
        '<testsuites><testsuite name="pytest" tests="3" failures="0" errors="0" skipped="1">'
        '</testsuite></testsuites>')
    record("tier", tmp_path / "integration.xml", "integration", 2, write_log(tmp_path / "i.log"))
    assert summary(tmp_path)[:2] == (1, "2 passed, 1 failed, 1 skipped")
    # A report that counts its failures already needs nothing more.
    (tmp_path / "integration-exit.xml").unlink()
    (tmp_path / "unit.xml").write_text('<testsuite tests="2" failures="1"></testsuite>')
    record("tier", tmp_path / "unit.xml", "unit", 8, write_log(tmp_path / "u.log"))
    assert not (tmp_path / "unit-exit.xml").exists()
    assert summary(tmp_path)[:2] == (1, "3 passed, 1 failed, 1 skipped")


def test_blocked_tiers_fuzz_cases_and_unreadable_reports_count(tmp_path):
    record("blocked", tmp_path / "unit.xml", "unit", "the release build failed")
    ok, crash = write_log(tmp_path / "ok.log"), write_log(tmp_path / "crash.log", "==1==ERROR\n")
    record("cases", tmp_path / "fuzz.xml", "fuzz", "fuzz_a", 0, ok, "fuzz_b", 77, crash)
    root = ET.parse(tmp_path / "fuzz.xml").getroot()
    assert [c.get("name") for c in root.iter("testcase")] == ["fuzz_a", "fuzz_b"]
    assert "==1==ERROR" in root.find("testcase[@name='fuzz_b']/failure").text
    (tmp_path / "e2e.xml").write_text("<testsuite tests=")
    rc, line, out = summary(tmp_path)
    assert (rc, line) == (1, "1 passed, 3 failed, 0 skipped")
    assert "FAILED unit" in out and "fuzz_b" in out and "e2e: unreadable" in out


def test_the_summary_shows_the_end_of_each_failure(tmp_path):
    # CI shows only the end of a run's output: the cause of a failed tier must be there.
    lines = "".join(f"gcovr line {i}\n" for i in range(100)) + "Exiting because of parse errors.\n"
    record("tier", tmp_path / "coverage.xml", "coverage", 1, write_log(tmp_path / "c.log", lines))
    rc, line, out = summary(tmp_path)
    assert (rc, line) == (1, "0 passed, 1 failed, 0 skipped")
    shown = out.split("FAILED coverage", 1)[1]
    assert "| Exiting because of parse errors." in shown and "| gcovr line 99" in shown
    assert "gcovr line 90" not in shown  # bounded: the last lines only
    # Many failures: each named, the first ones with their text.
    (tmp_path / "coverage.xml").unlink()
    cases = []
    for i in range(15):
        cases += [f"fuzz_{i:02d}", 1, write_log(tmp_path / f"f{i}.log", f"crash {i:02d}\n")]
    record("cases", tmp_path / "fuzz.xml", "fuzz", *cases)
    out = summary(tmp_path)[2]
    assert out.count("FAILED fuzz") == 15 and "| crash 09" in out and "crash 10" not in out


def test_nothing_passed_is_a_failure(tmp_path):
    assert summary(tmp_path)[0] == 1


def test_test_all_records_every_tier_and_adds_them_up():
    text = open(os.path.join(REPO, "scripts", "test-all.sh")).read()
    assert not re.search(r"^set -[a-z]*e", text, re.M), "set -e would stop at the first failure"
    for name in ["deps", "format", "build", "unit", "repo", "integration", "e2e", "asan-build",
                 "unit-asan", "integration-asan", "fuzz-build", "fuzz"]:
        assert re.search(rf"\b(tier|blocked) \"?{name}\b", text), name
    assert "junit-summary.py" in text.splitlines()[-1]


def test_demo_and_tests_start_their_bus_from_one_configuration():
    template = os.path.join("tests", "bus", "system-bus.conf.in")
    with open(os.path.join(REPO, "scripts", "demo.sh")) as f:
        assert template in f.read()
    with open(os.path.join(REPO, "tests", "integration", "conftest.py")) as f:
        assert '"tests", "bus", "system-bus.conf.in"' in f.read()
    root = ET.parse(os.path.join(REPO, template)).getroot()
    assert root.find("listen").text == "unix:path=@SOCKET@"
    assert root.find("includedir").text == "@POLICY_DIR@"
