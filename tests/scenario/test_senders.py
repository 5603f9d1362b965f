"""Which sender a stream uses (``traffic[].via``), the veth peer rule, and the live-frames sender in the engine.

The first half needs no privileges (the choice is a pure function of the stream, its endpoints and
the kernel's facts, which the tests give); the second runs scenarios and the ``xdp`` fixture in
namespaces (root).
"""
import signal
import textwrap
import threading
import time

import pytest

from netring import SeqChecker
from netring.errors import ScenarioError
from netring_testkit import runner, scenario as sc, senders
from netring_testkit.scenario import ScenarioSpecError

LIVE = (True, 3408)   # what this kernel class reports: live frames, at most 3408 B


class Ep:
    """A stand-in for a topology Endpoint: name, kind and veth peer."""

    def __init__(self, name, kind="veth", peer=None):
        self.name, self.kind, self.peer = name, kind, peer


def pair():
    a, b = Ep("tx:eth0"), Ep("rx:eth0")
    a.peer, b.peer = b, a
    return a, b


def stream(via="auto", sizes=(64,), count=100000, where="s.yaml:7:9: scenarios[0].traffic[0].via"):
    return sc.Stream("main", 0, "tx:eth0", "rx:eth0", count, None, {"udp": {}}, list(sizes), via=via, where=where)


# -------------------------------------------------------------------------------------------
# choice (no privileges)
# -------------------------------------------------------------------------------------------
def test_auto_picks_xdp_and_says_why():
    a, _ = pair()
    ch = senders.choose(stream(), "strict", a, {}, LIVE)
    assert (ch.via, ch.receiver) == ("xdp", "rx:eth0")
    assert ch.reason == "xdp: live frames supported, peer pass attached on rx:eth0"
    ch = senders.choose(stream(), "strict", a, {"rx:eth0": "native"}, LIVE)
    assert (ch.via, ch.receiver) == ("xdp", None)
    assert ch.reason == "xdp: live frames supported, rx:eth0 runs an XDP program (native)"
    assert senders.choose(stream(sizes=(64, 512)), "any", a, {}, LIVE).via == "xdp"


@pytest.mark.parametrize("kw,order,programs,facts,reason", [
    (dict(sizes=(9014,)), "strict", {}, LIVE, "ring: frame 9014 B exceeds the live-frames limit 3408 B"),
    (dict(sizes=(64, 512, 1514)), "strict", {}, LIVE, "ring: 3 frame sizes with order: strict"),
    (dict(sizes=tuple(range(64, 64 + 17))), "any", {}, LIVE, "ring: 17 frame sizes"),
    ({}, "strict", {"rx:eth0": "generic"}, LIVE, "ring: rx:eth0 runs its XDP program in generic mode"),
    ({}, "strict", {}, (False, 0), "ring: this kernel"),
    (dict(count=20000), "strict", {}, LIVE, "ring: 20000 frames, fewer than the 32768"),
])
def test_auto_falls_back_to_the_ring_with_the_reason(kw, order, programs, facts, reason):
    a, _ = pair()
    ch = senders.choose(stream(**kw), order, a, programs, facts)
    assert ch.via == "ring" and ch.receiver is None
    assert ch.reason.startswith(reason), ch.reason


def test_auto_keeps_the_ring_for_a_stream_counted_by_an_afxdp_capture():
    a, _ = pair()
    ch = senders.choose(stream(), "strict", a, {"rx:eth0": "native"}, LIVE, capture_via="afxdp")
    assert ch.via == "ring" and ch.reason.startswith("ring: captured via afxdp")
    assert senders.choose(stream(via="xdp"), "strict", a, {"rx:eth0": "native"}, LIVE, capture_via="afxdp").via == "xdp"
    assert senders.choose(stream(via="afxdp"), "strict", a, {}, LIVE).reason == "afxdp: asked for (via: afxdp)"


def test_a_bridge_or_a_veth_without_its_peer_cannot_send_live_frames():
    br = Ep("sw:br0", kind="bridge")
    assert senders.choose(stream(), "strict", br, {}, LIVE).reason == \
        "ring: sw:br0 is a bridge, which cannot transmit XDP frames"
    lone = Ep("dut:eth1")   # e.g. an operator's veth whose other end is elsewhere
    assert senders.choose(stream(), "strict", lone, {}, LIVE).reason.startswith(
        "ring: the veth peer of dut:eth1 is not an endpoint of this topology")


