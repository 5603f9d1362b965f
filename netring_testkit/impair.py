"""Impaired links: a topology link with ``impair:`` is two veth pairs meeting in a hidden namespace,
with a :class:`netring.Bridge` forwarding between them.

::

    node a            hidden namespace            node b
    a:eth0 ──veth── pa  [netring.Bridge]  pb ──veth── b:eth0

The endpoints keep their names, MACs, MTUs, addresses and neighbour entries, so ``a:eth0`` and
``b:eth0`` look linked as before; the hidden namespace carries no address and has IPv6 off, so
the only frames the bridge forwards are the endpoints'. The bridge starts once the links are up
(:meth:`ImpairedLink.start`, called by :meth:`Topology.build`) and stops when the topology
closes. ``a_to_b`` is the direction from the link's first endpoint to its second.

What differs from a plain veth: the kernel's veth peer of ``a:eth0`` is ``pa``, not ``b:eth0``,
so XDP_TX/redirect tricks that rely on the peer (a native XDP program on the far end) see the
bridge in between; each frame costs one more copy (and one more CPU's attention) per hop.
"""
import netring

__all__ = ["ImpairedLink", "PORT_A", "PORT_B", "render", "DIRECTION_LABELS"]

#: Interface names of the two bridge ports inside the hidden namespace.
PORT_A, PORT_B = "pa", "pb"
#: The report's direction keys, in order.
DIRECTION_LABELS = ("a_to_b", "b_to_a")
_COUNTERS = ("received", "forwarded", "dropped", "duplicated", "reordered", "corrupted", "delayed", "queue_full",
             "tx_dropped", "too_long", "rx_dropped")
_SHORT = {"received": "in", "forwarded": "out", "dropped": "lost", "duplicated": "dup", "reordered": "reorder",
          "corrupted": "corrupt", "delayed": "delayed", "queue_full": "qfull", "tx_dropped": "txdrop",
          "too_long": "toolong", "rx_dropped": "rxdrop"}


class ImpairedLink:
    """One impaired link of a topology: ``a`` and ``b`` (endpoint names, in spec order), ``impairment``
    (``(a_to_b, b_to_a)`` :class:`netring.impairment.Impairment`), ``netns`` (the hidden namespace)
    and ``bridge`` (the running :class:`netring.Bridge`, None before :meth:`start`)."""

    def __init__(self, a, b, impairment, netns, ipr):
        self.a = a
        self.b = b
        self.impairment = impairment
        self.netns = netns
        self._ipr = ipr
        self.bridge = None

    @property
    def name(self):
        """``a:eth0<->b:eth0``."""
        return "%s<->%s" % (self.a, self.b)

    def create_veths(self, ep_a, ep_b, ns_a, ns_b):
        """Create ``ep_a.ifname`` (in ``ns_a``) — ``pa`` and ``pb`` — ``ep_b.ifname`` (in ``ns_b``) from the
        hidden namespace, each far end placed straight into its node, and bring the ports up.
        The ports take the larger MTU of the two endpoints, so the endpoint MTUs alone decide what passes."""
        mtu = max(ep_a.mtu, ep_b.mtu)
        for port, ep, ns in ((PORT_A, ep_a, ns_a), (PORT_B, ep_b, ns_b)):
            self._ipr.link("add", ifname=port, kind="veth", mtu=mtu,
                           peer={"ifname": ep.ifname, "net_ns_fd": ns.fileno(), "address": ep.mac, "mtu": ep.mtu,
                                 "num_tx_queues": ep.queues, "num_rx_queues": ep.queues})
        for port in (PORT_A, PORT_B):
            idx = self._ipr.link_lookup(ifname=port)[0]
            self._ipr.link("set", index=idx, state="up")

    def start(self):
        """Open the :class:`netring.Bridge` between the two ports and start it; returns it."""
        self.bridge = netring.Bridge((PORT_A, self.netns), (PORT_B, self.netns), self.impairment)
        try:
            self.bridge.start()
        except BaseException:
            self.bridge.close()
            raise
        return self.bridge

    def close(self):
        """Stop and close the bridge (idempotent); its counters stay readable."""
        if self.bridge is not None:
            self.bridge.close()

    def report(self):
        """JSON-ready: ``{"endpoints": [a, b], "impair": {"a_to_b": {...}, "b_to_a": {...}}, "a_to_b": {counters},
        "b_to_a": {counters}}`` (counters empty before :meth:`start`)."""
        st = self.bridge.stats().as_dict() if self.bridge is not None else {d: {} for d in DIRECTION_LABELS}
        out = {"endpoints": [self.a, self.b],
               "impair": {d: imp.as_dict() for d, imp in zip(DIRECTION_LABELS, self.impairment)}}
        out.update(st)
        return out


def render(links):
    """Lines for a verdict: the bridge's counters of each impaired link, per direction, so a reader sees
    which loss the link caused (``lost``, ``qfull``, ...) next to the checker's table above."""
    if not links:
        return []
    lines = ["", "impaired links (the bridge's own counters; the table above is the checker's):"]
    head = ("link", "direction") + tuple(_SHORT[c] for c in _COUNTERS)
    rows = [head]
    for name, rec in links.items():
        a, b = rec.get("endpoints", ("a", "b"))
        for d, label in zip(DIRECTION_LABELS, ("%s -> %s" % (a, b), "%s -> %s" % (b, a))):
            c = rec.get(d) or {}
            rows.append((name, label) + tuple(c.get(k, "-") for k in _COUNTERS))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(head))]
    for n, r in enumerate(rows):
        cells = [str(v).ljust(w) if i < 2 else str(v).rjust(w) for i, (v, w) in enumerate(zip(r, widths))]
        lines.append("  " + "  ".join(cells).rstrip())
        if n == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return lines
