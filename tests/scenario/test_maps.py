"""``expect.maps``: the maps of a program of your own, checked at load time against its ELF and read after the run.

The object is ``tests/data/xdp_maps.c`` compiled by clang at test time (skipped without clang):
an array map ``pkts`` (u64: [0] IPv4/UDP frames, [1] every frame), a per-CPU array ``percpu_udp``
(u32), an array ``small`` (u16 values) and a hash map ``wide`` (16-byte values).
"""
import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap

import pytest

from netring_testkit.plugin import require

from netring_testkit import runner, scenario as sc

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "tests", "data")


@pytest.fixture(scope="module")
def obj(tmp_path_factory):
    """tests/data/xdp_maps.c compiled to an object in a fresh directory (the YAML sits next to it)."""
    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("clang is not installed (Debian package `clang`; ci/setup installs it as root)")
    out = tmp_path_factory.mktemp("maps") / "xdp_maps.o"
    res = subprocess.run([clang, "-O2", "-g", "-target", "bpf", "-I/usr/include/%s-linux-gnu" % platform.machine(),
                          "-c", os.path.join(DATA, "xdp_maps.c"), "-o", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return out


SCENARIO = textwrap.dedent("""\
    scenarios:
      - name: counted
        topology: {nodes: [tx, rx], links: [{endpoints: [tx:eth0, rx:eth0]}]}
        xdp: [{attach: rx:eth0, program: {object: xdp_maps.o, program: xdp_maps}, mode: generic}]
        traffic: [{name: main, from: tx:eth0, to: rx:eth0, count: 2k}]
        expect:
          delivered: all
          maps:
            rx:eth0:
              pkts: {0: all, 1: ">= 100%"}
              percpu_udp: {0: 2000}
              small: {0: "<= 2000"}
        quiet: 300ms
    """)


def load(text, obj):
    return sc.load_text(text, str(obj.parent / "s.yaml"))


def problems(text, obj):
    with pytest.raises(sc.ScenarioSpecError) as ei:
        load(text, obj)
    return ei.value.problems


def test_elf_maps_are_read_from_btf(obj):
    maps = sc.bpf_object_maps(str(obj))
    assert {n: tuple(m[1:]) for n, m in maps.items()} == {
        "pkts": (2, 4, 8, 2), "percpu_udp": (6, 4, 4, 1), "small": (2, 4, 2, 1), "wide": (1, 4, 16, 8)}


def test_elf_maps_match_libbpf(obj):
    require("CAP_BPF")
    from netring.bpf.libbpf import load_object

    with load_object(str(obj)) as o:
        loaded = {n: (m.map_type, m.key_size, m.value_size, m.max_entries) for n, m in o.maps.items()}
    assert {n: tuple(m[1:]) for n, m in sc.bpf_object_maps(str(obj)).items()} == loaded


def test_object_without_maps_declares_none(tmp_path):
    from .test_loader import bpf_elf

    (tmp_path / "fw.o").write_bytes(bpf_elf(["xdp_fw"]))
    assert sc.bpf_object_maps(str(tmp_path / "fw.o")) == {}


def test_expect_maps_loads_integer_keys_and_count_expressions(obj):
    s = load(SCENARIO, obj)[0]
    maps = s.expect_maps["rx:eth0"]
    assert sorted(maps) == ["percpu_udp", "pkts", "small"]
    assert sorted(maps["pkts"]) == [0, 1]
    assert maps["pkts"][0].check(2000, 2000) and not maps["pkts"][0].check(1999, 2000)
    assert maps["pkts"][1].check(2003, 2000) and maps["percpu_udp"][0].check(2000, 0)


@pytest.mark.parametrize("maps, path, message", [
    ("pktz: {0: all}", ("pktz",), "has no map 'pktz' (did you mean 'pkts'?); its maps: percpu_udp, pkts, small, wide"),
    ("pkts: {2: all}", ("pkts", "2"), "key 2 is outside array map 'pkts': max_entries 2, keys 0..1"),
    ("percpu_udp: {1: 0}", ("percpu_udp", "1"), "key 1 is outside percpu_array map 'percpu_udp': max_entries 1, keys 0..0"),
    ("wide: {0: 1}", ("wide",), "map 'wide' has 16-byte values; expect.maps reads values of at most 8 bytes"),
    ("wide: {4294967296: 1}", ("wide",), "map 'wide' has 16-byte values"),
    ("pkts: {0: lots}", ("pkts", "0"), "expected all, none, a count (1234), or a comparison"),
    ("pkts: {x: 1}", ("pkts",), "expected an integer map key such as 0, got 'x'"),
])
def test_expect_maps_is_checked_against_the_elf_with_locations(obj, maps, path, message):
    block = "          pkts: {0: all, 1: \">= 100%\"}\n          percpu_udp: {0: 2000}\n          small: {0: \"<= 2000\"}\n"
    assert block in SCENARIO
    text = SCENARIO.replace(block, "          %s\n" % maps)
    ps = problems(text, obj)
    assert len(ps) == 1, [str(p) for p in ps]
    assert ps[0].path == ("scenarios", 0, "expect", "maps", "rx:eth0") + path, str(ps[0])
    assert message in ps[0].message, str(ps[0])
    assert ps[0].line == 10, str(ps[0])


def test_readme_expect_maps_example_loads(obj):
    import re

    readme = open(os.path.join(ROOT, "README.md")).read()
    expect = next(b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if b.startswith("expect:"))
    maps = re.search(r"^  maps:.*\n(?:    .*\n)+", expect, re.M).group(0)
    text = SCENARIO.split("      maps:\n")[0] + textwrap.indent(maps, "    ") + "    quiet: 300ms\n"
    s = load(text, obj)[0]
    assert {k: sorted(v) for k, v in s.expect_maps["rx:eth0"].items()} == {"pkts": [0, 1]}


def test_key_must_fit_the_key_size(obj, monkeypatch):
    """A hash map has no max_entries bound on its keys, but a 4-byte key cannot hold 2**32."""
    import netring_testkit.scenario.semantics as sem
    from netring_testkit.scenario.elf import MapDef

    real = sem.bpf_object_maps
    monkeypatch.setattr(sem, "bpf_object_maps", lambda p: dict(real(p), pkts=MapDef("pkts", 1, 4, 8, 16)))
    assert load(SCENARIO.replace("{0: all, 1:", "{4294967295: all, 1:"), obj)
    ps = problems(SCENARIO.replace("{0: all, 1:", "{4294967296: all, 1:"), obj)
    assert [p.message for p in ps] == ["key 4294967296 does not fit the 4-byte keys of map 'pkts'"]
    assert ps[0].path == ("scenarios", 0, "expect", "maps", "rx:eth0", "pkts", "4294967296")


def test_expect_maps_needs_a_user_program(obj):
    text = SCENARIO.replace("program: {object: xdp_maps.o, program: xdp_maps}", "program: pass")
    ps = problems(text, obj)
    assert len(ps) == 1 and ps[0].path == ("scenarios", 0, "expect", "maps", "rx:eth0"), [str(p) for p in ps]
    assert ps[0].message.startswith("the program on 'rx:eth0' is the built-in 'pass': check its counters with "
                                    "`expect.xdp`")
    ps = problems(SCENARIO.replace("rx:eth0:\n          pkts", "tx:eth0:\n          pkts"), obj)
    assert len(ps) == 1 and "no XDP program is attached to 'tx:eth0'; attached: rx:eth0" in ps[0].message


def test_expect_xdp_on_a_user_program_points_to_expect_maps(obj):
    """Validated, then 'no counters were read' at run time, before: now a located error at load time."""
    text = SCENARIO.replace("      maps:\n", "      xdp: {rx:eth0: {pass: all}}\n      maps:\n")
    ps = problems(text, obj)
    assert len(ps) == 1 and ps[0].path == ("scenarios", 0, "expect", "xdp", "rx:eth0"), [str(p) for p in ps]
    assert ps[0].line == 8
    assert ps[0].message == (
        "the program on 'rx:eth0' (xdp_maps in %s) is not a built-in, so it keeps no netring counters for "
        "expect.xdp; check its own maps with `expect.maps: {rx:eth0: {MAP: {KEY: COUNT}}}`; its maps: "
        "percpu_udp, pkts, small, wide" % obj)


# -- end to end ------------------------------------------------------------------------------


@pytest.mark.privileged
def test_expect_maps_end_to_end_pass_and_a_readable_failure(obj):
    require()
    pytest.importorskip("netring.bpf.libbpf")
    s = load(SCENARIO, obj)[0]
    r = runner.run(s)
    assert r.status == "passed", r.render()
    assert r.maps["rx:eth0"]["pkts"][0] == 2000 and r.maps["rx:eth0"]["percpu_udp"][0] == 2000
    assert r.maps["rx:eth0"]["pkts"][1] >= 2000 and 0 < r.maps["rx:eth0"]["small"][0] <= 2000
    doc = r.as_dict()
    assert doc["maps"]["rx:eth0"]["pkts"]["0"] == 2000
    json.dumps(doc)

    wrong = load(SCENARIO.replace("percpu_udp: {0: 2000}", "percpu_udp: {0: \">= 3000\"}"), obj)[0]
    r = runner.run(wrong)
    assert r.status == "failed", r.render()
    assert r.failures == ["map rx:eth0 percpu_udp[0]: value 2000, expected >= 3000"]
    text = r.render()
    assert "FAIL: map rx:eth0 percpu_udp[0]: value 2000, expected >= 3000" in text
    assert "BPF map values (expect.maps):" in text
    rows = {tuple(l.split()[:3]): l.split()[3:] for l in text.splitlines() if l.startswith("  rx:eth0")}
    assert rows[("rx:eth0", "percpu_udp", "0")] == ["2000", "FAIL", ">=", "3000"]
    assert rows[("rx:eth0", "pkts", "0")] == ["2000", "ok", "all", "(2000)"]
