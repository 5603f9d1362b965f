"""The scenario model: what one runnable scenario (one matrix combination) holds, after validation.

Built by :mod:`netring_testkit.scenario.semantics` from a schema-valid, substituted scenario
mapping; read by the runner and the verdict. Plain dataclasses: no I/O, no validation here.
They compare by identity (``eq=False``), so each stays hashable and equal only to itself.
"""
import dataclasses
from typing import Any, Dict, List, Optional, Union

from .values import CountExpr

__all__ = ["VIAS", "Stream", "XdpSpec", "CaptureSpec", "StreamExpect", "Scenario", "BUILTIN_PROGRAMS",
           "DEFAULT_TIMEOUT", "DEFAULT_QUIET", "DEFAULT_COUNT"]

#: Built-in XDP programs a scenario may name in ``program:``.
BUILTIN_PROGRAMS = ("pass", "drop", "aborted", "tx", "redirect", "filter")

#: Senders a stream may ask for in ``traffic[].via``.
VIAS = ("ring", "xdp", "auto", "afxdp")

#: Seconds a scenario may run when it gives no ``timeout``.
DEFAULT_TIMEOUT = 30.0
#: Seconds of silence after the last frame before captures are read, when no ``quiet`` is given.
DEFAULT_QUIET = 0.5
#: Frames a stream sends when it gives no ``count``.
DEFAULT_COUNT = 10000


@dataclasses.dataclass(eq=False)
class Stream:
    """One stamped traffic stream of a scenario.

    ``name``, ``stream_id`` (its index), ``src``/``dst`` (endpoint strings), ``count``,
    ``rate_pps`` (None = as fast as the ring allows), ``frame`` (header fields: ``eth``, one of
    ``ipv4``/``ipv6``, one of ``udp``/``tcp``/``icmp``), ``sizes`` (the frame sizes cycled
    frame by frame); derived from ``frame``: ``l3`` and ``l4`` (protocol names) and ``vlan``
    (the ``eth.vlan`` tag or None). ``via``: the sender asked for (:data:`VIAS`; ``auto`` picks
    ``xdp`` where its preconditions hold, else ``ring``, see :mod:`netring_testkit.senders`);
    ``where``: ``file:line:col: scenarios[i].traffic[j].via``, the prefix of a run-time error about it.
    ``by_content``: a replayed trace sent untouched (``frame: {pcap: ..., stamp: false}``), counted by
    exact content; ``timing``: for ``rate: pcap``, the trace's :class:`netring_testkit.replay.Timing`
    (frames sent on the trace's own schedule; ``rate_pps`` is then its average rate), else None.
    """

    name: str
    stream_id: int
    src: str
    dst: str
    count: int
    rate_pps: Optional[int]
    frame: Dict[str, Any]
    sizes: List[int]
    l3: str = dataclasses.field(init=False)
    l4: str = dataclasses.field(init=False)
    vlan: Any = dataclasses.field(init=False)
    via: str = "auto"
    where: str = ""
    by_content: bool = False
    timing: Any = None

    def __post_init__(self):
        self.l3 = "ipv6" if "ipv6" in self.frame else "ipv4"
        self.l4 = next((k for k in ("udp", "tcp", "icmp") if k in self.frame), "udp")
        self.vlan = (self.frame.get("eth") or {}).get("vlan")

    def __repr__(self):
        return "Stream(%s #%d %s->%s x%d)" % (self.name, self.stream_id, self.src, self.dst, self.count)


@dataclasses.dataclass(eq=False)
class XdpSpec:
    """An XDP attachment: ``attach`` endpoint, ``program`` (built-in name or ``{object, program}``),
    ``mode`` (native|generic|auto), ``options`` for the built-in (``target``, ``rules``, ``default``…),
    ``peer_pass``: for ``tx``/``redirect`` in native mode, attach ``pass`` on the receiving veth end
    when it runs no program (default True; see :func:`netring_testkit.senders.plan_peer_passes`)."""

    attach: str
    program: Union[str, Dict[str, str]]
    mode: str
    options: Dict[str, Any]
    peer_pass: bool = True

    @property
    def builtin(self):
        """True for a built-in program (a string name)."""
        return isinstance(self.program, str)

    def __repr__(self):
        return "XdpSpec(%s %s %s)" % (self.attach, self.program, self.mode)


@dataclasses.dataclass(eq=False)
class CaptureSpec:
    """A capture point: ``on`` endpoint, ``via`` (afpacket|afxdp), ring/socket ``options``
    (afpacket: ``block_size``, ``block_count``; afxdp: ``queue``)."""

    on: str
    via: str
    options: Dict[str, Any]

    def __repr__(self):
        return "CaptureSpec(%s via %s)" % (self.on, self.via)


@dataclasses.dataclass(eq=False)
class StreamExpect:
    """What is expected of one stream: ``delivered`` (:class:`CountExpr`), ``order`` (strict|any),
    ``payload`` (intact|any) and ``at`` (the endpoint whose capture counts)."""

    delivered: CountExpr
    order: str
    payload: str
    at: Optional[str]


@dataclasses.dataclass(repr=False, eq=False)
class Scenario:
    """One runnable scenario (one matrix combination).

    ``name`` (as written), ``id`` (``name[k=v-…]``), ``params`` (the matrix combination),
    ``file``/``line``, ``description``, ``markers``, ``requires`` (dict), ``topology`` (the
    spec handed to :class:`netring_testkit.Topology` as written), ``xdp`` (list of
    :class:`XdpSpec`), ``streams`` (list of :class:`Stream`), ``captures`` (list of
    :class:`CaptureSpec`), ``expect`` (dict stream name → :class:`StreamExpect`),
    ``expect_xdp`` / ``expect_interface`` (endpoint → {counter: :class:`CountExpr`}),
    ``expect_unexpected`` (:class:`CountExpr` or None), ``timeout``/``quiet`` (seconds),
    ``seed``, ``spec`` (the substituted mapping), ``expect_maps`` (endpoint → map name →
    {integer key: :class:`CountExpr`}, for programs of the user's own objects).
    """

    name: str
    id: str
    params: Dict[str, Any]
    file: str
    line: int
    description: str
    markers: List[str]
    requires: Dict[str, Any]
    topology: Dict[str, Any]
    xdp: List[XdpSpec]
    streams: List[Stream]
    captures: List[CaptureSpec]
    expect: Dict[str, StreamExpect]
    expect_xdp: Dict[str, Dict[str, CountExpr]]
    expect_interface: Dict[str, Dict[str, CountExpr]]
    expect_unexpected: Optional[CountExpr]
    timeout: float
    quiet: float
    seed: int
    spec: Dict[str, Any]
    expect_maps: Dict[str, Dict[str, Dict[int, CountExpr]]] = dataclasses.field(default_factory=dict)

    @property
    def total_frames(self):
        """Frames injected by all streams together (what ``all`` means in xdp/interface expectations)."""
        return sum(s.count for s in self.streams)

    def __repr__(self):
        return "Scenario(%s from %s:%s)" % (self.id, self.file, self.line)
