"""BPF maps: create, look up, update, delete and iterate, with Python-friendly keys and values.

Keys and values are ``bytes`` of exactly the map's key/value size, or ints when the size is
1, 2, 4 or 8 (little-endian, unsigned), or tuples when a ``struct`` format is given
(``key_format=`` / ``value_format=``). Per-CPU maps hold one value per possible CPU: lookup
returns the list, :meth:`Map.sum` adds them up (element-wise for tuples).
"""
import collections
import errno
import os
import struct

from .._core import ffi, lib
from ..errors import ConfigurationError
from .fd import BpfFd, BpfObjectNotFoundError, bpf_error, check_int, check_name, record_created

__all__ = ["Map", "MapInfo", "create_map", "map_from_id", "map_from_fd", "MAP_TYPES", "PERCPU_TYPES", "possible_cpus"]

#: Map types by name.
MAP_TYPES = {
    "hash": lib.BPF_MAP_TYPE_HASH,
    "array": lib.BPF_MAP_TYPE_ARRAY,
    "percpu_hash": lib.BPF_MAP_TYPE_PERCPU_HASH,
    "percpu_array": lib.BPF_MAP_TYPE_PERCPU_ARRAY,
    "lru_hash": lib.BPF_MAP_TYPE_LRU_HASH,
    "lru_percpu_hash": lib.BPF_MAP_TYPE_LRU_PERCPU_HASH,
    "devmap": lib.BPF_MAP_TYPE_DEVMAP,
    "devmap_hash": lib.BPF_MAP_TYPE_DEVMAP_HASH,
    "cpumap": lib.BPF_MAP_TYPE_CPUMAP,
    "xskmap": lib.BPF_MAP_TYPE_XSKMAP,
}
_TYPE_NAMES = {v: k for k, v in MAP_TYPES.items()}
#: Map types whose values are per CPU.
PERCPU_TYPES = frozenset({lib.BPF_MAP_TYPE_PERCPU_HASH, lib.BPF_MAP_TYPE_PERCPU_ARRAY,
                          lib.BPF_MAP_TYPE_LRU_PERCPU_HASH})

#: ``MapInfo(id, name, type, key_size, value_size, max_entries, flags)`` from the kernel.
MapInfo = collections.namedtuple("MapInfo", "id name type key_size value_size max_entries flags")

# Map types indexed by a u32 slot number 0..max_entries-1 (E2BIG on update past the end).
_ARRAY_TYPES = frozenset({lib.BPF_MAP_TYPE_ARRAY, lib.BPF_MAP_TYPE_PERCPU_ARRAY, lib.BPF_MAP_TYPE_DEVMAP,
                          lib.BPF_MAP_TYPE_CPUMAP, lib.BPF_MAP_TYPE_XSKMAP})
_INT_FMT = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}
_possible = None


def possible_cpus():
    """Number of possible CPUs (the per-CPU value count), from /sys/devices/system/cpu/possible."""
    global _possible
    if _possible is None:
        with open("/sys/devices/system/cpu/possible") as f:
            n = 0
            for part in f.read().strip().split(","):
                lo, _, hi = part.partition("-")
                n = max(n, int(hi or lo) + 1)
        _possible = n
    return _possible


