"""The scenario engine: run one :class:`~netring_testkit.scenario.Scenario` and measure it.

Order of a run (and of tear-down, in reverse, even on failure or Ctrl-C):

1. build the topology (:class:`netring_testkit.Topology`; namespaces held by fd);
2. attach the XDP programs (built-ins from :mod:`netring.bpf.programs`, or user objects), choose
   each stream's sender (``traffic[].via``: the TX ring or the kernel's live-frames generator,
   :func:`netring_testkit.senders.choose`) and attach ``pass`` where the veth peer rule needs it
   (:func:`netring_testkit.senders.plan_peer_passes`);
3. open the captures (:class:`netring.Capture`, TPACKET_V3, or :class:`netring.XdpSocket` for
   ``via: afxdp``, opened before the peer rule looks: see :mod:`netring_testkit.receivers`) and a C sequence checker
   (:class:`netring.check.SeqChecker`) per capture, knowing every stream;
4. read the interface counters and open one sender per source endpoint and kind (a
   :class:`netring.Injector`, :class:`netring.XdpInjector` or :class:`netring.XdpSocket`, however
   many streams it sends), then start draining the captures on the calling thread — one C call per retired
   block feeds the checker; nothing per packet happens in Python;
5. only then, from that drain loop, start the senders: at most :data:`MAX_SENDERS` threads,
   each endpoint's streams on one of them, interleaved in bounded C calls
   (:meth:`netring.Injector.send_stream`: C copies a template, stamps stream id + sequence +
   check, patches the L4 checksum and paces when a rate is given — see :class:`_Sender` for how
   streams sharing a sender keep their rates); drain until every stream expected to be
   delivered in full is in, or nothing arrived for ``quiet`` seconds after injection ended,
   or ``timeout``;
6. read the XDP program counters and the interface counters again (deltas);
7. build the :class:`~netring_testkit.verdict.ScenarioResult` and evaluate it.

``cpus=(TX, RX)`` (or ``NETRING_CPUS=TX,RX``) pins the sender threads of step 5 to CPU TX and the
drain loop of steps 4-5 to CPU RX for the run (see :func:`run`).

Cost of a run: threads, TX rings (2 MiB each at the default frame size) and their fds grow with
the number of *source endpoints* (threads capped at :data:`MAX_SENDERS`), not of streams — 2000
streams from one endpoint use one sender thread and one ring. A ring that cannot be mapped is a
:class:`netring.ringsock.RingMemoryError` naming its size and what shrinks it.

The detach of XDP programs happens before the topology's namespaces go (the ExitStack
unwinds in reverse order of step 1–3), captures and injectors close before their namespaces.
"""
import collections
import contextlib
import os
import select
import socket
import threading
import time
import traceback

from netring import stamp as _stamp
from netring.errors import ConfigurationError, NetringError, ScenarioError

from . import framelog, frames, replay, senders as _senders
from .receivers import open_capture
from .xdpattach import attach_endpoint, attach_peer_pass, xdp_hint
from .verdict import ScenarioResult, SentFrame, StreamResult, evaluate

__all__ = ["run", "parse_cpus", "CPUS_ENV", "build_templates", "build_frame", "ScenarioAborted"]

_CHUNK = 4096            # frames per paced send_stream call: bounds the reaction time to Ctrl-C/timeout
# Unpaced streams: larger calls (each bounded to _CALL_S in time) keep the C stamper's template-reuse
# shortcut working across a whole ring (every call starts a new template generation, so the first
# ring-full of each call is a full copy) and cut the per-call Python overhead.
_CHUNK_MAX = 1 << 16
_CALL_S = 0.25
#: Sender threads a run uses at most, however many streams and source endpoints it has: streams are
#: multiplexed over them (see :class:`_Sender`), each source endpoint's streams through one injector.
MAX_SENDERS = 4
_LIVE_CALL_S = 0.9      # bound of one unpaced live-frames call (XdpInjector.send_stream): a stop waits <= ~1 s
_TURN_S = 0.05           # bound of one C call when streams share a sender: a turn never starves the others long
_SLOT_S = 0.001          # a stream paced in Python (rate: pcap, or untouched frames at a rate) sleeps this long at least
_UNTOUCHED_BYTES = 4 << 20  # bytes of frames one call of an untouched (stamp: false) stream copies at most
#: Environment variable naming the CPUs to pin the engine's threads to: "TX,RX" (e.g. "0,1").
CPUS_ENV = "NETRING_CPUS"
_PROGRESS_EVERY = 2.0    # seconds between progress callbacks
#: Frames kept for a failure's pcapng (only with ``artifacts_dir``): the first and the last this many
#: of each stream (rebuilt from its templates) and of each capture (copied once per block).
SAMPLE_FRAMES = 16
_DEFAULT_V4 = ("198.18.255.1", "198.18.255.2")
_DEFAULT_V6 = ("2001:2:0:ff::1", "2001:2:0:ff::2")


class ScenarioAborted(ScenarioError):
    """The run was stopped (timeout or interrupt) before the traffic finished."""


