"""Driver XDP capability checks: what a device advertises against what it does, feature by feature.

:func:`check` reads the advertised set over the ``netdev`` generic-netlink family
(:func:`netring.netdev.features`: xdp-features, xdp-zc-max-segs, xdp-rx-metadata-features,
xsk-features) and then *observes* each of the seven netdev XDP features by doing it, with frames
sent from a peer interface cabled to the device:

``basic``
    native attach; XDP_PASS delivers to the stack, XDP_DROP and XDP_ABORTED count and deliver
    nothing, XDP_TX returns the frames (MACs swapped) to the peer — each a sub-result.
``redirect``
    XDP_REDIRECT out of the device's RX path: through a cpumap to the stack (as the kernel's own
    test does), and through a devmap to another device (a veth the check makes in a namespace of its own).
``ndo-xmit``
    the device as a redirect *target*: frames redirected into it (from that helper veth) leave it and
    reach the peer.
``xsk-zerocopy``
    a :class:`netring.XdpSocket` bound with ``mode="zerocopy"`` to queue 0 receives the peer's frames
    (a copy-mode socket is tried as well, as context: it does not count).
``hw-offload``
    a hand-assembled XDP_PASS program loaded *bound to the device* for offload (``prog_ifindex``, in the
    device's namespace), then attached with ``XDP_FLAGS_HW_MODE`` (``netring.xdp``, ``mode="offload"``) and
    detached; the sub-results say which step the device refused, with the errno.
``rx-sg`` / ``ndo-xmit-sg``
    frames larger than a page through a frags-aware program: received intact, and redirected into
    the device intact (MTUs raised for it, and restored).

Conditions that matter are tried both ways and reported: on veth, XDP_TX and redirect-into work only
when the *receiving* end runs an XDP program, so those sub-checks run without and with the built-in
``pass`` program on the peer (the advertised set is read in both states too: a veth advertises
``ndo-xmit`` only while its peer has a program).

Verdict per feature (:func:`verdict`): ``ok`` (observed = advertised), ``mismatch``, ``unknown``
(could not be tried; the detail says why). A feature the operator requires (``expect``) that is not
observed is a ``mismatch``. :class:`Report` renders the human table, the JSON document and JUnit XML.

Everything the check changes is undone on the way out — also on Ctrl-C: programs detached (DUT,
peer, helper), MTUs restored, the helper namespace closed (its veth vanishes with it). It never
changes a link's up/down state: a device that is down, missing, or already running an XDP program
is refused before any frame is sent (:class:`CheckError`).
"""
import contextlib
import errno
import fcntl
import os
import platform
import secrets
import socket
import struct
import time
from xml.sax.saxutils import quoteattr, escape

from netring import netdev, xdp
from netring.bpf import create_map, load_program
from netring.bpf.asm import R0, R1, R2, R3, R6, R7, FP, XDP_ABORTED, XDP_PASS, XDP_REDIRECT, Asm
from netring.bpf.programs import builtin, frags_supported, read_counters
from netring.errors import ENOTSUPP, NetringError, UnsupportedError
from netring.netns import NetNS

from . import frames

__all__ = ["FEATURES", "VERDICTS", "CheckError", "Report", "check", "verdict", "parse_expect"]

#: The seven netdev XDP features, in netdev.yaml order.
FEATURES = netdev.XDP_FEATURES
#: Verdict values.
VERDICTS = ("ok", "mismatch", "unknown")

_FRAMES = 32                 # frames per sub-check: enough to see a pattern, few enough to be quick
_WAIT_S = 1.0                # how long a receiver waits for the last frame of a sub-check
_SG_MTU = 9000               # the MTU the multi-buffer checks raise links to (bounded by IFLA_MAX_MTU)
_MAGIC = b"NRXF"             # marks the check's frames (payload start): nothing else on the link counts
_SOL_PACKET = 263             # linux/socket.h
_PACKET_IGNORE_OUTGOING = 23  # linux/if_packet.h
_SO_RCVBUFFORCE = 33
_ETH_P_ALL = 0x0003
_IFF_UP = 0x1
_SIOCETHTOOL = 0x8946
_ETHTOOL_GDRVINFO = 0x3
_PKT_OFF = 42                # payload offset of an untagged IPv4/UDP frame


class CheckError(NetringError):
    """The capability check could not run (exit status 2): a device missing, down, in use by another
    XDP program, no peer to send from; the message says which and what to do."""


# --------------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------------
def verdict(advertised, observed, expected=False):
    """The verdict of one feature: ``"ok"``, ``"mismatch"`` or ``"unknown"``.

    ``advertised``: bool; ``observed``: True, False or None (could not be tried); ``expected``: the
    operator requires the feature (``--expect``). ``ok`` when observed equals advertised; a required
    feature that is not observed — tried and failed, or not tried — is a ``mismatch`` (a requirement
    must be proven); otherwise an untried feature is ``unknown``.
    """
    if expected and observed is not True:
        return "mismatch"
    if observed is None:
        return "unknown"
    return "ok" if bool(observed) == bool(advertised) else "mismatch"


