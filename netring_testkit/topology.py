"""Network topologies for tests: namespaces joined by veth pairs (and Linux bridges).

A :class:`Topology` is built from a *spec*: a plain mapping, the same shape as the
``topology:`` key of a YAML scenario. Each node is one network namespace; each link is a
veth pair whose ends live in two nodes; a bridge joins several endpoints of one node.

Spec shape (every key but ``nodes`` and ``links[].endpoints`` is optional)::

    {
      "nodes": ["tx", "rx", "sw"],             # names: [A-Za-z0-9_-], at most 32 chars
      "links": [
        {
          "endpoints": ["tx:eth0", "sw:p0"],   # "node:ifname" (ifname ≤ 15 chars) ...
          "mtu": 1500,                         # both ends (default 1500; 68..65535)
          "queues": 1,                         # RX and TX queue count of both ends (1..64)
          "gro": False,                        # GRO on both ends (veth needs GRO, or XDP on the
                                               # receiving end, to accept XDP_TX/redirected frames)
          "ipv4": True,                        # auto-assign IPv4 on this link's ends (default True)
          "ipv6": True,                        # auto-assign IPv6 on this link's ends (default True)
          "impair": {"loss": "1%", "seed": 7}, # through a netring.Bridge in a hidden namespace
                                               # (netring_testkit.impair; keys: netring.bridge)
        },
        {
          "endpoints": [                       # ... or a mapping with per-endpoint options,
            {"node": "rx", "interface": "eth0",        # containerlab's extended form
             "mac": "02:00:00:00:00:01",       # default: 02:4e:52:TT:EE:EE (T: topology, E: endpoint)
             "ipv4": "198.18.7.1/24",          # address[/prefix] (default prefix 24), or None: no IPv4
             "ipv6": "2001:2:0:7::1/64",       # address[/prefix] (default prefix 64), or None: no IPv6
             "mtu": 1500, "queues": 2, "gro": True},   # override the link's values for this end
            "sw:p1",
          ],
        },
      ],
      "bridges": [
        {"name": "sw:br0",                     # "node:ifname" of the bridge device
         "ports": ["sw:p0", "sw:p1"],          # endpoints of the same node to enslave
         "mtu": 1500,                          # optional (default: the kernel's choice)
         "ipv4": None, "ipv6": None},          # optional address of the bridge device itself
      ],
    }

Addressing: endpoints connected at layer 2 (the two ends of a link, and everything joined
by a bridge) form a *segment*; segment ``k`` (0-based, in order of first appearance) gets
``198.18.0.0/15``'s ``k``-th ``/24`` (``198.18.k.0/24``, then ``198.19.*``) and
``2001:2:0:k::/64``; its addressed endpoints get hosts ``.1``, ``.2``, … / ``::1``, ``::2``, …
in spec order (addresses given explicitly are skipped). Bridge ports get no address.

Quiet links: in every namespace IPv6 address generation, DAD, router solicitations and RA
processing are off, and MLD's unsolicited reports are compressed into the first milliseconds
after link-up; :meth:`Topology.build` returns once every link is operationally up and those
reports have passed, so a capture opened afterwards sees only the traffic the test sends. An endpoint without IPv6 has IPv6 disabled entirely.
Every addressed endpoint has permanent (``NUD_PERMANENT``) ARP and ND entries for the other
addressed endpoints of its segment, so sending to a partner starts no ARP/ND exchange, and each
bridge has a static FDB entry for the MAC at the far end of each port (a receiver that never
sends is never learned otherwise, and frames to it would be flooded to every port).
:meth:`Topology.quiet_replies` (the scenario engine calls it) also stops the stacks' ICMP errors
and echo replies.

Namespaces are unnamed (held by fd) unless ``keep=True``: then each is bind-mounted as
``/run/netns/nrt-<pid>-<serial>-<node>`` so it can be entered with ``ip netns exec`` and,
when :meth:`Topology.close` is told the test failed, it is left in place (the plugin's reaper
removes it in a later session once pid ``<pid>`` is gone and it is old enough). Until then the
name is *provisional* (:meth:`netring.netns.NetNS.create`): if the process dies before closing
the topology (SIGKILL), a later session's reaper removes it at once, whatever its age. Veth pairs are created inside one
namespace with the peer placed directly in the other: no interface ever appears in the root
namespace, and when the process dies — even by SIGKILL — the kernel destroys unnamed
namespaces together with their links (and any XDP program attached to them).
"""
import contextlib
import ctypes
import errno
import fcntl
import itertools
import os
import socket
import struct
import threading
import time

from netring import netdev
from netring.errors import NetringError, from_oserror
from netring.netns import NetNS
from pyroute2 import IPRoute as _IPRoute

from . import impair, topospec

__all__ = ["Topology", "AdoptedTopology", "Endpoint", "parse_spec", "NAME_PREFIX", "namespace_name"]

#: Prefix of every namespace name the toolkit creates (``nrt-<pid>-<serial>-<node>``).
NAME_PREFIX = "nrt-"

IPV4_POOL = topospec.IPV4_POOL
IPV6_POOL = topospec.IPV6_POOL

_serial = itertools.count(1)
_topo_serial = itertools.count(1)

