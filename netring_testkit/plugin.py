"""The pytest side of netring_testkit: options, markers, skips, header, reaper and fixtures.

Loaded through ``netring_testkit`` (its ``pytest_plugins``), so ``pytest -p netring_testkit``
works with plugin autoload on or off.

Fixtures (the public contract):

- ``netns`` — factory: ``netns()`` → a fresh :class:`netring.netns.NetNS`, removed after the test.
- ``veth_pair`` — ``(a, b)``: two :class:`~netring_testkit.topology.Endpoint` objects joined by a
  veth, each in its own fresh namespace, up and addressed (198.18.0.1/24 + 2001:2::1/64 and
  198.18.0.2/24 + 2001:2::2/64). ``@pytest.mark.veth_pair(mtu=9000, gro=True, queues=2, ipv6=False)``
  passes link options.
- ``topology`` — factory: ``topology(spec)`` → a built :class:`~netring_testkit.topology.Topology`,
  torn down after the test.
- DUT mode (:mod:`netring_testkit.dut`): with ``--netring-dut IFACE[@NETNS]`` and ``--netring-peer
  IFACE[@NETNS]`` (env ``NETRING_DUT``/``NETRING_PEER``, ini ``netring_dut``/``netring_peer``)
  ``veth_pair`` yields ``(peer, dut)`` over those existing interfaces instead (nothing created or
  deleted; what it changes is restored), and ``--netring-xdp-features`` adds the capability check
  of the DUT as one item per XDP feature.
- ``netring_factory`` — session-scoped :class:`NetringFactory` for fixtures of wider scope
  (``netring_factory.topology(spec)``, ``.veth_pair(**link)``, ``.netns()`` — close them yourself
  or use them as context managers).

Everything these create is torn down after the test (also on failure and Ctrl-C); with
``--netring-keep`` namespaces are named ``nrt-<pid>-<serial>-<node>`` and those of failed tests stay
for ``ip netns exec`` debugging — the terminal summary prints how to enter them, once (the XDP
programs a failed scenario or ``xdp`` fixture attached there stay attached; see
:mod:`netring_testkit.kept`).

Reaper: when a session first uses the toolkit (a netring fixture or a YAML scenario item; as
root), kept ``nrt-<pid>-…`` namespaces are removed once their creating process has exited
**and** they are older than ``netring_reap_after`` (ini, default ``24h``; age = mtime of the
``/run/netns`` bind mount, i.e. when the namespace was created); the terminal summary lists them.
So a namespace someone is still debugging on a shared machine survives other sessions for a
day; ``ip netns del NAME`` removes it sooner, ``netring_reap_after = 0`` restores "as soon as
the creator exited", ``--netring-no-reap`` / ``netring_reap = false`` turn the reaper off.
Namespaces are named *provisionally* while their test runs and kept only once it failed, so if the
session is killed (SIGKILL: no teardown runs), the next session removes those of the tests that had
not failed at once, at any age, while a failed test's kept namespaces still get their day.

The plugin is auto-loaded in every pytest session of an environment where netring is installed,
so until a test asks for it, it costs nothing and creates nothing: importing it loads neither
pyroute2 nor the C core, and the report header reads facts only (:mod:`netring_testkit.caps`:
kernel release, capabilities, whether the C core imports).
"""
import errno
import os
import re
import time
import ctypes
import ctypes.util

import pytest

from . import caps as _caps
from . import dut as _dut

__all__ = ["NetringFactory", "get_factory", "get_dut", "require", "skip_unmet", "veth_pair_spec", "reap", "parse_age", "DEFAULT_REAP_AFTER"]

#: Report attribute carrying a phase's kept-namespace hints to the terminal summary (also from xdist
#: workers: extra report attributes travel with the report). Not a report section: pytest would print
#: a section with every failure, and the summary prints the hints once.
_KEPT_ATTR = "netring_kept"
_PRIVILEGE_GAP = pytest.StashKey()
_REQUIRE_ENV = "NETRING_REQUIRE_PRIVILEGES"




def skip_unmet(reason):
    """Skip the running test or scenario because ``reason`` (a capability, kernel feature or command
    it names) is missing here; reported at the test's own location.

    An ordinary skip — except under ``--netring-require-privileges`` (ini ``netring_require_privileges``,
    env ``NETRING_REQUIRE_PRIVILEGES=1``), where it becomes an error naming what is missing, so a CI job
    without privileges cannot go green proving nothing.
    """
    exc = pytest.skip.Exception(reason, _use_item_location=True)
    exc.netring_unmet = True   # pytest prints subclasses of its Skipped with their class name: mark instead
    raise exc
