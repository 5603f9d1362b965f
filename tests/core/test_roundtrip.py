"""Injector → veth → Capture: 10,000 mixed-size frames arrive byte-identical and in order."""
import time

import pytest

from netring import Capture, Injector

from core_net import needs_root
from core_frames import ETH_TEST, mixed_frames

pytestmark = [pytest.mark.privileged, needs_root]

N = 10_000
CHUNK = 500  # ≤ 500 × 1.5 KB in flight: fits the default 4 MiB capture ring with room to spare


def collect(cap, n, timeout=10.0):
    """Owned copies of the next ``n`` test frames (ethertype 0x88B5), with their timestamps."""
    got, ts = [], []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        b = cap.next_batch(timeout=0.5)
        if b is None:
            continue
        with b:
            for p in b:
                d = p.data
                if d[12:14] == ETH_TEST.to_bytes(2, "big"):
                    got.append(bytes(d))
                    ts.append(p.timestamp_ns)
                    assert p.wire_len == p.snap_len == len(d) and not p.truncated
    return got, ts


def run(veth, send_chunk):
    frames = mixed_frames(N, seed=11)
    with Capture(veth.rx_if, netns=veth.b) as cap, Injector(veth.tx_if, netns=veth.a) as tx:
        received, stamps = [], []
        for i in range(0, N, CHUNK):
            chunk = frames[i:i + CHUNK]
            send_chunk(tx, chunk)
            got, ts = collect(cap, len(chunk))
            received += got
            stamps += ts
        assert tx.wait_drained(5.0)
        stats = cap.cumulative_stats()
    assert len(received) == N
    assert received == frames  # byte-identical and in order
    assert all(a <= b for a, b in zip(stamps, stamps[1:])), "timestamps must not go backwards"
    assert stats.drops == 0
    assert stats.packets == N  # the kernel counts every frame the socket saw (the link is quiet: IPv6 off)
    return tx


@pytest.mark.roundtrip
def test_send_batch_roundtrip(veth):
    def send(tx, chunk):
        assert tx.send_batch(chunk) == len(chunk)
    tx = run(veth, send)
    assert tx.sent_frames == N


@pytest.mark.roundtrip
def test_allocate_send_flush_roundtrip(veth):
    def send(tx, chunk):
        queued = 0
        for f in chunk:
            slot = tx.allocate(len(f))
            while slot is None:  # ring full: kick and let the kernel drain
                queued += tx.flush()
                tx.wait_drained(1.0)
                slot = tx.allocate(len(f))
            with slot:
                slot.data[:] = f
                slot.send()
        queued += tx.flush()
        assert queued == len(chunk)
    run(veth, send)


@pytest.mark.roundtrip
def test_send_one_by_one_roundtrip(veth):
    def send(tx, chunk):
        for f in chunk:
            assert tx.send(f) == 1
    run(veth, send)
