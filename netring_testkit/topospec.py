"""Topology specs: the rules of a ``topology:`` mapping, written once.

One validator, :func:`analyse`, walks a spec (the shape is in :mod:`netring_testkit.topology`'s
docstring) and reports every problem as ``(field path, message)`` — the path a tuple such as
``("links", 0, "endpoints", 1)``. Two callers use it: the YAML loader
(:mod:`netring_testkit.scenario.semantics`) locates each problem as ``file:line:col`` under the
scenario's ``topology``, and :class:`netring_testkit.Topology` raises the first one as a
:class:`~netring.errors.ConfigurationError` (``topology links[0].endpoints[1]: …``). The JSON
Schema states the same shapes for editors; the rules it cannot state (names that must exist,
endpoints used once, bridge ports on the bridge's node, addresses that parse, layer-2 segments
that can be auto-addressed) live only here.

Pure Python: importing this module touches no netlink and no namespace.
"""
import difflib
import ipaddress
import itertools
import re

from netring import impairment
from netring.errors import ConfigurationError

__all__ = ["analyse", "problems", "field_name", "value_at", "error", "EndpointSpec", "Parsed", "assign_addresses",
           "segments",
           "IPV4_POOL", "IPV6_POOL", "MAX_SEGMENTS"]

IPV4_POOL = ipaddress.ip_network("198.18.0.0/15")
IPV6_POOL = ipaddress.ip_network("2001:2::/48")
#: Layer-2 segments that can be auto-addressed: one /24 of :data:`IPV4_POOL` each.
MAX_SEGMENTS = 512
_HOSTS_PER_SEGMENT = 253

_NODE_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,15}$")
_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_TOP_KEYS = ("bridges", "links", "nodes")
_LINK_KEYS = ("endpoints", "gro", "impair", "ipv4", "ipv6", "mtu", "queues")
_EP_KEYS = ("gro", "interface", "ipv4", "ipv6", "mac", "mtu", "node", "queues")
_BRIDGE_KEYS = ("ipv4", "ipv6", "mac", "mtu", "name", "ports")


class EndpointSpec:
    """One interface of a spec, validated: a veth end (``kind="veth"``, ``link`` = the other end) or a
    bridge (``kind="bridge"``, ``ports`` = the enslaved veth ends).

    ``ipv4``/``ipv6`` are ``"auto"``, None (no address) or an ``ipaddress`` interface; ``field``
    is the spec path it came from (``links[0].endpoints[1]``), used in error messages. ``impair``
    is, on the first endpoint of an impaired link only, the link's ``(first → second, second →
    first)`` :class:`netring.impairment.Impairment` pair; None otherwise.
    """

    __slots__ = ("node", "ifname", "mac", "ipv4", "ipv6", "mtu", "queues", "gro", "field", "link", "kind",
                 "ports", "impair")

    def __init__(self, node, ifname, field):
        self.node, self.ifname, self.field = node, ifname, field
        self.mac = None
        self.ipv4 = self.ipv6 = "auto"
        self.mtu, self.queues, self.gro = 1500, 1, False
        self.link = None
        self.kind = "veth"
        self.ports = ()
        self.impair = None

    @property
    def name(self):
        """``node:ifname``."""
        return "%s:%s" % (self.node, self.ifname)


class Parsed:
    """What :func:`analyse` built: ``nodes`` (list), ``endpoints`` (dict name → :class:`EndpointSpec`, spec
    order, bridges included) and ``bridges`` (list of bridge :class:`EndpointSpec`)."""

    __slots__ = ("nodes", "endpoints", "bridges")

    def __init__(self, nodes, endpoints, bridges):
        self.nodes, self.endpoints, self.bridges = nodes, endpoints, bridges


def field_name(path):
    """``links[0].endpoints[1]`` for the path ``("links", 0, "endpoints", 1)``; ``(spec)`` for the whole spec."""
    out = ""
    for part in path:
        out += "[%d]" % part if isinstance(part, int) else ("." if out else "") + str(part)
    return out or "(spec)"


def value_at(spec, path):
    """The value at ``path`` in ``spec`` (None where the path does not lead anywhere)."""
    value = spec
    for part in path:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def error(spec, path, message):
    """The :class:`~netring.errors.ConfigurationError` :class:`~netring_testkit.Topology` raises for a problem."""
    field = field_name(path)
    return ConfigurationError("topology %s: %s" % (field, message), field=field, value=value_at(spec, path))


