"""Bad input and hostile conditions → the right typed error and message; Ctrl-C; no leaks."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from hypothesis import given, strategies as st

from netring import (Capture, ConfigurationError, FrameTooLargeError, Injector, InterfaceNotFoundError,
                     NetringPermissionError, cbpf)

from core_net import needs_root
from core_frames import mixed_frames

privileged = [pytest.mark.privileged, needs_root]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("kw,field", [
    (dict(block_size=3000), "block_size"),
    (dict(block_size=4096 * 3), "block_size"),
    (dict(block_size=1 << 30), "block_size"),
    (dict(block_size="big"), "block_size"),
    (dict(block_count=0), "block_count"),
    (dict(block_count=True), "block_count"),
    (dict(block_size=1 << 24, block_count=65536), "block_count"),
    (dict(frame_size=40), "frame_size"),
    (dict(frame_size=1 << 20), "frame_size"),
    (dict(block_timeout_ms=-1), "block_timeout_ms"),
    (dict(promiscuous=1), "promiscuous"),
    (dict(ignore_outgoing="yes"), "ignore_outgoing"),
    (dict(busy_poll_us=-5), "busy_poll_us"),
    (dict(fanout=("roundrobin", 1)), "fanout.mode"),
    (dict(fanout=("hash", 70000)), "fanout.group_id"),
    (dict(fanout=("hash", 1, ["sticky"])), "fanout.flags"),
    (dict(fanout=42), "fanout"),
    (dict(bpf_filter=[]), "bpf_filter"),
    (dict(bpf_filter="{ 0x6, 0, 0 }"), "bpf_filter"),
    (dict(bpf_filter=[(0x6, 0, 300, 0)]), "bpf_filter"),
])
def test_capture_geometry_each_field_validated(kw, field):
    # validation happens before any socket is opened: no privileges needed
    with pytest.raises(ConfigurationError) as ei:
        Capture("lo", **kw)
    assert ei.value.field == field
    assert field.split(".")[0] in str(ei.value)


@pytest.mark.parametrize("kw,field", [
    (dict(frame_size=100), "frame_size"),
    (dict(frame_size=65537), "frame_size"),
    (dict(frame_count=0), "frame_count"),
    (dict(frame_size=65536, frame_count=1 << 20), "frame_count"),
    (dict(qdisc_bypass="no"), "qdisc_bypass"),
])
def test_injector_geometry_each_field_validated(kw, field):
    with pytest.raises(ConfigurationError) as ei:
        Injector("lo", **kw)
    assert ei.value.field == field


@given(code=st.integers(0, 2**16 - 1), jt=st.integers(0, 255), jf=st.integers(0, 255), k=st.integers(0, 2**32 - 1))
def test_cbpf_text_and_tuples_agree(code, jt, jf, k):
    text = "{ 0x%x, %d, %d, 0x%08x },\n" % (code, jt, jf, k)
    assert cbpf.parse(text) == cbpf.parse([(code, jt, jf, k)]) == ((code, jt, jf, k),)


@pytest.mark.privileged
def test_interface_not_found_names_interface_and_namespace():
    from netring import NetNS
    with NetNS.create() as ns:
        with pytest.raises(InterfaceNotFoundError) as ei:
            Capture("nope0", netns=ns)
        assert "'nope0'" in str(ei.value) and str(ns) in str(ei.value)
        with pytest.raises(InterfaceNotFoundError, match="nope1"):
            Injector("nope1", netns=ns)


def test_unknown_interface_in_current_namespace():
    with pytest.raises(InterfaceNotFoundError, match="'nr-missing0' not found in the current namespace"):
        Capture("nr-missing0")


@pytest.mark.privileged
@needs_root
def test_oversize_frame_is_typed_error_naming_length_and_capacity(veth):
    with Injector(veth.tx_if, netns=veth.a, frame_size=1024) as tx:
        cap = tx.capacity
        assert cap == 1024 - 32
        with pytest.raises(FrameTooLargeError,
                           match=r"frame of 1500 B exceeds the TX ring's frame capacity of %d B" % cap):
            tx.send(bytes(1500))
        with pytest.raises(FrameTooLargeError) as ei:
            tx.send_batch([bytes(100), bytes(cap + 1)])
        assert (ei.value.length, ei.value.capacity) == (cap + 1, cap)
        assert tx.sent_frames == 0  # nothing of the batch was sent
        with pytest.raises(FrameTooLargeError):
            tx.allocate(cap + 1)
    with Injector(veth.tx_if, netns=veth.a, frame_size=4096) as tx:
        assert tx.capacity == 1500 + 18  # bounded by the MTU, not only by the slot (a tagged frame)
        with pytest.raises(FrameTooLargeError) as ei:
            tx.send(bytes(1519))
        assert (ei.value.limit, ei.value.capacity) == ("mtu", 1514)  # untagged: MTU + 14


@pytest.mark.privileged
@needs_root
def test_tx_ring_full_allocate_returns_none_then_succeeds_after_drain(veth):
    with Injector(veth.tx_if, netns=veth.a, frame_size=2048, frame_count=8) as tx:
        assert tx.frame_count == 8
        frames = mixed_frames(8, seed=9, hi=200)
        for f in frames:
            s = tx.allocate(len(f))
            assert s is not None
            s.data[:] = f
            s.send()
        assert tx.allocate(60) is None
        assert tx.counts() == (0, 8, 0)
        assert tx.flush() == 8
        assert tx.wait_drained(5.0)
        assert tx.available == 8 and tx.pending == 0 and tx.rejected == 0
        s = tx.allocate(60)
        assert s is not None
        s.discard()
        s2 = tx.allocate(60)  # a discarded slot is reused, not skipped
        assert s2 is not None
        with pytest.raises(Exception, match="still open"):
            tx.allocate(60)
        s2.discard()


def _run_child(code, preexec=None, argv_prefix=(), timeout=20):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run(list(argv_prefix) + [sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.mark.privileged
@needs_root
def test_unprivileged_process_gets_permission_error_naming_cap_net_raw():
    code = """
        import netring
        try:
            netring.Capture("lo")
        except netring.NetringPermissionError as e:
            print("CAP=%s" % e.capability); print("MSG=%s" % e)
        try:
            netring.Injector("lo")
        except netring.NetringPermissionError as e:
            print("CAP2=%s" % e.capability)
    """
    # drop CAP_NET_RAW from the bounding set: even uid 0 cannot regain it across exec
    r = _run_child(code, argv_prefix=["setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw", "--"])
    assert r.returncode == 0, r.stderr
    assert "CAP=CAP_NET_RAW" in r.stdout and "CAP2=CAP_NET_RAW" in r.stdout
    assert "grant CAP_NET_RAW" in r.stdout
    assert issubclass(NetringPermissionError, PermissionError)


@pytest.mark.privileged
@needs_root
def test_ctrl_c_interrupts_next_batch_promptly():
    # The child announces (from a helper thread, 0.3 s after the main thread entered next_batch(10))
    # that it is inside the wait; we send SIGINT and time SIGINT → "interrupted". The wait polls
    # in ≤ 200 ms slices and returns on EINTR, so this takes milliseconds; 1.5 s is generous for a
    # loaded machine yet far below the 10 s a wait that ignored signals would take.
    code = """
        import sys, threading, time, netring
        ns = netring.NetNS.create()
        cap = netring.Capture("lo", netns=ns)
        def announce():
            time.sleep(0.3)
            print("inside", flush=True)
        threading.Thread(target=announce, daemon=True).start()
        try:
            cap.next_batch(timeout=10)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            cap.close(); ns.close()
            sys.exit(3)
        print("timed out", flush=True)
    """
    env = dict(os.environ, PYTHONPATH=ROOT)
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert p.stdout.readline().strip() == "inside"
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        line = p.stdout.readline().strip()
        elapsed = time.monotonic() - t0
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert line == "interrupted", (line, out, err)
    assert p.returncode == 3, (out, err)
    assert elapsed < 1.5, "SIGINT took %.2f s to interrupt next_batch (the wait ignores signals?)" % elapsed


@pytest.mark.privileged
@needs_root
def test_no_fd_or_mapping_leaks_after_many_open_close(veth):
    def fds():
        return len(os.listdir("/proc/self/fd"))

    def maps():
        with open("/proc/self/maps") as f:
            return sum(1 for line in f if "socket:[" in line)  # the ring mappings

    for _ in range(3):  # warm-up (imports, pyroute2 sockets)
        with Capture(veth.rx_if, netns=veth.b), Injector(veth.tx_if, netns=veth.a):
            pass
    before = fds(), maps()
    for _ in range(20):
        with Capture(veth.rx_if, netns=veth.b, block_count=2) as c, Injector(veth.tx_if, netns=veth.a) as t:
            t.send(mixed_frames(1)[0])
            b = c.next_batch(timeout=1)
            if b is not None:
                list(b)  # views handed out; close() returns the batch
        c.close()
    assert (fds(), maps()) == before
