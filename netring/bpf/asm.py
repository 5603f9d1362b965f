"""A small eBPF assembler: readable instruction builders, named labels, map-fd loads, helper calls by name.

It is how netring writes its built-in XDP programs without clang::

    from netring.bpf.asm import Asm, R0, R1
    a = Asm()
    a.mov(R0, 2)          # r0 = XDP_PASS
    a.exit()
    prog = load_program(a, name="pass")

Registers are ``R0``..``R10`` (``FP`` is ``R10``). ALU builders take a register or an int
(32-bit immediate, sign-extended by the CPU for 64-bit operations — use :meth:`Asm.ld_imm64`
for wider constants). ``ldx``/``stx``/``st`` take a size ``"b"``, ``"h"``, ``"w"`` or ``"dw"``.
Jumps take an operator string (``==  !=  >  >=  <  <=  s>  s>=  s<  s<=  &``) and a label;
:meth:`Asm.assemble` resolves labels to offsets and raises :class:`AsmError` for unknown or
out-of-range ones.
"""
import struct

from ..errors import ConfigurationError

__all__ = ["Asm", "AsmError", "HELPERS", "XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT"] + \
    ["R%d" % i for i in range(11)] + ["FP"]

R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)
FP = R10

XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = range(5)

# Instruction classes, sizes, modes, ops (include/uapi/linux/bpf.h, bpf_common.h).
_LD, _LDX, _ST, _STX, _ALU, _JMP, _JMP32, _ALU64 = range(8)
_SIZES = {"w": 0x00, "h": 0x08, "b": 0x10, "dw": 0x18}
_IMM, _MEM, _ATOMIC = 0x00, 0x60, 0xC0
_K, _X = 0x00, 0x08
_ALU_OPS = {"add": 0x00, "sub": 0x10, "mul": 0x20, "div": 0x30, "or": 0x40, "and": 0x50, "lsh": 0x60,
            "rsh": 0x70, "neg": 0x80, "mod": 0x90, "xor": 0xA0, "mov": 0xB0, "arsh": 0xC0}
_END = 0xD0
_JMP_OPS = {"==": 0x10, ">": 0x20, ">=": 0x30, "&": 0x40, "!=": 0x50, "s>": 0x60, "s>=": 0x70,
            "<": 0xA0, "<=": 0xB0, "s<": 0xC0, "s<=": 0xD0}
_JA, _CALL, _EXIT = 0x00, 0x80, 0x90
_PSEUDO_MAP_FD = 1

#: Helper function ids by name (a subset of ``enum bpf_func_id``; add as needed, or pass an int).
HELPERS = {
    "map_lookup_elem": 1, "map_update_elem": 2, "map_delete_elem": 3, "ktime_get_ns": 5,
    "trace_printk": 6, "get_prandom_u32": 7, "get_smp_processor_id": 8, "redirect": 23,
    "perf_event_output": 25, "xdp_adjust_head": 44, "redirect_map": 51, "xdp_adjust_meta": 54,
    "fib_lookup": 69, "xdp_adjust_tail": 65, "ktime_get_boot_ns": 125, "ringbuf_output": 130,
    # Multi-buffer XDP (kernel 5.18): whole frame length; copy bytes from any fragment.
    "xdp_get_buff_len": 188, "xdp_load_bytes": 189, "xdp_store_bytes": 190,
}

_INSN = struct.Struct("<BBhi")


class AsmError(ConfigurationError):
    """An instruction cannot be encoded (bad register, size, operator, label or immediate)."""


def _reg(r, what="register"):
    if not isinstance(r, int) or isinstance(r, bool) or not 0 <= r <= 10:
        raise AsmError("%s must be R0..R10, not %r" % (what, r), field=what, value=r)
    return r


def _imm32(v):
    if not isinstance(v, int) or not -(1 << 31) <= v < (1 << 32):
        raise AsmError("immediate %r does not fit 32 bits; use ld_imm64 for wider constants" % (v,), field="imm", value=v)
    return v - (1 << 32) if v >= 1 << 31 else v


