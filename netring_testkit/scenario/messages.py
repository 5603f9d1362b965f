"""The published JSON Schema of scenario files, and its validation errors turned into located messages.

``jsonschema`` is imported on the first validation, not with this module: the collection rule
(:mod:`netring_testkit.scenario.collect`) reads the schema's allowed top-level keys in every
pytest session, and must stay cheap.
"""
import difflib
import functools
import json
import os
import re

__all__ = ["SCHEMA_PATH", "schema", "schema_problems"]

#: Path of the published JSON Schema (point your editor's YAML language server at it).
SCHEMA_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "schema",
                           "scenario.schema.json")


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


def schema_problems(doc, instance, base_path, skip_placeholders=False, part=None):
    """Located :class:`~netring_testkit.scenario.loader.Problem` s for every schema violation of ``instance``.

    ``instance`` sits at field path ``base_path`` of the loaded document ``doc`` (whose
    ``problem(path, message)`` locates them); ``part="scenario"`` validates one scenario entry
    instead of a whole file. With ``skip_placeholders``, a violation by a string holding a
    ``${placeholder}`` is ignored unless no substitution could fix it (a mapping or list was
    expected): the expanded scenario is validated again.
    """
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


