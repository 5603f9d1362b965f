"""TxSlot: nothing made from ``slot.data`` writes into the ring after send()/discard() (see TxSlot's doc)."""
import ctypes
import gc

import pytest

from netring import Injector, NetringError, ViewsAliveError

from core_net import needs_root

pytestmark = needs_root

FRAME = bytes(range(64))


def _holders(slot):
    return {
        "memoryview": lambda: memoryview(slot.data),
        "slice": lambda: slot.data[2:8],
        "cast": lambda: slot.data.cast("H"),
        "ctypes.from_buffer": lambda: (ctypes.c_char * 8).from_buffer(slot.data),
        "ctypes.from_buffer-array": lambda: (ctypes.c_uint8 * 64).from_buffer(slot.data),
        "obj": lambda: slot.data.obj,
        "memoryview-of-memoryview": lambda: memoryview(memoryview(slot.data)[1:])[2:],
    }


@pytest.mark.parametrize("how", sorted(_holders(None)))
@pytest.mark.parametrize("end", ["send", "discard"])
def test_a_view_derived_from_slot_data_blocks_send_until_dropped(veth, how, end):
    with Injector(veth.tx_if, netns=veth.a, frame_count=8) as tx:
        slot = tx.allocate(len(FRAME))
        slot.data[:] = FRAME
        held = _holders(slot)[how]()
        with pytest.raises(ViewsAliveError, match="derived from slot.data is still alive"):
            getattr(slot, end)()
        # the slot stayed open and usable, with a fresh view
        assert bytes(slot.data) == FRAME
        with pytest.raises(NetringError, match="still open"):
            tx.allocate(14)               # it is still the open slot
        del held
        gc.collect()
        getattr(slot, end)()
        with pytest.raises(Exception):
            slot.data
        tx.flush()


def test_export_blocks_send_and_temporaries_do_not(veth):
    from netring._core import ffi

    with Injector(veth.tx_if, netns=veth.a, frame_count=8) as tx:
        slot = tx.allocate(len(FRAME))
        slot.data[0:6] = FRAME[:6]       # temporaries: gone before send
        slot.data[6:] = FRAME[6:]
        p = ffi.from_buffer(slot.data)   # an export
        with pytest.raises(ViewsAliveError, match="still exported"):
            slot.send()
        ffi.release(p)
        d = slot.data
        slot.send()
        with pytest.raises(ValueError, match="released"):
            d[0] = 0                       # the name bound to data is released: no write reaches the ring
        tx.flush()


def test_close_refuses_while_a_derived_view_of_the_open_slot_lives(veth):
    tx = Injector(veth.tx_if, netns=veth.a, frame_count=8)
    slot = tx.allocate(60)
    held = memoryview(slot.data)
    with pytest.raises(ViewsAliveError):
        tx.close()
    assert not tx.closed
    del held
    tx.close()
    assert tx.closed
