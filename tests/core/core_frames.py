"""Frame builders for the core tests (addresses from 198.18.0.0/15 and 2001:2::/48)."""
import random
import struct

from netring import stamp

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


def csum16(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(">%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def l4_checksum(frame, l3, v6, proto, l4_off, l4_len):
    """One's complement sum over pseudo-header + L4 segment (0xffff when the checksum in it is valid)."""
    if v6:
        pseudo = frame[l3 + 8:l3 + 40] + struct.pack(">IxxxB", l4_len, proto)
    else:
        pseudo = frame[l3 + 12:l3 + 20] + struct.pack(">xBH", proto, l4_len)
    return csum16(bytes(pseudo) + bytes(frame[l4_off:l4_off + l4_len]))


def fill_checksum(frame, l3, v6, proto, l4_off, l4_len, csum_off):
    frame[csum_off:csum_off + 2] = b"\0\0"
    c = (~l4_checksum(frame, l3, v6, proto, l4_off, l4_len)) & 0xFFFF
    if proto == 17 and c == 0:
        c = 0xFFFF
    frame[csum_off:csum_off + 2] = struct.pack(">H", c)


def stamped(payload_len, proto=17, v6=False, vlan=False, sport=1000, dst=OTHER_MAC, sid=0, seq=0,
            zero_udp_csum=False):
    """A stamped IPv4/IPv6 + UDP/TCP/ICMPv6 frame with a valid L4 checksum; returns (frame, csum_offset)."""
    l2 = dst + SRC_MAC + (b"\x81\x00\x00\x2a" if vlan else b"") + struct.pack(">H", 0x86DD if v6 else 0x0800)
    l3 = len(l2)
    hdr_len = {17: 8, 6: 20, 58: 8}[proto]
    l4_len = hdr_len + payload_len + stamp.STAMP_LEN
    if v6:
        ip = struct.pack(">IHBB16s16s", 6 << 28, l4_len, proto, 64, bytes.fromhex("20010002" + "00" * 11 + "01"),
                         bytes.fromhex("20010002" + "00" * 11 + "02"))
    else:
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + l4_len, 0, 0, 64, proto, 0, bytes([198, 18, 0, 1]),
                         bytes([198, 18, 0, 2]))
    if proto == 17:
        l4 = struct.pack(">HHHH", sport, 9, l4_len, 0)
        co = 6
    elif proto == 6:
        l4 = struct.pack(">HHIIBBHHH", sport, 9, 1, 0, 5 << 4, 0x18, 1024, 0, 0)
        co = 16
    else:
        l4 = struct.pack(">BBHHH", 128, 0, 0, 1, 1)
        co = 2
    payload = bytes((i * 7 + payload_len) & 0xFF for i in range(payload_len))
    f = bytearray(l2 + ip + l4 + payload + bytes(stamp.STAMP_LEN))
    l4_off = l3 + len(ip)
    stamp.write(f, sid, seq, payload_len)
    if not (proto == 17 and zero_udp_csum):
        fill_checksum(f, l3, v6, proto, l4_off, l4_len, l4_off + co)
    return bytes(f), l4_off + co


def checksum_ok(frame):
    """True when the L4 checksum of a frame built by :func:`stamped` verifies (UDP 0 = none counts as ok)."""
    off = 12
    while struct.unpack_from(">H", frame, off)[0] in (0x8100, 0x88A8):
        off += 4
    etype = struct.unpack_from(">H", frame, off)[0]
    l3 = off + 2
    v6 = etype == 0x86DD
    if v6:
        proto, l4_len, l4_off = frame[l3 + 6], struct.unpack_from(">H", frame, l3 + 4)[0], l3 + 40
    else:
        proto, l4_off = frame[l3 + 9], l3 + (frame[l3] & 15) * 4
        l4_len = struct.unpack_from(">H", frame, l3 + 2)[0] - (frame[l3] & 15) * 4
    if proto == 17 and struct.unpack_from(">H", frame, l4_off + 6)[0] == 0:
        return True
    return l4_checksum(frame, l3, v6, proto, l4_off, l4_len) == 0xFFFF
