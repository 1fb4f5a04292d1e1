"""Helpers for the daemon's integration tests (test_daemon_*.py), on top of conftest.py."""

import json
import os
import subprocess
import xml.etree.ElementTree as ET

from conftest import PYTHON, REPO, run_as, sanitizer_env

XML_PATH = os.path.join(REPO, "daemon", "bus", "org.mfad1.Manager.xml")
INTERFACE = "org.mfad1.Manager"


def interface_shape(xml_text, interface=INTERFACE):
    """Methods, signals and properties of one interface: names, arg names, types, directions."""
    root = ET.fromstring(xml_text)
    for iface in root.iter("interface"):
        if iface.get("name") != interface:
            continue
        methods = {
            m.get("name"): [(a.get("name"), a.get("type"), a.get("direction", "in"))
                            for a in m.findall("arg")]
            for m in iface.findall("method")
        }
        signals = {
            s.get("name"): [(a.get("name"), a.get("type")) for a in s.findall("arg")]
            for s in iface.findall("signal")
        }
        props = {p.get("name"): (p.get("type"), p.get("access")) for p in iface.findall("property")}
        return {"methods": methods, "signals": signals, "properties": props}
    raise AssertionError(f"interface {interface} not found")


def busctl(bus, *args, user=None, timeout=30):
    argv = ["busctl", f"--address={bus.address}", *args]
    if user is None:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return run_as(user, argv, timeout=timeout)


# A dbus-python client that holds one connection while it polls: challenges belong to the
# connection that began them. The body sees `bus`, `mgr` (the Manager interface), `dbus`, `time`,
# `out` (a dict printed as JSON at the end) and `call(name, *args)` → (ok, value_or_error_name).
_SCRIPT_PRELUDE = r"""
import json, sys, time, dbus
bus = dbus.bus.BusConnection(sys.argv[1])
mgr = dbus.Interface(bus.get_object("org.mfad1", "/org/mfad1", introspect=False),
                     "org.mfad1.Manager")
out = {}
def call(name, *args, **kw):
    try:
        return True, getattr(mgr, name)(*args, **kw)
    except dbus.exceptions.DBusException as e:
        return False, e.get_dbus_name()
"""


def dbus_script(bus, body, user=None, timeout=60):
    script = _SCRIPT_PRELUDE + body + "\nprint(json.dumps(out))\n"
    argv = [PYTHON, "-c", script, bus.address]
    if user is None:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           env=sanitizer_env())
    else:
        r = run_as(user, argv, timeout=timeout)
    assert r.returncode == 0, f"D-Bus client failed: {r.stderr}"
    return json.loads(r.stdout)


def start_dbus_script(bus, body):
    """dbus_script in the background: returns the Popen; its stdout is the JSON of `out`."""
    script = _SCRIPT_PRELUDE + body + "\nprint(json.dumps(out))\n"
    return subprocess.Popen([PYTHON, "-c", script, bus.address], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=sanitizer_env())


def run_mfad(mfad, *args, timeout=30):
    """Runs the mfad binary with extra arguments (e.g. --check-config); CompletedProcess."""
    return subprocess.run([mfad.binary, *args], capture_output=True, text=True, timeout=timeout,
                          env=sanitizer_env())


def far_code(secret, step_offset=-1000, digits=6):
    """A well-formed code that is not valid now (a step far outside any window)."""
    from conftest import current_step, totp
    return totp(secret, step=current_step() + step_offset, digits=digits)