_FACTORY = pytest.StashKey()
_DUT = pytest.StashKey()

#: Default of the ``netring_reap_after`` ini option.
DEFAULT_REAP_AFTER = "24h"
_AGE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_AGE_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(text):
    """Seconds in an age like ``"24h"``, ``"90m"``, ``"3600"``, ``"2d"`` or ``"0"``.

    Raises ``ValueError`` naming the accepted forms for anything else.
    """
    m = _AGE_RE.match(str(text))
    if not m:
        raise ValueError("netring_reap_after = %r is not an age; use a number of seconds or a number "
                         "with s, m, h or d (e.g. 24h, 90m, 0)" % (text,))
    return float(m.group(1)) * _AGE_UNITS[m.group(2)]


# --------------------------------------------------------------------------------------------
# Reaper
# --------------------------------------------------------------------------------------------
def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _umount_and_unlink(path):
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    if libc.umount2(path.encode(), 2) != 0:  # MNT_DETACH
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOENT):
            raise OSError(code, os.strerror(code), path)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def reap(run_dir="/run/netns", max_age=parse_age(DEFAULT_REAP_AFTER), now=None):
    """Remove ``nrt-<pid>-…`` namespaces left by ``--netring-keep`` runs: those whose ``<pid>`` has
    exited and that are at least ``max_age`` seconds old — or *provisional* at any age: a namespace
    of a test that had not failed when its process died (SIGKILL) was never kept
    (:func:`netring.netns.is_provisional`).

    The age is measured from the mtime of the ``/run/netns/NAME`` bind mount — the namespace's
    creation time (``now`` defaults to ``time.time()``). Namespaces of live processes (e.g.
    concurrent xdist workers) and young ones (someone may still be debugging them, on a shared
    machine possibly another user) are left alone. Returns the names removed. Errors on
    single entries are skipped (another reaper may race us).
    """
    from netring.netns import is_provisional

    from .topology import NAME_PREFIX

    name_re = re.compile(r"^%s(\d+)-" % re.escape(NAME_PREFIX))
    removed = []
    now = time.time() if now is None else now
    try:
        names = sorted(os.listdir(run_dir))
    except OSError:
        return removed
    for name in names:
        m = name_re.match(name)
        if not m or _pid_alive(int(m.group(1))):
            continue
        path = os.path.join(run_dir, name)
        try:
            if not is_provisional(path) and now - os.stat(path).st_mtime < max_age:
                continue
            _umount_and_unlink(path)
        except OSError:
            continue
        removed.append(name)
    return removed


# --------------------------------------------------------------------------------------------
# Session factory
# --------------------------------------------------------------------------------------------
class NetringFactory:
    """Session-scoped maker of namespaces and topologies (the ``netring_factory`` fixture).

    ``keep`` is the ``--netring-keep`` setting: objects it makes then have named namespaces.
    :attr:`kept` accumulates the names of namespaces kept for debugging in this session.
    ``reap_after`` (seconds, or None for no reaping) is applied by :meth:`prepare`.
    """

    def __init__(self, keep=False, reap_after=None):
        self.keep = keep
        self.reap_after = reap_after
        #: Names of namespaces left in place for debugging in this session.
        self.kept = []
        #: Names of earlier sessions' namespaces the reaper removed (None until it ran).
        self.reaped = None
        self._pending = []
        self._deferred_xdp = []

    def prepare(self):
        """Called by every fixture and scenario item before it builds anything: why the toolkit cannot
        build topologies here (a skip reason naming the capability), or None — and then, once per
        session, the reaper runs (if enabled and with CAP_SYS_ADMIN). So a session that uses
        nothing of the toolkit reaps nothing."""
        reason = _caps.skip_reason()
        if reason:
            return reason
        if self.reaped is None:
            self.reaped = reap(max_age=self.reap_after) if self.reap_after is not None else []
        return None

    def topology(self, spec):
        """A built :class:`Topology` (``keep`` as configured); close it, or use it with ``with``."""
        from .topology import Topology

        return Topology(spec, keep=self.keep).build()

    def veth_pair(self, **link):
        """A built two-node topology ``a:eth0 <-> b:eth0``; ``link`` adds link options (mtu, gro, …)."""
        return self.topology(veth_pair_spec(**link))

    def netns(self):
        """A fresh namespace (named ``nrt-…`` when ``keep``, provisionally: ``keep()`` it to keep it past a
        crash of this process, see :func:`reap`); close/delete it yourself."""
        from netring.netns import NetNS

        from .topology import namespace_name

        # Provisional: the netns fixture calls keep() on those of a failed test; the rest, should this
        # process die before deleting them, the next session's reaper removes at once.
        return NetNS.create(name=namespace_name("ns") if self.keep else None, provisional=self.keep)

    def record_kept(self, names, hint):
        """Record namespaces left for debugging; ``hint`` (text) is attached to the current test's
        report and printed in the terminal summary. For other plugins (e.g. the scenario runner)
        that close a ``Topology(keep=True)`` themselves."""
        self.kept.extend(names)
        self._pending.append(hint)

    def defer_xdp(self, nodeid, xdp_factory):
        """Close ``xdp_factory`` (the ``xdp`` fixture's) after the test's teardown, once it is known which
        namespaces stay: its programs in kept namespaces stay attached (the hint says how to see them)."""
        self._deferred_xdp.append((nodeid, xdp_factory))

    def _settle_xdp(self):
        deferred, self._deferred_xdp = self._deferred_xdp, []
        first = None
        for nodeid, f in deferred:
            try:
                hints = f.close(keep_in=set(self.kept))
            except Exception as exc:  # close the others too
                first = first or exc
                continue
            if hints:
                self._pending.append("%s\n%s" % (nodeid, "\n".join(hints)))
        if first is not None:
            raise first

    def _take_pending(self):
        out, self._pending = self._pending, []
        return out


