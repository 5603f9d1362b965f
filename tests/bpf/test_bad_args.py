"""Bad arguments at every public entry point of netring.bpf / netring.xdp / netring.netdev.

Each must raise a NetringError subclass (ConfigurationError for values, naming the field),
never a raw TypeError/OverflowError/AttributeError/ValueError from deep inside, and must not
leak a kernel object (the conftest's fd check runs after every test).
"""

import pytest

from netring_testkit.plugin import require
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netring import netdev, xdp
from netring.bpf import builtin, create_map, load_program, map_from_id, program_from_id
from netring.bpf.asm import Asm
from netring.errors import ConfigurationError, NetringError

pytestmark = pytest.mark.privileged

RET2 = Asm().mov(0, 2).exit()


@pytest.fixture(autouse=True)
def _root():
    require("CAP_BPF")   # creating maps/programs


#: Values that are wrong for an int field (wrong type, negative, too big, None).
BAD_INTS = [-1, 1 << 32, 1 << 70, None, "4", 4.0, True, [], b"4"]
BAD_NAMES = [None, 5, "x" * 16, "é", "a b", "a-b", "nul\0", b"name", ["n"]]


def _expect(fn, field=None):
    with pytest.raises(NetringError) as info:
        fn()
    if field is not None:
        assert isinstance(info.value, ConfigurationError), info.value
        assert info.value.field == field, (info.value.field, str(info.value))
    return info.value


@pytest.mark.parametrize("value", BAD_INTS)
@pytest.mark.parametrize("field", ["key_size", "value_size", "max_entries"])
def test_create_map_sizes(field, value):
    kw = dict(map_type="array", key_size=4, value_size=4, max_entries=4)
    kw[field] = value
    err = _expect(lambda: create_map(**kw), field)
    assert repr(value) in str(err)


@pytest.mark.parametrize("value", BAD_NAMES)
def test_create_map_name(value):
    err = _expect(lambda: create_map("array", 4, 4, 4, name=value), "name")
    assert "15" in str(err) and "A-Za-z0-9_." in str(err)


@pytest.mark.parametrize("value", [-1, 1 << 32, None, "0", 1.5])
def test_create_map_flags(value):
    _expect(lambda: create_map("array", 4, 4, 4, flags=value), "flags")


@pytest.mark.parametrize("value", ["bogus", None, -1, 1 << 40, 2.0, True, ["array"]])
def test_create_map_type(value):
    _expect(lambda: create_map(value, 4, 4, 4), "map_type")


@pytest.mark.parametrize("field,value", [("key_format", "Z"), ("key_format", 5), ("value_format", "<Q"),
                                         ("value_format", object())])
def test_create_map_formats(field, value):
    _expect(lambda: create_map("hash", 4, 4, 4, **{field: value}), field)


@pytest.mark.parametrize("fn", [map_from_id, program_from_id])
@pytest.mark.parametrize("value", BAD_INTS)
def test_from_id(fn, value):
    _expect(lambda: fn(value), "map_id" if fn is map_from_id else "prog_id")


@pytest.mark.parametrize("field,value", [("name", v) for v in BAD_NAMES]
                         + [("license", v) for v in (None, "", 5, "GPLé", b"GPL")]
                         + [("prog_type", v) for v in ("nope", None, -1, 1 << 40, 1.0)]
                         + [("log_size", v) for v in (-1, 0, None, "big", 1 << 40)]
                         + [("maps", v) for v in (5, ["m"], {"m": 5})]
                         + [("insns", v) for v in (None, 5, 8, "\0" * 8, [0] * 8)])
def test_load_program(field, value):
    kw = {"insns": RET2}
    kw[field] = value
    _expect(lambda: load_program(**kw), field)


@pytest.fixture(scope="module")
def prog():
    require("CAP_BPF")
    p = builtin("pass")
    yield p
    p.close()


@pytest.mark.parametrize("value", BAD_INTS)
def test_test_run_repeat(value):
    with builtin("pass") as p:
        _expect(lambda: p.test_run(b"\0" * 60, repeat=value), "repeat")


@pytest.mark.parametrize("value", [None, 5, "frame", [0] * 60, b"", b"\0" * 13])
def test_test_run_data(value):
    with builtin("pass") as p:
        _expect(lambda: p.test_run(value), "data")


def test_link_update_needs_a_program():
    from netring.bpf import Link
    lk = Link.__new__(Link)  # never opened: update must refuse the argument before any syscall
    lk._fd = -1
    _expect(lambda: Link.update(lk, "prog"), "program")


@pytest.mark.parametrize("name,options,field", [
    (None, {}, "program"), (5, {}, "program"), (["pass"], {}, "program"), ("nope", {}, "program"),
    ("pass", {"foo": 1}, "options"),
    ("redirect", {}, "target_ifindex"), ("redirect", {"target_ifindex": -1}, "target_ifindex"),
    ("redirect", {"target_ifindex": "1"}, "target_ifindex"), ("redirect", {"target_ifindex": True}, "target_ifindex"),
    ("redirect", {"target_ifindex": 1, "fallback": "redirect"}, "fallback"),
    ("redirect", {"target_ifindex": 1, "fallback": ["x"]}, "fallback"),
    ("xsk", {"queues": 0}, "queues"), ("xsk", {"queues": 1 << 40}, "queues"), ("xsk", {"queues": None}, "queues"),
    ("filter", {"rules": None}, "rules"), ("filter", {"rules": 5}, "rules"), ("filter", {"default": None}, "default"),
    ("filter", {"rules": [None]}, "rules[0]."),
])
def test_builtin_options(name, options, field):
    _expect(lambda: builtin(name, **options), field)


