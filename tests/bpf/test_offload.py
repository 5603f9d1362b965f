"""Programs bound to a device for hardware offload: ``load_program(..., offload=...)`` and
``xdp.attach(..., mode="offload")``.

This machine has no device with BPF offload (no nfp, no netdevsim), so what runs against the kernel
here is the refusal path: a veth refuses the bound load with EINVAL (it has an XDP driver hook but no
offload device behind it), loopback with EOPNOTSUPP (no XDP hook at all) — two different answers, which
shows the kernel really looked up the device named, inside the namespace given. The checks that need a
program the kernel reports as offloaded use a :class:`Program` subclass reporting such a binding: they
test netring's own validation, which runs before the kernel is asked.
"""
import errno

import pytest

from netring import xdp
from netring.bpf import OffloadDevice, Program, builtin, create_map, load_program
from netring.bpf.asm import XDP_PASS, Asm
from netring.errors import ConfigurationError, InterfaceNotFoundError, NamespaceNotFoundError, UnsupportedError

from conftest import _need_root

pytestmark = pytest.mark.privileged

PASS = Asm().ret(XDP_PASS)


@pytest.fixture(autouse=True)
def _root():
    _need_root()


@pytest.mark.parametrize("value", [0, -1, 1 << 31, True, 3.5, "", "x" * 16, "a b", "a/b", b"eth0", ["eth0"],
                                   ("eth0",), ("eth0", None, None), (None, None), (0, None)])
def test_bad_offload_values_name_the_field(value):
    with pytest.raises(ConfigurationError) as ei:
        load_program(PASS, name="bad_off", offload=value)
    assert ei.value.field == "offload", str(ei.value)
    assert "offload" in str(ei.value)


def test_offload_excludes_frags_maps_and_other_types():
    with pytest.raises(ConfigurationError) as ei:
        load_program(PASS, name="off_frags", frags=True, offload="lo")
    assert ei.value.field == "frags" and "cannot be frags-aware" in str(ei.value)
    with create_map("array", 4, 8, 1, name="off_map") as m:
        with pytest.raises(ConfigurationError) as ei:
            load_program(PASS, name="off_maps", maps={"m": m}, offload="lo")
        assert ei.value.field == "maps" and "only maps offloaded to the same device" in str(ei.value)
        m.lookup(0)   # not handed to (or closed by) a program that was never loaded
    with pytest.raises(ConfigurationError) as ei:
        load_program(PASS, name="off_type", prog_type=3, offload="lo")   # BPF_PROG_TYPE_SCHED_CLS
    assert ei.value.field == "offload" and "for XDP programs" in str(ei.value)


def test_missing_namespace_and_device():
    with pytest.raises(NamespaceNotFoundError):
        load_program(PASS, name="off_nons", offload=("a0", "nrt-offload-no-such-namespace"))


def test_veth_refuses_a_bound_load_naming_device_and_errno(pair):
    a, _ = pair
    for target in (a.ifname, a.ifindex):
        with pytest.raises(UnsupportedError) as ei:
            load_program(PASS, name="off_veth", offload=(target, a.netns))
        msg = str(ei.value)
        assert ei.value.errno == errno.EINVAL
        assert msg.startswith("loading program 'off_veth' for offload to a0 in namespace %s failed: [errno 22] EINVAL"
                              % a.netns), msg
        assert "that device has no BPF offload" in msg and "nfp" in msg, msg


def test_the_device_is_looked_up_in_the_given_namespace(pair):
    a, _ = pair
    # lo of that namespace (ifindex 1 there) has no XDP hook at all: a different refusal than the veth's.
    with pytest.raises(UnsupportedError) as ei:
        load_program(PASS, name="off_lo", offload=(1, a.netns))
    assert ei.value.errno == errno.EOPNOTSUPP
    assert "for offload to lo in namespace %s failed: [errno 95] EOPNOTSUPP" % a.netns in str(ei.value)
    # a0 exists only inside the pair's namespace.
    with pytest.raises(InterfaceNotFoundError) as ei:
        load_program(PASS, name="off_here", offload="a0")
    assert "not found in the current namespace" in str(ei.value)
    with pytest.raises(InterfaceNotFoundError) as ei:
        load_program(PASS, name="off_gone", offload=("nope0", a.netns))
    assert "'nope0' not found in namespace %s" % a.netns in str(ei.value)


