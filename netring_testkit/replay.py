"""A pcap/pcapng trace as a stream's frames: ``frame: {pcap: trace.pcap}`` in a scenario.

The path is relative to the YAML file. Each frame of the trace becomes one template, cycled frame
by frame when ``count`` exceeds the trace (frame ``seq`` is trace frame ``seq % len``).

``stamp: true`` (the default): the last 20 bytes of each frame's L3 packet (:mod:`netring.stamp`'s
rule) are overwritten by the stamp — stream id, sequence number, and a check over the L4 payload
before it — and the UDP/TCP checksum is recomputed (IPv4 and IPv6), so the C checker counts every
frame like a generated one. A frame whose L3 packet has no 20 bytes after its IP and UDP/TCP
headers cannot carry the stamp: the loader reports it as a located problem naming the frame's index.

``stamp: false``: the frames go out byte for byte as in the trace (TX ring only) and the capture
counts them by exact content (:class:`netring.content.ContentChecker`: delivered, lost,
duplicated, and order by first-in-first-out matching of repeated contents).

``rate: pcap`` replays the trace's own timing (:class:`Timing`): frame ``i`` of a cycle is due at
its timestamp's offset from the first frame's; a cycle lasts the trace's span plus one average gap
(so cycling keeps the trace's average rate); timestamps that go backwards are sent at once after the
frame before. The stream's ``rate_pps`` is that average rate.
"""
import bisect
import os

from netring import pcap, stamp as _stamp
from netring.errors import NetringError, ScenarioError

from . import frames as _frames

__all__ = ["analyse", "templates", "frames_of", "prepare", "KEYS", "Timing", "average_pps"]

#: The keys of ``frame:`` when it names a trace.
KEYS = ("pcap", "stamp")
_ETH_P_IPV4, _ETH_P_IPV6 = 0x0800, 0x86DD


def _payload_start(f):
    """Where the bytes after the IP and UDP/TCP headers start (the L3 start for other protocols); -1 if
    the headers do not fit the frame."""
    l3, etype = _stamp.l3_offset(f)
    if l3 < 0:
        return -1
    n = len(f)
    if etype == _ETH_P_IPV4:
        if n < l3 + 20:
            return -1
        start, proto = l3 + (f[l3] & 0x0F) * 4, f[l3 + 9]
    elif etype == _ETH_P_IPV6:
        if n < l3 + 40:
            return -1
        start, proto = l3 + 40, f[l3 + 6]
    else:
        return l3
    if proto == 17:
        start += 8
    elif proto == 6:
        if n < start + 13:
            return -1
        start += (f[start + 12] >> 4) * 4
    return start if start <= n else -1


def prepare(frame, stream_id, index):
    """``frame`` re-stamped for ``stream_id`` (seq 0) with its L4 checksum fixed: ``(bytes, csum offset)``.

    Raises ValueError naming ``index`` when the L3 packet has no room for the stamp after its headers.
    """
    f = bytearray(frame)
    off = _stamp.locate(f)
    start = _payload_start(f)
    if off < 0 or start < 0 or off < start:
        room = (off + _stamp.STAMP_LEN - start) if off >= 0 and start >= 0 else 0
        raise ValueError("frame %d (%d B) has no room for the %d B stamp: its L3 packet holds %d B after the IP "
                         "and UDP/TCP headers; drop it from the trace or use longer frames"
                         % (index, len(f), _stamp.STAMP_LEN, max(room, 0)))
    _stamp.write(f, stream_id, 0, min(off - start, _stamp.PLEN_MAX), offset=off)
    out = _frames.restamp(bytes(f), stream_id, 0)  # the same stamp again, and the L4 checksum recomputed
    return out, _frames.l4_checksum_offset(out)


def _read(path):
    try:
        return pcap.read(path), None
    except FileNotFoundError:
        return None, "trace file %s does not exist (the path is relative to the scenario file)" % path
    except (OSError, NetringError) as exc:
        return None, "cannot read the trace %s: %s" % (path, exc)


class Timing:
    """The send schedule of ``rate: pcap``: each frame's offset from the first (ns) and the cycle period.

    ``offsets``: one per trace frame, non-decreasing, the first 0; ``period_ns``: the span of the
    trace plus one average gap (the gap after the last frame before the cycle starts again).
    """

    __slots__ = ("offsets", "period_ns", "pps")

    def __init__(self, timestamps_ns):
        first, last = timestamps_ns[0], timestamps_ns[0]
        offs = []
        for ts in timestamps_ns:
            last = max(last, ts)  # a timestamp that goes backwards: at once after the frame before
            offs.append(last - first)
        span = offs[-1]
        if len(offs) < 2 or span <= 0:
            raise ValueError("a schedule needs two or more frames with distinct timestamps")
        #: One offset per trace frame (ns from the first frame's timestamp).
        self.offsets = offs
        #: Nanoseconds between the start of one cycle and the next.
        self.period_ns = span + span // (len(offs) - 1)
        #: The average rate, frames per second.
        self.pps = max(1, int(round((len(offs) - 1) * 1e9 / span)))

    def at(self, k):
        """The offset (ns) of frame ``k`` of the stream from its frame 0."""
        cyc, i = divmod(k, len(self.offsets))
        return cyc * self.period_ns + self.offsets[i]

    def due(self, elapsed_ns):
        """How many frames are due ``elapsed_ns`` after frame 0 (frames ``0..due-1``)."""
        if elapsed_ns < 0:
            return 0
        cyc, within = divmod(elapsed_ns, self.period_ns)
        return cyc * len(self.offsets) + bisect.bisect_right(self.offsets, within)

    def duration_s(self, count):
        """Seconds from the first to the last of ``count`` frames."""
        return self.at(count - 1) / 1e9 if count > 0 else 0.0


