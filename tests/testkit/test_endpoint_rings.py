"""``Endpoint.capture()`` / ``Endpoint.injector()``: what the test kit's ring helpers add to the core types."""
import pytest

from netring import ConfigurationError, Direction, FrameTooLargeError
from netring import stamp as nstamp
from netring_testkit import frames

pytestmark = pytest.mark.privileged


def _stamped(pkts):
    """``(stream_id, seq, direction)`` of every stamped packet."""
    out = []
    for p in pkts:
        s = nstamp.read(p.data)
        if s is not None:
            out.append((s.stream_id, s.seq, p.direction))
    return out


def _reflect(a, b, n=100):
    """a sends ``n`` frames of stream 1 to b, b sends ``n`` frames of stream 2 back (as a reflector would)."""
    to_b = [frames.build(eth={"src": a.mac, "dst": b.mac}, ipv4={"src": a.ipv4, "dst": "198.18.0.99"},
                         udp={"dport": 9}, size=100, stamp=(1, i)) for i in range(n)]
    to_a = [frames.build(eth={"src": b.mac, "dst": a.mac}, ipv4={"src": b.ipv4, "dst": "198.18.0.98"},
                         udp={"dport": 9}, size=100, stamp=(2, i)) for i in range(n)]
    with a.injector() as ta, b.injector() as tb:
        assert ta.send_batch(to_b) == n
        assert tb.send_batch(to_a) == n


def test_endpoint_capture_excludes_the_endpoints_own_outgoing_frames(veth_pair):
    a, b = veth_pair
    with b.capture(block_timeout_ms=2) as cap:
        _reflect(a, b)
        got = _stamped(cap.recv(400, timeout=1.0))
    assert [(sid, seq) for sid, seq, _ in got] == [(1, i) for i in range(100)]
    assert {d for _, _, d in got} == {Direction.HOST}


def test_endpoint_capture_outgoing_true_also_sees_what_it_sends(veth_pair):
    a, b = veth_pair
    with b.capture(outgoing=True, block_timeout_ms=2) as cap:
        _reflect(a, b)
        got = _stamped(cap.recv(400, timeout=1.0))
    assert sorted((sid, seq) for sid, seq, _ in got) == [(1, i) for i in range(100)] + [(2, i) for i in range(100)]
    assert {d for sid, _, d in got if sid == 2} == {Direction.OUTGOING}
    assert {d for sid, _, d in got if sid == 1} == {Direction.HOST}


def test_endpoint_capture_rejects_ignore_outgoing_that_contradicts_outgoing(veth_pair):
    a, b = veth_pair
    with pytest.raises(ConfigurationError, match=r"ignore_outgoing=False contradicts outgoing=False.*outgoing=True"):
        b.capture(ignore_outgoing=False)
    with b.capture(ignore_outgoing=True) as cap:  # agrees with the default: accepted
        assert cap.recv(1, timeout=0) == []


def test_endpoint_injector_says_the_link_mtu_is_the_limit_and_how_to_raise_it(veth_pair):
    a, b = veth_pair
    f = frames.build(ipv4={}, udp={}, size=1600)
    with a.injector() as tx:
        with pytest.raises(FrameTooLargeError) as ei:
            tx.send(f)
    e = ei.value
    assert (e.length, e.capacity, e.limit) == (1600, 1514, "mtu")
    assert "frame of 1600 B exceeds what eth0 carries: MTU 1500 + 14 B Ethernet header = 1514 B" in str(e)
    assert "raise the link's mtu (`@pytest.mark.veth_pair(mtu=N)`" in str(e)
    assert "frame_size" not in str(e)


def test_endpoint_injector_with_an_explicit_frame_size_says_to_raise_frame_size(veth_pair):
    a, b = veth_pair
    with a.injector(frame_size=1024) as tx:
        with pytest.raises(FrameTooLargeError) as ei:
            tx.send(frames.build(ipv4={}, udp={}, size=1200))
    e = ei.value
    assert (e.length, e.capacity, e.limit) == (1200, 992, "frame_size")
    assert "the TX ring's frame capacity of 992 B (frame_size 1024 - 32 B slot header); raise frame_size" in str(e)
    assert "mtu" not in str(e).lower().replace("frame_size_for_mtu", "")


@pytest.mark.veth_pair(mtu=9000, ipv6=False)
def test_endpoint_injector_on_a_jumbo_link_names_the_jumbo_mtu(veth_pair):
    a, b = veth_pair
    with a.injector() as tx:
        assert tx.send(frames.build(ipv4={}, udp={}, size=9014)) == 1
        with pytest.raises(FrameTooLargeError, match="MTU 9000 \\+ 14 B Ethernet header = 9014 B") as ei:
            tx.send(frames.build(ipv4={}, udp={}, size=9015))
    assert (ei.value.capacity, ei.value.limit) == (9014, "mtu")