# --------------------------------------------------------------------------------------------
# frames
# --------------------------------------------------------------------------------------------
def build_frame(size, stream_id, *, src_mac, dst_mac, l3="ipv4", l4="udp", src_ip=None, dst_ip=None,
                vlan=None, pcp=0, ttl=64, tos=0, sport=1024, dport=9, tcp_flags="PA", tcp_seq=1,
                window=65535, icmp_type=None, icmp_code=0, icmp_id=0x4e52, flow_label=0):
    """Build one stamped template frame of ``size`` bytes; return ``(frame, l4_checksum_offset)``.

    A scenario-shaped front end to :func:`netring_testkit.frames.build`: the L4 payload is the
    :func:`~netring_testkit.frames.pattern` filler followed by the 20-byte stamp (sequence 0) at
    the end of the L3 packet; ``plen`` covers the filler. IPv4 frames carry DF; ``icmp`` over
    IPv6 is ICMPv6. The L4 checksum is computed after stamping; its offset is returned for the
    C stamper's incremental update. Raises :class:`ScenarioError` when ``size`` is too small.
    """
    eth = {"dst": dst_mac, "src": src_mac}
    if vlan is not None:
        eth["vlan"] = {"vid": vlan, "pcp": pcp}
    if l3 == "ipv6":
        layers = {"ipv6": {"src": src_ip or _DEFAULT_V6[0], "dst": dst_ip or _DEFAULT_V6[1], "hlim": ttl, "tc": tos,
                           "flow": flow_label}}
    else:
        layers = {"ipv4": {"src": src_ip or _DEFAULT_V4[0], "dst": dst_ip or _DEFAULT_V4[1], "ttl": ttl, "tos": tos,
                           "df": True}}
    if l4 == "udp":
        layers["udp"] = {"sport": sport, "dport": dport}
    elif l4 == "tcp":
        layers["tcp"] = {"sport": sport, "dport": dport, "seq": tcp_seq, "flags": tcp_flags, "window": window}
    else:
        icmp = {"code": icmp_code, "id": icmp_id}
        if icmp_type is not None:
            icmp["type"] = icmp_type
        layers["icmpv6" if l3 == "ipv6" else "icmp"] = icmp
    try:
        frame = frames.build(eth=eth, size=size, stamp=(stream_id, 0), **layers)
    except ConfigurationError as exc:
        if exc.field != "size":
            raise
        lo = frames.min_size(eth=eth, stamp=(stream_id, 0), **layers)
        if size >= lo:  # too large (over frames.MAX_FRAME or a length field): the builder's message says which
            raise ScenarioError(str(exc)) from None
        raise ScenarioError("frame size %d B cannot hold %s/%s headers and the %d B stamp (minimum %d B)"
                            % (size, l3, l4, _stamp.STAMP_LEN, lo)) from None
    return frame, frames.l4_checksum_offset(frame)


def build_templates(stream, src_ep, dst_ep):
    """Template frames (one per size in ``stream.sizes``) and their L4 checksum offsets."""
    if "pcap" in stream.frame:  # frames replayed from a trace (netring_testkit.replay)
        return replay.templates(stream)
    f = stream.frame
    eth = f.get("eth") or {}
    ip = f.get(stream.l3) or {}
    l4 = f.get(stream.l4) or {}
    kw = dict(src_mac=eth.get("src") or _attr(src_ep, "mac"), dst_mac=eth.get("dst") or _attr(dst_ep, "mac"),
              l3=stream.l3, l4=stream.l4, vlan=eth.get("vlan"), pcp=eth.get("pcp", 0))
    if stream.l3 == "ipv6":
        kw.update(src_ip=ip.get("src") or _attr(src_ep, "ipv6"), dst_ip=ip.get("dst") or _attr(dst_ep, "ipv6"),
                  ttl=ip.get("hop_limit", 64), tos=ip.get("tc", 0), flow_label=ip.get("flow_label", 0))
    else:
        kw.update(src_ip=ip.get("src") or _attr(src_ep, "ipv4"), dst_ip=ip.get("dst") or _attr(dst_ep, "ipv4"),
                  ttl=ip.get("ttl", 64), tos=ip.get("tos", 0))
    if stream.l4 in ("udp", "tcp"):
        kw.update(sport=l4.get("sport", 1024 + stream.stream_id), dport=l4.get("dport", 9))
    if stream.l4 == "tcp":
        kw.update(tcp_flags=l4.get("flags", "PA"), tcp_seq=l4.get("seq", 1), window=l4.get("window", 65535))
    if stream.l4 == "icmp":
        kw.update(icmp_type=l4.get("type"), icmp_code=l4.get("code", 0), icmp_id=l4.get("id", 0x4E52))
    kw["src_mac"] = kw["src_mac"] or "02:4e:52:00:00:01"
    kw["dst_mac"] = kw["dst_mac"] or "02:4e:52:00:00:02"
    templates, offsets = [], []
    for size in stream.sizes:
        fr, off = build_frame(size, stream.stream_id, **kw)
        templates.append(fr)
        offsets.append(off)
    return templates, offsets


def _attr(ep, name):
    v = getattr(ep, name, None)
    if isinstance(v, str) and "/" in v:
        v = v.split("/", 1)[0]
    return v


# --------------------------------------------------------------------------------------------
# XDP
# --------------------------------------------------------------------------------------------
def _attach_xdp(stack, topo, spec, keeping=None):
    """Load and attach one XDP program; it is detached, then closed, when ``stack`` unwinds.

    Returns ``(attachment, object)``: ``object`` is the loaded user ELF object (its maps are read
    for ``expect.maps``), None for a built-in. ``keeping()``, called at unwind time, returning a
    list makes the program stay attached instead (see :meth:`netring.xdp.XdpAttachment.leave_attached`);
    ``(endpoint, XdpInfo)`` is appended to that list.
    """
    from netring.bpf import programs


    ep = topo[spec.attach]
    if spec.builtin:
        opts = {k: v for k, v in spec.options.items() if k != "target"}
        if spec.program == "redirect":
            opts["target_ifindex"] = topo[spec.options["target"]].ifindex
        prog = stack.enter_context(programs.builtin(spec.program, **opts))
        obj = None
    else:
        from netring.bpf.libbpf import load_object

        path, name = spec.program["object"], spec.program["program"]
        try:
            obj = stack.enter_context(load_object(path, programs=[name]))
            prog = obj.program(name)
        except KeyError as exc:  # the file changed since it was validated
            raise ScenarioError("xdp %s: %s" % (spec.attach, exc.args[0] if exc.args else exc)) from None
    # Registered after the program: detached before the program is closed (ExitStack is LIFO).
    # Errors name the endpoint (node:ifname): every node may have an eth0.
    att = attach_endpoint(stack, spec.attach, ep.ifname, ep.netns, prog, spec.mode)
    if keeping is not None:
        def maybe_leave():
            kept = keeping()
            if kept is not None:
                info = att.leave_attached()
                if info is not None:
                    kept.append((ep, info))

        stack.callback(maybe_leave)   # runs before the detach above
    return att, obj


