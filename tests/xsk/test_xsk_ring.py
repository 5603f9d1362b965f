"""The C ring protocol and frame allocator without a kernel: rings laid out in ordinary memory,
the test playing the kernel's side (csrc/xsk.c's nr_xsk_test_* helpers). A descriptor the
"kernel" returns that points outside the UMEM, across a frame, into a TX frame or at a frame it
never got is refused and counted — and never read."""
import errno
import socket

import pytest

from netring._core import ffi, lib

FRAME = 2048
FRAMES = 16          # 8 RX, 8 TX
RING = 8
RX_FRAMES = FRAMES // 2


class FakeSocket:
    """An nr_xsk over memory we own: UMEM, four rings (producer/consumer/flags words, then entries)."""

    def __init__(self):
        self.umem = ffi.new("uint8_t[]", FRAME * FRAMES)
        self.offs = ffi.new("struct nr_xsk_offs *", {"producer": 0, "consumer": 64, "flags": 128, "desc": 192})
        self.maps = [ffi.new("uint8_t[]", 192 + RING * 16) for _ in range(4)]
        x = self.x = ffi.new("struct nr_xsk *")
        x.fd = -1
        x.frame_size = FRAME
        x.frame_count = FRAMES
        x.rx_frames = RX_FRAMES
        x.headroom = 0
        x.need_wakeup = 1
        x.umem = self.umem
        x.umem_size = FRAME * FRAMES
        self.state = ffi.new("uint8_t[]", FRAMES)
        self.rx_free = ffi.new("uint64_t[]", RX_FRAMES)
        self.tx_free = ffi.new("uint64_t[]", FRAMES - RX_FRAMES)
        x.state, x.rx_free, x.tx_free = self.state, self.rx_free, self.tx_free
        for which, name in ((lib.NR_XSK_RING_FILL, "fill"), (lib.NR_XSK_RING_COMP, "comp"),
                            (lib.NR_XSK_RING_RX, "rx"), (lib.NR_XSK_RING_TX, "tx")):
            lib.nr_xsk_ring_layout(ffi.addressof(x, name), self.maps[which], self.offs, RING)
        assert lib.nr_xsk_init(x) == 0

    def fill_entries(self):
        out = []
        a = ffi.new("uint64_t *")
        while lib.nr_xsk_test_consume(self.x, lib.NR_XSK_RING_FILL, a) == 1:
            out.append(a[0])
        return out

    def take(self, n=64):
        arr = ffi.new("struct nr_xsk_pkt[]", n)
        got = lib.nr_xsk_rx_take(self.x, arr, n)
        return [(arr[i].addr, arr[i].len) for i in range(got)], arr, got


def test_fill_hands_out_each_rx_frame_once_and_never_a_tx_frame():
    s = FakeSocket()
    assert lib.nr_xsk_refill(s.x) == RX_FRAMES  # RING == RX_FRAMES: all fit
    addrs = s.fill_entries()
    assert sorted(addrs) == [i * FRAME for i in range(RX_FRAMES)]
    assert lib.nr_xsk_refill(s.x) == 0  # nothing free any more: nothing handed out twice
    assert s.fill_entries() == []


def test_good_descriptor_is_taken_and_released_back_to_the_fill_ring():
    s = FakeSocket()
    lib.nr_xsk_refill(s.x)
    s.fill_entries()
    s.umem[3 * FRAME + 256:3 * FRAME + 256 + 4] = b"abcd"
    assert lib.nr_xsk_test_produce(s.x, lib.NR_XSK_RING_RX, 3 * FRAME + 256, 60) == 0
    got, arr, n = s.take()
    assert got == [(3 * FRAME + 256, 60)]
    assert bytes(ffi.buffer(s.umem + got[0][0], 4)) == b"abcd"
    assert s.state[3] == lib.NR_XSK_HELD
    assert lib.nr_xsk_rx_release(s.x, arr, n) == 0
    assert s.fill_entries() == [3 * FRAME]
    # a second release of the same batch is refused: the frame is not put in the fill ring twice
    assert lib.nr_xsk_rx_release(s.x, arr, n) == -errno.EINVAL
    assert s.fill_entries() == []


