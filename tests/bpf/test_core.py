"""bpf(2) layer: program load and verifier errors, maps of every kind, info, the assembler, no leaks."""
import struct
import time

import pytest

from netring_testkit.plugin import require
from hypothesis import given, settings, strategies as st

from netring.bpf import (VerifierError, builtin, create_map, load_program, map_from_id, possible_cpus,
                         program_from_id)
from netring.bpf.asm import FP, R0, R1, R2, Asm, AsmError
from netring.errors import ConfigurationError

pytestmark = pytest.mark.privileged


@pytest.fixture(autouse=True)
def _root():
    require("CAP_BPF")


def test_verifier_rejection_carries_the_log():
    a = Asm()
    a.ldx("w", R0, R1, 0)   # r0 = ctx->data (a packet pointer)...
    a.ldx("b", R0, R0, 0)   # ...read without a bounds check
    a.exit()
    with pytest.raises(VerifierError) as ei:
        load_program(a, name="unchecked")
    err = ei.value
    assert "invalid access to packet" in err.log
    assert "invalid access to packet" in str(err) and "'unchecked'" in str(err)
    assert err.errno in (13, 22)


def test_uninitialised_register_is_rejected():
    with pytest.raises(VerifierError, match="R0 !read_ok"):
        load_program(Asm().exit(), name="noret")


def test_program_info_and_lifetime():
    a = Asm().ret(2)
    with load_program(a, name="nr_unit_pass") as prog:
        info = prog.info()
        assert info.name == "nr_unit_pass" and info.type == 6 and len(info.tag) == 16
        assert prog.test_run(b"\0" * 64) == (2, b"\0" * 64)
        pid = info.id
        with program_from_id(pid) as again:
            assert again.info().tag == info.tag
    # Freed once the last fd is gone (RCU-deferred: poll briefly, bounded).
    for _ in range(100):
        try:
            program_from_id(pid).close()
        except LookupError:
            break
        time.sleep(0.02)
    else:
        pytest.fail("program %d still loaded after close" % pid)


def test_closed_objects_raise_and_close_is_idempotent():
    prog = builtin("drop")
    cmap = prog.map("counters")
    prog.close()
    prog.close()
    assert prog.closed and cmap.closed
    with pytest.raises(Exception, match="closed"):
        prog.fd


@pytest.mark.parametrize("kind", ["array", "hash", "lru_hash"])
def test_plain_maps(kind):
    with create_map(kind, 4, 8, 16, name="nr_t_" + kind[:10]) as m:
        m[3] = 12345
        m.update(5, 2 ** 64 - 1)
        assert m[3] == 12345 and m[5] == 2 ** 64 - 1
        assert m.info().max_entries == 16 and m.info().name == "nr_t_" + kind
        if kind == "array":
            assert len(list(m.keys())) == 16
            with pytest.raises(ConfigurationError, match="cannot delete"):
                del m[3]
        else:
            assert sorted(m.keys()) == [3, 5]
            assert dict(m.items()) == {3: 12345, 5: 2 ** 64 - 1}
            del m[3]
            assert 3 not in m
            with pytest.raises(KeyError):
                m[3]
            with pytest.raises(KeyError):
                del m[3]
            with pytest.raises(KeyError):
                m.update(5, 1, flags="noexist")


@pytest.mark.parametrize("kind", ["percpu_array", "percpu_hash"])
def test_percpu_maps_list_and_sum(kind):
    n = possible_cpus()
    with create_map(kind, 4, 16, 4, value_format="<QQ") as m:
        m.update(1, [(i, 10 * i) for i in range(n)])
        assert m[1] == [(i, 10 * i) for i in range(n)]
        assert m.sum(1) == (sum(range(n)), 10 * sum(range(n)))
        m.update(2, (7, 7))
        assert m.sum(2) == (7 * n, 7 * n)
        with pytest.raises(ConfigurationError, match="per-CPU"):
            m.update(1, [(0, 0)] * (n + 1))


def test_special_maps_and_by_id():
    with create_map("devmap", 4, 4, 2) as dm, create_map("xskmap", 4, 4, 2) as xm, \
            create_map("cpumap", 4, 4, 2) as cm:
        assert dm.type_name == "devmap" and xm.type_name == "xskmap" and cm.type_name == "cpumap"
        dm[0] = 1  # lo
        assert dm[0] == 1
        with map_from_id(dm.id) as again:
            assert again[0] == 1 and again.max_entries == 2


@given(key=st.binary(min_size=6, max_size=6), value=st.binary(min_size=12, max_size=12))
@settings(max_examples=30, deadline=None)
def test_bytes_keys_roundtrip(key, value):
    with create_map("hash", 6, 12, 4) as m:
        m[key] = value
        assert m[key] == value and list(m) == [key]


def test_map_argument_errors():
    with pytest.raises(ConfigurationError, match="unknown map type"):
        create_map("ringbuffer", 4, 4, 1)
    with pytest.raises(ConfigurationError, match="max_entries"):
        create_map("array", 4, 4, 0)
    with pytest.raises(ConfigurationError, match="packs"):
        create_map("array", 4, 8, 1, value_format="<I")
    with create_map("array", 4, 8, 1) as m:
        with pytest.raises(ConfigurationError, match="value"):
            m[0] = b"short"
        with pytest.raises(ConfigurationError, match="key"):
            m[b"\0" * 5] = 1


def test_assembler_encoding_and_labels():
    a = Asm()
    a.mov(R0, 2).jmp("==", R1, 7, "out").mov(R0, R2).label("out").exit()
    code = a.assemble()
    insns = [struct.unpack("<BBhi", code[i:i + 8]) for i in range(0, len(code), 8)]
    assert insns == [(0xB7, 0x00, 0, 2), (0x15, 0x01, 1, 7), (0xBF, 0x20, 0, 0), (0x95, 0, 0, 0)]
    b = Asm().ld_imm64(R1, 0x1122334455667788)
    assert b.assemble() == struct.pack("<BBhi", 0x18, 1, 0, 0x55667788) + struct.pack("<BBhi", 0, 0, 0, 0x11223344)
    with pytest.raises(AsmError, match="undefined label"):
        Asm().ja("nowhere").assemble()
    with pytest.raises(AsmError, match="unknown helper"):
        Asm().call("no_such_helper")
    with pytest.raises(AsmError, match="32 bits"):
        Asm().mov(R0, 1 << 40)
    with pytest.raises(AsmError, match="R0..R10"):
        Asm().mov(11, 1)


def test_assembled_helper_call_with_map():
    """An assembled program that counts into an array map via map_lookup_elem."""
    with create_map("array", 4, 8, 1) as m:
        a = Asm()
        a.st("w", FP, -4, 0).ld_map_fd(R1, m).mov(R2, FP).add(R2, -4).call("map_lookup_elem")
        a.jmp("==", R0, 0, "out").mov(R1, 5).atomic_add("dw", R0, 0, R1)
        a.label("out").ret(2)
        with load_program(a, name="nr_unit_map") as prog:
            for _ in range(3):
                prog.test_run(b"\0" * 64)
        assert m[0] == 15
