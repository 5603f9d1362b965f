"""Scenario loading: schema and semantic errors are located (file:line:col, field, expectation)."""
import copy
import os
import textwrap

import pytest

from netring_testkit.plugin import require
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netring_testkit import scenario as sc
from netring_testkit.scenario import loader

GOOD = textwrap.dedent("""\
    scenarios:
      - name: udp
        topology:
          nodes: [tx, rx]
          links: [{endpoints: [tx:eth0, rx:eth0], mtu: 1500}]
        xdp:
          - {attach: rx:eth0, program: pass, mode: "${mode}"}
        traffic:
          - name: main
            from: tx:eth0
            to: rx:eth0
            count: 100
            rate: 20kpps
            frame: {ipv4: {}, udp: {dport: 9}, size: "${size}"}
        capture: [{on: rx:eth0, via: afpacket}]
        expect:
          delivered: ">= 99.5%"
          order: strict
          payload: intact
          xdp: {rx:eth0: {pass: all, drop: 0}}
        timeout: 10s
        matrix: {size: [64, 512], mode: [native, generic]}
    """)


def problems(text, name="s.yaml"):
    with pytest.raises(sc.ScenarioSpecError) as ei:
        sc.load_text(text, name)
    return ei.value.problems


def one(text):
    ps = problems(text)
    assert len(ps) == 1, [str(p) for p in ps]
    return ps[0]


def test_good_file_expands_matrix_in_written_order():
    items = sc.load_text(GOOD, "s.yaml")
    assert [i.id for i in items] == ["udp[size=64-mode=native]", "udp[size=64-mode=generic]",
                                     "udp[size=512-mode=native]", "udp[size=512-mode=generic]"]
    first = items[0]
    assert first.params == {"size": 64, "mode": "native"}
    assert first.streams[0].sizes == [64] and isinstance(first.streams[0].sizes[0], int)
    assert first.xdp[0].mode == "native" and first.xdp[0].program == "pass"
    assert first.streams[0].rate_pps == 20000
    assert first.timeout == 10.0
    assert first.line == 2 and first.file == "s.yaml"
    ex = first.expect["main"]
    assert ex.at == "rx:eth0" and ex.order == "strict" and ex.payload == "intact"
    assert ex.delivered.check(100, 100) and ex.delivered.check(99.5, 100) and not ex.delivered.check(99, 100)
    assert first.expect_xdp["rx:eth0"]["pass"].check(100, 100)


def test_capture_key_on_is_not_a_boolean():
    # YAML 1.1 reads a bare `on` as true; keys are kept as written.
    items = sc.load_text(GOOD, "s.yaml")
    assert items[0].captures[0].on == "rx:eth0"


def test_unknown_field_located_with_suggestion():
    p = one(GOOD.replace("udp: {dport: 9}", "udp: {dprt: 9}"))
    assert (p.file, p.line) == ("s.yaml", 14)
    assert p.path == ("scenarios", 0, "traffic", 0, "frame", "udp", "dprt")
    assert "unknown field 'dprt'" in p.message and "did you mean 'dport'" in p.message
    assert str(p).startswith("s.yaml:14:")


def test_wrong_type_names_expectation():
    p = one(GOOD.replace("count: 100", "count: lots"))
    assert p.line == 12 and p.path[-1] == "count"
    assert "expected a frame count 1..4294967295 (or with a suffix: 5k, 1.5M), got 'lots'" in p.message


def test_enum_error_after_matrix_substitution_names_combination():
    p = one(GOOD.replace("mode: [native, generic]", "mode: [native, turbo]"))
    assert p.line == 7 and p.path == ("scenarios", 0, "xdp", 0, "mode")
    assert "native, generic or auto" in p.message and "'turbo'" in p.message
    assert "with size=64, mode=turbo and 1 more" in p.message


def test_missing_required_field():
    p = one(GOOD.replace("    topology:\n      nodes: [tx, rx]\n      links: [{endpoints: [tx:eth0, rx:eth0], mtu: 1500}]\n", ""))
    assert "missing required field 'topology'" in p.message and p.line == 2


