"""DUT mode over a veth pair an operator made in two named namespaces: the bundled one-link scenarios,
the ``veth_pair`` fixture and ``--netring-xdp-features`` run on it, and afterwards the pair is intact
and clean (same names, MACs, MTU, GRO, sysctls; no address or XDP program left)."""
import os
import re
import subprocess
import sys
import textwrap

import pytest

from .conftest import ip, set_gro

pytestmark = pytest.mark.privileged("CAP_BPF")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT = 300


def child_pytest(cwd, *args, env=None):
    e = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", COLUMNS="500")
    e.pop("PYTEST_ADDOPTS", None)
    e.update(env or {})
    cmd = [sys.executable, "-m", "pytest", "-p", "netring_testkit", "-p", "no:cacheprovider", "-rs",
           "--netring-require-privileges"] + list(args)
    return subprocess.run(cmd, cwd=cwd, env=e, capture_output=True, text=True, timeout=TIMEOUT)


def counts(out):
    last = out.stdout.strip().splitlines()[-1]
    return {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed)", last)}


def test_bundled_scenarios_and_capability_items_on_the_pair(operator_pair):
    p = operator_pair
    before = p.state()
    out = child_pytest(ROOT, os.path.join(ROOT, "scenarios"), "--netring-dut", "%s@%s" % (p.dut, p.dut_ns),
                       "--netring-peer", "%s@%s" % (p.peer, p.peer_ns), "--netring-xdp-features", "-v")
    text = out.stdout + out.stderr
    c = counts(out)
    assert out.returncode == 0 and not c.get("failed") and not c.get("errors"), text
    # Every one-link scenario ran and passed on the pair; the others skipped saying why.
    assert c["passed"] >= 20, text
    assert re.search(r"SKIPPED \[1\] .*bridge\.yaml.*DUT mode runs scenarios whose topology is one link; "
                     r"bridge-forward has 2 link\(s\) and 1 bridge\(s\)", text), text
    assert "xdp-pass[mode=native] PASSED" in text and "udp-roundtrip[size=1514] PASSED" in text
    assert "xdp-jumbo PASSED" in text   # MTU raised to the scenario's and restored
    for feature in ("basic", "redirect", "ndo-xmit", "xsk-zerocopy", "hw-offload", "rx-sg", "ndo-xmit-sg"):
        assert "xdp-features::%s PASSED" % feature in text, text
    assert "netring: DUT mode: dut dut0 in namespace %s, peer peer0 in namespace %s" % (p.dut_ns, p.peer_ns) in text
    assert p.state() == before


def test_veth_pair_fixture_is_peer_and_dut(operator_pair, tmp_path):
    p = operator_pair
    # The operator's settings differ from what the fixture asks (MTU 1500, GRO off): changed, then restored.
    ip("-n", p.dut_ns, "link", "set", p.dut, "mtu", "1400")
    ip("-n", p.peer_ns, "link", "set", p.peer, "mtu", "1400")
    set_gro(p.dut_ns, p.dut, True)
    before = p.state()
    assert before["dut0"]["gro"] == 1 and "mtu 1400" in before["dut0"]["link"]
    (tmp_path / "test_child.py").write_text(textwrap.dedent('''
        import ctypes, fcntl, socket, struct, subprocess

        def test_pair(veth_pair):
            peer, dut = veth_pair
            assert (peer.ifname, dut.ifname) == ("peer0", "dut0")
            assert dut.peer is peer and peer.peer is dut
            assert (peer.ipv4, dut.ipv4) == ("198.18.0.1", "198.18.0.2")
            shown = subprocess.run(["ip", "-n", "%s", "-o", "addr", "show", "dev", "dut0"],
                                   capture_output=True, text=True).stdout
            assert "198.18.0.2/24" in shown and "2001:2::2/64" in shown
            link = subprocess.run(["ip", "-n", "%s", "-o", "link", "show", "dev", "dut0"],
                                  capture_output=True, text=True).stdout
            assert "mtu 1500" in link

            def gro():
                buf = ctypes.create_string_buffer(struct.pack("II", 0x2B, 0), 8)
                ifr = struct.pack("16sP", b"dut0", ctypes.addressof(buf)).ljust(40, b"\\0")
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    fcntl.ioctl(s, 0x8946, ifr)
                return struct.unpack("II", buf.raw)[1]

            assert dut.netns.run(gro) == 0   # the fixture's link asks for GRO off
            with dut.capture() as cap, peer.injector() as tx:
                frame = bytes.fromhex(dut.mac.replace(":", "")) + bytes.fromhex(peer.mac.replace(":", "")) \\
                    + b"\\x88\\xb5" + b"DUT mode" * 8
                tx.send(frame)
                tx.flush()
                got = []
                for batch in cap.batches(timeout=2.0):
                    with batch:
                        got += [bytes(pkt.data) for pkt in batch if bytes(pkt.data) == frame]
                    if got:
                        break
            assert got == [frame]
    ''' % (p.dut_ns, p.dut_ns)))
    out = child_pytest(str(tmp_path), "test_child.py", env={"NETRING_DUT": "%s@%s" % (p.dut, p.dut_ns),
                                                            "NETRING_PEER": "%s@%s" % (p.peer, p.peer_ns)})
    assert out.returncode == 0 and counts(out) == {"passed": 1}, out.stdout + out.stderr
    assert p.state() == before


