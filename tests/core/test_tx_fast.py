"""The TX fast paths: send_batch's single C call and send_stream's reuse of slots that still hold a template."""
import array

import pytest

from netring import Capture, Injector, stamp

from core_net import needs_root
from core_frames import checksum_ok, mixed_frames, stamped

pytestmark = [pytest.mark.privileged, needs_root]


def _collect(cap, n, timeout=5.0):
    out = []
    out.extend(p.data for p in cap.recv(n, timeout=timeout))  # n frames, or what came within timeout
    out.extend(p.data for p in cap.recv(1024, timeout=0.05))  # and any extra, so a duplicate shows
    return out


def _outside_stamp_and_csum(frame, co):
    """The frame with its stamp and L4 checksum bytes zeroed (what must equal the template's)."""
    f = bytearray(frame)
    s = stamp.locate(f)
    f[s:s + stamp.STAMP_LEN] = bytes(stamp.STAMP_LEN)
    f[co:co + 2] = b"\0\0"
    return bytes(f)


@pytest.mark.parametrize("ntmpl", [1, 2, 3])
def test_send_stream_over_many_laps_of_a_small_ring_sends_exact_frames(veth, ntmpl):
    # An 8-slot ring and 96 frames: every slot is reused 12 times, with the same template (1, 2
    # templates) or a different one each lap (3 templates) — both the copy and the restore path.
    t = [stamped(40, sport=3000), stamped(300, proto=6, v6=True), stamped(90, sport=3001, zero_udp_csum=True)][:ntmpl]
    templates, offs = [x[0] for x in t], [x[1] for x in t]
    n = 96
    with Capture(veth.rx_if, netns=veth.b) as cap, \
            Injector(veth.tx_if, netns=veth.a, frame_size=2048, frame_count=8) as tx:
        assert tx.frame_count == 8
        assert tx.send_stream(templates, 9, 1000, n, csum_offsets=offs) == n
        assert tx.wait_drained(5.0)
        got = _collect(cap, n)
    got = [f for f in got if stamp.read(f) is not None and stamp.read(f).stream_id == 9]
    assert len(got) == n
    for i, f in enumerate(got):
        s = stamp.read(f)
        assert (s.seq, s.ok) == (1000 + i, True)
        assert checksum_ok(f)
        tmpl, co = templates[i % ntmpl], offs[i % ntmpl]
        assert len(f) == len(tmpl)
        # everything but the stamp and the L4 checksum is the template, byte for byte
        assert _outside_stamp_and_csum(f, co) == _outside_stamp_and_csum(tmpl, co)


def test_send_stream_after_other_writers_sends_the_template_not_stale_bytes(veth):
    tmpl, co = stamped(64, sport=3100)
    junk = mixed_frames(8, seed=3, lo=200, hi=200)
    with Capture(veth.rx_if, netns=veth.b) as cap, \
            Injector(veth.tx_if, netns=veth.a, frame_size=2048, frame_count=8) as tx:
        tx.send_stream([tmpl], 4, 0, 8, csum_offsets=[co])   # every slot now holds tmpl
        assert tx.wait_drained(5.0)
        assert tx.send_batch(junk[:5]) == 5                   # overwrites 5 slots
        with tx.allocate(100) as slot:                        # scribbles on one more, then discards
            slot.data[:] = b"\xee" * 100
        assert tx.wait_drained(5.0)
        tx.send_stream([tmpl], 4, 8, 16, csum_offsets=[co])
        assert tx.wait_drained(5.0)
        got = _collect(cap, 29)
    mine = [f for f in got if stamp.read(f) is not None and stamp.read(f).stream_id == 4]
    assert [stamp.read(f).seq for f in mine] == list(range(24))
    for f in mine:
        assert stamp.read(f).ok and checksum_ok(f) and len(f) == len(tmpl)
        assert _outside_stamp_and_csum(f, co) == _outside_stamp_and_csum(tmpl, co)
    assert [f for f in got if stamp.read(f) is None] == junk[:5]


def test_send_batch_takes_any_bytes_like_sequence_or_iterable(veth):
    base = mixed_frames(6, seed=4, lo=60, hi=600)
    wide = array.array("H", base[3][:len(base[3]) // 2 * 2])  # a memoryview of 2-byte items: len() != bytes
    frames = [base[0], bytearray(base[1]), memoryview(base[2]), memoryview(wide), base[4], base[5]]
    expect = [base[0], base[1], base[2], wide.tobytes(), base[4], base[5]]
    with Capture(veth.rx_if, netns=veth.b) as cap, Injector(veth.tx_if, netns=veth.a) as tx:
        assert tx.send_batch(iter(frames)) == 6
        assert tx.send_batch(tuple(frames[:2])) == 2
        assert tx.sent_frames == 8
        got = _collect(cap, 8)
    assert got == expect + expect[:2]


def test_send_batch_rejects_a_non_bytes_item_by_index_and_sends_nothing(veth):
    with Injector(veth.tx_if, netns=veth.a) as tx:
        with pytest.raises(TypeError, match=r"frames\[1\] is a str, not a bytes-like object"):
            tx.send_batch([bytes(60), "not bytes"])
        with pytest.raises(Exception, match=r"frames\[2\].*shorter than an Ethernet header"):
            tx.send_batch([bytes(60), bytes(60), bytes(10)])
        assert tx.sent_frames == 0
        assert tx.counts()[1] == 0


def test_send_batch_larger_than_the_ring_arrives_complete_and_in_order(veth):
    frames = mixed_frames(3000, seed=5, lo=60, hi=1514)
    with Capture(veth.rx_if, netns=veth.b, block_size=1 << 20, block_count=16) as cap, \
            Injector(veth.tx_if, netns=veth.a, frame_count=64) as tx:
        assert tx.send_batch(frames) == 3000
        assert tx.wait_drained(5.0)
        got = _collect(cap, 3000)
        assert cap.cumulative_stats().drops == 0
    assert got == frames


@pytest.mark.privileged
def test_slot_with_an_exported_view_stays_open_until_the_export_is_dropped():
    import pickle

    from netring import Injector, ViewsAliveError
    from netring.netns import NetNS

    with NetNS.create() as ns:
        with ns.iproute() as ipr:
            ipr.link("add", ifname="va", kind="veth", peer={"ifname": "vb"})
            for n in ("va", "vb"):
                ipr.link("set", index=ipr.link_lookup(ifname=n)[0], state="up")
        with Injector("va", netns=ns, frame_count=16) as tx:
            slot = tx.allocate(60)
            exported = pickle.PickleBuffer(slot.data)   # holds a buffer export of slot.data (as numpy would)
            with pytest.raises(ViewsAliveError, match="still exported"):
                slot.send(60)
            del exported
            slot.send(60)                            # now it goes
            assert tx.flush() == 1
