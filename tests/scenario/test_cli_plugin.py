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
    assert any(l.startswith("%s:5:" % bad) and "expected a frame count >= 1, got -3" in l for l in lines)
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
    assert "\n  bad.yaml:5:42: scenarios[0].traffic[0].count: expected a frame count >= 1, got -3" in p.stdout
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
    assert rep["summary"] == {"skipped": 3}
    assert all("needs CAP_NET_ADMIN" in r["reason"] for r in rep["scenarios"])
