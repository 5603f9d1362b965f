"""Network namespaces held by file descriptor, and running code inside them.

A :class:`NetNS` is an open fd on a network namespace. Code that must run *inside* it
(creating a socket, resolving an interface name, writing a sysctl) runs on a helper thread
that enters the namespace with ``setns(2)``; the caller's thread never changes namespace.
Each NetNS keeps one such worker thread (started at the first :meth:`NetNS.run`, stopped by
:meth:`NetNS.close`), so a call costs a queue round trip instead of a thread start; a call
made while the worker is busy (from another thread, or from inside a job) gets a fresh
short-lived thread instead, as before. A socket keeps the namespace it was created in, so the socket returned
by :meth:`NetNS.socket` is usable from any thread afterwards.

Namespaces made by :meth:`NetNS.create` are *unnamed* by default: only the fd keeps them
alive, so when the process dies (even by SIGKILL) the kernel destroys them together with
every veth inside. A named namespace (``create(name=...)``) is bind-mounted at
``/run/netns/NAME`` like ``ip netns add`` does, so ``ip netns exec NAME ...`` can enter it;
it outlives the process until :meth:`NetNS.delete`. A *provisional* named namespace
(``create(name=..., provisional=True)``, until :meth:`NetNS.keep`) is one its creator means to
delete: its bind mount is read-only, so a reaper can remove it at once if the creator died.

Python 3.11 has no ``os.setns``/``os.unshare``, so this module calls libc through ctypes.
"""
import ctypes
import ctypes.util
import errno
import os
import queue
import socket
import threading
import weakref

from .errors import (ConfigurationError, InterfaceNotFoundError, NamespaceNotFoundError, NetringError,
                     NetringPermissionError, from_oserror)

__all__ = ["NetNS", "resolve", "run_in", "socket_in", "check_ifname", "is_provisional", "NETNS_RUN_DIR", "IFNAMSIZ"]

#: Where ``ip netns`` keeps named namespaces.
NETNS_RUN_DIR = "/run/netns"

#: Longest interface name the kernel accepts, in bytes (IFNAMSIZ 16 includes the terminating NUL).
IFNAMSIZ = 15
#: Longest namespace name: one file name in ``/run/netns`` (NAME_MAX).
NAME_MAX = 255

_CLONE_NEWNET = 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT, _MS_BIND = 1, 2, 4, 8, 32, 4096
_MNT_DETACH = 2
_NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3), linux/nsfs.h
_SIOCGIFINDEX = 0x8933   # linux/sockios.h

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _check(rc, action):
    if rc != 0:
        code = ctypes.get_errno()
        raise from_oserror(OSError(code, os.strerror(code)), action, capability="CAP_SYS_ADMIN")


def _on_thread(fn, *args, **kwargs):
    """Run fn on a fresh thread (which may change its own namespace) and return its result."""
    box = {}

    def body():
        try:
            box["result"] = fn(*args, **kwargs)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    t = threading.Thread(target=body, name="netring-netns", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box.get("result")


class _Worker:
    """A daemon thread that runs jobs inside one namespace (it re-enters it with setns before each job)."""

    def __init__(self, fd, label):
        self.fd = fd
        self.label = label
        self.pid = os.getpid()
        #: Held by the caller for the whole job: one job at a time, and a busy worker is never waited for.
        self.busy = threading.Lock()
        self._jobs = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="netring-netns", daemon=True)
        self.thread.start()

    def _loop(self):
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is None:
                return
            fn, args, kwargs, box, done = job
            try:
                _check(_libc.setns(self.fd, _CLONE_NEWNET), "setns into namespace %s" % self.label)
                box.append(fn(*args, **kwargs))
            except BaseException as exc:  # re-raised in the caller's thread
                box.append(exc)
                box.append(None)
            done.release()

    def call(self, fn, args, kwargs):
        """Run ``fn`` on the worker (the caller holds :attr:`busy`) and return its result or raise its error."""
        box = []
        done = threading.Lock()
        done.acquire()
        self._jobs.put((fn, args, kwargs, box, done))
        done.acquire()
        if len(box) == 2:
            raise box[0]
        return box[0]

    def stop(self):
        """Let the thread finish its current job and exit (joined unless called from the worker itself)."""
        self._jobs.put(None)
        if threading.current_thread() is not self.thread and self.pid == os.getpid():
            self.thread.join()