def get_factory(config):
    """The session's :class:`NetringFactory` for ``config`` (what the ``netring_factory`` fixture returns)."""
    return config.stash[_FACTORY]


def veth_pair_spec(**link):
    """The spec ``veth_pair`` builds: nodes ``a``/``b``, link ``a:eth0 <-> b:eth0`` plus ``link`` options."""
    d = {"endpoints": ["a:eth0", "b:eth0"]}
    d.update(link)
    return {"nodes": ["a", "b"], "links": [d]}


# --------------------------------------------------------------------------------------------
# Hooks
# --------------------------------------------------------------------------------------------
def pytest_addoption(parser):
    """The ``netring`` option group."""
    group = parser.getgroup("netring", "netring test kit")
    group.addoption("--netring-keep", action="store_true", default=None,
                    help="keep the network namespaces of failed tests (named nrt-<pid>-…) for "
                         "`ip netns exec` debugging; the summary says how to enter them")
    group.addoption("--netring-no-reap", action="store_true", default=None,
                    help="do not remove nrt-* namespaces left by earlier --netring-keep runs at session start "
                         "(by default those of exited processes older than netring_reap_after are removed)")
    group.addoption("--netring-require-privileges", action="store_true", default=None,
                    help="a test or scenario that would skip for a missing capability, kernel feature or "
                         "command errors instead, naming it (also env %s=1)" % _REQUIRE_ENV)
    group.addoption("--netring-dut", metavar="IFACE[@NETNS]", default=None,
                    help="DUT mode: run veth_pair tests and one-link YAML scenarios on this existing interface "
                         "(the device under test), with --netring-peer at the other end (also env %s, ini "
                         "netring_dut); nothing is deleted, what is changed is restored" % _dut.DUT_ENV)
    group.addoption("--netring-peer", metavar="IFACE[@NETNS]", default=None,
                    help="DUT mode: the existing interface cabled to --netring-dut (also env %s, ini netring_peer)"
                         % _dut.PEER_ENV)
    group.addoption("--netring-xdp-features", action="store_true", default=False,
                    help="with --netring-dut: add the driver XDP capability check of the DUT (frames from the peer), "
                         "one item per XDP feature: advertised vs observed, a mismatch fails")
    parser.addini("netring_dut", default="", help="like --netring-dut (IFACE[@NETNS])")
    parser.addini("netring_peer", default="", help="like --netring-peer (IFACE[@NETNS])")
    parser.addini("netring_require_privileges", type="bool", default=False,
                  help="like --netring-require-privileges (default: false)")
    parser.addini("netring_keep", type="bool", default=False,
                  help="like --netring-keep (default: false)")
    parser.addini("netring_reap", type="bool", default=True,
                  help="at session start, remove nrt-* namespaces kept by --netring-keep runs whose process "
                       "has exited and that are older than netring_reap_after (default: true)")
    parser.addini("netring_reap_after", default=DEFAULT_REAP_AFTER,
                  help="age (since creation) after which the session-start reaper removes a kept nrt-* "
                       "namespace of an exited process: seconds or a number with s/m/h/d; 0 = as soon as "
                       "its process exited (default: %s)" % DEFAULT_REAP_AFTER)


def _opt(config, name, ini):
    v = config.getoption(name)
    return config.getini(ini) if v is None else v


