"""Built-in XDP programs proven with traffic over veth, in native and generic mode."""
import pytest

from netring import xdp
from netring.bpf import builtin
from netring.errors import ResourceBusyError

import frames_util as fu

pytestmark = pytest.mark.privileged
MODES = ["native", "generic"]
N = 300


def _blast(a, b, n=N, stream=5, **kw):
    """Send n stamped frames a -> b; return (frames sent, bytes sent, frames received at b)."""
    frames = [fu.frame(stream=stream, seq=i, **kw) for i in range(n)]
    with fu.receiver(b.netns, b.ifname) as rx, fu.sender(a.netns, a.ifname) as tx:
        sent = fu.send(tx, frames)
        got = fu.receive(rx, stream=stream, count=n, timeout=0.5)
    return frames, sent, got


@pytest.mark.parametrize("mode", MODES)
def test_pass_delivers_all_and_counts_them(pair, mode):
    a, b = pair
    with builtin("pass") as prog, xdp.attach(b.ifname, prog, netns=b.netns, mode=mode) as att:
        assert att.mode == mode and att.method == "link"
        frames, sent, got = _blast(a, b)
        c = att.counters()
    assert sorted(got) == sorted(frames)
    assert c["pass"] == {"packets": N, "bytes": sent}
    assert all(c[k]["packets"] == 0 for k in ("drop", "aborted", "tx", "redirect"))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("verdict", ["drop", "aborted"])
def test_drop_and_aborted_deliver_none_and_count_all(pair, mode, verdict):
    a, b = pair
    with builtin(verdict) as prog, xdp.attach(b.ifname, prog, netns=b.netns, mode=mode) as att:
        frames, sent, got = _blast(a, b)
        c = att.counters()
    assert got == []
    assert c[verdict] == {"packets": N, "bytes": sent}
    assert c["pass"]["packets"] == 0


@pytest.mark.parametrize("mode", MODES)
def test_tx_reflects_every_frame_with_macs_swapped(pair, mode):
    a, b = pair
    # XDP_TX into a veth only arrives if the receiving end (a) runs XDP too (FIELD-NOTES).
    with builtin("pass") as ppass, xdp.attach(a.ifname, ppass, netns=a.netns, mode="native"), \
            builtin("tx") as prog, xdp.attach(b.ifname, prog, netns=b.netns, mode=mode) as att:
        frames = [fu.frame(stream=6, seq=i) for i in range(N)]
        with fu.receiver(a.netns, a.ifname) as rx, fu.sender(a.netns, a.ifname) as tx:
            sent = fu.send(tx, frames)
            back = fu.receive(rx, stream=6, count=N, timeout=0.5)
        c = att.counters()
    assert c["tx"] == {"packets": N, "bytes": sent}
    assert len(back) == N
    swapped = sorted(f[6:12] + f[0:6] + f[12:] for f in frames)
    assert sorted(back) == swapped


def test_attach_conflict_is_refused_unless_replace(pair):
    a, b = pair
    with builtin("pass") as p1, builtin("drop") as p2:
        with xdp.attach(b.ifname, p1, netns=b.netns) as att:
            with pytest.raises(ResourceBusyError, match="nr_pass.*replace=True"):
                xdp.attach(b.ifname, p2, netns=b.netns)
            assert xdp.query(b.ifname, netns=b.netns).id == p1.id
        # Replace a netlink-attached program atomically.
        with xdp.attach(b.ifname, p1, netns=b.netns, method="netlink") as att1:
            assert att1.method == "netlink"
            with xdp.attach(b.ifname, p2, netns=b.netns, replace=True) as att2:
                q = xdp.query(b.ifname, netns=b.netns)
                assert (q.id, q.name, q.mode) == (p2.id, "nr_drop", "native")
                _, _, got = _blast(a, b, n=50)
                assert got == [] and att2.counters()["drop"]["packets"] == 50
            att1.detach()  # no-op: our program is no longer the attached one
        assert xdp.query(b.ifname, netns=b.netns) is None