def parse_expect(text):
    """``"basic,redirect"`` (or ``["basic", "redirect"]``) → ``("basic", "redirect")``; an unknown name,
    or a value that is neither, is a :class:`CheckError` naming the valid features."""
    if text is None or isinstance(text, str):
        parts = (text or "").split(",")
    else:
        try:
            parts = list(text)
        except TypeError:
            parts = [text]
    for p in parts:
        if not isinstance(p, str):
            raise CheckError("expected XDP feature names (str), not %r; use %s" % (p, ", ".join(FEATURES)))
    names = tuple(n.strip() for n in parts if n.strip())
    bad = [n for n in names if n not in FEATURES]
    if bad:
        raise CheckError("unknown XDP feature %r in --expect; use %s" % (bad[0], ", ".join(FEATURES)))
    return names


# --------------------------------------------------------------------------------------------
# Interfaces and what runs inside their namespaces
# --------------------------------------------------------------------------------------------
def _link_here(ifname):
    """Inside a namespace: the facts about ``ifname`` the check needs (None when it does not exist)."""
    from pyroute2 import IPRoute

    try:
        ifindex = socket.if_nametoindex(ifname)
    except OSError:
        return None
    with IPRoute() as ipr:
        msg = ipr.get_links(ifindex)[0]
    info = msg.get_attr("IFLA_LINKINFO")
    xdpattr = msg.get_attr("IFLA_XDP")
    return {"ifindex": ifindex, "mac": msg.get_attr("IFLA_ADDRESS"), "mtu": msg.get_attr("IFLA_MTU"),
            "max_mtu": msg.get_attr("IFLA_MAX_MTU") or 65535,
            "kind": info.get_attr("IFLA_INFO_KIND") if info is not None else None,
            "up": bool(msg["flags"] & _IFF_UP), "operstate": msg.get_attr("IFLA_OPERSTATE"),
            "xdp": xdpattr.get_attr("IFLA_XDP_ATTACHED") if xdpattr is not None else None,
            "link": msg.get_attr("IFLA_LINK"), "link_netnsid": msg.get_attr("IFLA_LINK_NETNSID")}


def _driver_here(ifname):
    """Inside a namespace: the driver name from ETHTOOL_GDRVINFO (None if the device has none)."""
    buf = bytearray(struct.pack("I", _ETHTOOL_GDRVINFO) + bytes(192))
    import ctypes

    cbuf = (ctypes.c_char * len(buf)).from_buffer(buf)
    ifr = struct.pack("16sP", ifname.encode(), ctypes.addressof(cbuf)).ljust(40, b"\0")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            fcntl.ioctl(s, _SIOCETHTOOL, ifr)
    except OSError:
        return None
    return bytes(buf[4:36]).split(b"\0", 1)[0].decode(errors="replace") or None


def _set_mtu_here(ifindex, mtu):
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        ipr.link("set", index=ifindex, mtu=mtu)


def _helper_veth_here():
    """Inside the check's own namespace: a veth pair ``nrx0``/``nrx1`` with IPv6 off, both up."""
    from pyroute2 import IPRoute

    for scope in ("all", "default"):
        with open("/proc/sys/net/ipv6/conf/%s/disable_ipv6" % scope, "w") as f:
            f.write("1")
    with IPRoute() as ipr:
        ipr.link("add", ifname="nrx0", kind="veth", peer="nrx1")
        for name in ("nrx0", "nrx1"):
            ipr.link("set", index=ipr.link_lookup(ifname=name)[0], state="up")


class _Iface:
    """One interface the check uses: name, namespace (a NetNS, never None: the current one is opened
    too, so devmaps are filled where the device lives) and its facts."""

    def __init__(self, ifname, netns, label):
        self.ifname = ifname
        self.netns = netns
        self.label = label
        self.facts = None

    def refresh(self):
        self.facts = self.netns.run(_link_here, self.ifname)
        return self.facts

    @property
    def ifindex(self):
        return self.facts["ifindex"]

    @property
    def mac(self):
        return self.facts["mac"]

    def __str__(self):
        return self.label


def _open_netns(spec):
    """A NetNS of our own for ``spec`` (a name, path, NetNS, or None = the current namespace)."""
    return NetNS.open("/proc/thread-self/ns/net" if spec is None else spec)


def _where(ifname, spec):
    return ifname if spec is None else "%s in namespace %s" % (ifname, getattr(spec, "name", None) or spec)


