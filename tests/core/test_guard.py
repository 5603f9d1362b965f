"""RingGuard's close protocol, driven deterministically with a fake teardown (no ring, no network):
a close requested while another is under way runs no second teardown; close() from a "signal
handler" that interrupts a guard step (its lock held) neither deadlocks nor is lost; a failing
teardown raises in the thread that asked for the close, never in an innocent caller."""
import threading

import pytest

from netring._ring import RingGuard

JOIN = 10.0  # generous bound: a hang fails the test instead of blocking pytest


class Boom(Exception):
    pass


def _run(fn):
    """Run fn on a daemon thread; return (thread, outcome dict) — outcome gets "ok" or "err"."""
    out = {}

    def body():
        try:
            out["ok"] = fn()
        except BaseException as e:  # noqa: BLE001 - recorded for the assertion
            out["err"] = e
    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t, out


def _until(cond):
    ev = threading.Event()
    for _ in range(1000):
        if cond():
            return
        ev.wait(0.01)
    raise AssertionError("condition never became true")


def test_close_from_inside_guard_while_another_close_waits_runs_teardown_once():
    g = RingGuard("probe")
    calls = []
    inside, go_on = threading.Event(), threading.Event()

    def a():
        with g:
            inside.set()
            assert go_on.wait(JOIN)
            return g.begin_close(lambda: calls.append("A"))  # e.g. a signal handler on this thread

    ta, oa = _run(a)
    assert inside.wait(JOIN)
    tx, ox = _run(lambda: g.run_close(lambda: calls.append("X")))
    _until(lambda: g.closing)  # X now waits for A to leave the guard
    go_on.set()
    ta.join(JOIN)
    tx.join(JOIN)
    assert not ta.is_alive() and not tx.is_alive()
    assert oa == {"ok": "pending"} and ox == {"ok": None}
    assert calls == ["X"]
    assert g.closed and g.wake_fd == -1


class _HookDict(dict):
    """The guard's in-flight table, firing a callback as __enter__ (set) or __exit__ (del) updates
    it — i.e. exactly where a signal handler may run while the guard's lock is held."""

    def __init__(self, on):
        super().__init__()
        self.on, self.fire = on, None

    def _maybe(self, op):
        if op == self.on and self.fire is not None:
            f, self.fire = self.fire, None
            f()

    def __setitem__(self, k, v):
        super().__setitem__(k, v)
        self._maybe("set")

    def __delitem__(self, k):
        super().__delitem__(k)
        self._maybe("del")


@pytest.mark.parametrize("step", ["set", "del"])  # handler inside __enter__ / inside __exit__
def test_close_from_handler_interrupting_a_guard_step_neither_deadlocks_nor_is_lost(step):
    g = RingGuard("probe")
    g._inflight = hook = _HookDict(step)
    calls, hows = [], []

    def main():
        hook.fire = lambda: hows.append(g.begin_close(lambda: calls.append(1)))
        with g:
            pass
        return g.closed

    t, out = _run(main)
    t.join(JOIN)
    assert not t.is_alive(), "close() from a handler inside a guard step deadlocked"
    assert out == {"ok": True}
    assert hows == ["deferred"] and calls == [1]
    with pytest.raises(Exception, match="probe is closed"):
        with g:
            pass


def test_close_from_handler_during_the_teardown_returns_and_teardown_runs_once():
    g = RingGuard("probe")
    calls = []

    def closer():
        calls.append(1)
        g.run_close(lambda: calls.append(2))  # a handler interrupting our own teardown

    t, out = _run(lambda: g.run_close(closer))
    t.join(JOIN)
    assert not t.is_alive(), "close() from a handler during the teardown deadlocked"
    assert out == {"ok": None} and calls == [1] and g.closed


def test_failing_deferred_teardown_raises_in_the_closing_thread_not_in_the_last_caller():
    g = RingGuard("probe")
    calls = []
    b_in, b_go, a_asked = threading.Event(), threading.Event(), threading.Event()

    def closer():
        calls.append(threading.current_thread().name)
        raise Boom("views alive")

    def b():
        with g:
            b_in.set()
            assert b_go.wait(JOIN)
        return "b left"

    def a():
        assert b_in.wait(JOIN)
        with g:
            how = g.begin_close(closer)  # close requested inside the guard: deferred to our exit
            a_asked.set()
        return how

    tb, ob = _run(b)
    ta, oa = _run(a)
    assert a_asked.wait(JOIN)
    b_go.set()  # B leaves last
    tb.join(JOIN)
    ta.join(JOIN)
    assert not ta.is_alive() and not tb.is_alive()
    assert ob == {"ok": "b left"}, "the teardown's error hit a caller that never closed"
    assert isinstance(oa.get("err"), Boom)
    assert calls == [ta.name]
    assert not g.closing and not g.closed  # failed close: open again, usable
    with g:
        pass


def test_failing_teardown_raises_in_run_close_and_leaves_guard_open():
    g = RingGuard("probe")
    with pytest.raises(Boom):
        g.run_close(lambda: (_ for _ in ()).throw(Boom("x")))
    assert not g.closing and not g.closed
    g.run_close(lambda: None)
    assert g.closed
    assert g.begin_close(lambda: None) == "closed"
