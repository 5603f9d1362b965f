"""Fuzzing the loader with mutated bundled scenario files.

Whatever the bytes — flipped, truncated, with subtrees duplicated, anchors and aliases
sprinkled in, hostile values spliced in — :func:`netring_testkit.scenario.load_bytes` returns
scenarios or raises :class:`ScenarioSpecError` whose every problem has a line and a column,
and never takes more than a small time budget.
"""
import glob
import os
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netring_testkit import scenario as sc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FILES = sorted(glob.glob(os.path.join(ROOT, "scenarios", "*.yaml")))
SOURCES = {path: open(path, "rb").read() for path in FILES}
BUDGET_S = 2.0

HOSTILE = [b".nan", b".inf", b"-.inf", b"-1", b"0", b"1e999", b"9" * 5000, b"[" * 200, b"{a: " * 80, b"\x00",
           b"\xff\xfe", b"*nope", b"&a [*a]", b"!!binary aGk=", b"2026-01-01", b"<<: *m", b"? [a]", b"\"\\u0000\"",
           b"'${size}'", b"${nope}", b"~", b"{}", b"[]", b"'" + b"x" * 5000 + b"'"]


def _flip(data, draw):
    i = draw(st.integers(0, len(data) - 1))
    return data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1:]


def _truncate(data, draw):
    return data[:draw(st.integers(0, len(data)))]


def _duplicate(data, draw):
    lines = data.split(b"\n")
    i = draw(st.integers(0, len(lines) - 1))
    j = draw(st.integers(i, min(len(lines), i + 12)))
    return b"\n".join(lines[:j] + lines[i:j] + lines[j:])


def _anchor(data, draw):
    """Put an anchor on one value and aliases to it (possibly several times) elsewhere."""
    lines = data.split(b"\n")
    valued = [i for i, l in enumerate(lines) if b": " in l]
    if not valued:
        return data
    i = draw(st.sampled_from(valued))
    lines[i] = lines[i].replace(b": ", b": &m ", 1)
    for _ in range(draw(st.integers(1, 4))):
        k = draw(st.sampled_from(valued))
        key, _, _ = lines[k].partition(b": ")
        lines[k] = key + b": " + draw(st.sampled_from([b"*m", b"[*m, *m, *m, *m]", b"{<<: *m}", b"{<<: [*m, *m]}"]))
    return b"\n".join(lines)


def _splice(data, draw):
    i = draw(st.integers(0, len(data)))
    return data[:i] + draw(st.sampled_from(HOSTILE)) + data[i:]


MUTATIONS = [_flip, _truncate, _duplicate, _anchor, _splice]


@st.composite
def mutated(draw):
    path = draw(st.sampled_from(FILES))
    data = SOURCES[path]
    for mutation in draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=4)):
        if data:
            data = mutation(data, draw)
    return path, data


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated())
def test_mutated_scenario_files_load_or_fail_located(case):
    path, data = case
    t0 = time.monotonic()
    try:
        scenarios = sc.load_bytes(data, path)
    except sc.ScenarioSpecError as exc:
        assert exc.problems
        for p in exc.problems:
            assert p.file == path and isinstance(p.line, int) and isinstance(p.column, int) \
                and p.line >= 1 and p.column >= 1, str(p)
    else:
        assert isinstance(scenarios, list) and all(isinstance(s, sc.Scenario) for s in scenarios)
    elapsed = time.monotonic() - t0
    assert elapsed < BUDGET_S, "%.2fs for %d bytes" % (elapsed, len(data))


def test_the_bundled_files_load_unmutated():
    for path, data in SOURCES.items():
        assert sc.load_bytes(data, path)
