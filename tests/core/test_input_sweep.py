"""Every public method of Capture/Injector/TxSlot/SeqChecker (and the check helpers) fed wrong
types and out-of-range values: only NetringError subclasses come out — never TypeError,
OverflowError, AttributeError, a ValueError from deep inside, nor a crash. And every object's
methods after close raise the "closed"/stale NetringError."""
import math

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from netring import Capture, ConfigurationError, Injector, NetringError, SeqChecker
from netring.check import locate, payload_hash, prepare_templates, stamp_frame

from core_frames import mixed_frames, stamped
from core_net import needs_root

FRAME = mixed_frames(1, seed=2, lo=100, hi=100)[0]
TMPL, TMPL_OFF = stamped(100)

JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=4), st.binary(max_size=40),
    st.lists(st.integers(-300, 300), max_size=3), st.dictionaries(st.integers(-2, 2), st.integers(-2, 2), max_size=2),
    st.sampled_from([object(), (), b"x" * 3000, float("inf"), -0.0, [FRAME], 1j]),
    # built per draw (hypothesis hashes sampled values; these memoryviews are unhashable)
    st.builds(lambda: bytearray(FRAME)), st.builds(lambda: memoryview(FRAME)),
    st.builds(lambda: memoryview(bytes(64)).cast("I")), st.builds(lambda: memoryview(bytes(64)).cast("B", (8, 8))),
)


def _long_wait(v):
    """Values that are *valid* timeouts but would make the sweep wait (None/inf: forever)."""
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v) and v > 0.02)


TIMEOUTS = JUNK.filter(lambda v: not _long_wait(v))
SWEEP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class Objs:
    pass


@pytest.fixture(scope="module")
def objs(veth):
    o = Objs()
    o.cap = Capture(veth.rx_if, netns=veth.b, block_timeout_ms=1)
    o.tx = Injector(veth.tx_if, netns=veth.a, frame_count=64)
    o.chk = SeqChecker({1: 10})
    yield o
    o.cap.close()
    o.tx.close()


def _slot_send(o, v):
    s = o.tx.allocate(100)
    if s is None:
        o.tx.wait_drained(1.0)
        return None
    try:
        return s.send(v)
    finally:
        s.discard()


def _allocate(o, v):
    s = o.tx.allocate(v)
    if s is not None:
        s.discard()


def _feed_batch(o, v):
    o.chk.feed(v)


CALLS = {
    "Capture.next_batch(timeout)": (TIMEOUTS, lambda o, v: o.cap.next_batch(v)),
    "Capture.recv(max_packets)": (JUNK, lambda o, v: o.cap.recv(v, timeout=0)),
    "Capture.recv(timeout)": (TIMEOUTS, lambda o, v: o.cap.recv(1, timeout=v)),
    "Capture.batches(timeout)": (TIMEOUTS, lambda o, v: list(o.cap.batches(v))),
    "Capture.drain(checker)": (JUNK, lambda o, v: o.cap.drain(v, 0.01)),
    "Capture.drain(timeout)": (TIMEOUTS, lambda o, v: o.cap.drain(o.chk, v)),
    "Capture.drain(quiet)": (TIMEOUTS, lambda o, v: o.cap.drain(o.chk, 0.01, quiet=v)),
    "Injector.allocate(length)": (JUNK, _allocate),
    "Injector.send(frame)": (JUNK, lambda o, v: o.tx.send(v, timeout=0.02)),
    "Injector.send(timeout)": (TIMEOUTS, lambda o, v: o.tx.send(FRAME, timeout=v)),
    "Injector.send_batch(frames)": (JUNK, lambda o, v: o.tx.send_batch(v, timeout=0.02)),
    "Injector.send_batch(frames[1])": (JUNK, lambda o, v: o.tx.send_batch([FRAME, v], timeout=0.02)),
    "Injector.send_batch(timeout)": (TIMEOUTS, lambda o, v: o.tx.send_batch([FRAME], timeout=v)),
    "Injector.wait_drained(timeout)": (TIMEOUTS, lambda o, v: o.tx.wait_drained(v)),
    "Injector.send_stream(templates)": (JUNK, lambda o, v: o.tx.send_stream(v, 1, 0, 3, timeout=0.02)),
    "Injector.send_stream(stream_id)": (JUNK, lambda o, v: o.tx.send_stream([TMPL], v, 0, 3, timeout=0.02)),
    "Injector.send_stream(first_seq)": (JUNK, lambda o, v: o.tx.send_stream([TMPL], 1, v, 3, timeout=0.02)),
    "Injector.send_stream(count)": (JUNK, lambda o, v: o.tx.send_stream([TMPL], 1, 0, v, timeout=0.02)),
    "Injector.send_stream(rate_pps)": (JUNK, lambda o, v: o.tx.send_stream([TMPL], 1, 0, 3, rate_pps=v,
                                                                           timeout=0.02)),
    "Injector.send_stream(csum_offsets)": (JUNK, lambda o, v: o.tx.send_stream([TMPL], 1, 0, 3, csum_offsets=v,
                                                                               timeout=0.02)),
    "Injector.send_stream(timeout)": (TIMEOUTS, lambda o, v: o.tx.send_stream([TMPL], 1, 0, 3, timeout=v)),
    "TxSlot.send(length)": (JUNK, _slot_send),
    "SeqChecker(expected)": (JUNK, lambda o, v: SeqChecker(v)),
    "SeqChecker(keep_unexpected)": (JUNK, lambda o, v: SeqChecker({1: 1}, keep_unexpected=v)),
    "SeqChecker(snap)": (JUNK, lambda o, v: SeqChecker({1: 1}, snap=v)),
    "SeqChecker.feed(batch)": (JUNK, _feed_batch),
    "SeqChecker.feed_bytes(frame)": (JUNK, lambda o, v: o.chk.feed_bytes(v)),
    "SeqChecker.counts(stream_id)": (JUNK, lambda o, v: o.chk.counts(v)),
    "stamp_frame(template)": (JUNK, lambda o, v: stamp_frame(v, 1, 0)),
    "stamp_frame(stream_id)": (JUNK, lambda o, v: stamp_frame(TMPL, v, 0)),
    "stamp_frame(seq)": (JUNK, lambda o, v: stamp_frame(TMPL, 1, v)),
    "stamp_frame(csum_offset)": (JUNK, lambda o, v: stamp_frame(TMPL, 1, 0, v)),
    "prepare_templates(templates)": (JUNK, lambda o, v: prepare_templates(v)),
    "prepare_templates(csum_offsets)": (JUNK, lambda o, v: prepare_templates([TMPL], v)),
    "prepare_templates(capacity)": (JUNK, lambda o, v: prepare_templates([TMPL], None, v)),
    "locate(frame)": (JUNK, lambda o, v: locate(v)),
    "payload_hash(payload)": (JUNK, lambda o, v: payload_hash(v)),
}