# IPv6 knobs set in every namespace (``all`` and ``default``, so later links inherit them).
_QUIET_IPV6 = (
    ("addr_gen_mode", 1),                       # no link-local address: no RS, no MLD for it
    ("accept_dad", 0),
    ("dad_transmits", 0),
    ("router_solicitations", 0),
    ("accept_ra", 0),
    ("ndisc_notify", 0),
    ("mldv1_unsolicited_report_interval", 1),   # ms: report retransmits happen at once
    ("mldv2_unsolicited_report_interval", 1),
    ("force_mld_version", 1),                   # MLDv1: a pending report shows per group in igmp6
)
_READY_TIMEOUT_S = 5.0
_READY_POLL_S = 0.001
_OPER_UP = "UP"                  # IFLA_OPERSTATE IF_OPER_UP, as pyroute2's ifinfmsg names it
_NUD_NOARP, _NUD_PERMANENT = 0x40, 0x80   # include/uapi/linux/neighbour.h (NOARP on a bridge FDB entry: "static")
_NTF_MASTER = 0x04               # the FDB entry goes to the port's master (the bridge)
_MAF_TIMER_RUNNING = 0x01        # include/net/if_inet6.h: an MLD report is still scheduled for the group
_SOLICITED_PREFIX = "ff0200000000000000000001ff"   # ff02::1:ffXX:XXXX in /proc/net/igmp6


def namespace_name(node, pid=None, serial=None):
    """The ``/run/netns`` name used for ``node`` with ``keep=True``: ``nrt-<pid>-<serial>-<node>``."""
    pid = os.getpid() if pid is None else pid
    serial = next(_serial) if serial is None else serial
    return "%s%d-%d-%s" % (NAME_PREFIX, pid, serial, node)


# --------------------------------------------------------------------------------------------
# Spec parsing: the rules are written once, in netring_testkit.topospec (the YAML loader uses them too)
# --------------------------------------------------------------------------------------------
def parse_spec(spec):
    """Validate a topology spec; return ``(nodes, endpoints, bridges)`` (internal form).

    Raises :class:`~netring.errors.ConfigurationError` for the first problem
    :func:`netring_testkit.topospec.analyse` finds: its ``field`` is the path of the offending
    key (``links[0].endpoints[1]``) and its message says what was expected.
    """
    found, parsed = topospec.analyse(spec)
    if found:
        raise topospec.error(spec, *found[0])
    return parsed.nodes, parsed.endpoints, parsed.bridges


def _assign_addresses(eps, bridges):
    """Fill "auto" addresses per segment; return {name: (IPv4Interface|None, IPv6Interface|None)}."""
    return topospec.assign_addresses(eps, bridges)


# --------------------------------------------------------------------------------------------
# Small helpers that run inside a namespace
# --------------------------------------------------------------------------------------------
_SIOCETHTOOL = 0x8946
_ETHTOOL_GGRO = 0x2B
_ETHTOOL_SGRO = 0x2C
_ETHTOOL_GLINK = 0x0A
_ETHTOOL_STXCSUM = 0x17


def _ethtool_value(ifname, cmd, data=0):
    buf = ctypes.create_string_buffer(struct.pack("II", cmd, data), 8)
    ifr = struct.pack("16sP", ifname.encode(), ctypes.addressof(buf)).ljust(40, b"\0")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s, _SIOCETHTOOL, ifr)
    return struct.unpack("II", buf.raw)[1]


def _write_proc(path, value):
    with open(path, "w") as f:
        f.write(str(value))


def _quiet_namespace():
    for scope in ("all", "default"):
        for key, value in _QUIET_IPV6:
            _write_proc("/proc/sys/net/ipv6/conf/%s/%s" % (scope, key), value)


def _prepare_namespace():
    """Inside a new node: quiet IPv6, and open the rtnetlink socket the topology drives it with."""
    _quiet_namespace()
    return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, socket.NETLINK_ROUTE)


def _ifindexes_here(names):
    """Inside a node: the ifindex of each interface name (0 for a missing one)."""
    out = []
    for name in names:
        try:
            out.append(socket.if_nametoindex(name))
        except OSError:
            out.append(0)
    return out


def _ready_here(running, v6):
    """Inside a node: what is not ready yet, as ``(running, v6)`` sets; both empty when all is.

    ``running``: the interfaces not yet operationally UP (while there are any, ``v6`` is not
    looked at and comes back whole); ``v6``: all of ``v6`` unless every one has joined its
    solicited-node group(s) with no MLD report left to send. The caller asks again with what
    came back, so an interface seen UP is not queried again.

    Operationally UP (not merely IFF_RUNNING, which UNKNOWN also sets) means the kernel's
    linkwatch has handled the carrier: the qdisc is live and IPv6 has been told the link is
    ready. ETHTOOL_GLINK makes the kernel apply a pending, rate-limited linkwatch event for that
    device at once instead of up to a second later.
    ``/proc/thread-self``: ``/proc/net`` would show the namespace of the process's main thread.
    With MLDv1 (``force_mld_version=1``) the kernel sends a group's unsolicited report when it
    joins and schedules the repeat on a per-group timer that ``igmp6`` shows as flag 0x01; once
    every group's timer is idle, no more reports are coming.
    """
    if running:
        for name in running:
            _ethtool_value(name, _ETHTOOL_GLINK)
        states = netdev.operstates()  # {ifname: (ifindex, operstate)}: one dump, three fields read per link
        down = frozenset(name for name in running if states.get(name, (0, None))[1] != _OPER_UP)
        if down:
            return down, v6
    if v6:
        joined = set()
        with open("/proc/thread-self/net/igmp6") as f:
            for line in f:
                fields = line.split()
                if len(fields) < 5 or fields[1] not in v6:
                    continue
                if int(fields[4], 16) & _MAF_TIMER_RUNNING:
                    return frozenset(), v6
                if fields[2].startswith(_SOLICITED_PREFIX):
                    joined.add(fields[1])
        if len(joined) < len(v6):
            return frozenset(), v6
    return frozenset(), frozenset()


# Replies the receiving stacks would send to a stream's frames (see Topology.quiet_replies).
_QUIET_REPLIES = (
    ("ipv4/icmp_msgs_per_sec", 0),     # no credit for rate-limited ICMP (v4 and v6 errors share it)
    ("ipv4/icmp_msgs_burst", 0),
    ("ipv4/icmp_echo_ignore_all", 1),
    ("ipv6/icmp/echo_ignore_all", 1),
)


