"""``netring.aio``: asyncio adapters for the ring sockets (:class:`AsyncCapture`, :class:`AsyncInjector`).

Each adapter wraps an open ring socket and waits for it through the running event loop
(``loop.add_reader`` / ``add_writer``): no thread per socket, and the sync API is only ever
called in its non-blocking form (``timeout=0``), so a task waiting for packets or for TX room
lets every other task run. The wrapped object stays the owner: close it as usual (the adapter
never closes it); a close from another task or thread while a task awaits wakes that task,
which raises :class:`~netring.NetringError` ("… was closed while a task awaited …").

Cancel safety (``asyncio.timeout``, ``wait_for``, ``task.cancel()``):

- :meth:`AsyncCapture.next_batch` / :meth:`~AsyncCapture.recv` take a block from the ring only
  in the same step that returns it; a cancelled wait took nothing, so the next call gets
  every frame (none is lost).
- :meth:`AsyncInjector.send` returns only after the frame was queued (and the kernel kicked);
  a cancelled ``send`` queued nothing. A cancelled :meth:`~AsyncInjector.send_batch` queued a
  prefix of ``frames``, in order: its length is how much the injector's ``sent_frames`` grew.

Both adapters also wrap a :class:`~netring.XdpSocket` (AF_XDP): its fd is readable when the RX
ring holds frames and writable when the TX ring has room (``AsyncInjector`` then also waits for
completions to free TX frames, re-checking on the same short interval). What an adapter needs
from the object it wraps — so that every ring socket plugs into the same classes: ``dup_wait_fds()`` (see
:meth:`netring.ringsock.RingSocket.dup_wait_fds`), ``closed``, ``closing``, ``ifname``, and for a capture
``next_batch(timeout)`` and ``recv(max_packets, timeout)`` that do not block with ``timeout=0``;
for an injector ``send_batch(frames, timeout)`` returning how many frames it queued (0 when
the ring is full, with ``timeout=0``) and ``wait_drained(timeout)`` that kicks and reports
whether the ring is empty.

This module loads nothing of the C core itself: ``from netring import aio`` is cheap.
"""
import asyncio
import os

from .errors import ConfigurationError, NetringError

__all__ = ["AsyncCapture", "AsyncInjector"]

# poll() on a TPACKET_V3 socket answers for the kernel's *previous* block: while a batch still
# holds that one, the socket reads as ready although our next block is not. Back off this long
# before waiting again (what the sync next_batch does) instead of spinning on the ready fd.
_RX_BACKOFF_S = 0.001
# POLLOUT says the kernel's head slot is free, which can be before our head slot is: back off.
_TX_BACKOFF_S = 0.0002
# A TX-full wait re-checks the ring at least this often (the sync send bounds each poll the same
# way): a completion that frees our slot without waking the socket costs latency, never a hang.
_TX_RECHECK_S = 0.05
# No TX progress for this long with the ring full: TxStalledError (as the sync send_batch raises).
_TX_STALL_S = 5.0
# Frames handed to the sync send_batch per call after the first (which validates them all).
_TX_CHUNK_MIN = 64
_TX_CHUNK_MAX = 4096
_WOKEN, _TIMED_OUT, _CLOSING = "woken", "timed out", "closing"


def _timeout(field, value):
    from ._ring import check_timeout  # the ring plumbing; loaded with the object we wrap anyway
    return check_timeout(field, value)


def _require(obj, kind, names):
    missing = [n for n in names if not hasattr(obj, n)]
    if missing:
        raise ConfigurationError("%s wraps an open ring socket (netring.%s or netring.XdpSocket); %r has no %s"
                                 % (kind, "Capture" if kind == "AsyncCapture" else "Injector", obj,
                                    ", ".join(missing)), field="obj", value=type(obj).__name__)


async def _wait(obj, op, writable, deadline):
    """Wait until ``obj``'s socket is readable (``writable``: writable), a close of ``obj`` begins,
    or the loop time ``deadline`` (None: never) passes. Takes nothing from the ring.

    Returns ``_WOKEN`` or ``_TIMED_OUT``; raises the "closed while awaiting" NetringError if
    ``obj`` got closed meanwhile (and the "closed" one if it already was).
    """
    loop = asyncio.get_running_loop()
    sock, wake = obj.dup_wait_fds()
    fut = loop.create_future()

    def ready(how):
        if not fut.done():
            fut.set_result(how)

    timer = None
    add, remove = (loop.add_writer, loop.remove_writer) if writable else (loop.add_reader, loop.remove_reader)
    try:
        add(sock, ready, _WOKEN)
        try:
            loop.add_reader(wake, ready, _CLOSING)
            try:
                if deadline is not None:
                    timer = loop.call_at(deadline, ready, _TIMED_OUT)
                how = await fut
            finally:
                loop.remove_reader(wake)
        finally:
            remove(sock)
    finally:
        if timer is not None:
            timer.cancel()
        os.close(sock)  # our duplicates: a close of obj frees the kernel socket once these are gone
        os.close(wake)
    # A close that began wakes us through the eventfd; one that failed (ViewsAliveError) left the object
    # open, and we go on. Also after a timeout: a close may have come between two waits.
    if obj.closed or obj.closing:
        raise NetringError("%s on %s was closed while a task awaited %s(); create a new one (and stop "
                           "awaiting it before closing, e.g. cancel that task)"
                           % (type(obj).__name__, obj.ifname, op))
    return _WOKEN if how == _CLOSING else how


