"""YAML scenarios: loading with file/line locations, schema and semantic validation, matrix expansion.

A **scenario file** is a ``*.yaml``/``*.yml`` file whose top level is a mapping with a
``scenarios:`` key; any other YAML is not a scenario file and is ignored by collection.
Each entry of ``scenarios`` is one scenario; a scenario with a ``matrix`` becomes one
:class:`Scenario` per combination of the matrix values, with id ``name[k1=v1-k2=v2]``
(keys in the order they are written) and every ``${k}`` placeholder replaced by the value.
A string that is exactly ``"${k}"`` takes the value with its YAML type (``size: "${size}"``
becomes the integer 64); a placeholder inside a longer string is replaced textually.

Validation happens in three steps, and every problem found is reported at once, each
located as ``FILE:LINE:COL: FIELD.PATH: what is wrong and what was expected``:

1. YAML syntax (the parser's own position);
2. the published JSON Schema (``netring_testkit/schema/scenario.schema.json``, usable by
   editors) against each expanded scenario;
3. semantic checks the schema cannot express: endpoints exist, a stream's ``from``/``to``
   are connected (veth links, bridges, XDP redirects), placeholders resolve, names are unique,
   frame sizes fit the headers plus the 20-byte stamp and the link MTU, and so on.

Public API: :func:`load`, :func:`load_text`, :func:`is_scenario_file`, :func:`find_scenario_files`,
:func:`schema`, :class:`Scenario` and its parts, :class:`CountExpr`, :class:`Problem`,
:class:`ScenarioSpecError`.
"""
import copy
import difflib
import functools
import itertools
import json
import math
import os
import random
import re
import shutil
import zlib

import yaml

from netring import stamp as _stamp
from netring.errors import ScenarioError

__all__ = [
    "SCHEMA_PATH", "schema", "Problem", "ScenarioSpecError", "CountExpr", "Stream", "XdpSpec",
    "CaptureSpec", "StreamExpect", "Scenario", "load", "load_text", "is_scenario_file", "scenario_file_status",
    "find_scenario_files", "parse_duration", "parse_rate", "min_frame_size", "BUILTIN_PROGRAMS",
    "check_requires", "check_runtime_requires", "bpf_object_programs", "MATRIX_MAX", "COUNT_MAX", "STREAMS_MAX",
    "CAPABILITIES",
]

#: Path of the published JSON Schema (point your editor's YAML language server at it).
SCHEMA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema", "scenario.schema.json")

#: Built-in XDP programs a scenario may name in ``program:``.
BUILTIN_PROGRAMS = ("pass", "drop", "aborted", "tx", "redirect", "filter")

STAMP_LEN = _stamp.STAMP_LEN
DEFAULT_TIMEOUT = 30.0
DEFAULT_QUIET = 0.5
DEFAULT_COUNT = 10000

#: Most combinations one scenario's ``matrix`` may expand to (checked before expanding).
MATRIX_MAX = 1000
#: Most frames one stream may send (``count``): the sequence checker (:mod:`netring.check`) tracks 2**32 per stream.
COUNT_MAX = 0xFFFFFFFF
#: Most streams one scenario may have: a stream's id is its position in ``traffic`` and the stamp holds 16 bits.
STREAMS_MAX = _stamp.STREAM_ID_MAX + 1

#: Linux capability names and bits (``linux/capability.h``); ``requires.capabilities`` accepts these.
CAPABILITIES = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3, "CAP_FSETID": 4,
    "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15, "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19, "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27, "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31, "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35, "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38, "CAP_BPF": 39, "CAP_CHECKPOINT_RESTORE": 40,
}

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WHOLE_PLACEHOLDER = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_SCENARIOS_LINE = re.compile(r"^scenarios\s*:", re.MULTILINE)


