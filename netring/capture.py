"""``netring.Capture``: an AF_PACKET TPACKET_V3 receive ring, in any network namespace.

The kernel fills fixed-size *blocks* with packets and retires a block to user space when it
is full or when ``block_timeout_ms`` passes. :meth:`Capture.next_batch` hands one retired
block out as a :class:`PacketBatch`; returning the batch (``with batch:`` / ``release()``)
gives the block back to the kernel. The C core walks a block in one call (offsets, lengths,
timestamps, status, direction, VLAN) — :class:`Packet` objects are made only when you iterate.

Zero-copy safety: ``pkt.data`` is a read-only ``memoryview`` into the ring. When the batch is
returned every view it handed out is released, so touching one afterwards raises
``ValueError`` instead of reading memory the kernel is refilling (``pkt.data`` itself raises
:class:`StaleBatchError`). Views *you* derive from them (``pkt.data[2:8]``,
``memoryview(pkt.data)``) are separate Python objects that cannot be revoked: copy with
``bytes(...)`` what you keep past the batch. Such a view keeps the ring mapped, so
:meth:`Capture.close` refuses with :class:`ViewsAliveError` rather than unmapping under it.
"""
import contextlib
import enum
import errno
import threading
import time
from collections import deque, namedtuple

from . import cbpf
from ._core import ffi, lib
from ._ring import PAGE_SIZE, DrainWindow, check_bool, check_int, frame_size_for, check_timeout, raise_errno
from .check import SeqChecker
from .errors import ConfigurationError, NetringError, ViewsAliveError, from_oserror
from .pcap import PcapWriter
from .ringsock import BatchReceiver, RingSocket, ViewBatch

__all__ = ["Capture", "PacketBatch", "Packet", "CaptureStats", "Direction", "Vlan", "Fanout",
           "ViewsAliveError", "StaleBatchError", "RingBusyError"]

MAX_RING_BYTES = 1 << 30
_DEFAULT_BLOCK_SIZE = 1 << 17  # holds a whole frame of any MTU up to 65535 (snaplen is bounded by the block)
_DEFAULT_FRAME_SIZE = 2048
_L2_HLEN = 14 + 4  # Ethernet header and one VLAN tag


class StaleBatchError(NetringError, ValueError):
    """A packet's data was accessed after its batch was returned to the kernel."""


class RingBusyError(NetringError):
    """Every block of the ring is held by batches that were not returned."""


class Direction(str, enum.Enum):
    """Where a captured frame was going, from the kernel's ``sll_pkttype`` (compares equal to its lower-case name)."""

    HOST = "host"
    BROADCAST = "broadcast"
    MULTICAST = "multicast"
    OTHERHOST = "otherhost"
    OUTGOING = "outgoing"
    LOOPBACK = "loopback"
    USER = "user"
    KERNEL = "kernel"

    def __str__(self):
        return self.value


_DIRECTIONS = tuple(Direction)  # indexed by PACKET_HOST(0) .. PACKET_KERNEL(7)

#: VLAN tag the kernel reported for a frame (the device stripped it): ``tci`` and ``tpid`` (None if unknown).
Vlan = namedtuple("Vlan", "tci tpid")


class CaptureStats(namedtuple("CaptureStats", "packets drops freezes")):
    """Kernel ring counters: ``packets`` the socket saw (the kernel includes ``drops`` in it),
    ``drops`` (no room in the ring), ``freezes`` (times the ring filled up and froze)."""

    __slots__ = ()


_FANOUT_MODES = {
    "hash": lib.NR_RX_PACKET_FANOUT_HASH, "lb": lib.NR_RX_PACKET_FANOUT_LB, "cpu": lib.NR_RX_PACKET_FANOUT_CPU,
    "rollover": lib.NR_RX_PACKET_FANOUT_ROLLOVER, "random": lib.NR_RX_PACKET_FANOUT_RND,
    "qm": lib.NR_RX_PACKET_FANOUT_QM,
}
_FANOUT_FLAGS = {
    "rollover": lib.NR_RX_PACKET_FANOUT_FLAG_ROLLOVER, "unique_id": lib.NR_RX_PACKET_FANOUT_FLAG_UNIQUEID,
    "defrag": lib.NR_RX_PACKET_FANOUT_FLAG_DEFRAG, "ignore_outgoing": lib.NR_RX_PACKET_FANOUT_FLAG_IGNORE_OUTGOING,
}


