"""The test kit over AF_XDP: ``Endpoint.xdp_socket()``, and the ``xdp`` fixture's ``xsk`` built-in
steering real traffic into a socket (``attach=None`` + ``map.update(queue, xsk)``)."""
import pytest

from netring import SeqChecker
from netring_testkit import frames

from xsk_net import ETH_TEST, frame

pytestmark = pytest.mark.privileged


def _ours(pkts):
    # the test kit's endpoints are addressed (IPv6 chatter may arrive too): keep our ethertype
    return [bytes(p.data) for p in pkts if bytes(p.data[12:14]) == ETH_TEST.to_bytes(2, "big")]


def test_xdp_fixture_xsk_builtin_lands_traffic_in_a_socket(xdp, veth_pair):
    a, b = veth_pair
    xsk = b.xdp_socket(attach=None)
    assert xsk.attachment is None
    h = xdp.attach(b, "xsk", mode="native")
    h.map("xsks").update(0, xsk)  # the socket itself (its fileno()) goes into the XSKMAP
    sent = [frame(i, 90) for i in range(200)]
    inj = a.injector()
    inj.send_batch(sent)
    got = []
    while len(got) < len(sent):
        more = xsk.recv(len(sent), timeout=2.0)
        if not more:
            break
        got.extend(_ours(more))
    assert got == sent
    assert h.counters()["redirect"]["packets"] >= len(sent)


def test_endpoint_xdp_socket_attaches_and_drains_a_stream(veth_pair):
    a, b = veth_pair
    xsk = b.xdp_socket(frame_size=2048)
    assert xsk.mode == "copy" and xsk.attachment.attached and xsk.frame_size == 2048
    f = frames.build(eth={"dst": "02:00:00:bb:00:01"}, ipv4={}, udp={"dport": 9}, payload=bytes(30), stamp=(5, 0))
    chk = SeqChecker({5: 1500})
    a.injector().send_stream([f], 5, 0, 1500, csum_offsets=[frames.l4_checksum_offset(f)])
    xsk.drain(chk, 10.0, 0.5)
    assert chk.done and chk.counts(5).lost == 0
