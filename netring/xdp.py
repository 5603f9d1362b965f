"""Attach XDP programs to interfaces (in any namespace), query and detach them.

``attach(target, program, netns=None, mode="native", replace=False)`` prefers a **bpf_link**
(``BPF_LINK_CREATE``, attach type ``BPF_XDP``): the kernel detaches it when the last fd on
the link closes — also when the process is killed. Where links are not available (kernels
before 5.9, or ``method="netlink"``) it falls back to rtnetlink ``IFLA_XDP`` through pyroute2,
with ``XDP_FLAGS_UPDATE_IF_NOEXIST`` so nothing is replaced by accident; such an attachment
is removed by :meth:`XdpAttachment.detach` (only if our program is still the one attached).

Modes: ``native`` (driver, ``XDP_FLAGS_DRV_MODE``), ``generic`` (skb, ``XDP_FLAGS_SKB_MODE``),
``offload`` (the NIC runs it, ``XDP_FLAGS_HW_MODE``), ``auto`` (native, else generic — never offload;
``attachment.mode`` says which it got).

Offload takes only a program loaded *bound to that device* (``load_program(..., offload=(ifname,
netns))``; :attr:`Program.offload <netring.bpf.objects.Program.offload>` says where), and such a
program attaches in no other mode: either mismatch is a :class:`ConfigurationError` before the kernel is
asked. An offloaded program may coexist with a native or generic one on the same device (the kernel
keeps them apart), so only another offloaded program makes an offload attach busy. A driver that
refuses the offload (EINVAL/EOPNOTSUPP) gives :class:`UnsupportedError` naming the device and the errno.

Jumbo frames: native XDP on a veth whose MTU exceeds :func:`veth_single_buffer_max_mtu` (3506 with
4 KiB pages) takes only a multi-buffer aware program (``program.frags``; every built-in, libbpf's
``SEC("xdp.frags")``, ``load_program(..., frags=True)``); otherwise the kernel says ERANGE and
:func:`attach` raises :class:`UnsupportedError` saying so (``auto`` then falls back to generic).

Every error names the interface together with its namespace (``eth0 in namespace 'rx'``), since the
same name usually exists in several namespaces.
"""
import collections
import errno
import os
import socket
import threading
import weakref

from . import _netlink
from ._core import lib
from .bpf.fd import bpf_error
from .bpf.objects import Link, Program, program_from_id
from .errors import (ENOTSUPP, ConfigurationError, InterfaceNotFoundError, NetringError, NetringPermissionError,
                     ResourceBusyError, UnsupportedError, from_oserror)
from .netns import NetNS, resolve

__all__ = ["attach", "query", "detach_all", "XdpAttachment", "XdpInfo", "MODES", "veth_single_buffer_max_mtu"]

#: Accepted ``mode=`` values.
MODES = ("native", "generic", "offload", "auto")
_FLAGS = {"native": lib.XDP_FLAGS_DRV_MODE, "generic": lib.XDP_FLAGS_SKB_MODE, "offload": lib.XDP_FLAGS_HW_MODE}
# What a driver says when it cannot offload (ENOTSUPP: the kernel's internal one, leaked by some drivers).
_REFUSED = (errno.EINVAL, errno.EOPNOTSUPP, ENOTSUPP)
_ERRNO_NAMES = {errno.EINVAL: "EINVAL", errno.EOPNOTSUPP: "EOPNOTSUPP", ENOTSUPP: "ENOTSUPP"}
# IFLA_XDP_ATTACHED as pyroute2 decodes it (XDP_ATTACHED_DRV/SKB/HW) -> our mode names.
_ATTACHED = {"xdp": "native", "xdpgeneric": "generic", "xdpoffload": "offload"}

#: What :func:`query` reports: kernel program ``id``, ``mode`` (native/generic/offload), program ``name`` and ``tag``.
XdpInfo = collections.namedtuple("XdpInfo", "id mode name tag")


