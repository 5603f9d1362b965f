"""Replaying a trace untouched (``frame: {pcap: ..., stamp: false}``): the frames leave the TX ring byte
for byte and the capture counts them by exact content (netring.content.ContentChecker), beside stamped
streams and unexpected frames, which keep their usual rules."""
import random
import textwrap
import time

import pytest

from netring import pcap
from netring.check import SeqChecker
from netring.content import ContentChecker
from netring.errors import ConfigurationError
from netring_testkit import frames, replay, runner, scenario as sc, senders

MAC = {"dst": "02:00:00:cc:00:02", "src": "02:00:00:cc:00:01"}
T0 = 1_700_000_000_000_000_000


def trace_frames(n=50, seed=11, tiny=False):
    """``n`` distinct unstamped frames of mixed kinds and sizes (test ranges); ``tiny``: some too short
    for a stamp (fine untouched)."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        payload = rnd.randbytes(rnd.randint(0 if tiny else 24, 600))
        l3 = {"ipv6": {"src": "2001:2::1", "dst": "2001:2::2"}} if i % 3 == 0 else \
            {"ipv4": {"src": "198.18.0.1", "dst": "198.18.0.2"}}
        l4 = {"tcp": {"sport": 4000 + i, "dport": 80, "flags": "PA"}} if i % 4 == 1 else \
            {"udp": {"sport": 5000 + i, "dport": 9}}
        out.append(frames.build(eth=MAC, payload=payload, **l3, **l4))
    assert len(set(out)) == n
    return out


def write_trace(path, frs, gap_ns=1_000_000):
    pcap.write_pcap(str(path), [(T0 + i * gap_ns, f) for i, f in enumerate(frs)], nanosecond=True)
    return path


def scenario_text(trace, count=5000, rate="50kpps", via=None, link="", capture="", more_traffic="", expect=""):
    return textwrap.dedent("""\
        scenarios:
          - name: untouched
            topology: {nodes: [tx, rx], links: [{endpoints: [tx:eth0, rx:eth0]%s}]}
            traffic:
              - {name: trace, from: tx:eth0, to: rx:eth0, count: %d, rate: %s,%s
                 frame: {pcap: %s, stamp: false}}%s
            capture: [{on: rx:eth0%s}]
            expect: {delivered: all, order: strict, payload: intact, unexpected: 0%s}
            timeout: 15s
            quiet: 300ms
        """) % (link, count, rate, " via: %s," % via if via else "", trace, more_traffic, capture, expect)


# -------------------------------------------------------------------------------------------
# the checker (no privileges)
# -------------------------------------------------------------------------------------------
def test_counts_by_content_delivered_lost_duplicated_and_cycles():
    fr = trace_frames(10)
    c = ContentChecker({3: (fr, 25)})              # 2.5 cycles: frames 0..4 three times, 5..9 twice
    for i in [0, 1, 2, 3, 4, 5, 6, 9, 7] + list(range(10, 25)):   # send 8 lost, send 7 overtaken by 9
        c.feed_bytes(fr[i % 10])
    c.feed_bytes(fr[2])                            # a 4th copy of frame 2: one more than sent
    assert tuple(c.counts(3)) == (25, 24, 1, 1, 1, 0)
    assert c.frames == 25 and c.matched == 25 and c.unexpected == 0


def test_order_distinct_contents_is_arrival_order():
    fr = trace_frames(8)
    c = ContentChecker({0: (fr, 8)})
    for i in (0, 1, 3, 2, 4, 5, 7, 6):
        c.feed_bytes(fr[i])
    assert tuple(c.counts(0)) == (8, 8, 0, 0, 2, 0)


def test_order_of_a_cycled_trace_survives_a_lost_copy_and_a_held_back_frame():
    fr = trace_frames(10)
    c = ContentChecker({0: (fr, 40)})
    sent = [fr[i % 10] for i in range(40)]
    arrival = [f for i, f in enumerate(sent) if i != 13]        # copy 1 of frame 3 lost
    arrival[25], arrival[26] = arrival[26], arrival[25]         # one frame held behind the next
    for f in arrival:
        c.feed_bytes(f)
    # the later copies of frame 3 are matched to their own sends (no cascade of reorders)
    assert tuple(c.counts(0)) == (40, 39, 1, 0, 1, 0)


def test_a_trace_that_repeats_a_frame_is_matched_to_the_nearest_send():
    a, b, *rest = trace_frames(8)
    trace = [a, b, a] + rest[:5]                   # a at positions 0 and 2
    c = ContentChecker({0: (trace, 16)})
    for i in range(16):
        c.feed_bytes(trace[i % 8])
    assert tuple(c.counts(0)) == (16, 16, 0, 0, 0, 0)
    c = ContentChecker({0: (trace, 8)})
    for f in [a, a, b] + rest[:5]:                 # b overtaken by the second a
        c.feed_bytes(f)
    assert tuple(c.counts(0)) == (8, 8, 0, 0, 1, 0)
    c = ContentChecker({0: (trace, 16)})
    for f in [a, b, a, a] + rest[:5]:              # a duplicate of send 2 is not taken for the next cycle's send 8
        c.feed_bytes(f)
    assert tuple(c.counts(0)) == (16, 8, 8, 1, 0, 0)


def test_other_frames_go_to_the_stamp_checker_which_counts_or_calls_them_unexpected():
    fr = trace_frames(5)
    seq = SeqChecker({0: 3, 1: 5}, keep_unexpected=4)
    c = ContentChecker({1: (fr, 5)}, fallback=seq)
    for i in range(3):
        c.feed_bytes(frames.build(ipv4={}, udp={}, size=80, stamp=(0, i)))
    for f in fr:
        c.feed_bytes(f)
    changed = bytearray(fr[2])
    changed[-1] ^= 1
    c.feed_bytes(bytes(changed))                   # one bit off: no trace frame, so unexpected (not corrupt)
    assert tuple(c.counts(0)) == (3, 3, 0, 0, 0, 0)    # the stamped stream, from the fallback
    assert tuple(c.counts(1)) == (5, 5, 0, 0, 0, 0)
    assert c.unexpected == 1 and c.unexpected_frames == [bytes(changed)]
    assert c.done and c.counts_by_content(1) and not c.counts_by_content(0)


def test_two_streams_may_not_send_the_same_frame():
    fr = trace_frames(4)
    with pytest.raises(ConfigurationError, match=r"streams 1 and 2 both send the same \d+ B frame \(frame 2 of stream 2\)"):
        ContentChecker({1: (fr[:3], 3), 2: ([fr[3], fr[3], fr[0]], 3)})
    with pytest.raises(ConfigurationError, match="frames must be a non-empty list"):
        ContentChecker({1: ([], 3)})


def test_100k_distinct_frames_are_counted_quickly():
    """100 000 distinct frames: building the table and feeding every frame (one Python call per frame
    here; a capture feeds whole blocks in one C call) take well under a few seconds."""
    big = [frames.build(eth=MAC, ipv4={}, udp={"sport": 1 + i % 60000, "dport": 9}, size=64 + i // 60000)
           for i in range(100_000)]
    t0 = time.perf_counter()
    c = ContentChecker({0: (big, 100_000)})
    for f in big:
        c.feed_bytes(f)
    took = time.perf_counter() - t0
    assert tuple(c.counts(0)) == (100_000, 100_000, 0, 0, 0, 0)
    print("100k distinct frames: table + feed %.3f s" % took)


# -------------------------------------------------------------------------------------------
# loading (no privileges)
# -------------------------------------------------------------------------------------------
def test_stamp_false_loads_and_auto_picks_the_ring(tmp_path):
    write_trace(tmp_path / "t.pcap", trace_frames(6, tiny=True))   # frames too short for a stamp are fine
    (tmp_path / "s.yaml").write_text(scenario_text("t.pcap"))
    [s] = sc.load(str(tmp_path / "s.yaml"))
    st = s.streams[0]
    assert st.by_content and st.frame == {"pcap": str(tmp_path / "t.pcap"), "stamp": False}
    ch = senders.choose(st, "strict", None, {}, (True, 3408))
    assert ch.via == "ring" and "stamp: false" in ch.reason
    tmpl, offs = replay.templates(st)
    assert offs is None and tmpl == [f.data for f in pcap.read(str(tmp_path / "t.pcap"))]


@pytest.mark.parametrize("via", ["xdp", "afxdp"])
def test_stamp_false_via_xdp_or_afxdp_is_a_located_error(tmp_path, via):
    write_trace(tmp_path / "t.pcap", trace_frames(3))
    (tmp_path / "s.yaml").write_text(scenario_text("t.pcap", via=via))
    with pytest.raises(sc.ScenarioSpecError) as ei:
        sc.load(str(tmp_path / "s.yaml"))
    msg = str(ei.value)
    assert "s.yaml:5:78: scenarios[0].traffic[0].via: via: %s cannot send a trace untouched" % via in msg


def test_stamp_false_counted_by_an_afxdp_capture_is_a_located_error(tmp_path):
    write_trace(tmp_path / "t.pcap", trace_frames(3))
    (tmp_path / "s.yaml").write_text(scenario_text("t.pcap", capture=", via: afxdp"))
    with pytest.raises(sc.ScenarioSpecError, match=r"scenarios\[0\]\.capture\[0\]\.via: stream trace is counted by "
                                                   r"exact content .* capture rx:eth0 via afpacket"):
        sc.load(str(tmp_path / "s.yaml"))


def test_two_untouched_streams_sharing_a_frame_at_one_capture_is_a_located_error(tmp_path):
    fr = trace_frames(5)
    write_trace(tmp_path / "a.pcap", fr[:3])
    write_trace(tmp_path / "b.pcap", [fr[4], fr[2]])
    other = "\n      - {name: again, from: tx:eth0, to: rx:eth0, count: 10, frame: {pcap: b.pcap, stamp: false}}"
    (tmp_path / "s.yaml").write_text(scenario_text("a.pcap", more_traffic=other))
    with pytest.raises(sc.ScenarioSpecError, match=r"traffic\[1\]\.frame\.pcap: frame 1 of this trace is also a frame "
                                                   r"of stream trace, and both are counted by content at rx:eth0"):
        sc.load(str(tmp_path / "s.yaml"))


# -------------------------------------------------------------------------------------------
# runs
# -------------------------------------------------------------------------------------------
def _require():
    from netring_testkit.plugin import require

    require()


@pytest.mark.privileged
def test_a_50_frame_trace_untouched_cycled_to_5000_is_counted_by_content(tmp_path):
    _require()
    frs = trace_frames(50)
    frs[7] = frs[3]    # the trace holds one frame twice
    write_trace(tmp_path / "trace.pcap", frs)
    (tmp_path / "s.yaml").write_text(scenario_text("trace.pcap"))
    [s] = sc.load(str(tmp_path / "s.yaml"))
    r = runner.run(s)
    assert r.status == "passed", r.render()
    [st] = r.streams
    assert (st.expected, st.sent, st.delivered, st.lost, st.duplicated, st.reordered, st.corrupted) == \
        (5000, 5000, 5000, 0, 0, 0, 0)
    assert (st.via, st.counted_by) == ("ring", "content") and r.unexpected["rx:eth0"] == 0
    assert r.as_dict()["streams"][0]["counted_by"] == "content"
    assert "counted by exact content (stamp: false; a changed frame is unexpected, not corrupt): trace" in r.render()


@pytest.mark.privileged
def test_untouched_and_stamped_streams_share_a_capture(tmp_path):
    _require()
    write_trace(tmp_path / "trace.pcap", trace_frames(20))
    stamped = "\n      - {name: gen, from: tx:eth0, to: rx:eth0, count: 3000, rate: 50kpps}"
    (tmp_path / "s.yaml").write_text(scenario_text("trace.pcap", count=2000, more_traffic=stamped))
    [s] = sc.load(str(tmp_path / "s.yaml"))
    r = runner.run(s)
    assert r.status == "passed", r.render()
    got = {st.name: (st.delivered, st.lost, st.duplicated, st.counted_by) for st in r.streams}
    assert got == {"trace": (2000, 0, 0, "content"), "gen": (3000, 0, 0, "stamp")}
    assert r.unexpected["rx:eth0"] == 0


@pytest.mark.privileged
def test_loss_and_duplicates_of_an_impaired_link_are_counted_by_content(tmp_path):
    """The bridge of an impaired link drops and duplicates frames whatever their content; the content
    checker's lost and duplicated equal the bridge's own counters."""
    _require()
    write_trace(tmp_path / "trace.pcap", trace_frames(50))
    (tmp_path / "s.yaml").write_text(scenario_text("trace.pcap", count=4000,
                                                   link=", impair: {loss: 3%, duplicate: 2%, seed: 9}"))
    [s] = sc.load(str(tmp_path / "s.yaml"))
    r = runner.run(s)
    assert r.status == "failed"
    [st] = r.streams
    link = r.links["tx:eth0<->rx:eth0"]["a_to_b"]
    assert link["dropped"] > 0 and link["duplicated"] > 0
    assert (st.sent, st.lost, st.duplicated, st.reordered) == (4000, link["dropped"], link["duplicated"], 0)
    assert st.delivered == 4000 - link["dropped"]
    assert "stream trace: delivered %d at rx:eth0, expected all" % st.delivered in r.failures[0]


@pytest.mark.privileged
def test_a_vlan_tagged_trace_is_matched_with_the_tag_the_device_stripped(tmp_path):
    """veth takes the 802.1Q tag off on receive (TPACKET_V3 reports it beside the frame): the checker puts
    it back before the lookup, so tagged trace frames are counted, not called unexpected."""
    _require()
    eth = dict(MAC, vlan={"vid": 42, "pcp": 3})
    frs = [frames.build(eth=eth, ipv4={"src": "198.18.0.1", "dst": "198.18.0.2"}, udp={"sport": 6000 + i, "dport": 9},
                        payload=bytes([i]) * (30 + i)) for i in range(10)]
    assert all(f[12:14] == b"\x81\x00" for f in frs)
    write_trace(tmp_path / "vlan.pcap", frs)
    (tmp_path / "s.yaml").write_text(scenario_text("vlan.pcap", count=200))
    [s] = sc.load(str(tmp_path / "s.yaml"))
    r = runner.run(s)
    assert r.status == "passed", r.render()
    [st] = r.streams
    assert (st.delivered, st.lost, st.duplicated, st.reordered) == (200, 0, 0, 0)
    assert r.unexpected["rx:eth0"] == 0


def test_content_checker_fallback_is_read_only_and_huge_counts_are_refused():
    """The C checker holds a raw pointer into its fallback SeqChecker: replacing it (and letting the old
    one be collected) would leave C writing freed memory, so the attribute cannot be set. A count whose
    seen-bitmap would take more than 256 MiB is a typed error before anything is allocated."""
    from netring import ConfigurationError, SeqChecker
    from netring.content import ContentChecker
    fb = SeqChecker({1: 10})
    cc = ContentChecker({2: ([b"x" * 60], 5)}, fallback=fb)
    with pytest.raises(AttributeError):
        cc.fallback = None
    assert cc.fallback is fb
    with pytest.raises(ConfigurationError, match="MiB seen-bitmap"):
        ContentChecker({2: ([b"x" * 60], 2 ** 32 - 1)})