def pytest_configure(config):
    """Register markers and the session factory."""
    config.addinivalue_line(
        "markers", "privileged(*caps): needs CAP_NET_ADMIN, CAP_NET_RAW and CAP_SYS_ADMIN (plus any named); "
                   "skipped naming the missing capability otherwise")
    config.addinivalue_line(
        "markers", "veth_pair(**link): link options for the veth_pair fixture (mtu=, gro=, queues=, ipv4=, ipv6=)")
    try:
        reap_after = parse_age(config.getini("netring_reap_after"))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    no_reap = config.getoption("--netring-no-reap")
    if no_reap or (no_reap is None and not config.getini("netring_reap")) or _caps.missing(("CAP_SYS_ADMIN",)):
        reap_after = None
    try:
        config.stash[_DUT] = _dut.from_config(config)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if config.getoption("--netring-xdp-features") and config.stash[_DUT] is None:
        raise pytest.UsageError("--netring-xdp-features checks the device named by --netring-dut (and --netring-peer)")
    config.stash[_FACTORY] = NetringFactory(keep=bool(_opt(config, "--netring-keep", "netring_keep")),
                                            reap_after=reap_after)
    config.pluginmanager.register(_KeptSummary(), "netring-kept-summary")


def pytest_report_header(config):
    """Kernel, capabilities, what is usable (facts only: nothing is created), keep mode."""
    lines = _caps.describe()
    pair = get_dut(config)
    if pair is not None:
        lines.append("netring: DUT mode: dut %s, peer %s" % (_dut.label(pair.dut), _dut.label(pair.peer)))
    if get_factory(config).keep:
        lines.append("netring: keep: namespaces of failed tests stay (nrt-%d-…)" % os.getpid())
    return lines


def get_dut(config):
    """The session's :class:`netring_testkit.dut.DutPair` (DUT mode), or None."""
    return config.stash.get(_DUT, None)


def pytest_collection_modifyitems(session, config, items):
    """Skip ``@pytest.mark.privileged`` tests that lack a needed capability, naming it; with
    ``--netring-xdp-features``, append the capability check's items (``xdp-features::basic`` …).

    Capabilities do not change during a run, so this is decided once, at collection, and the
    skip is reported at the test's own location.
    """
    if config.getoption("--netring-xdp-features") and not any(isinstance(i, _dut.XdpFeatureItem) for i in items):
        col = _dut.XdpFeaturesCollector.from_parent(session, name="xdp-features", nodeid="xdp-features")
        items.extend(col.collect())
    for item in items:
        marks = list(item.iter_markers("privileged"))
        if marks:
            try:
                reason = _privilege_gap([c for mark in marks for c in mark.args])
            except ValueError as exc:
                raise pytest.UsageError("%s: @pytest.mark.privileged: %s" % (item.nodeid, exc)) from None
            if reason:
                item.stash[_PRIVILEGE_GAP] = reason


def pytest_runtest_setup(item):
    """Skip a ``privileged`` test that lacks a capability (decided at collection), before its fixtures run."""
    reason = item.stash.get(_PRIVILEGE_GAP, None)
    if reason:
        skip_unmet(reason)


def _privilege_gap(extra=()):
    """The skip reason of ``@pytest.mark.privileged(*extra)`` / :func:`require`, or None."""
    return _caps.skip_reason(tuple(dict.fromkeys(_caps.NEEDED + tuple(extra))))


def require(*capabilities):
    """Skip the running test unless this process has what ``@pytest.mark.privileged(*capabilities)``
    asks for (CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN plus ``capabilities``), naming what is missing.

    The same rule as the marker, for fixtures and helpers (a fixture cannot carry a marker)."""
    reason = _privilege_gap(capabilities)
    if reason:
        skip_unmet(reason)


