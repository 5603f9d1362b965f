"""netring — packet I/O for Python at kernel-ring speed.

AF_PACKET TPACKET_V3 capture (:class:`Capture`), TX-ring injection (:class:`Injector`),
network namespaces (:mod:`netring.netns`), the frame stamp (:mod:`netring.stamp`) and its C
checker (:class:`SeqChecker`, :mod:`netring.check`), eBPF/XDP (:mod:`netring.bpf`, :mod:`netring.xdp`,
:mod:`netring.netdev`) and one error hierarchy (:mod:`netring.errors`). Hot paths are C compiled by
cffi (``netring._core``).
"""
from .errors import (  # noqa: F401
    ConfigurationError,
    FrameTooLargeError,
    InterfaceNotFoundError,
    NamespaceNotFoundError,
    NetringError,
    NetringPermissionError,
    ResourceBusyError,
    ScenarioError,
    UnsupportedError,
)
from .netns import NetNS  # noqa: F401
from .capture import (  # noqa: F401
    Capture,
    CaptureStats,
    Direction,
    Fanout,
    Packet,
    PacketBatch,
    RingBusyError,
    StaleBatchError,
    ViewsAliveError,
    Vlan,
)
from .inject import Injector, NotBytesError, TxSlot, TxStalledError  # noqa: F401
from .check import SeqChecker, StreamCounts  # noqa: F401

__version__ = "0.1.0"
