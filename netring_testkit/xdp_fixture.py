"""The ``xdp`` pytest fixture: attach XDP programs to test endpoints, detached after the test.

Register this module in the plugin (``pytest_plugins`` or the plugin's imports). A test gets::

    def test_drop(xdp, veth_pair):
        h = xdp.attach(veth_pair[1], "drop", mode="native")      # built-in by name
        ...send traffic...
        assert h.counters()["drop"]["packets"] == 100

``program`` is a built-in name (options go to ``netring.bpf.programs.builtin``, e.g.
``rules=``/``default=`` for ``filter``, ``target_ifindex=`` for ``redirect``), a loaded
``netring.bpf.Program`` (stays owned by the caller), or ``{"object": path, "program": name}``
for a clang-built ELF object loaded through libbpf. ``endpoint`` is any object with
``.netns``, ``.ifname`` (and ``.ifindex``), or a ``(netns, ifname)`` tuple.

**The veth peer rule**: a frame the built-in ``tx`` sends back (XDP_TX), or ``redirect`` sends into a
veth, in native mode, reaches the other end of that veth only if the other end runs an XDP program;
otherwise the kernel drops it silently (``tx_dropped``). So ``xdp.attach(b, "tx")`` also attaches the
built-in ``pass`` on ``b``'s peer when that has no program, and detaches it with ``b``'s program
(``handle.peer_pass`` is that handle, ``handle.peer_note`` says what was done and why). The peer is
``peer=`` (an endpoint or ``(netns, ifname)``), else the one a testkit ``Endpoint`` knows (``tx``: its
``peer``; ``redirect``: the ``peer`` of the endpoint of its node whose ifindex is ``target_ifindex``),
else the veth's peer when it is in the same namespace. ``peer_pass=False`` opts out.
"""
import pytest

from .plugin import get_factory, require
from .xdpattach import endpoint_errors, xdp_hint

__all__ = ["XdpFactory", "XdpHandle", "xdp"]


class XdpHandle:
    """One attachment made by the fixture: ``counters()``, ``map(name)``, ``attachment``, ``program``, ``mode``."""

    def __init__(self, attachment, owned, name=None):
        self._name = name  # the endpoint's node:ifname, for error messages
        #: The :class:`netring.xdp.XdpAttachment`.
        self.attachment = attachment
        #: The attached :class:`netring.bpf.Program`.
        self.program = attachment.program
        #: The mode actually obtained (native/generic).
        self.mode = attachment.mode
        self._owned = owned  # programs/objects the fixture loaded and must close
        #: The :class:`XdpHandle` of the ``pass`` attached on the veth peer (the veth peer rule), or None.
        self.peer_pass = None
        #: What the veth peer rule did for this attachment, in one line (None: the rule does not apply).
        self.peer_note = None

    def counters(self):
        """Per-action (and per-rule) packet/byte counters of a built-in program."""
        return self.attachment.counters()

    def map(self, name):
        """One of the program's maps by name (built-ins: counters, devmap, xsks; user objects: their own names)."""
        return self.attachment.map(name)

    def detach(self):
        """Detach now and release what the fixture loaded (idempotent; also done after the test)."""
        # Order: detach from the interface before closing the program and its maps; the peer's pass
        # goes after the program that needed it.
        with endpoint_errors(self._name):
            self.attachment.detach()
        for o in self._owned:
            o.close()
        self._owned = []
        if self.peer_pass is not None:
            self.peer_pass.detach()

    def __repr__(self):
        return "<XdpHandle %r>" % (self.attachment,)


