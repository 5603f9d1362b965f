"""The engine over real namespaces: crafted faults are counted exactly, failures explain themselves,
reports/artifacts/JUnit properties are written, and the suite runs under xdist.

Needs root (namespaces, packet sockets); skipped otherwise.
"""
import json
import os
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

from netring_testkit.plugin import require

from netring_testkit import report, runner, scenario as sc

pytestmark = pytest.mark.privileged

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.fixture(autouse=True)
def _need_root():
    require()
    pytest.importorskip("netring_testkit.topology", reason="netring_testkit.topology (testkit) is not installed")


PAIR = textwrap.dedent("""\
    scenarios:
      - name: faults
        topology: {nodes: [tx, rx], links: [{endpoints: [tx:eth0, rx:eth0]}]}
        traffic: [{name: main, from: tx:eth0, to: rx:eth0, count: 100, frame: {udp: {dport: 9}, size: [80, 200]}}]
        capture: [{on: rx:eth0}]
        expect: {delivered: all, order: strict, payload: intact}
        timeout: 10s
        quiet: 300ms
    """)

GARBAGE = bytes.fromhex("ffffffffffff02000000000188b5") + b"\x00" * 46  # local-experimental ethertype, no stamp


class FaultyInjector:
    """Wraps a real Injector: sends a stream with exactly the faults asked for (Python path, small counts)."""

    def __init__(self, inner, drop=(), dup=(), swap=(), corrupt=(), extra=()):
        self.inner = inner
        self.drop, self.dup, self.swap, self.corrupt, self.extra = set(drop), set(dup), list(swap), set(corrupt), extra

    def send_stream(self, templates, stream_id, first_seq, count, rate_pps=None, csum_offsets=None, timeout=None):
        from netring.check import stamp_frame

        offs = csum_offsets or [-1] * len(templates)
        frames = {}
        for seq in range(first_seq, first_seq + count):
            i = (seq - first_seq) % len(templates)
            fr = bytearray(stamp_frame(templates[i], stream_id, seq, offs[i]))
            if seq in self.corrupt:
                fr[45] ^= 0x5A  # inside the UDP payload the check covers (before the stamp)
            frames[seq] = bytes(fr)
        order = [s for s in range(first_seq, first_seq + count) if s not in self.drop]
        for a, b in self.swap:
            ia, ib = order.index(a), order.index(b)
            order[ia], order[ib] = order[ib], order[ia]
        out = []
        for s in order:
            out.append(frames[s])
            if s in self.dup:
                out.append(frames[s])
        out.extend(self.extra)
        self.inner.send_batch(out, timeout=timeout)
        self.inner.wait_drained(2.0)
        return count

    def wait_drained(self, timeout):
        return self.inner.wait_drained(timeout)

    def close(self):
        self.inner.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def faulty_topology(**faults):
    from netring_testkit.topology import Topology

    def factory(spec):
        topo = Topology(spec)
        orig_getitem = Topology.__getitem__

        class Wrapped:
            def __getattr__(self, name):
                return getattr(topo, name)

            def __getitem__(self, name):
                ep = orig_getitem(topo, name)
                if name != "tx:eth0":
                    return ep
                outer = ep

                class Ep:
                    def __getattr__(self, n):
                        return getattr(outer, n)

                    def injector(self, **kw):
                        return FaultyInjector(outer.injector(**kw), **faults)

                return Ep()

        return Wrapped()

    return factory


def test_clean_run_passes():
    s = sc.load_text(PAIR, "p.yaml")[0]
    r = runner.run(s)
    assert r.status == "passed", r.render()
    assert [(x.expected, x.sent, x.delivered, x.lost, x.duplicated, x.reordered, x.corrupted) for x in r.streams] \
        == [(100, 100, 100, 0, 0, 0, 0)]
    assert r.interfaces["rx:eth0"]["rx_packets"] >= 100 and r.interfaces["tx:eth0"]["tx_packets"] >= 100


