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

    def counters(self):
        """Per-action (and per-rule) packet/byte counters of a built-in program."""
        return self.attachment.counters()

    def map(self, name):
        """One of the program's maps by name (built-ins: counters, devmap, xsks; user objects: their own names)."""
        return self.attachment.map(name)

    def detach(self):
        """Detach now and release what the fixture loaded (idempotent; also done after the test)."""
        # Order: detach from the interface before closing the program and its maps.
        with endpoint_errors(self._name):
            self.attachment.detach()
        for o in self._owned:
            o.close()
        self._owned = []

    def __repr__(self):
        return "<XdpHandle %r>" % (self.attachment,)


class XdpFactory:
    """What the ``xdp`` fixture yields: :meth:`attach` and, at teardown, detach of everything."""

    def __init__(self):
        self._handles = []

    def attach(self, endpoint, program, mode="native", replace=False, **options):
        """Attach ``program`` to ``endpoint`` in ``mode`` (native/generic/auto); return an :class:`XdpHandle`."""
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
        return handle

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
