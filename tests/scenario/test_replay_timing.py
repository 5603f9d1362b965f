"""``rate: pcap``: a replayed trace keeps its own timing — each frame at its offset from the first, a cycle
lasting the trace's span plus one average gap — bounded by the scenario's timeout."""
import statistics
import textwrap

import pytest

from netring import pcap, stamp
from netring_testkit import frames, replay, runner, scenario as sc

MAC = {"dst": "02:00:00:dd:00:02", "src": "02:00:00:dd:00:01"}
T0 = 1_700_000_000_000_000_000
MS = 1_000_000
GAPS_MS = (0, 1, 5)      # the synthetic trace's gaps, repeated


def trace(n=12, gaps_ms=GAPS_MS):
    """``n`` distinct UDP frames, frame ``i`` after a gap of ``gaps_ms[i % len]`` ms (frame 0 at T0)."""
    out, ts = [], T0
    for i in range(n):
        if i:
            ts += gaps_ms[(i - 1) % len(gaps_ms)] * MS
        out.append((ts, frames.build(eth=MAC, ipv4={"src": "198.18.1.1", "dst": "198.18.1.2"},
                                     udp={"sport": 7000 + i, "dport": 9}, payload=bytes(range(40)))))
    return out


def scenario_text(path, count, stamp_on=True, timeout="10s", via=None):
    return textwrap.dedent("""\
        scenarios:
          - name: timed
            topology: {nodes: [tx, rx], links: [{endpoints: [tx:eth0, rx:eth0]}]}
            traffic:
              - {name: trace, from: tx:eth0, to: rx:eth0, count: %d, rate: pcap,%s
                 frame: {pcap: %s, stamp: %s}}
            capture: [{on: rx:eth0}]
            expect: {delivered: all, order: strict, payload: intact, unexpected: 0}
            timeout: %s
            quiet: 200ms
        """) % (count, " via: %s," % via if via else "", path, "true" if stamp_on else "false", timeout)


