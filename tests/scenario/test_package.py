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


REQ = """\
scenarios:
  - name: r
    requires: %s
    topology: {nodes: [a, b], links: [{endpoints: [a:e, b:e]}]}
    traffic: [{from: a:e, to: b:e}]
"""


def test_requires_reads_capabilities_and_kernel_through_caps(monkeypatch):
    from netring_testkit import caps

    assert sc.CAPABILITIES is caps.CAPABILITIES
    monkeypatch.setattr(caps, "has", lambda name: name != "CAP_BPF")
    s = sc.load_text(REQ % "{capabilities: [CAP_NET_ADMIN, CAP_BPF]}", "r.yaml")[0]
    assert sc.check_requires(s) == "needs CAP_BPF; run as root or grant CAP_BPF"
    monkeypatch.setattr(caps, "has", lambda name: True)
    assert sc.check_requires(s) is None
    monkeypatch.setattr(caps, "kernel_version", lambda: (5, 10, 0))
    s = sc.load_text(REQ % '{kernel: ">= 6.1"}', "r.yaml")[0]
    assert sc.check_requires(s).startswith("needs kernel >= 6.1, this is ")
    monkeypatch.setattr(caps, "kernel_version", lambda: (6, 1, 0))
    assert sc.check_requires(s) is None


def test_caps_has_reads_the_effective_set_not_the_uid(tmp_path):
    from netring_testkit import caps

    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapEff:\t%016x\n" % (1 << caps.CAPABILITIES["CAP_NET_RAW"]))
    assert caps.has("CAP_NET_RAW", status_path=str(status))
    assert not caps.has("CAP_NET_ADMIN", status_path=str(status))
    assert not caps.has("CAP_NET_RAW", status_path=str(tmp_path / "missing"))
