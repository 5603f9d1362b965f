"""``netring-testkit xdp-features`` on a veth pair an operator made: observations, verdicts, exit
status, JSON and JUnit, and that the interfaces are left as found — also after Ctrl-C."""
import json
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from netring import netdev
from netring_testkit.xdpfeatures import FEATURES

from .conftest import ip

pytestmark = pytest.mark.privileged("CAP_BPF")
TIMEOUT = 120


def cli(*args):
    return [sys.executable, "-m", "netring_testkit.cli", "xdp-features"] + list(args)


def run(*args):
    return subprocess.run(cli(*args), capture_output=True, text=True, timeout=TIMEOUT)


def test_full_check_on_veth_is_consistent(operator_pair, tmp_path):
    p = operator_pair
    before = p.state()
    advertised = netdev.features(p.dut, netns=p.dut_ns).xdp_features
    out = run(p.dut, "--netns", p.dut_ns, "--json", str(tmp_path / "r.json"), "--junitxml", str(tmp_path / "r.xml"))
    assert out.returncode == 0, out.stdout + out.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    assert set(doc) == {"interface", "netns", "driver", "kernel", "advertised_raw", "zc_max_segs", "features"}
    assert (doc["interface"], doc["netns"], doc["driver"]) == (p.dut, p.dut_ns, "veth")
    assert set(doc["features"]) == set(FEATURES)
    feats = doc["features"]
    for name, f in feats.items():
        assert set(f) == {"advertised", "observed", "verdict", "detail", "checks"}
        assert f["verdict"] in ("ok", "unknown"), (name, f)
    # What veth advertises as found, read independently, is what the report starts from.
    assert netdev.decode_features(doc["advertised_raw"]["xdp-features"]) == advertised
    for name in ("basic", "redirect", "rx-sg"):
        assert feats[name]["advertised"] == (name in advertised) and feats[name]["observed"] is True, name
    assert feats["hw-offload"]["observed"] is False and feats["hw-offload"]["verdict"] == "ok"
    # veth has no zero-copy AF_XDP and does not claim it: refused bind, consistent verdict; copy mode works.
    xsk = feats["xsk-zerocopy"]
    assert (xsk["advertised"], xsk["observed"], xsk["verdict"]) == (False, False, "ok")
    assert {c["name"]: c["ok"] for c in xsk["checks"]} == {"bind-zerocopy": False, "bind-copy": True}
    assert "EOPNOTSUPP" in xsk["checks"][0]["detail"]
    # veth's conditions, both results reported: XDP_TX and redirect-into reach the peer only with a program there.
    tx = {c["condition"]: c["ok"] for c in feats["basic"]["checks"] if c["name"] == "tx"}
    assert tx == {"no XDP program on the peer": False, "pass program on the peer": True}
    into = {c["condition"]: c["ok"] for c in feats["ndo-xmit"]["checks"]}
    assert into == {"no XDP program on the peer": False, "pass program on the peer": True}
    assert feats["ndo-xmit"]["observed"] is True and feats["ndo-xmit"]["verdict"] == "ok"
    assert {c["name"]: c["ok"] for c in feats["redirect"]["checks"]} == {"cpumap": True, "devmap": True}
    # Human table and JUnit.
    assert "0 mismatches" in out.stdout and "peer: peer0 in namespace %s" % p.peer_ns in out.stdout
    suite = ET.parse(str(tmp_path / "r.xml")).getroot().find("testsuite")
    assert [c.get("name") for c in suite.findall("testcase")] == list(FEATURES)
    assert suite.get("failures") == "0"
    assert p.state() == before   # no program, same MTU, no helper interface left, nothing added


def test_expect_xsk_zerocopy_is_a_mismatch(operator_pair, tmp_path):
    p = operator_pair
    out = run(p.dut, "--netns", p.dut_ns, "--peer", p.peer, "--peer-netns", p.peer_ns,
              "--expect", "xsk-zerocopy", "--json", str(tmp_path / "r.json"))
    assert out.returncode == 1, out.stdout + out.stderr
    feats = json.loads((tmp_path / "r.json").read_text())["features"]
    assert feats["xsk-zerocopy"]["verdict"] == "mismatch"
    assert feats["xsk-zerocopy"]["detail"].startswith("required (--expect) but not observed")
    assert feats["xsk-zerocopy"]["observed"] is False
    assert [n for n, f in feats.items() if f["verdict"] == "mismatch"] == ["xsk-zerocopy"]
    assert "1 mismatch" in out.stdout


def test_refuses_before_traffic(operator_pair):
    p = operator_pair
    out = run("nosuch0", "--netns", p.dut_ns, "--peer", p.peer, "--peer-netns", p.peer_ns)
    assert out.returncode == 2 and "nosuch0" in out.stderr and "not found" in out.stderr
    ip("-n", p.dut_ns, "link", "set", p.dut, "down")
    before = p.state()
    out = run(p.dut, "--netns", p.dut_ns)
    assert out.returncode == 2 and "is down" in out.stderr and "ip link set dev dut0 up" in out.stderr
    assert p.state() == before   # still down: the check never changes a link's state
    out = run("lo", "--netns", p.dut_ns, "--expect", "bogus")
    assert out.returncode == 2 and "unknown XDP feature 'bogus'" in out.stderr
    # A --peer that is not cabled to the device: "could not run", not a list of mismatches.
    ip("-n", p.dut_ns, "link", "set", p.dut, "up")
    ip("-n", p.peer_ns, "link", "add", "x0", "type", "veth", "peer", "name", "x1")
    ip("-n", p.peer_ns, "link", "set", "x0", "up")
    ip("-n", p.peer_ns, "link", "set", "x1", "up")
    out = run(p.dut, "--netns", p.dut_ns, "--peer", "x0", "--peer-netns", p.peer_ns)
    assert out.returncode == 2 and "they do not look cabled to each other" in out.stderr, out.stderr


def test_ctrl_c_restores_the_interfaces(operator_pair):
    p = operator_pair
    before = p.state()
    proc = subprocess.Popen(cli(p.dut, "--netns", p.dut_ns), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        seen = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            seen.append(line)
            if "rx-sg: MTU" in line:   # MTUs raised, a program about to be attached: the middle of a check
                break
        assert any("rx-sg: MTU" in line for line in seen), "".join(seen)
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted; programs detached and MTUs restored" in err
    assert p.state() == before