# What a veth keeps around a single-buffer XDP frame in its one page (drivers/net/veth.c,
# veth_xdp_set): XDP_PACKET_HEADROOM in front, the skb_shared_info (SKB_DATA_ALIGN'ed: 320 B on
# 64-bit kernels with 64 B cache lines) behind, and the peer's Ethernet header.
_XDP_PACKET_HEADROOM = 256
_SKB_SHARED_INFO = 320
_ETH_HLEN = 14


def veth_single_buffer_max_mtu(page_size=None):
    """The largest MTU at which a veth accepts a native XDP program that is not multi-buffer aware:
    a page (default this machine's) less XDP headroom, ``skb_shared_info`` and the Ethernet header
    — 3506 with 4 KiB pages (a 3520 B frame). Above it the kernel refuses with ERANGE unless the
    program was loaded with ``BPF_F_XDP_HAS_FRAGS`` (``program.frags``). The veth checks its *peer's* MTU."""
    if page_size is None:
        page_size = os.sysconf("SC_PAGE_SIZE")
    return page_size - _XDP_PACKET_HEADROOM - _SKB_SHARED_INFO - _ETH_HLEN


def _where(ifname, ns):
    """How errors name an interface: with its namespace, as the same name is often in several."""
    return ifname if ns is None else "%s in namespace %s" % (ifname, ns)


def _open_ns(netns):
    """Our own fd on the namespace (or None for the current one), so its lifetime is ours."""
    ns, owned = resolve(netns)
    if ns is None:
        return None
    return ns if owned else NetNS.open(ns)


def _run(ns, fn, *args):
    return fn(*args) if ns is None else ns.run(fn, *args)


def _ifindex(ns, target):
    if isinstance(target, int) and not isinstance(target, bool):
        if not 0 < target < 1 << 31:
            raise ConfigurationError("ifindex must be in 1..2**31-1, not %r" % target, field="ifindex", value=target)
        return target, _run(ns, _name_of, target)
    if not isinstance(target, str) or not 0 < len(target) < 16 or "\0" in target:
        raise ConfigurationError("interface must be a name (1..15 characters) or an ifindex, not %r" % (target,),
                                 field="ifname", value=target)
    if ns is None:
        try:
            return socket.if_nametoindex(target), target
        except OSError:
            raise InterfaceNotFoundError(target, None) from None
    return ns.ifindex(target), target


def _name_of(ifindex):
    try:
        return socket.if_indextoname(ifindex)
    except OSError:
        return "ifindex %d" % ifindex


def _iproute(ns):
    if ns is None:
        from pyroute2 import IPRoute
        return IPRoute()
    return ns.iproute()


def _netlink_error(exc, action, ifname, ns):
    code = getattr(exc, "code", None) or getattr(exc, "errno", None) or errno.EINVAL
    if code == errno.EBUSY:
        return ResourceBusyError(
            "%s failed: an XDP program held by a bpf_link (or attached with UPDATE_IF_NOEXIST) occupies %s; "
            "it goes away when its owner closes the link — detach it there" % (action, _where(ifname, ns)))
    return from_oserror(OSError(code, os.strerror(code)), action, ifname=ifname, netns=ns,
                        capability="CAP_NET_ADMIN and CAP_BPF")


def _query_here(ifindex):
    """Inside the namespace: the XDP programs on ``ifindex`` from its IFLA_XDP, as ``[(prog_id, mode)]``.

    One RTM_GETLINK on a socket opened here (:mod:`netring._netlink`), not an ``IPRoute``: building
    one costs milliseconds, and attach asks twice.
    """
    try:
        msgs = _netlink.links(ifindex)
    except OSError as exc:
        if exc.errno == errno.ENODEV:
            raise InterfaceNotFoundError("ifindex %d" % ifindex) from None
        raise from_oserror(exc, "reading IFLA_XDP of ifindex %d (netlink RTM_GETLINK)" % ifindex) from None
    xdp = msgs[0].get_attr("IFLA_XDP") if msgs else None
    if xdp is None:
        return []
    attached = xdp.get_attr("IFLA_XDP_ATTACHED")  # pyroute2 decodes it to a name, None for XDP_ATTACHED_NONE
    if attached is None:
        return []
    if attached != "xdpmulti":
        return [(xdp.get_attr("IFLA_XDP_PROG_ID"), _ATTACHED.get(attached, str(attached)))]
    out = []
    for attr, mode in (("IFLA_XDP_DRV_PROG_ID", "native"), ("IFLA_XDP_SKB_PROG_ID", "generic"),
                       ("IFLA_XDP_HW_PROG_ID", "offload")):
        pid = xdp.get_attr(attr)
        if pid:
            out.append((pid, mode))
    return out