def test_crafted_faults_are_counted_exactly(tmp_path):
    s = sc.load_text(PAIR, "p.yaml")[0]
    r = runner.run(s, artifacts_dir=str(tmp_path), topology_factory=faulty_topology(
        drop=[5], dup=[7], swap=[(10, 11)], corrupt=[20], extra=[GARBAGE]))
    assert r.status == "failed"
    st = r.streams[0]
    # 5 lost, 20 corrupted (not delivered), 7 seen twice, 10 arrives after 11
    assert (st.delivered, st.lost, st.duplicated, st.reordered, st.corrupted) == (98, 2, 1, 1, 1)
    assert r.unexpected["rx:eth0"] >= 1
    text = r.render()
    assert "FAIL: stream main: delivered 98 at rx:eth0, expected all (100)" in text
    assert "FAIL: stream main: 1 frames arrived out of order (order: strict)" in text
    assert "FAIL: stream main: 1 duplicated frames (order: strict)" in text
    assert "FAIL: stream main: 1 frames with a corrupted payload or stamp (payload: intact)" in text
    row = next(l for l in text.splitlines() if l.strip().startswith("main")).split()
    assert row[:9] == ["main", "rx:eth0", "100", "100", "98", "2", "1", "1", "1"]
    assert "ethertype 0x88b5" in text or "88b5" in text
    # artifacts: JSON result and a pcapng with the unexpected frames (and samples of sent/arrived)
    doc = json.loads((tmp_path / "faults.json").read_text())
    assert doc["status"] == "failed" and doc["streams"][0]["duplicated"] == 1
    got = report.read_pcapng(tmp_path / "faults.pcapng")
    assert (GARBAGE, "unexpected at rx:eth0") in [(p.data, p.comment) for p in got]


def test_timeout_is_respected():
    s = sc.load_text(PAIR.replace("count: 100,", "count: 200000, rate: 20kpps,").replace("timeout: 10s", "timeout: 1s")
                     .replace("quiet: 300ms", "quiet: 200ms"), "p.yaml")[0]
    r = runner.run(s)
    assert r.status == "failed"
    assert r.duration < 6
    assert 0 < r.streams[0].sent < 200000
    assert any("frames were injected" in f for f in r.failures)


BAD = textwrap.dedent("""\
    scenarios:
      - name: good
        topology: {nodes: [tx, rx], links: [{endpoints: [tx:eth0, rx:eth0]}]}
        traffic: [{name: main, from: tx:eth0, to: rx:eth0, count: 2000, frame: {size: "${size}"}}]
        expect: {delivered: all}
        matrix: {size: [64, 1000]}
      - name: wrong-expectation
        description: expects every frame although an XDP program drops them all
        topology: {nodes: [tx, rx], links: [{endpoints: [tx:eth0, rx:eth0]}]}
        xdp: [{attach: rx:eth0, program: drop, mode: generic}]
        traffic: [{name: main, from: tx:eth0, to: rx:eth0, count: 2000}]
        expect: {delivered: all, xdp: {rx:eth0: {pass: all}}}
        quiet: 300ms
    """)


def child(tmp_path, *args):
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-m", "pytest", "-p", "netring_testkit.scenario_plugin", "-p", "no:cacheprovider",
           "--rootdir", str(tmp_path), "-c", os.devnull] + list(args)
    return subprocess.run(cmd, cwd=str(tmp_path), capture_output=True, text=True, timeout=300, env=env)


