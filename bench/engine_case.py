"""The scenario-engine round-trip case: the benchmark stream through netring_testkit's YAML runner.

The engine builds its own topology (two namespaces + veth, like the bench's), injects from a
sender thread and drains on the calling thread, so this case runs as ONE process. The runner
passes ``--engine-cpus TX,RX`` (the other rows' ``--tx-cpu/--rx-cpu``), which becomes the engine's
own ``cpus=(TX, RX)`` option (also ``NETRING_CPUS=TX,RX``): the sender thread is pinned to TX, the
capture/checker thread to RX, like the sender and receiver processes of the other rows.

Variants (:data:`VARIANTS`, ``--variant``): ``via: ring``, the TX ring (``netring-engine``; the
default ``auto`` now picks xdp on this topology), ``via: xdp``
(XdpInjector, the receiving veth end gets the engine's ``pass``) into a TPACKET_V3 capture or an
AF_XDP capture, and a drop scenario via xdp (built-in ``drop`` native on the receiver; its rate is
the drop counter / injection time). A variant the engine cannot run yet (its schema refuses the
field) raises :class:`~bench.common.Skip` naming the missing field.

Differences to the other rows, stated in the table description:
- frames are Ethernet/IPv4/UDP with a correct UDP checksum patched per frame (the engine's real
  workload), to the same non-local MAC; the 20-byte stamp fits a 64 B Ethernet/IPv4/UDP frame
  (62 B minimum), so the "64 B" row runs real 64 B frames;
- the rate is the engine's own: frames delivered / injection time (``ScenarioResult.tx_seconds``),
  favourable against the end-to-end rate of the other rows: it excludes the receiver's tail, ≤ one
  block timeout while the receiver keeps up, but the whole backlog when a sender outruns it and the
  capture ring buffers the burst (the live-frames sender does at 64 B: 500k frames fit a 64 MiB
  ring). ``ScenarioResult`` has no time of the last counted frame, so the bench cannot do better
  without a library change.
"""
import time

from bench.common import Skip, rss_kib

_YAML = """\
scenarios:
  - name: bench-{name}
    topology:
      nodes: [tx, rx]
      links: [{{endpoints: [tx:eth0, rx:eth0], mtu: 1500}}]
{xdp}    traffic:
      - name: main
        from: tx:eth0
        to: rx:eth0
        count: {count}
        rate: max
{via}        frame: {{eth: {{dst: "02:4e:52:00:00:99"}}, ipv4: {{}}, udp: {{dport: 9}}, size: {size}}}
    capture: [{{on: rx:eth0, via: {capture}}}]
    expect: {expect}
    timeout: {timeout}s
"""

#: What each variant of the engine case runs: (traffic via, capture via, XDP_DROP on the receiver).
VARIANTS = {
    "ring": ("ring", "afpacket", False),      # netring-engine: the TX-ring sender (auto would pick xdp now)
    "xdp": ("xdp", "afpacket", False),        # netring-engine-xdp: XdpInjector -> XDP_PASS -> TPACKET_V3
    "xdp-drop": ("xdp", "afpacket", True),    # netring-engine-xdp-drop: XdpInjector -> built-in drop
    "xdp-afxdp": ("xdp", "afxdp", False),     # netring-engine-xsk: XdpInjector -> AF_XDP capture
}

#: The engine cannot build a stamped Ethernet/IPv4/UDP frame below this size (14 + 20 + 8 + 20).
MIN_SIZE = 62


def scenario_yaml(size, count, timeout=60, variant="ring"):
    """The benchmark round trip (or drop, see :data:`VARIANTS`) as scenario YAML text."""
    via, capture, drop = VARIANTS[variant]
    xdp = "    xdp: [{attach: rx:eth0, program: drop, mode: native}]\n" if drop else ""
    expect = ("{delivered: none, xdp: {rx:eth0: {drop: all}}}" if drop
              else "{delivered: all, order: strict, payload: intact}")
    return _YAML.format(name=variant, xdp=xdp, via="        via: %s\n" % via if via else "", capture=capture,
                        expect=expect, count=count, size=max(size, MIN_SIZE), timeout=int(max(5, timeout)))


def udp_template(size):
    """The engine's stamped Ethernet/IPv4/UDP frame of ``size`` B (seq 0) and its UDP checksum offset."""
    from netring_testkit import runner as engine
    from netring_testkit.scenario import load_text

    s = load_text(scenario_yaml(size, 1), "<bench>")[0]
    (frame,), (csum_off,) = engine.build_templates(s.streams[0], None, None)
    return frame, csum_off


def _missing(exc, variant):
    """A Skip naming what the engine lacks for ``variant`` (raised when the scenario does not load or run)."""
    via, capture, _ = VARIANTS[variant]
    need = []
    if via:
        need.append("traffic[].via: %s" % via)
    if capture != "afpacket":
        need.append("capture via: %s" % capture)
    import re

    m = re.search(r"(\S+: unknown field '[^']+')", str(exc))
    detail = m.group(1) if m else " ".join(str(exc).split())[-100:]
    return Skip("scenario engine lacks %s (%s: %s)" % (" and ".join(need), type(exc).__name__, detail))


def run(args):
    """Run the engine once; return the peer JSON dict (raises ``bench.common.Skip`` when the engine is missing)."""
    try:
        from netring_testkit import runner as engine
        from netring_testkit.scenario import load_text
    except ImportError as exc:
        raise Skip("scenario engine (netring_testkit.runner / .scenario) not available: %s" % exc) from None
    variant = getattr(args, "variant", "ring") or "ring"
    try:
        scenarios = load_text(scenario_yaml(args.size, args.count, args.timeout, variant), "<bench>")
    except Exception as exc:  # the schema refuses a field the engine does not have yet
        raise _missing(exc, variant) from None
    t0 = time.monotonic_ns()
    cpus = getattr(args, "engine_cpus", "") or None
    result = engine.run(scenarios[0], cpus=cpus) if cpus else engine.run(scenarios[0])
    t1 = time.monotonic_ns()
    if result.status not in ("passed", "failed"):
        if variant != "ring" and "via" in str(result.error):
            raise _missing(result.error, variant)
        return {"error": "engine run %s: %s" % (result.status, result.error)}
    delivered = sum(s.delivered for s in result.streams)
    lost = sum(s.lost for s in result.streams)
    # which sender each stream used, where the engine reports it
    used = [getattr(s, "via", None) for s in result.streams]
    want = VARIANTS[variant][0]
    if want and any(u is not None and u != want for u in used):
        return {"error": "engine used via %s, not %s" % (used, want)}
    out = {"role": "engine", "impl": "netring-engine", "variant": variant, "via": used, "status": result.status,
           "failures": list(result.failures)[:3], "size": max(args.size, MIN_SIZE), "sent": result.sent,
           "delivered": delivered, "lost": lost, "expected": args.count, "tx_seconds": result.tx_seconds,
           "duration_s": result.duration, "wall_ns": t1 - t0, "max_rss_kib": rss_kib()}
    if VARIANTS[variant][2]:  # drop: the rate is what the receiver's program dropped
        dropped = int((result.xdp.get("rx:eth0") or {}).get("drop", 0))
        out.update(dropped=dropped, lost=max(0, args.count - dropped),
                   pps=dropped / result.tx_seconds if result.tx_seconds > 0 else 0.0)
    else:
        out["pps"] = delivered / result.tx_seconds if result.tx_seconds > 0 else 0.0
    return out
