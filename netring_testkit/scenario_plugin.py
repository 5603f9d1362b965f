"""pytest plugin: YAML scenario files become test items.

Collection rule (see the README, "YAML scenarios → Collection rule", and
:func:`netring_testkit.scenario.scenario_file_status`): a ``*.yaml``/``*.yml`` file is
collected when

- it was named on the command line (``pytest scenarios/mine.yaml``): always, and an invalid
  file then fails collection listing every problem; or
- it was found under a directory (``pytest``, ``pytest scenarios/``) and a line starts with
  ``scenarios:`` while no other column-0 line starts with a key except ``x-*`` (and ``.*``)
  extension keys — a line scan of the first ``file_size`` bytes, never a YAML parse, since
  pytest asks this of every YAML file next to the ones it collects. Only a collected file is
  parsed; one that does not parse or is too big then fails collection with that problem.

Other YAML — CI configs, docker-compose files, an Artillery load test with top-level
``config:`` and ``scenarios:`` — is left alone, because the plugin loads in every project
where netring is installed. Each scenario — each matrix combination — is one item with id
``name[k=v-…]``; ``-k`` matches ids, ``-m`` matches the scenario's ``markers:`` and the
``netring_scenario`` marker every item carries. An invalid file fails collection with every
problem located (file:line:col, field path, what was expected) and no traceback.

DUT mode (``--netring-dut``/``--netring-peer``, :mod:`netring_testkit.dut`): a scenario whose
topology is one link runs on those existing interfaces — the endpoint of its first XDP program (else
its first stream's ``to``) on the DUT, the other on the peer; any other topology skips, saying why.

Options (group ``netring``):

``--netring-report FILE``
    JSON report of every scenario run (status, per-stream counts, pps, duration, counters).
``--netring-artifacts DIR``
    per failed scenario: ``<id>.json`` (full result) and ``<id>.pcapng`` (the first/last frames
    sent and arrived, and the unexpected frames, each commented); see :mod:`netring_testkit.report`.
``--netring-limits "NAME=N ..."`` / ini ``netring_limits``
    raise the limits on scenario files (:mod:`netring_testkit.scenario.limits`: file size, depth,
    YAML nodes, string length, topology nodes and links, streams, matrix combinations x streams
    and x YAML nodes); the option adds to (and overrides) the ini value.

pps and loss are also attached to each item as ``user_properties`` (JUnit ``<property>``).
Load with ``pytest -p netring_testkit.scenario_plugin`` (the ``netring_testkit`` plugin
includes it).
"""
import contextlib
import os
import time

import pytest

from netring.errors import NetringError

from . import dut as _dut
from .plugin import get_dut, get_factory, skip_unmet

# ``scenario`` (YAML, JSON Schema) is imported only when a YAML file is met: this module is loaded
# in every pytest session of the environment.

__all__ = ["ScenarioFile", "ScenarioItem", "ScenarioFailed"]

#: Its session factory (``--netring-keep``, the reaper) comes with the plugin module.
pytest_plugins = ["netring_testkit.plugin"]


def pytest_addoption(parser):
    """Register ``--netring-report``, ``--netring-artifacts`` and ``--netring-limits`` (group ``netring``)."""
    group = parser.getgroup("netring", "netring network testing")
    group.addoption("--netring-report", metavar="FILE", default=None,
                    help="write a JSON report of every YAML scenario run (status, per-stream counts, pps, "
                         "duration, XDP and interface counters) to FILE")
    group.addoption("--netring-artifacts", metavar="DIR", default=None,
                    help="for each failed scenario, write DIR/<id>.json (full result) and DIR/<id>.pcapng "
                         "(first/last frames sent and arrived, and the unexpected frames, each commented)")
    group.addoption("--netring-artifacts-all", action="store_true", default=False,
                    help="with --netring-artifacts: the pcapng holds every frame each capture saw (up to 1 000 000), "
                         "each commented with the checker's verdict (delivered, duplicate, reordered, corrupted, "
                         "unexpected); costs a copy per frame while the scenario runs")
    limits_help = ("raise the limits on YAML scenario files, as NAME=N separated by spaces or commas (sizes also "
                   "as 4KiB, 2MiB), e.g. 'streams=4096 file_size=4MiB'; names: file_size, depth, yaml_nodes, "
                   "string, nodes, links, streams, matrix_streams, matrix_nodes (README: YAML scenarios, Limits)")
    group.addoption("--netring-limits", metavar="NAME=N ...", default=None, help=limits_help)
    parser.addini("netring_limits", limits_help + " (--netring-limits adds to these)", default="")


