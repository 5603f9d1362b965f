"""Which sender sends each stream of a scenario (``traffic[].via``), and the veth peer rule.

A stream goes out of one of these (:data:`SENDERS`):

- ``ring`` — an AF_PACKET TX ring (:class:`netring.Injector`): any device, any frame size;
- ``xdp`` — the kernel's live-frames generator (:class:`netring.XdpInjector`): frames are built and
  XDP_TX'd inside the kernel, several times faster than any socket sender;
- ``afxdp`` — an AF_XDP socket's TX ring (:class:`netring.XdpSocket`).

``auto`` (the default) is ``xdp`` where its preconditions hold and ``ring`` otherwise;
:func:`choose` returns the choice with the reason (``"xdp: live frames supported, peer pass
attached on rx:eth0"``, ``"ring: frame 9014 B exceeds the live-frames limit 3408 B"``), which the
result, the JSON report and the verdict table show. A stream that asks for ``via: xdp`` where a
precondition fails is a :class:`~netring.errors.ScenarioError` located at its ``via`` field,
naming the cause and the remedy. The preconditions, in the order they are checked:

1. the kernel runs XDP programs on live frames (5.18+; probed);
2. the source endpoint is a veth (a bridge device cannot transmit XDP frames);
3. every frame size fits one page of the live-frames page pool (probed, 3408 B on 6.18);
4. at most :data:`MAX_LIVE_TEMPLATES` frame sizes (one generator program each), and with
   ``order: strict`` one size only: with several templates the generator sends each chunk grouped
   by template, out of sequence order (see :mod:`netring.xdp_inject`);
5. the receiving veth end (the source's peer) runs no XDP program or a native one: a generic-mode
   program there receives none of the XDP_TX'd frames.

``auto`` keeps a stream counted by an AF_XDP capture on the ring: the generator redirects 4-5 M
frames/s into a copy-mode socket whose reader takes ~1 M/s here (a paced generator too: it sends
50 ms of frames at once), so a large share would be lost in the harness (measured: 4-13 % of 1M
64 B frames, 60 % at 1514 B; none from the ring). ``auto`` also wants at least :data:`MIN_LIVE_FRAMES` frames: every live-frames call pays a fixed
cost (its test runs tear down a page pool, ~20-30 ms on 6.18), so a short stream is sent sooner by
the TX ring (measured here: 10 000 frames in ~28 ms live, ~10 ms from the ring; 1M in ~0.28 s live,
~1 s from the ring).

**The veth peer rule.** A frame XDP_TX'd into a veth, or redirected into one in native mode, reaches
the other end only if that end runs an XDP program; otherwise the kernel drops it silently
(``tx_dropped`` on the sending end). So where the live-frames sender, or a built-in ``tx`` or
``redirect`` attached in native mode, sends into a veth end that has no program, the runner
attaches the built-in ``pass`` there for the run (:func:`plan_peer_passes`), records it in the
result (``"attached pass on rx:eth0 for the live-frames sender"``) and detaches it after. An
``xdp:`` entry with ``peer_pass: false`` opts out for its program; when frames then vanish this
way, :func:`vanish_hints` explains it in the verdict.
"""
import os

from netring.errors import ScenarioError

__all__ = ["SENDERS", "MAX_LIVE_TEMPLATES", "MIN_LIVE_FRAMES", "LIVE_SENDER", "Choice", "PeerPass", "template_problem", "choose",
           "plan_peer_passes", "vanish_hints", "open_sender"]

#: What a stream can be sent through (``traffic[].via`` without ``auto``).
SENDERS = ("ring", "xdp", "afxdp")
#: Frame sizes (generator programs, loaded per send call) the live-frames sender takes per stream.
MAX_LIVE_TEMPLATES = 16
#: Fewest frames for which ``auto`` picks the live-frames sender (see the module doc).
MIN_LIVE_FRAMES = 32768
#: How results name the live-frames sender.
LIVE_SENDER = "the live-frames sender"


