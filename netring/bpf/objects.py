"""bpf(2) objects as Python context managers: loaded programs and links, plus object info.

Everything goes through the C core (``netring._core``, ``csrc/bpf.c``): each call returns an
fd or ``-errno``, and errors become netring exceptions naming cause and remedy. Every fd is
owned by exactly one object; ``close()`` is idempotent and a garbage-collected object closes
its fd (through ``weakref.finalize``), so no kernel object outlives its Python owner.
"""
import collections
import errno
import os
import socket

from .._core import ffi, lib
from ..errors import ENOTSUPP, ConfigurationError, InterfaceNotFoundError, NetringError, UnsupportedError
from ..netns import check_ifname, ifindex_here, resolve
# BpfFd, the error translation, the checks and the created-ids registry live in .fd (maps use them
# too); re-exported here, where they were first defined.
from .fd import BpfFd, BpfObjectNotFoundError, bpf_error, check_int, check_name, created_ids, record_created

__all__ = ["BpfFd", "Program", "Link", "ProgramInfo", "OffloadDevice", "VerifierError", "load_program", "program_info",
           "PROG_TYPES", "XDP_HAS_FRAGS", "bpf_error", "program_from_id", "created_ids", "check_int", "check_name",
           "BpfObjectNotFoundError"]

#: Program types by name (extend as needed; ints are accepted everywhere too).
PROG_TYPES = {"xdp": lib.BPF_PROG_TYPE_XDP}

#: ``prog_flags`` bit of an XDP program that handles multi-buffer (fragmented) frames (kernel 5.18;
#: what libbpf sets for ``SEC("xdp.frags")``). Only such a program attaches natively to a veth whose
#: MTU does not fit one page (see :func:`netring.xdp.veth_single_buffer_max_mtu`).
XDP_HAS_FRAGS = lib.BPF_F_XDP_HAS_FRAGS

_U32 = (1 << 32) - 1
# How the offload refusals are named in messages (Python calls EOPNOTSUPP "ENOTSUP"; ENOTSUPP has no libc name).
_ERRNO_NAMES = {errno.EINVAL: "EINVAL", errno.EOPNOTSUPP: "EOPNOTSUPP", ENOTSUPP: "ENOTSUPP"}

#: ``ProgramInfo(id, name, tag, type)``; ``tag`` is the kernel's 8-byte program tag in hex.
ProgramInfo = collections.namedtuple("ProgramInfo", "id name tag type")

#: Where an offloaded program (``load_program(..., offload=...)``) runs, as the kernel reports it: the
#: device's ``ifindex`` inside the network namespace whose nsfs inode is ``netns_ino`` (on device ``netns_dev``).
OffloadDevice = collections.namedtuple("OffloadDevice", "ifindex netns_dev netns_ino")


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


def program_info(fd):
    """``ProgramInfo(id, name, tag, type)`` of the program behind ``fd`` (an fd the caller keeps owning)."""
    info = ffi.new("struct bpf_prog_info *")
    rc = lib.nr_bpf_prog_info(fd, info)
    if rc < 0:
        raise bpf_error(rc, "reading program info")
    return ProgramInfo(info.id, ffi.string(info.name).decode(errors="replace"),
                       bytes(ffi.buffer(info.tag, 8)).hex(), info.type)


