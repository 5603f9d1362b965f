"""XDP feature queries through the ``netdev`` generic-netlink family (kernel 6.3+).

``features(ifname, netns=None)`` → :class:`NetdevInfo` with the XDP feature names a device
advertises (``basic``, ``redirect``, ``ndo-xmit``, ``xsk-zerocopy``, ``hw-offload``, ``rx-sg``,
``ndo-xmit-sg``), the zero-copy segment limit, XDP RX metadata and AF_XDP TX features.
``dump(netns=None)`` returns them for every device of the namespace.

pyroute2 has no message class for this family, so :class:`netdevmsg` declares one (an ``nla_map``,
as pyroute2's own generic-netlink modules do); the requests go through :mod:`netring._netlink`, on a
socket opened inside the namespace. Note (FIELD-NOTES): on veth, ``ndo-xmit`` appears only once the
*peer* has an XDP program (or GRO).
"""
import collections
import ctypes
import errno
import fcntl
import os
import socket
import struct

from pyroute2.netlink import genlmsg

from . import _netlink
from .errors import ConfigurationError, InterfaceNotFoundError, UnsupportedError, from_oserror
from .netns import resolve

__all__ = ["features", "dump", "operstates", "rx_queues", "mtu", "veth_peer", "VethPeer", "decode_features", "NetdevInfo", "netdevmsg", "XDP_FEATURES", "RX_METADATA_FEATURES", "XSK_FEATURES"]

#: Bit names, in netdev.yaml order.
XDP_FEATURES = ("basic", "redirect", "ndo-xmit", "xsk-zerocopy", "hw-offload", "rx-sg", "ndo-xmit-sg")
RX_METADATA_FEATURES = ("timestamp", "hash", "vlan-tag")
XSK_FEATURES = ("tx-timestamp", "tx-checksum", "tx-launch-time-fifo")

#: ``NetdevInfo(ifindex, xdp_features, xdp_zc_max_segs, rx_metadata, xsk_features, raw)``;
#: the feature fields are frozensets of names, ``raw`` the bitmasks as ints by attribute name.
NetdevInfo = collections.namedtuple("NetdevInfo", "ifindex xdp_features xdp_zc_max_segs rx_metadata xsk_features raw")

#: ``VethPeer(ifname, ifindex, mac, same_netns)``: the other end of a veth as :func:`veth_peer` sees it.
VethPeer = collections.namedtuple("VethPeer", "ifname ifindex mac same_netns")

_CMD_DEV_GET = 1  # NETDEV_CMD_DEV_GET (include/uapi/linux/netdev.h)
_SIOCETHTOOL = 0x8946
_ETHTOOL_GCHANNELS = 0x3C  # struct ethtool_channels: cmd, max_rx, max_tx, max_other, max_combined, rx, tx, other, combined


class netdevmsg(genlmsg):
    """A message of the ``netdev`` generic-netlink family (``Documentation/netlink/specs/netdev.yaml``).

    Attribute names are the uapi ``NETDEV_A_DEV_*`` ones; the feature attributes are bitmasks
    (:data:`XDP_FEATURES`, :data:`RX_METADATA_FEATURES`, :data:`XSK_FEATURES` name their bits).
    """

    # Positional: the index is the attribute type (NETDEV_A_DEV_IFINDEX = 1, ...).
    nla_map = (
        ("NETDEV_A_DEV_UNSPEC", "none"),
        ("NETDEV_A_DEV_IFINDEX", "uint32"),
        ("NETDEV_A_DEV_PAD", "none"),
        ("NETDEV_A_DEV_XDP_FEATURES", "uint64"),
        ("NETDEV_A_DEV_XDP_ZC_MAX_SEGS", "uint32"),
        ("NETDEV_A_DEV_XDP_RX_METADATA_FEATURES", "uint64"),
        ("NETDEV_A_DEV_XSK_FEATURES", "uint64"),
    )


def _bits(value, names):
    return frozenset(n for i, n in enumerate(names) if value >> i & 1) | frozenset(
        "bit%d" % i for i in range(len(names), 64) if value >> i & 1)


