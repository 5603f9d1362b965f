"""netring's one netlink layer: one-shot rtnetlink and generic-netlink requests, in the calling
thread's namespace, encoded and decoded by pyroute2's message classes.

Why not pyroute2's sockets (``IPRoute``, ``GenericNetlinkSocket``): building one costs milliseconds
(each runs its own asyncio event loop) and ``netns=`` forks a helper. A query here opens a plain
``AF_NETLINK`` socket *in the calling thread*, sends one pyroute2 message and collects the
replies with pyroute2's :class:`~pyroute2.netlink.marshal.Marshal` — tens of microseconds. To ask
another namespace, call these on a thread inside it (:meth:`netring.netns.NetNS.run`): a netlink
socket talks to the namespace it was created in (FIELD-NOTES). Changing links stays with
``IPRoute`` (``NetNS.iproute()``, fork-free), which is not on any polling path.

Used by :mod:`netring.xdp` (IFLA_XDP), :mod:`netring.netdev` (the ``netdev`` genetlink family) and
``netring_testkit.topology`` (link readiness).
"""
import os
import socket

from pyroute2.netlink import (CTRL_CMD_GETFAMILY, GENL_ID_CTRL, NETLINK_GENERIC, NLM_F_ACK, NLM_F_DUMP,
                              NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, ctrlmsg)
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.marshal import Marshal
from pyroute2.netlink.rtnl import RTM_GETLINK, RTM_NEWLINK
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

__all__ = ["request", "links", "genl_family_id", "genl_request"]

# A reply that does not come within this long means a kernel or caller bug, not a slow kernel.
_TIMEOUT_S = 5.0
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
    marshal = Marshal()
    marshal.msg_map = dict(replies or {})
    msg["header"]["type"] = msg_type
    msg["header"]["flags"] = flags
    msg["header"]["sequence_number"] = _SEQ
    msg.encode()
    out = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol) as sock:
        sock.settimeout(_TIMEOUT_S)
        sock.bind((0, 0))
        sock.send(msg.data)
        while True:
            data = sock.recv(_RECV_BYTES)
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


def links(ifindex=0):
    """RTM_GETLINK here: ``[ifinfmsg]`` of ``ifindex``, or of every link (a dump) when it is 0.

    ``OSError(ENODEV)`` for a missing ifindex.
    """
    msg = ifinfmsg()
    msg["family"] = socket.AF_UNSPEC
    msg["index"] = ifindex
    flags = NLM_F_REQUEST | (0 if ifindex else NLM_F_DUMP)
    return request(socket.NETLINK_ROUTE, msg, RTM_GETLINK, flags, {RTM_NEWLINK: ifinfmsg})


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
