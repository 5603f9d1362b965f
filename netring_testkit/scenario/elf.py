"""Program and map names of a BPF ELF object, read from its symbol table and BTF (no libbpf, no privileges).

A scenario's ``program: {object: f.o, program: name}`` is checked against these when the file
is loaded, so a misspelt program name is located in the YAML instead of failing at attach time;
``expect.maps`` is checked against the object's maps (:func:`bpf_object_maps`) the same way.
"""
import collections
import struct

__all__ = ["bpf_object_programs", "bpf_object_sections", "FRAGS_SECTIONS", "bpf_object_maps", "MapDef",
           "ARRAY_MAP_TYPES", "PERCPU_MAP_TYPES", "map_type_name"]

_ELF_MAX = 64 << 20   # larger "objects" are not BPF programs anyone compiled for a scenario
_EM_BPF = 247
_SHT_PROGBITS, _SHT_SYMTAB = 1, 2
_SHF_EXECINSTR = 0x4
_STT_FUNC = 2

#: ``enum bpf_map_type`` of linux/bpf.h, by number (the ones a counting program uses, and their kin).
_MAP_TYPE_NAMES = {1: "hash", 2: "array", 3: "prog_array", 4: "perf_event_array", 5: "percpu_hash",
                   6: "percpu_array", 7: "stack_trace", 8: "cgroup_array", 9: "lru_hash", 10: "lru_percpu_hash",
                   11: "lpm_trie", 12: "array_of_maps", 13: "hash_of_maps", 14: "devmap", 15: "sockmap",
                   16: "cpumap", 17: "xskmap", 18: "sockhash", 21: "percpu_cgroup_storage", 27: "ringbuf",
                   29: "devmap_hash"}
#: Map types indexed by a slot number 0..max_entries-1 whose slots always exist.
ARRAY_MAP_TYPES = frozenset({2, 6})
#: Map types with one value per possible CPU.
PERCPU_MAP_TYPES = frozenset({5, 6, 10, 21})

#: A map as the object declares it: ``name``, ``type`` (``BPF_MAP_TYPE_*`` number), ``key_size``,
#: ``value_size`` (bytes; None when the declaration gives neither a type nor a size), ``max_entries``.
MapDef = collections.namedtuple("MapDef", "name type key_size value_size max_entries")


def map_type_name(map_type):
    """``"array"``, ``"percpu_hash"``… for a ``BPF_MAP_TYPE_*`` number (the number itself if unnamed here)."""
    return _MAP_TYPE_NAMES.get(map_type, "type %s" % map_type)


