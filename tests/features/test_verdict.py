"""The verdict logic, the report renderings and DUT-mode configuration, without any interface."""
import json
import xml.etree.ElementTree as ET

import pytest

from netring_testkit import dut, scenario, xdpfeatures
from netring_testkit.xdpfeatures import FEATURES, CheckError, Report, parse_expect, verdict


# (advertised, observed, expected) -> verdict: every combination.
TABLE = [
    (True, True, False, "ok"), (False, False, False, "ok"),
    (True, False, False, "mismatch"), (False, True, False, "mismatch"),
    (True, None, False, "unknown"), (False, None, False, "unknown"),
    (True, True, True, "ok"), (False, True, True, "mismatch"),      # observed but not advertised: still a lie
    (True, False, True, "mismatch"), (False, False, True, "mismatch"),
    (True, None, True, "mismatch"), (False, None, True, "mismatch"),  # a requirement must be proven
]


@pytest.mark.parametrize("advertised, observed, expected, want", TABLE)
def test_verdict_table(advertised, observed, expected, want):
    assert verdict(advertised, observed, expected) == want


def test_table_covers_every_combination():
    assert {(a, o, e) for a, o, e, _ in TABLE} == {(a, o, e) for a in (True, False) for o in (True, False, None)
                                                   for e in (True, False)}


def test_parse_expect():
    assert parse_expect("basic, xsk-zerocopy,") == ("basic", "xsk-zerocopy")
    assert parse_expect("") == ()
    with pytest.raises(CheckError, match="unknown XDP feature 'zerocopy'.*basic, redirect"):
        parse_expect("basic,zerocopy")


def _data(verdicts):
    """A report document with the given {feature: (advertised, observed, verdict)} (the rest ok)."""
    feats = {}
    for name in FEATURES:
        adv, obs, v = verdicts.get(name, (True, True, "ok"))
        feats[name] = {"advertised": adv, "observed": obs, "verdict": v, "detail": "%s detail" % name,
                       "checks": [{"name": "c1", "ok": obs, "detail": "sub <&> detail", "condition": "cond"}]}
    return {"interface": "eth9", "netns": "lab", "driver": "drv", "kernel": "6.18", "zc_max_segs": 1,
            "advertised_raw": {"xdp-features": 0b11, "xdp-rx-metadata-features": 0, "xsk-features": 0},
            "features": feats}


def test_report_exit_status_table_and_junit():
    data = _data({"xsk-zerocopy": (True, False, "mismatch"), "hw-offload": (False, None, "unknown")})
    rep = Report(data, peer="eth8")
    assert rep.exit_status == 1
    assert Report(_data({"hw-offload": (False, None, "unknown")})).exit_status == 0
    table = rep.table()
    assert "eth9 in namespace lab (driver drv" in table and "advertised: basic,redirect" in table
    row = [line for line in table.splitlines() if line.startswith("xsk-zerocopy")][0]
    assert row.split()[1:4] == ["yes", "no", "mismatch"]
    assert table.rstrip().endswith("1 mismatch")
    suite = ET.fromstring(rep.junit()).find("testsuite")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert list(cases) == list(FEATURES)
    assert suite.get("failures") == "1" and suite.get("skipped") == "1" and suite.get("tests") == "7"
    assert cases["xsk-zerocopy"].find("failure").get("message") == "xsk-zerocopy detail"
    assert "sub <&> detail" in cases["xsk-zerocopy"].find("failure").text   # escaped, and parsed back
    assert cases["hw-offload"].find("skipped") is not None
    assert cases["basic"].find("failure") is None and cases["basic"].find("skipped") is None
    json.dumps(data)   # the document is plain JSON


def test_junit_for_a_check_that_could_not_run():
    suite = ET.fromstring(xdpfeatures.junit_xml({"interface": "eth9"}, error="eth9 is down")).find("testsuite")
    case, = suite.findall("testcase")
    assert case.find("error").get("message") == "eth9 is down" and suite.get("errors") == "1"


def test_parse_dut_endpoint():
    assert dut.parse_endpoint("eth1@lab") == ("eth1", "lab")
    assert dut.parse_endpoint("eth1") == ("eth1", None)
    for bad in ("", "@lab", "a" * 16, "eth1@", "eth1@a/b"):
        with pytest.raises(ValueError, match="--netring-dut"):
            dut.parse_endpoint(bad)


class _Config:
    def __init__(self, opts=None, ini=None):
        self.opts, self.ini = opts or {}, ini or {}

    def getoption(self, name, default=None):
        return self.opts.get(name, default)

    def getini(self, name):
        return self.ini.get(name, "")


def test_dut_config_precedence(monkeypatch):
    monkeypatch.delenv(dut.DUT_ENV, raising=False)
    monkeypatch.delenv(dut.PEER_ENV, raising=False)
    assert dut.from_config(_Config()) is None
    ini = {"netring_dut": "ini0@a", "netring_peer": "ini1@b"}
    assert dut.from_config(_Config(ini=ini)).dut == ("ini0", "a")
    monkeypatch.setenv(dut.DUT_ENV, "env0")
    assert dut.from_config(_Config(ini=ini)).dut == ("env0", None)
    pair = dut.from_config(_Config({"netring_dut": "opt0@x"}, ini=ini))
    assert pair.dut == ("opt0", "x") and pair.peer == ("ini1", "b")
    monkeypatch.delenv(dut.DUT_ENV)
    with pytest.raises(ValueError, match="needs both --netring-dut and --netring-peer"):
        dut.from_config(_Config({"netring_dut": "eth1"}))
    with pytest.raises(ValueError, match="same interface"):
        dut.from_config(_Config({"netring_dut": "eth1@a", "netring_peer": "eth1@a"}))


def test_dut_endpoint_of_the_bundled_scenarios():
    picked = {}
    for path in ("scenarios/xdp.yaml", "scenarios/udp.yaml", "scenarios/bridge.yaml"):
        for sc in scenario.load(path):
            picked[sc.id] = dut.dut_endpoint(sc)
    assert picked["xdp-pass[mode=native]"] == ("rx:eth0", None)          # the XDP program's endpoint
    assert picked["udp-roundtrip[size=64]"] == ("rx:eth0", None)         # the first stream's `to`
    name, why = picked["bridge-forward"]
    assert name is None and "one link" in why and "2 link(s) and 1 bridge(s)" in why
