"""A ring that cannot be mapped is a typed error naming its size and the remedy, never a raw
``OSError: [Errno 12] Cannot allocate memory`` (which the scenario engine reported as an
"internal error" once 2000 streams had mapped 2000 rings)."""
import errno
import os
import subprocess
import sys
import textwrap

import pytest

from netring import Capture, Injector, NetringError
from netring import ringsock
from netring.ringsock import RingMemoryError

from core_net import needs_root

pytestmark = [pytest.mark.privileged, needs_root]

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.mark.parametrize("kind, kw, knobs", [
    (Injector, dict(frame_count=256), "frame_count or frame_size"),
    (Capture, dict(block_size=1 << 16, block_count=4), "block_count or block_size"),
])
def test_enomem_from_mmap_is_a_ring_memory_error(veth, monkeypatch, kind, kw, knobs):
    def no_memory(*a, **k):
        raise OSError(errno.ENOMEM, os.strerror(errno.ENOMEM))

    monkeypatch.setattr(ringsock.mmap, "mmap", no_memory)
    ifname, ns = (veth.tx_if, veth.a) if kind is Injector else (veth.rx_if, veth.b)
    with pytest.raises(RingMemoryError) as ei:
        kind(ifname, netns=ns, **kw)
    e = ei.value
    assert isinstance(e, NetringError) and isinstance(e, MemoryError)
    assert e.size > 0 and ("the %d-byte ring" % e.size) in str(e)
    assert knobs in str(e) and "ENOMEM" in str(e) and ifname in str(e) and "RLIMIT_AS" in str(e)


CHILD = textwrap.dedent("""\
    import resource
    from netring import Injector, NetringError
    from netring.netns import NetNS

    ns = NetNS.create()
    with open("/proc/self/statm") as f:
        vm = int(f.read().split()[0]) * resource.getpagesize()
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    resource.setrlimit(resource.RLIMIT_AS, (vm + (400 << 20), hard))
    rings = []
    try:
        for _ in range(8):  # 128 MiB rings: the fourth cannot be mapped under the limit
            rings.append(Injector("lo", netns=ns, frame_size=2048, frame_count=1 << 16))
    except NetringError as exc:
        print("TYPED", type(exc).__name__, exc)
    except BaseException as exc:
        print("RAW", type(exc).__name__, exc)
    else:
        print("NONE")
    """)


def test_many_rings_under_an_address_space_limit_end_in_a_typed_error(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    p = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, p.stderr
    out = p.stdout.strip()
    assert out.startswith("TYPED RingMemoryError cannot map the 134217728-byte ring of the injector on lo"), out
    assert "frame_count" in out


def test_enomem_already_translated_by_the_mapping_still_names_the_remedy(veth, monkeypatch):
    """A NetringError carrying errno ENOMEM (as a mapping that translates its own OSError raises) becomes
    the same RingMemoryError; any other errno passes through unchanged."""
    def translated(code):
        def arm(self):
            err = NetringError("mapping the %d-byte ring (mmap) failed: [errno %d]" % (self.size, code))
            err.errno = code
            raise err
        return arm

    monkeypatch.setattr(ringsock.RingMapping, "arm", translated(errno.ENOMEM))
    with pytest.raises(RingMemoryError, match="frame_count or frame_size"):
        Injector(veth.tx_if, netns=veth.a, frame_count=64)
    monkeypatch.setattr(ringsock.RingMapping, "arm", translated(errno.EINVAL))
    with pytest.raises(NetringError) as ei:
        Injector(veth.tx_if, netns=veth.a, frame_count=64)
    assert not isinstance(ei.value, RingMemoryError) and "[errno %d]" % errno.EINVAL in str(ei.value)
