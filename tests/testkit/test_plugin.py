"""The plugin seen from outside: child pytest runs for loading, options, skips, header, xdist, leaks."""
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from netring_testkit.plugin import reap, parse_age, _umount_and_unlink
from netring.netns import NetNS

from .nsutil import net_ns_holders, root_link_names

CHILD_TIMEOUT = 180

def run_pytest(where, source, *args, prefix=(), env=None, files=None):
    """Run a child pytest on ``source`` (written to test_child.py) with plugin autoload off."""
    (where / "test_child.py").write_text(textwrap.dedent(source))
    for name, text in (files or {}).items():
        (where / name).write_text(textwrap.dedent(text))
    e = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    e.pop("PYTEST_ADDOPTS", None)
    e["COLUMNS"] = "500"  # keep -rs lines whole
    e.update(env or {})
    cmd = list(prefix) + [sys.executable, "-m", "pytest", "-p", "netring_testkit", "-p", "no:cacheprovider",
                          "-rs", "test_child.py"] + list(args)
    return subprocess.run(cmd, cwd=str(where), env=e, capture_output=True, text=True, timeout=CHILD_TIMEOUT)


def _summary(out):
    return out.stdout.strip().splitlines()[-1].strip("= ") if out.stdout.strip() else out.stderr


def _runs_in(nsname):
    return subprocess.run(["ip", "-n", nsname, "-br", "link"], capture_output=True).returncode == 0


# -- loading, options, header ------------------------------------------------------------------
def test_help_shows_the_netring_group(tmp_path):
    out = run_pytest(tmp_path, "def test_nothing(): pass\n", "--help")
    assert out.returncode == 0
    assert "netring test kit:" in out.stdout
    assert "--netring-keep" in out.stdout and "--netring-no-reap" in out.stdout
    assert "netring_keep (bool)" in out.stdout and "netring_reap (bool)" in out.stdout
    assert "netring_reap_after (string)" in out.stdout and "(default: 24h)" in out.stdout


def test_report_header_shows_kernel_caps_and_usable(tmp_path):
    out = run_pytest(tmp_path, "def test_nothing(): pass\n")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "netring: kernel %s, capabilities CAP_NET_ADMIN" % os.uname().release in out.stdout
    usable = re.search(r"^netring: usable: topology (\S+).*rings .*xdp", out.stdout, re.M)
    assert usable, out.stdout
    from netring_testkit import caps
    assert usable.group(1) == ("yes," if not caps.missing() else "no")


def test_fixtures_and_markers_are_registered(tmp_path):
    out = run_pytest(tmp_path, "def test_nothing(): pass\n", "--fixtures")
    for name in ("netns", "veth_pair", "topology", "netring_factory [session scope]"):
        assert re.search(r"^%s -- .*netring_testkit/plugin.py" % re.escape(name), out.stdout, re.M), out.stdout
    assert "Factory: ``netns()``" in out.stdout
    out = run_pytest(tmp_path, "def test_nothing(): pass\n", "--markers")
    assert "@pytest.mark.privileged(*caps)" in out.stdout and "@pytest.mark.veth_pair(**link)" in out.stdout


# -- skips -------------------------------------------------------------------------------------
SKIPS = '''
import pytest

@pytest.mark.privileged
def test_marked():
    pass

@pytest.mark.privileged("CAP_BPF")
def test_marked_bpf():
    pass

def test_fixture(veth_pair):
    pass

def test_plain():
    pass
'''


@pytest.mark.privileged
def test_skips_name_the_missing_capability(tmp_path):
    drop = ["setpriv", "--inh-caps=-all", "--bounding-set=-net_admin,-bpf", "--"]
    out = run_pytest(tmp_path, SKIPS, prefix=drop)
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"^1 passed, 3 skipped", _summary(out)), out.stdout
    skips = [l for l in out.stdout.splitlines() if l.startswith("SKIPPED")]
    assert len(skips) == 3
    assert all("needs CAP_NET_ADMIN (missing" in l for l in skips if "test_child.py:8" not in l), skips
    assert any("test_child.py:8: needs CAP_NET_ADMIN and CAP_BPF (missing" in l for l in skips), skips
    assert any("test_child.py:4: needs CAP_NET_ADMIN (missing" in l for l in skips), skips
    assert any("test_child.py:12: needs CAP_NET_ADMIN (missing" in l for l in skips), skips
    assert "capabilities CAP_NET_ADMIN- CAP_NET_RAW+ CAP_SYS_ADMIN+ CAP_BPF-" in out.stdout
    assert "usable: topology no (missing CAP_NET_ADMIN)" in out.stdout