def test_unknown_endpoint_semantic_error():
    p = one(GOOD.replace("to: rx:eth0", "to: rx:eth1"))
    assert p.line == 11 and p.path[-1] == "to"
    assert "'rx:eth1' is not an endpoint of any link" in p.message and "did you mean 'rx:eth0'" in p.message


def test_unconnected_stream():
    text = GOOD.replace("links: [{endpoints: [tx:eth0, rx:eth0], mtu: 1500}]",
                        "links: [{endpoints: [tx:eth0, rx:eth0]}, {endpoints: [c:eth0, rx:eth1]}]")
    text = text.replace("nodes: [tx, rx]", "nodes: [tx, rx, c]")
    text = text.replace("to: rx:eth0", "to: c:eth0").replace("capture: [{on: rx:eth0, via: afpacket}]",
                                                              "capture: [{on: c:eth0}]")
    p = one(text)
    assert "'c:eth0' is not connected to 'tx:eth0'" in p.message


def test_unresolved_placeholder():
    ps = problems(GOOD.replace('size: "${size}"', 'size: "${sise}"'))
    assert [(p.line, p.path[-1]) for p in ps] == [(14, "size"), (22, "size")]
    assert "placeholder ${sise} has no value; matrix keys: size, mode" in ps[0].message
    assert "matrix key 'size' is not used" in ps[1].message


def test_matrix_key_unused():
    ps = problems(GOOD.replace("mode: [native, generic]}", "mode: [native, generic], extra: [1]}"))
    assert any("matrix key 'extra' is not used" in p.message for p in ps)


def test_frame_too_small_for_stamp():
    p = one(GOOD.replace("size: [64, 512]", "size: [61, 512]"))
    assert "frame size 61 B does not fit" in p.message and "62..1514" in p.message and "20 B stamp" in p.message
    assert "with size=61" in p.message


def test_frame_larger_than_mtu():
    p = one(GOOD.replace("size: [64, 512]", "size: [1515]"))
    assert "1515" in p.message and "MTU 1500" in p.message


def test_duplicate_key_and_duplicate_scenario_name():
    p = one(GOOD.replace("count: 100", "count: 100\n        count: 200"))
    assert p.line == 13 and "duplicate key 'count'" in p.message
    doc = loader.load_document(GOOD, "s.yaml").data
    doc["scenarios"].append(copy.deepcopy(doc["scenarios"][0]))
    p = one(yaml.safe_dump(doc))
    assert "scenario name 'udp' is used twice" in p.message


def test_yaml_syntax_error_located():
    p = one(GOOD.replace("nodes: [tx, rx]", "nodes: [tx, rx"))
    assert p.line is not None and p.message.startswith("YAML syntax error")


def test_redirect_needs_target_and_filter_needs_rules():
    ps = problems(GOOD.replace("program: pass", "program: redirect"))
    assert any("needs `target: NODE:IFNAME`" in p.message for p in ps)
    ps = problems(GOOD.replace("program: pass", "program: filter"))
    assert any("program filter needs `rules" in p.message for p in ps)


def test_expect_unknown_stream_and_unattached_xdp():
    ps = problems(GOOD.replace("order: strict\n", "order: strict\n      streams: {mian: {delivered: none}}\n")
                  .replace("xdp: {rx:eth0:", "xdp: {tx:eth0:"))
    msgs = " | ".join(p.message for p in ps)
    assert "no stream named 'mian'" in msgs and "did you mean 'main'" in msgs
    assert "no XDP program is attached to 'tx:eth0'" in msgs


def test_not_a_scenario_file():
    p = one("foo: 1\n")
    assert "not a scenario file" in p.message


def test_load_reports_unreadable_file(tmp_path):
    with pytest.raises(sc.ScenarioSpecError) as ei:
        sc.load(tmp_path / "missing.yaml")
    assert "cannot read the file" in str(ei.value)


