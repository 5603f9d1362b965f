"""The ring-socket base (netring.ringsock) and the public guarded block accessor of PacketBatch."""
import pytest

from netring import Capture, ConfigurationError, Injector, NetringError, SeqChecker, StaleBatchError
from netring.errors import ViewsAliveError
from netring.ringsock import RingSocket
from netring._ring import RingGuard

from core_net import needs_root
from core_frames import stamped


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
    import netring.capture

    assert issubclass(Capture, RingSocket) and issubclass(Injector, RingSocket)
    assert netring.capture.ViewsAliveError is ViewsAliveError and issubclass(ViewsAliveError, BufferError)
    with pytest.raises(ConfigurationError):
        Capture("x", block_size=3)
    with pytest.raises(ConfigurationError):
        Injector("x", frame_size=3)


def test_feed_rejects_what_is_not_a_batch():
    chk = SeqChecker({0: 1})
    with pytest.raises(ConfigurationError, match="feed\\(\\) takes a PacketBatch"):
        chk.feed(b"\0" * 64)


@pytest.mark.privileged
@needs_root
def test_raw_block_is_guarded_and_stale_after_release(veth):
    with Capture(veth.rx_if, netns=veth.b, block_timeout_ms=1) as cap, Injector(veth.tx_if, netns=veth.a) as tx:
        tx.send_batch([stamped(64, sid=3, seq=i)[0] for i in range(4)])
        b = cap.next_batch(timeout=3)
        assert b is not None
        with b.raw_block() as (ptr, size):
            assert size == cap.block_size
            chk = SeqChecker({3: 4})
            assert chk.feed(b) == len(b)  # feed's own raw_block nests inside ours
        b.release()
        with pytest.raises(StaleBatchError):
            with b.raw_block():
                pass
        with pytest.raises(StaleBatchError):
            chk.feed(b)


@pytest.mark.parametrize("mtu, tx, rx", [(68, 2048, 2048), (1500, 2048, 2048), (9000, 9056, 9088),
                                         (65535, 65536, 65632)])
def test_frame_size_for_mtu_holds_a_whole_frame_and_keeps_the_defaults_below(mtu, tx, rx):
    assert Injector.frame_size_for_mtu(mtu) == tx
    assert Capture.frame_size_for_mtu(mtu) == rx
    assert Capture.frame_size_for_mtu(mtu, block_size=8192) == min(rx, 8192)
    with pytest.raises(ConfigurationError, match="mtu"):
        Injector.frame_size_for_mtu(0)


class _UmemAndRing(_TwoMaps):
    """Anonymous memory (like a UMEM) added before a file-backed ring (a memfd stands in for the socket)."""

    def __init__(self):
        import os

        super().__init__()
        self._maps = []
        self._memfd = os.memfd_create("nrt-ring")
        os.ftruncate(self._memfd, 1 << 12)
        self.data = self._map(1 << 16, fd=-1)
        self.ring = self._map(1 << 12, fd=self._memfd)


def test_a_refused_unmap_never_replaces_anonymous_memory():
    """A view into the *later* (file-backed) mapping refuses the close: the anonymous mapping added first
    must not have been closed meanwhile, or re-mapping it would hand out fresh, zeroed memory."""
    import os

    rs = _UmemAndRing()
    try:
        rs.data.view[100] = 0x5A
        rs.ring.view[0] = 0x33
        held = rs.ring.view[0:4]
        with pytest.raises(ViewsAliveError):
            rs.close()
        assert rs.data.view[100] == 0x5A and rs.data.ptr[100] == 0x5A   # the same memory, not a fresh map
        assert rs.ring.view[0] == 0x33 and held[0] == 0x33
        del held
        rs.close()
        assert rs.closed
    finally:
        os.close(rs._memfd)
