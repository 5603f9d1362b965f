"""A scenario's ``requires``: what this machine must offer, checked before (and once the topology exists, during) a run.

Capabilities and the kernel version come from :mod:`netring_testkit.caps`, the one capability probe.
"""
import platform
import shutil

from .. import caps

__all__ = ["check_requires", "check_runtime_requires"]


def check_requires(scenario):
    """Why ``scenario`` cannot run here (a skip reason), or None when its static ``requires`` are met.

    Checks ``kernel: ">= X.Y"``, ``capabilities`` (effective set of this process), ``commands``
    (on PATH) and, for ``xdp_modes`` or any ``xdp:`` program, that CAP_NET_ADMIN plus CAP_BPF
    (or CAP_SYS_ADMIN) are effective. Whether the
    interfaces support the XDP modes asked for is known only once the topology exists: see
    :func:`check_runtime_requires`.
    """
    req = scenario.requires
    if "kernel" in req:
        want = tuple(int(x) for x in req["kernel"].replace(">=", "").strip().split("."))
        if not caps.kernel_at_least(want):
            return "needs kernel >= %s, this is %s" % (".".join(map(str, want)), platform.release())
    wanted = req.get("capabilities") or []
    if wanted:
        missing = [c for c in wanted if not caps.has(c)]
        if missing:
            return "needs %s; run as root or grant %s" % (", ".join(missing), ", ".join(missing))
    for cmd in req.get("commands") or []:
        if shutil.which(cmd) is None:
            return "needs the command %r on PATH" % cmd
    if req.get("xdp_modes") or scenario.xdp:
        if not caps.has("CAP_NET_ADMIN"):
            return "needs CAP_NET_ADMIN to attach XDP programs; run as root or grant it"
        if not (caps.has("CAP_BPF") or caps.has("CAP_SYS_ADMIN")):
            return "needs CAP_BPF (or CAP_SYS_ADMIN) to load XDP programs; run as root or grant it"
    return None


def check_runtime_requires(scenario, topology, features=None):
    """Why ``scenario``'s ``requires.xdp_modes`` are not met on the built ``topology`` (a skip reason), or None.

    ``native`` needs every XDP attach endpoint (the scenario's ``xdp[].attach``; without XDP
    programs, every stream's ``to``) to advertise the ``basic`` XDP feature, queried with
    ``features(ifname, netns)`` (default :func:`netring.netdev.features`, netdev netlink family,
    kernel 6.3+); ``generic`` works on every interface. When the kernel cannot answer the
    feature query the mode is assumed to work (the attach itself then reports the truth).
    """
    modes = scenario.requires.get("xdp_modes") or []
    if "native" not in modes:
        return None
    if features is None:
        from netring.netdev import features
    from netring.errors import UnsupportedError

    eps = [x.attach for x in scenario.xdp] or [st.dst for st in scenario.streams]
    for name in dict.fromkeys(eps):
        ep = topology[name]
        try:
            info = features(ep.ifname, netns=ep.netns)
        except UnsupportedError:
            return None  # no netdev family (kernel < 6.3): nothing to ask
        if "basic" not in info.xdp_features:
            return ("needs native XDP (requires.xdp_modes: [native]), but %s does not support it (XDP features: %s)"
                    % (name, ", ".join(sorted(info.xdp_features)) or "none"))
    return None


