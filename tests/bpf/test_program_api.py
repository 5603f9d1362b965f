"""The public hooks between programs and netring.xdp: BuiltinProgram.counters and Program.before_attach."""
import pytest
from netring_testkit.plugin import require

from netring import xdp
from netring.bpf import BuiltinProgram, Program, builtin, load_program
from netring.bpf.asm import Asm
from netring.errors import UnsupportedError

pytestmark = pytest.mark.privileged


@pytest.fixture(autouse=True)
def _root():
    require("CAP_BPF")


def test_builtins_are_builtin_programs_and_count():
    with builtin("drop") as prog:
        assert isinstance(prog, BuiltinProgram)
        assert prog.test_run(b"\0" * 64)[0] == 1
        assert prog.counters()["drop"] == {"packets": 1, "bytes": 64}


def test_a_plain_program_has_no_counters():
    with load_program(Asm().ret(2), name="nr_plain") as prog:
        assert type(prog) is Program
        with pytest.raises(UnsupportedError, match="no netring counters map"):
            prog.counters()


class _Recording(Program):
    def __init__(self, *args, calls, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = calls

    def before_attach(self, ifindex, netns):
        self.calls.append((ifindex, netns.inode))  # xdp.attach's own fd on the namespace: read it now


def test_attach_calls_before_attach_with_ifindex_and_namespace(pair):
    a, b = pair
    calls = []
    with _Recording.load(Asm().ret(2), name="nr_hooked", calls=calls) as prog:
        with xdp.attach(b.ifname, prog, netns=b.netns, mode="generic") as att:
            assert xdp.query(b.ifname, netns=b.netns).id == prog.id
        assert len(calls) == 1 and calls[0][0] == att.ifindex == b.ifindex
        assert calls[0][1] == b.netns.inode


def test_before_attach_failure_aborts_the_attach(pair):
    a, b = pair

    class Refusing(Program):
        def before_attach(self, ifindex, netns):
            raise RuntimeError("not here")

    with Refusing.load(Asm().ret(2), name="nr_refuse") as prog:
        with pytest.raises(RuntimeError, match="not here"):
            xdp.attach(b.ifname, prog, netns=b.netns, mode="generic")
        assert xdp.query(b.ifname, netns=b.netns) is None
