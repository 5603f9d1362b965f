"""``netring.pcap``: read and write capture files — classic pcap and pcapng — with no dependency.

Classic pcap (libpcap's format): microsecond (magic ``0xa1b2c3d4``) and nanosecond
(``0xa1b23c4d``) timestamps, either byte order, read and written. pcapng (the format Wireshark
saves by default; draft-ietf-opsawg-pcapng): Section Header, Interface Description, Enhanced
Packet and Simple Packet blocks are read in either byte order (per section), every other block
is skipped by its length; written as one little-endian section with nanosecond timestamps and a
comment per packet if wanted. tcpdump, tshark and Wireshark read every file written here.

Why no dependency: the two formats are small and fixed, the test kit needs them on every CI
machine, and the packages that read them (scapy, dpkt, python-pcapng) bring far more than
this, at a per-packet cost of their own.

Reading gives a :class:`Trace` (``frames``: :class:`Frame` records, in file order). Writing
takes frames as bytes-like objects, ``(timestamp_ns, data)`` tuples, :class:`Frame` records or
anything with ``data`` and ``timestamp_ns`` attributes (a :class:`netring.Packet`).
"""
import collections
import os
import struct
import time

from .errors import PcapError

__all__ = ["Frame", "Interface", "Trace", "PcapngPacket", "PcapWriter", "read", "read_pcap", "read_pcapng",
           "write_pcap", "write_pcapng", "LINKTYPE_ETHERNET", "PcapError"]

LINKTYPE_ETHERNET = 1
_MAGIC_US = 0xA1B2C3D4
_MAGIC_NS = 0xA1B23C4D
# pcapng block types, the byte-order magic and the option codes used here.
_SHB, _IDB, _PB, _SPB, _EPB = 0x0A0D0D0A, 0x00000001, 0x00000002, 0x00000003, 0x00000006
_BOM = 0x1A2B3C4D
_OPT_END, _OPT_COMMENT = 0, 1
_SHB_USERAPPL = 4
_IF_NAME, _IF_DESCRIPTION, _IF_TSRESOL, _IF_TSOFFSET = 2, 3, 9, 14
_MAX_SNAPLEN = 1 << 18  # 256 KiB, what libpcap accepts

#: One packet of a trace: ``timestamp_ns`` (ns since the epoch), ``data`` (bytes as captured),
#: ``orig_len`` (length on the wire), ``interface`` (index into :attr:`Trace.interfaces`; 0 for
#: pcap) and ``comment`` (pcapng ``opt_comment`` as str, or None).
Frame = collections.namedtuple("Frame", "timestamp_ns data orig_len interface comment")

#: One interface of a trace: ``linktype`` (1: Ethernet), ``snaplen``, ``name`` and
#: ``description`` (pcapng options; None when absent).
Interface = collections.namedtuple("Interface", "linktype snaplen name description")

#: One packet as :func:`read_pcapng` lists it (the test kit's report format): the ``if_name`` and
#: ``if_description`` of its interface, ``timestamp_ns``, ``data``, ``orig_len``, ``comment``.
PcapngPacket = collections.namedtuple("PcapngPacket", "interface description timestamp_ns data orig_len comment")


class Trace:
    """What :func:`read` found: ``format`` (``"pcap"`` or ``"pcapng"``), ``byteorder`` (``"<"`` or ``">"``,
    of the first section), ``nanosecond`` (pcap: the file's timestamp resolution), ``interfaces``
    (:class:`Interface` list; one for pcap) and ``frames`` (:class:`Frame` list). ``len(trace)`` and
    iteration go over the frames."""

    def __init__(self, fmt, byteorder, nanosecond, interfaces, frames, path):
        self.format = fmt
        self.byteorder = byteorder
        self.nanosecond = nanosecond
        self.interfaces = interfaces
        self.frames = frames
        self.path = path

    @property
    def linktype(self):
        """The link type of the first interface (pcap: of the file)."""
        return self.interfaces[0].linktype if self.interfaces else LINKTYPE_ETHERNET

    def __len__(self):
        return len(self.frames)

    def __iter__(self):
        return iter(self.frames)

    def __repr__(self):
        return "<Trace %s %s, %d frames, %d interface(s)>" % (self.path, self.format, len(self.frames),
                                                               len(self.interfaces))


