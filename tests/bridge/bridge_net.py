"""A three-namespace chain for the Bridge tests: ``a:va`` — ``m:ma`` [Bridge] ``m:mb`` — ``b:vb``.

Two veth pairs meet in the middle namespace ``m``; every namespace is unnamed (gone with its fd)
and has IPv6 off, so the only frames on the links are the ones a test sends.
"""
import threading
import time

from netring import Bridge, Capture, Injector, NetNS, SeqChecker
from netring_testkit import frames

OTHER_MAC = bytes.fromhex("020000aa0001")  # to no interface's MAC: the receivers' IP stacks stay out of it


def stamped(payload_len=18):
    """A stamped Ethernet/IPv4/UDP frame (198.18.0.0/15) with ``payload_len`` payload bytes; ``(frame, csum_off)``."""
    payload = bytes((i * 7 + payload_len) & 0xFF for i in range(payload_len))
    f = frames.build(eth={"dst": OTHER_MAC, "src": "02:00:00:aa:00:02"}, ipv4={}, udp={"sport": 1000, "dport": 9},
                     payload=payload, stamp=(0, 0))
    return f, frames.l4_checksum_offset(f)


class Chain:
    """``a`` (``va``) — ``m`` (``ma``, ``mb``) — ``b`` (``vb``), all links up."""

    def __init__(self, mtu=1500):
        self.a, self.m, self.b = NetNS.create(), NetNS.create(), NetNS.create()
        try:
            for ns in (self.a, self.m, self.b):
                ns.sysctl("net.ipv6.conf.all.disable_ipv6", 1)
                ns.sysctl("net.ipv6.conf.default.disable_ipv6", 1)
            with self.a.iproute() as ipr:
                ipr.link("add", ifname="va", kind="veth", peer={"ifname": "ma", "net_ns_fd": self.m.fileno()})
            with self.b.iproute() as ipr:
                ipr.link("add", ifname="vb", kind="veth", peer={"ifname": "mb", "net_ns_fd": self.m.fileno()})
            for ns, names in ((self.a, ["va"]), (self.m, ["ma", "mb"]), (self.b, ["vb"])):
                with ns.iproute() as ipr:
                    for n in names:
                        i = ipr.link_lookup(ifname=n)[0]
                        ipr.link("set", index=i, state="up", mtu=mtu)
            self._wait_up()
        except BaseException:
            self.close()
            raise

    def _wait_up(self):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            states = []
            for ns, names in ((self.a, ["va"]), (self.m, ["ma", "mb"]), (self.b, ["vb"])):
                with ns.iproute() as ipr:
                    for n in names:
                        states.append(ipr.get_links(ipr.link_lookup(ifname=n)[0])[0].get_attr("IFLA_OPERSTATE"))
            if all(s == "UP" for s in states):
                return
            time.sleep(0.02)

    def bridge(self, impair=None, **kw):
        """A :class:`netring.Bridge` between ``ma`` and ``mb`` (a→b is va's traffic towards vb)."""
        return Bridge(("ma", self.m), ("mb", self.m), impair, **kw)

    def close(self):
        for ns in (self.a, self.m, self.b):
            ns.close()


def stream_through(chain, bridge, n, stream_id=1, rate_pps=100_000, payload_len=18, reverse=False, timeout=30.0):
    """Send ``n`` stamped frames from va (vb with ``reverse``) through ``bridge`` (already started) and
    count them at the other end: returns the :class:`SeqChecker`. The capture ring (16 MiB) holds the
    whole stream, so a receiver thread starved by a busy machine cannot turn into drops. ``timeout``
    bounds the wait for the first frame (a stream expected to vanish: make it short)."""
    tmpl, co = stamped(payload_len)
    src, dst = (("vb", chain.b), ("va", chain.a)) if reverse else (("va", chain.a), ("vb", chain.b))
    chk = SeqChecker({stream_id: n})
    with Capture(dst[0], netns=dst[1], block_size=1 << 20, block_count=16) as cap, \
            Injector(src[0], netns=src[1]) as tx:
        rx = threading.Thread(target=cap.drain, args=(chk, timeout, 1.0))
        rx.start()
        try:
            assert tx.send_stream([tmpl], stream_id, 0, n, rate_pps=rate_pps, csum_offsets=[co]) == n
        finally:
            rx.join()
        assert cap.cumulative_stats().drops == 0
    return chk
