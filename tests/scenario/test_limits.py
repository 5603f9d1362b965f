"""Resource limits: no scenario file may stall validation or collection (bombs, huge lists, huge files).

Every exceeded limit is a located problem naming the limit and how to raise it. The bombs run
in a child process with an address-space limit, so a regression fails the test instead of the machine.
"""
import os
import resource
import subprocess
import sys
import textwrap
import time

import pytest

from netring_testkit import scenario as sc
from netring_testkit.scenario import collect
from netring_testkit.scenario.limits import Limits

from .test_loader import GOOD

GOOD1 = GOOD.replace("matrix: {size: [64, 512], mode: [native, generic]}", "").replace(
    '"${mode}"', "native").replace('"${size}"', "64")


def problems(text, **kw):
    with pytest.raises(sc.ScenarioSpecError) as ei:
        sc.load_text(text, "s.yaml", **kw)
    return ei.value.problems


def one(text, **kw):
    ps = problems(text, **kw)
    assert len(ps) == 1, [str(p) for p in ps]
    return ps[0]


def bomb(levels=9, width=9):
    """A billion-laughs anchor chain: width**levels strings from a few hundred bytes."""
    lines = ['x-l0: &l0 ["%s"]' % '", "'.join(["lol"] * width)]
    for i in range(1, levels):
        lines.append("x-l%d: &l%d [%s]" % (i, i, ", ".join(["*l%d" % (i - 1)] * width)))
    return "\n".join(lines) + "\n"


BOMBS = {
    "field.yaml": bomb() + GOOD1.replace("timeout: 10s", "timeout: 10s\n    description: *l8"),
    "xkey.yaml": bomb() + "x-big: [*l8, *l8]\n" + GOOD1,
    "matrix.yaml": bomb() + GOOD1.replace("timeout: 10s", "timeout: 10s\n    matrix: {k: *l8}"),
}


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def run_bounded(args, cwd, timeout=60):
    """``python -m netring_testkit.cli ARGS`` under 1 GiB of address space; (process, seconds)."""
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "netring_testkit.cli"] + list(args), cwd=str(cwd), capture_output=True,
                       text=True, timeout=timeout, preexec_fn=_limit_memory)
    return p, time.monotonic() - t0


def test_anchor_bombs_are_rejected_while_composing(tmp_path):
    for name, text in BOMBS.items():
        assert len(text) < 1200  # bytes, expanding to 9**9 strings
        (tmp_path / name).write_text(text)
    p, secs = run_bounded(["validate"] + sorted(BOMBS), tmp_path)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "Traceback" not in p.stderr and "MemoryError" not in p.stdout + p.stderr
    lines = [l for l in p.stdout.splitlines() if "YAML nodes" in l]
    assert len(lines) == 3, p.stdout
    for line in lines:
        assert "more than 100000 YAML nodes after alias expansion; the limit is 100000 (yaml_nodes: raise it with " \
               "--netring-limits yaml_nodes=N or the netring_limits ini option)" in line
        assert line.split(":")[1].isdigit() and line.split(":")[2].isdigit()  # file:line:col
    assert secs < 20


def test_anchor_bomb_under_a_directory_fails_collection_located(tmp_path):
    (tmp_path / "bomb.yaml").write_text(BOMBS["xkey.yaml"])
    p, secs = run_bounded(["list", "."], tmp_path)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "bomb.yaml:" in p.stdout and "yaml_nodes" in p.stdout
    assert secs < 20


def test_alias_budget_counts_expanded_nodes():
    text = bomb(levels=3, width=10) + GOOD1  # 1000 strings, + the file's own nodes
    assert sc.load_text(text, "s.yaml")
    p = one(text, limits=Limits(yaml_nodes=500))
    assert p.path[0].startswith("x-l") and p.line is not None and "yaml_nodes" in p.message