@pytest.mark.parametrize("kw,order,programs,facts,cause,remedy", [
    (dict(sizes=(4000,)), "strict", {}, LIVE, "frame 4000 B exceeds the live-frames limit 3408 B",
     "send frames of at most 3408 B, or use via: ring"),
    (dict(sizes=(64, 128)), "strict", {}, LIVE, "2 frame sizes with order: strict",
     "give one frame size, or expect order: any, or via: ring"),
    ({}, "strict", {"rx:eth0": "generic"}, LIVE, "generic mode", "attach that program in mode: native"),
    ({}, "strict", {}, (False, 0), "no live-frames test runs", "use via: ring (or auto) on this kernel"),
])
def test_via_xdp_that_cannot_be_honoured_is_a_located_error_with_cause_and_remedy(kw, order, programs, facts,
                                                                                  cause, remedy):
    a, _ = pair()
    with pytest.raises(ScenarioError) as ei:
        senders.choose(stream(via="xdp", **kw), order, a, programs, facts)
    msg = str(ei.value)
    assert msg.startswith("s.yaml:7:9: scenarios[0].traffic[0].via: stream main cannot be sent via xdp: "), msg
    assert cause in msg and remedy in msg


def test_explicit_ring_and_short_xdp_streams():
    a, _ = pair()
    assert senders.choose(stream(via="ring"), "strict", a, {}, LIVE).reason == "ring: asked for (via: ring)"
    ch = senders.choose(stream(via="xdp", count=10), "strict", a, {}, LIVE)  # asked for: no cost rule
    assert ch.via == "xdp" and ch.reason == "xdp: asked for (via: xdp), peer pass attached on rx:eth0"


def test_live_calls_are_bounded_and_paced_calls_carry_one_second_of_frames():
    assert runner._live_call(5_000_000, None) == (5_000_000, runner._LIVE_CALL_S)
    n, bound = runner._live_call(1_000_000, 50_000)
    assert n == 50_000 and bound == pytest.approx(1.5)
    assert runner._live_call(10, 50_000) == (10, pytest.approx(10 / 50_000 + 0.5))


# -------------------------------------------------------------------------------------------
# load-time errors (no privileges)
# -------------------------------------------------------------------------------------------
def load(body):
    return sc.load_text(textwrap.dedent(body), "v.yaml")


TWO = textwrap.dedent("""\
    scenarios:
      - name: s
        topology: {nodes: [tx, rx], links: [{endpoints: [tx:eth0, rx:eth0]}]}
    """)


def problems(body):
    with pytest.raises(ScenarioSpecError) as ei:
        load(body)
    return str(ei.value)


def test_via_is_loaded_and_defaults_to_auto():
    (s,) = load(TWO + "    traffic: [{from: tx:eth0, to: rx:eth0, via: xdp}, {from: tx:eth0, to: rx:eth0}]\n")
    assert [st.via for st in s.streams] == ["xdp", "auto"]
    assert s.streams[0].where == "v.yaml:4:44: scenarios[0].traffic[0].via"  # the via key


def test_via_xdp_load_time_errors_are_located():
    text = problems(TWO + "    traffic: [{from: tx:eth0, to: rx:eth0, via: xdp, frame: {size: [64, 128]}}]\n")
    assert "v.yaml:4:" in text and "traffic[0].via: via: xdp cannot send this stream: 2 frame sizes with order: " \
        "strict" in text and "order: any" in text
    text = problems(TWO + "    xdp: [{attach: rx:eth0, program: drop, mode: generic}]\n"
                          "    traffic: [{from: tx:eth0, to: rx:eth0, via: xdp}]\n")
    assert "traffic[0].via: via: xdp: the receiving end 'rx:eth0' runs its XDP program in mode: generic" in text
    text = problems("""\
        scenarios:
          - name: s
            topology:
              nodes: [a, sw]
              links: [{endpoints: [a:eth0, sw:p0]}]
              bridges: [{name: sw:br0, ports: [sw:p0]}]
            traffic: [{from: sw:br0, to: a:eth0, via: xdp}]
        """)
    assert "traffic[0].via: via: xdp sends out of a veth" in text and "'sw:br0' is a bridge device" in text
    text = problems(TWO.replace("]}]}", "], mtu: 9000}]}") +
                    "    traffic: [{from: tx:eth0, to: rx:eth0, via: afxdp, frame: {size: 5000}}]\n")
    assert "traffic[0].via: via: afxdp sends frames of at most 4096 B (one UMEM frame); frame 5000 B" in text