_LIMITS_KEY = pytest.StashKey()


def pytest_configure(config):
    """Register the ``netring_scenario`` marker, check ``--netring-limits`` and start collecting results."""
    config.addinivalue_line("markers", "netring_scenario: a YAML scenario item (netring_testkit)")
    text = " ".join(filter(None, [config.getini("netring_limits"), config.getoption("netring_limits", None)]))
    if text:
        from .scenario.limits import Limits

        try:
            config.stash[_LIMITS_KEY] = Limits.parse(text)
        except ValueError as exc:
            raise pytest.UsageError("--netring-limits / netring_limits: %s" % exc) from None
    if not config.pluginmanager.has_plugin("netring-scenario-results"):
        config.pluginmanager.register(_Results(config), "netring-scenario-results")


def pytest_collect_file(file_path, parent):
    """Collect scenario files: ``*.yaml``/``*.yml`` named on the command line, or found under a
    directory with only ``scenarios:`` (plus ``x-*``/``.*`` keys) at the top level."""
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    from . import scenario as _scenario

    explicit = parent.session.isinitpath(file_path)
    if _scenario.scenario_file_status(file_path, explicit=explicit, limits=_limits(parent.config))[0]:
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


def _limits(config):
    """The :class:`~netring_testkit.scenario.Limits` of this session (None: the defaults)."""
    return config.stash.get(_LIMITS_KEY, None)


class ScenarioFile(pytest.File):
    """A scenario file; yields one :class:`ScenarioItem` per scenario and matrix combination."""

    def collect(self):
        from . import scenario as _scenario

        try:
            scenarios = _scenario.load(self.path, relative_to=os.getcwd(), limits=_limits(self.config))
        except _scenario.ScenarioSpecError as exc:
            raise self.CollectError(str(exc)) from None
        registered = set(m.split(":", 1)[0].strip() for m in self.config.getini("markers"))
        for sc in scenarios:
            for m in sc.markers:
                if m not in registered:
                    self.config.addinivalue_line("markers", "%s: marker used by YAML scenarios" % m)
                    registered.add(m)
            yield ScenarioItem.from_parent(self, name=sc.id, scenario=sc)


class ScenarioFailed(Exception):
    """Raised by a scenario item whose expectations were not met; carries the result."""

    def __init__(self, result):
        super().__init__(result.render())
        self.result = result