def _off16(v):
    if not -(1 << 15) <= v < (1 << 15):
        raise AsmError("offset %d does not fit 16 bits" % v, field="off", value=v)
    return v


class Asm:
    """An instruction list under construction. Builders append and return ``self`` (chainable)."""

    def __init__(self):
        self._insns = []  # [code, dst, src, off, imm, label-or-None]
        self._labels = {}

    def __len__(self):
        return len(self._insns)

    # -- raw -----------------------------------------------------------------------------
    def raw(self, code, dst=0, src=0, off=0, imm=0):
        """Append one raw instruction (for opcodes without a builder)."""
        self._insns.append([code, _reg(dst), _reg(src), _off16(off), _imm32(imm), None])
        return self

    def label(self, name):
        """Define ``name`` at the next instruction."""
        if name in self._labels:
            raise AsmError("label %r defined twice" % (name,), field="label", value=name)
        self._labels[name] = len(self._insns)
        return self

    # -- ALU -------------------------------------------------------------------------------
    def _alu(self, cls, op, dst, src):
        if not isinstance(src, _RegInt):
            return self.raw(cls | _ALU_OPS[op] | _K, dst, 0, 0, src)
        return self.raw(cls | _ALU_OPS[op] | _X, dst, _reg(src, "src"), 0, 0)

    def alu(self, op, dst, src, bits=64):
        """``dst op= src`` where op is add/sub/mul/div/or/and/lsh/rsh/mod/xor/mov/arsh; ``bits`` 64 or 32."""
        if op not in _ALU_OPS:
            raise AsmError("unknown ALU op %r; use one of %s" % (op, ", ".join(_ALU_OPS)), field="op", value=op)
        return self._alu(_ALU64 if bits == 64 else _ALU, op, dst, src)

    def mov(self, dst, src):
        """``dst = src`` (64-bit; src is a register ``R*`` or a 32-bit immediate)."""
        return self.alu("mov", dst, src)

    def mov32(self, dst, src):
        """``dst = (u32)src`` (upper half zeroed)."""
        return self.alu("mov", dst, src, 32)

    def add(self, dst, src):
        """``dst += src``."""
        return self.alu("add", dst, src)

    def sub(self, dst, src):
        """``dst -= src``."""
        return self.alu("sub", dst, src)

    def and_(self, dst, src):
        """``dst &= src``."""
        return self.alu("and", dst, src)

    def or_(self, dst, src):
        """``dst |= src``."""
        return self.alu("or", dst, src)

    def xor(self, dst, src):
        """``dst ^= src``."""
        return self.alu("xor", dst, src)

    def lsh(self, dst, src):
        """``dst <<= src``."""
        return self.alu("lsh", dst, src)

    def rsh(self, dst, src):
        """``dst >>= src`` (logical)."""
        return self.alu("rsh", dst, src)

    def be(self, dst, bits):
        """Convert ``dst`` between host and big-endian (network) order, ``bits`` 16/32/64 (zero-extends)."""
        if bits not in (16, 32, 64):
            raise AsmError("byte swap width must be 16, 32 or 64, not %r" % (bits,), field="bits", value=bits)
        return self.raw(_ALU | _END | _X, dst, 0, 0, bits)

    def ld_imm64(self, dst, value, src=0):
        """``dst = value`` for any 64-bit constant (two instruction slots)."""
        value &= (1 << 64) - 1
        lo, hi = value & 0xFFFFFFFF, value >> 32
        self.raw(_LD | _SIZES["dw"] | _IMM, dst, src, 0, lo)
        return self.raw(0, 0, 0, 0, hi)

    def ld_map_fd(self, dst, map_or_fd):
        """``dst = &map`` (pseudo map-fd load; the verifier swaps in the map pointer). Takes a Map or an fd."""
        fd = map_or_fd if isinstance(map_or_fd, int) else map_or_fd.fd
        return self.ld_imm64(dst, fd, src=_PSEUDO_MAP_FD)

    # -- memory ------------------------------------------------------------------------
    def _size(self, size):
        if size not in _SIZES:
            raise AsmError("size must be one of b, h, w, dw, not %r" % (size,), field="size", value=size)
        return _SIZES[size]

    def ldx(self, size, dst, src, off=0):
        """``dst = *(size *)(src + off)``."""
        return self.raw(_LDX | self._size(size) | _MEM, dst, src, off, 0)

    def stx(self, size, dst, off, src):
        """``*(size *)(dst + off) = src`` (register)."""
        return self.raw(_STX | self._size(size) | _MEM, dst, src, off, 0)

    def st(self, size, dst, off, imm):
        """``*(size *)(dst + off) = imm``."""
        return self.raw(_ST | self._size(size) | _MEM, dst, 0, off, imm)

    def atomic_add(self, size, dst, off, src):
        """``lock *(size *)(dst + off) += src`` (size ``w`` or ``dw``)."""
        if size not in ("w", "dw"):
            raise AsmError("atomic add needs size w or dw, not %r" % (size,), field="size", value=size)
        return self.raw(_STX | self._size(size) | _ATOMIC, dst, src, off, 0)

    # -- control flow --------------------------------------------------------------------
    def jmp(self, op, dst, src, label, bits=64):
        """``if (dst op src) goto label`` (src register or 32-bit immediate; ``bits=32`` compares low halves)."""
        if op not in _JMP_OPS:
            raise AsmError("unknown jump operator %r; use one of %s" % (op, " ".join(_JMP_OPS)), field="op", value=op)
        cls = _JMP if bits == 64 else _JMP32
        if isinstance(src, _RegInt):
            self.raw(cls | _JMP_OPS[op] | _X, dst, src, 0, 0)
        else:
            self.raw(cls | _JMP_OPS[op] | _K, dst, 0, 0, src)
        self._insns[-1][5] = label
        return self

    def ja(self, label):
        """``goto label``."""
        self.raw(_JMP | _JA)
        self._insns[-1][5] = label
        return self

    def call(self, helper):
        """Call a helper by name (see :data:`HELPERS`) or id. Arguments in R1..R5, result in R0; R1..R5 clobbered."""
        if isinstance(helper, str):
            if helper not in HELPERS:
                raise AsmError("unknown helper %r; known: %s (or pass its id)" % (helper, ", ".join(sorted(HELPERS))),
                               field="helper", value=helper)
            helper = HELPERS[helper]
        return self.raw(_JMP | _CALL, 0, 0, 0, helper)

    def exit(self):
        """Return R0."""
        return self.raw(_JMP | _EXIT)

    def ret(self, value):
        """``r0 = value; exit``."""
        return self.mov(R0, value).exit()

    # -- output ------------------------------------------------------------------------
    def assemble(self):
        """Resolve labels and return the program as bytes of ``struct bpf_insn``."""
        out = bytearray()
        for i, (code, dst, src, off, imm, label) in enumerate(self._insns):
            if label is not None:
                if label not in self._labels:
                    raise AsmError("jump at instruction %d to undefined label %r" % (i, label), field="label", value=label)
                target = self._labels[label]
                if target > len(self._insns) - 1 and target != len(self._insns):
                    raise AsmError("label %r is past the end" % (label,), field="label", value=label)
                off = _off16(target - i - 1)
            out += _INSN.pack(code, (src << 4) | dst, off, imm)
        return bytes(out)


class _RegInt(int):
    """An int that is a register (so ``mov(R1, R2)`` and ``mov(R1, 2)`` differ)."""

    def __repr__(self):
        return "R%d" % int(self)


R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = (_RegInt(i) for i in range(11))
FP = R10
