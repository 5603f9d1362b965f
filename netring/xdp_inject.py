"""In-kernel frame generation: :class:`XdpInjector` (BPF_PROG_TEST_RUN on live frames, kernel 5.18+).

The kernel runs an XDP program ``repeat`` times over pages initialised from one template
(``BPF_F_TEST_XDP_LIVE_FRAMES``) and transmits every frame the program returns ``XDP_TX`` for
out of ``ctx_in.ingress_ifindex``. No socket, no copy from user space per frame: this is the
fastest sender netring has (FIELD-NOTES: ~10x the TX ring into an XDP_DROP on veth).

For a stamped stream a generator program is assembled per template (:mod:`netring.bpf.asm`).
Everything that does not depend on the seq is precomputed here and baked into the program as
constants: the stamp hash up to the seq word (``H(H(seed, payload), word0)``), the RFC 1624
constant of the L4 checksum (``~HC + ~m`` over the template's stamp) and the sum of the stamp
bytes that do not change. Per frame the program only takes seq = ``base + stride * count`` from
its map slot (and counts the frame), writes seq and check and patches the checksum — the same
arithmetic as the C stamper (``csrc/stampc.c``), so the frames are byte-identical to
:meth:`netring.Injector.send_stream`'s. The page a frame lives in is reused for later frames,
so the program writes every byte that varies each time, and stores the headers (up to 128 B) and the
constant stamp fields again too: the receiving side may have changed them in place (a veth untagging a
VLAN frame does). Payload bytes are not rewritten; a receiver that writes into them in place would
show up as corrupt frames at the checker, not pass unnoticed.

Frame ``k`` of a stream is template ``k % n`` with seq ``first_seq + k``. One PROG_RUN call
transmits one template, so with several templates a chunk goes out grouped by template (all of
template 0's frames of the chunk, then template 1's, ...): every frame carries the right seq,
but the wire order differs from the seq order within a chunk. A single template goes out in order.
"""
import errno
import os
import struct
import time

from . import _netlink
from ._core import ffi, lib
from .bpf.asm import FP, R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, XDP_ABORTED, XDP_DROP, XDP_TX, Asm
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
_CHUNK_S = 0.2        # seconds of frames per PROG_RUN call at full speed (timeout and Ctrl-C act between calls)
_FIRST_RATE = 1e6      # frames/s assumed for the first chunk
_MAX_CHUNK = (1 << 32) - 1  # repeat is a u32
_SLICE_S = 0.05        # pacing: one chunk per 50 ms
_SLOT = struct.Struct("<QQQ")  # map slot: base seq, seq stride, frames run (the program's counter)
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


def _fold_asm(a, r, tmp):
    """r = fold(r) twice (16-bit one's complement of a sum < 2**32)."""
    for _ in range(2):
        a.mov(tmp, r).rsh(tmp, 16).and_(r, 0xFFFF).add(r, tmp)


def _restore(a, frame, start, end):
    """Store ``frame[start:end]`` at ``r2 + start`` from immediates (r2 = data, bounds checked before)."""
    off = start
    while off < end:
        size, width = ("w", 4) if end - off >= 4 else ("h", 2) if end - off >= 2 else ("b", 1)
        a.st(size, R2, off, int.from_bytes(frame[off:off + width], "little"))
        off += width


