"""netring.netns: fd-held namespaces, entering them from helper threads, resolving specs."""
import os
import socket

import pytest

from netring.errors import ConfigurationError, InterfaceNotFoundError, NamespaceNotFoundError
from netring.netns import NetNS, resolve, run_in

pytestmark = pytest.mark.privileged


def test_unnamed_namespace_is_separate_and_has_lo_up():
    with NetNS.create() as ns:
        assert ns.inode != os.stat("/proc/self/ns/net").st_ino
        assert ns.ifindex("lo") == 1
        assert run_in(ns, lambda: open("/sys/class/net/lo/operstate").read().strip()) in ("unknown", "up")
        with pytest.raises(InterfaceNotFoundError, match="eth0"):
            ns.ifindex("eth0")
    assert ns.closed


def test_named_namespace_opens_by_name_path_and_fd_and_is_removed():
    name = "nrt-%d-netns-test" % os.getpid()
    ns = NetNS.create(name=name)
    try:
        assert os.path.exists("/run/netns/" + name)
        for spec in (name, "/run/netns/" + name, ns.fileno(), ns):
            other, owned = resolve(spec)
            assert other.inode == ns.inode
            if owned:
                other.close()
        with pytest.raises(ConfigurationError, match="already exists"):
            NetNS.create(name=name)
    finally:
        ns.delete()
    assert not os.path.exists("/run/netns/" + name)


def test_bad_specs_are_typed_errors():
    with pytest.raises(NamespaceNotFoundError, match="ip netns list"):
        NetNS.open("nrt-does-not-exist")
    with open("/proc/self/ns/uts") as f, pytest.raises(NamespaceNotFoundError, match="another type"):
        NetNS.open(f.fileno())
    with pytest.raises(NamespaceNotFoundError, match="not a namespace"):
        NetNS.open("/proc/self/status")
    with pytest.raises(ConfigurationError, match="netns must be"):
        NetNS.open(3.5)


def test_socket_created_inside_stays_in_namespace():
    with NetNS.create() as ns:
        s = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            # The caller's thread is still in its own namespace: a socket made here cannot reach it.
            c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with c:
                c.sendto(b"x", ("127.0.0.1", port))
                s.settimeout(0.2)
                with pytest.raises(socket.timeout):
                    s.recv(10)


def _net_fds():
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.add(os.readlink("/proc/self/fd/" + fd))
        except OSError:
            pass
    return {t for t in out if t.startswith("net:[")}


def test_garbage_collected_namespace_is_released():
    import gc

    ns = NetNS.create()
    ns.ifindex("lo")                      # starts the worker thread, which holds the namespace too
    ino = ns.inode
    worker = ns._worker.thread
    assert "net:[%d]" % ino in _net_fds() and worker.is_alive()
    del ns
    gc.collect()
    assert "net:[%d]" % ino not in _net_fds()
    # the worker thread leaves too (it would keep the namespace alive otherwise)
    worker.join(timeout=2)
    assert not worker.is_alive()


def test_open_names_the_callers_fd():
    with open("/proc/self/status") as f, pytest.raises(NamespaceNotFoundError, match="fd %d is" % f.fileno()):
        NetNS.open(f.fileno())
