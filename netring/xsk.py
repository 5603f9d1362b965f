"""``netring.XdpSocket``: an AF_XDP socket — UMEM plus fill, completion, RX and TX rings — in any namespace.

The *UMEM* is one anonymous shared mapping cut into ``frame_count`` frames of ``frame_size``
bytes and registered with the kernel (``XDP_UMEM_REG``). Half of the frames receive, half
transmit, and the two sets never mix. Receiving: free RX frames go to the kernel through the
*fill ring*; it writes a packet into one and returns its descriptor (address, length) in the
*RX ring*. Transmitting: a frame is copied into a free TX frame whose descriptor goes into the
*TX ring*; once sent, the kernel returns its address in the *completion ring*. The C core
(``csrc/xsk.c``) moves descriptors — one call per batch, GIL released — with acquire/release
ordering on the shared producer/consumer words, never hands a frame out twice, and
bounds-checks every descriptor the kernel returns before reading through it (a bad one is
refused and counted in :attr:`XdpSocket.bad_descs`).

Steering: AF_XDP receives only what an XDP program redirects into an XSKMAP slot holding the
socket. ``attach="auto"`` loads the built-in ``xsk`` program (:mod:`netring.bpf.programs`),
puts this socket in its map at ``queue``, attaches it (native if the device can, else generic)
and detaches it on close; ``attach=None`` leaves that to you (``xskmap.update(queue, xsk)``).

Zero-copy safety is :class:`~netring.Capture`'s: ``pkt.data`` is a read-only view into the
UMEM, released when its :class:`XdpBatch` is (then it raises :class:`~netring.StaleBatchError`).
Views *you* derive from it (``pkt.data[2:8]``, ``memoryview(pkt.data)``) are separate Python
objects that cannot be revoked and see the frame's UMEM being refilled: copy with ``bytes(...)``
what you keep past the batch. Such a view keeps the UMEM mapped, so :meth:`XdpSocket.close`
refuses with :class:`~netring.ViewsAliveError` while one is alive. Shared UMEM between sockets (``XDP_SHARED_UMEM``) is not implemented.
"""
import array
import errno
import os
import socket
import threading
import time
from collections import deque, namedtuple

from ._core import ffi, lib
from ._ring import PAGE_SIZE, DrainWindow, byte_view, check_bool, check_int, check_timeout, raise_errno
from .capture import StaleBatchError
from .check import SeqChecker, check_stream_args, prepare_templates, stream_job
from .errors import (ENOTSUPP, ConfigurationError, FrameTooLargeError, NetringError, ResourceBusyError, UnsupportedError,
                     ViewsAliveError, from_oserror)
from .inject import TxStalledError
from . import netdev
from .netns import check_ifname, ifindex_here, resolve
from .ringsock import BatchReceiver, RingSocket, ViewBatch

__all__ = ["XdpSocket", "XdpBatch", "XdpPacket", "XdpStats", "MODES", "ATTACH"]

#: Accepted ``mode=`` values.
MODES = ("auto", "copy", "zerocopy")
#: Accepted ``attach=`` values.
ATTACH = ("auto", None)
_MAX_UMEM = 1 << 30
_BATCH = 256          # descriptors taken per next_batch / drain step (one C call)
_STALL_S = 5.0
_BUSY_SPIN_S = 0.01   # busy-poll mode spins on the RX ring (recvfrom by the kick rule) this long before a poll() wait
_DRAIN_SLICE_NS = 10_000_000  # one C drain call returns to Python at least every 10 ms (signals, close)
_ETH_HLEN = 14
_BUSY_POLL_BUDGET = 64
_BUSY_RETRY_S = 0.5   # how long a bind retries EBUSY (see _bind)


class XdpStats(namedtuple("XdpStats", "rx_dropped rx_invalid_descs tx_invalid_descs rx_ring_full "
                                      "rx_fill_ring_empty_descs tx_ring_empty_descs")):
    """The kernel's AF_XDP counters (``XDP_STATISTICS``, cumulative since the socket opened):
    ``rx_dropped`` (frames dropped for any reason), ``rx_invalid_descs`` / ``tx_invalid_descs``
    (descriptors the kernel refused), ``rx_ring_full`` (dropped: no room in the RX ring — the
    application is too slow), ``rx_fill_ring_empty_descs`` (no free frame in the fill ring),
    ``tx_ring_empty_descs`` (a kick found the TX ring empty)."""

    __slots__ = ()


class XdpPacket:
    """One received frame: ``data`` (read-only memoryview into the UMEM for packets of a batch, valid
    until the batch is returned; ``bytes`` for :meth:`XdpSocket.recv`), ``addr`` (its UMEM address),
    ``options`` (the descriptor's options word)."""

    __slots__ = ("_data", "_batch", "addr", "options")

    def __init__(self, data, addr=0, options=0, batch=None):
        self._data = data
        self._batch = batch
        self.addr = addr
        self.options = options

    @property
    def data(self):
        """The frame bytes; raises :class:`~netring.StaleBatchError` once the batch was returned."""
        b = self._batch
        if b is not None and b._released:
            raise StaleBatchError("this packet's batch was returned to the kernel and its UMEM frame may be "
                                  "refilled; copy what you need with bytes(pkt.data) before leaving the batch's "
                                  "`with` block")
        return self._data

    def __len__(self):
        return len(self._data)

    def to_owned(self):
        """A copy whose ``data`` is ``bytes`` and stays valid after the batch is returned."""
        return XdpPacket(bytes(self.data), self.addr, self.options)

    def __repr__(self):
        return "<XdpPacket %d B addr=%#x>" % (len(self._data), self.addr)