class Fanout(namedtuple("Fanout", "mode group_id flags")):
    """``PACKET_FANOUT`` settings: ``mode`` (hash/lb/cpu/rollover/random/qm), ``group_id`` (0..65535),
    ``flags`` (subset of rollover/unique_id/defrag/ignore_outgoing). Captures in the same namespace
    with the same group id and mode share the traffic of their interface."""

    __slots__ = ()

    def __new__(cls, mode, group_id, flags=()):
        return super().__new__(cls, mode, group_id, tuple(flags))

    @classmethod
    def coerce(cls, spec):
        """Build from a ``Fanout``, a ``(mode, group_id[, flags])`` tuple or a dict; ConfigurationError if invalid."""
        try:
            if isinstance(spec, dict):
                f = cls(**spec)
            else:
                f = cls(*spec)
        except TypeError:
            raise ConfigurationError(
                "fanout must be (mode, group_id[, flags]) or a dict with those keys, not %r" % (spec,),
                field="fanout", value=spec) from None
        if f.mode not in _FANOUT_MODES:
            raise ConfigurationError("fanout mode %r is not one of %s" % (f.mode, ", ".join(_FANOUT_MODES)),
                                     field="fanout.mode", value=f.mode)
        check_int("fanout.group_id", f.group_id, 0, 0xFFFF)
        for fl in f.flags:
            if fl not in _FANOUT_FLAGS:
                raise ConfigurationError("fanout flag %r is not one of %s" % (fl, ", ".join(_FANOUT_FLAGS)),
                                         field="fanout.flags", value=fl)
        return f

    def sockopt(self):
        """The ``PACKET_FANOUT`` int: group id in the low 16 bits, mode and flags above."""
        v = _FANOUT_MODES[self.mode]
        for fl in self.flags:
            v |= _FANOUT_FLAGS[fl]
        return self.group_id | (v << 16)


class Packet:
    """One captured frame.

    ``data``: the frame bytes — a read-only memoryview into the ring for packets of a batch
    (valid until the batch is returned), ``bytes`` for packets from :meth:`Capture.recv`.
    ``timestamp_ns`` (kernel receive time, ns since the epoch), ``wire_len`` (length on the
    wire), ``snap_len`` (bytes captured), ``direction`` (:class:`Direction`), ``vlan``
    (:class:`Vlan` or None), ``status`` (raw ``tp_status``), ``truncated``.
    """

    __slots__ = ("_data", "_batch", "timestamp_ns", "wire_len", "snap_len", "direction", "vlan", "status")

    def __init__(self, data, timestamp_ns, wire_len, snap_len, direction, vlan=None, status=0, batch=None):
        self._data = data
        self._batch = batch
        self.timestamp_ns = timestamp_ns
        self.wire_len = wire_len
        self.snap_len = snap_len
        self.direction = direction
        self.vlan = vlan
        self.status = status

    @property
    def data(self):
        """The frame bytes (see the class doc); raises :class:`StaleBatchError` once the batch was returned."""
        b = self._batch
        if b is not None and b._released:
            raise StaleBatchError(
                "this packet's batch (block %d) was returned to the kernel and its memory may be reused; "
                "copy what you need with bytes(pkt.data) before leaving the batch's `with` block" % b.index)
        return self._data

    @property
    def truncated(self):
        """True when fewer bytes were captured than were on the wire."""
        return self.snap_len < self.wire_len

    def to_owned(self):
        """A copy whose ``data`` is ``bytes`` and stays valid after the batch is returned."""
        return Packet(bytes(self.data), self.timestamp_ns, self.wire_len, self.snap_len, self.direction,
                      self.vlan, self.status)

    def __len__(self):
        return self.snap_len

    def __repr__(self):
        return "<Packet %d/%d B %s ts=%d%s>" % (self.snap_len, self.wire_len, self.direction, self.timestamp_ns,
                                                "" if self.vlan is None else " vlan=%d" % self.vlan.tci)


