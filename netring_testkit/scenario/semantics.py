"""Semantic checks the JSON Schema cannot express, and the :class:`~.model.Scenario` they build.

Run on one expanded, schema-valid scenario mapping, one YAML section at a time: the topology
(nodes, links, bridges — the rules of :mod:`netring_testkit.topospec`), ``xdp`` (endpoints,
redirect targets, filter rules, ELF object and program names), ``traffic`` (endpoints exist
and are connected by links, bridges or XDP redirects; one L3 and one L4 header; frame sizes
fit the headers, the 20-byte stamp and the link MTU), ``capture``, ``expect`` (``expect.xdp``
only on built-ins, ``expect.maps`` against the maps the ELF object declares) and the timeouts. Every problem is located (the document knows the line of each field path) and
all of them are reported together.
"""
import copy
import difflib
import os
import re

from .. import replay, topospec
from ..senders import template_problem
from .elf import (ARRAY_MAP_TYPES, FRAGS_SECTIONS, bpf_object_maps, bpf_object_programs, bpf_object_sections,
                  map_type_name)
from .matrix import scenario_id
from .model import (DEFAULT_COUNT, DEFAULT_QUIET, DEFAULT_TIMEOUT, VIAS, CaptureSpec, Scenario, Stream, StreamExpect,
                    XdpSpec)
from .values import STAMP_LEN, CountExpr, frame_sizes, min_frame_size, parse_count, parse_duration, parse_rate

__all__ = ["build_scenario", "AFXDP_OPTIONS", "AFXDP_FRAME", "AFXDP_RX_FRAME"]

#: Options of a ``capture`` entry with ``via: afxdp``.
AFXDP_OPTIONS = ("queue", "frame_count", "ring_size")
#: The UMEM frame size the engine's AF_XDP sockets use (the largest frame an afxdp sender sends).
AFXDP_FRAME = 4096
#: The largest frame an AF_XDP capture receives whole: a UMEM frame less XDP_PACKET_HEADROOM (copy mode).
AFXDP_RX_FRAME = AFXDP_FRAME - 256


def build_scenario(doc, spec, base, params, problems):
    """Check the expanded, schema-valid scenario ``spec`` (at field path ``base`` of ``doc``) and build it.

    Appends every located problem to ``problems``; the returned :class:`~.model.Scenario` is
    meaningful only when none were added. ``params`` is the matrix combination.
    """
    return _Builder(doc, spec, base, params, problems).build()


def _endpoint_node(ep):
    return ep.split(":", 1)[0]


def _connected(adj, a, b):
    seen = {a}
    todo = [a]
    while todo:
        x = todo.pop()
        if x == b:
            return True
        for y in adj.get(x, ()):
            if y not in seen:
                seen.add(y)
                todo.append(y)
    return False


def _did_you_mean(word, choices):
    close = difflib.get_close_matches(word, list(choices), n=1)
    return " (did you mean %r?)" % close[0] if close else ""