class XdpBatch(ViewBatch):
    """Frames taken from the RX ring in one C call, lent until :meth:`release` (or the end of ``with``).

    ``len(batch)`` frames; ``for pkt in batch`` yields :class:`XdpPacket` (views into the UMEM).
    Releasing hands the frames back to the kernel through the fill ring.
    """

    def __init__(self, xsk, pkts, n):
        self._xsk = xsk
        self._pkts = pkts
        self._n = n
        self._released = False
        self._views = []

    def __len__(self):
        return self._n

    @property
    def released(self):
        """True once the frames were handed back."""
        return self._released

    def _check(self):
        if self._released:
            raise StaleBatchError("this XdpBatch was already returned to the kernel")

    def __iter__(self):
        xsk = self._xsk
        with xsk._guard:
            self._check()
            ro = xsk._ro
        pkts = self._pkts
        views = self._views
        for i in range(self._n):
            p = pkts[i]
            a = p.addr
            try:
                v = ro[a:a + p.len]
            except ValueError:  # released under us (another thread closed the socket)
                raise StaleBatchError("the XdpSocket was closed while its batch was being read") from None
            views.append(v)
            yield XdpPacket(v, a, p.options, self)

    def packets(self):
        """All packets of the batch as a list (same objects as iteration yields)."""
        return list(self)

    def descriptors(self):
        """Low level: ``[(addr, len), ...]`` of the batch's frames (checked: inside the UMEM and one RX frame)."""
        with self._xsk._guard:
            self._check()
            return [(self._pkts[i].addr, self._pkts[i].len) for i in range(self._n)]

    def raw_descriptors(self):
        """For C code over the frames: ``with batch.raw_descriptors() as (umem, pkts, n):``.

        Yields the UMEM base (``uint8_t *``), the checked descriptors (``struct nr_xsk_pkt *``:
        ``addr``, ``len``, ``options``) and their count, valid only inside the ``with``: the
        socket's guard is held, so nothing returns the frames or unmaps the UMEM meanwhile.
        What :meth:`netring.SeqChecker.feed` uses to check a batch in one C call.
        """
        return _RawDescriptors(self)

    def _stuck_message(self, n):
        return ("%d view(s) of an XdpBatch are still exported by other objects (e.g. a NumPy array over "
                "pkt.data); delete them, then release the batch again" % n)

    def _give_back(self):
        """Return the batch's UMEM frames to the fill ring."""
        self._xsk._return_batch(self)

    def __repr__(self):
        return "<XdpBatch packets=%d%s>" % (self._n, " released" if self._released else "")


class _RawDescriptors:
    """The context manager of :meth:`XdpBatch.raw_descriptors` (the socket's guard held inside)."""

    __slots__ = ("_batch",)

    def __init__(self, batch):
        self._batch = batch

    def __enter__(self):
        b = self._batch
        b._xsk._guard.__enter__()
        try:
            b._check()
        except BaseException:
            b._xsk._guard.__exit__(None, None, None)
            raise
        return b._xsk._x.umem, b._pkts, b._n

    def __exit__(self, *exc):
        self._batch._xsk._guard.__exit__(*exc)


def _open_xdp_socket(ifname, netns, role):
    """``(AF_XDP socket, ifindex, namespace label)``: the interface resolved inside ``netns`` first."""
    check_ifname("ifname", ifname)
    ns, owned = resolve(netns)
    try:
        label = None if ns is None else str(ns)
        ifindex = ifindex_here(ifname, None) if ns is None else ns.ifindex(ifname)
        try:
            if ns is None:
                sock = socket.socket(lib.NR_XSK_AF_XDP, socket.SOCK_RAW, 0)
            else:
                sock = ns.socket(lib.NR_XSK_AF_XDP, socket.SOCK_RAW, 0)
        except OSError as exc:
            raise from_oserror(exc, "socket(AF_XDP, SOCK_RAW) for the %s on %s" % (role, ifname), ifname=ifname,
                               netns=label, capability="CAP_NET_RAW") from None
        return sock, ifindex, label
    finally:
        if owned:
            ns.close()


def _pow2_at_least(n):
    p = 1
    while p < n:
        p <<= 1
    return p


