"""Every frame a capture saw, with the checker's verdict on each: ``--netring-artifacts-all``.

With ``--netring-artifacts DIR --netring-artifacts-all`` a failed scenario's pcapng holds every
frame each capture saw (up to :data:`MAX_FRAMES` per capture; the rest is counted), not only the
first and last ones, and each packet's comment says what the checker made of it, replaying its
rules in arrival order: ``delivered``, ``duplicate``, ``reordered`` (it arrived after a higher
sequence number), ``corrupted`` (the check failed) or ``unexpected`` (no stamp, an unknown stream,
or a sequence number beyond the stream's count).

Keeping every frame costs a copy per frame in Python while the scenario runs, so it is off
unless asked for.
"""
import socket

from netring import stamp as _stamp

__all__ = ["AllFrames", "classify", "MAX_FRAMES"]

#: Frames kept per capture; beyond it they are only counted (``AllFrames.dropped``).
MAX_FRAMES = 1_000_000


class AllFrames:
    """A capture's frames in arrival order (its own outgoing frames left out), fed one batch at a time
    after the checker — the same interface as the runner's first/last sampler."""

    def __init__(self, limit=MAX_FRAMES):
        self.limit = limit
        self.kept = []
        #: Frames seen beyond ``limit`` (not kept).
        self.dropped = 0

    def feed(self, batch):
        """Copy every incoming frame of ``batch`` (a live PacketBatch)."""
        arr, got = batch.descriptors()
        if not got:
            return
        block, out = batch.block, socket.PACKET_OUTGOING
        for i in range(got):
            p = arr[i]
            if p.pkttype == out:
                continue
            if len(self.kept) >= self.limit:
                self.dropped += 1
                continue
            self.kept.append((int(p.ts_ns), bytes(block[p.off:p.off + p.snaplen])))

    def frames(self):
        """``[(timestamp_ns, bytes), ...]`` in arrival order."""
        return list(self.kept)


def classify(frames, streams):
    """The checker's verdict on each of ``frames`` (bytes, in arrival order), as comment strings.

    ``streams``: ``{stream_id: (name, count)}``. The rules are the C checker's
    (``netring/csrc/stampc.c``): no stamp or an unknown stream → unexpected; a failed check →
    corrupted; a sequence number beyond the count → unexpected; seen before → duplicate; else
    delivered, and reordered when a higher sequence number of its stream arrived first.
    """
    seen = {sid: set() for sid in streams}
    highest = {sid: -1 for sid in streams}
    out = []
    for fr in frames:
        try:
            st = _stamp.read(fr)
        except (ValueError, IndexError):
            st = None
        if st is None or st.stream_id not in streams:
            out.append("unexpected (%s)" % ("no stamp" if st is None else "unknown stream %d" % st.stream_id))
            continue
        name, count = streams[st.stream_id]
        what = "stream %s seq %d" % (name, st.seq)
        if not st.ok:
            out.append("corrupted: %s (the payload check failed)" % what)
        elif st.seq >= count:
            out.append("unexpected: %s is beyond the stream's count %d" % (what, count))
        elif st.seq in seen[st.stream_id]:
            out.append("duplicate: %s" % what)
        else:
            seen[st.stream_id].add(st.seq)
            if st.seq < highest[st.stream_id]:
                out.append("reordered: %s (after seq %d)" % (what, highest[st.stream_id]))
            else:
                highest[st.stream_id] = st.seq
                out.append("delivered: %s" % what)
    return out
