"""--netring-keep when things go wrong: the session is SIGKILLed mid-test, or /run/netns cannot be written."""
import re
import textwrap

import pytest

from .test_plugin import PYTEST, run_isolated

CRASH = '''
import os, time
import pytest


@pytest.fixture(scope="module")
def shared(netring_factory):
    with netring_factory.topology({"nodes": ["m1", "m2"], "links": [{"endpoints": ["m1:eth0", "m2:eth0"]}]}) as t:
        yield t


def test_fail(veth_pair, netns):
    ns = netns()
    print("FAILNS", veth_pair[0].netns.name, veth_pair[1].netns.name, ns.name)
    assert False, "deliberate"


def test_pass(topology):
    topology({"nodes": ["p1", "p2"], "links": [{"endpoints": ["p1:e0", "p2:e0"]}]})


def test_sleep(shared, veth_pair, netns):
    names = [n.name for n in list(shared.nodes.values()) + [veth_pair[0].netns, veth_pair[1].netns, netns()]]
    with open("ready.tmp", "w") as f:
        f.write(" ".join(names))
    os.rename("ready.tmp", "ready")
    time.sleep(120)
'''


@pytest.mark.privileged
def test_sigkill_with_keep_leaves_only_failed_tests_namespaces_after_the_next_session(tmp_path):
    (tmp_path / "test_child.py").write_text(textwrap.dedent(CRASH))
    out = run_isolated(tmp_path, PYTEST + " --netring-keep -s -k test_fail > run1.txt || true; "
                       "echo KEPT $(ls /run/netns); "
                       + PYTEST + " --netring-keep -s -k 'test_pass or test_sleep' > run2.txt 2>&1 & P=$!; "
                       "i=0; while [ ! -e ready ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; "
                       "echo INFLIGHT $(cat ready); echo KILLED_WITH $(ls /run/netns); "
                       "kill -9 $P; wait $P || true; "
                       + PYTEST + " -k test_pass > run3.txt; echo AFTER $(ls /run/netns)")
    assert out.returncode == 0, out.stdout + out.stderr
    run1, run2, run3 = [(tmp_path / ("run%d.txt" % i)).read_text() for i in (1, 2, 3)]
    assert re.search(r"1 failed", run1), run1
    failed = re.search(r"FAILNS (.*)", run1).group(1).split()
    kept = re.search(r"^KEPT(.*)", out.stdout, re.M).group(1).split()
    assert len(failed) == 3 and sorted(kept) == sorted(failed)
    inflight = re.search(r"^INFLIGHT(.*)", out.stdout, re.M).group(1).split()
    assert len(inflight) == 5 and all(n.startswith("nrt-") for n in inflight), out.stdout + run2
    killed_with = re.search(r"^KILLED_WITH(.*)", out.stdout, re.M).group(1).split()
    assert sorted(killed_with) == sorted(kept + inflight)   # the passed test's were removed at its teardown
    # The next session (24 h reap age) removes the killed session's in-flight namespaces at once and
    # leaves the failed test's kept ones alone (their day is not over).
    assert re.search(r"1 passed", run3), run3
    assert "reaped 5 leftover namespace(s)" in run3 and all(n in run3 for n in inflight), run3
    assert sorted(re.search(r"^AFTER(.*)", out.stdout, re.M).group(1).split()) == sorted(kept)


NEEDS_NAME = '''
def test_pair(veth_pair):
    pass
'''


@pytest.mark.privileged
@pytest.mark.parametrize("how", ["read-only", "not-writable"])
def test_keep_with_an_unwritable_run_netns_names_the_directory_and_the_remedy(tmp_path, how):
    (tmp_path / "test_child.py").write_text(textwrap.dedent(NEEDS_NAME))
    if how == "read-only":
        setup, prefix = "mount -o remount,ro /run/netns; ", ""
    else:   # what a non-root user with the four capabilities meets: root's 0755 directory, no CAP_DAC_OVERRIDE
        setup = "chown 65534 /run/netns; chmod 0755 /run/netns; "
        prefix = "setpriv --inh-caps=-all --bounding-set=-dac_override,-dac_read_search -- "
    out = run_isolated(tmp_path, setup + prefix + PYTEST + " --netring-keep > run.txt 2>&1 || true; "
                       "echo LEFT $(ls /run/netns)")
    assert out.returncode == 0, out.stdout + out.stderr
    run = (tmp_path / "run.txt").read_text()
    assert re.search(r"1 error", run), run
    assert "INTERNALERROR" not in run and "PermissionError: [Errno" not in run and "OSError: [Errno" not in run, run
    assert "NetringPermissionError: cannot name a network namespace: creating /run/netns/nrt-" in run, run
    if how == "read-only":
        assert "/run/netns is on a read-only file system" in run and "mount -t tmpfs tmpfs /run/netns" in run, run
    else:
        assert re.search(r"/run/netns is not writable by this process \(drwxr-xr-x, owner \S+; uid 0, without "
                         r"CAP_DAC_OVERRIDE\); run as root, grant CAP_DAC_OVERRIDE", run), run
    assert "without --netring-keep" in run
    assert re.search(r"^LEFT\s*$", out.stdout, re.M), out.stdout


@pytest.mark.privileged
def test_reaper_removes_provisional_namespaces_of_dead_processes_at_any_age():
    import os
    import subprocess
    import sys

    from netring.netns import NetNS, is_provisional
    from netring_testkit.plugin import reap

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    made = {k: NetNS.create(name="nrt-%s-998-%s" % (dead, k), provisional=k != "kept") for k in ("prov", "kept", "prov2")}
    mine = NetNS.create(name="nrt-%d-998-live" % os.getpid(), provisional=True)
    try:
        made["prov2"].keep()
        assert [is_provisional(ns.path) for ns in made.values()] == [True, False, False]
        assert is_provisional(mine.path) and not is_provisional("/run/netns/nrt-no-such")
        assert mine.run(lambda: os.path.exists("/proc/thread-self/net/dev"))   # still enterable
        for ns in list(made.values()) + [mine]:
            ns.close()
        removed = reap()          # default age 24h: only the provisional one of the dead pid goes
        assert "nrt-%s-998-prov" % dead in removed or not os.path.exists(made["prov"].path)
        assert not os.path.exists(made["prov"].path)
        assert os.path.exists(made["kept"].path) and os.path.exists(made["prov2"].path)
        assert os.path.exists(mine.path)
    finally:
        for ns in list(made.values()) + [mine]:
            ns.delete()
