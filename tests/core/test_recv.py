"""``Capture.recv(max_packets, timeout)``: up to max_packets, waiting up to timeout for them."""
import threading
import time

import pytest

from netring import Capture, Injector

from core_net import needs_root
from core_frames import mixed_frames

pytestmark = [pytest.mark.privileged, needs_root]


def _ours(pkts):
    """Frame bytes of the test ethertype (drops anything else the link carries)."""
    return [bytes(p.data) for p in pkts if p.data[12:14] == b"\x88\xb5"]


def test_recv_waits_for_all_requested_packets_across_blocks(veth):
    # 1000 frames of ~100-200 B fill several 64 KiB blocks: recv(1000) must not stop at the first one.
    frames = mixed_frames(1000, seed=21, lo=100, hi=200)
    with Capture(veth.rx_if, netns=veth.b, block_size=1 << 16, block_count=64) as cap, \
            Injector(veth.tx_if, netns=veth.a) as tx:
        assert tx.send_batch(frames) == 1000
        got = cap.recv(1000, timeout=5.0)
    assert len(got) == 1000
    assert _ours(got) == frames


def test_recv_returns_what_arrived_when_the_timeout_expires(veth):
    frames = mixed_frames(10, seed=22, lo=60, hi=300)
    with Capture(veth.rx_if, netns=veth.b) as cap, Injector(veth.tx_if, netns=veth.a) as tx:
        tx.send_batch(frames)
        t0 = time.monotonic()
        got = cap.recv(50, timeout=0.5)
        took = time.monotonic() - t0
    assert _ours(got) == frames
    assert took >= 0.45  # it kept waiting for the other 40
    assert took < 3.0


def test_recv_keeps_packets_beyond_max_packets_for_the_next_call(veth):
    frames = mixed_frames(30, seed=23, lo=60, hi=300)
    with Capture(veth.rx_if, netns=veth.b) as cap, Injector(veth.tx_if, netns=veth.a) as tx:
        tx.send_batch(frames)
        parts = [cap.recv(10, timeout=3.0) for _ in range(3)]
        rest = cap.recv(10, timeout=0.2)
    assert [len(p) for p in parts] == [10, 10, 10]
    assert [bytes(p.data) for part in parts for p in part] == frames
    assert rest == []


def test_recv_with_no_timeout_waits_until_max_packets_arrived(veth):
    frames = mixed_frames(40, seed=24, lo=60, hi=300)
    with Capture(veth.rx_if, netns=veth.b, block_timeout_ms=2) as cap, Injector(veth.tx_if, netns=veth.a) as tx:

        def send():  # two bursts, far enough apart that the first one's block retires on its own
            tx.send_batch(frames[:20])
            time.sleep(0.3)
            tx.send_batch(frames[20:])

        t = threading.Thread(target=send)
        t.start()
        try:
            got = cap.recv(40, timeout=None)
        finally:
            t.join()
    assert [bytes(p.data) for p in got] == frames


def test_recv_timeout_zero_takes_what_is_ready_without_waiting(veth):
    frames = mixed_frames(20, seed=25, lo=60, hi=300)
    with Capture(veth.rx_if, netns=veth.b, block_timeout_ms=2) as cap, Injector(veth.tx_if, netns=veth.a) as tx:
        assert cap.recv(5, timeout=0) == []
        tx.send_batch(frames)
        assert tx.wait_drained(2.0)
        time.sleep(0.1)  # every block retired
        t0 = time.monotonic()
        got = cap.recv(100, timeout=0)
        took = time.monotonic() - t0
    assert _ours(got) == frames
    assert took < 0.4  # no waiting (generous: the machine is shared)
