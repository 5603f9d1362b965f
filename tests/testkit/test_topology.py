"""Topology: spec validation, addressing, building, connectivity, counters, teardown."""
import contextlib
import os
import socket
import struct
import time

import pytest
from hypothesis import given, settings

from netring.errors import ConfigurationError, NetringError
from netring_testkit import frames, strategies
from netring_testkit.topology import Topology, parse_spec, _ethtool_value, _ETHTOOL_GGRO

from .nsutil import net_ns_holders, root_link_names

PAIR = {"nodes": ["a", "b"], "links": [{"endpoints": ["a:eth0", "b:eth0"]}]}


# -- spec validation (no privileges needed) ----------------------------------------------------
@pytest.mark.parametrize("spec, field, words", [
    ([], "(spec)", "mapping"),
    ({"nodes": []}, "nodes", "non-empty"),
    ({"nodes": ["a", "a"]}, "nodes[1]", "duplicate"),
    ({"nodes": ["a b"]}, "nodes[0]", "node names"),
    ({"nodes": ["a"], "links": [{"endpoints": ["a:x"]}]}, "links[0].endpoints", "exactly two"),
    ({"nodes": ["a", "b"], "links": [{"endpoints": ["a:x", "c:y"]}]}, "links[0].endpoints[1]", "not in nodes"),
    ({"nodes": ["a", "b"], "links": [{"endpoints": ["a:x", "b"]}]}, "links[0].endpoints[1]", "node:ifname"),
    ({"nodes": ["a", "b"], "links": [{"endpoints": ["a:averyveryverylongname", "b:y"]}]},
     "links[0].endpoints[0]", "1..15"),
    ({"nodes": ["a", "b"], "links": [{"endpoints": ["a:x", "b:y"], "mtu": 20}]}, "links[0].mtu", "68..65535"),
    ({"nodes": ["a", "b"], "links": [{"endpoints": ["a:x", "b:y"], "queues": 0}]}, "links[0].queues", "1..64"),
    ({"nodes": ["a", "b"], "links": [{"endpoints": ["a:x", "b:y"], "gro": "yes"}]}, "links[0].gro", "true or false"),
    ({"nodes": ["a", "b"], "links": [{"endpoints": ["a:x", "b:y"], "colour": 1}]}, "links[0].colour", "unknown"),
    ({"nodes": ["a", "b"], "links": [{"endpoints": ["a:x", "b:y"]}, {"endpoints": ["a:x", "b:z"]}]},
     "links[1].endpoints[0]", "used twice"),
    ({"nodes": ["a", "b"], "links": [{"endpoints": [{"node": "a", "interface": "x", "mac": "01:00:00:00:00:01"},
                                                    "b:y"]}]}, "links[0].endpoints[0].mac", "multicast"),
    ({"nodes": ["a", "b"], "links": [{"endpoints": [{"node": "a", "interface": "x", "ipv4": "300.1.1.1"}, "b:y"]}]},
     "links[0].endpoints[0].ipv4", "IPv4"),
    ({"nodes": ["a", "b"], "links": [{"endpoints": ["a:x", "b:y"]}],
      "bridges": [{"name": "b:br0", "ports": ["a:x"]}]}, "bridges[0].ports[0]", "not on the bridge's node"),
    ({"nodes": ["a", "b"], "links": [{"endpoints": ["a:x", "b:y"]}],
      "bridges": [{"name": "b:br0", "ports": ["b:q"]}]}, "bridges[0].ports[0]", "not a link endpoint"),
])
def test_bad_specs_name_the_field(spec, field, words):
    with pytest.raises(ConfigurationError) as ei:
        Topology(spec)
    assert ei.value.field == field
    assert words in str(ei.value)
    assert str(ei.value).startswith("topology %s:" % field)


