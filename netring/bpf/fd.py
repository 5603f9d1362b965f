"""What every module owning a bpf(2) object shares: the fd-owning base class, the error translation,
argument checks, and the registry of kernel ids this process created.

:mod:`~netring.bpf.objects` (programs, links), :mod:`~netring.bpf.maps` and :mod:`~netring.bpf.libbpf`
all import it; it imports none of them, so they never import each other for these.
"""
import collections
import errno
import os
import weakref

from ..errors import ConfigurationError, NetringError, NetringPermissionError, from_oserror

__all__ = ["BpfFd", "BpfObjectNotFoundError", "bpf_error", "check_int", "check_name", "created_ids",
           "record_created", "CAPABILITY"]

#: The capabilities bpf(2) calls need, as error messages name them.
CAPABILITY = "CAP_BPF and CAP_PERFMON (or root)"

_U32 = (1 << 32) - 1
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")
# Kernel ids of the programs and maps this process created (loaded, not opened by id), newest
# last; bounded so a long-running process does not grow it forever. Kernel ids are allocated
# cyclically, so an id seen here that still resolves is (with overwhelming likelihood) ours.
_CREATED = {"prog": collections.deque(maxlen=1 << 16), "map": collections.deque(maxlen=1 << 16)}


def created_ids():
    """``{"prog": [ids], "map": [ids]}``: kernel ids of BPF programs and maps this process created.

    Programs loaded with :func:`~netring.bpf.objects.load_program` (and so every built-in) or
    :func:`netring.bpf.libbpf.load_object`, and maps made by :func:`~netring.bpf.maps.create_map` or
    libbpf; objects merely opened by id are not included. The last 65536 of each kind are kept. Tests
    use it to check that nothing this process created is still loaded (``program_from_id(id)`` raising
    ``LookupError``).
    """
    return {kind: list(ids) for kind, ids in _CREATED.items()}


def record_created(kind, obj_id):
    """Note that this process created the ``kind`` (``"prog"`` or ``"map"``) object with kernel id ``obj_id``."""
    _CREATED[kind].append(obj_id)


def check_int(field, value, lo=0, hi=_U32):
    """Return ``value`` if it is an int (not a bool) in ``lo..hi``, else raise :class:`ConfigurationError`."""
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ConfigurationError("%s must be an integer in %d..%d, not %r" % (field, lo, hi, value),
                                 field=field, value=value)
    return value


def check_name(field, name):
    """Validate a BPF object name by the kernel's rule (at most 15 chars of ``[A-Za-z0-9_.]``); return it as bytes."""
    if not isinstance(name, str) or len(name) > 15 or not set(name) <= _NAME_CHARS:
        raise ConfigurationError("%s must be a string of at most 15 characters from [A-Za-z0-9_.] (the kernel's "
                                 "rule for BPF object names), not %r" % (field, name), field=field, value=name)
    return name.encode()


class BpfObjectNotFoundError(NetringError, LookupError):
    """No BPF program or map has the kernel id asked for (it was unloaded, or never existed)."""


def bpf_error(rc, action, ifname=None, netns=None):
    """Turn a ``-errno`` from the C core into a netring exception for ``action``."""
    code = -rc
    if code == errno.EPERM:
        err = NetringPermissionError(
            "%s failed: %s; run as root or grant %s" % (action, os.strerror(code), CAPABILITY), capability=CAPABILITY)
        err.errno = code
        return err
    if code in (errno.E2BIG, errno.EINVAL) and action.startswith("creating map"):
        err = ConfigurationError("%s failed: %s; check sizes and flags against the map type" % (action, os.strerror(code)))
        err.errno = code
        return err
    return from_oserror(OSError(code, os.strerror(code)), action, ifname=ifname, netns=netns, capability=CAPABILITY)


def _close_fd(fd):
    try:
        os.close(fd)
    except OSError:
        pass


class BpfFd:
    """Base for objects owning one bpf fd: ``fileno()``/``fd``, idempotent ``close()``, ``with``."""

    _kind = "bpf object"

    def __init__(self, fd):
        self._fd = fd
        self._finalizer = weakref.finalize(self, _close_fd, fd)

    @property
    def fd(self):
        """The file descriptor; raises if the object was closed."""
        if self._fd is None:
            raise NetringError("%s is closed; create or load it again" % self._kind)
        return self._fd

    def fileno(self):
        """Same as :attr:`fd`."""
        return self.fd

    @property
    def closed(self):
        """True once :meth:`close` has run."""
        return self._fd is None

    def close(self):
        """Release the fd (idempotent). The kernel frees the object when no fd, link or program holds it."""
        if self._fd is not None:
            self._fd = None
            self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
