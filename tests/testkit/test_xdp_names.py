"""The testkit names an XDP attach/detach failure by its endpoint (node:ifname), as both nodes have an eth0."""
import pytest

from netring.errors import ResourceBusyError

pytestmark = pytest.mark.privileged

SPEC = {"nodes": ["tx", "rx"], "links": [{"endpoints": ["tx:eth0", "rx:eth0"]}]}


def test_fixture_attach_error_names_the_endpoint(topology, xdp):
    t = topology(SPEC)
    for name in ("tx:eth0", "rx:eth0"):
        xdp.attach(t[name], "pass")
    for name in ("tx:eth0", "rx:eth0"):
        with pytest.raises(ResourceBusyError) as ei:
            xdp.attach(t[name], "drop")
        assert str(ei.value).startswith("%s: eth0 in namespace %s already has XDP program 'nr_pass'"
                                        % (name, t[name].netns)), str(ei.value)


def test_runner_attach_error_names_the_endpoint(topology):
    import contextlib

    from netring import xdp as xdp_mod
    from netring.bpf import builtin
    from netring_testkit import runner
    from netring_testkit.scenario.model import XdpSpec

    t = topology(SPEC)
    with builtin("pass") as p, xdp_mod.attach("eth0", p, netns=t["rx:eth0"].netns), contextlib.ExitStack() as stack:
        runner._attach_xdp(stack, t, XdpSpec("tx:eth0", "pass", "native", {}))   # the other eth0 is free
        with pytest.raises(ResourceBusyError) as ei:
            runner._attach_xdp(stack, t, XdpSpec("rx:eth0", "drop", "native", {}))
    assert str(ei.value).startswith("rx:eth0: eth0 in namespace %s already has" % t["rx:eth0"].netns), str(ei.value)
