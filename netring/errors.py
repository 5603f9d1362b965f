"""The netring exception hierarchy.

Every error the library raises on purpose derives from :class:`NetringError`, and every
message names the cause and what to do about it. Subclasses also derive from the matching
built-in exception (``PermissionError``, ``LookupError``, ``ValueError``…) so generic
handlers keep working.
"""
import errno as _errno
import os as _os

__all__ = [
    "NetringError",
    "NetringPermissionError",
    "InterfaceNotFoundError",
    "NamespaceNotFoundError",
    "ConfigurationError",
    "FrameTooLargeError",
    "UnsupportedError",
    "ResourceBusyError",
    "ScenarioError",
    "ViewsAliveError",
    "TooManyOpenFilesError",
    "PcapError",
    "from_oserror",
]


class NetringError(Exception):
    """Root of every error netring raises on purpose."""


class NetringPermissionError(NetringError, PermissionError):
    """The process lacks a capability; the message names which one to grant."""

    def __init__(self, message, capability=None):
        super().__init__(message)
        #: The missing capability, e.g. ``"CAP_NET_RAW"``, when known.
        self.capability = capability


class InterfaceNotFoundError(NetringError, LookupError):
    """A network interface does not exist in the namespace it was looked up in."""

    def __init__(self, ifname, netns=None):
        where = "the current namespace" if netns is None else "namespace %s" % (netns,)
        super().__init__(
            "interface %r not found in %s; check the name with `ip -br link`%s"
            % (ifname, where, "" if netns is None else " inside that namespace (`ip -n NAME -br link`)")
        )
        self.ifname = ifname
        self.netns = netns


class NamespaceNotFoundError(NetringError, LookupError):
    """A network namespace name, path or fd does not refer to a network namespace."""


class ConfigurationError(NetringError, ValueError):
    """A configuration value is invalid; the message names the field, the value and what is allowed."""

    def __init__(self, message, field=None, value=None):
        super().__init__(message)
        self.field = field
        self.value = value


class FrameTooLargeError(ConfigurationError):
    """A frame is longer than a limit allows; the message names its length, the limit and the remedy.

    Attributes: ``length`` (bytes), ``capacity`` (the limit that applied, bytes), ``limit``
    (which one: ``"frame_size"`` — the ring's slot, raise ``frame_size`` — or ``"mtu"`` — what
    the link carries, raise the link's MTU), ``index`` (the frame's position in the batch sent,
    or None) and ``sent`` (frames of that batch handed to the kernel anyway, or None).
    """

    def __init__(self, length, capacity, field="frame", *, limit="frame_size", message=None, index=None,
                 sent=None):
        super().__init__(
            message or "frame of %d B exceeds the frame capacity of %d B; raise frame_size or send a shorter frame"
            % (length, capacity),
            field=field,
            value=length,
        )
        self.length = length
        self.capacity = capacity
        self.limit = limit
        self.index = index
        self.sent = sent


class UnsupportedError(NetringError):
    """The kernel or the driver does not support what was asked."""


class ResourceBusyError(NetringError):
    """A kernel resource is already taken (e.g. an XDP program is attached); the message says how to proceed."""


class ViewsAliveError(NetringError, BufferError):
    """Memory of a ring is still referenced by a view, so it cannot be returned or unmapped.

    Raised by :meth:`netring.PacketBatch.release` when a handed-out view is exported (e.g. a
    NumPy array made over ``pkt.data``), by ``close()`` of a ring socket while a view derived
    from its ring is alive, and by :class:`netring.TxSlot` while ``slot.data`` is exported.
    Drop (or ``release()``) those views and retry.
    """


class TooManyOpenFilesError(NetringError, OSError):
    """The process (EMFILE) or the system (ENFILE) ran out of file descriptors; the message says which
    limit and how to raise it. ``errno`` is EMFILE or ENFILE."""


class PcapError(NetringError, ValueError):
    """A capture file is not pcap/pcapng, or is truncated or damaged (``path`` and byte ``offset`` say where),
    or a pcap writer was given a bad argument."""

    def __init__(self, message, path=None, offset=None):
        super().__init__(message)
        self.path = path
        self.offset = offset


class ScenarioError(NetringError):
    """A scenario (YAML or Python) is invalid or failed to run; the message locates the problem."""


#: The kernel's internal ENOTSUPP (include/linux/errno.h; no libc name): some drivers' XDP paths leak it
#: out of bpf(2) and netlink where EOPNOTSUPP was meant.
ENOTSUPP = 524

_CAPS = {
    "socket": "CAP_NET_RAW",
    "setns": "CAP_SYS_ADMIN",
    "bpf": "CAP_BPF (and CAP_NET_ADMIN to attach to an interface)",
    "netlink": "CAP_NET_ADMIN",
}


def fd_limit_message(action, code=_errno.EMFILE):
    """The message of a :class:`TooManyOpenFilesError`: what failed, which limit, and the remedy."""
    if code == _errno.ENFILE:
        return ("%s failed: the system's file table is full (ENFILE): raise fs.file-max (`sysctl fs.file-max`) or "
                "close file descriptors (rings, namespaces, sockets) that are no longer needed" % action)
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return ("%s failed: too many open files (EMFILE): raise `ulimit -n` (RLIMIT_NOFILE, now %s) or close "
            "file descriptors (rings, namespaces, sockets) that are no longer needed"
            % (action, "unlimited" if soft == resource.RLIM_INFINITY else soft))


def from_oserror(exc, action, ifname=None, netns=None, capability=None):
    """Translate an ``OSError`` raised while doing ``action`` into a netring error.

    ``capability`` names what to grant on EPERM/EACCES (default guessed from ``action``).
    Errors without a specific mapping become a :class:`NetringError` that keeps the errno
    and says what was being done.
    """
    code = getattr(exc, "errno", None)
    if code in (_errno.EPERM, _errno.EACCES):
        cap = capability or _CAPS.get(action.split()[0], "CAP_NET_ADMIN")
        err = NetringPermissionError(
            "%s failed: %s; run as root or grant %s (e.g. `setcap cap_net_raw,cap_net_admin+ep` on the interpreter)"
            % (action, _os.strerror(code), cap),
            capability=cap,
        )
    elif code in (_errno.EMFILE, _errno.ENFILE):
        err = TooManyOpenFilesError(fd_limit_message(action, code))
    elif code == _errno.ENODEV and ifname is not None:
        err = InterfaceNotFoundError(ifname, netns)
    elif code in (_errno.EOPNOTSUPP, _errno.ENOPROTOOPT, _errno.EAFNOSUPPORT, _errno.EPROTONOSUPPORT):
        err = UnsupportedError(
            "%s failed: %s; this kernel or driver does not support it (kernel %s)"
            % (action, _os.strerror(code), _os.uname().release)
        )
    elif code == _errno.EBUSY:
        err = ResourceBusyError("%s failed: %s" % (action, _os.strerror(code)))
    else:
        err = NetringError("%s failed: [errno %s] %s" % (action, code, _os.strerror(code) if code else exc))
    err.errno = code
    err.__cause__ = exc
    return err