def test_is_scenario_file(tmp_path):
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text("scenarios: [\n")          # broken but clearly meant as one
    (tmp_path / "c.yaml").write_text("version: 2\njobs: {}\n")   # unrelated YAML
    (tmp_path / "d.yml").write_text("- scenarios\n")             # a list, not a mapping
    (tmp_path / "e.txt").write_text(GOOD)
    assert [os.path.basename(p) for p in sc.find_scenario_files([tmp_path])] == ["a.yaml", "b.yaml"]


def bpf_elf(programs, text_funcs=(), section="xdp", big_endian=False, machine=247):
    """A minimal relocatable BPF ELF: ``programs`` are functions in ``section``, ``text_funcs`` in ``.text``."""
    import struct

    e = ">" if big_endian else "<"
    shnames = b"\0.strtab\0.text\0" + section.encode() + b"\0.symtab\0"
    off_name = {n: shnames.index(n.encode() + b"\0") for n in (".strtab", ".text", section, ".symtab")}
    strtab = b"".join(n.encode() + b"\0" for n in list(programs) + list(text_funcs))
    names = shnames + strtab
    code = b"\xb7\x00\x00\x00\x02\x00\x00\x00\x95\x00\x00\x00\x00\x00\x00\x00"  # r0 = XDP_PASS; exit
    prog_sec = code * max(1, len(programs))
    text_sec = code * len(text_funcs)
    syms = struct.pack(e + "IBBHQQ", 0, 0, 0, 0, 0, 0)
    for i, n in enumerate(programs):
        syms += struct.pack(e + "IBBHQQ", names.index(n.encode() + b"\0", len(shnames)), 0x12, 0, 3, i * 16, 16)
    for i, n in enumerate(text_funcs):
        syms += struct.pack(e + "IBBHQQ", names.index(n.encode() + b"\0", len(shnames)), 0x12, 0, 2, i * 16, 16)
    blobs = [names, text_sec, prog_sec, syms]
    body, offs = b"", []
    for b in blobs:
        offs.append(64 + len(body))
        body += b + b"\0" * (-len(b) % 8)
    shoff = 64 + len(body)
    hdr = b"\x7fELF" + bytes([2, 2 if big_endian else 1, 1]) + b"\0" * 9
    hdr += struct.pack(e + "HHIQQQIHHHHHH", 1, machine, 1, 0, 0, shoff, 0, 64, 0, 0, 64, 5, 1)
    sh = struct.pack(e + "IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    sh += struct.pack(e + "IIQQQQIIQQ", off_name[".strtab"], 3, 0, 0, offs[0], len(names), 0, 0, 1, 0)
    sh += struct.pack(e + "IIQQQQIIQQ", off_name[".text"], 1, 6, 0, offs[1], len(text_sec), 0, 0, 8, 0)
    sh += struct.pack(e + "IIQQQQIIQQ", off_name[section], 1, 6, 0, offs[2], len(prog_sec), 0, 0, 8, 0)
    sh += struct.pack(e + "IIQQQQIIQQ", off_name[".symtab"], 2, 0, 0, offs[3], len(syms), 1, 1, 8, 24)
    # section names and symbol names share one string table here (sh_link of .symtab = 1, shstrndx = 1)
    return hdr + body + sh


def test_bpf_object_programs_reads_function_symbols(tmp_path):
    for be in (False, True):
        f = tmp_path / ("o%d.o" % be)
        f.write_bytes(bpf_elf(["xdp_b", "xdp_a"], text_funcs=["helper"], big_endian=be))
        assert sc.bpf_object_programs(str(f)) == ["xdp_a", "xdp_b"]  # .text functions are sub-programs


@pytest.mark.parametrize("data, msg", [
    (b"#!/bin/sh\n", "not an ELF file"),
    (b"\x7fELF" + b"\x01\x01" + b"\0" * 80, "not a 64-bit ELF object"),
    (None, "not BPF"),
    (b"\x7fELF\x02\x01" + b"\0" * 12 + b"\xf7\x00" + b"\xff" * 60, "malformed"),
])
def test_bpf_object_programs_rejects_non_bpf_files(tmp_path, data, msg):
    f = tmp_path / "x.o"
    f.write_bytes(data if data is not None else bpf_elf(["p"], machine=62))
    with pytest.raises(ValueError, match=msg):
        sc.bpf_object_programs(str(f))


# A program of one's own keeps no netring counters: its maps are checked with expect.maps (tests/scenario/test_maps.py).
USER_PROGRAM = GOOD.replace("      xdp: {rx:eth0: {pass: all, drop: 0}}\n", "")
assert USER_PROGRAM != GOOD


def test_object_program_path_resolved_relative_to_file(tmp_path):
    (tmp_path / "x" / "progs").mkdir(parents=True)
    (tmp_path / "x" / "progs" / "fw.o").write_bytes(bpf_elf(["xdp_fw"]))
    text = USER_PROGRAM.replace("program: pass", "program: {object: progs/fw.o, program: xdp_fw}")
    items = sc.load_text(text, str(tmp_path / "x" / "s.yaml"))
    assert items[0].xdp[0].program == {"object": str(tmp_path / "x" / "progs" / "fw.o"), "program": "xdp_fw"}


def test_missing_object_and_unknown_program_are_located(tmp_path):
    (tmp_path / "fw.o").write_bytes(bpf_elf(["xdp_fw", "xdp_count"]))
    (tmp_path / "text.o").write_text("not an object")
    ps = problems(USER_PROGRAM.replace("program: pass", "program: {object: nope.o, program: xdp_fw}"), str(tmp_path / "s.yaml"))
    assert len(ps) == 1 and ps[0].path == ("scenarios", 0, "xdp", 0, "program", "object"), [str(x) for x in ps]
    assert "BPF object file %s does not exist" % (tmp_path / "nope.o") in ps[0].message
    assert ps[0].line == 7
    ps = problems(USER_PROGRAM.replace("program: pass", "program: {object: fw.o, program: xdp_fww}"), str(tmp_path / "s.yaml"))
    assert len(ps) == 1 and ps[0].path == ("scenarios", 0, "xdp", 0, "program", "program"), [str(x) for x in ps]
    assert ps[0].message == "%s has no program 'xdp_fww' (did you mean 'xdp_fw'?); its programs: xdp_count, xdp_fw" \
        % (tmp_path / "fw.o")
    ps = problems(USER_PROGRAM.replace("program: pass", "program: {object: text.o, program: x}"), str(tmp_path / "s.yaml"))
    assert len(ps) == 1 and "cannot read the BPF programs of" in ps[0].message and "not an ELF file" in ps[0].message


def test_object_programs_match_libbpf(tmp_path):
    """The ELF reader names exactly the programs libbpf loads (clang-compiled test objects)."""
    import platform
    import shutil
    import subprocess

    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("clang is not installed (Debian package `clang`)")
    libbpf = pytest.importorskip("netring.bpf.libbpf")
    data = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
    out = tmp_path / "xdp_count.o"
    res = subprocess.run([clang, "-O2", "-g", "-target", "bpf", "-I/usr/include/%s-linux-gnu" % platform.machine(),
                          "-c", os.path.join(data, "xdp_count.c"), "-o", str(out)], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    names = sc.bpf_object_programs(str(out))
    assert names
    require("CAP_BPF")   # loading with libbpf
    with libbpf.load_object(str(out)) as obj:
        assert sorted(obj.programs) == names


def test_count_has_a_maximum():
    text = GOOD.replace("count: 100", "count: 4294967295")
    assert sc.load_text(text, "s.yaml")[0].streams[0].count == 4294967295
    p = one(GOOD.replace("count: 100", "count: 99999999999999999999999"))
    assert p.path == ("scenarios", 0, "traffic", 0, "count") and p.line == 12
    assert p.message == "expected a frame count 1..4294967295 (or with a suffix: 5k, 1.5M), got 99999999999999999999999"
    assert sc.COUNT_MAX == 4294967295


def test_matrix_combinations_are_capped_before_expanding(monkeypatch):
    keys = ", ".join("k%d: [%s]" % (i, ", ".join(str(j) for j in range(10))) for i in range(7))
    text = GOOD.replace("matrix: {size: [64, 512], mode: [native, generic]}",
                        "matrix: {size: [64, 512], mode: [native, generic], %s}" % keys).replace(
        "description", "description").replace("name: udp", "name: udp\n    description: \"%s\"" %
                                              "".join("${k%d}" % i for i in range(7)))

    def boom(*a, **k):
        raise AssertionError("the matrix was expanded")

    monkeypatch.setattr(loader, "matrix_combinations", boom)
    p = one(text)
    assert p.path == ("scenarios", 0, "matrix")
    assert p.message.startswith("matrix expands to 40000000 combinations (2 x 2 x 10 x 10 x 10 x 10 x 10 x 10 x 10); "
                                "at most 1000 are allowed")


def test_matrix_of_exactly_the_cap_expands():
    text = GOOD.replace("matrix: {size: [64, 512], mode: [native, generic]}",
                        "matrix: {size: [64, 512], mode: [native, generic], n: [%s]}"
                        % ", ".join(str(i) for i in range(250))).replace("name: udp", "name: udp\n    description: n${n}")
    assert len(sc.load_text(text, "s.yaml")) == sc.MATRIX_MAX == 1000


def test_more_streams_than_stream_ids_is_located(monkeypatch):
    assert sc.schema()["$defs"]["scenario"]["properties"]["traffic"]["maxItems"] == sc.STREAMS_MAX == 65536
    monkeypatch.setattr(loader, "STREAMS_MAX", 1)
    text = GOOD.replace("capture: [{on: rx:eth0, via: afpacket}]", "").replace(
        "    traffic:\n", "    traffic:\n      - {from: tx:eth0, to: rx:eth0}\n")
    p = one(text)
    assert p.path == ("scenarios", 0, "traffic") and p.line == 9
    assert p.message == ("2 streams; at most 1 are possible (a stream's id is its position in `traffic` and the "
                         "stamp holds 16 bits)")


def test_unknown_capability_is_located_with_suggestion():
    p = one(GOOD.replace("    topology:", "    requires: {capabilities: [CAP_NET_ADMIN, CAP_BFP]}\n"
                                           "    topology:", 1))
    assert p.path == ("scenarios", 0, "requires", "capabilities", 1)
    assert "got 'CAP_BFP' (did you mean 'CAP_BPF'?)" in p.message
    items = sc.load_text(GOOD.replace("    topology:", "    requires: {capabilities: [CAP_CHECKPOINT_RESTORE]}\n"
                                                        "    topology:", 1), "s.yaml")
    assert items[0].requires == {"capabilities": ["CAP_CHECKPOINT_RESTORE"]}


def test_capability_table_matches_linux_header():
    import re

    path = "/usr/include/linux/capability.h"
    if not os.path.exists(path):
        pytest.skip("%s is not installed (linux-libc-dev)" % path)
    with open(path) as f:
        defs = dict((m.group(1), int(m.group(2))) for m in re.finditer(r"^#define\s+(CAP_[A-Z_]+)\s+(\d+)\s*$",
                                                                        f.read(), re.M))
    table = {k: v for k, v in defs.items() if not k.startswith(("CAP_LAST", "CAP_TO", "CAP_FLAGS"))}
    assert sc.CAPABILITIES == table
    assert sc.schema()["$defs"]["requires"]["properties"]["capabilities"]["items"]["enum"] == list(sc.CAPABILITIES)


class _Ep:
    def __init__(self, name):
        self.ifname = name.split(":")[1]
        self.netns = name.split(":")[0]


def test_runtime_requires_native_xdp_checks_the_attach_endpoints():
    s = sc.load_text(GOOD.replace("    topology:", "    requires: {xdp_modes: [native]}\n    topology:", 1),
                     "s.yaml")[0]
    asked = []

    def no_native(ifname, netns=None):
        asked.append((netns, ifname))
        return type("Info", (), {"xdp_features": frozenset({"redirect"})})()

    topo = {"rx:eth0": _Ep("rx:eth0"), "tx:eth0": _Ep("tx:eth0")}
    reason = sc.check_runtime_requires(s, topo, features=no_native)
    assert asked == [("rx", "eth0")]
    assert reason == ("needs native XDP (requires.xdp_modes: [native]), but rx:eth0 does not support it "
                      "(XDP features: redirect)")

    def native(ifname, netns=None):
        return type("Info", (), {"xdp_features": frozenset({"basic", "redirect"})})()

    assert sc.check_runtime_requires(s, topo, features=native) is None
    generic = sc.load_text(GOOD.replace("    topology:", "    requires: {xdp_modes: [generic]}\n"
                                                          "    topology:", 1), "s.yaml")[0]
    assert sc.check_runtime_requires(generic, topo, features=no_native) is None


def test_default_capture_and_stream_names():
    items = sc.load_text(textwrap.dedent("""\
        scenarios:
          - name: d
            topology: {nodes: [a, b], links: [{endpoints: [a:e, b:e]}]}
            traffic: [{from: a:e, to: b:e}, {from: b:e, to: a:e, count: 5}]
        """), "d.yaml")
    s = items[0]
    assert [t.name for t in s.streams] == ["s0", "s1"]
    assert [c.on for c in s.captures] == ["b:e", "a:e"]
    assert s.streams[0].count == sc.DEFAULT_COUNT and s.streams[1].count == 5
    assert s.expect["s0"].at == "b:e" and s.expect["s1"].at == "a:e"
    assert s.total_frames == sc.DEFAULT_COUNT + 5


@pytest.mark.parametrize("text,total,ok,bad", [
    ("all", 10, [10], [9, 11]), ("none", 10, [0], [1]), (5, 10, [5], [4, 6]),
    (">= 99.9%", 1000, [999, 1000], [998]), ("< 3", 10, [2], [3]), ("!= 4", 10, [3], [4]),
])
def test_count_expr(text, total, ok, bad):
    e = sc.CountExpr(text)
    assert all(e.check(v, total) for v in ok)
    assert not any(e.check(v, total) for v in bad)


@pytest.mark.parametrize("bad", ["most", "101%", -1, True, ">= x"])
def test_count_expr_rejects(bad):
    with pytest.raises(ValueError):
        sc.CountExpr(bad)


def test_durations_and_rates():
    assert sc.parse_duration("500ms") == 0.5 and sc.parse_duration("2m") == 120 and sc.parse_duration(3) == 3
    assert sc.parse_rate("max") is None and sc.parse_rate("1.5Mpps") == 1500000 and sc.parse_rate(7) == 7
    with pytest.raises(ValueError):
        sc.parse_duration("soon")


# ---------------------------------------------------------------------------------------------
# hypothesis: broken specs always give located problems, never a traceback
# ---------------------------------------------------------------------------------------------
BASE = loader.load_document(GOOD, "s.yaml").data  # keeps the `on` key a string (yaml.safe_load would make it True)

junk = st.one_of(st.none(), st.booleans(), st.integers(-5, 70000), st.text(max_size=12),
                 st.sampled_from(["${mode}", "${nope}", "all", "rx:eth0", "tx:eth9", "max", "10s", ">= 5%"]),
                 st.lists(st.integers(-1, 2000), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


ALL_PATHS = [p for p in _paths(BASE) if p]


@st.composite
def broken_docs(draw):
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(ALL_PATHS))
        parent = doc
        try:
            for part in path[:-1]:
                parent = parent[part]
            key = path[-1]
            op = draw(st.sampled_from(["replace", "delete", "add"]))
            if op == "replace":
                parent[key] = draw(junk)
            elif op == "delete":
                del parent[key]
            elif isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=6))] = draw(junk)
            else:
                parent.append(draw(junk))
        except (KeyError, IndexError, TypeError, AttributeError):
            pass
    return doc


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken_docs())
def test_broken_specs_yield_located_errors(doc):
    text = yaml.safe_dump(doc, sort_keys=False)
    try:
        items = sc.load_text(text, "h.yaml")
    except sc.ScenarioSpecError as exc:
        assert exc.problems
        for p in exc.problems:
            assert p.file == "h.yaml"
            assert isinstance(p.line, int) and p.line >= 1
            assert p.message and "Traceback" not in p.message
            assert str(p).startswith("h.yaml:%d:" % p.line)
    else:
        assert all(isinstance(i, sc.Scenario) for i in items)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_raises_anything_else(text):
    try:
        sc.load_text("scenarios:\n" + text, "t.yaml")
    except sc.ScenarioSpecError as exc:
        assert all(p.file == "t.yaml" for p in exc.problems)


