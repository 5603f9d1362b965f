"""In-kernel frame generation: :class:`XdpInjector` (BPF_PROG_TEST_RUN on live frames, kernel 5.18+).

The kernel runs an XDP program ``repeat`` times over pages initialised from one template
(``BPF_F_TEST_XDP_LIVE_FRAMES``) and transmits every frame the program returns ``XDP_TX`` for
out of ``ctx_in.ingress_ifindex``. No socket, no copy from user space per frame: this is the
fastest sender netring has (FIELD-NOTES: ~10x the TX ring into an XDP_DROP on veth).

For a stamped stream a generator program is assembled per template (:mod:`netring.bpf.asm`).
Everything that does not depend on the seq is precomputed here and baked into the program as
constants: the stamp hash up to the seq word (``H(H(seed, payload), word0)``) and the constant
part of the RFC 1624 checksum update (``~HC + ~m`` over the template's stamp plus the sum of the
stamp bytes that do not change, in the byte order the program sums in). Per frame the program
takes the seq from its one-entry map (a direct map-value pointer: no helper call, no lookup) and
advances it by the number of templates (so the map is also the frame counter), writes seq and
check and patches the checksum with one 16-bit fold of the words it has just stored — the same
arithmetic as the C stamper (``csrc/stampc.c``), so the frames are byte-identical to
:meth:`netring.Injector.send_stream`'s. The programs stay loaded across calls of one injector
(cached by template, checksum offset and stream id; the first seq of a call goes in the map). The page a frame lives in is reused for later frames,
so the program writes every byte that varies each time, and stores the headers (up to 128 B) and the
constant stamp fields again too: the receiving side may have changed them in place (a veth untagging a
VLAN frame does). Payload bytes are not rewritten; a receiver that writes into them in place would
show up as corrupt frames at the checker, not pass unnoticed.

Frame ``k`` of a stream is template ``k % n`` with seq ``first_seq + k``. One PROG_RUN call
transmits one template, so with several templates a chunk goes out grouped by template (all of
template 0's frames of the chunk, then template 1's, ...): every frame carries the right seq,
but the wire order differs from the seq order within a chunk. A single template goes out in order.
"""
import collections
import errno
import os
import struct
import threading
import time

from . import _netlink
from ._core import ffi, lib
from .bpf.asm import R0, R1, R2, R3, R4, R5, R7, XDP_ABORTED, XDP_DROP, XDP_TX, Asm
from . import netdev
from ._ring import byte_view, check_int, check_timeout
from .bpf.fd import bpf_error
from .bpf.maps import create_map
from .bpf.objects import load_program
from .check import check_stream_args, prepare_templates
from .errors import ConfigurationError, FrameTooLargeError, NetringError, UnsupportedError
from .netns import NetNS, resolve
from .stamp import MAGIC, STAMP_LEN

__all__ = ["XdpInjector", "VethPeerError", "live_frames_supported", "max_live_frame", "MAX_BATCH"]

#: Largest ``batch_size`` the kernel accepts (``TEST_XDP_MAX_BATCH``).
MAX_BATCH = 256
_PRIME = 0x100000001B3
_SEED = 0xCBF29CE484222325
_MASK64 = (1 << 64) - 1
_CHUNK_S = 1.0        # seconds of frames per unpaced PROG_RUN call: the ~30 ms fixed cost of a call stays ~3 %
_FIRST_RATE = 1e6      # frames/s assumed for an injector's first chunk (then: what its chunks measured)
_MIN_SPAN_S = 0.1      # with less time than this left before the deadline, a call returns instead of starting a chunk
_DEADLINE_SHARE = 0.9  # a chunk bounded by the deadline is planned to end this share of the time left before it
_EST_MIN_S = 0.1       # a chunk cut short of its plan updates the rate only if it took at least this long
_CACHE_MAX = 32        # generators an injector keeps loaded (least recently used closed beyond)
_PSEUDO_MAP_VALUE = 2  # BPF_PSEUDO_MAP_VALUE: ld_imm64 of a map value's address (one-entry arrays, 5.2+)
_MAX_CHUNK = (1 << 32) - 1  # repeat is a u32
_SLICE_S = 0.05        # pacing: one chunk per 50 ms
_MD_DATA, _MD_DATA_END = 0, 4
_MAX_HEAD = 128        # header bytes a generator restores per frame (L2 + tags + IPv6 + TCP with options fit)
_XDP_NDO_XMIT = "ndo-xmit"