# --------------------------------------------------------------------------------------------
# problems
# --------------------------------------------------------------------------------------------
def format_path(path):
    """Render a field path tuple as ``scenarios[0].traffic[1].count``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += "[%d]" % part
        elif re.match(r"^[A-Za-z_][A-Za-z0-9_-]*$", str(part)):
            out += ("." if out else "") + str(part)
        else:
            out += "[%s]" % json.dumps(str(part))
    return out or "(top level)"


class Problem:
    """One located problem in a scenario file: ``file``, ``line``, ``column`` (1-based), ``path``, ``message``."""

    __slots__ = ("file", "line", "column", "path", "message")

    def __init__(self, file, line, column, path, message):
        self.file = file
        self.line = line
        self.column = column
        self.path = tuple(path)
        self.message = message

    def _key(self):
        return (self.file, self.line, self.column, self.path, self.message)

    def __eq__(self, other):
        return isinstance(other, Problem) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __str__(self):
        where = "%s:%s:%s" % (self.file, self.line or "?", self.column or "?")
        return "%s: %s: %s" % (where, format_path(self.path), self.message)

    def __repr__(self):
        return "Problem(%r)" % str(self)


class ScenarioSpecError(ScenarioError, ValueError):
    """A scenario file is invalid. ``problems`` lists every located :class:`Problem`; the message shows them all."""

    def __init__(self, problems):
        self.problems = list(problems)
        n = len(self.problems)
        head = "%d problem%s in scenario file %s:" % (n, "" if n == 1 else "s",
                                                         self.problems[0].file if self.problems else "?")
        super().__init__("\n".join([head] + ["  " + str(p) for p in self.problems]))


# --------------------------------------------------------------------------------------------
# YAML with locations
# --------------------------------------------------------------------------------------------
class _Doc:
    """A loaded YAML document: ``data`` (plain Python values) and the location of every field path."""

    def __init__(self, filename, data, locs):
        self.filename = filename
        self.data = data
        self._locs = locs  # path tuple -> (line, col), 1-based

    def where(self, path):
        """(line, col) of ``path`` or of its nearest located ancestor."""
        path = tuple(path)
        while True:
            if path in self._locs:
                return self._locs[path]
            if not path:
                return (1, 1)
            path = path[:-1]

    def problem(self, path, message):
        line, col = self.where(path)
        return Problem(self.filename, line, col, path, message)


def _compose(text, filename):
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}, []
        locs = {}
        problems = []
        data = _construct(loader, node, (), locs, problems, filename)
        return data, locs, problems
    finally:
        loader.dispose()


def _mark(node):
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _construct(loader, node, path, locs, problems, filename, depth=0):
    locs.setdefault(path, _mark(node))
    if depth > 100:
        raise yaml.YAMLError("nesting deeper than 100 levels")
    if isinstance(node, yaml.MappingNode):
        explicit = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}
        loader.flatten_mapping(node)  # resolves `<<: *anchor` merge keys (merged pairs come first)
        out = {}
        merged_keys = set()
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                line, col = _mark(knode)
                problems.append(Problem(filename, line, col, path, "mapping keys must be plain scalars"))
                continue
            # Keys are taken as written: YAML 1.1 would turn `on:` (capture) into True.
            key = knode.value
            if key in out and key in merged_keys and id(knode) in explicit:
                merged_keys.discard(key)  # an explicit key overrides a merged one, as YAML says
            elif key in out:
                line, col = _mark(knode)
                problems.append(Problem(filename, line, col, path + (key,),
                                        "duplicate key %r (the earlier value would be silently lost)" % key))
                continue
            if id(knode) not in explicit:
                merged_keys.add(key)
            locs[path + (key,)] = _mark(vnode) if not isinstance(vnode, yaml.ScalarNode) else _mark(knode)
            out[key] = _construct(loader, vnode, path + (key,), locs, problems, filename, depth + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(loader, v, path + (i,), locs, problems, filename, depth + 1)
                for i, v in enumerate(node.value)]
    value = loader.construct_object(node, deep=True)
    if not isinstance(value, (str, int, float, bool, type(None))):
        # dates, binary…: keep as their text so the schema reports the type mismatch with a location
        value = str(node.value)
    return value


def _load_doc(text, filename):
    try:
        data, locs, problems = _compose(text, filename)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        msg = "YAML syntax error: %s%s" % (exc.problem or "invalid YAML",
                                           " (%s)" % exc.context if exc.context else "")
        raise ScenarioSpecError([Problem(filename, line, col, (), msg)]) from None
    except yaml.YAMLError as exc:
        raise ScenarioSpecError([Problem(filename, None, None, (), "YAML error: %s" % exc)]) from None
    except RecursionError:
        raise ScenarioSpecError([Problem(filename, None, None, (), "YAML nesting too deep")]) from None
    if problems:
        raise ScenarioSpecError(problems)
    return _Doc(filename, data, locs)


# --------------------------------------------------------------------------------------------
# schema
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def schema():
    """The published JSON Schema of scenario files, as a dict."""
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        return json.load(f)


@functools.lru_cache(maxsize=2)
def _validator(part=None):
    """A validator for the whole file, or (``part="scenario"``) for one scenario entry."""
    import jsonschema

    sch = schema()
    if part:
        sch = {"$schema": sch["$schema"], "$defs": sch["$defs"], "$ref": "#/$defs/%s" % part}
    cls = jsonschema.validators.validator_for(sch)
    return cls(sch, format_checker=cls.FORMAT_CHECKER)


def _describe_value(value):
    if isinstance(value, (dict, list)):
        text = json.dumps(value, default=str)
        return text if len(text) <= 60 else text[:57] + "..."
    return repr(value)


_TYPE_NAMES = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
               "number": "a number", "boolean": "true or false", "null": "null"}


def _type_phrase(t):
    if isinstance(t, list):
        return " or ".join(_TYPE_NAMES.get(x, x) for x in t)
    return _TYPE_NAMES.get(t, t)


def _schema_messages(err, base_path):
    """Turn a jsonschema ValidationError into [(path, message)], descending into anyOf branches."""
    path = tuple(base_path) + tuple(err.absolute_path)
    sch = err.schema if isinstance(err.schema, dict) else {}
    v = err.validator
    if v in ("anyOf", "oneOf") and err.context:
        # Pick the branches whose type matched the value; if exactly one, report its inner errors.
        branches = {}
        for sub in err.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        candidates = []
        for idx, subs in branches.items():
            branch = err.validator_value[idx]
            if isinstance(branch, dict) and branch.get("$ref") == "#/$defs/param":
                continue
            if any(s.validator in ("type", "enum", "const") and not s.relative_path
                   and len(s.relative_schema_path) <= 2 for s in subs):
                continue
            candidates.append(subs)
        if len(candidates) == 1 and any(s.relative_path for s in candidates[0]):
            out = []
            for s in candidates[0]:
                out.extend(_schema_messages(s, base_path))
            return out
        expected = sch.get("x-expected") or "a valid value"
        return [(path, "expected %s, got %s" % (expected, _describe_value(err.instance)))]
    if v == "required":
        missing = [k for k in err.validator_value if k not in err.instance]
        return [(path, "missing required field %s" % ", ".join(repr(k) for k in missing))]
    if v == "additionalProperties" and isinstance(err.instance, dict) and err.validator_value is False:
        allowed = sorted(sch.get("properties", {}))
        pats = list(sch.get("patternProperties", {}))
        out = []
        for key in err.instance:
            if key in allowed or any(re.search(p, key) for p in pats):
                continue
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = " (did you mean %r?)" % close[0] if close else ""
            out.append((path + (key,), "unknown field %r%s; allowed fields: %s" % (key, hint, ", ".join(allowed))))
        return out
    if v == "propertyNames":
        expected = (err.validator_value or {}).get("x-expected") or _expected_from(err.validator_value)
        return [(path + (err.instance,) if not isinstance(err.instance, dict) else path,
                 "key %s is not allowed here; expected %s" % (_describe_value(err.instance), expected))]
    expected = sch.get("x-expected")
    if v == "type":
        expected = expected or _type_phrase(err.validator_value)
    elif v == "enum":
        expected = expected or "one of: %s" % ", ".join(str(x) for x in err.validator_value)
        if isinstance(err.instance, str):
            close = difflib.get_close_matches(err.instance, [x for x in err.validator_value if isinstance(x, str)], n=1)
            if close:
                return [(path, "expected %s, got %s (did you mean %r?)" % (expected, _describe_value(err.instance),
                                                                          close[0]))]
    elif v == "minimum":
        expected = expected or "a number >= %s" % err.validator_value
    elif v == "maximum":
        expected = expected or "a number <= %s" % err.validator_value
    elif v == "exclusiveMinimum":
        expected = expected or "a number > %s" % err.validator_value
    elif v == "minItems":
        return [(path, "expected at least %d item%s, got %d" % (err.validator_value,
                 "" if err.validator_value == 1 else "s", len(err.instance)))]
    elif v == "maxItems":
        return [(path, "expected at most %d items, got %d" % (err.validator_value, len(err.instance)))]
    elif v == "minProperties":
        return [(path, "expected a non-empty mapping")]
    elif v == "format":
        expected = expected or "a valid %s address" % err.validator_value
    elif v in ("pattern", "maxLength"):
        expected = expected or "a string matching %s" % err.validator_value
    else:
        expected = expected or err.message
    return [(path, "expected %s, got %s" % (expected, _describe_value(err.instance)))]


def _expected_from(sch):
    if isinstance(sch, dict):
        if "enum" in sch:
            return "one of: %s" % ", ".join(map(str, sch["enum"]))
        if "$ref" in sch:
            ref = sch["$ref"].rsplit("/", 1)[-1]
            return schema()["$defs"].get(ref, {}).get("x-expected", ref)
        if "pattern" in sch:
            return "a name matching %s" % sch["pattern"]
    return "a valid key"


def _has_placeholder(value):
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, dict):
        return any(_has_placeholder(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_placeholder(v) for v in value)
    return False


def _schema_problems(doc, instance, base_path, skip_placeholders=False, part=None):
    out = []
    for err in sorted(_validator(part).iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
        if skip_placeholders and isinstance(err.instance, str) and "${" in err.instance:
            want = err.validator_value if err.validator == "type" else None
            want = [want] if isinstance(want, str) else (want or [])
            if not want or not set(want) <= {"object", "array"}:
                continue  # may be valid once the matrix value is substituted
        for path, msg in _schema_messages(err, base_path):
            out.append(doc.problem(path, msg))
    return out


# --------------------------------------------------------------------------------------------
# value parsing
# --------------------------------------------------------------------------------------------
def parse_duration(value):
    """Seconds from ``10``, ``2.5``, ``"10s"``, ``"500ms"`` or ``"2m"``; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("not a duration: %r" % (value,))
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ValueError("duration must be positive")
        return float(value)
    m = re.match(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m)\s*$", str(value))
    if not m:
        raise ValueError("not a duration: %r (expected e.g. 10s, 500ms, 2m)" % (value,))
    n = float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(2)]
    if n <= 0:
        raise ValueError("duration must be positive")
    return n


