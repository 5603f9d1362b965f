"""Sequence checking and stamping in C: :class:`SeqChecker` and the per-frame stamp path.

The stamp layout is defined by :mod:`netring.stamp` (the Python reference). This module
drives the C implementation (``csrc/stampc.c``):

- :class:`SeqChecker` walks a whole :class:`~netring.capture.PacketBatch` block in ONE C call
  (no Python object per packet) and counts, per stream, delivered / duplicated / reordered /
  corrupted frames, plus unexpected frames (no stamp, unknown stream, seq out of range).
- :func:`prepare_templates` / :func:`stamp_frame` expose the exact per-frame code that
  :meth:`netring.Injector.send_stream` runs in the TX ring (stamp + RFC 1624 checksum patch).
"""
import errno
from collections import namedtuple

from . import stamp as _stamp
from ._core import ffi, lib
from ._ring import byte_view, check_int, check_timeout
from .errors import ConfigurationError, FrameTooLargeError

__all__ = ["SeqChecker", "StreamCounts", "stamp_frame", "prepare_templates", "locate", "payload_hash"]

MAX_COUNT = 1 << 32


class StreamCounts(namedtuple("StreamCounts", "expected delivered lost duplicated reordered corrupted")):
    """Per-stream result: ``expected`` frames, ``delivered`` (distinct seqs seen), ``lost``
    (expected − delivered), ``duplicated`` (repeat sightings), ``reordered`` (first sightings
    below the highest seq seen so far; also counted in delivered), ``corrupted`` (stamp magic
    right but check or plen wrong; not counted in delivered)."""

    __slots__ = ()


def locate(frame):
    """C version of :func:`netring.stamp.locate` (offset of the stamp, or -1)."""
    v = byte_view("frame", frame)
    off = lib.nr_st_locate(ffi.from_buffer(v), len(v))
    return -1 if off == -errno.ENOENT else off  # -1: stamp.locate's "no room for a stamp"


def payload_hash(payload):
    """C version of :func:`netring.stamp.payload_hash`."""
    v = byte_view("payload", payload)
    return lib.nr_st_payload_hash(ffi.from_buffer(v), len(v))


class _Templates:
    """Templates ready for C: ``arr`` (struct nr_st_tmpl[]) plus the buffers it points into."""

    __slots__ = ("arr", "keep", "n", "lengths")

    def __init__(self, arr, keep, n, lengths):
        self.arr, self.keep, self.n, self.lengths = arr, keep, n, lengths


def _udp_csum_offset(frame):
    """The offset of the UDP checksum if ``frame`` is IPv4/IPv6 + UDP, else None."""
    l3, etype = _stamp.l3_offset(frame)
    if l3 < 0:
        return None
    if etype == 0x0800 and len(frame) >= l3 + 20 and frame[l3 + 9] == 17:
        return l3 + (frame[l3] & 0x0F) * 4 + 6
    if etype == 0x86DD and len(frame) >= l3 + 40 and frame[l3 + 6] == 17:
        return l3 + 40 + 6
    return None


def _as_list(field, value):
    if isinstance(value, (str, bytes, bytearray, memoryview)):
        raise ConfigurationError("%s must be a sequence (e.g. a list), not a single %s" % (field, type(value).__name__),
                                 field=field, value=type(value).__name__)
    try:
        return list(value)
    except (TypeError, ValueError, NotImplementedError):
        raise ConfigurationError("%s must be a sequence, not %r" % (field, type(value).__name__), field=field,
                                 value=type(value).__name__) from None


def check_stream_args(stream_id, first_seq, count, rate_pps, timeout):
    """Validate ``send_stream``'s scalar arguments (every sender shares one meaning); returns ``timeout``
    checked. ``rate_pps`` ≥ 1e-3: the C pacer computes ns offsets as u64, which a slower rate overflows."""
    check_int("stream_id", stream_id, 0, _stamp.STREAM_ID_MAX, " (the stamp holds 16 bits)")
    check_int("first_seq", first_seq, 0, (1 << 64) - 1)
    check_int("count", count, 0, (1 << 64) - 1 - first_seq)
    if rate_pps is not None:
        if isinstance(rate_pps, bool) or not isinstance(rate_pps, (int, float)) or not 1e-3 <= rate_pps <= 1e9:
            raise ConfigurationError("rate_pps=%r must be a number in [0.001, 1e9] or None" % (rate_pps,),
                                     field="rate_pps", value=rate_pps)
    return check_timeout("timeout", timeout)


