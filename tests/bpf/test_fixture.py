"""The ``xdp`` fixture, as the netring_testkit plugin registers it for users."""
import pytest

from netring import xdp as xdp_mod
from netring.bpf import builtin
from netring.errors import ConfigurationError

import frames_util as fu

from netring_testkit.xdp_fixture import XdpFactory

pytestmark = pytest.mark.privileged


def test_fixture_attaches_builtin_and_counts(pair, xdp):
    a, b = pair
    h = xdp.attach(b, "filter", mode="generic", rules=[{"match": {"stream": 2}, "action": "drop"}])
    assert h.mode == "generic"
    with fu.sender(a.netns, a.ifname) as tx:
        fu.send(tx, [fu.frame(stream=2, seq=i) for i in range(40)] + [fu.frame(stream=1, seq=i) for i in range(10)])
    c = h.counters()
    assert c["rules"][0]["packets"] == 40 and c["pass"]["packets"] == 10
    assert h.map("counters").max_entries == 6
    assert xdp_mod.query(b.ifname, netns=b.netns).name == "nr_filter"


def test_factory_detaches_and_closes_everything(pair):
    a, b = pair
    f = XdpFactory()
    h1 = f.attach((b.netns, b.ifname), "drop")
    with builtin("pass") as mine:
        h2 = f.attach(a, mine, mode="generic")
        f.close()
        assert not mine.closed  # the caller's program stays the caller's
    assert h1.program.closed
    assert xdp_mod.query(b.ifname, netns=b.netns) is None
    assert xdp_mod.query(a.ifname, netns=a.netns) is None
    assert not h2.attachment.attached


def test_fixture_rejects_bad_arguments(pair, xdp):
    a, b = pair
    with pytest.raises(ConfigurationError, match="endpoint"):
        xdp.attach("b0", "drop")
    with pytest.raises(ConfigurationError, match="program"):
        xdp.attach(b, 42)