def test_plugin_run_reports_failure_artifacts_json_and_junit(tmp_path):
    (tmp_path / "s.yaml").write_text(BAD)
    p = child(tmp_path, "-q", "--netring-report", "r.json", "--netring-artifacts", "art", "--junitxml", "j.xml", ".")
    out = p.stdout
    assert p.returncode == 1, out + p.stderr
    assert "3 passed" not in out and "1 failed, 2 passed" in out
    assert "scenario wrong-expectation (s.yaml:7) FAILED" in out
    assert "FAIL: stream main: delivered 0 at rx:eth0, expected all (2000)" in out
    assert "FAIL: xdp rx:eth0: pass counted 0, expected all (2000)" in out
    assert "rx:eth0: aborted=0, drop=2000, pass=0" in out
    assert "XDP programs:\n  at       program  mode     obtained\n  -------  -------  -------  --------\n" \
           "  rx:eth0  drop     generic  generic\n" in out  # as the README's "What a failure looks like" shows
    assert "Traceback" not in out
    rep = json.loads((tmp_path / "r.json").read_text())
    by_id = {r["id"]: r for r in rep["scenarios"]}
    assert set(by_id) == {"good[size=64]", "good[size=1000]", "wrong-expectation"}
    assert by_id["good[size=64]"]["status"] == "passed" and by_id["good[size=64]"]["streams"][0]["delivered"] == 2000
    assert by_id["wrong-expectation"]["status"] == "failed" and by_id["wrong-expectation"]["xdp"]["rx:eth0"]["drop"] == 2000
    assert rep["summary"] == {"passed": 2, "failed": 1, "error": 0, "skipped": 0}
    assert (tmp_path / "art" / "wrong-expectation.json").exists()
    got = report.read_pcapng(tmp_path / "art" / "wrong-expectation.pcapng")   # pure loss: still a pcapng
    assert [p.comment for p in got] == ["sent stream main seq %d" % q for q in list(range(16)) + list(range(1984, 2000))]
    props = {}
    for case in ET.parse(tmp_path / "j.xml").getroot().iter("testcase"):
        props[case.get("name")] = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert float(props["good[size=64]"]["pps"]) > 0 and float(props["good[size=64]"]["loss"]) == 0.0
    assert float(props["wrong-expectation"]["loss"]) == 1.0


def test_xdist_two_workers(tmp_path):
    pytest.importorskip("xdist")
    (tmp_path / "s.yaml").write_text(BAD)
    p = child(tmp_path, "-q", "-n", "2", "--netring-report", "r.json", ".")
    assert "1 failed, 2 passed" in p.stdout, p.stdout + p.stderr
    rep = json.loads((tmp_path / "r.json").read_text())
    assert sorted(r["status"] for r in rep["scenarios"]) == ["failed", "passed", "passed"]


# A conftest for the child pytest: records the namespace (inode, netns cookie) of every node and
# the id of every XDP program attached, then "traffic" once the first frames left.
TRACE_CONFTEST = textwrap.dedent("""\
    import json, os, socket, time
    from netring_testkit import runner

    TRACE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "trace.jsonl")
    _attach, _drain = runner._attach_xdp, runner._drain

    def _write(**kw):
        with open(TRACE, "a") as f:
            f.write(json.dumps(kw) + "\\n")

    def _cookie(ns):
        s = ns.socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
        try:
            return int.from_bytes(s.getsockopt(socket.SOL_SOCKET, 71, 8), "little")  # SO_NETNS_COOKIE
        finally:
            s.close()

    def attach(stack, topo, spec, *args):
        for node, ns in topo.nodes.items():
            _write(node=node, inode=os.fstat(ns.fileno()).st_ino, cookie=_cookie(ns))
        att, obj = _attach(stack, topo, spec, *args)
        _write(prog_id=att.program.id)
        return att, obj

    def drain(scenario, caps, senders, *args):
        # _drain starts the senders: watch for their first frames from a helper thread.
        import threading

        def watch():
            end = time.monotonic() + 30
            while not any(s.sent for s in senders) and time.monotonic() < end:
                time.sleep(0.02)
            _write(traffic=sum(s.sent for s in senders))

        threading.Thread(target=watch, daemon=True).start()
        return _drain(scenario, caps, senders, *args)

    runner._attach_xdp, runner._drain = attach, drain
    """)


def _net_ns_holders(inode):
    """Paths under /proc (ns links, fds) and mount points that refer to net namespace ``inode``."""
    want = "net:[%d]" % inode
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        links = ["/proc/%s/ns/net" % pid]
        for sub in ("task", "fd"):
            try:
                names = os.listdir("/proc/%s/%s" % (pid, sub))
            except OSError:
                continue
            links += ["/proc/%s/task/%s/ns/net" % (pid, t) for t in names] if sub == "task" else \
                ["/proc/%s/fd/%s" % (pid, f) for f in names]
        for link in links:
            try:
                if os.readlink(link) == want:
                    found.append(link)
            except OSError:
                pass
    with open("/proc/self/mountinfo") as f:
        found += [l.split()[4] for l in f if l.split()[3] == want]
    return found