def _quiet_replies_here():
    for key, value in _QUIET_REPLIES:
        try:
            _write_proc("/proc/sys/net/%s" % key, value)
        except FileNotFoundError:
            # A kernel where the ICMP rate limit is still global shows no such file inside a
            # namespace (only the initial one has it): leave it — never change the host's limit.
            pass


def _disable_ipv6(ifname):
    _write_proc("/proc/sys/net/ipv6/conf/%s/disable_ipv6" % ifname, 1)


# --------------------------------------------------------------------------------------------
# Endpoint
# --------------------------------------------------------------------------------------------
class Endpoint:
    """One interface of a :class:`Topology`: a veth end (or a bridge device) inside a node.

    Attributes: ``name`` (``"node:ifname"``), ``node``, ``netns`` (:class:`~netring.netns.NetNS`),
    ``ifname``, ``ifindex``, ``mac`` (``"02:4e:52:.."``), ``ipv4`` (``"198.18.0.1"`` or None),
    ``ipv4_prefix`` (24), ``ipv6`` (``"2001:2::1"`` or None), ``ipv6_prefix`` (64), ``mtu``,
    ``queues``, ``gro``, ``kind`` (``"veth"`` or ``"bridge"``), ``peer`` (the other end of the
    veth, None for a bridge) and ``bridge`` (the bridge :class:`Endpoint` it is a port of, or None).
    """

    def __init__(self, topology, spec, netns, ipv4, ipv6):
        self._topology = topology
        self.name = spec.name
        self.node = spec.node
        self.netns = netns
        self.ifname = spec.ifname
        self.kind = spec.kind
        self.mtu = spec.mtu
        self.queues = spec.queues if spec.kind == "veth" else 1
        self.gro = spec.gro if spec.kind == "veth" else False
        self.mac = spec.mac
        self.ipv4 = str(ipv4.ip) if ipv4 is not None else None
        self.ipv4_prefix = ipv4.network.prefixlen if ipv4 is not None else None
        self.ipv6 = str(ipv6.ip) if ipv6 is not None else None
        self.ipv6_prefix = ipv6.network.prefixlen if ipv6 is not None else None
        self.ifindex = None
        self.peer = None
        self.bridge = None

    @property
    def topology(self):
        """The :class:`Topology` this endpoint belongs to."""
        return self._topology

    def capture(self, *, outgoing=False, **kw):
        """Open a ``netring.Capture`` on this interface inside its namespace; closed with the topology.

        Like a YAML scenario's ``capture:``, it sees only frames arriving at this endpoint: the
        frames the endpoint itself sends (direction OUTGOING) are left out in the kernel
        (``ignore_outgoing=True``, ``PACKET_IGNORE_OUTGOING``), so a capture on a reflector counts
        what came in, not that plus its replies. ``outgoing=True`` sees both directions, as a
        plain ``netring.Capture`` does. Other keyword arguments go to ``netring.Capture``
        unchanged (``block_size``, ``bpf_filter``, …; an ``ignore_outgoing`` that contradicts
        ``outgoing`` is a ConfigurationError); ``frame_size`` defaults to one that fits this
        endpoint's MTU (``Capture.frame_size_for_mtu``).
        """
        import netring

        self._topology._check_open()
        if not isinstance(outgoing, bool):
            raise netring.ConfigurationError("outgoing must be True or False, not %r" % (outgoing,),
                                             field="outgoing", value=outgoing)
        ignore = kw.pop("ignore_outgoing", not outgoing)
        if ignore is outgoing:
            raise netring.ConfigurationError(
                "ignore_outgoing=%r contradicts outgoing=%r; pass only outgoing= (outgoing=True also sees the "
                "frames %s sends)" % (ignore, outgoing, self.name), field="ignore_outgoing", value=ignore)
        if self.mtu is not None and "frame_size" not in kw:
            sized = {} if "block_size" not in kw else {"block_size": kw["block_size"]}
            kw["frame_size"] = netring.Capture.frame_size_for_mtu(self.mtu, **sized)
        return self._topology._adopt(netring.Capture(self.ifname, netns=self.netns, ignore_outgoing=ignore, **kw))

    def injector(self, **kw):
        """Open a ``netring.Injector`` on this interface inside its namespace; closed with the topology.

        Keyword arguments go to ``netring.Injector`` unchanged; ``frame_size`` defaults to one whose
        capacity holds a whole frame of this endpoint's MTU (``Injector.frame_size_for_mtu``), so a
        jumbo-MTU endpoint sends jumbo frames and the link's MTU is the limit: a longer frame's
        ``FrameTooLargeError`` (``limit="mtu"``) says to raise the link's ``mtu`` (the
        ``veth_pair`` marker's or the topology spec's), one over an explicit ``frame_size``
        (``limit="frame_size"``) to raise that.
        """
        import netring

        self._topology._check_open()
        if self.mtu is not None and "frame_size" not in kw:
            kw["frame_size"] = netring.Injector.frame_size_for_mtu(self.mtu)
        inj = netring.Injector(self.ifname, netns=self.netns, **kw)
        inj.mtu_remedy = ("raise the link's mtu (`@pytest.mark.veth_pair(mtu=N)`, or `mtu: N` on the link in "
                          "the topology spec)")
        return self._topology._adopt(inj)

    def xdp_socket(self, **kw):
        """Open a ``netring.XdpSocket`` (AF_XDP) on this interface inside its namespace; closed with the topology.

        Keyword arguments go to ``netring.XdpSocket`` unchanged (``queue``, ``frame_size``,
        ``mode``, ``attach``…). By default (``attach="auto"``) it attaches the built-in ``xsk``
        program itself, which takes this interface's XDP slot: to steer with your own program
        (the ``xdp`` fixture's ``xsk`` built-in, say) pass ``attach=None`` and put the socket in
        that program's XSKMAP (``handle.map("xsks").update(queue, xsk)``). The socket is closed
        before the topology's namespaces go (and its program detached with it).
        """
        import netring

        self._topology._check_open()
        return self._topology._adopt(netring.XdpSocket(self.ifname, netns=self.netns, **kw))

    def packet_socket(self, protocol=0x0003, timeout=None):
        """A plain ``AF_PACKET``/``SOCK_RAW`` socket bound to this interface (ETH_P_ALL by default).

        Created inside the endpoint's namespace, closed with the topology. Handy for quick checks
        without rings; ``timeout`` is applied with ``settimeout``.
        """
        self._topology._check_open()
        s = self.netns.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(protocol))
        try:
            s.bind((self.ifname, protocol))
            if timeout is not None:
                s.settimeout(timeout)
        except BaseException:
            s.close()
            raise
        return self._topology._adopt(s)

    def stats(self):
        """Interface counters read over rtnetlink (``IFLA_STATS64``) as a dict of ints.

        Keys include ``rx_packets``, ``tx_packets``, ``rx_bytes``, ``tx_bytes``, ``rx_dropped``,
        ``tx_dropped``, ``rx_errors``, ``tx_errors``, ``multicast`` and the detailed error counters.
        """
        return self._topology._stats(self)

    def run(self, fn, *args, **kwargs):
        """Run ``fn`` on a helper thread inside this endpoint's namespace (see :meth:`NetNS.run`)."""
        return self.netns.run(fn, *args, **kwargs)

    def __repr__(self):
        addrs = " ".join(a for a in (
            self.ipv4 and "%s/%d" % (self.ipv4, self.ipv4_prefix),
            self.ipv6 and "%s/%d" % (self.ipv6, self.ipv6_prefix)) if a)
        return "<Endpoint %s %s ifindex=%s mac=%s mtu=%s%s>" % (
            self.name, self.kind, self.ifindex, self.mac, self.mtu, " " + addrs if addrs else "")