def test_auto_addresses_follow_segments():
    spec = {"nodes": ["a", "b", "c", "sw"],
            "links": [{"endpoints": ["a:e0", "b:e0"]},
                      {"endpoints": ["a:e1", "sw:p0"]}, {"endpoints": ["c:e0", "sw:p1"]},
                      {"endpoints": [{"node": "b", "interface": "e1", "ipv4": "198.19.0.9/30", "ipv6": None},
                                     {"node": "c", "interface": "e1", "ipv4": "198.19.0.10"}], "ipv6": False}],
            "bridges": [{"name": "sw:br0", "ports": ["sw:p0", "sw:p1"]}]}
    topo = Topology(spec)
    addrs = {name: (str(v4) if v4 else None, str(v6) if v6 else None) for name, (v4, v6) in topo._addrs.items()}
    assert addrs == {
        "a:e0": ("198.18.0.1/24", "2001:2::1/64"), "b:e0": ("198.18.0.2/24", "2001:2::2/64"),
        "a:e1": ("198.18.1.1/24", "2001:2:0:1::1/64"), "sw:p0": (None, None),
        "c:e0": ("198.18.1.2/24", "2001:2:0:1::2/64"), "sw:p1": (None, None),
        "b:e1": ("198.19.0.9/30", None), "c:e1": ("198.19.0.10/24", None),
        "sw:br0": (None, None),
    }


@given(strategies.topology_specs())
def test_generated_specs_parse(spec):
    nodes, eps, bridges = parse_spec(spec)
    assert nodes == spec["nodes"]
    assert sum(1 for e in eps.values() if e.kind == "veth") == 2 * len(spec["links"])
    assert len(bridges) == len(spec.get("bridges", []))


# -- building (privileged) ---------------------------------------------------------------------
def _links(ns):
    with ns.iproute() as ipr:
        return {l.get_attr("IFLA_IFNAME"): l for l in ipr.get_links()}


@pytest.mark.privileged
def test_veth_pair_endpoints_and_nothing_in_root():
    before = root_link_names()
    spec = {"nodes": ["a", "b"], "links": [{"endpoints": ["a:nrtk%da" % os.getpid(), "b:nrtk%db" % os.getpid()],
                                            "mtu": 9000, "queues": 3}]}
    with Topology(spec) as topo:
        a, b = topo["a:nrtk%da" % os.getpid()], topo["b:nrtk%db" % os.getpid()]
        assert a.peer is b and b.peer is a
        assert a.netns is topo.nodes["a"] and b.netns is topo.nodes["b"]
        assert a.netns.inode != b.netns.inode
        assert (a.ipv4, a.ipv4_prefix, b.ipv4, a.ipv6, b.ipv6) == ("198.18.0.1", 24, "198.18.0.2", "2001:2::1",
                                                                     "2001:2::2")
        assert a.ifindex == a.netns.ifindex(a.ifname) and b.ifindex == b.netns.ifindex(b.ifname)
        la = _links(a.netns)[a.ifname]
        assert la.get_attr("IFLA_ADDRESS") == a.mac and la.get_attr("IFLA_MTU") == 9000
        assert la.get_attr("IFLA_NUM_TX_QUEUES") == 3 and la.get_attr("IFLA_NUM_RX_QUEUES") == 3
        assert la.get_attr("IFLA_OPERSTATE") == "UP"
        assert _links(b.netns)[b.ifname].get_attr("IFLA_ADDRESS") == b.mac
        now = root_link_names()
        assert not any(n.startswith("nrtk%d" % os.getpid()) for n in now)
        assert now - before == set() or not (now - before) & {a.ifname, b.ifname}
    assert topo.endpoints and repr(topo).startswith("<Topology closed")


@pytest.mark.privileged
def test_close_destroys_namespaces_and_is_idempotent():
    topo = Topology(PAIR).build()
    inodes = {ns.inode for ns in topo.nodes.values()}
    assert net_ns_holders(inodes)
    topo.close()
    topo.close()
    assert net_ns_holders(inodes) == []
    with pytest.raises(NetringError, match="closed"):
        topo["a:eth0"].stats()