def test_bundled_suite_is_valid():
    root = os.path.join(os.path.dirname(__file__), "..", "..", "scenarios")
    files = sc.find_scenario_files([root])
    assert len(files) >= 4
    ids = [s.id for f in files for s in sc.load(f)]
    assert "udp-roundtrip[size=1514]" in ids and "xdp-drop-all[mode=generic]" in ids


def test_schema_is_valid_json_schema():
    import jsonschema

    jsonschema.validators.validator_for(sc.schema()).check_schema(sc.schema())


def test_filter_rule_errors_are_located():
    pytest.importorskip("netring.bpf.programs")
    text = textwrap.dedent("""\
        scenarios:
          - name: f
            topology: {nodes: [a, b], links: [{endpoints: [a:e, b:e]}]}
            xdp:
              - attach: b:e
                program: filter
                rules:
                  - {match: {udp: {dport: 9}}, action: drop}
                  - match:
                      ipv4: {src: "198.18.0.300"}
                    action: drop
            traffic: [{from: a:e, to: b:e}]
        """)
    p = one(text)
    assert p.line == 10 and p.path[-5:] == ("rules", 1, "match", "ipv4", "src")
    assert "198.18.0.300" in p.message


FILTER_BY_NAME = textwrap.dedent("""\
    scenarios:
      - name: f
        topology: {nodes: [a, b], links: [{endpoints: [a:e, b:e]}]}
        xdp:
          - attach: b:e
            program: filter
            rules:
              - {match: {stream: dropped}, action: drop}
              - {match: {stream: 0, udp: {}}, action: pass}
        traffic: [{name: kept, from: a:e, to: b:e}, {name: dropped, from: a:e, to: b:e}]
        expect: {streams: {dropped: {delivered: none}}}
    """)


