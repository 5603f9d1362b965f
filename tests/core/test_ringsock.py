"""The ring-socket base (netring.ringsock) that Capture and Injector share."""
import pytest

from netring import Capture, ConfigurationError, Injector, NetringError
from netring.errors import ViewsAliveError
from netring.ringsock import RingSocket
from netring._ring import RingGuard



class _TwoMaps(RingSocket):
    """A socket-less ring socket with two anonymous mappings, like an AF_XDP UMEM plus a ring."""

    _kind = "TwoMaps"
    _role = "two-map test socket"

    def __init__(self):
        self.ifname = "none0"
        self._maps = []
        self._guard = RingGuard("TwoMaps on none0")
        self._fd = -1
        self.data = self._map(1 << 16, fd=-1)
        self.ring = self._map(1 << 12, fd=-1)
        self.dropped = self.rearmed = 0

    def _drop_pointers(self):
        self.dropped += 1

    def _rearm_pointers(self):
        self.rearmed += 1


def test_unmap_all_or_nothing_and_views_alive_keeps_every_mapping_usable():
    rs = _TwoMaps()
    rs.data.view[0] = 0x5A
    derived = rs.data.view[0:4]  # a view the user made into the first mapping
    with pytest.raises(ViewsAliveError, match="views into its ring are still alive"):
        rs.close()
    assert not rs.closed and rs.fileno() == -1
    assert (rs.dropped, rs.rearmed) == (1, 1)
    # nothing was unmapped: the same memory, with fresh handles of our own
    assert rs.data.mapped and rs.ring.mapped and rs.data.view[0] == 0x5A and derived[0] == 0x5A
    assert rs.data.ptr[0] == 0x5A
    del derived
    with rs:
        pass
    assert rs.closed and not rs._maps
    assert "TwoMaps none0" in repr(rs) and repr(rs).endswith(" closed>")
    rs.close()  # idempotent
    with pytest.raises(NetringError, match="TwoMaps on none0 is closed"):
        rs.fileno()


def test_capture_and_injector_are_ring_sockets():
    assert issubclass(Capture, RingSocket) and issubclass(Injector, RingSocket)
    with pytest.raises(ConfigurationError):
        Capture("x", block_size=3)
    with pytest.raises(ConfigurationError):
        Injector("x", frame_size=3)