def _describe(prog_id, mode):
    try:
        with program_from_id(prog_id) as p:
            info = p.info()
        return XdpInfo(prog_id, mode, info.name, info.tag)
    except (LookupError, NetringError):
        return XdpInfo(prog_id, mode, None, None)


def query(ifname, netns=None, all=False):
    """What XDP program is attached to ``ifname`` (name or ifindex) in ``netns``.

    Returns an :class:`XdpInfo` ``(id, mode, name, tag)`` or ``None``; with ``all=True`` a
    list of every attached program (native/generic/offload can coexist with offload).
    """
    ns, owned = resolve(netns)  # no fd of our own: nothing outlives this call
    try:
        ifindex, _ = _ifindex(ns, ifname)
        found = [_describe(pid, mode) for pid, mode in _run(ns, _query_here, ifindex)]
    finally:
        if owned:
            ns.close()
    if all:
        return found
    return found[0] if found else None


def _netlink_remove(ns, ifindex, ifname, mode, expected_fd):
    """Remove our program from ``ifindex`` with IFLA_XDP_EXPECTED_FD, so a program someone else
    attached since is never touched. Returns quietly if the link is gone or was taken over."""
    try:
        with _iproute(ns) as ipr:
            ipr.link("set", index=ifindex, xdp={"attrs": [
                ("IFLA_XDP_FD", -1), ("IFLA_XDP_EXPECTED_FD", expected_fd),
                ("IFLA_XDP_FLAGS", _FLAGS[mode] | lib.XDP_FLAGS_REPLACE)]})
    except Exception as exc:
        code = getattr(exc, "code", None)
        if code in (errno.ENODEV, errno.EEXIST):  # link gone, or someone replaced our program
            return
        raise _netlink_error(exc, "detaching XDP from %s" % _where(ifname, ns), ifname, ns) from None


def _release(ns, fd):
    try:
        if fd is not None:
            os.close(fd)
    finally:
        if ns is not None:
            ns.close()


def _finalize_netlink(ns, ifindex, ifname, mode, expected_fd):
    """Finalizer of a netlink attachment dropped without detach (or left at interpreter exit):
    detach best-effort — a netlink attachment would otherwise outlive the process."""
    try:
        _netlink_remove(ns, ifindex, ifname, mode, expected_fd)
    except Exception:  # nowhere to report from a finalizer; the namespace may be gone already
        pass
    finally:
        _release(ns, expected_fd)


def _finalize_link(link, ns):
    """Finalizer of a link attachment: close the link (the kernel detaches) and our namespace fd."""
    try:
        link.close()
    finally:
        if ns is not None:
            ns.close()


