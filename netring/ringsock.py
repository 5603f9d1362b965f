"""The ring-socket base: what :class:`~netring.Capture` and :class:`~netring.Injector` share.

A *ring socket* is one socket, opened inside a network namespace, plus the shared-memory
mappings the kernel and we exchange data through, all behind one
:class:`~netring._ring.RingGuard`. This module owns that life cycle — open, map, close (unmap
before closing the socket), ``closed``, :meth:`~RingSocket.fileno`, the context manager and
``__repr__`` — and, of the ring formats, only the TPACKET_V2 TX ring set-up that
:class:`~netring.Injector` and :class:`~netring.Bridge` share (:meth:`RingSocket._open_tx_ring`,
the link MTU); a TPACKET RX or TX ring is one mapping, an AF_XDP socket (UMEM plus
fill/completion/RX/TX rings) is several.
"""
import errno
import fcntl
import mmap
import os
import struct
import time

from ._core import ffi, lib
from ._ring import PAGE_SIZE, RingGuard, check_int, check_timeout, open_packet_socket, raise_errno
from .netns import check_ifname
from .errors import NetringError, ViewsAliveError, from_oserror

__all__ = ["RingSocket", "TxRingSocket", "BatchReceiver", "ViewBatch", "RingMapping", "RingMemoryError", "tx_ring_geometry"]

_SIOCGIFMTU = 0x8921
_ETH_HLEN = 14
_VLAN_HLEN = 4


