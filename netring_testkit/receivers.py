"""The capture paths of a scenario (``capture[].via``): a TPACKET_V3 ring or an AF_XDP socket, fed to the C checker.

The engine's drain loop treats both alike through :class:`PacketReceiver` and :class:`XskReceiver`:
``step(checker, sampler, timeout)`` waits up to ``timeout`` for frames and feeds what came to the
:class:`netring.check.SeqChecker` in C (one call per retired block, or per up to 256 AF_XDP
descriptors — no Python object per frame), ``fileno()`` for the drain loop's poll when there are
several captures, ``counters()`` for the result, ``path`` for the verdict ("afpacket (TPACKET_V3)",
"afxdp (queue 0, copy mode)").

``via: afxdp`` opens a :class:`netring.XdpSocket` on the endpoint's ``queue`` (default 0) that
attaches the built-in ``xsk`` program there (steering every frame of that queue into the socket,
detached when the socket closes). Its UMEM defaults to :data:`AFXDP_DEFAULTS`: 32768 frames of
4096 B (128 MiB, half of them receiving) and rings of 16384 entries. With the 2048 receive frames of
XdpSocket's own default, a burst from a TX ring at ~1 Mpps emptied the fill ring while the checking
thread waited for a CPU (measured here: 23 % of 1M frames lost; none with the larger sizes). Frames the kernel could not place
(fill ring empty, RX ring full) are the harness's loss and reported as the capture's ``drops``.
"""
__all__ = ["PacketReceiver", "XskReceiver", "open_capture", "AFXDP_DEFAULTS"]

#: UMEM and ring sizes of an AF_XDP capture unless its entry gives ``frame_count`` / ``ring_size``.
AFXDP_DEFAULTS = {"frame_count": 32768, "ring_size": 16384}


class PacketReceiver:
    """A TPACKET_V3 capture (:class:`netring.Capture`) as the drain loop uses it."""

    via = "afpacket"
    path = "afpacket (TPACKET_V3)"

    def __init__(self, capture):
        self.capture = capture

    def fileno(self):
        """The capture's fd (readable when a block is retired)."""
        return self.capture.fileno()

    def step(self, checker, sampler, timeout):
        """Feed the next retired block (waiting up to ``timeout`` s) to ``checker`` (and ``sampler``); True if one came."""
        batch = self.capture.next_batch(timeout=timeout)
        if batch is None:
            return False
        with batch:
            checker.feed(batch)
            if sampler is not None:
                sampler.feed(batch)
        return True

    def counters(self):
        """``{"packets", "drops", "freezes"}`` from the ring's cumulative statistics."""
        cs = self.capture.cumulative_stats()
        return {"packets": int(cs.packets), "drops": int(cs.drops), "freezes": int(cs.freezes)}


class XskReceiver:
    """An AF_XDP capture (:class:`netring.XdpSocket`) as the drain loop uses it."""

    via = "afxdp"

    def __init__(self, xsk):
        self.xsk = xsk
        att = xsk.attachment
        self.path = "afxdp (queue %d, %s mode, xsk program %s)" % (xsk.queue, xsk.mode,
                                                                   att.mode if att is not None else "none")

    def fileno(self):
        """The socket's fd (readable when the RX ring has frames)."""
        return self.xsk.fileno()

    def step(self, checker, sampler, timeout):
        """Feed what the RX ring holds (waiting up to ``timeout`` s for the first) to ``checker``; True if any came.

        ``sampler`` is not fed: the artifacts' arrival sample reads TPACKET_V3 blocks only.
        """
        before = self.xsk.rx_packets
        self.xsk.drain(checker, timeout=timeout, quiet=0)
        return self.xsk.rx_packets != before

    def counters(self):
        """``{"packets", "drops", ...}``: frames taken from the RX ring, frames the kernel could not place
        (``rx_dropped``, which counts an empty fill ring too, plus ``rx_ring_full``), and every XDP_STATISTICS field."""
        st = self.xsk.stats()
        out = {"packets": int(self.xsk.rx_packets), "drops": int(st.rx_dropped + st.rx_ring_full)}
        out.update((k, int(v)) for k, v in st._asdict().items())
        return out

    @property
    def program_mode(self):
        """The mode of the xsk program the socket attached (``native``/``generic``)."""
        att = self.xsk.attachment
        return att.mode if att is not None else None


def open_capture(stack, ep, spec, options):
    """Open the capture ``spec`` (a :class:`~netring_testkit.scenario.CaptureSpec`) on endpoint ``ep``; it
    closes when ``stack`` unwinds. ``options``: the ring geometry for afpacket (see the runner). Returns a
    :class:`PacketReceiver` or :class:`XskReceiver`."""
    if spec.via == "afxdp":
        import netring

        from .xdpattach import endpoint_errors

        kw = dict(AFXDP_DEFAULTS)
        kw.update((k, v) for k, v in spec.options.items() if k in ("frame_count", "ring_size"))
        with endpoint_errors(ep.name):
            xsk = stack.enter_context(netring.XdpSocket(ep.ifname, netns=ep.netns, queue=spec.options.get("queue", 0),
                                                        frame_size=4096, **kw))
        return XskReceiver(xsk)
    return PacketReceiver(stack.enter_context(ep.capture(**options)))
