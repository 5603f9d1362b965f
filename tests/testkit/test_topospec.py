"""Topology rules are written once (netring_testkit.topospec): Topology(spec) and the YAML loader say the same thing."""
import json

import pytest

from netring.errors import ConfigurationError
from netring_testkit import scenario, topospec
from netring_testkit.topology import Topology

LINK = {"endpoints": ["a:x", "b:y"]}

# Specs the JSON Schema accepts, each breaking one rule only the validator knows.
SCHEMA_VALID_BAD = [
    ({"nodes": ["a", "b"], "links": [{"endpoints": ["a:x", "c:y"]}]}, ("links", 0, "endpoints", 1), "not in nodes"),
    ({"nodes": ["a", "b", "a"], "links": [LINK]}, ("nodes", 2), "duplicate node"),
    ({"nodes": ["a", "b"], "links": [LINK, {"endpoints": ["a:x", "b:z"]}]}, ("links", 1, "endpoints", 0),
     "used twice"),
    ({"nodes": ["a", "b"], "links": [LINK], "bridges": [{"name": "b:br0", "ports": ["a:x"]}]},
     ("bridges", 0, "ports", 0), "not on the bridge's node"),
    ({"nodes": ["a", "b"], "links": [LINK], "bridges": [{"name": "b:br0", "ports": ["b:q"]}]},
     ("bridges", 0, "ports", 0), "not a link endpoint"),
    ({"nodes": ["a", "b"], "links": [{"endpoints": [{"node": "a", "interface": "x", "ipv4": "198.18.0.300"}, "b:y"]}]},
     ("links", 0, "endpoints", 0, "ipv4"), "IPv4 address"),
    ({"nodes": ["a", "b"], "links": [{"endpoints": [{"node": "a", "interface": "x", "mac": "01:00:00:00:00:01"},
                                                    "b:y"]}]}, ("links", 0, "endpoints", 0, "mac"), "multicast"),
]


@pytest.mark.parametrize("spec, path, words", SCHEMA_VALID_BAD)
def test_topology_and_yaml_loader_report_the_same_problem(spec, path, words):
    (found_path, message), = topospec.problems(spec)
    assert found_path == path and words in message
    with pytest.raises(ConfigurationError) as ei:
        Topology(spec)
    assert str(ei.value) == "topology %s: %s" % (topospec.field_name(path), message)
    text = ("scenarios:\n  - name: t\n    topology: %s\n    traffic: [{from: a:x, to: b:y}]\n" % json.dumps(spec))
    with pytest.raises(scenario.ScenarioSpecError) as ei:
        scenario.load_text(text, "t.yaml")
    p = next(p for p in ei.value.problems if p.path[:2] == ("scenarios", 0) and p.path[2] == "topology")
    assert p.path == ("scenarios", 0, "topology") + path and p.message == message
    assert p.line == 3


def test_every_problem_is_reported_not_just_the_first():
    spec = {"nodes": ["a", "b"], "links": [{"endpoints": ["a:x", "c:y"]}, {"endpoints": ["a:x", "b:z"]}],
            "bridges": [{"name": "b:br0", "ports": ["b:q"]}]}
    assert [p for p, _ in topospec.problems(spec)] == [("links", 0, "endpoints", 1), ("links", 1, "endpoints", 0),
                                                       ("bridges", 0, "ports", 0)]


def test_a_good_spec_has_no_problems_and_parses():
    spec = {"nodes": ["a", "b"], "links": [LINK], "bridges": [{"name": "b:br0", "ports": ["b:y"]}]}
    found, parsed = topospec.analyse(spec)
    assert found == []
    assert list(parsed.endpoints) == ["a:x", "b:y", "b:br0"] and parsed.endpoints["a:x"].link.name == "b:y"
    assert [p.name for p in parsed.bridges[0].ports] == ["b:y"] and parsed.endpoints["b:y"].ipv4 is None


def test_too_many_segments_is_a_problem_before_building():
    spec = {"nodes": ["a", "b"], "links": [{"endpoints": ["a:x%d" % i, "b:y%d" % i]} for i in range(513)]}
    assert topospec.problems(spec) == [(("links",), "at most 512 layer-2 segments can be auto-addressed, got 513")]
    with pytest.raises(ConfigurationError, match=r"^topology links: at most 512"):
        Topology(spec)
