"""The C block walk trusts nothing the block says: every frame it reports lies inside the block.

Blocks here are garbage with kernel-shaped headers (num_pkts and offset_to_first_pkt at their
tpacket_block_desc offsets), so a walk that read past the block or reported an out-of-range frame
would show up as a wrong descriptor (or, under a sanitizer, a crash).
"""
import random
import struct

from hypothesis import given, settings, strategies as st

from netring._core import ffi, lib

BLOCK = 4096
# struct tpacket_block_desc: version u32, offset_to_priv u32, then tpacket_hdr_v1: block_status,
# num_pkts, offset_to_first_pkt (u32 each) — fixed by the kernel ABI.
_NUM_PKTS, _FIRST = 12, 16


def walk(block):
    out = ffi.new("struct nr_rx_pkt[]", 64)
    buf = ffi.from_buffer(block)
    n = lib.nr_rx_walk(buf, len(block), out, 64)
    return [(out[i].off, out[i].snaplen) for i in range(n)]


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), num=st.integers(0, 2**32 - 1),
       first=st.one_of(st.integers(0, BLOCK + 64), st.integers(0, 2**32 - 1)),
       small=st.booleans())
def test_reported_frames_stay_inside_the_block(seed, num, first, small):
    rng = random.Random(seed)
    # Small values make plausible offsets (next headers, tp_mac) likely; full-range ones test wrap-around.
    block = bytearray(rng.randrange(0, 96 if small else 256) for _ in range(BLOCK))
    struct.pack_into("=II", block, _NUM_PKTS, num, first)
    for off, snaplen in walk(block):
        assert off + snaplen <= BLOCK


def test_header_beyond_the_block_is_not_read():
    block = bytearray(BLOCK)
    struct.pack_into("=II", block, _NUM_PKTS, 5, BLOCK - 8)   # the first header would cross the end
    assert walk(block) == []
    struct.pack_into("=II", block, _NUM_PKTS, 5, 2**32 - 16)  # far outside
    assert walk(block) == []
