"""Hypothesis strategies for frames and topology specs, valid by construction.

- :func:`frame_specs` draws keyword dicts for :func:`netring_testkit.frames.build`
  (layers, header fields, ``size`` 60…MTU+14, optional VLAN tag, optional stamp);
  :func:`frames` draws the built ``bytes``.
- :func:`topology_specs` draws specs that :class:`netring_testkit.topology.Topology` accepts.

Addresses come from 198.18.0.0/15 and 2001:2::/48. MAC addresses are locally administered
unicast and never in ``02:4e:52:*`` (the toolkit's own endpoints), so a generated frame is
*otherhost* at a topology endpoint and does not wake its IP stack.

Needs hypothesis, an optional dependency: ``pip install 'netring[hypothesis]'``.
"""
import ipaddress

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("netring_testkit.strategies needs hypothesis (%s); install it with "
                      "`pip install 'netring[hypothesis]'`" % exc) from exc

from netring import stamp as _stamp

from . import frames as _frames

__all__ = ["mac_addresses", "ipv4_addresses", "ipv6_addresses", "vlan_tags", "frame_specs", "frames",
           "topology_specs"]

_V4 = ipaddress.ip_network("198.18.0.0/15")
_V6 = ipaddress.ip_network("2001:2::/48")


def mac_addresses():
    """Locally administered unicast MACs outside ``02:4e:52:*``, as ``"aa:bb:.."`` strings."""
    first = st.integers(0, 63).map(lambda x: (x << 2) | 0x02)
    rest = st.binary(min_size=5, max_size=5)
    return st.builds(lambda a, b: bytes([a]) + b, first, rest).filter(
        lambda m: m[:3] != b"\x02\x4e\x52").map(lambda m: ":".join("%02x" % x for x in m))


def ipv4_addresses():
    """Addresses in 198.18.0.0/15 (strings)."""
    return st.integers(1, _V4.num_addresses - 2).map(lambda i: str(_V4.network_address + i))


def ipv6_addresses():
    """Addresses in 2001:2::/48 (strings)."""
    return st.integers(1, _V6.num_addresses - 1).map(lambda i: str(_V6.network_address + i))


def vlan_tags():
    """One 802.1Q tag as build() takes it: a VLAN id 1..4094 or ``{vid, pcp, dei}``."""
    return st.one_of(
        st.integers(1, 4094),
        st.fixed_dictionaries({"vid": st.integers(1, 4094), "pcp": st.integers(0, 7), "dei": st.integers(0, 1)}))


def _ports():
    return st.integers(0, 65535)


