"""The built-in XDP programs, written with :mod:`netring.bpf.asm` (no clang needed).

``builtin(name, **options)`` loads one and returns a :class:`BuiltinProgram` (a
:class:`~netring.bpf.objects.Program` that reads its counters):

``pass`` / ``drop`` / ``aborted``
    Return that verdict for every frame.
``tx``
    Swap source and destination MAC and return XDP_TX (frames shorter than 14 B pass).
    Into a veth, the *peer* must run XDP (or have GRO on) to receive them.
``redirect`` (``target_ifindex=``, ``fallback="aborted"``, ``netns=None``)
    ``bpf_redirect_map`` through a one-entry devmap (``program.map("devmap")``); a missing
    target yields the fallback verdict. The kernel reads a devmap ifindex in the namespace
    of the thread writing it: with ``netns`` the slot is filled there at once, otherwise by
    :func:`netring.xdp.attach` inside the attach namespace (:meth:`RedirectProgram.before_attach`;
    until then it is empty and frames get the fallback verdict). The receiving veth's peer must run XDP.
``xsk`` (``queues=64``)
    ``bpf_redirect_map`` into an XSKMAP (``program.map("xsks")``) keyed by the RX queue;
    frames of queues without a socket pass.
``filter`` (``rules=[...]``, ``default="pass"``)
    Ordered rules, first match wins; see :func:`compile_rules` for the match fields.

Every program counts each frame in a per-CPU array (``program.map("counters")``): slot =
verdict (0 aborted, 1 drop, 2 pass, 3 tx, 4 redirect — the XDP action codes) with
``{u64 packets, u64 bytes}``; ``filter`` also counts each rule's matches in slot 5 + index.
The verdict counted is the one returned (for ``redirect``/``xsk``, what
``bpf_redirect_map`` returned), so counters and kernel behaviour agree.

Jumbo frames: where the kernel has multi-buffer XDP (5.18+, :func:`frags_supported`) every built-in
is loaded with ``BPF_F_XDP_HAS_FRAGS`` (``program.frags``), so it attaches natively to a veth of any
MTU. A frame larger than a page then arrives in fragments and ``data``..``data_end`` spans only the
first buffer (about 3.5 KiB, so it always holds the headers the rules read). The byte counters count
the whole frame (``bpf_xdp_get_buff_len``); ``filter`` reads the stamp at the end of the L3 packet
with ``bpf_xdp_load_bytes``, wherever it lies (a length field pointing past the frame: no stamp, no
``stream`` match). On older kernels the programs are single-buffer: bytes are ``data_end - data``
and the stamp is read only from the first buffer.
"""
import ipaddress

from ..errors import ConfigurationError, NetringError, NetringPermissionError
from ..netns import run_in
from ..stamp import STAMP_LEN, STREAM_ID_MAX
from .asm import (FP, R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, XDP_ABORTED, XDP_DROP, XDP_PASS,
                  XDP_REDIRECT, XDP_TX, Asm)
from .maps import create_map
from .objects import Program, load_program

__all__ = ["builtin", "compile_rules", "validate_rules", "read_counters", "frags_supported", "BuiltinProgram",
           "RedirectProgram",
           "ACTIONS", "BUILTINS", "MAX_RULES"]

#: Verdict names and their XDP action codes (= counter slots).
ACTIONS = {"aborted": XDP_ABORTED, "drop": XDP_DROP, "pass": XDP_PASS, "tx": XDP_TX, "redirect": XDP_REDIRECT}
_ACTION_NAMES = {v: k for k, v in ACTIONS.items()}
#: Names accepted by :func:`builtin`.
BUILTINS = ("pass", "drop", "aborted", "tx", "redirect", "xsk", "filter")
#: Most rules a ``filter`` program takes.
MAX_RULES = 64
_NACT = 5
_COUNTER_FMT = "<QQ"

# xdp_md field offsets (uapi, stable).
_MD_DATA, _MD_DATA_END, _MD_RXQ = 0, 4, 16