def test_filter_rule_takes_a_stream_name_resolved_to_its_id():
    pytest.importorskip("netring.bpf.programs")
    s = sc.load_text(FILTER_BY_NAME, "f.yaml")[0]
    assert [r["match"]["stream"] for r in s.xdp[0].options["rules"]] == [1, 0]
    assert s.spec["xdp"][0]["rules"][0]["match"]["stream"] == "dropped"  # the written spec is left as written


def test_filter_rule_with_an_unknown_stream_name_is_located_with_did_you_mean():
    pytest.importorskip("netring.bpf.programs")
    p = one(FILTER_BY_NAME.replace("{stream: dropped}", "{stream: droped}"))
    assert p.path == ("scenarios", 0, "xdp", 0, "rules", 0, "match", "stream") and p.line == 8, str(p)
    assert p.message == ("no stream named 'droped' (did you mean 'dropped'?); streams: kept, dropped "
                         "(or give a stream id 0..65535)")


def test_reference_examples_are_valid():
    import re

    path = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
    blocks = re.findall(r"```yaml\n(.*?)```", open(path).read(), re.S)
    full = [b for b in blocks if b.startswith("scenarios:")]
    assert full
    for b in full:
        assert sc.load_text(b, "ref.yaml")
    # the fragments slot into a scenario unchanged
    topo = next(b for b in blocks if b.startswith("topology:"))
    expect = next(b for b in blocks if b.startswith("expect:"))
    topo = topo.replace("nodes: [a, b, sw]", "nodes: [a, b, sw, rx]").replace(
        "  bridges:", "    - {endpoints: [sw:p2, rx:eth0]}\n  bridges:")
    frag = "scenarios:\n  - name: frag\n" + textwrap.indent(topo, "    ") + textwrap.indent(textwrap.dedent("""\
        xdp: [{attach: rx:eth0, program: drop}]
        traffic:
          - {name: main, from: a:eth0, to: b:eth0}
          - {name: dropped, from: sw:p2, to: rx:eth0}
        capture: [{on: b:eth0}, {on: rx:eth0}]
        """), "    ")
    # expect.maps needs a program of one's own (a clang-built object): tests/scenario/test_maps.py loads that part
    maps = re.search(r"^  maps:.*\n(?:    .*\n)+", expect, re.M)
    assert maps
    frag += textwrap.indent(expect.replace(maps.group(0), ""), "    ")
    items = sc.load_text(frag, "frag.yaml")
    assert items[0].expect["dropped"].delivered.is_none


