"""One privilege rule (the ``privileged`` marker and :func:`netring_testkit.plugin.require`, both reading the
effective capabilities): as root with every capability dropped — a typical container — the tests that
need capabilities skip, naming them, instead of failing."""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: Files whose privilege checks used to read the uid (and failed instead of skipping without capabilities).
FILES = ["tests/core/test_errors.py", "tests/core/test_capture.py", "tests/bpf/test_core.py",
         "tests/bpf/test_lifecycle.py", "tests/bpf/test_bad_args.py", "tests/test_netns_worker.py"]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to drop every capability while staying uid 0")
def test_root_without_capabilities_skips_instead_of_failing():
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", COLUMNS="300")
    env.pop("PYTEST_ADDOPTS", None)
    cmd = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", sys.executable, "-m", "pytest", "-q", "-rs",
           "-p", "no:cacheprovider", "-p", "no:randomly", "-x"] + FILES
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert " failed" not in text and " error" not in text, text
    assert "skipped" in text and "needs CAP_NET_ADMIN" in text, text
