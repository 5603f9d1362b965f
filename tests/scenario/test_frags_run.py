"""End to end: a scenario whose user program cannot attach natively to its jumbo veth reports which
endpoint (node:ifname) and why, and no traceback."""
import os
import platform
import shutil
import subprocess
import textwrap

import pytest

from netring_testkit.plugin import require
from netring_testkit import runner, scenario as sc

pytestmark = pytest.mark.privileged
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

TEXT = textwrap.dedent("""\
    scenarios:
      - name: jumbo-user
        topology: {nodes: [tx, rx], links: [{endpoints: [tx:eth0, rx:eth0], mtu: 9000}]}
        xdp: [{attach: rx:eth0, program: {object: xdp_frags.o, program: xdp_multi}, mode: native}]
        traffic: [{name: main, from: tx:eth0, to: rx:eth0, count: 200, frame: {udp: {dport: 9}, size: 9014}}]
        capture: [{on: rx:eth0, block_size: 1048576, block_count: 16}]
        expect: {delivered: all, order: strict, payload: intact}
        timeout: 10s
        quiet: 300ms
    """)


def _scenario(tmp_path):
    require()
    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("clang is not installed (Debian package `clang`)")
    pytest.importorskip("netring.bpf.libbpf")
    res = subprocess.run([clang, "-O2", "-g", "-target", "bpf", "-I/usr/include/%s-linux-gnu" % platform.machine(),
                          "-c", os.path.join(ROOT, "tests", "data", "xdp_frags.c"), "-o", str(tmp_path / "xdp_frags.o")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return sc.load_text(TEXT, str(tmp_path / "s.yaml"))[0]


def test_frags_aware_user_program_runs_natively_on_jumbo_frames(tmp_path):
    r = runner.run(_scenario(tmp_path))
    assert r.status == "passed", r.render()


def test_single_buffer_user_program_error_names_endpoint_and_remedy(tmp_path):
    s = _scenario(tmp_path)
    s.xdp[0].program["program"] = "xdp_single"   # as if the object changed after validation
    r = runner.run(s)
    assert r.status == "error", r.render()
    assert r.error.startswith("UnsupportedError: rx:eth0: attaching XDP program 'xdp_single' to eth0 in namespace "), \
        r.error
    assert "program 'xdp_single' is not frags-aware and MTU 9000 > 3506" in r.error
    assert "load it with SEC(\"xdp.frags\")" in r.error and "Traceback" not in r.render()
