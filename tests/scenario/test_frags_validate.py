"""A user program that is not frags-aware cannot attach natively to a jumbo veth: caught when the file is validated."""
import textwrap

import pytest

from netring_testkit import scenario as sc
from netring_testkit.scenario import elf

from .test_loader import bpf_elf

TEXT = textwrap.dedent("""\
    scenarios:
      - name: jumbo-user
        topology:
          nodes: [tx, rx]
          links: [{endpoints: [tx:eth0, rx:eth0], mtu: "${mtu}"}]
        xdp:
          - {attach: rx:eth0, program: {object: fw.o, program: xdp_fw}, mode: "${mode}"}
        traffic:
          - {name: main, from: tx:eth0, to: rx:eth0, count: 100, frame: {udp: {dport: 9}, size: 1000}}
        matrix: {mtu: [${mtus}], mode: [${modes}]}
    """)


def _load(tmp_path, section, mtus="9000", modes="native"):
    (tmp_path / "fw.o").write_bytes(bpf_elf(["xdp_fw"], section=section))
    text = TEXT.replace("${mtus}", mtus).replace("${modes}", modes)
    return sc.load_text(text, str(tmp_path / "s.yaml"))


def test_single_buffer_program_native_on_jumbo_veth_is_located(tmp_path):
    with pytest.raises(sc.ScenarioSpecError) as ei:
        _load(tmp_path, "xdp")
    ps = ei.value.problems
    assert len(ps) == 1, [str(p) for p in ps]
    assert ps[0].path == ("scenarios", 0, "xdp", 0, "program", "program") and ps[0].line == 7
    assert ps[0].message == (
        "program 'xdp_fw' (SEC(\"xdp\")) is not frags-aware and MTU 9000 > 3506 (the largest MTU a single-buffer "
        "XDP program accepts on veth with a 4 KiB page); load it with SEC(\"xdp.frags\") or lower the MTU "
        "(or attach it with mode: generic)")


@pytest.mark.parametrize("section, mtus, modes", [
    ("xdp.frags", "9000", "native"),          # multi-buffer aware
    ("xdp", "1500, 3506", "native"),          # fits one page
    ("xdp", "9000", "generic, auto"),         # generic takes any MTU; auto falls back to it
])
def test_frags_aware_small_mtu_or_generic_validate(tmp_path, section, mtus, modes):
    assert _load(tmp_path, section, mtus, modes)


def test_sections_are_read_with_the_program_names(tmp_path):
    f = tmp_path / "o.o"
    f.write_bytes(bpf_elf(["b", "a"], section="xdp.frags", text_funcs=["helper"]))
    assert elf.bpf_object_sections(str(f)) == {"a": "xdp.frags", "b": "xdp.frags"}
    assert elf.bpf_object_programs(str(f)) == ["a", "b"]


def test_frags_sections_agree_with_netring():
    libbpf = pytest.importorskip("netring.bpf.libbpf")
    assert elf.FRAGS_SECTIONS == libbpf.FRAGS_SECTIONS