def read_counters(counters_map, rules=None):
    """Decode a counters map: ``{action: {"packets", "bytes"}}`` for all five actions, plus ``"rules"``."""
    out = {}
    for name, slot in ACTIONS.items():
        p, b = counters_map.sum(slot)
        out[name] = {"packets": p, "bytes": b}
    if rules is not None:
        out["rules"] = []
        for i in range(len(rules)):
            p, b = counters_map.sum(_NACT + i)
            out["rules"].append({"packets": p, "bytes": b})
    return out


class BuiltinProgram(Program):
    """A built-in program (:func:`builtin`): a :class:`~netring.bpf.objects.Program` with netring's counters map.

    ``rules``: the ``filter`` program's rules (their count sizes the per-rule counters), else None.
    """

    def __init__(self, fd, name, prog_type, maps=None, owns_maps=True, rules=None):
        super().__init__(fd, name, prog_type, maps=maps, owns_maps=owns_maps)
        self._rules = rules

    def counters(self):
        """Per-action packet/byte counters summed over CPUs.

        ``{"pass": {"packets": n, "bytes": n}, "drop": ..., "aborted": ..., "tx": ..., "redirect": ...}``,
        plus ``"rules": [{"packets", "bytes"}, ...]`` for the ``filter`` program.
        """
        return read_counters(self.map("counters"), self._rules)


class RedirectProgram(BuiltinProgram):
    """The ``redirect`` built-in: fills its devmap slot with ``target_ifindex`` inside the attach namespace.

    The kernel resolves a devmap ifindex in the namespace of the *updating thread*, so unless the
    slot was filled at load time (``builtin("redirect", netns=...)``), :meth:`before_attach` fills it
    inside the namespace :func:`netring.xdp.attach` attaches in.
    """

    def __init__(self, fd, name, prog_type, maps=None, owns_maps=True, target_ifindex=None, filled=False):
        super().__init__(fd, name, prog_type, maps=maps, owns_maps=owns_maps)
        #: The ifindex frames are redirected to (in the namespace the devmap was filled in).
        self.target_ifindex = target_ifindex
        self._filled = filled

    def before_attach(self, ifindex, netns):
        """Fill the devmap inside ``netns`` (None: the current namespace) unless it was filled at load time."""
        if self._filled:
            return
        devmap = self.map("devmap")
        if netns is None:
            devmap.update(0, self.target_ifindex)
        else:
            netns.run(devmap.update, 0, self.target_ifindex)


def _counters_map(nrules=0):
    return create_map("percpu_array", 4, 16, _NACT + nrules, name="nr_counters", value_format=_COUNTER_FMT)


# -- code fragments --------------------------------------------------------------------
_FRAGS = []  # [bool] once probed


def frags_supported():
    """True if this kernel loads multi-buffer XDP programs (``BPF_F_XDP_HAS_FRAGS`` and the
    ``xdp_get_buff_len``/``xdp_load_bytes`` helpers, kernel 5.18+). Probed once per process by
    loading a two-instruction program; the built-ins are loaded frags-aware where it is True."""
    if not _FRAGS:
        a = Asm()
        a.call("xdp_get_buff_len").ret(XDP_PASS)
        try:
            load_program(a, name="nr_frags_probe", frags=True).close()
            _FRAGS.append(True)
        except NetringPermissionError:
            raise
        except NetringError:  # EINVAL (unknown flag) or a verifier error (unknown helper)
            _FRAGS.append(False)
    return _FRAGS[0]


def _prologue(a):
    """r6 = ctx, r9 = frame length: the whole frame, all fragments (``xdp_get_buff_len``) where the
    program is loaded frags-aware, else ``data_end - data``."""
    a.mov(R6, R1)
    if frags_supported():
        a.call("xdp_get_buff_len")  # r1 = ctx still
        a.mov(R9, R0)
        return
    a.ldx("w", R2, R6, _MD_DATA)
    a.ldx("w", R3, R6, _MD_DATA_END)
    a.mov(R9, R3).sub(R9, R2)


