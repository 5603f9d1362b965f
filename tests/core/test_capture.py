"""Capture behaviour: direction, BPF filter, fanout, ring overrun, stale views, close with live views."""
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from netring import Capture, ConfigurationError, Direction, Injector, StaleBatchError, ViewsAliveError
from netring.capture import RingBusyError

from core_net import needs_root
from core_frames import ETH_TEST, OTHER_MAC, SRC_MAC, eth, mixed_frames, stamped

pytestmark = [pytest.mark.privileged, needs_root]


def test_frames(cap, n, timeout=3.0):
    """Owned packets carrying the test ethertype or IPv4, until ``n`` or timeout."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        for p in cap.recv(n - len(out), timeout=max(0.0, deadline - time.monotonic())):
            if p.data[12:14] in (ETH_TEST.to_bytes(2, "big"), b"\x08\x00"):
                out.append(p)
    return out


test_frames.__test__ = False


def test_direction_host_broadcast_multicast_otherhost_outgoing(veth):
    dsts = {Direction.HOST: bytes.fromhex(veth.mac_b.replace(":", "")), Direction.BROADCAST: b"\xff" * 6,
        Direction.MULTICAST: bytes.fromhex("01005e000001"), Direction.OTHERHOST: OTHER_MAC}
    frames = {d: eth(mac, SRC_MAC, ETH_TEST) + bytes([i]) * 50 for i, (d, mac) in enumerate(dsts.items())}
    with Capture(veth.rx_if, netns=veth.b) as rx, Capture(veth.tx_if, netns=veth.a) as txside, \
            Capture(veth.tx_if, netns=veth.a, ignore_outgoing=True) as quiet, Injector(veth.tx_if, netns=veth.a) as tx:
        tx.send_batch(list(frames.values()))
        got = {bytes(p.data): p.direction for p in test_frames(rx, 4)}
        out = test_frames(txside, 4)
        ignored = test_frames(quiet, 1, timeout=0.5)
    assert got == {f: d for d, f in frames.items()}
    assert got[frames[Direction.HOST]] == "host"  # compares equal to its name
    assert [p.direction for p in out] == [Direction.OUTGOING] * 4
    assert ignored == []


BPF_ETH_TEST = """\
{ 0x28, 0, 0, 0x0000000c },
{ 0x15, 0, 1, 0x000088b5 },
{ 0x6, 0, 0, 0x00040000 },
{ 0x6, 0, 0, 0x00000000 },
"""


@pytest.mark.parametrize("form", ["text", "tuples"])
def test_bpf_filter_passes_only_matching_frames(veth, form):
    from netring import cbpf
    prog = BPF_ETH_TEST if form == "text" else [tuple(i) for i in cbpf.parse(BPF_ETH_TEST)]
    good = mixed_frames(20, seed=2)
    bad = [f[:12] + b"\x88\xb6" + f[14:] for f in mixed_frames(20, seed=3)]
    mixed = [x for pair in zip(good, bad) for x in pair]
    with Capture(veth.rx_if, netns=veth.b, bpf_filter=prog) as cap, Injector(veth.tx_if, netns=veth.a) as tx:
        tx.send_batch(mixed)
        got = []
        deadline = time.monotonic() + 3
        while len(got) < 20 and time.monotonic() < deadline:
            got += [bytes(p.data) for p in cap.recv(64, timeout=0.2)]
        got += [bytes(p.data) for p in cap.recv(64, timeout=0.3)]
        st = cap.stats()
    assert got == good
    assert st.packets == 20


def test_fanout_splits_flows_without_duplicates(veth):
    frames = [stamped(40, sport=3000 + (i % 64), sid=1, seq=i)[0] for i in range(640)]
    with Capture(veth.rx_if, netns=veth.b, fanout=("hash", 77)) as c1, \
            Capture(veth.rx_if, netns=veth.b, fanout={"mode": "hash", "group_id": 77}) as c2, \
            Injector(veth.tx_if, netns=veth.a) as tx:
        tx.send_batch(frames)
        a, b = [], []
        deadline = time.monotonic() + 5
        while len(a) + len(b) < len(frames) and time.monotonic() < deadline:
            a += [bytes(p.data) for p in c1.recv(256, timeout=0.05)]
            b += [bytes(p.data) for p in c2.recv(256, timeout=0.05)]
    assert sorted(a + b) == sorted(frames)
    assert not set(a) & set(b)
    assert a and b
    sport = lambda f: struct.unpack_from(">H", f, 34)[0]  # noqa: E731
    assert not {sport(f) for f in a} & {sport(f) for f in b}, "a flow must stay on one socket"


def test_capture_overrun_counts_drops_instead_of_hanging(veth):
    frames = mixed_frames(3000, seed=5, lo=1000, hi=1500)
    with Capture(veth.rx_if, netns=veth.b, block_size=4096, block_count=4, frame_size=2048) as cap, \
            Injector(veth.tx_if, netns=veth.a) as tx:
        tx.send_batch(frames)
        assert tx.wait_drained(5.0)
        st = cap.stats()
        n = 0
        while True:  # what the ring kept is still readable, and reading ends
            b = cap.next_batch(timeout=0.3)
            if b is None:
                break
            with b:
                n += len(b)
    assert st.drops > 0
    assert st.packets == 3000  # drops included; the link is quiet (IPv6 off, no addresses)
    assert 0 < n < 3000


def test_stale_view_raises_after_batch_is_returned(veth):
    with Capture(veth.rx_if, netns=veth.b) as cap, Injector(veth.tx_if, netns=veth.a) as tx:
        tx.send_batch(mixed_frames(3, seed=6))
        b = cap.next_batch(timeout=3)
        assert b is not None
        with b:
            p = next(iter(b))
            view = p.data
            blk = b.block
            first = bytes(view[:14])
        assert len(first) == 14
        with pytest.raises(ValueError):
            view[0]
        with pytest.raises(ValueError):
            blk[0]
        with pytest.raises(StaleBatchError, match="returned to the kernel"):
            p.data
        with pytest.raises(StaleBatchError):
            list(b)
        b.release()  # idempotent


def test_close_with_live_derived_view_is_a_clear_error(veth):
    cap = Capture(veth.rx_if, netns=veth.b)
    try:
        with Injector(veth.tx_if, netns=veth.a) as tx:
            tx.send_batch(mixed_frames(2, seed=7))
        b = cap.next_batch(timeout=3)
        with b:
            derived = next(iter(b)).data[2:10]  # a view the user made: not revocable by the batch
        with pytest.raises(ViewsAliveError, match="views into its ring are still alive"):
            cap.close()
        assert not cap.closed
        assert cap.fileno() >= 0  # still open and usable
        del derived
        cap.close()
        assert cap.closed
        cap.close()  # idempotent
    finally:
        try:
            cap.close()
        except ViewsAliveError:
            pass


def test_held_batches_exhaust_the_ring_with_a_clear_error(veth):
    with Capture(veth.rx_if, netns=veth.b, block_size=4096, block_count=2, block_timeout_ms=1) as cap, \
            Injector(veth.tx_if, netns=veth.a) as tx:
        held = []
        for k in range(2):
            tx.send_batch(mixed_frames(1, seed=10 + k))
            b = cap.next_batch(timeout=3)
            assert b is not None
            held.append(b)
        with pytest.raises(RingBusyError, match="still held"):
            cap.next_batch(timeout=0)
        for b in held:
            b.release()
        tx.send_batch(mixed_frames(1, seed=20))
        b = cap.next_batch(timeout=3)
        assert b is not None and len(b) == 1
        b.release()


def test_vlan_tag_stripped_by_veth_is_reported(veth):
    frame = OTHER_MAC + SRC_MAC + b"\x81\x00\x20\x2a" + struct.pack(">H", ETH_TEST) + bytes(60)
    with Capture(veth.rx_if, netns=veth.b) as cap, Injector(veth.tx_if, netns=veth.a) as tx:
        tx.send(frame)
        pk = test_frames(cap, 1)
    assert len(pk) == 1
    assert pk[0].vlan is not None and pk[0].vlan.tci == 0x202a
    assert pk[0].vlan.tpid in (0x8100, None)
    assert pk[0].data == frame[:12] + frame[16:]


def test_batches_iterator_and_repr(veth):
    with Capture(veth.rx_if, netns=veth.b) as cap, Injector(veth.tx_if, netns=veth.a) as tx:
        tx.send_batch(mixed_frames(10, seed=8))
        total, seqs = 0, []
        for batch in cap.batches(timeout=0.5):
            total += len(batch)
            seqs.append(batch.seq_num)
        assert total == 10
        assert seqs == sorted(seqs)
        assert "vb" in repr(cap) and "netns=" in repr(cap) and "32x131072" in repr(cap)
    assert "closed" in repr(cap)


@pytest.fixture(scope="module")
def lo_ns():
    from netring import NetNS
    with NetNS.create() as ns:
        yield ns


@given(shift=st.integers(12, 20), count=st.integers(1, 16), frame=st.integers(5, 256).map(lambda x: x * 16))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_valid_geometry_opens_and_any_invalid_one_is_refused(lo_ns, shift, count, frame):
    bs = 1 << shift
    if frame > bs:
        with pytest.raises(ConfigurationError) as ei:
            Capture("lo", netns=lo_ns, block_size=bs, block_count=count, frame_size=frame)
        assert ei.value.field == "frame_size"
        return
    with Capture("lo", netns=lo_ns, block_size=bs, block_count=count, frame_size=frame) as cap:
        assert (cap.block_size, cap.block_count, cap.frame_size) == (bs, count, frame)
        assert cap.next_batch(timeout=0) is None  # nothing sent on this lo
        assert cap.stats() == (0, 0, 0)


def test_options_qdisc_bypass_promiscuous_busy_poll_and_recv_leftovers(veth):
    frames = mixed_frames(50, seed=12, hi=300)
    with Capture(veth.rx_if, netns=veth.b, promiscuous=True, busy_poll_us=50) as cap, \
            Injector(veth.tx_if, netns=veth.a, qdisc_bypass=True) as tx:
        assert tx.send_batch(frames) == 50
        got = []
        deadline = time.monotonic() + 3
        while len(got) < 50 and time.monotonic() < deadline:
            part = cap.recv(7, timeout=0.5)  # fewer than a block holds: the rest waits for the next call
            assert len(part) <= 7
            got += [p.data for p in part if p.data[12:14] == b"\x88\xb5"]
    assert got == frames
    assert all(isinstance(d, bytes) for d in got)


def test_batch_with_exported_view_is_kept_until_the_export_goes(veth):
    import pickle
    with Capture(veth.rx_if, netns=veth.b) as cap, Injector(veth.tx_if, netns=veth.a) as tx:
        tx.send_batch(mixed_frames(2, seed=13))
        b = cap.next_batch(timeout=3)
        p = next(iter(b))
        exported = pickle.PickleBuffer(p.data)  # holds a buffer export on the handed-out view
        with pytest.raises(ViewsAliveError, match="still exported"):
            b.release()
        assert not b.released and bytes(p.data) == bytes(exported.raw())  # block not returned: still valid
        exported.release()
        b.release()
        assert b.released
        with pytest.raises(StaleBatchError):
            p.data


def test_descriptors_match_packets(veth):
    frames = mixed_frames(5, seed=14)
    with Capture(veth.rx_if, netns=veth.b) as cap, Injector(veth.tx_if, netns=veth.a) as tx:
        tx.send_batch(frames)
        got = []
        deadline = time.monotonic() + 3
        while len(got) < 5 and time.monotonic() < deadline:
            b = cap.next_batch(timeout=0.5)
            if b is None:
                continue
            with b:
                arr, n = b.descriptors()
                blk = b.block
                got += [bytes(blk[arr[i].off:arr[i].off + arr[i].snaplen]) for i in range(n)
                        if arr[i].wirelen == arr[i].snaplen]
                assert [arr[i].ts_ns for i in range(n)] == [p.timestamp_ns for p in b]
    assert [g for g in got if g[12:14] == b"\x88\xb5"] == frames
