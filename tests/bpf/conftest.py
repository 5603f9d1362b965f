"""Topologies for the bpf/xdp tests: veth pairs between fresh unnamed namespaces."""
import os
import socket

import pytest

from netring_testkit import caps
from netring_testkit.plugin import require

from netring.netns import NetNS


def _need_root():
    require("CAP_BPF")


class End:
    """One end of a veth: ``.netns``, ``.ifname``, ``.ifindex``, ``.mac`` (like the testkit's Endpoint)."""

    def __init__(self, netns, ifname):
        self.netns = netns
        self.ifname = ifname
        self.ifindex = netns.ifindex(ifname)
        with netns.iproute() as ipr:
            self.mac = bytes.fromhex(ipr.get_links(self.ifindex)[0].get_attr("IFLA_ADDRESS").replace(":", ""))

    def __repr__(self):
        return "<End %s in %s>" % (self.ifname, self.netns)


def quiet_ns():
    ns = NetNS.create()
    for key in ("net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"):
        ns.sysctl(key, 1)
    return ns


def veth(ns_a, name_a, ns_b, name_b):
    with ns_a.iproute() as ipr:
        ipr.link("add", ifname=name_a, kind="veth", peer={"ifname": name_b, "net_ns_fd": ns_b.fileno()})
        ipr.link("set", index=ipr.link_lookup(ifname=name_a)[0], state="up")
    with ns_b.iproute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname=name_b)[0], state="up")
    return End(ns_a, name_a), End(ns_b, name_b)


@pytest.fixture
def pair():
    """``(a, b)``: two veth ends ``a0``/``b0`` in two fresh namespaces (IPv6 off, so no chatter)."""
    _need_root()
    na, nb = quiet_ns(), quiet_ns()
    try:
        yield veth(na, "a0", nb, "b0")
    finally:
        na.close()
        nb.close()


@pytest.fixture
def trio():
    """``(a, b1, b2, c)``: a0<->b1 and b2<->c0, with ``b`` in the middle namespace."""
    _need_root()
    na, nb, nc = quiet_ns(), quiet_ns(), quiet_ns()
    try:
        a, b1 = veth(na, "a0", nb, "b1")
        b2, c = veth(nb, "b2", nc, "c0")
        yield a, b1, b2, c
    finally:
        for ns in (na, nb, nc):
            ns.close()


def open_fds():
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture(autouse=True)
def no_leaked_fds():
    """Every test must give back every fd it opened (bpf programs, maps, links, sockets)."""
    import gc
    before = open_fds()
    yield
    gc.collect()
    leaked = {fd: os.readlink("/proc/self/fd/%s" % fd) for fd in open_fds() - before
              if os.path.exists("/proc/self/fd/%s" % fd)}
    leaked = {k: v for k, v in leaked.items() if "bpf" in v or "socket" in v or "net:" in v}
    assert not leaked, "test leaked fds: %r" % leaked


def _still_loaded(ids):
    """``[(kind, id, name)]`` of the ids (from ``created_ids()``) that still resolve in the kernel."""
    from netring.bpf import BpfObjectNotFoundError, map_from_id, program_from_id
    left = []
    for kind, opener in (("prog", program_from_id), ("map", map_from_id)):
        for obj_id in ids[kind]:
            try:
                with opener(obj_id) as obj:
                    left.append((kind, obj_id, obj.info().name))
            except BpfObjectNotFoundError:
                pass
    return left


@pytest.fixture(scope="session", autouse=True)
def nothing_we_loaded_is_left():
    """At session end: no BPF program or map that THIS process created is still loaded, and no
    bpf fd is still open here. Other processes (parallel test runs) may hold their own nr_*
    programs meanwhile — only ids recorded by :func:`netring.bpf.created_ids` are checked."""
    yield
    if not caps.has("CAP_BPF"):
        return
    import gc
    import time
    from netring.bpf import created_ids
    gc.collect()
    held = {fd: os.readlink("/proc/self/fd/" + fd) for fd in os.listdir("/proc/self/fd")
            if os.path.exists("/proc/self/fd/" + fd)}
    held = {fd: target for fd, target in held.items() if target.startswith("anon_inode:bpf")}
    ids = created_ids()
    for _ in range(100):  # bounded wait: the kernel frees programs and maps after an RCU grace period
        left = _still_loaded(ids)
        if not left:
            break
        time.sleep(0.05)
    assert not held and not left, "left behind by this session: bpf fds %r, still loaded %r" % (held, left)
