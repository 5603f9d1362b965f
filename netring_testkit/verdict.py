"""Scenario results and verdicts: what was measured, whether it met the expectations, and the message.

The engine (:mod:`netring_testkit.runner`) fills a :class:`ScenarioResult`; :func:`evaluate`
compares it with the scenario's ``expect:`` section and returns the list of failed checks;
:meth:`ScenarioResult.render` produces the failure message — a small table per stream
(expected vs delivered/lost/duplicated/reordered/corrupted), the XDP and interface counters,
and the first few unexpected frames decoded — enough to act on without rerunning.
"""
import collections
import time

from . import frames as _frames
from . import impair as _impair

__all__ = ["StreamResult", "ScenarioResult", "SentFrame", "evaluate", "decode_frame", "DROP_ACTIONS"]

#: A frame of a stream's sample as it was sent: ``stream`` (name), ``at`` (the sending endpoint),
#: ``seq``, ``timestamp_ns`` (wall clock, approximate: when its stream started or finished) and ``data``.
SentFrame = collections.namedtuple("SentFrame", "stream at seq timestamp_ns data")

#: XDP actions that prove a drop when counted by the program.
DROP_ACTIONS = ("drop", "aborted")
_UNEXPECTED_SHOWN = 5


class StreamResult:
    """Measured counts of one stream at the capture where it is expected.

    ``expected`` is the number of frames the stream should inject (its ``count``), ``sent`` the
    number the injector actually queued; ``delivered`` (distinct sequence numbers seen), ``lost``
    (``expected - delivered``), ``duplicated``, ``reordered``, ``corrupted`` come from the C checker.
    ``via`` is the sender the stream went out of (``ring``, ``xdp``, ``afxdp``) and ``via_reason`` why
    (:func:`netring_testkit.senders.choose`). ``counted_by``: ``stamp`` (the C sequence checker read each
    frame's stamp) or ``content`` (a trace sent untouched, ``stamp: false``, matched by its exact bytes:
    :class:`netring.content.ContentChecker` — ``corrupted`` is then always 0, a changed frame is unexpected).
    """

    FIELDS = ("expected", "sent", "delivered", "lost", "duplicated", "reordered", "corrupted")

    def __init__(self, name, stream_id, at, expected, sent=0, delivered=0, lost=None, duplicated=0,
                 reordered=0, corrupted=0, via=None, via_reason=None, counted_by="stamp"):
        self.name = name
        self.counted_by = counted_by
        self.via = via
        self.via_reason = via_reason
        self.stream_id = stream_id
        self.at = at
        self.expected = expected
        self.sent = sent
        self.delivered = delivered
        self.lost = expected - delivered if lost is None else lost
        self.duplicated = duplicated
        self.reordered = reordered
        self.corrupted = corrupted

    def as_dict(self):
        """JSON-ready counts."""
        d = {"name": self.name, "stream_id": self.stream_id, "at": self.at}
        d.update((f, getattr(self, f)) for f in self.FIELDS)
        d["via"], d["via_reason"] = self.via, self.via_reason
        d["counted_by"] = self.counted_by
        return d


