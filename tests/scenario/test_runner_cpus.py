"""The engine's CPU pinning option: ``runner.run(..., cpus=(TX, RX))`` / ``NETRING_CPUS=TX,RX``."""
import os
import textwrap
import threading

import pytest

from netring.errors import ConfigurationError
from netring_testkit import runner, scenario as sc

ALLOWED = sorted(os.sched_getaffinity(0))


def test_parse_cpus_unset_env_means_no_pinning(monkeypatch):
    monkeypatch.delenv(runner.CPUS_ENV, raising=False)
    assert runner.parse_cpus(None) is None
    monkeypatch.setenv(runner.CPUS_ENV, "  ")
    assert runner.parse_cpus(None) is None


def test_parse_cpus_reads_env_and_explicit_forms(monkeypatch):
    a, b = ALLOWED[0], ALLOWED[-1]
    monkeypatch.setenv(runner.CPUS_ENV, "%d,%d" % (a, b))
    assert runner.parse_cpus(None) == (a, b)
    assert runner.parse_cpus("%d, %d" % (b, a)) == (b, a)
    assert runner.parse_cpus([a, a]) == (a, a)


@pytest.mark.parametrize("bad", ["x", "0", "0,1,2", (0.5, 0), (True, 0), 7, ""])
def test_parse_cpus_rejects_malformed(bad, monkeypatch):
    monkeypatch.delenv(runner.CPUS_ENV, raising=False)
    with pytest.raises(ConfigurationError) as ei:
        runner.parse_cpus(bad)
    assert "CPU" in str(ei.value) and str(ALLOWED) in str(ei.value)


def test_parse_cpus_rejects_cpu_outside_the_mask(monkeypatch):
    monkeypatch.setenv(runner.CPUS_ENV, "%d,%d" % (ALLOWED[0], max(ALLOWED) + 1000))
    with pytest.raises(ConfigurationError) as ei:
        runner.parse_cpus(None)
    assert ei.value.field == runner.CPUS_ENV
    assert "CPU %d is not available" % (max(ALLOWED) + 1000) in str(ei.value)


PAIR = textwrap.dedent("""\
    scenarios:
      - name: pinned
        topology: {nodes: [tx, rx], links: [{endpoints: [tx:eth0, rx:eth0]}]}
        traffic: [{name: main, from: tx:eth0, to: rx:eth0, count: 300, frame: {udp: {dport: 9}, size: 100}}]
        capture: [{on: rx:eth0}]
        expect: {delivered: all, order: strict, payload: intact}
        timeout: 10s
        quiet: 300ms
    """)


@pytest.mark.privileged
def test_run_pins_sender_and_checker_threads_and_restores_the_caller(monkeypatch):
    pytest.importorskip("netring_testkit.topology", reason="netring_testkit.topology (testkit) is not installed")
    tx, rx = ALLOWED[-1], ALLOWED[0]
    calls = []
    real = os.sched_setaffinity

    def recording(pid, mask):
        calls.append((threading.current_thread().name, set(mask)))
        return real(pid, mask)

    monkeypatch.setattr(runner.os, "sched_setaffinity", recording)
    before = os.sched_getaffinity(0)
    r = runner.run(sc.load_text(PAIR, "p.yaml")[0], cpus=(tx, rx))
    assert r.status == "passed", r.render()
    assert [(s.sent, s.delivered, s.lost) for s in r.streams] == [(300, 300, 0)]
    assert ("netring-tx-main", {tx}) in calls
    main = [m for name, m in calls if name == threading.current_thread().name]
    assert main == [{rx}, set(before)]  # pinned for the drain, then the caller's mask restored
    assert os.sched_getaffinity(0) == before


def test_run_with_unavailable_cpu_is_an_error_result():
    r = runner.run(sc.load_text(PAIR, "p.yaml")[0], cpus=(0, max(ALLOWED) + 1000),
                   topology_factory=lambda spec: pytest.fail("the topology must not be built"))
    assert r.status == "error"
    assert "ConfigurationError" in r.error and "is not available" in r.error
