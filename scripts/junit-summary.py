#!/usr/bin/python3
"""Adds up the JUnit XML files of one test run and prints 'N passed, N failed, N skipped'."""
import glob
import os
import sys
import xml.etree.ElementTree as ET

passed = failed = skipped = 0
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.xml"))):
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.iter("testsuite")
    for s in suites:
        tests = int(s.get("tests", 0))
        f = int(s.get("failures", 0)) + int(s.get("errors", 0))
        sk = int(s.get("skipped", 0) or s.get("disabled", 0) or 0)
        name = os.path.basename(path)[:-4]
        print(f"  {name:18s} {tests - f - sk:5d} passed {f:4d} failed {sk:4d} skipped")
        passed += tests - f - sk
        failed += f
        skipped += sk
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed or passed == 0 else 0)