_LIVE = []  # [bool, largest frame] once probed


class VethPeerError(NetringError):
    """The device is a veth whose peer runs no XDP program: XDP_TX'd frames would be dropped silently."""


def live_frames_supported():
    """True if this kernel runs XDP programs on live frames (``BPF_F_TEST_XDP_LIVE_FRAMES``, 5.18+).

    Probed once per process, with :func:`max_live_frame`: one-frame live runs of an XDP_DROP
    program on the loopback device (nothing is sent).
    """
    if not _LIVE:
        a = Asm()
        a.ret(XDP_DROP)
        with load_program(a, name="nr_live_probe") as prog:
            def runs(size):
                frame = bytes(size)
                rc = lib.nr_bpf_xdp_live_run(prog.fd, frame, size, 1, 1, 1)
                if rc == -errno.EPERM:
                    raise bpf_error(rc, "probing live-frames test runs")
                return rc == 0
            ok = runs(60)
            lo, hi = 60, os.sysconf("SC_PAGE_SIZE")
            while ok and lo < hi:  # ~12 runs of ~30 us
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if runs(mid) else (lo, mid - 1)
        _LIVE[:] = [ok, lo if ok else 0]
    return _LIVE[0]


def max_live_frame():
    """The largest frame (bytes) a live-frames run takes on this kernel: a page less XDP headroom,
    the kernel's per-page run state and ``skb_shared_info`` (3408 B on 6.18 with 4 KiB pages).
    Probed once (:func:`live_frames_supported`); 0 where live frames are not supported."""
    live_frames_supported()
    return _LIVE[1]


def _fold(s):
    s = (s & 0xFFFF) + (s >> 16)
    return (s & 0xFFFF) + (s >> 16)


def _csum_part(data, pos, anchor):
    """The C stamper's position-weighted byte sum (csrc/stampc.c, nr_st__csum_part)."""
    return sum(b if (pos + i - anchor) & 1 else b << 8 for i, b in enumerate(data))


def _restore(a, frame, start, end):
    """Store ``frame[start:end]`` at ``r2 + start`` from immediates (r2 = data, bounds checked before)."""
    off = start
    while off < end:
        size, width = ("w", 4) if end - off >= 4 else ("h", 2) if end - off >= 2 else ("b", 1)
        a.st(size, R2, off, int.from_bytes(frame[off:off + width], "little"))
        off += width