class XdpSocket(BatchReceiver, RingSocket):
    """An AF_XDP socket on queue ``queue`` of interface ``ifname`` (inside ``netns`` if given).

    Keyword configuration (validated; ConfigurationError names field, value and range):

    - ``frame_size``: 2048 or 4096 (a power of two up to the page size: aligned UMEM chunks)
    - ``frame_count``: UMEM frames, 16..262144, at most 1 GiB of UMEM; half receive, half send
    - ``ring_size``: entries of the RX and TX rings, a power of two 64..65536 (the fill ring is
      sized to twice the RX frames, the completion ring to the TX frames)
    - ``mode``: ``"auto"`` (zero-copy if the bind gets it, else copy), ``"copy"``, ``"zerocopy"``
      (:class:`~netring.UnsupportedError` naming the device and the kernel's reason if it cannot)
    - ``attach``: ``"auto"`` (load and attach the built-in ``xsk`` program, this socket at
      ``queue`` in its XSKMAP; detached on close) or None (steer yourself: ``xskmap.update(queue, xsk)``)
    - ``need_wakeup`` (bool): bind with ``XDP_USE_NEED_WAKEUP`` — kick the kernel only when a ring asks
    - ``busy_poll_us`` (0..1000000): ``SO_PREFER_BUSY_POLL`` + ``SO_BUSY_POLL`` + ``SO_BUSY_POLL_BUDGET``;
      a waiting receive then spins on the RX ring in C for up to 10 ms before it sleeps in poll().
      The spin issues a non-blocking ``recvfrom`` (which busy-polls the device's NAPI) only when it
      can help: at once when the fill ring's need_wakeup flag asks, otherwise once the ring has been
      empty for an adaptive interval — halved (down to 0: every empty check) each time a
      ``recvfrom`` is followed by frames, as on a NIC whose NAPI runs only when polled; doubled (up
      to 64 µs) when frames arrive without one or a ``recvfrom`` brings none, as on veth in copy
      mode, where the sender's core runs the NAPI and a syscall per check only slows the receiver.
      Taking frames never makes a syscall. :attr:`rx_kicks`, :attr:`rx_kicks_fruitful` and
      :attr:`busy_kick_after_ns` show what the rule did.
    - ``headroom``: UMEM headroom in bytes in front of every frame, 0..frame_size/2
    - ``queue``: the device's RX queue (0..65535); ``netns``: name, path, fd, NetNS or None

    Attributes: ``ifname``, ``ifindex``, ``netns`` (label), ``queue``, ``mode`` (what the bind
    got: ``"copy"`` or ``"zerocopy"``), ``frame_size``, ``frame_count``, ``ring_size``,
    ``headroom``, ``capacity`` (largest frame :meth:`send` takes: ``frame_size - headroom``),
    ``rx_capacity`` (largest frame received whole), ``attachment`` (the
    :class:`~netring.xdp.XdpAttachment` of ``attach="auto"``, else None), ``program`` (its
    program), ``sent_frames``. A context manager; :meth:`close` is idempotent and thread-safe;
    :meth:`fileno` is readable when the RX ring has frames, writable when the TX ring has room.
    One thread at a time may receive, and one send.
    """

    _kind = "XdpSocket"
    _role = "AF_XDP socket"
    _ring_knobs = "frame_count or frame_size"

    def __init__(self, ifname, *, netns=None, queue=0, frame_size=4096, frame_count=4096, ring_size=2048,
                 mode="auto", attach="auto", need_wakeup=True, busy_poll_us=0, headroom=0):
        if type(frame_size) is not int or frame_size not in (2048, 4096) or frame_size > PAGE_SIZE:
            raise ConfigurationError("frame_size=%r must be 2048 or 4096 (a power of two up to the page size, %d: "
                                     "aligned UMEM chunks)" % (frame_size, PAGE_SIZE), field="frame_size",
                                     value=frame_size)
        check_int("frame_count", frame_count, 16, 1 << 18)
        if frame_size * frame_count > _MAX_UMEM:
            raise ConfigurationError("frame_size*frame_count=%d exceeds the UMEM limit of %d bytes (1 GiB)"
                                     % (frame_size * frame_count, _MAX_UMEM), field="frame_count", value=frame_count)
        check_int("ring_size", ring_size, 64, 1 << 16, ", a power of two")
        if ring_size & (ring_size - 1):
            raise ConfigurationError("ring_size=%d must be a power of two (64..65536)" % ring_size, field="ring_size",
                                     value=ring_size)
        check_int("queue", queue, 0, 0xFFFF)
        if mode not in MODES:
            raise ConfigurationError("mode must be one of %s, not %r" % (", ".join(MODES), mode), field="mode",
                                     value=mode)
        if attach not in ATTACH:
            raise ConfigurationError("attach must be 'auto' or None, not %r" % (attach,), field="attach", value=attach)
        check_bool("need_wakeup", need_wakeup)
        check_int("busy_poll_us", busy_poll_us, 0, 1000000)
        check_int("headroom", headroom, 0, frame_size // 2)

        self.queue = queue
        self.frame_size = frame_size
        self.frame_count = frame_count
        self.ring_size = ring_size
        self.headroom = headroom
        self.need_wakeup = need_wakeup
        self.busy_poll_us = busy_poll_us
        #: Largest frame send()/send_batch()/send_stream() take.
        self.capacity = frame_size - headroom
        #: Largest frame the kernel delivers whole (copy mode keeps XDP_PACKET_HEADROOM in front).
        self.rx_capacity = frame_size - headroom - lib.NR_XSK_XDP_PACKET_HEADROOM
        self.mode = None
        self.attachment = None
        self.program = None
        #: Frames handed to the kernel by every send method.
        self.sent_frames = 0
        self._x = None
        self._ro = None
        self._held = {}
        self._pending = deque()
        self._closer_thread = None
        self._netns_spec = netns
        self._mode_wanted = mode
        self._attach_mode = attach
        self._armed = False
        rx_frames = frame_count // 2
        tx_frames = frame_count - rx_frames
        # Twice the RX frames: the kernel publishes its fill-ring consumer index late (when its own cache
        # of entries runs dry), so a frame it consumed may come back through the RX ring while its old
        # fill entry still counts as used; with half the ring that could leave a frame stranded on our
        # side while the kernel, out of fill entries, drops frames (rx_fill_ring_empty_descs).
        self._fill_size = 2 * _pow2_at_least(rx_frames)
        self._comp_size = _pow2_at_least(tx_frames)
        self._open_ring_socket(ifname, netns, opener=_open_xdp_socket)
        try:
            #: The link's MTU when the socket opened: a frame longer than it (plus its Ethernet header, and
            #: an 802.1Q tag if it carries one) is refused before sending — the link would drop it silently.
            self.mtu = netdev.mtu(self.ifname, netns)
            self._setup(rx_frames)
        except BaseException:
            self._undo_attach()
            self._teardown()
            raise

    # -- set-up ----------------------------------------------------------------------------------
    def _where(self):
        return "%s%s" % (self.ifname, "" if self.netns is None else " in namespace %s" % self.netns)

    def _setup(self, rx_frames):
        fd = self._fd
        where = dict(ifname=self.ifname, netns=self.netns)
        size = self.frame_size * self.frame_count
        self._umem = self._map(size, fd=-1)
        rc = lib.nr_xsk_umem_reg(fd, self._umem.ptr, size, self.frame_size, self.headroom)
        if rc < 0:
            if rc == -errno.ENOMEM or rc == -errno.ENOBUFS:
                raise NetringError("the kernel could not pin the %d-byte UMEM (XDP_UMEM_REG: %s); use a smaller "
                                   "frame_count, or raise the locked-memory limit (ulimit -l / RLIMIT_MEMLOCK)"
                                   % (size, os.strerror(-rc)))
            if rc == -errno.EINVAL:
                raise ConfigurationError("the kernel rejected the UMEM geometry frame_size=%d frame_count=%d "
                                         "headroom=%d (XDP_UMEM_REG: EINVAL)"
                                         % (self.frame_size, self.frame_count, self.headroom),
                                         field="headroom", value=self.headroom)
            raise_errno(rc, "registering the UMEM (XDP_UMEM_REG) on %s" % self.ifname, **where)
        sizes = {lib.NR_XSK_RING_FILL: self._fill_size, lib.NR_XSK_RING_COMP: self._comp_size,
                 lib.NR_XSK_RING_RX: self.ring_size, lib.NR_XSK_RING_TX: self.ring_size}
        for which, n in sizes.items():
            rc = lib.nr_xsk_set_ring(fd, which, n)
            if rc < 0:
                raise_errno(rc, "sizing AF_XDP ring %d to %d entries" % (which, n), **where)
        offs = self._offs = ffi.new("struct nr_xsk_offs[4]")
        rc = lib.nr_xsk_offsets(fd, offs)
        if rc < 0:
            if rc == -errno.EPROTO:
                raise UnsupportedError("this kernel's AF_XDP has no ring flags (XDP_MMAP_OFFSETS v1, before 5.4); "
                                       "netring needs Linux 5.4 or newer (kernel %s)" % os.uname().release)
            raise_errno(rc, "reading the AF_XDP ring offsets (XDP_MMAP_OFFSETS)", **where)
        pgoff = {lib.NR_XSK_RING_FILL: lib.NR_XSK_UMEM_PGOFF_FILL_RING,
                 lib.NR_XSK_RING_COMP: lib.NR_XSK_UMEM_PGOFF_COMPLETION_RING,
                 lib.NR_XSK_RING_RX: lib.NR_XSK_PGOFF_RX_RING, lib.NR_XSK_RING_TX: lib.NR_XSK_PGOFF_TX_RING}
        entry = {lib.NR_XSK_RING_FILL: 8, lib.NR_XSK_RING_COMP: 8, lib.NR_XSK_RING_RX: 16, lib.NR_XSK_RING_TX: 16}
        self._rings = {}
        for which in (lib.NR_XSK_RING_FILL, lib.NR_XSK_RING_COMP, lib.NR_XSK_RING_RX, lib.NR_XSK_RING_TX):
            self._rings[which] = self._map(offs[which].desc + sizes[which] * entry[which], offset=pgoff[which])
        x = self._x = ffi.new("struct nr_xsk *")
        x.fd = fd
        x.frame_size = self.frame_size
        x.frame_count = self.frame_count
        x.rx_frames = rx_frames
        x.headroom = self.headroom
        x.need_wakeup = 1 if self.need_wakeup else 0
        x.busy_poll = 1 if self.busy_poll_us else 0
        x.umem_size = size
        self._state = ffi.new("uint8_t[]", self.frame_count)
        self._rx_free = ffi.new("uint64_t[]", rx_frames)
        self._tx_free = ffi.new("uint64_t[]", self.frame_count - rx_frames)
        x.state, x.rx_free, x.tx_free = self._state, self._rx_free, self._tx_free
        self._rearm_pointers()
        if lib.nr_xsk_init(x) < 0:
            raise ConfigurationError("inconsistent UMEM geometry frame_size=%d frame_count=%d headroom=%d"
                                     % (self.frame_size, self.frame_count, self.headroom), field="frame_count",
                                     value=self.frame_count)
        self._bind()
        lib.nr_xsk_refill(x)
        if self.busy_poll_us:
            for opt, val, name in ((lib.NR_XSK_SO_PREFER_BUSY_POLL, 1, "SO_PREFER_BUSY_POLL"),
                                   (lib.NR_XSK_SO_BUSY_POLL, self.busy_poll_us, "SO_BUSY_POLL"),
                                   (lib.NR_XSK_SO_BUSY_POLL_BUDGET, _BUSY_POLL_BUDGET, "SO_BUSY_POLL_BUDGET")):
                try:
                    self._sock.setsockopt(socket.SOL_SOCKET, opt, val)
                except OSError as exc:
                    raise from_oserror(exc, "setsockopt(%s=%d) on the AF_XDP socket on %s" % (name, val, self.ifname),
                                       capability="CAP_NET_ADMIN", **where) from None
        if self._attach_mode == "auto":
            self._attach_builtin()

    def _bind(self):
        fd = self._fd
        flags = lib.NR_XSK_XDP_USE_NEED_WAKEUP if self.need_wakeup else 0
        tries = {"auto": [lib.NR_XSK_XDP_ZEROCOPY, lib.NR_XSK_XDP_COPY], "copy": [lib.NR_XSK_XDP_COPY],
                 "zerocopy": [lib.NR_XSK_XDP_ZEROCOPY]}[self._mode_wanted]
        rc = 0
        zc_rc = None
        for m in tries:
            rc = lib.nr_xsk_bind(fd, self.ifindex, self.queue, flags | m)
            # The kernel frees a closed socket's claim on its queue from a work queue, a moment after
            # close(): EBUSY right after another socket on this queue closed is that, not a live socket.
            busy_until = time.monotonic() + _BUSY_RETRY_S
            while rc == -errno.EBUSY and time.monotonic() < busy_until:
                time.sleep(0.005)
                rc = lib.nr_xsk_bind(fd, self.ifindex, self.queue, flags | m)
            if rc == 0:
                break
            if m == lib.NR_XSK_XDP_ZEROCOPY and rc in (-errno.EOPNOTSUPP, -errno.EINVAL, -ENOTSUPP):
                zc_rc = rc
                continue  # no zero-copy here: try copy (mode="auto"), or report it below
            break
        if rc == 0:
            got = lib.nr_xsk_options(fd)
            self.mode = "zerocopy" if got == 1 else "copy"
            return
        if rc == -errno.EBUSY:
            raise ResourceBusyError(
                "queue %d of %s already has an AF_XDP socket bound (EBUSY); close that socket first, or use another "
                "queue (one socket per queue unless they share a UMEM)" % (self.queue, self._where()))
        if rc == -errno.EINVAL or (zc_rc is not None and rc == zc_rc):
            nq = self._queue_count()
            if nq is not None and self.queue >= nq:
                raise ConfigurationError(
                    "queue=%d is out of range: %s has %d RX queue(s) (0..%d); pick one of those, or add queues "
                    "(`ethtool -L %s combined N`, or numrxqueues= when creating a veth)"
                    % (self.queue, self._where(), nq, nq - 1, self.ifname), field="queue", value=self.queue)
        if self._mode_wanted == "zerocopy" and zc_rc is not None:
            code = -zc_rc
            name = {errno.EOPNOTSUPP: "EOPNOTSUPP", ENOTSUPP: "ENOTSUPP"}.get(code) or errno.errorcode.get(code, str(code))
            raise UnsupportedError(
                "%s cannot do AF_XDP zero-copy (bind with XDP_ZEROCOPY: %s, %s): its driver has no zero-copy "
                "support for this queue; use mode='copy' or 'auto'"
                % (self._where(), name, os.strerror(code) if code != ENOTSUPP else "not supported by the driver"))
        if rc == -errno.ENETDOWN:
            raise NetringError("binding the AF_XDP socket to %s failed: the interface is down (ENETDOWN); bring it up "
                               "(`ip link set dev %s up`)" % (self._where(), self.ifname))
        raise_errno(rc, "binding the AF_XDP socket to queue %d of %s" % (self.queue, self.ifname),
                    ifname=self.ifname, netns=self.netns)

    def _queue_count(self):
        """Active RX queues of the device (ETHTOOL_GCHANNELS; not numrxqueues, the most it could have), or None."""
        from .netdev import rx_queues
        try:
            return rx_queues(self.ifname, self._netns_spec)
        except NetringError:
            return None

    def _attach_builtin(self):
        from . import xdp
        from .bpf.programs import builtin
        prog = self.program = builtin("xsk", queues=max(64, self.queue + 1))
        prog.map("xsks").update(self.queue, self)  # before attaching: no frame meets an empty slot
        try:
            self.attachment = xdp.attach(self.ifindex, prog, netns=self._netns_spec, mode="auto")
        except ResourceBusyError as exc:
            raise ResourceBusyError(
                "attach='auto' cannot load the xsk program: %s already runs an XDP program (%s); pass attach=None "
                "and put this socket into that program's XSKMAP (`xskmap.update(%d, xsk)`), or detach it first"
                % (self._where(), exc, self.queue)) from None

    def _undo_attach(self):
        att, prog, self.attachment, self.program = self.attachment, self.program, None, None
        try:
            if att is not None:
                att.detach()
        finally:
            if prog is not None:
                prog.close()

    def _drop_pointers(self):
        ro, self._ro = self._ro, None
        if ro is not None:
            ro.release()
        if self._x is not None:
            self._x.umem = ffi.NULL

    def _rearm_pointers(self):
        x = self._x
        self._ro = self._umem.view.toreadonly()
        x.umem = self._umem.ptr
        for which, r in ((lib.NR_XSK_RING_FILL, x.fill), (lib.NR_XSK_RING_COMP, x.comp),
                         (lib.NR_XSK_RING_RX, x.rx), (lib.NR_XSK_RING_TX, x.tx)):
            size = {lib.NR_XSK_RING_FILL: self._fill_size, lib.NR_XSK_RING_COMP: self._comp_size}.get(
                which, self.ring_size)
            # Our cached indices survive a re-map (same kernel memory): keep them, refresh the pointers.
            prod, cons = r.cached_prod, r.cached_cons
            lib.nr_xsk_ring_layout(ffi.addressof(x, {0: "fill", 1: "comp", 2: "rx", 3: "tx"}[which]),
                                   self._rings[which].ptr, ffi.addressof(self._offs, which), size)
            if self._armed:
                r.cached_prod, r.cached_cons = prod, cons
        self._armed = True

    def _views_alive_error(self):
        return ViewsAliveError(
            "cannot close the AF_XDP socket on %s: views into its UMEM are still alive (slices or memoryviews "
            "derived from pkt.data); delete them or copy with bytes() first, then close again" % self.ifname)

    def _repr_ring(self):
        return "queue=%d mode=%s umem=%dx%d B rings=%d%s" % (
            self.queue, self.mode, self.frame_count, self.frame_size, self.ring_size,
            "" if self.attachment is None else " xdp=%s" % self.attachment.mode)

    # -- life cycle ------------------------------------------------------------------------------
    def close(self):
        """Return outstanding batches, detach the built-in program, unmap, close (idempotent, thread-safe).

        From another thread while one waits: the waiter is woken and raises "XdpSocket on X is
        closed". Raises :class:`~netring.ViewsAliveError` — and stays open, attached — while views
        derived from packets are alive.
        """
        super().close()

    def _do_close(self):
        self._closer_thread = threading.get_ident()
        try:
            for b in list(self._held.values()):
                if not b._released:
                    b.release()
            self._held.clear()
            self._unmap()  # ViewsAliveError here leaves everything as it was
            self._undo_attach()  # before the socket closes: no redirect meets a closing socket
            self._teardown()
        finally:
            self._closer_thread = None
        self._pending.clear()

    # -- receiving -------------------------------------------------------------------------------
    def _return_batch(self, batch):
        key = id(batch)
        if self._held.get(key) is not batch:
            return
        if self._closer_thread == threading.get_ident():
            del self._held[key]
            lib.nr_xsk_rx_release(self._x, batch._pkts, batch._n)
            return
        try:
            with self._guard:
                if self._held.pop(key, None) is batch:
                    lib.nr_xsk_rx_release(self._x, batch._pkts, batch._n)
        except NetringError:
            pass  # closing or closed: the frames die with the UMEM

    def _take(self, max_packets):
        arr = ffi.new("struct nr_xsk_pkt[]", max_packets)
        with self._guard:
            n = lib.nr_xsk_rx_take(self._x, arr, max_packets)
            if n:
                b = XdpBatch(self, arr, n)
                self._held[id(b)] = b
                return b
        return None

    def _wait_rx(self, deadline):
        """Wait for the RX ring (poll, or in busy-poll mode spin on it first); True if it has frames."""
        g = self._guard
        if self.busy_poll_us:
            left = _BUSY_SPIN_S if deadline is None else min(_BUSY_SPIN_S, deadline - time.monotonic())
            if left > 0:
                with g:  # one C call spins (GIL released), recvfrom only by the kick rule (see busy_poll_us)
                    rc = lib.nr_xsk_rx_spin(self._x, int(left * 1e9))
                if rc > 0:
                    return True
                if rc < 0:
                    raise_errno(rc, "busy polling the AF_XDP socket on %s (recvfrom)" % self.ifname,
                                ifname=self.ifname, netns=self.netns)
        g.wait(self._fd, lib.POLLIN | lib.POLLERR, deadline)
        with g:
            return bool(lib.nr_xsk_rx_ready(self._x))

    def next_batch(self, timeout=None, max_packets=_BATCH):
        """The frames received so far (up to ``max_packets``, default 256) as an :class:`XdpBatch`, or None
        if none arrives within ``timeout`` s (None: forever, 0: only check).

        Signals interrupt the wait (Ctrl-C raises KeyboardInterrupt within ~200 ms); a close from
        another thread wakes it and it raises the "closed" NetringError.
        """
        timeout = check_timeout("timeout", timeout)
        check_int("max_packets", max_packets, 1, 1 << 16)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            b = self._take(max_packets)
            if b is not None:
                return b
            if deadline is not None and time.monotonic() >= deadline:
                return None
            self._wait_rx(deadline)

    def drain(self, checker, timeout, quiet=0.2):
        """Feed received frames to ``checker`` (a :class:`netring.SeqChecker`) until it is done, or no frame
        arrived for ``quiet`` s after the last one, or ``timeout`` s passed. Returns the checker.

        Each step is one C call (GIL released, at most 10 ms) that loops over batches of up to 256
        descriptors — take, check every frame, hand the frames back to the fill ring at once, so it
        stays full — until the RX ring is empty (poll mode; then poll() waits) or, in busy-poll mode,
        until the 10 ms are up (an empty ring is spun on by the kick rule of ``busy_poll_us``), or the
        checker is done. No Python object per frame, no Python per batch.
        """
        if not isinstance(checker, SeqChecker):
            raise ConfigurationError("checker must be a netring.SeqChecker, not %r" % (checker,), field="checker",
                                     value=type(checker).__name__)
        step = _DrainStep(self)
        # time.monotonic() is CLOCK_MONOTONIC, the C core's clock (nr_st_now_ns, step.last_ns)
        window = DrainWindow(timeout, quiet, time.monotonic())
        while not checker.done:
            # one step takes what is there even when the window is over (C takes a batch, then looks at the
            # clock): a drain with timeout=0 still counts the frames already received
            now = time.monotonic()
            step.until_ns = int((now + min(window.wait(now) or 0.0, _DRAIN_SLICE_NS / 1e9)) * 1e9)
            got = checker.feed(step)
            if got:
                window.fed(step.last_ns / 1e9)  # when C took its last batch: the quiet time counts from there
            now = time.monotonic()
            left = window.wait(now)   # frames that keep coming do not extend the timeout
            if left is None:
                break
            if got:
                continue
            if self.busy_poll_us:
                # the C call spun its slice on an empty ring: sleep in poll() until frames come (as _wait_rx)
                self._guard.wait(self._fd, lib.POLLIN | lib.POLLERR, now + left)
            else:
                self._wait_rx(now + left)
        return checker

    # -- transmitting ----------------------------------------------------------------------------
    def _frames(self, frames):
        if not isinstance(frames, (list, tuple)):
            if isinstance(frames, (bytes, bytearray, memoryview, str)) or not hasattr(frames, "__iter__"):
                raise ConfigurationError("frames must be a sequence of bytes-like frames (e.g. a list of bytes), not "
                                         "%s" % type(frames).__name__, field="frames", value=type(frames).__name__)
            frames = list(frames)
        views = [byte_view("frames[%d]" % i, f) for i, f in enumerate(frames)]
        for i, v in enumerate(views):
            n = v.nbytes
            if n > self.capacity:
                raise FrameTooLargeError(n, self.capacity, field="frames[%d]" % i, index=i, sent=0, message=(
                    "frames[%d] (%d B) exceeds the AF_XDP frame capacity of %d B (frame_size %d - headroom %d); "
                    "raise frame_size, lower headroom or send a shorter frame"
                    % (i, n, self.capacity, self.frame_size, self.headroom)))
            if n < _ETH_HLEN:
                raise ConfigurationError("frames[%d] is %d B, shorter than an Ethernet header (14 B)" % (i, n),
                                         field="frames[%d]" % i, value=n)
            self._check_link(v, "frames[%d]" % i, i)
        return views

    def _check_link(self, frame, field, index):
        """FrameTooLargeError if ``frame`` is longer than any frame the link carries: MTU + 14 B of Ethernet
        header + 4 B for an 802.1Q tag (the kernel's own forwarding bound; the link drops longer ones silently)."""
        n = len(frame)
        link = self.mtu + _ETH_HLEN + 4
        if n > link:
            raise FrameTooLargeError(n, link, field=field, index=index, sent=0, limit="mtu", message=(
                "%s (%d B) exceeds what %s carries (MTU %d + 14 B of Ethernet header + 4 B for a VLAN tag = %d B): the "
                "link would drop it; raise its MTU (`ip link set dev %s mtu N`) or send a shorter frame"
                % (field, n, self._where(), self.mtu, link, self.ifname)))

    def _wait_tx(self, deadline):
        """Wait a little for TX room: kick, poll for ring space if the ring is full, else let completions come."""
        g = self._guard
        with g:
            lib.nr_xsk_kick(self._x)
            if lib.nr_xsk_tx_room(self._x):
                return
            ring_full = self._x.tx_free_n > 0
        if ring_full:
            g.wait(self._fd, lib.POLLOUT, min(time.monotonic() + 0.05, deadline) if deadline else
                   time.monotonic() + 0.05)
        else:
            time.sleep(0.0002)  # every TX frame in flight: completions come as the peer takes them

    def _send_views(self, views, timeout, strict):
        self._guard.check_open()
        total = len(views)
        if not total:
            return 0
        lens = array.array("I", [v.nbytes for v in views])
        buf = b"".join(views)
        cbuf = ffi.from_buffer(buf)
        clens = ffi.from_buffer("uint32_t[]", lens)
        deadline = None if timeout is None else time.monotonic() + timeout
        done = pos = 0
        last_progress = time.monotonic()
        g = self._guard
        while True:
            with g:
                n = lib.nr_xsk_tx_send(self._x, cbuf + pos, clens + done, total - done)
            if n < 0:
                raise_errno(n, "sending on the AF_XDP socket on %s" % self.ifname, ifname=self.ifname,
                            netns=self.netns)
            if n:
                pos += sum(lens[done:done + n])
                done += n
                self.sent_frames += n
                last_progress = time.monotonic()
                if done >= total:
                    break
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if deadline is None and now - last_progress > _STALL_S:
                raise TxStalledError("the AF_XDP TX ring on %s made no progress for %.0f s (link down?); %d of %d "
                                     "frames queued" % (self.ifname, _STALL_S, done, total))
            self._wait_tx(deadline)
        if strict and done < total:
            raise NetringError("no free AF_XDP TX frame on %s within %s s; the kernel is not completing sends"
                               % (self.ifname, timeout))
        return done

    def send(self, frame, timeout=5.0):
        """Queue one bytes-like ``frame`` and kick; waits up to ``timeout`` s for a free TX frame (NetringError if
        none). Returns 1. FrameTooLargeError beyond ``capacity``."""
        views = self._frames([frame])
        return self._send_views(views, check_timeout("timeout", timeout), strict=True)

    def send_batch(self, frames, timeout=None):
        """Copy ``frames`` into TX UMEM frames and produce their descriptors (one C call per ring-full), kick.

        Waits for free frames as needed, up to ``timeout`` s (None: as long as the kernel keeps
        completing; :class:`~netring.TxStalledError` after 5 s without progress). Returns the number
        queued. Every frame is validated first: an oversize one raises FrameTooLargeError and
        nothing is sent.
        """
        views = self._frames(frames)
        return self._send_views(views, check_timeout("timeout", timeout), strict=False)

    def flush(self):
        """Kick the kernel to transmit what the TX ring holds; returns how many descriptors it took."""
        with self._guard:
            before = self._x.tx_pending
            rc = lib.nr_xsk_kick(self._x)
            after = self._x.tx_pending
        if rc < 0:
            raise_errno(rc, "kicking the AF_XDP TX ring on %s (sendto)" % self.ifname, ifname=self.ifname,
                        netns=self.netns)
        return before - after

    @property
    def tx_inflight(self):
        """TX frames handed to the kernel and not yet completed."""
        with self._guard:
            lib.nr_xsk_reap(self._x)
            return self._x.tx_inflight

    def wait_drained(self, timeout=1.0):
        """Kick and reap the completion ring until every TX frame is back; True if so, False after ``timeout`` s."""
        timeout = check_timeout("timeout", timeout, none_ok=False)
        deadline = time.monotonic() + timeout
        g = self._guard
        while True:
            with g:
                lib.nr_xsk_kick(self._x)
                lib.nr_xsk_reap(self._x)
                if self._x.tx_inflight == 0:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.0005)

    def send_stream(self, templates, stream_id, first_seq, count, rate_pps=None, csum_offsets=None, timeout=None):
        """Send ``count`` stamped frames of stream ``stream_id``, seqs ``first_seq``…, cycling ``templates``.

        Exactly :meth:`netring.Injector.send_stream`'s meaning: each template already carries a
        valid stamp; per frame C copies it into a TX UMEM frame, writes stream id and seq, updates
        the check and the L4 checksum at ``csum_offsets[i]`` (-1/None: leave it). ``rate_pps``:
        paced in C (None: as fast as frames free up); ``timeout``: stop after this many seconds.
        Returns the number of frames queued and kicked.
        """
        self._guard.check_open()
        timeout = check_stream_args(stream_id, first_seq, count, rate_pps, timeout)
        tm = prepare_templates(templates, csum_offsets, capacity=self.capacity)
        for i in range(tm.n):
            self._check_link(ffi.buffer(tm.arr[i].data, tm.arr[i].len), "templates[%d]" % i, i)
        if count == 0:
            return 0
        j = stream_job(tm, stream_id, first_seq, count, rate_pps, timeout)
        g = self._guard
        deadline = None if timeout is None else time.monotonic() + timeout
        last_progress = time.monotonic()
        try:
            while j.done < count:
                with g:
                    n = lib.nr_xsk_send_stream(self._x, j)
                if n < 0:
                    raise_errno(n, "sending a stream on the AF_XDP socket on %s" % self.ifname)
                if j.last_err:
                    raise_errno(j.last_err, "kicking the AF_XDP TX ring on %s (sendto)" % self.ifname,
                                ifname=self.ifname, netns=self.netns)
                now = time.monotonic()
                if j.done >= count or (deadline is not None and now >= deadline):
                    break
                if n:
                    last_progress = now
                elif deadline is None and now - last_progress > _STALL_S:
                    raise TxStalledError("the AF_XDP TX ring on %s made no progress for %.0f s (link down?); %d of "
                                         "%d frames queued" % (self.ifname, _STALL_S, j.done, count))
                if j.ring_full:
                    self._wait_tx(deadline)
        finally:
            self.sent_frames += j.done
        return j.done

    # -- counters --------------------------------------------------------------------------------
    def stats(self):
        """The kernel's :class:`XdpStats` (``XDP_STATISTICS``; cumulative, reading does not reset them)."""
        out = ffi.new("uint64_t[6]")
        with self._guard:
            rc = lib.nr_xsk_stats(self._fd, out)
        if rc < 0:
            raise_errno(rc, "reading XDP_STATISTICS on %s" % self.ifname)
        return XdpStats(*[int(out[i]) for i in range(6)])

    @property
    def bad_descs(self):
        """Descriptors from the kernel (RX or completion ring) refused by the bounds/state check, never read."""
        return int(self._x.bad_descs) if self._x is not None else 0

    @property
    def rx_packets(self):
        """Frames taken from the RX ring so far."""
        return int(self._x.rx_packets) if self._x is not None else 0

    @property
    def kicks(self):
        """Wake-up syscalls (sendto/recvfrom) issued so far: with ``need_wakeup`` only when a ring asked."""
        return int(self._x.kicks) if self._x is not None else 0

    @property
    def rx_kicks(self):
        """The ``recvfrom`` calls among :attr:`kicks`: fill-ring wake-ups and busy polls (``rx_kicks / rx_packets``
        is the receive path's syscalls per frame)."""
        return int(self._x.rx_kicks) if self._x is not None else 0

    @property
    def rx_kicks_fruitful(self):
        """Busy-poll ``recvfrom`` calls after which the RX ring had frames (the kick rule's evidence)."""
        return int(self._x.rx_kicks_fruitful) if self._x is not None else 0

    @property
    def busy_kick_after_ns(self):
        """Busy poll: how long the RX ring must now stay empty before a ``recvfrom`` (adaptive, 0..64000 ns)."""
        return int(self._x.kick_after_ns) if self._x is not None else 0


