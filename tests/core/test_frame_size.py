"""``frame_size`` is rounded up to the ring's alignment (TPACKET_ALIGNMENT, 16 B), and the object says so."""
import pytest

from netring import Capture, ConfigurationError, Injector, NetNS

from core_net import needs_root

privileged = [pytest.mark.privileged, needs_root]


@pytest.fixture(scope="module")
def lo_ns():
    with NetNS.create() as ns:
        yield ns


@pytest.mark.parametrize("asked, real", [(2050, 2064), (2063, 2064), (2064, 2064), (1000, 1008), (81, 96)])
@pytest.mark.privileged
def test_capture_frame_size_is_rounded_up_to_16(lo_ns, asked, real):
    with Capture("lo", netns=lo_ns, frame_size=asked) as cap:
        assert cap.frame_size == real
        assert "frame_size=%d" % real in repr(cap)


@pytest.mark.parametrize("asked, real", [(2057, 2064), (2050, 2064), (1000, 1008), (129, 144), (65535, 65536)])
@pytest.mark.privileged
def test_injector_frame_size_is_rounded_up_to_16_and_capacity_follows(lo_ns, asked, real):
    with Injector("lo", netns=lo_ns, frame_size=asked) as tx:
        assert tx.frame_size == real
        assert tx.capacity == min(real - 32, tx.mtu + 14 + 4)
        assert "ring=%dx%d B" % (tx.frame_count, real) in repr(tx)


def test_frame_size_below_the_minimum_or_above_the_maximum_still_names_the_range():
    with pytest.raises(ConfigurationError, match=r"frame_size=40 .*80\.\.131072; rounded up to a multiple of 16"):
        Capture("lo", frame_size=40)
    with pytest.raises(ConfigurationError, match=r"frame_size=65537 .*128\.\.65536; rounded up to a multiple of 16"):
        Injector("lo", frame_size=65537)