def _generator(slot, stride, frame, stamp_off, head, hpre, csum):
    """Assemble the stamping program for one template (see the module doc).

    ``slot``: a one-entry array map whose u64 is the next seq (host order); the program reads it
    through a direct map-value pointer (no lookup helper, no NULL check) and adds ``stride`` (the
    number of templates) per frame, so it is also the frame counter. ``frame``: the template as
    run (our stream id written); its first ``head`` bytes (the headers) and the constant stamp
    fields are stored again on every run: the kernel recycles a page to later frames with whatever
    the receiving side did to it (a veth untagging a VLAN frame moves the MAC addresses over the
    tag in place), so they must not be trusted to keep the template.

    ``csum``: None, or ``(csum_off, odd, kk)`` — checksum offset, whether the stamp sits at an odd
    distance from it, and the constant part of RFC 1624's ``~HC + ~m + m'`` (``~HC + ~m`` plus
    the sum of the constant stamp bytes), byte-swapped when ``odd`` is false: the program sums
    the varying stamp bytes as the little-endian 16-bit lanes of the words it has just stored,
    which is the checksum's byte order when the distance is odd and its byte swap when it is even
    (one's complement sums commute with the swap). UDP's 0 rule is applied when ``csum_off``'s
    protocol is UDP (``csum[3]``).
    """
    need = stamp_off + STAMP_LEN if csum is None else max(stamp_off + STAMP_LEN, csum[0] + 2)
    a = Asm()
    a.ldx("w", R2, R1, _MD_DATA)
    a.ldx("w", R3, R1, _MD_DATA_END)
    a.mov(R4, R2).add(R4, need)
    a.jmp(">", R4, R3, "abort")
    _restore(a, frame, 0, head)
    _restore(a, frame, stamp_off, stamp_off + 8)
    # seq = *slot; *slot = seq + stride (one runner per PROG_RUN call, on one CPU: no atomics needed)
    a.ld_imm64(R7, slot.fd, src=_PSEUDO_MAP_VALUE)  # r7 = &value of the slot's entry 0 (offset 0)
    a.ldx("dw", R1, R7, 0)
    a.mov(R5, R1).add(R5, stride).stx("dw", R7, 0, R5)
    a.be(R1, 64)                                    # r1 = the seq bytes as the stamp holds them (BE) = hash word 1
    a.stx("dw", R2, stamp_off + 8, R1)
    # check: h = (hpre ^ word1) * PRIME; check = (h ^ h >> 32) & 0xffffffff, stored big-endian
    a.ld_imm64(R4, hpre).xor(R4, R1)
    a.ld_imm64(R5, _PRIME).alu("mul", R4, R5)
    a.mov(R5, R4).rsh(R5, 32).xor(R4, R5)
    a.be(R4, 32)                                    # (zero-extends: r4 = the stored check bytes, LE)
    a.stx("w", R2, stamp_off + 16, R4)
    if csum is not None:
        csum_off, odd, kk, udp = csum
        # r0 = lanes of seq + lanes of check + the constant part (< 2**34), folded to 16 bits (three folds)
        a.mov(R0, R1).rsh(R0, 32).mov32(R5, R1).add(R0, R5).add(R0, R4).add(R0, kk)
        for _ in range(3):
            a.mov(R5, R0).rsh(R5, 16).and_(R0, 0xFFFF).add(R0, R5)
        a.xor(R0, 0xFFFF)                           # HC' = ~(~HC + ~m + m')
        if udp:
            a.jmp("!=", R0, 0, "store_csum")        # (0 and 0xffff are their own byte swaps)
            a.mov(R0, 0xFFFF)                       # UDP: a computed 0 is sent as 0xffff
            a.label("store_csum")
        if odd:
            a.be(R0, 16)                            # checksum order -> stored big-endian
        a.stx("h", R2, csum_off, R0)                # even: r0 is already the byte swap, i.e. the stored bytes
    a.ret(XDP_TX)
    a.label("abort")
    a.ret(XDP_ABORTED)
    return a


def _counter(slot, frame, head):
    """Assemble :meth:`XdpInjector.send`'s program: restore the first ``head`` bytes, count, XDP_TX."""
    a = Asm()
    a.ldx("w", R2, R1, _MD_DATA)
    a.ldx("w", R3, R1, _MD_DATA_END)
    a.mov(R4, R2).add(R4, head)
    a.jmp(">", R4, R3, "abort")
    _restore(a, frame, 0, head)  # pages come back as the receiver left them (see _generator)
    a.ld_imm64(R7, slot.fd, src=_PSEUDO_MAP_VALUE)
    a.ldx("dw", R1, R7, 0).add(R1, 1).stx("dw", R7, 0, R1)
    a.ret(XDP_TX)
    a.label("abort")
    a.ret(XDP_ABORTED)
    return a


def _swap16(v):
    return ((v & 0xFF) << 8) | (v >> 8)