#: A C ``send_stream`` call (TX ring or AF_XDP) returns to Python at least this often (ns).
STREAM_SLICE_NS = 100_000_000


def stream_job(tm, stream_id, first_seq, count, rate_pps, timeout):
    """The C job (``struct nr_st_job``) of one ``send_stream`` call over :func:`prepare_templates`'
    result ``tm``, its clock started now: the arguments as :func:`check_stream_args` accepted them.
    Keep ``tm`` alive as long as the job (the job points into its template array)."""
    j = ffi.new("struct nr_st_job *")
    j.tmpls = tm.arr
    j.ntmpl = tm.n
    j.stream_id = stream_id
    j.first_seq = first_seq
    j.count = count
    j.rate_pps = float(rate_pps or 0.0)
    j.t0_ns = lib.nr_st_now_ns()
    j.deadline_ns = 0 if timeout is None else j.t0_ns + int(timeout * 1e9)
    j.slice_ns = STREAM_SLICE_NS
    return j


def prepare_templates(templates, csum_offsets=None, capacity=None):
    """Validate stamped template frames and precompute what C needs (payload hash per template).

    ``templates``: non-empty sequence of bytes-like frames, each already carrying a valid stamp
    (:func:`netring.stamp.write`). ``csum_offsets``: None, or one entry per template — the byte
    offset of its L4 checksum (UDP/TCP/ICMP/ICMPv6: at an even distance from the L4 header
    start) to patch incrementally, or -1/None for "do not touch". ``capacity``: largest frame
    allowed (FrameTooLargeError beyond).
    """
    if capacity is not None and (isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0):
        raise ConfigurationError("capacity must be a non-negative int or None, not %r" % (capacity,), field="capacity",
                                 value=capacity)
    if isinstance(templates, (bytes, bytearray, memoryview)):
        raise ConfigurationError("templates must be a list of frames, not a single frame", field="templates",
                                 value=type(templates).__name__)
    tl = [bytes(byte_view("templates[%d]" % i, t)) for i, t in enumerate(_as_list("templates", templates))]
    if not tl:
        raise ConfigurationError("templates must hold at least one frame", field="templates", value=0)
    if csum_offsets is None:
        offs = [-1] * len(tl)
    else:
        offs = [-1 if o is None else o for o in _as_list("csum_offsets", csum_offsets)]
        if len(offs) != len(tl):
            raise ConfigurationError("csum_offsets has %d entries for %d templates; give one per template"
                                     % (len(offs), len(tl)), field="csum_offsets", value=len(offs))
    arr = ffi.new("struct nr_st_tmpl[]", len(tl))
    keep = []
    for i, (t, co) in enumerate(zip(tl, offs)):
        if capacity is not None and len(t) > capacity:
            raise FrameTooLargeError(len(t), capacity, field="templates[%d]" % i)
        s = _stamp.read(t)
        if s is None or not s.ok:
            raise ConfigurationError(
                "templates[%d] (%d B) carries no valid stamp; write one with netring.stamp.write(frame, "
                "stream_id, seq, plen) before passing it" % (i, len(t)), field="templates[%d]" % i, value=len(t))
        if isinstance(co, bool) or not isinstance(co, int):
            raise ConfigurationError("csum_offsets[%d] must be an int or None, not %r" % (i, co),
                                     field="csum_offsets[%d]" % i, value=co)
        if co != -1:
            if not 0 <= co <= len(t) - 2:
                raise ConfigurationError("csum_offsets[%d]=%d is outside the %d-byte template (0..%d or -1)"
                                         % (i, co, len(t), len(t) - 2), field="csum_offsets[%d]" % i, value=co)
            if s.offset - 2 < co < s.offset + _stamp.STAMP_LEN:
                raise ConfigurationError("csum_offsets[%d]=%d overlaps the stamp at %d..%d"
                                         % (i, co, s.offset, s.offset + _stamp.STAMP_LEN - 1),
                                         field="csum_offsets[%d]" % i, value=co)
        buf = ffi.from_buffer(t)
        keep.append(buf)
        arr[i].data = ffi.cast("const uint8_t *", buf)
        arr[i].len = len(t)
        arr[i].stamp_off = s.offset
        arr[i].phash = lib.nr_st_payload_hash(buf + (s.offset - s.plen), s.plen)
        arr[i].csum_off = co
        arr[i].udp = 1 if co != -1 and co == _udp_csum_offset(t) else 0
    keep.append(tl)
    return _Templates(arr, keep, len(tl), [len(t) for t in tl])