def test_file_size_limit_checked_before_reading(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(GOOD1 + "# " + "x" * (2 << 20) + "\n")
    with pytest.raises(sc.ScenarioSpecError) as ei:
        sc.load(path)
    (p,) = ei.value.problems
    assert (p.line, p.column) == (1, 1)
    assert p.message.startswith("%d bytes in the file; the limit is 1048576 (file_size: raise it with "
                                "--netring-limits file_size=N" % path.stat().st_size)
    assert sc.load(path, limits=Limits(file_size=4 << 20))


def test_nesting_depth_is_located():
    deep = "[" * 70 + "]" * 70
    p = one(GOOD1.replace("timeout: 10s", "timeout: 10s\n    description: " + deep))
    # the 65th collection: the file's mapping, `scenarios`, the scenario, then the 62nd "["
    assert p.line == 22 and p.column == 18 + 61
    assert p.message.startswith("more than 64 levels of nesting; the limit is 64 (depth:")
    # nesting deeper than Python's recursion limit: still located, no RecursionError
    p = one(GOOD1.replace("timeout: 10s", "timeout: 10s\n    description: " + "[" * 5000 + "]" * 5000))
    # (libyaml's scanner, which reads ahead of the events, stops at its own limit of 1000 flow levels)
    assert p.line == 22 and ("(depth:" in p.message or "exceeded maximum nesting depth" in p.message), str(p)
    # block nesting, which the scanner does not bound: our limit
    block = "".join("\n" + "  " * (i + 3) + "k%d:" % i for i in range(300)) + " 1"
    p = one(GOOD1.replace("timeout: 10s", "timeout: 10s\n    description:" + block))
    assert p.line == 22 + 62 and "(depth:" in p.message
    assert p.path == ("scenarios", 0, "description") + tuple("k%d" % i for i in range(61))


def test_node_count_stops_composing_a_long_list_at_its_field():
    p = one(GOOD1 + "x-l: [%s]\n" % ", ".join(["1"] * 1000), limits=Limits(yaml_nodes=500))
    assert p.path[0] == "x-l" and p.line == 23 and "more than 500 YAML nodes" in p.message


def test_long_strings_are_located():
    p = one(GOOD1.replace("timeout: 10s", "timeout: 10s\n    description: " + "a" * 5000))
    assert p.path == ("scenarios", 0, "description") and p.line == 22
    assert p.message.startswith("5000 characters in one string; the limit is 4096 (string:")
    # a 5000-digit integer would otherwise raise ValueError (int max str digits)
    p = one(GOOD1.replace("count: 100", "count: " + "9" * 5000))
    assert p.path == ("scenarios", 0, "traffic", 0, "count") and "string" in p.message


def _topology(nodes, links):
    names = ", ".join("n%d" % i for i in range(nodes))
    return ("scenarios:\n"
            "  - name: big\n"
            "    topology:\n"
            "      nodes: [%s]\n"
            "      links:\n" % names
            + "".join("        - {endpoints: [n0:e%d, n1:e%d]}\n" % (i, i) for i in range(links))
            + "    traffic: [{from: n0:e0, to: n1:e0}]\n")


def test_topology_nodes_and_links_limits():
    assert len(sc.load_text(_topology(64, 256), "s.yaml")) == 1
    p = one(_topology(65, 1))
    assert p.path == ("scenarios", 0, "topology", "nodes") and p.line == 4
    assert p.message.startswith("65 topology nodes (network namespaces) in one scenario; the limit is 64 (nodes:")
    p = one(_topology(2, 257))
    assert p.path == ("scenarios", 0, "topology", "links") and p.line == 6
    assert p.message.startswith("257 topology links (veth pairs) in one scenario; the limit is 256 (links:")
    assert len(sc.load_text(_topology(65, 1), "s.yaml", limits=Limits(nodes=65))) == 1


def _streams(n, matrix=""):
    return GOOD1.replace("capture: [{on: rx:eth0, via: afpacket}]", "").replace(
        "    traffic:\n", "    traffic:\n" + "      - {from: tx:eth0, to: rx:eth0, count: 1}\n" * (n - 1)).replace(
        "timeout: 10s", "timeout: 10s" + matrix)


def test_streams_limit_checked_before_the_schema(monkeypatch):
    from netring_testkit.scenario import loader

    p = one(_streams(1025))
    assert p.path == ("scenarios", 0, "traffic") and p.line == 9
    assert p.message.startswith("1025 streams in one scenario; the limit is 1024 (streams:")

    def boom(*a, **k):
        raise AssertionError("the schema pass ran")

    monkeypatch.setattr(loader, "schema_problems", boom)
    one(_streams(1025))


def test_matrix_times_streams_is_limited_before_expanding(monkeypatch):
    from netring_testkit.scenario import loader

    matrix = "\n    description: n${n}\n    matrix: {n: [%s]}" % ", ".join(str(i) for i in range(1000))
    text = _streams(11, matrix)

    def boom(*a, **k):
        raise AssertionError("the matrix was expanded")

    monkeypatch.setattr(loader, "matrix_combinations", boom)
    p = one(text)
    assert p.path == ("scenarios", 0, "matrix")
    assert p.message.startswith("1000 combinations x 11 streams = 11000 matrix combinations x streams of one "
                                "scenario; the limit is 10000 (matrix_streams:")
    monkeypatch.undo()
    assert len(sc.load_text(_streams(10, matrix), "s.yaml")) == 1000


def test_limits_parse():
    assert Limits.parse("streams=4096, file_size=2MiB string=8KiB") == Limits(streams=4096, file_size=2 << 20,
                                                                             string=8192)
    assert Limits.parse("") == Limits()
    with pytest.raises(ValueError, match="unknown scenario limit 'stream'"):
        Limits.parse("stream=3")
    with pytest.raises(ValueError, match="bad scenario limit 'streams=lots'"):
        Limits.parse("streams=lots")


def test_cli_and_ini_raise_a_limit(tmp_path):
    (tmp_path / "s.yaml").write_text(_topology(65, 1))
    p, _ = run_bounded(["validate", "s.yaml"], tmp_path)
    assert p.returncode == 1 and "(nodes:" in p.stdout
    p, _ = run_bounded(["validate", "--netring-limits", "nodes=65", "s.yaml"], tmp_path)
    assert p.returncode == 0, p.stdout


def test_pytest_option_and_ini_raise_a_limit(tmp_path):
    (tmp_path / "s.yaml").write_text(_topology(65, 1))
    base = [sys.executable, "-m", "pytest", "-p", "netring_testkit", "--collect-only", "-q", "s.yaml"]
    env = dict(os.environ, PYTEST_ADDOPTS="")
    p = subprocess.run(base, cwd=str(tmp_path), capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode != 0 and "the limit is 64 (nodes:" in p.stdout
    p = subprocess.run(base + ["--netring-limits", "nodes=65"], cwd=str(tmp_path), capture_output=True, text=True,
                       timeout=120, env=env)
    assert p.returncode == 0 and "s.yaml::big" in p.stdout, p.stdout
    (tmp_path / "pytest.ini").write_text("[pytest]\nnetring_limits = nodes=65\n")
    p = subprocess.run(base, cwd=str(tmp_path), capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0 and "s.yaml::big" in p.stdout, p.stdout
    p = subprocess.run(base + ["--netring-limits", "node=65"], cwd=str(tmp_path), capture_output=True, text=True,
                       timeout=120, env=env)
    assert p.returncode == pytest.ExitCode.USAGE_ERROR
    assert "--netring-limits / netring_limits: unknown scenario limit 'node'; known: file_size" in p.stderr


def _sparse(path, head, size):
    """A file of ``size`` bytes: ``head``, then a hole (NUL bytes that cost no disk)."""
    with open(path, "wb") as f:
        f.write(head.encode())
        f.truncate(size)


def test_collection_check_scans_a_bounded_prefix_and_never_parses(tmp_path, monkeypatch):
    import yaml

    def boom(*a, **k):
        raise AssertionError("parsed")

    for name in ("safe_load", "load", "compose", "SafeLoader"):
        monkeypatch.setattr(yaml, name, boom)
    (tmp_path / "one.yaml").write_text(GOOD1)
    _sparse(tmp_path / "big.yaml", "x-a: &a 1\nscenarios:\n", 50 << 20)
    _sparse(tmp_path / "late.yaml", "", 50 << 20)
    with open(tmp_path / "late.yaml", "r+b") as f:  # `scenarios:` only after the scanned prefix
        f.seek(2 << 20)
        f.write(b"\nscenarios:\n")
    (tmp_path / "artillery.yml").write_text("config: {target: x}\nscenarios: [{flow: []}]\n")
    status = collect.scenario_file_status
    assert status(tmp_path / "one.yaml") == (True, "")
    assert status(tmp_path / "big.yaml") == (True, "")
    assert status(tmp_path / "late.yaml") == (False, "no line starts with 'scenarios:'")
    assert status(tmp_path / "artillery.yml") == (False, "top-level key config besides 'scenarios'")
    assert status(tmp_path / "late.yaml", limits=Limits(file_size=4 << 20)) == (True, "")
    reads = []
    real_open = open

    def counting_open(*a, **k):
        f = real_open(*a, **k)
        real_read = f.read
        f.read = lambda n=-1: reads.append(n) or real_read(n)
        return f

    monkeypatch.setattr("builtins.open", counting_open)
    assert status(tmp_path / "big.yaml") == (True, "")
    assert reads == [1 << 20]


def test_pytest_one_file_does_not_load_its_big_siblings(tmp_path):
    (tmp_path / "one.yaml").write_text(GOOD1)
    _sparse(tmp_path / "big.yaml", "scenarios:\n", 50 << 20)
    env = dict(os.environ, PYTEST_ADDOPTS="")
    base = [sys.executable, "-m", "pytest", "-p", "netring_testkit", "-p", "no:cacheprovider", "--collect-only", "-q"]
    t0 = time.monotonic()
    p = subprocess.run(base + ["one.yaml"], cwd=str(tmp_path), capture_output=True, text=True, timeout=120, env=env,
                       preexec_fn=_limit_memory)
    assert p.returncode == 0 and "one.yaml::udp" in p.stdout and "big.yaml" not in p.stdout, p.stdout + p.stderr
    assert time.monotonic() - t0 < 30
    # found under a directory, the big file is collected (its first line says it is a scenario
    # file) and reports the size limit, without being read
    p = subprocess.run(base + ["."], cwd=str(tmp_path), capture_output=True, text=True, timeout=120, env=env,
                       preexec_fn=_limit_memory)
    assert p.returncode != 0 and "one.yaml::udp" in p.stdout
    assert ("big.yaml:1:1: (top level): 52428800 bytes in the file; the limit is 1048576 (file_size: raise it "
            "with --netring-limits file_size=N" in p.stdout), p.stdout


@pytest.mark.parametrize("field,value", [
    ("timeout", ".nan"), ("timeout", ".inf"), ("timeout", "-1"), ("timeout", "0"), ("timeout", "1e300"),
    ("timeout", "100000m"), ("quiet", ".nan"), ("quiet", "-.inf"),
])
def test_durations_are_finite_and_positive(field, value):
    text = GOOD1.replace("timeout: 10s", "timeout: %s\n    quiet: 100ms" % value if field == "timeout"
                         else "timeout: 10s\n    quiet: %s" % value)
    ps = problems(text)
    assert [p.path for p in ps] == [("scenarios", 0, field)], [str(p) for p in ps]
    assert ps[0].line is not None
    assert "finite" in ps[0].message or "expected a duration" in ps[0].message, ps[0].message


@pytest.mark.parametrize("value", [".inf", ".nan", "-5", "0", "10000000000", "5000Mpps", "1e12"])
def test_rates_are_finite_and_in_range(value):
    ps = problems(GOOD1.replace("rate: 20kpps", "rate: %s" % value))
    assert [p.path for p in ps] == [("scenarios", 0, "traffic", 0, "rate")], [str(p) for p in ps]
    assert ps[0].line == 13


def test_duration_and_rate_values():
    assert sc.parse_duration(86400) == 86400.0
    for bad in (float("nan"), float("inf"), -1, 0, 86401, "1441m"):
        with pytest.raises(ValueError, match="finite number of seconds above 0 and at most 86400"):
            sc.parse_duration(bad)
    assert sc.parse_rate(10 ** 9) == 10 ** 9 and sc.parse_rate("1000Mpps") == 10 ** 9
    for bad in (0, -3, 10 ** 9 + 1, "1001Mpps", float("inf"), float("nan")):
        with pytest.raises(ValueError, match="rate"):
            sc.parse_rate(bad)


def test_recursive_alias_is_located():
    p = one(GOOD1.replace("timeout: 10s", "timeout: 10s\n    description: &d [1, [2, *d]]"))
    assert (p.line, p.column) == (22, 29)  # the alias
    assert p.message == ("YAML syntax error: recursive alias *d: it refers to a node that contains it, which would "
                         "expand forever")
    # a recursive merge key too
    p = one(GOOD1 + "x-m: &m {a: 1, b: {<<: *m}}\n")
    assert p.line == 23 and "recursive alias *m" in p.message


def test_nul_and_control_characters_are_located():
    p = one(GOOD1.replace("count: 100", "count: 1\x0000"))
    assert (p.line, p.column) == (12, 17) and p.message == "character '\\x00' (U+0000) is not allowed in YAML"
    p = one(GOOD1.replace("rate: 20kpps", "rate: 20\x07kpps"))
    assert (p.line, p.column) == (13, 17) and "(U+0007)" in p.message


def test_bytes_that_are_not_utf8_are_located(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(GOOD1.replace("timeout: 10s", "timeout: 10s\n    description: caf\u00e9 \u00e9t\u00e9").encode(
        "latin-1"))
    with pytest.raises(sc.ScenarioSpecError) as ei:
        sc.load(path)
    (p,) = ei.value.problems
    assert (p.line, p.column) == (22, 21)
    assert p.message == "byte 0xe9 is not UTF-8 (invalid continuation byte); save the file as UTF-8"
    # found under a directory it is still recognised (by its lines) and reports this problem
    assert sc.find_scenario_files([tmp_path]) == [str(path)]


def test_matrix_times_scenario_size_is_limited_before_expanding(monkeypatch):
    """A 170 KB file, 1000 combinations of a scenario with 3000 filter rules, took over a minute."""
    from netring_testkit.scenario import loader

    rules = "".join("          - {match: {udp: {dport: %d}}, action: drop}\n" % (i + 1) for i in range(3000))
    text = GOOD1.replace("      - {attach: rx:eth0, program: pass, mode: native}\n",
                         "      - attach: rx:eth0\n        program: filter\n        rules:\n" + rules).replace(
        "timeout: 10s", "timeout: 10s\n    description: n${n}\n    matrix: {n: [%s]}"
        % ", ".join(str(i) for i in range(1000)))

    def boom(*a, **k):
        raise AssertionError("the matrix was expanded")

    monkeypatch.setattr(loader, "matrix_combinations", boom)
    p = one(text)
    assert p.path == ("scenarios", 0, "matrix") and p.line == 3025
    assert p.message.startswith("1000 combinations x 15043 YAML nodes = 15043000 matrix combinations x YAML nodes "
                                "of one scenario; the limit is 200000 (matrix_nodes:")


def test_strings_grown_by_placeholders_are_limited_before_expanding(monkeypatch):
    """600 placeholders of a 1 KB matrix value: a thousand combinations would each hold a 600 KB string."""
    from netring_testkit.scenario import loader

    values = ", ".join("v%04d%s" % (i, "x" * 995) for i in range(1000))
    text = GOOD1.replace("timeout: 10s", "timeout: 10s\n    description: \"%s\"\n    matrix: {k: [%s]}"
                         % ("${k}" * 600, values))
    assert len(text) < 1 << 20

    def boom(*a, **k):
        raise AssertionError("the matrix was expanded")

    monkeypatch.setattr(loader, "matrix_combinations", boom)
    p = one(text)
    assert p.path == ("scenarios", 0, "description") and p.line == 22
    assert p.message.startswith("up to 600000 characters in one string once the matrix values are "
                                "substituted; the limit is 4096 (string:")