def test_afxdp_capture_load_time_errors_are_located():
    text = problems(TWO + "    xdp: [{attach: rx:eth0, program: pass}]\n"
                          "    traffic: [{from: tx:eth0, to: rx:eth0}]\n"
                          "    capture: [{on: rx:eth0, via: afxdp, block_size: 65536}]\n")
    assert "capture[0].on: capture via afxdp attaches the built-in xsk program on 'rx:eth0'" in text
    assert "capture[0].block_size: `block_size` does not apply to a capture via afxdp (its options: queue, " \
        "frame_count, ring_size)" in text
    text = problems(TWO + "    traffic: [{from: tx:eth0, to: rx:eth0}]\n    capture: [{on: rx:eth0, queue: 1}]\n")
    assert "capture[0].queue: `queue` does not apply to a capture via afpacket" in text
    text = problems(TWO.replace("]}]}", "], mtu: 9000}]}") +
                    "    traffic: [{name: big, from: tx:eth0, to: rx:eth0, frame: {size: 4000}}]\n"
                    "    capture: [{on: rx:eth0, via: afxdp}]\n")
    assert "capture via afxdp receives frames of at most 3840 B whole" in text and "stream big sends 4000 B" in text
    text = problems(TWO + "    traffic: [{name: fwd, from: tx:eth0, to: rx:eth0, via: afxdp},"
                          " {name: back, from: rx:eth0, to: tx:eth0}]\n"
                          "    capture: [{on: tx:eth0, via: afxdp}, {on: rx:eth0}]\n")
    assert "capture[0].on: capture via afxdp binds an AF_XDP socket to a queue of 'tx:eth0', and stream fwd is " \
        "sent via afxdp from 'tx:eth0' too" in text
    (s,) = load(TWO + "    traffic: [{from: tx:eth0, to: rx:eth0}]\n    capture: [{on: rx:eth0, via: afxdp, queue: 0}]\n")
    assert (s.captures[0].via, s.captures[0].options) == ("afxdp", {"queue": 0})


def test_peer_pass_applies_to_tx_and_redirect_only():
    (s,) = load(TWO + "    xdp: [{attach: rx:eth0, program: tx, peer_pass: false}]\n"
                      "    traffic: [{from: tx:eth0, to: rx:eth0}]\n    capture: [{on: tx:eth0}]\n")
    assert s.xdp[0].peer_pass is False
    text = problems(TWO + "    xdp: [{attach: rx:eth0, program: drop, peer_pass: false}]\n"
                          "    traffic: [{from: tx:eth0, to: rx:eth0}]\n")
    assert "xdp[0].peer_pass: `peer_pass` only applies to programs tx and redirect" in text