# --------------------------------------------------------------------------------------------
# Frames out, frames in
# --------------------------------------------------------------------------------------------
class _Traffic:
    """Sends marked frames from one interface and counts the intact ones arriving at another."""

    def __init__(self):
        self._tag = secrets.token_bytes(4)
        self._serial = 0

    def frames(self, src, dst_mac, size, count=_FRAMES):
        """``count`` marked IPv4/UDP frames of ``size`` B from ``src`` to ``dst_mac`` (a fresh check id)."""
        self._serial += 1
        out = []
        for seq in range(count):
            payload = _MAGIC + self._tag + struct.pack("!HI", self._serial, seq)
            out.append(frames.build(eth={"dst": dst_mac, "src": src.mac},
                                    ipv4={"src": "198.18.0.1", "dst": "198.18.0.2"}, udp={"dport": 9},
                                    payload=payload, size=size))
        return out

    def exchange(self, src, dst, sent, swapped=False):
        """Send ``sent`` from ``src``; return how many arrived intact at ``dst`` (``swapped``: with
        source and destination MAC exchanged, as XDP_TX returns them)."""
        key = sent[0][_PKT_OFF:_PKT_OFF + 10]
        want = {}
        for f in sent:
            if swapped:
                f = f[6:12] + f[0:6] + f[12:]
            want[f[_PKT_OFF + 10:_PKT_OFF + 14]] = f
        rx = dst.netns.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
        tx = src.netns.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        got = set()
        try:
            rx.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, 8 << 20)
            rx.setsockopt(_SOL_PACKET, _PACKET_IGNORE_OUTGOING, 1)
            rx.bind((dst.ifname, _ETH_P_ALL))
            tx.bind((src.ifname, 0))
            for f in sent:
                tx.send(f)
            deadline = time.monotonic() + _WAIT_S
            while len(got) < len(sent):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                rx.settimeout(left)
                try:
                    data = rx.recv(65536)
                except socket.timeout:
                    break
                if data[_PKT_OFF:_PKT_OFF + 10] == key and want.get(data[_PKT_OFF + 10:_PKT_OFF + 14]) == data:
                    got.add(data[_PKT_OFF + 10:_PKT_OFF + 14])
        finally:
            rx.close()
            tx.close()
        return len(got)


    def exchange_xsk(self, src, sock, sent):
        """Send ``sent`` from ``src``; return how many arrived intact on the AF_XDP socket ``sock``."""
        want = set(sent)
        got = set()
        tx = src.netns.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            tx.bind((src.ifname, 0))
            for f in sent:
                tx.send(f)
        finally:
            tx.close()
        deadline = time.monotonic() + _WAIT_S
        while len(got) < len(sent) and time.monotonic() < deadline:
            batch = sock.next_batch(timeout=max(0.0, min(0.1, deadline - time.monotonic())))
            if batch is None:
                continue
            with batch:
                for pkt in batch:
                    data = bytes(pkt.data)
                    if data in want:
                        got.add(data)
        return len(got)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
def _sub(name, ok, detail, condition=None):
    d = {"name": name, "ok": ok, "detail": detail}
    if condition is not None:
        d["condition"] = condition
    return d


def _errno_name(exc):
    """``EINVAL`` / ``EOPNOTSUPP`` / ``ENOTSUPP`` (or ``errno N``) of a refusal."""
    code = getattr(exc, "errno", None)
    names = {errno.EOPNOTSUPP: "EOPNOTSUPP", ENOTSUPP: "ENOTSUPP"}
    return names.get(code) or errno.errorcode.get(code) or "errno %s" % code


def _counted(prog, action):
    return prog.counters()[action]["packets"]


class Report:
    """The result of a check: :attr:`data` is the JSON document (the shape in the README); renders
    itself as a table (:meth:`table`) and JUnit XML (:meth:`junit`); :attr:`exit_status` is 0 when
    nothing mismatches, else 1."""

    def __init__(self, data, peer=None, mode="native"):
        #: ``{"interface", "netns", "driver", "kernel", "advertised_raw", "zc_max_segs", "features": {...}}``.
        self.data = data
        #: How the peer was chosen (text, for the table's header).
        self.peer = peer
        #: The XDP mode of the programs attached to the device (native or generic).
        self.mode = mode

    @property
    def exit_status(self):
        """0 when no feature mismatches, 1 otherwise."""
        return 1 if any(f["verdict"] == "mismatch" for f in self.data["features"].values()) else 0

    def table(self):
        """The human table: one line per feature, its sub-checks indented below it."""
        d = self.data
        head = "xdp-features: %s%s (driver %s, kernel %s), advertised: %s, zc_max_segs %s" % (
            d["interface"], " in namespace %s" % d["netns"] if d["netns"] else "", d["driver"] or "?",
            d["kernel"], ",".join(sorted(netdev.decode_features(d["advertised_raw"].get("xdp-features", 0)),
                                       key=_feature_order)) or "none",
            d["zc_max_segs"])
        lines = [head]
        if self.peer:
            lines.append("peer: %s; programs on the device in %s mode" % (self.peer, self.mode))
        lines.append("%-13s %-10s %-9s %-9s %s" % ("FEATURE", "ADVERTISED", "OBSERVED", "VERDICT", "DETAIL"))
        yn = {True: "yes", False: "no", None: "?"}
        for name in FEATURES:
            f = d["features"][name]
            lines.append("%-13s %-10s %-9s %-9s %s" % (name, yn[f["advertised"]], yn[f["observed"]],
                                                       f["verdict"], f["detail"]))
            for c in f["checks"]:
                lines.append("    " + _check_line(c))
        n = sum(1 for f in d["features"].values() if f["verdict"] == "mismatch")
        lines.append("%d mismatch%s" % (n, "" if n == 1 else "es"))
        return "\n".join(lines) + "\n"

    def junit(self):
        """JUnit XML: one testcase per feature (mismatch → failure, unknown → skipped)."""
        return junit_xml(self.data)


