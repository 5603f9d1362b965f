"""What this process may do: capabilities read from ``/proc/self/status``, kernel version, probes.

Nothing here guesses from the uid: a root process with capabilities dropped (``setpriv``,
``capsh``, containers) is reported as it really is.
"""
import os
import platform

__all__ = ["CAPABILITIES", "CAPS", "has", "effective", "missing", "skip_reason", "kernel_version", "probe", "describe", "NEEDED"]

#: Every Linux capability name and bit (all of ``linux/capability.h``); a scenario's ``requires.capabilities``
#: accepts these.
CAPABILITIES = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3, "CAP_FSETID": 4,
    "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15, "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19, "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27, "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31, "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35, "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38, "CAP_BPF": 39, "CAP_CHECKPOINT_RESTORE": 40,
}

#: Capability numbers (linux/capability.h) of the ones the toolkit cares about.
CAPS = {
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_SYS_ADMIN": 21,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
}

#: What topologies and rings need: links and namespaces (NET_ADMIN, SYS_ADMIN for setns/unshare),
#: AF_PACKET sockets (NET_RAW).
NEEDED = ("CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_ADMIN")


def _cap_mask(status_path="/proc/self/status"):
    try:
        with open(status_path) as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def has(name, status_path="/proc/self/status"):
    """True when capability ``name`` (a key of :data:`CAPABILITIES`) is in this process's effective set.

    Read from ``CapEff`` in ``/proc/self/status``, never guessed from the uid; an unreadable
    status file means no capabilities. Raises :class:`KeyError` for an unknown name.
    """
    return bool(_cap_mask(status_path) >> CAPABILITIES[name] & 1)


def effective(status_path="/proc/self/status"):
    """The set of capability names (of :data:`CAPS`) in this process's effective set."""
    mask = _cap_mask(status_path)
    return {name for name, bit in CAPS.items() if mask >> bit & 1}


def missing(required=NEEDED, status_path="/proc/self/status"):
    """The capabilities of ``required`` this process lacks, in the given order."""
    have = effective(status_path)
    unknown = [c for c in required if c not in CAPS]
    if unknown:
        raise ValueError("unknown capability %s; known: %s" % (unknown[0], ", ".join(sorted(CAPS))))
    return [c for c in required if c not in have]


def skip_reason(required=NEEDED, status_path="/proc/self/status"):
    """A skip message naming what is missing (``None`` when nothing is)."""
    lack = missing(required, status_path)
    if not lack:
        return None
    return ("needs %s (missing from this process's effective capabilities, CapEff in /proc/%d/status); "
            "run as root or grant %s, e.g. `sudo setcap %s+ep $(readlink -f $(which python3))`"
            % (" and ".join(lack), os.getpid(), " and ".join(lack),
               ",".join(c.lower() for c in lack)))


def kernel_version():
    """``(major, minor, patch)`` of the running kernel, e.g. ``(6, 1, 0)``."""
    rel = platform.release()
    nums = []
    for part in rel.replace("-", ".").split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        nums.append(int(digits) if digits else 0)
    while len(nums) < 3:
        nums.append(0)
    return tuple(nums)


_probe_cache = {}


def probe():
    """Try what the toolkit needs, once per process; a dict name → ``"yes"`` or the reason it is not usable.

    Keys: ``topology`` (namespaces + veth + bridge), ``rings`` (``netring.Capture``/``Injector``
    importable and CAP_NET_RAW), ``xdp`` (CAP_BPF or CAP_SYS_ADMIN).
    """
    if _probe_cache:
        return dict(_probe_cache)
    out = {}
    lack = missing()
    if lack:
        out["topology"] = "no (missing %s)" % ", ".join(lack)
    else:
        try:
            from .topology import Topology

            spec = {"nodes": ["a", "b"], "links": [{"endpoints": ["a:p0", "b:p0"]}],
                    "bridges": [{"name": "b:br0", "ports": ["b:p0"]}]}
            with Topology(spec):
                pass
            out["topology"] = "yes"
        except Exception as exc:  # report, don't fail the session header
            out["topology"] = "no (%s)" % exc
    try:
        import netring

        have_rings = hasattr(netring, "Capture") and hasattr(netring, "Injector")
    except Exception as exc:
        have_rings, why = False, str(exc)
    else:
        why = "netring.Capture/Injector not in this build"
    if not have_rings:
        out["rings"] = "no (%s)" % why
    elif "CAP_NET_RAW" not in effective():
        out["rings"] = "no (missing CAP_NET_RAW)"
    else:
        out["rings"] = "yes"
    caps = effective()
    out["xdp"] = "yes" if ("CAP_BPF" in caps or "CAP_SYS_ADMIN" in caps) and "CAP_NET_ADMIN" in caps \
        else "no (missing CAP_BPF/CAP_NET_ADMIN)"
    _probe_cache.update(out)
    return dict(out)


def describe():
    """The lines the plugin puts into pytest's report header."""
    caps = effective()
    shown = ("CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_ADMIN", "CAP_BPF")
    return [
        "netring: kernel %s, capabilities %s" % (
            platform.release(), " ".join("%s%s" % (c, "+" if c in caps else "-") for c in shown)),
        "netring: usable: %s" % ", ".join("%s %s" % kv for kv in probe().items()),
    ]