@pytest.mark.parametrize("addr,length,why", [
    (FRAME * FRAMES + 64, 60, "past the end of the UMEM"),
    ((1 << 64) - 8, 60, "address wraps"),
    (2 * FRAME - 10, 60, "crosses into the next frame"),
    (FRAME * (RX_FRAMES + 1) + 256, 60, "a TX frame"),
    (256, 0, "empty"),
    (5 * FRAME + 256, (1 << 32) - 1, "length past the UMEM"),
])
def test_bad_rx_descriptor_is_refused_counted_and_not_read(addr, length, why):
    s = FakeSocket()
    lib.nr_xsk_refill(s.x)
    s.fill_entries()
    assert lib.nr_xsk_test_produce(s.x, lib.NR_XSK_RING_RX, addr, length) == 0
    assert lib.nr_xsk_test_produce(s.x, lib.NR_XSK_RING_RX, FRAME + 256, 64) == 0  # a good one behind it
    got, _, _ = s.take()
    assert got == [(FRAME + 256, 64)], why
    assert s.x.bad_descs == 1, why
    # the RX ring entry was consumed (handed back), so the ring does not stall on it
    assert s.x.rx.cached_cons == 2


def test_descriptor_for_a_frame_we_hold_is_refused():
    """The kernel returning a frame it does not own (one a batch still holds) must not hand it out twice."""
    s = FakeSocket()
    lib.nr_xsk_refill(s.x)
    s.fill_entries()
    assert lib.nr_xsk_test_produce(s.x, lib.NR_XSK_RING_RX, 2 * FRAME + 256, 64) == 0
    got, _, _ = s.take()
    assert got == [(2 * FRAME + 256, 64)]
    assert lib.nr_xsk_test_produce(s.x, lib.NR_XSK_RING_RX, 2 * FRAME + 300, 64) == 0  # same frame again
    got2, _, _ = s.take()
    assert got2 == [] and s.x.bad_descs == 1


def test_completion_ring_returns_only_inflight_tx_frames():
    s = FakeSocket()
    frames = b"".join(bytes([i]) * 60 for i in range(3))
    lens = ffi.new("uint32_t[]", [60, 60, 60])
    assert lib.nr_xsk_tx_send(s.x, frames, lens, 3) == 3  # kick is a sendto on fd -1: ignored here
    a = ffi.new("uint64_t *")
    sent = []
    while lib.nr_xsk_test_consume(s.x, lib.NR_XSK_RING_TX, a) == 1:
        sent.append(a[0])
    assert len(sent) == 3 and all(RX_FRAMES * FRAME <= x < FRAMES * FRAME for x in sent)
    assert [bytes(ffi.buffer(s.umem + x, 1)) for x in sent] == [b"\0", b"\1", b"\2"]
    assert s.x.tx_inflight == 3
    lib.nr_xsk_test_produce(s.x, lib.NR_XSK_RING_COMP, sent[0], 0)
    lib.nr_xsk_test_produce(s.x, lib.NR_XSK_RING_COMP, sent[0], 0)      # twice: refused
    lib.nr_xsk_test_produce(s.x, lib.NR_XSK_RING_COMP, 0, 0)            # an RX frame: refused
    lib.nr_xsk_test_produce(s.x, lib.NR_XSK_RING_COMP, FRAMES * FRAME, 0)  # outside: refused
    assert lib.nr_xsk_reap(s.x) == 1
    assert s.x.bad_descs == 3 and s.x.tx_inflight == 2


def test_tx_never_hands_out_more_frames_than_it_has():
    s = FakeSocket()
    n = 50
    frames = bytes(60 * n)
    lens = ffi.new("uint32_t[]", [60] * n)
    total = lib.nr_xsk_tx_send(s.x, frames, lens, n)
    assert total == min(RING, FRAMES - RX_FRAMES)
    assert lib.nr_xsk_tx_send(s.x, frames, lens, n) == 0  # ring full, no completions
    big = ffi.new("uint32_t[]", [FRAME + 1])
    assert lib.nr_xsk_tx_send(s.x, bytes(FRAME + 1), big, 1) == -errno.EMSGSIZE  # nothing queued


# ---- the busy-poll kick rule (nr_xsk_rx_spin / nr_xsk_busy_note) -------------------------------------
# recvfrom() needs a real fd that says "try again": one end of a datagram socketpair with nothing queued.

@pytest.fixture
def busy():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    s = FakeSocket()
    s.x.fd = a.fileno()
    s.x.busy_poll = 1
    lib.nr_xsk_refill(s.x)
    s.fill_entries()
    yield s
    a.close()
    b.close()


def _fill_flags(s):
    return ffi.cast("uint32_t *", s.maps[lib.NR_XSK_RING_FILL] + s.offs.flags)


