"""``netring.Injector``: an AF_PACKET TX ring, in any network namespace.

Frames are written into ring slots and handed to the kernel (``TP_STATUS_SEND_REQUEST``);
one ``sendto(fd, NULL, 0, MSG_DONTWAIT)`` — the *kick* — makes the kernel transmit every
requested slot. The C core fills many slots per call (:meth:`Injector.send_batch`,
:meth:`Injector.send_stream`) with the GIL released.

Why TPACKET_V2 for TX: a V3 TX ring (Linux ≥ 4.20) is frame-based exactly like V2 (blocks
only exist for RX) and adds nothing for sending, while V2 works on every kernel this project
supports; the slot header differs only in name.

Slot order is strict: the kernel transmits slots in ring order and stops at the first slot
that is not requested, so at most one :meth:`Injector.allocate` slot may be open at a time.

Frame limits are the kernel's own: a frame may be MTU + 14 B (Ethernet header) long, MTU + 18 B
only when it carries an 802.1Q tag (ethertype 0x8100; the kernel allows no extra room for
0x88a8), and never more than a slot holds (``frame_size`` − 32 B). Frames are checked against
them before the kernel sees them. Should the kernel refuse a slot anyway (the link's MTU dropped
after the injector opened, say), it marks it ``TP_STATUS_WRONG_FORMAT`` and stops its walk there
for good; the injector recovers that slot at once — the frames behind it move up one slot and
are sent, in order — counts it in ``rejected_frames`` and raises :class:`FrameTooLargeError`
naming the frame, so one bad frame costs one frame, never the ring.
"""
import array
import ctypes
import errno
import os
import sys
import time

from ._core import ffi, lib
from ._ring import NotBytesError, byte_view, check_bool, check_int, frame_size_for, check_timeout, raise_errno
from .check import check_stream_args, prepare_templates, stream_job
from .errors import ConfigurationError, FrameTooLargeError, NetringError, ViewsAliveError
from .ringsock import TxRingSocket, tx_ring_geometry

__all__ = ["Injector", "TxSlot", "TxStalledError", "NotBytesError"]

_ETH_HLEN = 14
_VLAN_HLEN = 4
_TPID_8021Q = b"\x81\x00"  # the one outer ethertype the kernel allows 4 bytes beyond MTU + 14 for
_DEFAULT_FRAME_SIZE = 2048
_MAX_FRAME_SIZE = 65536
_STALL_S = 5.0
# send_batch kicks the kernel every this many frames while filling, so it transmits while we fill
# (the C reference bench/ref/txring.c kicks every 256 too).
_KICK_EVERY = 256


def _byte_view(frame, i):
    """``frame`` as a flat memoryview of bytes; :class:`NotBytesError` naming ``frames[i]`` if it is not bytes-like."""
    return byte_view("frames[%d]" % i, frame)


class TxStalledError(NetringError):
    """The kernel stopped consuming TX slots (link down, qdisc stuck…) and no timeout was given."""


