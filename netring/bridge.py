"""``netring.Bridge``: a forwarding node between two interfaces, with optional link impairment.

Each direction is one AF_PACKET TPACKET_V3 RX ring on the receiving interface and one
TPACKET_V2 TX ring on the other; a C loop (``csrc/bridge.c``) walks retired RX blocks and fills
TX slots, one C call per time slice with the GIL released — no Python runs per packet. The RX
socket ignores outgoing frames (``PACKET_IGNORE_OUTGOING``), so the bridge never forwards its own
transmissions back.

Impairment (where the kernel has no ``netem``): ``impair={"loss": "1%", "duplicate": "0.5%",
"reorder": "1%", "corrupt": "0.1%", "delay": "2ms", "jitter": "1ms", "seed": 7}`` applies to both
directions (``b_to_a`` then draws from ``seed + 1``, so the two directions differ but are
reproducible), ``{"a_to_b": {...}, "b_to_a": {...}}`` to each separately. Percentages are
strings ending in ``%`` or bare numbers as fractions below 1 (``0.01`` is 1 %; 1 or more is refused as
ambiguous: write ``"100%"``); durations are strings with ``s``/``ms``/``us``/``ns``
or seconds as numbers. Every input frame takes the same six draws of a splitmix64 generator, in
order, so the same seed makes the same decisions for the same input order
(:func:`decisions` replays them without a socket). What each decision does:

- ``loss``: the frame is dropped;
- ``corrupt``: one bit is flipped — in a stamped frame (:mod:`netring.stamp`) in the payload the
  check covers or in the check word, never in the magic, stream id, plen or seq, so the checker
  still counts the frame corrupt (not unknown); in another frame anywhere after the Ethernet header;
- ``reorder``: the frame is held back and sent right after the next one (alone, after 10 ms, if
  no next frame comes; only frames that really went out behind a later one count as reordered);
- ``duplicate``: the frame is sent twice (a frame held for ``reorder`` keeps this decision: both copies
  go out behind the next frame, so the duplicate rate holds when both are set);
- ``delay`` ± ``jitter``: the frame waits in a FIFO queue of ``queue_frames`` slots (jitter spreads
  the delay but never reorders; a full queue drops the frame and counts it in ``queue_full``).

Checksum offload: a frame a local socket sends on a veth (or a NIC with TX checksum offload) may
still carry a partial L4 checksum when a packet socket sees it; forwarded as is, the far stack
drops it. Turn TX checksumming off on the interfaces that feed a bridge (``ethtool -K IF tx off``);
the test kit's impaired links do. Frames from packet sockets (Injector, the scenario engine) are
complete and need nothing.
"""
import collections
import errno
import os
import threading
import time
import weakref

from ._core import ffi, lib
from .capture import MAX_RING_BYTES
from ._ring import PAGE_SIZE, check_bool, check_int, check_timeout, raise_errno
from .errors import ConfigurationError, NetringError, from_oserror
from .impairment import NO_IMPAIRMENT, Impairment, parse_impairment, parse_one
from .netns import resolve
from .ringsock import RingSocket, TxRingSocket

__all__ = ["Bridge", "BridgeStats", "LinkStats", "Impairment", "NO_IMPAIRMENT", "parse_impairment", "decisions",
           "LOSS", "CORRUPT", "DUPLICATE", "REORDER"]

_SLICE_MS = 200  # a C forwarding call returns to Python at least this often (stop, signals)
_HOLD_NS = 10_000_000  # a frame held for reordering goes out alone after 10 ms without a next frame
_RX_FRAME_SIZE = 2048
_ETH_HLEN = 14
_VLAN_HLEN = 4
#: The most one direction's delay queue may hold (``queue_frames`` x a TX slot), as a ring's budget.
MAX_QUEUE_BYTES = MAX_RING_BYTES
#: The most input frames one :func:`decisions` call describes (4 bytes each while computed).
MAX_DECISIONS = 1 << 22


