"""Which files are scenario files: the collection rule, cheap enough for every pytest session.

The plugin asks this for every ``*.yaml``/``*.yml`` file pytest walks past, in every project
where netring is installed, so it judges a file by a line scan of a bounded prefix (never a YAML parse), and imports
only :mod:`yaml` and the schema (no jsonschema, no netlink, no C core).
"""
import os
import re

import yaml

from .limits import DEFAULT_LIMITS
from .messages import schema

__all__ = ["scenario_file_status", "is_scenario_file", "find_scenario_files"]

_SCENARIOS_LINE = re.compile(r"^scenarios\s*:", re.MULTILINE)
_EXPLICIT_KEY_LINE = re.compile(r"^\?(?:[ \t]|$)", re.MULTILINE)

# Column-0 "KEY:" lines: the top-level keys of a block-style mapping, found without parsing
# (an anchor or tag before the key is skipped: `&a config: …` is the key config).
_TOP_KEY_LINE = re.compile(r"""^(?!---|\.\.\.)(?:[&!][^\s]*[ \t]+)*("(?:[^"\\\n]|\\.)*"|'(?:[^'\n]|'')*'|[^\s#%@`!&*|>{}\[\],?'"-][^:#\n]*?|-[^\s:#][^:#\n]*?)[ \t]*:(?:[ \t]|$)""",
                           re.MULTILINE)


def _top_level_key_allowed(key):
    """True for a key the schema allows at the top of a scenario file (besides ``scenarios``)."""
    if not isinstance(key, str):
        return False
    sch = schema()
    if key in sch.get("properties", {}):
        return True
    return any(re.search(pat, key) for pat in sch.get("patternProperties", {}))


def _foreign_top_keys(keys):
    return sorted(str(k) for k in keys if not _top_level_key_allowed(k))


def scenario_file_status(path, explicit=False, limits=None):
    """Decide whether ``path`` is a scenario file; returns ``(is_scenario, reason)``.

    The collection rule (the README, "YAML scenarios → Collection rule"): a ``*.yaml``/``*.yml``
    file is a scenario file when

    a. ``explicit`` is true (the file was named on the command line): always — loading it
       then reports every problem; or
    b. a line starts with ``scenarios:`` and no other line at column 0 starts with a key the
       schema does not allow beside it (only ``x-*`` and ``.*`` anchor keys), nor with an
       explicit ``?`` key. Only the first ``limits.file_size`` bytes are read and nothing is
       parsed as YAML: pytest asks this for every YAML file next to the ones it collects. A file
       that is collected is parsed when it is loaded, which reports its problems — its syntax
       error, or its size over the limit.

    ``reason`` says why a file is not one (``""`` when it is); useful for "why wasn't my file
    collected?" messages.
    """
    path = os.fspath(path)
    if not path.endswith((".yaml", ".yml")):
        return False, "not a *.yaml/*.yml file"
    if explicit:
        return True, ""
    limits = limits or DEFAULT_LIMITS
    try:
        with open(path, "rb") as f:
            head = f.read(limits.file_size)
    except OSError as exc:
        return False, "cannot read it (%s)" % exc
    text = head.decode("utf-8", "replace")  # bytes that are not UTF-8 are the loader's located error
    if not _SCENARIOS_LINE.search(text):
        return False, "no line starts with 'scenarios:'"
    if _EXPLICIT_KEY_LINE.search(text):
        return False, "a top-level '?' key (an explicit key the line scan cannot judge)"
    line_keys = []
    for m in _TOP_KEY_LINE.finditer(text):
        k = m.group(1)
        if k[:1] in "\"'":
            try:
                k = yaml.safe_load(k)  # one quoted scalar, not the file
            except yaml.YAMLError:
                pass
        line_keys.append(k)
    foreign = _foreign_top_keys(line_keys)
    if foreign:
        return False, "top-level key%s %s besides 'scenarios'" % ("s" if len(foreign) > 1 else "", ", ".join(foreign))
    return True, ""


def is_scenario_file(path, explicit=False):
    """True when ``path`` is a scenario file under the collection rule (see :func:`scenario_file_status`).

    ``explicit=True`` means the user named the file (pytest command line, ``netring-testkit
    validate FILE``): every ``*.yaml``/``*.yml`` file then counts, so its problems are reported.
    Otherwise (files found under a directory) only files whose top level is ``scenarios:``
    plus ``x-*``/``.*`` keys count, so unrelated YAML (CI configs, Artillery load tests with
    their own ``scenarios:``) is never parsed as a scenario file.
    """
    return scenario_file_status(path, explicit=explicit)[0]


def find_scenario_files(paths, limits=None):
    """Scenario files for ``paths``, in order: a ``*.yaml``/``*.yml`` file named directly counts
    (explicit); directories are searched recursively for files that pass the rule on their own
    (hidden directories, ``__pycache__`` and ``node_modules`` skipped), sorted."""
    out = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in ("__pycache__", "node_modules"))
                for f in sorted(files):
                    full = os.path.join(root, f)
                    if scenario_file_status(full, limits=limits)[0]:
                        out.append(full)
        elif is_scenario_file(p, explicit=True):
            out.append(p)
    return out


