"""Plumbing shared by :mod:`netring.capture` and :mod:`netring.inject` (not public API).

Opening an AF_PACKET socket inside a namespace, resolving the interface there, validating
integer keyword arguments, and waiting on an fd with signal-aware retries.
"""
import errno
import os
import socket
import time

from ._core import lib
from .errors import ConfigurationError, InterfaceNotFoundError, NetringError, from_oserror
from .netns import resolve

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def check_int(field, value, lo, hi, extra=""):
    """Validate an int keyword argument against ``lo..hi``; ConfigurationError naming field, value and range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError("%s must be an integer in %d..%d%s, not %r" % (field, lo, hi, extra, value),
                                 field=field, value=value)
    if not lo <= value <= hi:
        raise ConfigurationError("%s=%d is outside the allowed range %d..%d%s" % (field, value, lo, hi, extra),
                                 field=field, value=value)
    return value


def check_bool(field, value):
    """Validate a bool keyword argument."""
    if not isinstance(value, bool):
        raise ConfigurationError("%s must be True or False, not %r" % (field, value), field=field, value=value)
    return value


def open_packet_socket(ifname, netns, role):
    """Create an AF_PACKET raw socket (protocol 0: receives nothing until bound) inside ``netns``.

    Returns ``(sock, ifindex, ns_label)``. The interface is resolved inside the namespace first,
    so a wrong name is an :class:`InterfaceNotFoundError` naming interface and namespace.
    """
    if not isinstance(ifname, str) or not ifname or len(ifname) > 15 or "/" in ifname:
        raise ConfigurationError("ifname must be an interface name of 1..15 characters, not %r" % (ifname,),
                                 field="ifname", value=ifname)
    ns, owned = resolve(netns)
    try:
        label = None if ns is None else str(ns)
        if ns is None:
            try:
                ifindex = socket.if_nametoindex(ifname)
            except OSError:
                raise InterfaceNotFoundError(ifname, None) from None
        else:
            ifindex = ns.ifindex(ifname)
        try:
            if ns is None:
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            else:
                sock = ns.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except OSError as exc:
            raise from_oserror(exc, "socket(AF_PACKET, SOCK_RAW) for the %s on %s" % (role, ifname),
                               ifname=ifname, netns=label, capability="CAP_NET_RAW") from None
        return sock, ifindex, label
    finally:
        if owned:
            ns.close()


def raise_errno(rc, action, ifname=None, netns=None, capability=None):
    """Raise the netring error for a negative errno ``rc`` returned by the C core."""
    code = -rc
    raise from_oserror(OSError(code, os.strerror(code)), action, ifname=ifname, netns=netns,
                       capability=capability) from None


def wait_fd(fd, events, deadline):
    """Wait until ``fd`` has ``events`` or ``deadline`` (monotonic seconds, None: forever) passes.

    Returns the revents (0 on timeout). Each poll lasts at most 200 ms and a signal makes the
    C wait return -EINTR: either way control comes back to the interpreter, which runs signal
    handlers (so Ctrl-C raises KeyboardInterrupt here), and the wait resumes with the time left.
    """
    while True:
        if deadline is None:
            ms = 200
        else:
            left = deadline - time.monotonic()
            if left <= 0:
                return 0
            ms = max(1, min(200, int(left * 1000 + 0.999)))
        rc = lib.nr_wait_fd(fd, events, ms)
        if rc > 0:
            return rc
        if rc == -errno.EINTR or rc == 0:
            continue  # handlers run at this loop's back-edge; then retry with the time left
        raise_errno(rc, "poll() on the ring socket")


def closed_error(what):
    """The error for using a closed object."""
    return NetringError("%s is closed; create a new one" % what)