@pytest.mark.privileged
def test_failed_build_leaves_nothing():
    spec = {"nodes": ["a", "b"], "links": [{"endpoints": ["a:x0", "b:y0"]}, {"endpoints": ["a:lo", "b:y1"]}]}
    topo = Topology(spec)
    with pytest.raises(NetringError) as ei:
        topo.build()
    assert "a:lo" in str(ei.value)
    assert all(ns.closed for ns in topo.nodes.values())


@pytest.mark.privileged
def test_udp_connectivity_ipv4_ipv6_and_stats(topology):
    topo = topology(PAIR)
    a, b = topo["a:eth0"], topo["b:eth0"]
    s0a, s0b = a.stats(), b.stats()
    for fam, dst in ((socket.AF_INET, b.ipv4), (socket.AF_INET6, b.ipv6)):
        with b.netns.socket(fam, socket.SOCK_DGRAM, 0) as r, a.netns.socket(fam, socket.SOCK_DGRAM, 0) as w:
            r.bind(("", 4000))
            r.settimeout(5)
            w.sendto(b"hello", (dst, 4000))
            data, src = r.recvfrom(100)
            assert data == b"hello" and src[0] == (a.ipv4 if fam == socket.AF_INET else a.ipv6)
    # 10 raw frames more: counters move by exactly that on both sides (plus what UDP needed).
    tx = a.packet_socket()
    f = frames.build(ipv4={}, udp={}, size=200)
    mid_a, mid_b = a.stats(), b.stats()
    for _ in range(10):
        tx.send(f)
    end_a, end_b = a.stats(), b.stats()
    assert end_a["tx_packets"] - mid_a["tx_packets"] == 10
    assert end_a["tx_bytes"] - mid_a["tx_bytes"] == 2000
    assert end_b["rx_packets"] - mid_b["rx_packets"] == 10
    assert mid_a["tx_packets"] > s0a["tx_packets"] and mid_b["rx_packets"] > s0b["rx_packets"]
    assert set(end_a) >= {"rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "rx_dropped", "tx_dropped",
                          "rx_errors", "tx_errors"}


@pytest.mark.privileged
def test_links_are_quiet_after_build(veth_pair):
    a, b = veth_pair
    rx = b.packet_socket(timeout=0.5)
    seen = []
    for _ in range(2):
        try:
            seen.append(rx.recv(2048))
        except socket.timeout:
            pass
    assert seen == [], [frames.decode(f) for f in seen]


@pytest.mark.privileged
def test_bridge_joins_three_nodes(topology):
    topo = topology({"nodes": ["a", "b", "c", "sw"],
                     "links": [{"endpoints": ["a:eth0", "sw:p0"]}, {"endpoints": ["b:eth0", "sw:p1"]},
                               {"endpoints": ["c:eth0", "sw:p2"]}],
                     "bridges": [{"name": "sw:br0", "ports": ["sw:p0", "sw:p1", "sw:p2"]}]})
    br = topo["sw:br0"]
    assert br.kind == "bridge" and br.peer is None and br.ipv4 is None and br.mtu == 1500
    assert all(topo["sw:p%d" % i].bridge is br and topo["sw:p%d" % i].ipv4 is None for i in range(3))
    assert [topo[n].ipv4 for n in ("a:eth0", "b:eth0", "c:eth0")] == ["198.18.0.1", "198.18.0.2", "198.18.0.3"]
    links = _links(br.netns)
    assert links["p0"].get_attr("IFLA_MASTER") == br.ifindex
    for src in ("a:eth0", "c:eth0"):
        with topo["b:eth0"].netns.socket(socket.AF_INET, socket.SOCK_DGRAM, 0) as r, \
                topo[src].netns.socket(socket.AF_INET, socket.SOCK_DGRAM, 0) as w:
            r.bind(("", 5000))
            r.settimeout(5)
            w.sendto(src.encode(), (topo["b:eth0"].ipv4, 5000))
            assert r.recvfrom(100) == (src.encode(), (topo[src].ipv4, w.getsockname()[1]))