class ScenarioResult:
    """Everything measured while running one scenario, plus its status.

    ``status`` is ``"passed"``, ``"failed"`` (an expectation was not met; see ``failures``),
    ``"error"`` (the run itself failed; see ``error``) or ``"skipped"``. Counters:
    ``xdp`` (endpoint → action → packets), ``interfaces`` (endpoint → counter → delta over
    the run), ``unexpected`` (capture endpoint → count) and ``unexpected_frames`` (capture
    endpoint → list of bytes), ``duration`` (whole run, s), ``tx_seconds`` (injection),
    ``pps`` (frames sent / injection time).
    """

    def __init__(self, scenario):
        self.scenario = scenario
        self.status = "error"
        self.streams = []
        self.xdp = {}
        self.interfaces = {}
        self.unexpected = {}
        self.unexpected_frames = {}
        self.captures = {}
        #: One record per attached XDP program, in ``xdp:`` order: ``{"at", "program", "requested", "obtained"}``
        #: (the mode asked for — native, generic or auto — and the one the attachment got).
        self.xdp_attachments = []
        #: The ``pass`` programs the runner attached for the veth peer rule
        #: (:class:`netring_testkit.senders.PeerPass`: where, and for what).
        self.peer_passes = []
        #: Explanations of a failure the counters point to (e.g. frames that vanished at a veth).
        self.hints = []
        #: How each capture counted: endpoint → ``afpacket (TPACKET_V3)`` / ``afxdp (queue 0, copy)``.
        self.capture_paths = {}
        #: ``expect.maps`` values read from user programs' maps: endpoint → map → key → value.
        self.maps = {}
        self.failures = []
        self.error = None
        self.duration = 0.0
        self.tx_seconds = 0.0
        self.started = time.time()
        self.artifacts = []
        #: Namespaces left in place for debugging (``--netring-keep`` and a failure).
        self.kept = []
        self.kept_hint = ""
        #: Why a ``"skipped"`` run did not run (a ``requires`` the built topology cannot meet).
        self.skip_reason = None
        #: The formatted traceback of an ``"error"`` run (kept for the JSON artifact, not rendered).
        self.traceback = None
        #: With artifacts: the first and last frames each stream sent (:class:`SentFrame` list) ...
        self.sent_samples = []
        #: ... and capture endpoint → ``[(timestamp_ns, bytes), ...]``, the first and last frames it saw.
        self.arrived_samples = {}
        #: True when ``arrived_samples`` holds every frame the captures saw (``--netring-artifacts-all``).
        self.arrived_all = False
        #: Impaired links (``impair:``): link name → the bridge's settings and counters per direction
        #: (:meth:`netring_testkit.impair.ImpairedLink.report`), shown beside the checker's counts.
        self.links = {}

    @property
    def passed(self):
        """True when the scenario ran and met every expectation."""
        return self.status == "passed"

    @property
    def sent(self):
        """Frames queued by all streams."""
        return sum(s.sent for s in self.streams)

    @property
    def pps(self):
        """Frames per second achieved by the injection (0 when nothing was sent)."""
        return self.sent / self.tx_seconds if self.tx_seconds > 0 else 0.0

    @property
    def loss(self):
        """Fraction of sent frames not delivered, over streams expected to deliver everything."""
        exp = sum(s.expected for s in self.streams if not self._expects_none(s))
        lost = sum(s.lost for s in self.streams if not self._expects_none(s))
        return lost / exp if exp else 0.0

    def _expects_none(self, s):
        ex = self.scenario.expect.get(s.name)
        return ex is not None and ex.delivered.is_none

    def as_dict(self):
        """The JSON record written by ``--netring-report`` and the artifacts."""
        sc = self.scenario
        return {
            "id": sc.id, "name": sc.name, "file": sc.file, "line": sc.line, "params": sc.params,
            "status": self.status, "failures": list(self.failures), "error": self.error,
            "duration_s": round(self.duration, 4), "tx_seconds": round(self.tx_seconds, 4),
            "sent": self.sent, "pps": round(self.pps, 1), "loss": self.loss,
            "streams": [s.as_dict() for s in self.streams],
            "xdp_attachments": [dict(a) for a in self.xdp_attachments],
            "peer_passes": [p.as_dict() for p in self.peer_passes],
            "capture_paths": dict(self.capture_paths), "hints": list(self.hints),
            "xdp": self.xdp, "interfaces": self.interfaces, "captures": self.captures,
            "maps": {ep: {m: {str(k): v for k, v in keys.items()} for m, keys in maps.items()}
                     for ep, maps in self.maps.items()},
            "unexpected": self.unexpected, "links": self.links,
            "artifacts": list(self.artifacts), "kept": list(self.kept),
            "skip_reason": self.skip_reason, "traceback": self.traceback,
        }

    def render(self):
        """The human-readable verdict (used as the pytest failure message)."""
        sc = self.scenario
        lines = ["scenario %s (%s:%s) %s" % (sc.id, sc.file, sc.line, self.status.upper())]
        if sc.description:
            lines.append("  " + sc.description)
        if self.error:
            lines.append("error: %s" % self.error)
        if self.skip_reason:
            lines.append("skipped: %s" % self.skip_reason)
        for f in self.failures:
            lines.append("FAIL: %s" % f)
        for h in self.hints:
            lines.append("hint: %s" % h)
        if self.streams:
            lines.append("")
            head = ("stream", "at", "expected", "sent", "delivered", "lost", "dup", "reorder", "corrupt", "want", "via")
            rows = [head]
            for s in self.streams:
                ex = sc.expect.get(s.name)
                want = ex.delivered.describe(s.expected) if ex else ""
                rows.append((s.name, s.at or "-", s.expected, s.sent, s.delivered, s.lost, s.duplicated,
                             s.reordered, s.corrupted, want, s.via or "-"))
            lines.extend(_table(rows, text=(9,)))
            reasons = [(s.name, s.via_reason) for s in self.streams if s.via_reason]
            if reasons:
                lines.append("senders:")
                lines.extend("  %s: %s" % r for r in reasons)
            by_content = [s.name for s in self.streams if s.counted_by == "content"]
            if by_content:
                lines.append("counted by exact content (stamp: false; a changed frame is unexpected, not corrupt): %s"
                             % ", ".join(by_content))
        lines.extend(_impair.render(self.links))
        if self.capture_paths:
            lines.append("captures: %s" % ", ".join("%s via %s" % kv for kv in self.capture_paths.items()))
        for p in self.peer_passes:
            lines.append(p.describe())
        if self.xdp_attachments:
            lines.append("")
            lines.append("XDP programs:")
            rows = [("at", "program", "mode", "obtained")]
            rows += [(a["at"], a["program"], a["requested"], a["obtained"]) for a in self.xdp_attachments]
            lines.extend(_table(rows, left=4))
        if self.xdp:
            if not self.xdp_attachments:
                lines.append("")
            lines.append("XDP counters (packets):")
            for ep, counters in self.xdp.items():
                lines.append("  %s: %s" % (ep, ", ".join("%s=%s" % (k, v) for k, v in counters.items())))
        if sc.expect_maps:
            lines.append("")
            lines.append("BPF map values (expect.maps):")
            total = sc.total_frames
            rows = [("at", "map", "key", "value", "check", "want")]
            for ep, maps in sc.expect_maps.items():
                for name, keys in maps.items():
                    for key, expr in keys.items():
                        got = self.maps.get(ep, {}).get(name, {}).get(key)
                        check = "-" if got is None else ("ok" if expr.check(got, total) else "FAIL")
                        rows.append((ep, name, key, "-" if got is None else got, check, expr.describe(total)))
            lines.extend(_table(rows))
        if self.interfaces:
            lines.append("interface counters (delta over the run):")
            for ep, counters in self.interfaces.items():
                keys = [k for k in ("rx_packets", "tx_packets", "rx_dropped", "tx_dropped", "rx_errors",
                                    "tx_errors") if k in counters]
                keys += [k for k in sorted(counters) if k not in keys and counters[k]]
                lines.append("  %s: %s" % (ep, ", ".join("%s=%s" % (k, counters[k]) for k in keys)))
        drops = {ep: c for ep, c in self.captures.items() if c.get("drops")}
        for ep, c in drops.items():
            if "rx_ring_full" in c:   # an AF_XDP capture
                lines.append("capture %s: the kernel could not place %d frames in the AF_XDP socket (fill ring empty "
                             "%d, RX ring full %d) — they never reached the checker, so this loss is the harness's; "
                             "give the socket more UMEM frames and ring entries (capture: [{on: %s, via: afxdp, "
                             "frame_count: ..., ring_size: ...}]) or a lower rate"
                             % (ep, c["drops"], c.get("rx_fill_ring_empty_descs", 0), c["rx_ring_full"], ep))
                continue
            lines.append("capture %s: the kernel dropped %d frames because the capture ring was full — they never "
                         "reached the checker, so this loss is the harness's; give the capture a bigger ring "
                         "(capture: [{on: %s, block_size: ..., block_count: ...}]) or a lower rate"
                         % (ep, c["drops"], ep))
        shown = 0
        for ep, frames in self.unexpected_frames.items():
            if not frames and not self.unexpected.get(ep):
                continue
            lines.append("unexpected frames at %s: %d (first %d):" % (ep, self.unexpected.get(ep, len(frames)),
                                                                     min(len(frames), _UNEXPECTED_SHOWN)))
            for fr in frames[:_UNEXPECTED_SHOWN]:
                lines.append("  " + decode_frame(fr))
                shown += 1
        if self.artifacts:
            lines.append("artifacts: %s" % ", ".join(self.artifacts))
        if self.kept:   # how to enter them (and see their XDP programs): kept_hint, printed once at the end
            lines.append("namespaces kept for debugging: %s (how to enter them: at the end of the run)"
                         % " ".join(self.kept))
        lines.append("duration %.2fs, injected %d frames at %.0f pps" % (self.duration, self.sent, self.pps))
        return "\n".join(lines)