class XdpAttachment:
    """An XDP program attached to an interface. Context manager; :meth:`detach` is idempotent.

    Attributes: ``program``, ``mode`` (the mode actually obtained), ``method`` (``"link"`` or
    ``"netlink"``), ``ifname``, ``ifindex``, ``netns``. The program stays loaded (its owner
    closes it); detaching only removes it from the interface.

    Dropping the last reference detaches too: a link attachment by closing its
    :class:`~netring.bpf.objects.Link` (and the namespace fd), a netlink attachment through a ``weakref.finalize``
    (also run at interpreter exit) that removes the program with ``IFLA_XDP_EXPECTED_FD`` — so
    a program someone attached in the meantime is left alone. For that guard the attachment
    holds its own duplicate of the program fd, so detaching works even after the program was
    closed. A killed process (SIGKILL) cannot run finalizers: prefer links, which the kernel
    detaches when the last fd closes.
    """

    def __init__(self, program, ifindex, ifname, ns, mode, method, link=None):
        #: The attached :class:`~netring.bpf.objects.Program`.
        self.program = program
        self.ifindex = ifindex
        self.ifname = ifname
        self._ns = ns
        #: ``"native"``, ``"generic"`` or ``"offload"``.
        self.mode = mode
        #: ``"link"`` (bpf_link; gone when the fd closes) or ``"netlink"`` (IFLA_XDP).
        self.method = method
        self._link = link
        self._lock = threading.Lock()
        self._attached = True
        if link is not None:
            self._finalizer = weakref.finalize(self, _finalize_link, link, ns)
        else:
            # Our own fd on the program for IFLA_XDP_EXPECTED_FD (program.close() must not free it).
            self._finalizer = weakref.finalize(self, _finalize_netlink, ns, ifindex, ifname, mode,
                                               os.dup(program.fd))

    @property
    def netns(self):
        """The namespace (a :class:`NetNS` held by this attachment while it is attached), or None."""
        return self._ns

    @property
    def attached(self):
        """True until :meth:`detach`."""
        return self._attached

    @property
    def link(self):
        """The :class:`~netring.bpf.objects.Link` for link attachments (None for netlink ones)."""
        return self._link

    def counters(self):
        """The program's per-action counters (:meth:`netring.bpf.programs.BuiltinProgram.counters`);
        :class:`UnsupportedError` for a program that keeps none netring knows."""
        return self.program.counters()

    def map(self, name):
        """One of the program's maps by role name."""
        return self.program.map(name)

    def detach(self):
        """Remove the program from the interface (idempotent). Detach *before* deleting the namespace."""
        with self._lock:
            if not self._attached:
                return
            self._attached = False
        if self._link is not None:
            self._finalizer()  # closes the last fd on the link (the kernel detaches) and the namespace fd
            return
        state = self._finalizer.detach()  # explicit detach: errors reach the caller
        if state is None:  # the finalizer already ran (interpreter exit)
            return
        _, _, (ns, ifindex, ifname, mode, fd), _ = state
        try:
            _netlink_remove(ns, ifindex, ifname, mode, fd)
        finally:
            _release(ns, fd)

    close = detach

    def leave_attached(self):
        """Hand the program over to a plain netlink (IFLA_XDP) attachment that nothing here removes, and
        return its :class:`XdpInfo` — or None, the program then detached, if the hand-over failed.

        For debugging (the testkit's ``--netring-keep``): a bpf_link is detached by the kernel when its
        last fd closes, at the latest when this process exits, and a netlink attachment made by
        :func:`attach` by its finalizer; this one holds the program (and its maps) in the kernel for as
        long as the interface exists — in a namespace kept by name, until ``ip netns del``. Call it
        before the program is closed; afterwards this object is detached.
        """
        if not self._attached:
            return None
        ns, prog_fd = self._ns, self.program.fd
        keep_ns = NetNS.open(ns) if ns is not None else None   # detach() releases the attachment's own
        try:
            self.detach()
            try:
                _netlink_set(keep_ns, self.ifindex, self.ifname, prog_fd,
                             _FLAGS[self.mode] | lib.XDP_FLAGS_UPDATE_IF_NOEXIST,
                             "re-attaching XDP program %r to %s" % (self.program.name, self.ifname))
                got = _run(keep_ns, _query_here, self.ifindex)
            except NetringError:
                return None
        finally:
            if keep_ns is not None:
                keep_ns.close()
        pid = next((p for p, m in got if m == self.mode), None)
        return XdpInfo(pid, self.mode, self.program.name, None) if pid else None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.detach()

    def __repr__(self):
        where = _where(self.ifname, self._ns) if self._attached else self.ifname  # the namespace fd goes on detach
        return "<XdpAttachment %s on %s (ifindex %d) mode=%s via %s%s>" % (
            self.program.name, where, self.ifindex, self.mode, self.method, "" if self._attached else " detached")


