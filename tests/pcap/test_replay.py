"""Replaying a trace as a scenario stream: frame: {pcap: ...} re-stamps each frame (checksums fixed),
cycles the trace when count exceeds it, rate: pcap takes the trace's rate, and a frame without room
for the stamp is a located error naming its index (stamp: false and the trace's own timing: tests/scenario/test_replay*.py)."""
import random
import textwrap

import pytest

from netring import pcap, stamp
from netring_testkit import frames, replay, runner, scenario as sc

MAC = {"dst": "02:00:00:bb:00:02", "src": "02:00:00:bb:00:01"}
T0 = 1_700_000_000_000_000_000


def trace_frames(n=50, seed=5):
    """``n`` unstamped frames of mixed kinds and sizes: IPv4/IPv6, UDP/TCP, random payloads (test ranges)."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        payload = rnd.randbytes(rnd.randint(24, 900))
        l3 = {"ipv6": {"src": "2001:2::1", "dst": "2001:2::2"}} if i % 3 == 0 else \
            {"ipv4": {"src": "198.18.0.1", "dst": "198.18.0.2"}}
        l4 = {"tcp": {"sport": 4000 + i, "dport": 80, "flags": "PA"}} if i % 4 == 1 else \
            {"udp": {"sport": 5000 + i, "dport": 9}}
        out.append(frames.build(eth=MAC, payload=payload, **l3, **l4))
    return out


def write_trace(path, frs, gap_ns=1_000_000):
    pcap.write_pcap(path, [(T0 + i * gap_ns, f) for i, f in enumerate(frs)], nanosecond=True)
    return path


def scenario_text(trace, count=5000, rate="max", extra=""):
    return textwrap.dedent("""\
        scenarios:
          - name: replay
            topology: {nodes: [tx, rx], links: [{endpoints: [tx:eth0, rx:eth0]}]}
            traffic:
              - {name: trace, from: tx:eth0, to: rx:eth0, count: %d, rate: %s,
                 frame: {pcap: %s%s}}
            capture: [{on: rx:eth0, block_size: 1048576, block_count: 16}]
            expect: {delivered: all, order: strict, payload: intact}
            timeout: 15s
            quiet: 300ms
        """) % (count, rate, trace, extra)


def test_prepare_stamps_the_l3_end_and_fixes_the_checksum():
    for i, f in enumerate(trace_frames(12)):
        t, off = replay.prepare(f, 9, i)
        assert len(t) == len(f) and t[:stamp.locate(t)] == f[:stamp.locate(t)][:off] + t[off:stamp.locate(t)]
        s = stamp.read(t)
        assert (s.stream_id, s.seq, s.ok) == (9, 0, True)
        p = frames.parse(t)
        l4 = "udp" if "udp" in p else "tcp"
        assert p[l4]["checksum_ok"], (i, p)
        # everything before the stamp but the checksum is the trace's
        assert t[:off] == f[:off] and t[off + 2:s.offset] == f[off + 2:s.offset]


def test_a_frame_without_room_for_the_stamp_is_a_located_error(tmp_path):
    frs = trace_frames(6)
    frs[3] = frames.build(eth=MAC, ipv4={}, udp={"dport": 9}, payload=b"tiny")  # 4 B after the UDP header
    write_trace(tmp_path / "short.pcap", frs)
    (tmp_path / "s.yaml").write_text(scenario_text("short.pcap"))
    with pytest.raises(sc.ScenarioSpecError) as ei:
        sc.load(str(tmp_path / "s.yaml"))
    msg = str(ei.value)
    assert "s.yaml:6:18: scenarios[0].traffic[0].frame.pcap: short.pcap: frame 3" in msg
    assert "frame 3 (46 B) has no room for the 20 B stamp" in msg


@pytest.mark.parametrize("frame_extra, field, message", [
    (", stamp: false, eth: {}", "frame.eth", "a replayed frame takes only pcap and stamp"),
    (", size: 64", "frame.size", "a replayed frame takes only pcap and stamp"),
])
def test_replay_options_are_checked(tmp_path, frame_extra, field, message):
    write_trace(tmp_path / "t.pcap", trace_frames(3))
    (tmp_path / "s.yaml").write_text(scenario_text("t.pcap", extra=frame_extra))
    with pytest.raises(sc.ScenarioSpecError) as ei:
        sc.load(str(tmp_path / "s.yaml"))
    assert "traffic[0].%s" % field in str(ei.value) and message in str(ei.value)


def test_missing_trace_and_rate_pcap(tmp_path):
    (tmp_path / "s.yaml").write_text(scenario_text("nowhere.pcapng"))
    with pytest.raises(sc.ScenarioSpecError, match="trace file .*nowhere.pcapng does not exist"):
        sc.load(str(tmp_path / "s.yaml"))
    write_trace(tmp_path / "t.pcap", trace_frames(11), gap_ns=250_000)  # 10 gaps of 250 us: 4000 pps
    (tmp_path / "r.yaml").write_text(scenario_text("t.pcap", rate="pcap"))
    [s] = sc.load(str(tmp_path / "r.yaml"))
    assert s.streams[0].rate_pps == 4000
    assert s.streams[0].frame == {"pcap": str(tmp_path / "t.pcap"), "stamp": True}


@pytest.mark.privileged
def test_a_50_frame_trace_cycled_to_5000_frames_arrives_intact(tmp_path):
    from netring_testkit.plugin import require

    require()
    frs = trace_frames(50)
    write_trace(tmp_path / "trace.pcap", frs)
    (tmp_path / "s.yaml").write_text(scenario_text("trace.pcap", count=5000, rate="50kpps"))
    [s] = sc.load(str(tmp_path / "s.yaml"))
    r = runner.run(s)
    assert r.status == "passed", r.render()
    [st] = r.streams
    assert (st.expected, st.sent, st.delivered, st.lost, st.duplicated, st.reordered, st.corrupted) == \
        (5000, 5000, 5000, 0, 0, 0, 0)
    assert r.unexpected["rx:eth0"] == 0
    # what was sent is the trace, re-stamped: frame seq uses trace frame seq % 50
    tmpl, _ = replay.templates(s.streams[0])
    assert [len(t) for t in tmpl] == [len(f) for f in frs]
