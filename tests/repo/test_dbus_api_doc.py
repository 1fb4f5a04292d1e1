"""docs/dbus-api.md documents org.mfad1.Manager exactly: every method, property and signal of
daemon/bus/org.mfad1.Manager.xml (with its signature) and every error name the sources can send
(an "org.mfad1.Error.<Name>" string in common/ or daemon/), and nothing else. A method added to
the XML without its documentation fails here, and the message shows the text to add. Needs no
build and no daemon."""
import glob
import os
import re
import xml.etree.ElementTree as ET

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = "docs/dbus-api.md"
XML = "daemon/bus/org.mfad1.Manager.xml"
INTERFACE = "org.mfad1.Manager"
ERROR_PREFIX = "org.mfad1.Error."


def read(path):
    with open(os.path.join(REPO, path)) as f:
        return f.read()


# --- the interface, from the XML, and the errors, from the sources -------------------------

def args(element, direction=None):
    out = []
    for a in element.findall("arg"):
        if direction is None or a.get("direction", "in") == direction:
            out.append(f"{a.get('type')} {a.get('name')}")
    return ", ".join(out)


def interface():
    """{kind: {name: the signature line the doc must show}}."""
    root = ET.parse(os.path.join(REPO, XML)).getroot()
    iface = root.find(f"interface[@name='{INTERFACE}']")
    assert iface is not None, f"{XML} has no interface {INTERFACE}"
    return {
        "Methods": {m.get("name"): f"{m.get('name')}({args(m, 'in')}) → ({args(m, 'out')})"
                    for m in iface.findall("method")},
        "Properties": {p.get("name"): f"{p.get('name')}: {p.get('type')}, {p.get('access')}"
                       for p in iface.findall("property")},
        "Signals": {s.get("name"): f"{s.get('name')}({args(s)})" for s in iface.findall("signal")},
    }


def error_names():
    """Every "org.mfad1.Error.Name" string literal of common/ and daemon/ (comments excluded)."""
    names = {}
    for path in sorted(glob.glob(os.path.join(REPO, "common", "**", "*.[ch]pp"), recursive=True) +
                       glob.glob(os.path.join(REPO, "daemon", "**", "*.[ch]pp"), recursive=True)):
        code = re.sub(r"//[^\n]*", "", read(path))
        code = re.sub(r"/\*.*?\*/", "", code, flags=re.S)
        for name in re.findall(r'"org\.mfad1\.Error\.([A-Za-z][A-Za-z0-9]*)"', code):
            names.setdefault(name, os.path.relpath(path, REPO))
    return names


# --- the documentation --------------------------------------------------------------------

def doc_sections():
    """{'## title': {'### `Name`' name: body}} for the interface's parts, and the error table."""
    text = read(DOC)
    parts = {}
    for chunk in re.split(r"^## ", text, flags=re.M)[1:]:
        title, _, body = chunk.partition("\n")
        entries = {}
        for sub in re.split(r"^### ", body, flags=re.M)[1:]:
            head, _, sub_body = sub.partition("\n")
            m = re.fullmatch(r"`([A-Za-z0-9_]+)`\s*", head)
            if m:
                entries[m.group(1)] = sub_body
        parts[title.strip()] = (body, entries)
    return parts


def documented_errors():
    body = doc_sections().get("Errors", ("", {}))[0]
    return set(re.findall(r"^\|\s*`org\.mfad1\.Error\.([A-Za-z0-9]+)`", body, flags=re.M))


def test_the_sources_are_read():
    api = interface()
    assert {"BeginAuthentication", "Verify", "GetUser", "ListAuditEvents"} <= set(api["Methods"])
    assert {"Version", "Degraded"} <= set(api["Properties"])
    assert {"SessionOpened", "SessionClosed", "SecurityEvent"} <= set(api["Signals"])
    assert {"BadCode", "RateLimited", "StepUpRequired", "Internal"} <= set(error_names())


def test_every_method_property_and_signal_is_documented_with_its_signature():
    parts = doc_sections()
    problems = []
    for kind, members in interface().items():
        singular = kind[:-1].lower().replace("propertie", "property")
        entries = parts.get(kind, ("", {}))[1]
        if kind not in parts:
            problems.append(f"add a section '## {kind}'")
        for name, signature in members.items():
            if name not in entries:
                problems.append(
                    f"{singular} {name} is not documented: add under '## {kind}':\n\n"
                    f"### `{name}`\n\n`{signature}`\n\n"
                    f"Who may call it (root / self-service / admin), what it does, its "
                    f"arguments and dictionary keys, the errors it returns.\n")
            elif f"`{signature}`" not in entries[name]:
                shown = re.findall(rf"`({re.escape(name)}[(:][^`]*)`", entries[name])
                problems.append(
                    f"the {singular} {name} changed in {XML}: under '### `{name}`' write "
                    f"`{signature}`" + (f" instead of `{shown[0]}`" if shown else "") +
                    " (and describe the new arguments)")
    assert not problems, f"{DOC} is out of date with {XML}:\n\n" + "\n".join(problems)


def test_the_doc_names_only_what_exists():
    parts = doc_sections()
    problems = []
    for kind, members in interface().items():
        for name in parts.get(kind, ("", {}))[1]:
            if name not in members:
                problems.append(f"'### `{name}`' under '## {kind}': {XML} has no such member; "
                                "remove it from the doc (or add it to the XML and the daemon)")
    for name in sorted(documented_errors() - set(error_names())):
        problems.append(f"the error {ERROR_PREFIX}{name}: no source in common/ or daemon/ sends "
                        "it; remove its row")
    assert not problems, f"{DOC} names what the daemon does not have:\n" + "\n".join(problems)


def test_every_error_is_documented():
    missing = {n: p for n, p in error_names().items() if n not in documented_errors()}
    assert not missing, (
        f"{DOC} does not document error(s) the daemon sends: add, to the table under "
        "'## Errors':\n" + "\n".join(
            f"| `{ERROR_PREFIX}{n}` | when it is returned; what the caller should do |"
            f"        (the name is in {p})" for n, p in sorted(missing.items())))