class Choice:
    """The sender of one stream: ``via`` (``ring``/``xdp``/``afxdp``), ``reason`` (one line, starting
    with ``via``), ``receiver`` (the endpoint whose ``pass`` this choice needs, or None)."""

    __slots__ = ("via", "reason", "receiver")

    def __init__(self, via, reason, receiver=None):
        self.via = via
        self.reason = reason
        self.receiver = receiver

    def __repr__(self):
        return "Choice(%s)" % self.reason


class PeerPass:
    """A ``pass`` the runner attaches on ``at`` (an endpoint name) for the run, and ``purposes``:
    what needs it (``"the live-frames sender"``, ``"tx on b:eth0"``)."""

    __slots__ = ("at", "purposes")

    def __init__(self, at):
        self.at = at
        self.purposes = []

    def describe(self):
        """``attached pass on rx:eth0 for the live-frames sender and tx on b:eth0``."""
        return "attached pass on %s for %s" % (self.at, " and ".join(self.purposes))

    def as_dict(self):
        """JSON-ready: ``{"at": ..., "program": "pass", "for": [...]}``."""
        return {"at": self.at, "program": "pass", "for": list(self.purposes)}


def template_problem(sizes, order):
    """``(cause, remedy)`` when the live-frames sender cannot send frames of ``sizes`` with ``order``, else None.

    Pure: used at load time (``via: xdp`` is then a located error) and by :func:`choose`.
    """
    n = len(sizes)
    if n > MAX_LIVE_TEMPLATES:
        return ("%d frame sizes (the live-frames sender loads one generator program per size, at most %d)"
                % (n, MAX_LIVE_TEMPLATES), "give at most %d sizes, or via: ring" % MAX_LIVE_TEMPLATES)
    if n > 1 and order == "strict":
        return ("%d frame sizes with order: strict (the live-frames sender sends each chunk grouped by size, out "
                "of sequence order)" % n, "give one frame size, or expect order: any, or via: ring")
    return None


def _kernel_facts():
    """``(supported, largest frame)`` of live-frames test runs on this kernel (probed once)."""
    from netring import xdp_inject

    return xdp_inject.live_frames_supported(), xdp_inject.max_live_frame()


def _live_problem(stream, order, src, programs, facts):
    """``(cause, remedy)`` why ``stream`` cannot go out of the live-frames sender, else None.

    ``src``: the source :class:`~netring_testkit.topology.Endpoint`; ``programs``: endpoint name →
    mode of the XDP program attached there (``native``/``generic``), the scenario's own.
    """
    supported, limit = facts
    if not supported:
        return ("this kernel (%s) has no live-frames test runs (BPF_F_TEST_XDP_LIVE_FRAMES, Linux 5.18+)"
                % os.uname().release, "use via: ring (or auto) on this kernel")
    peer, kind = getattr(src, "peer", None), getattr(src, "kind", None)
    if kind != "veth":
        return ("%s is a %s, which cannot transmit XDP frames" % (src.name, kind or "device of unknown kind"),
                "send from a veth endpoint, or use via: ring")
    if peer is None:
        return ("the veth peer of %s is not an endpoint of this topology, so the runner can neither see nor attach "
                "the XDP program the generated frames need there" % src.name,
                "send from a veth whose both ends are in the topology, or use via: ring")
    big = max(stream.sizes)
    if big > limit:
        return ("frame %d B exceeds the live-frames limit %d B (one page of the kernel's page pool)" % (big, limit),
                "send frames of at most %d B, or use via: ring" % limit)
    bad = template_problem(stream.sizes, order)
    if bad is not None:
        return bad
    if programs.get(peer.name) == "generic":
        return ("%s runs its XDP program in generic mode, which receives no XDP_TX'd frames from the veth"
                % peer.name, "attach that program in mode: native, or use via: ring")
    return None


