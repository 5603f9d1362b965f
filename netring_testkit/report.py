"""Reports and artifacts of scenario runs: the JSON report, pcap files, per-scenario JSON.

``--netring-report FILE`` writes :func:`write_report` output: one JSON document with an entry
per scenario (status, per-stream counts, pps, duration, counters). ``--netring-artifacts DIR``
makes :func:`write_artifacts` store, for each failed (or errored) scenario, ``<id>.json`` (its
full result) and ``<id>.pcapng``: a bounded sample of what was sent (the first and last frames
of each stream), of what arrived at each capture (its first and last frames) and the
unexpected frames the captures kept, each packet carrying a comment that says which
(``sent stream main seq 0``, ``arrived at rx:eth0 (stream main seq 0)``, ``unexpected at
rx:eth0``). pcapng (:func:`write_pcapng`) is read by tcpdump, tshark and Wireshark
(``tshark -r F -T fields -e frame.comment``); :func:`read_pcapng` reads it back.
"""
import collections
import json
import os
import platform
import re
import struct
import time

__all__ = ["write_pcap", "read_pcap", "write_pcapng", "read_pcapng", "PcapngPacket", "write_artifacts",
           "write_report", "safe_name", "REPORT_VERSION", "STATUSES"]

REPORT_VERSION = 1
#: Every status a scenario record can have; the report's ``summary`` counts each, zeros included.
STATUSES = ("passed", "failed", "error", "skipped")
_PCAP_MAGIC = 0xA1B2C3D4  # microsecond timestamps
_LINKTYPE_ETHERNET = 1

# pcapng (draft-ietf-opsawg-pcapng): block types, byte-order magic and option codes used here.
_SHB, _IDB, _EPB = 0x0A0D0D0A, 0x00000001, 0x00000006
_BOM = 0x1A2B3C4D
_OPT_END, _OPT_COMMENT = 0, 1
_SHB_USERAPPL = 4
_IF_NAME, _IF_DESCRIPTION, _IF_TSRESOL = 2, 3, 9

#: One packet of a pcapng file: the ``if_name`` and ``if_description`` of its interface block,
#: ``timestamp_ns``, the frame ``data`` (bytes), ``orig_len`` and its ``comment`` (str or None).
PcapngPacket = collections.namedtuple("PcapngPacket", "interface description timestamp_ns data orig_len comment")


def safe_name(scenario_id):
    """A file-name-safe form of a scenario id (``udp[size=64]`` → ``udp_size=64_``)."""
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", scenario_id)


def write_pcap(path, frames, snaplen=65535, timestamp=None):
    """Write ``frames`` (bytes-like) to ``path`` as a classic little-endian libpcap file (Ethernet)."""
    path = os.fspath(path)
    ts = time.time() if timestamp is None else timestamp
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", _PCAP_MAGIC, 2, 4, 0, 0, snaplen, _LINKTYPE_ETHERNET))
        for i, fr in enumerate(frames):
            fr = bytes(fr)
            cap = fr[:snaplen]
            t = ts + i * 1e-6
            f.write(struct.pack("<IIII", int(t), int((t % 1) * 1e6), len(cap), len(fr)))
            f.write(cap)
    return path


