"""Counting frames by their exact bytes, in C: :class:`ContentChecker` (``csrc/content.c``).

The counterpart of :class:`netring.check.SeqChecker` for frames that carry no stamp — a trace
replayed untouched. Each stream is a list of frames sent cycled to ``count`` (frame ``i`` of the
stream is ``frames[i % len(frames)]``), so the checker knows how many copies of each distinct
content to expect. A received frame is looked up by a hash of its bytes (and confirmed by a byte
comparison); a frame that is no frame of any stream goes to the ``fallback`` SeqChecker, which
counts it for its stamped stream or calls it unexpected — so one capture counts stamped and
unstamped streams side by side, by the same rules for everything else.

What each count means for a content-counted stream:

- ``delivered``: copies matched to a send — for each distinct content, at most as many as were sent;
- ``lost``: ``count − delivered``;
- ``duplicated``: copies beyond the number sent;
- ``reordered``: each arriving copy is matched to a send of its content — the unmatched send nearest
  to the highest send index matched so far (on a tie the earlier), looked for within half a trace
  cycle of it, except that the next send of a content whose previous copy never arrived is taken
  however far ahead; nothing there: the copy is a duplicate — and is reordered when that send index
  is below the highest. With distinct contents (no frame repeated within the trace and ``count`` ≤
  its length) this is exactly "arrival order = send order". Where contents repeat (cycles, or a trace
  that holds a frame twice): a duplicate is not mistaken for the next cycle's copy, a lost copy does
  not turn the later copies of its content into reorders, a frame held back by less than half a cycle
  is matched to its own send (one held back longer is counted lost and its arrival duplicated), and
  two copies of one content swapping places cannot be seen;
- ``corrupted``: always 0 — a frame whose bytes changed is no trace frame: it is unexpected.
"""
import errno

from ._core import ffi, lib
from ._ring import byte_view, check_int
from .check import MAX_COUNT, StreamCounts
from .errors import ConfigurationError

__all__ = ["ContentChecker"]

_MAX_FRAME = 65535
_MAX_BITS = 1 << 31   # frames counted by content at most: one bit each (256 MiB)


