"""A veth pair between two fresh, unnamed namespaces, shared by the core, AF_XDP and aio tests."""
import time

from netring import NetNS


class VethPair:
    """Two namespaces ``a`` and ``b`` joined by veth ``va`` (in a) — ``vb`` (in b), both up, IPv6 off.

    ``mtu``: both ends' MTU (None: the default). Attributes ``tx_if``/``rx_if`` (``va``/``vb``),
    ``mac_a``/``mac_b``. The veth dies with its namespaces; :meth:`close` also deletes it at once."""

    def __init__(self, mtu=None):
        self.a = NetNS.create()
        self.b = NetNS.create()
        self.tx_if, self.rx_if = "va", "vb"
        try:
            for ns in (self.a, self.b):
                ns.sysctl("net.ipv6.conf.all.disable_ipv6", 1)
                ns.sysctl("net.ipv6.conf.default.disable_ipv6", 1)
            extra = {} if mtu is None else {"mtu": mtu}
            with self.a.iproute() as ipr:
                ipr.link("add", ifname="va", kind="veth", peer={"ifname": "vb", "net_ns_fd": self.b.fileno(), **extra},
                         **extra)
                ia = ipr.link_lookup(ifname="va")[0]
                ipr.link("set", index=ia, state="up")
                self.mac_a = ipr.get_links(ia)[0].get_attr("IFLA_ADDRESS")
            with self.b.iproute() as ipr:
                ib = ipr.link_lookup(ifname="vb")[0]
                ipr.link("set", index=ib, state="up")
                self.mac_b = ipr.get_links(ib)[0].get_attr("IFLA_ADDRESS")
            self._wait_up()
        except BaseException:
            self.close()
            raise

    def _wait_up(self):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            states = []
            for ns, name in ((self.a, "va"), (self.b, "vb")):
                with ns.iproute() as ipr:
                    states.append(ipr.get_links(ipr.link_lookup(ifname=name)[0])[0].get_attr("IFLA_OPERSTATE"))
            if states == ["UP", "UP"]:
                return
            time.sleep(0.02)

    def close(self):
        try:
            with self.a.iproute() as ipr:
                idx = ipr.link_lookup(ifname="va")
                if idx:
                    ipr.link("del", index=idx[0])
        except Exception:
            pass
        self.a.close()
        self.b.close()