def _count_slot(a, cmap, key_reg, tag):
    """counters[key_reg] += {1, r9}; clobbers r1-r5 and r0."""
    a.stx("w", FP, -4, key_reg)
    a.ld_map_fd(R1, cmap)
    a.mov(R2, FP).add(R2, -4)
    a.call("map_lookup_elem")
    a.jmp("==", R0, 0, "skip_" + tag)
    a.ldx("dw", R1, R0, 0).add(R1, 1).stx("dw", R0, 0, R1)
    a.ldx("dw", R1, R0, 8).add(R1, R9).stx("dw", R0, 8, R1)
    a.label("skip_" + tag)


def _epilogue(a, cmap, with_rule=False):
    """At label ``count``: r7 = verdict (clamped to 0..4), r8 = rule slot or -1; count and return r7."""
    a.label("count")
    a.jmp("<=", R7, XDP_REDIRECT, "count_ok")
    a.mov(R7, XDP_ABORTED)  # unknown verdicts are what the kernel treats as aborted
    a.label("count_ok")
    _count_slot(a, cmap, R7, "action")
    if with_rule:
        a.jmp("s<", R8, 0, "out")
        _count_slot(a, cmap, R8, "rule")
    a.label("out")
    a.mov(R0, R7).exit()


def _swap_macs(a, tag):
    """Swap the MACs of the frame (reloading data pointers from ctx in r6); skip if < 14 B."""
    a.ldx("w", R2, R6, _MD_DATA)
    a.ldx("w", R3, R6, _MD_DATA_END)
    a.mov(R4, R2).add(R4, 14)
    a.jmp(">", R4, R3, "short_" + tag)
    a.ldx("w", R1, R2, 0).ldx("h", R4, R2, 4)    # dst
    a.ldx("w", R3, R2, 6).ldx("h", R5, R2, 10)   # src
    a.stx("w", R2, 0, R3).stx("h", R2, 4, R5)
    a.stx("w", R2, 6, R1).stx("h", R2, 10, R4)
    a.ja("swapped_" + tag)
    a.label("short_" + tag)
    a.mov(R7, XDP_PASS)
    a.label("swapped_" + tag)


def _fixed(verdict, name):
    cmap = _counters_map()
    try:
        a = Asm()
        _prologue(a)
        a.mov(R7, verdict)
        _epilogue(a, cmap)
        return BuiltinProgram.load(a, name=name, maps={"counters": cmap}, frags=frags_supported())
    except BaseException:
        cmap.close()
        raise


def _tx():
    cmap = _counters_map()
    try:
        a = Asm()
        _prologue(a)
        a.mov(R7, XDP_TX)
        _swap_macs(a, "tx")
        _epilogue(a, cmap)
        return BuiltinProgram.load(a, name="nr_tx", maps={"counters": cmap}, frags=frags_supported())
    except BaseException:
        cmap.close()
        raise


def _redirect(target_ifindex=None, fallback="aborted", netns=None):
    if not isinstance(target_ifindex, int) or isinstance(target_ifindex, bool) or target_ifindex <= 0:
        raise ConfigurationError("redirect needs target_ifindex= a positive interface index (e.g. ns.ifindex('veth1')), "
                                 "not %r" % (target_ifindex,), field="target_ifindex", value=target_ifindex)
    fb = _action(fallback, "fallback", allowed=("aborted", "drop", "pass", "tx"))
    maps = {"counters": _counters_map()}
    try:
        maps["devmap"] = create_map("devmap", 4, 4, 1, name="nr_devmap")
        # The kernel resolves a devmap ifindex in the namespace of the *updating thread*, so the
        # slot is filled inside ``netns`` now, or else inside the attach namespace (before_attach).
        if netns is not None:
            run_in(netns, maps["devmap"].update, 0, target_ifindex)
        a = Asm()
        _prologue(a)
        a.ld_map_fd(R1, maps["devmap"]).mov(R2, 0).mov(R3, fb)
        a.call("redirect_map")
        a.mov(R7, R0)
        _epilogue(a, maps["counters"])
        return RedirectProgram.load(a, name="nr_redirect", maps=maps, frags=frags_supported(),
                                    target_ifindex=target_ifindex,
                                    filled=netns is not None)
    except BaseException:
        for m in maps.values():
            m.close()
        raise


