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
import contextlib

import pytest

from .plugin import get_factory, require

__all__ = ["XdpFactory", "XdpHandle", "xdp", "endpoint_errors", "attach_endpoint"]


@contextlib.contextmanager
def endpoint_errors(name):
    """A netring error raised inside gets the endpoint ``name`` (``node:ifname``) in front of its message.

    netring names the interface and its namespace, but the testkit's namespaces are unnamed
    (``net:[4026532…]``) and every node may have an ``eth0``: the endpoint name says which one.
    The exception keeps its type and attributes; ``name`` (None: nothing) is added once.
    """
    from netring.errors import NetringError

    try:
        yield
    except NetringError as exc:
        if name and exc.args and isinstance(exc.args[0], str) and not exc.args[0].startswith(name + ": "):
            exc.args = ("%s: %s" % (name, exc.args[0]),) + exc.args[1:]
        raise


def _detach(attachment, name):
    with endpoint_errors(name):
        attachment.detach()


def attach_endpoint(stack, name, ifname, netns, program, mode):
    """Attach ``program`` to ``ifname`` in ``netns`` (the endpoint ``name``) and detach it when ``stack``
    (an ExitStack) unwinds; errors of both name the endpoint. Returns the :class:`netring.xdp.XdpAttachment`."""
    from netring import xdp as xdp_mod

    with endpoint_errors(name):
        att = xdp_mod.attach(ifname, program, netns=netns, mode=mode)
    stack.callback(_detach, att, name)
    return att


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
        _detach(self.attachment, self._name)
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
        program attached in one of them stays attached (see :func:`netring_testkit.kept.leave_attached`).
        Returns one hint line per program left attached.
        """
        from .kept import leave_attached, xdp_hint

        first, hints = None, []
        while self._handles:
            h = self._handles.pop()
            try:
                att = h.attachment
                name = att.netns.name if att.netns is not None else None
                if name and name in keep_in and att.attached:
                    info = leave_attached(att)
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