def attach(target, program, netns=None, mode="native", replace=False, method="auto"):
    """Attach ``program`` to interface ``target`` (name or ifindex) in ``netns``; return an :class:`XdpAttachment`.

    ``mode``: native | generic | offload | auto (native, else generic). ``offload`` needs a program
    loaded bound to this very device (``load_program(..., offload=(target, netns))``), and a program
    loaded so attaches only with ``offload``. ``replace=False`` refuses an occupied interface with
    :class:`ResourceBusyError`; ``replace=True`` takes over a netlink-attached program (a
    program held by someone else's bpf_link cannot be replaced: close that link). An offloaded
    program and a native or generic one do not occupy each other's place.
    ``method``: auto (bpf_link, netlink if links are unsupported) | link | netlink.
    """
    if mode not in MODES:
        raise ConfigurationError("mode must be one of %s, not %r" % (", ".join(MODES), mode), field="mode", value=mode)
    if method not in ("auto", "link", "netlink"):
        raise ConfigurationError("method must be auto, link or netlink, not %r" % (method,), field="method", value=method)
    if not isinstance(program, Program) or program.closed:
        raise ConfigurationError("program %r is closed or not a netring Program" % (program,), field="program", value=program)
    bound = program.offload
    if mode == "offload" and bound is None:
        raise ConfigurationError(
            "program %r is not bound to a device, so it cannot be attached in offload mode: load it with "
            "load_program(..., offload=(ifname, netns)) for the device it should run on" % program.name,
            field="mode", value=mode)
    if mode != "offload" and bound is not None:
        raise ConfigurationError(
            "program %r was loaded for offload (bound to %s), so it runs only on that device: attach it there "
            "with mode='offload', or load it again without offload= for %s mode"
            % (program.name, program.offload_target or "ifindex %d" % bound.ifindex, mode), field="mode", value=mode)
    ns = _open_ns(netns)
    try:
        ifindex, ifname = _ifindex(ns, target)
        if bound is not None:
            _check_bound(program, bound, ifindex, ifname, ns)
        program.before_attach(ifindex, ns)  # e.g. the redirect built-in fills its devmap inside this namespace
        # The kernel keeps an offloaded program apart from a native or generic one: only one of the same kind occupies.
        existing = [(pid, m) for pid, m in _run(ns, _query_here, ifindex) if (m == "offload") == (mode == "offload")]
        if existing:
            pid, emode = existing[0]
            if not replace:
                info = _describe(pid, emode)
                raise ResourceBusyError(
                    "%s already has XDP program %r (id %d, %s mode) attached; pass replace=True to take it over, "
                    "or detach it first (`ip link set dev %s xdp off`)"
                    % (_where(ifname, ns), info.name, pid, emode, ifname))
        modes = ["native", "generic"] if mode == "auto" else [mode]
        last = None
        for m in modes:
            try:
                att = _attach_mode(program, ifindex, ifname, ns, m, method, existing if replace else [])
            except UnsupportedError as exc:
                last = exc
                continue
            ns = None  # now owned by the attachment
            return att
        raise last
    finally:
        if ns is not None:
            ns.close()


def _check_bound(program, bound, ifindex, ifname, ns):
    """An offloaded program attaches only to the device it was loaded for: same ifindex, same namespace."""
    here = _run(ns, _netns_inode_here)
    if (bound.ifindex, bound.netns_ino) != (ifindex, here):
        raise ConfigurationError(
            "program %r is bound for offload to %s (ifindex %d in namespace inode %d), not to %s (ifindex %d, "
            "namespace inode %d): load it again with offload=(%r, netns) for this device"
            % (program.name, program.offload_target or "another device", bound.ifindex, bound.netns_ino,
               _where(ifname, ns), ifindex, here, ifname), field="target", value=ifname)


def _netns_inode_here():
    return os.stat("/proc/thread-self/ns/net").st_ino


def _offload_refused(program, where, code):
    err = UnsupportedError(
        "attaching XDP program %r to %s in offload mode (XDP_FLAGS_HW_MODE) failed: [errno %d] %s (%s); the "
        "device's driver does not run XDP programs on the NIC itself (hardware like Netronome nfp does) — use "
        "mode='native' or 'generic' with a program loaded without offload="
        % (program.name, where, code, _ERRNO_NAMES.get(code, str(code)), os.strerror(code)))
    err.errno = code
    return err


