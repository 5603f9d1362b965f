"""The scenario-engine round-trip case: the benchmark stream through netring_testkit's YAML runner.

The engine builds its own topology (two namespaces + veth, like the bench's), injects from a
sender thread and drains on the calling thread, so this case runs as ONE process. The runner
passes ``--engine-cpus TX,RX`` (the other rows' ``--tx-cpu/--rx-cpu``), which becomes the engine's
own ``cpus=(TX, RX)`` option (also ``NETRING_CPUS=TX,RX``): the sender thread is pinned to TX, the
capture/checker thread to RX, like the sender and receiver processes of the other rows.

Differences to the other rows, stated in the table description:
- frames are Ethernet/IPv4/UDP with a correct UDP checksum patched per frame (the engine's real
  workload), to the same non-local MAC; the 20-byte stamp fits a 64 B Ethernet/IPv4/UDP frame
  (62 B minimum), so the "64 B" row runs real 64 B frames;
- the rate is the engine's own: frames delivered / injection time (``ScenarioResult.tx_seconds``),
  slightly favourable against the end-to-end rate of the other rows (it excludes the receiver's
  tail, ≤ one block timeout).
"""
import time

from bench.common import Skip, rss_kib

_YAML = """\
scenarios:
  - name: bench-roundtrip
    topology:
      nodes: [tx, rx]
      links: [{{endpoints: [tx:eth0, rx:eth0], mtu: 1500}}]
    traffic:
      - name: main
        from: tx:eth0
        to: rx:eth0
        count: {count}
        rate: max
        frame: {{eth: {{dst: "02:4e:52:00:00:99"}}, ipv4: {{}}, udp: {{dport: 9}}, size: {size}}}
    capture: [{{on: rx:eth0, via: afpacket}}]
    expect: {{delivered: all, order: strict, payload: intact}}
    timeout: {timeout}s
"""

#: The engine cannot build a stamped Ethernet/IPv4/UDP frame below this size (14 + 20 + 8 + 20).
MIN_SIZE = 62


def scenario_yaml(size, count, timeout=60):
    """The benchmark round trip as scenario YAML text."""
    return _YAML.format(count=count, size=max(size, MIN_SIZE), timeout=int(max(5, timeout)))


def run(args):
    """Run the engine once; return the peer JSON dict (raises ``bench.common.Skip`` when the engine is missing)."""
    try:
        from netring_testkit import runner as engine
        from netring_testkit.scenario import load_text
    except ImportError as exc:
        raise Skip("scenario engine (netring_testkit.runner / .scenario) not available: %s" % exc) from None
    scenarios = load_text(scenario_yaml(args.size, args.count, args.timeout), "<bench>")
    t0 = time.monotonic_ns()
    cpus = getattr(args, "engine_cpus", "") or None
    result = engine.run(scenarios[0], cpus=cpus) if cpus else engine.run(scenarios[0])
    t1 = time.monotonic_ns()
    if result.status not in ("passed", "failed"):
        return {"error": "engine run %s: %s" % (result.status, result.error)}
    delivered = sum(s.delivered for s in result.streams)
    lost = sum(s.lost for s in result.streams)
    return {"role": "engine", "impl": "netring-engine", "status": result.status, "failures": list(result.failures)[:3],
            "size": max(args.size, MIN_SIZE), "sent": result.sent, "delivered": delivered, "lost": lost,
            "expected": args.count, "tx_seconds": result.tx_seconds, "duration_s": result.duration,
            "pps": delivered / result.tx_seconds if result.tx_seconds > 0 else 0.0,
            "wall_ns": t1 - t0, "max_rss_kib": rss_kib()}
