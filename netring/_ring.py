"""Plumbing of the ring sockets (:mod:`netring.ringsock`, :mod:`netring.capture`, :mod:`netring.inject`).

Not public API.

Opening an AF_PACKET socket inside a namespace, resolving the interface there, validating
keyword arguments, and the :class:`RingGuard` (close vs. C calls in flight, signal-aware waits).
"""
import errno
import math
import os
import socket
import threading
import time

from ._core import lib
from .errors import ConfigurationError, NetringError, from_oserror
from .netns import check_ifname, ifindex_here, resolve

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def check_int(field, value, lo, hi, extra=""):
    """Validate an int keyword argument against ``lo..hi``; ConfigurationError naming field, value and range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError("%s must be an integer in %d..%d%s, not %r" % (field, lo, hi, extra, value),
                                 field=field, value=value)
    if not lo <= value <= hi:
        raise ConfigurationError("%s=%d is outside the allowed range %d..%d%s" % (field, value, lo, hi, extra),
                                 field=field, value=value)
    return value


def frame_size_for(header, mtu, align, lo, hi):
    """A ring ``frame_size`` for ``mtu``: ``header`` + MTU + 18 B (Ethernet header and one VLAN tag),
    rounded up to ``align``, kept within ``lo``..``hi`` (what Capture and Injector size for an MTU)."""
    check_int("mtu", mtu, 68, 1 << 16)
    need = (header + mtu + 18 + align - 1) // align * align
    return min(max(need, lo), hi)


def check_bool(field, value):
    """Validate a bool keyword argument."""
    if not isinstance(value, bool):
        raise ConfigurationError("%s must be True or False, not %r" % (field, value), field=field, value=value)
    return value


def open_packet_socket(ifname, netns, role):
    """Create an AF_PACKET raw socket (protocol 0: receives nothing until bound) inside ``netns``.

    Returns ``(sock, ifindex, ns_label)``. The interface is resolved inside the namespace first,
    so a wrong name is an :class:`InterfaceNotFoundError` naming interface and namespace.
    """
    check_ifname("ifname", ifname)
    ns, owned = resolve(netns)
    try:
        label = None if ns is None else str(ns)
        if ns is None:
            ifindex = ifindex_here(ifname, None)
        else:
            ifindex = ns.ifindex(ifname)
        try:
            if ns is None:
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            else:
                sock = ns.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except OSError as exc:
            raise from_oserror(exc, "socket(AF_PACKET, SOCK_RAW) for the %s on %s" % (role, ifname),
                               ifname=ifname, netns=label, capability="CAP_NET_RAW") from None
        return sock, ifindex, label
    finally:
        if owned:
            ns.close()


def raise_errno(rc, action, ifname=None, netns=None, capability=None):
    """Raise the netring error for a negative errno ``rc`` returned by the C core."""
    code = -rc
    raise from_oserror(OSError(code, os.strerror(code)), action, ifname=ifname, netns=netns,
                       capability=capability) from None


MAX_TIMEOUT_S = 1e9  # ~31 years: beyond this a deadline in ns no longer fits the C side's u64


class NotBytesError(ConfigurationError, TypeError):
    """An argument that must be a bytes-like object (bytes, bytearray, memoryview…) is not one."""


class DrainWindow:
    """The time rule of every ``drain(checker, timeout, quiet)``: stop at ``timeout`` s, or once no frame
    came for ``quiet`` s after the last one (before the first frame only ``timeout`` applies).

    ``wait(now)`` is how long the next wait may take (None: the window is over); ``fed(now)`` records
    a frame. Times are seconds of one monotonic clock (``time.monotonic`` or the event loop's)."""

    __slots__ = ("deadline", "quiet", "last")

    def __init__(self, timeout, quiet, now):
        self.deadline = now + check_timeout("timeout", timeout, none_ok=False)
        self.quiet = check_timeout("quiet", quiet, none_ok=False)
        self.last = None

    def wait(self, now):
        """Seconds the next wait may take, or None once the timeout or the quiet time is over."""
        limit = self.deadline if self.last is None else min(self.deadline, self.last + self.quiet)
        return None if now >= limit else limit - now

    def fed(self, now):
        """A frame came at ``now``."""
        self.last = now


def check_timeout(field, value, none_ok=True):
    """Validate a timeout in seconds: a non-negative int/float (``None``/``inf``: forever, if ``none_ok``).

    Returns ``None`` (forever) or a float; ConfigurationError naming ``field`` otherwise.
    """
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigurationError("%s must be a non-negative number of seconds%s, not %r"
                                 % (field, " or None (forever)" if none_ok else "", value), field=field, value=value)
    if math.isinf(value) and value > 0 and none_ok:
        return None
    if not 0 <= value <= MAX_TIMEOUT_S:  # also rejects NaN
        raise ConfigurationError("%s=%r must be between 0 and %g seconds%s" % (
            field, value, MAX_TIMEOUT_S, " (None: forever)" if none_ok else ""), field=field, value=value)
    return float(value)


def byte_view(field, value):
    """``value`` as a flat, C-contiguous memoryview of bytes; :class:`NotBytesError` naming ``field`` if it is not one.

    Ints are refused explicitly (``bytes(60)`` would silently be 60 zero bytes), and so are ``str``.
    """
    try:
        if isinstance(value, (int, str)):
            raise TypeError
        return memoryview(value).cast("B")
    except (TypeError, ValueError):
        raise NotBytesError("%s is a %s, not a bytes-like object (bytes, bytearray, memoryview…)"
                            % (field, type(value).__name__), field=field, value=type(value).__name__) from None


class RingGuard:
    """Keeps ``close()`` from unmapping a ring (or closing its socket) under a C call in another thread.

    Every C call that touches the ring's memory or its fd runs inside ``with guard:``, which
    raises the "closed" :class:`NetringError` once closing began and otherwise counts the call
    as in flight. :meth:`begin_close` marks the object closing, wakes blocking waits (through
    the eventfd :attr:`wake_fd`, polled next to the socket) and waits until nothing is in
    flight; the closer then tears down and calls :meth:`end_close`. One lock acquire/release
    on each side of a C call — never per packet.

    The teardown runs exactly once, on the thread that asked for the close, so its error
    (e.g. ViewsAliveError) reaches that thread and never an unrelated caller. If ``close()``
    runs in a thread that is itself inside a guarded call (a signal handler that interrupted
    it), waiting would deadlock: the close is then *deferred* — other calls stop at their next
    guarded step, and the teardown runs (and raises its error) as this thread leaves the guard.
    A signal handler that interrupts one of the guard's own steps (the lock is held) only
    records the request; that step starts the close before it returns. A ``close()`` while a
    close is already under way does not run a second teardown.
    """

    __slots__ = ("_lock", "_cond", "_inflight", "_state", "_deferred", "_deferred_by", "_closing_by",
                 "_request", "_request_by", "what", "wake_fd")

    OPEN, CLOSING, CLOSED = 0, 1, 2

    def __init__(self, what):
        # Reentrant: a signal handler may call close() while its thread holds the lock in a guard step.
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._inflight = {}  # thread ident -> nesting depth
        self._state = self.OPEN
        self._deferred = None  # the teardown its owner runs as it leaves the guard (deferred close)
        self._deferred_by = None  # ... and that owner's thread ident
        self._closing_by = None  # ident of the thread running the close under way (CLOSING)
        self._request = None  # close requested by a signal handler that interrupted a guard step
        self._request_by = None  # ... the thread it interrupted (which starts that close)
        #: e.g. "capture on eth0": used in the "closed" error.
        self.what = what
        #: eventfd written by begin_close(): blocking waits poll it next to the socket.
        try:
            self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        except OSError as exc:
            self.wake_fd = -1
            raise from_oserror(exc, "eventfd() for the %s" % what) from None

    def __enter__(self):
        me = threading.get_ident()
        with self._lock:
            if self._state != self.OPEN:
                raise closed_error(self.what)
            self._inflight[me] = self._inflight.get(me, 0) + 1
        if self._request_by == me:  # a handler interrupted us above: the close is deferred to our exit
            self._adopt(me)
        return self

    def __exit__(self, *exc):
        me = threading.get_ident()
        closer = None
        with self._lock:
            d = self._inflight[me] - 1
            if d:
                self._inflight[me] = d
            else:
                del self._inflight[me]
                if self._state == self.CLOSING:
                    if not self._inflight:
                        self._cond.notify_all()
                    if self._deferred_by == me:
                        closer, self._deferred, self._deferred_by = self._deferred, None, None
        if self._request_by == me:  # a handler interrupted us above
            self._adopt(me)
        if closer is not None:
            self._drain_and_finish(closer)

    def __del__(self):
        fd, self.wake_fd = getattr(self, "wake_fd", -1), -1
        if fd >= 0:
            os.close(fd)

    def dispose(self):
        """Mark closed and close :attr:`wake_fd` at once: for an owner whose set-up failed, before any call."""
        with self._lock:
            self._state = self.CLOSED
            fd, self.wake_fd = self.wake_fd, -1
        if fd >= 0:
            os.close(fd)

    @property
    def closing(self):
        """True from the start of a close until it succeeded (then :attr:`closed`) or failed."""
        return self._state == self.CLOSING

    @property
    def closed(self):
        """True once a close succeeded."""
        return self._state == self.CLOSED

    def begin_close(self, closer):
        """Start closing. Returns "go" (nothing in flight now; run the teardown, then
        :meth:`end_close`), "closed" (already closed), "pending" (a close is under way: it runs
        its own teardown once) or "deferred" (this thread is inside a guarded call, or a signal
        handler interrupted a guard step: ``closer`` runs as this thread leaves the guard)."""
        me = threading.get_ident()
        if self._lock._is_owned():
            # A signal handler interrupted a guard step of this thread (which holds the lock, mid-update):
            # only record the request; that step starts the close before it returns.
            if self._state == self.CLOSED:
                return "closed"
            if self._state == self.CLOSING:
                return "pending"
            if self._request is None:
                self._request, self._request_by = closer, me
            return "deferred"
        with self._lock:
            while True:
                if self._state == self.CLOSED:
                    return "closed"
                if self._state == self.OPEN:
                    break
                if me in self._inflight or self._closing_by == me:
                    # the close under way waits for us (or is ours, interrupted by a handler): waiting
                    # would deadlock, and it runs its teardown itself — never a second one here.
                    return "pending"
                self._cond.wait()  # another thread is closing: see how that ends
            self._start_closing(me)
            if me in self._inflight:
                self._deferred, self._deferred_by = closer, me
                return "deferred"
            while self._inflight:
                self._cond.wait()
            return "go"

    def _start_closing(self, me):
        # lock held, state OPEN
        self._state = self.CLOSING
        self._closing_by = me
        os.eventfd_write(self.wake_fd, 1)

    def _adopt(self, me):
        """Start the close a signal handler requested while this thread held the lock."""
        while self._request_by == me:
            with self._lock:
                closer, self._request, self._request_by = self._request, None, None
                if self._state != self.OPEN:
                    continue  # a close began meanwhile (ours, typically): it runs its teardown once
                self._start_closing(me)
                if me in self._inflight:
                    self._deferred, self._deferred_by = closer, me
                    continue
            self._drain_and_finish(closer)

    def _drain_and_finish(self, closer):
        # this thread owns the close and is out of the guard: wait for the other calls to leave
        with self._lock:
            while self._inflight:
                self._cond.wait()
        self._finish(closer)

    def end_close(self, ok):
        """Finish a close that :meth:`begin_close` allowed: closed if ``ok``, else open again."""
        with self._lock:
            self._closing_by = None
            if ok:
                self._state = self.CLOSED
                os.close(self.wake_fd)
                self.wake_fd = -1
            else:
                self._state = self.OPEN
                try:
                    os.eventfd_read(self.wake_fd)  # re-arm: waits block again
                except BlockingIOError:
                    pass
            self._cond.notify_all()

    def _finish(self, closer):
        try:
            closer()
        except BaseException:
            self.end_close(False)
            raise
        self.end_close(True)

    def run_close(self, closer):
        """The whole close protocol around ``closer`` (the teardown; may raise to stay open)."""
        how = self.begin_close(closer)
        if how == "go":
            self._finish(closer)

    def check_open(self):
        """Raise the "closed" error unless the object is open."""
        if self._state != self.OPEN:
            raise closed_error(self.what)

    def wait(self, fd, events, deadline):
        """Wait until ``fd`` has ``events`` or ``deadline`` (monotonic seconds, None: forever) passes.

        Returns the revents (0 on timeout). Each poll lasts at most 200 ms and runs inside the
        guard; a signal makes it return -EINTR: either way control comes back to the interpreter,
        which runs signal handlers (so Ctrl-C raises KeyboardInterrupt here), and the wait resumes
        with the time left. A concurrent close wakes it at once and it raises the "closed" error.
        """
        while True:
            if deadline is None:
                ms = 200
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    return 0
                ms = max(1, min(200, int(left * 1000 + 0.999)))
            with self:
                rc = lib.nr_sock_wait(fd, events, self.wake_fd, ms)
            if rc > 0:
                if rc & lib.NR_SOCK_WOKEN:
                    rc &= ~lib.NR_SOCK_WOKEN
                    if not rc:
                        continue  # closing: the next `with self` raises the "closed" error
                return rc
            if rc == -errno.EINTR or rc == 0:
                continue  # handlers run at this loop's back-edge; then retry with the time left
            raise_errno(rc, "poll() on the ring socket")


def closed_error(what):
    """The error for using a closed object."""
    return NetringError("%s is closed; create a new one" % what)