# -------------------------------------------------------------------------------------------
# the schedule (no privileges)
# -------------------------------------------------------------------------------------------
def test_timing_keeps_each_offset_and_the_period_of_a_cycle():
    t = replay.Timing([ts for ts, _ in trace(7)])          # offsets 0 0 1 6 6 7 12 ms
    assert t.offsets == [o * MS for o in (0, 0, 1, 6, 6, 7, 12)]
    assert t.period_ns == 14 * MS                           # span 12 ms + the average gap 2 ms
    assert t.pps == 500
    assert [t.at(k) // MS for k in (0, 3, 6, 7, 8, 13, 14)] == [0, 6, 12, 14, 14, 26, 28]
    assert [t.due(ms * MS) for ms in (-1, 0, 1, 5, 6, 13, 14, 15)] == [0, 2, 3, 3, 5, 7, 9, 10]
    assert t.duration_s(8) == pytest.approx(0.014)


def test_timestamps_going_backwards_are_sent_at_once_after_the_frame_before():
    t = replay.Timing([T0, T0 + 5 * MS, T0 + 2 * MS, T0 + 9 * MS])
    assert t.offsets == [0, 5 * MS, 5 * MS, 9 * MS]
    with pytest.raises(ValueError):
        replay.Timing([T0, T0])


def test_rate_pcap_loads_the_schedule(tmp_path):
    pcap.write_pcap(str(tmp_path / "t.pcap"), trace(7), nanosecond=True)
    (tmp_path / "s.yaml").write_text(scenario_text("t.pcap", 20))
    [s] = sc.load(str(tmp_path / "s.yaml"))
    st = s.streams[0]
    assert st.rate_pps == 500 and st.timing.offsets[-1] == 12 * MS


def test_a_schedule_longer_than_the_timeout_is_a_located_error(tmp_path):
    pcap.write_pcap(str(tmp_path / "t.pcap"), trace(3, gaps_ms=(1, 3_600_000)), nanosecond=True)  # a 1-hour gap
    (tmp_path / "s.yaml").write_text(scenario_text("t.pcap", 3))
    with pytest.raises(sc.ScenarioSpecError) as ei:
        sc.load(str(tmp_path / "s.yaml"))
    assert ("s.yaml:5:61: scenarios[0].traffic[0].rate: rate: pcap replays the trace's own timing, which needs "
            "3600.001 s for 3 frames") in str(ei.value) and "timeout 10.000 s; raise timeout" in str(ei.value)
    (tmp_path / "s.yaml").write_text(scenario_text("t.pcap", 2))   # the first two frames: 1 ms
    assert sc.load(str(tmp_path / "s.yaml"))[0].streams[0].timing.duration_s(2) == pytest.approx(0.001)


def test_rate_pcap_via_xdp_is_a_located_error(tmp_path):
    pcap.write_pcap(str(tmp_path / "t.pcap"), trace(4), nanosecond=True)
    (tmp_path / "s.yaml").write_text(scenario_text("t.pcap", 4, via="xdp"))
    with pytest.raises(sc.ScenarioSpecError, match=r"traffic\[0\]\.via: via: xdp cannot keep a trace's own timing"):
        sc.load(str(tmp_path / "s.yaml"))


# -------------------------------------------------------------------------------------------
# runs
# -------------------------------------------------------------------------------------------
def _require():
    from netring_testkit.plugin import require

    require()


@pytest.mark.privileged
@pytest.mark.parametrize("stamp_on", [True, False], ids=["stamped", "untouched"])
def test_frames_arrive_on_the_traces_schedule(tmp_path, stamp_on):
    """Two cycles of a trace with 0/1/5 ms gaps: the arrival gaps follow the schedule (generous bounds:
    a correctness check of the schedule, not a timing benchmark)."""
    _require()
    tr = trace(12)
    pcap.write_pcap(str(tmp_path / "t.pcap"), tr, nanosecond=True)
    (tmp_path / "s.yaml").write_text(scenario_text("t.pcap", 24, stamp_on))
    [s] = sc.load(str(tmp_path / "s.yaml"))
    r = runner.run(s, artifacts_dir=str(tmp_path / "art"), all_frames=True)
    assert r.status == "passed", r.render()
    got = [(ts, f) for ts, f in r.arrived_samples["rx:eth0"] if len(f) == len(tr[0][1])]
    assert len(got) == 24
    if stamp_on:
        assert [stamp.read(f).seq for _, f in got] == list(range(24))
    else:
        assert [f for _, f in got] == [f for _, f in tr] * 2
    timing = s.streams[0].timing
    want = [timing.at(k) for k in range(24)]                 # ns from frame 0
    arr = [ts - got[0][0] for ts, _ in got]
    # Never early (a frame is sent once it is due), and never far behind its due time.
    late = [a - w for a, w in zip(arr, want)]
    assert min(late) > -2 * MS and max(late) < 50 * MS, late
    gaps = {g: [arr[k] - arr[k - 1] for k in range(1, 24) if want[k] - want[k - 1] == g * MS] for g in (0, 1, 5)}
    assert statistics.median(gaps[0]) < 0.5 * MS, gaps
    assert 0.5 * MS < statistics.median(gaps[1]) < 3 * MS, gaps
    assert 4 * MS < statistics.median(gaps[5]) < 8 * MS, gaps
    # the gap between cycles is the average gap (12 frames span 19 ms: 19/11 ms)
    assert want[12] - want[11] == 19 * MS // 11


@pytest.mark.privileged
def test_a_long_gap_is_bounded_by_the_timeout_and_the_verdict_says_so(tmp_path):
    _require()
    pcap.write_pcap(str(tmp_path / "t.pcap"), trace(3, gaps_ms=(1, 3_600_000)), nanosecond=True)
    (tmp_path / "s.yaml").write_text(scenario_text("t.pcap", 3, timeout="7300s"))
    [s] = sc.load(str(tmp_path / "s.yaml"))
    s.timeout = 1.5   # as if building the topology had eaten the rest: the run must still end at the deadline
    r = runner.run(s)
    assert r.status == "failed" and r.duration < 10
    [st] = r.streams
    assert (st.sent, st.delivered) == (2, 2)
    assert r.failures[0] == ("stream trace: only 2 of 3 frames were injected; rate: pcap replays the trace's own "
                             "timing, which needs 3600.001 s for 3 frames, and the scenario's timeout (1.5 s) ended "
                             "the run first")