@pytest.mark.privileged
def test_gro_per_endpoint(topology):
    topo = topology({"nodes": ["a", "b"], "links": [
        {"endpoints": ["a:e0", {"node": "b", "interface": "e0", "gro": False}], "gro": True}]})
    a, b = topo["a:e0"], topo["b:e0"]
    assert (a.gro, b.gro) == (True, False)
    assert a.run(_ethtool_value, "e0", _ETHTOOL_GGRO) == 1
    assert b.run(_ethtool_value, "e0", _ETHTOOL_GGRO) == 0


@pytest.mark.privileged
def test_keep_names_and_keeps_only_on_failure():
    spec = PAIR
    with Topology(spec, keep=True) as topo:
        names = [ns.name for ns in topo.nodes.values()]
        assert all(n.startswith("nrt-%d-" % os.getpid()) for n in names)
        assert all(os.path.exists("/run/netns/" + n) for n in names)
    assert topo.kept == [] and not any(os.path.exists("/run/netns/" + n) for n in names)

    with pytest.raises(RuntimeError):
        with Topology(spec, keep=True) as topo:
            names = [ns.name for ns in topo.nodes.values()]
            raise RuntimeError("test failed")
    try:
        assert sorted(topo.kept) == sorted(names)
        assert all(os.path.exists("/run/netns/" + n) for n in names)
        assert all("ip netns exec %s bash" % n in topo.enter_hint() for n in names)
        # the kept namespace still holds the configured link
        import subprocess
        out = subprocess.run(["ip", "-n", names[0], "-br", "addr", "show", "eth0"], capture_output=True, text=True)
        assert out.returncode == 0 and "198.18.0." in out.stdout, out
    finally:
        from netring_testkit.plugin import _umount_and_unlink
        for n in names:
            _umount_and_unlink("/run/netns/" + n)


@pytest.mark.privileged
def test_packet_socket_and_adopted_objects_close_with_topology():
    topo = Topology(PAIR).build()
    s = topo["b:eth0"].packet_socket()
    assert s.fileno() >= 0
    topo.close()
    assert s.fileno() == -1
    with pytest.raises(NetringError, match="not built"):
        topo["a:eth0"].packet_socket()


@pytest.mark.privileged
def test_capture_and_injector_open_in_the_endpoint_namespace(veth_pair):
    a, b = veth_pair
    cap = b.capture(block_timeout_ms=10)
    tx = a.injector()
    f = frames.build(ipv4={}, udp={}, size=128, stamp=(1, 1))
    tx.send(f)
    tx.flush()
    got = cap.recv(1, timeout=2.0)   # a topology's links are quiet: the one frame sent is all there is
    assert [bytes(p.data) for p in got] == [f]
    a.topology.close()
    with pytest.raises(Exception):
        cap.fileno()


@pytest.mark.privileged
@pytest.mark.veth_pair(mtu=9000, gro=True, ipv6=False)
def test_veth_pair_marker_options_and_jumbo_frames(veth_pair):
    a, b = veth_pair
    assert (a.mtu, b.mtu, a.gro, b.gro, a.ipv6, b.ipv6) == (9000, 9000, True, True, None, None)
    assert a.ipv4 == "198.18.0.1" and b.ipv4 == "198.18.0.2"
    rx = b.packet_socket(timeout=5)
    f = frames.build(ipv4={"src": a.ipv4, "dst": b.ipv4}, udp={}, size=9014, stamp=(0, 9000))
    a.packet_socket().send(f)
    assert rx.recv(10000) == f
    with pytest.raises(OSError):
        a.packet_socket().send(f + b"x")   # one byte over MTU + 14