class TestMapAccess:
    """Element access with keys/values/flags of the wrong type or range."""

    @pytest.fixture
    def m(self):
        with create_map("array", 4, 8, 4, name="nr_badargs") as m:
            yield m

    @pytest.mark.parametrize("key", [-1, 1 << 32, None, "0", b"\0", 1.0, (0,)])
    def test_keys(self, m, key):
        _expect(lambda: m.lookup(key), "key")
        _expect(lambda: m.update(key, 1), "key")
        _expect(lambda: m.delete(key), "key")

    @pytest.mark.parametrize("value", [-1, 1 << 64, None, "1", b"\0" * 7, 1.5])
    def test_values(self, m, value):
        _expect(lambda: m.update(0, value), "value")

    @pytest.mark.parametrize("flags", [-1, 1 << 64, None, "sometimes", 1.0])
    def test_flags(self, m, flags):
        _expect(lambda: m.update(0, 1, flags=flags), "flags")

    def test_index_past_the_end_names_the_range(self, m):
        err = _expect(lambda: m.update(4, 1), "key")
        assert "index 4 out of range 0..3" in str(err)
        assert "Argument list too long" not in str(err)

    def test_array_delete(self, m):
        _expect(lambda: m.delete(0), "key")


def test_full_hash_map_says_full():
    with create_map("hash", 4, 4, 2, name="nr_full") as m:
        m[1], m[2] = 1, 2
        err = _expect(lambda: m.update(3, 3), "key")
        assert "full" in str(err) and "max_entries 2" in str(err)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.none(), st.integers(min_value=-(1 << 80), max_value=1 << 80), st.text(max_size=20),
                 st.binary(max_size=20), st.floats(allow_nan=False), st.lists(st.integers(), max_size=3)))
def test_any_value_for_any_int_field_is_a_netring_error_or_works(value):
    """Throw one arbitrary value at each numeric argument; only success or a NetringError is allowed."""
    calls = [
        lambda: create_map("array", value, 4, 1),
        lambda: create_map("array", 4, 4, value),
        lambda: program_from_id(value),
        lambda: map_from_id(value),
        lambda: load_program(RET2, name=value),
        lambda: netdev.features(value),
        lambda: xdp.query(value),
    ]
    for call in calls:
        try:
            obj = call()
        except NetringError:  # anything else (TypeError, OverflowError...) fails the test
            pass
        else:
            close = getattr(obj, "close", None)
            if close is not None:
                close()


@pytest.mark.parametrize("kw,field", [
    ({"target": None}, "ifname"), ({"target": -1}, "ifindex"), ({"target": 1 << 40}, "ifindex"),
    ({"target": "x" * 16}, "ifname"), ({"target": "lo\0"}, "ifname"), ({"target": 1.0}, "ifname"),
    ({"mode": "fast"}, "mode"), ({"mode": None}, "mode"), ({"mode": ["native"]}, "mode"),
    ({"method": "carrier-pigeon"}, "method"), ({"method": None}, "method"),
    ({"program": None}, "program"), ({"program": "nr_pass"}, "program"),
])
def test_attach(prog, kw, field):
    args = {"target": "lo", "program": prog}
    args.update(kw)
    _expect(lambda: xdp.attach(args.pop("target"), args.pop("program"), **args), field)
    assert xdp.query("lo") is None


def test_attach_a_map_is_refused():
    with create_map("array", 4, 4, 1, name="nr_notprog") as m:
        _expect(lambda: xdp.attach("lo", m), "program")


def test_attach_closed_program():
    p = builtin("pass")
    p.close()
    _expect(lambda: xdp.attach("lo", p), "program")


@pytest.mark.parametrize("target", [None, -1, 0, 1 << 40, "x" * 16, "", "lo\0", 1.0, [1]])
@pytest.mark.parametrize("fn", [xdp.query, xdp.detach_all, netdev.features])
def test_interface_arguments(fn, target):
    err = _expect(lambda: fn(target))
    assert isinstance(err, ConfigurationError) and err.field in ("ifname", "ifindex"), err


@pytest.mark.parametrize("netns", [-1, 3.5, "", "/nonexistent-nrt", object()])
@pytest.mark.parametrize("fn", [lambda ns: xdp.query("lo", netns=ns), lambda ns: netdev.dump(netns=ns),
                                lambda ns: netdev.features("lo", netns=ns)])
def test_netns_arguments(fn, netns):
    _expect(lambda: fn(netns))


def test_load_object_arguments(tmp_path):
    from netring.bpf.libbpf import load_object
    _expect(lambda: load_object(None), "path")
    _expect(lambda: load_object(5), "path")
    _expect(lambda: load_object(tmp_path / "missing.o"), "path")
    _expect(lambda: load_object(tmp_path / "missing.o", programs="xdp_count"), "programs")
    _expect(lambda: load_object(tmp_path / "missing.o", programs=[1]), "programs")
