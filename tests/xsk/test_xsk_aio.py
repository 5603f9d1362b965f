"""``netring.aio`` over an XdpSocket: AsyncCapture(xsk) / AsyncInjector(xsk) — round trip in order,
a cancelled wait loses nothing, close while awaiting. Plain ``asyncio.run`` (no pytest-asyncio)."""
import asyncio
import threading
import time

import pytest

from netring import Injector, NetringError, XdpSocket, aio

from xsk_net import frame

pytestmark = pytest.mark.privileged


@pytest.mark.parametrize("sender", ["injector", "xdp_socket"])
def test_round_trip_into_async_for_over_an_xdp_socket(veth, sender):
    n = 4000
    sent = [frame(i, 64 + i % 200) for i in range(n)]
    # the sending side: a TX ring, or an AF_XDP socket with only 64 TX frames (backpressure: sends
    # await completions). On veth a TX ring's slots come back within the kick, so a sync send of a
    # whole batch runs before the receiving task gets the loop again: the receiving socket holds the
    # whole burst (8192 RX frames, an 8192-entry RX ring).
    if sender == "injector":
        tx = Injector("va", netns=veth.a, frame_count=64)
    else:
        tx = XdpSocket("va", netns=veth.a, frame_size=2048, frame_count=128, ring_size=64, attach=None)
    try:
        with XdpSocket("vb", netns=veth.b, frame_size=2048, frame_count=16384, ring_size=8192) as rx:
            async def main():
                acap, ainj = aio.AsyncCapture(rx), aio.AsyncInjector(tx)
                ticks = []

                async def tick():
                    while True:
                        await asyncio.sleep(0.002)
                        ticks.append(1)

                ticker = asyncio.create_task(tick())
                got = []

                async def receive():
                    async for batch in acap:
                        got.extend(bytes(p.data) for p in batch)
                        if len(got) >= n:
                            break
                    acap.release()

                r = asyncio.create_task(receive())
                await asyncio.sleep(0.01)
                assert await ainj.send_batch(sent[:3000]) == 3000
                for f in sent[3000:3100]:
                    assert await ainj.send(f) == 1
                assert await ainj.send_batch(sent[3100:]) == n - 3100
                assert await ainj.wait_drained(2.0)
                try:
                    async with asyncio.timeout(20):
                        await r
                except TimeoutError:
                    raise AssertionError("received %d of %d; %s" % (len(got), n, rx.stats())) from None
                ticker.cancel()
                return got, len(ticks)

            got, ticks = asyncio.run(main())
            st = rx.stats()
        assert st.rx_dropped == 0, st
        assert got == sent
        assert tx.sent_frames == n
        assert ticks > 0
    finally:
        tx.close()


def test_a_cancelled_wait_then_traffic_loses_nothing(veth):
    sent = [frame(i) for i in range(40)]
    with XdpSocket("vb", netns=veth.b) as xsk, Injector("va", netns=veth.a) as tx:
        async def main():
            acap = aio.AsyncCapture(xsk)
            t = asyncio.create_task(acap.next_batch())
            await asyncio.sleep(0.05)
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(acap.recv(), 0.05)
            t = asyncio.create_task(acap.recv())
            await asyncio.sleep(0.02)
            tx.send_batch(sent[:20])
            time.sleep(0.02)  # frames land while the loop is held: the waiter's fd is ready
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t
            tx.send_batch(sent[20:])
            got = []
            async with asyncio.timeout(5):
                while len(got) < len(sent):
                    got.extend(bytes(p.data) for p in await acap.recv())
            return got

        assert asyncio.run(main()) == sent


@pytest.mark.parametrize("closer", ["task", "thread"])
def test_closing_the_xdp_socket_while_a_task_awaits(veth, closer):
    xsk = XdpSocket("vb", netns=veth.b)

    async def main():
        acap = aio.AsyncCapture(xsk)
        waiter = asyncio.create_task(acap.next_batch())
        await asyncio.sleep(0.05)
        if closer == "task":
            xsk.close()
        else:
            th = threading.Thread(target=xsk.close)
            th.start()
            await asyncio.sleep(0.05)
            th.join()
        with pytest.raises(NetringError, match=r"XdpSocket on vb was closed while a task awaited next_batch\(\)"):
            async with asyncio.timeout(2):
                await waiter

    asyncio.run(main())
    assert xsk.closed