class _Codec:
    def __init__(self, size, fmt, what):
        self.size = size
        self.what = what
        if fmt is not None:
            try:
                st = struct.Struct(fmt)
            except (struct.error, TypeError) as exc:
                raise ConfigurationError("%s_format %r is not a struct format (%s)" % (what, fmt, exc),
                                         field=what + "_format", value=fmt) from None
            if st.size != size:
                raise ConfigurationError("%s_format %r packs %d B but the map's %s size is %d B"
                                         % (what, fmt, st.size, what, size), field=what + "_format", value=fmt)
            self.st, self.tuple = st, True
        elif size in _INT_FMT:
            self.st, self.tuple = struct.Struct(_INT_FMT[size]), False
        else:
            self.st, self.tuple = None, False

    def encode(self, v):
        if isinstance(v, (bytes, bytearray, memoryview)):
            b = bytes(v)
        elif self.st is None:
            raise ConfigurationError("%s of a map with %d B %ss must be bytes of that length, not %r"
                                     % (self.what, self.size, self.what, v), field=self.what, value=v)
        else:
            try:
                b = self.st.pack(*v) if self.tuple else self.st.pack(v)
            except (struct.error, TypeError) as exc:
                raise ConfigurationError("%s %r does not fit the map's %d B %s (%s)" % (self.what, v, self.size, self.what, exc),
                                         field=self.what, value=v) from None
        if len(b) != self.size:
            raise ConfigurationError("%s is %d B but the map's %s size is %d B" % (self.what, len(b), self.what, self.size),
                                     field=self.what, value=v)
        return b

    def decode(self, b):
        if self.st is None:
            return bytes(b)
        v = self.st.unpack(bytes(b))
        return v if self.tuple else v[0]