def test_unknown_capability_is_a_usage_error(tmp_path):
    out = run_pytest(tmp_path, "import pytest\n@pytest.mark.privileged('CAP_FLY')\ndef test_x(): pass\n")
    assert out.returncode == 4 and "unknown capability CAP_FLY" in out.stderr + out.stdout


@pytest.mark.privileged
def test_privileged_tests_run_with_capabilities(tmp_path):
    out = run_pytest(tmp_path, SKIPS)
    assert re.search(r"^4 passed", _summary(out)), out.stdout


# -- --netring-keep and the reaper -------------------------------------------------------------
KEEP = '''
import os

def test_pass(topology):
    t = topology({"nodes": ["p1", "p2"], "links": [{"endpoints": ["p1:e0", "p2:e0"]}]})
    print("PASSNS", " ".join(str(ns.name) for ns in t.nodes.values()))

def test_fail(veth_pair, netns):
    a, b = veth_pair
    ns = netns()
    print("FAILNS", a.netns.name, b.netns.name, ns.name)
    assert False, "deliberate"
'''


def run_isolated(where, script, env=None):
    """Run ``script`` (sh) in a private mount namespace with its own empty /run/netns.

    Reapers of concurrent pytest sessions (other suites, other xdist workers) cannot see the
    namespaces named in there, so keep/reap behaviour is tested deterministically.
    """
    e = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", COLUMNS="500", PY=sys.executable)
    e.pop("PYTEST_ADDOPTS", None)
    e.update(env or {})
    full = "set -e; mkdir -p /run/netns; mount -t tmpfs nrt-test /run/netns; cd %s; %s" % (where, script)
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", full],
                          env=e, capture_output=True, text=True, timeout=CHILD_TIMEOUT)


PYTEST = '"$PY" -m pytest -p netring_testkit -p no:cacheprovider -rs test_child.py'


@pytest.mark.privileged
def test_keep_leaves_failed_namespaces_and_reaper_removes_them(tmp_path):
    (tmp_path / "test_child.py").write_text(textwrap.dedent(KEEP))
    out = run_isolated(tmp_path, PYTEST + " --netring-keep -s > run1.txt || true; "
                       "echo LEFT $(ls /run/netns); for n in $(ls /run/netns); do ip -n $n -br addr; done; "
                       + PYTEST + " -k test_pass > run2.txt; echo YOUNG $(ls /run/netns); "
                       + PYTEST + " -k test_pass -o netring_reap_after=0 > run3.txt; echo AFTER $(ls /run/netns)")
    assert out.returncode == 0, out.stdout + out.stderr
    run1, run2, run3 = [(tmp_path / ("run%d.txt" % i)).read_text() for i in (1, 2, 3)]
    assert re.search(r"1 failed, 1 passed", run1), run1
    passed = re.search(r"PASSNS (.*)", run1).group(1).split()
    failed = re.search(r"FAILNS (.*)", run1).group(1).split()
    assert len(passed) == 2 and len(failed) == 3
    assert all(re.match(r"nrt-\d+-\d+-", n) for n in passed + failed)
    left = re.search(r"^LEFT(.*)", out.stdout, re.M).group(1).split()
    assert sorted(left) == sorted(failed)          # the passing test's namespaces were removed
    assert len(re.findall(r"^eth0@\S+ +UP +198\.18\.0\.[12]/24", out.stdout, re.M)) == 2   # enterable, configured
    assert "netring: namespaces kept for debugging" in run1
    for n in failed:
        assert "ip netns exec %s bash" % n in run1
    assert "are older than netring_reap_after = 24h" in run1
    # The next session spares them: their creator is gone, but they are younger than 24h.
    assert "reaped" not in run2 and re.search(r"1 passed", run2), run2
    assert sorted(re.search(r"^YOUNG(.*)", out.stdout, re.M).group(1).split()) == sorted(failed)
    # With netring_reap_after = 0 a session reaps them as soon as their creating pid has exited.
    assert "reaped 3 leftover namespace(s): " in run3 and all(n in run3 for n in failed)
    assert re.search(r"^AFTER\s*$", out.stdout, re.M), out.stdout