def test_busy_take_makes_no_syscall(busy):
    """Frames waiting in the RX ring are taken without a recvfrom (the old code kicked on every take)."""
    for i in range(3):
        assert lib.nr_xsk_test_produce(busy.x, lib.NR_XSK_RING_RX, i * FRAME + 256, 64) == 0
    got, _, _ = busy.take()
    assert len(got) == 3
    assert lib.nr_xsk_rx_spin(busy.x, 0) == 0  # empty now; kick_after_ns starts at 0: this check kicks
    assert busy.x.rx_kicks == 1 and busy.x.kicks == 1


def test_busy_spin_with_frames_returns_without_a_kick(busy):
    assert lib.nr_xsk_test_produce(busy.x, lib.NR_XSK_RING_RX, 256, 64) == 0
    assert lib.nr_xsk_rx_spin(busy.x, 1_000_000) == 1
    assert busy.x.rx_kicks == 0 and busy.x.rx_empty_checks == 0


def test_a_dry_kick_backs_off_and_frames_without_a_kick_back_off_more(busy):
    x = busy.x
    assert x.kick_after_ns == 0
    assert lib.nr_xsk_rx_spin(x, 0) == 0  # empty ring, 0 ns to wait: one check, one kick, nothing came
    assert (x.rx_kicks, x.rx_kicks_fruitful) == (1, 0)
    assert x.kick_after_ns == lib.NR_XSK_KICK_AFTER_MIN_NS
    x.kick_after_ns = 1_000_000_000  # long enough that the next check cannot be due for a kick
    assert lib.nr_xsk_rx_spin(x, 0) == 0
    assert x.rx_kicks == 1  # not yet due: no syscall
    assert lib.nr_xsk_test_produce(x, lib.NR_XSK_RING_RX, 256, 64) == 0  # the device delivered on its own
    assert lib.nr_xsk_rx_spin(x, 0) == 1
    assert x.kick_after_ns == lib.NR_XSK_KICK_AFTER_MAX_NS  # doubled, capped
    assert x.rx_empty_since_ns == 0 and x.rx_kicks == 1


def test_the_fill_rings_wakeup_flag_kicks_at_once(busy):
    x = busy.x
    x.kick_after_ns = lib.NR_XSK_KICK_AFTER_MAX_NS
    x.rx_empty_since_ns = 0
    _fill_flags(busy)[0] = 1  # XDP_RING_NEED_WAKEUP: the kernel asks
    assert lib.nr_xsk_rx_spin(x, 0) == 0
    assert x.rx_kicks == 1
    assert x.kick_after_ns == lib.NR_XSK_KICK_AFTER_MAX_NS  # a kick the kernel asked for teaches nothing
    _fill_flags(busy)[0] = 0
    assert lib.nr_xsk_rx_spin(x, 0) == 0
    assert x.rx_kicks == 1


def test_busy_note_halves_on_fed_kicks_and_doubles_otherwise():
    s = FakeSocket()
    x = s.x
    lo, hi = lib.NR_XSK_KICK_AFTER_MIN_NS, lib.NR_XSK_KICK_AFTER_MAX_NS
    seen = []
    for _ in range(10):
        lib.nr_xsk_busy_note(x, lib.NR_XSK_BUSY_SELF)
        seen.append(x.kick_after_ns)
    assert seen[0] == lo and seen[-1] == hi and seen == sorted(seen)
    for _ in range(10):
        lib.nr_xsk_busy_note(x, lib.NR_XSK_BUSY_KICK_FED)
    assert x.kick_after_ns == 0  # a NIC whose NAPI runs only when polled: kick on every empty check
    lib.nr_xsk_busy_note(x, lib.NR_XSK_BUSY_KICK_DRY)
    assert x.kick_after_ns == lo


def test_an_idle_busy_spin_keeps_polling_the_device(busy):
    """Real-NIC busy-poll semantics survive the back-off: an empty ring is still polled, at most 64 µs apart."""
    x = busy.x
    x.kick_after_ns = lib.NR_XSK_KICK_AFTER_MAX_NS
    for _ in range(200):  # bounded: 200 spins of 1 ms until a kick was due (normally the first one)
        assert lib.nr_xsk_rx_spin(x, 1_000_000) == 0
        if x.rx_kicks:
            break
    assert x.rx_kicks >= 1 and x.rx_kicks_fruitful == 0
    assert x.rx_empty_checks > x.rx_kicks
