"""DUT mode: the testkit's one-link fixtures and YAML scenarios on an operator's own interfaces.

Like the kernel's ``NETIF`` environment for ``drivers/net`` tests. Two existing interfaces cabled to
each other — two NIC ports, a NIC and its switch port's twin, a veth pair an operator made — are
named with ``--netring-dut IFACE[@NETNS]`` and ``--netring-peer IFACE[@NETNS]`` (or the environment
variables ``NETRING_DUT`` / ``NETRING_PEER``, or the ini keys ``netring_dut`` / ``netring_peer``;
the option wins over the environment, the environment over the ini file). Then:

- the ``veth_pair`` fixture yields ``(peer, dut)`` endpoints over those interfaces;
- every YAML scenario whose topology is one link runs on the pair: the endpoint carrying the
  scenario's first XDP program (else the first stream's ``to``) is the DUT (:func:`dut_endpoint`);
  other topologies skip, saying why;
- ``--netring-xdp-features`` adds one pytest item per XDP feature: the capability check of
  :mod:`netring_testkit.xdpfeatures` on the DUT with frames from the peer (mismatch → failure,
  unknown → skip).

Nothing the operator made is deleted or renamed (:class:`netring_testkit.topology.AdoptedTopology`):
the addresses the toolkit adds are removed afterwards, the XDP programs it attaches detached, MTU,
GRO and sysctl changes restored; an interface that is missing, down or already running an XDP
program skips the test before any traffic (an error under ``--netring-require-privileges``).
The interfaces are shared by every test of the session: run DUT mode without ``-n`` (xdist).

This module is imported by the auto-loaded plugin: it loads neither pyroute2 nor the C core.
"""
import collections
import os

import pytest

__all__ = ["DutSpec", "DutPair", "parse_endpoint", "label", "dut_endpoint", "from_config", "XdpFeaturesCollector",
           "XdpFeatureItem", "DUT_ENV", "PEER_ENV"]

#: Environment variables naming the DUT and its peer (``IFACE[@NETNS]``).
DUT_ENV, PEER_ENV = "NETRING_DUT", "NETRING_PEER"

#: ``DutSpec(ifname, netns)``: an interface and the ``/run/netns`` name of its namespace (None: the current one).
DutSpec = collections.namedtuple("DutSpec", "ifname netns")


def parse_endpoint(text, what="--netring-dut"):
    """``"eth1@lab"`` → ``DutSpec("eth1", "lab")``; ``"eth1"`` → ``DutSpec("eth1", None)``.

    Raises ``ValueError`` naming ``what`` for an empty or over-long interface name or namespace.
    """
    ifname, _, netns = str(text).strip().partition("@")
    if not 0 < len(ifname) < 16 or "/" in ifname or " " in ifname:
        raise ValueError("%s %r: the interface name must be 1..15 characters without '/' or spaces "
                         "(IFACE or IFACE@NETNS)" % (what, text))
    if "@" in text and (not netns or "/" in netns):
        raise ValueError("%s %r: the namespace after '@' must be a name from `ip netns list`" % (what, text))
    return DutSpec(ifname, netns or None)


def label(spec):
    """How messages name a :class:`DutSpec`: ``eth1`` or ``eth1 in namespace lab``."""
    return spec.ifname if spec.netns is None else "%s in namespace %s" % (spec.ifname, spec.netns)


class DutPair:
    """The DUT and its peer as configured for the session (see the module docstring)."""

    def __init__(self, dut, peer):
        #: The device under test (:class:`DutSpec`).
        self.dut = dut
        #: The interface cabled to it, which sends and receives the other side's frames (:class:`DutSpec`).
        self.peer = peer

    def preflight(self):
        """Why the pair cannot be used right now (missing, down, an XDP program attached), or None.

        Facts only: nothing is changed."""
        from netring import xdp
        from netring.errors import NetringError
        from netring.netns import NetNS

        for role, spec in (("DUT", self.dut), ("peer", self.peer)):
            try:
                with NetNS.open("/proc/thread-self/ns/net" if spec.netns is None else spec.netns) as ns:
                    up = ns.run(_up_here, spec.ifname)
                    if up is None:
                        return "DUT mode: the %s %s does not exist; check it with `ip%s -br link`" % (
                            role, label(spec), "" if spec.netns is None else " -n " + spec.netns)
                    if not up:
                        return ("DUT mode: the %s %s is down; bring it up (`ip%s link set dev %s up`) — the toolkit "
                                "never changes a link's state" % (role, label(spec),
                                                                  "" if spec.netns is None else " -n " + spec.netns,
                                                                  spec.ifname))
                    info = xdp.query(spec.ifname, netns=ns)
            except NetringError as exc:
                return "DUT mode: the %s %s cannot be used: %s" % (role, label(spec), exc)
            if info is not None:
                return ("DUT mode: the %s %s is in use by XDP program %r (id %d, %s mode); detach it first"
                        % (role, label(spec), info.name, info.id, info.mode))
        return None

    def topology(self, spec, dut_name):
        """An (unbuilt) :class:`~netring_testkit.topology.AdoptedTopology` for the one-link ``spec``: its
        endpoint ``dut_name`` on the DUT, the other one on the peer."""
        from .topology import AdoptedTopology, parse_spec

        _nodes, eps, _bridges = parse_spec(spec)
        if dut_name not in eps:
            raise ValueError("endpoint %r is not in the spec (have %s)" % (dut_name, ", ".join(eps)))
        other = eps[dut_name].link.name
        return AdoptedTopology(spec, {dut_name: tuple(self.dut), other: tuple(self.peer)})

    def __repr__(self):
        return "<DutPair dut=%s peer=%s>" % (label(self.dut), label(self.peer))


