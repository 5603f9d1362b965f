"""Jumbo frames: the built-ins are multi-buffer aware (BPF_F_XDP_HAS_FRAGS), so they attach in native
mode to a veth whose MTU does not fit one page, count whole fragmented frames and filter them by stream."""
import errno

import pytest

from netring_testkit.plugin import require

from netring import xdp
from netring.bpf import builtin, load_program
from netring.bpf.asm import XDP_DROP, XDP_PASS, Asm
from netring.errors import UnsupportedError

import frames_util as fu
from conftest import quiet_ns, veth

pytestmark = pytest.mark.privileged

JUMBO = 9014          # an MTU-9000 frame: larger than one page, so XDP sees it in fragments
MTU = 9000
N = 100
_HDRS = {"ipv4": 14 + 20 + 8 + 20, "ipv6": 14 + 40 + 8 + 20}   # Ethernet + IP + UDP + stamp


def jumbo(stream, seq=0, l3="ipv4", size=JUMBO, vlan=None):
    f = fu.frame(stream=stream, seq=seq, l3=l3, payload=size - _HDRS[l3] - (4 if vlan else 0), vlan=vlan)
    assert len(f) == size
    return f


@pytest.fixture
def jumbo_pair():
    """``(a, b)``: veth ends ``a0``/``b0`` in two fresh namespaces, both with MTU 9000."""
    require("CAP_BPF")
    na, nb = quiet_ns(), quiet_ns()
    try:
        a, b = veth(na, "a0", nb, "b0")
        for end in (a, b):
            with end.netns.iproute() as ipr:
                ipr.link("set", index=end.ifindex, mtu=MTU)
        yield a, b
    finally:
        na.close()
        nb.close()


def test_builtins_are_loaded_frags_aware_and_user_programs_are_not_by_default():
    require("CAP_BPF")
    for name in ("pass", "drop", "aborted", "tx", "xsk"):
        with builtin(name) as p:
            assert p.frags is True, name
    with builtin("filter", rules=[{"match": {"stream": 1}, "action": "drop"}]) as p:
        assert p.frags is True
    a = Asm().ret(XDP_PASS)
    with load_program(a) as p:
        assert p.frags is False
    with load_program(a, frags=True) as p:
        assert p.frags is True


@pytest.mark.parametrize("size", [64, 3000, 4096, JUMBO])
@pytest.mark.parametrize("verdict, code", [("pass", XDP_PASS), ("drop", XDP_DROP)])
def test_counters_count_the_whole_fragmented_frame(size, verdict, code):
    require("CAP_BPF")
    with builtin(verdict) as p:
        ret, out = p.test_run(jumbo(3, size=size))   # > ~3.5 KiB: BPF_PROG_TEST_RUN builds fragments
        assert ret == code and len(out) == size
        assert p.counters()[verdict] == {"packets": 1, "bytes": size}


@pytest.mark.parametrize("l3, vlan", [("ipv4", None), ("ipv6", None), ("ipv4", 42), ("ipv6", 42)])
def test_filter_reads_the_stamp_of_a_fragmented_frame(l3, vlan):
    """The stamp ends the L3 packet, so in a 9014 B frame it lies in the last fragment."""
    require("CAP_BPF")
    rules = [{"match": {"stream": 7}, "action": "drop"}, {"match": {"udp": {"dport": 9}}, "action": "aborted"}]
    with builtin("filter", rules=rules, default="pass") as p:
        assert p.test_run(jumbo(7, l3=l3, vlan=vlan))[0] == XDP_DROP
        # stream 8 falls through to the header rule: the headers are read from the first buffer
        assert p.test_run(jumbo(8, l3=l3, vlan=vlan))[0] == 0
        c = p.counters()
    assert c["drop"] == {"packets": 1, "bytes": JUMBO}
    assert c["rules"] == [{"packets": 1, "bytes": JUMBO}, {"packets": 1, "bytes": JUMBO}]


def test_filter_ignores_a_stamp_offset_past_the_frame():
    """An IPv4 total length larger than the frame points the stamp read past the end: no stream, no match."""
    require("CAP_BPF")
    f = bytearray(jumbo(7))
    f[16:18] = (0xFFF0).to_bytes(2, "big")
    with builtin("filter", rules=[{"match": {"stream": 7}, "action": "drop"}]) as p:
        assert p.test_run(bytes(f))[0] == XDP_PASS
        assert p.test_run(jumbo(7))[0] == XDP_DROP


def _blast(a, b, frames, stream, timeout=0.5):
    with fu.receiver(b.netns, b.ifname) as rx, fu.sender(a.netns, a.ifname) as tx:
        sent = fu.send(tx, frames)
        got = fu.receive(rx, stream=stream, count=len(frames), timeout=timeout)
    return sent, got


@pytest.mark.parametrize("mode", ["native", "generic"])
def test_pass_attaches_at_mtu_9000_and_counts_jumbo_frames(jumbo_pair, mode):
    a, b = jumbo_pair
    frames = [jumbo(5, i) for i in range(N)]
    with builtin("pass") as prog, xdp.attach(b.ifname, prog, netns=b.netns, mode=mode) as att:
        assert xdp.query(b.ifname, netns=b.netns).mode == mode
        sent, got = _blast(a, b, frames, 5)
        c = att.counters()
    assert sent == N * JUMBO
    assert sorted(got) == sorted(frames)
    assert c["pass"] == {"packets": N, "bytes": sent}