def _generator(slots, key, frame, stamp_off, head, hpre, csum):
    """Assemble the stamping program for one template (see the module doc).

    ``frame``: the template as run (our stream id written); its first ``head`` bytes (the headers)
    and the constant stamp fields are stored again on every run: the kernel recycles a page to
    later frames with whatever the receiving side did to it (a veth untagging a VLAN frame moves
    the MAC addresses over the tag in place), so they must not be trusted to keep the template.

    ``csum``: None, or ``(csum_off, odd, c0, k, udp)`` — checksum offset, whether the stamp sits at
    an odd distance from it, the sum of the constant stamp bytes, ``~HC + ~m`` and UDP's 0 rule.
    """
    need = stamp_off + STAMP_LEN if csum is None else max(stamp_off + STAMP_LEN, csum[0] + 2)
    a = Asm()
    a.mov(R6, R1)
    # The map lookup (a helper call) first: packet pointers checked after it keep their range.
    a.st("w", FP, -4, key)
    a.ld_map_fd(R1, slots).mov(R2, FP).add(R2, -4)
    a.call("map_lookup_elem")
    a.jmp("==", R0, 0, "abort")
    a.mov(R7, R0)
    a.ldx("w", R2, R6, _MD_DATA)
    a.ldx("w", R3, R6, _MD_DATA_END)
    a.mov(R4, R2).add(R4, need)
    a.jmp(">", R4, R3, "abort")
    _restore(a, frame, 0, head)
    _restore(a, frame, stamp_off, stamp_off + 8)
    # seq = base + stride * count; count += 1 (one runner per PROG_RUN call: no atomics needed)
    a.ldx("dw", R8, R7, 16)
    a.mov(R1, R8).add(R1, 1).stx("dw", R7, 16, R1)
    a.ldx("dw", R1, R7, 8)
    a.alu("mul", R8, R1)
    a.ldx("dw", R1, R7, 0)
    a.add(R8, R1)                                  # r8 = seq (host order)
    a.mov(R1, R8).be(R1, 64)                       # r1 = the seq bytes as the stamp holds them (BE) = hash word 1
    a.stx("dw", R2, stamp_off + 8, R1)
    # check: h = (hpre ^ word1) * PRIME; check = (h ^ h >> 32) & 0xffffffff
    a.ld_imm64(R4, hpre).xor(R4, R1)
    a.ld_imm64(R5, _PRIME).alu("mul", R4, R5)
    a.mov(R5, R4).rsh(R5, 32).xor(R4, R5).mov32(R4, R4)   # r4 = check (host order)
    a.mov(R5, R4).be(R5, 32).stx("w", R2, stamp_off + 16, R5)
    if csum is not None:
        csum_off, odd, c0, k, udp = csum
        # sum of the 16-bit words of seq and check: in the frame's byte order when the stamp sits at an
        # even distance from the checksum, byte-swapped otherwise (one's complement sums commute with that)
        a.mov(R0, R4).and_(R0, 0xFFFF)
        a.mov(R5, R4).rsh(R5, 16).add(R0, R5)
        for shift in (0, 16, 32, 48):
            a.mov(R5, R8)
            if shift:
                a.rsh(R5, shift)
            a.and_(R5, 0xFFFF).add(R0, R5)
        _fold_asm(a, R0, R9)
        if odd:
            a.mov(R5, R0).rsh(R5, 8).lsh(R0, 8).or_(R0, R5).and_(R0, 0xFFFF)
        a.add(R0, c0)
        _fold_asm(a, R0, R9)                         # r0 = m' (RFC 1624: the new stamp's sum)
        a.add(R0, k)
        _fold_asm(a, R0, R9)
        a.xor(R0, 0xFFFF)                            # HC' = ~(~HC + ~m + m')
        if udp:
            a.jmp("!=", R0, 0, "store_csum")
            a.mov(R0, 0xFFFF)                        # UDP: a computed 0 is sent as 0xffff
            a.label("store_csum")
        a.be(R0, 16).stx("h", R2, csum_off, R0)
    a.ret(XDP_TX)
    a.label("abort")
    a.ret(XDP_ABORTED)
    return a


class _Plan:
    """One template made ready for the generator: the frame to run over and its program."""

    def __init__(self, frame, program):
        self.frame = frame
        self.buf = ffi.from_buffer(frame)  # made once (FIELD-NOTES: ~75 ns per from_buffer)
        self.program = program


