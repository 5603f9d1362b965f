"""Load clang-compiled ELF objects through the system libbpf (``libbpf.so.1``, cffi ABI mode).

libbpf is the field's loader (relocations, BTF maps, sections). It is a system library and
not on a hot path, so it is opened with ``dlopen`` at first use; if it is missing,
:class:`LibbpfNotFoundError` names the Debian package to install (``libbpf1``).

``load_object(path)`` opens and loads every program of the object, then hands each kernel
object to netring (duplicated fds) and closes the libbpf object: the result is plain
:class:`~netring.bpf.objects.Program` and :class:`~netring.bpf.maps.Map` objects, attached
with :func:`netring.xdp.attach` like the built-ins.
"""
import errno
import os
import platform
import threading

from cffi import FFI

from ..errors import ConfigurationError, NetringError, UnsupportedError, from_oserror
from .fd import record_created
from .maps import map_from_fd
from .objects import XDP_HAS_FRAGS, Program, VerifierError, program_info

__all__ = ["load_object", "UserObject", "LibbpfNotFoundError", "libbpf_version", "FRAGS_SECTIONS"]

#: Sections for which libbpf loads an XDP program multi-buffer aware (``BPF_F_XDP_HAS_FRAGS``; its
#: ``SEC_XDP_FRAGS`` section definitions): ``program.frags`` is True for these.
FRAGS_SECTIONS = ("xdp.frags", "xdp.frags/devmap", "xdp.frags/cpumap")

_ffi = FFI()
_ffi.cdef("""
struct bpf_object; struct bpf_program; struct bpf_map;
typedef int (*libbpf_print_fn_t)(int level, const char *fmt, void *args);
libbpf_print_fn_t libbpf_set_print(libbpf_print_fn_t fn);
struct bpf_object *bpf_object__open_file(const char *path, const void *opts);
int bpf_object__load(struct bpf_object *obj);
void bpf_object__close(struct bpf_object *obj);
struct bpf_program *bpf_object__next_program(const struct bpf_object *obj, struct bpf_program *prog);
const char *bpf_program__name(const struct bpf_program *prog);
const char *bpf_program__section_name(const struct bpf_program *prog);
int bpf_program__fd(const struct bpf_program *prog);
uint32_t bpf_program__flags(const struct bpf_program *prog);
int bpf_program__set_autoload(struct bpf_program *prog, _Bool autoload);
int bpf_program__set_log_buf(struct bpf_program *prog, char *log_buf, size_t log_size);
int bpf_program__set_log_level(struct bpf_program *prog, uint32_t log_level);
struct bpf_map *bpf_object__next_map(const struct bpf_object *obj, const struct bpf_map *map);
const char *bpf_map__name(const struct bpf_map *map);
int bpf_map__fd(const struct bpf_map *map);
uint32_t libbpf_major_version(void);
uint32_t libbpf_minor_version(void);
int vsnprintf(char *str, size_t size, const char *format, void *ap);
""")

_lib = None
_lock = threading.Lock()
_messages = []
# Forwarding a va_list as a pointer is how x86-64 and arm64 pass it; elsewhere messages are dropped.
_VA_OK = platform.machine() in ("x86_64", "aarch64")


class LibbpfNotFoundError(UnsupportedError):
    """``libbpf.so.1`` cannot be loaded; install Debian's ``libbpf1`` package (``apt-get install libbpf1``)."""


@_ffi.callback("int(int, const char *, void *)")
def _print(level, fmt, args):
    if _VA_OK:
        buf = _ffi.new("char[]", 1024)
        _libc.vsnprintf(buf, 1024, fmt, args)
        _messages.append(_ffi.string(buf).decode(errors="replace").rstrip())
    return 0


def _load():
    global _lib, _libc
    if _lib is None:
        try:
            _libc = _ffi.dlopen("libc.so.6")
            lib = _ffi.dlopen("libbpf.so.1")
        except OSError as exc:
            raise LibbpfNotFoundError(
                "libbpf.so.1 is not installed (%s); install it with `apt-get install libbpf1` "
                "(Debian/Ubuntu) or your distribution's libbpf 1.x package" % exc) from None
        lib.libbpf_set_print(_print)
        _lib = lib
    return _lib


def libbpf_version():
    """``(major, minor)`` of the libbpf in use."""
    lib = _load()
    return lib.libbpf_major_version(), lib.libbpf_minor_version()


def _dup(fd):
    return os.dup(fd) if fd >= 0 else -1


class UserObject:
    """The programs and maps of a loaded ELF object. Context manager; ``close()`` closes them all.

    ``programs`` maps function name → :class:`Program`; ``maps`` maps map name → :class:`Map`.
    Each program also reaches the object's maps through ``program.map(name)``.

    Ownership: the object owns the maps; its programs hold non-owning references
    (``program.owns_maps`` is False). Closing one program closes only that program's fd — the
    maps stay usable through the object and every other program until :meth:`close` of the
    object closes them all. (Kernel-side, a map lives while any fd or loaded program uses it.)
    """

    def __init__(self, path, programs, sections, maps):
        self.path = path
        self.programs = programs
        self.sections = sections
        self.maps = maps

    def program(self, name=None, section=None):
        """The program called ``name`` (function name), or the first in ``section``; the only one if neither is given."""
        if name is not None:
            if name not in self.programs:
                raise KeyError("%s has no program %r; it has %s" % (self.path, name, sorted(self.programs)))
            return self.programs[name]
        if section is not None:
            for pname, sec in self.sections.items():
                if sec == section:
                    return self.programs[pname]
            raise KeyError("%s has no program in section %r; sections: %s" % (self.path, section, sorted(set(self.sections.values()))))
        if len(self.programs) != 1:
            raise ConfigurationError("%s has %d programs (%s); pick one by name" % (self.path, len(self.programs), sorted(self.programs)),
                                     field="program", value=None)
        return next(iter(self.programs.values()))

    def map(self, name):
        """The map called ``name``."""
        if name not in self.maps:
            raise KeyError("%s has no map %r; it has %s" % (self.path, name, sorted(self.maps)))
        return self.maps[name]

    def close(self):
        """Close every program and map fd (idempotent)."""
        for p in self.programs.values():
            p.close()
        for m in self.maps.values():
            m.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<UserObject %s programs=%s maps=%s>" % (self.path, sorted(self.programs), sorted(self.maps))


