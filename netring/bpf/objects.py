"""bpf(2) objects as Python context managers: loaded programs and links, plus object info.

Everything goes through the C core (``netring._core``, ``csrc/bpf.c``): each call returns an
fd or ``-errno``, and errors become netring exceptions naming cause and remedy. Every fd is
owned by exactly one object; ``close()`` is idempotent and a garbage-collected object closes
its fd (through ``weakref.finalize``), so no kernel object outlives its Python owner.
"""
import collections
import errno
import os
import weakref

from .._core import ffi, lib
from ..errors import (ConfigurationError, NetringError, NetringPermissionError, UnsupportedError,
                      from_oserror)

__all__ = ["BpfFd", "Program", "Link", "ProgramInfo", "VerifierError", "load_program",
           "PROG_TYPES", "bpf_error", "program_from_id"]

_CAP = "CAP_BPF and CAP_PERFMON (or root)"

#: Program types by name (extend as needed; ints are accepted everywhere too).
PROG_TYPES = {"xdp": lib.BPF_PROG_TYPE_XDP}

#: ``ProgramInfo(id, name, tag, type)``; ``tag`` is the kernel's 8-byte program tag in hex.
ProgramInfo = collections.namedtuple("ProgramInfo", "id name tag type")


class VerifierError(NetringError, ValueError):
    """The kernel verifier rejected a program.

    ``log`` holds the whole verifier log; the message carries its last lines, which name the
    offending instruction. Fix the program (or its bounds checks) and load it again.
    """

    def __init__(self, name, code, log):
        lines = [line for line in log.splitlines() if line.strip()]
        tail = "\n".join(lines[-12:])
        super().__init__(
            "the verifier rejected program %r (%s); last lines of its log:\n%s\n"
            "fix the instruction named above (the full log is on the exception's .log)"
            % (name, os.strerror(code), tail or "(empty log)"))
        self.errno = code
        self.log = log
        self.name = name


def bpf_error(rc, action, ifname=None, netns=None):
    """Turn a ``-errno`` from the C core into a netring exception for ``action``."""
    code = -rc
    if code == errno.EPERM:
        err = NetringPermissionError(
            "%s failed: %s; run as root or grant %s" % (action, os.strerror(code), _CAP), capability=_CAP)
        err.errno = code
        return err
    if code == errno.E2BIG or code == errno.EINVAL and action.startswith("creating map"):
        err = ConfigurationError("%s failed: %s; check sizes and flags against the map type" % (action, os.strerror(code)))
        err.errno = code
        return err
    return from_oserror(OSError(code, os.strerror(code)), action, ifname=ifname, netns=netns, capability=_CAP)


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


def _prog_info(fd):
    info = ffi.new("struct bpf_prog_info *")
    rc = lib.nr_bpf_prog_info(fd, info)
    if rc < 0:
        raise bpf_error(rc, "reading program info")
    return ProgramInfo(info.id, ffi.string(info.name).decode(errors="replace"),
                       bytes(ffi.buffer(info.tag, 8)).hex(), info.type)


class Program(BpfFd):
    """A loaded BPF program.

    ``maps`` are the maps the program owns (closed with it) by role name, e.g. ``"counters"``.
    Built-in programs (``netring.bpf.programs.builtin``) have a per-CPU counters map, read with
    :meth:`counters` at any time — before, during and after attachment.
    """

    _kind = "BPF program"

    def __init__(self, fd, name, prog_type=lib.BPF_PROG_TYPE_XDP, maps=None, rules=None):
        super().__init__(fd)
        #: The name given at load time.
        self.name = name
        #: The numeric program type (``BPF_PROG_TYPE_*``).
        self.prog_type = prog_type
        self._maps = dict(maps or {})
        self._rules = rules
        # Called by netring.xdp.attach with the attach namespace (NetNS or None) before attaching.
        self._attach_hooks = []

    def info(self):
        """``ProgramInfo(id, name, tag, type)`` from the kernel."""
        return _prog_info(self.fd)

    @property
    def id(self):
        """The kernel's program id (what ``bpftool prog`` and XDP queries show)."""
        return self.info().id

    @property
    def maps(self):
        """The maps owned by this program, by role name (a copy of the dict)."""
        return dict(self._maps)

    def map(self, name):
        """The owned map called ``name``; ``KeyError`` naming the available ones otherwise."""
        try:
            return self._maps[name]
        except KeyError:
            raise KeyError("program %r has no map %r; it has %s" % (self.name, name, sorted(self._maps) or "none")) from None

    def counters(self):
        """Per-action packet/byte counters summed over CPUs.

        ``{"pass": {"packets": n, "bytes": n}, "drop": ..., "aborted": ..., "tx": ..., "redirect": ...}``,
        plus ``"rules": [{"packets", "bytes"}, ...]`` for the ``filter`` program.
        :class:`UnsupportedError` for programs without a netring counters map.
        """
        from .programs import read_counters
        if "counters" not in self._maps:
            raise UnsupportedError("program %r has no netring counters map; only built-in programs "
                                   "(netring.bpf.programs.builtin) count their verdicts — read its own maps instead" % self.name)
        return read_counters(self._maps["counters"], self._rules)

    def test_run(self, data, repeat=1):
        """Run the program once (or ``repeat`` times) on ``data`` with BPF_PROG_TEST_RUN.

        Returns ``(retval, data_out)``. Counters of built-ins are updated by test runs too.
        """
        data = bytes(data)
        out = ffi.new("char[]", len(data) + 4096)
        size = ffi.new("uint32_t *", len(data) + 4096)
        ret = ffi.new("uint32_t *")
        rc = lib.nr_bpf_prog_test_run(self.fd, data, len(data), out, size, repeat, ret)
        if rc < 0:
            raise bpf_error(rc, "test-running program %r" % self.name)
        return ret[0], bytes(ffi.buffer(out, size[0]))

    def close(self):
        """Close the program fd and the maps it owns (idempotent)."""
        super().close()
        for m in self._maps.values():
            m.close()

    def __repr__(self):
        if self.closed:
            return "<Program %r closed>" % self.name
        return "<Program %r fd=%d maps=%s>" % (self.name, self._fd, sorted(self._maps))