def _xsk(queues=64):
    if not isinstance(queues, int) or not 1 <= queues <= 4096:
        raise ConfigurationError("xsk queues must be an int in 1..4096, not %r" % (queues,), field="queues", value=queues)
    maps = {"counters": _counters_map()}
    try:
        maps["xsks"] = create_map("xskmap", 4, 4, queues, name="nr_xsks")
        a = Asm()
        _prologue(a)
        a.ldx("w", R2, R6, _MD_RXQ)
        a.ld_map_fd(R1, maps["xsks"]).mov(R3, XDP_PASS)
        a.call("redirect_map")
        a.mov(R7, R0)
        _epilogue(a, maps["counters"])
        return BuiltinProgram.load(a, name="nr_xsk", maps=maps, frags=frags_supported())
    except BaseException:
        for m in maps.values():
            m.close()
        raise


def _action(value, field, allowed=("aborted", "drop", "pass", "tx")):
    if value not in allowed:
        raise ConfigurationError("%s must be one of %s, not %r" % (field, ", ".join(allowed), value), field=field, value=value)
    return ACTIONS[value]


# -- filter ----------------------------------------------------------------------------
# Parsed fields live in 8-byte stack slots. "Absent" is 1 << 32, which no field value
# (at most 32 bits) equals, so a rule on a field the frame lacks never matches.
_ABSENT = 1 << 32
_SLOTS = {"etype": -16, "vlan": -24, "proto": -32, "src4": -40, "dst4": -48, "sport": -56, "dport": -64,
          "stream": -72}
for _i in range(4):
    _SLOTS["src6_%d" % _i] = -80 - 8 * _i
    _SLOTS["dst6_%d" % _i] = -112 - 8 * _i
