"""Durations as compose reads and prints them.

Compose parses ``interval``, ``stop_grace_period`` and friends with go-str2duration:
Go's ``time.ParseDuration`` plus ``d`` (24h) and ``w`` (168h) units, a sign, ``.5s``,
bare ``0``; a bare number such as ``90`` has no unit and is refused. Values are whole
nanoseconds and print as Go's ``Duration.String`` (``1m30s``, ``500ms``, ``24h0m0s``).

``parse_duration`` is the lenient reader for our own settings (``HEALTH_CHECK_TIMEOUT=120``
means seconds), never for compose fields.
"""

from __future__ import annotations

from ..support.errors import ConfigError

NS_PER_S = 1_000_000_000
MAX_SECONDS = (2**63 - 1) // NS_PER_S  # Go's longest time.Duration, in whole seconds
_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC Greek mu
    "ms": 1_000_000,
    "s": NS_PER_S,
    "m": 60 * NS_PER_S,
    "h": 3600 * NS_PER_S,
    "d": 86400 * NS_PER_S,
    "w": 604800 * NS_PER_S,
}
_MAX = (1 << 63) - 1
_DIGITS = "0123456789"


def go_duration(text: str) -> int:  # noqa: PLR0912 - go-str2duration, branch for branch
    """Nanoseconds, exactly as go-str2duration parses ``text``; ValueError with Go's message."""
    invalid = ValueError(f'time: invalid duration "{text}"')
    s, neg = text, False
    if s[:1] in ("-", "+"):
        neg, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if not s:
        raise invalid
    total = 0
    while s:
        if s[0] != "." and s[0] not in _DIGITS:
            raise invalid
        i = 0
        while i < len(s) and s[i] in _DIGITS:
            i += 1
        whole, s, pre = int(s[:i] or 0), s[i:], i > 0
        frac, scale, post = 0, 1.0, False
        if s[:1] == ".":
            s = s[1:]
            j, overflow = 0, False
            while j < len(s) and s[j] in _DIGITS:
                if not overflow and frac > _MAX // 10:
                    overflow = True  # Go drops digits it cannot hold
                if not overflow:
                    frac, scale = frac * 10 + int(s[j]), scale * 10
                j += 1
            post, s = j > 0, s[j:]
        if whole > _MAX or not (pre or post):
            raise invalid
        k = 0
        while k < len(s) and s[k] != "." and s[k] not in _DIGITS:
            k += 1
        if k == 0:
            raise ValueError(f'time: missing unit in duration "{text}"')
        unit_name, s = s[:k], s[k:]
        unit = _UNITS.get(unit_name)
        if unit is None:
            raise ValueError(f'time: unknown unit "{unit_name}" in duration "{text}"')
        if whole > _MAX // unit:
            raise invalid
        value = whole * unit + (int(frac * (unit / scale)) if frac else 0)
        total += value
        if value > _MAX or total > _MAX:
            raise invalid
    return -total if neg else total


def format_duration(ns: int) -> str:
    """Go's ``time.Duration.String``: ``1h2m3.5s``, ``1.5ms``, ``0s``."""
    if ns == 0:
        return "0s"
    sign, u = ("-", -ns) if ns < 0 else ("", ns)
    if u < NS_PER_S:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if u >= size:
                return sign + _fraction(u, size) + unit
    text = _fraction(u % (60 * NS_PER_S), NS_PER_S) + "s"
    minutes = u // (60 * NS_PER_S)
    if minutes:
        text = f"{minutes % 60}m" + text
        if minutes >= 60:
            text = f"{minutes // 60}h" + text
    return sign + text


def _fraction(value: int, unit: int) -> str:
    whole, rest = divmod(value, unit)
    if not rest:
        return str(whole)
    width = len(str(unit)) - 1
    return f"{whole}." + f"{rest:0{width}d}".rstrip("0")


def seconds(ns: int) -> float:
    """For the runtime: a negative duration (compose accepts ``-5s``) waits no time at all."""
    return max(ns, 0) / NS_PER_S


def parse_duration(value: object, *, where: str = "duration") -> float:
    """Seconds for one of our settings: a number of seconds or a duration with units."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: {value!r} is not a duration. Fix: write e.g. 10s, 1m30s.")
    if isinstance(value, int | float):
        if value < 0:
            raise ConfigError(f"{where}: {value!r} is negative. Fix: use a positive duration.")
        if not value <= MAX_SECONDS:  # nan and inf too
            raise ConfigError(
                f"{where}: {value!r} is not a duration we can wait (at most {MAX_SECONDS:.0f} "
                "seconds, as compose's). Fix: use a finite number of seconds, e.g. 120."
            )
        return float(value)
    text = str(value).strip()
    try:
        ns = go_duration(text)
    except ValueError:
        raise ConfigError(
            f"{where}: {text!r} is not a duration. "
            "Fix: use numbers with units ns, us, ms, s, m, h, d, e.g. 10s, 1m30s, 250ms."
        ) from None
    if ns < 0:
        raise ConfigError(f"{where}: {text!r} is negative. Fix: use a positive duration.")
    return ns / NS_PER_S