def _same_namespace(path, cookie):
    """True when the namespace at ``path`` has netns cookie ``cookie`` (inode numbers can be reused)."""
    import socket

    from netring.netns import NetNS

    try:
        ns = NetNS.open(path)
    except Exception:
        return False  # gone meanwhile
    try:
        s = ns.socket(socket.AF_INET, socket.SOCK_DGRAM, 0)
        try:
            return int.from_bytes(s.getsockopt(socket.SOL_SOCKET, 71, 8), "little") == cookie
        finally:
            s.close()
    finally:
        ns.close()


def test_ctrl_c_stops_a_long_scenario_and_tears_it_down(tmp_path):
    import signal
    import time

    from netring.bpf import BpfObjectNotFoundError, program_from_id

    (tmp_path / "long.yaml").write_text(textwrap.dedent("""\
        scenarios:
          - name: long
            topology: {nodes: [tx, rx], links: [{endpoints: [tx:eth0, rx:eth0]}]}
            xdp: [{attach: rx:eth0, program: pass, mode: native}]
            traffic: [{from: tx:eth0, to: rx:eth0, count: 1000000, rate: 10kpps}]
            timeout: 60s
        """))
    (tmp_path / "conftest.py").write_text(TRACE_CONFTEST)
    trace = tmp_path / "trace.jsonl"
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "netring_testkit.scenario_plugin", "-p",
                             "no:cacheprovider", "--rootdir", str(tmp_path), "-c", os.devnull, "-v", "long.yaml"],
                            cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        records = []
        for _ in range(1200):  # until the child reports traffic flowing (bounded: 120 s), or it ended
            if trace.exists():
                records = [json.loads(l) for l in trace.read_text().splitlines() if l.strip()]
            if any("traffic" in r for r in records) or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert any(r.get("traffic", 0) > 0 for r in records), (records, proc.poll())
        # While it runs, the checks below do see its namespaces and program (so they can fail).
        for r in records:
            if "inode" in r:
                assert any(_same_namespace(p, r["cookie"]) for p in _net_ns_holders(r["inode"])), r
            if "prog_id" in r:
                program_from_id(r["prog_id"]).close()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)  # a hang here fails the test
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "KeyboardInterrupt" in out, out
    assert proc.returncode == 2, out
    assert "Segmentation fault" not in out and "Fatal Python error" not in out, out
    namespaces = [(r["node"], r["inode"], r["cookie"]) for r in records if "inode" in r]
    prog_ids = [r["prog_id"] for r in records if "prog_id" in r]
    assert sorted(n for n, _, _ in namespaces) == ["rx", "tx"] and len(prog_ids) == 1
    for _ in range(50):  # the kernel frees what the exited child held; allow it a moment (bounded)
        leaked = {node: [p for p in _net_ns_holders(inode) if _same_namespace(p, cookie)]
                  for node, inode, cookie in namespaces}
        leaked = {k: v for k, v in leaked.items() if v}
        alive = []
        for pid in prog_ids:
            try:
                program_from_id(pid).close()
                alive.append(pid)
            except BpfObjectNotFoundError:
                pass
        if not leaked and not alive:
            break
        time.sleep(0.1)
    assert leaked == {}, "namespaces still referenced: %s" % leaked
    assert alive == [], "XDP programs still loaded: %s" % alive


def test_requires_native_xdp_skips_when_the_interface_lacks_it(monkeypatch):
    s = sc.load_text(PAIR.replace("    topology:", "    requires: {xdp_modes: [native]}\n    topology:", 1), "p.yaml")[0]
    asked = []

    def generic_only(ifname, netns=None):
        asked.append(ifname)
        return type("Info", (), {"xdp_features": frozenset()})()

    monkeypatch.setattr(runner, "_features", generic_only)
    r = runner.run(s)
    assert r.status == "skipped" and asked == ["eth0"] and r.streams == []
    assert r.skip_reason == ("needs native XDP (requires.xdp_modes: [native]), but rx:eth0 does not support it "
                             "(XDP features: none)")
    monkeypatch.setattr(runner, "_features", None)
    r = runner.run(s)  # veth: native XDP is real, so the scenario runs
    assert r.status == "passed", r.render()


