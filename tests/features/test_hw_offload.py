"""The capability check's ``hw-offload`` record on veth: it loads a program bound to the device (the
step veth refuses) through netring, says which step refused and with which errno, and leaves the pair
as it found it."""
import pytest

from netring_testkit import xdpfeatures

pytestmark = pytest.mark.privileged("CAP_BPF")


def test_hw_offload_record_names_the_refused_step(operator_pair):
    p = operator_pair
    before = p.state()
    report = xdpfeatures.check(p.dut, netns=p.dut_ns, peer=p.peer, peer_netns=p.peer_ns)
    rec = report.data["features"]["hw-offload"]
    assert (rec["advertised"], rec["observed"], rec["verdict"]) == (False, False, "ok"), rec
    assert rec["detail"] == ("the device refuses to load a program bound to it for offload (EINVAL at BPF_PROG_LOAD "
                             "with prog_ifindex)"), rec["detail"]
    load, attach = rec["checks"]
    assert (load["name"], load["ok"]) == ("load-offload", False)
    assert load["detail"].startswith("loading program 'nrx_offload' for offload to dut0 in namespace %r failed: "
                                     "[errno 22] EINVAL" % p.dut_ns), load["detail"]
    assert "that device has no BPF offload" in load["detail"]
    assert (attach["name"], attach["ok"]) == ("attach-offload", None)
    assert "not tried" in attach["detail"]
    table = report.table()
    assert "hw-offload    no         no        ok        the device refuses to load a program bound to it" in table
    assert "    ? attach-offload: not tried" in table
    assert report.exit_status == 0
    assert p.state() == before