class TxSlot:
    """A writable ring slot from :meth:`Injector.allocate`.

    ``data`` is a writable memoryview of the requested length. :meth:`send` hands it to the
    kernel (transmitted at the next :meth:`Injector.flush`); leaving a ``with`` block without
    sending discards it. The view is released either way.

    What is protected — no byte reaches the slot after :meth:`send` or :meth:`discard` through
    anything made from ``data``: both refuse, with :class:`~netring.ViewsAliveError` (the slot
    stays open and usable, ``data`` is a fresh view), while any of these is alive:

    - an *export* of ``data`` (``numpy.frombuffer(slot.data)``, ``ffi.from_buffer(slot.data)``);
    - a view *derived* from it: ``memoryview(slot.data)``, a slice ``slot.data[2:8]`` kept in a
      variable, ``slot.data.cast("H")``, and ``ctypes.c_char.from_buffer(slot.data)``-style
      objects (ctypes takes a derived view, not an export);
    - ``slot.data.obj`` (the per-slot object the views are made over).

    A derived view cannot be revoked (Python's buffer protocol has none), so the slot detects
    it instead: ``data`` is a view over a per-slot object that nothing else references, and
    after releasing ``data`` the slot checks that this object's last view is gone. ``data``
    itself (and every name bound to it) raises ``ValueError: operation forbidden on released
    memoryview object`` after the send. Temporaries (``slot.data[0:6] = mac``) cost nothing:
    they are gone by the time :meth:`send` runs. Copies (``bytes(slot.data)``) are not views:
    writing to them never touches the ring. Not covered: raw addresses taken out of Python's
    object model (``ctypes.addressof`` of such an object, cffi pointer arithmetic kept past its
    owner) — like any C pointer, those are the caller's responsibility; the ring itself is
    never unmapped under them while the objects are alive.
    """

    __slots__ = ("_inj", "_data", "_base", "_done")

    def __init__(self, inj, view):
        self._inj = inj
        # A per-slot exporter: views derived from `data` share its managed buffer, which holds the
        # one reference to `_base` besides ours — so a reference count tells whether any is alive.
        self._base = (ctypes.c_char * len(view)).from_buffer(view)
        self._data = memoryview(self._base).cast("B")
        self._done = False

    @property
    def data(self):
        """Writable memoryview into the slot's frame area (NetringError once the slot was sent or discarded)."""
        if self._done:
            raise self._done_error()
        return self._data

    @staticmethod
    def _done_error():
        return NetringError("this slot was already sent or discarded (or its injector closed); allocate a new one")

    def send(self, length=None):
        """Queue the slot's first ``length`` bytes (default: all of ``data``) for transmission.

        ViewsAliveError — the slot stays open — while a view made from ``data`` is alive (see the class doc).
        """
        inj = self._inj
        with inj._guard:  # the "closed" error if the injector closed; no unmap during the commit
            if self._done:
                raise self._done_error()
            n = len(self._data) if length is None else length
            check_int("length", n, _ETH_HLEN, len(self._data))
            inj._check_len(n, "length", bytes(self._data[:_ETH_HLEN]))  # the slot stays open if it does not fit
            self._finish()
            lib.nr_tx_commit(inj._ring, n)

    def discard(self):
        """Give the slot back without sending it (idempotent); ViewsAliveError while a view made from ``data`` is alive."""
        if not self._done:
            self._finish()

    def _finish(self):
        # Release first: if someone still exports slot.data (a numpy array over it, say) the slot
        # stays open and usable, instead of being marked done while the injector still holds it.
        try:
            self._data.release()
        except BufferError:
            raise ViewsAliveError(
                "slot.data is still exported (e.g. a numpy array or ctypes object made from it); drop those "
                "objects, then send or discard the slot again") from None
        # Our reference, getrefcount's argument, and nothing else: the managed buffer of `data` (shared by
        # every view derived from it) released its reference to _base, so no such view is left.
        if sys.getrefcount(self._base) > 2:
            self._data = memoryview(self._base).cast("B")  # the slot stays open: a fresh view to use
            raise ViewsAliveError(
                "a view derived from slot.data is still alive (memoryview(slot.data), a slice of it kept, a "
                "ctypes object made from it, or slot.data.obj): bytes written through it after send() would reach "
                "the wire; drop it, then send or discard the slot again (use the fresh slot.data)")
        self._base = None
        self._done = True
        if self._inj._open_slot is self:
            self._inj._open_slot = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.discard()


