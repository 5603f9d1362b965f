"""The Injector's frame limits are the kernel's: MTU + 14 B, + 4 B only for an 802.1Q-tagged frame,
and the ring slot. A frame the kernel refuses anyway costs that frame, never the ring."""
import struct
import time

import pytest

from netring import Capture, FrameTooLargeError, Injector, NetringError

from core_net import needs_root
from core_frames import ETH_TEST, OTHER_MAC, SRC_MAC, eth, mixed_frames

pytestmark = [pytest.mark.privileged, needs_root]


def untagged(length, fill=0x5A):
    return eth(OTHER_MAC, SRC_MAC, ETH_TEST) + bytes([fill]) * (length - 14)


def tagged(length, tpid=0x8100, vid=42):
    return OTHER_MAC + SRC_MAC + struct.pack(">HHH", tpid, vid, ETH_TEST) + bytes(length - 18)


def _ours(cap, n, timeout=3.0):
    """Frame bytes of the test ethertype (tagged ones arrive untagged: veth strips the tag), until n or timeout."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += [p for p in cap.recv(n - len(out), timeout=max(0.0, deadline - time.monotonic()))
                if p.data[12:14] == ETH_TEST.to_bytes(2, "big")]
    return out


def _set_mtu(ns, ifname, mtu):
    with ns.iproute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=ifname)[0], mtu=mtu)


@pytest.mark.parametrize("length", [1515, 1516, 1517, 1518])
def test_untagged_frame_over_mtu_plus_14_is_refused_up_front_and_the_ring_keeps_working(veth, length):
    good = mixed_frames(10, seed=31, lo=60, hi=1514)
    with Capture(veth.rx_if, netns=veth.b) as cap, Injector(veth.tx_if, netns=veth.a) as tx:
        assert (tx.mtu, tx.capacity) == (1500, 1518)
        with pytest.raises(FrameTooLargeError) as ei:
            tx.send(untagged(length))
        e = ei.value
        assert (e.length, e.capacity, e.limit, e.index) == (length, 1514, "mtu", 0)
        assert "frame of %d B exceeds what va carries: MTU 1500 + 14 B Ethernet header = 1514 B" % length in str(e)
        assert "1518 B only with an 802.1Q tag" in str(e) and "raise the MTU of va" in str(e)
        assert "raise frame_size" not in str(e)
        assert tx.counts() == (tx.frame_count, 0, 0)
        assert tx.send_batch(good) == 10
        assert tx.wait_drained(2.0)
        assert tx.counts() == (tx.frame_count, 0, 0)
        assert [bytes(p.data) for p in _ours(cap, 10)] == good


def test_8021q_tagged_frame_may_be_mtu_plus_18_but_not_a_qinq_outer_tag(veth):
    with Capture(veth.rx_if, netns=veth.b) as cap, Injector(veth.tx_if, netns=veth.a) as tx:
        assert tx.send(tagged(1518)) == 1
        got = _ours(cap, 1)
        assert [(p.wire_len, p.vlan and p.vlan.tci) for p in got] == [(1514, 42)]  # veth stripped the tag
        with pytest.raises(FrameTooLargeError, match="frames\\[1\\]|frame of 1518 B") as ei:
            tx.send_batch([untagged(100), tagged(1518, tpid=0x88A8)])
        assert (ei.value.index, ei.value.length, ei.value.limit) == (1, 1518, "mtu")
        assert ei.value.field == "frames[1]"
        assert tx.counts() == (tx.frame_count, 0, 0)  # validated first: nothing of the batch was sent


def test_allocated_slot_with_an_untagged_oversize_frame_is_refused_at_send(veth):
    with Capture(veth.rx_if, netns=veth.b) as cap, Injector(veth.tx_if, netns=veth.a) as tx:
        slot = tx.allocate(1516)  # may become a tagged frame: capacity allows it
        slot.data[:] = untagged(1516)
        with pytest.raises(FrameTooLargeError, match="1516 B exceeds what va carries") as ei:
            slot.send()
        assert ei.value.limit == "mtu"
        slot.data[:] = tagged(1516)  # the slot is still open: make it a tagged frame, which may be that long
        slot.send()
        assert tx.flush() == 1
        assert [p.wire_len for p in _ours(cap, 1)] == [1512]  # veth stripped the tag
        assert tx.wait_drained(2.0) and tx.counts() == (tx.frame_count, 0, 0)


def test_send_stream_template_over_the_link_limit_is_refused_before_sending(veth):
    from netring import stamp
    with Injector(veth.tx_if, netns=veth.a) as tx:
        t = bytearray(untagged(1516))
        stamp.write(t, 1, 0, 64, offset=len(t) - 20)
        with pytest.raises(FrameTooLargeError, match="templates\\[0\\]") as ei:
            tx.send_stream([bytes(t)], 1, 0, 10)
        assert (ei.value.length, ei.value.limit) == (1516, "mtu")
        assert tx.sent_frames == 0 and tx.counts() == (tx.frame_count, 0, 0)


def test_the_frame_capacity_names_frame_size_when_the_slot_is_the_limit(veth):
    with Injector(veth.tx_if, netns=veth.a, frame_size=1024) as tx:
        with pytest.raises(FrameTooLargeError) as ei:
            tx.send(untagged(1200))
        e = ei.value
        assert (e.length, e.capacity, e.limit) == (1200, 992, "frame_size")
        assert "frame of 1200 B exceeds the TX ring's frame capacity of 992 B (frame_size 1024 - 32 B slot " \
               "header); raise frame_size" in str(e)


def test_a_frame_the_kernel_refuses_costs_that_frame_not_the_ring(veth):
    # The link's MTU drops after the injector opened: the kernel refuses what our check let through.
    # The slot is recovered (the frames after it still go out, in order), the refusal is a
    # FrameTooLargeError naming the frame, and the injector learns the new MTU.
    good = mixed_frames(10, seed=32, lo=60, hi=1000)
    more = mixed_frames(10, seed=33, lo=60, hi=1000)
    with Capture(veth.rx_if, netns=veth.b) as cap, Injector(veth.tx_if, netns=veth.a) as tx:
        _set_mtu(veth.a, veth.tx_if, 1400)
        try:
            with pytest.raises(FrameTooLargeError) as ei:
                tx.send_batch(good[:3] + [untagged(1450)] + good[3:])
            e = ei.value
            assert (e.index, e.length, e.limit, e.sent, e.field) == (3, 1450, "mtu", 10, "frames[3]")
            assert "the kernel refused frames[3] (1450 B, EMSGSIZE)" in str(e)
            assert "MTU 1400 + 14 B Ethernet header = 1414 B" in str(e)
            assert (tx.mtu, tx.capacity, tx.rejected_frames) == (1400, 1418, 1)
            assert tx.wait_drained(2.0)
            assert tx.counts() == (tx.frame_count, 0, 0)
            assert [bytes(p.data) for p in _ours(cap, 10)] == good
            assert tx.send_batch(more) == 10
            assert [bytes(p.data) for p in _ours(cap, 10)] == more
            # the one-frame path reports the same refusal, up front now that the MTU is known
            with pytest.raises(FrameTooLargeError, match="MTU 1400"):
                tx.send(untagged(1450))
        finally:
            _set_mtu(veth.a, veth.tx_if, 1500)


def test_kernel_refusal_recovery_keeps_order_across_ring_wrap(veth):
    # A ring of 8 slots, the refused frame in the middle of a batch that wraps it several times.
    frames = mixed_frames(40, seed=34, lo=60, hi=1000)
    with Capture(veth.rx_if, netns=veth.b) as cap, \
            Injector(veth.tx_if, netns=veth.a, frame_size=2048, frame_count=8) as tx:
        assert tx.frame_count == 8
        assert tx.send_batch(frames[:5]) == 5  # the ring's head is mid-ring
        _set_mtu(veth.a, veth.tx_if, 1400)
        try:
            with pytest.raises(FrameTooLargeError) as ei:
                tx.send_batch(frames[5:12] + [untagged(1450)] + frames[12:])
            assert (ei.value.index, ei.value.sent) == (7, 35)
            assert tx.wait_drained(2.0) and tx.counts() == (8, 0, 0)
            assert [bytes(p.data) for p in _ours(cap, 40)] == frames
        finally:
            _set_mtu(veth.a, veth.tx_if, 1500)


def test_kernel_refusal_seen_by_flush_with_a_slot_open_waits_for_the_slot_then_recovers(veth):
    a, b, d = mixed_frames(3, seed=35, lo=60, hi=500)
    with Capture(veth.rx_if, netns=veth.b) as cap, Injector(veth.tx_if, netns=veth.a) as tx:
        _set_mtu(veth.a, veth.tx_if, 1400)
        try:
            for f in (a, untagged(1450), b):
                slot = tx.allocate(len(f))
                slot.data[:] = f
                slot.send()
            open_slot = tx.allocate(len(d))
            open_slot.data[:] = d
            with pytest.raises(NetringError, match="send\\(\\) or discard\\(\\) the open allocate\\(\\) slot"):
                tx.flush()  # the kernel sent a, refused the 1450-B frame; recovery must wait for the open slot
            open_slot.send()
            with pytest.raises(FrameTooLargeError, match="the kernel refused a queued frame \\(1450 B, EMSGSIZE\\)"):
                tx.flush()
            assert tx.rejected_frames == 1
            assert tx.wait_drained(2.0) and tx.counts() == (tx.frame_count, 0, 0)
            assert [bytes(p.data) for p in _ours(cap, 3)] == [a, b, d]
        finally:
            _set_mtu(veth.a, veth.tx_if, 1500)


def test_send_stream_the_kernel_refuses_raises_naming_the_stream_frame_and_leaves_the_ring_usable(veth):
    from netring import stamp
    t = bytearray(untagged(1450))
    stamp.write(t, 3, 0, 64, offset=len(t) - 20)
    good = mixed_frames(5, seed=36, lo=60, hi=500)
    with Capture(veth.rx_if, netns=veth.b) as cap, Injector(veth.tx_if, netns=veth.a) as tx:
        _set_mtu(veth.a, veth.tx_if, 1400)
        try:
            with pytest.raises(FrameTooLargeError, match="the kernel refused stream frame 0 \\(seq 5\\) \\(1450 B") as ei:
                tx.send_stream([bytes(t)], 3, 5, 100)
            assert ei.value.limit == "mtu" and ei.value.index == 0
            assert tx.rejected_frames >= 1 and tx.sent_frames == 0  # every queued stream frame was refused
            assert tx.counts() == (tx.frame_count, 0, 0)
            assert tx.send_batch(good) == 5
            assert [bytes(p.data) for p in _ours(cap, 5)] == good
        finally:
            _set_mtu(veth.a, veth.tx_if, 1500)


@pytest.mark.parametrize("bad_at, ring", [((0,), 8), ((39,), 8), ((3, 4), 8), ((0, 7, 8, 15, 16, 39), 8),
                                          ((5, 17, 18, 19, 30), 16), ((2, 600, 601, 1200), 1024)])
def test_several_refused_frames_cost_only_themselves(veth, bad_at, ring):
    total = max(40, max(bad_at) + 1)
    good = iter(mixed_frames(total, seed=37, lo=60, hi=600))
    batch = [untagged(1450, fill=i & 0xFF) if i in bad_at else next(good) for i in range(total)]
    want = [f for i, f in enumerate(batch) if i not in bad_at]
    with Capture(veth.rx_if, netns=veth.b, block_count=64) as cap, \
            Injector(veth.tx_if, netns=veth.a, frame_size=2048, frame_count=ring) as tx:
        _set_mtu(veth.a, veth.tx_if, 1400)
        try:
            with pytest.raises(FrameTooLargeError) as ei:
                tx.send_batch(batch)
            assert (ei.value.index, ei.value.sent) == (bad_at[0], len(want))
            if len(bad_at) > 1:
                assert "%d other frame(s) were refused too" % (len(bad_at) - 1) in str(ei.value)
            assert tx.rejected_frames == len(bad_at) and tx.sent_frames == len(want)
            assert tx.wait_drained(2.0) and tx.counts() == (tx.frame_count, 0, 0)
            assert [bytes(p.data) for p in _ours(cap, len(want))] == want
        finally:
            _set_mtu(veth.a, veth.tx_if, 1500)


def test_one_frame_send_the_kernel_refuses_is_a_frame_too_large_error_and_the_next_one_goes_out(veth):
    good = mixed_frames(1, seed=38, lo=60, hi=600)[0]
    with Capture(veth.rx_if, netns=veth.b) as cap, Injector(veth.tx_if, netns=veth.a) as tx:
        _set_mtu(veth.a, veth.tx_if, 1400)
        try:
            with pytest.raises(FrameTooLargeError) as ei:
                tx.send(untagged(1450))
            e = ei.value
            assert (e.field, e.index, e.length, e.limit, e.sent) == ("frame", 0, 1450, "mtu", 0)
            assert str(e).startswith("the kernel refused frame (1450 B, EMSGSIZE): longer than va carries now — "
                                     "MTU 1400 + 14 B Ethernet header = 1414 B (1418 B only with an 802.1Q tag)")
            assert "that frame was dropped. Raise the MTU of va" in str(e)
            assert tx.send(good) == 1
            assert [bytes(p.data) for p in _ours(cap, 1)] == [good]
            assert (tx.sent_frames, tx.rejected_frames) == (1, 1)
        finally:
            _set_mtu(veth.a, veth.tx_if, 1500)