def _table(rows, left=2, text=()):
    """Rows as aligned text: the first ``left`` columns, those in ``text`` and the last flush left, numbers
    between flush right."""
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    out = []
    for n, r in enumerate(rows):
        cells = [str(c).ljust(w) if i < left or i in text or i == len(r) - 1 else str(c).rjust(w)
                 for i, (c, w) in enumerate(zip(r, widths))]
        out.append("  " + "  ".join(cells).rstrip())
        if n == 0:
            out.append("  " + "  ".join("-" * w for w in widths))
    return out


def decode_frame(frame):
    """One line describing ``frame``'s headers and stamp (:func:`netring_testkit.frames.decode`)."""
    return _frames.decode(bytes(frame))


def evaluate(scenario, result):
    """Compare ``result`` with ``scenario``'s expectations; return the list of failed checks (strings)."""
    failures = []
    total = scenario.total_frames
    by_name = {s.name: s for s in result.streams}
    for st in scenario.streams:
        ex = scenario.expect[st.name]
        r = by_name.get(st.name)
        if r is None:
            failures.append("stream %s: no result" % st.name)
            continue
        if r.sent != r.expected:
            why = ""
            if st.timing is not None:
                why = ("; rate: pcap replays the trace's own timing, which needs %.3f s for %d frames, and the "
                       "scenario's timeout (%g s) ended the run first" % (st.timing.duration_s(st.count), st.count,
                                                                          scenario.timeout))
            failures.append("stream %s: only %d of %d frames were injected%s" % (st.name, r.sent, r.expected, why))
        if not ex.delivered.check(r.delivered, r.expected):
            failures.append("stream %s: delivered %d at %s, expected %s"
                            % (st.name, r.delivered, r.at, ex.delivered.describe(r.expected)))
        if ex.order == "strict" and r.reordered:
            failures.append("stream %s: %d frames arrived out of order (order: strict)" % (st.name, r.reordered))
        if ex.order == "strict" and r.duplicated:
            failures.append("stream %s: %d duplicated frames (order: strict)" % (st.name, r.duplicated))
        if ex.payload == "intact" and r.corrupted:
            failures.append("stream %s: %d frames with a corrupted payload or stamp (payload: intact)"
                            % (st.name, r.corrupted))
    for ep, exprs in scenario.expect_xdp.items():
        have = result.xdp.get(ep)
        if have is None:
            failures.append("xdp %s: no counters were read (the program keeps none?)" % ep)
            continue
        for action, expr in exprs.items():
            got = have.get(action, 0)
            if not expr.check(got, total):
                failures.append("xdp %s: %s counted %d, expected %s" % (ep, action, got, expr.describe(total)))
    for ep, maps in scenario.expect_maps.items():
        for name, keys in maps.items():
            have = result.maps.get(ep, {}).get(name, {})
            for key, expr in keys.items():
                if key not in have:
                    failures.append("map %s %s[%d]: not read" % (ep, name, key))
                elif not expr.check(have[key], total):
                    failures.append("map %s %s[%d]: value %d, expected %s"
                                    % (ep, name, key, have[key], expr.describe(total)))
    for ep, exprs in scenario.expect_interface.items():
        have = result.interfaces.get(ep, {})
        for counter, expr in exprs.items():
            if counter not in have:
                failures.append("interface %s: no counter %r (known: %s)" % (ep, counter, ", ".join(sorted(have))))
                continue
            if not expr.check(have[counter], total):
                failures.append("interface %s: %s changed by %d, expected %s"
                                % (ep, counter, have[counter], expr.describe(total)))
    if scenario.expect_unexpected is not None:
        n = sum(result.unexpected.values())
        if not scenario.expect_unexpected.check(n, total):
            what = "no stamp, unknown stream or sequence"
            if any(st.by_content for st in scenario.streams):
                what = "neither a frame of a trace counted by content nor a known stamp"
            failures.append("%d unexpected frames (%s), expected %s"
                            % (n, what, scenario.expect_unexpected.describe(total)))
    failures.extend(_drop_proof(scenario, result))
    return failures