class _DrainStep:
    """What :meth:`XdpSocket.drain` feeds to its checker: each use takes, checks and returns batches of up to
    256 frames in one C call (:meth:`raw_drain`) until :attr:`until_ns`, without an :class:`XdpBatch`."""

    __slots__ = ("_xsk", "_scratch", "_last", "until_ns")

    def __init__(self, xsk):
        self._xsk = xsk
        self._scratch = ffi.new("struct nr_xsk_pkt[]", _BATCH)
        self._last = ffi.new("uint64_t *")
        #: CLOCK_MONOTONIC ns by which the next :meth:`raw_drain` returns.
        self.until_ns = 0

    @property
    def last_ns(self):
        """CLOCK_MONOTONIC ns of the last batch that had frames (0 before the first)."""
        return int(self._last[0])

    def raw_drain(self, checker_c):
        """One C drain call over ``checker_c`` (a ``struct nr_st_checker *``); the number of frames checked."""
        xsk = self._xsk
        with xsk._guard:
            n = lib.nr_xsk_drain(xsk._x, checker_c, self._scratch, _BATCH, self.until_ns, self._last)
        if n < 0:
            raise_errno(n, "busy polling the AF_XDP socket on %s (recvfrom)" % xsk.ifname, ifname=xsk.ifname,
                        netns=xsk.netns)
        return n