class PacketBatch(ViewBatch):
    """One retired V3 block, lent by the kernel until :meth:`release` (or the end of ``with``).

    ``len(batch)`` packets; ``for pkt in batch`` yields :class:`Packet` (views into the block);
    ``seq_num`` (the kernel's block sequence number), ``timed_out`` (retired by
    ``block_timeout_ms`` rather than full), ``block`` (read-only view of the whole block).
    The C walk that finds the packets runs once, on first use.
    """

    def __init__(self, capture, index):
        self._capture = capture
        self.index = index
        self._ptr = capture._block_ptrs[index]
        self._released = False
        self._views = []
        self._walk = None
        self._n = lib.nr_rx_block_num_pkts(self._ptr)
        #: The kernel's sequence number of this block (increments by one per retired block).
        self.seq_num = lib.nr_rx_block_seq(self._ptr)
        #: True when the block was retired by the timeout, not because it was full.
        self.timed_out = bool(lib.nr_rx_block_status(self._ptr) & lib.NR_RX_TP_STATUS_BLK_TMO)
        self._blockview = None

    def _check(self):
        if self._released:
            raise StaleBatchError("batch (block %d) was already returned to the kernel" % self.index)

    def _stale(self):
        return StaleBatchError("batch (block %d) was returned to the kernel (or its capture closed) while "
                               "it was being read; copy what you need before releasing it" % self.index)

    def _view(self):
        if self._blockview is None:
            off = self.index * self._capture.block_size
            self._blockview = self._capture._rx.view[off:off + self._capture.block_size]
            self._views.append(self._blockview)
        return self._blockview

    @contextlib.contextmanager
    def raw_block(self):
        """For C code that reads the whole block: ``with batch.raw_block() as (ptr, size):``.

        Yields a cffi ``uint8_t *`` to the retired TPACKET_V3 block (header included) and its
        size in bytes, valid only inside the ``with``: the capture's ring guard is held, so no
        thread can return the block or unmap the ring meanwhile (a concurrent ``close()`` waits).
        Raises :class:`StaleBatchError` if the batch was already returned, and the "closed"
        NetringError if its capture is closed. Used by :meth:`netring.SeqChecker.feed`.
        """
        with self._capture._guard:
            self._check()
            yield self._ptr, self._capture.block_size

    @property
    def block(self):
        """A read-only memoryview of the whole block (header included); released with the batch."""
        with self._capture._guard:
            self._check()
            return self._view()

    @property
    def released(self):
        """True once the block was handed back to the kernel."""
        return self._released

    def __len__(self):
        return self._n

    def _walked(self):
        # Called inside the capture's guard, after _check(): the block is mapped and ours.
        if self._walk is None:
            n = max(self._n, 1)
            arr = ffi.new("struct nr_rx_pkt[]", n)
            got = lib.nr_rx_walk(self._ptr, self._capture.block_size, arr, n)
            self._walk = (arr, got)
        return self._walk

    def __iter__(self):
        with self._capture._guard:
            self._check()
            arr, got = self._walked()
            bv = self._view()
        views = self._views
        dirs = _DIRECTIONS
        for i in range(got):
            p = arr[i]
            off = p.off
            try:
                v = bv[off:off + p.snaplen]
            except ValueError:  # released under us (another thread returned the batch or closed the capture)
                raise self._stale() from None
            views.append(v)
            st = p.status
            vlan = None
            if st & lib.NR_RX_TP_STATUS_VLAN_VALID:
                vlan = Vlan(p.vlan_tci, p.vlan_tpid if st & lib.NR_RX_TP_STATUS_VLAN_TPID_VALID else None)
            pt = p.pkttype
            yield Packet(v, p.ts_ns, p.wirelen, p.snaplen, dirs[pt] if pt < 8 else pt, vlan, st, self)

    def packets(self):
        """All packets of the batch as a list (same objects as iteration yields)."""
        return list(self)

    def descriptors(self):
        """Low level: ``(array, n)`` — the C walk's result, no Python object per packet.

        ``array`` is a cffi ``struct nr_rx_pkt[]``; each entry has ``off`` (from the block start,
        index into :attr:`block`), ``snaplen``, ``wirelen``, ``status``, ``ts_ns``, ``vlan_tci``,
        ``vlan_tpid``, ``pkttype``. Valid until the batch is returned.
        """
        with self._capture._guard:
            self._check()
            return self._walked()

    def _stuck_message(self, n):
        return ("%d view(s) of batch (block %d) are still exported by other objects (e.g. a NumPy array "
                "or a ctypes buffer over pkt.data); delete them, then release the batch again" % (n, self.index))

    def _give_back(self):
        """Return the block to the kernel."""
        self._walk = None
        self._capture._return_block(self)

    def __repr__(self):
        return "<PacketBatch block=%d seq=%d packets=%d%s%s>" % (
            self.index, self.seq_num, self._n, " timed_out" if self.timed_out else "",
            " released" if self._released else "")