def test_unbound_program_is_refused_in_offload_mode(pair):
    a, _ = pair
    with load_program(PASS, name="plain") as prog:
        assert prog.offload is None and prog.offload_target is None
        for method in ("auto", "link", "netlink"):
            with pytest.raises(ConfigurationError) as ei:
                xdp.attach(a.ifname, prog, netns=a.netns, mode="offload", method=method)
            assert ei.value.field == "mode"
            assert "program 'plain' is not bound to a device" in str(ei.value)
            assert "load_program(..., offload=(ifname, netns))" in str(ei.value)
        assert xdp.query(a.ifname, netns=a.netns) is None
        # auto stays native -> generic, never offload.
        with xdp.attach(a.ifname, prog, netns=a.netns, mode="auto") as att:
            assert att.mode == "native"
            assert [i.mode for i in xdp.query(a.ifname, netns=a.netns, all=True)] == ["native"]


class ReportedOffloaded(Program):
    """A real loaded program whose :attr:`offload` reports a binding, as the kernel does for one loaded with
    ``offload=`` on offload hardware: netring's checks run before any attach reaches the kernel."""

    binding = None

    @property
    def offload(self):
        """The binding set on the class (what the kernel would report)."""
        return self.binding


def _ino(netns):
    import os
    return netns.run(lambda: os.stat("/proc/thread-self/ns/net").st_ino)


def test_offloaded_program_attaches_only_in_offload_mode_to_its_device(pair):
    a, b = pair
    with ReportedOffloaded.load(PASS, name="bound") as prog:
        prog.binding = OffloadDevice(a.ifindex, 0, _ino(a.netns))
        for mode in ("native", "generic", "auto"):
            with pytest.raises(ConfigurationError) as ei:
                xdp.attach(a.ifname, prog, netns=a.netns, mode=mode)
            assert ei.value.field == "mode"
            assert "was loaded for offload (bound to ifindex %d)" % a.ifindex in str(ei.value)
            assert "mode='offload'" in str(ei.value)
        # Same ifindex number in another namespace is another device.
        prog.binding = OffloadDevice(b.ifindex, 0, _ino(a.netns))
        with pytest.raises(ConfigurationError) as ei:
            xdp.attach(b.ifname, prog, netns=b.netns, mode="offload")
        assert ei.value.field == "target"
        assert "is bound for offload to another device (ifindex %d in namespace inode %d), not to b0 in namespace %s" \
            % (b.ifindex, _ino(a.netns), b.netns) in str(ei.value)
        assert xdp.query(a.ifname, netns=a.netns) is None and xdp.query(b.ifname, netns=b.netns) is None


def test_offload_refusal_by_the_driver_is_typed(pair):
    """What the attach itself says when the driver refuses: with a binding that passes netring's check,
    the kernel answers for the veth (which cannot offload) and the error names device, mode and errno."""
    a, _ = pair
    with ReportedOffloaded.load(PASS, name="bound") as prog:
        prog.binding = OffloadDevice(a.ifindex, 0, _ino(a.netns))
        for method in ("link", "netlink"):
            with pytest.raises(UnsupportedError) as ei:
                xdp.attach(a.ifname, prog, netns=a.netns, mode="offload", method=method)
            msg = str(ei.value)
            assert ei.value.errno == errno.EINVAL, msg
            assert msg.startswith("attaching XDP program 'bound' to a0 in namespace %s in offload mode "
                                  "(XDP_FLAGS_HW_MODE) failed: [errno 22] EINVAL" % a.netns), msg
            assert "nfp" in msg
        assert xdp.query(a.ifname, netns=a.netns) is None


def test_builtins_and_host_programs_report_no_offload():
    with builtin("pass") as p:
        assert p.offload is None
    assert "offload" in xdp.MODES and xdp.MODES[-1] == "auto"
    with pytest.raises(UnsupportedError) as ei:
        load_program(PASS, name="off_lo_root", offload="lo")   # this namespace's loopback: no XDP hook
    assert ei.value.errno == errno.EOPNOTSUPP and "for offload to lo failed" in str(ei.value)
