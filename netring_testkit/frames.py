"""Frame builders: Ethernet (+802.1Q) / IPv4 / IPv6 / UDP / TCP / ICMP / ICMPv6, with stamps.

:func:`build` takes one keyword per layer, each a mapping of header fields — the same shape
as a scenario's ``frame:`` key — and returns the frame as ``bytes`` with correct lengths and
checksums::

    frames.build(ipv4={}, udp={"dport": 9}, size=128, stamp=(0, 17))
    frames.build(eth={"vlan": 42}, ipv6={"dst": "2001:2::2"}, tcp={"flags": "S"})
    frames.build(eth={"type": 0x88B5}, payload=b"raw L2 payload")     # no L3
    frames.build(raw=b"\\xff" * 60)                                     # escape hatch: as given

Layer defaults (all overridable):

- ``eth``: ``dst`` ``02:4e:52:00:00:02``, ``src`` ``02:4e:52:00:00:01`` (never a topology
  endpoint's MAC, so a receiver sees the frame as *otherhost* and its IP stack drops it early),
  ``type`` from the next layer (0x0800 / 0x86DD, else 0x88B5 — local experimental), ``vlan``:
  a VLAN id, a mapping ``{vid, pcp, dei, tpid}`` or a list of them (outermost first; QinQ).
- ``ipv4``: ``src`` 198.18.0.1, ``dst`` 198.18.0.2, ``ttl`` 64, ``tos`` 0, ``id`` 0, ``df`` False,
  ``proto`` (from the L4 layer, else 253 — experimental), ``options`` b"" (padded to 4 bytes).
- ``ipv6``: ``src`` 2001:2::1, ``dst`` 2001:2::2, ``hlim`` 64, ``tc`` 0, ``flow`` 0, ``nh`` (auto).
- ``udp``: ``sport`` 1, ``dport`` 9. ``tcp``: ``sport`` 1, ``dport`` 9, ``seq`` 0, ``ack`` 0,
  ``flags`` "PA" (letters of FSRPAUEC or an int), ``window`` 65535, ``urg`` 0, ``options`` b"".
  ``icmp``: ``type`` 8, ``code`` 0, ``id`` 0, ``seq`` 0. ``icmpv6``: ``type`` 128, others as icmp.
  Every L4 layer takes ``checksum`` to force a (wrong) value; otherwise it is computed.

``payload`` (bytes) is the L4 payload (or the L3/L2 payload when there is no upper layer).
``size`` is the total frame length (Ethernet header and VLAN tags included, FCS excluded); the
payload is extended with :func:`pattern` bytes to reach it (``pad="trailer"`` instead appends
zero bytes *after* the L3 packet, like Ethernet padding). ``stamp=(stream_id, seq)`` appends a
:mod:`netring.stamp` stamp (20 B; stream id 0..65535) at the end of the L3 packet, covering the L4 payload before
it; L4 checksums are computed *after* stamping. :func:`l4_checksum_offset` tells the C stamper
where the L4 checksum sits, :func:`parse` and :func:`decode` read frames back.
"""
import ipaddress
import struct

from netring import stamp as _stamp
from netring.errors import ConfigurationError

__all__ = [
    "build", "parse", "decode", "l4_checksum_offset", "restamp", "pattern", "checksum", "min_size",
    "DEFAULT_SRC_MAC", "DEFAULT_DST_MAC", "ETH_P_EXPERIMENTAL", "MIN_FRAME", "MAX_FRAME",
]

DEFAULT_SRC_MAC = "02:4e:52:00:00:01"
DEFAULT_DST_MAC = "02:4e:52:00:00:02"
ETH_P_EXPERIMENTAL = 0x88B5
#: The Ethernet minimum frame length without FCS; strategies never go below it.
MIN_FRAME = 60
#: The largest frame anything here can send or build: a 65535-byte L3 packet (the IPv4 total length
#: and the largest non-jumbogram IPv6 packet are 16-bit) behind an Ethernet header and one 802.1Q tag.
MAX_FRAME = 65535 + 18