class XdpFactory:
    """What the ``xdp`` fixture yields: :meth:`attach` and, at teardown, detach of everything."""

    def __init__(self):
        self._handles = []

    def attach(self, endpoint, program, mode="native", replace=False, peer_pass=True, peer=None, **options):
        """Attach ``program`` to ``endpoint`` in ``mode`` (native/generic/auto); return an :class:`XdpHandle`.

        For the built-ins ``tx`` and ``redirect`` in native mode, the veth peer rule (module doc) attaches
        ``pass`` on the receiving veth end (``peer``, or found) unless ``peer_pass=False``.
        """
        from netring import xdp as xdp_mod
        from netring.bpf import Program
        from netring.bpf.programs import builtin
        from netring.errors import ConfigurationError

        name = None
        if isinstance(endpoint, tuple) and len(endpoint) == 2:
            netns, ifname = endpoint
        elif hasattr(endpoint, "netns") and hasattr(endpoint, "ifname"):
            netns, ifname = endpoint.netns, endpoint.ifname
            name = getattr(endpoint, "name", None)  # a testkit Endpoint: "node:ifname"
        else:
            raise ConfigurationError("endpoint must have .netns and .ifname, or be a (netns, ifname) tuple, not %r"
                                     % (endpoint,), field="endpoint", value=endpoint)
        owned = []
        if isinstance(program, str):
            prog = builtin(program, **options)
            owned.append(prog)
        elif isinstance(program, dict) and "object" in program:
            from netring.bpf.libbpf import load_object
            if options:
                raise ConfigurationError("options %s apply to built-ins only" % sorted(options), field="options")
            obj = load_object(program["object"])
            owned.append(obj)
            prog = obj.program(program.get("program"), program.get("section"))
        elif isinstance(program, Program):
            if options:
                raise ConfigurationError("options %s apply to built-ins only" % sorted(options), field="options")
            prog = program
        else:
            raise ConfigurationError("program must be a built-in name, a netring.bpf.Program or "
                                     "{'object': path, 'program': name}, not %r" % (program,), field="program", value=program)
        try:
            with endpoint_errors(name):
                att = xdp_mod.attach(ifname, prog, netns=netns, mode=mode, replace=replace)
        except BaseException:
            for o in owned:
                o.close()
            raise
        handle = XdpHandle(att, owned, name)
        self._handles.append(handle)
        if program in ("tx", "redirect") and att.mode == "native":
            if peer is None and program == "tx":
                peer = getattr(endpoint, "peer", None)  # a testkit Endpoint knows its veth peer
            elif peer is None and getattr(endpoint, "topology", None) is not None:
                # redirect: the peer of the target, an endpoint of the same node (same namespace)
                out = next((ep for ep in endpoint.topology if ep.node == endpoint.node
                            and ep.ifindex == options.get("target_ifindex")), None)
                peer = getattr(out, "peer", None)
            self._peer_rule(handle, program, netns, ifname, name, options.get("target_ifindex"), peer, peer_pass)
        return handle

    def _peer_rule(self, handle, program, netns, ifname, name, target_ifindex, peer, peer_pass):
        """Attach ``pass`` where ``program``'s frames arrive, when nothing runs there (see the module doc)."""
        from netring import xdp as xdp_mod

        what = "%s on %s" % (program, name or ifname)
        if peer is None:
            peer = _same_namespace_peer(netns, ifname if program == "tx" else target_ifindex)
        if peer is None:
            handle.peer_note = ("no pass attached for %s: its veth peer is not known here (in another namespace); "
                                "pass peer=ENDPOINT (or attach a native program there yourself) or frames sent back "
                                "into the veth are dropped" % what)
            return
        pns, pif = (peer if isinstance(peer, tuple) else (peer.netns, peer.ifname))
        pname = (getattr(peer, "name", None) if not isinstance(peer, tuple) else None) or pif
        there = xdp_mod.query(pif, netns=pns)
        if there is not None:
            handle.peer_note = "%s already runs %s (%s mode) for %s" % (pname, there.name or "a program", there.mode,
                                                                       what)
            if there.mode == "generic":
                handle.peer_note += ("; a generic-mode program receives none of the frames %s sends into the veth: "
                                     "attach it in native mode" % program)
            return
        if not peer_pass:
            handle.peer_note = ("no pass attached on %s for %s (peer_pass=False): frames sent into the veth are "
                                "dropped (tx_dropped on %s) unless %s runs a native XDP program"
                                % (pname, what, name or ifname, pname))
            return
        p = self.attach(peer, "pass", mode="native")
        self._handles.remove(p)   # owned by the handle that needed it: detached with it
        handle.peer_pass = p
        handle.peer_note = "attached pass on %s for %s" % (pname, what)

    def close(self, keep_in=()):
        """Detach every attachment (newest first) and close what was loaded; report the first error.

        ``keep_in``: names of namespaces kept for debugging (``--netring-keep``, a failed test); a
        program attached in one of them stays attached (:meth:`netring.xdp.XdpAttachment.leave_attached`).
        Returns one hint line per program left attached.
        """
        first, hints = None, []
        while self._handles:
            h = self._handles.pop()
            try:
                att = h.attachment
                name = att.netns.name if att.netns is not None else None
                if name and name in keep_in and att.attached:
                    info = att.leave_attached()
                    if info is not None:
                        hints.append(xdp_hint(info, name, att.ifname))
                h.detach()
            except Exception as exc:  # keep cleaning up the rest
                first = first or exc
        if first is not None:
            raise first
        return hints


def _same_namespace_peer(netns, iface):
    """``(netns, ifname)`` of the veth peer of ``iface`` (name or ifindex) when it lives in the same
    namespace (no IFLA_LINK_NETNSID), else None. Read with pyroute2 through the namespace's own socket."""
    if iface is None or not hasattr(netns, "iproute"):
        return None
    with netns.iproute() as ipr:
        idx = iface if isinstance(iface, int) else (ipr.link_lookup(ifname=iface) or [None])[0]
        if idx is None:
            return None
        link = ipr.get_links(idx)[0]
        info = link.get_attr("IFLA_LINKINFO")
        kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
        peer = link.get_attr("IFLA_LINK")
        if kind != "veth" or not peer or link.get_attr("IFLA_LINK_NETNSID") is not None:
            return None
        return netns, ipr.get_links(peer)[0].get_attr("IFLA_IFNAME")


@pytest.fixture
def xdp(request):
    """``xdp`` → a factory: ``xdp.attach(endpoint, program, mode="native", **options)`` returns a handle with
    ``counters()`` and ``map(name)``; everything is detached (before the endpoints' namespaces go) after the test
    — except, under ``--netring-keep``, in the namespaces a failed test leaves for debugging."""
    require()   # CAP_SYS_ADMIN (part of what every netring fixture needs) also grants bpf(2)
    factory = XdpFactory()
    before = request.session.testsfailed
    try:
        yield factory
    finally:
        netring = get_factory(request.config)
        if netring.keep and request.session.testsfailed > before:
            # Which namespaces stay is known once every fixture of the test is torn down.
            netring.defer_xdp(request.node.nodeid, factory)
        else:
            factory.close()