@pytest.mark.privileged
@needs_root
@pytest.mark.parametrize("name", sorted(CALLS))
def test_wrong_inputs_raise_only_netring_errors(objs, name):
    strategy, call = CALLS[name]

    @SWEEP
    @given(v=strategy)
    def check(v):
        try:
            call(objs, v)
        except NetringError:
            pass
        # anything else (TypeError, OverflowError, AttributeError, ValueError…) fails the test

    check()
    assert not objs.cap.closed and not objs.tx.closed


@pytest.mark.parametrize("value", [-1, -0.5, float("nan"), float("-inf"), "1", b"1", True, [1], 1e10])
def test_timeout_validation_names_the_field(value):
    from netring._ring import check_timeout
    with pytest.raises(ConfigurationError) as ei:
        check_timeout("timeout", value)
    assert ei.value.field == "timeout" and "timeout" in str(ei.value)
    assert check_timeout("timeout", None) is None and check_timeout("timeout", float("inf")) is None
    assert check_timeout("timeout", 0) == 0.0 and check_timeout("timeout", 2) == 2.0
    with pytest.raises(ConfigurationError, match="wait"):
        check_timeout("wait", None, none_ok=False)


@pytest.mark.privileged
@needs_root
def test_reviewer_input_defects(veth):
    with Injector(veth.tx_if, netns=veth.a) as tx:
        for bad in (60, "x" * 60, None, 1.5):
            with pytest.raises(ConfigurationError, match="frame is a") as ei:
                tx.send(bad)
            assert ei.value.field == "frame"
        with pytest.raises(ConfigurationError) as ei:
            tx.send(FRAME, timeout=-1)
        assert ei.value.field == "timeout"
        with pytest.raises(ConfigurationError) as ei:
            tx.wait_drained(None)
        assert ei.value.field == "timeout"
        with pytest.raises(ConfigurationError) as ei:
            tx.send_batch(None)
        assert ei.value.field == "frames"
        assert tx.sent_frames == 0  # none of the above sent anything
    with Capture(veth.rx_if, netns=veth.b) as cap:
        for bad in (-5, float("nan"), "1"):
            with pytest.raises(ConfigurationError) as ei:
                cap.next_batch(bad)
            assert ei.value.field == "timeout"
        with pytest.raises(ConfigurationError) as ei:
            cap.drain(None, 0.1)
        assert ei.value.field == "checker"


@pytest.mark.privileged
@needs_root
def test_everything_after_close_is_a_netring_error(veth):
    cap = Capture(veth.rx_if, netns=veth.b, block_timeout_ms=1)
    tx = Injector(veth.tx_if, netns=veth.a)
    chk = SeqChecker({1: 10})
    tx.send_batch(mixed_frames(5, seed=4))
    b = cap.next_batch(timeout=3)
    assert b is not None
    pk = list(b)
    slot = tx.allocate(100)
    cap.close()
    tx.close()
    after = [
        lambda: cap.next_batch(0), lambda: cap.recv(1, 0), lambda: cap.stats(), lambda: cap.fileno(),
        lambda: cap.drain(chk, 0.01), lambda: list(cap.batches(0)), lambda: cap.cumulative_stats(),
        lambda: list(b), lambda: b.descriptors(), lambda: b.block, lambda: pk[0].data, lambda: chk.feed(b),
        lambda: tx.send(FRAME), lambda: tx.send_batch([FRAME]), lambda: tx.allocate(100), lambda: tx.flush(),
        lambda: tx.counts(), lambda: tx.pending, lambda: tx.wait_drained(0.01), lambda: tx.fileno(),
        lambda: tx.send_stream([TMPL], 1, 0, 1), lambda: slot.send(), lambda: slot.data,
    ]
    for i, fn in enumerate(after):
        with pytest.raises(NetringError):
            fn()
    b.release()  # idempotent no-ops after close
    slot.discard()
    cap.close()
    tx.close()
    assert len(b) == 5 and cap.closed and tx.closed
