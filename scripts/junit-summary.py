#!/usr/bin/python3
"""Adds up the JUnit XML files of one test run and prints 'N passed, N failed, N skipped'.

Exits 1 when anything failed, when a file cannot be read (counted as one failure), or when
nothing passed. The failed tests are named above the line, each with the end of its failure."""
import glob
import os
import sys
import xml.etree.ElementTree as ET

DETAIL = 8  # lines of each failure's text shown
LINE = 160  # characters of each of them
DETAILED = 10  # failures shown with their text; the rest are only named

passed = failed = skipped = 0
failed_names = []
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.xml"))):
    name = os.path.basename(path)[:-4]
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        print(f"  {name:18s} unreadable: {e}")
        failed += 1
        failed_names.append((f"{name}: unreadable report", [str(e)]))
        continue
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    for s in suites:
        tests = int(s.get("tests", 0))
        f = int(s.get("failures", 0)) + int(s.get("errors", 0))
        sk = int(s.get("skipped", 0) or s.get("disabled", 0) or 0)
        print(f"  {name:18s} {tests - f - sk:5d} passed {f:4d} failed {sk:4d} skipped")
        passed += tests - f - sk
        failed += f
        skipped += sk
        for case in s.iter("testcase"):
            problem = case.find("failure")
            problem = case.find("error") if problem is None else problem
            if problem is not None:
                cls = case.get("classname", "")
                label = case.get("name") if cls in ("", name) else f"{cls}::{case.get('name')}"
                text = (problem.text or problem.get("message") or "").rstrip().splitlines()
                failed_names.append((f"{name}: {label}", [t for t in text if t.strip()]))
# Each failure is named with the end of its text (the assertion, a tier's last lines): a reader
# who sees only the end of the run's output still sees why.
for i, (n, text) in enumerate(failed_names):
    print(f"  FAILED {n}")
    for line in text[-DETAIL:] if i < DETAILED else []:
        print(f"    | {line[:LINE]}")
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed or passed == 0 else 0)