def decode_features(value):
    """The names of the XDP feature bits set in ``value`` (an ``xdp-features`` bitmask), as a frozenset
    (``bitN`` for bits this module has no name for)."""
    return _bits(value, XDP_FEATURES)


def _info(msg):
    """A :class:`NetdevInfo` from one ``netdevmsg`` reply (absent attributes count as 0)."""
    def u(name):
        return msg.get_attr(name) or 0
    raw = {"xdp-features": u("NETDEV_A_DEV_XDP_FEATURES"),
           "xdp-rx-metadata-features": u("NETDEV_A_DEV_XDP_RX_METADATA_FEATURES"),
           "xsk-features": u("NETDEV_A_DEV_XSK_FEATURES")}
    return NetdevInfo(u("NETDEV_A_DEV_IFINDEX"), _bits(raw["xdp-features"], XDP_FEATURES),
                      u("NETDEV_A_DEV_XDP_ZC_MAX_SEGS"),
                      _bits(raw["xdp-rx-metadata-features"], RX_METADATA_FEATURES),
                      _bits(raw["xsk-features"], XSK_FEATURES), raw)


def _family_id():
    try:
        return _netlink.genl_family_id("netdev")
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise UnsupportedError("this kernel (%s) has no 'netdev' generic-netlink family; XDP feature queries "
                                   "need Linux 6.3 or newer" % os.uname().release) from None
        raise from_oserror(exc, "resolving the 'netdev' generic-netlink family") from None


def _dev_get(ifindex=None):
    """NETDEV_CMD_DEV_GET here: the reply for ``ifindex``, or a dump of every device when None."""
    msg = netdevmsg()
    msg["cmd"] = _CMD_DEV_GET
    msg["version"] = 1
    if ifindex is not None:
        msg["attrs"] = [("NETDEV_A_DEV_IFINDEX", ifindex)]
    return _netlink.genl_request(_family_id(), msg, dump=ifindex is None)


def _features_here(ifname, ns):
    """Inside the namespace: resolve ``ifname`` (a name or an ifindex) and ask for its features."""
    if isinstance(ifname, int):
        idx = ifname
    else:
        try:
            idx = socket.if_nametoindex(ifname)  # resolves in this thread's namespace
        except OSError:
            raise InterfaceNotFoundError(ifname, ns) from None
    try:
        return _info(_dev_get(idx)[0])
    except OSError as exc:
        if exc.errno in (errno.ENODEV, errno.ENOENT):
            raise InterfaceNotFoundError(ifname, ns) from None
        raise from_oserror(exc, "netlink netdev dev-get", ifname=ifname, netns=ns) from None


def _dump_here(ns):
    try:
        return {i.ifindex: i for i in map(_info, _dev_get())}
    except OSError as exc:
        raise from_oserror(exc, "netlink netdev dev-get dump", netns=ns) from None


def features(ifname, netns=None):
    """The XDP features of interface ``ifname`` (name, or ifindex 1..2**31-1) in ``netns``, as a :class:`NetdevInfo`."""
    if isinstance(ifname, bool) or not (isinstance(ifname, int) and 0 < ifname < 1 << 31
                                        or isinstance(ifname, str) and 0 < len(ifname) < 16 and "\0" not in ifname):
        raise ConfigurationError("interface must be a name (1..15 characters) or an ifindex 1..2**31-1, not %r"
                                 % (ifname,), field="ifname", value=ifname)
    return _in_namespace(netns, _features_here, ifname)


def dump(netns=None):
    """``{ifindex: NetdevInfo}`` for every device in ``netns``."""
    return _in_namespace(netns, _dump_here)


def _in_namespace(netns, fn, *args):
    """Run ``fn(*args, ns)`` inside ``netns`` (one helper-thread hop; here for None)."""
    ns, owned = resolve(netns)
    try:
        return fn(*args, ns) if ns is None else ns.run(fn, *args, ns)
    finally:
        if owned:
            ns.close()