def _up_here(ifname):
    """Inside a namespace: True if ``ifname`` is operationally up (UP, or UNKNOWN for drivers that report no
    carrier state), False if not, None if it does not exist. (Not /sys/class/net: sysfs shows the
    namespace it was mounted in, not the calling thread's.)"""
    from netring import netdev

    state = netdev.operstates().get(ifname)
    if state is None:
        return None
    return state[1] in ("UP", "UNKNOWN")


def from_config(config):
    """The session's :class:`DutPair` from options, environment or ini (None: DUT mode is off).

    Raises ``ValueError`` for a malformed value or a DUT without a peer (or a peer without a DUT).
    """
    def value(option, env, ini):
        v = config.getoption(option, None)
        if v is None:
            v = os.environ.get(env) or None
        if v is None:
            v = config.getini(ini) or None
        return v

    dut = value("netring_dut", DUT_ENV, "netring_dut")
    peer = value("netring_peer", PEER_ENV, "netring_peer")
    if dut is None and peer is None:
        return None
    if dut is None or peer is None:
        raise ValueError("DUT mode needs both --netring-dut and --netring-peer (or %s and %s): the device under "
                         "test and the interface cabled to it; got only %s" % (DUT_ENV, PEER_ENV,
                                                                              "the DUT" if peer is None else "the peer"))
    pair = DutPair(parse_endpoint(dut, "--netring-dut"), parse_endpoint(peer, "--netring-peer"))
    if pair.dut == pair.peer:
        raise ValueError("--netring-dut and --netring-peer name the same interface (%s); the peer is the one at "
                         "the other end of the cable" % label(pair.dut))
    return pair


def dut_endpoint(scenario):
    """``(dut endpoint name, None)`` for a scenario DUT mode can run — one link, no bridge: the endpoint of
    its first XDP program, else its first stream's ``to`` — or ``(None, reason)`` for one it cannot."""
    topo = scenario.topology or {}
    links, bridges = topo.get("links") or [], topo.get("bridges") or []
    if len(links) != 1 or bridges:
        return None, ("DUT mode runs scenarios whose topology is one link; %s has %d link(s) and %d bridge(s)"
                      % (scenario.id, len(links), len(bridges)))
    if links[0].get("impair"):
        return None, ("DUT mode runs on the operator's pair as cabled; %s impairs its link, which needs the "
                      "toolkit's own veths and a Bridge between them" % scenario.id)
    if scenario.xdp:
        return scenario.xdp[0].attach, None
    if scenario.streams:
        return scenario.streams[0].dst, None
    return None, "DUT mode: scenario %s has neither an XDP program nor a stream to pick the DUT by" % scenario.id


# --------------------------------------------------------------------------------------------
# The capability check as pytest items (--netring-xdp-features)
# --------------------------------------------------------------------------------------------
_REPORT = pytest.StashKey()


class XdpFeatureMismatch(Exception):
    """Raised by an :class:`XdpFeatureItem` whose feature is a mismatch; carries the feature's record."""

    def __init__(self, name, record):
        super().__init__("%s: %s" % (name, record["detail"]))
        self.name = name
        self.record = record


class XdpFeaturesCollector(pytest.Collector):
    """``xdp-features``: one :class:`XdpFeatureItem` per netdev XDP feature of the DUT."""

    def collect(self):
        """One item per feature, in netdev.yaml order."""
        from netring.netdev import XDP_FEATURES

        for name in XDP_FEATURES:
            yield XdpFeatureItem.from_parent(self, name=name)


class XdpFeatureItem(pytest.Item):
    """One feature's verdict. The check runs once per session, for the first item (frames from the peer)."""

    def runtest(self):
        """Pass on ``ok``, fail on ``mismatch``, skip on ``unknown``; the check runs at the first item."""
        from netring.errors import NetringError

        result = self.config.stash.get(_REPORT, None)
        if result is None:
            from . import xdpfeatures

            pair = from_config(self.config)
            try:
                result = xdpfeatures.check(pair.dut.ifname, netns=pair.dut.netns, peer=pair.peer.ifname,
                                           peer_netns=pair.peer.netns)
            except NetringError as exc:
                result = exc
            self.config.stash[_REPORT] = result
        if isinstance(result, Exception):
            raise result
        rec = result.data["features"][self.name]
        self.user_properties.append(("advertised", rec["advertised"]))
        self.user_properties.append(("observed", rec["observed"]))
        self.user_properties.append(("verdict", rec["verdict"]))
        if rec["verdict"] == "mismatch":
            raise XdpFeatureMismatch(self.name, rec)
        if rec["verdict"] == "unknown":
            pytest.skip("xdp-features %s: %s" % (self.name, rec["detail"]))

    def repr_failure(self, excinfo, style=None):
        """The feature's verdict and its sub-checks; a netring error as one line."""
        from netring.errors import NetringError

        exc = excinfo.value
        if isinstance(exc, XdpFeatureMismatch):
            r = exc.record
            lines = ["%s: advertised %s, observed %s: %s" % (exc.name, r["advertised"], r["observed"], r["detail"])]
            lines += ["  %s %s%s: %s" % ({True: "yes", False: "no", None: "?"}[c["ok"]], c["name"],
                                          " [%s]" % c["condition"] if c.get("condition") else "", c["detail"])
                      for c in r["checks"]]
            return "\n".join(lines)
        if isinstance(exc, NetringError):
            return "xdp-features could not run: %s: %s" % (type(exc).__name__, exc)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        """Where pytest says the item is: the session's root, named ``xdp-features FEATURE``."""
        return self.path, None, "xdp-features %s" % self.name
