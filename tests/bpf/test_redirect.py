"""redirect (devmap) and xsk (XSKMAP) built-ins with traffic."""
import pytest

from netring import xdp
from netring.bpf import builtin
from netring.errors import ConfigurationError

import frames_util as fu

pytestmark = pytest.mark.privileged
N = 200


@pytest.mark.parametrize("mode", ["native", "generic"])
def test_redirect_moves_frames_to_a_third_namespace(trio, mode):
    a, b1, b2, c = trio
    frames = [fu.frame(stream=9, seq=i) for i in range(N)]
    # Frames redirected out of b2 arrive at c only if c runs XDP (veth ndo_xdp_xmit needs the peer's NAPI).
    with builtin("pass") as cpass, xdp.attach(c.ifname, cpass, netns=c.netns), \
            builtin("redirect", target_ifindex=b2.ifindex) as prog, \
            xdp.attach(b1.ifname, prog, netns=b1.netns, mode=mode) as att:
        assert prog.map("devmap")[0] == b2.ifindex
        with fu.receiver(c.netns, c.ifname) as rx_c, fu.receiver(b1.netns, b1.ifname) as rx_b, \
                fu.sender(a.netns, a.ifname) as tx:
            sent = fu.send(tx, frames)
            got = fu.receive(rx_c, stream=9, count=N, timeout=0.5)
            at_b = fu.receive(rx_b, stream=9, timeout=0.2)
        cnt = att.counters()
        cpass_cnt = cpass.counters()
    assert sorted(got) == sorted(frames)
    assert at_b == []
    assert cnt["redirect"] == {"packets": N, "bytes": sent}
    assert cpass_cnt["pass"]["packets"] == N


def test_redirect_needs_a_target():
    with pytest.raises(ConfigurationError, match="target_ifindex"):
        builtin("redirect")
    with pytest.raises(ConfigurationError, match="fallback"):
        builtin("redirect", target_ifindex=1, fallback="redirect")
    with pytest.raises(ConfigurationError, match="unknown built-in"):
        builtin("bounce")
    with pytest.raises(ConfigurationError, match="unexpected keyword"):
        builtin("drop", rules=[])


def test_redirect_unfilled_devmap_falls_back(pair):
    """Before attach (no netns given) the devmap slot is empty: bpf_redirect_map returns the fallback, which is counted."""
    a, b = pair
    with builtin("redirect", target_ifindex=b.ifindex, fallback="drop") as prog:
        assert 0 not in prog.map("devmap")
        assert prog.test_run(fu.frame())[0] == 1
        c = prog.counters()
        assert c["drop"]["packets"] == 1 and c["redirect"]["packets"] == 0
    with builtin("redirect", target_ifindex=b.ifindex, netns=b.netns) as prog:
        assert prog.map("devmap")[0] == b.ifindex
        assert prog.test_run(fu.frame())[0] == 4


@pytest.mark.parametrize("mode", ["native", "generic"])
def test_xsk_passes_when_no_socket(pair, mode):
    a, b = pair
    with builtin("xsk", queues=4) as prog, xdp.attach(b.ifname, prog, netns=b.netns, mode=mode) as att:
        assert prog.map("xsks").max_entries == 4
        frames = [fu.frame(stream=3, seq=i) for i in range(N)]
        with fu.receiver(b.netns, b.ifname) as rx, fu.sender(a.netns, a.ifname) as tx:
            sent = fu.send(tx, frames)
            got = fu.receive(rx, stream=3, count=N, timeout=0.5)
        cnt = att.counters()
    assert len(got) == N
    assert cnt["pass"] == {"packets": N, "bytes": sent}
    assert cnt["redirect"]["packets"] == 0
