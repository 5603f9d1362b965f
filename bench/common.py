"""What the benchmark's peer roles and the scenario-engine case share: the skip signal and the RSS reading.

Its own module so that ``bench.peer`` (which runs the engine case) and ``bench.engine_case`` (which
raises :class:`Skip` and reports memory like every peer) import it instead of each other: one
``Skip`` class whether ``bench.peer`` runs as ``__main__`` or is imported.
"""
import resource


class Skip(Exception):
    """A library piece the role needs is not available; the message names it."""


def rss_kib():
    """Peak resident set size of this process so far, in KiB (``ru_maxrss`` on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