@pytest.mark.privileged
@pytest.mark.veth_pair(mtu=9000, ipv6=False)
def test_endpoint_rings_fit_a_jumbo_mtu_by_default_and_explicit_sizes_win(veth_pair):
    a, b = veth_pair
    tx, cap = a.injector(), b.capture(block_timeout_ms=1)
    assert tx.capacity >= 9000 + 14 + 4  # an MTU-sized frame, VLAN tag included
    f = frames.build(ipv4={"src": a.ipv4, "dst": b.ipv4}, udp={}, size=9014, stamp=(0, 9001))
    assert tx.send(f) == 1
    got = cap.recv(1, timeout=3.0)
    assert [bytes(p.data) for p in got] == [f]
    assert len(got) == 1 and not got[0].truncated and got[0].wire_len == 9014
    assert a.injector(frame_size=2048).capacity == 2048 - 32
    assert b.capture(frame_size=2048).frame_size == 2048
    small = b.capture(block_size=8192)  # an explicit block wins; the frame_size default fits inside it
    assert small.block_size == 8192 and small.frame_size <= 8192


def _neighbours(ns):
    """{(ifindex, ip): (lladdr, state)} of a namespace's neighbour table (IPv4 and IPv6)."""
    out = {}
    with ns.iproute() as ipr:
        for m in ipr.get_neighbours():
            dst = m.get_attr("NDA_DST")
            if dst is not None:
                out[(m["ifindex"], dst)] = (m.get_attr("NDA_LLADDR"), m["state"])
    return out


@pytest.mark.privileged
def test_link_partners_have_permanent_neighbour_entries(topology):
    topo = topology({"nodes": ["a", "b", "c", "sw"],
                     "links": [{"endpoints": ["a:eth0", "b:eth0"]},
                               {"endpoints": ["a:eth1", "sw:p0"]}, {"endpoints": ["c:eth0", "sw:p1"]},
                               {"endpoints": ["b:eth1", "sw:p2"], "ipv6": False}],
                     "bridges": [{"name": "sw:br0", "ports": ["sw:p0", "sw:p1", "sw:p2"],
                                  "ipv4": "198.18.1.100/24"}]})
    perm = 0x80  # NUD_PERMANENT
    a0, b0, a1, c0, b1, br = (topo[n] for n in ("a:eth0", "b:eth0", "a:eth1", "c:eth0", "b:eth1", "sw:br0"))
    na, nc = _neighbours(a0.netns), _neighbours(c0.netns)
    # the veth peer, by IPv4 and IPv6
    assert na[(a0.ifindex, b0.ipv4)] == (b0.mac, perm)
    assert na[(a0.ifindex, b0.ipv6)] == (b0.mac, perm)
    assert _neighbours(b0.netns)[(b0.ifindex, a0.ipv4)] == (a0.mac, perm)
    # on the bridge segment: every other addressed endpoint, the bridge device included
    assert na[(a1.ifindex, c0.ipv4)] == (c0.mac, perm) and na[(a1.ifindex, c0.ipv6)] == (c0.mac, perm)
    assert na[(a1.ifindex, b1.ipv4)] == (b1.mac, perm) and na[(a1.ifindex, br.ipv4)] == (br.mac, perm)
    assert nc[(c0.ifindex, a1.ipv4)] == (a1.mac, perm)
    assert _neighbours(br.netns)[(br.ifindex, a1.ipv4)] == (a1.mac, perm)
    assert (a1.ifindex, b0.ipv4) not in na      # another segment's address is not a neighbour here
    ours = {ep.ipv4 for ep in topo} | {ep.ipv6 for ep in topo}
    assert all(state == perm for (_, ip), (_, state) in na.items() if ip in ours)


