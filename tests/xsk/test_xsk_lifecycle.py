"""XdpSocket life cycle: provoked ring counters, close with views alive, close from another thread,
100 open/close cycles without a leak, SIGKILL leaves nothing behind."""
import os
import resource
import signal
import subprocess
import sys
import threading
import time

import pytest

from netring import Injector, NetringError, ViewsAliveError, XdpSocket, xdp

from xsk_net import frame

pytestmark = pytest.mark.privileged


def _fds():
    return len(os.listdir("/proc/self/fd"))


def test_fill_ring_empty_is_provoked_and_counted(veth):
    # 64 frames: 32 RX frames in the fill ring; 48 frames sent while nobody reads → 16 find no frame
    with XdpSocket("vb", netns=veth.b, frame_size=2048, frame_count=64, ring_size=64) as xsk, \
            Injector("va", netns=veth.a) as inj:
        inj.send_batch([frame(i) for i in range(48)])
        assert inj.wait_drained(1.0)
        got = xsk.recv(48, timeout=1.0)
        st = xsk.stats()
    assert len(got) == 32
    assert st.rx_fill_ring_empty_descs >= 16 and st.rx_dropped >= 16
    assert st.rx_ring_full == 0


def test_rx_ring_full_is_provoked_and_counted(veth):
    # 256 RX frames but a 64-entry RX ring, not read: the 65th frame finds the ring full
    with XdpSocket("vb", netns=veth.b, frame_size=2048, frame_count=512, ring_size=64) as xsk, \
            Injector("va", netns=veth.a) as inj:
        inj.send_batch([frame(i) for i in range(100)])
        assert inj.wait_drained(1.0)
        time.sleep(0.05)
        st = xsk.stats()
        got = xsk.recv(100, timeout=0.5)
    assert st.rx_ring_full >= 36 and st.rx_fill_ring_empty_descs == 0
    assert len(got) == 64


def test_close_with_views_alive_refuses_and_stays_usable(veth):
    with Injector("va", netns=veth.a) as inj:
        xsk = XdpSocket("vb", netns=veth.b)
        try:
            inj.send_batch([frame(i) for i in range(4)])
            b = xsk.next_batch(timeout=2.0)
            kept = memoryview(next(iter(b)).data)[2:10]  # a view derived from pkt.data: cannot be revoked
            with pytest.raises(ViewsAliveError):
                xsk.close()
            assert not xsk.closed and xsk.attachment is not None and xsk.attachment.attached
            del kept
            inj.send_batch([frame(99)])
            assert [p for p in xsk.recv(1, timeout=2.0)]  # still receives
        finally:
            xsk.close()
    assert xsk.closed
    with pytest.raises(NetringError):
        xsk.next_batch(0)


def test_close_from_another_thread_wakes_a_blocked_wait(veth):
    xsk = XdpSocket("vb", netns=veth.b)
    err = []

    def wait():
        try:
            xsk.next_batch(timeout=30.0)
        except NetringError as exc:
            err.append(exc)

    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.1)
    t0 = time.monotonic()
    xsk.close()
    t.join(5.0)
    assert not t.is_alive()
    assert err and "closed" in str(err[0])
    assert time.monotonic() - t0 < 5.0


def test_open_close_100_times_leaks_nothing(veth):
    def cycle(i):
        with XdpSocket("vb", netns=veth.b, frame_count=256, ring_size=128, attach="auto" if i % 2 else None) as xsk:
            assert xsk.mode == "copy"

    cycle(1)  # warm up (lazy imports, the namespace's helper thread)
    fds = _fds()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for i in range(100):
        cycle(i)
    assert _fds() == fds
    assert xdp.query("vb", netns=veth.b) is None  # every attach="auto" program detached
    # 100 UMEMs of 1 MiB each would show; allow for allocator noise
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 32 * 1024


CHILD = r"""
import sys, time
from netring import XdpSocket
xsk = XdpSocket("vb", netns=sys.argv[1])
print(xsk.mode, xsk.attachment.program.id, flush=True)
time.sleep(60)
"""


def test_sigkill_leaves_nothing_behind(veth):
    path = "/proc/%d/fd/%d" % (os.getpid(), veth.b.fileno())
    child = subprocess.Popen([sys.executable, "-c", CHILD, path], stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline().split()
        assert line and line[0] == "copy", line
        q = xdp.query("vb", netns=veth.b)
        assert q is not None and q.id == int(line[1])
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
    for _ in range(250):  # the kernel releases the link and the socket's queue from work queues
        if xdp.query("vb", netns=veth.b) is None:
            break
        time.sleep(0.02)
    assert xdp.query("vb", netns=veth.b) is None
    with XdpSocket("vb", netns=veth.b) as again:  # the queue is free again
        assert again.mode == "copy"
