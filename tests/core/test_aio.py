"""``netring.aio``: Capture and Injector awaited through the running loop — backpressure, cancel safety,
spurious readiness, close while awaiting. Plain test functions running ``asyncio.run`` (no pytest-asyncio)."""
import asyncio
import os
import select
import socket
import subprocess
import sys
import threading
import time

import pytest

from netring import NetringError, SeqChecker, aio
from netring import stamp as nstamp
from netring_testkit import frames


def _frames(n, sid=7, size=100):
    """``n`` stamped UDP frames of stream ``sid`` (default MACs are nobody's: nothing answers them)."""
    return [frames.build(ipv4={}, udp={"dport": 9}, size=size, stamp=(sid, i)) for i in range(n)]


def _mine(pkts, sid=7):
    """The bytes of the packets of stream ``sid`` (link-up chatter of the namespace left out)."""
    out = []
    for p in pkts:
        s = nstamp.read(p.data)
        if s is not None and s.stream_id == sid:
            out.append(bytes(p.data))
    return out


async def _ticker(ticks, period=0.002):
    while True:
        await asyncio.sleep(period)
        ticks.append(time.monotonic())


def _slow_down(ep, rate):
    """A token-bucket qdisc on ``ep``: a TX slot stays in flight until the qdisc lets its frame out
    (veth otherwise hands every slot back within the kick, and a ring never stays full)."""
    with ep.netns.iproute() as ipr:
        ipr.tc("add", "tbf", ipr.link_lookup(ifname=ep.ifname)[0], rate=rate, burst=16384, latency="500ms")


def _open_fds():
    return len(os.listdir("/proc/self/fd"))


