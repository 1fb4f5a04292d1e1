#!/usr/bin/python3
"""Writes the JUnit XML of a test tier whose command writes none, or whose command failed without
its own JUnit file saying so, so that scripts/junit-summary.py counts every failure.

  junit-record.py tier XML NAME RC LOG
      After a tier ran with exit status RC (its output in LOG). XML missing or unreadable: writes
      XML with one test, NAME, failed with LOG's tail when RC != 0 or XML was unreadable (a build,
      the format check, a command that crashed before writing its report). XML present, RC != 0
      and no failure counted in it: writes NAME-exit.xml beside it with one failed test (a
      collection error, a crashed test runner).
  junit-record.py cases XML SUITE NAME RC LOG [NAME RC LOG ...]
      One test per NAME, failed with LOG's tail when RC != 0 (the fuzz targets).
  junit-record.py blocked XML NAME REASON
      One failed test, NAME: the tier could not run at all (REASON says why).
"""
import os
import sys
import xml.etree.ElementTree as ET

TAIL = 60  # lines of a log kept in a failure


def tail(log):
    try:
        with open(log, errors="replace") as f:
            return "".join(f.readlines()[-TAIL:])
    except OSError as e:
        return f"(no log: {e})"


def write(path, suite, cases):
    """cases: [(name, failure message or None, text)]."""
    failures = sum(1 for _, message, _ in cases if message is not None)
    root = ET.Element("testsuite", name=suite, tests=str(len(cases)), failures=str(failures),
                      errors="0", skipped="0")
    for name, message, text in cases:
        case = ET.SubElement(root, "testcase", classname=suite, name=name)
        if message is not None:
            failure = ET.SubElement(case, "failure", message=message)
            failure.text = text
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def failures_in(path):
    """The failures and errors counted in a JUnit file; None when it cannot be read."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    return sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)


def tier(path, name, rc, log):
    rc = int(rc)
    counted = failures_in(path) if os.path.exists(path) else None
    if counted is None:
        message = None if rc == 0 else f"{name} exited with status {rc}"
        if rc == 0 and os.path.exists(path):
            message = f"{name} wrote an unreadable JUnit file"
        write(path, name, [(name, message, tail(log))])
    elif rc != 0 and counted == 0:
        write(path[:-4] + "-exit.xml", f"{name}-exit",
              [(f"{name}-exit", f"{name} exited with status {rc} but its report counts no "
                "failure", tail(log))])


def cases(path, suite, triples):
    if not triples or len(triples) % 3:
        sys.exit("cases: NAME RC LOG triples expected")
    rows = []
    for i in range(0, len(triples), 3):
        name, rc, log = triples[i:i + 3]
        message = None if int(rc) == 0 else f"{name} exited with status {rc}"
        rows.append((name, message, tail(log) if message else ""))
    write(path, suite, rows)


def main(argv):
    if len(argv) >= 6 and argv[1] == "tier":
        tier(*argv[2:6])
    elif len(argv) >= 7 and argv[1] == "cases":
        cases(argv[2], argv[3], argv[4:])
    elif len(argv) == 5 and argv[1] == "blocked":
        write(argv[2], argv[3], [(argv[3], f"{argv[3]} did not run: {argv[4]}", argv[4])])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