_STAMP_MAGIC_LE = int.from_bytes(b"NRTS", "little")
_MAX_L3 = 0x3FFF  # longest L3 packet whose stamp the filter reads (XDP frames are page-sized anyway)
_PROTOS = {"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58, "sctp": 132, "gre": 47}


def _parse(a):
    """Fill the field slots from the frame. r2 = data (advanced past one VLAN tag), r3 = data_end."""
    a.mov(R1, 1).lsh(R1, 32)
    for off in _SLOTS.values():
        a.stx("dw", FP, off, R1)
    a.ldx("w", R2, R6, _MD_DATA)
    a.ldx("w", R3, R6, _MD_DATA_END)
    a.mov(R7, 14)  # L2 header length (the rules set r7 to their verdict only after parsing)
    a.mov(R4, R2).add(R4, 14)
    a.jmp(">", R4, R3, "parsed")
    a.ldx("h", R5, R2, 12).be(R5, 16)
    a.jmp("==", R5, 0x8100, "vlan")
    a.jmp("==", R5, 0x88A8, "vlan")
    a.ja("l3")
    a.label("vlan")
    a.stx("dw", FP, _SLOTS["etype"], R5)
    a.mov(R4, R2).add(R4, 18)
    a.jmp(">", R4, R3, "parsed")
    a.ldx("h", R1, R2, 14).be(R1, 16).and_(R1, 0xFFF)
    a.stx("dw", FP, _SLOTS["vlan"], R1)
    a.ldx("h", R5, R2, 16).be(R5, 16)
    a.add(R2, 4)  # from here on, offsets are as in an untagged frame
    a.add(R7, 4)
    a.label("l3")
    a.stx("dw", FP, _SLOTS["etype"], R5)
    a.jmp("==", R5, 0x0800, "ipv4")
    a.jmp("==", R5, 0x86DD, "ipv6")
    a.ja("parsed")

    # IPv4: header at r2 + 14.
    a.label("ipv4")
    a.mov(R4, R2).add(R4, 34)
    a.jmp(">", R4, R3, "parsed")
    a.ldx("b", R1, R2, 23).stx("dw", FP, _SLOTS["proto"], R1)
    a.ldx("w", R1, R2, 26).stx("dw", FP, _SLOTS["src4"], R1)
    a.ldx("w", R1, R2, 30).stx("dw", FP, _SLOTS["dst4"], R1)
    # Stamp: last STAMP_LEN (20) bytes of the L3 packet -> stream id (u16) at l3 + tot_len - 16.
    a.ldx("h", R1, R2, 16).be(R1, 16)
    a.jmp("<", R1, 20 + STAMP_LEN, "l4_v4")
    if frags_supported():
        a.sub(R1, STAMP_LEN)
        _stamp_anywhere(a, "v4")
    else:
        a.jmp(">", R1, _MAX_L3, "l4_v4")  # bounds the variable offset for the verifier (MAX_PACKET_OFF)
        a.sub(R1, STAMP_LEN)
        a.mov(R4, R2).add(R4, R1)
        _stamp(a, "v4")
    a.label("l4_v4")
    a.ldx("b", R1, R2, 14).and_(R1, 0x0F).lsh(R1, 2)   # IHL in bytes (0..60)
    a.add(R2, R1)                                        # r2 + 14 + 20 = L4 for IHL 5
    a.ja("l4")

    # IPv6: header at r2 + 14, no extension-header walk.
    a.label("ipv6")
    a.mov(R4, R2).add(R4, 54)
    a.jmp(">", R4, R3, "parsed")
    a.ldx("b", R1, R2, 20).stx("dw", FP, _SLOTS["proto"], R1)
    for i in range(4):
        a.ldx("w", R1, R2, 22 + 4 * i).stx("dw", FP, _SLOTS["src6_%d" % i], R1)
        a.ldx("w", R1, R2, 38 + 4 * i).stx("dw", FP, _SLOTS["dst6_%d" % i], R1)
    a.ldx("h", R1, R2, 18).be(R1, 16)   # payload length; L3 ends at l3 + 40 + plen
    a.jmp("<", R1, STAMP_LEN, "l4_v6")
    if frags_supported():
        a.add(R1, 40 - STAMP_LEN)
        _stamp_anywhere(a, "v6")
    else:
        a.jmp(">", R1, _MAX_L3, "l4_v6")
        a.add(R1, 40 - STAMP_LEN)
        a.mov(R4, R2).add(R4, R1)
        _stamp(a, "v6")
    a.label("l4_v6")
    a.add(R2, 40)                        # so L4 = r2 + 14 as for IPv4 below

    # L4 ports at r2 + 14 (after the per-family adjustment above).
    a.label("l4")
    a.ldx("dw", R1, FP, _SLOTS["proto"])
    a.jmp("==", R1, 6, "ports")
    a.jmp("==", R1, 17, "ports")
    a.ja("parsed")
    a.label("ports")
    a.mov(R4, R2).add(R4, 18)
    a.jmp(">", R4, R3, "parsed")
    a.ldx("h", R1, R2, 14).be(R1, 16).stx("dw", FP, _SLOTS["sport"], R1)
    a.ldx("h", R1, R2, 16).be(R1, 16).stx("dw", FP, _SLOTS["dport"], R1)
    a.label("parsed")


# Stack slots of the multi-buffer stamp read: the packet pointers kept across the helper call, and
# the 8 bytes it copies (below the field slots, which end at -136).
_SPILL_DATA, _SPILL_END, _STAMP_BUF = -144, -152, -160


def _stamp_anywhere(a, tag):
    """r1 = offset of the stamp in the L3 packet, r7 = L2 length: read the stamp's first 8 bytes with
    ``xdp_load_bytes`` (they may lie in a later fragment of a multi-buffer frame), check the magic and
    store the stream id. Keeps r2/r3 (data, data_end) across the call; an offset past the frame
    (a lying length field) fails the copy, so no stream is recorded."""
    a.add(R1, R7)
    a.stx("dw", FP, _SPILL_DATA, R2).stx("dw", FP, _SPILL_END, R3)
    a.mov(R2, R1).mov(R1, R6).mov(R3, FP).add(R3, _STAMP_BUF).mov(R4, 8)
    a.call("xdp_load_bytes")
    a.ldx("dw", R2, FP, _SPILL_DATA).ldx("dw", R3, FP, _SPILL_END)
    a.jmp("!=", R0, 0, "nostamp_" + tag)
    a.ldx("w", R1, FP, _STAMP_BUF)
    a.jmp("!=", R1, _STAMP_MAGIC_LE, "nostamp_" + tag)
    a.ldx("h", R1, FP, _STAMP_BUF + 4).be(R1, 16)
    a.stx("dw", FP, _SLOTS["stream"], R1)
    a.label("nostamp_" + tag)


def _stamp(a, tag):
    """r4 = start of the stamp minus 14 (a packet pointer); check bounds and magic, store the stream id.

    Reads the stamp's first 8 bytes: magic (u32 at +0) and stream id (u16 at +4)."""
    a.mov(R5, R4).add(R5, 14 + 8)
    a.jmp(">", R5, R3, "nostamp_" + tag)
    a.ldx("w", R1, R4, 14)
    a.jmp("!=", R1, _STAMP_MAGIC_LE, "nostamp_" + tag)
    a.ldx("h", R1, R4, 18).be(R1, 16)
    a.stx("dw", FP, _SLOTS["stream"], R1)
    a.label("nostamp_" + tag)


def _require(a, slot, value, fail, mask=None):
    """Jump to ``fail`` unless ``(slot & mask) == value`` (64-bit compare, constants of any width)."""
    a.ldx("dw", R1, FP, _SLOTS[slot])
    if mask is not None:
        a.ld_imm64(R2, mask).and_(R1, R2)
    if 0 <= value < 1 << 31:
        a.jmp("!=", R1, value, fail)
    else:
        a.ld_imm64(R2, value).jmp("!=", R1, R2, fail)


def _err(i, path, msg, value):
    field = "rules[%d].%s" % (i, path)
    return ConfigurationError("filter rule %d: field %r: %s (got %r)" % (i, path, msg, value), field=field, value=value)


def _port(i, path, v):
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 65535:
        raise _err(i, path, "must be a port number 0..65535", v)
    return v


def _net(i, path, v, version):
    try:
        net = ipaddress.ip_network(v, strict=False) if isinstance(v, str) else None
    except ValueError:
        net = None
    if net is None or net.version != version:
        raise _err(i, path, "must be an IPv%d address or 'addr/len' prefix string" % version, v)
    return net


def validate_rules(rules, default="pass"):
    """Check ``rules`` and ``default``; return a normalised list of ``(checks, action)``.

    Each rule is ``{"match": {...}, "action": "drop"}`` with match fields::

        eth:   {type: 0x0800, vlan: 42}           # ethertype after one VLAN tag; VLAN id
        ipv4:  {src: "198.18.0.1", dst: "198.18.0.0/15", proto: 17 | "udp"}
        ipv6:  {src: "2001:2::1", dst: "2001:2::/48", proto: ...}
        udp:   {sport: 9, dport: 9}   (or tcp:)   # also requires that protocol
        stream: 7                                 # the netring stamp's stream id (0..65535)

    An empty ``ipv4: {}`` matches any IPv4 frame (likewise ipv6/udp/tcp). Actions: pass,
    drop, aborted, tx. Errors are :class:`ConfigurationError` naming the rule index and field.
    """
    _action(default, "default")
    if not isinstance(rules, (list, tuple)):
        raise ConfigurationError("filter rules must be a list of {'match': ..., 'action': ...}, not %r" % (rules,),
                                 field="rules", value=rules)
    if len(rules) > MAX_RULES:
        raise ConfigurationError("filter takes at most %d rules, got %d" % (MAX_RULES, len(rules)),
                                 field="rules", value=len(rules))
    out = []
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):
            raise _err(i, "", "a rule must be a dict with 'match' and 'action'", rule)
        extra = set(rule) - {"match", "action", "name"}
        if extra:
            raise _err(i, sorted(extra)[0], "unknown key; a rule has match, action (and optional name)", rule[sorted(extra)[0]])
        if "action" not in rule:
            raise _err(i, "action", "missing; use pass, drop, aborted or tx", None)
        if rule["action"] not in ("pass", "drop", "aborted", "tx"):
            raise _err(i, "action", "must be pass, drop, aborted or tx", rule["action"])
        match = rule.get("match", {})
        if not isinstance(match, dict):
            raise _err(i, "match", "must be a dict of match fields", match)
        checks = []  # (slot, value, mask)
        unknown = set(match) - {"eth", "ipv4", "ipv6", "udp", "tcp", "stream"}
        if unknown:
            k = sorted(unknown)[0]
            raise _err(i, "match." + k, "unknown match field; use eth, ipv4, ipv6, udp, tcp, stream", match[k])
        if "ipv4" in match and "ipv6" in match:
            raise _err(i, "match.ipv6", "a rule cannot match both ipv4 and ipv6", match["ipv6"])
        if "udp" in match and "tcp" in match:
            raise _err(i, "match.tcp", "a rule cannot match both udp and tcp", match["tcp"])
        eth = match.get("eth", {})
        if not isinstance(eth, dict) or set(eth) - {"type", "vlan"}:
            raise _err(i, "match.eth", "must be a dict with type and/or vlan", eth)
        if "type" in eth:
            t = eth["type"]
            if not isinstance(t, int) or isinstance(t, bool) or not 0 <= t <= 0xFFFF:
                raise _err(i, "match.eth.type", "must be an ethertype 0..0xffff", t)
            checks.append(("etype", t, None))
        if "vlan" in eth:
            v = eth["vlan"]
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 4095:
                raise _err(i, "match.eth.vlan", "must be a VLAN id 0..4095", v)
            checks.append(("vlan", v, None))
        proto = None
        for fam, version, etype in (("ipv4", 4, 0x0800), ("ipv6", 6, 0x86DD)):
            if fam not in match:
                continue
            ip = match[fam] if match[fam] is not None else {}
            if not isinstance(ip, dict) or set(ip) - {"src", "dst", "proto"}:
                raise _err(i, "match." + fam, "must be a dict with src, dst and/or proto", ip)
            if "type" in eth and eth["type"] != etype:
                raise _err(i, "match.eth.type", "contradicts match.%s (ethertype 0x%04x)" % (fam, etype), eth["type"])
            checks.append(("etype", etype, None))
            for side in ("src", "dst"):
                if side in ip:
                    net = _net(i, "match.%s.%s" % (fam, side), ip[side], version)
                    addr = net.network_address.packed
                    mask = net.netmask.packed
                    for w in range(len(addr) // 4):
                        m = int.from_bytes(mask[4 * w:4 * w + 4], "little")
                        if m == 0:
                            continue
                        slot = "%s4" % side if version == 4 else "%s6_%d" % (side, w)
                        val = int.from_bytes(addr[4 * w:4 * w + 4], "little")
                        checks.append((slot, val, None if m == 0xFFFFFFFF else m))
            if "proto" in ip:
                p = ip["proto"]
                p = _PROTOS.get(p, p)
                if not isinstance(p, int) or isinstance(p, bool) or not 0 <= p <= 255:
                    raise _err(i, "match.%s.proto" % fam, "must be 0..255 or one of %s" % ", ".join(_PROTOS), ip["proto"])
                proto = p
                checks.append(("proto", p, None))
        for l4, number in (("udp", 17), ("tcp", 6)):
            if l4 not in match:
                continue
            ports = match[l4] if match[l4] is not None else {}
            if not isinstance(ports, dict) or set(ports) - {"sport", "dport"}:
                raise _err(i, "match." + l4, "must be a dict with sport and/or dport", ports)
            if proto is not None and proto != number:
                raise _err(i, "match.%s" % l4, "contradicts the rule's ip proto %d" % proto, ports)
            checks.append(("proto", number, None))
            for side in ("sport", "dport"):
                if side in ports:
                    checks.append((side, _port(i, "match.%s.%s" % (l4, side), ports[side]), None))
        if "stream" in match:
            s = match["stream"]
            if not isinstance(s, int) or isinstance(s, bool) or not 0 <= s <= STREAM_ID_MAX:
                raise _err(i, "match.stream", "must be a stream id 0..%d (the stamp holds 16 bits)"
                           % STREAM_ID_MAX, s)
            checks.append(("stream", s, None))
        out.append((checks, ACTIONS[rule["action"]]))
    return out


def compile_rules(rules, default, cmap):
    """Assemble the ``filter`` program for validated ``rules`` (see :func:`validate_rules`)."""
    compiled = validate_rules(rules, default)
    a = Asm()
    _prologue(a)
    _parse(a)
    for i, (checks, action) in enumerate(compiled):
        a.label("rule_%d" % i)
        nxt = "rule_%d" % (i + 1)
        for slot, value, mask in checks:
            _require(a, slot, value, nxt, mask)
        a.mov(R7, action).mov(R8, _NACT + i).ja("act")
        if not checks:  # matches everything: later rules and the default are unreachable
            break
    else:
        a.label("rule_%d" % len(compiled))
        a.mov(R7, ACTIONS[default]).mov(R8, -1)
    a.label("act")
    a.jmp("!=", R7, XDP_TX, "count")
    _swap_macs(a, "filter")
    a.ja("count")
    _epilogue(a, cmap, with_rule=True)
    return a


def _filter(rules=(), default="pass"):
    validate_rules(rules, default)  # fail before creating any kernel object
    rules = list(rules)
    cmap = _counters_map(len(rules))
    try:
        a = compile_rules(rules, default, cmap)
        return BuiltinProgram.load(a, name="nr_filter", maps={"counters": cmap}, rules=rules, frags=frags_supported())
    except BaseException:
        cmap.close()
        raise


def builtin(name, **options):
    """Load the built-in XDP program ``name`` (one of :data:`BUILTINS`) and return it as a :class:`BuiltinProgram`.

    Options: ``redirect``: ``target_ifindex`` (required), ``fallback``, ``netns``; ``xsk``: ``queues``;
    ``filter``: ``rules``, ``default``. The program's ``counters()`` is readable at once.
    """
    makers = {
        "pass": lambda: _fixed(XDP_PASS, "nr_pass"),
        "drop": lambda: _fixed(XDP_DROP, "nr_drop"),
        "aborted": lambda: _fixed(XDP_ABORTED, "nr_aborted"),
        "tx": _tx, "redirect": _redirect, "xsk": _xsk, "filter": _filter,
    }
    if not isinstance(name, str) or name not in makers:
        raise ConfigurationError("unknown built-in XDP program %r; use one of %s" % (name, ", ".join(BUILTINS)),
                                 field="program", value=name)
    try:
        return makers[name](**options)
    except TypeError as exc:
        if "argument" not in str(exc):
            raise
        raise ConfigurationError("built-in %r: %s" % (name, exc), field="options", value=sorted(options)) from None
