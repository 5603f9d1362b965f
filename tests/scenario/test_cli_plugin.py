"""The CLI (validate, list) and pytest collection of scenario files (run in child processes)."""
import io
import os
import subprocess
import sys
import textwrap

import pytest

from netring_testkit import cli

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

VALID = textwrap.dedent("""\
    scenarios:
      - name: alpha
        markers: [slow]
        topology: {nodes: [a, b], links: [{endpoints: [a:eth0, b:eth0]}]}
        traffic: [{from: a:eth0, to: b:eth0, count: 10, frame: {size: "${size}"}}]
        matrix: {size: [64, 100]}
      - name: beta
        topology: {nodes: [a, b], links: [{endpoints: [a:eth0, b:eth0]}]}
        traffic: [{from: a:eth0, to: b:eth0, count: 10}]
    """)
BROKEN = VALID.replace("count: 10, frame", "count: -3, frame").replace("to: b:eth0, count: 10}]", "to: b:eth9, count: 10}]")


def run_cli(*argv):
    out = io.StringIO()
    rc = cli.main(list(argv), out=out)
    return rc, out.getvalue()


def test_validate_ok_and_broken(tmp_path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(VALID)
    bad.write_text(BROKEN)
    rc, out = run_cli("validate", str(good))
    assert rc == 0 and "good.yaml: ok (3 scenario items)" in out
    rc, out = run_cli("validate", str(good), str(bad))
    assert rc == 1
    lines = out.splitlines()
    assert "%s:9:30: scenarios[1].traffic[0].to: stream destination 'b:eth9' is not an endpoint" % bad in out
    assert any(l.startswith("%s:5:" % bad) and "expected a frame count 1..4294967295 (or with a suffix: 5k, 1.5M), got -3" in l for l in lines)
    assert lines[-1] == "1 of 2 files invalid"
    assert "Traceback" not in out


def test_validate_missing_file(tmp_path):
    rc, out = run_cli("validate", str(tmp_path / "nope.yaml"))
    assert rc == 1 and "no such file" in out


def test_list(tmp_path):
    (tmp_path / "s.yaml").write_text(VALID)
    (tmp_path / "other.yaml").write_text("jobs: {}\n")
    rc, out = run_cli("list", "-v", str(tmp_path))
    assert rc == 0
    assert out.splitlines() == [
        "%s::alpha[size=64]  (1 stream, 10 frames, markers slow)" % (tmp_path / "s.yaml"),
        "%s::alpha[size=100]  (1 stream, 10 frames, markers slow)" % (tmp_path / "s.yaml"),
        "%s::beta  (1 stream, 10 frames)" % (tmp_path / "s.yaml"),
        "3 scenario items in 1 file",
    ]


def test_console_script_entry_point(tmp_path):
    (tmp_path / "bad.yaml").write_text(BROKEN)
    exe = os.path.join(os.path.dirname(sys.executable), "netring-testkit")
    if not os.path.exists(exe):
        pytest.skip("netring-testkit console script not installed (pip install -e .)")
    p = subprocess.run([exe, "validate", str(tmp_path / "bad.yaml")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "is not an endpoint" in p.stdout


def pytest_child(tmp_path, *args, timeout=300):
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-m", "pytest", "-p", "netring_testkit.scenario_plugin", "-p", "no:cacheprovider",
           "--rootdir", str(tmp_path), "-c", os.devnull] + list(args)
    return subprocess.run(cmd, cwd=str(tmp_path), capture_output=True, text=True, timeout=timeout, env=env)


def test_collection_ids_keywords_markers(tmp_path):
    (tmp_path / "s.yaml").write_text(VALID)
    (tmp_path / "ci.yml").write_text("jobs: {build: {runs-on: x}}\n")  # unrelated YAML is ignored
    p = pytest_child(tmp_path, "--collect-only", "-q", ".")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "s.yaml::alpha[size=64]" in p.stdout and "s.yaml::alpha[size=100]" in p.stdout
    assert "s.yaml::beta" in p.stdout and "ci.yml" not in p.stdout
    p = pytest_child(tmp_path, "--collect-only", "-q", "-k", "beta", ".")
    assert "beta" in p.stdout and "alpha" not in p.stdout.replace("deselected", "")
    p = pytest_child(tmp_path, "--collect-only", "-q", "-m", "slow", ".")
    assert "alpha[size=64]" in p.stdout and "::beta" not in p.stdout
    p = pytest_child(tmp_path, "--collect-only", "-q", "-m", "netring_scenario and not slow", ".")
    assert "::beta" in p.stdout and "alpha[" not in p.stdout


def test_broken_file_fails_collection_with_located_message(tmp_path):
    (tmp_path / "bad.yaml").write_text(BROKEN)
    p = pytest_child(tmp_path, "-q", ".")
    assert p.returncode != 0
    assert "\n  bad.yaml:9:30: scenarios[1].traffic[0].to: stream destination 'b:eth9'" in p.stdout
    assert "\n  bad.yaml:5:42: scenarios[0].traffic[0].count: expected a frame count 1..4294967295 (or with a suffix: 5k, 1.5M), got -3" in p.stdout
    assert "Traceback" not in p.stdout and "scenario.py" not in p.stdout


def test_report_records_skips_unprivileged(tmp_path):
    """Without capabilities every item skips naming them, at the YAML line, and the JSON report lists it."""
    (tmp_path / "s.yaml").write_text(VALID)
    args = ["-q", "-rs", "--netring-report", str(tmp_path / "r.json"), "."]
    if os.geteuid() == 0:
        import shutil

        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv to drop capabilities")
        env = dict(os.environ, PYTHONPATH=ROOT, PYTHONDONTWRITEBYTECODE="1")
        cmd = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", sys.executable, "-m", "pytest", "-p",
               "netring_testkit.scenario_plugin", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
               "-c", os.devnull] + args
        p = subprocess.run(cmd, cwd=str(tmp_path), capture_output=True, text=True, timeout=120, env=env)
    else:
        p = pytest_child(tmp_path, *args)
    assert "3 skipped" in p.stdout, p.stdout + p.stderr
    assert "SKIPPED [3] s.yaml:2: needs CAP_NET_ADMIN" in p.stdout or "s.yaml:2: needs CAP_NET_ADMIN" in p.stdout
    rep = __import__("json").loads((tmp_path / "r.json").read_text())
    assert rep["summary"] == {"passed": 0, "failed": 0, "error": 0, "skipped": 3}
    assert all("needs CAP_NET_ADMIN" in r["reason"] for r in rep["scenarios"])


# -- the collection rule -------------------------------------------------------------------------
ARTILLERY = textwrap.dedent("""\
    config:
      target: "http://198.18.0.1:8080"
      phases: [{duration: 60, arrivalRate: 5}]
    scenarios:
      - name: browse
        flow: [{get: {url: "/"}}]
    """)
WITH_ANCHORS = "x-topo: &topo {nodes: [a, b], links: [{endpoints: [a:eth0, b:eth0]}]}\n" + textwrap.dedent("""\
    .note: free text
    scenarios:
      - name: anchored
        topology: *topo
        traffic: [{from: a:eth0, to: b:eth0, count: 5}]
    """)
SYNTAX_ERROR = "scenarios:\n  - name: broken\n    topology: {nodes: [a, b]\n  traffic: ]\n"


@pytest.mark.parametrize("text,explicit,expected", [
    (VALID, False, (True, "")),
    (WITH_ANCHORS, False, (True, "")),
    (ARTILLERY, False, (False, "top-level key config besides 'scenarios'")),
    (ARTILLERY, True, (True, "")),
    ("jobs: {build: {runs-on: x}}\n", False, (False, "no line starts with 'scenarios:'")),
    ("- scenarios: 1\n", False, (False, "no line starts with 'scenarios:'")),
    ("scenarios: [1]\n---\nmore: 2\n", False, (False, "top-level key more besides 'scenarios'")),
    ("scenarios: x\n'$schema': y\n", False, (False, "top-level key $schema besides 'scenarios'")),
    (SYNTAX_ERROR, False, (True, "")),                                   # reported, not skipped
    (ARTILLERY + "  oops: [\n", False, (False, "top-level key config besides 'scenarios'")),  # broken Artillery
    ("scenarios:\n  - a\n'quoted': [\n", False, (False, "top-level key quoted besides 'scenarios'")),
])
def test_scenario_file_status(tmp_path, text, explicit, expected):
    from netring_testkit.scenario import scenario_file_status, is_scenario_file

    f = tmp_path / "f.yaml"
    f.write_text(text)
    assert scenario_file_status(f, explicit=explicit) == expected
    assert is_scenario_file(str(f), explicit=explicit) is expected[0]
    g = tmp_path / "f.txt"
    g.write_text(text)
    assert scenario_file_status(g, explicit=True) == (False, "not a *.yaml/*.yml file")


def test_unrelated_yaml_is_not_parsed(tmp_path, monkeypatch):
    """The cheap pre-check: YAML without a line starting with ``scenarios:`` never reaches the parser."""
    import yaml

    from netring_testkit import scenario

    def boom(*a, **k):
        raise AssertionError("parsed")

    monkeypatch.setattr(yaml, "safe_load", boom)
    big = tmp_path / "big.yaml"
    big.write_text("items:\n" + "".join("  - {id: %d, scenarios: [x]}\n" % i for i in range(20000)))
    assert scenario.scenario_file_status(big) == (False, "no line starts with 'scenarios:'")
    assert scenario.find_scenario_files([tmp_path]) == []


def _project(tmp_path):
    (tmp_path / "load-test.yml").write_text(ARTILLERY)
    (tmp_path / "test_trivial.py").write_text("def test_trivial():\n    assert 1 + 1 == 2\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mine.yaml").write_text(WITH_ANCHORS)
    (tmp_path / "sub" / "compose.yaml").write_text("services: {web: {image: x}}\nscenarios: []\n")


def test_artillery_file_next_to_a_test_is_ignored(tmp_path):
    _project(tmp_path)
    p = pytest_child(tmp_path, "--collect-only", "-q", ".")
    assert p.returncode == 0, p.stdout + p.stderr
    ids = [l for l in p.stdout.splitlines() if "::" in l]
    assert ids == ["sub/mine.yaml::anchored", "test_trivial.py::test_trivial"], p.stdout
    assert "load-test" not in p.stdout and "compose" not in p.stdout and "error" not in p.stdout.lower()
    p = pytest_child(tmp_path, "-q", "test_trivial.py", "load-test.yml", "--collect-only")   # explicit: reported
    assert p.returncode != 0
    assert "load-test.yml:2:3: config: unknown field 'config'" in p.stdout, p.stdout
    assert "load-test.yml:6:11: scenarios[0].flow: unknown field 'flow'" in p.stdout and "Traceback" not in p.stdout


def test_syntax_error_in_a_scenario_file_fails_collection(tmp_path):
    (tmp_path / "broken.yaml").write_text(SYNTAX_ERROR)
    (tmp_path / "test_trivial.py").write_text("def test_trivial():\n    pass\n")
    p = pytest_child(tmp_path, "-q", ".")
    assert p.returncode != 0
    assert "ERROR broken.yaml" in p.stdout and "broken.yaml:4:" in p.stdout, p.stdout


def test_cli_follows_the_collection_rule(tmp_path):
    _project(tmp_path)
    rc, out = run_cli("list", str(tmp_path))
    assert rc == 0 and out.splitlines() == ["%s::anchored" % (tmp_path / "sub" / "mine.yaml"),
                                            "1 scenario item in 1 file"]
    rc, out = run_cli("list", str(tmp_path / "load-test.yml"))                       # explicit
    assert rc == 1 and "load-test.yml:2:3: config: unknown field 'config'" in out
    rc, out = run_cli("validate", str(tmp_path / "load-test.yml"))                   # explicit
    assert rc == 1 and "unknown field 'config'" in out and out.splitlines()[-1] == "1 of 1 file invalid"
    rc, out = run_cli("validate", str(tmp_path))                                     # directory: rule (b)
    assert rc == 0 and out.splitlines() == ["%s: ok (1 scenario item)" % (tmp_path / "sub" / "mine.yaml")]
    rc, out = run_cli("validate", str(tmp_path / "sub" / "compose.yaml"), str(tmp_path / "sub"))
    assert rc == 1 and "unknown field 'services'" in out and out.splitlines()[-1] == "1 of 2 files invalid"