def problems(spec):
    """Every problem of topology ``spec`` as a list of ``(field path, message)``, in spec order."""
    return analyse(spec)[0]


def analyse(spec):
    """Validate topology ``spec``; return ``(problems, parsed)``.

    ``problems`` is the list of ``(field path, message)``; ``parsed`` (a :class:`Parsed`) holds
    what could be understood, so a caller reporting every problem (the YAML loader) can go on
    checking streams against the endpoints that do exist. Only a spec without problems is fit
    to build.
    """
    chk = _Checker()
    chk.run(spec)
    if not chk.problems:
        try:
            assign_addresses(chk.eps, chk.bridges)
        except _SpecProblem as exc:
            chk.problems.append((exc.path, exc.message))
    return chk.problems, Parsed(chk.nodes, chk.eps, chk.bridges)


class _SpecProblem(Exception):
    def __init__(self, path, message):
        super().__init__(message)
        self.path, self.message = path, message


class _Checker:
    def __init__(self):
        self.problems = []
        self.nodes = []
        self.eps = {}
        self.bridges = []
        self.enslaved = {}

    def bad(self, path, message):
        self.problems.append((tuple(path), message))

    def unknown_keys(self, d, path, allowed):
        for k in sorted((k for k in d if k not in allowed), key=str):
            close = difflib.get_close_matches(str(k), allowed, n=1)
            self.bad(path + (k,), "unknown key %r%s; allowed: %s"
                     % (k, " (did you mean %r?)" % close[0] if close else "", ", ".join(allowed)))

    def run(self, spec):
        if not isinstance(spec, dict):
            self.bad((), "the spec must be a mapping with nodes and links, got %s" % type(spec).__name__)
            return
        self.unknown_keys(spec, (), _TOP_KEYS)
        nodes = spec.get("nodes")
        if not isinstance(nodes, list) or not nodes:
            self.bad(("nodes",), "nodes must be a non-empty list of node names")
            return
        for i, n in enumerate(nodes):
            if not isinstance(n, str) or not _NODE_RE.match(n):
                self.bad(("nodes", i), "node names are 1..32 characters of [A-Za-z0-9_-], got %r" % (n,))
            elif n in self.nodes:
                self.bad(("nodes", i), "duplicate node %r (each node is listed once)" % n)
            else:
                self.nodes.append(n)
        links = spec.get("links", [])
        if isinstance(links, list):
            for li, link in enumerate(links):
                self.link(link, ("links", li))
        else:
            self.bad(("links",), "links must be a list")
        bridges = spec.get("bridges", [])
        if isinstance(bridges, list):
            for bi, br in enumerate(bridges):
                self.bridge(br, ("bridges", bi))
        else:
            self.bad(("bridges",), "bridges must be a list")

    # -- option values --------------------------------------------------------------------
    def int_opt(self, d, key, path, lo, hi, default):
        v = d.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            self.bad(path + (key,), "%s must be an integer in %d..%d, got %r" % (key, lo, hi, v))
            return default
        return v

    def bool_opt(self, d, key, path, default):
        v = d.get(key, default)
        if not isinstance(v, bool):
            self.bad(path + (key,), "%s must be true or false, got %r" % (key, v))
            return default
        return v

    def addr_opt(self, d, key, path, default):
        """``"auto"``, ``None`` (no address) or an interface (address + prefix)."""
        if key not in d:
            return default
        v = d[key]
        if v is None or v is False:
            return None
        if v is True or v == "auto":
            return "auto"
        cls = ipaddress.IPv4Interface if key == "ipv4" else ipaddress.IPv6Interface
        text = v if isinstance(v, str) else None
        if text is not None and "/" not in text:
            text += "/24" if key == "ipv4" else "/64"
        try:
            return cls(text)
        except (ValueError, TypeError):
            self.bad(path + (key,), "%s must be an %s address with optional /prefix, \"auto\" or null, got %r"
                     % (key, "IPv4" if key == "ipv4" else "IPv6", v))
            return None

    def mac_opt(self, d, path):
        v = d.get("mac")
        if v is None:
            return None
        if not isinstance(v, str) or not _MAC_RE.match(v):
            self.bad(path + ("mac",), "mac must look like 02:00:00:00:00:01, got %r" % (v,))
            return None
        if int(v[:2], 16) & 1:
            self.bad(path + ("mac",), "mac %s is a multicast address; use a unicast one (even first octet)" % v)
            return None
        return v.lower()

    # -- endpoints ------------------------------------------------------------------------
    def split_ep(self, text, path):
        """``(node, ifname)`` of a ``"node:ifname"`` string, or None (problem reported)."""
        if not isinstance(text, str) or text.count(":") != 1:
            self.bad(path, "expected an endpoint \"node:ifname\", got %r" % (text,))
            return None
        node, ifname = text.split(":")
        self.check_names(node, ifname, path)
        return node, ifname

    def check_names(self, node, ifname, path):
        """Report an unknown node or a bad interface name; the endpoint is still usable for later references."""
        if node not in self.nodes:
            self.bad(path, "endpoint %s:%s names node %r, which is not in nodes (%s)"
                     % (node, ifname, node, ", ".join(self.nodes)))
        elif not isinstance(ifname, str) or not _IFNAME_RE.match(ifname) or ifname in (".", ".."):
            self.bad(path, "invalid interface name %r: 1..15 characters of [A-Za-z0-9_.@-]" % (ifname,))

    def add(self, ep, path, what="endpoint"):
        if ep.name in self.eps:
            self.bad(path, "%s %s is used twice; each interface joins one link or is one bridge" % (what, ep.name))
            return False
        self.eps[ep.name] = ep
        return True

    def link(self, link, lpath):
        if not isinstance(link, dict):
            self.bad(lpath, "a link must be a mapping with endpoints")
            return
        self.unknown_keys(link, lpath, _LINK_KEYS)
        ends = link.get("endpoints")
        if not isinstance(ends, list) or len(ends) != 2:
            self.bad(lpath + ("endpoints",), "endpoints must be a list of exactly two endpoints")
            return
        mtu = self.int_opt(link, "mtu", lpath, 68, 65535, 1500)
        queues = self.int_opt(link, "queues", lpath, 1, 64, 1)
        gro = self.bool_opt(link, "gro", lpath, False)
        v4 = "auto" if self.bool_opt(link, "ipv4", lpath, True) else None
        v6 = "auto" if self.bool_opt(link, "ipv6", lpath, True) else None
        pair = []
        for ei, e in enumerate(ends):
            epath = lpath + ("endpoints", ei)
            field = field_name(epath)
            if isinstance(e, str):
                names = self.split_ep(e, epath)
                if names is None:
                    continue
                ep = EndpointSpec(names[0], names[1], field)
                ep.mtu, ep.queues, ep.gro, ep.ipv4, ep.ipv6 = mtu, queues, gro, v4, v6
            elif isinstance(e, dict):
                self.unknown_keys(e, epath, _EP_KEYS)
                self.check_names(e.get("node"), e.get("interface"), epath)
                ep = EndpointSpec(e.get("node"), e.get("interface"), field)
                ep.mtu = self.int_opt(e, "mtu", epath, 68, 65535, mtu)
                ep.queues = self.int_opt(e, "queues", epath, 1, 64, queues)
                ep.gro = self.bool_opt(e, "gro", epath, gro)
                ep.mac = self.mac_opt(e, epath)
                ep.ipv4 = self.addr_opt(e, "ipv4", epath, v4)
                ep.ipv6 = self.addr_opt(e, "ipv6", epath, v6)
            else:
                self.bad(epath, "an endpoint is \"node:ifname\" or a mapping with node and interface, got %r" % (e,))
                continue
            if self.add(ep, epath):
                pair.append(ep)
        imp = self.impair_opt(link, lpath)
        if len(pair) == 2:
            pair[0].link, pair[1].link = pair[1], pair[0]
            pair[0].impair = imp

    def impair_opt(self, link, lpath):
        """The link's ``impair`` as an (a→b, b→a) Impairment pair, or None (absent, or a problem reported)."""
        if "impair" not in link:
            return None
        try:
            return impairment.parse_impairment(link["impair"])
        except ConfigurationError as exc:
            parts = (exc.field or "impair").split(".")
            self.bad(lpath + tuple(parts), str(exc))
            return None

    def bridge(self, br, bpath):
        if not isinstance(br, dict):
            self.bad(bpath, "a bridge must be a mapping with name and ports")
            return
        self.unknown_keys(br, bpath, _BRIDGE_KEYS)
        names = self.split_ep(br.get("name"), bpath + ("name",))
        if names is None:
            return
        node = names[0]
        b = EndpointSpec(node, names[1], field_name(bpath))
        b.kind = "bridge"
        b.mtu = self.int_opt(br, "mtu", bpath, 68, 65535, None) if "mtu" in br else None
        b.mac = self.mac_opt(br, bpath)
        b.ipv4 = self.addr_opt(br, "ipv4", bpath, None)
        b.ipv6 = self.addr_opt(br, "ipv6", bpath, None)
        if not self.add(b, bpath + ("name",), "bridge name"):
            return
        self.bridges.append(b)
        ports = br.get("ports")
        if not isinstance(ports, list) or not ports:
            self.bad(bpath + ("ports",), "ports must be a non-empty list of endpoints of node %r" % node)
            return
        plist = []
        for pi, p in enumerate(ports):
            ppath = bpath + ("ports", pi)
            if self.split_ep(p, ppath) is None:
                continue
            if p.split(":")[0] != node:
                self.bad(ppath, "bridge port %s is not on the bridge's node %r" % (p, node))
            elif p not in self.eps or self.eps[p].kind != "veth":
                close = difflib.get_close_matches(p, [n for n, e in self.eps.items() if e.kind == "veth"], n=1)
                self.bad(ppath, "bridge port %s is not a link endpoint%s"
                         % (p, " (did you mean %r?)" % close[0] if close else ""))
            elif p in self.enslaved:
                self.bad(ppath, "bridge port %s already belongs to bridge %s" % (p, self.enslaved[p]))
            else:
                self.enslaved[p] = b.name
                port = self.eps[p]
                port.ipv4 = port.ipv6 = None  # a bridge port carries no address of its own
                plist.append(port)
        b.ports = tuple(plist)


