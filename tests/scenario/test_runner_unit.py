"""The engine's failure paths that need no namespaces: unforeseen exceptions become error results,
and the sender join survives repeated Ctrl-C."""
import json
import shutil
import signal
import subprocess
import threading
import textwrap
import time

import pytest

from netring_testkit import report, runner, scenario as sc

PAIR = textwrap.dedent("""\
    scenarios:
      - name: pair
        topology: {nodes: [tx, rx], links: [{endpoints: [tx:eth0, rx:eth0]}]}
        traffic: [{name: main, from: tx:eth0, to: rx:eth0, count: 10}]
    """)


class _Boom:
    def build(self):
        raise RuntimeError("boom from deep inside")

    def close(self, failed=None):
        pass


def test_any_exception_is_an_error_result_with_its_traceback_in_the_artifact(tmp_path):
    s = sc.load_text(PAIR, "p.yaml")[0]
    r = runner.run(s, artifacts_dir=str(tmp_path), topology_factory=lambda spec: _Boom())
    assert r.status == "error"
    assert r.error == ("internal error while running the scenario: RuntimeError: boom from deep inside (the "
                       "traceback is in the JSON artifact, --netring-artifacts)")
    text = r.render()
    assert "error: internal error while running the scenario: RuntimeError" in text and "Traceback" not in text
    doc = json.loads((tmp_path / "pair.json").read_text())
    assert doc["status"] == "error"
    assert doc["traceback"].startswith("Traceback") and 'raise RuntimeError("boom from deep inside")' in doc["traceback"]
    # nothing was sent: the pcapng is still there, empty but with an interface block (tcpdump wants one)
    assert doc["pcapng"] == {"file": "pair.pcapng", "sent": 0, "arrived": 0, "unexpected": 0}
    assert report.read_pcapng(tmp_path / "pair.pcapng") == []
    if shutil.which("tcpdump"):
        td = subprocess.run(["tcpdump", "-r", str(tmp_path / "pair.pcapng")], capture_output=True, text=True)
        assert td.returncode == 0, td.stderr


def test_keyboard_interrupt_still_propagates():
    class Interrupted(_Boom):
        def build(self):
            raise KeyboardInterrupt

    s = sc.load_text(PAIR, "p.yaml")[0]
    with pytest.raises(KeyboardInterrupt):
        runner.run(s, topology_factory=lambda spec: Interrupted())


class _FakeSender:
    def __init__(self, begun=True):
        self.begun = begun
        self.exited = threading.Event()


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="needs the main thread")
def test_sender_join_absorbs_repeated_ctrl_c_until_senders_returned():
    busy, idle = _FakeSender(), _FakeSender(begun=False)  # idle: never started, so never inside C
    stop = threading.Event()
    delivered = []
    old = signal.signal(signal.SIGINT, lambda *a: (delivered.append(1), signal.default_int_handler(*a)))

    def interrupt_twice_then_return():
        stop.wait(10)  # _stop_senders sets it first: the interrupts land while it waits
        time.sleep(0.05)
        for n in (1, 2):
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            for _ in range(500):  # until the handler ran in the main thread (bounded)
                if len(delivered) >= n:
                    break
                time.sleep(0.01)
        busy.exited.set()

    t = threading.Thread(target=interrupt_twice_then_return)
    try:
        t.start()
        with pytest.raises(KeyboardInterrupt):
            runner._stop_senders([busy, idle], stop)
        assert busy.exited.is_set(), "returned while a sender could still be inside C"
        assert stop.is_set() and len(delivered) == 2
    finally:
        t.join()
        signal.signal(signal.SIGINT, old)


def test_sender_join_without_interrupt_waits_for_running_senders_only():
    """It sets ``stop``, waits for a sender still inside C until that one exits, and does not wait
    for one that never began (whose ``exited`` is never set)."""
    running, done, never = _FakeSender(), _FakeSender(), _FakeSender(begun=False)
    done.exited.set()
    stop = threading.Event()
    seen_stop = []

    def finish_later():
        seen_stop.append(stop.wait(5))
        time.sleep(0.3)
        running.exited.set()

    t = threading.Thread(target=finish_later)
    t.start()
    try:
        start = time.monotonic()
        assert runner._stop_senders([running, done, never], stop) is None
        waited = time.monotonic() - start
    finally:
        t.join()
    assert stop.is_set() and seen_stop == [True]
    assert running.exited.is_set()          # returned only after the running sender exited
    assert 0.25 <= waited < 5, waited


class _ClockInjector:
    """Stands in for an Injector: records (time, stream_id, first_seq, n) per send_stream call; an unpaced
    call "sends" 1 frame per µs until its count or timeout, like a ring the kernel drains at 1 Mpps."""

    def __init__(self):
        self.calls = []

    def send_stream(self, templates, stream_id, first_seq, count, rate_pps=None, csum_offsets=None, timeout=None):
        assert rate_pps is None  # streams sharing a sender are paced in Python, sent unpaced
        n = min(count, int((timeout or 1) * 1e6))
        time.sleep(n / 1e6)
        self.calls.append((time.monotonic(), stream_id, first_seq, n))
        return n

    def wait_drained(self, timeout):
        return True


def _stream(name, sid, count, rate):
    return sc.Stream(name=name, stream_id=sid, src="tx:eth0", dst="rx:eth0", count=count, rate_pps=rate,
                     frame={"udp": {}}, sizes=[64])


def test_a_paced_stream_sharing_a_sender_with_unpaced_ones_keeps_its_rate_and_order():
    inj = _ClockInjector()
    paced = runner._StreamTx(_stream("paced", 0, 300, 1000), [b"t"], [-1])
    bulk = [runner._StreamTx(_stream("bulk%d" % i, i + 1, 400_000, None), [b"t"], [-1]) for i in range(2)]
    s = runner._Sender([(inj, paced)] + [(inj, b) for b in bulk], time.monotonic() + 10, threading.Event())
    t0 = time.monotonic()
    s.run()
    assert s.error is None and paced.sent == 300 and all(b.sent == 400_000 for b in bulk)
    mine = [(t, seq, n) for t, sid, seq, n in inj.calls if sid == 0]
    assert [seq for _, seq, _ in mine] == [sum(n for _, _, n in mine[:i]) for i in range(len(mine))]  # in order
    start = mine[0][0] - t0
    for t, seq, n in mine:
        # never ahead of the schedule (frame k due at start + k/rate), never more than ~2 turns behind it
        due = int((t - t0 - start) * 1000) + 2
        assert seq + n <= due + 60, (t - t0, seq, n)
        assert seq + n >= due - 2 * 1000 * runner._TURN_S - 5, (t - t0, seq, n)
    took = paced.finished_at - paced.started_at
    assert 0.28 < took < 0.4, took