def _damaged(path, off, what):
    return PcapError("%s: damaged capture file: %s at byte offset %d; it is truncated or not a capture file "
                     "(check it with `tcpdump -r`)" % (path, what, off), path=path, offset=off)


def read(path):
    """Read a pcap or pcapng file (detected by its magic): a :class:`Trace`.

    Raises :class:`~netring.errors.PcapError` (naming the file and the byte offset) for a file
    that is neither, or that is truncated or damaged; ``OSError`` if it cannot be opened.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) >= 4 and struct.unpack_from("<I", buf, 0)[0] == _SHB:
        return _read_pcapng(path, buf)
    return _read_pcap(path, buf)


def read_pcap(path):
    """Read a classic pcap file (either byte order, µs or ns timestamps): a :class:`Trace`."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        return _read_pcap(path, f.read())


def read_pcapng(path):
    """The packets of a pcapng file as :class:`PcapngPacket` records (interface name and description
    resolved), for readers of the test kit's artifacts."""
    trace = read(path)
    if trace.format != "pcapng":
        raise PcapError("%s is a classic pcap file, not pcapng; read it with netring.pcap.read" % path, path=path,
                        offset=0)
    out = []
    for fr in trace.frames:
        itf = trace.interfaces[fr.interface]
        out.append(PcapngPacket(itf.name or "", itf.description, fr.timestamp_ns, fr.data, fr.orig_len, fr.comment))
    return out


def _read_pcap(path, buf):
    if len(buf) < 24:
        raise PcapError("%s is not a pcap or pcapng file: %d bytes, shorter than a pcap header (24)" % (path, len(buf)),
                        path=path, offset=0)
    for bo in ("<", ">"):
        magic = struct.unpack_from(bo + "I", buf, 0)[0]
        if magic in (_MAGIC_US, _MAGIC_NS):
            break
    else:
        raise PcapError("%s is not a pcap or pcapng file (magic 0x%08x); netring.pcap reads libpcap files "
                        "(0xa1b2c3d4 / 0xa1b23c4d) and pcapng" % (path, struct.unpack_from("<I", buf, 0)[0]),
                        path=path, offset=0)
    ns = magic == _MAGIC_NS
    _vmaj, _vmin, _zone, _sigfigs, snaplen, linktype = struct.unpack_from(bo + "HHiIII", buf, 4)
    rec = struct.Struct(bo + "IIII")
    scale = 1 if ns else 1000
    frames = []
    off, n = 24, len(buf)
    while off < n:
        if off + 16 > n:
            raise _damaged(path, off, "a truncated record header")
        sec, frac, incl, orig = rec.unpack_from(buf, off)
        if incl > max(snaplen, _MAX_SNAPLEN) or off + 16 + incl > n:
            raise _damaged(path, off, "a record of %d bytes that does not fit the file" % incl)
        frames.append(Frame(sec * 1_000_000_000 + frac * scale, buf[off + 16:off + 16 + incl], orig, 0, None))
        off += 16 + incl
    return Trace("pcap", bo, ns, [Interface(linktype & 0x0FFFFFFF, snaplen, None, None)], frames, path)


def _options(buf, off, end, bo):
    opts = {}
    while off + 4 <= end:
        code, n = struct.unpack_from(bo + "HH", buf, off)
        if code == _OPT_END:
            break
        if off + 4 + n > end:
            break  # a damaged option list: keep what was read
        opts.setdefault(code, bytes(buf[off + 4:off + 4 + n]))
        off += 4 + n + (-n % 4)
    return opts


def _tsresol(opts):
    """Timestamp units per second of an interface (if_tsresol; default 10^6)."""
    raw = opts.get(_IF_TSRESOL)
    if not raw:
        return 1_000_000
    r = raw[0]
    return 2 ** (r & 0x7F) if r & 0x80 else 10 ** r


def _text(opts, code):
    v = opts.get(code)
    return None if v is None else v.decode("utf-8", "replace")