class Capture(BatchReceiver, RingSocket):
    """An AF_PACKET TPACKET_V3 RX ring on interface ``ifname`` (inside ``netns`` if given).

    Keyword configuration (validated; ConfigurationError names field, value and range):

    - ``block_size`` (bytes; power of two, multiple of the page size, 4 KiB..16 MiB; default 128 KiB)
    - ``block_count`` (1..65536; default 32 — a 4 MiB ring; the ring must stay ≤ 1 GiB)
    - ``frame_size`` (80..block_size, rounded up to a multiple of 16, TPACKET_ALIGNMENT — the
      ``frame_size`` attribute and the repr show the value used; default 2048 — V3 packs frames
      of any size into blocks, this only sets the kernel's frame accounting; a frame is
      truncated only beyond the block; :meth:`frame_size_for_mtu` sizes it for an MTU)
    - ``block_timeout_ms`` (0..60000; a non-empty block is retired after this long; 0 = kernel default)
    - ``promiscuous`` (bool), ``ignore_outgoing`` (bool: skip frames this host sends, Linux ≥ 4.20)
    - ``fanout``: None, :class:`Fanout`, ``(mode, group_id[, flags])`` or a dict
    - ``bpf_filter``: classic BPF, ``(code, jt, jf, k)`` tuples or ``tcpdump -dd`` text (see :mod:`netring.cbpf`)
    - ``busy_poll_us`` (0..1000000, ``SO_BUSY_POLL``), ``netns`` (name, path, fd, NetNS or None)
    - ``protocol`` (ethertype to receive, default ETH_P_ALL)

    Attributes: ``ifname``, ``ifindex``, ``netns`` (the namespace's label, e.g. ``"net:[4026532246]"``,
    or None), ``block_size``, ``block_count``, ``frame_size``, ``block_timeout_ms``, ``fanout``.
    A context manager; :meth:`close` is idempotent; :meth:`fileno` is readable when a block is
    ready. One thread at a time may receive from a Capture (different Captures are independent).
    """

    _kind = "Capture"
    _role = "capture"
    _ring_knobs = "block_count or block_size"

    @classmethod
    def frame_size_for_mtu(cls, mtu, block_size=_DEFAULT_BLOCK_SIZE):
        """The ``frame_size`` for a ring on an ``mtu``-byte interface: a V3 packet header plus
        MTU + 18 B (Ethernet header and one VLAN tag), rounded up to 16, at least the default
        2048 and at most ``block_size`` (default: the default block size, which already holds a
        whole frame of any MTU up to 65535). ``Endpoint.capture()`` of the test kit uses it.
        """
        check_int("block_size", block_size, PAGE_SIZE, 1 << 24)
        return frame_size_for(lib.NR_RX_TPACKET3_HDRLEN, mtu, lib.NR_RX_TPACKET_ALIGNMENT, _DEFAULT_FRAME_SIZE,
                              block_size)

    def __init__(self, ifname, *, netns=None, block_size=_DEFAULT_BLOCK_SIZE, block_count=32,
                 frame_size=_DEFAULT_FRAME_SIZE, block_timeout_ms=10, promiscuous=False, ignore_outgoing=False,
                 fanout=None, bpf_filter=None, busy_poll_us=0, protocol=None):
        check_int("block_size", block_size, PAGE_SIZE, 1 << 24, ", a power of two")
        if block_size & (block_size - 1) or block_size % PAGE_SIZE:
            raise ConfigurationError("block_size=%d must be a power of two and a multiple of the page size (%d)"
                                     % (block_size, PAGE_SIZE), field="block_size", value=block_size)
        check_int("block_count", block_count, 1, 65536)
        if block_size * block_count > MAX_RING_BYTES:
            raise ConfigurationError("block_size*block_count=%d exceeds the ring limit of %d bytes (1 GiB)"
                                     % (block_size * block_count, MAX_RING_BYTES), field="block_count",
                                     value=block_count)
        align = lib.NR_RX_TPACKET_ALIGNMENT
        min_frame = (lib.NR_RX_TPACKET3_HDRLEN + align - 1) // align * align
        check_int("frame_size", frame_size, min_frame, block_size,
                  "; rounded up to a multiple of %d (TPACKET_ALIGNMENT)" % align)
        # The kernel wants a multiple of TPACKET_ALIGNMENT: round up (block_size is a multiple of
        # the page size, so the result still fits the block) and show the real value.
        frame_size = (frame_size + align - 1) // align * align
        check_int("block_timeout_ms", block_timeout_ms, 0, 60000)
        check_bool("promiscuous", promiscuous)
        check_bool("ignore_outgoing", ignore_outgoing)
        check_int("busy_poll_us", busy_poll_us, 0, 1000000)
        proto = lib.NR_RX_ETH_P_ALL if protocol is None else check_int("protocol", protocol, 1, 0xFFFF)
        fan = None if fanout is None else Fanout.coerce(fanout)
        prog = None if bpf_filter is None else cbpf.parse(bpf_filter)

        self.block_size = block_size
        self.block_count = block_count
        self.frame_size = frame_size
        self.block_timeout_ms = block_timeout_ms
        self.fanout = fan
        self._rx = None
        self._block_ptrs = ()
        self._held = {}
        self._idx = 0
        self._pending = deque()
        self._cum = [0, 0, 0]
        self._closer_thread = None
        # Every C call that touches the ring or the socket runs inside self._guard (see close()).
        self._open_ring_socket(ifname, netns)
        try:
            fd = self._fd
            where = dict(ifname=ifname, netns=self.netns)
            if prog is not None:
                flat = ffi.new("uint32_t[]", [x for ins in prog for x in ins])
                rc = lib.nr_rx_attach_filter(fd, flat, len(prog))
                if rc < 0:
                    if rc == -errno.EINVAL:
                        raise ConfigurationError("bpf_filter was rejected by the kernel verifier (EINVAL); check "
                                                 "the program (e.g. regenerate it with `tcpdump -dd`)",
                                                 field="bpf_filter", value=len(prog))
                    raise_errno(rc, "attaching the classic BPF filter", **where)
            if ignore_outgoing:
                self._setsockopt(lib.NR_SOCK_SOL_PACKET, lib.NR_RX_PACKET_IGNORE_OUTGOING, 1, "PACKET_IGNORE_OUTGOING")
            rc = lib.nr_rx_setup(fd, block_size, block_count, frame_size, block_timeout_ms)
            if rc < 0:
                if rc == -errno.EINVAL:
                    raise ConfigurationError(
                        "the kernel rejected the ring geometry block_size=%d block_count=%d frame_size=%d (EINVAL)"
                        % (block_size, block_count, frame_size), field="block_size", value=block_size)
                if rc == -errno.ENOMEM:
                    raise NetringError("the kernel could not allocate a %d-byte RX ring (ENOMEM); use smaller "
                                       "block_size/block_count" % (block_size * block_count))
                raise_errno(rc, "setting up the TPACKET_V3 RX ring", **where)
            self._rx = self._map(block_size * block_count, readonly=True)
            self._rearm_pointers()
            # Bind last: only now does the socket start receiving, into a ring that is ready.
            rc = lib.nr_sock_bind_packet(fd, self.ifindex, proto)
            if rc < 0:
                raise_errno(rc, "binding the capture socket to %s" % ifname, **where)
            if promiscuous:
                rc = lib.nr_rx_promisc(fd, self.ifindex)
                if rc < 0:
                    raise_errno(rc, "enabling promiscuous mode on %s" % ifname, **where)
            if fan is not None:
                self._setsockopt(lib.NR_SOCK_SOL_PACKET, lib.NR_RX_PACKET_FANOUT, fan.sockopt(), "PACKET_FANOUT")
            if busy_poll_us:
                self._setsockopt(lib.NR_SOCK_SOL_SOCKET, lib.NR_RX_SO_BUSY_POLL, busy_poll_us, "SO_BUSY_POLL")
        except BaseException:
            self._teardown()
            raise

    # -- set-up / tear-down -------------------------------------------------------------------
    def _setsockopt(self, level, opt, value, name):
        try:
            self._sock.setsockopt(level, opt, value)
        except OSError as exc:
            raise from_oserror(exc, "setsockopt(%s=%d) on %s" % (name, value, self.ifname), ifname=self.ifname,
                               netns=self.netns, capability="CAP_NET_ADMIN") from None

    def _drop_pointers(self):
        self._block_ptrs = ()

    def _rearm_pointers(self):
        base = self._rx.ptr
        self._block_ptrs = tuple(base + i * self.block_size for i in range(self.block_count))

    def _views_alive_error(self):
        return ViewsAliveError(
            "cannot close the capture on %s: views into its ring are still alive (slices or memoryviews "
            "derived from pkt.data); delete them or copy with bytes() first, then close again" % self.ifname)

    def _repr_ring(self):
        return "ring=%dx%d B frame_size=%d%s" % (self.block_count, self.block_size, self.frame_size,
                                                 "" if self.fanout is None
                                                 else " fanout=%s/%d" % (self.fanout.mode, self.fanout.group_id))

    def close(self):
        """Return outstanding batches, unmap the ring, close the socket (idempotent, thread-safe).

        Safe to call from another thread while one receives: the capture is marked closing,
        a blocked :meth:`next_batch` is woken and raises "Capture on X is closed", and the ring
        is unmapped only once no call is inside it. Called from a signal handler that
        interrupted a call on this capture, the close completes when that call returns.
        Raises :class:`ViewsAliveError` — and stays open — while views derived from packets
        are alive; nothing is unmapped under them.
        """
        super().close()

    def _do_close(self):
        # Runs with the guard closing and nothing in flight: no other thread touches the ring now.
        self._closer_thread = threading.get_ident()
        try:
            for b in list(self._held.values()):
                if b._released:  # released by another thread while we were closing: return its block
                    if self._held.pop(b.index, None) is b:
                        lib.nr_rx_block_release(self._block_ptrs[b.index])
                else:
                    b.release()
            self._teardown()
        finally:
            self._closer_thread = None
        self._pending.clear()

    # -- receiving ------------------------------------------------------------------------------
    def _return_block(self, batch):
        idx = batch.index
        if self._held.get(idx) is not batch:
            return
        if self._closer_thread == threading.get_ident():  # close() itself: it has the ring to itself
            del self._held[idx]
            lib.nr_rx_block_release(self._block_ptrs[idx])
            return
        try:
            with self._guard:
                if self._held.get(idx) is batch:
                    del self._held[idx]
                    lib.nr_rx_block_release(self._block_ptrs[idx])
        except NetringError:
            pass  # closing or closed: close() returns (or unmaps) every block still held

    def next_batch(self, timeout=None):
        """The next retired block as a :class:`PacketBatch`, or None if none arrives within ``timeout`` s.

        ``timeout=None`` waits indefinitely, 0 only checks. Signals interrupt the wait (Ctrl-C
        raises KeyboardInterrupt within ~200 ms). Raises :class:`RingBusyError` if the next block
        is still held by a batch that was not returned, and the "closed" NetringError if the
        capture is (or gets, from another thread) closed.
        """
        timeout = check_timeout("timeout", timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        g = self._guard
        user = lib.NR_RX_TP_STATUS_USER
        events = lib.POLLIN | lib.POLLERR
        while True:
            with g:
                idx = self._idx
                if idx in self._held:
                    raise RingBusyError(
                        "the next ring block (%d) is still held by an unreturned batch; release batches "
                        "(`with batch:`) before asking for more — %d of %d blocks are held"
                        % (idx, len(self._held), self.block_count))
                if lib.nr_rx_block_status(self._block_ptrs[idx]) & user:
                    self._idx = (idx + 1) % self.block_count
                    batch = PacketBatch(self, idx)
                    self._held[idx] = batch
                    return batch
            if deadline is not None and time.monotonic() >= deadline:
                return None
            rev = g.wait(self._fd, events, deadline)
            if rev:
                with g:
                    ready = lib.nr_rx_block_status(self._block_ptrs[idx]) & user
                if not ready:
                    # poll reports the kernel's previous block; if that is one we hold, it says
                    # "readable" although our next block is not ready: back off instead of spinning.
                    time.sleep(0.001)

    def drain(self, checker, timeout, quiet=0.2):
        """Feed batches to ``checker`` (a :class:`netring.check.SeqChecker`) until it is done,
        or no frame arrived for ``quiet`` s after the last one, or ``timeout`` s passed.

        Before the first frame only ``timeout`` applies. Returns the checker.
        """
        if not isinstance(checker, SeqChecker):
            raise ConfigurationError("checker must be a netring.SeqChecker, not %r" % (checker,), field="checker",
                                     value=type(checker).__name__)
        window = DrainWindow(timeout, quiet, time.monotonic())
        while not checker.done:
            left = window.wait(time.monotonic())
            if left is None:
                break
            b = self.next_batch(left)
            if b is None:
                continue
            with b:
                if len(b):
                    checker.feed(b)
                    window.fed(time.monotonic())
        return checker

    def to_pcap(self, path, count=None, timeout=None, nanosecond=True, snaplen=65535):
        """Write what this capture receives to ``path`` as a pcap file (:mod:`netring.pcap`); returns the count.

        Stops after ``count`` packets or ``timeout`` s, whichever comes first (at least one must be
        given). Timestamps are the kernel's receive times, in nanoseconds (``nanosecond=False``:
        microseconds, for very old readers); ``snaplen`` cuts longer frames (the record keeps the
        length on the wire). ``tcpdump -r``/Wireshark read the file. Packets beyond ``count`` in
        the last block are kept for the next receive call, as :meth:`recv` does.
        """
        if count is None and timeout is None:
            raise ConfigurationError("to_pcap needs count= or timeout= (or both): without either it would never end",
                                     field="count", value=None)
        if count is not None:
            check_int("count", count, 1, 1 << 40)
        timeout = check_timeout("timeout", timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        with PcapWriter(path, nanosecond=nanosecond, snaplen=snaplen) as w:
            pending = self._pending
            while count is None or w.count < count:
                if pending:
                    p = pending.popleft()
                    w.write(p.timestamp_ns, p.data, p.wire_len)
                    continue
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                b = self.next_batch(left)
                if b is None:
                    break
                with b:
                    for p in b:
                        if count is None or w.count < count:
                            w.write(p.timestamp_ns, p.data, p.wire_len)
                        else:
                            pending.append(p.to_owned())
            return w.count

    # -- statistics ------------------------------------------------------------------------------
    def stats(self):
        """Kernel counters since the previous call (reading resets them): :class:`CaptureStats`."""
        out = ffi.new("uint32_t[3]")
        with self._guard:
            rc = lib.nr_rx_stats(self._fd, out)
        if rc < 0:
            raise_errno(rc, "reading PACKET_STATISTICS")
        for i in range(3):
            self._cum[i] += out[i]
        return CaptureStats(out[0], out[1], out[2])

    def cumulative_stats(self):
        """Counters since the capture was opened (monotonic; includes what :meth:`stats` returned)."""
        self.stats()
        return CaptureStats(*self._cum)

