"""Loading scenario files: YAML with the location of every field, validation passes, located problems.

:func:`load_text` runs the passes in order and reports every problem found at once, each
located as ``FILE:LINE:COL: FIELD.PATH: what is wrong and what was expected``:

1. YAML syntax (the parser's own position), duplicate keys, and the :mod:`.limits` that bound the
   work — the file size before reading, depth, alias expansion and string lengths while composing,
   topology, stream and matrix sizes before the schema pass;
2. the published JSON Schema (:mod:`.messages`) on the raw file, then on each expanded scenario;
3. the matrix (:mod:`.matrix`): its size, repeated values, unused keys, unresolved placeholders;
4. the semantic checks (:mod:`.semantics`) that build each :class:`~.model.Scenario`.
"""
import json
import math
import os
import re

import yaml

from netring import stamp as _stamp
from netring.errors import ScenarioError

from .limits import DEFAULT_LIMITS, Limits
from .matrix import _PLACEHOLDER, MATRIX_MAX, matrix_combinations, matrix_problems, substitute
from .messages import schema_problems
from .semantics import build_scenario

__all__ = ["format_path", "Problem", "ScenarioSpecError", "Document", "load_document", "load_text", "load_bytes",
           "load", "STREAMS_MAX", "Limits"]

#: Most streams one scenario may have: a stream's id is its position in ``traffic`` and the stamp holds 16 bits.
STREAMS_MAX = _stamp.STREAM_ID_MAX + 1


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


class Document:
    """A loaded YAML document: ``filename``, ``data`` (plain Python values) and the location of every field path.

    :meth:`problem` turns a field path and a message into a located :class:`Problem`; the
    schema messages and the semantic checks report through it.
    """

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
        """A :class:`Problem` at ``path`` (located at its nearest located ancestor)."""
        line, col = self.where(path)
        return Problem(self.filename, line, col, path, message)

class _Exceeded(Exception):
    """A limit was exceeded while composing or constructing: stop at once with this located problem."""

    def __init__(self, problem):
        super().__init__(str(problem))
        self.problem = problem


try:
    from yaml._yaml import CParser as _CParser
except ImportError:  # PyYAML built without libyaml: the pure-Python scanner and parser, ~5x slower
    _CParser = None

