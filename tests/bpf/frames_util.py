"""Frames and traffic for the bpf/xdp tests: stamped Ethernet/VLAN/IPv4/IPv6/UDP/TCP built with struct.

Addresses come from 198.18.0.0/15 and 2001:2::/48. Every frame ends its L3 packet with a
netring stamp (stream id, seq) so receivers can tell test traffic from anything else.
"""
import ipaddress
import socket
import struct
import time

from netring import stamp

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SRC_MAC = bytes.fromhex("020000000001")
DST_MAC = bytes.fromhex("020000000002")  # not the receiver's MAC: frames skip its IP stack


def _csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def frame(stream=1, seq=0, l3="ipv4", proto="udp", src=None, dst=None, sport=4000, dport=9,
          payload=32, vlan=None, smac=SRC_MAC, dmac=DST_MAC, etype=None):
    """One stamped frame. ``l3``: ipv4 | ipv6 | raw (``etype`` then payload+stamp); ``proto``: udp | tcp | icmp | int."""
    body = bytes((i * 7 + seq) & 0xFF for i in range(payload)) + bytes(stamp.STAMP_LEN)
    pnum = {"udp": 17, "tcp": 6, "icmp": 1}.get(proto, proto)
    if pnum == 17:
        l4 = struct.pack("!HHHH", sport, dport, 8 + len(body), 0) + body
    elif pnum == 6:
        l4 = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x02, 8192, 0, 0) + body
    else:
        l4 = struct.pack("!BBHHH", 8, 0, 0, 0, seq & 0xFFFF) + body
    if l3 == "ipv4":
        src = src or "198.18.0.1"
        dst = dst or "198.19.0.1"
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), seq & 0xFFFF, 0, 64, pnum, 0,
                          socket.inet_aton(src), socket.inet_aton(dst))
        hdr = hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:]
        l3b, et = hdr + l4, 0x0800
    elif l3 == "ipv6":
        src = src or "2001:2::1"
        dst = dst or "2001:2::2"
        l3b = struct.pack("!IHBB16s16s", 6 << 28, len(l4), pnum, 64, ipaddress.IPv6Address(src).packed,
                          ipaddress.IPv6Address(dst).packed) + l4
        et = 0x86DD
    else:
        l3b, et = body, etype or 0x88B5
    eth = dmac + smac
    if vlan is not None:
        eth += struct.pack("!HH", 0x8100, vlan)
    f = bytearray(eth + struct.pack("!H", et) + l3b)
    stamp.write(f, stream, seq, plen=payload)
    return bytes(f)


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