class NetNS:
    """A network namespace, held open by a file descriptor.

    Obtain one with :meth:`create` (a new namespace) or :meth:`open` (an existing one by
    name, path, fd or object with ``fileno()``). Use it as a context manager, or call
    :meth:`close`: closing releases the fd (an unnamed namespace then disappears once
    nothing else holds it); :meth:`delete` additionally removes a named namespace this
    object created.
    """

    def __init__(self, fd, name=None, path=None, owned=False):
        self._fd = fd
        #: The ``/run/netns`` name, if the namespace has one.
        self.name = name
        #: The filesystem path it was opened from (``None`` for unnamed namespaces).
        self.path = path
        self._owned = owned
        self._lock = threading.Lock()
        self._worker = None
        # What a garbage-collected NetNS must release: [fd, worker]. The finalizer closes the fd
        # and lets the worker thread (which holds the namespace too) exit, so a dropped unnamed
        # namespace does not live on for the rest of the process. A named one stays mounted
        # until delete().
        self._cell = [fd, None]
        self._finalizer = weakref.finalize(self, _release, self._cell) if fd is not None else None

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def create(cls, name=None, provisional=False):
        """Create a new network namespace, with loopback up.

        Unnamed (default): lives as long as some fd or process holds it — nothing to clean up
        after a crash. Named: bind-mounted at ``/run/netns/NAME`` (visible to ``ip netns``);
        call :meth:`delete` to remove it.

        ``provisional=True`` (named only) marks the name as one the creator means to delete unless
        it later calls :meth:`keep`: the bind mount is made read-only (``ro`` in ``findmnt``, which
        changes nothing for ``ip netns exec``), so should the creator die first — SIGKILL runs no
        clean-up — a reaper can tell it from a kept one (:func:`is_provisional`) and remove it at once.
        """
        if name is not None:
            _validate_name(name)
            path = _make_mount_point(name)

        def make():
            _check(_libc.unshare(_CLONE_NEWNET), "unshare(CLONE_NEWNET)")
            if name is not None:
                _check(_libc.mount(b"/proc/thread-self/ns/net", path.encode(), b"none", _MS_BIND, None),
                       "bind-mounting the namespace at %s" % path)
                if provisional:
                    try:
                        _remount(path, _MS_RDONLY)
                    except BaseException:
                        _libc.umount2(path.encode(), _MNT_DETACH)
                        raise
            try:
                fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise from_oserror(exc, "opening the new namespace") from None
            try:
                _set_link_up_here("lo")
            except BaseException:
                os.close(fd)
                raise
            return fd

        try:
            fd = _on_thread(make)
        except BaseException:
            if name is not None:
                try:
                    os.unlink(path)
                except OSError:
                    pass
            raise
        return cls(fd, name=name, path=path if name else None, owned=True)

    @classmethod
    def open(cls, spec):
        """Open an existing namespace: a name in ``/run/netns``, a path, an fd, or an object with ``fileno()``.

        The fd is duplicated, so the caller keeps ownership of what it passed.
        """
        if isinstance(spec, NetNS):
            return cls(_dup(spec.fileno(), "namespace %s" % spec._label()), name=spec.name, path=spec.path)
        if isinstance(spec, int) or hasattr(spec, "fileno"):
            fd = spec if isinstance(spec, int) else spec.fileno()
            try:
                new = os.dup(fd)
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    raise from_oserror(exc, "duplicating namespace fd %d" % fd) from None
                raise NamespaceNotFoundError("namespace fd %r is not open (%s)" % (spec, exc.strerror)) from None
            ns = cls(new)
            ns._verify("fd %d" % fd)
            return ns
        if isinstance(spec, (str, bytes, os.PathLike)):
            s = os.fsdecode(spec)
            if not s:
                raise NamespaceNotFoundError("empty namespace name; pass a name from `ip netns list`, a path or an fd")
            if "\0" in s:
                raise ConfigurationError("netns=%r contains a NUL byte; pass a name from `ip netns list`, a path or "
                                         "an fd" % (spec,), field="netns", value=spec)
            if "/" not in s:
                _validate_name(s, "netns")
            path = s if "/" in s else os.path.join(NETNS_RUN_DIR, s)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                raise NamespaceNotFoundError(
                    "network namespace %r not found (looked at %s); list them with `ip netns list`" % (s, path)
                ) from None
            except OSError as exc:  # EACCES, EMFILE...
                raise from_oserror(exc, "opening namespace %s" % path, capability="CAP_SYS_ADMIN") from None
            ns = cls(fd, name=None if "/" in s else s, path=path)
            ns._verify()
            return ns
        raise ConfigurationError(
            "netns must be a namespace name, a path, an fd or an object with fileno(), not %r" % (spec,),
            field="netns", value=spec)

    def keep(self):
        """Make a :meth:`create` ``(provisional=True)`` namespace permanent: it stays until deleted (a
        reaper no longer treats it as provisional). No-op for one that is not provisional."""
        if not self.path:
            raise NetringError("namespace %s has no name to keep; create it with name=" % self._label())
        if is_provisional(self.path):
            _remount(self.path, 0)

    def _verify(self, desc=None):
        # NS_GET_NSTYPE answers for any nsfs fd, also one opened through a bind mount in
        # /run/netns (whose /proc/self/fd link shows the path, not "net:[...]").
        import fcntl
        try:
            nstype = fcntl.ioctl(self._fd, _NS_GET_NSTYPE)
        except OSError:
            nstype = None
        if nstype != _CLONE_NEWNET:
            desc = desc or self.path or "fd %d" % self._fd
            kind = "not a namespace" if nstype is None else "a namespace of another type"
            self.close()
            raise NamespaceNotFoundError("%s is not a network namespace (it is %s)" % (desc, kind))

    # -- use ------------------------------------------------------------------------------
    def fileno(self):
        """The namespace fd (valid until :meth:`close`)."""
        if self._fd is None:
            raise NetringError("namespace %s is closed" % self._label())
        return self._fd

    @property
    def closed(self):
        """True once :meth:`close` has run."""
        return self._fd is None

    @property
    def inode(self):
        """The namespace inode number (what ``ls -l /proc/PID/ns/net`` shows)."""
        return os.fstat(self.fileno()).st_ino

    def run(self, fn, *args, **kwargs):
        """Run ``fn(*args, **kwargs)`` on a helper thread inside this namespace; return its result or raise its error.

        The helper is this namespace's worker thread when it is idle, else a fresh thread (so
        concurrent and nested calls never wait for each other).
        """
        fd = self.fileno()
        w = self._worker
        if w is None or w.pid != os.getpid():  # none yet, or inherited through fork (the thread is gone)
            with self._lock:
                if self._fd is None:
                    raise NetringError("namespace %s is closed" % self._label())
                w = self._worker
                if w is None or w.pid != os.getpid():
                    w = self._worker = _Worker(fd, self._label())
                    self._cell[1] = w
        if w.busy.acquire(blocking=False):
            try:
                if self._worker is w:  # not stopped by close() meanwhile
                    return w.call(fn, args, kwargs)
            finally:
                w.busy.release()

        # A fresh thread, with its own duplicate of the fd: close() may run meanwhile, and a closed
        # (or reused) fd number must never be what we setns() into.
        with self._lock:
            if self._fd is None:
                raise NetringError("namespace %s is closed" % self._label())
            own = _dup(self._fd, "namespace %s" % self._label())
        label = self._label()

        def inside():
            _check(_libc.setns(own, _CLONE_NEWNET), "setns into namespace %s" % label)
            return fn(*args, **kwargs)

        try:
            return _on_thread(inside)
        finally:
            os.close(own)

    def socket(self, family=socket.AF_PACKET, type=socket.SOCK_RAW, proto=0):
        """Create a ``socket.socket`` inside this namespace (usable from any thread afterwards)."""
        return self.run(socket.socket, family, type, proto)

    def ifindex(self, ifname):
        """Resolve an interface name inside this namespace; :class:`InterfaceNotFoundError` if absent."""
        check_ifname("ifname", ifname)
        return self.run(ifindex_here, ifname, self._label())

    def sysctl(self, key, value=None):
        """Read (or write, when ``value`` is given) a ``net.*`` sysctl of this namespace, e.g. ``net.ipv6.conf.all.disable_ipv6``."""
        return self.run(_sysctl_here, key, value)

    def iproute(self):
        """A ``pyroute2.IPRoute`` talking to this namespace, without forking (netlink socket opened inside)."""
        from pyroute2 import IPRoute

        sock = self.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, socket.NETLINK_ROUTE)
        return IPRoute(use_socket=sock)

    def _label(self):
        if self.name:
            return repr(self.name)
        if self.path:
            return self.path
        try:
            return "net:[%d]" % self.inode
        except Exception:
            return "(closed)"

    def close(self):
        """Release the fd (idempotent). A named namespace stays until :meth:`delete`."""
        with self._lock:
            fd, self._fd = self._fd, None
            w, self._worker = self._worker, None
            fin, self._finalizer = self._finalizer, None
        if fin is not None:
            fin.detach()  # released here; the fd number may be reused, so the finalizer must not close it
        if w is not None and w.pid == os.getpid():
            # Wait for a running job, then let the thread exit: a thread that entered the namespace
            # holds it, and an unnamed namespace must vanish once closed.
            if threading.current_thread() is w.thread:
                w.stop()  # closed from inside a job: the thread exits after it
            else:
                with w.busy:
                    w.stop()
        if fd is not None:
            os.close(fd)

    def delete(self):
        """Close, and if this object created a named namespace, unmount and remove it (idempotent)."""
        self.close()
        if self._owned and self.path:
            _remove_named(self.path)
            self._owned = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.delete()

    def __repr__(self):
        state = "closed" if self._fd is None else "fd=%d" % self._fd
        return "<NetNS %s %s>" % (self._label() if self._fd is not None else (self.name or ""), state)

    def __str__(self):
        return self._label()