class Program(BpfFd):
    """A loaded BPF program.

    ``maps`` are the maps the program uses, by role name, e.g. ``"counters"``. Ownership:
    a program made by :func:`load_program` (every built-in) *owns* its maps and closes them
    with itself; the programs of a libbpf object (:func:`netring.bpf.libbpf.load_object`)
    share the maps of their :class:`~netring.bpf.libbpf.UserObject`, which owns them — closing
    one program leaves the maps usable through the object and the other programs until the
    object is closed. Built-in programs (``netring.bpf.programs.builtin``) are
    instances of :class:`~netring.bpf.programs.BuiltinProgram`, whose per-CPU counters map :meth:`counters`
    reads at any time — before, during and after attachment.

    Subclasses may override :meth:`before_attach` to prepare for an attachment and :meth:`counters`
    to decode their own counters; :func:`netring.xdp.attach` and the testkit rely only on those.
    """

    _kind = "BPF program"

    def __init__(self, fd, name, prog_type=lib.BPF_PROG_TYPE_XDP, maps=None, owns_maps=True):
        super().__init__(fd)
        #: The name given at load time.
        self.name = name
        #: The numeric program type (``BPF_PROG_TYPE_*``).
        self.prog_type = prog_type
        self._maps = dict(maps or {})
        #: True if :meth:`close` closes :attr:`maps` too (False for programs of a libbpf object).
        self.owns_maps = owns_maps
        #: True if loaded multi-buffer aware (:data:`XDP_HAS_FRAGS`), False if not, None if unknown
        #: (a program opened by id: the kernel does not report the flag).
        self.frags = None
        #: For a program loaded with ``offload=``: how the device was named then (``"eth0 in namespace
        #: 'lab'"``), for messages; None otherwise. :attr:`offload` asks the kernel.
        self.offload_target = None

    @classmethod
    def load(cls, insns, name="netring", prog_type="xdp", license="GPL", maps=None, log_size=1 << 20,
             frags=False, offload=None, **init):
        """Load ``insns`` like :func:`load_program` and return an instance of ``cls``.

        ``init``: further keyword arguments of ``cls``'s constructor (a subclass's own state, e.g.
        the rules of a built-in ``filter``); they are passed after the fd, name, type and maps.
        """
        fd, ptype, where = _load(insns, name, prog_type, license, maps, log_size, frags, offload)
        try:
            prog = cls(fd, name, ptype, maps=maps, **init)
        except BaseException:
            os.close(fd)  # nobody owns it yet
            raise
        prog.frags = bool(frags)
        prog.offload_target = where
        record_created("prog", prog.id)
        return prog

    def before_attach(self, ifindex, netns):
        """Called by :func:`netring.xdp.attach` just before it attaches this program to ``ifindex``.

        ``netns`` is the attach namespace (a :class:`~netring.netns.NetNS`, or None for the current
        one). Does nothing here; a subclass that must prepare state inside that namespace (the
        ``redirect`` built-in fills its devmap there) overrides it. An exception aborts the attach.
        """

    def info(self):
        """``ProgramInfo(id, name, tag, type)`` from the kernel."""
        return program_info(self.fd)

    @property
    def offload(self):
        """The device this program is offloaded to (:class:`OffloadDevice`), or None for a program that runs
        on the host CPU — read from the kernel, so also right for a program opened by id.

        Raises :class:`NetringError` when the program was loaded for offload and its device has gone
        since (the kernel keeps such a program, orphaned, until its last fd closes).
        """
        info = ffi.new("struct bpf_prog_info *")
        rc = lib.nr_bpf_prog_info(self.fd, info)
        if rc == -errno.ENODEV:
            err = NetringError("program %r was loaded for offload to %s, which is gone (ENODEV): the kernel keeps the "
                               "program orphaned; close it and load it again bound to an existing device"
                               % (self.name, self.offload_target or "a device"))
            err.errno = errno.ENODEV
            raise err
        if rc < 0:
            raise bpf_error(rc, "reading program info")
        if not info.ifindex:
            return None
        return OffloadDevice(info.ifindex, info.netns_dev, info.netns_ino)

    @property
    def id(self):
        """The kernel's program id (what ``bpftool prog`` and XDP queries show)."""
        return self.info().id

    @property
    def maps(self):
        """The maps of this program, by role name (a copy of the dict); see the class doc for who owns them."""
        return dict(self._maps)

    def map(self, name):
        """The map called ``name``; ``KeyError`` naming the available ones otherwise."""
        try:
            return self._maps[name]
        except KeyError:
            raise KeyError("program %r has no map %r; it has %s" % (self.name, name, sorted(self._maps) or "none")) from None

    def counters(self):
        """Per-action packet/byte counters; only built-ins keep them (see
        :meth:`netring.bpf.programs.BuiltinProgram.counters`).

        Raises :class:`UnsupportedError` here: a program netring did not build has no counters map
        whose layout netring knows.
        """
        raise UnsupportedError("program %r has no netring counters map; only built-in programs "
                               "(netring.bpf.programs.builtin) count their verdicts — read its own maps instead" % self.name)

    def test_run(self, data, repeat=1):
        """Run the program once (or ``repeat`` times) on ``data`` with BPF_PROG_TEST_RUN.

        Returns ``(retval, data_out)``. Counters of built-ins are updated by test runs too.
        ``data``: bytes-like, at least 14 B (an Ethernet header) for XDP programs;
        ``repeat``: 0..2**32-1 (0 runs once, as 1).
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ConfigurationError("test_run data must be bytes, not %r" % type(data).__name__, field="data", value=data)
        data = bytes(data)
        check_int("repeat", repeat)
        if self.prog_type == lib.BPF_PROG_TYPE_XDP and len(data) < 14:
            raise ConfigurationError("test_run data for an XDP program must be at least 14 B (an Ethernet header), "
                                     "got %d B" % len(data), field="data", value=len(data))
        out = ffi.new("char[]", len(data) + 4096)
        size = ffi.new("uint32_t *", len(data) + 4096)
        ret = ffi.new("uint32_t *")
        rc = lib.nr_bpf_prog_test_run(self.fd, data, len(data), out, size, repeat, ret)
        if rc < 0:
            raise bpf_error(rc, "test-running program %r" % self.name)
        return ret[0], bytes(ffi.buffer(out, size[0]))

    def close(self):
        """Close the program fd and, if it owns them (:attr:`owns_maps`), its maps (idempotent)."""
        super().close()
        if self.owns_maps:
            for m in self._maps.values():
                m.close()

    def __repr__(self):
        if self.closed:
            return "<Program %r closed>" % self.name
        return "<Program %r fd=%d maps=%s>" % (self.name, self._fd, sorted(self._maps))


def program_from_id(prog_id):
    """Open the loaded program with kernel id ``prog_id`` (0..2**32-1) as a :class:`Program` (a new fd on it)."""
    check_int("prog_id", prog_id)
    fd = lib.nr_bpf_get_fd_by_id(lib.NR_BPF_KIND_PROG, prog_id)
    if fd < 0:
        if fd == -errno.ENOENT:
            raise BpfObjectNotFoundError("no BPF program with id %d (it was unloaded); list loaded ones with "
                                         "`bpftool prog`" % prog_id)
        raise bpf_error(fd, "opening program id %d" % prog_id)
    info = program_info(fd)
    return Program(fd, info.name, info.type)


def load_program(insns, name="netring", prog_type="xdp", license="GPL", maps=None, log_size=1 << 20, frags=False,
                 offload=None):
    """Load ``insns`` (bytes of ``struct bpf_insn``, or an :class:`~netring.bpf.asm.Asm`) and return a :class:`Program`.

    ``maps`` (role name → Map) are handed to the program, which closes them with itself.
    ``name``: at most 15 characters of ``[A-Za-z0-9_.]`` (the kernel's rule); ``license``: an
    ASCII string ("GPL" unlocks GPL-only helpers); ``log_size``: verifier log bytes to start with.
    ``frags=True`` loads an XDP program multi-buffer aware (:data:`XDP_HAS_FRAGS`, kernel 5.18+):
    it then sees fragmented frames — ``data``..``data_end`` covers only the first buffer; read
    the rest with the ``xdp_load_bytes`` helper, the whole length with ``xdp_get_buff_len``.
    On rejection raises :class:`VerifierError` carrying the verifier log; the load is first
    tried without a log (fast) and repeated with one to explain a failure.

    ``offload=(interface, netns)`` (or just ``interface``, in the current namespace; a name or an
    ifindex) loads an XDP program *bound to that device* for hardware offload (``prog_ifindex``): the
    kernel hands it to the device's driver, which translates it for the NIC's own processor (nfp). The
    load runs inside ``netns`` (the kernel resolves the device in the loading thread's namespace).
    Attach such a program only with ``netring.xdp.attach(..., mode="offload")`` to that same device;
    :attr:`Program.offload` reports where it is bound. Not with ``frags=True`` (the kernel refuses
    multi-buffer for offload), and the program may use only maps offloaded to the same device (none of
    netring's: built-ins cannot be offloaded). A device without BPF offload (veth, most NICs) refuses:
    :class:`UnsupportedError` naming the device and the errno.
    """
    return Program.load(insns, name, prog_type, license, maps, log_size, frags, offload)


def _offload_spec(offload):
    """``offload=`` → ``(interface name or ifindex, netns spec)``, validated (None stays None)."""
    if offload is None:
        return None
    if isinstance(offload, tuple):
        if len(offload) != 2:
            raise ConfigurationError("offload must be an interface (name or ifindex) or a tuple (interface, netns), "
                                     "not %r" % (offload,), field="offload", value=offload)
        target, netns = offload
    else:
        target, netns = offload, None
    if isinstance(target, int) and not isinstance(target, bool):
        if not 0 < target < 1 << 31:
            raise ConfigurationError("offload ifindex must be in 1..2**31-1, not %r" % (target,),
                                     field="offload", value=target)
    elif isinstance(target, str):
        check_ifname("offload", target)
    else:
        raise ConfigurationError("offload must name the device to offload to (an interface name or ifindex, "
                                 "optionally as (interface, netns)), not %r" % (offload,),
                                 field="offload", value=offload)
    return target, netns


def _device_here(target, label):
    """Inside the device's namespace: ``(ifindex, name)`` of ``target`` (name or ifindex) there."""
    if isinstance(target, int):
        try:
            return target, socket.if_indextoname(target)
        except OSError:
            raise InterfaceNotFoundError("ifindex %d" % target, label) from None
    return ifindex_here(target, label), target


def _load_here(ptype, insns, lic, cname, flags, offload, log_size, name):
    """The bpf(2) load itself, in the calling thread's namespace (the device's, for ``offload``).

    ``offload``: None, or ``(target, netns label, description)``. Returns ``(fd, device description or None)``.
    """
    ifindex, where = 0, None
    if offload is not None:
        target, label, describe = offload
        ifindex, ifname = _device_here(target, label)
        where = describe(ifname)
    fd = lib.nr_bpf_prog_load(ptype, insns, len(insns) // 8, lic, cname, 0, flags, ifindex, ffi.NULL, 0, 0)
    if fd >= 0:
        return fd, where
    if fd == -errno.EPERM:
        raise bpf_error(fd, "loading program %r" % name)
    size = log_size
    while True:
        buf = ffi.new("char[]", size)
        fd = lib.nr_bpf_prog_load(ptype, insns, len(insns) // 8, lic, cname, 0, flags, ifindex, buf, size, 1)
        if fd == -errno.ENOSPC and size < (1 << 26):
            size *= 4
            continue
        break
    if fd >= 0:  # loaded on the retry (should not happen): keep it
        return fd, where
    log = ffi.string(buf).decode(errors="replace")
    if log.strip() and fd != -errno.EPERM:
        raise VerifierError(name, -fd, log)
    if where is not None and -fd in (errno.EINVAL, errno.EOPNOTSUPP, ENOTSUPP):
        # No log: the kernel refused before verifying, while binding the program to the device
        # (bpf_prog_dev_bound_init): the device has no offload driver behind it.
        code = -fd
        err = UnsupportedError(
            "loading program %r for offload to %s failed: [errno %d] %s (%s); that device has no BPF offload — "
            "its driver cannot run XDP programs on the NIC itself, as offload hardware like Netronome nfp does; "
            "load it without offload= and attach it in native or generic mode"
            % (name, where, code, _ERRNO_NAMES[code], os.strerror(code)))
        err.errno = code
        raise err
    raise bpf_error(fd, "loading program %r%s" % (name, " for offload to %s" % where if where else ""))


def _load(insns, name, prog_type, license, maps, log_size, frags=False, offload=None):
    """Validate the arguments of :func:`load_program` and load the program: ``(fd, program type, device
    description or None)``."""
    if hasattr(insns, "assemble"):
        insns = insns.assemble()
    if not isinstance(insns, (bytes, bytearray, memoryview)):
        raise ConfigurationError("program instructions must be bytes of struct bpf_insn or an Asm, not %r"
                                 % type(insns).__name__, field="insns", value=insns)
    bname = check_name("name", name)
    if not isinstance(license, str) or not license or not license.isascii() or "\0" in license:
        raise ConfigurationError("license must be a non-empty ASCII string such as 'GPL', not %r" % (license,),
                                 field="license", value=license)
    check_int("log_size", log_size, 256, 1 << 30)
    if maps is not None and (not isinstance(maps, dict) or not all(hasattr(m, "lookup") for m in maps.values())):
        raise ConfigurationError("maps must be a dict of role name -> netring Map, not %r" % (maps,),
                                 field="maps", value=maps)
    insns = bytes(insns)
    if not insns or len(insns) % 8:
        raise ConfigurationError("program %r: instructions must be a non-empty multiple of 8 bytes, got %d"
                                 % (name, len(insns)), field="insns", value=len(insns))
    ptype = PROG_TYPES.get(prog_type, prog_type) if isinstance(prog_type, str) else prog_type
    if not isinstance(ptype, int) or isinstance(ptype, bool) or not 0 <= ptype <= _U32:
        raise ConfigurationError("unknown program type %r; use one of %s or a BPF_PROG_TYPE_* number"
                                 % (prog_type, sorted(PROG_TYPES)), field="prog_type", value=prog_type)
    if not isinstance(frags, bool):
        raise ConfigurationError("frags must be True or False, not %r" % (frags,), field="frags", value=frags)
    spec = _offload_spec(offload)
    if spec is not None:
        if ptype != lib.BPF_PROG_TYPE_XDP:
            raise ConfigurationError("program %r: offload= is for XDP programs (netring attaches only those), not "
                                     "program type %r" % (name, prog_type), field="offload", value=offload)
        if frags:
            raise ConfigurationError("program %r: an offloaded program cannot be frags-aware (the kernel accepts "
                                     "BPF_F_XDP_HAS_FRAGS only for programs that run on the host); load it with "
                                     "frags=False" % name, field="frags", value=frags)
        if maps:
            raise ConfigurationError("program %r: an offloaded program can use only maps offloaded to the same "
                                     "device, and netring creates none; load it without maps=" % name,
                                     field="maps", value=sorted(maps))
    flags = XDP_HAS_FRAGS if frags else 0
    lic = ffi.new("char[]", license.encode())
    cname = ffi.new("char[]", bname)
    if spec is None:
        fd, _ = _load_here(ptype, insns, lic, cname, flags, None, log_size, name)
        return fd, ptype, None
    target, netns = spec
    ns, owned = resolve(netns)
    try:
        label = None if ns is None else str(ns)

        def describe(ifname):
            return ifname if ns is None else "%s in namespace %s" % (ifname, label)

        job = (ptype, insns, lic, cname, flags, (target, label, describe), log_size, name)
        fd, where = _load_here(*job) if ns is None else ns.run(_load_here, *job)
    finally:
        if owned:
            ns.close()
    return fd, ptype, where


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
        if not isinstance(program, Program):
            raise ConfigurationError("link update needs a netring Program, not %r" % (program,),
                                     field="program", value=program)
        rc = lib.nr_bpf_link_update(self.fd, program.fd)
        if rc < 0:
            raise bpf_error(rc, "updating link to program %r" % program.name)

    def detach(self):
        """Detach the link from its hook now (BPF_LINK_DETACH); the fd stays open but inert."""
        rc = lib.nr_bpf_link_detach(self.fd)
        if rc < 0 and rc != -errno.ENOLINK:
            raise bpf_error(rc, "detaching link")
