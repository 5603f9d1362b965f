"""The benchmark's topologies: one veth pair between two fresh, unnamed network namespaces
(:class:`VethPair`), and for the ``netring-bridge`` row the same hop with a forwarding namespace in
the middle (:class:`BridgeHop`).

``tx`` holds ``veth0`` and ``rx`` holds ``veth1`` (the peer is created straight into ``rx``, so no
name ever appears in the root namespace). IPv6 is disabled in both namespaces before the link
exists, so autoconf/MLD chatter never reaches the receiver; both ends get an address from
198.18.0.0/15 (unused by the benchmark's frames, which go to a non-local MAC, but handy for
debugging). The namespaces are held only by file descriptors: closing them — or the process
dying, even by SIGKILL — makes the kernel destroy both namespaces and the veth pair.
"""
from netring.netns import NetNS

__all__ = ["VethPair", "BridgeHop", "TX_IF", "RX_IF", "TX_ADDR", "RX_ADDR", "BR_IF_A", "BR_IF_B"]

TX_IF, RX_IF = "veth0", "veth1"
TX_ADDR, RX_ADDR = "198.18.0.1", "198.18.0.2"
BR_IF_A, BR_IF_B = "br0", "br1"


def _quiet_ns():
    """A fresh unnamed namespace with IPv6 off (no autoconf/MLD chatter on links made later)."""
    ns = NetNS.create()
    try:
        ns.sysctl("net.ipv6.conf.all.disable_ipv6", 1)
        ns.sysctl("net.ipv6.conf.default.disable_ipv6", 1)
    except BaseException:
        ns.close()
        raise
    return ns


def _veth(ns_a, if_a, ns_b, if_b, mtu):
    """A veth pair created in ``ns_a`` with its peer straight in ``ns_b``; both ends up."""
    with ns_a.iproute() as ipr:
        ipr.link("add", ifname=if_a, kind="veth", mtu=mtu,
                 peer={"ifname": if_b, "net_ns_fd": ns_b.fileno(), "mtu": mtu})
        ipr.link("set", index=ipr.link_lookup(ifname=if_a)[0], state="up")
    with ns_b.iproute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=if_b)[0], state="up")


class VethPair:
    """Two unnamed namespaces joined by a veth pair; a context manager (``close()`` is idempotent).

    Attributes once built: ``tx_ns``/``rx_ns`` (:class:`netring.netns.NetNS`), ``tx_if``/``rx_if``
    (interface names inside them), ``mtu``.
    """

    def __init__(self, mtu=1500):
        self.mtu = mtu
        self.tx_if, self.rx_if = TX_IF, RX_IF
        self.tx_ns = self.rx_ns = None

    def build(self):
        """Create the namespaces and the link, bring both ends up; return self."""
        try:
            self.tx_ns = NetNS.create()
            self.rx_ns = NetNS.create()
            for ns in (self.tx_ns, self.rx_ns):
                ns.sysctl("net.ipv6.conf.all.disable_ipv6", 1)
                ns.sysctl("net.ipv6.conf.default.disable_ipv6", 1)
            with self.tx_ns.iproute() as ipr:
                ipr.link("add", ifname=self.tx_if, kind="veth", mtu=self.mtu,
                         peer={"ifname": self.rx_if, "net_ns_fd": self.rx_ns.fileno(), "mtu": self.mtu})
                idx = ipr.link_lookup(ifname=self.tx_if)[0]
                ipr.addr("add", index=idx, address=TX_ADDR, prefixlen=24)
                ipr.link("set", index=idx, state="up")
            with self.rx_ns.iproute() as ipr:
                idx = ipr.link_lookup(ifname=self.rx_if)[0]
                ipr.addr("add", index=idx, address=RX_ADDR, prefixlen=24)
                ipr.link("set", index=idx, state="up")
        except BaseException:
            self.close()
            raise
        return self

    def close(self):
        """Release both namespaces; the kernel then removes the veth pair with them."""
        for attr in ("tx_ns", "rx_ns"):
            ns = getattr(self, attr)
            setattr(self, attr, None)
            if ns is not None:
                ns.close()

    def __enter__(self):
        return self.build()

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<VethPair %s(%s) <-> %s(%s)>" % (self.tx_if, self.tx_ns, self.rx_if, self.rx_ns)


class BridgeHop:
    """Three unnamed namespaces in a line, ``tx | br | rx``: ``tx:veth0 <-> br:br0`` and
    ``br:br1 <-> rx:veth1`` (two veth pairs, each peer created straight into its namespace). A
    :class:`netring.Bridge` between ``br0`` and ``br1`` (run by the bench, not by this class) joins
    them into one hop. The attributes the runner uses for :class:`VethPair` have the same names here
    (``tx_ns``/``rx_ns``/``tx_if``/``rx_if``/``mtu``), plus ``br_ns`` and ``br_if_a``/``br_if_b``.
    IPv6 is off in all three before any link exists; the end hosts carry the same 198.18.0.0/15
    addresses as in :class:`VethPair` (the middle has none: the Bridge forwards frames, not packets).
    Held only by file descriptors, like :class:`VethPair`: closing them (or the process dying) makes
    the kernel destroy the namespaces and both veth pairs. A context manager; ``close()`` is idempotent.
    """

    def __init__(self, mtu=1500):
        self.mtu = mtu
        self.tx_if, self.rx_if = TX_IF, RX_IF
        self.br_if_a, self.br_if_b = BR_IF_A, BR_IF_B
        self.tx_ns = self.br_ns = self.rx_ns = None

    def build(self):
        """Create the three namespaces and both links, bring every end up; return self."""
        try:
            self.tx_ns = _quiet_ns()
            self.br_ns = _quiet_ns()
            self.rx_ns = _quiet_ns()
            _veth(self.tx_ns, self.tx_if, self.br_ns, self.br_if_a, self.mtu)
            _veth(self.br_ns, self.br_if_b, self.rx_ns, self.rx_if, self.mtu)
            for ns, ifname, addr in ((self.tx_ns, self.tx_if, TX_ADDR), (self.rx_ns, self.rx_if, RX_ADDR)):
                with ns.iproute() as ipr:
                    ipr.addr("add", index=ipr.link_lookup(ifname=ifname)[0], address=addr, prefixlen=24)
        except BaseException:
            self.close()
            raise
        return self

    def close(self):
        """Release the three namespaces; the kernel then removes both veth pairs with them."""
        for attr in ("tx_ns", "br_ns", "rx_ns"):
            ns = getattr(self, attr)
            setattr(self, attr, None)
            if ns is not None:
                ns.close()

    def __enter__(self):
        return self.build()

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<BridgeHop %s(%s) <-> %s|%s(%s) <-> %s(%s)>" % (
            self.tx_if, self.tx_ns, self.br_if_a, self.br_if_b, self.br_ns, self.rx_if, self.rx_ns)