def test_a_down_dut_skips_before_traffic(operator_pair, tmp_path):
    p = operator_pair
    ip("-n", p.dut_ns, "link", "set", p.dut, "down")
    before = p.state()
    (tmp_path / "test_child.py").write_text("def test_pair(veth_pair):\n    raise AssertionError('ran')\n")
    args = ("--netring-dut", "%s@%s" % (p.dut, p.dut_ns), "--netring-peer", "%s@%s" % (p.peer, p.peer_ns))
    out = child_pytest(str(tmp_path), "test_child.py", *args)
    text = out.stdout + out.stderr
    assert out.returncode == 1 and "this test would have been skipped: DUT mode: the DUT dut0 in namespace %s is " \
        "down" % p.dut_ns in text, text
    out = child_pytest(str(tmp_path), "test_child.py", "--netring-dut", "missing0@%s" % p.dut_ns,
                       "--netring-peer", "%s@%s" % (p.peer, p.peer_ns))
    assert "the DUT missing0 in namespace %s does not exist" % p.dut_ns in out.stdout + out.stderr
    out = child_pytest(str(tmp_path), "test_child.py", "--netring-dut", "dut0")
    assert out.returncode == 4 and "needs both --netring-dut and --netring-peer" in out.stderr
    assert p.state() == before


def test_a_dut_in_use_by_xdp_skips_and_keeps_its_program(operator_pair, tmp_path):
    from netring import xdp
    from netring.bpf.programs import builtin

    p = operator_pair
    (tmp_path / "test_child.py").write_text("def test_pair(veth_pair):\n    raise AssertionError('ran')\n")
    with builtin("pass") as prog, xdp.attach(p.dut, prog, netns=p.dut_ns, method="netlink"):
        before = p.state()
        out = child_pytest(str(tmp_path), "test_child.py", "--netring-dut", "%s@%s" % (p.dut, p.dut_ns),
                           "--netring-peer", "%s@%s" % (p.peer, p.peer_ns))
        assert "DUT mode: the DUT dut0 in namespace %s is in use by XDP program 'nr_pass'" % p.dut_ns in out.stdout
        assert counts(out) == {"errors": 1} or counts(out) == {"error": 1}, out.stdout
        assert p.state() == before and before["dut0"]["xdp"]   # the operator's program is still there


def test_adopted_topology_refuses_what_it_cannot_lay_on_two_interfaces(operator_pair):
    from netring.errors import NetringError
    from netring_testkit.plugin import veth_pair_spec
    from netring_testkit.topology import AdoptedTopology

    p = operator_pair
    before = p.state()
    ifaces = {"a:eth0": (p.peer, p.peer_ns), "b:eth0": (p.dut, p.dut_ns)}
    topo = AdoptedTopology(veth_pair_spec(queues=64, mtu=1400), ifaces)
    with pytest.raises(NetringError, match=r"peer0 in namespace %s \(for endpoint a:eth0\) has \d+ RX queue\(s\) but "
                                           r"the spec asks for 64" % p.peer_ns):
        topo.build()
    assert p.state() == before   # refused before the MTU changed
    two_links = {"nodes": ["a", "b", "c"], "links": [{"endpoints": ["a:eth0", "b:eth0"]},
                                                     {"endpoints": ["b:eth1", "c:eth0"]}]}
    with pytest.raises(NetringError, match=r"one link between two endpoints; this spec has 2 link\(s\)"):
        AdoptedTopology(two_links, ifaces)
    with pytest.raises(NetringError, match="no interface given for endpoint b:eth0"):
        AdoptedTopology(veth_pair_spec(), {"a:eth0": (p.peer, p.peer_ns)})