# --------------------------------------------------------------------------------------------
# Topology
# --------------------------------------------------------------------------------------------
class Topology:
    """Namespaces and links built from a spec (see the module docstring for its shape).

    ``with Topology(spec) as topo:`` builds on enter and tears down on exit; or call
    :meth:`build` and :meth:`close`. ``topo["tx:eth0"]`` → :class:`Endpoint`;
    ``topo.nodes["tx"]`` → :class:`~netring.netns.NetNS`; ``topo.endpoints`` → dict name → Endpoint.

    ``keep=True`` names the namespaces ``nrt-<pid>-<serial>-<node>`` (see :func:`namespace_name`);
    they are removed by :meth:`close` unless the topology was marked failed (:meth:`mark_failed`,
    or an exception leaving the ``with`` block), in which case they stay for ``ip netns exec``
    debugging and :attr:`kept` lists their names.
    """

    def __init__(self, spec, keep=False):
        self.spec = spec
        self.keep = bool(keep)
        self._nodes, self._eps, self._bridges = parse_spec(spec)
        self._addrs = _assign_addresses(self._eps, self._bridges)
        self._id = next(_topo_serial) & 0xFF
        self.nodes = {}
        self.endpoints = {}
        self._ipr = {}
        self._stack = None
        self._lock = threading.Lock()
        self._serial_now = 0
        #: The :class:`~netring_testkit.impair.ImpairedLink` of every link with ``impair:``, in spec order.
        self.impaired_links = []
        self._failed = False
        self._keep_now = False
        self._built = False
        self._closed = False
        #: Names of namespaces left in place by :meth:`close` (``keep=True`` and failed).
        self.kept = []

    # -- lifecycle ------------------------------------------------------------------------
    def build(self):
        """Create namespaces, links, bridges and addresses; bring everything up. Returns self.

        On any error everything created so far is removed before the error propagates.
        """
        if self._built:
            return self
        if self._closed:
            raise NetringError("topology was closed; build a new Topology")
        self._stack = contextlib.ExitStack()
        try:
            self._build()
        except BaseException:
            self._teardown(keep=False)
            raise
        self._built = True
        return self

    def _build(self):
        self._serial_now = next(_serial)  # names the namespaces of this build (keep=True)
        for node in self._nodes:
            self.nodes[node], self._ipr[node] = self._new_namespace(node)
        for i, (name, spec) in enumerate(self._eps.items(), 1):
            if spec.mac is None:
                spec.mac = "02:4e:52:%02x:%02x:%02x" % (self._id, i >> 8, i & 0xFF)
            v4, v6 = self._addrs[name]
            self.endpoints[name] = Endpoint(self, spec, self.nodes[spec.node], v4, v6)
        done = set()
        for name, spec in self._eps.items():
            if spec.kind != "veth" or name in done:
                continue
            peer = spec.link
            done.update((name, peer.name))
            if spec.impair is not None:
                self._create_impaired(spec, peer)
            else:
                self._create_veth(spec, peer)
        for b in self._bridges:
            self._create_bridge(b)
        # Every node's interface indexes in one helper-thread hop (an rtnetlink lookup each costs more).
        for node, ns in self.nodes.items():
            eps = [ep for ep in self.endpoints.values() if ep.node == node]
            for ep, idx in zip(eps, ns.run(_ifindexes_here, [ep.ifname for ep in eps])):
                ep.ifindex = idx
        for name, spec in self._eps.items():
            self._configure(self.endpoints[name], spec)
        self._add_neighbours()
        for ep in self.endpoints.values():
            if ep.peer is None and ep.kind == "veth":
                ep.peer = self.endpoints[self._eps[ep.name].link.name]
        self._wait_ready()
        # The bridges start once the links are up: the MLD reports of link-up died at the ports unread.
        for link in self.impaired_links:
            self._stack.callback(link.close)  # before the hidden namespace goes (LIFO)
            link.start()

    def _new_namespace(self, label):
        """A fresh namespace for node ``label`` (named ``nrt-…-label`` with ``keep``), quiet, with its
        rtnetlink socket; both released by the topology's teardown. Returns ``(NetNS, IPRoute)``."""
        if self.keep:
            # Provisional until close() decides to keep it: should this process die first (SIGKILL),
            # the next session's reaper removes it at once instead of keeping it for a day.
            ns = NetNS.create(name=namespace_name(label, serial=self._serial_now), provisional=True)
            self._stack.callback(self._release_ns, ns)
        else:
            ns = NetNS.create()
            self._stack.callback(ns.close)
        sock = ns.run(_prepare_namespace)  # one hop into the namespace for both
        ipr = _IPRoute(use_socket=sock)
        self._stack.callback(ipr.close)
        return ns, ipr

    def _create_impaired(self, a, b):
        """An impaired link (:mod:`netring_testkit.impair`): both veths from a hidden namespace of its own."""
        n = len(self.impaired_links)
        ns, ipr = self._new_namespace("impair%d" % n)
        for scope in ("all", "default"):  # nothing of its own to say on either link
            ns.run(_disable_ipv6, scope)
        link = impair.ImpairedLink(a.name, b.name, a.impair, ns, ipr)
        self.impaired_links.append(link)
        try:
            link.create_veths(self.endpoints[a.name], self.endpoints[b.name], self.nodes[a.node], self.nodes[b.node])
        except Exception as exc:
            raise self._nl_error(exc, "creating the impaired link %s <-> %s" % (a.name, b.name), a.field) from None
        # The endpoints compute their checksums themselves: with TX checksum offload a local socket's
        # frame leaves a veth with a partial checksum (veth never fills it in), which a packet socket
        # would forward as is and the far stack would drop. TSO goes with it (it needs checksumming).
        for ep in (a, b):
            self.nodes[ep.node].run(_ethtool_value, ep.ifname, _ETHTOOL_STXCSUM, 0)

    def link_stats(self):
        """``{link name: report}`` of every impaired link (:meth:`netring_testkit.impair.ImpairedLink.report`):
        the bridge's settings and counters per direction. Empty for a topology without ``impair:`` links."""
        return {link.name: link.report() for link in self.impaired_links}

    def _wait_ready(self):
        """Wait (bounded) until every veth is operationally up and the MLD reports have passed.

        A veth gets its carrier, its qdisc and its IPv6 multicast joins from the kernel's
        linkwatch work, which may run some time after ``ip link set up``; frames sent before
        that are dropped, and the MLD reports it triggers would land in the test's captures.
        So each node is asked (one helper-thread hop per node and poll, every millisecond)
        whether its veths are operationally UP and its IPv6 interfaces have joined their
        solicited-node groups with no MLD report still scheduled (see :func:`_ready_here`); a
        node is asked only about what was not ready at the previous poll.
        """
        deadline = time.monotonic() + _READY_TIMEOUT_S
        want = {}
        for ep in self.endpoints.values():
            running, v6 = want.setdefault(ep.node, (set(), set()))
            if ep.kind == "veth":
                running.add(ep.ifname)
            if ep.ipv6:
                v6.add(ep.ifname)
        pending = {n: w for n, w in want.items() if w[0] or w[1]}
        while pending:
            pending = {n: left for n, left in ((n, self.nodes[n].run(_ready_here, *w)) for n, w in pending.items())
                       if left[0] or left[1]}
            if not pending:
                return
            if time.monotonic() > deadline:
                down = [ep for ep in self.endpoints.values() if ep.kind == "veth" and ep.node in pending
                        and self._operstate(ep) != "UP"]
                if down:
                    raise NetringError("links %s did not come up within %.0f s (operstate %s)" % (
                        ", ".join(ep.name for ep in down), _READY_TIMEOUT_S,
                        ", ".join(str(self._operstate(ep)) for ep in down)))
                return  # up, but an IPv6 interface never joined (e.g. a bridge without carrier): go on
            time.sleep(_READY_POLL_S)

    def _operstate(self, ep):
        msgs = self._ipr[ep.node].get_links(ep.ifindex)
        return msgs[0].get_attr("IFLA_OPERSTATE") if msgs else None

    def _create_veth(self, a, b):
        ipr = self._ipr[a.node]
        peer_ns = self.nodes[b.node]
        ea, eb = self.endpoints[a.name], self.endpoints[b.name]
        try:
            ipr.link("add", ifname=a.ifname, kind="veth", mtu=a.mtu, address=ea.mac,
                     num_tx_queues=a.queues, num_rx_queues=a.queues,
                     peer={"ifname": b.ifname, "net_ns_fd": peer_ns.fileno(), "address": eb.mac, "mtu": b.mtu,
                           "num_tx_queues": b.queues, "num_rx_queues": b.queues})
        except Exception as exc:
            raise self._nl_error(exc, "creating veth %s <-> %s" % (a.name, b.name), a.field) from None

    def _create_bridge(self, b):
        ipr = self._ipr[b.node]
        ep = self.endpoints[b.name]
        kw = {"ifname": b.ifname, "kind": "bridge", "address": ep.mac, "br_stp_state": 0,
              "br_forward_delay": 0, "br_mcast_snooping": 0}
        if b.mtu:
            kw["mtu"] = b.mtu
        try:
            ipr.link("add", **kw)
            ep.ifindex = ipr.link_lookup(ifname=b.ifname)[0]
        except Exception as exc:
            raise self._nl_error(exc, "creating bridge %s" % b.name, b.field) from None

    def _configure(self, ep, spec):
        ipr = self._ipr[ep.node]
        what = "configuring %s" % ep.name
        try:
            if not ep.ifindex:
                raise NetringError("interface %s vanished right after creation" % ep.name)
            if ep.ipv6 is None:
                ep.netns.run(_disable_ipv6, ep.ifname)
            if spec.kind == "veth" and spec.gro:
                ep.netns.run(_ethtool_value, ep.ifname, _ETHTOOL_SGRO, 1)
            for b in self._bridges:
                if spec in b.ports:
                    ipr.link("set", index=ep.ifindex, master=self.endpoints[b.name].ifindex)
                    ep.bridge = self.endpoints[b.name]
            if ep.ipv4:
                ipr.addr("add", index=ep.ifindex, address=ep.ipv4, prefixlen=ep.ipv4_prefix)
            if ep.ipv6:
                ipr.addr("add", index=ep.ifindex, address=ep.ipv6, prefixlen=ep.ipv6_prefix,
                         flags=0x02 | 0x80)  # IFA_F_NODAD | IFA_F_PERMANENT
            ipr.link("set", index=ep.ifindex, state="up")
            if ep.mtu is None:
                ep.mtu = ipr.get_links(ep.ifindex)[0].get_attr("IFLA_MTU")
        except NetringError:
            raise
        except Exception as exc:
            raise self._nl_error(exc, what, spec.field) from None

    def _add_neighbours(self):
        """Permanent ARP/ND entries for every layer-2 partner of every addressed endpoint.

        A frame to a partner's address then needs no ARP/ND exchange: no stack sends a request the
        test did not ask for, and no reply lands in a capture or an XDP program's counters (the
        receiver of a stream would otherwise resolve the sender before answering it). The partners
        of an endpoint are the other addressed endpoints of its segment: the veth peer, and on a
        bridge segment every other endpoint there, the bridge device included.

        Each bridge also gets a static FDB entry for the MAC at the far end of each of its ports: a
        receiver that never sends (nothing to resolve, nothing to answer) would otherwise never be
        learned, and every frame to it would be flooded to every port.
        """
        for seg in topospec.segments(self._eps, self._bridges):
            eps = [self.endpoints[s.name] for s in seg]
            for ep in eps:
                for other in eps:
                    if other is ep:
                        continue
                    for fam, addr in ((socket.AF_INET, ep.ipv4 and other.ipv4),
                                      (socket.AF_INET6, ep.ipv6 and other.ipv6)):
                        if not addr:
                            continue
                        try:
                            self._ipr[ep.node].neigh("replace", family=fam, dst=addr, lladdr=other.mac,
                                                     ifindex=ep.ifindex, state=_NUD_PERMANENT)
                        except Exception as exc:
                            raise self._nl_error(exc, "adding neighbour %s (%s) on %s" % (addr, other.name, ep.name),
                                                 self._eps[ep.name].field) from None
        for b in self._bridges:
            for port in b.ports:
                ep, far = self.endpoints[port.name], self.endpoints[port.link.name]
                try:
                    self._ipr[b.node].neigh("replace", family=socket.AF_BRIDGE, ifindex=ep.ifindex, lladdr=far.mac,
                                            flags=_NTF_MASTER, state=_NUD_NOARP)
                except Exception as exc:
                    raise self._nl_error(exc, "adding FDB entry %s (%s) on %s" % (far.mac, far.name, b.name),
                                         b.field) from None

    @staticmethod
    def _nl_error(exc, what, field):
        code = getattr(exc, "code", None) or getattr(exc, "errno", None)
        if isinstance(code, int) and code > 0:
            err = from_oserror(OSError(code, os.strerror(code)), what, capability="CAP_NET_ADMIN")
            err.field = field
            return err
        return NetringError("%s failed (%s): %s" % (what, field, exc))

    def _release_ns(self, ns):
        if self._keep_now:
            ns.keep()
            self.kept.append(ns.name)
            ns.close()
        else:
            ns.delete()

    def _check_open(self):
        if not self._built or self._closed:
            raise NetringError("topology is not built (or already closed); open captures inside `with Topology(...)`")

    def _adopt(self, obj):
        """Close ``obj`` (anything with ``close()``) when the topology closes; return it."""
        if not self._built or self._closed:
            obj.close()
            raise NetringError("topology is not built (or already closed)")
        self._stack.callback(obj.close)
        return obj

    def _stats(self, ep):
        with self._lock:
            if self._closed:
                raise NetringError("topology is closed; read stats before closing it")
            msgs = self._ipr[ep.node].get_links(ep.ifindex)
        s = msgs[0].get_attr("IFLA_STATS64") if msgs else None
        if s is None:
            raise NetringError("no IFLA_STATS64 for %s" % ep.name)
        return {k: int(v) for k, v in dict(s).items()}

    def quiet_replies(self):
        """Stop every node's IP stack from answering frames sent to it: no ICMP errors (port or
        protocol unreachable, for IPv4 and IPv6) and no echo replies. The scenario engine calls it,
        so that what a capture or an XDP program sees is what the streams sent. TCP resets are not
        covered (no sysctl turns them off): a TCP stream to a closed port is answered by one RST per frame.
        Call it before traffic flows: ICMP credit the kernel has already granted a namespace (up to
        ``net.ipv4.icmp_msgs_burst``, 50 messages) is still spent afterwards.
        """
        self._check_open()
        for ns in self.nodes.values():
            ns.run(_quiet_replies_here)

    def mark_failed(self):
        """Record that the test using this topology failed (with ``keep=True``, :meth:`close` keeps it)."""
        self._failed = True

    def close(self, failed=None):
        """Tear everything down (idempotent): opened captures/injectors/sockets, netlink sockets, namespaces.

        Release order: netring objects and sockets first (newest first), then netlink sockets,
        then the namespace fds — the kernel then deletes each unnamed namespace with its links.
        With ``keep=True`` and a failure (``failed=True`` or :meth:`mark_failed`), named
        namespaces stay and :attr:`kept` lists them.
        """
        if failed:
            self._failed = True
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._teardown(keep=self.keep and self._failed)

    def _teardown(self, keep):
        self._keep_now = keep
        stack, self._stack = self._stack, None
        self._closed = True
        if stack is not None:
            stack.close()

    def enter_hint(self):
        """Shell commands to enter the kept namespaces (empty string when nothing was kept)."""
        return "\n".join("ip netns exec %s bash   # node %s" % (n, n.split("-", 3)[-1]) for n in self.kept)

    def __enter__(self):
        return self.build()

    def __exit__(self, exc_type, exc, tb):
        self.close(failed=exc_type is not None and not issubclass(exc_type, GeneratorExit))

    def __getitem__(self, name):
        try:
            return self.endpoints[name]
        except KeyError:
            if not self._built:
                raise NetringError("topology is not built yet; use `with Topology(spec) as topo` or build()") from None
            raise KeyError("no endpoint %r in this topology; have %s" % (name, sorted(self.endpoints))) from None

    def __iter__(self):
        return iter(self.endpoints.values())

    def __repr__(self):
        state = "closed" if self._closed else ("built" if self._built else "new")
        return "<Topology %s nodes=%s links=%d%s>" % (
            state, list(self._nodes), sum(1 for e in self._eps.values() if e.kind == "veth") // 2,
            " keep" if self.keep else "")