def tx_ring_geometry(frame_size, frame_count):
    """The TPACKET_V2 TX ring for ``frame_count`` slots of ``frame_size`` bytes (a multiple of
    TPACKET_ALIGNMENT): ``(block_size, frames_per_block, block_nr)`` — one page-rounded block per
    slot size, ``frame_count`` rounded up to whole blocks (the ring holds ``block_nr * frames_per_block``)."""
    block_size = (frame_size + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE
    fpb = block_size // frame_size
    return block_size, fpb, (frame_count + fpb - 1) // fpb


class RingMemoryError(NetringError, MemoryError):
    """A ring could not be mapped into this process (mmap ENOMEM): out of address space or memory.

    ``size`` is the mapping's size in bytes; the message names the knobs that shrink the ring.
    """

    def __init__(self, message, size):
        super().__init__(message)
        self.size = size


class RingMapping:
    """One shared mapping of a ring socket's memory, with the socket's own handles into it.

    ``mm`` is the ``mmap``; ``view`` the one memoryview (read-only if ``readonly``) and ``ptr``
    the one cffi ``uint8_t[]`` the socket keeps; everything else it hands out derives from those
    two. ``fd`` -1 makes an anonymous shared mapping (e.g. an AF_XDP UMEM): re-mapping one
    would give fresh memory, so :meth:`RingSocket._unmap` closes anonymous mappings last — only
    once every socket-backed one (which maps the same kernel memory again) has closed.
    """

    __slots__ = ("fd", "size", "offset", "readonly", "mm", "view", "ptr")

    def __init__(self, fd, size, offset=0, readonly=False):
        self.fd = fd
        self.size = size
        self.offset = offset
        self.readonly = readonly
        self.mm = self.view = self.ptr = None
        self.arm()

    @property
    def mapped(self):
        """True until :meth:`close` succeeded."""
        return self.mm is not None

    def arm(self):
        """Map (again, if a close went through but another mapping's was refused), then make ``view`` and ``ptr``."""
        if self.mm is None:
            # For a socket, Python's mmap dups the fd: until this mapping is closed the socket
            # (and its ring) stays open.
            try:
                self.mm = mmap.mmap(self.fd, self.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                                    offset=self.offset)
            except OSError as exc:  # EMFILE (the dup), ENOMEM...
                raise from_oserror(exc, "mapping the %d-byte ring (mmap)" % self.size) from None
        view = memoryview(self.mm)
        self.view = view.toreadonly() if self.readonly else view
        self.ptr = ffi.from_buffer("uint8_t[]", self.mm)

    def disarm(self):
        """Release ``ptr`` and ``view`` (a mapping cannot close while they export it)."""
        ptr, view, self.ptr, self.view = self.ptr, self.view, None, None
        if ptr is not None:
            ffi.release(ptr)
        if view is not None:
            view.release()

    def close(self):
        """Unmap after :meth:`disarm`. False — and still mapped — while a view someone else derived is alive
        (Python's mmap refuses with BufferError), so no pointer into the ring ever outlives the mapping."""
        if self.mm is not None:
            try:
                self.mm.close()
            except BufferError:
                return False
            self.mm = None
        return True


class ViewBatch:
    """The release rule of a batch of zero-copy views (:class:`netring.PacketBatch`, :class:`netring.XdpBatch`).

    A subclass keeps the views it handed out in ``_views`` (with ``_released`` False), and defines
    ``_give_back()`` (return the memory to the kernel) and ``_stuck_message(n)``. A context manager;
    ``close`` is ``release``.
    """

    def release(self):
        """Release every view this batch handed out and give its memory back to the kernel (idempotent).

        Raises :class:`~netring.ViewsAliveError` (and keeps the memory) if a view is still exported,
        e.g. a NumPy array made over ``pkt.data``: drop it and call again.
        """
        if self._released:
            return
        stuck = []
        for v in self._views:
            try:
                v.release()
            except BufferError:
                stuck.append(v)
        self._views = stuck
        if stuck:
            raise ViewsAliveError(self._stuck_message(len(stuck)))
        self._released = True
        self._give_back()

    close = release

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


class BatchReceiver:
    """What every batch-receiving ring socket (:class:`netring.Capture`, :class:`netring.XdpSocket`)
    builds on its ``next_batch(timeout)``: iterating batches and owned-copy receives.

    The class using it provides ``next_batch(timeout)`` (a batch with ``release()``, a context
    manager of packets with ``to_owned()``), ``closed``, and a ``_pending`` deque.
    """

    def batches(self, timeout=None):
        """Iterate batches until none arrives within ``timeout`` s (None: forever).

        The previously yielded batch is returned to the kernel when the next one is requested
        (or when the iteration ends), whether or not the loop body released it.
        """
        check_timeout("timeout", timeout)
        prev = None
        try:
            while True:
                if prev is not None:
                    prev.release()
                    prev = None
                b = self.next_batch(timeout)
                if b is None:
                    return
                prev = b
                yield b
        finally:
            if prev is not None and not self.closed:
                prev.release()

    def recv(self, max_packets=64, timeout=None):
        """Up to ``max_packets`` packets as owned copies (``data`` is ``bytes``), waiting up to ``timeout`` s for them.

        Returns once ``max_packets`` packets have arrived, or when ``timeout`` s have passed
        with what arrived by then (``[]`` if nothing did) — like scapy's ``sniff(count=,
        timeout=)``. ``timeout=None`` waits until ``max_packets`` arrived, however long that
        takes; ``timeout=0`` takes what is ready now without waiting. Packets beyond
        ``max_packets`` (the rest of a block or batch) are kept, in order, for the next call.
        For "whatever one batch holds, as soon as there is one", use
        :meth:`next_batch` (zero-copy views).
        """
        check_int("max_packets", max_packets, 1, 1 << 30)
        timeout = check_timeout("timeout", timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        pending = self._pending
        while len(pending) < max_packets:
            # After the deadline, left is 0: next_batch still hands out blocks that are already
            # retired (at most max_packets more), it just stops waiting for new ones.
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            b = self.next_batch(left)
            if b is None:
                break
            with b:
                pending.extend(p.to_owned() for p in b)
        n = min(max_packets, len(pending))
        return [pending.popleft() for _ in range(n)]


class RingSocket:
    """Base of the ring sockets: one socket in a namespace, its ring mappings, one :class:`RingGuard`.

    Every C call that touches a mapping or the socket runs inside ``with self._guard:``, so
    :meth:`close` (from any thread) never unmaps under one. A subclass

    - sets ``_kind`` (``"Capture"``: the class's name in messages and ``repr``) and ``_role``
      (``"capture"``: what the socket is for, in open errors);
    - validates its keyword arguments, then calls :meth:`_open_ring_socket` and :meth:`_map`
      (in any order: :meth:`_unmap` closes anonymous memory last);
    - overrides :meth:`_drop_pointers` / :meth:`_rearm_pointers` for pointers it derived from
      a mapping, :meth:`_views_alive_error` for its message, :meth:`_repr_ring` for its
      geometry, and extends :meth:`_do_close` for what must be undone before the unmap;
    - calls :meth:`_teardown` if its ``__init__`` fails after the socket was opened.
    """

    _kind = "RingSocket"
    _role = "ring socket"
    _ring_knobs = "the ring geometry"  # what shrinks the ring, for RingMemoryError
    # Defaults for an object whose __init__ failed before the socket was opened.
    _guard = None
    _sock = None
    _maps = ()
    ifname = None
    netns = None

    # -- set-up ------------------------------------------------------------------------------
    def _open_ring_socket(self, ifname, netns, opener=open_packet_socket):
        """Create the guard, then the socket inside ``netns`` with ``opener(ifname, netns, role)``,
        which returns ``(socket, ifindex, namespace label)`` (AF_PACKET by default)."""
        check_ifname("ifname", ifname)  # before any fd exists: a bad name costs nothing to undo
        self.ifname = ifname
        self._maps = []
        self._guard = RingGuard("%s on %s" % (self._kind, ifname))
        try:
            self._sock, self.ifindex, self.netns = opener(ifname, netns, self._role)
        except BaseException:
            self._guard.dispose()  # its eventfd now, not whenever the half-built object is collected
            raise
        self._fd = self._sock.fileno()

    def _map(self, size, offset=0, readonly=False, fd=None):
        """Map ``size`` bytes of the socket at ``offset`` (``fd``: another fd, -1 for anonymous memory);
        returns the :class:`RingMapping`, which :meth:`_teardown` unmaps."""
        try:
            m = RingMapping(self._fd if fd is None else fd, size, offset, readonly)
        except (OSError, NetringError) as exc:  # a raw OSError, or one RingMapping already translated
            if getattr(exc, "errno", None) != errno.ENOMEM:
                raise
            # Typed, with the size and the remedy: many rings at once (or a small RLIMIT_AS) end here.
            raise RingMemoryError(
                "cannot map the %d-byte ring of the %s on %s into this process (mmap: ENOMEM, out of address "
                "space or memory); use a smaller ring (%s), fewer rings open at once, or raise the process's "
                "memory limit (ulimit -v / RLIMIT_AS)" % (size, self._role, self.ifname, self._ring_knobs),
                size) from None
        self._maps.append(m)
        return m

    # -- TPACKET_V2 TX rings (Injector, Bridge) ----------------------------------------------
    def _read_mtu(self, fallback=None):
        """The link's MTU (SIOCGIFMTU); ``fallback`` (the last one known) if the kernel cannot say,
        else a NetringError — a made-up MTU would silently disable the frame-length check."""
        req = struct.pack("16si12x", self.ifname.encode(), 0)
        try:
            res = fcntl.ioctl(self._sock.fileno(), _SIOCGIFMTU, req)
        except OSError as exc:
            if fallback is not None:
                return fallback
            raise from_oserror(exc, "reading the MTU of %s (SIOCGIFMTU)" % self.ifname) from None
        return struct.unpack_from("16si", res)[1]

    # -- subclass hooks ----------------------------------------------------------------------
    def _drop_pointers(self):
        """Forget every pointer derived from a mapping (before the unmap)."""

    def _rearm_pointers(self):
        """Derive those pointers again (the unmap was refused and the mappings are back)."""

    def _views_alive_error(self):
        """The ViewsAliveError :meth:`close` raises while a view into a mapping is alive."""
        return ViewsAliveError("cannot close the %s on %s: views into its ring are still alive; drop them, "
                               "then close again" % (self._role, self.ifname))

    def _repr_ring(self):
        """The geometry part of ``repr``."""
        return "mappings=%d" % len(self._maps)

    # -- tear-down ---------------------------------------------------------------------------
    def _unmap(self):
        """Unmap every mapping, or none: drop our pointers and views, close the socket-backed mappings,
        then the anonymous ones; if one refuses (a view derived from it is alive), map the ones already
        closed again — only socket-backed ones can have been, and they map the same kernel memory
        again — re-derive the pointers and raise :meth:`_views_alive_error`."""
        if not self._maps:
            return
        self._drop_pointers()
        for m in self._maps:
            m.disarm()
        order = sorted(self._maps, key=lambda m: m.fd == -1)  # stable: anonymous memory last
        if all(m.close() for m in order):  # all() stops at the first refusal
            self._maps = []
            return
        for m in self._maps:
            m.arm()
        self._rearm_pointers()
        raise self._views_alive_error()

    def _teardown(self):
        # Order matters: unmap before closing the socket. A socket mapping holds a dup of the socket
        # fd, so closing the socket first would not free the ring; and no pointer into the ring may
        # outlive the mapping. A refused unmap leaves the socket open too: the object stays usable.
        try:
            self._unmap()
        finally:
            if not self._maps and self._sock is not None:
                self._sock.close()
                self._sock = None
            g = self._guard
            if not self._maps and g is not None and not (g.closing or g.closed):
                g.dispose()  # a failed __init__ (close() has its own protocol): its eventfd goes too

    def _do_close(self):
        # Runs with the guard closing and nothing in flight: no other thread touches the ring now.
        self._teardown()

    # -- public life cycle ---------------------------------------------------------------------
    def close(self):
        """Unmap the ring and close the socket (idempotent, thread-safe; see the subclass for details).

        Raises :class:`~netring.errors.ViewsAliveError` — and stays open — while views into the
        ring are alive; nothing is unmapped under them.
        """
        self._guard.run_close(self._do_close)

    @property
    def closed(self):
        """True once :meth:`close` succeeded."""
        return self._guard is not None and self._guard.closed

    @property
    def closing(self):
        """True while a :meth:`close` (from any thread) is under way: every call now raises the "closed" error."""
        return self._guard is not None and self._guard.closing

    def fileno(self):
        """The socket fd, for selectors/asyncio (the "closed" error once closed)."""
        self._guard.check_open()
        return self._fd

    def dup_wait_fds(self):
        """Duplicates of ``(fileno(), the close-wake eventfd)`` for an event loop to wait on; the caller closes both.

        The eventfd becomes readable as soon as a :meth:`close` begins (from any thread or task),
        so a loop waiting for the socket learns of the close instead of waiting forever.
        Duplicates, not the originals: a close never leaves a selector registered on an fd number
        that was closed (and may already be reused); until the caller closes them the kernel
        socket stays open, so close them as soon as the wait ends (:mod:`netring.aio` does).
        Taken inside the guard: the "closed" error once a close began, never a half-closed pair.
        """
        with self._guard:
            try:
                sock = os.dup(self._fd)
                try:
                    wake = os.dup(self._guard.wake_fd)
                except BaseException:
                    os.close(sock)
                    raise
            except OSError as exc:  # EMFILE
                raise from_oserror(exc, "duplicating the fds of the %s on %s for an event loop"
                                   % (self._role, self.ifname)) from None
        return sock, wake

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<%s %s%s %s%s>" % (self._kind, self.ifname, "" if self.netns is None else " netns=%s" % self.netns,
                                   self._repr_ring(), " closed" if self.closed else "")


class TxRingSocket(RingSocket):
    """A ring socket with a TPACKET_V2 TX ring (:class:`netring.Injector`, the Bridge's transmit side):
    :meth:`_open_tx_ring` sets it up and keeps the ``struct nr_tx_ring *`` (``_ring``) and its mapping
    (``_tx``); the ring's base pointer is dropped and re-armed with the mapping."""

    _ring = None
    _tx = None

    def _open_tx_ring(self, mtu, frame_size, frame_count, qdisc_bypass):
        """Set up and map a TPACKET_V2 TX ring on the open socket (geometry from :func:`tx_ring_geometry`)
        for a link of ``mtu``; returns the filled ``struct nr_tx_ring *`` (no template tags: ``tags`` NULL)
        and sets ``frame_count`` (rounded up to whole blocks) and ``capacity`` (the largest frame a slot
        takes: an 802.1Q-tagged one of this MTU at most). The caller binds the socket afterwards."""
        where = dict(ifname=self.ifname, netns=self.netns)
        block_size, fpb, block_nr = tx_ring_geometry(frame_size, frame_count)
        self.frame_count = block_nr * fpb
        if qdisc_bypass:
            try:
                self._sock.setsockopt(lib.NR_SOCK_SOL_PACKET, lib.NR_TX_PACKET_QDISC_BYPASS, 1)
            except OSError as exc:
                raise from_oserror(exc, "setsockopt(PACKET_QDISC_BYPASS) for the %s" % self._role, **where) from None
        rc = lib.nr_tx_setup(self._fd, block_size, block_nr, frame_size, self.frame_count)
        if rc < 0:
            if rc == -errno.ENOMEM:
                raise NetringError("the kernel could not allocate a %d-byte TX ring for the %s on %s (ENOMEM); use "
                                   "a smaller %s" % (block_nr * block_size, self._role, self.ifname, self._ring_knobs))
            raise_errno(rc, "setting up the TPACKET_V2 TX ring of the %s" % self._role, **where)
        self.capacity = min(frame_size - lib.NR_TX_DATA_OFF, mtu + _ETH_HLEN + _VLAN_HLEN)
        tx = self._map(block_size * block_nr)
        r = ffi.new("struct nr_tx_ring *")
        r.base = tx.ptr
        r.frame_size = frame_size
        r.block_size = block_size
        r.frames_per_block = fpb
        r.frame_nr = self.frame_count
        r.head = 0
        r.capacity = self.capacity
        r.link_max = mtu + _ETH_HLEN
        r.fd = self._fd
        r.tags = ffi.NULL
        self._ring, self._tx = r, tx
        return r, tx

    def _drop_pointers(self):
        if self._ring is not None:
            self._ring.base = ffi.NULL

    def _rearm_pointers(self):
        if self._ring is not None:
            self._ring.base = self._tx.ptr