class ScenarioItem(pytest.Item):
    """One runnable scenario (one matrix combination)."""

    def __init__(self, *, scenario, **kw):
        super().__init__(**kw)
        #: The :class:`netring_testkit.scenario.Scenario` this item runs.
        self.scenario = scenario
        self.result = None
        self.add_marker("netring_scenario")
        for m in scenario.markers:
            self.add_marker(m)
        self.keywords[scenario.name] = True

    def setup(self):
        """Skip (an error under ``--netring-require-privileges``) when the toolkit cannot build
        topologies here or the scenario's static ``requires`` are not met."""
        from . import scenario as _scenario

        reason = get_factory(self.config).prepare() or _scenario.check_requires(self.scenario)
        if reason:
            skip_unmet(reason)   # reported at the scenario's YAML line
        pair = get_dut(self.config)
        if pair is not None:
            dut, why = _dut.dut_endpoint(self.scenario)
            if dut is None:
                # A plain skip, not an unmet requirement: this topology cannot be laid on two interfaces.
                raise pytest.skip.Exception(why, _use_item_location=True)
            reason = pair.preflight()
            if reason:
                skip_unmet(reason)

    def runtest(self):
        from . import runner

        cfg = self.config
        factory = get_factory(cfg)
        pair = get_dut(cfg)
        factory_fn = None
        if pair is not None:   # DUT mode: the scenario's one link is the operator's pair (setup checked it)
            dut = _dut.dut_endpoint(self.scenario)[0]

            def factory_fn(spec):
                return pair.topology(spec, dut)
        self.result = runner.run(self.scenario, artifacts_dir=cfg.getoption("netring_artifacts"),
                                 progress=_progress_writer(cfg), keep=factory.keep, topology_factory=factory_fn,
                                 all_frames=cfg.getoption("netring_artifacts_all"))
        r = self.result
        if r.status == "skipped":
            skip_unmet(r.skip_reason or "a requirement of the scenario is not met")
        if r.kept:
            factory.record_kept(r.kept, "%s\n%s" % (self.nodeid, r.kept_hint))
        self.user_properties.append(("pps", round(r.pps, 1)))
        self.user_properties.append(("loss", round(r.loss, 6)))
        self.user_properties.append(("sent", r.sent))
        self.user_properties.append(("delivered", sum(s.delivered for s in r.streams)))
        self.user_properties.append(("duration_s", round(r.duration, 3)))
        if not r.passed:
            raise ScenarioFailed(r)

    def repr_failure(self, excinfo, style=None):
        """The verdict table for a failed scenario; a one-line message for netring errors; else pytest's."""
        if isinstance(excinfo.value, ScenarioFailed):
            return excinfo.value.result.render()
        if isinstance(excinfo.value, NetringError):
            return "%s: %s" % (type(excinfo.value).__name__, excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, max(0, (self.scenario.line or 1) - 1), "scenario %s" % self.scenario.id


def _progress_writer(config):
    if hasattr(config, "workerinput") or config.option.verbose < 1:
        return None
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is None:
        return None

    capman = config.pluginmanager.getplugin("capturemanager")

    def write(text):
        # Output capture redirects fd 1 while a test runs: suspend it for the progress line.
        ctx = capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext()
        with ctx:
            tr.write("\n  [netring] %s " % text, flush=True)

    return write


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the scenario's JSON record to its report (it travels to the xdist controller).

    A run that could not finish — result status ``"error"`` (a kernel refusal, a set-up failure,
    an internal error) or an exception other than a verdict — is reported to pytest as an error,
    as a failing fixture is, so pytest's summary (``1 error``), ``-x``, xdist and JUnit
    (``<error>``, not ``<failure>``) agree with the JSON. pytest counts a failed report as an
    error only outside the call phase, so the call report is relabelled ``when="setup"``: the
    scenario's set-up is what failed, not one of its expectations.
    """
    outcome = yield
    if not isinstance(item, ScenarioItem):
        return
    rep = outcome.get_result()
    if call.when == "call" and item.result is not None:
        rep.netring = item.result.as_dict()
    elif call.when == "call" and rep.failed:
        rep.netring = _stub(item, "error", str(call.excinfo.value) if call.excinfo else "")
    elif call.when == "setup" and rep.skipped:
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.netring = _stub(item, "skipped", reason)
    elif call.when == "setup" and rep.failed:
        rep.netring = _stub(item, "error", str(call.excinfo.value) if call.excinfo else "")
    if call.when == "call" and rep.failed:
        exc = call.excinfo.value if call.excinfo else None
        if not (isinstance(exc, ScenarioFailed) and exc.result.status == "failed"):  # not an unmet expectation
            if rep.netring["status"] != "error":  # raised after a result was made (a bug): still an error
                rep.netring = dict(rep.netring, status="error", error="%s: %s" % (type(exc).__name__, exc))
            rep.when = "setup"


def _stub(item, status, message):
    sc = item.scenario
    return {"id": sc.id, "name": sc.name, "file": sc.file, "line": sc.line, "params": sc.params,
            "status": status, "error" if status == "error" else "reason": message, "streams": []}


class _Results:
    """Per-session collector of scenario records; writes ``--netring-report`` at the end."""

    def __init__(self, config):
        self.config = config
        self.records = []
        self.start = time.monotonic()

    def pytest_runtest_logreport(self, report):
        rec = getattr(report, "netring", None)
        if rec is not None:
            self.records.append(rec)

    def pytest_sessionfinish(self, session, exitstatus):
        path = self.config.getoption("netring_report", None)
        if not path or hasattr(self.config, "workerinput"):
            return
        from .report import write_report

        write_report(path, self.records, duration=round(time.monotonic() - self.start, 3))

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config):
        path = config.getoption("netring_report", None)
        if path and not hasattr(config, "workerinput"):
            terminalreporter.write_line("netring: report of %d scenario(s) written to %s" % (len(self.records), path))