class Map(BpfFd):
    """A BPF map held by fd. Create with :func:`create_map`; use as a context manager.

    Mapping-like: ``m[key]``, ``m[key] = value``, ``del m[key]``, ``key in m``, iteration over
    keys, :meth:`items`. Missing keys raise ``KeyError``.
    """

    _kind = "BPF map"

    def __init__(self, fd, map_type, key_size, value_size, max_entries, name="", flags=0,
                 key_format=None, value_format=None):
        super().__init__(fd)
        self.map_type = map_type
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self.name = name
        self.flags = flags
        self.percpu = map_type in PERCPU_TYPES
        self._key = _Codec(key_size, key_format, "key")
        self._val = _Codec(value_size, value_format, "value")
        self._stride = (value_size + 7) & ~7
        self._nvals = possible_cpus() if self.percpu else 1
        self._vbuf = ffi.new("char[]", self._stride * self._nvals)

    @property
    def type_name(self):
        """The map type's name (``"percpu_array"``…) or its number if unnamed here."""
        return _TYPE_NAMES.get(self.map_type, self.map_type)

    def info(self):
        """``MapInfo`` from the kernel (id, name, type, sizes, max_entries, flags)."""
        info = ffi.new("struct bpf_map_info *")
        rc = lib.nr_bpf_map_info(self.fd, info)
        if rc < 0:
            raise bpf_error(rc, "reading map info")
        return MapInfo(info.id, ffi.string(info.name).decode(errors="replace"), info.type,
                       info.key_size, info.value_size, info.max_entries, info.map_flags)

    @property
    def id(self):
        """The kernel's map id."""
        return self.info().id

    # -- element access ----------------------------------------------------------------
    def lookup(self, key, default=KeyError):
        """The value at ``key`` (a list, one per possible CPU, for per-CPU maps).

        Missing: ``KeyError``, or ``default`` when given.
        """
        k = self._key.encode(key)
        rc = lib.nr_bpf_map_lookup(self.fd, k, self._vbuf, 0)
        if rc < 0:
            if rc == -errno.ENOENT:
                if default is KeyError:
                    raise KeyError(key)
                return default
            raise bpf_error(rc, "looking up key %r in map %r" % (key, self.name))
        raw = ffi.buffer(self._vbuf)
        if not self.percpu:
            return self._val.decode(raw[:self.value_size])
        s = self._stride
        return [self._val.decode(raw[i * s:i * s + self.value_size]) for i in range(self._nvals)]

    def sum(self, key):
        """Per-CPU values at ``key`` added up (element-wise for tuple values); plain value for other maps."""
        v = self.lookup(key)
        if not self.percpu:
            return v
        if v and isinstance(v[0], tuple):
            return tuple(sum(col) for col in zip(*v))
        return sum(v)

    def update(self, key, value, flags=0):
        """Set ``key`` to ``value``; for per-CPU maps a list (one per CPU) or one value for all CPUs.

        ``flags``: 0 (any), ``"noexist"``/``"exist"`` or the BPF_* number. An XSKMAP takes the
        socket itself (``xskmap.update(queue, xsk)``: anything with ``fileno()``) or its fd.
        Writing an index past the end of an array-like map, or a new key into a full hash map,
        raises :class:`ConfigurationError` saying so.
        """
        if isinstance(flags, str):
            names = {"any": lib.BPF_ANY, "noexist": lib.BPF_NOEXIST, "exist": lib.BPF_EXIST}
            if flags not in names:
                raise ConfigurationError("update flags must be any, noexist, exist or a BPF_* number, not %r" % flags,
                                         field="flags", value=flags)
            flags = names[flags]
        check_int("flags", flags, 0, (1 << 64) - 1)
        k = self._key.encode(key)
        if self.percpu:
            vals = list(value) if isinstance(value, list) else [value] * self._nvals
            if len(vals) != self._nvals:
                raise ConfigurationError("per-CPU map %r needs %d values (one per possible CPU), got %d"
                                         % (self.name, self._nvals, len(vals)), field="value", value=value)
            buf = ffi.new("char[]", self._stride * self._nvals)
            for i, v in enumerate(vals):
                b = self._val.encode(v)
                ffi.memmove(buf + i * self._stride, b, len(b))
        else:
            if self.map_type == lib.BPF_MAP_TYPE_XSKMAP and hasattr(value, "fileno") and not isinstance(value, int):
                value = value.fileno()  # an XdpSocket (or any AF_XDP socket object): the map stores its fd
            buf = self._val.encode(value)
        rc = lib.nr_bpf_map_update(self.fd, k, buf, flags)
        if rc < 0:
            if rc == -errno.EEXIST:
                raise KeyError("key %r already exists in map %r (flags=noexist)" % (key, self.name))
            if rc == -errno.ENOENT and flags == lib.BPF_EXIST:
                raise KeyError(key)
            if rc == -errno.E2BIG:
                if self.map_type in _ARRAY_TYPES:
                    idx = int.from_bytes(k[:4], "little")
                    raise ConfigurationError("index %d out of range 0..%d of array map %r (max_entries %d)"
                                             % (idx, self.max_entries - 1, self.name, self.max_entries),
                                             field="key", value=key)
                raise ConfigurationError("map %r is full (max_entries %d); delete keys or create a larger map"
                                         % (self.name, self.max_entries), field="key", value=key)
            raise bpf_error(rc, "updating key %r in map %r" % (key, self.name))

    def delete(self, key):
        """Remove ``key``; ``KeyError`` if absent. Array maps cannot delete (their slots always exist)."""
        k = self._key.encode(key)
        rc = lib.nr_bpf_map_delete(self.fd, k)
        if rc < 0:
            if rc == -errno.ENOENT:
                raise KeyError(key)
            if rc == -errno.EINVAL and self.map_type in (lib.BPF_MAP_TYPE_ARRAY, lib.BPF_MAP_TYPE_PERCPU_ARRAY):
                raise ConfigurationError("array map %r cannot delete keys; overwrite the value instead" % self.name,
                                         field="key", value=key)
            raise bpf_error(rc, "deleting key %r from map %r" % (key, self.name))

    def keys(self):
        """Iterate the keys (BPF_MAP_GET_NEXT_KEY); keys deleted meanwhile may restart iteration, as in the kernel."""
        cur = None
        nxt = ffi.new("char[]", self.key_size)
        for _ in range(max(self.max_entries, 1) * 2 + 16):  # bounded even if the map changes under us
            rc = lib.nr_bpf_map_next_key(self.fd, ffi.NULL if cur is None else cur, nxt)
            if rc == -errno.ENOENT:
                return
            if rc < 0:
                raise bpf_error(rc, "iterating map %r" % self.name)
            raw = bytes(ffi.buffer(nxt))
            yield self._key.decode(raw)
            cur = ffi.new("char[]", raw)

    def items(self):
        """Iterate ``(key, value)`` pairs (values as :meth:`lookup` returns them)."""
        for k in self.keys():
            v = self.lookup(k, default=None)
            if v is not None:
                yield k, v

    def __iter__(self):
        return self.keys()

    def __getitem__(self, key):
        return self.lookup(key)

    def __setitem__(self, key, value):
        self.update(key, value)

    def __delitem__(self, key):
        self.delete(key)

    def __contains__(self, key):
        return self.lookup(key, default=None) is not None

    def __repr__(self):
        state = "closed" if self.closed else "fd=%d" % self._fd
        return "<Map %r %s key=%dB value=%dB max_entries=%d %s>" % (
            self.name, self.type_name, self.key_size, self.value_size, self.max_entries, state)