def stamp_frame(template, stream_id, seq, csum_offset=-1):
    """Run the C per-frame stamp (exactly what ``send_stream`` does in the ring) on a copy of ``template``.

    Returns the stamped frame as ``bytes``: stream id and seq written, check recomputed from the
    template's precomputed payload hash, and the L4 checksum at ``csum_offset`` (if ≥ 0) patched.
    """
    if isinstance(stream_id, bool) or not (isinstance(stream_id, int) and 0 <= stream_id <= _stamp.STREAM_ID_MAX):
        raise ConfigurationError("stream_id must be an int in 0..%d (the stamp holds 16 bits), not %r"
                                 % (_stamp.STREAM_ID_MAX, stream_id), field="stream_id", value=stream_id)
    if not (isinstance(seq, int) and 0 <= seq < 1 << 64):
        raise ConfigurationError("seq must be an int in 0..2**64-1, not %r" % (seq,), field="seq", value=seq)
    t = prepare_templates([template], [csum_offset])
    out = bytearray(template)
    buf = ffi.from_buffer(out)
    lib.nr_st_stamp(buf, t.arr, stream_id, seq)
    del buf
    return bytes(out)


class SeqChecker:
    """Counts what arrived of stamped streams, in C.

    ``expected``: ``{stream_id: count}`` — stream ``sid`` is expected to deliver seqs
    ``0..count-1`` exactly once each. ``keep_unexpected``: how many unexpected frames to copy
    out (first ones, up to ``snap`` bytes each) for diagnosis.

    Feed it with :meth:`feed` (a whole PacketBatch, one C call; frames the capturing socket
    *sent* — PACKET_OUTGOING — are skipped) or :meth:`feed_bytes` (one frame). Not thread-safe:
    feed from one thread at a time.
    """

    def __init__(self, expected, keep_unexpected=8, snap=2048):
        if not isinstance(expected, dict) or not expected:
            raise ConfigurationError("expected must be a non-empty dict {stream_id: count}, not %r" % (expected,),
                                     field="expected", value=expected)
        for sid, cnt in expected.items():
            if isinstance(sid, bool) or not isinstance(sid, int) or not 0 <= sid <= _stamp.STREAM_ID_MAX:
                raise ConfigurationError("expected: stream id %r must be an int in 0..%d (the stamp holds 16 bits)"
                                         % (sid, _stamp.STREAM_ID_MAX), field="expected", value=sid)
            if isinstance(cnt, bool) or not isinstance(cnt, int) or not 0 <= cnt <= MAX_COUNT:
                raise ConfigurationError("count %r of stream %d must be an int in 0..%d" % (cnt, sid, MAX_COUNT),
                                         field="expected[%d]" % sid, value=cnt)
        if isinstance(keep_unexpected, bool) or not isinstance(keep_unexpected, int) \
                or not 0 <= keep_unexpected <= 4096:
            raise ConfigurationError("keep_unexpected=%r must be an int in 0..4096" % (keep_unexpected,),
                                     field="keep_unexpected", value=keep_unexpected)
        if isinstance(snap, bool) or not isinstance(snap, int) or not 64 <= snap <= 65536:
            raise ConfigurationError("snap=%r must be an int in 64..65536" % (snap,), field="snap", value=snap)
        self._ids = sorted(expected)
        self._index = {sid: i for i, sid in enumerate(self._ids)}
        n = len(self._ids)
        self._streams = ffi.new("struct nr_st_stream[]", n)
        self._bitmaps = []
        for i, sid in enumerate(self._ids):
            cnt = expected[sid]
            bm = ffi.new("uint64_t[]", max(1, (cnt + 63) // 64))
            self._bitmaps.append(bm)
            st = self._streams[i]
            st.id = sid
            st.count = cnt
            st.bitmap = bm
            st.highest = -1
        self._keep_buf = ffi.new("uint8_t[]", max(1, keep_unexpected * snap))
        self._keep_len = ffi.new("uint32_t[]", max(1, keep_unexpected))
        self._keep_wire = ffi.new("uint32_t[]", max(1, keep_unexpected))
        c = self._c = ffi.new("struct nr_st_checker *")
        c.streams = self._streams
        c.nstreams = n
        c.keep_max = keep_unexpected
        c.keep_snap = snap
        c.keep_buf = self._keep_buf
        c.keep_len = self._keep_len
        c.keep_wire = self._keep_wire
        self._total = sum(expected.values())

    def feed(self, batch):
        """Check every frame of ``batch`` (a live :class:`~netring.capture.PacketBatch` or
        :class:`~netring.xsk.XdpBatch`) in one C call.

        Returns the number of packets walked (outgoing ones included). A batch that was returned,
        or whose capture was closed (even by another thread, mid-call), raises a NetringError.
        """
        raw_drain = getattr(batch, "raw_drain", None)  # XdpSocket.drain's step: take, check, return in one C call
        if callable(raw_drain):
            return raw_drain(self._c)
        raw_descriptors = getattr(batch, "raw_descriptors", None)  # an XdpBatch: its checked UMEM descriptors
        if callable(raw_descriptors):
            with raw_descriptors() as (umem, pkts, n):
                lib.nr_xsk_check_pkts(self._c, umem, pkts, n)
            return n
        raw_block = getattr(batch, "raw_block", None)  # PacketBatch's public accessor (capture imports us)
        if not callable(raw_block):
            raise ConfigurationError("feed() takes a PacketBatch from Capture.next_batch(), not %r; use "
                                     "feed_bytes() for single frames" % (type(batch).__name__,), field="batch",
                                     value=type(batch).__name__)
        with raw_block() as (ptr, size):  # the capture cannot return the block or unmap it while C reads it
            return lib.nr_st_check_block(self._c, ptr, size)

    def raw_checker(self):
        """The C checker state (``struct nr_st_checker *``) for C code that hands it frames
        (:class:`netring.content.ContentChecker`); valid as long as this object lives."""
        return self._c

    def feed_bytes(self, frame):
        """Check one frame given as bytes-like (tests, or frames from :meth:`Capture.recv`)."""
        v = byte_view("frame", frame)
        if len(v) == 0:
            lib.nr_st_check_frame(self._c, ffi.NULL, 0)
            return
        lib.nr_st_check_frame(self._c, ffi.from_buffer(v), len(v))

    def counts(self, stream_id):
        """:class:`StreamCounts` of ``stream_id`` (KeyError-like ConfigurationError if it was not expected)."""
        try:
            if isinstance(stream_id, bool) or not isinstance(stream_id, int):
                raise KeyError(stream_id)
            st = self._streams[self._index[stream_id]]
        except KeyError:
            raise ConfigurationError("stream %r is not one of the expected streams %s" % (stream_id, self._ids),
                                     field="stream_id", value=stream_id) from None
        return StreamCounts(st.count, st.delivered, st.count - st.delivered, st.duplicated, st.reordered,
                            st.corrupted)

    @property
    def streams(self):
        """The expected stream ids, sorted."""
        return list(self._ids)

    @property
    def done(self):
        """True once every expected frame of every stream was delivered."""
        return sum(self._streams[i].delivered for i in range(len(self._ids))) >= self._total

    @property
    def unexpected(self):
        """Frames with no stamp, an unknown stream id, or a seq ≥ the stream's count."""
        return self._c.unexpected

    @property
    def unexpected_frames(self):
        """Copies (``bytes``, at most ``snap`` bytes each) of the first ``keep_unexpected`` unexpected frames."""
        c = self._c
        return [bytes(ffi.buffer(self._keep_buf + i * c.keep_snap, self._keep_len[i])) for i in range(c.kept)]

    @property
    def frames(self):
        """Frames examined (outgoing frames skipped by :meth:`feed` not included)."""
        return self._c.frames

    @property
    def outgoing_skipped(self):
        """PACKET_OUTGOING frames :meth:`feed` skipped (the sender's own frames on the same link)."""
        return self._c.outgoing

    def as_dict(self):
        """Everything as plain data: ``{"streams": {sid: {...counts...}}, "unexpected": n, "frames": n, ...}``."""
        return {
            "streams": {sid: dict(self.counts(sid)._asdict()) for sid in self._ids},
            "unexpected": self.unexpected,
            "frames": self.frames,
            "outgoing_skipped": self.outgoing_skipped,
            "done": self.done,
        }

    def __repr__(self):
        return "<SeqChecker streams=%d done=%s unexpected=%d>" % (len(self._ids), self.done, self.unexpected)

