"""Matrix expansion: combinations in written order, their pytest ids, ``${key}`` placeholder substitution.

A scenario with ``matrix: {size: [64, 1514], mode: [native, generic]}`` becomes one scenario
per combination, id ``name[size=64-mode=native]`` (keys in the order written). A string that is
exactly ``"${k}"`` takes the value with its YAML type; a placeholder inside a longer string is
replaced textually (booleans as ``true``/``false``).
"""
import itertools
import math
import re

__all__ = ["MATRIX_MAX", "matrix_combinations", "scenario_id", "substitute", "placeholders", "matrix_problems"]

#: Most combinations one scenario's ``matrix`` may expand to (checked before expanding).
MATRIX_MAX = 1000

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WHOLE_PLACEHOLDER = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


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


def substitute(value, params, path, unresolved):
    """``value`` with every ``${k}`` of ``params`` replaced; appends ``(field path, name)`` of each
    placeholder without a value to ``unresolved`` (``path`` is the field path of ``value``)."""
    if isinstance(value, dict):
        return {k: substitute(v, params, path + (k,), unresolved) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, params, path + (i,), unresolved) for i, v in enumerate(value)]
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


def placeholders(value):
    """The set of placeholder names ``${name}`` used anywhere in ``value``."""
    out = set()
    _collect(value, out)
    return out


def _collect(value, out):
    if isinstance(value, dict):
        for v in value.values():
            _collect(v, out)
    elif isinstance(value, list):
        for v in value:
            _collect(v, out)
    elif isinstance(value, str):
        out.update(_PLACEHOLDER.findall(value))


def matrix_problems(doc, raw, base):
    """Check the ``matrix`` of scenario mapping ``raw`` (at field path ``base``) before expanding it.

    Returns ``(problems, expandable)``: located problems (too many combinations, a value listed
    twice, a key no placeholder uses) and whether expanding is safe — the size is counted
    first, since a 7-key matrix of 10 values each is 10**7 scenarios.
    """
    matrix = raw.get("matrix") or {}
    n_combos = math.prod(len(v) for v in matrix.values())
    if n_combos > MATRIX_MAX:
        return [doc.problem(base + ("matrix",), "matrix expands to %d combinations (%s); at most %d are allowed: "
                            "split the scenario or use fewer values"
                            % (n_combos, " x ".join(str(len(v)) for v in matrix.values()), MATRIX_MAX))], False
    problems = []
    for key, vals in matrix.items():
        for vi, v in enumerate(vals):
            if v in vals[:vi]:
                problems.append(doc.problem(base + ("matrix", key, vi), "matrix value %r of %r is listed twice"
                                            % (v, key)))
    used = placeholders({k: v for k, v in raw.items() if k != "matrix"})
    for key in matrix:
        if key not in used:
            problems.append(doc.problem(base + ("matrix", key),
                                        "matrix key %r is not used by any ${%s} placeholder" % (key, key)))
    return problems, True
