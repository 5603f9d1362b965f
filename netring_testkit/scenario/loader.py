"""Loading scenario files: YAML with the location of every field, validation passes, located problems.

:func:`load_text` runs the passes in order and reports every problem found at once, each
located as ``FILE:LINE:COL: FIELD.PATH: what is wrong and what was expected``:

1. YAML syntax (the parser's own position), duplicate keys;
2. the published JSON Schema (:mod:`.messages`) on the raw file, then on each expanded scenario;
3. the matrix (:mod:`.matrix`): its size, repeated values, unused keys, unresolved placeholders;
4. the semantic checks (:mod:`.semantics`) that build each :class:`~.model.Scenario`.
"""
import json
import os
import re

import yaml

from netring import stamp as _stamp
from netring.errors import ScenarioError

from .matrix import matrix_combinations, matrix_problems, substitute
from .messages import schema_problems
from .semantics import build_scenario

__all__ = ["format_path", "Problem", "ScenarioSpecError", "Document", "load_document", "load_text", "load",
           "STREAMS_MAX"]

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


def load_document(text, filename):
    """Parse YAML ``text`` keeping the location of every field; return a :class:`Document`.

    Raises :class:`ScenarioSpecError` for a syntax error, a duplicate key or nesting deeper
    than 100 levels. Keys are taken as written (``on:`` stays the string ``"on"``).
    """
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
    return Document(filename, data, locs)


def load_text(text, filename="<string>"):
    """Parse and validate scenario YAML ``text``; return the list of :class:`~.model.Scenario` (matrix expanded).

    Raises :class:`ScenarioSpecError` listing every located problem. ``filename`` is used in
    locations and to resolve relative ``object:`` paths.
    """
    doc = load_document(text, filename)
    data = doc.data
    if not isinstance(data, dict) or "scenarios" not in data:
        raise ScenarioSpecError([doc.problem((), "not a scenario file: expected a top-level mapping with a "
                                                 "`scenarios:` list")])
    # Cheap size checks first: the schema pass would otherwise walk every one of a huge list.
    early = _oversize_problems(doc, data)
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


def load(path, relative_to=None):
    """Load and validate the scenario file at ``path``; return its :class:`~.model.Scenario` list (matrix expanded).

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

