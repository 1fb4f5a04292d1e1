"""The man pages name everything a user can type: every mfactl verb (from mfactl's dispatch in
mfactl/*.cpp), every mfad.conf key (from the table in config_keys*.cpp, in its own section of
mfad.conf(5)), every pam_mfa.so argument (from pam_args*.cpp, wherever the layers keep it) and
every option of mfad and mfactl. A verb,
key or argument added to the source without its man page fails here, and the message says what
to add where. Needs no build."""
import glob
import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAN = os.path.join(REPO, "packaging", "man")


def read(path):
    with open(os.path.join(REPO, path)) as f:
        return f.read()


PRODUCT_DIRS = ("common", "daemon", "mfactl", "pam_module")


def sources(pattern):
    """(path, text) of the product's files named like pattern ("config_keys*.cpp"), in any layer:
    a file that moves to another layer is still read."""
    paths = sorted({p for d in PRODUCT_DIRS
                    for p in glob.glob(os.path.join(REPO, d, "**", pattern), recursive=True)})
    return [(os.path.relpath(p, REPO), read(p)) for p in paths]


def strip_comments(code):
    code = re.sub(r"/\*.*?\*/", " ", code, flags=re.S)
    return re.sub(r"//[^\n]*", " ", code)


# --- what the sources accept ---------------------------------------------------------------

def mfactl_verbs():
    """Top-level verbs: `verb == "x"` in the dispatch, or `{"x", cmd_...}` rows of a table."""
    verbs = set()
    for path, code in sources("*.cpp"):
        if not path.startswith("mfactl/"):
            continue
        code = strip_comments(code)
        verbs.update(re.findall(r'\bverb\s*==\s*"([a-z][a-z0-9-]*)"', code))
        verbs.update(re.findall(r'\{\s*"([a-z][a-z0-9-]*)"\s*,\s*&?cmd_\w+', code))
    return verbs


def config_keys():
    """(section, key) of every row `{"Section", "Key", <how to apply>}`; the rules between keys
    (`{"Section", "Key", "message"}`) are not keys."""
    keys = set()
    for _, code in sources("config_keys*.cpp"):
        code = strip_comments(code)
        row = r'\{\s*"([A-Z][A-Za-z0-9]*)"\s*,\s*"([A-Z][A-Za-z0-9]*)"\s*,\s*(?!")'
        keys.update(re.findall(row, code))
    return keys


def pam_arguments():
    args = set()
    for _, code in sources("pam_args*.cpp"):
        code = strip_comments(code)
        args.update(re.findall(r'\bname\s*==\s*"([a-z][a-z0-9_]*)"', code))
    return args


# --- what the man pages say ----------------------------------------------------------------

def roff_text(line):
    """A roff line as it reads: macros, font changes, quotes and escapes removed; words that
    .BR/.IR/... alternate are joined as troff joins them."""
    m = re.match(r"^\.(B|I|BR|RB|BI|IB|IR|RI)\s+(.*)$", line)
    if m:
        parts = re.findall(r'"[^"]*"|\S+', m.group(2))
        line = "".join(p.strip('"') for p in parts) if len(m.group(1)) == 2 else " ".join(
            p.strip('"') for p in parts)
    elif line.startswith("."):
        return ""
    line = re.sub(r"\\f[BIRP]|\\f\(..", "", line)
    line = line.replace("\\-", "-").replace("\\(aq", "'").replace("\\~", " ").replace("\\&", "")
    return line


def man_sections(page):
    """{section title: [lines as text]} of a man page."""
    sections, current = {}, None
    for line in read(os.path.join("packaging", "man", page)).splitlines():
        m = re.match(r'^\.SH\s+"?(.*?)"?\s*$', line)
        if m:
            current = m.group(1)
            sections.setdefault(current, [])
            continue
        if current is not None:
            sections[current].append(line)
    return sections


def tagged_items(lines):
    """The tag lines of the .TP items of a section, as text."""
    return [roff_text(lines[i + 1]) for i, l in enumerate(lines[:-1]) if l.startswith(".TP")]


def test_the_parsers_still_see_the_sources():
    # A refactor of the dispatch or of a table must not make this test pass by finding nothing.
    assert {"status", "enroll", "confirm", "backup-codes", "disable", "reset", "unlock", "users",
            "sessions", "terminate", "audit"} <= mfactl_verbs()
    assert {("Daemon", "StateDirectory"), ("TOTP", "Window"), ("Redis", "HostId"),
            ("Audit", "RetentionDays")} <= config_keys()
    assert ("SMS", "Provider") in config_keys()
    assert {"debug", "nullok", "failmode", "max_tries", "timeout", "prompt", "methods",
            "use_first_pass", "try_first_pass", "forward_pass", "bus_address"} <= pam_arguments()


