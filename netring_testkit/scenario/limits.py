"""Resource limits on a scenario file, checked before the step they make expensive.

A scenario file comes from a repository, so validating or collecting it must not stall a CI
machine: a 600-byte YAML anchor bomb expands to gigabytes, a 1 000-value matrix times 1 000
streams is a million streams to check. Each limit is checked as early as its quantity is known
— the file size before reading, the nesting depth and alias expansion while composing, the
counts of nodes, links and streams and the matrix product before the schema pass — and an
exceeded limit is a located :class:`~.loader.Problem` that names the limit and how to raise it.

Raise a limit with ``--netring-limits "streams=4096 file_size=4MiB"`` (pytest and
``netring-testkit validate/list``) or the ``netring_limits`` ini option (same syntax).
"""
import re

__all__ = ["Limits", "DEFAULT_LIMITS", "LIMITS_HELP"]

_KIB = 1024

#: name -> (default, what it bounds). The defaults are 10-100x what the bundled scenarios use
#: and keep the worst accepted file to about a second of validation.
_DEFAULTS = {
    "file_size": (1024 * _KIB, "bytes in the file"),
    "depth": (64, "levels of nesting"),
    "yaml_nodes": (100_000, "YAML nodes after alias expansion"),
    "string": (4 * _KIB, "characters in one string"),
    "nodes": (64, "topology nodes (network namespaces) in one scenario"),
    "links": (256, "topology links (veth pairs) in one scenario"),
    "streams": (1024, "streams in one scenario"),
    "matrix_streams": (10_000, "matrix combinations x streams of one scenario"),
    "matrix_nodes": (200_000, "matrix combinations x YAML nodes of one scenario"),
}

LIMITS_HELP = ("limits on scenario files as NAME=VALUE, separated by spaces or commas; names: %s (sizes "
               "also as 4KiB, 2MiB)" % ", ".join("%s (default %d)" % (k, v[0]) for k, v in _DEFAULTS.items()))

_ITEM = re.compile(r"^([a-z_]+)=([0-9]+)(KiB|MiB)?$")


class Limits:
    """The limits in force: one attribute per name (``limits.streams``); ``Limits(streams=4096)`` overrides some."""

    __slots__ = tuple(_DEFAULTS)

    def __init__(self, **overrides):
        for name, (default, _) in _DEFAULTS.items():
            setattr(self, name, default)
        for name, value in overrides.items():
            if name not in _DEFAULTS:
                raise ValueError("unknown scenario limit %r; known: %s" % (name, ", ".join(_DEFAULTS)))
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError("scenario limit %s must be a positive integer, got %r" % (name, value))
            setattr(self, name, value)

    @classmethod
    def parse(cls, text):
        """Limits from ``"streams=4096 file_size=4MiB"`` (spaces or commas); ValueError naming a bad item."""
        overrides = {}
        for item in re.split(r"[\s,]+", (text or "").strip()):
            if not item:
                continue
            m = _ITEM.match(item)
            if not m:
                raise ValueError("bad scenario limit %r: expected NAME=NUMBER (e.g. streams=4096, file_size=4MiB)"
                                 % item)
            overrides[m.group(1)] = int(m.group(2)) * {None: 1, "KiB": _KIB, "MiB": _KIB * _KIB}[m.group(3)]
        return cls(**overrides)

    def exceeded(self, name, actual, when=""):
        """The message for ``actual`` (a count, or text such as ``"more than 64"``) over limit ``name``:
        the count, what it counts (``when`` qualifies it), the limit and how to raise it."""
        what = _DEFAULTS[name][1] + (" " + when if when else "")
        return ("%s %s; the limit is %d (%s: raise it with --netring-limits %s=N or the netring_limits ini option)"
                % (actual, what, getattr(self, name), name, name))

    def __eq__(self, other):
        return isinstance(other, Limits) and all(getattr(self, k) == getattr(other, k) for k in _DEFAULTS)

    def __repr__(self):
        return "Limits(%s)" % ", ".join("%s=%d" % (k, getattr(self, k)) for k in _DEFAULTS)


#: The defaults.
DEFAULT_LIMITS = Limits()