def _walk(lib, obj):
    progs = []
    p = lib.bpf_object__next_program(obj, _ffi.NULL)
    while p != _ffi.NULL and len(progs) < 4096:
        progs.append(p)
        p = lib.bpf_object__next_program(obj, p)
    return progs


def load_object(path, programs=None):
    """Open and load the ELF object at ``path``; return a :class:`UserObject`.

    ``programs``: names of the programs to load (default all; a list of strings). A verifier rejection raises
    :class:`VerifierError` with the log; a missing libbpf raises :class:`LibbpfNotFoundError`.
    """
    try:
        path = os.fspath(path)
    except TypeError:
        raise ConfigurationError("BPF object path must be a str or os.PathLike, not %r" % (path,),
                                 field="path", value=path) from None
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if programs is not None:
        if isinstance(programs, str) or not isinstance(programs, (list, tuple, set, frozenset)) or \
                not all(isinstance(n, str) for n in programs):
            raise ConfigurationError("programs must be a list of program (function) names, not %r" % (programs,),
                                     field="programs", value=programs)
    lib = _load()
    if not os.path.exists(path):
        raise ConfigurationError("BPF object %s does not exist; compile it with `clang -O2 -g -target bpf -c`" % path,
                                 field="path", value=path)
    with _lock:  # libbpf's print hook is global
        del _messages[:]
        return _load_locked(lib, path, programs)


def _open(lib, path):
    obj = lib.bpf_object__open_file(path.encode(), _ffi.NULL)
    if obj == _ffi.NULL:
        code = _ffi.errno
        raise NetringError("libbpf could not open %s: %s%s" % (path, os.strerror(code), _last_messages()))
    return obj


def _last_messages():
    lines = [m for m in _messages if m][-8:]
    return ("; libbpf said:\n" + "\n".join(lines)) if lines else ""


def _load_locked(lib, path, wanted):
    obj = _open(lib, path)
    try:
        progs = _walk(lib, obj)
        names = [_ffi.string(lib.bpf_program__name(p)).decode() for p in progs]
        if wanted is not None:
            missing = set(wanted) - set(names)
            if missing:
                raise KeyError("%s has no program %s; it has %s" % (path, sorted(missing), names))
            for p, n in zip(progs, names):
                lib.bpf_program__set_autoload(p, n in wanted)
        rc = lib.bpf_object__load(obj)
        if rc != 0:
            code = -rc if rc < 0 else _ffi.errno
            if code == errno.EPERM:  # no verifier log explains a missing capability
                raise from_oserror(OSError(code, os.strerror(code)), "bpf loading %s" % path)
            # Load again with a verifier log on each program to explain the failure.
            lib.bpf_object__close(obj)
            obj = _NULL_OBJ
            obj = _open(lib, path)
            bufs = []
            for p, n in zip(_walk(lib, obj), names):
                if wanted is not None:
                    lib.bpf_program__set_autoload(p, n in wanted)
                buf = _ffi.new("char[]", 1 << 22)
                bufs.append((p, n, buf))
                lib.bpf_program__set_log_buf(p, buf, 1 << 22)
                lib.bpf_program__set_log_level(p, 1)
            lib.bpf_object__load(obj)
            for p, n, buf in bufs:  # the failed program: no fd, but a log
                log = _ffi.string(buf).decode(errors="replace")
                if lib.bpf_program__fd(p) < 0 and log.strip():
                    raise VerifierError(n, code, log)
            raise NetringError("libbpf could not load %s: %s%s" % (path, os.strerror(code), _last_messages()))
        programs, sections, maps = {}, {}, {}
        try:
            m = lib.bpf_object__next_map(obj, _ffi.NULL)
            while m != _ffi.NULL and len(maps) < 4096:
                fd = lib.bpf_map__fd(m)
                if fd >= 0:
                    wrapped = maps[_ffi.string(lib.bpf_map__name(m)).decode()] = map_from_fd(os.dup(fd))
                    record_created("map", wrapped.id)
                m = lib.bpf_object__next_map(obj, m)
            for p, n in zip(_walk(lib, obj), names):
                fd = lib.bpf_program__fd(p)
                if fd < 0:
                    continue
                fd = os.dup(fd)
                info = program_info(fd)
                programs[n] = Program(fd, n, info.type, maps=maps, owns_maps=False)
                record_created("prog", info.id)
                sections[n] = _ffi.string(lib.bpf_program__section_name(p)).decode()
                # libbpf adds the flag at load time for these sections (not to bpf_program__flags)
                programs[n].frags = sections[n] in FRAGS_SECTIONS or bool(lib.bpf_program__flags(p) & XDP_HAS_FRAGS)
        except BaseException:
            for o in list(programs.values()) + list(maps.values()):
                o.close()
            raise
        return UserObject(path, programs, sections, maps)
    finally:
        if obj != _NULL_OBJ:
            lib.bpf_object__close(obj)


_NULL_OBJ = _ffi.NULL
