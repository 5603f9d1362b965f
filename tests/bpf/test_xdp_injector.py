"""XdpInjector: in-kernel generation (live-frames BPF_PROG_RUN) over a veth whose peer runs ``pass``.

The frames of ``XdpInjector.send_stream`` must be byte-identical to ``Injector.send_stream``'s for the
same templates and seqs; the receiver's C SeqChecker must accept them all.
"""
import threading
import time

import pytest

from netring import Capture, FrameTooLargeError, Injector, InterfaceNotFoundError, SeqChecker, XdpInjector, \
    check, stamp, xdp
from netring.bpf import builtin
from netring.xdp_inject import VethPeerError, _plans, max_live_frame

import frames_util as fu

pytestmark = pytest.mark.privileged


def csum_off(f, proto):
    """Offset of the UDP/TCP checksum of ``f``."""
    l3, et = stamp.l3_offset(f)
    l4 = l3 + ((f[l3] & 15) * 4 if et == 0x0800 else 40)
    return l4 + (6 if proto == "udp" else 16)


def template(size, l3="ipv4", proto="udp", vlan=None):
    """A stamped template of ``size`` bytes (or the fewest its headers and stamp need) and its checksum offset."""
    probe = fu.frame(stream=1, seq=0, l3=l3, proto=proto, payload=0, vlan=vlan)
    size = max(size, len(probe))
    t = fu.frame(stream=1, seq=0, l3=l3, proto=proto, payload=size - len(probe), vlan=vlan)
    assert len(t) == size
    return t, csum_off(t, proto)


KINDS = [("ipv4", "udp", None), ("ipv6", "udp", None), ("ipv4", "tcp", None), ("ipv6", "tcp", None),
         ("ipv4", "udp", 42)]


@pytest.mark.parametrize("l3,proto,vlan", KINDS)
@pytest.mark.parametrize("payload", [0, 1, 33, 1400])
def test_generator_stamps_exactly_like_the_c_stamper(l3, proto, vlan, payload):
    """No network: one test run of the generator program equals check.stamp_frame (the C stamper)."""
    t = fu.frame(stream=3, seq=5, l3=l3, proto=proto, payload=payload, vlan=vlan)
    co = csum_off(t, proto)
    for sid, seq in ((9, 0), (65535, 2 ** 64 - 1), (1, 0x0123456789ABCDEF), (7, 1000)):
        tm = check.prepare_templates([t], [co])
        (g,) = _plans(tm, [t], sid)
        try:
            g.start(seq)
            verdict, out = g.program.test_run(g.frame)
            assert g.frames() == 1
            assert g.slot.lookup(0) == (seq + 1) % 2 ** 64  # the next seq, wrapping
        finally:
            g.close()
        assert verdict == 3  # XDP_TX
        assert out == check.stamp_frame(t, sid, seq, co)