def _check_line(c):
    """One sub-result as text: ``yes tx [pass program on the peer]: 32 of 32 frames ...``."""
    return "%s %s%s: %s" % ({True: "yes", False: "no", None: "?"}[c["ok"]], c["name"],
                            " [%s]" % c["condition"] if c.get("condition") else "", c["detail"])


def _feature_order(name):
    return FEATURES.index(name) if name in FEATURES else len(FEATURES)


def junit_xml(data, error=None):
    """JUnit XML for a report's ``data`` (or, with ``error``, one errored testcase saying why the check could not run)."""
    cls = "xdp-features.%s" % (data.get("interface") or "?")
    cases = []
    if error is not None:
        cases.append('  <testcase classname=%s name="xdp-features"><error message=%s/></testcase>'
                     % (quoteattr(cls), quoteattr(error)))
    for name in FEATURES if error is None else ():
        f = data["features"][name]
        body = ""
        text = escape("\n".join(_check_line(c) for c in f["checks"]))
        if f["verdict"] == "mismatch":
            body = "<failure message=%s>%s</failure>" % (quoteattr(f["detail"]), text)
        elif f["verdict"] == "unknown":
            body = "<skipped message=%s/>" % quoteattr(f["detail"])
        else:
            body = "<system-out>%s</system-out>" % text
        cases.append("  <testcase classname=%s name=%s>%s</testcase>" % (quoteattr(cls), quoteattr(name), body))
    failures = sum(1 for c in cases if "<failure" in c)
    skipped = sum(1 for c in cases if "<skipped" in c)
    return ('<?xml version="1.0" encoding="utf-8"?>\n<testsuites>\n<testsuite name="xdp-features" tests="%d" '
            'failures="%d" errors="%d" skipped="%d">\n%s\n</testsuite>\n</testsuites>\n'
            % (len(cases), failures, 1 if error else 0, skipped, "\n".join(cases)))


# --------------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------------
def find_veth_peer(ifname, netns=None):
    """``(peer ifname, namespace)`` of the veth ``ifname`` in ``netns`` when its other end can be found:
    in the same namespace, the current one or a ``/run/netns`` namespace (matched by name, ifindex and
    MAC as the veth itself reports them); else None."""
    peer = netdev.veth_peer(ifname, netns=netns)
    if peer is None:
        return None
    if peer.same_netns:
        return peer.ifname, netns
    names = sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []
    for cand in [None] + names:
        try:
            with _open_netns(cand) as ns:
                facts = ns.run(_link_here, peer.ifname)
        except NetringError:
            continue
        if facts and facts["ifindex"] == peer.ifindex and facts["mac"] == peer.mac and facts["kind"] == "veth":
            return peer.ifname, cand
    return None


