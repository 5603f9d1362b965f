"""The live-frames sender's frames are the TX ring's: the engine's templates (IPv4/IPv6, UDP/TCP, VLAN,
64 B to the MTU), sent by ``Injector.send_stream`` and ``XdpInjector.send_stream`` with the same seqs,
arrive byte for byte as the C stamper builds them; the C checker and ``netring.stamp.read`` accept them,
and the receiving kernel — the frames are addressed to it — counts no checksum error (a frame with a
broken UDP checksum, sent on purpose, shows that it would).
"""
import time

import pytest

from netring import SeqChecker, XdpInjector, check, stamp, xdp
from netring.bpf import builtin
from netring_testkit import frames, runner
from netring_testkit.plugin import require

pytestmark = pytest.mark.privileged

KINDS = [("ipv4", "udp", None), ("ipv6", "udp", None), ("ipv4", "tcp", None), ("ipv6", "tcp", None),
         ("ipv4", "udp", 42)]
N = 300   # frames per template and sender


@pytest.fixture(scope="module")
def topo():
    require("CAP_BPF")
    from netring_testkit.topology import Topology

    t = Topology({"nodes": ["tx", "rx"], "links": [{"endpoints": ["tx:eth0", "rx:eth0"]}]})
    t.build()
    t.quiet_replies()
    try:
        yield t
    finally:
        t.close()


def _snmp_here():
    """This thread's namespace: {"Udp": {...}, "Tcp": {...}, "Udp6": {...}} counters."""
    out = {}
    with open("/proc/thread-self/net/snmp") as f:
        rows = [line.split() for line in f]
    for head, vals in zip(rows[::2], rows[1::2]):
        out[head[0].rstrip(":")] = dict(zip(head[1:], map(int, vals[1:])))
    with open("/proc/thread-self/net/snmp6") as f:
        out["Udp6"] = {k[4:]: int(v) for k, v in (line.split() for line in f) if k.startswith("Udp6")}
    return out


def _errors(ep):
    s = ep.run(_snmp_here)
    return {"Udp": s["Udp"]["InCsumErrors"], "Udp6": s["Udp6"]["InCsumErrors"], "Tcp": s["Tcp"]["InCsumErrors"],
            "NoPorts": s["Udp"]["NoPorts"] + s["Udp6"]["NoPorts"], "TcpInSegs": s["Tcp"]["InSegs"]}


def _template(a, b, l3, l4, vlan, size):
    kw = dict(src_mac=a.mac, dst_mac=b.mac, l3=l3, l4=l4, vlan=vlan)
    if l3 == "ipv6":
        kw.update(src_ip=a.ipv6, dst_ip=b.ipv6)
    else:
        kw.update(src_ip=a.ipv4, dst_ip=b.ipv4)
    return runner.build_frame(size, 1, **kw)


def _untag(f):
    return f[:12] + f[16:] if (f[12] << 8 | f[13]) == 0x8100 else f


def _collect(cap, sid, total):
    out = []
    for _ in range(100):
        for p in cap.recv(4096, timeout=0.05):
            s = stamp.read(p.data)
            if s is not None and s.stream_id == sid:
                out.append(bytes(p.data))
        if len(out) >= total:
            break
    return out


def test_live_frames_equal_the_tx_rings_and_the_receiver_verifies_their_checksums(topo):
    a, b = topo["tx:eth0"], topo["rx:eth0"]
    templates, offs = [], []
    for l3, l4, vlan in KINDS:
        eth = {"dst": b.mac, "src": a.mac}
        if vlan:
            eth["vlan"] = {"vid": vlan}
        layers = {l3: {}, l4: {}}
        lo = frames.min_size(eth=eth, stamp=(1, 0), **layers)
        for size in (max(64, lo), 700, 1514 + (4 if vlan else 0)):
            t, off = _template(a, b, l3, l4, vlan, size)
            templates.append(t)
            offs.append(off)
    before = _errors(b)
    with builtin("pass") as ppass, xdp.attach(b.ifname, ppass, netns=b.netns):
        with b.capture(block_size=1 << 22, block_count=8) as cap:
            got = {}
            with a.injector() as inj:
                for k, (t, off) in enumerate(zip(templates, offs)):
                    sid = 100 + k
                    assert inj.send_stream([t], sid, 0, N, csum_offsets=[off]) == N
                    inj.wait_drained(1.0)
                    got[("ring", k)] = _collect(cap, sid, N)
            with XdpInjector(a.ifname, netns=a.netns) as gen:
                for k, (t, off) in enumerate(zip(templates, offs)):
                    sid = 200 + k
                    assert gen.send_stream([t], sid, 0, N, csum_offsets=[off]) == N
                    got[("xdp", k)] = _collect(cap, sid, N)
    after = _errors(b)
    for (via, k), fs in got.items():
        sid = (100 if via == "ring" else 200) + k
        t, off = templates[k], offs[k]
        assert len(fs) == N, (via, k, len(fs))
        # the same bytes as the C stamper's (veth strips the VLAN tag on receive)
        assert sorted(fs) == sorted(_untag(check.stamp_frame(t, sid, seq, off)) for seq in range(N)), (via, k)
        assert [stamp.read(f).seq for f in fs] == list(range(N)), (via, k)
        chk = SeqChecker({sid: N})
        for f in fs:
            chk.feed_bytes(f)
        assert chk.counts(sid) == (N, N, 0, 0, 0, 0), (via, k)
    # every untagged UDP frame reached UDP (no socket on port 9: NoPorts), every TCP one TCP, none with a bad checksum
    udp = sum(1 for (l3, l4, vlan) in KINDS if l4 == "udp" and not vlan) * 3 * N * 2
    tcp = sum(1 for (_, l4, _) in KINDS if l4 == "tcp") * 3 * N * 2
    assert after["NoPorts"] - before["NoPorts"] == udp
    assert after["TcpInSegs"] - before["TcpInSegs"] >= tcp
    assert (after["Udp"], after["Udp6"], after["Tcp"]) == (before["Udp"], before["Udp6"], before["Tcp"]), (before, after)


def test_a_broken_udp_checksum_is_counted_by_the_receiver(topo):
    """The control for the test above: the counter does see a bad checksum on this path."""
    a, b = topo["tx:eth0"], topo["rx:eth0"]
    t, off = _template(a, b, "ipv4", "udp", None, 128)
    bad = bytearray(check.stamp_frame(t, 9, 0, off))
    bad[off] ^= 0x5A
    before = _errors(b)
    with a.injector() as inj:
        inj.send(bytes(bad))
        inj.wait_drained(1.0)
    for _ in range(50):
        after = _errors(b)
        if after["Udp"] > before["Udp"]:
            break
        time.sleep(0.02)
    assert after["Udp"] - before["Udp"] == 1
