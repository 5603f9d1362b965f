"""Closing a Capture/Injector from another thread while a call is inside it: the call returns or
raises NetringError, the process survives (each scenario runs in a child: a segfault fails the
test instead of killing pytest), repeated with varied timing. Also close() from a signal handler
that interrupted a call on the same object (the deferred close)."""
import os
import subprocess
import sys
import textwrap

import pytest

from core_net import needs_root

pytestmark = [pytest.mark.privileged, needs_root]

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ROUNDS = 25


def _child(args, timeout=180):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, os.path.dirname(HERE), ROOT]))
    return subprocess.run([sys.executable] + args, env=env, capture_output=True, text=True, timeout=timeout, cwd=HERE)


@pytest.mark.parametrize("scenario,seed", [
    ("next_batch", 1), ("drain", 2), ("rx_busy", 3),  # Capture
    ("send_batch", 4), ("send_stream", 5), ("slots", 6),  # Injector (send_stream paced by rate_pps)
])
def test_close_from_another_thread_never_crashes(scenario, seed):
    r = _child([os.path.join(HERE, "race_child.py"), scenario, str(ROUNDS), str(seed)])
    assert r.returncode == 0, "rc=%d\n%s\n%s" % (r.returncode, r.stdout[-3000:], r.stderr[-3000:])
    outcomes = [line.split()[1] for line in r.stdout.splitlines() if line.startswith("OUTCOME")]
    assert len(outcomes) == ROUNDS and r.stdout.rstrip().endswith("DONE")
    # the call either finished normally or raised a NetringError (the "closed" one, typically)
    assert all(o.startswith(("ok:", "err:")) for o in outcomes), outcomes
    assert any(o.startswith("err:") for o in outcomes), "close never interrupted a call: the test tests nothing"


def test_close_from_signal_handler_interrupting_next_batch_is_deferred_not_deadlocked():
    code = """
        import signal, sys
        from core_net import VethPair
        from netring import Capture, NetringError
        v = VethPair()
        cap = Capture(v.rx_if, netns=v.b)
        signal.signal(signal.SIGALRM, lambda *a: cap.close())
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        try:
            cap.next_batch(timeout=5)
            print("returned")
        except NetringError as e:
            print("raised", e)
        print("closed", cap.closed)
        try:
            cap.next_batch(0)
        except NetringError as e:
            print("after", e)
        v.close()
    """
    r = _child(["-c", textwrap.dedent(code)], timeout=60)
    assert r.returncode == 0, r.stderr
    assert "raised Capture on vb is closed" in r.stdout
    assert "closed True" in r.stdout
    assert "after Capture on vb is closed" in r.stdout