KEEP_XDP = """\
scenarios:
  - name: drops
    topology: {nodes: [tx, rx], links: [{endpoints: [tx:eth0, rx:eth0]}]}
    xdp: [{attach: rx:eth0, program: drop, mode: "${mode}"}]
    traffic: [{name: main, from: tx:eth0, to: rx:eth0, count: 100}]
    expect: {delivered: "${want}"}
    quiet: 200ms
    matrix: {mode: [native, generic], want: [all, none]}
"""


@pytest.mark.privileged
def test_keep_leaves_a_failed_scenarios_xdp_programs_attached_and_says_so_once(tmp_path):
    (tmp_path / "keep.yaml").write_text(KEEP_XDP)
    cmd = '"$PY" -m pytest -p netring_testkit -p no:cacheprovider keep.yaml --netring-keep'
    out = run_isolated(tmp_path, cmd + " > run1.txt || true; for n in $(ls /run/netns); do echo NS $n; "
                       "ip -n $n -o link show dev eth0; done")
    assert out.returncode == 0, out.stdout + out.stderr
    run1 = (tmp_path / "run1.txt").read_text()
    assert re.search(r"2 failed, 2 passed", run1), run1
    links = dict(re.findall(r"^NS (\S+)\n(.*)$", out.stdout, re.M))
    assert len(links) == 4 and all(n.startswith("nrt-") for n in links)  # the failed ones' tx and rx only
    rx = sorted(n for n in links if n.endswith("-rx"))
    for n in rx:   # after the session ended, the kept program still sits on the interface
        assert re.search(r"\bprog/xdp(generic)? id \d+ name nr_drop\b", links[n]), links[n]
        assert run1.count("ip netns exec %s bash" % n) == 1, run1          # the notice is printed once
        assert "`ip -n %s link show dev eth0`" % n in run1 and "`ip netns exec %s bpftool net`" % n in run1
    modes = sorted("xdpgeneric" in links[n] for n in rx)
    assert modes == [False, True], links                                   # each in its own mode
    assert not any("prog/xdp" in links[n] for n in links if n.endswith("-tx"))
    assert re.findall(r"left attached to rx:eth0", run1).__len__() == 2


KEEP_XDP_FIXTURE = """\
import pytest


@pytest.fixture(scope="module")
def shared(netring_factory):
    with netring_factory.topology({"nodes": ["m1", "m2"], "links": [{"endpoints": ["m1:eth0", "m2:eth0"]}]}) as t:
        yield t


def test_drop_fails(veth_pair, xdp):
    xdp.attach(veth_pair[1], "drop", mode="generic")
    print("FAILNS", veth_pair[1].netns.name)
    assert False


def test_shared_fails(shared, xdp):
    xdp.attach(shared["m2:eth0"], "drop", mode="native")
    assert False


def test_shared_is_free_again(shared, xdp):
    xdp.attach(shared["m2:eth0"], "pass", mode="native")   # busy if the failed test's program had stayed
"""


@pytest.mark.privileged
def test_keep_leaves_a_failed_tests_xdp_fixture_programs_attached_in_kept_namespaces_only(tmp_path):
    (tmp_path / "test_child.py").write_text(KEEP_XDP_FIXTURE)
    out = run_isolated(tmp_path, PYTEST + " --netring-keep -s > run1.txt || true; for n in $(ls /run/netns); do "
                       "echo NS $n; ip -n $n -o link show dev eth0; done")
    assert out.returncode == 0, out.stdout + out.stderr
    run1 = (tmp_path / "run1.txt").read_text()
    assert re.search(r"2 failed, 1 passed", run1), run1
    links = dict(re.findall(r"^NS (\S+)\n(.*)$", out.stdout, re.M))
    failed_rx = re.search(r"FAILNS (\S+)", run1).group(1)
    assert re.search(r"\bprog/xdp(generic)? id \d+ name nr_drop\b", links[failed_rx]), links
    assert not [n for n in links if n != failed_rx and "prog/xdp" in links[n]], links   # the module's: detached
    assert run1.count("left attached to eth0 in %s" % failed_rx) == 1, run1
    assert "`ip -n %s link show dev eth0`" % failed_rx in run1


