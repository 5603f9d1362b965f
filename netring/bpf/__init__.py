"""eBPF for netring: bpf(2) through the C core, an assembler, built-in XDP programs, libbpf objects.

- :func:`load_program` / :class:`Program` — load instructions (also bound to a device for hardware
  offload: ``offload=(ifname, netns)``), read info, test-run.
- :func:`create_map` / :class:`Map` — array, per-CPU, hash, devmap, xskmap, cpumap maps.
- :mod:`netring.bpf.asm` — the assembler (:class:`~netring.bpf.asm.Asm`).
- :mod:`netring.bpf.programs` — ``builtin(name, **options)``: pass, drop, aborted, tx, redirect, xsk, filter
  (each a :class:`BuiltinProgram`, with per-action ``counters()``).
- :mod:`netring.bpf.libbpf` — ``load_object(path)`` for clang-compiled ELF objects (libbpf.so.1).

Attach programs to interfaces with :mod:`netring.xdp`.
"""
from .fd import BpfFd, BpfObjectNotFoundError, created_ids  # noqa: F401
from .maps import MAP_TYPES, Map, MapInfo, create_map, map_from_id, possible_cpus  # noqa: F401
from .objects import (Link, OffloadDevice, Program, ProgramInfo, VerifierError, load_program,  # noqa: F401
                      program_from_id)
from .programs import BuiltinProgram, builtin  # noqa: F401

__all__ = ["Map", "MapInfo", "MAP_TYPES", "create_map", "map_from_id", "possible_cpus", "BpfFd", "Link",
           "BpfObjectNotFoundError", "OffloadDevice", "Program", "ProgramInfo", "created_ids", "VerifierError", "load_program", "program_from_id", "builtin",
           "BuiltinProgram"]
