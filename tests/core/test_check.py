"""The C stamp and the C sequence checker against the Python reference (netring.stamp) — no privileges needed."""
import random
import struct

import pytest
from hypothesis import given, settings, strategies as st

from netring import ConfigurationError, FrameTooLargeError, SeqChecker, stamp
from netring.check import locate, payload_hash, prepare_templates, stamp_frame

from core_frames import checksum_ok, mixed_frames, stamped


@given(plen=st.integers(0, 1400), proto=st.sampled_from([17, 6, 58]), v6=st.booleans(), vlan=st.booleans(),
       sid=st.integers(0, 2**16 - 1), seq=st.integers(0, 2**64 - 1), zero=st.booleans())
@settings(max_examples=300, deadline=None)
def test_c_stamp_matches_python_reference_and_patches_l4_checksum(plen, proto, v6, vlan, sid, seq, zero):
    if proto == 58:
        v6 = True
    tmpl, co = stamped(plen, proto=proto, v6=v6, vlan=vlan, sid=5, seq=9, zero_udp_csum=zero)
    out = stamp_frame(tmpl, sid, seq, co)
    # the same frame stamped by the Python reference, checksum recomputed from scratch
    ref, _ = stamped(plen, proto=proto, v6=v6, vlan=vlan, sid=sid, seq=seq, zero_udp_csum=zero)
    s = stamp.read(out)
    assert (s.stream_id, s.seq, s.plen, s.ok) == (sid, seq, plen, True)
    assert s.offset == stamp.locate(out) == locate(out)
    assert checksum_ok(out)
    if proto == 17 and zero:
        assert out[co:co + 2] == b"\0\0"  # UDP "no checksum" stays 0
    elif proto == 17:
        assert out[co:co + 2] != b"\0\0"  # UDP never sends a computed 0
    # byte-identical to the reference except for the ±0 representation of the checksum
    if out != ref:
        assert out[:co] == ref[:co] and out[co + 2:] == ref[co + 2:]
        assert {out[co:co + 2], ref[co:co + 2]} == {b"\0\0", b"\xff\xff"}


def test_c_stamp_without_checksum_patch_leaves_l4_alone():
    tmpl, co = stamped(100)
    out = stamp_frame(tmpl, 3, 4, -1)
    assert out[co:co + 2] == tmpl[co:co + 2]
    assert stamp.read(out)[:4] == (3, 4, 100, True)


@given(data=st.binary(max_size=300))
def test_c_payload_hash_and_locate_match_python(data):
    assert payload_hash(data) == stamp.payload_hash(data)
    assert locate(data) == stamp.locate(data)


def test_prepare_templates_rejects_bad_input():
    good, co = stamped(50)
    with pytest.raises(ConfigurationError, match="no valid stamp"):
        prepare_templates([bytes(100)])
    with pytest.raises(ConfigurationError, match="at least one"):
        prepare_templates([])
    with pytest.raises(ConfigurationError, match="one per template"):
        prepare_templates([good], [co, co])
    with pytest.raises(ConfigurationError, match="overlaps the stamp"):
        prepare_templates([good], [stamp.locate(good) + 4])
    with pytest.raises(ConfigurationError, match="outside"):
        prepare_templates([good], [len(good)])
    with pytest.raises(FrameTooLargeError, match="%d B exceeds the frame capacity of 60 B" % len(good)):
        prepare_templates([good], capacity=60)


def frames_for(sid, n, plen=40):
    tmpl, co = stamped(plen, sid=sid)
    return [stamp_frame(tmpl, sid, i, co) for i in range(n)]


def test_checker_counts_injected_faults_exactly():
    a = frames_for(1, 1000)
    b = frames_for(2, 500, plen=200)
    rnd = random.Random(7)
    lost_a = set(rnd.sample(range(1000), 37))
    seq_a = [i for i in range(1000) if i not in lost_a]
    dup_a = rnd.sample(seq_a, 11)
    # reorder stream b: swap 5 disjoint adjacent pairs → 5 frames arrive below the highest seen
    order_b = list(range(500))
    for k in range(5):
        i = 10 + 40 * k
        order_b[i], order_b[i + 1] = order_b[i + 1], order_b[i]
    corrupt_b = 3
    stream = [a[i] for i in seq_a] + [a[i] for i in dup_a]
    stream += [b[i] for i in order_b]
    bad = bytearray(b[7])
    bad[60] ^= 0x40  # payload byte → check fails
    stream += [bytes(bad)] * corrupt_b
    junk = mixed_frames(4, seed=3)  # no stamp
    unknown = frames_for(9, 2)      # stream not expected
    out_of_range = [stamp_frame(stamped(40, sid=1)[0], 1, 5000, -1)]
    stream += junk + unknown + out_of_range

    c = SeqChecker({1: 1000, 2: 500}, keep_unexpected=3)
    for f in stream:
        c.feed_bytes(f)
    ca, cb = c.counts(1), c.counts(2)
    assert ca == (1000, 1000 - 37, 37, 11, 0, 0)
    assert cb == (500, 500, 0, 0, 5, corrupt_b)
    assert c.unexpected == 4 + 2 + 1
    assert c.unexpected_frames == junk[:3]
    assert not c.done
    d = c.as_dict()
    assert d["streams"][1]["lost"] == 37 and d["unexpected"] == 7 and d["frames"] == len(stream)


def test_checker_done_after_all_delivered_in_any_order():
    fr = frames_for(4, 300)
    c = SeqChecker({4: 300})
    idx = list(range(300))
    random.Random(1).shuffle(idx)
    for i in idx:
        assert not c.done
        c.feed_bytes(fr[i])
    assert c.done
    counts = c.counts(4)
    assert counts.delivered == 300 and counts.lost == 0 and counts.duplicated == 0
    assert counts.reordered > 0


def test_checker_corrupt_plen_and_stamp_field():
    f = bytearray(frames_for(1, 1)[0])
    off = stamp.locate(f)
    f[off + 6:off + 8] = struct.pack(">H", off + 1)  # plen larger than what precedes the stamp
    g = bytearray(frames_for(1, 2)[1])
    g[stamp.locate(g) + 15] ^= 1  # seq bit flipped → check fails
    c = SeqChecker({1: 2})
    c.feed_bytes(bytes(f))
    c.feed_bytes(bytes(g))
    assert c.counts(1).corrupted == 2 and c.counts(1).delivered == 0


def test_checker_rejects_bad_config():
    with pytest.raises(ConfigurationError, match="non-empty dict"):
        SeqChecker({})
    with pytest.raises(ConfigurationError, match="stream id"):
        SeqChecker({-1: 3})
    with pytest.raises(ConfigurationError, match="stream id 65536 must be an int in 0..65535") as ei:
        SeqChecker({65536: 3})
    assert ei.value.field == "expected"
    with pytest.raises(ConfigurationError, match="count"):
        SeqChecker({1: -3})
    with pytest.raises(ConfigurationError, match="keep_unexpected"):
        SeqChecker({1: 3}, keep_unexpected=-1)
    with pytest.raises(ConfigurationError, match="not one of the expected"):
        SeqChecker({1: 3}).counts(2)


def test_stamp_frame_rejects_stream_ids_beyond_16_bits():
    tmpl, co = stamped(10)
    with pytest.raises(ConfigurationError, match="0..65535") as ei:
        stamp_frame(tmpl, 65536, 0, co)
    assert ei.value.field == "stream_id"
    assert stamp.read(stamp_frame(tmpl, 65535, 7, co))[:4] == (65535, 7, 10, True)
