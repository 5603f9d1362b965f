"""The scenario package: its re-exports, its cheap import (the plugin loads it in every pytest session)."""
import inspect
import subprocess
import sys

import pytest

from netring_testkit import scenario as sc


@pytest.mark.parametrize("name", sc.__all__)
def test_public_names_are_reexported_and_documented(name):
    ns = {}
    exec("from netring_testkit.scenario import %s as value" % name, ns)
    assert getattr(sc, name) is ns["value"]
    if inspect.isfunction(ns["value"]) or inspect.isclass(ns["value"]):
        assert inspect.getdoc(ns["value"])


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        sc.nope  # noqa: B018


def test_importing_the_package_and_the_collection_rule_stays_cheap(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("scenarios: []\n")
    code = ("import sys\n"
            "import netring_testkit.scenario as sc, netring_testkit.scenario.collect\n"
            "assert sc.scenario_file_status(%r) == (True, '')\n"
            "heavy = ('jsonschema', 'hypothesis', 'pyroute2', 'netring._core', 'netring.capture')\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))\n" % str(f))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"