def operstates():
    """``{ifname: (ifindex, operstate)}`` of every link in the calling thread's namespace (``"UP"``,
    ``"DOWN"``, ``"UNKNOWN"``…, IFLA_OPERSTATE), from one RTM_GETLINK dump that reads three fields per
    link — cheap enough to poll. Run it inside a namespace with :meth:`netring.netns.NetNS.run`."""
    try:
        return _netlink.operstates()
    except OSError as exc:   # incl. TimeoutError: no answer from the kernel
        raise from_oserror(exc, "reading link states (netlink RTM_GETLINK)") from None


def _veth_peer_here(ifname, ns):
    try:
        idx = socket.if_nametoindex(ifname)
    except OSError:
        raise InterfaceNotFoundError(ifname, ns) from None
    try:
        msg, kind, peer = _netlink.link_and_veth_peer(idx)
    except OSError as exc:
        raise from_oserror(exc, "reading link %s (netlink RTM_GETLINK)" % ifname, ifname=ifname, netns=ns) from None
    if kind != "veth" or peer is None:
        return None
    return VethPeer(peer.get_attr("IFLA_IFNAME"), peer["index"], peer.get_attr("IFLA_ADDRESS"),
                    msg.get_attr("IFLA_LINK_NETNSID") is None)


def veth_peer(ifname, netns=None):
    """The other end of veth ``ifname`` in ``netns`` as a :class:`VethPeer` (its name, ifindex and MAC, and
    whether it is in the same namespace), or None when ``ifname`` is no veth or its peer cannot be read
    (a namespace without an id here, kernels before 4.20)."""
    return _in_namespace(netns, _veth_peer_here, ifname)


def _rx_queues_here(ifname, ns):
    """Inside the namespace: the active RX queue count of ``ifname`` (rx + combined channels), or None."""
    buf = bytearray(struct.pack("9I", _ETHTOOL_GCHANNELS, *([0] * 8)))
    ifr = bytearray(struct.pack("16sP", ifname.encode(), 0).ljust(40, b"\0"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        cbuf = (ctypes.c_char * len(buf)).from_buffer(buf)
        struct.pack_into("P", ifr, 16, ctypes.addressof(cbuf))
        try:
            fcntl.ioctl(s, _SIOCETHTOOL, ifr)
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                raise InterfaceNotFoundError(ifname, ns) from None
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):
                return None   # the driver does not report channels
            raise from_oserror(exc, "ETHTOOL_GCHANNELS on %s" % ifname, ifname=ifname, netns=ns) from None
        finally:
            del cbuf
    channels = struct.unpack("9I", buf)
    return channels[5] + channels[8]   # rx_count + combined_count


def rx_queues(ifname, netns=None):
    """The number of RX queues ``ifname`` in ``netns`` has *active* (what an AF_XDP bind or an XDP program's
    ``rx_queue_index`` can use): its rx + combined channels from ``ETHTOOL_GCHANNELS``, as ``ethtool -l``
    shows them — not ``numrxqueues`` (IFLA_NUM_RX_QUEUES, the most the device could have: a veth made
    with 2 has 1 active until ``ethtool -L IF rx 2``). None when the driver reports no channels."""
    if not (isinstance(ifname, str) and 0 < len(ifname) < 16 and "\0" not in ifname):
        raise ConfigurationError("interface must be a name of 1..15 characters, not %r" % (ifname,),
                                 field="ifname", value=ifname)
    return _in_namespace(netns, _rx_queues_here, ifname)


def _mtu_here(ifname, ns):
    try:
        idx = socket.if_nametoindex(ifname)
    except OSError:
        raise InterfaceNotFoundError(ifname, ns) from None
    try:
        return _netlink.links(idx)[0].get_attr("IFLA_MTU")
    except OSError as exc:
        raise from_oserror(exc, "reading link %s (netlink RTM_GETLINK)" % ifname, ifname=ifname, netns=ns) from None


def mtu(ifname, netns=None):
    """The MTU of ``ifname`` in ``netns`` (IFLA_MTU, over netlink: works whatever socket the caller holds)."""
    if not (isinstance(ifname, str) and 0 < len(ifname) < 16 and "\0" not in ifname):
        raise ConfigurationError("interface must be a name of 1..15 characters, not %r" % (ifname,),
                                 field="ifname", value=ifname)
    return _in_namespace(netns, _mtu_here, ifname)