def _dup(fd, what):
    try:
        return os.dup(fd)
    except OSError as exc:
        raise from_oserror(exc, "duplicating the fd of %s" % what) from None


def _release(cell):
    """Finalizer of a garbage-collected :class:`NetNS`: stop its worker thread and close its fd."""
    fd, w = cell
    if w is not None and w.pid == os.getpid():
        w._jobs.put(None)  # no join: this may run on any thread, the worker's own included
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass


def _remount(path, flags):
    """Set the per-mount flags of the bind mount at ``path``: ``flags`` (MS_RDONLY or 0) plus the ones it has."""
    keep = os.statvfs(path).f_flag & (os.ST_NOSUID | os.ST_NODEV | os.ST_NOEXEC)  # same bits as MS_*
    _check(_libc.mount(None, path.encode(), None, _MS_REMOUNT | _MS_BIND | keep | flags, None),
           "remounting %s %s" % (path, "read-only (provisional)" if flags else "read-write (kept)"))


def is_provisional(path):
    """True when ``path`` is the bind mount of a namespace created with ``provisional=True`` and not kept
    since (its mount is read-only); False for anything else, also a missing path."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _make_mount_point(name):
    """Create the empty file ``/run/netns/NAME`` a named namespace is bind-mounted on; return its path."""
    path = os.path.join(NETNS_RUN_DIR, name)
    try:
        os.makedirs(NETNS_RUN_DIR, exist_ok=True)
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444))
    except FileExistsError:
        raise ConfigurationError(
            "network namespace %r already exists; choose another name or remove it with `ip netns del %s`"
            % (name, name), field="name", value=name) from None
    except OSError as exc:
        raise run_dir_error(exc, path) from None
    return path


def run_dir_error(exc, path):
    """The netring error for an ``OSError`` creating ``path`` in :data:`NETNS_RUN_DIR`: a directory that is
    not writable here names its owner, mode and what to do; anything else goes through ``from_oserror``."""
    code = exc.errno
    if code not in (errno.EACCES, errno.EPERM, errno.EROFS):
        return from_oserror(exc, "creating %s" % path)
    d = NETNS_RUN_DIR
    try:
        st = os.stat(d)
        import pwd
        import stat

        try:
            owner = pwd.getpwuid(st.st_uid).pw_name
        except KeyError:
            owner = "uid %d" % st.st_uid
        desc = "%s, owner %s" % (stat.filemode(st.st_mode), owner)
    except OSError:
        desc = "not creatable"
    if code == errno.EROFS:
        why, fix = ("%s is on a read-only file system (%s)" % (d, desc),
                    "mount a writable one (`mount -t tmpfs tmpfs %s`)" % d)
    else:
        why = "%s is not writable by this process (%s; uid %d, without CAP_DAC_OVERRIDE)" % (d, desc, os.geteuid())
        fix = "run as root, grant CAP_DAC_OVERRIDE, or give uid %d write access (`sudo chown %d %s`)" % (
            os.geteuid(), os.geteuid(), d)
    err = NetringPermissionError(
        "cannot name a network namespace: creating %s failed: %s; %s — or use unnamed namespaces (no name=; "
        "without --netring-keep)" % (path, why, fix), capability=None if code == errno.EROFS else "CAP_DAC_OVERRIDE")
    err.errno = code
    err.__cause__ = exc
    return err


def _remove_named(path):
    rc = _libc.umount2(path.encode(), _MNT_DETACH)
    if rc != 0 and ctypes.get_errno() not in (errno.EINVAL, errno.ENOENT):
        code = ctypes.get_errno()
        raise from_oserror(OSError(code, os.strerror(code)), "unmounting %s" % path, capability="CAP_SYS_ADMIN")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _validate_name(name, field="name"):
    """A ``/run/netns`` name: a non-empty file name (no '/', no NUL, not '.' or '..', at most NAME_MAX bytes)."""
    if not isinstance(name, str) or not name or "/" in name or "\0" in name or name in (".", "..") \
            or len(os.fsencode(name)) > NAME_MAX:
        raise ConfigurationError(
            "%s=%r is not a valid namespace name: use 1..%d bytes without '/' or NUL (and not '.' or '..')"
            % (field, name, NAME_MAX), field=field, value=name)


def check_ifname(field, value):
    """Validate an interface name as the kernel does (``dev_valid_name``): 1..15 bytes (IFNAMSIZ), no '/',
    ':', whitespace or NUL, not '.' or '..'. ConfigurationError naming ``field`` and the value otherwise."""
    if isinstance(value, str) and value and value not in (".", "..") \
            and len(value.encode("utf-8", "surrogateescape")) <= IFNAMSIZ \
            and not any(c in "/:\0" or c.isspace() for c in value):
        return value
    raise ConfigurationError(
        "%s=%r is not a valid interface name: use 1..%d bytes (IFNAMSIZ) without '/', ':', whitespace or NUL"
        % (field, value, IFNAMSIZ), field=field, value=value)


def ifindex_here(ifname, label):
    """Resolve ``ifname`` in the calling thread's namespace (``label``: its name in errors, None: the current one)."""
    # SIOCGIFINDEX on a socket of our own rather than socket.if_nametoindex, which says "no interface
    # with this name" for every failure, also for the socket it could not open (EMFILE): not a missing
    # interface (and glibc leaves an unrelated errno behind).
    import fcntl
    import struct

    where = "the current namespace" if label is None else "namespace %s" % label
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    except OSError as exc:
        raise from_oserror(exc, "resolving interface %r in %s (socket)" % (ifname, where)) from None
    with s:
        try:
            res = fcntl.ioctl(s, _SIOCGIFINDEX, struct.pack("16si20x", os.fsencode(ifname), 0))
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.ENXIO):
                raise InterfaceNotFoundError(ifname, label) from None
            raise from_oserror(exc, "resolving interface %r in %s (SIOCGIFINDEX)" % (ifname, where)) from None
    return struct.unpack_from("16si", res)[1]


