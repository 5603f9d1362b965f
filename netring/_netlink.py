"""netring's one netlink layer: one-shot rtnetlink and generic-netlink requests, in the calling
thread's namespace, encoded and decoded by pyroute2's message classes.

Why not pyroute2's sockets (``IPRoute``, ``GenericNetlinkSocket``): building one costs milliseconds
(each runs its own asyncio event loop) and ``netns=`` forks a helper. A query here opens a plain
``AF_NETLINK`` socket *in the calling thread*, sends one pyroute2 message and collects the
replies with pyroute2's :class:`~pyroute2.netlink.marshal.Marshal` — tens of microseconds. To ask
another namespace, call these on a thread inside it (:meth:`netring.netns.NetNS.run`): a netlink
socket talks to the namespace it was created in (FIELD-NOTES). Changing links stays with
``IPRoute`` (``NetNS.iproute()``, fork-free), which is not on any polling path.

Used by :mod:`netring.xdp` (IFLA_XDP) and :mod:`netring.netdev` (the ``netdev`` genetlink family,
and :func:`netring.netdev.operstates` for link readiness polls).
"""
import functools
import os
import socket
import struct

from pyroute2.netlink import (CTRL_CMD_GETFAMILY, GENL_ID_CTRL, NETLINK_GENERIC, NLM_F_ACK, NLM_F_DUMP,
                              NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, ctrlmsg)
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.marshal import Marshal
from pyroute2.netlink.rtnl import RTM_GETLINK, RTM_NEWLINK
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg, state_by_code

__all__ = ["request", "exchange", "links", "operstates", "genl_family_id", "genl_request"]

# A reply that does not come within this long means a kernel or caller bug, not a slow kernel.
_TIMEOUT_S = 5.0
_RCVTIMEO = struct.pack("@ll", int(_TIMEOUT_S), 0)  # struct timeval
# Kernel dump datagrams are at most ~32 KiB (NLMSG_GOODSIZE with extended acks); one reply fits.
_RECV_BYTES = 1 << 16
_SEQ = 1  # one request per socket: its replies all carry this sequence number


def request(protocol, msg, msg_type, flags=NLM_F_REQUEST, replies=None):
    """Send the pyroute2 message ``msg`` as ``msg_type`` on a new ``protocol`` socket; return its replies.

    ``replies``: ``{message type: pyroute2 class}`` to decode answers with. A dump (``NLM_F_DUMP``)
    collects every message up to NLMSG_DONE, an ``NLM_F_ACK`` request every message up to the
    ack, anything else returns its first answer. A kernel error raises ``OSError`` with its errno
    (e.g. ``ENODEV`` for a missing ifindex).
    """
    return exchange(protocol, _encode(msg, msg_type, flags), flags, replies)


def _encode(msg, msg_type, flags):
    msg["header"]["type"] = msg_type
    msg["header"]["flags"] = flags
    msg["header"]["sequence_number"] = _SEQ
    msg.encode()
    return bytes(msg.data)


def exchange(protocol, data, flags, replies=None, marshal=None):
    """:func:`request` for an already encoded message ``data`` (sent with ``flags``, sequence number 1).

    ``marshal``: a pyroute2 ``Marshal`` to parse the replies with instead of one built from ``replies``.
    """
    if marshal is None:
        marshal = Marshal()
        marshal.msg_map = dict(replies or {})
    out = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol) as sock:
        # A kernel-side receive timeout keeps the socket blocking: settimeout() would add a poll()
        # before every recv().
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _RCVTIMEO)
        sock.bind((0, 0))
        sock.send(data)
        while True:
            try:
                data = sock.recv(_RECV_BYTES)
            except BlockingIOError:  # SO_RCVTIMEO expired
                raise TimeoutError("no netlink reply within %.0f s" % _TIMEOUT_S) from None
            if not data:
                return out
            for reply in marshal.parse(data):
                header = reply["header"]
                if header["sequence_number"] != _SEQ:
                    continue
                err = header.get("error")
                if isinstance(err, NetlinkError):
                    raise OSError(err.code, os.strerror(err.code)) from None
                if err is not None:  # the reply could not be decoded
                    raise err
                if header["type"] in (NLMSG_DONE, NLMSG_ERROR):  # end of a dump, or the ack
                    return out
                out.append(reply)
                if not flags & (NLM_F_DUMP | NLM_F_ACK):
                    return out


def links(ifindex=0, nsid=None):
    """RTM_GETLINK here: ``[ifinfmsg]`` of ``ifindex``, or of every link (a dump) when it is 0.

    ``nsid``: ask the namespace with that id as seen from here instead (IFLA_IF_NETNSID, kernel
    4.20+), e.g. for a veth's peer (its IFLA_LINK and IFLA_LINK_NETNSID). ``OSError(ENODEV)`` for a
    missing ifindex.
    """
    flags = NLM_F_REQUEST | (0 if ifindex else NLM_F_DUMP)
    if nsid is None:
        return exchange(socket.NETLINK_ROUTE, _getlink(ifindex), flags, {RTM_NEWLINK: ifinfmsg})
    msg = ifinfmsg()
    msg["family"] = socket.AF_UNSPEC
    msg["index"] = ifindex
    msg["attrs"] = [("IFLA_IF_NETNSID", nsid)]
    return request(socket.NETLINK_ROUTE, msg, RTM_GETLINK, flags, {RTM_NEWLINK: ifinfmsg})


