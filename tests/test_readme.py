"""The README's examples run as written.

Each fenced block preceded by ``<!-- readme-test: KIND -->`` is run in a child process:
``script`` blocks with this interpreter, ``pytest`` blocks as a test file, ``scenario`` blocks
as a YAML scenario file under pytest. A block that stops working fails here.
"""
import os
import re
import subprocess
import sys

import pytest

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
_BLOCK = re.compile(r"<!-- readme-test: (\w+) -->\s*\n```(\w+)\n(.*?)\n```", re.S)


def _blocks():
    with open(README) as f:
        text = f.read()
    out = []
    for m in _BLOCK.finditer(text):
        line = text.count("\n", 0, m.start()) + 2
        out.append(pytest.param(m.group(1), m.group(3), id="%s-line%d" % (m.group(1), line)))
    return out


BLOCKS = _blocks()


def test_readme_has_tested_examples_of_every_kind():
    kinds = {p.values[0] for p in BLOCKS}
    assert {"script", "pytest", "scenario"} <= kinds, kinds


def _run(args, cwd, timeout=120):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.privileged
@pytest.mark.parametrize("kind,code", BLOCKS)
def test_readme_example_runs(kind, code, tmp_path):
    if kind == "script":
        path = tmp_path / "example.py"
        path.write_text(code + "\n")
        out = _run([sys.executable, str(path)], tmp_path)
        assert out.returncode == 0, out.stdout + out.stderr
        return
    if kind == "pytest":
        path = tmp_path / "test_example.py"
    elif kind == "scenario":
        path = tmp_path / "example_scenarios.yaml"
    else:
        pytest.fail("unknown readme-test kind %r" % kind)
    path.write_text(code + "\n")
    out = _run([sys.executable, "-m", "pytest", "-p", "netring_testkit", "-q", "-p", "no:cacheprovider",
                str(path)], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    m = re.search(r"(\d+) passed", out.stdout)
    assert m and int(m.group(1)) >= 1 and " failed" not in out.stdout and "skipped" not in out.stdout, out.stdout
