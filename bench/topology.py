"""The benchmark's topology: one veth pair between two fresh, unnamed network namespaces.

``tx`` holds ``veth0`` and ``rx`` holds ``veth1`` (the peer is created straight into ``rx``, so no
name ever appears in the root namespace). IPv6 is disabled in both namespaces before the link
exists, so autoconf/MLD chatter never reaches the receiver; both ends get an address from
198.18.0.0/15 (unused by the benchmark's frames, which go to a non-local MAC, but handy for
debugging). The namespaces are held only by file descriptors: closing them — or the process
dying, even by SIGKILL — makes the kernel destroy both namespaces and the veth pair.
"""
from netring.netns import NetNS

__all__ = ["VethPair", "TX_IF", "RX_IF", "TX_ADDR", "RX_ADDR"]

TX_IF, RX_IF = "veth0", "veth1"
TX_ADDR, RX_ADDR = "198.18.0.1", "198.18.0.2"


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
