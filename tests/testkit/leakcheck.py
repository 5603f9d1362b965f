"""Suite-wide leak check (a pytest plugin; ``tests/conftest.py`` imports its fixture).

At the end of the session, THIS process (each xdist worker checks itself; concurrent pytest
sessions are never looked at) must hold nothing it did not hold at the start:

- no namespace fds (``net:[…]``, or an nsfs file opened through ``/run/netns``);
- no ``AF_PACKET`` / ``AF_XDP`` sockets;
- no BPF fds (``anon_inode:bpf-prog``, ``bpf-map``, ``bpf_link``, ``btf``, …);
- no ``/run/netns/nrt-<this pid>-*`` (except those ``--netring-keep`` deliberately kept);
- the same set of links in the root (this process's) network namespace.

A leak fails the run: the session fixture's finalizer raises, which pytest reports as an
ERROR at teardown of the last test (also under xdist), listing every leaked object.
"""
import gc
import os
import socket
import time

import pytest

from netring_testkit.plugin import get_factory

__all__ = ["snapshot", "leaks", "netring_leak_check"]

_AF_XDP = getattr(socket, "AF_XDP", 44)
_FAMILIES = {socket.AF_PACKET: "AF_PACKET", _AF_XDP: "AF_XDP"}


def _fd_objects():
    """{(fd, target): description} of the fds of interest held by this process."""
    out = {}
    try:
        nsfs_dev = os.stat("/proc/self/ns/net").st_dev
    except OSError:
        nsfs_dev = None
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            target = os.readlink("/proc/self/fd/%d" % fd)
            st = os.fstat(fd)
        except OSError:
            continue  # the listdir fd itself, or closed meanwhile
        if target.startswith("anon_inode:bpf") or target == "anon_inode:btf":
            out[(fd, target)] = "fd %d -> %s (BPF object)" % (fd, target)
        elif target.startswith("socket:["):
            try:
                with socket.socket(fileno=os.dup(fd)) as s:
                    family = s.family
            except OSError:
                continue
            if family in _FAMILIES:
                out[(fd, target)] = "fd %d -> %s (%s socket)" % (fd, target, _FAMILIES[family])
        elif nsfs_dev is not None and st.st_dev == nsfs_dev:
            out[(fd, target)] = "fd %d -> %s (namespace)" % (fd, target)
    return out


def _root_links():
    try:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            return {(link["index"], link.get_attr("IFLA_IFNAME")) for link in ipr.get_links()}
    except ImportError:
        return {(0, n) for n in os.listdir("/sys/class/net")}


def _named(pid):
    try:
        return {n for n in os.listdir("/run/netns") if n.startswith("nrt-%d-" % pid)}
    except OSError:
        return set()


def snapshot():
    """What this process holds now: ``{"fds": {...}, "links": {...}, "named": {...}}``."""
    return {"fds": _fd_objects(), "links": _root_links(), "named": _named(os.getpid())}


def leaks(before, kept=(), settle=3):
    """Descriptions of what this process holds now but did not hold at ``before`` (a :func:`snapshot`).

    Garbage is collected first (objects with finalizers close their fds). Link-list
    differences are re-read up to ``settle`` times 0.5 s apart (bounded), so a transient link
    of some other process is not blamed on this session.
    """
    gc.collect()
    now = snapshot()
    for _ in range(settle):
        if now["links"] == before["links"]:
            break
        time.sleep(0.5)
        now["links"] = _root_links()
    out = [desc for key, desc in sorted(now["fds"].items()) if key not in before["fds"]]
    out += ["/run/netns/%s (named namespace not deleted)" % n
            for n in sorted(now["named"] - before["named"] - set(kept))]
    out += ["root namespace: link %s (ifindex %d) appeared" % (n, i) for i, n in sorted(now["links"] - before["links"])]
    out += ["root namespace: link %s (ifindex %d) disappeared" % (n, i) for i, n in sorted(before["links"] - now["links"])]
    return out


@pytest.fixture(scope="session", autouse=True)
def netring_leak_check(request):
    """Session-wide: fail the run if this process leaked namespaces, packet/XDP sockets, BPF fds,
    ``nrt-<pid>-*`` namespaces or root-namespace links (see the module docstring)."""
    before = snapshot()
    yield
    found = leaks(before, kept=get_factory(request.config).kept)
    if found:
        pytest.fail("netring leak check: pid %d still holds after the session:\n  %s"
                    % (os.getpid(), "\n  ".join(found)), pytrace=False)
