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
       sid=st.integers(0, 2**32 - 1), seq=st.integers(0, 2**64 - 1))
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