# -------------------------------------------------------------------------------------------
# the peer rule as a plan (no privileges)
# -------------------------------------------------------------------------------------------
def test_peer_rule_plan_and_vanish_hint():
    (s,) = load("""\
        scenarios:
          - name: s
            topology:
              nodes: [a, b, c]
              links: [{endpoints: [a:eth0, b:eth0]}, {endpoints: [b:eth1, c:eth0]}]
            xdp:
              - {attach: b:eth0, program: tx, mode: native}
              - {attach: c:eth0, program: redirect, target: c:eth1, mode: native, peer_pass: false}
            traffic: [{from: a:eth0, to: b:eth0, count: 100000}]
            capture: [{on: a:eth0}]
        """.replace("nodes: [a, b, c]", "nodes: [a, b, c, d]").replace(
            "{endpoints: [b:eth1, c:eth0]}]", "{endpoints: [b:eth1, c:eth0]}, {endpoints: [c:eth1, d:eth0]}]"))
    eps = {n: Ep(n) for n in ("a:eth0", "b:eth0", "b:eth1", "c:eth0", "c:eth1", "d:eth0")}
    for x, y in (("a:eth0", "b:eth0"), ("b:eth1", "c:eth0"), ("c:eth1", "d:eth0")):
        eps[x].peer, eps[y].peer = eps[y], eps[x]
    programs = {"b:eth0": "native", "c:eth0": "native"}
    choices = {"s0": senders.choose(s.streams[0], "strict", eps["a:eth0"], programs, LIVE)}
    assert choices["s0"].via == "xdp" and choices["s0"].receiver is None   # b:eth0 runs tx
    passes, bare = senders.plan_peer_passes(s, eps, programs, choices)
    assert [p.describe() for p in passes] == ["attached pass on a:eth0 for tx on b:eth0"]
    assert bare == [(1, "c:eth1", "d:eth0", "opted out")]   # the redirect into c:eth1 -> d:eth0 opted out
    # the hint speaks only when the sending end's tx_dropped grew
    assert senders.vanish_hints(s, bare, {"c:eth1": {"tx_dropped": 0}}) == []
    (hint,) = senders.vanish_hints(s, bare, {"c:eth1": {"tx_dropped": 7}})
    assert hint.startswith("7 frames vanished at c:eth1 (tx_dropped): a frame XDP_TX'd or redirected into a veth")
    assert "xdp[1] (redirect on c:eth0) says peer_pass: false" in hint and "remove peer_pass: false" in hint
    # an end that gets pass for another reason is not bare: the live-frames sender into d:eth0 needs one
    st = sc.Stream("into-d", 1, "c:eth1", "d:eth0", 100000, None, {"udp": {}}, [64])
    s.streams.append(st)
    choices["into-d"] = senders.choose(st, "strict", eps["c:eth1"], programs, LIVE)
    passes, bare = senders.plan_peer_passes(s, eps, programs, choices)
    assert [p.describe() for p in passes] == ["attached pass on a:eth0 for tx on b:eth0",
                                              "attached pass on d:eth0 for the live-frames sender"]
    assert bare == []
    # generic tx/redirect need no peer program
    passes, bare = senders.plan_peer_passes(s, eps, {"b:eth0": "generic", "c:eth0": "generic"},
                                            {n: senders.Choice("ring", "ring") for n in ("s0", "into-d")})
    assert passes == [] and bare == []


# -------------------------------------------------------------------------------------------
# in namespaces (root)
# -------------------------------------------------------------------------------------------
privileged = pytest.mark.privileged


@pytest.fixture
def root():
    from netring_testkit.plugin import require

    require("CAP_BPF")


REFLECT = """\
    scenarios:
      - name: reflect
        topology: {nodes: [a, b], links: [{endpoints: [a:eth0, b:eth0]}]}
        xdp: [{attach: b:eth0, program: tx, mode: native%s}]
        traffic: [{name: bounce, from: a:eth0, to: b:eth0, count: 5000, via: %s, frame: {size: 128}}]
        capture: [{on: a:eth0}]
        expect: {delivered: all, order: strict, payload: intact}
        timeout: 10s
        quiet: 300ms
    """


def watching_topology(seen):
    """A topology factory whose close() first records the XDP program on every endpoint (None: detached)."""
    from netring import xdp
    from netring_testkit.topology import Topology

    class Watched(Topology):
        def close(self, failed=None):
            for name in ("a:eth0", "b:eth0"):
                ep = self[name]
                seen[name] = xdp.query(ep.ifname, netns=ep.netns)
            return super().close(failed=failed)

    return lambda spec: Watched(spec)