_ETH_IPV4, _ETH_IPV6 = 0x0800, 0x86DD
_VLAN_TPIDS = (0x8100, 0x88A8)
_PROTO = {"udp": 17, "tcp": 6, "icmp": 1, "icmpv6": 58}
_PROTO_NAMES = {17: "UDP", 6: "TCP", 1: "ICMP", 58: "ICMPv6"}
_L4_HDR = {"udp": 8, "tcp": 20, "icmp": 8, "icmpv6": 8}
_TCP_FLAGS = "FSRPAUEC"
_CSUM_AT = {17: 6, 6: 16, 1: 2, 58: 2}
_IPV6_EXT = (0, 43, 60)  # hop-by-hop, routing, destination options: skippable to reach L4

_BYTES = bytes(range(256))


def pattern(n, start=0):
    """``n`` deterministic filler bytes (``(start + i) & 0xff``) — what builders pad payloads with.

    O(n): one 256-byte rotation repeated, then cut (``n`` up to :data:`MAX_FRAME`; ConfigurationError beyond).
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_FRAME:
        raise ConfigurationError("pattern length must be an integer in 0..%d (MAX_FRAME, the largest frame), got %r"
                                 % (MAX_FRAME, n), field="n", value=n)
    start &= 0xFF
    ring = _BYTES[start:] + _BYTES[:start]
    return (ring * (n // 256 + 1))[:n]


def _check_size(size):
    """``size`` as given, or ConfigurationError unless it is an int in 0..MAX_FRAME (checked before any work)."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise ConfigurationError("frame size must be an integer, got %r" % (size,), field="size", value=size)
    if size > MAX_FRAME:
        raise ConfigurationError(
            "frame size %d B exceeds the largest Ethernet frame anything here can send, %d B (MAX_FRAME: a "
            "65535 B L3 packet + 14 B header + 4 B 802.1Q tag); use size <= %d" % (size, MAX_FRAME, MAX_FRAME),
            field="size", value=size)
    return size


def checksum(data, initial=0):
    """The Internet checksum (RFC 1071) of ``data``, starting from a 32-bit partial sum ``initial``."""
    data = bytes(data)
    if len(data) & 1:
        data += b"\0"
    s = initial + sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _mac(value, field):
    if isinstance(value, (bytes, bytearray)) and len(value) == 6:
        return bytes(value)
    try:
        b = bytes(int(x, 16) for x in value.split(":"))
        if len(b) == 6:
            return b
    except (AttributeError, ValueError):
        pass
    raise ConfigurationError("frame %s: expected a MAC like 02:00:00:00:00:01, got %r" % (field, value),
                             field=field, value=value)


def _ip(value, version, field):
    try:
        a = ipaddress.ip_address(value)
        if a.version == version:
            return a.packed
    except ValueError:
        pass
    raise ConfigurationError("frame %s: expected an IPv%d address, got %r" % (field, version, value),
                             field=field, value=value)


def _uint(d, key, bits, default, layer):
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 1 << bits:
        raise ConfigurationError("frame %s.%s must be an integer in 0..%d, got %r" % (layer, key, (1 << bits) - 1, v),
                                 field="%s.%s" % (layer, key), value=v)
    return v


def _check_keys(d, layer, allowed):
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise ConfigurationError("frame %s must be a mapping of header fields, got %r" % (layer, d), field=layer, value=d)
    unknown = set(d) - set(allowed)
    if unknown:
        k = sorted(unknown)[0]
        raise ConfigurationError("frame %s: unknown field %r; allowed: %s" % (layer, k, ", ".join(sorted(allowed))),
                                 field="%s.%s" % (layer, k), value=d[k])
    return d


