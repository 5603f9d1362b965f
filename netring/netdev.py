"""XDP feature queries through the ``netdev`` generic-netlink family (kernel 6.3+).

``features(ifname, netns=None)`` → :class:`NetdevInfo` with the XDP feature names a device
advertises (``basic``, ``redirect``, ``ndo-xmit``, ``xsk-zerocopy``, ``hw-offload``, ``rx-sg``,
``ndo-xmit-sg``), the zero-copy segment limit, XDP RX metadata and AF_XDP TX features.
``dump(netns=None)`` returns them for every device of the namespace.

pyroute2 has no class for this family, and the protocol is small, so this module speaks
generic netlink directly over a socket opened inside the namespace. Note (FIELD-NOTES): on
veth, ``ndo-xmit`` appears only once the *peer* has an XDP program (or GRO).
"""
import collections
import errno
import os
import socket
import struct

from .errors import ConfigurationError, InterfaceNotFoundError, UnsupportedError, from_oserror
from .netns import resolve

__all__ = ["features", "dump", "NetdevInfo", "XDP_FEATURES", "RX_METADATA_FEATURES", "XSK_FEATURES"]

#: Bit names, in netdev.yaml order.
XDP_FEATURES = ("basic", "redirect", "ndo-xmit", "xsk-zerocopy", "hw-offload", "rx-sg", "ndo-xmit-sg")
RX_METADATA_FEATURES = ("timestamp", "hash", "vlan-tag")
XSK_FEATURES = ("tx-timestamp", "tx-checksum", "tx-launch-time-fifo")

#: ``NetdevInfo(ifindex, xdp_features, xdp_zc_max_segs, rx_metadata, xsk_features, raw)``;
#: the feature fields are frozensets of names, ``raw`` the bitmasks as ints by attribute name.
NetdevInfo = collections.namedtuple("NetdevInfo", "ifindex xdp_features xdp_zc_max_segs rx_metadata xsk_features raw")

_NETLINK_GENERIC = 16
_GENL_ID_CTRL = 0x10
_CTRL_CMD_GETFAMILY = 3
_CTRL_ATTR_FAMILY_ID, _CTRL_ATTR_FAMILY_NAME = 1, 2
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_CMD_DEV_GET = 1
_A_IFINDEX, _A_XDP_FEATURES, _A_ZC_MAX_SEGS, _A_RX_META, _A_XSK = 1, 3, 4, 5, 6


def _bits(value, names):
    return frozenset(n for i, n in enumerate(names) if value >> i & 1) | frozenset(
        "bit%d" % i for i in range(len(names), 64) if value >> i & 1)


def _attr(atype, payload):
    n = 4 + len(payload)
    return struct.pack("<HH", n, atype) + payload + b"\0" * ((4 - n % 4) % 4)


def _attrs(buf):
    out, off = {}, 0
    while off + 4 <= len(buf):
        n, t = struct.unpack_from("<HH", buf, off)
        if n < 4:
            break
        out[t & 0x3FFF] = buf[off + 4:off + n]
        off += (n + 3) & ~3
    return out


class _Genl:
    def __init__(self, sock):
        self.sock = sock
        self.seq = 0

    def request(self, ftype, cmd, attrs=b"", dump=False):
        """Send one request; return the list of attribute dicts of the replies."""
        self.seq += 1
        body = struct.pack("<BBH", cmd, 1, 0) + attrs
        flags = _NLM_F_REQUEST | (_NLM_F_DUMP if dump else 0)
        self.sock.send(struct.pack("<IHHII", 16 + len(body), ftype, flags, self.seq, 0) + body)
        replies = []
        for _ in range(10000):  # bounded: one dump fits in far fewer datagrams
            data = self.sock.recv(1 << 16)
            off = 0
            while off + 16 <= len(data):
                n, t, fl, seq, _pid = struct.unpack_from("<IHHII", data, off)
                if n < 16:
                    return replies
                payload = data[off + 16:off + n]
                off += (n + 3) & ~3
                if seq != self.seq:
                    continue
                if t == _NLMSG_ERROR:
                    code = -struct.unpack_from("<i", payload)[0]
                    if code:
                        raise OSError(code, os.strerror(code))
                    return replies
                if t == _NLMSG_DONE:
                    return replies
                replies.append(_attrs(payload[4:]))
                if not dump:
                    return replies
        return replies


def _family_id(g):
    try:
        r = g.request(_GENL_ID_CTRL, _CTRL_CMD_GETFAMILY, _attr(_CTRL_ATTR_FAMILY_NAME, b"netdev\0"))
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise UnsupportedError("this kernel (%s) has no 'netdev' generic-netlink family; XDP feature queries "
                                   "need Linux 6.3 or newer" % os.uname().release) from None
        raise
    return struct.unpack("<H", r[0][_CTRL_ATTR_FAMILY_ID][:2])[0]


def _decode(a):
    def u(key, fmt="<Q"):
        v = a.get(key)
        return struct.unpack(fmt, v[:struct.calcsize(fmt)])[0] if v else 0
    raw = {"xdp-features": u(_A_XDP_FEATURES), "xdp-rx-metadata-features": u(_A_RX_META),
           "xsk-features": u(_A_XSK)}
    return NetdevInfo(u(_A_IFINDEX, "<I"), _bits(raw["xdp-features"], XDP_FEATURES), u(_A_ZC_MAX_SEGS, "<I"),
                      _bits(raw["xdp-rx-metadata-features"], RX_METADATA_FEATURES), _bits(raw["xsk-features"], XSK_FEATURES),
                      raw)


def _with_genl(netns, fn):
    ns, owned = resolve(netns)
    try:
        sock = (ns.socket if ns is not None else socket.socket)(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_GENERIC)
        with sock:
            sock.settimeout(5.0)
            return fn(_Genl(sock), ns)
    finally:
        if owned:
            ns.close()


def features(ifname, netns=None):
    """The XDP features of interface ``ifname`` (name, or ifindex 1..2**31-1) in ``netns``, as a :class:`NetdevInfo`."""
    if isinstance(ifname, bool) or not (isinstance(ifname, int) and 0 < ifname < 1 << 31
                                        or isinstance(ifname, str) and 0 < len(ifname) < 16 and "\0" not in ifname):
        raise ConfigurationError("interface must be a name (1..15 characters) or an ifindex 1..2**31-1, not %r"
                                 % (ifname,), field="ifname", value=ifname)
    def run(g, ns):
        if isinstance(ifname, int):
            idx = ifname
        elif ns is None:
            try:
                idx = socket.if_nametoindex(ifname)
            except OSError:
                raise InterfaceNotFoundError(ifname, None) from None
        else:
            idx = ns.ifindex(ifname)
        fam = _family_id(g)
        try:
            return _decode(g.request(fam, _CMD_DEV_GET, _attr(_A_IFINDEX, struct.pack("<I", idx)))[0])
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.ENOENT):
                raise InterfaceNotFoundError(ifname, ns) from None
            raise from_oserror(exc, "netlink netdev dev-get", ifname=ifname, netns=ns) from None
    return _with_genl(netns, run)


def dump(netns=None):
    """``{ifindex: NetdevInfo}`` for every device in ``netns``."""
    def run(g, ns):
        fam = _family_id(g)
        try:
            return {i.ifindex: i for i in (_decode(a) for a in g.request(fam, _CMD_DEV_GET, dump=True))}
        except OSError as exc:
            raise from_oserror(exc, "netlink netdev dev-get dump", netns=ns) from None
    return _with_genl(netns, run)