def _collect(cap, total, timeout=10.0):
    """Every incoming stamped frame's bytes, until ``total`` or ``timeout``."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < total and time.monotonic() < deadline:
        for p in cap.recv(4096, timeout=0.2):
            s = stamp.read(p.data)
            if s is not None:
                out.append(bytes(p.data))
    return out


def _untag(f):
    """veth strips 802.1Q tags on receive (FIELD-NOTES): compare the sent frame without its tag."""
    if (f[12] << 8 | f[13]) == 0x8100:
        return f[:12] + f[16:]
    return f


@pytest.mark.parametrize("l3,proto,vlan", KINDS)
@pytest.mark.parametrize("size", [64, 1514])
def test_send_stream_is_byte_identical_to_injector(pair, l3, proto, vlan, size):
    a, b = pair
    if vlan is not None:
        size += 4
    t, co = template(size, l3, proto, vlan)
    n = 2000
    with builtin("pass") as ppass, xdp.attach(b.ifname, ppass, netns=b.netns):
        with Capture(b.ifname, netns=b.netns, block_size=1 << 22, block_count=8) as cap:
            with Injector(a.ifname, netns=a.netns) as tx:
                assert tx.send_stream([t], 11, 0, n, csum_offsets=[co]) == n
            ref = _collect(cap, n)
            with XdpInjector(a.ifname, netns=a.netns) as gen:
                assert gen.send_stream([t], 12, 0, n, csum_offsets=[co]) == n
            live = _collect(cap, n)
    assert len(ref) == n and len(live) == n
    chk = SeqChecker({12: n})
    for f in live:
        chk.feed_bytes(f)
    assert chk.counts(12) == (n, n, 0, 0, 0, 0) and chk.unexpected == 0, chk.as_dict()
    # the same frames as the TX ring's, once the stream id is the same (the stamper writes it too)
    expect = sorted(_untag(check.stamp_frame(t, 12, seq, co)) for seq in range(n))
    assert sorted(ref) == sorted(_untag(check.stamp_frame(t, 11, seq, co)) for seq in range(n))
    assert sorted(live) == expect
    assert [stamp.read(f).seq for f in live] == list(range(n))  # one template: in order


def test_send_stream_cycles_templates_frame_k_is_template_k_mod_n(pair):
    a, b = pair
    ts = [template(s, l3, p) for s, (l3, p) in zip((64, 300, 1514), (("ipv4", "udp"), ("ipv6", "tcp"),
                                                                    ("ipv4", "tcp")))]
    templates, offs = [x[0] for x in ts], [x[1] for x in ts]
    n = 3001
    with builtin("pass") as ppass, xdp.attach(b.ifname, ppass, netns=b.netns):
        with Capture(b.ifname, netns=b.netns, block_size=1 << 22, block_count=8) as cap:
            with XdpInjector(a.ifname, netns=a.netns) as gen:
                assert gen.send_stream(templates, 4, 100, n, csum_offsets=offs) == n
            live = _collect(cap, n)
    by_seq = {stamp.read(f).seq: f for f in live}
    assert len(live) == n and sorted(by_seq) == list(range(100, 100 + n))
    for seq, f in by_seq.items():
        k = seq - 100
        assert f == check.stamp_frame(templates[k % 3], 4, seq, offs[k % 3])


def test_send_returns_count_and_the_receiver_counts_that_many(pair):
    a, b = pair
    frame = fu.frame(stream=2, seq=0)
    n = 100_000
    with builtin("pass") as ppass, xdp.attach(b.ifname, ppass, netns=b.netns) as att:
        with XdpInjector(a.ifname, netns=a.netns, batch_size=64) as gen:
            assert gen.send(frame, count=n) == n
            assert gen.sent_frames == n
        assert att.counters()["pass"]["packets"] == n


def test_timeout_bounds_a_long_send(pair):
    a, b = pair
    with builtin("drop") as pdrop, xdp.attach(b.ifname, pdrop, netns=b.netns) as att:
        with XdpInjector(a.ifname, netns=a.netns) as gen:
            t0 = time.monotonic()
            sent = gen.send(fu.frame(), count=50_000_000, timeout=0.3)
            took = time.monotonic() - t0
            t, co = template(64)
            t0 = time.monotonic()
            sent2 = gen.send_stream([t], 1, 0, 50_000_000, csum_offsets=[co], timeout=0.3)
            took2 = time.monotonic() - t0
        dropped = att.counters()["drop"]["packets"]
    assert 0 < sent < 50_000_000 and took < 0.6
    assert 0 < sent2 < 50_000_000 and took2 < 0.6
    assert dropped == sent + sent2


def test_rate_pps_paces_within_ten_percent(pair):
    """50 kpps for 25 000 frames, judged on the receiver's timestamps (the schedule itself, not the
    program load and the kernel's per-call teardown around it): the generator sends a 50 ms slice
    (2 500 frames) per step on schedule, so the first frame of the last slice is due 0.45 s after the
    first frame, and the last frames arrive within a burst after it."""
    a, b = pair
    t, co = template(64)
    n, rate, slice_frames = 25_000, 50_000, 2_500
    with builtin("pass") as ppass, xdp.attach(b.ifname, ppass, netns=b.netns):
        # read after the send: the ring holds every 50 ms burst in a block of its own (64 blocks for 10 bursts)
        with Capture(b.ifname, netns=b.netns, block_size=1 << 20, block_count=64) as cap:
            with XdpInjector(a.ifname, netns=a.netns) as gen:
                assert gen.send_stream([t], 1, 0, n, rate_pps=rate, csum_offsets=[co]) == n
            seen = {}
            deadline = time.monotonic() + 5
            while len(seen) < n and time.monotonic() < deadline:
                for p in cap.recv(n, timeout=0.2):
                    s = stamp.read(p.data)
                    if s is not None and s.stream_id == 1:
                        seen[s.seq] = p.timestamp_ns
    assert len(seen) == n
    span = (seen[n - slice_frames] - seen[0]) / 1e9   # first frame of the last slice vs the first frame
    expected = (n - slice_frames) / rate
    assert 0.9 * expected <= span <= 1.1 * expected, (span, expected)
    assert (seen[n - 1] - seen[0]) / 1e9 >= 0.9 * expected   # and no slice went early


def test_veth_peer_without_native_xdp_is_refused_with_the_remedy(pair):
    a, b = pair
    with pytest.raises(VethPeerError, match="peer runs no native XDP program.*builtin\\('pass'\\)"):
        XdpInjector(a.ifname, netns=a.netns)
    # a generic-mode program on the peer does not receive XDP_TX'd frames either (seen: 0 of 1000 arrive)
    with builtin("pass") as ppass, xdp.attach(b.ifname, ppass, netns=b.netns, mode="generic"):
        with pytest.raises(VethPeerError, match="generic"):
            XdpInjector(a.ifname, netns=a.netns)
        with XdpInjector(a.ifname, netns=a.netns, check_peer=False) as gen:  # the check can be turned off
            assert gen.send(fu.frame(), count=10) == 10


def test_missing_interface_is_refused(pair):
    a, _ = pair
    with pytest.raises(InterfaceNotFoundError, match="nope0"):
        XdpInjector("nope0", netns=a.netns)


def test_frames_beyond_the_mtu_and_the_page_are_refused(pair):
    a, b = pair
    with builtin("pass") as ppass, xdp.attach(b.ifname, ppass, netns=b.netns):
        with XdpInjector(a.ifname, netns=a.netns) as gen:
            t, co = template(1515)
            with pytest.raises(FrameTooLargeError, match="MTU 1500") as ei:
                gen.send_stream([t], 1, 0, 10, csum_offsets=[co])
            assert ei.value.limit == "mtu"
            # a tagged frame may be 4 B longer
            tv, cov = template(1518, vlan=42)
            assert gen.send_stream([tv], 1, 0, 10, csum_offsets=[cov]) == 10
            with pytest.raises(FrameTooLargeError, match="MTU 1500"):
                gen.send(fu.frame(payload=1500), count=1)
        with a.netns.iproute() as ipr:
            ipr.link("set", index=a.ifindex, mtu=9000)
        with XdpInjector(a.ifname, netns=a.netns) as gen:
            probe = fu.frame(payload=0)
            assert gen.send(fu.frame(payload=max_live_frame() - len(probe)), count=10) == 10  # the largest the kernel takes
            big = fu.frame(payload=max_live_frame() - len(probe) + 1)
            with pytest.raises(FrameTooLargeError, match="one page") as ei:
                gen.send(big, count=1)
            assert ei.value.limit == "page"


def test_bad_arguments_name_the_field(pair):
    a, b = pair
    from netring import ConfigurationError
    with pytest.raises(ConfigurationError, match="batch_size"):
        XdpInjector(a.ifname, netns=a.netns, batch_size=257)
    with builtin("pass") as ppass, xdp.attach(b.ifname, ppass, netns=b.netns):
        with XdpInjector(a.ifname, netns=a.netns) as gen:
            t, co = template(64)
            with pytest.raises(ConfigurationError, match="stream_id"):
                gen.send_stream([t], 65536, 0, 1, csum_offsets=[co])
            with pytest.raises(ConfigurationError, match="no valid stamp"):
                gen.send_stream([bytes(64)], 1, 0, 1)
            with pytest.raises(ConfigurationError, match="rate_pps"):
                gen.send_stream([t], 1, 0, 1, rate_pps=0)
        gen.close()
        with pytest.raises(Exception, match="closed"):
            gen.send(t)


def test_a_kernel_without_live_frames_is_refused_with_the_remedy(pair, monkeypatch):
    from netring import UnsupportedError, xdp_inject
    a, _ = pair
    assert xdp_inject.live_frames_supported()  # this machine: 6.18
    monkeypatch.setattr(xdp_inject, "_LIVE", [False, 0])
    with pytest.raises(UnsupportedError, match="5.18.*netring.Injector"):
        XdpInjector(a.ifname, netns=a.netns)


def test_ctrl_c_stops_a_long_send_promptly(pair):
    import os
    import signal
    a, b = pair
    with builtin("drop") as pdrop, xdp.attach(b.ifname, pdrop, netns=b.netns) as att:
        with XdpInjector(a.ifname, netns=a.netns) as gen:
            timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
            t0 = time.monotonic()
            timer.start()
            try:
                with pytest.raises(KeyboardInterrupt):
                    gen.send(fu.frame(), count=500_000_000, timeout=5.0)  # the timeout bounds it if no signal came
            finally:
                timer.cancel()
            took = time.monotonic() - t0
            # the kernel run itself ended (it ran in this thread, which took the signal): nothing more arrives
            before = att.counters()["drop"]["packets"]
            time.sleep(0.3)
            assert att.counters()["drop"]["packets"] == before > 0
            # and the injector still works (the interrupted generator was unloaded, a fresh one counts from 0)
            assert gen.send(fu.frame(), count=1000) == 1000
            assert att.counters()["drop"]["packets"] == before + 1000
    assert took < 0.8


def _prog_ids(gen):
    return sorted(g.program.id for g in gen._gens.values())


PACE = 2500  # frames/s: the generator sends 50 ms slices, 125 frames each


def test_generators_stay_loaded_across_sends_and_close_unloads_them(pair):
    """The engine's repeated send_stream calls must not assemble and verify again; seqs go on exactly.
    Paced (bursts of ~125 frames): an unpaced burst of 500 overflowed the receiving veth's 256-entry XDP
    ring while the machine was busy (326 of 500 lost), which is not what this test is about."""
    from netring import NetringError
    from netring.bpf.objects import program_from_id
    a, b = pair
    t, co = template(64)
    t2, co2 = template(100, "ipv6", "tcp")
    with builtin("pass") as ppass, xdp.attach(b.ifname, ppass, netns=b.netns):
        # read at the end: ~1.4 s of paced frames must fit, a block retiring every 100 ms at most
        with Capture(b.ifname, netns=b.netns, block_size=1 << 20, block_count=64, block_timeout_ms=100) as cap:
            gen = XdpInjector(a.ifname, netns=a.netns)
            with gen:
                assert gen.send_stream([t, t2], 5, 0, 1000, csum_offsets=[co, co2], rate_pps=PACE) == 1000
                ids = _prog_ids(gen)
                assert len(ids) == 2
                assert gen.send_stream([t, t2], 5, 1000, 1000, csum_offsets=[co, co2], rate_pps=PACE) == 1000
                assert _prog_ids(gen) == ids  # the same programs, not reloaded
                # a repeated template: its first place reuses t's program (same stride), the second needs its own
                assert gen.send_stream([t, t], 5, 2000, 1000, csum_offsets=[co, co], rate_pps=PACE) == 1000
                assert len(_prog_ids(gen)) == 3
                assert gen.send_stream([t], 6, 0, 500, csum_offsets=[co], rate_pps=PACE) == 500  # another stream id: another program
                assert len(_prog_ids(gen)) == 4
                live = _collect(cap, 3500)
                all_ids = _prog_ids(gen)
            for pid in all_ids:  # close() unloaded them all
                with pytest.raises(NetringError):
                    program_from_id(pid).close()
    by = {}
    for f in live:
        s = stamp.read(f)
        by.setdefault(s.stream_id, []).append(s.seq)
        ts = [t, t2] if s.stream_id == 5 and s.seq < 2000 else [t, t]
        tt, oo = ts[s.seq % 2], (co if ts[s.seq % 2] is t else co2)
        assert f == check.stamp_frame(tt, s.stream_id, s.seq, oo)
    assert sorted(by[5]) == list(range(3000)) and sorted(by[6]) == list(range(500))


def test_close_during_a_send_leaves_the_release_to_that_send(pair):
    """close() from another thread while a send runs: the send keeps a valid namespace fd to its end
    (its kernel calls enter the namespace by that fd), then unloads the programs and closes the handle;
    a send started after close() is refused."""
    from netring import NetringError
    from netring.bpf.objects import program_from_id
    a, b = pair
    t, co = template(64)
    with builtin("drop") as pdrop, xdp.attach(b.ifname, pdrop, netns=b.netns):
        gen = XdpInjector(a.ifname, netns=a.netns)
        out = {}
        tx = threading.Thread(target=lambda: out.setdefault("sent", gen.send_stream(
            [t], 1, 0, 200_000_000, csum_offsets=[co], timeout=1.5)))
        tx.start()
        time.sleep(0.3)
        ids = _prog_ids(gen)
        gen.close()                      # the send holds the lock: it is left the release
        assert gen.closed and ids and _prog_ids(gen) == ids
        tx.join()
        assert out["sent"] > 0
        assert not gen._gens             # released by the send when it returned
        assert gen._ns.closed
        for pid in ids:
            with pytest.raises(NetringError):
                program_from_id(pid).close()
        with pytest.raises(NetringError, match="closed"):
            gen.send_stream([t], 1, 0, 10, csum_offsets=[co])


def test_a_send_is_one_kernel_run_until_its_rate_is_known(pair, monkeypatch):
    """The ~30 ms fixed cost of a PROG_RUN call is paid once per ~1 s of frames, not per 0.2 s."""
    from netring import xdp_inject
    a, b = pair
    t, co = template(64)
    runs = []
    with builtin("drop") as pdrop, xdp.attach(b.ifname, pdrop, netns=b.netns):
        with XdpInjector(a.ifname, netns=a.netns) as gen:
            real = gen._run_chunk
            monkeypatch.setattr(gen, "_run_chunk", lambda *args: runs.append(args[-1]) or real(*args))
            assert gen.send_stream([t], 1, 0, 500_000, csum_offsets=[co], timeout=30) == 500_000
            assert runs == [500_000]  # fewer than _FIRST_RATE * _CHUNK_S frames: one run
            runs.clear()
            gen._rate = 2e6  # as if measured: a run plans _CHUNK_S of frames at that rate
            assert gen.send_stream([t], 1, 0, 5_000_000, csum_offsets=[co]) == 5_000_000
            assert runs[0] == int(2e6 * xdp_inject._CHUNK_S) and sum(runs) == 5_000_000 and len(runs) <= 3