def test_every_mfactl_verb_is_in_mfactl_1():
    sections = man_sections("mfactl.1")
    assert "VERBS" in sections, "packaging/man/mfactl.1 has no .SH VERBS section"
    documented = {t.split()[0] for t in tagged_items(sections["VERBS"]) if t.split()}
    missing = sorted(mfactl_verbs() - documented)
    assert not missing, (
        "packaging/man/mfactl.1 does not document the mfactl verb(s) " + ", ".join(missing) +
        ": add under .SH VERBS, for each, an item such as\n" + "\n".join(
            f'.TP\n.BR {v} " [\\fIUSER\\fR]"\nWhat it does (admin?).' for v in missing))


def test_every_mfactl_1_verb_exists():
    documented = {t.split()[0] for t in tagged_items(man_sections("mfactl.1")["VERBS"])
                  if t.split()}
    gone = sorted(documented - mfactl_verbs())
    assert not gone, f"packaging/man/mfactl.1 documents verb(s) mfactl does not have: {gone}"


def test_every_config_key_is_in_its_section_of_mfad_conf_5():
    sections = man_sections("mfad.conf.5")
    problems = []
    for section, key in sorted(config_keys()):
        title = f"[{section}]"
        if title not in sections:
            problems.append(
                f"add a section '.SH {title}' naming '.BR {key}= DEFAULT' and what it does")
            continue
        text = " ".join(roff_text(l) for l in sections[title])
        if not re.search(rf"(?<![A-Za-z]){re.escape(key)}=", text):
            problems.append(f"under '.SH {title}' add '.BR {key}= DEFAULT' and what it does")
    assert not problems, "packaging/man/mfad.conf.5 lacks config keys " \
        "(config_keys.cpp):\n" + "\n".join(problems)


def test_every_mfad_conf_5_section_exists():
    known = {s for s, _ in config_keys()}
    documented = {t[1:-1] for t in man_sections("mfad.conf.5") if re.fullmatch(r"\[\w+\]", t)}
    gone = sorted(documented - known)
    assert not gone, f"packaging/man/mfad.conf.5 documents section(s) mfad does not read: {gone}"


def test_every_pam_argument_is_in_pam_mfa_8():
    sections = man_sections("pam_mfa.8")
    assert "OPTIONS" in sections, "packaging/man/pam_mfa.8 has no .SH OPTIONS section"
    documented = {re.split(r"[=\s]", t)[0] for t in tagged_items(sections["OPTIONS"]) if t}
    missing = sorted(pam_arguments() - documented)
    assert not missing, (
        "packaging/man/pam_mfa.8 does not document the argument(s) " + ", ".join(missing) +
        " (pam_args.cpp): add under .SH OPTIONS, for each, an item such as\n" +
        "\n".join(f".TP\n.BI {a}= VALUE\nWhat it does; the default." for a in missing))
    gone = sorted(documented - pam_arguments())
    assert not gone, \
        f"packaging/man/pam_mfa.8 documents argument(s) pam_mfa.so does not take: {gone}"


def long_options(path):
    """The getopt_long names of a program's option table."""
    code = strip_comments(read(path))
    return set(re.findall(r'\{\s*"([a-z][a-z0-9-]*)"\s*,\s*(?:no|required|optional)_argument', code))


def page_text(page):
    return "\n".join(roff_text(l) for l in read(os.path.join("packaging", "man", page)).splitlines()
                     if not l.startswith(".\\\""))


def test_every_mfad_option_is_in_mfad_8():
    options = long_options("daemon/main.cpp")
    assert {"config", "check-config", "version"} <= options
    documented = {t.split()[0] for t in tagged_items(man_sections("mfad.8").get("OPTIONS", []))
                  if t.startswith("--")}
    missing = sorted(f"--{o}" for o in options if f"--{o}" not in documented)
    assert not missing, "packaging/man/mfad.8 does not document mfad's option(s) " + \
        ", ".join(missing) + " (daemon/main.cpp): add under .SH OPTIONS, for each, an item " \
        "such as\n" + "\n".join(f".TP\n.B \\-\\-{o[2:]}\nWhat it does." for o in missing)


def test_every_mfactl_option_is_in_mfactl_1():
    options = long_options("mfactl/main.cpp")
    assert {"json", "bus-address", "current-code", "phone", "since"} <= options
    text = page_text("mfactl.1")
    missing = sorted(f"--{o}" for o in options
                     if not re.search(rf"(?<![\w-])--{re.escape(o)}(?![\w-])", text))
    assert not missing, "packaging/man/mfactl.1 does not mention mfactl's option(s) " + \
        ", ".join(missing) + " (mfactl/main.cpp): add each to the verb it belongs to (under " \
        ".SH VERBS, as \\fB\\-\\-name\\fR), or under .SH OPTIONS when every verb takes it"