def _plans(tm, templates_bytes, stream_id, slots):
    """Per template: the frame with our stream id written and the generator with its constants."""
    plans = []
    try:
        for i in range(tm.n):
            t = tm.arr[i]
            orig = templates_bytes[i]
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
                    k = (~hc & 0xFFFF) + (~m & 0xFFFF)
                    c0 = _csum_part(frame[so:so + 8], so, co)
                    csum = (co, (so - co) & 1, c0, k, bool(t.udp))
            head = min(so - plen, _MAX_HEAD)
            prog = load_program(_generator(slots, i, frame, so, head, hpre, csum), name="nr_livegen")
            plans.append(_Plan(bytes(frame), prog))
    except BaseException:
        for p in plans:
            p.program.close()
        raise
    return plans


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

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, ifname, netns=None, batch_size=64, check_peer=True):
        check_int("batch_size", batch_size, 1, MAX_BATCH, " (the kernel's TEST_XDP_MAX_BATCH)")
        self._ns = None
        self._closed = False
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
        rc = self._run(lib.nr_bpf_xdp_live_run, prog_fd, buf, size, self.ifindex, repeat, self.batch_size)
        if rc < 0 and rc != -errno.EINTR:
            raise bpf_error(rc, "generating frames on %s (live-frames test run)" % self._where())

    def _loop(self, plans, slots, count, rate_pps, timeout):
        """Run ``count`` frames over ``plans`` (frame k: plan k % n) in bounded chunks; return frames run.

        Each PROG_RUN call costs a fixed ~25 ms here (kernel 6.18: tearing down its page pool waits
        for an RCU grace period once frames were in flight), so a chunk at full speed is sized to
        take ~``_CHUNK_S`` at the rate measured so far (fixed cost included), never past the deadline.
        With ``rate_pps`` a chunk is ``rate_pps * _SLICE_S`` frames, started on schedule: the
        average rate is kept, each chunk leaves as a burst at line rate.
        """
        n = len(plans)
        want = [(count - i + n - 1) // n if i < count else 0 for i in range(n)]
        done = [0] * n
        t0 = time.monotonic()
        deadline = None if timeout is None else t0 + timeout
        est = _FIRST_RATE  # frames/s of the last chunk, call overhead included
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
                span = _CHUNK_S if deadline is None else min(_CHUNK_S, deadline - now)
                chunk = max(MAX_BATCH, int(est * span))
            if deadline is not None and now >= deadline:
                break
            chunk = min(chunk, count - total, _MAX_CHUNK)
            for i, p in enumerate(plans):
                r = min(want[i] - done[i], -(-chunk // n))
                if r <= 0:
                    continue
                self._run_chunk(p.program.fd, p.buf, len(p.frame), r)
                done[i] = slots.lookup(i)[2]
            new_total = sum(done)
            took = time.monotonic() - now
            if new_total > total and took > 0:
                est = (new_total - total) / took  # the call's fixed cost included: chunks err short
            total = new_total
        return total

    # -- public -------------------------------------------------------------------------------
    def send(self, frame, count=1, timeout=None):
        """Transmit ``frame`` (bytes-like) ``count`` times; return the frames transmitted.

        ``timeout``: stop after this many seconds (the return value says how many went out).
        """
        self._check_open()
        frame = bytes(byte_view("frame", frame))
        self._check_frame(frame, "frame")
        check_int("count", count, 0, (1 << 64) - 1)
        timeout = check_timeout("timeout", timeout)
        if count == 0:
            return 0
        with create_map("array", 4, 24, 1, name="nr_livegen", value_format="<QQQ") as slots:
            slots.update(0, (0, 0, 0))
            head = min(len(frame), _MAX_HEAD)
            a = Asm()
            a.mov(R6, R1)
            a.st("w", FP, -4, 0)
            a.ld_map_fd(R1, slots).mov(R2, FP).add(R2, -4)
            a.call("map_lookup_elem")
            a.jmp("==", R0, 0, "abort")
            a.mov(R1, 1).atomic_add("dw", R0, 16, R1)
            a.ldx("w", R2, R6, _MD_DATA)
            a.ldx("w", R3, R6, _MD_DATA_END)
            a.mov(R4, R2).add(R4, head)
            a.jmp(">", R4, R3, "abort")
            _restore(a, frame, 0, head)  # pages come back as the receiver left them (see _generator)
            a.ret(XDP_TX)
            a.label("abort")
            a.ret(XDP_ABORTED)
            with load_program(a, name="nr_livegen") as prog:
                plans = [_Plan(frame, prog)]
                sent = self._loop(plans, slots, count, None, timeout)
        self.sent_frames += sent
        return sent

    def send_stream(self, templates, stream_id, first_seq, count, rate_pps=None, csum_offsets=None, timeout=None):
        """Transmit ``count`` stamped frames of stream ``stream_id``, seqs ``first_seq``…, cycling ``templates``.

        The same signature and meaning as :meth:`netring.Injector.send_stream`, and byte-identical
        frames: frame ``k`` is ``templates[k % n]`` with seq ``first_seq + k``, its check recomputed
        and its L4 checksum at ``csum_offsets[i]`` patched (RFC 1624; -1/None: left alone). With
        several templates a chunk goes out grouped by template (see the module doc). ``rate_pps``:
        pace between chunks of ~5 ms. ``timeout``: stop after this many seconds. Returns the frames
        transmitted, from the generator's own counter.
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
        with create_map("array", 4, 24, n, name="nr_livegen", value_format="<QQQ") as slots:
            for i in range(n):
                slots.update(i, ((first_seq + i) & _MASK64, n, 0))
            plans = _plans(tm, tl, stream_id, slots)
            try:
                sent = self._loop(plans, slots, count, rate_pps, timeout)
            finally:
                for p in plans:
                    p.program.close()
        self.sent_frames += sent
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
        """Release the namespace handle (idempotent). Programs and maps live only during a send."""
        if self._closed:
            return
        self._closed = True
        if self._ns is not None:
            self._ns.close()

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