class Injector(TxRingSocket):
    """An AF_PACKET TPACKET_V2 TX ring on interface ``ifname`` (inside ``netns`` if given).

    Keyword configuration (validated; ConfigurationError names field, value and range):

    - ``frame_size`` (bytes per slot; 128..65536, rounded up to a multiple of 16,
      TPACKET_ALIGNMENT — the ``frame_size`` attribute and the repr show the value used; default
      2048). A frame may be up to ``capacity`` bytes: ``frame_size`` − 32 (slot header), and at
      most MTU + 18 — MTU + 14 unless it carries an 802.1Q tag, as the kernel requires;
      :meth:`frame_size_for_mtu` gives the one a jumbo MTU needs. A FrameTooLargeError says
      which limit applied (``limit``: ``"frame_size"`` or ``"mtu"``) and what to raise.
    - ``frame_count`` (1..1048576; default 1024 — a 2 MiB ring; rounded up to fill whole ring
      blocks, see ``frame_count`` after construction)
    - ``qdisc_bypass`` (bool: ``PACKET_QDISC_BYPASS``, hand frames straight to the driver)
    - ``netns`` (name, path, fd, NetNS or None)

    Attributes: ``ifname``, ``ifindex``, ``netns`` (the namespace's label or None), ``frame_size``,
    ``frame_count``, ``capacity``, ``mtu``, ``sent_frames``, ``rejected_frames`` (frames the kernel
    refused, see the module doc), ``mtu_remedy`` (what an MTU-limit error tells the user to do; the
    test kit names its own knob). A context manager; :meth:`close` is idempotent; :meth:`fileno`
    is writable when the kernel has a free slot at its head. One thread at a time may send
    through an Injector.
    """

    _kind = "Injector"
    _role = "injector"
    _ring_knobs = "frame_count or frame_size"

    @classmethod
    def frame_size_for_mtu(cls, mtu):
        """The ``frame_size`` whose ``capacity`` holds a whole frame of an ``mtu``-byte interface.

        Room for the slot header and MTU + 18 B (Ethernet header and one VLAN tag), rounded up
        to the ring's 16-byte alignment; never below the default 2048 nor above the 65536 limit
        (where capacity stays 65504 B). ``Endpoint.injector()`` of the test kit uses it.
        """
        return frame_size_for(lib.NR_TX_DATA_OFF, mtu, lib.NR_TX_TPACKET_ALIGNMENT, _DEFAULT_FRAME_SIZE,
                              _MAX_FRAME_SIZE)

    def __init__(self, ifname, *, netns=None, frame_size=_DEFAULT_FRAME_SIZE, frame_count=1024, qdisc_bypass=False):
        align = lib.NR_TX_TPACKET_ALIGNMENT
        check_int("frame_size", frame_size, 128, _MAX_FRAME_SIZE,
                  "; rounded up to a multiple of %d (TPACKET_ALIGNMENT)" % align)
        # The kernel wants a multiple of TPACKET_ALIGNMENT: round up (65536 is one) and show the real value.
        frame_size = (frame_size + align - 1) // align * align
        check_int("frame_count", frame_count, 1, 1 << 20)
        check_bool("qdisc_bypass", qdisc_bypass)
        block_size, fpb, block_nr = tx_ring_geometry(frame_size, frame_count)
        if block_nr * block_size > 1 << 30:
            raise ConfigurationError("frame_size*frame_count=%d exceeds the ring limit of 1 GiB"
                                     % (block_nr * block_size), field="frame_count", value=frame_count)
        self.frame_size = frame_size
        #: Slots in the ring (``frame_count`` rounded up to whole blocks of ``block_size``).
        self.frame_count = block_nr * fpb
        self.block_size = block_size
        self.qdisc_bypass = qdisc_bypass
        self._tx = None
        self._ring = None
        self._open_slot = None
        #: Frames handed to the kernel so far, by every send method (frames it refused not included).
        self.sent_frames = 0
        #: Frames the kernel refused after our checks passed (each one's slot was recovered).
        self.rejected_frames = 0
        #: The remedy an MTU-limit FrameTooLargeError names (the test kit sets its own).
        self.mtu_remedy = "raise the MTU of %s (`ip link set dev %s mtu N`)" % (ifname, ifname)
        self._refusal_pending = 0  # a kick's -errno when the kernel refused a slot we could not recover yet
        # Every C call that touches the ring or the socket runs inside self._guard (see close()).
        self._open_ring_socket(ifname, netns)
        try:
            fd = self._fd
            where = dict(ifname=ifname, netns=self.netns)
            self.mtu = self._read_mtu()
            r, _ = self._open_tx_ring(self.mtu, frame_size, self.frame_count, qdisc_bypass)
            # Which template each slot still holds (send_stream skips re-copying it); see tx.h.
            self._tags = ffi.new("uint64_t[]", self.frame_count)
            r.tags = self._tags
            r.gen = 0
            self._err = ffi.new("int32_t *")
            self._bad = ffi.new("uint32_t *")
            self._rec = ffi.new("uint32_t[3]")
            # Protocol 0: the socket transmits but never receives (no copy of every frame queued to it).
            rc = lib.nr_sock_bind_packet(fd, self.ifindex, 0)
            if rc < 0:
                raise_errno(rc, "binding the injector socket to %s" % ifname, **where)
        except BaseException:
            self._teardown()
            raise

    # -- set-up / tear-down -------------------------------------------------------------------
    def _views_alive_error(self):
        return ViewsAliveError(
            "cannot close the injector on %s: a view into its ring is still alive (a TxSlot.data or a "
            "slice of it); send/discard the slot and drop the views, then close again" % self.ifname)

    def _repr_ring(self):
        # capacity is set once the ring exists: a repr of a half-built injector must not fail
        return "ring=%dx%d B capacity=%d%s" % (self.frame_count, self.frame_size, getattr(self, "capacity", 0),
                                              " qdisc_bypass" if self.qdisc_bypass else "")

    def close(self):
        """Discard an open slot, unmap the ring and close the socket (idempotent, thread-safe).

        Frames already kicked are left to the kernel; frames requested but never flushed are dropped.
        Safe to call from another thread while one sends: the injector is marked closing, a
        blocked send/wait is woken and raises "Injector on X is closed", and the ring is unmapped
        only once no call is inside it (a paced :meth:`send_stream` returns within ~100 ms).
        """
        super().close()

    def _do_close(self):
        # Runs with the guard closing and nothing in flight: no other thread touches the ring now.
        slot = self._open_slot
        if slot is not None:
            slot.discard()
        self._teardown()

    def _check(self):
        self._guard.check_open()

    # -- slots ------------------------------------------------------------------------------------
    def _check_len(self, n, field="frame", head=None, index=None):
        """FrameTooLargeError (naming the limit that applies) unless an ``n``-byte frame fits.

        ``head``: the frame's first bytes, to tell an 802.1Q-tagged frame (which may be 4 B
        longer) from an untagged one; None: not known yet (``allocate``), allow the tagged limit.
        """
        if n < _ETH_HLEN:
            raise ConfigurationError("%s of %d B is shorter than an Ethernet header (14 B)" % (field, n),
                                     field=field, value=n)
        slot = self.frame_size - lib.NR_TX_DATA_OFF
        tagged = head is None or bytes(head[12:14]) == _TPID_8021Q
        link = self.mtu + _ETH_HLEN + (_VLAN_HLEN if tagged else 0)
        if n <= min(slot, link):
            return
        if slot < link:
            raise FrameTooLargeError(n, slot, field=field, limit="frame_size", index=index, message=(
                "%s%s B exceeds the TX ring's frame capacity of %d B (frame_size %d - %d B slot header); raise "
                "frame_size (Injector.frame_size_for_mtu(%d) fits this link) or send a shorter frame"
                % ("frame of " if field in ("frame", "length") else "%s: frame of " % field, n, slot,
                   self.frame_size, lib.NR_TX_DATA_OFF, self.mtu)))
        raise FrameTooLargeError(n, link, field=field, limit="mtu", index=index, message=(
            "%sframe of %d B exceeds what %s carries: %s; %s or send a shorter frame"
            % ("" if field in ("frame", "length") else "%s: " % field, n, self.ifname, self._link_limits(),
               self.mtu_remedy)))

    def _link_limits(self):
        return "MTU %d + 14 B Ethernet header = %d B (%d B only with an 802.1Q tag)" % (
            self.mtu, self.mtu + _ETH_HLEN, self.mtu + _ETH_HLEN + _VLAN_HLEN)

    def _set_mtu(self, mtu):
        # Inside the guard.
        self.mtu = mtu
        self.capacity = min(self.frame_size - lib.NR_TX_DATA_OFF, mtu + _ETH_HLEN + _VLAN_HLEN)
        self._ring.capacity = self.capacity
        self._ring.link_max = mtu + _ETH_HLEN

    # -- slots the kernel refused ----------------------------------------------------------------
    def _recover(self, rc, queued):
        """After a kick failed with ``rc``: recover every slot the kernel refused and kick on.

        Call inside the guard. ``queued``: frames the current call queued so far (the refused
        frame's index in it follows from how many requested slots were behind it), 0 if none.
        Returns ``[(index or None, length, rc), ...]``, one per refused frame, and leaves the
        ring kicked; raises the plain errno error if ``rc`` was no refusal (no slot is marked).
        With an allocate() slot open (our head, which recovery moves) it only notes the refusal
        (``_refusal_pending``): the next kick without an open slot recovers it.
        """
        refused = []
        r = self._ring
        out = self._rec
        while lib.nr_tx_recover(r, out, 0) == 0:
            if self._open_slot is not None:
                self._refusal_pending = rc
                break
            lib.nr_tx_recover(r, out, 1)
            self._refusal_pending = 0
            self.rejected_frames += 1
            self.sent_frames -= 1
            idx = queued - out[2] - 1
            refused.append((idx if idx >= 0 else None, out[1], rc))
            rc = lib.nr_tx_kick(r)
            if rc >= 0 or rc in (-errno.EAGAIN, -errno.ENOBUFS):
                rc = 0
                break
        if refused or self._refusal_pending:
            if self._refusal_pending == -errno.EMSGSIZE or any(x[2] == -errno.EMSGSIZE for x in refused):
                self._set_mtu(self._read_mtu(fallback=self.mtu))  # the usual cause: the MTU dropped since we read it
            return refused
        raise_errno(rc, "transmitting from the TX ring (sendto)", ifname=self.ifname, netns=self.netns)

    def _refusal_error(self, refused, what, sent):
        """The error for the first of ``refused`` (from :meth:`_recover`); ``what(index)`` names a frame."""
        idx, length, rc = refused[0]
        name = what(idx)
        rest = ("; %d other frame(s) were refused too" % (len(refused) - 1)) if len(refused) > 1 else ""
        kept = ", the %d other(s) sent" % sent if sent else ""
        if self._open_slot is not None and self._refusal_pending:
            kept = "; the frames after it wait until the open allocate() slot is sent or discarded"
        if rc == -errno.EMSGSIZE:
            return FrameTooLargeError(length, self.mtu + _ETH_HLEN, field=name, limit="mtu", index=idx, sent=sent,
                                      message=(
                "the kernel refused %s (%d B, EMSGSIZE): longer than %s carries now — %s (did the MTU change "
                "after the injector opened?); that frame was dropped%s%s. %s, or send shorter frames"
                % (name, length, self.ifname, self._link_limits(), kept, rest,
                   self.mtu_remedy[0].upper() + self.mtu_remedy[1:])))
        code = -rc
        return NetringError("the kernel refused %s (%d B) with %s (%s); that frame was dropped%s%s"
                            % (name, length, errno.errorcode.get(code, str(code)), os.strerror(code), kept, rest))

    def allocate(self, length):
        """A writable :class:`TxSlot` of ``length`` bytes, or None when the ring is full (never blocks).

        Only one slot may be open at a time (the kernel sends in ring order).
        """
        self._check()
        check_int("length", length, 0, 1 << 30)
        self._check_len(length, "length")
        with self._guard:
            if self._open_slot is not None:
                raise NetringError("a slot from allocate() is still open; send() or discard() it first "
                                   "(the kernel transmits slots strictly in ring order)")
            if self._refusal_pending:
                self._kick()
            r = self._ring
            if lib.nr_tx_status(r, r.head) != lib.NR_TX_TP_STATUS_AVAILABLE:
                return None
            off = lib.nr_tx_slot_offset(r, r.head) + lib.NR_TX_DATA_OFF
            self._tags[r.head] = 0  # the caller writes into this slot: it no longer holds a known template
            slot = TxSlot(self, self._tx.view[off:off + length])
            self._open_slot = slot
            return slot

    def _kick(self, refused=None, queued=0):
        """Kick the kernel (call inside the guard). A refused slot is recovered (see :meth:`_recover`):
        appended to ``refused`` if given, else raised."""
        if self._refusal_pending and self._open_slot is None:
            rc = self._refusal_pending  # a refusal seen while a slot was open: recover it now
        else:
            rc = lib.nr_tx_kick(self._ring)
        if rc < 0 and rc not in (-errno.EAGAIN, -errno.ENOBUFS):  # those two: the slots stay requested, retried
            got = self._recover(rc, queued)
            if refused is not None:
                refused.extend(got)
                return 0
            if got:
                raise self._refusal_error(got, lambda i: "a queued frame", None)
            if self._refusal_pending:
                raise NetringError("the kernel refused a queued frame on %s; send() or discard() the open "
                                   "allocate() slot, then flush() again to send the frames after it" % self.ifname)
            return 0
        return rc

    def flush(self):
        """Kick the kernel to transmit every requested slot; return how many were queued since the last kick.

        Returns 0 (and the slots stay requested, for the next flush) if the kernel answered
        ENOBUFS/EAGAIN.
        """
        refused = []
        with self._guard:
            n = self._ring.queued
            if self._kick(refused) < 0:
                return 0
        self.sent_frames += n
        if refused:
            raise self._refusal_error(refused, lambda i: "a queued frame", None)
        if self._refusal_pending:
            raise NetringError("the kernel refused a queued frame on %s; send() or discard() the open allocate() "
                               "slot, then flush() again to send the frames after it" % self.ifname)
        return n

    def _head_free(self):
        with self._guard:
            r = self._ring
            return lib.nr_tx_status(r, r.head) == lib.NR_TX_TP_STATUS_AVAILABLE

    def _wait_space(self, deadline):
        if self._head_free():
            return True
        rev = self._guard.wait(self._fd, lib.POLLOUT, deadline if deadline is not None
                               else time.monotonic() + 0.05)
        if self._head_free():
            return True
        if rev:
            time.sleep(0.0002)  # the kernel's head slot is free but ours is still in flight
        return False

    def send(self, frame, timeout=5.0):
        """Queue one bytes-like ``frame`` and kick; waits up to ``timeout`` s for a free slot (NetringError if
        none; None: as long as the kernel keeps consuming). Returns 1."""
        return self._send_frames([byte_view("frame", frame)], check_timeout("timeout", timeout), strict=True)

    def send_batch(self, frames, timeout=None):
        """Queue ``frames`` (bytes-like) into the ring and kick, filling many slots per C call.

        Waits for free slots as needed, up to ``timeout`` s (None: as long as the kernel keeps
        consuming; :class:`TxStalledError` if it stops for 5 s). Returns the number of frames
        queued — fewer than ``len(frames)`` only if ``timeout`` ran out. Every frame is
        validated first: an oversize one raises :class:`FrameTooLargeError` and nothing is sent.
        """
        if not isinstance(frames, (list, tuple)):
            if isinstance(frames, (bytes, bytearray, memoryview, str)) or not hasattr(frames, "__iter__"):
                raise ConfigurationError("frames must be a sequence of bytes-like frames (e.g. a list of bytes), "
                                         "not %s" % type(frames).__name__, field="frames",
                                         value=type(frames).__name__)
            frames = list(frames)
        return self._send_frames(frames, check_timeout("timeout", timeout), strict=False)

    def _send_frames(self, frames, timeout, strict):
        self._check()
        if self._open_slot is not None:
            raise NetringError("a slot from allocate() is still open; send() or discard() it first")
        total = len(frames)
        if not total:
            return 0
        # Fast path: one copy of every frame into one buffer (b"".join takes any bytes-like object)
        # and one array of lengths; C validates the lengths, then fills and kicks the ring.
        try:
            lens = array.array("I", map(len, frames))
            buf = b"".join(frames)
        except (TypeError, OverflowError):
            lens = buf = None
        err = self._err
        bad = self._bad
        r = self._ring
        g = self._guard
        if buf is None:
            n = -errno.EINVAL
        else:
            with g:
                n = lib.nr_tx_send(r, ffi.from_buffer(buf), len(buf), ffi.from_buffer("uint32_t[]", lens), total,
                                   _ETH_HLEN, 1, _KICK_EVERY, err, bad)
        if n == -errno.EINVAL:
            # Some frame's len() is not its byte count (e.g. a memoryview of non-byte items), or is not
            # bytes-like at all (NotBytesError naming it): measure bytes.
            views = [_byte_view(f, i) for i, f in enumerate(frames)]
            lens = array.array("I", [v.nbytes for v in views])
            buf = b"".join(views)
            with g:
                n = lib.nr_tx_send(r, ffi.from_buffer(buf), len(buf), ffi.from_buffer("uint32_t[]", lens), total,
                                   _ETH_HLEN, 1, _KICK_EVERY, err, bad)
        if strict:
            name = lambda i: "frame"  # noqa: E731
        else:
            name = lambda i: "a frame queued earlier" if i is None else "frames[%d]" % i  # noqa: E731
        if n == -errno.EMSGSIZE:
            i = bad[0]
            off = sum(lens[:i])
            self._check_len(lens[i], name(i), buf[off:off + _ETH_HLEN], index=i)
            raise NetringError("%s (%d B) was refused by the length check" % (name(i), lens[i]))  # not reached
        cbuf = ffi.from_buffer(buf)
        clens = ffi.from_buffer("uint32_t[]", lens)
        nbytes = len(buf)
        deadline = None if timeout is None else time.monotonic() + timeout
        done = 0
        pos = 0
        last_progress = None
        refused = []  # frames the kernel refused (their slots recovered): reported once the rest is sent
        while True:
            if err[0]:  # a kick inside nr_tx_send failed: a refused slot is recovered (and counted), else raise
                rc, err[0] = err[0], 0
                try:
                    with g:
                        refused.extend(self._recover(rc, done + n))
                except NetringError:
                    self.sent_frames += n
                    raise
            if n:
                self.sent_frames += n
                if done + n >= total:
                    done += n
                    break
                pos += sum(lens[done:done + n])
                done += n
                last_progress = None
            # The ring is full even after a kick: wait for the kernel to hand slots back.
            now = time.monotonic()
            if last_progress is None:
                last_progress = now
            if deadline is not None and now >= deadline:
                break
            if deadline is None and now - last_progress > _STALL_S:
                raise TxStalledError("the TX ring on %s made no progress for %.0f s (link down?); %d of %d frames "
                                     "queued" % (self.ifname, _STALL_S, done, total))
            with g:
                if r.queued:
                    self._kick(refused, done)  # an earlier kick hit ENOBUFS/EAGAIN: those slots are still requested
            self._wait_space(deadline)
            with g:
                n = lib.nr_tx_send(r, cbuf + pos, nbytes - pos, clens + done, total - done, _ETH_HLEN, 0,
                                   _KICK_EVERY, err, bad)
        if refused:
            mine = sum(1 for x in refused if x[0] is not None)
            raise self._refusal_error(refused, name, done - mine)
        if strict and done < total:
            raise NetringError("no free TX slot on %s within %s s; the kernel is not draining the ring"
                               % (self.ifname, timeout))
        return done

    def counts(self):
        """``(available, pending, rejected)`` slot counts (one C scan of the ring)."""
        out = ffi.new("uint32_t[4]")
        with self._guard:
            lib.nr_tx_counts(self._ring, out)
        return out[0], out[1], out[2]

    @property
    def pending(self):
        """Slots requested or being sent (not yet handed back by the kernel)."""
        return self.counts()[1]

    @property
    def available(self):
        """Free slots."""
        return self.counts()[0]

    @property
    def rejected(self):
        """Slots the kernel refused (``TP_STATUS_WRONG_FORMAT``) and not yet recovered: normally 0 — lengths
        are checked first, and a refused slot is recovered at once (counted in ``rejected_frames``)."""
        return self.counts()[2]

    def wait_drained(self, timeout=1.0):
        """Kick, then wait until no slot is pending; True if drained, False after ``timeout`` s (a number)."""
        timeout = check_timeout("timeout", timeout, none_ok=False)
        deadline = time.monotonic() + timeout
        with self._guard:
            self._kick()
        while True:
            if self.counts()[1] == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.0005)
            with self._guard:
                self._kick()

    # -- stamped streams --------------------------------------------------------------------------
    def send_stream(self, templates, stream_id, first_seq, count, rate_pps=None, csum_offsets=None, timeout=None):
        """Send ``count`` stamped frames of stream ``stream_id`` (0..65535), seqs ``first_seq``…, cycling ``templates``.

        Each template already carries a valid stamp (:func:`netring.stamp.write`). Per frame, C
        copies the template into a slot, writes stream id and seq, recomputes the check from the
        template's precomputed payload hash, and patches the L4 checksum at ``csum_offsets[i]``
        (RFC 1624 incremental update; -1/None: leave it). ``rate_pps``: pace in C (None: as fast as
        the ring allows). ``timeout``: stop after this many seconds. One C call per ring-full,
        GIL released. Returns the number of frames queued and kicked.
        """
        self._check()
        if self._open_slot is not None:
            raise NetringError("a slot from allocate() is still open; send() or discard() it first")
        timeout = check_stream_args(stream_id, first_seq, count, rate_pps, timeout)
        tm = prepare_templates(templates, csum_offsets)
        for i in range(tm.n):
            t = tm.arr[i]
            self._check_len(t.len, "templates[%d]" % i, bytes(ffi.buffer(t.data, min(t.len, _ETH_HLEN))), index=i)
        if count == 0:
            return 0
        j = stream_job(tm, stream_id, first_seq, count, rate_pps, timeout)
        # A new generation: slots tagged by an earlier call (whose templates may be gone) never match.
        g = self._guard
        with g:
            gen = self._ring.gen + 1
            if gen > 0xFFFFFFFF:
                ffi.memmove(self._tags, bytes(8 * self.frame_count), 8 * self.frame_count)
                gen = 1
            self._ring.gen = gen
        deadline = None if timeout is None else time.monotonic() + timeout
        last_progress = time.monotonic()
        try:
            while j.done < count:
                with g:
                    n = lib.nr_st_send(self._ring, j)
                    rc = j.last_err
                    refused = self._recover(rc, j.done) if rc else None  # raises if rc was no refusal
                if refused:  # recovered: the frames behind it go out; the rest of the stream would not fit either
                    raise self._refusal_error(
                        refused, lambda i: "stream frame %s" % ("(queued earlier)" if i is None
                                                                else "%d (seq %d)" % (i, first_seq + i)), None)
                now = time.monotonic()
                if j.done >= count or (deadline is not None and now >= deadline):
                    break
                if n:
                    last_progress = now
                elif deadline is None and now - last_progress > _STALL_S and j.ring_full:
                    raise TxStalledError("the TX ring on %s made no progress for %.0f s (link down?); %d of %d "
                                         "frames queued" % (self.ifname, _STALL_S, j.done, count))
                if j.ring_full:
                    with g:
                        if self._ring.queued:
                            self._kick()  # an earlier kick hit ENOBUFS/EAGAIN: those slots are still requested
                    self._wait_space(deadline)
        finally:
            self.sent_frames += j.done
        return j.done
