"""Frames and traffic for the bpf/xdp tests: stamped Ethernet/VLAN/IPv4/IPv6/UDP/TCP frames.

Addresses come from 198.18.0.0/15 and 2001:2::/48. Every frame ends its L3 packet with a
netring stamp (stream id, seq) so receivers can tell test traffic from anything else.
"""
import socket
import time

from netring import stamp
from netring_testkit import frames

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SRC_MAC = bytes.fromhex("020000000001")
DST_MAC = bytes.fromhex("020000000002")  # not the receiver's MAC: frames skip its IP stack


def frame(stream=1, seq=0, l3="ipv4", proto="udp", src=None, dst=None, sport=4000, dport=9,
          payload=32, vlan=None, smac=SRC_MAC, dmac=DST_MAC, etype=None):
    """One stamped frame, built by :func:`netring_testkit.frames.build` with valid checksums.

    ``l3``: ipv4 | ipv6 | raw (ethertype ``etype``, default 0x88B5, then payload + stamp);
    ``proto``: udp | tcp (SYN) | icmp (echo request; ICMPv6 over ipv6) | an int (IPv4 protocol
    number, no L4 header). ``payload`` bytes of filler precede the stamp; the IPv4 id, TCP seq
    and ICMP seq follow ``seq`` so frames of one stream differ.
    """
    body = bytes((i * 7 + seq) & 0xFF for i in range(payload))
    eth = {"dst": dmac, "src": smac}
    if vlan is not None:
        eth["vlan"] = vlan
    if l3 == "raw":
        eth["type"] = etype or frames.ETH_P_EXPERIMENTAL
        return frames.build(eth=eth, payload=body, stamp=(stream, seq))
    layers = {}
    if l3 == "ipv4":
        layers["ipv4"] = {"src": src or "198.18.0.1", "dst": dst or "198.19.0.1", "id": seq & 0xFFFF}
    else:
        layers["ipv6"] = {"src": src or "2001:2::1", "dst": dst or "2001:2::2"}
    if proto == "udp":
        layers["udp"] = {"sport": sport, "dport": dport}
    elif proto == "tcp":
        layers["tcp"] = {"sport": sport, "dport": dport, "seq": seq, "flags": "S", "window": 8192}
    elif proto == "icmp":
        layers["icmp" if l3 == "ipv4" else "icmpv6"] = {"type": 8 if l3 == "ipv4" else 128, "seq": seq & 0xFFFF}
    else:
        layers[l3]["proto" if l3 == "ipv4" else "nh"] = proto
    return frames.build(eth=eth, payload=body, stamp=(stream, seq), **layers)


def sender(ns, ifname):
    """An AF_PACKET socket bound to ``ifname`` in ``ns`` for sending raw frames."""
    s = ns.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    s.bind((ifname, 0))
    return s


def receiver(ns, ifname):
    """An AF_PACKET socket bound to ``ifname`` in ``ns`` receiving everything, with a large buffer."""
    s = ns.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE
    s.bind((ifname, ETH_P_ALL))
    return s


def send(sock, frames):
    """Send each frame; return how many bytes went out in total."""
    total = 0
    for f in frames:
        total += sock.send(f)
    return total


def receive(sock, stream=None, count=None, timeout=2.0):
    """Incoming (not outgoing) stamped frames, optionally of one stream, until ``count`` or ``timeout`` s of silence."""
    out = []
    deadline = time.monotonic() + 30.0  # hard bound regardless of chatter
    sock.settimeout(timeout)
    while time.monotonic() < deadline and (count is None or len(out) < count):
        try:
            data, addr = sock.recvfrom(65535)
        except socket.timeout:
            break
        if addr[2] == PACKET_OUTGOING:
            continue
        st = stamp.read(data)
        if st is None or (stream is not None and st.stream_id != stream):
            continue
        out.append(data)
    return out
