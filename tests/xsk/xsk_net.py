"""Topology and helpers for the AF_XDP tests: a veth pair between two fresh, unnamed namespaces."""
import struct
import time

from netring import NetNS

ETH_TEST = 0x88B5  # IEEE local experimental ethertype
DST_MAC = bytes.fromhex("020000bb0001")
SRC_MAC = bytes.fromhex("020000bb0002")


def frame(i, size=64, etype=ETH_TEST):
    """An Ethernet frame of ``size`` bytes whose payload starts with the 4-byte index ``i``."""
    body = struct.pack(">I", i) + bytes((i + k) & 0xFF for k in range(size - 18))
    return DST_MAC + SRC_MAC + struct.pack(">H", etype) + body


def index_of(data):
    """The index :func:`frame` wrote into a frame."""
    return struct.unpack_from(">I", data, 14)[0]


class VethPair:
    """Namespaces ``a`` and ``b`` joined by veth ``va`` (in a) — ``vb`` (in b), both up, IPv6 off."""

    def __init__(self, mtu=None):
        self.a = NetNS.create()
        self.b = NetNS.create()
        try:
            for ns in (self.a, self.b):
                ns.sysctl("net.ipv6.conf.all.disable_ipv6", 1)
                ns.sysctl("net.ipv6.conf.default.disable_ipv6", 1)
            with self.a.iproute() as ipr:
                extra = {} if mtu is None else {"mtu": mtu}
                ipr.link("add", ifname="va", kind="veth", peer={"ifname": "vb", "net_ns_fd": self.b.fileno(), **extra},
                         **extra)
                ipr.link("set", index=ipr.link_lookup(ifname="va")[0], state="up")
            with self.b.iproute() as ipr:
                ipr.link("set", index=ipr.link_lookup(ifname="vb")[0], state="up")
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
        self.a.close()  # the veth dies with its namespaces
        self.b.close()
