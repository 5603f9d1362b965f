"""What ``--netring-keep`` leaves behind for debugging besides the namespaces: XDP attachments.

A namespace kept from a failed drop test reproduces nothing without its program, so the scenario
engine and the ``xdp`` fixture hand a failed test's programs over to attachments that outlive the
process (:func:`leave_attached`), and say how to look at them (:func:`xdp_hint`). The fixture
decides after all of the test's fixtures are torn down (``pytest_runtest_teardown``), when the
kept namespaces are known: a program in a namespace that stays for later tests (a module-scoped
topology) is detached as usual.
"""
__all__ = ["leave_attached", "xdp_hint"]

# linux/if_link.h: IFLA_XDP_FLAGS of a netlink attachment.
_XDP_FLAGS_UPDATE_IF_NOEXIST, _XDP_FLAGS_SKB_MODE, _XDP_FLAGS_DRV_MODE = 1 << 0, 1 << 1, 1 << 2
_MODE_FLAGS = {"native": _XDP_FLAGS_DRV_MODE, "generic": _XDP_FLAGS_SKB_MODE}


def leave_attached(att):
    """Hand ``att``'s program (a :class:`netring.xdp.XdpAttachment`) over to a netlink (IFLA_XDP)
    attachment nobody detaches; return its :class:`netring.xdp.XdpInfo` (kernel id, mode, name),
    or None if the hand-over failed (the program is then detached, as it would have been).

    A bpf_link attachment (what ``netring.xdp.attach`` prefers) is detached by the kernel when its
    last fd closes — at the latest when this process exits — and a netlink one made through
    ``netring.xdp`` is removed by its finalizer. An IFLA_XDP attachment made here directly holds
    the program in the kernel for as long as the interface exists: in a kept namespace, until
    ``ip netns del``. The program's maps (its counters) stay with it. Call it before the program is
    closed; ``att`` is detached afterwards either way.
    """
    import netring.xdp as xdp

    if not att.attached or att.netns is None:
        att.detach()
        return None
    prog_fd, mode, ifindex = att.program.fd, att.mode, att.ifindex
    try:
        # The socket is opened in the attachment's namespace now: detaching closes its namespace fd.
        ipr = att.netns.iproute()
    except Exception:
        att.detach()
        return None
    with ipr:
        att.detach()
        try:
            ipr.link("set", index=ifindex, xdp={"attrs": [
                ("IFLA_XDP_FD", prog_fd), ("IFLA_XDP_FLAGS", _MODE_FLAGS[mode] | _XDP_FLAGS_UPDATE_IF_NOEXIST)]})
            links = ipr.get_links(ifindex)
        except Exception:  # a hint less; the test's failure is reported as it is
            return None
    x = links[0].get_attr("IFLA_XDP") if links else None
    pid = x.get_attr("IFLA_XDP_PROG_ID") if x is not None else None
    return xdp.XdpInfo(pid, mode, att.program.name, None) if pid else None


def xdp_hint(info, netns_name, ifname, where=None):
    """One line: which program stays attached where, and the commands that show it."""
    return ("XDP program %s (id %d, %s mode) left attached to %s: `ip -n %s link show dev %s`, "
            "`ip netns exec %s bpftool net`, `bpftool prog show id %d`"
            % (info.name or "?", info.id, info.mode, where or "%s in %s" % (ifname, netns_name),
               netns_name, ifname, netns_name, info.id))
