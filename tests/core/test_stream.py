"""send_stream (C stamping in the TX ring) → veth → Capture.drain(SeqChecker)."""
import threading

import pytest

from netring import Capture, ConfigurationError, Injector, SeqChecker, stamp

from core_net import needs_root
from core_frames import checksum_ok, stamped

pytestmark = [pytest.mark.privileged, needs_root]


@pytest.mark.roundtrip
def test_send_stream_delivers_every_seq_with_valid_checksums(veth):
    t = [stamped(n, sport=2000 + n) for n in (18, 300, 1000)]
    t.append(stamped(200, proto=6, v6=True))
    templates, offs = [x[0] for x in t], [x[1] for x in t]
    n = 20_000
    chk = SeqChecker({7: n, 8: 300})
    with Capture(veth.rx_if, netns=veth.b, block_size=1 << 20, block_count=16) as cap, \
            Injector(veth.tx_if, netns=veth.a) as tx:
        # The receiver drains on its own thread while the sender runs (both mostly in C with the
        # GIL released). The 16 MiB capture ring could hold all 20k frames (≈ 10 MB), so a
        # receiver thread starved by a busy machine cannot turn into drops.
        rx = threading.Thread(target=cap.drain, args=(chk, 30.0, 1.0))
        rx.start()
        try:
            assert tx.send_stream(templates, 7, 0, n // 2, csum_offsets=offs) == n // 2
            assert tx.send_stream(templates, 7, n // 2, n // 2, csum_offsets=offs) == n // 2
            assert tx.send_stream(templates[:1], 8, 0, 300, rate_pps=20_000, csum_offsets=offs[:1]) == 300
        finally:
            rx.join()
        drops = cap.cumulative_stats().drops
        # look at some frames as they arrived: stamp valid per the Python reference, L4 checksum valid
        tx.send_stream(templates, 8, 300, 8, csum_offsets=offs)
        seen = cap.recv(8, timeout=2.0)
        extra = cap.recv(1, timeout=0.2)
    assert drops == 0
    assert chk.done, chk.as_dict()
    assert chk.counts(7) == (n, n, 0, 0, 0, 0)
    assert chk.counts(8) == (300, 300, 0, 0, 0, 0)
    assert chk.unexpected == 0
    assert len(seen) == 8 and extra == []
    for i, p in enumerate(seen):
        s = stamp.read(p.data)
        assert (s.stream_id, s.seq, s.ok) == (8, 300 + i, True)
        assert checksum_ok(p.data)
        assert len(p.data) == len(templates[i % 4])


def test_send_stream_64_byte_frames_and_the_16_bit_stream_id_limit(veth):
    tmpl, co = stamped(2)  # Ethernet + IPv4 + UDP + 2 B + the 20 B stamp
    assert len(tmpl) == 64
    chk = SeqChecker({65535: 500})
    with Capture(veth.rx_if, netns=veth.b) as cap, Injector(veth.tx_if, netns=veth.a) as tx:
        with pytest.raises(ConfigurationError, match="outside the allowed range 0..65535") as ei:
            tx.send_stream([tmpl], 65536, 0, 1, csum_offsets=[co])
        assert ei.value.field == "stream_id"
        assert tx.send_stream([tmpl], 65535, 0, 500, csum_offsets=[co]) == 500
        cap.drain(chk, 10.0, 0.5)
    assert chk.counts(65535) == (500, 500, 0, 0, 0, 0), chk.as_dict()


def test_send_stream_timeout_bounds_a_slow_stream(veth):
    tmpl, co = stamped(40)
    with Injector(veth.tx_if, netns=veth.a) as tx:
        sent = tx.send_stream([tmpl], 1, 0, 1_000_000, rate_pps=1000, timeout=0.3)
    assert 0 < sent < 1_000_000


def test_checker_skips_outgoing_frames_on_the_sending_link(veth):
    tmpl, co = stamped(40)
    chk = SeqChecker({3: 50})
    with Capture(veth.tx_if, netns=veth.a) as cap, Injector(veth.tx_if, netns=veth.a) as tx:
        tx.send_stream([tmpl], 3, 0, 50, csum_offsets=[co])
        cap.drain(chk, timeout=1.0, quiet=0.3)
    assert chk.outgoing_skipped == 50
    assert chk.counts(3).delivered == 0 and chk.unexpected == 0


def test_checker_feed_counts_faults_made_on_the_wire(veth):
    tmpl, co = stamped(64, sid=5)
    chk = SeqChecker({5: 200}, keep_unexpected=2)
    bad = bytearray(tmpl)
    bad[60] ^= 0xFF  # payload byte after stamping → check fails at the receiver
    with Capture(veth.rx_if, netns=veth.b) as cap, Injector(veth.tx_if, netns=veth.a) as tx:
        tx.send_stream([tmpl], 5, 0, 100, csum_offsets=[co])       # 0..99
        tx.send_stream([tmpl], 5, 150, 50, csum_offsets=[co])      # 150..199: 100..149 lost
        tx.send_stream([tmpl], 5, 10, 10, csum_offsets=[co])       # 10..19 again: duplicates
        tx.send_stream([tmpl], 5, 120, 5, csum_offsets=[co])       # late 120..124: reordered
        tx.send_stream([tmpl], 5, 200, 3, csum_offsets=[co])       # beyond count: unexpected
        tx.send_stream([tmpl], 6, 0, 1, csum_offsets=[co])         # unknown stream: unexpected
        tx.send_batch([bytes(bad)] * 4)                             # corrupted
        cap.drain(chk, timeout=3.0, quiet=0.5)
    assert chk.counts(5) == (200, 155, 45, 10, 5, 4)
    assert chk.unexpected == 4
    assert len(chk.unexpected_frames) == 2
    assert stamp.read(chk.unexpected_frames[0])[:2] == (5, 200)