@pytest.mark.privileged
def test_keep_via_ini_and_no_reap_option(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\nnetring_keep = true\n")
    (tmp_path / "test_child.py").write_text(textwrap.dedent(KEEP))
    out = run_isolated(tmp_path, PYTEST + " > run1.txt || true; echo LEFT $(ls /run/netns); "
                       + PYTEST + " --netring-no-reap > run2.txt || true; echo STILL $(ls /run/netns); "
                       "echo '[pytest]' > pytest.ini; echo 'netring_reap = false' >> pytest.ini; "
                       + PYTEST + " -k test_pass > run3.txt; echo INI $(ls /run/netns); "
                       "printf '[pytest]\\nnetring_reap_after = 0s\\n' > pytest.ini; "
                       + PYTEST + " -k test_pass > run4.txt; echo END $(ls /run/netns)")
    assert out.returncode == 0, out.stdout + out.stderr
    left = re.search(r"^LEFT(.*)", out.stdout, re.M).group(1).split()
    assert len(left) == 3                                                         # ini netring_keep
    assert set(left) <= set(re.search(r"^STILL(.*)", out.stdout, re.M).group(1).split())  # --netring-no-reap
    assert "reaped" not in (tmp_path / "run2.txt").read_text()
    assert set(left) <= set(re.search(r"^INI(.*)", out.stdout, re.M).group(1).split())    # netring_reap = false
    assert re.search(r"^END\s*$", out.stdout, re.M), out.stdout                   # reap_after = 0s: reaped


@pytest.mark.privileged
def test_reaper_spares_live_processes():
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    mine = NetNS.create(name="nrt-%d-999-live" % os.getpid())
    gone = NetNS.create(name="nrt-%s-999-dead" % dead)
    other = NetNS.create(name="nrtx-%s-999-other" % dead)   # not ours: wrong prefix
    try:
        for ns in (mine, gone, other):
            ns.close()
        reap(max_age=0)   # (a concurrent session's reaper may have removed the dead one first: fine)
        assert not os.path.exists("/run/netns/nrt-%s-999-dead" % dead)
        assert os.path.exists("/run/netns/nrt-%d-999-live" % os.getpid())
        assert os.path.exists("/run/netns/nrtx-%s-999-other" % dead)
    finally:
        for ns in (mine, gone, other):
            ns.delete()


@pytest.mark.privileged
def test_reaper_age_policy(tmp_path):
    """Only namespaces of exited processes that are at least ``max_age`` old go (plain files stand in
    for the bind mounts; umount2 on a non-mount is tolerated)."""
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    now = time.time()
    ages = {"nrt-%d-1-old" % dead: 2 * 86400, "nrt-%d-2-young" % dead: 3600, "nrt-%d-3-live" % os.getpid(): 9e6,
            "other-%d-4-old" % dead: 9e6}
    for name, age in ages.items():
        (tmp_path / name).write_text("")
        os.utime(tmp_path / name, (now - age, now - age))
    assert reap(str(tmp_path), now=now) == ["nrt-%d-1-old" % dead]                 # default: 24h
    assert reap(str(tmp_path), max_age=7200, now=now) == []
    assert reap(str(tmp_path), max_age=3600, now=now) == ["nrt-%d-2-young" % dead]
    assert reap(str(tmp_path), max_age=0) == []
    assert sorted(os.listdir(tmp_path)) == sorted(["nrt-%d-3-live" % os.getpid(), "other-%d-4-old" % dead])


@pytest.mark.parametrize("text,seconds", [("24h", 86400), ("0", 0), ("90m", 5400), ("2d", 172800),
                                          (" 1.5 s ", 1.5), ("3600", 3600)])
def test_parse_age(text, seconds):
    assert parse_age(text) == seconds


def test_bad_reap_after_is_a_usage_error(tmp_path):
    out = run_pytest(tmp_path, "def test_nothing(): pass\n", "-o", "netring_reap_after=tomorrow")
    assert out.returncode == 4
    assert "netring_reap_after = 'tomorrow' is not an age; use a number of seconds" in out.stderr + out.stdout


# -- xdist -------------------------------------------------------------------------------------
XDIST = '''
import os, socket
import pytest
from netring_testkit import frames

@pytest.mark.parametrize("i", range(6))
def test_pair(veth_pair, topology, netns, i):
    a, b = veth_pair
    t = topology({"nodes": ["x", "y"], "links": [{"endpoints": ["x:eth0", "y:eth0"], "mtu": 9000}]})
    ns = netns()
    rx = b.packet_socket(timeout=5)
    f = frames.build(ipv4={}, udp={}, size=500, stamp=(os.getpid() & 0xffff, i))
    a.packet_socket().send(f)
    assert rx.recv(2048) == f
    assert t["x:eth0"].mtu == 9000
    print("WORKER", os.environ.get("PYTEST_XDIST_WORKER"), os.getpid(), a.netns.name, ns.name)
    if os.environ.get("FAIL_ODD") and i % 2:
        assert False
'''


@pytest.mark.privileged
def test_xdist_two_workers(tmp_path):
    out = run_pytest(tmp_path, XDIST, "-n", "2", "-p", "xdist.plugin")
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"6 passed", _summary(out)), out.stdout


