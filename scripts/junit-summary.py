#!/usr/bin/python3
"""Adds up the JUnit XML files of one test run and prints 'N passed, N failed, N skipped'.

Exits 1 when anything failed, when a file cannot be read (counted as one failure), or when
nothing passed. The failed tests are named above the line."""
import glob
import os
import sys
import xml.etree.ElementTree as ET

passed = failed = skipped = 0
failed_names = []
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.xml"))):
    name = os.path.basename(path)[:-4]
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        print(f"  {name:18s} unreadable: {e}")
        failed += 1
        failed_names.append(f"{name}: unreadable report")
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
            if case.find("failure") is not None or case.find("error") is not None:
                cls = case.get("classname", "")
                label = case.get("name") if cls in ("", name) else f"{cls}::{case.get('name')}"
                failed_names.append(f"{name}: {label}")
for n in failed_names:
    print(f"  FAILED {n}")
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed or passed == 0 else 0)
