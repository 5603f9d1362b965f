"""What this process may do — the one capability module of the toolkit.

Capabilities are read from the effective set in ``/proc/self/status`` (``CapEff``), never guessed
from the uid: a root process with capabilities dropped (``setpriv``, ``capsh``, containers) is
reported as it really is. The plugin's header, the ``privileged`` marker, the fixtures' skips, the
scenario loader (``requires:``) and the runtime checks all ask this module.

Everything here reads facts only (``/proc``, ``uname``, whether the C core imports): it creates
no namespace, link or socket, so the auto-loaded plugin can call it in every pytest session.
"""
import functools
import os
import platform
import re

__all__ = ["CAPABILITIES", "NEEDED", "effective", "has", "missing", "skip_reason", "kernel_version",
           "kernel_at_least", "core_available", "usable", "describe"]

#: Linux capability names and bits (``linux/capability.h``); ``requires.capabilities`` and
#: ``@pytest.mark.privileged(...)`` accept these.
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

#: What topologies and rings need: links and namespaces (NET_ADMIN, SYS_ADMIN for setns/unshare),
#: AF_PACKET sockets (NET_RAW).
NEEDED = ("CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_ADMIN")

_STATUS = "/proc/self/status"


def _cap_mask(status_path=_STATUS):
    try:
        with open(status_path) as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def _check_names(names):
    unknown = [c for c in names if c not in CAPABILITIES]
    if unknown:
        raise ValueError("unknown capability %s; known: %s" % (unknown[0], ", ".join(sorted(CAPABILITIES))))


def effective(status_path=_STATUS):
    """The set of capability names (of :data:`CAPABILITIES`) in this process's effective set."""
    mask = _cap_mask(status_path)
    return {name for name, bit in CAPABILITIES.items() if mask >> bit & 1}


def has(name, status_path=_STATUS):
    """True when capability ``name`` (e.g. ``"CAP_BPF"``) is in this process's effective set."""
    _check_names([name])
    return bool(_cap_mask(status_path) >> CAPABILITIES[name] & 1)


def missing(required=NEEDED, status_path=_STATUS):
    """The capabilities of ``required`` this process lacks, in the given order.

    Raises ``ValueError`` naming the known capabilities for a name that is none of them.
    """
    _check_names(required)
    have = effective(status_path)
    return [c for c in required if c not in have]


def skip_reason(required=NEEDED, status_path=_STATUS):
    """A skip message naming what is missing (``None`` when nothing is)."""
    lack = missing(required, status_path)
    if not lack:
        return None
    return ("needs %s (missing from this process's effective capabilities, CapEff in /proc/%d/status); "
            "run as root or grant %s, e.g. `sudo setcap %s+ep $(readlink -f $(which python3))`"
            % (" and ".join(lack), os.getpid(), " and ".join(lack),
               ",".join(c.lower() for c in lack)))


def kernel_version(release=None):
    """``(major, minor, patch)`` of the running kernel (or of ``release``), e.g. ``(6, 1, 0)``."""
    nums = [int(x) for x in re.findall(r"\d+", release or platform.release())[:3]]
    return tuple(nums + [0] * (3 - len(nums)))


def kernel_at_least(version, release=None):
    """True when the kernel is at least ``version`` (a tuple like ``(5, 18)`` or text like ``"5.18"``)."""
    if isinstance(version, str):
        version = kernel_version(version)
    want = tuple(version)
    have = kernel_version() if release is None else kernel_version(release)
    return have[:len(want)] >= want


@functools.lru_cache(maxsize=None)
def core_available():
    """``None`` when netring's C core (``netring._core``) imports, else the reason it does not."""
    try:
        import netring._core  # noqa: F401
    except ImportError as exc:
        return "netring's C core does not import (%s); reinstall netring (ci/setup)" % exc
    return None


def usable():
    """What the toolkit can do here, from facts only: name → ``"yes"`` or ``"no (why)"``.

    Keys: ``topology`` (namespaces + veth: CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN), ``rings``
    (the C core imports and CAP_NET_RAW), ``xdp`` (CAP_NET_ADMIN and CAP_BPF or CAP_SYS_ADMIN).
    Nothing is tried: a fixture that builds a topology reports what really fails, where it fails.
    """
    caps = effective()
    lack = [c for c in NEEDED if c not in caps]
    out = {"topology": "no (missing %s)" % ", ".join(lack) if lack else "yes"}
    core = core_available()
    out["rings"] = ("no (%s)" % core if core else
                    "yes" if "CAP_NET_RAW" in caps else "no (missing CAP_NET_RAW)")
    out["xdp"] = ("yes" if ("CAP_BPF" in caps or "CAP_SYS_ADMIN" in caps) and "CAP_NET_ADMIN" in caps
                  else "no (missing CAP_BPF/CAP_NET_ADMIN)")
    return out


def describe():
    """The lines the plugin puts into pytest's report header (facts only; creates nothing)."""
    caps = effective()
    shown = ("CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_ADMIN", "CAP_BPF")
    return [
        "netring: kernel %s, capabilities %s" % (
            platform.release(), " ".join("%s%s" % (c, "+" if c in caps else "-") for c in shown)),
        "netring: usable: %s" % ", ".join("%s %s" % kv for kv in usable().items()),
    ]