def parse_rate(value):
    """Frames per second from ``"max"`` (→ None), ``20000``, ``"20kpps"``, ``"1.5Mpps"``."""
    if value is None or value == "max":
        return None
    if isinstance(value, bool):
        raise ValueError("not a rate: %r" % (value,))
    if isinstance(value, int):
        return value
    m = re.match(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmM]?)pps\s*$", str(value))
    if not m:
        raise ValueError("not a rate: %r (expected max, 20kpps, 1.5Mpps)" % (value,))
    pps = float(m.group(1)) * {"": 1, "k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6}[m.group(2)]
    if pps < 1:
        raise ValueError("rate must be at least 1 pps")
    return int(pps)


class CountExpr:
    """An expected count: ``all``, ``none``, ``1234``, ``">= 1000"``, ``">= 99.9%"`` (percent of the total).

    :meth:`check` compares an actual count against it given the total that ``all`` and
    percentages refer to; :meth:`describe` renders the expectation for messages.
    """

    _RE = re.compile(r"^\s*(all|none|(>=|<=|>|<|==|!=)?\s*([0-9]+(?:\.[0-9]+)?)\s*(%?))\s*$")

    def __init__(self, text):
        self.text = text
        if isinstance(text, bool):
            raise ValueError("not a count expression: %r" % (text,))
        if isinstance(text, int):
            if text < 0:
                raise ValueError("count must be >= 0")
            self.op, self.value, self.percent = "==", text, False
            return
        m = self._RE.match(str(text))
        if not m:
            raise ValueError("not a count expression: %r" % (text,))
        if m.group(1) == "all":
            self.op, self.value, self.percent = "==", 100.0, True
        elif m.group(1) == "none":
            self.op, self.value, self.percent = "==", 0, False
        else:
            self.op = m.group(2) or "=="
            self.percent = bool(m.group(4))
            self.value = float(m.group(3)) if (self.percent or "." in m.group(3)) else int(m.group(3))
            if self.percent and self.value > 100:
                raise ValueError("percentage above 100%%: %r" % (text,))

    def target(self, total):
        """The absolute number this expression compares with, given ``total``."""
        if self.percent:
            return self.value * total / 100.0
        return self.value

    def check(self, actual, total):
        """True when ``actual`` satisfies the expression (``total`` is what ``all``/percent refer to)."""
        t = self.target(total)
        if self.op == "==" and self.percent:
            return actual * 100 == self.value * total if total else actual == 0
        return {
            "==": actual == t, "!=": actual != t, ">=": actual >= t - 1e-9, "<=": actual <= t + 1e-9,
            ">": actual > t, "<": actual < t,
        }[self.op]

    @property
    def is_none(self):
        """True for an expression that demands exactly zero."""
        return self.op == "==" and self.value == 0

    def describe(self, total):
        """Render, e.g. ``== 20000`` or ``>= 99.9% (19980)``."""
        if self.percent:
            if self.op == "==" and self.value == 100.0:
                return "all (%d)" % total
            return "%s %g%% (%s)" % (self.op, self.value, _num(self.target(total)))
        return "%s %s" % (self.op, _num(self.value))

    def __repr__(self):
        return "CountExpr(%r)" % (self.text,)


def _num(x):
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    if isinstance(x, float):
        return "%.1f" % x
    return str(x)


# --------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------
class Stream:
    """One stamped traffic stream of a scenario.

    ``name``, ``stream_id`` (its index), ``src``/``dst`` (endpoint strings), ``count``,
    ``rate_pps`` (None = as fast as the ring allows), ``frame`` (header fields: ``eth``, one of
    ``ipv4``/``ipv6``, one of ``udp``/``tcp``/``icmp``), ``sizes`` (the frame sizes cycled
    frame by frame), ``l3`` and ``l4`` (protocol names).
    """

    def __init__(self, name, stream_id, src, dst, count, rate_pps, frame, sizes):
        self.name = name
        self.stream_id = stream_id
        self.src = src
        self.dst = dst
        self.count = count
        self.rate_pps = rate_pps
        self.frame = frame
        self.sizes = sizes
        self.l3 = "ipv6" if "ipv6" in frame else "ipv4"
        self.l4 = next((k for k in ("udp", "tcp", "icmp") if k in frame), "udp")
        self.vlan = (frame.get("eth") or {}).get("vlan")

    def __repr__(self):
        return "Stream(%s #%d %s->%s x%d)" % (self.name, self.stream_id, self.src, self.dst, self.count)


class XdpSpec:
    """An XDP attachment: ``attach`` endpoint, ``program`` (built-in name or ``{object, program}``),
    ``mode`` (native|generic|auto), ``options`` for the built-in (``target``, ``rules``, ``default``…)."""

    def __init__(self, attach, program, mode, options):
        self.attach = attach
        self.program = program
        self.mode = mode
        self.options = options

    @property
    def builtin(self):
        """True for a built-in program (a string name)."""
        return isinstance(self.program, str)

    def __repr__(self):
        return "XdpSpec(%s %s %s)" % (self.attach, self.program, self.mode)


class CaptureSpec:
    """A capture point: ``on`` endpoint, ``via`` (afpacket), ring ``options``."""

    def __init__(self, on, via, options):
        self.on = on
        self.via = via
        self.options = options

    def __repr__(self):
        return "CaptureSpec(%s via %s)" % (self.on, self.via)


class StreamExpect:
    """What is expected of one stream: ``delivered`` (:class:`CountExpr`), ``order`` (strict|any),
    ``payload`` (intact|any) and ``at`` (the endpoint whose capture counts)."""

    def __init__(self, delivered, order, payload, at):
        self.delivered = delivered
        self.order = order
        self.payload = payload
        self.at = at


class Scenario:
    """One runnable scenario (one matrix combination).

    Attributes: ``name`` (as written), ``id`` (``name[k=v-…]``), ``params`` (the matrix
    combination), ``file``/``line``, ``description``, ``markers``, ``requires`` (dict),
    ``topology`` (the spec handed to :class:`netring_testkit.Topology` as written), ``xdp``
    (list of :class:`XdpSpec`), ``streams`` (list of :class:`Stream`), ``captures`` (list of
    :class:`CaptureSpec`), ``expect`` (dict stream name → :class:`StreamExpect`),
    ``expect_xdp`` / ``expect_interface`` (endpoint → {counter: :class:`CountExpr`}),
    ``expect_unexpected`` (:class:`CountExpr` or None), ``timeout``/``quiet`` (seconds),
    ``seed``, ``spec`` (the substituted mapping).
    """

    def __init__(self, **kw):
        self.__dict__.update(kw)

    @property
    def total_frames(self):
        """Frames injected by all streams together (what ``all`` means in xdp/interface expectations)."""
        return sum(s.count for s in self.streams)

    def __repr__(self):
        return "Scenario(%s from %s:%s)" % (self.id, self.file, self.line)


# --------------------------------------------------------------------------------------------
# matrix
# --------------------------------------------------------------------------------------------
def _id_value(v):
    s = str(v).lower() if isinstance(v, bool) else str(v)
    return re.sub(r"[^A-Za-z0-9_.:+]", "_", s)


def matrix_combinations(matrix):
    """All combinations of a ``matrix`` mapping, in written order: a list of dicts (``[{}]`` for none)."""
    if not matrix:
        return [{}]
    keys = list(matrix)
    return [dict(zip(keys, vals)) for vals in itertools.product(*(matrix[k] for k in keys))]


def scenario_id(name, params):
    """The pytest id of a matrix combination: ``name[k1=v1-k2=v2]`` (just ``name`` without a matrix)."""
    if not params:
        return name
    return "%s[%s]" % (name, "-".join("%s=%s" % (k, _id_value(v)) for k, v in params.items()))


def _substitute(value, params, path, unresolved):
    if isinstance(value, dict):
        return {k: _substitute(v, params, path + (k,), unresolved) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, params, path + (i,), unresolved) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        m = _WHOLE_PLACEHOLDER.match(value)
        if m:
            if m.group(1) in params:
                return params[m.group(1)]
            unresolved.append((path, m.group(1)))
            return value

        def rep(mm):
            if mm.group(1) in params:
                v = params[mm.group(1)]
                return str(v).lower() if isinstance(v, bool) else str(v)
            unresolved.append((path, mm.group(1)))
            return mm.group(0)

        return _PLACEHOLDER.sub(rep, value)
    return value


# --------------------------------------------------------------------------------------------
# semantic checks + normalisation
# --------------------------------------------------------------------------------------------
def min_frame_size(l3="ipv4", l4="udp", vlan=False):
    """Smallest frame (bytes, without FCS) that carries these headers plus the 20-byte stamp.

    62 B for IPv4/UDP (14 + 20 + 8 + 20, so a 64 B frame carries a stamp), 82 B for IPv6/UDP,
    4 B more with an 802.1Q tag."""
    l3len = 40 if l3 == "ipv6" else 20
    l4len = {"udp": 8, "tcp": 20, "icmp": 8}[l4]
    return 14 + (4 if vlan else 0) + l3len + l4len + STAMP_LEN


def _endpoint_node(ep):
    return ep.split(":", 1)[0]


def _ep_name(ep):
    """``NODE:IFNAME`` of a link endpoint given as a string or as ``{node:, interface:, ...}``."""
    if isinstance(ep, dict):
        return "%s:%s" % (ep.get("node"), ep.get("interface"))
    return ep


class _Builder:
    """Checks one expanded scenario (already schema-valid) and builds its :class:`Scenario`."""

    def __init__(self, doc, spec, base, params, problems):
        self.doc = doc
        self.s = spec
        self.base = base  # ("scenarios", i)
        self.params = params
        self.problems = problems

    def err(self, rel, message):
        self.problems.append(self.doc.problem(self.base + tuple(rel), message))

    def build(self):
        s = self.s
        topo = s["topology"]
        nodes = topo.get("nodes", [])
        for i, n in enumerate(nodes):
            if n in nodes[:i]:
                self.err(("topology", "nodes", i), "node %r is listed twice" % n)
        node_set = set(nodes)
        endpoints = {}  # endpoint -> mtu
        adjacency = {}

        def link_ep(a, b):
            adjacency.setdefault(a, set()).add(b)
            adjacency.setdefault(b, set()).add(a)

        for li, link in enumerate(topo.get("links") or []):
            eps = [_ep_name(e) for e in link.get("endpoints", [])]
            for ei, ep in enumerate(eps):
                raw = link["endpoints"][ei]
                mtu = raw.get("mtu", link.get("mtu", 1500)) if isinstance(raw, dict) else link.get("mtu", 1500)
                node = _endpoint_node(ep)
                if node not in node_set:
                    self.err(("topology", "links", li, "endpoints", ei),
                             "endpoint %r names node %r, which is not in topology.nodes (%s)"
                             % (ep, node, ", ".join(nodes) or "none"))
                elif ep in endpoints:
                    self.err(("topology", "links", li, "endpoints", ei),
                             "endpoint %r is already used by another link; each interface joins one link" % ep)
                endpoints[ep] = mtu if isinstance(mtu, int) else 1500
            if len(eps) == 2:
                link_ep(eps[0], eps[1])
        for bi, br in enumerate(topo.get("bridges") or []):
            name = br["name"]
            bnode = _endpoint_node(name)
            if bnode not in node_set:
                self.err(("topology", "bridges", bi, "name"), "bridge %r names node %r, which is not in "
                         "topology.nodes (%s)" % (name, bnode, ", ".join(nodes)))
            elif name in endpoints:
                self.err(("topology", "bridges", bi, "name"), "bridge name %r is already an endpoint" % name)
            members = []
            for pi, port in enumerate(br.get("ports") or []):
                if port not in endpoints:
                    self.err(("topology", "bridges", bi, "ports", pi),
                             "bridge port %r is not an endpoint of any link" % port)
                elif _endpoint_node(port) != bnode:
                    self.err(("topology", "bridges", bi, "ports", pi),
                             "bridge port %r is not in the bridge's node %r" % (port, bnode))
                members.append(port)
            endpoints[name] = br.get("mtu", 1500) if isinstance(br.get("mtu", 1500), int) else 1500
            for a in members + [name]:
                for b in members + [name]:
                    if a != b:
                        link_ep(a, b)

        def need_ep(rel, ep, what):
            if ep not in endpoints:
                close = difflib.get_close_matches(ep, list(endpoints), n=1)
                self.err(rel, "%s %r is not an endpoint of any link%s; known endpoints: %s"
                         % (what, ep, " (did you mean %r?)" % close[0] if close else "",
                            ", ".join(endpoints) or "none"))
                return False
            return True

        # xdp
        xdp = []
        attached = {}
        for xi, x in enumerate(s.get("xdp") or []):
            rel = ("xdp", xi)
            ok = need_ep(rel + ("attach",), x["attach"], "attach endpoint")
            if ok and x["attach"] in attached:
                self.err(rel + ("attach",), "endpoint %r already has an XDP program (xdp[%d]); one per interface"
                         % (x["attach"], attached[x["attach"]]))
            attached[x["attach"]] = xi
            prog = x["program"]
            opts = dict(x.get("options") or {})
            if prog == "redirect":
                if "target" not in x:
                    self.err(rel, "program redirect needs `target: NODE:IFNAME` (the interface frames leave through)")
                else:
                    if need_ep(rel + ("target",), x["target"], "redirect target"):
                        if _endpoint_node(x["target"]) != _endpoint_node(x["attach"]):
                            self.err(rel + ("target",), "redirect target %r must be in the same node as %r "
                                     "(XDP redirects between interfaces of one namespace)"
                                     % (x["target"], x["attach"]))
                        link_ep(x["attach"], x["target"])
                    opts["target"] = x["target"]
            elif "target" in x:
                self.err(rel + ("target",), "`target` only applies to program redirect")
            if prog == "filter":
                if not x.get("rules"):
                    self.err(rel, "program filter needs `rules: [{match: {...}, action: drop}]`")
                else:
                    self._check_rules(x, rel)
                opts["rules"] = x.get("rules") or []
                opts["default"] = x.get("default", "pass")
            else:
                for k in ("rules", "default"):
                    if k in x:
                        self.err(rel + (k,), "`%s` only applies to program filter" % k)
            if isinstance(prog, dict):
                obj = prog["object"]
                objpath = obj if os.path.isabs(obj) else os.path.join(os.path.dirname(self.doc.filename), obj)
                prog = {"object": os.path.normpath(objpath), "program": prog["program"]}
                self._check_object(prog["object"], prog["program"], rel + ("program",))
            xdp.append(XdpSpec(x["attach"], prog, x.get("mode", "auto"), opts))

        # traffic
        streams = []
        names = {}
        for ti, t in enumerate(s["traffic"]):
            rel = ("traffic", ti)
            name = t.get("name", "s%d" % ti)
            if name in names:
                self.err(rel + ("name",), "stream name %r is used twice (also traffic[%d])" % (name, names[name]))
            names[name] = ti
            ok = need_ep(rel + ("from",), t["from"], "stream source")
            ok = need_ep(rel + ("to",), t["to"], "stream destination") and ok
            if ok:
                if t["from"] == t["to"]:
                    self.err(rel + ("to",), "a stream cannot be sent to its own source endpoint %r" % t["from"])
                elif not _connected(adjacency, t["from"], t["to"]):
                    self.err(rel + ("to",), "%r is not connected to %r by links, bridges or XDP redirects"
                             % (t["to"], t["from"]))
            frame = copy.deepcopy(t.get("frame") or {})
            if "ipv4" in frame and "ipv6" in frame:
                self.err(rel + ("frame",), "a frame has one L3 header: give ipv4 or ipv6, not both")
            l4s = [k for k in ("udp", "tcp", "icmp") if k in frame]
            if len(l4s) > 1:
                self.err(rel + ("frame",), "a frame has one L4 header: give one of udp, tcp, icmp (got %s)"
                         % ", ".join(l4s))
            if "ipv4" not in frame and "ipv6" not in frame:
                frame["ipv4"] = {}
            if not l4s:
                frame["udp"] = {}
            sizes = self._sizes(frame.pop("size", None), rel + ("frame", "size"))
            count = t.get("count", DEFAULT_COUNT)
            try:
                rate = parse_rate(t.get("rate"))
            except ValueError as exc:
                self.err(rel + ("rate",), str(exc))
                rate = None
            st = Stream(name, ti, t["from"], t["to"], count, rate, frame, sizes)
            if ok and sizes:
                lo = min_frame_size(st.l3, st.l4, st.vlan is not None)
                mtu = min(endpoints.get(t["from"], 1500), endpoints.get(t["to"], 1500))
                hi = mtu + 14 + (4 if st.vlan is not None else 0)
                bad = [z for z in sizes if not lo <= z <= hi]
                if bad:
                    self.err(rel + ("frame", "size"),
                             "frame size %d B does not fit: %s%s frames with the %d B stamp need %d..%d B "
                             "(link MTU %d)" % (bad[0], "802.1Q/" if st.vlan is not None else "",
                                                "%s/%s" % (st.l3, st.l4), STAMP_LEN, lo, hi, mtu))
            streams.append(st)

        # captures
        captures = []
        cap_on = {}
        for ci, c in enumerate(s.get("capture") or []):
            rel = ("capture", ci)
            if need_ep(rel + ("on",), c["on"], "capture endpoint") and c["on"] in cap_on:
                self.err(rel + ("on",), "endpoint %r is captured twice" % c["on"])
            cap_on[c["on"]] = ci
            via = c.get("via", "afpacket")
            if via != "afpacket":
                self.err(rel + ("via",), "capture via %r is not implemented yet; use afpacket" % via)
            captures.append(CaptureSpec(c["on"], via, {k: v for k, v in c.items() if k not in ("on", "via")}))
        if "capture" not in s:
            for st in streams:
                if st.dst in endpoints and st.dst not in cap_on:
                    cap_on[st.dst] = len(captures)
                    captures.append(CaptureSpec(st.dst, "afpacket", {}))

        # expectations
        ex = s.get("expect") or {}
        expect = {}
        per = ex.get("streams") or {}
        for key in per:
            if key not in names:
                close = difflib.get_close_matches(key, list(names), n=1)
                self.err(("expect", "streams", key), "no stream named %r%s; streams: %s"
                         % (key, " (did you mean %r?)" % close[0] if close else "", ", ".join(names)))
        for st in streams:
            own = per.get(st.name) or {}

            def pick(field, default):
                return own.get(field, ex.get(field, default))

            rel = ("expect", "streams", st.name) if st.name in per else ("expect",)
            try:
                delivered = CountExpr(pick("delivered", "all"))
            except ValueError as exc:
                self.err(rel + ("delivered",), str(exc))
                delivered = CountExpr("all")
            at = pick("at", None)
            if at is None:
                if st.dst in cap_on:
                    at = st.dst
                elif len(captures) == 1:
                    at = captures[0].on
            if at is None and st.dst not in endpoints:
                pass  # the bad `to:` is already reported
            elif at is None:
                self.err(rel, "stream %r is not captured anywhere: add `capture: [{on: %s}]` or `at:` in expect"
                         % (st.name, st.dst))
            elif at not in cap_on:
                self.err(rel + ("at",), "expect.at %r has no capture; captured endpoints: %s"
                         % (at, ", ".join(cap_on) or "none"))
            expect[st.name] = StreamExpect(delivered, pick("order", "strict"), pick("payload", "intact"), at)

        expect_xdp = {}
        for ep, counters in (ex.get("xdp") or {}).items():
            if ep not in attached:
                self.err(("expect", "xdp", ep), "no XDP program is attached to %r; attached: %s"
                         % (ep, ", ".join(attached) or "none"))
            expect_xdp[ep] = self._exprs(counters, ("expect", "xdp", ep))
        expect_if = {}
        for ep, counters in (ex.get("interface") or {}).items():
            need_ep(("expect", "interface", ep), ep, "interface")
            expect_if[ep] = self._exprs(counters, ("expect", "interface", ep))
        unexpected = None
        if "unexpected" in ex:
            try:
                unexpected = CountExpr(ex["unexpected"])
            except ValueError as exc:
                self.err(("expect", "unexpected"), str(exc))

        timeout = self._duration("timeout", DEFAULT_TIMEOUT)
        quiet = self._duration("quiet", DEFAULT_QUIET)
        if quiet >= timeout:
            self.err(("quiet",), "quiet period %gs must be shorter than timeout %gs" % (quiet, timeout))

        line, _ = self.doc.where(self.base)
        return Scenario(
            name=s["name"], id=scenario_id(s["name"], self.params), params=dict(self.params),
            file=self.doc.filename, line=line, description=s.get("description", ""),
            markers=list(s.get("markers") or []), requires=dict(s.get("requires") or {}),
            topology=s["topology"], xdp=xdp, streams=streams, captures=captures, expect=expect,
            expect_xdp=expect_xdp, expect_interface=expect_if, expect_unexpected=unexpected,
            timeout=timeout, quiet=quiet, seed=s.get("seed", 0), spec=s,
        )

    def _check_object(self, path, name, rel):
        """The ELF object must exist and hold a program called ``name`` (checked now, not at attach time)."""
        if not os.path.isfile(path):
            self.err(rel + ("object",), "BPF object file %s does not exist (a relative `object:` is resolved "
                     "against the scenario file's directory); compile it with `clang -O2 -g -target bpf -c`"
                     % path)
            return
        try:
            names = bpf_object_programs(path)
        except (OSError, ValueError) as exc:
            self.err(rel + ("object",), "cannot read the BPF programs of %s: %s" % (path, exc))
            return
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            self.err(rel + ("program",), "%s has no program %r%s; its programs: %s"
                     % (path, name, " (did you mean %r?)" % close[0] if close else "",
                        ", ".join(names) or "none"))

    def _check_rules(self, x, rel):
        """Let the filter compiler validate the rules now, so a bad match field is located in the file."""
        try:
            from netring.bpf.programs import validate_rules
        except ImportError:
            return
        from netring.errors import ConfigurationError

        try:
            validate_rules(x["rules"], x.get("default", "pass"))
        except ConfigurationError as exc:
            where = rel
            for name, idx in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?", str(exc.field or "rules")):
                where += (name,) + ((int(idx),) if idx else ())
            self.err(where, "invalid %s" % exc)

    def _sizes(self, size, rel):
        if size is None:
            return [128]
        if isinstance(size, int):
            return [size]
        if isinstance(size, list):
            if not all(isinstance(z, int) for z in size):
                self.err(rel, "expected a list of integer sizes")
                return []
            return list(size)
        if isinstance(size, dict):
            lo, hi = size["min"], size["max"]
            if lo > hi:
                self.err(rel, "size min %d is above max %d" % (lo, hi))
                return []
            # A stable digest of the field path, not hash(): str hashes change with PYTHONHASHSEED,
            # and `seed:` must give the same sizes in every process.
            digest = zlib.crc32(repr(tuple(rel)).encode())
            rng = random.Random(self.s.get("seed", 0) * 1000003 + digest % 1000003)
            n = size.get("variants", 64)
            return [lo, hi] + [rng.randint(lo, hi) for _ in range(max(0, n - 2))]
        self.err(rel, "expected a frame size")
        return []

    def _exprs(self, counters, rel):
        out = {}
        for k, v in (counters or {}).items():
            try:
                out[k] = CountExpr(v)
            except ValueError as exc:
                self.err(rel + (k,), str(exc))
        return out

    def _duration(self, key, default):
        if key not in self.s:
            return default
        try:
            return parse_duration(self.s[key])
        except ValueError as exc:
            self.err((key,), str(exc))
            return default


_ELF_MAX = 64 << 20   # larger "objects" are not BPF programs anyone compiled for a scenario
_EM_BPF = 247
_SHT_PROGBITS, _SHT_SYMTAB = 1, 2
_SHF_EXECINSTR = 0x4
_STT_FUNC = 2


def bpf_object_programs(path):
    """Names of the programs in the BPF ELF object at ``path``, as libbpf names them (sorted).

    Read from the ELF symbol table without libbpf or privileges: a program is a function symbol
    in a non-empty executable section other than ``.text`` (``.text`` holds sub-programs).
    Raises :class:`ValueError` naming what is wrong for a file that is not a 64-bit BPF ELF
    object, :class:`OSError` when it cannot be read.
    """
    import struct

    with open(path, "rb") as f:
        data = f.read(_ELF_MAX + 1)
    if len(data) > _ELF_MAX:
        raise ValueError("larger than %d MiB, not a BPF object" % (_ELF_MAX >> 20))
    if data[:4] != b"\x7fELF":
        raise ValueError("not an ELF file (compile it with `clang -O2 -g -target bpf -c`)")
    if len(data) < 64 or data[4] != 2 or data[5] not in (1, 2):
        raise ValueError("not a 64-bit ELF object")
    end = "<" if data[5] == 1 else ">"
    try:
        machine = struct.unpack_from(end + "H", data, 18)[0]
        if machine != _EM_BPF:
            raise ValueError("an ELF object for machine %d, not BPF (%d); compile with `-target bpf`"
                             % (machine, _EM_BPF))
        shoff, = struct.unpack_from(end + "Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", data, 0x3A)
        if shentsize < 64 or shoff + shnum * shentsize > len(data):
            raise ValueError("malformed section header table")
        secs = [struct.unpack_from(end + "IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]

        def body(sec):
            off, size = sec[4], sec[5]
            if off + size > len(data):
                raise ValueError("a section runs past the end of the file")
            return data[off:off + size]

        def cstr(table, off):
            stop = table.find(b"\0", off)
            return table[off:stop if stop >= 0 else len(table)].decode("utf-8", "replace")

        shstr = body(secs[shstrndx]) if shstrndx < shnum else b""
        names = set()
        for sec in secs:
            if sec[1] != _SHT_SYMTAB or sec[9] < 24 or sec[6] >= shnum:
                continue
            symtab, strtab = body(sec), body(secs[sec[6]])
            for off in range(0, len(symtab) - 23, sec[9]):
                st_name, st_info, _other, st_shndx, _value, _size = struct.unpack_from(end + "IBBHQQ", symtab, off)
                if st_info & 0xF != _STT_FUNC or not 0 < st_shndx < shnum:
                    continue
                target = secs[st_shndx]
                if target[1] != _SHT_PROGBITS or not target[2] & _SHF_EXECINSTR or target[5] == 0:
                    continue
                if cstr(shstr, target[0]) == ".text":
                    continue
                names.add(cstr(strtab, st_name))
    except (struct.error, IndexError, OverflowError):
        raise ValueError("truncated or malformed ELF file") from None
    return sorted(n for n in names if n)


def _connected(adj, a, b):
    seen = {a}
    todo = [a]
    while todo:
        x = todo.pop()
        if x == b:
            return True
        for y in adj.get(x, ()):
            if y not in seen:
                seen.add(y)
                todo.append(y)
    return False


# --------------------------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------------------------
def load_text(text, filename="<string>"):
    """Parse and validate scenario YAML ``text``; return the list of :class:`Scenario` (matrix expanded).

    Raises :class:`ScenarioSpecError` listing every located problem. ``filename`` is used in
    locations and to resolve relative ``object:`` paths.
    """
    doc = _load_doc(text, filename)
    data = doc.data
    if not isinstance(data, dict) or "scenarios" not in data:
        raise ScenarioSpecError([doc.problem((), "not a scenario file: expected a top-level mapping with a "
                                                 "`scenarios:` list")])
    # Cheap size checks first: the schema pass would otherwise walk every one of a huge list.
    early = _oversize_problems(doc, data)
    if early:
        raise ScenarioSpecError(_dedupe(early))
    # Structural pass on the raw file; values holding ${placeholders} are checked after expansion.
    problems = [p for p in _schema_problems(doc, data, (), skip_placeholders=True)]
    if any(len(p.path) < 2 for p in problems):
        raise ScenarioSpecError(_dedupe(problems))
    broken = {p.path[1] for p in problems}  # scenarios with structural problems are not expanded
    scenarios = []
    seen_names = {}
    for i, raw in enumerate(data["scenarios"]):
        base = ("scenarios", i)
        if i in broken:
            continue
        if raw["name"] in seen_names:
            problems.append(doc.problem(base + ("name",), "scenario name %r is used twice in this file "
                                        "(also scenarios[%d]); names must be unique" % (raw["name"], seen_names[raw["name"]])))
            continue
        seen_names[raw["name"]] = i
        matrix = raw.get("matrix") or {}
        n_combos = math.prod(len(v) for v in matrix.values())
        if n_combos > MATRIX_MAX:
            # Counted before expanding: a 7-key matrix of 10 values each is 10**7 scenarios.
            problems.append(doc.problem(base + ("matrix",), "matrix expands to %d combinations (%s); at most %d "
                                        "are allowed: split the scenario or use fewer values"
                                        % (n_combos, " x ".join(str(len(v)) for v in matrix.values()), MATRIX_MAX)))
            continue
        used = set()
        for key, vals in matrix.items():
            for vi, v in enumerate(vals):
                if v in vals[:vi]:
                    problems.append(doc.problem(base + ("matrix", key, vi),
                                                "matrix value %r of %r is listed twice" % (v, key)))
        body = {k: v for k, v in raw.items() if k != "matrix"}
        _collect_placeholders(body, used)
        for key in matrix:
            if key not in used:
                problems.append(doc.problem(base + ("matrix", key),
                                            "matrix key %r is not used by any ${%s} placeholder" % (key, key)))
        combos = matrix_combinations(matrix)
        per_combo = {}  # problem -> list of combination labels where it occurred
        for params in combos:
            unresolved = []
            spec = _substitute(body, params, base, unresolved)
            if unresolved:
                for path, name in unresolved:
                    known = ", ".join(matrix) or "none (no matrix)"
                    problems.append(doc.problem(path, "placeholder ${%s} has no value; matrix keys: %s" % (name, known)))
                break
            local = _schema_problems(doc, spec, base, part="scenario")
            if not local:
                sc = _Builder(doc, spec, base, params, local).build()
                if not local:
                    scenarios.append(sc)
            label = ", ".join("%s=%s" % kv for kv in params.items())
            for p in local:
                per_combo.setdefault(p, []).append(label)
        for p, labels in per_combo.items():
            if len(labels) < len(combos):
                more = " and %d more" % (len(labels) - 1) if len(labels) > 1 else ""
                p = Problem(p.file, p.line, p.column, p.path, "%s (with %s%s)" % (p.message, labels[0], more))
            problems.append(p)
    if problems:
        raise ScenarioSpecError(_dedupe(problems))
    return scenarios


def _oversize_problems(doc, data):
    """Problems for scenarios with more streams than stream ids (the stamp's 16 bits), found without validating them."""
    out = []
    scenarios = data.get("scenarios")
    for i, raw in enumerate(scenarios if isinstance(scenarios, list) else []):
        traffic = raw.get("traffic") if isinstance(raw, dict) else None
        if isinstance(traffic, list) and len(traffic) > STREAMS_MAX:
            out.append(doc.problem(("scenarios", i, "traffic"), "%d streams; at most %d are possible (a stream's id "
                                   "is its position in `traffic` and the stamp holds 16 bits)"
                                   % (len(traffic), STREAMS_MAX)))
    return out


def _dedupe(problems):
    out, seen = [], set()
    for p in problems:
        key = p._key()
        if key not in seen:
            seen.add(key)
            out.append(p)
    return sorted(out, key=lambda p: (p.line or 0, p.column or 0))


def _collect_placeholders(value, out):
    if isinstance(value, dict):
        for v in value.values():
            _collect_placeholders(v, out)
    elif isinstance(value, list):
        for v in value:
            _collect_placeholders(v, out)
    elif isinstance(value, str):
        out.update(_PLACEHOLDER.findall(value))


def load(path, relative_to=None):
    """Load and validate the scenario file at ``path``; return its :class:`Scenario` list (matrix expanded).

    Raises :class:`ScenarioSpecError` (located problems) for an invalid file, including a file
    that cannot be read. With ``relative_to=os.getcwd()``, locations name the file relative to
    the current directory when it lies below it (shorter messages).
    """
    path = os.fspath(path)
    if relative_to is not None and os.path.abspath(os.fspath(relative_to)) == os.getcwd():
        rel = os.path.relpath(os.path.abspath(path))
        if not rel.startswith(".."):
            path = rel
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioSpecError([Problem(path, None, None, (), "cannot read the file: %s" % exc)]) from None
    return load_text(text, path)


# Column-0 "KEY:" lines: the top-level keys of a block-style mapping, found without parsing.
_TOP_KEY_LINE = re.compile(r"""^(?!---|\.\.\.)("(?:[^"\\\n]|\\.)*"|'(?:[^'\n]|'')*'|[^\s#%@`!&*|>{}\[\],?'"-][^:#\n]*?|-[^\s:#][^:#\n]*?)[ \t]*:(?:[ \t]|$)""",
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


def scenario_file_status(path, explicit=False):
    """Decide whether ``path`` is a scenario file; returns ``(is_scenario, reason)``.

    The collection rule (the README, "YAML scenarios → Collection rule"): a ``*.yaml``/``*.yml``
    file is a scenario file when

    a. ``explicit`` is true (the file was named on the command line): always — loading it
       then reports every problem; or
    b. its top level is a mapping whose keys are ``scenarios`` plus only keys the schema
       allows beside it (``x-*`` and ``.*`` anchor keys). Cheap pre-check first: a file with
       no line starting with ``scenarios:`` is never parsed. A file that does not parse as
       YAML is judged by its lines instead: it is a scenario file (so its syntax error gets
       reported) when no other line at column 0 starts with a key outside that set.

    ``reason`` says why a file is not one (``""`` when it is); useful for "why wasn't my file
    collected?" messages.
    """
    path = os.fspath(path)
    if not path.endswith((".yaml", ".yml")):
        return False, "not a *.yaml/*.yml file"
    if explicit:
        return True, ""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        return False, "cannot read it (%s)" % exc
    if not _SCENARIOS_LINE.search(text):
        return False, "no line starts with 'scenarios:'"
    line_keys = []
    for m in _TOP_KEY_LINE.finditer(text):
        k = m.group(1)
        if k[:1] in "\"'":
            try:
                k = yaml.safe_load(k)
            except yaml.YAMLError:
                pass
        line_keys.append(k)
    foreign = _foreign_top_keys(line_keys)
    if foreign:
        return False, "top-level key%s %s besides 'scenarios'" % ("s" if len(foreign) > 1 else "", ", ".join(foreign))
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError):
        return True, ""  # meant as a scenario file: loading it reports the syntax error
    if not isinstance(data, dict) or "scenarios" not in data:
        return False, "its top level is not a mapping with a 'scenarios' key"
    foreign = _foreign_top_keys(data)
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


def find_scenario_files(paths):
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
                    if is_scenario_file(full):
                        out.append(full)
        elif is_scenario_file(p, explicit=True):
            out.append(p)
    return out


def check_requires(scenario):
    """Why ``scenario`` cannot run here (a skip reason), or None when its static ``requires`` are met.

    Checks ``kernel: ">= X.Y"``, ``capabilities`` (effective set of this process), ``commands``
    (on PATH) and, for ``xdp_modes`` or any ``xdp:`` program, that netring's XDP support imports
    and that CAP_NET_ADMIN plus CAP_BPF (or CAP_SYS_ADMIN) are effective. Whether the
    interfaces support the XDP modes asked for is known only once the topology exists: see
    :func:`check_runtime_requires`.
    """
    req = scenario.requires
    if "kernel" in req:
        want = tuple(int(x) for x in req["kernel"].replace(">=", "").strip().split("."))
        have = tuple(int(x) for x in re.findall(r"\d+", os.uname().release)[:3])
        if have[:len(want)] < want:
            return "needs kernel >= %s, this is %s" % (".".join(map(str, want)), os.uname().release)
    caps = req.get("capabilities") or []
    if caps:
        missing = [c for c in caps if not _has_cap(c)]
        if missing:
            return "needs %s; run as root or grant %s" % (", ".join(missing), ", ".join(missing))
    for cmd in req.get("commands") or []:
        if shutil.which(cmd) is None:
            return "needs the command %r on PATH" % cmd
    if req.get("xdp_modes") or scenario.xdp:
        try:
            import netring.xdp  # noqa: F401
            import netring.bpf  # noqa: F401
        except ImportError as exc:
            return "needs netring XDP support (netring.xdp / netring.bpf), not available: %s" % exc
        if not _has_cap("CAP_NET_ADMIN"):
            return "needs CAP_NET_ADMIN to attach XDP programs; run as root or grant it"
        if not (_has_cap("CAP_BPF") or _has_cap("CAP_SYS_ADMIN")):
            return "needs CAP_BPF (or CAP_SYS_ADMIN) to load XDP programs; run as root or grant it"
    return None


def check_runtime_requires(scenario, topology, features=None):
    """Why ``scenario``'s ``requires.xdp_modes`` are not met on the built ``topology`` (a skip reason), or None.

    ``native`` needs every XDP attach endpoint (the scenario's ``xdp[].attach``; without XDP
    programs, every stream's ``to``) to advertise the ``basic`` XDP feature, queried with
    ``features(ifname, netns)`` (default :func:`netring.netdev.features`, netdev netlink family,
    kernel 6.3+); ``generic`` works on every interface. When the kernel cannot answer the
    feature query the mode is assumed to work (the attach itself then reports the truth).
    """
    modes = scenario.requires.get("xdp_modes") or []
    if "native" not in modes:
        return None
    if features is None:
        from netring.netdev import features
    from netring.errors import UnsupportedError

    eps = [x.attach for x in scenario.xdp] or [st.dst for st in scenario.streams]
    for name in dict.fromkeys(eps):
        ep = topology[name]
        try:
            info = features(ep.ifname, netns=ep.netns)
        except UnsupportedError:
            return None  # no netdev family (kernel < 6.3): nothing to ask
        if "basic" not in info.xdp_features:
            return ("needs native XDP (requires.xdp_modes: [native]), but %s does not support it (XDP features: %s)"
                    % (name, ", ".join(sorted(info.xdp_features)) or "none"))
    return None


def _has_cap(name):
    """True when capability ``name`` (a key of :data:`CAPABILITIES`) is in this process's effective set."""
    bit = CAPABILITIES[name]
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> bit & 1)
    except OSError:
        pass
    return os.geteuid() == 0