class _Builder:
    """Checks one expanded scenario (already schema-valid) and builds its :class:`Scenario`, section by section."""

    def __init__(self, doc, spec, base, params, problems):
        self.doc = doc
        self.s = spec
        self.base = base  # ("scenarios", i)
        self.params = params
        self.problems = problems
        self.endpoints = {}   # endpoint -> MTU
        self.adjacency = {}   # endpoint -> endpoints it reaches at once (link, bridge, redirect)
        self.attached = {}    # endpoint -> index of its xdp entry
        self.xdp_specs = {}   # endpoint -> its XdpSpec
        self.object_maps = {}  # object path -> {map name: MapDef}, or the reason they cannot be read
        self.names = {}       # stream name -> index in traffic
        self.cap_on = {}      # captured endpoint -> index in captures
        self.veth_peer = {}   # veth endpoint -> the other end of its link

    def err(self, rel, message):
        self.problems.append(self.doc.problem(self.base + tuple(rel), message))

    def build(self):
        s = self.s
        self._topology(s["topology"])
        # Filter rules may name a stream (`match: {stream: main}`): its id is its position in `traffic`.
        self.stream_ids = {}
        for ti, t in enumerate(s["traffic"]):
            self.stream_ids.setdefault(t.get("name", "s%d" % ti), ti)
        xdp = self._xdp(s.get("xdp") or [])
        streams = self._traffic(s["traffic"])
        captures = self._captures(s, streams)
        ex = s.get("expect") or {}
        expect = self._expect_streams(ex, streams, captures)
        self._check_live_order(streams, expect)
        self._check_content_captures(streams, expect, captures)
        expect_xdp, expect_if, unexpected = self._expect_counters(ex)
        expect_maps = self._expect_maps(ex)
        timeout, quiet = self._timeouts()
        self._check_schedules(streams, timeout)
        line, _ = self.doc.where(self.base)
        return Scenario(
            name=s["name"], id=scenario_id(s["name"], self.params), params=dict(self.params),
            file=self.doc.filename, line=line, description=s.get("description", ""),
            markers=list(s.get("markers") or []), requires=dict(s.get("requires") or {}),
            topology=s["topology"], xdp=xdp, streams=streams, captures=captures, expect=expect,
            expect_xdp=expect_xdp, expect_interface=expect_if, expect_unexpected=unexpected,
            timeout=timeout, quiet=quiet, seed=s.get("seed", 0), spec=s, expect_maps=expect_maps,
        )

    # -- sections ---------------------------------------------------------------------------
    def _link(self, a, b):
        self.adjacency.setdefault(a, set()).add(b)
        self.adjacency.setdefault(b, set()).add(a)

    def _topology(self, topo):
        """``topology``: the rules of :mod:`netring_testkit.topospec`; fills the endpoint → MTU table and the adjacency."""
        found, parsed = topospec.analyse(topo)
        for path, message in found:
            self.err(("topology",) + path, message)
        for name, ep in parsed.endpoints.items():
            self.endpoints[name] = ep.mtu or 1500  # a bridge without `mtu` gets the kernel's 1500
            if ep.link is not None:
                self._link(name, ep.link.name)
                self.veth_peer[name] = ep.link.name
        for b in parsed.bridges:
            members = [p.name for p in b.ports] + [b.name]
            for a in members:
                for other in members:
                    if a != other:
                        self._link(a, other)

    def _need_ep(self, rel, ep, what):
        if ep not in self.endpoints:
            self.err(rel, "%s %r is not an endpoint of any link%s; known endpoints: %s"
                     % (what, ep, _did_you_mean(ep, self.endpoints), ", ".join(self.endpoints) or "none"))
            return False
        return True

    def _xdp(self, entries):
        """``xdp``: one program per interface; redirect targets, filter rules, ELF objects."""
        xdp = []
        for xi, x in enumerate(entries):
            rel = ("xdp", xi)
            ok = self._need_ep(rel + ("attach",), x["attach"], "attach endpoint")
            if ok and x["attach"] in self.attached:
                self.err(rel + ("attach",), "endpoint %r already has an XDP program (xdp[%d]); one per interface"
                         % (x["attach"], self.attached[x["attach"]]))
            self.attached[x["attach"]] = xi
            prog = x["program"]
            opts = dict(x.get("options") or {})
            if prog == "redirect":
                if "target" not in x:
                    self.err(rel, "program redirect needs `target: NODE:IFNAME` (the interface frames leave through)")
                else:
                    if self._need_ep(rel + ("target",), x["target"], "redirect target"):
                        if _endpoint_node(x["target"]) != _endpoint_node(x["attach"]):
                            self.err(rel + ("target",), "redirect target %r must be in the same node as %r "
                                     "(XDP redirects between interfaces of one namespace)"
                                     % (x["target"], x["attach"]))
                        self._link(x["attach"], x["target"])
                    opts["target"] = x["target"]
            elif "target" in x:
                self.err(rel + ("target",), "`target` only applies to program redirect")
            if prog == "filter":
                rules = self._stream_names_to_ids(x.get("rules") or [], rel + ("rules",))
                if not rules:
                    self.err(rel, "program filter needs `rules: [{match: {...}, action: drop}]`")
                else:
                    self._check_rules(rules, x.get("default", "pass"), rel)
                opts["rules"] = rules
                opts["default"] = x.get("default", "pass")
            else:
                for k in ("rules", "default"):
                    if k in x:
                        self.err(rel + (k,), "`%s` only applies to program filter" % k)
            if isinstance(prog, dict):
                obj = prog["object"]
                objpath = obj if os.path.isabs(obj) else os.path.join(os.path.dirname(self.doc.filename), obj)
                prog = {"object": os.path.normpath(objpath), "program": prog["program"]}
                self._check_object(prog["object"], prog["program"], rel + ("program",))
                self._check_frags(prog["object"], prog["program"], x["attach"], x.get("mode", "auto"), rel)
            peer_pass = x.get("peer_pass", True)
            if not isinstance(peer_pass, bool):  # a ${param} substituted into it
                self.err(rel + ("peer_pass",), "peer_pass must be true or false, not %r" % (peer_pass,))
                peer_pass = True
            elif "peer_pass" in x and prog not in ("tx", "redirect"):
                self.err(rel + ("peer_pass",), "`peer_pass` only applies to programs tx and redirect (the built-ins "
                         "that send frames into a veth)")
            xdp.append(XdpSpec(x["attach"], prog, x.get("mode", "auto"), opts, peer_pass))
            self.xdp_specs.setdefault(x["attach"], xdp[-1])
        return xdp

    def _traffic(self, entries):
        """``traffic``: unique names, connected endpoints, one L3 and one L4 header, sizes that fit."""
        streams = []
        for ti, t in enumerate(entries):
            rel = ("traffic", ti)
            name = t.get("name", "s%d" % ti)
            if name in self.names:
                self.err(rel + ("name",), "stream name %r is used twice (also traffic[%d])" % (name, self.names[name]))
            self.names[name] = ti
            ok = self._need_ep(rel + ("from",), t["from"], "stream source")
            ok = self._need_ep(rel + ("to",), t["to"], "stream destination") and ok
            if ok:
                if t["from"] == t["to"]:
                    self.err(rel + ("to",), "a stream cannot be sent to its own source endpoint %r" % t["from"])
                elif not _connected(self.adjacency, t["from"], t["to"]):
                    self.err(rel + ("to",), "%r is not connected to %r by links, bridges or XDP redirects"
                             % (t["to"], t["from"]))
            frame = copy.deepcopy(t.get("frame") or {})
            if "pcap" in frame:  # a trace replayed as the stream's frames
                streams.append(self._replay_stream(name, ti, t, frame, rel))
                continue
            if "ipv4" in frame and "ipv6" in frame:
                self.err(rel + ("frame",), "a frame has one L3 header: give ipv4 or ipv6, not both")
            l4s = [k for k in ("udp", "tcp", "icmp") if k in frame]
            if len(l4s) > 1:
                self.err(rel + ("frame",), "a frame has one L4 header: give one of udp, tcp, icmp (got %s)"
                         % ", ".join(l4s))
            if "ipv4" not in frame and "ipv6" not in frame:
                frame["ipv4"] = {}
            if not l4s:
                frame["udp"] = {}
            try:
                sizes = frame_sizes(frame.pop("size", None), self.s.get("seed", 0), rel + ("frame", "size"))
            except ValueError as exc:
                self.err(rel + ("frame", "size"), str(exc))
                sizes = []
            try:
                rate = parse_rate(t.get("rate"))
            except ValueError as exc:
                self.err(rel + ("rate",), str(exc))
                rate = None
            try:
                count = parse_count(t.get("count", DEFAULT_COUNT))
            except ValueError as exc:
                self.err(rel + ("count",), str(exc))
                count = DEFAULT_COUNT
            via = t.get("via", "auto")
            if via not in VIAS:  # a ${param} substituted into it
                self.err(rel + ("via",), "via must be one of %s, not %r" % (", ".join(VIAS), via))
                via = "auto"
            st = Stream(name, ti, t["from"], t["to"], count, rate, frame, sizes, via=via,
                        where=str(self.doc.problem(self.base + rel + ("via",), "")).rstrip(": "))
            if ok and sizes:
                self._check_sizes(st, rel)
            if ok:
                self._check_via(st, rel)
            streams.append(st)
        return streams

    def _replay_stream(self, name, ti, t, frame, rel):
        """A ``frame: {pcap: ...}`` stream: the trace's checks are :func:`netring_testkit.replay.analyse`'s.

        ``stamp: false`` goes out of the TX ring only (``via: ring`` or ``auto``); ``rate: pcap`` needs a
        trace with a time span, and neither the live-frames sender (its calls cost ~25 ms each) nor a
        schedule longer than the scenario's ``timeout`` (checked in :meth:`_check_schedules`).
        """
        mtu = min(self.endpoints.get(t["from"], 1500), self.endpoints.get(t["to"], 1500))
        frame, sizes, timing, found = replay.analyse(frame, self.doc.filename, mtu, ti)
        for path, message in found:
            self.err(rel + ("frame",) + path, message)
        by_content = not frame["stamp"]
        via = t.get("via", "auto")
        if via not in VIAS:  # a ${param} substituted into it
            self.err(rel + ("via",), "via must be one of %s, not %r" % (", ".join(VIAS), via))
            via = "auto"
        if by_content and via in ("xdp", "afxdp"):
            self.err(rel + ("via",), "via: %s cannot send a trace untouched (stamp: false): its frames are counted by "
                     "exact content and go out of the TX ring only; use via: ring (or auto), or stamp: true" % via)
            via = "ring"
        rate, kept = None, None
        if t.get("rate") == "pcap":
            if timing is None and not found:
                self.err(rel + ("rate",), "rate: pcap needs a trace of two or more frames with distinct timestamps")
            elif via == "xdp":
                self.err(rel + ("via",), "via: xdp cannot keep a trace's own timing (rate: pcap): each live-frames "
                         "call costs ~25 ms; use via: ring (or auto), or a fixed rate")
            kept = timing
            rate = timing.pps if timing is not None else None
        else:
            try:
                rate = parse_rate(t.get("rate"))
            except ValueError as exc:
                self.err(rel + ("rate",), str(exc))
        try:
            count = parse_count(t.get("count", DEFAULT_COUNT))
        except ValueError as exc:
            self.err(rel + ("count",), str(exc))
            count = DEFAULT_COUNT
        return Stream(name, ti, t["from"], t["to"], count, rate, frame, sizes or [64], via=via,
                      where=str(self.doc.problem(self.base + rel + ("via",), "")).rstrip(": "),
                      by_content=by_content, timing=kept)

    def _check_schedules(self, streams, timeout):
        """A ``rate: pcap`` stream whose trace timing needs longer than ``timeout`` for its ``count`` frames
        could never be sent in full: a located error naming both (the run itself is bounded by ``timeout`` too)."""
        for st in streams:
            if st.timing is None:
                continue
            need = st.timing.duration_s(st.count)
            if need >= timeout:
                self.err(("traffic", st.stream_id, "rate"),
                         "rate: pcap replays the trace's own timing, which needs %.3f s for %d frames (the trace's "
                         "gaps, cycled), not less than the scenario's timeout %.3f s; raise timeout, lower count, "
                         "or give a fixed rate" % (need, st.count, timeout))

    def _check_content_captures(self, streams, expect, captures):
        """A stream counted by content (``stamp: false``) must be counted by a TPACKET_V3 capture (afpacket), and
        two of them counted at one capture may not send the same frame (it could not be told whose it is)."""
        via = {c.on: c.via for c in captures}
        seen = {}   # capture -> {frame bytes: stream name}
        for st in streams:
            ex = expect.get(st.name)
            if not st.by_content or ex is None or ex.at is None:
                continue
            if via.get(ex.at) == "afxdp":
                self.err(("capture", self.cap_on[ex.at], "via"),
                         "stream %s is counted by exact content (stamp: false), which reads TPACKET_V3 blocks; "
                         "capture %s via afpacket, or use stamp: true" % (st.name, ex.at))
            mine = seen.setdefault(ex.at, {})
            for i, data in enumerate(replay.frames_of(st)):
                other = mine.setdefault(data, st.name)
                if other != st.name:
                    self.err(("traffic", st.stream_id, "frame", "pcap"),
                             "frame %d of this trace is also a frame of stream %s, and both are counted by content at "
                             "%s: a frame must belong to one stream; count them at different captures, or stamp one"
                             % (i, other, ex.at))
                    break

    def _check_sizes(self, st, rel):
        lo = min_frame_size(st.l3, st.l4, st.vlan is not None)
        mtu = min(self.endpoints.get(st.src, 1500), self.endpoints.get(st.dst, 1500))
        hi = mtu + 14 + (4 if st.vlan is not None else 0)
        bad = [z for z in st.sizes if not lo <= z <= hi]
        if bad:
            self.err(rel + ("frame", "size"),
                     "frame size %d B does not fit: %s%s frames with the %d B stamp need %d..%d B "
                     "(link MTU %d)" % (bad[0], "802.1Q/" if st.vlan is not None else "",
                                        "%s/%s" % (st.l3, st.l4), STAMP_LEN, lo, hi, mtu))

    def _check_via(self, st, rel):
        """What ``via:`` can be told from the file alone (the kernel's limits are checked when the run starts)."""
        if st.via == "afxdp":
            big = max(st.sizes)
            if big > AFXDP_FRAME:
                self.err(rel + ("via",), "via: afxdp sends frames of at most %d B (one UMEM frame); frame %d B: use "
                         "via: ring" % (AFXDP_FRAME, big))
        if st.via != "xdp":
            return
        peer = self.veth_peer.get(st.src)
        if peer is None:
            self.err(rel + ("via",), "via: xdp sends out of a veth (the kernel XDP_TXes the frames it generates); "
                     "%r is a bridge device, which cannot transmit XDP frames; use via: ring or auto" % st.src)
        elif peer in self.xdp_specs and self.xdp_specs[peer].mode == "generic":
            self.err(rel + ("via",), "via: xdp: the receiving end %r runs its XDP program in mode: generic, which "
                     "receives no XDP_TX'd frames from the veth; attach it in mode: native, or use via: ring" % peer)

    def _check_live_order(self, streams, expect):
        """``via: xdp`` with several frame sizes cannot keep ``order: strict`` (see netring_testkit.senders)."""
        for st in streams:
            ex = expect.get(st.name)
            if st.via != "xdp" or ex is None or not st.sizes:
                continue
            bad = template_problem(st.sizes, ex.order)
            if bad is not None:
                self.err(("traffic", st.stream_id, "via"), "via: xdp cannot send this stream: %s; %s" % bad)

    def _captures(self, s, streams):
        """``capture``: one per endpoint, via afpacket; without the section, every stream's ``to``."""
        captures = []
        for ci, c in enumerate(s.get("capture") or []):
            rel = ("capture", ci)
            if self._need_ep(rel + ("on",), c["on"], "capture endpoint") and c["on"] in self.cap_on:
                self.err(rel + ("on",), "endpoint %r is captured twice" % c["on"])
            self.cap_on[c["on"]] = ci
            via = c.get("via", "afpacket")
            if via not in ("afpacket", "afxdp"):  # a ${param} substituted into it
                self.err(rel + ("via",), "capture via must be afpacket or afxdp, not %r" % (via,))
            own = AFXDP_OPTIONS if via == "afxdp" else ("block_size", "block_count")
            for k in c:
                if k not in ("on", "via") + own:
                    self.err(rel + (k,), "`%s` does not apply to a capture via %s (its options: %s)"
                             % (k, via, ", ".join(own)))
            if via == "afxdp":
                self._check_afxdp_capture(c["on"], streams, rel)
            captures.append(CaptureSpec(c["on"], via, {k: v for k, v in c.items() if k not in ("on", "via")}))
        if "capture" not in s:
            for st in streams:
                if st.dst in self.endpoints and st.dst not in self.cap_on:
                    self.cap_on[st.dst] = len(captures)
                    captures.append(CaptureSpec(st.dst, "afpacket", {}))
        return captures

    def _check_afxdp_capture(self, on, streams, rel):
        """An AF_XDP capture attaches the built-in xsk program on its endpoint and takes frames whole up to
        :data:`AFXDP_RX_FRAME` (a 4096 B UMEM frame less the kernel's XDP headroom)."""
        if on in self.attached:
            self.err(rel + ("on",), "capture via afxdp attaches the built-in xsk program on %r (it steers the frames "
                     "into the socket), but xdp[%d] attaches a program there too; capture via afpacket there, or "
                     "elsewhere" % (on, self.attached[on]))
        for st in streams:
            if st.via == "afxdp" and st.src == on:
                self.err(rel + ("on",), "capture via afxdp binds an AF_XDP socket to a queue of %r, and stream %s is "
                         "sent via afxdp from %r too: one socket per queue (the two would need a shared UMEM); send "
                         "that stream via ring, or capture via afpacket there" % (on, st.name, on))
            if st.dst == on and st.sizes and max(st.sizes) > AFXDP_RX_FRAME:
                self.err(rel + ("via",), "capture via afxdp receives frames of at most %d B whole (a 4096 B UMEM frame "
                         "less 256 B of XDP headroom); stream %s sends %d B: capture via afpacket"
                         % (AFXDP_RX_FRAME, st.name, max(st.sizes)))

    def _expect_streams(self, ex, streams, captures):
        """``expect`` per stream (``expect.streams.NAME`` over the scenario-wide defaults): counts and where."""
        expect = {}
        per = ex.get("streams") or {}
        for key in per:
            if key not in self.names:
                self.err(("expect", "streams", key), "no stream named %r%s; streams: %s"
                         % (key, _did_you_mean(key, self.names), ", ".join(self.names)))
        for st in streams:
            own = per.get(st.name) or {}

            def pick(field, default):
                return own.get(field, ex.get(field, default))

            rel = ("expect", "streams", st.name) if st.name in per else ("expect",)
            try:
                delivered = CountExpr(pick("delivered", "all"))
            except ValueError as exc:
                self.err(rel + ("delivered",), str(exc))
                delivered = CountExpr("all")
            at = pick("at", None)
            if at is None:
                if st.dst in self.cap_on:
                    at = st.dst
                elif len(captures) == 1:
                    at = captures[0].on
            if at is None and st.dst not in self.endpoints:
                pass  # the bad `to:` is already reported
            elif at is None:
                self.err(rel, "stream %r is not captured anywhere: add `capture: [{on: %s}]` or `at:` in expect"
                         % (st.name, st.dst))
            elif at not in self.cap_on:
                self.err(rel + ("at",), "expect.at %r has no capture; captured endpoints: %s"
                         % (at, ", ".join(self.cap_on) or "none"))
            expect[st.name] = StreamExpect(delivered, pick("order", "strict"), pick("payload", "intact"), at)
        return expect

    def _expect_counters(self, ex):
        """``expect.xdp``, ``expect.interface`` and ``expect.unexpected``: counter expressions."""
        expect_xdp = {}
        for ep, counters in (ex.get("xdp") or {}).items():
            if ep not in self.attached:
                self.err(("expect", "xdp", ep), "no XDP program is attached to %r; attached: %s"
                         % (ep, ", ".join(self.attached) or "none"))
            elif ep in self.xdp_specs and not self.xdp_specs[ep].builtin:
                x = self.xdp_specs[ep]
                maps = self.object_maps.get(x.program["object"])
                known = "; its maps: %s" % (", ".join(sorted(maps)) or "none") if isinstance(maps, dict) else ""
                self.err(("expect", "xdp", ep), "the program on %r (%s in %s) is not a built-in, so it keeps no "
                         "netring counters for expect.xdp; check its own maps with `expect.maps: {%s: {MAP: "
                         "{KEY: COUNT}}}`%s" % (ep, x.program["program"], x.program["object"], ep, known))
            expect_xdp[ep] = self._exprs(counters, ("expect", "xdp", ep))
        expect_if = {}
        for ep, counters in (ex.get("interface") or {}).items():
            self._need_ep(("expect", "interface", ep), ep, "interface")
            expect_if[ep] = self._exprs(counters, ("expect", "interface", ep))
        unexpected = None
        if "unexpected" in ex:
            try:
                unexpected = CountExpr(ex["unexpected"])
            except ValueError as exc:
                self.err(("expect", "unexpected"), str(exc))
        return expect_xdp, expect_if, unexpected

    def _expect_maps(self, ex):
        """``expect.maps``: values in the maps of a user object, checked against the maps its ELF declares."""
        out = {}
        for ep, maps in (ex.get("maps") or {}).items():
            rel = ("expect", "maps", ep)
            x = self.xdp_specs.get(ep)
            if x is None:
                self.err(rel, "no XDP program is attached to %r; attached: %s"
                         % (ep, ", ".join(self.attached) or "none"))
                continue
            if x.builtin:
                self.err(rel, "the program on %r is the built-in %r: check its counters with `expect.xdp`; "
                         "expect.maps reads the maps of a program of your own ({object: FILE.o, program: NAME})"
                         % (ep, x.program))
                continue
            path = x.program["object"]
            declared = self.object_maps.get(path)
            if declared is None:
                continue  # the object itself is reported (missing, not a BPF object, no such program)
            if isinstance(declared, str):
                self.err(rel, "cannot read the maps of %s: %s" % (path, declared))
                continue
            out[ep] = {}
            for name, keys in maps.items():
                m = declared.get(name)
                if m is None:
                    self.err(rel + (name,), "%s has no map %r%s; its maps: %s"
                             % (path, name, _did_you_mean(name, declared), ", ".join(sorted(declared)) or "none"))
                    continue
                if m.value_size is None or m.value_size > 8:
                    self.err(rel + (name,), "map %r has %s values; expect.maps reads values of at most 8 bytes "
                             "(an unsigned integer of the value's size)"
                             % (name, "%d-byte" % m.value_size if m.value_size else "unsized"))
                    continue
                out[ep][name] = {}
                for key, want in keys.items():
                    k = int(key)
                    if m.key_size is None or k >= 1 << (8 * m.key_size):
                        self.err(rel + (name, key), "key %d does not fit the %s-byte keys of map %r"
                                 % (k, m.key_size, name))
                        continue
                    if m.type in ARRAY_MAP_TYPES and m.max_entries is not None and k >= m.max_entries:
                        self.err(rel + (name, key), "key %d is outside %s map %r: max_entries %d, keys 0..%d"
                                 % (k, map_type_name(m.type), name, m.max_entries, m.max_entries - 1))
                        continue
                    try:
                        out[ep][name][k] = CountExpr(want)
                    except ValueError as exc:
                        self.err(rel + (name, key), str(exc))
        return out

    def _timeouts(self):
        """``timeout`` and ``quiet`` in seconds; the quiet period must end before the timeout."""
        timeout = self._duration("timeout", DEFAULT_TIMEOUT)
        quiet = self._duration("quiet", DEFAULT_QUIET)
        if quiet >= timeout:
            self.err(("quiet",), "quiet period %gs must be shorter than timeout %gs" % (quiet, timeout))
        return timeout, quiet

    # -- helpers ----------------------------------------------------------------------------
    def _check_object(self, path, name, rel):
        """The ELF object must exist and hold a program called ``name`` (checked now, not at attach time)."""
        if not os.path.isfile(path):
            self.err(rel + ("object",), "BPF object file %s does not exist (a relative `object:` is resolved "
                     "against the scenario file's directory); compile it with `clang -O2 -g -target bpf -c`"
                     % path)
            return
        try:
            names = bpf_object_programs(path)
        except (OSError, ValueError) as exc:
            self.err(rel + ("object",), "cannot read the BPF programs of %s: %s" % (path, exc))
            return
        if name not in names:
            self.err(rel + ("program",), "%s has no program %r%s; its programs: %s"
                     % (path, name, _did_you_mean(name, names), ", ".join(names) or "none"))
            return
        if path not in self.object_maps:
            try:
                self.object_maps[path] = bpf_object_maps(path)
            except (OSError, ValueError) as exc:
                self.object_maps[path] = str(exc)

    def _check_frags(self, path, name, attach, mode, rel):
        """Native XDP on a veth whose peer's MTU does not fit a page takes only a multi-buffer aware
        program (libbpf: ``SEC("xdp.frags")``); the kernel would refuse the attach with ERANGE."""
        peer = self.veth_peer.get(attach)
        if mode != "native" or peer is None:
            return
        from netring.xdp import veth_single_buffer_max_mtu

        limit, mtu = veth_single_buffer_max_mtu(), self.endpoints.get(peer, 1500)
        try:
            section = bpf_object_sections(path).get(name)
        except (OSError, ValueError):
            return  # reported by _check_object
        if mtu <= limit or section is None or section in FRAGS_SECTIONS:
            return
        self.err(rel + ("program", "program"),
                 "program %r (SEC(\"%s\")) is not frags-aware and MTU %d > %d (the largest MTU a single-buffer XDP "
                 "program accepts on veth with a %d KiB page); load it with SEC(\"xdp.frags\") or lower the MTU "
                 "(or attach it with mode: generic)" % (name, section, mtu, limit, os.sysconf("SC_PAGE_SIZE") >> 10))

    def _stream_names_to_ids(self, rules, rel):
        """``rules`` with every ``match: {stream: NAME}`` replaced by that stream's id (a copy; ids stay)."""
        out = copy.deepcopy(rules)
        for ri, rule in enumerate(out):
            match = rule.get("match") if isinstance(rule, dict) else None
            name = match.get("stream") if isinstance(match, dict) else None
            if not isinstance(name, str):
                continue
            if name in self.stream_ids:
                match["stream"] = self.stream_ids[name]
            else:
                self.err(rel + (ri, "match", "stream"), "no stream named %r%s; streams: %s (or give a stream id "
                         "0..65535)" % (name, _did_you_mean(name, self.stream_ids), ", ".join(self.stream_ids)))
                match["stream"] = 0  # reported; keeps the rule checkable
        return out

    def _check_rules(self, rules, default, rel):
        """Let the filter compiler validate the rules now, so a bad match field is located in the file."""
        from netring.bpf.programs import validate_rules
        from netring.errors import ConfigurationError

        try:
            validate_rules(rules, default)
        except ConfigurationError as exc:
            where = rel
            for name, idx in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?", str(exc.field or "rules")):
                where += (name,) + ((int(idx),) if idx else ())
            self.err(where, "invalid %s" % exc)

    def _exprs(self, counters, rel):
        out = {}
        for k, v in (counters or {}).items():
            try:
                out[k] = CountExpr(v)
            except ValueError as exc:
                self.err(rel + (k,), str(exc))
        return out

    def _duration(self, key, default):
        if key not in self.s:
            return default
        try:
            return parse_duration(self.s[key])
        except ValueError as exc:
            self.err((key,), str(exc))
            return default