def _set_link_up_here(ifname):
    import fcntl
    import struct
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    what = "bringing %s up in the new namespace (SIOCSIFFLAGS)" % ifname
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            req = struct.pack("16sH22x", ifname.encode(), 0)
            flags = struct.unpack("16sH22x", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
            fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", ifname.encode(), flags | IFF_UP))
    except OSError as exc:
        # EPERM here means CAP_NET_ADMIN is missing (unshare itself needed only CAP_SYS_ADMIN)
        raise from_oserror(exc, what, capability="CAP_NET_ADMIN") from None


def _sysctl_here(key, value):
    if not key.startswith("net."):
        raise ConfigurationError("only net.* sysctls are per namespace, not %r" % key, field="sysctl", value=key)
    path = "/proc/sys/" + key.replace(".", "/")
    try:
        if value is None:
            with open(path) as f:
                return f.read().strip()
        with open(path, "w") as f:
            f.write(str(value))
        return str(value)
    except FileNotFoundError:
        raise ConfigurationError("sysctl %s does not exist in this namespace" % key, field="sysctl", value=key) from None
    except OSError as exc:  # EPERM/EACCES writing a net.* sysctl: CAP_NET_ADMIN (over the namespace) is missing
        raise from_oserror(exc, "%s sysctl %s" % ("reading" if value is None else "writing", key),
                           capability="CAP_NET_ADMIN") from None


def resolve(spec):
    """Turn a ``netns=`` argument into ``(NetNS or None, owned)``.

    ``None`` means the caller's current namespace. A :class:`NetNS` is used as is
    (``owned=False``); anything else is opened (``owned=True``: the caller closes it).
    """
    if spec is None:
        return None, False
    if isinstance(spec, NetNS):
        spec.fileno()  # raises if closed
        return spec, False
    return NetNS.open(spec), True


def run_in(spec, fn, *args, **kwargs):
    """Run ``fn`` inside the namespace ``spec`` (any ``netns=`` form; ``None`` runs it here)."""
    ns, owned = resolve(spec)
    if ns is None:
        return fn(*args, **kwargs)
    try:
        return ns.run(fn, *args, **kwargs)
    finally:
        if owned:
            ns.close()


def socket_in(spec, family=socket.AF_PACKET, type=socket.SOCK_RAW, proto=0):
    """Create a socket inside the namespace ``spec`` (``None``: the current one)."""
    return run_in(spec, socket.socket, family, type, proto)