def _read_pcapng(path, buf):
    n = len(buf)
    off = 0
    bo = "<"
    first_bo = None
    ifaces, frames = [], []  # every section's interfaces, in file order: Frame.interface indexes this
    local, units, offsets = [], [], []  # this section's: global index, timestamp units/s, offset (s)
    while off < n:
        if off + 12 > n:
            raise _damaged(path, off, "a truncated pcapng block header")
        btype = struct.unpack_from("<I", buf, off)[0]  # the SHB type reads the same in both byte orders
        if btype == _SHB:  # the byte order can change at every section
            bom = struct.unpack_from("<I", buf, off + 8)[0]
            if bom == _BOM:
                bo = "<"
            elif bom == 0x4D3C2B1A:
                bo = ">"
            else:
                raise _damaged(path, off, "a section header with byte-order magic 0x%08x" % bom)
            if first_bo is None:
                first_bo = bo
        else:
            btype = struct.unpack_from(bo + "I", buf, off)[0]
        blen = struct.unpack_from(bo + "I", buf, off + 4)[0]
        if blen < 12 or blen % 4 or off + blen > n or struct.unpack_from(bo + "I", buf, off + blen - 4)[0] != blen:
            raise _damaged(path, off, "a pcapng block (type 0x%08x) with a bad length %d" % (btype, blen))
        end = off + blen - 4
        if btype == _SHB:
            local, units, offsets = [], [], []  # interface ids restart in every section
        elif btype == _IDB:
            if blen < 20:
                raise _damaged(path, off, "an interface block too short")
            linktype, _res, snaplen = struct.unpack_from(bo + "HHI", buf, off + 8)
            opts = _options(buf, off + 16, end, bo)
            local.append(len(ifaces))
            ifaces.append(Interface(linktype, snaplen, _text(opts, _IF_NAME), _text(opts, _IF_DESCRIPTION)))
            units.append(_tsresol(opts))
            tso = opts.get(_IF_TSOFFSET)
            offsets.append(struct.unpack(bo + "q", tso)[0] if tso is not None and len(tso) == 8 else 0)
        elif btype == _EPB:
            if blen < 32:
                raise _damaged(path, off, "an enhanced packet block too short")
            idx, hi, lo, caplen, orig = struct.unpack_from(bo + "IIIII", buf, off + 8)
            if idx >= len(local):
                raise _damaged(path, off, "a packet of interface %d (the section has %d)" % (idx, len(local)))
            if off + 28 + caplen > end:
                raise _damaged(path, off, "a packet of %d bytes that does not fit its block" % caplen)
            data = bytes(buf[off + 28:off + 28 + caplen])
            opts = _options(buf, off + 28 + caplen + (-caplen % 4), end, bo)
            ts = ((hi << 32) | lo) * 1_000_000_000 // units[idx] + offsets[idx] * 1_000_000_000
            frames.append(Frame(ts, data, orig, local[idx], _text(opts, _OPT_COMMENT)))
        elif btype == _SPB:
            if not local:
                raise _damaged(path, off, "a simple packet block before any interface block")
            orig = struct.unpack_from(bo + "I", buf, off + 8)[0]
            # no captured length of its own: the original one, cut at the snaplen and the block end
            caplen = min(orig, ifaces[local[0]].snaplen or orig, end - (off + 12))
            frames.append(Frame(0, bytes(buf[off + 12:off + 12 + caplen]), orig, local[0], None))
        # every other block (name resolution, statistics, custom, decryption secrets...) is skipped
        off += blen
    if first_bo is None:
        raise PcapError("%s is not a pcapng file: no section header block" % path, path=path, offset=0)
    return Trace("pcapng", first_bo, True, ifaces, frames, path)


_MAX_U32 = 0xFFFFFFFF
_MAX_PCAP_TS_NS = (_MAX_U32 + 1) * 1_000_000_000  # classic pcap: a u32 of seconds (up to 2106)
_MAX_PCAPNG_TS_NS = 1 << 64  # pcapng: a u64 of nanoseconds


def _data(field, value):
    """``value`` as bytes; PcapError naming ``field`` unless it is bytes-like (an int is not: ``bytes(5)``
    would silently be five zero bytes, nor is a str)."""
    if not isinstance(value, (int, str)):
        try:
            return bytes(memoryview(value))
        except TypeError:
            pass
    raise PcapError("%s is a %s, not a bytes-like object (bytes, bytearray, memoryview)"
                    % (field, type(value).__name__), path=None, offset=None)