@privileged
@pytest.mark.parametrize("via", ["ring", "xdp"])
def test_reflect_written_the_obvious_way_passes_and_the_pass_goes_after(root, via):
    seen = {}
    (s,) = sc.load_text(textwrap.dedent(REFLECT % ("", via)), "r.yaml")
    r = runner.run(s, topology_factory=watching_topology(seen))
    assert r.status == "passed", r.render()
    assert (r.streams[0].delivered, r.streams[0].via) == (5000, via)
    assert [p.describe() for p in r.peer_passes] == ["attached pass on a:eth0 for tx on b:eth0"]
    assert r.as_dict()["peer_passes"] == [{"at": "a:eth0", "program": "pass", "for": ["tx on b:eth0"]}]
    assert r.xdp["a:eth0"]["pass"] == 5000 and r.xdp["b:eth0"]["tx"] == 5000
    assert "attached pass on a:eth0 for tx on b:eth0" in r.render()
    assert seen == {"a:eth0": None, "b:eth0": None}   # both detached before the namespaces go


@privileged
def test_peer_pass_false_opts_out_and_the_verdict_says_why(root):
    (s,) = sc.load_text(textwrap.dedent(REFLECT % (", peer_pass: false", "ring")), "r.yaml")
    r = runner.run(s)
    assert r.status == "failed" and r.peer_passes == []
    assert r.streams[0].delivered == 0 and r.interfaces["b:eth0"]["tx_dropped"] == 5000
    (hint,) = r.hints
    assert hint.startswith("5000 frames vanished at b:eth0 (tx_dropped)") and "peer_pass: false" in hint
    assert "hint: 5000 frames vanished at b:eth0" in r.render()
    assert r.as_dict()["hints"] == [hint]


@privileged
def test_the_report_says_which_sender_and_why(root):
    (s,) = sc.load_text(textwrap.dedent("""\
        scenarios:
          - name: two
            topology: {nodes: [tx, rx], links: [{endpoints: [tx:eth0, rx:eth0]}]}
            traffic:
              - {name: fast, from: tx:eth0, to: rx:eth0, count: 100000, frame: {size: 64}}
              - {name: mixed, from: tx:eth0, to: rx:eth0, count: 3000, frame: {size: [64, 1514]}}
            capture: [{on: rx:eth0}]
            expect: {delivered: all, order: strict, payload: intact}
            timeout: 15s
        """), "t.yaml")
    r = runner.run(s)
    assert r.status == "passed", r.render()
    d = {x["name"]: x for x in r.as_dict()["streams"]}
    assert d["fast"]["via"] == "xdp" and d["fast"]["via_reason"] == \
        "xdp: live frames supported, peer pass attached on rx:eth0"
    assert d["mixed"]["via"] == "ring" and d["mixed"]["via_reason"].startswith("ring: 2 frame sizes with order: strict")
    text = r.render()
    assert "  fast: xdp: live frames supported, peer pass attached on rx:eth0" in text
    assert "captures: rx:eth0 via afpacket (TPACKET_V3)" in text
    assert "attached pass on rx:eth0 for the live-frames sender" in text
    assert [x.delivered for x in r.streams] == [100000, 3000]


@privileged
def test_via_xdp_on_a_jumbo_frame_is_a_located_error_at_run_time(root):
    (s,) = sc.load_text(textwrap.dedent("""\
        scenarios:
          - name: jumbo
            topology: {nodes: [tx, rx], links: [{endpoints: [tx:eth0, rx:eth0], mtu: 9000}]}
            traffic: [{name: big, from: tx:eth0, to: rx:eth0, count: 10, via: xdp, frame: {size: 9014}}]
            timeout: 10s
        """), "j.yaml")
    r = runner.run(s)
    assert r.status == "error"
    assert r.error.startswith("ScenarioError: j.yaml:4:") and "traffic[0].via: stream big cannot be sent via xdp: " \
        "frame 9014 B exceeds the live-frames limit" in r.error and "or use via: ring" in r.error


class Spy:
    """Wraps a sender: records each send_stream call's (count, rate_pps, timeout)."""

    def __init__(self, inner, calls):
        self.inner, self.calls = inner, calls

    def send_stream(self, templates, stream_id, first_seq, count, rate_pps=None, csum_offsets=None, timeout=None):
        self.calls.append((count, rate_pps, timeout))
        return self.inner.send_stream(templates, stream_id, first_seq, count, rate_pps=rate_pps,
                                      csum_offsets=csum_offsets, timeout=timeout)