def test_from_netring_import_aio_loads_no_c_core():
    code = ("import sys; from netring import aio; import netring; assert netring.aio is aio; "
            "assert 'netring._core' not in sys.modules, sorted(m for m in sys.modules if m.startswith('netring'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_adapters_refuse_what_is_no_ring_socket():
    with pytest.raises(NetringError, match="AsyncCapture wraps an open ring socket.*dup_wait_fds"):
        aio.AsyncCapture(object())
    with pytest.raises(NetringError, match="AsyncInjector wraps an open ring socket.*send_batch"):
        aio.AsyncInjector(object())


# -- on a veth pair ------------------------------------------------------------------------------

@pytest.mark.privileged
def test_5000_frames_through_a_64_frame_ring_arrive_byte_identical_and_in_order(veth_pair):
    a, b = veth_pair
    sent = _frames(5000)
    _slow_down(a, "20mbit")  # ~0.25 s for the 5000 frames: the 64 slots stay in flight, the ring fills
    with b.capture(block_timeout_ms=2) as cap, a.injector(frame_count=64) as tx:
        assert tx.frame_count == 64

        async def main():
            acap, ainj = aio.AsyncCapture(cap), aio.AsyncInjector(tx)
            ticks = []
            ticker = asyncio.create_task(_ticker(ticks))
            got = []

            async def receive():
                async for batch in acap:
                    got.extend(_mine(batch))
                    if len(got) >= len(sent):
                        break
                acap.release()

            rx = asyncio.create_task(receive())
            await asyncio.sleep(0.01)  # the receiver awaits first
            t0 = time.monotonic()
            assert await ainj.send_batch(sent[:2500]) == 2500  # backpressure: 64 slots for 2500 frames
            for f in sent[2500:3000]:
                assert await ainj.send(f) == 1
            assert await ainj.send_batch(iter(sent[3000:])) == 2000
            t1 = time.monotonic()
            assert await ainj.wait_drained(2.0)
            async with asyncio.timeout(20):
                await rx
            ticker.cancel()
            return got, sum(1 for t in ticks if t0 <= t <= t1)

        got, ticks_while_sending = asyncio.run(main())
        assert got == sent
        assert tx.sent_frames == 5000
        assert cap.cumulative_stats().drops == 0
    assert ticks_while_sending >= 10  # the ring filled up and the sends awaited room, letting the ticker run


@pytest.mark.privileged
def test_a_cancelled_wait_loses_no_frame(veth_pair):
    a, b = veth_pair
    sent = _frames(40)
    with b.capture(block_timeout_ms=2) as cap, a.injector() as tx:
        async def main():
            acap = aio.AsyncCapture(cap)
            t = asyncio.create_task(acap.next_batch())
            await asyncio.sleep(0.05)
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await acap.recv()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(acap.next_batch(), 0.05)
            # Traffic arrives while a waiter is cancelled before it ever runs again.
            t = asyncio.create_task(acap.recv())
            await asyncio.sleep(0.02)
            tx.send_batch(sent[:20])
            time.sleep(0.02)  # the blocks retire (2 ms) while the loop is held: the waiter's fd is ready
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t
            tx.send_batch(sent[20:])
            got = []
            async with asyncio.timeout(5):
                while len(got) < len(sent):
                    got.extend(_mine(await acap.recv()))
            return got

        assert asyncio.run(main()) == sent


@pytest.mark.privileged
def test_a_ticker_keeps_ticking_while_a_capture_waits(veth_pair):
    a, b = veth_pair
    with b.capture() as cap:
        async def main():
            ticks = []
            ticker = asyncio.create_task(_ticker(ticks))
            t0 = time.monotonic()
            assert await aio.AsyncCapture(cap).next_batch(timeout=0.3) is None
            waited = time.monotonic() - t0
            ticker.cancel()
            return len(ticks), waited

        ticks, waited = asyncio.run(main())
    assert 0.29 <= waited < 2
    assert ticks >= 20  # 2 ms ticks over 300 ms: the wait never held the loop


@pytest.mark.privileged
def test_spurious_readiness_rearms_without_spinning(veth_pair):
    a, b = veth_pair
    sent = _frames(10)
    with b.capture(block_timeout_ms=2) as cap, a.injector() as tx:
        async def main():
            acap = aio.AsyncCapture(cap)
            tx.send_batch(sent[:5])
            held = await asyncio.wait_for(acap.next_batch(), 5)
            # The kernel's previous block is the one `held` keeps: poll() says "readable", yet no
            # block of ours is retired. The wait must neither return nor spin.
            c0 = time.process_time()
            assert await acap.next_batch(timeout=0.5) is None
            cpu = time.process_time() - c0
            got = _mine(held)
            held.release()
            tx.send_batch(sent[5:])
            async with asyncio.timeout(5):
                while len(got) < len(sent):
                    got.extend(_mine(await acap.recv()))
            return got, cpu

        got, cpu = asyncio.run(main())
    assert got == sent
    assert cpu < 0.25  # a spin on the ready fd would burn the whole 0.5 s


@pytest.mark.privileged
@pytest.mark.parametrize("closer", ["task", "thread"])
def test_closing_the_capture_while_a_task_awaits_raises_a_clear_error(veth_pair, closer):
    a, b = veth_pair
    cap = b.capture()
    fds = _open_fds()

    async def main():
        acap = aio.AsyncCapture(cap)
        waiter = asyncio.create_task(acap.next_batch())
        await asyncio.sleep(0.05)
        if closer == "task":
            cap.close()
        else:
            th = threading.Thread(target=cap.close)
            th.start()
            await asyncio.sleep(0.05)
            th.join()
        with pytest.raises(NetringError, match=r"Capture on eth0 was closed while a task awaited next_batch\(\)"):
            async with asyncio.timeout(2):
                await waiter
        with pytest.raises(NetringError, match="closed"):
            await acap.recv()

    asyncio.run(main())
    assert cap.closed
    assert _open_fds() < fds  # the capture's fds and our duplicates are all gone


@pytest.mark.privileged
def test_recv_max_packets_keeps_the_rest_in_order_for_the_next_call(veth_pair):
    a, b = veth_pair
    sent = _frames(10)
    with b.capture(block_timeout_ms=2) as cap, a.injector() as tx:
        async def main():
            acap = aio.AsyncCapture(cap)
            tx.send_batch(sent)
            got, sizes = [], []
            async with asyncio.timeout(5):
                while len(got) < len(sent):
                    pkts = await acap.recv(3)
                    sizes.append(len(pkts))
                    got.extend(_mine(pkts))
            return got, sizes

        got, sizes = asyncio.run(main())
    assert got == sent
    assert max(sizes) == 3 and min(sizes) >= 1


@pytest.mark.privileged
def test_dup_wait_fds_are_duplicates_and_the_wake_fd_fires_on_close(veth_pair):
    a, b = veth_pair
    cap = b.capture()
    assert not cap.closing
    sock, wake = cap.dup_wait_fds()
    try:
        assert sock != cap.fileno()
        assert select.select([wake], [], [], 0)[0] == []
        cap.close()
        assert select.select([wake], [], [], 0)[0] == [wake]  # what wakes a task awaiting the capture
        with pytest.raises(NetringError, match="Capture on eth0 is closed"):
            cap.dup_wait_fds()
    finally:
        os.close(sock)
        os.close(wake)


@pytest.mark.privileged
def test_drain_feeds_the_checker_while_awaiting(veth_pair):
    a, b = veth_pair
    sent = _frames(300, sid=3)
    with b.capture(block_timeout_ms=2) as cap, a.injector(frame_count=64) as tx:
        async def main():
            chk = SeqChecker({3: len(sent)})
            drain = asyncio.create_task(aio.AsyncCapture(cap).drain(chk, timeout=10))
            await aio.AsyncInjector(tx).send_batch(sent)
            return await drain

        chk = asyncio.run(main())
    assert chk.done
    c = chk.counts(3)
    assert (c.delivered, c.lost, c.duplicated, c.reordered, c.corrupted) == (300, 0, 0, 0, 0)


# -- a TX ring that stays full: a stand-in with the injector's non-blocking interface -----------

class _FullTx:
    """Quacks like an Injector whose ring is full until :meth:`make_room`; its socket is one end of a
    socketpair whose send buffer is full (never writable), its close-wake fd an eventfd."""

    ifname = "fake0"

    def __init__(self):
        self.sock, self.peer = socket.socketpair()
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.send(b"\0" * 65536)
        except BlockingIOError:
            pass
        self.wake = os.eventfd(0, os.EFD_NONBLOCK)
        self.room = 0
        self.queued = []
        self.closed = False
        self.closing = False

    def dup_wait_fds(self):
        if self.closed:
            raise NetringError("fake0 is closed")
        return os.dup(self.sock.fileno()), os.dup(self.wake)

    def send_batch(self, frames, timeout=None):
        n = min(self.room, len(frames))
        self.queued.extend(frames[:n])
        self.room -= n
        return n

    def wait_drained(self, timeout=1.0):
        return False

    def make_room(self, n):
        self.room += n
        self.peer.setblocking(False)
        try:
            while True:
                self.peer.recv(1 << 20)
        except BlockingIOError:
            pass

    def close(self):
        self.closed = True
        os.eventfd_write(self.wake, 1)
        self.sock.close()
        self.peer.close()
        os.close(self.wake)


def test_a_cancelled_send_queued_nothing_and_a_cancelled_send_batch_a_prefix():
    tx = _FullTx()

    async def main():
        ainj = aio.AsyncInjector(tx)
        t = asyncio.create_task(ainj.send(b"A" * 60))
        await asyncio.sleep(0.12)  # awaiting room (and re-checking every 50 ms)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert tx.queued == []
        tx.room = 3
        t = asyncio.create_task(ainj.send_batch([bytes([i]) * 60 for i in range(10)]))
        await asyncio.sleep(0.05)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        assert tx.queued == [bytes([i]) * 60 for i in range(3)]
        tx.queued.clear()
        t = asyncio.create_task(ainj.send(b"B" * 60))
        await asyncio.sleep(0.02)
        tx.make_room(1)  # the socket becomes writable: the waiting send queues its frame, once
        assert await asyncio.wait_for(t, 2) == 1
        assert tx.queued == [b"B" * 60]

    asyncio.run(main())
    tx.close()


def test_closing_the_injector_while_a_send_awaits_raises_a_clear_error():
    tx = _FullTx()
    fds = _open_fds()

    async def main():
        t = asyncio.create_task(aio.AsyncInjector(tx).send(b"A" * 60))
        await asyncio.sleep(0.01)
        tx.close()
        with pytest.raises(NetringError, match=r"_FullTx on fake0 was closed while a task awaited send\(\)"):
            async with asyncio.timeout(1):
                await t
        assert tx.queued == []

    asyncio.run(main())
    assert _open_fds() == fds - 3  # the fake's three fds; no duplicate of ours left behind
