"""Classic BPF programs for ``Capture(bpf_filter=...)``: parsing and validation.

A program is given either as a sequence of ``(code, jt, jf, k)`` tuples or as the text that
``tcpdump -dd EXPR`` prints (``{ 0x28, 0, 0, 0x0000000c },`` one instruction per line).
:func:`parse` turns both into a validated tuple of :class:`Insn`; the kernel verifies the
program again when it is attached.
"""
import re
from collections import namedtuple

from .errors import ConfigurationError

__all__ = ["Insn", "parse", "MAX_INSNS"]

#: The kernel's limit on classic BPF program length (``BPF_MAXINSNS``).
MAX_INSNS = 4096


class Insn(namedtuple("Insn", "code jt jf k")):
    """One classic BPF instruction: ``code`` (u16), ``jt``/``jf`` (u8 jump offsets), ``k`` (u32)."""

    __slots__ = ()


_LINE = re.compile(r"\{\s*(0x[0-9a-fA-F]+|\d+)\s*,\s*(0x[0-9a-fA-F]+|\d+)\s*,\s*(0x[0-9a-fA-F]+|\d+)\s*,"
                   r"\s*(0x[0-9a-fA-F]+|\d+)\s*\}")


def _bad(msg, value):
    return ConfigurationError("bpf_filter: %s; pass (code, jt, jf, k) tuples or `tcpdump -dd EXPR` output" % msg,
                              field="bpf_filter", value=value)


def parse(program):
    """Return ``program`` as a tuple of :class:`Insn`, or raise :class:`ConfigurationError`.

    Accepts a ``str``/``bytes`` of ``tcpdump -dd`` output or an iterable of 4-sequences.
    Each field is range-checked (code < 2**16, jt/jf < 2**8, k < 2**32; negative k is taken
    as its 32-bit two's complement, as tcpdump may print it).
    """
    if isinstance(program, bytes):
        program = program.decode("ascii", "replace")
    if isinstance(program, str):
        rows = []
        for lineno, line in enumerate(program.splitlines(), 1):
            s = line.strip()
            if not s:
                continue
            m = _LINE.search(s)
            if not m:
                raise _bad("line %d is not a `{ code, jt, jf, k },` instruction: %r" % (lineno, s), s)
            rows.append(tuple(int(x, 0) for x in m.groups()))
    else:
        try:
            rows = [tuple(r) for r in program]
        except TypeError:
            raise _bad("expected a sequence of instructions, got %r" % (type(program).__name__,), program) from None
    if not rows:
        raise _bad("the program is empty (it needs at least a return instruction)", program)
    if len(rows) > MAX_INSNS:
        raise _bad("%d instructions exceed the kernel limit of %d" % (len(rows), MAX_INSNS), len(rows))
    out = []
    for i, r in enumerate(rows):
        if len(r) != 4 or not all(isinstance(x, int) and not isinstance(x, bool) for x in r):
            raise _bad("instruction %d must be 4 integers (code, jt, jf, k), got %r" % (i, r), r)
        code, jt, jf, k = r
        if k < 0 and k >= -(1 << 31):
            k &= 0xFFFFFFFF
        for name, v, lim in (("code", code, 1 << 16), ("jt", jt, 1 << 8), ("jf", jf, 1 << 8), ("k", k, 1 << 32)):
            if not 0 <= v < lim:
                raise _bad("instruction %d field %s=%d is outside 0..%d" % (i, name, v, lim - 1), r)
        out.append(Insn(code, jt, jf, k))
    return tuple(out)