def requires_privileges(config):
    """True when ``--netring-require-privileges`` (or its ini/env forms) turns unmet requirements into errors."""
    if config.getoption("--netring-require-privileges"):
        return True
    if os.environ.get(_REQUIRE_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    return bool(config.getini("netring_require_privileges"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """After the test's fixtures are torn down: close the ``xdp`` fixtures deferred by ``--netring-keep``."""
    yield
    factory = item.config.stash.get(_FACTORY, None)
    if factory is not None and factory._deferred_xdp:
        factory._settle_xdp()


@pytest.hookimpl(hookwrapper=True, trylast=True)   # innermost: other wrappers see the final outcome
def pytest_runtest_makereport(item, call):
    """Turn unmet requirements into errors under ``--netring-require-privileges``; attach "how to enter" hints for namespaces kept during this phase to the report."""
    outcome = yield
    if call.excinfo is not None and getattr(call.excinfo.value, "netring_unmet", False) \
            and requires_privileges(item.config):
        rep = outcome.get_result()
        rep.outcome = "failed"
        rep.longrepr = ("netring: --netring-require-privileges: this test would have been skipped: %s"
                        % call.excinfo.value.msg)
    hints = get_factory(item.config)._take_pending()
    if hints:
        rep = outcome.get_result()
        setattr(rep, _KEPT_ATTR, list(getattr(rep, _KEPT_ATTR, None) or ()) + hints)


class _KeptSummary:
    """Collects kept-namespace hints from reports (also those of xdist workers) and prints them."""

    def __init__(self):
        self.hints = []

    def pytest_runtest_logreport(self, report):
        for text in getattr(report, _KEPT_ATTR, None) or ():
            if text not in self.hints:
                self.hints.append(text)

    def pytest_terminal_summary(self, terminalreporter):
        tr = terminalreporter
        reaped = get_factory(tr.config).reaped
        if reaped:
            tr.write_line("netring: reaped %d leftover namespace(s): %s (kept by earlier --netring-keep sessions)"
                          % (len(reaped), " ".join(reaped)))
        if not self.hints:
            return
        tr.section("netring: namespaces kept for debugging")
        for text in self.hints:
            tr.write_line(text)
        tr.write_line("remove them with `ip netns del NAME` (a later session's reaper removes them once they "
                      "are older than netring_reap_after = %s)" % tr.config.getini("netring_reap_after"))


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------
def _require(factory):
    reason = factory.prepare()
    if reason:
        skip_unmet(reason)


def _finish(request, factory, topo, failed_before):
    failed = request.session.testsfailed > failed_before
    topo.close(failed=failed)
    if topo.kept:
        factory.record_kept(topo.kept, "%s\n%s" % (request.node.nodeid, topo.enter_hint()))


@pytest.fixture(scope="session")
def netring_factory(request):
    """The session's :class:`NetringFactory` (honours ``--netring-keep``) for fixtures of any scope."""
    return get_factory(request.config)


@pytest.fixture
def netns(request, netring_factory):
    """Factory: ``netns()`` → a fresh, empty network namespace (lo up), removed after the test."""
    _require(netring_factory)
    made = []
    before = request.session.testsfailed

    def make():
        ns = netring_factory.netns()
        made.append(ns)
        return ns

    yield make
    failed = request.session.testsfailed > before
    for ns in reversed(made):
        if ns.name and netring_factory.keep and failed:
            ns.keep()
            ns.close()
            netring_factory.record_kept([ns.name], "%s\nip netns exec %s bash" % (request.node.nodeid, ns.name))
        else:
            ns.delete()


@pytest.fixture
def veth_pair(request, netring_factory):
    """``(a, b)``: two Endpoints joined by a veth, each in a fresh namespace, up and addressed.

    In DUT mode (``--netring-dut``/``--netring-peer``) ``a`` is the peer and ``b`` the DUT, over those
    existing interfaces, with the same addresses (removed afterwards); skipped when one is missing,
    down or already runs an XDP program.

    ``a`` is 198.18.0.1/24 and 2001:2::1/64, ``b`` is 198.18.0.2/24 and 2001:2::2/64, both
    ``eth0``, MTU 1500. Options: ``@pytest.mark.veth_pair(mtu=..., gro=..., queues=..., ...)``.
    """
    _require(netring_factory)
    link = {}
    for mark in reversed(list(request.node.iter_markers("veth_pair"))):
        link.update(mark.kwargs)
    before = request.session.testsfailed
    pair = get_dut(request.config)
    if pair is not None:   # DUT mode: a = the peer, b = the DUT, over the operator's interfaces
        reason = pair.preflight()
        if reason:
            skip_unmet(reason)
        topo = pair.topology(veth_pair_spec(**link), "b:eth0").build()
    else:
        topo = netring_factory.veth_pair(**link)
    try:
        yield topo["a:eth0"], topo["b:eth0"]
    finally:
        _finish(request, netring_factory, topo, before)


@pytest.fixture
def topology(request, netring_factory):
    """Factory: ``topology(spec)`` → a built Topology (``topo["tx:eth0"]`` → Endpoint), torn down after the test."""
    _require(netring_factory)
    made = []
    before = request.session.testsfailed

    from .topology import Topology

    def make(spec):
        topo = Topology(spec, keep=netring_factory.keep)
        made.append(topo)
        return topo.build()

    try:
        yield make
    finally:
        for topo in reversed(made):
            _finish(request, netring_factory, topo, before)
