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

The modules, one job each:

- :mod:`.loader` — YAML with locations, :class:`Problem`, :class:`ScenarioSpecError`, :func:`load`, :func:`load_text`;
- :mod:`.limits` — :class:`Limits`: file size, depth, alias expansion, counts — bounds on the work a file may cause;
- :mod:`.messages` — the JSON Schema (:func:`schema`, :data:`SCHEMA_PATH`) and its errors as located messages;
- :mod:`.values` — durations, rates, frame counts (:func:`parse_count`), :class:`CountExpr`, frame sizes;
- :mod:`.model` — :class:`Scenario` and its parts (dataclasses);
- :mod:`.matrix` — matrix combinations, ids, placeholder substitution;
- :mod:`.semantics` — the semantic checks that build a :class:`Scenario`;
- :mod:`.elf` — :func:`bpf_object_programs`, :func:`bpf_object_maps`;
- :mod:`.collect` — which files are scenario files (:func:`is_scenario_file`, :func:`find_scenario_files`);
- :mod:`.requires` — :func:`check_requires`, :func:`check_runtime_requires`.

The names below are re-exported here and imported on first use, so importing this package
(as the pytest plugin does in every session) costs nothing beyond the module itself.
"""
__all__ = [
    "SCHEMA_PATH", "schema", "Problem", "ScenarioSpecError", "CountExpr", "Stream", "XdpSpec",
    "CaptureSpec", "StreamExpect", "Scenario", "load", "load_text", "is_scenario_file", "scenario_file_status",
    "find_scenario_files", "parse_duration", "parse_rate", "parse_count", "min_frame_size", "BUILTIN_PROGRAMS",
    "check_requires", "check_runtime_requires", "bpf_object_programs", "bpf_object_maps", "MATRIX_MAX", "COUNT_MAX", "STREAMS_MAX",
    "CAPABILITIES", "load_bytes", "Limits", "DEFAULT_LIMITS",
]

# public name -> module that defines it ("caps" is netring_testkit.caps)
_EXPORTS = {
    "format_path": "loader", "Problem": "loader", "ScenarioSpecError": "loader", "Document": "loader",
    "load_document": "loader", "load": "loader", "load_text": "loader", "STREAMS_MAX": "loader",
    "load_bytes": "loader", "Limits": "limits", "DEFAULT_LIMITS": "limits",
    "SCHEMA_PATH": "messages", "schema": "messages",
    "parse_duration": "values", "parse_rate": "values", "parse_count": "values", "CountExpr": "values", "min_frame_size": "values",
    "frame_sizes": "values", "STAMP_LEN": "values", "COUNT_MAX": "values",
    "Stream": "model", "XdpSpec": "model", "CaptureSpec": "model", "StreamExpect": "model",
    "Scenario": "model", "BUILTIN_PROGRAMS": "model", "DEFAULT_COUNT": "model", "DEFAULT_TIMEOUT": "model",
    "DEFAULT_QUIET": "model",
    "MATRIX_MAX": "matrix", "matrix_combinations": "matrix", "scenario_id": "matrix",
    "bpf_object_programs": "elf", "bpf_object_maps": "elf",
    "is_scenario_file": "collect", "scenario_file_status": "collect", "find_scenario_files": "collect",
    "check_requires": "requires", "check_runtime_requires": "requires",
    "CAPABILITIES": "caps",
}


def __getattr__(name):
    """Import the module that defines ``name`` on first use (PEP 562) and cache the value here."""
    where = _EXPORTS.get(name)
    if where is None:
        raise AttributeError("module %r has no attribute %r" % (__name__, name))
    # One plain import per module, so the import graph (tests/test_layers.py) sees every edge.
    if where == "loader":
        from . import loader as module
    elif where == "limits":
        from . import limits as module
    elif where == "messages":
        from . import messages as module
    elif where == "values":
        from . import values as module
    elif where == "model":
        from . import model as module
    elif where == "matrix":
        from . import matrix as module
    elif where == "elf":
        from . import elf as module
    elif where == "collect":
        from . import collect as module
    elif where == "requires":
        from . import requires as module
    else:
        from .. import caps as module
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