if _CParser is not None:
    class _Events(yaml.composer.Composer, _CParser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
        """libyaml's events under PyYAML's own (Python) composer, so :class:`_Composer` can budget it."""

        #: libyaml reports a reader error's position in bytes of the UTF-8 text, PyYAML in characters.
        byte_positions = True

        def __init__(self, text):
            _CParser.__init__(self, text)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
else:
    class _Events(yaml.SafeLoader):
        byte_positions = False


class _Composer(_Events):
    """PyYAML's composer with the nesting depth and the node count budgeted, and recursive aliases refused.

    An alias composes to the anchored node itself (no copy), so composing an anchor bomb is cheap;
    the expansion is counted by :class:`_Builder`. Depth is checked before descending, so deep
    nesting is a located problem rather than a RecursionError. The events come from libyaml
    when PyYAML has it (a 200 KB file composes in 0.9 s instead of 4.6 s).
    """

    def __init__(self, text, filename, limits):
        super().__init__(text)
        self._filename = filename
        self._limits = limits
        self._depth = 0
        self._count = 0
        self._open = set()  # anchors of the collections being composed: an alias to one is a cycle
        self._path = []  # field path of the collection being composed

    def _exceeded(self, event, parent, index, name, actual):
        path = tuple(self._path) + _path_part(parent, index)
        mark = event.start_mark
        raise _Exceeded(Problem(self._filename, mark.line + 1, mark.column + 1, path,
                                self._limits.exceeded(name, actual)))

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open:
                raise yaml.composer.ComposerError(None, None, "recursive alias *%s: it refers to a node that contains "
                                                  "it, which would expand forever" % event.anchor, event.start_mark)
            return super().compose_node(parent, index)
        self._count += 1
        if self._count > self._limits.yaml_nodes:
            self._exceeded(event, parent, index, "yaml_nodes", "more than %d" % self._limits.yaml_nodes)
        if not isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            return super().compose_node(parent, index)
        if self._depth >= self._limits.depth:
            self._exceeded(event, parent, index, "depth", "more than %d" % self._limits.depth)
        self._depth += 1
        part = _path_part(parent, index)
        self._path.extend(part)
        if event.anchor is not None:
            self._open.add(event.anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            del self._path[len(self._path) - len(part):]
            self._open.discard(event.anchor)


def _path_part(parent, index):
    """The field path component of a node PyYAML composes with ``(parent, index)``: a list position,
    a mapping's key (for its value), nothing for the root or a key itself."""
    if parent is None or index is None:
        return ()
    if isinstance(index, int):
        return (index,)
    return (index.value,) if isinstance(index, yaml.ScalarNode) else ("?",)


def _compose(text, filename, limits):
    loader = _Composer(text, filename, limits)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}, []
        builder = _Builder(loader, filename, limits)
        data = builder.construct(node, (), 0)
        return data, builder.locs, builder.problems
    finally:
        loader.dispose()


def _mark(node):
    return (node.start_mark.line + 1, node.start_mark.column + 1)


_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Builder:
    """Plain Python values from a composed node graph, with the location of every field path.

    Every node constructed counts against ``limits.yaml_nodes`` — an alias counts as many
    nodes as it expands to — so an anchor bomb stops after that many, at the field where the
    budget ran out, instead of being materialised. Depth (aliases can nest deeper than the
    text) and string lengths are checked here too, where the field path is known.
    """

    def __init__(self, loader, filename, limits):
        self.loader = loader
        self.filename = filename
        self.limits = limits
        self.locs = {}  # path tuple -> (line, col), 1-based
        self.problems = []
        self.count = 0
        self._merged_sizes = {}

    def _exceeded(self, node, path, name, actual):
        line, col = _mark(node)
        raise _Exceeded(Problem(self.filename, line, col, path, self.limits.exceeded(name, actual)))

    def _count(self, node, path, n=1):
        self.count += n
        if self.count > self.limits.yaml_nodes:
            self._exceeded(node, path, "yaml_nodes", "more than %d" % self.limits.yaml_nodes)

    def _merged_size(self, node):
        """Pairs of mapping ``node`` once its ``<<`` merge keys are flattened, counted without flattening
        (flattening a chain of merges that each merge the previous twice doubles at every step)."""
        key = id(node)
        if key not in self._merged_sizes:
            self._merged_sizes[key] = 0  # a merge cycle counts nothing more; PyYAML reports it
            n = 0
            for knode, vnode in node.value:
                if knode.tag != _MERGE_TAG:
                    n += 1
                elif isinstance(vnode, yaml.MappingNode):
                    n += self._merged_size(vnode)
                elif isinstance(vnode, yaml.SequenceNode):
                    n += sum(self._merged_size(v) for v in vnode.value if isinstance(v, yaml.MappingNode))
            self._merged_sizes[key] = n
        return self._merged_sizes[key]

    def construct(self, node, path, depth):
        self.locs.setdefault(path, _mark(node))
        self._count(node, path)
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            depth += 1
            if depth > self.limits.depth:
                self._exceeded(node, path, "depth", "more than %d" % self.limits.depth)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.construct(v, path + (i,), depth) for i, v in enumerate(node.value)]
        if len(node.value) > self.limits.string:
            self._exceeded(node, path, "string", len(node.value))
        value = self.loader.construct_object(node, deep=True)
        if not isinstance(value, (str, int, float, bool, type(None))):
            # dates, binary…: keep as their text so the schema reports the type mismatch with a location
            value = str(node.value)
        return value

    def _mapping(self, node, path, depth):
        if any(k.tag == _MERGE_TAG for k, _ in node.value):
            size = self._merged_size(node)
            if self.count + size > self.limits.yaml_nodes:
                self._exceeded(node, path, "yaml_nodes", "more than %d" % self.limits.yaml_nodes)
        explicit = {id(k) for k, _ in node.value if k.tag != _MERGE_TAG}
        self.loader.flatten_mapping(node)  # resolves `<<: *anchor` merge keys (merged pairs come first)
        out = {}
        merged_keys = set()
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                line, col = _mark(knode)
                self.problems.append(Problem(self.filename, line, col, path, "mapping keys must be plain scalars"))
                continue
            # Keys are taken as written: YAML 1.1 would turn `on:` (capture) into True.
            key = knode.value
            if len(key) > self.limits.string:
                self._exceeded(knode, path, "string", len(key))
            if key in out and key in merged_keys and id(knode) in explicit:
                merged_keys.discard(key)  # an explicit key overrides a merged one, as YAML says
            elif key in out:
                line, col = _mark(knode)
                self.problems.append(Problem(self.filename, line, col, path + (key,),
                                             "duplicate key %r (the earlier value would be silently lost)" % key))
                continue
            if id(knode) not in explicit:
                merged_keys.add(key)
            self.locs[path + (key,)] = _mark(vnode) if not isinstance(vnode, yaml.ScalarNode) else _mark(knode)
            out[key] = self.construct(vnode, path + (key,), depth)
        return out


