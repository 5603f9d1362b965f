"""Errors that used to escape the hierarchy or name the wrong cause: NUL bytes and over-long names,
fd exhaustion (EMFILE), a dropped CAP_NET_ADMIN. Each must be a typed netring error naming the cause."""
import os
import subprocess
import sys
import textwrap

import pytest

from netring import Capture, ConfigurationError, Injector, NetringPermissionError, TooManyOpenFilesError
from netring.netns import NetNS

from core_net import needs_root

CHILD_TIMEOUT = 60


# -- 1. names: validated up front, typed, naming field and value ---------------------------------
BAD_IFNAMES = ["lo\0", "\0", "eth\x000", "a" * 16, "é" * 8, "a/b", "a b", "a:1", "", ".", "..", b"lo", 7]


@pytest.mark.parametrize("cls", [Capture, Injector])
@pytest.mark.parametrize("ifname", BAD_IFNAMES)
def test_bad_interface_name_is_a_configuration_error_naming_it(cls, ifname):
    with pytest.raises(ConfigurationError) as ei:
        cls(ifname)
    assert ei.value.field == "ifname" and ei.value.value == ifname
    assert "ifname=%r" % (ifname,) in str(ei.value)
    assert "15 bytes" in str(ei.value)


@pytest.mark.parametrize("cls", [Capture, Injector])
@pytest.mark.parametrize("spec", ["ns\0", "\0", "/run/netns/x\0", b"a\0b"])
def test_nul_in_netns_argument_is_a_configuration_error_naming_it(cls, spec):
    with pytest.raises(ConfigurationError) as ei:
        cls("lo", netns=spec)
    assert ei.value.field == "netns" and ei.value.value == spec
    assert repr(spec) in str(ei.value) and "NUL" in str(ei.value)


@pytest.mark.parametrize("spec", ["ns\0", "/proc/self/ns/net\0", "x" * 256, "..", "."])
def test_netns_open_rejects_bad_names(spec):
    with pytest.raises(ConfigurationError) as ei:
        NetNS.open(spec)
    assert ei.value.field == "netns" and repr(spec) in str(ei.value)


@pytest.mark.parametrize("name", ["nrt-\0", "\0", "a/b", "x" * 256, ".", "..", "", 5])
def test_netns_create_rejects_bad_names_before_touching_anything(name):
    before = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    with pytest.raises(ConfigurationError) as ei:
        NetNS.create(name=name)
    assert ei.value.field == "name" and repr(name) in str(ei.value)
    after = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    assert after <= before


@needs_root
def test_netns_ifindex_rejects_nul():
    with NetNS.create() as ns:
        with pytest.raises(ConfigurationError) as ei:
            ns.ifindex("lo\0")
        assert ei.value.field == "ifname"
        assert ns.ifindex("lo") == 1


# -- 2. fd exhaustion: a typed error naming EMFILE, and nothing leaked -----------------------------
SWEEP = r'''
import errno, os, resource, sys
import netring
from netring import Capture, Injector, NetringError
from netring.netns import NetNS

def nfds():
    return len(os.listdir("/proc/self/fd"))

ns = NetNS.create()
path = "/proc/%d/fd/%d" % (os.getpid(), ns.fileno())
makers = {
    "capture": lambda: Capture("lo", netns=ns, block_size=4096, block_count=1),
    "capture-path": lambda: Capture("lo", netns=path, block_size=4096, block_count=1),
    "injector": lambda: Injector("lo", netns=ns, frame_count=2),
    "injector-path": lambda: Injector("lo", netns=path, frame_count=2),
    "capture-here": lambda: Capture("lo", block_size=4096, block_count=1),
    "netns-open": lambda: NetNS.open(path),
    "netns-create": lambda: NetNS.create(),
}
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
bad = []
for what, make in makers.items():
    make().close()                       # warm up: imports, the worker thread
    base = nfds()
    top = max(int(x) for x in os.listdir("/proc/self/fd"))
    ok = False
    failures = 0
    for limit in range(top - 2, top + 12):
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
        err = obj = None
        try:
            obj = make()
        except BaseException as exc:
            err = exc
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        if err is None:
            obj.close()
            ok = True
        elif not isinstance(err, NetringError) or getattr(err, "errno", None) != errno.EMFILE \
                or "too many open files (EMFILE): raise `ulimit -n`" not in str(err):
            bad.append("%s limit %d: %s: %s" % (what, limit, type(err).__name__, err))
        else:
            failures += 1
        del err, obj
        if nfds() != base:
            bad.append("%s limit %d: %d fds after the failure, %d before" % (what, limit, nfds(), base))
    print("SWEEP", what, "failures", failures, "ok", ok)
    if not ok or not failures:
        bad.append("%s: the sweep did not cross the constructor's needs (failures %d, ok %s)" % (what, failures, ok))
ns.close()
print("BAD", len(bad))
for line in bad:
    print(line)
'''


@needs_root
def test_fd_exhaustion_is_a_typed_error_and_leaks_nothing():
    out = subprocess.run([sys.executable, "-c", SWEEP], capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "BAD 0" in out.stdout, out.stdout + out.stderr


def test_emfile_from_oserror_is_typed():
    import errno
    from netring.errors import from_oserror

    e = from_oserror(OSError(errno.EMFILE, "x"), "socket(AF_PACKET)")
    assert isinstance(e, TooManyOpenFilesError) and isinstance(e, OSError) and e.errno == errno.EMFILE
    assert "socket(AF_PACKET) failed: too many open files (EMFILE): raise `ulimit -n`" in str(e)
    e = from_oserror(OSError(errno.ENFILE, "x"), "mmap")
    assert isinstance(e, TooManyOpenFilesError) and "fs.file-max" in str(e)


# -- 3. CAP_NET_ADMIN dropped: SIOCSIFFLAGS and sysctls name the capability ---------------------------
NO_NET_ADMIN = ["setpriv", "--inh-caps=-all", "--bounding-set=-net_admin", "--"]
CREATE = r'''
from netring.netns import NetNS
from netring.errors import NetringPermissionError
from netring_testkit.topology import Topology
for make in (NetNS.create, lambda: Topology({"nodes": ["a", "b"], "links": [{"endpoints": ["a:e0", "b:e0"]}]}).build()):
    try:
        make()
    except NetringPermissionError as exc:
        print("TYPED", exc.capability, "|", exc)
    except BaseException as exc:
        print("RAW", type(exc).__name__, exc)
    else:
        print("NOERROR")
'''


@needs_root
def test_namespace_creation_without_cap_net_admin_names_it():
    out = subprocess.run(NO_NET_ADMIN + [sys.executable, "-c", CREATE], capture_output=True, text=True,
                         timeout=CHILD_TIMEOUT)
    lines = out.stdout.splitlines()
    assert len(lines) == 2 and all(l.startswith("TYPED CAP_NET_ADMIN |") for l in lines), out.stdout + out.stderr
    assert all("SIOCSIFFLAGS" in l and "grant CAP_NET_ADMIN" in l for l in lines), out.stdout