class _Gen:
    """One loaded generator: the frame it runs over, its program, and the slot map the program owns.

    The slot holds the next seq; :meth:`start` sets it for a send, :meth:`frames` reads how many
    frames the program has run since (``stride`` seqs per frame).
    """

    def __init__(self, frame, program, slot, stride):
        self.frame = frame
        self.buf = ffi.from_buffer(frame)  # made once (FIELD-NOTES: ~75 ns per from_buffer)
        self.program = program
        self.slot = slot
        self.stride = stride
        self.base = 0

    def start(self, seq):
        """Make the next frame carry ``seq``."""
        self.base = seq & _MASK64
        self.slot.update(0, self.base)

    def frames(self):
        """Frames run since :meth:`start`."""
        return ((self.slot.lookup(0) - self.base) & _MASK64) // self.stride

    def close(self):
        self.program.close()  # closes the slot map with it


def _load(asm_for, frame):
    """Create a slot map, assemble ``asm_for(slot)`` and load it; return ``(program, slot)``."""
    slot = create_map("array", 4, 8, 1, name="nr_livegen")
    try:
        prog = load_program(asm_for(slot), name="nr_livegen", maps={"slot": slot})
    except BaseException:
        slot.close()
        raise
    return prog, slot


def _stream_gen(t, orig, stream_id, stride):
    """The generator of template ``t`` (a prepared C template, ``orig`` its bytes) for ``stream_id``."""
    so = t.stamp_off
    plen = (orig[so + 6] << 8) | orig[so + 7]
    frame = bytearray(orig)
    frame[so + 4:so + 6] = struct.pack(">H", stream_id)
    word0 = int.from_bytes(struct.pack(">IHH", MAGIC, stream_id, plen), "little")
    hpre = ((t.phash ^ word0) * _PRIME) & _MASK64
    csum = None
    co = t.csum_off
    if co >= 0:
        hc = (orig[co] << 8) | orig[co + 1]
        if not (t.udp and hc == 0):  # UDP checksum 0 means "none": left so, as the C stamper does
            m = _fold(_csum_part(orig[so:so + STAMP_LEN], so, co))
            c0 = _csum_part(frame[so:so + 8], so, co)
            kk = _fold((~hc & 0xFFFF) + (~m & 0xFFFF) + c0)  # nonzero: c0 holds the magic
            odd = (so - co) & 1
            csum = (co, odd, kk if odd else _swap16(kk), bool(t.udp))
    head = min(so - plen, _MAX_HEAD)
    frame = bytes(frame)
    prog, slot = _load(lambda s: _generator(s, stride, frame, so, head, hpre, csum), frame)
    return _Gen(frame, prog, slot, stride)


def _plans(tm, templates_bytes, stream_id):
    """Fresh (uncached) generators for every template of ``tm`` (the caller closes them)."""
    out = []
    try:
        for i in range(tm.n):
            out.append(_stream_gen(tm.arr[i], templates_bytes[i], stream_id, tm.n))
    except BaseException:
        for g in out:
            g.close()
        raise
    return out


