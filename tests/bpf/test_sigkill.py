"""A bpf_link attachment made by a process that is SIGKILLed disappears with it."""
import os
import signal
import subprocess
import sys
import time

import pytest

from netring import xdp

pytestmark = pytest.mark.privileged

CHILD = r"""
import os, sys, time
from netring.netns import NetNS
from netring import xdp
from netring.bpf import builtin
ns = NetNS.open(int(sys.argv[1]))
prog = builtin("drop")
att = xdp.attach(sys.argv[2], prog, netns=ns, mode=sys.argv[3])
print(att.method, prog.id, flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("mode", ["native", "generic"])
def test_sigkilled_child_leaves_nothing_attached(pair, mode):
    a, b = pair
    fd = b.netns.fileno()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(fd), b.ifname, mode], pass_fds=(fd,),
                             stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline().split()
        assert line and line[0] == "link", "child did not attach: %r" % line
        q = xdp.query(b.ifname, netns=b.netns)
        assert q is not None and q.id == int(line[1]) and q.name == "nr_drop" and q.mode == mode
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    # The kernel releases the link from a workqueue: poll, bounded.
    for _ in range(250):
        if xdp.query(b.ifname, netns=b.netns) is None:
            break
        time.sleep(0.02)
    assert xdp.query(b.ifname, netns=b.netns) is None