# --------------------------------------------------------------------------------------------
# addressing
# --------------------------------------------------------------------------------------------
def segments(eps, bridges):
    """Endpoints joined at layer 2 (a link's two ends; a bridge and its ports): a list of segments,
    each a list of EndpointSpec in spec order (bridge devices included)."""
    parent = {name: name for name in eps}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a, b):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[rb] = ra

    for ep in eps.values():
        if ep.link is not None:
            union(ep.name, ep.link.name)
    for b in bridges:
        for p in b.ports:
            union(b.name, p.name)
    order, groups = [], {}
    for name, ep in eps.items():
        r = find(name)
        if r not in groups:
            groups[r] = []
            order.append(r)
        groups[r].append(ep)
    return [groups[r] for r in order]


def assign_addresses(eps, bridges):
    """Fill "auto" addresses per layer-2 segment; return {name: (IPv4Interface|None, IPv6Interface|None)}.

    Segment ``k`` gets :data:`IPV4_POOL`'s ``k``-th /24 and :data:`IPV6_POOL`'s ``k``-th /64; its
    endpoints get hosts .1, .2, … in spec order, skipping addresses given explicitly.
    """
    taken4 = {ep.ipv4.ip for ep in eps.values() if isinstance(ep.ipv4, ipaddress.IPv4Interface)}
    taken6 = {ep.ipv6.ip for ep in eps.values() if isinstance(ep.ipv6, ipaddress.IPv6Interface)}
    segs = segments(eps, bridges)
    if len(segs) > MAX_SEGMENTS:
        raise _SpecProblem(("links",), "at most %d layer-2 segments can be auto-addressed, got %d"
                           % (MAX_SEGMENTS, len(segs)))
    out = {}
    for k, seg in enumerate(segs):
        net4 = ipaddress.ip_network("%s/24" % (IPV4_POOL.network_address + k * 256))
        net6 = ipaddress.ip_network("%s/64" % (IPV6_POOL.network_address + (k << 64)))
        hosts4 = (h for h in itertools.islice(net4.hosts(), 0, _HOSTS_PER_SEGMENT) if h not in taken4)
        hosts6 = (net6.network_address + i for i in itertools.count(1) if net6.network_address + i not in taken6)
        for ep in seg:
            v4, v6 = ep.ipv4, ep.ipv6
            if v4 == "auto":
                try:
                    v4 = ipaddress.IPv4Interface("%s/24" % next(hosts4))
                except StopIteration:
                    raise _SpecProblem(_path_of(ep.field), "segment of %s has more than %d endpoints"
                                       % (ep.name, _HOSTS_PER_SEGMENT)) from None
            if v6 == "auto":
                v6 = ipaddress.IPv6Interface("%s/64" % next(hosts6))
            out[ep.name] = (v4, v6)
    return out


def _path_of(field):
    """The path tuple of a :func:`field_name` string (``links[0].endpoints[1]``)."""
    out = []
    for name, idx in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]", field):
        out.append(name if name else int(idx))
    return tuple(out)