def choose(stream, order, src, programs, facts=None, capture_via="afpacket"):
    """The :class:`Choice` for ``stream`` (its ``via``: ring, xdp, auto or afxdp).

    ``order``: the stream's expected order (``strict``/``any``); ``src``: its source endpoint;
    ``programs``: endpoint name → obtained mode of the scenario's XDP programs; ``facts``:
    ``(live frames supported, largest live frame)`` (default: probed). Raises
    :class:`ScenarioError` at ``stream.where`` when ``via: xdp`` cannot be honoured. ``capture_via``:
    how the stream is counted (``afpacket``/``afxdp``; see :data:`MIN_LIVE_FRAMES` for ``auto``'s rules).
    """
    via = stream.via
    if stream.by_content:  # a trace sent untouched (stamp: false): the TX ring only
        if via in ("xdp", "afxdp"):
            raise ScenarioError("%s: stream %s cannot be sent via %s: its trace goes out untouched (stamp: false), "
                                "which only the TX ring sends; use via: ring or auto"
                                % (stream.where or "traffic[%d].via" % stream.stream_id, stream.name, via))
        return Choice("ring", "ring: %s (stamp: false: the trace untouched, counted by content)"
                      % ("asked for (via: ring)" if via == "ring" else "the only sender of untouched frames"))
    if stream.timing is not None and via in ("auto", "xdp"):
        if via == "xdp":
            raise ScenarioError("%s: stream %s cannot be sent via xdp with rate: pcap: each live-frames call costs "
                                "~25 ms, too coarse for the trace's own timing; use via: ring or auto"
                                % (stream.where or "traffic[%d].via" % stream.stream_id, stream.name))
        return Choice("ring", "ring: rate: pcap keeps the trace's own timing, sent in ~1 ms slots from the TX ring")
    if via in ("ring", "afxdp"):
        return Choice(via, "%s: asked for (via: %s)" % (via, via))
    problem = _live_problem(stream, order, src, programs, facts if facts is not None else _kernel_facts())
    if problem is not None:
        cause, remedy = problem
        if via == "xdp":
            raise ScenarioError("%s: stream %s cannot be sent via xdp: %s; %s"
                                % (stream.where or "traffic[%d].via" % stream.stream_id, stream.name, cause, remedy))
        return Choice("ring", "ring: %s" % cause)
    if via == "auto" and capture_via == "afxdp":
        return Choice("ring", "ring: captured via afxdp, and the live-frames generator's bursts (4-5 Mpps, paced ones "
                      "too) outrun a copy-mode AF_XDP socket")
    if via == "auto" and stream.count < MIN_LIVE_FRAMES:
        return Choice("ring", "ring: %d frames, fewer than the %d for which the live-frames sender's fixed cost per "
                      "call pays off" % (stream.count, MIN_LIVE_FRAMES))
    peer = src.peer.name
    head = "xdp: asked for (via: xdp)" if via == "xdp" else "xdp: live frames supported"
    if peer in programs:
        return Choice("xdp", "%s, %s runs an XDP program (native)" % (head, peer))
    return Choice("xdp", "%s, peer pass attached on %s" % (head, peer), receiver=peer)


def _receiving_end(x, topo):
    """The veth end that must run XDP for the frames of built-in ``x`` (tx/redirect), or None.

    ``tx`` sends back out of its own interface: the receiver is that veth's peer; ``redirect`` sends
    out of its target: the target veth's peer. Bridges and other devices: None (no such rule).
    """
    if not x.builtin or x.program not in ("tx", "redirect"):
        return None, None
    out = topo[x.options["target"]] if x.program == "redirect" else topo[x.attach]
    peer = getattr(out, "peer", None)
    if getattr(out, "kind", None) != "veth" or peer is None:
        return out, None
    return out, peer