def _attach_mode(program, ifindex, ifname, ns, mode, method, existing):
    """Attach in one mode; in offload mode a driver's refusal (EINVAL/EOPNOTSUPP, by link or netlink) says so."""
    if mode != "offload":
        return _attach_host(program, ifindex, ifname, ns, mode, method, existing)
    try:
        return _attach_host(program, ifindex, ifname, ns, mode, method, existing)
    except (ResourceBusyError, InterfaceNotFoundError, NetringPermissionError):
        raise
    except NetringError as exc:
        code = getattr(exc, "errno", None)
        if code not in _REFUSED:
            raise
        raise _offload_refused(program, _where(ifname, ns), code) from None


def _attach_host(program, ifindex, ifname, ns, mode, method, existing):
    flags = _FLAGS[mode]
    where = _where(ifname, ns)
    try:
        if existing:
            pid, emode = existing[0]
            if emode == mode:  # atomic replacement, netlink only (links never replace)
                _netlink_set(ns, ifindex, ifname, program.fd, flags, "replacing XDP program on %s" % where)
                return XdpAttachment(program, ifindex, ifname, ns, _check_mode(ns, ifindex, mode, program=program), "netlink")
            # Native and generic cannot coexist: remove the old one first.
            _netlink_set(ns, ifindex, ifname, -1, _FLAGS.get(emode, 0), "removing the old XDP program from %s" % where)
        if method in ("auto", "link"):
            fd = _run(ns, lib.nr_bpf_link_create_xdp, program.fd, ifindex, flags)
            if fd >= 0:
                link = Link(fd)
                return XdpAttachment(program, ifindex, ifname, ns, _check_mode(ns, ifindex, mode, link), "link", link)
            if fd in (-errno.EOPNOTSUPP, -ENOTSUPP) and mode == "native":
                raise UnsupportedError("%s does not support native XDP (driver has no XDP support); "
                                       "use mode='generic' or 'auto'" % where)
            if fd in (-errno.EBUSY, -errno.EEXIST):
                raise ResourceBusyError("attaching XDP to %s failed: %s; an XDP program is already attached — "
                                        "pass replace=True or detach it" % (where, os.strerror(-fd)))
            if fd == -errno.ENODEV:
                raise InterfaceNotFoundError(ifname, ns)
            if method == "link" or fd not in (-errno.EINVAL, -errno.E2BIG):
                raise bpf_error(fd, "attaching XDP program %r to %s (%s mode, bpf_link)" % (program.name, where, mode),
                                ifname=ifname, netns=ns)
            # EINVAL/E2BIG: this kernel has no XDP links — fall back to netlink.
        _netlink_set(ns, ifindex, ifname, program.fd, flags | lib.XDP_FLAGS_UPDATE_IF_NOEXIST,
                     "attaching XDP program %r to %s (%s mode)" % (program.name, where, mode))
        return XdpAttachment(program, ifindex, ifname, ns, _check_mode(ns, ifindex, mode, program=program), "netlink")
    except NetringError as exc:
        if getattr(exc, "errno", None) != errno.ERANGE:
            raise
        raise _mtu_error(program, ifindex, where, ns, mode) from None


def _link_mtus_here(ifindex):
    """Inside the namespace: ``(kind, MTU, MTU of the veth peer or None)`` of ``ifindex``.

    The peer may live in another namespace: it is asked for by its ifindex (IFLA_LINK) in the
    namespace IFLA_LINK_NETNSID names, with IFLA_IF_NETNSID (kernel 4.20+; None where that fails).
    """
    msg, kind, peer = _netlink.link_and_veth_peer(ifindex)
    return kind, msg.get_attr("IFLA_MTU"), peer.get_attr("IFLA_MTU") if peer is not None else None


