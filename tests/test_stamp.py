"""The stamp layout's Python reference: where it sits, what the check covers."""
import struct

import pytest
from hypothesis import given, strategies as st

from netring import stamp


def ipv4_udp(payload_len, vlan=False, pad=0):
    l2 = b"\x02" * 6 + b"\x04" * 6 + ((b"\x81\x00\x00\x2a") if vlan else b"") + b"\x08\x00"
    tot = 20 + 8 + payload_len + stamp.STAMP_LEN
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, tot, 0, 0, 64, 17, 0, bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2]))
    udp = struct.pack(">HHHH", 1, 9, 8 + payload_len + stamp.STAMP_LEN, 0)
    return bytearray(l2 + ip + udp + bytes(range(payload_len % 256)) * 0 + bytes(i & 0xFF for i in range(payload_len))
                     + bytes(stamp.STAMP_LEN) + bytes(pad))


@given(plen=st.integers(0, 1400), vlan=st.booleans(), pad=st.integers(0, 40),
       sid=st.integers(0, 2**16 - 1), seq=st.integers(0, 2**64 - 1))
def test_write_read_roundtrip_anchored_at_l3_end(plen, vlan, pad, sid, seq):
    f = ipv4_udp(plen, vlan, pad)
    off = stamp.write(f, sid, seq, plen)
    assert off == len(f) - pad - stamp.STAMP_LEN
    s = stamp.read(f)
    assert (s.stream_id, s.seq, s.plen, s.ok, s.offset) == (sid, seq, plen, True, off)


def test_corrupted_payload_fails_check_but_decodes():
    f = ipv4_udp(100)
    stamp.write(f, 7, 42, 100)
    f[14 + 28 + 50] ^= 0x01
    s = stamp.read(f)
    assert (s.stream_id, s.seq, s.ok) == (7, 42, False)


def test_no_stamp():
    assert stamp.read(bytearray(60)) is None
    assert stamp.locate(bytearray(10)) == -1
    with pytest.raises(ValueError):
        stamp.write(bytearray(20), 1, 1, 0)


def _fnv_words(h, data):
    # independent of netring.stamp._hash: explicit word loop, caller guarantees whole words
    assert len(data) % 8 == 0
    for i in range(0, len(data), 8):
        h = ((h ^ int.from_bytes(data[i:i + 8], "little")) * 0x100000001B3) % 2**64
    return h


@given(sid=st.integers(0, 2**16 - 1), seq=st.integers(0, 2**64 - 1), plen=st.integers(0, 40))
def test_byte_layout_is_the_normative_20_bytes(sid, seq, plen):
    f = ipv4_udp(plen)
    off = stamp.write(f, sid, seq, plen)
    assert stamp.STAMP_LEN == 20 and off == len(f) - 20
    s = bytes(f[off:])
    assert s[0:4] == b"NRTS"
    assert struct.unpack(">HHQ", s[4:16]) == (sid, plen, seq)
    payload = bytes(f[off - plen:off])
    h1 = _fnv_words(0xCBF29CE484222325, payload + bytes(-len(payload) % 8))
    h2 = _fnv_words(h1, s[:16])  # exactly two words, no padding
    assert struct.unpack(">I", s[16:20])[0] == (h2 ^ (h2 >> 32)) & 0xFFFFFFFF


def test_64_byte_ipv4_udp_frame_carries_a_stamp():
    f = ipv4_udp(2)
    assert len(f) == 64
    stamp.write(f, 65535, 2**64 - 1, 2)
    s = stamp.read(f)
    assert (s.stream_id, s.seq, s.plen, s.ok, s.offset) == (65535, 2**64 - 1, 2, True, 44)
    # the smallest: no payload at all, 62 B
    g = ipv4_udp(0)
    assert len(g) == 62 and stamp.write(g, 1, 1, 0) == 42 and stamp.read(g).ok


def test_write_rejects_fields_the_stamp_cannot_hold():
    f = ipv4_udp(10)
    with pytest.raises(ValueError, match="stream_id must be 0..65535"):
        stamp.write(f, 65536, 0, 10)
    with pytest.raises(ValueError, match="stream_id"):
        stamp.write(f, -1, 0, 10)
    big = bytearray(70000)  # non-IP: the stamp is the last 20 bytes of the frame
    with pytest.raises(ValueError, match="at most 65535"):
        stamp.write(big, 1, 1, 65536)
    assert stamp.write(big, 1, 1, 65535) == 70000 - 20
    assert stamp.read(big) == (1, 1, 65535, True, 70000 - 20)