def _position(text, offset):
    """1-based (line, column) of character ``offset`` in ``text``."""
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


def load_document(text, filename, limits=None):
    """Parse YAML ``text`` keeping the location of every field; return a :class:`Document`.

    Raises :class:`ScenarioSpecError` for a syntax error, a duplicate key, a character YAML does
    not allow (NUL, control characters), a recursive alias, or a limit of ``limits`` (default
    :data:`~.limits.DEFAULT_LIMITS`) exceeded: nesting depth, YAML nodes after alias expansion,
    string length — every one located. Keys are taken as written (``on:`` stays the string ``"on"``).
    """
    limits = limits or DEFAULT_LIMITS
    try:
        data, locs, problems = _compose(text, filename, limits)
    except _Exceeded as exc:
        raise ScenarioSpecError([exc.problem]) from None
    except yaml.reader.ReaderError as exc:
        offset = exc.position
        if _Events.byte_positions:
            offset = len(text.encode("utf-8", "surrogatepass")[:offset].decode("utf-8", "replace"))
        line, col = _position(text, offset)
        raise ScenarioSpecError([Problem(filename, line, col, (), "character %r (U+%04X) is not allowed in YAML"
                                         % (chr(exc.character), exc.character)
                                         if isinstance(exc.character, int) else "YAML error: %s" % exc)]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        msg = "YAML syntax error: %s%s" % (exc.problem or "invalid YAML",
                                           " (%s)" % exc.context if exc.context else "")
        raise ScenarioSpecError([Problem(filename, line, col, (), msg)]) from None
    except yaml.YAMLError as exc:
        raise ScenarioSpecError([Problem(filename, 1, 1, (), "YAML error: %s" % exc)]) from None
    if problems:
        raise ScenarioSpecError(problems)
    return Document(filename, data, locs)


def load_text(text, filename="<string>", limits=None):
    """Parse and validate scenario YAML ``text``; return the list of :class:`~.model.Scenario` (matrix expanded).

    Raises :class:`ScenarioSpecError` listing every located problem. ``filename`` is used in
    locations and to resolve relative ``object:`` paths. ``limits`` (a :class:`~.limits.Limits`,
    default :data:`~.limits.DEFAULT_LIMITS`) bounds the work: each is checked before the step it
    makes expensive.
    """
    limits = limits or DEFAULT_LIMITS
    if len(text) > limits.file_size // 4:  # only then can the UTF-8 size exceed it
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > limits.file_size:
            raise ScenarioSpecError([Problem(filename, 1, 1, (), limits.exceeded("file_size", size))])
    doc = load_document(text, filename, limits)
    data = doc.data
    if not isinstance(data, dict) or "scenarios" not in data:
        raise ScenarioSpecError([doc.problem((), "not a scenario file: expected a top-level mapping with a "
                                                 "`scenarios:` list")])
    # Cheap size checks first: the schema pass would otherwise walk every one of a huge list.
    early = _oversize_problems(doc, data, limits)
    if early:
        raise ScenarioSpecError(_dedupe(early))
    # Structural pass on the raw file; values holding ${placeholders} are checked after expansion.
    problems = schema_problems(doc, data, (), skip_placeholders=True)
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
        found, expandable = matrix_problems(doc, raw, base)
        problems.extend(found)
        if expandable:
            scenarios.extend(_expand(doc, raw, base, problems))
    if problems:
        raise ScenarioSpecError(_dedupe(problems))
    return scenarios


def _expand(doc, raw, base, problems):
    """The scenarios of one raw entry, one per matrix combination; their problems go to ``problems``.

    A problem that occurs in some combinations only names the first of them.
    """
    matrix = raw.get("matrix") or {}
    body = {k: v for k, v in raw.items() if k != "matrix"}
    combos = matrix_combinations(matrix)
    out = []
    per_combo = {}  # problem -> list of combination labels where it occurred
    for params in combos:
        unresolved = []
        spec = substitute(body, params, base, unresolved)
        if unresolved:
            for path, name in unresolved:
                known = ", ".join(matrix) or "none (no matrix)"
                problems.append(doc.problem(path, "placeholder ${%s} has no value; matrix keys: %s" % (name, known)))
            break
        local = schema_problems(doc, spec, base, part="scenario")
        if not local:
            sc = build_scenario(doc, spec, base, params, local)
            if not local:
                out.append(sc)
        label = ", ".join("%s=%s" % kv for kv in params.items())
        for p in local:
            per_combo.setdefault(p, []).append(label)
    for p, labels in per_combo.items():
        if len(labels) < len(combos):
            more = " and %d more" % (len(labels) - 1) if len(labels) > 1 else ""
            p = Problem(p.file, p.line, p.column, p.path, "%s (with %s%s)" % (p.message, labels[0], more))
        problems.append(p)
    return out


def _oversize_problems(doc, data, limits):
    """Problems for scenarios over the size limits (nodes, links, streams, matrix combinations x streams
    and x YAML nodes), found by counting, before the schema pass or the matrix expansion walks them."""
    out = []
    scenarios = data.get("scenarios")
    for i, raw in enumerate(scenarios if isinstance(scenarios, list) else []):
        if not isinstance(raw, dict):
            continue
        base = ("scenarios", i)
        topology = raw.get("topology")
        for key, limit in (("nodes", "nodes"), ("links", "links")):
            value = topology.get(key) if isinstance(topology, dict) else None
            if isinstance(value, list) and len(value) > getattr(limits, limit):
                out.append(doc.problem(base + ("topology", key), limits.exceeded(limit, len(value))))
        traffic = raw.get("traffic")
        n_streams = len(traffic) if isinstance(traffic, list) else 1
        if n_streams > STREAMS_MAX:
            out.append(doc.problem(base + ("traffic",), "%d streams; at most %d are possible (a stream's id "
                                   "is its position in `traffic` and the stamp holds 16 bits)"
                                   % (n_streams, STREAMS_MAX)))
        elif n_streams > limits.streams:
            out.append(doc.problem(base + ("traffic",), limits.exceeded("streams", n_streams)))
        matrix = raw.get("matrix")
        if isinstance(matrix, dict) and all(isinstance(v, list) for v in matrix.values()):
            n_combos = math.prod(len(v) for v in matrix.values())
            if n_combos <= MATRIX_MAX:  # more than MATRIX_MAX combinations is the matrix check's message
                out.extend(_matrix_size_problems(doc, raw, base, matrix, n_combos, n_streams, limits))
    return out


def _matrix_size_problems(doc, raw, base, matrix, n_combos, n_streams, limits):
    """What expanding ``matrix`` would cost: combinations x streams, x the scenario's YAML nodes (each
    combination is substituted, validated and built), and the strings placeholders would grow."""
    if n_combos * n_streams > limits.matrix_streams:
        return [doc.problem(base + ("matrix",), limits.exceeded(
            "matrix_streams", "%d combinations x %d streams = %d" % (n_combos, n_streams, n_combos * n_streams)))]
    out = []
    if n_combos > 1:
        n_nodes = _count_nodes({k: v for k, v in raw.items() if k != "matrix"})
        if n_combos * n_nodes > limits.matrix_nodes:
            out.append(doc.problem(base + ("matrix",), limits.exceeded(
                "matrix_nodes", "%d combinations x %d YAML nodes = %d" % (n_combos, n_nodes, n_combos * n_nodes))))
    return out + _expanded_string_problems(doc, raw, base, matrix, limits)


def _expanded_string_problems(doc, raw, base, matrix, limits):
    """Strings whose ``${key}`` placeholders can expand past ``limits.string`` (600 placeholders of a
    1 KB matrix value make each of a thousand combinations hold a 600 KB string), found before expanding."""
    longest = {k: max((len(_placeholder_text(v)) for v in vals), default=0) for k, vals in matrix.items()}
    out = []
    stack = [(base + (k,), v) for k, v in raw.items() if k != "matrix"]
    while stack:
        path, v = stack.pop()
        if isinstance(v, dict):
            stack.extend((path + (k,), x) for k, x in v.items())
        elif isinstance(v, list):
            stack.extend((path + (i,), x) for i, x in enumerate(v))
        elif isinstance(v, str) and "${" in v:
            size = len(v)
            for m in _PLACEHOLDER.finditer(v):
                size += longest.get(m.group(1), 0) - len(m.group(0))
            if size > limits.string:
                out.append(doc.problem(path, limits.exceeded("string", "up to %d" % size,
                                                             "once the matrix values are substituted")))
    return sorted(out, key=lambda p: p.path)


def _placeholder_text(value):
    return str(value).lower() if isinstance(value, bool) else str(value)


def _count_nodes(value):
    """YAML nodes (mappings, lists, scalars) in a plain value."""
    n, stack = 0, [value]
    while stack:
        v = stack.pop()
        n += 1
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return n


def _dedupe(problems):
    out, seen = [], set()
    for p in problems:
        key = p._key()
        if key not in seen:
            seen.add(key)
            out.append(p)
    return sorted(out, key=lambda p: (p.line or 0, p.column or 0))


def load_bytes(data, filename="<bytes>", limits=None):
    """:func:`load_text` for the raw bytes of a file: bytes that are not UTF-8 are a located problem."""
    limits = limits or DEFAULT_LIMITS
    if len(data) > limits.file_size:
        raise ScenarioSpecError([Problem(filename, 1, 1, (), limits.exceeded("file_size", len(data)))])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        col = len(data[line_start:exc.start].decode("utf-8", "replace")) + 1
        raise ScenarioSpecError([Problem(filename, line, col, (), "byte 0x%02x is not UTF-8 (%s); save the file as "
                                         "UTF-8" % (data[exc.start], exc.reason))]) from None
    return load_text(text, filename, limits)


def load(path, relative_to=None, limits=None):
    """Load and validate the scenario file at ``path``; return its :class:`~.model.Scenario` list (matrix expanded).

    Raises :class:`ScenarioSpecError` (located problems) for an invalid file, including a file
    that cannot be read or is larger than ``limits.file_size`` (it is not read then). With
    ``relative_to=os.getcwd()``, locations name the file relative to the current directory when
    it lies below it (shorter messages).
    """
    limits = limits or DEFAULT_LIMITS
    path = os.fspath(path)
    if relative_to is not None and os.path.abspath(os.fspath(relative_to)) == os.getcwd():
        rel = os.path.relpath(os.path.abspath(path))
        if not rel.startswith(".."):
            path = rel
    try:
        with open(path, "rb") as f:
            data = f.read(limits.file_size + 1)
            size = os.fstat(f.fileno()).st_size if len(data) > limits.file_size else len(data)
    except OSError as exc:
        raise ScenarioSpecError([Problem(path, None, None, (), "cannot read the file: %s" % exc)]) from None
    if size > limits.file_size:
        raise ScenarioSpecError([Problem(path, 1, 1, (), limits.exceeded("file_size", max(size, len(data))))])
    return load_bytes(data, path, limits)