@st.composite
def frame_specs(draw, mtu=1500, vlan=None, stamp=None, l3=("ipv4", "ipv6", None),
                l4=("udp", "tcp", "icmp", "icmpv6", None), min_size=_frames.MIN_FRAME, max_size=None,
                src_mac=None, dst_mac=None):
    """Keyword dicts for :func:`~netring_testkit.frames.build`, valid by construction.

    ``vlan``: None (maybe tagged), True (always one tag), False (never). ``stamp``: None (maybe),
    True (always; ``size`` then starts at the stamped minimum), False (never). ``l3``/``l4``:
    the layers to choose from (None = no such layer). Sizes run from ``min_size`` (60) to
    ``max_size`` (default ``mtu + 14``: what a veth with that MTU carries, tag included).
    ``src_mac``/``dst_mac``: fixed strings, or None for :func:`mac_addresses`.
    """
    max_size = mtu + 14 if max_size is None else max_size
    spec = {}
    eth = {"src": src_mac or draw(mac_addresses()), "dst": dst_mac or draw(mac_addresses())}
    tagged = draw(st.booleans()) if vlan is None else vlan
    if tagged:
        eth["vlan"] = draw(vlan_tags())
    spec["eth"] = eth
    l3name = draw(st.sampled_from(list(l3)))
    if l3name == "ipv4":
        spec["ipv4"] = draw(st.fixed_dictionaries(
            {"src": ipv4_addresses(), "dst": ipv4_addresses()},
            optional={"ttl": st.integers(1, 255), "tos": st.integers(0, 255), "id": st.integers(0, 65535),
                      "df": st.booleans()}))
        l4choices = [x for x in l4 if x in ("udp", "tcp", "icmp", None)]
    elif l3name == "ipv6":
        spec["ipv6"] = draw(st.fixed_dictionaries(
            {"src": ipv6_addresses(), "dst": ipv6_addresses()},
            optional={"hlim": st.integers(1, 255), "tc": st.integers(0, 255), "flow": st.integers(0, 0xFFFFF)}))
        l4choices = [x for x in l4 if x in ("udp", "tcp", "icmpv6", None)]
    else:
        eth["type"] = draw(st.sampled_from([_frames.ETH_P_EXPERIMENTAL, 0x88B6]))
        l4choices = [None]
    l4name = draw(st.sampled_from(l4choices or [None]))
    if l4name == "udp":
        spec["udp"] = draw(st.fixed_dictionaries({"sport": _ports(), "dport": _ports()}))
    elif l4name == "tcp":
        spec["tcp"] = draw(st.fixed_dictionaries(
            {"sport": _ports(), "dport": _ports()},
            optional={"seq": st.integers(0, 2**32 - 1), "ack": st.integers(0, 2**32 - 1),
                      "flags": st.integers(0, 255), "window": st.integers(0, 65535),
                      "options": st.integers(0, 10).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n))}))
    elif l4name in ("icmp", "icmpv6"):
        spec[l4name] = draw(st.fixed_dictionaries(
            {"type": st.integers(0, 255), "code": st.integers(0, 255)},
            optional={"id": st.integers(0, 65535), "seq": st.integers(0, 65535)}))
    spec["payload"] = draw(st.binary(max_size=64))
    stamped = draw(st.booleans()) if stamp is None else stamp
    if stamped:
        spec["stamp"] = (draw(st.integers(0, _stamp.STREAM_ID_MAX)), draw(st.integers(0, 2**64 - 1)))
    lo = max(min_size, _frames.min_size(**spec))
    if lo > max_size:
        # Only when the caller's limits leave no room: drop the optional payload, then give up.
        spec["payload"] = b""
        lo = max(min_size, _frames.min_size(**spec))
    if lo > max_size:
        from hypothesis import assume

        assume(False)
    spec["size"] = draw(st.integers(lo, max_size))
    return spec


def frames(**kw):
    """Built frames (``bytes``); takes the same arguments as :func:`frame_specs`."""
    return frame_specs(**kw).map(lambda spec: _frames.build(**spec))


@st.composite
def topology_specs(draw, max_nodes=4, max_links=4, bridges=True, mtus=(1280, 1500, 9000)):
    """Topology specs (dicts) that :class:`~netring_testkit.topology.Topology` accepts.

    2..``max_nodes`` nodes ``n0``…, 1..``max_links`` links between distinct nodes with
    interfaces ``e0``…, random MTU (from ``mtus``), queues, GRO and IPv6 switches, string or
    mapping endpoint forms, and (when ``bridges``) maybe one bridge on a node with ≥1 ports.
    """
    n = draw(st.integers(2, max_nodes))
    nodes = ["n%d" % i for i in range(n)]
    counters = {x: 0 for x in nodes}
    links = []
    for _ in range(draw(st.integers(1, max_links))):
        a, b = draw(st.lists(st.sampled_from(nodes), min_size=2, max_size=2, unique=True))
        ends = []
        for node in (a, b):
            ifname = "e%d" % counters[node]
            counters[node] += 1
            if draw(st.booleans()):
                ends.append("%s:%s" % (node, ifname))
            else:
                ends.append({"node": node, "interface": ifname})
        link = {"endpoints": ends}
        if draw(st.booleans()):
            link["mtu"] = draw(st.sampled_from(list(mtus)))
        if draw(st.booleans()):
            link["queues"] = draw(st.integers(1, 4))
        if draw(st.booleans()):
            link["gro"] = draw(st.booleans())
        if draw(st.booleans()):
            link["ipv6"] = draw(st.booleans())
        links.append(link)
    spec = {"nodes": nodes, "links": links}
    if bridges and draw(st.booleans()):
        node = draw(st.sampled_from(nodes))
        ports = ["%s:e%d" % (node, i) for i in range(counters[node])]
        if ports:
            chosen = draw(st.lists(st.sampled_from(ports), min_size=1, unique=True))
            spec["bridges"] = [{"name": "%s:br0" % node, "ports": chosen}]
    return spec
