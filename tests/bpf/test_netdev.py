"""netdev genetlink XDP feature queries."""
import pytest

from netring import netdev, xdp
from netring.bpf import builtin
from netring.errors import InterfaceNotFoundError

pytestmark = pytest.mark.privileged


def test_veth_features_and_peer_dependence(pair):
    a, b = pair
    fa = netdev.features(a.ifname, netns=a.netns)
    assert fa.ifindex == a.ifindex
    assert {"basic", "redirect", "rx-sg"} <= fa.xdp_features
    assert "ndo-xmit" not in fa.xdp_features
    # ndo-xmit appears on a once its peer b runs XDP (FIELD-NOTES).
    with builtin("pass") as p, xdp.attach(b.ifname, p, netns=b.netns):
        assert "ndo-xmit" in netdev.features(a.ifname, netns=a.netns).xdp_features
    assert "ndo-xmit" not in netdev.features(a.ifindex, netns=a.netns).xdp_features


def test_dump_lists_every_device(pair):
    a, b = pair
    devs = netdev.dump(netns=a.netns)
    assert a.ifindex in devs and 1 in devs  # a0 and lo
    assert devs[a.ifindex].raw["xdp-features"] & 1


def test_unknown_interface(pair):
    a, _ = pair
    with pytest.raises(InterfaceNotFoundError):
        netdev.features("nope0", netns=a.netns)
    with pytest.raises(InterfaceNotFoundError):
        netdev.features(999, netns=a.netns)
