"""Many streams cost bounded threads, rings and memory: the engine multiplexes streams over at most
``runner.MAX_SENDERS`` sender threads, one injector per source endpoint; and the capture drain loop
runs before the first frame is sent.

Before: one thread + one 2 MiB TX ring per stream — 500 streams x 10 frames took ~13 s and 1.09 GB,
and 2560 of their 5000 frames overflowed the capture ring (draining began only once every sender
thread had started); 2000 x 10 ended in "internal error: OSError: [Errno 12] Cannot allocate memory".
Needs root (namespaces, packet sockets); skipped otherwise.
"""
import textwrap
import threading
import time

import pytest

from netring_testkit import runner, scenario as sc
from netring_testkit.scenario.limits import Limits
from netring_testkit.plugin import require

pytestmark = pytest.mark.privileged


@pytest.fixture(autouse=True)
def _need_root():
    require()


def many(n, k, rate="", extra_src=False):
    rows = []
    for i in range(n):
        src = "tx2:eth0" if extra_src and i % 2 else "tx:eth0"
        dst = "rx:eth1" if extra_src and i % 2 else "rx:eth0"
        rows.append("      - {name: s%d, from: %s, to: %s, count: %d%s}" % (i, src, dst, k, rate))
    nodes = "[tx, tx2, rx]" if extra_src else "[tx, rx]"
    links = "[{endpoints: [tx:eth0, rx:eth0]}, {endpoints: [tx2:eth0, rx:eth1]}]" if extra_src else \
        "[{endpoints: [tx:eth0, rx:eth0]}]"
    caps = "[{on: rx:eth0}, {on: rx:eth1}]" if extra_src else "[{on: rx:eth0}]"
    text = textwrap.dedent("""\
        scenarios:
          - name: many
            topology: {nodes: %s, links: %s}
            traffic:
        %s
            capture: %s
            expect: {delivered: all, order: strict}
            timeout: 60s
            quiet: 500ms
        """) % (nodes, links, "\n".join(r[2:] for r in rows), caps)
    # Past the default stream limit on purpose: what the engine does with many streams is the subject.
    return sc.load_text(text, "many.yaml", limits=Limits(streams=4096, matrix_streams=4096))[0]


class ThreadPeak:
    """The most threads alive at once while the body runs (sampled every 2 ms): all of them
    (``peak``, against ``base`` before, this watcher not included) and the engine's senders (``senders``)."""

    def __enter__(self):
        self.base = threading.active_count()
        self.peak = self.senders = 0
        self._done = threading.Event()
        self._t = threading.Thread(target=self._watch, daemon=True)
        self._t.start()
        return self

    def _watch(self):
        while not self._done.is_set():
            self.peak = max(self.peak, threading.active_count() - 1)
            self.senders = max(self.senders, sum(t.name.startswith("netring-tx") for t in threading.enumerate()))
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._done.set()
        self._t.join()


def test_500_streams_use_bounded_threads_and_deliver_every_frame():
    s = many(500, 10)
    with ThreadPeak() as tp:
        r = runner.run(s)
    assert r.status == "passed", r.render()[:2000]
    assert sum(x.delivered for x in r.streams) == 5000 and all(x.sent == 10 for x in r.streams)
    assert r.captures["rx:eth0"]["drops"] == 0
    # one source endpoint: one sender; beyond it only the short-lived namespace helpers of the set-up
    assert tp.senders == 1 and tp.peak <= tp.base + runner.MAX_SENDERS, (tp.base, tp.peak, tp.senders)
    assert r.duration < 10


def test_2000_streams_pass_or_fail_with_a_typed_message():
    r = runner.run(many(2000, 10))
    assert "internal error" not in (r.error or ""), r.error
    assert r.status == "passed" or (r.status == "error" and "RingMemoryError" in r.error), r.render()[:2000]
    if r.status == "passed":
        assert sum(x.delivered for x in r.streams) == 20000


def test_streams_of_two_endpoints_share_bounded_senders_and_keep_their_order():
    with ThreadPeak() as tp:
        r = runner.run(many(200, 50, extra_src=True))
    assert r.status == "passed", r.render()[:2000]
    assert all((x.sent, x.delivered, x.reordered, x.duplicated) == (50, 50, 0, 0) for x in r.streams)
    # two source endpoints: two senders; plus at most one namespace helper per node during set-up
    assert tp.senders == 2 and tp.peak <= tp.base + 2 + 3, (tp.base, tp.peak, tp.senders)


def test_paced_streams_sharing_a_sender_keep_their_rate():
    """Two streams of 400 frames at 1 kpps each from one endpoint: together ~0.4 s, not 0.8 s (taking
    turns serially) nor ~0 (unpaced)."""
    r = runner.run(many(2, 400, rate=", rate: 1kpps"))
    assert r.status == "passed", r.render()
    assert 0.3 < r.tx_seconds < 0.7, r.tx_seconds


def test_the_drain_loop_runs_before_the_first_sender_starts(monkeypatch):
    events = []
    monkeypatch.setattr(runner, "_on_event", lambda name, *d: events.append(name))
    r = runner.run(many(50, 10))
    assert r.status == "passed", r.render()
    assert events[0] == "drain-started" and events.count("drain-started") == 1
    assert events[1:] == ["sender-starting"] * (len(events) - 1) and 1 <= len(events) - 1 <= runner.MAX_SENDERS
