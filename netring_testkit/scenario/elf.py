"""Program names of a BPF ELF object, read from its symbol table (no libbpf, no privileges).

A scenario's ``program: {object: f.o, program: name}`` is checked against these when the file
is loaded, so a misspelt program name is located in the YAML instead of failing at attach time.
"""
import struct

__all__ = ["bpf_object_programs", "bpf_object_sections", "FRAGS_SECTIONS"]

_ELF_MAX = 64 << 20   # larger "objects" are not BPF programs anyone compiled for a scenario
_EM_BPF = 247
_SHT_PROGBITS, _SHT_SYMTAB = 1, 2
_SHF_EXECINSTR = 0x4
_STT_FUNC = 2


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
    with open(path, "rb") as f:
        data = f.read(_ELF_MAX + 1)
    if len(data) > _ELF_MAX:
        raise ValueError("larger than %d MiB, not a BPF object" % (_ELF_MAX >> 20))
    if data[:4] != b"\x7fELF":
        raise ValueError("not an ELF file (compile it with `clang -O2 -g -target bpf -c`)")
    if len(data) < 64 or data[4] != 2 or data[5] not in (1, 2):
        raise ValueError("not a 64-bit ELF object")
    end = "<" if data[5] == 1 else ">"
    try:
        machine = struct.unpack_from(end + "H", data, 18)[0]
        if machine != _EM_BPF:
            raise ValueError("an ELF object for machine %d, not BPF (%d); compile with `-target bpf`"
                             % (machine, _EM_BPF))
        shoff, = struct.unpack_from(end + "Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", data, 0x3A)
        if shentsize < 64 or shoff + shnum * shentsize > len(data):
            raise ValueError("malformed section header table")
        secs = [struct.unpack_from(end + "IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]

        def body(sec):
            off, size = sec[4], sec[5]
            if off + size > len(data):
                raise ValueError("a section runs past the end of the file")
            return data[off:off + size]

        def cstr(table, off):
            stop = table.find(b"\0", off)
            return table[off:stop if stop >= 0 else len(table)].decode("utf-8", "replace")

        shstr = body(secs[shstrndx]) if shstrndx < shnum else b""
        names = {}
        for sec in secs:
            if sec[1] != _SHT_SYMTAB or sec[9] < 24 or sec[6] >= shnum:
                continue
            symtab, strtab = body(sec), body(secs[sec[6]])
            for off in range(0, len(symtab) - 23, sec[9]):
                st_name, st_info, _other, st_shndx, _value, _size = struct.unpack_from(end + "IBBHQQ", symtab, off)
                if st_info & 0xF != _STT_FUNC or not 0 < st_shndx < shnum:
                    continue
                target = secs[st_shndx]
                if target[1] != _SHT_PROGBITS or not target[2] & _SHF_EXECINSTR or target[5] == 0:
                    continue
                if cstr(shstr, target[0]) == ".text":
                    continue
                names[cstr(strtab, st_name)] = cstr(shstr, target[0])
    except (struct.error, IndexError, OverflowError):
        raise ValueError("truncated or malformed ELF file") from None
    return {n: sec for n, sec in names.items() if n}