def _mtu_error(program, ifindex, where, ns, mode):
    """The kernel said ERANGE: on a veth, a single-buffer program and an MTU (the peer's) that does not fit a page."""
    action = "attaching XDP program %r to %s (%s mode)" % (program.name, where, mode)
    try:
        kind, own_mtu, peer_mtu = _run(ns, _link_mtus_here, ifindex)
    except (OSError, IndexError, NetringError):
        kind = own_mtu = peer_mtu = None
    mtu = peer_mtu or own_mtu
    remedy = "load it with SEC(\"xdp.frags\") (netring: load_program(..., frags=True)) or lower the MTU"
    if kind != "veth":
        why = "[errno %d] %s; the driver%s refuses this program at MTU %s" % (
            errno.ERANGE, os.strerror(errno.ERANGE), " (%s)" % kind if kind else "", mtu or "?")
    elif program.frags:
        why = "the veth refuses frags-aware program %r at MTU %s" % (program.name, mtu)
        remedy = "lower the MTU"
    else:
        limit = veth_single_buffer_max_mtu()
        aware = "is not frags-aware" if program.frags is False else \
            "may not be frags-aware (netring did not load it, so cannot tell)"
        if peer_mtu and peer_mtu > limit:
            size = "MTU %d > %d" % (peer_mtu, limit) if peer_mtu == own_mtu else \
                "the veth peer's MTU %d > %d (the veth checks its peer's)" % (peer_mtu, limit)
        else:   # the peer's MTU could not be read (or fits): say what is known, not a guess
            size = "the kernel refused it with ERANGE (this end's MTU %s, the veth peer's %s; a single-buffer " \
                   "program needs the peer's MTU <= %d)" % (own_mtu or "?", peer_mtu or "unknown", limit)
        why = "program %r %s and %s (the largest MTU a single-buffer XDP program accepts on veth with a %d KiB page)" \
            % (program.name, aware, size, os.sysconf("SC_PAGE_SIZE") >> 10)
    err = UnsupportedError("%s failed: %s; %s, or use mode='generic'" % (action, why, remedy))
    err.errno = errno.ERANGE
    return err


def _netlink_set(ns, ifindex, ifname, fd, flags, action):
    try:
        with _iproute(ns) as ipr:
            ipr.link("set", index=ifindex, xdp={"attrs": [("IFLA_XDP_FD", fd), ("IFLA_XDP_FLAGS", flags)]})
    except Exception as exc:
        code = getattr(exc, "code", None)
        if code in (errno.EOPNOTSUPP, ENOTSUPP):
            err = UnsupportedError("%s failed: the driver does not support this XDP mode; try mode='generic' or 'auto'"
                                   % action)
            err.errno = code
            raise err from None
        if code is None:
            raise
        raise _netlink_error(exc, action, ifname, ns) from None


def _check_mode(ns, ifindex, wanted, link=None, program=None):
    """``wanted`` if IFLA_XDP shows a program in that mode; else undo the attach (``link``, or the
    netlink attachment of ``program``) and raise — an attach that raised leaves nothing behind."""
    got = _run(ns, _query_here, ifindex)
    modes = [m for _, m in got]
    if wanted not in modes:
        name = _run(ns, _name_of, ifindex)
        if link is not None:
            link.close()
        elif program is not None:
            for pid, mode in got:
                if pid == program.id and mode in _FLAGS:
                    _netlink_remove(ns, ifindex, name, mode, program.fd)
        raise NetringError("XDP attach reported success but IFLA_XDP of %s shows %s instead of %s mode"
                           % (_where(name, ns), modes or "nothing", wanted))
    return wanted


def detach_all(ifname, netns=None):
    """Remove every netlink-attached XDP program from ``ifname`` (a cleanup tool; link-held ones stay)."""
    ns = _open_ns(netns)
    try:
        ifindex, name = _ifindex(ns, ifname)
        existing = _run(ns, _query_here, ifindex)
        for _, mode in existing:
            try:
                _netlink_set(ns, ifindex, name, -1, _FLAGS.get(mode, 0), "detaching XDP from %s" % _where(name, ns))
            except ResourceBusyError:
                pass
    finally:
        if ns is not None:
            ns.close()