def _vlan_tags(v):
    if v is None:
        return b""
    tags = v if isinstance(v, list) else [v]
    if len(tags) > 2:
        raise ConfigurationError("frame eth.vlan: at most two tags (QinQ), got %d" % len(tags), field="eth.vlan", value=v)
    out = b""
    for i, t in enumerate(tags):
        if isinstance(t, int) and not isinstance(t, bool):
            t = {"vid": t}
        t = _check_keys(t, "eth.vlan", ("vid", "pcp", "dei", "tpid"))
        vid = _uint(t, "vid", 12, 0, "eth.vlan")
        pcp = _uint(t, "pcp", 3, 0, "eth.vlan")
        dei = _uint(t, "dei", 1, 0, "eth.vlan")
        tpid = _uint(t, "tpid", 16, 0x88A8 if (len(tags) == 2 and i == 0) else 0x8100, "eth.vlan")
        out += struct.pack("!HH", tpid, (pcp << 13) | (dei << 12) | vid)
    return out


def _tcp_flags(v):
    if isinstance(v, int) and not isinstance(v, bool):
        if 0 <= v < 256:
            return v
    elif isinstance(v, str) and all(c in _TCP_FLAGS for c in v.upper()):
        return sum(1 << _TCP_FLAGS.index(c) for c in set(v.upper()))
    raise ConfigurationError("frame tcp.flags: letters of %s or an int 0..255, got %r" % (_TCP_FLAGS, v),
                             field="tcp.flags", value=v)


def _pad4(opts, layer):
    if not isinstance(opts, (bytes, bytearray)):
        raise ConfigurationError("frame %s.options must be bytes" % layer, field=layer + ".options", value=opts)
    return bytes(opts) + b"\0" * (-len(opts) % 4)


def min_size(**layers):
    """The smallest ``size`` :func:`build` accepts for these layers (``stamp`` and ``payload`` included)."""
    kw = dict(layers)
    kw.pop("size", None)
    kw["pad"] = "payload"
    return len(build(**kw))


