"""Impaired links in topologies and YAML: the fixture API, the verdict's table of bridge counters,
a strict-order scenario failing readably through a reordering link, and located spec errors."""
import socket
import textwrap

import pytest

from netring import ConfigurationError
from netring_testkit import runner, scenario as sc, topospec
from netring_testkit.topology import Topology


def test_a_bad_impair_key_is_a_located_problem():
    spec = {"nodes": ["a", "b"], "links": [{"endpoints": ["a:eth0", "b:eth0"], "impair": {"los": "1%"}}]}
    probs = topospec.problems(spec)
    assert probs[0][0] == ("links", 0, "impair", "los")
    assert "did you mean 'loss'?" in probs[0][1]
    with pytest.raises(ConfigurationError, match=r"topology links\[0\]\.impair\.los: .*did you mean 'loss'"):
        Topology(spec)
    text = textwrap.dedent("""\
        scenarios:
          - name: s
            topology:
              nodes: [a, b]
              links:
                - {endpoints: [a:eth0, b:eth0], impair: {a_to_b: {delay: 2 parsecs}}}
            traffic: [{name: m, from: a:eth0, to: b:eth0, count: 10}]
        """)
    with pytest.raises(sc.ScenarioSpecError) as ei:
        sc.load_text(text, "imp.yaml")
    msg = str(ei.value)
    assert "imp.yaml:6:59: scenarios[0].topology.links[0].impair.a_to_b.delay: expected a duration" in msg


@pytest.mark.parametrize("written, ok", [("1", False), ("2", False), ("1.0", False), ("0.5", True),
                                         ("100%", True), ("1%", True)])
def test_yaml_bare_numbers_are_fractions_below_one(written, ok):
    """One rule in YAML as in Python: ``loss: 1`` (1 % or 100 %?) is a located problem; write ``1%``/``100%``."""
    text = textwrap.dedent("""\
        scenarios:
          - name: s
            topology:
              nodes: [a, b]
              links:
                - {endpoints: [a:eth0, b:eth0], impair: {loss: %s}}
            traffic: [{name: m, from: a:eth0, to: b:eth0, count: 10}]
        """) % written
    if ok:
        sc.load_text(text, "imp.yaml")
        return
    with pytest.raises(sc.ScenarioSpecError) as ei:
        sc.load_text(text, "imp.yaml")
    assert "imp.yaml:6:50: scenarios[0].topology.links[0].impair.loss: expected a percentage like " \
           "\"1%\" or a fraction below 1" in str(ei.value)


@pytest.mark.privileged
def test_fixture_topology_with_an_impaired_link_looks_linked(topology):
    topo = topology({"nodes": ["a", "b"],
                     "links": [{"endpoints": ["a:eth0", "b:eth0"], "impair": {"a_to_b": {"duplicate": "100%"}}}]})
    a, b = topo["a:eth0"], topo["b:eth0"]
    assert a.peer is b and b.peer is a and (a.ipv4, b.ipv4) == ("198.18.0.1", "198.18.0.2")
    [link] = topo.impaired_links
    assert link.name == "a:eth0<->b:eth0" and link.bridge.running
    # the IP stacks talk through the bridge as over a veth (permanent neighbours, addresses)
    rx = b.netns.socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
    tx = a.netns.socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
    try:
        rx.bind((b.ipv4, 9999))
        rx.settimeout(3.0)
        tx.sendto(b"through the bridge", (b.ipv4, 9999))
        got = [rx.recv(100), rx.recv(100)]  # duplicate: 100% sends each frame twice
    finally:
        rx.close()
        tx.close()
    assert got == [b"through the bridge"] * 2
    st = topo.link_stats()["a:eth0<->b:eth0"]
    assert st["a_to_b"]["duplicated"] >= 1 and st["b_to_a"]["duplicated"] == 0
    assert st["impair"]["a_to_b"]["duplicate"] == 1.0 and st["endpoints"] == ["a:eth0", "b:eth0"]


REORDERING = textwrap.dedent("""\
    scenarios:
      - name: strict-through-reordering
        topology:
          nodes: [tx, rx]
          links: [{endpoints: [tx:eth0, rx:eth0], impair: {reorder: 5%, seed: 3}}]
        traffic: [{name: main, from: tx:eth0, to: rx:eth0, count: 4000, rate: 50kpps, frame: {udp: {dport: 9}}}]
        capture: [{on: rx:eth0}]
        expect: {delivered: all, order: strict, payload: intact}
        timeout: 10s
        quiet: 300ms
    """)


@pytest.mark.privileged
def test_strict_order_through_a_reordering_link_fails_with_a_readable_table():
    from netring_testkit.plugin import require

    require()
    s = sc.load_text(REORDERING, "r.yaml")[0]
    r = runner.run(s)
    assert r.status == "failed"
    [st] = r.streams
    link = r.links["tx:eth0<->rx:eth0"]
    assert st.reordered > 0 and st.reordered == link["a_to_b"]["reordered"]
    assert (st.delivered, st.lost, st.duplicated, st.corrupted) == (4000, 0, 0, 0)
    assert r.failures == ["stream main: %d frames arrived out of order (order: strict)" % st.reordered]
    text = r.render()
    assert "impaired links (the bridge's own counters; the table above is the checker's):" in text
    row = next(line for line in text.splitlines() if "tx:eth0 -> rx:eth0" in line)
    assert row.split()[:5] == ["tx:eth0<->rx:eth0", "tx:eth0", "->", "rx:eth0", "4000"]
    assert str(st.reordered) in row.split()
    assert r.as_dict()["links"]["tx:eth0<->rx:eth0"]["impair"]["a_to_b"]["reorder"] == 0.05


@pytest.mark.privileged
def test_artifacts_all_frames_carry_the_checkers_verdict(tmp_path):
    from netring import pcap
    from netring_testkit.plugin import require

    require()
    text = REORDERING.replace("impair: {reorder: 5%, seed: 3}",
                              "impair: {reorder: 3%, duplicate: 2%, corrupt: 1%, seed: 5}")
    s = sc.load_text(text, "r.yaml")[0]
    r = runner.run(s, artifacts_dir=str(tmp_path), all_frames=True)
    assert r.status == "failed"
    [st] = r.streams
    got = [p for p in pcap.read_pcapng(tmp_path / "strict-through-reordering.pcapng")
           if p.interface == "rx:eth0" and p.comment.startswith("arrived")]
    link = r.links["tx:eth0<->rx:eth0"]["a_to_b"]
    assert len(got) == link["forwarded"]  # every frame the link delivered is in the file
    kinds = [p.comment.split(": ")[1] for p in got]
    assert kinds.count("reordered") == st.reordered and st.reordered > 0
    assert kinds.count("duplicate") == st.duplicated and kinds.count("corrupted") == st.corrupted
    assert kinds.count("delivered") + kinds.count("reordered") == st.delivered
    first = next(p.comment for p in got if ": reordered: " in p.comment)
    assert first.startswith("arrived at rx:eth0: reordered: stream main seq ") and "(after seq " in first
