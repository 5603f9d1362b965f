"""Scenario values: durations, rates, expected counts (:class:`CountExpr`), frame sizes and their limits."""
import decimal
import math
import random
import re
import zlib

from netring import stamp as _stamp

__all__ = ["parse_duration", "parse_rate", "parse_count", "CountExpr", "min_frame_size", "frame_sizes", "STAMP_LEN", "COUNT_MAX",
           "DEFAULT_SIZE", "DEFAULT_VARIANTS",
           "DURATION_MAX", "RATE_MAX"]

#: Bytes of the stamp at the end of every generated frame's L3 packet (:mod:`netring.stamp`).
STAMP_LEN = _stamp.STAMP_LEN
#: Most frames one stream may send (``count``): the sequence checker (:mod:`netring.check`) tracks 2**32 per stream.
COUNT_MAX = 0xFFFFFFFF
#: Longest duration (``timeout``, ``quiet``) in seconds: one day; beyond it a run is unbounded in practice
#: (and ``.inf``/``.nan`` would reach the C waits).
DURATION_MAX = 86400.0
#: Highest paced rate in frames per second, the bound :meth:`netring.Injector.send_stream` takes.
RATE_MAX = 10 ** 9
#: Frame size of a stream whose ``frame`` gives no ``size``.
DEFAULT_SIZE = 128
#: Sizes drawn for ``size: {min:, max:}`` without ``variants``.
DEFAULT_VARIANTS = 64