def _timestamp(field, value, limit_ns, scale=1):
    """A timestamp (``value * scale`` ns) as non-negative int nanoseconds below ``limit_ns``; PcapError
    naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PcapError("%s must be a number, not %r" % (field, value), path=None, offset=None)
    if not 0 <= value * scale < limit_ns:  # also NaN
        raise PcapError("%s=%r is outside 0..%d ns (timestamps are non-negative and must fit the file format)"
                        % (field, value, limit_ns - 1), path=None, offset=None)
    return int(value * scale) if scale != 1 else int(value)


def _orig_len(field, value, data_len):
    """An original (wire) length: an int in ``data_len``..2**32-1; PcapError naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PcapError("%s must be an integer, not %r" % (field, value), path=None, offset=None)
    if not data_len <= value <= _MAX_U32:
        raise PcapError("%s=%d is outside %d..%d (at least the %d bytes of data given, at most 2**32-1)"
                        % (field, value, data_len, _MAX_U32, data_len), path=None, offset=None)
    return value


_DEFAULT_TS = object()  # a bare-bytes frame: write_pcap's running default timestamp


def _records(frames):
    """``(field, timestamp_ns or _DEFAULT_TS, data, orig_len or None)`` for each thing :func:`write_pcap`
    accepts (None: the data's length); the values are checked by :meth:`PcapWriter.write`'s rules, named
    ``frames[i]``."""
    for i, fr in enumerate(frames):
        field = "frames[%d]" % i
        if isinstance(fr, (bytes, bytearray, memoryview)):
            yield field, _DEFAULT_TS, fr, None
        elif isinstance(fr, tuple) and len(fr) == 2:
            yield field, fr[0], fr[1], None
        elif hasattr(fr, "data") and hasattr(fr, "timestamp_ns"):
            data = _data(field + ".data", fr.data)
            orig = getattr(fr, "orig_len", None) or getattr(fr, "wire_len", None)
            yield field, fr.timestamp_ns, data, orig
        else:
            raise PcapError("frames[%d] is a %s, not bytes, a (timestamp_ns, bytes) pair or a packet with data and "
                            "timestamp_ns" % (i, type(fr).__name__), path=None, offset=None)