def test_user_object_without_the_program_is_an_error_not_a_traceback(tmp_path):
    import platform
    import shutil

    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("clang is not installed (Debian package `clang`)")
    pytest.importorskip("netring.bpf.libbpf")
    out = tmp_path / "xdp_count.o"
    res = subprocess.run([clang, "-O2", "-g", "-target", "bpf", "-I/usr/include/%s-linux-gnu" % platform.machine(),
                          "-c", os.path.join(ROOT, "tests", "data", "xdp_count.c"), "-o", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    names = sc.bpf_object_programs(str(out))
    text = PAIR.replace("    traffic:", "    xdp: [{attach: rx:eth0, program: {object: xdp_count.o, program: %s}}]\n"
                        "    traffic:" % names[0], 1)
    s = sc.load_text(text, str(tmp_path / "p.yaml"))[0]
    s.xdp[0].program["program"] = "nosuchprog"  # as if the object changed after validation
    r = runner.run(s, artifacts_dir=str(tmp_path / "art"))
    assert r.status == "error", r.render()
    assert r.error.startswith("ScenarioError: xdp rx:eth0: %s has no program ['nosuchprog']" % out), r.error
    assert "Traceback" not in r.render()
    assert "Traceback" in json.loads((tmp_path / "art" / "faults.json").read_text())["traceback"]


def test_filter_rule_by_stream_name_drops_that_stream():
    text = textwrap.dedent("""\
        scenarios:
          - name: by-name
            topology: {nodes: [tx, rx], links: [{endpoints: [tx:eth0, rx:eth0]}]}
            xdp: [{attach: rx:eth0, program: filter, mode: generic, rules: [{match: {stream: dropped}, action: drop}]}]
            traffic:
              - {name: kept, from: tx:eth0, to: rx:eth0, count: 300}
              - {name: dropped, from: tx:eth0, to: rx:eth0, count: 200}
            expect: {streams: {dropped: {delivered: none}}, xdp: {rx:eth0: {drop: 200}}}
            quiet: 300ms
        """)
    r = runner.run(sc.load_text(text, "f.yaml")[0])
    assert r.status == "passed", r.render()
    assert [(s.name, s.delivered) for s in r.streams] == [("kept", 300), ("dropped", 0)]
    assert r.xdp["rx:eth0"]["drop"] == 200


MODES = textwrap.dedent("""\
    scenarios:
      - name: modes
        topology: {nodes: [tx, rx], links: [{endpoints: [tx:eth0, rx:eth0]}]}
        xdp:
          - {attach: rx:eth0, program: pass, mode: auto}
          - {attach: tx:eth0, program: pass, mode: generic}
        traffic: [{name: main, from: tx:eth0, to: rx:eth0, count: 100}]
        expect: {delivered: none}
        quiet: 200ms
    """)


def test_result_records_requested_and_obtained_xdp_mode(monkeypatch, tmp_path):
    """An `auto` attach that fell back to generic shows in the JSON and the verdict (as one on a NIC without native XDP)."""
    import netring.xdp as xdp

    real = xdp.attach
    monkeypatch.setattr(xdp, "attach", lambda target, program, netns=None, mode="native", **kw:
                        real(target, program, netns=netns, mode="generic" if mode == "auto" else mode, **kw))
    r = runner.run(sc.load_text(MODES, "m.yaml")[0], artifacts_dir=str(tmp_path))
    assert r.status == "failed", r.render()  # delivered: none is wrong: the verdict is rendered
    want = [{"at": "rx:eth0", "program": "pass", "requested": "auto", "obtained": "generic"},
            {"at": "tx:eth0", "program": "pass", "requested": "generic", "obtained": "generic"}]
    assert r.as_dict()["xdp_attachments"] == want
    assert json.loads((tmp_path / "modes.json").read_text())["xdp_attachments"] == want
    lines = r.render().splitlines()
    i = lines.index("XDP programs:")
    assert [l.split() for l in lines[i + 1:i + 5]] == [
        ["at", "program", "mode", "obtained"], ["-------", "-------", "-------", "--------"],
        ["rx:eth0", "pass", "auto", "generic"], ["tx:eth0", "pass", "generic", "generic"]]
    monkeypatch.setattr(xdp, "attach", real)
    r = runner.run(sc.load_text(MODES, "m.yaml")[0])
    assert r.xdp_attachments[0]["obtained"] == "native"  # veth has native XDP: auto gets it


def test_an_error_is_an_error_in_pytest_json_and_junit(tmp_path):
    """A run that could not finish (here: the verifier refuses the program) counts as a pytest error, not a failure."""
    import platform
    import shutil

    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("clang is not installed (Debian package `clang`)")
    pytest.importorskip("netring.bpf.libbpf")
    res = subprocess.run([clang, "-O2", "-g", "-target", "bpf", "-I/usr/include/%s-linux-gnu" % platform.machine(),
                          "-c", os.path.join(ROOT, "tests", "data", "xdp_bad.c"), "-o", str(tmp_path / "bad.o")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    (tmp_path / "s.yaml").write_text(BAD.replace("program: drop,", "program: {object: bad.o, program: xdp_unchecked},")
                                     .replace("xdp: {rx:eth0: {pass: all}}", "interface: {rx:eth0: {rx_packets: 0}}"))
    p = child(tmp_path, "-q", "-rA", "--netring-report", "r.json", "--junitxml", "j.xml", ".")
    out = p.stdout
    assert p.returncode == 1, out + p.stderr
    assert re.search(r"^2 passed, 1 error in ", out.splitlines()[-1]), out
    assert "ERROR s.yaml::wrong-expectation" in out and "FAILED" not in out, out
    assert "error: VerifierError" in out and "Traceback" not in out, out
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["summary"] == {"passed": 2, "failed": 0, "error": 1, "skipped": 0}
    assert {r["id"]: r["status"] for r in rep["scenarios"]}["wrong-expectation"] == "error"
    case = next(c for c in ET.parse(tmp_path / "j.xml").getroot().iter("testcase") if c.get("name") == "wrong-expectation")
    assert [e.tag for e in case if e.tag in ("error", "failure")] == ["error"]
    assert "VerifierError" in case.find("error").get("message")
    suite = next(ET.parse(tmp_path / "j.xml").getroot().iter("testsuite"))
    assert (suite.get("errors"), suite.get("failures"), suite.get("tests")) == ("1", "0", "3")
    try:
        import xdist  # noqa: F401
    except ImportError:
        return
    p = child(tmp_path, "-q", "-n", "2", "--netring-report", "r2.json", ".")
    assert re.search(r"^2 passed, 1 error in ", p.stdout.splitlines()[-1]), p.stdout + p.stderr
    assert json.loads((tmp_path / "r2.json").read_text())["summary"]["error"] == 1


def test_an_exception_outside_the_verdict_is_an_error_too(tmp_path):
    """A bug below the item (here: the engine raising) is an error in pytest's summary, as in the JSON."""
    (tmp_path / "conftest.py").write_text(textwrap.dedent("""\
        from netring_testkit import runner

        def _boom(*args, **kw):
            raise RuntimeError("boom")

        runner.run = _boom
        """))
    (tmp_path / "s.yaml").write_text(PAIR)
    p = child(tmp_path, "-q", "--netring-report", "r.json", "--junitxml", "j.xml", ".")
    assert re.search(r"^1 error in ", p.stdout.splitlines()[-1]), p.stdout + p.stderr
    rec = json.loads((tmp_path / "r.json").read_text())["scenarios"][0]
    assert rec["status"] == "error" and "boom" in rec["error"]
    case = next(ET.parse(tmp_path / "j.xml").getroot().iter("testcase"))
    assert [e.tag for e in case if e.tag in ("error", "failure")] == ["error"]


QUIET = textwrap.dedent("""\
    scenarios:
      - name: quiet
        topology: {nodes: [tx, rx], links: [{endpoints: [tx:eth0, rx:eth0]}]}
        xdp: [{attach: rx:eth0, program: pass}]
        traffic: [{name: main, from: tx:eth0, to: rx:eth0, count: 2000, frame: {%s}}]
        capture: [{on: rx:eth0}, {on: tx:eth0}]
        expect: {delivered: all, at: rx:eth0, xdp: {rx:eth0: {pass: all}}, unexpected: 0}
        quiet: 300ms
    """)


@pytest.mark.parametrize("frame", ["udp: {dport: 9}", "ipv6: {}, udp: {dport: 9}", "icmp: {}", "ipv6: {}, icmp: {}"])
def test_default_traffic_gets_no_answer_and_counts_are_exact(frame):
    """Frames go to the receiver's own MAC and IP; its stack neither resolves the sender (permanent
    neighbours) nor answers (no port unreachable, no echo reply): the receiver's program counts
    exactly what was sent and the sender's capture sees nothing come back."""
    s = sc.load_text(QUIET % frame, "q.yaml")[0]
    r = runner.run(s)
    assert r.status == "passed", r.render()
    assert r.xdp["rx:eth0"]["pass"] == 2000
    assert r.unexpected == {"rx:eth0": 0, "tx:eth0": 0}
    assert r.interfaces["rx:eth0"]["tx_packets"] == 0 and r.interfaces["tx:eth0"]["rx_packets"] == 0, r.render()


def test_tcp_to_a_closed_port_is_answered_by_resets():
    """What still talks back (README, `xdp[]`): one RST per TCP frame, seen by the sender only."""
    # ">= 100%": the run waits for the quiet period (not only until rx has every frame), so every RST is in
    s = sc.load_text((QUIET % "tcp: {dport: 9}").replace("delivered: all", 'delivered: ">= 100%"'), "q.yaml")[0]
    r = runner.run(s)
    assert r.xdp["rx:eth0"]["pass"] == 2000 and r.unexpected["rx:eth0"] == 0
    assert r.unexpected["tx:eth0"] == 2000
    assert "[R]" in report_decode(r.unexpected_frames["tx:eth0"][0])


def report_decode(frame):
    from netring_testkit.verdict import decode_frame

    return decode_frame(frame)


SAMPLED = textwrap.dedent("""\
    scenarios:
      - name: sampled
        topology: {nodes: [tx, rx], links: [{endpoints: [tx:eth0, rx:eth0]}]}
        traffic: [{name: main, from: tx:eth0, to: rx:eth0, count: 2000, rate: 4kpps, frame: {size: [64, 200, "${big}"]}}]
        expect: {delivered: none}
        quiet: 300ms
        matrix: {big: [1514]}
    """)


def test_failure_pcapng_samples_what_was_sent_and_what_arrived(tmp_path):
    """The first and last 16 frames sent are rebuilt byte for byte as the C stamper sent them (sizes
    cycled by sequence number across send calls: 4 kpps sends in calls of 1000), and the first and
    last 16 that arrived are copied from the capture (a pure-loss failure: see the plugin test)."""
    passed = sc.load_text(SAMPLED, "s.yaml")[0]
    seqs = list(range(16)) + list(range(1984, 2000))
    r = runner.run(passed, artifacts_dir=str(tmp_path))
    assert r.status == "failed" and r.streams[0].delivered == 2000, r.render()
    pcap = tmp_path / "sampled_big=1514_.pcapng"
    assert r.artifacts == [str(pcap), str(tmp_path / "sampled_big=1514_.json")]
    got = report.read_pcapng(pcap)
    sent = {int(p.comment.rsplit(" ", 1)[1]): p.data for p in got if p.comment.startswith("sent stream main seq ")}
    arrived = {int(p.comment.rstrip(")").rsplit(" ", 1)[1]): p.data for p in got
               if p.comment.startswith("arrived at rx:eth0 (stream main seq ")}
    assert sorted(sent) == seqs and sorted(arrived) == seqs
    assert all(arrived[q] == sent[q] for q in seqs)
    assert [len(sent[q]) for q in (0, 1, 2, 1998, 1999)] == [64, 200, 1514, 64, 200]  # seq % 3
    assert {p.interface for p in got} == {"tx:eth0", "rx:eth0"}
    assert os.path.getsize(pcap) < 64 * 1024