def parse_duration(value):
    """Seconds from ``10``, ``2.5``, ``"10s"``, ``"500ms"`` or ``"2m"``: finite, above 0 and at most
    :data:`DURATION_MAX`; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("not a duration: %r" % (value,))
    if isinstance(value, (int, float)):
        n = float(value)
    else:
        m = re.match(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m)\s*$", str(value))
        if not m:
            raise ValueError("not a duration: %r (expected e.g. 10s, 500ms, 2m)" % (value,))
        n = float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(2)]
    if not math.isfinite(n) or not 0 < n <= DURATION_MAX:
        raise ValueError("duration must be a finite number of seconds above 0 and at most %g (one day), got %s"
                         % (DURATION_MAX, _shown(value)))
    return n


def _shown(value):
    if isinstance(value, float) and not math.isfinite(value):
        return {"inf": ".inf", "-inf": "-.inf"}.get(str(value), ".nan")  # as written in YAML
    return str(value).strip()


def parse_rate(value):
    """Frames per second from ``"max"`` (→ None), ``20000``, ``"20kpps"``, ``"1.5Mpps"``: 1..:data:`RATE_MAX`."""
    if value is None or value == "max":
        return None
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError("not a rate: %s (expected max, a whole number of frames per second, 20kpps, 1.5Mpps)"
                         % _shown(value))
    if isinstance(value, int):
        pps = value
    else:
        m = re.match(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmM]?)pps\s*$", str(value))
        if not m:
            raise ValueError("not a rate: %r (expected max, 20kpps, 1.5Mpps)" % (value,))
        pps = int(float(m.group(1)) * {"": 1, "k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6}[m.group(2)])
    if not 1 <= pps <= RATE_MAX:
        raise ValueError("rate %s is %d pps, outside 1..%d (1 Gpps)" % (str(value).strip(), pps, RATE_MAX))
    return pps


_SUFFIX = {"k": 1000, "K": 1000, "m": 1000000, "M": 1000000}


def parse_count(value):
    """Frames to send from ``20000``, ``"5k"`` (5000) or ``"1.5M"`` (1500000): an integer 1..:data:`COUNT_MAX`.

    The suffixes are the ones ``rate`` takes (k = 1000, M = 1000000). The product must be a
    whole number (``"1.0005k"`` is not); computed in decimal, so ``"1.1k"`` is exactly 1100.
    Raises :class:`ValueError` saying what is wrong.
    """
    if isinstance(value, bool):
        raise ValueError("not a frame count: %r" % (value,))
    if isinstance(value, int):
        n = value
    else:
        m = re.match(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kKmM])\s*$", str(value))
        if not m:
            raise ValueError("not a frame count: %r (expected e.g. 20000, 5k, 1.5M)" % (value,))
        exact = decimal.Decimal(m.group(1)) * _SUFFIX[m.group(2)]
        if exact != exact.to_integral_value():
            raise ValueError("frame count %s is %s frames, not a whole number" % (value.strip(), _num(float(exact))))
        n = int(exact)
    if not 1 <= n <= COUNT_MAX:
        raise ValueError("frame count %s is %d, outside 1..%d" % (str(value).strip(), n, COUNT_MAX))
    return n


class CountExpr:
    """An expected count: ``all``, ``none``, ``1234``, ``">= 1000"``, ``">= 99.9%"`` (percent of the total).

    :meth:`check` compares an actual count against it given the total that ``all`` and
    percentages refer to; :meth:`describe` renders the expectation for messages.
    """

    _RE = re.compile(r"^\s*(all|none|(>=|<=|>|<|==|!=)?\s*([0-9]+(?:\.[0-9]+)?)\s*(%?))\s*$")

    def __init__(self, text):
        self.text = text
        if isinstance(text, bool):
            raise ValueError("not a count expression: %r" % (text,))
        if isinstance(text, int):
            if text < 0:
                raise ValueError("count must be >= 0")
            self.op, self.value, self.percent = "==", text, False
            return
        m = self._RE.match(str(text))
        if not m:
            raise ValueError("not a count expression: %r" % (text,))
        if m.group(1) == "all":
            self.op, self.value, self.percent = "==", 100.0, True
        elif m.group(1) == "none":
            self.op, self.value, self.percent = "==", 0, False
        else:
            self.op = m.group(2) or "=="
            self.percent = bool(m.group(4))
            self.value = float(m.group(3)) if (self.percent or "." in m.group(3)) else int(m.group(3))
            if self.percent and self.value > 100:
                raise ValueError("percentage above 100%%: %r" % (text,))

    def target(self, total):
        """The absolute number this expression compares with, given ``total``."""
        if self.percent:
            return self.value * total / 100.0
        return self.value

    def check(self, actual, total):
        """True when ``actual`` satisfies the expression (``total`` is what ``all``/percent refer to)."""
        t = self.target(total)
        if self.op == "==" and self.percent:
            return actual * 100 == self.value * total if total else actual == 0
        return {
            "==": actual == t, "!=": actual != t, ">=": actual >= t - 1e-9, "<=": actual <= t + 1e-9,
            ">": actual > t, "<": actual < t,
        }[self.op]

    @property
    def is_none(self):
        """True for an expression that demands exactly zero."""
        return self.op == "==" and self.value == 0

    def describe(self, total):
        """Render, e.g. ``== 20000`` or ``>= 99.9% (19980)``."""
        if self.percent:
            if self.op == "==" and self.value == 100.0:
                return "all (%d)" % total
            return "%s %g%% (%s)" % (self.op, self.value, _num(self.target(total)))
        return "%s %s" % (self.op, _num(self.value))

    def __repr__(self):
        return "CountExpr(%r)" % (self.text,)


def _num(x):
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    if isinstance(x, float):
        return "%.1f" % x
    return str(x)




def min_frame_size(l3="ipv4", l4="udp", vlan=False):
    """Smallest frame (bytes, without FCS) that carries these headers plus the 20-byte stamp.

    62 B for IPv4/UDP (14 + 20 + 8 + 20, so a 64 B frame carries a stamp), 82 B for IPv6/UDP,
    4 B more with an 802.1Q tag."""
    l3len = 40 if l3 == "ipv6" else 20
    l4len = {"udp": 8, "tcp": 20, "icmp": 8}[l4]
    return 14 + (4 if vlan else 0) + l3len + l4len + STAMP_LEN


def frame_sizes(size, seed=0, where=()):
    """The frame sizes a stream cycles through, from its ``frame.size`` (schema-valid).

    ``None`` → ``[128]``; an integer → ``[size]``; a list → the list; ``{min, max, variants}``
    → ``min``, ``max`` and ``variants - 2`` sizes drawn between them from a generator seeded by
    ``seed`` and the field path ``where``, so the same file gives the same sizes in every
    process (a stable digest, not :func:`hash`, which ``PYTHONHASHSEED`` randomises).
    Raises :class:`ValueError` for a ``min`` above ``max`` or a list of non-integers.
    """
    if size is None:
        return [DEFAULT_SIZE]
    if isinstance(size, int):
        return [size]
    if isinstance(size, list):
        if not all(isinstance(z, int) for z in size):
            raise ValueError("expected a list of integer sizes")
        return list(size)
    if isinstance(size, dict):
        lo, hi = size["min"], size["max"]
        if lo > hi:
            raise ValueError("size min %d is above max %d" % (lo, hi))
        digest = zlib.crc32(repr(tuple(where)).encode())
        rng = random.Random(seed * 1000003 + digest % 1000003)
        n = size.get("variants", DEFAULT_VARIANTS)
        return [lo, hi] + [rng.randint(lo, hi) for _ in range(max(0, n - 2))]
    raise ValueError("expected a frame size")