@privileged
def test_a_paced_live_stream_is_paced_by_the_generator_in_one_second_calls(root, monkeypatch):
    """The pacing itself (±10 % at 50 kpps) is XdpInjector's (tests/bpf/test_xdp_injector.py); here: the
    engine hands it the rate and calls of one second of frames, and every frame arrives."""
    calls = []
    real = senders.open_sender
    monkeypatch.setattr(senders, "open_sender", lambda *a: Spy(real(*a), calls))
    (s,) = sc.load_text(textwrap.dedent("""\
        scenarios:
          - name: paced
            topology: {nodes: [tx, rx], links: [{endpoints: [tx:eth0, rx:eth0]}]}
            traffic: [{name: p, from: tx:eth0, to: rx:eth0, count: 60000, rate: 50kpps, via: xdp, frame: {size: 64}}]
            expect: {delivered: all, order: strict, payload: intact}
            timeout: 10s
        """), "p.yaml")
    r = runner.run(s)
    assert r.status == "passed", r.render()
    assert [c[:2] for c in calls] == [(50000, 50000), (10000, 50000)]
    assert calls[0][2] == pytest.approx(1.5, abs=0.01)


@privileged
def test_ctrl_c_during_a_large_live_send_returns_promptly(root):
    (s,) = sc.load_text(textwrap.dedent("""\
        scenarios:
          - name: big
            topology: {nodes: [tx, rx], links: [{endpoints: [tx:eth0, rx:eth0]}]}
            xdp: [{attach: rx:eth0, program: drop, mode: native}]
            traffic: [{name: flood, from: tx:eth0, to: rx:eth0, count: 500M, via: xdp, frame: {size: 64}}]
            expect: {delivered: none}
            timeout: 60s
        """), "b.yaml")
    started = threading.Event()
    runner._on_event, old = (lambda name, *d: started.set() if name == "sender-starting" else None), runner._on_event
    timer = threading.Timer(0.8, lambda: started.wait(5) and signal.pthread_kill(threading.main_thread().ident,
                                                                                 signal.SIGINT))
    try:
        timer.start()
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            runner.run(s)
        took = time.monotonic() - t0
    finally:
        timer.cancel()
        runner._on_event = old
    assert took < 0.8 + 3.0, took   # the signal at 0.8 s, then at most one bounded live call (runner._LIVE_CALL_S, 0.9 s) and tear-down


@privileged
def test_xdp_fixture_attaches_pass_on_the_peer_of_tx_and_opts_out(root):
    from netring import xdp as xdp_mod
    from netring_testkit.topology import Topology
    from netring_testkit.xdp_fixture import XdpFactory

    spec = {"nodes": ["a", "b"], "links": [{"endpoints": ["a:eth0", "b:eth0"]}]}
    with Topology(spec) as topo:
        a, b = topo["a:eth0"], topo["b:eth0"]
        f = XdpFactory()
        h = f.attach(b, "tx")
        assert h.peer_note == "attached pass on a:eth0 for tx on b:eth0"
        assert xdp_mod.query(a.ifname, netns=a.netns).name == "nr_pass"
        fr, off = runner.build_frame(128, 3, src_mac=a.mac, dst_mac=b.mac)
        with a.injector() as inj, a.capture(block_size=1 << 20, block_count=4) as cap:
            assert inj.send_stream([fr], 3, 0, 1000, csum_offsets=[off]) == 1000
            inj.wait_drained(1.0)
            chk = cap.drain(SeqChecker({3: 1000}), timeout=2.0)
        assert chk.counts(3)[1] == 1000   # reflected by tx on b, received through the pass on a
        assert h.peer_pass.counters()["pass"]["packets"] == 1000
        f.close()
        assert xdp_mod.query(a.ifname, netns=a.netns) is None and xdp_mod.query(b.ifname, netns=b.netns) is None
        # opted out: nothing on the peer, and the handle says what that means
        h = f.attach(b, "tx", peer_pass=False)
        assert h.peer_pass is None and "peer_pass=False" in h.peer_note and "tx_dropped on b:eth0" in h.peer_note
        assert xdp_mod.query(a.ifname, netns=a.netns) is None
        # generic tx needs no peer program: the rule does not apply
        f.close()
        h = f.attach(b, "tx", mode="generic")
        assert h.peer_pass is None and h.peer_note is None
        f.close()