@pytest.mark.privileged
def test_xdist_keep_names_do_not_collide(tmp_path):
    (tmp_path / "test_child.py").write_text(textwrap.dedent(XDIST))
    out = run_isolated(tmp_path, PYTEST + " -n 2 -p xdist.plugin --netring-keep > run.txt || true; "
                       "echo LEFT $(ls /run/netns)", env={"FAIL_ODD": "1"})
    run = (tmp_path / "run.txt").read_text()
    assert re.search(r"3 failed, 3 passed", run), run + out.stderr
    kept = sorted(set(re.findall(r"ip netns exec (nrt-\S+) bash", run)))
    # 3 failed tests x (veth_pair 2 + topology 2 + netns 1) namespaces, all distinct, all still there
    assert len(kept) == 15, kept
    assert sorted(re.search(r"^LEFT(.*)", out.stdout, re.M).group(1).split()) == kept
    assert 1 <= len({n.split("-")[1] for n in kept}) <= 2


# -- leaks -------------------------------------------------------------------------------------
SLEEPER = '''
import os, sys, time

def test_sleep(topology):
    tag = os.environ["IFTAG"]
    t = topology({"nodes": ["a", "b", "sw"],
                  "links": [{"endpoints": ["a:%sa" % tag, "sw:%sp" % tag]}, {"endpoints": ["b:%sb" % tag, "sw:%sq" % tag]}],
                  "bridges": [{"name": "sw:%sbr" % tag, "ports": ["sw:%sp" % tag, "sw:%sq" % tag]}]})
    sys.stdout.write("INODES %s\\n" % " ".join(str(ns.inode) for ns in t.nodes.values()))
    sys.stdout.flush()
    time.sleep(120)
'''


def _start_sleeper(tmp_path, *args):
    (tmp_path / "test_child.py").write_text(textwrap.dedent(SLEEPER))
    tag = "nk%d" % (os.getpid() % 100000)
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", IFTAG=tag)
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "netring_testkit", "-p", "no:cacheprovider",
                             "-s", "-q", "test_child.py"] + list(args),
                            cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("INODES") or not line:
            break
    if not line.startswith("INODES"):
        proc.kill()
        proc.wait(10)
        raise AssertionError("child did not report its namespaces: %r" % line)
    return proc, tag, {int(x) for x in line.split()[1:]}