class PcapWriter:
    """A classic pcap file written record by record: ``with PcapWriter(path) as w: w.write(ts_ns, data)``.

    ``nanosecond`` (default True) selects the ``0xa1b23c4d`` magic (else microseconds),
    ``byteorder`` ``"<"`` (default) or ``">"``, ``snaplen`` (1..262144; longer frames are cut, the
    record keeps the original length), ``linktype`` (default 1, Ethernet). ``count`` is the
    number of records written.
    """

    def __init__(self, path, nanosecond=True, byteorder="<", snaplen=65535, linktype=LINKTYPE_ETHERNET):
        if byteorder not in ("<", ">"):
            raise PcapError("byteorder must be '<' or '>', not %r" % (byteorder,), path=path, offset=None)
        if not isinstance(snaplen, int) or not 1 <= snaplen <= _MAX_SNAPLEN:
            raise PcapError("snaplen must be 1..%d, not %r" % (_MAX_SNAPLEN, snaplen), path=path, offset=None)
        self.path = os.fspath(path)
        self.nanosecond = nanosecond
        self.snaplen = snaplen
        self.count = 0
        self._rec = struct.Struct(byteorder + "IIII")
        self._div = 1 if nanosecond else 1000
        self._f = open(self.path, "wb")
        self._f.write(struct.pack(byteorder + "IHHiIII", _MAGIC_NS if nanosecond else _MAGIC_US, 2, 4, 0, 0, snaplen,
                                  linktype))

    def write(self, timestamp_ns, data, orig_len=None):
        """Append one record: ``timestamp_ns`` a non-negative number of nanoseconds since the epoch (before
        2106, what the format holds), ``data`` bytes-like, ``orig_len`` (default: its length) an int no
        smaller than it. A bad argument is a PcapError naming it and the record's index; nothing is written."""
        self._put("record %d" % self.count, timestamp_ns, data, orig_len)

    def _put(self, where, timestamp_ns, data, orig_len):
        data = _data(where + " data", data)
        ts = _timestamp(where + " timestamp_ns", timestamp_ns, _MAX_PCAP_TS_NS)
        orig = len(data) if orig_len is None else _orig_len(where + " orig_len", orig_len, len(data))
        if self._f is None:
            raise PcapError("the pcap writer for %s is closed" % self.path, path=self.path, offset=None)
        cap = data[:self.snaplen]
        sec, rem = divmod(ts, 1_000_000_000)
        self._f.write(self._rec.pack(sec, rem // self._div, len(cap), orig))
        self._f.write(cap)
        self.count += 1

    def close(self):
        """Flush and close the file (idempotent)."""
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_pcap(path, frames, snaplen=65535, timestamp=None, nanosecond=False, byteorder="<",
               linktype=LINKTYPE_ETHERNET):
    """Write ``frames`` to ``path`` as a classic pcap file; returns ``path``.

    Bare bytes get timestamps ``timestamp`` (seconds since the epoch, default now) plus 1 µs per
    frame. ``nanosecond`` selects nanosecond timestamps (default: microseconds, the most widely
    read), ``byteorder`` ``"<"`` or ``">"``.
    """
    ts0 = _timestamp("timestamp", time.time() if timestamp is None else timestamp, _MAX_PCAP_TS_NS, 1_000_000_000)
    with PcapWriter(path, nanosecond, byteorder, snaplen, linktype) as w:
        for i, (field, ts, data, orig) in enumerate(_records(frames)):
            w._put(field, ts0 + i * 1000 if ts is _DEFAULT_TS else ts, data, orig)
    return os.fspath(path)


def _opt_bytes(opts, bo):
    out = b""
    for code, value in opts:
        if isinstance(value, str):
            value = value.encode("utf-8")
        out += struct.pack(bo + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)
    return out + struct.pack(bo + "HH", _OPT_END, 0) if out else b""


def _block(btype, body, bo):
    n = 12 + len(body)
    return struct.pack(bo + "II", btype, n) + body + struct.pack(bo + "I", n)


def write_pcapng(path, interfaces, packets, snaplen=262144, byteorder="<"):
    """Write a pcapng file (one section, Ethernet, nanosecond timestamps); returns ``path``.

    ``interfaces``: ``[(name, description), ...]``, one Interface Description Block each (in order,
    so a packet's interface is its index in this list). ``packets``: ``[(interface_index,
    timestamp_ns, frame, comment), ...]``; ``comment`` (str or None) becomes the packet's
    ``opt_comment``. Frames longer than ``snaplen`` are truncated (``orig_len`` keeps the length).
    ``byteorder`` ``"<"`` (default) or ``">"``.
    """
    if byteorder not in ("<", ">"):
        raise PcapError("byteorder must be '<' or '>', not %r" % (byteorder,), path=path, offset=None)
    bo = byteorder
    path = os.fspath(path)
    out = [_block(_SHB, struct.pack(bo + "IHHq", _BOM, 1, 0, -1) + _opt_bytes([(_SHB_USERAPPL, "netring")], bo), bo)]
    for name, description in interfaces:
        opts = [(_IF_NAME, name)] + ([(_IF_DESCRIPTION, description)] if description else [])
        opts.append((_IF_TSRESOL, b"\x09"))  # 10^-9 s
        out.append(_block(_IDB, struct.pack(bo + "HHI", LINKTYPE_ETHERNET, 0, snaplen) + _opt_bytes(opts, bo), bo))
    for i, (idx, ts, frame, comment) in enumerate(packets):
        if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < len(interfaces):
            raise PcapError("packets[%d] interface %r is not one of the %d interfaces" % (i, idx, len(interfaces)),
                            path=path, offset=None)
        frame = _data("packets[%d] frame" % i, frame)
        data = frame[:snaplen]
        ts = _timestamp("packets[%d] timestamp_ns" % i, ts, _MAX_PCAPNG_TS_NS)
        body = struct.pack(bo + "IIIII", idx, (ts >> 32) & 0xFFFFFFFF, ts & 0xFFFFFFFF, len(data), len(frame))
        body += data + b"\0" * (-len(data) % 4) + _opt_bytes([(_OPT_COMMENT, comment)] if comment else [], bo)
        out.append(_block(_EPB, body, bo))
    with open(path, "wb") as f:
        f.write(b"".join(out))
    return path