def check(ifname, netns=None, peer=None, peer_netns=None, mode="native", expect=(), progress=None):
    """Run the capability check on ``ifname`` in ``netns`` with frames from ``peer`` in ``peer_netns``
    and return a :class:`Report`.

    ``netns``/``peer_netns``: a namespace name, path, :class:`~netring.netns.NetNS` or None (the
    current one). ``peer`` None: the other end of ``ifname`` when it is a veth whose peer can be
    found (:func:`find_veth_peer`), else :class:`CheckError`. ``mode``: native or generic (for the
    programs on ``ifname``). ``expect``: feature names the operator requires. ``progress(text)``
    is called before each feature is tried. Raises :class:`CheckError` (or another netring error)
    when the check cannot run; restores what it changed on every way out, KeyboardInterrupt included.
    """
    if mode not in ("native", "generic"):
        raise CheckError("mode must be native or generic, not %r" % (mode,))
    expect = parse_expect(expect)
    peer_how = None
    if peer is None:
        found = find_veth_peer(ifname, netns)
        if found is None:
            raise CheckError("%s is not a veth whose other end this process can reach: name the interface cabled to "
                             "it with --peer IFACE [--peer-netns NS]" % _where(ifname, netns))
        peer, peer_netns = found
        peer_how = "%s (the veth's other end, found automatically)" % _where(peer, peer_netns)
    else:
        peer_how = _where(peer, peer_netns)
    with contextlib.ExitStack() as stack:
        dut = _Iface(ifname, stack.enter_context(_open_netns(netns)), _where(ifname, netns))
        other = _Iface(peer, stack.enter_context(_open_netns(peer_netns)), _where(peer, peer_netns))
        for it in (dut, other):
            f = it.refresh()
            if f is None:
                raise CheckError("interface %s not found; check the name with `ip -br link`" % it)
            if not f["up"] or f["operstate"] not in ("UP", "UNKNOWN"):
                raise CheckError("%s is down (operstate %s); bring it up (`ip link set dev %s up`) and cable it to its "
                                 "peer — the check never changes a link's state" % (it, f["operstate"], it.ifname))
            if f["xdp"]:
                raise CheckError("%s already runs an XDP program (%s); the check needs the interface to itself — "
                                 "detach it first (`ip link set dev %s xdp off`, or close the owner's bpf_link)"
                                 % (it, f["xdp"], it.ifname))
        if dut.netns.inode == other.netns.inode and dut.ifindex == other.ifindex:
            raise CheckError("the peer is the device itself (%s); name the interface at the other end of the cable" % dut)
        info = netdev.features(ifname, netns=dut.netns)
        run = _Run(stack, dut, other, mode, progress)
        run.check_cabled()
        features = run.observe(info)
        data = {"interface": ifname, "netns": _ns_name(netns), "driver": dut.netns.run(_driver_here, ifname)
                or dut.facts["kind"], "kernel": platform.release(), "advertised_raw": dict(info.raw),
                "zc_max_segs": info.xdp_zc_max_segs, "features": {}}
        for name in FEATURES:
            adv, obs, detail, checks = features[name]
            v = verdict(adv, obs, name in expect)
            if name in expect and obs is not True:
                detail = "required (--expect) but %s; %s" % ("not observed" if obs is False else "not tried", detail)
            data["features"][name] = {"advertised": adv, "observed": obs, "verdict": v, "detail": detail,
                                      "checks": checks}
    return Report(data, peer_how, mode)


def _ns_name(spec):
    if spec is None:
        return None
    return getattr(spec, "name", None) or str(spec)