class AsyncCapture:
    """Awaitable receiving from an open :class:`~netring.Capture` or :class:`~netring.XdpSocket` (``capture``),
    through the running loop.

    Batches are the sync API's :class:`~netring.PacketBatch`: zero-copy, same release rules
    (``with batch:``; ``async for`` returns each one when the next is requested). Cancel-safe:
    a cancelled wait took no block from the ring (see the module doc). Use it from one task at
    a time, like the capture itself.
    """

    def __init__(self, capture):
        _require(capture, "AsyncCapture", ("dup_wait_fds", "next_batch", "recv", "closed", "closing", "ifname"))
        #: The wrapped capture (still yours to close).
        self.capture = capture
        self._prev = None  # the batch `async for` yielded last (returned when the next is requested)

    async def _until(self, take, op, timeout):
        """``take()`` (non-blocking) until it returns something true, waiting for readiness between tries."""
        loop = asyncio.get_running_loop()
        timeout = _timeout("timeout", timeout)
        deadline = None if timeout is None else loop.time() + timeout
        how = None
        while True:
            # The only place a block leaves the ring, and no await between it and the return:
            # a cancellation can only land in a wait, which took nothing.
            got = take()
            if got:
                return got
            if deadline is not None and loop.time() >= deadline:
                return got
            if how == _WOKEN:
                # readable but no retired block of ours (see _RX_BACKOFF_S): re-arm after a pause
                left = _RX_BACKOFF_S if deadline is None else min(_RX_BACKOFF_S, max(0.0, deadline - loop.time()))
                await asyncio.sleep(left)
                how = None
                continue
            how = await _wait(self.capture, op, False, deadline)

    async def next_batch(self, timeout=None):
        """The next retired block as a :class:`~netring.PacketBatch`, or None if none arrives within ``timeout`` s.

        ``timeout=None`` waits as long as it takes (or as ``asyncio.timeout`` allows). Raises what
        the sync :meth:`~netring.Capture.next_batch` raises (``RingBusyError`` while the next block
        is held), and NetringError if the capture is closed while this awaits.
        """
        cap = self.capture
        return await self._until(lambda: cap.next_batch(0), "next_batch", timeout)

    async def recv(self, max_packets=None, timeout=None):
        """Owned copies (``data`` is ``bytes``) of the packets ready once a block is retired: at least one.

        Waits until something arrived, then returns every packet ready at that moment — usually
        one retired block — or the first ``max_packets`` of them; the rest stay, in order, for the
        next call (shared with the sync :meth:`~netring.Capture.recv`). ``[]`` if nothing arrived
        within ``timeout`` s (None: wait as long as it takes).
        """
        cap = self.capture
        n = (1 << 30) if max_packets is None else max_packets
        got = await self._until(lambda: cap.recv(n, timeout=0), "recv", timeout)
        return got or []

    async def drain(self, checker, timeout, quiet=0.2):
        """Feed batches to ``checker`` (a :class:`~netring.SeqChecker`) until it is done, or no frame
        arrived for ``quiet`` s after the last one, or ``timeout`` s passed; awaits readiness between
        batches (the checking itself is one C call per batch). Returns the checker.
        """
        if not (hasattr(checker, "feed") and hasattr(checker, "done")):
            raise ConfigurationError("checker must be a netring.SeqChecker, not %r" % (checker,), field="checker",
                                     value=type(checker).__name__)
        from ._ring import DrainWindow
        loop = asyncio.get_running_loop()
        window = DrainWindow(timeout, quiet, loop.time())
        while not checker.done:
            left = window.wait(loop.time())
            if left is None:
                break
            b = await self.next_batch(left)
            if b is None:
                continue
            with b:
                if len(b):
                    checker.feed(b)
                    window.fed(loop.time())
        return checker

    def release(self):
        """Return the batch the ``async for`` iteration yielded last (e.g. after ``break``); idempotent."""
        prev = self._prev
        if prev is not None:
            prev.release()  # ViewsAliveError keeps it (and our reference): drop the views, call again
            self._prev = None

    def __aiter__(self):
        return self

    async def __anext__(self):
        """The next batch (waiting as long as it takes); returns the previously yielded one to the kernel first."""
        self.release()
        b = await self.next_batch()
        self._prev = b
        return b

    def __repr__(self):
        return "<AsyncCapture %r>" % (self.capture,)