class _Elf:
    """The sections of a 64-bit BPF ELF object read into memory (ValueError for anything else).

    Every offset and size the file gives is checked against the file's length before it is read.
    """

    def __init__(self, path):
        with open(path, "rb") as f:
            data = f.read(_ELF_MAX + 1)
        if len(data) > _ELF_MAX:
            raise ValueError("larger than %d MiB, not a BPF object" % (_ELF_MAX >> 20))
        if data[:4] != b"\x7fELF":
            raise ValueError("not an ELF file (compile it with `clang -O2 -g -target bpf -c`)")
        if len(data) < 64 or data[4] != 2 or data[5] not in (1, 2):
            raise ValueError("not a 64-bit ELF object")
        self.data = data
        self.end = end = "<" if data[5] == 1 else ">"
        try:
            machine = struct.unpack_from(end + "H", data, 18)[0]
            if machine != _EM_BPF:
                raise ValueError("an ELF object for machine %d, not BPF (%d); compile with `-target bpf`"
                                 % (machine, _EM_BPF))
            shoff, = struct.unpack_from(end + "Q", data, 0x28)
            shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", data, 0x3A)
            if shentsize < 64 or shoff + shnum * shentsize > len(data):
                raise ValueError("malformed section header table")
            self.secs = [struct.unpack_from(end + "IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
            self.shstr = self.body(self.secs[shstrndx]) if shstrndx < shnum else b""
        except (struct.error, IndexError, OverflowError):
            raise ValueError("truncated or malformed ELF file") from None

    def body(self, sec):
        off, size = sec[4], sec[5]
        if off + size > len(self.data):
            raise ValueError("a section runs past the end of the file")
        return self.data[off:off + size]

    def name(self, sec):
        return _cstr(self.shstr, sec[0])

    def section(self, name):
        """The bytes of the first section called ``name``, or None."""
        for sec in self.secs:
            if self.name(sec) == name:
                return self.body(sec)
        return None


def _cstr(table, off):
    stop = table.find(b"\0", off)
    return table[off:stop if stop >= 0 else len(table)].decode("utf-8", "replace")


#: Section names for which libbpf loads an XDP program multi-buffer aware (``BPF_F_XDP_HAS_FRAGS``):
#: only those attach natively to a veth with a jumbo MTU. The same as ``netring.bpf.libbpf.FRAGS_SECTIONS``
#: (not imported: this module reads ELF files without loading netring's C core).
FRAGS_SECTIONS = ("xdp.frags", "xdp.frags/devmap", "xdp.frags/cpumap")


def bpf_object_programs(path):
    """Names of the programs in the BPF ELF object at ``path``, as libbpf names them (sorted).

    Read from the ELF symbol table without libbpf or privileges: a program is a function symbol
    in a non-empty executable section other than ``.text`` (``.text`` holds sub-programs).
    Raises :class:`ValueError` naming what is wrong for a file that is not a 64-bit BPF ELF
    object, :class:`OSError` when it cannot be read.
    """
    return sorted(bpf_object_sections(path))


def bpf_object_sections(path):
    """``{program name: section name}`` of the BPF ELF object at ``path`` (see :func:`bpf_object_programs`);
    a section in :data:`FRAGS_SECTIONS` (``SEC("xdp.frags")``) marks a multi-buffer aware program."""
    elf = _Elf(path)
    secs, end = elf.secs, elf.end
    shnum = len(secs)
    names = {}
    try:
        for sec in secs:
            if sec[1] != _SHT_SYMTAB or sec[9] < 24 or sec[6] >= shnum:
                continue
            symtab, strtab = elf.body(sec), elf.body(secs[sec[6]])
            for off in range(0, len(symtab) - 23, sec[9]):
                st_name, st_info, _other, st_shndx, _value, _size = struct.unpack_from(end + "IBBHQQ", symtab, off)
                if st_info & 0xF != _STT_FUNC or not 0 < st_shndx < shnum:
                    continue
                target = secs[st_shndx]
                if target[1] != _SHT_PROGBITS or not target[2] & _SHF_EXECINSTR or target[5] == 0:
                    continue
                if elf.name(target) == ".text":
                    continue
                names[_cstr(strtab, st_name)] = elf.name(target)
    except (struct.error, IndexError, OverflowError):
        raise ValueError("truncated or malformed ELF file") from None
    return {n: sec for n, sec in names.items() if n}


# BTF kinds (linux/btf.h) and the bytes each adds after the 12-byte struct btf_type.
_BTF_MAGIC = 0xEB9F
_INT, _PTR, _ARRAY, _STRUCT, _UNION, _ENUM, _FWD, _TYPEDEF, _VOLATILE, _CONST, _RESTRICT = range(1, 12)
_FUNC, _FUNC_PROTO, _VAR, _DATASEC, _FLOAT, _DECL_TAG, _TYPE_TAG, _ENUM64 = range(12, 20)
_QUALIFIERS = (_TYPEDEF, _VOLATILE, _CONST, _RESTRICT, _TYPE_TAG)


def _btf_extra(kind, vlen):
    if kind in (_INT, _VAR, _DECL_TAG):
        return 4
    if kind == _ARRAY:
        return 12
    if kind in (_STRUCT, _UNION, _DATASEC, _ENUM64):
        return 12 * vlen
    if kind in (_ENUM, _FUNC_PROTO):
        return 8 * vlen
    if kind in (_PTR, _FWD, _TYPEDEF, _VOLATILE, _CONST, _RESTRICT, _FUNC, _FLOAT, _TYPE_TAG):
        return 0
    raise ValueError("BTF type kind %d is unknown to this reader" % kind)


class _Btf:
    """The types of a ``.BTF`` section: ``types[id] = (kind, name, size_or_type, vlen, extra bytes)``."""

    def __init__(self, raw, end):
        magic, _version, _flags, hdr_len = struct.unpack_from(end + "HBBI", raw, 0)
        if magic != _BTF_MAGIC:
            raise ValueError("the .BTF section has no BTF magic")
        type_off, type_len, str_off, str_len = struct.unpack_from(end + "IIII", raw, 8)
        if hdr_len + type_off + type_len > len(raw) or hdr_len + str_off + str_len > len(raw):
            raise ValueError("the .BTF section is truncated")
        self.end = end
        self.strings = raw[hdr_len + str_off:hdr_len + str_off + str_len]
        types = raw[hdr_len + type_off:hdr_len + type_off + type_len]
        self.types = [None]  # type id 0 is void
        off = 0
        while off + 12 <= len(types):
            name_off, info, size_or_type = struct.unpack_from(end + "III", types, off)
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            n = _btf_extra(kind, vlen)
            if off + 12 + n > len(types):
                raise ValueError("the .BTF section is truncated")
            self.types.append((kind, _cstr(self.strings, name_off), size_or_type, vlen, types[off + 12:off + 12 + n]))
            off += 12 + n

    def get(self, tid):
        if not 0 < tid < len(self.types):
            raise ValueError("BTF type id %d out of range" % tid)
        return self.types[tid]

    def strip(self, tid):
        """Follow typedefs and qualifiers."""
        for _ in range(64):
            t = self.get(tid)
            if t[0] not in _QUALIFIERS:
                return tid, t
            tid = t[2]
        raise ValueError("BTF typedef chain too long")

    def size(self, tid, depth=0):
        """Bytes of type ``tid``."""
        if depth > 32:
            raise ValueError("BTF types nest too deep")
        tid, (kind, _name, size, _vlen, extra) = self.strip(tid)
        if kind == _PTR:
            return 8
        if kind == _ARRAY:
            elem, _index, nelems = struct.unpack_from(self.end + "III", extra, 0)
            return nelems * self.size(elem, depth + 1)
        if kind in (_INT, _STRUCT, _UNION, _ENUM, _ENUM64, _FLOAT, _DATASEC):
            return size
        raise ValueError("BTF type %d (kind %d) has no size" % (tid, kind))

    def members(self, tid):
        """(name, type id) of a struct's members."""
        _tid, (kind, _name, _size, vlen, extra) = self.strip(tid)
        if kind not in (_STRUCT, _UNION):
            return []
        return [(_cstr(self.strings, struct.unpack_from(self.end + "I", extra, 12 * i)[0]),
                 struct.unpack_from(self.end + "I", extra, 12 * i + 4)[0]) for i in range(vlen)]


def bpf_object_maps(path):
    """The maps the BPF ELF object at ``path`` declares in its ``.maps`` section: name → :class:`MapDef`.

    Read from the object's BTF as libbpf reads it (``__uint(type, …)``, ``__uint(max_entries, …)``,
    ``__type(key, …)`` / ``__uint(key_size, …)``, the same for values), without libbpf or
    privileges. An object without a ``.maps`` section declares no maps (``{}``). libbpf's
    internal ``.data``/``.bss``/``.rodata`` maps are not listed. Raises :class:`ValueError`
    naming what is wrong for a malformed object (or ``.maps`` without BTF), :class:`OSError`
    when it cannot be read.
    """
    elf = _Elf(path)
    if elf.section(".maps") is None:
        return {}
    raw = elf.section(".BTF")
    if raw is None:
        raise ValueError("the object has a .maps section but no BTF (compile it with `-g`)")
    try:
        btf = _Btf(raw, elf.end)
        out = {}
        for kind, name, _size, vlen, extra in btf.types[1:]:
            if kind != _DATASEC or name != ".maps":
                continue
            for i in range(vlen):
                var_id = struct.unpack_from(elf.end + "I", extra, 12 * i)[0]
                vkind, vname, vtype, _vv, _ve = btf.get(var_id)
                if vkind != _VAR:
                    continue
                out[vname] = _map_def(btf, vname, vtype)
        return out
    except (struct.error, IndexError, OverflowError):
        raise ValueError("truncated or malformed BTF in the object") from None


def _map_def(btf, name, tid):
    fields = {}
    for mname, mtype in btf.members(tid):
        _t, (kind, _n, target, _v, _e) = btf.strip(mtype)
        if kind != _PTR:
            continue
        if mname in ("type", "max_entries", "key_size", "value_size", "map_flags"):
            # __uint(name, val) is `int (*name)[val]`: the value is the array's element count
            _a, (akind, _an, _as, _av, aextra) = btf.strip(target)
            if akind == _ARRAY:
                fields[mname] = struct.unpack_from(btf.end + "III", aextra, 0)[2]
        elif mname in ("key", "value"):
            fields[mname + "_size"] = btf.size(target)  # __type(name, T) is `T *name`
    return MapDef(name, fields.get("type"), fields.get("key_size"), fields.get("value_size"),
                  fields.get("max_entries"))
