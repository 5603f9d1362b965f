"""Lifetimes: dropped netlink attachments detach; the created-ids registry records what we load."""
import gc

import pytest

from netring_testkit.plugin import require

from netring import xdp
from netring.bpf import BpfObjectNotFoundError, builtin, create_map, created_ids, program_from_id

pytestmark = pytest.mark.privileged


def _root():
    require("CAP_BPF")


def test_dropping_a_netlink_attachment_detaches(pair):
    a, b = pair
    with builtin("pass") as p:
        att = xdp.attach(b.ifname, p, netns=b.netns, mode="generic", method="netlink")
        assert att.method == "netlink"
        assert xdp.query(b.ifname, netns=b.netns).id == p.id
        del att
        gc.collect()
        assert xdp.query(b.ifname, netns=b.netns) is None
        assert not p.closed  # detaching never closes the program


def test_finalizer_leaves_a_program_attached_since_alone(pair):
    a, b = pair
    with builtin("pass") as p, builtin("drop") as q:
        att = xdp.attach(b.ifname, p, netns=b.netns, mode="generic", method="netlink")
        # Someone else swaps in their program behind the attachment's back.
        other = xdp.attach(b.ifname, q, netns=b.netns, mode="generic", method="netlink", replace=True)
        assert xdp.query(b.ifname, netns=b.netns).id == q.id
        del att
        gc.collect()
        assert xdp.query(b.ifname, netns=b.netns).id == q.id  # EXPECTED_FD guard: theirs stays
        other.detach()
        assert xdp.query(b.ifname, netns=b.netns) is None


def test_netlink_detach_works_after_the_program_was_closed(pair):
    a, b = pair
    p = builtin("pass")
    att = xdp.attach(b.ifname, p, netns=b.netns, mode="generic", method="netlink")
    pid = p.id
    p.close()
    assert xdp.query(b.ifname, netns=b.netns).id == pid  # the kernel keeps it while attached
    att.detach()
    att.detach()  # idempotent
    assert xdp.query(b.ifname, netns=b.netns) is None


def test_link_attachment_dropped_detaches(pair):
    a, b = pair
    with builtin("pass") as p:
        att = xdp.attach(b.ifname, p, netns=b.netns, mode="generic", method="link")
        assert xdp.query(b.ifname, netns=b.netns).id == p.id
        del att
        gc.collect()
        assert xdp.query(b.ifname, netns=b.netns) is None


def _gone(prog_id):
    """True once program ``prog_id`` is no longer loaded (bounded wait: the kernel frees via RCU)."""
    import time
    for _ in range(100):
        try:
            program_from_id(prog_id).close()
        except BpfObjectNotFoundError:
            return True
        time.sleep(0.02)
    return False


def test_created_ids_records_loaded_programs_and_maps():
    _root()
    with builtin("pass") as p, create_map("hash", 4, 4, 4, name="nr_reg") as m:
        ids = created_ids()
        assert p.id in ids["prog"]
        assert m.id in ids["map"] and p.map("counters").id in ids["map"]
        pid = p.id
        assert not _gone(pid)
    assert _gone(pid)
    assert pid in created_ids()["prog"]  # the registry remembers it; the session check finds it gone