def _map_values(obj, wanted):
    """``{map: {key: value}}`` for the keys ``wanted`` (``{map: {key: …}}``) in the maps of a user object.

    Keys are unsigned integers of the map's key size, values unsigned integers of its value size
    (little-endian, at most 8 bytes: the loader checked both against the ELF); a per-CPU value
    is the sum over the CPUs; a key absent from a hash map reads 0 (nothing was counted there).
    """
    out = {}
    for name, keys in wanted.items():
        try:
            m = obj.map(name)
        except KeyError as exc:  # the file changed since it was validated
            raise ScenarioError("expect.maps: %s" % (exc.args[0] if exc.args else exc)) from None
        if m.value_size > 8:
            raise ScenarioError("expect.maps: map %r of %s has %d-byte values now (at most 8 can be read as an "
                                "integer)" % (name, obj.path, m.value_size))
        out[name] = {}
        for key in keys:
            value = m.lookup(key.to_bytes(m.key_size, "little"), default=None)
            if value is None:
                value = 0
            elif isinstance(value, list):  # per CPU
                value = sum(_as_uint(v) for v in value)
            else:
                value = _as_uint(value)
            out[name][key] = value
    return out


def _as_uint(v):
    return int.from_bytes(v, "little") if isinstance(v, (bytes, bytearray)) else int(v)