@privileged
def test_afxdp_capture_and_sender_count_every_frame_and_say_so(root):
    (s,) = sc.load_text(textwrap.dedent("""\
        scenarios:
          - name: xsk
            topology:
              nodes: [tx, rx]
              links: [{endpoints: [tx:eth0, rx:eth0]}, {endpoints: [tx:eth1, rx:eth1]}]
            traffic:
              - {name: in, from: tx:eth0, to: rx:eth0, count: 20000, rate: 200kpps, frame: {size: 64}}
              - {name: out, from: tx:eth1, to: rx:eth1, count: 20000, via: afxdp, frame: {size: [64, 1514]}}
            capture: [{on: rx:eth0, via: afxdp, queue: 0}, {on: rx:eth1}]
            expect: {delivered: all, order: strict, payload: intact, unexpected: 0}
            timeout: 10s
        """), "x.yaml")
    r = runner.run(s)
    assert r.status == "passed", r.render()
    assert [(x.name, x.via, x.delivered) for x in r.streams] == [("in", "ring", 20000), ("out", "afxdp", 20000)]
    assert r.capture_paths == {"rx:eth0": "afxdp (queue 0, copy mode, xsk program native)",
                               "rx:eth1": "afpacket (TPACKET_V3)"}
    assert r.captures["rx:eth0"]["packets"] == 20000 and r.captures["rx:eth0"]["drops"] == 0
    assert "captures: rx:eth0 via afxdp (queue 0, copy mode, xsk program native), rx:eth1 via afpacket" in r.render()
    assert r.peer_passes == []   # nothing sent via xdp; the xsk program is not replaced


@privileged
def test_frames_an_afxdp_capture_could_not_take_are_reported_as_the_harnesss_loss(root):
    (s,) = sc.load_text(textwrap.dedent("""\
        scenarios:
          - name: tiny-umem
            topology: {nodes: [tx, rx], links: [{endpoints: [tx:eth0, rx:eth0]}]}
            traffic: [{name: flood, from: tx:eth0, to: rx:eth0, count: 200000, via: xdp, frame: {size: 64}}]
            capture: [{on: rx:eth0, via: afxdp, frame_count: 64, ring_size: 64}]
            timeout: 10s
            quiet: 300ms
        """), "t.yaml")
    r = runner.run(s)
    assert r.status == "failed"
    st, cap = r.streams[0], r.captures["rx:eth0"]
    assert cap["drops"] > 0 and st.lost >= cap["drops"] and cap["drops"] == cap["rx_dropped"] + cap["rx_ring_full"]
    assert ("capture rx:eth0: the kernel could not place %d frames in the AF_XDP socket" % cap["drops"]) in r.render()
    assert "frame_count: ..., ring_size: ..." in r.render()


@privileged
def test_xdp_fixture_redirect_gets_pass_on_the_targets_peer(root):
    from netring import xdp as xdp_mod
    from netring_testkit.topology import Topology
    from netring_testkit.xdp_fixture import XdpFactory

    spec = {"nodes": ["tx", "mid", "rx"],
            "links": [{"endpoints": ["tx:eth0", "mid:eth0"]}, {"endpoints": ["mid:eth1", "rx:eth0"]}]}
    with Topology(spec) as topo:
        tx, m0, m1, rx = (topo[n] for n in ("tx:eth0", "mid:eth0", "mid:eth1", "rx:eth0"))
        f = XdpFactory()
        try:
            h = f.attach(m0, "redirect", target_ifindex=m1.ifindex)
            assert h.peer_note == "attached pass on rx:eth0 for redirect on mid:eth0"
            fr, off = runner.build_frame(128, 4, src_mac=tx.mac, dst_mac=rx.mac)
            with tx.injector() as inj, rx.capture(block_size=1 << 20, block_count=4) as cap:
                assert inj.send_stream([fr], 4, 0, 1000, csum_offsets=[off]) == 1000
                chk = cap.drain(SeqChecker({4: 1000}), timeout=2.0)
            assert chk.counts(4)[1] == 1000 and h.counters()["redirect"]["packets"] == 1000
        finally:
            f.close()
        assert xdp_mod.query(rx.ifname, netns=rx.netns) is None