@pytest.mark.parametrize("mode", ["native", "generic"])
def test_drop_drops_jumbo_frames_and_counts_their_bytes(jumbo_pair, mode):
    a, b = jumbo_pair
    frames = [jumbo(5, i) for i in range(N)]
    with builtin("drop") as prog, xdp.attach(b.ifname, prog, netns=b.netns, mode=mode) as att:
        sent, got = _blast(a, b, frames, 5)
        c = att.counters()
    assert got == []
    assert c["drop"] == {"packets": N, "bytes": sent} and c["pass"]["packets"] == 0


@pytest.mark.parametrize("mode", ["native", "generic"])
def test_filter_drops_one_jumbo_stream_by_its_stamp(jumbo_pair, mode):
    a, b = jumbo_pair
    frames = [jumbo(7 if i % 2 else 8, i) for i in range(2 * N)]
    kept = frames[0::2]   # stream 8
    with builtin("filter", rules=[{"match": {"stream": 7}, "action": "drop"}]) as prog, \
            xdp.attach(b.ifname, prog, netns=b.netns, mode=mode) as att:
        with fu.receiver(b.netns, b.ifname) as rx, fu.sender(a.netns, a.ifname) as tx:
            fu.send(tx, frames)
            got = fu.receive(rx, count=2 * N, timeout=0.5)
        c = att.counters()
    assert sorted(got) == sorted(kept)
    assert c["drop"] == {"packets": N, "bytes": N * JUMBO}
    assert c["rules"] == [{"packets": N, "bytes": N * JUMBO}]
    assert c["pass"]["packets"] >= N


# -- programs that are not frags-aware: the error says why and what to do ----------------------
def _not_frags_aware(name, mtu=MTU):
    return ("program %r is not frags-aware and MTU %d > 3506 (the largest MTU a single-buffer XDP program accepts "
            "on veth with a 4 KiB page); load it with SEC(\"xdp.frags\") (netring: load_program(..., frags=True)) "
            "or lower the MTU, or use mode='generic'" % (name, mtu))


def test_single_buffer_limit_is_computed_from_the_page_size():
    assert xdp.veth_single_buffer_max_mtu(4096) == 3506     # measured: 3506 attaches, 3507 gets ERANGE
    assert xdp.veth_single_buffer_max_mtu(16384) == 16384 - 256 - 320 - 14


def test_computed_limit_is_the_kernels(jumbo_pair):
    """At the limit a single-buffer program attaches natively; one byte more and the kernel refuses."""
    a, b = jumbo_pair
    limit = xdp.veth_single_buffer_max_mtu()
    with load_program(Asm().ret(XDP_PASS), name="single") as prog:
        for mtu, ok in ((limit, True), (limit + 1, False)):
            with a.netns.iproute() as ipr:   # the veth checks its peer's MTU
                ipr.link("set", index=a.ifindex, mtu=mtu)
            if ok:
                with xdp.attach(b.ifname, prog, netns=b.netns, mode="native") as att:
                    assert att.mode == "native"
            else:
                with pytest.raises(UnsupportedError) as ei:
                    xdp.attach(b.ifname, prog, netns=b.netns, mode="native")
                # b0's own MTU stays 9000: the message names the peer's, which the kernel checked
                assert "is not frags-aware and the veth peer's MTU %d > %d (the veth checks its peer's)" \
                    % (limit + 1, limit) in str(ei.value)


def test_single_buffer_program_on_a_jumbo_veth_is_explained(jumbo_pair):
    a, b = jumbo_pair
    with load_program(Asm().ret(XDP_PASS), name="single") as prog:
        for method in ("link", "netlink"):
            with pytest.raises(UnsupportedError) as ei:
                xdp.attach(b.ifname, prog, netns=b.netns, mode="native", method=method)
            assert ei.value.errno == errno.ERANGE
            assert str(ei.value) == "attaching XDP program 'single' to b0 in namespace %s (native mode) failed: %s" \
                % (b.netns, _not_frags_aware("single"))
        # auto falls back to generic, where the MTU does not matter
        with xdp.attach(b.ifname, prog, netns=b.netns, mode="auto") as att:
            assert att.mode == "generic"
    with load_program(Asm().ret(XDP_PASS), name="multi", frags=True) as prog, \
            xdp.attach(b.ifname, prog, netns=b.netns, mode="native") as att:
        assert att.mode == "native"


def test_libbpf_sections_decide_frags_awareness(jumbo_pair, tmp_path):
    from test_libbpf import _compile
    from netring.bpf.libbpf import load_object
    a, b = jumbo_pair
    with load_object(_compile(tmp_path, "xdp_frags")) as obj:
        single, multi = obj.program("xdp_single"), obj.program("xdp_multi")
        assert (single.frags, multi.frags) == (False, True)
        assert obj.sections == {"xdp_single": "xdp", "xdp_multi": "xdp.frags"}
        with pytest.raises(UnsupportedError) as ei:
            xdp.attach(b.ifname, single, netns=b.netns, mode="native")
        assert _not_frags_aware("xdp_single") in str(ei.value)
        with xdp.attach(b.ifname, multi, netns=b.netns, mode="native") as att:
            assert att.mode == "native"
            _, got = _blast(a, b, [jumbo(2, i) for i in range(10)], 2)
            assert len(got) == 10