def program_from_id(prog_id):
    """Open the loaded program with kernel id ``prog_id`` as a :class:`Program` (a new fd on it)."""
    fd = lib.nr_bpf_get_fd_by_id(lib.NR_BPF_KIND_PROG, prog_id)
    if fd < 0:
        if fd == -errno.ENOENT:
            raise LookupError("no BPF program with id %d (it was unloaded)" % prog_id)
        raise bpf_error(fd, "opening program id %d" % prog_id)
    info = _prog_info(fd)
    return Program(fd, info.name, info.type)


def load_program(insns, name="netring", prog_type="xdp", license="GPL", maps=None, rules=None,
                 log_size=1 << 20):
    """Load ``insns`` (bytes of ``struct bpf_insn``, or an :class:`~netring.bpf.asm.Asm`) and return a :class:`Program`.

    ``maps`` (role name → Map) are handed to the program, which closes them with itself.
    On rejection raises :class:`VerifierError` carrying the verifier log; the load is first
    tried without a log (fast) and repeated with one to explain a failure.
    """
    if hasattr(insns, "assemble"):
        insns = insns.assemble()
    insns = bytes(insns)
    if not insns or len(insns) % 8:
        raise ConfigurationError("program %r: instructions must be a non-empty multiple of 8 bytes, got %d"
                                 % (name, len(insns)), field="insns", value=len(insns))
    ptype = PROG_TYPES.get(prog_type, prog_type) if isinstance(prog_type, str) else prog_type
    if not isinstance(ptype, int):
        raise ConfigurationError("unknown program type %r; use one of %s or a BPF_PROG_TYPE_* number"
                                 % (prog_type, sorted(PROG_TYPES)), field="prog_type", value=prog_type)
    lic = ffi.new("char[]", license.encode())
    cname = ffi.new("char[]", name.encode()[:15])
    fd = lib.nr_bpf_prog_load(ptype, insns, len(insns) // 8, lic, cname, 0, ffi.NULL, 0, 0)
    if fd < 0:
        if fd == -errno.EPERM:
            raise bpf_error(fd, "loading program %r" % name)
        size = log_size
        while True:
            buf = ffi.new("char[]", size)
            fd = lib.nr_bpf_prog_load(ptype, insns, len(insns) // 8, lic, cname, 0, buf, size, 1)
            if fd == -errno.ENOSPC and size < (1 << 26):
                size *= 4
                continue
            break
        if fd < 0:
            log = ffi.string(buf).decode(errors="replace")
            if log.strip() and fd != -errno.EPERM:
                raise VerifierError(name, -fd, log)
            raise bpf_error(fd, "loading program %r" % name)
        # Loaded on the retry (should not happen): keep it.
    return Program(fd, name, ptype, maps=maps, rules=rules)


class Link(BpfFd):
    """A BPF link (e.g. an XDP attachment): the attachment lives exactly as long as its fds."""

    _kind = "BPF link"

    def info(self):
        """``(type, id, prog_id, ifindex)`` of the link (ifindex is 0 for non-XDP links)."""
        vals = [ffi.new("uint32_t *") for _ in range(4)]
        rc = lib.nr_bpf_link_info(self.fd, *vals)
        if rc < 0:
            raise bpf_error(rc, "reading link info")
        return tuple(v[0] for v in vals)

    def update(self, program):
        """Atomically swap in ``program`` (BPF_LINK_UPDATE)."""
        rc = lib.nr_bpf_link_update(self.fd, program.fd)
        if rc < 0:
            raise bpf_error(rc, "updating link to program %r" % program.name)

    def detach(self):
        """Detach the link from its hook now (BPF_LINK_DETACH); the fd stays open but inert."""
        rc = lib.nr_bpf_link_detach(self.fd)
        if rc < 0 and rc != -errno.ENOLINK:
            raise bpf_error(rc, "detaching link")