def link_and_veth_peer(ifindex):
    """``(ifinfmsg, kind, peer ifinfmsg or None)`` of ``ifindex`` here: for a veth, its peer too, asked
    for by IFLA_LINK in the namespace IFLA_LINK_NETNSID names (kernel 4.20+; None where that fails)."""
    msg = links(ifindex)[0]
    info = msg.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
    peer, nsid = msg.get_attr("IFLA_LINK"), msg.get_attr("IFLA_LINK_NETNSID")
    got = None
    if kind == "veth" and peer:
        try:
            got = links(peer, nsid)
        except OSError:
            got = None
    return msg, kind, (got[0] if got else None)


# Encoding an ifinfmsg costs about as much as the kernel's answer; the readiness poll asks for the
# same few links again and again.
@functools.lru_cache(maxsize=1024)
def _getlink(ifindex):
    msg = ifinfmsg()
    msg["family"] = socket.AF_UNSPEC
    msg["index"] = ifindex
    return _encode(msg, RTM_GETLINK, NLM_F_REQUEST | (0 if ifindex else NLM_F_DUMP))


def operstates():
    """``{ifname: (ifindex, operstate)}`` of every link here, from one RTM_GETLINK dump; ``operstate``
    is pyroute2's name for IFLA_OPERSTATE (``"UP"``, ``"DOWN"``, ``"UNKNOWN"``…).

    For polling: it reads three fields per link instead of decoding each message (see
    :class:`_LinkStates`), so a poll costs what the kernel's answer costs.
    """
    return {m["ifname"]: (m["index"], m["operstate"])
            for m in exchange(socket.NETLINK_ROUTE, _getlink(0), NLM_F_REQUEST | NLM_F_DUMP, marshal=_LinkStates())
            if m["ifname"] is not None}


# Attribute types from pyroute2's own (positional) ifinfmsg map.
_IFLA = {entry[0]: code for code, entry in enumerate(ifinfmsg.nla_map)}
_IFLA_IFNAME, _IFLA_OPERSTATE = _IFLA["IFLA_IFNAME"], _IFLA["IFLA_OPERSTATE"]
_NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED | NLA_F_NET_BYTEORDER
# struct ifinfomsg (linux/rtnetlink.h) after the 16-byte nlmsghdr: family, pad, type, index, flags, change.
_IFINFOMSG = struct.Struct("=BxHiII")
_NLA_HEADER = struct.Struct("=HH")
_NLMSG_HEADER_LEN = 16


class _LinkStates(Marshal):
    """A pyroute2 Marshal that reads only the ifindex, IFLA_IFNAME and IFLA_OPERSTATE of RTM_NEWLINK messages.

    Decoding a whole ``ifinfmsg`` costs 100-300 µs (an object per attribute, ~40 attributes), far
    more than the kernel takes to answer; the topology's readiness poll asks every millisecond.
    So, like pyroute2's own fast parsers (``pyroute2.iproute.parsers.default_routes``), this walks
    the attribute headers and reads the two it needs; every other message (errors, NLMSG_DONE)
    takes pyroute2's standard path. Every attribute's length is checked against the message's
    end before its payload is read. The result is a plain dict (``header``, ``index``, ``ifname``,
    ``operstate``): all the Marshal and :func:`exchange` read of a message, at a fraction of an
    ``nlmsg``'s cost.
    """

    def parse_one_message(self, key, flags, sequence_number, data, offset, length):
        if key != RTM_NEWLINK:
            return super().parse_one_message(key, flags, sequence_number, data, offset, length)
        end = offset + length
        msg = {"header": {"length": length, "type": key, "flags": flags, "sequence_number": sequence_number,
                          "error": None},
               "index": None, "ifname": None, "operstate": None}
        pos = offset + _NLMSG_HEADER_LEN
        if pos + _IFINFOMSG.size > end:
            return msg
        msg["index"] = _IFINFOMSG.unpack_from(data, pos)[2]
        pos += _IFINFOMSG.size
        name = state = None
        # The kernel puts IFLA_IFNAME and IFLA_OPERSTATE among the first attributes (rtnl_fill_ifinfo):
        # stop once both are read.
        while (name is None or state is None) and pos + _NLA_HEADER.size <= end:
            alen, atype = _NLA_HEADER.unpack_from(data, pos)
            if alen < _NLA_HEADER.size or pos + alen > end:
                break  # malformed: stop rather than read past this message
            atype &= _NLA_TYPE_MASK
            if atype == _IFLA_IFNAME:
                name = bytes(data[pos + _NLA_HEADER.size:pos + alen]).split(b"\0", 1)[0].decode()
            elif atype == _IFLA_OPERSTATE and alen > _NLA_HEADER.size:
                state = state_by_code.get(data[pos + _NLA_HEADER.size])
            pos += (alen + 3) & ~3
        msg["ifname"], msg["operstate"] = name, state
        return msg


def genl_family_id(name):
    """The id of the generic-netlink family ``name`` here; ``OSError(ENOENT)`` if the kernel has none."""
    msg = ctrlmsg()
    msg["cmd"] = CTRL_CMD_GETFAMILY
    msg["version"] = 1
    msg["attrs"] = [("CTRL_ATTR_FAMILY_NAME", name)]
    (reply,) = request(NETLINK_GENERIC, msg, GENL_ID_CTRL, replies={GENL_ID_CTRL: ctrlmsg})
    return reply.get_attr("CTRL_ATTR_FAMILY_ID")


def genl_request(family_id, msg, dump=False):
    """Send the ``genlmsg`` subclass instance ``msg`` to family ``family_id``; replies decode as its class."""
    flags = NLM_F_REQUEST | (NLM_F_DUMP if dump else 0)
    return request(NETLINK_GENERIC, msg, family_id, flags, {family_id: type(msg)})