class _Run:
    """One check's state: the two interfaces, the helper namespace, the programs attached so far."""

    def __init__(self, stack, dut, peer, mode, progress):
        self.stack = stack
        self.dut = dut
        self.peer = peer
        self.mode = mode
        self.progress = progress or (lambda text: None)
        self.traffic = _Traffic()
        self._helper = None

    # -- building blocks ---------------------------------------------------------------
    def attach(self, stack, iface, prog, mode=None):
        """Attach ``prog`` to ``iface``; detached when ``stack`` unwinds (before the program closes)."""
        att = xdp.attach(iface.ifname, prog, netns=iface.netns, mode=mode or self.mode)
        stack.callback(att.detach)
        return att

    def program(self, stack, name, **options):
        return stack.enter_context(builtin(name, **options))

    def helper(self):
        """The check's own veth pair ``nrx0``/``nrx1`` in a fresh unnamed namespace (made once, on first use;
        it vanishes with the namespace when the check ends)."""
        if self._helper is None:
            ns = self.stack.enter_context(NetNS.create())
            ns.run(_helper_veth_here)
            h0, h1 = _Iface("nrx0", ns, "nrx0 (helper)"), _Iface("nrx1", ns, "nrx1 (helper)")
            h0.refresh()
            h1.refresh()
            self._helper = (h0, h1)
        return self._helper

    def raise_mtu(self, stack, ifaces, mtu):
        """Set each interface's MTU to ``mtu`` (restored when ``stack`` unwinds)."""
        for it in ifaces:
            old = it.refresh()["mtu"]
            if old == mtu:
                continue
            # The restore is registered first: a Ctrl-C while the helper thread sets the MTU still restores it.
            stack.callback(it.netns.run, _set_mtu_here, it.ifindex, old)
            it.netns.run(_set_mtu_here, it.ifindex, mtu)

    def peer_conditions(self):
        """The two states of the receiving peer: without an XDP program, and with the built-in pass
        (frags-aware, native where it can, else generic)."""
        return ("no XDP program on the peer", "pass program on the peer")

    def check_cabled(self):
        """Frames from the peer must reach the device with no program anywhere; else the pair is not what the
        operator thinks (wrong --peer, no cable, a filtering switch) and no verdict would mean anything."""
        sent = self.traffic.frames(self.peer, self.dut.mac, 64, count=8)
        if self.traffic.exchange(self.peer, self.dut, sent) == 0:
            raise CheckError("none of %d frames sent from %s to %s (MAC %s) arrived there: they do not look cabled to "
                             "each other; name the interface at the other end of %s's cable with --peer"
                             % (len(sent), self.peer, self.dut, self.dut.mac, self.dut.ifname))

    # -- features ------------------------------------------------------------------------
    def observe(self, info):
        adv = {n: n in info.xdp_features for n in FEATURES}
        out = {}
        for name, fn in (("basic", self.basic), ("redirect", self.redirect), ("ndo-xmit", self.ndo_xmit),
                         ("xsk-zerocopy", self.xsk_zerocopy), ("hw-offload", self.hw_offload),
                         ("rx-sg", self.rx_sg), ("ndo-xmit-sg", self.ndo_xmit_sg)):
            self.progress("checking %s" % name)
            try:
                observed, detail, checks, cond_adv = fn()
            except (CheckError, KeyboardInterrupt):
                raise
            except NetringError as exc:
                observed, detail, checks, cond_adv = None, "could not be tried: %s" % exc, [], None
            advertised = adv[name] or bool(cond_adv)
            if cond_adv and not adv[name]:
                detail = "advertised only with a program on the peer; " + detail
            out[name] = (advertised, observed, detail, checks)
        return out

    def _tx_to_peer(self, name, setup, sender, size=64, receiver=None):
        """Run ``setup(stack)`` then send from ``sender`` and count at ``receiver`` (default the peer),
        once without and once with the pass program on the peer; also read the DUT's advertised set
        in each state. Returns ``(checks, any_ok, advertised_with_program)``."""
        receiver = receiver or self.peer
        checks = []
        any_ok = False
        adv_with = set()
        for with_prog, cond in ((False, self.peer_conditions()[0]), (True, self.peer_conditions()[1])):
            with contextlib.ExitStack() as stack:
                if with_prog:
                    try:
                        self.attach(stack, self.peer, self.program(stack, "pass"), mode="native")
                    except NetringError as exc:
                        checks.append(_sub(name, None, "cannot attach pass to the peer: %s" % exc, cond))
                        continue
                    adv_with = netdev.features(self.dut.ifname, netns=self.dut.netns).xdp_features
                progs = setup(stack)
                sent = self.traffic.frames(sender, receiver.mac if name != "tx" else self.dut.mac, size)
                got = self.traffic.exchange(sender, receiver, sent, swapped=name == "tx")
                ok = got == len(sent)
                counted = ", ".join("%s counted %d" % (what, _counted(p, what)) for p, what in progs)
                checks.append(_sub(name, ok, "%d of %d frames (%d B) reached %s intact%s"
                                   % (got, len(sent), size, receiver, "; " + counted if counted else ""), cond))
                any_ok = any_ok or ok
        return checks, any_ok, adv_with

    def basic(self):
        checks = []
        dut, peer = self.dut, self.peer
        for action in ("pass", "drop", "aborted"):
            with contextlib.ExitStack() as stack:
                prog = self.program(stack, action)
                try:
                    self.attach(stack, dut, prog)
                except NetringError as exc:
                    checks.append(_sub(action, False, "%s attach failed: %s" % (self.mode, exc)))
                    return False, "%s attach failed: %s" % (self.mode, exc), checks, None
                sent = self.traffic.frames(peer, dut.mac, 64)
                got = self.traffic.exchange(peer, dut, sent)
                n = _counted(prog, action)
                want = len(sent) if action == "pass" else 0
                ok = got == want and n >= len(sent)
                checks.append(_sub(action, ok, "program counted %d of %d, %d delivered to the stack (want %d)"
                                   % (n, len(sent), got, want)))

        def setup(stack):
            prog = self.program(stack, "tx")
            self.attach(stack, dut, prog)
            return [(prog, "tx")]

        tx_checks, tx_ok, adv_with = self._tx_to_peer("tx", setup, peer)
        checks += tx_checks
        ok = all(c["ok"] for c in checks[:3]) and tx_ok
        detail = "PASS, DROP, ABORTED and TX behave" if ok else "failed: %s" % ", ".join(
            c["name"] + (" [%s]" % c["condition"] if c.get("condition") else "") for c in checks if not c["ok"])
        if tx_ok and not all(c["ok"] for c in tx_checks):
            detail += "; XDP_TX'd frames reach the peer only when it runs an XDP program"
        return ok, detail, checks, "basic" in adv_with

    def _cpumap_program(self, stack):
        """A hand-assembled program: ``bpf_redirect_map(cpumap, cpu 0, XDP_ABORTED)``, counted like the built-ins."""
        cpu = min(os.sched_getaffinity(0))
        cpumap = stack.enter_context(create_map("cpumap", 4, 4, cpu + 1, name="nrx_cpumap"))
        cpumap.update(cpu, 192)   # struct bpf_cpumap_val.qsize: frames queued for that CPU's kthread
        counters = create_map("percpu_array", 4, 16, 5, name="nrx_counters", value_format="<QQ")
        a = Asm()
        a.mov(R6, R1)
        a.ld_map_fd(R1, cpumap).mov(R2, cpu).mov(R3, XDP_ABORTED)
        a.call("redirect_map")
        a.mov(R7, R0)
        a.jmp("<=", R7, XDP_REDIRECT, "known")
        a.mov(R7, XDP_ABORTED)
        a.label("known")
        a.stx("w", FP, -4, R7)
        a.ld_map_fd(R1, counters)
        a.mov(R2, FP).add(R2, -4)
        a.call("map_lookup_elem")
        a.jmp("==", R0, 0, "out")
        a.ldx("dw", R1, R0, 0).add(R1, 1).stx("dw", R0, 0, R1)
        a.label("out")
        a.mov(R0, R7).exit()
        try:
            prog = load_program(a, name="nrx_cpumap", maps={"counters": counters}, frags=frags_supported())
        except BaseException:
            counters.close()
            raise
        stack.enter_context(prog)
        return prog, lambda: read_counters(counters)["redirect"]["packets"]

    def redirect(self):
        dut, peer = self.dut, self.peer
        checks = []
        with contextlib.ExitStack() as stack:
            prog, redirected = self._cpumap_program(stack)
            try:
                self.attach(stack, dut, prog)
            except NetringError as exc:
                return False, "%s attach failed: %s" % (self.mode, exc), [_sub("cpumap", False, str(exc))], None
            sent = self.traffic.frames(peer, dut.mac, 64)
            got = self.traffic.exchange(peer, dut, sent)
            n = redirected()
            checks.append(_sub("cpumap", got == len(sent) and n >= len(sent),
                               "redirected %d of %d through a cpumap, %d reached the stack" % (n, len(sent), got)))
        h0, h1 = self.helper()
        with contextlib.ExitStack() as stack:
            self.attach(stack, h1, self.program(stack, "pass"), mode="native")   # a veth receives redirects only so
            prog = self.program(stack, "redirect", target_ifindex=h0.ifindex, netns=h0.netns)
            self.attach(stack, dut, prog)
            sent = self.traffic.frames(peer, dut.mac, 64)
            got = self.traffic.exchange(peer, h1, sent)
            n = _counted(prog, "redirect")
            checks.append(_sub("devmap", got == len(sent) and n >= len(sent),
                               "redirected %d of %d through a devmap to veth %s, %d arrived at its other end"
                               % (n, len(sent), h0.ifname, got)))
        ok = all(c["ok"] for c in checks)
        return ok, "XDP_REDIRECT to a cpumap and to a devmap works" if ok else "failed: %s" % ", ".join(
            c["name"] for c in checks if not c["ok"]), checks, None

    def _into_dut(self, name, size):
        """Frames from the helper veth redirected into the DUT (a frags-aware redirect program on ``nrx1``),
        counted at the peer; without and with a program on the peer."""
        h0, h1 = self.helper()

        def setup(stack):
            prog = self.program(stack, "redirect", target_ifindex=self.dut.ifindex, netns=self.dut.netns)
            self.attach(stack, h1, prog, mode="native")
            return [(prog, "redirect")]

        return self._tx_to_peer(name, setup, h0, size=size)

    def ndo_xmit(self):
        checks, ok, adv_with = self._into_dut("redirect-into", 64)
        detail = "frames redirected into the device reach the peer" if ok else \
            "frames redirected into the device did not reach the peer"
        if ok and not all(c["ok"] for c in checks):
            detail += " (only when the peer runs an XDP program)"
        return ok, detail, checks, "ndo-xmit" in adv_with

    def xsk_zerocopy(self):
        """Bind an AF_XDP socket to queue 0 with XDP_ZEROCOPY and receive the peer's frames through it; a copy-mode
        socket is tried too, as context (AF_XDP itself works), and does not count for the feature."""
        from netring.errors import UnsupportedError
        from netring.xsk import XdpSocket

        checks = []
        observed = None
        for mode in ("zerocopy", "copy"):
            try:
                sock = XdpSocket(self.dut.ifname, netns=self.dut.netns, queue=0, mode=mode, frame_count=256,
                                 ring_size=64)
            except UnsupportedError as exc:
                checks.append(_sub("bind-%s" % mode, False, str(exc)))
                if mode == "zerocopy":
                    observed = False
                continue
            with sock:
                sent = self.traffic.frames(self.peer, self.dut.mac, 64)
                got = self.traffic.exchange_xsk(self.peer, sock, sent)
                ok = got == len(sent) and sock.mode == mode
                checks.append(_sub("bind-%s" % mode, ok, "bound in %s mode (queue 0, program attached %s); %d of %d "
                                   "frames received intact" % (sock.mode, sock.attachment.mode if sock.attachment
                                                               else "by the caller", got, len(sent))))
            if mode == "zerocopy":
                observed = ok
        if observed:
            detail = "an AF_XDP socket binds in zero-copy mode and receives"
        else:
            detail = "no zero-copy AF_XDP: %s" % checks[0]["detail"]
            if len(checks) > 1 and checks[1]["ok"]:
                detail += " (copy mode works)"
        return observed, detail, checks, None

    def hw_offload(self):
        """Load a pass program bound to the device for offload, attach it in offload mode, detach: observed
        when both steps succeed; not observed, naming the step and the errno, when the device refuses one."""
        dut = self.dut
        checks = []
        with contextlib.ExitStack() as stack:
            try:
                prog = stack.enter_context(load_program(Asm().ret(XDP_PASS), name="nrx_offload",
                                                        offload=(dut.ifname, dut.netns)))
            except UnsupportedError as exc:
                checks.append(_sub("load-offload", False, str(exc)))
                checks.append(_sub("attach-offload", None, "not tried: there is no program bound to the device"))
                return False, "the device refuses to load a program bound to it for offload (%s at BPF_PROG_LOAD " \
                              "with prog_ifindex)" % _errno_name(exc), checks, None
            bound = prog.offload
            if bound is None:   # the kernel would have refused the load: not a device's answer
                raise NetringError("program %r loaded with prog_ifindex %s but the kernel reports it bound to no device"
                                   % (prog.name, dut))
            checks.append(_sub("load-offload", True, "loaded bound to %s (the kernel reports ifindex %d)"
                               % (dut, bound.ifindex)))
            try:
                att = self.attach(stack, dut, prog, mode="offload")
            except UnsupportedError as exc:
                checks.append(_sub("attach-offload", False, str(exc)))
                return False, "the device loads a program bound to it but refuses the offloaded attach (%s with " \
                              "XDP_FLAGS_HW_MODE)" % _errno_name(exc), checks, None
            shown = [i.mode for i in xdp.query(dut.ifname, netns=dut.netns, all=True) if i.id == prog.id]
            att.detach()
            checks.append(_sub("attach-offload", True, "attached with XDP_FLAGS_HW_MODE via %s (IFLA_XDP showed it in "
                               "%s mode) and detached" % (att.method, "/".join(shown) or "no")))
        return True, "a program bound to the device loads and attaches offloaded", checks, None

    def _sg_size(self, ifaces):
        """The frame size for the multi-buffer checks (1.5 pages) and the MTU they need, or a reason why not."""
        size = os.sysconf("SC_PAGE_SIZE") * 3 // 2
        mtu = min([_SG_MTU] + [it.refresh()["max_mtu"] for it in ifaces])
        if mtu < size - 14:
            return None, None, "the largest MTU of %s is %d: frames larger than a page (%d B) cannot be carried" % (
                ", ".join(str(i) for i in ifaces), mtu, size)
        return size, mtu, None

    def rx_sg(self):
        dut, peer = self.dut, self.peer
        size, mtu, why = self._sg_size([dut, peer])
        if why:
            return None, why, [], None
        with contextlib.ExitStack() as stack:
            self.progress("rx-sg: MTU of %s and %s raised to %d" % (dut, peer, mtu))
            self.raise_mtu(stack, [dut, peer], mtu)
            prog = self.program(stack, "pass")
            try:
                self.attach(stack, dut, prog)
            except NetringError as exc:
                return False, "a frags-aware program does not attach at MTU %d: %s" % (mtu, exc), [
                    _sub("attach-frags", False, str(exc))], None
            sent = self.traffic.frames(peer, dut.mac, size)
            got = self.traffic.exchange(peer, dut, sent)
            counted = prog.counters()["pass"]
            byte_ok = counted["bytes"] >= len(sent) * size if frags_supported() else True
            ok = got == len(sent) and counted["packets"] >= len(sent) and byte_ok
            check_ = _sub("receive-%d" % size, ok, "%d of %d frames of %d B delivered intact at MTU %d; program counted "
                          "%d frames, %d B" % (got, len(sent), size, mtu, counted["packets"], counted["bytes"]))
        return ok, "frames of %d B (> a page) received intact" % size if ok else check_["detail"], [check_], None

    def ndo_xmit_sg(self):
        h0, h1 = self.helper()
        size, mtu, why = self._sg_size([self.dut, self.peer])
        if why:
            return None, why, [], None
        with contextlib.ExitStack() as stack:
            self.progress("ndo-xmit-sg: MTU of %s, %s and the helper veth raised to %d" % (self.dut, self.peer, mtu))
            self.raise_mtu(stack, [self.dut, self.peer, h0, h1], mtu)
            checks, ok, adv_with = self._into_dut("redirect-into-%d" % size, size)
        detail = "frames of %d B redirected into the device reach the peer intact" % size if ok else \
            "frames of %d B redirected into the device did not reach the peer intact" % size
        if ok and not all(c["ok"] for c in checks):
            detail += " (only when the peer runs an XDP program)"
        return ok, detail, checks, "ndo-xmit-sg" in adv_with
