"""netring — packet I/O for Python at kernel-ring speed.

AF_PACKET TPACKET_V3 capture (:class:`Capture`), TX-ring injection (:class:`Injector`), AF_XDP
sockets (:class:`XdpSocket`),
network namespaces (:mod:`netring.netns`), the frame stamp (:mod:`netring.stamp`) and its C
checker (:class:`SeqChecker`, :mod:`netring.check`), asyncio adapters (:mod:`netring.aio`), a forwarding node with
link impairment (:class:`Bridge`), pcap/pcapng files (:mod:`netring.pcap`),
eBPF/XDP (:mod:`netring.bpf`, :mod:`netring.xdp`,
:mod:`netring.netdev`) and one error hierarchy (:mod:`netring.errors`). Hot paths are C compiled by
cffi (``netring._core``).

``import netring`` loads only the error hierarchy: the classes below are imported from their
modules (and the C core loaded) on first use, so a program — or the auto-loaded pytest plugin —
that only needs :mod:`netring.errors` or :mod:`netring.stamp` pays nothing for the rings.
"""
import importlib

from .errors import (  # noqa: F401
    ConfigurationError,
    FrameTooLargeError,
    InterfaceNotFoundError,
    NamespaceNotFoundError,
    NetringError,
    NetringPermissionError,
    PcapError,
    ResourceBusyError,
    ScenarioError,
    TooManyOpenFilesError,
    UnsupportedError,
    ViewsAliveError,
)

__version__ = "0.1.0"

#: Public name → the module that defines it (imported on first attribute access).
_LAZY = {
    "NetNS": "netns",
    "Capture": "capture", "CaptureStats": "capture", "Direction": "capture", "Fanout": "capture",
    "Packet": "capture", "PacketBatch": "capture", "RingBusyError": "capture", "StaleBatchError": "capture",
    "Vlan": "capture",
    "Injector": "inject", "NotBytesError": "inject", "TxSlot": "inject", "TxStalledError": "inject",
    "SeqChecker": "check", "StreamCounts": "check",
    "XdpInjector": "xdp_inject",
    "XdpSocket": "xsk", "XdpBatch": "xsk", "XdpPacket": "xsk", "XdpStats": "xsk",
    "Bridge": "bridge", "BridgeStats": "bridge", "LinkStats": "bridge", "Impairment": "bridge",
}

#: Submodules reachable as attributes (``netring.aio``), imported on first access; none loads the C core.
_SUBMODULES = {"aio", "pcap"}

__all__ = sorted(["ConfigurationError", "FrameTooLargeError", "InterfaceNotFoundError", "NamespaceNotFoundError",
                  "NetringError", "NetringPermissionError", "PcapError", "ResourceBusyError", "ScenarioError",
                  "TooManyOpenFilesError", "UnsupportedError", "ViewsAliveError", *_LAZY, *_SUBMODULES])


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module("." + name, __name__)  # the import binds it in globals()
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError("module 'netring' has no attribute %r" % name)
    value = getattr(importlib.import_module("." + module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)