# --------------------------------------------------------------------------------------------
# Adopted interfaces (DUT mode)
# --------------------------------------------------------------------------------------------
def _link_state_here(ifname):
    """Inside a namespace: ``(ifindex, mac, mtu, up, operstate, kind, xdp attached, gro, addresses)`` of
    ``ifname`` as found, or None when it does not exist; ``addresses`` is a set of ``(family, addr, prefix)``."""
    try:
        idx = socket.if_nametoindex(ifname)
    except OSError:
        return None
    with _IPRoute() as ipr:
        msg = ipr.get_links(idx)[0]
        addrs = {(a["family"], a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=idx)}
    info = msg.get_attr("IFLA_LINKINFO")
    x = msg.get_attr("IFLA_XDP")
    try:
        gro = bool(_ethtool_value(ifname, _ETHTOOL_GGRO))
    except OSError:
        gro = None
    return {"ifindex": idx, "mac": msg.get_attr("IFLA_ADDRESS"), "mtu": msg.get_attr("IFLA_MTU"),
            "up": bool(msg["flags"] & 1), "operstate": msg.get_attr("IFLA_OPERSTATE"),
            "kind": info.get_attr("IFLA_INFO_KIND") if info is not None else None,
            "xdp": x.get_attr("IFLA_XDP_ATTACHED") if x is not None else None, "gro": gro, "addresses": addrs,
            # active RX queues (ethtool channels), not numrxqueues (the most it could have)
            "queues": netdev.rx_queues(ifname) or msg.get_attr("IFLA_NUM_RX_QUEUES") or 1}