def plan_peer_passes(scenario, topo, programs, choices):
    """The ``pass`` programs the run needs (list of :class:`PeerPass`) and the receiving ends left without one.

    ``programs``: endpoint name → obtained mode of the scenario's XDP programs; ``choices``:
    stream name → :class:`Choice`. A native ``tx``/``redirect`` whose receiving veth end runs no
    program gets ``pass`` there unless its entry says ``peer_pass: false``; so does the receiving
    end of every stream sent via xdp (:attr:`Choice.receiver`). Returns ``(passes, bare)`` where
    ``bare`` lists ``(xdp entry index, sending end, receiving end, why)`` for native tx/redirect whose
    frames will vanish: opted out (``why="opted out"``) or a generic program there (``"generic"``).
    """
    passes, bare = {}, []
    for i, x in enumerate(scenario.xdp):
        if programs.get(x.attach) != "native":
            continue  # generic tx/redirect go through the skb path: no peer program needed
        out, peer = _receiving_end(x, topo)
        if peer is None:
            continue
        mode = programs.get(peer.name)
        if mode == "native":
            continue
        if mode == "generic":
            bare.append((i, out.name, peer.name, "generic"))
        elif not x.peer_pass:
            bare.append((i, out.name, peer.name, "opted out"))
        else:
            passes.setdefault(peer.name, PeerPass(peer.name)).purposes.append("%s on %s" % (x.program, x.attach))
    for st in scenario.streams:
        ch = choices[st.name]
        if ch.receiver is not None:
            pp = passes.setdefault(ch.receiver, PeerPass(ch.receiver))
            if LIVE_SENDER not in pp.purposes:
                pp.purposes.insert(0, LIVE_SENDER)
    # An end that gets pass for another program (or the live-frames sender) receives these frames too.
    bare = [b for b in bare if b[2] not in passes]
    return list(passes.values()), bare


def vanish_hints(scenario, bare, interfaces):
    """Verdict lines for the ``bare`` receiving ends (see :func:`plan_peer_passes`) where frames vanished.

    ``interfaces``: endpoint → counter deltas of the run. A line is given only where the sending
    end's ``tx_dropped`` grew: it names the rule, the count and the remedy.
    """
    out = []
    for i, sending, receiving, why in bare:
        x = scenario.xdp[i]
        dropped = (interfaces.get(sending) or {}).get("tx_dropped", 0)
        if dropped <= 0:
            continue
        if why == "opted out":
            remedy = ("xdp[%d] (%s on %s) says peer_pass: false, so the runner attached no pass there; remove "
                      "peer_pass: false, or attach a native program on %s yourself" % (i, x.program, x.attach, receiving))
        else:
            remedy = "the program on %s runs in generic mode; attach it with mode: native" % receiving
        out.append("%d frames vanished at %s (tx_dropped): a frame XDP_TX'd or redirected into a veth in native mode "
                   "reaches the other end only if that end (%s) runs a native XDP program; %s"
                   % (dropped, sending, receiving, remedy))
    return out


def open_sender(stack, ep, via, frame_size):
    """Open the ``via`` sender on endpoint ``ep`` (closed when ``stack`` unwinds) for frames up to ``frame_size``.

    ``ring``: the endpoint's :class:`netring.Injector` (TX ring of up to 8 MiB); ``xdp``: a
    :class:`netring.XdpInjector` (its veth-peer check on: the runner has attached ``pass`` first);
    ``afxdp``: a :class:`netring.XdpSocket` (its TX ring; no program attached). All have ``send_stream``
    with one signature.
    """
    if via == "xdp":
        import netring

        from .xdpattach import endpoint_errors

        with endpoint_errors(ep.name):
            return stack.enter_context(netring.XdpInjector(ep.ifname, netns=ep.netns))
    if via == "afxdp":
        import netring

        from .xdpattach import endpoint_errors

        # attach=None: a sender needs no program steering the endpoint's own receive queue to it
        with endpoint_errors(ep.name):
            return stack.enter_context(netring.XdpSocket(ep.ifname, netns=ep.netns, attach=None, frame_size=4096))
    return stack.enter_context(ep.injector(frame_size=frame_size, frame_count=max(64, min(1024, (8 << 20) // frame_size))))