def average_pps(trace):
    """The trace's average rate in frames per second (None for fewer than two frames or no time span)."""
    ts = [f.timestamp_ns for f in trace.frames]
    if len(ts) < 2 or max(ts) <= min(ts):
        return None
    return max(1, int(round((len(ts) - 1) * 1e9 / (max(ts) - min(ts)))))


def analyse(frame, scenario_file, mtu, stream_id):
    """Validate a ``frame: {pcap: ..., stamp: ...}`` mapping of the scenario in ``scenario_file``.

    Returns ``(frame, sizes, timing, problems)``: the frame spec the engine keeps (``{"pcap": absolute
    path, "stamp": bool}``), the frame lengths (for ring sizing), the trace's :class:`Timing` (for
    ``rate: pcap``; None if it has fewer than two frames or no time span) and a list of
    ``(field path under frame, message)``.
    """
    problems = []
    for k in frame:
        if k not in KEYS:
            problems.append(((k,), "a replayed frame takes only %s (headers come from the trace), not %r"
                             % (" and ".join(KEYS), k)))
    st = frame.get("stamp", True)
    if not isinstance(st, bool):
        problems.append((("stamp",), "stamp must be true or false, got %r" % (st,)))
        st = True
    name = frame.get("pcap")
    if not isinstance(name, str) or not name:
        problems.append((("pcap",), "pcap must be the path of a pcap or pcapng file, got %r" % (name,)))
        return {"pcap": None, "stamp": st}, [], None, problems
    path = name if os.path.isabs(name) else os.path.join(os.path.dirname(os.path.abspath(scenario_file)), name)
    path = os.path.normpath(path)
    spec = {"pcap": path, "stamp": st}
    trace, why = _read(path)
    if trace is None:
        problems.append((("pcap",), why))
        return spec, [], None, problems
    if not len(trace):
        problems.append((("pcap",), "trace %s holds no frame" % path))
        return spec, [], None, problems
    if any(itf.linktype != pcap.LINKTYPE_ETHERNET for itf in trace.interfaces):
        problems.append((("pcap",), "trace %s is not Ethernet (link type %d); only Ethernet frames can be sent"
                         % (path, trace.linktype)))
        return spec, [], None, problems
    sizes = []
    for i, fr in enumerate(trace.frames):
        if fr.orig_len > len(fr.data):
            problems.append((("pcap",), "frame %d of %s was captured truncated (%d of %d B); capture with a larger "
                             "snaplen" % (i, path, len(fr.data), fr.orig_len)))
            break
        tagged = len(fr.data) >= 14 and fr.data[12:14] == b"\x81\x00"
        if len(fr.data) > mtu + 14 + (4 if tagged else 0):
            problems.append((("pcap",), "frame %d of %s is %d B, more than the link carries (MTU %d); raise the "
                             "link's mtu" % (i, path, len(fr.data), mtu)))
            break
        if len(fr.data) < 14:
            problems.append((("pcap",), "frame %d of %s is %d B, shorter than an Ethernet header" % (i, path, len(fr.data))))
            break
        if st:
            try:
                prepare(fr.data, stream_id, i)
            except ValueError as exc:
                problems.append((("pcap",), "%s: %s" % (os.path.basename(path), exc)))
                break
        sizes.append(len(fr.data))
    try:
        timing = Timing([f.timestamp_ns for f in trace.frames])
    except ValueError:
        timing = None
    return spec, sizes, timing, problems


def frames_of(stream):
    """The trace frames of a replayed ``stream`` as bytes (none if its trace cannot be read: already reported)."""
    trace, _why = _read(stream.frame["pcap"]) if stream.frame.get("pcap") else (None, None)
    return [bytes(fr.data) for fr in trace.frames] if trace is not None else []


def templates(stream):
    """The stream's templates and L4 checksum offsets (``runner.build_templates`` for a replayed trace).

    With ``stamp: false`` the trace's frames as they are, and offsets None (nothing is patched).
    """
    trace, why = _read(stream.frame["pcap"])
    if trace is None:
        raise ScenarioError("stream %s: %s" % (stream.name, why))
    if not stream.frame.get("stamp", True):
        return [bytes(fr.data) for fr in trace.frames], None
    out, offs = [], []
    for i, fr in enumerate(trace.frames):
        try:
            t, off = prepare(fr.data, stream.stream_id, i)
        except ValueError as exc:  # the file changed since the scenario was loaded
            raise ScenarioError("stream %s: %s: %s" % (stream.name, stream.frame["pcap"], exc)) from None
        out.append(t)
        offs.append(off)
    return out, offs