def _wait_gone(inodes, seconds=10):
    deadline = time.monotonic() + seconds
    while net_ns_holders(inodes) and time.monotonic() < deadline:
        time.sleep(0.1)
    return net_ns_holders(inodes)


@pytest.mark.privileged
def test_sigkill_of_pytest_leaks_nothing(tmp_path):
    before = root_link_names()
    proc, tag, inodes = _start_sleeper(tmp_path)
    try:
        assert len(inodes) == 3 and net_ns_holders(inodes)  # alive while the child holds them
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        assert proc.returncode == -signal.SIGKILL
        assert _wait_gone(inodes) == []
        after = root_link_names()
        assert not any(n.startswith(tag) for n in after)
        assert not any(n.startswith(tag) for n in before)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()


@pytest.mark.privileged
def test_ctrl_c_of_pytest_tears_down_even_named_namespaces(tmp_path):
    proc, tag, inodes = _start_sleeper(tmp_path, "--netring-keep")
    names = []
    try:
        names = [n for n in os.listdir("/run/netns") if n.startswith("nrt-%d-" % proc.pid)]
        assert len(names) == 3
        os.kill(proc.pid, signal.SIGINT)
        rest = proc.communicate(timeout=60)[0]
        assert "KeyboardInterrupt" in rest
        assert _wait_gone(inodes) == []
        assert [n for n in os.listdir("/run/netns") if n.startswith("nrt-%d-" % proc.pid)] == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for n in names:
            if os.path.exists("/run/netns/" + n):
                _umount_and_unlink("/run/netns/" + n)


# -- --netring-require-privileges ----------------------------------------------------------------
SCENARIO_YAML = '''\
scenarios:
  - name: pair
    topology: {nodes: [tx, rx], links: [{endpoints: [tx:eth0, rx:eth0]}]}
    traffic: [{name: main, from: tx:eth0, to: rx:eth0, count: 10}]
  - name: future
    requires: {kernel: ">= 99.0"}
    topology: {nodes: [tx, rx], links: [{endpoints: [tx:eth0, rx:eth0]}]}
    traffic: [{name: main, from: tx:eth0, to: rx:eth0, count: 10}]
'''


@pytest.mark.privileged
@pytest.mark.parametrize("how", ["option", "ini", "env"])
def test_require_privileges_turns_requirement_skips_into_errors(tmp_path, how):
    """Without CAP_NET_ADMIN every privileged test, fixture and scenario would skip; with the option they
    error naming the capability (or the kernel version), and the plain test still passes."""
    (tmp_path / "s.yaml").write_text(SCENARIO_YAML)
    args, env = {"option": (["--netring-require-privileges"], None),
                 "ini": (["-o", "netring_require_privileges=true"], None),
                 "env": ([], {"NETRING_REQUIRE_PRIVILEGES": "1"})}[how]
    drop = ["setpriv", "--inh-caps=-all", "--bounding-set=-net_admin,-bpf", "--"]
    out = run_pytest(tmp_path, SKIPS, "s.yaml", *args, prefix=drop, env=env)
    assert out.returncode == 1, out.stdout + out.stderr
    assert re.search(r"^1 passed, 5 errors", _summary(out)), out.stdout
    assert out.stdout.count("--netring-require-privileges: this test would have been skipped: needs CAP_NET_ADMIN") == 5
    # With capabilities, a scenario whose kernel requirement is unmet errors too, naming it.
    out = run_pytest(tmp_path, "def test_plain(): pass\n", "s.yaml", *args, env=env)
    assert re.search(r"^1 failed, 2 passed|^2 passed, 1 error", _summary(out)), out.stdout
    assert "would have been skipped: needs kernel >= 99.0" in out.stdout


@pytest.mark.privileged
def test_without_require_privileges_they_skip(tmp_path):
    (tmp_path / "s.yaml").write_text(SCENARIO_YAML)
    drop = ["setpriv", "--inh-caps=-all", "--bounding-set=-net_admin,-bpf", "--"]
    out = run_pytest(tmp_path, SKIPS, "s.yaml", prefix=drop)
    assert out.returncode == 0 and re.search(r"^1 passed, 5 skipped", _summary(out)), out.stdout