def _xdp_counters(att):
    from netring.errors import UnsupportedError

    try:
        raw = att.counters()
    except UnsupportedError:
        return None  # a user program without netring's counters map
    out = {}
    for action, val in raw.items():
        if action == "rules":
            continue
        out[action] = val.get("packets", 0) if isinstance(val, dict) else int(val)
    return out


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------
class _StreamTx:
    """One stream's sending state: its templates, how far it got, when it started and finished."""

    def __init__(self, stream, templates, offsets, via="ring"):
        self.stream = stream
        #: A trace sent untouched (``stamp: false``): ``offsets`` is None and frames go out as they are.
        self.untouched = offsets is None
        #: The sender kind (see :mod:`netring_testkit.senders`): ``ring``, ``xdp`` or ``afxdp``.
        self.via = via
        self.templates = templates
        self.offsets = offsets
        self.sent = 0
        self.started_at = None
        self.finished_at = None

    @property
    def done(self):
        return self.sent >= self.stream.count

    def send(self, injector, n, rate_pps, timeout):
        """Queue the next ``n`` frames (one C call, bounded by ``timeout``); return how many went."""
        if self.started_at is None:
            self.started_at = time.monotonic()
        # send_stream starts every call at its first template: rotate them so that frame
        # ``seq`` always uses template ``seq % len`` ("cycled frame by frame", and rebuildable).
        k = self.sent % len(self.templates)
        if self.untouched:
            # Frame seq is trace frame seq % len, byte for byte; one call copies at most ~4 MiB of frames.
            n = min(n, max(64, _UNTOUCHED_BYTES // max(len(t) for t in self.templates)))
            cycled = self.templates * ((k + n + len(self.templates) - 1) // len(self.templates))
            got = injector.send_batch(cycled[k:k + n], timeout=timeout)
            self.sent += got
            if self.done:
                self.finished_at = time.monotonic()
            return got
        got = injector.send_stream(self.templates[k:] + self.templates[:k], self.stream.stream_id, self.sent, n,
                                   rate_pps=rate_pps, csum_offsets=self.offsets[k:] + self.offsets[:k],
                                   timeout=timeout)
        self.sent += got
        if self.done:
            self.finished_at = time.monotonic()
        return got

    def due(self, elapsed):
        """Frames of this stream due ``elapsed`` s after its frame 0: by the trace's own timing (``rate: pcap``)
        or by its rate (frame ``k`` at ``k / rate``)."""
        timing = self.stream.timing
        if timing is not None:
            return timing.due(int(elapsed * 1e9))
        return int(elapsed * self.stream.rate_pps) + 1

    def offset(self, k):
        """Seconds from this stream's frame 0 to its frame ``k`` (see :meth:`due`)."""
        timing = self.stream.timing
        if timing is not None:
            return timing.at(k) / 1e9
        return k / self.stream.rate_pps

    def sample(self, n=SAMPLE_FRAMES):
        """The first and last ``n`` frames this stream sent, rebuilt exactly as the C stamper built them."""
        from netring.check import stamp_frame

        st, t = self.stream, self.templates
        seqs = sorted(set(range(min(n, self.sent))) | set(range(max(0, self.sent - n), self.sent)))
        wall = time.time() - time.monotonic()
        first = int(((self.started_at or 0) + wall) * 1e9)
        last = int(((self.finished_at or self.started_at or 0) + wall) * 1e9)
        return [SentFrame(st.name, st.src, seq, first if seq < n else last,
                          t[seq % len(t)] if self.untouched else
                          stamp_frame(t[seq % len(t)], st.stream_id, seq, self.offsets[seq % len(t)]))
                for seq in seqs]


class _Sender(threading.Thread):
    """Sends its streams, each through its source endpoint's injector, in bounded C calls.

    A run has at most :data:`MAX_SENDERS` of these however many streams it has (see
    :func:`_plan_senders`). One stream alone on its sender is sent exactly as a stream always was:
    chunks of :data:`_CHUNK_MAX` frames (unpaced) or ~0.25 s of frames paced in C. Several streams
    share the sender by turns: each unpaced stream gets one C call of at most :data:`_CHUNK_MAX`
    frames or :data:`_TURN_S` per turn; before and after each of those calls, every paced stream
    gets the frames due by now on its own schedule (frame ``k`` at ``start + k / rate``, ``start``
    its first turn), sent back to back; with only paced streams left the sender sleeps until the
    next frame is due. So each stream keeps its rate on average and its frames their order, and
    ``rate`` still means frames per second of that stream; what changes for a paced stream that
    shares its sender is the spacing: its frames go out in bursts of those due since the last pass
    (passes at most ~:data:`_TURN_S` apart, typically far less) instead of one every ``1/rate`` s.
    Two kinds of stream are paced that way even alone (:meth:`_run_slotted`, slots of at least
    :data:`_SLOT_S`): ``rate: pcap`` (frame ``k`` due at the trace's own offset,
    :class:`netring_testkit.replay.Timing`) and a trace sent untouched at a rate (the C pacer stamps).
    """

    def __init__(self, jobs, deadline, stop, cpu=None, index=0):
        # Named for its stream when it has one (as every sender once was), else for its index.
        super().__init__(name="netring-tx-%s" % (jobs[0][1].stream.name if len(jobs) == 1 else
                                                 "%d-%dstreams" % (index, len(jobs))), daemon=True)
        #: ``[(injector, _StreamTx), ...]`` in stream order.
        self.jobs = jobs
        self.deadline = deadline
        self.stop = stop
        self.cpu = cpu
        self.error = None
        #: The stream whose C call raised ``error``.
        self.error_stream = None
        self.started_at = None
        self.finished_at = None
        #: Set first thing in :meth:`run`: from then on the thread may enter C until ``exited``.
        self.begun = False
        self.exited = threading.Event()

    @property
    def sent(self):
        return sum(tx.sent for _, tx in self.jobs)

    def run(self):
        # begun is written before ``stop`` is first read: a joiner that sets ``stop`` and then
        # sees begun False knows this thread will see ``stop`` and never call into C.
        self.begun = True
        self.started_at = time.monotonic()
        try:
            if self.cpu is not None:
                os.sched_setaffinity(0, {self.cpu})  # 0 = this thread on Linux
            if len(self.jobs) == 1:
                self._run_alone(*self.jobs[0])
            else:
                self._run_turns()
            if not self.stop.is_set():  # TX rings only: the live-frames generator has sent when it returns
                for inj in {id(inj): inj for inj, tx in self.jobs if tx.via != "xdp"}.values():
                    inj.wait_drained(max(0.1, min(1.0, self.deadline - time.monotonic())))
        except BaseException as exc:  # reported by the main thread
            self.error = exc
        finally:
            self.finished_at = time.monotonic()
            for _, tx in self.jobs:
                if tx.started_at is not None and tx.finished_at is None:
                    tx.finished_at = self.finished_at
            self.exited.set()

    def _run_alone(self, inj, tx):
        st = tx.stream
        if st.rate_pps is not None and (st.timing is not None or tx.untouched):
            self._run_slotted(inj, tx)
            return
        while not tx.done and not self.stop.is_set():
            left = self.deadline - time.monotonic()
            if left <= 0:
                break
            # Each call is bounded (~0.25 s of paced traffic, 1 s at most) so that stop/timeout
            # are noticed quickly and the injector is never closed under a running C call.
            if tx.via == "xdp":
                n, bound = _live_call(st.count - tx.sent, st.rate_pps)
            else:
                chunk = _CHUNK_MAX if st.rate_pps is None else max(16, min(_CHUNK, st.rate_pps // 4))
                n, bound = min(chunk, st.count - tx.sent), 1.0 if st.rate_pps else _CALL_S
            self.error_stream = st
            done = tx.send(inj, n, st.rate_pps, min(left, bound))
            if done < n and time.monotonic() >= self.deadline:
                break

    def _run_slotted(self, inj, tx):
        """A stream paced in Python slots: the trace's own timing (``rate: pcap``), or a rate for frames sent
        untouched (the C pacer stamps). Each pass sends every frame due by now in one unpaced C call, then the
        thread sleeps until the next frame is due, but at least :data:`_SLOT_S` (frames due within one slot go
        out together, at most that late) — never past the deadline, and ``stop`` wakes it."""
        origin = {}
        while not tx.done and not self.stop.is_set() and time.monotonic() < self.deadline:
            next_due = self._paced_pass([(inj, tx)], origin)
            if next_due is not None:
                wait = next_due - time.monotonic()
                if wait > 0:
                    self.stop.wait(min(max(wait, _SLOT_S), self.deadline - time.monotonic()))

    def _run_turns(self):
        jobs = [(inj, tx) for inj, tx in self.jobs if not tx.done]
        paced = [(inj, tx) for inj, tx in jobs if tx.stream.rate_pps is not None]
        unpaced = [(inj, tx) for inj, tx in jobs if tx.stream.rate_pps is None]
        origin = {}  # paced stream -> monotonic time its frame 0 is due (its first turn)
        while (paced or unpaced) and not self.stop.is_set() and time.monotonic() < self.deadline:
            # Paced streams get a pass after every unpaced call, so their bursts stay ~_TURN_S apart
            # however many unpaced streams share the sender.
            next_due = self._paced_pass(paced, origin)
            for inj, tx in unpaced:
                left = self.deadline - time.monotonic()
                if left <= 0 or self.stop.is_set():
                    break
                self.error_stream = tx.stream
                # Bounded tighter when paced streams wait for their pass; else as long as a lone stream's call.
                tx.send(inj, min(_CHUNK_MAX, tx.stream.count - tx.sent), None, min(left, _TURN_S if paced else _CALL_S))
                if paced:
                    next_due = self._paced_pass(paced, origin)
            paced = [j for j in paced if not j[1].done]
            unpaced = [j for j in unpaced if not j[1].done]
            if paced and not unpaced and next_due is not None:
                # Only paced streams are left and none is due: sleep until the first one is (stop wakes it).
                wait = min(next_due, self.deadline) - time.monotonic()
                if wait > 0:
                    self.stop.wait(wait)

    def _paced_pass(self, paced, origin):
        """Send every paced stream the frames due by now (back to back, unpaced C calls of at most
        :data:`_CHUNK`); return when the next not yet due frame of any of them is due (None: none left)."""
        next_due = None
        for inj, tx in paced:
            st = tx.stream
            if tx.done or self.stop.is_set():
                continue
            t0 = origin.setdefault(id(tx), time.monotonic())
            left = self.deadline - time.monotonic()
            if left <= 0:
                break
            due = tx.due(time.monotonic() - t0)  # frames 0..due-1 are due by now
            n = min(_CHUNK, due - tx.sent, st.count - tx.sent)
            if n > 0:
                self.error_stream = st
                tx.send(inj, n, None, min(left, _TURN_S))
            if not tx.done:
                at = t0 + tx.offset(tx.sent)
                next_due = at if next_due is None else min(next_due, at)
        return next_due


def _live_call(left, rate_pps):
    """``(frames, time bound)`` of the next live-frames call of a stream alone on its sender.

    Every test run inside a call pays a fixed ~30 ms (see :mod:`netring.xdp_inject`; the injector
    keeps the stream's generator programs loaded from one call to the next), so calls are longer
    than a TX ring's: unpaced, all that is left, bounded to :data:`_LIVE_CALL_S` (one kernel run
    of ~0.9 s of frames at the rate the injector measured, ~3 % fixed cost); paced, one second of
    frames (the generator paces them in 50 ms slices), bounded to their schedule plus half a
    second. The bound is how long a stop or Ctrl-C waits for the call at most: the bound plus the
    injector's overshoot (the fixed cost of its last run, ~30 ms), i.e. ~1 s unpaced.
    """
    if rate_pps is None:
        return left, _LIVE_CALL_S
    n = min(left, max(1, rate_pps))
    return n, n / rate_pps + 0.5


class _ArrivalSample:
    """The first and last ``n`` frames a capture saw (not those its endpoint sent), for artifacts.

    Fed once per retired block after the checker: the block's descriptors (one C walk), then a
    look at no more than ``4 n`` packets at each end of the block — bounded work per block, no
    Python per packet beyond that. (Incoming frames in the middle of a block that is mostly the
    endpoint's own outgoing frames can be missed: it is a sample.)
    """

    def __init__(self, n=SAMPLE_FRAMES):
        self.n = n
        self.first = []
        self.last = collections.deque(maxlen=n)

    def feed(self, batch):
        arr, got = batch.descriptors()
        if not got:
            return
        block, n, out = batch.block, self.n, socket.PACKET_OUTGOING

        def take(i):
            p = arr[i]
            return (batch.seq_num, i), int(p.ts_ns), bytes(block[p.off:p.off + p.snaplen])

        if len(self.first) < n:
            for i in range(min(got, 4 * n)):
                if arr[i].pkttype != out:
                    self.first.append(take(i))
                    if len(self.first) == n:
                        break
        tail = [i for i in range(got - 1, max(-1, got - 1 - 4 * n), -1) if arr[i].pkttype != out][:n]
        self.last.extend(take(i) for i in reversed(tail))

    def frames(self):
        """``[(timestamp_ns, bytes), ...]`` in arrival order, none twice."""
        seen = {key for key, _, _ in self.first}
        return [(ts, fr) for _, ts, fr in self.first] + [(ts, fr) for key, ts, fr in self.last if key not in seen]


#: Test hook: called as ``_on_event(name, *details)`` at the engine's ordering points ("drain-started",
#: "sender-starting"); None in normal runs.
_on_event = None


def _event(name, *details):
    if _on_event is not None:
        _on_event(name, *details)


def _plan_senders(stack, topo, streams, deadline, stop, cpu):
    """At most :data:`MAX_SENDERS` sender threads (not started) for ``streams`` (:class:`_StreamTx`).

    One injector per source endpoint, sized for the largest frame of its streams (entered on
    ``stack``), however many streams it sends: memory, file descriptors and threads grow with the
    number of source endpoints (bounded threads), not with the number of streams. Endpoints are
    dealt round-robin to the senders in the order their first stream appears.
    """
    by_src = {}
    for tx in streams:   # one sender per source endpoint and kind (a TX ring, the live-frames generator)
        by_src.setdefault((tx.stream.src, tx.via), []).append(tx)
    nthreads = min(MAX_SENDERS, len(by_src))
    plans = [[] for _ in range(nthreads)]
    for i, ((src, via), txs) in enumerate(by_src.items()):
        fsize = max(_frame_size_for(tx.stream.sizes) for tx in txs)
        inj = _senders.open_sender(stack, topo[src], via, fsize)
        plans[i % nthreads].extend((inj, tx) for tx in txs)
    order = {id(tx): k for k, tx in enumerate(streams)}
    return [_Sender(sorted(jobs, key=lambda j: order[id(j[1])]), deadline, stop, cpu=cpu, index=k)
            for k, jobs in enumerate(plans)]


def _stop_senders(senders, stop):
    """Stop the sender threads and wait until none is inside C, absorbing repeated Ctrl-C.

    Closing an injector while its sender is inside ``send_stream`` would pull the ring from
    under the C loop, so this never returns early: each C call is bounded (~1 s, see
    :class:`_Sender`). A KeyboardInterrupt that arrives meanwhile is held and re-raised once
    every sender has returned.
    """
    stop.set()
    interrupt = None
    for s in senders:
        while s.begun and not s.exited.is_set():
            try:
                s.exited.wait(0.2)
            except KeyboardInterrupt as exc:  # a second (third…) Ctrl-C while waiting
                interrupt = exc
    if interrupt is not None:
        raise interrupt


def _capture_options(options, biggest):
    """Ring geometry for a capture: what the scenario gave, else 16 MiB (64 MiB for jumbo frames).

    The checker keeps up with veth line rate, but a burst while the checking thread is not
    scheduled must fit the ring, or the kernel drops frames (reported as capture drops).
    """
    opts = dict(options)
    opts.setdefault("block_size", 1 << 20)
    opts.setdefault("block_count", 64 if biggest > 4096 else 16)
    if biggest + 64 > opts.get("frame_size", 2048):
        opts.setdefault("frame_size", 1 << (biggest + 64 - 1).bit_length())
    return opts


def _frame_size_for(sizes):
    need = max(sizes) + 128
    size = 2048
    while size < need:
        size *= 2
    return size


def _stats(ep):
    try:
        return dict(ep.stats())
    except Exception:
        return None


def parse_cpus(cpus):
    """Normalise a CPU pinning request to ``(tx_cpu, rx_cpu)`` or None.

    ``cpus``: None (read :data:`CPUS_ENV`, ``NETRING_CPUS=TX,RX``; unset or empty: no pinning),
    a ``"TX,RX"`` string, or a pair of ints. Both CPUs must be in this process's affinity mask.
    Raises :class:`ConfigurationError` naming the bad value and the allowed CPUs.
    """
    source = "cpus"
    if cpus is None:
        cpus = os.environ.get(CPUS_ENV, "").strip()
        source = CPUS_ENV
        if not cpus:
            return None
    allowed = sorted(os.sched_getaffinity(0))
    hint = "give two CPU numbers TX,RX from this process's CPUs %s (e.g. %s=%d,%d)" % (
        allowed, CPUS_ENV, allowed[0], allowed[-1])
    try:
        parts = cpus.split(",") if isinstance(cpus, str) else list(cpus)
        if len(parts) != 2 or any(isinstance(p, (bool, float)) for p in parts):
            raise ValueError
        pair = tuple(int(p) for p in parts)
    except (TypeError, ValueError):
        raise ConfigurationError("%s=%r is not a CPU pair; %s" % (source, cpus, hint), field=source,
                                 value=cpus) from None
    for c in pair:
        if c not in allowed:
            raise ConfigurationError("%s=%r: CPU %d is not available to this process; %s" % (source, cpus, c, hint),
                                     field=source, value=cpus)
    return pair


@contextlib.contextmanager
def _pinned(cpu):
    """Pin the calling thread to ``cpu`` (None: leave it) and restore its affinity mask on exit."""
    if cpu is None:
        yield
        return
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)


def run(scenario, *, artifacts_dir=None, progress=None, keep=False, topology_factory=None, cpus=None,
        all_frames=False):
    """Run ``scenario`` and return its :class:`~netring_testkit.verdict.ScenarioResult`.

    ``progress(text)`` is called every couple of seconds while traffic flows. ``keep=True``
    builds named namespaces and leaves them in place when the scenario fails (for
    ``ip netns exec`` debugging), with the scenario's XDP programs still attached (handed over to
    netlink attachments that last as long as the interface; ``result.kept_hint`` says how to see
    them). ``artifacts_dir``: where a failed scenario's JSON and pcapng go (and then the first and
    last :data:`SAMPLE_FRAMES` frames of each stream and capture are kept for it; with
    ``all_frames`` every frame each capture saw, classified in the pcapng: :mod:`.framelog`).
    Any exception while running (a kernel refusing something, a missing program, a bug) is
    reported as ``status="error"`` with a one-line message, its traceback kept in
    ``result.traceback`` (and the JSON artifact); ``KeyboardInterrupt`` tears everything down
    and propagates. ``requires.xdp_modes`` the built topology cannot meet give
    ``status="skipped"`` with ``result.skip_reason`` (see :func:`~netring_testkit.scenario.check_runtime_requires`).

    ``cpus=(TX, RX)`` (or ``"TX,RX"``; default: the ``NETRING_CPUS`` environment variable, unset =
    no pinning) pins every sender thread to CPU TX and the capture/checker loop (the calling
    thread, its affinity restored afterwards) to CPU RX. On veth the receive softirq runs on the
    sender's CPU, so pinning keeps the checker off it; unpinned, both threads float and the
    round trip loses 10-20 % on a 2-CPU machine. See :func:`parse_cpus`.
    """
    result = ScenarioResult(scenario)
    t0 = time.monotonic()
    try:
        _run(scenario, result, progress, keep, topology_factory, parse_cpus(cpus), sample=bool(artifacts_dir),
             all_frames=bool(artifacts_dir) and all_frames)
        if result.status != "skipped":
            result.failures = evaluate(scenario, result)
            result.status = "failed" if result.failures else "passed"
    except NetringError as exc:
        result.status = "error"
        result.error = "%s: %s" % (type(exc).__name__, exc)
        result.traceback = traceback.format_exc()
    except Exception as exc:  # a bug or an unforeseen failure: a result, never a traceback from deep inside
        result.status = "error"
        result.error = ("internal error while running the scenario: %s: %s (the traceback is in the JSON "
                        "artifact, --netring-artifacts)" % (type(exc).__name__, exc))
        result.traceback = traceback.format_exc()
    finally:
        result.duration = time.monotonic() - t0
    if artifacts_dir and result.status in ("failed", "error"):
        from .report import write_artifacts

        write_artifacts(artifacts_dir, result)
    return result


#: The XDP feature query used for ``requires.xdp_modes`` (tests replace it); None = netring.netdev.features.
_features = None


def _topology(scenario, keep, factory):
    if factory is not None:
        return factory(scenario.topology)
    from netring_testkit.topology import Topology

    return Topology(scenario.topology, keep=keep)


def _run(scenario, result, progress, keep, topology_factory, cpus=None, sample=False, all_frames=False):
    from netring.check import SeqChecker

    deadline = time.monotonic() + scenario.timeout
    stop = threading.Event()
    senders = []
    failed = True
    topo = _topology(scenario, keep, topology_factory)
    with contextlib.ExitStack() as stack:
        # Closing the topology last: namespaces go only after XDP, captures and injectors.
        kept_xdp = []

        def close_topology():
            topo.close(failed=failed)
            if topo.kept:
                result.kept = list(topo.kept)
                result.kept_hint = topo.enter_hint() + _xdp_hint(kept_xdp)

        topo.build()
        stack.callback(close_topology)
        topo.quiet_replies()   # the receivers' stacks answer nothing the streams send (but TCP RSTs)
        stack.callback(stop.set)

        from .scenario.requires import check_runtime_requires

        reason = check_runtime_requires(scenario, topo, features=_features)
        if reason:
            result.status = "skipped"
            result.skip_reason = reason
            failed = False
            return

        # A failed run's programs stay attached in the namespaces --netring-keep keeps.
        keeping = (lambda: kept_xdp if failed else None) if keep and topo.keep else None
        loaded = {}
        for x in scenario.xdp:
            loaded[x.attach] = _attach_xdp(stack, topo, x, keeping)
            # What was asked and what the kernel gave: an `auto` attach may have fallen back to generic.
            result.xdp_attachments.append({
                "at": x.attach, "program": x.program if x.builtin else x.program["program"],
                "requested": x.mode, "obtained": loaded[x.attach][0].mode})
        atts = {ep: att for ep, (att, _obj) in loaded.items()}
        programs = {a["at"]: a["obtained"] for a in result.xdp_attachments}
        # AF_XDP captures first: their xsk program is on the endpoint before the peer rule looks.
        biggest = max(max(s.sizes) for s in scenario.streams)
        receivers = {}
        for c in scenario.captures:
            if c.via == "afxdp":
                receivers[c.on] = open_capture(stack, topo[c.on], c, None)
                programs[c.on] = receivers[c.on].program_mode
        # Each stream's sender (traffic[].via), then the veth peer rule: pass where frames must arrive.
        counted_via = {c.on: c.via for c in scenario.captures}
        choices = {st.name: _senders.choose(st, scenario.expect[st.name].order, topo[st.src], programs,
                                            capture_via=counted_via.get(scenario.expect[st.name].at, "afpacket"))
                   for st in scenario.streams}
        passes, bare = _senders.plan_peer_passes(scenario, topo, programs, choices)
        for pp in passes:
            ep = topo[pp.at]
            atts[pp.at] = attach_peer_pass(stack, pp.at, ep.ifname, ep.netns)
            result.peer_passes.append(pp)

        streams = []
        for st in scenario.streams:
            templates, offsets = build_templates(st, topo[st.src], topo[st.dst])
            streams.append(_StreamTx(st, templates, offsets, choices[st.name].via))
        expected = {s.stream_id: s.count for s in scenario.streams}
        caps = []
        for c in scenario.captures:
            rx = receivers.get(c.on) or open_capture(stack, topo[c.on], c, _capture_options(c.options, biggest))
            caps.append((c.on, rx, _checker(scenario, c.on, streams, SeqChecker(expected, keep_unexpected=8))))
            result.capture_paths[c.on] = rx.path
        samplers = {c.on: framelog.AllFrames() if all_frames else _ArrivalSample()
                    for c in scenario.captures if c.via == "afpacket"} if sample else {}
        result.arrived_all = all_frames

        watched = set(c.on for c in scenario.captures) | set(scenario.expect_interface) | set(atts)
        watched |= {s.src for s in scenario.streams} | {s.dst for s in scenario.streams}
        watched |= {sending for _, sending, _, _ in bare}
        before = {ep: _stats(topo[ep]) for ep in sorted(watched)}

        senders.extend(_plan_senders(stack, topo, streams, deadline, stop, cpus and cpus[0]))
        # Registered after the injectors, so it runs before they close on every way out (LIFO).
        stack.callback(_stop_senders, senders, stop)

        tx_start = time.monotonic()
        try:
            with _pinned(cpus and cpus[1]):
                # The drain loop is running before the first sender starts (it starts them): a burst
                # never meets a capture ring nobody empties.
                _drain(scenario, caps, senders, deadline, progress, tx_start, samplers)
        finally:
            _stop_senders(senders, stop)
        if sample:
            result.sent_samples = [f for tx in streams for f in tx.sample()]
            result.arrived_samples = {on: smp.frames() for on, smp in samplers.items()}
        tx_end = max((s.finished_at or time.monotonic()) for s in senders) if senders else tx_start
        result.tx_seconds = max(tx_end - tx_start, 1e-9)
        for s in senders:
            if s.error is not None:
                if isinstance(s.error, NetringError):
                    raise s.error
                name = s.error_stream.name if s.error_stream is not None else "?"
                raise ScenarioError("stream %s: injection failed: %r" % (name, s.error)) from s.error

        # counters
        for ep, att in atts.items():
            counters = _xdp_counters(att)
            if counters is not None:
                result.xdp[ep] = counters
        for ep, wanted in scenario.expect_maps.items():
            result.maps[ep] = _map_values(loaded[ep][1], wanted)
        for ep, b in before.items():
            a = _stats(topo[ep])
            if a is not None and b is not None:
                result.interfaces[ep] = {k: a[k] - b.get(k, 0) for k in a if isinstance(a[k], int)}
        result.links = topo.link_stats()  # impaired links: the bridge's counters beside the checker's

        result.hints.extend(_senders.vanish_hints(scenario, bare, result.interfaces))
        by_ep = {on: chk for on, _, chk in caps}
        for on, rx, chk in caps:
            with contextlib.suppress(AttributeError, NetringError):
                result.captures[on] = rx.counters()
            result.unexpected[on] = int(chk.unexpected)
            result.unexpected_frames[on] = [bytes(f) for f in chk.unexpected_frames]
        sent = {tx.stream.stream_id: tx.sent for tx in streams}
        for st in scenario.streams:
            at = scenario.expect[st.name].at
            chk = by_ep.get(at)
            r = StreamResult(st.name, st.stream_id, at, st.count, sent=sent.get(st.stream_id, 0),
                             via=choices[st.name].via, via_reason=choices[st.name].reason,
                             counted_by="content" if st.by_content else "stamp")
            if chk is not None:
                c = chk.counts(st.stream_id)
                r.delivered, r.lost, r.duplicated = c[1], c[2], c[3]
                r.reordered, r.corrupted = c[4], c[5]
            result.streams.append(r)
        failed = bool(evaluate(scenario, result))


def _checker(scenario, on, streams, seq_checker):
    """The checker of the capture on ``on``: ``seq_checker``, or a :class:`netring.content.ContentChecker` in front
    of it when streams counted by content (``stamp: false``) are expected there (every other frame goes on to
    ``seq_checker``, so stamped streams and unexpected frames are judged as everywhere else)."""
    mine = {tx.stream.stream_id: (tx.templates, tx.stream.count) for tx in streams
            if tx.untouched and scenario.expect[tx.stream.name].at == on}
    if not mine:
        return seq_checker
    from netring.content import ContentChecker

    try:
        return ContentChecker(mine, fallback=seq_checker)
    except ConfigurationError as exc:  # two traces share a frame
        names = {st.stream_id: st.name for st in scenario.streams}
        raise ScenarioError("capture %s: %s (streams: %s)" % (on, exc, ", ".join("%d=%s" % (sid, names[sid])
                                                                               for sid in sorted(mine)))) from None


def _xdp_hint(kept_xdp):
    """Lines telling how to see the XDP programs left attached in kept namespaces."""
    return "".join("\n" + xdp_hint(info, ep.netns.name, ep.ifname, ep.name) for ep, info in kept_xdp)


def _full_delivery_targets(scenario, caps):
    """(checker, stream_id, count) for every stream expected to arrive in full: drain may stop when all are in."""
    by_ep = {on: chk for on, _, chk in caps}
    out = []
    for st in scenario.streams:
        ex = scenario.expect[st.name]
        if ex.delivered.percent and ex.delivered.op == "==" and ex.delivered.value == 100.0 and ex.at in by_ep:
            out.append((by_ep[ex.at], st.stream_id, st.count))
        else:
            return None  # some stream is expected to lose frames: wait for the quiet period
    return out


def _drain(scenario, caps, senders, deadline, progress, tx_start, samplers=None):
    samplers = samplers or {}
    targets = _full_delivery_targets(scenario, caps)
    poller = select.poll()
    fds = {}
    for entry in caps:
        fd = entry[1].fileno()
        fds[fd] = entry
        poller.register(fd, select.POLLIN)
    last_rx = time.monotonic()
    next_progress = tx_start + _PROGRESS_EVERY
    _event("drain-started")
    for s in senders:
        if s.ident is None:  # not started yet
            _event("sender-starting", s.name)
            s.start()
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        sending = any(s.is_alive() for s in senders)
        if not sending:
            if targets is not None and all(chk.counts(sid)[1] >= n for chk, sid, n in targets):
                break
            tx_end = max((s.finished_at or now) for s in senders) if senders else now
            if now - max(last_rx, tx_end) >= scenario.quiet:
                break
        wait_ms = int(max(1, min(100, (deadline - now) * 1000)))
        got = False
        if len(caps) == 1:
            on, rx, chk = caps[0]
            got = rx.step(chk, samplers.get(on), wait_ms / 1000.0)
        else:
            for fd, _ in poller.poll(wait_ms):
                on, rx, chk = fds[fd]
                got = rx.step(chk, samplers.get(on), 0) or got
        if got:
            last_rx = time.monotonic()
        if progress is not None and time.monotonic() >= next_progress:
            next_progress = time.monotonic() + _PROGRESS_EVERY
            sent = sum(s.sent for s in senders)
            total = scenario.total_frames
            seen = sum(chk.counts(st.stream_id)[1] for _, _, chk in caps for st in scenario.streams)
            progress("%s: sent %d/%d, delivered %d, %.1fs" % (scenario.id, sent, total, seen,
                                                            time.monotonic() - tx_start))
