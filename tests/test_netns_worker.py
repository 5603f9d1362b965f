"""netring.netns: the per-namespace worker thread behind NetNS.run (reuse, concurrency, nesting, close, fork)."""
import os
import threading

import pytest

from netring.errors import NetringError
from netring.netns import NetNS

pytestmark = pytest.mark.privileged

needs_root = pytest.mark.privileged


def _here():
    return os.stat("/proc/thread-self/ns/net").st_ino


def _threads_in(inode):
    """Threads of this process whose network namespace is ``inode``."""
    out = []
    for tid in os.listdir("/proc/self/task"):
        try:
            if os.readlink("/proc/self/task/%s/ns/net" % tid) == "net:[%d]" % inode:
                out.append(tid)
        except OSError:
            pass
    return out


@needs_root
def test_runs_inside_and_reuses_one_thread():
    with NetNS.create() as ns:
        idents = {ns.run(threading.get_ident) for _ in range(20)}
        assert ns.run(_here) == ns.inode != _here()
        assert len(idents) == 1
        # The thread that unshared the namespace may still be exiting (its OS task outlives
        # Thread.join() a moment, see below): wait for it, boundedly, before counting.
        for _ in range(200):
            if len(_threads_in(ns.inode)) == 1:
                break
            threading.Event().wait(0.01)
        assert len(_threads_in(ns.inode)) == 1


@needs_root
def test_errors_propagate_and_the_worker_keeps_serving():
    with NetNS.create() as ns:
        with pytest.raises(ZeroDivisionError):
            ns.run(lambda: 1 / 0)
        assert ns.run(_here) == ns.inode


@needs_root
def test_nested_and_concurrent_calls_do_not_wait_for_each_other():
    with NetNS.create() as ns, NetNS.create() as other:
        # a job that runs another job in the same and in another namespace
        assert ns.run(lambda: (ns.run(_here), other.run(_here), _here())) == (ns.inode, other.inode, ns.inode)
        # a job that waits for a second thread's job in the same namespace (deadlocks if serialized)
        gate = threading.Event()
        got = []

        def second():
            got.append(ns.run(_here))
            gate.set()

        def first():
            t = threading.Thread(target=second)
            t.start()
            ok = gate.wait(5.0)
            t.join()
            return ok, _here()

        assert ns.run(first) == (True, ns.inode)
        assert got == [ns.inode]
        results = []
        ts = [threading.Thread(target=lambda: results.append(ns.run(_here))) for _ in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert results == [ns.inode] * 8


@needs_root
def test_close_stops_the_worker_so_the_namespace_can_go():
    ns = NetNS.create()
    inode = ns.inode
    ns.run(_here)
    assert _threads_in(inode)
    ns.close()
    # Thread.join() returns when Python's thread body ends; the OS task may take a moment longer.
    for _ in range(100):
        if not _threads_in(inode):
            break
        threading.Event().wait(0.01)
    assert _threads_in(inode) == []
    with pytest.raises(NetringError, match="closed"):
        ns.run(_here)


@needs_root
def test_close_from_inside_a_job_returns():
    ns = NetNS.create()
    inode = ns.inode
    assert ns.run(lambda: (ns.close(), _here())[1]) == inode
    assert ns.closed
    for _ in range(100):
        if not _threads_in(inode):
            break
        threading.Event().wait(0.01)
    assert _threads_in(inode) == []


@needs_root
def test_a_forked_child_gets_its_own_worker():
    with NetNS.create() as ns:
        ns.run(_here)  # the parent's worker exists
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: the parent's worker thread does not exist here
            try:
                os.write(w, b"1" if ns.run(_here) == ns.inode else b"0")
            finally:
                os._exit(0)
        os.close(w)
        try:
            got = os.read(r, 1)
        finally:
            os.close(r)
            os.waitpid(pid, 0)
        assert got == b"1"
