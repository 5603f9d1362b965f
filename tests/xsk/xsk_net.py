"""Topology and helpers for the AF_XDP tests: a veth pair between two fresh, unnamed namespaces."""
import struct

from vethpair import VethPair  # noqa: F401  (tests/vethpair.py)

ETH_TEST = 0x88B5  # IEEE local experimental ethertype
DST_MAC = bytes.fromhex("020000bb0001")
SRC_MAC = bytes.fromhex("020000bb0002")


def frame(i, size=64, etype=ETH_TEST):
    """An Ethernet frame of ``size`` bytes whose payload starts with the 4-byte index ``i``."""
    body = struct.pack(">I", i) + bytes((i + k) & 0xFF for k in range(size - 18))
    return DST_MAC + SRC_MAC + struct.pack(">H", etype) + body


def index_of(data):
    """The index :func:`frame` wrote into a frame."""
    return struct.unpack_from(">I", data, 14)[0]
