"""XdpSocket's typed errors: zero-copy where there is none, queues, a busy queue, names, bad arguments."""
import pytest

from netring import (ConfigurationError, InterfaceNotFoundError, ResourceBusyError, UnsupportedError, XdpSocket)

pytestmark = pytest.mark.privileged


def test_zerocopy_on_veth_is_a_typed_error_naming_device_and_reason(veth):
    with pytest.raises(UnsupportedError) as ei:
        XdpSocket("vb", netns=veth.b, mode="zerocopy")
    msg = str(ei.value)
    assert "vb" in msg and "zero-copy" in msg and "EOPNOTSUPP" in msg and "mode='copy'" in msg


def test_auto_falls_back_to_copy_and_copy_forces_it(veth):
    for mode in ("auto", "copy"):
        with XdpSocket("vb", netns=veth.b, mode=mode) as xsk:
            assert xsk.mode == "copy"


def test_queue_out_of_range(veth):
    with pytest.raises(ConfigurationError) as ei:
        XdpSocket("vb", netns=veth.b, queue=5, attach=None)
    assert ei.value.field == "queue"
    assert "queue=5 is out of range" in str(ei.value) and "RX queue(s)" in str(ei.value)


def test_queue_beyond_the_active_ones_is_out_of_range_though_numrxqueues_is_larger(veth):
    """A veth gets numrxqueues = the CPU count (2 here) but one active RX queue: queue 1 is refused as out of
    range from the active count (ethtool channels), not as a bare EINVAL."""
    from netring import netdev
    active = netdev.rx_queues("vb", netns=veth.b)
    assert active == 1
    with pytest.raises(ConfigurationError) as ei:
        XdpSocket("vb", netns=veth.b, queue=active, attach=None)
    assert ei.value.field == "queue" and "has 1 RX queue(s) (0..0)" in str(ei.value)


def test_same_queue_twice_is_busy(veth):
    with XdpSocket("vb", netns=veth.b, attach=None):
        with pytest.raises(ResourceBusyError) as ei:
            XdpSocket("vb", netns=veth.b, attach=None)
    assert "queue 0 of vb" in str(ei.value) and "close that socket" in str(ei.value)
    # and once the first is closed the queue is free again
    with XdpSocket("vb", netns=veth.b, attach=None) as again:
        assert again.mode == "copy"


def test_interface_in_another_namespace_or_missing(veth):
    with pytest.raises(InterfaceNotFoundError) as ei:
        XdpSocket("va", netns=veth.b)  # va lives in namespace a
    assert "'va'" in str(ei.value) and "namespace" in str(ei.value)
    with pytest.raises(InterfaceNotFoundError):
        XdpSocket("nosuch0", netns=veth.b)


@pytest.mark.parametrize("kw,field", [
    ({"frame_size": 1000}, "frame_size"), ({"frame_size": 8192}, "frame_size"),
    ({"frame_size": 4096.0}, "frame_size"),
    ({"frame_count": 8}, "frame_count"), ({"frame_count": 1 << 19}, "frame_count"),
    ({"ring_size": 100}, "ring_size"), ({"ring_size": 32}, "ring_size"),
    ({"mode": "fast"}, "mode"), ({"attach": "native"}, "attach"), ({"need_wakeup": 1}, "need_wakeup"),
    ({"busy_poll_us": -1}, "busy_poll_us"), ({"headroom": 4000}, "headroom"), ({"queue": -1}, "queue"),
])
def test_bad_arguments_name_the_field(kw, field):
    with pytest.raises(ConfigurationError) as ei:
        XdpSocket("vb", **kw)
    assert ei.value.field == field


def test_bad_frames_are_refused_before_anything_is_sent(veth):
    from netring import FrameTooLargeError, NotBytesError
    with XdpSocket("vb", netns=veth.b) as xsk:
        with pytest.raises(FrameTooLargeError) as ei:
            xsk.send_batch([bytes(60), bytes(5000)])
        assert ei.value.index == 1 and ei.value.capacity == 4096
        with pytest.raises(NotBytesError):
            xsk.send_batch([bytes(60), 7])
        with pytest.raises(ConfigurationError):
            xsk.send(bytes(10))
        with pytest.raises(ConfigurationError):
            xsk.send_batch(b"not a list")
        assert xsk.sent_frames == 0 and xsk.tx_inflight == 0


def test_attach_auto_on_an_occupied_interface_says_to_use_attach_none(veth):
    from netring import xdp
    from netring.bpf.programs import builtin
    with builtin("pass") as prog, xdp.attach("vb", prog, netns=veth.b, mode="native"):
        with pytest.raises(ResourceBusyError) as ei:
            XdpSocket("vb", netns=veth.b)
        assert "attach=None" in str(ei.value) and "XSKMAP" in str(ei.value)
        with XdpSocket("vb", netns=veth.b, attach=None) as xsk:  # steering left to the user works
            assert xsk.attachment is None
        assert xdp.query("vb", netns=veth.b).name == "nr_pass"  # theirs stays attached
