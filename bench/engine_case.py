"""The scenario-engine round-trip case: the benchmark stream through netring_testkit's YAML runner.

Runs in one process (the engine drives injector and capture itself). Until the scenario engine
is on this branch the case reports what is missing instead of a number.
"""
import time


class _Missing(Exception):
    pass


def scenario_spec(size, count, stream_id=1):
    """The benchmark round trip as a scenario mapping (the YAML ``scenarios:`` item shape)."""
    return {
        "name": "bench-roundtrip-%d" % size,
        "topology": {"nodes": ["tx", "rx"], "links": [{"endpoints": ["tx:eth0", "rx:eth0"], "mtu": 1500}]},
        "traffic": [{"name": "main", "from": "tx:eth0", "to": "rx:eth0", "count": count, "rate": "max",
                     "frame": {"ipv4": {}, "udp": {"dport": 9}, "size": size}}],
        "capture": [{"on": "rx:eth0", "via": "afpacket"}],
        "expect": {"delivered": "all", "order": "strict", "payload": "intact"},
        "timeout": "60s",
    }


def run(args):
    """Run the engine once and return the peer JSON dict (``{"skipped": ...}`` when the engine is missing)."""
    from bench.peer import Skip, _rss_kib

    try:
        from netring_testkit import runner as engine  # noqa: F401
    except ImportError as exc:
        raise Skip("scenario engine (netring_testkit.runner) not available: %s" % exc) from None
    run_fn = getattr(engine, "run_scenario", None)
    if run_fn is None:
        raise Skip("netring_testkit.runner has no run_scenario()")
    spec = scenario_spec(args.size, args.count)
    t0 = time.monotonic_ns()
    result = run_fn(spec)
    t1 = time.monotonic_ns()
    return {"role": "engine", "impl": "netring-engine", "result": repr(result)[:500], "t_start_ns": t0,
            "t_end_ns": t1, "max_rss_kib": _rss_kib()}