def _tx_frame_size(mtu):
    """A TX slot for a link of ``mtu``: the frame (MTU + Ethernet header + one VLAN tag) behind the
    TPACKET_V2 header, 16-byte aligned, at least 2 KiB."""
    return max((lib.NR_TX_DATA_OFF + mtu + _ETH_HLEN + _VLAN_HLEN + 15) // 16 * 16, 2048)


def _threshold(p):
    return min(int(p * (1 << 32)), 0xFFFFFFFF)


def _fill_imp(c, imp):
    c.loss = _threshold(imp.loss)
    c.duplicate = _threshold(imp.duplicate)
    c.reorder = _threshold(imp.reorder)
    c.corrupt = _threshold(imp.corrupt)
    c.delay_ns = int(round(imp.delay * 1e9))
    c.jitter_ns = int(round(imp.jitter * 1e9))
    c.hold_ns = _HOLD_NS
    c.seed = imp.seed


#: Bits of :func:`decisions`' result.
LOSS, CORRUPT, DUPLICATE, REORDER = lib.NR_BR_LOSS, lib.NR_BR_CORRUPT, lib.NR_BR_DUPLICATE, lib.NR_BR_REORDER


def decisions(impair, count):
    """The decisions the C loop takes for input frames ``0..count-1`` under one direction's ``impair``
    (a mapping as for :class:`Bridge`, or an :class:`Impairment`): a list of ints, each an OR of
    :data:`LOSS`, :data:`CORRUPT`, :data:`DUPLICATE`, :data:`REORDER`. The same seed gives the same list.
    Which decisions apply also depends on order (a lost frame is neither corrupted nor held, ...),
    exactly as :class:`Bridge` documents."""
    imp = parse_one(impair, "impair") if not isinstance(impair, Impairment) else impair
    check_int("count", count, 0, MAX_DECISIONS, " (MAX_DECISIONS: ask in parts, a frame's decisions depend on "
              "the seed and its index only)")
    c = ffi.new("struct nr_br_imp *")
    _fill_imp(c, imp)
    out = ffi.new("uint32_t[]", max(count, 1))
    lib.nr_br_decisions(c, count, out)
    return list(out[0:count])


class LinkStats(collections.namedtuple("LinkStats", "received forwarded dropped duplicated reordered corrupted "
                                                    "delayed queue_full tx_dropped too_long rx_dropped")):
    """Counters of one direction since the bridge started.

    ``received`` frames read from the RX ring; ``forwarded`` handed to the TX ring (duplicates
    included); ``dropped`` by the ``loss`` decision; ``duplicated`` extra copies; ``reordered``
    frames sent behind the frame that followed them; ``corrupted`` frames with a flipped bit;
    ``delayed`` frames that went through the delay queue; ``queue_full`` frames dropped because
    that queue was full; ``tx_dropped`` frames dropped because the TX ring stayed full for
    100 ms; ``too_long`` frames the other link cannot carry (or truncated by the RX ring);
    ``rx_dropped`` frames the kernel dropped because the RX ring was full (they never reached us).
    """

    __slots__ = ()

    def as_dict(self):
        """The counters as a plain dict."""
        return dict(self._asdict())


class BridgeStats(collections.namedtuple("BridgeStats", "a_to_b b_to_a")):
    """:class:`LinkStats` per direction: ``a_to_b`` (received on side a, sent on side b) and ``b_to_a``."""

    __slots__ = ()

    def as_dict(self):
        """``{"a_to_b": {...}, "b_to_a": {...}}``."""
        return {"a_to_b": self.a_to_b.as_dict(), "b_to_a": self.b_to_a.as_dict()}


class _RxRing(RingSocket):
    """The bridge's receive side: a TPACKET_V3 ring that ignores outgoing frames, promiscuous."""

    _kind = "Bridge RX ring"
    _role = "bridge receive ring"
    _ring_knobs = "block_size/block_count"

    def __init__(self, ifname, netns, block_size, block_count, promiscuous):
        self.block_size = block_size
        self.block_count = block_count
        self._rx = None
        self._open_ring_socket(ifname, netns)
        try:
            fd = self._fd
            where = dict(ifname=ifname, netns=self.netns)
            try:
                self._sock.setsockopt(lib.NR_SOCK_SOL_PACKET, lib.NR_RX_PACKET_IGNORE_OUTGOING, 1)
            except OSError as exc:
                raise from_oserror(exc, "setsockopt(PACKET_IGNORE_OUTGOING) on %s" % ifname, **where) from None
            rc = lib.nr_rx_setup(fd, block_size, block_count, _RX_FRAME_SIZE, 1)
            if rc < 0:
                if rc == -errno.EINVAL:
                    raise ConfigurationError("the kernel rejected the bridge's RX ring geometry block_size=%d "
                                             "block_count=%d (EINVAL)" % (block_size, block_count),
                                             field="block_size", value=block_size)
                raise_errno(rc, "setting up the bridge's TPACKET_V3 RX ring", **where)
            self._rx = self._map(block_size * block_count)
            rc = lib.nr_sock_bind_packet(fd, self.ifindex, lib.NR_RX_ETH_P_ALL)
            if rc < 0:
                raise_errno(rc, "binding the bridge's receive socket to %s" % ifname, **where)
            if promiscuous:
                rc = lib.nr_rx_promisc(fd, self.ifindex)
                if rc < 0:
                    raise_errno(rc, "enabling promiscuous mode on %s" % ifname, **where)
        except BaseException:
            self._teardown()
            raise

    def base(self):
        """The cffi pointer to the mapped ring (valid until :meth:`close`)."""
        return self._rx.ptr

    def kernel_drops(self):
        """Frames the kernel dropped (ring full) since the last call (PACKET_STATISTICS resets)."""
        out = ffi.new("uint32_t[3]")
        with self._guard:
            rc = lib.nr_rx_stats(self._fd, out)
        if rc < 0:
            raise_errno(rc, "reading PACKET_STATISTICS of the bridge on %s" % self.ifname)
        return out[1]

    def _repr_ring(self):
        return "ring=%dx%d B" % (self.block_count, self.block_size)


class _TxRing(TxRingSocket):
    """The bridge's transmit side: a TPACKET_V2 ring whose struct nr_tx_ring the C loop fills."""

    _kind = "Bridge TX ring"
    _role = "bridge transmit ring"
    _ring_knobs = "frame_count"

    def __init__(self, ifname, netns, frame_count, qdisc_bypass):
        self._ring = None
        self._open_ring_socket(ifname, netns)
        try:
            fd = self._fd
            where = dict(ifname=ifname, netns=self.netns)
            self.mtu = self._read_mtu()
            # A slot holds a whole frame of this link (MTU + Ethernet header + one VLAN tag).
            self._open_tx_ring(self.mtu, _tx_frame_size(self.mtu), frame_count, qdisc_bypass)
            # Protocol 0: the socket transmits but never receives.
            rc = lib.nr_sock_bind_packet(fd, self.ifindex, 0)
            if rc < 0:
                raise_errno(rc, "binding the bridge's transmit socket to %s" % ifname, **where)
        except BaseException:
            self._teardown()
            raise

    def ring(self):
        """The ``struct nr_tx_ring *`` the C loop fills (valid until :meth:`close`)."""
        return self._ring

    def _repr_ring(self):
        return "ring=%d slots capacity=%d" % (getattr(self, "frame_count", 0), getattr(self, "capacity", 0))


class _Direction:
    """One direction: its RX ring, the other side's TX ring, the C state and the forwarding thread."""

    def __init__(self, name, rx, tx, imp, queue_frames):
        self.name = name
        self.rx = rx
        self.tx = tx
        self.imp = imp
        self.rx_dropped = 0
        self.error = None
        self.thread = None
        d = self.c = ffi.new("struct nr_br_dir *")
        d.rx_base = rx.base()
        d.block_size = rx.block_size
        d.block_nr = rx.block_count
        d.rx_idx = 0
        d.rx_fd = rx.fileno()
        d.tx = tx.ring()
        _fill_imp(d.imp, imp)
        slot = tx.capacity
        delayed = imp.delay > 0 or imp.jitter > 0
        cap = queue_frames if delayed else 0
        _check_queue_bytes(cap, slot, tx.ifname, tx.mtu)
        self._qbuf = ffi.new("uint8_t[]", max(cap * slot, 1))
        self._qlen = ffi.new("uint32_t[]", max(cap, 1))
        self._qdue = ffi.new("uint64_t[]", max(cap, 1))
        self._hold = ffi.new("uint8_t[]", slot)
        d.qbuf, d.qslot, d.qcap, d.qlen, d.qdue, d.hold = self._qbuf, slot, cap, self._qlen, self._qdue, self._hold
        lib.nr_br_init(d)

    def loop(self, wake_fd, stop):
        """The forwarding thread: C slices until ``stop`` is set (the wake fd makes a slice end at once)."""
        try:
            while not stop.is_set():
                rc = lib.nr_br_run(self.c, wake_fd, _SLICE_MS)
                if rc == lib.NR_BR_WOKEN or rc == lib.NR_BR_SLICE or rc == -errno.EINTR:
                    continue
                self.error = NetringError(
                    "the bridge stopped forwarding %s (%s -> %s): %s; check that both interfaces still exist "
                    "and are up" % (self.name, self.rx.ifname, self.tx.ifname, os.strerror(-rc)))
                self.error.errno = -rc
                return
        except BaseException as exc:  # never let a thread die silently
            self.error = exc
        finally:
            lib.nr_br_flush(self.c, 1)  # the frames still delayed or held go out now

    def stats(self):
        s = self.c.st
        return LinkStats(s.received, s.forwarded, s.dropped, s.duplicated, s.reordered, s.corrupted, s.delayed,
                         s.queue_full, s.tx_dropped, s.too_long, self.rx_dropped)


def _abandon(stop, wake, dirs, rings):
    """A Bridge collected without close(): stop its threads, then close its rings and wake fd."""
    stop.set()
    os.eventfd_write(wake, 1)
    for d in dirs:
        if d.thread is not None:
            d.thread.join()
    for r in reversed(rings):
        r.close()
    os.close(wake)


def _check_queue_bytes(queue_frames, slot, ifname, mtu):
    """ConfigurationError unless ``queue_frames`` slots of ``slot`` bytes fit :data:`MAX_QUEUE_BYTES`
    (checked once the far link's MTU, hence the slot, is known — before the queue is allocated)."""
    if queue_frames * slot > MAX_QUEUE_BYTES:
        link = " (%s has MTU %d)" % (ifname, mtu)
        raise ConfigurationError("queue_frames=%d needs a %d-byte delay queue (%d B slots%s), above the limit of "
                                 "%d bytes (1 GiB) per direction; use queue_frames <= %d" % (
                                     queue_frames, queue_frames * slot, slot, link, MAX_QUEUE_BYTES,
                                     MAX_QUEUE_BYTES // slot), field="queue_frames", value=queue_frames)


def _same_interface_error(ifname, netns):
    return ConfigurationError("side_a and side_b are the same interface (%s%s): a bridge would send every frame "
                              "back out where it came from; give two different interfaces" % (
                                  ifname, "" if netns is None else " in netns %s" % netns),
                              field="side_b", value=(ifname, netns))


def _netns_inode(spec):
    """The inode of the namespace ``spec`` (None: ours) names, to tell two specs of one namespace apart."""
    if spec is None:
        return os.stat("/proc/thread-self/ns/net").st_ino
    ns, owned = resolve(spec)
    try:
        return ns.inode
    finally:
        if owned:
            ns.close()


def _check_distinct(ifname, a_ns, b_ns):
    """Refuse two sides that name interface ``ifname`` in one namespace (a name and a handle, say)."""
    if _netns_inode(a_ns) == _netns_inode(b_ns):
        raise _same_interface_error(ifname, a_ns)


def _side(field, value):
    if isinstance(value, str):
        return value, None
    if isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], str):
        return value[0], value[1]
    raise ConfigurationError("%s must be an interface name or (ifname, netns), not %r" % (field, value),
                             field=field, value=value)


class Bridge:
    """Forward frames both ways between ``side_a`` and ``side_b``, each ``(ifname, netns)`` or an ifname.

    ``impair``: None, one mapping for both directions or ``{"a_to_b": ..., "b_to_a": ...}`` (see the
    module doc); validated here (ConfigurationError naming the key). Keyword configuration:
    ``block_size`` / ``block_count`` (each RX ring; default 128 KiB × 64 = 8 MiB, ~30 ms of 64 B
    frames at 1.5 Mpps: a forwarding thread that waits that long for a CPU loses nothing; at most
    1 GiB per ring, ``netring.capture.MAX_RING_BYTES``), ``frame_count`` (each TX ring's slots;
    default 1024), ``queue_frames`` (delay queue slots per direction, each the size of a TX slot;
    default 8192; at most :data:`MAX_QUEUE_BYTES`, 1 GiB, per direction), ``promiscuous`` (default
    True: a bridge forwards frames for any MAC), ``qdisc_bypass``. ``side_a`` and ``side_b`` must be
    two different interfaces (the same one in the same namespace would send every frame back out
    where it came from).

    The four ring sockets are opened here; nothing forwards until :meth:`start` (background
    threads, one per direction) or :meth:`run` (blocks). :meth:`stop` is prompt (the C loop polls a
    wake eventfd next to the RX socket); frames still delayed go out when it stops.
    :meth:`close` (and the end of ``with``) stops and releases everything.
    """

    def __init__(self, side_a, side_b, impair=None, *, block_size=1 << 17, block_count=64, frame_count=1024,
                 queue_frames=8192, promiscuous=True, qdisc_bypass=False):
        a_if, a_ns = _side("side_a", side_a)
        b_if, b_ns = _side("side_b", side_b)
        if a_if == b_if and (a_ns is b_ns or (isinstance(a_ns, str) and a_ns == b_ns)):
            raise _same_interface_error(a_if, a_ns)
        check_int("block_size", block_size, PAGE_SIZE, 1 << 24, ", a power of two")
        if block_size & (block_size - 1) or block_size % PAGE_SIZE:
            raise ConfigurationError("block_size=%d must be a power of two and a multiple of the page size (%d)"
                                     % (block_size, PAGE_SIZE), field="block_size", value=block_size)
        check_int("block_count", block_count, 2, 4096)
        if block_size * block_count > MAX_RING_BYTES:
            raise ConfigurationError("block_size*block_count=%d exceeds the ring limit of %d bytes (1 GiB) per RX "
                                     "ring; use a smaller block_size or block_count"
                                     % (block_size * block_count, MAX_RING_BYTES),
                                     field="block_count", value=block_count)
        check_int("frame_count", frame_count, 16, 1 << 16)
        check_int("queue_frames", queue_frames, 1, 1 << 20)
        check_bool("promiscuous", promiscuous)
        check_bool("qdisc_bypass", qdisc_bypass)
        self.impairment = parse_impairment(impair)
        self._rings = []
        self._dirs = ()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        try:
            rx_a = self._ring(_RxRing, a_if, a_ns, block_size, block_count, promiscuous)
            if a_if == b_if:  # the same name in two namespace specs: are they one namespace?
                _check_distinct(a_if, a_ns, b_ns)
            rx_b = self._ring(_RxRing, b_if, b_ns, block_size, block_count, promiscuous)
            tx_a = self._ring(_TxRing, a_if, a_ns, frame_count, qdisc_bypass)
            tx_b = self._ring(_TxRing, b_if, b_ns, frame_count, qdisc_bypass)
            self._dirs = (_Direction("a_to_b", rx_a, tx_b, self.impairment[0], queue_frames),
                          _Direction("b_to_a", rx_b, tx_a, self.impairment[1], queue_frames))
        except BaseException:
            self._release()
            raise
        self.side_a = (a_if, rx_a.netns)
        self.side_b = (b_if, rx_b.netns)
        # Dropped without close() (even while running): the threads stop and the sockets close.
        self._finalizer = weakref.finalize(self, _abandon, self._stop, self._wake, self._dirs, list(self._rings))

    def _ring(self, cls, *args):
        r = cls(*args)
        self._rings.append(r)
        return r

    def _release(self):
        for r in reversed(self._rings):
            r.close()
        self._rings = []
        if self._wake >= 0:
            os.close(self._wake)
            self._wake = -1

    @property
    def running(self):
        """True while the forwarding threads run."""
        return any(d.thread is not None and d.thread.is_alive() for d in self._dirs)

    @property
    def closed(self):
        """True once :meth:`close` ran."""
        return self._closed

    def start(self):
        """Start forwarding in two background threads (one per direction); returns ``self``."""
        with self._lock:
            if self._closed:
                raise NetringError("this Bridge is closed; create a new one")
            if self.running:
                return self
            self._stop.clear()
            try:
                os.eventfd_read(self._wake)  # re-arm after a previous stop
            except BlockingIOError:
                pass
            for d in self._dirs:
                d.error = None
                d.thread = threading.Thread(target=d.loop, args=(self._wake, self._stop), daemon=True,
                                            name="netring-bridge-%s" % d.name)
                d.thread.start()
        return self

    def stop(self):
        """Stop forwarding (prompt: the C loops wake at once) and wait for the threads; idempotent.

        Frames still in the delay queue are sent first. Raises the NetringError a direction stopped
        with, if one failed while running (e.g. an interface disappeared).
        """
        with self._lock:
            self._stop.set()
            if self._wake >= 0:
                os.eventfd_write(self._wake, 1)
            for d in self._dirs:
                if d.thread is not None:
                    d.thread.join()
                    d.thread = None
            self._collect_drops()
        for d in self._dirs:
            if d.error is not None:
                err, d.error = d.error, None
                raise err

    def run(self, timeout=None):
        """Forward in the background threads until ``timeout`` s pass (None: until Ctrl-C or :meth:`stop`
        from another thread), then stop. Returns :meth:`stats`."""
        timeout = check_timeout("timeout", timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        self.start()
        try:
            while self.running:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._stop.wait(0.2 if left is None else min(0.2, left))  # short waits: Ctrl-C gets through
        finally:
            self.stop()
        return self.stats()

    def _collect_drops(self):
        for d in self._dirs:
            if not d.rx.closed:
                d.rx_dropped += d.rx.kernel_drops()

    def stats(self):
        """:class:`BridgeStats` — counters per direction since the bridge was made (safe while running)."""
        if not self._closed:
            self._collect_drops()
        return BridgeStats(*(d.stats() for d in self._dirs))

    def close(self):
        """Stop forwarding and close the four ring sockets (idempotent). Counters stay readable."""
        if self._closed:
            return
        try:
            self.stop()
        finally:
            self._collect_drops()
            self._closed = True
            self._finalizer.detach()
            self._release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<Bridge %s%s <-> %s%s%s%s>" % (
            self.side_a[0], "" if self.side_a[1] is None else " netns=%s" % self.side_a[1],
            self.side_b[0], "" if self.side_b[1] is None else " netns=%s" % self.side_b[1],
            " impaired" if any(i.active for i in self.impairment) else "",
            " closed" if self._closed else (" running" if self.running else ""))
