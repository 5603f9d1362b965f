"""The testkit's XDP attachments: attached for an endpoint (errors naming it), and what
``--netring-keep`` leaves attached for debugging.

Used by the scenario engine and the ``xdp`` fixture alike (so neither needs the other). A namespace
kept from a failed drop test reproduces nothing without its program, so a failed test's programs
are handed over to attachments that outlive the process
(:meth:`netring.xdp.XdpAttachment.leave_attached`), with a hint how to look at them
(:func:`xdp_hint`). The fixture decides after all of the test's fixtures are torn down
(``pytest_runtest_teardown``), when the kept namespaces are known: a program in a namespace that
stays for later tests (a module-scoped topology) is detached as usual.
"""
import contextlib

__all__ = ["endpoint_errors", "attach_endpoint", "attach_peer_pass", "xdp_hint"]


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


def xdp_hint(info, netns_name, ifname, where=None):
    """One line: which program stays attached where, and the commands that show it."""
    return ("XDP program %s (id %d, %s mode) left attached to %s: `ip -n %s link show dev %s`, "
            "`ip netns exec %s bpftool net`, `bpftool prog show id %d`"
            % (info.name or "?", info.id, info.mode, where or "%s in %s" % (ifname, netns_name),
               netns_name, ifname, netns_name, info.id))


def attach_peer_pass(stack, name, ifname, netns):
    """Attach the built-in ``pass`` natively on the veth end ``name`` (``ifname`` in ``netns``) for the
    veth peer rule (frames XDP_TX'd or redirected into a veth arrive only where XDP runs); it is
    detached, then closed, when ``stack`` unwinds. Returns the :class:`netring.xdp.XdpAttachment`."""
    from netring.bpf import programs

    prog = stack.enter_context(programs.builtin("pass"))
    return attach_endpoint(stack, name, ifname, netns, prog, "native")