class XdpInjector:
    """Generate frames in the kernel and transmit them out of ``ifname`` (live-frames XDP test runs, 5.18+).

    ``ifname``: the sending interface, in ``netns`` (a :class:`~netring.netns.NetNS`, a name, a
    path, or None for the current namespace). ``batch_size``: pages the kernel prepares per batch
    (1..256). ``check_peer``: raise :class:`VethPeerError` up front when ``ifname`` is a veth whose
    peer can not receive XDP_TX'd frames.

    **veth**: a frame XDP_TX'd into a veth reaches the peer only if the *peer* runs an XDP program
    (e.g. the built-in ``pass``: ``xdp.attach(peer, builtin("pass"), netns=...)``); otherwise the
    kernel drops it silently (counted as ``tx_dropped``; GRO on the peer lets only a few hundred
    through). The constructor reads the peer's XDP attachment (IFLA_LINK / IFLA_LINK_NETNSID) and
    raises :class:`VethPeerError` if it has no native program; where the peer cannot be read it falls
    back to the veth's ``ndo-xmit`` XDP feature (kernel 6.3+), which GRO on the peer also sets.

    Counts are the generator's own: frames the program ran over and returned XDP_TX for. What the
    device then drops (a full peer queue) is not subtracted; count at the receiver to know.

    The kernel runs are made by the calling thread (inside ``netns`` for the call), so a signal for
    it — Ctrl-C in the main thread — ends the run in the kernel after its current batch and
    raises in the caller; nothing goes on sending behind it. One send runs at a time per injector
    (a lock): the generator programs it keeps loaded share their seq slots.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, ifname, netns=None, batch_size=64, check_peer=True):
        check_int("batch_size", batch_size, 1, MAX_BATCH, " (the kernel's TEST_XDP_MAX_BATCH)")
        self._ns = None
        self._closed = False
        #: Loaded generators by (kind, template bytes, checksum offset, stream id, ...), least recently used first.
        self._gens = collections.OrderedDict()
        self._lock = threading.Lock()  # one send at a time: the generators' seq slots are shared
        self._rate = _FIRST_RATE       # frames/s the last measured chunk ran at, the call's fixed cost included
        self._stuck = ffi.new("int *")
        ns, owned = resolve(netns)
        if ns is not None and not owned:
            ns = NetNS.open(ns)
        self._ns = ns
        try:
            #: The sending interface's name and index (in :attr:`netns`).
            self.ifname = ifname
            self.ifindex = self._run(_ifindex_here, ifname) if ns is None else ns.ifindex(ifname)
            self.batch_size = batch_size
            if not live_frames_supported():
                raise UnsupportedError("this kernel (%s) cannot run XDP programs on live frames "
                                       "(BPF_F_TEST_XDP_LIVE_FRAMES needs Linux 5.18+); use netring.Injector instead"
                                       % os.uname().release)
            self._kind, self._mtu, peer_xdp = self._run(_link_facts, self.ifindex)
            if check_peer and self._kind == "veth" and peer_xdp is None:
                # the peer could not be read: veth advertises ndo-xmit only while its peer can take XDP frames
                try:
                    peer_xdp = _XDP_NDO_XMIT in netdev.features(self.ifindex, self._ns).xdp_features
                except UnsupportedError:  # no netdev family (kernel < 6.3): cannot tell
                    pass
            if check_peer and self._kind == "veth" and peer_xdp is False:
                raise VethPeerError(
                    "%s is a veth whose peer runs no native XDP program, so the kernel would drop every "
                    "XDP_TX'd frame silently (tx_dropped; a generic-mode program there does not help); attach one "
                    "on the peer first, e.g. netring.xdp.attach(PEER, netring.bpf.builtin('pass'), netns=PEER_NS)"
                    % self._where())
            #: Frames transmitted over this injector's life (the programs' counters).
            self.sent_frames = 0
        except BaseException:
            self.close()
            raise

    # -- helpers ---------------------------------------------------------------------------
    def _run(self, fn, *args):
        return fn(*args) if self._ns is None else self._ns.run(fn, *args)

    def _where(self):
        return self.ifname if self._ns is None else "%s in namespace %s" % (self.ifname, self._ns)

    def _check_open(self):
        if self._closed:
            raise NetringError("XdpInjector on %s is closed" % self._where())

    def _check_frame(self, frame, field, index=None):
        n = len(frame)
        if n < 14:
            raise ConfigurationError("%s is %d B; a frame needs at least an Ethernet header (14 B)" % (field, n),
                                     field=field, value=n)
        tagged = (frame[12] << 8 | frame[13]) in (0x8100, 0x88A8)
        link_max = self._mtu + 14 + (4 if tagged else 0)
        if n > link_max:
            raise FrameTooLargeError(n, link_max, field=field, limit="mtu", index=index, message=(
                "%s of %d B exceeds what %s carries (MTU %d + %d B of Ethernet header%s = %d B); raise its MTU "
                "or send a shorter frame" % (field, n, self._where(), self._mtu, 18 if tagged else 14,
                                             " and VLAN tag" if tagged else "", link_max)))
        if n > max_live_frame():
            raise FrameTooLargeError(n, max_live_frame(), field=field, limit="page", index=index, message=(
                "%s of %d B does not fit one page of the kernel's live-frames page pool (at most %d B: a page less XDP "
                "headroom, the kernel's per-page state and skb_shared_info); send it with netring.Injector instead"
                % (field, n, max_live_frame())))

    def _run_chunk(self, prog_fd, buf, size, repeat):
        # In a namespace the run is made by this thread, which enters it for the call (C: setns there
        # and back): Ctrl-C reaching this thread then ends the run in the kernel (-EINTR after the
        # current batch), where a run on the namespace's helper thread would go on to its end.
        if self._ns is None:
            rc = lib.nr_bpf_xdp_live_run(prog_fd, buf, size, self.ifindex, repeat, self.batch_size)
        else:
            rc = lib.nr_live_run_in(self._ns.fileno(), prog_fd, buf, size, self.ifindex, repeat, self.batch_size,
                                    self._stuck)
            if self._stuck[0]:
                raise NetringError("could not return this thread from namespace %s after a live-frames run (%s); "
                                   "the thread is left in it: end it" % (self._ns, os.strerror(self._stuck[0])))
        if rc < 0 and rc != -errno.EINTR:
            raise bpf_error(rc, "generating frames on %s (live-frames test run)" % self._where())

    def _loop(self, gens, count, rate_pps, timeout):
        """Run ``count`` frames over ``gens`` (frame k: generator k % n) in bounded chunks; return frames run.

        Each PROG_RUN call costs a fixed ~25-30 ms here (kernel 6.18: tearing down its page pool waits
        for an RCU grace period once frames were in flight), so unpaced chunks are long: ~``_CHUNK_S``
        of frames at the rate this injector measured on its earlier chunks (``_FIRST_RATE`` before
        the first), never planned past the deadline: a chunk the deadline bounds is planned to end
        at ``_DEADLINE_SHARE`` of the time left. With a ``timeout`` the overshoot is what the last
        chunk takes beyond that plan: the fixed cost when the timeout is shorter than it, else only
        a drop of the rate by more than 10 % during the chunk (a shared CPU), and then at most that
        slowdown over one chunk of at most ``_CHUNK_S`` (the first chunk of an injector on a device
        slower than ``_FIRST_RATE``: that chunk's planned frames at the real rate). Measured here
        (shared 2-CPU machine, 64 B, veth, 16 runs at timeouts of 0.05 to 2 s): -92 ms to +58 ms
        (the +58 ms at 0.05 s); without the margin once +350 ms at 2 s. With less than
        ``_MIN_SPAN_S`` left after a chunk the call returns early rather than pay the fixed cost
        for a sliver. With ``rate_pps`` a chunk is
        ``rate_pps * _SLICE_S`` frames, started on schedule: the average rate is kept, each chunk
        leaves as a burst at line rate.
        """
        n = len(gens)
        want = [(count - i + n - 1) // n if i < count else 0 for i in range(n)]
        done = [0] * n
        t0 = time.monotonic()
        deadline = None if timeout is None else t0 + timeout
        total = 0
        while total < count:
            now = time.monotonic()
            if rate_pps is not None:
                due = t0 + total / rate_pps
                if deadline is not None and due >= deadline:
                    break
                if due > now:
                    time.sleep(due - now)
                    now = time.monotonic()
                chunk = max(1, int(rate_pps * _SLICE_S))
            else:
                span = _CHUNK_S
                if deadline is not None:
                    if total and deadline - now < _MIN_SPAN_S:
                        break
                    span = min(span, (deadline - now) * _DEADLINE_SHARE)
                chunk = max(MAX_BATCH, int(self._rate * span))
            if deadline is not None and now >= deadline:
                break
            planned = chunk
            chunk = min(chunk, count - total, _MAX_CHUNK)
            for i, g in enumerate(gens):
                r = min(want[i] - done[i], -(-chunk // n))
                if r <= 0:
                    continue
                self._run_chunk(g.program.fd, g.buf, len(g.frame), r)
                done[i] = g.frames()
            new_total = sum(done)
            took = time.monotonic() - now
            if rate_pps is None and new_total > total and took > 0 and (
                    new_total - total >= planned or took >= _EST_MIN_S):
                # the call's fixed cost included: chunks err short. A chunk cut short of its plan (the
                # end of a stream) is not measured: its fixed-cost share would understate the rate. A
                # chunk the deadline sized is (it ran as planned; else a fast device would keep the
                # first guess all along, each chunk sized from it: measured, 8 calls for 5M frames).
                self._rate = (new_total - total) / took
            total = new_total
        return total

    # -- public -------------------------------------------------------------------------------
    def _cached(self, key, make):
        """The generator cached under ``key`` (made by ``make()`` and cached on a miss)."""
        g = self._gens.pop(key, None)
        if g is None:
            g = make()
        self._gens[key] = g  # most recently used last
        return g

    def _trim(self, keep):
        """Close the least recently used generators beyond ``max(_CACHE_MAX, keep)``."""
        while len(self._gens) > max(_CACHE_MAX, keep):
            self._gens.pop(next(iter(self._gens))).close()

    def _enter_send(self):
        """Take the send lock; if the injector was closed meanwhile, release what it holds and raise."""
        self._lock.acquire()
        if self._closed:
            try:
                self._release_all()
            finally:
                self._lock.release()
            self._check_open()

    def _exit_send(self, sent):
        """Count ``sent`` and give the send lock back; a close() that came during the send (and found the
        lock taken) left the programs and the namespace handle to be released here, under the lock."""
        try:
            self.sent_frames += sent
            if self._closed:
                self._release_all()
        finally:
            self._lock.release()

    def _release_all(self):
        """Unload the cached generators and close the namespace handle (the caller holds the send lock)."""
        self._close_gens()
        if self._ns is not None:
            self._ns.close()   # idempotent; the handle stays for messages (its label)

    def _forget(self, gens):
        """Unload ``gens`` after a failed or interrupted send: their seq slots were left wherever the
        run stopped, and a later send must start from fresh ones."""
        for key in [k for k, g in self._gens.items() if any(g is x for x in gens)]:
            self._gens.pop(key).close()

    def _close_gens(self):
        while self._gens:
            self._gens.popitem()[1].close()

    def send(self, frame, count=1, timeout=None):
        """Transmit ``frame`` (bytes-like) ``count`` times; return the frames transmitted.

        ``timeout``: stop after this many seconds (the return value says how many went out).
        The program for ``frame`` stays loaded for later calls (see :meth:`send_stream`).
        """
        self._check_open()
        frame = bytes(byte_view("frame", frame))
        self._check_frame(frame, "frame")
        check_int("count", count, 0, (1 << 64) - 1)
        timeout = check_timeout("timeout", timeout)
        if count == 0:
            return 0
        head = min(len(frame), _MAX_HEAD)

        def make():
            prog, slot = _load(lambda sl: _counter(sl, frame, head), frame)
            return _Gen(frame, prog, slot, 1)

        self._enter_send()
        g, sent = None, 0
        try:
            g = self._cached(("send", frame), make)
            g.start(0)
            sent = self._loop([g], count, None, timeout)
            self._trim(1)
        except BaseException:
            self._forget([g] if g is not None else [])
            raise
        finally:
            self._exit_send(sent)
        return sent

    def send_stream(self, templates, stream_id, first_seq, count, rate_pps=None, csum_offsets=None, timeout=None):
        """Transmit ``count`` stamped frames of stream ``stream_id``, seqs ``first_seq``…, cycling ``templates``.

        The same signature and meaning as :meth:`netring.Injector.send_stream`, and byte-identical
        frames: frame ``k`` is ``templates[k % n]`` with seq ``first_seq + k``, its check recomputed
        and its L4 checksum at ``csum_offsets[i]`` patched (RFC 1624; -1/None: left alone). With
        several templates a chunk goes out grouped by template (see the module doc). ``rate_pps``:
        pace between chunks of ~50 ms. ``timeout``: stop after this many seconds (the overshoot is
        bounded as :meth:`_loop` says: typically the ~30 ms fixed cost of one kernel call). Returns the
        frames transmitted, from the generator's own counter.

        The generator programs stay loaded for the next calls with the same templates, checksum
        offsets and stream id (the seq is set in their map per call), so a caller sending a stream in
        many calls assembles and verifies them once; :meth:`close` unloads them.
        """
        self._check_open()
        timeout = check_stream_args(stream_id, first_seq, count, rate_pps, timeout)
        tm = prepare_templates(templates, csum_offsets)
        tl = [bytes(ffi.buffer(tm.arr[i].data, tm.arr[i].len)) for i in range(tm.n)]
        for i, t in enumerate(tl):
            self._check_frame(t, "templates[%d]" % i, index=i)
        if count == 0:
            return 0
        n = tm.n
        self._enter_send()
        gens, seen, sent = [], {}, 0
        try:
            for i in range(n):
                t = tm.arr[i]
                # a template repeated in the list needs a generator (and a seq slot) per occurrence
                ident = (tl[i], t.csum_off)
                dup = seen[ident] = seen.get(ident, -1) + 1
                g = self._cached(("stream", tl[i], t.csum_off, stream_id, n, dup),
                                 lambda t=t, b=tl[i]: _stream_gen(t, b, stream_id, n))
                g.start(first_seq + i)
                gens.append(g)
            sent = self._loop(gens, count, rate_pps, timeout)
            self._trim(n)
        except BaseException:
            self._forget(gens)
            raise
        finally:
            self._exit_send(sent)
        return sent

    @property
    def netns(self):
        """The namespace of :attr:`ifname` (a :class:`~netring.netns.NetNS`), or None for the current one."""
        return self._ns

    @property
    def closed(self):
        """True once :meth:`close` ran."""
        return self._closed

    def close(self):
        """Unload the cached generator programs and release the namespace handle (idempotent).

        Called while another thread is inside a send, it leaves the programs and the namespace handle
        to that send, which releases them when it returns (the send's namespace fd stays valid).
        """
        if self._closed:
            return
        self._closed = True
        # a send in progress holds the lock and uses the namespace fd in every kernel call: it releases
        # both when it returns (_exit_send), so the fd number is never reused under a running send
        if self._lock.acquire(blocking=False):
            try:
                self._release_all()
            finally:
                self._lock.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<XdpInjector %s ifindex=%s batch_size=%d%s>" % (
            self._where(), getattr(self, "ifindex", "?"), self.batch_size if hasattr(self, "batch_size") else 0,
            " closed" if self._closed else "")


def _ifindex_here(ifname):
    from .netns import ifindex_here
    return ifindex_here(ifname, "the current namespace")


def _link_facts(ifindex):
    """Inside the namespace: ``(kind, MTU, peer_xdp)`` of ``ifindex``.

    ``peer_xdp``: for a veth, whether its peer (asked for by IFLA_LINK in the namespace
    IFLA_LINK_NETNSID names, kernel 4.20+) runs a *native* XDP program — what veth's
    ndo_xdp_xmit needs; None when that cannot be read or the link is no veth.
    """
    msg, kind, peer = _netlink.link_and_veth_peer(ifindex)
    peer_xdp = None
    if peer is not None:
        xdp = peer.get_attr("IFLA_XDP")
        attached = xdp.get_attr("IFLA_XDP_ATTACHED") if xdp is not None else None
        peer_xdp = attached == "xdp" or (attached == "xdpmulti" and bool(xdp.get_attr("IFLA_XDP_DRV_PROG_ID")))
    return kind, msg.get_attr("IFLA_MTU"), peer_xdp
