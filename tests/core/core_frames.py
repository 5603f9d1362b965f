"""Frame builders for the core tests (addresses from 198.18.0.0/15 and 2001:2::/48)."""
import random
import struct

from netring_testkit import frames

ETH_TEST = 0x88B5  # IEEE local experimental ethertype
OTHER_MAC = bytes.fromhex("020000aa0001")
SRC_MAC = bytes.fromhex("020000aa0002")


def eth(dst, src, etype):
    return dst + src + struct.pack(">H", etype)


def mixed_frames(n, seed=1, lo=60, hi=1514, dst=OTHER_MAC):
    """``n`` frames of random sizes lo..hi, ethertype 0x88B5, payload = 4-byte index + random bytes."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        size = rnd.randint(lo, hi)
        body = struct.pack(">I", i) + rnd.randbytes(size - 18)
        out.append(eth(dst, SRC_MAC, ETH_TEST) + body)
    return out


def stamped(payload_len, proto=17, v6=False, vlan=False, sport=1000, dst=OTHER_MAC, sid=0, seq=0,
            zero_udp_csum=False):
    """A stamped IPv4/IPv6 + UDP/TCP/ICMPv6 frame with a valid L4 checksum; returns (frame, csum_offset).

    Built by :func:`netring_testkit.frames.build` (checksum computed from scratch after stamping);
    ``zero_udp_csum`` leaves the UDP checksum 0 ("none"). VLAN 42 when ``vlan``.
    """
    eth = {"dst": dst, "src": SRC_MAC}
    if vlan:
        eth["vlan"] = 42
    layers = {"ipv6": {}} if v6 else {"ipv4": {}}
    if proto == 17:
        layers["udp"] = {"sport": sport, "dport": 9}
        if zero_udp_csum:
            layers["udp"]["checksum"] = 0
    elif proto == 6:
        layers["tcp"] = {"sport": sport, "dport": 9, "seq": 1, "flags": "PA", "window": 1024}
    else:
        layers["icmpv6"] = {"type": 128, "id": 1, "seq": 1}
    payload = bytes((i * 7 + payload_len) & 0xFF for i in range(payload_len))
    f = frames.build(eth=eth, payload=payload, stamp=(sid, seq), **layers)
    return f, frames.l4_checksum_offset(f)


def checksum_ok(frame):
    """True when the L4 checksum of a frame built by :func:`stamped` verifies (UDP 0 = none counts as ok)."""
    p = frames.parse(frame)
    l4 = next(k for k in ("udp", "tcp", "icmp", "icmpv6") if k in p)
    at = frames.l4_checksum_offset(frame)
    if l4 == "udp" and frame[at:at + 2] == b"\0\0":
        return True
    return p[l4]["checksum_ok"]