class AsyncInjector:
    """Awaitable sending through an open :class:`~netring.Injector` or :class:`~netring.XdpSocket` (``injector``),
    through the running loop.

    When the TX ring is full a send awaits the socket's writability (POLLOUT) — it never spins
    and never blocks the loop. Cancel-safe as the module doc says: a cancelled :meth:`send`
    queued nothing, a cancelled :meth:`send_batch` a prefix. One task at a time may send, like
    the injector itself.
    """

    def __init__(self, injector):
        _require(injector, "AsyncInjector",
                 ("dup_wait_fds", "send_batch", "wait_drained", "closed", "closing", "ifname"))
        #: The wrapped injector (still yours to close).
        self.injector = injector

    async def _send(self, frames, op):
        from .inject import TxStalledError  # loaded with the injector we wrap
        inj = self.injector
        loop = asyncio.get_running_loop()
        total = len(frames)
        # The first call gets every frame, so the sync API validates them all before anything is
        # sent (an oversize frame raises FrameTooLargeError and nothing goes out); later calls get
        # bounded chunks, so a big batch on a small ring costs no quadratic re-copying.
        done = inj.send_batch(frames, timeout=0)
        chunk = max(_TX_CHUNK_MIN, 2 * done)
        last_progress = loop.time()
        how = None
        while done < total:
            if how is not None:
                n = inj.send_batch(frames[done:done + chunk], timeout=0)
                if n:
                    done += n
                    chunk = min(_TX_CHUNK_MAX, max(chunk, 2 * n))
                    last_progress = loop.time()
                    how = None
                    continue
            now = loop.time()
            if now - last_progress > _TX_STALL_S:
                raise TxStalledError("the TX ring on %s made no progress for %.0f s (link down?); %d of %d frames "
                                     "queued" % (inj.ifname, _TX_STALL_S, done, total))
            if how == _WOKEN:
                await asyncio.sleep(_TX_BACKOFF_S)  # writable for the kernel's head slot, not yet ours
                how = _TIMED_OUT
                continue
            # Kick first: slots an earlier kick left requested (ENOBUFS) must go out for room to come.
            if inj.wait_drained(0) and how is None:
                how = _TIMED_OUT  # empty now: try again at once (once: then wait, never spin)
                continue
            how = await _wait(inj, op, True, now + _TX_RECHECK_S)
        return done

    async def send(self, frame):
        """Queue one bytes-like ``frame`` and kick, awaiting a free slot as long as the kernel keeps
        consuming (:class:`~netring.TxStalledError` if it stops for 5 s). Returns 1, only once the
        frame is queued: a cancelled ``send`` queued nothing."""
        return await self._send([frame], "send")

    async def send_batch(self, frames):
        """Queue ``frames`` (bytes-like) in order and kick, awaiting free slots as needed; returns ``len(frames)``.

        Every frame is validated before the first is sent (FrameTooLargeError: nothing sent). A
        cancelled call queued a prefix of ``frames`` (how many: the growth of ``injector.sent_frames``).
        TxStalledError if the kernel stops consuming for 5 s.
        """
        if not isinstance(frames, (list, tuple)):
            if isinstance(frames, (bytes, bytearray, memoryview, str)) or not hasattr(frames, "__iter__"):
                raise ConfigurationError("frames must be a sequence of bytes-like frames (e.g. a list of bytes), "
                                         "not %s" % type(frames).__name__, field="frames",
                                         value=type(frames).__name__)
            frames = list(frames)
        return await self._send(frames, "send_batch")

    async def wait_drained(self, timeout=1.0):
        """Kick, then await until no slot is pending; True if drained, False after ``timeout`` s.

        The kernel signals no readiness for "every slot back", so this re-checks on a short,
        growing interval (0.5 ms up to 10 ms) between sleeps that let other tasks run.
        """
        from ._ring import check_timeout
        timeout = check_timeout("timeout", timeout, none_ok=False)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pause = 0.0005
        while True:
            if self.injector.wait_drained(0):
                return True
            left = deadline - loop.time()
            if left <= 0:
                return False
            await asyncio.sleep(min(pause, left))
            if self.injector.closed or self.injector.closing:
                raise NetringError("%s on %s was closed while a task awaited wait_drained(); create a new one"
                                   % (type(self.injector).__name__, self.injector.ifname))
            pause = min(0.01, pause * 2)

    def __repr__(self):
        return "<AsyncInjector %r>" % (self.injector,)