# Per-interface IPv6 knobs of an adopted interface (restored on close): MLD reports at once, MLDv1.
_ADOPTED_MLD = (("mldv1_unsolicited_report_interval", 1), ("mldv2_unsolicited_report_interval", 1),
                ("force_mld_version", 1))


_ADOPTED_SETTLE_S = 0.05


def _set_gro_here(ifname, on):
    _ethtool_value(ifname, _ETHTOOL_SGRO, 1 if on else 0)


class AdoptedTopology(Topology):
    """A one-link :class:`Topology` over two existing interfaces cabled to each other (DUT mode):
    ``AdoptedTopology(spec, {"tx:eth0": ("peer0", "ns-peer"), "rx:eth0": ("dut0", "ns-dut")})`` maps the
    spec's two endpoints onto ``(ifname, namespace)`` pairs (namespace: a name, path, NetNS or None for
    the current one).

    The interfaces are the operator's: nothing is created, deleted, renamed or moved, and no link is
    brought up or down (a missing or down interface, or one already running an XDP program, is a
    :class:`~netring.errors.NetringError` before anything changes). What :meth:`build` changes is put
    back by :meth:`close`, newest first: the spec's addresses are added (unless present) and removed
    again, the MTU and GRO setting are set to the spec's and restored, and :meth:`quiet_replies`
    writes its sysctls and restores their values. XDP programs the scenario engine attaches are
    detached by it, as on a built topology. ``keep`` is ignored: there is nothing to keep.
    Endpoints keep the spec's names (``topo["rx:eth0"]``); their ``ifname``, ``mac`` and ``queues`` are the
    interface's own (one with fewer RX queues than the spec asks for is refused: queues are not changed).
    """

    def __init__(self, spec, interfaces, keep=False):
        super().__init__(spec, keep=False)
        links = [e for e in self._eps.values() if e.kind == "veth"]
        if self._bridges or len(links) != 2:
            raise NetringError("an adopted topology is one link between two endpoints; this spec has %d link(s) "
                               "and %d bridge(s)" % (len(links) // 2, len(self._bridges)))
        missing = sorted(set(self._eps) - set(interfaces))
        if missing:
            raise NetringError("no interface given for endpoint %s of the spec (have %s)"
                               % (missing[0], ", ".join(sorted(interfaces))))
        self._interfaces = dict(interfaces)
        self._saved_sysctls = {}

    def _build(self):
        for name, spec in self._eps.items():
            ifname, where = self._interfaces[name]
            ns = NetNS.open("/proc/thread-self/ns/net" if where is None else where)
            self._stack.callback(ns.close)   # only our fd: the namespace and its links stay
            label = ifname if where is None else "%s in namespace %s" % (ifname, getattr(where, "name", None) or where)
            state = ns.run(_link_state_here, ifname)
            if state is None:
                raise NetringError("%s (for endpoint %s) not found; check the name with `ip -br link`" % (label, name))
            if not state["up"] or state["operstate"] not in (_OPER_UP, "UNKNOWN"):
                raise NetringError("%s (for endpoint %s) is down (operstate %s); bring it up and cable it to its "
                                   "peer — the toolkit never changes a link's state" % (label, name, state["operstate"]))
            if state["xdp"]:
                raise NetringError("%s (for endpoint %s) already runs an XDP program (%s); detach it first "
                                   "(`ip link set dev %s xdp off`)" % (label, name, state["xdp"], ifname))
            ipr = _IPRoute(use_socket=ns.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, socket.NETLINK_ROUTE))
            self._stack.callback(ipr.close)
            node = spec.node
            self.nodes[node] = ns
            self._ipr[node] = ipr
            spec.mac = state["mac"]
            v4, v6 = self._addrs[name]
            ep = Endpoint(self, spec, ns, v4, v6)
            ep.ifname, ep.ifindex, ep.kind = ifname, state["ifindex"], state["kind"] or "device"
            ep.label = label
            if state["queues"] < spec.queues:
                raise NetringError("%s (for endpoint %s) has %d RX queue(s) but the spec asks for %d; an adopted "
                                   "interface keeps its queues (`ethtool -L %s combined %d` to add them)"
                                   % (label, name, state["queues"], spec.queues, ifname, spec.queues))
            ep.queues = state["queues"]
            self.endpoints[name] = ep
            self._adapt(ep, spec, state, ipr)
        for name, spec in self._eps.items():
            self.endpoints[name].peer = self.endpoints[spec.link.name]
        self._wait_ready()
        # The MLD reports the new addresses caused have left their senders (no timer is running), but on a loaded
        # machine the last may still be on its way through the receiver's backlog: let it land before any XDP
        # program starts counting (seen: one report counted by the scenario's program, 1 run in ~20 under load).
        time.sleep(_ADOPTED_SETTLE_S)

    def _adapt(self, ep, spec, state, ipr):
        """Make ``ep`` what the spec asks (MTU, GRO, addresses), registering the undo of each change."""
        what = "configuring %s (endpoint %s)" % (ep.label, ep.name)
        try:
            # Each undo is registered before its change: a Ctrl-C during the change still undoes it.
            if spec.mtu != state["mtu"]:
                self._stack.callback(self._restore, ipr.link, "set", index=ep.ifindex, mtu=state["mtu"])
                ipr.link("set", index=ep.ifindex, mtu=spec.mtu)
            if state["gro"] is not None and spec.gro != state["gro"]:
                self._stack.callback(self._restore, ep.netns.run, _set_gro_here, ep.ifname, state["gro"])
                ep.netns.run(_set_gro_here, ep.ifname, spec.gro)
            if ep.ipv6 and "." not in ep.ifname:
                # The address joins a solicited-node group: its MLD reports (and their repeats) go out at once,
                # as in a built topology, instead of landing in the scenario's counters a second later.
                for key, value in _ADOPTED_MLD:
                    self._sysctl(ep.netns, "net.ipv6.conf.%s.%s" % (ep.ifname, key), value)
            for fam, addr, prefix, flags in ((socket.AF_INET, ep.ipv4, ep.ipv4_prefix, 0),
                                             (socket.AF_INET6, ep.ipv6, ep.ipv6_prefix, 0x02 | 0x80)):
                if not addr or (fam, addr, prefix) in state["addresses"]:
                    continue
                kw = {"flags": flags} if flags else {}
                self._stack.callback(self._restore, ipr.addr, "del", index=ep.ifindex, address=addr, prefixlen=prefix)
                ipr.addr("add", index=ep.ifindex, address=addr, prefixlen=prefix, **kw)
        except NetringError:
            raise
        except Exception as exc:
            raise self._nl_error(exc, what, spec.field) from None

    @staticmethod
    def _restore(fn, *args, **kwargs):
        """Undo one change; an interface that vanished meanwhile has nothing left to restore."""
        try:
            fn(*args, **kwargs)
        except Exception as exc:
            if getattr(exc, "code", None) not in (errno.ENODEV, errno.EADDRNOTAVAIL):   # gone already
                raise

    def _sysctl(self, ns, name, value):
        """Set a ``net.*`` sysctl of ``ns`` to ``value``, restoring its old value on close; one that does not
        exist there (e.g. a limit that is global on this kernel) is left alone."""
        try:
            old = ns.sysctl(name)
        except NetringError:
            return
        if old != str(value):
            self._stack.callback(self._restore, ns.sysctl, name, old)
            ns.sysctl(name, value)

    def quiet_replies(self):
        """Like :meth:`Topology.quiet_replies`, but each sysctl's value is saved first and restored by :meth:`close`."""
        self._check_open()
        for ns in {n.inode: n for n in self.nodes.values()}.values():
            for key, value in _QUIET_REPLIES:
                self._sysctl(ns, "net." + key.replace("/", "."), value)

    def enter_hint(self):
        """Nothing is kept in DUT mode (the interfaces are the operator's): an empty string."""
        return ""

    def __repr__(self):
        state = "closed" if self._closed else ("built" if self._built else "new")
        return "<AdoptedTopology %s %s>" % (state, ", ".join("%s=%s" % (n, i[0]) for n, i in self._interfaces.items()))
