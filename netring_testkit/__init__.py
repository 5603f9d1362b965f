"""netring_testkit — the pytest plugin of netring: netns/veth topologies, frames, strategies.

Loaded by ``pytest -p netring_testkit`` (and automatically through the ``pytest11`` entry
point). This module stays light: the hooks and fixtures live in the plugin modules listed in
:data:`pytest_plugins`; :class:`Topology` and :class:`Endpoint` are imported on first use.

Fixtures: ``netns`` (factory of fresh namespaces), ``veth_pair`` (two addressed endpoints),
``topology`` (factory of topologies from a spec), ``netring_factory`` (session-scoped maker).
Modules: :mod:`netring_testkit.topology`, :mod:`netring_testkit.frames`,
:mod:`netring_testkit.strategies`, :mod:`netring_testkit.caps`.
"""

#: Plugin modules pytest loads together with this package.
pytest_plugins = ["netring_testkit.plugin", "netring_testkit.xdp_fixture", "netring_testkit.scenario_plugin"]

__all__ = ["Topology", "Endpoint"]


def __getattr__(name):
    if name in ("Topology", "Endpoint"):
        from . import topology

        return getattr(topology, name)
    raise AttributeError("module 'netring_testkit' has no attribute %r" % name)
