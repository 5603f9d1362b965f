"""netring._netlink: one-shot rtnetlink/genetlink requests in the calling thread's namespace."""
import errno
import struct

import pytest
from netring_testkit.plugin import require

from netring import _netlink
from netring.netns import NetNS
from pyroute2.netlink import NLM_F_REQUEST
from pyroute2.netlink.rtnl import RTM_NEWLINK
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg


def _newlink(index, name, state):
    msg = ifinfmsg()
    msg["index"] = index
    msg["attrs"] = [("IFLA_MTU", 1500), ("IFLA_IFNAME", name), ("IFLA_OPERSTATE", state)]
    msg["header"]["type"] = RTM_NEWLINK
    msg["header"]["flags"] = NLM_F_REQUEST
    msg["header"]["sequence_number"] = 1
    msg.encode()
    return bytes(msg.data)


def _parse(data):
    return list(_netlink._LinkStates().parse(data))


def test_link_states_reads_index_name_and_operstate():
    (m,) = _parse(_newlink(7, "veth3", "UP"))
    assert (m["index"], m["ifname"], m["operstate"]) == (7, "veth3", "UP")
    assert m["header"]["type"] == RTM_NEWLINK and m["header"]["error"] is None


def test_link_states_stops_at_an_attribute_running_past_the_message():
    data = bytearray(_newlink(7, "veth3", "UP"))
    # The first attribute (after the 16 B nlmsghdr and the 16 B ifinfomsg) claims 4 KiB.
    struct.pack_into("=H", data, 32, 4096)
    (m,) = _parse(bytes(data))
    assert (m["index"], m["ifname"], m["operstate"]) == (7, None, None)


@pytest.fixture
def veth_ns():
    require()
    with NetNS.create() as ns:
        with ns.iproute() as ipr:
            ipr.link("add", ifname="nl0", kind="veth", peer={"ifname": "nl1"})
            for name in ("nl0", "nl1"):
                ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up")
        yield ns


@pytest.mark.privileged
def test_queries_answer_for_the_namespace_they_run_in(veth_ns):
    idx = veth_ns.ifindex("nl0")
    states = veth_ns.run(_netlink.operstates)
    assert set(states) == {"lo", "nl0", "nl1"} and states["nl0"][0] == idx
    (msg,) = veth_ns.run(_netlink.links, idx)
    assert msg.get_attr("IFLA_IFNAME") == "nl0" and msg.get_attr("IFLA_XDP") is not None
    assert {m.get_attr("IFLA_IFNAME") for m in veth_ns.run(_netlink.links)} == {"lo", "nl0", "nl1"}


@pytest.mark.privileged
def test_kernel_errors_raise_oserror_with_their_errno(veth_ns):
    with pytest.raises(OSError) as ei:
        veth_ns.run(_netlink.links, 99999)
    assert ei.value.errno == errno.ENODEV
    with pytest.raises(OSError) as ei:
        _netlink.genl_family_id("nrt_nofamily")  # GENL_NAMSIZ: at most 15 characters
    assert ei.value.errno == errno.ENOENT