def test_anchors_and_merge_keys():
    text = textwrap.dedent("""\
        x-pair: &pair {nodes: [tx, rx], links: [{endpoints: [tx:eth0, rx:eth0]}]}
        x-stream: &stream {from: tx:eth0, to: rx:eth0, count: 10}
        scenarios:
          - name: a
            topology: *pair
            traffic: [{<<: *stream, name: one}, {<<: *stream, name: two, count: 20}]
        """)
    s = sc.load_text(text, "a.yaml")[0]
    assert [(t.name, t.count) for t in s.streams] == [("one", 10), ("two", 20)]


SEEDED_SIZES = textwrap.dedent("""\
    scenarios:
      - name: seeded
        seed: 7
        topology: {nodes: [tx, rx], links: [{endpoints: [tx:eth0, rx:eth0]}]}
        traffic: [{from: tx:eth0, to: rx:eth0, frame: {size: {min: 64, max: 1500, variants: 16}}}]
    """)


def test_seeded_random_sizes_are_the_same_in_every_process():
    """``seed: 7`` means the same frame sizes in every run, whatever PYTHONHASHSEED the process got."""
    import subprocess
    import sys

    code = ("import sys; from netring_testkit import scenario; "
            "print(scenario.load_text(sys.stdin.read(), 's.yaml')[0].streams[0].sizes)")
    runs = set()
    for hashseed in ("1", "2", "3"):
        p = subprocess.run([sys.executable, "-c", code], input=SEEDED_SIZES, capture_output=True, text=True,
                           env=dict(os.environ, PYTHONHASHSEED=hashseed), timeout=60)
        assert p.returncode == 0, p.stderr
        runs.add(p.stdout.strip())
    assert len(runs) == 1, runs
    sizes = eval(runs.pop())
    assert len(sizes) == 16 and sizes[:2] == [64, 1500] and all(64 <= z <= 1500 for z in sizes)
    assert sizes == sc.load_text(SEEDED_SIZES, "s.yaml")[0].streams[0].sizes