def create_map(map_type, key_size, value_size, max_entries, name="", flags=0, key_format=None, value_format=None):
    """Create a map and return it as a :class:`Map`.

    ``map_type``: a name from :data:`MAP_TYPES` (array, percpu_array, hash, percpu_hash,
    lru_hash, devmap, devmap_hash, cpumap, xskmap) or a ``BPF_MAP_TYPE_*`` number.
    ``key_size``/``value_size``/``max_entries``: 1..2**32-1; ``name``: at most 15 characters of
    ``[A-Za-z0-9_.]`` (the kernel's rule); ``flags``: ``BPF_F_*`` bits (0..2**32-1).
    """
    t = MAP_TYPES.get(map_type) if isinstance(map_type, str) else map_type
    if not isinstance(t, int) or isinstance(t, bool) or not 0 <= t < 1 << 32:
        raise ConfigurationError("unknown map type %r; use one of %s" % (map_type, ", ".join(sorted(MAP_TYPES))),
                                 field="map_type", value=map_type)
    for field, v in (("key_size", key_size), ("value_size", value_size), ("max_entries", max_entries)):
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0 or v >= 1 << 32:
            raise ConfigurationError("%s must be a positive 32-bit integer, not %r" % (field, v), field=field, value=v)
    bname = check_name("name", name)
    check_int("flags", flags)
    # Validate formats before creating the kernel object, so a bad format leaks nothing.
    _Codec(key_size, key_format, "key"), _Codec(value_size, value_format, "value")
    cname = ffi.new("char[]", bname)
    fd = lib.nr_bpf_map_create(t, key_size, value_size, max_entries, flags, cname)
    if fd < 0:
        raise bpf_error(fd, "creating map %r (%s, key %d B, value %d B, %d entries)"
                        % (name, map_type, key_size, value_size, max_entries))
    m = Map(fd, t, key_size, value_size, max_entries, name, flags, key_format, value_format)
    record_created("map", m.id)
    return m


def map_from_id(map_id, key_format=None, value_format=None):
    """Open the map with kernel id ``map_id`` (0..2**32-1; a new fd), e.g. one a user program created."""
    check_int("map_id", map_id)
    fd = lib.nr_bpf_get_fd_by_id(lib.NR_BPF_KIND_MAP, map_id)
    if fd < 0:
        if fd == -errno.ENOENT:
            raise BpfObjectNotFoundError("no BPF map with id %d (it was freed); list maps with `bpftool map`" % map_id)
        raise bpf_error(fd, "opening map id %d" % map_id)
    return map_from_fd(fd, key_format, value_format)


def map_from_fd(fd, key_format=None, value_format=None):
    """Wrap the map fd ``fd`` as a :class:`Map`, reading its geometry from the kernel.

    The Map takes ``fd`` over (closing it with itself; on error it is closed at once): pass a
    duplicate to keep your own.
    """
    info = ffi.new("struct bpf_map_info *")
    rc = lib.nr_bpf_map_info(fd, info)
    if rc < 0:
        os.close(fd)
        raise bpf_error(rc, "reading map info")
    return Map(fd, info.type, info.key_size, info.value_size, info.max_entries,
               ffi.string(info.name).decode(errors="replace"), info.map_flags, key_format, value_format)
