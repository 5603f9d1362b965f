"""User programs: C compiled by clang at test time, loaded through libbpf, attached, maps read back."""
import os
import platform
import shutil
import subprocess

import pytest

from netring_testkit.plugin import require

from netring import xdp
from netring.bpf import VerifierError

import frames_util as fu

pytestmark = pytest.mark.privileged
DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")


def _compile(tmp_path, name):
    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("clang is not installed (Debian package `clang`; ci/setup installs it as root)")
    try:
        from netring.bpf.libbpf import libbpf_version
        libbpf_version()
    except Exception as exc:
        pytest.skip(str(exc))
    out = tmp_path / (name + ".o")
    multiarch = "/usr/include/%s-linux-gnu" % platform.machine()
    cmd = [clang, "-O2", "-g", "-target", "bpf", "-I" + multiarch, "-c", os.path.join(DATA, name + ".c"), "-o", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return out


@pytest.mark.parametrize("mode", ["native", "generic"])
def test_user_program_counts_and_its_map_reads_back(pair, tmp_path, mode):
    from netring.bpf.libbpf import load_object
    a, b = pair
    obj_path = _compile(tmp_path, "xdp_count")
    with load_object(obj_path) as obj:
        assert sorted(obj.programs) == ["xdp_count", "xdp_drop_all"]
        assert obj.sections["xdp_count"] == "xdp"
        prog = obj.program("xdp_count")
        assert prog.info().name == "xdp_count"
        stats = obj.map("ipv4_stats")
        assert (stats.key_size, stats.value_size, stats.max_entries) == (4, 8, 2)
        frames = [fu.frame(stream=4, seq=i) for i in range(150)]
        with xdp.attach(b.ifname, prog, netns=b.netns, mode=mode) as att:
            assert xdp.query(b.ifname, netns=b.netns).name == "xdp_count"
            with fu.receiver(b.netns, b.ifname) as rx, fu.sender(a.netns, a.ifname) as tx:
                sent = fu.send(tx, frames)
                got = fu.receive(rx, stream=4, count=150, timeout=0.5)
            assert att.map("ipv4_stats")[0] == 150
            assert stats[1] == sent
        assert len(got) == 150
    assert xdp.query(b.ifname, netns=b.netns) is None


def test_user_program_by_section_and_subset(tmp_path):
    from netring.bpf.libbpf import load_object
    obj_path = _compile(tmp_path, "xdp_count")
    with load_object(obj_path, programs=["xdp_drop_all"]) as obj:
        assert list(obj.programs) == ["xdp_drop_all"]
        assert obj.program(section="xdp").test_run(bytes(64))[0] == 1
        with pytest.raises(KeyError, match="xdp_count"):
            obj.program("xdp_count")


def test_user_program_rejected_by_verifier(tmp_path):
    from netring.bpf.libbpf import load_object
    obj_path = _compile(tmp_path, "xdp_bad")
    with pytest.raises(VerifierError) as ei:
        load_object(obj_path)
    assert ei.value.name == "xdp_unchecked"
    assert "invalid access to packet" in ei.value.log and "xdp_bad.c" in ei.value.log


def test_missing_object_is_a_configuration_error(tmp_path):
    from netring.bpf.libbpf import load_object
    from netring.errors import ConfigurationError
    with pytest.raises(ConfigurationError, match="clang"):
        load_object(tmp_path / "nope.o")


def test_missing_libbpf_names_the_package(monkeypatch):
    from netring.bpf import libbpf

    def no_lib(name):
        raise OSError("%s: cannot open shared object file" % name)

    monkeypatch.setattr(libbpf, "_lib", None)
    monkeypatch.setattr(libbpf._ffi, "dlopen", no_lib)
    with pytest.raises(libbpf.LibbpfNotFoundError, match="apt-get install libbpf1"):
        libbpf.load_object(__file__)


def test_closing_one_program_leaves_the_object_maps_usable(tmp_path):
    """The object owns the maps: closing one of its programs must not close them for the others."""
    require("CAP_BPF")
    from netring.bpf.libbpf import load_object
    obj_path = _compile(tmp_path, "xdp_count")
    with load_object(obj_path) as obj:
        a, b = obj.program("xdp_count"), obj.program("xdp_drop_all")
        assert not a.owns_maps and not b.owns_maps
        stats = obj.map("ipv4_stats")
        a.close()
        assert a.closed and not b.closed
        assert not stats.closed
        stats[0] = 7
        assert b.map("ipv4_stats")[0] == 7 and a.map("ipv4_stats")[0] == 7
        assert b.map("ipv4_stats") is stats
        b.close()
        assert stats[0] == 7  # still the object's, until the object closes
    assert stats.closed
    from netring.errors import NetringError
    with pytest.raises(NetringError, match="closed"):
        stats[0]