@pytest.mark.privileged
def test_traffic_to_the_peer_needs_no_arp_or_nd(veth_pair):
    a, b = veth_pair
    rx = a.packet_socket(timeout=0.3)
    for fam, dst in ((socket.AF_INET, b.ipv4), (socket.AF_INET6, b.ipv6)):
        with a.netns.socket(fam, socket.SOCK_DGRAM, 0) as w:
            w.sendto(b"x", (dst, 9))
    sent = []
    with contextlib.suppress(socket.timeout):
        while True:
            sent.append(rx.recv(2048))
    kinds = [frames.decode(f) for f in sent]
    assert len([k for k in kinds if "UDP" in k]) == 2, kinds
    assert not [k for k in kinds if "0x0806" in k or "type 135" in k or "type 136" in k], kinds


@pytest.mark.privileged
def test_bridge_knows_every_ports_far_end_so_nothing_is_flooded(topology):
    # ipv6: false: no MLD report at link-up that would teach the bridge a MAC by chance
    topo = topology({"nodes": ["h1", "h2", "h3", "sw"],
                     "links": [{"endpoints": ["h%d:eth0" % i, "sw:p%d" % i], "ipv6": False} for i in (1, 2, 3)],
                     "bridges": [{"name": "sw:br0", "ports": ["sw:p1", "sw:p2", "sw:p3"]}]})
    h1, h2, h3, br = topo["h1:eth0"], topo["h2:eth0"], topo["h3:eth0"], topo["sw:br0"]
    with br.netns.iproute() as ipr:
        fdb = {(m["ifindex"], m.get_attr("NDA_LLADDR")): m["state"]
               for m in ipr.get_neighbours(family=socket.AF_BRIDGE)}
    for i, h in ((1, h1), (2, h2), (3, h3)):
        assert fdb.get((topo["sw:p%d" % i].ifindex, h.mac)) == 0x40   # static (NUD_NOARP)
    before2, before3 = h2.stats()["rx_packets"], h3.stats()["rx_packets"]
    frame = frames.build(eth={"src": h1.mac, "dst": h2.mac}, ipv4={"src": h1.ipv4, "dst": h2.ipv4}, udp={}, size=100)
    with h1.injector() as tx:
        tx.send_batch([frame] * 20)
        tx.wait_drained(2.0)
    for _ in range(100):   # delivery through the bridge is asynchronous: wait (bounded) for all 20
        if h2.stats()["rx_packets"] - before2 >= 20:
            break
        time.sleep(0.01)
    assert h2.stats()["rx_packets"] - before2 == 20
    assert h3.stats()["rx_packets"] - before3 == 0    # not flooded


def _refused(a, fam, dst):
    """True when a UDP datagram from endpoint ``a`` to ``dst`` port 9 (closed) draws ICMP port unreachable."""
    with a.netns.socket(fam, socket.SOCK_DGRAM, 0) as s:
        s.settimeout(0.3)
        s.connect((dst, 9))
        s.send(b"x")
        try:
            s.recv(10)
        except ConnectionRefusedError:
            return True
        except socket.timeout:
            return False
        return False


@pytest.mark.privileged
def test_quiet_replies_stops_port_unreachable_and_echo_replies(topology):
    loud, quiet = topology(PAIR), topology(PAIR)
    quiet.quiet_replies()       # before any traffic: ICMP credit the kernel already granted would be spent first
    assert _refused(loud["a:eth0"], socket.AF_INET, loud["b:eth0"].ipv4)
    assert _refused(loud["a:eth0"], socket.AF_INET6, loud["b:eth0"].ipv6)
    assert not _refused(quiet["a:eth0"], socket.AF_INET, quiet["b:eth0"].ipv4)
    assert not _refused(quiet["a:eth0"], socket.AF_INET6, quiet["b:eth0"].ipv6)
    b = quiet["b:eth0"]
    assert int(b.netns.sysctl("net.ipv4.icmp_echo_ignore_all")) == 1
    assert int(b.netns.sysctl("net.ipv6.icmp.echo_ignore_all")) == 1
