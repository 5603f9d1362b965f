"""The suite-wide leak check (tests/testkit/leakcheck.py) catches planted leaks and fails the run."""
import os
import re
import subprocess
import sys
import textwrap

import pytest

from . import leakcheck
from .test_plugin import run_isolated

TESTS_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

LEAKY = '''
import os
from netring.netns import NetNS

LEAKED = []

def test_clean(netns):
    ns = netns()                      # the fixture deletes it: no leak
    ns.socket().close()

def test_leak_netns_and_packet_socket():
    ns = NetNS.create()
    LEAKED.append(ns)
    LEAKED.append(ns.socket())        # AF_PACKET, inside the leaked namespace
    print("LEAKFD", ns.fileno(), LEAKED[-1].fileno())

def test_leak_named():
    ns = NetNS.create(name="nrt-%d-1-planted" % os.getpid())
    ns.close()                        # closed but never deleted: the bind mount stays

def test_leak_bpf_map():
    if os.environ.get("NO_BPF"):
        return
    from netring.bpf import create_map
    LEAKED.append(create_map("array", 4, 8, 1))
'''

CLEAN = '''
def test_clean(netns, veth_pair):
    ns = netns()
    a, b = veth_pair
    a.packet_socket().close()
'''


def _child(tmp_path, source, env=None, args=""):
    (tmp_path / "test_child.py").write_text(textwrap.dedent(source))
    return run_isolated(tmp_path, '"$PY" -m pytest -p netring_testkit -p testkit.leakcheck -p no:cacheprovider '
                                  '-s -q test_child.py %s > run.txt 2>&1 && echo RC=0 || echo RC=$?' % args,
                        env=dict({"PYTHONPATH": TESTS_DIR}, **(env or {})))


def _bpf_env():
    try:
        from netring.bpf import create_map

        create_map("array", 4, 8, 1).close()
        return {}
    except Exception:   # no BPF in this build/kernel: plant the other leaks only
        return {"NO_BPF": "1"}


@pytest.mark.privileged
def test_planted_leaks_fail_the_run(tmp_path):
    env = _bpf_env()
    out = _child(tmp_path, LEAKY, env)
    run = (tmp_path / "run.txt").read_text()
    assert "RC=1" in out.stdout, out.stdout + out.stderr + run
    assert re.search(r"^4 passed, 1 error", run.splitlines()[-1]), run
    assert "ERROR test_child.py::test_leak_bpf_map - Failed: netring leak check: pid" in run
    nsfd, sockfd = re.search(r"LEAKFD (\d+) (\d+)", run).groups()
    assert re.search(r"^  fd %s -> net:\[\d+\] \(namespace\)$" % nsfd, run, re.M), run
    assert re.search(r"^  fd %s -> socket:\[\d+\] \(AF_PACKET socket\)$" % sockfd, run, re.M), run
    assert re.search(r"^  /run/netns/nrt-\d+-1-planted \(named namespace not deleted\)$", run, re.M), run
    if not env:
        assert re.search(r"^  fd \d+ -> anon_inode:bpf-map \(BPF object\)$", run, re.M), run
    listed = [l for l in run.splitlines() if l.startswith("  fd ") or l.startswith("  /run/netns/")]
    # (set: with CI set, pytest repeats the untruncated message in its short summary)
    assert len(set(listed)) == (3 if env else 4), listed     # the clean test's namespace is not blamed


@pytest.mark.privileged
def test_clean_run_passes(tmp_path):
    out = _child(tmp_path, CLEAN)
    run = (tmp_path / "run.txt").read_text()
    assert "RC=0" in out.stdout, run + out.stderr
    assert "leak check" not in run and re.search(r"^1 passed", run.splitlines()[-1]), run


@pytest.mark.privileged
def test_each_xdist_worker_checks_itself(tmp_path):
    out = _child(tmp_path, LEAKY, dict(_bpf_env(), NO_BPF="1"), args="-n 2 -p xdist.plugin")
    run = (tmp_path / "run.txt").read_text()
    assert "RC=1" in out.stdout, run + out.stderr
    workers = set(re.findall(r"netring leak check: pid (\d+) still holds", run))
    assert str(os.getpid()) not in workers and 1 <= len(workers) <= 2, run
    assert re.search(r"^  fd \d+ -> socket:\[\d+\] \(AF_PACKET socket\)$", run, re.M), run
    assert re.search(r"^  /run/netns/nrt-\d+-1-planted \(named namespace not deleted\)$", run, re.M), run


def test_link_changes_are_reported():
    before = leakcheck.snapshot()
    real = sorted(before["links"])
    before["links"] = set(real) | {(999999, "nrt-gone")}
    found = leakcheck.leaks(before, settle=0)
    assert found == ["root namespace: link nrt-gone (ifindex 999999) disappeared"]
    before["links"] = set(real[:1])          # pretend only the first real link existed at start
    found = leakcheck.leaks(before, settle=0)
    assert found and all(re.match(r"root namespace: link \S+ \(ifindex \d+\) appeared$", f) for f in found)


def test_fds_held_at_start_are_not_blamed():
    r, w = os.pipe()
    try:
        with __import__("socket").socket(__import__("socket").AF_UNIX) as s:
            assert leakcheck.leaks(leakcheck.snapshot(), settle=0) == []
            assert all(("%d" % s.fileno()) not in d.split()[1] for d in leakcheck._fd_objects().values())
    finally:
        os.close(r)
        os.close(w)
