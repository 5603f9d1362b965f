"""Link impairment settings — what :class:`netring.Bridge` does to frames — parsed and validated.

Pure Python (no C core, no sockets): the scenario loader validates ``impair:`` with it, and
:mod:`netring.bridge` turns the result into the C loop's thresholds. The meaning of each
setting is documented in :mod:`netring.bridge`.

Percentages are strings ending in ``%`` (``"1%"``, ``"0.5 %"``, ``"100%"``) or bare numbers as
fractions below 1 (``0.01`` is 1 %; a number of 1 or more is refused as ambiguous — write ``"1%"`` or
``"100%"``); durations are strings with a unit (``"2ms"``, ``"500us"``, ``"1s"``,
``"100ns"``) or seconds as numbers, 0..60 s; ``seed`` is an integer 0..2**64-1 (default 0).
"""
import collections
import difflib
import re

from .errors import ConfigurationError

__all__ = ["Impairment", "NO_IMPAIRMENT", "parse_impairment", "parse_one", "KEYS", "DIRECTIONS"]

_MAX_DELAY_S = 60.0
_DIRECTIONS = ("a_to_b", "b_to_a")
_PERCENT_KEYS = ("loss", "duplicate", "reorder", "corrupt")
_DURATION_KEYS = ("delay", "jitter")
_KEYS = _PERCENT_KEYS + _DURATION_KEYS + ("seed",)
#: Every key of one direction's mapping, and the two per-direction keys.
KEYS, DIRECTIONS = _KEYS, _DIRECTIONS
_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_DURATION_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(s|ms|us|µs|ns)\s*$")
_PERCENT_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*%\s*$")


class Impairment(collections.namedtuple("Impairment", "loss duplicate reorder corrupt delay jitter seed")):
    """One direction's impairment: probabilities as fractions 0..1 (``loss``, ``duplicate``,
    ``reorder``, ``corrupt``), ``delay`` and ``jitter`` in seconds, ``seed`` (0..2**64-1)."""

    __slots__ = ()

    @property
    def active(self):
        """True when any decision can change a frame's fate or timing."""
        return any((self.loss, self.duplicate, self.reorder, self.corrupt, self.delay, self.jitter))

    def as_dict(self):
        """The settings as a plain dict (percentages as fractions, durations in seconds)."""
        return dict(self._asdict())


NO_IMPAIRMENT = Impairment(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0)


def _did_you_mean(word, choices):
    close = difflib.get_close_matches(str(word), choices, n=1)
    return " (did you mean %r?)" % close[0] if close else ""


def _percent(field, value):
    """A probability from ``"1.5%"`` or a fraction below 1; ConfigurationError naming ``field`` otherwise."""
    if isinstance(value, str):
        m = _PERCENT_RE.match(value)
        if not m:
            raise ConfigurationError("%s=%r is not a percentage; write e.g. '1%%' or '0.5%%', or a fraction below 1"
                                     % (field, value), field=field, value=value)
        p = float(m.group(1)) / 100.0
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        p = float(value)
        if p >= 1:  # 1 could mean 100 % or 1 %: a bare number is a fraction below 1, never a percentage
            raise ConfigurationError("%s=%r is ambiguous: a bare number is a fraction below 1 (0.01 is 1%%); write "
                                     "'%s%%' for a percentage (and '100%%' for always)" % (field, value, value),
                                     field=field, value=value)
    else:
        raise ConfigurationError("%s must be a percentage string ('1%%') or a fraction below 1, not %r"
                                 % (field, value), field=field, value=value)
    if not 0.0 <= p <= 1.0:  # also NaN
        raise ConfigurationError("%s=%r must be between 0%% and 100%%" % (field, value), field=field, value=value)
    return p


def _duration(field, value):
    """Seconds from ``"2ms"``/``"500us"``/``"1s"`` or a number of seconds; ConfigurationError otherwise."""
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if not m:
            raise ConfigurationError("%s=%r is not a duration; write e.g. '2ms', '500us', '1s' (or seconds as a number)"
                                     % (field, value), field=field, value=value)
        s = float(m.group(1)) * _UNITS[m.group(2)]
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        s = float(value)
    else:
        raise ConfigurationError("%s must be a duration ('2ms') or seconds as a number, not %r" % (field, value),
                                 field=field, value=value)
    if not 0.0 <= s <= _MAX_DELAY_S:
        raise ConfigurationError("%s=%r must be between 0 and %g s" % (field, value, _MAX_DELAY_S), field=field,
                                 value=value)
    return s


def parse_one(spec, where="impair"):
    """One direction's :class:`Impairment` from a mapping (ConfigurationError naming ``where.key``)."""
    if isinstance(spec, Impairment):
        return spec
    if not isinstance(spec, dict):
        raise ConfigurationError("%s must be a mapping of %s, not %r" % (where, ", ".join(_KEYS), spec),
                                 field=where, value=spec)
    vals = NO_IMPAIRMENT._asdict()
    for key, value in spec.items():
        field = "%s.%s" % (where, key)
        if key in _PERCENT_KEYS:
            vals[key] = _percent(field, value)
        elif key in _DURATION_KEYS:
            vals[key] = _duration(field, value)
        elif key == "seed":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 64:
                raise ConfigurationError("%s=%r must be an integer in 0..2**64-1 (the generator's seed)"
                                         % (field, value), field=field, value=value)
            vals[key] = value
        else:
            raise ConfigurationError("%s: unknown impairment key %r%s; the keys are %s"
                                     % (where, key, _did_you_mean(key, _KEYS + _DIRECTIONS), ", ".join(_KEYS)),
                                     field=field, value=key)
    return Impairment(**vals)


def parse_impairment(spec, where="impair"):
    """``(a_to_b, b_to_a)`` :class:`Impairment` for an ``impair=`` value (None: no impairment).

    ``spec`` is one mapping for both directions (``b_to_a`` draws from ``seed + 1``) or
    ``{"a_to_b": {...}, "b_to_a": {...}}`` (either may be missing: unimpaired), or what this
    function returned (a pair of :class:`Impairment`). Raises
    :class:`~netring.ConfigurationError` naming the key (``impair.loss``) for a bad value or an
    unknown key.
    """
    if spec is None:
        return NO_IMPAIRMENT, NO_IMPAIRMENT
    if isinstance(spec, Impairment):
        return spec, spec._replace(seed=(spec.seed + 1) % (1 << 64))
    if isinstance(spec, tuple) and len(spec) == 2 and all(isinstance(x, Impairment) for x in spec):
        return spec  # already parsed: (a_to_b, b_to_a)
    if not isinstance(spec, dict):
        raise ConfigurationError("%s must be a mapping (loss, duplicate, reorder, corrupt, delay, jitter, seed — or "
                                 "a_to_b/b_to_a of those), not %r" % (where, spec), field=where, value=spec)
    if any(k in _DIRECTIONS for k in spec):
        extra = [k for k in spec if k not in _DIRECTIONS]
        if extra:
            raise ConfigurationError("%s mixes per-direction keys (a_to_b, b_to_a) with %r; put every setting under "
                                     "a_to_b and/or b_to_a" % (where, extra[0]), field="%s.%s" % (where, extra[0]),
                                     value=extra[0])
        return tuple(parse_one(spec[d], "%s.%s" % (where, d)) if d in spec else NO_IMPAIRMENT for d in _DIRECTIONS)
    imp = parse_one(spec, where)
    return imp, imp._replace(seed=(imp.seed + 1) % (1 << 64))