def read_pcap(path):
    """Frames of a classic libpcap file written by :func:`write_pcap` (for tests and tools)."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack_from("<I", data, 0)[0]
    if magic != _PCAP_MAGIC:
        raise ValueError("%s is not a little-endian microsecond pcap file" % path)
    off, frames = 24, []
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack_from("<IIII", data, off)
        off += 16
        frames.append(data[off:off + incl])
        off += incl
    return frames


def _options(opts):
    out = b""
    for code, value in opts:
        if isinstance(value, str):
            value = value.encode("utf-8")
        out += struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)
    return out + struct.pack("<HH", _OPT_END, 0) if out else b""


def _block(btype, body):
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def write_pcapng(path, interfaces, packets, snaplen=262144):
    """Write a pcapng file (little-endian, one section, Ethernet, nanosecond timestamps).

    ``interfaces``: ``[(name, description), ...]``, one Interface Description Block each (in order,
    so a packet's interface is its index in this list). ``packets``: ``[(interface_index,
    timestamp_ns, frame, comment), ...]``; ``comment`` (str or None) becomes the packet's
    ``opt_comment``. Frames longer than ``snaplen`` are truncated (``orig_len`` keeps the length).
    """
    path = os.fspath(path)
    out = [_block(_SHB, struct.pack("<IHHq", _BOM, 1, 0, -1) + _options([(_SHB_USERAPPL, "netring_testkit")]))]
    for name, description in interfaces:
        opts = [(_IF_NAME, name)] + ([(_IF_DESCRIPTION, description)] if description else [])
        opts.append((_IF_TSRESOL, b"\x09"))  # 10^-9 s
        out.append(_block(_IDB, struct.pack("<HHI", _LINKTYPE_ETHERNET, 0, snaplen) + _options(opts)))
    for idx, ts, frame, comment in packets:
        if not 0 <= idx < len(interfaces):
            raise ValueError("packet interface %r is not one of the %d interfaces" % (idx, len(interfaces)))
        frame = bytes(frame)
        data = frame[:snaplen]
        ts = int(ts)
        body = struct.pack("<IIIII", idx, (ts >> 32) & 0xFFFFFFFF, ts & 0xFFFFFFFF, len(data), len(frame))
        body += data + b"\0" * (-len(data) % 4) + _options([(_OPT_COMMENT, comment)] if comment else [])
        out.append(_block(_EPB, body))
    with open(path, "wb") as f:
        f.write(b"".join(out))
    return path


def _read_options(buf, off, end):
    opts = {}
    while off + 4 <= end:
        code, n = struct.unpack_from("<HH", buf, off)
        if code == _OPT_END:
            break
        opts.setdefault(code, bytes(buf[off + 4:off + 4 + n]))
        off += 4 + n + (-n % 4)
    return opts


def read_pcapng(path):
    """The packets of a little-endian pcapng file (as :func:`write_pcapng` writes): a list of
    :class:`PcapngPacket`. Blocks other than SHB/IDB/EPB are skipped; a big-endian or damaged
    file raises ``ValueError``."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 28 or struct.unpack_from("<I", buf, 0)[0] != _SHB or struct.unpack_from("<I", buf, 8)[0] != _BOM:
        raise ValueError("%s is not a little-endian pcapng file" % path)
    off, ifaces, packets = 0, [], []
    while off + 12 <= len(buf):
        btype, blen = struct.unpack_from("<II", buf, off)
        if blen < 12 or blen % 4 or off + blen > len(buf) or struct.unpack_from("<I", buf, off + blen - 4)[0] != blen:
            raise ValueError("%s: damaged pcapng block at offset %d" % (path, off))
        end = off + blen - 4
        if btype == _SHB:
            ifaces = []
        elif btype == _IDB:
            opts = _read_options(buf, off + 16, end)
            res = opts.get(_IF_TSRESOL, b"\x06")[0]
            scale = 10 ** (9 - res) if not res & 0x80 and res <= 9 else 1
            ifaces.append((opts.get(_IF_NAME, b"").decode("utf-8", "replace"),
                           opts.get(_IF_DESCRIPTION, b"").decode("utf-8", "replace") or None, scale))
        elif btype == _EPB:
            idx, hi, lo, caplen, orig = struct.unpack_from("<IIIII", buf, off + 8)
            if idx >= len(ifaces):
                raise ValueError("%s: packet at offset %d names interface %d of %d" % (path, off, idx, len(ifaces)))
            data = bytes(buf[off + 28:off + 28 + caplen])
            opts = _read_options(buf, off + 28 + caplen + (-caplen % 4), end)
            comment = opts.get(_OPT_COMMENT)
            name, desc, scale = ifaces[idx]
            packets.append(PcapngPacket(name, desc, ((hi << 32) | lo) * scale, data, orig,
                                        comment.decode("utf-8", "replace") if comment is not None else None))
        off += blen
    return packets


