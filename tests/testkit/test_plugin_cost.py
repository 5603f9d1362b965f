"""The auto-loaded plugin costs an unrelated project nothing: no heavy imports, no kernel objects, no reaping."""
import os
import re
import subprocess
import sys
import textwrap

import pytest

from .test_plugin import CHILD_TIMEOUT, run_isolated

HEAVY = ("hypothesis", "jsonschema", "pyroute2", "netring._core", "netring.capture", "netring.netns",
         "netring_testkit.topology", "netring_testkit.scenario", "yaml")

#: A plugin for the child session that records, at its very end, which modules were imported.
RECORDER = '''
import sys

def pytest_unconfigure(config):
    with open("modules.txt", "w") as f:
        f.write("\\n".join(sorted(sys.modules)))
'''


def test_importing_the_plugin_loads_nothing_heavy():
    code = ("import sys, netring_testkit, netring_testkit.plugin, netring_testkit.scenario_plugin, "
            "netring_testkit.xdp_fixture; print('\\n'.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    loaded = set(out.stdout.split())
    assert sorted(m for m in loaded for h in HEAVY if m == h or m.startswith(h + ".")) == []


def _unrelated_session(where, extra_env=None):
    """A one-test project that knows nothing of netring, run with the plugin auto-loaded."""
    (where / "test_x.py").write_text("def test_x():\n    pass\n")
    (where / "recorder.py").write_text(textwrap.dedent(RECORDER))
    env = dict(os.environ, PYTHONPATH=str(where))
    env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
    env.pop("PYTEST_ADDOPTS", None)
    env.update(extra_env or {})
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "recorder", "-p", "no:cacheprovider", "test_x.py"],
                         cwd=str(where), env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    assert out.returncode == 0, out.stdout + out.stderr
    return out, set((where / "modules.txt").read_text().split())


def test_unrelated_session_header_reads_facts_and_builds_nothing(tmp_path):
    out, loaded = _unrelated_session(tmp_path)
    assert "netring: kernel %s" % os.uname().release in out.stdout      # the plugin was loaded…
    assert "netring: usable: topology" in out.stdout
    # (hypothesis is left out: its own pytest plugin imports it when installed.)
    built = {"pyroute2", "netring.netns", "netring_testkit.topology", "netring_testkit.scenario", "jsonschema"}
    assert sorted(loaded & built) == []                                  # …and nothing that builds topologies ran


@pytest.mark.privileged
def test_unrelated_session_reaps_nothing(tmp_path):
    """A stale kept namespace of a dead process survives a session that never used the toolkit, and
    is reaped by the first session that does."""
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    (tmp_path / "test_uses.py").write_text("def test_uses(netns):\n    netns()\n")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    name = "nrt-%s-1-stale" % dead
    run = '"$PY" -m pytest -p netring_testkit -p no:cacheprovider -o netring_reap_after=0 '
    out = run_isolated(tmp_path, "ip netns add %s; %s test_x.py > run1.txt; echo AFTER1 $(ls /run/netns); "
                       "%s test_uses.py > run2.txt; echo AFTER2 $(ls /run/netns)" % (name, run, run))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "AFTER1 %s" % name in out.stdout
    assert re.search(r"^AFTER2\s*$", out.stdout, re.M), out.stdout
    assert "reaped 1 leftover namespace(s): %s" % name \
        in (tmp_path / "run2.txt").read_text()