@pytest.mark.parametrize("written, frames", [("5k", 5000), ("1.5M", 1500000), ("20K", 20000), (" 2 k", 2000),
                                            ("1.1k", 1100), ("4294.967295M", 4294967295), ("'${n}'", 7000)])
def test_count_takes_k_and_M_suffixes_as_rate_does(written, frames):
    text = GOOD.replace("count: 100", "count: %s" % written)
    if "${n}" in written:
        text = text.replace("mode: [native, generic]}", "mode: [native, generic], n: [7k]}")
    assert {s.streams[0].count for s in sc.load_text(text, "s.yaml")} == {frames}


@pytest.mark.parametrize("written, message", [
    ("1.0005k", "frame count 1.0005k is 1000.5 frames, not a whole number"),
    ("4295M", "frame count 4295M is 4295000000, outside 1..4294967295"),
    ("0k", "frame count 0k is 0, outside 1..4294967295"),
])
def test_count_with_a_suffix_must_give_a_whole_count_in_range(written, message):
    p = one(GOOD.replace("count: 100", "count: %s" % written))
    assert p.path == ("scenarios", 0, "traffic", 0, "count") and p.line == 12, str(p)
    assert p.message == message


def test_parse_count():
    assert sc.parse_count(12) == 12 and sc.parse_count("3k") == 3000
    for bad in (True, "5", "5kk", "k", "1e3", "5G"):
        with pytest.raises(ValueError):
            sc.parse_count(bad)
