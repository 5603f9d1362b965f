"""Topology.build returns only once the links are up and quiet: captures opened right after see nothing."""
import socket

import pytest

from netring_testkit import frames
from netring_testkit.topology import Topology

pytestmark = pytest.mark.privileged

needs_root = pytest.mark.privileged

PAIR = {"nodes": ["a", "b"], "links": [{"endpoints": ["a:eth0", "b:eth0"]}]}
BRIDGED = {"nodes": ["a", "b", "sw"],
           "links": [{"endpoints": ["a:eth0", "sw:p0"]}, {"endpoints": ["b:eth0", "sw:p1"]}],
           "bridges": [{"name": "sw:br0", "ports": ["sw:p0", "sw:p1"], "ipv4": "198.18.9.1", "ipv6": "2001:2:0:9::1"}]}


def _unsolicited(topo, wait=0.15):
    socks = [ep.packet_socket(timeout=0.001) for ep in topo]
    seen = []
    try:
        socks[0].settimeout(wait)
        for s in socks:
            try:
                while True:
                    seen.append(s.recv(4096))
            except socket.timeout:
                pass
    finally:
        for s in socks:
            s.close()
    return seen


@needs_root
@pytest.mark.parametrize("spec", [PAIR, BRIDGED], ids=["pair", "bridged"])
def test_every_endpoint_is_silent_right_after_build(spec):
    for _ in range(5):
        with Topology(spec) as topo:
            assert all(ep.ifindex for ep in topo)
            seen = _unsolicited(topo)
        assert seen == [], [frames.decode(f) for f in seen]


@needs_root
def test_links_carry_traffic_right_after_build():
    # Ready means usable at once: IPv6 and IPv4 datagrams cross on the first try.
    for _ in range(3):
        with Topology(PAIR) as topo:
            a, b = topo["a:eth0"], topo["b:eth0"]
            for ep in (a, b):  # operationally UP, not merely IFF_RUNNING (UNKNOWN sets that too)
                with ep.netns.iproute() as ipr:
                    assert ipr.get_links(ep.ifindex)[0].get_attr("IFLA_OPERSTATE") == "UP"
            for fam, src, dst in ((socket.AF_INET6, a.ipv6, b.ipv6), (socket.AF_INET, a.ipv4, b.ipv4)):
                with b.netns.socket(fam, socket.SOCK_DGRAM, 0) as r, a.netns.socket(fam, socket.SOCK_DGRAM, 0) as s:
                    r.bind((dst, 9999))
                    r.settimeout(2.0)
                    s.sendto(b"hello", (dst, 9999))
                    assert r.recv(100) == b"hello"