class ContentChecker:
    """Counts what arrived of streams of exact frames, in C.

    ``streams``: ``{stream_id: (frames, count)}`` — ``frames`` a non-empty sequence of bytes-like
    frames sent cycled to ``count`` frames. ``fallback``: a :class:`netring.check.SeqChecker` that
    gets every frame that is none of these (stamped streams, unexpected frames), or None (then such
    frames are only counted in :attr:`unexpected`). Two streams may not send the same bytes (a frame
    could not be told apart): :class:`ConfigurationError` naming both.

    Feed it with :meth:`feed` (a whole TPACKET_V3 :class:`~netring.capture.PacketBatch`, one C call;
    frames the socket sent are skipped; a tag the device stripped is put back before the lookup) or
    :meth:`feed_bytes`. Not thread-safe: feed from one thread at a time.
    """

    def __init__(self, streams, fallback=None):
        if not isinstance(streams, dict) or not streams:
            raise ConfigurationError("streams must be a non-empty dict {stream_id: (frames, count)}, not %r"
                                     % (type(streams).__name__,), field="streams", value=type(streams).__name__)
        self._ids = sorted(streams)
        self._index = {sid: i for i, sid in enumerate(self._ids)}
        self._fallback = fallback   # the C checker holds its raw pointer: kept (and read-only) for our life
        groups = {}   # bytes -> [stream index, positions]
        self._keep = []
        cstreams = ffi.new("struct nr_ct_stream[]", len(self._ids))
        biggest = 0
        for si, sid in enumerate(self._ids):
            check_int("stream id", sid, 0, 65535)
            try:
                frames, count = streams[sid]
            except (TypeError, ValueError):
                raise ConfigurationError("streams[%r] must be a pair (frames, count)" % (sid,),
                                         field="streams[%r]" % (sid,), value=streams[sid]) from None
            check_int("count of stream %d" % sid, count, 0, MAX_COUNT)
            if isinstance(frames, (bytes, bytearray, memoryview, str)) or not frames:
                raise ConfigurationError("streams[%d]: frames must be a non-empty list of frames" % sid,
                                         field="streams[%d]" % sid, value=type(frames).__name__)
            tl = [bytes(byte_view("streams[%d] frame %d" % (sid, i), f)) for i, f in enumerate(frames)]
            for i, f in enumerate(tl):
                if not 1 <= len(f) <= _MAX_FRAME:
                    raise ConfigurationError("streams[%d] frame %d is %d B (1..%d B)" % (sid, i, len(f), _MAX_FRAME),
                                             field="streams[%d]" % sid, value=len(f))
                g = groups.setdefault(f, [si, []])
                if g[0] != si:
                    raise ConfigurationError(
                        "streams %d and %d both send the same %d B frame (frame %d of stream %d); a frame counted "
                        "by content must belong to one stream: count them at different captures, or stamp one"
                        % (self._ids[g[0]], sid, len(f), i, sid), field="streams[%d]" % sid, value=i)
                g[1].append(i)
                biggest = max(biggest, len(f))
            cstreams[si].count = count
            cstreams[si].trace_len = len(tl)
            cstreams[si].highest = -1
        n = len(groups)
        slots = 1 << max(4, (2 * n - 1).bit_length())
        entries = ffi.new("struct nr_ct_entry[]", n)
        bit = 0
        for ei, (data, (si, pos)) in enumerate(groups.items()):
            e = entries[ei]
            buf = ffi.from_buffer(data)
            parr = ffi.new("uint32_t[]", pos)
            self._keep.append((data, buf, parr))
            e.data = ffi.cast("const uint8_t *", buf)
            e.len = len(data)
            e.pos = parr
            e.npos = len(pos)
            e.stream = si
            L, count = cstreams[si].trace_len, cstreams[si].count
            full, rem = divmod(count, L)
            e.expected = full * len(pos) + sum(1 for p in pos if p < rem)
            e.bit0 = bit
            bit += e.expected
        if bit > _MAX_BITS:
            raise ConfigurationError(
                "counting %d frames by content needs a %d MiB seen-bitmap (at most %d frames, %d MiB): send fewer "
                "frames untouched, or stamp them (stamp: true is counted without a per-frame bitmap)"
                % (bit, bit // (8 << 20), _MAX_BITS, _MAX_BITS // (8 << 20)), field="streams", value=bit)
        self._entries, self._streams = entries, cstreams
        self._slots = ffi.new("uint32_t[]", slots)
        self._scratch = ffi.new("uint8_t[]", biggest + 4)
        self._bitmap = ffi.new("uint64_t[]", max(1, (bit + 63) // 64))
        c = self._c = ffi.new("struct nr_ct_checker *")
        c.entries, c.nentries, c.mask, c.slots = entries, n, slots - 1, self._slots
        c.streams, c.nstreams = cstreams, len(self._ids)
        c.scratch, c.scratch_len = self._scratch, biggest + 4
        c.bitmap = self._bitmap
        if fallback is not None:
            raw = getattr(fallback, "raw_checker", None)
            if not callable(raw):
                raise ConfigurationError("fallback must be a netring.check.SeqChecker, not %r"
                                         % (type(fallback).__name__,), field="fallback", value=type(fallback).__name__)
            c.fallback = raw()
        rc = lib.nr_ct_index(c)
        if rc == -errno.EEXIST or rc == -errno.EINVAL:  # not reached: groups are distinct, the table is 2x
            raise ConfigurationError("content table could not be built (%s)" % errno.errorcode[-rc], field="streams",
                                     value=n)
        self._total = sum(cstreams[i].count for i in range(len(self._ids)))

    @property
    def fallback(self):
        """The :class:`~netring.SeqChecker` that gets every frame not from a trace (None: those are dropped).
        Read-only: the C checker holds a pointer into it."""
        return self._fallback

    def feed(self, batch):
        """Count every frame of ``batch`` (a live TPACKET_V3 :class:`~netring.capture.PacketBatch`) in one C call.

        Returns the number of packets walked (outgoing ones included). An AF_XDP batch is refused
        with a :class:`ConfigurationError` (content counting reads TPACKET_V3 blocks).
        """
        raw_block = getattr(batch, "raw_block", None)
        if not callable(raw_block):
            raise ConfigurationError("ContentChecker.feed() takes a TPACKET_V3 PacketBatch from Capture.next_batch(), "
                                     "not %r; capture with netring.Capture (afpacket), or use feed_bytes()"
                                     % (type(batch).__name__,), field="batch", value=type(batch).__name__)
        with raw_block() as (ptr, size):
            return lib.nr_ct_check_block(self._c, ptr, size)

    def feed_bytes(self, frame):
        """Count one frame given as bytes-like (as it was on the wire, any VLAN tag in place)."""
        v = byte_view("frame", frame)
        if len(v) == 0:
            self._c.frames += 1
            if self._fallback is not None:
                self._fallback.feed_bytes(v)
            return
        lib.nr_ct_check_frame(self._c, ffi.from_buffer(v), len(v))

    def counts(self, stream_id):
        """:class:`~netring.check.StreamCounts` of ``stream_id``: a content-counted stream's, else the fallback's."""
        i = self._index.get(stream_id) if isinstance(stream_id, int) and not isinstance(stream_id, bool) else None
        if i is None:
            if self._fallback is not None:
                return self._fallback.counts(stream_id)
            raise ConfigurationError("stream %r is not one of the content-counted streams %s" % (stream_id, self._ids),
                                     field="stream_id", value=stream_id)
        st = self._streams[i]
        return StreamCounts(st.count, st.delivered, st.count - st.delivered, st.duplicated, st.reordered, 0)

    def counts_by_content(self, stream_id):
        """True if ``stream_id`` is counted here by content (False: by its stamp, in the fallback)."""
        return stream_id in self._index

    @property
    def streams(self):
        """The content-counted stream ids, sorted."""
        return list(self._ids)

    @property
    def done(self):
        """True once every expected frame of every content-counted stream (and of the fallback) was delivered."""
        mine = sum(self._streams[i].delivered for i in range(len(self._ids))) >= self._total
        if not mine or self._fallback is None:
            return mine
        return all(self._fallback.counts(sid).delivered >= self._fallback.counts(sid).expected
                   for sid in self._fallback.streams if sid not in self._index)

    @property
    def unexpected(self):
        """Frames that are no frame of these streams and that the fallback called unexpected."""
        if self._fallback is not None:
            return self._fallback.unexpected
        return self._c.frames - self._c.matched

    @property
    def unexpected_frames(self):
        """The fallback's copies of its first unexpected frames (none without a fallback)."""
        return self._fallback.unexpected_frames if self._fallback is not None else []

    @property
    def frames(self):
        """Frames examined (outgoing frames skipped by :meth:`feed` not included)."""
        return self._c.frames

    @property
    def matched(self):
        """Frames that were a frame of one of these streams (duplicates included)."""
        return self._c.matched

    def __repr__(self):
        return "<ContentChecker streams=%d contents=%d done=%s>" % (len(self._ids), self._c.nentries, self.done)