def write_artifacts(directory, result):
    """Store a failed scenario's JSON result and pcapng in ``directory``; return the paths written.

    Both are named after the scenario id made file-safe (:func:`safe_name`). The pcapng holds,
    each packet commented: the frames ``result.sent_samples`` lists (``sent stream S seq N``,
    on an interface block named after the sender endpoint), those of ``result.arrived_samples``
    (``arrived at EP (stream S seq N)``) and ``result.unexpected_frames`` (``unexpected at EP``);
    one interface block per endpoint and role. It is written for every failure, even when
    nothing arrived. The JSON names it (``artifacts``, and ``pcapng`` with the packet counts).
    """
    os.makedirs(directory, exist_ok=True)
    base = os.path.join(directory, safe_name(result.scenario.id))
    names = {st.stream_id: st.name for st in result.scenario.streams}
    ifaces, index, packets = [], {}, []
    counts = {"sent": 0, "arrived": 0, "unexpected": 0}

    def iface(ep, role, description):
        key = (ep, role)
        if key not in index:
            index[key] = len(ifaces)
            ifaces.append((ep, description))
        return index[key]

    for smp in result.sent_samples:
        i = iface(smp.at, "sent", "sent by %s (first and last frames of each stream)" % smp.at)
        packets.append((i, smp.timestamp_ns, smp.data, "sent stream %s seq %d" % (smp.stream, smp.seq)))
        counts["sent"] += 1
    for ep, frames in sorted(result.arrived_samples.items()):
        i = iface(ep, "arrived", "arrived at %s (first and last frames of the capture)" % ep)
        for ts, fr in frames:
            st = _stamp_of(fr)
            what = "" if st is None else " (stream %s seq %d%s)" % (
                names.get(st.stream_id, "#%d" % st.stream_id), st.seq, "" if st.ok else ", check failed")
            packets.append((i, ts, fr, "arrived at %s%s" % (ep, what)))
            counts["arrived"] += 1
    end_ns = int((result.started + result.duration) * 1e9)
    for ep, frames in sorted(result.unexpected_frames.items()):
        if not frames:
            continue
        i = iface(ep, "unexpected", "unexpected at %s (first frames without a known stamp)" % ep)
        for fr in frames:
            packets.append((i, end_ns, fr, "unexpected at %s" % ep))
            counts["unexpected"] += 1
    if not ifaces:  # a run that ended before sending: still a file readers open (tcpdump wants an IDB)
        ifaces.append(("none", "no frame was sent or seen"))
    pcap = write_pcapng(base + ".pcapng", ifaces, packets)
    result.artifacts = [pcap, base + ".json"]
    doc = result.as_dict()
    doc["pcapng"] = dict(file=os.path.basename(pcap), **counts)
    with open(base + ".json", "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, default=str)
        f.write("\n")
    return [pcap, base + ".json"]


def _stamp_of(frame):
    from netring import stamp

    try:
        return stamp.read(frame)
    except Exception:  # a frame too short or odd to decode: no stamp
        return None


def write_report(path, records, duration=None):
    """Write the ``--netring-report`` JSON: environment, summary and one record per scenario.

    ``summary`` counts the records of every status in :data:`STATUSES`, zeros included, so a
    consumer can read ``summary["error"]`` without guessing; a record with another status (none
    today) adds its own key.
    """
    path = os.fspath(path)
    summary = dict.fromkeys(STATUSES, 0)
    for r in records:
        summary[r.get("status", "unknown")] = summary.get(r.get("status", "unknown"), 0) + 1
    doc = {
        "version": REPORT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "duration_s": duration,
        "summary": summary,
        "scenarios": records,
    }
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, default=str)
        f.write("\n")
    os.replace(tmp, path)
    return path