def _drop_proof(scenario, result):
    """A stream expected to vanish at an XDP program must be counted by it and seen by the interface."""
    out = []
    dropping = {x.attach: x for x in scenario.xdp}
    for st in scenario.streams:
        ex = scenario.expect[st.name]
        if not ex.delivered.is_none or st.dst not in dropping:
            continue
        x = dropping[st.dst]
        if x.builtin and x.program not in ("drop", "aborted", "filter"):
            continue
        need = sum(s.count for s in scenario.streams
                   if s.dst == st.dst and scenario.expect[s.name].delivered.is_none)
        counters = result.xdp.get(st.dst)
        if counters is not None:
            got = sum(counters.get(a, 0) for a in DROP_ACTIONS)
            if got < need:
                out.append("drop not proven: the XDP program on %s counted %d drop/aborted, expected >= %d"
                           % (st.dst, got, need))
        ifc = result.interfaces.get(st.dst)
        if ifc is not None and "rx_packets" in ifc and ifc["rx_packets"] < need:
            out.append("drop not proven: %s rx_packets grew by %d, fewer than the %d frames that should have "
                       "reached it" % (st.dst, ifc["rx_packets"], need))
    # dedupe (several streams to one endpoint produce the same line)
    seen, uniq = set(), []
    for line in out:
        if line not in seen:
            seen.add(line)
            uniq.append(line)
    return uniq
