"""Attach and detach errors name the interface *and* its namespace: two nodes both have an eth0."""
import pytest

from netring import xdp
from netring.bpf import builtin
from netring.errors import ResourceBusyError, UnsupportedError

from conftest import _need_root, quiet_ns, veth

pytestmark = pytest.mark.privileged


@pytest.fixture
def two_eth0():
    """``(a, b)``: veth ends both called ``eth0``, in two fresh (unnamed) namespaces, MTU 9000."""
    _need_root()
    na, nb = quiet_ns(), quiet_ns()
    try:
        a, b = veth(na, "eth0", nb, "eth0")
        for end in (a, b):
            with end.netns.iproute() as ipr:
                ipr.link("set", index=end.ifindex, mtu=9000)
        yield a, b
    finally:
        na.close()
        nb.close()


def test_busy_interface_is_named_with_its_namespace(two_eth0):
    with builtin("pass") as p, builtin("drop") as d:
        atts = [xdp.attach(e.ifname, p, netns=e.netns) for e in two_eth0]
        try:
            msgs = []
            for e in two_eth0:
                with pytest.raises(ResourceBusyError) as ei:
                    xdp.attach(e.ifname, d, netns=e.netns)
                msgs.append(str(ei.value))
                assert str(ei.value).startswith("eth0 in namespace %s already has XDP program 'nr_pass'" % e.netns)
            assert msgs[0] != msgs[1] and str(two_eth0[0].netns) != str(two_eth0[1].netns)
            for att, e in zip(atts, two_eth0):
                assert "nr_pass on eth0 in namespace %s (ifindex" % e.netns in repr(att)
        finally:
            for att in atts:
                att.detach()


@pytest.mark.parametrize("method", ["link", "netlink"])
def test_kernel_refusal_is_named_with_its_namespace(two_eth0, method):
    from netring.bpf import load_program
    from netring.bpf.asm import XDP_PASS, Asm

    with load_program(Asm().ret(XDP_PASS), name="single") as p:
        for e in two_eth0:
            with pytest.raises(UnsupportedError) as ei:
                xdp.attach(e.ifname, p, netns=e.netns, mode="native", method=method)
            assert str(ei.value).startswith("attaching XDP program 'single' to eth0 in namespace %s (native mode) "
                                            "failed: " % e.netns)


def test_netlink_detach_error_is_named_with_its_namespace(two_eth0, monkeypatch):
    a, _ = two_eth0
    with builtin("pass") as p:
        att = xdp.attach(a.ifname, p, netns=a.netns, method="netlink")
        real = xdp._iproute

        class Refusing:
            def __init__(self, ns):
                self.ipr = real(ns)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.ipr.close()

            def link(self, *args, **kw):
                from pyroute2.netlink.exceptions import NetlinkError
                raise NetlinkError(1, "Operation not permitted")   # as without CAP_NET_ADMIN

        monkeypatch.setattr(xdp, "_iproute", Refusing)
        with pytest.raises(Exception) as ei:
            att.detach()
        assert "detaching XDP from eth0 in namespace %s failed" % a.netns in str(ei.value)
        monkeypatch.undo()
        xdp.detach_all(a.ifname, netns=a.netns)
        assert xdp.query(a.ifname, netns=a.netns) is None