def build(*, eth=None, ipv4=None, ipv6=None, udp=None, tcp=None, icmp=None, icmpv6=None,
          payload=b"", size=None, stamp=None, pad="payload", raw=None, vlan=None):
    """Build one frame; see the module docstring for layers, defaults, ``size``, ``pad`` and ``stamp``.

    ``vlan=`` is a shortcut for ``eth={"vlan": ...}``. Returns ``bytes``. Raises
    :class:`~netring.errors.ConfigurationError` naming the field for bad values, for two L3 or
    two L4 layers, and for a ``size`` too small for the headers (the message gives the minimum).
    """
    if size is not None:
        _check_size(size)
    if raw is not None:
        frame = bytes(raw)
        if size is not None:
            if size < len(frame):
                raise ConfigurationError("frame size %d B is smaller than the raw frame (%d B)" % (size, len(frame)),
                                         field="size", value=size)
            frame += bytes(size - len(frame))
        return frame
    eth = dict(_check_keys(eth, "eth", ("dst", "src", "type", "vlan")))
    if vlan is not None:
        eth["vlan"] = vlan
    if ipv4 is not None and ipv6 is not None:
        raise ConfigurationError("frame: give ipv4 or ipv6, not both", field="ipv6", value=ipv6)
    l4s = [(k, v) for k, v in (("udp", udp), ("tcp", tcp), ("icmp", icmp), ("icmpv6", icmpv6)) if v is not None]
    if len(l4s) > 1:
        raise ConfigurationError("frame: give one of udp/tcp/icmp/icmpv6, not %s" % " and ".join(k for k, _ in l4s),
                                 field=l4s[1][0], value=l4s[1][1])
    l4name, l4 = l4s[0] if l4s else (None, None)
    if l4name and ipv4 is None and ipv6 is None:
        raise ConfigurationError("frame %s needs an ipv4 or ipv6 layer" % l4name, field=l4name, value=l4)
    if l4name == "icmpv6" and ipv6 is None:
        raise ConfigurationError("frame icmpv6 needs ipv6 (use icmp with ipv4)", field="icmpv6", value=l4)
    if l4name == "icmp" and ipv4 is None:
        raise ConfigurationError("frame icmp needs ipv4 (use icmpv6 with ipv6)", field="icmp", value=l4)
    if pad not in ("payload", "trailer"):
        raise ConfigurationError("frame pad must be 'payload' or 'trailer', got %r" % (pad,), field="pad", value=pad)
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise ConfigurationError("frame payload must be bytes, got %s" % type(payload).__name__,
                                 field="payload", value=payload)
    payload = bytes(payload)
    stream = _stamp_arg(stamp)

    # Header lengths decide how much payload fits in ``size``.
    tags = _vlan_tags(eth.get("vlan"))
    l2_len = 14 + len(tags)
    ip4 = _check_keys(ipv4, "ipv4", ("src", "dst", "ttl", "tos", "id", "df", "proto", "options", "checksum"))
    ip6 = _check_keys(ipv6, "ipv6", ("src", "dst", "hlim", "tc", "flow", "nh"))
    if ipv4 is not None:
        ip4_opts = _pad4(ip4.get("options", b""), "ipv4")
        if len(ip4_opts) > 40:
            raise ConfigurationError("frame ipv4.options: at most 40 bytes", field="ipv4.options", value=len(ip4_opts))
        l3_len = 20 + len(ip4_opts)
    elif ipv6 is not None:
        l3_len = 40
    else:
        l3_len = 0
    if l4name == "tcp":
        l4 = _check_keys(l4, "tcp", ("sport", "dport", "seq", "ack", "flags", "window", "urg", "options", "checksum"))
        tcp_opts = _pad4(l4.get("options", b""), "tcp")
        if len(tcp_opts) > 40:
            raise ConfigurationError("frame tcp.options: at most 40 bytes", field="tcp.options", value=len(tcp_opts))
        l4_len = 20 + len(tcp_opts)
    elif l4name == "udp":
        l4 = _check_keys(l4, "udp", ("sport", "dport", "checksum"))
        l4_len = 8
    elif l4name:
        l4 = _check_keys(l4, l4name, ("type", "code", "id", "seq", "checksum"))
        l4_len = 8
    else:
        l4_len = 0
    stamp_len = _stamp.STAMP_LEN if stream else 0
    natural = l2_len + l3_len + l4_len + len(payload) + stamp_len
    if natural > MAX_FRAME:
        raise ConfigurationError("frame of %d B (a %d B payload) exceeds the largest Ethernet frame anything here can "
                                 "send, %d B (MAX_FRAME); use a shorter payload" % (natural, len(payload), MAX_FRAME),
                                 field="payload", value=len(payload))
    fill = trailer = 0
    if size is not None:
        if size < natural:
            raise ConfigurationError(
                "frame size %d B is too small: these headers%s need at least %d B; use size >= %d"
                % (size, " and the %d B stamp" % stamp_len if stream else "", natural, natural), field="size", value=size)
        if pad == "payload":
            fill = size - natural
        else:
            trailer = size - natural
    body = payload + pattern(fill, len(payload))
    l4_payload_len = len(body) + stamp_len

    # L4 header (checksum filled after stamping).
    if l4name == "udp":
        if 8 + l4_payload_len > 0xFFFF:  # checked before packing: struct would raise its own error
            raise ConfigurationError("frame too large for a UDP datagram: %d B of UDP length, at most 65535"
                                     % (8 + l4_payload_len), field="size", value=size)
        l4_hdr = bytearray(struct.pack("!HHHH", _uint(l4, "sport", 16, 1, "udp"), _uint(l4, "dport", 16, 9, "udp"),
                                       8 + l4_payload_len, 0))
    elif l4name == "tcp":
        off = (20 + len(tcp_opts)) // 4
        l4_hdr = bytearray(struct.pack(
            "!HHIIBBHHH", _uint(l4, "sport", 16, 1, "tcp"), _uint(l4, "dport", 16, 9, "tcp"),
            _uint(l4, "seq", 32, 0, "tcp"), _uint(l4, "ack", 32, 0, "tcp"), off << 4,
            _tcp_flags(l4.get("flags", "PA")), _uint(l4, "window", 16, 65535, "tcp"), 0,
            _uint(l4, "urg", 16, 0, "tcp")) + tcp_opts)
    elif l4name:
        l4_hdr = bytearray(struct.pack(
            "!BBHHH", _uint(l4, "type", 8, 8 if l4name == "icmp" else 128, l4name), _uint(l4, "code", 8, 0, l4name),
            0, _uint(l4, "id", 16, 0, l4name), _uint(l4, "seq", 16, 0, l4name)))
    else:
        l4_hdr = bytearray()
    l3_payload_len = len(l4_hdr) + l4_payload_len

    # L3 header.
    if ipv4 is not None:
        proto = _uint(ip4, "proto", 8, _PROTO.get(l4name, 253), "ipv4")
        src, dst = _ip(ip4.get("src", "198.18.0.1"), 4, "ipv4.src"), _ip(ip4.get("dst", "198.18.0.2"), 4, "ipv4.dst")
        total = l3_len + l3_payload_len
        if total > 0xFFFF:
            raise ConfigurationError("frame too large for an IPv4 packet (%d B)" % total, field="size", value=size)
        if not isinstance(ip4.get("df", False), bool):
            raise ConfigurationError("frame ipv4.df must be true or false", field="ipv4.df", value=ip4["df"])
        l3_hdr = bytearray(struct.pack(
            "!BBHHHBBH4s4s", 0x40 | (l3_len // 4), _uint(ip4, "tos", 8, 0, "ipv4"), total, _uint(ip4, "id", 16, 0, "ipv4"),
            0x4000 if ip4.get("df", False) else 0, _uint(ip4, "ttl", 8, 64, "ipv4"), proto, 0, src, dst) + ip4_opts)
        csum = ip4.get("checksum")
        struct.pack_into("!H", l3_hdr, 10, checksum(l3_hdr) if csum is None else _uint(ip4, "checksum", 16, 0, "ipv4"))
        pseudo = src + dst
        pseudo_proto = proto
    elif ipv6 is not None:
        nh = _uint(ip6, "nh", 8, _PROTO.get(l4name, 59), "ipv6")
        src, dst = _ip(ip6.get("src", "2001:2::1"), 6, "ipv6.src"), _ip(ip6.get("dst", "2001:2::2"), 6, "ipv6.dst")
        if l3_payload_len > 0xFFFF:
            raise ConfigurationError("frame too large for an IPv6 packet (jumbograms unsupported)", field="size", value=size)
        vtf = (6 << 28) | (_uint(ip6, "tc", 8, 0, "ipv6") << 20) | _uint(ip6, "flow", 20, 0, "ipv6")
        l3_hdr = bytearray(struct.pack("!IHBB16s16s", vtf, l3_payload_len, nh, _uint(ip6, "hlim", 8, 64, "ipv6"), src, dst))
        pseudo = src + dst
        pseudo_proto = nh
    else:
        l3_hdr = bytearray()
        pseudo = None

    if "type" in eth:
        etype = _uint(eth, "type", 16, 0, "eth")
    else:
        etype = _ETH_IPV4 if ipv4 is not None else _ETH_IPV6 if ipv6 is not None else ETH_P_EXPERIMENTAL
    l2 = (_mac(eth.get("dst", DEFAULT_DST_MAC), "eth.dst") + _mac(eth.get("src", DEFAULT_SRC_MAC), "eth.src")
          + tags + struct.pack("!H", etype))

    frame = bytearray(l2 + l3_hdr + l4_hdr + body + bytes(stamp_len))
    if stream:
        end = len(frame)
        _stamp.write(frame, stream[0], stream[1], len(body), offset=end - _stamp.STAMP_LEN)
    frame += bytes(trailer)
    if l4name:
        l4_off = len(l2) + len(l3_hdr)
        seg = frame[l4_off:l4_off + len(l4_hdr) + l4_payload_len]
        at = _CSUM_AT[_PROTO[l4name]]
        forced = l4.get("checksum")
        if forced is not None:
            value = _uint(l4, "checksum", 16, 0, l4name)
        elif l4name == "icmp":
            value = checksum(seg)
        else:
            value = checksum(seg, _pseudo_sum(pseudo, pseudo_proto, len(seg)))
            if value == 0 and l4name == "udp":
                value = 0xFFFF  # 0 means "no checksum" in UDP over IPv4
        struct.pack_into("!H", frame, l4_off + at, value)
    return bytes(frame)


def _stamp_arg(stamp):
    if stamp is None or stamp is False:
        return None
    if isinstance(stamp, dict):
        stamp = (stamp.get("stream_id", 0), stamp.get("seq", 0))
    try:
        sid, seq = stamp
        if isinstance(sid, bool) or isinstance(seq, bool):
            raise TypeError
        if 0 <= sid <= _stamp.STREAM_ID_MAX and 0 <= seq < 1 << 64:
            return int(sid), int(seq)
    except (TypeError, ValueError):
        pass
    raise ConfigurationError("frame stamp must be (stream_id, seq) with a stream id in 0..%d (16 bits) and a "
                             "64-bit seq, got %r" % (_stamp.STREAM_ID_MAX, stamp), field="stamp", value=stamp)


def _pseudo_sum(pseudo, proto, length):
    words = pseudo + struct.pack("!IxxxB", length, proto)
    return sum(struct.unpack("!%dH" % (len(words) // 2), words))


# --------------------------------------------------------------------------------------------
# Reading frames back
# --------------------------------------------------------------------------------------------
def _l2(frame):
    """(vlan tags, ethertype, l3 offset) or None for a runt."""
    if len(frame) < 14:
        return None
    off, tags = 12, []
    while True:
        if len(frame) < off + 2:
            return None
        etype = (frame[off] << 8) | frame[off + 1]
        if etype in _VLAN_TPIDS and len(tags) < 2 and len(frame) >= off + 4:
            tci = (frame[off + 2] << 8) | frame[off + 3]
            tags.append({"tpid": etype, "vid": tci & 0xFFF, "pcp": tci >> 13, "dei": (tci >> 12) & 1})
            off += 4
            continue
        return tags, etype, off + 2


def _l4_location(frame):
    """(proto, l4 offset, l4 length, pseudo-header bytes or None) or None when not reachable."""
    l2 = _l2(frame)
    if l2 is None:
        return None
    _, etype, l3 = l2
    n = len(frame)
    if etype == _ETH_IPV4 and n >= l3 + 20 and frame[l3] >> 4 == 4:
        ihl = (frame[l3] & 0xF) * 4
        total = (frame[l3 + 2] << 8) | frame[l3 + 3]
        frag = ((frame[l3 + 6] << 8) | frame[l3 + 7]) & 0x3FFF  # MF flag + offset
        if ihl < 20 or total < ihl or l3 + total > n or frag:
            return None
        return frame[l3 + 9], l3 + ihl, total - ihl, bytes(frame[l3 + 12:l3 + 20])
    if etype == _ETH_IPV6 and n >= l3 + 40 and frame[l3] >> 4 == 6:
        plen = (frame[l3 + 4] << 8) | frame[l3 + 5]
        end = l3 + 40 + plen
        if end > n:
            return None
        nh, off = frame[l3 + 6], l3 + 40
        while nh in _IPV6_EXT:
            if off + 8 > end:
                return None
            nh, off = frame[off], off + (frame[off + 1] + 1) * 8
        if off > end:
            return None
        return nh, off, end - off, bytes(frame[l3 + 8:l3 + 40])
    return None


def l4_checksum_offset(frame):
    """Byte offset of the UDP/TCP/ICMP/ICMPv6 checksum field in ``frame``, or -1.

    -1 when the frame has no such L4 header in full (not IP, fragment, unknown protocol,
    truncated). The offset is what the C stamper needs to fix the checksum after stamping.
    """
    loc = _l4_location(frame)
    if loc is None:
        return -1
    proto, off, length, _ = loc
    at = _CSUM_AT.get(proto)
    need = {17: 8, 6: 20, 1: 8, 58: 8}.get(proto, 0)
    if at is None or length < need:
        return -1
    return off + at


def restamp(frame, stream_id, seq):
    """A copy of stamped ``frame`` with a new stream id and sequence number, L4 checksum fixed.

    ``frame`` must carry a stamp (as :func:`build` with ``stamp=`` makes); its ``plen`` is kept.
    """
    f = bytearray(frame)
    st = _stamp.read(f)
    if st is None:
        raise ConfigurationError("restamp: frame carries no stamp; build it with stamp=(stream_id, seq)",
                                 field="frame", value=len(f))
    _stamp.write(f, stream_id, seq, st.plen, offset=st.offset)
    at = l4_checksum_offset(f)
    if at >= 0:
        proto, off, length, pseudo = _l4_location(f)
        struct.pack_into("!H", f, at, 0)
        seg = f[off:off + length]
        value = checksum(seg) if proto == 1 else checksum(seg, _pseudo_sum(pseudo, proto, length))
        if value == 0 and proto == 17:
            value = 0xFFFF
        struct.pack_into("!H", f, at, value)
    return bytes(f)


def _fmt_mac(b):
    return ":".join("%02x" % x for x in b)


def parse(frame):
    """Decode the headers of ``frame`` into a dict (what :func:`decode` renders).

    Keys: ``length``; ``eth`` {dst, src, type}; ``vlan`` (list of {tpid, vid, pcp, dei});
    ``ipv4`` {src, dst, ttl, tos, id, df, proto, length, checksum_ok} or ``ipv6`` {src, dst,
    hlim, tc, flow, nh, length}; one of ``udp``/``tcp``/``icmp``/``icmpv6`` with its fields
    and ``checksum_ok``; ``payload_len`` (L4 payload bytes, stamp included); ``trailer``
    (bytes after the L3 packet); ``stamp`` (a :class:`netring.stamp.Stamp` or None);
    ``error`` (why decoding stopped early, or None).
    """
    frame = bytes(frame)
    out = {"length": len(frame), "vlan": [], "stamp": None, "error": None, "trailer": 0}
    l2 = _l2(frame)
    if l2 is None:
        out["error"] = "runt frame (%d B)" % len(frame)
        return out
    tags, etype, l3 = l2
    out["eth"] = {"dst": _fmt_mac(frame[0:6]), "src": _fmt_mac(frame[6:12]), "type": etype}
    out["vlan"] = tags
    out["stamp"] = _stamp.read(frame)
    if etype == _ETH_IPV4:
        if len(frame) < l3 + 20:
            out["error"] = "truncated IPv4 header"
            return out
        ihl = (frame[l3] & 0xF) * 4
        total = (frame[l3 + 2] << 8) | frame[l3 + 3]
        hdr = frame[l3:l3 + ihl]
        out["ipv4"] = {"src": str(ipaddress.IPv4Address(frame[l3 + 12:l3 + 16])),
                       "dst": str(ipaddress.IPv4Address(frame[l3 + 16:l3 + 20])),
                       "ttl": frame[l3 + 8], "tos": frame[l3 + 1], "id": (frame[l3 + 4] << 8) | frame[l3 + 5],
                       "df": bool(frame[l3 + 6] & 0x40), "proto": frame[l3 + 9], "length": total,
                       "checksum_ok": len(hdr) == ihl >= 20 and checksum(hdr) == 0}
        if l3 + total > len(frame) or total < ihl:
            out["error"] = "IPv4 total length %d exceeds the frame" % total
            return out
        out["trailer"] = len(frame) - l3 - total
    elif etype == _ETH_IPV6:
        if len(frame) < l3 + 40:
            out["error"] = "truncated IPv6 header"
            return out
        vtf, plen, nh, hlim = struct.unpack_from("!IHBB", frame, l3)
        out["ipv6"] = {"src": str(ipaddress.IPv6Address(frame[l3 + 8:l3 + 24])),
                       "dst": str(ipaddress.IPv6Address(frame[l3 + 24:l3 + 40])),
                       "hlim": hlim, "tc": (vtf >> 20) & 0xFF, "flow": vtf & 0xFFFFF, "nh": nh, "length": plen}
        if l3 + 40 + plen > len(frame):
            out["error"] = "IPv6 payload length %d exceeds the frame" % plen
            return out
        out["trailer"] = len(frame) - l3 - 40 - plen
    else:
        out["payload_len"] = len(frame) - l3
        return out
    loc = _l4_location(frame)
    if loc is None:
        return out
    proto, off, length, pseudo = loc
    seg = frame[off:off + length]
    if proto == 17 and length >= 8:
        sport, dport, ulen, csum = struct.unpack_from("!HHHH", seg)
        ok = csum == 0 and "ipv4" in out or checksum(seg, _pseudo_sum(pseudo, proto, length)) == 0
        out["udp"] = {"sport": sport, "dport": dport, "length": ulen, "checksum_ok": ok}
        out["payload_len"] = length - 8
    elif proto == 6 and length >= 20:
        sport, dport, seq, ack, offb, flags, win = struct.unpack_from("!HHIIBBH", seg)
        out["tcp"] = {"sport": sport, "dport": dport, "seq": seq, "ack": ack, "window": win,
                      "flags": "".join(c for i, c in enumerate(_TCP_FLAGS) if flags >> i & 1),
                      "checksum_ok": checksum(seg, _pseudo_sum(pseudo, proto, length)) == 0}
        out["payload_len"] = length - (offb >> 4) * 4
    elif proto in (1, 58) and length >= 8:
        typ, code, _, ident, sq = struct.unpack_from("!BBHHH", seg)
        ok = checksum(seg) == 0 if proto == 1 else checksum(seg, _pseudo_sum(pseudo, proto, length)) == 0
        out["icmp" if proto == 1 else "icmpv6"] = {"type": typ, "code": code, "id": ident, "seq": sq, "checksum_ok": ok}
        out["payload_len"] = length - 8
    else:
        out["payload_len"] = length
    return out


def decode(frame):
    """One line describing ``frame`` for error messages.

    e.g. ``"IPv4 198.18.0.1 > 198.18.0.2 UDP 1 > 9 len 64, stamp s0#17 ok"``, with ``vlan 42``
    in front for tagged frames, ``bad ip csum``/``bad udp csum`` when a checksum is wrong, and
    ``ether SRC > DST type 0x88b5`` for non-IP frames. Note that frames the *kernel* sends over
    a veth (replies of its IP stack) usually carry a partial L4 checksum left to offload, which
    reads as a bad checksum here; frames built by :func:`build` always carry complete ones.
    """
    p = parse(frame)
    parts = []
    for t in p["vlan"]:
        parts.append("vlan %d%s" % (t["vid"], " pcp %d" % t["pcp"] if t["pcp"] else ""))
    if "ipv4" in p or "ipv6" in p:
        ip = p.get("ipv4") or p["ipv6"]
        parts.append("%s %s > %s" % ("IPv4" if "ipv4" in p else "IPv6", ip["src"], ip["dst"]))
        if "ipv4" in p and not ip["checksum_ok"]:
            parts.append("bad ip csum")
    elif "eth" in p:
        parts.append("ether %s > %s type 0x%04x" % (p["eth"]["src"], p["eth"]["dst"], p["eth"]["type"]))
    for name in ("udp", "tcp"):
        if name in p:
            h = p[name]
            parts.append("%s %d > %d%s" % (name.upper(), h["sport"], h["dport"],
                                           " [%s]" % h["flags"] if name == "tcp" else ""))
    for name in ("icmp", "icmpv6"):
        if name in p:
            h = p[name]
            parts.append("%s type %d code %d" % ("ICMP" if name == "icmp" else "ICMPv6", h["type"], h["code"]))
    for name in ("udp", "tcp", "icmp", "icmpv6"):
        if name in p and not p[name]["checksum_ok"]:
            parts.append("bad %s csum" % name)
    if "ipv4" in p and not any(k in p for k in ("udp", "tcp", "icmp")) and p["error"] is None:
        parts.append("proto %d" % p["ipv4"]["proto"])
    if "ipv6" in p and not any(k in p for k in ("udp", "tcp", "icmpv6")) and p["error"] is None:
        parts.append("nh %d" % p["ipv6"]["nh"])
    parts.append("len %d" % p["length"])
    text = " ".join(parts)
    if p["error"]:
        text += ", " + p["error"]
    st = p["stamp"]
    if st is not None:
        text += ", stamp s%d#%d %s" % (st.stream_id, st.seq, "ok" if st.ok else "CORRUPT")
    return text
