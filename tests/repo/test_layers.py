"""The layers of the tree (docs/architecture.md), checked on the sources themselves: which folder
may include which, tests that link libraries instead of compiling product sources, file sizes,
and nothing but main.cpp directly in daemon/. Each failure names the offending file:line.

The include roots of the build (mfa_own_headers in CMakeLists.txt) already refuse most upward
includes at compile time; this test says which line, and also covers what the compiler cannot
see (a relative "../" include, a layer that links more than it should)."""
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Folder (relative to the repository) -> layer. daemon/ itself holds main.cpp only.
FOLDERS = {
    "common": "common",
    "daemon/core": "core",
    "daemon/storage": "storage",
    "daemon/sms": "sms",
    "daemon/fleet": "fleet",
    "daemon/bus": "bus",
    "daemon": "main",
    "mfactl": "mfactl",
    "pam_module": "pam_module",
}
# The first component of an include ("core/store.hpp") -> the layer it belongs to.
PREFIXES = {"common": "common", "core": "core", "storage": "storage", "sms": "sms",
            "fleet": "fleet", "bus": "bus", "mfactl": "mfactl", "pam_module": "pam_module"}
# What each layer may include: itself and the layers below it. common < core < storage <
# sms, fleet < bus < main; sms and fleet know neither each other nor bus; mfactl and the PAM
# module are clients of the bus API and share only common.
MAY_INCLUDE = {
    "common": {"common"},
    "core": {"common", "core"},
    "storage": {"common", "core", "storage"},
    "sms": {"common", "core", "storage", "sms"},
    "fleet": {"common", "core", "storage", "fleet"},
    "bus": {"common", "core", "storage", "sms", "fleet", "bus"},
    "main": {"common", "core", "storage", "sms", "fleet", "bus", "main"},
    "mfactl": {"common", "mfactl"},
    "pam_module": {"common", "pam_module"},
}
SOURCE_EXTENSIONS = (".cpp", ".hpp", ".c", ".h")
MAX_LINES = 700
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def rel(path):
    return os.path.relpath(path, REPO)


def layer_of_folder(folder):
    """The layer of a folder relative to the repository (its deepest known ancestor), or None."""
    while folder:
        if folder in FOLDERS:
            return FOLDERS[folder]
        folder = os.path.dirname(folder)
    return None


def product_sources():
    """Every C/C++ file of the product (common, daemon, mfactl, pam_module)."""
    roots = sorted({f.split("/")[0] for f in FOLDERS})
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(os.path.join(REPO, root)):
            dirnames.sort()
            for name in sorted(filenames):
                if name.endswith(SOURCE_EXTENSIONS):
                    yield os.path.join(dirpath, name)


def include_layer(source, kind, target):
    """The layer an include of target from source reaches, or None for a system header."""
    first = target.split("/")[0]
    if kind == '"':
        beside = os.path.normpath(os.path.join(os.path.dirname(source), target))
        if os.path.exists(beside) or first in (".", ".."):
            return layer_of_folder(os.path.dirname(rel(beside))) or f"outside ({rel(beside)})"
    if first in PREFIXES and "/" in target:
        return PREFIXES[first]
    return None


def test_includes_point_down_the_layers():
    offences = []
    for source in product_sources():
        layer = layer_of_folder(os.path.dirname(rel(source)))
        assert layer, f"{rel(source)}: in no layer; add its folder to FOLDERS"
        with open(source, errors="replace") as f:
            for number, line in enumerate(f, 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                reached = include_layer(source, m.group(1), m.group(2))
                if reached is not None and reached not in MAY_INCLUDE[layer]:
                    offences.append(f"{rel(source)}:{number}: {layer} includes {m.group(2)} "
                                    f"({reached})")
    assert not offences, "includes that reach up or across a layer:\n" + "\n".join(offences)


def test_layer_rules_are_complete():
    assert set(MAY_INCLUDE) == set(FOLDERS.values())
    assert set(PREFIXES.values()) <= set(MAY_INCLUDE)


def test_tests_and_benches_link_libraries_instead_of_compiling_product_sources():
    """A test or bench target links the layer's library; a product .cpp named by path would be
    compiled a second time, with other flags, outside its layer."""
    product = tuple(sorted({f.split("/")[0] + "/" for f in FOLDERS}))
    source_file = re.compile(r'[^\s()"]+\.(?:cpp|cc|cxx|c)\b')
    offences = []
    for dirpath, dirnames, filenames in os.walk(os.path.join(REPO, "tests")):
        dirnames.sort()
        for name in sorted(filenames):
            if name != "CMakeLists.txt" and not name.endswith(".cmake"):
                continue
            path = os.path.join(dirpath, name)
            with open(path) as f:
                for number, line in enumerate(f, 1):
                    code = line.split("#", 1)[0]
                    for token in source_file.findall(code):
                        resolved = token
                        for var in ("CMAKE_CURRENT_SOURCE_DIR", "CMAKE_CURRENT_LIST_DIR"):
                            resolved = resolved.replace("${%s}" % var, dirpath)
                        for var in ("PROJECT_SOURCE_DIR", "CMAKE_SOURCE_DIR", "mfad_SOURCE_DIR"):
                            resolved = resolved.replace("${%s}" % var, REPO)
                        if not os.path.isabs(resolved):
                            resolved = os.path.join(dirpath, resolved)
                        if rel(os.path.normpath(resolved)).startswith(product):
                            offences.append(f"{rel(path)}:{number}: compiles {token}")
    assert not offences, "product sources compiled by tests:\n" + "\n".join(offences)


def test_no_source_file_over_700_lines():
    offences = []
    for source in product_sources():
        with open(source, errors="replace") as f:
            count = sum(1 for _ in f)
        if count > MAX_LINES:
            offences.append(f"{rel(source)}:{MAX_LINES + 1}: {count} lines, at most {MAX_LINES}")
    assert not offences, "files to split by concern:\n" + "\n".join(offences)


def test_daemon_folder_holds_only_main_cpp():
    """daemon/ holds the layers' folders and main.cpp; every other source lives in its layer."""
    offences = [f"daemon/{name}:1: belongs in a layer's folder"
                for name in sorted(os.listdir(os.path.join(REPO, "daemon")))
                if name.endswith(SOURCE_EXTENSIONS) and name != "main.cpp"]
    assert not offences, "\n".join(offences)
