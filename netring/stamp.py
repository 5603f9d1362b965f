"""The stamp: how every generated frame carries stream id, sequence number and a payload check.

This module is the normative description and a pure-Python reference implementation. The C
core (``csrc/stampc.c``) implements the same layout for the hot paths (stamping TX frames from
a template, checking RX blocks); tests keep the two in agreement.

Where the stamp is
    The last :data:`STAMP_LEN` (20) bytes of the **L3 packet**: for IPv4 the packet ends at
    ``l3 + total_length``, for IPv6 at ``l3 + 40 + payload_length``; for any other ethertype
    the stamp is the last 20 bytes of the frame. ``l3`` is 14, plus 4 per 802.1Q/802.1ad tag
    present (at most two). Anchoring at the L3 end, not at a fixed offset from the frame start,
    makes the stamp independent of the L3/L4 header sizes, of VLAN tags the receiving device
    strips, and of Ethernet padding a NIC may add to short frames.

Layout (big-endian)::

    +0   u32  magic      0x4E525453 ("NRTS")
    +4   u16  stream_id  0..65535
    +6   u16  plen       number of bytes right before the stamp that the check covers
                         (the L4 payload in frames the toolkit builds), 0..65535
    +8   u64  seq
    +16  u32  check

    20 bytes, so a 64 B Ethernet/IPv4/UDP frame carries one (14 + 20 + 8 + 20 = 62 B of
    headers and stamp).

The check
    ``H`` runs over 8-byte little-endian words, the last one zero-padded:
    ``h = (h ^ word) * 0x100000001b3 mod 2**64`` starting from ``0xcbf29ce484222325``.
    ``h1 = H(seed, payload)`` over the ``plen`` bytes before the stamp, then
    ``h2 = H(h1, stamp[0:16])`` (exactly two words, no padding);
    ``check = (h2 ^ (h2 >> 32)) & 0xffffffff``.
    Splitting payload and stamp lets a sender hash a template's payload once and stamp each
    frame in O(1); the receiver recomputes it all. The check covers the payload and the stamp
    fields, not the L2/L3/L4 headers (a reflecting XDP program may legitimately swap MACs, and
    L4 checksums are computed after stamping).
"""
import struct

__all__ = ["STAMP_LEN", "MAGIC", "STREAM_ID_MAX", "PLEN_MAX", "Stamp", "locate", "payload_hash", "check_value",
           "write", "read"]

STAMP_LEN = 20
MAGIC = 0x4E525453
_SEED = 0xCBF29CE484222325
_PRIME = 0x100000001B3
_MASK = (1 << 64) - 1
_HDR = struct.Struct(">IHHQ")  # magic, stream_id, plen, seq (the 16 bytes the check covers)
_HDR_LEN = _HDR.size
#: Largest stream id the stamp holds (a u16).
STREAM_ID_MAX = 0xFFFF
#: Largest ``plen`` the stamp holds (a u16; L3 packets are at most 64 KiB anyway).
PLEN_MAX = 0xFFFF

_VLAN_TPIDS = (0x8100, 0x88A8)


class Stamp(tuple):
    """A decoded stamp: ``(stream_id, seq, plen, ok, offset)``; ``ok`` is False when the check fails."""

    __slots__ = ()

    def __new__(cls, stream_id, seq, plen, ok, offset):
        return tuple.__new__(cls, (stream_id, seq, plen, ok, offset))

    stream_id = property(lambda self: self[0])
    seq = property(lambda self: self[1])
    plen = property(lambda self: self[2])
    ok = property(lambda self: self[3])
    offset = property(lambda self: self[4])

    def __repr__(self):
        return "Stamp(stream_id=%d, seq=%d, plen=%d, ok=%s, offset=%d)" % self


def l3_offset(frame):
    """Offset of the L3 header and its ethertype: ``(offset, ethertype)``; ``(-1, 0)`` if too short."""
    off = 12
    for _ in range(3):
        if len(frame) < off + 2:
            return -1, 0
        etype = (frame[off] << 8) | frame[off + 1]
        if etype in _VLAN_TPIDS:
            off += 4
            continue
        return off + 2, etype
    return -1, 0


def locate(frame):
    """Offset of the stamp in ``frame`` per the rule above, or -1 when the frame cannot hold one."""
    n = len(frame)
    l3, etype = l3_offset(frame)
    if l3 < 0:
        return -1
    end = n
    if etype == 0x0800 and n >= l3 + 20:
        end = l3 + ((frame[l3 + 2] << 8) | frame[l3 + 3])
    elif etype == 0x86DD and n >= l3 + 40:
        end = l3 + 40 + ((frame[l3 + 4] << 8) | frame[l3 + 5])
    if end > n or end - STAMP_LEN < l3:
        return -1
    return end - STAMP_LEN


def _hash(h, data):
    data = bytes(data)
    rem = len(data) % 8
    if rem:
        data += b"\0" * (8 - rem)
    for (w,) in struct.iter_unpack("<Q", data):
        h = ((h ^ w) * _PRIME) & _MASK
    return h


def payload_hash(payload):
    """``H(seed, payload)`` — what a sender may precompute once per template."""
    return _hash(_SEED, payload)


def check_value(payload, stream_id, seq, plen=None):
    """The check for a stamp with these fields over ``payload`` (``plen`` defaults to its length)."""
    plen = len(payload) if plen is None else plen
    h = _hash(_hash(_SEED, payload), _HDR.pack(MAGIC, stream_id, plen, seq))
    return (h ^ (h >> 32)) & 0xFFFFFFFF


def write(frame, stream_id, seq, plen, offset=None):
    """Write a stamp into ``frame`` (a bytearray) at ``offset`` (default: :func:`locate`); return the offset.

    ``plen`` bytes before the stamp are covered by the check. L4 checksums are not touched:
    compute them after stamping.
    """
    off = locate(frame) if offset is None else offset
    if off < 0 or off + STAMP_LEN > len(frame):
        raise ValueError("frame of %d B has no room for a %d B stamp" % (len(frame), STAMP_LEN))
    if not 0 <= plen <= min(off, PLEN_MAX):
        raise ValueError("plen %d does not fit before the stamp at offset %d (at most %d)"
                         % (plen, off, PLEN_MAX))
    if not (0 <= stream_id <= STREAM_ID_MAX and 0 <= seq < 1 << 64):
        raise ValueError("stream_id must be 0..%d (16 bits) and seq fit 64 bits, got %r, %r"
                         % (STREAM_ID_MAX, stream_id, seq))
    payload = frame[off - plen:off]
    frame[off:off + _HDR_LEN] = _HDR.pack(MAGIC, stream_id, plen, seq)
    frame[off + _HDR_LEN:off + STAMP_LEN] = struct.pack(">I", check_value(payload, stream_id, seq, plen))
    return off


def read(frame):
    """Decode the stamp of ``frame``: a :class:`Stamp`, or None if there is none (no room or wrong magic)."""
    off = locate(frame)
    if off < 0:
        return None
    magic, stream_id, plen, seq = _HDR.unpack_from(frame, off)
    if magic != MAGIC:
        return None
    (check,) = struct.unpack_from(">I", frame, off + _HDR_LEN)
    ok = plen <= off and check == check_value(bytes(frame[off - plen:off]), stream_id, seq, plen)
    return Stamp(stream_id, seq, plen, ok, off)
